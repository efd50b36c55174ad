/* SPDX-License-Identifier: Apache-2.0 */
/* picket: fuzz target for the inbound policy's rules and decisions.
 *
 * Targets: pk_policy_add (every rule kind), pk_policy_allows, with pk_spiffe_parse and
 * pk_spiffe_match as oracles. The input is a pattern, a NUL byte and a peer ID; without a NUL
 * the whole input is both. Besides memory safety it checks: every refusal is PK_E_INVALID with
 * a message; an allow_spiffe_id pattern without `*' is accepted exactly when it parses as a
 * SPIFFE ID, and one with `*' is accepted only if replacing each `*' segment by a name makes it
 * one (so `*' is only ever a whole path segment, never in the trust domain); the decision of a
 * one-pattern policy is pk_spiffe_match's, a pattern without `*' allows only the very same ID,
 * and an allowed ID has as many segments as the pattern and the same trust domain; an accepted
 * expect_spiffe_id allows exactly its ID; a deny message names the peer; and a policy with an
 * expect rule refuses every other rule. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/spiffe.h"
#include "fuzz.h"
#include "proxy/policy.h"

static void check(int cond)
{
    if (!cond) {
        abort();
    }
}

static size_t count(const char *s, char c)
{
    size_t n = 0;

    for (; *s != '\0'; s++) {
        n += *s == c;
    }
    return n;
}

/* The pattern with every whole "*" segment replaced by "x" (same length), or NULL when `*'
 * appears anywhere else. */
static char *fill_wildcards(const char *pat)
{
    size_t len = strlen(pat);
    char *out = malloc(len + 1);

    check(out != NULL);
    memcpy(out, pat, len + 1);
    for (size_t i = 0; i < len; i++) {
        if (out[i] != '*') {
            continue;
        }
        bool whole = i > 0 && out[i - 1] == '/' && (i + 1 == len || out[i + 1] == '/');
        /* Not in the trust domain: some '/' after "spiffe://" must come before it. */
        const char *slash = len > 9 ? memchr(out + 9, '/', len - 9) : NULL;
        if (!whole || slash == NULL || out + i < slash) {
            free(out);
            return NULL;
        }
        out[i] = 'x';
    }
    return out;
}

static void add_rule(struct pk_policy *p, enum pk_policy_kind kind, const char *value, int *r_out)
{
    struct pk_err err;

    err.msg[0] = '\0';
    int r = pk_policy_add(p, kind, value, &err);
    check(r == 0 || (r == PK_E_INVALID && err.msg[0] != '\0'));
    *r_out = r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t pat_len = nul != NULL ? (size_t)(nul - data) : size;
    const char *id_text = nul != NULL ? (const char *)nul + 1 : (const char *)data;
    size_t id_len = nul != NULL ? size - pat_len - 1 : size;
    static struct pk_spiffe_id id, as_id;
    struct pk_policy *p;
    struct pk_err err;
    bool have_id;
    char *pat;
    int r;

    /* Rule values are C strings: the pattern stops at the first NUL. */
    pat = malloc(pat_len + 1);
    check(pat != NULL);
    memcpy(pat, data, pat_len);
    pat[pat_len] = '\0';
    have_id = pk_spiffe_parse(id_text, id_len, &id, NULL) == 0;

    /* allow_spiffe_id alone. */
    p = pk_policy_new("example.test", "default");
    add_rule(p, PK_ALLOW_SPIFFE_ID, pat, &r);
    bool parses = pk_spiffe_parse(pat, pat_len, &as_id, NULL) == 0;
    if (strchr(pat, '*') == NULL) {
        check((r == 0) == parses);
    } else if (r == 0) {
        char *filled = fill_wildcards(pat);
        check(filled != NULL);
        check(pk_spiffe_parse(filled, strlen(filled), &as_id, NULL) == 0);
        free(filled);
    }
    if (r == 0 && have_id) {
        err.msg[0] = '\0';
        bool allowed = pk_policy_allows(p, &id, &err);
        check(allowed == pk_spiffe_match(&id, pat));
        if (allowed) {
            check(count(id.path, '/') == count(pat, '/') - 2);
            size_t td_len = strlen(id.trust_domain);
            check(strncmp(pat + 9, id.trust_domain, td_len) == 0);
            check(pat[9 + td_len] == '/' || pat[9 + td_len] == '\0');
            if (strchr(pat, '*') == NULL) {
                check(strcmp(pat, id.uri) == 0);
            }
        } else {
            check(strstr(err.msg, "is not allowed") != NULL);
        }
    }
    /* With the pattern accepted, nothing may join an expect rule, nor it them. */
    if (r == 0) {
        add_rule(p, PK_EXPECT_SPIFFE_ID, "spiffe://example.test/ns/default/x", &r);
        check(r != 0);
    }
    pk_policy_free(p);

    /* expect_spiffe_id alone: exactly one ID. */
    p = pk_policy_new("example.test", "default");
    add_rule(p, PK_EXPECT_SPIFFE_ID, pat, &r);
    check((r == 0) == (parses && strchr(pat, '*') == NULL));
    if (r == 0) {
        if (have_id) {
            check(pk_policy_allows(p, &id, NULL) == (strcmp(id.uri, pat) == 0));
        }
        check(pk_policy_allows(p, &as_id, NULL));
        add_rule(p, PK_ALLOW_SPIFFE_ID, pat, &r);
        check(r != 0);
        add_rule(p, PK_ALLOW_TRUST_DOMAIN, "example.test", &r);
        check(r != 0);
    }
    pk_policy_free(p);

    /* The other kinds, then the default, as a combined policy. */
    p = pk_policy_new("example.test", "default");
    add_rule(p, PK_ALLOW_TRUST_DOMAIN, pat, &r);
    if (r == 0) {
        check(pk_spiffe_check_trust_domain(pat, NULL) == 0);
    }
    add_rule(p, PK_ALLOW_NAMESPACE, pat, &r);
    if (r == 0) {
        check(pk_spiffe_check_segment(pat, "namespace", NULL) == 0);
    }
    add_rule(p, PK_ALLOW_APP_ID, pat, &r);
    if (r == 0) {
        check(count(pat, '/') <= 1);
    }
    if (have_id) {
        err.msg[0] = '\0';
        if (!pk_policy_allows(p, &id, &err)) {
            check(strstr(err.msg, "is not allowed") != NULL);
        }
    }
    pk_policy_free(p);

    /* Our own identity without a namespace. */
    p = pk_policy_new("example.test", NULL);
    add_rule(p, PK_ALLOW_APP_ID, pat, &r);
    if (r == 0) {
        check(strchr(pat, '/') != NULL);
    }
    if (have_id) {
        (void)pk_policy_allows(p, &id, NULL);
    }
    pk_policy_free(p);

    free(pat);
    return 0;
}
