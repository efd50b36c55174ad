/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for proxy/policy: a table of (rules, peer ID) -> allow or deny, a table of
 * refused rules, and pk_peer_check / pk_policy_authorize on certificates minted at test time
 * (with pk_cert_issue, or with openssl for what pk_cert_issue cannot write). */
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

#include <time.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/key.h"
#include "common/pem.h"
#include "common/spiffe.h"
#include "common/x509.h"
#include "proxy/policy.h"
#include "testutil.h"

#define TD       "example.test"
#define NS       "default"
#define ISSUER_O "spiffe://example.test/ns/dapr-system/dapr-sentry"
#define FRONTEND "spiffe://example.test/ns/default/frontend"
#define BACKEND  "spiffe://example.test/ns/default/backend"

/* ---- the decision table ---- */

struct rule_spec {
    enum pk_policy_kind kind;
    const char *value; /* NULL ends the list */
};

enum outcome {
    ALLOW,
    DENY,
    BAD_ID, /* the peer ID itself is refused by pk_spiffe_parse */
};

struct allow_case {
    struct rule_spec rules[4];
    const char *peer;
    enum outcome want;
    const char *frag; /* part of the deny message, or NULL */
};

#define NONE                                                                                       \
    {                                                                                              \
        {                                                                                          \
            0, NULL                                                                                \
        }                                                                                          \
    }
#define TDR(v)                                                                                     \
    {                                                                                              \
        PK_ALLOW_TRUST_DOMAIN, v                                                                   \
    }
#define NSR(v)                                                                                     \
    {                                                                                              \
        PK_ALLOW_NAMESPACE, v                                                                      \
    }
#define APP(v)                                                                                     \
    {                                                                                              \
        PK_ALLOW_APP_ID, v                                                                         \
    }
#define SID(v)                                                                                     \
    {                                                                                              \
        PK_ALLOW_SPIFFE_ID, v                                                                      \
    }
#define EXP(v)                                                                                     \
    {                                                                                              \
        PK_EXPECT_SPIFFE_ID, v                                                                     \
    }

