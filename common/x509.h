/* SPDX-License-Identifier: Apache-2.0 */
/* picket: a small facade over wolfSSL's X.509: parse, inspect, verify chains, issue.
 *
 * A pk_cert is an immutable parsed certificate that owns its DER. Times are Unix seconds (UTC).
 * Parsing refuses what RFC 5280 says to refuse (unknown critical extensions, bad encodings) and
 * every error names the certificate ("ca.crt certificate #2") and the problem. */
#ifndef PK_X509_H
#define PK_X509_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "compiler.h"
#include "err.h"
#include "key.h"

/* Key usage bits (RFC 5280 §4.2.1.3). */
#define PK_KU_DIGITAL_SIGNATURE 0x0001u
#define PK_KU_KEY_ENCIPHERMENT  0x0004u
#define PK_KU_KEY_AGREEMENT     0x0010u
#define PK_KU_KEY_CERT_SIGN     0x0020u
#define PK_KU_CRL_SIGN          0x0040u

/* Extended key usage bits. */
#define PK_EKU_SERVER_AUTH 0x01u
#define PK_EKU_CLIENT_AUTH 0x02u
#define PK_EKU_ANY         0x04u
#define PK_EKU_OTHER       0x08u /* some other purpose is listed */

#define PK_CERT_MAX_URIS 8

struct pk_cert;

/* Parse one certificate from DER (borrowed; exactly len bytes, at most PK_PEM_MAX_DER; the cert
 * keeps its own copy). what (borrowed) names it in errors. The validity dates are decoded but not
 * compared with the clock. *out takes the certificate. PK_E_INVALID (malformed, serial not
 * positive or over 20 octets, duplicate or unsupported critical extension, more than
 * PK_CERT_MAX_URIS URI SANs), PK_E_TOOBIG. */
int pk_cert_parse_der(const uint8_t *der, size_t len, const char *what, struct pk_cert **out,
                      struct pk_err *err) PK_MUST_USE;
/* Takes cert. NULL is fine. Returns NULL. */
struct pk_cert *pk_cert_free(struct pk_cert *cert);

/* Accessors: all borrow cert, and returned strings and slices are borrowed from it. */

struct pk_slice pk_cert_der(const struct pk_cert *cert);
time_t pk_cert_not_before(const struct pk_cert *cert);
time_t pk_cert_not_after(const struct pk_cert *cert);
/* Serial as lower-case hex without leading zeros into out (always NUL-terminated, cut to fit). */
void pk_cert_serial_hex(const struct pk_cert *cert, char *out, size_t out_len);
/* One-line subject and issuer, e.g. "O=example.test" or "" for an empty name. */
const char *pk_cert_subject(const struct pk_cert *cert);
const char *pk_cert_issuer(const struct pk_cert *cert);
/* Subject and issuer Name DER, for exact comparison. */
struct pk_slice pk_cert_subject_der(const struct pk_cert *cert);
struct pk_slice pk_cert_issuer_der(const struct pk_cert *cert);
/* URI SANs in order of appearance (at most PK_CERT_MAX_URIS; more is a parse error). */
size_t pk_cert_uri_count(const struct pk_cert *cert);
const char *pk_cert_uri(const struct pk_cert *cert, size_t i);
size_t pk_cert_dns_count(const struct pk_cert *cert);
bool pk_cert_san_critical(const struct pk_cert *cert);
bool pk_cert_has_basic_constraints(const struct pk_cert *cert);
bool pk_cert_is_ca(const struct pk_cert *cert);
int pk_cert_path_len(const struct pk_cert *cert); /* -1 when absent */
bool pk_cert_has_key_usage(const struct pk_cert *cert);
unsigned pk_cert_key_usage(const struct pk_cert *cert); /* PK_KU_* */
bool pk_cert_has_ext_key_usage(const struct pk_cert *cert);
unsigned pk_cert_ext_key_usage(const struct pk_cert *cert); /* PK_EKU_* */
enum pk_key_type pk_cert_key_type(const struct pk_cert *cert);
struct pk_slice pk_cert_spki(const struct pk_cert *cert); /* SubjectPublicKeyInfo DER */
/* The subject key identifier's bytes; an empty slice when the extension is absent. */
struct pk_slice pk_cert_skid(const struct pk_cert *cert);

