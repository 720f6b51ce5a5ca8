/*
 * The "nbd" protocol driver: a node backed by an export on an NBD server
 * (qemu-nbd, qblock-nbd, the storage daemon, nbdkit).  Options as QEMU 7.2:
 * server ({type: unix, path} | {type: inet, host, port}), export,
 * x-dirty-bitmap (report a meta context's extents as the allocation map),
 * reconnect-delay (accepted; no reconnection is attempted), tls-creds
 * (STARTTLS with a client-endpoint tls-creds-psk/x509 object) and
 * tls-hostname.  Filenames nbd://host[:port]/export,
 * nbd+unix:///export?socket=PATH and the legacy nbd:host:port /
 * nbd:unix:PATH[:exportname=NAME] forms.
 *
 * Requests are serialised by one CoMutex: each is sent and its whole reply
 * read before the next starts, so replies never need demultiplexing.
 * Every reply header and chunk is validated (magic, handle, lengths and
 * offsets within the request) before data is copied.
 */
#include "nbd/nbd.h"
#include "util/bswap.h"
#include "nbd/tls.h"
#include "block/block-int.h"
#include "block/graph.h"
#include "block/options.h"

#include <sys/socket.h>

typedef struct BDRVNBDState {
    NBDSock sock;
    NBDExportInfo info;
    CoMutex lock;
    uint64_t next_handle;
    bool broken;                 /* stream out of sync: fail everything */
    char *bitmap;                /* x-dirty-bitmap */
} BDRVNBDState;

/* ---------------------------------------------------------------------- */
/* Filenames                                                               */

static void set_server(json_t *options, const char *type, const char *a,
                       const char *b)
{
    json_t *srv = json_object();
    json_object_set_new(srv, "type", json_string(type));
    if (!strcmp(type, "unix")) {
        json_object_set_new(srv, "path", json_string(a));
    } else {
        json_object_set_new(srv, "host", json_string(a));
        json_object_set_new(srv, "port", json_string(b));
    }
    json_object_set_new(options, "server", srv);
}

static void nbd_parse_filename(const char *filename, json_t *options,
                               Error **errp)
{
    g_autofree char *scheme = g_uri_parse_scheme(filename);

    if (scheme && g_str_has_prefix(filename, scheme) &&
        g_str_has_prefix(filename + strlen(scheme), "://")) {
        GError *gerr = NULL;
        g_autoptr(GUri) uri = g_uri_parse(filename, G_URI_FLAGS_NONE, &gerr);
        const char *path, *query;
        g_autofree char *sockpath = NULL;

        if (!uri) {
            error_setg(errp, "Invalid URI: %s", gerr->message);
            g_error_free(gerr);
            return;
        }
        path = g_uri_get_path(uri);
        query = g_uri_get_query(uri);
        if (query) {
            g_autoptr(GHashTable) q = g_uri_parse_params(query, -1, "&",
                                                         G_URI_PARAMS_NONE,
                                                         NULL);
            if (!q || g_hash_table_size(q) != 1 ||
                !g_hash_table_lookup(q, "socket")) {
                error_setg(errp, "Invalid URI: unexpected query parameters");
                return;
            }
            sockpath = g_strdup(g_hash_table_lookup(q, "socket"));
        }
        if (!strcmp(scheme, "nbd+unix")) {
            if (!sockpath || (g_uri_get_host(uri) && *g_uri_get_host(uri))) {
                error_setg(errp, "Invalid URI: nbd+unix needs ?socket=PATH "
                           "and no host");
                return;
            }
            set_server(options, "unix", sockpath, NULL);
        } else if (!strcmp(scheme, "nbd") || !strcmp(scheme, "nbd+tcp")) {
            g_autofree char *port = NULL;
            if (sockpath || !g_uri_get_host(uri) || !*g_uri_get_host(uri)) {
                error_setg(errp, "Invalid URI: host required for nbd://");
                return;
            }
            port = g_strdup_printf("%d", g_uri_get_port(uri) > 0 ?
                                   g_uri_get_port(uri) : NBD_DEFAULT_PORT);
            set_server(options, "inet", g_uri_get_host(uri), port);
        } else {
            error_setg(errp, "Invalid URI: unknown scheme '%s'", scheme);
            return;
        }
        if (path && path[0] == '/' && path[1]) {
            json_object_set_new(options, "export", json_string(path + 1));
        }
        return;
    }

    /* Legacy: nbd:unix:PATH[:exportname=E] or nbd:HOST:PORT[:exportname=E] */
    if (!g_str_has_prefix(filename, "nbd:")) {
        error_setg(errp, "No valid URL specified");
        return;
    }
    g_autofree char *rest = g_strdup(filename + 4);
    char *exp = strstr(rest, ":exportname=");
    if (exp) {
        json_object_set_new(options, "export",
                            json_string(exp + strlen(":exportname=")));
        *exp = 0;
    }
    if (g_str_has_prefix(rest, "unix:")) {
        set_server(options, "unix", rest + 5, NULL);
    } else {
        char *colon = strrchr(rest, ':');
        g_autofree char *port = NULL;
        if (colon) {
            *colon = 0;
            port = g_strdup(colon + 1);
        } else {
            port = g_strdup_printf("%d", NBD_DEFAULT_PORT);
        }
        set_server(options, "inet", rest, port);
    }
}