static const struct allow_case allow_cases[] = {
        /* No rule: peers of our own trust domain, whatever their path. */
        {NONE, FRONTEND, ALLOW, NULL},
        {NONE, "spiffe://example.test/ns/prod/backend", ALLOW, NULL},
        {NONE, "spiffe://example.test/some/other/path", ALLOW, NULL},
        {NONE, "spiffe://example.test", ALLOW, NULL},
        {NONE, "spiffe://other.test/ns/default/frontend", DENY,
         "allowed are peers of our own trust domain 'example.test'"},
        /* Trust-domain lookalikes (A02 L3-L5). */
        {NONE, "spiffe://example.test.evil/ns/default/frontend", DENY,
         "peer 'spiffe://example.test.evil/ns/default/frontend' is not allowed"},
        {NONE, "spiffe://evilexample.test/ns/default/frontend", DENY, NULL},
        {NONE, "spiffe://EXAMPLE.test/ns/default/frontend", BAD_ID, "lower case"},
        {NONE, "spiffe://Example.Test/ns/default/frontend", BAD_ID, "lower case"},
        {NONE, "spiffe://example.tes/ns/default/frontend", DENY, NULL},
        {NONE, "spiffe://example.test./ns/default/frontend", DENY, NULL},
        {NONE, "spiffe://sub.example.test/ns/default/frontend", DENY, NULL},
        {NONE, "spiffe://example.test:443/ns/default/frontend", BAD_ID, "port"},
        {NONE, "spiffe://example%2etest/ns/default/frontend", BAD_ID, "percent"},
        /* allow_trust_domain: our own is no longer implied once a rule exists. */
        {{TDR("other.test")}, "spiffe://other.test/ns/default/frontend", ALLOW, NULL},
        {{TDR("other.test")}, "spiffe://other.test/anything", ALLOW, NULL},
        {{TDR("other.test")}, FRONTEND, DENY, "allowed are trust domain 'other.test'"},
        {{TDR("other.test")}, "spiffe://other.test.evil/ns/default/frontend", DENY, NULL},
        {{TDR("other.test")}, "spiffe://sub.other.test/ns/default/frontend", DENY, NULL},
        {{TDR("other.test")}, "spiffe://evilother.test/ns/default/frontend", DENY, NULL},
        /* allow_namespace: only workload IDs of our trust domain. */
        {{NSR("prod")}, "spiffe://example.test/ns/prod/app", ALLOW, NULL},
        {{NSR("prod")},
         "spiffe://other.test/ns/prod/app",
         DENY,
         "allowed are namespace 'prod' of 'example.test'"},
        {{NSR("prod")}, "spiffe://example.test/ns/default/app", DENY, NULL},
        {{NSR("prod")}, "spiffe://example.test/ns/prod", DENY, NULL},
        {{NSR("prod")}, "spiffe://example.test/ns/prod/app/extra", DENY, NULL},
        {{NSR("prod")}, "spiffe://example.test/NS/prod/app", DENY, NULL},
        {{NSR("prod")}, "spiffe://example.test/ns/Prod/app", DENY, NULL},
        {{NSR("prod")}, "spiffe://example.test/ns/prodx/app", DENY, NULL},
        {{NSR("prod")}, "spiffe://example.test/x/prod/app", DENY, NULL},
        /* allow_app_id: APP in our namespace, NS/APP in another; always our trust domain. */
        {{APP("frontend")}, FRONTEND, ALLOW, NULL},
        {{APP("frontend")},
         "spiffe://example.test/ns/prod/frontend",
         DENY,
         "allowed are app id 'default/frontend' of 'example.test'"},
        {{APP("frontend")}, "spiffe://other.test/ns/default/frontend", DENY, NULL},
        {{APP("frontend")}, "spiffe://example.test/ns/default/frontend2", DENY, NULL},
        {{APP("frontend")}, "spiffe://example.test/ns/default/frontend/x", DENY, NULL},
        {{APP("prod/backend")}, "spiffe://example.test/ns/prod/backend", ALLOW, NULL},
        {{APP("prod/backend")}, BACKEND, DENY, "app id 'prod/backend'"},
        {{APP("prod/backend")}, "spiffe://other.test/ns/prod/backend", DENY, NULL},
        /* allow_spiffe_id, exact. */
        {{SID("spiffe://other.test/ns/x/y")}, "spiffe://other.test/ns/x/y", ALLOW, NULL},
        {{SID("spiffe://other.test/ns/x/y")},
         "spiffe://other.test/ns/x/y/z",
         DENY,
         "allowed are SPIFFE ID 'spiffe://other.test/ns/x/y'"},
        {{SID("spiffe://other.test/ns/x/y")}, "spiffe://other.test/ns/x", DENY, NULL},
        {{SID("spiffe://other.test/ns/x/y")}, "spiffe://other.test/ns/x/Y", DENY, NULL},
        {{SID("spiffe://other.test")}, "spiffe://other.test", ALLOW, NULL},
        {{SID("spiffe://other.test")}, "spiffe://other.test/x", DENY, NULL},
        /* allow_spiffe_id with `*': exactly one whole segment, counts must agree. */
        {{SID("spiffe://example.test/ns/*/frontend")},
         "spiffe://example.test/ns/prod/frontend",
         ALLOW,
         NULL},
        {{SID("spiffe://example.test/ns/*/frontend")},
         "spiffe://example.test/ns/a/b/frontend",
         DENY,
         NULL},
        {{SID("spiffe://example.test/ns/*/frontend")},
         "spiffe://example.test/ns/frontend",
         DENY,
         NULL},
        {{SID("spiffe://example.test/ns/*/frontend")},
         "spiffe://example.test/ns/prod/backend",
         DENY,
         NULL},
        {{SID("spiffe://example.test/ns/*/frontend")},
         "spiffe://example.test.evil/ns/prod/frontend",
         DENY,
         NULL},
        {{SID("spiffe://example.test/ns/default/*")},
         "spiffe://example.test/ns/default/anything",
         ALLOW,
         NULL},
        {{SID("spiffe://example.test/ns/default/*")},
         "spiffe://example.test/ns/default",
         DENY,
         NULL},
        {{SID("spiffe://example.test/ns/default/*")},
         "spiffe://example.test/ns/default/a/b",
         DENY,
         NULL},
        {{SID("spiffe://other.test/*/*/*")}, "spiffe://other.test/ns/a/b", ALLOW, NULL},
        {{SID("spiffe://other.test/*/*/*")}, "spiffe://other.test/a/b", DENY, NULL},
        {{SID("spiffe://other.test/*/*/*")}, "spiffe://other.test", DENY, NULL},
        /* Several rules are OR-ed, and the default is gone. */
        {{TDR("other.test"), NSR("prod"), APP("web")}, "spiffe://other.test/whatever", ALLOW, NULL},
        {{TDR("other.test"), NSR("prod"), APP("web")},
         "spiffe://example.test/ns/prod/x",
         ALLOW,
         NULL},
        {{TDR("other.test"), NSR("prod"), APP("web")},
         "spiffe://example.test/ns/default/web",
         ALLOW,
         NULL},
        {{TDR("other.test"), NSR("prod"), APP("web")},
         FRONTEND,
         DENY,
         "peer '" FRONTEND "' is not allowed: allowed are trust domain 'other.test'; namespace "
         "'prod' of 'example.test'; app id 'default/web' of 'example.test'"},
        {{TDR("other.test"), NSR("prod"), APP("web")}, "spiffe://third.test/ns/prod/x", DENY, NULL},
        {{APP("frontend"), SID("spiffe://third.test/ns/*/api")}, FRONTEND, ALLOW, NULL},
        {{APP("frontend"), SID("spiffe://third.test/ns/*/api")},
         "spiffe://third.test/ns/q/api",
         ALLOW,
         NULL},
        {{APP("frontend"), SID("spiffe://third.test/ns/*/api")},
         "spiffe://third.test/ns/q/web",
         DENY,
         "; SPIFFE ID 'spiffe://third.test/ns/*/api'"},
        /* expect_spiffe_id: that very ID and nothing else. */
        {{EXP(BACKEND)}, BACKEND, ALLOW, NULL},
        {{EXP(BACKEND)},
         BACKEND "2",
         DENY,
         "peer '" BACKEND "2' is not the expected peer '" BACKEND "'"},
        {{EXP(BACKEND)}, "spiffe://example.test/ns/default", DENY, NULL},
        {{EXP(BACKEND)}, "spiffe://other.test/ns/default/backend", DENY, NULL},
        {{EXP(BACKEND)}, FRONTEND, DENY, NULL},
        {{EXP(BACKEND)}, BACKEND "/x", DENY, NULL},
};

static void describe(const struct allow_case *c, char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "peer %s, rules:", c->peer);

    for (size_t i = 0; i < PK_ARRAY_LEN(c->rules) && c->rules[i].value != NULL && n < len; i++) {
        n += (size_t)snprintf(out + n, len - n, " [%d] %s", (int)c->rules[i].kind,
                              c->rules[i].value);
    }
}

static struct pk_policy *build(const struct rule_spec *rules, size_t n, const char *ns)
{
    struct pk_policy *p = pk_policy_new(TD, ns);
    struct pk_err err = {{0}};

    for (size_t i = 0; i < n && rules[i].value != NULL; i++) {
        int r = pk_policy_add(p, rules[i].kind, rules[i].value, &err);
        if (r != 0) {
            fail_msg("pk_policy_add(%d, %s): %d %s", (int)rules[i].kind, rules[i].value, r,
                     err.msg);
        }
    }
    return p;
}

