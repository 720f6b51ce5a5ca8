/*
 * JSON output byte-compatible with QEMU 7.2 (qemu-img --output=json, QMP).
 *
 * Two things differ from what jansson's json_dumps() produces:
 *  1. member order: QEMU's QDict hash-bucket order (see json-qemu.h);
 *  2. text form: QEMU's own separators, its "\uXXXX" escapes (upper-case hex,
 *     everything outside printable ASCII escaped, surrogate pairs above
 *     U+FFFF) and, in the pretty form, a newline inside empty containers.
 *
 * Invariant: the emitted order of an object's members depends only on the
 * set of keys and their insertion order, never on the values.
 */
#include "util/json-qemu.h"

uint32_t qemu_qdict_hash(const char *key)
{
    size_t len = strlen(key);
    uint32_t value = 0x238F13AFu * (uint32_t)len;

    for (size_t i = 0; i < len; i++) {
        value += (uint32_t)(uint8_t)key[i] << (i * 5 % 24);
    }
    return 1103515243u * value + 12345u;
}

typedef struct KeyPos {
    const char *key;
    unsigned bucket;
    size_t pos;                 /* insertion index */
} KeyPos;

static int keypos_cmp(const void *a, const void *b)
{
    const KeyPos *x = a, *y = b;

    if (x->bucket != y->bucket) {
        return x->bucket < y->bucket ? -1 : 1;
    }
    /* Same bucket: the later insertion is at the head of QEMU's chain. */
    return x->pos > y->pos ? -1 : (x->pos < y->pos ? 1 : 0);
}

const char **qemu_json_object_keys(json_t *obj)
{
    size_t n = json_object_size(obj), i = 0;
    g_autofree KeyPos *kp = g_new0(KeyPos, n ? n : 1);
    const char **keys = g_new0(const char *, n + 1);
    const char *key;
    json_t *val;

    json_object_foreach(obj, key, val) {
        kp[i].key = key;
        kp[i].bucket = qemu_qdict_hash(key) % QEMU_QDICT_BUCKETS;
        kp[i].pos = i;
        i++;
    }
    qsort(kp, n, sizeof(*kp), keypos_cmp);
    for (i = 0; i < n; i++) {
        keys[i] = kp[i].key;
    }
    return keys;
}

/* Decode one UTF-8 sequence at s; returns its length (>= 1) and the code
 * point in *cp, or U+FFFD for an invalid / overlong / surrogate sequence. */
static size_t utf8_decode(const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t v, min;

    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2; v = c & 0x1F; min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3; v = c & 0x0F; min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4; v = c & 0x07; min = 0x10000;
    } else {
        *cp = 0xFFFD;
        return 1;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return i;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        v = 0xFFFD;
    }
    *cp = v;
    return len;
}

static void append_string(GString *out, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    const unsigned char *end = s + len;

    g_string_append_c(out, '"');
    while (s < end) {
        uint32_t cp;
        s += utf8_decode(s, &cp);
        switch (cp) {
        case '"':  g_string_append(out, "\\\""); break;
        case '\\': g_string_append(out, "\\\\"); break;
        case '\b': g_string_append(out, "\\b"); break;
        case '\f': g_string_append(out, "\\f"); break;
        case '\n': g_string_append(out, "\\n"); break;
        case '\r': g_string_append(out, "\\r"); break;
        case '\t': g_string_append(out, "\\t"); break;
        default:
            if (cp >= 0x10000) {
                cp -= 0x10000;
                g_string_append_printf(out, "\\u%04X\\u%04X",
                                       0xD800 | (cp >> 10),
                                       0xDC00 | (cp & 0x3FF));
            } else if (cp < 0x20 || cp >= 0x7F) {
                g_string_append_printf(out, "\\u%04X", cp);
            } else {
                g_string_append_c(out, (char)cp);
            }
        }
    }
    g_string_append_c(out, '"');
}

static void append_indent(GString *out, int level)
{
    for (int i = 0; i < level; i++) {
        g_string_append(out, "    ");
    }
}

/* Separator before element i of a container. */
static void append_sep(GString *out, bool pretty, int indent, size_t i)
{
    if (pretty) {
        if (i) {
            g_string_append_c(out, ',');
        }
        g_string_append_c(out, '\n');
        append_indent(out, indent);
    } else if (i) {
        g_string_append(out, ", ");
    }
}

static void append_close(GString *out, bool pretty, int indent, char closer)
{
    if (pretty) {
        g_string_append_c(out, '\n');
        append_indent(out, indent);
    }
    g_string_append_c(out, closer);
}

void qemu_json_append(GString *out, json_t *value, bool pretty, int indent)
{
    switch (json_typeof(value)) {
    case JSON_OBJECT: {
        g_autofree const char **keys = qemu_json_object_keys(value);
        g_string_append_c(out, '{');
        for (size_t i = 0; keys[i]; i++) {
            append_sep(out, pretty, indent + 1, i);
            append_string(out, keys[i], strlen(keys[i]));
            g_string_append(out, ": ");
            qemu_json_append(out, json_object_get(value, keys[i]), pretty,
                             indent + 1);
        }
        append_close(out, pretty, indent, '}');
        break;
    }
    case JSON_ARRAY:
        g_string_append_c(out, '[');
        for (size_t i = 0; i < json_array_size(value); i++) {
            append_sep(out, pretty, indent + 1, i);
            qemu_json_append(out, json_array_get(value, i), pretty,
                             indent + 1);
        }
        append_close(out, pretty, indent, ']');
        break;
    case JSON_STRING:
        append_string(out, json_string_value(value),
                      json_string_length(value));
        break;
    case JSON_INTEGER:
        g_string_append_printf(out, "%" JSON_INTEGER_FORMAT,
                               json_integer_value(value));
        break;
    case JSON_REAL:
        g_string_append_printf(out, "%.17g", json_real_value(value));
        break;
    case JSON_TRUE:
        g_string_append(out, "true");
        break;
    case JSON_FALSE:
        g_string_append(out, "false");
        break;
    case JSON_NULL:
        g_string_append(out, "null");
        break;
    }
}

char *qemu_json_to_compact(json_t *value)
{
    GString *out = g_string_new(NULL);

    qemu_json_append(out, value, false, 0);
    return g_string_free(out, FALSE);
}

char *qemu_json_to_pretty(json_t *value)
{
    GString *out = g_string_new(NULL);

    qemu_json_append(out, value, true, 0);
    return g_string_free(out, FALSE);
}
