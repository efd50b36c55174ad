/* SPDX-License-Identifier: Apache-2.0 */
/* picket: Sentry's KUBERNETES token validator.
 *
 * Implementation notes: a check is a small chain of API requests — review, pod, then (only for a
 * pod naming a Configuration) configuration — each started from the previous one's callback.
 * The check owns copies of the token (wiped on free), namespace and id, and at most one request
 * in flight; it ends in check_end, which reports the verdict and frees it. */
#include "sentry/kube_validator.h"

#include <ev.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>

#include "common/log.h"
#include "common/mem.h"
#include "kube/client.h"
#include "sentry/request.h"

#define CHECK_MAGIC 0x4b434845u /* "KCHE" */
#define MAX_TOKEN   (16u * 1024u)

struct pk_kube_validator {
    struct pk_kube_client *client;
    char *sentry_id;
    char *cp_ns;
    char *cp_td;
    struct pk_kube_check *checks;
    size_t n_checks;
};

struct pk_kube_check {
    unsigned magic;
    struct pk_kube_validator *v;
    struct pk_kube_check *prev, *next;
    pk_kube_verdict_fn done;
    void *ctx;
    struct pk_kube_request *req;
    ev_timer later; /* reports a verdict reached without I/O */
    struct ev_loop *loop;
    uint8_t *token;
    size_t token_len;
    char ns[PK_SENTRY_NAMESPACE_MAX + 1];
    char id[PK_SENTRY_APP_ID_MAX + 1];
    char sa[PK_KUBE_NAME_MAX + 1];
    char pod[PK_KUBE_NAME_MAX + 1];
    char config[PK_KUBE_NAME_MAX + 1];
    struct pk_kube_verdict verdict;
};

static const char *const control_plane_services[] = {"operator", "placement", "injector", "sentry",
                                                     "scheduler"};

/* ---- decisions ----------------------------------------------------------------------------- */

static bool slice_is(struct pk_slice s, const char *text)
{
    return s.len == strlen(text) && memcmp(s.ptr, text, s.len) == 0;
}

static int deny(char *message, size_t message_len, const char *fmt, ...) PK_PRINTF(3, 4);

static int deny(char *message, size_t message_len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, message_len, fmt, ap);
    va_end(ap);
    return PK_E_DENIED;
}

int pk_kube_token_pod_claim(struct pk_slice token, char pod[PK_KUBE_NAME_MAX + 1])
{
    const uint8_t *dot1, *dot2;
    size_t seg_len;
    char *b64 = NULL;
    uint8_t *json_text = NULL;
    word32 json_len;
    json_t *root = NULL, *v;
    int r = PK_E_NOTFOUND;

    dot1 = memchr(token.ptr, '.', token.len);
    if (dot1 == NULL) {
        return PK_E_NOTFOUND;
    }
    dot2 = memchr(dot1 + 1, '.', token.len - (size_t)(dot1 + 1 - token.ptr));
    if (dot2 == NULL) {
        return PK_E_NOTFOUND;
    }
    seg_len = (size_t)(dot2 - dot1 - 1);
    if (seg_len == 0 || seg_len > MAX_TOKEN) {
        return PK_E_NOTFOUND;
    }
    /* base64url without padding -> standard base64 with padding, for wolfCrypt. */
    b64 = pk_xmalloc(seg_len + 4);
    for (size_t i = 0; i < seg_len; i++) {
        char c = (char)dot1[1 + i];
        if (c == '+' || c == '/' || c == '=') {
            goto out;
        }
        b64[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    size_t n = seg_len;
    while (n % 4 != 0) {
        b64[n++] = '=';
    }
    json_len = (word32)(n / 4 * 3);
    json_text = pk_xmalloc(json_len + 1);
    if (Base64_Decode((const byte *)b64, (word32)n, json_text, &json_len) != 0) {
        goto out;
    }
    root = json_loadb((const char *)json_text, json_len, JSON_REJECT_DUPLICATES, NULL);
    v = json_object_get(json_object_get(json_object_get(root, "kubernetes.io"), "pod"), "name");
    if (json_is_string(v) && json_string_length(v) > 0 &&
        json_string_length(v) <= PK_KUBE_NAME_MAX) {
        memcpy(pod, json_string_value(v), json_string_length(v));
        pod[json_string_length(v)] = '\0';
        r = 0;
    }
out:
    json_decref(root);
    free(b64);
    free(json_text);
    return r;
}

/* A DNS-1123 subdomain (pod names): what a path segment may safely carry. */
static bool is_dns_subdomain(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > PK_KUBE_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !((c == '-' || c == '.') && i > 0 && i + 1 < n)) {
            return false;
        }
    }
    return true;
}

