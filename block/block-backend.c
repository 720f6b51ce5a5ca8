/*
 * BlockBackend: the handle users of the block layer (tools, exports, jobs,
 * embedders) hold on the root of a node graph.  A backend owns one "root"
 * edge into its node with its own permissions, refuses requests beyond the
 * end of the device (as a guest device would), adds FUA when the write
 * cache is off, queues new requests while its node is drained, and offers
 * synchronous, coroutine and callback-style (aio) I/O.
 *
 * Invariants:
 *  1. blk->in_flight counts requests that entered the backend and have not
 *     yet run their completion (aio callbacks included); requests parked
 *     while drained are not counted, so a drain can finish while they wait.
 *  2. An aio completion callback runs in the backend's AioContext, never
 *     before the submitting blk_aio_* call returned: from a bottom half,
 *     or (blk_set_aio_direct_completion, for callbacks that never wait)
 *     directly from the request's coroutine if it finished after that.
 *  3. blk->root is an edge made by bdrv_root_attach_child and holds one
 *     reference on the node; it is released with bdrv_root_unref_child.
 */
#include "block/block-backend.h"
#include "block/block-int.h"

struct BlockBackend {
    char *name;                   /* "" = unnamed */
    int refcnt;
    BdrvChild *root;
    AioContext *ctx;
    uint64_t perm, shared_perm;
    bool allow_write_beyond_eof;
    bool aio_direct_completion;   /* see blk_set_aio_direct_completion */
    bool enable_write_cache;

    unsigned int in_flight;
    int quiesce_counter;
    CoQueue queued_requests;      /* requests parked while drained */
};

struct BlockAIOCB {
    BlockBackend *blk;
    BlockCompletionFunc *cb;
    void *opaque;
    int type;
    int64_t offset, bytes;
    IOVector *qiov;
    BdrvRequestFlags flags;
    int ret;
    bool has_returned;    /* blk_aio_start has returned to its caller */
};

enum { AIO_READ, AIO_WRITE, AIO_ZEROES, AIO_DISCARD, AIO_FLUSH };

static GList *all_backends;      /* BlockBackend*, in creation order */

/* ---------------------------------------------------------------------- */
/* Root edge                                                               */

static char *root_get_parent_desc(BdrvChild *c)
{
    BlockBackend *blk = c->opaque;
    if (blk->name && *blk->name) {
        return g_strdup_printf("block device '%s'", blk->name);
    }
    return g_strdup("an unnamed block device");
}

static const char *root_get_name(BdrvChild *c)
{
    BlockBackend *blk = c->opaque;
    return blk->name;
}

static void root_drained_begin(BdrvChild *c)
{
    BlockBackend *blk = c->opaque;
    blk->quiesce_counter++;
}

static void root_drained_end(BdrvChild *c)
{
    BlockBackend *blk = c->opaque;
    assert(blk->quiesce_counter > 0);
    if (--blk->quiesce_counter == 0) {
        co_queue_restart_all(&blk->queued_requests);
    }
}

static bool root_drained_poll(BdrvChild *c)
{
    BlockBackend *blk = c->opaque;
    return blk->in_flight > 0;
}

static AioContext *root_get_parent_aio_context(BdrvChild *c)
{
    BlockBackend *blk = c->opaque;
    return blk->ctx;
}

static const BdrvChildClass child_root = {
    .stay_at_node = true,
    .parent_is_bds = false,
    .get_parent_desc = root_get_parent_desc,
    .get_name = root_get_name,
    .drained_begin = root_drained_begin,
    .drained_end = root_drained_end,
    .drained_poll = root_drained_poll,
    .get_parent_aio_context = root_get_parent_aio_context,
};

/* ---------------------------------------------------------------------- */
/* Life cycle                                                              */

