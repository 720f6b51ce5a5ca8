/*
 * End-to-end tests of the qcow2 driver through the block core: creation in
 * blockdev-create form, read/write/compressed/zero/discard round trips,
 * refcount table growth, qemu-img-check style checking and leak repair, and
 * open failures on damaged headers.
 */
#include "block/block-int.h"
#include "block/block-backend.h"
#include "block/check.h"
#include "../../block/drivers/qcow2/qcow2.h"

extern BlockDriver bdrv_qcow2;
static char *tmpdir;

typedef struct {
    json_t *opts;
    int ret;
    Error *err;
} CreateCo;

static void create_co(void *opaque)
{
    CreateCo *c = opaque;
    c->ret = bdrv_qcow2.bdrv_co_create(c->opts, &c->err);
}

/* Create PATH as a qcow2 image of the given size via blockdev-create. */
static void create_image(const char *path, int64_t size, const char *extra)
{
    BlockDriverState *file;
    CreateCo c = { 0 };
    FILE *f = fopen(path, "w");

    g_assert_nonnull(f);
    fclose(f);
    file = bdrv_open(NULL, NULL, json_pack("{s:s, s:s}", "driver", "file",
                                           "filename", path),
                     BDRV_O_RDWR | BDRV_O_RESIZE, &error_abort);
    c.opts = json_pack("{s:s, s:s, s:I}", "driver", "qcow2", "file",
                       bdrv_get_node_name(file), "size", (json_int_t)size);
    if (extra) {
        json_t *e = json_loads(extra, 0, NULL);
        g_assert_nonnull(e);
        json_object_update(c.opts, e);
        json_decref(e);
    }
    coroutine_run_sync(create_co, &c);
    if (c.err) {
        g_printerr("%s\n", error_get_pretty(c.err));
    }
    g_assert_cmpint(c.ret, ==, 0);
    json_decref(c.opts);
    bdrv_unref(file);
}

static BlockBackend *open_image(const char *path, int flags, Error **errp)
{
    json_t *o = json_pack("{s:s, s:{s:s, s:s}}", "driver", "qcow2", "file",
                          "driver", "file", "filename", path);
    return blk_new_open(NULL, NULL, o, flags, errp);
}

typedef struct {
    BlockDriverState *bs;
    BdrvCheckResult res;
    int fix;
    int ret;
} CheckCo;

static void check_co(void *opaque)
{
    CheckCo *c = opaque;
    c->ret = c->bs->drv->bdrv_co_check(c->bs, &c->res, c->fix);
}

static BdrvCheckResult check_image(BlockBackend *blk, int fix)
{
    CheckCo c = { .bs = blk_bs(blk), .fix = fix };
    coroutine_run_sync(check_co, &c);
    g_assert_cmpint(c.ret, ==, 0);
    return c.res;
}

static void fill(uint8_t *buf, size_t len, int seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (i * 31 + seed) & 0xff;
    }
}

