/*
 * Linux native AIO (libaio) engine of an AioContext.
 *
 * A request is queued by laio_co_submit, which then yields.  The queue is
 * handed to io_submit by a BH of the context, so every request issued during
 * one event-loop iteration goes to the kernel in one system call (or as soon
 * as a batch is full).  Completions are signalled on an eventfd registered
 * in the context; its handler reaps them with a non-blocking io_getevents and
 * wakes the waiting coroutines.
 *
 * Invariants:
 * 1. in_flight == requests accepted by io_submit and not yet reaped;
 *    in_flight <= MAX_EVENTS, so io_submit only fails with EAGAIN when the
 *    kernel itself is short of resources.
 * 2. A request is in 'pending' until io_submit accepts it; EAGAIN leaves it
 *    there and the next completion retries.
 */
#include "util/raw-aio.h"
#include "util/thread-pool.h"
#include "util/coroutine-int.h"
#include <libaio.h>
#include <sys/eventfd.h>

#define MAX_EVENTS  128
#define MAX_BATCH   32

typedef struct LaioRequest {
    struct iocb iocb;
    Coroutine *co;
    long ret;
    bool done;
} LaioRequest;

struct LinuxAioState {
    AioContext *ctx;
    io_context_t io_ctx;
    int efd;
    int in_flight;
    GQueue pending;        /* LaioRequest* */
    QBBH *submit_bh;
};

static void laio_complete(LaioRequest *req, long ret)
{
    req->ret = ret;
    req->done = true;
    aio_co_wake(req->co);
}

static void laio_flush(LinuxAioState *s)
{
    struct iocb *iocbs[MAX_BATCH];

    while (!g_queue_is_empty(&s->pending) && s->in_flight < MAX_EVENTS) {
        int n = 0;
        GList *l = s->pending.head;
        while (l && n < MAX_BATCH && s->in_flight + n < MAX_EVENTS) {
            iocbs[n++] = &((LaioRequest *)l->data)->iocb;
            l = l->next;
        }
        int ret = io_submit(s->io_ctx, n, iocbs);
        if (ret == -EAGAIN) {
            /* Retried when a completion frees kernel resources; if nothing
             * is in flight, nothing would, so try again next iteration. */
            if (s->in_flight == 0) {
                qb_bh_schedule(s->submit_bh);
            }
            return;
        }
        if (ret < 0) {
            /* The first request is bad (e.g. EINVAL for an unaligned
             * O_DIRECT request on some kernels): fail it, go on. */
            laio_complete(g_queue_pop_head(&s->pending), ret);
            continue;
        }
        for (int i = 0; i < ret; i++) {
            g_queue_pop_head(&s->pending);
        }
        s->in_flight += ret;
    }
}

static void laio_submit_bh(void *opaque)
{
    laio_flush(opaque);
}

static void laio_completion_cb(void *opaque)
{
    LinuxAioState *s = opaque;
    struct io_event events[MAX_EVENTS];
    struct timespec zero = { 0, 0 };
    GPtrArray *done = g_ptr_array_new();
    uint64_t count;
    int n;

    if (read(s->efd, &count, sizeof(count)) < 0 && errno == EAGAIN) {
        /* Spurious wake-up; reaping anyway is harmless. */
    }
    do {
        n = io_getevents(s->io_ctx, 0, MAX_EVENTS, events, &zero);
        for (int i = 0; i < n; i++) {
            LaioRequest *req = events[i].data;
            /* res is an unsigned long holding a byte count or -errno. */
            req->ret = (long)events[i].res;
            s->in_flight--;
            g_ptr_array_add(done, req);
        }
    } while (n == MAX_EVENTS);

    /* Refill the kernel queue before running the waiters, who may take a
     * while and may submit more. */
    laio_flush(s);
    for (guint i = 0; i < done->len; i++) {
        LaioRequest *req = done->pdata[i];
        laio_complete(req, req->ret);
    }
    g_ptr_array_free(done, TRUE);
}

LinuxAioState *laio_init(AioContext *ctx, Error **errp)
{
    LinuxAioState *s = g_new0(LinuxAioState, 1);
    int ret;

    s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->efd < 0) {
        error_setg_errno(errp, errno, "failed to create eventfd for linux-aio");
        g_free(s);
        return NULL;
    }
    ret = io_setup(MAX_EVENTS, &s->io_ctx);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "failed to create linux AIO context");
        close(s->efd);
        g_free(s);
        return NULL;
    }
    s->ctx = ctx;
    g_queue_init(&s->pending);
    s->submit_bh = aio_bh_new(ctx, laio_submit_bh, s);
    aio_set_fd_handler(ctx, s->efd, laio_completion_cb, NULL, s);
    return s;
}

void laio_cleanup(LinuxAioState *s)
{
    if (!s) {
        return;
    }
    if (s->in_flight || !g_queue_is_empty(&s->pending)) {
        g_warning("linux-aio cleanup with %d requests in flight, %u queued",
                  s->in_flight, s->pending.length);
    }
    aio_set_fd_handler(s->ctx, s->efd, NULL, NULL, NULL);
    qb_bh_delete(s->submit_bh);
    io_destroy(s->io_ctx);
    close(s->efd);
    g_free(s);
}

static int laio_fdatasync_worker(void *opaque)
{
    return fdatasync(GPOINTER_TO_INT(opaque)) < 0 ? -errno : 0;
}

int coroutine_fn laio_co_submit(LinuxAioState *s, int fd, uint64_t offset,
                                IOVector *qiov, QBAioType type,
                                size_t *transferred)
{
    LaioRequest req = { .co = coroutine_self() };

    assert(req.co);
    if (transferred) {
        *transferred = 0;
    }
    switch (type) {
    case QB_AIO_READ:
        io_prep_preadv(&req.iocb, fd, qiov->iov, qiov->niov, offset);
        break;
    case QB_AIO_WRITE:
        io_prep_pwritev(&req.iocb, fd, qiov->iov, qiov->niov, offset);
        break;
    case QB_AIO_FLUSH:
        io_prep_fdsync(&req.iocb, fd);
        break;
    default:
        return -EINVAL;
    }
    io_set_eventfd(&req.iocb, s->efd);
    req.iocb.data = &req;

    g_queue_push_tail(&s->pending, &req);
    if (s->pending.length >= MAX_BATCH) {
        laio_flush(s);
    } else {
        qb_bh_schedule(s->submit_bh);
    }
    while (!req.done) {
        coroutine_yield();
    }

    if (type == QB_AIO_FLUSH) {
        if (req.ret == -EINVAL) {
            /* Kernels before 4.18 cannot fsync through AIO. */
            return thread_pool_submit_co(aio_get_thread_pool(s->ctx),
                                         laio_fdatasync_worker,
                                         GINT_TO_POINTER(fd));
        }
        return req.ret < 0 ? (int)req.ret : 0;
    }
    if (req.ret < 0) {
        return (int)req.ret;
    }
    if ((size_t)req.ret == qiov->size) {
        if (transferred) {
            *transferred = qiov->size;
        }
        return 0;
    }
    if (type == QB_AIO_WRITE) {
        if (transferred) {
            *transferred = req.ret;
        }
        return -ENOSPC;
    }
    /* Short read: end of file.  The caller zero-fills if it asked for the
     * count; otherwise do it here so the buffer never holds stale data. */
    if (transferred) {
        *transferred = req.ret;
    } else {
        qiov_memset(qiov, req.ret, 0, qiov->size - req.ret);
    }
    return 0;
}
