/*
 * NBD server: exports (a BlockBackend offered under a name), the listening
 * sockets, and one coroutine per client connection that runs the fixed
 * newstyle handshake and then the transmission phase.  Requests are read by
 * that coroutine (many per recv(), from a buffer), checked by
 * nbd_check_request(), and each runs in its own coroutine so a slow read
 * does not hold up the next request; each appends its reply to an output
 * batch that one sender coroutine per client writes (see "replies" below).
 * Meta contexts (base:allocation,
 * qemu:allocation-depth, qemu:dirty-bitmap:NAME) follow QEMU's names,
 * context ids and semantics.  With NBD_OPT_EXTENDED_HEADERS (a qblock
 * extension over QEMU 7.2) requests and replies use 32-byte headers with
 * 64-bit lengths and block status uses 64-bit descriptors.
 *
 * Invariants:
 *  1. Nothing from the wire reaches the block layer unchecked: option
 *     payloads are bounded (NBD_MAX_OPTION_SIZE) and parsed with bounds
 *     checks; requests pass nbd_check_request().
 *  2. Memory per client is bounded: at most SERVER_MAX_REQUESTS requests and
 *     CLIENT_MAX_INFLIGHT_BYTES of payload buffers are in flight, and at
 *     most POOL_MAX_BYTES of idle buffers are kept.
 *  3. A client holds a reference to its export; an export is freed (its
 *     bitmaps un-busied, its BlockBackend released) only when it was
 *     removed and its last client is gone.
 *  4. A client is freed only after its receive coroutine, its sender and
 *     all request coroutines have finished (refcnt).
 */
#include "nbd/nbd.h"
#include "nbd/tls.h"
#include "util/bswap.h"
#include "block/block-backend.h"
#include "block/block-int.h"
#include "block/dirty-bitmap.h"

#include <fcntl.h>
#include <sys/socket.h>

#define CLIENT_MAX_INFLIGHT_BYTES (64 * 1024 * 1024)
/* Requests in flight per client (QEMU 7.2 takes 16; a client at depth 32
 * keeps more of its queue busy here).  Memory stays bounded by
 * CLIENT_MAX_INFLIGHT_BYTES. */
#define SERVER_MAX_REQUESTS 64
/* Receive buffer: many request headers per recv(). */
#define RBUF_SIZE (64 * 1024)
/* Extents per context in one BLOCK_STATUS reply (bounds the reply). */
#define MAX_EXTENTS 65536
/* Known data ranges kept per export (see handle_read). */
#define DATA_RANGES 16
#define META_ID_BASE 0
#define META_ID_DEPTH 1
#define META_ID_BITMAP0 2

struct NBDExport {
    char *name;
    char *description;
    BlockBackend *blk;
    uint16_t flags;              /* transmission flags */
    bool allocation_depth;
    GPtrArray *bitmaps;          /* BdrvDirtyBitmap*, marked busy */
    int refcnt;                  /* 1 while registered + 1 per client */
    bool removing;
    GList *clients;
    /* Ranges recently found to hold data (see handle_read), replaced
     * round robin; an entry with end == 0 is empty.  They never claim a
     * hole, so they cannot go stale in a way that returns wrong bytes. */
    struct { uint64_t start, end; } data[DATA_RANGES];
    unsigned data_next;
    void (*on_delete)(void *opaque);
    void *opaque;
};

/* A piece of the output: bytes in the batch's arena (ext == NULL) or a
 * buffer owned by a request (its read buffer, released after the write). */
typedef struct OutSeg {
    const uint8_t *ext;
    size_t off;                  /* in the arena when ext == NULL */
    size_t len;
} OutSeg;

typedef struct OutBuf {
    void *p;
    size_t cap;
} OutBuf;

typedef struct OutBatch {
    GArray *segs;                /* OutSeg */
    GByteArray *arena;           /* headers and small payloads */
    GArray *bufs;                /* OutBuf: released after the write */
    GArray *iov;                 /* struct iovec, built by the sender */
    int replies;                 /* complete replies in the batch */
    int64_t charged;             /* their bytes in in_flight_bytes */
} OutBatch;

/* Idle read/write buffers kept per client: powers of two from 4 KiB to
 * 1 MiB, at most POOL_MAX_BYTES in all. */
#define POOL_MIN_SHIFT 12
#define POOL_MAX_SHIFT 20

typedef struct NBDClient {
    NBDSock sock;
    NBDExport *exp;
    int refcnt;
    bool closing;
    bool structured;             /* structured replies (or extended) */
    bool extended;               /* NBD_OPT_EXTENDED_HEADERS: 32-byte
                                  * headers, 64-bit lengths both ways */
    bool no_zeroes;
    /* Meta contexts selected by SET_META_CONTEXT for meta_export. */
    char *meta_export;
    bool meta_base, meta_depth;
    GArray *meta_bitmaps;        /* gboolean per exp->bitmaps entry */
    bool have_meta;
    int in_flight;               /* requests read, reply not yet written */
    int64_t in_flight_bytes;
    Coroutine *recv_co;
    bool recv_waiting;           /* recv_co parked for in-flight space */
    /* Transmission: buffered input (see recv_fill) */
    uint8_t *rbuf;
    size_t rstart, rend;
    /* Transmission: output batches and their sender (see "replies") */
    OutBatch out[2];
    int out_fill;                /* the batch requests append to */
    Coroutine *sender_co;
    bool sender_idle;            /* parked, waiting for a reply */
    bool out_closing;            /* transmission over: sender may leave */
    bool out_broken;             /* a write failed: drop further output */
    /* Free lists, so the request path allocates nothing once warm */
    GPtrArray *buf_pool[POOL_MAX_SHIFT - POOL_MIN_SHIFT + 1];
    size_t pool_bytes;
    GPtrArray *rd_pool;          /* NBDRequestData */
} NBDClient;

static GList *exports;               /* NBDExport* */
static GList *all_clients;           /* NBDClient* */
static GArray *listen_fds;           /* int */
static char *listen_unix_path;       /* nbd_server_start's socket file */
static uint32_t server_max_conn;
static bool accept_paused;
static bool accepting;               /* listen fds watched (see below) */
static void (*client_closed_cb)(void *opaque, bool negotiated);
static void *client_closed_opaque;

/* ---------------------------------------------------------------------- */
/* Byte buffers                                                            */

static void buf_be16(GByteArray *b, uint16_t v)
{
    v = GUINT16_TO_BE(v);
    g_byte_array_append(b, (guint8 *)&v, 2);
}

static void buf_be32(GByteArray *b, uint32_t v)
{
    v = GUINT32_TO_BE(v);
    g_byte_array_append(b, (guint8 *)&v, 4);
}

static void buf_be64(GByteArray *b, uint64_t v)
{
    v = GUINT64_TO_BE(v);
    g_byte_array_append(b, (guint8 *)&v, 8);
}

static void buf_str(GByteArray *b, const char *s)
{
    g_byte_array_append(b, (const guint8 *)s, strlen(s));
}

/* A bounds-checked reader over an option payload. */
typedef struct Cursor {
    const uint8_t *p;
    size_t left;
} Cursor;

static bool cur_be16(Cursor *c, uint16_t *v)
{
    if (c->left < 2) {
        return false;
    }
    memcpy(v, c->p, 2);
    *v = GUINT16_FROM_BE(*v);
    c->p += 2;
    c->left -= 2;
    return true;
}

static bool cur_be32(Cursor *c, uint32_t *v)
{
    if (c->left < 4) {
        return false;
    }
    memcpy(v, c->p, 4);
    *v = GUINT32_FROM_BE(*v);
    c->p += 4;
    c->left -= 4;
    return true;
}

/* A length-prefixed (u32) string, at most NBD_MAX_STRING_SIZE bytes. */
static char *cur_string(Cursor *c)
{
    uint32_t len;
    char *s;

    if (!cur_be32(c, &len) || len > c->left || len > NBD_MAX_STRING_SIZE) {
        return NULL;
    }
    s = g_strndup((const char *)c->p, len);
    if (strlen(s) != len) {      /* embedded NUL */
        g_free(s);
        return NULL;
    }
    c->p += len;
    c->left -= len;
    return s;
}

/* ---------------------------------------------------------------------- */
/* Exports                                                                 */

static BdrvDirtyBitmap *find_bitmap_below(BlockDriverState *bs,
                                          const char *name)
{
    for (; bs; bs = bdrv_filter_or_cow_bs(bs)) {
        BdrvDirtyBitmap *bm = bdrv_find_dirty_bitmap(bs, name);
        if (bm) {
            return bm;
        }
    }
    return NULL;
}

NBDExport *nbd_export_find(const char *name)
{
    for (GList *l = exports; l; l = l->next) {
        NBDExport *exp = l->data;
        if (strcmp(exp->name, name) == 0) {
            return exp;
        }
    }
    return NULL;
}

