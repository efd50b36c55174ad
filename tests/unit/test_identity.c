/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for common/identity: good P-256 and Ed25519 identities (self-check
 * included), every refusal with its code and message, trust-anchor changes, the refcount, and
 * the publication slot under concurrent readers. Every certificate is minted at test time. */
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

#include <ctype.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/identity.h"
#include "common/key.h"
#include "common/pem.h"
#include "common/tls.h"
#include "common/x509.h"
#include "testutil.h"

#define TD       "example.test"
#define ISSUER_O "spiffe://example.test/ns/dapr-system/dapr-sentry"
#define FRONTEND "spiffe://example.test/ns/default/frontend"
#define BACKEND  "spiffe://example.test/ns/default/backend"

/* ---- fixtures ---- */

/* A root and an issuer signed by it, in the Dapr Sentry profile. */
struct pki {
    enum pk_key_type type;
    struct pk_key *root_key;
    struct pk_key *iss_key;
    struct pk_cert *root;
    struct pk_cert *iss;
    struct pk_certs roots;
};

static struct pki p256, ed, foreign;

static void pki_make(struct pki *p, enum pk_key_type type, const char *org)
{
    time_t now = time(NULL);
    struct pk_cert_template rt = {
            .subject_o = org,
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
    /* The issuer expires first, so the chain's not-after is the issuer's. */
    it.not_after = now + 30 * 86400;
    memset(p, 0, sizeof(*p));
    p->type = type;
    assert_int_equal(pk_key_generate(type, &p->root_key, NULL), 0);
    assert_int_equal(pk_key_generate(type, &p->iss_key, NULL), 0);
    p->root = issue(&rt, p->root_key, NULL, p->root_key);
    p->iss = issue(&it, p->iss_key, p->root, p->root_key);
    assert_int_equal(pk_certs_push_copy(&p->roots, p->root), 0);
}

static void pki_free(struct pki *p)
{
    pk_key_free(p->root_key);
    pk_key_free(p->iss_key);
    pk_cert_free(p->root);
    pk_cert_free(p->iss);
    pk_certs_clear(&p->roots);
}

/* A workload key and its chain (leaf, issuer). */
struct leaf {
    struct pk_key *key;
    struct pk_certs chain;
};

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

static void leaf_make(struct leaf *l, const struct pki *p, const struct pk_cert_template *t)
{
    memset(l, 0, sizeof(*l));
    assert_int_equal(pk_key_generate(p->type, &l->key, NULL), 0);
    struct pk_cert *cert = issue(t, l->key, p->iss, p->iss_key);
    assert_int_equal(pk_certs_push_copy(&l->chain, cert), 0);
    assert_int_equal(pk_certs_push_copy(&l->chain, p->iss), 0);
    pk_cert_free(cert);
}

static void leaf_free(struct leaf *l)
{
    pk_key_free(l->key);
    pk_certs_clear(&l->chain);
}

/* pk_identity_new with l's key (taken: l->key is cleared whatever the outcome). */
static int leaf_identity(struct leaf *l, const struct pk_certs *anchors, time_t now,
                         struct pk_identity **out, struct pk_err *err)
{
    struct pk_identity_params p = {
            .key = l->key,
            .chain = &l->chain,
            .anchors = anchors,
            .source = "test",
    };
    l->key = NULL;
    return pk_identity_new(&p, now, out, err);
}

/* A good identity with the given URI from p, or a test failure. */
static struct pk_identity *good_identity(const struct pki *p, const char *uri)
{
    struct pk_cert_template t = leaf_tmpl(uri);
    struct pk_identity *id = NULL;
    struct pk_err err = {{0}};
    struct leaf l;

    leaf_make(&l, p, &t);
    int r = leaf_identity(&l, &p->roots, time(NULL), &id, &err);
    if (r != 0) {
        fail_msg("pk_identity_new: %d %s", r, err.msg);
    }
    leaf_free(&l);
    return id;
}

/* pk_identity_new must fail with code and a message containing frag. */
static void expect_refused(struct leaf *l, const struct pk_certs *anchors, time_t now, int code,
                           const char *frag)
{
    struct pk_identity *id = NULL;
    struct pk_err err = {{0}};
    int r = leaf_identity(l, anchors, now, &id, &err);

    if (r != code || strstr(err.msg, frag) == NULL) {
        fail_msg("expected %d (%s) with '%s', got %d: %s", code, pk_err_str(code), frag, r,
                 err.msg);
    }
    assert_null(id);
}

static void expect_leaf_refused(const struct pki *p, const struct pk_cert_template *t, int code,
                                const char *frag)
{
    struct leaf l;

    leaf_make(&l, p, t);
    expect_refused(&l, &p->roots, time(NULL), code, frag);
    leaf_free(&l);
}

static int setup(void **state)
{
    (void)state;
    if (tmpdir_create("identitytest") != 0) {
        return -1;
    }
    pki_make(&p256, PK_KEY_P256, TD);
    pki_make(&ed, PK_KEY_ED25519, TD);
    pki_make(&foreign, PK_KEY_P256, "foreign.test");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pki_free(&p256);
    pki_free(&ed);
    pki_free(&foreign);
    pk_tls_thread_exit();
    return tmpdir_remove();
}

static void write_cert(const char *name, const struct pk_cert *cert)
{
    struct pk_buf pem;
    struct pk_slice der = pk_cert_der(cert);

    pk_buf_init(&pem, 1 << 16);
    assert_int_equal(pk_pem_encode("CERTIFICATE", der.ptr, der.len, &pem), 0);
    write_file(name, pem.data, pem.len);
    pk_buf_free(&pem);
}

static void fmt_time(time_t t, char *out, size_t len)
{
    struct tm tm;
    assert_non_null(gmtime_r(&t, &tm));
    assert_true(strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0);
}

/* ---- good identities ---- */

static void check_good(const struct pki *p, bool allow_tls12)
{
    struct pk_cert_template t = leaf_tmpl(FRONTEND);
    struct pk_identity *id = NULL;
    struct pk_err err = {{0}};
    struct pk_certs parsed = {0};
    struct pk_key *key = NULL;
    struct pk_buf pem;
    char serial[64];
    char fp[65];
    struct leaf l;

    leaf_make(&l, p, &t);
    struct pk_identity_params params = {
            .key = l.key,
            .chain = &l.chain,
            .anchors = &p->roots,
            .allow_tls12 = allow_tls12,
            .source = "sentry",
    };
    l.key = NULL;
    int r = pk_identity_new(&params, time(NULL), &id, &err);
    if (r != 0) {
        fail_msg("pk_identity_new: %d %s", r, err.msg);
    }
    const struct pk_cert *leaf = l.chain.v[0];

    assert_string_equal(pk_identity_spiffe_id(id), FRONTEND);
    assert_string_equal(pk_identity_spiffe(id)->trust_domain, TD);
    assert_true(pk_identity_spiffe(id)->is_workload);
    assert_string_equal(pk_identity_spiffe(id)->namespace_, "default");
    assert_string_equal(pk_identity_spiffe(id)->app_id, "frontend");
    pk_cert_serial_hex(leaf, serial, sizeof(serial));
    assert_string_equal(pk_identity_serial_hex(id), serial);
    assert_true(pk_identity_not_before(id) == pk_cert_not_before(leaf));
    assert_true(pk_identity_not_after(id) == pk_cert_not_after(leaf));
    /* The leaf lives a day, the issuer 30: the chain's not-after is the leaf's. */
    assert_true(pk_identity_chain_not_after(id) == pk_cert_not_after(leaf));
    assert_string_equal(pk_identity_source(id), "sentry");
    assert_int_equal(pk_identity_chain(id)->n, 2);
    assert_int_equal(pk_identity_anchors(id)->n, 1);
    assert_true(pk_identity_chain(id) != &l.chain);

    /* The PEM forms parse back to the same certificates. */
    struct pk_slice s = pk_identity_chain_pem(id);
    assert_int_equal(pk_certs_parse_pem(s.ptr, s.len, "chain", &parsed, &err), 0);
    assert_int_equal(parsed.n, 2);
    assert_int_equal(pk_cert_der(parsed.v[0]).len, pk_cert_der(leaf).len);
    assert_memory_equal(pk_cert_der(parsed.v[0]).ptr, pk_cert_der(leaf).ptr, pk_cert_der(leaf).len);
    pk_certs_clear(&parsed);
    s = pk_identity_anchors_pem(id);
    assert_int_equal(pk_certs_parse_pem(s.ptr, s.len, "anchors", &parsed, &err), 0);
    assert_int_equal(parsed.n, 1);
    assert_memory_equal(pk_cert_der(parsed.v[0]).ptr, pk_cert_der(p->root).ptr,
                        pk_cert_der(p->root).len);
    pk_certs_clear(&parsed);

    /* The TLS contexts. */
    assert_non_null(pk_identity_server_tls(id));
    assert_non_null(pk_identity_client_tls(id));
    assert_true(pk_tls_ctx_is_server(pk_identity_server_tls(id)));
    assert_false(pk_tls_ctx_is_server(pk_identity_client_tls(id)));
    assert_null(pk_tls_ctx_alpn(pk_identity_server_tls(id)));

    /* The exported key is the leaf's. */
    pk_buf_init_secret(&pem, 4096);
    assert_int_equal(pk_identity_key_pem(id, &pem), 0);
    assert_non_null(strstr((const char *)pem.data, "-----BEGIN PRIVATE KEY-----"));
    assert_int_equal(pk_key_load_pem(pem.data, pem.len, "exported", &key, &err), 0);
    assert_true(pk_cert_matches_key(leaf, key));
    pk_key_free(key);
    pk_buf_free(&pem);

    /* The anchor fingerprint matches OpenSSL's. */
    pk_identity_anchor_fingerprint(id, 0, fp);
    assert_int_equal(strlen(fp), 64);
    {
        struct pk_buf out;
        char want[65];
        size_t n = 0;

        write_cert("root.pem", p->root);
        sh("openssl x509 -in root.pem -noout -fingerprint -sha256 > fp.txt");
        slurp("fp.txt", &out);
        const char *q = strchr((const char *)out.data, '=');
        assert_non_null(q);
        for (q++; *q != '\0' && *q != '\n' && n < 64; q++) {
            if (*q != ':') {
                want[n++] = (char)tolower((unsigned char)*q);
            }
        }
        want[n] = '\0';
        assert_string_equal(fp, want);
        pk_buf_free(&out);
    }

    /* The caller's inputs are copies: freeing them leaves the identity intact. */
    leaf_free(&l);
    assert_string_equal(pk_identity_spiffe_id(id), FRONTEND);
    assert_int_equal(pk_cert_uri_count(pk_identity_chain(id)->v[0]), 1);
    pk_identity_unref(id);
}

static void good_p256(void **state)
{
    (void)state;
    check_good(&p256, false);
}

static void good_p256_tls12(void **state)
{
    (void)state;
    check_good(&p256, true);
}

static void good_ed25519(void **state)
{
    (void)state;
    check_good(&ed, false);
}

/* The chain's not-after is the earliest over leaf and intermediates. */
static void chain_not_after(void **state)
{
    struct pk_cert_template t = leaf_tmpl(FRONTEND);
    struct pk_identity *id = NULL;
    struct pk_err err = {{0}};
    struct leaf l;

    (void)state;
    t.not_after = time(NULL) + 90 * 86400; /* past the issuer's 30 days */
    leaf_make(&l, &p256, &t);
    assert_int_equal(leaf_identity(&l, &p256.roots, time(NULL), &id, &err), 0);
    assert_true(pk_identity_not_after(id) == t.not_after);
    assert_true(pk_identity_chain_not_after(id) == pk_cert_not_after(p256.iss));
    pk_identity_unref(id);
    leaf_free(&l);
}

/* Handshakes between two identities' contexts over a real socket pair: the server side of one
 * and the client side of the other see each other's leaf. Also shows that the contexts carry
 * the default socket I/O (the self-check's memory callbacks were per-WOLFSSL only). */
static void contexts_interoperate(void **state)
{
    struct pk_identity *front = good_identity(&p256, FRONTEND);
    struct pk_identity *back = good_identity(&p256, BACKEND);
    struct pk_err err = {{0}};
    WOLFSSL *c = NULL;
    WOLFSSL *s = NULL;
    bool c_done = false;
    bool s_done = false;
    struct pk_buf der;
    int sv[2];

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(fcntl(sv[i], F_SETFL, fcntl(sv[i], F_GETFL) | O_NONBLOCK), 0);
    }
    assert_int_equal(pk_tls_session_new(pk_identity_client_tls(front), sv[0], NULL, &c, &err), 0);
    assert_int_equal(pk_tls_session_new(pk_identity_server_tls(back), sv[1], NULL, &s, &err), 0);
    for (int round = 0; round < 100 && !(c_done && s_done); round++) {
        if (!c_done) {
            int r = wolfSSL_connect(c);
            if (r == WOLFSSL_SUCCESS) {
                c_done = true;
            } else {
                int e = wolfSSL_get_error(c, r);
                assert_true(e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE);
            }
        }
        if (!s_done) {
            int r = wolfSSL_accept(s);
            if (r == WOLFSSL_SUCCESS) {
                s_done = true;
            } else {
                int e = wolfSSL_get_error(s, r);
                assert_true(e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE);
            }
        }
    }
    assert_true(c_done && s_done);
    pk_buf_init(&der, 1 << 16);
    assert_int_equal(pk_tls_peer_leaf_der(c, &der), 0);
    assert_memory_equal(der.data, pk_cert_der(pk_identity_chain(back)->v[0]).ptr, der.len);
    pk_buf_reset(&der);
    assert_int_equal(pk_tls_peer_leaf_der(s, &der), 0);
    assert_memory_equal(der.data, pk_cert_der(pk_identity_chain(front)->v[0]).ptr, der.len);
    pk_buf_free(&der);
    wolfSSL_free(c);
    wolfSSL_free(s);
    close(sv[0]);
    close(sv[1]);
    pk_identity_unref(front);
    pk_identity_unref(back);
}

