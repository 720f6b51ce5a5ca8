/*
 * Small run-time pieces every generated QAPI file needs: enum lookup
 * tables, the JSON kinds alternates dispatch on, and the generic list and
 * alternate layouts the visitors walk without knowing the concrete type.
 */
#ifndef QAPI_QAPI_UTIL_H
#define QAPI_QAPI_UTIL_H

#include "util/common.h"
#include "util/error.h"
#include <jansson.h>

/* Names of an enum's values, indexed by the C value. */
typedef struct QEnumLookup {
    const char *const *array;
    int size;
} QEnumLookup;

/* Name of val, or NULL when val is out of range. */
const char *qapi_enum_lookup(const QEnumLookup *lookup, int val);
/* Value named str; def when str is NULL; -1 with an error when unknown. */
int qapi_enum_parse(const QEnumLookup *lookup, const char *str, int def,
                    Error **errp);

/* The JSON kind of a value, as alternates see it (QEMU's QType names). */
typedef enum QType {
    QTYPE_NONE,
    QTYPE_QNULL,
    QTYPE_QNUM,
    QTYPE_QSTRING,
    QTYPE_QDICT,
    QTYPE_QLIST,
    QTYPE_QBOOL,
    QTYPE__MAX,
} QType;

extern const QEnumLookup QType_lookup;
QType qapi_json_qtype(const json_t *value);

/* Every generated FooList starts with the next pointer. */
typedef struct GenericList {
    struct GenericList *next;
    char padding[];
} GenericList;

/* Every generated alternate starts with its QType. */
typedef struct GenericAlternate {
    QType type;
    char padding[];
} GenericAlternate;

#endif
