/*
 * Unit tests for block/dirty-bitmap.c on a bare node (a fake driver that
 * only reports size and cluster size): naming rules, state checks and their
 * texts, marking, merge/clear backups, successors, resize and the query.
 */
#include "block/block-int.h"
#include "block/dirty-bitmap.h"

static int64_t fake_getlength(BlockDriverState *bs)
{
    return bs->total_sectors * BDRV_SECTOR_SIZE;
}

static int fake_cluster_size;
static int fake_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    bdi->cluster_size = fake_cluster_size;
    return 0;
}

static BlockDriver fake_drv = {
    .format_name = "fake",
    .bdrv_getlength = fake_getlength,
    .bdrv_get_info = fake_get_info,
};

static BlockDriverState *fake_node(int64_t size)
{
    BlockDriverState *bs = g_new0(BlockDriverState, 1);
    bs->drv = &fake_drv;
    bs->total_sectors = size / BDRV_SECTOR_SIZE;
    g_strlcpy(bs->node_name, "n0", sizeof(bs->node_name));
    return bs;
}

static void free_node(BlockDriverState *bs)
{
    bdrv_release_all_dirty_bitmaps(bs);
    g_free(bs);
}

static void expect_error(Error **errp, const char *text)
{
    g_assert_nonnull(*errp);
    g_assert_cmpstr(error_get_pretty(*errp), ==, text);
    error_free(*errp);
    *errp = NULL;
}

static void test_create_names(void)
{
    BlockDriverState *bs = fake_node(4 * MiB);
    Error *err = NULL;
    BdrvDirtyBitmap *a = bdrv_create_dirty_bitmap(bs, 65536, "a", &error_abort);
    BdrvDirtyBitmap *b = bdrv_create_dirty_bitmap(bs, 512, "b", &error_abort);

    g_assert_null(bdrv_create_dirty_bitmap(bs, 512, "a", &err));
    expect_error(&err, "Bitmap already exists: a");
    g_autofree char *longname = g_strnfill(1024, 'x');
    g_assert_null(bdrv_create_dirty_bitmap(bs, 512, longname, &err));
    g_autofree char *text = g_strdup_printf("Bitmap name too long: %s", longname);
    expect_error(&err, text);
    longname[1023] = 0;   /* 1023 characters are allowed */
    g_assert_nonnull(bdrv_create_dirty_bitmap(bs, 512, longname, &error_abort));

    g_assert_true(bdrv_find_dirty_bitmap(bs, "a") == a);
    g_assert_true(bdrv_find_dirty_bitmap(bs, "b") == b);
    g_assert_null(bdrv_find_dirty_bitmap(bs, "c"));
    /* Newest first. */
    g_assert_cmpstr(bdrv_dirty_bitmap_name(bdrv_dirty_bitmap_first(bs)), ==, longname);
    g_assert_true(bdrv_dirty_bitmap_next(bdrv_dirty_bitmap_first(bs)) == b);
    g_assert_true(bdrv_dirty_bitmap_next(b) == a);
    g_assert_null(bdrv_dirty_bitmap_next(a));
    g_assert_cmpint(bdrv_dirty_bitmap_size(a), ==, 4 * MiB);
    bdrv_release_dirty_bitmap(a);
    g_assert_null(bdrv_find_dirty_bitmap(bs, "a"));
    free_node(bs);
}

static void test_default_granularity(void)
{
    BlockDriverState *bs = fake_node(MiB);
    fake_cluster_size = 0;
    g_assert_cmpuint(bdrv_get_default_bitmap_granularity(bs), ==, 65536);
    fake_cluster_size = 512;
    g_assert_cmpuint(bdrv_get_default_bitmap_granularity(bs), ==, 4096);
    fake_cluster_size = 2 * MiB;
    g_assert_cmpuint(bdrv_get_default_bitmap_granularity(bs), ==, 65536);
    fake_cluster_size = 32768;
    g_assert_cmpuint(bdrv_get_default_bitmap_granularity(bs), ==, 32768);
    fake_cluster_size = 0;
    free_node(bs);
}

