/*
 * qblock-img convert: copy one or more images (concatenated) into a new or
 * existing image of any format, as qemu-img 7.2 does.
 *
 * The copy walks the source in "iterations": block status decides whether
 * a run of sectors is data (read and written), zero (written as zeroes, or
 * skipped when the target is known to read as zero) or left to the
 * target's backing file.  Data buffers are scanned for zero runs of at
 * least the sparse size (-S, default 4 KiB) which are not written, so the
 * target stays sparse.  Up to -m coroutines copy in parallel; unless -W is
 * given, writes are issued in ascending order.
 *
 * Invariants:
 *  1. sector_num only grows, under the lock; each coroutine owns the range
 *     it took until it has written it.
 *  2. With ordered writes, wr_offs is the first sector not yet written;
 *     a coroutine writes only when wr_offs equals its range start.
 *  3. ret stays -EINPROGRESS until the first error or the end, then never
 *     changes again.
 */
#include "tools/img-util.h"
#include "util/coroutine.h"
#include "block/dirty-bitmap.h"
#include "qapi-commands.h"      /* qmp_block_dirty_bitmap_add/_remove */

#include <getopt.h>
#include "block/snapshot.h"

#define CONVERT_MAX_COROUTINES 16
#define CONVERT_BUF_SECTORS    4096      /* 2 MiB */
#define CONVERT_MAX_BUF_SECTORS 32768    /* 16 MiB */

enum {
    OPTION_SALVAGE = 1000,
    OPTION_TARGET_IMAGE_OPTS,
    OPTION_TARGET_IS_ZERO,
    OPTION_BITMAPS,
    OPTION_SKIP_BROKEN,
};

typedef enum ConvertStatus {
    BLK_ZERO,
    BLK_DATA,
    BLK_BACKING_FILE,
} ConvertStatus;

typedef struct ConvertState {
    BlockBackend **src;
    int64_t *src_sectors;
    int *src_alignment;
    int src_num;
    int64_t total_sectors;
    int64_t allocated_sectors, allocated_done;
    int64_t sector_num;          /* next sector to hand out (inv. 1) */
    int64_t wr_offs;             /* inv. 2 */
    ConvertStatus status;        /* of [.., sector_next_status) */
    int64_t sector_next_status;
    BlockBackend *target;
    bool has_zero_init;
    bool compressed;
    bool target_is_new;
    bool target_has_backing;
    int64_t target_backing_sectors;  /* -1: unknown / no backing */
    bool wr_in_order;
    bool quiet;
    bool salvage;
    int min_sparse;              /* in sectors; 0 = fully allocate */
    int alignment;               /* in sectors, power of two */
    int64_t cluster_sectors;
    int64_t buf_sectors;
    int num_coroutines;
    int running_coroutines;
    Coroutine *co[CONVERT_MAX_COROUTINES];
    int64_t wait_sector_num[CONVERT_MAX_COROUTINES];
    CoMutex lock;
    int ret;                     /* inv. 3 */
    /* Rate limit (-r), bytes per second; 0 = none. */
    int64_t rate_limit;
    int64_t rate_start_ns, rate_bytes;
} ConvertState;

static int64_t pow2floor(int64_t v)
{
    int64_t p = 1;

    if (v <= 0) {
        return 0;
    }
    while (p * 2 <= v) {
        p *= 2;
    }
    return p;
}

static void convert_select_part(ConvertState *s, int64_t sector_num,
                                int *src_cur, int64_t *src_cur_offset)
{
    *src_cur = 0;
    *src_cur_offset = 0;
    while (sector_num - *src_cur_offset >= s->src_sectors[*src_cur]) {
        *src_cur_offset += s->src_sectors[*src_cur];
        (*src_cur)++;
        g_assert(*src_cur < s->src_num);
    }
}

/*
 * How many sectors from sector_num have the same status (stored in
 * s->status); block status is re-queried only past sector_next_status.
 */
