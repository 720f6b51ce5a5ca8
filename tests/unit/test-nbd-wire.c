/*
 * Unit tests for the NBD wire layer: request/reply header encoding against
 * byte-exact vectors from the protocol specification, errno mapping, and
 * the server's request gatekeeper (nbd_check_request) on hostile inputs.
 */
#include "nbd/nbd.h"

static void test_request_roundtrip(void)
{
    NBDRequest r = { .flags = NBD_CMD_FLAG_FUA, .type = NBD_CMD_WRITE,
                     .handle = 0x0102030405060708ULL,
                     .offset = 0x1122334455667788ULL, .len = 0xa0b0c0d0 };
    NBDRequest out;
    uint8_t buf[NBD_REQUEST_SIZE];
    static const uint8_t expect[NBD_REQUEST_SIZE] = {
        0x25, 0x60, 0x95, 0x13, 0x00, 0x01, 0x00, 0x01,
        1, 2, 3, 4, 5, 6, 7, 8,
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
        0xa0, 0xb0, 0xc0, 0xd0,
    };

    nbd_encode_request(buf, &r);
    g_assert_cmpmem(buf, sizeof(buf), expect, sizeof(expect));
    g_assert_true(nbd_decode_request(buf, &out));
    g_assert_cmpuint(out.flags, ==, r.flags);
    g_assert_cmpuint(out.type, ==, r.type);
    g_assert_cmpuint(out.handle, ==, r.handle);
    g_assert_cmpuint(out.offset, ==, r.offset);
    g_assert_cmpuint(out.len, ==, r.len);
    buf[0] ^= 1;
    g_assert_false(nbd_decode_request(buf, &out));
}

static void test_replies(void)
{
    uint8_t s[NBD_SIMPLE_REPLY_SIZE], h[NBD_STRUCTURED_HDR_SIZE];
    static const uint8_t es[] = { 0x67, 0x44, 0x66, 0x98, 0, 0, 0, 22,
                                  0, 0, 0, 0, 0, 0, 0x12, 0x34 };
    static const uint8_t eh[] = { 0x66, 0x8e, 0x33, 0xef, 0, 1, 0, 5,
                                  0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 12 };
    NBDStructuredReplyHdr hdr = { .flags = NBD_REPLY_FLAG_DONE,
                                  .type = NBD_REPLY_TYPE_BLOCK_STATUS,
                                  .handle = 9, .length = 12 };

    nbd_encode_simple_reply(s, NBD_EINVAL, 0x1234);
    g_assert_cmpmem(s, sizeof(s), es, sizeof(es));
    nbd_encode_structured_hdr(h, &hdr);
    g_assert_cmpmem(h, sizeof(h), eh, sizeof(eh));
}

static void test_errno(void)
{
    g_assert_cmpuint(nbd_errno_to_wire(-EPERM), ==, NBD_EPERM);
    g_assert_cmpuint(nbd_errno_to_wire(EROFS), ==, NBD_EPERM);
    g_assert_cmpuint(nbd_errno_to_wire(-EFBIG), ==, NBD_ENOSPC);
    g_assert_cmpuint(nbd_errno_to_wire(-ENOTSUP), ==, NBD_ENOTSUP);
    g_assert_cmpuint(nbd_errno_to_wire(-EBADF), ==, NBD_EINVAL);
    g_assert_cmpuint(nbd_errno_to_wire(0), ==, 0);
    g_assert_cmpint(nbd_wire_to_errno(NBD_EIO), ==, EIO);
    g_assert_cmpint(nbd_wire_to_errno(12345), ==, EINVAL);
    g_assert_cmpint(nbd_wire_to_errno(NBD_ESHUTDOWN), ==, ESHUTDOWN);
}

static int check(uint16_t type, uint16_t flags, uint64_t off, uint32_t len,
                 uint16_t eflags, bool structured, bool meta, bool *fatal)
{
    NBDRequest r = { .type = type, .flags = flags, .offset = off,
                     .len = len };
    const char *msg;
    bool f;
    int ret = nbd_check_request(&r, 1 * MiB, eflags, structured, meta,
                                &msg, fatal ? fatal : &f);
    g_assert_true(ret == 0 || msg != NULL);
    return ret;
}

