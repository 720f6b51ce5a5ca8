/*
 * Unit tests for the blkdebug driver: error injection per I/O type and
 * event, once / sector / errno / state rules, set-state, the config file,
 * the "after" extension, align (RMW through the core), breakpoints, and
 * option errors with QEMU's texts.
 */
#include "block/block-backend.h"
#include "block/block-int.h"

static char *tmpdir;

/* blkdebug over null-co (read-zeroes) with the given inject-error rules. */
static BlockBackend *open_dbg(json_t *rules, const char *extra_key,
                              json_t *extra_val, Error **errp)
{
    json_t *opts = json_pack("{s:s, s:{s:s, s:s, s:s}}", "driver", "blkdebug",
                             "image", "driver", "null-co", "size", "1M",
                             "read-zeroes", "on");
    if (rules) {
        json_object_set_new(opts, "inject-error", rules);
    }
    if (extra_key) {
        json_object_set_new(opts, extra_key, extra_val);
    }
    return blk_new_open(NULL, NULL, opts, BDRV_O_RDWR, errp);
}

static void test_inject_read(void)
{
    BlockBackend *blk = open_dbg(json_pack("[{s:s, s:s}]", "event", "none",
                                           "iotype", "read"),
                                 NULL, NULL, &error_abort);
    uint8_t buf[512] = { 0 };

    g_assert_cmpint(blk_pread(blk, 0, 512, buf, 0), ==, -EIO);
    g_assert_cmpint(blk_pread(blk, 4096, 512, buf, 0), ==, -EIO);
    g_assert_cmpint(blk_pwrite(blk, 0, 512, buf, 0), ==, 0);
    g_assert_cmpint(blk_pdiscard(blk, 0, 512), ==, 0);
    blk_unref(blk);
}

static void test_default_iotypes(void)
{
    BlockBackend *blk = open_dbg(json_pack("[{s:s, s:i}]", "event", "none",
                                           "errno", 28),
                                 NULL, NULL, &error_abort);
    uint8_t buf[512] = { 0 };
    int64_t pnum;

    g_assert_cmpint(blk_pread(blk, 0, 512, buf, 0), ==, -ENOSPC);
    g_assert_cmpint(blk_pwrite(blk, 0, 512, buf, 0), ==, -ENOSPC);
    g_assert_cmpint(blk_pwrite_zeroes(blk, 0, 512, 0), ==, -ENOSPC);
    /* A failed write still counts as a write (QEMU bumps write_gen on
     * every write), so the flush reaches blkdebug and fails too. */
    g_assert_cmpint(blk_flush(blk), ==, -ENOSPC);
    /* Block status is not in the default set (as QEMU). */
    g_assert_cmpint(blk_block_status(blk, 0, 512, &pnum, NULL, NULL), >=, 0);
    blk_unref(blk);
}

static void test_once_and_sector(void)
{
    BlockBackend *blk = open_dbg(json_pack("[{s:s, s:s, s:s}]", "event",
                                           "none", "once", "on", "sector",
                                           "8"),
                                 NULL, NULL, &error_abort);
    uint8_t buf[1024] = { 0 };

    /* Requests not touching sector 8 (offset 4096) pass. */
    g_assert_cmpint(blk_pread(blk, 0, 512, buf, 0), ==, 0);
    g_assert_cmpint(blk_pread(blk, 4608, 512, buf, 0), ==, 0);
    g_assert_cmpint(blk_pread(blk, 3584, 1024, buf, 0), ==, -EIO);
    /* once: gone after the first hit. */
    g_assert_cmpint(blk_pread(blk, 3584, 1024, buf, 0), ==, 0);
    blk_unref(blk);
}

static void test_flush_error(void)
{
    BlockBackend *blk = open_dbg(json_pack("[{s:s, s:s}]", "event", "none",
                                           "iotype", "flush"),
                                 NULL, NULL, &error_abort);
    uint8_t buf[512] = { 0 };

    g_assert_cmpint(blk_pwrite(blk, 0, 512, buf, 0), ==, 0);
    g_assert_cmpint(blk_flush(blk), ==, -EIO);
    blk_unref(blk);
}

static void test_events_and_state(void)
{
    json_t *rules = json_pack("[{s:s, s:i}]", "event", "l2_load", "state", 2);
    json_t *states = json_pack("[{s:s, s:i}]", "event", "cluster_alloc",
                               "new_state", 2);
    BlockBackend *blk = open_dbg(rules, "set-state", states, &error_abort);
    BlockDriverState *bs = blk_bs(blk);
    uint8_t buf[512];

    /* l2_load in state 1: the rule (state 2) does not fire. */
    bdrv_debug_event(bs, BLKDBG_EV_L2_LOAD);
    g_assert_cmpint(blk_pread(blk, 0, 512, buf, 0), ==, 0);
    /* cluster_alloc moves to state 2; now l2_load activates the error. */
    bdrv_debug_event(bs, BLKDBG_EV_CLUSTER_ALLOC);
    g_assert_cmpint(blk_pread(blk, 0, 512, buf, 0), ==, 0);
    bdrv_debug_event(bs, BLKDBG_EV_L2_LOAD);
    g_assert_cmpint(blk_pread(blk, 0, 512, buf, 0), ==, -EIO);
    blk_unref(blk);
}

static void test_after_extension(void)
{
    BlockBackend *blk = open_dbg(json_pack("[{s:s, s:i, s:s}]", "event",
                                           "none", "after", 2, "iotype",
                                           "write"),
                                 NULL, NULL, &error_abort);
    uint8_t buf[512] = { 0 };

    g_assert_cmpint(blk_pwrite(blk, 0, 512, buf, 0), ==, 0);
    g_assert_cmpint(blk_pwrite(blk, 0, 512, buf, 0), ==, 0);
    g_assert_cmpint(blk_pwrite(blk, 0, 512, buf, 0), ==, -EIO);
    g_assert_cmpint(blk_pwrite(blk, 0, 512, buf, 0), ==, -EIO);
    blk_unref(blk);
}