NBDExport *nbd_export_new(BlockBackend *blk, const NBDExportOptions *opts,
                          void (*on_delete)(void *opaque), void *opaque,
                          Error **errp)
{
    NBDExport *exp;
    const char *name = opts->name ? opts->name : "";
    bool readonly = !opts->writable;
    int64_t size;

    if (strlen(name) > NBD_MAX_STRING_SIZE) {
        error_setg(errp, "export name '%s' too long", name);
        return NULL;
    }
    if (opts->description &&
        strlen(opts->description) > NBD_MAX_STRING_SIZE) {
        error_setg(errp, "description '%s' too long", opts->description);
        return NULL;
    }
    if (nbd_export_find(name)) {
        error_setg(errp, "NBD server already has export named '%s'", name);
        return NULL;
    }
    size = blk_getlength(blk);
    if (size < 0) {
        error_setg_errno(errp, -size,
                         "Failed to determine the NBD export's length");
        return NULL;
    }
    if (opts->writable && blk_is_read_only(blk)) {
        error_setg(errp, "Cannot export read-only node as writable");
        return NULL;
    }

    exp = g_new0(NBDExport, 1);
    exp->name = g_strdup(name);
    exp->description = g_strdup(opts->description);
    exp->bitmaps = g_ptr_array_new();
    exp->allocation_depth = opts->allocation_depth;

    for (int i = 0; opts->bitmaps && opts->bitmaps[i]; i++) {
        const char *bname = opts->bitmaps[i];
        BdrvDirtyBitmap *bm = opts->bitmap_objs && opts->bitmap_objs[i]
                              ? opts->bitmap_objs[i]
                              : find_bitmap_below(blk_bs(blk), bname);

        if (!bm) {
            error_setg(errp, "Bitmap '%s' is not found", bname);
            goto fail;
        }
        if (bdrv_dirty_bitmap_check(bm, BDRV_BITMAP_ALLOW_RO, errp)) {
            goto fail;
        }
        if (readonly && bdrv_is_writable(blk_bs(blk)) &&
            bdrv_dirty_bitmap_enabled(bm)) {
            error_setg(errp,
                       "Enabled bitmap '%s' incompatible with readonly export",
                       bname);
            goto fail;
        }
        if (g_ptr_array_find(exp->bitmaps, bm, NULL)) {
            continue;
        }
        g_ptr_array_add(exp->bitmaps, bm);
    }
    for (guint i = 0; i < exp->bitmaps->len; i++) {
        Error *local_err = NULL;

        bdrv_dirty_bitmap_set_busy(exp->bitmaps->pdata[i], true);
        /*
         * An exported bitmap is there to be read: load its stored bits
         * now (QEMU has them from open) rather than in the first client's
         * first BLOCK_STATUS.  If they cannot be read the bitmap is all
         * dirty (a superset, still correct to export); say so.
         */
        if (bdrv_dirty_bitmap_load(exp->bitmaps->pdata[i], &local_err) < 0) {
            warn_report_err(local_err);
        }
    }

    exp->flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
                 NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_DF | NBD_FLAG_SEND_CACHE;
    if (readonly) {
        exp->flags |= NBD_FLAG_READ_ONLY;
    } else {
        exp->flags |= NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
                      NBD_FLAG_SEND_FAST_ZERO;
    }
    if (opts->multi_conn != 0) {
        exp->flags |= NBD_FLAG_CAN_MULTI_CONN;
    }
    blk_ref(blk);
    exp->blk = blk;
    exp->refcnt = 1;
    exp->on_delete = on_delete;
    exp->opaque = opaque;
    exports = g_list_append(exports, exp);
    return exp;

fail:
    g_ptr_array_free(exp->bitmaps, TRUE);
    g_free(exp->name);
    g_free(exp->description);
    g_free(exp);
    return NULL;
}

const char *nbd_export_name(NBDExport *exp)
{
    return exp->name;
}

BlockBackend *nbd_export_blk(NBDExport *exp)
{
    return exp->blk;
}

bool nbd_export_shutting_down(NBDExport *exp)
{
    return exp->removing;
}

int nbd_export_client_count(NBDExport *exp)
{
    return g_list_length(exp->clients);
}

static void export_unref(NBDExport *exp)
{
    assert(exp->refcnt > 0);
    if (--exp->refcnt > 0) {
        return;
    }
    assert(!exp->clients);
    for (guint i = 0; i < exp->bitmaps->len; i++) {
        bdrv_dirty_bitmap_set_busy(exp->bitmaps->pdata[i], false);
    }
    g_ptr_array_free(exp->bitmaps, TRUE);
    blk_unref(exp->blk);
    if (exp->on_delete) {
        exp->on_delete(exp->opaque);
    }
    g_free(exp->name);
    g_free(exp->description);
    g_free(exp);
}

void nbd_export_remove(NBDExport *exp)
{
    if (exp->removing) {
        return;
    }
    exp->removing = true;
    exports = g_list_remove(exports, exp);
    for (GList *l = exp->clients; l; l = l->next) {
        NBDClient *c = l->data;
        c->closing = true;
        nbd_sock_shutdown(&c->sock);
    }
    export_unref(exp);
}

/* ---------------------------------------------------------------------- */
/* Option phase                                                            */

static int coroutine_fn opt_reply(NBDClient *c, uint32_t opt, uint32_t type,
                                  const void *data, uint32_t len)
{
    uint8_t hdr[20];
    uint64_t magic = GUINT64_TO_BE(NBD_REP_MAGIC);
    uint32_t v;
    struct iovec iov[2] = { { hdr, sizeof(hdr) }, { (void *)data, len } };

    memcpy(hdr, &magic, 8);
    v = GUINT32_TO_BE(opt);
    memcpy(hdr + 8, &v, 4);
    v = GUINT32_TO_BE(type);
    memcpy(hdr + 12, &v, 4);
    v = GUINT32_TO_BE(len);
    memcpy(hdr + 16, &v, 4);
    return nbd_sock_writev(&c->sock, iov, len ? 2 : 1);
}

static int coroutine_fn G_GNUC_PRINTF(4, 5)
opt_reply_err(NBDClient *c, uint32_t opt, uint32_t type, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    return opt_reply(c, opt, type, msg, strlen(msg));
}

static int coroutine_fn send_info(NBDClient *c, uint32_t opt, uint16_t info,
                                  GByteArray *payload)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    buf_be16(b, info);
    g_byte_array_append(b, payload->data, payload->len);
    return opt_reply(c, opt, NBD_REP_INFO, b->data, b->len);
}

static NBDExport *find_live_export(const char *name)
{
    NBDExport *exp = nbd_export_find(name);
    return exp && !exp->removing ? exp : NULL;
}

static void client_reset_meta(NBDClient *c)
{
    g_clear_pointer(&c->meta_export, g_free);
    c->meta_base = c->meta_depth = false;
    c->have_meta = false;
    if (c->meta_bitmaps) {
        g_array_set_size(c->meta_bitmaps, 0);
    }
}

static void client_attach_export(NBDClient *c, NBDExport *exp)
{
    c->exp = exp;
    exp->refcnt++;
    exp->clients = g_list_append(exp->clients, c);
    /* The selection counts only if it was made for this export. */
    if (c->meta_export && strcmp(c->meta_export, exp->name) != 0) {
        client_reset_meta(c);
    }
}

static int coroutine_fn opt_export_name(NBDClient *c, const uint8_t *data,
                                        uint32_t len)
{
    g_autofree char *name = g_strndup((const char *)data, len);
    NBDExport *exp = len <= NBD_MAX_STRING_SIZE ? find_live_export(name) : NULL;
    uint8_t reply[10 + 124] = { 0 };
    uint64_t size;
    uint16_t flags;

    if (!exp) {
        return -EINVAL;    /* the spec: the server closes the connection */
    }
    if (c->extended) {
        /* A client that asked for extended headers must use GO: the
         * spec prohibits EXPORT_NAME then, and it has no error reply. */
        return -EINVAL;
    }
    size = GUINT64_TO_BE(blk_getlength(exp->blk));
    flags = GUINT16_TO_BE(exp->flags);
    memcpy(reply, &size, 8);
    memcpy(reply + 8, &flags, 2);
    client_reset_meta(c);    /* no GO, so no meta contexts */
    client_attach_export(c, exp);
    return nbd_sock_write(&c->sock, reply, c->no_zeroes ? 10 : sizeof(reply));
}

