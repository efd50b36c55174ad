/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the dapr.proto.sentry.v1.CA/SignCertificate method, without I/O.
 *
 * The processing order and the gRPC status codes follow Dapr's Sentry 1.12+ (SENTRY-PROTOCOL.md
 * §4): choose the validator (INVALID_ARGUMENT), validate the request and token
 * (PERMISSION_DENIED), decode and check the CSR (INVALID_ARGUMENT), sign (INTERNAL). The
 * identity comes from the request as the validator approved it, never from the CSR, whose public
 * key is all that is used. Where Dapr is looser than it should be, picket refuses at the
 * validation step (PERMISSION_DENIED) and says why: the field rules of sentry/request.h (true
 * lengths, no NUL, SPIFFE characters, a DNS-1123 namespace), only the trust domains this Sentry
 * is configured for, never Sentry's own identity, and the other control-plane identities only
 * when a validator authenticated them or the operator allowed them for the INSECURE validator. */
#ifndef PK_SENTRY_SERVICE_H
#define PK_SENTRY_SERVICE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "sentry/creds.h"
#include "sentry/request.h"

struct pk_jwks;

/* The largest SignCertificateRequest accepted (a CSR plus a token fits in a few KiB). */
#define PK_SENTRY_MAX_REQUEST (64u * 1024u)
/* The largest SignCertificateResponse built (a chain and the roots). */
#define PK_SENTRY_MAX_RESPONSE (1024u * 1024u)

/* Counters, named after Dapr's Sentry metrics. */
struct pk_sentry_metrics {
    uint64_t sign_request_received;
    uint64_t sign_success;
    uint64_t sign_failure;
    uint64_t servercert_issue_failed;
    uint64_t issuercert_changed;
};

struct pk_sentry_service_config {
    const char *trust_domain; /* Sentry's own (--trust-domain) */
    const char *namespace_;   /* Sentry's own (NAMESPACE) */
    int64_t ttl_seconds;      /* workloadCertTTL */
    int64_t skew_seconds;     /* allowedClockSkew */
    /* The trust domains signed for (borrowed, copied); NULL: trust_domain and "public". */
    const struct pk_sentry_trust_domains *allowed_trust_domains;
    /* --allow-insecure-control-plane-ids: the INSECURE validator may issue dapr-placement,
     * dapr-scheduler, dapr-operator and dapr-injector in Sentry's namespace (never
     * dapr-sentry). */
    bool allow_insecure_control_plane_ids;
    /* Kubernetes mode: the KUBERNETES validator is enabled and the default, INSECURE is not. */
    bool kubernetes_validator;
};

struct pk_sentry_service;

/* Create a service. cfg is borrowed (its strings and list are copied); creds is taken; jwks (may
 * be NULL: the INSECURE validator is then the default and only one, as in self-hosted Dapr) is
 * taken. PK_E_INVALID when cfg's trust domain or namespace is not valid. */
int pk_sentry_service_new(const struct pk_sentry_service_config *cfg, struct pk_sentry_creds *creds,
                          struct pk_jwks *jwks, struct pk_sentry_service **out) PK_MUST_USE;
struct pk_sentry_service *pk_sentry_service_free(struct pk_sentry_service *svc);

/* Replace the credentials (takes creds; the old set is freed). Calls being handled on the same
 * thread are never affected: a call runs to completion before this can run. */
void pk_sentry_service_set_creds(struct pk_sentry_service *svc, struct pk_sentry_creds *creds);
const struct pk_sentry_creds *pk_sentry_service_creds(const struct pk_sentry_service *svc);

/* Handle one SignCertificate call: request is the serialized SignCertificateRequest (borrowed).
 * Returns 0 when the call is decided: *status is a gRPC status code; on OK the serialized
 * SignCertificateResponse is appended to response, otherwise message holds the status message.
 * Returns PK_E_AGAIN (nothing written) when the request passed the checks that come first and
 * now needs the KUBERNETES validator (only with kubernetes_validator): run it on the request's
 * token, namespace and id, then finish with pk_sentry_service_sign_kube. */
int pk_sentry_service_sign(struct pk_sentry_service *svc, struct pk_slice request, time_t now,
                           int *status, char *message, size_t message_len, struct pk_buf *response);

/* What the KUBERNETES validator decided (sentry/kube_validator.h), borrowed. */
struct pk_sentry_kube_outcome {
    bool allowed;
    bool unavailable;         /* refused for lack of capacity: UNAVAILABLE, not PERMISSION_DENIED */
    bool control_plane;       /* a dapr.io/control-plane pod in Sentry's namespace */
    const char *trust_domain; /* when allowed */
    const char *message;      /* when refused */
};

/* Finish a call pk_sentry_service_sign answered PK_E_AGAIN, with the same request bytes and the
 * validator's outcome; fills status, message and response as pk_sentry_service_sign does. */
void pk_sentry_service_sign_kube(struct pk_sentry_service *svc, struct pk_slice request, time_t now,
                                 const struct pk_sentry_kube_outcome *outcome, int *status,
                                 char *message, size_t message_len, struct pk_buf *response);

/* Sentry's own SPIFFE ID, spiffe://<td>/ns/<namespace>/dapr-sentry. */
const char *pk_sentry_service_id(const struct pk_sentry_service *svc);

/* The trust domains this service signs for. */
const struct pk_sentry_trust_domains *
pk_sentry_service_trust_domains(const struct pk_sentry_service *svc);

/* A snapshot of the counters. */
void pk_sentry_service_metrics(const struct pk_sentry_service *svc, struct pk_sentry_metrics *out);
/* Count a failed renewal of Sentry's own server certificate / a credentials reload. */
void pk_sentry_service_count_servercert_failure(struct pk_sentry_service *svc);
void pk_sentry_service_count_issuer_changed(struct pk_sentry_service *svc);

#endif