BlockBackend *blk_new(AioContext *ctx, uint64_t perm, uint64_t shared_perm)
{
    BlockBackend *blk = g_new0(BlockBackend, 1);

    blk->name = g_strdup("");
    blk->refcnt = 1;
    blk->ctx = ctx ? ctx : qb_get_aio_context();
    blk->perm = perm;
    blk->shared_perm = shared_perm;
    blk->enable_write_cache = true;
    co_queue_init(&blk->queued_requests);
    all_backends = g_list_append(all_backends, blk);
    return blk;
}

BlockBackend *blk_new_open(const char *filename, const char *reference,
                           json_t *options, int flags, Error **errp)
{
    uint64_t perm = 0, shared = BLK_PERM_ALL;
    BlockDriverState *bs;
    BlockBackend *blk;

    /* As QEMU: tools keep their node private, so share everything unless
     * asked not to; take only what the flags say we will do. */
    if (!(flags & BDRV_O_NO_IO)) {
        perm |= BLK_PERM_CONSISTENT_READ;
        if (flags & BDRV_O_RDWR) {
            perm |= BLK_PERM_WRITE;
        }
    }
    if (flags & BDRV_O_RESIZE) {
        perm |= BLK_PERM_RESIZE;
    }
    if (flags & BDRV_O_NO_SHARE) {
        shared = BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE_UNCHANGED;
    }

    bs = bdrv_open(filename, reference, options, flags, errp);
    if (!bs) {
        return NULL;
    }
    blk = blk_new(qb_get_aio_context(), perm, shared);
    if (blk_insert_bs(blk, bs, errp) < 0) {
        bdrv_unref(bs);
        blk_unref(blk);
        return NULL;
    }
    bdrv_unref(bs);   /* the root edge holds its own reference */
    return blk;
}

int blk_insert_bs(BlockBackend *blk, BlockDriverState *bs, Error **errp)
{
    BdrvChild *c;

    if (blk->root) {
        error_setg(errp, "Block device already has a medium inserted");
        return -EBUSY;
    }
    bdrv_ref(bs);   /* consumed by the root edge */
    c = bdrv_root_attach_child(bs, "root", &child_root,
                               BDRV_CHILD_FILTERED | BDRV_CHILD_PRIMARY,
                               blk->perm, blk->shared_perm, blk, errp);
    if (!c) {
        return -EPERM;
    }
    blk->root = c;
    if (bs->quiesce_counter > 0) {
        /* Inserted into a drained node: start out quiesced too. */
        for (int i = 0; i < bs->quiesce_counter; i++) {
            root_drained_begin(c);
        }
        c->quiesced_parent = true;
    }
    return 0;
}

void blk_remove_bs(BlockBackend *blk)
{
    BdrvChild *c = blk->root;

    if (!c) {
        return;
    }
    blk_drain(blk);
    if (c->quiesced_parent) {
        /* Leave the node's drained section as far as we are concerned. */
        while (blk->quiesce_counter > 0) {
            root_drained_end(c);
        }
    }
    blk->root = NULL;
    bdrv_root_unref_child(c);
}

void blk_ref(BlockBackend *blk)
{
    blk->refcnt++;
}

void blk_unref(BlockBackend *blk)
{
    if (!blk) {
        return;
    }
    assert(blk->refcnt > 0);
    if (--blk->refcnt > 0) {
        return;
    }
    blk_remove_bs(blk);
    AIO_WAIT_WHILE(blk->ctx, blk->in_flight > 0);
    all_backends = g_list_remove(all_backends, blk);
    g_free(blk->name);
    g_free(blk);
}

BlockDriverState *blk_bs(BlockBackend *blk)
{
    return blk->root ? blk->root->bs : NULL;
}

BdrvChild *blk_root(BlockBackend *blk)
{
    return blk->root;
}

bool blk_set_name(BlockBackend *blk, const char *name, Error **errp)
{
    if (name && *name) {
        BlockBackend *other = blk_by_name(name);
        if (other && other != blk) {
            error_setg(errp, "Device with id '%s' already exists", name);
            return false;
        }
        if (bdrv_find_node(name)) {
            error_setg(errp, "Device name '%s' conflicts with an existing "
                       "node name", name);
            return false;
        }
    }
    g_free(blk->name);
    blk->name = g_strdup(name ? name : "");
    return true;
}

