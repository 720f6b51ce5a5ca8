/*
 * Unit tests for block/perm.c: permission names, the default child
 * permission rules (QEMU 7.2's observed edge values), conflict detection
 * with the exact 7.2 texts, read-only and alignment checks, driver
 * check/set/abort pairing, and transactional rollback.
 */
#include "fake-block-drivers.h"

#define CR  BLK_PERM_CONSISTENT_READ
#define W   BLK_PERM_WRITE
#define WU  BLK_PERM_WRITE_UNCHANGED
#define RS  BLK_PERM_RESIZE
#define ALL BLK_PERM_ALL

static void test_names(void)
{
    g_autofree char *a = bdrv_perm_names(CR | W);
    g_autofree char *b = bdrv_perm_names(W | RS);
    g_autofree char *c = bdrv_perm_names(0);
    g_autofree char *d = bdrv_perm_names(ALL);

    g_assert_cmpstr(a, ==, "consistent read, write");
    g_assert_cmpstr(b, ==, "write, resize");
    g_assert_cmpstr(c, ==, "");
    g_assert_cmpstr(d, ==, "consistent read, write, write unchanged, "
                    "resize");
    g_assert_cmpstr(bdrv_perm_qapi_name(0), ==, "consistent-read");
    g_assert_cmpstr(bdrv_perm_qapi_name(2), ==, "write-unchanged");
    g_assert_cmpstr(bdrv_perm_qapi_name(3), ==, "resize");
    g_assert_null(bdrv_perm_qapi_name(4));
}

static void test_default_rules(void)
{
    uint64_t p, s;
    BlockDriverState *bs = open_json("{\"driver\":\"fproto\"}", BDRV_O_RDWR,
                                     &error_abort);

    /* Filtered: pass through. */
    bdrv_default_perms(bs, NULL, BDRV_CHILD_FILTERED, NULL, CR | W, CR, &p,
                       &s);
    g_assert_cmphex(p, ==, CR | W);
    g_assert_cmphex(s, ==, CR);
    /* COW: only reads; writes shared only if the parent shares them. */
    bdrv_default_perms(bs, NULL, BDRV_CHILD_COW, NULL, CR | W | RS, CR, &p,
                       &s);
    g_assert_cmphex(p, ==, CR);
    g_assert_cmphex(s, ==, CR | WU);
    bdrv_default_perms(bs, NULL, BDRV_CHILD_COW, NULL, 0, ALL, &p, &s);
    g_assert_cmphex(p, ==, 0);
    g_assert_cmphex(s, ==, ALL);
    /* Data: WRITE_UNCHANGED implies WRITE implies RESIZE; RESIZE unshared. */
    bdrv_default_perms(bs, NULL, BDRV_CHILD_DATA, NULL, WU, ALL, &p, &s);
    g_assert_cmphex(p, ==, W | WU | RS);
    g_assert_cmphex(s, ==, CR | W | WU);
    /* Metadata of a writable node: write+resize taken and unshared. */
    bdrv_default_perms(bs, NULL, BDRV_CHILD_METADATA, NULL, 0, ALL, &p, &s);
    g_assert_cmphex(p, ==, CR | W | RS);
    g_assert_cmphex(s, ==, CR | WU);
    /* Inactive: others may write and resize again. */
    bs->open_flags |= BDRV_O_INACTIVE;
    bdrv_default_perms(bs, NULL, BDRV_CHILD_IMAGE, NULL, 0, ALL, &p, &s);
    g_assert_cmphex(p, ==, CR);
    g_assert_cmphex(s, ==, ALL);
    bs->open_flags &= ~BDRV_O_INACTIVE;
    /* No I/O (qemu-img info): not even reads. */
    bs->open_flags = BDRV_O_NO_IO;
    bdrv_default_perms(bs, NULL, BDRV_CHILD_IMAGE, NULL, 0, ALL, &p, &s);
    g_assert_cmphex(p, ==, 0);
    g_assert_cmphex(s, ==, CR | WU);
    bdrv_unref(bs);
}

