/*
 * qcow2 data path: guest reads (backing files, zero and compressed
 * clusters), writes with copy-on-write and run allocation, compressed
 * writes, write-zeroes, discard, block status, flush and resize.  Entered
 * from the vtable in qcow2.c; metadata helpers live in cluster.c and
 * refcount.c.
 *
 * Concurrency (docs/design/qcow2-consistency.md, "Concurrent data I/O"):
 * s->lock (a CoMutex) is held for every metadata lookup or change, never
 * for data transfers.  Each data transfer is registered in flight while it
 * runs; writes that change L2 entries (allocation, copy-on-write) keep
 * other writers of their guest clusters waiting, and nothing frees a host
 * cluster while data I/O to it is in flight.  Compressed data is
 * compressed and inflated outside the lock, in the thread pool.
 */
#include "qcow2.h"
#include "bitmap.h"
#include "util/thread-pool.h"

/* ------------------------------------------------------------------ */
/* In-flight data I/O                                                  */

/*
 * Data I/O runs without s->lock; what keeps it safe is this registry (see
 * docs/design/qcow2-consistency.md, "Concurrent data I/O").  Every data
 * read or write of a host range is registered under the lock, in the same
 * critical section as the lookup that chose the range, and unregistered
 * when the I/O is over.  Registering and unregistering never yield, and
 * every user runs in the node's AioContext, so the list needs no lock of
 * its own: unregistering is done without s->lock.
 */

void qcow2_inflight_add(BDRVQcow2State *s, Qcow2InflightIO *io)
{
    s->inflight_io = g_list_prepend(s->inflight_io, io);
}

void qcow2_inflight_del(BDRVQcow2State *s, Qcow2InflightIO *io)
{
    s->inflight_io = g_list_remove(s->inflight_io, io);
    if (!co_queue_empty(&s->inflight_queue)) {
        co_queue_restart_all(&s->inflight_queue);
    }
}

/* Is a write by another request than self registered on a guest cluster
 * of [start, end)?  alloc_only: only writes that will change L2 entries. */
/*
 * May this request's allocations grow the image file ahead (refcount.c,
 * grow_file_ahead)?  Only while another write is in flight: writes past
 * the end of file are synchronous, which costs nothing to a lone writer
 * (it waits for its write anyway), while a write into the sparse tail has
 * the file system convert its extent when it completes (4 KiB writes at
 * depth 1: 0.134 s grown vs 0.101 s extending, 1024 writes).
 */
static bool writes_in_flight(BDRVQcow2State *s)
{
    for (GList *l = s->inflight_io; l; l = l->next) {
        if (((Qcow2InflightIO *)l->data)->write) {
            return true;
        }
    }
    return false;
}

static bool guest_busy(BDRVQcow2State *s, int64_t start, int64_t end,
                       bool alloc_only)
{
    for (GList *l = s->inflight_io; l; l = l->next) {
        Qcow2InflightIO *io = l->data;
        if (io->write && (io->alloc || !alloc_only) &&
            start < io->guest_end && io->guest_start < end) {
            return true;
        }
    }
    return false;
}

bool qcow2_inflight_host_busy(BDRVQcow2State *s, int64_t start, int64_t end)
{
    for (GList *l = s->inflight_io; l; l = l->next) {
        Qcow2InflightIO *io = l->data;
        if (start < io->host_end && io->host_start < end) {
            return true;
        }
    }
    return false;
}

/*
 * Wait (s->lock held; dropped while waiting) until no data I/O overlaps
 * host bytes [offset, offset+len).  Can't deadlock: a registered I/O never
 * waits for another registration before it unregisters (the lock it may
 * retake is never held by a waiter, which sleeps without it).
 */
void coroutine_fn qcow2_wait_host_idle(BlockDriverState *bs, int64_t offset,
                                       int64_t len)
{
    BDRVQcow2State *s = bs->opaque;
    while (qcow2_inflight_host_busy(s, offset, offset + len)) {
        co_queue_wait(&s->inflight_queue, &s->lock);
    }
}

void coroutine_fn qcow2_quiesce_data_io(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    /* Wholesale operations change table offsets in place: the overlap
     * index is rebuilt by the first data write after them (invariant 18). */
    qcow2_ol_index_invalidate(s);
    while (s->inflight_io) {
        co_queue_wait(&s->inflight_queue, &s->lock);
    }
}

static void coroutine_fn wait_guest_idle(BlockDriverState *bs, int64_t start,
                                         int64_t end, bool alloc_only)
{
    BDRVQcow2State *s = bs->opaque;
    while (guest_busy(s, start, end, alloc_only)) {
        co_queue_wait(&s->inflight_queue, &s->lock);
    }
}

/* ------------------------------------------------------------------ */
/* Reads                                                               */

/* Guest bytes [offset, offset+len) of the backing file, zero past its end. */
static int read_backing(BlockDriverState *bs, int64_t offset, int64_t len,
                        IOVector *qiov, size_t qoff)
{
    int64_t blen, n;
    int ret;

    if (!bs->backing) {
        qiov_memset(qiov, qoff, 0, len);
        return 0;
    }
    blen = bdrv_getlength(bs->backing->bs);
    if (blen < 0) {
        return blen;
    }
    n = offset < blen ? MIN(len, blen - offset) : 0;
    if (n > 0) {
        IOVector sl;
        qiov_init_slice(&sl, qiov, qoff, n);
        BLKDBG_EVENT(bs->file, BLKDBG_EV_READ_BACKING_AIO);
        ret = bdrv_co_preadv(bs->backing, offset, n, &sl, 0);
        qiov_destroy(&sl);
        if (ret < 0) {
            return ret;
        }
    }
    if (n < len) {
        qiov_memset(qiov, qoff + n, 0, len - n);
    }
    return 0;
}

typedef struct DecompressJob {
    int type;
    void *dest;
    size_t dest_size;
    const void *src;
    size_t src_size;
    int ret;
} DecompressJob;

static int decompress_job(void *opaque)
{
    DecompressJob *j = opaque;
    j->ret = qcow2_decompress(j->type, j->dest, j->dest_size, j->src,
                              j->src_size);
    return 0;
}

/* Host bytes [*start, *end) holding a compressed cluster's data (what a
 * reader registers in flight; clusters are freed in 512-byte sectors). */
static void compressed_host_range(BDRVQcow2State *s, uint64_t l2_entry,
                                  int64_t *start, int64_t *end)
{
    uint64_t coff;
    int csize;

    qcow2_parse_compressed_l2_entry(s, l2_entry, &coff, &csize);
    *start = coff & ~UINT64_C(511);
    *end = coff + csize;
}

/*
 * Guest bytes [offset, offset+len) of the compressed cluster l2_entry
 * into qiov at qoff.  Runs without s->lock: the caller's in-flight record
 * (its read of the compressed bytes, or the alloc record of a write that
 * replaces the cluster) keeps the bytes from being freed and reused.  The
 * inflation runs in the thread pool, so concurrent readers (convert's
 * coroutines) use every core, as compression does.
 */
