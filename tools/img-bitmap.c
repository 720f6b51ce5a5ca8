/*
 * qblock-img bitmap: add, remove, clear, enable, disable and merge
 * persistent dirty bitmaps of an image, with qemu-img 7.2's syntax, texts
 * and exit codes:
 *
 *   bitmap (--merge SOURCE | --add | --remove | --clear | --enable |
 *           --disable)... [-b source_file [-F source_fmt]] [-g granularity]
 *          [--object objectdef] [--image-opts | -f fmt] filename bitmap
 *
 * Operations run in command-line order through the same code as the QMP
 * block-dirty-bitmap-* commands, on the image opened read-write; the first
 * failure stops the run (exit 1) but what already succeeded is stored when
 * the image is closed, as qemu-img does.
 *
 * qblock extension: --repair-inconsistent marks an inconsistent bitmap
 * (in_use on disk after a crash) entirely dirty and usable again, so the
 * next incremental backup made from it is a full one (docs/bitmaps.md).
 */
#include "tools/qblock-img.h"
#include "block/block-int.h"
#include "block/dirty-bitmap.h"
#include "block/qmp/qmp-internal.h"   /* qmp_block_dirty_bitmap_* */

#include <getopt.h>

enum {
    OPTION_ADD = 400,
    OPTION_REMOVE,
    OPTION_CLEAR,
    OPTION_ENABLE,
    OPTION_DISABLE,
    OPTION_MERGE,
    OPTION_REPAIR,
};

typedef enum BitmapAct {
    BITMAP_ADD,
    BITMAP_REMOVE,
    BITMAP_CLEAR,
    BITMAP_ENABLE,
    BITMAP_DISABLE,
    BITMAP_MERGE,
    BITMAP_REPAIR,
} BitmapAct;

static const char *const act_names[] = {
    [BITMAP_ADD] = "add", [BITMAP_REMOVE] = "remove",
    [BITMAP_CLEAR] = "clear", [BITMAP_ENABLE] = "enable",
    [BITMAP_DISABLE] = "disable", [BITMAP_MERGE] = "merge",
    [BITMAP_REPAIR] = "repair-inconsistent",
};

typedef struct ImgBitmapAction {
    BitmapAct act;
    const char *src;        /* --merge */
} ImgBitmapAction;

/* Was bitmap NAME recording when it was last stored, i.e. does its
 * on-disk entry carry the "auto" flag?  (Read as qemu-img info does.) */
static bool stored_enabled(BlockDriverState *bs, const char *name)
{
    json_t *info = bdrv_get_specific_info(bs, NULL);
    json_t *data = info ? json_object_get(info, "data") : NULL;
    json_t *list = json_object_get(data ? data : info, "bitmaps");
    json_t *bm, *flag;
    size_t i, j;
    bool enabled = false;

    json_array_foreach(list, i, bm) {
        const char *n = json_string_value(json_object_get(bm, "name"));
        if (!n || strcmp(n, name) != 0) {
            continue;
        }
        json_array_foreach(json_object_get(bm, "flags"), j, flag) {
            if (g_strcmp0(json_string_value(flag), "auto") == 0) {
                enabled = true;
            }
        }
    }
    json_decref(info);
    return enabled;
}

/*
 * The qblock extension: an inconsistent bitmap becomes usable, all dirty.
 * Loading it disabled it (inconsistent bitmaps never record); it records
 * again if its on-disk entry says it did, or later writes would be missed
 * by the next incremental backup (regression test: iotest 364).
 */
void img_repair_inconsistent_bitmap(BlockDriverState *bs, const char *name,
                                    Error **errp)
{
    BdrvDirtyBitmap *bm = bdrv_find_dirty_bitmap(bs, name);

    if (!bm) {
        error_setg(errp, "Dirty bitmap '%s' not found", name);
        return;
    }
    if (!bdrv_dirty_bitmap_inconsistent(bm)) {
        error_setg(errp, "Bitmap '%s' is not inconsistent", name);
        return;
    }
    if (bdrv_dirty_bitmap_check(bm, BDRV_BITMAP_BUSY | BDRV_BITMAP_RO,
                                errp) < 0) {
        return;
    }
    bdrv_dirty_bitmap_repair_inconsistent(bm);
    if (stored_enabled(bs, name)) {
        bdrv_enable_dirty_bitmap(bm);
    }
}

static void merge(BlockDriverState *bs, const char *dst,
                  BlockDriverState *src_bs, const char *src, Error **errp)
{
    BlockDirtyBitmap ext = { .node = src_bs->node_name, .name = (char *)src };
    BlockDirtyBitmapOrStr one = { .type = QTYPE_QDICT, .u.external = &ext };
    BlockDirtyBitmapOrStrList list = { .next = NULL, .value = &one };

    qmp_block_dirty_bitmap_merge(bs->node_name, dst, &list, errp);
}

