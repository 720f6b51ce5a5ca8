/*
 * Unit tests for util/coroutine.c and util/coroutine-lock.c: entering and
 * yielding, nesting, many coroutines, the pool, coroutine_run_sync, co_sleep,
 * and CoMutex / CoQueue / CoRwlock fairness and exclusion.
 */
#include "util/aio.h"
#include "util/coroutine.h"

/* ---- basics ---- */

static void coroutine_fn set_flag(void *opaque)
{
    *(bool *)opaque = true;
}

static void test_basic(void)
{
    bool done = false;
    Coroutine *co = coroutine_create(set_flag, &done);
    g_assert_false(in_coroutine());
    g_assert_null(coroutine_self());
    coroutine_enter(co);
    g_assert_true(done);
}

static void coroutine_fn self_check(void *opaque)
{
    Coroutine **out = opaque;
    g_assert_true(in_coroutine());
    g_assert_true(coroutine_self() == *out);
    g_assert_true(coroutine_entered(*out));
    g_assert_true(coroutine_get_aio_context(*out) ==
                  qb_get_current_aio_context());
    *out = NULL;
}

static void test_self(void)
{
    Coroutine *slot;
    Coroutine *co = coroutine_create(self_check, &slot);
    slot = co;
    coroutine_enter(co);
    g_assert_null(slot);
}

/* Ping-pong: the coroutine counts, yielding after each step. */
static void coroutine_fn counter(void *opaque)
{
    int *n = opaque;
    for (int i = 0; i < 100; i++) {
        (*n)++;
        coroutine_yield();
    }
    *n = -1;
}

static void test_yield(void)
{
    int n = 0;
    Coroutine *co = coroutine_create(counter, &n);
    for (int i = 1; i <= 100; i++) {
        coroutine_enter(co);
        g_assert_cmpint(n, ==, i);
        g_assert_false(coroutine_entered(co));
    }
    coroutine_enter(co);   /* terminates */
    g_assert_cmpint(n, ==, -1);
}

/* Nesting: each level enters the next, deepest yields back through all. */
typedef struct {
    int depth;
    GString *trace;
} Nest;

static void coroutine_fn nest_entry(void *opaque)
{
    Nest *n = opaque;
    int me = n->depth;
    g_string_append_printf(n->trace, "in%d ", me);
    if (n->depth < 8) {
        n->depth++;
        Coroutine *child = coroutine_create(nest_entry, n);
        coroutine_enter(child);
        g_string_append_printf(n->trace, "back%d ", me);
        coroutine_yield();
        coroutine_enter(child);
    } else {
        coroutine_yield();
    }
    g_string_append_printf(n->trace, "out%d ", me);
}

static void test_nesting(void)
{
    Nest n = { 0, g_string_new(NULL) };
    Coroutine *top = coroutine_create(nest_entry, &n);
    coroutine_enter(top);
    g_assert_cmpstr(n.trace->str, ==,
                    "in0 in1 in2 in3 in4 in5 in6 in7 in8 back7 back6 back5 "
                    "back4 back3 back2 back1 back0 ");
    coroutine_enter(top);
    g_assert_true(g_str_has_suffix(n.trace->str, "out8 out7 out6 out5 out4 "
                                   "out3 out2 out1 out0 "));
    g_string_free(n.trace, TRUE);
}

/* Thousands of live coroutines at once, each with its own stack. */
static void coroutine_fn stack_user(void *opaque)
{
    volatile char buf[4096];
    int *slot = opaque;
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = (char)*slot;
    }
    coroutine_yield();
    for (size_t i = 0; i < sizeof(buf); i++) {
        g_assert_cmpint(buf[i], ==, (char)*slot);
    }
    *slot = -*slot;
}

static void test_many(void)
{
    enum { N = 3000 };
    Coroutine **cos = g_new(Coroutine *, N);
    int *vals = g_new(int, N);
    for (int i = 0; i < N; i++) {
        vals[i] = i + 1;
        cos[i] = coroutine_create(stack_user, &vals[i]);
        coroutine_enter(cos[i]);
    }
    for (int i = N - 1; i >= 0; i--) {
        coroutine_enter(cos[i]);
    }
    for (int i = 0; i < N; i++) {
        g_assert_cmpint(vals[i], ==, -(i + 1));
    }
    g_free(cos);
    g_free(vals);
}

static void coroutine_fn noop(void *opaque)
{
}

static void test_pool_reuse(void)
{
    Coroutine *a = coroutine_create(noop, NULL);
    coroutine_enter(a);
    /* a terminated and went back to the pool: the next create reuses it. */
    Coroutine *b = coroutine_create(noop, NULL);
    g_assert_true(a == b);
    coroutine_enter(b);
    /* Reused coroutines start fresh, with their new entry and opaque. */
    bool done = false;
    Coroutine *c = coroutine_create(set_flag, &done);
    coroutine_enter(c);
    g_assert_true(done);
}