static int coroutine_fn read_compressed(BlockDriverState *bs,
                                        uint64_t l2_entry, int64_t offset,
                                        int64_t len, IOVector *qiov,
                                        size_t qoff)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t coff;
    int csize, ret;
    int64_t flen;
    g_autofree uint8_t *in = NULL, *out = NULL;
    DecompressJob job;

    qcow2_parse_compressed_l2_entry(s, l2_entry, &coff, &csize);
    flen = bdrv_getlength(bs->file->bs);
    if (flen < 0) {
        return flen;
    }
    if ((int64_t)coff >= flen) {
        return -EIO;
    }
    if ((int64_t)(coff + csize) > flen) {
        csize = flen - coff;   /* the last sector may be short */
    }
    in = g_try_malloc(csize);
    out = g_try_malloc(s->cluster_size);
    if (!in || !out) {
        return -ENOMEM;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_EV_READ_COMPRESSED);
    ret = bdrv_co_pread(bs->file, coff, csize, in, 0);
    if (ret < 0) {
        return ret;
    }
    job = (DecompressJob) {
        .type = s->compression_type, .dest = out,
        .dest_size = s->cluster_size, .src = in, .src_size = csize,
    };
    thread_pool_submit_co(aio_get_thread_pool(qb_get_current_aio_context()),
                          decompress_job, &job);
    if (job.ret < 0) {
        return -EIO;
    }
    qiov_from_buf(qiov, qoff, out + qcow2_offset_into_cluster(s, offset), len);
    return 0;
}

/* Read guest bytes; takes s->lock for each lookup, never across I/O. */
static int coroutine_fn qcow2_read(BlockDriverState *bs, int64_t offset,
                                   int64_t bytes, IOVector *qiov, size_t qoff)
{
    BDRVQcow2State *s = bs->opaque;
    int ret = 0;

    while (bytes > 0) {
        uint64_t cur = bytes, host;
        Qcow2SubclusterType type;
        Qcow2InflightIO io = { 0 };

        co_mutex_lock(&s->lock);
        ret = qcow2_get_host_offset(bs, offset, &cur, &host, &type);
        /* Registered before the lock goes: the host bytes can't be freed
         * (and reused) while we read them (invariant 14). */
        if (ret == 0 && type == QCOW2_SC_NORMAL) {
            io.host_start = host;
            io.host_end = host + cur;
            qcow2_inflight_add(s, &io);
        } else if (ret == 0 && type == QCOW2_SC_COMPRESSED) {
            compressed_host_range(s, host, &io.host_start, &io.host_end);
            qcow2_inflight_add(s, &io);
        }
        co_mutex_unlock(&s->lock);
        if (ret < 0) {
            return ret;
        }
        switch (type) {
        case QCOW2_SC_ZERO_PLAIN:
        case QCOW2_SC_ZERO_ALLOC:
            qiov_memset(qiov, qoff, 0, cur);
            break;
        case QCOW2_SC_UNALLOCATED_PLAIN:
        case QCOW2_SC_UNALLOCATED_ALLOC:
            ret = read_backing(bs, offset, cur, qiov, qoff);
            break;
        case QCOW2_SC_COMPRESSED:
            ret = read_compressed(bs, host, offset, cur, qiov, qoff);
            qcow2_inflight_del(s, &io);
            break;
        case QCOW2_SC_NORMAL: {
            IOVector sl;
            qiov_init_slice(&sl, qiov, qoff, cur);
            BLKDBG_EVENT(bs->file, BLKDBG_EV_READ_AIO);
            ret = bdrv_co_preadv(s->data_file, host, cur, &sl, 0);
            qiov_destroy(&sl);
            qcow2_inflight_del(s, &io);
            break;
        }
        default:
            break;
        }
        if (ret < 0) {
            return ret;
        }
        offset += cur;
        qoff += cur;
        bytes -= cur;
    }
    return 0;
}

int coroutine_fn qcow2_co_preadv(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes, IOVector *qiov,
                                        BdrvRequestFlags flags)
{
    BDRVQcow2State *s = bs->opaque;
    if (s->broken) {
        return -ENOMEDIUM;   /* QEMU detaches the driver: "No medium" */
    }
    return qcow2_read(bs, offset, bytes, qiov, 0);
}

/* ------------------------------------------------------------------ */
/* Writes                                                              */

/* Current guest content of [off, off+len) (inside one cluster, whose L2
 * entry and bitmap are given) into buf.  Runs without s->lock: the
 * caller's in-flight record keeps the entry (and so its clusters) alive. */
static int read_cluster_content(BlockDriverState *bs, int64_t cluster_off,
                                uint64_t entry, uint64_t bitmap,
                                int64_t off, int64_t len, uint8_t *buf)
{
    BDRVQcow2State *s = bs->opaque;
    IOVector q;
    int ret = 0;

    if (len <= 0) {
        return 0;
    }
    qiov_init_buf(&q, buf, len);
    if (entry & QCOW_OFLAG_COMPRESSED) {
        return read_compressed(bs, entry, cluster_off + off, len, &q, 0);
    }
    int64_t pos = off;
    while (pos < off + len && ret == 0) {
        int sc = pos >> s->subcluster_bits;
        Qcow2SubclusterType t = qcow2_get_subcluster_type(s, entry, bitmap,
                                                          sc);
        int64_t end = MIN(off + len, (int64_t)(sc + 1) << s->subcluster_bits);
        switch (t) {
        case QCOW2_SC_NORMAL:
            ret = bdrv_co_pread(s->data_file,
                                (entry & L2E_OFFSET_MASK) + pos, end - pos,
                                buf + (pos - off), 0);
            break;
        case QCOW2_SC_UNALLOCATED_PLAIN:
        case QCOW2_SC_UNALLOCATED_ALLOC:
            ret = read_backing(bs, cluster_off + pos, end - pos, &q,
                               pos - off);
            break;
        case QCOW2_SC_INVALID:
            ret = -EIO;
            break;
        default:
            memset(buf + (pos - off), 0, end - pos);
        }
        pos = end;
    }
    return ret < 0 ? ret : 0;
}

static uint64_t sc_range_mask(BDRVQcow2State *s, int64_t a, int64_t b)
{
    int first = a >> s->subcluster_bits;
    int last = (b - 1) >> s->subcluster_bits;
    uint64_t m = 0;
    for (int i = first; i <= last; i++) {
        m |= UINT64_C(1) << i;
    }
    return m;
}

/* How a write treats one guest cluster. */
typedef enum WriteKind {
    WK_REWRITE,   /* COPIED data, every touched subcluster normal: in place,
                   * no metadata change */
    WK_INPLACE,   /* COPIED host cluster, but the L2 entry changes (zero
                   * flag, subcluster bits): in place, then L2 update */
    WK_FRESH,     /* needs a new host cluster (unallocated, zero, shared,
                   * compressed): allocate, write, then L2 update */
} WriteKind;

/*
 * One step of a write request: n guest clusters from cl, one kind, one L2
 * slice, written to contiguous host bytes [host + wa, host + wb) with one
 * request.  Guest bytes [cl + a, cl + b) come from the caller; the rest of
 * [wa, wb) is copy-on-write content of the first (head) and last (tail)
 * cluster.  Clusters in the middle are fully covered: no COW reads.
 */
typedef struct WriteStep {
    WriteKind kind;
    int64_t cl;
    int n;
    int64_t host;
    int64_t a, b, wa, wb;               /* relative to cl */
    uint64_t head_entry, head_bitmap;
    uint64_t tail_entry, tail_bitmap;
    Qcow2InflightIO io;
} WriteStep;

