/* SPDX-License-Identifier: Apache-2.0 */
/* picket: Sentry's JWKS token validator.
 *
 * Implementation notes: JSON is parsed with jansson (duplicate members rejected, NUL in strings
 * rejected), keys are imported into wolfCrypt's native types (RsaKey, ecc_key, ed25519_key) once
 * at load time, and a token is checked in a fixed order: size and shape, header, key selection,
 * signature, and only then the claims, so nothing from an unverified payload is ever trusted or
 * echoed. "segment" means one of the three base64url parts of a compact JWS. */
#include "sentry/jwks.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "common/base64.h"
#include "common/buf.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/mem.h"

/* Room for a quoted field of outside input in a message: 64 bytes shown. */
#define QUOTE_LEN 68

#define RSA_MIN_BITS  2048
#define RSA_MAX_BYTES 512 /* 4096 bits */
#define P256_BYTES    32
#define ED25519_BYTES 32
#define SIG64_BYTES   64
#define KID_MAX       256

enum jwk_type {
    JWK_RSA = 1,
    JWK_EC,
    JWK_OKP,
};

struct jwk {
    enum jwk_type type;
    char *kid;    /* NULL when the key has none */
    char alg[16]; /* "" when the key states none */
    union {
        RsaKey rsa;
        ecc_key ec;
        ed25519_key ed;
    } k;
};

struct pk_jwks {
    size_t count;
    struct jwk *keys[PK_JWKS_MAX_KEYS];
};

/* DigestInfo prefix for SHA-256 in an RSASSA-PKCS1-v1_5 signature (RFC 8017 §9.2, note 1). */
static const uint8_t sha256_digest_info[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                             0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                             0x01, 0x05, 0x00, 0x04, 0x20};

/* ---- key set ------------------------------------------------------------------------------ */

static void jwk_free(struct jwk *key)
{
    if (key == NULL) {
        return;
    }
    switch (key->type) {
    case JWK_RSA:
        wc_FreeRsaKey(&key->k.rsa);
        break;
    case JWK_EC:
        wc_ecc_free(&key->k.ec);
        break;
    case JWK_OKP:
        wc_ed25519_free(&key->k.ed);
        break;
    }
    free(key->kid);
    free(key);
}

/* A base64url member of a key into out. what names the key in messages. */
static int key_b64(const json_t *obj, const char *member, const char *what, uint8_t *out,
                   size_t cap, size_t *len, struct pk_err *err)
{
    const json_t *v = json_object_get(obj, member);
    int rc;

    if (!json_is_string(v)) {
        return pk_err_set(err, PK_E_INVALID, "%s: member \"%s\" is missing or not a string", what,
                          member);
    }
    rc = pk_base64_decode(json_string_value(v), json_string_length(v), true, out, cap, len);
    if (rc == PK_E_TOOBIG) {
        return pk_err_set(err, PK_E_INVALID, "%s: member \"%s\" is too long", what, member);
    }
    if (rc != 0) {
        return pk_err_set(err, PK_E_INVALID, "%s: member \"%s\" is not base64url", what, member);
    }
    return 0;
}