static int64_t convert_iteration_sectors(ConvertState *s, int64_t sector_num)
{
    int64_t src_cur_offset, n;
    int src_cur, ret;
    bool post_backing_zero = false;

    convert_select_part(s, sector_num, &src_cur, &src_cur_offset);
    n = MIN(s->total_sectors - sector_num,
            BDRV_REQUEST_MAX_BYTES >> BDRV_SECTOR_BITS);

    if (s->target_backing_sectors >= 0) {
        if (sector_num >= s->target_backing_sectors) {
            post_backing_zero = true;
        } else if (sector_num + n > s->target_backing_sectors) {
            /* Past the backing file's end zeroes are handled differently:
             * do not let one iteration cross it. */
            n = s->target_backing_sectors - sector_num;
        }
    }

    if (s->sector_next_status <= sector_num) {
        uint64_t offset = (sector_num - src_cur_offset) * BDRV_SECTOR_SIZE;
        BlockDriverState *src_bs = blk_bs(s->src[src_cur]);
        BlockDriverState *base = NULL;
        int64_t count, tail;

        if (s->target_has_backing) {
            BlockDriverState *top = img_skip_filters(src_bs);
            base = top && top->backing ? top->backing->bs : NULL;
        }
        /* Never ask past this source's end. */
        n = MIN(n, s->src_sectors[src_cur] - (sector_num - src_cur_offset));

        do {
            count = n * BDRV_SECTOR_SIZE;
            ret = bdrv_co_block_status_above(src_bs, base, offset, count,
                                             &count, NULL, NULL, NULL);
            if (ret >= 0 && count <= 0) {
                /* The source ends early (not sector-aligned): what is
                 * beyond reads as zero. */
                ret = BDRV_BLOCK_ZERO;
                count = n * BDRV_SECTOR_SIZE;
            }
            if (ret < 0) {
                if (s->salvage) {
                    if (n == 1) {
                        if (!s->quiet) {
                            warn_report("error while reading block status at "
                                        "offset %" PRIu64 ": %s", offset,
                                        strerror(-ret));
                        }
                        /* Just try to read the data, then. */
                        ret = BDRV_BLOCK_DATA;
                        count = BDRV_SECTOR_SIZE;
                    } else {
                        n = QB_DIV_ROUND_UP(n, 4);
                    }
                } else {
                    error_report("error while reading block status at "
                                 "offset %" PRIu64 ": %s", offset,
                                 strerror(-ret));
                    return ret;
                }
            }
        } while (ret < 0);

        n = QB_DIV_ROUND_UP(count, BDRV_SECTOR_SIZE);

        /* Keep sector_next_status aligned to the source's request
         * alignment / cluster size so reads are not split needlessly. */
        tail = (sector_num - src_cur_offset + n) % s->src_alignment[src_cur];
        if (n > tail) {
            n -= tail;
        }

        if (ret & BDRV_BLOCK_ZERO) {
            s->status = post_backing_zero ? BLK_BACKING_FILE : BLK_ZERO;
        } else if (ret & BDRV_BLOCK_DATA) {
            s->status = BLK_DATA;
        } else {
            s->status = s->target_has_backing ? BLK_BACKING_FILE : BLK_DATA;
        }
        s->sector_next_status = sector_num + n;
    }

    n = MIN(n, s->sector_next_status - sector_num);
    if (s->status == BLK_DATA) {
        n = MIN(n, s->buf_sectors);
    }

    /* Compressed images are written in whole clusters: a short hole
     * between data counts as data. */
    if (s->compressed) {
        if (n < s->cluster_sectors) {
            n = MIN(s->cluster_sectors, s->total_sectors - sector_num);
            s->status = BLK_DATA;
        } else {
            n = QB_ALIGN_DOWN(n, s->cluster_sectors);
        }
    }
    return n;
}

static int coroutine_fn convert_co_read(ConvertState *s, int64_t sector_num,
                                        int64_t nb_sectors, uint8_t *buf)
{
    uint64_t single_read_until = 0;

    while (nb_sectors > 0) {
        int64_t src_cur_offset, n;
        uint64_t offset;
        IOVector qiov;
        BlockBackend *blk;
        int src_cur, ret;

        /* A compressed cluster may span two sources. */
        convert_select_part(s, sector_num, &src_cur, &src_cur_offset);
        blk = s->src[src_cur];
        offset = (sector_num - src_cur_offset) << BDRV_SECTOR_BITS;
        n = MIN(nb_sectors,
                s->src_sectors[src_cur] - (sector_num - src_cur_offset));
        if (single_read_until > offset) {
            n = 1;
        }

        qiov_init_buf(&qiov, buf, n << BDRV_SECTOR_BITS);
        ret = blk_co_preadv(blk, offset, n << BDRV_SECTOR_BITS, &qiov, 0);
        if (ret < 0) {
            if (!s->salvage) {
                return ret;
            }
            if (n == 1) {
                if (!s->quiet) {
                    warn_report("error while reading offset %" PRIu64 ": %s",
                                offset, strerror(-ret));
                }
                memset(buf, 0, BDRV_SECTOR_SIZE);
            } else {
                /* Repeat the failed range sector by sector. */
                single_read_until = offset + (n << BDRV_SECTOR_BITS);
                continue;
            }
        }
        sector_num += n;
        nb_sectors -= n;
        buf += n * BDRV_SECTOR_SIZE;
    }
    return 0;
}

/*
 * Whether the first sector of buf holds a non-zero byte; *pnum is how
 * many sectors from the start share that answer, with the end moved to an
 * alignment boundary where that avoids read-modify-write on the target.
 */