/* Kind of a cluster (entry, bitmap) for writing [a, b) of it, and the
 * subrange [*wa, *wb) that must be written (guest bytes plus COW). */
static WriteKind classify(BDRVQcow2State *s, uint64_t entry, uint64_t bitmap,
                          int64_t a, int64_t b, int64_t *wa, int64_t *wb)
{
    bool compressed = entry & QCOW_OFLAG_COMPRESSED;
    bool has = qcow2_entry_has_host(s, entry);
    bool inplace = has && (entry & QCOW_OFLAG_COPIED);

    if (!s->extended_l2) {
        if (inplace && !(entry & QCOW_OFLAG_ZERO)) {
            *wa = a;
            *wb = b;
            return WK_REWRITE;
        }
        *wa = 0;
        *wb = s->cluster_size;
        return inplace ? WK_INPLACE : WK_FRESH;
    }
    if (compressed || (has && !inplace)) {
        *wa = 0;
        *wb = s->cluster_size;
        return WK_FRESH;
    }
    *wa = QB_ALIGN_DOWN(a, s->subcluster_size);
    *wb = QB_ALIGN_UP(b, s->subcluster_size);
    if (!inplace) {
        return WK_FRESH;
    }
    int first = a >> s->subcluster_bits, last = (b - 1) >> s->subcluster_bits;
    bool all = true;
    for (int i = first; i <= last; i++) {
        if (qcow2_get_subcluster_type(s, entry, bitmap, i) !=
            QCOW2_SC_NORMAL) {
            all = false;
        }
    }
    /* Normal subclusters at the edges keep their data: no COW there. */
    if (qcow2_get_subcluster_type(s, entry, bitmap, first) ==
        QCOW2_SC_NORMAL) {
        *wa = a;
    }
    if (qcow2_get_subcluster_type(s, entry, bitmap, last) ==
        QCOW2_SC_NORMAL) {
        *wb = b;
    }
    return all ? WK_REWRITE : WK_INPLACE;
}

static bool bad_host_offset(BlockDriverState *bs, uint64_t entry)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t host = entry & L2E_OFFSET_MASK;

    if (!(entry & QCOW_OFLAG_COMPRESSED) &&
        qcow2_offset_into_cluster(s, host)) {
        qcow2_signal_corruption(bs, true, -1, -1, "Cluster allocation offset "
                                "%#" PRIx64 " unaligned", host);
        return true;
    }
    return false;
}

int coroutine_fn qcow2_read_cluster_locked(BlockDriverState *bs,
                                           int64_t offset, int64_t len,
                                           uint8_t *buf)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t cl = qcow2_start_of_cluster(s, offset);
    uint64_t *slice, entry = 0, bitmap = 0;
    int idx, ret;

    assert(offset - cl + len <= s->cluster_size);
    ret = qcow2_get_l2_slice(bs, cl, false, &slice, &idx);
    if (ret < 0) {
        return ret;
    }
    if (slice) {
        entry = qcow2_l2_entry(s, slice, idx);
        bitmap = qcow2_l2_bitmap(s, slice, idx);
        qcow2_cache_put(s->l2_table_cache, (void **)&slice);
    }
    if (bad_host_offset(bs, entry)) {
        return -EIO;
    }
    return read_cluster_content(bs, cl, entry, bitmap, offset - cl, len,
                                buf);
}

/*
 * Decide the next step of writing guest [offset, offset+bytes), allocate
 * its host clusters and register it in flight.  s->lock held (may be
 * dropped while waiting for a conflicting in-flight write).  A rewrite
 * waits only for in-flight L2 changes of its clusters; anything that
 * changes L2 entries waits for every in-flight write to them, so an entry
 * never changes under a write that looked it up.
 */
static int coroutine_fn plan_step(BlockDriverState *bs, int64_t offset,
                                  int64_t bytes, WriteStep *st)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t cs = s->cluster_size;
    int64_t cl = qcow2_start_of_cluster(s, offset);
    int64_t a = offset - cl;
    uint64_t *slice, entry, bitmap;
    int idx, ret;
    int64_t wa, wb;
    WriteKind kind;

    for (;;) {
        /* Data-path allocations may grow the file ahead (refcount.c). */
        s->grow_ok = writes_in_flight(s);
        ret = qcow2_get_l2_slice(bs, cl, true, &slice, &idx);
        s->grow_ok = false;
        if (ret < 0) {
            return ret;
        }
        entry = qcow2_l2_entry(s, slice, idx);
        bitmap = qcow2_l2_bitmap(s, slice, idx);
        if (bad_host_offset(bs, entry)) {
            qcow2_cache_put(s->l2_table_cache, (void **)&slice);
            return -EIO;
        }
        kind = classify(s, entry, bitmap, a, MIN(cs, a + bytes), &wa, &wb);
        if (!guest_busy(s, cl, cl + cs, kind == WK_REWRITE)) {
            break;
        }
        qcow2_cache_put(s->l2_table_cache, (void **)&slice);
        wait_guest_idle(bs, cl, cl + cs, kind == WK_REWRITE);
        /* The entry may have changed meanwhile: look it up again. */
    }

    *st = (WriteStep) {
        .kind = kind, .cl = cl, .n = 1, .a = a, .b = MIN(cs, a + bytes),
        .wa = wa, .wb = wb, .head_entry = entry, .head_bitmap = bitmap,
        .tail_entry = entry, .tail_bitmap = bitmap,
    };
    st->host = entry & L2E_OFFSET_MASK;

    /* Grow the run over following clusters of the same kind. */
    while (kind != WK_INPLACE && idx + st->n < s->l2_slice_size &&
           st->b == st->n * cs && st->wb == st->n * cs &&
           a + bytes > st->b) {
        int64_t ncl = cl + st->n * cs;
        int64_t nb = MIN(cs, a + bytes - st->n * cs);
        uint64_t e2 = qcow2_l2_entry(s, slice, idx + st->n);
        uint64_t b2 = qcow2_l2_bitmap(s, slice, idx + st->n);
        int64_t wa2, wb2;

        if ((!(e2 & QCOW_OFLAG_COMPRESSED) &&
             qcow2_offset_into_cluster(s, e2 & L2E_OFFSET_MASK)) ||
            classify(s, e2, b2, 0, nb, &wa2, &wb2) != kind || wa2 != 0 ||
            (kind == WK_REWRITE &&
             (e2 & L2E_OFFSET_MASK) != st->host + st->n * cs) ||
            guest_busy(s, ncl, ncl + cs, kind == WK_REWRITE)) {
            break;
        }
        st->b = st->n * cs + nb;
        st->wb = st->n * cs + wb2;
        st->tail_entry = e2;
        st->tail_bitmap = b2;
        st->n++;
    }
    qcow2_cache_put(s->l2_table_cache, (void **)&slice);

    if (kind == WK_FRESH) {
        s->grow_ok = writes_in_flight(s);
        st->host = qcow2_has_data_file(s) ? cl :
                   qcow2_alloc_own_clusters(bs, st->n * cs);
        s->grow_ok = false;
        if (st->host < 0) {
            return st->host;
        }
    }
    if (!qcow2_has_data_file(s)) {
        qcow2_ol_index_refresh(bs);
        ret = qcow2_pre_write_overlap_check(bs, 0, st->host + st->wa,
                                            st->wb - st->wa);
        if (ret < 0) {
            if (kind == WK_FRESH) {
                qcow2_free_clusters(bs, st->host, st->n * cs,
                                    QCOW2_DISCARD_NEVER);
            }
            return ret;
        }
    }
    st->io = (Qcow2InflightIO) {
        .guest_start = cl, .guest_end = cl + st->n * cs,
        .host_start = st->host + st->wa, .host_end = st->host + st->wb,
        .write = true, .alloc = kind != WK_REWRITE,
    };
    qcow2_inflight_add(s, &st->io);
    return 0;
}

