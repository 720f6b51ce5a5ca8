/*
 * Output visitor: C data -> jansson value, members in visiting order.
 * Call visit_complete(v, &result) once the top-level visit succeeded.
 */
#ifndef QAPI_JSON_OUTPUT_VISITOR_H
#define QAPI_JSON_OUTPUT_VISITOR_H

#include "qapi/visitor.h"

Visitor *json_output_visitor_new(void);

#endif
