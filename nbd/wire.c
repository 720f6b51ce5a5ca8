/*
 * NBD wire encoding: request and reply headers in network byte order, the
 * mapping between host errno values and the protocol's error numbers, and
 * the server's request gatekeeper (nbd_check_request), which every request
 * passes before anything reaches the block layer.  Pure functions, so the
 * unit test can drive them without sockets.
 */
#include "nbd/nbd.h"
#include "util/bswap.h"

void nbd_encode_request(uint8_t buf[NBD_REQUEST_SIZE], const NBDRequest *req)
{
    st32_be(buf, NBD_REQUEST_MAGIC);
    st16_be(buf + 4, req->flags);
    st16_be(buf + 6, req->type);
    st64_be(buf + 8, req->handle);
    st64_be(buf + 16, req->offset);
    st32_be(buf + 24, req->len);
}

bool nbd_decode_request(const uint8_t buf[NBD_REQUEST_SIZE], NBDRequest *req)
{
    if (ld32_be(buf) != NBD_REQUEST_MAGIC) {
        return false;
    }
    req->flags = ld16_be(buf + 4);
    req->type = ld16_be(buf + 6);
    req->handle = ld64_be(buf + 8);
    req->offset = ld64_be(buf + 16);
    req->len = ld32_be(buf + 24);
    return true;
}

void nbd_encode_simple_reply(uint8_t buf[NBD_SIMPLE_REPLY_SIZE],
                             uint32_t error, uint64_t handle)
{
    st32_be(buf, NBD_SIMPLE_REPLY_MAGIC);
    st32_be(buf + 4, error);
    st64_be(buf + 8, handle);
}

void nbd_encode_structured_hdr(uint8_t buf[NBD_STRUCTURED_HDR_SIZE],
                               const NBDStructuredReplyHdr *hdr)
{
    st32_be(buf, NBD_STRUCTURED_REPLY_MAGIC);
    st16_be(buf + 4, hdr->flags);
    st16_be(buf + 6, hdr->type);
    st64_be(buf + 8, hdr->handle);
    st32_be(buf + 16, hdr->length);
}

uint32_t nbd_errno_to_wire(int err)
{
    if (err < 0) {
        err = -err;
    }
    switch (err) {
    case 0:
        return NBD_SUCCESS;
    case EPERM:
    case EROFS:
        return NBD_EPERM;
    case EIO:
        return NBD_EIO;
    case ENOMEM:
        return NBD_ENOMEM;
#ifdef EDQUOT
    case EDQUOT:
#endif
    case EFBIG:
    case ENOSPC:
        return NBD_ENOSPC;
    case EOVERFLOW:
        return NBD_EOVERFLOW;
    case ENOTSUP:
        return NBD_ENOTSUP;
    case ESHUTDOWN:
        return NBD_ESHUTDOWN;
    case EINVAL:
    default:
        return NBD_EINVAL;
    }
}

int nbd_wire_to_errno(uint32_t err)
{
    switch (err) {
    case NBD_SUCCESS:
        return 0;
    case NBD_EPERM:
        return EPERM;
    case NBD_EIO:
        return EIO;
    case NBD_ENOMEM:
        return ENOMEM;
    case NBD_ENOSPC:
        return ENOSPC;
    case NBD_EOVERFLOW:
        return EOVERFLOW;
    case NBD_ENOTSUP:
        return ENOTSUP;
    case NBD_ESHUTDOWN:
        return ESHUTDOWN;
    case NBD_EINVAL:
    default:
        return EINVAL;
    }
}

const char *nbd_cmd_name(uint16_t cmd)
{
    static const char *const names[] = {
        "read", "write", "disconnect", "flush", "trim", "cache",
        "write zeroes", "block status", "resize",
    };
    return cmd < QB_ARRAY_SIZE(names) ? names[cmd] : "<unknown>";
}

const char *nbd_opt_name(uint32_t opt)
{
    static const char *const names[] = {
        "<unknown>", "export name", "abort", "list", "peek export",
        "starttls", "info", "go", "structured reply", "list meta context",
        "set meta context", "extended headers",
    };
    return opt < QB_ARRAY_SIZE(names) ? names[opt] : "<unknown>";
}

int nbd_check_request(const NBDRequest *req, uint64_t export_size,
                      uint16_t export_flags, bool structured, bool have_meta,
                      const char **msg, bool *fatal)
{
    uint16_t allowed = NBD_CMD_FLAG_FUA;
    bool ro = export_flags & NBD_FLAG_READ_ONLY;

    *fatal = false;
    *msg = NULL;

    /* A WRITE whose payload we refuse to read leaves the stream out of
     * sync: the only safe answer is to drop the connection. */
    if (req->type == NBD_CMD_WRITE && req->len > NBD_MAX_BUFFER_SIZE) {
        *msg = "payload too large";
        *fatal = true;
        return EINVAL;
    }

    switch (req->type) {
    case NBD_CMD_READ:
        if (structured) {
            allowed |= NBD_CMD_FLAG_DF;
        }
        /* fall through */
    case NBD_CMD_WRITE:
        if (req->len > NBD_MAX_BUFFER_SIZE) {
            *msg = "len too large";
            return EINVAL;
        }
        break;
    case NBD_CMD_WRITE_ZEROES:
        allowed |= NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FAST_ZERO;
        break;
    case NBD_CMD_BLOCK_STATUS:
        if (!structured || !have_meta) {
            *msg = "need to negotiate structured replies and a meta context";
            return EINVAL;
        }
        allowed |= NBD_CMD_FLAG_REQ_ONE;
        break;
    case NBD_CMD_TRIM:
    case NBD_CMD_FLUSH:
    case NBD_CMD_CACHE:
        break;
    case NBD_CMD_DISC:
        return 0;
    default:
        *msg = "unsupported command";
        return ENOTSUP;
    }

    if (req->flags & ~allowed) {
        *msg = "unsupported flags";
        return EINVAL;
    }
    if (req->type == NBD_CMD_FLUSH) {
        return 0;
    }
    if (req->offset > export_size || req->len > export_size - req->offset) {
        *msg = "operation past EOF";
        return req->type == NBD_CMD_WRITE ||
               req->type == NBD_CMD_WRITE_ZEROES ? ENOSPC : EINVAL;
    }
    if (req->len == 0 && req->type != NBD_CMD_READ &&
        req->type != NBD_CMD_WRITE) {
        *msg = "zero-length request";
        return EINVAL;
    }
    if (ro && (req->type == NBD_CMD_WRITE ||
               req->type == NBD_CMD_WRITE_ZEROES ||
               req->type == NBD_CMD_TRIM)) {
        *msg = "export is read-only";
        return EPERM;
    }
    return 0;
}
