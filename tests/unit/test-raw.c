/*
 * Unit tests for the raw format driver: pass-through, offset/size windows
 * (data lands at the right place in the file, nothing escapes the window),
 * the validation texts QEMU prints, truncate rules, and block status
 * passed through to the file.
 */
#include "block/block-backend.h"
#include "block/block-int.h"

static char *tmpdir;

static char *make_file(const char *name, int64_t size, int fill)
{
    char *path = g_build_filename(tmpdir, name, NULL);
    g_autofree uint8_t *buf = g_malloc(size);
    memset(buf, fill, size);
    g_assert_true(g_file_set_contents(path, (char *)buf, size, NULL));
    return path;
}

static BlockBackend *open_window(const char *path, const char *offset,
                                 const char *size, int flags, Error **errp)
{
    json_t *opts = json_pack("{s:s, s:{s:s, s:s}}", "driver", "raw",
                             "file", "driver", "file", "filename", path);
    if (offset) {
        json_object_set_new(opts, "offset", json_string(offset));
    }
    if (size) {
        json_object_set_new(opts, "size", json_string(size));
    }
    return blk_new_open(NULL, NULL, opts, flags, errp);
}

static void test_passthrough(void)
{
    g_autofree char *path = make_file("p.img", 65536, 0x11);
    BlockBackend *blk = open_window(path, NULL, NULL, BDRV_O_RDWR,
                                    &error_abort);
    BlockDriverState *bs = blk_bs(blk);
    uint8_t buf[100];

    g_assert_cmpstr(bdrv_get_format_name(bs), ==, "raw");
    g_assert_cmpint(blk_getlength(blk), ==, 65536);
    g_assert_true(bs->file->role & BDRV_CHILD_FILTERED);
    g_assert_cmpint(blk_pread(blk, 10, 100, buf, 0), ==, 0);
    g_assert_cmpint(buf[0], ==, 0x11);
    blk_unref(blk);
}

static void test_window(void)
{
    g_autofree char *path = make_file("w.img", 65536, 0x11);
    BlockBackend *blk = open_window(path, "4096", "8192", BDRV_O_RDWR,
                                    &error_abort);
    g_autofree char *contents = NULL;
    gsize len;
    uint8_t buf[512];

    g_assert_cmpint(blk_getlength(blk), ==, 8192);
    g_assert_true(blk_bs(blk)->file->role & BDRV_CHILD_DATA);
    memset(buf, 0x77, sizeof(buf));
    g_assert_cmpint(blk_pwrite(blk, 0, 512, buf, 0), ==, 0);
    g_assert_cmpint(blk_pwrite(blk, 8192 - 512, 512, buf, 0), ==, 0);
    /* Past the window: refused by the device. */
    g_assert_cmpint(blk_pwrite(blk, 8192, 512, buf, 0), ==, -EIO);
    g_assert_cmpint(blk_pread(blk, 8000, 512, buf, 0), ==, -EIO);
    g_assert_cmpint(blk_flush(blk), ==, 0);
    blk_unref(blk);

    g_assert_true(g_file_get_contents(path, &contents, &len, NULL));
    g_assert_cmpint(len, ==, 65536);
    g_assert_cmpint((uint8_t)contents[4095], ==, 0x11);
    g_assert_cmpint((uint8_t)contents[4096], ==, 0x77);
    g_assert_cmpint((uint8_t)contents[4096 + 511], ==, 0x77);
    g_assert_cmpint((uint8_t)contents[4096 + 512], ==, 0x11);
    g_assert_cmpint((uint8_t)contents[4096 + 8191], ==, 0x77);
    g_assert_cmpint((uint8_t)contents[4096 + 8192], ==, 0x11);

    /* Offset alone: the window runs to the end of the file. */
    blk = open_window(path, "60k", NULL, 0, &error_abort);
    g_assert_cmpint(blk_getlength(blk), ==, 4096);
    blk_unref(blk);
}

static void expect_open_error(const char *path, const char *offset,
                              const char *size, const char *text)
{
    Error *err = NULL;
    BlockBackend *blk = open_window(path, offset, size, 0, &err);
    g_assert_null(blk);
    g_assert_nonnull(err);
    g_assert_cmpstr(error_get_pretty(err), ==, text);
    error_free(err);
}

static void test_errors(void)
{
    g_autofree char *path = make_file("e.img", 1 * MiB, 0);

    expect_open_error(path, "2M", NULL, "Offset (2097152) cannot be greater "
                      "than size of the containing file (1048576)");
    expect_open_error(path, "512k", "1M", "The sum of offset (524288) and "
                      "size (1048576) has to be smaller or equal to the  "
                      "actual size of the containing file (1048576)");
    expect_open_error(path, NULL, "1000",
                      "Specified size is not multiple of 512");
}

static void test_truncate(void)
{
    g_autofree char *path = make_file("t.img", 65536, 0);
    BlockBackend *blk = open_window(path, "0", "4096",
                                    BDRV_O_RDWR | BDRV_O_RESIZE,
                                    &error_abort);
    Error *err = NULL;

    g_assert_cmpint(blk_truncate(blk, 8192, false, PREALLOC_MODE_OFF, 0,
                                 &err), ==, -ENOTSUP);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Cannot resize fixed-size raw disks");
    error_free(err);
    blk_unref(blk);

    blk = open_window(path, NULL, NULL, BDRV_O_RDWR | BDRV_O_RESIZE,
                      &error_abort);
    g_assert_cmpint(blk_truncate(blk, 131072, false, PREALLOC_MODE_OFF, 0,
                                 &error_abort), ==, 0);
    g_assert_cmpint(blk_getlength(blk), ==, 131072);
    blk_unref(blk);
}

static void test_block_status(void)
{
    g_autofree char *path = make_file("s.img", 65536, 0x22);
    BlockBackend *blk = open_window(path, "4096", NULL, 0, &error_abort);
    int64_t pnum, map;
    BlockDriverState *file;
    int ret;

    ret = blk_block_status(blk, 0, 8192, &pnum, &map, &file);
    g_assert_cmpint(ret, >=, 0);
    g_assert_true(ret & BDRV_BLOCK_ALLOCATED);
    g_assert_true(ret & BDRV_BLOCK_OFFSET_VALID);
    g_assert_false(ret & BDRV_BLOCK_RAW);
    g_assert_cmpint(map, ==, 4096);
    g_assert_true(file == blk_bs(blk)->file->bs);
    blk_unref(blk);
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    bdrv_register_builtin_drivers();
    tmpdir = g_dir_make_tmp("qblock-test-raw-XXXXXX", NULL);
    g_test_add_func("/raw/passthrough", test_passthrough);
    g_test_add_func("/raw/window", test_window);
    g_test_add_func("/raw/errors", test_errors);
    g_test_add_func("/raw/truncate", test_truncate);
    g_test_add_func("/raw/block-status", test_block_status);
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