/* Two roots with the same subject and different keys, each with an issuer that has no
 * authority key identifier, as Dapr's bundle generator makes them (every root of a trust domain
 * is O=<trust domain>). wolfSSL finds such an issuer's root by name alone and takes one of the
 * two for both chains; an identity under either root must still verify, and handshake with one
 * under the other, when the anchors hold both. */
static void same_subject_roots(void **state)
{
    struct pki a, b;
    struct pk_certs anchors = {NULL, 0};
    struct pk_identity *ids[2] = {NULL, NULL};
    const char *uris[2] = {FRONTEND, BACKEND};
    struct pki *sets[2] = {&a, &b};

    (void)state;
    for (int i = 0; i < 2; i++) {
        time_t now = time(NULL);
        struct pk_cert_template rt = {
                .subject_o = TD,
                .not_before = now - 900,
                .not_after = now + 365 * 86400,
                .is_ca = true,
                .path_len = -1,
                .key_usage = PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN,
                .subject_key_id = false, /* so the issuer gets no authority key identifier */
        };
        struct pk_cert_template it = rt;
        struct pki *p = sets[i];
        it.subject_o = ISSUER_O;
        memset(p, 0, sizeof(*p));
        p->type = PK_KEY_ED25519;
        assert_int_equal(pk_key_generate(p->type, &p->root_key, NULL), 0);
        assert_int_equal(pk_key_generate(p->type, &p->iss_key, NULL), 0);
        p->root = issue(&rt, p->root_key, NULL, p->root_key);
        p->iss = issue(&it, p->iss_key, p->root, p->root_key);
        assert_int_equal(pk_cert_skid(p->root).len, 0);
        assert_int_equal(pk_certs_push_copy(&anchors, p->root), 0);
    }
    for (int i = 0; i < 2; i++) {
        struct pk_cert_template t = leaf_tmpl(uris[i]);
        struct pk_err err = {{0}};
        struct leaf l;
        leaf_make(&l, sets[i], &t);
        int r = leaf_identity(&l, &anchors, time(NULL), &ids[i], &err);
        if (r != 0) {
            fail_msg("identity under root %d of two with the same subject: %d %s", i + 1, r,
                     err.msg);
        }
        leaf_free(&l);
    }
    /* Each side verifies the other's chain, which leads to the other root. */
    {
        struct pk_err err = {{0}};
        WOLFSSL *c = NULL;
        WOLFSSL *s = NULL;
        bool c_done = false;
        bool s_done = false;
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        for (int i = 0; i < 2; i++) {
            assert_int_equal(fcntl(sv[i], F_SETFL, fcntl(sv[i], F_GETFL) | O_NONBLOCK), 0);
        }
        assert_int_equal(pk_tls_session_new(pk_identity_client_tls(ids[0]), sv[0], NULL, &c, &err),
                         0);
        assert_int_equal(pk_tls_session_new(pk_identity_server_tls(ids[1]), sv[1], NULL, &s, &err),
                         0);
        for (int round = 0; round < 100 && !(c_done && s_done); round++) {
            if (!c_done) {
                int r = wolfSSL_connect(c);
                c_done = r == WOLFSSL_SUCCESS;
                if (!c_done) {
                    int e = wolfSSL_get_error(c, r);
                    assert_true(e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE);
                }
            }
            if (!s_done) {
                int r = wolfSSL_accept(s);
                s_done = r == WOLFSSL_SUCCESS;
                if (!s_done) {
                    int e = wolfSSL_get_error(s, r);
                    assert_true(e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE);
                }
            }
        }
        assert_true(c_done && s_done);
        wolfSSL_free(c);
        wolfSSL_free(s);
        close(sv[0]);
        close(sv[1]);
    }
    /* A root of that subject that signed neither chain still gives no way in. */
    {
        struct pki other;
        struct pk_certs only_other = {NULL, 0};
        struct pk_err err = {{0}};
        struct pk_cert_template t = leaf_tmpl(FRONTEND);
        struct pk_identity *id = NULL;
        struct leaf l;
        pki_make(&other, PK_KEY_ED25519, TD);
        assert_int_equal(pk_certs_push_copy(&only_other, other.root), 0);
        assert_int_equal(pk_certs_push_copy(&only_other, b.root), 0);
        leaf_make(&l, &a, &t);
        assert_int_not_equal(leaf_identity(&l, &only_other, time(NULL), &id, &err), 0);
        assert_null(id);
        leaf_free(&l);
        pk_certs_clear(&only_other);
        pki_free(&other);
    }
    for (int i = 0; i < 2; i++) {
        pk_identity_unref(ids[i]);
        pki_free(sets[i]);
    }
    pk_certs_clear(&anchors);
}

