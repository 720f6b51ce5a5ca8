/*
 * The raw format driver: presents its file child's bytes unchanged, or a
 * window [offset, offset+size) of them.  Without offset/size the child is
 * FILTERED|PRIMARY (raw is then transparent to permissions and block
 * status); with either option it is DATA|PRIMARY.  It is the probe's
 * fallback (score 1).  Requests past a fixed size window fail with
 * -ENOSPC; block status is passed through to the file (BDRV_BLOCK_RAW).
 */
#include "block/block-int.h"
#include "block/options.h"
#include "block/graph.h"

typedef struct BDRVRawState {
    uint64_t offset;
    uint64_t size;
    bool has_size;
} BDRVRawState;

/* Pending reopen values, applied at commit. */
typedef struct RawReopen {
    uint64_t offset, size;
    bool has_size;
} RawReopen;

static int raw_read_options(json_t *options, uint64_t *offset, uint64_t *size,
                            bool *has_size, Error **errp)
{
    Error *local_err = NULL;

    *offset = qb_opt_take_size(options, "offset", 0, &local_err);
    if (local_err) {
        error_propagate(errp, local_err);
        return -EINVAL;
    }
    *has_size = qb_opt_has(options, "size");
    *size = qb_opt_take_size(options, "size", 0, &local_err);
    if (local_err) {
        error_propagate(errp, local_err);
        return -EINVAL;
    }
    return 0;
}

/* Check the window against the file's real size (texts as QEMU's). */
static int raw_apply_options(BlockDriverState *bs, uint64_t offset,
                             uint64_t *size, bool has_size, Error **errp)
{
    int64_t real_size = bdrv_getlength(bs->file->bs);

    if (real_size < 0) {
        error_setg_errno(errp, -real_size, "Could not get image size");
        return real_size;
    }
    if (offset > (uint64_t)real_size) {
        error_setg(errp, "Offset (%" PRIu64 ") cannot be greater than size "
                   "of the containing file (%" PRId64 ")", offset, real_size);
        return -EINVAL;
    }
    if (has_size && (uint64_t)real_size - offset < *size) {
        error_setg(errp, "The sum of offset (%" PRIu64 ") and size "
                   "(%" PRIu64 ") has to be smaller or equal to the "
                   " actual size of the containing file (%" PRId64 ")",
                   offset, *size, real_size);
        return -EINVAL;
    }
    if (has_size && *size % BDRV_SECTOR_SIZE) {
        error_setg(errp, "Specified size is not multiple of %llu",
                   BDRV_SECTOR_SIZE);
        return -EINVAL;
    }
    if (!has_size) {
        *size = real_size - offset;
    }
    return 0;
}

static int raw_open(BlockDriverState *bs, json_t *options, int flags,
                    Error **errp)
{
    BDRVRawState *s = bs->opaque;
    BdrvChildRole role;
    int ret;

    ret = raw_read_options(options, &s->offset, &s->size, &s->has_size, errp);
    if (ret < 0) {
        return ret;
    }
    role = (s->offset || s->has_size) ? BDRV_CHILD_DATA | BDRV_CHILD_PRIMARY
                                      : BDRV_CHILD_FILTERED |
                                        BDRV_CHILD_PRIMARY;
    if (!bs->file) {
        bs->file = bdrv_open_child(NULL, options, "file", bs, &child_of_bds,
                                   role, false, errp);
        if (!bs->file) {
            return -EINVAL;
        }
    }
    ret = raw_apply_options(bs, s->offset, &s->size, s->has_size, errp);
    if (ret < 0) {
        return ret;
    }
    bs->supported_write_flags = BDRV_REQ_WRITE_UNCHANGED |
        (BDRV_REQ_FUA & bs->file->bs->supported_write_flags);
    bs->supported_zero_flags = BDRV_REQ_WRITE_UNCHANGED |
        ((BDRV_REQ_FUA | BDRV_REQ_MAY_UNMAP | BDRV_REQ_NO_FALLBACK) &
         (bs->file->bs->supported_zero_flags |
          (bs->file->bs->drv ? bs->file->bs->drv->supported_zero_flags : 0)));
    bs->total_sectors = QB_DIV_ROUND_UP(s->size, BDRV_SECTOR_SIZE);
    if (bs->probed && !bdrv_is_read_only(bs)) {
        /* Same words as QEMU: a guest could write another format's header
         * into block 0 and have the image probed as that next time. */
        fprintf(stderr,
                "WARNING: Image format was not specified for '%s' and probing "
                "guessed raw.\n"
                "         Automatically detecting the format is dangerous for "
                "raw images, write operations on block 0 will be restricted.\n"
                "         Specify the 'raw' format explicitly to remove the "
                "restrictions.\n", bs->file->bs->filename);
    }
    return 0;
}

