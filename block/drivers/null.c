/*
 * The null-co and null-aio protocol drivers: a device of a given size that
 * stores nothing.  Writes succeed and are forgotten; reads leave the
 * caller's buffer untouched unless read-zeroes=on.  They exist for tests
 * and benchmarks of the layers above (no I/O cost below the block core).
 * null-co completes requests inline in the coroutine; null-aio completes
 * them from the event loop, like a real asynchronous backend.  An optional
 * latency-ns delays every request.
 *
 * Options (QEMU's): filename ("null-co://" / "null-aio://" only), size
 * (default 1 GiB), latency-ns (default 0), read-zeroes (default off).
 */
#include "block/block-int.h"
#include "block/options.h"

typedef struct BDRVNullState {
    int64_t length;
    int64_t latency_ns;
    bool read_zeroes;
    bool aio;                 /* null-aio: complete via the event loop */
} BDRVNullState;

static void null_parse_filename(const char *filename, json_t *options,
                                Error **errp, const char *proto)
{
    g_autofree char *want = g_strdup_printf("%s://", proto);
    /* QEMU accepts exactly "null-co://" (and the aio twin). */
    if (strcmp(filename, want) != 0) {
        error_setg(errp, "The only allowed filename for this driver is '%s'",
                   want);
    }
}

static void null_co_parse_filename(const char *filename, json_t *options,
                                   Error **errp)
{
    null_parse_filename(filename, options, errp, "null-co");
}

static void null_aio_parse_filename(const char *filename, json_t *options,
                                    Error **errp)
{
    null_parse_filename(filename, options, errp, "null-aio");
}

static int null_open_common(BlockDriverState *bs, json_t *options, bool aio,
                            Error **errp)
{
    BDRVNullState *s = bs->opaque;
    Error *local_err = NULL;
    g_autofree char *filename = qb_opt_take_str(options, "filename");

    if (filename && !g_str_has_prefix(filename, aio ? "null-aio://"
                                                    : "null-co://")) {
        error_setg(errp, "The only allowed filename for this driver is '%s'",
                   aio ? "null-aio://" : "null-co://");
        return -EINVAL;
    }
    s->aio = aio;
    s->length = qb_opt_take_size(options, "size", 1 * GiB, &local_err);
    if (local_err) {
        error_propagate(errp, local_err);
        return -EINVAL;
    }
    s->latency_ns = qb_opt_take_int(options, "latency-ns", 0, &local_err);
    if (local_err) {
        error_propagate(errp, local_err);
        return -EINVAL;
    }
    if (s->latency_ns < 0) {
        error_setg(errp, "latency-ns is invalid");
        return -EINVAL;
    }
    s->read_zeroes = qb_opt_take_bool(options, "read-zeroes", false,
                                      &local_err);
    if (local_err) {
        error_propagate(errp, local_err);
        return -EINVAL;
    }
    if (s->length < 0 || s->length > BDRV_MAX_LENGTH) {
        error_setg(errp, "Invalid size");
        return -EINVAL;
    }
    bs->total_sectors = QB_DIV_ROUND_UP(s->length, BDRV_SECTOR_SIZE);
    bs->supported_write_flags = BDRV_REQ_FUA;
    bs->supported_zero_flags = BDRV_REQ_FUA | BDRV_REQ_MAY_UNMAP |
                               BDRV_REQ_NO_FALLBACK;
    snprintf(bs->filename, sizeof(bs->filename), "%s://",
             aio ? "null-aio" : "null-co");
    return 0;
}

static int null_co_open(BlockDriverState *bs, json_t *options, int flags,
                        Error **errp)
{
    return null_open_common(bs, options, false, errp);
}

static int null_aio_open(BlockDriverState *bs, json_t *options, int flags,
                         Error **errp)
{
    return null_open_common(bs, options, true, errp);
}

/* The common tail of every request: the configured delay, and for
 * null-aio a trip through the event loop so completion is asynchronous. */
static void coroutine_fn null_complete(BlockDriverState *bs)
{
    BDRVNullState *s = bs->opaque;

    if (s->latency_ns) {
        co_sleep_ns(s->latency_ns);
    } else if (s->aio) {
        AioContext *ctx = bs->aio_context ? bs->aio_context
                                          : qb_get_aio_context();
        aio_co_schedule(ctx, coroutine_self());
        coroutine_yield();
    }
}