static void test_create_rw(void)
{
    g_autofree char *path = g_build_filename(tmpdir, "rw.qcow2", NULL);
    g_autofree uint8_t *buf = g_malloc(256 * KiB);
    g_autofree uint8_t *rd = g_malloc(256 * KiB);
    BlockBackend *blk;
    BdrvCheckResult r;

    create_image(path, 16 * MiB, NULL);
    blk = open_image(path, BDRV_O_RDWR | BDRV_O_UNMAP, &error_abort);
    g_assert_cmpint(blk_getlength(blk), ==, 16 * MiB);

    /* Unaligned write across clusters: COW keeps the neighbours zero. */
    fill(buf, 100000, 1);
    g_assert_cmpint(blk_pwrite(blk, 70000, 100000, buf, 0), >=, 0);
    g_assert_cmpint(blk_pread(blk, 0, 256 * KiB, rd, 0), >=, 0);
    g_assert_true(buffer_is_zero(rd, 70000));
    g_assert_cmpmem(rd + 70000, 100000, buf, 100000);
    g_assert_true(buffer_is_zero(rd + 170000, 256 * KiB - 170000));

    /* Compressed cluster, then overwritten partially (COW from it). */
    fill(buf, 64 * KiB, 0);
    memset(buf, 0x5a, 32 * KiB);
    g_assert_cmpint(blk_pwrite_compressed(blk, 1 * MiB, 64 * KiB, buf), >=,
                    0);
    g_assert_cmpint(blk_pread(blk, 1 * MiB, 64 * KiB, rd, 0), >=, 0);
    g_assert_cmpmem(rd, 64 * KiB, buf, 64 * KiB);
    memset(buf + 100, 0x11, 10);
    g_assert_cmpint(blk_pwrite(blk, 1 * MiB + 100, 10, buf + 100, 0), >=, 0);
    g_assert_cmpint(blk_pread(blk, 1 * MiB, 64 * KiB, rd, 0), >=, 0);
    g_assert_cmpmem(rd, 64 * KiB, buf, 64 * KiB);

    /* Zero and discard. */
    g_assert_cmpint(blk_pwrite_zeroes(blk, 64 * KiB, 64 * KiB,
                                      BDRV_REQ_MAY_UNMAP), >=, 0);
    g_assert_cmpint(blk_pread(blk, 64 * KiB, 64 * KiB, rd, 0), >=, 0);
    g_assert_true(buffer_is_zero(rd, 64 * KiB));
    g_assert_cmpint(blk_pdiscard(blk, 1 * MiB, 64 * KiB), >=, 0);
    g_assert_cmpint(blk_pread(blk, 1 * MiB, 64 * KiB, rd, 0), >=, 0);
    g_assert_true(buffer_is_zero(rd, 64 * KiB));

    r = check_image(blk, 0);
    g_assert_cmpint(r.corruptions, ==, 0);
    g_assert_cmpint(r.leaks, ==, 0);
    g_assert_cmpint(r.check_errors, ==, 0);
    g_assert_cmpuint(r.bfi.total_clusters, ==, 256);
    blk_unref(blk);

    /* Data survives close/open. */
    blk = open_image(path, 0, &error_abort);
    fill(buf, 100000, 1);
    /* [64 KiB, 128 KiB) was zeroed since; the rest of the write stays. */
    g_assert_cmpint(blk_pread(blk, 70000, 100000, rd, 0), >=, 0);
    g_assert_true(buffer_is_zero(rd, 131072 - 70000));
    g_assert_cmpmem(rd + 61072, 38928, buf + 61072, 38928);
    blk_unref(blk);
}

static void test_leak_repair(void)
{
    g_autofree char *path = g_build_filename(tmpdir, "leak.qcow2", NULL);
    BlockBackend *blk;
    BdrvCheckResult r;
    int64_t off;

    create_image(path, 4 * MiB, "{\"refcount-bits\": 8}");
    blk = open_image(path, BDRV_O_RDWR, &error_abort);
    /* Allocate two clusters nobody references. */
    off = qcow2_alloc_clusters(blk_bs(blk), 2 * 65536);
    g_assert_cmpint(off, ==, 4 * 65536);
    /* A data cluster after them, so they lie inside the file. */
    {
        g_autofree uint8_t *b = g_malloc0(65536);
        g_assert_cmpint(blk_pwrite(blk, 0, 65536, b, 0), >=, 0);
    }
    r = check_image(blk, 0);
    g_assert_cmpint(r.leaks, ==, 2);
    g_assert_cmpint(r.corruptions, ==, 0);
    r = check_image(blk, BDRV_FIX_LEAKS);
    g_assert_cmpint(r.leaks_fixed, ==, 2);
    g_assert_cmpint(r.leaks, ==, 0);
    r = check_image(blk, 0);
    g_assert_cmpint(r.leaks, ==, 0);
    g_assert_cmpint(r.image_end_offset, ==, 8 * 65536);
    blk_unref(blk);
}

static void test_refcount_growth(void)
{
    g_autofree char *path = g_build_filename(tmpdir, "grow.qcow2", NULL);
    g_autofree uint8_t *buf = g_malloc(1 * MiB);
    g_autofree uint8_t *rd = g_malloc(1 * MiB);
    BlockBackend *blk;
    BDRVQcow2State *s;
    BdrvCheckResult r;
    uint32_t old_clusters;

    /* 512-byte clusters, 64-bit refcounts: one block covers 64 clusters,
     * the first table 64 blocks (2 MiB). */
    create_image(path, 64 * MiB,
                 "{\"cluster-size\": 512, \"refcount-bits\": 64}");
    blk = open_image(path, BDRV_O_RDWR, &error_abort);
    s = blk_bs(blk)->opaque;
    old_clusters = s->hi.h.refcount_table_clusters;
    for (int i = 0; i < 4; i++) {
        fill(buf, 1 * MiB, i);
        g_assert_cmpint(blk_pwrite(blk, (int64_t)i * 8 * MiB, 1 * MiB, buf, 0),
                        >=, 0);
    }
    g_assert_cmpuint(s->hi.h.refcount_table_clusters, >, old_clusters);
    for (int i = 0; i < 4; i++) {
        fill(buf, 1 * MiB, i);
        g_assert_cmpint(blk_pread(blk, (int64_t)i * 8 * MiB, 1 * MiB, rd, 0),
                        >=, 0);
        g_assert_cmpmem(rd, 1 * MiB, buf, 1 * MiB);
    }
    r = check_image(blk, 0);
    g_assert_cmpint(r.leaks, ==, 0);
    g_assert_cmpint(r.corruptions, ==, 0);
    blk_unref(blk);
}