/* A probed raw image is written in whole 512-byte blocks, so the block-0
 * check below always sees the complete first sector. */
static void raw_refresh_limits(BlockDriverState *bs, Error **errp)
{
    if (bs->probed) {
        bs->bl.request_alignment = MAX(bs->bl.request_alignment,
                                       BDRV_SECTOR_SIZE);
    }
}

/*
 * Refuse a write that would make block 0 of a probed raw image look like
 * another format (which the next probing open would then trust).
 */
static int raw_check_block0(BlockDriverState *bs, int64_t offset,
                            int64_t bytes, IOVector *qiov)
{
    uint8_t buf[BDRV_SECTOR_SIZE];
    BlockDriver *drv;

    if (!bs->probed || offset >= BDRV_SECTOR_SIZE || !bytes) {
        return 0;
    }
    assert(offset == 0 && bytes >= BDRV_SECTOR_SIZE);
    qiov_to_buf(qiov, 0, buf, sizeof(buf));
    drv = bdrv_probe_best(buf, sizeof(buf), NULL);
    return drv && drv != bs->drv ? -EPERM : 0;
}

static void raw_close(BlockDriverState *bs)
{
}

static int raw_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    return 1;   /* anything is raw, but everything else wins */
}

/* Translate into the child's range; a fixed window refuses what is past
 * its end (the core lets writes grow a node, a window cannot grow). */
static int raw_adjust(BlockDriverState *bs, int64_t *offset, int64_t bytes)
{
    BDRVRawState *s = bs->opaque;

    if (s->has_size && ((uint64_t)*offset > s->size ||
                        (uint64_t)bytes > s->size - *offset)) {
        return -ENOSPC;
    }
    if (*offset > INT64_MAX - (int64_t)s->offset) {
        return -EINVAL;
    }
    *offset += s->offset;
    return 0;
}

static int coroutine_fn raw_co_preadv(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, IOVector *qiov,
                                      BdrvRequestFlags flags)
{
    int ret = raw_adjust(bs, &offset, bytes);
    if (ret < 0) {
        return ret;
    }
    /* QEMU's raw raises these on its child; blkdebug rules key on them. */
    BLKDBG_EVENT(bs->file, BLKDBG_EV_READ_AIO);
    return bdrv_co_preadv(bs->file, offset, bytes, qiov, flags);
}

static int coroutine_fn raw_co_pwritev(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, IOVector *qiov,
                                       BdrvRequestFlags flags)
{
    int ret = raw_check_block0(bs, offset, bytes, qiov);
    if (ret < 0) {
        return ret;
    }
    ret = raw_adjust(bs, &offset, bytes);
    if (ret < 0) {
        return ret;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_EV_WRITE_AIO);
    return bdrv_co_pwritev(bs->file, offset, bytes, qiov, flags);
}

static int coroutine_fn raw_co_pwrite_zeroes(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes,
                                             BdrvRequestFlags flags)
{
    int ret = raw_adjust(bs, &offset, bytes);
    if (ret < 0) {
        return ret;
    }
    return bdrv_co_pwrite_zeroes(bs->file, offset, bytes, flags);
}

static int coroutine_fn raw_co_pdiscard(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes)
{
    int ret = raw_adjust(bs, &offset, bytes);
    if (ret < 0) {
        return ret;
    }
    return bdrv_co_pdiscard(bs->file, offset, bytes);
}

static int coroutine_fn raw_co_block_status(BlockDriverState *bs,
                                            bool want_zero, int64_t offset,
                                            int64_t bytes, int64_t *pnum,
                                            int64_t *map,
                                            BlockDriverState **file)
{
    BDRVRawState *s = bs->opaque;

    *pnum = bytes;
    *file = bs->file->bs;
    *map = offset + s->offset;
    return BDRV_BLOCK_RAW | BDRV_BLOCK_OFFSET_VALID;
}

