/* SPDX-License-Identifier: Apache-2.0 */
/* picket: logging to stderr as key=value lines or JSON objects. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

static enum pk_log_level log_threshold = PK_LOG_LEVEL_INFO;
static bool log_json;

static const char *const level_names[] = {"debug", "info", "warn", "error", "fatal"};

void pk_log_setup(enum pk_log_level level, bool json)
{
    log_threshold = level;
    log_json = json;
}

int pk_log_level_parse(const char *text, enum pk_log_level *out)
{
    for (size_t i = 0; i < PK_ARRAY_LEN(level_names); i++) {
        if (strcasecmp(text, level_names[i]) == 0) {
            *out = (enum pk_log_level)i;
            return 0;
        }
    }
    if (strcasecmp(text, "warning") == 0) {
        *out = PK_LOG_LEVEL_WARN;
        return 0;
    }
    return PK_E_INVALID;
}

bool pk_log_enabled(enum pk_log_level level)
{
    return level >= log_threshold;
}

const char *pk_log_escape(char *buf, size_t buf_len, const char *text)
{
    static const char hex[] = "0123456789abcdef";
    size_t len = 0;

    if (buf_len == 0) {
        return buf;
    }
    for (; *text != '\0' && len + 5 < buf_len; text++) {
        unsigned char c = (unsigned char)*text;
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            buf[len++] = (char)c;
        } else {
            buf[len++] = '\\';
            buf[len++] = 'x';
            buf[len++] = hex[c >> 4];
            buf[len++] = hex[c & 15];
        }
    }
    buf[len] = '\0';
    return buf;
}

/* Escape text (len bytes) into buf as long as each escaped byte and a NUL fit in cap (at least
 * 1); *n_out is the length written, without the NUL, which is not written. Returns how many
 * bytes of text were escaped. */
static size_t quote_fit(char *buf, size_t cap, const char *text, size_t len, size_t *n_out)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        bool plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
        if (n + (plain ? 1 : 4) >= cap) {
            break;
        }
        if (plain) {
            buf[n++] = (char)c;
        } else {
            buf[n++] = '\\';
            buf[n++] = 'x';
            buf[n++] = hex[c >> 4];
            buf[n++] = hex[c & 15];
        }
    }
    *n_out = n;
    return i;
}

const char *pk_quote(char *buf, size_t cap, const char *text, size_t len)
{
    size_t n;

    PK_ASSERT(cap >= 8);
    /* Keep room for a "..." after whatever fits. */
    if (quote_fit(buf, cap - 3, text, len, &n) < len) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

const char *pk_quote_n(char *buf, size_t cap, const char *text, size_t len, size_t max_in)
{
    size_t n;

    if (cap == 0) {
        return buf;
    }
    quote_fit(buf, cap, text, len < max_in ? len : max_in, &n);
    if (len > max_in && n + 3 < cap) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

/* ---- one line ------------------------------------------------------------------------------ */

/* The line being written: appends stop quietly at the end (a cut line still ends in '\n'). */
struct line {
    char buf[4400];
    size_t len;
};

static void put_bytes(struct line *ln, const char *s, size_t n)
{
    /* Keep room for a closing "}\n" or "\"\n". */
    size_t room = sizeof(ln->buf) - 4 - ln->len;
    if (n > room) {
        n = room;
    }
    memcpy(ln->buf + ln->len, s, n);
    ln->len += n;
}

static void put(struct line *ln, const char *s)
{
    put_bytes(ln, s, strlen(s));
}

static void put_hex(struct line *ln, const char *prefix, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    char esc[8];
    size_t n = strlen(prefix);

    memcpy(esc, prefix, n);
    esc[n++] = hex[c >> 4];
    esc[n++] = hex[c & 15];
    put_bytes(ln, esc, n);
}

/* s[0..n) with \" and \\ escaped and every byte outside printable ASCII as hex_prefix + two hex
 * digits, so the line stays ASCII and parseable whatever a peer sent. */
static void put_escaped(struct line *ln, const char *s, size_t n, const char *hex_prefix)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            put_bytes(ln, esc, 2);
        } else if (c < 0x20 || c >= 0x7f) {
            put_hex(ln, hex_prefix, c);
        } else {
            put_bytes(ln, (const char *)&c, 1);
        }
    }
}

