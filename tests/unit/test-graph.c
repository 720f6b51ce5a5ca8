/*
 * Unit tests for block/graph.c: opening nodes from options, json: and plain
 * filenames, protocol selection and format probing, generic options and
 * their error texts, node names, child references, backing files, edges
 * (attach, replace, cycles, frozen links), limits and reference counting.
 * Uses the in-memory drivers of fake-block-drivers.h.
 */
#include "fake-block-drivers.h"

static void test_open_protocol(void)
{
    BlockDriverState *bs = open_json("{\"driver\":\"fproto\","
                                     "\"node-name\":\"p0\",\"size\":\"4k\"}",
                                     0, &error_abort);

    g_assert_cmpstr(bdrv_get_node_name(bs), ==, "p0");
    g_assert_cmpstr(bdrv_get_format_name(bs), ==, "fproto");
    g_assert_cmpint(bdrv_getlength(bs), ==, 4096);
    g_assert_true(bdrv_is_read_only(bs));
    g_assert_false(bs->auto_node_name);
    g_assert_true(bdrv_find_node("p0") == bs);
    g_assert_true(bdrv_lookup_bs("p0", "p0", &error_abort) == bs);
    g_assert_cmpint(bs->refcnt, ==, 1);
    bdrv_unref(bs);
    g_assert_null(bdrv_find_node("p0"));
    assert_no_nodes();
}

static void test_auto_node_name(void)
{
    BlockDriverState *bs = open_json("{\"driver\":\"fproto\"}", BDRV_O_RDWR,
                                     &error_abort);

    g_assert_true(bs->auto_node_name);
    g_assert_true(g_regex_match_simple("^#block[0-9]{5}$", bs->node_name,
                                       0, 0));
    g_assert_true(bdrv_is_writable(bs));
    bdrv_unref(bs);
}

static void test_node_names(void)
{
    Error *err = NULL;
    BlockDriverState *bs;

    g_assert_true(bdrv_node_name_is_valid("a-b.c_9"));
    g_assert_false(bdrv_node_name_is_valid("#bad"));
    g_assert_false(bdrv_node_name_is_valid("9a"));
    g_assert_false(bdrv_node_name_is_valid(""));

    g_assert_null(open_json("{\"driver\":\"fproto\",\"node-name\":\"#bad\"}",
                            0, &err));
    assert_error(err, "Invalid node-name: '#bad'");
    g_assert_null(open_json("{\"driver\":\"fproto\",\"node-name\":"
                            "\"a234567890123456789012345678901234\"}",
                            0, &err));
    assert_error(err, "Node name too long");
    /* 31 characters still fit. */
    bs = open_json("{\"driver\":\"fproto\",\"node-name\":"
                   "\"a234567890123456789012345678901\"}", 0, &error_abort);
    bdrv_unref(bs);

    bs = open_json("{\"driver\":\"fproto\",\"node-name\":\"f0\"}", 0,
                   &error_abort);
    g_assert_null(open_json("{\"driver\":\"fproto\",\"node-name\":\"f0\"}",
                            0, &err));
    assert_error(err, "Duplicate nodes with node-name='f0'");
    /* A child with the parent's name fails too, and leaves nothing. */
    g_assert_null(open_json("{\"driver\":\"fmt\",\"node-name\":\"x\","
                            "\"file\":{\"driver\":\"fproto\","
                            "\"node-name\":\"x\"}}", 0, &err));
    assert_error(err, "Duplicate nodes with node-name='x'");
    g_assert_true(bdrv_next_all_nodes(NULL) == bs);
    g_assert_null(bdrv_next_all_nodes(bs));
    bdrv_unref(bs);
    assert_no_nodes();
}

