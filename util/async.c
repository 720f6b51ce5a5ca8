/*
 * AioContext lifetime and everything in it that is not an fd: bottom halves
 * (BHs), scheduled coroutines, the per-thread "current context", the GSource
 * face of a context, and the lazily created I/O engines.
 *
 * An AioContext *is* a GSource (the GSource is its first member), so its
 * reference count is the GSource's and a GLib main loop can drive it.
 *
 * Invariants:
 * 1. A BH is in ctx->bh_pending iff bh->scheduled; both change only under
 *    ctx->bh_lock, so scheduling from any thread is safe.
 * 2. A dispatched BH is unlinked and its 'scheduled' flag cleared before its
 *    callback runs: the callback may reschedule or delete it.
 * 3. aio_bh_poll runs at most the BHs that were pending when it started, so
 *    a BH that reschedules itself cannot starve fds and timers.
 * 4. Wake-up ordering: a scheduler publishes its work (under a lock) before
 *    reading notify_me; a poller raises notify_me before looking for work.
 *    So either the poller sees the work or the scheduler sees notify_me and
 *    kicks the eventfd.
 */
#include "util/coroutine-int.h"
#include "util/thread-pool.h"
#include "util/raw-aio.h"

static __thread AioContext *tls_ctx;
static AioContext *main_ctx;

/* Thread-local access kept out of line: coroutines can migrate between
 * threads, see util/coroutine.c. */
AioContext * __attribute__((noinline)) qb_get_thread_aio_context(void)
{
    __asm__ volatile("" ::: "memory");
    return tls_ctx;
}

void __attribute__((noinline)) aio_set_thread_aio_context(AioContext *ctx)
{
    __asm__ volatile("" ::: "memory");
    tls_ctx = ctx;
}

AioContext *qb_get_aio_context(void)
{
    static gsize once;

    if (g_once_init_enter(&once)) {
        main_ctx = aio_context_new(&error_abort);
        if (!qb_get_thread_aio_context()) {
            aio_set_thread_aio_context(main_ctx);
        }
        g_once_init_leave(&once, 1);
    }
    return main_ctx;
}

AioContext *qb_get_current_aio_context(void)
{
    AioContext *ctx = qb_get_thread_aio_context();

    return ctx ? ctx : qb_get_aio_context();
}

void qb_set_current_aio_context(AioContext *ctx)
{
    aio_set_thread_aio_context(ctx);
}

/* ---- bottom halves ---- */

QBBH *aio_bh_new(AioContext *ctx, QBBHFunc *cb, void *opaque)
{
    QBBH *bh = g_new0(QBBH, 1);

    bh->ctx = ctx;
    bh->cb = cb;
    bh->opaque = opaque;
    bh->link.data = bh;
    return bh;
}

void qb_bh_schedule(QBBH *bh)
{
    AioContext *ctx = bh->ctx;
    bool kick = false;

    g_mutex_lock(&ctx->bh_lock);
    if (!bh->scheduled) {
        bh->scheduled = true;
        g_queue_push_tail_link(&ctx->bh_pending, &bh->link);
        kick = true;
    }
    g_mutex_unlock(&ctx->bh_lock);
    if (kick) {
        aio_notify(ctx);
    }
}

void qb_bh_cancel(QBBH *bh)
{
    AioContext *ctx = bh->ctx;

    g_mutex_lock(&ctx->bh_lock);
    if (bh->scheduled) {
        bh->scheduled = false;
        g_queue_unlink(&ctx->bh_pending, &bh->link);
    }
    g_mutex_unlock(&ctx->bh_lock);
}

void qb_bh_delete(QBBH *bh)
{
    if (!bh) {
        return;
    }
    qb_bh_cancel(bh);
    g_free(bh);
}

void aio_bh_schedule_oneshot(AioContext *ctx, QBBHFunc *cb, void *opaque)
{
    QBBH *bh = aio_bh_new(ctx, cb, opaque);

    bh->oneshot = true;
    qb_bh_schedule(bh);
}

bool aio_bh_pending(AioContext *ctx)
{
    bool pending;

    g_mutex_lock(&ctx->bh_lock);
    pending = !g_queue_is_empty(&ctx->bh_pending);
    g_mutex_unlock(&ctx->bh_lock);
    return pending;
}