const char *blk_name(const BlockBackend *blk)
{
    return blk->name;
}

BlockBackend *blk_by_name(const char *name)
{
    if (!name || !*name) {
        return NULL;
    }
    for (GList *l = all_backends; l; l = l->next) {
        BlockBackend *blk = l->data;
        if (!strcmp(blk->name, name)) {
            return blk;
        }
    }
    return NULL;
}

BlockBackend *blk_next(BlockBackend *blk)
{
    GList *l;

    if (!blk) {
        return all_backends ? all_backends->data : NULL;
    }
    l = g_list_find(all_backends, blk);
    return l && l->next ? l->next->data : NULL;
}

int blk_set_perm(BlockBackend *blk, uint64_t perm, uint64_t shared_perm,
                 Error **errp)
{
    if (blk->root) {
        int ret = bdrv_child_try_set_perm(blk->root, perm, shared_perm, errp);
        if (ret < 0) {
            return ret;
        }
    }
    blk->perm = perm;
    blk->shared_perm = shared_perm;
    return 0;
}

void blk_get_perm(BlockBackend *blk, uint64_t *perm, uint64_t *shared_perm)
{
    *perm = blk->perm;
    *shared_perm = blk->shared_perm;
}

void blk_set_aio_direct_completion(BlockBackend *blk, bool on)
{
    blk->aio_direct_completion = on;
}

void blk_set_allow_write_beyond_eof(BlockBackend *blk, bool allow)
{
    blk->allow_write_beyond_eof = allow;
}

void blk_set_enable_write_cache(BlockBackend *blk, bool wce)
{
    blk->enable_write_cache = wce;
}

bool blk_enable_write_cache(BlockBackend *blk)
{
    return blk->enable_write_cache;
}

AioContext *blk_get_aio_context(BlockBackend *blk)
{
    return blk->ctx;
}

int64_t blk_getlength(BlockBackend *blk)
{
    BlockDriverState *bs = blk_bs(blk);
    if (!bs || !bs->drv) {
        return -ENOMEDIUM;
    }
    return bdrv_getlength(bs);
}

bool blk_is_read_only(BlockBackend *blk)
{
    BlockDriverState *bs = blk_bs(blk);
    return bs ? bdrv_is_read_only(bs) : false;
}

bool blk_is_writable(BlockBackend *blk)
{
    BlockDriverState *bs = blk_bs(blk);
    return bs ? bdrv_is_writable(bs) : false;
}

bool blk_is_inserted(BlockBackend *blk)
{
    BlockDriverState *bs = blk_bs(blk);
    return bs && bs->drv;
}

uint32_t blk_get_request_alignment(BlockBackend *blk)
{
    BlockDriverState *bs = blk_bs(blk);
    if (!bs || !bs->bl.request_alignment) {
        return BDRV_SECTOR_SIZE;
    }
    return bs->bl.request_alignment;
}

void *blk_blockalign(BlockBackend *blk, size_t size)
{
    BlockDriverState *bs = blk ? blk_bs(blk) : NULL;
    size_t align = QB_MEM_ALIGN;
    if (bs) {
        align = MAX(align, bs->bl.opt_mem_alignment);
    }
    return qb_memalign(align, size ? size : 1);
}

/* ---------------------------------------------------------------------- */
/* Request checks and coroutine I/O                                        */

static void blk_inc_in_flight(BlockBackend *blk)
{
    blk->in_flight++;
}

static void blk_dec_in_flight(BlockBackend *blk)
{
    assert(blk->in_flight > 0);
    if (--blk->in_flight == 0) {
        aio_notify(blk->ctx);
    }
}

/* Park the request while the node is drained (invariant 1). */
static void coroutine_fn blk_wait_while_drained(BlockBackend *blk)
{
    while (blk->quiesce_counter > 0) {
        blk_dec_in_flight(blk);
        co_queue_wait(&blk->queued_requests, NULL);
        blk_inc_in_flight(blk);
    }
}