/*
 * Zeros for copy-on-write of clusters that read as zero and for write-
 * zeroes fallbacks: never written to (O_DIRECT writes only read from it),
 * and in .bss, so untouched pages all map the kernel's zero page.  Saves a
 * per-request allocation, memset and page faults on every first write to
 * a fresh cluster (a quarter of the CPU time of 4 KiB writes to fresh
 * 64 KiB clusters).
 */
static uint8_t zero_cow[2 * MiB] __attribute__((aligned(4096)));
static int64_t zero_cow_touched;

/* zero_cow, its first len bytes backed by pages of our own: direct I/O
 * pins the zero page only through the slow get_user_pages path.  (Threads
 * racing here all store zeros over zeros.) */
static uint8_t *zeros(int64_t len)
{
    if (len > zero_cow_touched) {
        memset(zero_cow, 0, len);
        zero_cow_touched = len;
    }
    return zero_cow;
}

/* Does [off, off+len) of the cluster (entry, bitmap) read as zeros without
 * any I/O (zero, or unallocated without a backing file)? */
static bool cow_reads_zero(BlockDriverState *bs, uint64_t entry,
                           uint64_t bitmap, int64_t off, int64_t len)
{
    BDRVQcow2State *s = bs->opaque;

    if (entry & QCOW_OFLAG_COMPRESSED) {
        return false;
    }
    for (int64_t pos = QB_ALIGN_DOWN(off, s->subcluster_size);
         pos < off + len; pos += s->subcluster_size) {
        switch (qcow2_get_subcluster_type(s, entry, bitmap,
                                          pos >> s->subcluster_bits)) {
        case QCOW2_SC_ZERO_PLAIN:
        case QCOW2_SC_ZERO_ALLOC:
            break;
        case QCOW2_SC_UNALLOCATED_PLAIN:
        case QCOW2_SC_UNALLOCATED_ALLOC:
            if (bs->backing) {
                return false;
            }
            break;
        default:
            return false;
        }
    }
    return true;
}

/* The data transfer of a step: s->lock not held.  qiov NULL: zeros. */
static int coroutine_fn step_io(BlockDriverState *bs, WriteStep *st,
                                IOVector *qiov, size_t qoff,
                                BdrvRequestFlags flags)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t head = st->a - st->wa, tail = st->wb - st->b;
    int64_t len = st->b - st->a;
    int64_t last_cl = st->cl + (int64_t)(st->n - 1) * s->cluster_size;
    int64_t tail_off = st->b - (last_cl - st->cl);
    bool hz = head && cow_reads_zero(bs, st->head_entry, st->head_bitmap,
                                     st->wa, head);
    bool tz = tail && cow_reads_zero(bs, st->tail_entry, st->tail_bitmap,
                                     tail_off, tail);
    bool zz = !qiov && len <= (int64_t)sizeof(zero_cow);
    uint8_t *hbuf = NULL, *tbuf = NULL, *zbuf = NULL;
    IOVector q;
    int ret = 0;

    flags &= BDRV_REQ_FUA;
    if (!head && !tail && qiov) {
        qiov_init_slice(&q, qiov, qoff, len);
        BLKDBG_EVENT(bs->file, BLKDBG_EV_WRITE_AIO);
        ret = bdrv_co_pwritev(s->data_file, st->host + st->a, len, &q, flags);
        qiov_destroy(&q);
        return ret < 0 ? ret : 0;
    }
    hbuf = head && !hz ? qb_try_memalign(QB_MEM_ALIGN, head) : NULL;
    tbuf = tail && !tz ? qb_try_memalign(QB_MEM_ALIGN, tail) : NULL;
    zbuf = !qiov && !zz ? qb_try_memalign(QB_MEM_ALIGN, len) : NULL;
    if ((head && !hz && !hbuf) || (tail && !tz && !tbuf) ||
        (!qiov && !zz && !zbuf)) {
        ret = -ENOMEM;
        goto out;
    }
    /* Guest data merged with the copied-on-write parts goes out as one
     * write, as QEMU's merged COW does. */
    if (head || tail) {
        BLKDBG_EVENT(bs->file, BLKDBG_EV_COW_READ);
    }
    if (head && !hz) {
        ret = read_cluster_content(bs, st->cl, st->head_entry,
                                   st->head_bitmap, st->wa, head, hbuf);
    }
    if (ret == 0 && tail && !tz) {
        ret = read_cluster_content(bs, last_cl, st->tail_entry,
                                   st->tail_bitmap, tail_off, tail, tbuf);
    }
    if (ret < 0) {
        goto out;
    }
    qiov_init(&q, 3);
    if (head) {
        qiov_add(&q, hz ? zeros(head) : hbuf, head);
    }
    if (qiov) {
        qiov_concat(&q, qiov, qoff, len);
    } else if (zz) {
        qiov_add(&q, zeros(len), len);
    } else {
        memset(zbuf, 0, len);
        qiov_add(&q, zbuf, len);
    }
    if (tail) {
        qiov_add(&q, tz ? zeros(tail) : tbuf, tail);
    }
    BLKDBG_EVENT(bs->file, qiov ? BLKDBG_EV_COW_WRITE : BLKDBG_EV_WRITE_AIO);
    ret = bdrv_co_pwritev(s->data_file, st->host + st->wa, st->wb - st->wa,
                          &q, flags);
    qiov_destroy(&q);
out:
    qb_vfree(hbuf);
    qb_vfree(tbuf);
    qb_vfree(zbuf);
    return ret < 0 ? ret : 0;
}

/*
 * After the data of an INPLACE or FRESH step: point the L2 entries at the
 * (new) clusters, drop the in-flight record, release what the old entries
 * held.  s->lock held.  The data is complete before the entries change, and
 * the L2 cache depends on the refcount cache, so on disk the refcounts and
 * the data come before the entries that use them.
 */
static int coroutine_fn commit_step(BlockDriverState *bs, WriteStep *st,
                                    int ret)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t cs = s->cluster_size;
    g_autofree uint64_t *old = NULL;
    uint64_t *slice;
    int idx;

    if (ret == 0) {
        ret = qcow2_get_l2_slice(bs, st->cl, true, &slice, &idx);
    }
    if (ret < 0) {
        qcow2_inflight_del(s, &st->io);
        if (st->kind == WK_FRESH && !qcow2_has_data_file(s)) {
            qcow2_free_clusters(bs, st->host, st->n * cs,
                                QCOW2_DISCARD_NEVER);
        }
        return ret;
    }
    old = g_new(uint64_t, st->n);
    for (int i = 0; i < st->n; i++) {
        int64_t wa = i == 0 ? st->wa : 0;
        int64_t wb = i == st->n - 1 ? st->wb - i * cs : cs;
        uint64_t bitmap = qcow2_l2_bitmap(s, slice, idx + i);

        old[i] = qcow2_l2_entry(s, slice, idx + i);
        qcow2_set_l2_entry(s, slice, idx + i,
                           (st->host + i * cs) | QCOW_OFLAG_COPIED);
        if (s->extended_l2) {
            uint64_t m = sc_range_mask(s, wa, wb);
            qcow2_set_l2_bitmap(s, slice, idx + i,
                                (bitmap | m) & ~(m << 32));
        }
    }
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, slice);
    qcow2_cache_put(s->l2_table_cache, (void **)&slice);
    qcow2_inflight_del(s, &st->io);
    if (st->kind == WK_FRESH) {
        for (int i = 0; i < st->n; i++) {
            if (qcow2_entry_holds(s, old[i])) {
                qcow2_free_any_cluster(bs, old[i], QCOW2_DISCARD_NEVER);
            }
        }
    }
    return 0;
}