/* ---- refusals ---- */

static void refuse_bad_params(void **state)
{
    struct pk_cert_template t = leaf_tmpl(FRONTEND);
    struct pk_certs none = {0};
    struct pk_identity *id = NULL;
    struct pk_err err = {{0}};
    struct leaf l;

    (void)state;
    leaf_make(&l, &p256, &t);
    /* No anchors; the key is freed anyway (ASan would report it otherwise). */
    expect_refused(&l, &none, time(NULL), PK_E_INVALID, "no trust anchors");
    assert_null(l.key);
    /* No chain. */
    assert_int_equal(pk_key_generate(PK_KEY_P256, &l.key, NULL), 0);
    struct pk_identity_params p = {.key = l.key, .chain = &none, .anchors = &p256.roots};
    l.key = NULL;
    assert_int_equal(pk_identity_new(&p, time(NULL), &id, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "empty certificate chain"));
    /* No key. */
    p.key = NULL;
    p.chain = &l.chain;
    assert_int_equal(pk_identity_new(&p, time(NULL), &id, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "no private key"));
    assert_null(id);
    leaf_free(&l);
}

static void refuse_no_uri(void **state)
{
    struct pk_cert_template t = leaf_tmpl(NULL);

    (void)state;
    t.subject_cn = "no-uri";
    expect_leaf_refused(&p256, &t, PK_E_INVALID, "has no URI SAN");
}

