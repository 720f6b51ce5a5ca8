/*
 * NBD client side of the handshake: fixed newstyle negotiation on a
 * connected socket (extended headers or structured replies when the
 * caller asks, one meta context, NBD_OPT_GO with a fallback to
 * NBD_OPT_EXPORT_NAME), and the export listing behind
 * `qblock-nbd -L` (NBD_OPT_LIST, then NBD_OPT_INFO and
 * NBD_OPT_LIST_META_CONTEXT per export), printed as qemu-nbd -L prints it.
 * The socket is used blocking here; the transmission phase belongs to the
 * block driver (block/drivers/nbd-client.c).
 *
 * Invariant: every length read from the server is bounded before any
 * allocation (option replies at NBD_MAX_OPTION_SIZE).
 */
#include "nbd/nbd.h"
#include "util/bswap.h"
#include "nbd/tls.h"

#include <sys/socket.h>

/*
 * Exact-length I/O over the NBDSock (plain or TLS), turning -errno into
 * QEMU's client texts.  Outside coroutine context the socket polls.
 */
static void report_rep_err(uint32_t type, const uint8_t *data, uint32_t len,
                           uint32_t opt, Error **errp);

static int read_full(NBDSock *s, void *buf, size_t len, Error **errp)
{
    int ret = nbd_sock_read(s, buf, len);

    if (ret == -ECONNRESET) {
        error_setg(errp, "Unexpected end-of-file before all data were read");
        return -1;
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to read from socket");
        return -1;
    }
    return 0;
}

static int write_full(NBDSock *s, const void *buf, size_t len, Error **errp)
{
    int ret = nbd_sock_write(s, buf, len);

    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to write to socket");
        return -1;
    }
    return 0;
}

static void put32(GByteArray *b, uint32_t v)
{
    v = GUINT32_TO_BE(v);
    g_byte_array_append(b, (guint8 *)&v, 4);
}

static void put16(GByteArray *b, uint16_t v)
{
    v = GUINT16_TO_BE(v);
    g_byte_array_append(b, (guint8 *)&v, 2);
}

static int send_option(NBDSock *fd, uint32_t opt, const void *data, uint32_t len,
                       Error **errp)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    uint64_t magic = GUINT64_TO_BE(NBD_OPTS_MAGIC);

    g_byte_array_append(b, (guint8 *)&magic, 8);
    put32(b, opt);
    put32(b, len);
    if (len) {
        g_byte_array_append(b, data, len);
    }
    return write_full(fd, b->data, b->len, errp);
}

/* Read one option reply; *data (g_free) holds its payload. */
static int read_reply(NBDSock *fd, uint32_t opt, uint32_t *type, uint8_t **data,
                      uint32_t *len, Error **errp)
{
    uint8_t hdr[20];

    *data = NULL;
    if (read_full(fd, hdr, sizeof(hdr), errp) < 0) {
        return -1;
    }
    if (ld64_be(hdr) != NBD_REP_MAGIC) {
        error_setg(errp, "Unexpected option reply magic");
        return -1;
    }
    if (ld32_be(hdr + 8) != opt) {
        error_setg(errp, "Unexpected option type %u (%s), expected %u (%s)",
                   ld32_be(hdr + 8), nbd_opt_name(ld32_be(hdr + 8)), opt,
                   nbd_opt_name(opt));
        return -1;
    }
    *type = ld32_be(hdr + 12);
    *len = ld32_be(hdr + 16);
    if (*len > NBD_MAX_OPTION_SIZE) {
        error_setg(errp, "server's reply to option %s is too long",
                   nbd_opt_name(opt));
        return -1;
    }
    *data = g_malloc(*len + 1);
    (*data)[*len] = 0;
    if (*len && read_full(fd, *data, *len, errp) < 0) {
        g_clear_pointer(data, g_free);
        return -1;
    }
    return 0;
}

