/*
 * Thread pool for blocking calls (pread/pwrite on buffered files, fsync,
 * fallocate, ioctl...).  Workers are created on demand up to a maximum and
 * exit after being idle; completions come back to the submitting AioContext
 * through an eventfd/BH, never by calling across threads.
 */
#ifndef UTIL_THREAD_POOL_H
#define UTIL_THREAD_POOL_H

#include "util/aio.h"

typedef int ThreadPoolFunc(void *opaque);
typedef void ThreadPoolCompletion(void *opaque, int ret);

ThreadPool *thread_pool_new(AioContext *ctx);
void thread_pool_free(ThreadPool *pool);
/* Max worker threads (default 64). */
void thread_pool_set_max_threads(ThreadPool *pool, int max);

/* Run func(arg) in a worker; yield until it returns; return its value. */
int coroutine_fn thread_pool_submit_co(ThreadPool *pool, ThreadPoolFunc *func,
                                       void *arg);
/* Run func(arg) in a worker; call cb(opaque, ret) in pool's AioContext. */
void thread_pool_submit_aio(ThreadPool *pool, ThreadPoolFunc *func, void *arg,
                            ThreadPoolCompletion *cb, void *opaque);

#endif