/* run_sync: the coroutine sleeps, so the caller must poll to finish it. */
static void coroutine_fn sleepy(void *opaque)
{
    int64_t t0 = qb_clock_get_ns(QB_CLOCK_MONOTONIC);
    co_sleep_ns(5 * 1000 * 1000);
    *(int64_t *)opaque = qb_clock_get_ns(QB_CLOCK_MONOTONIC) - t0;
}

static void test_run_sync(void)
{
    int64_t slept = 0;
    coroutine_run_sync(sleepy, &slept);
    g_assert_cmpint(slept, >=, 5 * 1000 * 1000);
    g_assert_cmpint(slept, <, 2000 * 1000 * 1000LL);
}

static void coroutine_fn run_sync_nested(void *opaque)
{
    bool inner = false;
    /* Inside a coroutine run_sync just calls the function. */
    coroutine_run_sync(set_flag, &inner);
    g_assert_true(inner);
    *(bool *)opaque = true;
}

static void test_run_sync_nested(void)
{
    bool done = false;
    coroutine_run_sync(run_sync_nested, &done);
    g_assert_true(done);
}

/* Entering a coroutine that is running is a bug and must abort loudly. */
static void coroutine_fn reenter_self(void *opaque)
{
    coroutine_enter(coroutine_self());
}

static void test_reenter_aborts(void)
{
    if (g_test_subprocess()) {
        coroutine_enter(coroutine_create(reenter_self, NULL));
        return;
    }
    g_test_trap_subprocess(NULL, 0, 0);
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*entered while already running*");
}

/* ---- CoMutex ---- */

typedef struct {
    CoMutex lock;
    int inside;          /* coroutines currently in the critical section */
    int total;
    GArray *order;       /* ids in acquisition order */
    int finished;
} MutexTest;

typedef struct {
    MutexTest *t;
    int id;
} MutexArg;

static void coroutine_fn mutex_worker(void *opaque)
{
    MutexArg *a = opaque;
    MutexTest *t = a->t;
    for (int round = 0; round < 3; round++) {
        co_mutex_lock(&t->lock);
        co_mutex_assert_locked(&t->lock);
        g_assert_cmpint(t->inside, ==, 0);
        t->inside++;
        g_array_append_val(t->order, a->id);
        /* Yield inside the critical section: others run and must wait. */
        co_sleep_ns(0);
        t->total++;
        t->inside--;
        co_mutex_unlock(&t->lock);
    }
    t->finished++;
}

static void test_comutex(void)
{
    enum { N = 50 };
    MutexTest t = { .order = g_array_new(FALSE, FALSE, sizeof(int)) };
    MutexArg args[N];
    co_mutex_init(&t.lock);
    for (int i = 0; i < N; i++) {
        args[i] = (MutexArg){ &t, i };
        coroutine_enter(coroutine_create(mutex_worker, &args[i]));
    }
    int64_t deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (t.finished < N && g_get_monotonic_time() < deadline) {
        aio_poll(qb_get_aio_context(), true);
    }
    g_assert_cmpint(t.finished, ==, N);
    g_assert_cmpint(t.total, ==, 3 * N);
    /* FIFO: everybody queued in creation order on each round, so the
     * acquisition order is 0..N-1 three times over. */
    for (guint i = 0; i < t.order->len; i++) {
        g_assert_cmpint(g_array_index(t.order, int, i), ==, i % N);
    }
    g_assert_false(t.lock.locked);
    g_array_free(t.order, TRUE);
}

/* ---- CoQueue with a mutex: producer / consumer ---- */

typedef struct {
    CoMutex lock;
    CoQueue nonempty;
    GQueue items;
    int consumed;
    int sum;
} PC;

static void coroutine_fn consumer(void *opaque)
{
    PC *pc = opaque;
    co_mutex_lock(&pc->lock);
    while (g_queue_is_empty(&pc->items)) {
        co_queue_wait(&pc->nonempty, &pc->lock);
    }
    co_mutex_assert_locked(&pc->lock);
    pc->sum += GPOINTER_TO_INT(g_queue_pop_head(&pc->items));
    pc->consumed++;
    co_mutex_unlock(&pc->lock);
}

static void coroutine_fn producer(void *opaque)
{
    PC *pc = opaque;
    for (int i = 1; i <= 10; i++) {
        co_mutex_lock(&pc->lock);
        g_queue_push_tail(&pc->items, GINT_TO_POINTER(i));
        co_queue_next(&pc->nonempty);
        co_mutex_unlock(&pc->lock);
        co_sleep_ns(0);
    }
}