/* ---------------------------------------------------------------------- */
/* Open / close                                                            */

/* Take the "server" address from options: nested or as dotted keys. */
static json_t *take_server(json_t *options, Error **errp)
{
    json_t *srv = json_object_get(options, "server");
    const char *keys[] = { "type", "path", "host", "port" };

    if (json_is_object(srv)) {
        json_incref(srv);
        json_object_del(options, "server");
    } else {
        srv = json_object();
        for (int i = 0; i < 4; i++) {
            g_autofree char *k = g_strconcat("server.", keys[i], NULL);
            json_t *v = json_object_get(options, k);
            if (v) {
                json_object_set(srv, keys[i], v);
                json_object_del(options, k);
            }
        }
        /* Old-style top-level path/host/port (QEMU accepts these too). */
        for (int i = 1; i < 4; i++) {
            json_t *v = json_object_get(options, keys[i]);
            if (v && !json_object_get(srv, keys[i])) {
                json_object_set(srv, keys[i], v);
                json_object_del(options, keys[i]);
                if (!json_object_get(srv, "type")) {
                    json_object_set_new(srv, "type", json_string(
                        i == 1 ? "unix" : "inet"));
                }
            }
        }
    }
    if (!json_object_get(srv, "type")) {
        json_decref(srv);
        error_setg(errp, "Parameter 'server.type' is missing");
        return NULL;
    }
    return srv;
}

