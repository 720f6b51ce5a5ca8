/*
 * NBD: constants of the Network Block Device protocol (fixed newstyle
 * handshake, simple and structured replies, meta contexts), the wire
 * encoding helpers shared by server and client, and the entry points of the
 * server (exports over a BlockBackend) and of the client side of the
 * handshake.  Values are those of the NBD protocol specification
 * (NetworkBlockDevice/nbd doc/proto.md).
 */
#ifndef NBD_NBD_H
#define NBD_NBD_H

#include "util/common.h"
#include "util/error.h"
#include "util/coroutine.h"
#include "util/aio.h"
#include <jansson.h>

typedef struct BlockBackend BlockBackend;
typedef struct BlockDriverState BlockDriverState;

/* --- handshake --- */
#define NBD_INIT_MAGIC          UINT64_C(0x4e42444d41474943)  /* "NBDMAGIC" */
#define NBD_OPTS_MAGIC          UINT64_C(0x49484156454f5054)  /* "IHAVEOPT" */
#define NBD_CLIENT_MAGIC        UINT64_C(0x0000420281861253)  /* oldstyle */
#define NBD_REP_MAGIC           UINT64_C(0x0003e889045565a9)

#define NBD_FLAG_FIXED_NEWSTYLE (1 << 0)
#define NBD_FLAG_NO_ZEROES      (1 << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE NBD_FLAG_FIXED_NEWSTYLE
#define NBD_FLAG_C_NO_ZEROES    NBD_FLAG_NO_ZEROES

enum {
    NBD_OPT_EXPORT_NAME = 1,
    NBD_OPT_ABORT = 2,
    NBD_OPT_LIST = 3,
    NBD_OPT_PEEK_EXPORT = 4,
    NBD_OPT_STARTTLS = 5,
    NBD_OPT_INFO = 6,
    NBD_OPT_GO = 7,
    NBD_OPT_STRUCTURED_REPLY = 8,
    NBD_OPT_LIST_META_CONTEXT = 9,
    NBD_OPT_SET_META_CONTEXT = 10,
    NBD_OPT_EXTENDED_HEADERS = 11,
};

#define NBD_REP_ERR(v)          ((UINT32_C(1) << 31) | (v))
enum {
    NBD_REP_ACK = 1,
    NBD_REP_SERVER = 2,
    NBD_REP_INFO = 3,
    NBD_REP_META_CONTEXT = 4,
};
#define NBD_REP_ERR_UNSUP       NBD_REP_ERR(1)
#define NBD_REP_ERR_POLICY      NBD_REP_ERR(2)
#define NBD_REP_ERR_INVALID     NBD_REP_ERR(3)
#define NBD_REP_ERR_PLATFORM    NBD_REP_ERR(4)
#define NBD_REP_ERR_TLS_REQD    NBD_REP_ERR(5)
#define NBD_REP_ERR_UNKNOWN     NBD_REP_ERR(6)
#define NBD_REP_ERR_SHUTDOWN    NBD_REP_ERR(7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD NBD_REP_ERR(8)
#define NBD_REP_ERR_TOO_BIG     NBD_REP_ERR(9)
#define NBD_REP_ERR_EXT_HEADER_REQD NBD_REP_ERR(10)

enum {
    NBD_INFO_EXPORT = 0,
    NBD_INFO_NAME = 1,
    NBD_INFO_DESCRIPTION = 2,
    NBD_INFO_BLOCK_SIZE = 3,
};

/* Transmission flags. */
#define NBD_FLAG_HAS_FLAGS          (1 << 0)
#define NBD_FLAG_READ_ONLY          (1 << 1)
#define NBD_FLAG_SEND_FLUSH         (1 << 2)
#define NBD_FLAG_SEND_FUA           (1 << 3)
#define NBD_FLAG_ROTATIONAL         (1 << 4)
#define NBD_FLAG_SEND_TRIM          (1 << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES  (1 << 6)
#define NBD_FLAG_SEND_DF            (1 << 7)
#define NBD_FLAG_CAN_MULTI_CONN     (1 << 8)
#define NBD_FLAG_SEND_RESIZE        (1 << 9)
#define NBD_FLAG_SEND_CACHE         (1 << 10)
#define NBD_FLAG_SEND_FAST_ZERO     (1 << 11)

/* --- transmission --- */
#define NBD_REQUEST_MAGIC           0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC      0x67446698u
#define NBD_STRUCTURED_REPLY_MAGIC  0x668e33efu
/* NBD_OPT_EXTENDED_HEADERS: 32-byte requests and replies, 64-bit lengths. */
#define NBD_EXTENDED_REQUEST_MAGIC  0x21e41c71u
#define NBD_EXTENDED_REPLY_MAGIC    0x6e8a278cu

