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
 * callbacks there, so callbacks never run in a worker thread.  Lanes
 * (below) run a FIFO of requests one batch at a time in one worker.
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
        if (req->cb) {
            push_done(pool, req);
        } else {
            g_free(req);   /* internal request (a lane's drainer) */
        }

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

/* Queue func(arg) for a worker.  cb == NULL: an internal request, freed
 * by the worker, not counted in 'outstanding' (any thread). */
static void pool_enqueue(ThreadPool *pool, ThreadPoolFunc *func, void *arg,
                         ThreadPoolCompletion *cb, void *opaque)
{
    ThreadPoolRequest *req = g_new0(ThreadPoolRequest, 1);
    bool wake;

    req->func = func;
    req->arg = arg;
    req->cb = cb;
    req->opaque = opaque;

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

void thread_pool_submit_aio(ThreadPool *pool, ThreadPoolFunc *func, void *arg,
                            ThreadPoolCompletion *cb, void *opaque)
{
    assert(cb);
    pool->outstanding++;
    pool_enqueue(pool, func, arg, cb, opaque);
}

/* ------------------------------------------------------------------ */
/* Lanes                                                               */

/*
 * A lane is a FIFO of requests that run one at a time, in submission
 * order, in whichever worker drains the lane.  The drainer is an internal
 * pool request (lane_drain) that runs while the lane has work: it takes
 * every queued request (at most LANE_BATCH_MAX), hands them to the lane's
 * batch function in one call, publishes their results on the completion
 * stack in one exchange, and takes the next batch, without waking another
 * thread or going through the pool's queue.  Taking everything beat taking
 * half or a quarter (which would let the event loop refill the lane while
 * the worker writes) and one at a time: 64 KiB writeback writes at depth
 * 32, medians of 7 interleaved runs: all 0.060 s, half 0.067 s, quarter
 * 0.070 s, one 0.091 s, QEMU 0.119 s.  Bigger batches make bigger merged
 * writes, and the event loop's share of the work is small.
 *
 * Why (the first user, file-posix's buffered writes): writes to one
 * regular file are serialised by the kernel anyway (every Linux file
 * system takes the inode lock exclusively for them).  Spread over many
 * workers they only spin on that lock (rwsem_spin_on_owner was 15% of the
 * CPU time of 64 KiB writeback writes at depth 32) and cost a wake-up and
 * two context switches each.  In a lane one worker writes back to back,
 * and the batch function can merge neighbouring writes into one system
 * call.  A lane occupies at most one worker, so a blocked lane request
 * delays only its own lane, never the pool's other requests.
 *
 * Invariants (lane->lock):
 * L1. 'draining' is true from the submission that found the lane idle
 *     until the drainer finds the lane empty; while it is true exactly one
 *     drainer is queued in the pool or running its loop, and submissions
 *     only append.  So at most one batch of a lane runs at any time, and
 *     batches run in submission order.
 * L2. A lane request is in exactly one of: the lane's FIFO, the running
 *     batch, the pool's completion stack, freed.  It counts in
 *     pool->outstanding like any request.
 * L3. The drainer is an internal pool request: it has no completion
 *     callback and does not count in pool->outstanding, so nothing refers
 *     to the lane once 'draining' is false.  Freeing a lane therefore
 *     waits (idle_cond) for 'draining' to fall, which runs every request
 *     still queued; their callbacks run later from the pool's completion
 *     BH and must not use the lane.
 */
#define LANE_BATCH_MAX 64

struct ThreadPoolLane {
    ThreadPool *pool;
    ThreadPoolBatchFunc *batch;
    void *opaque;

    GMutex lock;
    ThreadPoolRequest *head;      /* FIFO through ->next */
    ThreadPoolRequest **tailp;
    int queued;
    bool draining;
    GCond idle_cond;              /* signalled when draining falls */
};

/* Push the chain newest -> ... -> oldest (linked through ->next) onto the
 * completion stack with one exchange; the BH reverses the whole stack, so
 * the batch's callbacks run oldest first. */
static void push_done_chain(ThreadPool *pool, ThreadPoolRequest *newest,
                            ThreadPoolRequest *oldest)
{
    ThreadPoolRequest *head = __atomic_load_n(&pool->done, __ATOMIC_RELAXED);

    do {
        oldest->next = head;
    } while (!__atomic_compare_exchange_n(&pool->done, &head, newest, true,
                                          __ATOMIC_RELEASE, __ATOMIC_RELAXED));
    if (!head) {
        qb_bh_schedule(pool->completion_bh);
    }
}

static int lane_drain(void *opaque)
{
    ThreadPoolLane *lane = opaque;
    void *args[LANE_BATCH_MAX];
    int rets[LANE_BATCH_MAX];
    ThreadPoolRequest *reqs[LANE_BATCH_MAX];

    for (;;) {
        int n;

        g_mutex_lock(&lane->lock);
        if (!lane->head) {
            lane->draining = false;
            g_cond_broadcast(&lane->idle_cond);
            g_mutex_unlock(&lane->lock);
            return 0;
        }
        n = MIN(lane->queued, LANE_BATCH_MAX);
        for (int i = 0; i < n; i++) {
            reqs[i] = lane->head;
            lane->head = reqs[i]->next;
        }
        if (!lane->head) {
            lane->tailp = &lane->head;
        }
        lane->queued -= n;
        g_mutex_unlock(&lane->lock);

        for (int i = 0; i < n; i++) {
            args[i] = reqs[i]->arg;
            rets[i] = -EINPROGRESS;
        }
        lane->batch(lane->opaque, args, rets, n);
        /* Newest first on the stack: link reqs[n-1] -> ... -> reqs[0]. */
        for (int i = 0; i < n; i++) {
            reqs[i]->ret = rets[i];
            reqs[i]->next = i > 0 ? reqs[i - 1] : NULL;
        }
        push_done_chain(lane->pool, reqs[n - 1], reqs[0]);
    }
}

ThreadPoolLane *thread_pool_lane_new(ThreadPool *pool,
                                     ThreadPoolBatchFunc *batch,
                                     void *opaque)
{
    ThreadPoolLane *lane = g_new0(ThreadPoolLane, 1);

    lane->pool = pool;
    lane->batch = batch;
    lane->opaque = opaque;
    g_mutex_init(&lane->lock);
    g_cond_init(&lane->idle_cond);
    lane->tailp = &lane->head;
    return lane;
}

void thread_pool_lane_free(ThreadPoolLane *lane)
{
    if (!lane) {
        return;
    }
    /* L3: requests may still be queued, or the drainer may be on its way
     * from the last batch to finding the lane empty. */
    g_mutex_lock(&lane->lock);
    while (lane->draining) {
        g_cond_wait(&lane->idle_cond, &lane->lock);
    }
    g_mutex_unlock(&lane->lock);
    g_cond_clear(&lane->idle_cond);
    g_mutex_clear(&lane->lock);
    g_free(lane);
}

ThreadPool *thread_pool_lane_pool(ThreadPoolLane *lane)
{
    return lane->pool;
}

void thread_pool_lane_submit_aio(ThreadPoolLane *lane, void *arg,
                                 ThreadPoolCompletion *cb, void *opaque)
{
    ThreadPoolRequest *req = g_new0(ThreadPoolRequest, 1);
    bool start;

    req->arg = arg;
    req->cb = cb;
    req->opaque = opaque;
    lane->pool->outstanding++;

    g_mutex_lock(&lane->lock);
    *lane->tailp = req;
    lane->tailp = &req->next;
    lane->queued++;
    start = !lane->draining;
    lane->draining = true;
    g_mutex_unlock(&lane->lock);

    if (start) {
        pool_enqueue(lane->pool, lane_drain, lane, NULL, NULL);
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

int coroutine_fn thread_pool_lane_submit_co(ThreadPoolLane *lane, void *arg)
{
    ThreadPoolCo tpc = { coroutine_self(), -EINPROGRESS };

    assert(tpc.co);
    thread_pool_lane_submit_aio(lane, arg, submit_co_done, &tpc);
    coroutine_yield();
    return tpc.ret;
}
