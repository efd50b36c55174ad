/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the immutable, refcounted workload identity snapshot (DESIGN.md "Identity handoff").
 *
 * A pk_identity holds everything a connection needs to speak mTLS as this workload: the private
 * key, the certificate chain (leaf first), the SPIFFE ID parsed from the leaf, the trust anchors,
 * and a ready-built server and client TLS context. It is checked completely before anyone sees
 * it (the leaf is a SPIFFE workload certificate, the key matches it, it is valid now, it chains
 * to the anchors, and a real TLS handshake between the two contexts succeeds), and it never
 * changes afterwards, so any thread may read it without locks while it holds a reference.
 *
 * The agent builds a new identity on every renewal or trust-anchor change and publishes it in a
 * pk_identity_slot, the one place the current identity is kept and read from (the agent holds no
 * reference of its own and peeks at the slot): when told it changed, the proxy takes it from the
 * slot and hands each worker a generation holding a reference to it; every connection keeps the
 * generation it was accepted under to its end, so the previous identity (and its TLS contexts) is
 * freed with its last connection, never under a live handshake. A bad update never reaches the
 * slot: pk_identity_new fails instead. */
#ifndef PK_IDENTITY_H
#define PK_IDENTITY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "compiler.h"
#include "err.h"
#include "key.h"
#include "spiffe.h"
#include "tls.h"
#include "x509.h"

/* Immutable once pk_identity_new returns; freed with its last reference (atomic count). */
struct pk_identity;

struct pk_identity_params {
    /* Our private key. Taken: on success the identity owns it, on failure it is wiped and freed
     * before pk_identity_new returns. */
    struct pk_key *key;
    /* Leaf first, then intermediates (borrowed, copied). A trailing root is harmless. */
    const struct pk_certs *chain;
    /* Trust anchors (roots) that both our chain and every peer's chain must lead to (borrowed,
     * copied). At least one. */
    const struct pk_certs *anchors;
    /* Allow TLS 1.2 (ECDHE + AEAD) besides TLS 1.3 in both contexts. */
    bool allow_tls12;
    /* Where the identity came from, for logs and status: "sentry", "static", ... (borrowed,
     * copied). NULL is recorded as "unknown". */
    const char *source;
};

/* Check the parameters and build an identity. The checks, in order, each failing with the code
 * given and a message naming the problem:
 *  - a key, a non-empty chain and at least one anchor (PK_E_INVALID);
 *  - every anchor is a CA (pk_cert_check_anchor; PK_E_INVALID naming it);
 *  - the leaf carries exactly one URI SAN and it is a valid SPIFFE ID (PK_E_INVALID);
 *  - the leaf is not a CA and its key usage allows neither keyCertSign nor cRLSign
 *    (PK_E_INVALID): a workload key must not be able to mint certificates;
 *  - the key is the private half of the leaf's public key (PK_E_MISMATCH);
 *  - the leaf is valid at `now`, without any skew allowance (PK_E_EXPIRED / PK_E_NOTYETVALID,
 *    naming the boundary and `now`);
 *  - the chain verifies to the anchors with pk_x509_verify_chain (PK_E_UNTRUSTED, PK_E_EXPIRED,
 *    PK_E_NOTYETVALID). Note that this and the handshake below compare dates with the system
 *    clock, not with `now`: neither pk_x509_verify_chain nor wolfSSL takes a time;
 *  - a server context (client certificate required) and a client context, both verifying peers
 *    against the anchors, without ALPN (the proxy and the agent set their own) (PK_E_TLS,
 *    PK_E_MISMATCH);
 *  - a self-check: a complete TLS handshake between the two contexts in memory, after which
 *    each side must have received our own leaf (PK_E_TLS "self-check handshake failed: ...").
 *    It catches what only wolfSSL's handshake checks, e.g. a leaf whose extended key usage
 *    lacks clientAuth or serverAuth.
 * Borrows p (but takes p->key, see above). On success *out holds one reference. Runs two
 * handshakes' worth of public-key operations (a few milliseconds) and does not block otherwise.
 * Thread-safe. */
int pk_identity_new(const struct pk_identity_params *p, time_t now, struct pk_identity **out,
                    struct pk_err *err) PK_MUST_USE;

/* A new identity with old's key, chain, source and TLS options but the trust anchors `anchors`
 * (borrowed, copied), for a change of trust anchors. Every check of pk_identity_new runs again
 * against the new set, so a set that would not verify our own chain is refused (the message says
 * that the new trust anchors do not verify our own certificate chain, and why). The key is
 * duplicated through its PKCS#8 encoding; old is borrowed and untouched. On success *out holds one
 * reference. Same codes as pk_identity_new. */
int pk_identity_with_anchors(const struct pk_identity *old, const struct pk_certs *anchors,
                             time_t now, struct pk_identity **out, struct pk_err *err) PK_MUST_USE;

/* Take another reference (atomic; any thread). Returns id. */
struct pk_identity *pk_identity_ref(struct pk_identity *id);

/* Drop a reference (atomic; any thread). The last one frees the identity: the private key is
 * wiped (pk_key_free) and the TLS contexts lose the identity's references (a connection that
 * holds its own pk_tls_ctx reference keeps its context). NULL is fine. */
void pk_identity_unref(struct pk_identity *id);

/* Accessors. All borrow id and never fail; returned pointers, strings and slices are borrowed
 * from id and valid while the caller holds a reference. */

