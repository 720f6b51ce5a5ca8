/*
 * Internal definitions of the qcow2 driver: on-disk constants, the parsed
 * header, the driver state (BDRVQcow2State) and the functions the driver's
 * files offer each other.  Nothing outside block/drivers/qcow2/ (and its unit
 * tests) includes this.
 *
 * Invariants of the state (see docs/design/qcow2-consistency.md):
 *  1. s->l1_table and s->refcount_table mirror the on-disk tables exactly
 *     after every metadata operation returns (they are written through).
 *  2. A dirty L2 cache entry may reference clusters whose refcount is only in
 *     the refcount cache; the L2 cache therefore depends on the refcount cache
 *     and is never written before it (unless lazy refcounts are on).
 *  3. All metadata changes happen with s->lock held.
 *  4. Data transfers run without s->lock but registered in s->inflight_io;
 *     no L2 entry changes under a registered write of its cluster, and no
 *     host cluster is freed while a registered transfer touches it.
 */
#ifndef QCOW2_H
#define QCOW2_H

#include "block/block-int.h"

#define QCOW2_MAGIC 0x514649fbU               /* "QFI\xfb" */

#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_REFTABLE_SIZE (8 * MiB)
#define QCOW2_MAX_L1_SIZE       (32 * MiB)
#define QCOW2_MAX_SNAPSHOTS     65536
#define QCOW2_MAX_BACKING_NAME  1023
#define QCOW2_MAX_IMAGE_SIZE    (INT64_C(1) << 55)  /* 2^55 - 1 guest bytes */
#define QCOW2_V2_HEADER_SIZE    72
#define QCOW2_V3_HEADER_SIZE    104
#define QCOW2_HEADER_SIZE       112         /* what we write for v3 */

/* Header extension magics. */
#define QCOW2_EXT_END           0x00000000U
#define QCOW2_EXT_BACKING_FMT   0xe2792acaU
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857U
#define QCOW2_EXT_CRYPTO        0x0537be77U
#define QCOW2_EXT_BITMAPS       0x23852875U
#define QCOW2_EXT_DATA_FILE     0x44415441U

/* Feature bits. */
#define QCOW2_INCOMPAT_DIRTY        (UINT64_C(1) << 0)
#define QCOW2_INCOMPAT_CORRUPT      (UINT64_C(1) << 1)
#define QCOW2_INCOMPAT_DATA_FILE    (UINT64_C(1) << 2)
#define QCOW2_INCOMPAT_COMPRESSION  (UINT64_C(1) << 3)
#define QCOW2_INCOMPAT_EXTL2        (UINT64_C(1) << 4)
#define QCOW2_INCOMPAT_SUPPORTED    (UINT64_C(0x1f))
#define QCOW2_COMPAT_LAZY_REFCOUNTS (UINT64_C(1) << 0)
#define QCOW2_AUTOCLEAR_BITMAPS     (UINT64_C(1) << 0)
#define QCOW2_AUTOCLEAR_DATA_RAW    (UINT64_C(1) << 1)

#define QCOW2_FEAT_TYPE_INCOMPAT  0
#define QCOW2_FEAT_TYPE_COMPAT    1
#define QCOW2_FEAT_TYPE_AUTOCLEAR 2
#define QCOW2_FEATURE_NAME_LEN    46

#define QCOW2_COMPRESSION_ZLIB 0
#define QCOW2_COMPRESSION_ZSTD 1

/* L1 / L2 entry bits. */
#define QCOW_OFLAG_COPIED     (UINT64_C(1) << 63)
#define QCOW_OFLAG_COMPRESSED (UINT64_C(1) << 62)
#define QCOW_OFLAG_ZERO       (UINT64_C(1) << 0)
#define L1E_OFFSET_MASK       UINT64_C(0x00fffffffffffe00)
#define L2E_OFFSET_MASK       UINT64_C(0x00fffffffffffe00)
#define L1E_RESERVED_MASK     UINT64_C(0x7f000000000001ff)
#define REFT_OFFSET_MASK      UINT64_C(0xfffffffffffffe00)

#define QCOW2_SUBCLUSTERS     32   /* per cluster with extended L2 */

