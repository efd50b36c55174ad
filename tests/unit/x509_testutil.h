/* SPDX-License-Identifier: Apache-2.0 */
/* picket: what the common/x509 unit tests share (test_x509*.c). */
#ifndef PK_TEST_X509_TESTUTIL_H
#define PK_TEST_X509_TESTUTIL_H

#include <time.h>

#include "common/err.h"
#include "common/key.h"
#include "common/x509.h"

#define TD       "example.test"
#define ISSUER_O "spiffe://example.test/ns/dapr-system/dapr-sentry"
#define LEAF_URI "spiffe://example.test/ns/default/frontend"
#define Y2051    ((time_t)2556144000) /* 2051-01-01T00:00:00Z */

/* The templates of Dapr Sentry's root, issuer and workload certificates. */
struct pk_cert_template root_tmpl(time_t now);
struct pk_cert_template issuer_tmpl(time_t now);
struct pk_cert_template leaf_tmpl(time_t nb, time_t na, const char *uri);

/* A root, an issuer signed by it, and their keys. */
struct pki {
    struct pk_key *root_key;
    struct pk_key *iss_key;
    struct pk_cert *root;
    struct pk_cert *iss;
    struct pk_certs roots;
    struct pk_certs inter;
};

/* Mint a root and an issuer of key type type into p (pki_free frees them). */
void pki_make(struct pki *p, enum pk_key_type type);
void pki_free(struct pki *p);

/* pk_x509_verify_chain, with the handshake's verifier asked the same question three ways (no
 * memo, a fresh memo, and the memo every earlier call has filled): each must give the same
 * answer, and the returned error is the full verifier's. */
int verify_both(const struct pk_cert *leaf, const struct pk_certs *inter,
                const struct pk_certs *roots, struct pk_err *err);

/* Free the memo verify_both shares between calls (at the end of a test program). */
void x509_testutil_free(void);

#endif