int pk_kube_decide_review(const struct pk_kube_token_review *review, struct pk_slice token,
                          struct pk_slice ns, char sa[PK_KUBE_NAME_MAX + 1],
                          char pod[PK_KUBE_NAME_MAX + 1], char *message, size_t message_len)
{
    static const char prefix[] = "system:serviceaccount:";
    const char *user = review->username;
    const char *sa_ns, *colon;
    char claim[PK_KUBE_NAME_MAX + 1];
    bool have_claim;

    if (review->error[0] != '\0') {
        return deny(message, message_len, "invalid token: %.300s", review->error);
    }
    if (!review->authenticated) {
        return deny(message, message_len, "authentication failed");
    }
    /* Exactly four ':'-separated parts, as Dapr splits it. */
    if (strncmp(user, prefix, sizeof(prefix) - 1) != 0 ||
        (colon = strchr(user + sizeof(prefix) - 1, ':')) == NULL ||
        strchr(colon + 1, ':') != NULL || colon == user + sizeof(prefix) - 1 || colon[1] == '\0' ||
        strlen(colon + 1) > PK_KUBE_NAME_MAX) {
        return deny(message, message_len,
                    "provided token is not a properly structured service account token");
    }
    sa_ns = user + sizeof(prefix) - 1;
    have_claim = pk_kube_token_pod_claim(token, claim) == 0;
    if (!review->has_pod_name && !have_claim) {
        return deny(message, message_len,
                    "kubernetes.io/pod/name claim is missing from Kubernetes token");
    }
    if (review->has_pod_name && have_claim && strcmp(review->pod_name, claim) != 0) {
        return deny(message, message_len,
                    "the token's pod name claim does not match the pod the API server names");
    }
    if ((size_t)(colon - sa_ns) != ns.len || memcmp(sa_ns, ns.ptr, ns.len) != 0) {
        char q[300];
        return deny(message, message_len, "namespace mismatch; received namespace: %s",
                    pk_sentry_quote(q, sizeof(q), ns));
    }
    snprintf(sa, PK_KUBE_NAME_MAX + 1, "%s", colon + 1);
    snprintf(pod, PK_KUBE_NAME_MAX + 1, "%s", review->has_pod_name ? review->pod_name : claim);
    if (!is_dns_subdomain(pod)) {
        return deny(message, message_len, "kubernetes.io/pod/name claim is not a pod name");
    }
    return 0;
}

int pk_kube_decide_pod(const struct pk_kube_pod *pod, const char *sa, struct pk_slice id,
                       const char *control_plane_ns, bool *control_plane, char *message,
                       size_t message_len)
{
    char expected[PK_KUBE_TEXT_MAX + 16];
    char q[300];
    bool known = false;

    if (strcmp(pod->service_account, sa) != 0) {
        return deny(message, message_len, "pod service account mismatch");
    }
    if (pod->has_control_plane) {
        if (strcmp(pod->namespace_, control_plane_ns) != 0) {
            return deny(message, message_len,
                        "control plane service in namespace '%.63s' is not allowed",
                        pod->namespace_);
        }
        for (size_t i = 0; i < PK_ARRAY_LEN(control_plane_services); i++) {
            known = known || strcmp(pod->control_plane, control_plane_services[i]) == 0;
        }
        if (!known) {
            return deny(message, message_len, "unknown control plane service '%.253s'", pod->name);
        }
        if (pod->has_app_id) {
            return deny(message, message_len,
                        "control plane service '%.253s' cannot have annotation 'dapr.io/app-id'",
                        pod->name);
        }
        snprintf(expected, sizeof(expected), "dapr-%s", pod->control_plane);
    } else {
        snprintf(expected, sizeof(expected), "%s", pod->has_app_id ? pod->app_id : pod->name);
    }
    if (!slice_is(id, expected)) {
        char e[300];
        return deny(message, message_len, "app-id mismatch. expected: %s, received: %s",
                    pk_sentry_quote(e, sizeof(e), pk_slice_make(expected, strlen(expected))),
                    pk_sentry_quote(q, sizeof(q), id));
    }
    *control_plane = pod->has_control_plane;
    return 0;
}

