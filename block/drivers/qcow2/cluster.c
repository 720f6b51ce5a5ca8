/*
 * qcow2 guest-to-host mapping: geometry, decoding L2 entries (standard and
 * extended, with subclusters), looking up where a guest range lives, and
 * the L1/L2 table changes the write path needs (allocating L2 tables,
 * writing L1 entries, growing the L1 table).
 *
 * Invariants:
 *  1. An L1 entry with the COPIED flag points to an L2 table with refcount 1
 *     that may be changed in place; without it the table is shared and is
 *     copied before any change.
 *  2. A new L2 table and the refcounts counting it are on disk before the
 *     L1 entry that points to it.
 */
#include "qcow2.h"

void qcow2_init_geometry(BDRVQcow2State *s, int cluster_bits,
                         int refcount_order, bool extended_l2)
{
    s->cluster_bits = cluster_bits;
    s->cluster_size = 1 << cluster_bits;
    s->extended_l2 = extended_l2;
    s->l2_entry_bytes = extended_l2 ? 16 : 8;
    s->l2_bits = cluster_bits - (extended_l2 ? 4 : 3);
    s->l2_size = 1 << s->l2_bits;
    s->l2_slice_size = s->l2_size;
    s->subclusters_per_cluster = extended_l2 ? QCOW2_SUBCLUSTERS : 1;
    s->subcluster_bits = cluster_bits - (extended_l2 ? 5 : 0);
    s->subcluster_size = 1 << s->subcluster_bits;
    s->refcount_order = refcount_order;
    s->refcount_bits = 1 << refcount_order;
    s->refcount_max = s->refcount_bits == 64 ? UINT64_MAX
                      : (UINT64_C(1) << s->refcount_bits) - 1;
    s->refblock_bits = cluster_bits + 3 - refcount_order;
    s->refblock_size = 1 << s->refblock_bits;
    s->csize_shift = 62 - (cluster_bits - 8);
    s->csize_mask = (1 << (cluster_bits - 8)) - 1;
    s->cluster_offset_mask = (INT64_C(1) << s->csize_shift) - 1;
}

uint64_t qcow2_l1_size_for(int cluster_bits, bool extended_l2, uint64_t size)
{
    int shift = cluster_bits + cluster_bits - (extended_l2 ? 4 : 3);
    return (size + (UINT64_C(1) << shift) - 1) >> shift;
}

Qcow2SubclusterType qcow2_get_subcluster_type(BDRVQcow2State *s,
                                              uint64_t l2_entry,
                                              uint64_t l2_bitmap,
                                              int sc_index)
{
    uint64_t off = l2_entry & L2E_OFFSET_MASK;

    if (l2_entry & QCOW_OFLAG_COMPRESSED) {
        return QCOW2_SC_COMPRESSED;
    }
    if (off & (s->cluster_size - 1)) {
        return QCOW2_SC_INVALID;
    }
    bool has = qcow2_entry_has_host(s, l2_entry);
    if (!s->extended_l2) {
        if (l2_entry & QCOW_OFLAG_ZERO) {
            return has ? QCOW2_SC_ZERO_ALLOC : QCOW2_SC_ZERO_PLAIN;
        }
        return has ? QCOW2_SC_NORMAL : QCOW2_SC_UNALLOCATED_PLAIN;
    }
    uint32_t alloc = l2_bitmap & 0xffffffffu;
    uint32_t zero = l2_bitmap >> 32;
    if (alloc & zero) {
        return QCOW2_SC_INVALID;
    }
    bool a = alloc & (1u << sc_index), z = zero & (1u << sc_index);
    if (has) {
        return a ? QCOW2_SC_NORMAL : z ? QCOW2_SC_ZERO_ALLOC
                                       : QCOW2_SC_UNALLOCATED_ALLOC;
    }
    if (a) {
        return QCOW2_SC_INVALID;
    }
    return z ? QCOW2_SC_ZERO_PLAIN : QCOW2_SC_UNALLOCATED_PLAIN;
}

void qcow2_parse_compressed_l2_entry(BDRVQcow2State *s, uint64_t l2_entry,
                                     uint64_t *coffset, int *csize)
{
    uint64_t nb_csectors = ((l2_entry >> s->csize_shift) & s->csize_mask) + 1;
    *coffset = l2_entry & s->cluster_offset_mask;
    *csize = nb_csectors * 512 - (*coffset & 511);
}

uint64_t qcow2_l2_entry(BDRVQcow2State *s, uint64_t *slice, int idx)
{
    return GUINT64_FROM_BE(slice[idx * (s->l2_entry_bytes / 8)]);
}

uint64_t qcow2_l2_bitmap(BDRVQcow2State *s, uint64_t *slice, int idx)
{
    return s->extended_l2 ? GUINT64_FROM_BE(slice[idx * 2 + 1]) : 0;
}

