/* SPDX-License-Identifier: Apache-2.0 */
/* picket: Kubernetes API objects parsed from JSON (jansson). */
#include "kube/objects.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>

#include "common/mem.h"

static int load(const uint8_t *p, size_t len, const char *what, json_t **out, struct pk_err *err)
{
    json_error_t jerr;
    json_t *root;

    if (len > PK_KUBE_MAX_RESPONSE) {
        return pk_err_set(err, PK_E_TOOBIG, "%s: %zu bytes, above the limit", what, len);
    }
    root = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return pk_err_set(err, PK_E_INVALID, "%s: not valid JSON (line %d column %d: %s)", what,
                          jerr.line, jerr.column, jerr.text);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return pk_err_set(err, PK_E_INVALID, "%s: not a JSON object", what);
    }
    *out = root;
    return 0;
}

/* The member name of obj, which must be an object (or absent/null: *out NULL). */
static int member_object(const json_t *obj, const char *name, const char *what, json_t **out,
                         struct pk_err *err)
{
    json_t *v = obj != NULL ? json_object_get(obj, name) : NULL;

    if (v == NULL || json_is_null(v)) {
        *out = NULL;
        return 0;
    }
    if (!json_is_object(v)) {
        return pk_err_set(err, PK_E_INVALID, "%s: `%s' is not an object", what, name);
    }
    *out = v;
    return 0;
}

/* Copy the string member name of obj into out (cap out_len, refusing longer values); "" and
 * *present false when absent or null. */
static int member_string(const json_t *obj, const char *name, const char *what, char *out,
                         size_t out_len, bool *present, struct pk_err *err)
{
    json_t *v = obj != NULL ? json_object_get(obj, name) : NULL;
    size_t n;

    out[0] = '\0';
    if (present != NULL) {
        *present = false;
    }
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v)) {
        return pk_err_set(err, PK_E_INVALID, "%s: `%s' is not a string", what, name);
    }
    n = json_string_length(v);
    if (n >= out_len) {
        return pk_err_set(err, PK_E_INVALID, "%s: `%s' is %zu bytes, longer than %zu", what, name,
                          n, out_len - 1);
    }
    memcpy(out, json_string_value(v), n);
    out[n] = '\0';
    if (present != NULL) {
        *present = true;
    }
    return 0;
}

int pk_kube_token_review_parse(const uint8_t *p, size_t len, struct pk_kube_token_review *out,
                               struct pk_err *err)
{
    static const char what[] = "TokenReview";
    struct pk_kube_token_review tr;
    json_t *root = NULL, *status = NULL, *user = NULL, *extra = NULL, *auth, *pod;
    int r;

    memset(&tr, 0, sizeof(tr));
    r = load(p, len, what, &root, err);
    if (r != 0) {
        return r;
    }
    if ((r = member_object(root, "status", what, &status, err)) != 0 ||
        (r = member_object(status, "user", what, &user, err)) != 0 ||
        (r = member_object(user, "extra", what, &extra, err)) != 0 ||
        (r = member_string(status, "error", what, tr.error, sizeof(tr.error), NULL, err)) != 0 ||
        (r = member_string(user, "username", what, tr.username, sizeof(tr.username), NULL, err)) !=
                0) {
        goto out;
    }
    auth = status != NULL ? json_object_get(status, "authenticated") : NULL;
    if (auth != NULL && !json_is_null(auth) && !json_is_boolean(auth)) {
        r = pk_err_set(err, PK_E_INVALID, "%s: `authenticated' is not a boolean", what);
        goto out;
    }
    tr.authenticated = auth != NULL && json_is_true(auth);
    pod = extra != NULL ? json_object_get(extra, PK_KUBE_EXTRA_POD_NAME) : NULL;
    if (pod != NULL && !json_is_null(pod)) {
        json_t *v = json_is_array(pod) && json_array_size(pod) == 1 ? json_array_get(pod, 0) : NULL;
        size_t n = v != NULL && json_is_string(v) ? json_string_length(v) : 0;
        if (n == 0 || n > PK_KUBE_NAME_MAX) {
            r = pk_err_set(err, PK_E_INVALID, "%s: extra `%s' is not one pod name of 1 to %d bytes",
                           what, PK_KUBE_EXTRA_POD_NAME, PK_KUBE_NAME_MAX);
            goto out;
        }
        memcpy(tr.pod_name, json_string_value(v), n);
        tr.pod_name[n] = '\0';
        tr.has_pod_name = true;
    }
    *out = tr;
    r = 0;
out:
    json_decref(root);
    return r;
}

