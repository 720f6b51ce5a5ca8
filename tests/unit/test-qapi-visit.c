/*
 * Tests of the QAPI visitor core and the generated visitors, run on the
 * real schema's types: round trips (C -> JSON -> C -> JSON) for structs,
 * flat unions, alternates (object, string and null branches), lists and
 * enums; QEMU's error texts with nested paths; integer range checks;
 * keyval input; events and introspection data.
 */
#include "util/common.h"
#include "util/error.h"
#include "qapi/qapi-types.h"
#include "qapi/qapi-visit.h"
#include "qapi/qapi-events.h"
#include "qapi/qapi-introspect.h"
#include "qapi/qmp-registry.h"
#include "qapi/json-input-visitor.h"
#include "qapi/json-output-visitor.h"
#include "qapi/dealloc-visitor.h"

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);

    g_assert_nonnull(j);
    return j;
}

/* Visit text as BlockdevOptions; returns the object or NULL + *err. */
static BlockdevOptions *input_options(const char *text, Error **errp)
{
    json_t *j = parse(text);
    Visitor *v = json_input_visitor_new(j);
    BlockdevOptions *opts = NULL;

    visit_type_BlockdevOptions(v, NULL, &opts, errp);
    visit_free(v);
    json_decref(j);
    return opts;
}

static json_t *output_options(BlockdevOptions *opts)
{
    Visitor *v = json_output_visitor_new();
    json_t *out = NULL;

    g_assert_true(visit_type_BlockdevOptions(v, NULL, &opts, &error_abort));
    visit_complete(v, &out);
    visit_free(v);
    return out;
}

static void check_round_trip_options(const char *text)
{
    json_t *in = parse(text);
    BlockdevOptions *opts = input_options(text, &error_abort);
    json_t *out = output_options(opts);
    g_autofree char *dump = json_dumps(out, JSON_COMPACT);

    if (!json_equal(in, out)) {
        g_test_message("in:  %s\nout: %s", text, dump);
        g_assert_not_reached();
    }
    json_decref(in);
    json_decref(out);
    qapi_free_BlockdevOptions(opts);
}

static void test_union_round_trip(void)
{
    check_round_trip_options(
        "{\"driver\":\"qcow2\",\"node-name\":\"q0\",\"read-only\":true,"
        "\"cache\":{\"direct\":true},"
        "\"file\":{\"driver\":\"file\",\"filename\":\"/tmp/x\","
        "\"locking\":\"off\",\"aio\":\"io_uring\"},"
        "\"backing\":null,\"overlap-check\":{\"template\":\"all\","
        "\"main-header\":false},\"l2-cache-size\":1048576}");
    check_round_trip_options(
        "{\"driver\":\"qcow2\",\"file\":\"f0\",\"backing\":\"b0\","
        "\"overlap-check\":\"cached\",\"data-file\":\"d0\"}");
    check_round_trip_options(
        "{\"driver\":\"null-co\",\"size\":4096,\"read-zeroes\":true,"
        "\"latency-ns\":10}");
    check_round_trip_options(
        "{\"driver\":\"raw\",\"file\":{\"driver\":\"null-aio\"},"
        "\"offset\":512,\"size\":1024}");
    check_round_trip_options(
        "{\"driver\":\"blkdebug\",\"image\":\"f0\",\"inject-error\":"
        "[{\"event\":\"read_aio\",\"errno\":5,\"once\":true},"
        "{\"event\":\"l2_load\"}],\"take-child-perms\":[\"write\","
        "\"resize\"]}");
    check_round_trip_options(
        "{\"driver\":\"nbd\",\"server\":{\"type\":\"unix\","
        "\"path\":\"/tmp/s\"},\"export\":\"e\"}");
    /* a driver without a branch has only the common members */
    check_round_trip_options("{\"driver\":\"vvfat\",\"node-name\":\"v\"}");
}

