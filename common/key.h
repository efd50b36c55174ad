/* SPDX-License-Identifier: Apache-2.0 */
/* picket: private and public keys (ECDSA P-256 and Ed25519) and PKCS#10 CSRs, on wolfCrypt.
 *
 * A pk_key owns a private key; its memory is wiped when freed and no function here writes it to
 * a log. Keys are loaded from PEM in SEC1 ("EC PRIVATE KEY") or PKCS#8 ("PRIVATE KEY") form and
 * exported as PKCS#8. Other key types (RSA, P-384, ...) are refused with PK_E_UNSUPPORTED and an
 * error that names the type found. */
#ifndef PK_KEY_H
#define PK_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "compiler.h"
#include "err.h"

enum pk_key_type {
    PK_KEY_NONE = 0,
    PK_KEY_P256,
    PK_KEY_ED25519,
    PK_KEY_OTHER, /* parsed, but not a type picket signs with or accepts */
};

/* "P-256", "Ed25519", ... for messages. */
const char *pk_key_type_name(enum pk_key_type type);

struct pk_key;
struct pk_pubkey;

/* Generate a fresh key of the given type (PK_KEY_P256 or PK_KEY_ED25519) from the process-wide
 * DRBG; *out takes the new key. PK_E_UNSUPPORTED for another type, PK_E_CRYPTO. */
int pk_key_generate(enum pk_key_type type, struct pk_key **out, struct pk_err *err) PK_MUST_USE;

/* Load the first private-key block of a PEM text (borrowed; other blocks before it, such as
 * "EC PARAMETERS" from `openssl ecparam -genkey`, are skipped). what (borrowed) names the source
 * in errors ("issuer.key"). A P-256 scalar must be in range and a public key stored with it must
 * match it. *out takes the key. PK_E_INVALID (no key block, malformed PEM or DER, inconsistent
 * key), PK_E_UNSUPPORTED (RSA, P-384, Ed448, encrypted, ...: the message names the type). */
int pk_key_load_pem(const uint8_t *pem, size_t len, const char *what, struct pk_key **out,
                    struct pk_err *err) PK_MUST_USE;

/* Wipe and free (takes key). NULL is fine. Returns NULL. */
struct pk_key *pk_key_free(struct pk_key *key);

/* PK_KEY_P256 or PK_KEY_ED25519 (borrows key). */
enum pk_key_type pk_key_get_type(const struct pk_key *key);

/* Append the PKCS#8 DER of the private key (borrowed) to out, which should be a secret buffer.
 * P-256 keys carry the curve in the AlgorithmIdentifier and the public key inside the SEC1
 * structure, as Go's x509.MarshalPKCS8PrivateKey writes them. 0, PK_E_CRYPTO, PK_E_TOOBIG (out
 * unchanged). */
int pk_key_to_der(const struct pk_key *key, struct pk_buf *out) PK_MUST_USE;

/* Append a PKCS#8 "PRIVATE KEY" PEM block to out, which should be a secret buffer. 0,
 * PK_E_CRYPTO, PK_E_TOOBIG (out unchanged). */
int pk_key_to_pem(const struct pk_key *key, struct pk_buf *out) PK_MUST_USE;

/* Append the SubjectPublicKeyInfo DER of the key's (borrowed) public half, in canonical form
 * (named curve, uncompressed point). 0, PK_E_CRYPTO, PK_E_TOOBIG (out unchanged). */
int pk_key_public_spki(const struct pk_key *key, struct pk_buf *out) PK_MUST_USE;

/* Public keys, e.g. taken from a CSR or a certificate. pk_pubkey_from_spki reads a
 * SubjectPublicKeyInfo (borrowed; exactly len bytes) and checks the key (a P-256 point must lie
 * on the curve); *out takes the new key. PK_E_INVALID, PK_E_UNSUPPORTED (other algorithm or
 * curve, compressed point: the message names it). pk_pubkey_free takes pub (NULL is fine) and
 * returns NULL. pk_pubkey_spki is the canonical re-encoding, borrowed from pub. */
int pk_pubkey_from_spki(const uint8_t *spki, size_t len, struct pk_pubkey **out, struct pk_err *err)
        PK_MUST_USE;
/* The same from a raw public key: a 65-byte uncompressed P-256 point (coordinates below p, on
 * the curve) or 32 Ed25519 bytes. *out takes the key. PK_E_INVALID, PK_E_UNSUPPORTED (a
 * compressed point). */