enum {
    NBD_CMD_READ = 0,
    NBD_CMD_WRITE = 1,
    NBD_CMD_DISC = 2,
    NBD_CMD_FLUSH = 3,
    NBD_CMD_TRIM = 4,
    NBD_CMD_CACHE = 5,
    NBD_CMD_WRITE_ZEROES = 6,
    NBD_CMD_BLOCK_STATUS = 7,
    NBD_CMD_RESIZE = 8,
};

#define NBD_CMD_FLAG_FUA        (1 << 0)
#define NBD_CMD_FLAG_NO_HOLE    (1 << 1)
#define NBD_CMD_FLAG_DF         (1 << 2)
#define NBD_CMD_FLAG_REQ_ONE    (1 << 3)
#define NBD_CMD_FLAG_FAST_ZERO  (1 << 4)
#define NBD_CMD_FLAG_PAYLOAD_LEN (1 << 5)   /* extended: len is payload */

#define NBD_REPLY_FLAG_DONE     (1 << 0)
enum {
    NBD_REPLY_TYPE_NONE = 0,
    NBD_REPLY_TYPE_OFFSET_DATA = 1,
    NBD_REPLY_TYPE_OFFSET_HOLE = 2,
    NBD_REPLY_TYPE_BLOCK_STATUS = 5,
    NBD_REPLY_TYPE_BLOCK_STATUS_EXT = 6,   /* extended headers only */
    NBD_REPLY_TYPE_ERROR = (1 << 15) + 1,
    NBD_REPLY_TYPE_ERROR_OFFSET = (1 << 15) + 2,
};
#define NBD_REPLY_TYPE_IS_ERR(t) (((t) & (1 << 15)) != 0)

/* Errors on the wire (the spec's values, not the host's errno). */
enum {
    NBD_SUCCESS = 0,
    NBD_EPERM = 1,
    NBD_EIO = 5,
    NBD_ENOMEM = 12,
    NBD_EINVAL = 22,
    NBD_ENOSPC = 28,
    NBD_EOVERFLOW = 75,
    NBD_ENOTSUP = 95,
    NBD_ESHUTDOWN = 108,
};

/* Meta-context status bits. */
#define NBD_STATE_HOLE          (1 << 0)
#define NBD_STATE_ZERO          (1 << 1)
#define NBD_STATE_DIRTY         (1 << 0)

#define NBD_META_BASE_ALLOCATION   "base:allocation"
#define NBD_META_ALLOCATION_DEPTH  "qemu:allocation-depth"
#define NBD_META_DIRTY_BITMAP      "qemu:dirty-bitmap:"

/* Limits (as QEMU). */
#define NBD_MAX_BUFFER_SIZE     (32 * 1024 * 1024)  /* max READ/WRITE payload */
#define NBD_MAX_STRING_SIZE     4096                /* names, descriptions */
#define NBD_MAX_OPTION_SIZE     (64 * 1024)         /* option payload */
#define NBD_MAX_REQUESTS        16                  /* in flight per client */
#define NBD_DEFAULT_PORT        10809
#define NBD_REQUEST_SIZE        28
#define NBD_SIMPLE_REPLY_SIZE   16
#define NBD_STRUCTURED_HDR_SIZE 20
#define NBD_EXTENDED_REQUEST_SIZE 32
#define NBD_EXTENDED_REPLY_SIZE 32

/* How the transmission phase frames messages, from the negotiation. */
typedef enum NBDMode {
    NBD_MODE_SIMPLE,        /* compact requests, simple replies only */
    NBD_MODE_STRUCTURED,    /* compact requests, structured replies */
    NBD_MODE_EXTENDED,      /* extended requests and replies */
} NBDMode;

/* --- wire encoding (nbd/wire.c): pure, unit-tested --- */
typedef struct NBDRequest {
    uint16_t flags;
    uint16_t type;
    uint64_t handle;
    uint64_t offset;
    uint64_t len;      /* 32 bits on the wire unless extended headers */
} NBDRequest;

typedef struct NBDStructuredReplyHdr {
    uint16_t flags;
    uint16_t type;
    uint64_t handle;
    uint32_t length;
} NBDStructuredReplyHdr;

/* An extended reply header (any reply once extended headers are on). */
typedef struct NBDExtReplyHdr {
    uint16_t flags;
    uint16_t type;
    uint64_t handle;   /* the request's cookie */
    uint64_t offset;   /* the request's offset, echoed */
    uint64_t length;   /* payload length */
} NBDExtReplyHdr;

void nbd_encode_request(uint8_t buf[NBD_REQUEST_SIZE], const NBDRequest *req);
/* Returns false if the magic is wrong. */
bool nbd_decode_request(const uint8_t buf[NBD_REQUEST_SIZE], NBDRequest *req);
void nbd_encode_simple_reply(uint8_t buf[NBD_SIMPLE_REPLY_SIZE],
                             uint32_t error, uint64_t handle);
