/*
 * Tests of the QMP monitor (monitor/): framing of a byte stream into
 * messages, the request envelope checks and their QEMU texts, capability
 * negotiation, id echo, events before replies and only to negotiated
 * monitors, hostile input, and a session over a real unix socket chardev.
 * The monitor dispatches through a small test command table here, so these
 * tests do not depend on the generated QAPI commands.
 */
#include "monitor/monitor.h"
#include <sys/socket.h>
#include <sys/un.h>

/* ---- a tiny command table ---- */

static void cmd_echo(json_t *args, json_t **ret, Error **errp)
{
    *ret = args ? json_incref(args) : json_object();
}

static void cmd_fail(json_t *args, json_t **ret, Error **errp)
{
    error_setg(errp, "it failed");
}

static void cmd_emit(json_t *args, json_t **ret, Error **errp)
{
    monitor_emit_event("TEST_EVENT", json_pack("{s:s}", "id", "x"));
    *ret = json_object();
}

static void cmd_noreply(json_t *args, json_t **ret, Error **errp)
{
    *ret = json_object();
}

static const QmpCommand test_table[] = {
    { "echo", cmd_echo, QCO_NO_OPTIONS, 0 },
    { "fail", cmd_fail, QCO_NO_OPTIONS, 0 },
    { "emit", cmd_emit, QCO_NO_OPTIONS, 0 },
    { "noreply", cmd_noreply, QCO_NO_SUCCESS_RESP, 0 },
    { NULL, NULL, 0, 0 },
};

/* ---- client helpers ---- */

typedef struct Client {
    int fd;
    GString *in;
} Client;

static void client_send(Client *c, const char *text)
{
    size_t len = strlen(text), done = 0;

    while (done < len) {
        ssize_t n = write(c->fd, text + done, len - done);

        if (n < 0 && errno == EAGAIN) {
            g_main_context_iteration(NULL, FALSE);
            continue;
        }
        g_assert_cmpint(n, >, 0);
        done += n;
    }
}

/* Next line from the monitor, running the main loop meanwhile (bounded by
 * time).  NULL when nothing arrives within timeout_ms. */
static char *client_line(Client *c, int timeout_ms)
{
    int64_t deadline = g_get_monotonic_time() + timeout_ms * 1000;

    for (;;) {
        char *nl = memchr(c->in->str, '\n', c->in->len);
        char buf[4096];
        ssize_t n;

        if (nl) {
            char *line;

            /* Every line ends in CR LF, as QEMU sends them. */
            g_assert_true(nl > c->in->str && nl[-1] == '\r');
            line = g_strndup(c->in->str, nl - c->in->str - 1);

            g_string_erase(c->in, 0, nl - c->in->str + 1);
            return line;
        }
        if (g_get_monotonic_time() > deadline) {
            return NULL;
        }
        while (g_main_context_iteration(NULL, FALSE)) {
        }
        n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            g_string_append_len(c->in, buf, n);
        } else if (n == 0) {
            return NULL;
        } else {
            g_usleep(1000);
        }
    }
}

static void expect_line(Client *c, const char *want)
{
    g_autofree char *line = client_line(c, 5000);

    g_assert_nonnull(line);
    g_assert_cmpstr(line, ==, want);
}

static const char *greeting =
    "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, "
    "\"major\": 7}, \"package\": \"qblock " QBLOCK_VERSION "\"}, "
    "\"capabilities\": [\"oob\"]}}";

static Client *client_new_pair(bool negotiate)
{
    int sv[2];
    Client *c = g_new0(Client, 1);

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    c->fd = sv[0];
    c->in = g_string_new(NULL);
    monitor_new_qmp(sv[1], sv[1], true, false, NULL, NULL);
    expect_line(c, greeting);
    if (negotiate) {
        client_send(c, "{\"execute\": \"qmp_capabilities\"}");
        expect_line(c, "{\"return\": {}}");
    }
    return c;
}

static void client_free(Client *c)
{
    close(c->fd);
    /* Let the monitor notice EOF and free itself. */
    for (int i = 0; i < 100; i++) {
        g_main_context_iteration(NULL, FALSE);
    }
    g_string_free(c->in, TRUE);
    g_free(c);
}

/* ---- tests ---- */

