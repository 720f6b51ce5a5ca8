/*
 * Run-time helpers shared by generated QAPI code: enum name tables, the
 * JSON-kind classification alternates use, the command table lookup and the
 * event emitter hook the monitor installs.
 */
#include "qapi/qapi-util.h"
#include "qapi/qmp-registry.h"

const char *qapi_enum_lookup(const QEnumLookup *lookup, int val)
{
    if (val < 0 || val >= lookup->size) {
        return NULL;
    }
    return lookup->array[val];
}

int qapi_enum_parse(const QEnumLookup *lookup, const char *str, int def,
                    Error **errp)
{
    if (!str) {
        return def;
    }
    for (int i = 0; i < lookup->size; i++) {
        /* values compiled out by an 'if' leave NULL holes */
        if (lookup->array[i] && !strcmp(lookup->array[i], str)) {
            return i;
        }
    }
    error_setg(errp, "Invalid parameter '%s'", str);
    return -1;
}

const QEnumLookup QType_lookup = {
    .array = (const char *const[]) {
        [QTYPE_NONE] = "none",
        [QTYPE_QNULL] = "qnull",
        [QTYPE_QNUM] = "qnum",
        [QTYPE_QSTRING] = "qstring",
        [QTYPE_QDICT] = "qdict",
        [QTYPE_QLIST] = "qlist",
        [QTYPE_QBOOL] = "qbool",
    },
    .size = QTYPE__MAX,
};

QType qapi_json_qtype(const json_t *value)
{
    switch (json_typeof(value)) {
    case JSON_OBJECT:
        return QTYPE_QDICT;
    case JSON_ARRAY:
        return QTYPE_QLIST;
    case JSON_STRING:
        return QTYPE_QSTRING;
    case JSON_INTEGER:
    case JSON_REAL:
        return QTYPE_QNUM;
    case JSON_TRUE:
    case JSON_FALSE:
        return QTYPE_QBOOL;
    case JSON_NULL:
        return QTYPE_QNULL;
    }
    return QTYPE_NONE;
}

const QmpCommand *qmp_command_lookup(const QmpCommand *table,
                                     const char *name)
{
    for (; table->name; table++) {
        if (!strcmp(table->name, name)) {
            return table;
        }
    }
    return NULL;
}

static QapiEventEmitter *event_emitter;

void qapi_event_set_emitter(QapiEventEmitter *fn)
{
    event_emitter = fn;
}

void qapi_event_emit(const char *name, json_t *data)
{
    if (event_emitter) {
        event_emitter(name, data);
    } else {
        json_decref(data);
    }
}
