/*
 * Unit tests for block/dirty-bitmap.c on a bare node (a fake driver that
 * only reports size and cluster size): naming rules, state checks and their
 * texts, marking, merge/clear backups, successors, resize and the query,
 * lazy loading and its failures; and, on real qcow2 images, when bitmap
 * data may stay pending (lock state, inactivation).
 */
#include "block/block-int.h"
#include "block/block-backend.h"
#include "block/dirty-bitmap.h"
#include "block/reopen.h"

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

/*
 * Lazy loading (header invariant 5).  A fake loader hands out a fixed set
 * of "stored" bits and counts its calls; a lazily loaded bitmap must
 * behave exactly like an eager model that had those bits from the start,
 * whatever mix of marking (before or after the load), clearing, merging,
 * resizing, successors and reads is applied.
 */
typedef struct FakeStored {
    HBitmap *bits;      /* what the "image" holds */
    int loads;
    bool fail;
    bool freed;
} FakeStored;

static int fake_load(void *opaque, HBitmap *hb, Error **errp)
{
    FakeStored *f = opaque;

    f->loads++;
    if (f->fail) {
        error_setg(errp, "Could not read bitmap 'lazy' from image");
        return -EIO;
    }
    g_assert_true(hbitmap_is_empty(hb));
    g_assert_true(hbitmap_merge_into(hb, f->bits));
    return 0;
}

static void fake_free(void *opaque)
{
    ((FakeStored *)opaque)->freed = true;
}

static const BdrvDirtyBitmapLoader fake_loader = {
    .load = fake_load,
    .free = fake_free,
};

static void assert_same(BdrvDirtyBitmap *a, BdrvDirtyBitmap *b)
{
    g_autofree char *sa = bdrv_dirty_bitmap_sha256(a, &error_abort);
    g_autofree char *sb = bdrv_dirty_bitmap_sha256(b, &error_abort);

    g_assert_cmpuint(bdrv_get_dirty_count(a), ==, bdrv_get_dirty_count(b));
    g_assert_cmpstr(sa, ==, sb);
}