static void test_union_c_layout(void)
{
    BlockdevOptions *o = input_options(
        "{\"driver\":\"qcow2\",\"node-name\":\"q0\","
        "\"file\":{\"driver\":\"file\",\"filename\":\"a.qcow2\"},"
        "\"backing\":null,\"lazy-refcounts\":true}", &error_abort);

    g_assert_cmpint(o->driver, ==, BLOCKDEV_DRIVER_QCOW2);
    g_assert_true(o->has_node_name);
    g_assert_cmpstr(o->node_name, ==, "q0");
    g_assert_false(o->has_read_only);
    g_assert_cmpint(o->u.qcow2.file->type, ==, QTYPE_QDICT);
    g_assert_cmpint(o->u.qcow2.file->u.definition->driver, ==,
                    BLOCKDEV_DRIVER_FILE);
    g_assert_cmpstr(o->u.qcow2.file->u.definition->u.file.filename, ==,
                    "a.qcow2");
    g_assert_true(o->u.qcow2.has_backing);
    g_assert_cmpint(o->u.qcow2.backing->type, ==, QTYPE_QNULL);
    g_assert_true(o->u.qcow2.has_lazy_refcounts);
    g_assert_true(o->u.qcow2.lazy_refcounts);
    g_assert_false(o->u.qcow2.has_overlap_check);
    g_assert_cmpstr(BlockdevDriver_str(o->driver), ==, "qcow2");
    qapi_free_BlockdevOptions(o);
}

static void check_options_error(const char *text, const char *expected)
{
    Error *err = NULL;
    BlockdevOptions *o = input_options(text, &err);

    g_assert_null(o);
    g_assert_nonnull(err);
    g_assert_cmpstr(error_get_pretty(err), ==, expected);
    error_free(err);
}

static void test_options_errors(void)
{
    check_options_error("{\"node-name\":\"n\"}",
                        "Parameter 'driver' is missing");
    check_options_error("{\"driver\":5}",
                        "Invalid parameter type for 'driver', expected: "
                        "string");
    check_options_error("{\"driver\":\"bogus\"}",
                        "Parameter 'driver' does not accept value 'bogus'");
    check_options_error("{\"driver\":\"null-co\",\"size\":\"x\"}",
                        "Invalid parameter type for 'size', expected: "
                        "integer");
    check_options_error("{\"driver\":\"null-co\",\"size\":1.0}",
                        "Invalid parameter type for 'size', expected: "
                        "integer");
    check_options_error("{\"driver\":\"null-co\",\"cache\":5}",
                        "Invalid parameter type for 'cache', expected: "
                        "object");
    check_options_error("{\"driver\":\"null-co\",\"cache\":{\"direct\":true,"
                        "\"foo\":1}}", "Parameter 'cache.foo' is unexpected");
    check_options_error("{\"driver\":\"null-co\",\"bar\":1}",
                        "Parameter 'bar' is unexpected");
    check_options_error("{\"driver\":\"qcow2\",\"file\":{\"driver\":"
                        "\"file\"}}", "Parameter 'file.filename' is missing");
    check_options_error("{\"driver\":\"qcow2\",\"file\":5}",
                        "Invalid parameter type for 'file', expected: "
                        "BlockdevRef");
    check_options_error("{\"driver\":\"qcow2\",\"file\":\"f\",\"backing\":5}",
                        "Invalid parameter type for 'backing', expected: "
                        "BlockdevRefOrNull");
    check_options_error("{\"driver\":\"qcow2\",\"file\":\"f\","
                        "\"overlap-check\":{\"template\":\"bogus\"}}",
                        "Parameter 'template' does not accept value "
                        "'bogus'");
    check_options_error("{\"driver\":\"qcow2\",\"file\":\"f\","
                        "\"overlap-check\":{\"main-header\":5}}",
                        "Invalid parameter type for 'overlap-check."
                        "main-header', expected: boolean");
    check_options_error("{\"driver\":\"blkdebug\",\"image\":\"x\","
                        "\"inject-error\":5}",
                        "Invalid parameter type for 'inject-error', "
                        "expected: array");
    check_options_error("{\"driver\":\"blkdebug\",\"image\":\"x\","
                        "\"inject-error\":[5]}",
                        "Invalid parameter type for 'inject-error[0]', "
                        "expected: object");
    check_options_error("{\"driver\":\"blkdebug\",\"image\":\"x\","
                        "\"inject-error\":[{\"event\":\"read_aio\"},"
                        "{\"event\":\"read_aio\",\"errno\":\"x\"}]}",
                        "Invalid parameter type for 'inject-error[1].errno',"
                        " expected: integer");
    check_options_error("{\"driver\":\"blkdebug\",\"image\":\"x\","
                        "\"max-transfer\":3000000000}",
                        "Parameter 'max-transfer' expects int32_t");
    check_options_error("{\"driver\":\"nbd\",\"server\":{\"type\":\"inet\","
                        "\"host\":\"a\",\"port\":5}}",
                        "Invalid parameter type for 'server.port', "
                        "expected: string");
    check_options_error("[]", "Invalid parameter type for 'null', "
                        "expected: object");
}

