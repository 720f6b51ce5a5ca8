/*
 * Input visitor: jansson value -> C data.  Error texts follow QEMU 7.2's
 * QMP input visitor exactly (see shared/docs/qmp-compat.md).
 */
#ifndef QAPI_JSON_INPUT_VISITOR_H
#define QAPI_JSON_INPUT_VISITOR_H

#include "qapi/visitor.h"

/* Takes its own reference to obj. */
Visitor *json_input_visitor_new(json_t *obj);

/*
 * Same, for values parsed from a dotted-key command line (keyval): every
 * scalar is a string, so integers, sizes ("64k"), numbers and booleans
 * ("on"/"off") are converted from strings.  An empty object stands for an
 * empty list.
 */
Visitor *json_input_visitor_new_keyval(json_t *obj);

#endif
