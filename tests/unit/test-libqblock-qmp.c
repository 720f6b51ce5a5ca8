/*
 * libqblock's in-process QMP (qblock_qmp_execute, events, qblock_open_node,
 * qblock_shutdown), through the public header only.  The expected error
 * replies were taken from QEMU 7.2's qemu-storage-daemon fed the same
 * input on its monitor; they must stay byte-identical.
 */
#include "qblock/qblock.h"
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>

/* Run cmd; check the reply text and the return value / error object. */
static void expect(const char *cmd, const char *want_reply, int want_ret,
                   const char *want_class)
{
    QBlockError *err = NULL;
    char *reply = NULL;
    int ret = qblock_qmp_execute(cmd, &reply, &err);

    g_assert_cmpstr(reply, ==, want_reply);
    g_assert_cmpint(ret, ==, want_ret);
    if (want_ret < 0) {
        g_assert_nonnull(err);
        g_assert_cmpstr(qblock_error_class(err), ==, want_class);
        /* The desc is the one inside the reply. */
        g_assert_nonnull(strstr(reply, qblock_error_message(err)));
    } else {
        g_assert_null(err);
    }
    qblock_error_free(err);
    qblock_free(reply);
}

static void test_error_replies(void)
{
    expect("{\"execute\": }",
           "{\"error\": {\"class\": \"GenericError\", \"desc\": "
           "\"JSON parse error, expecting value\"}}", -1, "GenericError");
    expect("[1]",
           "{\"error\": {\"class\": \"GenericError\", \"desc\": "
           "\"QMP input must be a JSON object\"}}", -1, "GenericError");
    expect("{\"execute\": \"no-such-command\", \"id\": \"x1\"}",
           "{\"id\": \"x1\", \"error\": {\"class\": \"CommandNotFound\", "
           "\"desc\": \"The command no-such-command has not been found\"}}",
           -1, "CommandNotFound");
    expect("{\"execute\": \"query-jobs\", \"arguments\": {\"bogus\": 1}}",
           "{\"error\": {\"class\": \"GenericError\", \"desc\": "
           "\"Parameter 'bogus' is unexpected\"}}", -1, "GenericError");
    expect("{\"execute\": \"block-dirty-bitmap-add\", "
           "\"arguments\": {\"node\": 5, \"name\": \"b\"}}",
           "{\"error\": {\"class\": \"GenericError\", \"desc\": "
           "\"Invalid parameter type for 'node', expected: string\"}}",
           -1, "GenericError");
    expect("{\"execute\": \"block-dirty-bitmap-add\", "
           "\"arguments\": {\"node\": \"nope\", \"name\": \"b\"}}",
           "{\"error\": {\"class\": \"GenericError\", \"desc\": "
           "\"Cannot find device='nope' nor node-name='nope'\"}}",
           -1, "GenericError");
    expect("{\"execute\": \"blockdev-add\", "
           "\"arguments\": {\"node-name\": \"n\"}}",
           "{\"error\": {\"class\": \"GenericError\", \"desc\": "
           "\"Parameter 'driver' is missing\"}}", -1, "GenericError");
    expect("{\"arguments\": {}}",
           "{\"error\": {\"class\": \"GenericError\", \"desc\": "
           "\"QMP input lacks member 'execute'\"}}", -1, "GenericError");
    /* Inputs only a string (not a stream) can have: library texts. */
    expect("",
           "{\"error\": {\"class\": \"GenericError\", \"desc\": "
           "\"JSON parse error, premature end of input\"}}",
           -1, "GenericError");
    expect("{\"execute\": \"query-jobs\"",
           "{\"error\": {\"class\": \"GenericError\", \"desc\": "
           "\"JSON parse error, premature end of input\"}}",
           -1, "GenericError");
    expect("{\"execute\": \"query-jobs\"} {\"execute\": \"query-jobs\"}",
           "{\"error\": {\"class\": \"GenericError\", \"desc\": "
           "\"QMP input must be a single JSON text\"}}", -1, "GenericError");

    /* NULL command: no reply, only the error object. */
    {
        QBlockError *err = NULL;
        char *reply = (char *)"unchanged";

        g_assert_cmpint(qblock_qmp_execute(NULL, &reply, &err), ==, -1);
        g_assert_null(reply);
        g_assert_nonnull(err);
        qblock_error_free(err);
    }
}

