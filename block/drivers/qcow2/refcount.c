/*
 * qcow2 reference counts: reading and changing the refcount of host
 * clusters, allocating fresh clusters (and byte ranges for compressed data),
 * creating refcount blocks and growing the refcount table, and the overlap
 * check that keeps data writes off metadata.
 *
 * Invariants:
 *  1. A cluster is free iff its refcount is 0; no free cluster lies below
 *     s->free_cluster_index.
 *  2. A new refcount block is on disk before the table entry pointing to it;
 *     a new table is on disk (with all its blocks) before the header points
 *     to it; the old table is freed only afterwards.  A crash in between
 *     leaves at most leaked clusters.
 *  3. A refcount decrement reaches the disk only after the L2 entries that
 *     referenced the cluster (the L2 cache is written first).
 *  4. Clusters past the refcount table's reach have refcount 0.
 */
#include "qcow2.h"

uint64_t qcow2_refcount_get_entry(const void *block, int order, uint64_t i)
{
    const uint8_t *b = block;
    switch (order) {
    case 0: case 1: case 2: {
        int bits = 1 << order;
        uint64_t bit = i * bits;
        return (b[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
    }
    case 3:
        return b[i];
    case 4: {
        uint16_t v; memcpy(&v, b + i * 2, 2); return GUINT16_FROM_BE(v);
    }
    case 5: {
        uint32_t v; memcpy(&v, b + i * 4, 4); return GUINT32_FROM_BE(v);
    }
    default: {
        uint64_t v; memcpy(&v, b + i * 8, 8); return GUINT64_FROM_BE(v);
    }
    }
}

void qcow2_refcount_set_entry(void *block, int order, uint64_t i, uint64_t v)
{
    uint8_t *b = block;
    switch (order) {
    case 0: case 1: case 2: {
        int bits = 1 << order;
        uint64_t bit = i * bits;
        uint8_t mask = ((1u << bits) - 1) << (bit % 8);
        b[bit / 8] = (b[bit / 8] & ~mask) | ((v << (bit % 8)) & mask);
        break;
    }
    case 3:
        b[i] = v;
        break;
    case 4: {
        uint16_t x = GUINT16_TO_BE(v); memcpy(b + i * 2, &x, 2); break;
    }
    case 5: {
        uint32_t x = GUINT32_TO_BE(v); memcpy(b + i * 4, &x, 4); break;
    }
    default: {
        uint64_t x = GUINT64_TO_BE(v); memcpy(b + i * 8, &x, 8); break;
    }
    }
}

int qcow2_refcount_init(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t bytes = (uint64_t)s->hi.h.refcount_table_clusters *
                     s->cluster_size;
    int ret;

    s->refcount_table_size = bytes / 8;
    s->refcount_table = g_try_malloc0(bytes);
    if (!s->refcount_table) {
        error_setg(errp, "Could not allocate refcount table");
        return -ENOMEM;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_EV_REFTABLE_LOAD);
    ret = bdrv_pread(bs->file, s->hi.h.refcount_table_offset, bytes,
                     s->refcount_table, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read refcount table");
        return ret;
    }
    for (uint32_t i = 0; i < s->refcount_table_size; i++) {
        s->refcount_table[i] = GUINT64_FROM_BE(s->refcount_table[i]);
    }
    return 0;
}

void qcow2_refcount_close(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    g_free(s->refcount_table);
    s->refcount_table = NULL;
    if (s->ol_index) {
        g_array_free(s->ol_index, true);
        s->ol_index = NULL;
    }
    s->ol_index_valid = false;
}

int qcow2_get_refcount(BlockDriverState *bs, int64_t cluster_index,
                       uint64_t *refcount)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t rt_index = cluster_index >> s->refblock_bits;
    uint64_t block_offset;
    void *block;
    int ret;

    if (rt_index >= s->refcount_table_size) {
        *refcount = 0;
        return 0;
    }
    block_offset = s->refcount_table[rt_index] & REFT_OFFSET_MASK;
    if (!block_offset) {
        *refcount = 0;
        return 0;
    }
    if (qcow2_offset_into_cluster(s, block_offset)) {
        qcow2_signal_corruption(bs, true, block_offset, -1,
                                "Refblock offset %#" PRIx64 " unaligned "
                                "(reftable index: %#" PRIx64 ")",
                                block_offset, rt_index);
        return -EIO;
    }
    ret = qcow2_cache_get(bs, s->refcount_block_cache, block_offset, &block);
    if (ret < 0) {
        return ret;
    }
    *refcount = qcow2_refcount_get_entry(block, s->refcount_order,
                                         cluster_index &
                                         (s->refblock_size - 1));
    qcow2_cache_put(s->refcount_block_cache, &block);
    return 0;
}

/* Find n free contiguous clusters at or after s->free_cluster_index, without
 * changing any refcount; advances free_cluster_index past them. */
static int64_t alloc_clusters_noref(BlockDriverState *bs, uint64_t n)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t limit = (QCOW2_MAX_IMAGE_SIZE >> s->cluster_bits) * 2;
    uint64_t i, found = 0, start = s->free_cluster_index;
    uint64_t rc;
    int ret;

    for (i = start; found < n; i++) {
        if (i >= limit) {
            return -EFBIG;
        }
        ret = qcow2_get_refcount(bs, i, &rc);
        if (ret < 0) {
            return ret;
        }
        if (rc) {
            found = 0;
            start = i + 1;
        } else {
            found++;
        }
        /* Whole uncovered refcount blocks are free: skip quickly. */
        if (found && !rc && (i >> s->refblock_bits) >= s->refcount_table_size) {
            uint64_t rest = n - found;
            i += rest;
            found += rest;
            break;
        }
    }
    s->free_cluster_index = start + n;
    return start << s->cluster_bits;
}

