/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the few Kubernetes API objects picket sentry reads, parsed from JSON without I/O.
 *
 * Every parser takes the response body as (p, len), never depends on NUL termination, rejects
 * duplicate members and NUL bytes inside strings (jansson), and copies only the fields it needs
 * into fixed-size fields, refusing (never cutting) a value longer than the Kubernetes limit for
 * it: names are DNS-1123 subdomains (253), namespaces and service accounts labels (63), user
 * names and annotation values are bounded here at 1024. A field of the wrong JSON type is an
 * error naming the field; a missing optional field is reported as absent. */
#ifndef PK_KUBE_OBJECTS_H
#define PK_KUBE_OBJECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "common/err.h"

#define PK_KUBE_NAME_MAX     253  /* DNS-1123 subdomain: pod, Secret, ConfigMap, Configuration */
#define PK_KUBE_LABEL_MAX    63   /* DNS-1123 label: namespace */
#define PK_KUBE_TEXT_MAX     1024 /* user names, annotation values, error texts */
#define PK_KUBE_MAX_RESPONSE (4u * 1024u * 1024u)

/* The extra field the API server adds for a pod-bound service-account token (Kubernetes 1.30+,
 * ServiceAccountTokenPodNodeInfo). */
#define PK_KUBE_EXTRA_POD_NAME "authentication.kubernetes.io/pod-name"

/* authentication.k8s.io/v1 TokenReview: its status. */
struct pk_kube_token_review {
    bool authenticated;
    char error[PK_KUBE_TEXT_MAX + 1];    /* status.error, "" when absent */
    char username[PK_KUBE_TEXT_MAX + 1]; /* status.user.username, "" when absent */
    bool has_pod_name;                   /* status.user.extra[PK_KUBE_EXTRA_POD_NAME] present */
    char pod_name[PK_KUBE_NAME_MAX + 1]; /* its single value */
};

/* Parse a TokenReview answer. 0, or PK_E_INVALID with err naming the field (the pod-name extra
 * with other than exactly one value is an error: the API server never sends that). */
int pk_kube_token_review_parse(const uint8_t *p, size_t len, struct pk_kube_token_review *out,
                               struct pk_err *err) PK_MUST_USE;

/* Build the TokenReview request body for token with the given audiences into out (a secret
 * buffer is best: it holds the token). */
int pk_kube_token_review_request(const uint8_t *token, size_t token_len,
                                 const char *const *audiences, size_t n_audiences,
                                 struct pk_buf *out, struct pk_err *err) PK_MUST_USE;

/* core/v1 Pod: what the validator needs. */
struct pk_kube_pod {
    char name[PK_KUBE_NAME_MAX + 1];
    char namespace_[PK_KUBE_LABEL_MAX + 1];
    char service_account[PK_KUBE_NAME_MAX + 1]; /* spec.serviceAccountName, "" when absent */
    bool has_app_id;                            /* annotation dapr.io/app-id */
    char app_id[PK_KUBE_TEXT_MAX + 1];
    bool has_control_plane; /* annotation dapr.io/control-plane */
    char control_plane[PK_KUBE_TEXT_MAX + 1];
    bool has_config; /* annotation dapr.io/config */
    char config[PK_KUBE_TEXT_MAX + 1];
};

int pk_kube_pod_parse(const uint8_t *p, size_t len, struct pk_kube_pod *out, struct pk_err *err)
        PK_MUST_USE;

/* dapr.io/v1alpha1 Configuration: spec.accessControl.trustDomain; *present false when absent or
 * empty (Dapr then uses "public"). */
int pk_kube_configuration_trust_domain(const uint8_t *p, size_t len, char *out, size_t out_len,
                                       bool *present, struct pk_err *err) PK_MUST_USE;

/* A metav1.Status answer (the body of most API errors): its message, quoted safely into out for
 * a log or an error text; "" when the body is not a Status. Never fails. */
void pk_kube_status_message(const uint8_t *p, size_t len, char *out, size_t out_len);

/* core/v1 Secret or ConfigMap: the object's metadata.resourceVersion and one key of data (a
 * Secret's values are base64, decoded here; a ConfigMap's are text). */
struct pk_kube_data_object {
    bool exists;
    char resource_version[128];
};

/* Copy the decoded value of data[key] into value (reset first; value's cap bounds it). *found is
 * false for a missing key, a null data, or an empty value. PK_E_INVALID for bad JSON, bad
 * base64, a value of the wrong type; PK_E_TOOBIG when value's cap is too small. */
int pk_kube_object_data(const uint8_t *p, size_t len, bool base64, const char *key,
                        struct pk_buf *value, bool *found, struct pk_kube_data_object *meta,
                        struct pk_err *err) PK_MUST_USE;

#endif
