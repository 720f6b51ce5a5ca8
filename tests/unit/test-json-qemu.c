/*
 * Tests for util/json-qemu.c: QEMU's member order and text forms, checked
 * against output captured from the real qemu-img 7.2 and QMP.
 */
#include "util/json-qemu.h"

/* Parse text (jansson keeps insertion order = textual order). */
static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &err);
    if (!v) {
        g_error("bad test JSON: %s", err.text);
    }
    return v;
}

static void check_compact(const char *input, const char *expected)
{
    json_t *v = parse(input);
    g_autofree char *s = qemu_json_to_compact(v);
    g_assert_cmpstr(s, ==, expected);
    json_decref(v);
}

static void check_pretty(const char *input, const char *expected)
{
    json_t *v = parse(input);
    g_autofree char *s = qemu_json_to_pretty(v);
    g_assert_cmpstr(s, ==, expected);
    json_decref(v);
}

static void test_hash(void)
{
    /* "micro" and "minor" share a bucket (so QEMU prints the later-inserted
     * "micro" first); "major" comes in a later bucket. */
    unsigned micro = qemu_qdict_hash("micro") % 512;
    unsigned minor = qemu_qdict_hash("minor") % 512;
    unsigned major = qemu_qdict_hash("major") % 512;
    g_assert_cmpuint(micro, ==, minor);
    g_assert_cmpuint(micro, ==, 225);
    g_assert_cmpuint(minor, <, major);
    g_assert_cmpuint(qemu_qdict_hash(""), ==, 12345u);
    /* Different keys of the same length do not collide trivially. */
    g_assert_cmpuint(qemu_qdict_hash("ab"), !=, qemu_qdict_hash("ba"));
}

static void test_same_bucket_newest_first(void)
{
    /* Find two distinct keys in one bucket; the later insertion must come
     * first whichever way round they were inserted. */
    char a[16] = "", b[16] = "";
    GHashTable *seen = g_hash_table_new_full(g_direct_hash, g_direct_equal,
                                             NULL, g_free);
    for (int i = 0; i < 10000 && !b[0]; i++) {
        char k[16];
        g_snprintf(k, sizeof(k), "k%d", i);
        gpointer bucket = GUINT_TO_POINTER(qemu_qdict_hash(k) % 512 + 1);
        char *prev = g_hash_table_lookup(seen, bucket);
        if (prev) {
            g_strlcpy(a, prev, sizeof(a));
            g_strlcpy(b, k, sizeof(b));
        } else {
            g_hash_table_insert(seen, bucket, g_strdup(k));
        }
    }
    g_hash_table_destroy(seen);
    g_assert_true(b[0]);

    json_t *o = json_object();
    json_object_set_new(o, a, json_integer(1));
    json_object_set_new(o, b, json_integer(2));
    g_autofree const char **k1 = qemu_json_object_keys(o);
    g_assert_cmpstr(k1[0], ==, b);
    g_assert_cmpstr(k1[1], ==, a);
    g_assert_null(k1[2]);
    json_decref(o);

    o = json_object();
    json_object_set_new(o, b, json_integer(2));
    json_object_set_new(o, a, json_integer(1));
    g_autofree const char **k2 = qemu_json_object_keys(o);
    g_assert_cmpstr(k2[0], ==, a);
    g_assert_cmpstr(k2[1], ==, b);
    json_decref(o);
}

static void test_qmp_compact(void)
{
    check_compact("{\"return\": {}}", "{\"return\": {}}");
    check_compact("[]", "[]");
    /* Greeting as sent by qemu-storage-daemon 7.2. */
    check_compact(
        "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, "
        "\"micro\": 22}, \"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"}, "
        "\"capabilities\": [\"oob\"]}}",
        "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, "
        "\"major\": 7}, \"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"}, "
        "\"capabilities\": [\"oob\"]}}");
    /* Events: timestamp, event, data. */
    check_compact(
        "{\"event\": \"JOB_STATUS_CHANGE\", \"data\": {\"id\": \"j\", "
        "\"status\": \"created\"}, \"timestamp\": {\"seconds\": 1, "
        "\"microseconds\": 2}}",
        "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": "
        "\"JOB_STATUS_CHANGE\", \"data\": {\"status\": \"created\", "
        "\"id\": \"j\"}}");
    /* Dirty bitmap info as seen in query-named-block-nodes. */
    check_compact(
        "{\"name\": \"en\", \"recording\": true, \"persistent\": true, "
        "\"busy\": false, \"granularity\": 65536, \"count\": 196608}",
        "{\"name\": \"en\", \"recording\": true, \"persistent\": true, "
        "\"busy\": false, \"granularity\": 65536, \"count\": 196608}");
    check_compact("{\"a\": null, \"b\": [1, -2, false]}",
                  "{\"a\": null, \"b\": [1, -2, false]}");
}

