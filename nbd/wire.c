/*
 * NBD wire encoding: request and reply headers in network byte order
 * (compact, and the 32-byte extended ones of NBD_OPT_EXTENDED_HEADERS), the
 * mapping between host errno values and the protocol's error numbers, and
 * the server's request gatekeeper (nbd_check_request), which every request
 * passes before anything reaches the block layer.  Pure functions, so the
 * unit test can drive them without sockets.
 */
#include "nbd/nbd.h"
#include "util/bswap.h"

void nbd_encode_request(uint8_t buf[NBD_REQUEST_SIZE], const NBDRequest *req)
{
    /* Compact requests carry 32 bits of length; callers stay below. */
    assert(req->len <= UINT32_MAX);
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

void nbd_encode_ext_request(uint8_t buf[NBD_EXTENDED_REQUEST_SIZE],
                            const NBDRequest *req)
{
    st32_be(buf, NBD_EXTENDED_REQUEST_MAGIC);
    st16_be(buf + 4, req->flags);
    st16_be(buf + 6, req->type);
    st64_be(buf + 8, req->handle);
    st64_be(buf + 16, req->offset);
    st64_be(buf + 24, req->len);
}

bool nbd_decode_ext_request(const uint8_t buf[NBD_EXTENDED_REQUEST_SIZE],
                            NBDRequest *req)
{
    if (ld32_be(buf) != NBD_EXTENDED_REQUEST_MAGIC) {
        return false;
    }
    req->flags = ld16_be(buf + 4);
    req->type = ld16_be(buf + 6);
    req->handle = ld64_be(buf + 8);
    req->offset = ld64_be(buf + 16);
    req->len = ld64_be(buf + 24);
    return true;
}

void nbd_encode_ext_reply_hdr(uint8_t buf[NBD_EXTENDED_REPLY_SIZE],
                              const NBDExtReplyHdr *hdr)
{
    st32_be(buf, NBD_EXTENDED_REPLY_MAGIC);
    st16_be(buf + 4, hdr->flags);
    st16_be(buf + 6, hdr->type);
    st64_be(buf + 8, hdr->handle);
    st64_be(buf + 16, hdr->offset);
    st64_be(buf + 24, hdr->length);
}

bool nbd_decode_ext_reply_hdr(const uint8_t buf[NBD_EXTENDED_REPLY_SIZE],
                              NBDExtReplyHdr *hdr)
{
    if (ld32_be(buf) != NBD_EXTENDED_REPLY_MAGIC) {
        return false;
    }
    hdr->flags = ld16_be(buf + 4);
    hdr->type = ld16_be(buf + 6);
    hdr->handle = ld64_be(buf + 8);
    hdr->offset = ld64_be(buf + 16);
    hdr->length = ld64_be(buf + 24);
    return true;
}

uint64_t nbd_request_payload_len(const NBDRequest *req, NBDMode mode)
{
    if (req->type == NBD_CMD_WRITE) {
        return req->len;
    }
    if (mode == NBD_MODE_EXTENDED && (req->flags & NBD_CMD_FLAG_PAYLOAD_LEN)) {
        return req->len;
    }
    return 0;
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
    return nbd_check_request_mode(req, export_size, export_flags,
                                  structured ? NBD_MODE_STRUCTURED
                                             : NBD_MODE_SIMPLE,
                                  have_meta, msg, fatal);
}

int nbd_check_request_mode(const NBDRequest *req, uint64_t export_size,
                           uint16_t export_flags, NBDMode mode,
                           bool have_meta, const char **msg, bool *fatal)
{
    uint16_t allowed = NBD_CMD_FLAG_FUA;
    bool ro = export_flags & NBD_FLAG_READ_ONLY;
    bool structured = mode >= NBD_MODE_STRUCTURED;

    *fatal = false;
    *msg = NULL;

    /* A payload we refuse to read leaves the stream out of sync: the only
     * safe answer is to drop the connection.  (Compact requests cannot
     * get here with more than 4 GiB, extended ones with up to 2^64-1.) */
    if (nbd_request_payload_len(req, mode) > NBD_MAX_BUFFER_SIZE) {
        *msg = "payload too large";
        *fatal = true;
        return EINVAL;
    }
    if (mode == NBD_MODE_EXTENDED && (req->flags & NBD_CMD_FLAG_PAYLOAD_LEN)) {
        if (req->type != NBD_CMD_WRITE) {
            /* No command but WRITE takes a payload here (no
             * NBD_FLAG_BLOCK_STAT_PAYLOAD): it was read and is dropped. */
            *msg = "unexpected payload";
            return EINVAL;
        }
        allowed |= NBD_CMD_FLAG_PAYLOAD_LEN;
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
        /* qemu-nbd 7.2 answers unknown commands with EINVAL. */
        *msg = "unsupported command";
        return EINVAL;
    }

    if (req->flags & ~allowed) {
        *msg = "unsupported flags";
        return EINVAL;
    }
    if (req->type == NBD_CMD_FLUSH) {
        return 0;
    }
    /*
     * As qemu-nbd 7.2 (observed): modifications of a read-only export,
     * ranges past the end, and zero-length BLOCK_STATUS all get EINVAL;
     * other zero-length requests are no-ops that succeed.  Overflow-safe
     * for 64-bit offsets and effect lengths.
     */
    if (ro && (req->type == NBD_CMD_WRITE ||
               req->type == NBD_CMD_WRITE_ZEROES ||
               req->type == NBD_CMD_TRIM)) {
        *msg = "export is read-only";
        return EINVAL;
    }
    if (req->offset > export_size || req->len > export_size - req->offset) {
        *msg = "operation past EOF";
        return EINVAL;
    }
    if (req->len == 0 && req->type == NBD_CMD_BLOCK_STATUS) {
        *msg = "zero-length block status";
        return EINVAL;
    }
    return 0;
}