/* What one guest subcluster (or cluster) is, after decoding its L2 entry. */
typedef enum Qcow2SubclusterType {
    QCOW2_SC_NORMAL,              /* data in an allocated host cluster */
    QCOW2_SC_COMPRESSED,
    QCOW2_SC_ZERO_PLAIN,          /* reads as zero, no host cluster */
    QCOW2_SC_ZERO_ALLOC,          /* reads as zero, host cluster reserved */
    QCOW2_SC_UNALLOCATED_PLAIN,   /* falls through to backing */
    QCOW2_SC_UNALLOCATED_ALLOC,   /* falls through, host cluster reserved */
    QCOW2_SC_INVALID,             /* entry violates the format */
} Qcow2SubclusterType;

/* Overlap-check bits (which metadata a write must not hit). */
enum {
    QCOW2_OL_MAIN_HEADER    = 1 << 0,
    QCOW2_OL_ACTIVE_L1      = 1 << 1,
    QCOW2_OL_ACTIVE_L2      = 1 << 2,
    QCOW2_OL_REFCOUNT_TABLE = 1 << 3,
    QCOW2_OL_REFCOUNT_BLOCK = 1 << 4,
    QCOW2_OL_SNAPSHOT_TABLE = 1 << 5,
    QCOW2_OL_INACTIVE_L1    = 1 << 6,
    QCOW2_OL_INACTIVE_L2    = 1 << 7,
    QCOW2_OL_BITMAP_DIR     = 1 << 8,
    QCOW2_OL_ALL            = (1 << 9) - 1,
    QCOW2_OL_CONSTANT       = QCOW2_OL_MAIN_HEADER | QCOW2_OL_ACTIVE_L1 |
                              QCOW2_OL_REFCOUNT_TABLE |
                              QCOW2_OL_SNAPSHOT_TABLE | QCOW2_OL_BITMAP_DIR,
    QCOW2_OL_CACHED         = QCOW2_OL_ALL & ~QCOW2_OL_INACTIVE_L2,
};

/* Why clusters are freed: selects the pass-discard-* option. */
typedef enum Qcow2DiscardType {
    QCOW2_DISCARD_NEVER,
    QCOW2_DISCARD_ALWAYS,
    QCOW2_DISCARD_REQUEST,
    QCOW2_DISCARD_SNAPSHOT,
    QCOW2_DISCARD_OTHER,
} Qcow2DiscardType;

/* Host-order copy of the fixed header fields. */
typedef struct Qcow2Header {
    uint32_t magic;
    uint32_t version;
    uint64_t backing_file_offset;
    uint32_t backing_file_size;
    uint32_t cluster_bits;
    uint64_t size;
    uint32_t crypt_method;
    uint32_t l1_size;
    uint64_t l1_table_offset;
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t incompatible_features;
    uint64_t compatible_features;
    uint64_t autoclear_features;
    uint32_t refcount_order;
    uint32_t header_length;
    uint8_t compression_type;
} Qcow2Header;

typedef struct Qcow2Feature {
    uint8_t type;
    uint8_t bit;
    char name[QCOW2_FEATURE_NAME_LEN + 1];
} Qcow2Feature;

/* An extension we do not understand: kept and written back verbatim. */
typedef struct Qcow2UnknownExt {
    uint32_t magic;
    uint32_t len;
    uint8_t *data;
} Qcow2UnknownExt;

/* Everything read from the header cluster. */
typedef struct Qcow2HeaderInfo {
    Qcow2Header h;
    char *backing_file;        /* NULL: none */
    char *backing_fmt;         /* NULL: none */
    char *data_file;           /* NULL: none */
    GArray *features;          /* Qcow2Feature, from the feature table */
    GPtrArray *unknown_exts;   /* Qcow2UnknownExt* */
    bool has_bitmaps_ext;
    uint32_t nb_bitmaps;
    uint64_t bitmap_dir_size;
    uint64_t bitmap_dir_offset;
    bool has_crypto_ext;
    uint64_t crypto_offset, crypto_length;
    uint8_t *extra_fields;     /* header bytes past the ones we know */
    uint32_t extra_fields_len;
} Qcow2HeaderInfo;