static void test_negotiation(void)
{
    Client *c = client_new_pair(false);

    client_send(c, "{\"execute\": \"echo\"}");
    expect_line(c, "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": "
                "\"Expecting capabilities negotiation with "
                "'qmp_capabilities'\"}}");
    /* Envelope errors come before the negotiation check. */
    client_send(c, "{\"execute\": \"echo\", \"foo\": 1}");
    expect_line(c, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
                "\"QMP input member 'foo' is unexpected\"}}");
    client_send(c, "{\"execute\": \"qmp_capabilities\", "
                "\"arguments\": {\"enable\": [\"bogus\"]}}");
    expect_line(c, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
                "\"Parameter 'null' does not accept value 'bogus'\"}}");
    client_send(c, "{\"execute\": \"qmp_capabilities\", "
                "\"arguments\": {\"enable\": [\"oob\"]}, \"id\": 7}");
    expect_line(c, "{\"return\": {}, \"id\": 7}");
    client_send(c, "{\"execute\": \"qmp_capabilities\"}");
    expect_line(c, "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": "
                "\"Capabilities negotiation is already complete, command "
                "ignored\"}}");
    client_send(c, "{\"execute\": \"echo\", \"arguments\": {\"a\": 1}}");
    expect_line(c, "{\"return\": {\"a\": 1}}");
    client_free(c);
}

