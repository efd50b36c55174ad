/* SPDX-License-Identifier: Apache-2.0 */
/* picket: private and public keys (ECDSA P-256 and Ed25519), on wolfCrypt.
 *
 * Implementation notes
 *
 * Key containers (SEC1 ECPrivateKey, PKCS#8 / RFC 5958 OneAsymmetricKey, SubjectPublicKeyInfo)
 * are read and written here with the small DER reader of pem.h, and wolfCrypt only sees raw key
 * material (wc_ecc_import_private_key_ex, wc_ed25519_import_private_key, ...). That keeps the
 * accepted encodings identical whichever way the wolfSSL library was configured, and lets every
 * refusal name the algorithm or curve it found. A loaded private key is checked for consistency:
 * the P-256 scalar must lie in [1, n-1], and a public key stored beside it must equal the one
 * derived from it.
 *
 * A pk_pubkey keeps its SubjectPublicKeyInfo in canonical form (named curve, uncompressed
 * point), re-encoded from the decoded key, so two encodings of one key compare equal.
 *
 * One WC_RNG serves the process, behind a mutex. A forked child re-instantiates it before first
 * use, so parent and child never share DRBG output. ECDSA signing (and wolfSSL certificate
 * generation in x509_issue.c and csr.c) holds the same lock, which also covers wolfCrypt's key
 * objects. */
#include "key.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/wc_port.h>

#include "mem.h"
#include "pem.h"

#define P256_LEN 32

/* The P-256 field prime p, big-endian. */
static const uint8_t p256_prime[32] = {
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};
#define P256_POINT  (1 + 2 * P256_LEN)
#define ED25519_LEN 32
#define KEY_DER_MAX 512 /* a PKCS#8 document for either key type fits easily */

