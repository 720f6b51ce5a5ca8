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
 *
 * Cost (docs/performance.md): every L2 table and refblock is read once, in
 * runs of adjacent clusters, straight from the file (no cache lookups per
 * cluster); the only per-cluster memory is the computed refcount array at
 * the image's refcount width plus two bits.  A report-only check tests the
 * COPIED flags during the L2 walk and re-walks the active L2 tables (with
 * QEMU's messages, in QEMU's order) only when one is wrong.
 */
#include "qcow2.h"
#include "block/check.h"
#include "util/bswap.h"

/*
 * Reads of metadata go in runs of adjacent clusters of at most this many
 * bytes (at least one cluster): a metadata-preallocated image has all its
 * L2 tables (or refblocks) side by side and is read in a few requests.
 */
#define CHECK_READ_MAX  (512 * KiB)

/*
 * Refcounts per cluster in a flat array whose element is as narrow as the
 * image's refcount width allows (1, 2, 4 or 8 bytes): for 16-bit
 * refcounts a 100 GiB file costs 3.2 MiB, as in QEMU.  Computed counts
 * saturate at the image's maximum (reported as an overflow, as QEMU does).
 */
typedef struct RefArray {
    GArray *a;
    int width;                   /* bytes per element */
} RefArray;

/* What the refblock window of stored_get() holds. */
enum { WIN_ZERO, WIN_DATA, WIN_CACHE };

typedef struct CheckState {
    BlockDriverState *bs;
    BDRVQcow2State *s;
    RefArray ref;                /* computed refcounts */
    int64_t nb_clusters;         /* clusters in the file */
    /* Stored refcounts are read a window of adjacent refblocks at a time
     * (in cs->buf) rather than kept: memory stays at one computed array,
     * as in QEMU.  Only whether each is 1 is kept, for the COPIED test. */
    uint64_t win_rt;             /* first reftable index in the window */
    int64_t win_len;             /* 0: nothing loaded */
    int win_kind;
    GArray *one;                 /* bit per cluster: stored refcount == 1 */
    GArray *known;               /* bit per cluster: `one` is valid */
    BdrvCheckResult *res;
    int64_t next_contiguous;
    uint8_t *buf;                /* CHECK_READ_MAX (or one cluster) */
    size_t buf_size;
    /* The active L2 walk compares COPIED flags with the stored refcounts
     * when no repair can change them; a mismatch (or a refcount it could
     * not tell) sends the image through the full COPIED pass, which prints
     * QEMU's messages in QEMU's order. */
    bool copied_walk;
    bool copied_suspect;
} CheckState;

static void ref_init(RefArray *r, int refcount_order)
{
    r->width = refcount_order <= 3 ? 1 : 1 << (refcount_order - 3);
    r->a = g_array_new(false, true, r->width);
}

static inline uint64_t ref_get(const RefArray *r, int64_t i)
{
    if (i < 0 || i >= (int64_t)r->a->len) {
        return 0;
    }
    switch (r->width) {
    case 1:
        return ((const uint8_t *)r->a->data)[i];
    case 2:
        return ((const uint16_t *)(const void *)r->a->data)[i];
    case 4:
        return ((const uint32_t *)(const void *)r->a->data)[i];
    default:
        return ((const uint64_t *)(const void *)r->a->data)[i];
    }
}

/* i < len; v fits the image's refcount width. */
static inline void ref_set(RefArray *r, int64_t i, uint64_t v)
{
    switch (r->width) {
    case 1:
        ((uint8_t *)r->a->data)[i] = v;
        break;
    case 2:
        ((uint16_t *)(void *)r->a->data)[i] = v;
        break;
    case 4:
        ((uint32_t *)(void *)r->a->data)[i] = v;
        break;
    default:
        ((uint64_t *)(void *)r->a->data)[i] = v;
        break;
    }
}

