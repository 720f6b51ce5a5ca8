/*
 * Block options: turns the two textual forms users write -- QEMU's keyval
 * syntax ("driver=qcow2,file.filename=a,,b") and "json:{...}" filenames --
 * into nested jansson objects, and reads typed values back out of such
 * objects whether they hold typed JSON (QMP) or strings (command line).
 *
 * Invariants:
 *  1. Parsers return either a new object (caller owns the reference) or NULL
 *     with *errp set; never a partial object.
 *  2. Keyval values stay strings; the typed accessors do the conversion, so
 *     "on", true and "true" are the same boolean to every consumer.
 *  3. "take" accessors delete the key even when its value is malformed, so a
 *     type error is never reported a second time as an unsupported option.
 */
#include "block/options.h"

/* QEMU limits one key fragment to 127 characters. */
#define KEY_FRAGMENT_MAX 127

/* ---------------------------------------------------------------------- */
/* keyval */

static bool frag_is_index(const char *s, size_t len)
{
    if (!len) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!g_ascii_isdigit(s[i])) {
            return false;
        }
    }
    return true;
}

static bool frag_is_name(const char *s, size_t len)
{
    if (!len || !g_ascii_isalpha(s[0])) {
        return false;
    }
    for (size_t i = 1; i < len; i++) {
        if (!g_ascii_isalnum(s[i]) && s[i] != '-' && s[i] != '_') {
            return false;
        }
    }
    return true;
}

/* Read a value up to an unescaped ',' (",," stands for one comma). */
static char *parse_value(const char **ps)
{
    GString *val = g_string_new(NULL);
    const char *s = *ps;

    while (*s) {
        if (*s == ',') {
            if (s[1] != ',') {
                break;
            }
            s++;
        }
        g_string_append_c(val, *s);
        s++;
    }
    *ps = s;
    return g_string_free(val, FALSE);
}

/*
 * Store value (a string, or NULL to mean "an object") under key in cur.
 * key_prefix_len is how much of the full key names this level, for the
 * "used inconsistently" text.
 */
static json_t *keyval_put(json_t *cur, const char *frag, char *value,
                          const char *key, size_t key_prefix_len,
                          Error **errp)
{
    json_t *old = json_object_get(cur, frag);

    if (old) {
        bool want_obj = value == NULL;
        if (json_is_object(old) != want_obj) {
            error_setg(errp, "Parameters '%.*s.*' used inconsistently",
                       (int)key_prefix_len, key);
            g_free(value);
            return NULL;
        }
        if (want_obj) {
            return old;
        }
    }
    if (value) {
        /* Command-line bytes need not be UTF-8 (QEMU passes them through):
         * jansson's checked constructors would silently drop them. */
        json_object_set_new_nocheck(cur, frag, json_string_nocheck(value));
        g_free(value);
        return json_object_get(cur, frag);
    }
    json_object_set_new_nocheck(cur, frag, json_object());
    return json_object_get(cur, frag);
}

/* Parse one key=value at *ps into root; advances *ps past the value. */
static bool keyval_parse_one(json_t *root, const char **ps,
                             const char *implied_key, Error **errp)
{
    const char *key = *ps;
    size_t key_len = strcspn(key, "=,");
    const char *key_end = key + key_len;
    json_t *cur = root;
    const char *s;

    if (implied_key && *key_end != '=') {
        /* A first element without '=' is the value of the implied key. */
        const char *v = key;
        char *value = parse_value(&v);
        json_object_set_new(root, implied_key, json_string_nocheck(value));
        g_free(value);
        *ps = v;
        return true;
    }

    s = key;
    for (;;) {
        size_t len = strcspn(s, ".");
        char frag[KEY_FRAGMENT_MAX + 1];
        bool last;

        if (s + len > key_end) {
            len = key_end - s;
        }
        last = s + len == key_end;
        if (!(frag_is_name(s, len) || (s != key && frag_is_index(s, len)))) {
            error_setg(errp, "Invalid parameter '%.*s'", (int)key_len, key);
            return false;
        }
        if (len > KEY_FRAGMENT_MAX) {
            error_setg(errp, "Parameter%s '%.*s' is too long",
                       s != key || !last ? " key" : "", (int)len, s);
            return false;
        }
        memcpy(frag, s, len);
        frag[len] = '\0';
        if (last) {
            const char *v;
            char *value;

            if (*key_end != '=') {
                error_setg(errp, "Expected '=' after parameter '%.*s'",
                           (int)key_len, key);
                return false;
            }
            v = key_end + 1;
            value = parse_value(&v);
            if (!keyval_put(cur, frag, value, key, key_end - key, errp)) {
                return false;
            }
            *ps = v;
            return true;
        }
        cur = keyval_put(cur, frag, NULL, key, s + len - key, errp);
        if (!cur) {
            return false;
        }
        s += len + 1;
    }
}

