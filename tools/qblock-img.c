/*
 * qblock-img: the disk image utility, command-line compatible with
 * qemu-img 7.2.  This file is the dispatcher: global options (-h, -V, -T),
 * the subcommand table and the --help text.  Each subcommand lives in its
 * own tools/img-NAME.c with one entry function (see tools/qblock-img.h);
 * adding one is a new file plus one line in img_cmds[] (and its syntax line
 * in the help text).
 *
 * Output and error texts match qemu-img's with the program name as the only
 * difference ("qblock-img: " where qemu-img prints "qemu-img: ").
 */
#include "tools/qblock-img.h"
#include "block/block-int.h"

#include <getopt.h>
#include <signal.h>

typedef struct ImgCmd {
    const char *name;
    int (*handler)(int argc, char **argv);
    const char *syntax;     /* the usage line after the command name */
} ImgCmd;

static const ImgCmd img_cmds[] = {
    { "amend", img_amend,
      "[--object objectdef] [--image-opts] [-p] [-q] [-f fmt] [-t cache] "
      "[--force] -o options filename" },
    { "bench", img_bench,
      "[-c count] [-d depth] [-f fmt] [--flush-interval=flush_interval] "
      "[-i aio] [-n] [--no-drain] [-o offset] [--pattern=pattern] [-q] "
      "[-s buffer_size] [-S step_size] [-t cache] [-w] [-U] filename" },
    { "bitmap", img_bitmap,
      "(--merge SOURCE | --add | --remove | --clear | --enable | "
      "--disable)... [-b source_file [-F source_fmt]] [-g granularity] "
      "[--object objectdef] [--image-opts | -f fmt] filename bitmap" },
    { "check", img_check,
      "[--object objectdef] [--image-opts] [-q] [-f fmt] [--output=ofmt] "
      "[-r [leaks | all]] [-T src_cache] [-U] filename" },
    { "commit", img_commit,
      "[--object objectdef] [--image-opts] [-q] [-f fmt] [-t cache] "
      "[-b base] [-r rate_limit] [-d] [-p] filename" },
    { "compare", img_compare,
      "[--object objectdef] [--image-opts] [-f fmt] [-F fmt] "
      "[-T src_cache] [-p] [-q] [-s] [-U] filename1 filename2" },
    { "convert", img_convert,
      "[--object objectdef] [--image-opts] [--target-image-opts] "
      "[--target-is-zero] [--bitmaps] [-U] [-C] [-c] [-p] [-q] [-n] "
      "[-f fmt] [-t cache] [-T src_cache] [-O output_fmt] "
      "[-B backing_file [-F backing_fmt]] [-o options] [-l snapshot_param] "
      "[-S sparse_size] [-r rate_limit] [-m num_coroutines] [-W] "
      "[--salvage] filename [filename2 [...]] output_filename" },
    { "create", img_create,
      "[--object objectdef] [-q] [-f fmt] [-b backing_file [-F backing_fmt]] "
      "[-u] [-o options] filename [size]" },
    { "dd", img_dd,
      "[--image-opts] [-U] [-f fmt] [-O output_fmt] [bs=block_size] "
      "[count=blocks] [skip=blocks] if=input of=output" },
    { "info", img_info,
      "[--object objectdef] [--image-opts] [-f fmt] [--output=ofmt] "
      "[--backing-chain] [-U] filename" },
    { "map", img_map,
      "[--object objectdef] [--image-opts] [-f fmt] "
      "[--start-offset=offset] [--max-length=len] [--output=ofmt] [-U] "
      "filename" },
    { "measure", img_measure,
      "[--output=ofmt] [-O output_fmt] [-o options] [--size N | "
      "[--object objectdef] [--image-opts] [-f fmt] [-l snapshot_param] "
      "filename]" },
    { "snapshot", img_snapshot,
      "[--object objectdef] [--image-opts] [-U] [-q] "
      "[-l | -a snapshot | -c snapshot | -d snapshot] filename" },
    { "rebase", img_rebase,
      "[--object objectdef] [--image-opts] [-U] [-q] [-f fmt] [-t cache] "
      "[-T src_cache] [-p] [-u] -b backing_file [-F backing_fmt] "
      "filename" },
    { "resize", img_resize,
      "[--object objectdef] [--image-opts] [-f fmt] "
      "[--preallocation=prealloc] [-q] [--shrink] filename [+ | -]size" },
};

static void print_format(void *opaque, const char *name)
{
    GPtrArray *names = opaque;
    g_ptr_array_add(names, (gpointer)name);
}

