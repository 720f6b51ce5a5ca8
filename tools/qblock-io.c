/*
 * qblock-io: the disk exerciser, command-line compatible with qemu-io 7.2.
 * This file is the program: option parsing, opening the one image it works
 * on (open/close/quit/reopen commands), running "-c" commands or the
 * interactive loop, and the exit status.  The I/O commands and all output
 * formatting live in io-cmds.c.
 *
 * Invariants:
 *  1. At most one image is open (qemu-io has one BlockBackend); "open" while
 *     one is open fails with qemu-io's text.
 *  2. The backend shares every permission with other users, as qemu-io's
 *     does, so two qblock-io processes may open one image read-write; image
 *     locks still stop it against a user that does not share (a VM).
 *  3. Exit status is 1 if option parsing, the initial open or any command
 *     failed, 0 otherwise.
 */
#include "nbd/tls.h"
#include "tools/io-cmds.h"
#include "block/block-int.h"
#include "block/options.h"
#include "block/reopen.h"

#include <getopt.h>

static BlockBackend *qbio_blk;
static const char *progname = "qblock-io";

/* ---------------------------------------------------------------------- */
/* Option strings                                                          */

/*
 * qemu-io's -o / --image-opts lists are QemuOpts with no implied key: a
 * bare "key" is the deprecated key=on.  Crumpled into nested objects.
 */
static json_t *parse_opts_string(const char *str, Error **errp)
{
    json_t *flat = qb_optlist_parse_flat(str, NULL);
    json_t *ret = qb_json_crumple(flat, errp);

    json_decref(flat);
    return ret;
}

/* ---------------------------------------------------------------------- */
/* Cache, aio and discard modes                                            */

/* -t MODE: cache flags and whether the write cache is off (writethrough). */
static bool parse_cache_mode(const char *mode, int *flags, bool *writethrough)
{
    *flags &= ~BDRV_O_CACHE_MASK;
    if (!strcmp(mode, "off") || !strcmp(mode, "none")) {
        *flags |= BDRV_O_NOCACHE;
        *writethrough = false;
    } else if (!strcmp(mode, "directsync")) {
        *flags |= BDRV_O_NOCACHE;
        *writethrough = true;
    } else if (!strcmp(mode, "writeback")) {
        *writethrough = false;
    } else if (!strcmp(mode, "unsafe")) {
        *flags |= BDRV_O_NO_FLUSH;
        *writethrough = false;
    } else if (!strcmp(mode, "writethrough")) {
        *writethrough = true;
    } else {
        return false;
    }
    return true;
}

static bool parse_aio_mode(const char *mode, int *flags)
{
    *flags &= ~(BDRV_O_NATIVE_AIO | BDRV_O_IO_URING);
    if (!strcmp(mode, "native")) {
        *flags |= BDRV_O_NATIVE_AIO;
    } else if (!strcmp(mode, "io_uring")) {
        *flags |= BDRV_O_IO_URING;
    } else if (strcmp(mode, "threads")) {
        return false;
    }
    return true;
}