static int write_reftable_entry(BlockDriverState *bs, uint64_t index)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t be = GUINT64_TO_BE(s->refcount_table[index]);
    int64_t off = s->hi.h.refcount_table_offset + index * 8;
    int ret = qcow2_pre_write_overlap_check(bs, QCOW2_OL_REFCOUNT_TABLE,
                                            off, 8);
    if (ret < 0) {
        return ret;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_EV_REFTABLE_UPDATE);
    ret = bdrv_pwrite_sync(bs->file, off, 8, &be, 0);
    return ret < 0 ? ret : 0;
}

/*
 * Grow the refcount table so that index `needed` exists.  All clusters from
 * the old table's reach onwards are free (invariant 4), so the new blocks and
 * table go into a fresh area at or after area_start, covered by themselves.
 */
static int grow_refcount_table(BlockDriverState *bs, uint64_t needed,
                               uint64_t area_start)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t old_size = s->refcount_table_size;
    uint64_t N = s->refblock_size;
    uint64_t first_block = needed, last_block = needed;
    uint64_t nblocks = 1, table_entries, table_clusters = 0;
    g_autofree uint8_t *blocks = NULL;
    g_autofree uint64_t *table = NULL;
    uint64_t old_offset = s->hi.h.refcount_table_offset;
    uint64_t old_clusters = s->hi.h.refcount_table_clusters;
    int ret;

    area_start = MAX(area_start, old_size * N);
    /* Fixed point: the area must be covered by the blocks it contains. */
    for (int iter = 0; iter < 16; iter++) {
        table_entries = MAX(needed + 1, old_size);
        table_entries = MAX(table_entries, last_block + 1);
        table_entries += table_entries / 2;   /* headroom */
        table_clusters = QB_DIV_ROUND_UP(table_entries * 8, s->cluster_size);
        table_entries = table_clusters * s->cluster_size / 8;
        uint64_t area_end = area_start + nblocks + table_clusters; /* excl */
        uint64_t lb = MAX(needed, (area_end - 1) / N);
        uint64_t fb = MIN(needed, area_start / N);
        if (lb == last_block && fb == first_block &&
            nblocks == lb - fb + 1 && table_entries > lb) {
            break;
        }
        first_block = fb;
        last_block = lb;
        nblocks = lb - fb + 1;
    }
    if (table_entries * 8 > QCOW2_MAX_REFTABLE_SIZE) {
        return -EFBIG;
    }

    blocks = g_try_malloc0(nblocks * s->cluster_size);
    table = g_try_malloc0(table_clusters * s->cluster_size);
    if (!blocks || !table) {
        return -ENOMEM;
    }
    memcpy(table, s->refcount_table, old_size * 8);
    for (uint64_t k = 0; k < nblocks; k++) {
        table[first_block + k] = (area_start + k) << s->cluster_bits;
    }
    /* Refcount 1 for every cluster of the area. */
    for (uint64_t c = area_start; c < area_start + nblocks + table_clusters;
         c++) {
        uint64_t b = c / N - first_block;
        qcow2_refcount_set_entry(blocks + b * s->cluster_size,
                                 s->refcount_order, c % N, 1);
    }
    qcow2_note_file_end(s, (area_start + nblocks + table_clusters)
                           << s->cluster_bits);
    BLKDBG_EVENT(bs->file, BLKDBG_EV_REFBLOCK_ALLOC_WRITE_BLOCKS);
    ret = bdrv_pwrite(bs->file, area_start << s->cluster_bits,
                      nblocks * s->cluster_size, blocks, 0);
    if (ret < 0) {
        return ret;
    }
    for (uint64_t i = 0; i < table_entries; i++) {
        table[i] = GUINT64_TO_BE(table[i]);
    }
    BLKDBG_EVENT(bs->file, BLKDBG_EV_REFBLOCK_ALLOC_WRITE_TABLE);
    ret = bdrv_pwrite(bs->file, (area_start + nblocks) << s->cluster_bits,
                      table_clusters * s->cluster_size, table, 0);
    if (ret < 0) {
        return ret;
    }
    ret = bdrv_flush(bs->file->bs);
    if (ret < 0) {
        return ret;
    }
    /* Point the header at the new table (offset and cluster count). */
    {
        uint8_t hdr[12];
        uint64_t off_be = GUINT64_TO_BE((area_start + nblocks)
                                        << s->cluster_bits);
        uint32_t cl_be = GUINT32_TO_BE((uint32_t)table_clusters);
        memcpy(hdr, &off_be, 8);
        memcpy(hdr + 8, &cl_be, 4);
        BLKDBG_EVENT(bs->file, BLKDBG_EV_REFBLOCK_ALLOC_SWITCH_TABLE);
        ret = bdrv_pwrite_sync(bs->file, 48, 12, hdr, 0);
        if (ret < 0) {
            return ret;
        }
    }
    for (uint64_t i = 0; i < table_entries; i++) {
        table[i] = GUINT64_FROM_BE(table[i]);
    }
    qcow2_ol_index_invalidate(s);
    g_free(s->refcount_table);
    s->refcount_table = g_steal_pointer(&table);
    s->refcount_table_size = table_entries;
    s->hi.h.refcount_table_offset = (area_start + nblocks) << s->cluster_bits;
    s->hi.h.refcount_table_clusters = table_clusters;
    if (s->free_cluster_index < area_start + nblocks + table_clusters &&
        s->free_cluster_index >= area_start) {
        s->free_cluster_index = area_start + nblocks + table_clusters;
    }
    qcow2_free_clusters(bs, old_offset, old_clusters << s->cluster_bits,
                        QCOW2_DISCARD_OTHER);
    return 0;
}

