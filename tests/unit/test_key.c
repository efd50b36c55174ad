/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for common/key (P-256 and Ed25519 keys, PKCS#10 CSRs). Keys of other types
 * are made at test time with `openssl genpkey` in a temporary directory. */
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

#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/key.h"
#include "common/mem.h"
#include "common/pem.h"
#include "testutil.h"

static int setup_tmp(void **state)
{
    return tmpdir_create("keytest");
}

static int teardown_tmp(void **state)
{
    return tmpdir_remove();
}

static void spew(const char *name, const void *p, size_t n)
{
    char path[700];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static int load_file(const char *name, struct pk_key **key, struct pk_err *err)
{
    struct pk_buf pem;
    int r;

    slurp(name, &pem);
    r = pk_key_load_pem(pem.data, pem.len, name, key, err);
    pk_buf_free(&pem);
    return r;
}

static void assert_spki_equals_file(const struct pk_key *key, const char *name)
{
    struct pk_buf want, got;

    slurp(name, &want);
    pk_buf_init(&got, 4096);
    assert_int_equal(pk_key_public_spki(key, &got), 0);
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.data, want.data, want.len);
    pk_buf_free(&want);
    pk_buf_free(&got);
}

static void round_trip(enum pk_key_type type)
{
    struct pk_key *key = NULL, *again = NULL;
    struct pk_pubkey *pub = NULL, *pub2 = NULL;
    struct pk_buf pem, der, der2, spki, sig;
    struct pk_err err = {{0}};
    static const uint8_t msg[] = "attack at dawn";

    assert_int_equal(pk_key_generate(type, &key, &err), 0);
    assert_int_equal(pk_key_get_type(key), type);
    pk_buf_init_secret(&pem, 4096);
    pk_buf_init_secret(&der, 4096);
    pk_buf_init_secret(&der2, 4096);
    pk_buf_init(&spki, 4096);
    pk_buf_init(&sig, 4096);
    assert_int_equal(pk_key_to_pem(key, &pem), 0);
    assert_non_null(strstr((char *)pem.data, "-----BEGIN PRIVATE KEY-----\n"));
    assert_int_equal(pk_key_load_pem(pem.data, pem.len, "mem", &again, &err), 0);
    assert_int_equal(pk_key_get_type(again), type);
    assert_int_equal(pk_key_to_der(key, &der), 0);
    assert_int_equal(pk_key_to_der(again, &der2), 0);
    assert_int_equal(der.len, der2.len);
    assert_memory_equal(der.data, der2.data, der.len);

    /* The public half, three ways, agrees. */
    assert_int_equal(pk_key_public_spki(key, &spki), 0);
    assert_int_equal(pk_key_public(again, &pub), 0);
    assert_int_equal(pk_pubkey_get_type(pub), type);
    assert_int_equal(pk_pubkey_spki(pub).len, spki.len);
    assert_memory_equal(pk_pubkey_spki(pub).ptr, spki.data, spki.len);
    assert_int_equal(pk_pubkey_from_spki(spki.data, spki.len, &pub2, &err), 0);
    assert_true(pk_pubkey_equal(pub, pub2));

    /* Signatures verify, and only for the right message and algorithm. */
    enum pk_sig_alg alg = type == PK_KEY_P256 ? PK_SIG_ECDSA_SHA256 : PK_SIG_ED25519;
    assert_int_equal(pk_key_sign(key, msg, sizeof(msg), &sig), 0);
    assert_int_equal(pk_pubkey_verify(pub, alg, msg, sizeof(msg), sig.data, sig.len), 0);
    assert_int_equal(pk_pubkey_verify(pub, alg, msg, sizeof(msg) - 1, sig.data, sig.len),
                     PK_E_CRYPTO);
    sig.data[sig.len - 1] ^= 0x01;
    assert_int_equal(pk_pubkey_verify(pub, alg, msg, sizeof(msg), sig.data, sig.len), PK_E_CRYPTO);
    assert_int_equal(pk_pubkey_verify(pub,
                                      type == PK_KEY_P256 ? PK_SIG_ED25519 : PK_SIG_ECDSA_SHA256,
                                      msg, sizeof(msg), sig.data, sig.len),
                     PK_E_UNSUPPORTED);
    assert_int_equal(pk_pubkey_verify(pub, alg, msg, sizeof(msg), sig.data, 0), PK_E_CRYPTO);

    /* Another key is another key. */
    struct pk_key *other = NULL;
    struct pk_pubkey *other_pub = NULL;
    assert_int_equal(pk_key_generate(type, &other, &err), 0);
    assert_int_equal(pk_key_public(other, &other_pub), 0);
    assert_false(pk_pubkey_equal(pub, other_pub));

    pk_key_free(other);
    pk_pubkey_free(other_pub);
    pk_buf_free(&pem);
    pk_buf_free(&der);
    pk_buf_free(&der2);
    pk_buf_free(&spki);
    pk_buf_free(&sig);
    pk_pubkey_free(pub);
    pk_pubkey_free(pub2);
    pk_key_free(again);
    assert_null(pk_key_free(key));
}

static void p256_round_trip(void **state)
{
    round_trip(PK_KEY_P256);
}

static void ed25519_round_trip(void **state)
{
    round_trip(PK_KEY_ED25519);
}

static void generate_refuses_other_types(void **state)
{
    struct pk_key *key = NULL;
    struct pk_err err = {{0}};

    assert_int_equal(pk_key_generate(PK_KEY_OTHER, &key, &err), PK_E_UNSUPPORTED);
    assert_null(key);
    assert_string_equal(pk_key_type_name(PK_KEY_P256), "P-256");
    assert_string_equal(pk_key_type_name(PK_KEY_ED25519), "Ed25519");
}

static void openssl_sec1_and_pkcs8(void **state)
{
    struct pk_key *sec1 = NULL, *p8 = NULL, *params = NULL, *ed = NULL;
    struct pk_buf d1, d2, text;
    struct pk_err err = {{0}};

    /* The seed recipe: `openssl ecparam -genkey -name prime256v1 | openssl ec` gives SEC1. */
    sh("openssl ecparam -genkey -name prime256v1 | openssl ec -out sec1.key");
    sh("openssl pkcs8 -topk8 -nocrypt -in sec1.key -out p8.key");
    sh("openssl ec -in sec1.key -pubout -outform DER -out ec.spki");
    sh("openssl ecparam -genkey -name prime256v1 -out params.key");
    sh("openssl genpkey -algorithm ed25519 -out ed.key");
    sh("openssl pkey -in ed.key -pubout -outform DER -out ed.spki");

    slurp("sec1.key", &text);
    assert_non_null(strstr((char *)text.data, "BEGIN EC PRIVATE KEY"));
    pk_buf_free(&text);
    slurp("params.key", &text);
    assert_non_null(strstr((char *)text.data, "BEGIN EC PARAMETERS"));
    pk_buf_free(&text);

    assert_int_equal(load_file("sec1.key", &sec1, &err), 0);
    assert_int_equal(load_file("p8.key", &p8, &err), 0);
    assert_int_equal(load_file("params.key", &params, &err), 0); /* EC PARAMETERS skipped */
    assert_int_equal(load_file("ed.key", &ed, &err), 0);
    assert_int_equal(pk_key_get_type(sec1), PK_KEY_P256);
    assert_int_equal(pk_key_get_type(ed), PK_KEY_ED25519);
    assert_spki_equals_file(sec1, "ec.spki");
    assert_spki_equals_file(p8, "ec.spki");
    assert_spki_equals_file(ed, "ed.spki");

    /* Same key in both containers: same PKCS#8 export, which OpenSSL reads back. */
    pk_buf_init_secret(&d1, 4096);
    pk_buf_init_secret(&d2, 4096);
    assert_int_equal(pk_key_to_der(sec1, &d1), 0);
    assert_int_equal(pk_key_to_der(p8, &d2), 0);
    assert_int_equal(d1.len, d2.len);
    assert_memory_equal(d1.data, d2.data, d1.len);
    pk_buf_reset(&d1);
    assert_int_equal(pk_key_to_pem(ed, &d1), 0);
    spew("ours-ed.key", d1.data, d1.len);
    sh("openssl pkey -in ours-ed.key -pubout -outform DER -out ours-ed.spki && cmp ours-ed.spki "
       "ed.spki");
    pk_buf_reset(&d1);
    assert_int_equal(pk_key_to_pem(sec1, &d1), 0);
    spew("ours-ec.key", d1.data, d1.len);
    sh("openssl pkey -in ours-ec.key -pubout -outform DER -out ours-ec.spki && cmp ours-ec.spki "
       "ec.spki");
    pk_buf_free(&d1);
    pk_buf_free(&d2);
    pk_key_free(sec1);
    pk_key_free(p8);
    pk_key_free(params);
    pk_key_free(ed);
}

static void expect_unsupported(const char *file, const char *frag)
{
    struct pk_key *key = NULL;
    struct pk_err err = {{0}};
    int r = load_file(file, &key, &err);

    if (r != PK_E_UNSUPPORTED || strstr(err.msg, frag) == NULL || strstr(err.msg, file) == NULL) {
        fail_msg("%s: got %d '%s', want PK_E_UNSUPPORTED naming %s", file, r, err.msg, frag);
    }
    assert_null(key);
}

static void other_key_types_refused(void **state)
{
    sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key");
    sh("openssl rsa -in rsa.key -traditional -out rsa-trad.key");
    sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out p384.key");
    sh("openssl ec -in p384.key -out p384-sec1.key");
    sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:secp256k1 -out k1.key");
    sh("openssl genpkey -algorithm ed448 -out ed448.key");
    sh("openssl genpkey -algorithm x25519 -out x25519.key");
    sh("openssl pkcs8 -topk8 -in rsa.key -passout pass:secret -out enc.key");

    expect_unsupported("rsa.key", "RSA");
    expect_unsupported("rsa-trad.key", "RSA");
    expect_unsupported("p384.key", "P-384");
    expect_unsupported("p384-sec1.key", "P-384");
    expect_unsupported("k1.key", "secp256k1");
    expect_unsupported("ed448.key", "Ed448");
    expect_unsupported("x25519.key", "X25519");
    expect_unsupported("enc.key", "encrypted");
}

/* Load a PEM block of the given type holding der; returns the code. */
static int load_der(const char *type, const uint8_t *der, size_t len, struct pk_err *err)
{
    struct pk_buf pem;
    struct pk_key *key = NULL;
    int r;

    pk_buf_init(&pem, 1 << 16);
    assert_int_equal(pk_pem_encode(type, der, len, &pem), 0);
    r = pk_key_load_pem(pem.data, pem.len, "test.key", &key, err);
    pk_key_free(key);
    pk_buf_free(&pem);
    return r;
}

/* A SEC1 ECPrivateKey with a given scalar and optional public point. */
static void sec1_build(const uint8_t *d, size_t d_len, const uint8_t *pub, size_t pub_len,
                       bool with_curve, struct pk_buf *out)
{
    static const uint8_t one[] = {1};
    static const uint8_t p256[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    uint8_t bits[70];
    size_t start;

    pk_buf_init(out, 4096);
    assert_int_equal(pk_der_put(out, PK_DER_INTEGER, one, 1), 0);
    assert_int_equal(pk_der_put(out, PK_DER_OCTET_STRING, d, d_len), 0);
    if (with_curve) {
        start = out->len;
        assert_int_equal(pk_der_put(out, PK_DER_OID, p256, sizeof(p256)), 0);
        assert_int_equal(pk_der_wrap(out, start, PK_DER_CTX_CONS(0)), 0);
    }
    if (pub != NULL) {
        bits[0] = 0;
        memcpy(bits + 1, pub, pub_len);
        start = out->len;
        assert_int_equal(pk_der_put(out, PK_DER_BIT_STRING, bits, pub_len + 1), 0);
        assert_int_equal(pk_der_wrap(out, start, PK_DER_CTX_CONS(1)), 0);
    }
    assert_int_equal(pk_der_wrap(out, 0, PK_DER_SEQUENCE), 0);
}

static void malformed_private_keys(void **state)
{
    struct pk_key *a = NULL, *b = NULL, *key = NULL;
    struct pk_buf der, spki_b, sec1;
    struct pk_err err = {{0}};
    uint8_t d[32];
    uint8_t zero[32] = {0};
    static const uint8_t order[32] = {
            0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17,
            0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
    };

    assert_int_equal(pk_key_generate(PK_KEY_P256, &a, &err), 0);
    assert_int_equal(pk_key_generate(PK_KEY_P256, &b, &err), 0);
    pk_buf_init_secret(&der, 4096);
    assert_int_equal(pk_key_to_der(a, &der), 0);

    /* Every truncation of a valid PKCS#8 document is refused. */
    for (size_t n = 1; n < der.len; n++) {
        int r = load_der("PRIVATE KEY", der.data, n, &err);
        if (r != PK_E_INVALID) {
            fail_msg("truncated to %zu of %zu bytes: got %d", n, der.len, r);
        }
        assert_non_null(strstr(err.msg, "test.key"));
    }
    /* A trailing byte, and a length that lies. */
    assert_int_equal(pk_buf_append(&der, "\0", 1), 0);
    assert_int_equal(load_der("PRIVATE KEY", der.data, der.len, &err), PK_E_INVALID);
    der.len--;
    der.data[1] ^= 0x01;
    assert_int_equal(load_der("PRIVATE KEY", der.data, der.len, &err), PK_E_INVALID);
    der.data[1] ^= 0x01;
    assert_int_equal(load_der("PRIVATE KEY", der.data, der.len, &err), 0);

    /* SEC1 whose stored public key belongs to another key. The PKCS#8 export of a P-256 key
     * ends with the 65-byte point, and the scalar sits right after "04 20". */
    pk_buf_init(&spki_b, 256);
    assert_int_equal(pk_key_public_spki(b, &spki_b), 0);
    const uint8_t *dpos = NULL;
    for (size_t i = 0; i + 2 < der.len; i++) {
        if (der.data[i] == 0x04 && der.data[i + 1] == 0x20) {
            dpos = der.data + i + 2;
            break;
        }
    }
    assert_non_null(dpos);
    memcpy(d, dpos, 32);
    sec1_build(d, 32, spki_b.data + spki_b.len - 65, 65, true, &sec1);
    assert_int_equal(load_der("EC PRIVATE KEY", sec1.data, sec1.len, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "does not match"));
    pk_buf_free(&sec1);
    /* Its own public key is fine; none at all is fine too. */
    sec1_build(d, 32, der.data + der.len - 65, 65, true, &sec1);
    assert_int_equal(load_der("EC PRIVATE KEY", sec1.data, sec1.len, &err), 0);
    pk_buf_free(&sec1);
    sec1_build(d, 32, NULL, 0, true, &sec1);
    assert_int_equal(load_der("EC PRIVATE KEY", sec1.data, sec1.len, &err), 0);
    pk_buf_free(&sec1);
    /* Without a curve anywhere it cannot be used. */
    sec1_build(d, 32, NULL, 0, false, &sec1);
    assert_int_equal(load_der("EC PRIVATE KEY", sec1.data, sec1.len, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "no curve"));
    pk_buf_free(&sec1);
    /* Scalars out of range: 0 and n. */
    sec1_build(zero, 32, NULL, 0, true, &sec1);
    assert_int_equal(load_der("EC PRIVATE KEY", sec1.data, sec1.len, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "out of range"));
    pk_buf_free(&sec1);
    sec1_build(order, 32, NULL, 0, true, &sec1);
    assert_int_equal(load_der("EC PRIVATE KEY", sec1.data, sec1.len, &err), PK_E_INVALID);
    pk_buf_free(&sec1);
    /* 33 bytes of scalar is too long. */
    uint8_t d33[33] = {0};
    memcpy(d33 + 1, d, 32);
    sec1_build(d33, 33, NULL, 0, true, &sec1);
    assert_int_equal(load_der("EC PRIVATE KEY", sec1.data, sec1.len, &err), PK_E_INVALID);
    pk_buf_free(&sec1);

    /* No key block at all. */
    const char *cert_only = "-----BEGIN CERTIFICATE-----\naGk=\n-----END CERTIFICATE-----\n";
    assert_int_equal(
            pk_key_load_pem((const uint8_t *)cert_only, strlen(cert_only), "x.pem", &key, &err),
            PK_E_INVALID);
    assert_non_null(strstr(err.msg, "x.pem: no private key"));
    /* A broken PEM block is reported with the file name. */
    const char *broken = "-----BEGIN PRIVATE KEY-----\naGk=\n";
    assert_int_equal(pk_key_load_pem((const uint8_t *)broken, strlen(broken), "y.pem", &key, &err),
                     PK_E_INVALID);
    assert_non_null(strstr(err.msg, "y.pem: PEM block #1"));
    assert_null(key);

    pk_buf_free(&der);
    pk_buf_free(&spki_b);
    pk_key_free(a);
    pk_key_free(b);
}

static void public_keys_from_spki(void **state)
{
    struct pk_pubkey *pub = NULL;
    struct pk_err err = {{0}};
    struct pk_buf spki;

    sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 | openssl pkey -pubout "
       "-outform DER -out rsa.spki");
    sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 | openssl pkey -pubout "
       "-outform DER -out p384.spki");
    sh("openssl ecparam -genkey -name prime256v1 | openssl ec -pubout -conv_form compressed "
       "-outform DER -out comp.spki");
    slurp("rsa.spki", &spki);
    assert_int_equal(pk_pubkey_from_spki(spki.data, spki.len, &pub, &err), PK_E_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "RSA"));
    pk_buf_free(&spki);
    slurp("p384.spki", &spki);
    assert_int_equal(pk_pubkey_from_spki(spki.data, spki.len, &pub, &err), PK_E_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "P-384"));
    pk_buf_free(&spki);
    slurp("comp.spki", &spki);
    assert_int_equal(pk_pubkey_from_spki(spki.data, spki.len, &pub, &err), PK_E_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "compressed"));
    pk_buf_free(&spki);

    /* A point that is not on the curve. */
    struct pk_key *key = NULL;
    assert_int_equal(pk_key_generate(PK_KEY_P256, &key, &err), 0);
    pk_buf_init(&spki, 256);
    assert_int_equal(pk_key_public_spki(key, &spki), 0);
    spki.data[spki.len - 1] ^= 0x01;
    assert_int_equal(pk_pubkey_from_spki(spki.data, spki.len, &pub, &err), PK_E_INVALID);
    spki.data[spki.len - 1] ^= 0x01;
    /* A coordinate that is not a field element (>= p) is refused before any curve math. */
    {
        uint8_t saved[32];
        uint8_t *x = spki.data + spki.len - 64;
        memcpy(saved, x, 32);
        memset(x, 0xff, 32);
        assert_int_equal(pk_pubkey_from_spki(spki.data, spki.len, &pub, &err), PK_E_INVALID);
        assert_non_null(strstr(err.msg, "out of range"));
        memcpy(x, saved, 32);
    }
    for (size_t n = 0; n < spki.len; n++) {
        assert_int_equal(pk_pubkey_from_spki(spki.data, n, &pub, &err), PK_E_INVALID);
    }
    assert_null(pub);
    assert_int_equal(pk_pubkey_from_spki(spki.data, spki.len, &pub, &err), 0);
    pk_pubkey_free(pub);
    pk_buf_free(&spki);
    pk_key_free(key);
}