static void allow_table(void **state)
{
    size_t n_allow = 0;
    size_t n_deny = 0;

    (void)state;
    assert_true(PK_ARRAY_LEN(allow_cases) >= 40);
    for (size_t i = 0; i < PK_ARRAY_LEN(allow_cases); i++) {
        const struct allow_case *c = &allow_cases[i];
        struct pk_policy *p = build(c->rules, PK_ARRAY_LEN(c->rules), NS);
        struct pk_spiffe_id id;
        struct pk_err err = {{0}};
        char what[512];
        int r;

        describe(c, what, sizeof(what));
        r = pk_spiffe_parse(c->peer, strlen(c->peer), &id, &err);
        if (c->want == BAD_ID) {
            if (r != PK_E_INVALID || strstr(err.msg, c->frag) == NULL) {
                fail_msg("case %zu (%s): expected the ID refused with '%s', got %d: %s", i, what,
                         c->frag, r, err.msg);
            }
            pk_policy_free(p);
            continue;
        }
        if (r != 0) {
            fail_msg("case %zu (%s): ID does not parse: %s", i, what, err.msg);
        }
        err.msg[0] = '\0';
        bool allowed = pk_policy_allows(p, &id, &err);
        if (allowed != (c->want == ALLOW)) {
            fail_msg("case %zu (%s): expected %s, got %s (%s)", i, what,
                     c->want == ALLOW ? "allow" : "deny", allowed ? "allow" : "deny", err.msg);
        }
        if (allowed) {
            n_allow++;
        } else {
            n_deny++;
            /* Every deny names the peer. */
            assert_non_null(strstr(err.msg, c->peer));
            if (c->frag != NULL && strstr(err.msg, c->frag) == NULL) {
                fail_msg("case %zu (%s): message lacks '%s': %s", i, what, c->frag, err.msg);
            }
            /* A NULL err is fine and changes nothing. */
            assert_false(pk_policy_allows(p, &id, NULL));
        }
        pk_policy_free(p);
    }
    print_message("%zu allowed, %zu denied as expected\n", n_allow, n_deny);
}

/* ---- refused rules ---- */

struct refuse_case {
    enum pk_policy_kind kind;
    const char *value;
    const char *frag;
};

static const struct refuse_case refuse_cases[] = {
        {PK_ALLOW_TRUST_DOMAIN, "", "allow_trust_domain: empty value"},
        {PK_ALLOW_TRUST_DOMAIN, NULL, "allow_trust_domain: empty value"},
        {PK_ALLOW_TRUST_DOMAIN, "Example.test", "lower case"},
        {PK_ALLOW_TRUST_DOMAIN, "*.example.test", "wildcards are not supported"},
        {PK_ALLOW_TRUST_DOMAIN, "*", "wildcards are not supported"},
        {PK_ALLOW_TRUST_DOMAIN, "example.test:443", "port"},
        {PK_ALLOW_TRUST_DOMAIN, "spiffe://example.test", "allow_trust_domain"},
        {PK_ALLOW_TRUST_DOMAIN, "example.test/ns", "trust domain may only"},
        {PK_ALLOW_NAMESPACE, "", "allow_namespace: empty value"},
        {PK_ALLOW_NAMESPACE, "*", "allow_namespace: namespace: a path segment may only"},
        {PK_ALLOW_NAMESPACE, "pr*d", "path segment may only"},
        {PK_ALLOW_NAMESPACE, "a/b", "path segment may only"},
        {PK_ALLOW_NAMESPACE, "..", "'.' or '..'"},
        {PK_ALLOW_NAMESPACE, "a b", "path segment may only"},
        {PK_ALLOW_APP_ID, "", "allow_app_id: empty value"},
        {PK_ALLOW_APP_ID, "a/b/c", "expected APP or NAMESPACE/APP"},
        {PK_ALLOW_APP_ID, "/app", "allow_app_id: '/app' has an empty namespace"},
        {PK_ALLOW_APP_ID, "ns/", "'ns/' has an empty app id"},
        {PK_ALLOW_APP_ID, "/", "has an empty namespace"},
        {PK_ALLOW_APP_ID, "fr*nt", "app id: a path segment may only"},
        {PK_ALLOW_APP_ID, "*", "app id: a path segment may only"},
        {PK_ALLOW_APP_ID, "*/frontend", "namespace: a path segment may only"},
        {PK_ALLOW_APP_ID, "a b", "path segment may only"},
        {PK_ALLOW_SPIFFE_ID, "", "allow_spiffe_id: empty value"},
        {PK_ALLOW_SPIFFE_ID, "spiffe://example.test/ns/fr*nt/x", "whole path segment"},
        {PK_ALLOW_SPIFFE_ID, "spiffe://example.test/ns/*x/y", "whole path segment"},
        {PK_ALLOW_SPIFFE_ID, "spiffe://example.test/**", "whole path segment"},
        {PK_ALLOW_SPIFFE_ID, "spiffe://*.example.test/ns/a/b", "not allowed in the trust domain"},
        {PK_ALLOW_SPIFFE_ID, "spiffe://*/ns/a/b", "not allowed in the trust domain"},
        {PK_ALLOW_SPIFFE_ID, "spiffe://example.*/ns/a/b", "not allowed in the trust domain"},
        {PK_ALLOW_SPIFFE_ID, "spiffe://example.test/ns/*/", "empty path segment"},
        {PK_ALLOW_SPIFFE_ID, "spiffe://example.test/ns//*", "empty path segment"},
        {PK_ALLOW_SPIFFE_ID, "spiffe://example.test/ns/a/b/", "trailing slash"},
        {PK_ALLOW_SPIFFE_ID, "spiffe://example.test/ns/*/a b", "path segment may only"},
        {PK_ALLOW_SPIFFE_ID, "spiffe://example.test/../*", "'.' or '..'"},
        {PK_ALLOW_SPIFFE_ID, "http://example.test/ns/*/b", "does not start with"},
        {PK_ALLOW_SPIFFE_ID, "example.test/ns/a/b", "does not start with"},
        {PK_ALLOW_SPIFFE_ID, "spiffe://Example.test/ns/*/b", "lower case"},
        {PK_ALLOW_SPIFFE_ID, "spiffe://Example.test/ns/a/b", "lower case"},
        {PK_ALLOW_SPIFFE_ID, "spiffe://example.test:8443/ns/*/b", "port"},
        {PK_ALLOW_SPIFFE_ID, "spiffe:///ns/*/b", "trust domain"},
        {PK_EXPECT_SPIFFE_ID, "", "expect_spiffe_id: empty value"},
        {PK_EXPECT_SPIFFE_ID, "spiffe://example.test/ns/*/b", "exact SPIFFE ID is required"},
        {PK_EXPECT_SPIFFE_ID, "not-an-id", "does not start with"},
        {PK_EXPECT_SPIFFE_ID, "spiffe://example.test/ns/default/backend/", "trailing slash"},
        {(enum pk_policy_kind)99, "x", "unknown rule kind"},
};

