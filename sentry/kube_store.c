/* SPDX-License-Identifier: Apache-2.0 */
/* picket: Sentry's issuer credentials in the dapr-trust-bundle Secret and ConfigMap. */
#include "sentry/kube_store.h"

#include <ev.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>

#include "common/log.h"
#include "common/mem.h"
#include "kube/client.h"
#include "kube/objects.h"

#define MAX_OBJECT (2u * 1024u * 1024u)

/* One API call run to completion on the client's loop. */
struct sync_call {
    bool done;
    int code;
    int http_status;
    struct pk_buf body; /* secret: a Secret holds the issuer key */
    char error[600];
};

static void sync_done(void *ctx, const struct pk_kube_result *res)
{
    struct sync_call *call = ctx;

    call->done = true;
    call->code = res->code;
    call->http_status = res->http_status;
    snprintf(call->error, sizeof(call->error), "%s", res->error);
    if (res->code == 0 && pk_buf_append(&call->body, res->body.ptr, res->body.len) != 0) {
        call->code = PK_E_TOOBIG;
        snprintf(call->error, sizeof(call->error), "answer larger than %u bytes", MAX_OBJECT);
    }
}

/* Run method on path; 0 only for an HTTP 200 answer, whose body is in call->body. */
static int sync_request(struct pk_kube_client *client, const char *method, const char *path,
                        struct pk_slice body, struct sync_call *call, struct pk_err *err)
{
    struct ev_loop *loop = pk_kube_client_loop(client);
    char detail[300];
    int r;

    memset(call, 0, sizeof(*call));
    pk_buf_init_secret(&call->body, MAX_OBJECT);
    r = pk_kube_client_request(client, method, path, body, sync_done, call, NULL, err);
    if (r != 0) {
        return r;
    }
    while (!call->done) {
        ev_run(loop, EVRUN_ONCE);
    }
    if (call->code != 0) {
        return pk_err_set(err, call->code, "%s %s: %s", method, path, call->error);
    }
    if (call->http_status != 200) {
        pk_kube_status_message(call->body.data, call->body.len, detail, sizeof(detail));
        return pk_err_set(err, PK_E_DENIED, "%s %s: HTTP %d%s%s", method, path, call->http_status,
                          detail[0] != '\0' ? ": " : "", detail);
    }
    return 0;
}

/* The object in call->body with data[key] set to value (base64 for a Secret), as JSON text for
 * an update. The text holds the key: a secret buffer. */
static int set_data(struct sync_call *call, bool base64, const char *const *keys,
                    const struct pk_buf *const *values, size_t n, struct pk_buf *out,
                    const char *what, struct pk_err *err)
{
    json_t *root =
            json_loadb((const char *)call->body.data, call->body.len, JSON_REJECT_DUPLICATES, NULL);
    json_t *data;
    char *text = NULL;
    int r = 0;

    if (!json_is_object(root)) {
        r = pk_err_set(err, PK_E_INVALID, "%s: not a JSON object", what);
        goto out;
    }
    data = json_object_get(root, "data");
    if (data == NULL || json_is_null(data)) {
        data = json_object();
        json_object_set_new(root, "data", data);
    } else if (!json_is_object(data)) {
        r = pk_err_set(err, PK_E_INVALID, "%s: data is not an object", what);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct pk_buf *v = values[i];
        if (base64) {
            word32 len = (word32)(v->len / 3 * 4 + 8);
            char *enc = pk_xmalloc(len);
            if (Base64_Encode_NoNl(v->data, (word32)v->len, (byte *)enc, &len) != 0) {
                free(enc);
                r = pk_err_set(err, PK_E_INVALID, "%s: cannot encode %s", what, keys[i]);
                goto out;
            }
            json_object_set_new(data, keys[i], json_stringn(enc, len));
            pk_wipe(enc, len);
            free(enc);
        } else {
            json_object_set_new(data, keys[i], json_stringn((const char *)v->data, v->len));
        }
    }
    text = json_dumps(root, JSON_COMPACT);
    if (text == NULL || pk_buf_append_str(out, text) != 0) {
        r = pk_err_set(err, PK_E_TOOBIG, "%s: cannot encode the update", what);
    }
out:
    if (text != NULL) {
        pk_wipe(text, strlen(text));
        free(text);
    }
    json_decref(root);
    return r;
}

static int get_value(const struct sync_call *call, bool base64, const char *key,
                     struct pk_buf *value, bool *found, const char *what, struct pk_err *err)
{
    int r = pk_kube_object_data(call->body.data, call->body.len, base64, key, value, found, NULL,
                                err);
    if (r != 0) {
        pk_err_prefix(err, r, "%s", what);
    }
    return r;
}

int pk_kube_store_load_or_generate(struct pk_kube_client *client,
                                   const struct pk_kube_store_names *names,
                                   const struct pk_sentry_creds_gen *gen,
                                   struct pk_sentry_creds **out, bool *generated,
                                   struct pk_err *err)
{
    struct sync_call secret = {0}, cm = {0}, put = {0};
    struct pk_sentry_creds *creds = NULL;
    struct pk_buf ca, cert, key, cm_ca, update;
    struct pk_sentry_creds_paths labels;
    char secret_path[400], cm_path[400], what_secret[200], what_cm[200];
    bool have_ca = false, have_cert = false, have_key = false, have_cm_ca = false;
    int r;

