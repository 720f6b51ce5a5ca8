/*
 * Unit tests of qcow2 persistent bitmaps (block/drivers/qcow2/bitmap.c):
 * directory parsing and validation from hand-built buffers (QEMU's exact
 * error texts, no crash on random garbage), table entry validation, and
 * store/load round trips through real images (bits, flags, in_use, the
 * stale-extension case, removal of the last bitmap).
 */
#include "block/block-int.h"
#include "block/block-backend.h"
#include "block/dirty-bitmap.h"
#include "../../block/drivers/qcow2/bitmap.h"

extern BlockDriver bdrv_qcow2;
static char *tmpdir;

/* Append one directory entry to a GByteArray. */
static void put_entry(GByteArray *a, uint64_t toff, uint32_t tsize,
                      uint32_t flags, uint8_t type, uint8_t gbits,
                      const char *name, uint32_t extra)
{
    uint8_t h[24];
    size_t nl = strlen(name);
    uint64_t v64 = GUINT64_TO_BE(toff);
    uint32_t v32;
    uint16_t v16 = GUINT16_TO_BE(nl);
    static const uint8_t zero[8];

    memcpy(h, &v64, 8);
    v32 = GUINT32_TO_BE(tsize);
    memcpy(h + 8, &v32, 4);
    v32 = GUINT32_TO_BE(flags);
    memcpy(h + 12, &v32, 4);
    h[16] = type;
    h[17] = gbits;
    memcpy(h + 18, &v16, 2);
    v32 = GUINT32_TO_BE(extra);
    memcpy(h + 20, &v32, 4);
    g_byte_array_append(a, h, 24);
    g_byte_array_append(a, (const uint8_t *)name, nl);
    g_byte_array_append(a, zero, QB_ALIGN_UP(24 + nl, 8) - 24 - nl);
}

static void expect_err(GByteArray *a, uint32_t nb, const char *text)
{
    Error *err = NULL;
    GPtrArray *l = qcow2_bitmap_dir_parse(a->data, a->len, nb, 16,
                                          4 * MiB, &err);
    g_assert_null(l);
    g_assert_nonnull(err);
    g_assert_cmpstr(error_get_pretty(err), ==, text);
    error_free(err);
}

static void test_dir_parse(void)
{
    g_autoptr(GByteArray) a = g_byte_array_new();
    g_autoptr(GPtrArray) l = NULL;
    Qcow2BitmapEntry *e;
    Error *err = NULL;
    uint64_t size;
    g_autofree uint8_t *built = NULL;

    put_entry(a, 0xc0000, 1, QCOW2_BME_FLAG_AUTO, 1, 16, "bm0", 0);
    put_entry(a, 0xd0000, 1, QCOW2_BME_FLAG_IN_USE, 1, 9, "second", 0);
    l = qcow2_bitmap_dir_parse(a->data, a->len, 2, 16, 4 * MiB, &err);
    g_assert_null(err);
    g_assert_cmpuint(l->len, ==, 2);
    e = l->pdata[0];
    g_assert_cmpstr(e->name, ==, "bm0");
    g_assert_cmphex(e->table_offset, ==, 0xc0000);
    g_assert_cmpuint(e->granularity_bits, ==, 16);
    g_assert_cmpuint(e->flags, ==, QCOW2_BME_FLAG_AUTO);
    e = l->pdata[1];
    g_assert_cmpstr(e->name, ==, "second");
    g_assert_cmpuint(e->flags, ==, QCOW2_BME_FLAG_IN_USE);
    /* The first entry is byte-identical to what QEMU writes (§2.1). */
    static const uint8_t qemu_bm0[32] = {
        0, 0, 0, 0, 0, 0x0c, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2,
        1, 0x10, 0, 3, 0, 0, 0, 0, 'b', 'm', '0', 0, 0, 0, 0, 0 };
    g_assert_cmpmem(a->data, 32, qemu_bm0, 32);
    built = qcow2_bitmap_dir_build(l, &size);
    g_assert_cmpmem(built, size, a->data, a->len);

    expect_err(a, 1, "More bitmaps found than specified in header "
               "extension");
    expect_err(a, 3, "Less bitmaps found than specified in header "
               "extension");
    g_byte_array_set_size(a, a->len - 4);
    expect_err(a, 2, "Broken bitmap directory");
    g_byte_array_set_size(a, 0);
    put_entry(a, 0xc0000, 1, 0, 1, 16, "x", 4);
    expect_err(a, 1, "Bitmap extra data is not supported");
}

