/*
 * libqblock: the public embedding API (include/qblock/qblock.h) on top of
 * the block core and the drivers.
 *
 * A QBlock wraps one BlockBackend in the main AioContext.  Asynchronous
 * requests go through blk_aio_*; their completions run from aio_poll(),
 * which is what qblock_poll() calls.  The pollable fd is the fd GLib would
 * poll for the AioContext's GSource (obtained through a private
 * GMainContext), so it becomes readable exactly when aio_poll has work.
 *
 * QMP runs through the monitor's dispatcher (monitor_execute_request), so
 * replies and errors are byte for byte the daemon's; events reach the
 * embedder through the monitor's event sink.
 *
 * Invariants: qb->in_flight counts requests submitted through qb whose
 * user callback has not run yet; qblock_close() polls until it is zero.
 * open_handles lists every QBlock not closed yet (qblock_shutdown closes
 * them before the nodes go away).
 */
#include "qblock/qblock.h"
#include "block/block-int.h"
#include "block/block-backend.h"
#include "block/job.h"
#include "block/options.h"
#include "block/qmp/qmp-internal.h"
#include "monitor/monitor.h"
#include "util/json-qemu.h"
#include "qapi-commands.h"

struct QBlock {
    BlockBackend *blk;
    unsigned in_flight;
};

static GList *open_handles;

struct QBlockError {
    char *msg;
    char *cls;
};

static bool qblock_initialized;

/* Move an internal Error into a public QBlockError (if wanted). */
static void set_error(QBlockError **errp, Error *err)
{
    if (errp && !*errp) {
        QBlockError *e = g_new0(QBlockError, 1);
        e->msg = g_strdup(error_get_pretty(err));
        e->cls = g_strdup(error_class_name(error_get_class(err)));
        *errp = e;
    }
    error_free(err);
}

static void set_error_msg(QBlockError **errp, const char *msg)
{
    Error *err = NULL;
    error_setg(&err, "%s", msg);
    set_error(errp, err);
}

int qblock_init(QBlockError **errp)
{
    if (!qblock_initialized) {
        qblock_initialized = true;
        bdrv_register_builtin_drivers();
        qb_get_aio_context();
        /* A program that also runs monitors may have set its own table. */
        if (!monitor_get_command_table()) {
            monitor_set_command_table(qmp_commands);
        }
        monitor_events_init();
    }
    return 0;
}

const char *qblock_version(void)
{
    return QBLOCK_VERSION;
}

static bool check_init(QBlockError **errp)
{
    if (!qblock_initialized) {
        set_error_msg(errp, "qblock_init() has not been called");
        return false;
    }
    return true;
}

typedef struct CreateCo {
    BlockDriver *drv;
    const char *filename;
    json_t *opts;
    Error *err;
    int ret;
    bool done;
} CreateCo;

static void coroutine_fn create_entry(void *opaque)
{
    CreateCo *c = opaque;
    c->ret = c->drv->bdrv_co_create_opts(c->drv, c->filename, c->opts,
                                         &c->err);
    c->done = true;
    aio_notify(qb_get_aio_context());
}

int qblock_create(const char *filename, const char *format, uint64_t size,
                  const char *options, QBlockError **errp)
{
    Error *err = NULL;
    BlockDriver *drv;
    json_t *opts;
    CreateCo c = { 0 };

    if (!check_init(errp)) {
        return -1;
    }
    format = format ? format : "raw";
    drv = bdrv_find_format(format);
    if (!drv) {
        error_setg(&err, "Unknown file format '%s'", format);
        goto fail;
    }
    if (!drv->bdrv_co_create_opts && !strcmp(format, "raw")) {
        /* A raw image is its protocol's file. */
        drv = bdrv_find_format("file");
    }
    if (!drv || !drv->bdrv_co_create_opts) {
        error_setg(&err, "Format driver '%s' does not support image creation",
                   format);
        goto fail;
    }
    if (size > INT64_MAX) {
        error_setg(&err, "The image size is too large for file format '%s'",
                   format);
        goto fail;
    }
    opts = options && *options ? qb_keyval_parse(options, NULL, &err)
                               : json_object();
    if (!opts) {
        goto fail;
    }
    json_object_set_new(opts, "size", json_integer((json_int_t)size));

    c.drv = drv;
    c.filename = filename;
    c.opts = opts;
    coroutine_enter(coroutine_create(create_entry, &c));
    AIO_WAIT_WHILE(qb_get_aio_context(), !c.done);
    json_decref(opts);
    if (c.ret < 0) {
        err = c.err;
        if (!err) {
            error_setg_errno(&err, -c.ret, "Could not create '%s'", filename);
        }
        goto fail;
    }
    return 0;

fail:
    error_prepend(&err, "%s: ", filename);
    set_error(errp, err);
    return -1;
}