static bool is_allocated_sectors(const uint8_t *buf, int64_t n, int64_t *pnum,
                                 int64_t sector_num, int alignment)
{
    bool is_zero;
    int64_t i, tail;

    if (n <= 0) {
        *pnum = 0;
        return false;
    }
    is_zero = buffer_is_zero(buf, BDRV_SECTOR_SIZE);
    for (i = 1; i < n; i++) {
        buf += BDRV_SECTOR_SIZE;
        if (is_zero != buffer_is_zero(buf, BDRV_SECTOR_SIZE)) {
            break;
        }
    }
    if (i == n) {
        *pnum = i;
        return !is_zero;
    }

    tail = (sector_num + i) & (alignment - 1);
    if (tail) {
        if (is_zero && i <= tail) {
            /* The next sector is data and will rewrite this tail by RMW
             * anyway: write it now. */
            is_zero = false;
        }
        if (!is_zero) {
            i += alignment - tail;
            i = MIN(i, n);
        } else {
            i -= tail;
        }
    }
    *pnum = i;
    return !is_zero;
}

/* As is_allocated_sectors, but zero runs shorter than min sectors after
 * data count as data (small holes are not worth a separate request). */
static bool is_allocated_sectors_min(const uint8_t *buf, int64_t n,
                                     int64_t *pnum, int64_t min,
                                     int64_t sector_num, int alignment)
{
    int64_t num_checked, num_used;
    bool ret;

    if (n < min) {
        min = n;
    }
    ret = is_allocated_sectors(buf, n, pnum, sector_num, alignment);
    if (!ret) {
        return ret;
    }
    num_used = *pnum;
    buf += BDRV_SECTOR_SIZE * *pnum;
    n -= *pnum;
    sector_num += *pnum;
    num_checked = num_used;

    while (n > 0) {
        ret = is_allocated_sectors(buf, n, pnum, sector_num, alignment);
        buf += BDRV_SECTOR_SIZE * *pnum;
        n -= *pnum;
        sector_num += *pnum;
        num_checked += *pnum;
        if (ret) {
            num_used = num_checked;
        } else if (*pnum >= min) {
            break;
        }
    }
    *pnum = num_used;
    return true;
}

static void coroutine_fn convert_rate_limit(ConvertState *s, int64_t bytes)
{
    int64_t now, due;

    if (!s->rate_limit) {
        return;
    }
    s->rate_bytes += bytes;
    now = qb_clock_ns_monotonic();
    due = s->rate_start_ns + s->rate_bytes * 1000000000LL / s->rate_limit;
    if (due > now) {
        co_sleep_ns(due - now);
    }
}

static int coroutine_fn convert_co_write(ConvertState *s, int64_t sector_num,
                                         int64_t nb_sectors, uint8_t *buf,
                                         ConvertStatus status)
{
    int ret;

    while (nb_sectors > 0) {
        int64_t n = nb_sectors;
        BdrvRequestFlags flags = s->compressed ? BDRV_REQ_WRITE_COMPRESSED
                                               : 0;
        IOVector qiov;

        switch (status) {
        case BLK_BACKING_FILE:
            /* Leave it unallocated so the backing file shows through. */
            g_assert(s->target_has_backing);
            break;

        case BLK_DATA:
            /* Write real data, everything with -S 0, and whole compressed
             * clusters unless they are entirely zero. */
            if (!s->min_sparse ||
                (!s->compressed &&
                 is_allocated_sectors_min(buf, n, &n, s->min_sparse,
                                          sector_num, s->alignment)) ||
                (s->compressed &&
                 !buffer_is_zero(buf, n * BDRV_SECTOR_SIZE))) {
                qiov_init_buf(&qiov, buf, n << BDRV_SECTOR_BITS);
                ret = blk_co_pwritev(s->target, sector_num << BDRV_SECTOR_BITS,
                                     n << BDRV_SECTOR_BITS, &qiov, flags);
                if (ret < 0) {
                    return ret;
                }
                convert_rate_limit(s, n << BDRV_SECTOR_BITS);
                break;
            }
            /* fall through */

        case BLK_ZERO:
            if (s->has_zero_init) {
                g_assert(!s->target_has_backing);
                break;
            }
            ret = blk_co_pwrite_zeroes(s->target,
                                       sector_num << BDRV_SECTOR_BITS,
                                       n << BDRV_SECTOR_BITS,
                                       BDRV_REQ_MAY_UNMAP);
            if (ret < 0) {
                return ret;
            }
            break;
        }
        sector_num += n;
        nb_sectors -= n;
        buf += n * BDRV_SECTOR_SIZE;
    }
    return 0;
}

