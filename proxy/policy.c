/* SPDX-License-Identifier: Apache-2.0 */
/* picket: who may talk to us — peer checks and authorization as pure functions.
 *
 * Implementation notes
 *
 * A policy is a list of rules, each kept in the form that makes matching a string comparison:
 * a trust domain, a namespace (of our trust domain), a whole SPIFFE ID (an app id rule is turned
 * into spiffe://<our td>/ns/<ns>/<app> when it is added, an expect rule is one already) or a
 * pattern for pk_spiffe_match. Peer IDs reaching pk_policy_allows were produced by
 * pk_spiffe_parse, which accepts only one spelling of each ID (lower-case trust domain, no
 * percent-encoding, no "." segments, no trailing slash), so byte equality is identity equality
 * and "example.test.evil" or "evilexample.test" never equal "example.test".
 *
 * "Namespace" and "app id" rules match only Dapr's workload form, exactly /ns/<ns>/<app>
 * (pk_spiffe_id.is_workload): an ID with more or fewer segments is not an app of any
 * namespace. The default rule (no rule given) and trust-domain rules accept any path.
 *
 * Rules are validated when added, so a policy that exists has no rule that can never match
 * because of a typo; the matcher (pk_spiffe_match) still re-validates patterns on its own. */
#include "policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/key.h"
#include "common/log.h"
#include "common/mem.h"

/* Room for a quoted pattern or SPIFFE ID in a message. */
#define QUOTE_LEN 204

struct rule {
    enum pk_policy_kind kind;
    char *value; /* trust domain, namespace, full ID (app id and expect) or pattern */
    char *shown; /* as configured, for messages (app id rules: "ns/app") */
};

struct pk_policy {
    char *our_td;
    char *our_ns; /* NULL when our own ID has no namespace */
    struct rule *rules;
    size_t n_rules;
};

/* The configuration key of each rule kind, used to name the rule in messages. */
static const char *kind_key(enum pk_policy_kind kind)
{
    switch (kind) {
    case PK_ALLOW_TRUST_DOMAIN:
        return "allow_trust_domain";
    case PK_ALLOW_NAMESPACE:
        return "allow_namespace";
    case PK_ALLOW_APP_ID:
        return "allow_app_id";
    case PK_ALLOW_SPIFFE_ID:
        return "allow_spiffe_id";
    case PK_EXPECT_SPIFFE_ID:
        return "expect_spiffe_id";
    }
    return "unknown rule";
}

static void format_time(time_t t, char *out, size_t out_len)
{
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(out, out_len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(out, out_len, "@%lld", (long long)t);
    }
}

struct pk_policy *pk_policy_new(const char *our_trust_domain, const char *our_namespace)
{
    struct pk_policy *p;

    /* Both come from our own parsed SPIFFE ID (or the checked configuration), so a bad value
     * here is a programming error, not an input error. */
    PK_ASSERT(our_trust_domain != NULL &&
              pk_spiffe_check_trust_domain(our_trust_domain, NULL) == 0);
    PK_ASSERT(our_namespace == NULL || our_namespace[0] == '\0' ||
              pk_spiffe_check_segment(our_namespace, "namespace", NULL) == 0);
    p = pk_xcalloc(1, sizeof(*p));
    p->our_td = pk_xstrdup(our_trust_domain);
    if (our_namespace != NULL && our_namespace[0] != '\0') {
        p->our_ns = pk_xstrdup(our_namespace);
    }
    return p;
}

void pk_policy_free(struct pk_policy *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < p->n_rules; i++) {
        free(p->rules[i].value);
        free(p->rules[i].shown);
    }
    free(p->rules);
    free(p->our_td);
    free(p->our_ns);
    free(p);
}

/* ---- adding rules ---------------------------------------------------------------------------- */

/* Turn value into the rule to store (out->value, out->shown), or explain why it is refused. */
static int make_rule(const struct pk_policy *p, enum pk_policy_kind kind, const char *value,
                     struct rule *out, struct pk_err *err)
{
    char id_text[PK_SPIFFE_MAX_LEN + 1];
    char q[QUOTE_LEN];
    struct pk_spiffe_id id;
    const char *slash;
    char *ns = NULL;
    int r = 0;