static int import_rsa(const json_t *obj, const char *what, struct jwk *key, struct pk_err *err)
{
    uint8_t n[RSA_MAX_BYTES + 1];
    uint8_t e[8];
    size_t n_len = 0;
    size_t e_len = 0;
    const uint8_t *np = n;
    size_t bits = 0;
    int rc;

    rc = key_b64(obj, "n", what, n, sizeof(n), &n_len, err);
    if (rc == 0) {
        rc = key_b64(obj, "e", what, e, sizeof(e), &e_len, err);
    }
    if (rc != 0) {
        return rc;
    }
    while (n_len > 0 && *np == 0) {
        np++;
        n_len--;
    }
    if (n_len > 0) {
        bits = n_len * 8;
        for (unsigned top = np[0]; (top & 0x80) == 0; top <<= 1) {
            bits--;
        }
    }
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BYTES * 8) {
        return pk_err_set(err, PK_E_INVALID, "%s: RSA modulus must be 2048 to 4096 bits, found %zu",
                          what, bits);
    }
    while (e_len > 0 && e[0] == 0) {
        memmove(e, e + 1, --e_len);
    }
    if (e_len == 0 || (e[e_len - 1] & 1) == 0 || (e_len == 1 && e[0] < 3)) {
        return pk_err_set(err, PK_E_INVALID, "%s: RSA exponent is not an odd number >= 3", what);
    }
    if (wc_InitRsaKey(&key->k.rsa, NULL) != 0) {
        return pk_err_set(err, PK_E_CRYPTO, "%s: cannot initialise an RSA key", what);
    }
    key->type = JWK_RSA;
    if (wc_RsaPublicKeyDecodeRaw(np, (word32)n_len, e, (word32)e_len, &key->k.rsa) != 0) {
        return pk_err_set(err, PK_E_INVALID, "%s: RSA key not accepted by wolfCrypt", what);
    }
    return 0;
}

static int import_ec(const json_t *obj, const char *what, struct jwk *key, struct pk_err *err)
{
    uint8_t x[P256_BYTES + 1];
    uint8_t y[P256_BYTES + 1];
    size_t x_len = 0;
    size_t y_len = 0;
    int rc;

    rc = key_b64(obj, "x", what, x, sizeof(x), &x_len, err);
    if (rc == 0) {
        rc = key_b64(obj, "y", what, y, sizeof(y), &y_len, err);
    }
    if (rc != 0) {
        return rc;
    }
    /* RFC 7518 §6.2.1.2: each coordinate is exactly the field size. */
    if (x_len != P256_BYTES || y_len != P256_BYTES) {
        return pk_err_set(err, PK_E_INVALID, "%s: P-256 coordinates must be 32 bytes each", what);
    }
    if (wc_ecc_init(&key->k.ec) != 0) {
        return pk_err_set(err, PK_E_CRYPTO, "%s: cannot initialise an EC key", what);
    }
    key->type = JWK_EC;
    if (wc_ecc_import_unsigned(&key->k.ec, x, y, NULL, ECC_SECP256R1) != 0 ||
        wc_ecc_check_key(&key->k.ec) != 0) {
        return pk_err_set(err, PK_E_INVALID, "%s: not a point on P-256", what);
    }
    return 0;
}

static int import_okp(const json_t *obj, const char *what, struct jwk *key, struct pk_err *err)
{
    uint8_t x[ED25519_BYTES + 1];
    size_t x_len = 0;
    int rc;

    rc = key_b64(obj, "x", what, x, sizeof(x), &x_len, err);
    if (rc != 0) {
        return rc;
    }
    if (x_len != ED25519_BYTES) {
        return pk_err_set(err, PK_E_INVALID, "%s: Ed25519 public key must be 32 bytes", what);
    }
    if (wc_ed25519_init(&key->k.ed) != 0) {
        return pk_err_set(err, PK_E_CRYPTO, "%s: cannot initialise an Ed25519 key", what);
    }
    key->type = JWK_OKP;
    if (wc_ed25519_import_public(x, (word32)x_len, &key->k.ed) != 0) {
        return pk_err_set(err, PK_E_INVALID, "%s: Ed25519 key not accepted by wolfCrypt", what);
    }
    return 0;
}

static const char *optional_string(const json_t *obj, const char *member, bool *bad)
{
    const json_t *v = json_object_get(obj, member);
    if (v == NULL) {
        return NULL;
    }
    if (!json_is_string(v)) {
        *bad = true;
        return NULL;
    }
    return json_string_value(v);
}

