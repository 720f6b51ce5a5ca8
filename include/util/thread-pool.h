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

/*
 * Lanes: requests that run one at a time in submission order, several at
 * once through a batch function (see util/thread-pool.c).  batch(opaque,
 * args, rets, n) runs in a worker and sets rets[i] for each args[i].
 * Each request completes like a thread_pool_submit_* one.  Freeing a lane
 * blocks until its queued requests have run; their callbacks come later,
 * from the pool's AioContext.
 */
typedef struct ThreadPoolLane ThreadPoolLane;
typedef void ThreadPoolBatchFunc(void *opaque, void **args, int *rets, int n);

ThreadPoolLane *thread_pool_lane_new(ThreadPool *pool,
                                     ThreadPoolBatchFunc *batch,
                                     void *opaque);
void thread_pool_lane_free(ThreadPoolLane *lane);
ThreadPool *thread_pool_lane_pool(ThreadPoolLane *lane);
void thread_pool_lane_submit_aio(ThreadPoolLane *lane, void *arg,
                                 ThreadPoolCompletion *cb, void *opaque);
int coroutine_fn thread_pool_lane_submit_co(ThreadPoolLane *lane, void *arg);

#endif