static int client_greeting(NBDSock *fd, bool *no_zeroes, Error **errp)
{
    uint8_t buf[18];
    uint32_t cflags;

    if (read_full(fd, buf, 16, errp) < 0) {
        error_prepend(errp, "Failed to read initial magic: ");
        return -1;
    }
    if (ld64_be(buf) != NBD_INIT_MAGIC) {
        error_setg(errp, "Invalid magic received");
        return -1;
    }
    if (ld64_be(buf + 8) == NBD_CLIENT_MAGIC) {
        error_setg(errp, "Server uses the oldstyle protocol, which is not "
                   "supported");
        return -1;
    }
    if (ld64_be(buf + 8) != NBD_OPTS_MAGIC) {
        error_setg(errp, "Bad server magic received");
        return -1;
    }
    if (read_full(fd, buf + 16, 2, errp) < 0) {
        return -1;
    }
    uint16_t sflags = ld16_be(buf + 16);
    if (!(sflags & NBD_FLAG_FIXED_NEWSTYLE)) {
        error_setg(errp, "Server does not support fixed newstyle negotiation");
        return -1;
    }
    *no_zeroes = sflags & NBD_FLAG_NO_ZEROES;
    cflags = GUINT32_TO_BE(NBD_FLAG_C_FIXED_NEWSTYLE |
                           (*no_zeroes ? NBD_FLAG_C_NO_ZEROES : 0));
    return write_full(fd, &cflags, 4, errp);
}

/*
 * NBD_OPT_STARTTLS, then the TLS handshake over the same socket.  Every
 * later byte of the negotiation goes through the session (nbd/sock.c).
 */
static int client_starttls(NBDSock *s, NBDTLSCreds *creds,
                           const char *hostname, Error **errp)
{
    uint32_t type, len;
    g_autofree uint8_t *data = NULL;
    Error *local_err = NULL;

    if (send_option(s, NBD_OPT_STARTTLS, NULL, 0, errp) < 0 ||
        read_reply(s, NBD_OPT_STARTTLS, &type, &data, &len, errp) < 0) {
        return -1;
    }
    if (type != NBD_REP_ACK) {
        if (type & (UINT32_C(1) << 31)) {
            report_rep_err(type, data, len, NBD_OPT_STARTTLS, errp);
        } else {
            error_setg(errp, "Server rejected request to start TLS %u",
                       type);
        }
        return -1;
    }
    if (len) {
        error_setg(errp, "Start TLS response was not zero %u", len);
        return -1;
    }
    if (nbd_tls_handshake(s, creds, false, hostname, NULL, &local_err) < 0) {
        error_propagate(errp, local_err);
        return -1;
    }
    return 0;
}

/* Request structured replies; returns 1 if the server agreed. */
/* An option without payload answered by ACK or an error: 1 if ACKed, 0 if
 * refused (any error reply), -1 on a broken connection. */
static int client_flag_opt(NBDSock *fd, uint32_t opt, Error **errp)
{
    uint32_t type, len;
    g_autofree uint8_t *data = NULL;

    if (send_option(fd, opt, NULL, 0, errp) < 0 ||
        read_reply(fd, opt, &type, &data, &len, errp) < 0) {
        return -1;
    }
    return type == NBD_REP_ACK;
}

static void append_name(GByteArray *b, const char *s)
{
    put32(b, strlen(s));
    g_byte_array_append(b, (const guint8 *)s, strlen(s));
}

