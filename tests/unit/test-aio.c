/*
 * Unit tests for the AioContext (util/async.c, util/aio-posix.c,
 * util/timer.c): BH ordering and rescheduling, BHs scheduled from other
 * threads, fd handlers on pipes, timers, the GSource in a GMainLoop,
 * coroutine scheduling, and a context run by its own thread.
 */
#include "util/aio.h"
#include "util/coroutine.h"

#define POLL_UNTIL(ctx, cond) do {                                        \
        int64_t _dl = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;       \
        while (!(cond) && g_get_monotonic_time() < _dl) {                 \
            aio_poll((ctx), true);                                        \
        }                                                                 \
        g_assert_true(cond);                                              \
    } while (0)

static AioContext *ctx;

/* ---- BHs ---- */

typedef struct {
    GString *trace;
    char name;
} Tag;

static void tag_cb(void *opaque)
{
    Tag *t = opaque;
    g_string_append_c(t->trace, t->name);
}

static void test_bh_order(void)
{
    GString *trace = g_string_new(NULL);
    Tag tags[5];
    QBBH *bhs[5];
    for (int i = 0; i < 5; i++) {
        tags[i] = (Tag){ trace, 'a' + i };
        bhs[i] = aio_bh_new(ctx, tag_cb, &tags[i]);
    }
    qb_bh_schedule(bhs[2]);
    qb_bh_schedule(bhs[0]);
    qb_bh_schedule(bhs[4]);
    qb_bh_schedule(bhs[0]);   /* already scheduled: no second run */
    qb_bh_schedule(bhs[3]);
    qb_bh_cancel(bhs[4]);
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpstr(trace->str, ==, "cad");
    g_assert_false(aio_poll(ctx, false));
    /* Persistent BHs can be scheduled again. */
    qb_bh_schedule(bhs[1]);
    qb_bh_schedule(bhs[0]);
    g_assert_true(aio_poll(ctx, true));
    g_assert_cmpstr(trace->str, ==, "cadba");
    for (int i = 0; i < 5; i++) {
        qb_bh_delete(bhs[i]);
    }
    g_string_free(trace, TRUE);
}

static void oneshot_count(void *opaque)
{
    (*(int *)opaque)++;
}

static void test_bh_oneshot(void)
{
    int n = 0;
    for (int i = 0; i < 10; i++) {
        aio_bh_schedule_oneshot(ctx, oneshot_count, &n);
    }
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpint(n, ==, 10);
    g_assert_false(aio_poll(ctx, false));
}

/* A BH that reschedules itself runs once per aio_poll, not forever. */
typedef struct {
    QBBH *bh;
    int runs;
} SelfResched;

static void self_resched_cb(void *opaque)
{
    SelfResched *s = opaque;
    s->runs++;
    qb_bh_schedule(s->bh);
}

static void test_bh_self_resched(void)
{
    SelfResched s = { 0 };
    s.bh = aio_bh_new(ctx, self_resched_cb, &s);
    qb_bh_schedule(s.bh);
    aio_poll(ctx, false);
    g_assert_cmpint(s.runs, ==, 1);
    aio_poll(ctx, false);
    g_assert_cmpint(s.runs, ==, 2);
    qb_bh_delete(s.bh);
    g_assert_false(aio_poll(ctx, false));
}

/* A BH that deletes itself. */
static void self_delete_cb(void *opaque)
{
    QBBH **bh = opaque;
    qb_bh_delete(*bh);
    *bh = NULL;
}

static void test_bh_self_delete(void)
{
    QBBH *bh = NULL;
    bh = aio_bh_new(ctx, self_delete_cb, &bh);
    qb_bh_schedule(bh);
    aio_poll(ctx, false);
    g_assert_null(bh);
}

/* BHs scheduled from other threads wake a blocking aio_poll. */
typedef struct {
    int count;    /* atomically incremented by the BH (main thread) */
} CrossThread;