/* Edge values QEMU 7.2 shows in x-debug-query-block-graph. */
static void test_observed_edges(void)
{
    BlockDriverState *bs;
    FakeProto *fp;

    bs = open_json("{\"driver\":\"fmt\",\"file\":{\"driver\":\"fproto\"},"
                   "\"backing\":{\"driver\":\"fproto\"}}", BDRV_O_RDWR,
                   &error_abort);
    g_assert_cmphex(bs->file->perm, ==, CR | W | RS);
    g_assert_cmphex(bs->file->shared_perm, ==, CR | WU);
    g_assert_cmphex(bs->backing->perm, ==, 0);
    g_assert_cmphex(bs->backing->shared_perm, ==, ALL);
    /* The driver was told the final state. */
    fp = bs->file->bs->opaque;
    g_assert_cmphex(fp->perm, ==, CR | W | RS);
    g_assert_cmphex(fp->shared, ==, CR | WU);
    g_assert_cmpint(fp->sets, >=, 1);
    bdrv_unref(bs);

    bs = open_json("{\"driver\":\"fmt\",\"file\":{\"driver\":\"fproto\"}}",
                   0, &error_abort);
    g_assert_cmphex(bs->file->perm, ==, CR);
    g_assert_cmphex(bs->file->shared_perm, ==, CR | WU);
    bdrv_unref(bs);

    /* force-share on the format is inherited by its file (qemu-io -U). */
    bs = open_json("{\"driver\":\"fmt\",\"force-share\":true,"
                   "\"file\":{\"driver\":\"fproto\"}}", 0, &error_abort);
    g_assert_true(bs->file->bs->force_share);
    g_assert_cmphex(bs->file->perm, ==, CR);
    g_assert_cmphex(bs->file->shared_perm, ==, ALL);
    bdrv_unref(bs);

    /* force-share on the child: everything shared. */
    bs = open_json("{\"driver\":\"fmt\",\"file\":{\"driver\":\"fproto\","
                   "\"force-share\":true}}", 0, &error_abort);
    g_assert_cmphex(bs->file->perm, ==, CR);
    g_assert_cmphex(bs->file->shared_perm, ==, ALL);
    bdrv_unref(bs);
    assert_no_nodes();
}

static void test_conflict_formats(void)
{
    Error *err = NULL;
    BlockDriverState *c, *q0;
    uint64_t p, s;

    c = open_json("{\"driver\":\"fproto\",\"node-name\":\"C\"}", BDRV_O_RDWR,
                  &error_abort);
    q0 = open_json("{\"driver\":\"fmt\",\"node-name\":\"q0\",\"file\":\"C\"}",
                   BDRV_O_RDWR, &error_abort);
    g_assert_null(open_json("{\"driver\":\"fmt\",\"node-name\":\"q1\","
                            "\"file\":\"C\"}", BDRV_O_RDWR, &err));
    assert_error(err, "Permission conflict on node 'C': permissions 'write, "
                 "resize' are both required by node 'q0' (uses node 'C' as "
                 "'file' child) and unshared by node 'q1' (uses node 'C' as "
                 "'file' child).");
    /* Nothing of q1 is left. */
    g_assert_null(bdrv_find_node("q1"));
    g_assert_cmpint(g_list_length(c->parents), ==, 1);
    g_assert_cmpint(c->refcnt, ==, 2);
    bdrv_get_cumulative_perm(c, &p, &s);
    g_assert_cmphex(p, ==, CR | W | RS);
    g_assert_cmphex(s, ==, CR | WU);

    /* A read-only second format still unshares write: conflict. */
    g_assert_null(open_json("{\"driver\":\"fmt\",\"node-name\":\"q2\","
                            "\"file\":\"C\"}", 0, &err));
    assert_error(err, "Permission conflict on node 'C': permissions 'write, "
                 "resize' are both required by node 'q0' (uses node 'C' as "
                 "'file' child) and unshared by node 'q2' (uses node 'C' as "
                 "'file' child).");
    bdrv_unref(q0);
    bdrv_get_cumulative_perm(c, &p, &s);
    g_assert_cmphex(p, ==, 0);
    g_assert_cmphex(s, ==, ALL);

    /* Two read-only formats coexist. */
    q0 = open_json("{\"driver\":\"fmt\",\"node-name\":\"q0\",\"file\":\"C\"}",
                   0, &error_abort);
    {
        BlockDriverState *q1 = open_json("{\"driver\":\"fmt\",\"node-name\":"
                                         "\"q1\",\"file\":\"C\"}", 0,
                                         &error_abort);
        g_assert_cmpint(g_list_length(c->parents), ==, 2);
        bdrv_unref(q1);
    }
    bdrv_unref(q0);
    bdrv_unref(c);
    assert_no_nodes();
}

