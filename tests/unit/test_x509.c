/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for common/x509: issuing Dapr Sentry's three profiles and reading them back
 * field by field (and through `openssl x509 -text` / `openssl verify`), chain verification, and
 * parsing of malformed certificates. Every certificate is minted at test time. */
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
#include <unistd.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/key.h"
#include "common/pem.h"
#include "common/sigmemo.h"
#include "common/x509.h"
#include "testutil.h"

#define TD       "example.test"
#define ISSUER_O "spiffe://example.test/ns/dapr-system/dapr-sentry"
#define LEAF_URI "spiffe://example.test/ns/default/frontend"
#define Y2051    ((time_t)2556144000) /* 2051-01-01T00:00:00Z */

/* A memo shared by every verify_both call of this program, as a context's is by its handshakes. */
static struct pk_sigmemo *shared_memo;

static int setup_tmp(void **state)
{
    return tmpdir_create("x509test");
}

static int teardown_tmp(void **state)
{
    shared_memo = pk_sigmemo_free(shared_memo);
    return tmpdir_remove();
}

static void write_cert(const char *name, const struct pk_cert *cert)
{
    struct pk_buf pem;
    char path[700];
    FILE *f;
    struct pk_slice der = pk_cert_der(cert);

    pk_buf_init(&pem, 1 << 16);
    assert_int_equal(pk_pem_encode("CERTIFICATE", der.ptr, der.len, &pem), 0);
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(pem.data, 1, pem.len, f), pem.len);
    fclose(f);
    pk_buf_free(&pem);
}

/* `openssl x509 -text` of a certificate, as a C string the caller frees with pk_buf_free. */
static void openssl_text(const struct pk_cert *cert, struct pk_buf *out)
{
    write_cert("text.pem", cert);
    sh("openssl x509 -in text.pem -noout -text > text.txt");
    slurp("text.txt", out);
}

static bool has(const struct pk_buf *text, const char *frag)
{
    return strstr((const char *)text->data, frag) != NULL;
}

static struct pk_cert_template root_tmpl(time_t now)
{
    struct pk_cert_template t = {
            .subject_o = TD,
            .not_before = now - 900,
            .not_after = now + 365 * 86400,
            .is_ca = true,
            .path_len = -1,
            .key_usage = PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN,
            .subject_key_id = true,
    };
    return t;
}

static struct pk_cert_template issuer_tmpl(time_t now)
{
    struct pk_cert_template t = root_tmpl(now);
    t.subject_o = ISSUER_O;
    t.key_usage = PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN | PK_KU_CRL_SIGN;
    return t;
}

static struct pk_cert_template leaf_tmpl(time_t nb, time_t na, const char *uri)
{
    struct pk_cert_template t = {
            .not_before = nb,
            .not_after = na,
            .key_usage = PK_KU_DIGITAL_SIGNATURE,
            .ext_key_usage = PK_EKU_SERVER_AUTH | PK_EKU_CLIENT_AUTH,
            .uri_san = uri,
    };
    return t;
}

/* A root, an issuer signed by it, and their keys. */
struct pki {
    struct pk_key *root_key;
    struct pk_key *iss_key;
    struct pk_cert *root;
    struct pk_cert *iss;
    struct pk_certs roots;
    struct pk_certs inter;
};

static void pki_make(struct pki *p, enum pk_key_type type)
{
    time_t now = time(NULL);
    struct pk_cert_template rt = root_tmpl(now);
    struct pk_cert_template it = issuer_tmpl(now);

    memset(p, 0, sizeof(*p));
    assert_int_equal(pk_key_generate(type, &p->root_key, NULL), 0);
    assert_int_equal(pk_key_generate(type, &p->iss_key, NULL), 0);
    p->root = issue(&rt, p->root_key, NULL, p->root_key);
    p->iss = issue(&it, p->iss_key, p->root, p->root_key);
    assert_int_equal(pk_certs_push_copy(&p->roots, p->root), 0);
    assert_int_equal(pk_certs_push_copy(&p->inter, p->iss), 0);
}

static void pki_free(struct pki *p)
{
    pk_key_free(p->root_key);
    pk_key_free(p->iss_key);
    pk_cert_free(p->root);
    pk_cert_free(p->iss);
    pk_certs_clear(&p->roots);
    pk_certs_clear(&p->inter);
}

/* pk_x509_verify_chain, with the handshake's verifier asked the same question three ways (no
 * memo, a fresh memo, and the memo every earlier call has filled): each must give the same
 * answer, and the returned error is the full verifier's. */
static int verify_both(const struct pk_cert *leaf, const struct pk_certs *inter,
                       const struct pk_certs *roots, struct pk_err *err)
{
    struct pk_sigmemo *fresh = pk_sigmemo_new();
    struct pk_err fast_err = {{0}};
    int r = pk_x509_verify_chain(leaf, inter, roots, err);

    if (shared_memo == NULL) {
        shared_memo = pk_sigmemo_new();
    }
    assert_int_equal(pk_x509_verify_peer_chain(leaf, inter, roots, NULL, &fast_err), r);
    assert_int_equal(pk_x509_verify_peer_chain(leaf, inter, roots, fresh, &fast_err), r);
    assert_int_equal(pk_x509_verify_peer_chain(leaf, inter, roots, shared_memo, &fast_err), r);
    pk_sigmemo_free(fresh);
    return r;
}

/* ---- the three profiles ---- */

static void root_and_issuer_profiles(enum pk_key_type type)
{
    struct pki p;
    struct pk_buf text;
    char serial[64];
    time_t now = time(NULL);

    pki_make(&p, type);

    /* Root: O=<td>, CA:TRUE critical without pathLen, KU DS|KCS critical, SKID, self-signed. */
    assert_string_equal(pk_cert_subject(p.root), "O=" TD);
    assert_string_equal(pk_cert_issuer(p.root), "O=" TD);
    assert_true(pk_cert_self_signed(p.root));
    assert_true(pk_cert_has_basic_constraints(p.root));
    assert_true(pk_cert_is_ca(p.root));
    assert_int_equal(pk_cert_path_len(p.root), -1);
    assert_true(pk_cert_has_key_usage(p.root));
    assert_int_equal(pk_cert_key_usage(p.root), PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN);
    assert_false(pk_cert_has_ext_key_usage(p.root));
    assert_int_equal(pk_cert_uri_count(p.root), 0);
    assert_int_equal(pk_cert_key_type(p.root), type);
    assert_int_equal(pk_cert_skid(p.root).len, 20);
    assert_true(pk_cert_not_after(p.root) - pk_cert_not_before(p.root) == 365 * 86400 + 900);
    assert_true(pk_cert_matches_key(p.root, p.root_key));
    assert_false(pk_cert_matches_key(p.root, p.iss_key));
    pk_cert_serial_hex(p.root, serial, sizeof(serial));
    assert_true(strlen(serial) >= 20 && strlen(serial) <= 32);
    openssl_text(p.root, &text);
    assert_true(has(&text, "X509v3 Basic Constraints: critical\n                CA:TRUE\n"));
    assert_false(has(&text, "pathlen"));
    assert_true(has(&text, "X509v3 Key Usage: critical\n                Digital Signature, "
                           "Certificate Sign\n"));
    assert_true(has(&text, "X509v3 Subject Key Identifier"));
    assert_false(has(&text, "X509v3 Authority Key Identifier"));
    assert_true(has(&text, type == PK_KEY_P256 ? "Signature Algorithm: ecdsa-with-SHA256"
                                               : "Signature Algorithm: ED25519"));
    pk_buf_free(&text);

    /* Issuer: O=spiffe://td/ns/ns/dapr-sentry, signed by the root, AKI = root's SKID. */
    assert_string_equal(pk_cert_subject(p.iss), "O=" ISSUER_O);
    assert_string_equal(pk_cert_issuer(p.iss), "O=" TD);
    assert_true(pk_cert_issuer_der(p.iss).len == pk_cert_subject_der(p.root).len);
    assert_memory_equal(pk_cert_issuer_der(p.iss).ptr, pk_cert_subject_der(p.root).ptr,
                        pk_cert_subject_der(p.root).len);
    assert_true(pk_cert_signed_by(p.iss, p.root));
    assert_false(pk_cert_self_signed(p.iss));
    assert_false(pk_cert_signed_by(p.root, p.iss));
    assert_true(pk_cert_is_ca(p.iss));
    assert_int_equal(pk_cert_path_len(p.iss), -1);
    assert_int_equal(pk_cert_key_usage(p.iss),
                     PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN | PK_KU_CRL_SIGN);
    openssl_text(p.iss, &text);
    assert_true(has(&text, "X509v3 Basic Constraints: critical\n                CA:TRUE\n"));
    assert_true(has(&text, "Digital Signature, Certificate Sign, CRL Sign"));
    assert_true(has(&text, "Subject: O = " ISSUER_O "\n"));
    {
        /* The AKI printed by OpenSSL is the root's SKID. */
        struct pk_slice skid = pk_cert_skid(p.root);
        char hex[80];
        size_t o = 0;
        for (size_t i = 0; i < skid.len; i++) {
            o += (size_t)snprintf(hex + o, sizeof(hex) - o, i ? ":%02X" : "%02X", skid.ptr[i]);
        }
        assert_true(has(&text, "X509v3 Authority Key Identifier: \n                "));
        assert_true(has(&text, hex));
    }
    pk_buf_free(&text);

    /* Both verify with OpenSSL, and with us. */
    write_cert("root.pem", p.root);
    write_cert("issuer.pem", p.iss);
    sh("openssl verify -CAfile root.pem issuer.pem");
    assert_int_equal(verify_both(p.iss, NULL, &p.roots, NULL), 0);
    (void)now;
    pki_free(&p);
}

