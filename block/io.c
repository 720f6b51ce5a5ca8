/*
 * The request path: every read, write, write-zeroes, discard, flush,
 * truncate and block-status request that any parent (a BlockBackend, a
 * format driver reading its file, a job) sends to a node passes through
 * here before the node's driver sees it.  This file is the gatekeeper:
 * it checks the range, the permission of the edge the request arrives on
 * and the node's read-only/inactive state; widens unaligned requests to
 * bs->bl.request_alignment with read-modify-write; splits at max_transfer;
 * serialises overlapping RMW requests through tracked requests; emulates
 * FUA and write-zeroes when the driver lacks them; keeps in-flight counts
 * for drain; and marks dirty bitmaps for every change that reaches a node.
 *
 * Invariants (docs/design/io-path.md has the full list):
 *  1. A driver callback only ever sees offset/bytes that are multiples of
 *     bs->bl.request_alignment, at most bl.max_transfer bytes (when set),
 *     and inside [0, BDRV_MAX_LENGTH).
 *  2. While a request is between tracked_request_begin and _end it is in
 *     bs->tracked_requests and counted in bs->in_flight.
 *  3. A serialising request never runs concurrently with an overlapping
 *     (in its aligned overlap range) write-type request on the same node.
 *  4. bs->write_gen is bumped after every successful change; flush_to_disk
 *     is skipped when flushed_gen already equals it.
 *  All of this runs in the node's AioContext thread; the lists are only
 *  touched between yields, so no lock is needed for them.
 */
#include "block/block-int.h"
#include "block/dirty-bitmap.h"

/* The one place where every change that reaches a node marks its dirty
 * bitmaps (before the request completes).  The list check keeps the call
 * off the hot path for nodes without bitmaps. */
static inline void bdrv_mark_dirty(BlockDriverState *bs, int64_t offset,
                                   int64_t bytes)
{
    if (bs->dirty_bitmaps) {
        bdrv_set_dirty(bs, offset, bytes);
    }
}

/* Fallback write-zeroes buffer bound, so a huge zero request never
 * allocates a huge buffer. */
#define ZERO_FALLBACK_CHUNK (1 * MiB)

const char *const bdrv_debug_event_names[BLKDBG_EV__MAX] = {
    "l1_update", "l1_grow_alloc_table", "l1_grow_write_table",
    "l1_grow_activate_table", "l2_load", "l2_update", "l2_update_compressed",
    "l2_alloc_cow_read", "l2_alloc_write", "read_aio", "read_backing_aio",
    "read_compressed", "write_aio", "write_compressed", "vmstate_load",
    "vmstate_save", "cow_read", "cow_write", "reftable_load",
    "reftable_grow", "reftable_update", "refblock_load", "refblock_update",
    "refblock_update_part", "refblock_alloc", "refblock_alloc_hookup",
    "refblock_alloc_write", "refblock_alloc_write_blocks",
    "refblock_alloc_write_table", "refblock_alloc_switch_table",
    "cluster_alloc", "cluster_alloc_bytes", "cluster_free", "flush_to_os",
    "flush_to_disk", "pwritev_rmw_head", "pwritev_rmw_after_head",
    "pwritev_rmw_tail", "pwritev_rmw_after_tail", "pwritev", "pwritev_zero",
    "pwritev_done", "empty_image_prepare", "l1_shrink_write_table",
    "l1_shrink_free_l2_clusters", "cor_write", "cluster_alloc_space", "none",
};

/* ---------------------------------------------------------------------- */
/* Small helpers                                                           */

static AioContext *node_ctx(BlockDriverState *bs)
{
    return bs->aio_context ? bs->aio_context : qb_get_aio_context();
}

/*
 * Length of bs for range decisions on the hot path: the cached
 * total_sectors (what bdrv_getlength reports too), refreshed from the
 * driver only when a request reaches past it, so ordinary requests cost no
 * extra system call.
 */
static int64_t length_for(BlockDriverState *bs, int64_t end)
{
    int64_t cached = bs->total_sectors * (int64_t)BDRV_SECTOR_SIZE;

    if (bs->total_sectors > 0 && end <= cached) {
        return cached;
    }
    return bdrv_getlength(bs);
}

static uint32_t req_align(BlockDriverState *bs)
{
    return bs->bl.request_alignment ? bs->bl.request_alignment : 1;
}

static size_t mem_align(BlockDriverState *bs)
{
    size_t a = MAX(bs->bl.opt_mem_alignment, bs->bl.min_mem_alignment);
    return MAX(a, (size_t)QB_MEM_ALIGN);
}

/* Largest chunk a driver accepts in one call, aligned to the node. */
static int64_t max_chunk(BlockDriverState *bs)
{
    int64_t m = bs->bl.max_transfer > 0 ? bs->bl.max_transfer
                                         : BDRV_REQUEST_MAX_BYTES;
    m = MIN(m, BDRV_REQUEST_MAX_BYTES);
    m = QB_ALIGN_DOWN(m, req_align(bs));
    return m > 0 ? m : req_align(bs);
}

static uint64_t write_flags_supported(BlockDriverState *bs)
{
    return bs->supported_write_flags | bs->drv->supported_write_flags;
}

static uint64_t zero_flags_supported(BlockDriverState *bs)
{
    return bs->supported_zero_flags | bs->drv->supported_zero_flags;
}

/* Range check shared by every request type: -EIO as QEMU. */
static int check_range(int64_t offset, int64_t bytes)
{
    if (offset < 0 || bytes < 0 || bytes > BDRV_REQUEST_MAX_BYTES) {
        return -EIO;
    }
    if (offset > BDRV_MAX_LENGTH - bytes) {
        return -EIO;
    }
    return 0;
}

/* Checks for requests that change data (write, zero, discard). */
static int check_write_allowed(BdrvChild *child, BdrvRequestFlags flags)
{
    BlockDriverState *bs = child->bs;

    if (bs->open_flags & BDRV_O_INACTIVE) {
        return -EPERM;
    }
    if (bs->read_only) {
        return -EACCES;
    }
    /* A node with a readonly (persistent, not writable) bitmap must not
     * change under it: QEMU fails writes and discards with EPERM. */
    if (bs->dirty_bitmaps && bdrv_has_readonly_bitmaps(bs)) {
        return -EPERM;
    }
    if (flags & BDRV_REQ_WRITE_UNCHANGED) {
        if (!(child->perm & (BLK_PERM_WRITE | BLK_PERM_WRITE_UNCHANGED))) {
            return -EPERM;
        }
    } else if (!(child->perm & BLK_PERM_WRITE)) {
        return -EPERM;
    }
    return 0;
}

