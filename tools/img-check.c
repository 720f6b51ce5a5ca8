/*
 * qblock-img check: run a format driver's consistency check (and repair
 * with -r) and report as qemu-img 7.2 does, in human or JSON form.
 *
 * Exit codes: 0 clean, 1 check not completed (it failed or had internal
 * errors), 2 corruptions left, 3 only leaks left, 63 format has no check.
 * After a repair the image is checked again and the second result is
 * reported, with the counts of what was fixed.
 *
 * qblock extension: with -r all, --repair-inconsistent-bitmaps also makes
 * every inconsistent (in-use) persistent bitmap usable again, as `bitmap
 * --repair-inconsistent` does: all of it dirty, in_use cleared when the
 * image is closed.  QEMU's check leaves them alone, and so do we without
 * the option, so the default output stays QEMU's.
 */
#include "tools/img-util.h"
#include "block/check.h"
#include "util/json-qemu.h"
#include "block/dirty-bitmap.h"

#include <getopt.h>

typedef struct CheckCo {
    BlockDriverState *bs;
    BdrvCheckResult *res;
    int fix;
    int ret;
} CheckCo;

static void coroutine_fn check_entry(void *opaque)
{
    CheckCo *c = opaque;

    c->ret = c->bs->drv->bdrv_co_check(c->bs, c->res, c->fix);
}

/* Driver check in a coroutine; -ENOTSUP for formats without one. */
static int run_check(BlockDriverState *bs, BdrvCheckResult *res, int fix)
{
    CheckCo c = { .bs = bs, .res = res, .fix = fix };

    if (!bs->drv) {
        return -ENOMEDIUM;
    }
    if (!bs->drv->bdrv_co_check) {
        return -ENOTSUP;
    }
    memset(res, 0, sizeof(*res));
    img_run_in_coroutine(check_entry, &c);
    return c.ret;
}

enum {
    OPTION_REPAIR_BITMAPS = 500,
};

static void G_GNUC_PRINTF(2, 3) qprintf(bool quiet, const char *fmt, ...);

/* Repair every inconsistent persistent bitmap of bs; false on failure
 * (reported).  Human output names each one repaired. */
static bool repair_bitmaps(BlockDriverState *bs, bool human, bool quiet)
{
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);

    /* Names first: repairing does not change the list, but stay safe. */
    for (BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_first(bs); bm;
         bm = bdrv_dirty_bitmap_next(bm)) {
        if (bdrv_dirty_bitmap_get_persistent(bm) &&
            bdrv_dirty_bitmap_inconsistent(bm)) {
            g_ptr_array_add(names, g_strdup(bdrv_dirty_bitmap_name(bm)));
        }
    }
    for (guint i = 0; i < names->len; i++) {
        const char *name = names->pdata[i];
        Error *err = NULL;

        img_repair_inconsistent_bitmap(bs, name, &err);
        if (err) {
            error_prepend(&err, "Could not repair bitmap '%s': ", name);
            error_report_err(err);
            return false;
        }
        if (human) {
            qprintf(quiet, "Repaired inconsistent bitmap '%s': it is now "
                    "entirely dirty\n", name);
        }
    }
    return true;
}

static void G_GNUC_PRINTF(2, 3) qprintf(bool quiet, const char *fmt, ...)
{
    va_list ap;

    if (quiet) {
        return;
    }
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

static void dump_human(const BdrvCheckResult *r, bool quiet)
{
    if (!(r->corruptions || r->leaks || r->check_errors)) {
        qprintf(quiet, "No errors were found on the image.\n");
    } else {
        if (r->corruptions) {
            qprintf(quiet, "\n%d errors were found on the image.\n"
                    "Data may be corrupted, or further writes to the image "
                    "may corrupt it.\n", r->corruptions);
        }
        if (r->leaks) {
            qprintf(quiet, "\n%d leaked clusters were found on the image.\n"
                    "This means waste of disk space, but no harm to data.\n",
                    r->leaks);
        }
        if (r->check_errors) {
            qprintf(quiet, "\n%d internal errors have occurred during the "
                    "check.\n", r->check_errors);
        }
    }
    if (r->bfi.total_clusters != 0 && r->bfi.allocated_clusters != 0) {
        qprintf(quiet, "%" PRIu64 "/%" PRIu64 " = %0.2f%% allocated, "
                "%0.2f%% fragmented, %0.2f%% compressed clusters\n",
                r->bfi.allocated_clusters, r->bfi.total_clusters,
                r->bfi.allocated_clusters * 100.0 / r->bfi.total_clusters,
                r->bfi.fragmented_clusters * 100.0 /
                r->bfi.allocated_clusters,
                r->bfi.compressed_clusters * 100.0 /
                r->bfi.allocated_clusters);
    }
    if (r->image_end_offset) {
        qprintf(quiet, "Image end offset: %" PRId64 "\n", r->image_end_offset);
    }
}

/* ImageCheck as QAPI builds it: optional members only when non-zero,
 * inserted in schema order (json-qemu.c turns that into QEMU's order). */
static void dump_json(const BdrvCheckResult *r, const char *filename,
                      const char *format, bool quiet)
{
    json_t *o = json_object();
    g_autofree char *s = NULL;

#define OPT_MEMBER(name, val) do {                              \
        if (val) {                                              \
            json_object_set_new(o, name, json_integer(val));    \
        }                                                       \
    } while (0)

    json_object_set_new(o, "filename", json_string(filename));
    json_object_set_new(o, "format", json_string(format));
    json_object_set_new(o, "check-errors", json_integer(r->check_errors));
    OPT_MEMBER("image-end-offset", r->image_end_offset);
    OPT_MEMBER("corruptions", r->corruptions);
    OPT_MEMBER("leaks", r->leaks);
    OPT_MEMBER("corruptions-fixed", r->corruptions_fixed);
    OPT_MEMBER("leaks-fixed", r->leaks_fixed);
    OPT_MEMBER("total-clusters", (json_int_t)r->bfi.total_clusters);
    OPT_MEMBER("allocated-clusters", (json_int_t)r->bfi.allocated_clusters);
    OPT_MEMBER("fragmented-clusters",
               (json_int_t)r->bfi.fragmented_clusters);
    OPT_MEMBER("compressed-clusters",
               (json_int_t)r->bfi.compressed_clusters);
#undef OPT_MEMBER

    s = qemu_json_to_pretty(o);
    qprintf(quiet, "%s\n", s);
    json_decref(o);
}

