/*
 * Tests of the QMP command implementations (block/qmp/) called through the
 * generated marshallers, on null-co nodes: dirty bitmaps with real dirty
 * bits (set directly, since QMP has no write path), the `transaction`
 * command's all-or-nothing rule (contents, enabled and busy state restored
 * after any failing action), merges, the empty-list cases where QEMU 7.2
 * crashes, blockdev-del ownership and blockdev-reopen.
 */
#include "block/qmp/qmp-internal.h"

static json_t *call(QmpCommandFunc *fn, const char *args_json, char **errmsg)
{
    json_t *args = json_loads(args_json, 0, NULL);
    json_t *ret = NULL;
    Error *err = NULL;

    g_assert_nonnull(args);
    fn(args, &ret, &err);
    json_decref(args);
    if (errmsg) {
        *errmsg = err ? g_strdup(error_get_pretty(err)) : NULL;
    }
    if (err) {
        error_free(err);
        g_assert_null(ret);
        return NULL;
    }
    g_assert_nonnull(ret);
    return ret;
}

static void ok(QmpCommandFunc *fn, const char *args_json)
{
    char *msg = NULL;
    json_t *ret = call(fn, args_json, &msg);

    if (!ret) {
        g_error("unexpected error: %s (args %s)", msg, args_json);
    }
    json_decref(ret);
}

static void fails(QmpCommandFunc *fn, const char *args_json,
                  const char *want)
{
    char *msg = NULL;
    json_t *ret = call(fn, args_json, &msg);

    g_assert_null(ret);
    g_assert_cmpstr(msg, ==, want);
    g_free(msg);
}

static char *sha(const char *node, const char *name)
{
    BdrvDirtyBitmap *b = qmp_lookup_bitmap(node, name, NULL, &error_abort);

    return bdrv_dirty_bitmap_sha256(b, &error_abort);
}

static BdrvDirtyBitmap *bitmap(const char *name)
{
    return qmp_lookup_bitmap("n0", name, NULL, NULL);
}

/* A fresh node n0 (1 MiB) with b1 (64 KiB, enabled, two chunks dirty) and
 * b2 (512 B, disabled, last sector dirty). */
static void setup(void)
{
    BlockDriverState *bs = bdrv_find_node("n0");

    if (bs) {
        ok(qmp_marshal_blockdev_del, "{\"node-name\": \"n0\"}");
    }
    ok(qmp_marshal_blockdev_add, "{\"driver\": \"null-co\", "
       "\"node-name\": \"n0\", \"size\": 1048576}");
    ok(qmp_marshal_block_dirty_bitmap_add,
       "{\"node\": \"n0\", \"name\": \"b1\"}");
    ok(qmp_marshal_block_dirty_bitmap_add, "{\"node\": \"n0\", "
       "\"name\": \"b2\", \"granularity\": 512, \"disabled\": true}");
    bdrv_set_dirty_bitmap(bitmap("b1"), 0, 1);
    bdrv_set_dirty_bitmap(bitmap("b1"), 512 * 1024, 70000);
    bdrv_set_dirty_bitmap(bitmap("b2"), 1048576 - 512, 512);
    g_assert_cmpuint(bdrv_get_dirty_count(bitmap("b1")), ==, 3 * 65536);
    g_assert_cmpuint(bdrv_get_dirty_count(bitmap("b2")), ==, 512);
}

