/* SPDX-License-Identifier: Apache-2.0 */
/* picket: signing workload certificates in Dapr Sentry's 1.14+ profile (SENTRY-PROTOCOL.md §4):
 * empty subject, one critical URI SAN, key usage digitalSignature, EKU serverAuth+clientAuth, no
 * BasicConstraints, random 128-bit serial, NotBefore = now - skew, NotAfter = now + TTL capped at
 * the issuer's NotAfter, signed with the issuer key's own algorithm. */
#ifndef PK_SENTRY_ISSUE_H
#define PK_SENTRY_ISSUE_H

#include <stdint.h>
#include <time.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/key.h"
#include "sentry/creds.h"

struct pk_sentry_issued {
    struct pk_buf chain_pem; /* leaf, then the issuer chain without self-signed roots */
    time_t not_before;
    time_t not_after;
    char serial_hex[80];
};

/* Sign a workload certificate for subject_key (borrowed) with the identity spiffe_id (already
 * validated by the caller). ttl and skew are in seconds. On success out is filled (the caller
 * frees out->chain_pem with pk_buf_free). */
int pk_sentry_issue_workload(const struct pk_sentry_creds *creds,
                             const struct pk_pubkey *subject_key, const char *spiffe_id, time_t now,
                             int64_t ttl_seconds, int64_t skew_seconds,
                             struct pk_sentry_issued *out, struct pk_err *err) PK_MUST_USE;

#endif