/* Visit the members of an implicit argument type, as a marshaller does. */
#define CHECK_ARGS_ERROR(type, text, expected) do {                      \
    json_t *j_ = parse(text);                                            \
    Visitor *v_ = json_input_visitor_new(j_);                            \
    type arg_ = {0};                                                     \
    Error *err_ = NULL;                                                  \
    bool ok_ = false;                                                    \
                                                                         \
    if (visit_start_struct(v_, NULL, NULL, 0, &err_)) {                  \
        if (visit_type_##type##_members(v_, &arg_, &err_)) {             \
            ok_ = visit_check_struct(v_, &err_);                         \
        }                                                                \
        visit_end_struct(v_, NULL);                                      \
    }                                                                    \
    visit_free(v_);                                                      \
    v_ = qapi_dealloc_visitor_new();                                     \
    visit_start_struct(v_, NULL, NULL, 0, NULL);                         \
    visit_type_##type##_members(v_, &arg_, NULL);                        \
    visit_end_struct(v_, NULL);                                          \
    visit_free(v_);                                                      \
    json_decref(j_);                                                     \
    g_assert_false(ok_);                                                 \
    g_assert_nonnull(err_);                                              \
    g_assert_cmpstr(error_get_pretty(err_), ==, expected);               \
    error_free(err_);                                                    \
} while (0)

