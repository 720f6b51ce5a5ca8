/*
 * The fd side of an AioContext and aio_poll(), on top of epoll.
 *
 * One epoll instance per context holds every registered fd (level-triggered)
 * plus the context's notify eventfd.  The epoll fd itself is what the
 * GSource face of the context hands to GLib, so a GLib main loop and
 * aio_poll() wait on exactly the same set of events.
 *
 * Invariants:
 * 1. epoll's registration for fd matches ctx->handlers[fd]: EPOLLIN iff
 *    io_read, EPOLLOUT iff io_write, absent iff no entry.
 * 2. Dispatch looks a handler up by fd at call time, never through a pointer
 *    saved before the wait: a callback may remove or replace any handler
 *    (including its own), or poll the context recursively.
 */
#include "util/coroutine-int.h"
#include <sys/epoll.h>
#include <sys/eventfd.h>

#define AIO_MAX_EVENTS 128

static void aio_notifier_read(void *opaque)
{
    AioContext *ctx = opaque;
    uint64_t v;

    /* Non-blocking: several notifies collapse into one read. */
    while (read(ctx->notify_fd, &v, sizeof(v)) < 0 && errno == EINTR) {
    }
}

static void aio_handler_free(gpointer p)
{
    g_free(p);
}

static void aio_epoll_update(AioContext *ctx, int fd, AioHandler *old,
                             AioHandler *new)
{
    struct epoll_event ev = { 0 };
    int op;

    if (new) {
        ev.events = (new->io_read ? EPOLLIN : 0) |
                    (new->io_write ? EPOLLOUT : 0);
        ev.data.fd = fd;
        op = old ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    } else {
        op = EPOLL_CTL_DEL;
    }
    if (epoll_ctl(ctx->epollfd, op, fd, &ev) < 0 && op != EPOLL_CTL_DEL) {
        /* Regular files cannot be polled (EPERM); anything else here is a
         * caller bug (closed fd). */
        g_warning("aio_set_fd_handler(fd %d): epoll_ctl: %s", fd,
                  g_strerror(errno));
    }
}

static void aio_set_fd_handler_full(AioContext *ctx, int fd, IOHandler *io_read,
                                    IOHandler *io_write, void *opaque,
                                    bool internal)
{
    AioHandler *old = g_hash_table_lookup(ctx->handlers, GINT_TO_POINTER(fd));
    AioHandler *new = NULL;

    if (io_read || io_write) {
        new = g_new0(AioHandler, 1);
        new->fd = fd;
        new->io_read = io_read;
        new->io_write = io_write;
        new->opaque = opaque;
        new->internal = internal;
    }
    aio_epoll_update(ctx, fd, old, new);
    if (new) {
        g_hash_table_replace(ctx->handlers, GINT_TO_POINTER(fd), new);
    } else if (old) {
        g_hash_table_remove(ctx->handlers, GINT_TO_POINTER(fd));
    }
}

void aio_set_fd_handler(AioContext *ctx, int fd, IOHandler *io_read,
                        IOHandler *io_write, void *opaque)
{
    aio_set_fd_handler_full(ctx, fd, io_read, io_write, opaque, false);
}

void aio_posix_init(AioContext *ctx)
{
    ctx->handlers = g_hash_table_new_full(NULL, NULL, NULL, aio_handler_free);
    ctx->epollfd = epoll_create1(EPOLL_CLOEXEC);
    ctx->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ctx->epollfd >= 0 && ctx->notify_fd >= 0) {
        aio_set_fd_handler_full(ctx, ctx->notify_fd, aio_notifier_read, NULL,
                                ctx, true);
    }
}

void aio_posix_cleanup(AioContext *ctx)
{
    g_hash_table_destroy(ctx->handlers);
    if (ctx->notify_fd >= 0) {
        close(ctx->notify_fd);
    }
    if (ctx->epollfd >= 0) {
        close(ctx->epollfd);
    }
}

/* epoll_pwait2 (Linux 5.11) takes a timespec: timers get better than
 * millisecond resolution.  Fall back to epoll_wait if it is missing. */