int img_check(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "format", required_argument, NULL, 'f' },
        { "repair", required_argument, NULL, 'r' },
        { "output", required_argument, NULL, OPTION_OUTPUT },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { "repair-inconsistent-bitmaps", no_argument, NULL,
          OPTION_REPAIR_BITMAPS },
        { NULL, 0, NULL, 0 },
    };
    const char *filename, *fmt = NULL, *output = NULL, *cache = "writeback";
    bool quiet = false, image_opts = false, force_share = false;
    bool writethrough = false, fix_bitmaps = false;
    int flags = BDRV_O_CHECK, fix = 0, c, ret;
    ImgOutputFormat ofmt;
    BdrvCheckResult res;
    BlockBackend *blk;
    BlockDriverState *bs;

    while ((c = getopt_long(argc, argv, ":hf:r:T:qU", long_options,
                            NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'f':
            fmt = optarg;
            break;
        case 'r':
            flags |= BDRV_O_RDWR;
            if (!strcmp(optarg, "leaks")) {
                fix = BDRV_FIX_LEAKS;
            } else if (!strcmp(optarg, "all")) {
                fix = BDRV_FIX_LEAKS | BDRV_FIX_ERRORS;
            } else {
                img_error_exit("Unknown option value for -r (expecting "
                               "'leaks' or 'all'): %s", optarg);
            }
            break;
        case OPTION_OUTPUT:
            output = optarg;
            break;
        case 'T':
            cache = optarg;
            break;
        case 'q':
            quiet = true;
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
        case OPTION_REPAIR_BITMAPS:
            fix_bitmaps = true;
            break;
        }
    }
    if (fix_bitmaps && !(fix & BDRV_FIX_ERRORS)) {
        img_error_exit("--repair-inconsistent-bitmaps requires -r all");
    }
    if (optind != argc - 1) {
        img_error_exit("Expecting one image file name");
    }
    filename = argv[optind++];

    if (img_parse_output_format(output, &ofmt) < 0) {
        return 1;
    }
    if (img_parse_cache_mode(cache, &flags, &writethrough) < 0) {
        error_report("Invalid source cache option: %s", cache);
        return 1;
    }

    blk = img_open(image_opts, filename, fmt, flags, writethrough, quiet,
                   force_share);
    if (!blk) {
        return 1;
    }
    bs = blk_bs(blk);

    ret = run_check(bs, &res, fix);
    if (ret == -ENOTSUP) {
        error_report("This image format does not support checks");
        ret = 63;
        goto out;
    }

    if (ret == 0 && fix_bitmaps &&
        !repair_bitmaps(bs, ofmt == IMG_OFORMAT_HUMAN, quiet)) {
        ret = 1;
        goto out;
    }
    if (ret == 0 && (res.corruptions_fixed || res.leaks_fixed)) {
        int corruptions_fixed = res.corruptions_fixed;
        int leaks_fixed = res.leaks_fixed;

        if (ofmt == IMG_OFORMAT_HUMAN) {
            qprintf(quiet, "The following inconsistencies were found and "
                    "repaired:\n\n"
                    "    %d leaked clusters\n"
                    "    %d corruptions\n\n"
                    "Double checking the fixed image now...\n",
                    leaks_fixed, corruptions_fixed);
        }
        /* Report the state after the repair, with what was fixed. */
        ret = run_check(bs, &res, 0);
        res.corruptions_fixed = corruptions_fixed;
        res.leaks_fixed = leaks_fixed;
    }

    if (!ret) {
        if (ofmt == IMG_OFORMAT_HUMAN) {
            dump_human(&res, quiet);
        } else {
            dump_json(&res, filename, bdrv_get_format_name(bs), quiet);
        }
    }

    if (ret || res.check_errors) {
        if (ret) {
            error_report("Check failed: %s", strerror(-ret));
        } else {
            error_report("Check failed");
        }
        ret = 1;
    } else if (res.corruptions) {
        ret = 2;
    } else if (res.leaks) {
        ret = 3;
    } else {
        ret = 0;
    }
out:
    blk_unref(blk);
    return ret;
}
