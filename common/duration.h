/* SPDX-License-Identifier: Apache-2.0 */
/* picket: Go-style durations ("24h", "1h30m", "300ms") as int64 nanoseconds.
 *
 * Dapr's configuration and flags carry Go `time.Duration` strings, so picket accepts exactly what
 * Go's `time.ParseDuration` accepts and nothing else: an optional sign, then one or more
 * `<decimal number><unit>` terms with units ns, us, µs (U+00B5), μs (U+03BC), ms, s, m, h; "0"
 * alone (optionally signed) is zero. Fractions are rounded the way Go rounds them (through a
 * float64 for the fractional part), so "1.5h" and "2h45m30.5s" give the same nanoseconds as Go.
 * Values that do not fit in an int64 are refused. The printer writes Go's `Duration.String()`
 * form ("24h0m0s", "1.5s", "300ms", "0s"). */
#ifndef PK_DURATION_H
#define PK_DURATION_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "compiler.h"
#include "err.h"

#define PK_DURATION_NS     INT64_C(1)
#define PK_DURATION_US     INT64_C(1000)
#define PK_DURATION_MS     INT64_C(1000000)
#define PK_DURATION_SECOND INT64_C(1000000000)
#define PK_DURATION_MINUTE (60 * PK_DURATION_SECOND)
#define PK_DURATION_HOUR   (60 * PK_DURATION_MINUTE)

/* Room for the longest formatted duration ("-2562047h47m16.854775808s") and its NUL. */
#define PK_DURATION_STR_LEN 33

/* Parse len bytes of text (borrowed; need not be NUL-terminated) as a Go duration. On success
 * writes the nanoseconds to *out and returns 0. Returns PK_E_INVALID for empty input, junk, a
 * missing or unknown unit, or a value outside int64; err (may be NULL) then says which, quoting
 * the input, e.g. `invalid duration "24x": unknown unit "x"`. Never blocks. */
int pk_duration_parse(const char *text, size_t len, int64_t *out, struct pk_err *err) PK_MUST_USE;

/* Write ns in Go's Duration.String() form into buf (borrowed, at least PK_DURATION_STR_LEN
 * bytes, which is checked) and return buf, so the call can sit inside a printf argument list. */
const char *pk_duration_format(int64_t ns, char *buf, size_t len);

/* The instant t (Unix seconds) as RFC 3339 UTC, "2026-12-08T00:40:00Z", into out (len bytes;
 * 21 hold it); "@<seconds>" for a time the calendar cannot show. Always terminated when len > 0. */
void pk_time_format_utc(time_t t, char *out, size_t len);

#endif
