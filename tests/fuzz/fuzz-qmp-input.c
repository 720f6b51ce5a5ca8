/*
 * libFuzzer target: what a QMP client can send before any command runs --
 * the monitor's JSON stream framing (json_stream_feed in
 * monitor/json-stream.c: splitting a byte stream into JSON texts, with its
 * nesting and size limits) and the QAPI input visitors (qapi/
 * json-input-visitor.c and the generated visit_type_*) on every text it
 * emits.
 * The input is fed in two pieces, split where its first byte says, so that
 * texts straddling read() boundaries are exercised.  Each emitted value (or
 * its "arguments" member) is visited as BlockdevOptions,
 * BlockDirtyBitmapMerge and, from "actions", TransactionActionList, with the
 * strict (QMP) and the keyval (command-line) flavour of the visitor.
 * Properties: emit gets exactly one of value / error; a visit either
 * succeeds with an object or fails with an error.
 */
#include "monitor/monitor.h"
#include "qapi/json-input-visitor.h"
#include "qapi/qapi-types.h"
#include "qapi/qapi-visit.h"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define VISIT(T, val, keyval) do {                                        \
        Error *verr = NULL;                                               \
        T *obj = NULL;                                                    \
        Visitor *v = (keyval) ? json_input_visitor_new_keyval(val)        \
                              : json_input_visitor_new(val);              \
        bool ok = visit_type_##T(v, NULL, &obj, &verr);                   \
        assert(ok == (verr == NULL));                                     \
        if (ok) {                                                         \
            qapi_free_##T(obj);                                           \
        } else {                                                          \
            error_free(verr);                                             \
        }                                                                 \
        visit_free(v);                                                    \
    } while (0)

static void emit(void *opaque, json_t *value, Error *err)
{
    json_t *args;

    assert((value == NULL) != (err == NULL));
    (*(int *)opaque)++;
    if (err) {
        error_free(err);
        return;
    }
    args = json_is_object(value) && json_object_get(value, "arguments") ?
           json_object_get(value, "arguments") : value;
    for (int keyval = 0; keyval < 2; keyval++) {
        json_t *actions = json_is_object(args) ?
                          json_object_get(args, "actions") : NULL;

        VISIT(BlockdevOptions, args, keyval);
        VISIT(BlockDirtyBitmapMerge, args, keyval);
        if (actions) {
            VISIT(TransactionActionList, actions, keyval);
        }
    }
    json_decref(value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int count = 0;
    JsonStream *js;
    size_t cut;

    if (size < 1) {
        return 0;
    }
    cut = data[0] % size;
    js = json_stream_new(emit, &count);
    json_stream_feed(js, (const char *)data + 1, cut);
    json_stream_feed(js, (const char *)data + 1 + cut, size - 1 - cut);
    json_stream_reset(js);
    json_stream_free(js);
    return 0;
}
