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

#endif
