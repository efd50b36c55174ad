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

/* Sentry renews its own serving certificate before half of what is left of it has gone. */
#define PK_SENTRY_RENEW_FRACTION 0.5
/* ... but not sooner than this after the last issue while the certificate lasts longer. */
#define PK_SENTRY_RENEW_FLOOR 5.0
/* When nothing of the certificate is left (the issuer expires now), try again this soon. */
#define PK_SENTRY_RENEW_RETRY 10.0

/* Seconds from now until Sentry should re-issue the serving certificate that was issued at now
 * and expires at not_after. NotBefore plays no part: it lies allowedClockSkew in the past for
 * the sake of clients with slow clocks, and counting it as validity once made a TTL shorter than
 * twice the skew renew every second. The window that counts is now .. not_after (the TTL, or
 * less when the issuer expires first): PK_SENTRY_RENEW_FRACTION of it; at least
 * PK_SENTRY_RENEW_FLOOR, or, for a certificate that does not last that long, one second before
 * it expires (and at least one second); PK_SENTRY_RENEW_RETRY when the window is empty. */
double pk_sentry_server_cert_renew_in(time_t now, time_t not_after);

#endif