/* Error reply to text: "server reported: MSG" as QEMU's client does. */
static void report_rep_err(uint32_t type, const uint8_t *data, uint32_t len,
                           uint32_t opt, Error **errp)
{
    const char *what;
    switch (type) {
    case NBD_REP_ERR_UNKNOWN:
        what = "Requested export not available";
        break;
    case NBD_REP_ERR_UNSUP:
        what = "Unsupported option";
        break;
    case NBD_REP_ERR_POLICY:
        what = NULL;
        error_setg(errp, "Denied by server for option %u (%s)", opt,
                   nbd_opt_name(opt));
        break;
    case NBD_REP_ERR_TLS_REQD:
        what = NULL;
        error_setg(errp, "TLS negotiation required before option %u (%s)",
                   opt, nbd_opt_name(opt));
        error_append_hint(errp, "Did you forget a valid tls-creds?\n");
        break;
    case NBD_REP_ERR_INVALID:
        what = "Server rejected request as invalid";
        break;
    case NBD_REP_ERR_SHUTDOWN:
        what = "Server shutting down before option";
        break;
    default:
        what = "Server error for option";
        break;
    }
    if (!what) {
        /* The text (with the option) is set; add the server's message. */
        if (len) {
            error_append_hint(errp, "server reported: %.*s\n", (int)len,
                              (const char *)data);
        }
        return;
    }
    if (len) {
        error_setg(errp, "%s\nserver reported: %.*s", what, (int)len,
                   (const char *)data);
    } else {
        error_setg(errp, "%s %s", what, nbd_opt_name(opt));
    }
}

/* NBD_OPT_SET/LIST_META_CONTEXT with one query (or none for LIST). */
static int client_meta(NBDSock *fd, uint32_t opt, const char *export,
                       const char *query, GPtrArray *names, uint32_t *id,
                       Error **errp)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    bool found = false;

    append_name(b, export);
    put32(b, query ? 1 : 0);
    if (query) {
        append_name(b, query);
    }
    if (send_option(fd, opt, b->data, b->len, errp) < 0) {
        return -1;
    }
    for (int guard = 0; guard < 100000; guard++) {
        uint32_t type, len;
        g_autofree uint8_t *data = NULL;
        if (read_reply(fd, opt, &type, &data, &len, errp) < 0) {
            return -1;
        }
        if (type == NBD_REP_ACK) {
            return found ? 1 : 0;
        }
        if (type == NBD_REP_META_CONTEXT && len >= 4) {
            found = true;
            if (id) {
                *id = ld32_be(data);
            }
            if (names) {
                g_ptr_array_add(names, g_strndup((char *)data + 4, len - 4));
            }
            continue;
        }
        if (type & (UINT32_C(1) << 31)) {
            /* Not fatal: the caller decides what a missing context means. */
            return 0;
        }
        error_setg(errp, "Unexpected reply type %u to %s", type,
                   nbd_opt_name(opt));
        return -1;
    }
    error_setg(errp, "Too many meta context replies");
    return -1;
}

/*
 * NBD_OPT_INFO or NBD_OPT_GO.  Returns 1 on success, 0 if the server does
 * not know the option (fall back to EXPORT_NAME), -1 on error.
 */
static int client_info_go(NBDSock *fd, uint32_t opt, NBDExportInfo *info,
                          Error **errp)
{
    g_autoptr(GByteArray) b = g_byte_array_new();

    append_name(b, info->name);
    put16(b, 2);
    put16(b, NBD_INFO_DESCRIPTION);
    put16(b, NBD_INFO_BLOCK_SIZE);
    if (send_option(fd, opt, b->data, b->len, errp) < 0) {
        return -1;
    }
    for (int guard = 0; guard < 1000; guard++) {
        uint32_t type, len;
        g_autofree uint8_t *data = NULL;
        if (read_reply(fd, opt, &type, &data, &len, errp) < 0) {
            return -1;
        }
        if (type == NBD_REP_ACK) {
            return 1;
        }
        if (type == NBD_REP_ERR_UNSUP) {
            return 0;
        }
        if (type & (UINT32_C(1) << 31)) {
            report_rep_err(type, data, len, opt, errp);
            return -1;
        }
        if (type != NBD_REP_INFO || len < 2) {
            error_setg(errp, "Unexpected reply type %u to %s", type,
                       nbd_opt_name(opt));
            return -1;
        }
        switch (ld16_be(data)) {
        case NBD_INFO_EXPORT:
            if (len != 12) {
                error_setg(errp, "remaining export info len %u is "
                           "unexpected size", len - 2);
                return -1;
            }
            info->size = ld64_be(data + 2);
            info->flags = ld16_be(data + 10);
            break;
        case NBD_INFO_BLOCK_SIZE:
            if (len != 14) {
                error_setg(errp, "remaining export info len %u is "
                           "unexpected size", len - 2);
                return -1;
            }
            info->min_block = ld32_be(data + 2);
            info->opt_block = ld32_be(data + 6);
            info->max_block = ld32_be(data + 10);
            break;
        case NBD_INFO_DESCRIPTION:
            g_free(info->description);
            info->description = g_strndup((char *)data + 2, len - 2);
            break;
        default:
            break;  /* unknown info types are ignored, per the spec */
        }
    }
    error_setg(errp, "Too many info replies");
    return -1;
}

