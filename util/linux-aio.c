/*
 * Linux native AIO (libaio) engine of an AioContext.
 *
 * A request is queued by laio_co_submit, which then yields.  Completions are
 * signalled on an eventfd registered in the context; its handler reaps them
 * straight from the completion ring that the kernel maps into our address
 * space (no io_getevents system call while the ring has events) and wakes
 * the waiting coroutines one by one.
 *
 * Submission: a request goes to the kernel at once when nothing else is
 * queued, including one issued from the completion handler (the usual case
 * at queue depth > 1: a completed request's owner issues the next one).
 * Collecting the requests issued during one handler call into a single
 * io_submit saved system calls but kept the device's queue shallower while
 * the handler ran: 4 KiB strided O_DIRECT reads and writes at depth 32 were
 * 10-20% slower than one io_submit per request (medians of 7 interleaved
 * runs, docs/design/io-path.md).  Requests that found others queued (after
 * EAGAIN) are batched by a BH.  After waking a round of completions the
 * handler looks at the ring again: completions that arrived meanwhile are
 * handled without going back through epoll.
 *
 * Invariants:
 * 1. in_flight == requests accepted by io_submit and not yet reaped;
 *    in_flight <= MAX_EVENTS, so io_submit only fails with EAGAIN when the
 *    kernel itself is short of resources.
 * 2. A request is in 'pending' until io_submit accepts it; EAGAIN leaves it
 *    there and the next completion (or the BH) retries.
 * 3. 'in_completion' is true exactly while laio_process_completions runs;
 *    the handler flushes whatever is still queued before it returns.
 */
#include "util/raw-aio.h"
#include "util/thread-pool.h"
#include "util/coroutine-int.h"
#include <libaio.h>
#include <sys/eventfd.h>

#define MAX_EVENTS  128
#define MAX_BATCH   32

/* How many rounds of "reap, wake, submit" one handler call may run before
 * it yields to the event loop (other fds, timers, BHs must not starve). */
#define MAX_ROUNDS  16

typedef struct LaioRequest {
    struct iocb iocb;
    Coroutine *co;
    GList link;            /* in LinuxAioState.pending while queued */
    long ret;
    bool done;
} LaioRequest;

/*
 * The completion ring that io_setup maps at the address io_context_t holds
 * (a stable kernel ABI, also read by libaio itself): the kernel produces at
 * 'tail', we consume at 'head', both modulo 'nr'.
 */
struct laio_ring {
    unsigned id;
    unsigned nr;
    unsigned head;
    unsigned tail;
    unsigned magic;
    unsigned compat_features;
    unsigned incompat_features;
    unsigned header_length;
    struct io_event io_events[];
};

#define LAIO_RING_MAGIC 0xa10a10a1

struct LinuxAioState {
    AioContext *ctx;
    io_context_t io_ctx;
    struct laio_ring *ring;    /* NULL: ring layout unknown, use syscalls */
    int efd;
    int in_flight;
    bool in_completion;
    GQueue pending;            /* LaioRequest* via ->link, FIFO */
    QBBH *submit_bh;
};

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
            LaioRequest *req = g_queue_pop_head_link(&s->pending)->data;
            req->ret = ret;
            req->done = true;
            if (req->co != coroutine_self()) {
                /* Our own request (flushed from laio_co_submit) just sees
                 * 'done'; waking ourselves would enter us twice. */
                aio_co_wake(req->co);
            }
            continue;
        }
        for (int i = 0; i < ret; i++) {
            g_queue_pop_head_link(&s->pending);
        }
        s->in_flight += ret;
    }
}

static void laio_submit_bh(void *opaque)
{
    LinuxAioState *s = opaque;

    if (!s->in_completion) {
        laio_flush(s);
    }
}

/* Take up to max events off the completion ring. */
static int laio_reap(LinuxAioState *s, struct io_event *events, int max)
{
    struct laio_ring *ring = s->ring;
    unsigned head, tail, nr;
    int n = 0;

    if (!ring) {
        struct timespec zero = { 0, 0 };
        n = io_getevents(s->io_ctx, 0, max, events, &zero);
        return n < 0 ? 0 : n;
    }
    nr = ring->nr;
    head = ring->head;
    /* Pairs with the kernel's barrier between writing an event and
     * advancing tail. */
    tail = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);
    while (head != tail && n < max) {
        events[n++] = ring->io_events[head];
        head = (head + 1) % nr;
    }
    /* Release: our reads of the events happen before the kernel may reuse
     * their slots. */
    __atomic_store_n(&ring->head, head, __ATOMIC_RELEASE);
    return n;
}

static void laio_process_completions(LinuxAioState *s)
{
    struct io_event events[MAX_EVENTS];

    s->in_completion = true;
    for (int round = 0; round < MAX_ROUNDS; round++) {
        int n = laio_reap(s, events, MAX_EVENTS);

        if (n == 0) {
            break;
        }
        s->in_flight -= n;
        for (int i = 0; i < n; i++) {
            LaioRequest *req = events[i].data;
            /* res is an unsigned long holding a byte count or -errno. */
            req->ret = (long)events[i].res;
            req->done = true;
            aio_co_wake(req->co);
        }
        /* Everything the woken requests' owners issued goes in one
         * io_submit; then look again, since completions may have landed
         * while we ran. */
        laio_flush(s);
    }
    s->in_completion = false;
    /* Leftovers (EAGAIN, or more than MAX_EVENTS in flight) go later. */
    if (!g_queue_is_empty(&s->pending)) {
        qb_bh_schedule(s->submit_bh);
    }
}

static void laio_completion_cb(void *opaque)
{
    LinuxAioState *s = opaque;
    uint64_t count;

    if (read(s->efd, &count, sizeof(count)) < 0 && errno == EAGAIN) {
        /* Spurious wake-up (a previous call already reaped); harmless. */
    }
    laio_process_completions(s);
}

LinuxAioState *laio_init(AioContext *ctx, Error **errp)
{
    LinuxAioState *s = g_new0(LinuxAioState, 1);
    struct laio_ring *ring;
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
    /* Only read the ring ourselves if it has the layout we know. */
    ring = (struct laio_ring *)s->io_ctx;
    if (ring && ring->magic == LAIO_RING_MAGIC &&
        ring->incompat_features == 0 && ring->nr > 0) {
        s->ring = ring;
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
    req.link.data = &req;

    g_queue_push_tail_link(&s->pending, &req.link);
    if (s->pending.length == 1 || s->pending.length >= MAX_BATCH) {
        /* Alone: straight to the kernel, also from the completion
         * handler (see the header comment: the device stays busier than
         * when the handler collects a batch first). */
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
