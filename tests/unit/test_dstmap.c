/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for common/dstmap: destinations and map lines accepted and refused (with
 * their messages), formatting, and the most-specific lookup as a table of addresses. */
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
#include <netinet/in.h>

#include "common/compiler.h"
#include "common/dstmap.h"
#include "common/err.h"

struct good_dst {
    const char *text;
    const char *cidr;  /* formatted back */
    const char *ports; /* formatted back, iptables style */
};

static void test_dst_good(void **state)
{
    (void)state;
    static const struct good_dst cases[] = {
            {"10.0.0.0/8", "10.0.0.0/8", ""},
            {"10.1.2.3", "10.1.2.3/32", ""},
            {"  10.1.2.3 \t 8080 ", "10.1.2.3/32", "8080"},
            {"0.0.0.0/0 8000-8099", "0.0.0.0/0", "8000:8099"},
            {"192.168.0.0/16 1-65535", "192.168.0.0/16", ""},
            {"10.128.0.0/9 443", "10.128.0.0/9", "443"},
            {"fd00::/8", "fd00::/8", ""},
            {"fd77::2 8080", "fd77::2/128", "8080"},
            {"::/0 5-5", "::/0", "5"},
            {"2001:db8::/33 65535", "2001:db8::/33", "65535"},
    };
    for (size_t i = 0; i < PK_ARRAY_LEN(cases); i++) {
        struct pk_dst d;
        struct pk_err err;
        char cidr[PK_DST_CIDR_STR_LEN], ports[PK_DST_PORTS_STR_LEN];

        pk_err_clear(&err);
        if (pk_dst_parse(cases[i].text, &d, &err) != 0) {
            fail_msg("case %zu '%s': %s", i, cases[i].text, err.msg);
        }
        assert_string_equal(pk_dst_format_cidr(&d, cidr), cases[i].cidr);
        assert_string_equal(pk_dst_format_ports(&d, ports), cases[i].ports);
    }
}

struct bad {
    const char *text;
    const char *frag; /* part of the message */
};

static void test_dst_bad(void **state)
{
    (void)state;
    static const struct bad cases[] = {
            {"", "expected CIDR [PORTS]"},
            {"   ", "expected CIDR [PORTS]"},
            {"10.0.0.0/8 80 90", "expected CIDR [PORTS]"},
            {"10.0.0.0/8 80 90 100", "too many words"},
            {"10.1.2.3/8", "bits are set past the /8 prefix"},
            {"fd00::1/64", "bits are set past the /64 prefix"},
            {"10.0.0.0/33", "prefix length must be a number from 0 to 32"},
            {"fd00::/129", "from 0 to 128"},
            {"10.0.0.0/", "prefix length"},
            {"10.0.0.0/08", "prefix length"},
            {"10.0.0.0/-1", "prefix length"},
            {"example.test", "is not an address block"},
            {"10.0.0", "is not an address block"},
            {"[fd00::1]", "is not an address block"},
            {"fe80::1%eth0", "is not an address block"},
            {"10.0.0.0/8 0", "is not a port"},
            {"10.0.0.0/8 65536", "is not a port"},
            {"10.0.0.0/8 080", "is not a port"},
            {"10.0.0.0/8 90-80", "is not a port"},
            {"10.0.0.0/8 80-", "is not a port"},
            {"10.0.0.0/8 -80", "is not a port"},
            {"10.0.0.0/8 http", "is not a port"},
            {"10.0.0.0/8 99999999999", "is not a port"},
    };
    for (size_t i = 0; i < PK_ARRAY_LEN(cases); i++) {
        struct pk_dst d;
        struct pk_err err;

        pk_err_clear(&err);
        if (pk_dst_parse(cases[i].text, &d, &err) != PK_E_INVALID) {
            fail_msg("case %zu '%s' was accepted", i, cases[i].text);
        }
        if (strstr(err.msg, cases[i].frag) == NULL) {
            fail_msg("case %zu '%s': message '%s' lacks '%s'", i, cases[i].text, err.msg,
                     cases[i].frag);
        }
    }
}