/* INFO and GO.  Returns 1 when GO succeeded (enter transmission). */
static int coroutine_fn opt_info_go(NBDClient *c, uint32_t opt,
                                    const uint8_t *data, uint32_t len)
{
    Cursor cur = { data, len };
    g_autofree char *name = cur_string(&cur);
    uint16_t nreq, req = 0;
    bool want_name = false, want_desc = false;
    g_autoptr(GByteArray) b = g_byte_array_new();
    NBDExport *exp;
    int ret;

    if (!name || !cur_be16(&cur, &nreq) || cur.left != nreq * 2u) {
        return opt_reply_err(c, opt, NBD_REP_ERR_INVALID,
                             "Invalid length for option %s",
                             nbd_opt_name(opt));
    }
    for (int i = 0; i < nreq; i++) {
        cur_be16(&cur, &req);
        want_name |= req == NBD_INFO_NAME;
        want_desc |= req == NBD_INFO_DESCRIPTION;
    }
    exp = find_live_export(name);
    if (!exp) {
        return opt_reply_err(c, opt, NBD_REP_ERR_UNKNOWN,
                             "export '%s' not present", name);
    }
    if (want_name) {
        g_byte_array_set_size(b, 0);
        buf_str(b, exp->name);
        if ((ret = send_info(c, opt, NBD_INFO_NAME, b)) < 0) {
            return ret;
        }
    }
    if (want_desc && exp->description) {
        g_byte_array_set_size(b, 0);
        buf_str(b, exp->description);
        if ((ret = send_info(c, opt, NBD_INFO_DESCRIPTION, b)) < 0) {
            return ret;
        }
    }
    g_byte_array_set_size(b, 0);
    buf_be32(b, 1);
    buf_be32(b, MAX(4096, blk_get_request_alignment(exp->blk)));
    buf_be32(b, NBD_MAX_BUFFER_SIZE);
    if ((ret = send_info(c, opt, NBD_INFO_BLOCK_SIZE, b)) < 0) {
        return ret;
    }
    g_byte_array_set_size(b, 0);
    buf_be64(b, blk_getlength(exp->blk));
    buf_be16(b, exp->flags);
    if ((ret = send_info(c, opt, NBD_INFO_EXPORT, b)) < 0) {
        return ret;
    }
    if ((ret = opt_reply(c, opt, NBD_REP_ACK, NULL, 0)) < 0) {
        return ret;
    }
    if (opt == NBD_OPT_GO) {
        client_attach_export(c, exp);
        return 1;
    }
    return 0;
}

