/*
 * Locks for coroutines: CoQueue (a FIFO of waiters), CoMutex and CoRwlock.
 * Waiting never blocks the thread: the waiter queues itself and yields, and
 * whoever releases the lock wakes it with aio_co_wake() (which enters it
 * right after the releasing coroutine yields, or via its AioContext).
 *
 * Ownership is handed off: an unlock that finds a waiter makes that waiter
 * the owner before waking it, so nobody can barge in between and the order
 * of acquisition is the order of arrival.
 *
 * These structures are not protected against concurrent use by coroutines
 * running in different threads at the same moment: all users of one lock
 * must live in one AioContext (as every user of one BlockDriverState does).
 *
 * Invariants:
 * 1. CoMutex: locked == (holder != NULL); waiters non-empty => locked.
 * 2. CoRwlock: writer => readers == 0; pending_writers == number of writers
 *    in the queue; the queue is empty unless the head cannot be granted.
 */
#include "util/coroutine-int.h"

void co_queue_init(CoQueue *q)
{
    g_queue_init(&q->waiters);
}

void coroutine_fn co_queue_wait(CoQueue *q, CoMutex *mutex)
{
    Coroutine *self = coroutine_self();

    assert(self);
    g_queue_push_tail(&q->waiters, self);
    if (mutex) {
        co_mutex_unlock(mutex);
    }
    coroutine_yield();
    if (mutex) {
        co_mutex_lock(mutex);
    }
}

bool co_queue_next(CoQueue *q)
{
    Coroutine *co = g_queue_pop_head(&q->waiters);

    if (!co) {
        return false;
    }
    aio_co_wake(co);
    return true;
}

void co_queue_restart_all(CoQueue *q)
{
    while (co_queue_next(q)) {
    }
}

bool co_queue_empty(CoQueue *q)
{
    return g_queue_is_empty(&q->waiters);
}

/* ---- CoMutex ---- */

void co_mutex_init(CoMutex *m)
{
    m->locked = false;
    m->holder = NULL;
    g_queue_init(&m->waiters);
}

void coroutine_fn co_mutex_lock(CoMutex *m)
{
    Coroutine *self = coroutine_self();

    assert(self);
    if (!m->locked) {
        m->locked = true;
        m->holder = self;
        return;
    }
    assert(m->holder != self);   /* not recursive */
    g_queue_push_tail(&m->waiters, self);
    coroutine_yield();
    /* co_mutex_unlock made us the holder before waking us. */
    assert(m->locked && m->holder == self);
}

void coroutine_fn co_mutex_unlock(CoMutex *m)
{
    Coroutine *next;

    assert(m->locked && m->holder == coroutine_self());
    next = g_queue_pop_head(&m->waiters);
    if (next) {
        m->holder = next;
        aio_co_wake(next);
    } else {
        m->locked = false;
        m->holder = NULL;
    }
}

void coroutine_fn co_mutex_assert_locked(CoMutex *m)
{
    assert(m->locked && m->holder == coroutine_self());
}

/* ---- CoRwlock ---- */

/* Queue entries live on the waiter's stack while it sleeps. */
typedef struct RwWaiter {
    Coroutine *co;
    bool write;
} RwWaiter;

void co_rwlock_init(CoRwlock *l)
{
    l->readers = 0;
    l->writer = false;
    l->pending_writers = 0;
    co_queue_init(&l->queue);
}

/* Grant the lock to waiters at the head of the queue while possible: a run
 * of readers together, or one writer once everybody has left. */
static void co_rwlock_grant(CoRwlock *l)
{
    RwWaiter *w;

    while ((w = g_queue_peek_head(&l->queue.waiters))) {
        if (w->write) {
            if (l->writer || l->readers) {
                return;
            }
            l->writer = true;
            l->pending_writers--;
        } else {
            if (l->writer) {
                return;
            }
            l->readers++;
        }
        g_queue_pop_head(&l->queue.waiters);
        aio_co_wake(w->co);
        if (w->write) {
            return;
        }
    }
}

void coroutine_fn co_rwlock_rdlock(CoRwlock *l)
{
    RwWaiter w = { coroutine_self(), false };

    assert(w.co);
    /* Queue behind any waiter (in particular a writer), so that a stream of
     * readers cannot starve writers. */
    if (!l->writer && g_queue_is_empty(&l->queue.waiters)) {
        l->readers++;
        return;
    }
    g_queue_push_tail(&l->queue.waiters, &w);
    coroutine_yield();
    assert(!l->writer && l->readers > 0);
}

void coroutine_fn co_rwlock_wrlock(CoRwlock *l)
{
    RwWaiter w = { coroutine_self(), true };

    assert(w.co);
    if (!l->writer && !l->readers && g_queue_is_empty(&l->queue.waiters)) {
        l->writer = true;
        return;
    }
    l->pending_writers++;
    g_queue_push_tail(&l->queue.waiters, &w);
    coroutine_yield();
    assert(l->writer && l->readers == 0);
}

void coroutine_fn co_rwlock_unlock(CoRwlock *l)
{
    if (l->writer) {
        l->writer = false;
    } else {
        assert(l->readers > 0);
        l->readers--;
    }
    co_rwlock_grant(l);
}