/* Find the DER inside a CSR PEM produced by pk_csr_create. */
static void csr_der(const struct pk_buf *pem, struct pk_pem_block *block)
{
    size_t off = 0;
    assert_int_equal(pk_pem_next(pem->data, pem->len, &off, block, NULL), 0);
    assert_string_equal(block->type, "CERTIFICATE REQUEST");
}

static void csr_round_trip(enum pk_key_type type, const char *cn)
{
    struct pk_key *key = NULL;
    struct pk_pubkey *pub = NULL, *mine = NULL;
    struct pk_buf pem, text;
    struct pk_pem_block block = {0};
    struct pk_err err = {{0}};

    assert_int_equal(pk_key_generate(type, &key, &err), 0);
    pk_buf_init(&pem, 8192);
    assert_int_equal(pk_csr_create(key, cn, &pem, &err), 0);
    csr_der(&pem, &block);
    assert_int_equal(pk_csr_parse_verify(block.der, block.der_len, &pub, &err), 0);
    assert_int_equal(pk_key_public(key, &mine), 0);
    assert_true(pk_pubkey_equal(pub, mine));

    /* OpenSSL agrees on the signature, the version and the subject. */
    spew("ours.csr", pem.data, pem.len);
    sh("openssl req -in ours.csr -noout -verify");
    sh("openssl req -in ours.csr -noout -text > ours.txt");
    slurp("ours.txt", &text);
    assert_non_null(strstr((char *)text.data, "Version: 1 (0x0)"));
    if (cn != NULL) {
        assert_non_null(strstr((char *)text.data, "Subject: CN = myapp"));
        assert_non_null(strstr((char *)text.data, "DNS:myapp"));
    } else {
        assert_null(strstr((char *)text.data, "CN ="));
        assert_null(strstr((char *)text.data, "DNS:"));
        assert_non_null(strstr((char *)text.data, "Subject: \n"));
    }
    assert_non_null(
            strstr((char *)text.data, type == PK_KEY_P256 ? "ecdsa-with-SHA256" : "ED25519"));

    pk_buf_free(&text);
    pk_pem_block_clear(&block);
    pk_buf_free(&pem);
    pk_pubkey_free(pub);
    pk_pubkey_free(mine);
    pk_key_free(key);
}

