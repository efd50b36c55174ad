/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for common/addr: the address grammar accepted and refused under each flag
 * (with its messages), formatting back, loopback, and which pairs of listeners overlap. */
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

#include <netinet/in.h>
#include <sys/un.h>

#include "common/addr.h"
#include "common/compiler.h"
#include "common/err.h"

static void assert_contains(const char *text, const char *part)
{
    if (strstr(text, part) == NULL) {
        fail_msg("'%s' does not contain '%s'", text, part);
    }
}

struct good {
    const char *text;
    unsigned flags;
    enum pk_addr_kind kind;
    int family;
    const char *formatted;
};

static void parse_good(void **state)
{
    (void)state;
    static const struct good cases[] = {
            {"127.0.0.1:8443", 0, PK_ADDR_INET, AF_INET, "127.0.0.1:8443"},
            {"localhost:80", 0, PK_ADDR_INET, AF_INET, "127.0.0.1:80"},
            {"0.0.0.0:1", 0, PK_ADDR_INET, AF_INET, "0.0.0.0:1"},
            {"[::1]:65535", 0, PK_ADDR_INET, AF_INET6, "[::1]:65535"},
            {"[::]:9000", 0, PK_ADDR_INET, AF_INET6, "[::]:9000"},
            {"[2001:DB8::1]:9000", 0, PK_ADDR_INET, AF_INET6, "[2001:db8::1]:9000"},
            {"unix:/run/app.sock", 0, PK_ADDR_UNIX, AF_UNIX, "unix:/run/app.sock"},
            {"127.0.0.1:0", PK_ADDR_PORT_ZERO, PK_ADDR_INET, AF_INET, "127.0.0.1:0"},
            {"unix:admin.sock", PK_ADDR_UNIX_RELATIVE, PK_ADDR_UNIX, AF_UNIX, "unix:admin.sock"},
            {"sentry.dapr-system.svc:50001", PK_ADDR_NAMES, PK_ADDR_NAME, 0,
             "sentry.dapr-system.svc:50001"},
            {"localhost:50001", PK_ADDR_NAMES, PK_ADDR_NAME, 0, "localhost:50001"},
            {"10.0.0.1:50001", PK_ADDR_NAMES, PK_ADDR_INET, AF_INET, "10.0.0.1:50001"},
            {"[fd00::1]:50001", PK_ADDR_NAMES, PK_ADDR_INET, AF_INET6, "[fd00::1]:50001"},
    };
    char buf[PK_ADDR_STR_LEN];

    for (size_t i = 0; i < PK_ARRAY_LEN(cases); i++) {
        struct pk_addr a;
        struct pk_err err = {{0}};
        if (pk_addr_parse(cases[i].text, cases[i].flags, &a, &err) != 0) {
            fail_msg("%s: %s", cases[i].text, err.msg);
        }
        assert_int_equal(a.kind, cases[i].kind);
        if (a.kind != PK_ADDR_NAME) {
            assert_int_equal(a.sa.ss_family, cases[i].family);
            assert_true(a.sa_len > 0);
        }
        assert_string_equal(pk_addr_format(&a, buf, sizeof(buf)), cases[i].formatted);
    }
}

struct bad {
    const char *text;
    unsigned flags;
    const char *message;
};

static void parse_bad(void **state)
{
    (void)state;
    static const struct bad cases[] = {
            {"127.0.0.1", 0,
             "expected HOST:PORT, [V6]:PORT or unix:/PATH: '127.0.0.1' is not HOST:PORT"},
            {":8443", 0, "':8443' is not HOST:PORT"},
            {"nocolon", PK_ADDR_NAMES, "'nocolon' is not HOST:PORT"},
            {"::1:8443", 0, "'::1:8443': put an IPv6 address in brackets"},
            {"[::1:8443", 0, "'[::1:8443': bad [IPv6] host"},
            {"[::1]]:8443", 0, "bad [IPv6] host"},
            {"a b:80", PK_ADDR_NAMES, "'a b:80': the host has a blank or control byte"},
            {"127.0.0.1:0", 0, "'127.0.0.1:0': the port is not a number from 1 to 65535"},
            {"127.0.0.1:65536", PK_ADDR_PORT_ZERO, "the port is not a number from 0 to 65535"},
            {"127.0.0.1:http", 0, "the port is not a number"},
            {"127.0.0.1:+80", 0, "the port is not a number"},
            {"127.0.0.1:", 0, "the port is not a number"},
            {"example.com:443", 0,
             "'example.com:443': the host must be a numeric IPv4 address, [IPv6] or localhost "
             "(names are not resolved)"},
            {"127.1:80", 0, "the host must be a numeric IPv4 address"},
            {"LOCALHOST:80", 0, "the host must be"},
            {"[127.0.0.1]:80", 0, "'[127.0.0.1]:80': not an IPv6 address in brackets"},
            {"[fe80::1%eth0]:80", 0, "not an IPv6 address in brackets"},
            {"[name]:80", PK_ADDR_NAMES, "not an IPv6 address in brackets"},
            {"unix:run/app.sock", 0, "'unix:run/app.sock': a unix socket path must be absolute"},
            {"unix:", 0, "a unix socket path must be absolute"},
            {"unix:", PK_ADDR_UNIX_RELATIVE, "'unix:': a unix socket path must not be empty"},
            {"unix:/x", PK_ADDR_NAMES, "the port is not a number"},
            {"bad\x01host:80", PK_ADDR_NAMES, "'bad\\x01host:80'"},
    };

    for (size_t i = 0; i < PK_ARRAY_LEN(cases); i++) {
        struct pk_addr a;
        struct pk_err err = {{0}};
        if (pk_addr_parse(cases[i].text, cases[i].flags, &a, &err) != PK_E_INVALID) {
            fail_msg("%s: accepted", cases[i].text);
        }
        assert_contains(err.msg, cases[i].message);
    }
}