static void coroutine_fn convert_co_do_copy(void *opaque)
{
    ConvertState *s = opaque;
    Coroutine *self = coroutine_self();
    uint8_t *buf;
    int index = -1;

    for (int i = 0; i < s->num_coroutines; i++) {
        if (s->co[i] == self) {
            index = i;
            break;
        }
    }
    g_assert(index >= 0);

    s->running_coroutines++;
    buf = blk_blockalign(s->target, s->buf_sectors * BDRV_SECTOR_SIZE);

    for (;;) {
        int64_t n, sector_num;
        ConvertStatus status;
        int ret;

        co_mutex_lock(&s->lock);
        if (s->ret != -EINPROGRESS || s->sector_num >= s->total_sectors) {
            co_mutex_unlock(&s->lock);
            break;
        }
        n = convert_iteration_sectors(s, s->sector_num);
        if (n < 0) {
            co_mutex_unlock(&s->lock);
            s->ret = n;
            break;
        }
        sector_num = s->sector_num;
        status = s->status;
        if (!s->min_sparse && s->status == BLK_ZERO) {
            n = MIN(n, s->buf_sectors);
        }
        /* Let other coroutines go on past this range at once. */
        s->sector_num += n;
        co_mutex_unlock(&s->lock);

        if (status == BLK_DATA || (!s->min_sparse && status == BLK_ZERO)) {
            s->allocated_done += n;
            img_progress_print(100.0 * s->allocated_done /
                               s->allocated_sectors, 0);
        }

        if (status == BLK_DATA) {
            ret = convert_co_read(s, sector_num, n, buf);
            if (ret < 0) {
                error_report("error while reading at byte %lld: %s",
                             (long long)(sector_num * BDRV_SECTOR_SIZE),
                             strerror(-ret));
                s->ret = ret;
            }
        } else if (!s->min_sparse && status == BLK_ZERO) {
            status = BLK_DATA;
            memset(buf, 0, n * BDRV_SECTOR_SIZE);
        }

        if (s->wr_in_order) {
            while (s->wr_offs != sector_num && s->ret == -EINPROGRESS) {
                s->wait_sector_num[index] = sector_num;
                coroutine_yield();
            }
            s->wait_sector_num[index] = -1;
        }

        if (s->ret == -EINPROGRESS) {
            ret = convert_co_write(s, sector_num, n, buf, status);
            if (ret < 0) {
                error_report("error while writing at byte %lld: %s",
                             (long long)(sector_num * BDRV_SECTOR_SIZE),
                             strerror(-ret));
                s->ret = ret;
            }
        }

        if (s->wr_in_order) {
            /* Wake the coroutine waiting for this range to be written. */
            s->wr_offs = sector_num + n;
            for (int i = 0; i < s->num_coroutines; i++) {
                if (s->co[i] && s->wait_sector_num[i] == s->wr_offs) {
                    coroutine_enter(s->co[i]);
                    break;
                }
            }
        }
    }

    s->co[index] = NULL;
    s->running_coroutines--;
    if (!s->running_coroutines && s->ret == -EINPROGRESS) {
        /* The last one out: every range has been written. */
        s->ret = 0;
    }
    qb_vfree(buf);
    aio_notify(qb_get_aio_context());
}

/* Fill allocated_sectors (for the progress meter), then copy. */
static void coroutine_fn convert_co_prepare(void *opaque)
{
    ConvertState *s = opaque;
    int64_t sector_num = 0;

    while (sector_num < s->total_sectors) {
        int64_t n = convert_iteration_sectors(s, sector_num);

        if (n < 0) {
            s->ret = n;
            return;
        }
        if (s->status == BLK_DATA ||
            (!s->min_sparse && s->status == BLK_ZERO)) {
            s->allocated_sectors += n;
        }
        sector_num += n;
    }
    s->ret = 0;
}

static int convert_do_copy(ConvertState *s)
{
    if (s->compressed) {
        /* One cluster at a time. */
        if (s->cluster_sectors <= 0 || s->cluster_sectors > s->buf_sectors) {
            error_report("invalid cluster size");
            return -EINVAL;
        }
        s->buf_sectors = s->cluster_sectors;
    }

    img_run_in_coroutine(convert_co_prepare, s);
    if (s->ret < 0) {
        return s->ret;
    }

    s->sector_next_status = 0;
    s->sector_num = 0;
    s->wr_offs = 0;
    s->ret = -EINPROGRESS;
    s->rate_start_ns = qb_clock_ns_monotonic();
    co_mutex_init(&s->lock);
    for (int i = 0; i < s->num_coroutines; i++) {
        s->co[i] = coroutine_create(convert_co_do_copy, s);
        s->wait_sector_num[i] = -1;
    }
    for (int i = 0; i < s->num_coroutines; i++) {
        if (s->co[i]) {
            coroutine_enter(s->co[i]);
        }
    }
    AIO_WAIT_WHILE(qb_get_aio_context(), s->running_coroutines > 0);
    return s->ret;
}