void qcow2_header_info_init(Qcow2HeaderInfo *hi);
void qcow2_header_info_clear(Qcow2HeaderInfo *hi);

/*
 * Parse and validate the header from buf (the first buf_len bytes of the
 * file; at least one cluster or the whole file if shorter).  file_size is
 * the size of the image file.  Errors use QEMU's texts.  fmt_name is used in
 * "Unsupported FMT feature(s)" ("qcow2").
 */
int qcow2_parse_header(const uint8_t *buf, size_t buf_len, int64_t file_size,
                       Qcow2HeaderInfo *hi, Error **errp);
/* Serialise a header cluster (fixed part, extensions, backing file name)
 * into buf (zeroed first).  Returns the bytes used or -ENOSPC. */
int qcow2_build_header(const Qcow2HeaderInfo *hi, uint8_t *buf,
                       size_t buf_len);
/* The feature table QEMU 7.2 writes (8 entries). */
GArray *qcow2_default_feature_table(void);
/* "name, name, Unknown incompatible feature: hex" for unsupported bits. */
char *qcow2_unsupported_features_str(GArray *features, uint64_t mask);

/* ---- metadata cache (cache.c) ---- */
typedef struct Qcow2Cache Qcow2Cache;
Qcow2Cache *qcow2_cache_create(BlockDriverState *bs, int num_entries,
                               int entry_size, const char *name);
void qcow2_cache_destroy(Qcow2Cache *c);
int qcow2_cache_get(BlockDriverState *bs, Qcow2Cache *c, uint64_t offset,
                    void **table);
int qcow2_cache_get_empty(BlockDriverState *bs, Qcow2Cache *c,
                          uint64_t offset, void **table);
void qcow2_cache_put(Qcow2Cache *c, void **table);
void qcow2_cache_entry_mark_dirty(Qcow2Cache *c, void *table);
int qcow2_cache_write(BlockDriverState *bs, Qcow2Cache *c);
int qcow2_cache_flush(BlockDriverState *bs, Qcow2Cache *c);
void qcow2_cache_set_dependency(Qcow2Cache *c, Qcow2Cache *dependency);
/* Before the next write of c, flush the image file (orders earlier writes
 * of another cache before c's). */
void qcow2_cache_depends_on_flush(Qcow2Cache *c);
/* Forget a cached table (its cluster was freed); must not be in use. */
void qcow2_cache_discard(Qcow2Cache *c, uint64_t offset);
/* Forget every cached table starting in [offset, offset+len). */
void qcow2_cache_discard_range(Qcow2Cache *c, uint64_t offset, uint64_t len);
/* Drop clean entries not used since the last call (cache-clean-interval). */
void qcow2_cache_clean_unused(Qcow2Cache *c);
/* Drop every clean entry; returns -EBUSY if one is in use. */
int qcow2_cache_empty(Qcow2Cache *c);
int qcow2_cache_num_entries(Qcow2Cache *c);
/* Number of entries currently holding a table (for tests). */
int qcow2_cache_num_loaded(Qcow2Cache *c);
/* Read/write hooks so unit tests can run the cache without a node. */
typedef int (*Qcow2CacheIO)(void *opaque, bool write, uint64_t offset,
                            void *buf, size_t len);
void qcow2_cache_set_io(Qcow2Cache *c, Qcow2CacheIO io, void *opaque);

/*
 * A data transfer running without s->lock (data.c): registered under the
 * lock with the lookup that chose its host range, unregistered when done.
 * Reads register host bytes only (guest range empty).  See
 * docs/design/qcow2-consistency.md, "Concurrent data I/O".
 */
typedef struct Qcow2InflightIO {
    int64_t guest_start, guest_end;   /* guest clusters written */
    int64_t host_start, host_end;     /* host (data file) bytes accessed */
    bool write;
    bool alloc;                       /* changes the L2 entries when done */
} Qcow2InflightIO;

