/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for common/duration (Go time.ParseDuration and Duration.String). */
/* cmocka.h must come after the system headers it relies on. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
/* clang-format on */

#include "common/duration.h"
#include "common/err.h"

struct good {
    const char *in;
    int64_t ns;
};

/* Expected values are what Go's time.ParseDuration returns for the same text. */
static const struct good good_cases[] = {
        {"0", 0},
        {"-0", 0},
        {"+0", 0},
        {"5s", 5 * PK_DURATION_SECOND},
        {"30s", 30 * PK_DURATION_SECOND},
        {"1478s", 1478 * PK_DURATION_SECOND},
        {"-5s", -5 * PK_DURATION_SECOND},
        {"+5s", 5 * PK_DURATION_SECOND},
        {"-0s", 0},
        {"5.0s", 5 * PK_DURATION_SECOND},
        {"5.6s", 5600 * PK_DURATION_MS},
        {"5.s", 5 * PK_DURATION_SECOND},
        {".5s", 500 * PK_DURATION_MS},
        {"1.004s", 1004 * PK_DURATION_MS},
        {"100.00100s", 100001 * PK_DURATION_MS},
        {"10ns", 10},
        {"11us", 11000},
        {"12\xc2\xb5s", 12000}, /* micro sign */
        {"12\xce\xbcs", 12000}, /* Greek mu */
        {"13ms", 13 * PK_DURATION_MS},
        {"15m", 15 * PK_DURATION_MINUTE},
        {"16h", 16 * PK_DURATION_HOUR},
        {"24h", 24 * PK_DURATION_HOUR},
        {"25s", 25 * PK_DURATION_SECOND},
        {"300ms", 300 * PK_DURATION_MS},
        {"1h30m", 90 * PK_DURATION_MINUTE},
        {"1.5h", 90 * PK_DURATION_MINUTE},
        {"2h45m30.5s", 9930500 * PK_DURATION_MS},
        {"10.5s4m", 250500 * PK_DURATION_MS},
        {"-2m3.4s", -123400 * PK_DURATION_MS},
        {"1h2m3s4ms5us6ns", INT64_C(3723004005006)},
        {"39h9m14.425s", INT64_C(140954425000000)},
        {"0.3333333333333333333h", 20 * PK_DURATION_MINUTE},
        {"9007199254740993ns", INT64_C(9007199254740993)},
        {"9223372036854775807ns", INT64_MAX},
        {"9223372036854775.807us", INT64_MAX},
        {"9223372036s854ms775us807ns", INT64_MAX},
        {"-9223372036854775808ns", INT64_MIN},
        {"0.100000000000000000000h", 6 * PK_DURATION_MINUTE},
        {"0.830103483285477580700h", INT64_C(2988372539827)},
};

struct bad {
    const char *in;
    const char *why; /* a fragment the message must contain */
};

static const struct bad bad_cases[] = {
        {"", "empty"},
        {"-", "empty"},
        {"+", "empty"},
        {"3", "missing unit"},
        {"24", "missing unit"},
        {"s", "expected a number"},
        {".", "no digits"},
        {"-.", "no digits"},
        {".s", "no digits"},
        {"+.s", "no digits"},
        {"1d", "unknown unit \"d\""},
        {"24x", "unknown unit \"x\""},
        {"1h ", "unknown unit \"h \""},
        {" 1h", "expected a number"},
        {"1h-1m", "unknown unit \"h-\""},
        {"00", "missing unit"},
        {"1..5s", "missing unit"},
        {"\x85\x85", "expected a number"},
        {"3\xff", "unknown unit \"\\xff\""},
        {"9223372036854775808ns", "out of range"},
        {"9223372036854775810ns", "out of range"},
        {"-9223372036854775809ns", "out of range"},
        {"9223372036854775.808us", "out of range"},
        {"3000000h", "out of range"},
        {"2562048h", "out of range"},
        {"99999999999999999999s", "out of range"},
        {"1h9223372036854775807ns", "out of range"},
};

static void parse_good_table(void **state)
{
    for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++) {
        struct pk_err err = {{0}};
        int64_t ns = 12345;
        int rc = pk_duration_parse(good_cases[i].in, strlen(good_cases[i].in), &ns, &err);
        if (rc != 0 || ns != good_cases[i].ns) {
            print_error("case %zu \"%s\": rc=%d ns=%lld want %lld (%s)\n", i, good_cases[i].in, rc,
                        (long long)ns, (long long)good_cases[i].ns, err.msg);
        }
        assert_int_equal(rc, 0);
        assert_true(ns == good_cases[i].ns);
    }
}

static void parse_bad_table(void **state)
{
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        struct pk_err err = {{0}};
        int64_t ns = 777;
        int rc = pk_duration_parse(bad_cases[i].in, strlen(bad_cases[i].in), &ns, &err);
        if (rc != PK_E_INVALID || strstr(err.msg, bad_cases[i].why) == NULL) {
            print_error("case %zu: rc=%d msg=%s want \"%s\"\n", i, rc, err.msg, bad_cases[i].why);
        }
        assert_int_equal(rc, PK_E_INVALID);
        assert_non_null(strstr(err.msg, bad_cases[i].why));
        assert_true(ns == 777); /* the out-parameter is untouched on failure */
    }
}

