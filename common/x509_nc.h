/* SPDX-License-Identifier: Apache-2.0 */
/* picket: X.509 name constraints on URI SANs (RFC 5280 §4.2.1.10). */
#ifndef PK_X509_NC_H
#define PK_X509_NC_H

#include <stdbool.h>

#include "compiler.h"
#include "err.h"
#include "x509_cert.h"

/* True when the certificate has a NameConstraints extension. */
bool pk_cert_has_name_constraints(const struct pk_cert *cert);
/* Check uri (a leaf's URI SAN) against the URI name constraints of ca (RFC 5280 §4.2.1.10: on
 * the URI's host, "host" or ".domain"). wolfSSL evaluates the rfc822Name, dNSName and
 * directoryName forms but not URIs; this does the URIs, and refuses constraints of any other
 * form (PK_E_UNSUPPORTED): unknown forms fail closed. 0 when allowed or unconstrained,
 * PK_E_UNTRUSTED when violated, PK_E_INVALID when malformed; err says which. */
int pk_cert_name_constraints_allow_uri(const struct pk_cert *ca, const char *uri,
                                       struct pk_err *err) PK_MUST_USE;

#endif
