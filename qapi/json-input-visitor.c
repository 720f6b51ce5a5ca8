/*
 * Input visitor: walks a jansson value while generated code fills in the
 * C object.  It keeps a stack of the containers entered so an error can
 * name the offending member by its full path ("options[0].file.filename"),
 * and, per object, the set of keys not yet visited so check_struct can
 * reject unexpected members.  Texts are QEMU 7.2's:
 *   Parameter 'P' is missing
 *   Parameter 'P' is unexpected
 *   Invalid parameter type for 'P', expected: string|integer|boolean|
 *       number|object|array|null
 *   Parameter 'P' expects uint64          (uint64/size given a non-integer)
 * A negative integer is accepted for uint64 and wraps, as in QEMU.
 *
 * In keyval mode (command-line options) scalars arrive as strings and are
 * converted here.
 */
#include "qapi/json-input-visitor.h"
#include "qapi/visitor-impl.h"

typedef struct InputFrame {
    json_t *value;          /* object or array being walked (borrowed) */
    const char *name;       /* name the container was entered under */
    GHashTable *unvisited;  /* object keys not yet visited */
    size_t index;           /* array: index of the current element */
} InputFrame;

typedef struct JsonInputVisitor {
    Visitor visitor;
    json_t *root;
    GPtrArray *stack;       /* of InputFrame *, innermost last */
    bool keyval;
    json_t *empty_list;     /* stands in for keyval's empty lists */
    GString *path;          /* scratch for full_name() */
} JsonInputVisitor;

static JsonInputVisitor *to_jiv(Visitor *v)
{
    return container_of(v, JsonInputVisitor, visitor);
}

static InputFrame *top_frame(JsonInputVisitor *jiv)
{
    if (!jiv->stack->len) {
        return NULL;
    }
    return g_ptr_array_index(jiv->stack, jiv->stack->len - 1);
}

/* "a.b[2].c" for member name of the innermost container. */
static const char *full_name(JsonInputVisitor *jiv, const char *name)
{
    GString *s = jiv->path;
    const char *cur = name;

    g_string_truncate(s, 0);
    for (int i = (int)jiv->stack->len - 1; i >= 0; i--) {
        InputFrame *f = g_ptr_array_index(jiv->stack, i);

        if (json_is_array(f->value)) {
            g_autofree char *idx = g_strdup_printf("[%zu]", f->index);
            g_string_prepend(s, idx);
        } else if (cur) {
            g_string_prepend(s, cur);
            g_string_prepend_c(s, '.');
        }
        cur = f->name;
    }
    if (cur) {
        g_string_prepend(s, cur);
        g_string_prepend_c(s, '.');
    }
    if (s->len && s->str[0] == '.') {
        g_string_erase(s, 0, 1);
    }
    return s->len ? s->str : "null";
}

/* The value for member name of the current container (the element at the
 * current index inside a list, the root before anything was entered). */
static json_t *peek_value(JsonInputVisitor *jiv, const char *name,
                          bool consume)
{
    InputFrame *f = top_frame(jiv);

    if (!f) {
        return jiv->root;
    }
    if (json_is_array(f->value)) {
        return json_array_get(f->value, f->index);
    }
    assert(name);
    json_t *value = json_object_get(f->value, name);
    if (value && consume) {
        g_hash_table_remove(f->unvisited, name);
    }
    return value;
}

static json_t *get_value(JsonInputVisitor *jiv, const char *name,
                         Error **errp)
{
    json_t *value = peek_value(jiv, name, true);

    if (!value) {
        error_setg(errp, "Parameter '%s' is missing", full_name(jiv, name));
    }
    return value;
}

static void type_error(JsonInputVisitor *jiv, const char *name,
                       const char *expected, Error **errp)
{
    error_setg(errp, "Invalid parameter type for '%s', expected: %s",
               full_name(jiv, name), expected);
}

static void push_frame(JsonInputVisitor *jiv, json_t *value,
                       const char *name)
{
    InputFrame *f = g_new0(InputFrame, 1);

    f->value = value;
    f->name = name;
    if (json_is_object(value)) {
        const char *key;
        json_t *member;

        f->unvisited = g_hash_table_new(g_str_hash, g_str_equal);
        json_object_foreach(value, key, member) {
            g_hash_table_add(f->unvisited, (gpointer)key);
        }
    }
    g_ptr_array_add(jiv->stack, f);
}

static void free_frame(gpointer p)
{
    InputFrame *f = p;

    if (f->unvisited) {
        g_hash_table_destroy(f->unvisited);
    }
    g_free(f);
}

static void pop_frame(JsonInputVisitor *jiv)
{
    assert(jiv->stack->len);
    g_ptr_array_remove_index(jiv->stack, jiv->stack->len - 1);
}

static bool jiv_start_struct(Visitor *v, const char *name, void **obj,
                             size_t size, Error **errp)
{
    JsonInputVisitor *jiv = to_jiv(v);
    json_t *value = get_value(jiv, name, errp);

    if (obj) {
        *obj = NULL;
    }
    if (!value) {
        return false;
    }
    if (!json_is_object(value)) {
        type_error(jiv, name, "object", errp);
        return false;
    }
    push_frame(jiv, value, name);
    if (obj) {
        *obj = g_malloc0(size);
    }
    return true;
}