/* Make sure the refcount block covering cluster_index exists. */
static int alloc_refcount_block(BlockDriverState *bs, uint64_t cluster_index,
                                int depth)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t r = cluster_index >> s->refblock_bits;
    uint64_t saved_free;
    int64_t f;
    void *block;
    int ret;

    if (depth > 8) {
        return -EIO;
    }
    if (r < s->refcount_table_size && s->refcount_table[r]) {
        return 0;
    }
    if (r >= s->refcount_table_size) {
        BLKDBG_EVENT(bs->file, BLKDBG_EV_REFTABLE_GROW);
        return grow_refcount_table(bs, r, MAX(s->free_cluster_index,
                                              cluster_index + 1));
    }

    /* Pick a free cluster for the block itself, past the clusters being
     * counted right now. */
    saved_free = s->free_cluster_index;
    s->free_cluster_index = MAX(s->free_cluster_index, cluster_index + 1);
    f = alloc_clusters_noref(bs, 1);
    if (f < 0) {
        s->free_cluster_index = saved_free;
        return f;
    }
    s->free_cluster_index = saved_free;
    if ((uint64_t)(f >> s->cluster_bits) >> s->refblock_bits != r) {
        /* The block lives in another block's reach: count it there. */
        uint64_t keep = s->free_cluster_index;
        s->free_cluster_index = MAX(keep, (uint64_t)(f >> s->cluster_bits) + 1);
        ret = alloc_refcount_block(bs, f >> s->cluster_bits, depth + 1);
        s->free_cluster_index = keep;
        if (ret < 0) {
            return ret;
        }
        ret = qcow2_update_refcount(bs, f, 1, 1, QCOW2_DISCARD_NEVER);
        if (ret < 0) {
            return ret;
        }
        /* A growth in the recursion may have created block r already. */
        if (s->refcount_table[r]) {
            qcow2_free_clusters(bs, f, s->cluster_size, QCOW2_DISCARD_NEVER);
            return 0;
        }
    }

    ret = qcow2_cache_get_empty(bs, s->refcount_block_cache, f, &block);
    if (ret < 0) {
        return ret;
    }
    memset(block, 0, s->cluster_size);
    if ((uint64_t)(f >> s->cluster_bits) >> s->refblock_bits == r) {
        qcow2_refcount_set_entry(block, s->refcount_order,
                                 (f >> s->cluster_bits) &
                                 (s->refblock_size - 1), 1);
    }
    qcow2_cache_entry_mark_dirty(s->refcount_block_cache, block);
    qcow2_cache_put(s->refcount_block_cache, &block);
    /* The block must be on disk before the table points to it. */
    BLKDBG_EVENT(bs->file, BLKDBG_EV_REFBLOCK_ALLOC_WRITE);
    ret = qcow2_cache_flush(bs, s->refcount_block_cache);
    if (ret < 0) {
        return ret;
    }
    qcow2_ol_index_invalidate(s);
    s->refcount_table[r] = f;
    BLKDBG_EVENT(bs->file, BLKDBG_EV_REFBLOCK_ALLOC_HOOKUP);
    ret = write_reftable_entry(bs, r);
    if (ret < 0) {
        s->refcount_table[r] = 0;
        return ret;
    }
    return 0;
}

