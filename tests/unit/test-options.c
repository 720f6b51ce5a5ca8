/*
 * Unit tests for block/options.c: QEMU keyval syntax and its error texts,
 * json: filenames (nested and dotted keys), flatten/crumple, and the typed
 * accessors that accept both typed JSON and strings.
 */
#include "block/options.h"

/* Parse and compare against a compact JSON dump (keys sorted). */
static void check_parse(const char *params, const char *implied,
                        const char *expected)
{
    Error *err = NULL;
    json_t *obj = qb_keyval_parse(params, implied, &err);
    g_autofree char *dump = NULL;

    g_assert_null(err);
    g_assert_nonnull(obj);
    dump = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    g_assert_cmpstr(dump, ==, expected);
    json_decref(obj);
}

static void check_parse_error(const char *params, const char *implied,
                              const char *text)
{
    Error *err = NULL;
    json_t *obj = qb_keyval_parse(params, implied, &err);

    g_assert_null(obj);
    g_assert_nonnull(err);
    g_assert_cmpstr(error_get_pretty(err), ==, text);
    error_free(err);
}

static void test_keyval_basic(void)
{
    check_parse("", NULL, "{}");
    check_parse("a=1", NULL, "{\"a\":\"1\"}");
    check_parse("a=1,b=x", NULL, "{\"a\":\"1\",\"b\":\"x\"}");
    /* Trailing comma is accepted. */
    check_parse("a=1,", NULL, "{\"a\":\"1\"}");
    /* ",," is an escaped comma inside a value. */
    check_parse("a=x,,y,b=2", NULL, "{\"a\":\"x,y\",\"b\":\"2\"}");
    check_parse("node-name=x,,,a=1", NULL,
                "{\"a\":\"1\",\"node-name\":\"x,\"}");
    /* Empty value. */
    check_parse("a=", NULL, "{\"a\":\"\"}");
    /* The last of repeated keys wins. */
    check_parse("a=1,a=2", NULL, "{\"a\":\"2\"}");
    /* Names: letters first, then letters, digits, '-' and '_'. */
    check_parse("A_b-c=1", NULL, "{\"A_b-c\":\"1\"}");
}

static void test_keyval_nested(void)
{
    check_parse("driver=qcow2,file.driver=file,file.filename=/tmp/a", NULL,
                "{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\","
                "\"filename\":\"/tmp/a\"}}");
    check_parse("a.b.c=1,a.b.d=2,a.e=3", NULL,
                "{\"a\":{\"b\":{\"c\":\"1\",\"d\":\"2\"},\"e\":\"3\"}}");
    /* Numeric fragments make lists; leading zeros are indices too. */
    check_parse("a.0=x,a.1=y", NULL, "{\"a\":[\"x\",\"y\"]}");
    check_parse("a.1=y,a.00=x", NULL, "{\"a\":[\"x\",\"y\"]}");
    check_parse("a.0.b=1", NULL, "{\"a\":[{\"b\":\"1\"}]}");
}

static void test_keyval_implied(void)
{
    check_parse("qcow2,node-name=x", "driver",
                "{\"driver\":\"qcow2\",\"node-name\":\"x\"}");
    /* The implied value may contain escaped commas. */
    check_parse("a,,b,c=1", "driver", "{\"c\":\"1\",\"driver\":\"a,b\"}");
    /* Only the first element may be implied. */
    check_parse_error("qcow2,raw", "driver",
                      "Expected '=' after parameter 'raw'");
    /* With '=' present the first element is a normal key. */
    check_parse("driver=null-co,,node-name=x", "driver",
                "{\"driver\":\"null-co,node-name=x\"}");
}

