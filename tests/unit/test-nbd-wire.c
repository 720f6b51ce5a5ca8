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
    g_assert_cmpint(check(NBD_CMD_WRITE, 0, MiB, 1, rw, 0, 0, NULL), ==,
                    ENOSPC);
    g_assert_cmpint(check(NBD_CMD_WRITE_ZEROES, 0, UINT64_MAX - 1, 4, rw, 0,
                          0, NULL), ==, ENOSPC);
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
                    EPERM);
    g_assert_cmpint(check(NBD_CMD_TRIM, 0, 0, 512, ro, 0, 0, NULL), ==,
                    EPERM);
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
                    ENOTSUP);
    g_assert_cmpint(check(200, 0, 0, 0, rw, 0, 0, NULL), ==, ENOTSUP);
}

static void test_names(void)
{
    g_assert_cmpstr(nbd_cmd_name(NBD_CMD_BLOCK_STATUS), ==, "block status");
    g_assert_cmpstr(nbd_cmd_name(999), ==, "<unknown>");
    g_assert_cmpstr(nbd_opt_name(NBD_OPT_GO), ==, "go");
    g_assert_cmpstr(nbd_opt_name(0xffffffff), ==, "<unknown>");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/nbd/wire/request", test_request_roundtrip);
    g_test_add_func("/nbd/wire/replies", test_replies);
    g_test_add_func("/nbd/wire/errno", test_errno);
    g_test_add_func("/nbd/wire/check-request", test_check_request);
    g_test_add_func("/nbd/wire/names", test_names);
    return g_test_run();
}