static inline int64_t ref_len(const RefArray *r)
{
    return r->a->len;
}

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
    if (last >= ref_len(&cs->ref)) {
        g_array_set_size(cs->ref.a, last + 1);
    }
    for (int64_t i = first; i <= last; i++) {
        uint64_t v = ref_get(&cs->ref, i);
        if (v >= s->refcount_max) {
            fprintf(stderr, "ERROR: overflow cluster offset=%#" PRIx64 "\n",
                    (uint64_t)i << s->cluster_bits);
            fprintf(stderr, "Use qemu-img amend to increase the refcount "
                    "entry width or qemu-img convert to create a clean copy "
                    "if the image cannot be opened for writing\n");
            cs->res->corruptions++;
            continue;
        }
        ref_set(&cs->ref, i, v + 1);
    }
}

/* The read buffer, grown to at least bytes (one cluster or a run). */
static uint8_t *check_buf(CheckState *cs, size_t bytes)
{
    if (cs->buf_size < bytes) {
        g_free(cs->buf);
        cs->buf = g_try_malloc(bytes);
        cs->buf_size = cs->buf ? bytes : 0;
    }
    return cs->buf;
}

/*
 * Entries that [i, i + max) of table (host-order offsets, masked) continue
 * as a run of adjacent clusters starting at table[i].
 */
static int run_length(BDRVQcow2State *s, const uint64_t *offs, uint64_t mask,
                      int64_t i, int64_t n)
{
    int max = MAX(1, CHECK_READ_MAX >> s->cluster_bits);
    uint64_t first = offs[i] & mask;
    int len = 1;

    while (len < max && i + len < n &&
           (offs[i + len] & mask) == first + ((uint64_t)len << s->cluster_bits)) {
        len++;
    }
    return len;
}

/*
 * Make the window hold reftable entry rt: a run of adjacent refblocks read
 * from disk in one request (the caches were flushed and s->lock is held,
 * so the file is current), or "all zero" for an empty or missing entry,
 * or "ask the cache" for a refblock that is unaligned or cannot be read
 * (qcow2_get_refcount() then reports it as it always did).
 */
static void load_window(CheckState *cs, uint64_t rt)
{
    BDRVQcow2State *s = cs->s;
    uint64_t off;
    int len;
    bool ok;

    cs->win_rt = rt;
    cs->win_len = 1;
    cs->win_kind = WIN_ZERO;
    if (rt >= s->refcount_table_size) {
        return;
    }
    off = s->refcount_table[rt] & REFT_OFFSET_MASK;
    if (!off) {
        return;
    }
    cs->win_kind = WIN_CACHE;
    if (qcow2_offset_into_cluster(s, off)) {
        return;
    }
    len = run_length(s, s->refcount_table, REFT_OFFSET_MASK, rt,
                     s->refcount_table_size);
    ok = check_buf(cs, (size_t)len << s->cluster_bits) &&
         bdrv_pread(cs->bs->file, off, (int64_t)len << s->cluster_bits,
                    cs->buf, 0) >= 0;
    if (!ok && len > 1) {
        /* A run fails as a whole: try its first block alone. */
        len = 1;
        ok = check_buf(cs, s->cluster_size) &&
             bdrv_pread(cs->bs->file, off, s->cluster_size, cs->buf, 0) >= 0;
    }
    if (ok) {
        cs->win_len = len;
        cs->win_kind = WIN_DATA;
    }
}

/* Stored refcount of cluster i, as qcow2_get_refcount() would give it.
 * Callers go through the clusters in ascending order. */
static int stored_get(CheckState *cs, int64_t i, uint64_t *rc)
{
    BDRVQcow2State *s = cs->s;
    uint64_t rt = (uint64_t)i >> s->refblock_bits;

    if (!cs->win_len || rt < cs->win_rt || rt >= cs->win_rt + cs->win_len) {
        load_window(cs, rt);
    }
    switch (cs->win_kind) {
    case WIN_ZERO:
        *rc = 0;
        return 0;
    case WIN_DATA: {
        const uint8_t *b = cs->buf + ((rt - cs->win_rt) << s->cluster_bits);
        uint64_t e = i & (s->refblock_size - 1);
        /* the default width without a call per entry */
        *rc = s->refcount_order == 4 ? ld16_be(b + 2 * e)
                                     : qcow2_refcount_get_entry(
                                           b, s->refcount_order, e);
        return 0;
    }
    default:
        return qcow2_get_refcount(cs->bs, i, rc);
    }
}