/* The SHA-256 fingerprint of cert's DER as 64 lower-case hex digits and a NUL. */
void pk_cert_fingerprint(const struct pk_cert *cert, char out[65]);

/* True when cert's signature (ECDSA with SHA-256/384/512, or Ed25519) verifies with issuer's
 * public key and cert's issuer name equals issuer's subject name byte for byte. Borrows both. */
bool pk_cert_signed_by(const struct pk_cert *cert, const struct pk_cert *issuer);
/* True for a self-signed certificate (issuer == subject and signature verifies with own key). */
bool pk_cert_self_signed(const struct pk_cert *cert);
/* True when the certificate has a NameConstraints extension. */
bool pk_cert_has_name_constraints(const struct pk_cert *cert);
/* Check uri (a leaf's URI SAN) against the URI name constraints of ca (RFC 5280 §4.2.1.10: on
 * the URI's host, "host" or ".domain"). wolfSSL evaluates the rfc822Name, dNSName and
 * directoryName forms but not URIs; this does the URIs, and refuses constraints of any other
 * form (PK_E_UNSUPPORTED): unknown forms fail closed. 0 when allowed or unconstrained,
 * PK_E_UNTRUSTED when violated, PK_E_INVALID when malformed; err says which. */
int pk_cert_name_constraints_allow_uri(const struct pk_cert *ca, const char *uri,
                                       struct pk_err *err) PK_MUST_USE;
/* True when key is the private half of cert's public key. Borrows both. */
bool pk_cert_matches_key(const struct pk_cert *cert, const struct pk_key *key);

/* An ordered list of certificates. */
struct pk_certs {
    struct pk_cert **v;
    size_t n;
};

/* Parse every CERTIFICATE block of a PEM text (borrowed) and, on success only, append them to
 * out in order (start with an empty list). Other block types, a malformed block or no certificate
 * at all are PK_E_INVALID errors naming `what` and the block's ordinal. */
int pk_certs_parse_pem(const uint8_t *pem, size_t len, const char *what, struct pk_certs *out,
                       struct pk_err *err) PK_MUST_USE;
/* 0 when cert may be a trust anchor: a CA (BasicConstraints CA:TRUE) whose key usage, when
 * present, allows keyCertSign. Otherwise PK_E_INVALID naming it as "<what> #<index> (<subject or
 * URI>)" and saying what is missing. A CA that is not self-signed (an intermediate) passes: RFC
 * 5280 path validation starts from any trusted CA, as Go's x509 does with a root pool, and it
 * pins trust to that one issuer. Borrows cert. */
int pk_cert_check_anchor(const struct pk_cert *cert, const char *what, size_t index,
                         struct pk_err *err) PK_MUST_USE;
/* pk_certs_parse_pem for a trust-anchor bundle: on success only, every certificate has passed
 * pk_cert_check_anchor and is appended to out. An error names `what' and the block number. */
int pk_certs_parse_anchors_pem(const uint8_t *pem, size_t len, const char *what,
                               struct pk_certs *out, struct pk_err *err) PK_MUST_USE;
/* Append a copy (a new reference-free clone) of cert (borrowed). Always 0. */
int pk_certs_push_copy(struct pk_certs *certs, const struct pk_cert *cert) PK_MUST_USE;
/* Free every certificate and the array; the list is empty afterwards. */
void pk_certs_clear(struct pk_certs *certs);
/* Append each certificate as a PEM block to out; PK_E_TOOBIG leaves out unchanged. */
int pk_certs_to_pem(const struct pk_certs *certs, struct pk_buf *out) PK_MUST_USE;

/* Verify that leaf chains to one of roots, through intermediates (any order; NULL for none), at
 * the current time, using wolfSSL's certificate manager (signatures, validity of every element,
 * CA flags, path length, name constraints) and then our own walk of the path (validity of every
 * element roots included, CA flag, keyCertSign, pathLenConstraint). Roots that cannot be loaded
 * (expired, not a CA) are skipped unless the leaf needs them. Borrows everything; a new
 * certificate manager per call, so it is safe from any thread. PK_E_UNTRUSTED / PK_E_EXPIRED /
 * PK_E_NOTYETVALID with err saying which certificate failed and why, PK_E_CRYPTO. */