/* pk_cert_issue writes one URI SAN at most, so OpenSSL signs this one with our issuer. */
static void refuse_two_uris(void **state)
{
    struct pk_buf pem;
    struct leaf l;
    struct pk_err err = {{0}};
    static const char ext[] =
            "subjectAltName=critical,URI:" FRONTEND ",URI:" BACKEND "\n"
            "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n";

    (void)state;
    memset(&l, 0, sizeof(l));
    write_cert("iss.pem", p256.iss);
    pk_buf_init_secret(&pem, 4096);
    assert_int_equal(pk_key_to_pem(p256.iss_key, &pem), 0);
    write_file("iss.key", pem.data, pem.len);
    pk_buf_free(&pem);
    write_file("two.ext", ext, sizeof(ext) - 1);
    sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out two.key");
    sh("openssl req -new -key two.key -subj /CN=two-uris -out two.csr");
    sh("openssl x509 -req -in two.csr -CA iss.pem -CAkey iss.key -set_serial 0x1234 -days 1 "
       "-extfile two.ext -out two.pem");
    slurp("two.pem", &pem);
    assert_int_equal(pk_certs_parse_pem(pem.data, pem.len, "two.pem", &l.chain, &err), 0);
    pk_buf_free(&pem);
    assert_int_equal(pk_cert_uri_count(l.chain.v[0]), 2);
    assert_int_equal(pk_certs_push_copy(&l.chain, p256.iss), 0);
    slurp("two.key", &pem);
    assert_int_equal(pk_key_load_pem(pem.data, pem.len, "two.key", &l.key, &err), 0);
    pk_buf_free(&pem);
    expect_refused(&l, &p256.roots, time(NULL), PK_E_INVALID, "has 2 URI SANs");
    leaf_free(&l);
}

