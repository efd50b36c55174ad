/* SPDX-License-Identifier: Apache-2.0 */
/* picket: refcounted TLS contexts over wolfSSL's native API. */
#include "tls.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "log.h"
#include "mem.h"
#include "sigmemo.h"
#include "x509.h"

#ifndef WOLFSSL_ALWAYS_VERIFY_CB
#error "wolfSSL must be built with WOLFSSL_ALWAYS_VERIFY_CB (the peer chain is kept by verify_cb)"
#endif

#define TLS_CTX_MAGIC 0x544c5343u /* "TLSC" */

/* The most certificates a peer's chain may hold. wolfSSL keeps at most MAX_CHAIN_DEPTH + 1 of
 * them (10 in both builds) in the store verify_cb sees; more is refused, not truncated. */
#define PEER_CHAIN_MAX 16

/* ALPN protocol names are 1..255 bytes (RFC 7301 §3.1). */
#define ALPN_MAX 255

struct pk_tls_ctx {
    unsigned magic;
    atomic_uint refs;
    bool server;
    WOLFSSL_CTX *wctx;
    char *alpn;
    /* The trust anchors every peer chain is verified against, by verify_cb; empty when peers
     * are not verified. They are deliberately not loaded into wolfSSL's certificate manager
     * (see verify_cb). */
    struct pk_certs anchors;
    /* Signatures above a leaf that verify_cb has found valid on accepted chains, shared by every
     * thread using this context and gone with it (and so with these anchors). */
    struct pk_sigmemo *sigmemo;
    /* The verify callback's context for sessions that record nothing (shared, read-only). */
    struct pk_tls_peer_chain no_record;
};

/* TLS 1.3 AEAD suites, then the TLS 1.2 ECDHE + AEAD suites grpc-go keeps. wolfSSL skips names
 * its build does not support as long as one remains. */
static const char tls13_suites[] =
        "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256";
static const char tls12_suites[] = ":ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"
                                   ":ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256"
                                   ":ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305";

static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_init_result;

static void tls_global_init(void)
{
    tls_init_result = wolfSSL_Init();
}

void pk_tls_thread_exit(void)
{
#ifdef FP_ECC
    wc_ecc_fp_free();
#endif
}

const char *pk_tls_strerror(int code, char *buf, size_t len)
{
    char text[112];
    long negative = code < 0 ? (long)code : -(long)code;

    if (len == 0) {
        return buf;
    }
    /* wolfSSL's own (negative) code: a build without the OpenSSL compatibility layer (the fast
     * one) names every positive code "unknown error number"; Debian's takes either form. */
    wolfSSL_ERR_error_string_n((unsigned long)negative, text, sizeof(text));
    /* A peer chain our verify callback refused reads the same in both builds: Debian's uses
     * OpenSSL's words for it, the fast build wolfCrypt's ("ASN no signer ..."). */
    if (negative == ASN_NO_SIGNER_E && strstr(text, "certificate verify failed") == NULL) {
        snprintf(buf, len, "certificate verify failed: %s", text);
    } else {
        snprintf(buf, len, "%s", text);
    }
    return buf;
}

static int wolf_fail(struct pk_err *err, int ret, const char *what)
{
    char text[128];
    pk_tls_strerror(ret, text, sizeof(text));
    return pk_err_set(err, PK_E_TLS, "%s: wolfSSL error %d (%s)", what, ret, text);
}

/* A TLS 1.2 client stops offering the ticket extension; a server stops issuing tickets in both
 * versions (wolfSSL_CTX_no_ticket_TLSv13 is server-only: a client never resumes anyway, as we
 * never hand a saved session to a new WOLFSSL). */
#ifdef HAVE_SESSION_TICKET
static int disable_tickets(WOLFSSL_CTX *wctx, bool server)
{
    if (wolfSSL_CTX_NoTicketTLSv12(wctx) != WOLFSSL_SUCCESS) {
        return -1;
    }
#ifdef WOLFSSL_TLS13
    if (server && wolfSSL_CTX_no_ticket_TLSv13(wctx) != 0) {
        return -1;
    }
#endif
    return 0;
}
#else
static int disable_tickets(WOLFSSL_CTX *wctx, bool server)
{
    (void)wctx;
    (void)server;
    return 0;
}
#endif