/* What a device checks: a medium, and a range inside it. */
static int blk_check_request(BlockBackend *blk, int64_t offset, int64_t bytes)
{
    int64_t len;

    if (!blk_is_inserted(blk)) {
        return -ENOMEDIUM;
    }
    if (offset < 0 || bytes < 0 || bytes > BDRV_REQUEST_MAX_BYTES) {
        return -EIO;
    }
    if (!blk->allow_write_beyond_eof) {
        /* The cached length first (no system call); ask the driver only
         * when the request seems to reach past it. */
        BlockDriverState *bs = blk_bs(blk);
        len = bs->total_sectors * (int64_t)BDRV_SECTOR_SIZE;
        if (bs->total_sectors <= 0 || offset > len || len - offset < bytes) {
            len = blk_getlength(blk);
            if (len < 0) {
                return len;
            }
            if (offset > len || len - offset < bytes) {
                return -EIO;
            }
        }
    }
    return 0;
}

static int coroutine_fn blk_do_preadv(BlockBackend *blk, int64_t offset,
                                      int64_t bytes, IOVector *qiov,
                                      BdrvRequestFlags flags)
{
    int ret;

    blk_wait_while_drained(blk);
    ret = blk_check_request(blk, offset, bytes);
    if (ret < 0) {
        return ret;
    }
    return bdrv_co_preadv(blk->root, offset, bytes, qiov, flags);
}

static int coroutine_fn blk_do_pwritev(BlockBackend *blk, int64_t offset,
                                       int64_t bytes, IOVector *qiov,
                                       BdrvRequestFlags flags)
{
    int ret;

    blk_wait_while_drained(blk);
    ret = blk_check_request(blk, offset, bytes);
    if (ret < 0) {
        return ret;
    }
    if (!blk->enable_write_cache) {
        flags |= BDRV_REQ_FUA;
    }
    return bdrv_co_pwritev(blk->root, offset, bytes, qiov, flags);
}

static int coroutine_fn blk_do_pdiscard(BlockBackend *blk, int64_t offset,
                                        int64_t bytes)
{
    int ret;

    blk_wait_while_drained(blk);
    ret = blk_check_request(blk, offset, bytes);
    if (ret < 0) {
        return ret;
    }
    return bdrv_co_pdiscard(blk->root, offset, bytes);
}

static int coroutine_fn blk_do_flush(BlockBackend *blk)
{
    blk_wait_while_drained(blk);
    if (!blk_is_inserted(blk)) {
        return -ENOMEDIUM;
    }
    return bdrv_co_flush(blk_bs(blk));
}

int coroutine_fn blk_co_preadv(BlockBackend *blk, int64_t offset,
                               int64_t bytes, IOVector *qiov,
                               BdrvRequestFlags flags)
{
    int ret;
    blk_inc_in_flight(blk);
    ret = blk_do_preadv(blk, offset, bytes, qiov, flags);
    blk_dec_in_flight(blk);
    return ret;
}

int coroutine_fn blk_co_pwritev(BlockBackend *blk, int64_t offset,
                                int64_t bytes, IOVector *qiov,
                                BdrvRequestFlags flags)
{
    int ret;
    blk_inc_in_flight(blk);
    ret = blk_do_pwritev(blk, offset, bytes, qiov, flags);
    blk_dec_in_flight(blk);
    return ret;
}

int coroutine_fn blk_co_pwrite_zeroes(BlockBackend *blk, int64_t offset,
                                      int64_t bytes, BdrvRequestFlags flags)
{
    return blk_co_pwritev(blk, offset, bytes, NULL,
                          flags | BDRV_REQ_ZERO_WRITE);
}

int coroutine_fn blk_co_pdiscard(BlockBackend *blk, int64_t offset,
                                 int64_t bytes)
{
    int ret;
    blk_inc_in_flight(blk);
    ret = blk_do_pdiscard(blk, offset, bytes);
    blk_dec_in_flight(blk);
    return ret;
}