static int index_of(const char *key)
{
    /* Keys are validated digit strings here; QEMU accepts leading zeros. */
    return (int)g_ascii_strtoull(key, NULL, 10);
}

/*
 * Objects whose keys are all list indices become arrays, recursively.
 * Returns a new reference to the (possibly converted) value.
 */
static json_t *keyval_listify(json_t *obj, GString *prefix, Error **errp)
{
    const char *k;
    json_t *v;
    bool has_index = false, has_member = false;
    size_t plen = prefix->len;
    json_t *arr;
    size_t n;

    json_object_foreach(obj, k, v) {
        if (json_is_object(v)) {
            json_t *conv;
            g_string_append_printf(prefix, "%s.", k);
            conv = keyval_listify(v, prefix, errp);
            g_string_truncate(prefix, plen);
            if (!conv) {
                return NULL;
            }
            if (conv != v) {
                json_object_set_new(obj, k, conv);
            } else {
                json_decref(conv);
            }
        }
        if (frag_is_index(k, strlen(k))) {
            has_index = true;
        } else {
            has_member = true;
        }
    }
    if (has_index && has_member) {
        error_setg(errp, "Parameters '%.*s*' used inconsistently",
                   (int)plen, prefix->str);
        return NULL;
    }
    if (!has_index) {
        return json_incref(obj);
    }
    n = json_object_size(obj);
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *elt = NULL;
        json_object_foreach(obj, k, v) {
            if (index_of(k) == (int)i) {
                elt = v;
                break;
            }
        }
        if (!elt) {
            error_setg(errp, "Parameter '%s%zu' missing", prefix->str, i);
            json_decref(arr);
            return NULL;
        }
        json_array_append(arr, elt);
    }
    return arr;
}

json_t *qb_keyval_parse(const char *params, const char *implied_key,
                        Error **errp)
{
    json_t *root = json_object();
    const char *s = params ? params : "";
    const char *implied = implied_key;
    g_autoptr(GString) prefix = g_string_new(NULL);
    json_t *res;

    while (*s) {
        if (!keyval_parse_one(root, &s, implied, errp)) {
            json_decref(root);
            return NULL;
        }
        implied = NULL;
        if (*s == ',') {
            s++;
        }
    }
    res = keyval_listify(root, prefix, errp);
    json_decref(root);
    return res;
}

/* ---------------------------------------------------------------------- */
/* flatten / crumple / merge */

static void flatten_into(json_t *dst, json_t *val, const char *prefix)
{
    if (json_is_object(val) && prefix && json_object_size(val) == 0) {
        /* An empty object has no leaves; keep it so it is not lost. */
        json_object_set(dst, prefix, val);
        return;
    }
    if (json_is_object(val)) {
        const char *k;
        json_t *v;
        json_object_foreach(val, k, v) {
            g_autofree char *key = prefix ? g_strdup_printf("%s.%s", prefix, k)
                                          : g_strdup(k);
            flatten_into(dst, v, key);
        }
    } else if (json_is_array(val) && prefix && json_array_size(val)) {
        size_t i;
        json_t *v;
        json_array_foreach(val, i, v) {
            g_autofree char *key = g_strdup_printf("%s.%zu", prefix, i);
            flatten_into(dst, v, key);
        }
    } else {
        json_object_set(dst, prefix, val);
    }
}

json_t *qb_json_flatten(json_t *obj)
{
    json_t *flat = json_object();
    flatten_into(flat, obj, NULL);
    return flat;
}

