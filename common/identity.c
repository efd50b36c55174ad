/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the immutable, refcounted workload identity snapshot.
 *
 * Implementation notes
 *
 * "Build" means: copy the inputs, run every check, make both TLS contexts, run the self-check.
 * pk_identity_new and pk_identity_with_anchors share one builder; only the wording of the
 * chain-verification error differs, because for a new anchor set the useful message is "these
 * anchors would cut us off from our own chain".
 *
 * The self-check drives two WOLFSSL objects (a client on the client context, a server on the
 * server context) against each other through two in-memory byte queues. pk_tls_session_new calls
 * wolfSSL_set_fd, which accepts -1 and only points the I/O contexts at the stored descriptor;
 * replacing the per-WOLFSSL receive/send callbacks and their contexts afterwards leaves the shared
 * WOLFSSL_CTX (and its default socket callbacks) untouched, so other threads may already use the
 * contexts meanwhile. The callbacks must be set after wolfSSL_set_fd, which would otherwise reset
 * the contexts to &ssl->rfd / &ssl->wfd. */
#include "identity.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/sha256.h>
#include <wolfssl/wolfio.h>

#include "duration.h"
#include "mem.h"

#define IDENTITY_MAGIC 0x49444e54u /* "IDNT" */

/* A certificate chain or anchor bundle as PEM; generous, the inputs are capped long before. */
#define PEM_MAX (4u * 1024u * 1024u)
/* PKCS#8 DER of a P-256 or Ed25519 key is under 200 bytes. */
#define KEY_DER_MAX 1024u
/* One handshake's flight is a few KiB; the queue cap only stops a runaway peer. */
#define SELF_CHECK_QUEUE_MAX (256u * 1024u)
/* A TLS 1.3 handshake needs 3 rounds of connect/accept here, TLS 1.2 a few more. */
#define SELF_CHECK_ROUNDS 32
#define CERT_DER_MAX      (256u * 1024u)

struct pk_identity {
    unsigned magic;
    atomic_uint refs;
    struct pk_key *key;
    struct pk_certs chain;
    struct pk_certs anchors;
    struct pk_buf chain_pem;
    struct pk_buf anchors_pem;
    /* The anchors valid when the identity was built: the only ones TLS trusts (wolfSSL does
     * not check an anchor's own validity), and the moment that subset changes (0 = never). */
    struct pk_certs trusted;
    struct pk_buf trusted_pem;
    time_t trust_changes_at;
    struct pk_spiffe_id spiffe;
    char serial_hex[64];
    time_t not_before;
    time_t not_after;
    time_t chain_not_after;
    char *source;
    bool allow_tls12;
    struct pk_tls_ctx *server;
    struct pk_tls_ctx *client;
};

static void identity_free(struct pk_identity *id)
{
    pk_tls_ctx_unref(id->server);
    pk_tls_ctx_unref(id->client);
    pk_key_free(id->key);
    pk_certs_clear(&id->chain);
    pk_certs_clear(&id->anchors);
    pk_certs_clear(&id->trusted);
    pk_buf_free(&id->chain_pem);
    pk_buf_free(&id->anchors_pem);
    pk_buf_free(&id->trusted_pem);
    free(id->source);
    id->magic = 0;
    free(id);
}

/* ---- checks on the leaf ---- */

