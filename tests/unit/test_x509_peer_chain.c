/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for common/x509's handshake verifier (pk_x509_verify_peer_chain): every
 * level refused for each reason, one signature checked per certificate, and a memo that skips no
 * check. Every certificate is minted at test time. */
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
#include "x509_testutil.h"

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

static int setup_tmp(void **state)
{
    (void)state;
    return tmpdir_create("x509peer");
}

static int teardown_tmp(void **state)
{
    (void)state;
    x509_testutil_free();
    return tmpdir_remove();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(peer_chain_each_level_refused),
            cmocka_unit_test(peer_chain_one_signature_each),
            cmocka_unit_test(memo_hit_keeps_date_checks),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
