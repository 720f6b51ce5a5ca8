/*
 * Unit tests for block/block-backend.c: synchronous and callback I/O,
 * the beyond-EOF refusal, permissions of the root edge and the parent
 * description used in conflict errors, drain, and the no-medium case.
 */
#include "block/block-backend.h"
#include "block/block-int.h"

static char *tmpdir;

static char *make_file(const char *name, int64_t size)
{
    char *path = g_build_filename(tmpdir, name, NULL);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, size), ==, 0);
    close(fd);
    return path;
}

static BlockBackend *open_raw(const char *path, int flags, Error **errp)
{
    json_t *opts = json_pack("{s:s, s:{s:s, s:s}}", "driver", "raw",
                             "file", "driver", "file", "filename", path);
    return blk_new_open(NULL, NULL, opts, flags, errp);
}

static BlockBackend *open_null(const char *extra, int flags)
{
    json_t *opts = json_pack("{s:s, s:s}", "driver", "null-co",
                             "size", "1M");
    if (extra) {
        json_object_set_new(opts, extra, json_string("on"));
    }
    return blk_new_open(NULL, NULL, opts, flags, &error_abort);
}

static void test_sync_rw(void)
{
    g_autofree char *path = make_file("rw.img", 1 * MiB);
    BlockBackend *blk = open_raw(path, BDRV_O_RDWR, &error_abort);
    uint8_t buf[1000], out[1000];

    g_assert_cmpint(blk_getlength(blk), ==, 1 * MiB);
    g_assert_true(blk_is_inserted(blk));
    g_assert_true(blk_is_writable(blk));
    memset(buf, 0x5a, sizeof(buf));
    g_assert_cmpint(blk_pwrite(blk, 333, sizeof(buf), buf, 0), ==, 0);
    g_assert_cmpint(blk_pread(blk, 333, sizeof(out), out, 0), ==, 0);
    g_assert_cmpmem(buf, sizeof(buf), out, sizeof(out));
    g_assert_cmpint(blk_pwrite_zeroes(blk, 400, 100, 0), ==, 0);
    g_assert_cmpint(blk_pread(blk, 333, sizeof(out), out, 0), ==, 0);
    g_assert_cmpint(out[66], ==, 0x5a);
    g_assert_cmpint(out[67], ==, 0);
    g_assert_cmpint(out[166], ==, 0);
    g_assert_cmpint(out[167], ==, 0x5a);
    g_assert_cmpint(blk_flush(blk), ==, 0);
    blk_unref(blk);
}

static void test_beyond_eof(void)
{
    g_autofree char *path = make_file("eof.img", 1 * MiB);
    BlockBackend *blk = open_raw(path, BDRV_O_RDWR, &error_abort);
    uint8_t buf[1024] = { 0 };

    /* As qemu-io: "read failed: Input/output error". */
    g_assert_cmpint(blk_pread(blk, 1 * MiB, 512, buf, 0), ==, -EIO);
    g_assert_cmpint(blk_pread(blk, 1 * MiB - 512, 1024, buf, 0), ==, -EIO);
    g_assert_cmpint(blk_pwrite(blk, 1 * MiB - 512, 1024, buf, 0), ==, -EIO);
    g_assert_cmpint(blk_pread(blk, -1, 1, buf, 0), ==, -EIO);
    g_assert_cmpint(blk_pdiscard(blk, 1 * MiB, 512), ==, -EIO);
    /* The last byte is fine. */
    g_assert_cmpint(blk_pread(blk, 1 * MiB - 1, 1, buf, 0), ==, 0);
    blk_unref(blk);
}

