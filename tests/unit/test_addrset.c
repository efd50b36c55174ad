/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for common/addrset: the TTL clamp, the order in which a connection tries a
 * name's addresses, building and comparing answers, and the publication slot. */
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

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>

#include "common/addrset.h"

static void test_ttl_clamp(void **state)
{
    (void)state;
    /* Inside the bounds: the TTL itself. */
    assert_true(pk_dns_ttl_clamp(30, 1, 300) == 30);
    assert_true(pk_dns_ttl_clamp(1, 1, 300) == 1);
    assert_true(pk_dns_ttl_clamp(300, 1, 300) == 300);
    /* TTL 0 ("do not cache") and anything under the floor: the floor. */
    assert_true(pk_dns_ttl_clamp(0, 1, 300) == 1);
    assert_true(pk_dns_ttl_clamp(0.5, 1, 300) == 1);
    assert_true(pk_dns_ttl_clamp(-5, 2, 300) == 2);
    assert_true(pk_dns_ttl_clamp(NAN, 2, 300) == 2);
    /* Days-long TTLs: the ceiling. */
    assert_true(pk_dns_ttl_clamp(86400, 1, 300) == 300);
    assert_true(pk_dns_ttl_clamp(INFINITY, 1, 300) == 300);
    /* A floor equal to the ceiling pins it. */
    assert_true(pk_dns_ttl_clamp(7, 5, 5) == 5);
}

static void test_pick_tries_each_address_once_from_the_first_choice(void **state)
{
    (void)state;
    for (size_t n = 1; n <= 5; n++) {
        for (size_t start = 0; start < 12; start++) {
            unsigned seen = 0;
            assert_int_equal(pk_addrset_pick(n, start, 0), start % n);
            for (size_t attempt = 0; attempt < n; attempt++) {
                size_t i = pk_addrset_pick(n, start, attempt);
                assert_true(i < n);
                assert_int_equal(seen & (1u << i), 0);
                seen |= 1u << i;
                /* In order, wrapping around. */
                assert_int_equal(i, (start + attempt) % n);
            }
            assert_int_equal(seen, (1u << n) - 1);
        }
    }
}

static struct sockaddr_storage v4(const char *ip, socklen_t *len)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    in->sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, ip, &in->sin_addr), 1);
    *len = sizeof(*in);
    return ss;
}

static struct sockaddr_storage v6(const char *ip, socklen_t *len)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    in6->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
    *len = sizeof(*in6);
    return ss;
}

static void test_sets_take_the_port_drop_duplicates_and_compare(void **state)
{
    struct sockaddr_storage a[4];
    socklen_t l[4];
    struct pk_addrset *s1, *s2, *s3;
    char text[200];

    (void)state;
    a[0] = v4("10.0.0.1", &l[0]);
    a[1] = v6("fd00::1", &l[1]);
    a[2] = v4("10.0.0.1", &l[2]);
    a[3] = v4("10.0.0.2", &l[3]);
    s1 = pk_addrset_new(a, l, 4, 8443);
    assert_int_equal(s1->n, 3);
    pk_addrset_format(s1, text, sizeof(text));
    assert_string_equal(text, "10.0.0.1:8443, [fd00::1]:8443, 10.0.0.2:8443");
    s2 = pk_addrset_new(a, l, 4, 8443);
    assert_true(pk_addrset_equal(s1, s2));
    s3 = pk_addrset_new(a, l, 2, 8443);
    assert_false(pk_addrset_equal(s1, s3));
    assert_false(pk_addrset_equal(s1, NULL));
    assert_true(pk_addrset_equal(NULL, NULL));
    pk_addrset_unref(s3);
    s3 = pk_addrset_new(a, l, 4, 9000); /* same hosts, other port */
    assert_false(pk_addrset_equal(s1, s3));
    pk_addrset_unref(s1);
    pk_addrset_unref(s2);
    pk_addrset_unref(s3);
}

static void test_slot_publishes_and_counts_generations(void **state)
{
    struct pk_addrset_slot slot;
    struct sockaddr_storage a;
    socklen_t l;
    struct pk_addrset *first, *held, *now;

    (void)state;
    pk_addrset_slot_init(&slot);
    assert_null(pk_addrset_slot_get(&slot));
    assert_int_equal(pk_addrset_slot_generation(&slot), 0);
    a = v4("10.0.0.1", &l);
    first = pk_addrset_new(&a, &l, 1, 80);
    pk_addrset_slot_publish(&slot, first);
    assert_int_equal(pk_addrset_slot_generation(&slot), 1);
    held = pk_addrset_slot_get(&slot);
    assert_ptr_equal(held, first);
    a = v4("10.0.0.2", &l);
    pk_addrset_slot_publish(&slot, pk_addrset_new(&a, &l, 1, 80));
    assert_int_equal(pk_addrset_slot_generation(&slot), 2);
    /* A reader's reference outlives the publication of the next answer. */
    pk_addrset_format(held, (char[64]){0}, 64);
    now = pk_addrset_slot_get(&slot);
    assert_ptr_not_equal(now, held);
    pk_addrset_unref(held);
    pk_addrset_unref(now);
    pk_addrset_slot_destroy(&slot);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_ttl_clamp),
            cmocka_unit_test(test_pick_tries_each_address_once_from_the_first_choice),
            cmocka_unit_test(test_sets_take_the_port_drop_duplicates_and_compare),
            cmocka_unit_test(test_slot_publishes_and_counts_generations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