static int check_leaf(struct pk_identity *id, time_t now, struct pk_err *err)
{
    const struct pk_cert *leaf = id->chain.v[0];
    char when[32];
    char at[32];
    int r;

    if (pk_cert_uri_count(leaf) != 1) {
        if (pk_cert_uri_count(leaf) == 0) {
            return pk_err_set(err, PK_E_INVALID,
                              "leaf certificate (subject \"%.200s\") has no URI SAN: a workload "
                              "certificate carries its SPIFFE ID there",
                              pk_cert_subject(leaf));
        }
        return pk_err_set(err, PK_E_INVALID,
                          "leaf certificate has %zu URI SANs ('%.200s', '%.200s'%s): a SPIFFE "
                          "workload certificate has exactly one",
                          pk_cert_uri_count(leaf), pk_cert_uri(leaf, 0), pk_cert_uri(leaf, 1),
                          pk_cert_uri_count(leaf) > 2 ? ", ..." : "");
    }
    const char *uri = pk_cert_uri(leaf, 0);
    r = pk_spiffe_parse(uri, strlen(uri), &id->spiffe, err);
    if (r != 0) {
        return pk_err_prefix(err, r, "leaf certificate's URI SAN is not a SPIFFE ID");
    }
    /* SPIFFE X.509-SVID §4.1, §4.3: a leaf SVID must not be a CA and must not be able to sign
     * certificates or CRLs. */
    if (pk_cert_is_ca(leaf)) {
        return pk_err_set(err, PK_E_INVALID,
                          "leaf certificate (URI %.200s) is a CA certificate (BasicConstraints "
                          "CA:TRUE); a workload certificate must not be",
                          uri);
    }
    unsigned signs = pk_cert_has_key_usage(leaf)
                             ? pk_cert_key_usage(leaf) & (PK_KU_KEY_CERT_SIGN | PK_KU_CRL_SIGN)
                             : 0;
    if (signs != 0) {
        return pk_err_set(err, PK_E_INVALID,
                          "leaf certificate (URI %.200s) has key usage %s; a workload certificate "
                          "must not sign certificates or CRLs",
                          uri,
                          signs == PK_KU_CRL_SIGN        ? "cRLSign"
                          : signs == PK_KU_KEY_CERT_SIGN ? "keyCertSign"
                                                         : "keyCertSign and cRLSign");
    }
    if (!pk_cert_matches_key(leaf, id->key)) {
        return pk_err_set(err, PK_E_MISMATCH,
                          "private key (%s) does not match the leaf certificate (URI %.200s, "
                          "%s key)",
                          pk_key_type_name(pk_key_get_type(id->key)), uri,
                          pk_key_type_name(pk_cert_key_type(leaf)));
    }
    pk_time_format_utc(now, at, sizeof(at));
    if (now > pk_cert_not_after(leaf)) {
        pk_time_format_utc(pk_cert_not_after(leaf), when, sizeof(when));
        return pk_err_set(err, PK_E_EXPIRED,
                          "leaf certificate (URI %.200s) has expired: not after %s, now %s", uri,
                          when, at);
    }
    if (now < pk_cert_not_before(leaf)) {
        pk_time_format_utc(pk_cert_not_before(leaf), when, sizeof(when));
        return pk_err_set(err, PK_E_NOTYETVALID,
                          "leaf certificate (URI %.200s) is not yet valid: not before %s, now %s",
                          uri, when, at);
    }
    return 0;
}

static int verify_chain(struct pk_identity *id, bool new_anchors, struct pk_err *err)
{
    struct pk_certs rest = {id->chain.v + 1, id->chain.n - 1};
    int r = pk_x509_verify_chain(id->chain.v[0], &rest, &id->anchors, err);

    if (r == 0) {
        return 0;
    }
    if (new_anchors) {
        return pk_err_prefix(err, r,
                             "the new trust anchors do not verify our own certificate chain (%s)",
                             id->spiffe.uri);
    }
    return pk_err_prefix(err, r, "certificate chain does not verify against the trust anchors");
}

/* ---- TLS contexts ---- */

static int build_tls(struct pk_identity *id, struct pk_err *err)
{
    struct pk_buf key_der;
    int r;

    pk_buf_init_secret(&key_der, KEY_DER_MAX);
    r = pk_key_to_der(id->key, &key_der);
    if (r != 0) {
        r = pk_err_set(err, r, "cannot encode the private key for TLS");
        goto out;
    }
    struct pk_tls_config cfg = {
            .server = true,
            .chain_pem = id->chain_pem.data,
            .chain_pem_len = id->chain_pem.len,
            .key_der = key_der.data,
            .key_der_len = key_der.len,
            .anchors_pem = id->trusted_pem.data,
            .anchors_pem_len = id->trusted_pem.len,
            .require_peer_cert = true,
            .allow_tls12 = id->allow_tls12,
    };
    r = pk_tls_ctx_new(&cfg, &id->server, err);
    if (r != 0) {
        r = pk_err_prefix(err, r, "server TLS context");
        goto out;
    }
    cfg.server = false;
    cfg.require_peer_cert = false;
    r = pk_tls_ctx_new(&cfg, &id->client, err);
    if (r != 0) {
        r = pk_err_prefix(err, r, "client TLS context");
        goto out;
    }
out:
    pk_buf_free(&key_der);
    return r;
}