    switch (kind) {
    case PK_ALLOW_TRUST_DOMAIN:
        if (strchr(value, '*') != NULL) {
            r = pk_err_set(err, PK_E_INVALID, "wildcards are not supported: '%s'",
                           pk_quote(q, sizeof(q), value, strlen(value)));
            goto out;
        }
        r = pk_spiffe_check_trust_domain(value, err);
        if (r == 0) {
            out->value = pk_xstrdup(value);
        }
        break;
    case PK_ALLOW_NAMESPACE:
        r = pk_spiffe_check_segment(value, "namespace", err);
        if (r == 0) {
            out->value = pk_xstrdup(value);
        }
        break;
    case PK_ALLOW_APP_ID:
        slash = strchr(value, '/');
        if (slash != NULL && strchr(slash + 1, '/') != NULL) {
            r = pk_err_set(err, PK_E_INVALID, "expected APP or NAMESPACE/APP, got '%s'",
                           pk_quote(q, sizeof(q), value, strlen(value)));
            goto out;
        }
        if (slash == value || (slash != NULL && slash[1] == '\0')) {
            r = pk_err_set(err, PK_E_INVALID, "'%s' has an empty %s",
                           pk_quote(q, sizeof(q), value, strlen(value)),
                           slash == value ? "namespace" : "app id");
            goto out;
        }
        if (slash == NULL && p->our_ns == NULL) {
            r = pk_err_set(err, PK_E_INVALID,
                           "'%s' names no namespace and our own SPIFFE ID has none; write "
                           "NAMESPACE/APP",
                           pk_quote(q, sizeof(q), value, strlen(value)));
            goto out;
        }
        ns = slash != NULL ? pk_xstrndup(value, (size_t)(slash - value)) : pk_xstrdup(p->our_ns);
        /* pk_spiffe_format_workload checks the namespace and the app id as path segments and
         * the length of the whole ID. */
        r = pk_spiffe_format_workload(id_text, sizeof(id_text), p->our_td, ns,
                                      slash != NULL ? slash + 1 : value, err);
        if (r == 0) {
            /* Messages show the namespace even when the rule left it implicit. */
            size_t n = strlen(ns) + 1 + strlen(slash != NULL ? slash + 1 : value) + 1;
            out->shown = pk_xmalloc(n);
            snprintf(out->shown, n, "%s/%s", ns, slash != NULL ? slash + 1 : value);
            out->value = pk_xstrdup(id_text);
        }
        break;
    case PK_ALLOW_SPIFFE_ID:
        r = pk_spiffe_check_pattern(value, err);
        if (r == 0) {
            out->value = pk_xstrdup(value);
        }
        break;
    case PK_EXPECT_SPIFFE_ID:
        if (strchr(value, '*') != NULL) {
            r = pk_err_set(err, PK_E_INVALID,
                           "an exact SPIFFE ID is required, '*' is not allowed: '%s'",
                           pk_quote(q, sizeof(q), value, strlen(value)));
            goto out;
        }
        r = pk_spiffe_parse(value, strnlen(value, PK_SPIFFE_MAX_LEN + 1), &id, err);
        if (r == 0) {
            out->value = pk_xstrdup(value);
        }
        break;
    default:
        r = pk_err_set(err, PK_E_INVALID, "unknown rule kind %d", (int)kind);
        break;
    }
out:
    free(ns);
    return r;
}

int pk_policy_add(struct pk_policy *p, enum pk_policy_kind kind, const char *value,
                  struct pk_err *err)
{
    struct rule rule = {.kind = kind};
    int r;