static void test_conflict_users(void)
{
    Error *err = NULL;
    BlockDriverState *bs;
    FakeUser *u1, *u2, *u3;
    uint64_t p, s;

    bs = open_json("{\"driver\":\"fproto\",\"node-name\":\"p0\"}",
                   BDRV_O_RDWR, &error_abort);
    u1 = fake_user_new(bs, "dev", CR | W, ALL, &error_abort);
    g_assert_null(fake_user_new(bs, NULL, CR, CR | WU, &err));
    assert_error(err, "Permission conflict on node 'p0': permissions "
                 "'write' are both required by block device 'dev' (uses "
                 "node 'p0' as 'root' child) and unshared by an unnamed "
                 "block device (uses node 'p0' as 'root' child).");
    /* The other way round: the new user wants what the old one keeps. */
    u2 = fake_user_new(bs, "ro", CR, CR | W | WU, &error_abort);
    g_assert_null(fake_user_new(bs, "rs", RS, ALL, &err));
    assert_error(err, "Permission conflict on node 'p0': permissions "
                 "'resize' are both required by block device 'rs' (uses "
                 "node 'p0' as 'root' child) and unshared by block device "
                 "'ro' (uses node 'p0' as 'root' child).");
    u3 = fake_user_new(bs, "r2", CR, ALL, &error_abort);
    bdrv_get_cumulative_perm(bs, &p, &s);
    g_assert_cmphex(p, ==, CR | W);
    g_assert_cmphex(s, ==, CR | W | WU);

    /* Widening an edge is checked like attaching. */
    g_assert_cmpint(bdrv_child_try_set_perm(u3->c, CR | RS, ALL, &err), <, 0);
    assert_error(err, "Permission conflict on node 'p0': permissions "
                 "'resize' are both required by block device 'r2' (uses "
                 "node 'p0' as 'root' child) and unshared by block device "
                 "'ro' (uses node 'p0' as 'root' child).");
    g_assert_cmphex(u3->c->perm, ==, CR);
    fake_user_free(u2);
    g_assert_cmpint(bdrv_child_try_set_perm(u3->c, CR | RS, ALL,
                                            &error_abort), ==, 0);
    g_assert_cmphex(u3->c->perm, ==, CR | RS);
    fake_user_free(u1);
    fake_user_free(u3);
    bdrv_unref(bs);
    assert_no_nodes();
}