/* The body of a JSON string: \u00XX keeps it valid JSON. */
static void put_json_str(struct line *ln, const char *s, size_t n)
{
    put_escaped(ln, s, n, "\\u00");
}

/* A logfmt value in double quotes, odd bytes as \xNN. */
static void put_logfmt_quoted(struct line *ln, const char *s, size_t n)
{
    put(ln, "\"");
    put_escaped(ln, s, n, "\\x");
    put(ln, "\"");
}

/* s[0..n) as a logfmt value: bare when it is a plain token, else quoted. */
static void put_logfmt_str(struct line *ln, const char *s, size_t n)
{
    bool bare = n > 0;

    for (size_t i = 0; i < n && bare; i++) {
        unsigned char c = (unsigned char)s[i];
        bare = c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '=';
    }
    if (bare) {
        put_bytes(ln, s, n);
    } else {
        put_logfmt_quoted(ln, s, n);
    }
}

/* The inside of a quoted value the caller wrote, in quotes again: its escapes stay as they are,
 * a quote it did not escape is escaped now. */
static void put_quoted_as_is(struct line *ln, const char *s, size_t n)
{
    put(ln, "\"");
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n) {
            put_bytes(ln, s + i, 2);
            i++;
        } else if (s[i] == '"') {
            put(ln, "\\\"");
        } else {
            put_bytes(ln, s + i, 1);
        }
    }
    put(ln, "\"");
}

/* A field ready to write: its value as text, and how that text is to be written. */
enum value_form {
    FORM_STR,    /* a string: escaped by the writer */
    FORM_NUMBER, /* digits: bare in both formats */
    FORM_QUOTED, /* the inside of a "..." the caller already escaped: written back as it was */
};

struct out_field {
    const char *key;
    size_t key_len;
    const char *val;
    size_t val_len;
    enum value_form form;
};

#define MAX_FIELDS 32

static bool is_key_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || c == '_' || (!first && c >= '0' && c <= '9');
}

/* The length of a key= at s, 0 when s does not start with one. */
static size_t key_at(const char *s)
{
    size_t n = 0;

    while (is_key_char(s[n], n == 0)) {
        n++;
    }
    return n > 0 && s[n] == '=' ? n : 0;
}

/* Whether the text after a quote ends a quoted value: the end, or spaces and a key=. */
static bool closes_value(const char *after)
{
    if (*after == '\0') {
        return true;
    }
    if (*after != ' ') {
        return false;
    }
    while (*after == ' ') {
        after++;
    }
    return key_at(after) > 0;
}

/* Split a printf-style message, "event words key=value key=\"quoted value\" ...", into its event
 * (msg[0..*msg_len)) and fields. When the text after the event is not all key=value pairs, it
 * all stays in msg, so nothing is ever lost or misread. Returns the number of fields. */
static size_t split_message(const char *msg, size_t *msg_len, struct out_field *f, size_t cap)
{
    const char *p = msg;
    size_t n = 0;

    *msg_len = strlen(msg);
    /* The first word that is a key= begins the fields. */
    while (*p != '\0' && !(key_at(p) > 0 && (p == msg || p[-1] == ' '))) {
        p++;
    }
    if (*p == '\0') {
        return 0;
    }
    size_t event_len = (size_t)(p - msg);
    while (event_len > 0 && msg[event_len - 1] == ' ') {
        event_len--;
    }
    while (*p != '\0') {
        size_t k = key_at(p);
        if (k == 0 || n == cap) {
            return 0;
        }
        f[n] = (struct out_field){.key = p, .key_len = k};
        p += k + 1;
        if (*p == '"') {
            const char *v = ++p;
            /* The closing quote is the one the line or the next key= follows: a quote inside
             * an unescaped error text ("invalid duration "x"") stays part of the value. */
            while (*p != '\0' && !(*p == '"' && closes_value(p + 1))) {
                p += (*p == '\\' && p[1] != '\0') ? 2 : 1;
            }
            if (*p != '"') {
                return 0;
            }
            f[n].val = v;
            f[n].val_len = (size_t)(p - v);
            f[n].form = FORM_QUOTED;
            p++;
        } else {
            const char *v = p;
            while (*p != '\0' && *p != ' ') {
                p++;
            }
            f[n].val = v;
            f[n].val_len = (size_t)(p - v);
            f[n].form = FORM_STR;
        }
        n++;
        if (*p == ' ') {
            while (*p == ' ') {
                p++;
            }
        } else if (*p != '\0') {
            return 0;
        }
    }
    *msg_len = event_len;
    return n;
}