static void refuse_table(void **state)
{
    struct pk_spiffe_id mine;

    (void)state;
    assert_int_equal(pk_spiffe_parse(FRONTEND, strlen(FRONTEND), &mine, NULL), 0);
    for (size_t i = 0; i < PK_ARRAY_LEN(refuse_cases); i++) {
        const struct refuse_case *c = &refuse_cases[i];
        struct pk_policy *p = pk_policy_new(TD, NS);
        struct pk_err err = {{0}};
        int r = pk_policy_add(p, c->kind, c->value, &err);

        if (r != PK_E_INVALID || strstr(err.msg, c->frag) == NULL) {
            fail_msg("case %zu (%d '%s'): expected PK_E_INVALID with '%s', got %d: %s", i,
                     (int)c->kind, c->value != NULL ? c->value : "(null)", c->frag, r, err.msg);
        }
        /* A refused rule leaves the policy as it was: here, the default. */
        assert_true(pk_policy_allows(p, &mine, NULL));
        /* And a NULL err is fine. */
        assert_int_equal(pk_policy_add(p, c->kind, c->value, NULL), PK_E_INVALID);
        pk_policy_free(p);
    }
}

/* expect_spiffe_id stands alone, whichever order the rules come in. */
static void refuse_expect_combinations(void **state)
{
    struct pk_policy *p = pk_policy_new(TD, NS);
    struct pk_spiffe_id backend, frontend;
    struct pk_err err = {{0}};

    (void)state;
    assert_int_equal(pk_spiffe_parse(BACKEND, strlen(BACKEND), &backend, NULL), 0);
    assert_int_equal(pk_spiffe_parse(FRONTEND, strlen(FRONTEND), &frontend, NULL), 0);
    assert_int_equal(pk_policy_add(p, PK_EXPECT_SPIFFE_ID, BACKEND, &err), 0);
    assert_int_equal(pk_policy_add(p, PK_ALLOW_TRUST_DOMAIN, TD, &err), PK_E_INVALID);
    assert_non_null(
            strstr(err.msg, "allow_trust_domain: cannot be combined with expect_spiffe_id"));
    assert_int_equal(pk_policy_add(p, PK_ALLOW_SPIFFE_ID, FRONTEND, &err), PK_E_INVALID);
    assert_int_equal(pk_policy_add(p, PK_EXPECT_SPIFFE_ID, FRONTEND, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "only one expected peer"));
    assert_int_equal(pk_policy_add(p, PK_EXPECT_SPIFFE_ID, BACKEND, &err), PK_E_INVALID);
    /* The refusals left the expect rule alone. */
    assert_true(pk_policy_allows(p, &backend, NULL));
    assert_false(pk_policy_allows(p, &frontend, NULL));
    pk_policy_free(p);

    p = pk_policy_new(TD, NS);
    assert_int_equal(pk_policy_add(p, PK_ALLOW_APP_ID, "frontend", &err), 0);
    assert_int_equal(pk_policy_add(p, PK_EXPECT_SPIFFE_ID, BACKEND, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "expect_spiffe_id: cannot be combined with allow_* rules"));
    assert_true(pk_policy_allows(p, &frontend, NULL));
    assert_false(pk_policy_allows(p, &backend, NULL));
    pk_policy_free(p);
}

/* When our own ID has no namespace, a bare app id cannot be placed. */
static void no_namespace(void **state)
{
    struct pk_policy *p = pk_policy_new(TD, NULL);
    struct pk_spiffe_id id;
    struct pk_err err = {{0}};

    (void)state;
    assert_int_equal(pk_policy_add(p, PK_ALLOW_APP_ID, "frontend", &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "write NAMESPACE/APP"));
    assert_int_equal(pk_policy_add(p, PK_ALLOW_APP_ID, "default/frontend", &err), 0);
    assert_int_equal(pk_spiffe_parse(FRONTEND, strlen(FRONTEND), &id, NULL), 0);
    assert_true(pk_policy_allows(p, &id, NULL));
    pk_policy_free(p);

    p = pk_policy_new(TD, "");
    assert_int_equal(pk_policy_add(p, PK_ALLOW_APP_ID, "frontend", &err), PK_E_INVALID);
    pk_policy_free(p);
    pk_policy_free(NULL);
}