static void test_failed_transaction_changes_nothing(void)
{
    static const char *const breakers[] = {
        "{\"type\": \"abort\", \"data\": {}}",
        "{\"type\": \"block-dirty-bitmap-clear\", "
        "\"data\": {\"node\": \"n0\", \"name\": \"nope\"}}",
        "{\"type\": \"block-dirty-bitmap-add\", "
        "\"data\": {\"node\": \"n0\", \"name\": \"t1\"}}",
        "{\"type\": \"block-dirty-bitmap-enable\", "
        "\"data\": {\"node\": \"n0\", \"name\": \"b2\"}}",
    };
    static const char *const errors[] = {
        "Transaction aborted using Abort action",
        "Dirty bitmap 'nope' not found",
        "Bitmap already exists: t1",
        "Bitmap 'b2' is currently in use by another operation and cannot "
        "be used",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(breakers); i++) {
        g_autofree char *s1 = NULL, *s2 = NULL, *a1 = NULL, *a2 = NULL;
        g_autofree char *args = NULL;

        setup();
        s1 = sha("n0", "b1");
        s2 = sha("n0", "b2");
        args = g_strdup_printf("{\"actions\": ["
            "{\"type\": \"block-dirty-bitmap-add\", "
            " \"data\": {\"node\": \"n0\", \"name\": \"t1\"}},"
            "{\"type\": \"block-dirty-bitmap-clear\", "
            " \"data\": {\"node\": \"n0\", \"name\": \"b1\"}},"
            "{\"type\": \"block-dirty-bitmap-enable\", "
            " \"data\": {\"node\": \"n0\", \"name\": \"b2\"}},"
            "{\"type\": \"block-dirty-bitmap-disable\", "
            " \"data\": {\"node\": \"n0\", \"name\": \"b1\"}},"
            "{\"type\": \"block-dirty-bitmap-merge\", "
            " \"data\": {\"node\": \"n0\", \"target\": \"b1\", "
            "            \"bitmaps\": [\"b2\"]}},"
            "{\"type\": \"block-dirty-bitmap-remove\", "
            " \"data\": {\"node\": \"n0\", \"name\": \"b2\"}},"
            "%s]}", breakers[i]);
        fails(qmp_marshal_transaction, args, errors[i]);

        /* Everything as before: contents, states, names. */
        a1 = sha("n0", "b1");
        a2 = sha("n0", "b2");
        g_assert_cmpstr(a1, ==, s1);
        g_assert_cmpstr(a2, ==, s2);
        g_assert_null(bitmap("t1"));
        g_assert_true(bdrv_dirty_bitmap_enabled(bitmap("b1")));
        g_assert_false(bdrv_dirty_bitmap_enabled(bitmap("b2")));
        g_assert_false(bdrv_dirty_bitmap_busy(bitmap("b2")));
        g_assert_false(bdrv_dirty_bitmap_get_skip_store(bitmap("b2")));
        g_assert_cmpuint(bdrv_get_dirty_count(bitmap("b1")), ==, 3 * 65536);
    }
}

static void test_transaction_commits(void)
{
    setup();
    ok(qmp_marshal_transaction, "{\"actions\": ["
       "{\"type\": \"block-dirty-bitmap-clear\", "
       " \"data\": {\"node\": \"n0\", \"name\": \"b1\"}},"
       "{\"type\": \"block-dirty-bitmap-merge\", "
       " \"data\": {\"node\": \"n0\", \"target\": \"b1\", "
       "            \"bitmaps\": [\"b2\"]}},"
       "{\"type\": \"block-dirty-bitmap-add\", "
       " \"data\": {\"node\": \"n0\", \"name\": \"t1\", \"disabled\": true}},"
       "{\"type\": \"block-dirty-bitmap-remove\", "
       " \"data\": {\"node\": \"n0\", \"name\": \"b2\"}}]}");
    /* b2's last sector lands in b1's last 64 KiB chunk. */
    g_assert_cmpuint(bdrv_get_dirty_count(bitmap("b1")), ==, 65536);
    g_assert_true(bdrv_dirty_bitmap_get(bitmap("b1"), 1048576 - 1));
    g_assert_false(bdrv_dirty_bitmap_get(bitmap("b1"), 0));
    g_assert_null(bitmap("b2"));
    g_assert_nonnull(bitmap("t1"));
    g_assert_false(bdrv_dirty_bitmap_enabled(bitmap("t1")));

    fails(qmp_marshal_transaction, "{\"actions\": [{\"type\": "
          "\"block-dirty-bitmap-add\", \"data\": {\"node\": \"n0\", "
          "\"name\": \"g\"}}], \"properties\": {\"completion-mode\": "
          "\"grouped\"}}",
          "Action 'block-dirty-bitmap-add' does not support Transaction "
          "property completion-mode = grouped");
    g_assert_null(bitmap("g"));
    ok(qmp_marshal_transaction, "{\"actions\": []}");
}