static void test_envelope(void)
{
    Client *c = client_new_pair(true);
    static const struct { const char *in, *out; } cases[] = {
        { "{\"execute\": \"nope\", \"id\": \"x\"}",
          "{\"id\": \"x\", \"error\": {\"class\": \"CommandNotFound\", "
          "\"desc\": \"The command nope has not been found\"}}" },
        { "{\"execute\": \"fail\", \"id\": [1, {\"a\": null}]}",
          "{\"id\": [1, {\"a\": null}], \"error\": {\"class\": "
          "\"GenericError\", \"desc\": \"it failed\"}}" },
        { "[]", "{\"error\": {\"class\": \"GenericError\", \"desc\": "
          "\"QMP input must be a JSON object\"}}" },
        { "1 ", "{\"error\": {\"class\": \"GenericError\", \"desc\": "
          "\"QMP input must be a JSON object\"}}" },
        { "{\"execute\": 1}", "{\"error\": {\"class\": \"GenericError\", "
          "\"desc\": \"QMP input member 'execute' must be a string\"}}" },
        { "{\"execute\": \"echo\", \"arguments\": []}",
          "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input "
          "member 'arguments' must be an object\"}}" },
        { "{\"arguments\": {}}", "{\"error\": {\"class\": \"GenericError\", "
          "\"desc\": \"QMP input lacks member 'execute'\"}}" },
        { "{\"execute\": }", "{\"error\": {\"class\": \"GenericError\", "
          "\"desc\": \"JSON parse error, expecting value\"}}" },
        { "garbage\n", "{\"error\": {\"class\": \"GenericError\", "
          "\"desc\": \"JSON parse error, invalid keyword 'garbage'\"}}" },
        { "{\"a\": 1, \"a\": 2}", "{\"error\": {\"class\": \"GenericError\", "
          "\"desc\": \"JSON parse error, duplicate key\"}}" },
        { "{'execute': 'echo', 'arguments': {'s': 'a\"b\\'c'}}",
          "{\"return\": {\"s\": \"a\\\"b'c\"}}" },
        { "{\"execute\": \"noreply\"}{\"execute\": \"echo\", \"id\": 2}",
          "{\"return\": {}, \"id\": 2}" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        client_send(c, cases[i].in);
        expect_line(c, cases[i].out);
    }
    client_free(c);
}

static void test_stream_framing(void)
{
    Client *c = client_new_pair(true);
    const char *msg = "{\"execute\": \"echo\", \"arguments\": "
                      "{\"s\": \"}{][\\\"\"}, \"id\": 1}";

    /* One message byte by byte. */
    for (const char *p = msg; *p; p++) {
        char b[2] = { *p, 0 };

        client_send(c, b);
        g_main_context_iteration(NULL, FALSE);
    }
    expect_line(c, "{\"return\": {\"s\": \"}{][\\\"\"}, \"id\": 1}");

    /* Three messages in one write, with junk between two of them. */
    client_send(c, "{\"execute\":\"echo\",\"id\":1}{\"execute\":\"echo\","
                "\"id\":2} junk {\"execute\":\"echo\",\"id\":3}");
    expect_line(c, "{\"return\": {}, \"id\": 1}");
    expect_line(c, "{\"return\": {}, \"id\": 2}");
    expect_line(c, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
                "\"JSON parse error, invalid keyword 'junk'\"}}");
    expect_line(c, "{\"return\": {}, \"id\": 3}");
    client_free(c);
}

static void test_nesting_limit(void)
{
    Client *c = client_new_pair(true);
    GString *s = g_string_new(NULL);

    /* 1024 levels are fine (then rejected for not being an object)... */
    for (int i = 0; i < 1024; i++) {
        g_string_append_c(s, '[');
    }
    for (int i = 0; i < 1024; i++) {
        g_string_append_c(s, ']');
    }
    client_send(c, s->str);
    expect_line(c, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
                "\"QMP input must be a JSON object\"}}");
    /* ...1025 are not; as in QEMU 7.2 the message is dropped and what
     * follows is read afresh, so each leftover closer gets an error. */
    g_string_printf(s, "[");
    client_send(c, s->str);
    g_string_truncate(s, 0);
    for (int i = 0; i < 1024; i++) {
        g_string_append_c(s, '[');
    }
    for (int i = 0; i < 1025; i++) {
        g_string_append_c(s, ']');
    }
    client_send(c, s->str);
    expect_line(c, "{\"error\": {\"class\": \"GenericError\", \"desc\": "
                "\"JSON nesting depth limit exceeded\"}}");
    for (int i = 0; i < 1025; i++) {
        expect_line(c, "{\"error\": {\"class\": \"GenericError\", "
                    "\"desc\": \"JSON parse error, expecting value\"}}");
    }
    client_send(c, "{\"execute\": \"echo\", \"id\": \"after\"}");
    expect_line(c, "{\"return\": {}, \"id\": \"after\"}");
    g_string_free(s, TRUE);
    client_free(c);
}

typedef struct Collected {
    GPtrArray *values;
    GPtrArray *errors;
} Collected;

static void collect(void *opaque, json_t *value, Error *err)
{
    Collected *col = opaque;

    if (value) {
        g_ptr_array_add(col->values, value);
    } else {
        g_ptr_array_add(col->errors, g_strdup(error_get_pretty(err)));
        error_free(err);
    }
}

static void test_size_limit(void)
{
    Collected col = { g_ptr_array_new_with_free_func((GDestroyNotify)json_decref),
                      g_ptr_array_new_with_free_func(g_free) };
    JsonStream *js = json_stream_new(collect, &col);
    size_t chunk = 1024 * 1024;
    char *buf = g_malloc(chunk);
    int64_t start = g_get_monotonic_time();

    memset(buf, 'a', chunk);
    json_stream_feed(js, "{\"s\": \"", 7);
    for (size_t i = 0; i < MONITOR_MAX_MESSAGE / chunk + 2; i++) {
        json_stream_feed(js, buf, chunk);
    }
    json_stream_feed(js, "\"}{\"ok\": true}", 14);
    g_assert_cmpuint(col.errors->len, ==, 1);
    g_assert_cmpstr(col.errors->pdata[0], ==, "JSON token size limit exceeded");
    g_assert_cmpuint(col.values->len, ==, 1);
    g_assert_true(json_is_true(json_object_get(col.values->pdata[0], "ok")));
    /* Framing must not be per-byte slow: 66 MiB in well under 10 s. */
    g_assert_cmpint(g_get_monotonic_time() - start, <, 10 * G_USEC_PER_SEC);

    /* A bare token of 8 KiB is one token, as in QEMU 7.2: one "invalid
     * keyword" error, its detail cut to 1023 bytes as QEMU's. */
    g_ptr_array_set_size(col.errors, 0);
    g_ptr_array_set_size(col.values, 0);
    memset(buf, 'x', 8192);
    json_stream_feed(js, buf, 8192);
    json_stream_feed(js, " {\"ok\": 1}", 10);
    g_assert_cmpuint(col.errors->len, ==, 1);
    g_assert_true(g_str_has_prefix(col.errors->pdata[0],
                                   "JSON parse error, invalid keyword 'xxx"));
    g_assert_cmpuint(strlen(col.errors->pdata[0]), ==,
                     strlen("JSON parse error, ") + 1023);
    g_assert_cmpuint(col.values->len, ==, 1);

    json_stream_free(js);
    g_free(buf);
    g_ptr_array_free(col.values, TRUE);
    g_ptr_array_free(col.errors, TRUE);
}

/*
 * A never-closed string made only of two-byte escapes ("\n\n\n...") must
 * hit the same cap as plain text: the bytes held stay at the limit plus a
 * constant while 66 MiB stream in, the limit is reported once, and the
 * messages after the string's end are served.
 */
static void test_size_limit_escapes(void)
{
    Collected col = { g_ptr_array_new_with_free_func((GDestroyNotify)json_decref),
                      g_ptr_array_new_with_free_func(g_free) };
    JsonStream *js = json_stream_new(collect, &col);
    size_t chunk = 64 * 1024, total = MONITOR_MAX_MESSAGE + 2 * 1024 * 1024;
    char *buf = g_malloc(chunk);
    size_t peak = 0;

    for (size_t i = 0; i < chunk; i += 2) {
        buf[i] = '\\';
        buf[i + 1] = 'n';
    }
    json_stream_feed(js, "{\"s\": \"", 7);
    for (size_t fed = 0; fed < total; fed += chunk) {
        /* Odd split points too, so an escape straddles two writes. */
        size_t cut = (fed / chunk) % 2 ? 1 : 0;

        json_stream_feed(js, buf, chunk - cut);
        json_stream_feed(js, buf + chunk - cut, cut);
        peak = MAX(peak, json_stream_buffered(js));
        g_assert_cmpuint(json_stream_buffered(js), <=,
                         MONITOR_MAX_MESSAGE + 64);
    }
    g_assert_cmpuint(peak, >, MONITOR_MAX_MESSAGE - chunk);
    g_assert_cmpuint(col.errors->len, ==, 1);
    g_assert_cmpstr(col.errors->pdata[0], ==, "JSON token size limit exceeded");
    json_stream_feed(js, "\"}{\"ok\": true}", 14);
    g_assert_cmpuint(col.errors->len, ==, 1);
    g_assert_cmpuint(col.values->len, ==, 1);
    g_assert_true(json_is_true(json_object_get(col.values->pdata[0], "ok")));
    g_assert_cmpuint(json_stream_buffered(js), ==, 0);

    json_stream_free(js);
    g_free(buf);
    g_ptr_array_free(col.values, TRUE);
    g_ptr_array_free(col.errors, TRUE);
}

/*
 * An invalid byte in the skipped rest of an over-long message ends the
 * skip, as an error token does in QEMU 7.2: the brace counts of the dropped
 * message must not swallow the commands that follow.  qemu-storage-daemon
 * answers "size limit", ..., "stray '\x01'", then the next command.
 */
static void test_error_after_size_limit(void)
{
    Collected col = { g_ptr_array_new_with_free_func((GDestroyNotify)json_decref),
                      g_ptr_array_new_with_free_func(g_free) };
    JsonStream *js = json_stream_new(collect, &col);
    size_t chunk = 1024 * 1024;
    char *buf = g_malloc(chunk);
    /* The over-long part as a string, and as an array of numbers. */
    static const char *const opener[] = { "{\"s\": \"", "{\"s\": [[" };
    static const char fill[] = { 'a', '1' };

    for (int k = 0; k < 2; k++) {
        g_ptr_array_set_size(col.errors, 0);
        g_ptr_array_set_size(col.values, 0);
        json_stream_feed(js, opener[k], strlen(opener[k]));
        memset(buf, fill[k], chunk);
        if (k == 1) {
            /* "1111 ... 111," numbers of ~64 KiB each */
            for (size_t i = 65535; i < chunk; i += 65536) {
                buf[i] = ',';
            }
        }
        for (size_t i = 0; i < MONITOR_MAX_MESSAGE / chunk + 1; i++) {
            json_stream_feed(js, buf, chunk);
        }
        g_assert_cmpuint(col.errors->len, ==, 1);
        json_stream_feed(js, "\x01\n{\"ok\": 1}", 11);
        g_assert_cmpuint(col.errors->len, ==, 2);
        g_assert_cmpstr(col.errors->pdata[0], ==,
                        "JSON token size limit exceeded");
        g_assert_cmpstr(col.errors->pdata[1], ==,
                        "JSON parse error, stray '\x01'");
        g_assert_cmpuint(col.values->len, ==, 1);
        g_assert_cmpint(json_integer_value(
                            json_object_get(col.values->pdata[0], "ok")), ==, 1);
        /* and the stream is back to normal */
        json_stream_feed(js, "[1]", 3);
        g_assert_cmpuint(col.values->len, ==, 2);
        g_assert_cmpuint(col.errors->len, ==, 2);
    }

    json_stream_free(js);
    g_free(buf);
    g_ptr_array_free(col.values, TRUE);
    g_ptr_array_free(col.errors, TRUE);
}

static void test_events(void)
{
    Client *a = client_new_pair(true);
    Client *b = client_new_pair(false);
    g_autofree char *line = NULL;
    json_t *ev;

    client_send(a, "{\"execute\": \"emit\", \"id\": 1}");
    line = client_line(a, 5000);
    g_assert_nonnull(line);
    ev = json_loads(line, 0, NULL);
    g_assert_nonnull(ev);
    g_assert_cmpstr(json_string_value(json_object_get(ev, "event")), ==,
                    "TEST_EVENT");
    g_assert_true(json_is_integer(json_object_get(
        json_object_get(ev, "timestamp"), "seconds")));
    g_assert_true(json_is_integer(json_object_get(
        json_object_get(ev, "timestamp"), "microseconds")));
    g_assert_true(g_str_has_prefix(line, "{\"timestamp\": {\"seconds\": "));
    g_assert_true(g_str_has_suffix(line, "\"event\": \"TEST_EVENT\", "
                                   "\"data\": {\"id\": \"x\"}}"));
    json_decref(ev);
    expect_line(a, "{\"return\": {}, \"id\": 1}");
    /* b has not negotiated: it got nothing. */
    g_assert_null(client_line(b, 100));
    client_free(a);
    client_free(b);
}

static void test_disconnect_midway(void)
{
    Client *c = client_new_pair(true);

    /* Half a message, then gone: no reply, no crash, monitor freed. */
    client_send(c, "{\"execute\": \"echo\", \"argu");
    client_free(c);
    /* A client that vanishes before reading its reply. */
    c = client_new_pair(true);
    client_send(c, "{\"execute\": \"emit\"}{\"execute\": \"echo\"}");
    client_free(c);
}

static void test_unix_chardev(void)
{
    g_autofree char *dir = g_dir_make_tmp("qbmon-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "qmp.sock", NULL);
    g_autofree char *opt = g_strdup_printf(
        "socket,id=mon0,path=%s,server=on,wait=off", path);
    g_autofree char *mopt = NULL;
    Error *err = NULL;
    ChardevOptions *o;
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    Client c = { .in = g_string_new(NULL) };

    o = chardev_parse("bogus,id=x", &err);
    g_assert_null(o);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "'bogus' is not a valid char driver name");
    error_free(err);
    err = NULL;
    g_assert_null(chardev_parse("socket,path=/x,server=on", &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "chardev: no id specified");
    error_free(err);
    err = NULL;
    g_assert_null(chardev_parse("socket,id=a,path=/x,server=maybe", &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Parameter 'server' expects 'on' or 'off'");
    error_free(err);
    err = NULL;

    o = chardev_parse(opt, &error_abort);
    g_assert_true(o->server);
    g_assert_false(o->wait);
    g_assert_nonnull(chardev_new(o, &error_abort));
    g_assert_false(monitor_parse_and_attach("nope", &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "chardev \"nope\" not found");
    error_free(err);
    err = NULL;
    g_assert_false(monitor_parse_and_attach("mon0,mode=readline", &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "Only QMP is supported");
    error_free(err);
    err = NULL;
    mopt = g_strdup("chardev=mon0,mode=control");
    g_assert_true(monitor_parse_and_attach(mopt, &error_abort));

    /* Two sessions in a row: each gets a fresh greeting and negotiation. */
    for (int round = 0; round < 2; round++) {
        strcpy(sun.sun_path, path);
        c.fd = socket(AF_UNIX, SOCK_STREAM, 0);
        g_assert_cmpint(connect(c.fd, (struct sockaddr *)&sun, sizeof(sun)),
                        ==, 0);
        expect_line(&c, greeting);
        client_send(&c, "{\"execute\": \"echo\"}");
        expect_line(&c, "{\"error\": {\"class\": \"CommandNotFound\", "
                    "\"desc\": \"Expecting capabilities negotiation with "
                    "'qmp_capabilities'\"}}");
        client_send(&c, "{\"execute\": \"qmp_capabilities\"}");
        expect_line(&c, "{\"return\": {}}");
        close(c.fd);
        for (int i = 0; i < 50; i++) {
            g_main_context_iteration(NULL, FALSE);
        }
    }
    chardev_cleanup_all();
    g_assert_false(g_file_test(path, G_FILE_TEST_EXISTS));
    rmdir(dir);
    g_string_free(c.in, TRUE);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    monitor_set_command_table(test_table);
    g_test_add_func("/monitor/negotiation", test_negotiation);
    g_test_add_func("/monitor/envelope", test_envelope);
    g_test_add_func("/monitor/stream-framing", test_stream_framing);
    g_test_add_func("/monitor/nesting-limit", test_nesting_limit);
    g_test_add_func("/monitor/size-limit", test_size_limit);
    g_test_add_func("/monitor/size-limit-escapes", test_size_limit_escapes);
    g_test_add_func("/monitor/error-after-size-limit",
                    test_error_after_size_limit);
    g_test_add_func("/monitor/events", test_events);
    g_test_add_func("/monitor/disconnect-midway", test_disconnect_midway);
    g_test_add_func("/monitor/unix-chardev", test_unix_chardev);
    return g_test_run();
}
