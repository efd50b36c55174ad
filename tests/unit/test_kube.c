/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for kube/http (the API server's HTTP/1.1 answers), kube/objects (the JSON
 * of TokenReview, Pod, Configuration, Status, Secret and ConfigMap) and the KUBERNETES
 * validator's decisions (sentry/kube_validator), all without I/O. */
/* cmocka.h must come after the system headers it relies on. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
/* clang-format on */

#include "common/err.h"
#include "kube/http.h"
#include "kube/objects.h"
#include "sentry/kube_validator.h"

#define S(text) pk_slice_make(text, sizeof(text) - 1)

/* ---- HTTP responses ------------------------------------------------------------------------ */

struct http_case {
    const char *name;
    const char *wire;
    bool eof;
    size_t max_body;
    int want;          /* 0, PK_E_AGAIN, PK_E_PROTO, PK_E_TOOBIG */
    int status;        /* when 0 */
    const char *body;  /* when 0 */
    const char *error; /* part of the message, when an error */
};

static const struct http_case http_cases[] = {
        {"content-length",
         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2"
         "\r\n\r\n{}",
         false, 100, 0, 200, "{}", NULL},
        {"created", "HTTP/1.1 201 Created\r\ncontent-length:3\r\n\r\nabc", false, 100, 0, 201,
         "abc", NULL},
        {"body still coming", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", false, 100,
         PK_E_AGAIN, 0, NULL, NULL},
        {"body cut by close", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", true, 100,
         PK_E_PROTO, 0, NULL, "truncated"},
        {"head still coming", "HTTP/1.1 200 OK\r\nContent-Le", false, 100, PK_E_AGAIN, 0, NULL,
         NULL},
        {"head cut by close", "HTTP/1.1 200 OK\r\nContent-Le", true, 100, PK_E_PROTO, 0, NULL,
         "truncated"},
        {"bytes after the body", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab", false, 100,
         PK_E_PROTO, 0, NULL, "after the body"},
        {"content-length above the cap", "HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n", false,
         100, PK_E_TOOBIG, 0, NULL, "above the limit"},
        {"content-length not a number", "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", false, 100,
         PK_E_PROTO, 0, NULL, "Content-Length"},
        {"content-length twice",
         "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n"
         "\r\na",
         false, 100, PK_E_PROTO, 0, NULL, "repeated"},
        {"content-length huge", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
         false, 100, PK_E_PROTO, 0, NULL, "Content-Length"},
        {"chunked",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde"
         "\r\n0\r\n\r\n",
         false, 100, 0, 200, "abcde", NULL},
        {"chunked with trailer",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n"
         "0\r\nX-T: 1\r\n\r\n",
         false, 100, 0, 200, "a", NULL},
        {"chunked still coming", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
         false, 100, PK_E_AGAIN, 0, NULL, NULL},
        {"chunked cut by close", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
         true, 100, PK_E_PROTO, 0, NULL, "truncated"},
        {"chunk size not hex", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false,
         100, PK_E_PROTO, 0, NULL, "chunk size"},
        {"chunk size overflow",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         "fffffffffffffffff\r\n",
         false, 100, PK_E_TOOBIG, 0, NULL, "chunk size"},
        {"chunks above the cap",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc"
         "\r\n3\r\ndef\r\n0\r\n\r\n",
         false, 5, PK_E_TOOBIG, 0, NULL, "larger than 5"},
        {"chunk without CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabX",
         false, 100, PK_E_PROTO, 0, NULL, "CRLF"},
        {"chunked and content-length",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
         "Content-Length: 3\r\n\r\n",
         false, 100, PK_E_PROTO, 0, NULL, "both"},
        {"gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, 100, PK_E_PROTO, 0,
         NULL, "Transfer-Encoding"},
        {"until close", "HTTP/1.1 404 Not Found\r\n\r\nnope", true, 100, 0, 404, "nope", NULL},
        {"until close, open", "HTTP/1.1 404 Not Found\r\n\r\nnope", false, 100, PK_E_AGAIN, 0, NULL,
         NULL},
        {"no reason phrase", "HTTP/1.1 204\r\n\r\n", false, 100, 0, 204, "", NULL},
        {"HTTP/2 status line", "HTTP/2 200 OK\r\n\r\n", false, 100, PK_E_PROTO, 0, NULL,
         "status line"},
        {"status 099", "HTTP/1.1 099 X\r\n\r\n", false, 100, PK_E_PROTO, 0, NULL, "status line"},
        {"status 100", "HTTP/1.1 100 Continue\r\n\r\n", false, 100, PK_E_PROTO, 0, NULL,
         "unexpected status"},
        {"bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", false, 100, PK_E_PROTO, 0, NULL,
         "CRLF"},
        {"bare CR in a header", "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", false, 100, PK_E_PROTO, 0,
         NULL, "CRLF"},
        {"control character", "HTTP/1.1 200 OK\r\nX: a\001b\r\n\r\n", false, 100, PK_E_PROTO, 0,
         NULL, "control character"},
        {"header without colon", "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", false, 100, PK_E_PROTO, 0,
         NULL, "malformed header"},
        {"space before colon", "HTTP/1.1 200 OK\r\nX : a\r\n\r\n", false, 100, PK_E_PROTO, 0, NULL,
         "malformed header"},
};