/* ---- driver state ---- */
typedef struct BDRVQcow2State {
    Qcow2HeaderInfo hi;            /* header as on disk (host order) */
    int cluster_bits;
    int cluster_size;
    int64_t cluster_offset_mask;   /* compressed descriptor: offset bits */
    int csize_shift, csize_mask;   /* compressed descriptor: sector count */
    int l2_bits;                   /* log2(entries per L2 table) */
    int l2_size;                   /* entries per L2 table */
    int l2_entry_bytes;            /* 8, or 16 with extended L2 */
    int l2_slice_size;             /* entries per cache slice */
    int subcluster_bits, subcluster_size, subclusters_per_cluster;
    int refcount_order, refcount_bits;
    uint64_t refcount_max;
    int refblock_bits;             /* log2(refcounts per refcount block) */
    int refblock_size;

    uint64_t *l1_table;            /* host order, l1_size entries */
    uint32_t l1_size;
    uint32_t l1_vm_state_index;
    uint64_t *refcount_table;      /* host order, refcount_table_size */
    uint32_t refcount_table_size;
    uint64_t free_cluster_index;   /* no free cluster below this */
    uint64_t free_byte_offset;     /* for packing compressed clusters */

    Qcow2Cache *l2_table_cache;
    Qcow2Cache *refcount_block_cache;
    uint64_t cache_clean_interval; /* seconds, 0: off */
    struct QBTimer *cache_clean_timer;

    CoMutex lock;
    /* Data I/O in flight without the lock (Qcow2InflightIO *), and the
     * coroutines waiting for some of it to end (with s->lock).  Both are
     * valid zero-initialised. */
    GList *inflight_io;
    CoQueue inflight_queue;

    bool extended_l2;
    bool lazy_refcounts;           /* option (on by image flag default) */
    bool use_lazy_refcounts;       /* effective for this open */
    bool discard_passthrough[QCOW2_DISCARD_OTHER + 1];
    int overlap_check;             /* QCOW2_OL_* */
    bool signaled_corruption;
    bool broken;                   /* fatal corruption: no more I/O */
    bool closing;                  /* in qcow2_close: bitmaps die next */
    uint8_t compression_type;
    bool data_file_raw;
    BdrvChild *data_file;          /* == bs->file without external data */

    uint64_t incompatible_features, compatible_features, autoclear_features;
    bool header_dirty_written;     /* dirty bit set on disk by us */

    /* Growing the image file ahead of allocation (refcount.c): writes
     * past the end of file are synchronous on Linux file systems, so the
     * file is extended in large steps and trimmed back when the node is
     * inactivated.  alloc_end: the end of the last byte written in this
     * open (the length QEMU's file would have); grown_base: the file
     * length before the first step; grown_len: the length we set;
     * grow_ok: set by the data path around its allocations (the only ones
     * that grow the file); grow_off: the file child refused to grow. */
    uint64_t alloc_end;
    int64_t grown_base, grown_len;
    bool grow_ok, grow_off;

    /* Overlap-check index (refcount.c): the host offsets of the active L2
     * tables and the refcount blocks, sorted, kind in the low bits.  Built
     * from s->l1_table / s->refcount_table by qcow2_ol_index_refresh() (data
     * path only) and dropped by qcow2_ol_index_invalidate() wherever an
     * offset in either table may change; ol_stamp_* catch a table replaced
     * behind our back.  See docs/design/qcow2-consistency.md, invariant 18. */
    GArray *ol_index;              /* uint64_t */
    bool ol_index_valid;
    const uint64_t *ol_stamp_l1, *ol_stamp_rt;
    uint64_t ol_stamp_l1_off, ol_stamp_rt_off;
    uint32_t ol_stamp_l1_size, ol_stamp_rt_size;

    /* Snapshot table geometry (snapshots are kept, not interpreted). */
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t snapshots_size;
    GArray *snapshot_l1s;          /* pairs {offset, size_bytes} (uint64) */
    struct Qcow2Snapshot *snapshots; /* nb_snapshots entries (snapshot.c) */
} BDRVQcow2State;

static inline int64_t qcow2_offset_into_cluster(BDRVQcow2State *s, int64_t o)
{
    return o & (s->cluster_size - 1);
}
static inline int64_t qcow2_start_of_cluster(BDRVQcow2State *s, int64_t o)
{
    return o & ~(int64_t)(s->cluster_size - 1);
}
static inline int64_t qcow2_size_to_clusters(BDRVQcow2State *s, int64_t n)
{
    return (n + s->cluster_size - 1) >> s->cluster_bits;
}
static inline bool qcow2_has_data_file(BDRVQcow2State *s)
{
    return s->incompatible_features & QCOW2_INCOMPAT_DATA_FILE;
}
/* Does a (non-compressed) L2 entry own a host cluster?  With an external
 * data file offset 0 is valid; COPIED (always set there) disambiguates. */