static gint cmp_str(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void print_version(void)
{
    printf("%s version " QBLOCK_VERSION " (compatible with qemu-img 7.2)\n",
           qb_get_progname());
}

void img_help(void)
{
    const char *p = qb_get_progname();
    g_autoptr(GPtrArray) fmts = g_ptr_array_new();

    print_version();
    printf("usage: %s [standard options] command [command options]\n"
           "qblock disk image utility\n"
           "\n"
           "    '-h', '--help'       display this help and exit\n"
           "    '-V', '--version'    output version information and exit\n"
           "    '-T', '--trace'      [[enable=]<pattern>][,events=<file>]"
           "[,file=<file>]\n"
           "                         specify tracing options\n"
           "\n"
           "Command syntax:\n", p);
    for (size_t i = 0; i < QB_ARRAY_SIZE(img_cmds); i++) {
        printf("  %s %s\n", img_cmds[i].name, img_cmds[i].syntax);
    }
    printf("\n"
"Command parameters:\n"
"  'filename' is a disk image filename\n"
"  'objectdef' is a user creatable object definition (not supported yet)\n"
"  'fmt' is the disk image format. It is guessed automatically in most cases\n"
"  'cache' is the cache mode used to write the output disk image, the valid\n"
"    options are: 'none', 'writeback' (default, except for convert), 'writethrough',\n"
"    'directsync' and 'unsafe' (default for convert)\n"
"  'size' is the disk image size in bytes. Optional suffixes\n"
"    'k' or 'K' (kilobyte, 1024), 'M' (megabyte, 1024k), 'G' (gigabyte, 1024M),\n"
"    'T' (terabyte, 1024G), 'P' (petabyte, 1024T) and 'E' (exabyte, 1024P)  are\n"
"    supported. 'b' is ignored.\n"
"  'options' is a comma separated list of format specific options in a\n"
"    name=value format. Use -o help for an overview of the options supported by\n"
"    the used format\n"
"  '-h' with or without a command shows this help and lists the supported formats\n"
"  '-q' use Quiet mode - do not print any output (except errors)\n"
"  '--output' takes the format in which the output must be done (human or json)\n"
"\n");
    img_block_init();
    bdrv_iterate_format(print_format, fmts, false);
    g_ptr_array_sort(fmts, cmp_str);
    printf("Supported formats:");
    for (guint i = 0; i < fmts->len; i++) {
        /* Drivers may be registered under one name twice; print once. */
        if (i == 0 || strcmp(fmts->pdata[i], fmts->pdata[i - 1])) {
            printf(" %s", (const char *)fmts->pdata[i]);
        }
    }
    printf("\n");
    exit(EXIT_SUCCESS);
}

int main(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "trace", required_argument, NULL, 'T' },
        { NULL, 0, NULL, 0 },
    };
    const char *cmdname;
    int c;

    qb_set_progname("qblock-img");
    signal(SIGPIPE, SIG_IGN);

    if (argc < 2) {
        img_error_exit("Not enough arguments");
    }

    /* Global options stop at the first non-option (the command). */
    while ((c = getopt_long(argc, argv, "+:hVT:", long_options,
                            NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'V':
            /* Our own name and version: qblock is not QEMU, so it does not
             * print QEMU's copyright line (qemu-img -V's second line). */
            print_version();
            return EXIT_SUCCESS;
        case 'T': {
            /* There are no trace events (yet): accept the option, and warn
             * about a plain event name as QEMU does for an unknown one. */
            g_auto(GStrv) parts = g_strsplit(optarg, ",", -1);
            for (int i = 0; parts[i]; i++) {
                const char *p = parts[i];
                if (g_str_has_prefix(p, "events=") ||
                    g_str_has_prefix(p, "file=")) {
                    continue;
                }
                if (g_str_has_prefix(p, "enable=")) {
                    p += strlen("enable=");
                }
                if (*p && !strchr(p, '*')) {
                    warn_report("trace event '%s' does not exist", p);
                }
            }
            break;
        }
        }
    }
    if (optind >= argc) {
        img_error_exit("Not enough arguments");
    }
    cmdname = argv[optind];

    /* Subcommands parse their own options from their name on. */
    argc -= optind;
    argv += optind;
    optind = 0;

    for (size_t i = 0; i < QB_ARRAY_SIZE(img_cmds); i++) {
        if (!strcmp(cmdname, img_cmds[i].name)) {
            return img_cmds[i].handler(argc, argv);
        }
    }
    img_error_exit("Command not found: %s", cmdname);
}