static void root_and_issuer_p256(void **state)
{
    root_and_issuer_profiles(PK_KEY_P256);
}

static void root_and_issuer_ed25519(void **state)
{
    root_and_issuer_profiles(PK_KEY_ED25519);
}

static void workload_profile(enum pk_key_type ca_type, enum pk_key_type leaf_type)
{
    struct pki p;
    struct pk_key *key = NULL;
    struct pk_cert *leaf, *leaf2;
    struct pk_buf text, asn1;
    struct pk_err err = {{0}};
    time_t now = time(NULL);
    char s1[64], s2[64];

    pki_make(&p, ca_type);
    assert_int_equal(pk_key_generate(leaf_type, &key, NULL), 0);
    struct pk_cert_template t = leaf_tmpl(now - 900, Y2051, LEAF_URI);
    leaf = issue(&t, key, p.iss, p.iss_key);

    /* Field by field. */
    assert_string_equal(pk_cert_subject(leaf), "");
    assert_int_equal(pk_cert_subject_der(leaf).len, 2); /* SEQUENCE {} */
    assert_string_equal(pk_cert_issuer(leaf), "O=" ISSUER_O);
    assert_int_equal(pk_cert_uri_count(leaf), 1);
    assert_string_equal(pk_cert_uri(leaf, 0), LEAF_URI);
    assert_null(pk_cert_uri(leaf, 1));
    assert_int_equal(pk_cert_dns_count(leaf), 0);
    assert_true(pk_cert_san_critical(leaf));
    assert_false(pk_cert_has_basic_constraints(leaf));
    assert_false(pk_cert_is_ca(leaf));
    assert_int_equal(pk_cert_path_len(leaf), -1);
    assert_true(pk_cert_has_key_usage(leaf));
    assert_int_equal(pk_cert_key_usage(leaf), PK_KU_DIGITAL_SIGNATURE);
    assert_true(pk_cert_has_ext_key_usage(leaf));
    assert_int_equal(pk_cert_ext_key_usage(leaf), PK_EKU_SERVER_AUTH | PK_EKU_CLIENT_AUTH);
    assert_int_equal(pk_cert_skid(leaf).len, 0);
    assert_int_equal(pk_cert_key_type(leaf), leaf_type);
    assert_int_equal(pk_cert_not_before(leaf), now - 900);
    assert_int_equal(pk_cert_not_after(leaf), Y2051);
    assert_true(pk_cert_signed_by(leaf, p.iss));
    assert_false(pk_cert_signed_by(leaf, p.root));
    assert_true(pk_cert_matches_key(leaf, key));
    assert_false(pk_cert_matches_key(leaf, p.iss_key));

    /* Serial: fresh, positive, at most 128 bits. */
    leaf2 = issue(&t, key, p.iss, p.iss_key);
    pk_cert_serial_hex(leaf, s1, sizeof(s1));
    pk_cert_serial_hex(leaf2, s2, sizeof(s2));
    assert_string_not_equal(s1, s2);
    assert_true(strlen(s1) <= 32 && strlen(s1) >= 20);

    /* OpenSSL's reading: empty subject, critical SAN, no BasicConstraints, no SKID, AKI, the
     * 2051 NotAfter as GeneralizedTime, KU critical, EKU. */
    openssl_text(leaf, &text);
    assert_true(has(&text, "        Subject: \n"));
    assert_true(has(&text,
                    "X509v3 Subject Alternative Name: critical\n                URI:" LEAF_URI
                    "\n"));
    assert_false(has(&text, "Basic Constraints"));
    assert_false(has(&text, "Subject Key Identifier"));
    assert_true(has(&text, "X509v3 Authority Key Identifier"));
    assert_true(has(&text, "X509v3 Key Usage: critical\n                Digital Signature\n"));
    assert_true(has(&text, "TLS Web Server Authentication, TLS Web Client Authentication"));
    assert_true(has(&text, "Not After : Jan  1 00:00:00 2051 GMT"));
    assert_true(has(&text, ca_type == PK_KEY_P256 ? "Signature Algorithm: ecdsa-with-SHA256"
                                                  : "Signature Algorithm: ED25519"));
    pk_buf_free(&text);
    write_cert("leaf.pem", leaf);
    sh("openssl asn1parse -in leaf.pem > leaf.asn1");
    slurp("leaf.asn1", &asn1);
    assert_true(has(&asn1, "GENERALIZEDTIME   :20510101000000Z"));
    assert_true(has(&asn1, "UTCTIME"));
    pk_buf_free(&asn1);

    /* OpenSSL verifies the chain, for TLS server and client use. */
    write_cert("root.pem", p.root);
    write_cert("issuer.pem", p.iss);
    sh("openssl verify -CAfile root.pem -untrusted issuer.pem leaf.pem");
    sh("openssl verify -CAfile root.pem -untrusted issuer.pem -purpose sslserver leaf.pem");
    sh("openssl verify -CAfile root.pem -untrusted issuer.pem -purpose sslclient leaf.pem");
    assert_int_equal(verify_both(leaf, &p.inter, &p.roots, &err), 0);

    pk_cert_free(leaf);
    pk_cert_free(leaf2);
    pk_key_free(key);
    pki_free(&p);
}

static void workload_p256_under_p256(void **state)
{
    workload_profile(PK_KEY_P256, PK_KEY_P256);
}

static void workload_ed25519_under_ed25519(void **state)
{
    workload_profile(PK_KEY_ED25519, PK_KEY_ED25519);
}

static void workload_ed25519_under_p256(void **state)
{
    workload_profile(PK_KEY_P256, PK_KEY_ED25519);
}

static void workload_p256_under_ed25519(void **state)
{
    workload_profile(PK_KEY_ED25519, PK_KEY_P256);
}

static void long_names_and_path_len(void **state)
{
    /* Names longer than wolfSSL's 64-byte CertName fields, and one whose DER holds a zero octet
     * (a 256-byte value: length 0x82 0x01 0x00), come out exactly. */
    struct pk_key *key = NULL;
    struct pk_cert *cert;
    char o[257], cn[300];
    time_t now = time(NULL);

    memset(o, 'o', 256);
    o[256] = '\0';
    snprintf(cn, sizeof(cn), "spiffe://%s/ns/some-long-namespace-name/dapr-sentry",
             "a-rather-long-trust-domain.example.test");
    assert_int_equal(pk_key_generate(PK_KEY_P256, &key, NULL), 0);
    struct pk_cert_template t = root_tmpl(now);
    t.subject_o = o;
    t.subject_cn = cn;
    t.path_len = 3;
    cert = issue(&t, key, NULL, key);
    char want[700];
    snprintf(want, sizeof(want), "O=%s, CN=%s", o, cn);
    assert_string_equal(pk_cert_subject(cert), want);
    assert_string_equal(pk_cert_issuer(cert), want);
    assert_int_equal(pk_cert_path_len(cert), 3);
    assert_true(pk_cert_self_signed(cert));
    pk_cert_free(cert);

    /* A name with characters PrintableString lacks is UTF8String; the CA has pathLen 0. */
    t.subject_o = "under_score & co";
    t.subject_cn = NULL;
    t.path_len = 0;
    cert = issue(&t, key, NULL, key);
    assert_string_equal(pk_cert_subject(cert), "O=under_score & co");
    assert_int_equal(pk_cert_path_len(cert), 0);
    pk_cert_free(cert);
    pk_key_free(key);
}

static void issue_refusals(void **state)
{
    struct pki p;
    struct pk_key *key = NULL, *other = NULL;
    struct pk_pubkey *pub = NULL, *other_pub = NULL;
    struct pk_cert *cert = NULL, *leaf;
    struct pk_err err = {{0}};
    time_t now = time(NULL);

    pki_make(&p, PK_KEY_P256);
    assert_int_equal(pk_key_generate(PK_KEY_P256, &key, NULL), 0);
    assert_int_equal(pk_key_generate(PK_KEY_P256, &other, NULL), 0);
    pub = pub_of(key);
    other_pub = pub_of(other);
    struct pk_cert_template t = leaf_tmpl(now, now + 3600, LEAF_URI);

    /* The issuer key must be the issuer certificate's. */
    assert_int_equal(pk_cert_issue(&t, pub, p.iss, p.root_key, &cert, &err), PK_E_MISMATCH);
    assert_non_null(strstr(err.msg, ISSUER_O));
    /* Self-signed: the subject key must be the signing key. */
    struct pk_cert_template rt = root_tmpl(now);
    assert_int_equal(pk_cert_issue(&rt, other_pub, NULL, key, &cert, &err), PK_E_MISMATCH);
    /* A leaf cannot issue. */
    leaf = issue(&t, key, p.iss, p.iss_key);
    assert_int_equal(pk_cert_issue(&t, other_pub, leaf, key, &cert, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "not a CA"));
    /* Bad templates. */
    t.not_after = t.not_before - 1;
    assert_int_equal(pk_cert_issue(&t, pub, p.iss, p.iss_key, &cert, &err), PK_E_INVALID);
    t = leaf_tmpl(now, now + 3600, "spiffe://example.test/a b");
    assert_int_equal(pk_cert_issue(&t, pub, p.iss, p.iss_key, &cert, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "a b"));
    t = leaf_tmpl(now, now + 3600, "");
    assert_int_equal(pk_cert_issue(&t, pub, p.iss, p.iss_key, &cert, &err), PK_E_INVALID);
    t = leaf_tmpl(now, now + 3600, LEAF_URI);
    t.ext_key_usage = PK_EKU_OTHER;
    assert_int_equal(pk_cert_issue(&t, pub, p.iss, p.iss_key, &cert, &err), PK_E_INVALID);
    t = leaf_tmpl(now, (time_t)253402300800LL /* year 10000 */, LEAF_URI);
    assert_int_equal(pk_cert_issue(&t, pub, p.iss, p.iss_key, &cert, &err), PK_E_INVALID);
    t = leaf_tmpl(now, now + 3600, LEAF_URI);
    t.subject_c = "USA"; /* countryName is two letters */
    assert_int_equal(pk_cert_issue(&t, pub, p.iss, p.iss_key, &cert, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "USA"));
    t.subject_c = NULL;
    t.dns_san = "bad name";
    assert_int_equal(pk_cert_issue(&t, pub, p.iss, p.iss_key, &cert, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "DNS SAN"));
    assert_null(cert);

    pk_cert_free(leaf);
    pk_pubkey_free(pub);
    pk_pubkey_free(other_pub);
    pk_key_free(key);
    pk_key_free(other);
    pki_free(&p);
}