void qcow2_set_l2_entry(BDRVQcow2State *s, uint64_t *slice, int idx,
                        uint64_t v)
{
    slice[idx * (s->l2_entry_bytes / 8)] = GUINT64_TO_BE(v);
}

void qcow2_set_l2_bitmap(BDRVQcow2State *s, uint64_t *slice, int idx,
                         uint64_t v)
{
    assert(s->extended_l2);
    slice[idx * 2 + 1] = GUINT64_TO_BE(v);
}

/* Offset in the file of the slice holding l2 index l2_index. */
static uint64_t slice_offset(BDRVQcow2State *s, uint64_t l2_offset,
                             int l2_index)
{
    return l2_offset + (uint64_t)(l2_index / s->l2_slice_size) *
                       s->l2_slice_size * s->l2_entry_bytes;
}

static int check_l2_offset(BlockDriverState *bs, uint64_t l2_offset,
                           uint64_t l1_index)
{
    BDRVQcow2State *s = bs->opaque;
    if (qcow2_offset_into_cluster(s, l2_offset)) {
        qcow2_signal_corruption(bs, true, -1, -1, "L2 table offset %#"
                                PRIx64 " unaligned (L1 index: %#" PRIx64 ")",
                                l2_offset, l1_index);
        return -EIO;
    }
    return 0;
}

int qcow2_get_host_offset(BlockDriverState *bs, uint64_t offset,
                          uint64_t *bytes, uint64_t *host_offset,
                          Qcow2SubclusterType *type)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t l1_index = offset >> (s->l2_bits + s->cluster_bits);
    int l2_index = (offset >> s->cluster_bits) & (s->l2_size - 1);
    int sc = (offset >> s->subcluster_bits) & (s->subclusters_per_cluster - 1);
    uint64_t slice_end_bytes, max_bytes;
    uint64_t l2_offset;
    uint64_t *slice;
    int ret;

    /* Never look past the current L2 slice. */
    slice_end_bytes = ((uint64_t)(l2_index / s->l2_slice_size + 1) *
                       s->l2_slice_size - l2_index) << s->cluster_bits;
    slice_end_bytes -= qcow2_offset_into_cluster(s, offset);
    max_bytes = MIN(*bytes, slice_end_bytes);
    *host_offset = 0;

    if (l1_index >= s->l1_size || !(s->l1_table[l1_index] & L1E_OFFSET_MASK)) {
        *type = QCOW2_SC_UNALLOCATED_PLAIN;
        *bytes = max_bytes;
        return 0;
    }
    l2_offset = s->l1_table[l1_index] & L1E_OFFSET_MASK;
    ret = check_l2_offset(bs, l2_offset, l1_index);
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_cache_get(bs, s->l2_table_cache,
                          slice_offset(s, l2_offset, l2_index),
                          (void **)&slice);
    if (ret < 0) {
        return ret;
    }
    int idx = l2_index % s->l2_slice_size;
    uint64_t entry = qcow2_l2_entry(s, slice, idx);
    uint64_t bitmap = qcow2_l2_bitmap(s, slice, idx);
    Qcow2SubclusterType t = qcow2_get_subcluster_type(s, entry, bitmap, sc);
    uint64_t done;

    if (t == QCOW2_SC_INVALID) {
        qcow2_cache_put(s->l2_table_cache, (void **)&slice);
        if (!(entry & QCOW_OFLAG_COMPRESSED) &&
            qcow2_offset_into_cluster(s, entry & L2E_OFFSET_MASK)) {
            qcow2_signal_corruption(bs, true, -1, -1, "Cluster allocation "
                                    "offset %#" PRIx64 " unaligned (L2 "
                                    "offset: %#" PRIx64 ", L2 index: %#x)",
                                    entry & L2E_OFFSET_MASK, l2_offset,
                                    l2_index);
        } else {
            qcow2_signal_corruption(bs, true, -1, -1, "Invalid cluster entry "
                                    "found  (L2 offset: %#" PRIx64 ", L2 "
                                    "index: %#x)", l2_offset, l2_index);
        }
        return -EIO;
    }
    *type = t;
    if (t == QCOW2_SC_COMPRESSED) {
        *host_offset = entry;
        *bytes = MIN(max_bytes, s->cluster_size -
                     (uint64_t)qcow2_offset_into_cluster(s, offset));
        qcow2_cache_put(s->l2_table_cache, (void **)&slice);
        return 0;
    }
    if (t == QCOW2_SC_NORMAL || t == QCOW2_SC_ZERO_ALLOC ||
        t == QCOW2_SC_UNALLOCATED_ALLOC) {
        *host_offset = (entry & L2E_OFFSET_MASK) +
                       qcow2_offset_into_cluster(s, offset);
    }
    uint64_t expect_host = (entry & L2E_OFFSET_MASK);
    /* Bytes to the end of the first subcluster. */
    done = s->subcluster_size - (offset & (s->subcluster_size - 1));
    sc++;
    while (done < max_bytes) {
        if (sc == s->subclusters_per_cluster) {
            sc = 0;
            idx++;
            if (idx >= s->l2_slice_size) {
                break;
            }
            entry = qcow2_l2_entry(s, slice, idx);
            bitmap = qcow2_l2_bitmap(s, slice, idx);
            expect_host += s->cluster_size;
        }
        Qcow2SubclusterType t2 = qcow2_get_subcluster_type(s, entry, bitmap,
                                                           sc);
        if (t2 != t) {
            break;
        }
        if ((t == QCOW2_SC_NORMAL || t == QCOW2_SC_ZERO_ALLOC ||
             t == QCOW2_SC_UNALLOCATED_ALLOC) &&
            (entry & L2E_OFFSET_MASK) != expect_host) {
            break;
        }
        done += s->subcluster_size;
        sc++;
    }
    qcow2_cache_put(s->l2_table_cache, (void **)&slice);
    *bytes = MIN(done, max_bytes);
    return 0;
}

