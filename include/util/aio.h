/*
 * AioContext: the event loop.
 *
 * One AioContext per thread that does I/O; the main thread's is returned by
 * qb_get_aio_context().  An AioContext dispatches fd handlers, bottom halves
 * (BHs: callbacks scheduled to run soon, from any thread), timers, and
 * scheduled coroutines.  aio_poll() runs one iteration.  It is also a
 * GSource, so a GLib main loop can drive it.
 *
 * Thread rules: aio_bh_schedule_oneshot, qb_bh_schedule, aio_notify and
 * aio_co_schedule may be called from any thread; everything else only from
 * the thread that runs the context.
 */
#ifndef UTIL_AIO_H
#define UTIL_AIO_H

#include "util/common.h"
#include "util/error.h"
#include "util/coroutine.h"

typedef struct AioContext AioContext;
typedef void IOHandler(void *opaque);
typedef void QBBHFunc(void *opaque);
typedef struct QBBH QBBH;
typedef struct QBTimer QBTimer;
typedef void QBTimerCB(void *opaque);

typedef enum {
    QB_CLOCK_REALTIME,   /* wall clock, CLOCK_REALTIME */
    QB_CLOCK_MONOTONIC,  /* CLOCK_MONOTONIC */
} QBClockType;

AioContext *aio_context_new(Error **errp);
void aio_context_ref(AioContext *ctx);
void aio_context_unref(AioContext *ctx);

/* The main loop's context; created on first call. */
AioContext *qb_get_aio_context(void);
/* The context of the calling thread (main context if the thread has none). */
AioContext *qb_get_current_aio_context(void);
/* Make ctx the current context of the calling thread. */
void qb_set_current_aio_context(AioContext *ctx);

/* Register / update / remove (both NULL) handlers for fd. */
void aio_set_fd_handler(AioContext *ctx, int fd, IOHandler *io_read,
                        IOHandler *io_write, void *opaque);

QBBH *aio_bh_new(AioContext *ctx, QBBHFunc *cb, void *opaque);
void qb_bh_schedule(QBBH *bh);
void qb_bh_cancel(QBBH *bh);
void qb_bh_delete(QBBH *bh);
void aio_bh_schedule_oneshot(AioContext *ctx, QBBHFunc *cb, void *opaque);

QBTimer *aio_timer_new(AioContext *ctx, QBClockType type, QBTimerCB *cb,
                       void *opaque);
/* Fire at absolute time expire_ns of the timer's clock. */
void qb_timer_mod_ns(QBTimer *t, int64_t expire_ns);
void qb_timer_del(QBTimer *t);
void qb_timer_free(QBTimer *t);
bool qb_timer_pending(QBTimer *t);
int64_t qb_clock_get_ns(QBClockType type);

/* Wake up a blocking aio_poll on ctx (thread-safe).  A notify that arrives
 * before the poll starts waiting makes that poll return at once, so
 * "set a flag, then aio_notify" from another thread never loses a wake-up
 * of AIO_WAIT_WHILE. */
void aio_notify(AioContext *ctx);

/*
 * Run one iteration: dispatch what is ready.  If blocking, wait until at least
 * one event (handler, BH, timer, notify) has been dispatched.  Returns true if
 * progress was made.
 */
bool aio_poll(AioContext *ctx, bool blocking);

/* Resume co in ctx from a BH (thread-safe). */
void aio_co_schedule(AioContext *ctx, Coroutine *co);
/* Resume co in its own context: directly when called from that context's
 * thread outside coroutine context, otherwise via aio_co_schedule. */
void aio_co_wake(Coroutine *co);
/* Enter a coroutine in ctx (directly if ctx is current, else scheduled). */
void aio_co_enter(AioContext *ctx, Coroutine *co);

/* GSource view of ctx, for g_main_loop users (e.g. the monitor).  Returns
 * a new reference: g_source_attach() it, then g_source_unref() it. */
GSource *aio_get_g_source(AioContext *ctx);

/* Poll ctx until cond is false.  Must be called outside coroutine context. */
#define AIO_WAIT_WHILE(ctx, cond)  do {                 \
        AioContext *_ctx = (ctx);                        \
        while ((cond)) {                                 \
            aio_poll(_ctx, true);                        \
        }                                                \
    } while (0)

/* Lazily created per-context I/O engines (see util/raw-aio.h). */
typedef struct LinuxAioState LinuxAioState;
typedef struct LuringState LuringState;
typedef struct ThreadPool ThreadPool;
LinuxAioState *aio_get_linux_aio(AioContext *ctx, Error **errp);
LuringState *aio_get_linux_io_uring(AioContext *ctx, Error **errp);
ThreadPool *aio_get_thread_pool(AioContext *ctx);

#endif