static void test_marking(void)
{
    BlockDriverState *bs = fake_node(4 * MiB);
    BdrvDirtyBitmap *en = bdrv_create_dirty_bitmap(bs, 65536, "en", &error_abort);
    BdrvDirtyBitmap *dis = bdrv_create_dirty_bitmap(bs, 65536, "dis", &error_abort);
    BdrvDirtyBitmap *fine = bdrv_create_dirty_bitmap(bs, 512, "fine", &error_abort);

    bdrv_disable_dirty_bitmap(dis);
    g_assert_false(bdrv_dirty_bitmap_recording(dis));
    bdrv_set_dirty(bs, 0, 64 * KiB + 512 + 1);
    /* A write dirties every granularity chunk it touches (qmp-compat §3). */
    g_assert_cmpuint(bdrv_get_dirty_count(en), ==, 2 * 65536);
    g_assert_cmpuint(bdrv_get_dirty_count(fine), ==, 66560);
    g_assert_cmpuint(bdrv_get_dirty_count(dis), ==, 0);
    g_assert_true(bdrv_dirty_bitmap_get(en, 65536));
    g_assert_false(bdrv_dirty_bitmap_get(en, 131072));
    g_assert_cmpint(bdrv_dirty_bitmap_next_dirty(en, 1, -1), ==, 1);
    g_assert_cmpint(bdrv_dirty_bitmap_next_clean(en, 0, -1), ==, 131072);
    int64_t s, c;
    g_assert_true(bdrv_dirty_bitmap_next_dirty_area(fine, 0, 4 * MiB, 0, &s, &c));
    g_assert_cmpint(s, ==, 0);
    g_assert_cmpint(c, ==, 66560);
    bdrv_enable_dirty_bitmap(dis);
    bdrv_set_dirty(bs, 3 * MiB, 1);
    g_assert_cmpuint(bdrv_get_dirty_count(dis), ==, 65536);
    free_node(bs);
}

static void test_checks(void)
{
    BlockDriverState *bs = fake_node(MiB);
    BdrvDirtyBitmap *bm = bdrv_create_dirty_bitmap(bs, 65536, "bm", &error_abort);
    Error *err = NULL;

    g_assert_cmpint(bdrv_dirty_bitmap_check(bm, BDRV_BITMAP_DEFAULT, &err), ==, 0);
    bdrv_dirty_bitmap_set_readonly(bm, true);
    g_assert_true(bdrv_has_readonly_bitmaps(bs));
    g_assert_cmpint(bdrv_dirty_bitmap_check(bm, BDRV_BITMAP_ALLOW_RO, &err), ==, 0);
    g_assert_cmpint(bdrv_dirty_bitmap_check(bm, BDRV_BITMAP_DEFAULT, &err), <, 0);
    expect_error(&err, "Bitmap 'bm' is readonly and cannot be modified");
    /* busy is checked before readonly */
    bdrv_dirty_bitmap_set_busy(bm, true);
    g_assert_cmpint(bdrv_dirty_bitmap_check(bm, BDRV_BITMAP_DEFAULT, &err), <, 0);
    expect_error(&err, "Bitmap 'bm' is currently in use by another operation"
                 " and cannot be used");
    bdrv_dirty_bitmap_set_busy(bm, false);
    bdrv_dirty_bitmap_set_readonly(bm, false);
    g_assert_false(bdrv_has_readonly_bitmaps(bs));

    bdrv_dirty_bitmap_set_inconsistent(bm);
    g_assert_false(bdrv_dirty_bitmap_recording(bm));
    bdrv_set_dirty(bs, 0, 4096);
    g_assert_cmpuint(bdrv_get_dirty_count(bm), ==, 0);
    g_assert_cmpint(bdrv_dirty_bitmap_check(bm, BDRV_BITMAP_ALLOW_RO, &err), <, 0);
    g_assert_cmpstr(error_get_hint(err), ==,
                    "Try block-dirty-bitmap-remove to delete this bitmap from disk\n");
    expect_error(&err, "Bitmap 'bm' is inconsistent and cannot be used");
    g_assert_cmpint(bdrv_dirty_bitmap_check(bm, BDRV_BITMAP_BUSY, NULL), ==, 0);

    /* qblock's repair: usable again, and everything is dirty. */
    bdrv_dirty_bitmap_repair_inconsistent(bm);
    g_assert_cmpint(bdrv_dirty_bitmap_check(bm, BDRV_BITMAP_DEFAULT, NULL), ==, 0);
    g_assert_cmpuint(bdrv_get_dirty_count(bm), ==, MiB);
    free_node(bs);
}