static void test_check_request(void)
{
    uint16_t rw = NBD_FLAG_HAS_FLAGS, ro = rw | NBD_FLAG_READ_ONLY;
    bool fatal;

    g_assert_cmpint(check(NBD_CMD_READ, 0, 0, 4096, rw, false, false, NULL),
                    ==, 0);
    /* Range: offset+len past the end, overflowing sums. */
    g_assert_cmpint(check(NBD_CMD_READ, 0, MiB - 1, 2, rw, 0, 0, NULL), ==,
                    EINVAL);
    g_assert_cmpint(check(NBD_CMD_READ, 0, UINT64_MAX, 2, rw, 0, 0, NULL), ==,
                    EINVAL);
    /* qemu-nbd 7.2 answers every refusal with EINVAL. */
    g_assert_cmpint(check(NBD_CMD_WRITE, 0, MiB, 1, rw, 0, 0, NULL), ==,
                    EINVAL);
    g_assert_cmpint(check(NBD_CMD_WRITE_ZEROES, 0, UINT64_MAX - 1, 4, rw, 0,
                          0, NULL), ==, EINVAL);
    /* Payload limits: a huge WRITE cannot be skipped -> fatal. */
    g_assert_cmpint(check(NBD_CMD_WRITE, 0, 0, NBD_MAX_BUFFER_SIZE + 1, rw,
                          0, 0, &fatal), ==, EINVAL);
    g_assert_true(fatal);
    g_assert_cmpint(check(NBD_CMD_READ, 0, 0, NBD_MAX_BUFFER_SIZE + 1, rw,
                          0, 0, &fatal), ==, EINVAL);
    g_assert_false(fatal);
    /* Flags: DF only with structured replies; unknown bits refused. */
    g_assert_cmpint(check(NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, 1, rw, false, 0,
                          NULL), ==, EINVAL);
    g_assert_cmpint(check(NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, 1, rw, true, 0,
                          NULL), ==, 0);
    g_assert_cmpint(check(NBD_CMD_WRITE, 0x8000, 0, 1, rw, 0, 0, NULL), ==,
                    EINVAL);
    g_assert_cmpint(check(NBD_CMD_TRIM, NBD_CMD_FLAG_NO_HOLE, 0, 1, rw, 0, 0,
                          NULL), ==, EINVAL);
    g_assert_cmpint(check(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE |
                          NBD_CMD_FLAG_FAST_ZERO | NBD_CMD_FLAG_FUA, 0, 512,
                          rw, 0, 0, NULL), ==, 0);
    /* Read-only exports refuse modifications. */
    g_assert_cmpint(check(NBD_CMD_WRITE, 0, 0, 512, ro, 0, 0, NULL), ==,
                    EINVAL);
    g_assert_cmpint(check(NBD_CMD_TRIM, 0, 0, 512, ro, 0, 0, NULL), ==,
                    EINVAL);
    g_assert_cmpint(check(NBD_CMD_WRITE_ZEROES, 0, MiB, 0, ro, 0, 0, NULL),
                    ==, EINVAL);
    /* Zero-length requests other than BLOCK_STATUS are no-ops. */
    g_assert_cmpint(check(NBD_CMD_TRIM, 0, MiB, 0, rw, 0, 0, NULL), ==, 0);
    g_assert_cmpint(check(NBD_CMD_WRITE_ZEROES, 0, 0, 0, rw, 0, 0, NULL), ==,
                    0);
    g_assert_cmpint(check(NBD_CMD_CACHE, 0, 0, 0, ro, 0, 0, NULL), ==, 0);
    g_assert_cmpint(check(NBD_CMD_FLUSH, 0, 0, 0, ro, 0, 0, NULL), ==, 0);
    /* BLOCK_STATUS needs structured replies and a context. */
    g_assert_cmpint(check(NBD_CMD_BLOCK_STATUS, 0, 0, 512, rw, true, false,
                          NULL), ==, EINVAL);
    g_assert_cmpint(check(NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_REQ_ONE, 0, 512,
                          rw, true, true, NULL), ==, 0);
    g_assert_cmpint(check(NBD_CMD_BLOCK_STATUS, 0, 0, 0, rw, true, true,
                          NULL), ==, EINVAL);
    /* Unknown commands. */
    g_assert_cmpint(check(NBD_CMD_RESIZE, 0, 0, 0, rw, 0, 0, NULL), ==,
                    EINVAL);
    g_assert_cmpint(check(200, 0, 0, 0, rw, 0, 0, NULL), ==, EINVAL);
}

