/*
 * Dealloc visitor: frees a (possibly partially built) QAPI object.
 * Generated qapi_free_Foo() functions are thin wrappers around it.
 */
#ifndef QAPI_DEALLOC_VISITOR_H
#define QAPI_DEALLOC_VISITOR_H

#include "qapi/visitor.h"

Visitor *qapi_dealloc_visitor_new(void);

#endif