static void unix_path_length(void **state)
{
    (void)state;
    char text[5 + PK_ADDR_MAX_UNIX_PATH + 2];
    struct pk_addr a;
    struct pk_err err = {{0}};

    strcpy(text, "unix:/");
    memset(text + 6, 'p', PK_ADDR_MAX_UNIX_PATH - 1);
    text[5 + PK_ADDR_MAX_UNIX_PATH] = '\0';
    assert_int_equal(pk_addr_parse(text, 0, &a, &err), 0);
    assert_int_equal(strlen(((struct sockaddr_un *)&a.sa)->sun_path), PK_ADDR_MAX_UNIX_PATH);
    strcat(text, "p");
    assert_int_equal(pk_addr_parse(text, 0, &a, &err), PK_E_INVALID);
    assert_contains(err.msg, "a unix socket path must be shorter than 108 bytes");
}

static void from_host(void **state)
{
    (void)state;
    static const char *const good[] = {"127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0"};
    static const char *const bad[] = {"example.com", "127.0.0.1.5", "[::1", "", "[]"};
    struct pk_addr a;
    struct pk_err err = {{0}};

    for (size_t i = 0; i < PK_ARRAY_LEN(good); i++) {
        assert_int_equal(pk_addr_from_host(good[i], 80, &a, &err), 0);
        assert_int_equal(a.port, 80);
    }
    for (size_t i = 0; i < PK_ARRAY_LEN(bad); i++) {
        assert_int_equal(pk_addr_from_host(bad[i], 80, &a, &err), PK_E_INVALID);
        assert_contains(err.msg, "is not a numeric IP address or \"localhost\"");
    }
}

static void loopback(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        bool loopback;
    } cases[] = {
            {"127.0.0.1:1", true},  {"127.255.0.9:1", true},
            {"localhost:1", true},  {"[::1]:1", true},
            {"unix:/s", true},      {"0.0.0.0:1", false},
            {"10.0.0.1:1", false},  {"[::]:1", false},
            {"128.0.0.1:1", false}, {"[::ffff:127.0.0.1]:1", false},
    };
    struct pk_addr a;

    for (size_t i = 0; i < PK_ARRAY_LEN(cases); i++) {
        assert_int_equal(pk_addr_parse(cases[i].text, 0, &a, NULL), 0);
        if (pk_addr_is_loopback(&a) != cases[i].loopback) {
            fail_msg("%s: loopback should be %d", cases[i].text, cases[i].loopback);
        }
    }
}

static void overlaps(void **state)
{
    (void)state;
    static const struct {
        const char *a, *b;
        bool overlap;
    } cases[] = {
            {"127.0.0.1:80", "127.0.0.1:80", true},
            {"localhost:80", "127.0.0.1:80", true},
            {"0.0.0.0:80", "10.1.2.3:80", true},
            {"10.1.2.3:80", "0.0.0.0:80", true},
            {"[::]:80", "[::1]:80", true},
            {"[::1]:80", "[0:0::1]:80", true},
            {"unix:/run/a.sock", "unix:/run/a.sock", true},
            {"127.0.0.1:80", "127.0.0.1:81", false},
            {"127.0.0.1:80", "127.0.0.2:80", false},
            {"0.0.0.0:80", "[::]:80", false},
            {"[::1]:80", "127.0.0.1:80", false},
            {"unix:/run/a.sock", "unix:/run/b.sock", false},
            {"unix:/run/a.sock", "127.0.0.1:80", false},
            {"127.0.0.1:0", "127.0.0.1:0", false},
    };
    struct pk_addr a, b;

    for (size_t i = 0; i < PK_ARRAY_LEN(cases); i++) {
        assert_int_equal(pk_addr_parse(cases[i].a, PK_ADDR_PORT_ZERO, &a, NULL), 0);
        assert_int_equal(pk_addr_parse(cases[i].b, PK_ADDR_PORT_ZERO, &b, NULL), 0);
        if (pk_addr_overlaps(&a, &b) != cases[i].overlap ||
            pk_addr_overlaps(&b, &a) != cases[i].overlap) {
            fail_msg("%s and %s: overlap should be %d", cases[i].a, cases[i].b, cases[i].overlap);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(parse_good),       cmocka_unit_test(parse_bad),
            cmocka_unit_test(unix_path_length), cmocka_unit_test(from_host),
            cmocka_unit_test(loopback),         cmocka_unit_test(overlaps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