static void test_command_arg_errors(void)
{
    CHECK_ARGS_ERROR(BlockDirtyBitmapAdd,
                     "{\"node\":\"x\",\"name\":\"y\",\"granularity\":-1}",
                     "Parameter 'granularity' expects uint32_t");
    CHECK_ARGS_ERROR(BlockDirtyBitmapAdd,
                     "{\"node\":\"x\",\"name\":\"y\",\"granularity\":"
                     "4294967296}",
                     "Parameter 'granularity' expects uint32_t");
    CHECK_ARGS_ERROR(BlockDirtyBitmapAdd,
                     "{\"node\":\"x\",\"name\":\"y\",\"granularity\":1.5}",
                     "Parameter 'granularity' expects uint64");
    CHECK_ARGS_ERROR(BlockDirtyBitmapAdd,
                     "{\"node\":\"x\",\"name\":\"y\",\"granularity\":\"12\"}",
                     "Parameter 'granularity' expects uint64");
    CHECK_ARGS_ERROR(BlockDirtyBitmapAdd,
                     "{\"node\":\"x\",\"name\":null}",
                     "Invalid parameter type for 'name', expected: string");
    CHECK_ARGS_ERROR(BlockDirtyBitmapAdd,
                     "{\"node\":\"x\",\"name\":\"y\",\"persistent\":1}",
                     "Invalid parameter type for 'persistent', expected: "
                     "boolean");
    CHECK_ARGS_ERROR(BlockDirtyBitmapAdd, "{\"node\":\"x\"}",
                     "Parameter 'name' is missing");
    CHECK_ARGS_ERROR(BlockDirtyBitmapAdd,
                     "{\"node\":\"x\",\"name\":\"y\",\"x\":1}",
                     "Parameter 'x' is unexpected");
    CHECK_ARGS_ERROR(BlockDirtyBitmapMerge,
                     "{\"node\":\"x\",\"target\":\"y\",\"bitmaps\":[null]}",
                     "Invalid parameter type for 'null', expected: "
                     "BlockDirtyBitmapOrStr");
    CHECK_ARGS_ERROR(BlockDirtyBitmapMerge,
                     "{\"node\":\"x\",\"target\":\"y\",\"bitmaps\":[\"a\","
                     "{\"node\":\"a\"}]}",
                     "Parameter 'bitmaps[1].name' is missing");
    CHECK_ARGS_ERROR(BlockDirtyBitmapMerge,
                     "{\"node\":\"x\",\"target\":\"y\",\"bitmaps\":{}}",
                     "Invalid parameter type for 'bitmaps', expected: array");
    CHECK_ARGS_ERROR(q_obj_transaction_arg,
                     "{\"actions\":[{\"type\":\"block-dirty-bitmap-add\","
                     "\"data\":{\"node\":\"a\"}}]}",
                     "Parameter 'actions[0].data.name' is missing");
    CHECK_ARGS_ERROR(q_obj_transaction_arg,
                     "{\"actions\":[{\"type\":\"block-dirty-bitmap-add\"}]}",
                     "Parameter 'actions[0].data' is missing");
    CHECK_ARGS_ERROR(q_obj_transaction_arg, "{\"actions\":[{\"data\":{}}]}",
                     "Parameter 'actions[0].type' is missing");
    CHECK_ARGS_ERROR(q_obj_transaction_arg,
                     "{\"actions\":[{\"type\":\"bogus\"}]}",
                     "Parameter 'type' does not accept value 'bogus'");
    CHECK_ARGS_ERROR(q_obj_transaction_arg,
                     "{\"actions\":[{\"type\":\"block-dirty-bitmap-add\","
                     "\"data\":{\"node\":\"a\",\"name\":\"b\","
                     "\"granularity\":\"x\"}}]}",
                     "Parameter 'actions[0].data.granularity' expects "
                     "uint64");
    CHECK_ARGS_ERROR(q_obj_blockdev_reopen_arg,
                     "{\"options\":[{\"driver\":\"qcow2\","
                     "\"node-name\":\"x\"}]}",
                     "Parameter 'options[0].file' is missing");
    CHECK_ARGS_ERROR(q_obj_blockdev_reopen_arg,
                     "{\"options\":[{\"driver\":\"qcow2\",\"node-name\":\"x\","
                     "\"file\":{\"driver\":\"file\",\"filename\":\"x\","
                     "\"bogus\":1}}]}",
                     "Parameter 'options[0].file.bogus' is unexpected");
    CHECK_ARGS_ERROR(q_obj_qmp_capabilities_arg, "{\"enable\":[\"x\"]}",
                     "Parameter 'null' does not accept value 'x'");
    CHECK_ARGS_ERROR(q_obj_blockdev_create_arg,
                     "{\"job-id\":\"j\",\"options\":{\"driver\":\"raw\","
                     "\"size\":1}}",
                     "Parameter 'options.size' is unexpected");
    CHECK_ARGS_ERROR(q_obj_blockdev_create_arg,
                     "{\"job-id\":\"j\",\"options\":{\"driver\":\"qcow2\","
                     "\"file\":\"f\",\"size\":1.5}}",
                     "Parameter 'options.size' expects uint64");
    CHECK_ARGS_ERROR(q_obj_nbd_server_start_arg,
                     "{\"addr\":{\"type\":\"unix\",\"path\":5}}",
                     "Parameter 'addr.data' is missing");
}

static void test_alternate_branches(void)
{
    const char *text = "{\"node\":\"n\",\"target\":\"t\",\"bitmaps\":"
                       "[\"a\",{\"node\":\"m\",\"name\":\"b\"}]}";
    json_t *in = parse(text);
    Visitor *v = json_input_visitor_new(in);
    BlockDirtyBitmapMerge *m = NULL;
    json_t *out = NULL;

    g_assert_true(visit_type_BlockDirtyBitmapMerge(v, NULL, &m,
                                                   &error_abort));
    visit_free(v);
    g_assert_cmpint(m->bitmaps->value->type, ==, QTYPE_QSTRING);
    g_assert_cmpstr(m->bitmaps->value->u.local, ==, "a");
    g_assert_cmpint(m->bitmaps->next->value->type, ==, QTYPE_QDICT);
    g_assert_cmpstr(m->bitmaps->next->value->u.external->name, ==, "b");
    g_assert_null(m->bitmaps->next->next);

    v = json_output_visitor_new();
    g_assert_true(visit_type_BlockDirtyBitmapMerge(v, NULL, &m,
                                                   &error_abort));
    visit_complete(v, &out);
    visit_free(v);
    g_assert_true(json_equal(in, out));
    json_decref(out);
    json_decref(in);
    qapi_free_BlockDirtyBitmapMerge(m);
}