static bool jiv_check_struct(Visitor *v, Error **errp)
{
    JsonInputVisitor *jiv = to_jiv(v);
    InputFrame *f = top_frame(jiv);
    const char *key;
    json_t *member;

    assert(f && f->unvisited);
    /* report the first unexpected key in input order (deterministic) */
    json_object_foreach(f->value, key, member) {
        if (g_hash_table_contains(f->unvisited, key)) {
            error_setg(errp, "Parameter '%s' is unexpected",
                       full_name(jiv, key));
            return false;
        }
    }
    return true;
}

static void jiv_end_struct(Visitor *v, void **obj)
{
    pop_frame(to_jiv(v));
}

static bool jiv_start_list(Visitor *v, const char *name, GenericList **list,
                           size_t size, Error **errp)
{
    JsonInputVisitor *jiv = to_jiv(v);
    json_t *value = get_value(jiv, name, errp);

    if (list) {
        *list = NULL;
    }
    if (!value) {
        return false;
    }
    if (jiv->keyval && json_is_object(value) && !json_object_size(value)) {
        /* keyval writes an empty list as an empty object */
        value = NULL;
    } else if (!json_is_array(value)) {
        type_error(jiv, name, "array", errp);
        return false;
    }
    push_frame(jiv, value ? value : jiv->empty_list, name);
    if (list && value && json_array_size(value)) {
        *list = g_malloc0(size);
    }
    return true;
}

static GenericList *jiv_next_list(Visitor *v, GenericList *tail, size_t size)
{
    InputFrame *f = top_frame(to_jiv(v));

    assert(f && json_is_array(f->value));
    f->index++;
    if (f->index >= json_array_size(f->value)) {
        return NULL;
    }
    tail->next = g_malloc0(size);
    return tail->next;
}

static void jiv_end_list(Visitor *v, void **obj)
{
    pop_frame(to_jiv(v));
}

static bool jiv_start_alternate(Visitor *v, const char *name,
                                GenericAlternate **obj, size_t size,
                                Error **errp)
{
    JsonInputVisitor *jiv = to_jiv(v);
    json_t *value = peek_value(jiv, name, false);

    if (!value) {
        *obj = NULL;
        error_setg(errp, "Parameter '%s' is missing", full_name(jiv, name));
        return false;
    }
    *obj = g_malloc0(size);
    (*obj)->type = qapi_json_qtype(value);
    return true;
}

static bool jiv_optional(Visitor *v, const char *name, bool *present)
{
    *present = peek_value(to_jiv(v), name, false) != NULL;
    return *present;
}

/* keyval: the string form of a scalar, or NULL with a type error. */
static const char *keyval_str(JsonInputVisitor *jiv, const char *name,
                              json_t *value, Error **errp)
{
    if (!json_is_string(value)) {
        type_error(jiv, name, "string", errp);
        return NULL;
    }
    return json_string_value(value);
}

static bool jiv_type_int64(Visitor *v, const char *name, int64_t *obj,
                           Error **errp)
{
    JsonInputVisitor *jiv = to_jiv(v);
    json_t *value = get_value(jiv, name, errp);

    if (!value) {
        return false;
    }
    if (jiv->keyval) {
        const char *s = keyval_str(jiv, name, value, errp);
        char *end;

        if (!s) {
            return false;
        }
        errno = 0;
        long long n = strtoll(s, &end, 0);
        if (!*s || *end || errno) {
            error_setg(errp, "Parameter '%s' expects integer",
                       full_name(jiv, name));
            return false;
        }
        *obj = n;
        return true;
    }
    if (!json_is_integer(value)) {
        type_error(jiv, name, "integer", errp);
        return false;
    }
    *obj = json_integer_value(value);
    return true;
}

static bool jiv_type_uint64(Visitor *v, const char *name, uint64_t *obj,
                            Error **errp)
{
    JsonInputVisitor *jiv = to_jiv(v);
    json_t *value = get_value(jiv, name, errp);

    if (!value) {
        return false;
    }
    if (jiv->keyval) {
        const char *s = keyval_str(jiv, name, value, errp);
        char *end;

        if (!s) {
            return false;
        }
        errno = 0;
        unsigned long long n = strtoull(s, &end, 0);
        if (!*s || *end || errno || s[0] == '-') {
            error_setg(errp, "Parameter '%s' expects integer",
                       full_name(jiv, name));
            return false;
        }
        *obj = n;
        return true;
    }
    if (!json_is_integer(value)) {
        error_setg(errp, "Parameter '%s' expects uint64",
                   full_name(jiv, name));
        return false;
    }
    /* negative values wrap, as QEMU accepts them for compatibility */
    *obj = (uint64_t)json_integer_value(value);
    return true;
}