GPtrArray *qb_optlist_split(const char *list)
{
    GPtrArray *elems = g_ptr_array_new_with_free_func(g_free);
    GString *cur = g_string_new(NULL);

    for (const char *p = list; ; p++) {
        if (*p == ',' && p[1] == ',') {
            g_string_append_c(cur, ',');
            p++;
        } else if (*p == ',' || !*p) {
            g_ptr_array_add(elems, g_string_free(cur, FALSE));
            if (!*p) {
                break;
            }
            cur = g_string_new(NULL);
        } else {
            g_string_append_c(cur, *p);
        }
    }
    return elems;
}

json_t *qb_optlist_parse_flat(const char *list, const char *implied_key)
{
    g_autoptr(GPtrArray) elems = qb_optlist_split(list);
    json_t *flat = json_object();

    for (guint i = 0; i < elems->len; i++) {
        const char *e = elems->pdata[i];
        const char *eq = strchr(e, '=');

        if (!*e) {
            continue;
        }
        if (eq) {
            g_autofree char *key = g_strndup(e, eq - e);
            json_object_set_new_nocheck(flat, key, json_string_nocheck(eq + 1));
        } else if (i == 0 && implied_key) {
            json_object_set_new_nocheck(flat, implied_key,
                                        json_string_nocheck(e));
        } else {
            bool off = g_str_has_prefix(e, "no") && e[2];
            const char *key = off ? e + 2 : e;
            warn_report("short-form boolean option '%s' deprecated", e);
            fprintf(stderr, "Please use %s=%s instead\n", key,
                    off ? "off" : "on");
            json_object_set_new_nocheck(flat, key,
                                        json_string(off ? "off" : "on"));
        }
    }
    return flat;
}

json_t *qb_json_crumple(json_t *flat, Error **errp)
{
    json_t *root = json_object();
    const char *k;
    json_t *v;
    g_autoptr(GString) prefix = g_string_new(NULL);
    json_t *res;

    json_object_foreach(flat, k, v) {
        g_auto(GStrv) parts = g_strsplit(k, ".", -1);
        json_t *cur = root;
        size_t n = g_strv_length(parts);

        if (n == 0) {
            /* The empty key: an ordinary (unsupported) option, as QEMU
             * reports it; g_strsplit gives no parts for it. */
            json_object_set_new(root, "", json_deep_copy(v));
            continue;
        }

        for (size_t i = 0; i + 1 < n; i++) {
            json_t *next = json_object_get(cur, parts[i]);
            if (!next) {
                next = json_object();
                json_object_set_new(cur, parts[i], next);
            } else if (!json_is_object(next)) {
                g_autofree char *pre = g_strjoinv(".", parts);
                size_t plen = 0;
                for (size_t j = 0; j <= i; j++) {
                    plen += strlen(parts[j]) + (j ? 1 : 0);
                }
                error_setg(errp, "Parameters '%.*s.*' used inconsistently",
                           (int)plen, pre);
                json_decref(root);
                return NULL;
            }
            cur = next;
        }
        if (json_is_object(json_object_get(cur, parts[n - 1])) &&
            !json_is_object(v)) {
            error_setg(errp, "Parameters '%s.*' used inconsistently", k);
            json_decref(root);
            return NULL;
        }
        if (json_is_object(v) &&
            json_is_object(json_object_get(cur, parts[n - 1]))) {
            json_object_update(json_object_get(cur, parts[n - 1]), v);
        } else {
            /* A copy: the flat object must not share containers. */
            json_object_set_new(cur, parts[n - 1], json_deep_copy(v));
        }
    }
    res = keyval_listify(root, prefix, errp);
    json_decref(root);
    return res;
}

void qb_json_merge(json_t *dst, json_t *src, bool overwrite)
{
    const char *k;
    json_t *v;

    json_object_foreach(src, k, v) {
        if (overwrite || !json_object_get(dst, k)) {
            json_object_set(dst, k, v);
        }
    }
}