static void test_empty_list_and_null(void)
{
    json_t *in = parse("{\"node\":\"n\",\"target\":\"t\",\"bitmaps\":[]}");
    Visitor *v = json_input_visitor_new(in);
    BlockDirtyBitmapMerge *m = NULL;

    g_assert_true(visit_type_BlockDirtyBitmapMerge(v, NULL, &m,
                                                   &error_abort));
    visit_free(v);
    g_assert_null(m->bitmaps);
    qapi_free_BlockDirtyBitmapMerge(m);
    json_decref(in);
    qapi_free_BlockDirtyBitmapMerge(NULL);      /* must be a no-op */
}

/* Output follows schema order, optional members only when has_ is set. */
static void test_output_order(void)
{
    BlockDirtyInfo info = {
        .has_name = true, .name = (char *)"b0", .count = 196608,
        .granularity = 65536, .recording = true, .busy = false,
        .persistent = true,
    };
    BlockDirtyInfo *p = &info;
    Visitor *v = json_output_visitor_new();
    json_t *out = NULL;
    g_autofree char *s = NULL;

    g_assert_true(visit_type_BlockDirtyInfo(v, NULL, &p, &error_abort));
    visit_complete(v, &out);
    visit_free(v);
    s = json_dumps(out, JSON_COMPACT);
    g_assert_cmpstr(s, ==, "{\"name\":\"b0\",\"count\":196608,"
                    "\"granularity\":65536,\"recording\":true,"
                    "\"busy\":false,\"persistent\":true}");
    json_decref(out);
}

static void test_enum_tables(void)
{
    Error *err = NULL;

    g_assert_cmpint(JOB_STATUS__MAX, ==, 11);
    g_assert_cmpstr(JobStatus_str(JOB_STATUS_CONCLUDED), ==, "concluded");
    g_assert_cmpstr(BlockdevDriver_str(BLOCKDEV_DRIVER_NULL_CO), ==,
                    "null-co");
    g_assert_cmpstr(BlockdevDriver_str(BLOCKDEV_DRIVER_HOST_DEVICE), ==,
                    "host_device");
    g_assert_cmpstr(BlkdebugEvent_str(BLKDBG_L1_UPDATE), ==, "l1_update");
    g_assert_cmpint(qapi_enum_parse(&Qcow2OverlapCheckMode_lookup, "cached",
                                    -1, &error_abort), ==,
                    QCOW2_OVERLAP_CHECK_MODE_CACHED);
    g_assert_cmpint(qapi_enum_parse(&OnOffAuto_lookup, "maybe", -1, &err),
                    ==, -1);
    g_assert_nonnull(err);
    error_free(err);
    g_assert_null(JobStatus_str(JOB_STATUS__MAX));
}

