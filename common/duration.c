/* SPDX-License-Identifier: Apache-2.0 */
/* picket: Go-style durations as int64 nanoseconds.
 *
 * Implementation notes: the parser mirrors Go's time.ParseDuration step by step. Magnitudes are
 * accumulated as uint64 up to 2^63 so that "-9223372036854775808ns" (INT64_MIN) is accepted while
 * its positive counterpart is not; the fractional part of a term is scaled through a double like
 * Go's float64 so both round identically. */
#include "duration.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

/* Room for a quoted piece of a duration in a message: 64 bytes shown. */
#define QUOTE_LEN 68

#define MAG_LIMIT (UINT64_C(1) << 63)

static int fail(struct pk_err *err, const char *text, size_t len, const char *why, const char *unit,
                size_t unit_len)
{
    char q[QUOTE_LEN];
    char u[QUOTE_LEN];

    pk_quote(q, sizeof(q), text, len);
    if (unit == NULL) {
        return pk_err_set(err, PK_E_INVALID, "invalid duration \"%s\": %s", q, why);
    }
    pk_quote(u, sizeof(u), unit, unit_len);
    return pk_err_set(err, PK_E_INVALID, "invalid duration \"%s\": %s \"%s\"", q, why, u);
}

struct unit {
    const char *name;
    size_t len;
    uint64_t ns;
};

static const struct unit units[] = {
        {"ns", 2, 1},
        {"us", 2, 1000},
        {"\xc2\xb5s", 3, 1000}, /* U+00B5 MICRO SIGN */
        {"\xce\xbcs", 3, 1000}, /* U+03BC GREEK SMALL LETTER MU */
        {"ms", 2, 1000000},
        {"s", 1, 1000000000},
        {"m", 1, UINT64_C(60) * 1000000000},
        {"h", 1, UINT64_C(3600) * 1000000000},
};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int pk_duration_parse(const char *text, size_t len, int64_t *out, struct pk_err *err)
{
    size_t i = 0;
    bool neg = false;
    uint64_t total = 0;

    if (len > 0 && (text[0] == '-' || text[0] == '+')) {
        neg = text[0] == '-';
        i = 1;
    }
    if (len - i == 1 && text[i] == '0') {
        *out = 0;
        return 0;
    }
    if (i == len) {
        return fail(err, text, len, "empty", NULL, 0);
    }
    while (i < len) {
        uint64_t v = 0;
        uint64_t f = 0;
        double scale = 1;
        bool pre = false;
        bool post = false;
        bool frac_overflow = false;
        size_t unit_start;
        const struct unit *u = NULL;

        if (!(text[i] == '.' || is_digit(text[i]))) {
            return fail(err, text, len, "expected a number", NULL, 0);
        }
        for (; i < len && is_digit(text[i]); i++) {
            pre = true;
            if (v > MAG_LIMIT / 10) {
                return fail(err, text, len, "out of range", NULL, 0);
            }
            v = v * 10 + (uint64_t)(text[i] - '0');
            if (v > MAG_LIMIT) {
                return fail(err, text, len, "out of range", NULL, 0);
            }
        }
        if (i < len && text[i] == '.') {
            i++;
            /* Digits past int64 precision are consumed but no longer change the value. */
            for (; i < len && is_digit(text[i]); i++) {
                post = true;
                if (frac_overflow) {
                    continue;
                }
                if (f > (MAG_LIMIT - 1) / 10) {
                    frac_overflow = true;
                    continue;
                }
                uint64_t y = f * 10 + (uint64_t)(text[i] - '0');
                if (y > MAG_LIMIT) {
                    frac_overflow = true;
                    continue;
                }
                f = y;
                scale *= 10;
            }
        }
        if (!pre && !post) {
            return fail(err, text, len, "no digits before the unit", NULL, 0);
        }
        unit_start = i;
        while (i < len && text[i] != '.' && !is_digit(text[i])) {
            i++;
        }
        if (i == unit_start) {
            return fail(err, text, len, "missing unit", NULL, 0);
        }
        for (size_t k = 0; k < PK_ARRAY_LEN(units); k++) {
            if (units[k].len == i - unit_start &&
                memcmp(units[k].name, text + unit_start, units[k].len) == 0) {
                u = &units[k];
                break;
            }
        }
        if (u == NULL) {
            return fail(err, text, len, "unknown unit", text + unit_start, i - unit_start);
        }
        if (v > MAG_LIMIT / u->ns) {
            return fail(err, text, len, "out of range", NULL, 0);
        }
        v *= u->ns;
        if (f > 0) {
            /* f / scale < 1, so the product is at most 3.6e12 and the conversion is defined. */
            v += (uint64_t)((double)f * ((double)u->ns / scale));
            if (v > MAG_LIMIT) {
                return fail(err, text, len, "out of range", NULL, 0);
            }
        }
        total += v;
        if (total > MAG_LIMIT) {
            return fail(err, text, len, "out of range", NULL, 0);
        }
    }
    if (neg) {
        *out = total == MAG_LIMIT ? INT64_MIN : -(int64_t)total;
        return 0;
    }
    if (total > (uint64_t)INT64_MAX) {
        return fail(err, text, len, "out of range", NULL, 0);
    }
    *out = (int64_t)total;
    return 0;
}