    PK_ASSERT(p != NULL);
    /* An empty value must not quietly widen or narrow the policy (an empty allow list would
     * otherwise fall back to the default): refuse it outright. */
    if (value == NULL || value[0] == '\0') {
        r = pk_err_set(err, PK_E_INVALID, "%s: empty value", kind_key(kind));
        goto out;
    }
    /* An outbound listener pins one peer; mixing in allow rules would make it unclear which
     * wins, so the combination is refused whichever comes first. */
    if (kind == PK_EXPECT_SPIFFE_ID && p->n_rules > 0) {
        r = pk_err_set(err, PK_E_INVALID,
                       p->rules[0].kind == PK_EXPECT_SPIFFE_ID
                               ? "%s: only one expected peer may be given"
                               : "%s: cannot be combined with allow_* rules",
                       kind_key(kind));
        goto out;
    }
    if (kind != PK_EXPECT_SPIFFE_ID && p->n_rules > 0 && p->rules[0].kind == PK_EXPECT_SPIFFE_ID) {
        r = pk_err_set(err, PK_E_INVALID, "%s: cannot be combined with expect_spiffe_id",
                       kind_key(kind));
        goto out;
    }
    r = make_rule(p, kind, value, &rule, err);
    if (r != 0) {
        r = pk_err_prefix(err, r, "%s", kind_key(kind));
        goto out;
    }
    if (rule.shown == NULL) {
        rule.shown = pk_xstrdup(value);
    }
    p->rules = pk_xrealloc(p->rules, (p->n_rules + 1) * sizeof(*p->rules));
    p->rules[p->n_rules++] = rule; /* the policy takes rule's strings */
    rule.value = NULL;
    rule.shown = NULL;
out:
    free(rule.value);
    free(rule.shown);
    return r;
}

/* ---- decisions ------------------------------------------------------------------------------- */

static bool rule_matches(const struct pk_policy *p, const struct rule *rule,
                         const struct pk_spiffe_id *peer)
{
    switch (rule->kind) {
    case PK_ALLOW_TRUST_DOMAIN:
        return strcmp(peer->trust_domain, rule->value) == 0;
    case PK_ALLOW_NAMESPACE:
        return peer->is_workload && strcmp(peer->trust_domain, p->our_td) == 0 &&
               strcmp(peer->namespace_, rule->value) == 0;
    case PK_ALLOW_APP_ID:
    case PK_EXPECT_SPIFFE_ID:
        return strcmp(peer->uri, rule->value) == 0;
    case PK_ALLOW_SPIFFE_ID:
        return pk_spiffe_match(peer, rule->value);
    }
    return false;
}

/* Append one "; "-separated item to a summary, marking a cut with "...". */
static void summary_add(char *out, size_t cap, size_t *len, const char *fmt, ...) PK_PRINTF(4, 5);
static void summary_add(char *out, size_t cap, size_t *len, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*len + 4 >= cap) {
        return; /* already cut */
    }
    if (*len > 0) {
        memcpy(out + *len, "; ", 2);
        *len += 2;
        out[*len] = '\0';
    }
    va_start(ap, fmt);
    n = vsnprintf(out + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        n = 0;
    }
    if ((size_t)n >= cap - *len) {
        memcpy(out + cap - 4, "...", 4);
        *len = cap;
        return;
    }
    *len += (size_t)n;
}

bool pk_policy_allows(const struct pk_policy *p, const struct pk_spiffe_id *peer,
                      struct pk_err *err)
{
    char q[QUOTE_LEN];
    char summary[640];
    size_t len = 0;

    PK_ASSERT(p != NULL && peer != NULL);
    if (p->n_rules == 0) {
        if (strcmp(peer->trust_domain, p->our_td) == 0) {
            return true;
        }
        pk_err_set(err, PK_E_DENIED,
                   "peer '%s' is not allowed: allowed are peers of our own trust domain '%s' "
                   "(no allow rule configured)",
                   pk_quote(q, sizeof(q), peer->uri, strlen(peer->uri)), p->our_td);
        return false;
    }
    for (size_t i = 0; i < p->n_rules; i++) {
        if (rule_matches(p, &p->rules[i], peer)) {
            return true;
        }
    }
    if (err == NULL) {
        return false;
    }
    if (p->rules[0].kind == PK_EXPECT_SPIFFE_ID) {
        pk_err_set(err, PK_E_DENIED, "peer '%s' is not the expected peer '%s'",
                   pk_quote(q, sizeof(q), peer->uri, strlen(peer->uri)), p->rules[0].value);
        return false;
    }
    summary[0] = '\0';
    for (size_t i = 0; i < p->n_rules; i++) {
        const struct rule *rule = &p->rules[i];
        switch (rule->kind) {
        case PK_ALLOW_TRUST_DOMAIN:
            summary_add(summary, sizeof(summary), &len, "trust domain '%s'", rule->shown);
            break;
        case PK_ALLOW_NAMESPACE:
            summary_add(summary, sizeof(summary), &len, "namespace '%s' of '%s'", rule->shown,
                        p->our_td);
            break;
        case PK_ALLOW_APP_ID:
            summary_add(summary, sizeof(summary), &len, "app id '%s' of '%s'", rule->shown,
                        p->our_td);
            break;
        case PK_ALLOW_SPIFFE_ID:
        case PK_EXPECT_SPIFFE_ID:
            summary_add(summary, sizeof(summary), &len, "SPIFFE ID '%s'", rule->shown);
            break;
        }
    }
    pk_err_set(err, PK_E_DENIED, "peer '%s' is not allowed: allowed are %s",
               pk_quote(q, sizeof(q), peer->uri, strlen(peer->uri)), summary);
    return false;
}