static void test_read_only_and_alignment(void)
{
    Error *err = NULL;
    BlockDriverState *bs;
    FakeUser *u;

    bs = open_json("{\"driver\":\"fproto\",\"node-name\":\"p0\"}", 0,
                   &error_abort);
    g_assert_null(fake_user_new(bs, "dev", CR | W, ALL, &err));
    assert_error(err, "Block node is read-only");
    g_assert_null(fake_user_new(bs, "dev", WU, ALL, &err));
    assert_error(err, "Block node is read-only");
    u = fake_user_new(bs, "dev", CR, ALL, &error_abort);
    fake_user_free(u);
    bdrv_unref(bs);

    /* 1000 bytes is two sectors: 1024 is not a multiple of 4096. */
    bs = open_json("{\"driver\":\"fproto\",\"align\":\"4096\","
                   "\"size\":\"1000\"}", BDRV_O_RDWR, &error_abort);
    g_assert_null(fake_user_new(bs, "dev", CR | W, ALL, &err));
    assert_error(err, "Cannot get 'write' permission without 'resize': "
                 "Image size is not a multiple of request alignment");
    u = fake_user_new(bs, "dev", CR | W | RS, ALL, &error_abort);
    fake_user_free(u);
    bdrv_unref(bs);
    assert_no_nodes();
}

static void test_rollback(void)
{
    Error *err = NULL;
    BlockDriverState *f0, *p0, *b0;
    FakeProto *sp, *sb;
    FakeUser *u;
    uint64_t old_backing_perm, old_backing_shared;
    int sets_p, sets_b;

    f0 = open_json("{\"driver\":\"fmt\",\"node-name\":\"f0\","
                   "\"file\":{\"driver\":\"fproto\",\"node-name\":\"p0\"},"
                   "\"backing\":{\"driver\":\"fproto\",\"node-name\":\"b0\"}}",
                   BDRV_O_RDWR, &error_abort);
    p0 = f0->file->bs;
    b0 = f0->backing->bs;
    sp = p0->opaque;
    sb = b0->opaque;
    u = fake_user_new(f0, "dev", 0, ALL, &error_abort);
    old_backing_perm = f0->backing->perm;
    old_backing_shared = f0->backing->shared_perm;
    sets_p = sp->sets;
    sets_b = sb->sets;

    /* The user now wants to read and unshare writes: the edges below f0
     * change, p0's driver accepts, then b0's refuses; all is rolled back.
     * (Children are visited newest edge last: file before backing.) */
    {
        uint64_t old_file_shared = f0->file->shared_perm;
        fake_fail_check = "b0";
        g_assert_cmpint(bdrv_child_try_set_perm(u->c, CR, CR, &err), <, 0);
        assert_error(err, "fake lock failure");
        g_assert_cmphex(u->c->perm, ==, 0);
        g_assert_cmphex(u->c->shared_perm, ==, ALL);
        g_assert_cmphex(f0->backing->perm, ==, old_backing_perm);
        g_assert_cmphex(f0->backing->shared_perm, ==, old_backing_shared);
        g_assert_cmphex(f0->file->shared_perm, ==, old_file_shared);
        g_assert_cmpint(sp->aborts, ==, 1);  /* p0 was checked, then undone */
        g_assert_cmpint(sp->sets, ==, sets_p);
        g_assert_cmpint(sb->sets, ==, sets_b);
        g_assert_cmpint(sb->aborts, ==, 0);  /* its own check failed */
    }

    /* Loosening never fails: the error is hidden, state kept. */
    fake_fail_check = NULL;
    g_assert_cmpint(bdrv_child_try_set_perm(u->c, CR, CR, &error_abort), ==,
                    0);
    g_assert_cmphex(f0->backing->perm, ==, CR);
    g_assert_cmphex(f0->backing->shared_perm, ==, CR | WU);
    fake_fail_check = "p0";
    g_assert_cmpint(bdrv_child_try_set_perm(u->c, 0, ALL, &err), ==, 0);
    g_assert_null(err);
    g_assert_cmphex(u->c->perm, ==, CR);     /* stricter state stays */
    fake_fail_check = NULL;

    fake_user_free(u);
    bdrv_unref(f0);
    assert_no_nodes();
}