/*
 * Write guest [offset, offset+bytes) from qiov at qoff (zeros if qiov is
 * NULL).  s->lock is held on entry and dropped around every data transfer;
 * it is held on return unless unlock is set (then it is released).
 */
static int coroutine_fn write_locked(BlockDriverState *bs, int64_t offset,
                                     int64_t bytes, IOVector *qiov,
                                     size_t qoff, BdrvRequestFlags flags,
                                     bool unlock)
{
    BDRVQcow2State *s = bs->opaque;
    int ret = 0;

    while (bytes > 0) {
        WriteStep st;
        int64_t done;

        ret = plan_step(bs, offset, bytes, &st);
        if (ret < 0) {
            break;
        }
        co_mutex_unlock(&s->lock);
        ret = step_io(bs, &st, qiov, qoff, flags);
        if (ret == 0 && !qcow2_has_data_file(s)) {
            qcow2_note_file_end(s, st.host + st.wb);
        }
        done = st.b - st.a;
        if (st.kind == WK_REWRITE) {
            /* No metadata to update: done without the lock. */
            qcow2_inflight_del(s, &st.io);
            if (unlock && (ret < 0 || done == bytes)) {
                return ret;
            }
            co_mutex_lock(&s->lock);
        } else {
            co_mutex_lock(&s->lock);
            ret = commit_step(bs, &st, ret);
        }
        if (ret < 0) {
            break;
        }
        offset += done;
        qoff += done;
        bytes -= done;
    }
    if (unlock) {
        co_mutex_unlock(&s->lock);
    }
    return ret;
}

int coroutine_fn qcow2_co_pwritev(BlockDriverState *bs, int64_t offset,
                                  int64_t bytes, IOVector *qiov,
                                  BdrvRequestFlags flags)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    if (s->broken) {
        return -ENOMEDIUM;   /* QEMU detaches the driver: "No medium" */
    }
    if (flags & BDRV_REQ_WRITE_COMPRESSED) {
        return qcow2_co_pwritev_compressed(bs, offset, bytes, qiov);
    }
    co_mutex_lock(&s->lock);
    ret = qcow2_mark_dirty(bs);
    if (ret < 0) {
        co_mutex_unlock(&s->lock);
        return ret;
    }
    return write_locked(bs, offset, bytes, qiov, 0, flags, true);
}

typedef struct CompressJob {
    int type;
    void *dest;
    size_t dest_size;
    const void *src;
    size_t src_size;
    ssize_t ret;
} CompressJob;

static int compress_job(void *opaque)
{
    CompressJob *j = opaque;
    j->ret = qcow2_compress(j->type, j->dest, j->dest_size, j->src,
                            j->src_size);
    return 0;
}

/* One compressed cluster: compressed in the thread pool without the lock;
 * the lock is taken to allocate and, after the unlocked data write, to
 * update the L2 entry.  Called and returns without s->lock. */
static int coroutine_fn compressed_write_cluster(BlockDriverState *bs,
                                                 int64_t offset, int64_t len,
                                                 IOVector *qiov, size_t qoff)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t cs = s->cluster_size;
    g_autofree uint8_t *in = g_malloc0(cs);
    g_autofree uint8_t *out = g_malloc(cs);
    CompressJob job = {
        .type = s->compression_type, .dest = out, .dest_size = cs - 1,
        .src = in, .src_size = cs,
    };
    Qcow2InflightIO io;
    uint64_t *slice, old;
    int idx, ret;
    int64_t coff = 0;
    ssize_t csize;

    qiov_to_buf(qiov, qoff, in, len);
    thread_pool_submit_co(aio_get_thread_pool(qb_get_current_aio_context()),
                          compress_job, &job);
    csize = job.ret;
    if (csize == -ENOMEM || csize >= cs) {
        /* Incompressible: store it normally. */
        co_mutex_lock(&s->lock);
        ret = qcow2_mark_dirty(bs);
        if (ret < 0) {
            co_mutex_unlock(&s->lock);
            return ret;
        }
        return write_locked(bs, offset, len, qiov, qoff, 0, true);
    }
    if (csize < 0) {
        return -EIO;
    }

    co_mutex_lock(&s->lock);
    ret = qcow2_mark_dirty(bs);
    if (ret < 0) {
        goto out_unlock;
    }
    /* The entry changes: wait for every in-flight write to the cluster. */
    wait_guest_idle(bs, offset, offset + cs, false);
    /* The L2 table first, then the bytes: QEMU's order, so the image
     * (and the file's end) come out the same. */
    s->grow_ok = writes_in_flight(s);
    ret = qcow2_get_l2_slice(bs, offset, true, &slice, &idx);
    if (ret == 0) {
        qcow2_cache_put(s->l2_table_cache, (void **)&slice);
        coff = qcow2_alloc_bytes(bs, csize);
    }
    s->grow_ok = false;
    if (ret < 0) {
        goto out_unlock;
    }
    if (coff < 0) {
        ret = coff;
        goto out_unlock;
    }
    /* QEMU raises this when the entry is decided, before the data write. */
    BLKDBG_EVENT(bs->file, BLKDBG_EV_L2_UPDATE_COMPRESSED);
    qcow2_ol_index_refresh(bs);
    ret = qcow2_pre_write_overlap_check(bs, 0, coff, csize);
    if (ret < 0) {
        qcow2_free_clusters(bs, coff, csize, QCOW2_DISCARD_NEVER);
        goto out_unlock;
    }
    io = (Qcow2InflightIO) {
        .guest_start = offset, .guest_end = offset + cs,
        .host_start = coff, .host_end = coff + csize,
        .write = true, .alloc = true,
    };
    qcow2_inflight_add(s, &io);
    co_mutex_unlock(&s->lock);

    BLKDBG_EVENT(bs->file, BLKDBG_EV_WRITE_COMPRESSED);
    ret = bdrv_co_pwrite(bs->file, coff, csize, out, 0);
    if (ret >= 0) {
        qcow2_note_file_end(s, coff + csize);
    }

    co_mutex_lock(&s->lock);
    if (ret >= 0) {
        ret = qcow2_get_l2_slice(bs, offset, true, &slice, &idx);
    }
    if (ret < 0) {
        qcow2_inflight_del(s, &io);
        qcow2_free_clusters(bs, coff, csize, QCOW2_DISCARD_NEVER);
        goto out_unlock;
    }
    uint64_t nb_sectors = ((coff + csize - 1) >> 9) - (coff >> 9);
    old = qcow2_l2_entry(s, slice, idx);
    qcow2_set_l2_entry(s, slice, idx, QCOW_OFLAG_COMPRESSED |
                       (uint64_t)coff | (nb_sectors << s->csize_shift));
    if (s->extended_l2) {
        qcow2_set_l2_bitmap(s, slice, idx, 0);
    }
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, slice);
    qcow2_cache_put(s->l2_table_cache, (void **)&slice);
    qcow2_inflight_del(s, &io);
    if (qcow2_entry_holds(s, old)) {
        qcow2_free_any_cluster(bs, old, QCOW2_DISCARD_NEVER);
    }
    ret = 0;