int nbd_client_handshake_sock(NBDSock *fd, NBDExportInfo *info,
                              Error **errp)
{
    bool no_zeroes;
    int ret;

    if (client_greeting(fd, &no_zeroes, errp) < 0) {
        return -1;
    }
    if (info->tls_creds &&
        client_starttls(fd, info->tls_creds, info->tls_hostname, errp) < 0) {
        return -1;
    }
    info->structured = false;
    info->extended = false;
    if (info->request_extended) {
        /* Extended headers imply structured replies; a server without
         * them (QEMU < 8.2) says ERR_UNSUP and we fall back. */
        ret = client_flag_opt(fd, NBD_OPT_EXTENDED_HEADERS, errp);
        if (ret < 0) {
            return -1;
        }
        info->extended = info->structured = ret;
    }
    if (info->request_structured && !info->extended) {
        ret = client_flag_opt(fd, NBD_OPT_STRUCTURED_REPLY, errp);
        if (ret < 0) {
            return -1;
        }
        info->structured = ret;
    }
    info->meta_selected = false;
    if (info->structured && info->meta_context) {
        ret = client_meta(fd, NBD_OPT_SET_META_CONTEXT, info->name,
                          info->meta_context, NULL, &info->meta_id, errp);
        if (ret < 0) {
            return -1;
        }
        info->meta_selected = ret;
    }
    ret = client_info_go(fd, NBD_OPT_GO, info, errp);
    if (ret < 0) {
        /* Tell the server we are going, as QEMU's client does. */
        send_option(fd, NBD_OPT_ABORT, NULL, 0, NULL);
        return -1;
    }
    if (ret == 0 && info->extended) {
        /* The spec forbids EXPORT_NAME after extended headers. */
        error_setg(errp, "Server supports extended headers but not "
                   "NBD_OPT_GO");
        return -1;
    }
    if (ret == 0) {
        uint8_t buf[10 + 124];
        /* Old server: EXPORT_NAME, which has no error reply. */
        info->meta_selected = false;
        if (send_option(fd, NBD_OPT_EXPORT_NAME, info->name,
                        strlen(info->name), errp) < 0) {
            return -1;
        }
        if (read_full(fd, buf, no_zeroes ? 10 : sizeof(buf), errp) < 0) {
            error_prepend(errp, "Failed to read export length: ");
            return -1;
        }
        info->size = ld64_be(buf);
        info->flags = ld16_be(buf + 8);
    }
    if (info->size > INT64_MAX) {
        error_setg(errp, "Export size too large");
        return -1;
    }
    return 0;
}

void nbd_export_info_clear(NBDExportInfo *info)
{
    g_clear_pointer(&info->name, g_free);
    g_clear_pointer(&info->description, g_free);
}

static void print_flags(FILE *out, uint16_t flags)
{
    static const char *const names[] = {
        NULL, "readonly", "flush", "fua", "rotational", "trim", "zeroes",
        "df", "multi", "resize", "cache", "fast-zero",
    };
    fprintf(out, "  flags: 0x%x (", flags);
    for (int i = 1; i < (int)QB_ARRAY_SIZE(names); i++) {
        if (flags & (1 << i)) {
            fprintf(out, " %s", names[i]);
        }
    }
    fprintf(out, " )\n");
}

