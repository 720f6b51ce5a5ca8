/*
 * qcow2 image creation: blockdev-create form (bdrv_co_create, on an
 * existing protocol node) and qemu-img create form (bdrv_co_create_opts,
 * creating the file first).  The layout matches what qemu-img 7.2 writes:
 * header in cluster 0, refcount table in cluster 1, the first refcount
 * block in cluster 2, then the L1 table allocated by growing the empty
 * image to its size, then the final header (with the feature table and
 * backing file name) rewritten in place.
 */
#include "qcow2.h"
#include "block/block-backend.h"
#include "block/options.h"
#include "util/bswap.h"

typedef struct Qcow2CreateOpts {
    uint64_t size;
    int version;                 /* 2 or 3 */
    uint64_t cluster_size;
    uint64_t refcount_bits;
    bool lazy_refcounts;
    bool extended_l2;
    int compression_type;
    PreallocMode prealloc;
    char *backing_file;
    char *backing_fmt;
    char *data_file_name;        /* recorded in the header */
    bool data_file_raw;
    bool has_data_file;
} Qcow2CreateOpts;

/*
 * Size of the refcount structure (refblocks, reftable clusters) that
 * covers `clusters` clusters plus itself: grow both until they cover
 * their own clusters too.
 */
static void refcount_meta_size(BDRVQcow2State *s, int64_t clusters,
                               int64_t *blocks, int64_t *table)
{
    int64_t per_table = s->cluster_size / 8;
    int64_t b = 0, t = 0, prev;

    do {
        prev = b + t;
        b = QB_DIV_ROUND_UP(clusters + b + t, (int64_t)s->refblock_size);
        t = QB_DIV_ROUND_UP(b, per_table);
    } while (b + t != prev);
    *blocks = b;
    *table = t;
}

/*
 * A new refcount structure at `start` (cluster aligned, everything from
 * there on free) covering the image up to `start` plus `extra` clusters
 * and itself: the existing refblocks are kept, the missing ones follow
 * each other from `start`, then a reftable exactly as large as needed
 * (whole clusters).  All of these get refcount 1, the header is switched
 * to the new table and the old table freed.  Returns the first byte past
 * the new structure, or -errno.  This is the layout QEMU 7.2 gives
 * falloc/full preallocation, which the byte-identical images need.
 */
