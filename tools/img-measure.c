/*
 * qblock-img measure: how much host space an image of a given format would
 * take, for a size (--size) or for the data of an existing image, as
 * qemu-img 7.2 reports it ("required size" / "fully allocated size").
 *
 * The numbers come from the output format's driver (bdrv_measure).  raw
 * needs no driver knowledge: its file is exactly the virtual size (rounded
 * up to a sector), allocated or not, so it is computed here.
 */
#include "tools/img-util.h"
#include "util/json-qemu.h"

#include <getopt.h>
#include "block/snapshot.h"

enum {
    OPTION_SIZE = 1000,
};

static int raw_measure(json_t *opts, BlockDriverState *in_bs,
                       BlockMeasureInfo *info, Error **errp)
{
    int64_t required;

    if (in_bs) {
        required = bdrv_getlength(in_bs);
        if (required < 0) {
            error_setg_errno(errp, -required, "Unable to get image size");
            return required;
        }
    } else {
        required = QB_ALIGN_UP(json_integer_value(json_object_get(opts,
                                                                  "size")),
                               (json_int_t)BDRV_SECTOR_SIZE);
    }
    /* Unallocated sectors count too: a raw file has no holes by format. */
    *info = (BlockMeasureInfo) {
        .required = required,
        .fully_allocated = required,
    };
    return 0;
}

int img_measure(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "output", required_argument, NULL, OPTION_OUTPUT },
        { "size", required_argument, NULL, OPTION_SIZE },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *filename = NULL, *fmt = NULL, *out_fmt = "raw";
    g_autofree char *sn_id = NULL, *sn_name = NULL;
    bool sn_by_opts = false;
    g_autofree char *options = NULL;
    bool force_share = false, image_opts = false;
    ImgOutputFormat ofmt = IMG_OFORMAT_HUMAN;
    int64_t img_size = -1;
    BlockBackend *in_blk = NULL;
    BlockMeasureInfo info;
    BlockDriver *drv;
    json_t *opts = NULL;
    Error *err = NULL;
    int c, ret = 1;

    /* Like qemu-img, getopt reports bad options itself here, then the
     * help text is shown. */
    while ((c = getopt_long(argc, argv, "hf:O:o:l:U", long_options,
                            NULL)) != -1) {
        switch (c) {
        case '?':
        case 'h':
            img_help();
        case 'f':
            fmt = optarg;
            break;
        case 'O':
            out_fmt = optarg;
            break;
        case 'o':
            if (!img_valid_option_list(optarg)) {
                error_report("Invalid option list: %s", optarg);
                goto out;
            }
            options = img_add_options(options, optarg);
            break;
        case 'l': {
            int r;

            g_free(sn_id);
            g_free(sn_name);
            r = img_parse_snapshot_param(optarg, &sn_id, &sn_name);
            if (r < 0) {
                goto out;
            }
            sn_by_opts = r;
            break;
        }
        case 'U':
            force_share = true;
            break;
        case OPTION_OBJECT:
            error_report("--object is not supported");
            goto out;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPTION_OUTPUT:
            if (!strcmp(optarg, "json")) {
                ofmt = IMG_OFORMAT_JSON;
            } else if (!strcmp(optarg, "human")) {
                ofmt = IMG_OFORMAT_HUMAN;
            } else {
                error_report("--output must be used with human or json as "
                             "argument.");
                goto out;
            }
            break;
        case OPTION_SIZE:
            img_size = img_cvtnum_full("image size", optarg, 0, INT64_MAX);
            if (img_size < 0) {
                goto out;
            }
            break;
        }
    }

    if (argc - optind > 1) {
        error_report("At most one filename argument is allowed.");
        goto out;
    } else if (argc - optind == 1) {
        filename = argv[optind];
    }
    if (!filename && (image_opts || fmt || sn_id || sn_name)) {
        error_report("--image-opts, -f, and -l require a filename argument.");
        goto out;
    }
    if (filename && img_size != -1) {
        error_report("--size N cannot be used together with a filename.");
        goto out;
    }
    if (!filename && img_size == -1) {
        error_report("Either --size N or one filename must be specified.");
        goto out;
    }

    if (filename) {
        in_blk = img_open(image_opts, filename, fmt, 0, false, false,
                          force_share);
        if (!in_blk) {
            goto out;
        }
        if ((sn_id || sn_name) &&
            img_load_snapshot(blk_bs(in_blk), sn_by_opts, sn_id, sn_name) < 0) {
            goto out;
        }
    }

    img_block_init();
    drv = bdrv_find_format(out_fmt);
    if (!drv) {
        error_report("Unknown file format '%s'", out_fmt);
        goto out;
    }
    if (!img_util_can_create(drv)) {
        error_report("Format driver '%s' does not support image creation",
                     drv->format_name);
        goto out;
    }
    opts = img_util_create_opts(drv, options, &err);
    if (!opts) {
        error_report_err(err);
        error_report("Invalid options for file format '%s'", out_fmt);
        goto out;
    }
    if (img_size != -1) {
        json_object_set_new(opts, "size", json_integer(img_size));
    }

    memset(&info, 0, sizeof(info));
    if (drv->bdrv_measure) {
        ret = drv->bdrv_measure(opts, in_blk ? blk_bs(in_blk) : NULL, &info,
                                &err);
    } else if (!strcmp(drv->format_name, "raw")) {
        ret = raw_measure(opts, in_blk ? blk_bs(in_blk) : NULL, &info, &err);
    } else {
        error_setg(&err, "Block driver '%s' does not support size "
                   "measurement", drv->format_name);
        ret = -ENOTSUP;
    }
    if (ret < 0) {
        error_report_err(err);
        ret = 1;
        goto out;
    }

    if (ofmt == IMG_OFORMAT_HUMAN) {
        printf("required size: %" PRIu64 "\n", info.required);
        printf("fully allocated size: %" PRIu64 "\n", info.fully_allocated);
        if (info.has_bitmaps) {
            printf("bitmaps size: %" PRIu64 "\n", info.bitmaps);
        }
    } else {
        json_t *o = json_object();
        g_autofree char *s = NULL;

        /* QAPI BlockMeasureInfo member order. */
        json_object_set_new(o, "required", json_integer(info.required));
        json_object_set_new(o, "fully-allocated",
                            json_integer(info.fully_allocated));
        if (info.has_bitmaps) {
            json_object_set_new(o, "bitmaps", json_integer(info.bitmaps));
        }
        s = qemu_json_to_pretty(o);
        printf("%s\n", s);
        json_decref(o);
    }
    ret = 0;

out:
    json_decref(opts);
    if (in_blk) {
        blk_unref(in_blk);
    }
    return ret;
}