int img_bitmap(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "add", no_argument, NULL, OPTION_ADD },
        { "remove", no_argument, NULL, OPTION_REMOVE },
        { "clear", no_argument, NULL, OPTION_CLEAR },
        { "enable", no_argument, NULL, OPTION_ENABLE },
        { "disable", no_argument, NULL, OPTION_DISABLE },
        { "merge", required_argument, NULL, OPTION_MERGE },
        { "repair-inconsistent", no_argument, NULL, OPTION_REPAIR },
        { "granularity", required_argument, NULL, 'g' },
        { "source-file", required_argument, NULL, 'b' },
        { "source-format", required_argument, NULL, 'F' },
        { NULL, 0, NULL, 0 },
    };
    g_autoptr(GArray) actions = g_array_new(false, false,
                                            sizeof(ImgBitmapAction));
    const char *fmt = NULL, *src_fmt = NULL, *src_filename = NULL;
    const char *filename, *bitmap;
    bool image_opts = false, add = false, merge_seen = false;
    int64_t granularity = 0;
    BlockBackend *blk = NULL, *src = NULL;
    BlockDriverState *bs, *src_bs;
    int c, ret = 1;

    while ((c = getopt_long(argc, argv, ":b:f:F:g:h", long_options,
                            NULL)) != -1) {
        ImgBitmapAction a = { 0 };
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'b':
            src_filename = optarg;
            break;
        case 'f':
            fmt = optarg;
            break;
        case 'F':
            src_fmt = optarg;
            break;
        case 'g':
            granularity = img_cvtnum_full("granularity", optarg, 0,
                                          INT64_MAX);
            if (granularity < 0) {
                return 1;
            }
            break;
        case OPTION_ADD:
            a.act = BITMAP_ADD;
            add = true;
            g_array_append_val(actions, a);
            break;
        case OPTION_REMOVE:
            a.act = BITMAP_REMOVE;
            g_array_append_val(actions, a);
            break;
        case OPTION_CLEAR:
            a.act = BITMAP_CLEAR;
            g_array_append_val(actions, a);
            break;
        case OPTION_ENABLE:
            a.act = BITMAP_ENABLE;
            g_array_append_val(actions, a);
            break;
        case OPTION_DISABLE:
            a.act = BITMAP_DISABLE;
            g_array_append_val(actions, a);
            break;
        case OPTION_MERGE:
            a.act = BITMAP_MERGE;
            a.src = optarg;
            merge_seen = true;
            g_array_append_val(actions, a);
            break;
        case OPTION_REPAIR:
            a.act = BITMAP_REPAIR;
            g_array_append_val(actions, a);
            break;
        case OPTION_OBJECT:
            /* No user-creatable objects (secrets, throttling) are needed
             * by bitmap operations; accept the option as qemu-img does. */
            break;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        }
    }

    if (actions->len == 0) {
        error_report("Need at least one of --add, --remove, --clear, "
                     "--enable, --disable, or --merge");
        return 1;
    }
    if (granularity && !add) {
        error_report("granularity only supported with --add");
        return 1;
    }
    if (src_fmt && !src_filename) {
        error_report("-F only supported with -b");
        return 1;
    }
    if (src_filename && !merge_seen) {
        error_report("Merge bitmap source file only supported with --merge");
        return 1;
    }
    if (optind != argc - 2) {
        error_report("Expecting filename and bitmap name");
        return 1;
    }
    filename = argv[optind];
    bitmap = argv[optind + 1];

    blk = img_open(image_opts, filename, fmt, BDRV_O_RDWR, false, false,
                   false);
    if (!blk) {
        goto out;
    }
    bs = blk_bs(blk);
    if (src_filename) {
        src = img_open(false, src_filename, src_fmt, 0, false, false, false);
        if (!src) {
            goto out;
        }
        src_bs = blk_bs(src);
    } else {
        src_bs = bs;
    }

    for (guint i = 0; i < actions->len; i++) {
        ImgBitmapAction *a = &g_array_index(actions, ImgBitmapAction, i);
        Error *err = NULL;

        switch (a->act) {
        case BITMAP_ADD:
            qmp_block_dirty_bitmap_add(bs->node_name, bitmap,
                                       granularity != 0,
                                       (uint32_t)granularity, true, true,
                                       false, false, &err);
            break;
        case BITMAP_REMOVE:
            qmp_block_dirty_bitmap_remove(bs->node_name, bitmap, &err);
            break;
        case BITMAP_CLEAR:
            qmp_block_dirty_bitmap_clear(bs->node_name, bitmap, &err);
            break;
        case BITMAP_ENABLE:
            qmp_block_dirty_bitmap_enable(bs->node_name, bitmap, &err);
            break;
        case BITMAP_DISABLE:
            qmp_block_dirty_bitmap_disable(bs->node_name, bitmap, &err);
            break;
        case BITMAP_MERGE:
            merge(bs, bitmap, src_bs, a->src, &err);
            break;
        case BITMAP_REPAIR:
            img_repair_inconsistent_bitmap(bs, bitmap, &err);
            break;
        }
        if (err) {
            error_prepend(&err, "Operation %s on bitmap %s failed: ",
                          act_names[a->act], bitmap);
            error_report_err(err);
            goto out;
        }
    }
    ret = 0;

out:
    if (src) {
        blk_unref(src);
    }
    if (blk) {
        blk_unref(blk);
    }
    return ret;
}