static void test_rule_parse(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        enum pk_dst_action action;
        const char *arg;
    } good[] = {
            {"10.0.0.0/8 any", PK_DST_ANY, NULL},
            {"10.0.0.0/8 8080 passthrough", PK_DST_PASSTHROUGH, NULL},
            {"10.0.0.0/8 8000-8100 deny", PK_DST_DENY, NULL},
            {"10.1.2.3 8080 app=web", PK_DST_APP_ID, "web"},
            {"fd00::/8 app=prod/web", PK_DST_APP_ID, "prod/web"},
            {"10.0.0.1 443 spiffe://example.test/ns/a/b", PK_DST_SPIFFE_ID,
             "spiffe://example.test/ns/a/b"},
    };
    static const struct bad bad[] = {
            {"10.0.0.0/8", "expected CIDR [PORTS] ACTION"},
            {"10.0.0.0/8 8080", "expected CIDR [PORTS] ACTION"},
            {"10.0.0.0/8 any 8080", "expected CIDR [PORTS] ACTION"},
            {"10.0.0.0/8 allow", "is not an action"},
            {"10.0.0.0/8 app=", "is not an action"},
            {"10.0.0.0/8 app=a/b/c", "expected app=APP or app=NAMESPACE/APP"},
            {"10.0.0.0/8 app=Web!", "app id"},
            {"10.0.0.0/8 app=/web", "namespace"},
            {"10.0.0.0/8 spiffe://", "is not an action"},
            {"10.0.0.0/8 spiffe://EXAMPLE.test/x", "trust domain"},
            {"10.0.0.9/8 any", "bits are set"},
            {"10.0.0.0/8 0 any", "is not a port"},
    };
    for (size_t i = 0; i < PK_ARRAY_LEN(good); i++) {
        struct pk_dst_rule r;
        struct pk_err err;

        pk_err_clear(&err);
        if (pk_dst_rule_parse(good[i].text, &r, &err) != 0) {
            fail_msg("good %zu '%s': %s", i, good[i].text, err.msg);
        }
        assert_int_equal(r.action, good[i].action);
        if (good[i].arg == NULL) {
            assert_null(r.arg);
        } else {
            assert_string_equal(r.arg, good[i].arg);
        }
        pk_dst_rule_clear(&r);
        assert_null(r.arg);
    }
    for (size_t i = 0; i < PK_ARRAY_LEN(bad); i++) {
        struct pk_dst_rule r;
        struct pk_err err;

        pk_err_clear(&err);
        if (pk_dst_rule_parse(bad[i].text, &r, &err) != PK_E_INVALID) {
            fail_msg("bad %zu '%s' was accepted", i, bad[i].text);
        }
        if (strstr(err.msg, bad[i].frag) == NULL) {
            fail_msg("bad %zu '%s': message '%s' lacks '%s'", i, bad[i].text, err.msg, bad[i].frag);
        }
    }
}

static struct sockaddr_storage addr(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        assert_int_equal(inet_pton(AF_INET, ip, &in->sin_addr), 1);
    }
    return ss;
}

/* The lookup picks the most specific line, whatever the order of the lines. */
static void test_lookup(void **state)
{
    (void)state;
    static const char *const lines[] = {
            /* 0 */ "10.0.0.0/8 deny",
            /* 1 */ "10.1.0.0/16 8080 app=web",
            /* 2 */ "10.1.0.0/16 any",
            /* 3 */ "10.1.2.3 passthrough",
            /* 4 */ "10.1.0.0/16 8000-8099 app=api",
            /* 5 */ "10.1.0.0/16 any",
            /* 6 */ "10.1.128.0/17 8080 app=second",
            /* 7 */ "fd00::/8 app=v6",
            /* 8 */ "fd00:1::/32 443 spiffe://example.test/ns/x/tls",
            /* 9 */ "0.0.0.0/0 53 passthrough",
    };
    static const struct {
        const char *ip;
        uint16_t port;
        int want; /* index in lines, -1 = none */
    } cases[] = {
            {"10.1.2.4", 8080, 1},     {"10.1.2.4", 8081, 4},     {"10.1.2.4", 8100, 2},
            {"10.1.2.3", 8080, 3},     {"10.2.0.1", 8080, 0},     {"10.255.255.255", 1, 0},
            {"11.0.0.1", 8080, -1},    {"9.255.255.255", 80, -1}, {"10.1.200.1", 8080, 6},
            {"10.1.127.255", 8080, 1}, {"fd00::1", 443, 7},       {"fd00:1::1", 443, 8},
            {"fd00:1::1", 444, 7},     {"fe80::1", 443, -1},      {"::ffff:10.1.2.4", 8080, -1},
            {"192.0.2.1", 53, 9},      {"10.9.9.9", 53, 0},
    };
    struct pk_dst_rule rules[PK_ARRAY_LEN(lines)];

    for (size_t i = 0; i < PK_ARRAY_LEN(lines); i++) {
        assert_int_equal(pk_dst_rule_parse(lines[i], &rules[i], NULL), 0);
    }
    for (size_t i = 0; i < PK_ARRAY_LEN(cases); i++) {
        struct sockaddr_storage ss = addr(cases[i].ip, cases[i].port);
        const struct pk_dst_rule *got =
                pk_dst_lookup(rules, PK_ARRAY_LEN(rules), (const struct sockaddr *)&ss);
        int idx = got == NULL ? -1 : (int)(got - rules);
        if (idx != cases[i].want) {
            fail_msg("case %zu %s:%u: got line %d, want %d", i, cases[i].ip, cases[i].port, idx,
                     cases[i].want);
        }
    }
    /* Not IP: nothing covers it. */
    struct sockaddr_storage un = {.ss_family = AF_UNIX};
    assert_null(pk_dst_lookup(rules, PK_ARRAY_LEN(rules), (const struct sockaddr *)&un));
    assert_null(pk_dst_lookup(rules, 0, (const struct sockaddr *)&un));
    for (size_t i = 0; i < PK_ARRAY_LEN(lines); i++) {
        pk_dst_rule_clear(&rules[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_dst_good),
            cmocka_unit_test(test_dst_bad),
            cmocka_unit_test(test_rule_parse),
            cmocka_unit_test(test_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