/* ---- self-check: a handshake between our two contexts, in memory ---- */

/* One direction of the in-memory wire is a pk_buf; each end reads one and writes the other. */
struct mem_end {
    struct pk_buf *in;
    struct pk_buf *out;
};

static int mem_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct mem_end *e = ctx;
    size_t n;

    (void)ssl;
    if (sz <= 0) {
        return 0;
    }
    if (e->in->len == 0) {
        return WOLFSSL_CBIO_ERR_WANT_READ;
    }
    n = PK_MIN((size_t)sz, e->in->len);
    memcpy(buf, e->in->data, n);
    pk_buf_consume(e->in, n);
    return (int)n;
}

static int mem_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct mem_end *e = ctx;

    (void)ssl;
    if (sz <= 0) {
        return 0;
    }
    if (pk_buf_append(e->out, buf, (size_t)sz) != 0) {
        return WOLFSSL_CBIO_ERR_WANT_WRITE;
    }
    return sz;
}

static void attach_mem(WOLFSSL *ssl, struct mem_end *end)
{
    wolfSSL_SSLSetIORecv(ssl, mem_recv);
    wolfSSL_SSLSetIOSend(ssl, mem_send);
    wolfSSL_SetIOReadCtx(ssl, end);
    wolfSSL_SetIOWriteCtx(ssl, end);
}

/* Advance one side as far as the bytes queued for it allow; *done is set once it has finished.
 * 0, or PK_E_TLS (err set) when that side failed. */
static int step(WOLFSSL *ssl, bool server, bool *done, struct pk_err *err)
{
    int ret = server ? wolfSSL_accept(ssl) : wolfSSL_connect(ssl);
    char text[128];
    int e;

    if (ret == WOLFSSL_SUCCESS) {
        *done = true;
        return 0;
    }
    e = wolfSSL_get_error(ssl, ret);
    if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE) {
        return 0;
    }
    pk_tls_strerror(e, text, sizeof(text));
    return pk_err_set(err, PK_E_TLS, "self-check handshake failed: the %s side failed: %s (%d)",
                      server ? "server" : "client", text, e);
}

/* Each side must have received exactly our leaf. */
static int check_peer_leaf(WOLFSSL *ssl, const struct pk_cert *leaf, const char *side,
                           struct pk_err *err)
{
    struct pk_slice want = pk_cert_der(leaf);
    struct pk_buf got;
    int r;

    pk_buf_init(&got, CERT_DER_MAX);
    r = pk_tls_peer_leaf_der(ssl, &got);
    if (r != 0) {
        r = pk_err_set(err, PK_E_TLS,
                       "self-check handshake failed: the %s side has no peer certificate (%s)",
                       side, pk_err_str(r));
    } else if (got.len != want.len || memcmp(got.data, want.ptr, want.len) != 0) {
        r = pk_err_set(err, PK_E_TLS,
                       "self-check handshake failed: the %s side received a certificate other "
                       "than our leaf",
                       side);
    }
    pk_buf_free(&got);
    return r;
}