static int nbd_open_inner(BlockDriverState *bs, json_t *options, int flags,
                          Error **errp)
{
    BDRVNBDState *s = bs->opaque;
    g_autofree char *tls = NULL;
    g_autofree char *tls_hostname = NULL;
    g_autofree char *srv_host = NULL;
    g_autofree char *filename = qb_opt_take_str(options, "filename");
    json_t *srv;
    Error *local_err = NULL;
    int fd;

    if (filename) {
        nbd_parse_filename(filename, options, &local_err);
        if (local_err) {
            error_propagate(errp, local_err);
            return -EINVAL;
        }
    }
    tls = qb_opt_take_str(options, "tls-creds");
    tls_hostname = qb_opt_take_str(options, "tls-hostname");
    if (tls) {
        s->info.tls_creds = nbd_tls_creds_find(tls, false, errp);
        if (!s->info.tls_creds) {
            return -EINVAL;
        }
    }
    qb_opt_take_int(options, "reconnect-delay", 0, &local_err);
    if (local_err) {
        error_propagate(errp, local_err);
        return -EINVAL;
    }
    qb_opt_take_int(options, "open-timeout", 0, &local_err);
    if (local_err) {
        error_propagate(errp, local_err);
        return -EINVAL;
    }
    s->info.name = qb_opt_take_str(options, "export");
    if (!s->info.name) {
        s->info.name = g_strdup("");
    }
    s->bitmap = qb_opt_take_str(options, "x-dirty-bitmap");
    srv = take_server(options, errp);
    if (!srv) {
        return -EINVAL;
    }
    srv_host = g_strdup(json_string_value(json_object_get(srv, "host")));
    fd = nbd_socket_connect(srv, errp);
    json_decref(srv);
    if (fd < 0) {
        return -ECONNREFUSED;
    }

    g_autofree char *ctx = s->bitmap ?
        g_strconcat(NBD_META_DIRTY_BITMAP, s->bitmap, NULL) : NULL;
    s->info.request_structured = true;
    s->info.meta_context = ctx ? ctx : NBD_META_BASE_ALLOCATION;
    /* x509 checks the server's name: tls-hostname, else the host we
     * connected to (QEMU's default for inet addresses). */
    s->info.tls_hostname = tls_hostname ? tls_hostname : srv_host;
    /* The handshake runs on the socket the requests will use: a TLS
     * session negotiated by STARTTLS lives on it. */
    co_mutex_init(&s->lock);
    nbd_sock_init(&s->sock, fd, bs->aio_context ? bs->aio_context
                                                : qb_get_aio_context());
    if (nbd_client_handshake_sock(&s->sock, &s->info, errp) < 0) {
        nbd_sock_close(&s->sock);
        return -EINVAL;
    }
    s->info.meta_context = NULL;
    s->info.tls_hostname = NULL;
    if (s->bitmap && !s->info.meta_selected) {
        error_setg(errp, "requested x-dirty-bitmap %s not found", s->bitmap);
        nbd_sock_close(&s->sock);
        return -EINVAL;
    }
    if (s->info.flags & NBD_FLAG_READ_ONLY) {
        Error *ro_err = NULL;
        int ret = bdrv_apply_auto_read_only(bs, "NBD export is read-only",
                                            &ro_err);
        if (ret < 0) {
            /* QEMU 7.2 reports the errno, not the reason. */
            error_free(ro_err);
            error_setg(errp, "Could not open image: %s", strerror(-ret));
            nbd_sock_close(&s->sock);
            return ret;
        }
    }
    bs->total_sectors = QB_DIV_ROUND_UP(s->info.size, BDRV_SECTOR_SIZE);
    if (s->info.flags & NBD_FLAG_SEND_FUA) {
        bs->supported_write_flags = BDRV_REQ_FUA;
        bs->supported_zero_flags |= BDRV_REQ_FUA;
    }
    if (s->info.flags & NBD_FLAG_SEND_WRITE_ZEROES) {
        bs->supported_zero_flags |= BDRV_REQ_MAY_UNMAP;
        if (s->info.flags & NBD_FLAG_SEND_FAST_ZERO) {
            bs->supported_zero_flags |= BDRV_REQ_NO_FALLBACK;
        }
    }
    snprintf(bs->exact_filename, sizeof(bs->exact_filename), "%s",
             bs->filename);
    return 0;
}

/* The core does not call close after a failed open: release what the
 * failed attempt took (export name, bitmap name, handshake results). */
static int nbd_open(BlockDriverState *bs, json_t *options, int flags,
                    Error **errp)
{
    BDRVNBDState *s = bs->opaque;
    int ret = nbd_open_inner(bs, options, flags, errp);

    if (ret < 0) {
        nbd_export_info_clear(&s->info);
        g_clear_pointer(&s->bitmap, g_free);
    }
    return ret;
}

static void nbd_close(BlockDriverState *bs)
{
    BDRVNBDState *s = bs->opaque;

    if (s->sock.fd >= 0 && !s->broken) {
        uint8_t buf[NBD_REQUEST_SIZE];
        NBDRequest req = { .type = NBD_CMD_DISC, .handle = s->next_handle++ };
        nbd_encode_request(buf, &req);
        /* Best effort, non-blocking: the server closes on its side.
         * Under TLS the request must go through the session. */
        if (s->sock.tls) {
            bool out;
            nbd_tls_send(&s->sock, buf, sizeof(buf), &out);
        } else if (send(s->sock.fd, buf, sizeof(buf),
                        MSG_NOSIGNAL | MSG_DONTWAIT)) {
            /* nothing to do either way */
        }
    }
    nbd_sock_close(&s->sock);
    nbd_export_info_clear(&s->info);
    g_free(s->bitmap);
}

static void nbd_refresh_limits(BlockDriverState *bs, Error **errp)
{
    BDRVNBDState *s = bs->opaque;
    uint32_t max = s->info.max_block ? MIN(s->info.max_block,
                                           NBD_MAX_BUFFER_SIZE)
                                     : NBD_MAX_BUFFER_SIZE;
    uint32_t min = s->info.min_block ? s->info.min_block : 1;

    bs->bl.request_alignment = QB_IS_POWER_OF_2(min) ? min : 1;
    bs->bl.max_transfer = QB_ALIGN_DOWN(max, bs->bl.request_alignment);
    bs->bl.opt_transfer = s->info.opt_block;
    bs->bl.max_pdiscard = bs->bl.max_pwrite_zeroes =
        QB_ALIGN_DOWN(INT32_MAX, MAX(bs->bl.request_alignment, 4096));
}