static bool jiv_type_size(Visitor *v, const char *name, uint64_t *obj,
                          Error **errp)
{
    JsonInputVisitor *jiv = to_jiv(v);

    if (jiv->keyval) {
        json_t *value = get_value(jiv, name, errp);
        const char *s;

        if (!value || !(s = keyval_str(jiv, name, value, errp))) {
            return false;
        }
        if (qb_strtosz(s, NULL, obj) < 0) {
            error_setg(errp, "Parameter '%s' expects a non-negative number "
                       "below 2^64", full_name(jiv, name));
            return false;
        }
        return true;
    }
    return jiv_type_uint64(v, name, obj, errp);
}

static bool jiv_type_bool(Visitor *v, const char *name, bool *obj,
                          Error **errp)
{
    JsonInputVisitor *jiv = to_jiv(v);
    json_t *value = get_value(jiv, name, errp);

    if (!value) {
        return false;
    }
    if (jiv->keyval) {
        const char *s = keyval_str(jiv, name, value, errp);

        if (!s) {
            return false;
        }
        if (!strcmp(s, "on")) {
            *obj = true;
        } else if (!strcmp(s, "off")) {
            *obj = false;
        } else {
            error_setg(errp, "Parameter '%s' expects 'on' or 'off'",
                       full_name(jiv, name));
            return false;
        }
        return true;
    }
    if (!json_is_boolean(value)) {
        type_error(jiv, name, "boolean", errp);
        return false;
    }
    *obj = json_is_true(value);
    return true;
}

static bool jiv_type_str(Visitor *v, const char *name, char **obj,
                         Error **errp)
{
    JsonInputVisitor *jiv = to_jiv(v);
    json_t *value = get_value(jiv, name, errp);

    *obj = NULL;
    if (!value) {
        return false;
    }
    if (!json_is_string(value)) {
        type_error(jiv, name, "string", errp);
        return false;
    }
    *obj = g_strndup(json_string_value(value), json_string_length(value));
    return true;
}

static bool jiv_type_number(Visitor *v, const char *name, double *obj,
                            Error **errp)
{
    JsonInputVisitor *jiv = to_jiv(v);
    json_t *value = get_value(jiv, name, errp);

    if (!value) {
        return false;
    }
    if (jiv->keyval) {
        const char *s = keyval_str(jiv, name, value, errp);
        char *end;

        if (!s) {
            return false;
        }
        errno = 0;
        double d = g_ascii_strtod(s, &end);
        if (!*s || *end || errno) {
            error_setg(errp, "Parameter '%s' expects number",
                       full_name(jiv, name));
            return false;
        }
        *obj = d;
        return true;
    }
    if (!json_is_number(value)) {
        type_error(jiv, name, "number", errp);
        return false;
    }
    *obj = json_number_value(value);
    return true;
}

static bool jiv_type_any(Visitor *v, const char *name, json_t **obj,
                         Error **errp)
{
    json_t *value = get_value(to_jiv(v), name, errp);

    *obj = value ? json_incref(value) : NULL;
    return value != NULL;
}

static bool jiv_type_null(Visitor *v, const char *name, json_t **obj,
                          Error **errp)
{
    JsonInputVisitor *jiv = to_jiv(v);
    json_t *value = get_value(jiv, name, errp);

    *obj = NULL;
    if (!value) {
        return false;
    }
    if (!json_is_null(value)) {
        type_error(jiv, name, "null", errp);
        return false;
    }
    *obj = json_null();
    return true;
}

static void jiv_free(Visitor *v)
{
    JsonInputVisitor *jiv = to_jiv(v);

    g_ptr_array_free(jiv->stack, true);
    g_string_free(jiv->path, true);
    json_decref(jiv->root);
    json_decref(jiv->empty_list);
    g_free(jiv);
}

static Visitor *input_visitor_new(json_t *obj, bool keyval)
{
    JsonInputVisitor *jiv = g_new0(JsonInputVisitor, 1);
    Visitor *v = &jiv->visitor;

    assert(obj);
    jiv->root = json_incref(obj);
    jiv->stack = g_ptr_array_new_with_free_func(free_frame);
    jiv->path = g_string_new(NULL);
    jiv->keyval = keyval;
    jiv->empty_list = json_array();
    v->type = VISITOR_INPUT;
    v->start_struct = jiv_start_struct;
    v->check_struct = jiv_check_struct;
    v->end_struct = jiv_end_struct;
    v->start_list = jiv_start_list;
    v->next_list = jiv_next_list;
    v->end_list = jiv_end_list;
    v->start_alternate = jiv_start_alternate;
    v->optional = jiv_optional;
    v->type_int64 = jiv_type_int64;
    v->type_uint64 = jiv_type_uint64;
    v->type_size = jiv_type_size;
    v->type_bool = jiv_type_bool;
    v->type_str = jiv_type_str;
    v->type_number = jiv_type_number;
    v->type_any = jiv_type_any;
    v->type_null = jiv_type_null;
    v->free = jiv_free;
    return v;
}

Visitor *json_input_visitor_new(json_t *obj)
{
    return input_visitor_new(obj, false);
}

Visitor *json_input_visitor_new_keyval(json_t *obj)
{
    return input_visitor_new(obj, true);
}