/* The leaf's SPIFFE ID, e.g. "spiffe://example.test/ns/default/frontend". */
const char *pk_identity_spiffe_id(const struct pk_identity *id);
/* The same ID parsed (trust domain, and namespace and app id in Dapr's workload form). */
const struct pk_spiffe_id *pk_identity_spiffe(const struct pk_identity *id);
/* The leaf's serial number, lower-case hex without leading zeros. */
const char *pk_identity_serial_hex(const struct pk_identity *id);
/* The leaf's notBefore and notAfter (Unix seconds, UTC). */
time_t pk_identity_not_before(const struct pk_identity *id);
time_t pk_identity_not_after(const struct pk_identity *id);
/* The earliest notAfter over the leaf and the intermediates of the chain (roots in the chain
 * included, anchors not): the chain stops verifying then even if the leaf has not expired. */
time_t pk_identity_chain_not_after(const struct pk_identity *id);
/* The params' source ("sentry", "static", ...), or "unknown". */
const char *pk_identity_source(const struct pk_identity *id);
/* Our chain, leaf first, and the trust anchors, as parsed certificates. */
const struct pk_certs *pk_identity_chain(const struct pk_identity *id);
const struct pk_certs *pk_identity_anchors(const struct pk_identity *id);
/* The chain (leaf + intermediates) and the anchors as PEM text (not NUL-terminated in len,
 * though a NUL follows the bytes). */
struct pk_slice pk_identity_chain_pem(const struct pk_identity *id);
struct pk_slice pk_identity_anchors_pem(const struct pk_identity *id);
/* The anchors that were valid at the `now' the identity was built with, and only those: what
 * its TLS contexts trust (wolfSSL would accept a chain to an anchor outside its own validity).
 * At pk_identity_trust_changes_at (0 = never) one of them expires or another becomes valid:
 * the owner builds a new identity then (pk_identity_with_anchors with the same anchors). */
const struct pk_certs *pk_identity_trusted_anchors(const struct pk_identity *id);
struct pk_slice pk_identity_trusted_anchors_pem(const struct pk_identity *id);
time_t pk_identity_trust_changes_at(const struct pk_identity *id);
/* The server context (requires and verifies a client certificate) and the client context
 * (presents our chain, verifies the server's). Borrowed: a connection that outlives its own
 * reference on id must take pk_tls_ctx_ref first. Shared between threads: never change them
 * (per-WOLFSSL settings such as I/O callbacks are fine). */
struct pk_tls_ctx *pk_identity_server_tls(const struct pk_identity *id);
struct pk_tls_ctx *pk_identity_client_tls(const struct pk_identity *id);

/* Append the private key as a PKCS#8 "PRIVATE KEY" PEM block to out, which should be a secret
 * buffer (pk_buf_init_secret). Only for exporting the identity to files for other programs.
 * 0, PK_E_CRYPTO, PK_E_TOOBIG (out unchanged). */
int pk_identity_key_pem(const struct pk_identity *id, struct pk_buf *out) PK_MUST_USE;

/* The SHA-256 fingerprint of anchor i's DER (i < pk_identity_anchors(id)->n, asserted) as 64
 * lower-case hex digits and a NUL, for logs and status. */
void pk_identity_anchor_fingerprint(const struct pk_identity *id, size_t i, char out[65]);

/* A publication slot: the one current identity, replaced whole by pk_identity_slot_publish, and
 * its only long-lived owner (the publisher keeps no reference of its own; it looks with
 * pk_identity_slot_peek). Readers on other threads take their own reference with
 * pk_identity_slot_get and then use the identity without locks. The mutex is held only to load the
 * pointer and take the reference, so the slot's reference cannot be dropped between the two; the
 * proxy takes it once per identity change, never per connection. The old identity is unreferenced
 * outside the lock (freeing it may take a while). Embed the struct; its fields are private. */
struct pk_identity_slot {
    pthread_mutex_t _lock;
    struct pk_identity *_current; /* written under _lock; the slot's own reference */
    atomic_uint_fast64_t _generation;
};

/* Start an empty slot (no identity, generation 0). */
void pk_identity_slot_init(struct pk_identity_slot *slot);

/* Drop the current identity's reference and release the lock. No other thread may use the slot
 * any more. */
void pk_identity_slot_destroy(struct pk_identity_slot *slot);

/* Make id the current identity and bump the generation. Takes id's reference (pass
 * pk_identity_ref(id) to keep one's own); NULL empties the slot. The previous identity loses the
 * slot's reference. Any thread. */
void pk_identity_slot_publish(struct pk_identity_slot *slot, struct pk_identity *id);

/* A new reference on the current identity (the caller unrefs it), or NULL when the slot is
 * empty. Any thread. */
struct pk_identity *pk_identity_slot_get(struct pk_identity_slot *slot);

/* The current identity, borrowed (no reference taken), or NULL when the slot is empty. Only on
 * the thread that publishes: it is the slot's sole writer, so the pointer cannot change under it,
 * and it stays valid until that thread's next pk_identity_slot_publish (or destroy). Whatever must
 * outlive a publish takes its own reference with pk_identity_ref. */
struct pk_identity *pk_identity_slot_peek(const struct pk_identity_slot *slot);

/* How many times pk_identity_slot_publish has run (atomic load; any thread). Lets a worker
 * notice cheaply that a new identity is available. */
uint64_t pk_identity_slot_generation(const struct pk_identity_slot *slot);

#endif
