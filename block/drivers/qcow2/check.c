/*
 * qcow2 consistency check (qemu-img check): rebuild the expected refcount
 * of every host cluster by walking all metadata (header, L1/L2 tables,
 * data and compressed clusters, refcount structures, snapshot tables,
 * bitmap directory and tables), compare with the stored refcounts, report
 * leaks and errors with QEMU's texts, and repair them on request.
 *
 * Repairs only ever move a stored refcount to the computed one, one cluster
 * at a time through the normal refcount path, so an interrupted repair
 * leaves a consistent (if still leaky) image.
 */
#include "qcow2.h"
#include "block/check.h"

typedef struct CheckState {
    BlockDriverState *bs;
    BDRVQcow2State *s;
    GArray *ref;                 /* uint64_t per cluster: computed refcount */
    int64_t nb_clusters;         /* clusters in the file */
    BdrvCheckResult *res;
    int64_t next_contiguous;
} CheckState;

static void inc_refs(CheckState *cs, int64_t offset, int64_t size)
{
    BDRVQcow2State *s = cs->s;
    if (size <= 0) {
        return;
    }
    /* Offsets come straight from (possibly corrupt) tables: a negative or
     * overflowing region must be a corruption, never an array index. */
    if (offset < 0 || offset > INT64_MAX - size) {
        fprintf(stderr, "ERROR: counting reference for region exceeding the "
                "end of the file by one cluster or more: offset %#" PRIx64
                " size %#" PRIx64 "\n", offset, size);
        cs->res->corruptions++;
        return;
    }
    int64_t first = offset >> s->cluster_bits;
    int64_t last = (offset + size - 1) >> s->cluster_bits;
    if (last >= cs->nb_clusters + (INT64_C(1) << 20)) {
        fprintf(stderr, "ERROR: counting reference for region exceeding the "
                "end of the file by one cluster or more: offset %#" PRIx64
                " size %#" PRIx64 "\n", offset, size);
        cs->res->corruptions++;
        return;
    }
    if (last >= (int64_t)cs->ref->len) {
        g_array_set_size(cs->ref, last + 1);
    }
    for (int64_t i = first; i <= last; i++) {
        g_array_index(cs->ref, uint64_t, i)++;
    }
}

static int check_l2(CheckState *cs, uint64_t l2_offset, bool active)
{
    BDRVQcow2State *s = cs->s;
    g_autofree uint64_t *l2 = g_malloc(s->cluster_size);
    int ret = bdrv_pread(cs->bs->file, l2_offset, s->cluster_size, l2, 0);

    if (ret < 0) {
        fprintf(stderr, "ERROR: I/O error in check_refcounts_l2\n");
        cs->res->check_errors++;
        return ret;
    }
    /* QEMU counts fragmentation within one L2 table: the first cluster of
     * each table is never "fragmented". */
    cs->next_contiguous = 0;
    for (int i = 0; i < s->l2_size; i++) {
        uint64_t e = GUINT64_FROM_BE(l2[i * (s->l2_entry_bytes / 8)]);
        if (e & QCOW_OFLAG_COMPRESSED) {
            uint64_t coff;
            int csize;
            if (e & QCOW_OFLAG_COPIED) {
                fprintf(stderr, "ERROR: coffset=0x%" PRIx64 ": copied flag "
                        "must never be set for compressed clusters\n",
                        e & s->cluster_offset_mask);
                cs->res->corruptions++;
            }
            qcow2_parse_compressed_l2_entry(s, e, &coff, &csize);
            int nb = ((e >> s->csize_shift) & s->csize_mask) + 1;
            inc_refs(cs, coff & ~UINT64_C(511), nb * 512);
            if (active) {
                cs->res->bfi.allocated_clusters++;
                cs->res->bfi.compressed_clusters++;
                cs->res->bfi.fragmented_clusters++;
            }
            continue;
        }
        uint64_t off = e & L2E_OFFSET_MASK;
        if (!qcow2_entry_has_host(s, e)) {
            continue;
        }
        if (active) {
            cs->res->bfi.allocated_clusters++;
            if (cs->next_contiguous && (int64_t)off != cs->next_contiguous) {
                cs->res->bfi.fragmented_clusters++;
            }
            cs->next_contiguous = off + s->cluster_size;
        }
        if (qcow2_offset_into_cluster(s, off)) {
            fprintf(stderr, "ERROR offset=%" PRIx64 ": Cluster is not "
                    "properly aligned; L2 entry corrupted.\n", off);
            cs->res->corruptions++;
            continue;
        }
        if (!qcow2_has_data_file(s)) {
            inc_refs(cs, off, s->cluster_size);
        }
    }
    return 0;
}