static void test_unsupported_options(void)
{
    Error *err = NULL;

    g_assert_null(open_json("{\"driver\":\"fproto\",\"foo\":1}", 0, &err));
    assert_error(err, "Block protocol 'fproto' doesn't support the option "
                 "'foo'");
    g_assert_null(open_json("{\"driver\":\"fmt\",\"bar\":1,\"file\":"
                            "{\"driver\":\"fproto\"}}", 0, &err));
    assert_error(err, "Block format 'fmt' does not support the option 'bar'");
    g_assert_null(open_json("{\"driver\":\"fmt\",\"file\":"
                            "{\"driver\":\"fproto\",\"x\":1}}", 0, &err));
    assert_error(err, "Block protocol 'fproto' doesn't support the option "
                 "'x'");
    g_assert_null(open_json("{\"driver\":\"nosuch\"}", 0, &err));
    assert_error(err, "Unknown driver 'nosuch'");
    /* A protocol node does not take a file child. */
    g_assert_null(open_json("{\"driver\":\"fproto\",\"file\":\"x\"}", 0,
                            &err));
    assert_error(err, "Block protocol 'fproto' doesn't support the option "
                 "'file'");
    /* A format needs its file. */
    g_assert_null(open_json("{\"driver\":\"fmt\",\"filename\":\"/x\"}", 0,
                            &err));
    assert_error(err, "A block device must be specified for \"file\"");
    g_assert_null(open_json("{\"driver\":\"fproto\",\"size\":\"big\"}", 0,
                            &err));
    assert_error(err, "Parameter 'size' expects a non-negative number "
                 "below 2^64");
    assert_no_nodes();
}

static void test_generic_options(void)
{
    Error *err = NULL;
    BlockDriverState *bs;

    bs = open_json("{\"driver\":\"fproto\",\"read-only\":\"off\","
                   "\"cache\":{\"direct\":true,\"no-flush\":\"on\"},"
                   "\"discard\":\"unmap\",\"detect-zeroes\":\"unmap\"}",
                   0, &error_abort);
    g_assert_false(bdrv_is_read_only(bs));
    g_assert_cmphex(bs->open_flags & (BDRV_O_RDWR | BDRV_O_NOCACHE |
                                      BDRV_O_NO_FLUSH | BDRV_O_UNMAP), ==,
                    BDRV_O_RDWR | BDRV_O_NOCACHE | BDRV_O_NO_FLUSH |
                    BDRV_O_UNMAP);
    g_assert_cmpint(bs->detect_zeroes, ==, BLOCKDEV_DETECT_ZEROES_OPTIONS_UNMAP);
    bdrv_unref(bs);

    /* Options override flags; read-only=on beats BDRV_O_RDWR. */
    bs = open_json("{\"driver\":\"fproto\",\"read-only\":true,"
                   "\"force-share\":true}", BDRV_O_RDWR, &error_abort);
    g_assert_true(bdrv_is_read_only(bs));
    g_assert_true(bs->force_share);
    bdrv_unref(bs);

    g_assert_null(open_json("{\"driver\":\"fproto\",\"force-share\":\"on\"}",
                            BDRV_O_RDWR, &err));
    assert_error(err, "force-share=on can only be used with read-only "
                 "images");
    g_assert_null(open_json("{\"driver\":\"fproto\",\"discard\":\"maybe\"}",
                            0, &err));
    assert_error(err, "Invalid discard option");
    g_assert_null(open_json("{\"driver\":\"fproto\",\"detect-zeroes\":"
                            "\"unmap\"}", 0, &err));
    assert_error(err, "setting detect-zeroes to unmap is not allowed "
                 "without setting discard operation to unmap");
    g_assert_null(open_json("{\"driver\":\"fproto\",\"detect-zeroes\":"
                            "\"maybe\"}", 0, &err));
    assert_error(err, "invalid parameter value: maybe");
    g_assert_null(open_json("{\"driver\":\"fproto\",\"read-only\":\"maybe\"}",
                            0, &err));
    assert_error(err, "Parameter 'read-only' expects 'on' or 'off'");
    g_assert_null(open_json("{\"driver\":\"fproto\",\"cache\":"
                            "{\"direct\":5}}", 0, &err));
    assert_error(err, "Parameter 'cache.direct' expects 'on' or 'off'");
    g_assert_null(open_json("{\"driver\":\"fproto\",\"cache\":"
                            "{\"foo\":5}}", 0, &err));
    assert_error(err, "Block protocol 'fproto' doesn't support the option "
                 "'cache.foo'");
    assert_no_nodes();
}