static void test_success_replies(void)
{
    /* No negotiation needed; sending it anyway is harmless. */
    expect("{\"execute\": \"qmp_capabilities\"}", "{\"return\": {}}", 0, NULL);
    expect("{\"execute\": \"qmp_capabilities\"}", "{\"return\": {}}", 0, NULL);
    expect("{\"execute\": \"query-jobs\", \"id\": 3}",
           "{\"return\": [], \"id\": 3}", 0, NULL);
    /* Single quotes are accepted, as on the daemon's monitor. */
    expect("{'execute': 'query-jobs'}", "{\"return\": []}", 0, NULL);
    /* reply may be NULL when only the status matters. */
    g_assert_cmpint(qblock_qmp_execute("{\"execute\": \"query-jobs\"}", NULL,
                                       NULL), ==, 0);
    g_assert_cmpint(qblock_qmp_execute("{\"execute\": \"nope\"}", NULL,
                                       NULL), ==, -1);
}

static void test_open_node(void)
{
    QBlockError *err = NULL;
    char buf[512], back[512];
    QBlock *qb;

    qb = qblock_open_node("nn0", QBLOCK_OPEN_RDWR, &err);
    g_assert_null(qb);
    g_assert_nonnull(err);
    g_assert_cmpstr(qblock_error_class(err), ==, "GenericError");
    qblock_error_free(err);
    err = NULL;

    expect("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": "
           "\"null-co\", \"node-name\": \"nn0\", \"size\": 1048576, "
           "\"read-zeroes\": true}}", "{\"return\": {}}", 0, NULL);
    qb = qblock_open_node("nn0", QBLOCK_OPEN_RDWR, &err);
    g_assert_null(err);
    g_assert_nonnull(qb);
    g_assert_cmpint(qblock_get_length(qb), ==, 1048576);
    memset(buf, 0xab, sizeof(buf));
    g_assert_cmpint(qblock_pwrite(qb, 4096, buf, sizeof(buf), 0), ==, 0);
    memset(back, 0x11, sizeof(back));
    g_assert_cmpint(qblock_pread(qb, 4096, back, sizeof(back)), ==, 0);
    /* null-co with read-zeroes: the data is dropped, reads give zeroes. */
    g_assert_cmpint(back[0], ==, 0);
    g_assert_cmpint(back[511], ==, 0);
    qblock_close(qb);

    /* The node outlives the handle: QMP still holds it.  While a handle
     * uses it, blockdev-del refuses. */
    qb = qblock_open_node("nn0", 0, &err);
    g_assert_nonnull(qb);
    {
        char *reply = NULL;

        g_assert_cmpint(qblock_qmp_execute("{\"execute\": \"blockdev-del\", "
                                           "\"arguments\": {\"node-name\": "
                                           "\"nn0\"}}", &reply, NULL), ==, -1);
        g_test_message("blockdev-del with a handle open: %s", reply);
        qblock_free(reply);
    }
    qblock_close(qb);
    expect("{\"execute\": \"blockdev-del\", "
           "\"arguments\": {\"node-name\": \"nn0\"}}", "{\"return\": {}}",
           0, NULL);
    qb = qblock_open_node("nn0", 0, &err);
    g_assert_null(qb);
    qblock_error_free(err);
}

static GPtrArray *events;

static void on_event(const char *event_json, void *opaque)
{
    g_assert(opaque == &events);
    g_ptr_array_add(events, g_strdup(event_json));
}