static void test_names(void)
{
    g_assert_cmpstr(nbd_cmd_name(NBD_CMD_BLOCK_STATUS), ==, "block status");
    g_assert_cmpstr(nbd_cmd_name(999), ==, "<unknown>");
    g_assert_cmpstr(nbd_opt_name(NBD_OPT_GO), ==, "go");
    g_assert_cmpstr(nbd_opt_name(0xffffffff), ==, "<unknown>");
}

/* Extended headers: 32-byte request and reply, 64-bit fields. */
static void test_extended_roundtrip(void)
{
    NBDRequest r = { .flags = NBD_CMD_FLAG_PAYLOAD_LEN, .type = NBD_CMD_WRITE,
                     .handle = 0x0102030405060708ull,
                     .offset = 0x1122334455667788ull,
                     .len = 0x8000000000000001ull };
    NBDRequest out;
    NBDExtReplyHdr h = { .flags = NBD_REPLY_FLAG_DONE,
                         .type = NBD_REPLY_TYPE_BLOCK_STATUS_EXT,
                         .handle = 7, .offset = 1ull << 40,
                         .length = (1ull << 33) + 8 };
    NBDExtReplyHdr hout;
    uint8_t buf[NBD_EXTENDED_REQUEST_SIZE];
    static const uint8_t want_req[8] = { 0x21, 0xe4, 0x1c, 0x71, 0, 0x20,
                                         0, 1 };

    nbd_encode_ext_request(buf, &r);
    g_assert_cmpmem(buf, 8, want_req, 8);
    g_assert_cmpint(buf[24], ==, 0x80);
    g_assert_cmpint(buf[31], ==, 0x01);
    g_assert_true(nbd_decode_ext_request(buf, &out));
    g_assert_cmpuint(out.len, ==, r.len);
    g_assert_cmpuint(out.offset, ==, r.offset);
    g_assert_cmpuint(out.handle, ==, r.handle);
    /* A compact header is not an extended one, and vice versa. */
    g_assert_false(nbd_decode_request(buf, &out));
    nbd_encode_request(buf, &(NBDRequest){ .type = NBD_CMD_READ });
    g_assert_false(nbd_decode_ext_request(buf, &out));

    nbd_encode_ext_reply_hdr(buf, &h);
    g_assert_cmpint(buf[0], ==, 0x6e);
    g_assert_cmpint(buf[3], ==, 0x8c);
    g_assert_true(nbd_decode_ext_reply_hdr(buf, &hout));
    g_assert_cmpuint(hout.length, ==, h.length);
    g_assert_cmpuint(hout.offset, ==, h.offset);
    g_assert_cmpint(hout.type, ==, NBD_REPLY_TYPE_BLOCK_STATUS_EXT);
    buf[0] ^= 1;
    g_assert_false(nbd_decode_ext_reply_hdr(buf, &hout));
}

static int check_ext(uint16_t type, uint16_t flags, uint64_t off,
                     uint64_t len, uint64_t size, bool *fatal)
{
    NBDRequest r = { .type = type, .flags = flags, .offset = off,
                     .len = len };
    const char *msg;
    bool f;
    int ret = nbd_check_request_mode(&r, size, NBD_FLAG_HAS_FLAGS,
                                     NBD_MODE_EXTENDED, true, &msg,
                                     fatal ? fatal : &f);
    g_assert_true(ret == 0 || msg != NULL);
    return ret;
}

