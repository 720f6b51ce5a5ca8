/*
 * Unit tests for the null-co / null-aio drivers: size option, reads that
 * leave the buffer alone unless read-zeroes=on, block status, latency,
 * asynchronous completion of null-aio, and option errors.
 */
#include "block/block-backend.h"
#include "block/block-int.h"

static BlockBackend *open_null(const char *drv, const char *k1,
                               const char *v1, Error **errp)
{
    json_t *opts = json_pack("{s:s}", "driver", drv);
    if (k1) {
        json_object_set_new(opts, k1, json_string(v1));
    }
    return blk_new_open(NULL, NULL, opts, BDRV_O_RDWR, errp);
}

static void test_size(void)
{
    BlockBackend *blk = open_null("null-co", NULL, NULL, &error_abort);
    g_assert_cmpint(blk_getlength(blk), ==, 1 * GiB);
    g_assert_cmpstr(bdrv_get_format_name(blk_bs(blk)), ==, "null-co");
    blk_unref(blk);
    blk = open_null("null-co", "size", "64k", &error_abort);
    g_assert_cmpint(blk_getlength(blk), ==, 65536);
    blk_unref(blk);
}

static void test_read_contents(void)
{
    BlockBackend *blk = open_null("null-co", "size", "1M", &error_abort);
    uint8_t buf[512];

    /* Without read-zeroes the buffer is left as it was. */
    memset(buf, 0xab, sizeof(buf));
    g_assert_cmpint(blk_pread(blk, 0, 512, buf, 0), ==, 0);
    g_assert_cmpint(buf[0], ==, 0xab);
    g_assert_cmpint(buf[511], ==, 0xab);
    g_assert_cmpint(blk_pwrite(blk, 0, 512, buf, 0), ==, 0);
    blk_unref(blk);

    blk = open_null("null-co", "read-zeroes", "on", &error_abort);
    memset(buf, 0xab, sizeof(buf));
    g_assert_cmpint(blk_pread(blk, 4096, 512, buf, 0), ==, 0);
    g_assert_cmpint(buf[0], ==, 0);
    g_assert_cmpint(buf[511], ==, 0);
    blk_unref(blk);
}

static void test_block_status(void)
{
    BlockBackend *blk = open_null("null-co", "size", "1M", &error_abort);
    int64_t pnum, map;
    BlockDriverState *file;
    int ret;

    /* As qemu-io map: "1 MiB ... not allocated". */
    ret = blk_block_status(blk, 0, 1 * MiB, &pnum, &map, &file);
    g_assert_cmpint(ret, ==, BDRV_BLOCK_OFFSET_VALID | BDRV_BLOCK_EOF);
    g_assert_cmpint(pnum, ==, 1 * MiB);
    g_assert_true(file == blk_bs(blk));
    blk_unref(blk);

    blk = open_null("null-co", "read-zeroes", "on", &error_abort);
    ret = blk_block_status(blk, 4096, 8192, &pnum, &map, &file);
    g_assert_cmpint(ret, ==, BDRV_BLOCK_OFFSET_VALID | BDRV_BLOCK_ZERO |
                    BDRV_BLOCK_ALLOCATED);
    g_assert_cmpint(pnum, ==, 8192);
    g_assert_cmpint(map, ==, 4096);
    blk_unref(blk);
}

static void test_latency(void)
{
    BlockBackend *blk = open_null("null-co", "latency-ns", "30000000",
                                  &error_abort);
    uint8_t buf[512];
    int64_t t0 = qb_clock_ns_monotonic();

    g_assert_cmpint(blk_pread(blk, 0, 512, buf, 0), ==, 0);
    g_assert_cmpint(qb_clock_ns_monotonic() - t0, >=, 30000000);
    blk_unref(blk);
}

static void aio_cb(void *opaque, int ret)
{
    int *r = opaque;
    *r = ret;
}

static void test_null_aio(void)
{
    BlockBackend *blk = open_null("null-aio", "read-zeroes", "on",
                                  &error_abort);
    uint8_t buf[512];
    IOVector q;
    int r = 1;

    memset(buf, 0xab, sizeof(buf));
    qiov_init_buf(&q, buf, sizeof(buf));
    blk_aio_preadv(blk, 0, &q, 0, aio_cb, &r);
    g_assert_cmpint(r, ==, 1);
    blk_drain(blk);
    g_assert_cmpint(r, ==, 0);
    g_assert_cmpint(buf[100], ==, 0);
    blk_unref(blk);
}

static void test_errors(void)
{
    Error *err = NULL;
    BlockBackend *blk = open_null("null-co", "latency-ns", "-1", &err);

    g_assert_null(blk);
    g_assert_cmpstr(error_get_pretty(err), ==, "latency-ns is invalid");
    error_free(err);
    err = NULL;
    blk = open_null("null-co", "bogus", "1", &err);
    g_assert_null(blk);
    g_assert_nonnull(err);
    error_free(err);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    bdrv_register_builtin_drivers();
    g_test_add_func("/null/size", test_size);
    g_test_add_func("/null/read-contents", test_read_contents);
    g_test_add_func("/null/block-status", test_block_status);
    g_test_add_func("/null/latency", test_latency);
    g_test_add_func("/null/null-aio", test_null_aio);
    g_test_add_func("/null/errors", test_errors);
    return g_test_run();
}
