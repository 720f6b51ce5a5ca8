/*
 * Unit tests for block/reopen.c: read-only toggles with inherited flags,
 * the prepare/commit/post/abort order, permission failures that abort
 * everything, unchangeable and non-resettable options, drivers without
 * reopen, and file/backing replacement (cycles, frozen links, missing
 * backing) with QMP blockdev-reopen semantics.
 */
#include "fake-block-drivers.h"

#define CR  BLK_PERM_CONSISTENT_READ
#define W   BLK_PERM_WRITE
#define RS  BLK_PERM_RESIZE
#define ALL BLK_PERM_ALL

static void log_reset(void)
{
    if (fake_log) {
        g_string_truncate(fake_log, 0);
    }
}

static json_t *jl(const char *text)
{
    json_t *o = json_loads(text, 0, NULL);
    g_assert_nonnull(o);
    return o;
}

static void test_read_only_toggle(void)
{
    BlockDriverState *f0 = open_json("{\"driver\":\"fmt\",\"node-name\":"
                                     "\"f0\",\"file\":{\"driver\":\"fproto\","
                                     "\"node-name\":\"p0\"}}", BDRV_O_RDWR,
                                     &error_abort);
    BlockDriverState *p0 = f0->file->bs;
    FakeFmt *ff = f0->opaque;

    log_reset();
    g_assert_cmpint(bdrv_reopen_set_read_only(f0, true, &error_abort), ==, 0);
    g_assert_true(bdrv_is_read_only(f0));
    g_assert_true(bdrv_is_read_only(p0));     /* inherited by the file */
    g_assert_cmphex(f0->file->perm, ==, CR);
    g_assert_cmphex(f0->file->shared_perm, ==, CR | BLK_PERM_WRITE_UNCHANGED);
    /* Prepare parents first; commit children first; post-commit last. */
    g_assert_cmpstr(fake_log->str, ==,
                    "prepare:f0;prepare:p0;commit:p0;commit:f0;post:f0;");
    g_assert_cmpint(ff->commits, ==, 1);
    g_assert_cmpint(ff->posts, ==, 1);

    g_assert_cmpint(bdrv_reopen_set_read_only(f0, false, &error_abort), ==,
                    0);
    g_assert_false(bdrv_is_read_only(f0));
    g_assert_false(bdrv_is_read_only(p0));
    g_assert_cmphex(f0->file->perm, ==, CR | W | RS);
    bdrv_unref(f0);
    assert_no_nodes();
}

static void test_read_only_with_writer(void)
{
    Error *err = NULL;
    BlockDriverState *f0 = open_json("{\"driver\":\"fmt\",\"node-name\":"
                                     "\"f0\",\"file\":{\"driver\":\"fproto\","
                                     "\"node-name\":\"p0\"}}", BDRV_O_RDWR,
                                     &error_abort);
    BlockDriverState *p0 = f0->file->bs;
    FakeProto *sp = p0->opaque;
    FakeUser *u = fake_user_new(f0, "dev", CR | W, CR, &error_abort);
    int sets = sp->sets;

    log_reset();
    g_assert_cmpint(bdrv_reopen_set_read_only(f0, true, &err), <, 0);
    assert_error(err, "Read-only block node 'f0' cannot support read-write "
                 "users");
    g_assert_cmpstr(fake_log->str, ==,
                    "prepare:f0;prepare:p0;abort:f0;abort:p0;");
    g_assert_false(bdrv_is_read_only(f0));
    g_assert_false(bdrv_is_read_only(p0));
    g_assert_cmphex(f0->file->perm, ==, CR | W | RS);
    g_assert_cmpint(sp->sets, ==, sets);
    g_assert_cmpint(sp->reopen_commits, ==, 0);
    g_assert_cmpint(sp->reopen_aborts, ==, 1);

    /* A node that is read-only now reports the plain text. */
    fake_user_free(u);
    bdrv_reopen_set_read_only(f0, true, &error_abort);
    g_assert_null(fake_user_new(f0, "dev", CR | W, CR, &err));
    assert_error(err, "Block node is read-only");
    bdrv_unref(f0);
    assert_no_nodes();
}