int pk_pubkey_from_raw(enum pk_key_type type, const uint8_t *raw, size_t raw_len,
                       struct pk_pubkey **out, struct pk_err *err) PK_MUST_USE;
struct pk_pubkey *pk_pubkey_free(struct pk_pubkey *pub);
enum pk_key_type pk_pubkey_get_type(const struct pk_pubkey *pub);
struct pk_slice pk_pubkey_spki(const struct pk_pubkey *pub); /* borrowed from pub */

/* Build a PKCS#10 CSR signed by key (borrowed; ECDSA-SHA256 or PureEd25519) and append it as a
 * "CERTIFICATE REQUEST" PEM block to out. common_name (borrowed) may be NULL for an empty subject
 * and no extensions; when it is given (1..64 printable ASCII characters) the CSR also carries it
 * as a DNS SAN (what Sentry ≤1.13 wanted; later ones ignore both). The CSR is checked with
 * pk_csr_parse_verify before it is returned. 0, PK_E_INVALID (common name), PK_E_CRYPTO,
 * PK_E_TOOBIG (out unchanged). */
int pk_csr_create(const struct pk_key *key, const char *common_name, struct pk_buf *out,
                  struct pk_err *err) PK_MUST_USE;

/* Parse a CSR's DER (borrowed; exactly len bytes, at most 64 KiB), check its self-signature,
 * and return its public key (*out takes it). PK_E_INVALID with a message saying whether the DER
 * or the signature is bad; PK_E_UNSUPPORTED for a key type other than P-256 or Ed25519. */
int pk_csr_parse_verify(const uint8_t *der, size_t len, struct pk_pubkey **out, struct pk_err *err)
        PK_MUST_USE;

/* Signature algorithms picket signs or verifies with. */
enum pk_sig_alg {
    PK_SIG_NONE = 0,
    PK_SIG_ECDSA_SHA256,
    PK_SIG_ECDSA_SHA384,
    PK_SIG_ECDSA_SHA512,
    PK_SIG_ED25519, /* PureEd25519 (RFC 8032 §5.1) */
};

/* Fill out[0..n) from the process-wide DRBG (thread-safe, reseeded in a forked child).
 * 0 or PK_E_CRYPTO. */
int pk_key_random(uint8_t *out, size_t n) PK_MUST_USE;

/* A new pk_pubkey holding the public half of key (borrowed). 0, or PK_E_CRYPTO. */
int pk_key_public(const struct pk_key *key, struct pk_pubkey **out) PK_MUST_USE;

/* Sign msg (borrowed) with key and append the signature to out: a DER ECDSA-Sig-Value over
 * SHA-256 for P-256, the 64-byte PureEd25519 signature for Ed25519. Thread-safe. 0,
 * PK_E_CRYPTO, PK_E_TOOBIG (out unchanged). */
int pk_key_sign(const struct pk_key *key, const uint8_t *msg, size_t msg_len, struct pk_buf *out)
        PK_MUST_USE;

/* Check sig over msg (both borrowed) with pub. 0 when it verifies; PK_E_CRYPTO when it does not;
 * PK_E_UNSUPPORTED when alg does not go with pub's type (ECDSA needs P-256, Ed25519 needs
 * Ed25519). */
int pk_pubkey_verify(const struct pk_pubkey *pub, enum pk_sig_alg alg, const uint8_t *msg,
                     size_t msg_len, const uint8_t *sig, size_t sig_len) PK_MUST_USE;

/* True when both are the same public key (compares their canonical SubjectPublicKeyInfo). */
bool pk_pubkey_equal(const struct pk_pubkey *a, const struct pk_pubkey *b);

/* Internal, for common/x509.c, which drives wolfSSL's certificate generation.
 * pk_key__rng_acquire locks the process-wide DRBG and returns it as a WC_RNG *, or NULL (not
 * locked) when wolfCrypt could not instantiate it; pk_key__rng_release unlocks it.
 * pk_key__wc / pk_pubkey__wc return the wolfCrypt key object (ecc_key * or ed25519_key *,
 * borrowed) and set *wc_type to wolfSSL's ECC_TYPE or ED25519_TYPE; use them only while holding
 * the DRBG lock, which also serialises signing. */
void *pk_key__rng_acquire(void);
void pk_key__rng_release(void);
void *pk_key__wc(const struct pk_key *key, int *wc_type);
void *pk_pubkey__wc(const struct pk_pubkey *pub, int *wc_type);

#endif