static int check_config(const struct pk_tls_config *cfg, struct pk_err *err)
{
    if (cfg->server && (cfg->chain_pem == NULL || cfg->chain_pem_len == 0)) {
        return pk_err_set(err, PK_E_INVALID, "TLS server context needs a certificate chain");
    }
    if ((cfg->chain_pem != NULL) != (cfg->key_der != NULL)) {
        return pk_err_set(
                err, PK_E_INVALID,
                "TLS context needs both a certificate chain and a private key, or neither");
    }
    if (cfg->key_der != NULL && cfg->key_der_len == 0) {
        return pk_err_set(err, PK_E_INVALID, "TLS private key is empty");
    }
    if (cfg->require_peer_cert && (!cfg->server || cfg->anchors_pem == NULL)) {
        return pk_err_set(err, PK_E_INVALID,
                          "require_peer_cert needs a server context with trust anchors");
    }
    if (cfg->anchors_pem != NULL && cfg->anchors_pem_len == 0) {
        return pk_err_set(err, PK_E_INVALID, "TLS trust anchors are empty");
    }
    if (cfg->alpn != NULL && (cfg->alpn[0] == '\0' || strlen(cfg->alpn) > ALPN_MAX)) {
        return pk_err_set(err, PK_E_INVALID, "ALPN protocol '%.64s' must be 1 to 255 bytes",
                          cfg->alpn);
    }
    if (cfg->chain_pem_len > INT32_MAX || cfg->key_der_len > INT32_MAX ||
        cfg->anchors_pem_len > INT32_MAX) {
        return pk_err_set(err, PK_E_TOOBIG, "TLS credentials are too large");
    }
    return 0;
}

static int set_protocol_policy(WOLFSSL_CTX *wctx, const struct pk_tls_config *cfg,
                               struct pk_err *err)
{
    char suites[sizeof(tls13_suites) + sizeof(tls12_suites)];
    int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1};
    int r;

    if (cfg->allow_tls12) {
        r = wolfSSL_CTX_SetMinVersion(wctx, WOLFSSL_TLSV1_2);
        if (r != WOLFSSL_SUCCESS) {
            return wolf_fail(err, r, "setting TLS 1.2 as the minimum version");
        }
    }
    snprintf(suites, sizeof(suites), "%s%s", tls13_suites, cfg->allow_tls12 ? tls12_suites : "");
    r = wolfSSL_CTX_set_cipher_list(wctx, suites);
    if (r != WOLFSSL_SUCCESS) {
        return wolf_fail(err, r, "setting the cipher suites");
    }
    /* supported_groups for both versions, then the TLS 1.3 key share order. */
    for (size_t i = 0; i < PK_ARRAY_LEN(groups); i++) {
        r = wolfSSL_CTX_UseSupportedCurve(wctx, (word16)groups[i]);
        if (r != WOLFSSL_SUCCESS) {
            return wolf_fail(err, r, "setting the supported groups");
        }
    }
    r = wolfSSL_CTX_set_groups(wctx, groups, (int)PK_ARRAY_LEN(groups));
    if (r != WOLFSSL_SUCCESS) {
        return wolf_fail(err, r, "setting the key exchange groups");
    }
    if (disable_tickets(wctx, cfg->server) != 0) {
        return pk_err_set(err, PK_E_TLS, "cannot disable TLS session tickets");
    }
    wolfSSL_CTX_set_session_cache_mode(wctx, WOLFSSL_SESS_CACHE_OFF);
    /* A flight in one send() instead of one per handshake message: over loopback each send is
     * a system call here and a TCP input run on the receiver. */
    r = wolfSSL_CTX_set_group_messages(wctx);
    if (r != WOLFSSL_SUCCESS) {
        return wolf_fail(err, r, "grouping handshake messages");
    }
    return 0;
}