static void test_config_file(void)
{
    g_autofree char *cfg = g_build_filename(tmpdir, "blkdebug.cfg", NULL);
    const char *text =
        "# comment\n"
        "[inject-error]\n"
        "event = \"none\"\n"
        "iotype = \"write\"\n"
        "errno = \"5\"\n"
        "\n"
        "[inject-error]\n"
        "event = \"none\"\n"
        "iotype = \"discard\"\n"
        "errno = \"95\"\n";
    BlockBackend *blk;
    uint8_t buf[512] = { 0 };

    g_assert_true(g_file_set_contents(cfg, text, -1, NULL));
    blk = open_dbg(NULL, "config", json_string(cfg), &error_abort);
    g_assert_cmpint(blk_pread(blk, 0, 512, buf, 0), ==, 0);
    g_assert_cmpint(blk_pwrite(blk, 0, 512, buf, 0), ==, -EIO);
    blk_unref(blk);
    unlink(cfg);
}

static void test_align(void)
{
    g_autofree char *path = g_build_filename(tmpdir, "align.img", NULL);
    g_autofree uint8_t *zero = g_malloc0(65536);
    json_t *opts;
    BlockBackend *blk;
    uint8_t buf[100], out[100];

    g_assert_true(g_file_set_contents(path, (char *)zero, 65536, NULL));
    opts = json_pack("{s:s, s:s, s:{s:s, s:s}}", "driver", "blkdebug",
                     "align", "4096", "image", "driver", "file",
                     "filename", path);
    blk = blk_new_open(NULL, NULL, opts, BDRV_O_RDWR, &error_abort);
    g_assert_cmpuint(blk_get_request_alignment(blk), ==, 4096);
    memset(buf, 0x3c, sizeof(buf));
    g_assert_cmpint(blk_pwrite(blk, 5000, 100, buf, 0), ==, 0);
    g_assert_cmpint(blk_pread(blk, 5000, 100, out, 0), ==, 0);
    g_assert_cmpmem(buf, 100, out, 100);
    g_assert_cmpint(blk_pread(blk, 4999, 1, out, 0), ==, 0);
    g_assert_cmpint(out[0], ==, 0);
    blk_unref(blk);
    unlink(path);
}

static void expect_error(json_t *rules, const char *key, json_t *val,
                         const char *text)
{
    Error *err = NULL;
    BlockBackend *blk = open_dbg(rules, key, val, &err);
    g_assert_null(blk);
    g_assert_nonnull(err);
    g_assert_cmpstr(error_get_pretty(err), ==, text);
    error_free(err);
}

static void test_option_errors(void)
{
    expect_error(json_pack("[{s:s}]", "event", "foo"), NULL, NULL,
                 "invalid parameter value: foo");
    expect_error(json_pack("[{s:s}]", "once", "on"), NULL, NULL,
                 "Missing event name for rule");
    expect_error(NULL, "align", json_string("3"),
                 "Cannot meet constraints with align 3");
}

typedef struct BreakArgs {
    BlockDriverState *bs;
    bool done;
} BreakArgs;

static void coroutine_fn raise_event(void *opaque)
{
    BreakArgs *a = opaque;
    bdrv_debug_event(a->bs, BLKDBG_EV_L2_LOAD);
    a->done = true;
}

static void test_breakpoint(void)
{
    BlockBackend *blk = open_dbg(NULL, NULL, NULL, &error_abort);
    BreakArgs a = { blk_bs(blk), false };
    int64_t deadline = qb_clock_ns_monotonic() + 10 * 1000000000LL;

    g_assert_cmpint(bdrv_debug_breakpoint(blk_bs(blk), "l2_load", "t1"), ==,
                    0);
    g_assert_cmpint(bdrv_debug_breakpoint(blk_bs(blk), "nope", "t2"), <, 0);
    aio_co_enter(qb_get_aio_context(), coroutine_create(raise_event, &a));
    g_assert_true(bdrv_debug_is_suspended(blk_bs(blk), "t1"));
    g_assert_false(a.done);
    g_assert_cmpint(bdrv_debug_resume(blk_bs(blk), "t1"), ==, 0);
    while (!a.done && qb_clock_ns_monotonic() < deadline) {
        aio_poll(qb_get_aio_context(), true);
    }
    g_assert_true(a.done);
    g_assert_false(bdrv_debug_is_suspended(blk_bs(blk), "t1"));
    g_assert_cmpint(bdrv_debug_resume(blk_bs(blk), "t1"), ==, -ENOENT);
    blk_unref(blk);
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    bdrv_register_builtin_drivers();
    tmpdir = g_dir_make_tmp("qblock-test-blkdebug-XXXXXX", NULL);
    g_test_add_func("/blkdebug/inject-read", test_inject_read);
    g_test_add_func("/blkdebug/default-iotypes", test_default_iotypes);
    g_test_add_func("/blkdebug/once-and-sector", test_once_and_sector);
    g_test_add_func("/blkdebug/flush-error", test_flush_error);
    g_test_add_func("/blkdebug/events-and-state", test_events_and_state);
    g_test_add_func("/blkdebug/after-extension", test_after_extension);
    g_test_add_func("/blkdebug/config-file", test_config_file);
    g_test_add_func("/blkdebug/align", test_align);
    g_test_add_func("/blkdebug/option-errors", test_option_errors);
    g_test_add_func("/blkdebug/breakpoint", test_breakpoint);
    ret = g_test_run();
    rmdir(tmpdir);
    return ret;
}