static void test_lazy_property(void)
{
    static const uint32_t grans[] = { 512, 4096, 65536 };
    GRand *r = g_rand_new_with_seed(20261122);

    for (int trial = 0; trial < 300; trial++) {
        int64_t size = (int64_t)g_rand_int_range(r, 1, 64) * 64 * KiB +
                       g_rand_int_range(r, 0, 8) * 512;
        uint32_t gran = grans[g_rand_int_range(r, 0, 3)];
        BlockDriverState *lbs = fake_node(size), *mbs = fake_node(size);
        BdrvDirtyBitmap *lazy = bdrv_create_dirty_bitmap(lbs, gran, "lazy",
                                                         &error_abort);
        BdrvDirtyBitmap *model = bdrv_create_dirty_bitmap(mbs, gran, "lazy",
                                                          &error_abort);
        FakeStored f = { .bits = hbitmap_alloc(size, gran) };
        int nops = g_rand_int_range(r, 0, 12);
        bool cleared_first = false, observed = false;

        /* Stored bits: random runs, sometimes everything. */
        if (g_rand_int_range(r, 0, 8) == 0) {
            hbitmap_set_all(f.bits);
        }
        for (int i = g_rand_int_range(r, 0, 6); i > 0; i--) {
            hbitmap_set(f.bits, g_rand_int_range(r, 0, size),
                        g_rand_int_range(r, 1, 256 * KiB));
        }
        hbitmap_merge_into(bdrv_dirty_bitmap_hbitmap(model), f.bits);
        bdrv_dirty_bitmap_set_loader(lazy, &fake_loader, &f);
        g_assert_true(bdrv_dirty_bitmap_pending_load(lazy, &fake_loader) == &f);

        for (int op = 0; op < nops; op++) {
            int64_t off = g_rand_int_range(r, 0, size);
            int64_t len = g_rand_int_range(r, 1, 512 * KiB);
            int kind = g_rand_int_range(r, 0, 12);
            HBitmap *lb = NULL, *mb = NULL;

            switch (kind) {
            case 0: case 1: case 2: case 3:   /* writes: never load */
                bdrv_set_dirty(lbs, off, len);
                bdrv_set_dirty(mbs, off, len);
                break;
            case 4:
                bdrv_set_dirty_bitmap(lazy, off, len);
                bdrv_set_dirty_bitmap(model, off, len);
                break;
            case 5:
                bdrv_reset_dirty_bitmap(lazy, off, len);
                bdrv_reset_dirty_bitmap(model, off, len);
                observed = true;
                break;
            case 6:                           /* clear: no load needed */
                if (!observed && f.loads == 0) {
                    cleared_first = true;
                }
                bdrv_clear_dirty_bitmap(lazy, NULL);
                bdrv_clear_dirty_bitmap(model, NULL);
                break;
            case 7:                           /* transaction clear, abort */
                bdrv_clear_dirty_bitmap(lazy, &lb);
                bdrv_clear_dirty_bitmap(model, &mb);
                assert_same(lazy, model);
                bdrv_restore_dirty_bitmap(lazy, lb);
                bdrv_restore_dirty_bitmap(model, mb);
                observed = true;
                break;
            case 8: {                         /* merge from another bitmap */
                BdrvDirtyBitmap *src = bdrv_create_dirty_bitmap(
                    lbs, 65536, NULL, &error_abort);
                bdrv_set_dirty_bitmap(src, off, len);
                g_assert_true(bdrv_merge_dirty_bitmap(lazy, src, &lb,
                                                      &error_abort));
                g_assert_true(bdrv_merge_dirty_bitmap(
                    model, src, NULL, &error_abort));
                hbitmap_free(lb);
                bdrv_release_dirty_bitmap(src);
                observed = true;
                break;
            }
            case 9: {                         /* resize both ways */
                int64_t ns = size + (g_rand_boolean(r) ? 1 : -1) *
                             g_rand_int_range(r, 0, 4) * 64 * KiB;
                if (ns <= 0) {
                    break;
                }
                lbs->total_sectors = mbs->total_sectors = ns / 512;
                bdrv_dirty_bitmap_truncate(lbs, ns);
                bdrv_dirty_bitmap_truncate(mbs, ns);
                size = ns;
                observed = true;
                break;
            }
            case 10:                          /* a job: successor, reclaim */
                g_assert_cmpint(bdrv_dirty_bitmap_create_successor(
                    lazy, &error_abort), ==, 0);
                g_assert_cmpint(bdrv_dirty_bitmap_create_successor(
                    model, &error_abort), ==, 0);
                bdrv_set_dirty(lbs, off, len);
                bdrv_set_dirty(mbs, off, len);
                g_assert_nonnull(bdrv_reclaim_dirty_bitmap(lazy,
                                                           &error_abort));
                g_assert_nonnull(bdrv_reclaim_dirty_bitmap(model,
                                                           &error_abort));
                break;
            default:                          /* point reads */
                g_assert_cmpint(bdrv_dirty_bitmap_get(lazy, off), ==,
                                bdrv_dirty_bitmap_get(model, off));
                g_assert_cmpint(bdrv_dirty_bitmap_next_dirty(lazy, off, -1),
                                ==,
                                bdrv_dirty_bitmap_next_dirty(model, off, -1));
                g_assert_cmpint(bdrv_dirty_bitmap_next_clean(lazy, off, -1),
                                ==,
                                bdrv_dirty_bitmap_next_clean(model, off, -1));
                observed = true;
                break;
            }
            /* Never more than one load; none before anything reads. */
            g_assert_cmpint(f.loads, <=, 1);
            if (!observed) {
                g_assert_cmpint(f.loads, ==, 0);
            }
        }
        assert_same(lazy, model);
        g_assert_cmpint(f.loads, ==, cleared_first ? 0 : 1);
        g_assert_true(f.freed);
        g_assert_null(bdrv_dirty_bitmap_pending_load(lazy, &fake_loader));
        hbitmap_free(f.bits);
        free_node(lbs);
        free_node(mbs);
    }
    g_rand_free(r);
}