static const uint8_t oid_ec_public_key[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
static const uint8_t oid_prime256v1[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const uint8_t oid_secp384r1[] = {0x2b, 0x81, 0x04, 0x00, 0x22};
static const uint8_t oid_secp521r1[] = {0x2b, 0x81, 0x04, 0x00, 0x23};
static const uint8_t oid_secp256k1[] = {0x2b, 0x81, 0x04, 0x00, 0x0a};
static const uint8_t oid_ed25519[] = {0x2b, 0x65, 0x70};
static const uint8_t oid_ed448[] = {0x2b, 0x65, 0x71};
static const uint8_t oid_x25519[] = {0x2b, 0x65, 0x6e};
static const uint8_t oid_x448[] = {0x2b, 0x65, 0x6f};
static const uint8_t oid_rsa[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01};
static const uint8_t oid_rsa_pss[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a};
static const uint8_t oid_dsa[] = {0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01};

/* The order n of the P-256 group (FIPS 186-4 §D.1.2.3), big-endian. */
static const uint8_t p256_order[P256_LEN] = {
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17,
        0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};

#define OID_IS(el, oid) pk_der_is_oid((el), (oid), sizeof(oid))

union wc_any_key {
    ecc_key ecc;
    ed25519_key ed;
};

struct pk_key {
    enum pk_key_type type;
    union wc_any_key k;
};

struct pk_pubkey {
    enum pk_key_type type;
    union wc_any_key k;
    uint8_t spki[128]; /* canonical SubjectPublicKeyInfo */
    size_t spki_len;
};

/* ---- the process-wide DRBG ---- */

static pthread_mutex_t rng_lock = PTHREAD_MUTEX_INITIALIZER;
static WC_RNG rng_state;
static bool rng_ready;
static pid_t rng_pid;

void *pk_key__rng_acquire(void)
{
    pid_t pid = getpid();

    pthread_mutex_lock(&rng_lock);
    if (rng_ready && rng_pid != pid) {
        wc_FreeRng(&rng_state);
        rng_ready = false;
    }
    if (!rng_ready) {
        if (wolfCrypt_Init() != 0 || wc_InitRng(&rng_state) != 0) {
            pthread_mutex_unlock(&rng_lock);
            return NULL;
        }
        rng_ready = true;
        rng_pid = pid;
    }
    return &rng_state;
}

void pk_key__rng_release(void)
{
    pthread_mutex_unlock(&rng_lock);
}

int pk_key_random(uint8_t *out, size_t n)
{
    WC_RNG *rng;
    int r = 0;

    if (n > UINT32_MAX) {
        return PK_E_TOOBIG;
    }
    rng = pk_key__rng_acquire();
    if (rng == NULL) {
        return PK_E_CRYPTO;
    }
    if (n > 0 && wc_RNG_GenerateBlock(rng, out, (word32)n) != 0) {
        r = PK_E_CRYPTO;
    }
    pk_key__rng_release();
    return r;
}

/* ---- names and small helpers ---- */

const char *pk_key_type_name(enum pk_key_type type)
{
    switch (type) {
    case PK_KEY_P256:
        return "P-256";
    case PK_KEY_ED25519:
        return "Ed25519";
    case PK_KEY_OTHER:
        return "other";
    case PK_KEY_NONE:
        break;
    }
    return "none";
}

struct oid_name {
    const uint8_t *oid;
    size_t len;
    const char *name;
};
#define OID_NAME(oid, name)                                                                        \
    {                                                                                              \
        (oid), sizeof(oid), (name)                                                                 \
    }

static const struct oid_name curve_names[] = {
        OID_NAME(oid_prime256v1, "P-256"),
        OID_NAME(oid_secp384r1, "P-384"),
        OID_NAME(oid_secp521r1, "P-521"),
        OID_NAME(oid_secp256k1, "secp256k1"),
};

static const struct oid_name alg_names[] = {
        OID_NAME(oid_rsa, "RSA"),     OID_NAME(oid_rsa_pss, "RSA-PSS"), OID_NAME(oid_dsa, "DSA"),
        OID_NAME(oid_ed448, "Ed448"), OID_NAME(oid_x25519, "X25519"),   OID_NAME(oid_x448, "X448"),
};

/* The table's name for el, or "<what> <dotted OID>" in buf. */
static const char *lookup_oid(const struct pk_der *el, const struct oid_name *table, size_t n,
                              const char *what, char *buf, size_t buf_len)
{
    char oid[64];

    for (size_t i = 0; i < n; i++) {
        if (pk_der_is_oid(el, table[i].oid, table[i].len)) {
            return table[i].name;
        }
    }
    pk_der_oid_str(el->val, el->len, oid, sizeof(oid));
    snprintf(buf, buf_len, "%s %.50s", what, oid);
    return buf;
}

/* A name for a key algorithm OID (and, for EC keys, the curve OID) in messages. */
static const char *alg_name(const struct pk_der *alg, const struct pk_der *curve, char *buf,
                            size_t buf_len)
{
    if (OID_IS(alg, oid_ec_public_key)) {
        if (curve == NULL || curve->tag != PK_DER_OID) {
            return "EC with explicit curve parameters";
        }
        return lookup_oid(curve, curve_names, PK_ARRAY_LEN(curve_names), "EC curve", buf, buf_len);
    }
    return lookup_oid(alg, alg_names, PK_ARRAY_LEN(alg_names), "algorithm", buf, buf_len);
}

/* Write the canonical SubjectPublicKeyInfo for a raw public key (65-byte uncompressed P-256
 * point, or 32-byte Ed25519 key) into out (at least 128 bytes). */
static size_t spki_encode(enum pk_key_type type, const uint8_t *raw, size_t raw_len, uint8_t *out)
{
    static const uint8_t p256_prefix[] = {
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
            0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    };
    static const uint8_t ed25519_prefix[] = {
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    };
    const uint8_t *prefix = type == PK_KEY_P256 ? p256_prefix : ed25519_prefix;
    size_t prefix_len = type == PK_KEY_P256 ? sizeof(p256_prefix) : sizeof(ed25519_prefix);

    PK_ASSERT(raw_len == (type == PK_KEY_P256 ? P256_POINT : ED25519_LEN));
    memcpy(out, prefix, prefix_len);
    memcpy(out + prefix_len, raw, raw_len);
    return prefix_len + raw_len;
}

/* The raw public key of a private key: uncompressed point or 32 bytes. */
static int key_raw_public(const struct pk_key *key, uint8_t *out, size_t *out_len)
{
    word32 len = (word32)*out_len;
    int r;

    if (key->type == PK_KEY_P256) {
        r = wc_ecc_export_x963((ecc_key *)&key->k.ecc, out, &len);
    } else {
        r = wc_ed25519_export_public((ed25519_key *)&key->k.ed, out, &len);
    }
    if (r != 0) {
        return PK_E_CRYPTO;
    }
    *out_len = len;
    return 0;
}

/* ---- private keys ---- */

static struct pk_key *key_alloc(enum pk_key_type type)
{
    struct pk_key *key = pk_xcalloc(1, sizeof(*key));
    int r;

    key->type = type;
    if (type == PK_KEY_P256) {
        r = wc_ecc_init(&key->k.ecc);
    } else {
        r = wc_ed25519_init(&key->k.ed);
    }
    PK_ASSERT(r == 0); /* both only fail for a NULL argument */
    return key;
}

struct pk_key *pk_key_free(struct pk_key *key)
{
    if (key == NULL) {
        return NULL;
    }
    if (key->type == PK_KEY_P256) {
        wc_ecc_free(&key->k.ecc);
    } else if (key->type == PK_KEY_ED25519) {
        wc_ed25519_free(&key->k.ed);
    }
    return pk_free_secret(key, sizeof(*key));
}

enum pk_key_type pk_key_get_type(const struct pk_key *key)
{
    return key->type;
}

int pk_key_generate(enum pk_key_type type, struct pk_key **out, struct pk_err *err)
{
    struct pk_key *key = NULL;
    WC_RNG *rng;
    int r;

    if (type != PK_KEY_P256 && type != PK_KEY_ED25519) {
        return pk_err_set(err, PK_E_UNSUPPORTED, "cannot generate a key of type %s",
                          pk_key_type_name(type));
    }
    key = key_alloc(type);
    rng = pk_key__rng_acquire();
    if (rng == NULL) {
        r = pk_err_set(err, PK_E_CRYPTO, "wolfCrypt's random generator is unavailable");
        goto out;
    }
    if (type == PK_KEY_P256) {
        r = wc_ecc_make_key_ex(rng, P256_LEN, &key->k.ecc, ECC_SECP256R1);
    } else {
        r = wc_ed25519_make_key(rng, ED25519_KEY_SIZE, &key->k.ed);
    }
    pk_key__rng_release();
    if (r != 0) {
        r = pk_err_set(err, PK_E_CRYPTO, "generating a %s key failed: %s", pk_key_type_name(type),
                       wc_GetErrorString(r));
        goto out;
    }
    *out = key;
    key = NULL;
    r = 0;
out:
    pk_key_free(key);
    return r;
}

/* Set up a P-256 key from its scalar (1..32 bytes, big-endian) and check a stored public point
 * (pub_len 0 when absent) against the derived one. */
static int p256_from_scalar(const uint8_t *d, size_t d_len, const uint8_t *pub, size_t pub_len,
                            struct pk_key **out, struct pk_err *err)
{
    uint8_t scalar[P256_LEN] = {0};
    uint8_t derived[P256_POINT];
    size_t derived_len = sizeof(derived);
    struct pk_key *key = NULL;
    WC_RNG *rng;
    int r;

    if (d_len == 0 || d_len > P256_LEN) {
        r = pk_err_set(err, PK_E_INVALID, "P-256 private key has %zu bytes, not 32", d_len);
        goto out;
    }
    memcpy(scalar + P256_LEN - d_len, d, d_len);
    {
        uint8_t any = 0;
        for (size_t i = 0; i < P256_LEN; i++) {
            any |= scalar[i];
        }
        if (any == 0 || memcmp(scalar, p256_order, P256_LEN) >= 0) {
            r = pk_err_set(err, PK_E_INVALID, "P-256 private key is out of range");
            goto out;
        }
    }
    key = key_alloc(PK_KEY_P256);
    rng = pk_key__rng_acquire();
    if (rng == NULL) {
        r = pk_err_set(err, PK_E_CRYPTO, "wolfCrypt's random generator is unavailable");
        goto out;
    }
    r = wc_ecc_import_private_key_ex(scalar, P256_LEN, NULL, 0, &key->k.ecc, ECC_SECP256R1);
    if (r == 0) {
        r = wc_ecc_make_pub_ex(&key->k.ecc, NULL, rng);
    }
    pk_key__rng_release();
    if (r != 0) {
        r = pk_err_set(err, PK_E_CRYPTO, "importing the P-256 private key failed: %s",
                       wc_GetErrorString(r));
        goto out;
    }
    r = key_raw_public(key, derived, &derived_len);
    if (r != 0) {
        r = pk_err_set(err, r, "exporting the P-256 public key failed");
        goto out;
    }
    if (pub_len != 0 && (pub_len != derived_len || memcmp(pub, derived, pub_len) != 0)) {
        r = pk_err_set(err, PK_E_INVALID,
                       "the public key stored with the P-256 private key does not match it");
        goto out;
    }
    *out = key;
    key = NULL;
    r = 0;
out:
    pk_wipe(scalar, sizeof(scalar));
    pk_key_free(key);
    return r;
}

static int ed25519_from_seed(const uint8_t *seed, size_t seed_len, const uint8_t *pub,
                             size_t pub_len, struct pk_key **out, struct pk_err *err)
{
    uint8_t derived[ED25519_LEN];
    struct pk_key *key = NULL;
    int r;

    if (seed_len != ED25519_LEN) {
        return pk_err_set(err, PK_E_INVALID, "Ed25519 private key has %zu bytes, not 32", seed_len);
    }
    key = key_alloc(PK_KEY_ED25519);
    r = wc_ed25519_import_private_only(seed, ED25519_LEN, &key->k.ed);
    if (r == 0) {
        r = wc_ed25519_make_public(&key->k.ed, derived, sizeof(derived));
    }
    if (r == 0) {
        r = wc_ed25519_import_private_key(seed, ED25519_LEN, derived, sizeof(derived), &key->k.ed);
    }
    if (r != 0) {
        r = pk_err_set(err, PK_E_CRYPTO, "importing the Ed25519 private key failed: %s",
                       wc_GetErrorString(r));
        goto out;
    }
    if (pub_len != 0 && (pub_len != sizeof(derived) || memcmp(pub, derived, pub_len) != 0)) {
        r = pk_err_set(err, PK_E_INVALID,
                       "the public key stored with the Ed25519 private key does not match it");
        goto out;
    }
    *out = key;
    key = NULL;
    r = 0;
out:
    pk_key_free(key);
    return r;
}

/* The contents of a BIT STRING with no unused bits. */
static int bit_string_bytes(const struct pk_der *el, const uint8_t **p, size_t *len)
{
    if (el->len < 1 || el->val[0] != 0) {
        return PK_E_INVALID;
    }
    *p = el->val + 1;
    *len = el->len - 1;
    return 0;
}

/* SEC1 §C.4 ECPrivateKey. p8_curve is the curve named by an enclosing PKCS#8
 * AlgorithmIdentifier, or NULL. */
static int load_sec1(struct pk_slice in, const struct pk_der *p8_curve, struct pk_key **out,
                     struct pk_err *err)
{
    static const uint8_t version1[] = {0x01};
    struct pk_der seq, version, priv, el;
    struct pk_der curve = {0};
    bool have_curve = false;
    const uint8_t *pub = NULL;
    size_t pub_len = 0;
    struct pk_slice body;
    char name[64];

    if (pk_der_expect(&in, PK_DER_SEQUENCE, &seq) != 0 || in.len != 0) {
        return pk_err_set(err, PK_E_INVALID, "EC private key: malformed DER");
    }
    body = pk_der_inner(&seq);
    if (pk_der_expect(&body, PK_DER_INTEGER, &version) != 0 || version.len != 1 ||
        memcmp(version.val, version1, 1) != 0) {
        return pk_err_set(err, PK_E_INVALID, "EC private key: version is not 1");
    }
    if (pk_der_expect(&body, PK_DER_OCTET_STRING, &priv) != 0) {
        return pk_err_set(err, PK_E_INVALID, "EC private key: malformed private key");
    }
    if (pk_der_expect(&body, PK_DER_CTX_CONS(0), &el) == 0) {
        struct pk_slice params = pk_der_inner(&el);
        if (pk_der_read(&params, &curve) != 0 || params.len != 0) {
            return pk_err_set(err, PK_E_INVALID, "EC private key: malformed parameters");
        }
        have_curve = true;
    }
    if (pk_der_expect(&body, PK_DER_CTX_CONS(1), &el) == 0) {
        struct pk_slice wrapped = pk_der_inner(&el);
        struct pk_der bits;
        if (pk_der_expect(&wrapped, PK_DER_BIT_STRING, &bits) != 0 || wrapped.len != 0 ||
            bit_string_bytes(&bits, &pub, &pub_len) != 0) {
            return pk_err_set(err, PK_E_INVALID, "EC private key: malformed public key");
        }
    }
    if (body.len != 0) {
        return pk_err_set(err, PK_E_INVALID, "EC private key: unexpected trailing fields");
    }
    if (have_curve && p8_curve != NULL &&
        (curve.tlv_len != p8_curve->tlv_len ||
         memcmp(curve.tlv, p8_curve->tlv, curve.tlv_len) != 0)) {
        return pk_err_set(err, PK_E_INVALID,
                          "EC private key: the curve differs from the one PKCS#8 names");
    }
    if (!have_curve && p8_curve == NULL) {
        return pk_err_set(err, PK_E_INVALID, "EC private key names no curve");
    }
    if (!have_curve) {
        curve = *p8_curve;
    }
    if (!OID_IS(&curve, oid_prime256v1)) {
        struct pk_der ec_alg = {
                .tag = PK_DER_OID, .val = oid_ec_public_key, .len = sizeof(oid_ec_public_key)};
        return pk_err_set(err, PK_E_UNSUPPORTED,
                          "unsupported key type %s (picket uses P-256 or Ed25519)",
                          alg_name(&ec_alg, &curve, name, sizeof(name)));
    }
    return p256_from_scalar(priv.val, priv.len, pub, pub_len, out, err);
}

/* RFC 5208 PrivateKeyInfo / RFC 5958 OneAsymmetricKey. */
static int load_pkcs8(struct pk_slice in, struct pk_key **out, struct pk_err *err)
{
    struct pk_der seq, version, alg_seq, alg, priv, el;
    struct pk_der params = {0};
    bool have_params = false;
    const uint8_t *pub = NULL;
    size_t pub_len = 0;
    struct pk_slice body, alg_body;
    char name[64];

    if (pk_der_expect(&in, PK_DER_SEQUENCE, &seq) != 0 || in.len != 0) {
        return pk_err_set(err, PK_E_INVALID, "PKCS#8 private key: malformed DER");
    }
    body = pk_der_inner(&seq);
    if (pk_der_expect(&body, PK_DER_INTEGER, &version) != 0 || version.len != 1 ||
        version.val[0] > 1) {
        return pk_err_set(err, PK_E_INVALID, "PKCS#8 private key: version is not 0 or 1");
    }
    if (pk_der_expect(&body, PK_DER_SEQUENCE, &alg_seq) != 0) {
        return pk_err_set(err, PK_E_INVALID, "PKCS#8 private key: malformed algorithm");
    }
    alg_body = pk_der_inner(&alg_seq);
    if (pk_der_expect(&alg_body, PK_DER_OID, &alg) != 0) {
        return pk_err_set(err, PK_E_INVALID, "PKCS#8 private key: malformed algorithm");
    }
    if (alg_body.len != 0) {
        if (pk_der_read(&alg_body, &params) != 0 || alg_body.len != 0) {
            return pk_err_set(err, PK_E_INVALID,
                              "PKCS#8 private key: malformed algorithm parameters");
        }
        have_params = true;
    }
    if (pk_der_expect(&body, PK_DER_OCTET_STRING, &priv) != 0) {
        return pk_err_set(err, PK_E_INVALID, "PKCS#8 private key: malformed private key");
    }
    if (pk_der_expect(&body, PK_DER_CTX_CONS(0), &el) == 0) {
        /* attributes: none concern picket */
    }
    if (pk_der_expect(&body, PK_DER_CTX(1), &el) == 0 &&
        bit_string_bytes(&el, &pub, &pub_len) != 0) {
        return pk_err_set(err, PK_E_INVALID, "PKCS#8 private key: malformed public key");
    }
    if (body.len != 0) {
        return pk_err_set(err, PK_E_INVALID, "PKCS#8 private key: unexpected trailing fields");
    }
    if (OID_IS(&alg, oid_ec_public_key)) {
        if (!have_params || params.tag != PK_DER_OID) {
            return pk_err_set(err, PK_E_UNSUPPORTED,
                              "unsupported key type %s (picket uses P-256 or Ed25519)",
                              alg_name(&alg, NULL, name, sizeof(name)));
        }
        if (pub_len != 0) {
            return pk_err_set(err, PK_E_INVALID,
                              "PKCS#8 private key: an EC key keeps its public key in SEC1");
        }
        return load_sec1(pk_der_inner(&priv), &params, out, err);
    }
    if (OID_IS(&alg, oid_ed25519)) {
        /* RFC 8410 §7: parameters absent, CurvePrivateKey ::= OCTET STRING. */
        struct pk_slice inner = pk_der_inner(&priv);
        struct pk_der seed;
        if (have_params) {
            return pk_err_set(err, PK_E_INVALID,
                              "PKCS#8 Ed25519 key: algorithm parameters must be absent");
        }
        if (pk_der_expect(&inner, PK_DER_OCTET_STRING, &seed) != 0 || inner.len != 0) {
            return pk_err_set(err, PK_E_INVALID, "PKCS#8 Ed25519 key: malformed private key");
        }
        return ed25519_from_seed(seed.val, seed.len, pub, pub_len, out, err);
    }
    return pk_err_set(err, PK_E_UNSUPPORTED,
                      "unsupported key type %s (picket uses P-256 or Ed25519)",
                      alg_name(&alg, have_params ? &params : NULL, name, sizeof(name)));
}

/* Labels that hold private keys picket cannot use, and what to call them. */
static const char *unsupported_key_label(const char *type)
{
    static const struct {
        const char *label;
        const char *what;
    } labels[] = {
            {"RSA PRIVATE KEY", "unsupported key type RSA (picket uses P-256 or Ed25519)"},
            {"DSA PRIVATE KEY", "unsupported key type DSA (picket uses P-256 or Ed25519)"},
            {"ENCRYPTED PRIVATE KEY", "encrypted private keys are not supported"},
            {"OPENSSH PRIVATE KEY", "OpenSSH private keys are not supported; use PKCS#8"},
    };
    size_t len = strlen(type);

    for (size_t i = 0; i < PK_ARRAY_LEN(labels); i++) {
        if (strcmp(type, labels[i].label) == 0) {
            return labels[i].what;
        }
    }
    if (len >= 11 && strcmp(type + len - 11, "PRIVATE KEY") == 0) {
        return "unsupported private key block";
    }
    return NULL;
}

int pk_key_load_pem(const uint8_t *pem, size_t len, const char *what, struct pk_key **out,
                    struct pk_err *err)
{
    struct pk_pem_block block = {0};
    size_t offset = 0;
    int r;

    for (;;) {
        r = pk_pem_next(pem, len, &offset, &block, err);
        if (r == PK_E_NOTFOUND) {
            return pk_err_set(err, PK_E_INVALID,
                              "%s: no private key (PEM \"PRIVATE KEY\" or "
                              "\"EC PRIVATE KEY\" block) found",
                              what);
        }
        if (r != 0) {
            return pk_err_prefix(err, r, "%s", what);
        }
        if (strcmp(block.type, "EC PRIVATE KEY") == 0) {
            r = load_sec1(pk_slice_make(block.der, block.der_len), NULL, out, err);
            break;
        }
        if (strcmp(block.type, "PRIVATE KEY") == 0) {
            r = load_pkcs8(pk_slice_make(block.der, block.der_len), out, err);
            break;
        }
        const char *bad = unsupported_key_label(block.type);
        if (bad != NULL) {
            r = pk_err_set(err, PK_E_UNSUPPORTED, "%s: %s (PEM \"%s\")", what, bad, block.type);
            pk_pem_block_clear(&block);
            return r;
        }
        /* "EC PARAMETERS" from `openssl ecparam -genkey`, certificates, ...: not a key. */
        pk_pem_block_clear(&block);
    }
    pk_pem_block_clear(&block);
    if (r != 0) {
        return pk_err_prefix(err, r, "%s", what);
    }
    return 0;
}

int pk_key_to_der(const struct pk_key *key, struct pk_buf *out)
{
    static const uint8_t version0[] = {0x00};
    static const uint8_t version1[] = {0x01};
    uint8_t priv[P256_LEN];
    uint8_t pub[P256_POINT + 1];
    size_t pub_len = sizeof(pub) - 1;
    word32 priv_len = sizeof(priv);
    struct pk_buf der;
    size_t start;
    int r;

    pk_buf_init_secret(&der, KEY_DER_MAX);
    r = pk_der_put(&der, PK_DER_INTEGER, version0, 1);
    if (r != 0) {
        goto out;
    }
    start = der.len;
    if (key->type == PK_KEY_P256) {
        r = pk_der_put(&der, PK_DER_OID, oid_ec_public_key, sizeof(oid_ec_public_key));
        r = r != 0 ? r : pk_der_put(&der, PK_DER_OID, oid_prime256v1, sizeof(oid_prime256v1));
    } else {
        r = pk_der_put(&der, PK_DER_OID, oid_ed25519, sizeof(oid_ed25519));
    }
    r = r != 0 ? r : pk_der_wrap(&der, start, PK_DER_SEQUENCE);
    if (r != 0) {
        goto out;
    }
    start = der.len;
    if (key->type == PK_KEY_P256) {
        /* ECPrivateKey without parameters (PKCS#8 names the curve), with the public key. */
        if (wc_ecc_export_private_only((ecc_key *)&key->k.ecc, priv, &priv_len) != 0 ||
            priv_len != P256_LEN || key_raw_public(key, pub + 1, &pub_len) != 0) {
            r = PK_E_CRYPTO;
            goto out;
        }
        pub[0] = 0; /* BIT STRING: no unused bits */
        size_t ec_start = der.len;
        r = pk_der_put(&der, PK_DER_INTEGER, version1, 1);
        r = r != 0 ? r : pk_der_put(&der, PK_DER_OCTET_STRING, priv, priv_len);
        size_t pub_start = der.len;
        r = r != 0 ? r : pk_der_put(&der, PK_DER_BIT_STRING, pub, pub_len + 1);
        r = r != 0 ? r : pk_der_wrap(&der, pub_start, PK_DER_CTX_CONS(1));
        r = r != 0 ? r : pk_der_wrap(&der, ec_start, PK_DER_SEQUENCE);
    } else {
        if (wc_ed25519_export_private_only((ed25519_key *)&key->k.ed, priv, &priv_len) != 0 ||
            priv_len != ED25519_LEN) {
            r = PK_E_CRYPTO;
            goto out;
        }
        r = pk_der_put(&der, PK_DER_OCTET_STRING, priv, priv_len);
    }
    r = r != 0 ? r : pk_der_wrap(&der, start, PK_DER_OCTET_STRING);
    r = r != 0 ? r : pk_der_wrap(&der, 0, PK_DER_SEQUENCE);
    r = r != 0 ? r : pk_buf_append(out, der.data, der.len);
out:
    pk_wipe(priv, sizeof(priv));
    pk_buf_free(&der);
    return r;
}

int pk_key_to_pem(const struct pk_key *key, struct pk_buf *out)
{
    struct pk_buf der;
    int r;

    pk_buf_init_secret(&der, KEY_DER_MAX);
    r = pk_key_to_der(key, &der);
    if (r == 0) {
        r = pk_pem_encode("PRIVATE KEY", der.data, der.len, out);
    }
    pk_buf_free(&der);
    return r;
}

int pk_key_public_spki(const struct pk_key *key, struct pk_buf *out)
{
    uint8_t raw[P256_POINT];
    uint8_t spki[128];
    size_t raw_len = sizeof(raw);
    int r = key_raw_public(key, raw, &raw_len);

    if (r != 0) {
        return r;
    }
    return pk_buf_append(out, spki, spki_encode(key->type, raw, raw_len, spki));
}

int pk_key_sign(const struct pk_key *key, const uint8_t *msg, size_t msg_len, struct pk_buf *out)
{
    uint8_t sig[ECC_MAX_SIG_SIZE > ED25519_SIG_SIZE ? ECC_MAX_SIG_SIZE : ED25519_SIG_SIZE];
    word32 sig_len = sizeof(sig);
    uint8_t hash[WC_SHA256_DIGEST_SIZE];
    WC_RNG *rng;
    int r;

    if (msg_len > UINT32_MAX) {
        return PK_E_TOOBIG;
    }
    rng = pk_key__rng_acquire();
    if (rng == NULL) {
        return PK_E_CRYPTO;
    }
    if (key->type == PK_KEY_P256) {
        r = wc_Sha256Hash(msg, (word32)msg_len, hash);
        if (r == 0) {
            r = wc_ecc_sign_hash(hash, sizeof(hash), sig, &sig_len, rng, (ecc_key *)&key->k.ecc);
        }
    } else {
        r = wc_ed25519_sign_msg(msg, (word32)msg_len, sig, &sig_len, (ed25519_key *)&key->k.ed);
    }
    pk_key__rng_release();
    if (r != 0) {
        return PK_E_CRYPTO;
    }
    return pk_buf_append(out, sig, sig_len);
}

/* ---- public keys ---- */

static struct pk_pubkey *pubkey_alloc(enum pk_key_type type)
{
    struct pk_pubkey *pub = pk_xcalloc(1, sizeof(*pub));
    int r;

    pub->type = type;
    if (type == PK_KEY_P256) {
        r = wc_ecc_init(&pub->k.ecc);
    } else {
        r = wc_ed25519_init(&pub->k.ed);
    }
    PK_ASSERT(r == 0);
    return pub;
}

struct pk_pubkey *pk_pubkey_free(struct pk_pubkey *pub)
{
    if (pub == NULL) {
        return NULL;
    }
    if (pub->type == PK_KEY_P256) {
        wc_ecc_free(&pub->k.ecc);
    } else if (pub->type == PK_KEY_ED25519) {
        wc_ed25519_free(&pub->k.ed);
    }
    free(pub);
    return NULL;
}

enum pk_key_type pk_pubkey_get_type(const struct pk_pubkey *pub)
{
    return pub->type;
}

struct pk_slice pk_pubkey_spki(const struct pk_pubkey *pub)
{
    return pk_slice_make(pub->spki, pub->spki_len);
}

bool pk_pubkey_equal(const struct pk_pubkey *a, const struct pk_pubkey *b)
{
    return a->spki_len == b->spki_len && memcmp(a->spki, b->spki, a->spki_len) == 0;
}

int pk_pubkey_from_raw(enum pk_key_type type, const uint8_t *raw, size_t raw_len,
                       struct pk_pubkey **out, struct pk_err *err)
{
    struct pk_pubkey *pub = pubkey_alloc(type);
    int r;

    if (type == PK_KEY_P256) {
        if (raw_len == 1 + P256_LEN && (raw[0] == 0x02 || raw[0] == 0x03)) {
            r = pk_err_set(err, PK_E_UNSUPPORTED, "compressed P-256 points are not supported");
            goto out;
        }
        if (raw_len != P256_POINT || raw[0] != 0x04) {
            r = pk_err_set(err, PK_E_INVALID, "P-256 public key is not a 65-byte point");
            goto out;
        }
        /* Coordinates must be field elements (< p): checked on the bytes, since older
         * wolfSSL releases' on-curve test does not. */
        if (memcmp(raw + 1, p256_prime, P256_LEN) >= 0 ||
            memcmp(raw + 1 + P256_LEN, p256_prime, P256_LEN) >= 0) {
            r = pk_err_set(err, PK_E_INVALID, "P-256 public key coordinate out of range");
            goto out;
        }
        r = wc_ecc_import_x963_ex(raw, (word32)raw_len, &pub->k.ecc, ECC_SECP256R1);
        /* On the curve is all a P-256 point needs (cofactor 1, so no order check), and unlike
         * wc_ecc_check_key it costs no scalar multiplication: with FP_ECC (Debian's build),
         * the full check built a fixed-point table for every fresh CSR key, for a 10x
         * slower Sentry. */
#ifdef USE_ECC_B_PARAM
        if (r == 0) {
            r = wc_ecc_point_is_on_curve(&pub->k.ecc.pubkey, wc_ecc_get_curve_idx(ECC_SECP256R1));
        }
#else
        if (r == 0) {
            r = wc_ecc_check_key(&pub->k.ecc);
        }
#endif
    } else {
        if (raw_len != ED25519_LEN) {
            r = pk_err_set(err, PK_E_INVALID, "Ed25519 public key has %zu bytes, not 32", raw_len);
            goto out;
        }
        r = wc_ed25519_import_public(raw, (word32)raw_len, &pub->k.ed);
    }
    if (r != 0) {
        r = pk_err_set(err, PK_E_INVALID, "%s public key is not valid: %s", pk_key_type_name(type),
                       wc_GetErrorString(r));
        goto out;
    }
    pub->spki_len = spki_encode(type, raw, raw_len, pub->spki);
    *out = pub;
    pub = NULL;
    r = 0;
out:
    pk_pubkey_free(pub);
    return r;
}

int pk_pubkey_from_spki(const uint8_t *spki, size_t len, struct pk_pubkey **out, struct pk_err *err)
{
    struct pk_slice in = pk_slice_make(spki, len);
    struct pk_der seq, alg_seq, alg, bits;
    struct pk_der params = {0};
    bool have_params = false;
    struct pk_slice body, alg_body;
    const uint8_t *raw;
    size_t raw_len;
    char name[64];

    if (pk_der_expect(&in, PK_DER_SEQUENCE, &seq) != 0 || in.len != 0) {
        return pk_err_set(err, PK_E_INVALID, "SubjectPublicKeyInfo: malformed DER");
    }
    body = pk_der_inner(&seq);
    if (pk_der_expect(&body, PK_DER_SEQUENCE, &alg_seq) != 0 ||
        pk_der_expect(&body, PK_DER_BIT_STRING, &bits) != 0 || body.len != 0) {
        return pk_err_set(err, PK_E_INVALID, "SubjectPublicKeyInfo: malformed DER");
    }
    alg_body = pk_der_inner(&alg_seq);
    if (pk_der_expect(&alg_body, PK_DER_OID, &alg) != 0) {
        return pk_err_set(err, PK_E_INVALID, "SubjectPublicKeyInfo: malformed algorithm");
    }
    if (alg_body.len != 0) {
        if (pk_der_read(&alg_body, &params) != 0 || alg_body.len != 0) {
            return pk_err_set(err, PK_E_INVALID,
                              "SubjectPublicKeyInfo: malformed algorithm parameters");
        }
        have_params = true;
    }
    if (bit_string_bytes(&bits, &raw, &raw_len) != 0) {
        return pk_err_set(err, PK_E_INVALID, "SubjectPublicKeyInfo: malformed key bits");
    }
    if (OID_IS(&alg, oid_ec_public_key) && have_params && OID_IS(&params, oid_prime256v1)) {
        return pk_pubkey_from_raw(PK_KEY_P256, raw, raw_len, out, err);
    }
    if (OID_IS(&alg, oid_ed25519)) {
        if (have_params) {
            return pk_err_set(err, PK_E_INVALID,
                              "SubjectPublicKeyInfo: Ed25519 parameters must be absent");
        }
        return pk_pubkey_from_raw(PK_KEY_ED25519, raw, raw_len, out, err);
    }
    return pk_err_set(err, PK_E_UNSUPPORTED,
                      "unsupported public key type %s (picket uses P-256 or Ed25519)",
                      alg_name(&alg, have_params ? &params : NULL, name, sizeof(name)));
}

int pk_key_public(const struct pk_key *key, struct pk_pubkey **out)
{
    uint8_t raw[P256_POINT];
    size_t raw_len = sizeof(raw);
    int r = key_raw_public(key, raw, &raw_len);

    if (r != 0) {
        return r;
    }
    r = pk_pubkey_from_raw(key->type, raw, raw_len, out, NULL);
    return r == 0 ? 0 : PK_E_CRYPTO;
}

int pk_pubkey_verify(const struct pk_pubkey *pub, enum pk_sig_alg alg, const uint8_t *msg,
                     size_t msg_len, const uint8_t *sig, size_t sig_len)
{
    uint8_t hash[WC_SHA512_DIGEST_SIZE];
    word32 hash_len;
    int res = 0;
    int r;

    if (msg_len > UINT32_MAX || sig_len > UINT32_MAX) {
        return PK_E_CRYPTO;
    }
    switch (alg) {
    case PK_SIG_ECDSA_SHA256:
    case PK_SIG_ECDSA_SHA384:
    case PK_SIG_ECDSA_SHA512:
        if (pub->type != PK_KEY_P256) {
            return PK_E_UNSUPPORTED;
        }
        if (alg == PK_SIG_ECDSA_SHA256) {
            r = wc_Sha256Hash(msg, (word32)msg_len, hash);
            hash_len = WC_SHA256_DIGEST_SIZE;
        } else if (alg == PK_SIG_ECDSA_SHA384) {
#ifdef WOLFSSL_SHA384
            r = wc_Sha384Hash(msg, (word32)msg_len, hash);
            hash_len = WC_SHA384_DIGEST_SIZE;
#else
            return PK_E_UNSUPPORTED;
#endif
        } else {
            r = wc_Sha512Hash(msg, (word32)msg_len, hash);
            hash_len = WC_SHA512_DIGEST_SIZE;
        }
        if (r == 0) {
            r = wc_ecc_verify_hash(sig, (word32)sig_len, hash, hash_len, &res,
                                   (ecc_key *)&pub->k.ecc);
        }
        break;
    case PK_SIG_ED25519:
        if (pub->type != PK_KEY_ED25519) {
            return PK_E_UNSUPPORTED;
        }
        r = wc_ed25519_verify_msg(sig, (word32)sig_len, msg, (word32)msg_len, &res,
                                  (ed25519_key *)&pub->k.ed);
        break;
    case PK_SIG_NONE:
    default:
        return PK_E_UNSUPPORTED;
    }
    return r == 0 && res == 1 ? 0 : PK_E_CRYPTO;
}

void *pk_key__wc(const struct pk_key *key, int *wc_type)
{
    *wc_type = key->type == PK_KEY_P256 ? ECC_TYPE : ED25519_TYPE;
    return key->type == PK_KEY_P256 ? (void *)&key->k.ecc : (void *)&key->k.ed;
}

void *pk_pubkey__wc(const struct pk_pubkey *pub, int *wc_type)
{
    *wc_type = pub->type == PK_KEY_P256 ? ECC_TYPE : ED25519_TYPE;
    return pub->type == PK_KEY_P256 ? (void *)&pub->k.ecc : (void *)&pub->k.ed;
}
