/*
 * Printing JSON the way QEMU 7.2 prints it.
 *
 * QEMU stores JSON objects in a hash table (QDict) and emits members in
 * that table's iteration order: bucket = hash(key) % 512 ascending, and
 * inside one bucket the most recently inserted key first.  Tools that must
 * be byte-identical with qemu-img / QMP (qblock-img info --output=json, the
 * QMP server) print through these functions.
 *
 * Insertion order is taken from the jansson object itself: jansson >= 2.8
 * iterates object members in insertion order, and replacing the value of an
 * existing key keeps that key's position (as qdict_put does in QEMU).  So
 * build objects in the order QEMU's code would insert the members.
 */
#ifndef UTIL_JSON_QEMU_H
#define UTIL_JSON_QEMU_H

#include "util/common.h"
#include <jansson.h>

/* Number of QDict buckets and QEMU's key hash (exposed for tests). */
#define QEMU_QDICT_BUCKETS 512
uint32_t qemu_qdict_hash(const char *key);

/*
 * The keys of obj in QEMU's emission order.  Returns a NULL-terminated
 * array of borrowed key pointers (valid while obj is unchanged); g_free it.
 */
const char **qemu_json_object_keys(json_t *obj);

/*
 * One-line form as QMP sends it: {"a": 1, "b": [1, 2]} with ": " and ", "
 * separators, "{}" / "[]" for empty containers.  g_free the result.
 */
char *qemu_json_to_compact(json_t *value);

/*
 * Pretty form as `qemu-img info --output=json` prints it: 4-space indent,
 * one member per line, and empty containers printed as the opener, a newline
 * with the current indent, then the closer ("[\n    ]").  No trailing
 * newline.  g_free the result.
 */
char *qemu_json_to_pretty(json_t *value);

/* Append the compact / pretty form to a GString (indent = nesting level). */
void qemu_json_append(GString *out, json_t *value, bool pretty, int indent);

#endif