/* A long rule list still gives a bounded message that ends in "...". */
static void long_summary(void **state)
{
    struct pk_policy *p = pk_policy_new(TD, NS);
    struct pk_spiffe_id id;
    struct pk_err err = {{0}};
    char td[64];

    (void)state;
    for (int i = 0; i < 100; i++) {
        snprintf(td, sizeof(td), "trust-domain-number-%03d.example", i);
        assert_int_equal(pk_policy_add(p, PK_ALLOW_TRUST_DOMAIN, td, &err), 0);
    }
    assert_int_equal(pk_spiffe_parse(FRONTEND, strlen(FRONTEND), &id, NULL), 0);
    assert_false(pk_policy_allows(p, &id, &err));
    assert_non_null(strstr(err.msg, "trust-domain-number-000.example"));
    assert_non_null(strstr(err.msg, "..."));
    assert_true(strlen(err.msg) < sizeof(err.msg));
    /* The last rule, cut from the message, still applies. */
    snprintf(td, sizeof(td), "spiffe://trust-domain-number-%03d.example/x", 99);
    assert_int_equal(pk_spiffe_parse(td, strlen(td), &id, NULL), 0);
    assert_true(pk_policy_allows(p, &id, NULL));
    pk_policy_free(p);
}

/* ---- certificates ---- */

/* A root and an issuer signed by it, in the Dapr Sentry profile. */
struct pki {
    enum pk_key_type type;
    struct pk_key *root_key;
    struct pk_key *iss_key;
    struct pk_cert *root;
    struct pk_cert *iss;
};

static struct pki p256, ed;

static void pki_make(struct pki *p, enum pk_key_type type)
{
    time_t now = time(NULL);
    struct pk_cert_template rt = {
            .subject_o = TD,
            .not_before = now - 900,
            .not_after = now + 365 * 86400,
            .is_ca = true,
            .path_len = -1,
            .key_usage = PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN,
            .subject_key_id = true,
    };
    struct pk_cert_template it = rt;

    it.subject_o = ISSUER_O;
    it.key_usage = PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN | PK_KU_CRL_SIGN;
    memset(p, 0, sizeof(*p));
    p->type = type;
    assert_int_equal(pk_key_generate(type, &p->root_key, NULL), 0);
    assert_int_equal(pk_key_generate(type, &p->iss_key, NULL), 0);
    p->root = issue(&rt, p->root_key, NULL, p->root_key);
    p->iss = issue(&it, p->iss_key, p->root, p->root_key);
}

static void pki_free(struct pki *p)
{
    pk_key_free(p->root_key);
    pk_key_free(p->iss_key);
    pk_cert_free(p->root);
    pk_cert_free(p->iss);
}

/* What Sentry 1.12+ issues: empty subject, critical URI SAN, no BasicConstraints. */
static struct pk_cert_template leaf_tmpl(const char *uri)
{
    time_t now = time(NULL);
    struct pk_cert_template t = {
            .not_before = now - 60,
            .not_after = now + 86400,
            .key_usage = PK_KU_DIGITAL_SIGNATURE,
            .ext_key_usage = PK_EKU_SERVER_AUTH | PK_EKU_CLIENT_AUTH,
            .uri_san = uri,
    };
    return t;
}

static struct pk_cert *leaf_make(const struct pki *p, const struct pk_cert_template *t)
{
    struct pk_key *key = NULL;
    struct pk_cert *cert;

    assert_int_equal(pk_key_generate(p->type, &key, NULL), 0);
    cert = issue(t, key, p->iss, p->iss_key);
    pk_key_free(key);
    return cert;
}

/* pk_peer_check must refuse cert at now with code and a message containing frag, and leave
 * the output alone. */
static void expect_check_refused(const struct pk_cert *cert, time_t now, int code, const char *frag)
{
    struct pk_spiffe_id id;
    struct pk_err err = {{0}};
    int r;

    memset(&id, 0x5a, sizeof(id));
    r = pk_peer_check(cert, now, &id, &err);
    if (r != code || strstr(err.msg, frag) == NULL) {
        fail_msg("expected %d (%s) with '%s', got %d: %s", code, pk_err_str(code), frag, r,
                 err.msg);
    }
    assert_int_equal((unsigned char)id.uri[0], 0x5a);
}

static void expect_leaf_refused(const struct pki *p, const struct pk_cert_template *t, int code,
                                const char *frag)
{
    struct pk_cert *cert = leaf_make(p, t);

    expect_check_refused(cert, time(NULL), code, frag);
    pk_cert_free(cert);
}

static int setup(void **state)
{
    (void)state;
    if (tmpdir_create("policytest") != 0) {
        return -1;
    }
    pki_make(&p256, PK_KEY_P256);
    pki_make(&ed, PK_KEY_ED25519);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pki_free(&p256);
    pki_free(&ed);
    return tmpdir_remove();
}

/* A leaf that pk_cert_issue cannot write, signed by p256's issuer with openssl: keyalg are
 * genpkey options, ext an -extfile. */
static struct pk_cert *openssl_leaf(const char *name, const char *keyalg, const char *ext)
{
    struct pk_buf pem;
    struct pk_certs certs = {0};
    struct pk_slice der = pk_cert_der(p256.iss);
    struct pk_err err = {{0}};
    struct pk_cert *cert;
    char file[64];

    pk_buf_init(&pem, 1 << 16);
    assert_int_equal(pk_pem_encode("CERTIFICATE", der.ptr, der.len, &pem), 0);
    write_file("iss.pem", pem.data, pem.len);
    pk_buf_free(&pem);
    pk_buf_init_secret(&pem, 4096);
    assert_int_equal(pk_key_to_pem(p256.iss_key, &pem), 0);
    write_file("iss.key", pem.data, pem.len);
    pk_buf_free(&pem);
    write_file("leaf.ext", ext, strlen(ext));
    sh("openssl genpkey %s -out %s.key", keyalg, name);
    sh("openssl req -new -key %s.key -subj /CN=%s -out %s.csr", name, name, name);
    sh("openssl x509 -req -in %s.csr -CA iss.pem -CAkey iss.key -set_serial 0x1234 -days 1 "
       "-extfile leaf.ext -out %s.pem",
       name, name);
    snprintf(file, sizeof(file), "%s.pem", name);
    slurp(file, &pem);
    assert_int_equal(pk_certs_parse_pem(pem.data, pem.len, file, &certs, &err), 0);
    pk_buf_free(&pem);
    assert_int_equal(certs.n, 1);
    cert = certs.v[0]; /* taken from the list, which is freed empty */
    certs.n = 0;
    pk_certs_clear(&certs);
    return cert;
}