static void test_coqueue(void)
{
    PC pc = { 0 };
    co_mutex_init(&pc.lock);
    co_queue_init(&pc.nonempty);
    g_queue_init(&pc.items);
    for (int i = 0; i < 10; i++) {
        coroutine_enter(coroutine_create(consumer, &pc));
    }
    g_assert_false(co_queue_empty(&pc.nonempty));
    coroutine_enter(coroutine_create(producer, &pc));
    int64_t deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (pc.consumed < 10 && g_get_monotonic_time() < deadline) {
        aio_poll(qb_get_aio_context(), true);
    }
    g_assert_cmpint(pc.consumed, ==, 10);
    g_assert_cmpint(pc.sum, ==, 55);
    g_assert_true(co_queue_empty(&pc.nonempty));
    g_assert_false(co_queue_next(&pc.nonempty));
}

/* ---- CoRwlock ---- */

typedef struct {
    CoRwlock lock;
    int readers_in;
    int max_readers_in;
    bool writer_in;
    GString *trace;
    int finished;
} RwTest;

typedef struct {
    RwTest *t;
    char name;
    bool write;
} RwArg;

static void coroutine_fn rw_worker(void *opaque)
{
    RwArg *a = opaque;
    RwTest *t = a->t;
    if (a->write) {
        co_rwlock_wrlock(&t->lock);
        g_assert_false(t->writer_in);
        g_assert_cmpint(t->readers_in, ==, 0);
        t->writer_in = true;
        g_string_append_c(t->trace, a->name);
        co_sleep_ns(1000 * 1000);
        g_assert_cmpint(t->readers_in, ==, 0);
        t->writer_in = false;
    } else {
        co_rwlock_rdlock(&t->lock);
        g_assert_false(t->writer_in);
        t->readers_in++;
        t->max_readers_in = MAX(t->max_readers_in, t->readers_in);
        g_string_append_c(t->trace, a->name);
        co_sleep_ns(1000 * 1000);
        g_assert_false(t->writer_in);
        t->readers_in--;
    }
    co_rwlock_unlock(&t->lock);
    t->finished++;
}

static void test_rwlock(void)
{
    /* r r W r r W r: the first two readers share the lock; the writer
     * waits for them; the readers after a queued writer wait for it
     * (no writer starvation), then run together. */
    const char *script = "abWcdXe";
    RwTest t = { .trace = g_string_new(NULL) };
    RwArg args[7];
    co_rwlock_init(&t.lock);
    for (int i = 0; script[i]; i++) {
        args[i] = (RwArg){ &t, script[i], g_ascii_isupper(script[i]) };
        coroutine_enter(coroutine_create(rw_worker, &args[i]));
    }
    int64_t deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (t.finished < 7 && g_get_monotonic_time() < deadline) {
        aio_poll(qb_get_aio_context(), true);
    }
    g_assert_cmpint(t.finished, ==, 7);
    g_assert_cmpstr(t.trace->str, ==, "abWcdXe");
    g_assert_cmpint(t.max_readers_in, ==, 2);
    g_assert_false(t.lock.writer);
    g_assert_cmpint(t.lock.readers, ==, 0);
    g_assert_cmpint(t.lock.pending_writers, ==, 0);
    g_string_free(t.trace, TRUE);
}

/* Stream of readers arriving while a writer waits: the writer gets in
 * after the readers that were there before it, not after all of them. */
static void test_rwlock_no_starve(void)
{
    RwTest t = { .trace = g_string_new(NULL) };
    RwArg args[20];
    co_rwlock_init(&t.lock);
    for (int i = 0; i < 20; i++) {
        args[i] = (RwArg){ &t, i == 3 ? 'W' : 'r', i == 3 };
        coroutine_enter(coroutine_create(rw_worker, &args[i]));
    }
    int64_t deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (t.finished < 20 && g_get_monotonic_time() < deadline) {
        aio_poll(qb_get_aio_context(), true);
    }
    g_assert_cmpint(t.finished, ==, 20);
    g_assert_cmpstr(t.trace->str, ==, "rrrWrrrrrrrrrrrrrrrr");
    g_assert_cmpint(t.max_readers_in, ==, 16);
    g_string_free(t.trace, TRUE);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/coroutine/basic", test_basic);
    g_test_add_func("/coroutine/self", test_self);
    g_test_add_func("/coroutine/yield", test_yield);
    g_test_add_func("/coroutine/nesting", test_nesting);
    g_test_add_func("/coroutine/many", test_many);
    g_test_add_func("/coroutine/pool-reuse", test_pool_reuse);
    g_test_add_func("/coroutine/reenter-aborts", test_reenter_aborts);
    g_test_add_func("/coroutine/run-sync", test_run_sync);
    g_test_add_func("/coroutine/run-sync-nested", test_run_sync_nested);
    g_test_add_func("/coroutine/comutex", test_comutex);
    g_test_add_func("/coroutine/coqueue", test_coqueue);
    g_test_add_func("/coroutine/rwlock", test_rwlock);
    g_test_add_func("/coroutine/rwlock-no-starve", test_rwlock_no_starve);
    return g_test_run();
}
