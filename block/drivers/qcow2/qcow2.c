/*
 * qcow2 driver: open/close/reopen, runtime options, header state changes
 * (dirty, corrupt, rewrite), image information and the driver vtable.
 * Header parsing lives in header.c, the data path in data.c, L1/L2 in
 * cluster.c, refcounts in refcount.c, the metadata cache in cache.c,
 * creation in create.c and qemu-img check in check.c.
 */
#include "qcow2.h"
#include "bitmap.h"
#include "block/options.h"
#include "block/check.h"
#include "util/bswap.h"

static int qcow2_write_incompat(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t v = GUINT64_TO_BE(s->incompatible_features);
    int ret;

    if (s->hi.h.version < 3) {
        return 0;
    }
    ret = bdrv_pwrite_sync(bs->file, 72, 8, &v, 0);
    return ret < 0 ? ret : 0;
}

void qcow2_signal_corruption(BlockDriverState *bs, bool fatal, int64_t offset,
                             int64_t size, const char *fmt, ...)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);

    if (s->signaled_corruption && (!fatal || (s->incompatible_features &
                                              QCOW2_INCOMPAT_CORRUPT))) {
        return;
    }
    /* QEMU prints these without the program-name prefix. */
    if (fatal) {
        fprintf(stderr, "qcow2: Marking image as corrupt: %s; further "
                "corruption events will be suppressed\n", msg);
    } else {
        fprintf(stderr, "qcow2: Image is corrupt: %s; further non-fatal "
                "corruption events will be suppressed\n", msg);
    }
    s->signaled_corruption = true;
    if (fatal && !bdrv_is_read_only(bs)) {
        s->incompatible_features |= QCOW2_INCOMPAT_CORRUPT;
        (void)qcow2_write_incompat(bs);
    }
    if (fatal) {
        s->broken = true;
    }
}

int qcow2_mark_dirty(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    if (!s->use_lazy_refcounts ||
        (s->incompatible_features & QCOW2_INCOMPAT_DIRTY)) {
        return 0;
    }
    ret = bdrv_flush(bs->file->bs);
    if (ret < 0) {
        return ret;
    }
    s->incompatible_features |= QCOW2_INCOMPAT_DIRTY;
    ret = qcow2_write_incompat(bs);
    if (ret < 0) {
        s->incompatible_features &= ~QCOW2_INCOMPAT_DIRTY;
    }
    return ret;
}

int qcow2_flush_caches(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    int ret = qcow2_cache_write(bs, s->l2_table_cache);
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_cache_write(bs, s->refcount_block_cache);
    if (ret < 0) {
        return ret;
    }
    return bdrv_flush(bs->file->bs);
}

int qcow2_mark_clean(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    if (!(s->incompatible_features & QCOW2_INCOMPAT_DIRTY)) {
        return 0;
    }
    ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        return ret;
    }
    s->incompatible_features &= ~QCOW2_INCOMPAT_DIRTY;
    return qcow2_write_incompat(bs);
}

int qcow2_update_header(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree uint8_t *buf = g_malloc0(s->cluster_size);
    int len, ret;

    s->hi.h.incompatible_features = s->incompatible_features;
    s->hi.h.compatible_features = s->compatible_features;
    s->hi.h.autoclear_features = s->autoclear_features;
    s->hi.h.l1_size = s->l1_size;
    len = qcow2_build_header(&s->hi, buf, s->cluster_size);
    if (len < 0) {
        return len;
    }
    s->hi.h.backing_file_offset = s->hi.backing_file ?
        GUINT64_FROM_BE(*(uint64_t *)(buf + 8)) : 0;
    s->hi.h.backing_file_size = s->hi.backing_file ?
        strlen(s->hi.backing_file) : 0;
    ret = bdrv_pwrite_sync(bs->file, 0, s->cluster_size, buf, 0);
    return ret < 0 ? ret : 0;
}

/* ------------------------------------------------------------------ */
/* Options                                                             */

static const char *const overlap_templates[] = {
    "none", "constant", "cached", "all", NULL
};
static const int overlap_template_bits[] = {
    0, QCOW2_OL_CONSTANT, QCOW2_OL_CACHED, QCOW2_OL_ALL
};
static const char *const overlap_names[] = {
    "main-header", "active-l1", "active-l2", "refcount-table",
    "refcount-block", "snapshot-table", "inactive-l1", "inactive-l2",
    "bitmap-directory",
};

static int parse_overlap(json_t *options, int *mask, Error **errp)
{
    json_t *ol = json_object_get(options, "overlap-check");
    g_autofree char *tmpl = NULL;
    json_t *obj = NULL;

    *mask = QCOW2_OL_CACHED;
    if (ol && json_is_string(ol)) {
        tmpl = g_strdup(json_string_value(ol));
    } else if (ol && json_is_object(ol)) {
        obj = ol;
        tmpl = qb_opt_take_str(obj, "template");
    }
    if (!tmpl) {
        tmpl = qb_opt_take_str(options, "overlap-check.template");
    }
    if (tmpl) {
        int i;
        for (i = 0; overlap_templates[i]; i++) {
            if (g_str_equal(tmpl, overlap_templates[i])) {
                break;
            }
        }
        if (!overlap_templates[i]) {
            error_setg(errp, "Unsupported value '%s' for qcow2 option "
                       "'overlap-check'. Allowed are any of the following: "
                       "none, constant, cached, all", tmpl);
            return -EINVAL;
        }
        *mask = overlap_template_bits[i];
    }
    for (size_t b = 0; b < QB_ARRAY_SIZE(overlap_names); b++) {
        g_autofree char *flat = g_strdup_printf("overlap-check.%s",
                                                overlap_names[b]);
        Error *err = NULL;
        json_t *src = obj && qb_opt_has(obj, overlap_names[b]) ? obj : options;
        const char *key = src == obj ? overlap_names[b] : flat;
        if (!qb_opt_has(src, key)) {
            continue;
        }
        bool on = qb_opt_take_bool(src, key, false, &err);
        if (err) {
            error_propagate(errp, err);
            return -EINVAL;
        }
        if (on) {
            *mask |= 1 << b;
        } else {
            *mask &= ~(1 << b);
        }
    }
    json_object_del(options, "overlap-check");
    return 0;
}