bool aio_bh_poll(AioContext *ctx)
{
    guint budget;
    bool progress = false;

    g_mutex_lock(&ctx->bh_lock);
    budget = ctx->bh_pending.length;
    g_mutex_unlock(&ctx->bh_lock);

    while (budget-- > 0) {
        QBBH *bh;
        QBBHFunc *cb;
        void *opaque;
        bool oneshot;

        g_mutex_lock(&ctx->bh_lock);
        GList *l = g_queue_peek_head_link(&ctx->bh_pending);
        if (!l) {
            g_mutex_unlock(&ctx->bh_lock);
            break;
        }
        bh = l->data;
        g_queue_unlink(&ctx->bh_pending, l);
        bh->scheduled = false;
        g_mutex_unlock(&ctx->bh_lock);

        cb = bh->cb;
        opaque = bh->opaque;
        oneshot = bh->oneshot;
        if (oneshot) {
            g_free(bh);   /* nobody else holds a one-shot BH */
        }
        cb(opaque);
        progress = true;
    }
    return progress;
}

/* ---- coroutine scheduling ---- */

static void co_schedule_bh_cb(void *opaque)
{
    AioContext *ctx = opaque;
    GQueue batch = G_QUEUE_INIT;
    Coroutine *co;

    g_mutex_lock(&ctx->co_lock);
    batch = ctx->co_scheduled;
    g_queue_init(&ctx->co_scheduled);
    g_mutex_unlock(&ctx->co_lock);

    while ((co = g_queue_pop_head(&batch))) {
        __atomic_store_n(&co->scheduled, 0, __ATOMIC_RELEASE);
        coroutine_enter(co);
    }
}

void aio_co_schedule(AioContext *ctx, Coroutine *co)
{
    if (__atomic_exchange_n(&co->scheduled, 1, __ATOMIC_ACQ_REL)) {
        fprintf(stderr, "coroutine %p scheduled twice\n", (void *)co);
        abort();
    }
    g_mutex_lock(&ctx->co_lock);
    g_queue_push_tail(&ctx->co_scheduled, co);
    g_mutex_unlock(&ctx->co_lock);
    qb_bh_schedule(ctx->co_schedule_bh);
}

void aio_co_enter(AioContext *ctx, Coroutine *co)
{
    if (ctx != qb_get_thread_aio_context()) {
        aio_co_schedule(ctx, co);
    } else if (in_coroutine()) {
        coroutine_wake_after_yield(co);
    } else {
        coroutine_enter(co);
    }
}

void aio_co_wake(Coroutine *co)
{
    AioContext *ctx = __atomic_load_n(&co->ctx, __ATOMIC_ACQUIRE);

    assert(ctx);
    aio_co_enter(ctx, co);
}

/* ---- notify ---- */