/* ---- pk_peer_check ---- */

static void check_good(const struct pki *p, unsigned key_usage)
{
    struct pk_cert_template t = leaf_tmpl(FRONTEND);
    struct pk_cert *cert;
    struct pk_spiffe_id id;
    struct pk_err err = {{0}};
    int r;

    t.key_usage = key_usage;
    cert = leaf_make(p, &t);
    /* The Sentry profile, as A00 describes it. */
    assert_string_equal(pk_cert_subject(cert), "");
    assert_false(pk_cert_has_basic_constraints(cert));
    assert_true(pk_cert_san_critical(cert));
    r = pk_peer_check(cert, time(NULL), &id, &err);
    if (r != 0) {
        fail_msg("pk_peer_check: %d %s", r, err.msg);
    }
    assert_string_equal(id.uri, FRONTEND);
    assert_string_equal(id.trust_domain, TD);
    /* The copy's path points into its own uri. */
    assert_ptr_equal(id.path, id.uri + strlen("spiffe://" TD));
    assert_string_equal(id.path, "/ns/default/frontend");
    assert_true(id.is_workload);
    assert_string_equal(id.namespace_, "default");
    assert_string_equal(id.app_id, "frontend");
    pk_cert_free(cert);
}

static void good_p256(void **state)
{
    (void)state;
    check_good(&p256, PK_KU_DIGITAL_SIGNATURE);
    check_good(&p256, PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_ENCIPHERMENT);
    check_good(&p256, 0); /* no key usage extension at all */
}

static void good_ed25519(void **state)
{
    (void)state;
    check_good(&ed, PK_KU_DIGITAL_SIGNATURE);
}

static void refuse_no_uri(void **state)
{
    struct pk_cert_template t = leaf_tmpl(NULL);

    (void)state;
    t.subject_cn = "no-uri";
    expect_leaf_refused(&p256, &t, PK_E_INVALID,
                        "peer certificate has no URI SAN (subject \"CN=no-uri\")");
}

static void refuse_two_uris(void **state)
{
    (void)state;
    static const char ext[] =
            "subjectAltName=critical,URI:" FRONTEND ",URI:" BACKEND "\n"
            "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n";
    struct pk_cert *cert =
            openssl_leaf("two", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256", ext);

    assert_int_equal(pk_cert_uri_count(cert), 2);
    expect_check_refused(cert, time(NULL), PK_E_INVALID,
                         "peer certificate has 2 URI SANs ('" FRONTEND "', '" BACKEND "')");
    pk_cert_free(cert);
}

static void refuse_non_spiffe_uri(void **state)
{
    struct pk_cert_template t = leaf_tmpl("https://example.test/ns/default/frontend");

    (void)state;
    expect_leaf_refused(&p256, &t, PK_E_INVALID,
                        "peer certificate's URI SAN is not a SPIFFE ID: SPIFFE ID does not start");
    t.uri_san = "spiffe://example.test/ns/default/";
    expect_leaf_refused(&p256, &t, PK_E_INVALID, "URI SAN is not a SPIFFE ID");
    t.uri_san = "spiffe://EXAMPLE.test/ns/default/frontend";
    expect_leaf_refused(&p256, &t, PK_E_INVALID, "lower case");
    t.uri_san = "spiffe://example.test/ns/*/frontend";
    expect_leaf_refused(&p256, &t, PK_E_INVALID, "URI SAN is not a SPIFFE ID");
}

static void refuse_ca_leaf(void **state)
{
    struct pk_cert_template t = leaf_tmpl(FRONTEND);

    (void)state;
    t.is_ca = true;
    t.path_len = -1;
    t.key_usage = PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN;
    expect_leaf_refused(&p256, &t, PK_E_INVALID, "peer certificate is a CA certificate");
    expect_leaf_refused(&ed, &t, PK_E_INVALID, "peer certificate is a CA certificate");
}

static void refuse_signing_usage(void **state)
{
    struct pk_cert_template t = leaf_tmpl(FRONTEND);

    (void)state;
    t.key_usage = PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN;
    expect_leaf_refused(&p256, &t, PK_E_INVALID, "peer certificate has key usage keyCertSign");
    t.key_usage = PK_KU_DIGITAL_SIGNATURE | PK_KU_CRL_SIGN;
    expect_leaf_refused(&p256, &t, PK_E_INVALID, "peer certificate has key usage cRLSign");
    t.key_usage = PK_KU_KEY_CERT_SIGN | PK_KU_CRL_SIGN;
    expect_leaf_refused(&ed, &t, PK_E_INVALID,
                        "peer certificate has key usage keyCertSign and cRLSign");
}

static void refuse_no_digital_signature(void **state)
{
    struct pk_cert_template t = leaf_tmpl(FRONTEND);

    (void)state;
    t.key_usage = PK_KU_KEY_ENCIPHERMENT;
    expect_leaf_refused(&p256, &t, PK_E_INVALID, "key usage lacks digitalSignature");
    t.key_usage = PK_KU_KEY_AGREEMENT;
    expect_leaf_refused(&p256, &t, PK_E_INVALID, "key usage lacks digitalSignature");
    expect_leaf_refused(&ed, &t, PK_E_INVALID, "key usage lacks digitalSignature");
}

static void refuse_key_type(void **state)
{
    (void)state;
    static const char ext[] = "subjectAltName=critical,URI:" FRONTEND "\n"
                              "keyUsage=critical,digitalSignature\n";
    struct pk_cert *cert =
            openssl_leaf("p384", "-algorithm EC -pkeyopt ec_paramgen_curve:P-384", ext);

    assert_int_equal(pk_cert_key_type(cert), PK_KEY_OTHER);
    expect_check_refused(cert, time(NULL), PK_E_UNSUPPORTED,
                         "peer certificate has a key of type other, not P-256 or Ed25519");
    pk_cert_free(cert);
}

/* Validity at the given clock, both ends included (RFC 5280 §4.1.2.5), no skew. */
static void validity(void **state)
{
    struct pk_cert_template t = leaf_tmpl(FRONTEND);
    struct pk_cert *cert;
    struct pk_spiffe_id id;

    (void)state;
    cert = leaf_make(&ed, &t);
    assert_int_equal(pk_peer_check(cert, t.not_before, &id, NULL), 0);
    assert_int_equal(pk_peer_check(cert, t.not_after, &id, NULL), 0);
    expect_check_refused(cert, t.not_after + 1, PK_E_EXPIRED,
                         "peer certificate has expired: not after");
    expect_check_refused(cert, t.not_after + 86400, PK_E_EXPIRED, "has expired");
    expect_check_refused(cert, t.not_before - 1, PK_E_NOTYETVALID,
                         "peer certificate is not yet valid: not before");
    pk_cert_free(cert);

    /* Expired or not yet valid by the wall clock. */
    t = leaf_tmpl(FRONTEND);
    t.not_before = time(NULL) - 7200;
    t.not_after = time(NULL) - 1;
    expect_leaf_refused(&p256, &t, PK_E_EXPIRED, "has expired");
    t = leaf_tmpl(FRONTEND);
    t.not_before = time(NULL) + 3600;
    expect_leaf_refused(&p256, &t, PK_E_NOTYETVALID, "is not yet valid");
}

/* ---- name constraints on URIs ---- */

/* A self-signed CA with the given nameConstraints value (openssl -addext syntax). */
static struct pk_cert *nc_ca(const char *name, const char *constraints)
{
    struct pk_buf pem;
    struct pk_certs certs = {0};
    struct pk_err err = {{0}};
    struct pk_cert *cert;
    char file[64];

    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s.key "
       "-subj /O=%s -days 1 -addext basicConstraints=critical,CA:TRUE "
       "-addext keyUsage=critical,keyCertSign -addext 'nameConstraints=critical,%s' -out %s.pem",
       name, name, constraints, name);
    snprintf(file, sizeof(file), "%s.pem", name);
    slurp(file, &pem);
    assert_int_equal(pk_certs_parse_pem(pem.data, pem.len, file, &certs, &err), 0);
    pk_buf_free(&pem);
    cert = certs.v[0];
    certs.n = 0;
    pk_certs_clear(&certs);
    assert_true(pk_cert_has_name_constraints(cert));
    return cert;
}