static char log_app_id[128];

void pk_log_set_app_id(const char *app_id)
{
    snprintf(log_app_id, sizeof(log_app_id), "%s", app_id != NULL ? app_id : "");
}

/* picket.<layer>: the directory of the calling source file ("../proxy/conn.c" -> picket.proxy). */
static void scope_of(const char *file, char *out, size_t cap)
{
    const char *end = strrchr(file, '/');
    const char *start = end;

    if (end == NULL) {
        snprintf(out, cap, "picket");
        return;
    }
    while (start > file && start[-1] != '/') {
        start--;
    }
    snprintf(out, cap, "picket.%.*s", (int)(end - start), start);
}

/* The keys every line has: a field of the same name must not make a second one. */
static bool is_line_key(const struct out_field *f)
{
    static const char *const keys[] = {"time", "level", "type", "scope", "app_id", "msg", "src"};

    for (size_t i = 0; i < PK_ARRAY_LEN(keys); i++) {
        if (f->key_len == strlen(keys[i]) && memcmp(f->key, keys[i], f->key_len) == 0) {
            return true;
        }
    }
    return false;
}

/* A field that repeats the line's own app_id says nothing new. */
static bool skip_field(const struct out_field *f)
{
    return f->key_len == 6 && memcmp(f->key, "app_id", 6) == 0 && log_app_id[0] != '\0' &&
           f->val_len == strlen(log_app_id) && memcmp(f->val, log_app_id, f->val_len) == 0;
}

/* A field named like one of the line's keys is written as field_<key>. */
static void put_key(struct line *ln, const struct out_field *f)
{
    if (is_line_key(f)) {
        put(ln, "field_");
    }
    put_bytes(ln, f->key, f->key_len);
}