/* Formats that keep persistent dirty bitmaps (qcow2). */
static bool supports_persistent_bitmaps(BlockDriverState *bs)
{
    json_t *info;
    bool v2;

    bs = img_skip_filters(bs);
    if (!bs || !bs->drv || !bs->drv->bdrv_co_can_store_new_dirty_bitmap) {
        return false;
    }
    /* qcow2 v2 (compat=0.10) cannot store bitmaps: QEMU 7.2 says so up
     * front, before anything is copied (iotest 376). */
    info = bdrv_get_specific_info(bs, NULL);
    v2 = g_strcmp0(json_string_value(json_object_get(
             json_object_get(info, "data"), "compat")), "0.10") == 0;
    json_decref(info);
    return !v2;
}

/* --bitmaps: refuse sources that cannot be copied from before anything is
 * created. */
static int convert_check_bitmaps(BlockDriverState *src, bool skip_broken)
{
    if (!supports_persistent_bitmaps(src)) {
        error_report("Source lacks bitmap support");
        return -1;
    }
    src = img_skip_filters(src);
    for (BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_first(src); bm;
         bm = bdrv_dirty_bitmap_next(bm)) {
        if (!bdrv_dirty_bitmap_get_persistent(bm)) {
            continue;
        }
        if (!skip_broken && bdrv_dirty_bitmap_inconsistent(bm)) {
            error_report("Cannot copy inconsistent bitmap '%s'",
                         bdrv_dirty_bitmap_name(bm));
            fprintf(stderr, "Try --skip-broken-bitmaps, or use 'qemu-img "
                    "bitmap --remove' to delete it\n");
            return -1;
        }
    }
    return 0;
}

/* Copy every persistent bitmap of src (granularity, enabled state and
 * bits) to dst, as new persistent bitmaps stored when dst is closed. */
static int convert_copy_bitmaps(BlockDriverState *src, BlockDriverState *dst,
                                bool skip_broken)
{
    src = img_skip_filters(src);
    for (BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_first(src); bm;
         bm = bdrv_dirty_bitmap_next(bm)) {
        const char *name = bdrv_dirty_bitmap_name(bm);
        BdrvDirtyBitmap *copy;
        Error *err = NULL;

        if (!bdrv_dirty_bitmap_get_persistent(bm)) {
            continue;
        }
        if (skip_broken && bdrv_dirty_bitmap_inconsistent(bm)) {
            warn_report("Skipping inconsistent bitmap '%s'", name);
            continue;
        }
        qmp_block_dirty_bitmap_add(dst->node_name, name, true,
                                   bdrv_dirty_bitmap_granularity(bm),
                                   true, true, true,
                                   !bdrv_dirty_bitmap_enabled(bm), &err);
        if (err) {
            error_prepend(&err, "Failed to create bitmap %s: ", name);
            error_report_err(err);
            return -1;
        }
        copy = bdrv_find_dirty_bitmap(dst, name);
        if (!copy || !bdrv_merge_dirty_bitmap(copy, bm, NULL, &err)) {
            if (!err) {
                error_setg(&err, "Dirty bitmap '%s' not found", name);
            }
            error_prepend(&err, "Failed to populate bitmap %s: ", name);
            error_report_err(err);
            qmp_block_dirty_bitmap_remove(dst->node_name, name, NULL);
            return -1;
        }
    }
    return 0;
}

/* "-o help": the creation options of the output format, exactly as
 * "qblock-img create -f FMT -o help [FILE]" prints them. */
static int convert_print_help(const char *out_fmt, const char *options,
                              const char *out_filename)
{
    char *args[] = {
        (char *)"create", (char *)"-f", (char *)out_fmt, (char *)"-o",
        (char *)options, (char *)out_filename, NULL,
    };

    optind = 0;
    return img_create(out_filename ? 6 : 5, args);
}