int pk_kube_token_review_request(const uint8_t *token, size_t token_len,
                                 const char *const *audiences, size_t n_audiences,
                                 struct pk_buf *out, struct pk_err *err)
{
    json_t *root = json_object(), *spec = json_object(), *auds = json_array();
    char *text = NULL;
    size_t text_len = 0;
    int r;

    for (size_t i = 0; i < n_audiences; i++) {
        json_array_append_new(auds, json_string(audiences[i]));
    }
    /* The token is sent as it was received; json_stringn escapes anything. */
    json_object_set_new(spec, "token", json_stringn((const char *)token, token_len));
    json_object_set_new(spec, "audiences", auds);
    json_object_set_new(root, "apiVersion", json_string("authentication.k8s.io/v1"));
    json_object_set_new(root, "kind", json_string("TokenReview"));
    json_object_set_new(root, "spec", spec);
    if (json_object_get(spec, "token") == NULL) {
        r = pk_err_set(err, PK_E_INVALID, "token is not valid UTF-8");
        goto out;
    }
    text = json_dumps(root, JSON_COMPACT);
    if (text == NULL) {
        r = pk_err_set(err, PK_E_INVALID, "cannot encode the TokenReview");
        goto out;
    }
    text_len = strlen(text);
    r = pk_buf_append(out, text, text_len);
    if (r != 0) {
        pk_err_set(err, r, "TokenReview request larger than its buffer");
    }
out:
    if (text != NULL) {
        pk_wipe(text, text_len);
        free(text);
    }
    json_decref(root);
    return r;
}

int pk_kube_pod_parse(const uint8_t *p, size_t len, struct pk_kube_pod *out, struct pk_err *err)
{
    static const char what[] = "Pod";
    struct pk_kube_pod *pod = pk_xcalloc(1, sizeof(*pod));
    json_t *root = NULL, *meta = NULL, *spec = NULL, *ann = NULL;
    bool present;
    int r;

    r = load(p, len, what, &root, err);
    if (r != 0) {
        free(pod);
        return r;
    }
    if ((r = member_object(root, "metadata", what, &meta, err)) != 0 ||
        (r = member_object(root, "spec", what, &spec, err)) != 0 ||
        (r = member_object(meta, "annotations", what, &ann, err)) != 0 ||
        (r = member_string(meta, "name", what, pod->name, sizeof(pod->name), &present, err)) != 0 ||
        (r = member_string(meta, "namespace", what, pod->namespace_, sizeof(pod->namespace_), NULL,
                           err)) != 0 ||
        (r = member_string(spec, "serviceAccountName", what, pod->service_account,
                           sizeof(pod->service_account), NULL, err)) != 0 ||
        (r = member_string(ann, "dapr.io/app-id", what, pod->app_id, sizeof(pod->app_id),
                           &pod->has_app_id, err)) != 0 ||
        (r = member_string(ann, "dapr.io/control-plane", what, pod->control_plane,
                           sizeof(pod->control_plane), &pod->has_control_plane, err)) != 0 ||
        (r = member_string(ann, "dapr.io/config", what, pod->config, sizeof(pod->config),
                           &pod->has_config, err)) != 0) {
        goto out;
    }
    if (!present || pod->name[0] == '\0') {
        r = pk_err_set(err, PK_E_INVALID, "%s: metadata.name is missing", what);
        goto out;
    }
    *out = *pod;
out:
    free(pod);
    json_decref(root);
    return r;
}