/* QEMU's cache size rules (see docs/drivers/qcow2.md). */
static int read_cache_sizes(BlockDriverState *bs, json_t *options,
                            uint64_t *l2_bytes, uint64_t *l2_entry_size,
                            uint64_t *rc_bytes, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    Error *err = NULL;
    bool has_combined = qb_opt_has(options, "cache-size");
    bool has_l2 = qb_opt_has(options, "l2-cache-size");
    bool has_rc = qb_opt_has(options, "refcount-cache-size");
    uint64_t combined = qb_opt_take_size(options, "cache-size", 0, &err);
    if (!err) {
        *l2_bytes = qb_opt_take_size(options, "l2-cache-size", 0, &err);
    }
    if (!err) {
        *rc_bytes = qb_opt_take_size(options, "refcount-cache-size", 0, &err);
    }
    if (!err) {
        *l2_entry_size = qb_opt_take_size(options, "l2-cache-entry-size",
                                          s->cluster_size, &err);
    }
    if (err) {
        error_propagate(errp, err);
        return -EINVAL;
    }
    uint64_t max_l2_entries = QB_DIV_ROUND_UP(s->hi.h.size,
                                              (uint64_t)s->cluster_size);
    uint64_t max_l2_cache = QB_ALIGN_UP(max_l2_entries * s->l2_entry_bytes,
                                        (uint64_t)s->cluster_size);
    uint64_t min_rc = 4 * (uint64_t)s->cluster_size;

    if (has_combined) {
        if (has_l2 && has_rc) {
            error_setg(errp, "cache-size, l2-cache-size and "
                       "refcount-cache-size may not be set at the same time");
            return -EINVAL;
        } else if (has_l2 && *l2_bytes > combined) {
            error_setg(errp, "l2-cache-size may not exceed cache-size");
            return -EINVAL;
        } else if (has_rc && *rc_bytes > combined) {
            error_setg(errp, "refcount-cache-size may not exceed cache-size");
            return -EINVAL;
        }
        if (has_l2) {
            *rc_bytes = combined - *l2_bytes;
        } else if (has_rc) {
            *l2_bytes = combined - *rc_bytes;
        } else {
            *l2_bytes = combined > min_rc ?
                        MIN(max_l2_cache, combined - min_rc) : 0;
            *rc_bytes = combined - *l2_bytes;
        }
    } else {
        if (!has_l2) {
            *l2_bytes = MIN(max_l2_cache, 32 * MiB);
        }
        if (!has_rc) {
            *rc_bytes = min_rc;
        }
    }
    if (*l2_entry_size < 512 || *l2_entry_size > (uint64_t)s->cluster_size ||
        !QB_IS_POWER_OF_2(*l2_entry_size)) {
        error_setg(errp, "L2 cache entry size must be a power of two "
                   "between %d and the cluster size (%d)", 512,
                   s->cluster_size);
        return -EINVAL;
    }
    return 0;
}

static int setup_caches(BlockDriverState *bs, json_t *options, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t l2_bytes = 0, l2_entry = 0, rc_bytes = 0, l2_n, rc_n;
    Error *err = NULL;
    int ret;

    ret = read_cache_sizes(bs, options, &l2_bytes, &l2_entry, &rc_bytes,
                           errp);
    if (ret < 0) {
        return ret;
    }
    l2_n = MAX(l2_bytes / l2_entry, 2);
    rc_n = MAX(rc_bytes / s->cluster_size, 4);
    if (l2_n > INT_MAX) {
        error_setg(errp, "L2 cache size too big");
        return -EINVAL;
    }
    if (rc_n > INT_MAX) {
        error_setg(errp, "Refcount cache size too big");
        return -EINVAL;
    }
    s->cache_clean_interval = qb_opt_take_int(options, "cache-clean-interval",
                                              600, &err);
    if (err) {
        error_propagate(errp, err);
        return -EINVAL;
    }
    if (s->cache_clean_interval > UINT_MAX) {
        error_setg(errp, "Cache clean interval too big");
        return -EINVAL;
    }
    s->l2_slice_size = l2_entry / s->l2_entry_bytes;
    s->l2_table_cache = qcow2_cache_create(bs, l2_n, l2_entry, "l2");
    s->refcount_block_cache = qcow2_cache_create(bs, rc_n, s->cluster_size,
                                                 "refcount");
    if (!s->l2_table_cache || !s->refcount_block_cache) {
        error_setg(errp, "Could not allocate metadata caches");
        return -ENOMEM;
    }
    return 0;
}

/* Drop metadata cache entries unused for a whole interval. */
static void cache_clean_timer_cb(void *opaque)
{
    BlockDriverState *bs = opaque;
    BDRVQcow2State *s = bs->opaque;

    qcow2_cache_clean_unused(s->l2_table_cache);
    qcow2_cache_clean_unused(s->refcount_block_cache);
    qb_timer_mod_ns(s->cache_clean_timer,
                    qb_clock_get_ns(QB_CLOCK_MONOTONIC) +
                    (int64_t)s->cache_clean_interval * 1000000000LL);
}