static int64_t refcount_area(BlockDriverState *bs, int64_t start,
                             int64_t extra)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t cs = s->cluster_size;
    int64_t nblocks, tclusters, tsize, first_rt, table_off, end, next;
    uint64_t old_off = s->hi.h.refcount_table_offset;
    uint64_t old_size = s->refcount_table_size;
    g_autofree uint64_t *table = NULL;
    uint8_t hdr[12];
    int64_t added = 0;
    int ret;

    refcount_meta_size(s, start / cs + extra, &nblocks, &tclusters);
    tsize = QB_ALIGN_UP(nblocks, cs / 8);
    tclusters = tsize * 8 / cs;
    if (tsize > QCOW2_MAX_REFTABLE_SIZE / 8) {
        return -EFBIG;
    }
    table = g_try_new0(uint64_t, tsize);
    if (!table) {
        return -ENOMEM;
    }
    memcpy(table, s->refcount_table, MIN(old_size, (uint64_t)tsize) * 8);
    first_rt = (start / cs) >> s->refblock_bits;
    for (int64_t i = first_rt; i < nblocks; i++) {
        added += !table[i];
    }
    table_off = start + added * cs;
    end = table_off + tclusters * cs;

    next = start;
    for (int64_t i = first_rt; i < nblocks; i++) {
        int64_t covered = (i << s->refblock_bits) * cs;
        void *block;

        if (table[i]) {
            ret = qcow2_cache_get(bs, s->refcount_block_cache,
                                  table[i] & REFT_OFFSET_MASK, &block);
        } else {
            ret = qcow2_cache_get_empty(bs, s->refcount_block_cache, next,
                                        &block);
            if (ret == 0) {
                memset(block, 0, cs);
                table[i] = next;
                next += cs;
            }
        }
        if (ret < 0) {
            return ret;
        }
        for (int64_t c = MAX(start, covered) / cs;
             c < MIN(end, covered + ((int64_t)s->refblock_size * cs)) / cs;
             c++) {
            qcow2_refcount_set_entry(block, s->refcount_order,
                                     c & (s->refblock_size - 1), 1);
        }
        qcow2_cache_entry_mark_dirty(s->refcount_block_cache, block);
        qcow2_cache_put(s->refcount_block_cache, &block);
    }
    assert(next == table_off);
    ret = qcow2_cache_flush(bs, s->refcount_block_cache);
    if (ret < 0) {
        return ret;
    }

    /* The new table, then the header pointing to it (invariant 2 of
     * refcount.c: a crash before the switch leaves only leaks). */
    for (int64_t i = 0; i < tsize; i++) {
        table[i] = GUINT64_TO_BE(table[i]);
    }
    ret = bdrv_pwrite_sync(bs->file, table_off, tsize * 8, table, 0);
    for (int64_t i = 0; i < tsize; i++) {
        table[i] = GUINT64_FROM_BE(table[i]);
    }
    if (ret < 0) {
        return ret;
    }
    st64_be(hdr, table_off);
    st32_be(hdr + 8, tclusters);
    ret = bdrv_pwrite_sync(bs->file, 48, sizeof(hdr), hdr, 0);
    if (ret < 0) {
        return ret;
    }
    g_free(s->refcount_table);
    s->refcount_table = g_steal_pointer(&table);
    s->refcount_table_size = tsize;
    s->hi.h.refcount_table_offset = table_off;
    s->hi.h.refcount_table_clusters = tclusters;
    qcow2_free_clusters(bs, old_off, old_size * 8, QCOW2_DISCARD_OTHER);
    return end;
}

/* Highest cluster with a non-zero refcount below `clusters`, or -1. */
static int64_t last_used_cluster(BlockDriverState *bs, int64_t clusters)
{
    uint64_t rc;

    for (int64_t c = clusters - 1; c >= 0; c--) {
        if (qcow2_get_refcount(bs, c, &rc) < 0) {
            return -1;
        }
        if (rc) {
            return c;
        }
    }
    return -1;
}

/*
 * The guest bytes [start of old_size's cluster, old_size) for a cluster
 * that preallocation re-allocates: copied to its new host cluster.  Only
 * data clusters have bytes to copy; zero and unallocated ones (without a
 * backing file) read as zero, as the fresh cluster does.
 */
static int copy_head(BlockDriverState *bs, int64_t old_size, int64_t host)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t head = qcow2_offset_into_cluster(s, old_size);
    uint64_t bytes = head, src = 0;
    Qcow2SubclusterType type;
    g_autofree uint8_t *buf = NULL;
    int ret;

    if (!head) {
        return 0;
    }
    ret = qcow2_get_host_offset(bs, old_size - head, &bytes, &src, &type);
    if (ret < 0) {
        return ret;
    }
    if (type == QCOW2_SC_ZERO_PLAIN || type == QCOW2_SC_ZERO_ALLOC ||
        ((type == QCOW2_SC_UNALLOCATED_PLAIN ||
          type == QCOW2_SC_UNALLOCATED_ALLOC) && !bs->backing)) {
        return 0;
    }
    buf = g_malloc(head);
    if (type != QCOW2_SC_NORMAL || (int64_t)bytes < head) {
        /* Compressed, from the backing file, or mixed subclusters: the
         * guest content, as QEMU copies it (H33, data.c). */
        ret = qcow2_read_cluster_locked(bs, old_size - head, head, buf);
    } else {
        ret = bdrv_pread(bs->file, src, head, buf, 0);
    }
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_pre_write_overlap_check(bs, 0, host, head);
    if (ret < 0) {
        return ret;
    }
    return bdrv_pwrite(bs->file, host, head, buf, 0);
}