/* Write the fraction v / 10^prec ending at buf[w], without trailing zeros (and without the point
 * when the fraction is zero). Returns the new start; *v becomes the integer part. */
static size_t fmt_frac(char *buf, size_t w, uint64_t *v, int prec)
{
    bool print = false;

    for (int i = 0; i < prec; i++) {
        unsigned digit = (unsigned)(*v % 10);
        print = print || digit != 0;
        if (print) {
            buf[--w] = (char)('0' + digit);
        }
        *v /= 10;
    }
    if (print) {
        buf[--w] = '.';
    }
    return w;
}

static size_t fmt_int(char *buf, size_t w, uint64_t v)
{
    if (v == 0) {
        buf[--w] = '0';
        return w;
    }
    while (v > 0) {
        buf[--w] = (char)('0' + v % 10);
        v /= 10;
    }
    return w;
}

const char *pk_duration_format(int64_t ns, char *buf, size_t len)
{
    char tmp[PK_DURATION_STR_LEN];
    size_t w = sizeof(tmp) - 1;
    uint64_t u = (uint64_t)ns;
    bool neg = ns < 0;

    PK_ASSERT(len >= PK_DURATION_STR_LEN);
    tmp[w] = '\0';
    if (neg) {
        u = -u;
    }
    if (u < (uint64_t)PK_DURATION_SECOND) {
        int prec = 0;
        tmp[--w] = 's';
        if (u == 0) {
            tmp[--w] = '0';
            memcpy(buf, tmp + w, sizeof(tmp) - w);
            return buf;
        } else if (u < (uint64_t)PK_DURATION_US) {
            tmp[--w] = 'n';
        } else if (u < (uint64_t)PK_DURATION_MS) {
            prec = 3;
            tmp[--w] = '\xb5';
            tmp[--w] = '\xc2';
        } else {
            prec = 6;
            tmp[--w] = 'm';
        }
        w = fmt_frac(tmp, w, &u, prec);
        w = fmt_int(tmp, w, u);
    } else {
        tmp[--w] = 's';
        w = fmt_frac(tmp, w, &u, 9);
        w = fmt_int(tmp, w, u % 60);
        u /= 60;
        if (u > 0) {
            tmp[--w] = 'm';
            w = fmt_int(tmp, w, u % 60);
            u /= 60;
            if (u > 0) {
                tmp[--w] = 'h';
                w = fmt_int(tmp, w, u);
            }
        }
    }
    if (neg) {
        tmp[--w] = '-';
    }
    memcpy(buf, tmp + w, sizeof(tmp) - w);
    return buf;
}

void pk_time_format_utc(time_t t, char *out, size_t len)
{
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(out, len, "@%lld", (long long)t);
    }
}