static void csr_create_and_verify(void **state)
{
    csr_round_trip(PK_KEY_P256, "myapp");
    csr_round_trip(PK_KEY_P256, NULL);
    csr_round_trip(PK_KEY_ED25519, "myapp");
    csr_round_trip(PK_KEY_ED25519, NULL);
}

static void csr_rejects_bad_input(void **state)
{
    struct pk_key *key = NULL;
    struct pk_pubkey *pub = NULL;
    struct pk_buf pem;
    struct pk_pem_block block = {0};
    struct pk_err err = {{0}};
    uint8_t *der;
    size_t len;

    for (int t = 0; t < 2; t++) {
        assert_int_equal(pk_key_generate(t == 0 ? PK_KEY_P256 : PK_KEY_ED25519, &key, &err), 0);
        pk_buf_init(&pem, 8192);
        assert_int_equal(pk_csr_create(key, "myapp", &pem, &err), 0);
        csr_der(&pem, &block);
        der = block.der;
        len = block.der_len;

        /* A flipped bit in the signature: wolfSSL's CERTREQ_TYPE/VERIFY really checks it. */
        der[len - 3] ^= 0x10;
        assert_int_equal(pk_csr_parse_verify(der, len, &pub, &err), PK_E_INVALID);
        assert_non_null(strstr(err.msg, "signature"));
        der[len - 3] ^= 0x10;
        /* A flipped bit in the signed content (the CN's last letter). */
        uint8_t *p = memmem(der, len, "myapp", 5);
        assert_non_null(p);
        p[4] ^= 0x01;
        assert_int_equal(pk_csr_parse_verify(der, len, &pub, &err), PK_E_INVALID);
        assert_non_null(strstr(err.msg, "signature"));
        p[4] ^= 0x01;
        assert_int_equal(pk_csr_parse_verify(der, len, &pub, &err), 0);
        pub = pk_pubkey_free(pub);

        /* Every truncation, a trailing byte, a lying outer length. */
        for (size_t n = 0; n < len; n++) {
            if (pk_csr_parse_verify(der, n, &pub, &err) != PK_E_INVALID) {
                fail_msg("CSR truncated to %zu of %zu bytes was accepted", n, len);
            }
        }
        uint8_t *longer = malloc(len + 1);
        memcpy(longer, der, len);
        longer[len] = 0;
        assert_int_equal(pk_csr_parse_verify(longer, len + 1, &pub, &err), PK_E_INVALID);
        assert_non_null(strstr(err.msg, "malformed"));
        longer[2] ^= 0x04;
        assert_int_equal(pk_csr_parse_verify(longer, len, &pub, &err), PK_E_INVALID);
        free(longer);
        assert_null(pub);

        pk_pem_block_clear(&block);
        pk_buf_free(&pem);
        key = pk_key_free(key);
    }

    /* Oversize input, and common names that cannot be a DNS SAN. */
    uint8_t *big = calloc(1, 70000);
    big[0] = 0x30;
    assert_int_equal(pk_csr_parse_verify(big, 70000, &pub, &err), PK_E_INVALID);
    free(big);
    assert_int_equal(pk_key_generate(PK_KEY_P256, &key, &err), 0);
    pk_buf_init(&pem, 8192);
    assert_int_equal(pk_csr_create(key, "my app", &pem, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "'my app'"));
    assert_int_equal(pk_csr_create(key, "", &pem, &err), PK_E_INVALID);
    char long_cn[80];
    memset(long_cn, 'a', 79);
    long_cn[79] = '\0';
    assert_int_equal(pk_csr_create(key, long_cn, &pem, &err), PK_E_INVALID);
    assert_int_equal(pem.len, 0);
    /* The output cap is honoured. */
    struct pk_buf tiny;
    pk_buf_init(&tiny, 100);
    assert_int_equal(pk_csr_create(key, "myapp", &tiny, &err), PK_E_TOOBIG);
    assert_int_equal(tiny.len, 0);
    pk_buf_free(&pem);
    pk_key_free(key);
}