/* ---- chain verification ---- */

static void chain_cases(void **state)
{
    struct pki p, q;
    struct pk_key *key = NULL;
    struct pk_cert *good, *expired, *future, *foreign;
    struct pk_certs none = {NULL, 0};
    struct pk_err err = {{0}};
    time_t now = time(NULL);

    pki_make(&p, PK_KEY_P256);
    pki_make(&q, PK_KEY_P256); /* another root with the same subject O=example.test */
    assert_int_equal(pk_key_generate(PK_KEY_P256, &key, NULL), 0);

    struct pk_cert_template t = leaf_tmpl(now - 900, now + 86400, LEAF_URI);
    good = issue(&t, key, p.iss, p.iss_key);
    assert_int_equal(verify_both(good, &p.inter, &p.roots, &err), 0);

    /* An expired leaf. */
    t = leaf_tmpl(now - 7200, now - 3600, LEAF_URI);
    expired = issue(&t, key, p.iss, p.iss_key);
    assert_int_equal(verify_both(expired, &p.inter, &p.roots, &err), PK_E_EXPIRED);
    assert_non_null(strstr(err.msg, "leaf"));
    assert_non_null(strstr(err.msg, LEAF_URI));
    assert_non_null(strstr(err.msg, "expired"));

    /* Not yet valid. */
    t = leaf_tmpl(now + 3600, now + 7200, LEAF_URI);
    future = issue(&t, key, p.iss, p.iss_key);
    assert_int_equal(verify_both(future, &p.inter, &p.roots, &err), PK_E_NOTYETVALID);
    assert_non_null(strstr(err.msg, "leaf"));

    /* An issuer from another root that even has the same name. */
    t = leaf_tmpl(now - 900, now + 86400, LEAF_URI);
    foreign = issue(&t, key, q.iss, q.iss_key);
    assert_int_equal(verify_both(foreign, &q.inter, &p.roots, &err), PK_E_UNTRUSTED);
    assert_non_null(strstr(err.msg, "intermediate #1"));
    assert_int_equal(verify_both(foreign, &p.inter, &p.roots, &err), PK_E_UNTRUSTED);
    assert_int_equal(verify_both(good, &q.inter, &q.roots, &err), PK_E_UNTRUSTED);
    /* The right root among several. */
    struct pk_certs both = {NULL, 0};
    assert_int_equal(pk_certs_push_copy(&both, q.root), 0);
    assert_int_equal(pk_certs_push_copy(&both, p.root), 0);
    assert_int_equal(verify_both(good, &p.inter, &both, &err), 0);
    assert_int_equal(verify_both(foreign, &q.inter, &both, &err), 0);
    pk_certs_clear(&both);

    /* Missing intermediate; no roots. */
    assert_int_equal(verify_both(good, &none, &p.roots, &err), PK_E_UNTRUSTED);
    assert_non_null(strstr(err.msg, ISSUER_O));
    assert_int_equal(verify_both(good, &p.inter, &none, &err), PK_E_UNTRUSTED);

    /* The leaf presented as its own issuer, and as a root: it is not a CA. */
    struct pk_certs self = {NULL, 0};
    assert_int_equal(pk_certs_push_copy(&self, good), 0);
    assert_int_equal(verify_both(good, &self, &p.roots, &err), PK_E_UNTRUSTED);
    assert_int_equal(verify_both(good, &self, &self, &err), PK_E_UNTRUSTED);
    /* A self-signed non-CA leaf trusted as its own root. */
    struct pk_cert_template st = leaf_tmpl(now - 900, now + 86400, LEAF_URI);
    struct pk_cert *selfsigned = issue(&st, key, NULL, key);
    assert_true(pk_cert_self_signed(selfsigned));
    struct pk_certs selfroot = {NULL, 0};
    assert_int_equal(pk_certs_push_copy(&selfroot, selfsigned), 0);
    assert_int_equal(verify_both(selfsigned, &none, &selfroot, &err), PK_E_UNTRUSTED);
    pk_certs_clear(&selfroot);
    pk_cert_free(selfsigned);
    pk_certs_clear(&self);

    pk_cert_free(good);
    pk_cert_free(expired);
    pk_cert_free(future);
    pk_cert_free(foreign);
    pk_key_free(key);
    pki_free(&p);
    pki_free(&q);
}

/* Only CAs may be trust anchors: a workload certificate pasted into an anchors file would let its
 * key holder mint any SPIFFE ID. An intermediate alone is accepted and pins trust to it. */
static void anchors_must_be_cas(void **state)
{
    struct pki p;
    struct pk_key *key = NULL;
    struct pk_certs set = {NULL, 0}, got = {NULL, 0}, none = {NULL, 0};
    struct pk_buf pem;
    struct pk_err err = {{0}};
    time_t now = time(NULL);

    (void)state;
    pki_make(&p, PK_KEY_P256);
    assert_int_equal(pk_key_generate(PK_KEY_P256, &key, NULL), 0);
    struct pk_cert_template t = leaf_tmpl(now - 900, now + 86400, LEAF_URI);
    struct pk_cert *leaf = issue(&t, key, p.iss, p.iss_key);
    /* A CA whose key usage lacks keyCertSign. */
    struct pk_cert_template nt = root_tmpl(now);
    nt.key_usage = PK_KU_DIGITAL_SIGNATURE | PK_KU_CRL_SIGN;
    struct pk_cert *no_sign = issue(&nt, key, NULL, key);

    assert_int_equal(pk_cert_check_anchor(p.root, "root", 1, &err), 0);
    assert_int_equal(pk_cert_check_anchor(p.iss, "root", 1, &err), 0);
    assert_int_equal(pk_cert_check_anchor(leaf, "ca.crt certificate", 2, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "ca.crt certificate #2 (URI " LEAF_URI ")"));
    assert_non_null(strstr(err.msg, "not a CA certificate"));
    assert_int_equal(pk_cert_check_anchor(no_sign, "anchor", 1, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "keyCertSign"));

    /* A bundle: root, then the leaf as block #2; nothing is appended. */
    pk_buf_init(&pem, 1 << 16);
    assert_int_equal(pk_certs_push_copy(&set, p.root), 0);
    assert_int_equal(pk_certs_push_copy(&set, leaf), 0);
    assert_int_equal(pk_certs_to_pem(&set, &pem), 0);
    assert_int_equal(pk_certs_parse_anchors_pem(pem.data, pem.len, "/etc/anchors.pem", &got, &err),
                     PK_E_INVALID);
    assert_non_null(strstr(err.msg, "/etc/anchors.pem certificate #2"));
    assert_int_equal(got.n, 0);
    /* The same bundle without the leaf is accepted. */
    pk_certs_clear(&set);
    pk_buf_reset(&pem);
    assert_int_equal(pk_certs_push_copy(&set, p.root), 0);
    assert_int_equal(pk_certs_push_copy(&set, p.iss), 0);
    assert_int_equal(pk_certs_to_pem(&set, &pem), 0);
    assert_int_equal(pk_certs_parse_anchors_pem(pem.data, pem.len, "anchors", &got, &err), 0);
    assert_int_equal(got.n, 2);
    pk_certs_clear(&got);

    /* The intermediate alone as the anchor: its leaves verify, with or without it in the chain. */
    struct pk_certs only_iss = {NULL, 0};
    assert_int_equal(pk_certs_push_copy(&only_iss, p.iss), 0);
    assert_int_equal(verify_both(leaf, &none, &only_iss, &err), 0);
    assert_int_equal(verify_both(leaf, &p.inter, &only_iss, &err), 0);
    pk_certs_clear(&only_iss);

    pk_buf_free(&pem);
    pk_certs_clear(&set);
    pk_cert_free(leaf);
    pk_cert_free(no_sign);
    pk_key_free(key);
    pki_free(&p);
}