static int64_t nbd_getlength(BlockDriverState *bs)
{
    BDRVNBDState *s = bs->opaque;
    return s->info.size;
}

/* ---------------------------------------------------------------------- */
/* Requests                                                                */

typedef struct Reply {
    IOVector *qiov;              /* READ destination */
    uint64_t offset, len;        /* the request */
    int64_t *pnum;               /* BLOCK_STATUS result */
    uint32_t *bs_flags;
    bool got_status;
} Reply;

/*
 * A failed socket read or write means the connection is gone (hard
 * disconnect, server exit): as QEMU's client, report -EIO rather than the
 * socket's errno (ECONNRESET, EPIPE, ESHUTDOWN), so callers print
 * "Input/output error".  Errors the server sends stay as they are.
 */
static int coroutine_fn sock_read(BDRVNBDState *s, void *buf, size_t len)
{
    return nbd_sock_read(&s->sock, buf, len) < 0 ? -EIO : 0;
}

/* Read and check the reply to request handle; -errno from the server or
 * -EIO (and the connection marked broken) for protocol violations. */
static int coroutine_fn receive_reply(BDRVNBDState *s, uint64_t handle,
                                      uint16_t type, Reply *r)
{
    uint8_t hdr[NBD_STRUCTURED_HDR_SIZE];
    int ret, err = 0;

    if ((ret = sock_read(s, hdr, 4)) < 0) {
        return ret;
    }
    if (ld32_be(hdr) == NBD_SIMPLE_REPLY_MAGIC) {
        if ((ret = sock_read(s, hdr + 4, 12)) < 0) {
            return ret;
        }
        if (ld64_be(hdr + 8) != handle) {
            return -EIO;
        }
        err = nbd_wire_to_errno(ld32_be(hdr + 4));
        if (err) {
            return -err;
        }
        if (type == NBD_CMD_READ && r->len) {
            g_autofree uint8_t *buf = g_malloc(r->len);
            if ((ret = sock_read(s, buf, r->len)) < 0) {
                return ret;
            }
            qiov_from_buf(r->qiov, 0, buf, r->len);
        }
        return 0;
    }
    if (ld32_be(hdr) != NBD_STRUCTURED_REPLY_MAGIC || !s->info.structured) {
        return -EIO;
    }
    for (int chunks = 0; ; chunks++) {
        uint16_t flags, ctype;
        uint32_t len;
        g_autofree uint8_t *payload = NULL;

        if (chunks > 0) {
            if ((ret = sock_read(s, hdr, 4)) < 0) {
                return ret;
            }
            if (ld32_be(hdr) != NBD_STRUCTURED_REPLY_MAGIC) {
                return -EIO;
            }
        }
        if ((ret = sock_read(s, hdr + 4, 16)) < 0) {
            return ret;
        }
        flags = GUINT16_FROM_BE(*(uint16_t *)(hdr + 4));
        ctype = GUINT16_FROM_BE(*(uint16_t *)(hdr + 6));
        len = ld32_be(hdr + 16);
        if (ld64_be(hdr + 8) != handle ||
            len > NBD_MAX_BUFFER_SIZE + 4096) {
            return -EIO;
        }
        payload = g_malloc(MAX(len, 1));
        if (len && (ret = sock_read(s, payload, len)) < 0) {
            return ret;
        }
        switch (ctype) {
        case NBD_REPLY_TYPE_NONE:
            if (len) {
                return -EIO;
            }
            break;
        case NBD_REPLY_TYPE_OFFSET_DATA: {
            uint64_t off;
            if (type != NBD_CMD_READ || len < 8) {
                return -EIO;
            }
            off = ld64_be(payload);
            if (off < r->offset || off + (len - 8) > r->offset + r->len) {
                return -EIO;
            }
            qiov_from_buf(r->qiov, off - r->offset, payload + 8, len - 8);
            break;
        }
        case NBD_REPLY_TYPE_OFFSET_HOLE: {
            uint64_t off;
            uint32_t hl;
            if (type != NBD_CMD_READ || len != 12) {
                return -EIO;
            }
            off = ld64_be(payload);
            hl = ld32_be(payload + 8);
            if (off < r->offset || off + hl > r->offset + r->len) {
                return -EIO;
            }
            qiov_memset(r->qiov, off - r->offset, 0, hl);
            break;
        }
        case NBD_REPLY_TYPE_BLOCK_STATUS:
            if (type != NBD_CMD_BLOCK_STATUS || len < 12 || (len - 4) % 8) {
                return -EIO;
            }
            if (ld32_be(payload) == s->info.meta_id && !r->got_status) {
                uint32_t elen = ld32_be(payload + 4);
                if (elen == 0) {
                    return -EIO;
                }
                *r->pnum = MIN((uint64_t)elen, r->len);
                *r->bs_flags = ld32_be(payload + 8);
                r->got_status = true;
            }
            break;
        default:
            if (NBD_REPLY_TYPE_IS_ERR(ctype)) {
                if (len < 6) {
                    return -EIO;
                }
                if (!err) {
                    err = nbd_wire_to_errno(ld32_be(payload));
                    if (!err) {
                        err = EIO;
                    }
                }
                break;
            }
            /* Unknown non-error chunk types must be rejected. */
            return -EIO;
        }
        if (flags & NBD_REPLY_FLAG_DONE) {
            break;
        }
        if (chunks > 1000000) {
            return -EIO;
        }
    }
    if (err) {
        return -err;
    }
    if (type == NBD_CMD_BLOCK_STATUS && !r->got_status) {
        return -EIO;
    }
    return 0;
}