static void test_perms(void)
{
    g_autofree char *path = make_file("perm.img", 1 * MiB);
    BlockBackend *rw = open_raw(path, BDRV_O_RDWR, &error_abort);
    BlockBackend *ro = open_raw(path, 0, &error_abort);
    BlockBackend *excl;
    uint64_t perm, shared;
    uint8_t buf[512] = { 0 };
    Error *err = NULL;

    blk_get_perm(rw, &perm, &shared);
    g_assert_cmphex(perm, ==, BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE);
    g_assert_cmphex(shared, ==, BLK_PERM_ALL);
    blk_get_perm(ro, &perm, &shared);
    g_assert_cmphex(perm, ==, BLK_PERM_CONSISTENT_READ);
    /* A read-only device may not write. */
    g_assert_cmpint(blk_pwrite(ro, 0, 512, buf, 0), <, 0);

    /* A second user of rw's node that does not share WRITE conflicts with
     * rw; the text names rw as an unnamed block device. */
    excl = blk_new(NULL, BLK_PERM_CONSISTENT_READ, BLK_PERM_CONSISTENT_READ);
    g_assert_cmpint(blk_insert_bs(excl, blk_bs(rw), &err), <, 0);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(error_get_pretty(err), "an unnamed block device"));
    error_free(err);
    err = NULL;
    g_assert_true(blk_set_name(rw, "drive0", &error_abort));
    g_assert_true(blk_by_name("drive0") == rw);
    g_assert_cmpint(blk_insert_bs(excl, blk_bs(rw), &err), <, 0);
    g_assert_nonnull(strstr(error_get_pretty(err), "block device 'drive0'"));
    error_free(err);
    err = NULL;
    g_assert_false(blk_set_name(ro, "drive0", &err));
    g_assert_nonnull(err);
    error_free(err);
    g_assert_null(blk_bs(excl));
    /* Dropping WRITE from rw lets it in. */
    g_assert_cmpint(blk_set_perm(rw, BLK_PERM_CONSISTENT_READ, BLK_PERM_ALL,
                                 &error_abort), ==, 0);
    g_assert_cmpint(blk_insert_bs(excl, blk_bs(rw), &error_abort), ==, 0);
    blk_unref(excl);
    blk_unref(ro);
    blk_unref(rw);
    g_assert_null(blk_by_name("drive0"));
}

typedef struct AioResult {
    int ret;
    int calls;
} AioResult;

static void aio_cb(void *opaque, int ret)
{
    AioResult *r = opaque;
    r->ret = ret;
    r->calls++;
}

static void wait_calls(AioResult *r, int n)
{
    int64_t deadline = qb_clock_ns_monotonic() + 10 * 1000000000LL;
    while (r->calls < n && qb_clock_ns_monotonic() < deadline) {
        aio_poll(qb_get_aio_context(), true);
    }
    g_assert_cmpint(r->calls, ==, n);
}

static void test_aio(void)
{
    g_autofree char *path = make_file("aio.img", 1 * MiB);
    BlockBackend *blk = open_raw(path, BDRV_O_RDWR, &error_abort);
    uint8_t buf[4096], out[4096];
    IOVector q1, q2;
    AioResult w = { -1, 0 }, r = { -1, 0 }, f = { -1, 0 }, e = { 0, 0 };

    memset(buf, 0xc3, sizeof(buf));
    qiov_init_buf(&q1, buf, sizeof(buf));
    blk_aio_pwritev(blk, 8192, &q1, 0, aio_cb, &w);
    g_assert_cmpint(w.calls, ==, 0);    /* never before return */
    wait_calls(&w, 1);
    g_assert_cmpint(w.ret, ==, 0);

    qiov_init_buf(&q2, out, sizeof(out));
    blk_aio_preadv(blk, 8192, &q2, 0, aio_cb, &r);
    blk_aio_flush(blk, aio_cb, &f);
    g_assert_cmpint(r.calls + f.calls, ==, 0);
    blk_drain(blk);
    g_assert_cmpint(r.calls, ==, 1);
    g_assert_cmpint(f.calls, ==, 1);
    g_assert_cmpint(r.ret, ==, 0);
    g_assert_cmpmem(buf, sizeof(buf), out, sizeof(out));

    /* Errors are reported through the callback too. */
    blk_aio_preadv(blk, 2 * MiB, &q2, 0, aio_cb, &e);
    g_assert_cmpint(e.calls, ==, 0);
    wait_calls(&e, 1);
    g_assert_cmpint(e.ret, ==, -EIO);
    blk_unref(blk);
}

/* Direct completion (opt-in): a callback of a request that completes
 * later runs from inside the request's coroutine, one of a request that
 * fails at once still runs only after the submitting call returned. */
typedef struct DirectResult {
    int calls;
    bool in_co;
} DirectResult;

static void direct_cb(void *opaque, int ret)
{
    DirectResult *d = opaque;
    d->calls++;
    d->in_co = in_coroutine();
}