/* Index of the first event naming status after from, or -1. */
static int find_status(const char *status, guint from)
{
    g_autofree char *needle = g_strdup_printf("\"data\": {\"status\": \"%s\","
                                              " \"id\": \"j0\"}", status);

    for (guint i = from; i < events->len; i++) {
        const char *e = events->pdata[i];

        if (strstr(e, "\"event\": \"JOB_STATUS_CHANGE\"") &&
            strstr(e, needle)) {
            return i;
        }
    }
    return -1;
}

static void test_events_and_shutdown(void)
{
    g_autofree char *dir = g_dir_make_tmp("libqblock-qmp-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "f.raw", NULL);
    g_autofree char *cmd = NULL;
    gint64 deadline;
    int created, concluded;
    QBlock *qb;

    events = g_ptr_array_new_with_free_func(g_free);
    qblock_qmp_set_event_handler(on_event, &events);

    cmd = g_strdup_printf("{\"execute\": \"blockdev-create\", \"arguments\": "
                          "{\"job-id\": \"j0\", \"options\": {\"driver\": "
                          "\"file\", \"filename\": \"%s\", \"size\": 65536}}}",
                          path);
    expect(cmd, "{\"return\": {}}", 0, NULL);
    /* Raised while the command ran: delivered before it returned. */
    created = find_status("created", 0);
    g_assert_cmpint(created, ==, 0);
    g_assert_nonnull(strstr(events->pdata[0], "{\"timestamp\": "
                            "{\"seconds\": "));
    deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
    while (find_status("concluded", 0) < 0 &&
           g_get_monotonic_time() < deadline) {
        qblock_poll(true);
    }
    concluded = find_status("concluded", 0);
    g_assert_cmpint(concluded, >, created);
    expect("{\"execute\": \"job-dismiss\", \"arguments\": {\"id\": \"j0\"}}",
           "{\"return\": {}}", 0, NULL);
    g_assert_cmpint(find_status("null", concluded), >, concluded);
    g_assert(g_file_test(path, G_FILE_TEST_EXISTS));

    /* Shutdown closes handles and QMP nodes alike. */
    g_free(cmd);
    cmd = g_strdup_printf("{\"execute\": \"blockdev-add\", \"arguments\": "
                          "{\"driver\": \"file\", \"node-name\": \"f0\", "
                          "\"filename\": \"%s\"}}", path);
    expect(cmd, "{\"return\": {}}", 0, NULL);
    qb = qblock_open_node("f0", QBLOCK_OPEN_RDWR, NULL);
    g_assert_nonnull(qb);
    g_assert_cmpint(qblock_pwrite(qb, 0, "abcd", 4, 0), ==, 0);
    qblock_shutdown();
    expect("{\"execute\": \"query-named-block-nodes\"}", "{\"return\": []}",
           0, NULL);
    /* Still usable after shutdown: the node can be added again. */
    expect(cmd, "{\"return\": {}}", 0, NULL);
    qb = qblock_open_node("f0", 0, NULL);
    g_assert_nonnull(qb);
    {
        char back[4];

        g_assert_cmpint(qblock_pread(qb, 0, back, 4), ==, 0);
        g_assert(!memcmp(back, "abcd", 4));
    }
    qblock_shutdown();

    qblock_qmp_set_event_handler(NULL, NULL);
    g_ptr_array_free(events, TRUE);
    events = NULL;
    g_unlink(path);
    g_rmdir(dir);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_assert_cmpint(qblock_init(NULL), ==, 0);
    g_test_add_func("/libqblock-qmp/error-replies", test_error_replies);
    g_test_add_func("/libqblock-qmp/success-replies", test_success_replies);
    g_test_add_func("/libqblock-qmp/open-node", test_open_node);
    g_test_add_func("/libqblock-qmp/events-and-shutdown",
                    test_events_and_shutdown);
    return g_test_run();
}