/*
 * A load that fails makes the bitmap inconsistent (review H37 #7): never
 * all dirty, which would look valid and be stored over the old data.  The
 * error names the bitmap, the debug hash fails with it, every user check
 * refuses the bitmap afterwards, and release without a load frees the
 * loader too.
 */
static void test_lazy_failure(void)
{
    BlockDriverState *bs = fake_node(4 * MiB);
    BdrvDirtyBitmap *bm = bdrv_create_dirty_bitmap(bs, 65536, "lazy",
                                                   &error_abort);
    BdrvDirtyBitmap *unread = bdrv_create_dirty_bitmap(bs, 65536, "unread",
                                                       &error_abort);
    BdrvDirtyBitmap *hashed = bdrv_create_dirty_bitmap(bs, 65536, "hashed",
                                                       &error_abort);
    FakeStored f = { .bits = hbitmap_alloc(4 * MiB, 65536), .fail = true };
    FakeStored g = { .bits = hbitmap_alloc(4 * MiB, 65536) };
    FakeStored h = { .bits = hbitmap_alloc(4 * MiB, 65536), .fail = true };
    Error *err = NULL;

    bdrv_dirty_bitmap_set_loader(bm, &fake_loader, &f);
    bdrv_dirty_bitmap_set_loader(unread, &fake_loader, &g);
    bdrv_dirty_bitmap_set_loader(hashed, &fake_loader, &h);
    bdrv_set_dirty(bs, 0, 1);
    g_assert_true(bdrv_dirty_bitmap_has_pending_load(bm));
    g_assert_cmpint(bdrv_dirty_bitmap_load(bm, &err), ==, -EIO);
    expect_error(&err, "Could not read bitmap 'lazy' from image");
    g_assert_true(bdrv_dirty_bitmap_inconsistent(bm));
    g_assert_false(bdrv_dirty_bitmap_enabled(bm));
    g_assert_false(bdrv_dirty_bitmap_has_pending_load(bm));
    g_assert_cmpuint(bdrv_get_dirty_count(bm), ==, 0);
    g_assert_cmpint(bdrv_dirty_bitmap_check(bm, BDRV_BITMAP_DEFAULT, &err),
                    <, 0);
    expect_error(&err, "Bitmap 'lazy' is inconsistent and cannot be used");
    /* Inconsistent records nothing (invariant 2). */
    bdrv_set_dirty(bs, 0, 4 * MiB);
    g_assert_cmpuint(bdrv_get_dirty_count(bm), ==, 0);
    g_assert_true(f.freed);
    g_assert_cmpint(f.loads, ==, 1);
    /* Loaded once: later loads are no-ops. */
    g_assert_cmpint(bdrv_dirty_bitmap_load(bm, &error_abort), ==, 0);
    g_assert_cmpint(f.loads, ==, 1);
    /* The debug hash is the first reader: it fails with the load. */
    g_assert_null(bdrv_dirty_bitmap_sha256(hashed, &err));
    expect_error(&err, "Could not read bitmap 'lazy' from image");
    g_assert_true(bdrv_dirty_bitmap_inconsistent(hashed));
    bdrv_release_dirty_bitmap(unread);
    g_assert_true(g.freed);
    g_assert_cmpint(g.loads, ==, 0);
    hbitmap_free(f.bits);
    hbitmap_free(g.bits);
    hbitmap_free(h.bits);
    free_node(bs);
}

/* The consistency check loads first, so an operation that passed it never
 * meets a bitmap that turns inconsistent half-way; checks that do not ask
 * about consistency do not read anything. */