int qcow2_preallocate_alloc(BlockDriverState *bs, int64_t old_size,
                            int64_t new_size, PreallocMode mode,
                            Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t cs = s->cluster_size;
    int64_t flen = bdrv_getlength(bs->file->bs);
    int64_t guest = qcow2_start_of_cluster(s, old_size);
    int64_t nb_data = (QB_ALIGN_UP(new_size, cs) - guest) / cs;
    int64_t nb_l2, last, start, host;
    g_autoptr(GArray) olds = g_array_new(false, false, sizeof(uint64_t));
    int ret;

    if (nb_data <= 0) {
        return 0;
    }
    if (flen < 0) {
        error_setg_errno(errp, -flen, "Could not get the file size");
        return flen;
    }
    last = last_used_cluster(bs, qcow2_size_to_clusters(s, flen));
    start = last >= 0 ? (last + 1) * cs : QB_ALIGN_UP(flen, cs);
    /* Room in the refcount structure for the data and its L2 tables, so
     * that linking them below never has to add a refblock (an extra
     * table covers an unaligned head or tail). */
    nb_l2 = QB_DIV_ROUND_UP(nb_data, (int64_t)s->l2_size) + 1;
    start = refcount_area(bs, start, nb_data + nb_l2);
    if (start < 0) {
        error_setg_errno(errp, -start, "Failed to resize refcount structures");
        return start;
    }
    ret = qcow2_update_refcount(bs, start, nb_data * cs, 1,
                                QCOW2_DISCARD_NEVER);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to allocate clusters for "
                         "preallocation");
        return ret;
    }
    ret = bdrv_truncate(bs->file, start + nb_data * cs, false, mode, 0, errp);
    if (ret < 0) {
        return ret;
    }
    ret = copy_head(bs, old_size, start);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not copy the last cluster");
        return ret;
    }

    /* Map every guest cluster to its new host cluster, one L2 slice at a
     * time (new L2 tables come from the normal allocator).  With extended
     * L2 entries the subcluster bitmap stays clear, as in QEMU: the
     * clusters are reserved and read as zero (or from the backing file). */
    host = start;
    while (nb_data > 0) {
        uint64_t *slice;
        int idx, n;

        ret = qcow2_get_l2_slice(bs, guest, true, &slice, &idx);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to update L2 tables");
            return ret;
        }
        n = MIN(nb_data, (int64_t)s->l2_slice_size - idx);
        g_array_set_size(olds, 0);
        for (int i = 0; i < n; i++) {
            uint64_t old = qcow2_l2_entry(s, slice, idx + i);
            qcow2_set_l2_entry(s, slice, idx + i,
                               (uint64_t)(host + (int64_t)i * cs) |
                               QCOW_OFLAG_COPIED);
            if (qcow2_entry_holds(s, old)) {
                g_array_append_val(olds, old);
            }
        }
        qcow2_cache_entry_mark_dirty(s->l2_table_cache, slice);
        qcow2_cache_put(s->l2_table_cache, (void **)&slice);
        /* Clusters the entries held before (a resize's partial last
         * cluster), freed once no L2 entry in the cache names them. */
        for (guint i = 0; i < olds->len; i++) {
            qcow2_free_any_cluster(bs, g_array_index(olds, uint64_t, i),
                                   QCOW2_DISCARD_OTHER);
        }
        guest += (int64_t)n * cs;
        host += (int64_t)n * cs;
        nb_data -= n;
    }
    ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to flush the metadata");
    }
    return ret;
}

static void create_opts_clear(Qcow2CreateOpts *o)
{
    g_free(o->backing_file);
    g_free(o->backing_fmt);
    g_free(o->data_file_name);
}

/* check_l1: qemu-img create refuses sizes whose L1 table would be too
 * large up front; blockdev-create only fails when growing the image. */