int nbd_client_list_sock(NBDSock *fd, FILE *out, NBDTLSCreds *creds,
                         const char *hostname, Error **errp)
{
    bool no_zeroes;
    bool structured;
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) descs = g_ptr_array_new_with_free_func(g_free);
    int ret;

    if (client_greeting(fd, &no_zeroes, errp) < 0) {
        return -1;
    }
    if (creds && client_starttls(fd, creds, hostname, errp) < 0) {
        return -1;
    }
    ret = client_flag_opt(fd, NBD_OPT_STRUCTURED_REPLY, errp);
    if (ret < 0) {
        return -1;
    }
    structured = ret;
    if (send_option(fd, NBD_OPT_LIST, NULL, 0, errp) < 0) {
        return -1;
    }
    for (int guard = 0; ; guard++) {
        uint32_t type, len, nlen;
        g_autofree uint8_t *data = NULL;
        if (guard > 100000) {
            error_setg(errp, "Too many exports");
            return -1;
        }
        if (read_reply(fd, NBD_OPT_LIST, &type, &data, &len, errp) < 0) {
            return -1;
        }
        if (type == NBD_REP_ACK) {
            break;
        }
        if (type != NBD_REP_SERVER || len < 4 ||
            (nlen = ld32_be(data)) > len - 4) {
            report_rep_err(type, data, len, NBD_OPT_LIST, errp);
            return -1;
        }
        g_ptr_array_add(names, g_strndup((char *)data + 4, nlen));
        g_ptr_array_add(descs, g_strndup((char *)data + 4 + nlen,
                                         len - 4 - nlen));
    }

    fprintf(out, "exports available: %u\n", names->len);
    for (guint i = 0; i < names->len; i++) {
        NBDExportInfo info = { .name = g_strdup(names->pdata[i]) };
        g_autoptr(GPtrArray) ctx = g_ptr_array_new_with_free_func(g_free);
        const char *desc = descs->pdata[i];

        if (client_info_go(fd, NBD_OPT_INFO, &info, errp) <= 0) {
            nbd_export_info_clear(&info);
            return -1;
        }
        if (structured &&
            client_meta(fd, NBD_OPT_LIST_META_CONTEXT, info.name, NULL, ctx,
                        NULL, errp) < 0) {
            nbd_export_info_clear(&info);
            return -1;
        }
        fprintf(out, " export: '%s'\n", info.name);
        if (*desc) {
            fprintf(out, "  description: %s\n", desc);
        }
        fprintf(out, "  size:  %" PRIu64 "\n", info.size);
        print_flags(out, info.flags);
        if (info.min_block) {
            fprintf(out, "  min block: %u\n", info.min_block);
            fprintf(out, "  opt block: %u\n", info.opt_block);
            fprintf(out, "  max block: %u\n", info.max_block);
        }
        if (structured) {
            fprintf(out, "  available meta contexts: %u\n", ctx->len);
            for (guint j = 0; j < ctx->len; j++) {
                fprintf(out, "   %s\n", (char *)ctx->pdata[j]);
            }
        }
        nbd_export_info_clear(&info);
    }
    send_option(fd, NBD_OPT_ABORT, NULL, 0, NULL);
    return 0;
}

/* The plain-socket entry points: the fd stays the caller's to close. */
int nbd_client_handshake(int fd, NBDExportInfo *info, Error **errp)
{
    NBDSock s;

    nbd_sock_init(&s, fd, qb_get_aio_context());
    return nbd_client_handshake_sock(&s, info, errp);
}

int nbd_client_list(int fd, FILE *out, Error **errp)
{
    NBDSock s;

    nbd_sock_init(&s, fd, qb_get_aio_context());
    return nbd_client_list_sock(&s, out, NULL, NULL, errp);
}