static int coroutine_fn nbd_request(BlockDriverState *bs, uint16_t type,
                                    uint16_t flags, uint64_t offset,
                                    uint64_t len, IOVector *wqiov, Reply *r)
{
    BDRVNBDState *s = bs->opaque;
    uint8_t hdr[NBD_REQUEST_SIZE];
    NBDRequest req = { .flags = flags, .type = type, .offset = offset,
                       .len = len };
    int ret;

    co_mutex_lock(&s->lock);
    if (s->broken) {
        co_mutex_unlock(&s->lock);
        return -EIO;
    }
    req.handle = ++s->next_handle;
    nbd_encode_request(hdr, &req);
    if (wqiov) {
        struct iovec *iov = g_new(struct iovec, wqiov->niov + 1);
        iov[0].iov_base = hdr;
        iov[0].iov_len = sizeof(hdr);
        memcpy(iov + 1, wqiov->iov, sizeof(*iov) * wqiov->niov);
        ret = nbd_sock_writev(&s->sock, iov, wqiov->niov + 1);
        g_free(iov);
    } else {
        ret = nbd_sock_write(&s->sock, hdr, sizeof(hdr));
    }
    if (ret >= 0) {
        ret = receive_reply(s, req.handle, type, r);
        if (ret == -EIO) {
            s->broken = true;
        }
    } else {
        s->broken = true;
        ret = -EIO;
    }
    co_mutex_unlock(&s->lock);
    return ret;
}

static int coroutine_fn nbd_co_preadv(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, IOVector *qiov,
                                      BdrvRequestFlags flags)
{
    Reply r = { .qiov = qiov, .offset = offset, .len = bytes };
    return nbd_request(bs, NBD_CMD_READ, 0, offset, bytes, NULL, &r);
}

static int coroutine_fn nbd_co_pwritev(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, IOVector *qiov,
                                       BdrvRequestFlags flags)
{
    BDRVNBDState *s = bs->opaque;
    Reply r = { .offset = offset, .len = bytes };
    uint16_t f = 0;

    if (s->info.flags & NBD_FLAG_READ_ONLY) {
        return -EPERM;
    }
    if ((flags & BDRV_REQ_FUA) && (s->info.flags & NBD_FLAG_SEND_FUA)) {
        f |= NBD_CMD_FLAG_FUA;
    }
    return nbd_request(bs, NBD_CMD_WRITE, f, offset, bytes, qiov, &r);
}