static void test_json_filename(void)
{
    Error *err = NULL;
    BlockDriverState *bs;

    bs = bdrv_open("json:{\"driver\":\"fmt\",\"node-name\":\"j0\","
                   "\"file.driver\":\"fproto\",\"file.size\":\"8k\","
                   "\"file.node-name\":\"j1\"}", NULL, NULL, 0,
                   &error_abort);
    g_assert_cmpstr(bs->node_name, ==, "j0");
    g_assert_nonnull(bs->file);
    g_assert_cmpstr(bs->file->bs->node_name, ==, "j1");
    g_assert_cmpstr(bs->file->name, ==, "file");
    g_assert_cmpint(bs->file->role, ==, BDRV_CHILD_IMAGE);
    g_assert_cmpint(bdrv_getlength(bs), ==, 8192);
    bdrv_unref(bs);
    assert_no_nodes();

    /* Explicit options win over those in the filename. */
    bs = bdrv_open("json:{\"driver\":\"fproto\",\"size\":\"8k\"}", NULL,
                   json_pack("{s:s}", "size", "16k"), 0, &error_abort);
    g_assert_cmpint(bdrv_getlength(bs), ==, 16384);
    bdrv_unref(bs);

    g_assert_null(bdrv_open("json:[1]", NULL, NULL, 0, &err));
    assert_error(err, "Invalid JSON object given");
    assert_no_nodes();
}

static void test_filename_and_probe(void)
{
    Error *err = NULL;
    BlockDriverState *bs;

    /* Probed: the protocol comes from the prefix, the format from data. */
    bs = bdrv_open("fproto:/img/top", NULL,
                   json_pack("{s:{s:s}}", "file", "magic", "FMT!"), 0,
                   &error_abort);
    g_assert_cmpstr(bdrv_get_format_name(bs), ==, "fmt");
    g_assert_cmpstr(bdrv_get_format_name(bs->file->bs), ==, "fproto");
    g_assert_cmpstr(bs->file->bs->filename, ==, "/img/top");
    g_assert_cmpstr(bs->filename, ==, "/img/top");
    g_assert_true(bs->file->bs->auto_node_name);
    bdrv_unref(bs);
    assert_no_nodes();

    /* Nothing recognises the data: raw. */
    bs = bdrv_open("fproto:/img/plain", NULL, NULL, 0, &error_abort);
    g_assert_cmpstr(bdrv_get_format_name(bs), ==, "raw");
    bdrv_unref(bs);

    /* A plain path uses the "file" protocol. */
    bs = bdrv_open("/some/path", NULL, json_pack("{s:s}", "driver", "fmt"),
                   0, &error_abort);
    g_assert_cmpstr(bdrv_get_format_name(bs->file->bs), ==, "file");
    g_assert_cmpstr(bs->file->bs->filename, ==, "/some/path");
    bdrv_unref(bs);

    g_assert_null(bdrv_open("nbdx://host/x", NULL, NULL, 0, &err));
    assert_error(err, "Unknown protocol 'nbdx'");
    g_assert_null(bdrv_open("fproto:/nonexistent", NULL,
                            json_pack("{s:s}", "driver", "fmt"), 0, &err));
    assert_error(err, "Could not open '/nonexistent': No such file or "
                 "directory");
    g_assert_null(bdrv_open(NULL, NULL, NULL, 0, &err));
    assert_error(err, "Must specify either driver or file");
    assert_no_nodes();
}

static void test_child_reference(void)
{
    Error *err = NULL;
    BlockDriverState *p0, *f0;
    GList *named;

    p0 = open_json("{\"driver\":\"fproto\",\"node-name\":\"p0\"}", 0,
                   &error_abort);
    f0 = open_json("{\"driver\":\"fmt\",\"node-name\":\"f0\","
                   "\"file\":\"p0\"}", 0, &error_abort);
    g_assert_true(f0->file->bs == p0);
    g_assert_cmpint(p0->refcnt, ==, 2);
    g_assert_true(p0->parents->data == f0->file);

    named = bdrv_named_nodes_list();
    g_assert_cmpint(g_list_length(named), ==, 2);
    g_assert_true(named->data == f0);         /* newest first */
    g_assert_true(named->next->data == p0);
    g_list_free(named);

    g_assert_null(open_json("{\"driver\":\"fmt\",\"file\":\"nope\"}", 0,
                            &err));
    assert_error(err, "Cannot find device='nope' nor node-name='nope'");
    g_assert_null(bdrv_open(NULL, "p0", json_pack("{s:i}", "a", 1), 0, &err));
    assert_error(err, "Cannot reference an existing block device with "
                 "additional options or a new filename");
    g_assert_null(bdrv_lookup_bs(NULL, "zz", &err));
    assert_error(err, "Cannot find device='' nor node-name='zz'");

    bdrv_unref(f0);
    g_assert_cmpint(p0->refcnt, ==, 1);
    g_assert_null(p0->parents);
    bdrv_unref(p0);
    assert_no_nodes();
}

