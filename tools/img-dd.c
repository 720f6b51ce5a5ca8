/*
 * qblock-img dd: copy (part of) an image into a new image, with dd(1)
 * style operands (if= of= bs= count= skip=), as qemu-img 7.2 does.
 *
 * The output image is created with the size of what will be copied and
 * written block by block (every block is written, zeroes included); a skip
 * beyond the input's end gives an empty output and an error message, as
 * dd(1) does.
 */
#include "tools/img-util.h"

#include <getopt.h>

enum {
    DD_IF = 1 << 0,
    DD_OF = 1 << 1,
    DD_BS = 1 << 2,
    DD_COUNT = 1 << 3,
    DD_SKIP = 1 << 4,
};

typedef struct DdArgs {
    unsigned flags;
    const char *in_filename, *out_filename;
    int64_t bsz;        /* bs=: input and output block size */
    int64_t count;      /* count=: blocks to copy */
    int64_t skip;       /* skip=: input blocks to skip */
} DdArgs;

/* One "name=value" operand; 0 or -1 (message printed). */
static int dd_operand(DdArgs *dd, const char *arg)
{
    const char *eq = strchr(arg, '=');
    g_autofree char *name = NULL;
    const char *val;

    if (!eq) {
        error_report("unrecognized operand %s", arg);
        return -1;
    }
    name = g_strndup(arg, eq - arg);
    val = eq + 1;
    if (!strcmp(name, "bs")) {
        dd->bsz = img_cvtnum_full("bs", val, 1, INT_MAX);
        if (dd->bsz < 0) {
            return -1;
        }
        dd->flags |= DD_BS;
    } else if (!strcmp(name, "count")) {
        dd->count = img_cvtnum_full("count", val, 0, INT64_MAX);
        if (dd->count < 0) {
            return -1;
        }
        dd->flags |= DD_COUNT;
    } else if (!strcmp(name, "if")) {
        dd->in_filename = val;
        dd->flags |= DD_IF;
    } else if (!strcmp(name, "of")) {
        dd->out_filename = val;
        dd->flags |= DD_OF;
    } else if (!strcmp(name, "skip")) {
        dd->skip = img_cvtnum_full("skip", val, 0, INT64_MAX);
        if (dd->skip < 0) {
            return -1;
        }
        dd->flags |= DD_SKIP;
    } else {
        error_report("unrecognized operand %s", name);
        return -1;
    }
    return 0;
}

int img_dd(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    DdArgs dd = { .bsz = 512 };
    const char *fmt = NULL, *out_fmt = "raw";
    bool image_opts = false, force_share = false, skip_past_end;
    BlockBackend *blk1 = NULL, *blk2 = NULL;
    BlockDriver *drv;
    int64_t size, in_pos, out_pos;
    g_autofree uint8_t *buf = NULL;
    json_t *opts = NULL;
    Error *err = NULL;
    int c, ret = -1;

    while ((c = getopt_long(argc, argv, ":hf:O:U", long_options,
                            NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'O':
            out_fmt = optarg;
            break;
        case 'f':
            fmt = optarg;
            break;
        case 'U':
            force_share = true;
            break;
        case OPTION_OBJECT:
            error_report("--object is not supported");
            return 1;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        }
    }

    for (int i = optind; i < argc; i++) {
        if (dd_operand(&dd, argv[i]) < 0) {
            return 1;
        }
    }
    if (!(dd.flags & DD_IF) || !(dd.flags & DD_OF)) {
        error_report("Must specify both input and output files");
        return 1;
    }

    blk1 = img_open(image_opts, dd.in_filename, fmt, 0, false, false,
                    force_share);
    if (!blk1) {
        return 1;
    }

    drv = bdrv_find_format(out_fmt);
    if (!drv) {
        error_report("Unknown file format");
        goto out;
    }
    if (!img_util_can_create(drv)) {
        error_report("Format driver '%s' does not support image creation",
                     drv->format_name);
        goto out;
    }

    size = blk_getlength(blk1);
    if (size < 0) {
        error_report("Failed to get size for '%s'", dd.in_filename);
        goto out;
    }
    if ((dd.flags & DD_COUNT) && dd.count <= INT64_MAX / dd.bsz &&
        dd.count * dd.bsz < size) {
        size = dd.count * dd.bsz;
    }
    /* An overflowing skip lies beyond the input's end too. */
    skip_past_end = (dd.flags & DD_SKIP) &&
        (dd.skip > INT64_MAX / dd.bsz || size < dd.bsz * dd.skip);

    opts = json_object();
    json_object_set_new(opts, "size",
                        json_integer(skip_past_end ? 0
                                                   : size - dd.bsz * dd.skip));
    if (img_util_create(drv, dd.out_filename, opts, &err) < 0) {
        error_prepend(&err, "%s: error while creating output image: ",
                      dd.out_filename);
        error_report_err(err);
        goto out;
    }

    blk2 = img_open(false, dd.out_filename, out_fmt, BDRV_O_RDWR, false,
                    false, false);
    if (!blk2) {
        goto out;
    }

    if (skip_past_end) {
        /* As dd(1): complain, and leave an empty output image. */
        error_report("%s: cannot skip to specified offset", dd.in_filename);
        in_pos = size;
    } else {
        in_pos = dd.skip * dd.bsz;
    }

    buf = g_malloc(dd.bsz);
    ret = 0;
    for (out_pos = 0; in_pos < size; ) {
        int64_t bytes = MIN(dd.bsz, size - in_pos);

        ret = blk_pread(blk1, in_pos, bytes, buf, 0);
        if (ret < 0) {
            error_report("error while reading from input image file: %s",
                         strerror(-ret));
            goto out;
        }
        in_pos += bytes;
        ret = blk_pwrite(blk2, out_pos, bytes, buf, 0);
        if (ret < 0) {
            error_report("error while writing to output image file: %s",
                         strerror(-ret));
            goto out;
        }
        out_pos += bytes;
    }

out:
    json_decref(opts);
    if (blk2) {
        blk_unref(blk2);
    }
    blk_unref(blk1);
    return ret ? 1 : 0;
}
