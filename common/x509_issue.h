/* SPDX-License-Identifier: Apache-2.0 */
/* picket: X.509 issuance: sign a certificate from a template. */
#ifndef PK_X509_ISSUE_H
#define PK_X509_ISSUE_H

#include <stdbool.h>
#include <time.h>

#include "compiler.h"
#include "err.h"
#include "key.h"
#include "x509_cert.h"

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