/* Copy what the peer sent (store->certs) into chain. */
static void keep_peer_chain(struct pk_tls_peer_chain *chain, const WOLFSSL_X509_STORE_CTX *store)
{
    size_t total = 0;

    pk_tls_peer_chain_clear(chain);
    for (int i = 0; i < store->totalCerts; i++) {
        total += 4 + store->certs[i].length;
    }
    chain->blob = pk_xmalloc(total);
    for (int i = 0; i < store->totalCerts; i++) {
        uint32_t n = store->certs[i].length;
        uint8_t *p = chain->blob + chain->len;
        p[0] = (uint8_t)(n >> 24);
        p[1] = (uint8_t)(n >> 16);
        p[2] = (uint8_t)(n >> 8);
        p[3] = (uint8_t)n;
        memcpy(p + 4, store->certs[i].buffer, n);
        chain->len += 4 + n;
        chain->count++;
    }
}

/* Verify what the peer sent, leaf first, against ctx's anchors now. 0 or
 * pk_x509_verify_peer_chain's code, PK_E_INVALID for a certificate that does not parse. */
static int verify_peer_chain(const struct pk_tls_ctx *ctx, const WOLFSSL_X509_STORE_CTX *store,
                             struct pk_err *err)
{
    struct pk_cert *sent[PEER_CHAIN_MAX] = {NULL};
    size_t n_sent = 0;
    int r = 0;

    if (store->totalCerts > (int)PK_ARRAY_LEN(sent)) {
        return pk_err_set(err, PK_E_INVALID, "peer sent %d certificates", store->totalCerts);
    }
    for (int i = 0; r == 0 && i < store->totalCerts; i++) {
        r = pk_cert_parse_der(store->certs[i].buffer, store->certs[i].length,
                              i == 0 ? "peer leaf certificate" : "peer chain certificate",
                              &sent[n_sent], err);
        n_sent += r == 0;
    }
    if (r == 0) {
        struct pk_certs above = {sent + 1, n_sent - 1};
        r = pk_x509_verify_peer_chain(sent[0], &above, &ctx->anchors, ctx->sigmemo, err);
    }
    for (size_t i = 0; i < n_sent; i++) {
        pk_cert_free(sent[i]);
    }
    return r;
}

/* The errors wolfSSL reports for a leaf whose issuer is not in its (empty) certificate manager:
 * its own codes, or OpenSSL's in builds with OPENSSL_COMPATIBLE_DEFAULTS (Debian's). */
static bool issuer_not_found(int error)
{
#ifdef OPENSSL_COMPATIBLE_DEFAULTS
    if (error == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
        error == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT) {
        return true;
    }
#endif
    return error == ASN_NO_SIGNER_E || error == ASN_SELF_SIGNED_E;
}

/* The verdict on a peer's chain is ours, not wolfSSL's certificate manager's.
 *
 * wolfSSL 5.5.4 adds every CA certificate a peer sends, once it verifies, to the context's
 * certificate manager for the life of the WOLFSSL_CTX (ProcessPeerCerts, AddCA with
 * WOLFSSL_CHAIN_CA), and never checks the validity of a certificate already there. One peer's
 * intermediate would then complete a later peer's chain, and outlive its own expiry. So the
 * anchors are never loaded into the certificate manager: it stays empty, every certificate a
 * peer sends fails there with ASN_NO_SIGNER_E, and a CA that fails is never added (with
 * WOLFSSL_ALT_CERT_CHAINS, which both builds have, it is skipped; without, its error stands).
 * This callback then decides at the leaf (error_depth 0), on exactly the certificates this peer
 * sent, with pk_x509_verify_peer_chain against the context's anchors at this moment (each
 * signature checked once, signatures above the leaf remembered in the context's memo; nothing
 * else a peer sent outlives its connection): signatures,
 * validity of every certificate including the anchor, CA flags, key usage, path length and
 * name constraints. wolfSSL's own leaf checks (key usage, extended key usage, key size) report
 * other errors, which stand. Intermediates are passed (1) because the decision needs the
 * whole chain, which only the leaf's call sees.
 *
 * userCtx is a struct pk_tls_peer_chain: the context's no_record, or the caller's from
 * pk_tls_session_record_peer_chain, which also receives a copy of the chain. */