static void cache_clean_timer_init(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    if (s->cache_clean_interval == 0) {
        return;
    }
    s->cache_clean_timer = aio_timer_new(bs->aio_context ? bs->aio_context
                                         : qb_get_aio_context(),
                                         QB_CLOCK_MONOTONIC,
                                         cache_clean_timer_cb, bs);
    qb_timer_mod_ns(s->cache_clean_timer,
                    qb_clock_get_ns(QB_CLOCK_MONOTONIC) +
                    (int64_t)s->cache_clean_interval * 1000000000LL);
}

static void cache_clean_timer_del(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    if (s->cache_clean_timer) {
        qb_timer_del(s->cache_clean_timer);
        qb_timer_free(s->cache_clean_timer);
        s->cache_clean_timer = NULL;
    }
}

static int read_runtime_options(BlockDriverState *bs, json_t *options,
                                Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    Error *err = NULL;
    bool lazy_default = s->compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS;

    s->lazy_refcounts = qb_opt_take_bool(options, "lazy-refcounts",
                                         lazy_default, &err);
    if (!err) {
        s->discard_passthrough[QCOW2_DISCARD_NEVER] = false;
        s->discard_passthrough[QCOW2_DISCARD_ALWAYS] = true;
        s->discard_passthrough[QCOW2_DISCARD_REQUEST] =
            qb_opt_take_bool(options, "pass-discard-request", true, &err);
    }
    if (!err) {
        s->discard_passthrough[QCOW2_DISCARD_SNAPSHOT] =
            qb_opt_take_bool(options, "pass-discard-snapshot", true, &err);
    }
    if (!err) {
        s->discard_passthrough[QCOW2_DISCARD_OTHER] =
            qb_opt_take_bool(options, "pass-discard-other", false, &err);
    }
    if (err) {
        error_propagate(errp, err);
        return -EINVAL;
    }
    if (s->lazy_refcounts && s->hi.h.version < 3) {
        error_setg(errp, "Lazy refcounts require a qcow2 image with at least "
                   "qemu 1.1 compatibility level");
        return -EINVAL;
    }
    return parse_overlap(options, &s->overlap_check, errp);
}

