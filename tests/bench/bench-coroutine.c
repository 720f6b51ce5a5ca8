/*
 * Coroutine micro-benchmarks: enter+yield round trips of one coroutine
 * (the switch cost), create+enter+terminate of short coroutines (the pool),
 * and CoMutex hand-off between two coroutines.
 * Usage: bench-coroutine [iterations]   (default 10 million)
 */
#include "util/aio.h"
#include "util/coroutine.h"

static void coroutine_fn yielder(void *opaque)
{
    for (;;) {
        coroutine_yield();
    }
}

static void coroutine_fn nothing(void *opaque)
{
}

typedef struct {
    CoMutex *m;
    long n;
} Locker;

static void coroutine_fn locker(void *opaque)
{
    Locker *l = opaque;
    for (long i = 0; i < l->n; i++) {
        co_mutex_lock(l->m);
        coroutine_yield();    /* the other one queues up meanwhile */
        co_mutex_unlock(l->m);
    }
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10 * 1000 * 1000;
    int64_t t0, t1;

    /* Switches: the yielder never terminates; it is leaked at exit. */
    Coroutine *co = coroutine_create(yielder, NULL);
    coroutine_enter(co);
    t0 = qb_clock_ns_monotonic();
    for (long i = 0; i < n; i++) {
        coroutine_enter(co);
    }
    t1 = qb_clock_ns_monotonic();
    printf("coroutine switches per second: %.0f\n", n / ((t1 - t0) / 1e9));
    printf("ns per enter+yield pair: %.1f\n", (double)(t1 - t0) / n);

    long m = n / 10;
    t0 = qb_clock_ns_monotonic();
    for (long i = 0; i < m; i++) {
        coroutine_enter(coroutine_create(nothing, NULL));
    }
    t1 = qb_clock_ns_monotonic();
    printf("coroutine create+run per second: %.0f\n", m / ((t1 - t0) / 1e9));

    /* Mutex hand-off: two coroutines alternate ownership. */
    CoMutex mutex;
    co_mutex_init(&mutex);
    Locker a = { &mutex, m }, b = { &mutex, m };
    Coroutine *ca = coroutine_create(locker, &a);
    Coroutine *cb = coroutine_create(locker, &b);
    t0 = qb_clock_ns_monotonic();
    coroutine_enter(ca);
    coroutine_enter(cb);
    for (long i = 0; i < m && mutex.locked; i++) {
        /* Whoever holds the lock is suspended in coroutine_yield. */
        coroutine_enter(mutex.holder);
    }
    t1 = qb_clock_ns_monotonic();
    printf("comutex lock+unlock per second: %.0f\n", m / ((t1 - t0) / 1e9));
    return 0;
}