static inline bool qcow2_entry_has_host(BDRVQcow2State *s, uint64_t e)
{
    if (e & QCOW_OFLAG_COMPRESSED) {
        return false;
    }
    return (e & L2E_OFFSET_MASK) ||
           (qcow2_has_data_file(s) && (e & QCOW_OFLAG_COPIED));
}
/* Does the entry hold references that must be dropped when replaced? */
static inline bool qcow2_entry_holds(BDRVQcow2State *s, uint64_t e)
{
    return (e & QCOW_OFLAG_COMPRESSED) || qcow2_entry_has_host(s, e);
}

/* ---- L2 entry decoding (cluster.c; pure) ---- */
Qcow2SubclusterType qcow2_get_subcluster_type(BDRVQcow2State *s,
                                              uint64_t l2_entry,
                                              uint64_t l2_bitmap,
                                              int sc_index);
/* Host byte offset and byte length of a compressed cluster's data. */
void qcow2_parse_compressed_l2_entry(BDRVQcow2State *s, uint64_t l2_entry,
                                     uint64_t *coffset, int *csize);
/* Geometry derived from cluster_bits / refcount_order / extended_l2. */
void qcow2_init_geometry(BDRVQcow2State *s, int cluster_bits,
                         int refcount_order, bool extended_l2);
/* L1 entries needed for a guest size. */
uint64_t qcow2_l1_size_for(int cluster_bits, bool extended_l2, uint64_t size);

/* ---- refcounts (refcount.c) ---- */
uint64_t qcow2_refcount_get_entry(const void *block, int order, uint64_t i);
void qcow2_refcount_set_entry(void *block, int order, uint64_t i, uint64_t v);
int qcow2_refcount_init(BlockDriverState *bs, Error **errp);
void qcow2_refcount_close(BlockDriverState *bs);
int qcow2_get_refcount(BlockDriverState *bs, int64_t cluster_index,
                       uint64_t *refcount);
/* Allocate size bytes of contiguous fresh clusters (refcount 1); returns
 * the host offset or -errno. */
int64_t qcow2_alloc_clusters(BlockDriverState *bs, uint64_t size);
/* The same for callers in this driver that note the end of what they
 * write themselves (qcow2_note_file_end); others use the one above. */
int64_t qcow2_alloc_own_clusters(BlockDriverState *bs, uint64_t size);
/* Bytes up to end of the image file were written (see refcount.c,
 * grow_file_ahead: the file is trimmed back to the last one). */
void qcow2_note_file_end(BDRVQcow2State *s, uint64_t end);
/* Allocate size (< cluster) bytes for compressed data. */
int64_t qcow2_alloc_bytes(BlockDriverState *bs, int size);
int qcow2_update_refcount(BlockDriverState *bs, int64_t offset,
                          int64_t length, int64_t addend,
                          Qcow2DiscardType type);
void qcow2_free_clusters(BlockDriverState *bs, int64_t offset, int64_t size,
                         Qcow2DiscardType type);
/* Drop the references an L2 entry holds (normal, zero-alloc, compressed). */
void qcow2_free_any_cluster(BlockDriverState *bs, uint64_t l2_entry,
                            Qcow2DiscardType type);
/* Give back the part of the image file that was grown ahead of
 * allocation and never used (at inactivation and before a resize). */
void qcow2_trim_file_ahead(BlockDriverState *bs);
/* Refuse writes that would hit metadata (overlap-check); marks corrupt. */
int qcow2_pre_write_overlap_check(BlockDriverState *bs, int ign,
                                  int64_t offset, int64_t size);
int qcow2_check_metadata_overlap(BlockDriverState *bs, int ign,
                                 int64_t offset, int64_t size);
/* Forget the overlap-check index (an L1 or refcount-table offset may
 * change); s->lock held or no I/O running. */
