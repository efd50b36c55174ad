/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for agent/schedule: renewal times and retry delays as pure functions. */
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

#include "agent/schedule.h"

#define T0 1800000000

/* Without jitter the renewal time is exactly not_before + fraction × lifetime. */
static void test_renew_without_jitter(void **state)
{
    (void)state;
    static const struct {
        time_t nb, na;
        double fraction;
        double want;
    } cases[] = {
            {T0, T0 + 86400, 0.5, T0 + 43200.0},
            /* Dapr's defaults: 24 h TTL plus 15 min skew before now. */
            {T0 - 900, T0 + 86400, 0.5, T0 - 900 + 87300 / 2.0},
            {T0, T0 + 10, 0.7, T0 + 7.0},
            {T0, T0 + 3600, 0.05, T0 + 180.0},
            {T0, T0, 0.5, T0},           /* zero lifetime: at once */
            {T0, T0 - 5, 0.5, T0 - 5.0}, /* inverted: at not_after (already due) */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double got = pk_schedule_renew_at(cases[i].nb, cases[i].na, cases[i].fraction, 0.0, 42);
        assert_float_equal(got, cases[i].want, 1e-6);
    }
}

/* With jitter j the time stays within fraction ± j of the lifetime, the same inputs give the
 * same answer, and different seeds spread over the window. */
static void test_renew_jitter_bounds_and_spread(void **state)
{
    (void)state;
    const time_t nb = T0, na = T0 + 100000;
    double lo = 1e300, hi = -1e300;
    int low_half = 0;

    for (uint64_t s = 0; s < 1000; s++) {
        uint64_t seed = pk_schedule_seed("spiffe://td/ns/default/app", s);
        double at = pk_schedule_renew_at(nb, na, 0.5, 0.1, seed);
        assert_true(at >= nb + 40000.0 && at < nb + 60000.0);
        assert_float_equal(at, pk_schedule_renew_at(nb, na, 0.5, 0.1, seed), 0.0);
        lo = at < lo ? at : lo;
        hi = at > hi ? at : hi;
        low_half += at < nb + 50000.0;
    }
    /* 1000 draws cover most of the ±10 % window, on both sides. */
    assert_true(lo < nb + 41000.0);
    assert_true(hi > nb + 59000.0);
    assert_in_range(low_half, 400, 600);
}

/* The seed depends on both the ID and the per-process salt. */
static void test_seed_inputs(void **state)
{
    (void)state;
    uint64_t a = pk_schedule_seed("spiffe://td/ns/default/a", 1);
    assert_int_not_equal(a, pk_schedule_seed("spiffe://td/ns/default/b", 1));
    assert_int_not_equal(a, pk_schedule_seed("spiffe://td/ns/default/a", 2));
    assert_int_equal(a, pk_schedule_seed("spiffe://td/ns/default/a", 1));
}

/* Each certificate (tag = its not_before) gets its own offset, within one process. */
static void test_each_certificate_gets_its_own_offset(void **state)
{
    (void)state;
    uint64_t seed = pk_schedule_seed("spiffe://td/ns/default/app", 7);
    double a = pk_schedule_renew_at(T0, T0 + 1000, 0.5, 0.1, seed) - T0;
    double b = pk_schedule_renew_at(T0 + 500, T0 + 1500, 0.5, 0.1, seed) - (T0 + 500);
    assert_true(a != b);
}

static void test_unit_range(void **state)
{
    (void)state;
    for (uint64_t t = 0; t < 10000; t++) {
        double u = pk_schedule_unit(12345, t);
        assert_true(u >= 0.0 && u < 1.0);
    }
}

/* Backoff: the n-th wait lies in [d/2, d] with d = min(cap, initial × 2^n); it reaches the cap
 * and stays there. */
static void test_backoff_sequence(void **state)
{
    (void)state;
    static const double ceiling[] = {1, 2, 4, 8, 16, 32, 64, 120, 120, 120};
    for (uint64_t seed = 0; seed < 50; seed++) {
        for (unsigned n = 0; n < sizeof(ceiling) / sizeof(ceiling[0]); n++) {
            double d = pk_schedule_backoff(n, 1.0, 120.0, seed);
            assert_true(d >= ceiling[n] / 2.0 && d <= ceiling[n]);
        }
    }
    /* Very large attempt numbers neither overflow nor pass the cap. */
    double d = pk_schedule_backoff(100000, 1.0, 120.0, 3);
    assert_true(d >= 60.0 && d <= 120.0);
    /* Without room for jitter (initial == cap) the wait is within [cap/2, cap]. */
    d = pk_schedule_backoff(0, 10.0, 10.0, 3);
    assert_true(d >= 5.0 && d <= 10.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_renew_without_jitter),
            cmocka_unit_test(test_renew_jitter_bounds_and_spread),
            cmocka_unit_test(test_seed_inputs),
            cmocka_unit_test(test_each_certificate_gets_its_own_offset),
            cmocka_unit_test(test_unit_range),
            cmocka_unit_test(test_backoff_sequence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