/* (constraints, URI) -> result, RFC 5280 §4.2.1.10 on the URI's host. */
static void uri_name_constraints(void **state)
{
    static const struct {
        const char *constraints;
        const char *uri;
        int want;
    } cases[] = {
            {"permitted;URI:example.test", "spiffe://example.test/ns/a/b", 0},
            {"permitted;URI:example.test", "spiffe://other.test/ns/a/b", PK_E_UNTRUSTED},
            {"permitted;URI:example.test", "spiffe://sub.example.test/ns/a/b", PK_E_UNTRUSTED},
            {"permitted;URI:example.test", "spiffe://example.test.evil/ns/a/b", PK_E_UNTRUSTED},
            {"permitted;URI:.example.test", "spiffe://sub.example.test/x", 0},
            {"permitted;URI:.example.test", "spiffe://example.test/x", PK_E_UNTRUSTED},
            {"permitted;URI:.example.test", "spiffe://evilexample.test/x", PK_E_UNTRUSTED},
            {"permitted;URI:EXAMPLE.test", "spiffe://example.test/x", 0},
            {"excluded;URI:bad.test", "spiffe://bad.test/x", PK_E_UNTRUSTED},
            {"excluded;URI:bad.test", "spiffe://good.test/x", 0},
            {"permitted;URI:a.test,permitted;URI:b.test", "spiffe://b.test/x", 0},
            /* Forms wolfSSL evaluates leave URIs alone... */
            {"permitted;DNS:example.test", "spiffe://other.test/x", 0},
            /* ... and forms nobody evaluates fail closed. */
            {"permitted;IP:10.0.0.0/255.0.0.0", "spiffe://example.test/x", PK_E_UNSUPPORTED},
    };
    struct pk_err err = {{0}};
    char name[32];

    (void)state;
    for (size_t i = 0; i < PK_ARRAY_LEN(cases); i++) {
        snprintf(name, sizeof(name), "nc%zu", i);
        struct pk_cert *ca = nc_ca(name, cases[i].constraints);
        int r = pk_cert_name_constraints_allow_uri(ca, cases[i].uri, &err);
        if (r != cases[i].want) {
            fail_msg("%s with %s: %d (%s), want %d", cases[i].uri, cases[i].constraints, r, err.msg,
                     cases[i].want);
        }
        if (r == PK_E_UNTRUSTED) {
            assert_non_null(strstr(err.msg, "violates the name constraints"));
        }
        pk_cert_free(ca);
    }
}

/* ---- pk_policy_authorize ---- */