static void test_options(void)
{
    Error *err = NULL;
    BlockDriverState *p0 = open_json("{\"driver\":\"fproto\",\"node-name\":"
                                     "\"p0\",\"size\":\"4k\"}", BDRV_O_RDWR,
                                     &error_abort);
    FakeProto *sp = p0->opaque;

    /* QMP semantics: omitted options revert to defaults. */
    g_assert_cmpint(bdrv_reopen(p0, jl("{\"driver\":\"fproto\","
                                       "\"node-name\":\"p0\"}"), false,
                                &err), <, 0);
    assert_error(err, "Option 'size' cannot be reset to its default value");
    g_assert_cmpint(bdrv_reopen(p0, jl("{\"driver\":\"fproto\","
                                       "\"node-name\":\"p0\",\"size\":\"8k\"}"),
                                false, &err), <, 0);
    assert_error(err, "Cannot change the option 'size'");
    g_assert_cmpint(bdrv_reopen(p0, jl("{\"driver\":\"fmt\","
                                       "\"node-name\":\"p0\",\"size\":\"4k\"}"),
                                false, &err), <, 0);
    assert_error(err, "Cannot change the option 'driver'");
    g_assert_cmpint(bdrv_reopen(p0, jl("{\"size\":\"4k\",\"discard\":\"x\"}"),
                                false, &err), <, 0);
    assert_error(err, "Invalid discard option");

    /* A mutable option changes; read-only defaults to off. */
    g_assert_cmpint(bdrv_reopen(p0, jl("{\"driver\":\"fproto\","
                                       "\"node-name\":\"p0\",\"size\":\"4k\","
                                       "\"mut\":5,\"read-only\":true}"),
                                false, &error_abort), ==, 0);
    g_assert_cmpint(sp->mut, ==, 5);
    g_assert_true(bdrv_is_read_only(p0));
    g_assert_cmpint(bdrv_reopen(p0, jl("{\"size\":\"4k\",\"mut\":6}"), false,
                                &error_abort), ==, 0);
    g_assert_false(bdrv_is_read_only(p0));
    g_assert_cmpint(sp->mut, ==, 6);
    /* keep_old_opts: only what is given changes. */
    g_assert_cmpint(bdrv_reopen(p0, jl("{\"read-only\":true}"), true,
                                &error_abort), ==, 0);
    g_assert_cmpint(sp->mut, ==, 6);
    g_assert_true(bdrv_is_read_only(p0));

    /* Queueing a node twice is accepted; an empty queue is a no-op. */
    {
        BlockReopenQueue *q = bdrv_reopen_queue(NULL, p0,
                                                jl("{\"mut\":7}"), true);
        q = bdrv_reopen_queue(q, p0, jl("{\"mut\":8}"), true);
        g_assert_cmpint(g_list_length(q->entries), ==, 1);
        g_assert_cmpint(bdrv_reopen_multiple(q, &error_abort), ==, 0);
        g_assert_cmpint(sp->mut, ==, 8);
        g_assert_cmpint(bdrv_reopen_multiple(NULL, &error_abort), ==, 0);
    }
    bdrv_unref(p0);
    assert_no_nodes();
}

static void test_driver_failures(void)
{
    Error *err = NULL;
    BlockDriverState *n0, *f0;

    n0 = open_json("{\"driver\":\"fnoreopen\",\"node-name\":\"n0\"}", 0,
                   &error_abort);
    g_assert_cmpint(bdrv_reopen_set_read_only(n0, false, &err), <, 0);
    assert_error(err, "Block format 'fnoreopen' used by node 'n0' does not "
                 "support reopening files");
    bdrv_unref(n0);

    f0 = bdrv_open("fproto:/img/a", NULL,
                   jl("{\"driver\":\"fmt\",\"node-name\":\"f0\","
                      "\"fail-prepare\":true}"), 0, &error_abort);
    log_reset();
    g_assert_cmpint(bdrv_reopen_set_read_only(f0, false, &err), <, 0);
    assert_error(err, "failed while preparing to reopen image '/img/a'");
    /* f0's prepare failed: only nothing else was prepared to abort. */
    g_assert_cmpstr(fake_log->str, ==, "prepare:f0;");
    g_assert_true(bdrv_is_read_only(f0));
    bdrv_unref(f0);
    assert_no_nodes();
}