static void test_lazy_check_loads(void)
{
    BlockDriverState *bs = fake_node(4 * MiB);
    BdrvDirtyBitmap *bad = bdrv_create_dirty_bitmap(bs, 65536, "bad",
                                                    &error_abort);
    BdrvDirtyBitmap *ok = bdrv_create_dirty_bitmap(bs, 65536, "ok",
                                                   &error_abort);
    FakeStored f = { .bits = hbitmap_alloc(4 * MiB, 65536), .fail = true };
    FakeStored g = { .bits = hbitmap_alloc(4 * MiB, 65536) };
    Error *err = NULL;

    hbitmap_set(g.bits, MiB, 64 * KiB);
    bdrv_dirty_bitmap_set_loader(bad, &fake_loader, &f);
    bdrv_dirty_bitmap_set_loader(ok, &fake_loader, &g);
    g_assert_cmpint(bdrv_dirty_bitmap_check(bad, BDRV_BITMAP_BUSY |
                                            BDRV_BITMAP_RO, &error_abort),
                    ==, 0);
    g_assert_cmpint(f.loads, ==, 0);
    g_assert_cmpint(bdrv_dirty_bitmap_check(bad, BDRV_BITMAP_ALLOW_RO, &err),
                    <, 0);
    expect_error(&err, "Could not read bitmap 'lazy' from image");
    g_assert_true(bdrv_dirty_bitmap_inconsistent(bad));
    g_assert_cmpint(bdrv_dirty_bitmap_check(ok, BDRV_BITMAP_DEFAULT,
                                            &error_abort), ==, 0);
    g_assert_cmpint(g.loads, ==, 1);
    g_assert_cmpuint(bdrv_get_dirty_count(ok), ==, 64 * KiB);
    hbitmap_free(f.bits);
    hbitmap_free(g.bits);
    free_node(bs);
}

/*
 * Abdicate (review H37 #9): the parent's stored bits are read before the
 * parent goes, never dropped unread with the loader; the successor keeps
 * exactly the writes since the job started.  A failed load leaves the
 * successor inconsistent: the job consumed incomplete bits.
 */
static void test_lazy_abdicate(void)
{
    for (int fail = 0; fail <= 1; fail++) {
        BlockDriverState *bs = fake_node(4 * MiB);
        BdrvDirtyBitmap *bm = bdrv_create_dirty_bitmap(bs, 65536, "lazy",
                                                       &error_abort);
        FakeStored f = { .bits = hbitmap_alloc(4 * MiB, 65536),
                         .fail = fail };
        BdrvDirtyBitmap *succ;

        hbitmap_set(f.bits, 0, MiB);
        bdrv_dirty_bitmap_set_loader(bm, &fake_loader, &f);
        bdrv_dirty_bitmap_set_persistent(bm, true);
        g_assert_cmpint(bdrv_dirty_bitmap_create_successor(bm, &error_abort),
                        ==, 0);
        bdrv_set_dirty(bs, 2 * MiB, 64 * KiB);
        g_assert_cmpint(f.loads, ==, 0);
        succ = bdrv_dirty_bitmap_abdicate(bm, &error_abort);
        g_assert_nonnull(succ);
        g_assert_cmpint(f.loads, ==, 1);
        g_assert_true(f.freed);
        g_assert_true(bdrv_find_dirty_bitmap(bs, "lazy") == succ);
        g_assert_true(bdrv_dirty_bitmap_get_persistent(succ));
        g_assert_cmpint(bdrv_dirty_bitmap_inconsistent(succ), ==, fail);
        g_assert_cmpint(bdrv_dirty_bitmap_enabled(succ), ==, !fail);
        g_assert_cmpuint(bdrv_get_dirty_count(succ), ==, 64 * KiB);
        hbitmap_free(f.bits);
        free_node(bs);
    }
}