static void write_line(enum pk_log_level level, const char *file, int line_no, const char *msg,
                       size_t msg_len, const struct out_field *f, size_t n)
{
    struct line ln;
    char ts[40], scope[48], src[300];
    struct timespec now;
    struct tm tm;
    size_t tlen;

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    tlen = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tlen, sizeof(ts) - tlen, ".%03ldZ", now.tv_nsec / 1000000);
    scope_of(file, scope, sizeof(scope));
    snprintf(src, sizeof(src), "%s:%d", file, line_no);

    ln.len = 0;
    if (log_json) {
        put(&ln, "{\"time\":\"");
        put(&ln, ts);
        put(&ln, "\",\"level\":\"");
        put(&ln, level_names[level]);
        put(&ln, "\",\"type\":\"log\",\"scope\":\"");
        put(&ln, scope);
        if (log_app_id[0] != '\0') {
            put(&ln, "\",\"app_id\":\"");
            put_json_str(&ln, log_app_id, strlen(log_app_id));
        }
        put(&ln, "\",\"msg\":\"");
        put_json_str(&ln, msg, msg_len);
        put(&ln, "\"");
        if (level == PK_LOG_LEVEL_DEBUG) {
            put(&ln, ",\"src\":\"");
            put_json_str(&ln, src, strlen(src));
            put(&ln, "\"");
        }
        for (size_t i = 0; i < n; i++) {
            if (skip_field(&f[i])) {
                continue;
            }
            put(&ln, ",\"");
            put_key(&ln, &f[i]);
            put(&ln, "\":");
            if (f[i].form == FORM_NUMBER) {
                put_bytes(&ln, f[i].val, f[i].val_len);
            } else {
                put(&ln, "\"");
                put_json_str(&ln, f[i].val, f[i].val_len);
                put(&ln, "\"");
            }
        }
        put_bytes(&ln, "}", 1);
    } else {
        put(&ln, "time=");
        put(&ln, ts);
        put(&ln, " level=");
        put(&ln, level_names[level]);
        put(&ln, " scope=");
        put(&ln, scope);
        if (log_app_id[0] != '\0') {
            put(&ln, " app_id=");
            put_logfmt_str(&ln, log_app_id, strlen(log_app_id));
        }
        if (level == PK_LOG_LEVEL_DEBUG) {
            put(&ln, " src=");
            put_logfmt_str(&ln, src, strlen(src));
        }
        put(&ln, " msg=");
        put_logfmt_quoted(&ln, msg, msg_len); /* always quoted, escaped as any string */
        for (size_t i = 0; i < n; i++) {
            if (skip_field(&f[i])) {
                continue;
            }
            put(&ln, " ");
            put_key(&ln, &f[i]);
            put(&ln, "=");
            if (f[i].form == FORM_QUOTED) {
                put_quoted_as_is(&ln, f[i].val, f[i].val_len);
            } else if (f[i].form == FORM_NUMBER) {
                put_bytes(&ln, f[i].val, f[i].val_len);
            } else {
                put_logfmt_str(&ln, f[i].val, f[i].val_len);
            }
        }
    }
    /* put_bytes kept room for this even when the line was cut. */
    ln.buf[ln.len++] = '\n';
    /* One write per line keeps lines from different threads whole. */
    ssize_t PK_UNUSED ignored = write(STDERR_FILENO, ln.buf, ln.len);
}

void pk__log(enum pk_log_level level, const char *file, int line, const char *fmt, ...)
{
    char msg[2048];
    struct out_field f[MAX_FIELDS];
    size_t msg_len, n;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    n = split_message(msg, &msg_len, f, MAX_FIELDS);
    write_line(level, file, line, msg, msg_len, f, n);
}

void pk__log_event(enum pk_log_level level, const char *file, int line, const char *msg,
                   const struct pk_log_field *fields, size_t n_fields)
{
    struct out_field f[MAX_FIELDS];
    char numbers[MAX_FIELDS][32];
    size_t n = 0;

    for (size_t i = 0; i < n_fields && n < MAX_FIELDS; i++, n++) {
        const struct pk_log_field *in = &fields[i];
        f[n] = (struct out_field){.key = in->key, .key_len = strlen(in->key), .form = FORM_NUMBER};
        switch (in->type) {
        case PK_LOG_VALUE_STR:
            f[n].form = FORM_STR;
            f[n].val = in->v.s != NULL ? in->v.s : "";
            f[n].val_len = strlen(f[n].val);
            continue;
        case PK_LOG_VALUE_INT:
            snprintf(numbers[n], sizeof(numbers[n]), "%lld", in->v.i);
            break;
        case PK_LOG_VALUE_UINT:
            snprintf(numbers[n], sizeof(numbers[n]), "%llu", in->v.u);
            break;
        case PK_LOG_VALUE_DOUBLE:
            /* JSON has no NaN or infinity: such a value is written as a string. */
            snprintf(numbers[n], sizeof(numbers[n]), "%.3f", in->v.d);
            if (in->v.d != in->v.d || in->v.d > 1e300 || in->v.d < -1e300) {
                f[n].form = FORM_STR;
            }
            break;
        }
        f[n].val = numbers[n];
        f[n].val_len = strlen(numbers[n]);
    }
    write_line(level, file, line, msg, strlen(msg), f, n);
}

void pk__assert_fail(const char *expr, const char *file, int line)
{
    pk__log(PK_LOG_LEVEL_FATAL, file, line, "assertion failed expr=\"%s\" at=%s:%d", expr, file,
            line);
    abort();
}