int img_convert(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { "target-image-opts", no_argument, NULL, OPTION_TARGET_IMAGE_OPTS },
        { "salvage", no_argument, NULL, OPTION_SALVAGE },
        { "target-is-zero", no_argument, NULL, OPTION_TARGET_IS_ZERO },
        { "bitmaps", no_argument, NULL, OPTION_BITMAPS },
        { "skip-broken-bitmaps", no_argument, NULL, OPTION_SKIP_BROKEN },
        { NULL, 0, NULL, 0 },
    };
    ConvertState s = {
        .ret = -EINPROGRESS,
        .num_coroutines = 8,
        .min_sparse = 8,           /* 4 KiB */
        .buf_sectors = CONVERT_BUF_SECTORS,
        .wr_in_order = true,
        .target_backing_sectors = -1,
    };
    const char *fmt = NULL, *out_fmt = NULL, *cache = "unsafe";
    const char *src_cache = "writeback", *out_baseimg = NULL;
    const char *out_basefmt = NULL;
    g_autofree char *sn_id = NULL, *sn_name = NULL;
    bool sn_by_opts = false;
    const char *out_filename;
    g_autofree char *options = NULL;
    bool image_opts = false, tgt_image_opts = false, force_share = false;
    bool skip_create = false, progress = false, explicit_min_sparse = false;
    bool copy_range = false, target_is_zero = false, bitmaps = false;
    bool skip_broken = false, writethrough = false, src_writethrough = false;
    int64_t rate_limit = 0;
    int src_flags = 0, flags, c, ret = -1;
    BlockDriver *drv;
    BlockDriverState *out_bs;
    BlockDriverInfo bdi;
    json_t *opts = NULL;
    Error *err = NULL;

    while ((c = getopt_long(argc, argv, ":hf:O:B:CcF:o:l:S:pt:T:qnm:WUr:",
                            long_options, NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'f':
            fmt = optarg;
            break;
        case 'O':
            out_fmt = optarg;
            break;
        case 'B':
            out_baseimg = optarg;
            break;
        case 'C':
            copy_range = true;
            break;
        case 'c':
            s.compressed = true;
            break;
        case 'F':
            out_basefmt = optarg;
            break;
        case 'o':
            if (!img_valid_option_list(optarg)) {
                error_report("Invalid option list: %s", optarg);
                goto out_noprogress;
            }
            options = img_add_options(options, optarg);
            break;
        case 'l':
            g_free(sn_id);
            g_free(sn_name);
            ret = img_parse_snapshot_param(optarg, &sn_id, &sn_name);
            if (ret < 0) {
                goto out_noprogress;
            }
            sn_by_opts = ret;
            ret = -1;
            break;
        case 'S': {
            int64_t sval = img_cvtnum_full("buffer size for sparse output",
                                           optarg, 0, INT64_MAX);
            if (sval < 0) {
                goto out_noprogress;
            }
            if (sval % BDRV_SECTOR_SIZE ||
                sval / BDRV_SECTOR_SIZE > CONVERT_MAX_BUF_SECTORS) {
                error_report("Invalid buffer size for sparse output "
                             "specified. Valid sizes are multiples of %llu "
                             "up to %llu. Select 0 to disable sparse "
                             "detection (fully allocates output).",
                             (unsigned long long)BDRV_SECTOR_SIZE,
                             (unsigned long long)CONVERT_MAX_BUF_SECTORS *
                             BDRV_SECTOR_SIZE);
                goto out_noprogress;
            }
            s.min_sparse = sval / BDRV_SECTOR_SIZE;
            explicit_min_sparse = true;
            break;
        }
        case 'p':
            progress = true;
            break;
        case 't':
            cache = optarg;
            break;
        case 'T':
            src_cache = optarg;
            break;
        case 'q':
            s.quiet = true;
            break;
        case 'n':
            skip_create = true;
            break;
        case 'm': {
            char *end;
            long v;

            errno = 0;
            v = strtol(optarg, &end, 0);
            if (errno || end == optarg || *end || v < 1 ||
                v > CONVERT_MAX_COROUTINES) {
                error_report("Invalid number of coroutines. Allowed number "
                             "of coroutines is between 1 and %d",
                             CONVERT_MAX_COROUTINES);
                goto out_noprogress;
            }
            s.num_coroutines = v;
            break;
        }
        case 'W':
            s.wr_in_order = false;
            break;
        case 'U':
            force_share = true;
            break;
        case 'r':
            rate_limit = img_cvtnum_full("rate limit", optarg, 0, INT64_MAX);
            if (rate_limit < 0) {
                goto out_noprogress;
            }
            break;
        case OPTION_OBJECT:
            error_report("--object is not supported");
            goto out_noprogress;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPTION_SALVAGE:
            s.salvage = true;
            break;
        case OPTION_TARGET_IMAGE_OPTS:
            tgt_image_opts = true;
            break;
        case OPTION_TARGET_IS_ZERO:
            target_is_zero = true;
            break;
        case OPTION_BITMAPS:
            bitmaps = true;
            break;
        case OPTION_SKIP_BROKEN:
            skip_broken = true;
            break;
        }
    }

    if (!out_fmt && !tgt_image_opts) {
        out_fmt = "raw";
    }
    if (skip_broken && !bitmaps) {
        error_report("Use of --skip-broken-bitmaps requires --bitmaps");
        goto out_noprogress;
    }
    if (s.compressed && copy_range) {
        error_report("Cannot enable copy offloading when -c is used");
        goto out_noprogress;
    }
    if (explicit_min_sparse && copy_range) {
        error_report("Cannot enable copy offloading when -S is used");
        goto out_noprogress;
    }
    if (copy_range && s.salvage) {
        error_report("Cannot use copy offloading in salvaging mode");
        goto out_noprogress;
    }
    if (tgt_image_opts && !skip_create) {
        error_report("--target-image-opts requires use of -n flag");
        goto out_noprogress;
    }
    if (skip_create && options) {
        error_report("-o has no effect when skipping image creation");
        goto out_noprogress;
    }
    if (target_is_zero && !skip_create) {
        error_report("--target-is-zero requires use of -n flag");
        goto out_noprogress;
    }

    s.src_num = argc - optind - 1;
    out_filename = s.src_num >= 1 ? argv[argc - 1] : NULL;

    if (options && img_options_want_help(options)) {
        if (out_fmt) {
            return convert_print_help(out_fmt, options, out_filename);
        }
        error_report("Option help requires a format be specified");
        goto out_noprogress;
    }
    if (s.src_num < 1) {
        error_report("Must specify image file name");
        goto out_noprogress;
    }
    if (img_parse_cache_mode(src_cache, &src_flags, &src_writethrough) < 0) {
        error_report("Invalid source cache option: %s", src_cache);
        goto out_noprogress;
    }

    if (s.quiet) {
        progress = false;
    }
    img_progress_init(progress, 1.0);
    img_progress_print(0, 100);

    s.src = g_new0(BlockBackend *, s.src_num);
    s.src_sectors = g_new0(int64_t, s.src_num);
    s.src_alignment = g_new0(int, s.src_num);
    for (int i = 0; i < s.src_num; i++) {
        const char *name = argv[optind + i];
        BlockDriverState *src_bs;
        int64_t len;

        s.src[i] = img_open(image_opts, name, fmt, src_flags,
                            src_writethrough, s.quiet, force_share);
        if (!s.src[i]) {
            goto out;
        }
        len = blk_getlength(s.src[i]);
        if (len < 0) {
            error_report("Could not get size of %s: %s", name,
                         strerror(-len));
            goto out;
        }
        s.src_sectors[i] = QB_DIV_ROUND_UP(len, BDRV_SECTOR_SIZE);
        src_bs = blk_bs(s.src[i]);
        s.src_alignment[i] = QB_DIV_ROUND_UP(src_bs->bl.request_alignment,
                                             BDRV_SECTOR_SIZE);
        memset(&bdi, 0, sizeof(bdi));
        if (!bdrv_get_info(src_bs, &bdi)) {
            s.src_alignment[i] = MAX(s.src_alignment[i],
                                     bdi.cluster_size /
                                     (int)BDRV_SECTOR_SIZE);
        }
        s.src_alignment[i] = MAX(s.src_alignment[i], 1);
        s.total_sectors += s.src_sectors[i];
    }

    if (s.src_num > 1 && (sn_id || sn_name)) {
        error_report("No support for concatenating multiple snapshot");
        goto out;
    }
    if ((sn_id || sn_name) &&
        img_load_snapshot(blk_bs(s.src[0]), sn_by_opts, sn_id, sn_name) < 0) {
        goto out;
    }

    drv = NULL;
    if (out_fmt) {
        drv = bdrv_find_format(out_fmt);
        if (!drv) {
            error_report("Unknown file format '%s'", out_fmt);
            goto out;
        }
    }

    if (!skip_create) {
        if (!img_util_can_create(drv)) {
            error_report("Format driver '%s' does not support image creation",
                         drv->format_name);
            goto out;
        }
        opts = img_util_create_opts(drv, options, &err);
        if (!opts) {
            error_report_err(err);
            goto out;
        }
        json_object_set_new(opts, "size",
                            json_integer(s.total_sectors * BDRV_SECTOR_SIZE));
        if (out_baseimg) {
            if (!drv->supports_backing) {
                error_report("Backing file not supported for file format "
                             "'%s'", out_fmt);
                goto out;
            }
            json_object_set_new(opts, "backing_file",
                                json_string(out_baseimg));
        }
        if (out_basefmt) {
            if (!drv->supports_backing) {
                error_report("Backing file format not supported for file "
                             "format '%s'", out_fmt);
                goto out;
            }
            json_object_set_new(opts, "backing_fmt",
                                json_string(out_basefmt));
        }
        if (json_string_value(json_object_get(opts, "backing_file"))) {
            out_baseimg = json_string_value(json_object_get(opts,
                                                            "backing_file"));
        }
    }
    s.target_has_backing = out_baseimg != NULL;

    if (target_is_zero && s.target_has_backing) {
        /* qemu-img 7.2 reports this but exits with status 0. */
        error_report("Cannot use --target-is-zero when the destination "
                     "image has a backing file");
        ret = 0;
        goto out;
    }
    if (s.src_num > 1 && out_baseimg) {
        error_report("Having a backing file for the target makes no sense "
                     "when concatenating multiple input images");
        goto out;
    }
    if (opts && json_object_get(opts, "backing_file") &&
        !json_object_get(opts, "backing_fmt")) {
        error_report("Use of backing file requires explicit backing format");
        goto out;
    }

    if (s.compressed && drv) {
        const char *prealloc = json_string_value(json_object_get(
                                                     opts, "preallocation"));

        if (!drv->bdrv_co_pwritev_compressed) {
            error_report("Compression not supported for this file format");
            goto out;
        }
        if (opts && (json_object_get(opts, "encryption") ||
                     json_object_get(opts, "encrypt.format"))) {
            error_report("Compression and encryption not supported at the "
                         "same time");
            goto out;
        }
        if (prealloc && strcmp(prealloc, "off")) {
            error_report("Compression and preallocation not supported at "
                         "the same time");
            goto out;
        }
    }

    if (bitmaps) {
        BlockDriverState *src_bs = img_skip_filters(blk_bs(s.src[0]));

        if (s.src_num > 1) {
            error_report("Copying bitmaps only possible with single source");
            goto out;
        }
        if (convert_check_bitmaps(src_bs, skip_broken) < 0) {
            goto out;
        }
    }

    if (!skip_create) {
        ret = img_util_create(drv, out_filename, opts, &err);
        if (ret < 0) {
            error_prepend(&err, "%s: error while converting %s: ",
                          out_filename, out_fmt);
            error_report_err(err);
            ret = -1;
            goto out;
        }
        ret = -1;
    }
    s.target_is_new = !skip_create;

    flags = s.min_sparse ? (BDRV_O_RDWR | BDRV_O_UNMAP) : BDRV_O_RDWR;
    if (img_parse_cache_mode(cache, &flags, &writethrough) < 0) {
        error_report("Invalid cache option: %s", cache);
        goto out;
    }
    s.target = img_open(tgt_image_opts, out_filename, out_fmt, flags,
                        writethrough, s.quiet, false);
    if (!s.target) {
        goto out;
    }
    out_bs = blk_bs(s.target);

    if (bitmaps && !supports_persistent_bitmaps(out_bs)) {
        error_report("Format driver '%s' does not support bitmaps",
                     out_bs->drv->format_name);
        goto out;
    }
    if (s.compressed && !out_bs->drv->bdrv_co_pwritev_compressed) {
        error_report("Compression not supported for this file format");
        goto out;
    }

    /* Larger buffers if the target prefers them, up to 16 MiB. */
    s.buf_sectors = MIN(CONVERT_MAX_BUF_SECTORS,
                        MAX(s.buf_sectors,
                            MAX(out_bs->bl.opt_transfer >> BDRV_SECTOR_BITS,
                                out_bs->bl.pdiscard_alignment >>
                                BDRV_SECTOR_BITS)));
    /* Align writes to the target to avoid read-modify-write. */
    s.alignment = MAX(pow2floor(s.min_sparse),
                      QB_DIV_ROUND_UP(out_bs->bl.request_alignment,
                                      BDRV_SECTOR_SIZE));
    s.alignment = MAX(s.alignment, 1);

    if (skip_create) {
        int64_t out_len = blk_getlength(s.target);

        if (out_len < 0) {
            error_report("unable to get output image length: %s",
                         strerror(-out_len));
            goto out;
        }
        if (QB_DIV_ROUND_UP(out_len, BDRV_SECTOR_SIZE) < s.total_sectors) {
            error_report("output file is smaller than input file");
            goto out;
        }
    }

    if (s.target_has_backing && s.target_is_new) {
        /* Only an optimisation: unknown (negative) is fine. */
        BlockDriverState *backing = bdrv_backing_chain_next(out_bs);
        int64_t blen = backing ? bdrv_getlength(backing) : -1;

        s.target_backing_sectors = blen < 0 ? -1 :
            QB_DIV_ROUND_UP(blen, BDRV_SECTOR_SIZE);
    }

    memset(&bdi, 0, sizeof(bdi));
    if (bdrv_get_info(out_bs, &bdi) < 0) {
        if (s.compressed) {
            error_report("could not get block driver info");
            goto out;
        }
    } else {
        s.cluster_sectors = bdi.cluster_size / BDRV_SECTOR_SIZE;
    }

    /* A new image without backing file reads as zeroes; so does one the
     * user vouches for (--target-is-zero). */
    s.has_zero_init = target_is_zero ||
        (s.target_is_new && s.min_sparse && !s.target_has_backing);
    s.rate_limit = rate_limit;

    ret = convert_do_copy(&s);
    if (ret == 0) {
        ret = blk_flush(s.target);
        if (ret < 0) {
            error_report("error while flushing: %s", strerror(-ret));
        }
    }
    if (ret == 0 && bitmaps) {
        ret = convert_copy_bitmaps(blk_bs(s.src[0]),
                                   img_skip_filters(out_bs), skip_broken);
    }

out:
    if (!ret) {
        img_progress_print(100, 0);
    }
    img_progress_end();
    json_decref(opts);
    if (s.target) {
        blk_unref(s.target);
    }
    for (int i = 0; s.src && i < s.src_num; i++) {
        if (s.src[i]) {
            blk_unref(s.src[i]);
        }
    }
    g_free(s.src);
    g_free(s.src_sectors);
    g_free(s.src_alignment);
    return ret ? 1 : 0;

out_noprogress:
    return 1;
}