/* ---- the asynchronous check ----------------------------------------------------------------- */

static void check_free(struct pk_kube_check *ch)
{
    struct pk_kube_validator *v = ch->v;

    if (ch->prev != NULL) {
        ch->prev->next = ch->next;
    } else {
        v->checks = ch->next;
    }
    if (ch->next != NULL) {
        ch->next->prev = ch->prev;
    }
    v->n_checks--;
    pk_kube_request_cancel(ch->req);
    ev_timer_stop(ch->loop, &ch->later);
    if (ch->token != NULL) {
        pk_wipe(ch->token, ch->token_len);
        free(ch->token);
    }
    ch->magic = 0;
    free(ch);
}

static void check_end(struct pk_kube_check *ch)
{
    struct pk_kube_verdict verdict = ch->verdict;
    pk_kube_verdict_fn done = ch->done;
    void *ctx = ch->ctx;

    ch->req = NULL; /* ended by its own callback, or never started */
    check_free(ch);
    done(ctx, &verdict);
}

static void check_deny(struct pk_kube_check *ch, const char *fmt, ...) PK_PRINTF(2, 3);

static void check_deny(struct pk_kube_check *ch, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(ch->verdict.message, sizeof(ch->verdict.message), fmt, ap);
    va_end(ap);
    ch->verdict.allowed = false;
    check_end(ch);
}

static void later_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct pk_kube_check *ch = w->data;
    PK_ASSERT(ch->magic == CHECK_MAGIC);
    check_end(ch);
}

/* An API answer that is not 200: log what the server said, give the caller Dapr's text. */
static bool api_failed(struct pk_kube_check *ch, const struct pk_kube_result *res, const char *what,
                       const char *public_message)
{
    char detail[300];

    if (res->code == 0 && res->http_status == 200) {
        return false;
    }
    if (res->code != 0) {
        PK_LOG_WARN("kubernetes validator: %s failed namespace=%s error=\"%s\"", what, ch->ns,
                    res->error);
    } else {
        pk_kube_status_message(res->body.ptr, res->body.len, detail, sizeof(detail));
        PK_LOG_WARN("kubernetes validator: %s failed namespace=%s status=%d message=\"%s\"", what,
                    ch->ns, res->http_status, detail);
    }
    check_deny(ch, "%s", public_message);
    return true;
}

static void start_request(struct pk_kube_check *ch, const char *method, const char *path,
                          struct pk_slice body, pk_kube_done_fn fn)
{
    struct pk_err err = {{0}};

    if (pk_kube_client_request(ch->v->client, method, path, body, fn, ch, &ch->req, &err) != 0) {
        PK_LOG_WARN("kubernetes validator: cannot start %s %s: %s", method, path, err.msg);
        snprintf(ch->verdict.message, sizeof(ch->verdict.message), "validator not ready");
        ev_timer_start(ch->loop, &ch->later);
    }
}