/* (EKU of the leaf) -> allowed inbound (client), allowed outbound (server). */
static void extended_key_usage(void **state)
{
    static const struct {
        unsigned eku; /* 0 = no extension */
        bool inbound;
        bool outbound;
    } cases[] = {
            {0, true, true},
            {PK_EKU_CLIENT_AUTH | PK_EKU_SERVER_AUTH, true, true},
            {PK_EKU_CLIENT_AUTH, true, false},
            {PK_EKU_SERVER_AUTH, false, true},
            {PK_EKU_ANY, true, true},
    };
    struct pk_policy *in = pk_policy_new(TD, NS);
    struct pk_policy *out = pk_policy_new(TD, NS);
    struct pk_err err = {{0}};

    (void)state;
    assert_int_equal(pk_policy_add(out, PK_EXPECT_SPIFFE_ID, FRONTEND, &err), 0);
    for (size_t i = 0; i < PK_ARRAY_LEN(cases); i++) {
        struct pk_cert_template t = leaf_tmpl(FRONTEND);
        t.ext_key_usage = cases[i].eku;
        struct pk_cert *cert = leaf_make(&p256, &t);
        int r_in = pk_policy_authorize(in, cert, NULL, 0, &err);
        if ((r_in == 0) != cases[i].inbound) {
            fail_msg("EKU %#x inbound: %d %s", cases[i].eku, r_in, err.msg);
        }
        if (r_in != 0) {
            assert_int_equal(r_in, PK_E_INVALID);
            assert_non_null(strstr(err.msg, "extended key usage does not include clientAuth"));
        }
        int r_out = pk_policy_authorize(out, cert, NULL, 0, &err);
        if ((r_out == 0) != cases[i].outbound) {
            fail_msg("EKU %#x outbound: %d %s", cases[i].eku, r_out, err.msg);
        }
        if (r_out != 0) {
            assert_non_null(strstr(err.msg, "extended key usage does not include serverAuth"));
        }
        pk_cert_free(cert);
    }
    /* A purpose nobody here serves (codeSigning): neither way. */
    static const char ext[] = "subjectAltName=critical,URI:" FRONTEND "\n"
                              "keyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n";
    struct pk_cert *cs =
            openssl_leaf("codesign", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256", ext);
    assert_int_equal(pk_policy_authorize(in, cs, NULL, 0, &err), PK_E_INVALID);
    assert_int_equal(pk_policy_authorize(out, cs, NULL, 0, &err), PK_E_INVALID);
    pk_cert_free(cs);
    pk_policy_free(in);
    pk_policy_free(out);
}

static void authorize(void **state)
{
    struct pk_cert_template t = leaf_tmpl(FRONTEND);
    struct pk_cert *good = leaf_make(&p256, &t);
    struct pk_policy *p = pk_policy_new(TD, NS);
    struct pk_policy *other = pk_policy_new(TD, NS);
    struct pk_err err = {{0}};
    char peer_id[256];
    char small[10];
    struct pk_cert *ca;

    (void)state;
    memset(peer_id, 'x', sizeof(peer_id));
    assert_int_equal(pk_policy_authorize(p, good, peer_id, sizeof(peer_id), &err), 0);
    assert_string_equal(peer_id, FRONTEND);
    /* A buffer too small for the ID gets as much as fits, NUL-terminated. */
    assert_int_equal(pk_policy_authorize(p, good, small, sizeof(small), &err), 0);
    assert_string_equal(small, "spiffe://");
    assert_int_equal(pk_policy_authorize(p, good, NULL, 0, &err), 0);

    /* Denied by the rules: PK_E_DENIED, and peer_id names the peer refused (for the log). */
    assert_int_equal(pk_policy_add(other, PK_ALLOW_APP_ID, "backend", &err), 0);
    memset(peer_id, 0, sizeof(peer_id));
    assert_int_equal(pk_policy_authorize(other, good, peer_id, sizeof(peer_id), &err), PK_E_DENIED);
    assert_non_null(strstr(err.msg, "peer '" FRONTEND "' is not allowed: allowed are app id "
                                    "'default/backend' of 'example.test'"));
    assert_string_equal(peer_id, FRONTEND);
    memset(peer_id, 0, sizeof(peer_id));

    /* Refused by the leaf check before the rules are consulted. */
    t.is_ca = true;
    t.path_len = -1;
    t.key_usage = PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN;
    ca = leaf_make(&p256, &t);
    assert_int_equal(pk_policy_authorize(p, ca, peer_id, sizeof(peer_id), &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "is a CA certificate"));
    assert_string_equal(peer_id, "");

    /* Expired by the wall clock. */
    t = leaf_tmpl(FRONTEND);
    t.not_before = time(NULL) - 7200;
    t.not_after = time(NULL) - 10;
    pk_cert_free(ca);
    ca = leaf_make(&ed, &t);
    assert_int_equal(pk_policy_authorize(p, ca, peer_id, sizeof(peer_id), &err), PK_E_EXPIRED);

    pk_cert_free(ca);
    pk_cert_free(good);
    pk_policy_free(p);
    pk_policy_free(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(allow_table),
            cmocka_unit_test(refuse_table),
            cmocka_unit_test(refuse_expect_combinations),
            cmocka_unit_test(no_namespace),
            cmocka_unit_test(long_summary),
            cmocka_unit_test(good_p256),
            cmocka_unit_test(good_ed25519),
            cmocka_unit_test(refuse_no_uri),
            cmocka_unit_test(refuse_two_uris),
            cmocka_unit_test(refuse_non_spiffe_uri),
            cmocka_unit_test(refuse_ca_leaf),
            cmocka_unit_test(refuse_signing_usage),
            cmocka_unit_test(refuse_no_digital_signature),
            cmocka_unit_test(refuse_key_type),
            cmocka_unit_test(extended_key_usage),
            cmocka_unit_test(uri_name_constraints),
            cmocka_unit_test(validity),
            cmocka_unit_test(authorize),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