int coroutine_fn blk_co_flush(BlockBackend *blk)
{
    int ret;
    blk_inc_in_flight(blk);
    ret = blk_do_flush(blk);
    blk_dec_in_flight(blk);
    return ret;
}

int coroutine_fn blk_co_truncate(BlockBackend *blk, int64_t offset, bool exact,
                                 PreallocMode prealloc, BdrvRequestFlags flags,
                                 Error **errp)
{
    int ret;

    if (!blk_is_inserted(blk)) {
        error_setg(errp, "No medium inserted");
        return -ENOMEDIUM;
    }
    blk_inc_in_flight(blk);
    blk_wait_while_drained(blk);
    ret = bdrv_co_truncate(blk->root, offset, exact, prealloc, flags, errp);
    blk_dec_in_flight(blk);
    return ret;
}

int coroutine_fn blk_co_block_status(BlockBackend *blk, int64_t offset,
                                     int64_t bytes, int64_t *pnum,
                                     int64_t *map, BlockDriverState **file)
{
    int ret;

    if (!blk_is_inserted(blk)) {
        return -ENOMEDIUM;
    }
    blk_inc_in_flight(blk);
    ret = bdrv_co_block_status(blk_bs(blk), offset, bytes, pnum, map, file);
    blk_dec_in_flight(blk);
    return ret;
}

/* ---------------------------------------------------------------------- */
/* Synchronous wrappers                                                    */

typedef struct BlkSync {
    BlockBackend *blk;
    int type;
    int64_t offset, bytes;
    IOVector *qiov;
    BdrvRequestFlags flags;
    bool exact;
    PreallocMode prealloc;
    int64_t *pnum, *map;
    BlockDriverState **file;
    Error **errp;
    int ret;
} BlkSync;

enum { SYNC_TRUNCATE = 100, SYNC_STATUS };

static void coroutine_fn blk_sync_entry(void *opaque)
{
    BlkSync *s = opaque;

    switch (s->type) {
    case AIO_READ:
        s->ret = blk_co_preadv(s->blk, s->offset, s->bytes, s->qiov, s->flags);
        break;
    case AIO_WRITE:
    case AIO_ZEROES:
        s->ret = blk_co_pwritev(s->blk, s->offset, s->bytes, s->qiov,
                                s->flags);
        break;
    case AIO_DISCARD:
        s->ret = blk_co_pdiscard(s->blk, s->offset, s->bytes);
        break;
    case AIO_FLUSH:
        s->ret = blk_co_flush(s->blk);
        break;
    case SYNC_TRUNCATE:
        s->ret = blk_co_truncate(s->blk, s->offset, s->exact, s->prealloc,
                                 s->flags, s->errp);
        break;
    case SYNC_STATUS:
        s->ret = blk_co_block_status(s->blk, s->offset, s->bytes, s->pnum,
                                     s->map, s->file);
        break;
    default:
        s->ret = -EINVAL;
    }
}

static int blk_sync(BlkSync *s)
{
    coroutine_run_sync(blk_sync_entry, s);
    return s->ret;
}

int blk_pread(BlockBackend *blk, int64_t offset, int64_t bytes, void *buf,
              BdrvRequestFlags flags)
{
    IOVector qiov;
    if (bytes < 0) {
        return -EIO;
    }
    qiov_init_buf(&qiov, buf, bytes);
    return blk_preadv(blk, offset, bytes, &qiov, flags);
}

int blk_pwrite(BlockBackend *blk, int64_t offset, int64_t bytes,
               const void *buf, BdrvRequestFlags flags)
{
    IOVector qiov;
    if (bytes < 0) {
        return -EIO;
    }
    qiov_init_buf(&qiov, (void *)buf, bytes);
    return blk_pwritev(blk, offset, bytes, &qiov, flags);
}