static int coroutine_fn nbd_co_pwrite_zeroes(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes,
                                             BdrvRequestFlags flags)
{
    BDRVNBDState *s = bs->opaque;
    Reply r = { .offset = offset, .len = bytes };
    uint16_t f = 0;

    if (!(s->info.flags & NBD_FLAG_SEND_WRITE_ZEROES)) {
        return -ENOTSUP;
    }
    if ((flags & BDRV_REQ_FUA) && (s->info.flags & NBD_FLAG_SEND_FUA)) {
        f |= NBD_CMD_FLAG_FUA;
    }
    if (!(flags & BDRV_REQ_MAY_UNMAP)) {
        f |= NBD_CMD_FLAG_NO_HOLE;
    }
    if (flags & BDRV_REQ_NO_FALLBACK) {
        if (!(s->info.flags & NBD_FLAG_SEND_FAST_ZERO)) {
            return -ENOTSUP;
        }
        f |= NBD_CMD_FLAG_FAST_ZERO;
    }
    return nbd_request(bs, NBD_CMD_WRITE_ZEROES, f, offset, bytes, NULL, &r);
}

static int coroutine_fn nbd_co_pdiscard(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes)
{
    BDRVNBDState *s = bs->opaque;
    Reply r = { .offset = offset, .len = bytes };

    if (!(s->info.flags & NBD_FLAG_SEND_TRIM)) {
        return 0;
    }
    return nbd_request(bs, NBD_CMD_TRIM, 0, offset, bytes, NULL, &r);
}

static int coroutine_fn nbd_co_flush(BlockDriverState *bs)
{
    BDRVNBDState *s = bs->opaque;
    Reply r = { 0 };

    if (!(s->info.flags & NBD_FLAG_SEND_FLUSH)) {
        return 0;
    }
    return nbd_request(bs, NBD_CMD_FLUSH, 0, 0, 0, NULL, &r);
}

static int coroutine_fn nbd_co_block_status(BlockDriverState *bs,
                                            bool want_zero, int64_t offset,
                                            int64_t bytes, int64_t *pnum,
                                            int64_t *map,
                                            BlockDriverState **file)
{
    BDRVNBDState *s = bs->opaque;
    uint32_t st = 0;
    Reply r = { .offset = offset, .len = MIN(bytes, (int64_t)UINT32_MAX),
                .pnum = pnum, .bs_flags = &st };
    int ret;

    if (!s->info.meta_selected) {
        *pnum = bytes;
        *map = offset;
        *file = bs;
        return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
    }
    ret = nbd_request(bs, NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, offset,
                      r.len, NULL, &r);
    if (ret < 0) {
        return ret;
    }
    *map = offset;
    *file = bs;
    /* x-dirty-bitmap reuses these bits: dirty reads as "hole", as in
     * QEMU, so a map of the node shows the bitmap. */
    return (st & NBD_STATE_HOLE ? 0 : BDRV_BLOCK_DATA) |
           (st & NBD_STATE_ZERO ? BDRV_BLOCK_ZERO : 0) |
           BDRV_BLOCK_OFFSET_VALID;
}

static const char *const nbd_strong_opts[] = {
    "server.", "export", "tls-creds", "tls-hostname", NULL
};

#define NBD_DRIVER_COMMON                                        \
    .format_name = "nbd",                                        \
    .instance_size = sizeof(BDRVNBDState),                       \
    .bdrv_parse_filename = nbd_parse_filename,                   \
    .bdrv_open = nbd_open,                                       \
    .bdrv_close = nbd_close,                                     \
    .bdrv_co_preadv = nbd_co_preadv,                             \
    .bdrv_co_pwritev = nbd_co_pwritev,                           \
    .bdrv_co_pwrite_zeroes = nbd_co_pwrite_zeroes,               \
    .bdrv_co_pdiscard = nbd_co_pdiscard,                         \
    .bdrv_co_flush = nbd_co_flush,                               \
    .bdrv_co_block_status = nbd_co_block_status,                 \
    .bdrv_getlength = nbd_getlength,                             \
    .bdrv_refresh_limits = nbd_refresh_limits,                   \
    .strong_runtime_opts = nbd_strong_opts

BlockDriver bdrv_nbd = {
    NBD_DRIVER_COMMON,
    .protocol_name = "nbd",
};

BlockDriver bdrv_nbd_tcp = {
    NBD_DRIVER_COMMON,
    .protocol_name = "nbd+tcp",
};

BlockDriver bdrv_nbd_unix = {
    NBD_DRIVER_COMMON,
    .protocol_name = "nbd+unix",
};