static void test_clear_merge_backup(void)
{
    BlockDriverState *bs = fake_node(4 * MiB);
    BdrvDirtyBitmap *a = bdrv_create_dirty_bitmap(bs, 65536, "a", &error_abort);
    BdrvDirtyBitmap *b = bdrv_create_dirty_bitmap(bs, 512, "b", &error_abort);
    HBitmap *backup = NULL;
    Error *err = NULL;

    bdrv_set_dirty_bitmap(a, 0, 1);
    bdrv_set_dirty_bitmap(b, 2 * MiB, 512);
    g_autofree char *a_sum = bdrv_dirty_bitmap_sha256(a, &error_abort);

    /* clear + abort restores the exact bits */
    bdrv_clear_dirty_bitmap(a, &backup);
    g_assert_cmpuint(bdrv_get_dirty_count(a), ==, 0);
    bdrv_restore_dirty_bitmap(a, backup);
    g_autofree char *a_sum2 = bdrv_dirty_bitmap_sha256(a, &error_abort);
    g_assert_cmpstr(a_sum, ==, a_sum2);

    /* merge across granularities, then abort */
    g_assert_true(bdrv_merge_dirty_bitmap(a, b, &backup, &error_abort));
    g_assert_cmpuint(bdrv_get_dirty_count(a), ==, 2 * 65536);
    bdrv_restore_dirty_bitmap(a, backup);
    g_assert_cmpuint(bdrv_get_dirty_count(a), ==, 65536);
    /* merge and commit */
    g_assert_true(bdrv_merge_dirty_bitmap(a, b, &backup, &error_abort));
    hbitmap_free(backup);
    g_assert_true(bdrv_dirty_bitmap_get(a, 2 * MiB + 65535));

    BlockDriverState *bs2 = fake_node(8 * MiB);
    BdrvDirtyBitmap *big = bdrv_create_dirty_bitmap(bs2, 65536, "big", &error_abort);
    g_assert_false(bdrv_merge_dirty_bitmap(a, big, NULL, &err));
    expect_error(&err, "Bitmaps are of different sizes (destination size is "
                 "4194304, source size is 8388608) and can't be merged");
    free_node(bs2);
    bdrv_clear_dirty_bitmap(a, NULL);
    g_assert_cmpuint(bdrv_get_dirty_count(a), ==, 0);
    free_node(bs);
}

