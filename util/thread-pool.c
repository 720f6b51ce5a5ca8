/*
 * Thread pool for blocking calls.  Requests are queued under a mutex; idle
 * workers wait on a condition variable; a new worker is started when a
 * request arrives and no worker is idle (up to max_threads).  Workers are
 * started one at a time: while one is starting, later requests wait for it,
 * and it starts the next one only after taking its own request.  So of two
 * requests submitted back to back to a pool with no idle worker, the first
 * is running before the second can start (as with QEMU's pool, whose
 * observable ordering tests such as iotest 004 rely on), and a burst does
 * not create more threads than it needs.  A worker that stays idle for
 * WORKER_IDLE_US exits.  Finished requests go onto a
 * lock-free completion stack and a BH of the pool's AioContext runs their
 * callbacks there, so callbacks never run in a worker thread.
 *
 * Why lock-free completions: at queue depth 32 every worker finishing a
 * request used to take pool->lock and then ctx->bh_lock; with more workers
 * than cores that contention cost ~10 futex calls per request (strace of
 * `bench -w -t writeback -i threads -d 32`), more than the write itself.
 * Now a worker pushes with one compare-and-swap and schedules the BH only
 * when it made the stack non-empty; the BH takes the whole stack with one
 * exchange and runs it in submission-completion order.
 *
 * Invariants (all under pool->lock):
 * 1. idle_threads <= cur_threads <= max(max_threads, cur at last lowering).
 * 2. A request is in exactly one of: 'queue' (not started), running in a
 *    worker, the 'done' stack (waiting for the completion BH), or freed.
 * 5. (lock-free) The completion BH is scheduled whenever 'done' is
 *    non-empty: whoever pushes onto an empty stack schedules it, and the BH
 *    empties the stack atomically before running callbacks.
 * 3. outstanding counts requests submitted and not yet completed; the pool
 *    may only be freed when it is zero.
 * 4. starting_threads (0 or 1) counts workers created that have not yet
 *    looked at the queue; they are included in cur_threads.
 */
#include "util/thread-pool.h"
#include "util/coroutine-int.h"

#define WORKER_IDLE_US   (10 * G_USEC_PER_SEC)
#define DEFAULT_MAX_THREADS 64

typedef struct ThreadPoolRequest {
    struct ThreadPoolRequest *next;   /* link in the 'done' stack */
    ThreadPoolFunc *func;
    void *arg;
    ThreadPoolCompletion *cb;
    void *opaque;
    int ret;
} ThreadPoolRequest;

struct ThreadPool {
    AioContext *ctx;
    QBBH *completion_bh;

    GMutex lock;
    GCond request_cond;    /* signalled when work arrives or on shutdown */
    GCond exit_cond;       /* signalled when a worker exits */
    GQueue queue;          /* ThreadPoolRequest*, not started */
    ThreadPoolRequest *done;   /* finished, newest first; atomic, no lock */
    int cur_threads;
    int idle_threads;
    int starting_threads;
    int max_threads;
    int outstanding;
    bool stopping;
};

static gpointer worker_thread(gpointer opaque);

/* Start a worker if queued requests outnumber the workers that will take
 * them and none is starting already.  Called with pool->lock held. */
static void maybe_spawn_worker(ThreadPool *pool)
{
    GError *err = NULL;
    GThread *t;

    if (pool->starting_threads ||
        pool->idle_threads >= (int)pool->queue.length ||
        pool->cur_threads >= pool->max_threads) {
        return;
    }
    t = g_thread_try_new("qb-worker", worker_thread, pool, &err);
    if (t) {
        pool->cur_threads++;
        pool->starting_threads++;
        g_thread_unref(t);   /* workers are detached; exit_cond tracks them */
    } else if (pool->cur_threads == 0) {
        g_error("cannot create thread pool worker: %s", err->message);
    } else {
        g_error_free(err);   /* the existing workers will get to it */
    }
}

/* Hand a finished request to the completion BH (any thread, no lock). */
static void push_done(ThreadPool *pool, ThreadPoolRequest *req)
{
    ThreadPoolRequest *head = __atomic_load_n(&pool->done, __ATOMIC_RELAXED);

    do {
        req->next = head;
    } while (!__atomic_compare_exchange_n(&pool->done, &head, req, true,
                                          __ATOMIC_RELEASE, __ATOMIC_RELAXED));
    if (!head) {
        qb_bh_schedule(pool->completion_bh);
    }
}

