/* SPDX-License-Identifier: Apache-2.0 */
/* picket: Sentry's KUBERNETES token validator, as Dapr's Sentry runs it.
 *
 * For a request (token, namespace, app id) it asks the Kubernetes API server, on the loop and
 * never blocking it:
 *   1. TokenReview of the token with the audiences "dapr.io/sentry" (Dapr before 1.13) and
 *      Sentry's SPIFFE ID; the token must be authenticated, without error, for a user
 *      system:serviceaccount:<ns>:<sa> with <ns> the request's namespace;
 *   2. the pod the token was issued for: its name from the review's extra
 *      authentication.kubernetes.io/pod-name (vouched for by the API server), else from the
 *      token's kubernetes.io.pod.name claim as Dapr reads it (the review just authenticated the
 *      token); both present and different is refused. GET of that pod in <ns>: it must run as
 *      <sa>;
 *   3. the expected app id: for a pod annotated dapr.io/control-plane, "dapr-<name>" when it is in
 *      Sentry's namespace, names a known service and has no dapr.io/app-id (the identity is then
 *      in Sentry's trust domain); otherwise dapr.io/app-id, else the pod's name. It must equal the
 *      requested id;
 *   4. the trust domain: for a pod annotated dapr.io/config, the Configuration's
 *      spec.accessControl.trustDomain when set; otherwise "public".
 * Every refusal is a PERMISSION_DENIED with Dapr's message. An API failure is a refusal too (the
 * caller retries), and its detail is logged, never sent to the caller. */
#ifndef PK_SENTRY_KUBE_VALIDATOR_H
#define PK_SENTRY_KUBE_VALIDATOR_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "common/spiffe.h"
#include "kube/objects.h"

struct pk_kube_client;
struct pk_kube_validator;
struct pk_kube_check;

/* The audience daprd before 1.13 asked for; Dapr's Sentry still accepts it. */
#define PK_KUBE_LEGACY_AUDIENCE "dapr.io/sentry"
/* Checks running at once; more are refused with UNAVAILABLE so a flood cannot pile up API calls. */
#define PK_KUBE_MAX_CHECKS 256

struct pk_kube_verdict {
    bool allowed;
    bool control_plane;                          /* a dapr.io/control-plane pod */
    char trust_domain[PK_SPIFFE_MAX_TD_LEN + 1]; /* to sign for, when allowed */
    char message[512];                           /* why not, when refused */
    bool unavailable;                            /* refused because checks are saturated */
};

typedef void (*pk_kube_verdict_fn)(void *ctx, const struct pk_kube_verdict *verdict);

struct pk_kube_validator_config {
    const char *sentry_id;        /* the audience, spiffe://<td>/ns/<ns>/dapr-sentry (copied) */
    const char *control_plane_ns; /* Sentry's namespace (copied) */
    const char *control_plane_td; /* Sentry's trust domain (copied) */
};

/* client is borrowed and must outlive the validator. */
int pk_kube_validator_new(struct pk_kube_client *client, const struct pk_kube_validator_config *cfg,
                          struct pk_kube_validator **out) PK_MUST_USE;
/* Cancels every check still running (their callbacks are not called). NULL is fine. */
struct pk_kube_validator *pk_kube_validator_free(struct pk_kube_validator *v);

/* Start checking (token, ns, id are borrowed and copied). done(ctx, verdict) runs exactly once,
 * from the loop and never inside this call, unless the check is cancelled. *out (may be NULL)
 * is valid until done runs. */
void pk_kube_validator_check(struct pk_kube_validator *v, struct pk_slice token, struct pk_slice ns,
                             struct pk_slice id, pk_kube_verdict_fn done, void *ctx,
                             struct pk_kube_check **out);
void pk_kube_check_cancel(struct pk_kube_check *check);

/* ---- the decisions, without I/O (exposed for tests) ---------------------------------------- */

/* Step 1 and the pod's name: from the review (and the token, for the claim). On 0, sa receives
 * the service account and pod the pod's name; otherwise message says why (Dapr's words). */
int pk_kube_decide_review(const struct pk_kube_token_review *review, struct pk_slice token,
                          struct pk_slice ns, char sa[PK_KUBE_NAME_MAX + 1],
                          char pod[PK_KUBE_NAME_MAX + 1], char *message, size_t message_len)
        PK_MUST_USE;

/* Steps 2 (the service account) and 3 for the fetched pod. On 0 *control_plane says which kind
 * of pod it is; otherwise message says why. */
int pk_kube_decide_pod(const struct pk_kube_pod *pod, const char *sa, struct pk_slice id,
                       const char *control_plane_ns, bool *control_plane, char *message,
                       size_t message_len) PK_MUST_USE;

/* The kubernetes.io.pod.name claim of a compact JWS token's payload (not verified here: the
 * caller has had the token reviewed). 0, or PK_E_NOTFOUND when the token is not a JWT or has no
 * such claim. */
int pk_kube_token_pod_claim(struct pk_slice token, char pod[PK_KUBE_NAME_MAX + 1]) PK_MUST_USE;

#endif
