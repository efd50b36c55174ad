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

/* Generate a fresh key of the given type from wolfCrypt's DRBG. */
int pk_key_generate(enum pk_key_type type, struct pk_key **out, struct pk_err *err) PK_MUST_USE;

/* Load the first private-key block of a PEM text (borrowed). what names the source in errors
 * ("issuer.key"). PK_E_INVALID (no key block, bad DER), PK_E_UNSUPPORTED (other algorithm). */
int pk_key_load_pem(const uint8_t *pem, size_t len, const char *what, struct pk_key **out,
                    struct pk_err *err) PK_MUST_USE;

/* Wipe and free. NULL is fine. Returns NULL. */
struct pk_key *pk_key_free(struct pk_key *key);

enum pk_key_type pk_key_get_type(const struct pk_key *key);

/* Append the PKCS#8 DER of the private key to out, which should be a secret buffer. */
int pk_key_to_der(const struct pk_key *key, struct pk_buf *out) PK_MUST_USE;

/* Append a PKCS#8 "PRIVATE KEY" PEM block to out, which should be a secret buffer. */
int pk_key_to_pem(const struct pk_key *key, struct pk_buf *out) PK_MUST_USE;

/* Append the SubjectPublicKeyInfo DER of the key's public half. */
int pk_key_public_spki(const struct pk_key *key, struct pk_buf *out) PK_MUST_USE;

/* Public keys, e.g. taken from a CSR or a certificate. */
int pk_pubkey_from_spki(const uint8_t *spki, size_t len, struct pk_pubkey **out,
                        struct pk_err *err) PK_MUST_USE;
struct pk_pubkey *pk_pubkey_free(struct pk_pubkey *pub);
enum pk_key_type pk_pubkey_get_type(const struct pk_pubkey *pub);
struct pk_slice pk_pubkey_spki(const struct pk_pubkey *pub); /* borrowed from pub */

/* Build a PKCS#10 CSR signed by key (ECDSA-SHA256 or PureEd25519) and append it as a
 * "CERTIFICATE REQUEST" PEM block to out. common_name may be NULL for an empty subject; when it
 * is given the CSR also carries it as a DNS SAN (what Sentry ≤1.13 wanted; later ones ignore
 * both). */
int pk_csr_create(const struct pk_key *key, const char *common_name, struct pk_buf *out,
                  struct pk_err *err) PK_MUST_USE;

/* Parse a CSR's DER, check its self-signature, and return its public key. PK_E_INVALID with a
 * message saying whether the DER or the signature is bad; PK_E_UNSUPPORTED for a key type other
 * than P-256 or Ed25519. */
int pk_csr_parse_verify(const uint8_t *der, size_t len, struct pk_pubkey **out,
                        struct pk_err *err) PK_MUST_USE;

#endif