void nbd_encode_structured_hdr(uint8_t buf[NBD_STRUCTURED_HDR_SIZE],
                               const NBDStructuredReplyHdr *hdr);
/* Extended headers.  Decoders return false if the magic is wrong. */
void nbd_encode_ext_request(uint8_t buf[NBD_EXTENDED_REQUEST_SIZE],
                            const NBDRequest *req);
bool nbd_decode_ext_request(const uint8_t buf[NBD_EXTENDED_REQUEST_SIZE],
                            NBDRequest *req);
void nbd_encode_ext_reply_hdr(uint8_t buf[NBD_EXTENDED_REPLY_SIZE],
                              const NBDExtReplyHdr *hdr);
bool nbd_decode_ext_reply_hdr(const uint8_t buf[NBD_EXTENDED_REPLY_SIZE],
                              NBDExtReplyHdr *hdr);
/* Bytes of payload following the request header: a WRITE's data, or with
 * extended headers any request flagged NBD_CMD_FLAG_PAYLOAD_LEN. */
uint64_t nbd_request_payload_len(const NBDRequest *req, NBDMode mode);

/* Host errno <-> wire error (unknown errnos map to EINVAL, as QEMU). */
uint32_t nbd_errno_to_wire(int err);
int nbd_wire_to_errno(uint32_t err);
const char *nbd_cmd_name(uint16_t cmd);
const char *nbd_opt_name(uint32_t opt);

/*
 * Server-side request validation: the one gatekeeper every request passes
 * before the block layer sees it.  export_flags are the transmission flags
 * advertised; structured says whether structured replies were negotiated;
 * have_meta whether any meta context was selected.  Returns 0 or a host
 * errno (EINVAL for every refusal, as qemu-nbd 7.2 answers) with *msg set
 * to a static explanation; *fatal is set when the connection must be dropped
 * (the payload of a bad WRITE cannot be skipped safely).
 */
int nbd_check_request(const NBDRequest *req, uint64_t export_size,
                      uint16_t export_flags, bool structured, bool have_meta,
                      const char **msg, bool *fatal);
/*
 * The same for any negotiated mode.  With NBD_MODE_EXTENDED, len is a
 * 64-bit effect length for TRIM, WRITE_ZEROES, CACHE and BLOCK_STATUS
 * (bounded by the export size), NBD_CMD_FLAG_PAYLOAD_LEN is accepted on
 * WRITE, and on other commands its payload (which the caller consumes)
 * earns EINVAL.  *fatal: the payload exceeds NBD_MAX_BUFFER_SIZE.
 */
int nbd_check_request_mode(const NBDRequest *req, uint64_t export_size,
                           uint16_t export_flags, NBDMode mode,
                           bool have_meta, const char **msg, bool *fatal);

/* --- coroutine socket I/O (nbd/sock.c) --- */
/*
 * A non-blocking socket driven by one AioContext.  At most one coroutine
 * reads and one writes at a time (callers serialise with their own locks);
 * each parks on the fd handler until the socket is ready.
 */
typedef struct NBDSock {
    int fd;
    AioContext *ctx;
    Coroutine *read_co, *write_co;
    bool shutdown;       /* nbd_sock_shutdown() was called */
    void *tls;           /* GnuTLS session once STARTTLS completed */
} NBDSock;

void nbd_sock_init(NBDSock *s, int fd, AioContext *ctx);
/* Read/write exactly len bytes.  0, or -errno (-ECONNRESET on EOF).  In
 * coroutine context they yield; outside they poll the fd (blocking). */
int coroutine_fn nbd_sock_read(NBDSock *s, void *buf, size_t len);
int coroutine_fn nbd_sock_write(NBDSock *s, const void *buf, size_t len);
int coroutine_fn nbd_sock_writev(NBDSock *s, struct iovec *iov, int niov);
/* nbd_sock_writev that advances the caller's iovec in place (no copy). */
int coroutine_fn nbd_sock_writev_consume(NBDSock *s, struct iovec *iov,
                                         int niov);
/* Read 1..len bytes, whatever is available once the socket is readable:
 * >0, or -errno (-ECONNRESET on EOF). */
ssize_t coroutine_fn nbd_sock_recv_some(NBDSock *s, void *buf, size_t len);
/* Park until the fd is ready for reading (out false) or writing. */
void coroutine_fn nbd_sock_wait(NBDSock *s, bool out);
/* Shut the socket down and wake any coroutine parked on it. */
void nbd_sock_shutdown(NBDSock *s);
void nbd_sock_close(NBDSock *s);

/* Socket addresses: SocketAddress-style JSON {"type":"unix","path":P} or
 * {"type":"inet","host":H,"port":"N"}. */