/* Parse key number index. *out is NULL (and 0 returned) for a key that is skipped. */
static int parse_key(const json_t *obj, size_t index, struct jwk **out, struct pk_err *err)
{
    static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};
    struct jwk *key = NULL;
    const char *kty;
    const char *kid;
    const char *alg;
    const char *use;
    const char *crv;
    const char *want_alg;
    bool bad = false;
    char what[128];
    char q[QUOTE_LEN];
    int rc = 0;

    *out = NULL;
    if (!json_is_object(obj)) {
        return pk_err_set(err, PK_E_INVALID, "key %zu is not a JSON object", index);
    }
    kty = optional_string(obj, "kty", &bad);
    kid = optional_string(obj, "kid", &bad);
    alg = optional_string(obj, "alg", &bad);
    use = optional_string(obj, "use", &bad);
    crv = optional_string(obj, "crv", &bad);
    if (bad) {
        return pk_err_set(err, PK_E_INVALID,
                          "key %zu: kty, kid, alg, use and crv must be strings when present",
                          index);
    }
    if (kid != NULL) {
        snprintf(what, sizeof(what), "key %zu (kid \"%s\")", index,
                 pk_quote(q, sizeof(q), kid, strlen(kid)));
    } else {
        snprintf(what, sizeof(what), "key %zu", index);
    }
    if (kty == NULL) {
        return pk_err_set(err, PK_E_INVALID, "%s: no \"kty\"", what);
    }
    if (kid != NULL && strlen(kid) > KID_MAX) {
        return pk_err_set(err, PK_E_INVALID, "%s: kid longer than %d bytes", what, KID_MAX);
    }
    /* A public key set that carries private halves is a leak waiting to be published. */
    for (size_t i = 0; i < PK_ARRAY_LEN(private_members); i++) {
        if (json_object_get(obj, private_members[i]) != NULL) {
            return pk_err_set(err, PK_E_INVALID,
                              "%s: has private member \"%s\"; a JWKS must hold public keys only",
                              what, private_members[i]);
        }
    }
    if (strcmp(kty, "RSA") == 0) {
        want_alg = "RS256";
    } else if (strcmp(kty, "EC") == 0 && crv != NULL && strcmp(crv, "P-256") == 0) {
        want_alg = "ES256";
    } else if (strcmp(kty, "OKP") == 0 && crv != NULL && strcmp(crv, "Ed25519") == 0) {
        want_alg = "EdDSA";
    } else {
        want_alg = NULL;
    }
    if (want_alg == NULL || (use != NULL && strcmp(use, "sig") != 0) ||
        (alg != NULL && strcmp(alg, want_alg) != 0)) {
        char q_crv[QUOTE_LEN];
        char q_alg[QUOTE_LEN];
        char q_use[QUOTE_LEN];
        /* Every field is quoted: a JWKS is outside input and must not forge log lines. */
        PK_LOG_WARN("jwks key skipped key=%zu kty=\"%s\" crv=\"%s\" alg=\"%s\" use=\"%s\" "
                    "reason=\"only RS256, "
                    "ES256 (P-256) and EdDSA (Ed25519) signing keys are used\"",
                    index, pk_quote(q, sizeof(q), kty, strlen(kty)),
                    crv ? pk_quote(q_crv, sizeof(q_crv), crv, strlen(crv)) : "-",
                    alg ? pk_quote(q_alg, sizeof(q_alg), alg, strlen(alg)) : "-",
                    use ? pk_quote(q_use, sizeof(q_use), use, strlen(use)) : "-");
        return 0;
    }
    key = pk_xcalloc(1, sizeof(*key));
    if (alg != NULL) {
        snprintf(key->alg, sizeof(key->alg), "%s", alg);
    }
    if (kid != NULL) {
        key->kid = pk_xstrdup(kid);
    }
    if (strcmp(want_alg, "RS256") == 0) {
        rc = import_rsa(obj, what, key, err);
    } else if (strcmp(want_alg, "ES256") == 0) {
        rc = import_ec(obj, what, key, err);
    } else {
        rc = import_okp(obj, what, key, err);
    }
    if (rc != 0) {
        goto out;
    }
    *out = key;
    key = NULL;
out:
    jwk_free(key);
    return rc;
}

