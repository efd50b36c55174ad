/* SPDX-License-Identifier: Apache-2.0 */
/* picket: refcounted TLS contexts over wolfSSL's native API, shared by agent, proxy and sentry.
 *
 * A pk_tls_ctx wraps one WOLFSSL_CTX built from PEM/DER bytes and never changes after
 * pk_tls_ctx_new returns, so any number of connections (on any thread) may use it at once. It is
 * refcounted with an atomic counter: a listener holds one reference, every connection that was
 * started with it holds another, and a rotation installs a new context without pulling the old one
 * out from under a live handshake. (wolfSSL also counts WOLFSSL objects against their
 * WOLFSSL_CTX, but holding our own reference per connection keeps the rule visible and
 * independent of wolfSSL's build options.)
 *
 * Policy applied to every context:
 *   - TLS 1.3 only by default; with allow_tls12, TLS 1.2 with ECDHE + AEAD suites only (AES-GCM,
 *     ChaCha20-Poly1305), as grpc-go leaves it after removing the RFC 7540 blacklist;
 *   - key exchange groups X25519 and P-256;
 *   - no session tickets and no server session cache (a resumed session would skip the
 *     certificate check of a rotated identity); no renegotiation (wolfSSL only supports it when
 *     built with HAVE_SECURE_RENEGOTIATION and we never enable it);
 *   - ALPN, when configured, is offered by a client and selected by a server with
 *     WOLFSSL_ALPN_FAILED_ON_MISMATCH; a peer that offers no ALPN at all completes the wolfSSL
 *     handshake, so callers must also run pk_tls_alpn_check() afterwards;
 *   - no host name check ever: peers are identified by SPIFFE ID, which the caller checks on the
 *     leaf returned by pk_tls_peer_leaf_der();
 *   - each peer's chain is decided on what that peer sent plus the configured anchors, at the
 *     moment of the handshake (pk_x509_verify_peer_chain): nothing a peer sends is remembered by
 *     the context, so it cannot complete a later peer's chain nor outlive its own validity; the
 *     context only memoises which signatures above a leaf verified (common/sigmemo), on chains
 *     it accepted, and still checks every date and flag on every handshake. Anchors must be CA
 *     certificates (pk_cert_check_anchor).
 * Certificates may be ECDSA P-256 or Ed25519, in the Dapr Sentry profile (empty subject, one
 * critical URI SAN, no BasicConstraints in the leaf). */
#ifndef PK_TLS_H
#define PK_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "buf.h"
#include "compiler.h"
#include "err.h"

struct pk_tls_ctx;

struct pk_tls_config {
    bool server;
    /* Our leaf followed by its intermediates, PEM (borrowed, copied into the context). NULL = no
     * certificate: allowed for a client only. */
    const uint8_t *chain_pem;
    size_t chain_pem_len;
    /* PKCS#8 DER of our private key, P-256 or Ed25519 (borrowed; wolfSSL keeps its own copy).
     * Required exactly when chain_pem is given. */
    const uint8_t *key_der;
    size_t key_der_len;
    /* Roots that the peer's chain must lead to, PEM (borrowed). NULL = don't verify the peer. */
    const uint8_t *anchors_pem;
    size_t anchors_pem_len;
    /* Server only: request a client certificate and fail the handshake without one. Needs
     * anchors. */
    bool require_peer_cert;
    /* ALPN protocol, e.g. "h2" (borrowed, copied). NULL = no ALPN. */
    const char *alpn;
    /* Allow TLS 1.2 (ECDHE + AEAD only) besides TLS 1.3. */
    bool allow_tls12;
};

/* Build a context. On success *out receives a context with one reference. Fails with
 * PK_E_INVALID for an inconsistent config (server without certificate, key without chain,
 * require_peer_cert without anchors, empty or over-long ALPN, an anchor that does not parse or
 * is not a CA), PK_E_TLS when wolfSSL rejects a certificate or key (err names which one and
 * gives wolfSSL's reason), PK_E_MISMATCH when the key does not belong to the leaf. Does not
 * block. Thread-safe. */
int pk_tls_ctx_new(const struct pk_tls_config *cfg, struct pk_tls_ctx **out, struct pk_err *err)
        PK_MUST_USE;

