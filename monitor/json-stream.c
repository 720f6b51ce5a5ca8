/*
 * Splitting a QMP byte stream into JSON texts and parsing them, with the
 * error replies QEMU 7.2's monitor gives for malformed input.
 *
 * Three stages, all incremental (a message may arrive in any number of
 * writes, several messages in one write):
 *
 *  1. A lexer, a byte-at-a-time state machine, cuts the input into tokens:
 *     the six structural characters, strings ("..." or '...'), numbers,
 *     keywords (runs of a-z) and errors.  It only checks the token syntax
 *     QEMU's lexer checks: inside strings any escape letter and any byte
 *     from 0x20 to 0xFD passes here and is judged by the parser.
 *  2. A streamer collects the tokens of one message (their text in buf,
 *     their kind and place in toks) and counts open braces and brackets.
 *     The message is complete when both counts are back to zero, or one of
 *     them went negative (a stray closer is a message of its own).
 *  3. A parser turns the collected tokens into a jansson value, or the
 *     first error in token order.
 *
 * Behaviour observed on qemu-storage-daemon 7.2 and reproduced here
 * (tests/interop/test_qmp_syntax_errors.py compares the two):
 *  - an invalid byte ends the token with "JSON parse error, stray 'TEXT'"
 *    (TEXT = the token so far including that byte); the message collected
 *    so far is dropped; the lexer then skips input up to a structural
 *    character, a control character other than TAB, or a 0xFE / 0xFF
 *    byte, and restarts there with that character;
 *  - past 1024 open brackets and braces in total: "JSON nesting depth
 *    limit exceeded", the message is dropped and the input after the
 *    offending bracket is lexed afresh (leftover closers then each get an
 *    "expecting value" reply, as in QEMU);
 *  - integers that do not fit int64 become doubles; single-quoted strings
 *    are strings; raw UTF-8 is validated by the parser, which accepts the
 *    two-byte form C0 80 for U+0000 as QEMU does.
 *
 * Our own limit (invariant 3 of monitor.h): a message whose text and token
 * records pass MONITOR_MAX_MESSAGE bytes is reported once with "JSON token
 * size limit exceeded" and the rest of it (up to the point where its
 * brackets balance) is lexed without being stored, so memory stays
 * bounded.  Every stored byte is checked against the cap within a few
 * bytes: runs of string bytes, escapes, digits and letters as they grow,
 * every other token when it ends.  A lexical error in the skipped rest
 * ends the skip (stray error, counts reset), so the following commands
 * are served as qemu-storage-daemon 7.2 serves them.  Below the cap,
 * tokens of any length are fine, as in QEMU (a 5000-letter keyword is an
 * "invalid keyword" echoed whole).
 */
#include "monitor/monitor.h"
#include <math.h>

enum {
    TOK_STRING = 's',
    TOK_INTEGER = 'i',
    TOK_FLOAT = 'f',
    TOK_KEYWORD = 'k',
    /* structural tokens are their own character */
};

typedef struct Token {
    char type;
    uint32_t start, len;        /* in JsonStream.buf (bounded by the limit) */
} Token;

typedef enum LexState {
    L_START,
    L_STRING,                   /* inside quotes; quote char in js->quote */
    L_ESCAPE,                   /* after a backslash inside a string */
    L_MINUS,                    /* "-": a digit must follow */
    L_ZERO,                     /* leading "0": no digit may follow */
    L_INT,                      /* [1-9][0-9]* */
    L_DOT,                      /* "." after the integer part: need a digit */
    L_FRAC,                     /* digits after the dot */
    L_EXP,                      /* "e" / "E": sign or digit */
    L_EXP_SIGN,                 /* sign after "e": need a digit */
    L_EXP_DIGITS,
    L_KEYWORD,
    L_RECOVERY,                 /* after an error: skip to a resync point */
} LexState;