void aio_notify(AioContext *ctx)
{
    __atomic_store_n(&ctx->notified, 1, __ATOMIC_SEQ_CST);
    /* Pairs with the fetch_add in aio_poll / aio_ctx_prepare. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(&ctx->notify_me, __ATOMIC_RELAXED)) {
        uint64_t one = 1;
        ssize_t r;
        do {
            r = write(ctx->notify_fd, &one, sizeof(one));
        } while (r < 0 && errno == EINTR);
    }
}

/* ---- GSource ---- */

static int64_t aio_compute_timeout_ns(AioContext *ctx)
{
    if (__atomic_load_n(&ctx->notified, __ATOMIC_SEQ_CST) ||
        aio_bh_pending(ctx)) {
        return 0;
    }
    return aio_timers_deadline_ns(ctx);
}

static gboolean aio_ctx_prepare(GSource *source, gint *timeout)
{
    AioContext *ctx = (AioContext *)source;
    int64_t ns;

    __atomic_fetch_or(&ctx->notify_me, 1, __ATOMIC_SEQ_CST);
    ns = aio_compute_timeout_ns(ctx);
    if (ns < 0) {
        *timeout = -1;
    } else {
        *timeout = MIN(QB_DIV_ROUND_UP(ns, 1000000), INT_MAX);
    }
    return ns == 0;
}

static gboolean aio_ctx_check(GSource *source)
{
    AioContext *ctx = (AioContext *)source;

    __atomic_fetch_and(&ctx->notify_me, ~1, __ATOMIC_SEQ_CST);
    if (g_source_query_unix_fd(source, ctx->epoll_tag) & G_IO_IN) {
        return TRUE;
    }
    return aio_compute_timeout_ns(ctx) == 0;
}

static gboolean aio_ctx_dispatch(GSource *source, GSourceFunc callback,
                                 gpointer user_data)
{
    AioContext *ctx = (AioContext *)source;

    aio_poll(ctx, false);
    return G_SOURCE_CONTINUE;
}

static void aio_ctx_finalize(GSource *source)
{
    AioContext *ctx = (AioContext *)source;

    if (ctx->thread_pool) {
        thread_pool_free(ctx->thread_pool);
    }
    if (ctx->linux_aio) {
        laio_cleanup(ctx->linux_aio);
    }
    if (ctx->io_uring) {
        luring_cleanup(ctx->io_uring);
    }
    qb_bh_delete(ctx->co_schedule_bh);
    /* BHs still pending belong to their owners; only one-shots are ours. */
    g_mutex_lock(&ctx->bh_lock);
    while (!g_queue_is_empty(&ctx->bh_pending)) {
        GList *l = g_queue_peek_head_link(&ctx->bh_pending);
        QBBH *bh = l->data;
        g_queue_unlink(&ctx->bh_pending, l);
        bh->scheduled = false;
        if (bh->oneshot) {
            g_free(bh);
        }
    }
    g_mutex_unlock(&ctx->bh_lock);
    aio_timers_cleanup(ctx);
    aio_posix_cleanup(ctx);
    g_mutex_clear(&ctx->bh_lock);
    g_mutex_clear(&ctx->co_lock);
}

static GSourceFuncs aio_source_funcs = {
    .prepare = aio_ctx_prepare,
    .check = aio_ctx_check,
    .dispatch = aio_ctx_dispatch,
    .finalize = aio_ctx_finalize,
};

AioContext *aio_context_new(Error **errp)
{
    AioContext *ctx;

    ctx = (AioContext *)g_source_new(&aio_source_funcs, sizeof(AioContext));
    g_source_set_name(&ctx->source, "AioContext");
    g_mutex_init(&ctx->bh_lock);
    g_mutex_init(&ctx->co_lock);
    g_queue_init(&ctx->bh_pending);
    g_queue_init(&ctx->co_scheduled);
    aio_posix_init(ctx);
    if (ctx->epollfd < 0 || ctx->notify_fd < 0) {
        error_setg_errno(errp, errno, "Failed to initialize event loop");
        g_source_destroy(&ctx->source);
        g_source_unref(&ctx->source);
        return NULL;
    }
    ctx->epoll_tag = g_source_add_unix_fd(&ctx->source, ctx->epollfd, G_IO_IN);
    ctx->co_schedule_bh = aio_bh_new(ctx, co_schedule_bh_cb, ctx);
    return ctx;
}

void aio_context_ref(AioContext *ctx)
{
    g_source_ref(&ctx->source);
}

void aio_context_unref(AioContext *ctx)
{
    g_source_unref(&ctx->source);
}

GSource *aio_get_g_source(AioContext *ctx)
{
    g_source_ref(&ctx->source);
    return &ctx->source;
}

/* ---- lazily created engines ---- */

ThreadPool *aio_get_thread_pool(AioContext *ctx)
{
    if (!ctx->thread_pool) {
        ctx->thread_pool = thread_pool_new(ctx);
    }
    return ctx->thread_pool;
}

LinuxAioState *aio_get_linux_aio(AioContext *ctx, Error **errp)
{
    if (!ctx->linux_aio) {
        ctx->linux_aio = laio_init(ctx, errp);
    }
    return ctx->linux_aio;
}

LuringState *aio_get_linux_io_uring(AioContext *ctx, Error **errp)
{
    if (!ctx->io_uring) {
        ctx->io_uring = luring_init(ctx, errp);
    }
    return ctx->io_uring;
}
