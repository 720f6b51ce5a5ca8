/*
 * qblock-img amend: change format options of an existing image (qcow2:
 * compat level, lazy refcounts, refcount width, size, backing file, ...)
 * through the driver's bdrv_amend_options, as qemu-img 7.2 does.
 *
 * Options are checked against the driver's amend_opts first; an option
 * that only exists at creation time gets qemu-img's hint.  "-o help" lists
 * the amend options of the given (-f) or detected format.
 */
#include "tools/img-util.h"

#include <getopt.h>

static gint cmp_desc(gconstpointer a, gconstpointer b)
{
    return strcmp(((const CreateOptDesc *)a)->name,
                  ((const CreateOptDesc *)b)->name);
}

static const char *type_hint(CreateOptType type)
{
    switch (type) {
    case CREATE_OPT_BOOL:   return "bool (on/off)";
    case CREATE_OPT_NUMBER: return "num";
    case CREATE_OPT_SIZE:   return "size";
    default:                return "str";
    }
}

static int print_amend_option_help(const char *format)
{
    BlockDriver *drv;
    g_autoptr(GArray) list = g_array_new(FALSE, TRUE, sizeof(CreateOptDesc));

    img_block_init();
    drv = bdrv_find_format(format);
    if (!drv) {
        error_report("Unknown file format '%s'", format);
        return 1;
    }
    if (!drv->bdrv_amend_options) {
        error_report("Format driver '%s' does not support option amendment",
                     format);
        return 1;
    }
    for (const CreateOptDesc *d = drv->amend_opts; d && d->name; d++) {
        g_array_append_val(list, *d);
    }
    g_array_sort(list, cmp_desc);
    printf("Amend options for '%s':\n", format);
    for (guint i = 0; i < list->len; i++) {
        const CreateOptDesc *d = &g_array_index(list, CreateOptDesc, i);
        g_autofree char *lhs = g_strdup_printf("%s=<%s>", d->name,
                                               type_hint(d->type));
        printf("  %-22s", lhs);
        if (d->help) {
            printf(" - %s", d->help);
        }
        printf("\n");
    }
    return 0;
}

static void amend_status_cb(BlockDriverState *bs, int64_t offset,
                            int64_t total_work, void *opaque)
{
    img_progress_print(100.f * offset / total_work, 0);
}

int img_amend(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force", no_argument, NULL, OPTION_FORCE },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL, *filename, *cache = "writeback";
    g_autofree char *options = NULL;
    bool quiet = false, progress = false, image_opts = false, force = false;
    bool writethrough = false;
    BlockBackend *blk = NULL;
    BlockDriverState *bs;
    json_t *opts = NULL;
    Error *err = NULL;
    int flags, c, ret = 0;

    while ((c = getopt_long(argc, argv, ":ho:f:t:pq", long_options,
                            NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'o':
            if (!img_valid_option_list(optarg)) {
                error_report("Invalid option list: %s", optarg);
                return 1;
            }
            options = img_add_options(options, optarg);
            break;
        case 'f':
            fmt = optarg;
            break;
        case 't':
            cache = optarg;
            break;
        case 'p':
            progress = true;
            break;
        case 'q':
            quiet = true;
            break;
        case OPTION_OBJECT:
            error_report("--object is not supported");
            return 1;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPTION_FORCE:
            force = true;
            break;
        }
    }
    if (!options) {
        img_error_exit("Must specify options (-o)");
    }
    if (quiet) {
        progress = false;
    }
    img_progress_init(progress, 1.0);

    filename = optind == argc - 1 ? argv[argc - 1] : NULL;
    if (fmt && img_options_want_help(options)) {
        /* Format given: help needs no image. */
        ret = print_amend_option_help(fmt);
        goto out;
    }
    if (optind != argc - 1) {
        error_report("Expecting one image file name");
        ret = -1;
        goto out;
    }

    flags = BDRV_O_RDWR;
    if (img_parse_cache_mode(cache, &flags, &writethrough) < 0) {
        error_report("Invalid cache option: %s", cache);
        ret = -1;
        goto out;
    }
    blk = img_open(image_opts, filename, fmt, flags, writethrough, quiet,
                   false);
    if (!blk) {
        ret = -1;
        goto out;
    }
    bs = blk_bs(blk);
    fmt = bs->drv->format_name;

    if (img_options_want_help(options)) {
        ret = print_amend_option_help(fmt);
        goto out;
    }
    if (!bs->drv->bdrv_amend_options) {
        error_report("Format driver '%s' does not support option amendment",
                     fmt);
        ret = -1;
        goto out;
    }

    if (bs->drv->amend_opts) {
        /* Check names and types first, for qemu-img's messages. */
        const CreateOptDesc *amend_list[1] = { bs->drv->amend_opts };
        json_t *checked = img_util_parse_opts(amend_list, 1, options, &err);

        if (!checked) {
            /* Name a creation-only option as such. */
            const CreateOptDesc *both[2] = {
                bs->drv->amend_opts, bs->drv->create_opts,
            };
            json_t *as_create = img_util_parse_opts(both, 2, options, NULL);

            if (as_create) {
                error_append_hint(&err, "This option is only supported for "
                                  "image creation\n");
                json_decref(as_create);
            }
            error_report_err(err);
            ret = -1;
            goto out;
        }
        json_decref(checked);
    }
    /* The driver gets the option strings as given. */
    opts = img_parse_optlist(options, &err);
    if (!opts) {
        error_report_err(err);
        ret = -1;
        goto out;
    }

    /* In case the driver does not report progress itself. */
    img_progress_print(0.f, 0);
    ret = bs->drv->bdrv_amend_options(bs, opts, amend_status_cb, NULL, force,
                                      &err);
    img_progress_print(100.f, 0);
    if (ret < 0) {
        error_report_err(err);
    }

out:
    img_progress_end();
    json_decref(opts);
    if (blk) {
        blk_unref(blk);
    }
    return ret ? 1 : 0;
}