static int self_check(const struct pk_identity *id, struct pk_err *err)
{
    struct pk_buf to_server, to_client;
    struct mem_end client_end = {&to_client, &to_server};
    struct mem_end server_end = {&to_server, &to_client};
    WOLFSSL *c = NULL;
    WOLFSSL *s = NULL;
    bool c_done = false;
    bool s_done = false;
    int r;

    pk_buf_init(&to_server, SELF_CHECK_QUEUE_MAX);
    pk_buf_init(&to_client, SELF_CHECK_QUEUE_MAX);
    /* fd -1: wolfSSL_set_fd only records it; the memory callbacks replace the socket I/O. */
    r = pk_tls_session_new(id->client, -1, NULL, &c, err);
    if (r == 0) {
        r = pk_tls_session_new(id->server, -1, NULL, &s, err);
    }
    if (r != 0) {
        r = pk_err_prefix(err, PK_E_TLS, "self-check handshake failed");
        goto out;
    }
    attach_mem(c, &client_end);
    attach_mem(s, &server_end);
    for (int round = 0; round < SELF_CHECK_ROUNDS && !(c_done && s_done); round++) {
        if (!c_done) {
            r = step(c, false, &c_done, err);
            if (r != 0) {
                goto out;
            }
        }
        if (!s_done) {
            r = step(s, true, &s_done, err);
            if (r != 0) {
                goto out;
            }
        }
    }
    if (!(c_done && s_done)) {
        r = pk_err_set(err, PK_E_TLS,
                       "self-check handshake failed: not finished after %d rounds (client %s, "
                       "server %s)",
                       SELF_CHECK_ROUNDS, c_done ? "done" : "waiting", s_done ? "done" : "waiting");
        goto out;
    }
    r = check_peer_leaf(c, id->chain.v[0], "client", err);
    if (r == 0) {
        r = check_peer_leaf(s, id->chain.v[0], "server", err);
    }
out:
    if (c != NULL) {
        wolfSSL_free(c);
    }
    if (s != NULL) {
        wolfSSL_free(s);
    }
    pk_buf_free(&to_server);
    pk_buf_free(&to_client);
    return r;
}

/* ---- building ---- */

/* Keep the anchors valid at now (both ends included, as everywhere) in id->trusted, and note
 * when the next one expires or becomes valid. An empty result is an error: a TLS context
 * without anchors would verify nothing. */
static int select_trusted(struct pk_identity *id, time_t now, struct pk_err *err)
{
    id->trust_changes_at = 0;
    for (size_t i = 0; i < id->anchors.n; i++) {
        const struct pk_cert *a = id->anchors.v[i];
        time_t nb = pk_cert_not_before(a), na = pk_cert_not_after(a);
        time_t next = 0;
        if (now < nb) {
            next = nb;
        } else if (now <= na) {
            int r = pk_certs_push_copy(&id->trusted, a);
            PK_ASSERT(r == 0);
            next = na < INT64_MAX ? na + 1 : 0;
        }
        if (next != 0 && (id->trust_changes_at == 0 || next < id->trust_changes_at)) {
            id->trust_changes_at = next;
        }
    }
    if (id->trusted.n == 0) {
        return pk_err_set(err, PK_E_EXPIRED,
                          "none of the %zu trust anchors is valid now (expired or not yet valid)",
                          id->anchors.n);
    }
    return 0;
}

/* Takes key (freed on failure). new_anchors only changes the chain error's wording. */
static int build(struct pk_key *key, const struct pk_certs *chain, const struct pk_certs *anchors,
                 bool allow_tls12, const char *source, time_t now, bool new_anchors,
                 struct pk_identity **out, struct pk_err *err)
{
    struct pk_identity *id = pk_xcalloc(1, sizeof(*id));
    int r;

    id->magic = IDENTITY_MAGIC;
    atomic_init(&id->refs, 1);
    id->key = key;
    id->allow_tls12 = allow_tls12;
    id->source = pk_xstrdup(source != NULL ? source : "unknown");
    pk_buf_init(&id->chain_pem, PEM_MAX);
    pk_buf_init(&id->anchors_pem, PEM_MAX);
    pk_buf_init(&id->trusted_pem, PEM_MAX);
    if (key == NULL) {
        r = pk_err_set(err, PK_E_INVALID, "identity has no private key");
        goto out;
    }
    if (chain == NULL || chain->n == 0) {
        r = pk_err_set(err, PK_E_INVALID, "identity has an empty certificate chain");
        goto out;
    }
    if (anchors == NULL || anchors->n == 0) {
        r = pk_err_set(err, PK_E_INVALID, "identity has no trust anchors");
        goto out;
    }
    for (size_t i = 0; i < chain->n; i++) {
        r = pk_certs_push_copy(&id->chain, chain->v[i]);
        PK_ASSERT(r == 0);
    }
    for (size_t i = 0; i < anchors->n; i++) {
        r = pk_cert_check_anchor(anchors->v[i], "trust anchor", i + 1, err);
        if (r != 0) {
            goto out;
        }
        r = pk_certs_push_copy(&id->anchors, anchors->v[i]);
        PK_ASSERT(r == 0);
    }