static int validate(Qcow2CreateOpts *o, bool check_l1, Error **errp)
{
    int v3hint_needed = o->version < 3;

    if (o->cluster_size < 512 || o->cluster_size > 2 * MiB ||
        !QB_IS_POWER_OF_2(o->cluster_size)) {
        error_setg(errp, "Cluster size must be a power of two between 512 "
                   "and 2048k");
        return -EINVAL;
    }
    if (o->extended_l2) {
        if (v3hint_needed) {
            error_setg(errp, "Extended L2 entries are only supported with "
                       "compatibility level 1.1 and above (use version=v3 "
                       "or greater)");
            return -EINVAL;
        }
        if (o->cluster_size < 16 * KiB) {
            error_setg(errp, "Extended L2 entries are only supported with "
                       "cluster sizes of at least 16384 bytes");
            return -EINVAL;
        }
    }
    /* QEMU 7.2's order of the remaining checks (observed). */
    if (o->backing_file && o->prealloc != PREALLOC_MODE_OFF &&
        !o->extended_l2) {
        error_setg(errp, "Backing file and preallocation can only be used at "
                   "the same time if extended_l2 is on");
        return -EINVAL;
    }
    if (v3hint_needed && o->lazy_refcounts) {
        error_setg(errp, "Lazy refcounts only supported with compatibility "
                   "level 1.1 and above (use version=v3 or greater)");
        return -EINVAL;
    }
    if (!QB_IS_POWER_OF_2(o->refcount_bits) || o->refcount_bits > 64) {
        error_setg(errp, "Refcount width must be a power of two and may not "
                   "exceed 64 bits");
        return -EINVAL;
    }
    if (v3hint_needed && o->refcount_bits != 16) {
        error_setg(errp, "Different refcount widths than 16 bits require "
                   "compatibility level 1.1 or above (use version=v3 or "
                   "greater)");
        return -EINVAL;
    }
    if (o->compression_type != QCOW2_COMPRESSION_ZLIB && v3hint_needed) {
        error_setg(errp, "Non-zlib compression type is only supported with "
                   "compatibility level 1.1 and above (use version=v3 or "
                   "greater)");
        return -EINVAL;
    }
    if (o->has_data_file && v3hint_needed) {
        error_setg(errp, "External data files are only supported with "
                   "compatibility level 1.1 and above (use version=v3 or "
                   "greater)");
        return -EINVAL;
    }
    if (o->data_file_raw && !o->has_data_file) {
        error_setg(errp, "data-file-raw requires data-file");
        return -EINVAL;
    }
    if (o->backing_fmt && !o->backing_file) {
        error_setg(errp, "Backing format cannot be used without backing "
                   "file");
        return -EINVAL;
    }
    if (o->backing_file && o->data_file_raw) {
        error_setg(errp, "Backing file and data-file-raw cannot be used at "
                   "the same time");
        return -EINVAL;
    }
    if (check_l1 &&
        qcow2_l1_size_for(__builtin_ctzll(o->cluster_size), o->extended_l2,
                          o->size) > QCOW2_MAX_L1_SIZE / 8) {
        error_setg(errp, "The image size is too large for file format "
                   "'qcow2' (try using a larger cluster size)");
        return -EINVAL;
    }
    if (o->size & 511) {
        error_setg(errp, "Image size must be a multiple of %u bytes", 512);
        return -EINVAL;
    }
    return 0;
}