int blk_preadv(BlockBackend *blk, int64_t offset, int64_t bytes,
               IOVector *qiov, BdrvRequestFlags flags)
{
    BlkSync s = { .blk = blk, .type = AIO_READ, .offset = offset,
                  .bytes = bytes, .qiov = qiov, .flags = flags };
    return blk_sync(&s);
}

int blk_pwritev(BlockBackend *blk, int64_t offset, int64_t bytes,
                IOVector *qiov, BdrvRequestFlags flags)
{
    BlkSync s = { .blk = blk, .type = AIO_WRITE, .offset = offset,
                  .bytes = bytes, .qiov = qiov, .flags = flags };
    return blk_sync(&s);
}

int blk_pwrite_zeroes(BlockBackend *blk, int64_t offset, int64_t bytes,
                      BdrvRequestFlags flags)
{
    BlkSync s = { .blk = blk, .type = AIO_ZEROES, .offset = offset,
                  .bytes = bytes, .flags = flags | BDRV_REQ_ZERO_WRITE };
    return blk_sync(&s);
}

int blk_pwrite_compressed(BlockBackend *blk, int64_t offset, int64_t bytes,
                          const void *buf)
{
    return blk_pwrite(blk, offset, bytes, buf, BDRV_REQ_WRITE_COMPRESSED);
}

int blk_pdiscard(BlockBackend *blk, int64_t offset, int64_t bytes)
{
    BlkSync s = { .blk = blk, .type = AIO_DISCARD, .offset = offset,
                  .bytes = bytes };
    return blk_sync(&s);
}

int blk_flush(BlockBackend *blk)
{
    BlkSync s = { .blk = blk, .type = AIO_FLUSH };
    return blk_sync(&s);
}

int blk_truncate(BlockBackend *blk, int64_t offset, bool exact,
                 PreallocMode prealloc, BdrvRequestFlags flags, Error **errp)
{
    BlkSync s = { .blk = blk, .type = SYNC_TRUNCATE, .offset = offset,
                  .exact = exact, .prealloc = prealloc, .flags = flags,
                  .errp = errp };
    return blk_sync(&s);
}

int blk_block_status(BlockBackend *blk, int64_t offset, int64_t bytes,
                     int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    BlkSync s = { .blk = blk, .type = SYNC_STATUS, .offset = offset,
                  .bytes = bytes, .pnum = pnum, .map = map, .file = file };
    return blk_sync(&s);
}

/* ---------------------------------------------------------------------- */
/* Asynchronous I/O                                                        */

static void blk_aio_complete_bh(void *opaque)
{
    BlockAIOCB *acb = opaque;
    BlockBackend *blk = acb->blk;

    acb->cb(acb->opaque, acb->ret);
    blk_dec_in_flight(blk);
    blk_unref(blk);
    g_free(acb);
}

static void coroutine_fn blk_aio_entry(void *opaque)
{
    BlockAIOCB *acb = opaque;
    BlockBackend *blk = acb->blk;

    switch (acb->type) {
    case AIO_READ:
        acb->ret = blk_do_preadv(blk, acb->offset, acb->bytes, acb->qiov,
                                 acb->flags);
        break;
    case AIO_WRITE:
    case AIO_ZEROES:
        acb->ret = blk_do_pwritev(blk, acb->offset, acb->bytes, acb->qiov,
                                  acb->flags);
        break;
    case AIO_DISCARD:
        acb->ret = blk_do_pdiscard(blk, acb->offset, acb->bytes);
        break;
    case AIO_FLUSH:
        acb->ret = blk_do_flush(blk);
        break;
    }
    /* Invariant 2.  A callback run right here (opt-in, as QEMU always
     * does) usually issues the next request, which then joins the current
     * batch of the I/O engine instead of waiting for another event-loop
     * iteration (docs/design/io-path.md).  Off by default: a callback that
     * waits (closes the handle, does synchronous I/O) would wait inside
     * this coroutine, where the completions it waits for cannot run. */
    if (blk->aio_direct_completion && acb->has_returned && blk->refcnt > 1 &&
        qb_get_current_aio_context() == blk->ctx) {
        /* (refcnt > 1: dropping the last reference, which closes the
         * node and drains, is left to the BH, outside any coroutine.) */
        blk_aio_complete_bh(acb);
    } else {
        aio_bh_schedule_oneshot(blk->ctx, blk_aio_complete_bh, acb);
    }
}