int pk_kube_configuration_trust_domain(const uint8_t *p, size_t len, char *out, size_t out_len,
                                       bool *present, struct pk_err *err)
{
    static const char what[] = "Configuration";
    json_t *root = NULL, *spec = NULL, *acl = NULL;
    bool have = false;
    int r;

    r = load(p, len, what, &root, err);
    if (r != 0) {
        return r;
    }
    if ((r = member_object(root, "spec", what, &spec, err)) == 0 &&
        (r = member_object(spec, "accessControl", what, &acl, err)) == 0) {
        r = member_string(acl, "trustDomain", what, out, out_len, &have, err);
    }
    if (r == 0) {
        *present = have && out[0] != '\0';
    }
    json_decref(root);
    return r;
}

void pk_kube_status_message(const uint8_t *p, size_t len, char *out, size_t out_len)
{
    json_t *root = NULL;
    struct pk_err err;
    char msg[PK_KUBE_TEXT_MAX + 1];
    size_t n = 0;

    out[0] = '\0';
    if (out_len == 0 || load(p, len, "Status", &root, &err) != 0) {
        return;
    }
    if (member_string(root, "message", "Status", msg, sizeof(msg), NULL, &err) == 0) {
        /* Printable ASCII only: this text ends up in logs and gRPC messages. */
        for (size_t i = 0; msg[i] != '\0' && n + 1 < out_len; i++) {
            unsigned char c = (unsigned char)msg[i];
            out[n++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
        }
        out[n] = '\0';
    }
    json_decref(root);
}

/* Standard base64 with padding, as the API server encodes a Secret's data. wolfCrypt's decoder
 * skips some characters it does not know, so the alphabet is checked here first. */
static bool strict_base64(const char *s, size_t n)
{
    size_t pad = 0;

    if (n % 4 != 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '+' || c == '/';
        if (c == '=' && i >= n - 2) {
            pad++;
        } else if (!alpha || pad > 0) {
            return false;
        }
    }
    return true;
}

int pk_kube_object_data(const uint8_t *p, size_t len, bool base64, const char *key,
                        struct pk_buf *value, bool *found, struct pk_kube_data_object *meta,
                        struct pk_err *err)
{
    const char *what = base64 ? "Secret" : "ConfigMap";
    json_t *root = NULL, *md = NULL, *data = NULL, *v;
    struct pk_kube_data_object m = {0};
    int r;

    pk_buf_reset(value);
    *found = false;
    r = load(p, len, what, &root, err);
    if (r != 0) {
        return r;
    }
    if ((r = member_object(root, "metadata", what, &md, err)) != 0 ||
        (r = member_string(md, "resourceVersion", what, m.resource_version,
                           sizeof(m.resource_version), NULL, err)) != 0 ||
        (r = member_object(root, "data", what, &data, err)) != 0) {
        goto out;
    }
    m.exists = true;
    v = data != NULL ? json_object_get(data, key) : NULL;
    if (v != NULL && !json_is_null(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (s == NULL) {
            r = pk_err_set(err, PK_E_INVALID, "%s: data `%s' is not a string", what, key);
            goto out;
        }
        if (n > 0 && !base64) {
            if (pk_buf_append(value, s, n) != 0) {
                r = pk_err_set(err, PK_E_TOOBIG, "%s: data `%s' is %zu bytes, too large", what, key,
                               n);
                goto out;
            }
            *found = true;
        } else if (n > 0) {
            word32 out_len = (word32)(n / 4 * 3 + 3);
            uint8_t *dst;
            if (n > UINT32_MAX / 2 || pk_buf_reserve(value, out_len, &dst) != 0) {
                r = pk_err_set(err, PK_E_TOOBIG, "%s: data `%s' is %zu bytes, too large", what, key,
                               n);
                goto out;
            }
            if (!strict_base64(s, n) ||
                Base64_Decode((const byte *)s, (word32)n, dst, &out_len) != 0) {
                pk_wipe(dst, n / 4 * 3 + 3);
                r = pk_err_set(err, PK_E_INVALID, "%s: data `%s' is not valid base64", what, key);
                goto out;
            }
            pk_buf_commit(value, out_len);
            *found = out_len > 0;
        }
    }
    if (meta != NULL) {
        *meta = m;
    }
    r = 0;
out:
    json_decref(root);
    return r;
}