static int check_child(BdrvChild *child)
{
    if (!child || !child->bs || !child->bs->drv) {
        return -ENOMEDIUM;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* In-flight accounting and tracked requests                              */

void bdrv_inc_in_flight(BlockDriverState *bs)
{
    bs->in_flight++;
}

void bdrv_dec_in_flight(BlockDriverState *bs)
{
    assert(bs->in_flight > 0);
    bs->in_flight--;
    if (bs->in_flight == 0 && bs->quiesce_counter > 0) {
        /* A drain may be polling for this: wake its aio_poll. */
        aio_notify(node_ctx(bs));
    }
}

static void tracked_request_begin(BdrvTrackedRequest *req,
                                  BlockDriverState *bs, int64_t offset,
                                  int64_t bytes, int type)
{
    *req = (BdrvTrackedRequest) {
        .bs = bs,
        .offset = offset,
        .bytes = bytes,
        .type = type,
        .overlap_offset = offset,
        .overlap_bytes = bytes,
        .co = in_coroutine() ? coroutine_self() : NULL,
    };
    co_queue_init(&req->wait_queue);
    /* Linked through the request's own node: no allocation per request.
     * Readers see an ordinary GList of BdrvTrackedRequest*. */
    req->link.data = req;
    req->link.prev = NULL;
    req->link.next = bs->tracked_requests;
    if (bs->tracked_requests) {
        bs->tracked_requests->prev = &req->link;
    }
    bs->tracked_requests = &req->link;
}

static void tracked_request_end(BdrvTrackedRequest *req)
{
    BlockDriverState *bs = req->bs;

    if (req->serialising) {
        bs->serialising_in_flight--;
    }
    bs->tracked_requests = g_list_remove_link(bs->tracked_requests,
                                              &req->link);
    co_queue_restart_all(&req->wait_queue);
}

/* Widen req's overlap range to whole align-sized blocks and make every
 * overlapping write-type request wait for it (and it for them). */
static void tracked_request_set_serialising(BdrvTrackedRequest *req,
                                            uint64_t align)
{
    int64_t start = QB_ALIGN_DOWN(req->offset, (int64_t)align);
    int64_t end = QB_ALIGN_UP(req->offset + req->bytes, (int64_t)align);

    if (!req->serialising) {
        req->serialising = true;
        req->bs->serialising_in_flight++;
    }
    start = MIN(start, req->overlap_offset);
    end = MAX(end, req->overlap_offset + req->overlap_bytes);
    req->overlap_offset = start;
    req->overlap_bytes = end - start;
}

static bool tracked_overlap(BdrvTrackedRequest *a, BdrvTrackedRequest *b)
{
    return a->overlap_offset < b->overlap_offset + b->overlap_bytes &&
           b->overlap_offset < a->overlap_offset + a->overlap_bytes;
}

/* True if other is (transitively) waiting for req: then waiting for other
 * would deadlock, and other will run after req anyway. */
static bool waits_for(BdrvTrackedRequest *other, BdrvTrackedRequest *req)
{
    int depth = 0;
    for (BdrvTrackedRequest *w = other->waiting_for; w && depth < 1024;
         w = w->waiting_for, depth++) {
        if (w == req) {
            return true;
        }
    }
    return false;
}

/* Wait until no overlapping request that must be ordered with req is in
 * flight.  Only write-type requests call this. */
static void coroutine_fn wait_serialising_requests(BdrvTrackedRequest *req)
{
    BlockDriverState *bs = req->bs;
    bool retry;

    if (!bs->serialising_in_flight || !in_coroutine()) {
        return;
    }
    do {
        retry = false;
        for (GList *l = bs->tracked_requests; l; l = l->next) {
            BdrvTrackedRequest *other = l->data;
            if (other == req || (!req->serialising && !other->serialising)) {
                continue;
            }
            if (other->type == BDRV_TRACKED_READ && !other->serialising) {
                continue;
            }
            if (!tracked_overlap(req, other) || waits_for(other, req)) {
                continue;
            }
            req->waiting_for = other;
            co_queue_wait(&other->wait_queue, NULL);
            req->waiting_for = NULL;
            retry = true;
            break;
        }
    } while (retry);
}

/* ---------------------------------------------------------------------- */
/* Driver calls (arguments already checked and aligned)                    */

static int coroutine_fn driver_preadv(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, IOVector *qiov,
                                      BdrvRequestFlags flags)
{
    if (!bs->drv) {
        return -ENOMEDIUM;
    }
    if (!bs->drv->bdrv_co_preadv) {
        return -ENOTSUP;
    }
    return bs->drv->bdrv_co_preadv(bs, offset, bytes, qiov, 0);
}

static int coroutine_fn driver_pwritev(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, IOVector *qiov,
                                       BdrvRequestFlags flags)
{
    uint64_t supported;
    bool emulate_fua;
    int ret;

    if (!bs->drv) {
        return -ENOMEDIUM;
    }
    if (flags & BDRV_REQ_WRITE_COMPRESSED) {
        if (!bs->drv->bdrv_co_pwritev_compressed) {
            return -ENOTSUP;
        }
        return bs->drv->bdrv_co_pwritev_compressed(bs, offset, bytes, qiov);
    }
    if (!bs->drv->bdrv_co_pwritev) {
        return -ENOTSUP;
    }
    supported = write_flags_supported(bs);
    emulate_fua = (flags & BDRV_REQ_FUA) && !(supported & BDRV_REQ_FUA);
    ret = bs->drv->bdrv_co_pwritev(bs, offset, bytes, qiov,
                                   flags & supported & BDRV_REQ_MASK);
    if (ret == 0 && emulate_fua) {
        ret = bdrv_co_flush(bs);
    }
    return ret;
}

/*
 * Read an aligned range, split at max_transfer.  The part beyond the
 * node's end reads as zeroes (a COW layer reading a shorter backing file
 * relies on this).
 */
static int coroutine_fn aligned_preadv(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, IOVector *qiov,
                                       size_t qiov_offset,
                                       BdrvRequestFlags flags)
{
    int64_t total = length_for(bs, offset + bytes);
    int64_t readable, chunk = max_chunk(bs), done = 0;
    int ret = 0;

    if (total < 0) {
        return total;
    }
    readable = QB_ALIGN_UP(MAX(0, total - offset), (int64_t)req_align(bs));
    readable = MIN(readable, bytes);

    while (done < readable) {
        int64_t num = MIN(readable - done, chunk);
        IOVector slice;
        if (qiov_offset + done == 0 && (size_t)num == qiov->size) {
            /* The common case: the whole vector in one go, no copy of the
             * iovec array (saves an allocation per request and layer). */
            ret = driver_preadv(bs, offset, num, qiov, flags);
        } else {
            qiov_init_slice(&slice, qiov, qiov_offset + done, num);
            ret = driver_preadv(bs, offset + done, num, &slice, flags);
            qiov_destroy(&slice);
        }
        if (ret < 0) {
            return ret;
        }
        done += num;
    }
    if (done < bytes) {
        qiov_memset(qiov, qiov_offset + done, 0, bytes - done);
    }
    return 0;
}

/* Bookkeeping after a successful change of [offset, offset+bytes). */
static void write_req_finish(BlockDriverState *bs, int64_t offset,
                             int64_t bytes, bool grows)
{
    int64_t end = offset + bytes;

    bs->write_gen++;
    bdrv_mark_dirty(bs, offset, bytes);
    if (grows && end > bs->total_sectors * (int64_t)BDRV_SECTOR_SIZE) {
        /* Writes past EOF grow protocol nodes (qcow2 allocating clusters). */
        bs->total_sectors = QB_DIV_ROUND_UP(end, (int64_t)BDRV_SECTOR_SIZE);
    }
}

/*
 * Write-zeroes on an aligned range: the driver's callback on the part
 * aligned to pwrite_zeroes_alignment, else (or on -ENOTSUP) zero buffers
 * written in bounded chunks unless NO_FALLBACK.
 */
static int coroutine_fn do_pwrite_zeroes(BlockDriverState *bs, int64_t offset,
                                         int64_t bytes, BdrvRequestFlags flags)
{
    BlockDriver *drv = bs->drv;
    int64_t zalign = MAX((int64_t)bs->bl.pwrite_zeroes_alignment,
                         (int64_t)req_align(bs));
    int64_t max_zero = bs->bl.max_pwrite_zeroes > 0
                       ? bs->bl.max_pwrite_zeroes : BDRV_REQUEST_MAX_BYTES;
    uint64_t zsupported = zero_flags_supported(bs);
    void *buf = NULL;
    size_t buf_len = 0;
    bool need_flush = false;
    int ret = 0;

    if ((flags & BDRV_REQ_NO_FALLBACK) &&
        !(zsupported & BDRV_REQ_NO_FALLBACK)) {
        return -ENOTSUP;
    }
    max_zero = MAX(QB_ALIGN_DOWN(MIN(max_zero, BDRV_REQUEST_MAX_BYTES),
                                 zalign), zalign);

    while (bytes > 0 && ret == 0) {
        int64_t num = bytes;
        int64_t head = offset % zalign;
        bool aligned_piece;

        if (head) {
            num = MIN(bytes, zalign - head);
        } else if (num > zalign && (offset + num) % zalign) {
            num -= (offset + num) % zalign;
        }
        num = MIN(num, max_zero);
        aligned_piece = !(offset % zalign) && !(num % zalign);

        ret = -ENOTSUP;
        if (drv->bdrv_co_pwrite_zeroes && aligned_piece) {
            BdrvRequestFlags zf = flags & zsupported &
                (BDRV_REQ_MAY_UNMAP | BDRV_REQ_NO_FALLBACK | BDRV_REQ_FUA);
            ret = drv->bdrv_co_pwrite_zeroes(bs, offset, num, zf);
            if (ret == 0 && (flags & BDRV_REQ_FUA) &&
                !(zsupported & BDRV_REQ_FUA)) {
                need_flush = true;
            }
        }
        if (ret == -ENOTSUP && !(flags & BDRV_REQ_NO_FALLBACK)) {
            int64_t chunk = MIN(max_chunk(bs), ZERO_FALLBACK_CHUNK);
            int64_t done = 0;
            chunk = MAX(QB_ALIGN_DOWN(chunk, (int64_t)req_align(bs)),
                        (int64_t)req_align(bs));
            if (!buf) {
                buf_len = MIN(num, chunk);
                buf = qb_memalign(mem_align(bs), buf_len);
                memset(buf, 0, buf_len);
            }
            ret = 0;
            while (done < num && ret == 0) {
                int64_t n = MIN(num - done, (int64_t)buf_len);
                IOVector q;
                qiov_init_buf(&q, buf, n);
                ret = driver_pwritev(bs, offset + done, n, &q,
                                     flags & BDRV_REQ_FUA);
                done += n;
            }
        }
        if (ret == 0) {
            offset += num;
            bytes -= num;
        }
    }
    if (buf) {
        qb_vfree(buf);
    }
    if (ret == 0 && need_flush) {
        ret = bdrv_co_flush(bs);
    }
    return ret;
}

/* Write an aligned range: detect-zeroes, zero writes, max_transfer splits,
 * then the bookkeeping. */
static int coroutine_fn aligned_pwritev(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes, IOVector *qiov,
                                        BdrvRequestFlags flags)
{
    int ret = 0;

    if (!(flags & (BDRV_REQ_ZERO_WRITE | BDRV_REQ_WRITE_COMPRESSED)) &&
        bs->detect_zeroes != BLOCKDEV_DETECT_ZEROES_OPTIONS_OFF && qiov &&
        qiov_is_zero(qiov, 0, bytes)) {
        flags |= BDRV_REQ_ZERO_WRITE;
        if (bs->detect_zeroes == BLOCKDEV_DETECT_ZEROES_OPTIONS_UNMAP &&
            (bs->open_flags & BDRV_O_UNMAP)) {
            flags |= BDRV_REQ_MAY_UNMAP;
        }
    }

    /* Debug events are raised on bs itself, as QEMU does, so a blkdebug
     * node sees its own writes (pwritev*, pwritev_rmw_*). */
    if (flags & BDRV_REQ_ZERO_WRITE) {
        bdrv_debug_event(bs, BLKDBG_EV_PWRITEV_ZERO);
        ret = do_pwrite_zeroes(bs, offset, bytes, flags);
    } else if (flags & BDRV_REQ_WRITE_COMPRESSED) {
        ret = driver_pwritev(bs, offset, bytes, qiov, flags);
    } else {
        int64_t chunk = max_chunk(bs), done = 0;
        bdrv_debug_event(bs, BLKDBG_EV_PWRITEV);
        while (done < bytes && ret == 0) {
            int64_t num = MIN(bytes - done, chunk);
            IOVector slice;
            if (done == 0 && (size_t)num == qiov->size) {
                ret = driver_pwritev(bs, offset, num, qiov, flags);
            } else {
                qiov_init_slice(&slice, qiov, done, num);
                ret = driver_pwritev(bs, offset + done, num, &slice, flags);
                qiov_destroy(&slice);
            }
            done += num;
        }
    }
    bdrv_debug_event(bs, BLKDBG_EV_PWRITEV_DONE);
    if (ret == 0) {
        write_req_finish(bs, offset, bytes, true);
    } else {
        /* A failed write may have changed part of the range, so the next
         * flush must reach the disk: QEMU bumps write_gen either way (a
         * qcow2 image closed after a failed metadata write reports its
         * cache flush failing under a still-active blkdebug rule). */
        bs->write_gen++;
    }
    return ret;
}

/*
 * Unaligned write or write-zeroes: read the partial head/tail blocks,
 * merge, and write whole blocks.  req is serialising over the widened
 * range for the whole read-modify-write.
 */
static int coroutine_fn rmw_pwritev(BdrvTrackedRequest *req,
                                    int64_t offset, int64_t bytes,
                                    IOVector *qiov, BdrvRequestFlags flags)
{
    BlockDriverState *bs = req->bs;
    int64_t align = req_align(bs);
    int64_t start = QB_ALIGN_DOWN(offset, align);
    int64_t end = QB_ALIGN_UP(offset + bytes, align);
    int64_t head = offset - start, tail = end - (offset + bytes);
    uint8_t *head_buf = NULL, *tail_buf = NULL;
    IOVector q;
    int ret = 0;

    tracked_request_set_serialising(req, align);
    wait_serialising_requests(req);

    if (head) {
        head_buf = qb_memalign(mem_align(bs), align);
        qiov_init_buf(&q, head_buf, align);
        bdrv_debug_event(bs, BLKDBG_EV_PWRITEV_RMW_HEAD);
        ret = aligned_preadv(bs, start, align, &q, 0, 0);
        bdrv_debug_event(bs, BLKDBG_EV_PWRITEV_RMW_AFTER_HEAD);
        if (ret < 0) {
            goto out;
        }
    }
    if (tail) {
        if (head_buf && end - align == start) {
            tail_buf = head_buf;   /* one block holds both ends */
        } else {
            tail_buf = qb_memalign(mem_align(bs), align);
            qiov_init_buf(&q, tail_buf, align);
            bdrv_debug_event(bs, BLKDBG_EV_PWRITEV_RMW_TAIL);
            ret = aligned_preadv(bs, end - align, align, &q, 0, 0);
            bdrv_debug_event(bs, BLKDBG_EV_PWRITEV_RMW_AFTER_TAIL);
            if (ret < 0) {
                goto out;
            }
        }
    }

    if (!(flags & BDRV_REQ_ZERO_WRITE)) {
        IOVector padded;
        qiov_init(&padded, qiov->niov + 2);
        if (head) {
            qiov_add(&padded, head_buf, head);
        }
        qiov_concat(&padded, qiov, 0, bytes);
        if (tail) {
            qiov_add(&padded, tail_buf + align - tail, tail);
        }
        ret = aligned_pwritev(bs, start, end - start, &padded, flags);
        qiov_destroy(&padded);
        goto out;
    }

    /* Zeroes: partial blocks become data writes, the rest stays zeroes. */
    flags &= ~BDRV_REQ_ZERO_WRITE;
    if (head_buf && (end - start == align)) {
        memset(head_buf + head, 0, bytes);
        qiov_init_buf(&q, head_buf, align);
        ret = aligned_pwritev(bs, start, align, &q, flags & BDRV_REQ_FUA);
        goto out;
    }
    if (tail_buf && !head_buf && end - start == align) {
        memset(tail_buf, 0, align - tail);
        qiov_init_buf(&q, tail_buf, align);
        ret = aligned_pwritev(bs, start, align, &q, flags & BDRV_REQ_FUA);
        goto out;
    }
    if (head) {
        memset(head_buf + head, 0, align - head);
        qiov_init_buf(&q, head_buf, align);
        ret = aligned_pwritev(bs, start, align, &q, flags & BDRV_REQ_FUA);
        if (ret < 0) {
            goto out;
        }
        start += align;
    }
    if (tail) {
        memset(tail_buf, 0, align - tail);
        qiov_init_buf(&q, tail_buf, align);
        ret = aligned_pwritev(bs, end - align, align, &q, flags & BDRV_REQ_FUA);
        if (ret < 0) {
            goto out;
        }
        end -= align;
    }
    if (end > start) {
        ret = aligned_pwritev(bs, start, end - start, NULL,
                              flags | BDRV_REQ_ZERO_WRITE);
    }
out:
    if (tail_buf && tail_buf != head_buf) {
        qb_vfree(tail_buf);
    }
    if (head_buf) {
        qb_vfree(head_buf);
    }
    return ret;
}

/* ---------------------------------------------------------------------- */
/* Public request entry points                                             */

/* The checks every data request passes first: a usable edge and a range
 * that cannot overflow.  Permission and read-only checks follow per type. */
static inline int check_request(BdrvChild *child, int64_t offset,
                                int64_t bytes)
{
    int ret = check_child(child);
    return ret < 0 ? ret : check_range(offset, bytes);
}

int coroutine_fn bdrv_co_preadv(BdrvChild *child, int64_t offset,
                                int64_t bytes, IOVector *qiov,
                                BdrvRequestFlags flags)
{
    BlockDriverState *bs;
    BdrvTrackedRequest req;
    int64_t align, start, end;
    int ret;

    ret = check_request(child, offset, bytes);
    if (ret < 0) {
        return ret;
    }
    bs = child->bs;
    if (bytes == 0 || (flags & BDRV_REQ_PREFETCH)) {
        return 0;
    }
    if (!qiov || qiov->size < (size_t)bytes) {
        return -EINVAL;
    }

    bdrv_inc_in_flight(bs);
    tracked_request_begin(&req, bs, offset, bytes, BDRV_TRACKED_READ);
    if (flags & BDRV_REQ_SERIALISING) {
        tracked_request_set_serialising(&req, req_align(bs));
        wait_serialising_requests(&req);
    }

    align = req_align(bs);
    start = QB_ALIGN_DOWN(offset, align);
    end = QB_ALIGN_UP(offset + bytes, align);
    if (start == offset && end == offset + bytes) {
        ret = aligned_preadv(bs, offset, bytes, qiov, 0, flags);
    } else {
        /* Pad with bounce buffers for the partial head and tail blocks. */
        int64_t head = offset - start, tail = end - (offset + bytes);
        uint8_t *pad = qb_memalign(mem_align(bs), 2 * align);
        IOVector padded;
        qiov_init(&padded, qiov->niov + 2);
        if (head) {
            qiov_add(&padded, pad, head);
        }
        qiov_concat(&padded, qiov, 0, bytes);
        if (tail) {
            qiov_add(&padded, pad + align, tail);
        }
        ret = aligned_preadv(bs, start, end - start, &padded, 0, flags);
        qiov_destroy(&padded);
        qb_vfree(pad);
    }

    tracked_request_end(&req);
    bdrv_dec_in_flight(bs);
    return ret;
}

int coroutine_fn bdrv_co_pwritev(BdrvChild *child, int64_t offset,
                                 int64_t bytes, IOVector *qiov,
                                 BdrvRequestFlags flags)
{
    BlockDriverState *bs;
    BdrvTrackedRequest req;
    int64_t align;
    bool aligned;
    int ret;

    ret = check_request(child, offset, bytes);
    if (ret < 0) {
        return ret;
    }
    bs = child->bs;
    ret = check_write_allowed(child, flags);
    if (ret < 0) {
        return ret;
    }
    if (!(flags & BDRV_REQ_ZERO_WRITE) &&
        (!qiov || qiov->size < (size_t)bytes)) {
        return -EINVAL;
    }
    if (bytes == 0) {
        return 0;
    }
    align = req_align(bs);
    aligned = QB_IS_ALIGNED(offset, align) && QB_IS_ALIGNED(bytes, align);
    if (!aligned && (flags & BDRV_REQ_NO_FALLBACK)) {
        return -ENOTSUP;
    }
    if (!aligned && (flags & BDRV_REQ_WRITE_COMPRESSED)) {
        return -EINVAL;
    }

    bdrv_inc_in_flight(bs);
    tracked_request_begin(&req, bs, offset, bytes, BDRV_TRACKED_WRITE);
    if (flags & BDRV_REQ_SERIALISING) {
        tracked_request_set_serialising(&req, align);
    }
    if (aligned) {
        wait_serialising_requests(&req);
        ret = aligned_pwritev(bs, offset, bytes,
                              (flags & BDRV_REQ_ZERO_WRITE) ? NULL : qiov,
                              flags & ~BDRV_REQ_SERIALISING);
    } else {
        ret = rmw_pwritev(&req, offset, bytes, qiov,
                          flags & ~BDRV_REQ_SERIALISING);
    }
    tracked_request_end(&req);
    bdrv_dec_in_flight(bs);
    return ret;
}

int coroutine_fn bdrv_co_pread(BdrvChild *child, int64_t offset,
                               int64_t bytes, void *buf,
                               BdrvRequestFlags flags)
{
    IOVector qiov;
    if (bytes < 0) {
        return -EIO;
    }
    qiov_init_buf(&qiov, buf, bytes);
    return bdrv_co_preadv(child, offset, bytes, &qiov, flags);
}

int coroutine_fn bdrv_co_pwrite(BdrvChild *child, int64_t offset,
                                int64_t bytes, const void *buf,
                                BdrvRequestFlags flags)
{
    IOVector qiov;
    if (bytes < 0) {
        return -EIO;
    }
    qiov_init_buf(&qiov, (void *)buf, bytes);
    return bdrv_co_pwritev(child, offset, bytes, &qiov, flags);
}

int coroutine_fn bdrv_co_pwrite_sync(BdrvChild *child, int64_t offset,
                                     int64_t bytes, const void *buf,
                                     BdrvRequestFlags flags)
{
    int ret = bdrv_co_pwrite(child, offset, bytes, buf, flags);
    if (ret < 0) {
        return ret;
    }
    return bdrv_co_flush(child->bs);
}

int coroutine_fn bdrv_co_pwrite_zeroes(BdrvChild *child, int64_t offset,
                                       int64_t bytes, BdrvRequestFlags flags)
{
    if (child && child->bs && !(child->bs->open_flags & BDRV_O_UNMAP)) {
        flags &= ~BDRV_REQ_MAY_UNMAP;
    }
    return bdrv_co_pwritev(child, offset, bytes, NULL,
                           flags | BDRV_REQ_ZERO_WRITE);
}

int coroutine_fn bdrv_co_pdiscard(BdrvChild *child, int64_t offset,
                                  int64_t bytes)
{
    BlockDriverState *bs;
    BdrvTrackedRequest req;
    int64_t ralign, dalign, max_discard, end, pos;
    int ret;

    ret = check_request(child, offset, bytes);
    if (ret < 0) {
        return ret;
    }
    bs = child->bs;
    ret = check_write_allowed(child, 0);
    if (ret < 0) {
        return ret;
    }
    /* Discard is advisory: ignored unless discard=unmap, or unsupported. */
    if (!(bs->open_flags & BDRV_O_UNMAP) || !bs->drv->bdrv_co_pdiscard ||
        bytes == 0) {
        return 0;
    }

    ralign = req_align(bs);
    dalign = MAX(bs->bl.pdiscard_alignment, ralign);
    max_discard = bs->bl.max_pdiscard > 0 ? bs->bl.max_pdiscard
                                          : BDRV_REQUEST_MAX_BYTES;
    max_discard = MAX(QB_ALIGN_DOWN(max_discard, ralign), ralign);

    bdrv_inc_in_flight(bs);
    tracked_request_begin(&req, bs, offset, bytes, BDRV_TRACKED_DISCARD);
    wait_serialising_requests(&req);

    /* Pieces split at pdiscard_alignment boundaries; parts that are not
     * whole request_alignment blocks are dropped (drivers only see
     * aligned requests). */
    pos = QB_ALIGN_UP(offset, ralign);
    end = QB_ALIGN_DOWN(offset + bytes, ralign);
    while (pos < end) {
        int64_t num = end - pos;
        if (pos % dalign) {
            num = MIN(num, dalign - pos % dalign);
        } else if (num > dalign && (pos + num) % dalign) {
            num -= (pos + num) % dalign;
        }
        num = MIN(num, max_discard);
        if (!bs->drv) {
            ret = -ENOMEDIUM;
            break;
        }
        ret = bs->drv->bdrv_co_pdiscard(bs, pos, num);
        if (ret == -ENOTSUP) {
            ret = 0;
        }
        if (ret < 0) {
            break;
        }
        pos += num;
    }
    if (ret == 0) {
        write_req_finish(bs, offset, bytes, false);
    }
    tracked_request_end(&req);
    bdrv_dec_in_flight(bs);
    return ret;
}

/* ---------------------------------------------------------------------- */
/* Flush                                                                   */

int coroutine_fn bdrv_co_flush(BlockDriverState *bs)
{
    uint64_t gen;
    int ret = 0;

    if (!bs || !bs->drv) {
        return 0;
    }
    /* Nothing of a read-only or inactive node can be dirty. */
    if (bs->read_only || (bs->open_flags & BDRV_O_INACTIVE)) {
        return 0;
    }

    bdrv_inc_in_flight(bs);
    /* One flush at a time per node: a second one waiting here also covers
     * the writes that completed while the first ran. */
    co_mutex_lock(&bs->flush_lock);
    gen = bs->write_gen;

    if (bs->drv->bdrv_co_flush) {
        ret = bs->drv->bdrv_co_flush(bs);
        goto out;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_EV_FLUSH_TO_OS);
    if (bs->drv->bdrv_co_flush_to_os) {
        ret = bs->drv->bdrv_co_flush_to_os(bs);
        if (ret < 0) {
            goto out;
        }
    }
    if (!(bs->open_flags & BDRV_O_NO_FLUSH) && bs->flushed_gen != gen) {
        /* Raised whether or not the driver itself flushes (qcow2 doesn't),
         * as QEMU does. */
        BLKDBG_EVENT(bs->file, BLKDBG_EV_FLUSH_TO_DISK);
    }
    if (!(bs->open_flags & BDRV_O_NO_FLUSH) && bs->flushed_gen != gen &&
        bs->drv->bdrv_co_flush_to_disk) {
        ret = bs->drv->bdrv_co_flush_to_disk(bs);
        if (ret < 0) {
            goto out;
        }
    }
    /* Children that this node may have written to are flushed too. */
    for (GList *l = bs->children; l; l = l->next) {
        BdrvChild *c = l->data;
        if (c->perm & (BLK_PERM_WRITE | BLK_PERM_WRITE_UNCHANGED)) {
            int r = bdrv_co_flush(c->bs);
            if (r < 0 && ret == 0) {
                ret = r;
            }
        }
    }
out:
    if (ret == 0) {
        bs->flushed_gen = gen;
    }
    co_mutex_unlock(&bs->flush_lock);
    bdrv_dec_in_flight(bs);
    return ret;
}

/* ---------------------------------------------------------------------- */
/* Truncate                                                                */

int coroutine_fn bdrv_co_truncate(BdrvChild *child, int64_t offset,
                                  bool exact, PreallocMode prealloc,
                                  BdrvRequestFlags flags, Error **errp)
{
    BlockDriverState *bs;
    BdrvTrackedRequest req;
    int64_t old_size, low;
    int ret;

    if (check_child(child) < 0) {
        error_setg(errp, "No medium inserted");
        return -ENOMEDIUM;
    }
    bs = child->bs;
    if (offset < 0) {
        error_setg(errp, "Image size cannot be negative");
        return -EINVAL;
    }
    if (offset > BDRV_MAX_LENGTH) {
        error_setg(errp, "Image size too large");
        return -EFBIG;
    }
    if (bs->read_only) {
        error_setg(errp, "Image is read-only");
        return -EACCES;
    }
    if (!(child->perm & BLK_PERM_RESIZE)) {
        error_setg(errp, "Node '%s' was not opened with the 'resize' "
                   "permission", bdrv_get_node_name(bs));
        return -EPERM;
    }
    old_size = bdrv_getlength(bs);
    if (old_size < 0) {
        error_setg_errno(errp, -old_size, "Failed to get old image size");
        return old_size;
    }

    bdrv_inc_in_flight(bs);
    /* Serialise against everything past the smaller of the two sizes. */
    low = MIN(old_size, offset);
    tracked_request_begin(&req, bs, low, BDRV_MAX_LENGTH - low,
                          BDRV_TRACKED_TRUNCATE);
    tracked_request_set_serialising(&req, 1);
    wait_serialising_requests(&req);

    if (bs->drv->bdrv_co_truncate) {
        ret = bs->drv->bdrv_co_truncate(bs, offset, exact, prealloc,
                                        flags & bs->supported_truncate_flags,
                                        errp);
    } else if (bs->drv->is_filter && bs->file) {
        ret = bdrv_co_truncate(bs->file, offset, exact, prealloc, flags, errp);
    } else {
        error_setg(errp, "Image format driver does not support resize");
        ret = -ENOTSUP;
    }
    if (ret == 0) {
        int64_t len = bs->drv->bdrv_getlength ? bs->drv->bdrv_getlength(bs)
                                              : offset;
        bdrv_set_size(bs, len >= 0 ? len : offset);
        if (bs->dirty_bitmaps) {
            bdrv_dirty_bitmap_truncate(bs, len >= 0 ? len : offset);
        }
        bs->write_gen++;
    }
    tracked_request_end(&req);
    bdrv_dec_in_flight(bs);
    return ret;
}

/* ---------------------------------------------------------------------- */
/* Block status                                                            */

static int coroutine_fn do_block_status(BlockDriverState *bs, bool want_zero,
                                        int64_t offset, int64_t bytes,
                                        int64_t *pnum, int64_t *map,
                                        BlockDriverState **file)
{
    int64_t total, align, aligned_offset, aligned_bytes;
    int64_t local_map = 0;
    BlockDriverState *local_file = NULL;
    int ret;

    *pnum = 0;
    if (!bs || !bs->drv) {
        return -ENOMEDIUM;
    }
    if (offset < 0 || bytes < 0) {
        return -EIO;
    }
    /* The cached length unless the query reaches past it: an NBD server
     * asks block status for every read, and a system call per layer per
     * query showed in its profile. */
    total = length_for(bs, bytes > INT64_MAX - offset ? INT64_MAX
                                                      : offset + bytes);
    if (total < 0) {
        return total;
    }
    if (offset >= total) {
        return BDRV_BLOCK_EOF;
    }
    if (bytes == 0) {
        return 0;
    }
    bytes = MIN(bytes, total - offset);

    if (!bs->drv->bdrv_co_block_status) {
        /* No callback: all data, mapped 1:1 if we are the protocol. */
        *pnum = bytes;
        ret = BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED;
        if (bs->drv->protocol_name) {
            ret |= BDRV_BLOCK_OFFSET_VALID;
            local_map = offset;
            local_file = bs;
        }
        goto out;
    }

    align = req_align(bs);
    aligned_offset = QB_ALIGN_DOWN(offset, align);
    aligned_bytes = QB_ALIGN_UP(offset + bytes, align) - aligned_offset;

    bdrv_inc_in_flight(bs);
    ret = bs->drv->bdrv_co_block_status(bs, want_zero, aligned_offset,
                                        aligned_bytes, pnum, &local_map,
                                        &local_file);
    if (ret < 0) {
        *pnum = 0;
        goto out_in_flight;
    }
    /* Back from the aligned request to what the caller asked. */
    if (*pnum <= offset - aligned_offset) {
        *pnum = MIN(align, aligned_bytes) - (offset - aligned_offset);
    } else {
        *pnum -= offset - aligned_offset;
    }
    if (*pnum > bytes) {
        *pnum = bytes;
    }
    if (ret & BDRV_BLOCK_OFFSET_VALID) {
        local_map += offset - aligned_offset;
    }

    if (ret & BDRV_BLOCK_RAW) {
        /* The driver maps 1:1 onto local_file: ask it. */
        int64_t n = *pnum;
        if (!(ret & BDRV_BLOCK_OFFSET_VALID) || !local_file) {
            ret = -EIO;
            *pnum = 0;
            goto out_in_flight;
        }
        ret = do_block_status(local_file, want_zero, local_map, n, pnum,
                              &local_map, &local_file);
        if (ret >= 0 && *pnum == 0) {
            /* Mapped beyond the file's end: reads as zeroes. */
            *pnum = n;
            ret = BDRV_BLOCK_ZERO | BDRV_BLOCK_ALLOCATED;
        }
        ret = ret < 0 ? ret : (ret & ~BDRV_BLOCK_EOF);
        goto out_in_flight;
    }

    if (ret & (BDRV_BLOCK_DATA | BDRV_BLOCK_ZERO)) {
        ret |= BDRV_BLOCK_ALLOCATED;
    } else if (bs->drv->supports_backing) {
        BlockDriverState *cow = bs->backing ? bs->backing->bs : NULL;
        if (!cow) {
            ret |= BDRV_BLOCK_ZERO;
        } else if (want_zero) {
            int64_t cow_len = length_for(cow, offset + 1);
            if (cow_len >= 0 && offset >= cow_len) {
                ret |= BDRV_BLOCK_ZERO;
            }
        }
    }

    if (want_zero && (ret & BDRV_BLOCK_RECURSE) && local_file &&
        local_file != bs && (ret & BDRV_BLOCK_DATA) &&
        !(ret & BDRV_BLOCK_ZERO) && (ret & BDRV_BLOCK_OFFSET_VALID)) {
        int64_t file_pnum;
        int ret2 = do_block_status(local_file, want_zero, local_map, *pnum,
                                   &file_pnum, NULL, NULL);
        if (ret2 >= 0) {
            if ((ret2 & BDRV_BLOCK_EOF) &&
                (!file_pnum || (ret2 & BDRV_BLOCK_ZERO))) {
                /* Past the file's end everything reads as zero. */
                ret |= BDRV_BLOCK_ZERO;
            } else {
                *pnum = file_pnum;
                ret |= ret2 & BDRV_BLOCK_ZERO;
            }
        }
    }
    ret &= ~(BDRV_BLOCK_RECURSE | BDRV_BLOCK_RAW | BDRV_BLOCK_EOF);

out_in_flight:
    bdrv_dec_in_flight(bs);
out:
    if (ret >= 0 && offset + *pnum == total) {
        ret |= BDRV_BLOCK_EOF;
    }
    if (ret >= 0) {
        if (map) {
            *map = local_map;
        }
        if (file) {
            *file = local_file;
        }
    }
    return ret;
}

int coroutine_fn bdrv_co_block_status(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, int64_t *pnum,
                                      int64_t *map, BlockDriverState **file)
{
    int64_t dummy;
    return do_block_status(bs, true, offset, bytes, pnum ? pnum : &dummy,
                           map, file);
}

static int coroutine_fn block_status_above(BlockDriverState *bs,
                                           BlockDriverState *base,
                                           bool want_zero, int64_t offset,
                                           int64_t bytes, int64_t *pnum,
                                           int64_t *map,
                                           BlockDriverState **file,
                                           int *depth)
{
    int64_t eof = -1;
    int d = 1;
    int ret;

    if (bs == base) {
        *pnum = bytes;
        *depth = 0;
        return 0;
    }
    ret = do_block_status(bs, want_zero, offset, bytes, pnum, map, file);
    if (ret < 0 || *pnum == 0 || (ret & BDRV_BLOCK_ALLOCATED)) {
        *depth = (ret >= 0 && (ret & BDRV_BLOCK_ALLOCATED)) ? 1 : 0;
        return ret;
    }
    if (ret & BDRV_BLOCK_EOF) {
        eof = offset + *pnum;
    }
    bytes = MIN(bytes, *pnum);

    for (BlockDriverState *p = bdrv_filter_or_cow_bs(bs); p && p != base;
         p = bdrv_filter_or_cow_bs(p)) {
        d++;
        ret = do_block_status(p, want_zero, offset, bytes, pnum, map, file);
        if (ret < 0) {
            *depth = 0;
            return ret;
        }
        if (*pnum == 0) {
            /* Lower layer is shorter: what the upper layer defers to it
             * reads as zeroes allocated at this depth. */
            *pnum = bytes;
            if (file) {
                *file = p;
            }
            ret = BDRV_BLOCK_ZERO | BDRV_BLOCK_ALLOCATED;
            break;
        }
        if (ret & BDRV_BLOCK_ALLOCATED) {
            ret &= ~BDRV_BLOCK_EOF;
            break;
        }
        bytes = MIN(bytes, *pnum);
    }
    *depth = (ret & BDRV_BLOCK_ALLOCATED) ? d : 0;
    if (offset + *pnum == eof) {
        ret |= BDRV_BLOCK_EOF;
    }
    return ret;
}

int coroutine_fn bdrv_co_block_status_above(BlockDriverState *bs,
                                            BlockDriverState *base,
                                            int64_t offset, int64_t bytes,
                                            int64_t *pnum, int64_t *map,
                                            BlockDriverState **file,
                                            int *depth)
{
    int64_t dummy_pnum;
    int dummy_depth;
    return block_status_above(bs, base, true, offset, bytes,
                              pnum ? pnum : &dummy_pnum, map, file,
                              depth ? depth : &dummy_depth);
}

int coroutine_fn bdrv_co_is_allocated(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, int64_t *pnum)
{
    int64_t dummy;
    int ret = do_block_status(bs, false, offset, bytes, pnum ? pnum : &dummy,
                              NULL, NULL);
    if (ret < 0) {
        return ret;
    }
    return !!(ret & BDRV_BLOCK_ALLOCATED);
}

/* ---------------------------------------------------------------------- */
/* Synchronous wrappers                                                    */

typedef struct SyncIO {
    BdrvChild *child;
    BlockDriverState *bs;
    int64_t offset, bytes;
    void *buf;
    BdrvRequestFlags flags;
    bool exact;
    PreallocMode prealloc;
    int64_t *pnum, *map;
    BlockDriverState **file;
    Error **errp;
    int ret;
} SyncIO;

static void coroutine_fn sync_pread_entry(void *opaque)
{
    SyncIO *s = opaque;
    s->ret = bdrv_co_pread(s->child, s->offset, s->bytes, s->buf, s->flags);
}

static void coroutine_fn sync_pwrite_entry(void *opaque)
{
    SyncIO *s = opaque;
    s->ret = bdrv_co_pwrite(s->child, s->offset, s->bytes, s->buf, s->flags);
}

static void coroutine_fn sync_pwrite_sync_entry(void *opaque)
{
    SyncIO *s = opaque;
    s->ret = bdrv_co_pwrite_sync(s->child, s->offset, s->bytes, s->buf,
                                 s->flags);
}

static void coroutine_fn sync_flush_entry(void *opaque)
{
    SyncIO *s = opaque;
    s->ret = bdrv_co_flush(s->bs);
}

static void coroutine_fn sync_truncate_entry(void *opaque)
{
    SyncIO *s = opaque;
    s->ret = bdrv_co_truncate(s->child, s->offset, s->exact, s->prealloc,
                              s->flags, s->errp);
}

static void coroutine_fn sync_block_status_entry(void *opaque)
{
    SyncIO *s = opaque;
    s->ret = bdrv_co_block_status(s->bs, s->offset, s->bytes, s->pnum,
                                  s->map, s->file);
}

int bdrv_pread(BdrvChild *child, int64_t offset, int64_t bytes, void *buf,
               BdrvRequestFlags flags)
{
    SyncIO s = { .child = child, .offset = offset, .bytes = bytes,
                 .buf = buf, .flags = flags };
    coroutine_run_sync(sync_pread_entry, &s);
    return s.ret;
}

int bdrv_pwrite(BdrvChild *child, int64_t offset, int64_t bytes,
                const void *buf, BdrvRequestFlags flags)
{
    SyncIO s = { .child = child, .offset = offset, .bytes = bytes,
                 .buf = (void *)buf, .flags = flags };
    coroutine_run_sync(sync_pwrite_entry, &s);
    return s.ret;
}

int bdrv_pwrite_sync(BdrvChild *child, int64_t offset, int64_t bytes,
                     const void *buf, BdrvRequestFlags flags)
{
    SyncIO s = { .child = child, .offset = offset, .bytes = bytes,
                 .buf = (void *)buf, .flags = flags };
    coroutine_run_sync(sync_pwrite_sync_entry, &s);
    return s.ret;
}

int bdrv_flush(BlockDriverState *bs)
{
    SyncIO s = { .bs = bs };
    coroutine_run_sync(sync_flush_entry, &s);
    return s.ret;
}

int bdrv_truncate(BdrvChild *child, int64_t offset, bool exact,
                  PreallocMode prealloc, BdrvRequestFlags flags, Error **errp)
{
    SyncIO s = { .child = child, .offset = offset, .exact = exact,
                 .prealloc = prealloc, .flags = flags, .errp = errp };
    coroutine_run_sync(sync_truncate_entry, &s);
    return s.ret;
}

int bdrv_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                      int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    SyncIO s = { .bs = bs, .offset = offset, .bytes = bytes, .pnum = pnum,
                 .map = map, .file = file };
    coroutine_run_sync(sync_block_status_entry, &s);
    return s.ret;
}

/* ---------------------------------------------------------------------- */
/* Drain                                                                   */

/* The parent node of an edge owned by a node (H2's child_of_bds keeps
 * the parent in opaque), or NULL for other parents (BlockBackend, jobs). */
static BlockDriverState *parent_node(BdrvChild *c)
{
    return c->klass && c->klass->parent_is_bds ? c->opaque : NULL;
}

/*
 * Busy while requests are in flight here or in any parent: a parent node's
 * request may be between two I/Os to us.  Parents with their own
 * drained_poll answer for themselves; node parents without one are
 * checked recursively (the graph is acyclic).
 */
static bool drain_busy(BlockDriverState *bs)
{
    if (bs->in_flight) {
        return true;
    }
    for (GList *l = bs->parents; l; l = l->next) {
        BdrvChild *c = l->data;
        BlockDriverState *p = parent_node(c);
        if (c->klass && c->klass->drained_poll) {
            if (c->klass->drained_poll(c)) {
                return true;
            }
        } else if (p && drain_busy(p)) {
            return true;
        }
    }
    return false;
}

static void drain_quiesce(BlockDriverState *bs);
static void drain_unquiesce(BlockDriverState *bs);

/* Quiescing a node quiesces everything above it: node parents without a
 * callback of their own are drained like the node itself. */
static void parent_drained_begin(BdrvChild *c)
{
    BlockDriverState *p = parent_node(c);

    if (c->klass && c->klass->drained_begin) {
        c->klass->drained_begin(c);
    } else if (p) {
        drain_quiesce(p);
    }
}

static void parent_drained_end(BdrvChild *c)
{
    BlockDriverState *p = parent_node(c);

    if (c->klass && c->klass->drained_end) {
        c->klass->drained_end(c);
    } else if (p) {
        drain_unquiesce(p);
    }
}

static void drain_quiesce(BlockDriverState *bs)
{
    if (bs->quiesce_counter++ == 0) {
        /* Copy: a parent callback may attach or detach edges. */
        GList *parents = g_list_copy(bs->parents);
        for (GList *l = parents; l; l = l->next) {
            BdrvChild *c = l->data;
            c->quiesced_parent = true;
            parent_drained_begin(c);
        }
        g_list_free(parents);
    }
}

static void drain_unquiesce(BlockDriverState *bs)
{
    assert(bs->quiesce_counter > 0);
    if (--bs->quiesce_counter == 0) {
        GList *parents = g_list_copy(bs->parents);
        for (GList *l = parents; l; l = l->next) {
            BdrvChild *c = l->data;
            if (c->quiesced_parent) {
                c->quiesced_parent = false;
                parent_drained_end(c);
            }
        }
        g_list_free(parents);
    }
}

/* Wait while cond(bs) holds: poll from outside coroutines; from inside
 * one, let the event loop run by rescheduling ourselves. */
static void drain_wait(BlockDriverState *bs)
{
    AioContext *ctx = node_ctx(bs);

    if (in_coroutine()) {
        while (drain_busy(bs)) {
            aio_co_schedule(ctx, coroutine_self());
            coroutine_yield();
        }
        return;
    }
    AIO_WAIT_WHILE(ctx, drain_busy(bs));
}

void bdrv_drained_begin(BlockDriverState *bs)
{
    drain_quiesce(bs);
    drain_wait(bs);
}

void bdrv_drained_end(BlockDriverState *bs)
{
    drain_unquiesce(bs);
}

void bdrv_drain_all_begin(void)
{
    BlockDriverState *bs;

    for (bs = bdrv_next_all_nodes(NULL); bs; bs = bdrv_next_all_nodes(bs)) {
        drain_quiesce(bs);
    }
    for (bs = bdrv_next_all_nodes(NULL); bs; bs = bdrv_next_all_nodes(bs)) {
        drain_wait(bs);
    }
}

void bdrv_drain_all_end(void)
{
    BlockDriverState *bs;

    for (bs = bdrv_next_all_nodes(NULL); bs; bs = bdrv_next_all_nodes(bs)) {
        drain_unquiesce(bs);
    }
}

void bdrv_drain_all(void)
{
    bdrv_drain_all_begin();
    bdrv_drain_all_end();
}

int bdrv_flush_all(void)
{
    int result = 0;

    for (BlockDriverState *bs = bdrv_next_all_nodes(NULL); bs;
         bs = bdrv_next_all_nodes(bs)) {
        int ret = bdrv_flush(bs);
        if (ret < 0 && result == 0) {
            result = ret;
        }
    }
    return result;
}

/* ---------------------------------------------------------------------- */
/* Debug events and breakpoints (blkdebug)                                 */

void bdrv_debug_event(BlockDriverState *bs, BlkdbgEvent event)
{
    if (bs && bs->drv && bs->drv->bdrv_debug_event &&
        event >= 0 && event < BLKDBG_EV__MAX) {
        bs->drv->bdrv_debug_event(bs, event);
    }
}

/* The node below bs (following file / filtered children) whose driver
 * implements the breakpoint hooks, or NULL. */
static BlockDriverState *debug_node(BlockDriverState *bs)
{
    int depth = 0;
    while (bs && bs->drv && depth++ < 64) {
        if (bs->drv->bdrv_debug_breakpoint) {
            return bs;
        }
        bs = bs->file ? bs->file->bs : NULL;
    }
    return NULL;
}

int bdrv_debug_breakpoint(BlockDriverState *bs, const char *event,
                          const char *tag)
{
    bs = debug_node(bs);
    return bs ? bs->drv->bdrv_debug_breakpoint(bs, event, tag) : -ENOTSUP;
}

int bdrv_debug_remove_breakpoint(BlockDriverState *bs, const char *tag)
{
    bs = debug_node(bs);
    return bs && bs->drv->bdrv_debug_remove_breakpoint
           ? bs->drv->bdrv_debug_remove_breakpoint(bs, tag) : -ENOTSUP;
}

int bdrv_debug_resume(BlockDriverState *bs, const char *tag)
{
    bs = debug_node(bs);
    return bs && bs->drv->bdrv_debug_resume
           ? bs->drv->bdrv_debug_resume(bs, tag) : -ENOTSUP;
}

bool bdrv_debug_is_suspended(BlockDriverState *bs, const char *tag)
{
    bs = debug_node(bs);
    return bs && bs->drv->bdrv_debug_is_suspended &&
           bs->drv->bdrv_debug_is_suspended(bs, tag);
}