out_unlock:
    co_mutex_unlock(&s->lock);
    return ret;
}

int coroutine_fn qcow2_co_pwritev_compressed(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes,
                                             IOVector *qiov)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t size = s->hi.h.size;
    size_t qoff = 0;
    int ret = 0;

    if (s->broken) {
        return -ENOMEDIUM;   /* QEMU detaches the driver: "No medium" */
    }
    if (qcow2_has_data_file(s)) {
        return -ENOTSUP;
    }
    if (qcow2_offset_into_cluster(s, offset) ||
        (qcow2_offset_into_cluster(s, bytes) && offset + bytes != size)) {
        return -EINVAL;
    }
    while (bytes > 0 && ret == 0) {
        int64_t cur = MIN(bytes, s->cluster_size);
        ret = compressed_write_cluster(bs, offset, cur, qiov, qoff);
        offset += cur;
        qoff += cur;
        bytes -= cur;
    }
    return ret;
}

/* Does the whole cluster at cl read as zeros right now?  Lock held. */
static bool cluster_reads_zero(BlockDriverState *bs, int64_t cl)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t cur = s->cluster_size, host;
    Qcow2SubclusterType t;

    if (cl + s->cluster_size > (int64_t)s->hi.h.size &&
        cl >= (int64_t)s->hi.h.size) {
        return false;
    }
    if (qcow2_get_host_offset(bs, cl, &cur, &host, &t) < 0 ||
        cur != (uint64_t)s->cluster_size) {
        return false;
    }
    if (t == QCOW2_SC_ZERO_PLAIN || t == QCOW2_SC_ZERO_ALLOC) {
        return true;
    }
    if (t == QCOW2_SC_UNALLOCATED_PLAIN || t == QCOW2_SC_UNALLOCATED_ALLOC) {
        if (!bs->backing) {
            return true;
        }
        int64_t blen = bdrv_getlength(bs->backing->bs);
        return blen >= 0 && cl >= blen;
    }
    return false;
}

/* Make the subclusters of [a, b) (aligned) of cluster cl read as zero. */
static int zero_in_cluster(BlockDriverState *bs, int64_t cl, int64_t a,
                           int64_t b, bool unmap)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t *slice;
    int idx, ret;

    /* v2 (no zero flag, only reached without a backing file): an
     * unallocated cluster reads as zero, so deallocate, as QEMU does; that
     * never needs a new L2 table. */
    bool v2 = s->hi.h.version < 3;

    ret = qcow2_get_l2_slice(bs, cl, !v2, &slice, &idx);
    if (ret < 0 || !slice) {
        return ret;
    }
    uint64_t entry = qcow2_l2_entry(s, slice, idx);
    uint64_t bitmap = qcow2_l2_bitmap(s, slice, idx);
    uint64_t host = entry & L2E_OFFSET_MASK;
    bool compressed = entry & QCOW_OFLAG_COMPRESSED;
    bool whole = a == 0 && b == s->cluster_size;
    bool has = qcow2_entry_has_host(s, entry);
    bool keep = has && (entry & QCOW_OFLAG_COPIED) && !(unmap && whole) &&
                !v2;
    uint64_t new_entry, new_bitmap = 0;

    if (!whole && (compressed || (has && !(entry & QCOW_OFLAG_COPIED)))) {
        /* Part of a shared or compressed cluster: copy-on-write zeros. */
        qcow2_cache_put(s->l2_table_cache, (void **)&slice);
        return write_locked(bs, cl + a, b - a, NULL, 0, 0, false);
    }
    if (v2) {
        new_entry = 0;
    } else if (!s->extended_l2) {
        new_entry = (keep ? host | QCOW_OFLAG_COPIED : 0) | QCOW_OFLAG_ZERO;
    } else {
        uint64_t m = sc_range_mask(s, a, b);
        new_entry = keep ? host | QCOW_OFLAG_COPIED : 0;
        new_bitmap = keep ? bitmap : (whole ? 0 : bitmap & ~0xffffffffULL);
        new_bitmap = (new_bitmap & ~m) | (m << 32);
    }
    qcow2_set_l2_entry(s, slice, idx, new_entry);
    if (s->extended_l2) {
        qcow2_set_l2_bitmap(s, slice, idx, new_bitmap);
    }
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, slice);
    qcow2_cache_put(s->l2_table_cache, (void **)&slice);
    if (!keep && qcow2_entry_holds(s, entry)) {
        qcow2_free_any_cluster(bs, entry, QCOW2_DISCARD_REQUEST);
    }
    return 0;
}

int coroutine_fn qcow2_co_pwrite_zeroes(BlockDriverState *bs,
                                               int64_t offset, int64_t bytes,
                                               BdrvRequestFlags flags)
{
    BDRVQcow2State *s = bs->opaque;
    bool unmap = flags & BDRV_REQ_MAY_UNMAP;
    int ret = 0;

    if (s->broken) {
        return -ENOMEDIUM;   /* QEMU detaches the driver: "No medium" */
    }
    if (s->hi.h.version < 3 && bs->backing) {
        /* Deallocating would expose the backing file. */
        return -ENOTSUP;
    }
    co_mutex_lock(&s->lock);
    ret = qcow2_mark_dirty(bs);
    while (ret == 0 && bytes > 0) {
        int64_t cl = qcow2_start_of_cluster(s, offset);
        int64_t a = offset - cl;
        int64_t b = MIN((int64_t)s->cluster_size, a + bytes);
        int64_t sa = QB_ALIGN_DOWN(a, s->subcluster_size);
        int64_t sb = QB_ALIGN_UP(b, s->subcluster_size);
        bool at_end = cl + b >= (int64_t)s->hi.h.size;

        /* The entry may change: no write to the cluster may be in flight. */
        wait_guest_idle(bs, cl, cl + s->cluster_size, false);
        if (a == sa && (b == sb || at_end)) {
            ret = zero_in_cluster(bs, cl, sa, sb, unmap);
        } else if (cluster_reads_zero(bs, cl)) {
            ret = zero_in_cluster(bs, cl, 0, s->cluster_size, unmap);
        } else if (flags & BDRV_REQ_NO_FALLBACK) {
            ret = -ENOTSUP;
        } else {
            ret = write_locked(bs, offset, b - a, NULL, 0, 0, false);
        }
        offset += b - a;
        bytes -= b - a;
    }
    co_mutex_unlock(&s->lock);
    return ret;
}