static void test_backing_changes(void)
{
    Error *err = NULL;
    BlockDriverState *f0, *b0, *b1, *p1, *oldfile;
    char fname[32];

    b0 = open_json("{\"driver\":\"fproto\",\"node-name\":\"b0\"}", 0,
                   &error_abort);
    b1 = open_json("{\"driver\":\"fproto\",\"node-name\":\"b1\"}", 0,
                   &error_abort);
    p1 = open_json("{\"driver\":\"fproto\",\"node-name\":\"p1\","
                   "\"filename\":\"/img/p1\"}", BDRV_O_RDWR, &error_abort);
    f0 = open_json("{\"driver\":\"fmt\",\"node-name\":\"f0\","
                   "\"file\":{\"driver\":\"fproto\"}}", BDRV_O_RDWR,
                   &error_abort);
    oldfile = f0->file->bs;
    g_strlcpy(fname, oldfile->node_name, sizeof(fname));

#define REOPEN(json, e) \
    bdrv_reopen(f0, jl(json), false, (e))

    /* Attach a backing child by reference. */
    {
        g_autofree char *j = g_strdup_printf(
            "{\"driver\":\"fmt\",\"node-name\":\"f0\",\"file\":\"%s\","
            "\"backing\":\"b0\"}", fname);
        g_assert_cmpint(REOPEN(j, &error_abort), ==, 0);
        g_assert_true(f0->backing->bs == b0);
        g_assert_cmpint(b0->refcnt, ==, 2);
        /* Omitting it now is an error. */
        g_free(j);
        j = g_strdup_printf("{\"driver\":\"fmt\",\"node-name\":\"f0\","
                            "\"file\":\"%s\"}", fname);
        g_assert_cmpint(REOPEN(j, &err), <, 0);
        assert_error(err, "backing is missing for 'f0'");
        /* Cycles are refused. */
        g_free(j);
        j = g_strdup_printf("{\"driver\":\"fmt\",\"node-name\":\"f0\","
                            "\"file\":\"%s\",\"backing\":\"f0\"}", fname);
        g_assert_cmpint(REOPEN(j, &err), <, 0);
        assert_error(err, "Making 'f0' a backing child of 'f0' would create "
                     "a cycle");
        /* Frozen links stay. */
        bdrv_freeze_child(f0->backing, &error_abort);
        g_free(j);
        j = g_strdup_printf("{\"driver\":\"fmt\",\"node-name\":\"f0\","
                            "\"file\":\"%s\",\"backing\":\"b1\"}", fname);
        g_assert_cmpint(REOPEN(j, &err), <, 0);
        assert_error(err, "Cannot change frozen 'backing' link from 'f0' to "
                     "'b0'");
        g_assert_true(f0->backing->bs == b0);
        bdrv_unfreeze_child(f0->backing);
        /* Replace, then detach with null. */
        g_assert_cmpint(REOPEN(j, &error_abort), ==, 0);
        g_assert_true(f0->backing->bs == b1);
        g_assert_cmpint(b0->refcnt, ==, 1);
        g_free(j);
        j = g_strdup_printf("{\"driver\":\"fmt\",\"node-name\":\"f0\","
                            "\"file\":\"%s\",\"backing\":null}", fname);
        g_assert_cmpint(REOPEN(j, &error_abort), ==, 0);
        g_assert_null(f0->backing);
        g_assert_cmpint(b1->refcnt, ==, 1);
    }

    /* Replacing the file: a conflicting new file rolls back... */
    {
        FakeUser *u = fake_user_new(p1, "dev", CR, CR, &error_abort);
        g_assert_cmpint(REOPEN("{\"driver\":\"fmt\",\"node-name\":\"f0\","
                               "\"file\":\"p1\",\"backing\":null}", &err),
                        <, 0);
        assert_error(err, "Permission conflict on node 'p1': permissions "
                     "'write, resize' are both required by node 'f0' (uses "
                     "node 'p1' as 'file' child) and unshared by block "
                     "device 'dev' (uses node 'p1' as 'root' child).");
        g_assert_true(f0->file->bs == oldfile);
        g_assert_null(p1->parents->next);
        fake_user_free(u);
    }
    /* ... and succeeds otherwise; the implicit old file is closed. */
    g_assert_cmpint(REOPEN("{\"driver\":\"fmt\",\"node-name\":\"f0\","
                           "\"file\":\"p1\",\"backing\":null}",
                           &error_abort), ==, 0);
    g_assert_true(f0->file->bs == p1);
    g_assert_null(bdrv_find_node(fname));
    g_assert_cmpstr(f0->filename, ==, p1->filename);
    g_assert_cmphex(f0->file->perm, ==, CR | W | RS);
    /* The file may not become a child of itself either. */
    g_assert_cmpint(REOPEN("{\"driver\":\"fmt\",\"node-name\":\"f0\","
                           "\"file\":\"f0\",\"backing\":null}", &err), <, 0);
    assert_error(err, "Making 'f0' a file child of 'f0' would create a "
                 "cycle");
#undef REOPEN

    bdrv_unref(f0);
    bdrv_unref(p1);
    bdrv_unref(b0);
    bdrv_unref(b1);
    assert_no_nodes();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    fake_drivers_register();
    g_test_add_func("/reopen/read-only-toggle", test_read_only_toggle);
    g_test_add_func("/reopen/read-only-with-writer",
                    test_read_only_with_writer);
    g_test_add_func("/reopen/options", test_options);
    g_test_add_func("/reopen/driver-failures", test_driver_failures);
    g_test_add_func("/reopen/backing-changes", test_backing_changes);
    return g_test_run();
}