/* ---------------------------------------------------------------------- */
/* Lazy loading of qcow2 persistent bitmaps on real images               */

extern BlockDriver bdrv_qcow2;
static char *tmpdir;

typedef struct CreateCo {
    json_t *opts;
    Error *err;
    int ret;
} CreateCo;

static void create_co(void *opaque)
{
    CreateCo *c = opaque;
    c->ret = bdrv_qcow2.bdrv_co_create(c->opts, &c->err);
}

/* A qcow2 image with persistent bitmap "p": [1 MiB, 3 MiB) dirty. */
static char *image_with_bitmap(const char *name, char **sha)
{
    char *path = g_build_filename(tmpdir, name, NULL);
    BlockDriverState *file;
    BlockBackend *blk;
    BdrvDirtyBitmap *bm;
    CreateCo c = { 0 };
    FILE *f = fopen(path, "w");

    g_assert_nonnull(f);
    fclose(f);
    file = bdrv_open(NULL, NULL, json_pack("{s:s, s:s}", "driver", "file",
                                           "filename", path),
                     BDRV_O_RDWR | BDRV_O_RESIZE, &error_abort);
    c.opts = json_pack("{s:s, s:s, s:I}", "driver", "qcow2", "file",
                       bdrv_get_node_name(file), "size", (json_int_t)(8 * MiB));
    coroutine_run_sync(create_co, &c);
    g_assert_cmpint(c.ret, ==, 0);
    json_decref(c.opts);
    bdrv_unref(file);

    blk = blk_new_open(NULL, NULL,
                       json_pack("{s:s, s:{s:s, s:s}}", "driver", "qcow2",
                                 "file", "driver", "file", "filename", path),
                       BDRV_O_RDWR, &error_abort);
    bm = bdrv_create_dirty_bitmap(blk_bs(blk), 65536, "p", &error_abort);
    bdrv_dirty_bitmap_set_persistent(bm, true);
    bdrv_set_dirty_bitmap(bm, MiB, 2 * MiB);
    *sha = bdrv_dirty_bitmap_sha256(bm, &error_abort);
    blk_unref(blk);
    return path;
}

/* Open path read-only; extra members go to the qcow2 / file nodes. */
static BlockBackend *open_ro(const char *path, bool force_share,
                             const char *locking)
{
    json_t *file = json_pack("{s:s, s:s}", "driver", "file", "filename",
                             path);
    json_t *o = json_pack("{s:s, s:o}", "driver", "qcow2", "file", file);

    if (force_share) {
        json_object_set_new(o, "force-share", json_true());
    }
    if (locking) {
        json_object_set_new(file, "locking", json_string(locking));
    }
    return blk_new_open(NULL, NULL, o, 0, &error_abort);
}

/*
 * Review H37 #5: data may stay on disk only while this node's lock keeps
 * other writers out.  Read-only with locks: pending.  force-share=on or
 * locking=off: another process may remove the bitmap and reuse its
 * clusters, so the data is read at open.  The contents are the same.
 */
static void test_qcow2_lazy_needs_lock(void)
{
    g_autofree char *sha = NULL;
    g_autofree char *path = image_with_bitmap("lock.qcow2", &sha);
    static const struct {
        bool force_share;
        const char *locking;
        bool pending;
    } cases[] = {
        { false, NULL, true },
        { false, "on", true },
        { true, NULL, false },
        { false, "off", false },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        BlockBackend *blk = open_ro(path, cases[i].force_share,
                                    cases[i].locking);
        BdrvDirtyBitmap *bm = bdrv_find_dirty_bitmap(blk_bs(blk), "p");
        g_autofree char *got = NULL;

        g_assert_nonnull(bm);
        g_assert_cmpint(bdrv_dirty_bitmap_has_pending_load(bm), ==,
                        cases[i].pending);
        got = bdrv_dirty_bitmap_sha256(bm, &error_abort);
        g_assert_cmpstr(got, ==, sha);
        blk_unref(blk);
    }
}