int qcow2_write_l1_entry(BlockDriverState *bs, int l1_index)
{
    BDRVQcow2State *s = bs->opaque;
    int start = l1_index & ~63;
    int n = MIN(64, (int)s->l1_size - start);
    uint64_t buf[64];
    int64_t off = s->hi.h.l1_table_offset + (int64_t)start * 8;
    int ret;

    for (int i = 0; i < n; i++) {
        buf[i] = GUINT64_TO_BE(s->l1_table[start + i]);
    }
    ret = qcow2_pre_write_overlap_check(bs, QCOW2_OL_ACTIVE_L1, off, n * 8);
    if (ret < 0) {
        return ret;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_EV_L1_UPDATE);
    ret = bdrv_pwrite_sync(bs->file, off, n * 8, buf, 0);
    return ret < 0 ? ret : 0;
}

int qcow2_grow_l1_table(BlockDriverState *bs, uint64_t min_size, bool exact)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t new_size;
    int64_t new_offset;
    g_autofree uint64_t *new_table = NULL;
    uint64_t old_offset = s->hi.h.l1_table_offset;
    uint64_t old_bytes = (uint64_t)s->l1_size * 8;
    uint8_t hdr[12];
    int ret;

    if (min_size <= s->l1_size) {
        return 0;
    }
    if (exact) {
        new_size = min_size;
    } else {
        new_size = MAX(s->l1_size, 1);
        while (min_size > new_size) {
            new_size = QB_DIV_ROUND_UP(new_size * 3, 2);
        }
    }
    if (new_size > QCOW2_MAX_L1_SIZE / 8) {
        return -EFBIG;
    }
    new_table = g_try_new0(uint64_t, QB_ALIGN_UP(new_size, 64));
    if (!new_table) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < s->l1_size; i++) {
        new_table[i] = GUINT64_TO_BE(s->l1_table[i]);
    }
    /* L2 updates must be on disk before the copy of the table is taken. */
    ret = qcow2_cache_flush(bs, s->l2_table_cache);
    if (ret < 0) {
        return ret;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_EV_L1_GROW_ALLOC_TABLE);
    new_offset = qcow2_alloc_own_clusters(bs, new_size * 8);
    if (new_offset < 0) {
        return new_offset;
    }
    ret = qcow2_cache_flush(bs, s->refcount_block_cache);
    if (ret < 0) {
        goto fail;
    }
    ret = qcow2_pre_write_overlap_check(bs, 0, new_offset, new_size * 8);
    if (ret < 0) {
        goto fail;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_EV_L1_GROW_WRITE_TABLE);
    ret = bdrv_pwrite_sync(bs->file, new_offset, new_size * 8, new_table, 0);
    if (ret < 0) {
        goto fail;
    }
    qcow2_note_file_end(s, new_offset + new_size * 8);
    {
        uint32_t sz = GUINT32_TO_BE((uint32_t)new_size);
        uint64_t of = GUINT64_TO_BE((uint64_t)new_offset);
        memcpy(hdr, &sz, 4);
        memcpy(hdr + 4, &of, 8);
    }
    BLKDBG_EVENT(bs->file, BLKDBG_EV_L1_GROW_ACTIVATE_TABLE);
    ret = bdrv_pwrite_sync(bs->file, 36, 12, hdr, 0);
    if (ret < 0) {
        goto fail;
    }
    for (uint64_t i = 0; i < new_size; i++) {
        new_table[i] = GUINT64_FROM_BE(new_table[i]);
    }
    qcow2_ol_index_invalidate(s);
    g_free(s->l1_table);
    s->l1_table = g_steal_pointer(&new_table);
    s->l1_size = new_size;
    s->hi.h.l1_size = new_size;
    s->hi.h.l1_table_offset = new_offset;
    if (old_bytes) {
        qcow2_free_clusters(bs, old_offset, old_bytes, QCOW2_DISCARD_OTHER);
    }
    return 0;