static void chain_intermediates_any_order_and_limits(void **state)
{
    struct pki p;
    struct pk_key *k2 = NULL, *k3 = NULL, *leaf_key = NULL;
    struct pk_cert *i2, *i3, *leaf, *old_root, *i2_expired, *leaf_x;
    struct pk_certs inter = {NULL, 0}, roots = {NULL, 0};
    struct pk_err err = {{0}};
    time_t now = time(NULL);

    /* root -> issuer (I1) -> I2 -> I3 -> leaf */
    pki_make(&p, PK_KEY_P256);
    assert_int_equal(pk_key_generate(PK_KEY_ED25519, &k2, NULL), 0);
    assert_int_equal(pk_key_generate(PK_KEY_P256, &k3, NULL), 0);
    assert_int_equal(pk_key_generate(PK_KEY_P256, &leaf_key, NULL), 0);
    struct pk_cert_template t2 = issuer_tmpl(now);
    t2.subject_o = "intermediate two";
    i2 = issue(&t2, k2, p.iss, p.iss_key);
    struct pk_cert_template t3 = issuer_tmpl(now);
    t3.subject_o = "intermediate three";
    i3 = issue(&t3, k3, i2, k2);
    struct pk_cert_template lt = leaf_tmpl(now - 60, now + 3600, LEAF_URI);
    leaf = issue(&lt, leaf_key, i3, k3);

    /* Given leaf-side first, root-side last: still verifies. */
    assert_int_equal(pk_certs_push_copy(&inter, i3), 0);
    assert_int_equal(pk_certs_push_copy(&inter, i2), 0);
    assert_int_equal(pk_certs_push_copy(&inter, p.iss), 0);
    assert_int_equal(verify_both(leaf, &inter, &p.roots, &err), 0);
    pk_certs_clear(&inter);
    assert_int_equal(pk_certs_push_copy(&inter, i2), 0);
    assert_int_equal(pk_certs_push_copy(&inter, p.iss), 0);
    assert_int_equal(pk_certs_push_copy(&inter, i3), 0);
    assert_int_equal(verify_both(leaf, &inter, &p.roots, &err), 0);

    /* The middle one missing: the message follows the chain up to what is missing. */
    pk_certs_clear(&inter);
    assert_int_equal(pk_certs_push_copy(&inter, i3), 0);
    assert_int_equal(pk_certs_push_copy(&inter, p.iss), 0);
    assert_int_equal(verify_both(leaf, &inter, &p.roots, &err), PK_E_UNTRUSTED);
    assert_non_null(strstr(err.msg, "intermediate two"));

    /* An expired intermediate is named. */
    struct pk_cert_template te = t2;
    te.not_before = now - 7200;
    te.not_after = now - 3600;
    i2_expired = issue(&te, k2, p.iss, p.iss_key);
    pk_certs_clear(&inter);
    assert_int_equal(pk_certs_push_copy(&inter, i3), 0);
    assert_int_equal(pk_certs_push_copy(&inter, i2_expired), 0);
    assert_int_equal(pk_certs_push_copy(&inter, p.iss), 0);
    assert_int_equal(verify_both(leaf, &inter, &p.roots, &err), PK_E_EXPIRED);
    assert_non_null(strstr(err.msg, "intermediate #2"));
    assert_non_null(strstr(err.msg, "intermediate two"));

    /* A path length constraint of 0 on the issuer forbids I2 and I3 below it. */
    struct pk_cert_template tp = issuer_tmpl(now);
    tp.path_len = 0;
    struct pk_cert *iss_pl0 = issue(&tp, p.iss_key, p.root, p.root_key);
    struct pk_cert *i2b = issue(&t2, k2, iss_pl0, p.iss_key);
    struct pk_cert *i3b = issue(&t3, k3, i2b, k2);
    struct pk_cert *leafb = issue(&lt, leaf_key, i3b, k3);
    pk_certs_clear(&inter);
    assert_int_equal(pk_certs_push_copy(&inter, iss_pl0), 0);
    assert_int_equal(pk_certs_push_copy(&inter, i2b), 0);
    assert_int_equal(pk_certs_push_copy(&inter, i3b), 0);
    assert_int_equal(verify_both(leafb, &inter, &p.roots, &err), PK_E_UNTRUSTED);
    /* ... but allows a leaf directly below it. */
    struct pk_cert *leafc = issue(&lt, leaf_key, iss_pl0, p.iss_key);
    assert_int_equal(verify_both(leafc, &inter, &p.roots, &err), 0);

    /* An expired root among the roots is skipped when another one works, named when not. */
    struct pk_cert_template ro = root_tmpl(now);
    ro.not_before = now - 7200;
    ro.not_after = now - 3600;
    old_root = issue(&ro, p.root_key, NULL, p.root_key); /* same key and name as p.root */
    assert_int_equal(pk_certs_push_copy(&roots, old_root), 0);
    assert_int_equal(pk_certs_push_copy(&roots, p.root), 0);
    assert_int_equal(verify_both(p.iss, NULL, &roots, &err), 0);
    pk_certs_clear(&roots);
    assert_int_equal(pk_certs_push_copy(&roots, old_root), 0);
    assert_int_equal(verify_both(p.iss, NULL, &roots, &err), PK_E_EXPIRED);
    assert_non_null(strstr(err.msg, "root #1"));
    leaf_x = issue(&lt, leaf_key, p.iss, p.iss_key);
    assert_int_equal(verify_both(leaf_x, &p.inter, &roots, &err), PK_E_EXPIRED);
    assert_non_null(strstr(err.msg, "root #1"));

    pk_cert_free(iss_pl0);
    pk_cert_free(i2b);
    pk_cert_free(i3b);
    pk_cert_free(leafb);
    pk_cert_free(leafc);
    pk_cert_free(leaf_x);
    pk_cert_free(old_root);
    pk_certs_clear(&roots);
    pk_certs_clear(&inter);
    pk_cert_free(i2);
    pk_cert_free(i2_expired);
    pk_cert_free(i3);
    pk_cert_free(leaf);
    pk_key_free(k2);
    pk_key_free(k3);
    pk_key_free(leaf_key);
    pki_free(&p);
}

static void key_cert_mismatch(void **state)
{
    struct pki p, q;

    pki_make(&p, PK_KEY_P256);
    pki_make(&q, PK_KEY_ED25519);
    assert_true(pk_cert_matches_key(p.iss, p.iss_key));
    assert_false(pk_cert_matches_key(p.iss, p.root_key));
    assert_false(pk_cert_matches_key(p.iss, q.iss_key));
    assert_true(pk_cert_matches_key(q.iss, q.iss_key));
    assert_false(pk_cert_matches_key(q.iss, p.iss_key));
    assert_false(pk_cert_signed_by(q.iss, p.root));
    pki_free(&p);
    pki_free(&q);
}

/* ---- PEM lists ---- */

static void certs_pem_lists(void **state)
{
    struct pki p;
    struct pk_certs got = {NULL, 0}, copy = {NULL, 0};
    struct pk_buf pem, text;
    struct pk_err err = {{0}};

    pki_make(&p, PK_KEY_P256);
    assert_int_equal(pk_certs_push_copy(&copy, p.iss), 0);
    assert_int_equal(pk_certs_push_copy(&copy, p.root), 0);
    pk_buf_init(&pem, 1 << 16);
    assert_int_equal(pk_certs_to_pem(&copy, &pem), 0);

    /* With comments around and between the blocks, as `openssl x509 -text` writes them. */
    pk_buf_init(&text, 1 << 17);
    assert_int_equal(pk_buf_append_str(&text, "Certificate:\n    Data: ...\n"), 0);
    assert_int_equal(pk_buf_append(&text, pem.data, pem.len), 0);
    assert_int_equal(pk_buf_append_str(&text, "# trailing comment\n"), 0);
    assert_int_equal(pk_certs_parse_pem(text.data, text.len, "ca.crt", &got, &err), 0);
    assert_int_equal(got.n, 2);
    assert_string_equal(pk_cert_subject(got.v[0]), "O=" ISSUER_O);
    assert_string_equal(pk_cert_subject(got.v[1]), "O=" TD);
    assert_int_equal(pk_cert_der(got.v[1]).len, pk_cert_der(p.root).len);
    pk_certs_clear(&got);
    assert_null(got.v);

    /* A key block among certificates is an error naming the block. */
    pk_buf_reset(&text);
    assert_int_equal(pk_buf_append(&text, pem.data, pem.len), 0);
    assert_int_equal(pk_key_to_pem(p.iss_key, &text), 0);
    assert_int_equal(pk_certs_parse_pem(text.data, text.len, "ca.crt", &got, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "ca.crt: PEM block #3"));
    assert_non_null(strstr(err.msg, "PRIVATE KEY"));
    assert_int_equal(got.n, 0);
    /* No certificate at all; a broken second certificate. */
    assert_int_equal(pk_certs_parse_pem((const uint8_t *)"nothing", 7, "ca.crt", &got, &err),
                     PK_E_INVALID);
    assert_non_null(strstr(err.msg, "no PEM"));
    pk_buf_reset(&text);
    assert_int_equal(pk_buf_append(&text, pem.data, pem.len), 0);
    static const uint8_t junk[] = {0x30, 0x03, 0x02, 0x01, 0x01};
    assert_int_equal(pk_pem_encode("CERTIFICATE", junk, sizeof(junk), &text), 0);
    assert_int_equal(pk_certs_parse_pem(text.data, text.len, "ca.crt", &got, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "ca.crt certificate #3"));
    assert_int_equal(got.n, 0);
    /* The output cap of pk_certs_to_pem leaves the buffer as it was. */
    struct pk_buf small;
    pk_buf_init(&small, 600);
    assert_int_equal(pk_certs_to_pem(&copy, &small), PK_E_TOOBIG);
    assert_int_equal(small.len, 0);

    pk_buf_free(&pem);
    pk_buf_free(&text);
    pk_certs_clear(&copy);
    pki_free(&p);
}

/* ---- malformed certificates, minted by re-signing edited TBSCertificates ---- */

/* Replace element `index` of the TBSCertificate of cert with repl (or drop it when repl is
 * NULL), sign the result with key (ECDSA-SHA256, alg_override when given) and parse it. */