static int qcow2_do_open(BlockDriverState *bs, json_t *options, int flags,
                         Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree uint8_t *buf = NULL;
    int64_t file_size;
    size_t buf_len;
    int ret;

    file_size = bdrv_getlength(bs->file->bs);
    if (file_size < 0) {
        error_setg_errno(errp, -file_size, "Could not read qcow2 header");
        return file_size;
    }
    /* Everything the header parser reads lies in the first cluster (at most
     * 2 MiB).  Read 64 KiB, and the rest of the cluster only if the header
     * says it is larger: reading and touching 2 MiB on every open was a
     * third of the CPU time of a small command such as info or check. */
    buf_len = MIN((uint64_t)file_size, 64 * KiB);
    buf_len = MAX(buf_len, (size_t)QCOW2_HEADER_SIZE);
    buf = g_malloc0(buf_len);
    ret = bdrv_pread(bs->file, 0, MIN((int64_t)buf_len, file_size), buf, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read qcow2 header");
        return ret;
    }
    if (file_size > (int64_t)buf_len) {
        uint32_t cb = ld32_be(buf + 20);
        if (cb > 16 && cb <= QCOW2_MAX_CLUSTER_BITS) {
            size_t want = MIN((uint64_t)file_size, (uint64_t)1 << cb);
            buf = g_realloc(buf, want);
            ret = bdrv_pread(bs->file, buf_len, want - buf_len, buf + buf_len,
                             0);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Could not read qcow2 header");
                return ret;
            }
            buf_len = want;
        }
    }
    if (file_size < QCOW2_V2_HEADER_SIZE) {
        buf_len = file_size;
    }
    ret = qcow2_parse_header(buf, buf_len, file_size, &s->hi, errp);
    if (ret < 0) {
        return ret;
    }
    if (s->hi.h.crypt_method) {
        error_setg(errp, "Parameter 'encrypt.key-secret' is required for "
                   "cipher");
        return -EINVAL;
    }
    s->incompatible_features = s->hi.h.incompatible_features;
    s->compatible_features = s->hi.h.compatible_features;
    s->autoclear_features = s->hi.h.autoclear_features;
    s->compression_type = s->hi.h.compression_type;
    if ((s->incompatible_features & QCOW2_INCOMPAT_CORRUPT) &&
        (flags & BDRV_O_RDWR) && !(flags & BDRV_O_CHECK)) {
        error_setg(errp, "qcow2: Image is corrupt; cannot be opened "
                   "read/write");
        return -EACCES;
    }
    qcow2_init_geometry(s, s->hi.h.cluster_bits, s->hi.h.refcount_order,
                        s->incompatible_features & QCOW2_INCOMPAT_EXTL2);
    s->l1_size = s->hi.h.l1_size;
    s->l1_vm_state_index = qcow2_l1_size_for(s->cluster_bits, s->extended_l2,
                                             s->hi.h.size);
    s->nb_snapshots = s->hi.h.nb_snapshots;
    s->snapshots_offset = s->hi.h.snapshots_offset;

    ret = read_runtime_options(bs, options, errp);
    if (ret < 0) {
        return ret;
    }
    ret = setup_caches(bs, options, errp);
    if (ret < 0) {
        return ret;
    }

    /* External data file. */
    if (s->incompatible_features & QCOW2_INCOMPAT_DATA_FILE) {
        s->data_file = bdrv_open_child(qb_opt_has(options, "data-file") ?
                                       NULL : s->hi.data_file,
                                       options, "data-file",
                                       bs, &child_of_bds, BDRV_CHILD_DATA,
                                       false, errp);
        if (!s->data_file) {
            if (errp && !*errp) {
                error_setg(errp, "data-file is required for this image");
            }
            return -EINVAL;
        }
        s->data_file_raw = s->autoclear_features & QCOW2_AUTOCLEAR_DATA_RAW;
    } else {
        if (qb_opt_has(options, "data-file")) {
            error_setg(errp, "'data-file' can only be set for images with an "
                       "external data file");
            return -EINVAL;
        }
        s->data_file = bs->file;
        if (s->autoclear_features & QCOW2_AUTOCLEAR_DATA_RAW) {
            /* Meaningless without a data file; dropped on a rw open. */
            s->autoclear_features &= ~QCOW2_AUTOCLEAR_DATA_RAW;
        }
    }

    /* Active L1 table. */
    if (s->l1_size) {
        s->l1_table = g_try_new0(uint64_t, s->l1_size);
        if (!s->l1_table) {
            error_setg(errp, "Could not allocate L1 table");
            return -ENOMEM;
        }
        ret = bdrv_pread(bs->file, s->hi.h.l1_table_offset,
                         (int64_t)s->l1_size * 8, s->l1_table, 0);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not read L1 table");
            return ret;
        }
        for (uint32_t i = 0; i < s->l1_size; i++) {
            s->l1_table[i] = GUINT64_FROM_BE(s->l1_table[i]);
        }
    }
    ret = qcow2_refcount_init(bs, errp);
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_read_snapshots(bs, errp);
    if (ret < 0) {
        return ret;
    }
    if (!s->use_lazy_refcounts) {
        qcow2_cache_set_dependency(s->l2_table_cache, s->refcount_block_cache);
    }
    co_mutex_init(&s->lock);

    /* Backing file, as recorded in the image; the core opens it. */
    if (s->hi.backing_file) {
        g_strlcpy(bs->backing_file, s->hi.backing_file,
                  sizeof(bs->backing_file));
        g_strlcpy(bs->auto_backing_file, s->hi.backing_file,
                  sizeof(bs->auto_backing_file));
    }
    if (s->hi.backing_fmt) {
        g_strlcpy(bs->backing_format, s->hi.backing_fmt,
                  sizeof(bs->backing_format));
    }

    if ((flags & BDRV_O_RDWR) && !(flags & BDRV_O_INACTIVE)) {
        bool update = false;
        s->use_lazy_refcounts = s->lazy_refcounts;
        if (s->use_lazy_refcounts) {
            qcow2_cache_set_dependency(s->l2_table_cache, NULL);
        }
        /* Repair after a crash with lazy refcounts. */
        if ((s->incompatible_features & QCOW2_INCOMPAT_DIRTY) &&
            !(flags & BDRV_O_CHECK)) {
            BdrvCheckResult res;
            memset(&res, 0, sizeof(res));
            ret = qcow2_co_check_impl(bs, &res, BDRV_FIX_ERRORS |
                                      BDRV_FIX_LEAKS);
            if (ret < 0 || res.check_errors) {
                error_setg_errno(errp, ret < 0 ? -ret : EIO,
                                 "Could not repair dirty image");
                return ret < 0 ? ret : -EIO;
            }
            s->incompatible_features &= ~QCOW2_INCOMPAT_DIRTY;
            update = true;
        }
        /*
         * We do not maintain bitmaps (bit 0) or anything we do not know:
         * clear those autoclear bits so their owners know the data went
         * stale (docs/shared qcow2-bitmaps.md §1).  Bit 1 (raw external data)
         * is ours and stays.
         */
        if (s->hi.h.version >= 3 &&
            (s->autoclear_features & ~(QCOW2_AUTOCLEAR_DATA_RAW |
                                       QCOW2_AUTOCLEAR_BITMAPS))) {
            /* bitmap.c maintains bit 0 (H12). */
            s->autoclear_features &= QCOW2_AUTOCLEAR_DATA_RAW |
                                     QCOW2_AUTOCLEAR_BITMAPS;
            update = true;
        }
        if (s->autoclear_features != s->hi.h.autoclear_features) {
            update = true;
        }
        if (update) {
            ret = qcow2_update_header(bs);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Could not update qcow2 header");
                return ret;
            }
        }
    }
    if (!(flags & BDRV_O_INACTIVE)) {
        /* Persistent bitmaps (bitmap.c): in_use set before any write. */
        ret = qcow2_load_dirty_bitmaps(bs, flags & BDRV_O_RDWR, errp);
        if (ret < 0) {
            return ret;
        }
    }
    cache_clean_timer_init(bs);
    bs->total_sectors = s->hi.h.size / BDRV_SECTOR_SIZE;
    /* No FUA: a FUA data write would leave its L2/refcount updates in the
     * caches; the core emulates FUA with a full flush instead (as QEMU). */
    bs->supported_write_flags = 0;
    bs->supported_zero_flags = BDRV_REQ_MAY_UNMAP | BDRV_REQ_NO_FALLBACK;
    bs->supported_truncate_flags = 0;
    return 0;
}