void qcow2_ol_index_invalidate(BDRVQcow2State *s);
/* Rebuild the index if needed.  Only from the data path (s->lock held,
 * no metadata operation half-way), see invariant 18. */
void qcow2_ol_index_refresh(BlockDriverState *bs);

/* ---- L1/L2 (cluster.c) ---- */
/*
 * Find how [offset, offset+*bytes) is mapped: sets *type for the first
 * subcluster, *host_offset (NORMAL/ZERO_ALLOC/UNALLOCATED_ALLOC: the host
 * byte for offset; COMPRESSED: the raw L2 entry), and shortens *bytes to the
 * run with the same type (and contiguous host offsets).
 */
int qcow2_get_host_offset(BlockDriverState *bs, uint64_t offset,
                          uint64_t *bytes, uint64_t *host_offset,
                          Qcow2SubclusterType *type);
/* Get the L2 slice for a guest offset (allocating the L2 table when
 * allocate); *index is the entry's index in the slice. */
int qcow2_get_l2_slice(BlockDriverState *bs, uint64_t offset, bool allocate,
                       uint64_t **slice, int *index);
uint64_t qcow2_l2_entry(BDRVQcow2State *s, uint64_t *slice, int idx);
uint64_t qcow2_l2_bitmap(BDRVQcow2State *s, uint64_t *slice, int idx);
void qcow2_set_l2_entry(BDRVQcow2State *s, uint64_t *slice, int idx,
                        uint64_t v);
void qcow2_set_l2_bitmap(BDRVQcow2State *s, uint64_t *slice, int idx,
                         uint64_t v);
int qcow2_write_l1_entry(BlockDriverState *bs, int l1_index);
int qcow2_grow_l1_table(BlockDriverState *bs, uint64_t min_size, bool exact);

/* ---- the write path (qcow2.c / cluster.c) ---- */
int qcow2_mark_dirty(BlockDriverState *bs);
int qcow2_mark_clean(BlockDriverState *bs);
void qcow2_signal_corruption(BlockDriverState *bs, bool fatal, int64_t offset,
                             int64_t size, const char *fmt, ...)
    G_GNUC_PRINTF(5, 6);
/* Rewrite the header cluster from s->hi (with the live feature bits). */
int qcow2_update_header(BlockDriverState *bs);
int qcow2_flush_caches(BlockDriverState *bs);

/* ---- in-flight data I/O (data.c) ---- */
void qcow2_inflight_add(BDRVQcow2State *s, Qcow2InflightIO *io);
/* Unregister (s->lock not needed) and wake the waiters. */
void qcow2_inflight_del(BDRVQcow2State *s, Qcow2InflightIO *io);
bool qcow2_inflight_host_busy(BDRVQcow2State *s, int64_t start, int64_t end);
/* s->lock held (released while waiting): until no data I/O in flight
 * touches host bytes [offset, offset+len). */
void coroutine_fn qcow2_wait_host_idle(BlockDriverState *bs, int64_t offset,
                                       int64_t len);
/* s->lock held (released while waiting): until no data I/O is in flight
 * at all.  Operations that remap or share clusters wholesale (snapshot
 * create/apply/delete, resize, amend) call it right after taking the lock,
 * before any change: no new transfer starts while they hold the lock. */
void coroutine_fn qcow2_quiesce_data_io(BlockDriverState *bs);

/* Guest bytes [offset, offset+len), inside one cluster, into buf, whatever
 * the cluster is (normal, compressed, zero, from the backing file); with
 * s->lock held and data I/O quiesced (preallocation copying the head of a
 * partial last cluster). */
int coroutine_fn qcow2_read_cluster_locked(BlockDriverState *bs,
                                           int64_t offset, int64_t len,
                                           uint8_t *buf);

/* ---- the data path (data.c): vtable entries ---- */
int coroutine_fn qcow2_co_preadv(BlockDriverState *bs, int64_t offset,
                                 int64_t bytes, IOVector *qiov,
                                 BdrvRequestFlags flags);
int coroutine_fn qcow2_co_pwritev(BlockDriverState *bs, int64_t offset,
                                  int64_t bytes, IOVector *qiov,
                                  BdrvRequestFlags flags);