static void test_backing(void)
{
    Error *err = NULL;
    BlockDriverState *bs, *b;

    /* Relative backing names resolve against the image's directory. */
    bs = bdrv_open("fproto:/dir/top.img", NULL,
                   json_pack("{s:s,s:s,s:s}", "driver", "fmt",
                             "x-backing", "base.img",
                             "x-backing-fmt", "fproto"),
                   BDRV_O_RDWR, &error_abort);
    g_assert_nonnull(bs->backing);
    b = bs->backing->bs;
    g_assert_cmpstr(b->filename, ==, "/dir/base.img");
    g_assert_cmpstr(bs->backing->name, ==, "backing");
    g_assert_cmpint(bs->backing->role, ==, BDRV_CHILD_COW);
    g_assert_true(bdrv_is_read_only(b));
    g_assert_false(bdrv_is_read_only(bs));
    g_assert_true(bdrv_filter_or_cow_bs(bs) == b);
    g_assert_true(bdrv_backing_chain_next(bs) == b);
    g_assert_null(bdrv_backing_chain_next(b));
    bdrv_unref(bs);
    assert_no_nodes();

    /* backing: null means none. */
    bs = bdrv_open("fproto:/dir/top.img", NULL,
                   json_pack("{s:s,s:s,s:n}", "driver", "fmt",
                             "x-backing", "base.img", "backing"),
                   0, &error_abort);
    g_assert_null(bs->backing);
    bdrv_unref(bs);

    /* A reference to an existing node. */
    b = open_json("{\"driver\":\"fproto\",\"node-name\":\"b0\"}", 0,
                  &error_abort);
    bs = open_json("{\"driver\":\"fmt\",\"backing\":\"b0\","
                   "\"file\":{\"driver\":\"fproto\"}}", 0, &error_abort);
    g_assert_true(bs->backing->bs == b);
    bdrv_unref(bs);
    bdrv_unref(b);

    g_assert_null(bdrv_open("fproto:/dir/top.img", NULL,
                            json_pack("{s:s,s:s,s:s}", "driver", "fmt",
                                      "x-backing", "/nonexistent",
                                      "x-backing-fmt", "fproto"),
                            0, &err));
    assert_error(err, "Could not open backing file: Could not open "
                 "'/nonexistent': No such file or directory");
    g_assert_null(open_json("{\"driver\":\"fmt\",\"backing\":\"zz\","
                            "\"file\":{\"driver\":\"fproto\"}}", 0, &err));
    assert_error(err, "Could not open backing file: Cannot find "
                 "device='zz' nor node-name='zz'");
    g_assert_null(open_json("{\"driver\":\"fproto\",\"backing\":\"zz\"}", 0,
                            &err));
    assert_error(err, "Driver doesn't support backing files");
    /* ... but null is accepted by everyone. */
    bs = open_json("{\"driver\":\"fproto\",\"backing\":null}", 0,
                   &error_abort);
    bdrv_unref(bs);
    assert_no_nodes();
}