static void qcow2_free_state(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    cache_clean_timer_del(bs);
    qcow2_cache_destroy(s->l2_table_cache);
    qcow2_cache_destroy(s->refcount_block_cache);
    s->l2_table_cache = s->refcount_block_cache = NULL;
    qcow2_refcount_close(bs);
    g_free(s->l1_table);
    s->l1_table = NULL;
    qcow2_free_snapshots(bs);
    if (s->snapshot_l1s) {
        g_array_free(s->snapshot_l1s, true);
        s->snapshot_l1s = NULL;
    }
    qcow2_header_info_clear(&s->hi);
}

static int qcow2_open(BlockDriverState *bs, json_t *options, int flags,
                      Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    qcow2_header_info_init(&s->hi);
    if (!bs->file) {
        bs->file = bdrv_open_child(NULL, options, "file", bs, &child_of_bds,
                                   BDRV_CHILD_IMAGE, false, errp);
        if (!bs->file) {
            qcow2_header_info_clear(&s->hi);
            return -EINVAL;
        }
    }
    ret = qcow2_do_open(bs, options, flags, errp);
    if (ret < 0) {
        if (s->data_file && s->data_file != bs->file) {
            bdrv_unref_child(bs, s->data_file);
        }
        s->data_file = NULL;
        qcow2_free_state(bs);
    }
    return ret;
}

static int qcow2_inactivate(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    int ret = 0;

    if (s->l2_table_cache && bdrv_is_read_only(bs) && !s->closing) {
        /* The image may now belong to another process: no bitmap data may
         * stay pending on its disk (bitmap.c, rule 3). */
        qcow2_load_pending_bitmaps(bs);
    }
    if (!s->l2_table_cache || bdrv_is_read_only(bs) || s->broken) {
        return 0;
    }
    {
        Error *err = NULL;
        /* Stored bitmaps stay in RAM, readonly (released at close). */
        if (qcow2_store_persistent_dirty_bitmaps(bs, false, &err) < 0) {
            error_report("Lost persistent bitmaps during inactivation of "
                         "node '%s': %s", bs->node_name,
                         error_get_pretty(err));
            error_free(err);
        }
    }
    /* Each cache is flushed (and the file synced) on its own, and a
     * failure reported, as QEMU does; the image is marked clean only if
     * both reached the disk. */
    {
        int r = qcow2_cache_flush(bs, s->l2_table_cache);
        if (r < 0) {
            ret = r;
            error_report("Failed to flush the L2 table cache: %s",
                         strerror(-r));
        }
        r = qcow2_cache_flush(bs, s->refcount_block_cache);
        if (r < 0) {
            ret = r;
            error_report("Failed to flush the refcount block cache: %s",
                         strerror(-r));
        }
    }
    qcow2_trim_file_ahead(bs);   /* refcount.c */
    if (ret == 0) {
        ret = qcow2_mark_clean(bs);
    }
    return ret;
}

static void qcow2_close(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    s->closing = true;   /* bitmap.c: no need to load what dies now */
    if (!(bs->open_flags & BDRV_O_INACTIVE)) {
        (void)qcow2_inactivate(bs);
    }
    for (BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_first(bs), *next; bm;
         bm = next) {
        next = bdrv_dirty_bitmap_next(bm);
        if (bdrv_dirty_bitmap_get_persistent(bm)) {
            bdrv_release_dirty_bitmap(bm);
        }
    }
    if (s->data_file && s->data_file != bs->file) {
        bdrv_unref_child(bs, s->data_file);
    }
    s->data_file = NULL;
    qcow2_free_state(bs);
}

/* ------------------------------------------------------------------ */
/* Information                                                         */

static int qcow2_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    BDRVQcow2State *s = bs->opaque;
    bdi->cluster_size = s->cluster_size;
    bdi->vm_state_offset = (int64_t)s->l1_vm_state_index <<
                           (s->cluster_bits + s->l2_bits);
    bdi->is_dirty = s->incompatible_features & QCOW2_INCOMPAT_DIRTY;
    return 0;
}

/* The on-disk bitmap directory as qemu-img info lists it. */
static json_t *bitmaps_info(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t size = s->hi.bitmap_dir_size;
    g_autofree uint8_t *dir = NULL;
    json_t *list = json_array();

    if (!s->hi.has_bitmaps_ext || !size || size > 65535 * 1024) {
        return list;
    }
    dir = g_malloc(size);
    if (bdrv_pread(bs->file, s->hi.bitmap_dir_offset, size, dir, 0) < 0) {
        return list;
    }
    uint64_t off = 0;
    for (uint32_t i = 0; i < s->hi.nb_bitmaps && off + 24 <= size; i++) {
        uint32_t flags = GUINT32_FROM_BE(*(uint32_t *)(dir + off + 12));
        uint8_t gran = dir[off + 17];
        uint16_t name_len = GUINT16_FROM_BE(*(uint16_t *)(dir + off + 18));
        uint32_t extra = GUINT32_FROM_BE(*(uint32_t *)(dir + off + 20));
        if (off + 24 + extra + name_len > size) {
            break;
        }
        json_t *fl = json_array();
        if (flags & 1) {
            json_array_append_new(fl, json_string("in-use"));
        }
        if (flags & 2) {
            json_array_append_new(fl, json_string("auto"));
        }
        g_autofree char *name = g_strndup((char *)dir + off + 24 + extra,
                                          name_len);
        json_array_append_new(list, json_pack("{s:o, s:s, s:I}",
                                              "flags", fl, "name", name,
                                              "granularity",
                                              (json_int_t)1 << gran));
        off += QB_ALIGN_UP(24 + (uint64_t)extra + name_len, 8);
    }
    return list;
}