/* Review H37 #8: inactivating a read-only node reads pending bitmaps (the
 * image may then belong to another process). */
static void test_qcow2_inactivate_ro(void)
{
    g_autofree char *sha = NULL;
    g_autofree char *path = image_with_bitmap("inact.qcow2", &sha);
    BlockBackend *blk = open_ro(path, false, NULL);
    BdrvDirtyBitmap *bm = bdrv_find_dirty_bitmap(blk_bs(blk), "p");
    g_autofree char *got = NULL;

    g_assert_true(bdrv_dirty_bitmap_has_pending_load(bm));
    g_assert_cmpint(bdrv_inactivate(blk_bs(blk), &error_abort), ==, 0);
    g_assert_false(bdrv_dirty_bitmap_has_pending_load(bm));
    g_assert_false(bdrv_dirty_bitmap_inconsistent(bm));
    got = bdrv_dirty_bitmap_sha256(bm, &error_abort);
    g_assert_cmpstr(got, ==, sha);
    blk_unref(blk);
}

/* A reopen may let other writers in (force-share, the file's locking), so
 * qcow2 reads pending bitmap data in the reopen's prepare stage. */
static void test_qcow2_reopen_loads(void)
{
    g_autofree char *sha = NULL;
    g_autofree char *path = image_with_bitmap("reopen.qcow2", &sha);
    BlockBackend *blk = open_ro(path, false, NULL);
    BdrvDirtyBitmap *bm = bdrv_find_dirty_bitmap(blk_bs(blk), "p");
    json_t *opts = json_object();
    g_autofree char *got = NULL;

    g_assert_true(bdrv_dirty_bitmap_has_pending_load(bm));
    g_assert_cmpint(bdrv_reopen(blk_bs(blk), opts, true, &error_abort), ==,
                    0);
    g_assert_false(bdrv_dirty_bitmap_has_pending_load(bm));
    g_assert_false(bdrv_dirty_bitmap_inconsistent(bm));
    got = bdrv_dirty_bitmap_sha256(bm, &error_abort);
    g_assert_cmpstr(got, ==, sha);
    blk_unref(blk);
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    bdrv_register_builtin_drivers();
    tmpdir = g_dir_make_tmp("qblock-test-dirty-bitmap-XXXXXX", NULL);
    g_assert_nonnull(tmpdir);
    g_test_add_func("/dirty-bitmap/create-names", test_create_names);
    g_test_add_func("/dirty-bitmap/default-granularity", test_default_granularity);
    g_test_add_func("/dirty-bitmap/marking", test_marking);
    g_test_add_func("/dirty-bitmap/checks", test_checks);
    g_test_add_func("/dirty-bitmap/clear-merge-backup", test_clear_merge_backup);
    g_test_add_func("/dirty-bitmap/successor", test_successor);
    g_test_add_func("/dirty-bitmap/truncate", test_truncate);
    g_test_add_func("/dirty-bitmap/query", test_query);
    g_test_add_func("/dirty-bitmap/lazy-property", test_lazy_property);
    g_test_add_func("/dirty-bitmap/lazy-failure", test_lazy_failure);
    g_test_add_func("/dirty-bitmap/lazy-check-loads", test_lazy_check_loads);
    g_test_add_func("/dirty-bitmap/lazy-abdicate", test_lazy_abdicate);
    g_test_add_func("/dirty-bitmap/qcow2-lazy-needs-lock",
                    test_qcow2_lazy_needs_lock);
    g_test_add_func("/dirty-bitmap/qcow2-inactivate-ro",
                    test_qcow2_inactivate_ro);
    g_test_add_func("/dirty-bitmap/qcow2-reopen-loads",
                    test_qcow2_reopen_loads);
    ret = g_test_run();
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) {
        ret = ret ? ret : 1;
    }
    return ret;
}
