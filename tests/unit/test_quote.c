/* SPDX-License-Identifier: Apache-2.0 */
/* picket: tests for pk_quote and pk_quote_n, the one quoting of untrusted text for messages. */
/* cmocka.h needs the standard headers before it. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
/* clang-format on */

#include "common/log.h"

#define S(lit) (lit), (sizeof(lit) - 1)

/* Escapes, and a cut made to fit: room is always kept for the "..." that marks it. */
static void quote_cuts_to_fit_and_says_so(void **state)
{
    char out[64];
    char small[8];

    (void)state;
    assert_string_equal(pk_quote(out, sizeof(out), S("a\0\"\\\n\xff")),
                        "a\\x00\\x22\\x5c\\x0a\\xff");
    assert_string_equal(pk_quote(small, sizeof(small), S("abcdefgh")), "abcd...");
    assert_string_equal(pk_quote(small, sizeof(small), S("abcd")), "abcd");
    assert_string_equal(pk_quote(small, sizeof(small), S("\x01\x02")), "\\x01...");
    assert_string_equal(pk_quote(small, sizeof(small), S("")), "");
}

/* At most max_in bytes of input, "..." when more were given; a short buffer cuts silently. */
static void quote_n_caps_the_input(void **state)
{
    char out[300];
    char small[8];

    (void)state;
    assert_string_equal(pk_quote_n(out, sizeof(out), S("abcdef"), 4), "abcd...");
    assert_string_equal(pk_quote_n(out, sizeof(out), S("abcd"), 4), "abcd");
    assert_string_equal(pk_quote_n(out, sizeof(out), S("\n\n\n"), 2), "\\x0a\\x0a...");
    assert_string_equal(pk_quote_n(small, sizeof(small), S("\x01\x02"), 64), "\\x01");
    assert_string_equal(pk_quote_n(small, sizeof(small), S("abcdefghij"), 9), "abcdefg");
    assert_string_equal(pk_quote_n(small, 1, S("abc"), 9), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(quote_cuts_to_fit_and_says_so),
            cmocka_unit_test(quote_n_caps_the_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