static int open_flags(int flags)
{
    int f = 0;

    f |= (flags & QBLOCK_OPEN_RDWR) ? BDRV_O_RDWR : 0;
    f |= (flags & QBLOCK_OPEN_NOCACHE) ? BDRV_O_NOCACHE : 0;
    f |= (flags & QBLOCK_OPEN_NATIVE_AIO) ? BDRV_O_NATIVE_AIO : 0;
    f |= (flags & QBLOCK_OPEN_NO_FLUSH) ? BDRV_O_NO_FLUSH : 0;
    f |= (flags & QBLOCK_OPEN_UNMAP) ? BDRV_O_UNMAP : 0;
    return f;
}

static QBlock *open_common(const char *filename, json_t *options, int flags,
                           const char *what, QBlockError **errp)
{
    Error *err = NULL;
    BlockBackend *blk;
    QBlock *qb;

    if (flags & QBLOCK_OPEN_FORCE_SHARE) {
        json_object_set_new(options, "force-share", json_true());
    }
    blk = blk_new_open(filename, NULL, options, open_flags(flags), &err);
    if (!blk) {
        error_prepend(&err, "Could not open '%s': ", what);
        set_error(errp, err);
        return NULL;
    }
    qb = g_new0(QBlock, 1);
    qb->blk = blk;
    open_handles = g_list_prepend(open_handles, qb);
    return qb;
}

QBlock *qblock_open(const char *options, int flags, QBlockError **errp)
{
    Error *err = NULL;
    json_t *opts;

    if (!check_init(errp)) {
        return NULL;
    }
    if (g_str_has_prefix(options, "json:")) {
        opts = qb_parse_json_filename(options, &err);
    } else {
        opts = qb_keyval_parse(options, NULL, &err);
    }
    if (!opts) {
        set_error(errp, err);
        return NULL;
    }
    return open_common(NULL, opts, flags, options, errp);
}

QBlock *qblock_open_image(const char *filename, const char *format,
                          int flags, QBlockError **errp)
{
    json_t *opts;

    if (!check_init(errp)) {
        return NULL;
    }
    opts = json_object();
    if (format) {
        json_object_set_new(opts, "driver", json_string(format));
    }
    return open_common(filename, opts, flags, filename, errp);
}

void qblock_close(QBlock *qb)
{
    if (!qb) {
        return;
    }
    /* Callbacks own user state: let every one of them run first. */
    AIO_WAIT_WHILE(qb_get_aio_context(), qb->in_flight > 0);
    blk_drain(qb->blk);
    if (blk_is_writable(qb->blk)) {
        blk_flush(qb->blk);
    }
    blk_unref(qb->blk);
    open_handles = g_list_remove(open_handles, qb);
    g_free(qb);
}

QBlock *qblock_open_node(const char *node_name, int flags, QBlockError **errp)
{
    Error *err = NULL;
    BlockDriverState *bs;
    BlockBackend *blk;
    uint64_t perm = BLK_PERM_CONSISTENT_READ;
    QBlock *qb;

    if (!check_init(errp)) {
        return NULL;
    }
    bs = node_name ? bdrv_find_node(node_name) : NULL;
    if (!bs) {
        error_setg(&err, "Cannot find node-name=%s",
                   node_name ? node_name : "");
        set_error(errp, err);
        return NULL;
    }
    if (flags & QBLOCK_OPEN_RDWR) {
        if (bdrv_is_read_only(bs)) {
            error_setg(&err, "Node '%s' is read only", node_name);
            set_error(errp, err);
            return NULL;
        }
        perm |= BLK_PERM_WRITE;
    }
    /* Like the tools' handles: take what we use, let others share all. */
    blk = blk_new(qb_get_aio_context(), perm, BLK_PERM_ALL);
    if (blk_insert_bs(blk, bs, &err) < 0) {
        blk_unref(blk);
        set_error(errp, err);
        return NULL;
    }
    qb = g_new0(QBlock, 1);
    qb->blk = blk;
    open_handles = g_list_prepend(open_handles, qb);
    return qb;
}

