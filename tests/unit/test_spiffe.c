/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for common/spiffe (table-driven, SPIFFE-ID spec §2). */
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

#include "common/err.h"
#include "common/spiffe.h"

struct parse_case {
    const char *input;
    bool valid;
    const char *td;       /* expected trust domain when valid */
    const char *path;     /* expected path when valid */
    const char *ns;       /* expected namespace when it is a workload ID, else NULL */
    const char *app;      /* expected app id when it is a workload ID */
    const char *err_frag; /* part of the message when invalid */
};

static const struct parse_case parse_cases[] = {
        /* valid */
        {"spiffe://example.org", true, "example.org", "", NULL, NULL, NULL},
        {"spiffe://example.org/ns/default/frontend", true, "example.org", "/ns/default/frontend",
         "default", "frontend", NULL},
        {"spiffe://public/ns/default/myapp", true, "public", "/ns/default/myapp", "default",
         "myapp", NULL},
        {"spiffe://cluster.local/ns/dapr-system/dapr-sentry", true, "cluster.local",
         "/ns/dapr-system/dapr-sentry", "dapr-system", "dapr-sentry", NULL},
        {"spiffe://a_b-c.9/x", true, "a_b-c.9", "/x", NULL, NULL, NULL},
        {"spiffe://td/ns/NS_1/App.Name-2", true, "td", "/ns/NS_1/App.Name-2", "NS_1", "App.Name-2",
         NULL},
        {"spiffe://td/ns/a/b/c", true, "td", "/ns/a/b/c", NULL, NULL, NULL},
        {"spiffe://td/ns/a", true, "td", "/ns/a", NULL, NULL, NULL},
        {"spiffe://td/NS/a/b", true, "td", "/NS/a/b", NULL, NULL, NULL},
        {"spiffe://td/...", true, "td", "/...", NULL, NULL, NULL},
        {"spiffe://td/.a/a.", true, "td", "/.a/a.", NULL, NULL, NULL},
        {"spiffe://1.2.3.4/x", true, "1.2.3.4", "/x", NULL, NULL, NULL},
        /* invalid: scheme */
        {"", false, NULL, NULL, NULL, NULL, "empty"},
        {"http://example.org/x", false, NULL, NULL, NULL, NULL, "does not start"},
        {"SPIFFE://example.org/x", false, NULL, NULL, NULL, NULL, "does not start"},
        {"spiffe:/example.org/x", false, NULL, NULL, NULL, NULL, "does not start"},
        {"spiffe:example.org", false, NULL, NULL, NULL, NULL, "does not start"},
        {"example.org/ns/a/b", false, NULL, NULL, NULL, NULL, "does not start"},
        /* invalid: trust domain */
        {"spiffe://", false, NULL, NULL, NULL, NULL, "no trust domain"},
        {"spiffe:///ns/a/b", false, NULL, NULL, NULL, NULL, "no trust domain"},
        {"spiffe://Example.org/x", false, NULL, NULL, NULL, NULL, "lower case"},
        {"spiffe://example.org:8443/x", false, NULL, NULL, NULL, NULL, "port"},
        {"spiffe://user@example.org/x", false, NULL, NULL, NULL, NULL, "userinfo"},
        {"spiffe://exa mple.org/x", false, NULL, NULL, NULL, NULL, "trust domain may only"},
        {"spiffe://example%2eorg/x", false, NULL, NULL, NULL, NULL, "percent"},
        {"spiffe://example.org?x=1", false, NULL, NULL, NULL, NULL, "query"},
        {"spiffe://example.org#frag", false, NULL, NULL, NULL, NULL, "fragment"},
        {"spiffe://ex*mple.org/x", false, NULL, NULL, NULL, NULL, "trust domain may only"},
        /* invalid: path */
        {"spiffe://example.org/", false, NULL, NULL, NULL, NULL, "trailing slash"},
        {"spiffe://example.org/ns/a/", false, NULL, NULL, NULL, NULL, "trailing slash"},
        {"spiffe://example.org//ns", false, NULL, NULL, NULL, NULL, "empty path segment"},
        {"spiffe://example.org/ns//a", false, NULL, NULL, NULL, NULL, "empty path segment"},
        {"spiffe://example.org/./a", false, NULL, NULL, NULL, NULL, "'.' or '..'"},
        {"spiffe://example.org/ns/..", false, NULL, NULL, NULL, NULL, "'.' or '..'"},
        {"spiffe://example.org/ns/a%20b", false, NULL, NULL, NULL, NULL, "percent"},
        {"spiffe://example.org/ns/a?b", false, NULL, NULL, NULL, NULL, "query"},
        {"spiffe://example.org/ns/a#b", false, NULL, NULL, NULL, NULL, "fragment"},
        {"spiffe://example.org/ns/a:b", false, NULL, NULL, NULL, NULL, "':'"},
        {"spiffe://example.org/ns/a b", false, NULL, NULL, NULL, NULL, "path segment may only"},
        {"spiffe://example.org/ns/caf\xc3\xa9", false, NULL, NULL, NULL, NULL,
         "path segment may only"},
        {"spiffe://example.org/ns/*", false, NULL, NULL, NULL, NULL, "path segment may only"},
};