static int64_t raw_getlength(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;
    int64_t len;

    if (s->has_size) {
        return s->size;
    }
    /* Follow the file (it may have grown or shrunk underneath). */
    len = bdrv_getlength(bs->file->bs);
    if (len < 0) {
        return len;
    }
    s->size = len > (int64_t)s->offset ? len - s->offset : 0;
    return s->size;
}

static int64_t raw_get_allocated_file_size(BlockDriverState *bs)
{
    return bdrv_get_allocated_file_size(bs->file->bs);
}

static int coroutine_fn raw_co_truncate(BlockDriverState *bs, int64_t offset,
                                        bool exact, PreallocMode prealloc,
                                        BdrvRequestFlags flags, Error **errp)
{
    BDRVRawState *s = bs->opaque;

    if (s->has_size) {
        error_setg(errp, "Cannot resize fixed-size raw disks");
        return -ENOTSUP;
    }
    if (INT64_MAX - offset < (int64_t)s->offset) {
        error_setg(errp, "Disk size too large for the chosen offset");
        return -EINVAL;
    }
    s->size = offset;
    return bdrv_co_truncate(bs->file, offset + s->offset, exact, prealloc,
                            flags, errp);
}

static int raw_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    memset(bdi, 0, sizeof(*bdi));
    return 0;
}

/* Default rules, but WRITE/RESIZE (which the storage rules add for a DATA
 * child) only when our own parents want them. */
static void raw_child_perm(BlockDriverState *bs, BdrvChild *c,
                           BdrvChildRole role, BlockReopenQueue *reopen_queue,
                           uint64_t perm, uint64_t shared,
                           uint64_t *nperm, uint64_t *nshared)
{
    bdrv_default_perms(bs, c, role, reopen_queue, perm, shared, nperm,
                       nshared);
    *nperm &= perm | ~(uint64_t)(BLK_PERM_WRITE | BLK_PERM_RESIZE);
}

static int raw_reopen_prepare(BDRVReopenState *state, BlockReopenQueue *queue,
                              Error **errp)
{
    BlockDriverState *bs = state->bs;
    RawReopen *r = g_new0(RawReopen, 1);
    int ret;

    ret = raw_read_options(state->options, &r->offset, &r->size,
                           &r->has_size, errp);
    if (ret == 0 && bs->file) {
        ret = raw_apply_options(bs, r->offset, &r->size, r->has_size, errp);
    }
    if (ret < 0) {
        g_free(r);
        return ret;
    }
    state->opaque = r;
    return 0;
}

static void raw_reopen_commit(BDRVReopenState *state)
{
    BDRVRawState *s = state->bs->opaque;
    RawReopen *r = state->opaque;

    s->offset = r->offset;
    s->size = r->size;
    s->has_size = r->has_size;
    g_free(r);
    state->opaque = NULL;
}

static void raw_reopen_abort(BDRVReopenState *state)
{
    g_free(state->opaque);
    state->opaque = NULL;
}

static const char *const raw_mutable_opts[] = { "offset", "size", NULL };
static const char *const raw_strong_runtime_opts[] = {
    "offset", "size", NULL
};

BlockDriver bdrv_raw = {
    .format_name = "raw",
    .instance_size = sizeof(BDRVRawState),
    .is_format = true,
    .bdrv_probe = raw_probe,
    .bdrv_open = raw_open,
    .bdrv_close = raw_close,
    .bdrv_reopen_prepare = raw_reopen_prepare,
    .bdrv_reopen_commit = raw_reopen_commit,
    .bdrv_reopen_abort = raw_reopen_abort,
    .bdrv_co_preadv = raw_co_preadv,
    .bdrv_co_pwritev = raw_co_pwritev,
    .bdrv_co_pwrite_zeroes = raw_co_pwrite_zeroes,
    .bdrv_refresh_limits = raw_refresh_limits,
    .bdrv_co_pdiscard = raw_co_pdiscard,
    .bdrv_co_block_status = raw_co_block_status,
    .bdrv_co_truncate = raw_co_truncate,
    .bdrv_getlength = raw_getlength,
    .bdrv_get_allocated_file_size = raw_get_allocated_file_size,
    .bdrv_get_info = raw_get_info,
    .bdrv_child_perm = raw_child_perm,
    .mutable_opts = raw_mutable_opts,
    .strong_runtime_opts = raw_strong_runtime_opts,
    .supported_write_flags = BDRV_REQ_WRITE_UNCHANGED,
    .supported_zero_flags = BDRV_REQ_WRITE_UNCHANGED,
};