static void message_quotes_input(void **state)
{
    struct pk_err err = {{0}};
    int64_t ns;

    assert_int_equal(pk_duration_parse("24x", 3, &ns, &err), PK_E_INVALID);
    assert_string_equal(err.msg, "invalid duration \"24x\": unknown unit \"x\"");
    /* Long junk is cut in the message, not copied whole. */
    char junk[500];
    memset(junk, 'q', sizeof(junk));
    assert_int_equal(pk_duration_parse(junk, sizeof(junk), &ns, &err), PK_E_INVALID);
    assert_true(strlen(err.msg) < 300);
    assert_non_null(strstr(err.msg, "...\""));
    /* A NULL err is allowed. */
    assert_int_equal(pk_duration_parse("x", 1, &ns, NULL), PK_E_INVALID);
}

static void parse_respects_length(void **state)
{
    int64_t ns = 0;
    struct pk_err err = {{0}};

    /* Only the first len bytes count; no NUL is needed or looked for. */
    assert_int_equal(pk_duration_parse("15m0s-garbage", 5, &ns, &err), 0);
    assert_true(ns == 15 * PK_DURATION_MINUTE);
    assert_int_equal(pk_duration_parse("1h30m", 4, &ns, &err), PK_E_INVALID); /* "1h30" */
    assert_non_null(strstr(err.msg, "missing unit"));
    assert_int_equal(pk_duration_parse("5s", 0, &ns, &err), PK_E_INVALID);
    /* An embedded NUL is junk, not an end marker. */
    assert_int_equal(pk_duration_parse("5s\0"
                                       "1s",
                                       5, &ns, &err),
                     PK_E_INVALID);
}

struct fmt_case {
    int64_t ns;
    const char *out;
};

static const struct fmt_case fmt_cases[] = {
        {0, "0s"},
        {1, "1ns"},
        {1100, "1.1\xc2\xb5s"},
        {2200 * PK_DURATION_US, "2.2ms"},
        {3300 * PK_DURATION_MS, "3.3s"},
        {4 * PK_DURATION_MINUTE + 5 * PK_DURATION_SECOND, "4m5s"},
        {4 * PK_DURATION_MINUTE + 5001 * PK_DURATION_MS, "4m5.001s"},
        {5 * PK_DURATION_HOUR + 6 * PK_DURATION_MINUTE + 7001 * PK_DURATION_MS, "5h6m7.001s"},
        {8 * PK_DURATION_MINUTE + 1, "8m0.000000001s"},
        {24 * PK_DURATION_HOUR, "24h0m0s"},
        {15 * PK_DURATION_MINUTE, "15m0s"},
        {1500 * PK_DURATION_MS, "1.5s"},
        {-PK_DURATION_SECOND, "-1s"},
        {-1, "-1ns"},
        {INT64_MAX, "2562047h47m16.854775807s"},
        {INT64_MIN, "-2562047h47m16.854775808s"},
};

static void format_table(void **state)
{
    char buf[PK_DURATION_STR_LEN];

    for (size_t i = 0; i < sizeof(fmt_cases) / sizeof(fmt_cases[0]); i++) {
        const char *s = pk_duration_format(fmt_cases[i].ns, buf, sizeof(buf));
        assert_ptr_equal(s, buf);
        assert_string_equal(s, fmt_cases[i].out);
    }
}

/* Timestamps in messages: RFC 3339 UTC, and the seconds when the calendar cannot show them. */
static void time_format_utc(void **state)
{
    char out[32];

    (void)state;
    pk_time_format_utc(0, out, sizeof(out));
    assert_string_equal(out, "1970-01-01T00:00:00Z");
    pk_time_format_utc(1796690400, out, sizeof(out));
    assert_string_equal(out, "2026-12-08T00:40:00Z");
    pk_time_format_utc(1796690400, out, 8);
    assert_string_equal(out, "@179669");
}

static void format_then_parse_round_trips(void **state)
{
    char buf[PK_DURATION_STR_LEN];
    int64_t vals[] = {1,
                      999,
                      123456789,
                      PK_DURATION_HOUR + 1,
                      -7 * PK_DURATION_HOUR - 3,
                      INT64_MAX,
                      INT64_MIN,
                      25 * PK_DURATION_SECOND};

    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        int64_t back = 0;
        pk_duration_format(vals[i], buf, sizeof(buf));
        assert_int_equal(pk_duration_parse(buf, strlen(buf), &back, NULL), 0);
        assert_true(back == vals[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(parse_good_table),     cmocka_unit_test(parse_bad_table),
            cmocka_unit_test(message_quotes_input), cmocka_unit_test(parse_respects_length),
            cmocka_unit_test(format_table),         cmocka_unit_test(format_then_parse_round_trips),
            cmocka_unit_test(time_format_utc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