static void refuse_non_spiffe_uri(void **state)
{
    struct pk_cert_template t = leaf_tmpl("https://example.test/ns/default/frontend");

    (void)state;
    expect_leaf_refused(&p256, &t, PK_E_INVALID, "URI SAN is not a SPIFFE ID");
    t.uri_san = "spiffe://example.test/ns/default/";
    expect_leaf_refused(&p256, &t, PK_E_INVALID, "URI SAN is not a SPIFFE ID");
}

static void refuse_ca_leaf(void **state)
{
    struct pk_cert_template t = leaf_tmpl(FRONTEND);

    (void)state;
    t.is_ca = true;
    t.path_len = -1;
    t.key_usage = PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN;
    expect_leaf_refused(&p256, &t, PK_E_INVALID, "is a CA certificate");
    /* Not a CA, but its key usage lets it sign certificates or CRLs. */
    t.is_ca = false;
    expect_leaf_refused(&p256, &t, PK_E_INVALID, "has key usage keyCertSign");
    t.key_usage = PK_KU_DIGITAL_SIGNATURE | PK_KU_CRL_SIGN;
    expect_leaf_refused(&p256, &t, PK_E_INVALID, "has key usage cRLSign");
}

static void refuse_key_mismatch(void **state)
{
    struct pk_cert_template t = leaf_tmpl(FRONTEND);
    struct leaf l;

    (void)state;
    leaf_make(&l, &p256, &t);
    pk_key_free(l.key);
    assert_int_equal(pk_key_generate(PK_KEY_P256, &l.key, NULL), 0);
    expect_refused(&l, &p256.roots, time(NULL), PK_E_MISMATCH,
                   "private key (P-256) does not match the leaf certificate");
    /* A key of the other type. */
    assert_int_equal(pk_key_generate(PK_KEY_ED25519, &l.key, NULL), 0);
    expect_refused(&l, &p256.roots, time(NULL), PK_E_MISMATCH, "does not match");
    leaf_free(&l);
}