/* Take another reference (atomic). Returns ctx. */
struct pk_tls_ctx *pk_tls_ctx_ref(struct pk_tls_ctx *ctx);

/* Drop a reference (atomic); the last one frees the context. NULL is fine. */
void pk_tls_ctx_unref(struct pk_tls_ctx *ctx);

/* The wrapped context; borrowed, valid while the caller holds a reference. Treat it as
 * read-only: it is shared. */
WOLFSSL_CTX *pk_tls_ctx_wolfssl(const struct pk_tls_ctx *ctx);

/* The configured ALPN protocol, or NULL. Borrowed from ctx. */
const char *pk_tls_ctx_alpn(const struct pk_tls_ctx *ctx);

/* True for a server context. */
bool pk_tls_ctx_is_server(const struct pk_tls_ctx *ctx);

/* Create a WOLFSSL for one connection on fd (a connected, typically non-blocking socket that the
 * caller keeps owning and closes after wolfSSL_free). Applies the context's ALPN and, for a
 * client, sends server_name as SNI (borrowed; NULL or "" = no SNI; callers skip it for IP
 * literals). The WOLFSSL does not hold a pk_tls_ctx reference: the caller must keep one until
 * wolfSSL_free. 0, PK_E_INVALID (server_name longer than 255 bytes) or PK_E_TLS. */
int pk_tls_session_new(struct pk_tls_ctx *ctx, int fd, const char *server_name, WOLFSSL **out,
                       struct pk_err *err) PK_MUST_USE;

/* After a completed handshake: 0 when the negotiated ALPN protocol equals alpn, else PK_E_TLS
 * with a message saying what the peer did (offered nothing / selected something else). alpn NULL
 * means "none required" and always succeeds. Borrows both. */
int pk_tls_alpn_check(WOLFSSL *ssl, const char *alpn, struct pk_err *err) PK_MUST_USE;

/* Append the DER of the peer's leaf certificate to out. Valid after the handshake. wolfSSL
 * (5.3.0 and later) returns a copy from wolfSSL_get_peer_certificate that we must free, so the
 * bytes are copied into out rather than lent; out's cap bounds the size. 0, PK_E_NOTFOUND (the
 * peer sent no certificate) or PK_E_TOOBIG. */
int pk_tls_peer_leaf_der(WOLFSSL *ssl, struct pk_buf *out) PK_MUST_USE;

/* The certificates a peer sent in its Certificate message, leaf first, as DER: each entry is a
 * 4-byte big-endian length and the certificate. Filled during a handshake (see below). */
struct pk_tls_peer_chain {
    uint8_t *blob; /* NULL while empty */
    size_t len;
    size_t count;
    /* Private: the context whose anchors decide, and whether to copy the chain. */
    const struct pk_tls_ctx *_ctx;
    bool _record;
};

/* Have the handshake on ssl (a session of ctx) copy what the peer sent into chain (borrowed: it
 * must outlive the handshake), once the peer's chain has passed verification against ctx's trust
 * anchors; a peer that fails leaves it empty. Only for sessions of a context with anchors (the
 * others verify nothing). The copy serves the leaf without wolfSSL re-parsing it, and keeps the
 * intermediates for a later re-check against new anchors. */
void pk_tls_session_record_peer_chain(struct pk_tls_ctx *ctx, WOLFSSL *ssl,
                                      struct pk_tls_peer_chain *chain);

/* The i-th certificate of chain (0 = the leaf), borrowed; false when there is none. */
bool pk_tls_peer_chain_get(const struct pk_tls_peer_chain *chain, size_t i, struct pk_slice *out);

/* Free what chain holds; it is empty afterwards. */
void pk_tls_peer_chain_clear(struct pk_tls_peer_chain *chain);

/* Call at the end of every thread that ran TLS handshakes (workers, test servers). wolfSSL
 * builds with FP_ECC (Debian's does) keep a per-thread cache of fixed-point ECC tables that is
 * never freed otherwise; elsewhere this does nothing. */
void pk_tls_thread_exit(void);

/* Write wolfSSL's text for an error code (from wolfSSL_get_error or a failed call) into buf and
 * return buf. */
const char *pk_tls_strerror(int code, char *buf, size_t len);

#endif