static void test_edges_cycles_frozen(void)
{
    Error *err = NULL;
    BlockDriverState *f0, *f1, *f2;

    f0 = open_json("{\"driver\":\"fmt\",\"node-name\":\"f0\","
                   "\"file\":{\"driver\":\"fproto\"}}", 0, &error_abort);
    f1 = open_json("{\"driver\":\"fmt\",\"node-name\":\"f1\","
                   "\"file\":{\"driver\":\"fproto\"}}", 0, &error_abort);
    f2 = open_json("{\"driver\":\"fmt\",\"node-name\":\"f2\","
                   "\"file\":{\"driver\":\"fproto\"}}", 0, &error_abort);

    g_assert_cmpint(bdrv_set_backing_hd(f0, f1, &error_abort), ==, 0);
    g_assert_true(f0->backing->bs == f1);
    g_assert_cmpint(f1->refcnt, ==, 2);
    g_assert_cmpint(bdrv_set_backing_hd(f1, f0, &err), <, 0);
    assert_error(err, "Making 'f0' a backing child of 'f1' would create a "
                 "cycle");
    g_assert_cmpint(bdrv_set_backing_hd(f0, f0, &err), <, 0);
    assert_error(err, "Making 'f0' a backing child of 'f0' would create a "
                 "cycle");
    g_assert_null(f1->backing);

    /* Frozen: neither replaced nor detached. */
    g_assert_cmpint(bdrv_freeze_child(f0->backing, &error_abort), ==, 0);
    g_assert_cmpint(bdrv_set_backing_hd(f0, f2, &err), <, 0);
    assert_error(err, "Cannot change frozen 'backing' link from 'f0' to "
                 "'f1'");
    g_assert_cmpint(bdrv_set_backing_hd(f0, NULL, &err), <, 0);
    assert_error(err, "Cannot change frozen 'backing' link from 'f0' to "
                 "'f1'");
    g_assert_cmpint(bdrv_replace_child(f0->backing, f2, &err), <, 0);
    assert_error(err, "Cannot change frozen 'backing' link from 'f0' to "
                 "'f1'");
    g_assert_true(f0->backing->bs == f1);
    bdrv_unfreeze_child(f0->backing);

    /* Replace keeps the edge and moves the reference. */
    g_assert_cmpint(bdrv_set_backing_hd(f0, f2, &error_abort), ==, 0);
    g_assert_true(f0->backing->bs == f2);
    g_assert_cmpint(f1->refcnt, ==, 1);
    g_assert_cmpint(f2->refcnt, ==, 2);
    g_assert_null(f1->parents);
    g_assert_cmpint(bdrv_set_backing_hd(f0, NULL, &error_abort), ==, 0);
    g_assert_null(f0->backing);
    g_assert_cmpint(f2->refcnt, ==, 1);

    bdrv_unref(f0);
    bdrv_unref(f1);
    bdrv_unref(f2);
    assert_no_nodes();
}

static void test_replace_node(void)
{
    Error *err = NULL;
    BlockDriverState *p0, *p1, *f0;
    FakeUser *u;

    p0 = open_json("{\"driver\":\"fproto\",\"node-name\":\"p0\"}", 0,
                   &error_abort);
    p1 = open_json("{\"driver\":\"fproto\",\"node-name\":\"p1\"}", 0,
                   &error_abort);
    f0 = open_json("{\"driver\":\"fmt\",\"node-name\":\"f0\","
                   "\"file\":\"p0\"}", 0, &error_abort);
    u = fake_user_new(p0, "dev", BLK_PERM_CONSISTENT_READ, BLK_PERM_ALL,
                      &error_abort);
    g_assert_cmpint(bdrv_replace_node(p0, p1, &error_abort), ==, 0);
    g_assert_true(f0->file->bs == p1);
    g_assert_true(u->c->bs == p1);
    g_assert_null(p0->parents);
    g_assert_cmpint(p0->refcnt, ==, 1);
    g_assert_cmpint(p1->refcnt, ==, 3);

    /* A frozen parent edge stops the whole move. */
    bdrv_freeze_child(f0->file, &error_abort);
    g_assert_cmpint(bdrv_replace_node(p1, p0, &err), <, 0);
    assert_error(err, "Cannot change 'file' link to 'p1'");
    g_assert_true(u->c->bs == p1);
    bdrv_unfreeze_child(f0->file);

    fake_user_free(u);
    bdrv_unref(f0);
    bdrv_unref(p0);
    bdrv_unref(p1);
    assert_no_nodes();
}

static void test_limits_and_length(void)
{
    BlockDriverState *bs;

    bs = open_json("{\"driver\":\"fmt\",\"file\":{\"driver\":\"fproto\","
                   "\"align\":\"4096\",\"size\":\"1000\"}}", 0,
                   &error_abort);
    g_assert_cmpuint(bs->file->bs->bl.request_alignment, ==, 4096);
    /* Formats are byte-granular: io.c does RMW below them. */
    g_assert_cmpuint(bs->bl.request_alignment, ==, 1);
    /* Sizes are whole sectors, rounded up, as QEMU reports them. */
    g_assert_cmpint(bdrv_getlength(bs->file->bs), ==, 1024);
    g_assert_cmpint(bs->total_sectors, ==, 2);
    bdrv_set_size(bs, 4096);
    g_assert_cmpint(bs->total_sectors, ==, 8);
    bdrv_unref(bs);
    assert_no_nodes();
}