    r = check_leaf(id, now, err);
    if (r != 0) {
        goto out;
    }
    r = verify_chain(id, new_anchors, err);
    if (r != 0) {
        goto out;
    }
    r = select_trusted(id, now, err);
    if (r != 0) {
        goto out;
    }

    const struct pk_cert *leaf = id->chain.v[0];
    pk_cert_serial_hex(leaf, id->serial_hex, sizeof(id->serial_hex));
    id->not_before = pk_cert_not_before(leaf);
    id->not_after = pk_cert_not_after(leaf);
    id->chain_not_after = id->not_after;
    for (size_t i = 1; i < id->chain.n; i++) {
        id->chain_not_after = PK_MIN(id->chain_not_after, pk_cert_not_after(id->chain.v[i]));
    }

    if (pk_certs_to_pem(&id->chain, &id->chain_pem) != 0 ||
        pk_certs_to_pem(&id->anchors, &id->anchors_pem) != 0 ||
        pk_certs_to_pem(&id->trusted, &id->trusted_pem) != 0) {
        r = pk_err_set(err, PK_E_TOOBIG,
                       "identity's certificate chain or trust anchors are too large");
        goto out;
    }
    r = build_tls(id, err);
    if (r != 0) {
        goto out;
    }
    r = self_check(id, err);
    if (r != 0) {
        goto out;
    }
    *out = id;
    id = NULL;
out:
    if (id != NULL) {
        identity_free(id);
    }
    return r;
}

int pk_identity_new(const struct pk_identity_params *p, time_t now, struct pk_identity **out,
                    struct pk_err *err)
{
    return build(p->key, p->chain, p->anchors, p->allow_tls12, p->source, now, false, out, err);
}

int pk_identity_with_anchors(const struct pk_identity *old, const struct pk_certs *anchors,
                             time_t now, struct pk_identity **out, struct pk_err *err)
{
    struct pk_key *key = NULL;
    struct pk_buf pem;
    int r;

    PK_ASSERT(old->magic == IDENTITY_MAGIC);
    /* No pk_key copy function exists: go through PKCS#8, in a buffer wiped on free. */
    pk_buf_init_secret(&pem, KEY_DER_MAX * 2);
    r = pk_key_to_pem(old->key, &pem);
    if (r == 0) {
        r = pk_key_load_pem(pem.data, pem.len, "identity key", &key, err);
    } else {
        r = pk_err_set(err, r, "cannot copy the identity's private key");
    }
    pk_buf_free(&pem);
    if (r != 0) {
        return r;
    }
    return build(key, &old->chain, anchors, old->allow_tls12, old->source, now, true, out, err);
}

struct pk_identity *pk_identity_ref(struct pk_identity *id)
{
    PK_ASSERT(id->magic == IDENTITY_MAGIC);
    unsigned old = atomic_fetch_add_explicit(&id->refs, 1, memory_order_relaxed);
    PK_ASSERT(old > 0);
    return id;
}

void pk_identity_unref(struct pk_identity *id)
{
    if (id == NULL) {
        return;
    }
    PK_ASSERT(id->magic == IDENTITY_MAGIC);
    /* acq_rel: every use by other holders happens before the free below. */
    unsigned old = atomic_fetch_sub_explicit(&id->refs, 1, memory_order_acq_rel);
    PK_ASSERT(old > 0);
    if (old == 1) {
        identity_free(id);
    }
}

/* ---- accessors ---- */

const char *pk_identity_spiffe_id(const struct pk_identity *id)
{
    return id->spiffe.uri;
}