struct JsonStream {
    JsonStreamEmit *emit;
    void *opaque;
    GString *buf;               /* text of the message's tokens */
    GArray *toks;               /* of Token */
    LexState state;
    char quote;
    size_t tok_start;           /* offset in buf of the current token */
    int braces, brackets;
    bool skipping;              /* message too big: drop it to its end */
};

JsonStream *json_stream_new(JsonStreamEmit *emit, void *opaque)
{
    JsonStream *js = g_new0(JsonStream, 1);

    js->emit = emit;
    js->opaque = opaque;
    js->buf = g_string_sized_new(256);
    js->toks = g_array_new(FALSE, FALSE, sizeof(Token));
    return js;
}

/* Forget the collected message (not the lexer state). */
static void drop_message(JsonStream *js)
{
    g_string_truncate(js->buf, 0);
    if (js->toks->len > 65536) {
        /* Same for the token records of a huge message. */
        g_array_free(js->toks, TRUE);
        js->toks = g_array_new(FALSE, FALSE, sizeof(Token));
    } else {
        g_array_set_size(js->toks, 0);
    }
    js->braces = js->brackets = 0;
    js->tok_start = 0;
    /* Give back memory a huge message took. */
    if (js->buf->allocated_len > 1024 * 1024) {
        g_string_free(js->buf, TRUE);
        js->buf = g_string_sized_new(256);
    }
}

void json_stream_reset(JsonStream *js)
{
    drop_message(js);
    js->state = L_START;
    js->quote = 0;
    js->skipping = false;
}

void json_stream_free(JsonStream *js)
{
    if (js) {
        g_string_free(js->buf, TRUE);
        g_array_free(js->toks, TRUE);
        g_free(js);
    }
}

size_t json_stream_buffered(const JsonStream *js)
{
    return js->buf->len + js->toks->len * sizeof(Token);
}

static void emit_error(JsonStream *js, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);

static void emit_error(JsonStream *js, const char *fmt, ...)
{
    Error *err = NULL;
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_setg(&err, "%s", msg);
    js->emit(js->opaque, NULL, err);
}

/* ---- parser ---- */

typedef struct Parser {
    JsonStream *js;
    size_t pos;                 /* next token */
    Error *err;
} Parser;

static const Token *peek_tok(Parser *p)
{
    return p->pos < p->js->toks->len
           ? &g_array_index(p->js->toks, Token, p->pos) : NULL;
}

static const Token *next_tok(Parser *p)
{
    const Token *t = peek_tok(p);

    if (t) {
        p->pos++;
    }
    return t;
}

