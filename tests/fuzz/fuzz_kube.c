/* SPDX-License-Identifier: Apache-2.0 */
/* picket: fuzz target for the Kubernetes API answers picket sentry reads.
 *
 * Targets: pk_kube_http_parse (whole and split at every 97th byte, open and closed, the decoded
 * body then parsed as JSON below), pk_kube_token_review_parse, pk_kube_pod_parse,
 * pk_kube_configuration_trust_domain, pk_kube_status_message, pk_kube_object_data (Secret and
 * ConfigMap), and the validator's decisions (pk_kube_decide_review, pk_kube_decide_pod,
 * pk_kube_token_pod_claim) on whatever parsed.
 * Input: the first byte chooses the target (0: HTTP response, 1: TokenReview, 2: Pod, else the
 * other objects); the rest is the answer. Deterministic: no clock, no randomness. Aborts if a
 * decision allows a pod name that is not a DNS-1123 subdomain (it ends up in a request path). */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "fuzz.h"
#include "kube/http.h"
#include "kube/objects.h"
#include "sentry/kube_validator.h"

/* Results nobody checks go here (the functions are PK_MUST_USE). */
static volatile int sink;

static void json_targets(const uint8_t *p, size_t len, unsigned which)
{
    struct pk_err err;
    char td[256], msg[128];
    bool present;

    if (which == 1) {
        struct pk_kube_token_review tr;
        char sa[PK_KUBE_NAME_MAX + 1], pod[PK_KUBE_NAME_MAX + 1], why[512];
        if (pk_kube_token_review_parse(p, len, &tr, &err) == 0 &&
            pk_kube_decide_review(&tr, pk_slice_make("a.eyJ9.c", 8), pk_slice_make("ns", 2), sa,
                                  pod, why, sizeof(why)) == 0) {
            for (const char *c = pod; *c != '\0'; c++) {
                if (*c == '/' || *c == '?' || *c == '%' || *c == ' ') {
                    abort();
                }
            }
        }
    } else if (which == 2) {
        struct pk_kube_pod *pod = malloc(sizeof(*pod));
        char why[512];
        bool cp;
        if (pod != NULL && pk_kube_pod_parse(p, len, pod, &err) == 0) {
            sink += pk_kube_decide_pod(pod, "sa", pk_slice_make("myapp", 5), "dapr-system", &cp,
                                       why, sizeof(why));
        }
        free(pod);
    } else {
        struct pk_buf value;
        bool found;
        struct pk_kube_data_object meta;
        char claim[PK_KUBE_NAME_MAX + 1];

        sink += pk_kube_configuration_trust_domain(p, len, td, sizeof(td), &present, &err);
        pk_kube_status_message(p, len, msg, sizeof(msg));
        pk_buf_init_secret(&value, 64 * 1024);
        sink += pk_kube_object_data(p, len, true, "ca.crt", &value, &found, &meta, &err);
        sink += pk_kube_object_data(p, len, false, "ca.crt", &value, &found, &meta, &err);
        pk_buf_free(&value);
        sink += pk_kube_token_pod_claim(pk_slice_make(p, len), claim);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pk_kube_http_response resp;
    struct pk_buf body;
    struct pk_err err;

    if (size == 0) {
        return 0;
    }
    if (data[0] != 0) {
        json_targets(data + 1, size - 1, data[0]);
        return 0;
    }
    data++;
    size--;
    pk_buf_init(&body, 64 * 1024);
    for (size_t cut = 0; cut < size; cut += 97) {
        sink += pk_kube_http_parse(data, cut, false, 64 * 1024, &resp, &body, &err);
    }
    sink += pk_kube_http_parse(data, size, false, 64 * 1024, &resp, &body, &err);
    if (pk_kube_http_parse(data, size, true, 64 * 1024, &resp, &body, &err) == 0) {
        json_targets(body.data != NULL ? body.data : (const uint8_t *)"", body.len, 1);
        json_targets(body.data != NULL ? body.data : (const uint8_t *)"", body.len, 2);
    }
    pk_buf_free(&body);
    return 0;
}
