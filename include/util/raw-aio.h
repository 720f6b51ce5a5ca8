/*
 * Asynchronous I/O engines for file descriptors: Linux native AIO (libaio,
 * needs O_DIRECT to be truly asynchronous) and io_uring (liburing; works for
 * buffered and O_DIRECT files).  Each engine belongs to one AioContext and
 * batches submissions made in the same event-loop iteration.
 */
#ifndef UTIL_RAW_AIO_H
#define UTIL_RAW_AIO_H

#include "util/aio.h"
#include "util/iov.h"

typedef enum {
    QB_AIO_READ = 1,
    QB_AIO_WRITE,
    QB_AIO_FLUSH,      /* fdatasync */
} QBAioType;

LinuxAioState *laio_init(AioContext *ctx, Error **errp);
void laio_cleanup(LinuxAioState *s);
/* Returns bytes transferred == qiov->size as 0, short/failed as -errno.
 * (Short reads are zero-filled by the caller, not here: returns the count
 * in *transferred if non-NULL.)
 * Precisely: *transferred (if non-NULL) receives the byte count.  A short
 * read (end of file) returns 0; if transferred is NULL the tail of qiov is
 * zero-filled here instead.  A short write returns -ENOSPC.  QB_AIO_FLUSH
 * ignores offset and qiov (may be NULL). */
int coroutine_fn laio_co_submit(LinuxAioState *s, int fd, uint64_t offset,
                                IOVector *qiov, QBAioType type,
                                size_t *transferred);

bool luring_available(void);
LuringState *luring_init(AioContext *ctx, Error **errp);
void luring_cleanup(LuringState *s);
int coroutine_fn luring_co_submit(LuringState *s, int fd, uint64_t offset,
                                  IOVector *qiov, QBAioType type,
                                  size_t *transferred);

#endif
