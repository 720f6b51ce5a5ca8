/*
 * The QAPI visitor interface.  Generated visit_type_Foo() functions walk a
 * C value member by member and call these primitives; what a primitive does
 * depends on the visitor:
 *   - input (json-input-visitor.h): reads a jansson value and fills in C
 *     data, allocating as it goes, reporting QEMU's error texts with the
 *     path of the offending member ("options[0].file");
 *   - output (json-output-visitor.h): builds a jansson value from C data,
 *     members in the order visited (= schema order);
 *   - dealloc (dealloc-visitor.h): frees C data; never fails.
 *
 * Protocol: start_struct/end_struct bracket the members of an object;
 * start_list/next_list/end_list iterate a list; start_alternate/
 * end_alternate bracket an alternate; check_struct/check_list report
 * unvisited input.  Every start that succeeded is matched by its end, even
 * after an error, so the visitor's stack stays balanced.  An input visitor
 * that fails leaves the partially built object for the caller to free
 * through the dealloc visitor (generated code does this).
 */
#ifndef QAPI_VISITOR_H
#define QAPI_VISITOR_H

#include "qapi/qapi-util.h"

typedef struct Visitor Visitor;

typedef enum VisitorType {
    VISITOR_INPUT = 1,
    VISITOR_OUTPUT = 2,
    VISITOR_DEALLOC = 4,
} VisitorType;

VisitorType visit_get_type(Visitor *v);
static inline bool visit_is_input(Visitor *v)
{
    return visit_get_type(v) == VISITOR_INPUT;
}
static inline bool visit_is_dealloc(Visitor *v)
{
    return visit_get_type(v) == VISITOR_DEALLOC;
}

/* Finish an output visit: store the result in *(json_t **)opaque
 * (a new reference).  Only for output visitors. */
void visit_complete(Visitor *v, void *opaque);
void visit_free(Visitor *v);

/* obj NULL: visit the members without allocating (marshallers use this for
 * the arguments object).  Input visitors allocate size zeroed bytes. */
bool visit_start_struct(Visitor *v, const char *name, void **obj,
                        size_t size, Error **errp);
bool visit_check_struct(Visitor *v, Error **errp);
void visit_end_struct(Visitor *v, void **obj);

bool visit_start_list(Visitor *v, const char *name, GenericList **list,
                      size_t size, Error **errp);
/* Next element after tail, or NULL at the end. */
GenericList *visit_next_list(Visitor *v, GenericList *tail, size_t size);
bool visit_check_list(Visitor *v, Error **errp);
void visit_end_list(Visitor *v, void **list);

/* Input: allocate *obj and set (*obj)->type to the JSON kind found. */
bool visit_start_alternate(Visitor *v, const char *name,
                           GenericAlternate **obj, size_t size,
                           Error **errp);
void visit_end_alternate(Visitor *v, void **obj);

/* Optional member: input sets *present from the input; output and dealloc
 * leave it alone.  Returns *present. */
bool visit_optional(Visitor *v, const char *name, bool *present);

bool visit_type_int(Visitor *v, const char *name, int64_t *obj, Error **errp);
bool visit_type_int8(Visitor *v, const char *name, int8_t *obj, Error **errp);
bool visit_type_int16(Visitor *v, const char *name, int16_t *obj,
                      Error **errp);
bool visit_type_int32(Visitor *v, const char *name, int32_t *obj,
                      Error **errp);
bool visit_type_int64(Visitor *v, const char *name, int64_t *obj,
                      Error **errp);
bool visit_type_uint8(Visitor *v, const char *name, uint8_t *obj,
                      Error **errp);
bool visit_type_uint16(Visitor *v, const char *name, uint16_t *obj,
                       Error **errp);
bool visit_type_uint32(Visitor *v, const char *name, uint32_t *obj,
                       Error **errp);
bool visit_type_uint64(Visitor *v, const char *name, uint64_t *obj,
                       Error **errp);
bool visit_type_size(Visitor *v, const char *name, uint64_t *obj,
                     Error **errp);
bool visit_type_bool(Visitor *v, const char *name, bool *obj, Error **errp);
bool visit_type_str(Visitor *v, const char *name, char **obj, Error **errp);
bool visit_type_number(Visitor *v, const char *name, double *obj,
                       Error **errp);
/* Any JSON value; the C side holds a reference. */
bool visit_type_any(Visitor *v, const char *name, json_t **obj, Error **errp);
/* JSON null; the C side holds json_null(). */
bool visit_type_null(Visitor *v, const char *name, json_t **obj,
                     Error **errp);
bool visit_type_enum(Visitor *v, const char *name, int *obj,
                     const QEnumLookup *lookup, Error **errp);

#endif