static void discard_host(BlockDriverState *bs, int64_t offset, int64_t len,
                         Qcow2DiscardType type)
{
    BDRVQcow2State *s = bs->opaque;
    if (type == QCOW2_DISCARD_NEVER || !s->discard_passthrough[type] ||
        !in_coroutine()) {
        /* Outside coroutines (open-time repair) skip: it is only a hint. */
        return;
    }
    /* Best effort: a failed discard only costs space. */
    (void)bdrv_co_pdiscard(bs->file, offset, len);
}

int qcow2_update_refcount(BlockDriverState *bs, int64_t offset,
                          int64_t length, int64_t addend,
                          Qcow2DiscardType type)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t start, last;
    int ret;

    if (length <= 0) {
        return length < 0 ? -EINVAL : 0;
    }
    if (addend < 0 && s->inflight_io) {
        /* A cluster may go back to the allocator (and be reused) only
         * when no data transfer without the lock still touches it.  Before
         * any change here, so the wait (which drops s->lock) leaves no
         * half-done update behind. */
        qcow2_wait_host_idle(bs, qcow2_start_of_cluster(s, offset),
                             qcow2_start_of_cluster(s, offset + length - 1) +
                             s->cluster_size -
                             qcow2_start_of_cluster(s, offset));
    }
    if (addend < 0) {
        /* Invariant 3: drop L2 references on disk first. */
        ret = qcow2_cache_write(bs, s->l2_table_cache);
        if (ret < 0) {
            return ret;
        }
        qcow2_cache_depends_on_flush(s->refcount_block_cache);
    }
    start = qcow2_start_of_cluster(s, offset);
    last = qcow2_start_of_cluster(s, offset + length - 1);
    for (int64_t c = start, last_r = -1; c <= last; c += s->cluster_size) {
        uint64_t ci = c >> s->cluster_bits;
        uint64_t r = ci >> s->refblock_bits;
        uint64_t block_offset, rc;
        bool new_block = (int64_t)r != last_r;
        void *block;

        /* QEMU raises refblock_alloc whenever it looks up (and allocates
         * if missing) the block for the next run of clusters, and
         * refblock_load when it then loads it. */
        last_r = r;
        if (new_block) {
            BLKDBG_EVENT(bs->file, BLKDBG_EV_REFBLOCK_ALLOC);
        }
        if (addend > 0) {
            ret = alloc_refcount_block(bs, ci, 0);
            if (ret < 0) {
                return ret;
            }
        }
        if (r >= s->refcount_table_size || !s->refcount_table[r]) {
            qcow2_signal_corruption(bs, true, c, s->cluster_size,
                                    "Freeing cluster %#" PRIx64 " without "
                                    "refcount block", c);
            return -EIO;
        }
        block_offset = s->refcount_table[r] & REFT_OFFSET_MASK;
        if (new_block) {
            BLKDBG_EVENT(bs->file, BLKDBG_EV_REFBLOCK_LOAD);
        }
        ret = qcow2_cache_get(bs, s->refcount_block_cache, block_offset,
                              &block);
        if (ret < 0) {
            return ret;
        }
        rc = qcow2_refcount_get_entry(block, s->refcount_order,
                                      ci & (s->refblock_size - 1));
        if ((addend < 0 && rc < (uint64_t)-addend) ||
            (addend > 0 && rc + addend > s->refcount_max)) {
            qcow2_cache_put(s->refcount_block_cache, &block);
            if (addend < 0) {
                qcow2_signal_corruption(bs, true, c, s->cluster_size,
                                        "Refcount of cluster %#" PRIx64
                                        " would drop below zero", c);
                return -EIO;
            }
            return -ERANGE;
        }
        rc += addend;
        qcow2_refcount_set_entry(block, s->refcount_order,
                                 ci & (s->refblock_size - 1), rc);
        qcow2_cache_entry_mark_dirty(s->refcount_block_cache, block);
        qcow2_cache_put(s->refcount_block_cache, &block);
        if (rc == 0) {
            if (ci < s->free_cluster_index) {
                s->free_cluster_index = ci;
            }
            /* Compressed data must not be packed into this cluster once
             * it is reallocated (as a data cluster, say). */
            if (s->free_byte_offset &&
                qcow2_start_of_cluster(s, s->free_byte_offset) == c) {
                s->free_byte_offset = 0;
            }
            qcow2_cache_discard_range(s->l2_table_cache, c, s->cluster_size);
            qcow2_cache_discard_range(s->refcount_block_cache, c,
                                      s->cluster_size);
            discard_host(bs, c, s->cluster_size, type);
        }
    }
    return 0;
}