const struct pk_spiffe_id *pk_identity_spiffe(const struct pk_identity *id)
{
    return &id->spiffe;
}

const char *pk_identity_serial_hex(const struct pk_identity *id)
{
    return id->serial_hex;
}

time_t pk_identity_not_before(const struct pk_identity *id)
{
    return id->not_before;
}

time_t pk_identity_not_after(const struct pk_identity *id)
{
    return id->not_after;
}

time_t pk_identity_chain_not_after(const struct pk_identity *id)
{
    return id->chain_not_after;
}

const char *pk_identity_source(const struct pk_identity *id)
{
    return id->source;
}

const struct pk_certs *pk_identity_chain(const struct pk_identity *id)
{
    return &id->chain;
}

const struct pk_certs *pk_identity_anchors(const struct pk_identity *id)
{
    return &id->anchors;
}

struct pk_slice pk_identity_chain_pem(const struct pk_identity *id)
{
    return pk_buf_slice(&id->chain_pem);
}

struct pk_slice pk_identity_anchors_pem(const struct pk_identity *id)
{
    return pk_buf_slice(&id->anchors_pem);
}

const struct pk_certs *pk_identity_trusted_anchors(const struct pk_identity *id)
{
    return &id->trusted;
}

struct pk_slice pk_identity_trusted_anchors_pem(const struct pk_identity *id)
{
    return pk_buf_slice(&id->trusted_pem);
}

time_t pk_identity_trust_changes_at(const struct pk_identity *id)
{
    return id->trust_changes_at;
}

struct pk_tls_ctx *pk_identity_server_tls(const struct pk_identity *id)
{
    return id->server;
}

struct pk_tls_ctx *pk_identity_client_tls(const struct pk_identity *id)
{
    return id->client;
}

int pk_identity_key_pem(const struct pk_identity *id, struct pk_buf *out)
{
    PK_ASSERT(id->magic == IDENTITY_MAGIC);
    return pk_key_to_pem(id->key, out);
}

void pk_identity_anchor_fingerprint(const struct pk_identity *id, size_t i, char out[65])
{
    PK_ASSERT(i < id->anchors.n);
    pk_cert_fingerprint(id->anchors.v[i], out);
}

/* ---- publication slot ---- */

void pk_identity_slot_init(struct pk_identity_slot *slot)
{
    int r = pthread_mutex_init(&slot->_lock, NULL);
    PK_ASSERT(r == 0);
    slot->_current = NULL;
    atomic_init(&slot->_generation, 0);
}

void pk_identity_slot_destroy(struct pk_identity_slot *slot)
{
    pk_identity_unref(slot->_current);
    slot->_current = NULL;
    pthread_mutex_destroy(&slot->_lock);
}

void pk_identity_slot_publish(struct pk_identity_slot *slot, struct pk_identity *id)
{
    struct pk_identity *old;

    PK_ASSERT(id == NULL || id->magic == IDENTITY_MAGIC);
    pthread_mutex_lock(&slot->_lock);
    old = slot->_current;
    slot->_current = id;
    atomic_fetch_add_explicit(&slot->_generation, 1, memory_order_release);
    pthread_mutex_unlock(&slot->_lock);
    /* Possibly the last reference: free it outside the lock so readers are not held up. */
    pk_identity_unref(old);
}

struct pk_identity *pk_identity_slot_get(struct pk_identity_slot *slot)
{
    struct pk_identity *id;

    pthread_mutex_lock(&slot->_lock);
    id = slot->_current != NULL ? pk_identity_ref(slot->_current) : NULL;
    pthread_mutex_unlock(&slot->_lock);
    return id;
}

struct pk_identity *pk_identity_slot_peek(const struct pk_identity_slot *slot)
{
    /* No lock: the caller is the only thread that writes _current. */
    return slot->_current;
}

uint64_t pk_identity_slot_generation(const struct pk_identity_slot *slot)
{
    /* C11 atomic_load wants a non-const pointer in older compilers; the load does not write. */
    return atomic_load_explicit((atomic_uint_fast64_t *)&slot->_generation, memory_order_acquire);
}