static void parse_error(Parser *p, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void parse_error(Parser *p, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    if (p->err) {
        return;
    }
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    /* QEMU's parser formats its detail into 1 KiB: a long invalid
     * keyword is cut to 1023 bytes (no closing quote).  Stray-token
     * messages are not parser errors and stay whole. */
    if (strlen(msg) > 1023) {
        msg[1023] = '\0';
    }
    error_setg(&p->err, "JSON parse error, %s", msg);
}

static int hex_value(char c)
{
    return g_ascii_xdigit_value(c);
}

/* Four hex digits at s (bounded by end), or -1. */
static int32_t read_hex4(const char *s, const char *end)
{
    int32_t v = 0;

    if (end - s < 4) {
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        int d = hex_value(s[i]);

        if (d < 0) {
            return -1;
        }
        v = v * 16 + d;
    }
    return v;
}

/*
 * Decode one raw UTF-8 sequence at *s (< end) into *cp; false if it is
 * not valid UTF-8.  The overlong C0 80 is accepted as U+0000 ("modified
 * UTF-8"), as QEMU does; every other overlong form, surrogates and values
 * above U+10FFFF are refused.
 */
static bool utf8_next(const unsigned char **s, const unsigned char *end,
                      uint32_t *cp)
{
    const unsigned char *q = *s;
    unsigned char c = *q;
    int n;
    uint32_t v, min;

    if (c < 0x80) {
        *cp = c;
        *s = q + 1;
        return true;
    }
    if (c == 0xC0 && end - q >= 2 && q[1] == 0x80) {
        *cp = 0;
        *s = q + 2;
        return true;
    }
    if ((c & 0xE0) == 0xC0) {
        n = 2; v = c & 0x1F; min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3; v = c & 0x0F; min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4; v = c & 0x07; min = 0x10000;
    } else {
        return false;
    }
    if (end - q < n) {
        return false;
    }
    for (int i = 1; i < n; i++) {
        if ((q[i] & 0xC0) != 0x80) {
            return false;
        }
        v = (v << 6) | (q[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        return false;
    }
    *cp = v;
    *s = q + n;
    return true;
}

static void append_utf8(GString *out, uint32_t cp)
{
    char b[6];
    int n = g_unichar_to_utf8(cp, b);

    g_string_append_len(out, b, n);
}

/* The string token t decoded, or NULL with p->err set. */
static json_t *parse_string(Parser *p, const Token *t)
{
    const char *text = p->js->buf->str + t->start;
    const char *s = text + 1, *end = text + t->len - 1;  /* inside quotes */
    g_autoptr(GString) out = g_string_sized_new(t->len);

    while (s < end) {
        const char *run = s;

        while (s < end && (unsigned char)*s >= 0x20 &&
               (unsigned char)*s < 0x80 && *s != '\\') {
            s++;
        }
        g_string_append_len(out, run, s - run);
        if (s == end) {
            break;
        }
        if (*s == '\\') {
            const char *esc = s;

            s++;
            switch (*s) {
            case '"': case '\'': case '\\': case '/':
                g_string_append_c(out, *s);
                s++;
                break;
            case 'b': g_string_append_c(out, '\b'); s++; break;
            case 'f': g_string_append_c(out, '\f'); s++; break;
            case 'n': g_string_append_c(out, '\n'); s++; break;
            case 'r': g_string_append_c(out, '\r'); s++; break;
            case 't': g_string_append_c(out, '\t'); s++; break;
            case 'u': {
                /* The message quotes up to six characters from the
                 * backslash, stopping at the closing quote. */
                int32_t cp = read_hex4(s + 1, end);

                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    int32_t lo = -1;

                    if (end - (s + 5) >= 6 && s[5] == '\\' && s[6] == 'u') {
                        lo = read_hex4(s + 7, end);
                    }
                    if (lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        s += 6;
                    } else {
                        cp = -1;
                    }
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    cp = -1;
                }
                if (cp < 0) {
                    parse_error(p, "%.*s is not a valid Unicode character",
                                (int)MIN(6, end + 1 - esc), esc);
                    return NULL;
                }
                append_utf8(out, cp);
                s += 5;
                break;
            }
            default:
                parse_error(p, "invalid escape sequence in string");
                return NULL;
            }
        } else {
            uint32_t cp;
            const unsigned char *u = (const unsigned char *)s;

            if (!utf8_next(&u, (const unsigned char *)end, &cp)) {
                parse_error(p, "invalid UTF-8 sequence in string");
                return NULL;
            }
            if (cp == 0) {
                g_string_append_c(out, '\0');
            } else {
                g_string_append_len(out, s, (const char *)u - s);
            }
            s = (const char *)u;
        }
    }
    return json_stringn_nocheck(out->str, out->len);
}

/* A double as jansson can hold it (it refuses infinities). */
static json_t *real_value(double d)
{
    if (!isfinite(d)) {
        d = d < 0 ? -DBL_MAX : DBL_MAX;
    }
    return json_real(d);
}

static json_t *parse_number(Parser *p, const Token *t)
{
    g_autofree char *text = g_strndup(p->js->buf->str + t->start, t->len);

    if (t->type == TOK_INTEGER) {
        char *endp;
        long long v;

        errno = 0;
        v = strtoll(text, &endp, 10);
        if (errno != ERANGE) {
            return json_integer(v);
        }
        /* QEMU keeps a value in uint64 range as an unsigned integer,
         * which jansson cannot hold: it becomes a double, as any
         * integer beyond that range does in QEMU. */
    }
    return real_value(g_ascii_strtod(text, NULL));
}

static json_t *parse_value(Parser *p);

static json_t *parse_object(Parser *p)
{
    json_t *obj = json_object();
    const Token *t = peek_tok(p);

    if (t && t->type == '}') {
        p->pos++;
        return obj;
    }
    for (;;) {
        json_t *key, *val;

        key = parse_value(p);
        if (!key) {
            goto fail;
        }
        if (!json_is_string(key)) {
            json_decref(key);
            parse_error(p, "key is not a string in object");
            goto fail;
        }
        t = next_tok(p);
        if (!t || t->type != ':') {
            json_decref(key);
            parse_error(p, "missing : in object pair");
            goto fail;
        }
        val = parse_value(p);
        if (!val) {
            json_decref(key);
            goto fail;
        }
        if (json_object_getn(obj, json_string_value(key),
                             json_string_length(key))) {
            json_decref(key);
            json_decref(val);
            parse_error(p, "duplicate key");
            goto fail;
        }
        json_object_setn_new_nocheck(obj, json_string_value(key),
                                     json_string_length(key), val);
        json_decref(key);
        t = next_tok(p);
        if (t && t->type == '}') {
            return obj;
        }
        if (!t || t->type != ',') {
            parse_error(p, "expected separator in dict");
            goto fail;
        }
    }
fail:
    json_decref(obj);
    return NULL;
}

static json_t *parse_array(Parser *p)
{
    json_t *arr = json_array();
    const Token *t = peek_tok(p);

    if (t && t->type == ']') {
        p->pos++;
        return arr;
    }
    for (;;) {
        json_t *val = parse_value(p);

        if (!val) {
            json_decref(arr);
            return NULL;
        }
        json_array_append_new(arr, val);
        t = next_tok(p);
        if (t && t->type == ']') {
            return arr;
        }
        if (!t || t->type != ',') {
            parse_error(p, "expected separator in list");
            json_decref(arr);
            return NULL;
        }
    }
}

static json_t *parse_value(Parser *p)
{
    const Token *t = next_tok(p);

    if (!t) {
        parse_error(p, "expecting value");
        return NULL;
    }
    switch (t->type) {
    case '{':
        return parse_object(p);
    case '[':
        return parse_array(p);
    case TOK_STRING:
        return parse_string(p, t);
    case TOK_INTEGER:
    case TOK_FLOAT:
        return parse_number(p, t);
    case TOK_KEYWORD: {
        const char *s = p->js->buf->str + t->start;

        if (t->len == 4 && !memcmp(s, "true", 4)) {
            return json_true();
        }
        if (t->len == 5 && !memcmp(s, "false", 5)) {
            return json_false();
        }
        if (t->len == 4 && !memcmp(s, "null", 4)) {
            return json_null();
        }
        parse_error(p, "invalid keyword '%.*s'", (int)t->len, s);
        return NULL;
    }
    default:
        parse_error(p, "expecting value");
        return NULL;
    }
}

/* The collected message is complete: parse it and hand it on. */
static void emit_message(JsonStream *js)
{
    Parser p = { .js = js };
    json_t *value = parse_value(&p);

    drop_message(js);
    if (value) {
        js->emit(js->opaque, value, NULL);
    } else {
        js->emit(js->opaque, NULL, p.err);
    }
}

/* ---- streamer ---- */

/* A token of buf[tok_start..] ends here (exclusive). */
static void check_size(JsonStream *js);

static void push_token(JsonStream *js, char type)
{
    Token t = { type, js->tok_start, js->buf->len - js->tok_start };

    if (js->skipping) {
        /* Track depth only, to find the end of the dropped message. */
        js->braces += type == '{' ? 1 : type == '}' ? -1 : 0;
        js->brackets += type == '[' ? 1 : type == ']' ? -1 : 0;
        g_string_truncate(js->buf, 0);
        js->tok_start = 0;
        if (js->braces <= 0 && js->brackets <= 0) {
            js->skipping = false;
            js->braces = js->brackets = 0;
        }
        return;
    }
    g_array_append_val(js->toks, t);
    js->tok_start = js->buf->len;
    switch (type) {
    case '{': js->braces++; break;
    case '}': js->braces--; break;
    case '[': js->brackets++; break;
    case ']': js->brackets--; break;
    }
    if (js->braces + js->brackets > MONITOR_MAX_NESTING) {
        drop_message(js);
        emit_error(js, "JSON nesting depth limit exceeded");
        return;
    }
    if (js->braces < 0 || js->brackets < 0 ||
        (js->braces == 0 && js->brackets == 0)) {
        emit_message(js);
    } else {
        check_size(js);
    }
}

/*
 * The current token, ending with the byte c just seen, is invalid.  The
 * message collected so far is dropped and the lexer resynchronises.
 *
 * In the skipped rest of an over-long message this also ends the skip and
 * forgets its bracket counts, as an error token resets QEMU's streamer:
 * otherwise the counts of the dropped message would swallow the commands
 * that follow until a stray closer balanced them.  The token's text is not
 * kept while skipping, so the error quotes only the offending byte (QEMU,
 * which cut the over-long token earlier, typically quotes just that too).
 */
static void lex_error(JsonStream *js, unsigned char c)
{
    g_autofree char *text = NULL;

    if (js->skipping) {
        text = g_strndup((const char *)&c, 1);
        js->skipping = false;
    } else {
        text = g_strndup(js->buf->str + js->tok_start,
                         js->buf->len - js->tok_start);
    }
    drop_message(js);
    emit_error(js, "JSON parse error, stray '%s'", text);
    js->state = L_RECOVERY;
}

/*
 * Past MONITOR_MAX_MESSAGE bytes of text plus token records, report the
 * message once and keep lexing it (to find its end) without storing it.
 */
static void check_size(JsonStream *js)
{
    int braces = js->braces, brackets = js->brackets;

    if (js->skipping ||
        js->buf->len + js->toks->len * sizeof(Token) <= MONITOR_MAX_MESSAGE) {
        return;
    }
    emit_error(js, "JSON token size limit exceeded");
    drop_message(js);
    js->braces = braces;
    js->brackets = brackets;
    js->skipping = braces > 0 || brackets > 0 || js->state != L_START;
}

static bool is_structural(unsigned char c)
{
    return c == '{' || c == '}' || c == '[' || c == ']' || c == ',' ||
           c == ':';
}

/* A byte that continues neither a number nor a keyword ends the token;
 * it is then looked at again from L_START. */
static void end_bare(JsonStream *js, char type)
{
    push_token(js, type);
    js->state = L_START;
}

static void store(JsonStream *js, char c)
{
    if (!js->skipping) {
        g_string_append_c(js->buf, c);
    }
}

void json_stream_feed(JsonStream *js, const char *data, size_t len)
{
    const unsigned char *in = (const unsigned char *)data;
    size_t i = 0;

    while (i < len) {
        unsigned char c = in[i];

        switch (js->state) {
        case L_START:
            i++;
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                continue;
            }
            js->tok_start = js->skipping ? 0 : js->buf->len;
            store(js, c);
            if (is_structural(c)) {
                push_token(js, c);
            } else if (c == '"' || c == '\'') {
                js->quote = c;
                js->state = L_STRING;
            } else if (c == '-') {
                js->state = L_MINUS;
            } else if (c == '0') {
                js->state = L_ZERO;
            } else if (c >= '1' && c <= '9') {
                js->state = L_INT;
            } else if (c >= 'a' && c <= 'z') {
                js->state = L_KEYWORD;
            } else {
                lex_error(js, c);
            }
            break;

        case L_STRING: {
            /* Fast path: copy the run of ordinary bytes in one go. */
            size_t run = i;

            while (run < len && in[run] >= 0x20 && in[run] < 0xFE &&
                   in[run] != '\\' && in[run] != (unsigned char)js->quote) {
                run++;
            }
            if (run > i) {
                if (!js->skipping) {
                    g_string_append_len(js->buf, data + i, run - i);
                }
                i = run;
                check_size(js);
                continue;
            }
            i++;
            store(js, c);
            if (c == (unsigned char)js->quote) {
                js->state = L_START;
                push_token(js, TOK_STRING);
            } else if (c == '\\') {
                js->state = L_ESCAPE;
            } else {
                lex_error(js, c);      /* control byte, 0xFE or 0xFF */
            }
            break;
        }

        case L_ESCAPE:
            i++;
            store(js, c);
            if (c < 0x20 || c >= 0xFE) {
                lex_error(js, c);
            } else {
                /* Which escapes exist is the parser's business.  The
                 * escape counts against the size cap like any string
                 * byte: a string of nothing but escapes must not grow
                 * the buffer without bound. */
                js->state = L_STRING;
                check_size(js);
            }
            break;

        case L_MINUS:
            i++;
            store(js, c);
            if (c == '0') {
                js->state = L_ZERO;
            } else if (c >= '1' && c <= '9') {
                js->state = L_INT;
            } else {
                lex_error(js, c);
            }
            break;

        case L_ZERO:
        case L_INT:
            if (c >= '0' && c <= '9') {
                i++;
                store(js, c);
                if (js->state == L_ZERO) {
                    lex_error(js, c);  /* no leading zeros */
                } else {
                    check_size(js);
                }
            } else if (c == '.') {
                i++;
                store(js, c);
                js->state = L_DOT;
            } else if ((c == 'e' || c == 'E') && js->state == L_INT) {
                /* As in QEMU, a lone leading zero takes no exponent:
                 * "0e5" is 0, then the keyword "e", then 5. */
                i++;
                store(js, c);
                js->state = L_EXP;
            } else {
                end_bare(js, TOK_INTEGER);
            }
            break;

        case L_DOT:
        case L_EXP_SIGN:
            i++;
            store(js, c);
            if (c >= '0' && c <= '9') {
                js->state = js->state == L_DOT ? L_FRAC : L_EXP_DIGITS;
            } else {
                lex_error(js, c);
            }
            break;

        case L_FRAC:
            if (c >= '0' && c <= '9') {
                i++;
                store(js, c);
                check_size(js);
            } else if (c == 'e' || c == 'E') {
                i++;
                store(js, c);
                js->state = L_EXP;
            } else {
                end_bare(js, TOK_FLOAT);
            }
            break;

        case L_EXP:
            i++;
            store(js, c);
            if (c == '+' || c == '-') {
                js->state = L_EXP_SIGN;
            } else if (c >= '0' && c <= '9') {
                js->state = L_EXP_DIGITS;
            } else {
                lex_error(js, c);
            }
            break;

        case L_EXP_DIGITS:
            if (c >= '0' && c <= '9') {
                i++;
                store(js, c);
                check_size(js);
            } else {
                end_bare(js, TOK_FLOAT);
            }
            break;

        case L_KEYWORD:
            if (c >= 'a' && c <= 'z') {
                i++;
                store(js, c);
                check_size(js);
            } else {
                end_bare(js, TOK_KEYWORD);
            }
            break;

        case L_RECOVERY:
            /* Resynchronise on a structural or control character (TAB
             * excepted) or 0xFE / 0xFF, which is then lexed normally. */
            if ((c < 0x20 && c != '\t') || c >= 0xFE || is_structural(c)) {
                js->state = L_START;
            } else {
                i++;
            }
            break;
        }
    }
}
