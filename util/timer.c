/*
 * Timers of an AioContext and co_sleep_ns().
 *
 * Each context keeps one list per clock, sorted by expiry time (ties in
 * arming order).  aio_poll() sleeps no longer than the earliest deadline and
 * runs expired timers after fds and BHs.  Timers are used only from the
 * context's own thread, so no locking.
 *
 * Invariant: t->pending iff t is linked in t->ctx->timers[t->type].
 */
#include "util/coroutine-int.h"

struct QBTimer {
    AioContext *ctx;
    QBClockType type;
    QBTimerCB *cb;
    void *opaque;
    int64_t expire_ns;
    bool pending;
};

int64_t qb_clock_get_ns(QBClockType type)
{
    return type == QB_CLOCK_REALTIME ? qb_clock_ns_realtime()
                                     : qb_clock_ns_monotonic();
}

QBTimer *aio_timer_new(AioContext *ctx, QBClockType type, QBTimerCB *cb,
                       void *opaque)
{
    QBTimer *t = g_new0(QBTimer, 1);

    assert(type == QB_CLOCK_REALTIME || type == QB_CLOCK_MONOTONIC);
    t->ctx = ctx;
    t->type = type;
    t->cb = cb;
    t->opaque = opaque;
    return t;
}

void qb_timer_del(QBTimer *t)
{
    if (t->pending) {
        GList **list = &t->ctx->timers[t->type];
        *list = g_list_remove(*list, t);
        t->pending = false;
    }
}

static gint timer_cmp(gconstpointer a, gconstpointer b)
{
    const QBTimer *ta = a, *tb = b;

    /* Equal deadlines compare "greater" so the new timer goes after the
     * already armed ones (g_list_insert_sorted inserts before the first
     * element that compares greater). */
    return ta->expire_ns < tb->expire_ns ? -1 : 1;
}

void qb_timer_mod_ns(QBTimer *t, int64_t expire_ns)
{
    GList **list = &t->ctx->timers[t->type];
    bool first;

    qb_timer_del(t);
    t->expire_ns = expire_ns;
    *list = g_list_insert_sorted(*list, t, timer_cmp);
    t->pending = true;
    first = (*list)->data == t;
    /* A new earliest deadline shortens the wait of a poll that is already
     * sleeping (only possible through the GSource of another thread's main
     * loop; cheap when nobody waits). */
    if (first) {
        aio_notify(t->ctx);
    }
}

void qb_timer_free(QBTimer *t)
{
    if (t) {
        qb_timer_del(t);
        g_free(t);
    }
}

bool qb_timer_pending(QBTimer *t)
{
    return t->pending;
}

int64_t aio_timers_deadline_ns(AioContext *ctx)
{
    int64_t best = -1;

    for (int type = 0; type < 2; type++) {
        GList *head = ctx->timers[type];
        if (head) {
            QBTimer *t = head->data;
            int64_t left = t->expire_ns - qb_clock_get_ns(type);
            if (left < 0) {
                left = 0;
            }
            if (best < 0 || left < best) {
                best = left;
            }
        }
    }
    return best;
}

bool aio_timers_run(AioContext *ctx)
{
    bool progress = false;

    for (int type = 0; type < 2; type++) {
        int64_t now = qb_clock_get_ns(type);
        /* Only timers due at 'now': one that re-arms itself for the past
         * would otherwise spin here forever. */
        while (ctx->timers[type]) {
            QBTimer *t = ctx->timers[type]->data;
            if (t->expire_ns > now) {
                break;
            }
            ctx->timers[type] = g_list_delete_link(ctx->timers[type],
                                                   ctx->timers[type]);
            t->pending = false;
            t->cb(t->opaque);
            progress = true;
        }
    }
    return progress;
}

void aio_timers_cleanup(AioContext *ctx)
{
    for (int type = 0; type < 2; type++) {
        for (GList *l = ctx->timers[type]; l; l = l->next) {
            ((QBTimer *)l->data)->pending = false;
        }
        g_list_free(ctx->timers[type]);
        ctx->timers[type] = NULL;
    }
}

/* ---- co_sleep_ns ---- */

static void co_sleep_cb(void *opaque)
{
    aio_co_wake(opaque);
}

void coroutine_fn co_sleep_ns(int64_t ns)
{
    Coroutine *self = coroutine_self();
    AioContext *ctx = coroutine_get_aio_context(self);
    QBTimer t = {
        .ctx = ctx, .type = QB_CLOCK_MONOTONIC, .cb = co_sleep_cb,
        .opaque = self,
    };

    assert(self);
    qb_timer_mod_ns(&t, qb_clock_get_ns(QB_CLOCK_MONOTONIC) + MAX(ns, 0));
    coroutine_yield();
    qb_timer_del(&t);
}