static void test_successor(void)
{
    BlockDriverState *bs = fake_node(4 * MiB);
    BdrvDirtyBitmap *bm = bdrv_create_dirty_bitmap(bs, 65536, "bm", &error_abort);
    BdrvDirtyBitmap *other = bdrv_create_dirty_bitmap(bs, 65536, "other", &error_abort);
    Error *err = NULL;

    bdrv_dirty_bitmap_set_persistent(bm, true);
    bdrv_set_dirty(bs, 0, 1);
    g_assert_cmpint(bdrv_dirty_bitmap_create_successor(bm, &error_abort), ==, 0);
    g_assert_true(bdrv_dirty_bitmap_busy(bm));
    g_assert_true(bdrv_dirty_bitmap_recording(bm));
    g_assert_cmpint(bdrv_dirty_bitmap_create_successor(bm, &err), <, 0);
    g_assert_nonnull(err);
    error_free(err);
    err = NULL;
    /* While frozen, new writes go to the successor only. */
    bdrv_set_dirty(bs, MiB, 1);
    g_assert_cmpuint(bdrv_get_dirty_count(bm), ==, 65536);
    /* Failure: reclaim merges the new writes back. */
    BdrvDirtyBitmap *r = bdrv_reclaim_dirty_bitmap(bm, &error_abort);
    g_assert_true(r == bm);
    g_assert_cmpuint(bdrv_get_dirty_count(bm), ==, 2 * 65536);
    g_assert_false(bdrv_dirty_bitmap_busy(bm));
    g_assert_true(bdrv_dirty_bitmap_enabled(bm));
    g_assert_null(bdrv_reclaim_dirty_bitmap(bm, &err));
    error_free(err);
    err = NULL;

    /* Success: abdicate keeps only what was written during the job. */
    g_assert_cmpint(bdrv_dirty_bitmap_create_successor(bm, &error_abort), ==, 0);
    bdrv_set_dirty(bs, 3 * MiB, 1);
    BdrvDirtyBitmap *n = bdrv_dirty_bitmap_abdicate(bm, &error_abort);
    g_assert_true(bdrv_find_dirty_bitmap(bs, "bm") == n);
    g_assert_cmpuint(bdrv_get_dirty_count(n), ==, 65536);
    g_assert_true(bdrv_dirty_bitmap_get(n, 3 * MiB));
    g_assert_true(bdrv_dirty_bitmap_get_persistent(n));
    g_assert_true(bdrv_dirty_bitmap_enabled(n));
    /* list position preserved: other (newer) first, then bm's successor */
    g_assert_true(bdrv_dirty_bitmap_first(bs) == other);
    g_assert_true(bdrv_dirty_bitmap_next(other) == n);
    free_node(bs);
}

static void test_truncate(void)
{
    BlockDriverState *bs = fake_node(4 * MiB);
    BdrvDirtyBitmap *bm = bdrv_create_dirty_bitmap(bs, 65536, "bm", &error_abort);
    bdrv_set_dirty(bs, 3 * MiB, 1);
    bdrv_dirty_bitmap_truncate(bs, 2 * MiB);
    g_assert_cmpint(bdrv_dirty_bitmap_size(bm), ==, 2 * MiB);
    g_assert_cmpuint(bdrv_get_dirty_count(bm), ==, 0);
    bdrv_dirty_bitmap_truncate(bs, 8 * MiB);
    bdrv_set_dirty(bs, 7 * MiB, 1);
    g_assert_cmpuint(bdrv_get_dirty_count(bm), ==, 65536);
    free_node(bs);
}

static void test_query(void)
{
    BlockDriverState *bs = fake_node(4 * MiB);
    g_assert_null(bdrv_query_dirty_bitmaps(bs));
    BdrvDirtyBitmap *en = bdrv_create_dirty_bitmap(bs, 65536, "en", &error_abort);
    BdrvDirtyBitmap *inc = bdrv_create_dirty_bitmap(bs, 512, "inc", &error_abort);
    bdrv_dirty_bitmap_set_persistent(en, true);
    bdrv_dirty_bitmap_set_inconsistent(inc);
    bdrv_set_dirty(bs, 0, 3 * 65536);
    json_t *q = bdrv_query_dirty_bitmaps(bs);
    g_autofree char *s = json_dumps(q, JSON_SORT_KEYS | JSON_COMPACT);
    g_assert_cmpstr(s, ==,
        "[{\"busy\":false,\"count\":0,\"granularity\":512,\"inconsistent\":true,"
        "\"name\":\"inc\",\"persistent\":false,\"recording\":false},"
        "{\"busy\":false,\"count\":196608,\"granularity\":65536,"
        "\"name\":\"en\",\"persistent\":true,\"recording\":true}]");
    json_decref(q);
    free_node(bs);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/dirty-bitmap/create-names", test_create_names);
    g_test_add_func("/dirty-bitmap/default-granularity", test_default_granularity);
    g_test_add_func("/dirty-bitmap/marking", test_marking);
    g_test_add_func("/dirty-bitmap/checks", test_checks);
    g_test_add_func("/dirty-bitmap/clear-merge-backup", test_clear_merge_backup);
    g_test_add_func("/dirty-bitmap/successor", test_successor);
    g_test_add_func("/dirty-bitmap/truncate", test_truncate);
    g_test_add_func("/dirty-bitmap/query", test_query);
    return g_test_run();
}