static void test_check_extended(void)
{
    uint64_t big = 8ull << 30;     /* an 8 GiB export */
    bool fatal;

    /* 64-bit effect lengths where no payload moves. */
    g_assert_cmpint(check_ext(NBD_CMD_WRITE_ZEROES, 0, 0, big, big, NULL),
                    ==, 0);
    g_assert_cmpint(check_ext(NBD_CMD_TRIM, 0, 1, big - 1, big, NULL), ==, 0);
    g_assert_cmpint(check_ext(NBD_CMD_BLOCK_STATUS, 0, 0, big, big, NULL),
                    ==, 0);
    g_assert_cmpint(check_ext(NBD_CMD_CACHE, 0, 0, big, big, NULL), ==, 0);
    g_assert_cmpint(check_ext(NBD_CMD_TRIM, 0, 1, big, big, NULL), ==,
                    EINVAL);
    g_assert_cmpint(check_ext(NBD_CMD_BLOCK_STATUS, 0, 0, 1ull << 63, big,
                              NULL), ==, EINVAL);
    g_assert_cmpint(check_ext(NBD_CMD_TRIM, 0, 1ull << 63, 1ull << 63, big,
                              NULL), ==, EINVAL);
    g_assert_cmpint(check_ext(NBD_CMD_WRITE_ZEROES, 0, UINT64_MAX,
                              UINT64_MAX, big, &fatal), ==, EINVAL);
    g_assert_false(fatal);
    /* Payload-carrying requests stay bounded by the buffer size. */
    g_assert_cmpint(check_ext(NBD_CMD_READ, 0, 0, NBD_MAX_BUFFER_SIZE + 1ull,
                              big, &fatal), ==, EINVAL);
    g_assert_false(fatal);
    g_assert_cmpint(check_ext(NBD_CMD_WRITE, 0, 0, 1ull << 63, big, &fatal),
                    ==, EINVAL);
    g_assert_true(fatal);
    g_assert_cmpint(check_ext(NBD_CMD_WRITE, NBD_CMD_FLAG_PAYLOAD_LEN, 0,
                              4096, big, NULL), ==, 0);
    /* PAYLOAD_LEN on another command: consumed, refused; too big: drop. */
    g_assert_cmpint(check_ext(NBD_CMD_BLOCK_STATUS, NBD_CMD_FLAG_PAYLOAD_LEN,
                              0, 16, big, &fatal), ==, EINVAL);
    g_assert_false(fatal);
    g_assert_cmpint(check_ext(NBD_CMD_READ, NBD_CMD_FLAG_PAYLOAD_LEN, 0,
                              NBD_MAX_BUFFER_SIZE + 1ull, big, &fatal), ==,
                    EINVAL);
    g_assert_true(fatal);
    {
        NBDRequest r = { .type = NBD_CMD_TRIM,
                         .flags = NBD_CMD_FLAG_PAYLOAD_LEN, .len = 9 };
        g_assert_cmpuint(nbd_request_payload_len(&r, NBD_MODE_EXTENDED), ==,
                         9);
        g_assert_cmpuint(nbd_request_payload_len(&r, NBD_MODE_STRUCTURED),
                         ==, 0);
    }
    /* In compact mode the flag is just an unknown flag. */
    {
        NBDRequest r = { .type = NBD_CMD_WRITE, .len = 512,
                         .flags = NBD_CMD_FLAG_PAYLOAD_LEN };
        const char *msg;
        g_assert_cmpint(nbd_check_request_mode(&r, big, NBD_FLAG_HAS_FLAGS,
                                               NBD_MODE_STRUCTURED, true,
                                               &msg, &fatal), ==, EINVAL);
        g_assert_false(fatal);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/nbd/wire/request", test_request_roundtrip);
    g_test_add_func("/nbd/wire/replies", test_replies);
    g_test_add_func("/nbd/wire/errno", test_errno);
    g_test_add_func("/nbd/wire/check-request", test_check_request);
    g_test_add_func("/nbd/wire/names", test_names);
    g_test_add_func("/nbd/wire/extended", test_extended_roundtrip);
    g_test_add_func("/nbd/wire/check-extended", test_check_extended);
    return g_test_run();
}