static json_t *qcow2_get_specific_info(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    json_t *data = json_object();

    if (s->hi.h.version == 2) {
        json_object_set_new(data, "compat", json_string("0.10"));
        json_object_set_new(data, "compression-type", json_string("zlib"));
        json_object_set_new(data, "refcount-bits",
                            json_integer(s->refcount_bits));
    } else {
        json_object_set_new(data, "compat", json_string("1.1"));
        json_object_set_new(data, "compression-type", json_string(
            s->compression_type == QCOW2_COMPRESSION_ZSTD ? "zstd" : "zlib"));
        json_object_set_new(data, "lazy-refcounts", json_boolean(
            s->compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS));
        if (s->hi.has_bitmaps_ext) {
            json_t *bl = qcow2_get_bitmap_info_list(bs, NULL);
            json_object_set_new(data, "bitmaps", bl ? bl : bitmaps_info(bs));
        }
        json_object_set_new(data, "refcount-bits",
                            json_integer(s->refcount_bits));
        if (s->hi.data_file || (s->incompatible_features &
                                QCOW2_INCOMPAT_DATA_FILE)) {
            if (s->hi.data_file) {
                json_object_set_new(data, "data-file",
                                    json_string(s->hi.data_file));
            }
            json_object_set_new(data, "data-file-raw", json_boolean(
                s->autoclear_features & QCOW2_AUTOCLEAR_DATA_RAW));
        }
        json_object_set_new(data, "corrupt", json_boolean(
            s->incompatible_features & QCOW2_INCOMPAT_CORRUPT));
        json_object_set_new(data, "extended-l2",
                            json_boolean(s->extended_l2));
    }
    return json_pack("{s:s, s:o}", "type", "qcow2", "data", data);
}

static void qcow2_refresh_limits(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    bs->bl.request_alignment = 1;
    /* No zero alignment: the core would turn unaligned heads and tails into
     * data writes, while qcow2_co_pwrite_zeroes makes them zero clusters
     * when the rest of the cluster already reads as zeros (as QEMU). */
    bs->bl.pwrite_zeroes_alignment = 0;
    bs->bl.pdiscard_alignment = s->cluster_size;
}

static int qcow2_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    if (buf_size >= 8 && GUINT32_FROM_BE(*(uint32_t *)buf) == QCOW2_MAGIC &&
        GUINT32_FROM_BE(*(uint32_t *)(buf + 4)) >= 2) {
        return 100;
    }
    return 0;
}

static int coroutine_fn qcow2_co_check(BlockDriverState *bs,
                                       BdrvCheckResult *result, int fix)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;
    co_mutex_lock(&s->lock);
    ret = qcow2_co_check_impl(bs, result, fix);
    co_mutex_unlock(&s->lock);
    return ret;
}

