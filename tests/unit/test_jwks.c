/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for sentry/jwks. Keys are made at test time: EC P-256 and Ed25519 with
 * wolfCrypt, RSA with the openssl command line (so RS256 is checked against an independent
 * signer). */
/* cmocka.h must come after the system headers it relies on. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <cmocka.h>
/* clang-format on */

#include "common/err.h"
#include "common/log.h"
#include "sentry/jwks.h"

#define NOW      ((time_t)1700000000)
#define AUDIENCE "spiffe://cluster.local/ns/dapr-system/dapr-sentry"
#define SUBJECT  "spiffe://public/ns/default/myapp"

static WC_RNG rng;
static ecc_key ec1;
static ecc_key ec2;
static ecc_key ec_other;
static ed25519_key ed1;
static char tmpdir[512];
static char rsa_key_path[600];
static char rsa_n_b64[1024];
static bool rsa_ready;

/* ---- helpers ---- */

static void b64url(const uint8_t *in, size_t len, char *out, size_t cap)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;

    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            assert_true(n + 1 < cap);
            out[n++] = abc[(acc >> bits) & 63];
        }
    }
    if (bits > 0) {
        assert_true(n + 1 < cap);
        out[n++] = abc[(acc << (6 - bits)) & 63];
    }
    out[n] = '\0';
}

static void b64url_str(const char *s, char *out, size_t cap)
{
    b64url((const uint8_t *)s, strlen(s), out, cap);
}

enum signer {
    SIGN_EC1,
    SIGN_EC2,
    SIGN_EC_OTHER,
    SIGN_ED,
    SIGN_RSA,
};

static void sign_ec(ecc_key *key, const char *input, uint8_t sig[64])
{
    uint8_t hash[WC_SHA256_DIGEST_SIZE];
    uint8_t der[128];
    word32 der_len = sizeof(der);
    uint8_t r[32];
    uint8_t s[32];
    word32 r_len = sizeof(r);
    word32 s_len = sizeof(s);

    assert_int_equal(wc_Sha256Hash((const uint8_t *)input, (word32)strlen(input), hash), 0);
    assert_int_equal(wc_ecc_sign_hash(hash, sizeof(hash), der, &der_len, &rng, key), 0);
    assert_int_equal(wc_ecc_sig_to_rs(der, der_len, r, &r_len, s, &s_len), 0);
    /* r and s are fixed-width, left-padded with zeros, in a JWS (RFC 7518 §3.4). */
    memset(sig, 0, 64);
    memcpy(sig + 32 - r_len, r, r_len);
    memcpy(sig + 64 - s_len, s, s_len);
}

static size_t sign_rsa(const char *input, uint8_t *sig, size_t cap)
{
    char in_path[700];
    char cmd[1600];
    FILE *f;
    size_t n;

    assert_true(rsa_ready);
    snprintf(in_path, sizeof(in_path), "%s/signing-input", tmpdir);
    f = fopen(in_path, "wb");
    assert_non_null(f);
    fputs(input, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "openssl dgst -sha256 -sign '%s' -binary '%s'", rsa_key_path,
             in_path);
    f = popen(cmd, "r");
    assert_non_null(f);
    n = fread(sig, 1, cap, f);
    assert_int_equal(pclose(f), 0);
    return n;
}

/* Build header.payload.signature. kid may be NULL. */
static char *make_token(const char *alg, const char *kid, const char *claims, enum signer who)
{
    char header[512];
    char h64[1024];
    char p64[4096];
    char input[6000];
    uint8_t sig[600];
    size_t sig_len = 0;
    char s64[1024];
    char *token;

    if (kid != NULL) {
        snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}", alg,
                 kid);
    } else {
        snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    }
    b64url_str(header, h64, sizeof(h64));
    b64url_str(claims, p64, sizeof(p64));
    snprintf(input, sizeof(input), "%s.%s", h64, p64);
    switch (who) {
    case SIGN_EC1:
        sign_ec(&ec1, input, sig);
        sig_len = 64;
        break;
    case SIGN_EC2:
        sign_ec(&ec2, input, sig);
        sig_len = 64;
        break;
    case SIGN_EC_OTHER:
        sign_ec(&ec_other, input, sig);
        sig_len = 64;
        break;
    case SIGN_ED: {
        word32 len = 64;
        assert_int_equal(
                wc_ed25519_sign_msg((const uint8_t *)input, (word32)strlen(input), sig, &len, &ed1),
                0);
        sig_len = len;
        break;
    }
    case SIGN_RSA:
        sig_len = sign_rsa(input, sig, sizeof(sig));
        break;
    }
    b64url(sig, sig_len, s64, sizeof(s64));
    token = malloc(strlen(input) + strlen(s64) + 2);
    sprintf(token, "%s.%s", input, s64);
    return token;
}