/*
 * The image file grows ahead of allocation.  A write past the end of the
 * file cannot complete asynchronously on Linux file systems (ext4 waits
 * for it inside io_submit, to update the file size), so a stream of writes
 * to fresh clusters at the end of the image would go out one at a time.
 * When a data-path allocation (s->grow_ok: data clusters and the L2 tables
 * they need, while other writes are in flight, see data.c) reaches past
 * the length we know, the file is extended (sparse, ftruncate) by as much
 * again as it holds, 1 MiB to 64 MiB at a time.
 * Nothing reads the tail: clusters past the last allocated one have
 * refcount 0 and are referenced by nothing, which is also what a crash
 * leaves (`check` reports no error or leak for them).
 *
 * qcow2_trim_file_ahead() cuts the unused tail off again at inactivation,
 * so the file ends where QEMU's would: at the end of the last byte
 * written.  s->alloc_end tracks that: the writers in this driver note what
 * they wrote (data, compressed data, cache entries, L1 and refcount
 * tables), and clusters other files allocate (snapshot tables, bitmaps)
 * are noted when allocated.  Anything written past it without a note
 * (check's refcount rebuild) is found with block status and kept.  Best
 * effort: a file child that can't be resized just isn't grown.
 */
void qcow2_note_file_end(BDRVQcow2State *s, uint64_t end)
{
    s->alloc_end = MAX(s->alloc_end, end);
}

static void grow_file_ahead(BlockDriverState *bs, uint64_t end)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t flen, target;

    if (!s->grow_ok || s->grow_off || !in_coroutine() ||
        (int64_t)end <= s->grown_len) {
        return;
    }
    flen = bdrv_getlength(bs->file->bs);
    if (flen < 0) {
        s->grow_off = true;
        return;
    }
    if (s->grown_len <= 0) {
        s->grown_base = flen;
    }
    if ((int64_t)end <= flen) {
        s->grown_len = flen;
        return;
    }
    target = end + MIN(MAX((int64_t)end, 1 * MiB), 64 * MiB);
    target = QB_ALIGN_UP(target, MAX(1 * MiB, (int64_t)s->cluster_size));
    if (bdrv_co_truncate(bs->file, target, false, PREALLOC_MODE_OFF, 0,
                         NULL) < 0 ||
        bdrv_getlength(bs->file->bs) != target) {
        /* Not a regular file (a block device keeps its size): don't try
         * again, and never trim what we didn't grow. */
        s->grow_off = true;
        s->grown_len = 0;
        return;
    }
    s->grown_len = target;
}

void qcow2_trim_file_ahead(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t flen, target, pos;

    if (s->grown_len <= 0 || !bs->file) {
        return;
    }
    flen = bdrv_getlength(bs->file->bs);
    target = MAX(s->grown_base, (int64_t)s->alloc_end);
    /* Someone else set the length since (make_empty, preallocation):
     * theirs stands. */
    if (flen != s->grown_len || flen <= target) {
        s->grown_len = 0;
        return;
    }
    s->grown_len = 0;
    /* Keep whatever was written past the notes (whole clusters; block
     * status sees file system blocks, so the one holding the last noted
     * byte reads as data and is skipped). */
    pos = QB_ALIGN_UP(target, MAX(s->cluster_size, 4096));
    while (pos < flen) {
        int64_t pnum = 0, map;
        BlockDriverState *file;
        int st = bdrv_block_status(bs->file->bs, pos, flen - pos, &pnum,
                                   &map, &file);
        if (st < 0 || pnum <= 0) {
            return;   /* unknown: keep the file as it is */
        }
        if (st & BDRV_BLOCK_DATA) {
            target = pos + pnum;
        }
        pos += pnum;
    }
    if (target < flen &&
        bdrv_truncate(bs->file, target, true, PREALLOC_MODE_OFF, 0,
                      NULL) < 0) {
        /* Only a longer, sparse file: nothing refers to the tail. */
        warn_report("Failed to truncate the tail of the image");
    }
}

/* note: also count the run as written (see grow_file_ahead()). */
static int64_t alloc_clusters(BlockDriverState *bs, uint64_t size,
                              bool note);

int64_t qcow2_alloc_clusters(BlockDriverState *bs, uint64_t size)
{
    return alloc_clusters(bs, size, true);
}

int64_t qcow2_alloc_own_clusters(BlockDriverState *bs, uint64_t size)
{
    return alloc_clusters(bs, size, false);
}