int pk_x509_verify_chain(const struct pk_cert *leaf, const struct pk_certs *intermediates,
                         const struct pk_certs *roots, struct pk_err *err) PK_MUST_USE;

struct pk_sigmemo;

/* The handshake's verifier: it refuses what pk_x509_verify_chain refuses on the same inputs, and
 * accepts what it accepts but for a path that would need backtracking (below), each signature
 * on the path checked once. The path is built from leaf upwards: at each step the
 * issuer is an anchor if one fits, else one of intermediates (any order, each used once, NULL for
 * none); a candidate fits when its subject is the certificate's issuer name (and its key
 * identifier the authority key identifier, when there is one, as wolfSSL matches them), it is
 * valid now, a CA, allowed keyCertSign when it has a key usage, its path length constraint
 * allows the intermediates below it (and the leaf, when the leaf is a CA, as wolfSSL counts
 * it), and then its key verifies the signature. The first candidate that fits is taken,
 * without backtracking: among same-named candidates that all fit, a later one is never tried
 * when the first leads nowhere. A path through a CA with name constraints
 * is decided by pk_x509_verify_chain (wolfSSL evaluates the DNS, e-mail and directory name
 * forms). memo (NULL for none; see sigmemo.h) supplies and, once the whole chain is accepted,
 * learns the signatures of links above the leaf. Borrows everything; safe from any thread.
 * PK_E_UNTRUSTED / PK_E_EXPIRED / PK_E_NOTYETVALID with err saying which certificate and why. */
int pk_x509_verify_peer_chain(const struct pk_cert *leaf, const struct pk_certs *intermediates,
                              const struct pk_certs *anchors, struct pk_sigmemo *memo,
                              struct pk_err *err) PK_MUST_USE;

/* For tests and benchmarks: how many signatures this thread has verified with
 * pk_cert_signed_by (and so with both chain verifiers' own walks) since it started. */
unsigned long pk_x509__signature_checks(void);

/* What to put in a certificate that pk_cert_issue signs. */
struct pk_cert_template {
    /* The subject, written in the order C, ST, L, O, OU, CN (as OpenSSL writes a conventional
     * distinguished name); a NULL attribute is left out, and with none the subject is empty. */
    const char *subject_c;  /* NULL: no C; else two letters (ISO 3166) */
    const char *subject_st; /* NULL: no ST */
    const char *subject_l;  /* NULL: no L */
    const char *subject_o;  /* NULL: no O */
    const char *subject_ou; /* NULL: no OU */
    const char *subject_cn; /* NULL: no CN */
    time_t not_before;
    time_t not_after;
    bool is_ca;             /* true: BasicConstraints critical CA:TRUE; false: no extension */
    int path_len;           /* with is_ca: -1 for none */
    unsigned key_usage;     /* PK_KU_*, emitted critical; 0 for none */
    unsigned ext_key_usage; /* PK_EKU_SERVER_AUTH|PK_EKU_CLIENT_AUTH; 0 for none */
    const char *uri_san;    /* NULL: no URI SAN */
    const char *dns_san;    /* NULL: no DNS SAN. With either SAN the extension is marked
                             * critical when the subject is empty */
    bool subject_key_id;    /* add an SKID (CA certificates) */
};

/* Issue a certificate for subject_key, signed by issuer_key (ECDSA-SHA256 for P-256,
 * PureEd25519 for Ed25519). issuer NULL means self-signed (subject_key must be issuer_key's
 * public half). The serial is a fresh random 128-bit positive number. The AKI is the issuer's
 * SKID when it has one (none for self-signed). Times are written at second precision, UTCTime
 * for 1950-2049 and GeneralizedTime otherwise; names use PrintableString when they can, else
 * UTF8String (C is always PrintableString). The result is parsed back and checked against tmpl
 * before it is returned. Borrows everything; *out takes the certificate. PK_E_INVALID (template, or
 * issuer not a CA with keyCertSign), PK_E_MISMATCH (issuer_key does not fit issuer / subject_key),
 * PK_E_UNSUPPORTED, PK_E_CRYPTO. Thread-safe (serialised on the DRBG lock). */
int pk_cert_issue(const struct pk_cert_template *tmpl, const struct pk_pubkey *subject_key,
                  const struct pk_cert *issuer, const struct pk_key *issuer_key,
                  struct pk_cert **out, struct pk_err *err) PK_MUST_USE;

#endif