fail:
    qcow2_free_clusters(bs, new_offset, new_size * 8, QCOW2_DISCARD_OTHER);
    return ret;
}

/*
 * Give l1_index a private (COPIED) L2 table.  The new table is built in
 * the L2 cache (zeroed, or copied from the shared table) and written by
 * a cache flush, so it is not read back from disk afterwards; on any
 * failure the new cluster is freed again, leaving nothing leaked.
 */
static int alloc_l2_table(BlockDriverState *bs, uint64_t l1_index)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t old_entry = s->l1_table[l1_index];
    uint64_t old = old_entry & L1E_OFFSET_MASK;
    int slice_bytes = s->l2_slice_size * s->l2_entry_bytes;
    int n_slices = s->cluster_size / slice_bytes;
    int64_t l2;
    int ret;

    l2 = qcow2_alloc_own_clusters(bs, s->cluster_size);   /* cache.c notes */
    if (l2 < 0) {
        return l2;
    }
    /* Invariant 2: the table's refcount on disk before the L1 entry. */
    ret = qcow2_cache_flush(bs, s->refcount_block_cache);
    if (ret < 0) {
        goto fail;
    }
    for (int i = 0; i < n_slices; i++) {
        void *slice, *old_slice;

        ret = qcow2_cache_get_empty(bs, s->l2_table_cache,
                                    l2 + (int64_t)i * slice_bytes, &slice);
        if (ret < 0) {
            goto fail;
        }
        if (old) {
            BLKDBG_EVENT(bs->file, BLKDBG_EV_L2_ALLOC_COW_READ);
            ret = qcow2_cache_get(bs, s->l2_table_cache,
                                  old + (int64_t)i * slice_bytes, &old_slice);
            if (ret < 0) {
                qcow2_cache_put(s->l2_table_cache, &slice);
                goto fail;
            }
            memcpy(slice, old_slice, slice_bytes);
            qcow2_cache_put(s->l2_table_cache, &old_slice);
        } else {
            memset(slice, 0, slice_bytes);
        }
        BLKDBG_EVENT(bs->file, BLKDBG_EV_L2_ALLOC_WRITE);
        qcow2_cache_entry_mark_dirty(s->l2_table_cache, slice);
        qcow2_cache_put(s->l2_table_cache, &slice);
    }
    ret = qcow2_cache_flush(bs, s->l2_table_cache);
    if (ret < 0) {
        goto fail;
    }
    qcow2_ol_index_invalidate(s);
    s->l1_table[l1_index] = l2 | QCOW_OFLAG_COPIED;
    ret = qcow2_write_l1_entry(bs, l1_index);
    if (ret < 0) {
        s->l1_table[l1_index] = old_entry;
        goto fail;
    }
    if (old) {
        qcow2_free_clusters(bs, old, s->cluster_size, QCOW2_DISCARD_OTHER);
    }
    return 0;

fail:
    /* The new table's slices must never reach the disk now. */
    qcow2_cache_discard_range(s->l2_table_cache, l2, s->cluster_size);
    qcow2_free_clusters(bs, l2, s->cluster_size, QCOW2_DISCARD_ALWAYS);
    return ret;
}

int qcow2_get_l2_slice(BlockDriverState *bs, uint64_t offset, bool allocate,
                       uint64_t **slice, int *index)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t l1_index = offset >> (s->l2_bits + s->cluster_bits);
    int l2_index = (offset >> s->cluster_bits) & (s->l2_size - 1);
    uint64_t l2_offset;
    int ret;

    *slice = NULL;
    if (l1_index >= s->l1_size) {
        if (!allocate) {
            return 0;
        }
        ret = qcow2_grow_l1_table(bs, l1_index + 1, false);
        if (ret < 0) {
            return ret;
        }
    }
    if (allocate && !(s->l1_table[l1_index] & QCOW_OFLAG_COPIED)) {
        ret = alloc_l2_table(bs, l1_index);
        if (ret < 0) {
            return ret;
        }
    }
    l2_offset = s->l1_table[l1_index] & L1E_OFFSET_MASK;
    if (!l2_offset) {
        return 0;
    }
    ret = check_l2_offset(bs, l2_offset, l1_index);
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_cache_get(bs, s->l2_table_cache,
                          slice_offset(s, l2_offset, l2_index),
                          (void **)slice);
    if (ret < 0) {
        return ret;
    }
    *index = l2_index % s->l2_slice_size;
    return 0;
}
