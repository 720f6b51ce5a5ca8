/*
 * Splitting a QMP byte stream into JSON texts.
 *
 * A client may send one message in many writes or many messages in one
 * write, so the stream is scanned byte by byte for the end of each
 * top-level value: a balanced {...} or [...] (brackets inside strings do not
 * count), a string, or a bare token (number, keyword, garbage) ended by
 * whitespace or a structural character.  Each complete text is then parsed
 * by jansson.  The scanner only tracks string / escape state and depth; it
 * never interprets values.
 *
 * Like QEMU, single-quoted strings are accepted: they are rewritten into
 * double-quoted ones while being copied ('a"b' becomes "a\"b").
 *
 * Limits (invariant 3 of monitor.h): past MONITOR_MAX_NESTING levels or
 * MONITOR_MAX_MESSAGE bytes the message is reported once with QEMU's text
 * and the rest of it is skipped up to the point where its depth returns to
 * zero, without storing it.
 */
#include "monitor/monitor.h"

struct JsonStream {
    JsonStreamEmit *emit;
    void *opaque;
    GString *buf;
    int depth;
    char quote;          /* 0 outside a string, else '"' or '\'' */
    bool escape;         /* previous byte inside a string was a backslash */
    bool bare;           /* inside a bare top-level token */
    bool bare_skip;      /* that token was too long: drop it to its end */
    bool skipping;       /* a limit was hit: drop bytes until depth is 0 */
};

JsonStream *json_stream_new(JsonStreamEmit *emit, void *opaque)
{
    JsonStream *js = g_new0(JsonStream, 1);

    js->emit = emit;
    js->opaque = opaque;
    js->buf = g_string_sized_new(256);
    return js;
}

void json_stream_reset(JsonStream *js)
{
    g_string_truncate(js->buf, 0);
    /* Give back memory a huge message took. */
    if (js->buf->allocated_len > 1024 * 1024) {
        g_string_free(js->buf, TRUE);
        js->buf = g_string_sized_new(256);
    }
    js->depth = 0;
    js->quote = 0;
    js->escape = false;
    js->bare = false;
    js->bare_skip = false;
    js->skipping = false;
}

void json_stream_free(JsonStream *js)
{
    if (js) {
        g_string_free(js->buf, TRUE);
        g_free(js);
    }
}

static bool is_keyword_text(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!g_ascii_isalpha(s[i])) {
            return false;
        }
    }
    return len > 0;
}

/* Parse the buffered text and hand it to the consumer. */
static void emit_buffer(JsonStream *js)
{
    json_error_t jerr;
    json_t *value;
    const char *text = js->buf->str;
    size_t len = js->buf->len;

    value = json_loadb(text, len,
                       JSON_DECODE_ANY | JSON_REJECT_DUPLICATES |
                       JSON_ALLOW_NUL, &jerr);
    if (value) {
        js->emit(js->opaque, value, NULL);
    } else {
        Error *err = NULL;

        if (json_error_code(&jerr) == json_error_duplicate_key) {
            error_setg(&err, "JSON parse error, duplicate key");
        } else if (is_keyword_text(text, len)) {
            error_setg(&err, "JSON parse error, invalid keyword '%.*s'",
                       (int)MIN(len, 256), text);
        } else {
            error_setg(&err, "JSON parse error, expecting value");
        }
        js->emit(js->opaque, NULL, err);
    }
    g_string_truncate(js->buf, 0);
}

static void emit_limit_error(JsonStream *js, const char *msg)
{
    Error *err = NULL;

    error_setg(&err, "%s", msg);
    g_string_truncate(js->buf, 0);
    js->skipping = true;
    js->emit(js->opaque, NULL, err);
}

static bool is_delimiter(char c)
{
    return g_ascii_isspace(c) || c == '{' || c == '}' || c == '[' ||
           c == ']' || c == ',' || c == ':' || c == '"' || c == '\'';
}

/* One byte inside a string.  Returns the bytes to store (rewriting
 * single-quoted strings into JSON) via out. */
static void string_byte(JsonStream *js, char c, GString *out)
{
    if (js->escape) {
        js->escape = false;
        if (js->quote == '\'' && c == '\'') {
            /* \' is our extension: a plain ' inside a JSON string.  The
             * backslash was already stored; replace it. */
            if (out) {
                g_string_truncate(out, out->len - 1);
                g_string_append_c(out, '\'');
            }
            return;
        }
        if (out) {
            g_string_append_c(out, c);
        }
        return;
    }
    if (c == '\\') {
        js->escape = true;
        if (out) {
            g_string_append_c(out, c);
        }
        return;
    }
    if (c == js->quote) {
        js->quote = 0;
        if (out) {
            g_string_append_c(out, '"');
        }
        return;
    }
    if (out) {
        if (c == '"' && js->quote == '\'') {
            g_string_append(out, "\\\"");
        } else {
            g_string_append_c(out, c);
        }
    }
}

void json_stream_feed(JsonStream *js, const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        GString *out = js->skipping ? NULL : js->buf;

        if (js->bare) {
            if (!is_delimiter(c)) {
                if (js->bare_skip) {
                    continue;
                }
                if (js->buf->len >= 4096) {
                    /* No keyword or number is that long: report it once
                     * and drop the rest of it. */
                    emit_limit_error(js, "JSON token size limit exceeded");
                    js->skipping = false;
                    js->bare_skip = true;
                    continue;
                }
                g_string_append_c(js->buf, c);
                continue;
            }
            js->bare = false;
            if (js->bare_skip) {
                js->bare_skip = false;
            } else {
                emit_buffer(js);
            }
            /* fall through: c starts something new */
        }

        if (js->quote) {
            string_byte(js, c, out);
            if (!js->quote && js->depth == 0) {
                if (js->skipping) {
                    js->skipping = false;
                } else {
                    emit_buffer(js);
                }
            }
        } else if (c == '"' || c == '\'') {
            js->quote = c;
            if (out) {
                g_string_append_c(out, '"');
            }
        } else if (c == '{' || c == '[') {
            js->depth++;
            if (out) {
                g_string_append_c(out, c);
                if (js->depth > MONITOR_MAX_NESTING) {
                    emit_limit_error(js, "JSON nesting depth limit exceeded");
                }
            }
        } else if (c == '}' || c == ']') {
            if (js->depth == 0) {
                /* A stray closer is a message of its own. */
                g_string_append_c(js->buf, c);
                emit_buffer(js);
                continue;
            }
            js->depth--;
            if (out) {
                g_string_append_c(out, c);
            }
            if (js->depth == 0) {
                if (js->skipping) {
                    js->skipping = false;
                } else {
                    emit_buffer(js);
                }
            }
        } else if (js->depth > 0) {
            if (out) {
                g_string_append_c(out, c);
            }
        } else if (!g_ascii_isspace(c)) {
            /* A top-level bare token: number, keyword or garbage. */
            g_string_append_c(js->buf, c);
            if (c == ',' || c == ':') {
                emit_buffer(js);
            } else {
                js->bare = true;
            }
            continue;
        }

        if (!js->skipping && js->buf->len > MONITOR_MAX_MESSAGE) {
            emit_limit_error(js, "JSON token size limit exceeded");
            if (js->depth == 0) {
                js->skipping = false;
            }
        }
    }
}