static void test_keyval_errors(void)
{
    check_parse_error(",a=1", NULL, "Invalid parameter ''");
    check_parse_error("=1", NULL, "Invalid parameter ''");
    check_parse_error("a=1,b", NULL, "Expected '=' after parameter 'b'");
    check_parse_error("a", NULL, "Expected '=' after parameter 'a'");
    check_parse_error("a..b=1", NULL, "Invalid parameter 'a..b'");
    check_parse_error("a.=1", NULL, "Invalid parameter 'a.'");
    check_parse_error(".a=1", NULL, "Invalid parameter '.a'");
    check_parse_error("1a=1", NULL, "Invalid parameter '1a'");
    check_parse_error("0=1", NULL, "Invalid parameter '0'");
    check_parse_error("_a=1", NULL, "Invalid parameter '_a'");
    check_parse_error("a+b=1", NULL, "Invalid parameter 'a+b'");
    check_parse_error("a:b=1", NULL, "Invalid parameter 'a:b'");
    check_parse_error("a b=1", NULL, "Invalid parameter 'a b'");
    check_parse_error("a.b=1,a=2", NULL,
                      "Parameters 'a.*' used inconsistently");
    check_parse_error("a=2,a.b=1", NULL,
                      "Parameters 'a.*' used inconsistently");
    check_parse_error("a.b=1,a.b.c=1", NULL,
                      "Parameters 'a.b.*' used inconsistently");
    check_parse_error("a.b=1,a.0=1", NULL,
                      "Parameters 'a.*' used inconsistently");
    check_parse_error("a.1=2", NULL, "Parameter 'a.0' missing");
}

static void test_keyval_too_long(void)
{
    g_autofree char *k = g_strnfill(128, 'a');
    g_autofree char *p = g_strdup_printf("%s=1", k);
    g_autofree char *p2 = g_strdup_printf("x.%s=1", k);
    g_autofree char *t = g_strdup_printf("Parameter '%s' is too long", k);
    g_autofree char *t2 = g_strdup_printf("Parameter key '%s' is too long",
                                          k);
    g_autofree char *ok = g_strnfill(127, 'b');
    g_autofree char *pok = g_strdup_printf("%s=1", ok);
    json_t *obj;

    check_parse_error(p, NULL, t);
    check_parse_error(p2, NULL, t2);
    obj = qb_keyval_parse(pok, NULL, &error_abort);
    g_assert_cmpstr(qb_opt_get_str(obj, ok), ==, "1");
    json_decref(obj);
}

static void check_json(const char *filename, const char *expected)
{
    Error *err = NULL;
    json_t *obj = qb_parse_json_filename(filename, &err);
    g_autofree char *dump = NULL;

    g_assert_null(err);
    dump = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    g_assert_cmpstr(dump, ==, expected);
    json_decref(obj);
}