static char *claims_std(long exp_offset)
{
    static char buf[1024];
    snprintf(buf, sizeof(buf),
             "{\"iss\":\"test\",\"sub\":\"" SUBJECT "\",\"aud\":\"" AUDIENCE
             "\",\"exp\":%ld,\"iat\":%ld,\"nbf\":%ld}",
             (long)NOW + exp_offset, (long)NOW - 10, (long)NOW - 10);
    return buf;
}

static void ec_jwk(ecc_key *key, const char *kid, char *out, size_t cap)
{
    uint8_t x[32];
    uint8_t y[32];
    word32 x_len = sizeof(x);
    word32 y_len = sizeof(y);
    char x64[64];
    char y64[64];

    assert_int_equal(wc_ecc_export_public_raw(key, x, &x_len, y, &y_len), 0);
    assert_int_equal(x_len, 32);
    b64url(x, x_len, x64, sizeof(x64));
    b64url(y, y_len, y64, sizeof(y64));
    snprintf(out, cap,
             "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"use\":\"sig\",\"x\":\"%s\","
             "\"y\":\"%s\"}",
             kid, x64, y64);
}

static void ed_jwk(char *out, size_t cap)
{
    uint8_t x[32];
    word32 x_len = sizeof(x);
    char x64[64];

    assert_int_equal(wc_ed25519_export_public(&ed1, x, &x_len), 0);
    b64url(x, x_len, x64, sizeof(x64));
    snprintf(out, cap, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"ed\",\"x\":\"%s\"}", x64);
}

/* The set used by most tests: two EC keys, one Ed25519 key, one RSA key, and one key of a type
 * picket does not use (skipped). */
static char *standard_jwks(void)
{
    char k1[512];
    char k2[512];
    char k3[512];
    char *out = malloc(8192);

    ec_jwk(&ec1, "ec-1", k1, sizeof(k1));
    ec_jwk(&ec2, "ec-2", k2, sizeof(k2));
    ed_jwk(k3, sizeof(k3));
    snprintf(
            out, 8192,
            "{\"keys\":[%s,%s,%s,{\"kty\":\"RSA\",\"kid\":\"rsa-1\",\"alg\":\"RS256\",\"n\":\"%s\","
            "\"e\":\"AQAB\"},{\"kty\":\"EC\",\"crv\":\"P-384\",\"kid\":\"p384\",\"x\":\"AA\","
            "\"y\":\"AA\"}]}",
            k1, k2, k3, rsa_n_b64);
    return out;
}