static void test_keyval_input(void)
{
    json_t *in = parse("{\"driver\":\"null-co\",\"size\":\"64k\","
                       "\"read-zeroes\":\"on\",\"latency-ns\":\"7\","
                       "\"cache\":{\"direct\":\"off\"}}");
    Visitor *v = json_input_visitor_new_keyval(in);
    BlockdevOptions *o = NULL;
    Error *err = NULL;

    /* 'size' of null-co is an int, so "64k" is not a valid integer */
    g_assert_false(visit_type_BlockdevOptions(v, NULL, &o, &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Parameter 'size' expects integer");
    error_free(err);
    visit_free(v);
    json_object_set_new(in, "size", json_string("65536"));
    v = json_input_visitor_new_keyval(in);
    g_assert_true(visit_type_BlockdevOptions(v, NULL, &o, &error_abort));
    visit_free(v);
    g_assert_cmpint(o->u.null_co.size, ==, 65536);
    g_assert_true(o->u.null_co.read_zeroes);
    g_assert_cmpuint(o->u.null_co.latency_ns, ==, 7);
    g_assert_true(o->cache->has_direct);
    g_assert_false(o->cache->direct);
    qapi_free_BlockdevOptions(o);
    json_decref(in);
}

static char *last_event;
static json_t *last_data;

static void record_event(const char *name, json_t *data)
{
    g_free(last_event);
    json_decref(last_data);
    last_event = g_strdup(name);
    last_data = data;
}

static void test_events(void)
{
    g_autofree char *s = NULL;

    qapi_event_set_emitter(record_event);
    qapi_event_send_job_status_change("c1", JOB_STATUS_CONCLUDED);
    g_assert_cmpstr(last_event, ==, "JOB_STATUS_CHANGE");
    s = json_dumps(last_data, JSON_COMPACT);
    g_assert_cmpstr(s, ==, "{\"id\":\"c1\",\"status\":\"concluded\"}");
    qapi_event_send_block_export_deleted("e0");
    g_assert_cmpstr(last_event, ==, "BLOCK_EXPORT_DELETED");
    g_assert_cmpstr(json_string_value(json_object_get(last_data, "id")), ==,
                    "e0");
    g_assert_cmpstr(QAPIEvent_str(QAPI_EVENT_JOB_STATUS_CHANGE), ==,
                    "JOB_STATUS_CHANGE");
    qapi_event_set_emitter(NULL);
    g_clear_pointer(&last_event, g_free);
    g_clear_pointer(&last_data, json_decref);
    /* without an emitter events are dropped (and freed) */
    qapi_event_send_job_status_change("c1", JOB_STATUS_NULL);
}

static json_t *find_entity(json_t *schema, const char *name)
{
    size_t i;
    json_t *e;

    json_array_foreach(schema, i, e) {
        if (!strcmp(json_string_value(json_object_get(e, "name")), name)) {
            return e;
        }
    }
    return NULL;
}

static void test_introspection(void)
{
    json_t *schema = qmp_schema_introspect();
    json_t *cmd, *args, *e;
    size_t i;
    bool found_file = false;

    g_assert_true(json_is_array(schema));
    /* commands and events first, in schema order */
    e = json_array_get(schema, 0);
    g_assert_cmpstr(json_string_value(json_object_get(e, "name")), ==,
                    "blockdev-add");
    cmd = find_entity(schema, "blockdev-add");
    g_assert_nonnull(cmd);
    /* type names are masked as numbers in order of first use */
    g_assert_cmpstr(json_string_value(json_object_get(cmd, "arg-type")), ==,
                    "0");
    e = find_entity(schema, json_string_value(json_object_get(cmd,
                                                              "ret-type")));
    g_assert_cmpstr(json_string_value(json_object_get(e, "meta-type")), ==,
                    "object");
    g_assert_cmpuint(json_array_size(json_object_get(e, "members")), ==, 0);
    args = find_entity(schema, json_string_value(json_object_get(cmd,
                                                                 "arg-type")));
    g_assert_nonnull(args);
    g_assert_cmpstr(json_string_value(json_object_get(args, "tag")), ==,
                    "driver");
    json_array_foreach(json_object_get(args, "variants"), i, e) {
        if (!strcmp(json_string_value(json_object_get(e, "case")), "file")) {
            found_file = true;
        }
    }
    g_assert_true(found_file);
    /* every variant of the driver enum is listed, implicit ones as "0" */
    g_assert_cmpuint(json_array_size(json_object_get(args, "variants")), ==,
                     BLOCKDEV_DRIVER__MAX);
    g_assert_nonnull(find_entity(schema, "int"));
    g_assert_null(find_entity(schema, "uint32"));
    g_assert_null(find_entity(schema, "BlockdevOptions"));
    cmd = find_entity(schema, "x-debug-query-block-graph");
    g_assert_cmpstr(json_string_value(json_array_get(
        json_object_get(cmd, "features"), 0)), ==, "unstable");
    json_decref(schema);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qapi/union-round-trip", test_union_round_trip);
    g_test_add_func("/qapi/union-c-layout", test_union_c_layout);
    g_test_add_func("/qapi/options-errors", test_options_errors);
    g_test_add_func("/qapi/command-arg-errors", test_command_arg_errors);
    g_test_add_func("/qapi/alternate-branches", test_alternate_branches);
    g_test_add_func("/qapi/empty-list-and-null", test_empty_list_and_null);
    g_test_add_func("/qapi/output-order", test_output_order);
    g_test_add_func("/qapi/enum-tables", test_enum_tables);
    g_test_add_func("/qapi/keyval-input", test_keyval_input);
    g_test_add_func("/qapi/events", test_events);
    g_test_add_func("/qapi/introspection", test_introspection);
    return g_test_run();
}
