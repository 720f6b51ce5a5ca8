/*
 * Output visitor: builds a jansson value from C data.  Containers are
 * attached to their parent as soon as they are started (jansson values are
 * reference-counted, so the parent keeps them alive) and the stack only
 * borrows them.  Members appear in the order visited, which for generated
 * code is schema order.
 *
 * Limitation: jansson integers are signed 64-bit, so a uint64 above
 * INT64_MAX is emitted as its two's-complement negative value.
 */
#include "qapi/json-output-visitor.h"
#include "qapi/visitor-impl.h"

typedef struct JsonOutputVisitor {
    Visitor visitor;
    json_t *root;
    GPtrArray *stack;   /* json_t * containers (borrowed), innermost last */
} JsonOutputVisitor;

static JsonOutputVisitor *to_jov(Visitor *v)
{
    return container_of(v, JsonOutputVisitor, visitor);
}

/* Attach value (reference stolen) under name to the current container. */
static void add_value(JsonOutputVisitor *jov, const char *name,
                      json_t *value)
{
    json_t *top;

    assert(value);
    if (!jov->stack->len) {
        assert(!jov->root);
        jov->root = value;
        return;
    }
    top = g_ptr_array_index(jov->stack, jov->stack->len - 1);
    if (json_is_object(top)) {
        assert(name);
        json_object_set_new(top, name, value);
    } else {
        json_array_append_new(top, value);
    }
}

static bool jov_start_struct(Visitor *v, const char *name, void **obj,
                             size_t size, Error **errp)
{
    JsonOutputVisitor *jov = to_jov(v);
    json_t *o = json_object();

    add_value(jov, name, o);
    g_ptr_array_add(jov->stack, o);
    return true;
}

static void jov_end_container(Visitor *v, void **obj)
{
    JsonOutputVisitor *jov = to_jov(v);

    assert(jov->stack->len);
    g_ptr_array_remove_index(jov->stack, jov->stack->len - 1);
}

static bool jov_start_list(Visitor *v, const char *name, GenericList **list,
                           size_t size, Error **errp)
{
    JsonOutputVisitor *jov = to_jov(v);
    json_t *a = json_array();

    add_value(jov, name, a);
    g_ptr_array_add(jov->stack, a);
    return true;
}

static GenericList *jov_next_list(Visitor *v, GenericList *tail, size_t size)
{
    return tail->next;
}

static bool jov_start_alternate(Visitor *v, const char *name,
                                GenericAlternate **obj, size_t size,
                                Error **errp)
{
    return true;
}

static bool jov_type_int64(Visitor *v, const char *name, int64_t *obj,
                           Error **errp)
{
    add_value(to_jov(v), name, json_integer(*obj));
    return true;
}

static bool jov_type_uint64(Visitor *v, const char *name, uint64_t *obj,
                            Error **errp)
{
    add_value(to_jov(v), name, json_integer((json_int_t)*obj));
    return true;
}

static bool jov_type_bool(Visitor *v, const char *name, bool *obj,
                          Error **errp)
{
    add_value(to_jov(v), name, json_boolean(*obj));
    return true;
}

static bool jov_type_str(Visitor *v, const char *name, char **obj,
                         Error **errp)
{
    const char *s = *obj ? *obj : "";
    json_t *value = json_string(s);

    if (!value) {
        /* not valid UTF-8: keep the bytes rather than lose the member */
        value = json_string_nocheck(s);
    }
    add_value(to_jov(v), name, value);
    return true;
}

static bool jov_type_number(Visitor *v, const char *name, double *obj,
                            Error **errp)
{
    add_value(to_jov(v), name, json_real(*obj));
    return true;
}

static bool jov_type_any(Visitor *v, const char *name, json_t **obj,
                         Error **errp)
{
    add_value(to_jov(v), name, *obj ? json_incref(*obj) : json_null());
    return true;
}

static bool jov_type_null(Visitor *v, const char *name, json_t **obj,
                          Error **errp)
{
    add_value(to_jov(v), name, json_null());
    return true;
}

static void jov_complete(Visitor *v, void *opaque)
{
    JsonOutputVisitor *jov = to_jov(v);

    assert(jov->root && !jov->stack->len);
    *(json_t **)opaque = json_incref(jov->root);
}

static void jov_free(Visitor *v)
{
    JsonOutputVisitor *jov = to_jov(v);

    json_decref(jov->root);
    g_ptr_array_free(jov->stack, true);
    g_free(jov);
}

Visitor *json_output_visitor_new(void)
{
    JsonOutputVisitor *jov = g_new0(JsonOutputVisitor, 1);
    Visitor *v = &jov->visitor;

    jov->stack = g_ptr_array_new();
    v->type = VISITOR_OUTPUT;
    v->start_struct = jov_start_struct;
    v->end_struct = jov_end_container;
    v->start_list = jov_start_list;
    v->next_list = jov_next_list;
    v->end_list = jov_end_container;
    v->start_alternate = jov_start_alternate;
    v->type_int64 = jov_type_int64;
    v->type_uint64 = jov_type_uint64;
    v->type_bool = jov_type_bool;
    v->type_str = jov_type_str;
    v->type_number = jov_type_number;
    v->type_any = jov_type_any;
    v->type_null = jov_type_null;
    v->complete = jov_complete;
    v->free = jov_free;
    return v;
}
