/*
 * Block options: parsing dotted keys ("driver=qcow2,file.filename=x") and
 * "json:{...}" filenames into jansson objects, and typed accessors that
 * accept both typed JSON values (QMP) and strings (command line), as QEMU's
 * keyval/QemuOpts do.  Accessors that "take" a key delete it from the object
 * so the core can report options nobody consumed.
 */
#ifndef BLOCK_OPTIONS_H
#define BLOCK_OPTIONS_H

#include "util/common.h"
#include "util/error.h"
#include <jansson.h>

/*
 * Parse "a=1,b.c=x,,y" into {"a":"1","b":{"c":"x,y"}}.  implied_key, if not
 * NULL, names the key of a first element without '=' (e.g. "driver" for
 * --blockdev qcow2,..., "filename" for -drive-ish uses).  Values stay
 * strings.  Errors use QEMU's keyval texts.
 */
json_t *qb_keyval_parse(const char *params, const char *implied_key,
                        Error **errp);
/*
 * QemuOpts-style option lists (qemu-img/qemu-io --image-opts, -o): split
 * "a=1,b=x,,y" into elements, ",," standing for a literal comma.
 */
GPtrArray *qb_optlist_split(const char *list);
/*
 * Parse such a list into a flat object of string values (dotted keys are
 * kept; crumple them with qb_json_crumple).  A first element without '='
 * is the value of implied_key when it is not NULL; any other bare "key" /
 * "nokey" is the deprecated short form of key=on / key=off, warned about on
 * stderr as QEMU does.  Empty elements are skipped.  Bytes need not be
 * UTF-8.  Never fails.
 */
json_t *qb_optlist_parse_flat(const char *list, const char *implied_key);

/* Parse "json:{...}" (prefix included); returns an object or NULL. */
json_t *qb_parse_json_filename(const char *filename, Error **errp);
/* Merge src keys into dst (dst wins on conflict unless overwrite). */
void qb_json_merge(json_t *dst, json_t *src, bool overwrite);
/* Flatten {"a":{"b":1}} -> {"a.b":1} and back. */
json_t *qb_json_flatten(json_t *obj);
json_t *qb_json_crumple(json_t *flat, Error **errp);

/* Typed accessors.  "get" leaves the key; "take" removes it.  A missing key
 * yields def / NULL.  Type errors: "Parameter 'KEY' expects a TYPE" style
 * texts (QEMU's "Invalid parameter type for 'KEY', expected: TYPE"). */
const char *qb_opt_get_str(json_t *opts, const char *key);
char *qb_opt_take_str(json_t *opts, const char *key);  /* g_free result */
bool qb_opt_take_bool(json_t *opts, const char *key, bool def, Error **errp);
int64_t qb_opt_take_int(json_t *opts, const char *key, int64_t def,
                        Error **errp);
uint64_t qb_opt_take_size(json_t *opts, const char *key, uint64_t def,
                          Error **errp);
/* Enum: returns the index in names[] (NULL-terminated), def if absent,
 * -1 with "Parameter 'KEY' does not accept value 'V'" style error. */
int qb_opt_take_enum(json_t *opts, const char *key, const char *const *names,
                     int def, Error **errp);
bool qb_opt_has(json_t *opts, const char *key);

#endif