static struct pk_jwks *load_standard(void)
{
    char *json = standard_jwks();
    struct pk_jwks *jwks = NULL;
    struct pk_err err = {{0}};
    int rc = pk_jwks_parse((const uint8_t *)json, strlen(json), &jwks, &err);
    if (rc != 0) {
        print_error("jwks: %s\n", err.msg);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(pk_jwks_key_count(jwks), 4);
    free(json);
    return jwks;
}

static int verify(const struct pk_jwks *jwks, const char *token, struct pk_err *err)
{
    return pk_jwks_verify(jwks, token, strlen(token), AUDIENCE, SUBJECT, NOW, err);
}

/* The token must be denied with a message containing want, and never containing the token's
 * signature segment. */
static void expect_denied(const struct pk_jwks *jwks, const char *token, const char *want)
{
    struct pk_err err = {{0}};
    int rc = verify(jwks, token, &err);
    const char *sig = strrchr(token, '.');

    if (rc != PK_E_DENIED || strstr(err.msg, want) == NULL) {
        print_error("rc=%d msg=%s want=%s\n", rc, err.msg, want);
    }
    assert_int_equal(rc, PK_E_DENIED);
    assert_non_null(strstr(err.msg, want));
    if (sig != NULL && strlen(sig) > 8) {
        assert_null(strstr(err.msg, sig + 1));
    }
}

/* ---- fixtures ---- */

static int run_cmd(const char *cmd)
{
    int rc = system(cmd);
    return rc == 0 ? 0 : -1;
}

static int setup(void **state)
{
    const char *base = getenv("PICKET_TEST_TMP");
    char cmd[1600];
    char line[2048];
    uint8_t n[600];
    size_t n_len = 0;
    FILE *f;

    snprintf(tmpdir, sizeof(tmpdir), "%s/jwks-XXXXXX", base ? base : "/tmp");
    if (mkdtemp(tmpdir) == NULL) {
        return -1;
    }
    if (wc_InitRng(&rng) != 0 || wc_ecc_init(&ec1) != 0 || wc_ecc_init(&ec2) != 0 ||
        wc_ecc_init(&ec_other) != 0 || wc_ed25519_init(&ed1) != 0) {
        return -1;
    }
    if (wc_ecc_make_key_ex(&rng, 32, &ec1, ECC_SECP256R1) != 0 ||
        wc_ecc_make_key_ex(&rng, 32, &ec2, ECC_SECP256R1) != 0 ||
        wc_ecc_make_key_ex(&rng, 32, &ec_other, ECC_SECP256R1) != 0 ||
        wc_ed25519_make_key(&rng, 32, &ed1) != 0) {
        return -1;
    }
    /* RSA-2048 from OpenSSL; its modulus comes back as hex. */
    snprintf(rsa_key_path, sizeof(rsa_key_path), "%s/rsa.pem", tmpdir);
    snprintf(cmd, sizeof(cmd),
             "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out '%s' 2>/dev/null",
             rsa_key_path);
    if (run_cmd(cmd) != 0) {
        return -1;
    }
    snprintf(cmd, sizeof(cmd), "openssl rsa -in '%s' -noout -modulus", rsa_key_path);
    f = popen(cmd, "r");
    if (f == NULL || fgets(line, sizeof(line), f) == NULL || pclose(f) != 0 ||
        strncmp(line, "Modulus=", 8) != 0) {
        return -1;
    }
    for (const char *h = line + 8; h[0] && h[1] && h[0] != '\n'; h += 2) {
        unsigned v;
        if (sscanf(h, "%2x", &v) != 1) {
            return -1;
        }
        n[n_len++] = (uint8_t)v;
    }
    if (n_len != 256) {
        return -1;
    }
    b64url(n, n_len, rsa_n_b64, sizeof(rsa_n_b64));
    rsa_ready = true;
    return 0;
}

static int teardown(void **state)
{
    char cmd[700];
    wc_ecc_free(&ec1);
    wc_ecc_free(&ec2);
    wc_ecc_free(&ec_other);
    wc_ed25519_free(&ed1);
    wc_FreeRng(&rng);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return run_cmd(cmd);
}

/* ---- tests ---- */

static void good_tokens(void **state)
{
    struct pk_jwks *jwks = load_standard();
    struct pk_err err = {{0}};
    char *t;

    /* ES256 with the kid of the signing key. */
    t = make_token("ES256", "ec-2", claims_std(3600), SIGN_EC2);
    assert_int_equal(verify(jwks, t, &err), 0);
    free(t);
    /* ES256 without a kid: every EC key is tried. */
    t = make_token("ES256", NULL, claims_std(3600), SIGN_EC2);
    assert_int_equal(verify(jwks, t, &err), 0);
    free(t);
    /* EdDSA. */
    t = make_token("EdDSA", "ed", claims_std(3600), SIGN_ED);
    assert_int_equal(verify(jwks, t, &err), 0);
    free(t);
    /* RS256 signed by OpenSSL. */
    t = make_token("RS256", "rsa-1", claims_std(3600), SIGN_RSA);
    if (verify(jwks, t, &err) != 0) {
        print_error("%s\n", err.msg);
    }
    assert_int_equal(verify(jwks, t, &err), 0);
    free(t);
    t = make_token("RS256", NULL, claims_std(3600), SIGN_RSA);
    assert_int_equal(verify(jwks, t, &err), 0);
    free(t);
    /* aud as a list; exp within the 5 minute leeway; fractional NumericDates. */
    t = make_token("ES256", "ec-1",
                   "{\"sub\":\"" SUBJECT "\",\"aud\":[\"other\",\"" AUDIENCE
                   "\"],\"exp\":1699999800.5,\"nbf\":1700000250,\"iat\":1700000290}",
                   SIGN_EC1);
    assert_int_equal(verify(jwks, t, &err), 0);
    free(t);
    pk_jwks_free(jwks);
}

static void time_claims(void **state)
{
    struct pk_jwks *jwks = load_standard();
    char *t;

    t = make_token("ES256", "ec-1", claims_std(-301), SIGN_EC1);
    expect_denied(jwks, t, "expired 301 seconds ago");
    free(t);
    t = make_token("ES256", "ec-1", "{\"sub\":\"" SUBJECT "\",\"aud\":\"" AUDIENCE "\"}", SIGN_EC1);
    expect_denied(jwks, t, "no \"exp\" claim");
    free(t);
    t = make_token("ES256", "ec-1",
                   "{\"sub\":\"" SUBJECT "\",\"aud\":\"" AUDIENCE "\",\"exp\":\"tomorrow\"}",
                   SIGN_EC1);
    expect_denied(jwks, t, "claim \"exp\" is not a number");
    free(t);
    t = make_token("ES256", "ec-1",
                   "{\"sub\":\"" SUBJECT "\",\"aud\":\"" AUDIENCE
                   "\",\"exp\":1700009999,\"nbf\":1700000301}",
                   SIGN_EC1);
    expect_denied(jwks, t, "not valid for another 301 seconds");
    free(t);
    t = make_token("ES256", "ec-1",
                   "{\"sub\":\"" SUBJECT "\",\"aud\":\"" AUDIENCE
                   "\",\"exp\":1700009999,\"iat\":1700000400}",
                   SIGN_EC1);
    expect_denied(jwks, t, "issued 400 seconds in the future");
    free(t);
    pk_jwks_free(jwks);
}

static void audience_and_subject(void **state)
{
    struct pk_jwks *jwks = load_standard();
    char *t;

    t = make_token("ES256", "ec-1",
                   "{\"sub\":\"" SUBJECT "\",\"aud\":\"spiffe://other/ns/x/dapr-sentry\","
                   "\"exp\":1700009999}",
                   SIGN_EC1);
    expect_denied(jwks, t, "audience does not include \"" AUDIENCE "\"");
    free(t);
    t = make_token("ES256", "ec-1",
                   "{\"sub\":\"" SUBJECT "\",\"aud\":[\"a\",\"b\"],\"exp\":1700009999}", SIGN_EC1);
    expect_denied(jwks, t, "audience does not include");
    free(t);
    t = make_token("ES256", "ec-1", "{\"sub\":\"" SUBJECT "\",\"aud\":[1],\"exp\":1700009999}",
                   SIGN_EC1);
    expect_denied(jwks, t, "not a string");
    free(t);
    t = make_token("ES256", "ec-1", "{\"sub\":\"" SUBJECT "\",\"aud\":7,\"exp\":1700009999}",
                   SIGN_EC1);
    expect_denied(jwks, t, "neither a string nor a list");
    free(t);
    t = make_token("ES256", "ec-1", "{\"sub\":\"" SUBJECT "\",\"exp\":1700009999}", SIGN_EC1);
    expect_denied(jwks, t, "no \"aud\" claim");
    free(t);
    /* A prefix of the audience is not the audience. */
    t = make_token("ES256", "ec-1",
                   "{\"sub\":\"" SUBJECT
                   "\",\"aud\":\"spiffe://cluster.local\",\"exp\":1700009999}",
                   SIGN_EC1);
    expect_denied(jwks, t, "audience does not include");
    free(t);
    t = make_token("ES256", "ec-1",
                   "{\"sub\":\"spiffe://public/ns/default/otherapp\",\"aud\":\"" AUDIENCE
                   "\",\"exp\":1700009999}",
                   SIGN_EC1);
    expect_denied(jwks, t,
                  "subject \"spiffe://public/ns/default/otherapp\" is not the requested identity "
                  "\"" SUBJECT "\"");
    free(t);
    t = make_token("ES256", "ec-1", "{\"aud\":\"" AUDIENCE "\",\"exp\":1700009999}", SIGN_EC1);
    expect_denied(jwks, t, "no \"sub\" claim");
    free(t);
    pk_jwks_free(jwks);
}

static void bad_signatures(void **state)
{
    struct pk_jwks *jwks = load_standard();
    char *t;
    char *dot;

    /* One flipped bit in the signature. */
    t = make_token("ES256", "ec-1", claims_std(3600), SIGN_EC1);
    dot = strrchr(t, '.');
    dot[5] = dot[5] == 'A' ? 'B' : 'A';
    expect_denied(jwks, t, "signature does not verify (ES256, 1 key tried)");
    free(t);
    /* Signed by a key that claims a kid from the set. */
    t = make_token("ES256", "ec-1", claims_std(3600), SIGN_EC_OTHER);
    expect_denied(jwks, t, "signature does not verify");
    free(t);
    t = make_token("ES256", NULL, claims_std(3600), SIGN_EC_OTHER);
    expect_denied(jwks, t, "2 keys tried");
    free(t);
    /* Payload changed after signing. */
    t = make_token("EdDSA", "ed", claims_std(3600), SIGN_ED);
    dot = strchr(t, '.');
    dot[3] = dot[3] == 'x' ? 'y' : 'x';
    expect_denied(jwks, t, "signature does not verify");
    free(t);
    t = make_token("RS256", "rsa-1", claims_std(3600), SIGN_RSA);
    dot = strrchr(t, '.');
    dot[10] = dot[10] == 'A' ? 'B' : 'A';
    expect_denied(jwks, t, "signature does not verify (RS256");
    free(t);
    /* A signature of the wrong length for the key. */
    t = make_token("RS256", "rsa-1", claims_std(3600), SIGN_RSA);
    dot = strrchr(t, '.');
    dot[41] = '\0'; /* 40 characters: whole base64 groups, 30 bytes */
    expect_denied(jwks, t, "signature does not verify");
    free(t);
    /* The EC signature presented under the RS256 name, and vice versa. */
    t = make_token("RS256", NULL, claims_std(3600), SIGN_EC1);
    expect_denied(jwks, t, "signature does not verify");
    free(t);
    /* alg names Ed25519 but the kid is an EC key: no key of that type with that kid. */
    t = make_token("EdDSA", "ec-1", claims_std(3600), SIGN_ED);
    expect_denied(jwks, t, "no EdDSA key with kid \"ec-1\"");
    free(t);
    pk_jwks_free(jwks);
}

static void refused_algorithms_and_kids(void **state)
{
    struct pk_jwks *jwks = load_standard();
    char h64[256];
    char p64[1024];
    char token[2048];
    char *t;

    /* alg none with an empty signature. */
    b64url_str("{\"alg\":\"none\",\"typ\":\"JWT\"}", h64, sizeof(h64));
    b64url_str(claims_std(3600), p64, sizeof(p64));
    snprintf(token, sizeof(token), "%s.%s.", h64, p64);
    expect_denied(jwks, token, "algorithm \"none\" is not accepted");
    /* HS256 "signed" with the public key as the secret: never considered. */
    t = make_token("HS256", "rsa-1", claims_std(3600), SIGN_EC1);
    expect_denied(jwks, t, "algorithm \"HS256\" is not accepted");
    free(t);
    t = make_token("ES384", NULL, claims_std(3600), SIGN_EC1);
    expect_denied(jwks, t, "algorithm \"ES384\"");
    free(t);
    t = make_token("ES256", "nope", claims_std(3600), SIGN_EC1);
    expect_denied(jwks, t, "no ES256 key with kid \"nope\"");
    free(t);
    /* The P-384 key was skipped at load, so its kid is unknown. */
    t = make_token("ES256", "p384", claims_std(3600), SIGN_EC1);
    expect_denied(jwks, t, "no ES256 key with kid \"p384\"");
    free(t);
    /* crit is refused. */
    b64url_str("{\"alg\":\"ES256\",\"crit\":[\"exp\"],\"exp\":1}", h64, sizeof(h64));
    snprintf(token, sizeof(token), "%s.%s.AAAA", h64, p64);
    expect_denied(jwks, token, "crit");
    /* alg missing, kid not a string. */
    b64url_str("{\"typ\":\"JWT\"}", h64, sizeof(h64));
    snprintf(token, sizeof(token), "%s.%s.AAAA", h64, p64);
    expect_denied(jwks, token, "no \"alg\"");
    b64url_str("{\"alg\":\"ES256\",\"kid\":5}", h64, sizeof(h64));
    snprintf(token, sizeof(token), "%s.%s.AAAA", h64, p64);
    expect_denied(jwks, token, "\"kid\" is not a string");
    pk_jwks_free(jwks);
}

static void malformed_tokens(void **state)
{
    struct pk_jwks *jwks = load_standard();
    char h64[256];
    char p64[1024];
    char token[4096];
    char *t;
    char *big;

    expect_denied(jwks, "", "empty");
    expect_denied(jwks, "abc", "not a compact JWS");
    expect_denied(jwks, "a.b", "not a compact JWS");
    expect_denied(jwks, "a.b.c.d", "not a compact JWS");
    expect_denied(jwks, "a.b.c.d.e", "not a compact JWS");
    expect_denied(jwks, "..", "header is not a JSON object");
    expect_denied(jwks, "eyJ=.e30.AAAA", "header is not base64url");
    expect_denied(jwks, "ey+J.e30.AAAA", "header is not base64url");
    expect_denied(jwks, "eyJ h.e30.AAAA", "header is not base64url");
    expect_denied(jwks, "e.e30.AAAA", "header is not base64url"); /* 1 char mod 4 */
    expect_denied(jwks, "bm90IGpzb24.e30.AAAA", "header is not a JSON object");
    expect_denied(jwks, "WzFd.e30.AAAA", "header is not a JSON object"); /* [1] */
    /* Duplicate "alg" in the header (the classic confusion trick). */
    b64url_str("{\"alg\":\"ES256\",\"alg\":\"none\"}", h64, sizeof(h64));
    snprintf(token, sizeof(token), "%s.e30.AAAA", h64);
    expect_denied(jwks, token, "header is not a JSON object");
    /* Bad signature encoding. */
    b64url_str("{\"alg\":\"ES256\"}", h64, sizeof(h64));
    snprintf(token, sizeof(token), "%s.e30.AA==", h64);
    expect_denied(jwks, token, "signature is not base64url");
    snprintf(token, sizeof(token), "%s.e30.AB", h64); /* non-zero trailing bits */
    expect_denied(jwks, token, "signature is not base64url");
    /* A properly signed token whose payload is not JSON. */
    {
        char input[512];
        uint8_t sig[64];
        char s64[128];
        b64url_str("not json", p64, sizeof(p64));
        assert_true(snprintf(input, sizeof(input), "%s.%s", h64, p64) < (int)sizeof(input));
        sign_ec(&ec1, input, sig);
        b64url(sig, 64, s64, sizeof(s64));
        assert_true(snprintf(token, sizeof(token), "%s.%s", input, s64) < (int)sizeof(token));
        expect_denied(jwks, token, "payload is not a JSON object");
    }
    /* Over the size cap, even if otherwise fine. */
    big = malloc(PK_JWT_MAX_BYTES + 2);
    memset(big, 'A', PK_JWT_MAX_BYTES + 1);
    big[PK_JWT_MAX_BYTES + 1] = '\0';
    big[10] = '.';
    big[20] = '.';
    expect_denied(jwks, big, "more than the 16384 allowed");
    free(big);
    /* Every truncation of a good token is denied (each its own exact-size heap copy). */
    t = make_token("ES256", "ec-1", claims_std(3600), SIGN_EC1);
    for (size_t i = 0; i < strlen(t); i++) {
        char *copy = malloc(i ? i : 1);
        struct pk_err err = {{0}};
        memcpy(copy, t, i);
        assert_int_equal(pk_jwks_verify(jwks, copy, i, AUDIENCE, SUBJECT, NOW, &err), PK_E_DENIED);
        free(copy);
    }
    /* Trailing junk after the signature. */
    snprintf(token, sizeof(token), "%s=", t);
    expect_denied(jwks, token, "signature is not base64url");
    free(t);
    pk_jwks_free(jwks);
}

static void parse_fails(const char *json, int want_rc, const char *want)
{
    struct pk_jwks *jwks = NULL;
    struct pk_err err = {{0}};
    int rc = pk_jwks_parse((const uint8_t *)json, strlen(json), &jwks, &err);
    if (rc != want_rc || strstr(err.msg, want) == NULL) {
        print_error("json=%.200s rc=%d msg=%s want=%s\n", json, rc, err.msg, want);
    }
    assert_int_equal(rc, want_rc);
    assert_null(jwks);
    assert_non_null(strstr(err.msg, want));
}

static void bad_key_sets(void **state)
{
    char k1[512];
    char buf[4096];
    char *many;
    size_t n;

    ec_jwk(&ec1, "ec-1", k1, sizeof(k1));
    parse_fails("", PK_E_INVALID, "not valid JSON");
    parse_fails("{\"keys\":[", PK_E_INVALID, "not valid JSON");
    parse_fails("[]", PK_E_INVALID, "no \"keys\" array");
    parse_fails("{\"keys\":{}}", PK_E_INVALID, "no \"keys\" array");
    parse_fails("{\"keys\":[]}", PK_E_INVALID, "no usable key");
    parse_fails("{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}", PK_E_INVALID,
                "private member \"k\"");
    parse_fails("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"}]}",
                PK_E_INVALID, "no usable key");
    parse_fails("{\"keys\":[1]}", PK_E_INVALID, "key 0 is not a JSON object");
    parse_fails("{\"keys\":[{\"crv\":\"P-256\"}]}", PK_E_INVALID, "key 0: no \"kty\"");
    parse_fails("{\"keys\":[{\"kty\":5}]}", PK_E_INVALID, "must be strings");
    parse_fails("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}",
                PK_E_INVALID, "coordinates must be 32 bytes");
    parse_fails("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"k\"}]}", PK_E_INVALID,
                "key 0 (kid \"k\"): member \"x\" is missing");
    parse_fails("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"A+==\",\"y\":\"AA\"}]}",
                PK_E_INVALID, "member \"x\" is not base64url");
    /* A point that is not on the curve: x = y = 1. */
    parse_fails("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
                "\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\","
                "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}]}",
                PK_E_INVALID, "not a point on P-256");
    parse_fails("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}]}", PK_E_INVALID,
                "Ed25519 public key must be 32 bytes");
    /* Private halves are refused, not ignored. */
    snprintf(buf, sizeof(buf), "{\"keys\":[%.*s,\"d\":\"AAAA\"}]}", (int)strlen(k1) - 1, k1);
    parse_fails(buf, PK_E_INVALID, "private member \"d\"");
    /* Weak RSA. */
    parse_fails("{\"keys\":[{\"kty\":\"RSA\",\"n\":\"wQ\",\"e\":\"AQAB\"}]}", PK_E_INVALID,
                "2048 to 4096 bits, found 8");
    snprintf(buf, sizeof(buf), "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AAE\"}]}",
             rsa_n_b64);
    parse_fails(buf, PK_E_INVALID, "exponent");
    snprintf(buf, sizeof(buf), "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAA\"}]}",
             rsa_n_b64);
    parse_fails(buf, PK_E_INVALID, "exponent");
    /* Duplicate members. */
    snprintf(buf, sizeof(buf), "{\"keys\":[%s],\"keys\":[%s]}", k1, k1);
    parse_fails(buf, PK_E_INVALID, "not valid JSON");
    /* Too many keys. */
    many = malloc(80000);
    n = (size_t)sprintf(many, "{\"keys\":[");
    for (int i = 0; i <= PK_JWKS_MAX_KEYS; i++) {
        n += (size_t)sprintf(many + n, "%s%s", i ? "," : "", k1);
    }
    sprintf(many + n, "]}");
    parse_fails(many, PK_E_TOOBIG, "more than the 64 allowed");
    free(many);
    /* Over the size cap. */
    {
        uint8_t *huge = malloc(PK_JWKS_MAX_BYTES + 1);
        struct pk_jwks *jwks = NULL;
        memset(huge, ' ', PK_JWKS_MAX_BYTES + 1);
        assert_int_equal(pk_jwks_parse(huge, PK_JWKS_MAX_BYTES + 1, &jwks, NULL), PK_E_TOOBIG);
        free(huge);
    }
    /* Skipped keys beside a good one are fine; a key whose alg does not fit is skipped. */
    snprintf(buf, sizeof(buf),
             "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"use\":\"enc\",\"x\":\"AA\"},%s,"
             "{\"kty\":\"RSA\",\"alg\":\"PS256\",\"n\":\"AA\",\"e\":\"AQAB\"}]}",
             k1);
    {
        struct pk_jwks *jwks = NULL;
        assert_int_equal(pk_jwks_parse((const uint8_t *)buf, strlen(buf), &jwks, NULL), 0);
        assert_int_equal(pk_jwks_key_count(jwks), 1);
        pk_jwks_free(jwks);
    }
}