static void csr_from_openssl(void **state)
{
    struct pk_pubkey *pub = NULL;
    struct pk_err err = {{0}};
    struct pk_buf der;

    sh("openssl ecparam -genkey -name prime256v1 -noout -out c1.key && openssl req -new -key "
       "c1.key -subj /CN=x -outform DER -out c1.csr");
    sh("openssl genpkey -algorithm ed25519 -out c2.key && openssl req -new -key c2.key -subj /CN=y "
       "-outform DER -out c2.csr");
    sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out c3.key && openssl req "
       "-new -key c3.key -subj /CN=x -outform DER -out c3.csr");
    slurp("c1.csr", &der);
    assert_int_equal(pk_csr_parse_verify(der.data, der.len, &pub, &err), 0);
    assert_int_equal(pk_pubkey_get_type(pub), PK_KEY_P256);
    pub = pk_pubkey_free(pub);
    pk_buf_free(&der);
    slurp("c2.csr", &der);
    assert_int_equal(pk_csr_parse_verify(der.data, der.len, &pub, &err), 0);
    assert_int_equal(pk_pubkey_get_type(pub), PK_KEY_ED25519);
    pub = pk_pubkey_free(pub);
    pk_buf_free(&der);
    slurp("c3.csr", &der);
    assert_int_equal(pk_csr_parse_verify(der.data, der.len, &pub, &err), PK_E_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "RSA"));
    pk_buf_free(&der);
}