static int verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    struct pk_tls_peer_chain *chain = store->userCtx;
    struct pk_err err = {{0}};

    (void)preverify;
    if (chain == NULL || chain->_ctx == NULL) {
        return 0; /* not one of our contexts: refuse rather than guess */
    }
    if (store->error_depth != 0) {
        return 1;
    }
    if (store->error != 0 && !issuer_not_found(store->error)) {
        char text[96];
        pk_tls_strerror(store->error, text, sizeof(text));
        PK_LOG_DEBUG("TLS peer certificate refused error=\"%s\"", text);
        return 0;
    }
    if (store->certs == NULL || store->totalCerts <= 0) {
        return 0;
    }
    int r = verify_peer_chain(chain->_ctx, store, &err);
    if (r != 0) {
        PK_LOG_DEBUG("TLS peer chain refused error=\"%s\"", err.msg);
        return 0;
    }
    if (chain->_record) {
        keep_peer_chain(chain, store);
    }
    return 1;
}

void pk_tls_session_record_peer_chain(struct pk_tls_ctx *ctx, WOLFSSL *ssl,
                                      struct pk_tls_peer_chain *chain)
{
    PK_ASSERT(ctx->magic == TLS_CTX_MAGIC);
    chain->_ctx = ctx;
    chain->_record = true;
    wolfSSL_SetCertCbCtx(ssl, chain);
}

bool pk_tls_peer_chain_get(const struct pk_tls_peer_chain *chain, size_t i, struct pk_slice *out)
{
    size_t off = 0;

    for (size_t k = 0; k < chain->count; k++) {
        const uint8_t *p = chain->blob + off;
        size_t n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
        if (k == i) {
            out->ptr = p + 4;
            out->len = n;
            return true;
        }
        off += 4 + n;
    }
    return false;
}

void pk_tls_peer_chain_clear(struct pk_tls_peer_chain *chain)
{
    free(chain->blob);
    chain->blob = NULL;
    chain->len = chain->count = 0;
}

/* DER SubjectPublicKeyInfo prefixes (RFC 5480, RFC 8410) for the two key types we accept. */
static const uint8_t spki_p256_prefix[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
                                           0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
                                           0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};
static const uint8_t spki_ed25519_prefix[] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                              0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

/* Compute the SubjectPublicKeyInfo of a PKCS#8 P-256 or Ed25519 private key. 0 or PK_E_*. */
static int key_spki(const uint8_t *der, size_t der_len, uint8_t *spki, size_t *spki_len)
{
    uint8_t *copy = pk_xmemdup(der, der_len);
    word32 idx = 0;
    int rc = PK_E_UNSUPPORTED;
    ecc_key ecc;
    ed25519_key ed;

    /* Ed25519 keys are always PKCS#8 (RFC 8410); wolfCrypt parses that form directly. */
    if (wc_ed25519_init(&ed) == 0) {
        if (wc_Ed25519PrivateKeyDecode(copy, &idx, &ed, (word32)der_len) == 0) {
            memcpy(spki, spki_ed25519_prefix, sizeof(spki_ed25519_prefix));
            rc = wc_ed25519_make_public(&ed, spki + sizeof(spki_ed25519_prefix),
                                        ED25519_PUB_KEY_SIZE) == 0
                         ? 0
                         : PK_E_CRYPTO;
            *spki_len = sizeof(spki_ed25519_prefix) + ED25519_PUB_KEY_SIZE;
        }
        wc_ed25519_free(&ed);
    }
    if (rc == PK_E_UNSUPPORTED && wc_ecc_init(&ecc) == 0) {
        idx = 0;
        /* PKCS#8 as documented; a bare SEC1 ECPrivateKey (which wolfSSL also loads) is
         * checked the same way. */
        if (wc_GetPkcs8TraditionalOffset(copy, &idx, (word32)der_len) < 0) {
            idx = 0;
        }
        if (wc_EccPrivateKeyDecode(copy, &idx, &ecc, (word32)der_len) == 0 &&
            wc_ecc_get_curve_id(ecc.idx) == ECC_SECP256R1) {
            word32 n = 65;
            memcpy(spki, spki_p256_prefix, sizeof(spki_p256_prefix));
            /* Derive the point from the scalar: a public key stored in the file proves nothing. */
            if (wc_ecc_make_pub(&ecc, NULL) == 0 &&
                wc_ecc_export_x963(&ecc, spki + sizeof(spki_p256_prefix), &n) == 0 && n == 65) {
                rc = 0;
                *spki_len = sizeof(spki_p256_prefix) + 65;
            } else {
                rc = PK_E_CRYPTO;
            }
        }
        wc_ecc_free(&ecc);
    }
    pk_free_secret(copy, der_len);
    return rc;
}