/* ---- QMP ---- */

typedef struct ParsedInput {
    json_t *value;      /* the first text, if it parsed */
    Error *err;         /* the first text's parse error */
    unsigned texts;
} ParsedInput;

static void parsed_text(void *opaque, json_t *value, Error *err)
{
    ParsedInput *in = opaque;

    if (in->texts++ == 0) {
        in->value = value;
        in->err = err;
    } else {
        json_decref(value);
        error_free(err);
    }
}

/* Reply object -> text for the caller; 0 for success, -1 for an error
 * reply (then *errp carries it too). */
static int finish_reply(json_t *rsp, char **reply, QBlockError **errp)
{
    json_t *e = rsp ? json_object_get(rsp, "error") : NULL;

    if (reply) {
        *reply = rsp ? qemu_json_to_compact(rsp) : NULL;
    }
    if (e && errp && !*errp) {
        QBlockError *qe = g_new0(QBlockError, 1);

        qe->msg = g_strdup(json_string_value(json_object_get(e, "desc")));
        qe->cls = g_strdup(json_string_value(json_object_get(e, "class")));
        *errp = qe;
    }
    json_decref(rsp);
    return e ? -1 : 0;
}

/* An error reply built here for input the stream framing cannot judge. */
static json_t *error_reply(const char *desc)
{
    return json_pack("{s:{s:s,s:s}}", "error", "class", "GenericError",
                     "desc", desc);
}

int qblock_qmp_execute(const char *json_command, char **reply,
                       QBlockError **errp)
{
    ParsedInput in = { 0 };
    JsonStream *js;
    json_t *rsp;

    if (reply) {
        *reply = NULL;
    }
    if (!check_init(errp)) {
        return -1;
    }
    if (!json_command) {
        set_error_msg(errp, "json_command must not be NULL");
        return -1;
    }
    /* The monitor's own framing and parser, so parse errors read the
     * same; the line end finishes a bare token as it would on a socket. */
    js = json_stream_new(parsed_text, &in);
    json_stream_feed(js, json_command, strlen(json_command));
    json_stream_feed(js, "\n", 1);
    json_stream_free(js);

    if (in.texts == 0) {
        rsp = error_reply("JSON parse error, premature end of input");
    } else if (in.texts > 1) {
        rsp = error_reply("QMP input must be a single JSON text");
    } else if (in.err) {
        rsp = error_reply(error_get_pretty(in.err));
    } else {
        /* The command may raise events: they go to the handler first. */
        rsp = monitor_execute_request(in.value);
    }
    json_decref(in.value);
    error_free(in.err);
    return finish_reply(rsp, reply, errp);
}

static struct {
    QBlockEventFunc *cb;
    void *opaque;
} event_handler;

static void event_to_handler(json_t *event, void *opaque)
{
    g_autofree char *text = qemu_json_to_compact(event);

    event_handler.cb(text, event_handler.opaque);
}

void qblock_qmp_set_event_handler(QBlockEventFunc *cb, void *opaque)
{
    event_handler.cb = cb;
    event_handler.opaque = opaque;
    monitor_set_event_sink(cb ? event_to_handler : NULL, NULL);
}

void qblock_free(void *ptr)
{
    g_free(ptr);
}

bool qblock_shutdown_requested(void)
{
    return qb_shutdown_requested();
}

void qblock_shutdown(void)
{
    if (!qblock_initialized) {
        return;
    }
    /* Handles first: they are users of nodes QMP may also hold. */
    while (open_handles) {
        qblock_close(open_handles->data);
    }
    /* The daemon's exit order: exports, then jobs, then the nodes (closing
     * a qcow2 node stores its persistent bitmaps). */
    qmp_block_exports_close_all();
    job_cancel_sync_all();
    bdrv_close_all();
}

int64_t qblock_get_length(QBlock *qb)
{
    return blk_getlength(qb->blk);
}

