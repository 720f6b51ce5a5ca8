/*
 * IOVector: a scatter/gather list of guest buffers, with its total size.
 *
 * Invariant: size == sum of iov[i].iov_len for i < niov.  An IOVector either
 * owns its iov array (qiov_init: grows with qiov_add) or borrows it
 * (qiov_init_external / qiov_init_buf / qiov_init_slice: never grown).
 * Buffers themselves are never owned.
 */
#ifndef UTIL_IOV_H
#define UTIL_IOV_H

#include "util/common.h"

typedef struct IOVector {
    struct iovec *iov;
    int niov;
    int nalloc;        /* -1 when iov is borrowed */
    size_t size;
    struct iovec local_iov;  /* storage for qiov_init_buf */
} IOVector;

void qiov_init(IOVector *qiov, int alloc_hint);
void qiov_init_external(IOVector *qiov, struct iovec *iov, int niov);
void qiov_init_buf(IOVector *qiov, void *buf, size_t len);
/* dst describes bytes [offset, offset+len) of src; needs qiov_destroy. */
void qiov_init_slice(IOVector *dst, IOVector *src, size_t offset, size_t len);
void qiov_add(IOVector *qiov, void *base, size_t len);
/* Append bytes [offset, offset+len) of src to dst (dst must own its array). */
void qiov_concat(IOVector *dst, IOVector *src, size_t offset, size_t len);
void qiov_reset(IOVector *qiov);
void qiov_destroy(IOVector *qiov);

/* Copy between an IOVector and a flat buffer; return bytes copied. */
size_t qiov_to_buf(const IOVector *qiov, size_t offset, void *buf, size_t bytes);
size_t qiov_from_buf(IOVector *qiov, size_t offset, const void *buf, size_t bytes);
size_t qiov_memset(IOVector *qiov, size_t offset, int c, size_t bytes);
/* True if bytes [offset, offset+bytes) are all zero. */
bool qiov_is_zero(const IOVector *qiov, size_t offset, size_t bytes);
/* True if every buffer and length is a multiple of align. */
bool qiov_is_aligned(const IOVector *qiov, size_t align);
/* Compare two vectors of equal size; return offset of first difference or -1. */
ssize_t qiov_compare(const IOVector *a, const IOVector *b);

/* Plain struct iovec array helpers. */
size_t iov_size(const struct iovec *iov, unsigned niov);
bool buffer_is_zero(const void *buf, size_t len);

#endif