/*
 * Which clusters of the file have a stored refcount of exactly 1 (a bit
 * each: what the COPIED flags must say), for the active L2 walk.  Clusters
 * in refblocks that only the cache path can answer stay "unknown".
 */
static void load_copied_bits(CheckState *cs)
{
    BDRVQcow2State *s = cs->s;
    int64_t n = cs->nb_clusters;

    g_array_set_size(cs->one, 0);
    g_array_set_size(cs->one, (n + 7) / 8);
    g_array_set_size(cs->known, 0);
    g_array_set_size(cs->known, (n + 7) / 8);
    cs->win_len = 0;
    for (int64_t i = 0; i < n; i++) {
        uint64_t rt = (uint64_t)i >> s->refblock_bits;
        uint64_t rc;

        if (!cs->win_len || rt < cs->win_rt ||
            rt >= cs->win_rt + cs->win_len) {
            load_window(cs, rt);
        }
        if (cs->win_kind == WIN_CACHE) {
            /* the whole refblock is unknown */
            i = ((int64_t)(rt + 1) << s->refblock_bits) - 1;
            continue;
        }
        stored_get(cs, i, &rc);
        cs->known->data[i / 8] |= 1 << (i % 8);
        if (rc == 1) {
            cs->one->data[i / 8] |= 1 << (i % 8);
        }
    }
    cs->win_len = 0;
}

/* COPIED must be set exactly where the stored refcount is 1. */
static void copied_probe(CheckState *cs, uint64_t off, bool copied)
{
    int64_t i = off >> cs->s->cluster_bits;

    /* Only what load_copied_bits() knows: asking the refcount cache here
     * could print a corruption message ahead of the comparison's. */
    if (i >= cs->nb_clusters ||
        !(cs->known->data[i / 8] & (1 << (i % 8))) ||
        !!(cs->one->data[i / 8] & (1 << (i % 8))) != copied) {
        cs->copied_suspect = true;
    }
}

static void check_l2(CheckState *cs, const uint64_t *l2, bool active)
{
    BDRVQcow2State *s = cs->s;
    int step = s->l2_entry_bytes / 8;
    bool copied = active && cs->copied_walk && !qcow2_has_data_file(s);

    /* QEMU counts fragmentation within one L2 table: the first cluster of
     * each table is never "fragmented". */
    cs->next_contiguous = 0;
    for (int i = 0; i < s->l2_size; i++) {
        uint64_t e = GUINT64_FROM_BE(l2[i * step]);
        if (!e) {
            continue;
        }
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
        if (copied) {
            copied_probe(cs, off, e & QCOW_OFLAG_COPIED);
        }
    }
}

/*
 * References of one L1 table and the L2 tables it points to.  The L2
 * tables are read in runs of adjacent clusters (one request per run);
 * references are counted in the same order as table by table, so the
 * messages come out in QEMU's order.
 */