static void test_filter(void)
{
    BlockDriverState *bs = open_json("{\"driver\":\"ffilter\","
                                     "\"file\":{\"driver\":\"fproto\","
                                     "\"node-name\":\"p0\"}}",
                                     0, &error_abort);

    g_assert_cmpint(bs->file->role, ==,
                    BDRV_CHILD_FILTERED | BDRV_CHILD_PRIMARY);
    g_assert_true(bdrv_filter_or_cow_bs(bs) == bs->file->bs);
    g_assert_cmpint(bdrv_getlength(bs), ==, MiB);
    bdrv_unref(bs);
    assert_no_nodes();
}

static void test_filenames(void)
{
    BlockDriverState *bs, *b0;

    /* A plain protocol node is named by its filename. */
    bs = open_json("{\"driver\":\"fproto\",\"filename\":\"/a\"}", 0,
                   &error_abort);
    g_assert_cmpstr(bs->filename, ==, "/a");
    bdrv_unref(bs);
    /* Strong options make it a json: filename (QEMU's member order). */
    bs = open_json("{\"driver\":\"fproto\",\"filename\":\"/a\","
                   "\"size\":\"4k\"}", 0, &error_abort);
    g_assert_cmpstr(bs->filename, ==, "json:{\"driver\": \"fproto\", "
                    "\"filename\": \"/a\", \"size\": \"4k\"}");
    bdrv_unref(bs);
    /* A format with default options takes its file's name... */
    bs = bdrv_open("fproto:/img/f", NULL,
                   json_pack("{s:s}", "driver", "fmt"), 0, &error_abort);
    g_assert_cmpstr(bs->filename, ==, "/img/f");
    bdrv_unref(bs);
    /* ... unless its backing file was overridden by the user. */
    b0 = open_json("{\"driver\":\"fproto\",\"node-name\":\"b0\","
                   "\"filename\":\"/b\"}", 0, &error_abort);
    bs = bdrv_open("fproto:/img/f", NULL,
                   json_pack("{s:s,s:s}", "driver", "fmt", "backing", "b0"),
                   0, &error_abort);
    g_assert_true(g_str_has_prefix(bs->filename, "json:{"));
    g_assert_nonnull(strstr(bs->filename, "\"backing\": {\"driver\": "
                            "\"fproto\", \"filename\": \"/b\"}"));
    bdrv_unref(bs);
    bdrv_unref(b0);
    assert_no_nodes();
}

static void count_format(void *opaque, const char *name)
{
    GString *s = opaque;
    g_string_append_printf(s, "%s,", name);
}

static void test_registry(void)
{
    g_autoptr(GString) s = g_string_new(NULL);

    g_assert_true(bdrv_find_format("fmt") == &bdrv_fmt);
    g_assert_null(bdrv_find_format("nosuch"));
    bdrv_iterate_format(count_format, s, false);
    /* Sorted, and "file" only once although two drivers claim it. */
    g_assert_nonnull(strstr(s->str, "ffilter,file,"));
    g_assert_null(strstr(strstr(s->str, "file,") + 1, ",file,"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    fake_drivers_register();
    bdrv_register_builtin_drivers();
    g_test_add_func("/graph/open-protocol", test_open_protocol);
    g_test_add_func("/graph/auto-node-name", test_auto_node_name);
    g_test_add_func("/graph/node-names", test_node_names);
    g_test_add_func("/graph/unsupported-options", test_unsupported_options);
    g_test_add_func("/graph/generic-options", test_generic_options);
    g_test_add_func("/graph/json-filename", test_json_filename);
    g_test_add_func("/graph/filename-and-probe", test_filename_and_probe);
    g_test_add_func("/graph/child-reference", test_child_reference);
    g_test_add_func("/graph/backing", test_backing);
    g_test_add_func("/graph/edges-cycles-frozen", test_edges_cycles_frozen);
    g_test_add_func("/graph/replace-node", test_replace_node);
    g_test_add_func("/graph/limits-and-length", test_limits_and_length);
    g_test_add_func("/graph/filter", test_filter);
    g_test_add_func("/graph/registry", test_registry);
    g_test_add_func("/graph/filenames", test_filenames);
    return g_test_run();
}
