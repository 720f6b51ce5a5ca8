/*
 * The query-qmp-schema marshaller.  The schema marks the command
 * 'gen': false because its reply is the generated introspection data
 * itself, not a C object to convert; so it is written here by hand, with
 * the same argument checking as generated marshallers (no arguments).
 */
#include "qapi/qapi-commands.h"
#include "qapi/qapi-introspect.h"

void qmp_marshal_query_qmp_schema(json_t *args, json_t **ret, Error **errp)
{
    if (args && json_object_size(args)) {
        const char *key;
        json_t *value;

        json_object_foreach(args, key, value) {
            error_setg(errp, "Parameter '%s' is unexpected", key);
            return;
        }
    }
    *ret = qmp_schema_introspect();
}