/* Format file_bs (and record data_bs) as a qcow2 image. */
static int create_on(BlockDriverState *file_bs, BlockDriverState *data_bs,
                     Qcow2CreateOpts *o, bool check_l1, Error **errp)
{
    BlockBackend *blk;
    Qcow2HeaderInfo hi;
    int cs = o->cluster_size;
    int cluster_bits = __builtin_ctz(cs);
    int refcount_order = __builtin_ctzll(o->refcount_bits);
    g_autofree uint8_t *buf = NULL;
    json_t *qopts;
    bool alloc_prealloc;
    int ret;

    ret = validate(o, check_l1, errp);
    if (ret < 0) {
        return ret;
    }
    if (o->data_file_raw && o->prealloc == PREALLOC_MODE_OFF) {
        /* A raw data file is only valid with every cluster mapped. */
        o->prealloc = PREALLOC_MODE_METADATA;
    }

    blk = blk_new(qb_get_aio_context(), BLK_PERM_CONSISTENT_READ |
                  BLK_PERM_WRITE | BLK_PERM_RESIZE, BLK_PERM_ALL);
    ret = blk_insert_bs(blk, file_bs, errp);
    if (ret < 0) {
        blk_unref(blk);
        return ret;
    }
    /* Like QEMU, an existing file is not emptied first: bytes beyond the
     * new metadata stay (qemu-img create starts from an empty file). */
    blk_set_allow_write_beyond_eof(blk, true);

    /* Minimal image: header, refcount table, one refcount block. */
    qcow2_header_info_init(&hi);
    hi.h.magic = QCOW2_MAGIC;
    hi.h.version = o->version;
    hi.h.cluster_bits = cluster_bits;
    hi.h.refcount_table_offset = cs;
    hi.h.refcount_table_clusters = 1;
    hi.h.refcount_order = refcount_order;
    hi.h.header_length = QCOW2_HEADER_SIZE;
    hi.h.compression_type = o->compression_type;
    if (o->version >= 3) {
        if (o->extended_l2) {
            hi.h.incompatible_features |= QCOW2_INCOMPAT_EXTL2;
        }
        if (o->compression_type != QCOW2_COMPRESSION_ZLIB) {
            hi.h.incompatible_features |= QCOW2_INCOMPAT_COMPRESSION;
        }
        if (o->has_data_file) {
            hi.h.incompatible_features |= QCOW2_INCOMPAT_DATA_FILE;
        }
        if (o->lazy_refcounts) {
            hi.h.compatible_features |= QCOW2_COMPAT_LAZY_REFCOUNTS;
        }
        if (o->data_file_raw) {
            hi.h.autoclear_features |= QCOW2_AUTOCLEAR_DATA_RAW;
        }
    }
    /* The data file name is needed to open the image below. */
    hi.data_file = g_strdup(o->data_file_name);
    buf = g_malloc0(3 * cs);
    ret = qcow2_build_header(&hi, buf, cs);
    qcow2_header_info_clear(&hi);
    if (ret < 0) {
        error_setg(errp, "Header does not fit in a cluster");
        blk_unref(blk);
        return ret;
    }
    {
        uint64_t rt0 = GUINT64_TO_BE((uint64_t)2 * cs);
        memcpy(buf + cs, &rt0, 8);
        for (int i = 0; i < 3; i++) {
            qcow2_refcount_set_entry(buf + 2 * cs, refcount_order, i, 1);
        }
    }
    ret = blk_pwrite(blk, 0, 3 * cs, buf, 0);
    blk_unref(blk);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not write qcow2 header");
        return ret;
    }

    /* Open it as qcow2 and grow it to its size (this allocates the L1). */
    qopts = json_pack("{s:s, s:s}", "driver", "qcow2", "file",
                      bdrv_get_node_name(file_bs));
    if (data_bs) {
        json_object_set_new(qopts, "data-file",
                            json_string(bdrv_get_node_name(data_bs)));
    }
    blk = blk_new_open(NULL, NULL, qopts, BDRV_O_RDWR | BDRV_O_RESIZE |
                       BDRV_O_NO_FLUSH | BDRV_O_NO_BACKING, errp);
    if (!blk) {
        return -EIO;
    }
    /* falloc/full without a data file get QEMU's own layout (a fresh
     * refcount structure, then the data clusters in one run) from
     * qcow2_preallocate_alloc(); everything else preallocates metadata
     * (and the data file) through the driver's truncate. */
    alloc_prealloc = !data_bs && (o->prealloc == PREALLOC_MODE_FALLOC ||
                                  o->prealloc == PREALLOC_MODE_FULL);
    ret = blk_truncate(blk, o->size, true,
                       o->prealloc == PREALLOC_MODE_OFF || alloc_prealloc
                       ? PREALLOC_MODE_OFF : PREALLOC_MODE_METADATA,
                       0, errp);
    if (ret == 0 && alloc_prealloc) {
        ret = qcow2_preallocate_alloc(blk_bs(blk), 0, o->size, o->prealloc,
                                      errp);
    }
    if (ret < 0) {
        error_prepend(errp, "Could not resize image: ");
        blk_unref(blk);
        return ret;
    }
    {
        BlockDriverState *bs = blk_bs(blk);
        BDRVQcow2State *s = bs->opaque;
        g_free(s->hi.backing_file);
        g_free(s->hi.backing_fmt);
        s->hi.backing_file = g_strdup(o->backing_file);
        s->hi.backing_fmt = g_strdup(o->backing_fmt);
        ret = qcow2_update_header(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not update qcow2 header");
            blk_unref(blk);
            return ret;
        }
        if (data_bs) {
            /* The data file takes the data preallocation itself. */
            ret = bdrv_truncate(s->data_file, o->size, false,
                                o->prealloc == PREALLOC_MODE_METADATA
                                ? PREALLOC_MODE_OFF : o->prealloc, 0, errp);
            if (ret < 0) {
                blk_unref(blk);
                return ret;
            }
        }
    }
    blk_unref(blk);
    return 0;
}