    pk_buf_init(&ca, PK_SENTRY_CREDS_MAX_FILE);
    pk_buf_init(&cert, PK_SENTRY_CREDS_MAX_FILE);
    pk_buf_init_secret(&key, PK_SENTRY_CREDS_MAX_FILE);
    pk_buf_init(&cm_ca, PK_SENTRY_CREDS_MAX_FILE);
    pk_buf_init_secret(&update, 2 * MAX_OBJECT);
    snprintf(secret_path, sizeof(secret_path), "/api/v1/namespaces/%s/secrets/%s", names->ns,
             PK_KUBE_TRUST_BUNDLE);
    snprintf(cm_path, sizeof(cm_path), "/api/v1/namespaces/%s/configmaps/%s", names->ns,
             PK_KUBE_TRUST_BUNDLE);
    snprintf(what_secret, sizeof(what_secret), "Secret %s/%s", names->ns, PK_KUBE_TRUST_BUNDLE);
    snprintf(what_cm, sizeof(what_cm), "ConfigMap %s/%s", names->ns, PK_KUBE_TRUST_BUNDLE);
    /* Messages name the Secret's keys where files would be named. */
    snprintf(labels.ca, sizeof(labels.ca), "%s key %s", what_secret, names->ca);
    snprintf(labels.issuer_cert, sizeof(labels.issuer_cert), "%s key %s", what_secret, names->cert);
    snprintf(labels.issuer_key, sizeof(labels.issuer_key), "%s key %s", what_secret, names->key);

    if ((r = sync_request(client, "GET", secret_path, pk_slice_make("", 0), &secret, err)) != 0 ||
        (r = get_value(&secret, true, names->ca, &ca, &have_ca, what_secret, err)) != 0 ||
        (r = get_value(&secret, true, names->cert, &cert, &have_cert, what_secret, err)) != 0 ||
        (r = get_value(&secret, true, names->key, &key, &have_key, what_secret, err)) != 0 ||
        (r = sync_request(client, "GET", cm_path, pk_slice_make("", 0), &cm, err)) != 0 ||
        (r = get_value(&cm, false, names->ca, &cm_ca, &have_cm_ca, what_cm, err)) != 0) {
        goto out;
    }
    if (have_ca && have_cert && have_key && have_cm_ca && cm_ca.len == ca.len &&
        memcmp(cm_ca.data, ca.data, ca.len) == 0) {
        r = pk_sentry_creds_parse(&labels, pk_buf_slice(&ca), pk_buf_slice(&cert),
                                  pk_buf_slice(&key), &creds, err);
        if (r != 0) {
            pk_err_prefix(err, r, "the credentials in %s failed validation", what_secret);
            goto out;
        }
        *generated = false;
        goto done;
    }
    if (have_ca || have_cert || have_key) {
        PK_LOG_WARN("%s is incomplete or its ca.crt differs from %s's: generating a new root "
                    "and issuer and replacing them",
                    what_secret, what_cm);
    }
    pk_buf_reset(&ca);
    pk_buf_reset(&cert);
    pk_buf_reset(&key);
    r = pk_sentry_creds_generate_pem(gen, &ca, &cert, &key, err);
    if (r != 0) {
        goto out;
    }
    r = pk_sentry_creds_parse(&labels, pk_buf_slice(&ca), pk_buf_slice(&cert), pk_buf_slice(&key),
                              &creds, err);
    if (r != 0) {
        pk_err_prefix(err, r, "the generated credentials failed validation");
        goto out;
    }
    {
        const char *keys[] = {names->ca, names->cert, names->key};
        const struct pk_buf *values[] = {&ca, &cert, &key};
        r = set_data(&secret, true, keys, values, 3, &update, what_secret, err);
        if (r == 0) {
            r = sync_request(client, "PUT", secret_path, pk_buf_slice(&update), &put, err);
            pk_buf_free(&put.body);
        }
    }
    if (r == 0) {
        const char *keys[] = {names->ca};
        const struct pk_buf *values[] = {&ca};
        pk_buf_reset(&update);
        r = set_data(&cm, false, keys, values, 1, &update, what_cm, err);
        if (r == 0) {
            r = sync_request(client, "PUT", cm_path, pk_buf_slice(&update), &put, err);
            pk_buf_free(&put.body);
        }
    }
    if (r != 0) {
        pk_err_prefix(err, r, "storing the generated credentials");
        goto out;
    }
    *generated = true;
done:
    *out = creds;
    creds = NULL;
out:
    pk_sentry_creds_free(creds);
    pk_buf_free(&secret.body);
    pk_buf_free(&cm.body);
    pk_buf_free(&ca);
    pk_buf_free(&cert);
    pk_buf_free(&key);
    pk_buf_free(&cm_ca);
    pk_buf_free(&update);
    return r;
}