static void test_dir_constraints(void)
{
    static const struct {
        uint64_t toff;
        uint32_t tsize, flags;
        uint8_t type, gbits;
    } bad[] = {
        { 0xc0000, 1, 0, 1, 8 },          /* granularity under 512 */
        { 0xc0000, 1, 0, 1, 32 },         /* granularity over 2 GiB */
        { 0xc0000, 1, 4, 1, 16 },         /* extra_data_compatible */
        { 0xc0000, 1, 1u << 31, 1, 16 },  /* reserved flag */
        { 0xc0000, 1, 0, 2, 16 },         /* type */
        { 0, 1, 0, 1, 16 },               /* no table */
        { 0xc0200, 1, 0, 1, 16 },         /* unaligned table */
        { 0xc0000, 0, 0, 1, 16 },         /* empty table */
        { 0xc0000, 0x8000001, 0, 1, 16 }, /* table too big */
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GByteArray) a = g_byte_array_new();
        put_entry(a, bad[i].toff, bad[i].tsize, bad[i].flags, bad[i].type,
                  bad[i].gbits, "bm0", 0);
        expect_err(a, 1, "Bitmap 'bm0' doesn't satisfy the constraints");
    }
    /* One 64 KiB cluster at 512 bytes granularity covers 256 MiB: too
     * small for 1 GiB, unless in_use (resized without a store). */
    g_autoptr(GByteArray) a = g_byte_array_new();
    Error *err = NULL;
    put_entry(a, 0xc0000, 1, 0, 1, 9, "bm0", 0);
    g_assert_null(qcow2_bitmap_dir_parse(a->data, a->len, 1, 16, GiB, &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Bitmap 'bm0' doesn't satisfy the constraints");
    error_free(err);
    g_byte_array_set_size(a, 0);
    put_entry(a, 0xc0000, 1, QCOW2_BME_FLAG_IN_USE, 1, 9, "bm0", 0);
    g_autoptr(GPtrArray) l = qcow2_bitmap_dir_parse(a->data, a->len, 1, 16,
                                                    GiB, NULL);
    g_assert_nonnull(l);
    /* Table entries (§3). */
    g_assert_true(qcow2_bitmap_table_entry_valid(0, 65536));
    g_assert_true(qcow2_bitmap_table_entry_valid(1, 65536));
    g_assert_true(qcow2_bitmap_table_entry_valid(0x30000, 65536));
    g_assert_false(qcow2_bitmap_table_entry_valid(0x30001, 65536));
    g_assert_false(qcow2_bitmap_table_entry_valid(0x30200, 65536));
    g_assert_false(qcow2_bitmap_table_entry_valid(2, 65536));
    g_assert_false(qcow2_bitmap_table_entry_valid(UINT64_C(1) << 60, 65536));
    /* Sizes (§4): 4 MiB at 64 KiB = 64 bits = 8 bytes = 1 cluster. */
    g_assert_cmpuint(qcow2_bitmap_table_size_for(4 * MiB, 65536, 65536), ==,
                     1);
    g_assert_cmpuint(qcow2_bitmap_table_size_for(TiB, 512, 65536), ==,
                     4096);
}

static void test_dir_garbage(void)
{
    GRand *r = g_rand_new_with_seed(12);
    uint8_t buf[512];

    for (int i = 0; i < 20000; i++) {
        size_t len = g_rand_int_range(r, 1, sizeof(buf));
        for (size_t k = 0; k < len; k++) {
            buf[k] = g_rand_int(r);
        }
        if (i & 1) {            /* plausible sizes, so the walk goes on */
            buf[18] = 0;
            buf[19] = g_rand_int_range(r, 0, 40);
            memset(buf + 20, 0, 4);
        }
        Error *err = NULL;
        GPtrArray *l = qcow2_bitmap_dir_parse(buf, len,
                                              g_rand_int_range(r, 1, 5), 16,
                                              4 * MiB, &err);
        g_assert_true((l == NULL) != (err == NULL));
        if (l) {
            g_ptr_array_unref(l);
        }
        error_free(err);
    }
    g_rand_free(r);
}

/* ---- round trips through an image ---- */

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

static char *create_image(const char *name, int64_t size)
{
    char *path = g_build_filename(tmpdir, name, NULL);
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
    coroutine_run_sync(create_co, &c);
    g_assert_cmpint(c.ret, ==, 0);
    json_decref(c.opts);
    bdrv_unref(file);
    return path;
}

static BlockBackend *open_image(const char *path, int flags)
{
    json_t *o = json_pack("{s:s, s:{s:s, s:s}}", "driver", "qcow2", "file",
                          "driver", "file", "filename", path);
    return blk_new_open(NULL, NULL, o, flags, &error_abort);
}

static uint32_t disk_flags(BlockDriverState *bs, const char *name)
{
    json_t *l = qcow2_get_bitmap_info_list(bs, &error_abort);
    uint32_t flags = UINT32_MAX;
    size_t i;
    json_t *v;

    g_assert_nonnull(l);
    json_array_foreach(l, i, v) {
        if (!strcmp(json_string_value(json_object_get(v, "name")), name)) {
            json_t *f;
            size_t k;
            flags = 0;
            json_array_foreach(json_object_get(v, "flags"), k, f) {
                flags |= !strcmp(json_string_value(f), "in-use") ?
                         QCOW2_BME_FLAG_IN_USE : QCOW2_BME_FLAG_AUTO;
            }
        }
    }
    json_decref(l);
    return flags;
}

static void test_round_trip(void)
{
    g_autofree char *path = create_image("rt.qcow2", 64 * MiB);
    g_autofree char *sha_a = NULL, *sha_b = NULL;
    BlockBackend *blk = open_image(path, BDRV_O_RDWR);
    BlockDriverState *bs = blk_bs(blk);
    BdrvDirtyBitmap *a, *b;
    Error *err = NULL;

    g_assert_false(qcow2_has_bitmaps(bs));
    g_assert_true(qcow2_co_can_store_new_dirty_bitmap(bs, "a", 65536, &err));
    a = bdrv_create_dirty_bitmap(bs, 65536, "a", &error_abort);
    b = bdrv_create_dirty_bitmap(bs, 512, "b", &error_abort);
    bdrv_dirty_bitmap_set_persistent(a, true);
    bdrv_dirty_bitmap_set_persistent(b, true);
    bdrv_set_dirty_bitmap(a, 0, 1);
    bdrv_set_dirty_bitmap(a, 33 * MiB, 5 * MiB);
    bdrv_set_dirty_bitmap(b, 1 * MiB, 4096);
    bdrv_set_dirty_bitmap(b, 64 * MiB - 512, 512);
    bdrv_disable_dirty_bitmap(b);
    sha_a = bdrv_dirty_bitmap_sha256(a, &error_abort);
    sha_b = bdrv_dirty_bitmap_sha256(b, &error_abort);
    g_assert_true(qcow2_has_bitmaps(bs));
    blk_unref(blk);

    /* Reopen rw: loaded with the same bits, in_use on disk at once. */
    blk = open_image(path, BDRV_O_RDWR);
    bs = blk_bs(blk);
    a = bdrv_find_dirty_bitmap(bs, "a");
    b = bdrv_find_dirty_bitmap(bs, "b");
    g_assert_nonnull(a);
    g_assert_nonnull(b);
    g_assert_true(bdrv_dirty_bitmap_enabled(a));
    g_assert_false(bdrv_dirty_bitmap_enabled(b));
    g_assert_false(bdrv_dirty_bitmap_readonly(a));
    g_autofree char *s1 = bdrv_dirty_bitmap_sha256(a, &error_abort);
    g_autofree char *s2 = bdrv_dirty_bitmap_sha256(b, &error_abort);
    g_assert_cmpstr(s1, ==, sha_a);
    g_assert_cmpstr(s2, ==, sha_b);
    g_assert_cmphex(disk_flags(bs, "a"), ==,
                    QCOW2_BME_FLAG_IN_USE | QCOW2_BME_FLAG_AUTO);
    g_assert_cmphex(disk_flags(bs, "b"), ==, QCOW2_BME_FLAG_IN_USE);
    /* Add-time constraints, with QEMU's prefix. */
    g_assert_false(qcow2_co_can_store_new_dirty_bitmap(bs, "x", 256, &err));
    g_autofree char *want = g_strdup_printf(
        "Can't make bitmap 'x' persistent in '%s': Granularity is under "
        "minimum (512 bytes)", bs->node_name);
    g_assert_cmpstr(error_get_pretty(err), ==, want);
    error_free(err);
    err = NULL;
    /* Remove deletes from disk at once. */
    g_assert_cmpint(qcow2_co_remove_persistent_dirty_bitmap(bs, "b", &err),
                    ==, 0);
    g_assert_cmphex(disk_flags(bs, "b"), ==, UINT32_MAX);
    bdrv_release_dirty_bitmap(b);
    blk_unref(blk);

    /* Read-only open: readonly in RAM, disk flags untouched. */
    blk = open_image(path, 0);
    bs = blk_bs(blk);
    a = bdrv_find_dirty_bitmap(bs, "a");
    g_assert_nonnull(a);
    g_assert_true(bdrv_dirty_bitmap_readonly(a));
    g_assert_null(bdrv_find_dirty_bitmap(bs, "b"));
    g_assert_cmphex(disk_flags(bs, "a"), ==, QCOW2_BME_FLAG_AUTO);
    g_assert_false(qcow2_co_can_store_new_dirty_bitmap(bs, "new", 65536,
                                                       &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "read-only"));
    error_free(err);
    err = NULL;
    blk_unref(blk);

    /* Remove the last one: extension and autoclear bit 0 disappear. */
    blk = open_image(path, BDRV_O_RDWR);
    bs = blk_bs(blk);
    g_assert_cmpint(qcow2_co_remove_persistent_dirty_bitmap(bs, "a", &err),
                    ==, 0);
    BDRVQcow2State *s = bs->opaque;
    g_assert_false(s->hi.has_bitmaps_ext);
    g_assert_false(s->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS);
    bdrv_release_dirty_bitmap(bdrv_find_dirty_bitmap(bs, "a"));
    blk_unref(blk);
}

/* A writer that crashed leaves in_use: the bitmap loads inconsistent and
 * is not stored again (flags stay in_use across a clean close). */
static void test_in_use(void)
{
    g_autofree char *path = create_image("iu.qcow2", 4 * MiB);
    BlockBackend *blk = open_image(path, BDRV_O_RDWR);
    BdrvDirtyBitmap *bm = bdrv_create_dirty_bitmap(blk_bs(blk), 65536, "c",
                                                   &error_abort);
    bdrv_dirty_bitmap_set_persistent(bm, true);
    blk_unref(blk);

    /* Simulate the crash: set in_use in the directory by hand (a
     * read-only open leaves the directory where it is). */
    blk = open_image(path, 0);
    BlockDriverState *bs = blk_bs(blk);
    BDRVQcow2State *s = bs->opaque;
    uint64_t dir_off = s->hi.bitmap_dir_offset;
    blk_unref(blk);
    int fd = open(path, O_RDWR);
    uint32_t fl = GUINT32_TO_BE(QCOW2_BME_FLAG_IN_USE | QCOW2_BME_FLAG_AUTO);
    g_assert_cmpint(pwrite(fd, &fl, 4, dir_off + 12), ==, 4);
    close(fd);

    for (int round = 0; round < 2; round++) {
        blk = open_image(path, BDRV_O_RDWR);
        bs = blk_bs(blk);
        bm = bdrv_find_dirty_bitmap(bs, "c");
        g_assert_nonnull(bm);
        g_assert_true(bdrv_dirty_bitmap_inconsistent(bm));
        g_assert_cmphex(disk_flags(bs, "c"), ==,
                        QCOW2_BME_FLAG_IN_USE | QCOW2_BME_FLAG_AUTO);
        if (round == 1) {
            /* The qblock repair: all dirty, stored clean at close. */
            bdrv_dirty_bitmap_repair_inconsistent(bm);
        }
        blk_unref(blk);
    }
    blk = open_image(path, 0);
    bm = bdrv_find_dirty_bitmap(blk_bs(blk), "c");
    g_assert_false(bdrv_dirty_bitmap_inconsistent(bm));
    g_assert_cmpuint(bdrv_get_dirty_count(bm), ==, 4 * MiB);
    blk_unref(blk);
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    bdrv_register_builtin_drivers();
    tmpdir = g_dir_make_tmp("qblock-test-qcow2-bitmap-XXXXXX", NULL);
    g_assert_nonnull(tmpdir);
    g_test_add_func("/qcow2-bitmap/dir-parse", test_dir_parse);
    g_test_add_func("/qcow2-bitmap/dir-constraints", test_dir_constraints);
    g_test_add_func("/qcow2-bitmap/dir-garbage", test_dir_garbage);
    g_test_add_func("/qcow2-bitmap/round-trip", test_round_trip);
    g_test_add_func("/qcow2-bitmap/in-use", test_in_use);
    ret = g_test_run();
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) {
        ret = ret ? ret : 1;
    }
    return ret;
}