static const char *const prealloc_names[] = {
    "off", "metadata", "falloc", "full", NULL
};
static const char *const compression_names[] = { "zlib", "zstd", NULL };

/*
 * A BlockdevRef: the name of a device or node (QEMU's lookup text when
 * missing), or an inline node definition opened for the creation only.
 * Returns a reference the caller drops.
 */
static BlockDriverState *open_ref(json_t *ref, Error **errp)
{
    if (json_is_string(ref)) {
        const char *name = json_string_value(ref);
        BlockDriverState *bs = bdrv_lookup_bs(name, name, errp);

        if (bs) {
            bdrv_ref(bs);
        }
        return bs;
    }
    /* QEMU's create job yields to the main loop before opening an inline
     * definition (its events then follow the command's reply); do the
     * same so the two are indistinguishable over QMP. */
    if (in_coroutine()) {
        aio_co_schedule(qb_get_current_aio_context(), coroutine_self());
        coroutine_yield();
    }
    return bdrv_open(NULL, NULL, json_deep_copy(ref), BDRV_O_RDWR, errp);
}

/* blockdev-create: {"driver":"qcow2","file":REF,"size":N,...}. */
int coroutine_fn qcow2_co_create(json_t *create_options, Error **errp)
{
    static const char *const version_names[] = { "v2", "v3", NULL };
    Qcow2CreateOpts o = { 0 };
    Error *err = NULL;
    BlockDriverState *file_bs, *data_bs = NULL;
    int v, ret;
    json_t *opts = json_deep_copy(create_options);
    json_t *file = json_incref(json_object_get(opts, "file"));
    json_t *data = json_incref(json_object_get(opts, "data-file"));
    bool encrypt = json_object_get(opts, "encrypt") != NULL;

    json_object_del(opts, "driver");
    json_object_del(opts, "file");
    json_object_del(opts, "data-file");
    json_object_del(opts, "encrypt");
    o.size = qb_opt_take_size(opts, "size", 0, &err);
    if (!err) {
        v = qb_opt_take_enum(opts, "version", version_names, 1, &err);
        o.version = v + 2;
    }
    if (!err) {
        o.cluster_size = qb_opt_take_size(opts, "cluster-size", 64 * KiB,
                                          &err);
    }
    if (!err) {
        o.refcount_bits = qb_opt_take_int(opts, "refcount-bits", 16, &err);
    }
    if (!err) {
        o.lazy_refcounts = qb_opt_take_bool(opts, "lazy-refcounts", false,
                                            &err);
    }
    if (!err) {
        o.extended_l2 = qb_opt_take_bool(opts, "extended-l2", false, &err);
    }
    if (!err) {
        o.compression_type = qb_opt_take_enum(opts, "compression-type",
                                              compression_names, 0, &err);
    }
    if (!err) {
        o.prealloc = qb_opt_take_enum(opts, "preallocation", prealloc_names,
                                      0, &err);
    }
    if (!err) {
        o.data_file_raw = qb_opt_take_bool(opts, "data-file-raw", false,
                                           &err);
    }
    o.backing_file = qb_opt_take_str(opts, "backing-file");
    o.backing_fmt = qb_opt_take_str(opts, "backing-fmt");
    json_decref(opts);
    ret = -EINVAL;
    if (err) {
        error_propagate(errp, err);
        goto out;
    }
    if (!file) {
        error_setg(errp, "Parameter 'file' is missing");
        goto out;
    }
    file_bs = open_ref(file, errp);
    if (!file_bs) {
        goto out;
    }
    if (data) {
        data_bs = open_ref(data, errp);
        if (!data_bs) {
            bdrv_unref(file_bs);
            goto out;
        }
        o.has_data_file = true;
        o.data_file_name = g_strdup(data_bs->filename);
    }
    if (encrypt) {
        /* Refuse rather than write an unencrypted image. */
        error_setg(errp, "qcow2 encryption is not supported");
    } else {
        ret = create_on(file_bs, data_bs, &o, false, errp);
    }
    if (data_bs) {
        bdrv_unref(data_bs);
    }
    bdrv_unref(file_bs);
out:
    json_decref(file);
    json_decref(data);
    create_opts_clear(&o);
    return ret;
}

