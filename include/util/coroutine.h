/*
 * Coroutines and the locks that coroutines wait on.
 *
 * A coroutine is a function with its own stack that can suspend itself
 * (coroutine_yield) and be resumed later (coroutine_enter / aio_co_wake).
 * Switching is a user-space register swap: no system call per switch.
 * Coroutines belong to the AioContext of the thread that first enters them;
 * they are never resumed by two threads at once.
 *
 * The lock types never block the thread: a coroutine that has to wait is
 * queued and yields; the unlocker re-schedules it in its AioContext.
 */
#ifndef UTIL_COROUTINE_H
#define UTIL_COROUTINE_H

#include "util/common.h"

typedef struct Coroutine Coroutine;
typedef struct AioContext AioContext;
typedef void coroutine_fn CoroutineEntry(void *opaque);

/* Create a coroutine; it does not run until entered.  It frees itself when
 * its entry function returns. */
Coroutine *coroutine_create(CoroutineEntry *entry, void *opaque);
/* Run co until it yields or terminates.  Must not be called on a coroutine
 * that is already running or queued for wake-up. */
void coroutine_enter(Coroutine *co);
/* Enter co unless it has already terminated. (Convenience for BH callbacks.) */
void coroutine_enter_if_inactive(Coroutine *co);
/* Suspend the current coroutine, returning to whoever entered it. */
void coroutine_fn coroutine_yield(void);
/* The running coroutine, or NULL when not in coroutine context. */
Coroutine *coroutine_self(void);
bool in_coroutine(void);
/* True if co has been entered and has not yet terminated or yielded. */
bool coroutine_entered(Coroutine *co);
/* AioContext the coroutine belongs to (set when it is first entered). */
AioContext *coroutine_get_aio_context(Coroutine *co);

/*
 * CoQueue: FIFO of waiting coroutines.  Can be used with a CoMutex (which is
 * released while waiting and re-taken on wake-up) or with no lock (NULL).
 */
typedef struct CoMutex CoMutex;
typedef struct CoQueue {
    GQueue waiters;  /* Coroutine* */
} CoQueue;
void co_queue_init(CoQueue *q);
void coroutine_fn co_queue_wait(CoQueue *q, CoMutex *mutex);
/* Wake the first waiter; returns false if there was none. */
bool co_queue_next(CoQueue *q);
void co_queue_restart_all(CoQueue *q);
bool co_queue_empty(CoQueue *q);

/* CoMutex: mutual exclusion among coroutines, FIFO-fair, not recursive.
 * All users of one CoMutex / CoQueue / CoRwlock must run in one AioContext
 * (these locks are not protected against two threads at once). */
struct CoMutex {
    bool locked;
    Coroutine *holder;
    GQueue waiters;  /* Coroutine* */
};
void co_mutex_init(CoMutex *m);
void coroutine_fn co_mutex_lock(CoMutex *m);
void coroutine_fn co_mutex_unlock(CoMutex *m);
void coroutine_fn co_mutex_assert_locked(CoMutex *m);

/* CoRwlock: many readers or one writer; writers do not starve. */
typedef struct CoRwlock {
    int readers;
    bool writer;
    int pending_writers;
    CoQueue queue;
} CoRwlock;
void co_rwlock_init(CoRwlock *l);
void coroutine_fn co_rwlock_rdlock(CoRwlock *l);
void coroutine_fn co_rwlock_wrlock(CoRwlock *l);
void coroutine_fn co_rwlock_unlock(CoRwlock *l);

/* Sleep in the current coroutine's AioContext. */
void coroutine_fn co_sleep_ns(int64_t ns);

/*
 * Run fn(opaque) in a new coroutine and wait for it from outside coroutine
 * context by polling the current thread's AioContext; if already in a
 * coroutine, just call it.  This is how synchronous wrappers are built.
 */
void coroutine_run_sync(CoroutineEntry *fn, void *opaque);

#endif