static void cross_cb(void *opaque)
{
    CrossThread *c = opaque;
    __atomic_fetch_add(&c->count, 1, __ATOMIC_SEQ_CST);
}

static gpointer cross_thread(gpointer opaque)
{
    CrossThread *c = opaque;
    for (int i = 0; i < 200; i++) {
        aio_bh_schedule_oneshot(ctx, cross_cb, c);
        if (i % 16 == 0) {
            g_usleep(100);
        }
    }
    return NULL;
}

static void test_bh_cross_thread(void)
{
    CrossThread c = { 0 };
    GThread *t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = g_thread_new("bh", cross_thread, &c);
    }
    POLL_UNTIL(ctx, __atomic_load_n(&c.count, __ATOMIC_SEQ_CST) == 800);
    for (int i = 0; i < 4; i++) {
        g_thread_join(t[i]);
    }
    g_assert_false(aio_poll(ctx, false));
}

/* ---- fd handlers ---- */

typedef struct {
    int fds[2];
    GString *got;
    int writable;
} PipeTest;

static void pipe_read(void *opaque)
{
    PipeTest *p = opaque;
    char buf[64];
    ssize_t n = read(p->fds[0], buf, sizeof(buf));
    if (n > 0) {
        g_string_append_len(p->got, buf, n);
    }
}

static void pipe_write(void *opaque)
{
    PipeTest *p = opaque;
    p->writable++;
    aio_set_fd_handler(ctx, p->fds[1], NULL, NULL, NULL);
}

static void test_fd_handlers(void)
{
    PipeTest p = { .got = g_string_new(NULL) };
    g_assert_cmpint(pipe(p.fds), ==, 0);
    aio_set_fd_handler(ctx, p.fds[0], pipe_read, NULL, &p);
    g_assert_false(aio_poll(ctx, false));   /* nothing to read yet */

    g_assert_cmpint(write(p.fds[1], "hello", 5), ==, 5);
    g_assert_true(aio_poll(ctx, true));
    g_assert_cmpstr(p.got->str, ==, "hello");

    /* Write handler: a pipe is writable at once; it removes itself. */
    aio_set_fd_handler(ctx, p.fds[1], NULL, pipe_write, &p);
    g_assert_true(aio_poll(ctx, true));
    g_assert_cmpint(p.writable, ==, 1);
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(p.writable, ==, 1);

    /* Removed read handler is not called any more. */
    aio_set_fd_handler(ctx, p.fds[0], NULL, NULL, NULL);
    g_assert_cmpint(write(p.fds[1], "more", 4), ==, 4);
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpstr(p.got->str, ==, "hello");

    /* Re-added: data still there. */
    aio_set_fd_handler(ctx, p.fds[0], pipe_read, NULL, &p);
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpstr(p.got->str, ==, "hellomore");
    aio_set_fd_handler(ctx, p.fds[0], NULL, NULL, NULL);
    close(p.fds[0]);
    close(p.fds[1]);
    g_string_free(p.got, TRUE);
}

/* ---- timers ---- */

static void test_timers(void)
{
    GString *trace = g_string_new(NULL);
    Tag tags[4];
    QBTimer *t[4];
    int64_t now = qb_clock_get_ns(QB_CLOCK_MONOTONIC);
    int64_t delays_ms[4] = { 30, 10, 20, 10 };   /* d after b: same time */
    for (int i = 0; i < 4; i++) {
        tags[i] = (Tag){ trace, 'a' + i };
        t[i] = aio_timer_new(ctx, QB_CLOCK_MONOTONIC, tag_cb, &tags[i]);
        qb_timer_mod_ns(t[i], now + delays_ms[i] * 1000000);
        g_assert_true(qb_timer_pending(t[i]));
    }
    /* Re-arming moves a timer. */
    qb_timer_mod_ns(t[0], now + 25 * 1000000);
    /* A realtime timer is merged into the same wait. */
    Tag rt_tag = { trace, 'R' };
    QBTimer *rt = aio_timer_new(ctx, QB_CLOCK_REALTIME, tag_cb, &rt_tag);
    qb_timer_mod_ns(rt, qb_clock_get_ns(QB_CLOCK_REALTIME) + 40 * 1000000);
    /* A deleted timer never fires. */
    Tag dead_tag = { trace, 'X' };
    QBTimer *dead = aio_timer_new(ctx, QB_CLOCK_MONOTONIC, tag_cb, &dead_tag);
    qb_timer_mod_ns(dead, now + 5 * 1000000);
    qb_timer_del(dead);
    g_assert_false(qb_timer_pending(dead));

    POLL_UNTIL(ctx, trace->len == 5);
    g_assert_cmpstr(trace->str, ==, "bdcaR");
    g_assert_cmpint(qb_clock_get_ns(QB_CLOCK_MONOTONIC) - now, >=, 25000000);
    for (int i = 0; i < 4; i++) {
        g_assert_false(qb_timer_pending(t[i]));
        qb_timer_free(t[i]);
    }
    qb_timer_free(rt);
    qb_timer_free(dead);
    g_string_free(trace, TRUE);
}

