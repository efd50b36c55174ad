/* SPDX-License-Identifier: Apache-2.0 */
/* picket: who may talk to us — peer checks and authorization as pure functions.
 *
 * pk_peer_check: what a peer's leaf must be beyond a chain that TLS verified to the anchors:
 * exactly one URI SAN and it is a valid SPIFFE ID, not a CA, no keyCertSign or cRLSign, and
 * digitalSignature if it has a key usage at all, a P-256 or Ed25519 key, valid now (no extra
 * skew). pk_policy_authorize adds the purpose: when the leaf has an extended key usage, it
 * must include clientAuth for an inbound peer and serverAuth for an outbound one (or
 * anyExtendedKeyUsage); without the extension there is no restriction. Genuine Sentry certificates
 * (empty subject, no BasicConstraints) pass.
 *
 * struct pk_policy: an inbound listener's rules, OR-ed:
 *   allow_trust_domain TD   any workload of trust domain TD
 *   allow_namespace NS      any app of namespace NS in our trust domain
 *   allow_app_id APP        app APP in our namespace of our trust domain; "NS/APP" for another
 *                           namespace of our trust domain
 *   allow_spiffe_id PATTERN an exact SPIFFE ID, or one with `*` standing for exactly one whole
 *                           path segment (spiffe://td/ns/\*\/app) — never for part of one, never
 *                           in the trust domain
 * No rule at all means "peers in our own trust domain". A rule with an empty value is a
 * configuration error (pk_policy_add refuses it), so an empty policy never means "allow all".
 * allow_namespace and allow_app_id match only Dapr's workload form, exactly /ns/<ns>/<app>.
 * Trust domains and IDs are compared byte for byte: pk_spiffe_parse admits one spelling per ID
 * (lower-case trust domain, no percent-encoding), so example.test.evil, evilexample.test and
 * EXAMPLE.test never pass for example.test.
 * An outbound listener instead expects one exact ID (a single PK_EXPECT_SPIFFE_ID rule). */
#ifndef PK_PROXY_POLICY_H
#define PK_PROXY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/spiffe.h"
#include "common/x509.h"

enum pk_policy_kind {
    PK_ALLOW_TRUST_DOMAIN,
    PK_ALLOW_NAMESPACE,
    PK_ALLOW_APP_ID,
    PK_ALLOW_SPIFFE_ID,
    PK_EXPECT_SPIFFE_ID, /* outbound: exactly this ID */
};

struct pk_policy; /* immutable once built; shared read-only by every worker */

/* A new policy for our own identity (our trust domain and namespace decide the defaults). Both
 * strings are borrowed (copied). our_trust_domain must be a valid trust domain and our_namespace
 * NULL, "" (our ID has no namespace: then allow_app_id needs NS/APP) or a valid segment; anything
 * else is a programming error and aborts (PK_ASSERT). Never fails otherwise. */
struct pk_policy *pk_policy_new(const char *our_trust_domain, const char *our_namespace);
/* Takes p. NULL is fine. */
void pk_policy_free(struct pk_policy *p);

/* Add one rule (value borrowed, copied). PK_E_INVALID (err says why, starting with the rule's
 * config key) for a NULL or empty or malformed value: a bad trust domain, namespace or app id,
 * or a pattern that is not a SPIFFE ID or puts `*` anywhere but as a whole path segment. An
 * EXPECT rule excludes all other rules, including a second EXPECT. A refused rule leaves p as
 * it was. Not thread-safe: build the policy before sharing it. */
int pk_policy_add(struct pk_policy *p, enum pk_policy_kind kind, const char *value,
                  struct pk_err *err) PK_MUST_USE;

/* Allow or deny a verified peer ID (borrowed). On deny, err (may be NULL) names the ID and
 * summarises what is allowed, e.g. "peer `spiffe://a/ns/x/y' is not allowed: allowed are trust
 * domain `other.test'; namespace `prod' of `example.test'" (PK_E_DENIED). Thread-safe. */
bool pk_policy_allows(const struct pk_policy *p, const struct pk_spiffe_id *peer,
                      struct pk_err *err);

/* Check a peer's leaf (borrowed) as described above at time now, not_before <= now <=
 * not_after (RFC 5280 §4.1.2.5: both ends included, as in x509.c and wolfSSL); on success
 * *id_out is its SPIFFE ID, untouched otherwise. PK_E_INVALID (URI SAN count, not a SPIFFE ID,
 * CA, keyCertSign/cRLSign), PK_E_UNSUPPORTED (key type), PK_E_EXPIRED, PK_E_NOTYETVALID; err
 * begins "peer certificate ...". Thread-safe. */
int pk_peer_check(const struct pk_cert *leaf, time_t now, struct pk_spiffe_id *id_out,
                  struct pk_err *err) PK_MUST_USE;

/* Both: the pk_conn_authorize_fn for a listener (ctx is the struct pk_policy), at time(NULL).
 * Once the leaf passes pk_peer_check its ID is written to peer_id (may be NULL), cut to
 * peer_id_len - 1 bytes if longer (it is for logs; the decision used the whole ID), also when
 * the purpose or the rules then refuse the peer; when pk_peer_check fails, peer_id is untouched.
 * On failure the code is pk_peer_check's or PK_E_DENIED. */
int pk_policy_authorize(void *ctx, const struct pk_cert *leaf, char *peer_id, size_t peer_id_len,
                        struct pk_err *err);

#endif
