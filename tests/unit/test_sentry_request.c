/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for sentry/request: decoding SignCertificateRequest with true lengths
 * (hand-encoded wire bytes, embedded NULs, bad UTF-8, wrong wire types, truncation), the app id,
 * namespace and trust domain rules, the allowed trust domain list and the control-plane ids. */
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

#include "common/compiler.h"
#include "sentry/request.h"

#define S(lit) pk_slice_make(lit, sizeof(lit) - 1)

static bool slice_is(struct pk_slice s, const char *bytes, size_t len)
{
    return s.len == len && memcmp(s.ptr, bytes, len) == 0;
}

static void decode_keeps_true_lengths(void **state)
{
    (void)state;
    /* id "a\0b", token "t", trust_domain "x\0", namespace "default", csr "C", validator 3, an
     * unknown varint field 15 and an unknown length-delimited field 20, one audience. */
    static const uint8_t wire[] = {
            0x0a, 3, 'a',  0,    'b',  0x12, 1,   't', 0x1a, 2,    'x', 0,
            0x22, 7, 'd',  'e',  'f',  'a',  'u', 'l', 't',  0x2a, 1,   'C',
            0x30, 3, 0x78, 0x05, 0xa2, 0x01, 2,   'z', 'z',  0x3a, 1,   'a',
    };
    struct pk_sentry_request req;
    struct pk_err err;

    assert_int_equal(pk_sentry_request_decode(pk_slice_make(wire, sizeof(wire)), &req, &err), 0);
    assert_true(slice_is(req.id, "a\0b", 3));
    assert_true(slice_is(req.token, "t", 1));
    assert_true(slice_is(req.trust_domain, "x\0", 2));
    assert_true(slice_is(req.namespace_, "default", 7));
    assert_true(slice_is(req.csr, "C", 1));
    assert_int_equal(req.token_validator, 3);
    assert_int_equal(req.n_jwt_audiences, 1);
}

