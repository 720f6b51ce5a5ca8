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
    uint32_t value = 0;
    unsigned shift = 0;         /* i * 5 % 24, kept without a division */
    size_t len = 0;

    /* One pass: the length term is added at the end (the sum is the same
     * in any order).  This runs for every member of every QMP reply. */
    for (; key[len]; len++) {
        value += (uint32_t)(uint8_t)key[len] << shift;
        shift += 5;
        if (shift >= 24) {
            shift -= 24;
        }
    }
    value += 0x238F13AFu * (uint32_t)len;
    return 1103515243u * value + 12345u;
}

typedef struct KeyPos {
    const char *key;
    json_t *value;
    unsigned bucket;
    size_t pos;                 /* insertion index */
} KeyPos;

/* Does x come before y in QEMU's iteration order? */
static inline bool keypos_before(const KeyPos *x, const KeyPos *y)
{
    if (x->bucket != y->bucket) {
        return x->bucket < y->bucket;
    }
    /* Same bucket: the later insertion is at the head of QEMU's chain. */
    return x->pos > y->pos;
}

static int keypos_cmp(const void *a, const void *b)
{
    const KeyPos *x = a, *y = b;

    return keypos_before(x, y) ? -1 : (keypos_before(y, x) ? 1 : 0);
}

/*
 * Fill kp (room for json_object_size(obj) entries) with obj's members in
 * QEMU's order.  QMP replies are mostly objects of a handful of members, so
 * those are sorted by insertion sort in place; qsort only for big ones.
 */
static void object_members_sorted(json_t *obj, KeyPos *kp)
{
    size_t n = 0;
    const char *key;
    json_t *val;

    json_object_foreach(obj, key, val) {
        kp[n].key = key;
        kp[n].value = val;
        kp[n].bucket = qemu_qdict_hash(key) % QEMU_QDICT_BUCKETS;
        kp[n].pos = n;
        n++;
    }
    if (n > 24) {
        qsort(kp, n, sizeof(*kp), keypos_cmp);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        KeyPos cur = kp[i];
        size_t j = i;

        while (j > 0 && keypos_before(&cur, &kp[j - 1])) {
            kp[j] = kp[j - 1];
            j--;
        }
        kp[j] = cur;
    }
}

const char **qemu_json_object_keys(json_t *obj)
{
    size_t n = json_object_size(obj);
    g_autofree KeyPos *kp = g_new0(KeyPos, n ? n : 1);
    const char **keys = g_new0(const char *, n + 1);

    object_members_sorted(obj, kp);
    for (size_t i = 0; i < n; i++) {
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

/*
 * g_string_append_len() without its generality (negative lengths, source
 * inside the string): the printer appends many short pieces, and this is
 * the hot path of every QMP reply.  GString's fields are public API.
 */
static inline void put(GString *out, const char *p, size_t n)
{
    if (out->len + n < out->allocated_len) {
        memcpy(out->str + out->len, p, n);
        out->len += n;
        out->str[out->len] = '\0';
    } else {
        g_string_append_len(out, p, n);
    }
}

static const char hex_digits[] = "0123456789ABCDEF";

static void append_u_escape(GString *out, uint32_t u)
{
    char e[6] = { '\\', 'u', hex_digits[(u >> 12) & 0xF],
                  hex_digits[(u >> 8) & 0xF], hex_digits[(u >> 4) & 0xF],
                  hex_digits[u & 0xF] };

    put(out, e, sizeof(e));
}

/* Printable ASCII other than '"' and '\\' is copied as is. */
static inline bool plain_byte(unsigned char c)
{
    return c >= 0x20 && c < 0x7F && c != '"' && c != '\\';
}

static void append_string(GString *out, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    const unsigned char *end = s + len;

    g_string_append_c(out, '"');
    while (s < end) {
        const unsigned char *run = s;
        uint32_t cp;

        /* Copy the longest plain run in one go: most strings are only
         * that (node names, file names, enum values). */
        while (s < end && plain_byte(*s)) {
            s++;
        }
        if (s > run) {
            put(out, (const char *)run, s - run);
            if (s == end) {
                break;
            }
        }
        s += utf8_decode(s, &cp);
        switch (cp) {
        case '"':  put(out, "\\\"", 2); break;
        case '\\': put(out, "\\\\", 2); break;
        case '\b': put(out, "\\b", 2); break;
        case '\f': put(out, "\\f", 2); break;
        case '\n': put(out, "\\n", 2); break;
        case '\r': put(out, "\\r", 2); break;
        case '\t': put(out, "\\t", 2); break;
        default:
            if (cp >= 0x10000) {
                cp -= 0x10000;
                append_u_escape(out, 0xD800 | (cp >> 10));
                append_u_escape(out, 0xDC00 | (cp & 0x3FF));
            } else {
                /* Everything else left here is outside printable ASCII. */
                append_u_escape(out, cp);
            }
        }
    }
    g_string_append_c(out, '"');
}

/* Decimal text of v, without printf. */
static void append_int(GString *out, json_int_t v)
{
    char buf[24];
    char *p = buf + sizeof(buf);
    /* Work on the magnitude as unsigned so INT64_MIN does not overflow. */
    unsigned long long m = v < 0 ? 0ULL - (unsigned long long)v
                                 : (unsigned long long)v;

    do {
        *--p = (char)('0' + m % 10);
        m /= 10;
    } while (m);
    if (v < 0) {
        *--p = '-';
    }
    put(out, p, buf + sizeof(buf) - p);
}

static void append_indent(GString *out, int level)
{
    for (int i = 0; i < level; i++) {
        put(out, "    ", 4);
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
        put(out, ", ", 2);
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

/* Objects up to this many members are sorted on the stack. */
#define SMALL_OBJECT 32

void qemu_json_append(GString *out, json_t *value, bool pretty, int indent)
{
    switch (json_typeof(value)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(value);
        KeyPos small[SMALL_OBJECT];
        g_autofree KeyPos *big = n > SMALL_OBJECT ? g_new(KeyPos, n) : NULL;
        KeyPos *kp = big ? big : small;

        object_members_sorted(value, kp);
        g_string_append_c(out, '{');
        for (size_t i = 0; i < n; i++) {
            append_sep(out, pretty, indent + 1, i);
            append_string(out, kp[i].key, strlen(kp[i].key));
            put(out, ": ", 2);
            qemu_json_append(out, kp[i].value, pretty, indent + 1);
        }
        append_close(out, pretty, indent, '}');
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(value);

        g_string_append_c(out, '[');
        for (size_t i = 0; i < n; i++) {
            append_sep(out, pretty, indent + 1, i);
            qemu_json_append(out, json_array_get(value, i), pretty,
                             indent + 1);
        }
        append_close(out, pretty, indent, ']');
        break;
    }
    case JSON_STRING:
        append_string(out, json_string_value(value),
                      json_string_length(value));
        break;
    case JSON_INTEGER:
        append_int(out, json_integer_value(value));
        break;
    case JSON_REAL:
        g_string_append_printf(out, "%.17g", json_real_value(value));
        break;
    case JSON_TRUE:
        put(out, "true", 4);
        break;
    case JSON_FALSE:
        put(out, "false", 5);
        break;
    case JSON_NULL:
        put(out, "null", 4);
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
