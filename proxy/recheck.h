/* SPDX-License-Identifier: Apache-2.0 */
/* picket: does a live connection's peer still chain to the trust anchors?
 *
 * When the anchors change (a root rotation, or a compromised root removed), connections that
 * were verified against the old set are checked again: the peer's leaf and the certificates it
 * sent above it must chain to one of the new anchors. The leaf's own signature and checks were
 * done at the handshake and cannot change, so peers that sent the same certificates above a
 * leaf of the same issuer share one verification: a pass over many connections costs one chain
 * verification per distinct issuing path, not one per connection. */
#ifndef PK_PROXY_RECHECK_H
#define PK_PROXY_RECHECK_H

#include <stddef.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/tls.h"
#include "common/x509.h"

struct pk_recheck_entry;

/* One pass against one set of anchors. */
struct pk_recheck {
    const struct pk_certs *anchors; /* borrowed */
    struct pk_recheck_entry *memo;
    size_t n_memo;
};

/* Begin a pass against anchors (borrowed: must outlive the pass). */
void pk_recheck_begin(struct pk_recheck *rc, const struct pk_certs *anchors);

/* 0 when leaf with chain (what the peer sent, leaf first; both borrowed) chains to the anchors;
 * else pk_x509_verify_chain's code (PK_E_UNTRUSTED, PK_E_EXPIRED, ...) or PK_E_INVALID for a
 * chain that does not parse, with err saying why. */
int pk_recheck_peer(struct pk_recheck *rc, const struct pk_cert *leaf,
                    const struct pk_tls_peer_chain *chain, struct pk_err *err) PK_MUST_USE;

/* End the pass and free its memory. */
void pk_recheck_end(struct pk_recheck *rc);

/* Name constraints on the peer's SPIFFE ID (leaf's first URI SAN) along its path: every CA
 * certificate the peer sent (chain, leaf first) and the anchors whose subject issued the top
 * one. wolfSSL does not evaluate URI constraints, so this runs after every handshake: a byte
 * scan of what the peer sent and a flag per anchor when nothing is constrained (the usual
 * case). 0, or pk_cert_name_constraints_allow_uri's error (PK_E_UNTRUSTED, PK_E_UNSUPPORTED,
 * PK_E_INVALID), or PK_E_INVALID for a chain certificate that does not parse. */
int pk_peer_name_constraints(const struct pk_cert *leaf, const struct pk_tls_peer_chain *chain,
                             const struct pk_certs *anchors, struct pk_err *err) PK_MUST_USE;

#endif