static BlockDriverState *create_and_open_file(const char *filename,
                                              uint64_t size, Error **errp)
{
    BlockDriver *file_drv = bdrv_find_format("file");
    json_t *fopts;
    int ret;

    if (!file_drv || !file_drv->bdrv_co_create_opts) {
        error_setg(errp, "Protocol driver 'file' does not support image "
                   "creation");
        return NULL;
    }
    fopts = json_pack("{s:I}", "size", (json_int_t)size);
    ret = file_drv->bdrv_co_create_opts(file_drv, filename, fopts, errp);
    json_decref(fopts);
    if (ret < 0) {
        return NULL;
    }
    return bdrv_open(filename, NULL, json_pack("{s:s}", "driver", "file"),
                     BDRV_O_RDWR | BDRV_O_PROTOCOL | BDRV_O_RESIZE, errp);
}

/* qemu-img create -f qcow2 FILE -o ... */
int coroutine_fn qcow2_co_create_opts(BlockDriver *drv, const char *filename,
                                      json_t *opts_in, Error **errp)
{
    Qcow2CreateOpts o = { 0 };
    Error *err = NULL;
    json_t *opts = json_deep_copy(opts_in);
    g_autofree char *compat = NULL, *enc = NULL;
    BlockDriverState *file_bs = NULL, *data_bs = NULL;
    int ret = -EINVAL;

    o.size = qb_opt_take_size(opts, "size", 0, &err);
    o.size = QB_ALIGN_UP(o.size, 512);
    compat = qb_opt_take_str(opts, "compat");
    if (!compat || g_str_equal(compat, "1.1") || g_str_equal(compat, "v3")) {
        o.version = 3;
    } else if (g_str_equal(compat, "0.10") || g_str_equal(compat, "v2")) {
        o.version = 2;
    } else if (!err) {
        error_setg(&err, "Parameter 'version' does not accept value '%s'",
                   compat);
    }
    if (!err) {
        o.cluster_size = qb_opt_take_size(opts, "cluster_size", 64 * KiB,
                                          &err);
    }
    if (!err) {
        o.refcount_bits = qb_opt_take_int(opts, "refcount_bits", 16, &err);
    }
    if (!err) {
        o.lazy_refcounts = qb_opt_take_bool(opts, "lazy_refcounts", false,
                                            &err);
    }
    if (!err) {
        o.extended_l2 = qb_opt_take_bool(opts, "extended_l2", false, &err);
    }
    if (!err) {
        int ct = qb_opt_take_enum(opts, "compression_type", compression_names,
                                  0, NULL);
        if (ct < 0) {
            error_setg(&err, "Parameter 'compression-type' does not accept "
                       "value '%s'", qb_opt_get_str(opts, "compression_type"));
        }
        o.compression_type = ct;
    }
    if (!err) {
        int p = qb_opt_take_enum(opts, "preallocation", prealloc_names, 0,
                                 NULL);
        if (p < 0) {
            error_setg(&err, "Parameter 'preallocation' does not accept "
                       "value '%s'", qb_opt_get_str(opts, "preallocation"));
        }
        o.prealloc = p;
    }
    if (!err) {
        o.data_file_raw = qb_opt_take_bool(opts, "data_file_raw", false,
                                           &err);
    }
    if (!err) {
        bool e = qb_opt_take_bool(opts, "encryption", false, NULL);
        enc = qb_opt_take_str(opts, "encrypt.format");
        if (e || enc) {
            error_setg(&err, "Parameter 'encrypt.key-secret' is required for "
                       "cipher");
        }
    }
    o.backing_file = qb_opt_take_str(opts, "backing_file");
    o.backing_fmt = qb_opt_take_str(opts, "backing_fmt");
    o.data_file_name = qb_opt_take_str(opts, "data_file");
    o.has_data_file = o.data_file_name != NULL;
    json_decref(opts);
    if (!err && validate(&o, true, &err) == 0) {
        file_bs = create_and_open_file(filename, 0, &err);
    }
    if (file_bs && o.has_data_file) {
        data_bs = create_and_open_file(o.data_file_name, 0, &err);
    }
    if (!err) {
        ret = create_on(file_bs, data_bs, &o, true, &err);
    }
    if (data_bs) {
        bdrv_unref(data_bs);
    }
    if (file_bs) {
        bdrv_unref(file_bs);
    }
    if (err) {
        error_propagate(errp, err);
        ret = ret < 0 ? ret : -EINVAL;
    }
    create_opts_clear(&o);
    return ret;
}