static int check_l1(CheckState *cs, uint64_t l1_offset, uint32_t l1_size,
                    const uint64_t *mem_table, bool active)
{
    BDRVQcow2State *s = cs->s;
    g_autofree uint64_t *l1 = NULL;

    inc_refs(cs, l1_offset, (int64_t)l1_size * 8);
    if (!l1_size) {
        return 0;
    }
    if (mem_table) {
        l1 = g_memdup2(mem_table, (size_t)l1_size * 8);
    } else {
        l1 = g_try_new(uint64_t, l1_size);
        if (!l1 || bdrv_pread(cs->bs->file, l1_offset, (int64_t)l1_size * 8,
                              l1, 0) < 0) {
            fprintf(stderr, "ERROR: I/O error in check_refcounts_l1\n");
            cs->res->check_errors++;
            return -EIO;
        }
        for (uint32_t i = 0; i < l1_size; i++) {
            l1[i] = GUINT64_FROM_BE(l1[i]);
        }
    }
    for (uint32_t i = 0; i < l1_size; i++) {
        uint64_t l2 = l1[i] & L1E_OFFSET_MASK;
        if (!l2) {
            continue;
        }
        inc_refs(cs, l2, s->cluster_size);
        if (qcow2_offset_into_cluster(s, l2)) {
            fprintf(stderr, "ERROR l2_offset=%" PRIx64 ": Table is not "
                    "cluster aligned; L1 entry corrupted\n", l2);
            cs->res->corruptions++;
            continue;
        }
        int ret = check_l2(cs, l2, active);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

/*
 * A bitmap table entry QEMU refuses to load: reserved bits set, or a data
 * offset that is unaligned or combined with the "all ones" flag.
 */
static bool bitmap_entry_invalid(BDRVQcow2State *s, uint64_t e)
{
    uint64_t off = e & UINT64_C(0x00fffffffffffe00);

    if (e & UINT64_C(0xff000000000001fe)) {
        return true;
    }
    return off && ((e & 1) || qcow2_offset_into_cluster(s, off));
}

/*
 * References of the bitmap directory and of every bitmap's table and data,
 * in_use bitmaps included.  As in QEMU 7.2, a table that cannot be read or
 * holds an invalid entry is a corruption that fails the whole check
 * (-EINVAL: "Check failed: Invalid argument"), even though such an image
 * still opens.
 */
static int count_bitmaps(CheckState *cs)
{
    BDRVQcow2State *s = cs->s;
    uint64_t size = s->hi.bitmap_dir_size;
    g_autofree uint8_t *dir = NULL;

    if (!s->hi.has_bitmaps_ext || !size || size > 65535 * 1024) {
        return 0;
    }
    inc_refs(cs, s->hi.bitmap_dir_offset, size);
    dir = g_malloc(size);
    if (bdrv_pread(cs->bs->file, s->hi.bitmap_dir_offset, size, dir, 0) < 0) {
        cs->res->corruptions++;
        return 0;
    }
    uint64_t off = 0;
    for (uint32_t i = 0; i < s->hi.nb_bitmaps && off + 24 <= size; i++) {
        uint64_t tab = GUINT64_FROM_BE(*(uint64_t *)(dir + off));
        uint32_t tsize = GUINT32_FROM_BE(*(uint32_t *)(dir + off + 8));
        uint16_t name_len = GUINT16_FROM_BE(*(uint16_t *)(dir + off + 18));
        uint32_t extra = GUINT32_FROM_BE(*(uint32_t *)(dir + off + 20));
        if (tsize && tsize <= 0x8000000) {
            g_autofree uint64_t *t = g_try_new(uint64_t, tsize);
            inc_refs(cs, tab, (int64_t)tsize * 8);
            if (!t || bdrv_pread(cs->bs->file, tab, (int64_t)tsize * 8, t,
                                 0) < 0) {
                cs->res->corruptions++;
                return -EINVAL;
            }
            for (uint32_t k = 0; k < tsize; k++) {
                if (bitmap_entry_invalid(s, GUINT64_FROM_BE(t[k]))) {
                    cs->res->corruptions++;
                    return -EINVAL;
                }
            }
            for (uint32_t k = 0; k < tsize; k++) {
                uint64_t d = GUINT64_FROM_BE(t[k]) &
                             UINT64_C(0x00fffffffffffe00);
                if (d) {
                    inc_refs(cs, d, s->cluster_size);
                }
            }
        }
        off += QB_ALIGN_UP(24 + (uint64_t)extra + name_len, 8);
    }
    return 0;
}

/* COPIED must be set exactly on entries whose cluster has refcount 1. */
static void check_oflag_copied(CheckState *cs, int fix)
{
    BlockDriverState *bs = cs->bs;
    BDRVQcow2State *s = cs->s;
    g_autofree uint64_t *l2 = g_malloc(s->cluster_size);
    bool l1_dirty = false;

    for (uint32_t i = 0; i < s->l1_size; i++) {
        uint64_t l2_off = s->l1_table[i] & L1E_OFFSET_MASK;
        uint64_t rc;
        bool l2_dirty = false;
        if (!l2_off || qcow2_offset_into_cluster(s, l2_off)) {
            continue;
        }
        if (qcow2_get_refcount(bs, l2_off >> s->cluster_bits, &rc) < 0) {
            cs->res->check_errors++;
            continue;
        }
        if ((rc == 1) != !!(s->l1_table[i] & QCOW_OFLAG_COPIED)) {
            fprintf(stderr, "%s OFLAG_COPIED L2 cluster: l1_index=%u "
                    "l1_entry=%" PRIx64 " refcount=%" PRIu64 "\n",
                    (fix & BDRV_FIX_ERRORS) ? "Repairing" : "ERROR", i,
                    s->l1_table[i], rc);
            if (fix & BDRV_FIX_ERRORS) {
                s->l1_table[i] = rc == 1 ? s->l1_table[i] | QCOW_OFLAG_COPIED
                                         : s->l1_table[i] & ~QCOW_OFLAG_COPIED;
                l1_dirty = true;
                if (qcow2_write_l1_entry(bs, i) < 0) {
                    cs->res->check_errors++;
                } else {
                    cs->res->corruptions_fixed++;
                }
            } else {
                cs->res->corruptions++;
            }
        }
        if (bdrv_pread(bs->file, l2_off, s->cluster_size, l2, 0) < 0) {
            cs->res->check_errors++;
            continue;
        }
        for (int j = 0; j < s->l2_size; j++) {
            int k = j * (s->l2_entry_bytes / 8);
            uint64_t e = GUINT64_FROM_BE(l2[k]);
            uint64_t off = e & L2E_OFFSET_MASK;
            if (qcow2_has_data_file(s) || !qcow2_entry_has_host(s, e) ||
                qcow2_offset_into_cluster(s, off)) {
                continue;
            }
            if (qcow2_get_refcount(bs, off >> s->cluster_bits, &rc) < 0) {
                cs->res->check_errors++;
                continue;
            }
            if ((rc == 1) != !!(e & QCOW_OFLAG_COPIED)) {
                fprintf(stderr, "%s OFLAG_COPIED data cluster: l2_entry=%"
                        PRIx64 " refcount=%" PRIu64 "\n",
                        (fix & BDRV_FIX_ERRORS) ? "Repairing" : "ERROR", e, rc);
                if (fix & BDRV_FIX_ERRORS) {
                    e = rc == 1 ? e | QCOW_OFLAG_COPIED
                                : e & ~QCOW_OFLAG_COPIED;
                    l2[k] = GUINT64_TO_BE(e);
                    l2_dirty = true;
                    cs->res->corruptions_fixed++;
                } else {
                    cs->res->corruptions++;
                }
            }
        }
        if (l2_dirty) {
            /* Write through, then forget any cached copy. */
            if (qcow2_cache_write(bs, s->l2_table_cache) < 0 ||
                qcow2_pre_write_overlap_check(bs, QCOW2_OL_ACTIVE_L2, l2_off,
                                              s->cluster_size) < 0 ||
                bdrv_pwrite(bs->file, l2_off, s->cluster_size, l2, 0) < 0) {
                cs->res->check_errors++;
            }
            for (int k = 0; k < s->l2_size / s->l2_slice_size; k++) {
                qcow2_cache_discard(s->l2_table_cache, l2_off + (uint64_t)k *
                                    s->l2_slice_size * s->l2_entry_bytes);
            }
        }
    }
    (void)l1_dirty;
}

/* Count every reference the metadata makes into cs->ref. */
static int calculate_refcounts(CheckState *cs, int64_t file_len)
{
    BDRVQcow2State *s = cs->s;
    BdrvCheckResult *res = cs->res;
    int ret;

    inc_refs(cs, 0, s->cluster_size);                        /* header */
    ret = check_l1(cs, s->hi.h.l1_table_offset, s->l1_size, s->l1_table,
                   true);
    if (ret < 0) {
        return ret;
    }
    inc_refs(cs, s->snapshots_offset, s->snapshots_size);
    for (guint i = 0; s->snapshot_l1s && i + 1 < s->snapshot_l1s->len;
         i += 2) {
        uint64_t off = g_array_index(s->snapshot_l1s, uint64_t, i);
        uint64_t bytes = g_array_index(s->snapshot_l1s, uint64_t, i + 1);
        ret = check_l1(cs, off, bytes / 8, NULL, false);
        if (ret < 0) {
            return ret;
        }
    }
    ret = count_bitmaps(cs);
    if (ret < 0) {
        return ret;
    }
    inc_refs(cs, s->hi.h.refcount_table_offset,
             (int64_t)s->refcount_table_size * 8);
    for (uint32_t i = 0; i < s->refcount_table_size; i++) {
        uint64_t rb = s->refcount_table[i] & REFT_OFFSET_MASK;
        if (!rb) {
            continue;
        }
        if (qcow2_offset_into_cluster(s, rb)) {
            fprintf(stderr, "ERROR refcount block %u is not cluster aligned; "
                    "refcount table entry corrupted\n", i);
            res->corruptions++;
            continue;
        }
        if ((int64_t)rb >= file_len) {
            fprintf(stderr, "ERROR refcount block %u is outside image\n", i);
            res->corruptions++;
            continue;
        }
        inc_refs(cs, rb, s->cluster_size);
    }
    return 0;
}

static uint64_t ref_at(CheckState *cs, int64_t i)
{
    return i < (int64_t)cs->ref->len ? g_array_index(cs->ref, uint64_t, i)
                                     : 0;
}

/*
 * One comparison pass of stored against computed refcounts (QEMU's texts).
 * A referenced cluster with stored refcount 0 cannot be repaired in place:
 * it sets *rebuild (the allocator may already have handed it out again).
 * With fix, leaks (stored > computed) and errors (stored < computed) are
 * corrected according to the fix mode.
 */
static void compare_refcounts(CheckState *cs, int fix, bool *rebuild,
                              int64_t *highest)
{
    BlockDriverState *bs = cs->bs;
    BDRVQcow2State *s = cs->s;
    BdrvCheckResult *res = cs->res;
    int64_t n = MAX((int64_t)cs->ref->len, cs->nb_clusters);

    *highest = 0;
    for (int64_t i = 0; i < n; i++) {
        uint64_t disk, want = ref_at(cs, i);
        int *fixed = NULL;
        int ret = qcow2_get_refcount(bs, i, &disk);

        if (ret < 0) {
            fprintf(stderr, "Can't get refcount for cluster %" PRId64 ": %s\n",
                    i, strerror(-ret));
            res->check_errors++;
            continue;
        }
        if (disk || want) {
            *highest = i;
        }
        if (disk == want) {
            continue;
        }
        if (disk == 0) {
            *rebuild = true;
        } else if (disk > want && (fix & BDRV_FIX_LEAKS)) {
            fixed = &res->leaks_fixed;
        } else if (disk < want && (fix & BDRV_FIX_ERRORS)) {
            fixed = &res->corruptions_fixed;
        }
        fprintf(stderr, "%s cluster %" PRId64 " refcount=%" PRIu64
                " reference=%" PRIu64 "\n",
                fixed ? "Repairing" : disk < want ? "ERROR" : "Leaked",
                i, disk, want);
        if (fixed) {
            ret = qcow2_update_refcount(bs, i << s->cluster_bits, 1,
                                        (int64_t)(want - disk),
                                        QCOW2_DISCARD_ALWAYS);
            if (ret >= 0) {
                (*fixed)++;
                continue;
            }
        }
        if (disk < want) {
            res->corruptions++;
        } else {
            res->leaks++;
        }
    }
}

/*
 * First fit of count free clusters in the computed refcounts at or after
 * *first_free (growing them past the end of the image if needed); marks
 * them used and returns the byte offset.  *first_free moves to the first
 * free cluster seen.
 */
static int64_t imrt_alloc(CheckState *cs, int64_t count, int64_t *first_free)
{
    int64_t cluster = *first_free, contiguous = 0;
    bool first_gap = true;

    for (; cluster < (int64_t)cs->ref->len && contiguous < count; cluster++) {
        if (!g_array_index(cs->ref, uint64_t, cluster)) {
            contiguous++;
            if (first_gap) {
                *first_free = cluster;
                first_gap = false;
            }
        } else {
            contiguous = 0;
        }
    }
    if (contiguous < count) {
        int64_t need = cluster + count - contiguous;
        if (need > (int64_t)cs->ref->len) {
            g_array_set_size(cs->ref, need);
        }
    }
    cluster -= contiguous;
    for (int64_t i = 0; i < count; i++) {
        g_array_index(cs->ref, uint64_t, cluster + i) = 1;
    }
    return cluster << cs->s->cluster_bits;
}

/*
 * Write a refblock for every refblock-sized range of [first, end) that
 * holds a used cluster, allocating it (in the computed refcounts) where
 * the new reftable (*rt, host order) has none yet.  Returns 1 if the
 * reftable had to grow, 0, or -errno.
 */
static int write_refblocks(CheckState *cs, int64_t first, int64_t end,
                           GArray *rt)
{
    BDRVQcow2State *s = cs->s;
    g_autofree void *block = g_malloc(s->cluster_size);
    int64_t first_free = 0;
    int grown = 0;

    for (int64_t c = first; c < end; c++) {
        if (!ref_at(cs, c)) {
            continue;
        }
        int64_t idx = c >> s->refblock_bits;
        int64_t start = idx << s->refblock_bits;
        int64_t off;
        int ret;

        if (idx < (int64_t)rt->len && g_array_index(rt, uint64_t, idx)) {
            off = g_array_index(rt, uint64_t, idx);
        } else {
            /* Never put a refblock into a range already written. */
            if (first_free < start) {
                first_free = start;
            }
            off = imrt_alloc(cs, 1, &first_free);
            if ((off >> s->cluster_bits) >= end) {
                end = (off >> s->cluster_bits) + 1;
            }
            if (idx >= (int64_t)rt->len) {
                g_array_set_size(rt, QB_ALIGN_UP((uint64_t)(idx + 1) * 8,
                                                 s->cluster_size) / 8);
                grown = 1;
            }
            g_array_index(rt, uint64_t, idx) = off;
        }
        memset(block, 0, s->cluster_size);
        for (int64_t k = 0; k < s->refblock_size; k++) {
            uint64_t v = ref_at(cs, start + k);
            if (v) {
                qcow2_refcount_set_entry(block, s->refcount_order, k, v);
            }
        }
        ret = qcow2_pre_write_overlap_check(cs->bs, 0, off, s->cluster_size);
        if (ret < 0) {
            return ret;
        }
        ret = bdrv_pwrite(cs->bs->file, off, s->cluster_size, block, 0);
        if (ret < 0) {
            return ret;
        }
        c = start + s->refblock_size - 1;
    }
    return grown;
}

/*
 * Replace the refcount structure by one built from the computed refcounts:
 * refblocks in the first free clusters of the range each describes, then
 * the reftable in the first free run (rewriting the refblocks that cover
 * it, until the reftable stops growing), then the header fields.  The old
 * structures are left behind as leaks for the caller's next pass.
 */
static int rebuild_refcount_structure(CheckState *cs)
{
    BlockDriverState *bs = cs->bs;
    BDRVQcow2State *s = cs->s;
    g_autoptr(GArray) rt = g_array_new(false, true, sizeof(uint64_t));
    int64_t rt_off = -1, rt_clusters = 0;
    int ret;

    ret = qcow2_cache_empty(s->refcount_block_cache);
    if (ret < 0) {
        return ret;
    }
    ret = write_refblocks(cs, 0, cs->ref->len, rt);
    while (ret > 0) {
        int64_t first_free = 0;
        rt_clusters = qcow2_size_to_clusters(s, (uint64_t)rt->len * 8);
        rt_off = imrt_alloc(cs, rt_clusters, &first_free);
        ret = write_refblocks(cs, rt_off >> s->cluster_bits,
                              (rt_off >> s->cluster_bits) + rt_clusters, rt);
    }
    if (ret < 0) {
        return ret;
    }
    g_autofree uint64_t *be = g_new0(uint64_t, rt->len);
    for (guint i = 0; i < rt->len; i++) {
        be[i] = GUINT64_TO_BE(g_array_index(rt, uint64_t, i));
    }
    ret = qcow2_pre_write_overlap_check(bs, 0, rt_off, rt->len * 8);
    if (ret < 0) {
        return ret;
    }
    ret = bdrv_pwrite(bs->file, rt_off, rt->len * 8, be, 0);
    if (ret < 0) {
        return ret;
    }
    /* refcount_table_offset and refcount_table_clusters, in one write. */
    uint8_t hdr[12];
    uint64_t off_be = GUINT64_TO_BE((uint64_t)rt_off);
    uint32_t cl_be = GUINT32_TO_BE((uint32_t)rt_clusters);
    memcpy(hdr, &off_be, 8);
    memcpy(hdr + 8, &cl_be, 4);
    ret = bdrv_pwrite_sync(bs->file, 48, sizeof(hdr), hdr, 0);
    if (ret < 0) {
        return ret;
    }
    s->hi.h.refcount_table_offset = rt_off;
    s->hi.h.refcount_table_clusters = rt_clusters;
    g_free(s->refcount_table);
    s->refcount_table_size = rt->len;
    s->refcount_table = (uint64_t *)g_array_free(g_steal_pointer(&rt), false);
    s->free_cluster_index = 0;
    return 0;
}

static void reset_refs(CheckState *cs, int64_t file_len)
{
    cs->nb_clusters = qcow2_size_to_clusters(cs->s, file_len);
    g_array_set_size(cs->ref, 0);
    g_array_set_size(cs->ref, cs->nb_clusters);
}

int qcow2_co_check_impl(BlockDriverState *bs, BdrvCheckResult *res, int fix)
{
    BDRVQcow2State *s = bs->opaque;
    CheckState cs = { .bs = bs, .s = s, .res = res };
    int64_t file_len = bdrv_getlength(bs->file->bs);
    int64_t highest = 0;
    bool rebuild = false;
    BdrvCheckResult pre_compare;
    int ret;

    if (file_len < 0) {
        res->check_errors++;
        return file_len;
    }
    /* Metadata must be on disk before it is walked from there. */
    ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        res->check_errors++;
        return ret;
    }
    cs.ref = g_array_new(false, true, sizeof(uint64_t));
    reset_refs(&cs, file_len);
    res->bfi.total_clusters = qcow2_size_to_clusters(s, s->hi.h.size);

    ret = calculate_refcounts(&cs, file_len);
    if (ret < 0) {
        goto out;
    }

    /* As QEMU: a report-only pass first; repairs, if any, redo it. */
    pre_compare = *res;
    compare_refcounts(&cs, 0, &rebuild, &highest);

    if (rebuild && (fix & BDRV_FIX_ERRORS)) {
        BdrvCheckResult old = *res;
        int fresh_leaks = 0;

        fprintf(stderr, "Rebuilding refcount structure\n");
        ret = rebuild_refcount_structure(&cs);
        if (ret < 0) {
            fprintf(stderr, "ERROR Could not rebuild refcount structure: "
                    "%s\n", strerror(-ret));
            res->check_errors++;
            goto out;
        }
        res->corruptions = 0;
        res->leaks = 0;
        /* The references changed with the structure: count them again. */
        rebuild = false;
        file_len = bdrv_getlength(bs->file->bs);
        if (file_len < 0) {
            ret = file_len;
            res->check_errors++;
            goto out;
        }
        reset_refs(&cs, file_len);
        ret = calculate_refcounts(&cs, file_len);
        if (ret < 0) {
            goto out;
        }
        if (fix & BDRV_FIX_LEAKS) {
            /* The old structures are leaks now; whatever stays leaked was
             * introduced by the rebuild itself. */
            BdrvCheckResult saved = *res;
            *res = (BdrvCheckResult){ 0 };
            cs.res = res;
            compare_refcounts(&cs, BDRV_FIX_LEAKS, &rebuild, &highest);
            if (rebuild) {
                fprintf(stderr, "ERROR rebuilt refcount structure is still "
                        "broken\n");
            }
            fresh_leaks = res->leaks;
            *res = saved;
        }
        if (res->corruptions < old.corruptions) {
            res->corruptions_fixed += old.corruptions - res->corruptions;
        }
        if (res->leaks < old.leaks) {
            res->leaks_fixed += old.leaks - res->leaks;
        }
        res->leaks += fresh_leaks;
    } else if (fix) {
        if (rebuild) {
            fprintf(stderr, "ERROR need to rebuild refcount structures\n");
            res->check_errors++;
            ret = -EIO;
            goto out;
        }
        if (res->leaks || res->corruptions) {
            *res = pre_compare;
            compare_refcounts(&cs, fix, &rebuild, &highest);
        }
    }
    check_oflag_copied(&cs, fix);
    ret = 0;
    if (res->leaks_fixed || res->corruptions_fixed) {
        ret = qcow2_flush_caches(bs);
        if (ret < 0) {
            res->check_errors++;
        }
    }
    if (ret == 0 && fix && !res->check_errors && !res->corruptions &&
        !bdrv_is_read_only(bs)) {
        /* A clean bill of health clears the dirty and corrupt bits. */
        ret = qcow2_mark_clean(bs);
        if (ret == 0 && (s->incompatible_features & QCOW2_INCOMPAT_CORRUPT)) {
            uint64_t v;
            s->incompatible_features &= ~QCOW2_INCOMPAT_CORRUPT;
            v = GUINT64_TO_BE(s->incompatible_features);
            ret = bdrv_pwrite_sync(bs->file, 72, 8, &v, 0);
            ret = ret < 0 ? ret : 0;
        }
    }
    res->image_end_offset = (highest + 1) << s->cluster_bits;
out:
    g_array_free(cs.ref, true);
    return ret;
}