static int aio_epoll_wait(AioContext *ctx, struct epoll_event *events,
                          int64_t timeout_ns)
{
    static bool no_pwait2;

    if (timeout_ns > 0 && !__atomic_load_n(&no_pwait2, __ATOMIC_RELAXED)) {
        struct timespec ts = {
            .tv_sec = timeout_ns / 1000000000,
            .tv_nsec = timeout_ns % 1000000000,
        };
        int n = epoll_pwait2(ctx->epollfd, events, AIO_MAX_EVENTS, &ts, NULL);
        if (n >= 0 || errno != ENOSYS) {
            return n;
        }
        __atomic_store_n(&no_pwait2, true, __ATOMIC_RELAXED);
    }
    return epoll_wait(ctx->epollfd, events, AIO_MAX_EVENTS,
                      timeout_ns < 0 ? -1
                      : (int)MIN(QB_DIV_ROUND_UP(timeout_ns, 1000000),
                                 INT_MAX));
}

/* Wait, then (if blocking_ref) drop this poller's notify_me reference
 * before running any handler: from here on nothing sleeps in this poll, so
 * work that the handlers schedule (BHs, submissions) need not kick the
 * eventfd.  Keeping the reference across dispatch cost one write(2) per
 * completed request plus a read(2) and an extra epoll_wait per batch. */
static bool aio_wait_and_dispatch(AioContext *ctx, int64_t timeout_ns,
                                  bool blocking_ref)
{
    struct epoll_event events[AIO_MAX_EVENTS];
    bool progress = false;
    int n;

    do {
        n = aio_epoll_wait(ctx, events, timeout_ns);
    } while (n < 0 && errno == EINTR && timeout_ns == 0);
    if (blocking_ref) {
        __atomic_fetch_sub(&ctx->notify_me, 2, __ATOMIC_SEQ_CST);
    }
    /* The wake-up has been consumed; a notify that comes during the
     * dispatch below sets it again, so the next poll will not sleep. */
    __atomic_store_n(&ctx->notified, 0, __ATOMIC_SEQ_CST);
    for (int i = 0; i < n; i++) {
        int fd = events[i].data.fd;
        uint32_t ev = events[i].events;
        AioHandler *h;

        /* Errors and hang-ups are reported to whichever handlers exist:
         * the handler's own read/write then sees the condition. */
        if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            h = g_hash_table_lookup(ctx->handlers, GINT_TO_POINTER(fd));
            if (h && h->io_read) {
                progress |= !h->internal;
                h->io_read(h->opaque);
            }
        }
        if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
            h = g_hash_table_lookup(ctx->handlers, GINT_TO_POINTER(fd));
            if (h && h->io_write) {
                progress |= !h->internal;
                h->io_write(h->opaque);
            }
        }
    }
    return progress;
}

bool aio_dispatch_fds(AioContext *ctx, int64_t timeout_ns)
{
    return aio_wait_and_dispatch(ctx, timeout_ns, false);
}

bool aio_poll(AioContext *ctx, bool blocking)
{
    AioContext *saved = qb_get_thread_aio_context();
    bool progress;
    int64_t timeout_ns = 0;

    /* While we dispatch ctx, this thread is ctx's thread: coroutines entered
     * from here belong to ctx and aio_co_wake can enter them directly. */
    aio_set_thread_aio_context(ctx);

    if (blocking) {
        __atomic_fetch_add(&ctx->notify_me, 2, __ATOMIC_SEQ_CST);
        bool kicked = __atomic_load_n(&ctx->notified, __ATOMIC_SEQ_CST);
        timeout_ns = kicked || aio_bh_pending(ctx) ? 0
                                                   : aio_timers_deadline_ns(ctx);
    }
    progress = aio_wait_and_dispatch(ctx, timeout_ns, blocking);
    progress |= aio_bh_poll(ctx);
    progress |= aio_timers_run(ctx);

    aio_set_thread_aio_context(saved);
    return progress;
}