static void load_sources(void **state)
{
    char *json = standard_jwks();
    struct pk_jwks *jwks = NULL;
    struct pk_err err = {{0}};
    char path[700];
    char *b64;
    char *t;
    FILE *f;
    static const char std_abc[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    t = make_token("ES256", "ec-1", claims_std(3600), SIGN_EC1);

    /* Inline JSON, with leading white space. */
    {
        char *inl = malloc(strlen(json) + 4);
        sprintf(inl, " \n %s", json);
        assert_int_equal(pk_jwks_load(inl, &jwks, &err), 0);
        assert_int_equal(verify(jwks, t, &err), 0);
        jwks = pk_jwks_free(jwks);
        free(inl);
    }
    /* Standard base64 with padding and a line break every 76 characters, as base64(1) writes. */
    {
        size_t len = strlen(json);
        size_t n = 0;
        b64 = malloc(len * 2 + 16);
        for (size_t i = 0; i < len; i += 3) {
            uint32_t v = (uint32_t)(uint8_t)json[i] << 16;
            size_t rem = len - i;
            if (rem > 1) {
                v |= (uint32_t)(uint8_t)json[i + 1] << 8;
            }
            if (rem > 2) {
                v |= (uint8_t)json[i + 2];
            }
            b64[n++] = std_abc[(v >> 18) & 63];
            b64[n++] = std_abc[(v >> 12) & 63];
            b64[n++] = rem > 1 ? std_abc[(v >> 6) & 63] : '=';
            b64[n++] = rem > 2 ? std_abc[v & 63] : '=';
            if ((i / 3 + 1) % 19 == 0) {
                b64[n++] = '\n';
            }
        }
        b64[n] = '\0';
        assert_int_equal(pk_jwks_load(b64, &jwks, &err), 0);
        assert_int_equal(pk_jwks_key_count(jwks), 4);
        assert_int_equal(verify(jwks, t, &err), 0);
        jwks = pk_jwks_free(jwks);
        free(b64);
    }
    /* base64url without padding. */
    b64 = malloc(strlen(json) * 2);
    b64url_str(json, b64, strlen(json) * 2);
    assert_int_equal(pk_jwks_load(b64, &jwks, &err), 0);
    jwks = pk_jwks_free(jwks);
    /* base64 of something that is not a JWKS. */
    b64url_str("{\"keys\": 1}", b64, 64);
    assert_int_equal(pk_jwks_load(b64, &jwks, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "base64 JWKS"));
    free(b64);
    /* A file. */
    snprintf(path, sizeof(path), "%s/jwks.json", tmpdir);
    f = fopen(path, "w");
    fputs(json, f);
    fclose(f);
    assert_int_equal(pk_jwks_load(path, &jwks, &err), 0);
    assert_int_equal(verify(jwks, t, &err), 0);
    jwks = pk_jwks_free(jwks);
    /* A file with bad content names the file. */
    f = fopen(path, "w");
    fputs("{\"keys\": [", f);
    fclose(f);
    assert_int_equal(pk_jwks_load(path, &jwks, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, path));
    assert_null(jwks);
    unlink(path);
    /* A missing file, a URL, malformed inline JSON. */
    assert_int_equal(pk_jwks_load(path, &jwks, &err), PK_E_NOTFOUND);
    assert_non_null(strstr(err.msg, "does not exist"));
    assert_int_equal(pk_jwks_load("https://example.com/jwks.json", &jwks, &err), PK_E_UNSUPPORTED);
    assert_int_equal(pk_jwks_load("{\"keys\":[}", &jwks, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "inline JWKS"));
    assert_null(jwks);
    free(t);
    free(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(good_tokens),
            cmocka_unit_test(time_claims),
            cmocka_unit_test(audience_and_subject),
            cmocka_unit_test(bad_signatures),
            cmocka_unit_test(refused_algorithms_and_kids),
            cmocka_unit_test(malformed_tokens),
            cmocka_unit_test(bad_key_sets),
            cmocka_unit_test(load_sources),
    };
    pk_log_setup(PK_LOG_LEVEL_ERROR, false);
    return cmocka_run_group_tests(tests, setup, teardown);
}