static void test_attach_rollback(void)
{
    Error *err = NULL;
    BlockDriverState *p0, *f0;
    FakeUser *u;

    p0 = open_json("{\"driver\":\"fproto\",\"node-name\":\"p0\"}",
                   BDRV_O_RDWR, &error_abort);
    u = fake_user_new(p0, "dev", CR, CR, &error_abort);
    f0 = open_json("{\"driver\":\"fmt\",\"node-name\":\"f0\","
                   "\"file\":{\"driver\":\"fproto\"}}", BDRV_O_RDWR,
                   &error_abort);
    /* f0 wants write on p0, the user does not share it. */
    g_assert_cmpint(bdrv_set_backing_hd(f0, p0, &error_abort), ==, 0);
    bdrv_set_backing_hd(f0, NULL, &error_abort);
    bdrv_ref(p0);
    g_assert_null(bdrv_attach_child(f0, p0, "data-file", &child_of_bds,
                                    BDRV_CHILD_DATA | BDRV_CHILD_METADATA,
                                    &err));
    assert_error(err, "Permission conflict on node 'p0': permissions "
                 "'write, resize' are both required by node 'f0' (uses node "
                 "'p0' as 'data-file' child) and unshared by block device "
                 "'dev' (uses node 'p0' as 'root' child).");
    g_assert_cmpint(g_list_length(f0->children), ==, 1);
    g_assert_cmpint(g_list_length(p0->parents), ==, 1);
    g_assert_cmpint(p0->refcnt, ==, 2);
    fake_user_free(u);
    bdrv_unref(f0);
    bdrv_unref(p0);
    assert_no_nodes();
}

static void test_inactivate(void)
{
    Error *err = NULL;
    BlockDriverState *f0 = open_json("{\"driver\":\"fmt\",\"node-name\":"
                                     "\"f0\",\"file\":{\"driver\":"
                                     "\"fproto\"}}", BDRV_O_RDWR,
                                     &error_abort);
    FakeUser *u = fake_user_new(f0, "dev", CR | W, CR, &error_abort);

    g_assert_cmpint(bdrv_inactivate(f0, &err), <, 0);
    assert_error(err, "Cannot inactivate node 'f0': a parent still has "
                 "write permission");
    g_assert_cmpint(bdrv_child_try_set_perm(u->c, CR, CR, &error_abort), ==,
                    0);
    g_assert_cmpint(bdrv_inactivate(f0, &error_abort), ==, 0);
    g_assert_true(bdrv_is_inactive(f0));
    g_assert_true(bdrv_is_inactive(f0->file->bs));
    g_assert_false(bdrv_is_writable(f0));
    /* Others may now write and resize the image file. */
    g_assert_cmphex(f0->file->shared_perm & (W | RS), ==, W | RS);
    g_assert_cmphex(f0->file->perm & (W | RS), ==, 0);
    g_assert_cmpint(bdrv_activate(f0, &error_abort), ==, 0);
    g_assert_false(bdrv_is_inactive(f0));
    g_assert_false(bdrv_is_inactive(f0->file->bs));
    g_assert_cmphex(f0->file->perm, ==, CR | W | RS);
    /* The user shares only reads, so the file edge does too. */
    g_assert_cmphex(f0->file->shared_perm, ==, CR);
    fake_user_free(u);
    bdrv_unref(f0);
    assert_no_nodes();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    fake_drivers_register();
    g_test_add_func("/perm/names", test_names);
    g_test_add_func("/perm/default-rules", test_default_rules);
    g_test_add_func("/perm/observed-edges", test_observed_edges);
    g_test_add_func("/perm/conflict-formats", test_conflict_formats);
    g_test_add_func("/perm/conflict-users", test_conflict_users);
    g_test_add_func("/perm/read-only-and-alignment",
                    test_read_only_and_alignment);
    g_test_add_func("/perm/rollback", test_rollback);
    g_test_add_func("/perm/attach-rollback", test_attach_rollback);
    g_test_add_func("/perm/inactivate", test_inactivate);
    return g_test_run();
}