static int64_t alloc_clusters(BlockDriverState *bs, uint64_t size,
                              bool note)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t n = QB_DIV_ROUND_UP(size, s->cluster_size);
    int64_t off;
    int ret;

    BLKDBG_EVENT(bs->file, BLKDBG_EV_CLUSTER_ALLOC);
    /* A block allocation inside the update may pick clusters we just
     * chose if the refcounts are not yet set: retry until stable. */
    for (int tries = 0; tries < 16; tries++) {
        off = alloc_clusters_noref(bs, n);
        if (off < 0) {
            return off;
        }
        uint64_t rc = 0;
        bool still_free = true;
        for (uint64_t i = 0; i < n && still_free; i++) {
            /* Blocks created for earlier clusters of this range may have
             * landed inside it only if it was not free: re-check. */
            ret = qcow2_get_refcount(bs, (off >> s->cluster_bits) + i, &rc);
            if (ret < 0) {
                return ret;
            }
            still_free = rc == 0;
        }
        if (!still_free) {
            continue;
        }
        ret = qcow2_update_refcount(bs, off, n << s->cluster_bits, 1,
                                    QCOW2_DISCARD_NEVER);
        if (ret < 0) {
            return ret;
        }
        if (note) {
            qcow2_note_file_end(s, off + size);
        }
        grow_file_ahead(bs, off + (n << s->cluster_bits));
        return off;
    }
    return -EIO;
}

int64_t qcow2_alloc_bytes(BlockDriverState *bs, int size)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t off;
    int ret;

    assert(size > 0 && size <= s->cluster_size);
    BLKDBG_EVENT(bs->file, BLKDBG_EV_CLUSTER_ALLOC_BYTES);
    if (s->free_byte_offset &&
        qcow2_offset_into_cluster(s, s->free_byte_offset) &&
        qcow2_offset_into_cluster(s, s->free_byte_offset) + size <=
        s->cluster_size) {
        uint64_t rc;
        off = s->free_byte_offset;
        ret = qcow2_get_refcount(bs, off >> s->cluster_bits, &rc);
        if (ret < 0) {
            return ret;
        }
        if (rc > 0 && rc < s->refcount_max) {
            ret = qcow2_update_refcount(bs, off, 1, 1, QCOW2_DISCARD_NEVER);
            if (ret < 0) {
                return ret;
            }
            s->free_byte_offset = off + size;
            return off;
        }
    }
    off = alloc_clusters(bs, s->cluster_size, false);
    if (off < 0) {
        return off;
    }
    s->free_byte_offset = off + size;
    return off;
}

void qcow2_free_clusters(BlockDriverState *bs, int64_t offset, int64_t size,
                         Qcow2DiscardType type)
{
    int ret;

    BLKDBG_EVENT(bs->file, BLKDBG_EV_CLUSTER_FREE);
    ret = qcow2_update_refcount(bs, offset, size, -1, type);
    if (ret < 0) {
        /* Only a leak: report it, as QEMU does, and carry on. */
        fprintf(stderr, "qcow2_free_clusters failed: %s\n", strerror(-ret));
    }
}

void qcow2_free_any_cluster(BlockDriverState *bs, uint64_t l2_entry,
                            Qcow2DiscardType type)
{
    BDRVQcow2State *s = bs->opaque;

    if (l2_entry & QCOW_OFLAG_COMPRESSED) {
        uint64_t coff = l2_entry & s->cluster_offset_mask;
        int nb = ((l2_entry >> s->csize_shift) & s->csize_mask) + 1;
        qcow2_free_clusters(bs, coff & ~UINT64_C(511), nb * 512, type);
        return;
    }
    uint64_t off = l2_entry & L2E_OFFSET_MASK;
    if (!qcow2_entry_has_host(s, l2_entry)) {
        return;
    }
    if (qcow2_has_data_file(s)) {
        if (type != QCOW2_DISCARD_NEVER && s->discard_passthrough[type] &&
            in_coroutine()) {
            (void)bdrv_co_pdiscard(s->data_file, off, s->cluster_size);
        }
        return;
    }
    qcow2_free_clusters(bs, off, s->cluster_size, type);
}

static const char *const ol_names[] = {
    "qcow2_header", "active L1 table", "active L2 table", "refcount table",
    "refcount block", "snapshot table", "inactive L1 table",
    "inactive L2 table", "bitmap directory",
};

static bool overlaps(int64_t a, int64_t alen, int64_t b, int64_t blen)
{
    return alen > 0 && blen > 0 && a < b + blen && b < a + alen;
}

