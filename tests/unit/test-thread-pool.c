/*
 * Unit tests for util/thread-pool.c: callback and coroutine submission,
 * saturation with a low thread limit, completions delivered in the
 * submitting context's thread, a per-context pool for a second context,
 * the order and parallelism of a burst on a fresh pool, and lanes (serial
 * batches in order, results per request, a blocked lane not starving the
 * pool, freeing a lane with requests queued).
 */
#include "util/thread-pool.h"

static AioContext *ctx;
static GThread *main_thread;

typedef struct {
    int in;
    int out;
    bool completed;
    GThread *cb_thread;
} Job;

static int running_now;     /* workers inside job_func at this moment */
static int running_max;

static int job_func(void *opaque)
{
    Job *j = opaque;
    int now = __atomic_add_fetch(&running_now, 1, __ATOMIC_SEQ_CST);
    int max = __atomic_load_n(&running_max, __ATOMIC_SEQ_CST);
    while (now > max &&
           !__atomic_compare_exchange_n(&running_max, &max, now, false,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    g_assert_true(g_thread_self() != main_thread);
    if (j->in % 50 == 0) {
        g_usleep(1000);   /* some slow jobs, to overlap workers */
    }
    __atomic_sub_fetch(&running_now, 1, __ATOMIC_SEQ_CST);
    return j->in * 3 + 1;
}

static int done_count;

static void job_done(void *opaque, int ret)
{
    Job *j = opaque;
    g_assert_false(j->completed);
    j->out = ret;
    j->completed = true;
    j->cb_thread = g_thread_self();
    done_count++;
}

static void test_saturation(void)
{
    enum { N = 1000 };
    ThreadPool *pool = thread_pool_new(ctx);
    Job *jobs = g_new0(Job, N);
    thread_pool_set_max_threads(pool, 8);
    running_max = 0;
    done_count = 0;
    for (int i = 0; i < N; i++) {
        jobs[i].in = i;
        thread_pool_submit_aio(pool, job_func, &jobs[i], job_done, &jobs[i]);
    }
    int64_t deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
    while (done_count < N && g_get_monotonic_time() < deadline) {
        aio_poll(ctx, true);
    }
    g_assert_cmpint(done_count, ==, N);
    for (int i = 0; i < N; i++) {
        g_assert_true(jobs[i].completed);
        g_assert_cmpint(jobs[i].out, ==, i * 3 + 1);
        g_assert_true(jobs[i].cb_thread == main_thread);
    }
    g_assert_cmpint(running_max, <=, 8);
    g_assert_cmpint(running_max, >=, 2);
    thread_pool_free(pool);
    g_free(jobs);
}

/* Coroutine submission: many coroutines each wait for their own job. */
static int co_done;

static void coroutine_fn co_submitter(void *opaque)
{
    Job *j = opaque;
    ThreadPool *pool = aio_get_thread_pool(qb_get_current_aio_context());
    j->out = thread_pool_submit_co(pool, job_func, j);
    j->completed = true;
    co_done++;
}

static void test_submit_co(void)
{
    enum { N = 200 };
    Job jobs[N];
    co_done = 0;
    for (int i = 0; i < N; i++) {
        jobs[i] = (Job){ .in = i };
        coroutine_enter(coroutine_create(co_submitter, &jobs[i]));
    }
    g_assert_true(aio_get_thread_pool(ctx) == aio_get_thread_pool(ctx));
    int64_t deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
    while (co_done < N && g_get_monotonic_time() < deadline) {
        aio_poll(ctx, true);
    }
    g_assert_cmpint(co_done, ==, N);
    for (int i = 0; i < N; i++) {
        g_assert_cmpint(jobs[i].out, ==, i * 3 + 1);
    }
}

/* Error returns travel unchanged. */
static int fail_func(void *opaque)
{
    return -GPOINTER_TO_INT(opaque);
}

static void coroutine_fn co_fail(void *opaque)
{
    ThreadPool *pool = aio_get_thread_pool(qb_get_current_aio_context());
    *(int *)opaque = thread_pool_submit_co(pool, fail_func,
                                           GINT_TO_POINTER(EIO));
}

static void test_error(void)
{
    int ret = 0;
    coroutine_run_sync(co_fail, &ret);
    g_assert_cmpint(ret, ==, -EIO);
}

/* A pool owned by a second context, polled by this thread. */
static void test_other_context(void)
{
    AioContext *c = aio_context_new(&error_abort);
    ThreadPool *pool = aio_get_thread_pool(c);
    Job j = { .in = 7 };
    done_count = 0;
    thread_pool_submit_aio(pool, job_func, &j, job_done, &j);
    /* The main context must not see the completion. */
    aio_poll(ctx, false);
    int64_t deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (!j.completed && g_get_monotonic_time() < deadline) {
        aio_poll(c, true);
    }
    g_assert_true(j.completed);
    g_assert_cmpint(j.out, ==, 22);
    aio_context_unref(c);   /* frees the pool and joins its workers */
}

/*
 * Workers start one at a time, each after taking its request: in a burst
 * submitted to a fresh pool the first request starts first (iotest 004's
 * write-then-read relies on that order), and the burst still runs in
 * parallel (the chain of starts must not serialise it).
 */
static int start_seq;

typedef struct {
    int started_as;
    bool completed;
} OrderJob;

static int order_func(void *opaque)
{
    OrderJob *j = opaque;
    j->started_as = __atomic_fetch_add(&start_seq, 1, __ATOMIC_SEQ_CST);
    g_usleep(100 * 1000);
    return 0;
}

static void order_done(void *opaque, int ret)
{
    ((OrderJob *)opaque)->completed = true;
    done_count++;
}

static void test_burst_order(void)
{
    enum { N = 6 };
    ThreadPool *pool = thread_pool_new(ctx);
    OrderJob jobs[N] = { 0 };
    int64_t t0 = g_get_monotonic_time(), elapsed;

    start_seq = 0;
    done_count = 0;
    for (int i = 0; i < N; i++) {
        thread_pool_submit_aio(pool, order_func, &jobs[i], order_done,
                               &jobs[i]);
    }
    int64_t deadline = t0 + 30 * G_USEC_PER_SEC;
    while (done_count < N && g_get_monotonic_time() < deadline) {
        aio_poll(ctx, true);
    }
    elapsed = g_get_monotonic_time() - t0;
    g_assert_cmpint(done_count, ==, N);
    g_assert_cmpint(jobs[0].started_as, ==, 0);
    /* Serial would be N * 100 ms; parallel is about 100 ms plus N thread
     * starts (fast, but slow under valgrind or on a loaded machine). */
    g_assert_cmpint(elapsed, <, (N - 1) * 100 * 1000);
    thread_pool_free(pool);
}

/*
 * Lanes.  The batch function records what it sees: requests must run one
 * batch at a time (never two batches concurrently), in submission order,
 * several per batch once a queue has built up, and each result must reach
 * its own request's callback, in order.
 */
typedef struct {
    int seq;               /* submission index */
    int ret;               /* what the batch function should return */
    int cb_ret;
    int cb_order;
    bool completed;
} LaneJob;

static int lane_running, lane_running_max;
static int lane_seen;              /* requests the batch function saw */
static bool lane_in_order;
static int lane_batches, lane_batch_max;
static int lane_first_sleep_us;    /* the first batch sleeps this long */
static int lane_cb_count;

static void lane_batch(void *opaque, void **args, int *rets, int n)
{
    int now = __atomic_add_fetch(&lane_running, 1, __ATOMIC_SEQ_CST);

    if (now > lane_running_max) {
        lane_running_max = now;    /* only one batch can be here... */
    }
    g_assert_true(g_thread_self() != main_thread);
    if (lane_batches++ == 0 && lane_first_sleep_us) {
        g_usleep(lane_first_sleep_us);
    }
    lane_batch_max = MAX(lane_batch_max, n);
    for (int i = 0; i < n; i++) {
        LaneJob *j = args[i];
        if (j->seq != lane_seen) {
            lane_in_order = false;
        }
        lane_seen++;
        if (j->seq % 97 == 0) {
            g_usleep(200);
        }
        rets[i] = j->ret;
    }
    __atomic_sub_fetch(&lane_running, 1, __ATOMIC_SEQ_CST);
}

static void lane_done(void *opaque, int ret)
{
    LaneJob *j = opaque;

    g_assert_false(j->completed);
    g_assert_true(g_thread_self() == main_thread);
    j->completed = true;
    j->cb_ret = ret;
    j->cb_order = lane_cb_count++;
}

static void lane_reset(void)
{
    lane_running = lane_running_max = lane_seen = 0;
    lane_in_order = true;
    lane_batches = lane_batch_max = 0;
    lane_first_sleep_us = 0;
    lane_cb_count = 0;
}

static void wait_lane_cbs(int n)
{
    int64_t deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;

    while (lane_cb_count < n && g_get_monotonic_time() < deadline) {
        aio_poll(ctx, true);
    }
    g_assert_cmpint(lane_cb_count, ==, n);
}

static void test_lane_order(void)
{
    enum { N = 2000 };
    ThreadPool *pool = thread_pool_new(ctx);
    ThreadPoolLane *lane = thread_pool_lane_new(pool, lane_batch, NULL);
    LaneJob *jobs = g_new0(LaneJob, N);

    lane_reset();
    /* The first batch waits until the whole burst is queued. */
    lane_first_sleep_us = 20 * 1000;
    for (int i = 0; i < N; i++) {
        jobs[i] = (LaneJob){ .seq = i, .ret = (i % 5) ? i : -(i % 7) - 1 };
        thread_pool_lane_submit_aio(lane, &jobs[i], lane_done, &jobs[i]);
    }
    wait_lane_cbs(N);
    g_assert_true(lane_in_order);
    g_assert_cmpint(lane_seen, ==, N);
    g_assert_cmpint(lane_running_max, ==, 1);
    /* Batched: the queue built up behind the first batch... */
    g_assert_cmpint(lane_batch_max, >, 1);
    /* ...up to 64 requests per batch, so a burst of N makes at least
     * N / 64 batches. */
    g_assert_cmpint(lane_batch_max, <=, 64);
    g_assert_cmpint(lane_batches, >=, N / 64);
    for (int i = 0; i < N; i++) {
        g_assert_true(jobs[i].completed);
        g_assert_cmpint(jobs[i].cb_ret, ==, jobs[i].ret);
        g_assert_cmpint(jobs[i].cb_order, ==, i);
    }
    thread_pool_lane_free(lane);
    thread_pool_free(pool);
    g_free(jobs);
}

/* Coroutine submission, from many coroutines at once. */
static ThreadPoolLane *co_lane;

static void coroutine_fn lane_co_submitter(void *opaque)
{
    LaneJob *j = opaque;

    j->cb_ret = thread_pool_lane_submit_co(co_lane, j);
    j->cb_order = lane_cb_count++;
    j->completed = true;
}

static void test_lane_co(void)
{
    enum { N = 300 };
    ThreadPool *pool = thread_pool_new(ctx);
    LaneJob *jobs = g_new0(LaneJob, N);

    lane_reset();
    co_lane = thread_pool_lane_new(pool, lane_batch, NULL);
    for (int i = 0; i < N; i++) {
        jobs[i] = (LaneJob){ .seq = i, .ret = i % 3 ? 0 : -EIO };
        coroutine_enter(coroutine_create(lane_co_submitter, &jobs[i]));
    }
    wait_lane_cbs(N);
    g_assert_true(lane_in_order);
    for (int i = 0; i < N; i++) {
        g_assert_cmpint(jobs[i].cb_ret, ==, jobs[i].ret);
        g_assert_cmpint(jobs[i].cb_order, ==, i);
    }
    thread_pool_lane_free(co_lane);
    thread_pool_free(pool);
    g_free(jobs);
}

/*
 * A lane whose request blocks holds one worker and nothing else: plain
 * requests and another lane of the same pool (limited to 2 threads) keep
 * completing meanwhile.
 */
static gint block_release;

static void blocking_batch(void *opaque, void **args, int *rets, int n)
{
    int64_t deadline = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;

    while (!g_atomic_int_get(&block_release) &&
           g_get_monotonic_time() < deadline) {
        g_usleep(1000);
    }
    for (int i = 0; i < n; i++) {
        rets[i] = 1;
    }
}

static void test_lane_blocking(void)
{
    enum { N = 50 };
    ThreadPool *pool = thread_pool_new(ctx);
    ThreadPoolLane *slow = thread_pool_lane_new(pool, blocking_batch, NULL);
    ThreadPoolLane *fast;
    LaneJob slow_job = { .seq = 0 }, *jobs = g_new0(LaneJob, N);
    Job *plain = g_new0(Job, N);
    int64_t deadline;

    thread_pool_set_max_threads(pool, 2);
    g_atomic_int_set(&block_release, 0);
    lane_reset();
    done_count = 0;
    thread_pool_lane_submit_aio(slow, &slow_job, lane_done, &slow_job);
    fast = thread_pool_lane_new(pool, lane_batch, NULL);
    for (int i = 0; i < N; i++) {
        jobs[i] = (LaneJob){ .seq = i, .ret = i };
        thread_pool_lane_submit_aio(fast, &jobs[i], lane_done, &jobs[i]);
        plain[i].in = i + 1;     /* no 1 ms sleeps (in % 50 == 0) but one */
        thread_pool_submit_aio(pool, job_func, &plain[i], job_done, &plain[i]);
    }
    deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while ((lane_cb_count < N || done_count < N) &&
           g_get_monotonic_time() < deadline) {
        aio_poll(ctx, true);
    }
    g_assert_cmpint(done_count, ==, N);
    g_assert_cmpint(lane_cb_count, ==, N);      /* all but the slow one */
    g_assert_false(slow_job.completed);
    for (int i = 0; i < N; i++) {
        g_assert_cmpint(jobs[i].cb_ret, ==, i);
        g_assert_cmpint(plain[i].out, ==, (i + 1) * 3 + 1);
    }
    g_atomic_int_set(&block_release, 1);
    wait_lane_cbs(N + 1);
    g_assert_true(slow_job.completed);
    g_assert_cmpint(slow_job.cb_ret, ==, 1);
    thread_pool_lane_free(slow);
    thread_pool_lane_free(fast);
    thread_pool_free(pool);
    g_free(jobs);
    g_free(plain);
}

/* Freeing a lane with requests still queued runs them first; their
 * callbacks still arrive, in order, and the pool then frees cleanly. */
static void test_lane_free_queued(void)
{
    enum { N = 400 };
    ThreadPool *pool = thread_pool_new(ctx);
    ThreadPoolLane *lane = thread_pool_lane_new(pool, lane_batch, NULL);
    LaneJob *jobs = g_new0(LaneJob, N);

    lane_reset();
    lane_first_sleep_us = 50 * 1000;
    for (int i = 0; i < N; i++) {
        jobs[i] = (LaneJob){ .seq = i, .ret = -i };
        thread_pool_lane_submit_aio(lane, &jobs[i], lane_done, &jobs[i]);
    }
    thread_pool_lane_free(lane);
    /* Everything ran before free returned; no callback has run yet,
     * since this thread has not polled. */
    g_assert_cmpint(lane_seen, ==, N);
    g_assert_true(lane_in_order);
    g_assert_cmpint(lane_cb_count, ==, 0);
    wait_lane_cbs(N);
    for (int i = 0; i < N; i++) {
        g_assert_cmpint(jobs[i].cb_ret, ==, -i);
        g_assert_cmpint(jobs[i].cb_order, ==, i);
    }
    thread_pool_free(pool);
    g_free(jobs);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    ctx = qb_get_aio_context();
    main_thread = g_thread_self();
    g_test_add_func("/thread-pool/saturation", test_saturation);
    g_test_add_func("/thread-pool/submit-co", test_submit_co);
    g_test_add_func("/thread-pool/error", test_error);
    g_test_add_func("/thread-pool/other-context", test_other_context);
    g_test_add_func("/thread-pool/burst-order", test_burst_order);
    g_test_add_func("/thread-pool/lane-order", test_lane_order);
    g_test_add_func("/thread-pool/lane-co", test_lane_co);
    g_test_add_func("/thread-pool/lane-blocking", test_lane_blocking);
    g_test_add_func("/thread-pool/lane-free-queued", test_lane_free_queued);
    return g_test_run();
}
