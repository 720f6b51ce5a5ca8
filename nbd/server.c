/*
 * NBD server: exports (a BlockBackend offered under a name), the listening
 * sockets, and one coroutine per client connection that runs the fixed
 * newstyle handshake and then the transmission phase.  Requests are read by
 * that coroutine, checked by nbd_check_request(), and each runs in its own
 * coroutine so a slow read does not hold up the next request; replies are
 * serialised by the client's send lock.  Meta contexts (base:allocation,
 * qemu:allocation-depth, qemu:dirty-bitmap:NAME) follow QEMU's names,
 * context ids and semantics.  With NBD_OPT_EXTENDED_HEADERS (a qblock
 * extension over QEMU 7.2) requests and replies use 32-byte headers with
 * 64-bit lengths and block status uses 64-bit descriptors.
 *
 * Invariants:
 *  1. Nothing from the wire reaches the block layer unchecked: option
 *     payloads are bounded (NBD_MAX_OPTION_SIZE) and parsed with bounds
 *     checks; requests pass nbd_check_request().
 *  2. Memory per client is bounded: at most NBD_MAX_REQUESTS requests and
 *     CLIENT_MAX_INFLIGHT_BYTES of payload buffers are in flight.
 *  3. A client holds a reference to its export; an export is freed (its
 *     bitmaps un-busied, its BlockBackend released) only when it was
 *     removed and its last client is gone.
 *  4. A client is freed only after its receive coroutine and all request
 *     coroutines have finished (refcnt).
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
/* Extents per context in one BLOCK_STATUS reply (bounds the reply). */
#define MAX_EXTENTS 65536
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
    void (*on_delete)(void *opaque);
    void *opaque;
};

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
    CoMutex send_lock;
    int in_flight;
    int64_t in_flight_bytes;
    Coroutine *recv_co;
    bool recv_waiting;           /* recv_co parked for in-flight space */
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
        bdrv_dirty_bitmap_set_busy(exp->bitmaps->pdata[i], true);
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
/* Transmission phase                                                      */

typedef struct NBDRequestData {
    NBDClient *client;
    NBDRequest req;
    uint8_t *payload;            /* WRITE data */
    int64_t charged;             /* bytes counted in in_flight_bytes */
} NBDRequestData;

static int coroutine_fn send_simple(NBDClient *c, uint64_t handle, int err,
                                    const void *data, size_t len)
{
    uint8_t hdr[NBD_SIMPLE_REPLY_SIZE];
    struct iovec iov[2] = { { hdr, sizeof(hdr) }, { (void *)data, len } };

    nbd_encode_simple_reply(hdr, nbd_errno_to_wire(err), handle);
    return nbd_sock_writev(&c->sock, iov, len ? 2 : 1);
}

/*
 * One structured chunk: header, an optional fixed part and optional data.
 * With extended headers the header is the 32-byte extended one, which
 * echoes the request's offset; the payload layout is the same.
 */
static int coroutine_fn send_chunk(NBDClient *c, const NBDRequest *req,
                                   uint16_t type, uint16_t flags,
                                   const void *fixed, size_t fixed_len,
                                   const void *data, size_t len)
{
    uint8_t hdr[MAX(NBD_STRUCTURED_HDR_SIZE, NBD_EXTENDED_REPLY_SIZE)];
    struct iovec iov[3] = { { hdr, NBD_STRUCTURED_HDR_SIZE },
                            { (void *)fixed, fixed_len },
                            { (void *)data, len } };

    if (c->extended) {
        NBDExtReplyHdr h = { .flags = flags, .type = type,
                             .handle = req->handle, .offset = req->offset,
                             .length = fixed_len + len };
        nbd_encode_ext_reply_hdr(hdr, &h);
        iov[0].iov_len = NBD_EXTENDED_REPLY_SIZE;
    } else {
        NBDStructuredReplyHdr h = { .flags = flags, .type = type,
                                    .handle = req->handle,
                                    .length = fixed_len + len };
        assert(fixed_len + len <= UINT32_MAX);
        nbd_encode_structured_hdr(hdr, &h);
    }
    return nbd_sock_writev(&c->sock, iov, 3);
}

static int coroutine_fn send_error(NBDClient *c, const NBDRequest *req,
                                   int err, const char *msg)
{
    if (!c->structured) {
        return send_simple(c, req->handle, err, NULL, 0);
    }
    g_autoptr(GByteArray) b = g_byte_array_new();
    msg = msg ?: "";
    buf_be32(b, nbd_errno_to_wire(err));
    buf_be16(b, strlen(msg));
    buf_str(b, msg);
    return send_chunk(c, req, NBD_REPLY_TYPE_ERROR, NBD_REPLY_FLAG_DONE,
                      b->data, b->len, NULL, 0);
}