static void on_config(void *ctx, const struct pk_kube_result *res)
{
    struct pk_kube_check *ch = ctx;
    struct pk_err err = {{0}};
    bool present = false;

    PK_ASSERT(ch->magic == CHECK_MAGIC);
    ch->req = NULL;
    if (api_failed(ch, res, "get configuration", "failed to get configuration")) {
        return;
    }
    if (pk_kube_configuration_trust_domain(res->body.ptr, res->body.len, ch->verdict.trust_domain,
                                           sizeof(ch->verdict.trust_domain), &present, &err) != 0) {
        PK_LOG_WARN("kubernetes validator: configuration %s/%s: %s", ch->ns, ch->config, err.msg);
        check_deny(ch, "failed to get configuration");
        return;
    }
    if (!present) {
        snprintf(ch->verdict.trust_domain, sizeof(ch->verdict.trust_domain), "%s",
                 PK_SENTRY_DEFAULT_REQUEST_TRUST_DOMAIN);
    }
    ch->verdict.allowed = true;
    check_end(ch);
}

static void on_pod(void *ctx, const struct pk_kube_result *res)
{
    struct pk_kube_check *ch = ctx;
    struct pk_kube_pod *pod = NULL;
    struct pk_err err = {{0}};
    bool cp = false;
    char path[600];

    PK_ASSERT(ch->magic == CHECK_MAGIC);
    ch->req = NULL;
    if (api_failed(ch, res, "get pod", "failed to get pod of identity")) {
        return;
    }
    pod = pk_xcalloc(1, sizeof(*pod));
    if (pk_kube_pod_parse(res->body.ptr, res->body.len, pod, &err) != 0) {
        PK_LOG_WARN("kubernetes validator: pod %s/%s: %s", ch->ns, ch->pod, err.msg);
        check_deny(ch, "failed to get pod of identity");
        goto out;
    }
    if (strcmp(pod->name, ch->pod) != 0 || strcmp(pod->namespace_, ch->ns) != 0) {
        PK_LOG_WARN("kubernetes validator: asked for pod %s/%s, the API server answered %.63s/"
                    "%.253s",
                    ch->ns, ch->pod, pod->namespace_, pod->name);
        check_deny(ch, "failed to get pod of identity");
        goto out;
    }
    if (pk_kube_decide_pod(pod, ch->sa, pk_slice_make(ch->id, strlen(ch->id)), ch->v->cp_ns, &cp,
                           ch->verdict.message, sizeof(ch->verdict.message)) != 0) {
        check_end(ch);
        goto out;
    }
    ch->verdict.control_plane = cp;
    if (cp) {
        snprintf(ch->verdict.trust_domain, sizeof(ch->verdict.trust_domain), "%s", ch->v->cp_td);
        ch->verdict.allowed = true;
        check_end(ch);
        goto out;
    }
    if (!pod->has_config) {
        snprintf(ch->verdict.trust_domain, sizeof(ch->verdict.trust_domain), "%s",
                 PK_SENTRY_DEFAULT_REQUEST_TRUST_DOMAIN);
        ch->verdict.allowed = true;
        check_end(ch);
        goto out;
    }
    if (!is_dns_subdomain(pod->config)) {
        PK_LOG_WARN("kubernetes validator: pod %s/%s names a configuration that is not a valid "
                    "name",
                    ch->ns, ch->pod);
        check_deny(ch, "failed to get configuration");
        goto out;
    }
    snprintf(ch->config, sizeof(ch->config), "%.253s", pod->config);
    snprintf(path, sizeof(path), "/apis/dapr.io/v1alpha1/namespaces/%s/configurations/%s", ch->ns,
             ch->config);
    start_request(ch, "GET", path, pk_slice_make("", 0), on_config);
out:
    free(pod);
}

static void on_review(void *ctx, const struct pk_kube_result *res)
{
    struct pk_kube_check *ch = ctx;
    struct pk_kube_token_review *review = NULL;
    struct pk_err err = {{0}};
    char path[600];

    PK_ASSERT(ch->magic == CHECK_MAGIC);
    ch->req = NULL;
    if (res->code == 0 && res->http_status == 201) {
        /* Created: what a real API server answers to a TokenReview POST. */
    } else if (api_failed(ch, res, "token review", "token review failed")) {
        return;
    }
    review = pk_xcalloc(1, sizeof(*review));
    if (pk_kube_token_review_parse(res->body.ptr, res->body.len, review, &err) != 0) {
        PK_LOG_WARN("kubernetes validator: token review: %s", err.msg);
        check_deny(ch, "token review failed");
        goto out;
    }
    if (pk_kube_decide_review(review, pk_slice_make(ch->token, ch->token_len),
                              pk_slice_make(ch->ns, strlen(ch->ns)), ch->sa, ch->pod,
                              ch->verdict.message, sizeof(ch->verdict.message)) != 0) {
        check_end(ch);
        goto out;
    }
    snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", ch->ns, ch->pod);
    start_request(ch, "GET", path, pk_slice_make("", 0), on_pod);
out:
    free(review);
}

