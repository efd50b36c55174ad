/* SPDX-License-Identifier: Apache-2.0 */
/* picket: logging to stderr as logfmt lines or JSON objects, every field its own key.
 *
 * A text line is logfmt:
 *     time=2026-11-23T12:00:00.123Z level=info scope=picket.proxy msg="connection closed"
 *     listener=in peer_id="spiffe://public/ns/default/web" reason=denied
 * and with JSON (--log-as-json, [log] json) the same line is one object with Dapr's names for
 * what Dapr logs (time, level, type, scope, app_id, msg) and one key per field:
 *     {"time":"...","level":"info","type":"log","scope":"picket.proxy","msg":"connection closed",
 *      "listener":"in","peer_id":"spiffe://public/ns/default/web","reason":"denied"}
 * so a log store can index peer_id. scope is picket.<layer> of the calling file; app_id is set by
 * pk_log_set_app_id.
 *
 * Fields are first-class with PK_LOG_EVENT(level, "message", PK_LF_STR(key, value), ...): string
 * values may be untrusted (a peer's SPIFFE ID, an error text): each format escapes them, so a
 * peer can forge neither a field nor a line. The older PK_LOG_INFO("event key=value ...") form
 * is split the same way: the words before the first key= are msg, the key=value pairs after
 * them fields (a value in double quotes may hold spaces); callers escape untrusted text in it
 * with pk_log_escape.
 *
 * Never log a private key, token or CSR. Safe to call from any thread: each line is formatted
 * into a local buffer and written with one write(2). */
#ifndef PK_LOG_H
#define PK_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "compiler.h"

enum pk_log_level {
    PK_LOG_LEVEL_DEBUG = 0,
    PK_LOG_LEVEL_INFO,
    PK_LOG_LEVEL_WARN,
    PK_LOG_LEVEL_ERROR,
    PK_LOG_LEVEL_FATAL,
};

/* Set the threshold and output format. Not thread-safe: call at start-up. */
void pk_log_setup(enum pk_log_level level, bool json);

/* The app id every JSON line carries as app_id (Dapr's key); NULL or "" for none. Copied. Call at
 * start-up, before other threads log. */
void pk_log_set_app_id(const char *app_id);

/* Parse "debug", "info", "warn"/"warning", "error" or "fatal". Returns 0 or PK_E_INVALID. */
int pk_log_level_parse(const char *text, enum pk_log_level *out) PK_MUST_USE;

/* Current threshold, so callers can skip expensive argument preparation. */
bool pk_log_enabled(enum pk_log_level level);

/* Copy untrusted text into buf for a log line: quotes, backslashes and bytes outside printable
 * ASCII become \xNN, so a peer cannot forge fields or lines. Returns buf (always terminated). */
const char *pk_log_escape(char *buf, size_t buf_len, const char *text);

/* Untrusted text (len bytes, need not be NUL-terminated) for a message, in buf (cap bytes, at
 * least 8): escaped as pk_log_escape does, cut to fit with "..." at the end when it does not.
 * The caller adds the quotes it wants around it. Returns buf. */
const char *pk_quote(char *buf, size_t cap, const char *text, size_t len);

enum pk_log_value_type {
    PK_LOG_VALUE_STR,
    PK_LOG_VALUE_INT,
    PK_LOG_VALUE_UINT,
    PK_LOG_VALUE_DOUBLE,
};

/* One field of a log line: a key ([a-z0-9_]) and a typed value (numbers stay numbers in JSON). */
struct pk_log_field {
    const char *key;
    enum pk_log_value_type type;
    union {
        const char *s; /* NULL logs as "" */
        long long i;
        unsigned long long u;
        double d;
    } v;
};

#define PK_LF_STR(k, x)  ((struct pk_log_field){.key = (k), .type = PK_LOG_VALUE_STR, .v.s = (x)})
#define PK_LF_INT(k, x)  ((struct pk_log_field){.key = (k), .type = PK_LOG_VALUE_INT, .v.i = (x)})
#define PK_LF_UINT(k, x) ((struct pk_log_field){.key = (k), .type = PK_LOG_VALUE_UINT, .v.u = (x)})
#define PK_LF_DOUBLE(k, x)                                                                         \
    ((struct pk_log_field){.key = (k), .type = PK_LOG_VALUE_DOUBLE, .v.d = (x)})

void pk__log(enum pk_log_level level, const char *file, int line, const char *fmt, ...)
        PK_PRINTF(4, 5);
void pk__log_event(enum pk_log_level level, const char *file, int line, const char *msg,
                   const struct pk_log_field *fields, size_t n_fields);

/* PK_LOG_EVENT(PK_LOG_LEVEL_INFO, "connection closed", PK_LF_STR("listener", name), ...) */
#define PK_LOG_EVENT(level, msg, ...)                                                              \
    do {                                                                                           \
        if (pk_log_enabled(level)) {                                                               \
            const struct pk_log_field pk_log_fields_[] = {__VA_ARGS__};                            \
            pk__log_event(level, __FILE__, __LINE__, msg, pk_log_fields_,                          \
                          sizeof(pk_log_fields_) / sizeof(pk_log_fields_[0]));                     \
        }                                                                                          \
    } while (0)

#define PK_LOG(level, ...)                                                                         \
    do {                                                                                           \
        if (pk_log_enabled(level)) {                                                               \
            pk__log(level, __FILE__, __LINE__, __VA_ARGS__);                                       \
        }                                                                                          \
    } while (0)
#define PK_LOG_DEBUG(...) PK_LOG(PK_LOG_LEVEL_DEBUG, __VA_ARGS__)
#define PK_LOG_INFO(...)  PK_LOG(PK_LOG_LEVEL_INFO, __VA_ARGS__)
#define PK_LOG_WARN(...)  PK_LOG(PK_LOG_LEVEL_WARN, __VA_ARGS__)
#define PK_LOG_ERR(...)   PK_LOG(PK_LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
