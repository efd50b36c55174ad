/* SPDX-License-Identifier: Apache-2.0 */
/* picket: logging to stderr as key=value lines or JSON objects.
 *
 * A line reads `ts=2026-11-23T12:00:00.123Z level=info <message>`, where the message is itself
 * written as an event name followed by key=value fields ("rotated spiffe_id=... serial=...").
 * Never pass a private key, token or CSR to these macros. Safe to call from any thread: each line
 * is formatted into a local buffer and written with one write(2). */
#ifndef PK_LOG_H
#define PK_LOG_H

#include <stdbool.h>

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

/* pk_quote for a message that shows at most max_in bytes of the text, whatever room buf (cap
 * bytes) has: bytes past max_in are left out and marked with "..."; bytes that do not fit in buf
 * are left out silently (size buf for max_in escaped bytes, 4 * max_in + 4, to show them all).
 * Always terminated when cap > 0. Returns buf. */
const char *pk_quote_n(char *buf, size_t cap, const char *text, size_t len, size_t max_in);

void pk__log(enum pk_log_level level, const char *file, int line, const char *fmt, ...)
        PK_PRINTF(4, 5);

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