static int coroutine_fn opt_list(NBDClient *c, uint32_t len)
{
    int ret;

    if (len) {
        return opt_reply_err(c, NBD_OPT_LIST, NBD_REP_ERR_INVALID,
                             "Invalid length for option %s",
                             nbd_opt_name(NBD_OPT_LIST));
    }
    for (GList *l = exports; l; l = l->next) {
        NBDExport *exp = l->data;
        g_autoptr(GByteArray) b = g_byte_array_new();
        buf_be32(b, strlen(exp->name));
        buf_str(b, exp->name);
        if (exp->description) {
            buf_str(b, exp->description);
        }
        ret = opt_reply(c, NBD_OPT_LIST, NBD_REP_SERVER, b->data, b->len);
        if (ret < 0) {
            return ret;
        }
    }
    return opt_reply(c, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

static int coroutine_fn send_meta(NBDClient *c, uint32_t opt, uint32_t id,
                                  const char *name)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    buf_be32(b, id);
    buf_str(b, name);
    return opt_reply(c, opt, NBD_REP_META_CONTEXT, b->data, b->len);
}

static char *bitmap_context_name(NBDExport *exp, guint i)
{
    return g_strconcat(NBD_META_DIRTY_BITMAP,
                       bdrv_dirty_bitmap_name(exp->bitmaps->pdata[i]), NULL);
}

/*
 * Answer one query: every context of exp the query names (exact names for
 * SET; for LIST also the "base:", "qemu:" and "qemu:dirty-bitmap:"
 * namespaces).  For SET the matches are recorded as selected.
 */
static int coroutine_fn meta_query(NBDClient *c, uint32_t opt,
                                   NBDExport *exp, const char *q)
{
    bool list = opt == NBD_OPT_LIST_META_CONTEXT;
    bool all = list && q == NULL;
    int ret;

    if (all || strcmp(q, NBD_META_BASE_ALLOCATION) == 0 ||
        (list && strcmp(q, "base:") == 0)) {
        if (!list) {
            c->meta_base = true;
        }
        if ((ret = send_meta(c, opt, META_ID_BASE,
                             NBD_META_BASE_ALLOCATION)) < 0) {
            return ret;
        }
    }
    if (exp->allocation_depth &&
        (all || strcmp(q, NBD_META_ALLOCATION_DEPTH) == 0 ||
         (list && strcmp(q, "qemu:") == 0))) {
        if (!list) {
            c->meta_depth = true;
        }
        if ((ret = send_meta(c, opt, META_ID_DEPTH,
                             NBD_META_ALLOCATION_DEPTH)) < 0) {
            return ret;
        }
    }
    for (guint i = 0; i < exp->bitmaps->len; i++) {
        g_autofree char *cname = bitmap_context_name(exp, i);
        if (all || strcmp(q, cname) == 0 ||
            (list && (strcmp(q, "qemu:") == 0 ||
                      strcmp(q, NBD_META_DIRTY_BITMAP) == 0))) {
            if (!list) {
                g_array_index(c->meta_bitmaps, gboolean, i) = TRUE;
            }
            if ((ret = send_meta(c, opt, META_ID_BITMAP0 + i, cname)) < 0) {
                return ret;
            }
        }
    }
    return 0;
}

static int coroutine_fn opt_meta(NBDClient *c, uint32_t opt,
                                 const uint8_t *data, uint32_t len)
{
    Cursor cur = { data, len };
    g_autofree char *name = NULL;
    uint32_t nq;
    NBDExport *exp;
    g_autoptr(GPtrArray) queries = g_ptr_array_new_with_free_func(g_free);
    int ret;

    /* As qemu-nbd 7.2: only SET needs structured replies first; LIST is
     * answered either way. */
    if (!c->structured && opt == NBD_OPT_SET_META_CONTEXT) {
        return opt_reply_err(c, opt, NBD_REP_ERR_INVALID,
                             "request option '%s' when structured reply is "
                             "not negotiated", nbd_opt_name(opt));
    }
    name = cur_string(&cur);
    if (!name || !cur_be32(&cur, &nq) || nq > cur.left / 4) {
        return opt_reply_err(c, opt, NBD_REP_ERR_INVALID,
                             "Invalid length for option %s",
                             nbd_opt_name(opt));
    }
    for (uint32_t i = 0; i < nq; i++) {
        uint32_t qlen;
        char *q;

        /* A query longer than any context name matches nothing: skipped,
         * as qemu-nbd 7.2 does (the option still succeeds). */
        if (cur.left >= 4 && (qlen = ld32_be(cur.p)) > NBD_MAX_STRING_SIZE &&
            qlen <= cur.left - 4) {
            cur.p += 4 + qlen;
            cur.left -= 4 + qlen;
            continue;
        }
        q = cur_string(&cur);
        if (!q) {
            return opt_reply_err(c, opt, NBD_REP_ERR_INVALID,
                                 "Invalid length for option %s",
                                 nbd_opt_name(opt));
        }
        g_ptr_array_add(queries, q);
    }
    if (cur.left) {
        return opt_reply_err(c, opt, NBD_REP_ERR_INVALID,
                             "Invalid length for option %s",
                             nbd_opt_name(opt));
    }
    exp = find_live_export(name);
    if (!exp) {
        return opt_reply_err(c, opt, NBD_REP_ERR_UNKNOWN,
                             "export '%s' not present", name);
    }
    if (opt == NBD_OPT_SET_META_CONTEXT) {
        client_reset_meta(c);
        c->meta_export = g_strdup(name);
        g_array_set_size(c->meta_bitmaps, exp->bitmaps->len);
        for (guint i = 0; i < exp->bitmaps->len; i++) {
            g_array_index(c->meta_bitmaps, gboolean, i) = FALSE;
        }
    }
    if (nq == 0 && opt == NBD_OPT_LIST_META_CONTEXT) {
        if ((ret = meta_query(c, opt, exp, NULL)) < 0) {
            return ret;
        }
    }
    for (guint i = 0; i < queries->len; i++) {
        if ((ret = meta_query(c, opt, exp, queries->pdata[i])) < 0) {
            return ret;
        }
    }
    if (opt == NBD_OPT_SET_META_CONTEXT) {
        c->have_meta = c->meta_base || c->meta_depth;
        for (guint i = 0; i < c->meta_bitmaps->len; i++) {
            c->have_meta |= g_array_index(c->meta_bitmaps, gboolean, i);
        }
    }
    return opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
}

/* Options the switch in client_negotiate() handles. */
static bool opt_known(uint32_t opt)
{
    return opt >= NBD_OPT_EXPORT_NAME && opt <= NBD_OPT_EXTENDED_HEADERS &&
           opt != NBD_OPT_PEEK_EXPORT;
}

/*
 * The handshake.  Returns 0 once an export is attached (transmission may
 * start), or -errno to drop the connection.
 */
static int coroutine_fn client_negotiate(NBDClient *c)
{
    uint8_t greet[18];
    uint64_t v64;
    uint16_t v16;
    uint32_t cflags;
    int ret;

    v64 = GUINT64_TO_BE(NBD_INIT_MAGIC);
    memcpy(greet, &v64, 8);
    v64 = GUINT64_TO_BE(NBD_OPTS_MAGIC);
    memcpy(greet + 8, &v64, 8);
    v16 = GUINT16_TO_BE(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    memcpy(greet + 16, &v16, 2);
    if ((ret = nbd_sock_write(&c->sock, greet, sizeof(greet))) < 0) {
        return ret;
    }
    if ((ret = nbd_sock_read(&c->sock, &cflags, 4)) < 0) {
        return ret;
    }
    cflags = GUINT32_FROM_BE(cflags);
    if (cflags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
        return -EINVAL;    /* unknown client flags: the spec says close */
    }
    c->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;

    for (;;) {
        uint8_t hdr[16];
        uint32_t opt, len;
        g_autofree uint8_t *data = NULL;

        if (c->closing) {
            return -ESHUTDOWN;
        }
        if ((ret = nbd_sock_read(&c->sock, hdr, sizeof(hdr))) < 0) {
            return ret;
        }
        memcpy(&v64, hdr, 8);
        if (GUINT64_FROM_BE(v64) != NBD_OPTS_MAGIC) {
            return -EINVAL;
        }
        memcpy(&opt, hdr + 8, 4);
        memcpy(&len, hdr + 12, 4);
        opt = GUINT32_FROM_BE(opt);
        len = GUINT32_FROM_BE(len);

        if (len > NBD_MAX_OPTION_SIZE) {
            /* Skip the payload in small pieces (bounded memory), then
             * refuse; absurd sizes just end the connection. */
            uint8_t junk[4096];
            if (len > NBD_MAX_BUFFER_SIZE) {
                return -EINVAL;
            }
            for (uint32_t left = len; left; ) {
                uint32_t n = MIN(left, sizeof(junk));
                if ((ret = nbd_sock_read(&c->sock, junk, n)) < 0) {
                    return ret;
                }
                left -= n;
            }
            if (opt_known(opt) || (nbd_server_tls_creds() && !c->sock.tls)) {
                ret = opt_reply_err(c, opt, NBD_REP_ERR_TOO_BIG,
                                    "option '%s' payload too large",
                                    nbd_opt_name(opt));
            } else {
                /* As qemu-nbd 7.2: an unknown option is unknown, however
                 * long its (skipped) payload. */
                ret = opt_reply_err(c, opt, NBD_REP_ERR_UNSUP,
                                    "Unsupported option %" PRIu32 " (%s)",
                                    opt, nbd_opt_name(opt));
            }
            if (ret < 0) {
                return ret;
            }
            continue;
        }
        data = g_malloc(len + 1);
        if (len && (ret = nbd_sock_read(&c->sock, data, len)) < 0) {
            return ret;
        }

        /* With TLS configured, only STARTTLS and ABORT come first. */
        if (nbd_server_tls_creds() && !c->sock.tls &&
            opt != NBD_OPT_STARTTLS && opt != NBD_OPT_ABORT) {
            if (opt == NBD_OPT_EXPORT_NAME) {
                return -EINVAL;    /* no way to answer: drop */
            }
            ret = opt_reply_err(c, opt, NBD_REP_ERR_TLS_REQD,
                                "Option 0x%" PRIx32 " not permitted "
                                "before TLS", opt);
            if (ret < 0) {
                return ret;
            }
            continue;
        }

        switch (opt) {
        case NBD_OPT_EXPORT_NAME:
            return opt_export_name(c, data, len);
        case NBD_OPT_ABORT:
            opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
            return -ECONNRESET;
        case NBD_OPT_LIST:
            ret = opt_list(c, len);
            break;
        case NBD_OPT_INFO:
        case NBD_OPT_GO:
            ret = opt_info_go(c, opt, data, len);
            if (ret == 1) {
                return 0;
            }
            break;
        case NBD_OPT_STRUCTURED_REPLY:
            if (len) {
                ret = opt_reply_err(c, opt, NBD_REP_ERR_INVALID,
                                    "Invalid length for option %s",
                                    nbd_opt_name(opt));
            } else if (c->extended) {
                /* Extended headers include structured replies; going
                 * back to compact headers is not possible. */
                ret = opt_reply_err(c, opt, NBD_REP_ERR_EXT_HEADER_REQD,
                                    "extended headers already negotiated");
            } else if (c->structured) {
                ret = opt_reply_err(c, opt, NBD_REP_ERR_INVALID,
                                    "structured reply already negotiated");
            } else {
                c->structured = true;
                ret = opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
            }
            break;
        case NBD_OPT_EXTENDED_HEADERS:
            /* Allowed with or without STRUCTURED_REPLY before it (which it
             * then upgrades); meta contexts already selected stay. */
            if (len) {
                ret = opt_reply_err(c, opt, NBD_REP_ERR_INVALID,
                                    "Invalid length for option %s",
                                    nbd_opt_name(opt));
            } else if (c->extended) {
                ret = opt_reply_err(c, opt, NBD_REP_ERR_INVALID,
                                    "extended headers already negotiated");
            } else {
                c->extended = true;
                c->structured = true;
                ret = opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
            }
            break;
        case NBD_OPT_LIST_META_CONTEXT:
        case NBD_OPT_SET_META_CONTEXT:
            ret = opt_meta(c, opt, data, len);
            break;
        case NBD_OPT_STARTTLS:
            if (len) {
                ret = opt_reply_err(c, opt, NBD_REP_ERR_INVALID,
                                    "Invalid length for option %s",
                                    nbd_opt_name(opt));
            } else if (c->sock.tls) {
                ret = opt_reply_err(c, opt, NBD_REP_ERR_INVALID,
                                    "TLS already enabled");
            } else if (!nbd_server_tls_creds()) {
                ret = opt_reply_err(c, opt, NBD_REP_ERR_POLICY,
                                    "TLS not configured");
            } else {
                Error *err = NULL;

                ret = opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
                if (ret < 0) {
                    return ret;
                }
                if (nbd_tls_handshake(&c->sock, nbd_server_tls_creds(), true,
                                      NULL, nbd_server_tls_authz(),
                                      &err) < 0) {
                    /* QEMU logs and drops the client; so do we. */
                    error_free(err);
                    return -EIO;
                }
            }
            break;
        default:
            ret = opt_reply_err(c, opt, NBD_REP_ERR_UNSUP,
                                "Unsupported option %" PRIu32 " (%s)",
                                opt, nbd_opt_name(opt));
            break;
        }
        if (ret < 0) {
            return ret;
        }
    }
}

/* ---------------------------------------------------------------------- */
/* Transmission phase: replies                                             */

/*
 * Replies are not written by the request that makes them.  A request
 * appends its whole reply (headers copied, its read buffer by reference)
 * to the client's output batch without yielding, and one sender coroutine
 * per client writes batches with as few sendmsg() calls as it can: the
 * replies of all requests that finished in one event-loop turn leave in
 * one writev.  So a request never waits for an earlier reply to be
 * written, and replies of different requests never interleave.
 *
 * Invariants (continuing the list at the top):
 *  5. A request counts in in_flight, and its read buffer in
 *     in_flight_bytes, from when its header is read until its reply was
 *     written (or dropped because the connection broke): the output
 *     batches are bounded by the same limits as the requests.
 *  6. Once transmission started only the sender writes to the socket.  It
 *     writes out[out_fill ^ 1] while requests fill out[out_fill].
 *  7. The sender runs until transmission ended (out_closing) and no
 *     request is in flight; it holds a client reference.
 */

static void batch_init(OutBatch *b)
{
    b->segs = g_array_new(FALSE, FALSE, sizeof(OutSeg));
    b->arena = g_byte_array_new();
    b->bufs = g_array_new(FALSE, FALSE, sizeof(OutBuf));
    b->iov = g_array_new(FALSE, FALSE, sizeof(struct iovec));
}

/* ---- buffers: pooled per client, so the hot path does not allocate ---- */

#define POOL_MAX_BUF (1u << POOL_MAX_SHIFT)
#define POOL_MAX_BYTES (16 * 1024 * 1024)
#define NPOOLS (POOL_MAX_SHIFT - POOL_MIN_SHIFT + 1)

static int pool_index(size_t cap)
{
    int shift = POOL_MIN_SHIFT;

    while (((size_t)1 << shift) < cap) {
        shift++;
    }
    return shift - POOL_MIN_SHIFT;
}

/* An aligned buffer of at least len bytes (len > 0); *cap is what
 * buf_put() needs back.  NULL when memory is short. */
static void *buf_get(NBDClient *c, size_t len, size_t *cap)
{
    if (len <= POOL_MAX_BUF) {
        int i = pool_index(len);
        GPtrArray *pool = c->buf_pool[i];

        *cap = (size_t)1 << (i + POOL_MIN_SHIFT);
        if (pool->len) {
            c->pool_bytes -= *cap;
            return g_ptr_array_steal_index(pool, pool->len - 1);
        }
    } else {
        *cap = len;
    }
    return qb_try_memalign(QB_MEM_ALIGN, *cap);
}

static void buf_put(NBDClient *c, void *p, size_t cap)
{
    if (!p) {
        return;
    }
    if (cap <= POOL_MAX_BUF && (cap & (cap - 1)) == 0 &&
        c->pool_bytes + cap <= POOL_MAX_BYTES) {
        g_ptr_array_add(c->buf_pool[pool_index(cap)], p);
        c->pool_bytes += cap;
        return;
    }
    qb_vfree(p);
}

/* ---- appending replies ---- */

static OutBatch *out_cur(NBDClient *c)
{
    return &c->out[c->out_fill];
}

static void out_copy(NBDClient *c, const void *p, size_t len)
{
    OutBatch *b = out_cur(c);
    OutSeg *last = b->segs->len ?
                   &g_array_index(b->segs, OutSeg, b->segs->len - 1) : NULL;

    if (!len) {
        return;
    }
    if (last && !last->ext && last->off + last->len == b->arena->len) {
        last->len += len;            /* contiguous: one iovec */
    } else {
        OutSeg seg = { NULL, b->arena->len, len };
        g_array_append_val(b->segs, seg);
    }
    g_byte_array_append(b->arena, p, len);
}

static void out_ref(NBDClient *c, const void *p, size_t len)
{
    OutSeg seg = { p, 0, len };

    if (len) {
        g_array_append_val(out_cur(c)->segs, seg);
    }
}

static void client_release(NBDClient *c, int replies, int64_t charged)
{
    c->in_flight -= replies;
    c->in_flight_bytes -= charged;
    if (c->recv_waiting && c->recv_co) {
        c->recv_waiting = false;
        aio_co_wake(c->recv_co);
    }
}

/*
 * The reply of one request is complete: count it, hand over its buffer
 * (released after the write) and its charge, and wake the sender.
 */
static void out_end(NBDClient *c, int64_t charged, void *buf, size_t cap)
{
    OutBatch *b = out_cur(c);

    b->replies++;
    b->charged += charged;
    if (buf) {
        OutBuf ob = { buf, cap };
        g_array_append_val(b->bufs, ob);
    }
    if (c->sender_idle) {
        c->sender_idle = false;
        aio_co_wake(c->sender_co);
    }
}

static void out_simple(NBDClient *c, uint64_t handle, int err)
{
    uint8_t hdr[NBD_SIMPLE_REPLY_SIZE];

    nbd_encode_simple_reply(hdr, nbd_errno_to_wire(err), handle);
    out_copy(c, hdr, sizeof(hdr));
}

/*
 * One structured chunk: header, an optional fixed part (copied) and
 * optional data (copied, or referenced when ref: the caller hands the
 * buffer to out_end()).  With extended headers the header is the 32-byte
 * extended one, which echoes the request's offset; the payload layout is
 * the same.
 */
static void out_chunk(NBDClient *c, const NBDRequest *req, uint16_t type,
                      uint16_t flags, const void *fixed, size_t fixed_len,
                      const void *data, size_t len, bool ref)
{
    uint8_t hdr[MAX(NBD_STRUCTURED_HDR_SIZE, NBD_EXTENDED_REPLY_SIZE)];

    if (c->extended) {
        NBDExtReplyHdr h = { .flags = flags, .type = type,
                             .handle = req->handle, .offset = req->offset,
                             .length = fixed_len + len };
        nbd_encode_ext_reply_hdr(hdr, &h);
        out_copy(c, hdr, NBD_EXTENDED_REPLY_SIZE);
    } else {
        NBDStructuredReplyHdr h = { .flags = flags, .type = type,
                                    .handle = req->handle,
                                    .length = fixed_len + len };
        assert(fixed_len + len <= UINT32_MAX);
        nbd_encode_structured_hdr(hdr, &h);
        out_copy(c, hdr, NBD_STRUCTURED_HDR_SIZE);
    }
    out_copy(c, fixed, fixed_len);
    if (ref) {
        out_ref(c, data, len);
    } else {
        out_copy(c, data, len);
    }
}

static void out_error(NBDClient *c, const NBDRequest *req, int err,
                      const char *msg)
{
    uint8_t fixed[6 + NBD_MAX_STRING_SIZE];
    size_t mlen;

    if (!c->structured) {
        out_simple(c, req->handle, err);
        return;
    }
    msg = msg ?: "";
    mlen = MIN(strlen(msg), (size_t)NBD_MAX_STRING_SIZE);
    st32_be(fixed, nbd_errno_to_wire(err));
    st16_be(fixed + 4, mlen);
    memcpy(fixed + 6, msg, mlen);
    out_chunk(c, req, NBD_REPLY_TYPE_ERROR, NBD_REPLY_FLAG_DONE,
              fixed, 6 + mlen, NULL, 0, false);
}

/* Success without payload. */
static void out_done(NBDClient *c, const NBDRequest *req)
{
    if (c->extended) {
        /* Extended headers have no simple replies. */
        out_chunk(c, req, NBD_REPLY_TYPE_NONE, NBD_REPLY_FLAG_DONE,
                  NULL, 0, NULL, 0, false);
    } else {
        /* A simple reply even with structured replies on, as qemu-nbd
         * 7.2 answers. */
        out_simple(c, req->handle, 0);
    }
}

/* ---- the sender ---- */

static void client_unref(NBDClient *c);
static void server_update_accept(void);

/* Write one batch; on failure the connection is broken (shut down) and
 * later batches are only released. */
static void coroutine_fn batch_write(NBDClient *c, OutBatch *b)
{
    int ret;

    if (c->out_broken || !b->segs->len) {
        return;
    }
    g_array_set_size(b->iov, b->segs->len);
    for (guint i = 0; i < b->segs->len; i++) {
        OutSeg *s = &g_array_index(b->segs, OutSeg, i);
        struct iovec *v = &g_array_index(b->iov, struct iovec, i);

        v->iov_base = (void *)(s->ext ? s->ext : b->arena->data + s->off);
        v->iov_len = s->len;
    }
    ret = nbd_sock_writev_consume(&c->sock, (struct iovec *)b->iov->data,
                                  b->iov->len);
    if (ret < 0) {
        c->out_broken = true;
        c->closing = true;
        nbd_sock_shutdown(&c->sock);
    }
}

static void batch_release(NBDClient *c, OutBatch *b)
{
    int replies = b->replies;
    int64_t charged = b->charged;

    for (guint i = 0; i < b->bufs->len; i++) {
        OutBuf *ob = &g_array_index(b->bufs, OutBuf, i);
        buf_put(c, ob->p, ob->cap);
    }
    g_array_set_size(b->bufs, 0);
    g_array_set_size(b->segs, 0);
    g_byte_array_set_size(b->arena, 0);
    b->replies = 0;
    b->charged = 0;
    client_release(c, replies, charged);
}

static void coroutine_fn sender_co(void *opaque)
{
    NBDClient *c = opaque;

    for (;;) {
        OutBatch *b = out_cur(c);

        if (!b->segs->len && !b->replies) {
            if (c->out_closing && c->in_flight == 0) {
                break;
            }
            c->sender_idle = true;
            coroutine_yield();
            continue;
        }
        /* Requests fill the other batch while this one is written. */
        c->out_fill ^= 1;
        batch_write(c, b);
        batch_release(c, b);
    }
    c->sender_idle = false;
    c->sender_co = NULL;
    client_unref(c);
}

/* ---------------------------------------------------------------------- */
/* Transmission phase: requests                                            */

typedef struct NBDRequestData {
    NBDClient *client;
    NBDRequest req;
    uint8_t *payload;            /* WRITE data */
    size_t payload_cap;
    int64_t charged;             /* payload bytes in in_flight_bytes */
} NBDRequestData;

static NBDRequestData *rd_get(NBDClient *c)
{
    NBDRequestData *rd = c->rd_pool->len
        ? g_ptr_array_steal_index(c->rd_pool, c->rd_pool->len - 1)
        : g_new(NBDRequestData, 1);

    memset(rd, 0, sizeof(*rd));
    rd->client = c;
    return rd;
}

static void rd_put(NBDClient *c, NBDRequestData *rd)
{
    buf_put(c, rd->payload, rd->payload_cap);
    c->in_flight_bytes -= rd->charged;
    if (c->rd_pool->len < SERVER_MAX_REQUESTS) {
        g_ptr_array_add(c->rd_pool, rd);
    } else {
        g_free(rd);
    }
}

/* At most this many pieces (alternating data/hole) per READ reply; the
 * rest of a longer read goes out as data. */
#define READ_MAX_SEGS 16
/* How far past a READ its block status query looks (see handle_read). */
#define READ_STATUS_AHEAD (64 * 1024 * 1024)

typedef struct ReadSeg {
    uint64_t off;                /* from the request's offset */
    uint64_t len;
    bool hole;
} ReadSeg;

static uint64_t export_length(NBDExport *exp, const NBDRequest *req);

static bool export_known_data(NBDExport *exp, uint64_t off, uint64_t len)
{
    for (int i = 0; i < DATA_RANGES; i++) {
        if (off >= exp->data[i].start && off + len <= exp->data[i].end) {
            return true;
        }
    }
    return false;
}

static void export_note_data(NBDExport *exp, uint64_t off, uint64_t len)
{
    exp->data[exp->data_next].start = off;
    exp->data[exp->data_next].end = off + len;
    exp->data_next = (exp->data_next + 1) % DATA_RANGES;
}

/*
 * READ.  With structured replies (and no DF) the block status of the
 * range comes first, so holes are answered with hole chunks and never
 * read; the data pieces are read into one buffer and sent by reference.
 * A read inside one of the export's known data ranges skips the status
 * query: on a file, each query is two lseek()s that scan to the end of
 * the extent (the page cache too, for unwritten extents), so asking once
 * per extent instead of once per read keeps sequential readers linear.
 * Claiming data is always safe -- the bytes are read, whatever they are --
 * so the ranges need no invalidation for correctness; our own TRIM and
 * WRITE_ZEROES drop those they touch so that their holes read back as
 * holes.
 */
static void coroutine_fn handle_read(NBDClient *c, NBDRequestData *rd)
{
    const NBDRequest *req = &rd->req;
    NBDExport *exp = c->exp;
    BlockBackend *blk = exp->blk;
    BlockDriverState *bs = blk_bs(blk);
    ReadSeg seg[READ_MAX_SEGS];
    int nseg = 0;
    bool any_data = false;
    void *buf = NULL;
    size_t cap = 0;
    int64_t charged = rd->charged;
    int ret = 0;

    rd->charged = 0;             /* handed to out_end() below */
    if (req->len == 0) {
        if (c->structured) {
            out_chunk(c, req, NBD_REPLY_TYPE_NONE, NBD_REPLY_FLAG_DONE,
                      NULL, 0, NULL, 0, false);
        } else {
            out_simple(c, req->handle, 0);
        }
        out_end(c, charged, NULL, 0);
        return;
    }
    if (c->structured && !(req->flags & NBD_CMD_FLAG_DF)) {
        uint64_t export_size = export_length(exp, req);
        uint64_t done = 0;

        if (export_known_data(exp, req->offset, req->len)) {
            done = req->len;
            seg[nseg++] = (ReadSeg){ 0, req->len, false };
            any_data = true;
        }
        while (done < req->len) {
            uint64_t off = req->offset + done;
            uint64_t left = req->len - done;
            int64_t pnum = left;
            bool hole = false;

            if (nseg < READ_MAX_SEGS - 1) {
                /* Ask beyond the request: the answer costs the same (the
                 * file system seeks to the end of the extent anyway) and
                 * tells the next reads of this extent that they need not
                 * ask. */
                uint64_t ask = MIN(MAX(left, (uint64_t)READ_STATUS_AHEAD),
                                   export_size > off ? export_size - off
                                                     : left);
                int st = bdrv_co_block_status_above(bs, NULL, off, ask,
                                                    &pnum, NULL, NULL, NULL);
                if (st < 0 || pnum <= 0) {
                    pnum = left;
                } else {
                    hole = st & BDRV_BLOCK_ZERO;
                    if (!hole) {
                        export_note_data(exp, off, pnum);
                    }
                    pnum = MIN((uint64_t)pnum, left);
                }
            }
            if (nseg && seg[nseg - 1].hole == hole) {
                seg[nseg - 1].len += pnum;
            } else {
                seg[nseg++] = (ReadSeg){ done, pnum, hole };
            }
            any_data |= !hole;
            done += pnum;
        }
    } else {
        seg[nseg++] = (ReadSeg){ 0, req->len, false };
        any_data = true;
    }

    if (any_data) {
        buf = buf_get(c, req->len, &cap);
        if (!buf) {
            ret = -ENOMEM;
        }
        for (int i = 0; i < nseg && ret >= 0; i++) {
            IOVector qiov;

            if (seg[i].hole) {
                continue;
            }
            qiov_init_buf(&qiov, (uint8_t *)buf + seg[i].off, seg[i].len);
            ret = blk_co_preadv(blk, req->offset + seg[i].off, seg[i].len,
                                &qiov, 0);
        }
    }
    if (ret < 0) {
        buf_put(c, buf, cap);
        out_error(c, req, ret, "reading from file failed");
        out_end(c, charged, NULL, 0);
        return;
    }
    if (!c->structured) {
        out_simple(c, req->handle, 0);
        out_ref(c, buf, req->len);
        out_end(c, charged, buf, cap);
        return;
    }
    for (int i = 0; i < nseg; i++) {
        uint16_t fl = i == nseg - 1 ? NBD_REPLY_FLAG_DONE : 0;
        uint8_t fixed[12];

        st64_be(fixed, req->offset + seg[i].off);
        if (seg[i].hole) {
            /* A hole chunk's length is 32 bits; READ is at most 32 MiB. */
            st32_be(fixed + 8, seg[i].len);
            out_chunk(c, req, NBD_REPLY_TYPE_OFFSET_HOLE, fl, fixed, 12,
                      NULL, 0, false);
        } else {
            out_chunk(c, req, NBD_REPLY_TYPE_OFFSET_DATA, fl, fixed, 8,
                      (uint8_t *)buf + seg[i].off, seg[i].len, true);
        }
    }
    out_end(c, charged, buf, cap);
}

/* Extents of one context over [offset, offset+len), merged, bounded. */
typedef struct Extents {
    GArray *a;                   /* pairs of uint64 (length, flags) */
    uint32_t max;                /* most extents in the reply */
    uint64_t max_len;            /* longest extent the reply can carry */
} Extents;

/* Largest extent length in a 32-bit descriptor (4 KiB aligned). */
#define EXTENT_MAX_LEN 0xfffff000u
/* ... and in a 64-bit one (BLOCK_STATUS_EXT). */
#define EXTENT_MAX_LEN_EXT (UINT64_C(1) << 62)

/* Append a run, merging with the previous one when the flags match; runs
 * past e->max extents are dropped (the client asks again from there). */
static void extents_add(Extents *e, uint64_t len, uint32_t flags)
{
    while (len > 0) {
        guint n = e->a->len;
        uint64_t *last = n ? &g_array_index(e->a, uint64_t, n - 2) : NULL;

        if (last && last[1] == flags && last[0] < e->max_len) {
            uint64_t take = MIN(e->max_len - last[0], len);
            last[0] += take;
            len -= take;
            continue;
        }
        if (n / 2 >= e->max) {
            return;
        }
        uint64_t pair[2] = { 0, flags };
        g_array_append_vals(e->a, pair, 2);
    }
}

static int coroutine_fn extents_status(BlockDriverState *bs, bool depth_ctx,
                                       uint64_t offset, uint64_t len,
                                       Extents *e)
{
    uint64_t end = offset + len;

    while (offset < end) {
        int64_t pnum;
        int depth = 0;
        uint32_t flags;
        int ret = bdrv_co_block_status_above(bs, NULL, offset, end - offset,
                                             &pnum, NULL, NULL, &depth);
        if (ret < 0) {
            return ret;
        }
        if (pnum <= 0) {
            return -EIO;
        }
        if (depth_ctx) {
            flags = depth;
        } else {
            flags = (ret & BDRV_BLOCK_DATA ? 0 : NBD_STATE_HOLE) |
                    (ret & BDRV_BLOCK_ZERO ? NBD_STATE_ZERO : 0);
        }
        if (e->a->len / 2 >= e->max &&
            g_array_index(e->a, uint64_t, e->a->len - 1) != flags) {
            break;
        }
        extents_add(e, pnum, flags);
        offset += pnum;
    }
    return 0;
}

static void extents_bitmap(BdrvDirtyBitmap *bm, uint64_t offset,
                           uint64_t len, Extents *e)
{
    uint64_t end = offset + len;
    int64_t bsize = bdrv_dirty_bitmap_size(bm);

    while (offset < end) {
        int64_t next;
        bool dirty = (int64_t)offset < bsize && bdrv_dirty_bitmap_get(bm, offset);
        uint32_t flags = dirty ? NBD_STATE_DIRTY : 0;

        if ((int64_t)offset >= bsize) {
            next = end;
        } else if (dirty) {
            next = bdrv_dirty_bitmap_next_clean(bm, offset, end - offset);
        } else {
            next = bdrv_dirty_bitmap_next_dirty(bm, offset, end - offset);
        }
        if (next < 0 || (uint64_t)next > end) {
            next = end;
        }
        if (next <= (int64_t)offset) {
            next = end;
        }
        if (e->a->len / 2 >= e->max) {
            break;
        }
        extents_add(e, next - offset, flags);
        offset = next;
    }
}

static void coroutine_fn reply_block_status(NBDClient *c, const NBDRequest *req)
{
    NBDExport *exp = c->exp;
    BlockDriverState *bs = blk_bs(exp->blk);
    uint32_t max = req->flags & NBD_CMD_FLAG_REQ_ONE ? 1 : MAX_EXTENTS;
    int nctx = 0, sent = 0, ret;

    nctx = c->meta_base + c->meta_depth;
    for (guint i = 0; i < c->meta_bitmaps->len; i++) {
        nctx += g_array_index(c->meta_bitmaps, gboolean, i) ? 1 : 0;
    }
    for (int k = 0; k < 2 + (int)c->meta_bitmaps->len; k++) {
        Extents e = { g_array_new(FALSE, FALSE, sizeof(uint64_t)), max,
                      c->extended ? EXTENT_MAX_LEN_EXT : EXTENT_MAX_LEN };
        g_autoptr(GByteArray) fixed = g_byte_array_new();
        g_autoptr(GByteArray) desc = g_byte_array_new();
        uint32_t id;

        if (k == 0 && c->meta_base) {
            id = META_ID_BASE;
            ret = extents_status(bs, false, req->offset, req->len, &e);
        } else if (k == 1 && c->meta_depth) {
            id = META_ID_DEPTH;
            ret = extents_status(bs, true, req->offset, req->len, &e);
        } else if (k >= 2 &&
                   g_array_index(c->meta_bitmaps, gboolean, k - 2)) {
            id = META_ID_BITMAP0 + k - 2;
            extents_bitmap(exp->bitmaps->pdata[k - 2], req->offset,
                           req->len, &e);
            ret = 0;
        } else {
            g_array_free(e.a, TRUE);
            continue;
        }
        if (ret < 0) {
            g_array_free(e.a, TRUE);
            out_error(c, req, ret, "can't get block status");
            return;
        }
        /*
         * Compact: context id, then (u32 length, u32 flags) descriptors.
         * Extended: context id, descriptor count, then (u64 length, u64
         * flags); our contexts define only the low 32 status bits.
         */
        buf_be32(fixed, id);
        if (c->extended) {
            buf_be32(fixed, e.a->len / 2);
        }
        for (guint i = 0; i < e.a->len; i++) {
            uint64_t v = g_array_index(e.a, uint64_t, i);
            if (c->extended) {
                buf_be64(desc, v);
            } else {
                buf_be32(desc, v);
            }
        }
        sent++;
        out_chunk(c, req, c->extended ? NBD_REPLY_TYPE_BLOCK_STATUS_EXT
                                      : NBD_REPLY_TYPE_BLOCK_STATUS,
                  sent == nctx ? NBD_REPLY_FLAG_DONE : 0,
                  fixed->data, fixed->len, desc->data, desc->len, false);
        g_array_free(e.a, TRUE);
    }
}

/*
 * WRITE_ZEROES and TRIM over an effect length that may exceed what one
 * block-layer request takes (extended headers allow up to the export
 * size): split into aligned pieces below BDRV_REQUEST_MAX_BYTES.
 */
#define ZERO_TRIM_CHUNK (1024 * 1024 * 1024)

static int coroutine_fn zero_or_trim(BlockBackend *blk, bool trim,
                                     uint64_t offset, uint64_t len,
                                     BdrvRequestFlags fl)
{
    while (len > 0) {
        int64_t n = MIN(len, (uint64_t)ZERO_TRIM_CHUNK);
        int ret = trim ? blk_co_pdiscard(blk, offset, n)
                       : blk_co_pwrite_zeroes(blk, offset, n, fl);
        if (ret < 0) {
            return ret;
        }
        offset += n;
        len -= n;
    }
    return 0;
}


static void export_forget_data(NBDExport *exp, const NBDRequest *req)
{
    for (int i = 0; i < DATA_RANGES; i++) {
        if (req->offset < exp->data[i].end &&
            req->offset + req->len > exp->data[i].start) {
            exp->data[i].start = exp->data[i].end = 0;
        }
    }
}

/*
 * Run one checked request against the export.  Requests of one client
 * overlap in the block layer; each ends by appending its reply.
 */
static void coroutine_fn handle_request(NBDClient *c, NBDRequestData *rd)
{
    const NBDRequest *req = &rd->req;
    BlockBackend *blk = c->exp->blk;
    BdrvRequestFlags fl = 0;
    IOVector qiov;
    int ret;

    if (req->flags & NBD_CMD_FLAG_FUA) {
        fl |= BDRV_REQ_FUA;
    }
    switch (req->type) {
    case NBD_CMD_READ:
        handle_read(c, rd);
        return;
    case NBD_CMD_BLOCK_STATUS:
        reply_block_status(c, req);
        out_end(c, 0, NULL, 0);
        return;
    case NBD_CMD_WRITE:
        if (req->len) {
            qiov_init_buf(&qiov, rd->payload, req->len);
            ret = blk_co_pwritev(blk, req->offset, req->len, &qiov, fl);
        } else {
            ret = 0;
        }
        break;
    case NBD_CMD_WRITE_ZEROES:
        /* May leave a hole where the data range says data: forget it,
         * so later reads answer the hole as a hole. */
        export_forget_data(c->exp, req);
        if (!(req->flags & NBD_CMD_FLAG_NO_HOLE)) {
            fl |= BDRV_REQ_MAY_UNMAP;
        }
        if (req->flags & NBD_CMD_FLAG_FAST_ZERO) {
            fl |= BDRV_REQ_NO_FALLBACK;
        }
        ret = zero_or_trim(blk, false, req->offset, req->len, fl);
        export_forget_data(c->exp, req);   /* re-noted meanwhile? */
        break;
    case NBD_CMD_TRIM:
        export_forget_data(c->exp, req);
        ret = zero_or_trim(blk, true, req->offset, req->len, 0);
        export_forget_data(c->exp, req);
        if (ret >= 0 && (req->flags & NBD_CMD_FLAG_FUA)) {
            ret = blk_co_flush(blk);
        }
        break;
    case NBD_CMD_FLUSH:
        ret = blk_co_flush(blk);
        break;
    case NBD_CMD_CACHE:
        /* Advisory prefetch; the block layer has no cache to warm here. */
        ret = 0;
        break;
    default:
        ret = -ENOTSUP;
        break;
    }
    if (ret < 0) {
        out_error(c, req, ret, "request failed");
    } else {
        out_done(c, req);
    }
    out_end(c, 0, NULL, 0);
}

static void coroutine_fn request_co(void *opaque)
{
    NBDRequestData *rd = opaque;
    NBDClient *c = rd->client;

    handle_request(c, rd);
    rd_put(c, rd);
    client_unref(c);
}

static void coroutine_fn client_wait_room(NBDClient *c, int64_t bytes)
{
    while (!c->closing && (c->in_flight >= SERVER_MAX_REQUESTS ||
           (c->in_flight > 0 &&
            c->in_flight_bytes + bytes > CLIENT_MAX_INFLIGHT_BYTES))) {
        c->recv_waiting = true;
        coroutine_yield();
    }
}

/*
 * Buffered input: request headers (and the start of write payloads) are
 * taken from c->rbuf, refilled with whatever the socket holds, so a burst
 * of pipelined requests costs one recv().  Make at least need bytes
 * available.
 */
static int coroutine_fn recv_fill(NBDClient *c, size_t need)
{
    if (c->rend - c->rstart >= need) {
        return 0;
    }
    memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
    c->rend -= c->rstart;
    c->rstart = 0;
    while (c->rend < need) {
        ssize_t n = nbd_sock_recv_some(&c->sock, c->rbuf + c->rend,
                                       RBUF_SIZE - c->rend);
        if (n < 0) {
            return n;
        }
        c->rend += n;
    }
    return 0;
}

/* Exactly len bytes: what is buffered, then straight from the socket. */
static int coroutine_fn recv_bytes(NBDClient *c, void *dst, size_t len)
{
    size_t take = MIN(len, c->rend - c->rstart);

    memcpy(dst, c->rbuf + c->rstart, take);
    c->rstart += take;
    return take < len ? nbd_sock_read(&c->sock, (uint8_t *)dst + take,
                                      len - take)
                      : 0;
}

/* The export's length for checking req: the block layer's cached length
 * (no system call), refreshed when the request reaches past it. */
static uint64_t export_length(NBDExport *exp, const NBDRequest *req)
{
    BlockDriverState *bs = blk_bs(exp->blk);
    int64_t len = bs ? bs->total_sectors * (int64_t)BDRV_SECTOR_SIZE : 0;

    if (len <= 0 || req->offset > (uint64_t)len ||
        req->len > (uint64_t)len - req->offset) {
        len = blk_getlength(exp->blk);
    }
    return len < 0 ? 0 : len;
}

static int coroutine_fn client_transmission(NBDClient *c)
{
    NBDMode mode = c->extended ? NBD_MODE_EXTENDED :
                   c->structured ? NBD_MODE_STRUCTURED : NBD_MODE_SIMPLE;
    size_t hdr_len = c->extended ? NBD_EXTENDED_REQUEST_SIZE
                                 : NBD_REQUEST_SIZE;

    c->rbuf = g_malloc(RBUF_SIZE);
    c->refcnt++;                 /* the sender's reference */
    c->sender_co = coroutine_create(sender_co, c);
    aio_co_enter(c->sock.ctx, c->sender_co);

    for (;;) {
        NBDRequestData *rd;
        const char *msg;
        bool fatal, ok;
        uint64_t payload;
        int err, ret;

        client_wait_room(c, 0);
        if (c->closing) {
            return 0;
        }
        if ((ret = recv_fill(c, hdr_len)) < 0) {
            return ret;
        }
        rd = rd_get(c);
        /* The other style's magic is as wrong as garbage: out of sync. */
        ok = c->extended
             ? nbd_decode_ext_request(c->rbuf + c->rstart, &rd->req)
             : nbd_decode_request(c->rbuf + c->rstart, &rd->req);
        c->rstart += hdr_len;
        if (!ok) {
            rd_put(c, rd);
            return -EINVAL;          /* bad magic: out of sync, drop */
        }
        if (rd->req.type == NBD_CMD_DISC) {
            rd_put(c, rd);
            /* The spec: outstanding requests are handled, and answered,
             * before the connection closes (in_flight counts a request
             * until its reply was written). */
            while (c->in_flight > 0 && !c->closing) {
                c->recv_waiting = true;
                coroutine_yield();
            }
            return 0;
        }
        err = nbd_check_request_mode(&rd->req, export_length(c->exp,
                                                             &rd->req),
                                     c->exp->flags, mode, c->have_meta,
                                     &msg, &fatal);
        if (fatal) {
            rd_put(c, rd);
            return -EINVAL;
        }
        /* Bounded by the check above (NBD_MAX_BUFFER_SIZE).  A payload
         * is consumed even when the request is refused, so the next
         * header is found where the client put it. */
        payload = nbd_request_payload_len(&rd->req, mode);
        if (payload) {
            client_wait_room(c, payload);
            rd->payload = buf_get(c, payload, &rd->payload_cap);
            if (!rd->payload) {
                rd_put(c, rd);
                return -ENOMEM;
            }
            rd->charged = payload;
            c->in_flight_bytes += payload;
            if ((ret = recv_bytes(c, rd->payload, payload)) < 0) {
                rd_put(c, rd);
                return ret;
            }
        } else if (rd->req.type == NBD_CMD_READ && !err) {
            client_wait_room(c, rd->req.len);
            rd->charged = rd->req.len;
            c->in_flight_bytes += rd->charged;
        }
        c->in_flight++;
        if (err) {
            out_error(c, &rd->req, -err, msg);
            out_end(c, 0, NULL, 0);
            rd_put(c, rd);
            continue;
        }
        c->refcnt++;
        /* Queued: it runs as soon as this coroutine waits for input, so
         * a burst of requests read with one recv() runs back to back and
         * their replies leave together. */
        aio_co_enter(c->sock.ctx, coroutine_create(request_co, rd));
    }
}

static void client_unref(NBDClient *c)
{
    if (--c->refcnt > 0) {
        return;
    }
    bool negotiated = c->exp != NULL;

    nbd_sock_close(&c->sock);
    all_clients = g_list_remove(all_clients, c);
    if (c->exp) {
        NBDExport *exp = c->exp;
        exp->clients = g_list_remove(exp->clients, c);
        export_unref(exp);
    }
    client_reset_meta(c);
    g_array_free(c->meta_bitmaps, TRUE);
    for (int i = 0; i < 2; i++) {
        OutBatch *b = &c->out[i];
        /* Normally empty: the sender released everything before it left. */
        for (guint j = 0; j < b->bufs->len; j++) {
            qb_vfree(g_array_index(b->bufs, OutBuf, j).p);
        }
        g_array_free(b->segs, TRUE);
        g_byte_array_free(b->arena, TRUE);
        g_array_free(b->bufs, TRUE);
        g_array_free(b->iov, TRUE);
    }
    for (int i = 0; i < NPOOLS; i++) {
        g_ptr_array_free(c->buf_pool[i], TRUE);
    }
    g_ptr_array_free(c->rd_pool, TRUE);
    g_free(c->rbuf);
    g_free(c);
    if (client_closed_cb) {
        client_closed_cb(client_closed_opaque, negotiated);
    }
    /* A slot is free: a client waiting in the listen backlog gets it. */
    server_update_accept();
}

static void coroutine_fn client_co(void *opaque)
{
    NBDClient *c = opaque;

    c->recv_co = coroutine_self();
    if (client_negotiate(c) == 0) {
        client_transmission(c);
    }
    c->closing = true;
    nbd_sock_shutdown(&c->sock);
    /* Requests still running hold their own references; they finish
     * (their replies are dropped: the socket is shut down), the sender
     * leaves when the last one did, and the last reference closes the
     * socket. */
    c->recv_co = NULL;
    c->recv_waiting = false;
    c->out_closing = true;
    if (c->sender_co && c->sender_idle) {
        c->sender_idle = false;
        aio_co_wake(c->sender_co);
    }
    client_unref(c);
}

/* ---------------------------------------------------------------------- */
/* Listening                                                               */

static void server_accept(void *opaque);

static bool server_may_accept(void)
{
    return !accept_paused &&
           (!server_max_conn || g_list_length(all_clients) < server_max_conn);
}

/*
 * At the connection limit (or paused) the listening sockets are not
 * watched, as qemu-nbd does: a new client waits in the listen backlog and
 * is served as soon as a slot frees, instead of being accepted and closed.
 * Invariant: the fd handlers are set iff server_may_accept().
 */
static void server_update_accept(void)
{
    bool on = server_may_accept();

    /* Only on a change: replacing a handler while it runs would free it. */
    if (on == accepting) {
        return;
    }
    accepting = on;
    for (guint i = 0; listen_fds && i < listen_fds->len; i++) {
        int fd = g_array_index(listen_fds, int, i);
        aio_set_fd_handler(qb_get_aio_context(), fd,
                           on ? server_accept : NULL, NULL,
                           GINT_TO_POINTER(fd));
    }
}

static void server_accept(void *opaque)
{
    int lfd = GPOINTER_TO_INT(opaque);
    int fd;

    if (!server_may_accept()) {
        server_update_accept();
        return;
    }
    fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
        return;
    }
    nbd_server_serve_fd(fd);
}

void nbd_server_serve_fd(int fd)
{
    NBDClient *c;

    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    c = g_new0(NBDClient, 1);
    c->refcnt = 1;
    c->meta_bitmaps = g_array_new(FALSE, TRUE, sizeof(gboolean));
    batch_init(&c->out[0]);
    batch_init(&c->out[1]);
    for (int i = 0; i < NPOOLS; i++) {
        c->buf_pool[i] = g_ptr_array_new_with_free_func(qb_vfree);
    }
    c->rd_pool = g_ptr_array_new_with_free_func(g_free);
    nbd_sock_init(&c->sock, fd, qb_get_aio_context());
    all_clients = g_list_append(all_clients, c);
    server_update_accept();
    coroutine_enter(coroutine_create(client_co, c));
}

int nbd_server_add_listen_fd(int fd, uint32_t max_connections, Error **errp)
{
    if (!listen_fds) {
        listen_fds = g_array_new(FALSE, FALSE, sizeof(int));
    }
    g_array_append_val(listen_fds, fd);
    server_max_conn = max_connections;
    if (server_may_accept()) {
        aio_set_fd_handler(qb_get_aio_context(), fd, server_accept, NULL,
                           GINT_TO_POINTER(fd));
        accepting = true;
    } else {
        server_update_accept();
    }
    return 0;
}

int nbd_server_start(json_t *addr, uint32_t max_connections, Error **errp)
{
    int fd;

    if (nbd_server_is_running()) {
        error_setg(errp, "NBD server already running");
        return -1;
    }
    fd = nbd_socket_listen(addr, errp);
    if (fd < 0) {
        return -1;
    }
    /* The socket file is ours: removed again by nbd_server_stop(), as
     * qemu-storage-daemon does. */
    if (json_is_string(json_object_get(addr, "type")) &&
        strcmp(json_string_value(json_object_get(addr, "type")), "unix") == 0 &&
        json_is_string(json_object_get(addr, "path"))) {
        g_free(listen_unix_path);
        listen_unix_path =
            g_strdup(json_string_value(json_object_get(addr, "path")));
    }
    return nbd_server_add_listen_fd(fd, max_connections, errp);
}

bool nbd_server_is_running(void)
{
    return listen_fds && listen_fds->len > 0;
}

void nbd_server_pause_accept(bool pause)
{
    accept_paused = pause;
    server_update_accept();
}

void nbd_server_stop(void)
{
    if (listen_fds) {
        for (guint i = 0; i < listen_fds->len; i++) {
            int fd = g_array_index(listen_fds, int, i);
            aio_set_fd_handler(qb_get_aio_context(), fd, NULL, NULL, NULL);
            close(fd);
        }
        g_array_set_size(listen_fds, 0);
    }
    accepting = false;
    if (listen_unix_path) {
        unlink(listen_unix_path);
        g_clear_pointer(&listen_unix_path, g_free);
    }
    while (exports) {
        nbd_export_remove(exports->data);
    }
}

int nbd_server_client_count(void)
{
    return g_list_length(all_clients);
}

void nbd_server_set_client_closed_cb(void (*cb)(void *opaque, bool negotiated),
                                     void *opaque)
{
    client_closed_cb = cb;
    client_closed_opaque = opaque;
}