static void test_aio_direct(void)
{
    json_t *opts = json_pack("{s:s, s:s, s:s}", "driver", "null-aio",
                             "size", "1M", "latency-ns", "1000000");
    BlockBackend *blk = blk_new_open(NULL, NULL, opts, BDRV_O_RDWR,
                                     &error_abort);
    uint8_t buf[512] = { 0 };
    IOVector q;
    DirectResult late = { 0 }, failed = { 0 }, dflt = { 0 };
    int64_t deadline = qb_clock_ns_monotonic() + 10 * 1000000000LL;

    qiov_init_buf(&q, buf, sizeof(buf));
    /* Default: from the BH, outside any coroutine. */
    blk_aio_preadv(blk, 0, &q, 0, direct_cb, &dflt);
    blk_drain(blk);
    g_assert_cmpint(dflt.calls, ==, 1);
    g_assert_false(dflt.in_co);

    blk_set_aio_direct_completion(blk, true);
    blk_aio_preadv(blk, 0, &q, 0, direct_cb, &late);
    blk_aio_preadv(blk, 2 * MiB, &q, 0, direct_cb, &failed);
    g_assert_cmpint(late.calls + failed.calls, ==, 0);
    while ((late.calls < 1 || failed.calls < 1) &&
           qb_clock_ns_monotonic() < deadline) {
        aio_poll(qb_get_aio_context(), true);
    }
    g_assert_cmpint(late.calls, ==, 1);
    g_assert_true(late.in_co);
    g_assert_cmpint(failed.calls, ==, 1);
    g_assert_false(failed.in_co);
    blk_unref(blk);
}

static void test_drain_latency(void)
{
    json_t *opts = json_pack("{s:s, s:s, s:s}", "driver", "null-aio",
                             "size", "1M", "latency-ns", "20000000");
    BlockBackend *blk = blk_new_open(NULL, NULL, opts, BDRV_O_RDWR,
                                     &error_abort);
    uint8_t buf[512] = { 0 };
    IOVector q;
    AioResult r[4] = { { 0 } };
    int64_t t0 = qb_clock_ns_monotonic();

    qiov_init_buf(&q, buf, sizeof(buf));
    for (int i = 0; i < 4; i++) {
        blk_aio_pwritev(blk, i * 512, &q, 0, aio_cb, &r[i]);
    }
    blk_drain(blk);
    for (int i = 0; i < 4; i++) {
        g_assert_cmpint(r[i].calls, ==, 1);
        g_assert_cmpint(r[i].ret, ==, 0);
    }
    g_assert_cmpint(qb_clock_ns_monotonic() - t0, >=, 20000000);
    blk_unref(blk);
}

static void test_no_medium(void)
{
    BlockBackend *blk = blk_new(NULL, 0, BLK_PERM_ALL);
    uint8_t buf[512];

    g_assert_false(blk_is_inserted(blk));
    g_assert_null(blk_bs(blk));
    g_assert_cmpint(blk_pread(blk, 0, 512, buf, 0), ==, -ENOMEDIUM);
    g_assert_cmpint(blk_pwrite(blk, 0, 512, buf, 0), ==, -ENOMEDIUM);
    g_assert_cmpint(blk_flush(blk), ==, -ENOMEDIUM);
    g_assert_cmpint(blk_getlength(blk), ==, -ENOMEDIUM);
    blk_unref(blk);
}

static void test_write_cache_fua(void)
{
    BlockBackend *blk = open_null("read-zeroes", BDRV_O_RDWR);
    uint8_t buf[512] = { 0 };

    g_assert_true(blk_enable_write_cache(blk));
    blk_set_enable_write_cache(blk, false);
    g_assert_false(blk_enable_write_cache(blk));
    g_assert_cmpint(blk_pwrite(blk, 0, 512, buf, 0), ==, 0);
    g_assert_cmpuint(blk_get_request_alignment(blk), >=, 1);
    blk_unref(blk);
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    bdrv_register_builtin_drivers();
    tmpdir = g_dir_make_tmp("qblock-test-blk-XXXXXX", NULL);
    g_assert_nonnull(tmpdir);

    g_test_add_func("/block-backend/sync-rw", test_sync_rw);
    g_test_add_func("/block-backend/beyond-eof", test_beyond_eof);
    g_test_add_func("/block-backend/perms", test_perms);
    g_test_add_func("/block-backend/aio", test_aio);
    g_test_add_func("/block-backend/aio-direct", test_aio_direct);
    g_test_add_func("/block-backend/drain-latency", test_drain_latency);
    g_test_add_func("/block-backend/no-medium", test_no_medium);
    g_test_add_func("/block-backend/write-cache-fua", test_write_cache_fua);
    ret = g_test_run();

    {
        g_autoptr(GDir) d = g_dir_open(tmpdir, 0, NULL);
        const char *n;
        while (d && (n = g_dir_read_name(d))) {
            g_autofree char *p = g_build_filename(tmpdir, n, NULL);
            unlink(p);
        }
        rmdir(tmpdir);
    }
    return ret;
}