/* ---- the peer's leaf ------------------------------------------------------------------------- */

/* SPIFFE X.509-SVID §2: an SVID carries exactly one URI SAN, its SPIFFE ID. */
static int peer_spiffe_id(const struct pk_cert *leaf, struct pk_spiffe_id *id, struct pk_err *err)
{
    char q[QUOTE_LEN];
    char q2[QUOTE_LEN];
    size_t n_uris = pk_cert_uri_count(leaf);
    const char *uri;
    int r;

    if (n_uris == 0) {
        return pk_err_set(
                err, PK_E_INVALID, "peer certificate has no URI SAN (subject \"%s\")",
                pk_quote(q, sizeof(q), pk_cert_subject(leaf), strlen(pk_cert_subject(leaf))));
    }
    if (n_uris > 1) {
        return pk_err_set(
                err, PK_E_INVALID, "peer certificate has %zu URI SANs ('%s', '%s'%s)", n_uris,
                pk_quote(q, sizeof(q), pk_cert_uri(leaf, 0), strlen(pk_cert_uri(leaf, 0))),
                pk_quote(q2, sizeof(q2), pk_cert_uri(leaf, 1), strlen(pk_cert_uri(leaf, 1))),
                n_uris > 2 ? ", ..." : "");
    }
    uri = pk_cert_uri(leaf, 0);
    r = pk_spiffe_parse(uri, strlen(uri), id, err);
    if (r != 0) {
        return pk_err_prefix(err, r, "peer certificate's URI SAN is not a SPIFFE ID");
    }
    return 0;
}

/* RFC 5280 §4.1.2.5: the validity period includes both notBefore and notAfter. The TLS layer
 * has checked the chain already; this is the same clock, so no skew is added. */
static int peer_valid_now(const struct pk_cert *leaf, time_t now, const char *uri,
                          struct pk_err *err)
{
    char q[QUOTE_LEN];
    char when[32];
    char at[32];

    format_time(now, at, sizeof(at));
    if (now > pk_cert_not_after(leaf)) {
        format_time(pk_cert_not_after(leaf), when, sizeof(when));
        return pk_err_set(err, PK_E_EXPIRED,
                          "peer certificate has expired: not after %s, now %s: '%s'", when, at,
                          pk_quote(q, sizeof(q), uri, strlen(uri)));
    }
    if (now < pk_cert_not_before(leaf)) {
        format_time(pk_cert_not_before(leaf), when, sizeof(when));
        return pk_err_set(err, PK_E_NOTYETVALID,
                          "peer certificate is not yet valid: not before %s, now %s: '%s'", when,
                          at, pk_quote(q, sizeof(q), uri, strlen(uri)));
    }
    return 0;
}

int pk_peer_check(const struct pk_cert *leaf, time_t now, struct pk_spiffe_id *id_out,
                  struct pk_err *err)
{
    char q[QUOTE_LEN];
    struct pk_spiffe_id id;
    int r;

