/*
 * qblock-img create: make a new image with qemu-img 7.2's command line,
 * option checks, "Formatting ..." line and error texts.
 *
 * Creation options come from the format driver and its protocol driver
 * (BlockDriver.create_opts), merged as qemu-img merges them: format options
 * first, then protocol options not already listed.  For drivers that do not
 * (yet) publish create_opts, the tables below stand in.  Values are checked
 * by type here, before the "Formatting" line is printed, as QemuOpts does;
 * value ranges and enums are the driver's business.
 */
#include "tools/qblock-img.h"
#include "block/block-int.h"

#include <getopt.h>

/* Format options, then protocol options whose names are new. */
static GArray *merge_opts(BlockDriver *drv, BlockDriver *proto)
{
    GArray *list = g_array_new(FALSE, TRUE, sizeof(CreateOptDesc));
    const CreateOptDesc *srcs[2] = {
        img_create_opts_of(drv), img_create_opts_of(proto),
    };

    for (int s = 0; s < 2; s++) {
        for (const CreateOptDesc *d = srcs[s]; d && d->name; d++) {
            bool dup = false;
            for (guint i = 0; i < list->len; i++) {
                if (!strcmp(g_array_index(list, CreateOptDesc, i).name,
                            d->name)) {
                    dup = true;
                }
            }
            if (!dup) {
                g_array_append_val(list, *d);
            }
        }
    }
    return list;
}

static const char *opt_type_hint(CreateOptType type)
{
    switch (type) {
    case CREATE_OPT_BOOL:   return "bool (on/off)";
    case CREATE_OPT_NUMBER: return "num";
    case CREATE_OPT_SIZE:   return "size";
    default:                return "str";
    }
}

static gint cmp_desc(gconstpointer a, gconstpointer b)
{
    return strcmp(((const CreateOptDesc *)a)->name,
                  ((const CreateOptDesc *)b)->name);
}

/* The "-o help" listing, sorted by name as qemu-img prints it. */
static void print_opts_help(GArray *list)
{
    g_autoptr(GArray) sorted = g_array_copy(list);

    g_array_sort(sorted, cmp_desc);
    for (guint i = 0; i < sorted->len; i++) {
        const CreateOptDesc *d = &g_array_index(sorted, CreateOptDesc, i);
        g_autofree char *lhs = g_strdup_printf("%s=<%s>", d->name,
                                               opt_type_hint(d->type));
        printf("  %-22s", lhs);
        if (d->help) {
            printf(" - %s", d->help);
        }
        printf("\n");
    }
}

static const CreateOptDesc *find_desc(GArray *list, const char *name)
{
    for (guint i = 0; i < list->len; i++) {
        const CreateOptDesc *d = &g_array_index(list, CreateOptDesc, i);
        if (!strcmp(d->name, name)) {
            return d;
        }
    }
    return NULL;
}

/*
 * Type-check every user option against the list; sizes become integers
 * (what the driver receives and what the Formatting line prints).
 */
static bool check_opts(GArray *list, json_t *opts, Error **errp)
{
    const char *key;
    json_t *val;
    void *tmp;

    json_object_foreach_safe(opts, tmp, key, val) {
        const CreateOptDesc *d = find_desc(list, key);
        const char *s = json_string_value(val);
        if (!d) {
            error_setg(errp, "Invalid parameter '%s'", key);
            return false;
        }
        if (!s) {
            continue;       /* already typed (positional size) */
        }
        if (!img_check_create_opt(opts, key, s, d, errp)) {
            return false;
        }
    }
    return true;
}

static void print_formatting(const char *filename, const char *fmt,
                             GArray *list, json_t *opts)
{
    printf("Formatting '%s', fmt=%s", filename, fmt);
    for (guint i = 0; i < list->len; i++) {
        const CreateOptDesc *d = &g_array_index(list, CreateOptDesc, i);
        json_t *v = json_object_get(opts, d->name);

        if (json_is_integer(v)) {
            printf(" %s=%" JSON_INTEGER_FORMAT, d->name, json_integer_value(v));
        } else if (json_is_string(v) || d->def_value_str) {
            const char *val = v ? json_string_value(v) : d->def_value_str;
            /* Strings are printed in option-list syntax: ',' doubled. */
            g_auto(GStrv) parts = d->type == CREATE_OPT_STRING ?
                g_strsplit(val, ",", -1) : NULL;
            g_autofree char *esc = parts ? g_strjoinv(",,", parts) : NULL;
            printf(" %s=%s", d->name, esc ? esc : val);
        }
    }
    printf("\n");
    fflush(stdout);
}