static bool parse_discard_mode(const char *mode, int *flags)
{
    *flags &= ~BDRV_O_UNMAP;
    if (!strcmp(mode, "off") || !strcmp(mode, "ignore")) {
        /* nothing */
    } else if (!strcmp(mode, "on") || !strcmp(mode, "unmap")) {
        *flags |= BDRV_O_UNMAP;
    } else {
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------------- */
/* open / close / quit / reopen                                            */

/* Open name (or the options alone) as the one image; opts is consumed. */
static int openfile(const char *name, int flags, bool writethrough,
                    bool force_share, json_t *opts)
{
    Error *err = NULL;
    uint64_t perm, shared;

    if (qbio_blk) {
        error_report("file open already, try 'help close'");
        json_decref(opts);
        return -EBUSY;
    }
    if (force_share) {
        json_t *fs;
        if (!opts) {
            opts = json_object();
        }
        fs = json_object_get(opts, "force-share");
        if (fs && !(json_is_true(fs) ||
                    (json_is_string(fs) &&
                     !strcmp(json_string_value(fs), "on")))) {
            error_report("-U conflicts with image options");
            json_decref(opts);
            return -EINVAL;
        }
        if (flags & BDRV_O_RDWR) {
            error_report("can't open%s%s: force-share=on can only be used "
                         "with read-only images", name ? " device " : "",
                         name ? name : "");
            json_decref(opts);
            return -EINVAL;
        }
        json_object_set_new(opts, "force-share", json_true());
    }

    qbio_blk = blk_new_open(name, NULL, opts, flags, &err);
    if (!qbio_blk) {
        error_prepend(&err, "can't open%s%s: ", name ? " device " : "",
                      name ? name : "");
        error_report_err(err);
        return -EINVAL;
    }
    /* qemu-io lets everybody else do anything (invariant 2). */
    blk_get_perm(qbio_blk, &perm, &shared);
    if (shared != BLK_PERM_ALL) {
        blk_set_perm(qbio_blk, perm, BLK_PERM_ALL, NULL);
    }
    blk_set_enable_write_cache(qbio_blk, !writethrough);
    return 0;
}

static void open_help(void)
{
    printf(
"\n"
" opens a new file in the requested mode\n"
"\n"
" Example:\n"
" 'open -n -o driver=raw /tmp/data' - opens raw data file read-write, uncached\n"
"\n"
" Opens a file for subsequent use by all of the other qemu-io commands.\n"
" -r, -- open file read-only\n"
" -s, -- use snapshot file\n"
" -C, -- use copy-on-read\n"
" -n, -- disable host cache, short for -t none\n"
" -U, -- force shared permissions\n"
" -k, -- use kernel AIO implementation (Linux only, prefer use of -i)\n"
" -i, -- use AIO mode (threads, native or io_uring)\n"
" -t, -- use the given cache mode for the image\n"
" -d, -- use the given discard mode for the image\n"
" -o, -- options to be given to the block driver"
"\n");
}

static int open_f(BlockBackend *blk, int argc, char **argv);
static const QbioCmd open_cmd = {
    .name = "open", .altname = "o", .cfunc = open_f,
    .argmin = 1, .argmax = -1, .flags = QBIO_CMD_NOFILE_OK,
    .args = "[-rsCnkU] [-t cache] [-d discard] [-o options] [path]",
    .oneline = "open the file specified by path",
    .help = open_help,
};

static int open_f(BlockBackend *blk, int argc, char **argv)
{
    int flags = BDRV_O_UNMAP, c;
    bool readonly = false, writethrough = true, force_share = false;
    json_t *opts = NULL;
    Error *err = NULL;

    while ((c = getopt(argc, argv, "snCro:ki:t:d:U")) != -1) {
        switch (c) {
        case 's': flags |= BDRV_O_SNAPSHOT; break;
        case 'n':
            flags |= BDRV_O_NOCACHE;
            writethrough = false;
            break;
        case 'C': flags |= BDRV_O_COPY_ON_READ; break;
        case 'r': readonly = true; break;
        case 'k': flags |= BDRV_O_NATIVE_AIO; break;
        case 't':
            if (!parse_cache_mode(optarg, &flags, &writethrough)) {
                error_report("Invalid cache option: %s", optarg);
                goto fail;
            }
            break;
        case 'd':
            if (!parse_discard_mode(optarg, &flags)) {
                error_report("Invalid discard option: %s", optarg);
                goto fail;
            }
            break;
        case 'i':
            if (!parse_aio_mode(optarg, &flags)) {
                error_report("Invalid aio option: %s", optarg);
                goto fail;
            }
            break;
        case 'o': {
            json_t *o = parse_opts_string(optarg, &err);
            if (!o) {
                error_report_err(err);
                goto fail;
            }
            if (opts) {
                qb_json_merge(opts, o, true);
                json_decref(o);
            } else {
                opts = o;
            }
            break;
        }
        case 'U': force_share = true; break;
        default:
            qbio_command_usage(&open_cmd);
            goto fail;
        }
    }
    if (!readonly) {
        flags |= BDRV_O_RDWR;
    }
    if (optind == argc - 1) {
        return openfile(argv[optind], flags, writethrough, force_share, opts);
    } else if (optind == argc) {
        return openfile(NULL, flags, writethrough, force_share, opts);
    }
    qbio_command_usage(&open_cmd);
fail:
    json_decref(opts);
    return -EINVAL;
}

static void close_image(void)
{
    if (qbio_blk) {
        blk_drain_all();
        blk_unref(qbio_blk);
        qbio_blk = NULL;
    }
}

static int close_f(BlockBackend *blk, int argc, char **argv)
{
    close_image();
    return 0;
}

static const QbioCmd close_cmd = {
    .name = "close", .altname = "c", .cfunc = close_f,
    .argmin = 0, .argmax = 0,
    .oneline = "close the current open file",
};

static int quit_f(BlockBackend *blk, int argc, char **argv)
{
    qbio_quit_requested = true;
    return 0;
}

static const QbioCmd quit_cmd = {
    .name = "quit", .altname = "q", .cfunc = quit_f,
    .argmin = -1, .argmax = -1, .flags = QBIO_CMD_NOFILE_OK,
    .oneline = "exit the program",
};

static void reopen_help(void)
{
    printf(
"\n"
" Changes the open options of an already opened image\n"
"\n"
" Example:\n"
" 'reopen -o lazy-refcounts=on' - activates lazy refcount writeback on a qcow2 image\n"
"\n"
" -r, -- Reopen the image read-only\n"
" -w, -- Reopen the image read-write\n"
" -c, -- Change the cache mode to the given value\n"
" -o, -- Changes block driver options (cf. 'open' command)\n"
"\n");
}

static int reopen_f(BlockBackend *blk, int argc, char **argv);
static const QbioCmd reopen_cmd = {
    .name = "reopen", .cfunc = reopen_f, .argmin = 0, .argmax = -1,
    .args = "[(-r|-w)] [-c cache] [-o options]",
    .oneline = "reopens an image with new options",
    .help = reopen_help,
};

/* Reopen the root node with changed read-only / cache / driver options,
 * keeping every option not mentioned. */
static int reopen_f(BlockBackend *blk, int argc, char **argv)
{
    enum { RW_UNCHANGED, READ_ONLY, READ_WRITE } rw = RW_UNCHANGED;
    int flags = 0, c;
    bool writethrough = !blk_enable_write_cache(blk), cache_set = false;
    json_t *opts = NULL;
    Error *err = NULL;

    while ((c = getopt(argc, argv, "c:o:rw")) != -1) {
        switch (c) {
        case 'c':
            if (!parse_cache_mode(optarg, &flags, &writethrough)) {
                error_report("Invalid cache option: %s", optarg);
                goto fail;
            }
            cache_set = true;
            break;
        case 'o': {
            json_t *o = parse_opts_string(optarg, &err);
            if (!o) {
                error_report_err(err);
                goto fail;
            }
            if (opts) {
                qb_json_merge(opts, o, true);
                json_decref(o);
            } else {
                opts = o;
            }
            break;
        }
        case 'r':
        case 'w':
            if (rw != RW_UNCHANGED) {
                error_report("Only one -r/-w option may be given");
                goto fail;
            }
            rw = c == 'r' ? READ_ONLY : READ_WRITE;
            break;
        default:
            qbio_command_usage(&reopen_cmd);
            goto fail;
        }
    }
    if (optind != argc) {
        qbio_command_usage(&reopen_cmd);
        goto fail;
    }
    if (!opts) {
        opts = json_object();
    }
    if (rw != RW_UNCHANGED) {
        json_object_set_new(opts, "read-only", json_boolean(rw == READ_ONLY));
    }
    if (cache_set) {
        json_t *cache = json_object_get(opts, "cache");
        if (!json_is_object(cache)) {
            cache = json_object();
            json_object_set_new(opts, "cache", cache);
        }
        json_object_set_new(cache, "direct",
                            json_boolean(flags & BDRV_O_NOCACHE));
        json_object_set_new(cache, "no-flush",
                            json_boolean(flags & BDRV_O_NO_FLUSH));
    }
    if (rw == READ_ONLY) {
        /* As qemu-io: give up write permissions first, or the read-only
         * node could not support its own read-write user.  Writes taken
         * later ask for them again (and fail on a read-only node). */
        uint64_t perm, shared;
        blk_drain(blk);
        blk_get_perm(blk, &perm, &shared);
        blk_set_perm(blk, perm & ~(BLK_PERM_WRITE | BLK_PERM_WRITE_UNCHANGED),
                     shared, &error_abort);
    }
    if (bdrv_reopen(blk_bs(blk), opts, true, &err) < 0) {
        error_report_err(err);
        return -EINVAL;
    }
    blk_set_enable_write_cache(blk, !writethrough);
    return 0;

fail:
    json_decref(opts);
    return -EINVAL;
}

/* ---------------------------------------------------------------------- */
/* Program                                                                 */

static void usage(void)
{
    printf(
"Usage: %s [OPTIONS]... [-c STRING]... [file]\n"
"QEMU Disk exerciser\n"
"\n"
"  --object OBJECTDEF   define an object such as 'secret' for\n"
"                       passwords and/or encryption keys\n"
"  --image-opts         treat file as option string\n"
"  -c, --cmd STRING     execute command with its arguments\n"
"                       from the given string\n"
"  -f, --format FMT     specifies the block driver to use\n"
"  -r, --read-only      export read-only\n"
"  -s, --snapshot       use snapshot file\n"
"  -n, --nocache        disable host cache, short for -t none\n"
"  -C, --copy-on-read   enable copy-on-read\n"
"  -m, --misalign       misalign allocations for O_DIRECT\n"
"  -k, --native-aio     use kernel AIO implementation\n"
"                       (Linux only, prefer use of -i)\n"
"  -i, --aio=MODE       use AIO mode (threads, native or io_uring)\n"
"  -t, --cache=MODE     use the given cache mode for the image\n"
"  -d, --discard=MODE   use the given discard mode for the image\n"
"  -T, --trace [[enable=]<pattern>][,events=<file>][,file=<file>]\n"
"                       specify tracing options\n"
"                       see qemu-img(1) man page for full description\n"
"  -U, --force-share    force shared permissions\n"
"  -h, --help           display this help and exit\n"
"  -V, --version        output version information and exit\n"
"\n"
"See '%s -c help' for information on available commands.\n"
"\n"
"See <https://qemu.org/contribute/report-a-bug> for how to report bugs.\n"
"More information on the QEMU project at <https://qemu.org>.\n",
        progname, progname);
}

/*
 * --object: qblock has no object model; secrets are accepted (nothing in
 * qblock uses them yet) and every other type is refused with QEMU's text.
 */
static bool handle_object(const char *arg)
{
    Error *err = NULL;
    json_t *o = qb_keyval_parse(arg, "qom-type", &err);
    const char *type;
    bool ok = false;

    if (!o) {
        error_report_err(err);
        return false;
    }
    type = qb_opt_get_str(o, "qom-type");
    if (nbd_tls_is_object_type(type)) {
        /* TLS credentials for the nbd driver's tls-creds option. */
        ok = nbd_tls_object_add(o, &err);
        if (!ok) {
            error_report_err(err);
        }
    } else if (!type || strcmp(type, "secret")) {
        error_report("Parameter 'qom-type' does not accept value '%s'",
                     type ? type : "");
    } else if (!qb_opt_get_str(o, "id")) {
        error_report("Parameter 'id' is missing");
    } else {
        ok = true;
    }
    json_decref(o);
    return ok;
}

/* -T: there are no trace events; name each requested one as QEMU does. */
static void handle_trace(const char *arg)
{
    g_auto(GStrv) parts = g_strsplit(arg, ",", -1);
    int i;

    for (i = 0; parts[i]; i++) {
        const char *p = parts[i];
        if (g_str_has_prefix(p, "events=") || g_str_has_prefix(p, "file=")) {
            continue;
        }
        if (g_str_has_prefix(p, "enable=")) {
            p += strlen("enable=");
        }
        if (*p) {
            warn_report("trace event '%s' does not exist", p);
        }
    }
}

static int run_interactive(void)
{
    g_autofree char *prompt = g_strdup_printf("%s> ", progname);
    char *line = NULL;
    size_t cap = 0;
    int last_error = 0;

    while (!qbio_quit_requested) {
        ssize_t n;
        int ret;
        fputs(prompt, stdout);
        fflush(stdout);
        n = getline(&line, &cap, stdin);
        if (n < 0) {
            break;
        }
        ret = qbio_command(qbio_blk, line);
        if (ret < 0) {
            last_error = ret;
        }
        fflush(stdout);
    }
    free(line);
    return last_error;
}

enum {
    OPTION_OBJECT = 256,
    OPTION_IMAGE_OPTS = 257,
};

int main(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "cmd", required_argument, NULL, 'c' },
        { "format", required_argument, NULL, 'f' },
        { "read-only", no_argument, NULL, 'r' },
        { "snapshot", no_argument, NULL, 's' },
        { "nocache", no_argument, NULL, 'n' },
        { "copy-on-read", no_argument, NULL, 'C' },
        { "misalign", no_argument, NULL, 'm' },
        { "native-aio", no_argument, NULL, 'k' },
        { "discard", required_argument, NULL, 'd' },
        { "cache", required_argument, NULL, 't' },
        { "aio", required_argument, NULL, 'i' },
        { "trace", required_argument, NULL, 'T' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 }
    };
    int flags = BDRV_O_UNMAP, c, i, last_error = 0;
    bool readonly = false, writethrough = true, force_share = false;
    bool image_opts = false;
    const char *format = NULL;
    GPtrArray *cmds = g_ptr_array_new();

    qb_set_progname(argv[0]);
    progname = qb_get_progname();
    /* getopt prefixes its complaints with argv[0]: make it the bare name. */
    argv[0] = (char *)progname;

    bdrv_register_builtin_drivers();
    qbio_register_io_commands();
    qbio_add_command(&open_cmd);
    qbio_add_command(&close_cmd);
    qbio_add_command(&quit_cmd);
    qbio_add_command(&reopen_cmd);

    while ((c = getopt_long(argc, argv, "hVc:d:f:rsnCmki:t:T:U",
                            long_options, NULL)) != -1) {
        switch (c) {
        case 's': flags |= BDRV_O_SNAPSHOT; break;
        case 'n':
            flags |= BDRV_O_NOCACHE;
            writethrough = false;
            break;
        case 'C': flags |= BDRV_O_COPY_ON_READ; break;
        case 'd':
            if (!parse_discard_mode(optarg, &flags)) {
                error_report("Invalid discard option: %s", optarg);
                exit(1);
            }
            break;
        case 'f': format = optarg; break;
        case 'c': g_ptr_array_add(cmds, optarg); break;
        case 'r': readonly = true; break;
        case 'm': qbio_misalign = true; break;
        case 'k': flags |= BDRV_O_NATIVE_AIO; break;
        case 'i':
            if (!parse_aio_mode(optarg, &flags)) {
                error_report("Invalid aio option: %s", optarg);
                exit(1);
            }
            break;
        case 't':
            if (!parse_cache_mode(optarg, &flags, &writethrough)) {
                error_report("Invalid cache option: %s", optarg);
                exit(1);
            }
            break;
        case 'T': handle_trace(optarg); break;
        case 'V':
            printf("%s version " QBLOCK_VERSION " (qblock)\n"
                   "Compatible with qemu-io 7.2\n", progname);
            exit(0);
        case 'h':
            usage();
            exit(0);
        case 'U': force_share = true; break;
        case OPTION_OBJECT:
            if (!handle_object(optarg)) {
                exit(1);
            }
            break;
        case OPTION_IMAGE_OPTS: image_opts = true; break;
        default:
            usage();
            exit(1);
        }
    }

    if (argc - optind > 1) {
        usage();
        exit(1);
    }
    if (format && image_opts) {
        error_report("--image-opts and -f are mutually exclusive");
        exit(1);
    }
    if (!readonly) {
        flags |= BDRV_O_RDWR;
    }

    if (argc - optind == 1) {
        if (image_opts) {
            Error *err = NULL;
            json_t *opts = parse_opts_string(argv[optind], &err);
            if (!opts) {
                error_report_err(err);
                exit(1);
            }
            if (openfile(NULL, flags, writethrough, force_share, opts) < 0) {
                exit(1);
            }
        } else {
            json_t *opts = NULL;
            if (format) {
                opts = json_pack("{s:s}", "driver", format);
            }
            if (openfile(argv[optind], flags, writethrough, force_share,
                         opts) < 0) {
                exit(1);
            }
        }
    }

    if (cmds->len == 0) {
        last_error = run_interactive();
    } else {
        for (i = 0; i < (int)cmds->len && !qbio_quit_requested; i++) {
            int ret = qbio_command(qbio_blk, g_ptr_array_index(cmds, i));
            if (ret < 0) {
                last_error = ret;
            }
        }
    }
    g_ptr_array_free(cmds, TRUE);

    /* Let outstanding aio requests complete (and print) before closing. */
    close_image();
    bdrv_close_all();
    fflush(stdout);
    return last_error ? 1 : 0;
}