/* In the order of qemu-img's "Formatting" line; "-o help" sorts them. */
const CreateOptDesc qcow2_create_opts[] = {
    { "encryption", CREATE_OPT_BOOL, "Encrypt the image with format 'aes'. "
      "(Deprecated in favor of encrypt.format=aes)", NULL },
    { "encrypt.format", CREATE_OPT_STRING, "Encrypt the image, format "
      "choices: 'aes', 'luks'", NULL },
    { "encrypt.key-secret", CREATE_OPT_STRING, "ID of secret providing qcow "
      "AES key or LUKS passphrase", NULL },
    { "encrypt.cipher-alg", CREATE_OPT_STRING, "Name of encryption cipher "
      "algorithm", NULL },
    { "encrypt.cipher-mode", CREATE_OPT_STRING, "Name of encryption cipher "
      "mode", NULL },
    { "encrypt.ivgen-alg", CREATE_OPT_STRING, "Name of IV generator "
      "algorithm", NULL },
    { "encrypt.ivgen-hash-alg", CREATE_OPT_STRING, "Name of IV generator "
      "hash algorithm", NULL },
    { "encrypt.hash-alg", CREATE_OPT_STRING, "Name of encryption hash "
      "algorithm", NULL },
    { "encrypt.iter-time", CREATE_OPT_NUMBER, "Time to spend in PBKDF in "
      "milliseconds", NULL },
    { "cluster_size", CREATE_OPT_SIZE, "qcow2 cluster size", "65536" },
    { "extended_l2", CREATE_OPT_BOOL, "Extended L2 tables", "off" },
    { "preallocation", CREATE_OPT_STRING, "Preallocation mode (allowed "
      "values: off, metadata, falloc, full)", NULL },
    { "compression_type", CREATE_OPT_STRING, "Compression method used for "
      "image cluster compression", "zlib" },
    { "size", CREATE_OPT_SIZE, "Virtual disk size", NULL },
    { "compat", CREATE_OPT_STRING, "Compatibility level (v2 [0.10] or v3 "
      "[1.1])", NULL },
    { "backing_file", CREATE_OPT_STRING, "File name of a base image", NULL },
    { "backing_fmt", CREATE_OPT_STRING, "Image format of the base image",
      NULL },
    { "data_file", CREATE_OPT_STRING, "File name of an external data file",
      NULL },
    { "data_file_raw", CREATE_OPT_BOOL, "The external data file must stay "
      "valid as a raw image", NULL },
    { "lazy_refcounts", CREATE_OPT_BOOL, "Postpone refcount updates", "off" },
    { "refcount_bits", CREATE_OPT_NUMBER, "Width of a reference count entry "
      "in bits", "16" },
    { NULL },
};