typedef struct CreateCo {
    BlockDriver *drv;
    const char *filename;
    json_t *opts;
    Error *err;
    int ret;
    bool done;
} CreateCo;

static void coroutine_fn create_entry(void *opaque)
{
    CreateCo *c = opaque;

    c->ret = c->drv->bdrv_co_create_opts(c->drv, c->filename, c->opts,
                                         &c->err);
    c->done = true;
    aio_notify(qb_get_aio_context());
}

/* Runs the driver's creation in a coroutine and waits for it. */
static int run_create(BlockDriver *drv, const char *filename, json_t *opts,
                      Error **errp)
{
    CreateCo c = { .drv = drv, .filename = filename, .opts = opts };
    Coroutine *co = coroutine_create(create_entry, &c);

    coroutine_enter(co);
    AIO_WAIT_WHILE(qb_get_aio_context(), !c.done);
    if (c.ret < 0) {
        if (c.err) {
            error_propagate(errp, c.err);
        } else {
            error_setg_errno(errp, -c.ret, "Could not create image");
        }
    }
    return c.ret;
}

/*
 * Without a size, qemu-img takes the backing image's virtual size; the
 * backing name is relative to the new image's directory.  The backing
 * file's own backing chain is not opened.
 */
static int64_t backing_image_size(const char *filename, const char *base,
                                  const char *base_fmt, Error **errp)
{
    g_autofree char *dir = g_path_get_dirname(filename);
    g_autofree char *path = g_path_is_absolute(base) ?
        g_strdup(base) : g_build_filename(dir, base, NULL);
    json_t *options = json_object();
    BlockBackend *blk;
    int64_t size;

    if (!strcmp(dir, ".") && !g_path_is_absolute(base)) {
        g_free(path);
        path = g_strdup(base);
    }
    if (base_fmt) {
        json_object_set_new(options, "driver", json_string(base_fmt));
    }
    blk = blk_new_open(path, NULL, options, BDRV_O_NO_BACKING, errp);
    if (!blk) {
        error_append_hint(errp, "Could not open backing image.\n");
        return -1;
    }
    size = blk_getlength(blk);
    blk_unref(blk);
    if (size < 0) {
        error_setg_errno(errp, -size, "Could not get size of backing "
                         "image");
        return -1;
    }
    return size;
}