/* wolfSSL_CTX_check_private_key in 5.5.4 imports our ECC scalar next to the certificate's point
 * and only checks that the point is on the curve, so a wrong P-256 key passes. Compare the
 * public key derived from the private key with the leaf's SubjectPublicKeyInfo instead. */
static int check_key_matches_leaf(const struct pk_tls_config *cfg, struct pk_err *err)
{
    uint8_t spki[128];
    size_t spki_len = 0;
    uint8_t *leaf = pk_xmalloc(cfg->chain_pem_len);
    int rc;

    int n = wc_CertPemToDer(cfg->chain_pem, (int)cfg->chain_pem_len, leaf, (int)cfg->chain_pem_len,
                            CERT_TYPE);
    if (n <= 0) {
        rc = pk_err_set(err, PK_E_TLS,
                        "TLS certificate chain: the first PEM block is not a "
                        "certificate (wolfSSL error %d)",
                        n);
        goto out;
    }
    rc = key_spki(cfg->key_der, cfg->key_der_len, spki, &spki_len);
    if (rc != 0) {
        rc = pk_err_set(err, rc, "TLS private key is not a PKCS#8 P-256 or Ed25519 key");
        goto out;
    }
    if (memmem(leaf, (size_t)n, spki, spki_len) == NULL) {
        rc = pk_err_set(err, PK_E_MISMATCH,
                        "TLS private key does not match the first certificate of the chain");
        goto out;
    }
    rc = 0;
out:
    free(leaf);
    return rc;
}

static int load_credentials(WOLFSSL_CTX *wctx, const struct pk_tls_config *cfg,
                            struct pk_certs *anchors, struct pk_sigmemo **sigmemo,
                            struct pk_err *err)
{
    int r;

    if (cfg->chain_pem != NULL) {
        r = wolfSSL_CTX_use_certificate_chain_buffer_format(
                wctx, cfg->chain_pem, (long)cfg->chain_pem_len, WOLFSSL_FILETYPE_PEM);
        if (r != WOLFSSL_SUCCESS) {
            return wolf_fail(err, r, "loading the TLS certificate chain (PEM)");
        }
        r = wolfSSL_CTX_use_PrivateKey_buffer(wctx, cfg->key_der, (long)cfg->key_der_len,
                                              WOLFSSL_FILETYPE_ASN1);
        if (r != WOLFSSL_SUCCESS) {
            return wolf_fail(err, r, "loading the TLS private key (PKCS#8 DER)");
        }
        r = check_key_matches_leaf(cfg, err);
        if (r != 0) {
            return r;
        }
    }
    if (cfg->anchors_pem != NULL) {
        /* Parsed and kept for verify_cb, never loaded into wolfSSL (see verify_cb). */
        r = pk_certs_parse_anchors_pem(cfg->anchors_pem, cfg->anchors_pem_len, "TLS trust anchors",
                                       anchors, err);
        if (r != 0) {
            return r;
        }
        *sigmemo = pk_sigmemo_new();
        int mode = WOLFSSL_VERIFY_PEER;
        if (cfg->require_peer_cert) {
            mode |= WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        }
        wolfSSL_CTX_set_verify(wctx, mode, verify_cb);
    } else {
        wolfSSL_CTX_set_verify(wctx, WOLFSSL_VERIFY_NONE, NULL);
    }
    return 0;
}