/*
 * The overlap-check index.  Checking a write against the active L2 tables
 * and the refcount blocks by walking s->l1_table and s->refcount_table
 * costs O(table size) per write (8192 reftable entries for a 64 KiB
 * cluster image of any size); the index answers the same question with a
 * binary search.  Entries are host offsets (cluster aligned) with
 * OL_IDX_L2 / OL_IDX_RB in the low bits, sorted by offset.
 *
 * Exactness (invariant 18): the index is built from the tables and used
 * only while nothing changed an offset in them since.  Every change to an
 * L1 or refcount-table offset either calls qcow2_ol_index_invalidate()
 * (cluster.c, refcount.c, data.c: L2 table allocation, L1 and refcount
 * table growth, refcount block allocation, shrinking) or happens in an
 * operation that first quiesces data I/O (snapshots, amend, resize:
 * qcow2_quiesce_data_io() invalidates) or empties the metadata caches
 * (check's refcount rebuild, make_empty: qcow2_cache_empty() invalidates);
 * a table replaced by a new allocation changes the pointer, size or offset
 * recorded in the stamp.  The index is rebuilt only by the data path under
 * s->lock, where no such operation can be half-way (they hold the lock
 * from before their first change to after their last), so a rebuild never
 * captures an intermediate state.  Setting QBLOCK_QCOW2_OL_VERIFY=1 in the
 * environment compares every answer with the full walk (abort on a
 * difference), for tests.
 */
#define OL_IDX_L2 UINT64_C(1)
#define OL_IDX_RB UINT64_C(2)
#define OL_IDX_KINDS (OL_IDX_L2 | OL_IDX_RB)

void qcow2_ol_index_invalidate(BDRVQcow2State *s)
{
    s->ol_index_valid = false;
}

static bool ol_index_usable(BDRVQcow2State *s)
{
    return s->ol_index_valid && s->ol_stamp_l1 == s->l1_table &&
           s->ol_stamp_l1_size == s->l1_size &&
           s->ol_stamp_l1_off == s->hi.h.l1_table_offset &&
           s->ol_stamp_rt == s->refcount_table &&
           s->ol_stamp_rt_size == s->refcount_table_size &&
           s->ol_stamp_rt_off == s->hi.h.refcount_table_offset;
}