int coroutine_fn qcow2_co_pdiscard(BlockDriverState *bs,
                                          int64_t offset, int64_t bytes)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t end = offset + bytes;
    int ret = 0;

    if (s->broken) {
        return -ENOMEDIUM;   /* QEMU detaches the driver: "No medium" */
    }
    if (s->hi.h.version < 3 && bs->backing) {
        /* v2 cannot make the range read as zero, and exposing the backing
         * file's data would change guest content: do nothing (as QEMU). */
        return 0;
    }
    /* Only whole clusters (or the partial one at the end of the image). */
    offset = QB_ALIGN_UP(offset, s->cluster_size);
    if (end < (int64_t)s->hi.h.size) {
        end = QB_ALIGN_DOWN(end, s->cluster_size);
    } else {
        end = QB_ALIGN_UP(end, s->cluster_size);
    }
    co_mutex_lock(&s->lock);
    for (int64_t cl = offset; cl < end && ret == 0; cl += s->cluster_size) {
        /* v3 keeps discarded clusters reading as zero, as QEMU does. */
        bool zero = s->hi.h.version >= 3;
        uint64_t *slice;
        int idx;
        /* The entry changes: no write to the cluster may be in flight;
         * reads of its host cluster are waited for when it is freed. */
        wait_guest_idle(bs, cl, cl + s->cluster_size, false);
        ret = qcow2_get_l2_slice(bs, cl, zero, &slice, &idx);
        if (ret < 0 || !slice) {
            continue;
        }
        uint64_t entry = qcow2_l2_entry(s, slice, idx);
        uint64_t bitmap = qcow2_l2_bitmap(s, slice, idx);
        uint64_t new_entry = 0, new_bitmap = 0;
        if (zero) {
            if (s->extended_l2) {
                new_bitmap = 0xffffffffULL << 32;
            } else {
                new_entry = QCOW_OFLAG_ZERO;
            }
        }
        if (new_entry != entry || new_bitmap != bitmap) {
            ret = qcow2_mark_dirty(bs);
            qcow2_set_l2_entry(s, slice, idx, new_entry);
            if (s->extended_l2) {
                qcow2_set_l2_bitmap(s, slice, idx, new_bitmap);
            }
            qcow2_cache_entry_mark_dirty(s->l2_table_cache, slice);
        }
        qcow2_cache_put(s->l2_table_cache, (void **)&slice);
        if (qcow2_entry_holds(s, entry)) {
            qcow2_free_any_cluster(bs, entry, QCOW2_DISCARD_REQUEST);
        }
    }
    co_mutex_unlock(&s->lock);
    return ret;
}

int coroutine_fn qcow2_co_flush_to_os(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    if (s->broken) {
        return 0;
    }
    co_mutex_lock(&s->lock);
    ret = qcow2_cache_write(bs, s->l2_table_cache);
    if (ret == 0) {
        ret = qcow2_cache_write(bs, s->refcount_block_cache);
    }
    co_mutex_unlock(&s->lock);
    return ret;
}

int coroutine_fn qcow2_co_block_status(BlockDriverState *bs,
                                              bool want_zero, int64_t offset,
                                              int64_t bytes, int64_t *pnum,
                                              int64_t *map,
                                              BlockDriverState **file)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t cur = bytes, host;
    Qcow2SubclusterType type;
    int ret, status = 0;

    if (s->broken) {
        return -ENOMEDIUM;   /* QEMU detaches the driver: "No medium" */
    }
    co_mutex_lock(&s->lock);
    ret = qcow2_get_host_offset(bs, offset, &cur, &host, &type);
    co_mutex_unlock(&s->lock);
    if (ret < 0) {
        return ret;
    }
    *pnum = cur;
    if (type == QCOW2_SC_NORMAL || type == QCOW2_SC_ZERO_ALLOC ||
        type == QCOW2_SC_UNALLOCATED_ALLOC) {
        *map = host;
        *file = s->data_file->bs;
        status |= BDRV_BLOCK_OFFSET_VALID;
    }
    if (type == QCOW2_SC_ZERO_PLAIN || type == QCOW2_SC_ZERO_ALLOC) {
        status |= BDRV_BLOCK_ZERO;
    } else if (type != QCOW2_SC_UNALLOCATED_PLAIN &&
               type != QCOW2_SC_UNALLOCATED_ALLOC) {
        status |= BDRV_BLOCK_DATA;
    }
    if (type == QCOW2_SC_COMPRESSED) {
        status |= BDRV_BLOCK_COMPRESSED;
    }
    return status;
}

/* ------------------------------------------------------------------ */
/* Resize                                                              */

static int write_header_size(BlockDriverState *bs, uint64_t size)
{
    uint64_t be = GUINT64_TO_BE(size);
    int ret = bdrv_pwrite_sync(bs->file, 24, 8, &be, 0);
    return ret < 0 ? ret : 0;
}

/* Preallocate metadata (and data clusters) for [from, to).  Lock held. */
static int preallocate_metadata(BlockDriverState *bs, int64_t from, int64_t to)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t cl = qcow2_start_of_cluster(s, from);

    /* Like QEMU: per L2 slice, one contiguous run for the unallocated
     * entries (so refcount blocks land after the run, as in its images). */
    while (cl < to) {
        uint64_t *slice;
        int idx, ret, n = 0;
        ret = qcow2_get_l2_slice(bs, cl, true, &slice, &idx);
        if (ret < 0) {
            return ret;
        }
        while (idx + n < s->l2_slice_size &&
               cl + ((int64_t)n << s->cluster_bits) < to &&
               !qcow2_entry_holds(s, qcow2_l2_entry(s, slice, idx + n))) {
            n++;
        }
        if (n == 0) {
            qcow2_cache_put(s->l2_table_cache, (void **)&slice);
            cl += s->cluster_size;
            continue;
        }
        int64_t h = qcow2_has_data_file(s) ? cl :
                    qcow2_alloc_own_clusters(bs, (int64_t)n << s->cluster_bits);
        if (h < 0) {
            qcow2_cache_put(s->l2_table_cache, (void **)&slice);
            return h;
        }
        for (int i = 0; i < n; i++) {
            qcow2_set_l2_entry(s, slice, idx + i,
                               (h + ((int64_t)i << s->cluster_bits)) |
                               QCOW_OFLAG_COPIED);
            /* Extended L2: the subcluster bitmap stays as it was (clear),
             * as QEMU 7.2 leaves it: reserved clusters still read as zero
             * or from the backing file (H31, byte-identical creation). */
        }
        qcow2_cache_entry_mark_dirty(s->l2_table_cache, slice);
        qcow2_cache_put(s->l2_table_cache, (void **)&slice);
        cl += (int64_t)n << s->cluster_bits;
    }
    return 0;
}