json_t *qb_parse_json_filename(const char *filename, Error **errp)
{
    json_error_t jerr;
    json_t *obj, *flat, *res;

    if (!g_str_has_prefix(filename, "json:")) {
        error_setg(errp, "Could not parse the JSON options: not a json: "
                   "filename");
        return NULL;
    }
    obj = json_loads(filename + 5, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj) {
        error_setg(errp, "Could not parse the JSON options: %s", jerr.text);
        return NULL;
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        error_setg(errp, "Invalid JSON object given");
        return NULL;
    }
    /* Nested and dotted forms may be mixed ({"file.driver":..,"file":{..}}):
     * flatten everything, then rebuild one nested object. */
    flat = qb_json_flatten(obj);
    json_decref(obj);
    res = qb_json_crumple(flat, errp);
    json_decref(flat);
    return res;
}

/* ---------------------------------------------------------------------- */
/* typed accessors */

bool qb_opt_has(json_t *opts, const char *key)
{
    return opts && json_object_get(opts, key) != NULL;
}

const char *qb_opt_get_str(json_t *opts, const char *key)
{
    json_t *v = opts ? json_object_get(opts, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

char *qb_opt_take_str(json_t *opts, const char *key)
{
    json_t *v = opts ? json_object_get(opts, key) : NULL;
    char *res = NULL;

    if (!v) {
        return NULL;
    }
    if (json_is_string(v)) {
        res = g_strdup(json_string_value(v));
    } else if (json_is_integer(v)) {
        res = g_strdup_printf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        res = g_strdup_printf("%g", json_real_value(v));
    } else if (json_is_boolean(v)) {
        res = g_strdup(json_is_true(v) ? "on" : "off");
    }
    json_object_del(opts, key);
    return res;
}

bool qb_opt_take_bool(json_t *opts, const char *key, bool def, Error **errp)
{
    json_t *v = opts ? json_object_get(opts, key) : NULL;
    bool res = def;

    if (!v) {
        return def;
    }
    if (json_is_boolean(v)) {
        res = json_is_true(v);
    } else if (json_is_string(v) &&
               (!strcmp(json_string_value(v), "on") ||
                !strcmp(json_string_value(v), "yes") ||
                !strcmp(json_string_value(v), "true"))) {
        res = true;
    } else if (json_is_string(v) &&
               (!strcmp(json_string_value(v), "off") ||
                !strcmp(json_string_value(v), "no") ||
                !strcmp(json_string_value(v), "false"))) {
        res = false;
    } else {
        error_setg(errp, "Parameter '%s' expects 'on' or 'off'", key);
    }
    json_object_del(opts, key);
    return res;
}

int64_t qb_opt_take_int(json_t *opts, const char *key, int64_t def,
                        Error **errp)
{
    json_t *v = opts ? json_object_get(opts, key) : NULL;
    int64_t res = def;

    if (!v) {
        return def;
    }
    if (json_is_integer(v)) {
        res = json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        long long n = strtoll(s, &end, 0);
        if (!*s || *end || errno) {
            error_setg(errp, "Parameter '%s' expects a number", key);
        } else {
            res = n;
        }
    } else {
        error_setg(errp, "Invalid parameter type for '%s', expected: integer",
                   key);
    }
    json_object_del(opts, key);
    return res;
}

uint64_t qb_opt_take_size(json_t *opts, const char *key, uint64_t def,
                          Error **errp)
{
    json_t *v = opts ? json_object_get(opts, key) : NULL;
    uint64_t res = def;

    if (!v) {
        return def;
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        res = json_integer_value(v);
    } else if (json_is_string(v) &&
               qb_strtosz(json_string_value(v), NULL, &res) == 0) {
        /* parsed */
    } else {
        res = def;
        error_setg(errp, "Parameter '%s' expects a non-negative number "
                   "below 2^64", key);
        error_append_hint(errp, "Optional suffix k, M, G, T, P or E means "
                          "kilo-, mega-, giga-, tera-, peta-\n"
                          "and exabytes, respectively.\n");
    }
    json_object_del(opts, key);
    return res;
}

int qb_opt_take_enum(json_t *opts, const char *key, const char *const *names,
                     int def, Error **errp)
{
    g_autofree char *s = NULL;

    if (!qb_opt_has(opts, key)) {
        return def;
    }
    s = qb_opt_take_str(opts, key);
    for (int i = 0; s && names[i]; i++) {
        if (!strcmp(names[i], s)) {
            return i;
        }
    }
    error_setg(errp, "Parameter '%s' does not accept value '%s'", key,
               s ? s : "");
    return -1;
}