int pk_jwks_parse(const uint8_t *json, size_t len, struct pk_jwks **out, struct pk_err *err)
{
    struct pk_jwks *set = NULL;
    json_error_t jerr;
    json_t *root = NULL;
    const json_t *keys;
    size_t n;
    int rc;

    if (len > PK_JWKS_MAX_BYTES) {
        return pk_err_set(err, PK_E_TOOBIG, "JWKS is %zu bytes, more than the %u allowed", len,
                          (unsigned)PK_JWKS_MAX_BYTES);
    }
    root = json_loadb((const char *)json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return pk_err_set(err, PK_E_INVALID, "JWKS is not valid JSON: %s at line %d column %d",
                          jerr.text, jerr.line, jerr.column);
    }
    keys = json_object_get(root, "keys");
    if (!json_is_object(root) || !json_is_array(keys)) {
        rc = pk_err_set(err, PK_E_INVALID, "JWKS has no \"keys\" array");
        goto out;
    }
    n = json_array_size(keys);
    if (n > PK_JWKS_MAX_KEYS) {
        rc = pk_err_set(err, PK_E_TOOBIG, "JWKS has %zu keys, more than the %d allowed", n,
                        PK_JWKS_MAX_KEYS);
        goto out;
    }
    set = pk_xcalloc(1, sizeof(*set));
    for (size_t i = 0; i < n; i++) {
        struct jwk *key = NULL;
        rc = parse_key(json_array_get(keys, i), i, &key, err);
        if (rc != 0) {
            goto out;
        }
        if (key != NULL) {
            set->keys[set->count++] = key;
        }
    }
    if (set->count == 0) {
        rc = pk_err_set(err, PK_E_INVALID,
                        "JWKS has no usable key (RSA for RS256, EC P-256 for ES256, OKP Ed25519 "
                        "for EdDSA)");
        goto out;
    }
    *out = set;
    set = NULL;
    rc = 0;
out:
    pk_jwks_free(set);
    json_decref(root);
    return rc;
}

/* The whole source is base64 text (of either alphabet, with optional padding and line breaks). */
static bool looks_like_base64(const char *s)
{
    size_t chars = 0;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (pk_base64_value(c, PK_BASE64_EITHER) >= 0) {
            chars++;
        } else if (c != '=' && !isspace(c)) {
            return false;
        }
    }
    return chars > 0;
}

int pk_jwks_load(const char *source, struct pk_jwks **out, struct pk_err *err)
{
    const char *p = source;
    struct pk_buf buf;
    size_t len = strlen(source);
    int rc;

    while (isspace((unsigned char)*p)) {
        p++;
    }
    if (*p == '{') {
        rc = pk_jwks_parse((const uint8_t *)p, strlen(p), out, err);
        if (rc != 0) {
            pk_err_prefix(err, rc, "inline JWKS");
        }
        return rc;
    }
    if (strncmp(p, "http://", 7) == 0 || strncmp(p, "https://", 8) == 0) {
        return pk_err_set(err, PK_E_UNSUPPORTED,
                          "JWKS source is a URL; picket sentry does not fetch JWKS over the "
                          "network: give a file path, inline JSON or base64-encoded JSON");
    }
    pk_buf_init(&buf, PK_JWKS_MAX_BYTES + 1);
    if (len <= (size_t)PK_JWKS_MAX_BYTES * 4 / 3 + 4096 && looks_like_base64(p)) {
        uint8_t *dst;
        size_t n = 0;
        if (pk_buf_reserve(&buf, pk_base64_max_decoded(len), &dst) == 0 &&
            pk_base64_decode(p, strlen(p), false, dst, pk_base64_max_decoded(len), &n) == 0) {
            const uint8_t *q = dst;
            while (q < dst + n && isspace(*q)) {
                q++;
            }
            if (q < dst + n && *q == '{') {
                pk_buf_commit(&buf, n);
                rc = pk_jwks_parse(buf.data, buf.len, out, err);
                if (rc != 0) {
                    pk_err_prefix(err, rc, "base64 JWKS");
                }
                goto out;
            }
        }
    }
    /* Not JSON, not base64 of JSON: a file path. */
    pk_buf_reset(&buf);
    rc = pk_fs_read_file(source, PK_JWKS_MAX_BYTES, &buf, err);
    if (rc == 0) {
        rc = pk_jwks_parse(buf.data, buf.len, out, err);
        if (rc != 0) {
            pk_err_prefix(err, rc, "%s", source);
        }
    }
out:
    pk_buf_free(&buf);
    return rc;
}