int pk_tls_ctx_new(const struct pk_tls_config *cfg, struct pk_tls_ctx **out, struct pk_err *err)
{
    struct pk_tls_ctx *ctx = NULL;
    WOLFSSL_METHOD *method;
    int rc;

    rc = check_config(cfg, err);
    if (rc != 0) {
        goto out;
    }
    pthread_once(&tls_once, tls_global_init);
    if (tls_init_result != WOLFSSL_SUCCESS) {
        rc = wolf_fail(err, tls_init_result, "initialising wolfSSL");
        goto out;
    }
    if (cfg->allow_tls12) {
        method = cfg->server ? wolfSSLv23_server_method() : wolfSSLv23_client_method();
    } else {
        method = cfg->server ? wolfTLSv1_3_server_method() : wolfTLSv1_3_client_method();
    }
    ctx = pk_xcalloc(1, sizeof(*ctx));
    ctx->magic = TLS_CTX_MAGIC;
    atomic_init(&ctx->refs, 1);
    ctx->server = cfg->server;
    ctx->wctx = method != NULL ? wolfSSL_CTX_new(method) : NULL;
    if (ctx->wctx == NULL) {
        rc = pk_err_set(err, PK_E_TLS, "wolfSSL_CTX_new failed");
        goto out;
    }
    rc = set_protocol_policy(ctx->wctx, cfg, err);
    if (rc != 0) {
        goto out;
    }
    ctx->no_record._ctx = ctx;
    wolfSSL_CTX_SetCertCbCtx(ctx->wctx, &ctx->no_record);
    rc = load_credentials(ctx->wctx, cfg, &ctx->anchors, &ctx->sigmemo, err);
    if (rc != 0) {
        goto out;
    }
    if (cfg->alpn != NULL) {
        ctx->alpn = pk_xstrdup(cfg->alpn);
    }
    *out = ctx;
    ctx = NULL;
    rc = 0;
out:
    pk_tls_ctx_unref(ctx);
    return rc;
}

struct pk_tls_ctx *pk_tls_ctx_ref(struct pk_tls_ctx *ctx)
{
    PK_ASSERT(ctx->magic == TLS_CTX_MAGIC);
    unsigned old = atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
    PK_ASSERT(old > 0);
    return ctx;
}

void pk_tls_ctx_unref(struct pk_tls_ctx *ctx)
{
    if (ctx == NULL) {
        return;
    }
    PK_ASSERT(ctx->magic == TLS_CTX_MAGIC);
    if (atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    if (ctx->wctx != NULL) {
        /* wolfSSL wipes the key material it holds when the context is freed. */
        wolfSSL_CTX_free(ctx->wctx);
    }
    free(ctx->alpn);
    pk_certs_clear(&ctx->anchors);
    pk_sigmemo_free(ctx->sigmemo);
    ctx->magic = 0;
    free(ctx);
}

WOLFSSL_CTX *pk_tls_ctx_wolfssl(const struct pk_tls_ctx *ctx)
{
    PK_ASSERT(ctx->magic == TLS_CTX_MAGIC);
    return ctx->wctx;
}

const char *pk_tls_ctx_alpn(const struct pk_tls_ctx *ctx)
{
    return ctx->alpn;
}

bool pk_tls_ctx_is_server(const struct pk_tls_ctx *ctx)
{
    return ctx->server;
}

int pk_tls_session_new(struct pk_tls_ctx *ctx, int fd, const char *server_name, WOLFSSL **out,
                       struct pk_err *err)
{
    WOLFSSL *ssl;
    int rc;
    int r;

    PK_ASSERT(ctx->magic == TLS_CTX_MAGIC);
    if (server_name != NULL && strlen(server_name) > 255) {
        return pk_err_set(err, PK_E_INVALID, "TLS server name '%.64s...' is longer than 255 bytes",
                          server_name);
    }
    ssl = wolfSSL_new(ctx->wctx);
    if (ssl == NULL) {
        return pk_err_set(err, PK_E_TLS, "wolfSSL_new failed");
    }
    r = wolfSSL_set_fd(ssl, fd);
    if (r != WOLFSSL_SUCCESS) {
        rc = wolf_fail(err, r, "attaching the socket to TLS");
        goto out;
    }
    if (ctx->alpn != NULL) {
        /* wolfSSL_UseALPN copies the list; its parameter is not const. */
        char alpn[ALPN_MAX + 1];
        snprintf(alpn, sizeof(alpn), "%s", ctx->alpn);
        r = wolfSSL_UseALPN(ssl, alpn, (unsigned)strlen(alpn), WOLFSSL_ALPN_FAILED_ON_MISMATCH);
        if (r != WOLFSSL_SUCCESS) {
            rc = wolf_fail(err, r, "setting ALPN");
            goto out;
        }
    }
    if (!ctx->server && server_name != NULL && server_name[0] != '\0') {
        r = wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, server_name,
                           (unsigned short)strlen(server_name));
        if (r != WOLFSSL_SUCCESS) {
            rc = wolf_fail(err, r, "setting SNI");
            goto out;
        }
    }
    *out = ssl;
    ssl = NULL;
    rc = 0;
out:
    if (ssl != NULL) {
        wolfSSL_free(ssl);
    }
    return rc;
}

