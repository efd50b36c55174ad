/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for common/sigmemo: what is inserted is found, what is not never is, the
 * memo never holds more than its slots however many keys arrive, and threads sharing one memo
 * (as a context's handshake threads do) never see a key nobody inserted. */
/* cmocka.h needs the standard headers before it. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
/* clang-format on */

#include <pthread.h>
#include <stdatomic.h>

#include "common/compiler.h"
#include "common/sigmemo.h"

#define SLOTS (PK_SIGMEMO_SETS * PK_SIGMEMO_WAYS)

/* The key of the n-th made-up (subject, issuer) pair of family f. */
static void key_n(unsigned f, unsigned n, struct pk_sigmemo_key *out)
{
    char subject[32], issuer[32];
    int ls = snprintf(subject, sizeof(subject), "subject %u/%u", f, n);
    int li = snprintf(issuer, sizeof(issuer), "issuer %u", f);
    pk_sigmemo_key_of((const uint8_t *)subject, (size_t)ls, (const uint8_t *)issuer, (size_t)li,
                      out);
}

static void found_after_insert(void **state)
{
    struct pk_sigmemo *memo = pk_sigmemo_new();
    struct pk_sigmemo_key a, b, swapped;

    key_n(0, 1, &a);
    key_n(0, 2, &b);
    /* The same two certificates the other way round are another question. */
    pk_sigmemo_key_of((const uint8_t *)"issuer 0", 8, (const uint8_t *)"subject 0/1", 11, &swapped);
    assert_int_equal(pk_sigmemo_count(memo), 0);
    assert_false(pk_sigmemo_contains(memo, &a));
    pk_sigmemo_insert(memo, &a);
    assert_true(pk_sigmemo_contains(memo, &a));
    assert_false(pk_sigmemo_contains(memo, &b));
    assert_false(pk_sigmemo_contains(memo, &swapped));
    pk_sigmemo_insert(memo, &a); /* already there: not a second slot */
    assert_int_equal(pk_sigmemo_count(memo), 1);
    pk_sigmemo_free(memo);
}

static void bounded(void **state)
{
    struct pk_sigmemo *memo = pk_sigmemo_new();
    struct pk_sigmemo_key k;

    for (unsigned n = 0; n < 10000; n++) {
        key_n(1, n, &k);
        pk_sigmemo_insert(memo, &k);
        assert_true(pk_sigmemo_contains(memo, &k)); /* the newest key of a set stays */
        assert_true(pk_sigmemo_count(memo) <= SLOTS);
    }
    assert_int_equal(pk_sigmemo_count(memo), SLOTS);
    pk_sigmemo_free(memo);
}

struct worker {
    struct pk_sigmemo *memo;
    unsigned family;
    atomic_int *false_hits;
};

/* Insert this worker's keys and look up everyone's: a key of the family nobody inserts (0) must
 * never be found, however the slots are being rewritten meanwhile. */
static void *hammer(void *arg)
{
    struct worker *w = arg;
    struct pk_sigmemo_key k;

    for (unsigned n = 0; n < 20000; n++) {
        key_n(w->family, n % 500, &k);
        pk_sigmemo_insert(w->memo, &k);
        key_n(0, n % 500, &k);
        if (pk_sigmemo_contains(w->memo, &k)) {
            atomic_fetch_add(w->false_hits, 1);
        }
    }
    return NULL;
}

static void threads_share_one_memo(void **state)
{
    struct pk_sigmemo *memo = pk_sigmemo_new();
    atomic_int false_hits = 0;
    struct worker w[4];
    pthread_t t[4];

    for (unsigned i = 0; i < PK_ARRAY_LEN(w); i++) {
        w[i] = (struct worker){memo, 10 + i, &false_hits};
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
    }
    for (unsigned i = 0; i < PK_ARRAY_LEN(w); i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
    }
    assert_int_equal(atomic_load(&false_hits), 0);
    assert_true(pk_sigmemo_count(memo) <= SLOTS);
    pk_sigmemo_free(memo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(found_after_insert),
            cmocka_unit_test(bounded),
            cmocka_unit_test(threads_share_one_memo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