static void test_json_filename(void)
{
    Error *err = NULL;

    check_json("json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\","
               "\"filename\":\"/a\"}}",
               "{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\","
               "\"filename\":\"/a\"}}");
    /* Dotted keys are crumpled into objects. */
    check_json("json:{\"driver\":\"qcow2\",\"file.driver\":\"file\","
               "\"file.filename\":\"/a\"}",
               "{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\","
               "\"filename\":\"/a\"}}");
    /* ... and may be mixed with nested objects. */
    check_json("json:{\"file.driver\":\"file\",\"file\":{\"x\":1}}",
               "{\"file\":{\"driver\":\"file\",\"x\":1}}");
    /* Typed values survive. */
    check_json("json:{\"a\":true,\"b\":2,\"backing\":null}",
               "{\"a\":true,\"b\":2,\"backing\":null}");

    g_assert_null(qb_parse_json_filename("json:{\"driver\":\"qcow2\"",
                                         &err));
    g_assert_true(g_str_has_prefix(error_get_pretty(err),
                                   "Could not parse the JSON options: "));
    error_free(err);
    err = NULL;
    g_assert_null(qb_parse_json_filename("json:[1]", &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "Invalid JSON object given");
    error_free(err);
    err = NULL;
    g_assert_null(qb_parse_json_filename("json:{\"a.b\":1,\"a\":2}", &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Parameters 'a.*' used inconsistently");
    error_free(err);
}

static void test_flatten_crumple(void)
{
    json_t *nested = json_loads("{\"a\":{\"b\":1,\"c\":{\"d\":\"x\"}},"
                                "\"l\":[1,2],\"e\":{}}", 0, NULL);
    json_t *flat = qb_json_flatten(nested);
    json_t *back;
    g_autofree char *dump = json_dumps(flat, JSON_COMPACT | JSON_SORT_KEYS);

    g_assert_cmpstr(dump, ==, "{\"a.b\":1,\"a.c.d\":\"x\",\"e\":{},"
                    "\"l.0\":1,\"l.1\":2}");
    back = qb_json_crumple(flat, &error_abort);
    g_assert_true(json_equal(back, nested));
    json_decref(back);
    json_decref(flat);
    json_decref(nested);
}

static void test_merge(void)
{
    json_t *dst = json_pack("{s:i,s:i}", "a", 1, "b", 2);
    json_t *src = json_pack("{s:i,s:i}", "b", 20, "c", 30);

    qb_json_merge(dst, src, false);
    g_assert_cmpint(json_integer_value(json_object_get(dst, "b")), ==, 2);
    g_assert_cmpint(json_integer_value(json_object_get(dst, "c")), ==, 30);
    qb_json_merge(dst, src, true);
    g_assert_cmpint(json_integer_value(json_object_get(dst, "b")), ==, 20);
    json_decref(dst);
    json_decref(src);
}

static void test_accessors_bool(void)
{
    json_t *o = json_pack("{s:s,s:s,s:b,s:s,s:s,s:i}", "a", "on", "b", "off",
                          "c", 1, "d", "true", "e", "maybe", "f", 1);
    Error *err = NULL;

    g_assert_true(qb_opt_take_bool(o, "a", false, &error_abort));
    g_assert_false(qb_opt_take_bool(o, "b", true, &error_abort));
    g_assert_true(qb_opt_take_bool(o, "c", false, &error_abort));
    g_assert_true(qb_opt_take_bool(o, "d", false, &error_abort));
    g_assert_true(qb_opt_take_bool(o, "missing", true, &error_abort));
    qb_opt_take_bool(o, "e", false, &err);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Parameter 'e' expects 'on' or 'off'");
    error_free(err);
    err = NULL;
    /* QEMU rejects a number for a boolean with the same text. */
    qb_opt_take_bool(o, "f", false, &err);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Parameter 'f' expects 'on' or 'off'");
    error_free(err);
    /* "take" removed every key, also the malformed ones. */
    g_assert_cmpint(json_object_size(o), ==, 0);
    json_decref(o);
}

static void test_accessors_numbers(void)
{
    json_t *o = json_pack("{s:s,s:i,s:s,s:s,s:s,s:i,s:b,s:s}",
                          "a", "42", "b", 7, "c", "x1", "s", "64k",
                          "t", "1M", "u", 512, "v", 1, "w", "-1");
    Error *err = NULL;

    g_assert_cmpint(qb_opt_take_int(o, "a", 0, &error_abort), ==, 42);
    g_assert_cmpint(qb_opt_take_int(o, "b", 0, &error_abort), ==, 7);
    g_assert_cmpint(qb_opt_take_int(o, "nope", 5, &error_abort), ==, 5);
    qb_opt_take_int(o, "c", 0, &err);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Parameter 'c' expects a number");
    error_free(err);
    err = NULL;
    g_assert_cmpuint(qb_opt_take_size(o, "s", 0, &error_abort), ==, 65536);
    g_assert_cmpuint(qb_opt_take_size(o, "t", 0, &error_abort), ==, MiB);
    g_assert_cmpuint(qb_opt_take_size(o, "u", 0, &error_abort), ==, 512);
    qb_opt_take_size(o, "v", 0, &err);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Parameter 'v' expects a non-negative number below 2^64");
    error_free(err);
    err = NULL;
    qb_opt_take_size(o, "w", 0, &err);
    g_assert_nonnull(err);
    error_free(err);
    err = NULL;
    json_decref(o);

    o = json_pack("{s:b}", "i", 1);
    qb_opt_take_int(o, "i", 0, &err);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Invalid parameter type for 'i', expected: integer");
    error_free(err);
    json_decref(o);
}

static void test_accessors_str_enum(void)
{
    static const char *const names[] = { "off", "on", "unmap", NULL };
    json_t *o = json_pack("{s:s,s:s,s:s,s:i}", "a", "x", "e", "unmap",
                          "f", "bad", "n", 3);
    Error *err = NULL;
    char *s;

    g_assert_cmpstr(qb_opt_get_str(o, "a"), ==, "x");
    g_assert_true(qb_opt_has(o, "a"));
    s = qb_opt_take_str(o, "a");
    g_assert_cmpstr(s, ==, "x");
    g_free(s);
    g_assert_false(qb_opt_has(o, "a"));
    g_assert_null(qb_opt_take_str(o, "a"));
    /* Typed numbers read as strings when a string is wanted. */
    s = qb_opt_take_str(o, "n");
    g_assert_cmpstr(s, ==, "3");
    g_free(s);
    g_assert_cmpint(qb_opt_take_enum(o, "e", names, 0, &error_abort), ==, 2);
    g_assert_cmpint(qb_opt_take_enum(o, "z", names, 1, &error_abort), ==, 1);
    g_assert_cmpint(qb_opt_take_enum(o, "f", names, 0, &err), ==, -1);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Parameter 'f' does not accept value 'bad'");
    error_free(err);
    json_decref(o);
}

/* Found by fuzz-keyval: an empty key crashed the crumple (g_strsplit
 * yields no parts for ""); QEMU treats it as an ordinary option. */
static void test_crumple_empty_key(void)
{
    json_t *flat = json_pack("{s:s, s:s}", "", "x", "driver", "null-co");
    json_t *nested = qb_json_crumple(flat, &error_abort);

    g_assert_cmpstr(json_string_value(json_object_get(nested, "")), ==, "x");
    g_assert_cmpstr(json_string_value(json_object_get(nested, "driver")), ==,
                    "null-co");
    json_decref(nested);
    json_decref(flat);

    nested = qb_parse_json_filename("json:{\"\": \"qcow2\"}", &error_abort);
    g_assert_true(json_is_object(nested));
    json_decref(nested);
}

/* Found by fuzz-keyval: bytes that are not UTF-8 were dropped silently
 * (jansson's checked constructors return NULL); QEMU passes them on. */
static void test_keyval_not_utf8(void)
{
    json_t *o = qb_keyval_parse("driver=null-co,a=\xca\xfe", NULL,
                                &error_abort);
    g_assert_cmpstr(json_string_value(json_object_get(o, "a")), ==,
                    "\xca\xfe");
    json_decref(o);
}

/* QemuOpts lists: ",," escapes, implied key, deprecated bare flags. */
static void test_optlist(void)
{
    json_t *f = qb_optlist_parse_flat("x.raw,a=1,,2,file.b=y,noflag,", "file");
    g_autofree char *s = json_dumps(f, JSON_SORT_KEYS | JSON_COMPACT);
    g_assert_cmpstr(s, ==,
        "{\"a\":\"1,2\",\"file\":\"x.raw\",\"file.b\":\"y\",\"flag\":\"off\"}");
    json_decref(f);

    /* Without an implied key a bare first word is a flag. */
    f = qb_optlist_parse_flat("ro,driver=null-co", NULL);
    g_assert_cmpstr(json_string_value(json_object_get(f, "ro")), ==, "on");
    json_decref(f);
    g_autoptr(GPtrArray) e = qb_optlist_split("a,,b,c");
    g_assert_cmpuint(e->len, ==, 2);
    g_assert_cmpstr(e->pdata[0], ==, "a,b");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/options/keyval/basic", test_keyval_basic);
    g_test_add_func("/options/keyval/nested", test_keyval_nested);
    g_test_add_func("/options/keyval/implied", test_keyval_implied);
    g_test_add_func("/options/keyval/errors", test_keyval_errors);
    g_test_add_func("/options/keyval/too-long", test_keyval_too_long);
    g_test_add_func("/options/json-filename", test_json_filename);
    g_test_add_func("/options/flatten-crumple", test_flatten_crumple);
    g_test_add_func("/options/merge", test_merge);
    g_test_add_func("/options/crumple-empty-key", test_crumple_empty_key);
    g_test_add_func("/options/keyval/not-utf8", test_keyval_not_utf8);
    g_test_add_func("/options/optlist", test_optlist);
    g_test_add_func("/options/accessors/bool", test_accessors_bool);
    g_test_add_func("/options/accessors/numbers", test_accessors_numbers);
    g_test_add_func("/options/accessors/str-enum", test_accessors_str_enum);
    return g_test_run();
}