static int resign(const struct pk_cert *cert, size_t index, const uint8_t *repl, size_t repl_len,
                  const struct pk_key *key, struct pk_cert **out, struct pk_err *err)
{
    static const uint8_t ecdsa_sha256[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                           0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
    struct pk_slice in = pk_cert_der(cert);
    struct pk_der c, tbs, el;
    struct pk_slice body;
    struct pk_buf nt, sig, full;
    int r;

    assert_int_equal(pk_der_expect(&in, PK_DER_SEQUENCE, &c), 0);
    body = pk_der_inner(&c);
    assert_int_equal(pk_der_expect(&body, PK_DER_SEQUENCE, &tbs), 0);
    pk_buf_init(&nt, 1 << 16);
    pk_buf_init(&sig, 1024);
    pk_buf_init(&full, 1 << 17);
    body = pk_der_inner(&tbs);
    for (size_t i = 0; body.len > 0; i++) {
        assert_int_equal(pk_der_read(&body, &el), 0);
        if (i == index) {
            if (repl != NULL) {
                assert_int_equal(pk_buf_append(&nt, repl, repl_len), 0);
            }
        } else {
            assert_int_equal(pk_buf_append(&nt, el.tlv, el.tlv_len), 0);
        }
    }
    assert_int_equal(pk_der_wrap(&nt, 0, PK_DER_SEQUENCE), 0);
    assert_int_equal(pk_key_sign(key, nt.data, nt.len, &sig), 0);
    assert_int_equal(pk_buf_append(&full, nt.data, nt.len), 0);
    assert_int_equal(pk_buf_append(&full, ecdsa_sha256, sizeof(ecdsa_sha256)), 0);
    size_t bs = full.len;
    assert_int_equal(pk_buf_append(&full, "\0", 1), 0);
    assert_int_equal(pk_buf_append(&full, sig.data, sig.len), 0);
    assert_int_equal(pk_der_wrap(&full, bs, PK_DER_BIT_STRING), 0);
    assert_int_equal(pk_der_wrap(&full, 0, PK_DER_SEQUENCE), 0);
    r = pk_cert_parse_der(full.data, full.len, "edited", out, err);
    pk_buf_free(&nt);
    pk_buf_free(&sig);
    pk_buf_free(&full);
    return r;
}

/* The [3] extensions element of cert, with its Extension list rebuilt from exts. */
static void extensions_elem(const uint8_t *const *exts, const size_t *lens, size_t n,
                            struct pk_buf *out)
{
    pk_buf_init(out, 1 << 16);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(pk_buf_append(out, exts[i], lens[i]), 0);
    }
    assert_int_equal(pk_der_wrap(out, 0, PK_DER_SEQUENCE), 0);
    assert_int_equal(pk_der_wrap(out, 0, PK_DER_CTX_CONS(3)), 0);
}

static void malformed_certificates(void **state)
{
    struct pki p;
    struct pk_key *key = NULL;
    struct pk_cert *leaf, *cert = NULL;
    struct pk_err err = {{0}};
    struct pk_buf ext;
    time_t now = time(NULL);

    pki_make(&p, PK_KEY_P256);
    assert_int_equal(pk_key_generate(PK_KEY_P256, &key, NULL), 0);
    struct pk_cert_template t = leaf_tmpl(now, now + 3600, LEAF_URI);
    leaf = issue(&t, key, p.iss, p.iss_key);
    struct pk_slice der = pk_cert_der(leaf);

    /* Every truncation; a trailing byte; a lying outer length; empty input. */
    for (size_t n = 1; n < der.len; n++) {
        if (pk_cert_parse_der(der.ptr, n, "leaf.crt", &cert, &err) != PK_E_INVALID) {
            fail_msg("certificate truncated to %zu of %zu bytes was accepted", n, der.len);
        }
        assert_non_null(strstr(err.msg, "leaf.crt"));
    }
    uint8_t *copy = malloc(der.len + 1);
    memcpy(copy, der.ptr, der.len);
    copy[der.len] = 0;
    assert_int_equal(pk_cert_parse_der(copy, der.len + 1, "leaf.crt", &cert, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "trailing"));
    copy[3] ^= 0x01; /* 30 82 LL LL: the low length octet */
    assert_int_equal(pk_cert_parse_der(copy, der.len, "leaf.crt", &cert, &err), PK_E_INVALID);
    copy[3] ^= 0x01;
    /* A flipped signature bit still parses, but no longer verifies. */
    copy[der.len - 2] ^= 0x01;
    assert_int_equal(pk_cert_parse_der(copy, der.len, "leaf.crt", &cert, &err), 0);
    assert_false(pk_cert_signed_by(cert, p.iss));
    assert_int_equal(verify_both(cert, &p.inter, &p.roots, &err), PK_E_UNTRUSTED);
    assert_non_null(strstr(err.msg, "signature"));
    cert = pk_cert_free(cert);
    free(copy);
    assert_int_equal(pk_cert_parse_der(der.ptr, 0, "leaf.crt", &cert, &err), PK_E_INVALID);

    /* The edit-and-resign helper itself yields a good certificate when nothing changes. */
    assert_int_equal(resign(leaf, 99, NULL, 0, p.iss_key, &cert, &err), 0);
    assert_true(pk_cert_signed_by(cert, p.iss));
    cert = pk_cert_free(cert);

    /* Serial numbers RFC 5280 refuses: zero, negative, 21 octets, not minimal. */
    static const uint8_t serial_zero[] = {0x02, 0x01, 0x00};
    static const uint8_t serial_neg[] = {0x02, 0x01, 0x80};
    static const uint8_t serial_pad[] = {0x02, 0x02, 0x00, 0x01};
    uint8_t serial21[23] = {0x02, 21, 0x01};
    uint8_t serial20[23] = {0x02, 21, 0x00, 0xff}; /* 20 octets plus the sign pad: fine */
    assert_int_equal(resign(leaf, 1, serial_zero, 3, p.iss_key, &cert, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "zero"));
    assert_int_equal(resign(leaf, 1, serial_neg, 3, p.iss_key, &cert, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "negative"));
    assert_int_equal(resign(leaf, 1, serial_pad, 4, p.iss_key, &cert, &err), PK_E_INVALID);
    assert_int_equal(resign(leaf, 1, serial21, 23, p.iss_key, &cert, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "20 octets"));
    assert_int_equal(resign(leaf, 1, serial20, 23, p.iss_key, &cert, &err), 0);
    char hex[64];
    pk_cert_serial_hex(cert, hex, sizeof(hex));
    assert_string_equal(hex, "ff00000000000000000000000000000000000000");
    pk_cert_serial_hex(cert, hex, 5);
    assert_string_equal(hex, "ff00");
    cert = pk_cert_free(cert);

    /* Inner signature algorithm differs from the outer one. */
    static const uint8_t sha384[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                     0x48, 0xce, 0x3d, 0x04, 0x03, 0x03};
    assert_int_equal(resign(leaf, 2, sha384, sizeof(sha384), p.iss_key, &cert, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "signature algorithm differs"));

    /* Validity: a local time with an offset, a fraction, February 30th. */
    static const uint8_t offset_time[] = {0x30, 0x24, 0x17, 0x11, '2', '5', '0', '1', '0', '1',
                                          '0',  '0',  '0',  '0',  '0', '0', '+', '0', '1', '0',
                                          '0',  0x18, 0x0f, '2',  '0', '5', '1', '0', '1', '0',
                                          '1',  '0',  '0',  '0',  '0', '0', '0', 'Z'};
    static const uint8_t feb30[] = {0x30, 0x1e, 0x17, 0x0d, '2', '5', '0',  '2',  '3', '0', '0',
                                    '0',  '0',  '0',  '0',  '0', 'Z', 0x17, 0x0d, '2', '6', '0',
                                    '1',  '0',  '1',  '0',  '0', '0', '0',  '0',  '0', 'Z'};
    assert_int_equal(resign(leaf, 4, offset_time, sizeof(offset_time), p.iss_key, &cert, &err),
                     PK_E_INVALID);
    assert_non_null(strstr(err.msg, "validity"));
    assert_int_equal(resign(leaf, 4, feb30, sizeof(feb30), p.iss_key, &cert, &err), PK_E_INVALID);
    /* A leap day, and UTCTime 1950 and GeneralizedTime 2051 read back exactly. */
    static const uint8_t leap[] = {0x30, 0x1e, 0x17, 0x0d, '5', '0', '0',  '1',  '0', '1', '0',
                                   '0',  '0',  '0',  '0',  '0', 'Z', 0x17, 0x0d, '2', '8', '0',
                                   '2',  '2',  '9',  '1',  '2', '3', '4',  '5',  '6', 'Z'};
    assert_int_equal(resign(leaf, 4, leap, sizeof(leap), p.iss_key, &cert, &err), 0);
    assert_int_equal(pk_cert_not_before(cert), (time_t)-631152000LL);
    assert_int_equal(pk_cert_not_after(cert), (time_t)1835440496LL);
    cert = pk_cert_free(cert);

    /* Extensions: duplicated, unknown critical, unknown non-critical, too many URIs. */
    static const uint8_t ku[] = {0x30, 0x0e, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x01,
                                 0x01, 0xff, 0x04, 0x04, 0x03, 0x02, 0x07, 0x80};
    static const uint8_t unknown_crit[] = {0x30, 0x13, 0x06, 0x0a, 0x2b, 0x06, 0x01,
                                           0x04, 0x01, 0x86, 0x8d, 0x1f, 0x01, 0x01,
                                           0x01, 0x01, 0xff, 0x04, 0x02, 0x05, 0x00};
    static const uint8_t unknown[] = {0x30, 0x10, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01,
                                      0x86, 0x8d, 0x1f, 0x01, 0x01, 0x04, 0x02, 0x05, 0x00};
    {
        const uint8_t *e[] = {ku, ku};
        size_t l[] = {sizeof(ku), sizeof(ku)};
        extensions_elem(e, l, 2, &ext);
        assert_int_equal(resign(leaf, 7, ext.data, ext.len, p.iss_key, &cert, &err), PK_E_INVALID);
        assert_non_null(strstr(err.msg, "2.5.29.15 appears twice"));
        pk_buf_free(&ext);
    }
    {
        const uint8_t *e[] = {ku, unknown_crit};
        size_t l[] = {sizeof(ku), sizeof(unknown_crit)};
        extensions_elem(e, l, 2, &ext);
        assert_int_equal(resign(leaf, 7, ext.data, ext.len, p.iss_key, &cert, &err), PK_E_INVALID);
        assert_non_null(strstr(err.msg, "unsupported critical extension"));
        pk_buf_free(&ext);
    }
    {
        const uint8_t *e[] = {ku, unknown};
        size_t l[] = {sizeof(ku), sizeof(unknown)};
        extensions_elem(e, l, 2, &ext);
        assert_int_equal(resign(leaf, 7, ext.data, ext.len, p.iss_key, &cert, &err), 0);
        assert_int_equal(pk_cert_key_usage(cert), PK_KU_DIGITAL_SIGNATURE);
        assert_int_equal(pk_cert_uri_count(cert), 0);
        assert_false(pk_cert_has_ext_key_usage(cert));
        cert = pk_cert_free(cert);
        pk_buf_free(&ext);
    }
    for (size_t n_uris = 2; n_uris <= 9; n_uris += 7) {
        /* SAN with n URIs "spiffe://u/N"; EKU with an unknown purpose. */
        struct pk_buf san;
        static const uint8_t eku[] = {0x30, 0x1f, 0x06, 0x03, 0x55, 0x1d, 0x25, 0x04, 0x18,
                                      0x30, 0x16, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05,
                                      0x07, 0x03, 0x02, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04,
                                      0x01, 0x86, 0x8d, 0x1f, 0x01, 0x02};
        static const uint8_t san_oid[] = {0x55, 0x1d, 0x11};
        pk_buf_init(&san, 4096);
        for (size_t i = 0; i < n_uris; i++) {
            char uri[32];
            int len = snprintf(uri, sizeof(uri), "spiffe://u/%zu", i);
            assert_int_equal(pk_der_put(&san, PK_DER_CTX(6), uri, (size_t)len), 0);
        }
        assert_int_equal(pk_der_wrap(&san, 0, PK_DER_SEQUENCE), 0);
        assert_int_equal(pk_der_wrap(&san, 0, PK_DER_OCTET_STRING), 0);
        struct pk_buf sanext;
        pk_buf_init(&sanext, 8192);
        assert_int_equal(pk_der_put(&sanext, PK_DER_OID, san_oid, sizeof(san_oid)), 0);
        assert_int_equal(pk_buf_append(&sanext, san.data, san.len), 0);
        assert_int_equal(pk_der_wrap(&sanext, 0, PK_DER_SEQUENCE), 0);
        const uint8_t *e[] = {sanext.data, eku};
        size_t l[] = {sanext.len, sizeof(eku)};
        extensions_elem(e, l, 2, &ext);
        int r = resign(leaf, 7, ext.data, ext.len, p.iss_key, &cert, &err);
        if (n_uris == 2) {
            assert_int_equal(r, 0);
            assert_int_equal(pk_cert_uri_count(cert), 2);
            assert_string_equal(pk_cert_uri(cert, 0), "spiffe://u/0");
            assert_string_equal(pk_cert_uri(cert, 1), "spiffe://u/1");
            assert_false(pk_cert_san_critical(cert));
            assert_int_equal(pk_cert_ext_key_usage(cert), PK_EKU_CLIENT_AUTH | PK_EKU_OTHER);
            cert = pk_cert_free(cert);
        } else {
            assert_int_equal(r, PK_E_INVALID);
            assert_non_null(strstr(err.msg, "more than 8 URI"));
        }
        pk_buf_free(&ext);
        pk_buf_free(&san);
        pk_buf_free(&sanext);
    }
    assert_null(cert);

    pk_cert_free(leaf);
    pk_key_free(key);
    pki_free(&p);
}