static void parse_table(void **state)
{
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        const struct parse_case *c = &parse_cases[i];
        struct pk_spiffe_id id;
        struct pk_err err = {{0}};
        int r = pk_spiffe_parse(c->input, strlen(c->input), &id, &err);
        if (c->valid) {
            if (r != 0) {
                fail_msg("case %zu '%s' should be valid: %s", i, c->input, err.msg);
            }
            assert_string_equal(id.uri, c->input);
            assert_string_equal(id.trust_domain, c->td);
            assert_string_equal(id.path, c->path);
            assert_int_equal(id.is_workload, c->ns != NULL);
            if (c->ns != NULL) {
                assert_string_equal(id.namespace_, c->ns);
                assert_string_equal(id.app_id, c->app);
            }
        } else {
            if (r != PK_E_INVALID) {
                fail_msg("case %zu '%s' should be invalid, got %d", i, c->input, r);
            }
            if (strstr(err.msg, c->err_frag) == NULL) {
                fail_msg("case %zu '%s': message '%s' lacks '%s'", i, c->input, err.msg,
                         c->err_frag);
            }
            /* Messages quote the input. */
            char head[16];
            snprintf(head, sizeof(head), "'%.12s", c->input);
            if (c->input[0] != '\0' && strstr(err.msg, head) == NULL) {
                fail_msg("case %zu: message '%s' does not quote the input", i, err.msg);
            }
        }
    }
    assert_true(sizeof(parse_cases) / sizeof(parse_cases[0]) >= 30);
}

static void parse_is_length_bounded_and_nul_safe(void **state)
{
    struct pk_spiffe_id id;
    struct pk_err err = {{0}};
    char buf[PK_SPIFFE_MAX_LEN + 16];
    size_t n;

    /* Exactly 2048 bytes is fine, 2049 is not. */
    n = (size_t)snprintf(buf, sizeof(buf), "spiffe://td/");
    memset(buf + n, 'a', PK_SPIFFE_MAX_LEN - n);
    assert_int_equal(pk_spiffe_parse(buf, PK_SPIFFE_MAX_LEN, &id, &err), 0);
    assert_int_equal(strlen(id.uri), PK_SPIFFE_MAX_LEN);
    buf[PK_SPIFFE_MAX_LEN] = 'a';
    assert_int_equal(pk_spiffe_parse(buf, PK_SPIFFE_MAX_LEN + 1, &id, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "longer than 2048"));
    assert_true(strlen(err.msg) < 300); /* the quote is cut */

    /* A NUL inside the given length is an error, not an end. */
    assert_int_equal(pk_spiffe_parse("spiffe://td/a\0b", 15, &id, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "NUL"));
    assert_int_equal(pk_spiffe_parse("spiffe://t\0d/a", 14, &id, &err), PK_E_INVALID);

    /* The length is honoured without a terminator: only the first 18 bytes count. */
    assert_int_equal(pk_spiffe_parse("spiffe://td/ns/a/bXXXXXX!!!", 18, &id, &err), 0);
    assert_string_equal(id.uri, "spiffe://td/ns/a/b");
    assert_true(id.is_workload);

    /* Trust domain longer than 255 bytes. */
    n = (size_t)snprintf(buf, sizeof(buf), "spiffe://");
    memset(buf + n, 'a', 256);
    assert_int_equal(pk_spiffe_parse(buf, n + 256, &id, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "longer than 255"));
    assert_int_equal(pk_spiffe_parse(buf, n + 255, &id, &err), 0);
}