static void http_table(void **state)
{
    for (size_t i = 0; i < sizeof(http_cases) / sizeof(http_cases[0]); i++) {
        const struct http_case *c = &http_cases[i];
        struct pk_kube_http_response resp = {0};
        struct pk_buf body;
        struct pk_err err = {{0}};
        int r;

        pk_buf_init(&body, c->max_body);
        r = pk_kube_http_parse((const uint8_t *)c->wire, strlen(c->wire), c->eof, c->max_body,
                               &resp, &body, &err);
        if (r != c->want) {
            fail_msg("%s: got %d (%s), want %d", c->name, r, err.msg, c->want);
        }
        if (r == 0) {
            assert_int_equal(resp.status, c->status);
            assert_int_equal(body.len, strlen(c->body));
            assert_memory_equal(body.len ? body.data : (uint8_t *)"", c->body, body.len);
        } else if (c->error != NULL && strstr(err.msg, c->error) == NULL) {
            fail_msg("%s: message `%s' does not mention `%s'", c->name, err.msg, c->error);
        }
        pk_buf_free(&body);
    }
}

/* Every prefix of a valid chunked answer is "need more", and the whole is complete: a response
 * may arrive split anywhere. */
static void http_every_split(void **state)
{
    static const char wire[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=x\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n"
                               "\r\n";
    struct pk_kube_http_response resp;
    struct pk_buf body;
    struct pk_err err;

    pk_buf_init(&body, 1024);
    for (size_t n = 0; n < sizeof(wire) - 1; n++) {
        int r = pk_kube_http_parse((const uint8_t *)wire, n, false, 1024, &resp, &body, &err);
        if (r != PK_E_AGAIN) {
            fail_msg("prefix of %zu bytes: %d (%s)", n, r, err.msg);
        }
    }
    assert_int_equal(pk_kube_http_parse((const uint8_t *)wire, sizeof(wire) - 1, false, 1024, &resp,
                                        &body, &err),
                     0);
    assert_int_equal(body.len, 7);
    assert_memory_equal(body.data, "{\"a\":1}", 7);
    assert_int_equal(resp.media_type.len, strlen("application/json"));
    assert_memory_equal(resp.media_type.ptr, "application/json", resp.media_type.len);
    pk_buf_free(&body);
}

/* A head that never ends is refused once it passes the bound, not buffered for ever. */
static void http_head_bound(void **state)
{
    size_t len = PK_KUBE_HTTP_MAX_HEAD + 100;
    char *wire = malloc(len);
    struct pk_kube_http_response resp;
    struct pk_buf body;
    struct pk_err err;

    assert_non_null(wire);
    memcpy(wire, "HTTP/1.1 200 OK\r\nX: ", 20);
    memset(wire + 20, 'a', len - 20);
    pk_buf_init(&body, 10);
    assert_int_equal(pk_kube_http_parse((const uint8_t *)wire, len, false, 10, &resp, &body, &err),
                     PK_E_TOOBIG);
    pk_buf_free(&body);
    free(wire);
}

/* ---- objects ------------------------------------------------------------------------------- */

static int review(const char *json, struct pk_kube_token_review *out, struct pk_err *err)
{
    return pk_kube_token_review_parse((const uint8_t *)json, strlen(json), out, err);
}

static void token_review_parse(void **state)
{
    struct pk_kube_token_review tr;
    struct pk_err err = {{0}};

    assert_int_equal(
            review("{\"kind\":\"TokenReview\",\"status\":{\"authenticated\":true,\"user\":{"
                   "\"username\":\"system:serviceaccount:ns:sa\",\"extra\":{"
                   "\"authentication.kubernetes.io/pod-name\":[\"mypod\"],\"other\":[\"x\"]}},"
                   "\"audiences\":[\"dapr.io/sentry\"]}}",
                   &tr, &err),
            0);
    assert_true(tr.authenticated);
    assert_string_equal(tr.username, "system:serviceaccount:ns:sa");
    assert_true(tr.has_pod_name);
    assert_string_equal(tr.pod_name, "mypod");
    assert_string_equal(tr.error, "");

    /* Not authenticated, with the server's error; no status at all is not authenticated. */
    assert_int_equal(review("{\"status\":{\"error\":\"invalid bearer token\"}}", &tr, &err), 0);
    assert_false(tr.authenticated);
    assert_string_equal(tr.error, "invalid bearer token");
    assert_int_equal(review("{}", &tr, &err), 0);
    assert_false(tr.authenticated);
    assert_false(tr.has_pod_name);

    /* Each hostile shape is refused with the field named. */
    static const struct {
        const char *json, *msg;
    } bad[] = {
            {"[]", "not a JSON object"},
            {"{\"status\":{\"authenticated\":true}", "not valid JSON"},
            {"{\"status\":[]}", "`status' is not an object"},
            {"{\"status\":{\"authenticated\":\"true\"}}", "`authenticated' is not a boolean"},
            {"{\"status\":{\"authenticated\":1}}", "`authenticated' is not a boolean"},
            {"{\"status\":{\"user\":{\"username\":7}}}", "`username' is not a string"},
            {"{\"status\":{\"user\":{\"username\":\"a\",\"username\":\"b\"}}}", "not valid JSON"},
            {"{\"status\":{\"user\":{\"username\":\"a\\u0000b\"}}}", "not valid JSON"},
            {"{\"status\":{\"user\":{\"extra\":{\"authentication.kubernetes.io/pod-name\":[\"a\","
             "\"b\"]}}}}",
             "not one pod name"},
            {"{\"status\":{\"user\":{\"extra\":{\"authentication.kubernetes.io/pod-name\":[]}}}}",
             "not one pod name"},
            {"{\"status\":{\"user\":{\"extra\":{\"authentication.kubernetes.io/"
             "pod-name\":\"a\"}}}}",
             "not one pod name"},
            {"{\"status\":{\"user\":{\"extra\":{\"authentication.kubernetes.io/"
             "pod-name\":[\"\"]}}}}",
             "not one pod name"},
            {"{\"status\":{\"error\":5}}", "`error' is not a string"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = review(bad[i].json, &tr, &err);
        if (r != PK_E_INVALID || strstr(err.msg, bad[i].msg) == NULL) {
            fail_msg("%s: %d `%s', want `%s'", bad[i].json, r, err.msg, bad[i].msg);
        }
    }

    /* A user name longer than the bound is refused, never cut to something else. */
    char json[2200];
    char name[1100];
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    snprintf(json, sizeof(json), "{\"status\":{\"user\":{\"username\":\"%s\"}}}", name);
    assert_int_equal(review(json, &tr, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "longer than 1024"));
}

static void token_review_request(void **state)
{
    const char *aud[] = {"dapr.io/sentry", "spiffe://td/ns/ns/dapr-sentry"};
    struct pk_buf out;
    struct pk_err err;

    pk_buf_init_secret(&out, 4096);
    assert_int_equal(
            pk_kube_token_review_request((const uint8_t *)"a\"b\\c", 5, aud, 2, &out, &err), 0);
    assert_int_equal(pk_buf_append(&out, "", 1), 0);
    /* The token is escaped, never able to break out of its string. */
    assert_string_equal((const char *)out.data,
                        "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\","
                        "\"spec\":{\"token\":\"a\\\"b\\\\c\",\"audiences\":[\"dapr.io/sentry\","
                        "\"spiffe://td/ns/ns/dapr-sentry\"]}}");
    pk_buf_reset(&out);
    assert_int_equal(pk_kube_token_review_request((const uint8_t *)"\xff", 1, aud, 2, &out, &err),
                     PK_E_INVALID);
    pk_buf_free(&out);
}

static void pod_parse(void **state)
{
    static const char json[] =
            "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"mypod\",\"namespace\":\"ns\","
            "\"annotations\":{\"dapr.io/app-id\":\"myapp\",\"dapr.io/config\":\"appconfig\"}},"
            "\"spec\":{\"serviceAccountName\":\"sa\",\"containers\":[]},\"status\":{}}";
    struct pk_kube_pod pod;
    struct pk_err err = {{0}};

    assert_int_equal(pk_kube_pod_parse((const uint8_t *)json, sizeof(json) - 1, &pod, &err), 0);
    assert_string_equal(pod.name, "mypod");
    assert_string_equal(pod.namespace_, "ns");
    assert_string_equal(pod.service_account, "sa");
    assert_true(pod.has_app_id);
    assert_string_equal(pod.app_id, "myapp");
    assert_true(pod.has_config);
    assert_string_equal(pod.config, "appconfig");
    assert_false(pod.has_control_plane);

    static const struct {
        const char *json, *msg;
    } bad[] = {
            {"{\"metadata\":{}}", "metadata.name is missing"},
            {"{\"metadata\":{\"name\":\"\"}}", "metadata.name is missing"},
            {"{\"metadata\":{\"name\":\"p\",\"annotations\":[]}}",
             "`annotations' is not an object"},
            {"{\"metadata\":{\"name\":\"p\",\"annotations\":{\"dapr.io/app-id\":1}}}",
             "`dapr.io/app-id' is not a string"},
            {"{\"metadata\":{\"name\":\"p\",\"namespace\":\"0123456789012345678901234567890123"
             "456789012345678901234567890123\"}}",
             "`namespace' is 64 bytes"},
            {"{\"metadata\":{\"name\":\"p\"},\"spec\":{\"serviceAccountName\":true}}",
             "`serviceAccountName' is not a string"},
            {"\"pod\"", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = pk_kube_pod_parse((const uint8_t *)bad[i].json, strlen(bad[i].json), &pod, &err);
        if (r != PK_E_INVALID || strstr(err.msg, bad[i].msg) == NULL) {
            fail_msg("%s: %d `%s', want `%s'", bad[i].json, r, err.msg, bad[i].msg);
        }
    }
}

static void configuration_and_status(void **state)
{
    char td[256];
    char msg[64];
    bool present = true;
    struct pk_err err;
#define CFG(text) (const uint8_t *)(text), strlen(text)

    assert_int_equal(pk_kube_configuration_trust_domain(
                             CFG("{\"spec\":{\"accessControl\":{\"trustDomain\":\"corp\"}}}"), td,
                             sizeof(td), &present, &err),
                     0);
    assert_true(present);
    assert_string_equal(td, "corp");
    assert_int_equal(pk_kube_configuration_trust_domain(CFG("{\"spec\":{\"accessControl\":{}}}"),
                                                        td, sizeof(td), &present, &err),
                     0);
    assert_false(present);
    assert_int_equal(pk_kube_configuration_trust_domain(
                             CFG("{\"spec\":{\"accessControl\":{\"trustDomain\":\"\"}}}"), td,
                             sizeof(td), &present, &err),
                     0);
    assert_false(present);
    assert_int_equal(pk_kube_configuration_trust_domain(CFG("{\"spec\":{\"accessControl\":7}}"), td,
                                                        sizeof(td), &present, &err),
                     PK_E_INVALID);

    pk_kube_status_message(CFG("{\"kind\":\"Status\",\"message\":\"pods \\\"x\\\" not found\\n"
                               "\",\"reason\":\"NotFound\"}"),
                           msg, sizeof(msg));
    /* Quotes and control characters are replaced: the text goes into logs. */
    assert_string_equal(msg, "pods ?x? not found?");
    pk_kube_status_message(CFG("not json"), msg, sizeof(msg));
    assert_string_equal(msg, "");
#undef CFG
}

static void secret_and_configmap_data(void **state)
{
    static const char secret[] =
            "{\"metadata\":{\"name\":\"dapr-trust-bundle\",\"resourceVersion\":"
            "\"42\"},\"data\":{\"ca.crt\":\"aGVsbG8=\",\"issuer.key\":\"\","
            "\"bad\":\"***\",\"num\":1}}";
    struct pk_kube_data_object meta;
    struct pk_buf value;
    bool found;
    struct pk_err err = {{0}};

    pk_buf_init_secret(&value, 64);
    assert_int_equal(pk_kube_object_data((const uint8_t *)secret, sizeof(secret) - 1, true,
                                         "ca.crt", &value, &found, &meta, &err),
                     0);
    assert_true(found);
    assert_true(meta.exists);
    assert_string_equal(meta.resource_version, "42");
    assert_int_equal(value.len, 5);
    assert_memory_equal(value.data, "hello", 5);
    /* Empty and missing values are "not found", as Dapr treats an empty Secret. */
    assert_int_equal(pk_kube_object_data((const uint8_t *)secret, sizeof(secret) - 1, true,
                                         "issuer.key", &value, &found, NULL, &err),
                     0);
    assert_false(found);
    assert_int_equal(pk_kube_object_data((const uint8_t *)secret, sizeof(secret) - 1, true,
                                         "issuer.crt", &value, &found, NULL, &err),
                     0);
    assert_false(found);
    assert_int_equal(pk_kube_object_data((const uint8_t *)secret, sizeof(secret) - 1, true, "bad",
                                         &value, &found, NULL, &err),
                     PK_E_INVALID);
    assert_non_null(strstr(err.msg, "not valid base64"));
    assert_int_equal(pk_kube_object_data((const uint8_t *)secret, sizeof(secret) - 1, true, "num",
                                         &value, &found, NULL, &err),
                     PK_E_INVALID);
    /* A ConfigMap's value is text; one larger than the buffer's cap is refused. */
    static const char cm[] = "{\"data\":{\"ca.crt\":\"0123456789012345678901234567890123456789"
                             "01234567890123456789012345678901234567890\"}}";
    assert_int_equal(pk_kube_object_data((const uint8_t *)cm, sizeof(cm) - 1, false, "ca.crt",
                                         &value, &found, NULL, &err),
                     PK_E_TOOBIG);
    static const char nodata[] = "{\"metadata\":{},\"data\":null}";
    assert_int_equal(pk_kube_object_data((const uint8_t *)nodata, sizeof(nodata) - 1, true,
                                         "ca.crt", &value, &found, NULL, &err),
                     0);
    assert_false(found);
    pk_buf_free(&value);
}

/* ---- the validator's decisions ------------------------------------------------------------ */

/* header {"alg":"RS256"}, payload {"kubernetes.io":{"pod":{"name":"claimpod"}}} */
#define JWT_CLAIMPOD                                                                               \
    "eyJhbGciOiJSUzI1NiJ9.eyJrdWJlcm5ldGVzLmlvIjp7InBvZCI6eyJuYW1lIjoiY2xhaW1wb2QifX19.c2ln"

static void review_decisions(void **state)
{
    struct pk_kube_token_review tr;
    char sa[PK_KUBE_NAME_MAX + 1], pod[PK_KUBE_NAME_MAX + 1], msg[512];
    struct {
        const char *name;
        bool authenticated;
        const char *error, *user, *extra_pod, *token, *ns;
        int want;
        const char *msg_or_pod;
    } cases[] = {
            {"ok", true, "", "system:serviceaccount:ns:sa", "mypod", "opaque", "ns", 0, "mypod"},
            {"pod from the claim", true, "", "system:serviceaccount:ns:sa", NULL, JWT_CLAIMPOD,
             "ns", 0, "claimpod"},
            {"claim and extra agree", true, "", "system:serviceaccount:ns:sa", "claimpod",
             JWT_CLAIMPOD, "ns", 0, "claimpod"},
            {"claim and extra differ", true, "", "system:serviceaccount:ns:sa", "mypod",
             JWT_CLAIMPOD, "ns", PK_E_DENIED, "does not match"},
            {"no pod at all", true, "", "system:serviceaccount:ns:sa", NULL, "opaque", "ns",
             PK_E_DENIED, "claim is missing"},
            {"server error", true, "token expired", "system:serviceaccount:ns:sa", "mypod", "t",
             "ns", PK_E_DENIED, "invalid token: token expired"},
            {"not authenticated", false, "", "system:serviceaccount:ns:sa", "mypod", "t", "ns",
             PK_E_DENIED, "authentication failed"},
            {"other namespace", true, "", "system:serviceaccount:ns:sa", "mypod", "t", "other",
             PK_E_DENIED, "namespace mismatch; received namespace: other"},
            {"namespace prefix", true, "", "system:serviceaccount:nsx:sa", "mypod", "t", "ns",
             PK_E_DENIED, "namespace mismatch"},
            {"not a service account", true, "", "alice", "mypod", "t", "ns", PK_E_DENIED,
             "properly structured"},
            {"five parts", true, "", "system:serviceaccount:ns:sa:x", "mypod", "t", "ns",
             PK_E_DENIED, "properly structured"},
            {"empty account", true, "", "system:serviceaccount:ns:", "mypod", "t", "ns",
             PK_E_DENIED, "properly structured"},
            {"empty namespace", true, "", "system:serviceaccount::sa", "mypod", "t", "",
             PK_E_DENIED, "properly structured"},
            {"node user", true, "", "system:node:n1:x", "mypod", "t", "ns", PK_E_DENIED,
             "properly structured"},
            {"pod name with a slash", true, "", "system:serviceaccount:ns:sa", "../secrets/x", "t",
             "ns", PK_E_DENIED, "not a pod name"},
            {"pod name upper case", true, "", "system:serviceaccount:ns:sa", "MyPod", "t", "ns",
             PK_E_DENIED, "not a pod name"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&tr, 0, sizeof(tr));
        tr.authenticated = cases[i].authenticated;
        snprintf(tr.error, sizeof(tr.error), "%s", cases[i].error);
        snprintf(tr.username, sizeof(tr.username), "%s", cases[i].user);
        if (cases[i].extra_pod != NULL) {
            tr.has_pod_name = true;
            snprintf(tr.pod_name, sizeof(tr.pod_name), "%s", cases[i].extra_pod);
        }
        msg[0] = '\0';
        int r = pk_kube_decide_review(&tr, pk_slice_make(cases[i].token, strlen(cases[i].token)),
                                      pk_slice_make(cases[i].ns, strlen(cases[i].ns)), sa, pod, msg,
                                      sizeof(msg));
        if (r != cases[i].want) {
            fail_msg("%s: got %d (%s)", cases[i].name, r, msg);
        }
        if (r == 0) {
            assert_string_equal(sa, "sa");
            assert_string_equal(pod, cases[i].msg_or_pod);
        } else if (strstr(msg, cases[i].msg_or_pod) == NULL) {
            fail_msg("%s: message `%s' lacks `%s'", cases[i].name, msg, cases[i].msg_or_pod);
        }
    }
}

static struct pk_kube_pod make_pod(const char *ns, const char *name, const char *sa,
                                   const char *app_id, const char *control_plane)
{
    struct pk_kube_pod p;

    memset(&p, 0, sizeof(p));
    snprintf(p.namespace_, sizeof(p.namespace_), "%s", ns);
    snprintf(p.name, sizeof(p.name), "%s", name);
    snprintf(p.service_account, sizeof(p.service_account), "%s", sa);
    if (app_id != NULL) {
        p.has_app_id = true;
        snprintf(p.app_id, sizeof(p.app_id), "%s", app_id);
    }
    if (control_plane != NULL) {
        p.has_control_plane = true;
        snprintf(p.control_plane, sizeof(p.control_plane), "%s", control_plane);
    }
    return p;
}

static void pod_decisions(void **state)
{
    struct {
        const char *name;
        struct pk_kube_pod pod;
        const char *sa, *id;
        int want;
        bool control_plane;
        const char *msg;
    } cases[] = {
            {"app id annotation", make_pod("ns", "p", "sa", "myapp", NULL), "sa", "myapp", 0, false,
             NULL},
            {"pod name", make_pod("ns", "p", "sa", NULL, NULL), "sa", "p", 0, false, NULL},
            {"pod name when annotated", make_pod("ns", "p", "sa", "myapp", NULL), "sa", "p",
             PK_E_DENIED, false, "app-id mismatch. expected: myapp, received: p"},
            {"service account", make_pod("ns", "p", "other", "myapp", NULL), "sa", "myapp",
             PK_E_DENIED, false, "pod service account mismatch"},
            {"no service account", make_pod("ns", "p", "", "myapp", NULL), "sa", "myapp",
             PK_E_DENIED, false, "pod service account mismatch"},
            {"control plane", make_pod("dapr-system", "p", "sa", NULL, "placement"), "sa",
             "dapr-placement", 0, true, NULL},
            {"control plane asks another", make_pod("dapr-system", "p", "sa", NULL, "placement"),
             "sa", "dapr-operator", PK_E_DENIED, false, "expected: dapr-placement"},
            {"control plane elsewhere", make_pod("ns", "p", "sa", NULL, "placement"), "sa",
             "dapr-placement", PK_E_DENIED, false, "namespace 'ns' is not allowed"},
            {"unknown control plane", make_pod("dapr-system", "p", "sa", NULL, "dashboard"), "sa",
             "dapr-dashboard", PK_E_DENIED, false, "unknown control plane service 'p'"},
            {"control plane with app id", make_pod("dapr-system", "p", "sa", "x", "placement"),
             "sa", "dapr-placement", PK_E_DENIED, false, "cannot have annotation"},
            {"app id case", make_pod("ns", "p", "sa", "MyApp", NULL), "sa", "myapp", PK_E_DENIED,
             false, "app-id mismatch"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char msg[512] = "";
        bool cp = !cases[i].control_plane;
        int r = pk_kube_decide_pod(&cases[i].pod, cases[i].sa,
                                   pk_slice_make(cases[i].id, strlen(cases[i].id)), "dapr-system",
                                   &cp, msg, sizeof(msg));
        if (r != cases[i].want) {
            fail_msg("%s: got %d (%s)", cases[i].name, r, msg);
        }
        if (r == 0) {
            assert_int_equal(cp, cases[i].control_plane);
        } else if (strstr(msg, cases[i].msg) == NULL) {
            fail_msg("%s: message `%s' lacks `%s'", cases[i].name, msg, cases[i].msg);
        }
    }
}

static void token_claim(void **state)
{
    char pod[PK_KUBE_NAME_MAX + 1];

    assert_int_equal(pk_kube_token_pod_claim(S(JWT_CLAIMPOD), pod), 0);
    assert_string_equal(pod, "claimpod");
    assert_int_equal(pk_kube_token_pod_claim(S("no-dots"), pod), PK_E_NOTFOUND);
    assert_int_equal(pk_kube_token_pod_claim(S("a..c"), pod), PK_E_NOTFOUND);
    assert_int_equal(pk_kube_token_pod_claim(S("a.!!!!.c"), pod), PK_E_NOTFOUND);
    /* Standard base64 characters are not base64url. */
    assert_int_equal(pk_kube_token_pod_claim(S("a.ab+/.c"), pod), PK_E_NOTFOUND);
    /* {"kubernetes.io":{"pod":{"name":7}}} */
    assert_int_equal(pk_kube_token_pod_claim(S("a.eyJrdWJlcm5ldGVzLmlvIjp7InBvZCI6eyJuYW1lIjo3fX19"
                                               ".c"),
                                             pod),
                     PK_E_NOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(http_table),
            cmocka_unit_test(http_every_split),
            cmocka_unit_test(http_head_bound),
            cmocka_unit_test(token_review_parse),
            cmocka_unit_test(token_review_request),
            cmocka_unit_test(pod_parse),
            cmocka_unit_test(configuration_and_status),
            cmocka_unit_test(secret_and_configmap_data),
            cmocka_unit_test(review_decisions),
            cmocka_unit_test(pod_decisions),
            cmocka_unit_test(token_claim),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