static gpointer worker_thread(gpointer opaque)
{
    ThreadPool *pool = opaque;
    bool starting = true;

    g_mutex_lock(&pool->lock);
    for (;;) {
        ThreadPoolRequest *req;

        if (starting && (g_queue_is_empty(&pool->queue) || pool->stopping)) {
            /* Nothing for us after all: no longer starting, so another
             * worker may be started for later requests. */
            starting = false;
            pool->starting_threads--;
        }
        while (g_queue_is_empty(&pool->queue) && !pool->stopping) {
            gint64 deadline = g_get_monotonic_time() + WORKER_IDLE_US;
            pool->idle_threads++;
            bool woken = g_cond_wait_until(&pool->request_cond, &pool->lock,
                                           deadline);
            pool->idle_threads--;
            if (!woken && g_queue_is_empty(&pool->queue)) {
                goto out;
            }
        }
        req = g_queue_pop_head(&pool->queue);
        if (!req) {
            break;   /* stopping and nothing left */
        }
        if (starting) {
            starting = false;
            pool->starting_threads--;
        }
        /* Our request is taken: start the next worker if others wait. */
        maybe_spawn_worker(pool);
        g_mutex_unlock(&pool->lock);

        req->ret = req->func(req->arg);
        push_done(pool, req);

        g_mutex_lock(&pool->lock);
        /* More threads than allowed after a lowering of the maximum. */
        if (pool->cur_threads > pool->max_threads) {
            break;
        }
    }
out:
    pool->cur_threads--;
    g_cond_broadcast(&pool->exit_cond);
    g_mutex_unlock(&pool->lock);
    return NULL;
}

static void completion_bh(void *opaque)
{
    ThreadPool *pool = opaque;
    ThreadPoolRequest *req = __atomic_exchange_n(&pool->done, NULL,
                                                 __ATOMIC_ACQUIRE);
    ThreadPoolRequest *fifo = NULL;

    /* The stack is newest first; run callbacks in completion order. */
    while (req) {
        ThreadPoolRequest *next = req->next;
        req->next = fifo;
        fifo = req;
        req = next;
    }
    while ((req = fifo)) {
        fifo = req->next;
        pool->outstanding--;
        req->cb(req->opaque, req->ret);
        g_free(req);
    }
}

ThreadPool *thread_pool_new(AioContext *ctx)
{
    ThreadPool *pool = g_new0(ThreadPool, 1);

    pool->ctx = ctx;
    pool->completion_bh = aio_bh_new(ctx, completion_bh, pool);
    g_mutex_init(&pool->lock);
    g_cond_init(&pool->request_cond);
    g_cond_init(&pool->exit_cond);
    g_queue_init(&pool->queue);
    pool->max_threads = DEFAULT_MAX_THREADS;
    return pool;
}

void thread_pool_free(ThreadPool *pool)
{
    if (!pool) {
        return;
    }
    if (pool->outstanding) {
        g_warning("thread pool freed with %d requests outstanding",
                  pool->outstanding);
    }
    g_mutex_lock(&pool->lock);
    pool->stopping = true;
    g_cond_broadcast(&pool->request_cond);
    while (pool->cur_threads > 0) {
        g_cond_wait(&pool->exit_cond, &pool->lock);
    }
    g_mutex_unlock(&pool->lock);

    qb_bh_delete(pool->completion_bh);
    for (ThreadPoolRequest *r = pool->done, *next; r; r = next) {
        next = r->next;
        g_free(r);
    }
    g_mutex_clear(&pool->lock);
    g_cond_clear(&pool->request_cond);
    g_cond_clear(&pool->exit_cond);
    g_free(pool);
}

void thread_pool_set_max_threads(ThreadPool *pool, int max)
{
    assert(max > 0);
    g_mutex_lock(&pool->lock);
    pool->max_threads = max;
    /* Surplus idle workers see cur > max after their next request, or
     * time out; wake them so they notice sooner. */
    g_cond_broadcast(&pool->request_cond);
    g_mutex_unlock(&pool->lock);
}

void thread_pool_submit_aio(ThreadPool *pool, ThreadPoolFunc *func, void *arg,
                            ThreadPoolCompletion *cb, void *opaque)
{
    ThreadPoolRequest *req = g_new0(ThreadPoolRequest, 1);

    req->func = func;
    req->arg = arg;
    req->cb = cb;
    req->opaque = opaque;
    pool->outstanding++;

    bool wake;

    g_mutex_lock(&pool->lock);
    g_queue_push_tail(&pool->queue, req);
    maybe_spawn_worker(pool);
    /* Only an idle worker needs a wake-up; busy ones look at the queue
     * before they sleep.  Signalling after the unlock spares the woken
     * worker an immediate futex wait on pool->lock. */
    wake = pool->idle_threads > 0;
    g_mutex_unlock(&pool->lock);
    if (wake) {
        g_cond_signal(&pool->request_cond);
    }
}

typedef struct {
    Coroutine *co;
    int ret;
} ThreadPoolCo;

static void submit_co_done(void *opaque, int ret)
{
    ThreadPoolCo *tpc = opaque;

    tpc->ret = ret;
    aio_co_wake(tpc->co);
}

int coroutine_fn thread_pool_submit_co(ThreadPool *pool, ThreadPoolFunc *func,
                                       void *arg)
{
    ThreadPoolCo tpc = { coroutine_self(), -EINPROGRESS };

    assert(tpc.co);
    thread_pool_submit_aio(pool, func, arg, submit_co_done, &tpc);
    coroutine_yield();
    return tpc.ret;
}