static void refuse_expired(void **state)
{
    time_t now = time(NULL);
    struct pk_cert_template t = leaf_tmpl(FRONTEND);
    char frag[128];
    char when[32];
    struct leaf l;

    (void)state;
    t.not_before = now - 7200;
    t.not_after = now - 3600;
    fmt_time(t.not_after, when, sizeof(when));
    snprintf(frag, sizeof(frag), "has expired: not after %s", when);
    expect_leaf_refused(&p256, &t, PK_E_EXPIRED, frag);

    /* `now' is what counts for the leaf: a good certificate checked a week ahead. */
    t = leaf_tmpl(FRONTEND);
    leaf_make(&l, &p256, &t);
    fmt_time(t.not_after, when, sizeof(when));
    snprintf(frag, sizeof(frag), "has expired: not after %s", when);
    expect_refused(&l, &p256.roots, now + 7 * 86400, PK_E_EXPIRED, frag);
    leaf_free(&l);
}

static void refuse_not_yet_valid(void **state)
{
    time_t now = time(NULL);
    struct pk_cert_template t = leaf_tmpl(FRONTEND);
    char frag[128];
    char when[32];

    (void)state;
    t.not_before = now + 3600;
    t.not_after = now + 7200;
    fmt_time(t.not_before, when, sizeof(when));
    snprintf(frag, sizeof(frag), "is not yet valid: not before %s", when);
    expect_leaf_refused(&p256, &t, PK_E_NOTYETVALID, frag);
}

static void refuse_foreign_root(void **state)
{
    struct pk_cert_template t = leaf_tmpl(FRONTEND);
    struct leaf l;

    (void)state;
    leaf_make(&l, &p256, &t);
    expect_refused(&l, &foreign.roots, time(NULL), PK_E_UNTRUSTED,
                   "certificate chain does not verify against the trust anchors");
    leaf_free(&l);
}

/* A workload certificate among the anchors is refused, naming it. */
static void refuse_leaf_anchor(void **state)
{
    struct pk_identity *other = good_identity(&p256, BACKEND);
    struct pk_cert_template t = leaf_tmpl(FRONTEND);
    struct pk_certs set = {0};
    struct leaf l;

    (void)state;
    assert_int_equal(pk_certs_push_copy(&set, p256.root), 0);
    assert_int_equal(pk_certs_push_copy(&set, pk_identity_chain(other)->v[0]), 0);
    leaf_make(&l, &p256, &t);
    expect_refused(&l, &set, time(NULL), PK_E_INVALID,
                   "trust anchor #2 (URI " BACKEND ") is not a CA certificate");
    leaf_free(&l);
    pk_certs_clear(&set);
    pk_identity_unref(other);
}

/* Only wolfSSL's handshake checks the extended key usage: the self-check is what refuses a leaf
 * that could not act as a client. */
static void refuse_self_check(void **state)
{
    struct pk_cert_template t = leaf_tmpl(FRONTEND);

    (void)state;
    t.ext_key_usage = PK_EKU_SERVER_AUTH;
    expect_leaf_refused(&p256, &t, PK_E_TLS, "self-check handshake failed");
}

/* ---- trust anchor changes ---- */