static void test_merge(void)
{
    g_autofree char *before = NULL, *after = NULL;

    setup();
    before = sha("n0", "b1");
    /* QEMU 7.2 crashes here; we do nothing, successfully. */
    ok(qmp_marshal_block_dirty_bitmap_merge,
       "{\"node\": \"n0\", \"target\": \"b1\", \"bitmaps\": []}");
    after = sha("n0", "b1");
    g_assert_cmpstr(before, ==, after);

    /* A failing source leaves the target untouched even when an earlier
     * source merged fine. */
    ok(qmp_marshal_blockdev_add, "{\"driver\": \"null-co\", "
       "\"node-name\": \"n1\", \"size\": 2097152}");
    ok(qmp_marshal_block_dirty_bitmap_add,
       "{\"node\": \"n1\", \"name\": \"other\"}");
    fails(qmp_marshal_block_dirty_bitmap_merge,
          "{\"node\": \"n0\", \"target\": \"b1\", \"bitmaps\": [\"b2\", "
          "{\"node\": \"n1\", \"name\": \"other\"}]}",
          "Bitmaps are of different sizes (destination size is 1048576, "
          "source size is 2097152) and can't be merged");
    g_free(after);
    after = sha("n0", "b1");
    g_assert_cmpstr(before, ==, after);
    ok(qmp_marshal_block_dirty_bitmap_merge, "{\"node\": \"n0\", "
       "\"target\": \"b1\", \"bitmaps\": [\"b2\", {\"node\": \"n0\", "
       "\"name\": \"b2\"}]}");
    g_assert_cmpuint(bdrv_get_dirty_count(bitmap("b1")), ==, 4 * 65536);
    /* Merging leaves no scratch bitmap behind. */
    g_assert_cmpuint(g_list_length(bdrv_find_node("n0")->dirty_bitmaps),
                     ==, 2);
    ok(qmp_marshal_blockdev_del, "{\"node-name\": \"n1\"}");
}

static void test_state_checks(void)
{
    setup();
    bdrv_dirty_bitmap_set_busy(bitmap("b1"), true);
    fails(qmp_marshal_block_dirty_bitmap_clear,
          "{\"node\": \"n0\", \"name\": \"b1\"}",
          "Bitmap 'b1' is currently in use by another operation and cannot "
          "be used");
    fails(qmp_marshal_block_dirty_bitmap_remove,
          "{\"node\": \"n0\", \"name\": \"b1\"}",
          "Bitmap 'b1' is currently in use by another operation and cannot "
          "be used");
    bdrv_dirty_bitmap_set_busy(bitmap("b1"), false);
    bdrv_dirty_bitmap_set_readonly(bitmap("b1"), true);
    fails(qmp_marshal_block_dirty_bitmap_clear,
          "{\"node\": \"n0\", \"name\": \"b1\"}",
          "Bitmap 'b1' is readonly and cannot be modified");
    /* enable / disable are allowed on readonly bitmaps */
    ok(qmp_marshal_block_dirty_bitmap_disable,
       "{\"node\": \"n0\", \"name\": \"b1\"}");
    g_assert_false(bdrv_dirty_bitmap_enabled(bitmap("b1")));
    /* a readonly bitmap may be a merge source */
    ok(qmp_marshal_block_dirty_bitmap_merge,
       "{\"node\": \"n0\", \"target\": \"b2\", \"bitmaps\": [\"b1\"]}");
    bdrv_dirty_bitmap_set_readonly(bitmap("b1"), false);
    bdrv_dirty_bitmap_set_inconsistent(bitmap("b2"));
    fails(qmp_marshal_block_dirty_bitmap_enable,
          "{\"node\": \"n0\", \"name\": \"b2\"}",
          "Bitmap 'b2' is inconsistent and cannot be used");
    /* removing is the cure for an inconsistent bitmap */
    ok(qmp_marshal_block_dirty_bitmap_remove,
       "{\"node\": \"n0\", \"name\": \"b2\"}");
    g_assert_null(bitmap("b2"));
    fails(qmp_marshal_block_dirty_bitmap_add, "{\"node\": \"n0\", "
          "\"name\": \"p\", \"persistent\": true}",
          "Can't store persistent bitmaps to n0: Operation not supported");
}