int nbd_socket_listen(json_t *addr, Error **errp);
int nbd_socket_connect(json_t *addr, Error **errp);
char *nbd_socket_addr_str(json_t *addr);

/* --- server (nbd/server.c) --- */
typedef struct NBDExport NBDExport;

typedef struct NBDExportOptions {
    const char *name;          /* export name ("" allowed) */
    const char *description;   /* may be NULL */
    bool writable;
    bool allocation_depth;     /* offer qemu:allocation-depth */
    const char *const *bitmaps;/* NULL-terminated; names of bitmaps on the
                                * node (or below it) to offer */
    /* Optional, parallel to bitmaps: a non-NULL entry is that bitmap,
     * already resolved by the caller ({node, name} on any node). */
    struct BdrvDirtyBitmap *const *bitmap_objs;
    int multi_conn;            /* -1 auto (on, as qemu-storage-daemon 7.2
                                * advertises on every export), 0 off, 1 on */
} NBDExportOptions;

/*
 * Export blk (a reference is taken).  Bitmaps are marked busy while
 * exported; errors use QEMU's texts.  on_delete(opaque) runs when the
 * export is gone (after nbd_export_remove and its last client).
 */
NBDExport *nbd_export_new(BlockBackend *blk, const NBDExportOptions *opts,
                          void (*on_delete)(void *opaque), void *opaque,
                          Error **errp);
NBDExport *nbd_export_find(const char *name);
const char *nbd_export_name(NBDExport *exp);
BlockBackend *nbd_export_blk(NBDExport *exp);
/* Ask clients to go, refuse new ones; deleted when the last one left. */
void nbd_export_remove(NBDExport *exp);
bool nbd_export_shutting_down(NBDExport *exp);
int nbd_export_client_count(NBDExport *exp);

/*
 * The server: listening sockets whose clients may pick any export.
 * nbd_server_start(addr_json, max_connections, errp): addr_json is a
 * SocketAddress JSON object (unix/inet); one server per process, as QEMU.
 * nbd_server_add_listen_fd serves an already listening fd (qblock-nbd).
 */
int nbd_server_start(json_t *addr, uint32_t max_connections, Error **errp);
int nbd_server_add_listen_fd(int fd, uint32_t max_connections, Error **errp);
bool nbd_server_is_running(void);
void nbd_server_stop(void);
/* Total clients connected (all exports, including those negotiating). */
int nbd_server_client_count(void);
/* Called whenever a client disconnects; negotiated says whether it got as
 * far as choosing an export (qblock-nbd exits when the last such goes). */
void nbd_server_set_client_closed_cb(void (*cb)(void *opaque, bool negotiated),
                                     void *opaque);
/* Stop accepting new clients (qblock-nbd once it served its one). */
void nbd_server_pause_accept(bool pause);
/* Serve an already connected socket (taken over, made non-blocking) as
 * if accepted, outside the connection limit: tests and the fuzz target. */
void nbd_server_serve_fd(int fd);

/* --- client (nbd/client.c) --- */
typedef struct NBDMetaContextInfo {
    uint32_t id;
    char *name;
} NBDMetaContextInfo;

typedef struct NBDExportInfo {
    /* In: */
    char *name;
    bool request_structured;
    bool request_extended;     /* try NBD_OPT_EXTENDED_HEADERS first */
    const char *meta_context;  /* context to select (NULL: none) */
    struct NBDTLSCreds *tls_creds; /* STARTTLS with these (client endpoint) */
    const char *tls_hostname;  /* x509: name the certificate must carry */
    /* Out: */
    bool structured;           /* also true when extended */
    bool extended;             /* extended headers negotiated */
    uint64_t size;
    uint16_t flags;
    uint32_t min_block, opt_block, max_block;
    char *description;
    bool meta_selected;
    uint32_t meta_id;
} NBDExportInfo;

/* Handshake on a connected blocking socket: negotiate and enter
 * transmission phase for info->name (NBD_OPT_GO, falling back to
 * EXPORT_NAME for old servers). */
int nbd_client_handshake(int fd, NBDExportInfo *info, Error **errp);
void nbd_export_info_clear(NBDExportInfo *info);

/* qemu-nbd -L: list exports with their details; output to out. */
int nbd_client_list(int fd, FILE *out, Error **errp);

/* The same over an NBDSock (nbd_sock_init'ed), with STARTTLS first when
 * info->tls_creds / creds is set; the TLS session stays on the socket. */
int nbd_client_handshake_sock(NBDSock *s, NBDExportInfo *info, Error **errp);
int nbd_client_list_sock(NBDSock *s, FILE *out, struct NBDTLSCreds *creds,
                         const char *hostname, Error **errp);

#endif