    PK_ASSERT(leaf != NULL && id_out != NULL);
    r = peer_spiffe_id(leaf, &id, err);
    if (r != 0) {
        return r;
    }
    /* SPIFFE X.509-SVID §4.1, §4.3: a leaf SVID must not be a CA and must not be able to sign
     * certificates or CRLs; without this any workload could mint IDs for others. */
    if (pk_cert_is_ca(leaf)) {
        return pk_err_set(err, PK_E_INVALID,
                          "peer certificate is a CA certificate (BasicConstraints CA:TRUE): '%s'",
                          pk_quote(q, sizeof(q), id.uri, strlen(id.uri)));
    }
    unsigned signs = pk_cert_has_key_usage(leaf)
                             ? pk_cert_key_usage(leaf) & (PK_KU_KEY_CERT_SIGN | PK_KU_CRL_SIGN)
                             : 0;
    if (signs != 0) {
        return pk_err_set(err, PK_E_INVALID, "peer certificate has key usage %s: '%s'",
                          signs == PK_KU_CRL_SIGN        ? "cRLSign"
                          : signs == PK_KU_KEY_CERT_SIGN ? "keyCertSign"
                                                         : "keyCertSign and cRLSign",
                          pk_quote(q, sizeof(q), id.uri, strlen(id.uri)));
    }
    /* The key signs the handshake (CertificateVerify): a key usage that leaves out
     * digitalSignature says it must not. wolfSSL checks this for TLS 1.2 ECDSA suites only. */
    if (pk_cert_has_key_usage(leaf) && (pk_cert_key_usage(leaf) & PK_KU_DIGITAL_SIGNATURE) == 0) {
        return pk_err_set(err, PK_E_INVALID,
                          "peer certificate's key usage lacks digitalSignature, which signing "
                          "the TLS handshake needs: '%s'",
                          pk_quote(q, sizeof(q), id.uri, strlen(id.uri)));
    }
    /* The key types Sentry issues (P-256; Ed25519 from 1.18) and nothing weaker or odder. */
    if (pk_cert_key_type(leaf) != PK_KEY_P256 && pk_cert_key_type(leaf) != PK_KEY_ED25519) {
        return pk_err_set(err, PK_E_UNSUPPORTED,
                          "peer certificate has a key of type %s, not P-256 or Ed25519: '%s'",
                          pk_key_type_name(pk_cert_key_type(leaf)),
                          pk_quote(q, sizeof(q), id.uri, strlen(id.uri)));
    }
    r = peer_valid_now(leaf, now, id.uri, err);
    if (r != 0) {
        return r;
    }
    /* id.path points into id.uri: a copy must point into its own. */
    *id_out = id;
    id_out->path = id_out->uri + (id.path - id.uri);
    return 0;
}

/* Extended key usage, when the leaf lists any: a peer we accepted (an inbound listener's
 * client) must be meant for client authentication, a server we connected to (an outbound
 * listener's, the one with an EXPECT rule) for server authentication; anyExtendedKeyUsage
 * serves both. No EKU extension means no restriction (RFC 5280 §4.2.1.12). wolfSSL applies
 * the same rule during the handshake; this keeps it true whatever the library was built with. */
static int check_purpose(const struct pk_policy *p, const struct pk_cert *leaf,
                         const struct pk_spiffe_id *id, struct pk_err *err)
{
    bool server = p->n_rules == 1 && p->rules[0].kind == PK_EXPECT_SPIFFE_ID;
    unsigned need = server ? PK_EKU_SERVER_AUTH : PK_EKU_CLIENT_AUTH;
    char q[QUOTE_LEN];

    if (!pk_cert_has_ext_key_usage(leaf) || (pk_cert_ext_key_usage(leaf) & (need | PK_EKU_ANY))) {
        return 0;
    }
    return pk_err_set(
            err, PK_E_INVALID, "peer certificate's extended key usage does not include %s: '%s'",
            server ? "serverAuth" : "clientAuth", pk_quote(q, sizeof(q), id->uri, strlen(id->uri)));
}

int pk_policy_authorize(void *ctx, const struct pk_cert *leaf, char *peer_id, size_t peer_id_len,
                        struct pk_err *err)
{
    const struct pk_policy *p = ctx;
    struct pk_spiffe_id id;
    int r;

    PK_ASSERT(p != NULL);
    r = pk_peer_check(leaf, time(NULL), &id, err);
    if (r != 0) {
        return r;
    }
    /* A valid SPIFFE ID from a verified chain: who the peer is, whether or not it may talk to
     * us, so that a refusal is logged with the peer it refused. */
    if (peer_id != NULL && peer_id_len > 0) {
        snprintf(peer_id, peer_id_len, "%s", id.uri);
    }
    r = check_purpose(p, leaf, &id, err);
    if (r != 0) {
        return r;
    }
    if (!pk_policy_allows(p, &id, err)) {
        return PK_E_DENIED;
    }
    return 0;
}