/* Reply to a successful READ: data and hole chunks (unless DF). */
static int coroutine_fn send_read_chunks(NBDClient *c, const NBDRequest *req,
                                         const uint8_t *buf)
{
    BlockDriverState *bs = blk_bs(c->exp->blk);
    uint64_t done = 0;
    int ret;

    if (req->len == 0) {
        return send_chunk(c, req, NBD_REPLY_TYPE_NONE,
                          NBD_REPLY_FLAG_DONE, NULL, 0, NULL, 0);
    }
    while (done < req->len) {
        int64_t pnum = req->len - done;
        bool hole = false;
        uint64_t off = req->offset + done;
        uint8_t fixed[12];
        uint64_t boff = GUINT64_TO_BE(off);

        if (!(req->flags & NBD_CMD_FLAG_DF)) {
            int st = bdrv_co_block_status_above(bs, NULL, off, pnum, &pnum,
                                                NULL, NULL, NULL);
            if (st < 0 || pnum <= 0) {
                pnum = req->len - done;
            } else {
                hole = st & BDRV_BLOCK_ZERO;
            }
        }
        pnum = MIN(pnum, (int64_t)(req->len - done));
        memcpy(fixed, &boff, 8);
        uint16_t fl = done + pnum == req->len ? NBD_REPLY_FLAG_DONE : 0;
        if (hole) {
            uint32_t blen = GUINT32_TO_BE((uint32_t)pnum);
            memcpy(fixed + 8, &blen, 4);
            ret = send_chunk(c, req, NBD_REPLY_TYPE_OFFSET_HOLE, fl,
                             fixed, 12, NULL, 0);
        } else {
            ret = send_chunk(c, req, NBD_REPLY_TYPE_OFFSET_DATA, fl,
                             fixed, 8, buf + done, pnum);
        }
        if (ret < 0) {
            return ret;
        }
        done += pnum;
    }
    return 0;
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

static int coroutine_fn send_block_status(NBDClient *c, const NBDRequest *req)
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
            return send_error(c, req, ret, "can't get block status");
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
        ret = send_chunk(c, req, c->extended ? NBD_REPLY_TYPE_BLOCK_STATUS_EXT
                                             : NBD_REPLY_TYPE_BLOCK_STATUS,
                         sent == nctx ? NBD_REPLY_FLAG_DONE : 0,
                         fixed->data, fixed->len, desc->data, desc->len);
        g_array_free(e.a, TRUE);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
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

/*
 * Run one checked request against the export (unlocked, so requests of one
 * client overlap in the block layer), then send its reply under the send
 * lock (replies of one request are never interleaved with another's).
 */
static int coroutine_fn handle_request(NBDClient *c, NBDRequestData *rd)
{
    const NBDRequest *req = &rd->req;
    BlockBackend *blk = c->exp->blk;
    BdrvRequestFlags fl = 0;
    g_autofree uint8_t *buf = NULL;
    IOVector qiov;
    int ret;

    if (req->flags & NBD_CMD_FLAG_FUA) {
        fl |= BDRV_REQ_FUA;
    }
    switch (req->type) {
    case NBD_CMD_READ:
        buf = g_try_malloc(MAX(req->len, 1));
        if (!buf) {
            ret = -ENOMEM;
        } else if (req->len) {
            qiov_init_buf(&qiov, buf, req->len);
            ret = blk_co_preadv(blk, req->offset, req->len, &qiov, 0);
        } else {
            ret = 0;
        }
        break;
    case NBD_CMD_WRITE:
        if (req->len) {
            qiov_init_buf(&qiov, rd->payload, req->len);
            ret = blk_co_pwritev(blk, req->offset, req->len, &qiov, fl);
        } else {
            ret = 0;
        }
        break;
    case NBD_CMD_WRITE_ZEROES:
        if (!(req->flags & NBD_CMD_FLAG_NO_HOLE)) {
            fl |= BDRV_REQ_MAY_UNMAP;
        }
        if (req->flags & NBD_CMD_FLAG_FAST_ZERO) {
            fl |= BDRV_REQ_NO_FALLBACK;
        }
        ret = zero_or_trim(blk, false, req->offset, req->len, fl);
        break;
    case NBD_CMD_TRIM:
        ret = zero_or_trim(blk, true, req->offset, req->len, 0);
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
    case NBD_CMD_BLOCK_STATUS:
        ret = 0;
        break;
    default:
        ret = -ENOTSUP;
        break;
    }

    co_mutex_lock(&c->send_lock);
    if (ret < 0) {
        ret = send_error(c, req, ret,
                         req->type == NBD_CMD_READ ? "reading from file failed"
                                                    : "request failed");
    } else if (req->type == NBD_CMD_BLOCK_STATUS) {
        ret = send_block_status(c, req);
    } else if (req->type == NBD_CMD_READ && c->structured) {
        ret = send_read_chunks(c, req, buf);
    } else if (req->type == NBD_CMD_READ) {
        ret = send_simple(c, req->handle, 0, buf, req->len);
    } else if (c->extended) {
        /* Extended headers have no simple replies. */
        ret = send_chunk(c, req, NBD_REPLY_TYPE_NONE,
                         NBD_REPLY_FLAG_DONE, NULL, 0, NULL, 0);
    } else {
        /* Success without payload: a simple reply even with structured
         * replies on, as qemu-nbd 7.2 answers. */
        ret = send_simple(c, req->handle, 0, NULL, 0);
    }
    co_mutex_unlock(&c->send_lock);
    return ret;
}

static void client_unref(NBDClient *c);
static void server_update_accept(void);

static void client_request_done(NBDClient *c, NBDRequestData *rd)
{
    c->in_flight--;
    c->in_flight_bytes -= rd->charged;
    g_free(rd->payload);
    g_free(rd);
    if (c->recv_waiting && c->recv_co) {
        c->recv_waiting = false;
        aio_co_wake(c->recv_co);
    }
    client_unref(c);
}

static void coroutine_fn request_co(void *opaque)
{
    NBDRequestData *rd = opaque;
    NBDClient *c = rd->client;

    if (handle_request(c, rd) < 0) {
        /* The reply could not be sent: the stream is broken. */
        c->closing = true;
        nbd_sock_shutdown(&c->sock);
    }
    client_request_done(c, rd);
}

static void coroutine_fn client_wait_room(NBDClient *c, int64_t bytes)
{
    while (!c->closing && (c->in_flight >= NBD_MAX_REQUESTS ||
           (c->in_flight > 0 &&
            c->in_flight_bytes + bytes > CLIENT_MAX_INFLIGHT_BYTES))) {
        c->recv_waiting = true;
        coroutine_yield();
    }
}

static int coroutine_fn client_transmission(NBDClient *c)
{
    NBDMode mode = c->extended ? NBD_MODE_EXTENDED :
                   c->structured ? NBD_MODE_STRUCTURED : NBD_MODE_SIMPLE;
    size_t hdr_len = c->extended ? NBD_EXTENDED_REQUEST_SIZE
                                 : NBD_REQUEST_SIZE;

    for (;;) {
        uint8_t hdr[NBD_EXTENDED_REQUEST_SIZE];
        NBDRequestData *rd;
        const char *msg;
        bool fatal, ok;
        uint64_t payload;
        int err, ret;

        client_wait_room(c, 0);
        if (c->closing) {
            return 0;
        }
        if ((ret = nbd_sock_read(&c->sock, hdr, hdr_len)) < 0) {
            return ret;
        }
        rd = g_new0(NBDRequestData, 1);
        rd->client = c;
        /* The other style's magic is as wrong as garbage: out of sync. */
        ok = c->extended ? nbd_decode_ext_request(hdr, &rd->req)
                         : nbd_decode_request(hdr, &rd->req);
        if (!ok) {
            g_free(rd);
            return -EINVAL;          /* bad magic: out of sync, drop */
        }
        if (rd->req.type == NBD_CMD_DISC) {
            g_free(rd);
            /* The spec: outstanding requests are handled, and answered,
             * before the connection closes. */
            while (c->in_flight > 0 && !c->closing) {
                c->recv_waiting = true;
                coroutine_yield();
            }
            return 0;
        }
        err = nbd_check_request_mode(&rd->req, blk_getlength(c->exp->blk),
                                     c->exp->flags, mode, c->have_meta,
                                     &msg, &fatal);
        if (fatal) {
            g_free(rd);
            return -EINVAL;
        }
        /* Bounded by the check above (NBD_MAX_BUFFER_SIZE).  A payload
         * is consumed even when the request is refused, so the next
         * header is found where the client put it. */
        payload = nbd_request_payload_len(&rd->req, mode);
        if (payload) {
            client_wait_room(c, payload);
            rd->payload = g_try_malloc(payload);
            if (!rd->payload) {
                g_free(rd);
                return -ENOMEM;
            }
            if ((ret = nbd_sock_read(&c->sock, rd->payload, payload)) < 0) {
                g_free(rd->payload);
                g_free(rd);
                return ret;
            }
            rd->charged = payload;
        } else if (rd->req.type == NBD_CMD_READ && !err) {
            client_wait_room(c, rd->req.len);
            rd->charged = rd->req.len;
        }
        c->in_flight++;
        c->in_flight_bytes += rd->charged;
        c->refcnt++;
        if (err) {
            co_mutex_lock(&c->send_lock);
            ret = send_error(c, &rd->req, -err, msg);
            co_mutex_unlock(&c->send_lock);
            client_request_done(c, rd);
            if (ret < 0) {
                return ret;
            }
            continue;
        }
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
     * (their sends fail fast on the shut-down socket) and the last
     * reference closes the socket. */
    c->recv_co = NULL;
    c->recv_waiting = false;
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
    co_mutex_init(&c->send_lock);
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