static gint cmp_u64(gconstpointer a, gconstpointer b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The index's entries for the tables as they are now, into a. */
static void ol_index_build(BDRVQcow2State *s, GArray *a)
{
    g_array_set_size(a, 0);
    for (uint32_t i = 0; s->l1_table && i < s->l1_size; i++) {
        uint64_t l2 = s->l1_table[i] & L1E_OFFSET_MASK;
        if (l2) {
            uint64_t e = qcow2_start_of_cluster(s, l2) | OL_IDX_L2;
            g_array_append_val(a, e);
        }
    }
    for (uint32_t i = 0; s->refcount_table && i < s->refcount_table_size;
         i++) {
        uint64_t rb = s->refcount_table[i] & REFT_OFFSET_MASK;
        if (rb) {
            uint64_t e = qcow2_start_of_cluster(s, rb) | OL_IDX_RB;
            g_array_append_val(a, e);
        }
    }
    g_array_sort(a, cmp_u64);
}

void qcow2_ol_index_refresh(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    if (ol_index_usable(s) ||
        !(s->overlap_check & (QCOW2_OL_ACTIVE_L2 | QCOW2_OL_REFCOUNT_BLOCK))) {
        return;
    }
    if (!s->ol_index) {
        s->ol_index = g_array_new(false, false, sizeof(uint64_t));
    }
    ol_index_build(s, s->ol_index);
    s->ol_stamp_l1 = s->l1_table;
    s->ol_stamp_l1_size = s->l1_size;
    s->ol_stamp_l1_off = s->hi.h.l1_table_offset;
    s->ol_stamp_rt = s->refcount_table;
    s->ol_stamp_rt_size = s->refcount_table_size;
    s->ol_stamp_rt_off = s->hi.h.refcount_table_offset;
    s->ol_index_valid = true;
}

/* Which of ACTIVE_L2 / REFCOUNT_BLOCK (in chk) the cluster-aligned range
 * [offset, offset+size) hits, by the index; ACTIVE_L2 first, as the walk. */
static int ol_index_lookup(BDRVQcow2State *s, int chk, int64_t offset,
                           int64_t size)
{
    const uint64_t *v = (const uint64_t *)s->ol_index->data;
    guint lo = 0, hi = s->ol_index->len;
    uint64_t kinds = 0;

    while (lo < hi) {   /* first entry at or after offset */
        guint mid = lo + (hi - lo) / 2;
        if ((v[mid] & ~OL_IDX_KINDS) < (uint64_t)offset) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    for (guint i = lo; i < s->ol_index->len &&
         (v[i] & ~OL_IDX_KINDS) < (uint64_t)(offset + size); i++) {
        kinds |= v[i] & OL_IDX_KINDS;
    }
    if ((chk & QCOW2_OL_ACTIVE_L2) && (kinds & OL_IDX_L2)) {
        return QCOW2_OL_ACTIVE_L2;
    }
    if ((chk & QCOW2_OL_REFCOUNT_BLOCK) && (kinds & OL_IDX_RB)) {
        return QCOW2_OL_REFCOUNT_BLOCK;
    }
    return 0;
}

/* The same answer by walking the tables. */
static int ol_walk(BDRVQcow2State *s, int chk, int64_t offset, int64_t size)
{
    if ((chk & QCOW2_OL_ACTIVE_L2) && s->l1_table) {
        for (uint32_t i = 0; i < s->l1_size; i++) {
            uint64_t l2 = s->l1_table[i] & L1E_OFFSET_MASK;
            if (l2 && overlaps(offset, size, l2, s->cluster_size)) {
                return QCOW2_OL_ACTIVE_L2;
            }
        }
    }
    if ((chk & QCOW2_OL_REFCOUNT_BLOCK) && s->refcount_table) {
        for (uint32_t i = 0; i < s->refcount_table_size; i++) {
            uint64_t rb = s->refcount_table[i] & REFT_OFFSET_MASK;
            if (rb && overlaps(offset, size, rb, s->cluster_size)) {
                return QCOW2_OL_REFCOUNT_BLOCK;
            }
        }
    }
    return 0;
}

static bool ol_verify(void)
{
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("QBLOCK_QCOW2_OL_VERIFY");
        on = e && *e && strcmp(e, "0");
    }
    return on;
}

int qcow2_check_metadata_overlap(BlockDriverState *bs, int ign,
                                 int64_t offset, int64_t size)
{
    BDRVQcow2State *s = bs->opaque;
    int chk = s->overlap_check & ~ign;
    int ret;

    if (!size || !chk) {
        return 0;
    }
    size = QB_ALIGN_UP(qcow2_offset_into_cluster(s, offset) + size,
                       s->cluster_size);
    offset = qcow2_start_of_cluster(s, offset);

    if ((chk & QCOW2_OL_MAIN_HEADER) && offset < s->cluster_size) {
        return QCOW2_OL_MAIN_HEADER;
    }
    if ((chk & QCOW2_OL_ACTIVE_L1) &&
        overlaps(offset, size, s->hi.h.l1_table_offset,
                 (int64_t)s->l1_size * 8)) {
        return QCOW2_OL_ACTIVE_L1;
    }
    if ((chk & QCOW2_OL_REFCOUNT_TABLE) &&
        overlaps(offset, size, s->hi.h.refcount_table_offset,
                 (int64_t)s->refcount_table_size * 8)) {
        return QCOW2_OL_REFCOUNT_TABLE;
    }
    if ((chk & QCOW2_OL_SNAPSHOT_TABLE) &&
        overlaps(offset, size, s->snapshots_offset, s->snapshots_size)) {
        return QCOW2_OL_SNAPSHOT_TABLE;
    }
    if ((chk & QCOW2_OL_INACTIVE_L1) && s->snapshot_l1s) {
        for (guint i = 0; i + 1 < s->snapshot_l1s->len; i += 2) {
            if (overlaps(offset, size,
                         g_array_index(s->snapshot_l1s, uint64_t, i),
                         g_array_index(s->snapshot_l1s, uint64_t, i + 1))) {
                return QCOW2_OL_INACTIVE_L1;
            }
        }
    }
    if (chk & (QCOW2_OL_ACTIVE_L2 | QCOW2_OL_REFCOUNT_BLOCK)) {
        if (ol_index_usable(s)) {
            ret = ol_index_lookup(s, chk, offset, size);
            if (ol_verify()) {
                /* The answer, and the index itself, against the tables. */
                g_autoptr(GArray) now = g_array_new(false, false,
                                                    sizeof(uint64_t));
                ol_index_build(s, now);
                if (ret != ol_walk(s, chk, offset, size) ||
                    now->len != s->ol_index->len ||
                    memcmp(now->data, s->ol_index->data,
                           now->len * sizeof(uint64_t))) {
                    fprintf(stderr, "qcow2 overlap index out of date at %#"
                            PRIx64 "\n", (uint64_t)offset);
                    abort();
                }
            }
        } else {
            ret = ol_walk(s, chk, offset, size);
        }
        if (ret) {
            return ret;
        }
    }
    if ((chk & QCOW2_OL_BITMAP_DIR) && s->hi.has_bitmaps_ext &&
        overlaps(offset, size, s->hi.bitmap_dir_offset,
                 s->hi.bitmap_dir_size)) {
        return QCOW2_OL_BITMAP_DIR;
    }
    return 0;
}

int qcow2_pre_write_overlap_check(BlockDriverState *bs, int ign,
                                  int64_t offset, int64_t size)
{
    int ol = qcow2_check_metadata_overlap(bs, ign, offset, size);
    if (ol > 0) {
        int bit = __builtin_ctz(ol);
        qcow2_signal_corruption(bs, true, offset, size,
                                "Preventing invalid write on metadata "
                                "(overlaps with %s)", ol_names[bit]);
        return -EIO;
    }
    return 0;
}