static void with_anchors(void **state)
{
    struct pk_identity *old = good_identity(&p256, FRONTEND);
    struct pk_identity *id = NULL;
    struct pk_err err = {{0}};
    struct pk_certs set = {0};
    struct pk_certs none = {0};
    struct pk_buf a, b;
    char fp[65];

    (void)state;
    /* A set without our root would cut us off from our own chain. */
    assert_int_equal(pk_certs_push_copy(&set, foreign.root), 0);
    assert_int_equal(pk_identity_with_anchors(old, &set, time(NULL), &id, &err), PK_E_UNTRUSTED);
    assert_non_null(strstr(err.msg, "the new trust anchors do not verify our own certificate "
                                    "chain (" FRONTEND ")"));
    assert_null(id);
    assert_int_equal(pk_identity_with_anchors(old, &none, time(NULL), &id, &err), PK_E_INVALID);
    assert_null(id);

    /* Old and new roots together: accepted, same key and chain, old untouched. */
    assert_int_equal(pk_certs_push_copy(&set, p256.root), 0);
    int r = pk_identity_with_anchors(old, &set, time(NULL), &id, &err);
    if (r != 0) {
        fail_msg("pk_identity_with_anchors: %d %s", r, err.msg);
    }
    assert_int_equal(pk_identity_anchors(id)->n, 2);
    assert_int_equal(pk_identity_anchors(old)->n, 1);
    assert_string_equal(pk_identity_spiffe_id(id), FRONTEND);
    assert_string_equal(pk_identity_serial_hex(id), pk_identity_serial_hex(old));
    assert_string_equal(pk_identity_source(id), pk_identity_source(old));
    assert_true(pk_identity_server_tls(id) != pk_identity_server_tls(old));
    pk_buf_init_secret(&a, 4096);
    pk_buf_init_secret(&b, 4096);
    assert_int_equal(pk_identity_key_pem(old, &a), 0);
    assert_int_equal(pk_identity_key_pem(id, &b), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    pk_buf_free(&a);
    pk_buf_free(&b);
    /* The anchors' fingerprints follow their order. */
    pk_identity_anchor_fingerprint(id, 0, fp);
    {
        char fp_old[65];
        pk_identity_anchor_fingerprint(old, 0, fp_old);
        assert_string_not_equal(fp, fp_old);
        pk_identity_anchor_fingerprint(id, 1, fp);
        assert_string_equal(fp, fp_old);
    }
    /* Each outlives the other. */
    pk_identity_unref(old);
    assert_string_equal(pk_identity_spiffe_id(id), FRONTEND);
    pk_identity_unref(id);
    pk_certs_clear(&set);
}

/* ---- refcount and slot ---- */

static void slot_sequences(void **state)
{
    struct pk_identity *a = good_identity(&p256, FRONTEND);
    struct pk_identity *b = good_identity(&ed, BACKEND);
    struct pk_identity_slot slot;
    struct pk_identity *g;

    (void)state;
    pk_identity_unref(NULL);
    pk_identity_slot_init(&slot);
    assert_null(pk_identity_slot_get(&slot));
    assert_null(pk_identity_slot_peek(&slot));
    assert_int_equal(pk_identity_slot_generation(&slot), 0);

    /* The slot takes the reference it is given. */
    pk_identity_slot_publish(&slot, pk_identity_ref(a));
    assert_int_equal(pk_identity_slot_generation(&slot), 1);
    g = pk_identity_slot_get(&slot);
    assert_ptr_equal(g, a);
    assert_ptr_equal(pk_identity_slot_peek(&slot), a); /* borrowed: the publisher's view */
    /* Replaced while g is held: g stays usable. */
    pk_identity_slot_publish(&slot, b); /* our reference on b moves to the slot */
    assert_int_equal(pk_identity_slot_generation(&slot), 2);
    pk_identity_unref(a); /* g is now the last reference on a */
    assert_string_equal(pk_identity_spiffe_id(g), FRONTEND);
    pk_identity_unref(g); /* frees a */

    g = pk_identity_slot_get(&slot);
    assert_ptr_equal(g, b);
    assert_string_equal(pk_identity_spiffe_id(g), BACKEND);
    /* Emptying the slot drops its reference; ours keeps b. */
    pk_identity_slot_publish(&slot, NULL);
    assert_null(pk_identity_slot_get(&slot));
    assert_null(pk_identity_slot_peek(&slot));
    assert_int_equal(pk_identity_slot_generation(&slot), 3);
    assert_string_equal(pk_identity_spiffe_id(g), BACKEND);
    /* Republish the same identity twice: each publish takes one reference. */
    pk_identity_slot_publish(&slot, pk_identity_ref(g));
    pk_identity_slot_publish(&slot, pk_identity_ref(g));
    pk_identity_unref(g);
    /* destroy drops the last reference on b. */
    pk_identity_slot_destroy(&slot);
}

#define N_IDS      8
#define N_PUBLISH  200
#define N_READERS  2
#define N_LAST_USE 8 /* the last publishes hand over our only reference */

struct reader {
    struct pk_identity_slot *slot;
    atomic_bool *stop;
    atomic_ulong gets;
    unsigned long empty;
    bool bad;
};

static void *reader_main(void *arg)
{
    struct reader *rd = arg;

    while (!atomic_load(rd->stop)) {
        struct pk_identity *id = pk_identity_slot_get(rd->slot);
        if (id == NULL) {
            rd->empty++;
            continue;
        }
        /* Touch the identity as a connection would: ID, dates, contexts, an extra ref. */
        struct pk_identity *extra = pk_identity_ref(id);
        if (strncmp(pk_identity_spiffe_id(extra), "spiffe://" TD "/",
                    sizeof("spiffe://" TD "/") - 1) != 0 ||
            pk_identity_not_after(extra) <= pk_identity_not_before(extra) ||
            pk_identity_server_tls(extra) == NULL || pk_identity_chain(extra)->n != 2) {
            rd->bad = true;
        }
        pk_identity_unref(extra);
        (void)pk_identity_slot_generation(rd->slot);
        pk_identity_unref(id);
        atomic_fetch_add(&rd->gets, 1);
    }
    return NULL;
}

static void slot_threads(void **state)
{
    struct pk_identity *ids[N_IDS];
    struct pk_identity_slot slot;
    struct reader rd[N_READERS];
    pthread_t th[N_READERS];
    atomic_bool stop;
    struct pk_err err = {{0}};
    struct pk_certs set = {0};

    (void)state;
    /* A couple of distinct identities: two leaves, and copies of them with a larger anchor set
     * (distinct objects, each freed separately). */
    ids[0] = good_identity(&p256, FRONTEND);
    ids[1] = good_identity(&p256, BACKEND);
    assert_int_equal(pk_certs_push_copy(&set, p256.root), 0);
    assert_int_equal(pk_certs_push_copy(&set, foreign.root), 0);
    for (int i = 2; i < N_IDS; i++) {
        assert_int_equal(pk_identity_with_anchors(ids[i % 2], &set, time(NULL), &ids[i], &err), 0);
    }
    pk_certs_clear(&set);

    atomic_init(&stop, false);
    pk_identity_slot_init(&slot);
    for (int i = 0; i < N_READERS; i++) {
        rd[i] = (struct reader){.slot = &slot, .stop = &stop};
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rd[i]), 0);
    }
    for (int i = 0; i < N_PUBLISH; i++) {
        int k = i % N_IDS;
        if (i >= N_PUBLISH - N_LAST_USE) {
            /* Hand over our only reference: the identity is freed by whoever drops it last,
             * the slot (on the next publish) or a reader. */
            pk_identity_slot_publish(&slot, ids[k]);
            ids[k] = NULL;
        } else {
            pk_identity_slot_publish(&slot, pk_identity_ref(ids[k]));
        }
        if (i % 16 == 0) {
            sched_yield();
        }
    }
    /* Let the readers run against the final identity too. */
    while (atomic_load(&rd[0].gets) + atomic_load(&rd[1].gets) < 1000) {
        sched_yield();
    }
    atomic_store(&stop, true);
    for (int i = 0; i < N_READERS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_false(rd[i].bad);
    }
    assert_int_equal(pk_identity_slot_generation(&slot), N_PUBLISH);
    pk_identity_slot_destroy(&slot);
    for (int i = 0; i < N_IDS; i++) {
        assert_null(ids[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(good_p256),
            cmocka_unit_test(good_p256_tls12),
            cmocka_unit_test(good_ed25519),
            cmocka_unit_test(chain_not_after),
            cmocka_unit_test(contexts_interoperate),
            cmocka_unit_test(same_subject_roots),
            cmocka_unit_test(refuse_bad_params),
            cmocka_unit_test(refuse_no_uri),
            cmocka_unit_test(refuse_two_uris),
            cmocka_unit_test(refuse_non_spiffe_uri),
            cmocka_unit_test(refuse_ca_leaf),
            cmocka_unit_test(refuse_leaf_anchor),
            cmocka_unit_test(refuse_key_mismatch),
            cmocka_unit_test(refuse_expired),
            cmocka_unit_test(refuse_not_yet_valid),
            cmocka_unit_test(refuse_foreign_root),
            cmocka_unit_test(refuse_self_check),
            cmocka_unit_test(with_anchors),
            cmocka_unit_test(slot_sequences),
            cmocka_unit_test(slot_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