static void openssl_unknown_critical_extension(void **state)
{
    struct pk_certs certs = {NULL, 0};
    struct pk_buf pem;
    struct pk_err err = {{0}};

    sh("openssl ecparam -genkey -name prime256v1 -noout -out u.key");
    sh("openssl req -new -x509 -key u.key -subj /O=u -days 1 -addext "
       "1.3.6.1.4.1.99999.1=critical,DER:05:00 -out crit.pem");
    sh("openssl req -new -x509 -key u.key -subj /O=u -days 1 -addext "
       "1.3.6.1.4.1.99999.1=DER:05:00 -out plain.pem");
    slurp("crit.pem", &pem);
    assert_int_equal(pk_certs_parse_pem(pem.data, pem.len, "crit.pem", &certs, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "crit.pem certificate #1"));
    assert_non_null(strstr(err.msg, "unsupported critical extension"));
    pk_buf_free(&pem);
    slurp("plain.pem", &pem);
    assert_int_equal(pk_certs_parse_pem(pem.data, pem.len, "plain.pem", &certs, &err), 0);
    assert_int_equal(certs.n, 1);
    pk_certs_clear(&certs);
    pk_buf_free(&pem);
}

/* ---- the Dapr guide's OpenSSL recipe (seed 000_55b7ca221b3d87f2, prime256v1) ---- */

static const char recipe_conf[] = "[req]\n"
                                  "distinguished_name = req_distinguished_name\n"
                                  "x509_extensions = v3_req\n"
                                  "prompt = no\n"
                                  "[req_distinguished_name]\n"
                                  "C = US\n"
                                  "ST = VA\n"
                                  "L = Daprville\n"
                                  "O = dapr.io/sentry\n"
                                  "OU = dapr.io/sentry\n"
                                  "CN = cluster.local\n"
                                  "[v3_req]\n"
                                  "basicConstraints = critical, CA:true%s\n"
                                  "keyUsage = critical, digitalSignature, cRLSign, keyCertSign\n"
                                  "extendedKeyUsage = serverAuth, clientAuth\n"
                                  "subjectAltName = @alt_names\n"
                                  "[alt_names]\n"
                                  "DNS.1 = cluster.local\n";