static int coroutine_fn qcow2_co_invalidate_cache(BlockDriverState *bs,
                                                  Error **errp)
{
    /* Activation: bitmaps are loaded now (opened inactive) or become
     * writable again (after an inactivation stored them). */
    if (!bdrv_has_persistent_bitmaps(bs)) {
        return qcow2_load_dirty_bitmaps(bs, !bdrv_is_read_only(bs), errp);
    }
    if (!bdrv_is_read_only(bs)) {
        return qcow2_reopen_bitmaps_rw(bs, errp);
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Reopen                                                              */

static int qcow2_reopen_prepare(BDRVReopenState *state,
                                BlockReopenQueue *queue, Error **errp)
{
    BlockDriverState *bs = state->bs;
    BDRVQcow2State *s = bs->opaque;
    int ret;

    /* Bitmap data is read lazily only while our image lock keeps other
     * writers out (bitmap.c, rule 4); a reopen may change that (force-share,
     * the file's locking, a new file child), so read what is still pending
     * while the image is surely ours.  Harmless if the reopen aborts. */
    qcow2_load_pending_bitmaps(bs);

    /* Keys we accept at runtime; their new values take effect on commit
     * (lazy-refcounts, discard and overlap options). */
    if (state->options) {
        BDRVQcow2State tmp = *s;
        ret = read_runtime_options(bs, state->options, errp);
        if (ret < 0) {
            *s = tmp;
            return ret;
        }
        state->opaque = g_memdup2(s, sizeof(*s));
        /* Restore live values until commit. */
        s->lazy_refcounts = tmp.lazy_refcounts;
        memcpy(s->discard_passthrough, tmp.discard_passthrough,
               sizeof(s->discard_passthrough));
        s->overlap_check = tmp.overlap_check;
        json_object_del(state->options, "cache-size");
        json_object_del(state->options, "l2-cache-size");
        json_object_del(state->options, "l2-cache-entry-size");
        json_object_del(state->options, "refcount-cache-size");
        json_object_del(state->options, "cache-clean-interval");
    }
    if (state->read_only && !bdrv_is_read_only(bs)) {
        ret = qcow2_reopen_bitmaps_ro(bs, errp);
        if (ret < 0) {
            return ret;
        }
        ret = qcow2_inactivate(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not flush qcow2 metadata");
            return ret;
        }
    }
    return 0;
}

static void qcow2_reopen_commit(BDRVReopenState *state)
{
    BDRVQcow2State *s = state->bs->opaque;
    BDRVQcow2State *n = state->opaque;
    if (n) {
        s->lazy_refcounts = n->lazy_refcounts;
        memcpy(s->discard_passthrough, n->discard_passthrough,
               sizeof(s->discard_passthrough));
        s->overlap_check = n->overlap_check;
        g_free(n);
        state->opaque = NULL;
    }
    if (!state->read_only) {
        s->use_lazy_refcounts = s->lazy_refcounts;
        qcow2_cache_set_dependency(s->l2_table_cache,
                                   s->use_lazy_refcounts ? NULL :
                                   s->refcount_block_cache);
    }
}

static void qcow2_reopen_commit_post(BDRVReopenState *state)
{
    BlockDriverState *bs = state->bs;
    BDRVQcow2State *s = bs->opaque;
    if (!state->read_only && s->hi.h.version >= 3 &&
        (s->autoclear_features & ~(QCOW2_AUTOCLEAR_DATA_RAW |
                                   QCOW2_AUTOCLEAR_BITMAPS))) {
        s->autoclear_features &= QCOW2_AUTOCLEAR_DATA_RAW |
                                 QCOW2_AUTOCLEAR_BITMAPS;
        if (qcow2_update_header(bs) < 0) {
            error_report("Could not update qcow2 header");
        }
    }
    if (!state->read_only) {
        Error *err = NULL;
        if (qcow2_reopen_bitmaps_rw(bs, &err) < 0) {
            error_report("%s: Failed to make dirty bitmaps writable: %s",
                         bs->node_name, error_get_pretty(err));
            error_free(err);
        }
    }
}

static void qcow2_reopen_abort(BDRVReopenState *state)
{
    g_free(state->opaque);
    state->opaque = NULL;
}

static void qcow2_child_perm(BlockDriverState *bs, BdrvChild *c,
                             BdrvChildRole role,
                             BlockReopenQueue *reopen_queue,
                             uint64_t perm, uint64_t shared,
                             uint64_t *nperm, uint64_t *nshared)
{
    bdrv_default_perms(bs, c, role, reopen_queue, perm, shared, nperm,
                       nshared);
}

static const char *const qcow2_mutable_opts[] = {
    "lazy-refcounts", "pass-discard-request", "pass-discard-snapshot",
    "pass-discard-other", "overlap-check", "overlap-check.template",
    "overlap-check.main-header", "overlap-check.active-l1",
    "overlap-check.active-l2", "overlap-check.refcount-table",
    "overlap-check.refcount-block", "overlap-check.snapshot-table",
    "overlap-check.inactive-l1", "overlap-check.inactive-l2",
    "overlap-check.bitmap-directory", "cache-size", "l2-cache-size",
    "l2-cache-entry-size", "refcount-cache-size", "cache-clean-interval",
    NULL
};

/*
 * qemu-img rebase/amend: new backing file name and format in the header
 * (the format goes into the backing format extension).  A raw external
 * data file must stay self-contained, so it cannot get a backing file.
 */
static int qcow2_change_backing_file(BlockDriverState *bs,
                                     const char *backing_file,
                                     const char *backing_fmt)
{
    BDRVQcow2State *s = bs->opaque;
    char *old_file = s->hi.backing_file, *old_fmt = s->hi.backing_fmt;
    int ret;

    if (backing_file && s->data_file_raw) {
        return -EINVAL;
    }
    if (backing_file && strlen(backing_file) > 1023) {
        return -EINVAL;
    }
    s->hi.backing_file = backing_file ? g_strdup(backing_file) : NULL;
    s->hi.backing_fmt = backing_file && backing_fmt ? g_strdup(backing_fmt)
                                                    : NULL;
    ret = qcow2_update_header(bs);
    if (ret < 0) {
        g_free(s->hi.backing_file);
        g_free(s->hi.backing_fmt);
        s->hi.backing_file = old_file;
        s->hi.backing_fmt = old_fmt;
        return ret;
    }
    g_free(old_file);
    g_free(old_fmt);
    return 0;
}

/*
 * qemu-img commit: empty the image completely, as QEMU does for v3 images
 * without snapshots, bitmaps or a data file: zero L1, a fresh refcount
 * structure (reftable in cluster 1, its only refblock in cluster 2), the
 * L1 table moved to cluster 3, and the file truncated behind it.  The
 * dirty bit covers the window where refcounts and metadata disagree.
 * Other images: -ENOTSUP (the caller keeps the data).
 */
static int qcow2_make_empty(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t l1_bytes = (uint64_t)s->l1_size * 8;
    int64_t l1_clusters = qcow2_size_to_clusters(s, l1_bytes);
    uint8_t fields[20];
    uint64_t v64;
    uint32_t v32;
    int64_t off;
    int ret;

    if (s->hi.h.version < 3 || s->nb_snapshots || s->hi.nb_bitmaps ||
        s->hi.has_bitmaps_ext || qcow2_has_data_file(s) ||
        3 + l1_clusters > s->refblock_size) {
        return -ENOTSUP;
    }
    ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_cache_empty(s->l2_table_cache);
    if (ret == 0) {
        ret = qcow2_cache_empty(s->refcount_block_cache);
    }
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_mark_dirty(bs);
    if (ret < 0) {
        return ret;
    }
    g_autofree uint8_t *zero = g_malloc0((2 + l1_clusters) * s->cluster_size);
    BLKDBG_EVENT(bs->file, BLKDBG_EV_L1_UPDATE);
    ret = bdrv_pwrite(bs->file, s->hi.h.l1_table_offset, l1_bytes, zero, 0);
    if (ret < 0) {
        return ret;
    }
    ret = bdrv_pwrite(bs->file, s->cluster_size,
                      (2 + l1_clusters) * s->cluster_size, zero, 0);
    if (ret < 0) {
        return ret;
    }
    memset(s->l1_table, 0, l1_bytes);

    /* l1_table_offset, refcount_table_offset, refcount_table_clusters. */
    BLKDBG_EVENT(bs->file, BLKDBG_EV_REFTABLE_UPDATE);
    v64 = GUINT64_TO_BE(3 * (uint64_t)s->cluster_size);
    memcpy(fields, &v64, 8);
    v64 = GUINT64_TO_BE((uint64_t)s->cluster_size);
    memcpy(fields + 8, &v64, 8);
    v32 = GUINT32_TO_BE(1);
    memcpy(fields + 16, &v32, 4);
    ret = bdrv_pwrite_sync(bs->file, 40, sizeof(fields), fields, 0);
    if (ret < 0) {
        return ret;
    }
    s->hi.h.l1_table_offset = 3 * (uint64_t)s->cluster_size;
    s->hi.h.refcount_table_offset = s->cluster_size;
    s->hi.h.refcount_table_clusters = 1;
    g_free(s->refcount_table);
    s->refcount_table_size = s->cluster_size / 8;
    s->refcount_table = g_new0(uint64_t, s->refcount_table_size);

    BLKDBG_EVENT(bs->file, BLKDBG_EV_REFBLOCK_ALLOC);
    v64 = GUINT64_TO_BE(2 * (uint64_t)s->cluster_size);
    ret = bdrv_pwrite_sync(bs->file, s->cluster_size, 8, &v64, 0);
    if (ret < 0) {
        return ret;
    }
    s->refcount_table[0] = 2 * (uint64_t)s->cluster_size;
    s->free_cluster_index = 0;
    /* Refcounts for header, reftable, refblock and the L1 table. */
    off = qcow2_alloc_clusters(bs, 3 * (uint64_t)s->cluster_size + l1_bytes);
    if (off < 0) {
        return off;
    }
    if (off != 0) {
        return -EIO;
    }
    ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_mark_clean(bs);
    if (ret < 0) {
        return ret;
    }
    return bdrv_truncate(bs->file, (3 + l1_clusters) * s->cluster_size,
                         false, PREALLOC_MODE_OFF, 0, NULL);
}

static const char *const qcow2_strong_runtime_opts[] = {
    "data-file", NULL
};

extern const CreateOptDesc qcow2_create_opts[];
int coroutine_fn qcow2_co_create(json_t *create_options, Error **errp);
int coroutine_fn qcow2_co_create_opts(BlockDriver *drv, const char *filename,
                                      json_t *opts, Error **errp);

BlockDriver bdrv_qcow2 = {
    .format_name = "qcow2",
    .instance_size = sizeof(BDRVQcow2State),
    .is_format = true,
    .supports_backing = true,
    .bdrv_probe = qcow2_probe,
    .bdrv_open = qcow2_open,
    .bdrv_close = qcow2_close,
    .bdrv_reopen_prepare = qcow2_reopen_prepare,
    .bdrv_reopen_commit = qcow2_reopen_commit,
    .bdrv_reopen_commit_post = qcow2_reopen_commit_post,
    .bdrv_reopen_abort = qcow2_reopen_abort,
    .bdrv_co_preadv = qcow2_co_preadv,
    .bdrv_co_pwritev = qcow2_co_pwritev,
    .bdrv_co_pwritev_compressed = qcow2_co_pwritev_compressed,
    .bdrv_co_pwrite_zeroes = qcow2_co_pwrite_zeroes,
    .bdrv_co_pdiscard = qcow2_co_pdiscard,
    .bdrv_co_flush_to_os = qcow2_co_flush_to_os,
    .bdrv_co_block_status = qcow2_co_block_status,
    .bdrv_co_truncate = qcow2_co_truncate,
    .bdrv_getlength = qcow2_getlength,
    .bdrv_get_allocated_file_size = qcow2_get_allocated_file_size,
    .bdrv_get_info = qcow2_get_info,
    .bdrv_get_specific_info = qcow2_get_specific_info,
    .bdrv_refresh_limits = qcow2_refresh_limits,
    .bdrv_child_perm = qcow2_child_perm,
    .bdrv_co_create = qcow2_co_create,
    .bdrv_co_create_opts = qcow2_co_create_opts,
    .create_opts = qcow2_create_opts,
    .amend_opts = qcow2_amend_opts,
    .bdrv_inactivate = qcow2_inactivate,
    .bdrv_co_invalidate_cache = qcow2_co_invalidate_cache,
    .bdrv_co_check = qcow2_co_check,
    .bdrv_snapshot_create = qcow2_snapshot_create,
    .bdrv_snapshot_goto = qcow2_snapshot_goto,
    .bdrv_snapshot_delete = qcow2_snapshot_delete,
    .bdrv_snapshot_list = qcow2_snapshot_list,
    .bdrv_snapshot_load_tmp = qcow2_snapshot_load_tmp,
    .bdrv_amend_options = qcow2_amend_options,
    .bdrv_change_backing_file = qcow2_change_backing_file,
    .bdrv_make_empty = qcow2_make_empty,
    .bdrv_measure = qcow2_measure,
    .bdrv_co_can_store_new_dirty_bitmap = qcow2_co_can_store_new_dirty_bitmap,
    .bdrv_co_remove_persistent_dirty_bitmap =
        qcow2_co_remove_persistent_dirty_bitmap,
    .bdrv_co_resync_persistent_dirty_bitmaps =
        qcow2_co_resync_persistent_dirty_bitmaps,
    .mutable_opts = qcow2_mutable_opts,
    .strong_runtime_opts = qcow2_strong_runtime_opts,
    .supported_write_flags = 0,
    .supported_zero_flags = BDRV_REQ_MAY_UNMAP | BDRV_REQ_NO_FALLBACK,
};