int coroutine_fn qcow2_co_pwritev_compressed(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes,
                                             IOVector *qiov);
int coroutine_fn qcow2_co_pwrite_zeroes(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes, BdrvRequestFlags flags);
int coroutine_fn qcow2_co_pdiscard(BlockDriverState *bs, int64_t offset,
                                   int64_t bytes);
int coroutine_fn qcow2_co_flush_to_os(BlockDriverState *bs);
int coroutine_fn qcow2_co_block_status(BlockDriverState *bs, bool want_zero,
                                       int64_t offset, int64_t bytes,
                                       int64_t *pnum, int64_t *map,
                                       BlockDriverState **file);
int coroutine_fn qcow2_co_truncate(BlockDriverState *bs, int64_t offset,
                                   bool exact, PreallocMode prealloc,
                                   BdrvRequestFlags flags, Error **errp);
int64_t qcow2_getlength(BlockDriverState *bs);
int64_t qcow2_get_allocated_file_size(BlockDriverState *bs);

/* ---- compression (compress.c; pure) ---- */
/* Compress src into dest; returns the compressed size, -ENOMEM if it does
 * not fit, -EIO on other errors. */
ssize_t qcow2_compress(int type, void *dest, size_t dest_size,
                       const void *src, size_t src_size);
/* Decompress exactly dest_size bytes; 0 or -EIO. */
int qcow2_decompress(int type, void *dest, size_t dest_size,
                     const void *src, size_t src_size);

/* ---- internal snapshots (snapshot.c) ---- */
/* One snapshot table entry, parsed (host order). */
typedef struct Qcow2Snapshot {
    uint64_t l1_table_offset;
    uint32_t l1_size;
    char *id_str;
    char *name;
    uint32_t date_sec, date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t vm_state_size;
    uint64_t disk_size;
    uint64_t icount;               /* UINT64_MAX: not recorded */
    uint32_t extra_data_size;      /* as read (>= 16 written by us) */
    uint8_t *unknown_extra;        /* extra data past the fields we know */
} Qcow2Snapshot;
/* Read and validate the snapshot table (at open); fills s->snapshots and
 * s->snapshot_l1s / snapshots_size. */
int qcow2_read_snapshots(BlockDriverState *bs, Error **errp);
void qcow2_free_snapshots(BlockDriverState *bs);
struct QBSnapshotInfo;
int qcow2_snapshot_create(BlockDriverState *bs, struct QBSnapshotInfo *sn);
int qcow2_snapshot_goto(BlockDriverState *bs, const char *id_or_name,
                        Error **errp);
int qcow2_snapshot_delete(BlockDriverState *bs, const char *id,
                          const char *name, Error **errp);
int qcow2_snapshot_list(BlockDriverState *bs, struct QBSnapshotInfo **psn);
int qcow2_snapshot_load_tmp(BlockDriverState *bs, const char *id,
                            const char *name, Error **errp);

/* ---- preallocation=falloc|full (create.c) ---- */
/* Allocate and map host clusters for the guest range [old_size, new_size)
 * in QEMU 7.2's layout (new refcount structure past the last used cluster,
 * then the data clusters in one run, file grown with mode), so the image
 * is byte-identical to qemu-img's.  For create and for truncate (resize);
 * the caller holds s->lock in coroutine context, or runs alone. */
int qcow2_preallocate_alloc(BlockDriverState *bs, int64_t old_size,
                            int64_t new_size, PreallocMode mode,
                            Error **errp);

/* ---- amend (amend.c) ---- */
extern const CreateOptDesc qcow2_amend_opts[];
int qcow2_amend_options(BlockDriverState *bs, json_t *opts,
                        void (*status_cb)(BlockDriverState *bs, int64_t done,
                                          int64_t total, void *opaque),
                        void *cb_opaque, bool force, Error **errp);

/* ---- measure (measure.c) ---- */
extern BlockDriver bdrv_qcow2;
int qcow2_measure(json_t *opts, BlockDriverState *in_bs,
                  BlockMeasureInfo *info, Error **errp);

/* ---- check (check.c) ---- */
int qcow2_co_check_impl(BlockDriverState *bs, BdrvCheckResult *res, int fix);

#endif