int coroutine_fn qcow2_co_truncate(BlockDriverState *bs, int64_t offset,
                                          bool exact, PreallocMode prealloc,
                                          BdrvRequestFlags flags, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t old = s->hi.h.size;
    const char *what = "Failed to resize the image";
    int ret = 0;

    if (prealloc != PREALLOC_MODE_OFF && prealloc != PREALLOC_MODE_METADATA &&
        prealloc != PREALLOC_MODE_FALLOC && prealloc != PREALLOC_MODE_FULL) {
        static const char *const names[] = { "off", "metadata", "falloc",
                                             "full" };
        error_setg(errp, "Unsupported preallocation mode '%s'",
                   prealloc < PREALLOC_MODE__MAX ? names[prealloc] : "?");
        return -ENOTSUP;
    }
    if (offset & 511) {
        error_setg(errp, "The new size must be a multiple of 512");
        return -EINVAL;
    }
    /* v3 records each snapshot's disk size, so the snapshots keep theirs
     * (QEMU 7.2 resizes such images both ways); v2 doesn't. */
    if (s->nb_snapshots && s->hi.h.version < 3) {
        error_setg(errp, "Can't resize a v2 image which has snapshots");
        return -ENOTSUP;
    }
    if (qcow2_truncate_bitmaps_check(bs, errp) < 0) {   /* bitmap.c */
        return -ENOTSUP;
    }
    if (offset < old && prealloc != PREALLOC_MODE_OFF) {
        error_setg(errp, "Preallocation can't be used for shrinking an image");
        return -EINVAL;
    }
    if (s->broken) {
        error_setg(errp, "Image is corrupt");
        return -EIO;
    }
    co_mutex_lock(&s->lock);
    /* Resizing remaps and frees clusters and tables wholesale: let every
     * data transfer finish first (none can start while we hold the lock). */
    qcow2_quiesce_data_io(bs);
    /* Sizes below (tail trimming, preallocation layout) go by the file
     * length: no grown-ahead tail may count. */
    qcow2_trim_file_ahead(bs);
    if (offset < old) {
        /* Drop every cluster past the new end, then the L2 tables. */
        int64_t start = QB_ALIGN_UP(offset, s->cluster_size);
        for (int64_t cl = start; cl < old && ret == 0; cl += s->cluster_size) {
            uint64_t l1i = (uint64_t)cl >> (s->l2_bits + s->cluster_bits);
            uint64_t l1e = l1i < s->l1_size ? s->l1_table[l1i] : 0;
            uint64_t *slice;
            int idx;
            /* An L2 table shared with a snapshot is copied before its
             * entries are cleared (as QEMU's discard does); the copy is
             * freed with the L1 entries below.  The entries' clusters
             * lose the active state's reference only. */
            ret = qcow2_get_l2_slice(bs, cl, (l1e & L1E_OFFSET_MASK) &&
                                     !(l1e & QCOW_OFLAG_COPIED),
                                     &slice, &idx);
            if (ret < 0 || !slice) {
                continue;
            }
            uint64_t entry = qcow2_l2_entry(s, slice, idx);
            if (entry || qcow2_l2_bitmap(s, slice, idx)) {
                qcow2_set_l2_entry(s, slice, idx, 0);
                if (s->extended_l2) {
                    qcow2_set_l2_bitmap(s, slice, idx, 0);
                }
                qcow2_cache_entry_mark_dirty(s->l2_table_cache, slice);
            }
            qcow2_cache_put(s->l2_table_cache, (void **)&slice);
            if (qcow2_entry_holds(s, entry)) {
                qcow2_free_any_cluster(bs, entry, QCOW2_DISCARD_ALWAYS);
            }
        }
        uint64_t keep = qcow2_l1_size_for(s->cluster_bits, s->extended_l2,
                                          offset);
        for (uint64_t i = keep; i < s->l1_size && ret == 0; i++) {
            uint64_t l2 = s->l1_table[i] & L1E_OFFSET_MASK;
            if (!l2) {
                continue;
            }
            ret = qcow2_cache_write(bs, s->l2_table_cache);
            for (int k = 0; ret == 0 && k < s->l2_size / s->l2_slice_size;
                 k++) {
                qcow2_cache_discard(s->l2_table_cache, l2 + (uint64_t)k *
                                    s->l2_slice_size * s->l2_entry_bytes);
            }
            qcow2_ol_index_invalidate(s);
            s->l1_table[i] = 0;
            if (ret == 0) {
                ret = qcow2_write_l1_entry(bs, i);
            }
            if (ret == 0) {
                qcow2_free_clusters(bs, l2, s->cluster_size,
                                    QCOW2_DISCARD_ALWAYS);
            }
        }
    } else if (offset > old) {
        uint64_t need = qcow2_l1_size_for(s->cluster_bits, s->extended_l2,
                                          offset);
        ret = qcow2_grow_l1_table(bs, need, true);
        if (ret < 0) {
            /* QEMU's message for this step (the caller prefixes nothing). */
            what = "Failed to grow the L1 table";
        }
        if (ret == 0 && prealloc == PREALLOC_MODE_METADATA) {
            ret = preallocate_metadata(bs, old, offset);
        }
        if (ret == 0 && (prealloc == PREALLOC_MODE_FALLOC ||
                         prealloc == PREALLOC_MODE_FULL)) {
            /* QEMU's layout for falloc/full (create.c, H31); with a data
             * file: metadata here, the data file takes the mode. */
            Error *local_err = NULL;
            if (qcow2_has_data_file(s)) {
                ret = preallocate_metadata(bs, old, offset);
                if (ret == 0) {
                    ret = bdrv_co_truncate(s->data_file, offset, false,
                                           prealloc, 0, NULL);
                }
            } else {
                ret = qcow2_preallocate_alloc(bs, old, offset, prealloc,
                                              &local_err);
            }
            error_free(local_err);
        }
        if (ret == 0 && prealloc == PREALLOC_MODE_METADATA &&
            !qcow2_has_data_file(s)) {
            /* The file covers the preallocated clusters (reads as zero). */
            int64_t flen = bdrv_getlength(bs->file->bs);
            int64_t end = (int64_t)s->free_cluster_index << s->cluster_bits;
            if (flen >= 0 && end > flen) {
                ret = bdrv_co_truncate(bs->file, end, false,
                                       PREALLOC_MODE_OFF, 0, NULL);
            }
        }
    }
    if (ret == 0) {
        ret = qcow2_flush_caches(bs);
    }
    if (ret == 0) {
        ret = write_header_size(bs, offset);
    }
    if (ret == 0 && offset < old) {
        /* Give back the file's tail past the last used cluster. */
        int64_t flen = bdrv_getlength(bs->file->bs);
        int64_t last = flen > 0 ? qcow2_size_to_clusters(s, flen) - 1 : -1;
        uint64_t rc = 0;
        while (last >= 0 && qcow2_get_refcount(bs, last, &rc) == 0 &&
               rc == 0) {
            last--;
        }
        if (flen > 0 && (last + 1) * s->cluster_size < flen) {
            if (bdrv_co_truncate(bs->file, (last + 1) * s->cluster_size,
                                 false, PREALLOC_MODE_OFF, 0, NULL) < 0) {
                warn_report("Failed to truncate the tail of the image");
            } else {
                /* What was written past the new end is gone: the file
                 * length to restore at close starts from here. */
                s->alloc_end = MIN(s->alloc_end,
                                   (uint64_t)(last + 1) * s->cluster_size);
            }
        }
    }
    if (ret == 0) {
        s->hi.h.size = offset;
        s->l1_vm_state_index = qcow2_l1_size_for(s->cluster_bits,
                                                 s->extended_l2, offset);
        bs->total_sectors = offset / BDRV_SECTOR_SIZE;
    }
    co_mutex_unlock(&s->lock);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "%s", what);
    }
    return ret;
}

int64_t qcow2_getlength(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    return s->hi.h.size;
}

int64_t qcow2_get_allocated_file_size(BlockDriverState *bs)
{
    /* As QEMU 7.2: the metadata file only, not an external data file. */
    return bdrv_get_allocated_file_size(bs->file->bs);
}
