/*
 * Private view of Coroutine and AioContext shared by the util/ files that
 * implement them (coroutine.c, coroutine-lock.c, async.c, aio-posix.c,
 * timer.c, thread-pool.c, linux-aio.c, io-uring.c).  Nothing outside util/
 * includes this.
 */
#ifndef UTIL_COROUTINE_INT_H
#define UTIL_COROUTINE_INT_H

#include "util/aio.h"
#include "util/coroutine.h"
#include <setjmp.h>

struct Coroutine {
    CoroutineEntry *entry;
    void *opaque;
    /* Who entered us; non-NULL exactly while we run (or run something we
     * entered).  NULL for the thread's leader. */
    Coroutine *caller;
    /* Context of the thread that last entered us: where wake-ups go. */
    AioContext *ctx;
    /* Set (atomically) while queued by aio_co_schedule; catches a second
     * schedule of the same coroutine, which would corrupt the queue. */
    int scheduled;
    /* Leader of the thread executing on our stack, NULL once a switch away
     * from us has completed.  Another thread that wants to enter us (after
     * an aio_co_schedule) waits for NULL: we may have queued ourselves and
     * not yet finished yielding. */
    Coroutine *active;
    bool terminated;
    /* Coroutines woken by this one in its own thread: entered right after
     * this one yields, so a wake-up never nests one stack inside another. */
    GQueue wakeup;
    /* Next coroutine in the thread's pool of finished ones (coroutine.c). */
    struct Coroutine *pool_next;

    /* Machine state: saved stack pointer (asm switch) or jmp_buf. */
    void *sp;
    jmp_buf env;
    void *stack;          /* mmap'd region including the guard page */
    size_t stack_size;    /* usable bytes above the guard page */

    /* AddressSanitizer fiber bookkeeping. */
    void *asan_fake_stack;
    const void *asan_bottom;
    size_t asan_size;
};

/* Enter co after the running coroutine yields (same thread only). */
void coroutine_wake_after_yield(Coroutine *co);

/* The calling thread's context without the main-context fallback: NULL for a
 * thread that never ran or was given a context. */
AioContext *qb_get_thread_aio_context(void);

/* ---- AioContext internals (async.c / aio-posix.c / timer.c) ---- */

typedef struct AioHandler {
    int fd;
    IOHandler *io_read;
    IOHandler *io_write;
    void *opaque;
    bool internal;       /* the notifier: dispatching it is not progress */
} AioHandler;

struct QBBH {
    AioContext *ctx;
    QBBHFunc *cb;
    void *opaque;
    GList link;          /* in ctx->bh_pending while scheduled */
    bool scheduled;      /* protected by ctx->bh_lock */
    bool oneshot;
};

struct AioContext {
    GSource source;      /* must be first: an AioContext is a GSource */
    int epollfd;
    int notify_fd;       /* eventfd written by aio_notify */
    /* Non-zero while a poll of this context may block: bit 0 for the GSource
     * (between prepare and check), +2 for each blocking aio_poll. */
    int notify_me;
    /* Set by aio_notify, cleared by the poll it wakes: a notify that lands
     * just before a poll starts waiting still makes that poll return. */
    int notified;
    GHashTable *handlers;        /* fd -> AioHandler* */
    gpointer epoll_tag;          /* g_source_add_unix_fd tag */

    GMutex bh_lock;
    GQueue bh_pending;           /* QBBH*, FIFO */

    GMutex co_lock;
    GQueue co_scheduled;         /* Coroutine*, FIFO */
    QBBH *co_schedule_bh;

    GList *timers[2];            /* QBTimer*, sorted by expiry */

    ThreadPool *thread_pool;
    LinuxAioState *linux_aio;
    LuringState *io_uring;
};

/* aio-posix.c */
void aio_posix_init(AioContext *ctx);
void aio_posix_cleanup(AioContext *ctx);
/* Wait up to timeout_ns (-1: forever, 0: don't wait) and dispatch ready
 * fds; true if a non-internal handler ran. */
bool aio_dispatch_fds(AioContext *ctx, int64_t timeout_ns);

/* async.c */
bool aio_bh_poll(AioContext *ctx);
bool aio_bh_pending(AioContext *ctx);
void aio_set_thread_aio_context(AioContext *ctx);

/* timer.c */
/* Nanoseconds until the earliest timer expires: 0 if one is due, -1 if none. */
int64_t aio_timers_deadline_ns(AioContext *ctx);
bool aio_timers_run(AioContext *ctx);
void aio_timers_cleanup(AioContext *ctx);

#endif