static void check_helpers(void **state)
{
    struct pk_err err = {{0}};

    assert_int_equal(pk_spiffe_check_trust_domain("example.org", &err), 0);
    assert_int_equal(pk_spiffe_check_trust_domain("", &err), PK_E_INVALID);
    assert_int_equal(pk_spiffe_check_trust_domain("Example.org", &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "'Example.org'"));
    assert_int_equal(pk_spiffe_check_trust_domain("td:80", &err), PK_E_INVALID);

    assert_int_equal(pk_spiffe_check_segment("dapr-system", "namespace", &err), 0);
    assert_int_equal(pk_spiffe_check_segment("My_App.2", "app id", &err), 0);
    assert_int_equal(pk_spiffe_check_segment("", "namespace", &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "namespace"));
    assert_int_equal(pk_spiffe_check_segment("..", "app id", &err), PK_E_INVALID);
    assert_int_equal(pk_spiffe_check_segment("a/b", "app id", &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "app id"));
    assert_non_null(strstr(err.msg, "'a/b'"));
}

static void format_workload(void **state)
{
    struct pk_err err = {{0}};
    char out[64];
    char small[20];

    assert_int_equal(
            pk_spiffe_format_workload(out, sizeof(out), "public", "default", "myapp", &err), 0);
    assert_string_equal(out, "spiffe://public/ns/default/myapp");
    assert_int_equal(
            pk_spiffe_format_workload(small, sizeof(small), "public", "default", "myapp", &err),
            PK_E_TOOBIG);
    assert_int_equal(
            pk_spiffe_format_workload(out, sizeof(out), "Public", "default", "myapp", &err),
            PK_E_INVALID);
    assert_int_equal(
            pk_spiffe_format_workload(out, sizeof(out), "public", "de fault", "myapp", &err),
            PK_E_INVALID);
    assert_non_null(strstr(err.msg, "namespace"));
    assert_int_equal(pk_spiffe_format_workload(out, sizeof(out), "public", "default", ".", &err),
                     PK_E_INVALID);
    assert_non_null(strstr(err.msg, "app id"));

    /* Too long in total even though each part alone is fine. */
    char *big = malloc(1500);
    memset(big, 'a', 1499);
    big[1499] = '\0';
    char *buf = malloc(4096);
    assert_int_equal(pk_spiffe_format_workload(buf, 4096, "td", big, big, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "2048"));
    free(big);
    free(buf);
}

struct match_case {
    const char *id;
    const char *pattern;
    bool match;
};

static const struct match_case match_cases[] = {
        {"spiffe://td/ns/default/frontend", "spiffe://td/ns/default/frontend", true},
        {"spiffe://td/ns/default/frontend", "spiffe://td/ns/*/frontend", true},
        {"spiffe://td/ns/default/frontend", "spiffe://td/ns/default/*", true},
        {"spiffe://td/ns/default/frontend", "spiffe://td/*/*/*", true},
        {"spiffe://td/ns/default/frontend", "spiffe://td/ns/*", false},
        {"spiffe://td/ns/default/frontend", "spiffe://td/ns/default/frontend/x", false},
        {"spiffe://td/ns/default/frontend", "spiffe://other/ns/default/frontend", false},
        {"spiffe://td/ns/default/frontend", "spiffe://t/ns/default/frontend", false},
        {"spiffe://td/ns/default/frontend", "spiffe://td/ns/default/front", false},
        {"spiffe://td/ns/default/frontend", "spiffe://td/ns/default/frontend/", false},
        {"spiffe://td/ns/default/frontend", "spiffe://td/ns/default/fr*", false},
        {"spiffe://td/ns/default/frontend", "spiffe://TD/ns/default/frontend", false},
        {"spiffe://td/ns/default/frontend", "http://td/ns/default/frontend", false},
        {"spiffe://td", "spiffe://td", true},
        {"spiffe://td", "spiffe://td/*", false},
        {"spiffe://td/a", "spiffe://td", false},
        {"spiffe://td.evil/ns/a/b", "spiffe://td/ns/a/b", false},
};

static void match_table(void **state)
{
    for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
        const struct match_case *c = &match_cases[i];
        struct pk_spiffe_id id;
        assert_int_equal(pk_spiffe_parse(c->id, strlen(c->id), &id, NULL), 0);
        if (pk_spiffe_match(&id, c->pattern) != c->match) {
            fail_msg("match case %zu: '%s' against '%s' should be %s", i, c->id, c->pattern,
                     c->match ? "true" : "false");
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(parse_table),   cmocka_unit_test(parse_is_length_bounded_and_nul_safe),
            cmocka_unit_test(check_helpers), cmocka_unit_test(format_workload),
            cmocka_unit_test(match_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