static void random_bytes_and_fork(void **state)
{
    uint8_t a[32], b[32], parent[32], child[32];
    int fds[2];
    pid_t pid;
    int status;

    assert_int_equal(pk_key_random(a, sizeof(a)), 0);
    assert_int_equal(pk_key_random(b, sizeof(b)), 0);
    assert_memory_not_equal(a, b, sizeof(a));
    assert_int_equal(pk_key_random(a, 0), 0);

    /* A forked child must not repeat the parent's DRBG output. */
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uint8_t out[32];
        int ok = pk_key_random(out, sizeof(out)) == 0 && write(fds[1], out, sizeof(out)) == 32;
        _exit(ok ? 0 : 1);
    }
    assert_int_equal(pk_key_random(parent, sizeof(parent)), 0);
    assert_int_equal(read(fds[0], child, sizeof(child)), (ssize_t)sizeof(child));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_memory_not_equal(parent, child, sizeof(parent));
    close(fds[0]);
    close(fds[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(p256_round_trip),
            cmocka_unit_test(ed25519_round_trip),
            cmocka_unit_test(generate_refuses_other_types),
            cmocka_unit_test(openssl_sec1_and_pkcs8),
            cmocka_unit_test(other_key_types_refused),
            cmocka_unit_test(malformed_private_keys),
            cmocka_unit_test(public_keys_from_spki),
            cmocka_unit_test(csr_create_and_verify),
            cmocka_unit_test(csr_rejects_bad_input),
            cmocka_unit_test(csr_from_openssl),
            cmocka_unit_test(random_bytes_and_fork),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