size_t pk_jwks_key_count(const struct pk_jwks *jwks)
{
    return jwks->count;
}

struct pk_jwks *pk_jwks_free(struct pk_jwks *jwks)
{
    if (jwks == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < jwks->count; i++) {
        jwk_free(jwks->keys[i]);
    }
    free(jwks);
    return NULL;
}

/* ---- token verification ------------------------------------------------------------------- */

static int deny(struct pk_err *err, const char *fmt, ...) PK_PRINTF(2, 3);

static int deny(struct pk_err *err, const char *fmt, ...)
{
    char msg[sizeof(err->msg) - 16];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return pk_err_set(err, PK_E_DENIED, "invalid token: %s", msg);
}

/* Decode one base64url segment as a JSON object. */
static int segment_json(const char *seg, size_t len, const char *what, json_t **out,
                        struct pk_err *err)
{
    uint8_t *raw = pk_xmalloc(pk_base64_max_decoded(len));
    size_t n = 0;
    json_error_t jerr;
    json_t *obj = NULL;
    int rc;

    if (pk_base64_decode(seg, len, true, raw, pk_base64_max_decoded(len), &n) != 0) {
        rc = deny(err, "%s is not base64url", what);
        goto out;
    }
    obj = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, &jerr);
    if (obj == NULL || !json_is_object(obj)) {
        rc = deny(err, "%s is not a JSON object", what);
        goto out;
    }
    *out = obj;
    obj = NULL;
    rc = 0;
out:
    json_decref(obj);
    pk_free_secret(raw, pk_base64_max_decoded(len));
    return rc;
}

static bool verify_rs256(struct jwk *key, const uint8_t *hash, const uint8_t *sig, size_t sig_len)
{
    uint8_t decoded[RSA_MAX_BYTES];
    uint8_t expect[sizeof(sha256_digest_info) + WC_SHA256_DIGEST_SIZE];
    int n;
    int size = wc_RsaEncryptSize(&key->k.rsa);
    uint8_t diff = 0;

    if (size <= 0 || (size_t)size != sig_len) {
        return false;
    }
    n = wc_RsaSSL_Verify(sig, (word32)sig_len, decoded, sizeof(decoded), &key->k.rsa);
    if (n != (int)sizeof(expect)) {
        return false;
    }
    memcpy(expect, sha256_digest_info, sizeof(sha256_digest_info));
    memcpy(expect + sizeof(sha256_digest_info), hash, WC_SHA256_DIGEST_SIZE);
    for (size_t i = 0; i < sizeof(expect); i++) {
        diff |= (uint8_t)(decoded[i] ^ expect[i]);
    }
    return diff == 0;
}

static bool verify_es256(struct jwk *key, const uint8_t *hash, const uint8_t *sig, size_t sig_len)
{
    /* JWS carries r||s (RFC 7518 §3.4); wolfCrypt verifies a DER ECDSA-Sig-Value. */
    uint8_t der[2 * P256_BYTES + 16];
    word32 der_len = sizeof(der);
    int ok = 0;

    if (sig_len != SIG64_BYTES) {
        return false;
    }
    if (wc_ecc_rs_raw_to_sig(sig, P256_BYTES, sig + P256_BYTES, P256_BYTES, der, &der_len) != 0) {
        return false;
    }
    if (wc_ecc_verify_hash(der, der_len, hash, WC_SHA256_DIGEST_SIZE, &ok, &key->k.ec) != 0) {
        return false;
    }
    return ok == 1;
}