/* ---- GSource ---- */

typedef struct {
    GMainLoop *loop;
    int bh_runs;
    int timer_runs;
} LoopTest;

static void loop_bh(void *opaque)
{
    LoopTest *l = opaque;
    l->bh_runs++;
}

static void loop_timer(void *opaque)
{
    LoopTest *l = opaque;
    l->timer_runs++;
    g_main_loop_quit(l->loop);
}

static gboolean loop_timeout(gpointer opaque)
{
    g_main_loop_quit(opaque);
    return G_SOURCE_REMOVE;
}

static void test_gsource(void)
{
    GMainContext *gctx = g_main_context_new();
    LoopTest l = { g_main_loop_new(gctx, FALSE) };
    AioContext *c = aio_context_new(&error_abort);
    GSource *src = aio_get_g_source(c);
    g_source_attach(src, gctx);
    g_source_unref(src);

    GSource *guard = g_timeout_source_new(10000);
    g_source_set_callback(guard, loop_timeout, l.loop, NULL);
    g_source_attach(guard, gctx);

    aio_bh_schedule_oneshot(c, loop_bh, &l);
    QBTimer *t = aio_timer_new(c, QB_CLOCK_MONOTONIC, loop_timer, &l);
    qb_timer_mod_ns(t, qb_clock_get_ns(QB_CLOCK_MONOTONIC) + 20 * 1000000);
    g_main_loop_run(l.loop);
    g_assert_cmpint(l.bh_runs, ==, 1);
    g_assert_cmpint(l.timer_runs, ==, 1);

    /* An fd handler dispatched through the main loop. */
    PipeTest p = { .got = g_string_new(NULL) };
    g_assert_cmpint(pipe(p.fds), ==, 0);
    aio_set_fd_handler(c, p.fds[0], pipe_read, NULL, &p);
    g_assert_cmpint(write(p.fds[1], "gl", 2), ==, 2);
    int64_t dl = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    while (p.got->len < 2 && g_get_monotonic_time() < dl) {
        g_main_context_iteration(gctx, TRUE);
    }
    g_assert_cmpstr(p.got->str, ==, "gl");
    aio_set_fd_handler(c, p.fds[0], NULL, NULL, NULL);
    close(p.fds[0]);
    close(p.fds[1]);
    g_string_free(p.got, TRUE);

    qb_timer_free(t);
    g_source_destroy(guard);
    g_source_unref(guard);
    g_source_destroy(src);
    aio_context_unref(c);
    g_main_loop_unref(l.loop);
    g_main_context_unref(gctx);
}

/* ---- coroutines and contexts ---- */

static void coroutine_fn co_wait_twice(void *opaque)
{
    int *n = opaque;
    (*n)++;
    coroutine_yield();
    (*n)++;
    coroutine_yield();
    (*n)++;
}

