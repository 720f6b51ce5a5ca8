/*
 * qcow2 cluster compression: zlib (raw deflate, 4 KiB window, as the format
 * requires) and zstd (one or more frames, read until the output is full).
 * Pure functions on buffers; the driver does the I/O and the allocation.
 */
#include "qcow2.h"
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

static ssize_t zlib_compress(void *dest, size_t dest_size, const void *src,
                             size_t src_size)
{
    z_stream strm;
    ssize_t ret;

    memset(&strm, 0, sizeof(strm));
    if (deflateInit2(&strm, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        return -EIO;
    }
    strm.avail_in = src_size;
    strm.next_in = (Bytef *)src;
    strm.avail_out = dest_size;
    strm.next_out = dest;
    ret = deflate(&strm, Z_FINISH);
    if (ret == Z_STREAM_END) {
        ret = dest_size - strm.avail_out;
    } else {
        ret = ret == Z_OK || ret == Z_BUF_ERROR ? -ENOMEM : -EIO;
    }
    deflateEnd(&strm);
    return ret;
}

static int zlib_decompress(void *dest, size_t dest_size, const void *src,
                           size_t src_size)
{
    z_stream strm;
    int ret;

    memset(&strm, 0, sizeof(strm));
    strm.avail_in = src_size;
    strm.next_in = (Bytef *)src;
    strm.avail_out = dest_size;
    strm.next_out = dest;
    if (inflateInit2(&strm, -12) != Z_OK) {
        return -EIO;
    }
    ret = inflate(&strm, Z_FINISH);
    /* The stored size is rounded up to sectors, so trailing garbage is
     * normal: what matters is that the output buffer was filled. */
    if ((ret == Z_STREAM_END || ret == Z_BUF_ERROR) && strm.avail_out == 0) {
        ret = 0;
    } else {
        ret = -EIO;
    }
    inflateEnd(&strm);
    return ret;
}

static ssize_t zstd_compress(void *dest, size_t dest_size, const void *src,
                             size_t src_size)
{
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ZSTD_inBuffer input = { src, src_size, 0 };
    ZSTD_outBuffer output = { dest, dest_size, 0 };
    size_t r;

    if (!cctx) {
        return -EIO;
    }
    do {
        r = ZSTD_compressStream2(cctx, &output, &input, ZSTD_e_end);
    } while (r && !ZSTD_isError(r) && output.pos < output.size);
    ZSTD_freeCCtx(cctx);
    if (ZSTD_isError(r)) {
        return ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall ?
               -ENOMEM : -EIO;
    }
    if (r) {
        return -ENOMEM;   /* output full before the frame ended */
    }
    return output.pos;
}

static int zstd_decompress(void *dest, size_t dest_size, const void *src,
                           size_t src_size)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    ZSTD_inBuffer input = { src, src_size, 0 };
    ZSTD_outBuffer output = { dest, dest_size, 0 };
    int ret = 0;

    if (!dctx) {
        return -EIO;
    }
    /* Bounded: each round either consumes input, produces output or fails. */
    while (output.pos < output.size) {
        size_t in_before = input.pos, out_before = output.pos;
        size_t r = ZSTD_decompressStream(dctx, &output, &input);
        if (ZSTD_isError(r)) {
            ret = -EIO;
            break;
        }
        if (input.pos == in_before && output.pos == out_before) {
            ret = -EIO;   /* input exhausted before the cluster was full */
            break;
        }
    }
    ZSTD_freeDCtx(dctx);
    return ret;
}

ssize_t qcow2_compress(int type, void *dest, size_t dest_size,
                       const void *src, size_t src_size)
{
    switch (type) {
    case QCOW2_COMPRESSION_ZLIB:
        return zlib_compress(dest, dest_size, src, src_size);
    case QCOW2_COMPRESSION_ZSTD:
        return zstd_compress(dest, dest_size, src, src_size);
    default:
        return -ENOTSUP;
    }
}

int qcow2_decompress(int type, void *dest, size_t dest_size,
                     const void *src, size_t src_size)
{
    switch (type) {
    case QCOW2_COMPRESSION_ZLIB:
        return zlib_decompress(dest, dest_size, src, src_size);
    case QCOW2_COMPRESSION_ZSTD:
        return zstd_decompress(dest, dest_size, src, src_size);
    default:
        return -ENOTSUP;
    }
}