static BlockAIOCB *blk_aio_start(BlockBackend *blk, int type, int64_t offset,
                                 int64_t bytes, IOVector *qiov,
                                 BdrvRequestFlags flags,
                                 BlockCompletionFunc *cb, void *opaque)
{
    BlockAIOCB *acb = g_new0(BlockAIOCB, 1);
    Coroutine *co;

    *acb = (BlockAIOCB) {
        .blk = blk, .cb = cb, .opaque = opaque, .type = type,
        .offset = offset, .bytes = bytes, .qiov = qiov, .flags = flags,
    };
    blk_ref(blk);
    blk_inc_in_flight(blk);
    co = coroutine_create(blk_aio_entry, acb);
    if (blk->ctx == qb_get_current_aio_context()) {
        /* The coroutine runs in this thread, here until it first yields,
         * so nothing else reads has_returned meanwhile.  (If it already
         * finished, its BH is pending and acb still valid.) */
        aio_co_enter(blk->ctx, co);
        acb->has_returned = true;
    } else {
        /* Another thread runs it and may already be done with acb: it
         * always completes through the BH. */
        aio_co_enter(blk->ctx, co);
    }
    return acb;
}

BlockAIOCB *blk_aio_preadv(BlockBackend *blk, int64_t offset, IOVector *qiov,
                           BdrvRequestFlags flags, BlockCompletionFunc *cb,
                           void *opaque)
{
    return blk_aio_start(blk, AIO_READ, offset, qiov->size, qiov, flags,
                         cb, opaque);
}

BlockAIOCB *blk_aio_pwritev(BlockBackend *blk, int64_t offset, IOVector *qiov,
                            BdrvRequestFlags flags, BlockCompletionFunc *cb,
                            void *opaque)
{
    return blk_aio_start(blk, AIO_WRITE, offset, qiov->size, qiov, flags,
                         cb, opaque);
}

BlockAIOCB *blk_aio_pwrite_zeroes(BlockBackend *blk, int64_t offset,
                                  int64_t bytes, BdrvRequestFlags flags,
                                  BlockCompletionFunc *cb, void *opaque)
{
    return blk_aio_start(blk, AIO_ZEROES, offset, bytes, NULL,
                         flags | BDRV_REQ_ZERO_WRITE, cb, opaque);
}

BlockAIOCB *blk_aio_pdiscard(BlockBackend *blk, int64_t offset, int64_t bytes,
                             BlockCompletionFunc *cb, void *opaque)
{
    return blk_aio_start(blk, AIO_DISCARD, offset, bytes, NULL, 0, cb, opaque);
}

BlockAIOCB *blk_aio_flush(BlockBackend *blk, BlockCompletionFunc *cb,
                          void *opaque)
{
    return blk_aio_start(blk, AIO_FLUSH, 0, 0, NULL, 0, cb, opaque);
}

/* ---------------------------------------------------------------------- */
/* Drain                                                                   */

void blk_drain(BlockBackend *blk)
{
    BlockDriverState *bs = blk_bs(blk);

    if (bs) {
        bdrv_ref(bs);
        bdrv_drained_begin(bs);
    }
    AIO_WAIT_WHILE(blk->ctx, blk->in_flight > 0);
    if (bs) {
        bdrv_drained_end(bs);
        bdrv_unref(bs);
    }
}

void blk_drain_all(void)
{
    bdrv_drain_all_begin();
    for (GList *l = all_backends; l; l = l->next) {
        BlockBackend *blk = l->data;
        AIO_WAIT_WHILE(blk->ctx, blk->in_flight > 0);
    }
    bdrv_drain_all_end();
}