static int check_l1(CheckState *cs, uint64_t l1_offset, uint32_t l1_size,
                    const uint64_t *mem_table, bool active)
{
    BDRVQcow2State *s = cs->s;
    g_autofree uint64_t *l1_copy = NULL;
    const uint64_t *l1 = mem_table;

    inc_refs(cs, l1_offset, (int64_t)l1_size * 8);
    if (!l1_size) {
        return 0;
    }
    if (!mem_table) {
        l1_copy = g_try_new(uint64_t, l1_size);
        if (!l1_copy || bdrv_pread(cs->bs->file, l1_offset,
                                   (int64_t)l1_size * 8, l1_copy, 0) < 0) {
            fprintf(stderr, "ERROR: I/O error in check_refcounts_l1\n");
            cs->res->check_errors++;
            return -EIO;
        }
        for (uint32_t i = 0; i < l1_size; i++) {
            l1_copy[i] = GUINT64_FROM_BE(l1_copy[i]);
        }
        l1 = l1_copy;
    }
    for (uint32_t i = 0; i < l1_size;) {
        uint64_t l2 = l1[i] & L1E_OFFSET_MASK;
        int len;
        uint8_t *buf;
        int ret;

        if (!l2) {
            i++;
            continue;
        }
        inc_refs(cs, l2, s->cluster_size);
        if (qcow2_offset_into_cluster(s, l2)) {
            fprintf(stderr, "ERROR l2_offset=%" PRIx64 ": Table is not "
                    "cluster aligned; L1 entry corrupted\n", l2);
            cs->res->corruptions++;
            i++;
            continue;
        }
        len = run_length(s, l1, L1E_OFFSET_MASK, i, l1_size);
        buf = check_buf(cs, (size_t)len << s->cluster_bits);
        ret = buf ? bdrv_pread(cs->bs->file, l2,
                               (int64_t)len << s->cluster_bits, buf, 0)
                  : -ENOMEM;
        if (ret < 0 && len > 1) {
            /* A run fails as a whole: find out whether the first one does. */
            len = 1;
            buf = check_buf(cs, s->cluster_size);
            ret = buf ? bdrv_pread(cs->bs->file, l2, s->cluster_size, buf, 0)
                      : -ENOMEM;
        }
        if (ret < 0) {
            fprintf(stderr, "ERROR: I/O error in check_refcounts_l2\n");
            cs->res->check_errors++;
            return ret;
        }
        for (int k = 0; k < len; k++, i++) {
            if (k) {
                inc_refs(cs, l2 + ((uint64_t)k << s->cluster_bits),
                         s->cluster_size);
            }
            if (active && cs->copied_walk) {
                copied_probe(cs, l2 + ((uint64_t)k << s->cluster_bits),
                             l1[i] & QCOW_OFLAG_COPIED);
            }
            check_l2(cs, (const uint64_t *)(void *)
                     (buf + ((size_t)k << s->cluster_bits)), active);
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
    /* As QEMU: -r leaks repairs the flags too, but only on an image that
     * is otherwise clean by now. */
    bool repair = (fix & BDRV_FIX_ERRORS) ||
                  ((fix & BDRV_FIX_LEAKS) && !cs->res->check_errors &&
                   !cs->res->corruptions && !cs->res->leaks);

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
                    repair ? "Repairing" : "ERROR", i,
                    s->l1_table[i], rc);
            if (repair) {
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
                        repair ? "Repairing" : "ERROR", e, rc);
                if (repair) {
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

    if (cs->copied_walk) {
        load_copied_bits(cs);
    }
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
    int64_t n = MAX(ref_len(&cs->ref), cs->nb_clusters);

    *highest = 0;
    cs->win_len = 0;             /* the structure may have been rebuilt */
    for (int64_t i = 0; i < n; i++) {
        uint64_t disk, want = ref_get(&cs->ref, i);
        int *fixed = NULL;
        int ret = stored_get(cs, i, &disk);

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

    for (; cluster < ref_len(&cs->ref) && contiguous < count; cluster++) {
        if (!ref_get(&cs->ref, cluster)) {
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
        if (need > ref_len(&cs->ref)) {
            g_array_set_size(cs->ref.a, need);
        }
    }
    cluster -= contiguous;
    for (int64_t i = 0; i < count; i++) {
        ref_set(&cs->ref, cluster + i, 1);
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
        if (!ref_get(&cs->ref, c)) {
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
            uint64_t v = ref_get(&cs->ref, start + k);
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
    ret = write_refblocks(cs, 0, ref_len(&cs->ref), rt);
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
    g_array_set_size(cs->ref.a, 0);
    g_array_set_size(cs->ref.a, cs->nb_clusters);
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
    ref_init(&cs.ref, s->refcount_order);
    cs.one = g_array_new(false, true, 1);
    cs.known = g_array_new(false, true, 1);
    cs.copied_walk = !fix;
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
    if (fix || cs.copied_suspect) {
        check_oflag_copied(&cs, fix);
    }
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
    g_array_free(cs.ref.a, true);
    g_array_free(cs.one, true);
    g_array_free(cs.known, true);
    g_free(cs.buf);
    return ret;
}