static void decode_last_occurrence_wins_and_enums_are_int32(void **state)
{
    (void)state;
    /* id "first" then id "x"; validator -1 as a ten-byte varint. */
    static const uint8_t wire[] = {0x0a, 5,    'f',  'i',  'r',  's',  't',  0x0a, 1,    'x', 0x30,
                                   0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    struct pk_sentry_request req;
    struct pk_err err;

    assert_int_equal(pk_sentry_request_decode(pk_slice_make(wire, sizeof(wire)), &req, &err), 0);
    assert_true(slice_is(req.id, "x", 1));
    assert_int_equal(req.token_validator, -1);
    /* The empty message is a request with every field empty. */
    assert_int_equal(pk_sentry_request_decode(pk_slice_make(wire, 0), &req, &err), 0);
    assert_int_equal(req.id.len, 0);
    assert_int_equal(req.token_validator, 0);
}

struct bad_wire {
    const char *name;
    uint8_t bytes[16];
    size_t len;
    const char *text;
};

static void decode_refuses_malformed_messages(void **state)
{
    (void)state;
    static const struct bad_wire cases[] = {
            {"id not UTF-8", {0x0a, 2, 'a', 0xff}, 4, "field 1 (id) is not valid UTF-8"},
            {"overlong NUL", {0x22, 2, 0xc0, 0x80}, 4, "field 4 (namespace) is not valid UTF-8"},
            {"surrogate", {0x1a, 3, 0xed, 0xa0, 0x80}, 5, "field 3 (trust_domain)"},
            {"cut sequence", {0x12, 2, 'a', 0xe2}, 4, "field 2 (token)"},
            {"audience", {0x3a, 1, 0x80}, 3, "field 7 (jwt_audiences)"},
            {"id as varint", {0x08, 1}, 2, "field 1 (id) at byte 0: wire type 0"},
            {"validator as bytes", {0x32, 1, 1}, 3, "field 6 (token_validator)"},
            {"length past end", {0x0a, 5, 'a'}, 3, "runs past the end"},
            {"huge length",
             {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
             11,
             "runs past the end"},
            {"cut key", {0x80}, 1, "bad field key at byte 0"},
            {"field 0", {0x02, 0}, 2, "invalid field number 0"},
            {"group", {0x0b}, 1, "wire type 3"},
            {"cut fixed64", {0x41, 1, 2}, 3, "truncated"},
            {"eleven-byte varint",
             {0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
             11,
             "bad varint"},
    };
    for (size_t i = 0; i < PK_ARRAY_LEN(cases); i++) {
        struct pk_sentry_request req;
        struct pk_err err;
        pk_err_clear(&err);
        if (pk_sentry_request_decode(pk_slice_make(cases[i].bytes, cases[i].len), &req, &err) !=
                    PK_E_INVALID ||
            strstr(err.msg, cases[i].text) == NULL) {
            fail_msg("%s: got \"%s\", want \"%s\"", cases[i].name, err.msg, cases[i].text);
        }
    }
}

struct field_case {
    const char *bytes;
    size_t len;
    int result;
    const char *text;
};

#define F(lit, result, text)                                                                       \
    {                                                                                              \
        lit, sizeof(lit) - 1, result, text                                                         \
    }

static void run_cases(const struct field_case *cases, size_t n,
                      int (*check)(struct pk_slice, struct pk_err *))
{
    for (size_t i = 0; i < n; i++) {
        struct pk_err err;
        int r;
        pk_err_clear(&err);
        r = check(pk_slice_make(cases[i].bytes, cases[i].len), &err);
        if (r != cases[i].result || strstr(err.msg, cases[i].text) == NULL) {
            fail_msg("case %zu (%.*s): %d \"%s\", want %d \"%s\"", i, (int)cases[i].len,
                     cases[i].bytes, r, err.msg, cases[i].result, cases[i].text);
        }
    }
}

static void app_id_rules(void **state)
{
    (void)state;
    static const struct field_case cases[] = {
            F("myapp", 0, ""),
            F("My_App-2", 0, ""),
            F("a234567890123456789012345678901234567890123456789012345678901234", 0, ""),
            F("a2345678901234567890123456789012345678901234567890123456789012345", PK_E_INVALID,
              "app ID must be 64 characters or less"),
            F("", PK_E_INVALID, "parameter app-id cannot be empty"),
            F("my.app", PK_E_INVALID, "cannot contain dots"),
            F("..", PK_E_INVALID, "cannot contain dots"),
            F("a\0b", PK_E_INVALID, "app id 'a\\x00b': a NUL byte is not allowed"),
            F("\0", PK_E_INVALID, "a NUL byte"),
            F("a/b", PK_E_INVALID, "'/' is not allowed"),
            F("a%2fb", PK_E_INVALID, "percent-encoding"),
            F("a b", PK_E_INVALID, "white space"),
            F("app\n", PK_E_INVALID, "control characters"),
            F("app\x7f", PK_E_INVALID, "control characters"),
            F("caf\xc3\xa9", PK_E_INVALID, "only ASCII"),
            F("a:b", PK_E_INVALID, "character not allowed"),
    };
    run_cases(cases, PK_ARRAY_LEN(cases), pk_sentry_check_app_id);
}

static int check_ns(struct pk_slice ns, struct pk_err *err)
{
    return pk_sentry_check_namespace(ns, "namespace", err);
}

static void namespace_rules(void **state)
{
    (void)state;
    static const struct field_case cases[] = {
            F("default", 0, ""),
            F("dapr-system", 0, ""),
            F("a", 0, ""),
            F("0ns9", 0, ""),
            F("a23456789012345678901234567890123456789012345678901234567890123", 0, ""),
            F("a234567890123456789012345678901234567890123456789012345678901234", PK_E_INVALID,
              "is 64 bytes long"),
            F("", PK_E_INVALID, "namespace is required"),
            F("Default", PK_E_INVALID, "upper case is not allowed"),
            F("default.", PK_E_INVALID, "'.' is not allowed"),
            F("..", PK_E_INVALID, "'.' is not allowed"),
            F("def\0ault", PK_E_INVALID, "namespace 'def\\x00ault': a NUL byte"),
            F("my_ns", PK_E_INVALID, "character not allowed"),
            F("-ns", PK_E_INVALID, "starts or ends with '-'"),
            F("ns-", PK_E_INVALID, "starts or ends with '-'"),
            F("a/b", PK_E_INVALID, "'/'"),
            F("default ", PK_E_INVALID, "white space"),
            F("\tdefault", PK_E_INVALID, "control characters"),
            F("d\xc3\xa9", PK_E_INVALID, "only ASCII"),
    };
    run_cases(cases, PK_ARRAY_LEN(cases), check_ns);
}

static struct pk_sentry_trust_domains default_list(void)
{
    struct pk_sentry_trust_domains list = {0};
    struct pk_err err;

    assert_int_equal(pk_sentry_trust_domains_add(&list, "example.test", "--trust-domain", &err), 0);
    assert_int_equal(pk_sentry_trust_domains_add(&list, "public", "default", &err), 0);
    return list;
}

static int check_td(struct pk_slice td, struct pk_err *err)
{
    struct pk_sentry_trust_domains list = default_list();
    struct pk_slice used;
    int r = pk_sentry_check_trust_domain(td, &list, &used, err);

    if (r == 0) {
        assert_true(used.len > 0 && pk_sentry_trust_domains_contains(&list, used));
        pk_err_set(err, 0, "used %.*s", (int)used.len, (const char *)used.ptr);
    }
    return r;
}

static void trust_domain_rules(void **state)
{
    (void)state;
    static const struct field_case cases[] = {
            F("example.test", 0, "used example.test"),
            F("public", 0, "used public"),
            F("", 0, "used public"),
            F("evil.test", PK_E_DENIED,
              "trust domain 'evil.test' is not one this Sentry signs for (allowed: example.test, "
              "public; add trust domains with --allowed-trust-domains)"),
            F("example.test.", PK_E_DENIED, "not one this Sentry signs for"),
            F(".example.test", PK_E_DENIED, "not one this Sentry signs for"),
            F("localhost", PK_E_DENIED, "not one this Sentry signs for"),
            F("example", PK_E_DENIED, "not one this Sentry signs for"),
            F("example.testx", PK_E_DENIED, "not one this Sentry signs for"),
            F("Example.test", PK_E_INVALID, "lower case"),
            F("PUBLIC", PK_E_INVALID, "lower case"),
            F("example.test\0", PK_E_INVALID, "'example.test\\x00': a NUL byte"),
            F("public\0evil", PK_E_INVALID, "a NUL byte"),
            F("example.test ", PK_E_INVALID, "trust domain"),
            F("example.test:443", PK_E_INVALID, "a port is not allowed"),
            F("ex%61mple.test", PK_E_INVALID, "percent-encoding"),
    };
    run_cases(cases, PK_ARRAY_LEN(cases), check_td);
}

static void trust_domain_list(void **state)
{
    (void)state;
    struct pk_sentry_trust_domains list = default_list();
    struct pk_err err;
    char text[64];

    assert_int_equal(
            pk_sentry_trust_domains_add_list(&list, " a.test ,public,b-c_d.test", "--x", &err), 0);
    assert_string_equal(pk_sentry_trust_domains_format(&list, text, sizeof(text)),
                        "example.test, public, a.test, b-c_d.test");
    assert_true(pk_sentry_trust_domains_contains(&list, S("a.test")));
    assert_false(pk_sentry_trust_domains_contains(&list, S("a.tes")));
    assert_false(pk_sentry_trust_domains_contains(&list, S("a.test.")));
    /* A format that does not fit is cut, not overrun. */
    assert_string_equal(pk_sentry_trust_domains_format(&list, text, 16), "example.test...");

    static const struct {
        const char *csv, *text;
    } bad[] = {
            {"", "--x: empty trust domain"},
            {"a.test,,b.test", "--x: empty trust domain"},
            {"a.test,", "--x: empty trust domain"},
            {"Evil.test", "--x: trust domain: the trust domain must be lower case"},
            {"evil.test.", "--x: trust domain 'evil.test.' has an empty label"},
            {".evil.test", "empty label"},
            {"evil..test", "empty label"},
            {"evil.test:1", "a port"},
    };
    for (size_t i = 0; i < PK_ARRAY_LEN(bad); i++) {
        struct pk_sentry_trust_domains l = {0};
        pk_err_clear(&err);
        if (pk_sentry_trust_domains_add_list(&l, bad[i].csv, "--x", &err) != PK_E_INVALID ||
            strstr(err.msg, bad[i].text) == NULL) {
            fail_msg("%s: \"%s\", want \"%s\"", bad[i].csv, err.msg, bad[i].text);
        }
    }
    {
        struct pk_sentry_trust_domains l = {0};
        char name[32];
        for (int i = 0; i < PK_SENTRY_MAX_TRUST_DOMAINS; i++) {
            snprintf(name, sizeof(name), "td%d.test", i);
            assert_int_equal(pk_sentry_trust_domains_add(&l, name, "--x", &err), 0);
        }
        /* A repeat is not a new entry; one more is. */
        assert_int_equal(pk_sentry_trust_domains_add(&l, "td0.test", "--x", &err), 0);
        assert_int_equal(pk_sentry_trust_domains_add(&l, "one-more.test", "--x", &err),
                         PK_E_TOOBIG);
    }
}

static void control_plane_ids(void **state)
{
    (void)state;
    static const struct {
        const char *id, *ns;
        enum pk_sentry_id_kind kind;
    } cases[] = {
            {"myapp", "dapr-system", PK_SENTRY_ID_WORKLOAD},
            {"dapr-sentry", "dapr-system", PK_SENTRY_ID_SENTRY},
            {"dapr-sentry", "default", PK_SENTRY_ID_SENTRY},
            {"Dapr-Sentry", "shop", PK_SENTRY_ID_SENTRY},
            {"DAPR-SENTRY", "dapr-system", PK_SENTRY_ID_SENTRY},
            {"dapr-placement", "dapr-system", PK_SENTRY_ID_CONTROL_PLANE},
            {"dapr-scheduler", "dapr-system", PK_SENTRY_ID_CONTROL_PLANE},
            {"dapr-operator", "dapr-system", PK_SENTRY_ID_CONTROL_PLANE},
            {"dapr-injector", "dapr-system", PK_SENTRY_ID_CONTROL_PLANE},
            {"Dapr-Placement", "dapr-system", PK_SENTRY_ID_LOOKALIKE},
            {"dapr-INJECTOR", "dapr-system", PK_SENTRY_ID_LOOKALIKE},
            {"dapr-placement", "shop", PK_SENTRY_ID_WORKLOAD},
            {"dapr-placement2", "dapr-system", PK_SENTRY_ID_WORKLOAD},
            {"dapr-placemen", "dapr-system", PK_SENTRY_ID_WORKLOAD},
            {"dapr", "dapr-system", PK_SENTRY_ID_WORKLOAD},
    };
    for (size_t i = 0; i < PK_ARRAY_LEN(cases); i++) {
        enum pk_sentry_id_kind kind = pk_sentry_classify_id(
                pk_slice_make(cases[i].id, strlen(cases[i].id)),
                pk_slice_make(cases[i].ns, strlen(cases[i].ns)), "dapr-system");
        if (kind != cases[i].kind) {
            fail_msg("%s in %s: %d, want %d", cases[i].id, cases[i].ns, kind, cases[i].kind);
        }
    }
    /* A namespace given in another case is Sentry's namespace all the same. */
    assert_int_equal(pk_sentry_classify_id(S("dapr-operator"), S("Dapr-System"), "dapr-system"),
                     PK_SENTRY_ID_LOOKALIKE);
}

static void quote_escapes_and_cuts(void **state)
{
    (void)state;
    char out[300];
    char small[8];

    assert_string_equal(pk_sentry_quote(out, sizeof(out), S("a\0\"\\\n\xff")),
                        "a\\x00\\x22\\x5c\\x0a\\xff");
    assert_string_equal(
            pk_sentry_quote(out, sizeof(out),
                            S("0123456789012345678901234567890123456789012345678901234567890123"
                              "4567")),
            "0123456789012345678901234567890123456789012345678901234567890123...");
    assert_string_equal(pk_sentry_quote(small, sizeof(small), S("\x01\x02")), "\\x01");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(decode_keeps_true_lengths),
            cmocka_unit_test(decode_last_occurrence_wins_and_enums_are_int32),
            cmocka_unit_test(decode_refuses_malformed_messages),
            cmocka_unit_test(app_id_rules),
            cmocka_unit_test(namespace_rules),
            cmocka_unit_test(trust_domain_rules),
            cmocka_unit_test(trust_domain_list),
            cmocka_unit_test(control_plane_ids),
            cmocka_unit_test(quote_escapes_and_cuts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