static void test_blockdev(void)
{
    json_t *ret;

    setup();
    fails(qmp_marshal_blockdev_add, "{\"driver\": \"null-co\"}",
          "'node-name' must be specified for the root node");
    fails(qmp_marshal_blockdev_add, "{\"driver\": \"null-co\", "
          "\"node-name\": \"n0\"}", "Duplicate nodes with node-name='n0'");
    ok(qmp_marshal_blockdev_add, "{\"driver\": \"raw\", "
       "\"node-name\": \"r0\", \"file\": \"n0\"}");
    fails(qmp_marshal_blockdev_del, "{\"node-name\": \"n0\"}",
          "Block device n0 is in use");
    ret = call(qmp_marshal_x_debug_query_block_graph, "{}", NULL);
    g_assert_cmpuint(json_array_size(json_object_get(ret, "edges")), ==, 1);
    json_decref(ret);
    ok(qmp_marshal_blockdev_del, "{\"node-name\": \"r0\"}");
    fails(qmp_marshal_blockdev_del, "{\"node-name\": \"r0\"}",
          "Failed to find node with node-name='r0'");
    /* QEMU 7.2 aborts on an empty list. */
    ok(qmp_marshal_blockdev_reopen, "{\"options\": []}");
    fails(qmp_marshal_blockdev_reopen, "{\"options\": [{\"driver\": "
          "\"null-co\", \"node-name\": \"nope\"}]}",
          "Failed to find node with node-name='nope'");

    /* A file node, reopened read-only and back. */
    {
        g_autofree char *dir = g_dir_make_tmp("qbqmp-XXXXXX", NULL);
        g_autofree char *path = g_build_filename(dir, "img", NULL);
        g_autofree char *add = NULL, *ro = NULL, *rw = NULL;

        g_assert_true(g_file_set_contents(path, "", 0, NULL));
        g_assert_cmpint(truncate(path, 1048576), ==, 0);
        add = g_strdup_printf("{\"driver\": \"file\", \"node-name\": "
                              "\"f0\", \"filename\": \"%s\"}", path);
        ro = g_strdup_printf("{\"options\": [{\"driver\": \"file\", "
                             "\"node-name\": \"f0\", \"filename\": \"%s\", "
                             "\"read-only\": true}]}", path);
        rw = g_strdup_printf("{\"options\": [{\"driver\": \"file\", "
                             "\"node-name\": \"f0\", \"filename\": \"%s\"}]}",
                             path);
        ok(qmp_marshal_blockdev_add, add);
        ok(qmp_marshal_blockdev_reopen, ro);
        g_assert_true(bdrv_is_read_only(bdrv_find_node("f0")));
        ret = call(qmp_marshal_query_named_block_nodes, "{\"flat\": true}",
                   NULL);
        g_assert_cmpuint(json_array_size(ret), ==, 2);
        g_assert_cmpstr(json_string_value(json_object_get(
            json_array_get(ret, 0), "node-name")), ==, "f0");
        g_assert_true(json_is_true(json_object_get(json_array_get(ret, 0),
                                                   "ro")));
        json_decref(ret);
        ok(qmp_marshal_blockdev_reopen, rw);
        g_assert_false(bdrv_is_read_only(bdrv_find_node("f0")));
        ok(qmp_marshal_blockdev_del, "{\"node-name\": \"f0\"}");
        unlink(path);
        rmdir(dir);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    bdrv_register_builtin_drivers();
    g_test_add_func("/qmp/transaction/failure-changes-nothing",
                    test_failed_transaction_changes_nothing);
    g_test_add_func("/qmp/transaction/commit", test_transaction_commits);
    g_test_add_func("/qmp/bitmap/merge", test_merge);
    g_test_add_func("/qmp/bitmap/state-checks", test_state_checks);
    g_test_add_func("/qmp/blockdev", test_blockdev);
    return g_test_run();
}
