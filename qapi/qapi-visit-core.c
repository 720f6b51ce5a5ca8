/*
 * The visitor core: the public visit_*() entry points dispatch to the
 * visitor's method table; sized integers and enums are built here on top
 * of the 64-bit and string primitives so every visitor gets QEMU's range
 * and enum error texts for free:
 *   "Parameter 'NAME' expects uint32_t"   (out of range; bare member name)
 *   "Parameter 'NAME' does not accept value 'V'"
 * (QEMU reports these two with the member's own name, not its full path;
 * a list element has no name and shows as 'null'.)
 */
#include "qapi/visitor-impl.h"

VisitorType visit_get_type(Visitor *v)
{
    return v->type;
}

void visit_complete(Visitor *v, void *opaque)
{
    assert(v->type == VISITOR_OUTPUT && v->complete);
    v->complete(v, opaque);
}

void visit_free(Visitor *v)
{
    if (v) {
        v->free(v);
    }
}

bool visit_start_struct(Visitor *v, const char *name, void **obj,
                        size_t size, Error **errp)
{
    return v->start_struct(v, name, obj, size, errp);
}

bool visit_check_struct(Visitor *v, Error **errp)
{
    return v->check_struct ? v->check_struct(v, errp) : true;
}

void visit_end_struct(Visitor *v, void **obj)
{
    v->end_struct(v, obj);
}

bool visit_start_list(Visitor *v, const char *name, GenericList **list,
                      size_t size, Error **errp)
{
    return v->start_list(v, name, list, size, errp);
}

GenericList *visit_next_list(Visitor *v, GenericList *tail, size_t size)
{
    assert(tail);
    return v->next_list(v, tail, size);
}

bool visit_check_list(Visitor *v, Error **errp)
{
    return v->check_list ? v->check_list(v, errp) : true;
}

void visit_end_list(Visitor *v, void **list)
{
    v->end_list(v, list);
}

bool visit_start_alternate(Visitor *v, const char *name,
                           GenericAlternate **obj, size_t size, Error **errp)
{
    assert(obj && size >= sizeof(GenericAlternate));
    return v->start_alternate(v, name, obj, size, errp);
}

void visit_end_alternate(Visitor *v, void **obj)
{
    if (v->end_alternate) {
        v->end_alternate(v, obj);
    }
}

bool visit_optional(Visitor *v, const char *name, bool *present)
{
    if (v->optional) {
        return v->optional(v, name, present);
    }
    return *present;
}

static bool visit_intN(Visitor *v, const char *name, int64_t *value,
                       int64_t min, int64_t max, const char *type,
                       Error **errp)
{
    if (!v->type_int64(v, name, value, errp)) {
        return false;
    }
    if (*value < min || *value > max) {
        error_setg(errp, "Parameter '%s' expects %s", name ? name : "null",
                   type);
        return false;
    }
    return true;
}

static bool visit_uintN(Visitor *v, const char *name, uint64_t *value,
                        uint64_t max, const char *type, Error **errp)
{
    if (!v->type_uint64(v, name, value, errp)) {
        return false;
    }
    if (*value > max) {
        error_setg(errp, "Parameter '%s' expects %s", name ? name : "null",
                   type);
        return false;
    }
    return true;
}

#define DEFINE_VISIT_INT(fn, ctype, min, max, tname)                      \
bool fn(Visitor *v, const char *name, ctype *obj, Error **errp)           \
{                                                                         \
    int64_t value = *obj;                                                 \
                                                                          \
    if (!visit_intN(v, name, &value, min, max, tname, errp)) {            \
        return false;                                                     \
    }                                                                     \
    *obj = value;                                                         \
    return true;                                                          \
}

#define DEFINE_VISIT_UINT(fn, ctype, max, tname)                          \
bool fn(Visitor *v, const char *name, ctype *obj, Error **errp)           \
{                                                                         \
    uint64_t value = *obj;                                                \
                                                                          \
    if (!visit_uintN(v, name, &value, max, tname, errp)) {                \
        return false;                                                     \
    }                                                                     \
    *obj = value;                                                         \
    return true;                                                          \
}

DEFINE_VISIT_INT(visit_type_int8, int8_t, INT8_MIN, INT8_MAX, "int8_t")
DEFINE_VISIT_INT(visit_type_int16, int16_t, INT16_MIN, INT16_MAX, "int16_t")
DEFINE_VISIT_INT(visit_type_int32, int32_t, INT32_MIN, INT32_MAX, "int32_t")
DEFINE_VISIT_UINT(visit_type_uint8, uint8_t, UINT8_MAX, "uint8_t")
DEFINE_VISIT_UINT(visit_type_uint16, uint16_t, UINT16_MAX, "uint16_t")
DEFINE_VISIT_UINT(visit_type_uint32, uint32_t, UINT32_MAX, "uint32_t")

bool visit_type_int(Visitor *v, const char *name, int64_t *obj, Error **errp)
{
    return v->type_int64(v, name, obj, errp);
}

bool visit_type_int64(Visitor *v, const char *name, int64_t *obj,
                      Error **errp)
{
    return v->type_int64(v, name, obj, errp);
}

bool visit_type_uint64(Visitor *v, const char *name, uint64_t *obj,
                       Error **errp)
{
    return v->type_uint64(v, name, obj, errp);
}

bool visit_type_size(Visitor *v, const char *name, uint64_t *obj,
                     Error **errp)
{
    if (v->type_size) {
        return v->type_size(v, name, obj, errp);
    }
    return v->type_uint64(v, name, obj, errp);
}

bool visit_type_bool(Visitor *v, const char *name, bool *obj, Error **errp)
{
    return v->type_bool(v, name, obj, errp);
}

bool visit_type_str(Visitor *v, const char *name, char **obj, Error **errp)
{
    bool ok = v->type_str(v, name, obj, errp);

    /* input never leaves a stale pointer behind on failure */
    if (!ok && v->type == VISITOR_INPUT) {
        *obj = NULL;
    }
    return ok;
}

bool visit_type_number(Visitor *v, const char *name, double *obj,
                       Error **errp)
{
    return v->type_number(v, name, obj, errp);
}

bool visit_type_any(Visitor *v, const char *name, json_t **obj, Error **errp)
{
    return v->type_any(v, name, obj, errp);
}

bool visit_type_null(Visitor *v, const char *name, json_t **obj,
                     Error **errp)
{
    return v->type_null(v, name, obj, errp);
}

bool visit_type_enum(Visitor *v, const char *name, int *obj,
                     const QEnumLookup *lookup, Error **errp)
{
    switch (v->type) {
    case VISITOR_INPUT: {
        g_autofree char *str = NULL;
        int value;

        if (!v->type_str(v, name, &str, errp)) {
            return false;
        }
        value = qapi_enum_parse(lookup, str, -1, NULL);
        if (value < 0) {
            error_setg(errp, "Parameter '%s' does not accept value '%s'",
                       name ? name : "null", str);
            return false;
        }
        *obj = value;
        return true;
    }
    case VISITOR_OUTPUT: {
        const char *str = qapi_enum_lookup(lookup, *obj);

        if (!str) {
            error_setg(errp, "Parameter '%s' does not accept value '%d'",
                       name ? name : "null", *obj);
            return false;
        }
        return v->type_str(v, name, (char **)&str, errp);
    }
    case VISITOR_DEALLOC:
        return true;
    }
    abort();
}
