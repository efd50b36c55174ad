/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for agent/refusal: news once per content, reminders, back-off and its reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* cmocka.h needs setjmp.h, stdarg.h and stddef.h first. */
/* clang-format off */
#include <cmocka.h>
/* clang-format on */

#include "agent/refusal.h"

static const struct pk_refusal_policy POLICY = {
        .initial = 1.0,
        .max = 30.0,
        .remind = 600.0,
        .seed = 42,
};

static void digest_of(const char *a, const char *b, uint8_t out[PK_REFUSAL_DIGEST])
{
    pk_refusal_digest(pk_slice_make(a, strlen(a)), pk_slice_make(b, strlen(b)), out);
}

/* The first refusal of a content is news; the same again is not, and each retry waits about
 * twice as long as the one before (jittered into [d/2, d]) up to the cap. */
static void test_repeat_is_quiet_and_backs_off(void **state)
{
    (void)state;
    struct pk_refusal r = {0};
    uint8_t bad[PK_REFUSAL_DIGEST];
    double now = 100.0;
    double bound = POLICY.initial;

    digest_of("", "garbage", bad);
    assert_false(pk_refusal_same(&r, bad));
    assert_int_equal(pk_refusal_note(&r, &POLICY, bad, now), PK_REFUSAL_NEW);
    assert_true(pk_refusal_same(&r, bad));
    for (int i = 0; i < 12; i++) {
        double delay = r.retry_at - now;
        assert_true(delay >= bound / 2.0 && delay <= bound);
        now = r.retry_at;
        assert_int_equal(pk_refusal_note(&r, &POLICY, bad, now), PK_REFUSAL_REPEAT);
        bound = bound * 2.0 > POLICY.max ? POLICY.max : bound * 2.0;
    }
    /* Capped: never further apart than max. */
    assert_true(r.retry_at - now <= POLICY.max);
    assert_true(r.retry_at - now >= POLICY.max / 2.0);
}

/* After the reminder interval the same refusal is logged again, once. */
static void test_reminder_after_a_long_time(void **state)
{
    (void)state;
    struct pk_refusal r = {0};
    uint8_t bad[PK_REFUSAL_DIGEST];

    digest_of("", "garbage", bad);
    assert_int_equal(pk_refusal_note(&r, &POLICY, bad, 0.0), PK_REFUSAL_NEW);
    assert_int_equal(pk_refusal_note(&r, &POLICY, bad, 599.0), PK_REFUSAL_REPEAT);
    assert_int_equal(pk_refusal_note(&r, &POLICY, bad, 600.0), PK_REFUSAL_REMINDER);
    assert_int_equal(pk_refusal_note(&r, &POLICY, bad, 601.0), PK_REFUSAL_REPEAT);
    assert_int_equal(pk_refusal_note(&r, &POLICY, bad, 1200.0), PK_REFUSAL_REMINDER);
}

/* Other content is news and starts the back-off over; so does the same content once something
 * was accepted in between. */
static void test_change_resets(void **state)
{
    (void)state;
    struct pk_refusal r = {0};
    uint8_t one[PK_REFUSAL_DIGEST], two[PK_REFUSAL_DIGEST];
    double now = 0.0;

    digest_of("", "garbage one", one);
    digest_of("", "garbage two", two);
    for (int i = 0; i < 6; i++) {
        now = r.retry_at;
        pk_refusal_note(&r, &POLICY, one, now);
    }
    assert_true(r.retry_at - now > POLICY.initial); /* well into the back-off */
    now = r.retry_at;
    assert_int_equal(pk_refusal_note(&r, &POLICY, two, now), PK_REFUSAL_NEW);
    assert_false(pk_refusal_same(&r, one));
    assert_true(r.retry_at - now <= POLICY.initial);
    pk_refusal_clear(&r);
    assert_false(pk_refusal_same(&r, two));
    assert_int_equal(pk_refusal_note(&r, &POLICY, two, now), PK_REFUSAL_NEW);
}

/* The digest tells inputs apart, including bytes moved from one part to the other. */
static void test_digest(void **state)
{
    (void)state;
    uint8_t a[PK_REFUSAL_DIGEST], b[PK_REFUSAL_DIGEST], c[PK_REFUSAL_DIGEST];

    digest_of("env", "file", a);
    digest_of("env", "file", b);
    assert_memory_equal(a, b, sizeof(a));
    digest_of("envf", "ile", c);
    assert_memory_not_equal(a, c, sizeof(a));
    digest_of("env", "filf", c);
    assert_memory_not_equal(a, c, sizeof(a));
    digest_of("", "", c);
    assert_memory_not_equal(a, c, sizeof(a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_repeat_is_quiet_and_backs_off),
            cmocka_unit_test(test_reminder_after_a_long_time),
            cmocka_unit_test(test_change_resets),
            cmocka_unit_test(test_digest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
