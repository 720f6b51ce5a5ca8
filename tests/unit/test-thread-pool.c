/*
 * Unit tests for util/thread-pool.c: callback and coroutine submission,
 * saturation with a low thread limit, completions delivered in the
 * submitting context's thread, a per-context pool for a second context,
 * and the order and parallelism of a burst on a fresh pool.
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
    return g_test_run();
}