static void test_string_escapes(void)
{
    /* Observed: qemu-img info --output=json of a file with this name. */
    json_t *s = json_string("/tmp/h6scratch/\xc3\xbc\x7f\"q\\\t"
                            "\xe2\x82\xac\xf0\x9f\x98\x80x.raw");
    g_autofree char *out = qemu_json_to_compact(s);
    g_assert_cmpstr(out, ==, "\"/tmp/h6scratch/\\u00FC\\u007F\\\"q\\\\\\t"
                    "\\u20AC\\uD83D\\uDE00x.raw\"");
    json_decref(s);

    /* Invalid UTF-8 becomes U+FFFD; control characters \\uXXXX. */
    s = json_stringn_nocheck("a\xff" "b\x01\n", 5);
    g_autofree char *out2 = qemu_json_to_compact(s);
    g_assert_cmpstr(out2, ==, "\"a\\uFFFDb\\u0001\\n\"");
    json_decref(s);
}

static void test_img_info_raw(void)
{
    /* ImageInfo members inserted in schema order, as QEMU's visitor does. */
    check_pretty(
        "{\"filename\": \"a.raw\", \"format\": \"raw\", \"dirty-flag\": false,"
        " \"actual-size\": 4096, \"virtual-size\": 1048576}",
        "{\n"
        "    \"virtual-size\": 1048576,\n"
        "    \"filename\": \"a.raw\",\n"
        "    \"format\": \"raw\",\n"
        "    \"actual-size\": 4096,\n"
        "    \"dirty-flag\": false\n"
        "}");
}

static void test_img_info_qcow2_bitmaps(void)
{
    /* qcow2-bitmaps.md section 8, real qemu-img info output. */
    check_pretty(
        "{\"filename\": \"h.qcow2\", \"format\": \"qcow2\","
        " \"dirty-flag\": false, \"actual-size\": 622592,"
        " \"virtual-size\": 4194304, \"cluster-size\": 65536,"
        " \"format-specific\": {\"type\": \"qcow2\", \"data\": {"
        "  \"compat\": \"1.1\", \"extended-l2\": false,"
        "  \"lazy-refcounts\": false, \"corrupt\": false,"
        "  \"refcount-bits\": 16, \"bitmaps\": ["
        "   {\"name\": \"bm0\", \"granularity\": 65536, \"flags\": [\"auto\"]},"
        "   {\"name\": \"dis\", \"granularity\": 512, \"flags\": []}],"
        "  \"compression-type\": \"zlib\"}}}",
        "{\n"
        "    \"virtual-size\": 4194304,\n"
        "    \"filename\": \"h.qcow2\",\n"
        "    \"cluster-size\": 65536,\n"
        "    \"format\": \"qcow2\",\n"
        "    \"actual-size\": 622592,\n"
        "    \"format-specific\": {\n"
        "        \"type\": \"qcow2\",\n"
        "        \"data\": {\n"
        "            \"compat\": \"1.1\",\n"
        "            \"compression-type\": \"zlib\",\n"
        "            \"lazy-refcounts\": false,\n"
        "            \"bitmaps\": [\n"
        "                {\n"
        "                    \"flags\": [\n"
        "                        \"auto\"\n"
        "                    ],\n"
        "                    \"name\": \"bm0\",\n"
        "                    \"granularity\": 65536\n"
        "                },\n"
        "                {\n"
        "                    \"flags\": [\n"
        "                    ],\n"
        "                    \"name\": \"dis\",\n"
        "                    \"granularity\": 512\n"
        "                }\n"
        "            ],\n"
        "            \"refcount-bits\": 16,\n"
        "            \"corrupt\": false,\n"
        "            \"extended-l2\": false\n"
        "        }\n"
        "    },\n"
        "    \"dirty-flag\": false\n"
        "}");
    check_pretty("[]", "[\n]");
    check_pretty("{}", "{\n}");
    check_pretty("[{\"a\": []}]", "[\n    {\n        \"a\": [\n        ]\n    }\n]");
}

static void test_replace_keeps_position(void)
{
    /* Replacing a value must not move the key within its bucket chain. */
    json_t *o = parse("{\"x\": 1, \"y\": 2}");
    g_autofree const char **before = qemu_json_object_keys(o);
    g_autofree char *first = g_strdup(before[0]);
    json_object_set_new(o, "x", json_integer(3));
    g_autofree const char **after = qemu_json_object_keys(o);
    g_assert_cmpstr(after[0], ==, first);
    json_decref(o);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/json-qemu/hash", test_hash);
    g_test_add_func("/json-qemu/same-bucket", test_same_bucket_newest_first);
    g_test_add_func("/json-qemu/qmp-compact", test_qmp_compact);
    g_test_add_func("/json-qemu/string-escapes", test_string_escapes);
    g_test_add_func("/json-qemu/img-info-raw", test_img_info_raw);
    g_test_add_func("/json-qemu/img-info-qcow2-bitmaps",
                    test_img_info_qcow2_bitmaps);
    g_test_add_func("/json-qemu/replace-keeps-position",
                    test_replace_keeps_position);
    return g_test_run();
}
