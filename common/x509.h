/* SPDX-License-Identifier: Apache-2.0 */
/* picket: a small facade over wolfSSL's X.509: parse, inspect, verify chains, issue.
 *
 * This header declares chain verification and includes the headers of the other X.509 modules,
 * so that one include gives the whole facade: x509_cert.h (parse, inspect, lists, PEM, trust
 * anchors), x509_nc.h (name constraints on URIs) and x509_issue.h (issuance). */
#ifndef PK_X509_H
#define PK_X509_H

#include "compiler.h"
#include "err.h"
#include "x509_cert.h"
#include "x509_issue.h"
#include "x509_nc.h"

/* Verify that leaf chains to one of roots, through intermediates (any order; NULL for none), at
 * the current time, using wolfSSL's certificate manager (signatures, validity of every element,
 * CA flags, path length, name constraints) and then our own walk of the path (validity of every
 * element roots included, CA flag, keyCertSign, pathLenConstraint). Roots that cannot be loaded
 * (expired, not a CA) are skipped unless the leaf needs them. Borrows everything; a new
 * certificate manager per call, so it is safe from any thread. PK_E_UNTRUSTED / PK_E_EXPIRED /
 * PK_E_NOTYETVALID with err saying which certificate failed and why, PK_E_CRYPTO. */
int pk_x509_verify_chain(const struct pk_cert *leaf, const struct pk_certs *intermediates,
                         const struct pk_certs *roots, struct pk_err *err) PK_MUST_USE;

#endif