static void write_text(const char *name, const char *text)
{
    char path[700];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void dapr_openssl_recipe(void **state)
{
    char conf[2048];
    struct pk_certs roots = {NULL, 0}, issuers = {NULL, 0};
    struct pk_key *issuer_key = NULL, *leaf_key = NULL;
    struct pk_buf pem;
    struct pk_err err = {{0}};
    time_t now = time(NULL);

    snprintf(conf, sizeof(conf), recipe_conf, "");
    write_text("root.conf", conf);
    snprintf(conf, sizeof(conf), recipe_conf, ", pathlen:0");
    write_text("issuer.conf", conf);
    sh("openssl ecparam -genkey -name prime256v1 | openssl ec -out root.key");
    sh("openssl req -new -nodes -sha256 -key root.key -out root.csr -config root.conf "
       "-extensions v3_req");
    sh("openssl x509 -req -sha256 -days 365 -in root.csr -signkey root.key -outform PEM -out "
       "root.pem -extfile root.conf -extensions v3_req");
    sh("openssl ecparam -genkey -name prime256v1 | openssl ec -out issuer.key");
    sh("openssl req -new -sha256 -key issuer.key -out issuer.csr -config issuer.conf "
       "-extensions v3_req");
    sh("openssl x509 -req -in issuer.csr -CA root.pem -CAkey root.key -CAcreateserial -outform "
       "PEM -out issuer.pem -days 365 -sha256 -extfile issuer.conf -extensions v3_req");

    slurp("root.pem", &pem);
    assert_int_equal(pk_certs_parse_pem(pem.data, pem.len, "root.pem", &roots, &err), 0);
    pk_buf_free(&pem);
    slurp("issuer.pem", &pem);
    assert_int_equal(pk_certs_parse_pem(pem.data, pem.len, "issuer.pem", &issuers, &err), 0);
    pk_buf_free(&pem);
    slurp("issuer.key", &pem);
    assert_non_null(strstr((char *)pem.data, "-----BEGIN EC PRIVATE KEY-----")); /* SEC1 */
    assert_int_equal(pk_key_load_pem(pem.data, pem.len, "issuer.key", &issuer_key, &err), 0);
    pk_buf_free(&pem);

    struct pk_cert *root = roots.v[0], *iss = issuers.v[0];
    assert_string_equal(pk_cert_subject(root), "C=US, ST=VA, L=Daprville, O=dapr.io/sentry, "
                                               "OU=dapr.io/sentry, CN=cluster.local");
    assert_true(pk_cert_self_signed(root));
    assert_true(pk_cert_is_ca(root));
    assert_int_equal(pk_cert_path_len(root), -1);
    assert_true(pk_cert_is_ca(iss));
    assert_int_equal(pk_cert_path_len(iss), 0);
    assert_int_equal(pk_cert_dns_count(iss), 1);
    assert_int_equal(pk_cert_uri_count(iss), 0);
    assert_int_equal(pk_cert_ext_key_usage(iss), PK_EKU_SERVER_AUTH | PK_EKU_CLIENT_AUTH);
    assert_int_equal(pk_cert_key_usage(iss),
                     PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN | PK_KU_CRL_SIGN);
    assert_true(pk_cert_matches_key(iss, issuer_key));
    assert_true(pk_cert_signed_by(iss, root));
    assert_int_equal(verify_both(iss, NULL, &roots, &err), 0);

    /* picket issues a workload certificate with that issuer; the chain verifies both ways. */
    assert_int_equal(pk_key_generate(PK_KEY_P256, &leaf_key, NULL), 0);
    struct pk_cert_template t = leaf_tmpl(now - 900, now + 86400, LEAF_URI);
    struct pk_cert *leaf = issue(&t, leaf_key, iss, issuer_key);
    assert_int_equal(verify_both(leaf, &issuers, &roots, &err), 0);
    write_cert("leaf.pem", leaf);
    sh("openssl verify -CAfile root.pem -untrusted issuer.pem leaf.pem");
    /* pathlen:0 on the issuer: a CA below it is refused. */
    struct pk_cert_template ct = issuer_tmpl(now);
    struct pk_cert *sub = issue(&ct, leaf_key, iss, issuer_key);
    struct pk_cert *leaf2 = issue(&t, leaf_key, sub, leaf_key);
    assert_int_equal(pk_certs_push_copy(&issuers, sub), 0);
    assert_int_equal(verify_both(leaf2, &issuers, &roots, &err), PK_E_UNTRUSTED);

    pk_cert_free(sub);
    pk_cert_free(leaf2);
    pk_cert_free(leaf);
    pk_key_free(leaf_key);
    pk_key_free(issuer_key);
    pk_certs_clear(&roots);
    pk_certs_clear(&issuers);
}

/* ---- the handshake's verifier: one signature per certificate, a memo that skips no check ---- */

/* A copy of cert with one bit of its signature flipped (the DER ends inside the signature). */
static struct pk_cert *flip_signature_bit(const struct pk_cert *cert)
{
    struct pk_slice der = pk_cert_der(cert);
    uint8_t *copy = malloc(der.len);
    struct pk_cert *out = NULL;

    assert_non_null(copy);
    memcpy(copy, der.ptr, der.len);
    copy[der.len - 1] ^= 0x01;
    assert_int_equal(pk_cert_parse_der(copy, der.len, "flipped", &out, NULL), 0);
    free(copy);
    return out;
}

static void certs_of(struct pk_certs *out, const struct pk_cert *a, const struct pk_cert *b)
{
    pk_certs_clear(out);
    assert_int_equal(pk_certs_push_copy(out, a), 0);
    if (b != NULL) {
        assert_int_equal(pk_certs_push_copy(out, b), 0);
    }
}

/* root -> issuer -> I2 -> leaf, and each certificate spoiled in turn. */
static void peer_chain_each_level_refused(void **state)
{
    struct pki p;
    struct pk_key *k2 = NULL, *leaf_key = NULL, *nc_key = NULL;
    struct pk_certs inter = {NULL, 0}, roots = {NULL, 0};
    struct pk_err err = {{0}};
    time_t now = time(NULL);

    pki_make(&p, PK_KEY_P256);
    assert_int_equal(pk_key_generate(PK_KEY_P256, &k2, NULL), 0);
    assert_int_equal(pk_key_generate(PK_KEY_P256, &leaf_key, NULL), 0);
    struct pk_cert_template t2 = issuer_tmpl(now);
    t2.subject_o = "intermediate two";
    struct pk_cert *i2 = issue(&t2, k2, p.iss, p.iss_key);
    struct pk_cert_template lt = leaf_tmpl(now - 60, now + 3600, LEAF_URI);
    struct pk_cert *leaf = issue(&lt, leaf_key, i2, k2);
    certs_of(&inter, i2, p.iss);
    assert_int_equal(verify_both(leaf, &inter, &p.roots, &err), 0);

    /* One bit of each signature. */
    struct pk_cert *bad = flip_signature_bit(leaf);
    assert_int_equal(verify_both(bad, &inter, &p.roots, &err), PK_E_UNTRUSTED);
    pk_cert_free(bad);
    bad = flip_signature_bit(i2);
    certs_of(&inter, bad, p.iss);
    assert_int_equal(verify_both(leaf, &inter, &p.roots, &err), PK_E_UNTRUSTED);
    pk_cert_free(bad);
    bad = flip_signature_bit(p.iss);
    certs_of(&inter, i2, bad);
    assert_int_equal(verify_both(leaf, &inter, &p.roots, &err), PK_E_UNTRUSTED);
    pk_cert_free(bad);

    /* Expired and not yet valid at each level: re-issued with the same key and name, so every
     * signature still verifies and only the dates are wrong. */
    static const struct {
        time_t nb, na;
        int want;
    } spans[] = {{-7200, -3600, PK_E_EXPIRED}, {3600, 7200, PK_E_NOTYETVALID}};
    for (size_t k = 0; k < PK_ARRAY_LEN(spans); k++) {
        struct pk_cert_template t;
        t = leaf_tmpl(now + spans[k].nb, now + spans[k].na, LEAF_URI);
        bad = issue(&t, leaf_key, i2, k2);
        certs_of(&inter, i2, p.iss);
        assert_int_equal(verify_both(bad, &inter, &p.roots, &err), spans[k].want);
        pk_cert_free(bad);
        t = t2;
        t.not_before = now + spans[k].nb;
        t.not_after = now + spans[k].na;
        bad = issue(&t, k2, p.iss, p.iss_key);
        certs_of(&inter, bad, p.iss);
        assert_int_equal(verify_both(leaf, &inter, &p.roots, &err), spans[k].want);
        pk_cert_free(bad);
        t = issuer_tmpl(now);
        t.not_before = now + spans[k].nb;
        t.not_after = now + spans[k].na;
        bad = issue(&t, p.iss_key, p.root, p.root_key);
        certs_of(&inter, i2, bad);
        assert_int_equal(verify_both(leaf, &inter, &p.roots, &err), spans[k].want);
        pk_cert_free(bad);
        t = root_tmpl(now);
        t.not_before = now + spans[k].nb;
        t.not_after = now + spans[k].na;
        bad = issue(&t, p.root_key, NULL, p.root_key);
        certs_of(&roots, bad, NULL);
        certs_of(&inter, i2, p.iss);
        assert_int_equal(verify_both(leaf, &inter, &roots, &err), spans[k].want);
        pk_cert_free(bad);
    }

    /* I2 not a CA; I2 a CA without keyCertSign: same key, so the leaf's signature verifies. */
    struct pk_cert_template t = t2;
    t.is_ca = false;
    bad = issue(&t, k2, p.iss, p.iss_key);
    certs_of(&inter, bad, p.iss);
    assert_int_equal(verify_both(leaf, &inter, &p.roots, &err), PK_E_UNTRUSTED);
    assert_non_null(strstr(err.msg, "not a CA"));
    pk_cert_free(bad);
    t = t2;
    t.key_usage = PK_KU_DIGITAL_SIGNATURE | PK_KU_CRL_SIGN;
    bad = issue(&t, k2, p.iss, p.iss_key);
    certs_of(&inter, bad, p.iss);
    assert_int_equal(verify_both(leaf, &inter, &p.roots, &err), PK_E_UNTRUSTED);
    pk_cert_free(bad);

    /* The issuer allows no intermediate below it, and I2 is one. */
    t = issuer_tmpl(now);
    t.path_len = 0;
    bad = issue(&t, p.iss_key, p.root, p.root_key);
    certs_of(&inter, i2, bad);
    assert_int_equal(verify_both(leaf, &inter, &p.roots, &err), PK_E_UNTRUSTED);
    assert_int_equal(pk_x509_verify_peer_chain(leaf, &inter, &p.roots, NULL, &err), PK_E_UNTRUSTED);
    assert_non_null(strstr(err.msg, "allows 0 intermediate"));
    /* wolfSSL also counts a leaf that is a CA against its issuer's constraint. */
    certs_of(&inter, bad, NULL);
    t = issuer_tmpl(now);
    t.subject_o = "a CA presented as a leaf";
    struct pk_cert *ca_leaf = issue(&t, leaf_key, bad, p.iss_key);
    assert_int_equal(verify_both(ca_leaf, &inter, &p.roots, &err), PK_E_UNTRUSTED);
    pk_cert_free(ca_leaf);
    pk_cert_free(bad);

    /* An anchor with a dNSName constraint, which wolfSSL evaluates: a leaf outside it is
     * refused, one inside it accepted (without a URI SAN, which wolfSSL 5.5.4 also refuses below
     * a permitted dNSName subtree). */
    struct pk_buf pem;
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout nc.key "
       "-subj /O=nc -days 1 -addext basicConstraints=critical,CA:TRUE "
       "-addext keyUsage=critical,keyCertSign "
       "-addext 'nameConstraints=critical,permitted;DNS:allowed.test' -out nc.pem");
    slurp("nc.pem", &pem);
    assert_int_equal(pk_certs_parse_pem(pem.data, pem.len, "nc.pem", &roots, &err), 0);
    pk_buf_free(&pem);
    slurp("nc.key", &pem);
    assert_int_equal(pk_key_load_pem(pem.data, pem.len, "nc.key", &nc_key, &err), 0);
    pk_buf_free(&pem);
    struct pk_certs nc_root = {NULL, 0};
    certs_of(&nc_root, roots.v[roots.n - 1], NULL);
    t = leaf_tmpl(now - 60, now + 3600, LEAF_URI);
    t.dns_san = "evil.test";
    bad = issue(&t, leaf_key, nc_root.v[0], nc_key);
    assert_int_equal(verify_both(bad, NULL, &nc_root, &err), PK_E_UNTRUSTED);
    pk_cert_free(bad);
    t.dns_san = "www.allowed.test";
    t.uri_san = NULL;
    struct pk_cert *good = issue(&t, leaf_key, nc_root.v[0], nc_key);
    assert_int_equal(verify_both(good, NULL, &nc_root, &err), 0);
    pk_cert_free(good);
    pk_certs_clear(&nc_root);

    pk_key_free(nc_key);
    pk_certs_clear(&inter);
    pk_certs_clear(&roots);
    pk_cert_free(leaf);
    pk_cert_free(i2);
    pk_key_free(k2);
    pk_key_free(leaf_key);
    pki_free(&p);
}

