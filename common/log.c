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

/* Append src to dst[*len..cap) as the body of a JSON string. */
static void json_escape(char *dst, size_t *len, size_t cap, const char *src)
{
    for (; *src != '\0' && *len + 7 < cap; src++) {
        unsigned char c = (unsigned char)*src;
        if (c == '"' || c == '\\') {
            dst[(*len)++] = '\\';
            dst[(*len)++] = (char)c;
        } else if (c < 0x20) {
            *len += (size_t)snprintf(dst + *len, cap - *len, "\\u%04x", c);
        } else {
            dst[(*len)++] = (char)c;
        }
    }
    dst[*len] = '\0';
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

void pk__log(enum pk_log_level level, const char *file, int line, const char *fmt, ...)
{
    char msg[2048];
    char out[4400];
    char ts[40];
    struct timespec now;
    struct tm tm;
    size_t len;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    len = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + len, sizeof(ts) - len, ".%03ldZ", now.tv_nsec / 1000000);

    if (log_json) {
        len = (size_t)snprintf(out, sizeof(out), "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts,
                               level_names[level]);
        json_escape(out, &len, sizeof(out) - 64, msg);
        if (level == PK_LOG_LEVEL_DEBUG) {
            len += (size_t)snprintf(out + len, sizeof(out) - len, "\",\"src\":\"%s:%d", file, line);
        }
        len += (size_t)snprintf(out + len, sizeof(out) - len, "\"}\n");
    } else if (level == PK_LOG_LEVEL_DEBUG) {
        len = (size_t)snprintf(out, sizeof(out), "ts=%s level=%s src=%s:%d %s\n", ts,
                               level_names[level], file, line, msg);
    } else {
        len = (size_t)snprintf(out, sizeof(out), "ts=%s level=%s %s\n", ts, level_names[level],
                               msg);
    }
    if (len >= sizeof(out)) {
        len = sizeof(out) - 1;
        out[len - 1] = '\n';
    }
    /* One write per line keeps lines from different threads whole. */
    ssize_t PK_UNUSED ignored = write(STDERR_FILENO, out, len);
}

void pk__assert_fail(const char *expr, const char *file, int line)
{
    pk__log(PK_LOG_LEVEL_FATAL, file, line, "assertion failed expr=\"%s\" at=%s:%d", expr, file,
            line);
    abort();
}