void pk_kube_validator_check(struct pk_kube_validator *v, struct pk_slice token, struct pk_slice ns,
                             struct pk_slice id, pk_kube_verdict_fn done, void *ctx,
                             struct pk_kube_check **out)
{
    struct pk_kube_check *ch = pk_xcalloc(1, sizeof(*ch));
    const char *audiences[] = {PK_KUBE_LEGACY_AUDIENCE, v->sentry_id};
    struct pk_buf body;
    struct pk_err err = {{0}};

    ch->magic = CHECK_MAGIC;
    ch->v = v;
    ch->done = done;
    ch->ctx = ctx;
    ch->loop = pk_kube_client_loop(v->client);
    ev_timer_init(&ch->later, later_cb, 0., 0.);
    ch->later.data = ch;
    ch->next = v->checks;
    if (v->checks != NULL) {
        v->checks->prev = ch;
    }
    v->checks = ch;
    v->n_checks++;
    if (out != NULL) {
        *out = ch;
    }
    /* The caller has run Dapr's common checks: namespace and id fit and hold no NUL. */
    PK_ASSERT(ns.len < sizeof(ch->ns) && id.len < sizeof(ch->id));
    memcpy(ch->ns, ns.ptr, ns.len);
    memcpy(ch->id, id.ptr, id.len);
    if (v->n_checks > PK_KUBE_MAX_CHECKS) {
        ch->verdict.unavailable = true;
        snprintf(ch->verdict.message, sizeof(ch->verdict.message),
                 "too many Kubernetes validations in progress; try again");
        ev_timer_start(ch->loop, &ch->later);
        return;
    }
    if (token.len == 0 || token.len > MAX_TOKEN) {
        snprintf(ch->verdict.message, sizeof(ch->verdict.message),
                 token.len == 0 ? "the request does not contain a token"
                                : "token review failed: token too large");
        ev_timer_start(ch->loop, &ch->later);
        return;
    }
    ch->token = pk_xmemdup(token.ptr, token.len);
    ch->token_len = token.len;
    pk_buf_init_secret(&body, 2 * MAX_TOKEN + 1024);
    if (pk_kube_token_review_request(token.ptr, token.len, audiences, 2, &body, &err) != 0) {
        snprintf(ch->verdict.message, sizeof(ch->verdict.message), "token review failed: %.400s",
                 err.msg);
        ev_timer_start(ch->loop, &ch->later);
    } else {
        start_request(ch, "POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                      pk_buf_slice(&body), on_review);
    }
    pk_buf_free(&body);
}

void pk_kube_check_cancel(struct pk_kube_check *check)
{
    if (check != NULL) {
        PK_ASSERT(check->magic == CHECK_MAGIC);
        check_free(check);
    }
}

int pk_kube_validator_new(struct pk_kube_client *client, const struct pk_kube_validator_config *cfg,
                          struct pk_kube_validator **out)
{
    struct pk_kube_validator *v = pk_xcalloc(1, sizeof(*v));

    v->client = client;
    v->sentry_id = pk_xstrdup(cfg->sentry_id);
    v->cp_ns = pk_xstrdup(cfg->control_plane_ns);
    v->cp_td = pk_xstrdup(cfg->control_plane_td);
    *out = v;
    return 0;
}

struct pk_kube_validator *pk_kube_validator_free(struct pk_kube_validator *v)
{
    if (v == NULL) {
        return NULL;
    }
    while (v->checks != NULL) {
        check_free(v->checks);
    }
    free(v->sentry_id);
    free(v->cp_ns);
    free(v->cp_td);
    free(v);
    return NULL;
}