static void test_co_schedule(void)
{
    int n = 0;
    Coroutine *co = coroutine_create(co_wait_twice, &n);
    aio_co_schedule(ctx, co);
    g_assert_cmpint(n, ==, 0);            /* not before the loop runs */
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpint(n, ==, 1);
    g_assert_true(coroutine_get_aio_context(co) == ctx);
    aio_co_wake(co);                       /* outside coroutine: direct */
    g_assert_cmpint(n, ==, 2);
    aio_co_enter(ctx, co);
    g_assert_cmpint(n, ==, 3);
}

/* A context driven by its own thread. */
typedef struct {
    AioContext *ctx;
    bool stop;
    GThread *thread;
    GThread *ran_in;       /* thread a coroutine observed */
    int done;
} IoThread;

static gpointer iothread_run(gpointer opaque)
{
    IoThread *it = opaque;
    qb_set_current_aio_context(it->ctx);
    while (!__atomic_load_n(&it->stop, __ATOMIC_ACQUIRE)) {
        aio_poll(it->ctx, true);
    }
    return NULL;
}

static void iothread_stop_bh(void *opaque)
{
    IoThread *it = opaque;
    __atomic_store_n(&it->stop, true, __ATOMIC_RELEASE);
}

static void coroutine_fn iothread_co(void *opaque)
{
    IoThread *it = opaque;
    g_assert_true(qb_get_current_aio_context() == it->ctx);
    co_sleep_ns(1000 * 1000);   /* timer of the iothread's context */
    it->ran_in = g_thread_self();
    __atomic_fetch_add(&it->done, 1, __ATOMIC_SEQ_CST);
    /* Wake the main thread's poll so it re-checks 'done'. */
    aio_notify(qb_get_aio_context());
}

/* A coroutine that moves itself from the main context to the iothread
 * and back. */
typedef struct {
    IoThread *it;
    GThread *first, *second, *third;
    bool finished;
} Hop;

static void coroutine_fn hop_co(void *opaque)
{
    Hop *h = opaque;
    h->first = g_thread_self();
    aio_co_schedule(h->it->ctx, coroutine_self());
    coroutine_yield();
    h->second = g_thread_self();
    aio_co_schedule(qb_get_aio_context(), coroutine_self());
    coroutine_yield();
    h->third = g_thread_self();
    h->finished = true;
}

static void test_iothread(void)
{
    IoThread it = { .ctx = aio_context_new(&error_abort) };
    it.thread = g_thread_new("iothread", iothread_run, &it);
    for (int i = 0; i < 20; i++) {
        aio_co_schedule(it.ctx, coroutine_create(iothread_co, &it));
    }
    POLL_UNTIL(ctx, __atomic_load_n(&it.done, __ATOMIC_SEQ_CST) == 20);
    g_assert_true(it.ran_in == it.thread);

    Hop h = { &it };
    coroutine_enter(coroutine_create(hop_co, &h));
    POLL_UNTIL(ctx, h.finished);
    g_assert_true(h.first == g_thread_self());
    g_assert_true(h.second == it.thread);
    g_assert_true(h.third == g_thread_self());

    aio_bh_schedule_oneshot(it.ctx, iothread_stop_bh, &it);
    g_thread_join(it.thread);
    aio_context_unref(it.ctx);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    ctx = qb_get_aio_context();
    g_assert_true(qb_get_current_aio_context() == ctx);
    g_test_add_func("/aio/bh/order", test_bh_order);
    g_test_add_func("/aio/bh/oneshot", test_bh_oneshot);
    g_test_add_func("/aio/bh/self-resched", test_bh_self_resched);
    g_test_add_func("/aio/bh/self-delete", test_bh_self_delete);
    g_test_add_func("/aio/bh/cross-thread", test_bh_cross_thread);
    g_test_add_func("/aio/fd-handlers", test_fd_handlers);
    g_test_add_func("/aio/timers", test_timers);
    g_test_add_func("/aio/gsource", test_gsource);
    g_test_add_func("/aio/co-schedule", test_co_schedule);
    g_test_add_func("/aio/iothread", test_iothread);
    return g_test_run();
}