static int coroutine_fn null_co_preadv(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, IOVector *qiov,
                                       BdrvRequestFlags flags)
{
    BDRVNullState *s = bs->opaque;

    if (s->read_zeroes) {
        qiov_memset(qiov, 0, 0, bytes);
    }
    null_complete(bs);
    return 0;
}

static int coroutine_fn null_co_pwritev(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes, IOVector *qiov,
                                        BdrvRequestFlags flags)
{
    null_complete(bs);
    return 0;
}

static int coroutine_fn null_co_pwrite_zeroes(BlockDriverState *bs,
                                              int64_t offset, int64_t bytes,
                                              BdrvRequestFlags flags)
{
    null_complete(bs);
    return 0;
}

static int coroutine_fn null_co_pdiscard(BlockDriverState *bs, int64_t offset,
                                         int64_t bytes)
{
    null_complete(bs);
    return 0;
}

static int coroutine_fn null_co_flush(BlockDriverState *bs)
{
    null_complete(bs);
    return 0;
}

/* Nothing is ever allocated; with read-zeroes the data is known to be
 * zero (which makes it "allocated" for the core, as in QEMU). */
static int coroutine_fn null_co_block_status(BlockDriverState *bs,
                                             bool want_zero, int64_t offset,
                                             int64_t bytes, int64_t *pnum,
                                             int64_t *map,
                                             BlockDriverState **file)
{
    BDRVNullState *s = bs->opaque;

    *pnum = bytes;
    *map = offset;
    *file = bs;
    return BDRV_BLOCK_OFFSET_VALID | (s->read_zeroes ? BDRV_BLOCK_ZERO : 0);
}

static int64_t null_getlength(BlockDriverState *bs)
{
    BDRVNullState *s = bs->opaque;
    return s->length;
}

static int64_t null_get_allocated_file_size(BlockDriverState *bs)
{
    return 0;
}

static const char *const null_strong_runtime_opts[] = {
    "size", "read-zeroes", NULL
};

BlockDriver bdrv_null_co = {
    .format_name = "null-co",
    .protocol_name = "null-co",
    .instance_size = sizeof(BDRVNullState),
    .bdrv_parse_filename = null_co_parse_filename,
    .bdrv_open = null_co_open,
    .bdrv_co_preadv = null_co_preadv,
    .bdrv_co_pwritev = null_co_pwritev,
    .bdrv_co_pwrite_zeroes = null_co_pwrite_zeroes,
    .bdrv_co_pdiscard = null_co_pdiscard,
    .bdrv_co_flush_to_disk = null_co_flush,
    .bdrv_co_block_status = null_co_block_status,
    .bdrv_getlength = null_getlength,
    .bdrv_get_allocated_file_size = null_get_allocated_file_size,
    .strong_runtime_opts = null_strong_runtime_opts,
    .supported_write_flags = BDRV_REQ_FUA,
    .supported_zero_flags = BDRV_REQ_FUA | BDRV_REQ_MAY_UNMAP |
                            BDRV_REQ_NO_FALLBACK,
};

BlockDriver bdrv_null_aio = {
    .format_name = "null-aio",
    .protocol_name = "null-aio",
    .instance_size = sizeof(BDRVNullState),
    .bdrv_parse_filename = null_aio_parse_filename,
    .bdrv_open = null_aio_open,
    .bdrv_co_preadv = null_co_preadv,
    .bdrv_co_pwritev = null_co_pwritev,
    .bdrv_co_pwrite_zeroes = null_co_pwrite_zeroes,
    .bdrv_co_pdiscard = null_co_pdiscard,
    .bdrv_co_flush_to_disk = null_co_flush,
    .bdrv_co_block_status = null_co_block_status,
    .bdrv_getlength = null_getlength,
    .bdrv_get_allocated_file_size = null_get_allocated_file_size,
    .strong_runtime_opts = null_strong_runtime_opts,
    .supported_write_flags = BDRV_REQ_FUA,
    .supported_zero_flags = BDRV_REQ_FUA | BDRV_REQ_MAY_UNMAP |
                            BDRV_REQ_NO_FALLBACK,
};