static BdrvRequestFlags write_flags(int flags)
{
    BdrvRequestFlags f = 0;

    f |= (flags & QBLOCK_WRITE_FUA) ? BDRV_REQ_FUA : 0;
    f |= (flags & QBLOCK_ZERO_MAY_UNMAP) ? BDRV_REQ_MAY_UNMAP : 0;
    return f;
}

static bool range_ok(uint64_t offset, uint64_t bytes)
{
    return offset <= INT64_MAX && bytes <= INT64_MAX - offset;
}

int qblock_pread(QBlock *qb, uint64_t offset, void *buf, size_t bytes)
{
    if (!range_ok(offset, bytes) || bytes > BDRV_REQUEST_MAX_BYTES) {
        return -EINVAL;
    }
    return blk_pread(qb->blk, offset, bytes, buf, 0);
}

int qblock_pwrite(QBlock *qb, uint64_t offset, const void *buf, size_t bytes,
                  int flags)
{
    if (!range_ok(offset, bytes) || bytes > BDRV_REQUEST_MAX_BYTES) {
        return -EINVAL;
    }
    return blk_pwrite(qb->blk, offset, bytes, buf,
                      write_flags(flags & QBLOCK_WRITE_FUA));
}

int qblock_pwrite_zeroes(QBlock *qb, uint64_t offset, uint64_t bytes,
                         int flags)
{
    if (!range_ok(offset, bytes)) {
        return -EINVAL;
    }
    return blk_pwrite_zeroes(qb->blk, offset, bytes, write_flags(flags));
}

int qblock_discard(QBlock *qb, uint64_t offset, uint64_t bytes)
{
    if (!range_ok(offset, bytes)) {
        return -EINVAL;
    }
    return blk_pdiscard(qb->blk, offset, bytes);
}

int qblock_flush(QBlock *qb)
{
    return blk_flush(qb->blk);
}

int qblock_block_status(QBlock *qb, uint64_t offset, uint64_t bytes,
                        uint64_t *pnum)
{
    int64_t n = 0, map = 0;
    BlockDriverState *file = NULL;
    int ret, st = 0;

    if (!range_ok(offset, bytes)) {
        return -EINVAL;
    }
    ret = blk_block_status(qb->blk, offset, bytes, &n, &map, &file);
    if (ret < 0) {
        return ret;
    }
    st |= (ret & BDRV_BLOCK_DATA) ? QBLOCK_STATUS_DATA : 0;
    st |= (ret & BDRV_BLOCK_ZERO) ? QBLOCK_STATUS_ZERO : 0;
    st |= (ret & BDRV_BLOCK_ALLOCATED) ? QBLOCK_STATUS_ALLOCATED : 0;
    *pnum = n;
    return st;
}

typedef struct QBlockAIO {
    QBlock *qb;
    IOVector qiov;
    QBlockCompletionFunc *cb;
    void *opaque;
} QBlockAIO;

static void aio_done(void *opaque, int ret)
{
    QBlockAIO *a = opaque;
    QBlock *qb = a->qb;

    qiov_destroy(&a->qiov);
    /* Count first: the callback may close the handle. */
    qb->in_flight--;
    a->cb(a->opaque, ret);
    g_free(a);
}

static QBlockAIO *aio_new(QBlock *qb, QBlockCompletionFunc *cb, void *opaque)
{
    QBlockAIO *a = g_new0(QBlockAIO, 1);

    a->qb = qb;
    a->cb = cb;
    a->opaque = opaque;
    qb->in_flight++;
    return a;
}

int qblock_aio_pread(QBlock *qb, uint64_t offset, void *buf, size_t bytes,
                     QBlockCompletionFunc *cb, void *opaque)
{
    QBlockAIO *a;

    if (!range_ok(offset, bytes) || bytes > BDRV_REQUEST_MAX_BYTES || !cb) {
        return -EINVAL;
    }
    a = aio_new(qb, cb, opaque);
    qiov_init_buf(&a->qiov, buf, bytes);
    blk_aio_preadv(qb->blk, offset, &a->qiov, 0, aio_done, a);
    return 0;
}

int qblock_aio_pwrite(QBlock *qb, uint64_t offset, const void *buf,
                      size_t bytes, int flags, QBlockCompletionFunc *cb,
                      void *opaque)
{
    QBlockAIO *a;

    if (!range_ok(offset, bytes) || bytes > BDRV_REQUEST_MAX_BYTES || !cb) {
        return -EINVAL;
    }
    a = aio_new(qb, cb, opaque);
    qiov_init_buf(&a->qiov, (void *)buf, bytes);
    blk_aio_pwritev(qb->blk, offset, &a->qiov,
                    write_flags(flags & QBLOCK_WRITE_FUA), aio_done, a);
    return 0;
}