/* Signatures pk_x509_verify_peer_chain checks for one call. */
static unsigned long peer_chain_signatures(const struct pk_cert *leaf, const struct pk_certs *inter,
                                           const struct pk_certs *roots, struct pk_sigmemo *memo,
                                           int want)
{
    unsigned long before = pk_x509__signature_checks();
    struct pk_err err = {{0}};

    assert_int_equal(pk_x509_verify_peer_chain(leaf, inter, roots, memo, &err), want);
    return pk_x509__signature_checks() - before;
}

/* root -> issuer -> I2 -> I3 -> leaf: four signatures, one per certificate below the anchor;
 * with a warm memo, the leaf's alone. */
static void peer_chain_one_signature_each(void **state)
{
    struct pki p, q;
    struct pk_key *k2 = NULL, *k3 = NULL, *leaf_key = NULL;
    struct pk_certs inter = {NULL, 0}, roots = {NULL, 0};
    struct pk_sigmemo *memo = pk_sigmemo_new();
    time_t now = time(NULL);

    pki_make(&p, PK_KEY_P256);
    pki_make(&q, PK_KEY_P256); /* a root with the same name and another key */
    assert_int_equal(pk_key_generate(PK_KEY_ED25519, &k2, NULL), 0);
    assert_int_equal(pk_key_generate(PK_KEY_P256, &k3, NULL), 0);
    assert_int_equal(pk_key_generate(PK_KEY_P256, &leaf_key, NULL), 0);
    struct pk_cert_template t2 = issuer_tmpl(now);
    t2.subject_o = "intermediate two";
    struct pk_cert *i2 = issue(&t2, k2, p.iss, p.iss_key);
    struct pk_cert_template t3 = issuer_tmpl(now);
    t3.subject_o = "intermediate three";
    struct pk_cert *i3 = issue(&t3, k3, i2, k2);
    struct pk_cert_template lt = leaf_tmpl(now - 60, now + 3600, LEAF_URI);
    struct pk_cert *leaf = issue(&lt, leaf_key, i3, k3);
    struct pk_cert *leaf2 = issue(&lt, leaf_key, i3, k3);
    assert_int_equal(pk_certs_push_copy(&inter, p.iss), 0);
    assert_int_equal(pk_certs_push_copy(&inter, i3), 0);
    assert_int_equal(pk_certs_push_copy(&inter, i2), 0);

    assert_int_equal(peer_chain_signatures(leaf, &inter, &p.roots, NULL, 0), 4);
    /* The same-named root is passed over on its key identifier, without a signature check. */
    certs_of(&roots, q.root, p.root);
    assert_int_equal(peer_chain_signatures(leaf, &inter, &roots, NULL, 0), 4);

    assert_int_equal(peer_chain_signatures(leaf, &inter, &p.roots, memo, 0), 4);
    assert_int_equal(pk_sigmemo_count(memo), 3); /* I3 by I2, I2 by issuer, issuer by root */
    assert_int_equal(peer_chain_signatures(leaf, &inter, &p.roots, memo, 0), 1);
    assert_int_equal(peer_chain_signatures(leaf2, &inter, &p.roots, memo, 0), 1);
    /* A flipped leaf signature is still checked, and refused, with a warm memo. */
    struct pk_cert *bad = flip_signature_bit(leaf);
    assert_int_equal(peer_chain_signatures(bad, &inter, &p.roots, memo, PK_E_UNTRUSTED), 1);
    pk_cert_free(bad);
    pk_sigmemo_free(memo);

    /* A refused chain teaches the memo nothing: here the only root has expired. */
    memo = pk_sigmemo_new();
    struct pk_cert_template rt = root_tmpl(now);
    rt.not_before = now - 7200;
    rt.not_after = now - 3600;
    struct pk_cert *old_root = issue(&rt, p.root_key, NULL, p.root_key);
    certs_of(&roots, old_root, NULL);
    assert_int_equal(peer_chain_signatures(leaf, &inter, &roots, memo, PK_E_EXPIRED), 3);
    assert_int_equal(pk_sigmemo_count(memo), 0);
    /* Nor does a chain to a CA nobody trusts, however well signed. */
    assert_int_equal(peer_chain_signatures(leaf, &inter, &q.roots, memo, PK_E_UNTRUSTED), 3);
    assert_int_equal(pk_sigmemo_count(memo), 0);

    pk_sigmemo_free(memo);
    pk_cert_free(old_root);
    pk_certs_clear(&inter);
    pk_certs_clear(&roots);
    pk_cert_free(leaf);
    pk_cert_free(leaf2);
    pk_cert_free(i2);
    pk_cert_free(i3);
    pk_key_free(k2);
    pk_key_free(k3);
    pk_key_free(leaf_key);
    pki_free(&p);
    pki_free(&q);
}

/* A link whose signature the memo holds is refused once either end expires: an intermediate
 * below a root (chain A), and a root above an intermediate (chain B). */
static void memo_hit_keeps_date_checks(void **state)
{
    struct pki p;
    struct pk_key *k2 = NULL, *leaf_key = NULL;
    struct pk_certs inter_a = {NULL, 0}, inter_b = {NULL, 0}, roots_b = {NULL, 0};
    struct pk_sigmemo *memo = pk_sigmemo_new();
    struct pk_sigmemo_key key_a, key_b;
    struct pk_err err_a = {{0}}, err_b = {{0}};
    time_t now = time(NULL);
    int ra, rb;

    pki_make(&p, PK_KEY_P256);
    assert_int_equal(pk_key_generate(PK_KEY_P256, &k2, NULL), 0);
    assert_int_equal(pk_key_generate(PK_KEY_P256, &leaf_key, NULL), 0);
    struct pk_cert_template lt = leaf_tmpl(now - 60, now + 3600, LEAF_URI);
    struct pk_cert_template t2 = issuer_tmpl(now);
    t2.subject_o = "short-lived intermediate";
    t2.not_after = now + 2;
    struct pk_cert *i2_a = issue(&t2, k2, p.root, p.root_key);
    struct pk_cert *leaf_a = issue(&lt, leaf_key, i2_a, k2);
    certs_of(&inter_a, i2_a, NULL);
    struct pk_cert_template rt = root_tmpl(now);
    rt.subject_o = "short-lived root";
    rt.not_after = now + 2;
    struct pk_cert *root_b = issue(&rt, p.root_key, NULL, p.root_key);
    t2.subject_o = "intermediate below the short-lived root";
    t2.not_after = now + 3600;
    struct pk_cert *i2_b = issue(&t2, k2, root_b, p.root_key);
    struct pk_cert *leaf_b = issue(&lt, leaf_key, i2_b, k2);
    certs_of(&inter_b, i2_b, NULL);
    certs_of(&roots_b, root_b, NULL);
    struct pk_slice sub = pk_cert_der(i2_a), iss = pk_cert_der(p.root);
    pk_sigmemo_key_of(sub.ptr, sub.len, iss.ptr, iss.len, &key_a);
    sub = pk_cert_der(i2_b);
    iss = pk_cert_der(root_b);
    pk_sigmemo_key_of(sub.ptr, sub.len, iss.ptr, iss.len, &key_b);

    assert_int_equal(pk_x509_verify_peer_chain(leaf_a, &inter_a, &p.roots, memo, &err_a), 0);
    assert_int_equal(pk_x509_verify_peer_chain(leaf_b, &inter_b, &roots_b, memo, &err_b), 0);
    assert_true(pk_sigmemo_contains(memo, &key_a));
    assert_true(pk_sigmemo_contains(memo, &key_b));
    /* Until they expire the memo answers for those signatures; then both chains are refused
     * although the memo still holds them. */
    time_t deadline = now + 30;
    do {
        ra = pk_x509_verify_peer_chain(leaf_a, &inter_a, &p.roots, memo, &err_a);
        rb = pk_x509_verify_peer_chain(leaf_b, &inter_b, &roots_b, memo, &err_b);
        if (ra == 0 || rb == 0) {
            usleep(100 * 1000);
        }
    } while ((ra == 0 || rb == 0) && time(NULL) < deadline);
    assert_int_equal(ra, PK_E_EXPIRED);
    assert_non_null(strstr(err_a.msg, "short-lived intermediate"));
    assert_int_equal(rb, PK_E_EXPIRED);
    assert_non_null(strstr(err_b.msg, "short-lived root"));
    assert_true(pk_sigmemo_contains(memo, &key_a));
    assert_true(pk_sigmemo_contains(memo, &key_b));

    pk_sigmemo_free(memo);
    pk_certs_clear(&inter_a);
    pk_certs_clear(&inter_b);
    pk_certs_clear(&roots_b);
    pk_cert_free(leaf_a);
    pk_cert_free(leaf_b);
    pk_cert_free(i2_a);
    pk_cert_free(i2_b);
    pk_cert_free(root_b);
    pk_key_free(k2);
    pk_key_free(leaf_key);
    pki_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(root_and_issuer_p256),
            cmocka_unit_test(root_and_issuer_ed25519),
            cmocka_unit_test(workload_p256_under_p256),
            cmocka_unit_test(workload_ed25519_under_ed25519),
            cmocka_unit_test(workload_ed25519_under_p256),
            cmocka_unit_test(workload_p256_under_ed25519),
            cmocka_unit_test(long_names_and_path_len),
            cmocka_unit_test(issue_refusals),
            cmocka_unit_test(chain_cases),
            cmocka_unit_test(chain_intermediates_any_order_and_limits),
            cmocka_unit_test(anchors_must_be_cas),
            cmocka_unit_test(key_cert_mismatch),
            cmocka_unit_test(certs_pem_lists),
            cmocka_unit_test(malformed_certificates),
            cmocka_unit_test(openssl_unknown_critical_extension),
            cmocka_unit_test(dapr_openssl_recipe),
            cmocka_unit_test(peer_chain_each_level_refused),
            cmocka_unit_test(peer_chain_one_signature_each),
            cmocka_unit_test(memo_hit_keeps_date_checks),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