int pk_tls_alpn_check(WOLFSSL *ssl, const char *alpn, struct pk_err *err)
{
    char *proto = NULL;
    unsigned short len = 0;

    if (alpn == NULL) {
        return 0;
    }
    int r = wolfSSL_ALPN_GetProtocol(ssl, &proto, &len);
    if (r != WOLFSSL_SUCCESS || proto == NULL || len == 0) {
        return pk_err_set(err, PK_E_TLS, "peer did not negotiate ALPN '%s'", alpn);
    }
    if (len != strlen(alpn) || memcmp(proto, alpn, len) != 0) {
        return pk_err_set(err, PK_E_TLS, "peer negotiated ALPN '%.*s' instead of '%s'",
                          (int)PK_MIN(len, 64), proto, alpn);
    }
    return 0;
}

#ifdef SESSION_CERTS
static int peer_leaf_from_chain(WOLFSSL *ssl, struct pk_buf *out)
{
    WOLFSSL_X509_CHAIN *chain = wolfSSL_get_peer_chain(ssl);
    if (chain == NULL || wolfSSL_get_chain_count(chain) < 1) {
        return PK_E_NOTFOUND;
    }
    int len = wolfSSL_get_chain_length(chain, 0);
    const unsigned char *der = wolfSSL_get_chain_cert(chain, 0);
    if (der == NULL || len <= 0) {
        return PK_E_NOTFOUND;
    }
    return pk_buf_append(out, der, (size_t)len);
}
#else
static int peer_leaf_from_chain(WOLFSSL *ssl, struct pk_buf *out)
{
    (void)ssl;
    (void)out;
    return PK_E_NOTFOUND;
}
#endif

int pk_tls_peer_leaf_der(WOLFSSL *ssl, struct pk_buf *out)
{
    WOLFSSL_X509 *x509;
    const unsigned char *der;
    int der_len = 0;
    int rc;

    /* A copy since wolfSSL 5.3.0 (commit afca455): freed below with wolfSSL_X509_free. */
    x509 = wolfSSL_get_peer_certificate(ssl);
    if (x509 == NULL) {
        /* 5.5.4 builds the copy by re-parsing the DER into a WOLFSSL_X509, which fails for
         * Ed25519 certificates although the handshake verified them. With SESSION_CERTS the
         * raw chain is kept and its first entry is the leaf. */
        return peer_leaf_from_chain(ssl, out);
    }
    der = wolfSSL_X509_get_der(x509, &der_len);
    if (der == NULL || der_len <= 0) {
        rc = PK_E_NOTFOUND;
        goto out;
    }
    rc = pk_buf_append(out, der, (size_t)der_len);
out:
    wolfSSL_X509_free(x509);
    return rc;
}