int qblock_aio_flush(QBlock *qb, QBlockCompletionFunc *cb, void *opaque)
{
    QBlockAIO *a;

    if (!cb) {
        return -EINVAL;
    }
    a = aio_new(qb, cb, opaque);
    qiov_init_buf(&a->qiov, NULL, 0);
    blk_aio_flush(qb->blk, aio_done, a);
    return 0;
}

unsigned qblock_aio_in_flight(QBlock *qb)
{
    return qb->in_flight;
}

/*
 * External event loop integration.  The AioContext only writes its wakeup
 * fd while somebody announced a wait (its GSource "prepare" step), so an
 * outside poller must go through prepare (qblock_prepare_wait) before
 * sleeping and through check (done by qblock_poll) after.  Both run on a
 * private GMainContext that holds the context's GSource and is never
 * iterated by anybody else.
 */
static struct {
    GMainContext *gctx;
    int fd;                     /* -2: not looked up yet */
    bool prepared;
    gint prio;
} ext = { .fd = -2 };

static void ext_setup(void)
{
    GSource *src = aio_get_g_source(qb_get_aio_context());
    GPollFD before[4], after[8];
    gint timeout, nb = 0, na = 0;

    ext.fd = -1;
    if (g_source_get_context(src)) {
        /* Already attached elsewhere (a GLib main loop drives it). */
        g_source_unref(src);
        return;
    }
    ext.gctx = g_main_context_new();
    if (g_main_context_acquire(ext.gctx)) {
        /* The new fd in the poll set after attaching is the context's. */
        g_main_context_prepare(ext.gctx, &ext.prio);
        nb = g_main_context_query(ext.gctx, G_MAXINT, &timeout, before, 4);
        g_main_context_check(ext.gctx, ext.prio, before, MIN(nb, 4));
        g_source_attach(src, ext.gctx);
        g_main_context_prepare(ext.gctx, &ext.prio);
        na = g_main_context_query(ext.gctx, G_MAXINT, &timeout, after, 8);
        g_main_context_check(ext.gctx, ext.prio, after, MIN(na, 8));
    }
    if (na == nb + 1 && na <= 8) {
        for (int i = 0; i < na; i++) {
            bool old = false;
            for (int j = 0; j < nb; j++) {
                old |= after[i].fd == before[j].fd;
            }
            if (!old) {
                ext.fd = after[i].fd;
            }
        }
    }
    g_source_unref(src);
}

int qblock_get_fd(void)
{
    if (ext.fd == -2) {
        ext_setup();
    }
    return ext.fd;
}

int qblock_prepare_wait(void)
{
    GPollFD fds[8];
    gint timeout = 0;

    if (qblock_get_fd() < 0) {
        return 0;
    }
    if (ext.prepared) {
        g_main_context_check(ext.gctx, ext.prio, fds, 0);
    }
    if (g_main_context_prepare(ext.gctx, &ext.prio)) {
        timeout = 0;
        g_main_context_query(ext.gctx, G_MAXINT, &timeout, fds, 8);
        timeout = 0;
    } else {
        g_main_context_query(ext.gctx, G_MAXINT, &timeout, fds, 8);
    }
    ext.prepared = true;
    return timeout;
}

bool qblock_poll(bool blocking)
{
    if (ext.prepared) {
        GPollFD fds[1];
        /* End the announced wait; dispatch happens in aio_poll below. */
        g_main_context_check(ext.gctx, ext.prio, fds, 0);
        ext.prepared = false;
    }
    return aio_poll(qb_get_aio_context(), blocking);
}

const char *qblock_strerror(int ret)
{
    return g_strerror(ret < 0 ? -ret : ret);
}

const char *qblock_error_message(const QBlockError *err)
{
    return err->msg;
}

const char *qblock_error_class(const QBlockError *err)
{
    return err->cls;
}

void qblock_error_free(QBlockError *err)
{
    if (err) {
        g_free(err->msg);
        g_free(err->cls);
        g_free(err);
    }
}