static bool verify_eddsa(struct jwk *key, const uint8_t *msg, size_t msg_len, const uint8_t *sig,
                         size_t sig_len)
{
    int ok = 0;

    if (sig_len != SIG64_BYTES) {
        return false;
    }
    if (wc_ed25519_verify_msg(sig, (word32)sig_len, msg, (word32)msg_len, &ok, &key->k.ed) != 0) {
        return false;
    }
    return ok == 1;
}

/* A NumericDate claim (RFC 7519 §2): absent, or a finite number of seconds. */
static int numeric_date(const json_t *claims, const char *name, bool *present, double *out,
                        struct pk_err *err)
{
    const json_t *v = json_object_get(claims, name);

    *present = v != NULL;
    if (v == NULL) {
        return 0;
    }
    if (!json_is_number(v) || !isfinite(json_number_value(v))) {
        return deny(err, "claim \"%s\" is not a number", name);
    }
    *out = json_number_value(v);
    return 0;
}

static int check_claims(const json_t *claims, const char *audience, const char *expected_sub,
                        time_t now, struct pk_err *err)
{
    const double t = (double)now;
    const double leeway = PK_JWT_LEEWAY_SECONDS;
    const json_t *aud = json_object_get(claims, "aud");
    const json_t *sub = json_object_get(claims, "sub");
    bool present;
    bool aud_ok = false;
    double v = 0;
    char q[QUOTE_LEN];
    int rc;

    rc = numeric_date(claims, "exp", &present, &v, err);
    if (rc != 0) {
        return rc;
    }
    if (!present) {
        return deny(err, "no \"exp\" claim");
    }
    if (t > v + leeway) {
        return deny(err, "expired %.0f seconds ago", t - v);
    }
    rc = numeric_date(claims, "nbf", &present, &v, err);
    if (rc != 0) {
        return rc;
    }
    if (present && t + leeway < v) {
        return deny(err, "not valid for another %.0f seconds (nbf)", v - t);
    }
    rc = numeric_date(claims, "iat", &present, &v, err);
    if (rc != 0) {
        return rc;
    }
    if (present && t + leeway < v) {
        return deny(err, "issued %.0f seconds in the future (iat)", v - t);
    }

    if (json_is_string(aud)) {
        aud_ok = strcmp(json_string_value(aud), audience) == 0 &&
                 json_string_length(aud) == strlen(audience);
    } else if (json_is_array(aud)) {
        for (size_t i = 0; i < json_array_size(aud); i++) {
            const json_t *a = json_array_get(aud, i);
            if (!json_is_string(a)) {
                return deny(err, "claim \"aud\" has a member that is not a string");
            }
            if (json_string_length(a) == strlen(audience) &&
                strcmp(json_string_value(a), audience) == 0) {
                aud_ok = true;
            }
        }
    } else if (aud == NULL) {
        return deny(err, "no \"aud\" claim");
    } else {
        return deny(err, "claim \"aud\" is neither a string nor a list of strings");
    }
    if (!aud_ok) {
        return deny(err, "audience does not include \"%s\"",
                    pk_quote(q, sizeof(q), audience, strlen(audience)));
    }

    if (!json_is_string(sub)) {
        return deny(err, "no \"sub\" claim, or not a string");
    }
    if (json_string_length(sub) != strlen(expected_sub) ||
        strcmp(json_string_value(sub), expected_sub) != 0) {
        char q2[QUOTE_LEN];
        return deny(err, "subject \"%s\" is not the requested identity \"%s\"",
                    pk_quote(q, sizeof(q), json_string_value(sub), json_string_length(sub)),
                    pk_quote(q2, sizeof(q2), expected_sub, strlen(expected_sub)));
    }
    return 0;
}