int img_create(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = "raw", *base_filename = NULL, *base_fmt = NULL;
    const char *filename;
    g_autofree char *options = NULL;
    g_autoptr(GArray) list = NULL;
    int64_t img_size = -1;
    bool quiet = false;
    Error *err = NULL;
    BlockDriver *drv, *proto, *create_drv;
    json_t *opts = NULL;
    int c, ret;

    while ((c = getopt_long(argc, argv, ":F:b:f:ho:qu", long_options,
                            NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'F':
            base_fmt = optarg;
            break;
        case 'b':
            base_filename = optarg;
            break;
        case 'f':
            fmt = optarg;
            break;
        case 'o':
            if (!img_valid_option_list(optarg)) {
                error_report("Invalid option list: %s", optarg);
                return EXIT_FAILURE;
            }
            options = img_add_options(options, optarg);
            break;
        case 'q':
            quiet = true;
            break;
        case 'u':
            break;
        case OPTION_OBJECT:
            error_report("Parameter 'qom-type' does not accept value '%s'",
                         optarg);
            return EXIT_FAILURE;
        }
    }

    /* The filename may be omitted with -o help. */
    if (optind >= argc && !img_options_want_help(options)) {
        img_error_exit("Expecting image file name");
    }
    filename = optind < argc ? argv[optind++] : NULL;
    if (optind < argc) {
        img_size = img_cvtnum_full("image size", argv[optind++], 0,
                                   INT64_MAX);
        if (img_size < 0) {
            return EXIT_FAILURE;
        }
    }
    if (optind != argc) {
        img_error_exit("Unexpected argument: %s", argv[optind]);
    }

    img_block_init();
    drv = bdrv_find_format(fmt);
    if (!drv) {
        if (img_options_want_help(options)) {
            error_report("Unknown file format '%s'", fmt);
        } else {
            error_report("%s: Unknown file format '%s'", filename, fmt);
        }
        return EXIT_FAILURE;
    }
    proto = drv->protocol_name ? NULL : bdrv_find_format("file");

    if (img_options_want_help(options)) {
        if (!filename) {
            printf("Supported %s options:\n", fmt);
            list = merge_opts(drv, NULL);
            print_opts_help(list);
            if (!drv->protocol_name) {
                printf("\nThe protocol level may support further options.\n"
                       "Specify the target filename to include those "
                       "options.\n");
            }
        } else {
            printf("Supported options:\n");
            list = merge_opts(drv, proto);
            print_opts_help(list);
        }
        return EXIT_SUCCESS;
    }

    create_drv = drv;
    if (!drv->bdrv_co_create_opts && !strcmp(drv->format_name, "raw") &&
        proto) {
        /* A raw image is its protocol's file: let the protocol create it. */
        create_drv = proto;
    }
    if (!create_drv->bdrv_co_create_opts) {
        error_setg(&err, "Format driver '%s' does not support image creation",
                   fmt);
        goto fail;
    }

    list = merge_opts(drv, proto);
    opts = json_object();
    if (options) {
        json_decref(opts);
        opts = img_parse_optlist(options, &err);
        if (!opts) {
            error_report_err(err);
            return EXIT_FAILURE;
        }
    }
    if (!check_opts(list, opts, &err)) {
        goto fail;
    }
    if (img_size >= 0) {
        if (json_object_get(opts, "size")) {
            error_setg(&err, "The image size must be specified only once");
            goto fail;
        }
        json_object_set_new(opts, "size", json_integer(img_size));
    }
    if (base_filename) {
        if (!drv->supports_backing) {
            error_setg(&err, "Backing file not supported for file format "
                       "'%s'", fmt);
            goto fail;
        }
        json_object_set_new(opts, "backing_file", json_string(base_filename));
        if (base_fmt) {
            json_object_set_new(opts, "backing_fmt", json_string(base_fmt));
        }
    }
    if (!json_object_get(opts, "size") && base_filename) {
        int64_t bsize = backing_image_size(filename, base_filename, base_fmt,
                                           &err);

        if (bsize < 0) {
            goto fail;
        }
        json_object_set_new(opts, "size", json_integer(bsize));
    }
    if (!json_object_get(opts, "size")) {
        error_setg(&err, "Image creation needs a size parameter");
        goto fail;
    }
    if (json_integer_value(json_object_get(opts, "size")) < 0) {
        error_setg(&err, "The image size is too large for file format '%s'",
                   fmt);
        goto fail;
    }

    if (!quiet) {
        print_formatting(filename, fmt, list, opts);
    }
    ret = run_create(create_drv, filename, opts, &err);
    if (ret == -EFBIG) {
        /* As qemu-img: a clearer text than the driver's, with a hint when
         * the format has clusters. */
        const CreateOptDesc *cs = find_desc(list, "cluster_size");
        bool hint = json_object_get(opts, "cluster_size") ||
                    (cs && cs->def_value_str);
        error_free(err);
        err = NULL;
        error_setg(&err, "The image size is too large for file format '%s'%s",
                   fmt, hint ? " (try using a larger cluster size)" : "");
    }
    if (ret < 0) {
        goto fail;
    }
    json_decref(opts);
    return EXIT_SUCCESS;

fail:
    error_prepend(&err, "%s: ", filename);
    error_report_err(err);
    json_decref(opts);
    return EXIT_FAILURE;
}