static void test_bad_header(void)
{
    g_autofree char *path = g_build_filename(tmpdir, "bad.qcow2", NULL);
    Error *err = NULL;
    BlockBackend *blk;
    FILE *f;
    uint32_t v = GUINT32_TO_BE(7);

    create_image(path, 1 * MiB, NULL);
    f = fopen(path, "r+b");
    g_assert_nonnull(f);
    fseek(f, 96, SEEK_SET);
    g_assert_cmpint(fwrite(&v, 4, 1, f), ==, 1);
    fclose(f);
    blk = open_image(path, 0, &err);
    g_assert_null(blk);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(error_get_pretty(err),
                            "Reference count entry width too large"));
    error_free(err);
}

static void test_create_errors(void)
{
    g_autofree char *path = g_build_filename(tmpdir, "cerr.qcow2", NULL);
    BlockDriverState *file;
    CreateCo c = { 0 };
    FILE *f = fopen(path, "w");

    fclose(f);
    file = bdrv_open(NULL, NULL, json_pack("{s:s, s:s}", "driver", "file",
                                           "filename", path),
                     BDRV_O_RDWR | BDRV_O_RESIZE, &error_abort);
    c.opts = json_pack("{s:s, s:s, s:I, s:s, s:b}", "driver", "qcow2", "file",
                       bdrv_get_node_name(file), "size", (json_int_t)MiB,
                       "version", "v2", "lazy-refcounts", 1);
    coroutine_run_sync(create_co, &c);
    g_assert_cmpint(c.ret, <, 0);
    g_assert_cmpstr(error_get_pretty(c.err), ==, "Lazy refcounts only "
                    "supported with compatibility level 1.1 and above (use "
                    "version=v3 or greater)");
    error_free(c.err);
    json_decref(c.opts);
    bdrv_unref(file);
}

static void test_cache_clean_interval(void)
{
    g_autofree char *path = g_build_filename(tmpdir, "clean.qcow2", NULL);
    uint8_t buf[512];
    BlockBackend *blk;
    BDRVQcow2State *s;
    json_t *o;
    int64_t deadline;

    create_image(path, 4 * MiB, NULL);
    blk = open_image(path, BDRV_O_RDWR, &error_abort);
    memset(buf, 1, sizeof(buf));
    g_assert_cmpint(blk_pwrite(blk, 0, 512, buf, 0), >=, 0);
    blk_unref(blk);

    o = json_pack("{s:s, s:s, s:{s:s, s:s}}", "driver", "qcow2",
                  "cache-clean-interval", "1", "file", "driver", "file",
                  "filename", path);
    blk = blk_new_open(NULL, NULL, o, 0, &error_abort);
    s = blk_bs(blk)->opaque;
    g_assert_cmpint(blk_pread(blk, 0, 512, buf, 0), >=, 0);
    g_assert_cmpint(buf[0], ==, 1);
    g_assert_cmpint(qcow2_cache_num_loaded(s->l2_table_cache), ==, 1);
    /* Unused for two full intervals: dropped.  Bounded by 5 s. */
    deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    while (qcow2_cache_num_loaded(s->l2_table_cache) &&
           g_get_monotonic_time() < deadline) {
        aio_poll(qb_get_aio_context(), true);
    }
    g_assert_cmpint(qcow2_cache_num_loaded(s->l2_table_cache), ==, 0);
    blk_unref(blk);
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    bdrv_register_builtin_drivers();
    tmpdir = g_dir_make_tmp("qblock-test-qcow2-XXXXXX", NULL);
    g_assert_nonnull(tmpdir);
    g_test_add_func("/qcow2-io/create-rw", test_create_rw);
    g_test_add_func("/qcow2-io/leak-repair", test_leak_repair);
    g_test_add_func("/qcow2-io/refcount-growth", test_refcount_growth);
    g_test_add_func("/qcow2-io/bad-header", test_bad_header);
    g_test_add_func("/qcow2-io/create-errors", test_create_errors);
    g_test_add_func("/qcow2-io/cache-clean-interval",
                    test_cache_clean_interval);
    ret = g_test_run();
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) {
        ret = ret ? ret : 1;
    }
    return ret;
}