int pk_jwks_verify(const struct pk_jwks *jwks, const char *token, size_t len, const char *audience,
                   const char *expected_sub, time_t now, struct pk_err *err)
{
    const char *dot1;
    const char *dot2;
    json_t *header = NULL;
    json_t *claims = NULL;
    const json_t *alg_v;
    const json_t *kid_v;
    const char *alg;
    const char *kid = NULL;
    size_t kid_len = 0;
    enum jwk_type type;
    uint8_t hash[WC_SHA256_DIGEST_SIZE];
    uint8_t sig[RSA_MAX_BYTES];
    size_t sig_len = 0;
    size_t signed_len;
    size_t tried = 0;
    bool verified = false;
    char q[QUOTE_LEN];
    int rc;

    if (len == 0) {
        return deny(err, "empty");
    }
    if (len > PK_JWT_MAX_BYTES) {
        return deny(err, "%zu bytes, more than the %u allowed", len, (unsigned)PK_JWT_MAX_BYTES);
    }
    dot1 = memchr(token, '.', len);
    dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL) {
        return deny(err, "not a compact JWS (header.payload.signature)");
    }
    signed_len = (size_t)(dot2 - token);

    rc = segment_json(token, (size_t)(dot1 - token), "header", &header, err);
    if (rc != 0) {
        goto out;
    }
    alg_v = json_object_get(header, "alg");
    kid_v = json_object_get(header, "kid");
    if (!json_is_string(alg_v)) {
        rc = deny(err, "header has no \"alg\"");
        goto out;
    }
    alg = json_string_value(alg_v);
    if (strcmp(alg, "RS256") == 0) {
        type = JWK_RSA;
    } else if (strcmp(alg, "ES256") == 0) {
        type = JWK_EC;
    } else if (strcmp(alg, "EdDSA") == 0) {
        type = JWK_OKP;
    } else {
        /* "none" and the HMAC family above all: a public key is never a shared secret. */
        rc = deny(err, "algorithm \"%s\" is not accepted (RS256, ES256, EdDSA)",
                  pk_quote(q, sizeof(q), alg, json_string_length(alg_v)));
        goto out;
    }
    if (json_object_get(header, "crit") != NULL) {
        rc = deny(err, "header has \"crit\" extensions, which are not understood");
        goto out;
    }
    if (kid_v != NULL) {
        if (!json_is_string(kid_v)) {
            rc = deny(err, "header \"kid\" is not a string");
            goto out;
        }
        kid = json_string_value(kid_v);
        kid_len = json_string_length(kid_v);
    }

    if (pk_base64_decode(dot2 + 1, len - signed_len - 1, true, sig, sizeof(sig), &sig_len) != 0) {
        rc = deny(err, "signature is not base64url or too long");
        goto out;
    }
    if (wc_Sha256Hash((const uint8_t *)token, (word32)signed_len, hash) != 0) {
        rc = deny(err, "cannot hash the token");
        goto out;
    }
    for (size_t i = 0; i < jwks->count && !verified; i++) {
        struct jwk *key = jwks->keys[i];
        if (key->type != type || (key->alg[0] != '\0' && strcmp(key->alg, alg) != 0)) {
            continue;
        }
        if (kid != NULL &&
            (key->kid == NULL || strlen(key->kid) != kid_len || strcmp(key->kid, kid) != 0)) {
            continue;
        }
        tried++;
        switch (type) {
        case JWK_RSA:
            verified = verify_rs256(key, hash, sig, sig_len);
            break;
        case JWK_EC:
            verified = verify_es256(key, hash, sig, sig_len);
            break;
        case JWK_OKP:
            verified = verify_eddsa(key, (const uint8_t *)token, signed_len, sig, sig_len);
            break;
        }
    }
    if (tried == 0) {
        if (kid != NULL) {
            rc = deny(err, "no %s key with kid \"%s\" in the JWKS", alg,
                      pk_quote(q, sizeof(q), kid, kid_len));
        } else {
            rc = deny(err, "no %s key in the JWKS", alg);
        }
        goto out;
    }
    if (!verified) {
        rc = deny(err, "signature does not verify (%s, %zu key%s tried)", alg, tried,
                  tried == 1 ? "" : "s");
        goto out;
    }

    rc = segment_json(dot1 + 1, (size_t)(dot2 - dot1 - 1), "payload", &claims, err);
    if (rc == 0) {
        rc = check_claims(claims, audience, expected_sub, now, err);
    }
out:
    json_decref(header);
    json_decref(claims);
    return rc;
}
