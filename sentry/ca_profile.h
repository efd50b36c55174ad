/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the profiles of CA certificates: a root and the issuer below it, as Dapr's Sentry
 * generates them and as the two recipes of Dapr's mTLS guide make them (SENTRY-PROTOCOL.md §7,
 * seeds/000). One table describes each; `picket sentry` (self-generation) and
 * `picket cert create-root|create-issuer` both build their certificates from it.
 *
 *   sentry   Dapr Sentry's own: root O=<td>, key usage digitalSignature+keyCertSign; issuer
 *            O=spiffe://<td>/ns/<ns>/dapr-sentry, + cRLSign; both CA:TRUE without a path
 *            length, with a subject key identifier.
 *   openssl  the guide's root.conf/issuer.conf: C=US, ST=VA, L=Daprville, O=dapr.io/sentry,
 *            OU=dapr.io/sentry, CN=<td>, DNS SAN <td>; CA:TRUE critical (the issuer with
 *            pathlen:0); key usage digitalSignature+cRLSign+keyCertSign; extended key usage
 *            serverAuth+clientAuth; subject key identifier.
 *   step     `step certificate create <td> --profile root-ca | intermediate-ca`: CN=<td>; key
 *            usage keyCertSign+cRLSign; CA:TRUE with pathlen 1 (root) or 0 (issuer); subject key
 *            identifier.
 *
 * Every issuer carries an authority key identifier (the root's subject key identifier); a root
 * carries none. */
#ifndef PK_SENTRY_CA_PROFILE_H
#define PK_SENTRY_CA_PROFILE_H

#include <time.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/key.h"
#include "common/x509.h"

enum pk_ca_profile {
    PK_CA_PROFILE_SENTRY,
    PK_CA_PROFILE_OPENSSL,
    PK_CA_PROFILE_STEP,
};

/* "sentry", "openssl" or "step". */
const char *pk_ca_profile_name(enum pk_ca_profile profile);

/* Parse a profile name (borrowed). 0, or PK_E_INVALID with err naming the choices. */
int pk_ca_profile_parse(const char *name, enum pk_ca_profile *out, struct pk_err *err) PK_MUST_USE;

/* What goes into a root or issuer beyond the profile. Strings are borrowed. */
struct pk_ca_request {
    enum pk_ca_profile profile;
    const char *trust_domain; /* the name the profile puts in the subject (and DNS SAN) */
    const char *namespace_;   /* sentry profile, issuer only: the namespace of its SPIFFE O */
    time_t not_before;
    time_t not_after;
};

/* Issue a self-signed root for key (borrowed). *out takes the certificate. Errors as
 * pk_cert_issue, plus PK_E_INVALID for a bad trust domain. Thread-safe. */
int pk_ca_profile_root(const struct pk_ca_request *req, const struct pk_key *key,
                       struct pk_cert **out, struct pk_err *err) PK_MUST_USE;

/* Issue an issuer certificate for subject (borrowed), signed by root with root_key (both
 * borrowed; root must be a CA that root_key matches). *out takes the certificate. Errors as
 * pk_cert_issue, plus PK_E_INVALID for a bad trust domain or namespace. Thread-safe. */
int pk_ca_profile_issuer(const struct pk_ca_request *req, const struct pk_pubkey *subject,
                         const struct pk_cert *root, const struct pk_key *root_key,
                         struct pk_cert **out, struct pk_err *err) PK_MUST_USE;

#endif
