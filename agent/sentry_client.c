/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the client side of dapr.proto.sentry.v1.CA/SignCertificate. */
#include "agent/sentry_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/csr.h"
#include "common/fsutil.h"
#include "common/grpc.h"
#include "common/mem.h"
#include "common/pem.h"
#include "common/tls.h"
#include "net/grpc_client.h"
#include "sentry.pb-c.h"

#define SIGN_METHOD "/dapr.proto.sentry.v1.CA/SignCertificate"
/* Bounds on what we accept from Sentry: a chain of a few certificates and a root bundle. */
#define MAX_RESPONSE (1024u * 1024u)
#define MAX_TOKEN    (64u * 1024u)

struct pk_svid *pk_svid_free(struct pk_svid *svid)
{
    if (svid == NULL) {
        return NULL;
    }
    pk_key_free(svid->key);
    pk_certs_clear(&svid->chain);
    pk_buf_free(&svid->chain_pem);
    pk_buf_free(&svid->anchors_pem);
    free(svid);
    return NULL;
}

static const char *request_td(const struct pk_sentry_client_config *cfg)
{
    return (cfg->trust_domain != NULL && cfg->trust_domain[0] != '\0') ? cfg->trust_domain
                                                                       : "public";
}

int pk_sentry_client_expected_id(const struct pk_sentry_client_config *cfg, char *out,
                                 size_t out_len, struct pk_err *err)
{
    return pk_spiffe_format_workload(out, out_len, request_td(cfg), cfg->namespace_, cfg->app_id,
                                     err);
}

int pk_sentry_client_server_id(const struct pk_sentry_client_config *cfg, char *out, size_t out_len,
                               struct pk_err *err)
{
    return pk_spiffe_format_workload(out, out_len, cfg->control_plane_trust_domain,
                                     cfg->control_plane_namespace, "dapr-sentry", err);
}

int pk_sentry_client_verify_server(void *ctx, struct pk_slice leaf_der, struct pk_err *err)
{
    const struct pk_sentry_client_config *cfg = ctx;
    char expected[PK_SPIFFE_MAX_LEN + 1];
    struct pk_spiffe_id got;
    struct pk_cert *leaf = NULL;
    int r;

    r = pk_sentry_client_server_id(cfg, expected, sizeof(expected), err);
    if (r != 0) {
        return r;
    }
    r = pk_cert_parse_der(leaf_der.ptr, leaf_der.len, "Sentry's certificate", &leaf, err);
    if (r != 0) {
        return r;
    }
    if (pk_cert_uri_count(leaf) != 1) {
        r = pk_err_set(err, PK_E_DENIED,
                       "Sentry at %s presented a certificate with %zu URI SANs; exactly one "
                       "SPIFFE ID (%s) is required",
                       cfg->address, pk_cert_uri_count(leaf), expected);
        goto out;
    }
    if (strcmp(pk_cert_uri(leaf, 0), expected) == 0) {
        r = 0;
        goto out;
    }
    /* Name what was presented, what was expected, and the flag that reconciles them: the Dapr
     * guide's `--trust-domain cluster.local` recipe lands here with daprd's defaults. */
    if (pk_spiffe_parse(pk_cert_uri(leaf, 0), strlen(pk_cert_uri(leaf, 0)), &got, NULL) == 0 &&
        got.is_workload && strcmp(got.app_id, "dapr-sentry") == 0) {
        if (strcmp(got.trust_domain, cfg->control_plane_trust_domain) != 0) {
            r = pk_err_set(err, PK_E_DENIED,
                           "Sentry at %s presented the identity %s, but %s was expected: Sentry "
                           "runs with --trust-domain %s, so start picket with "
                           "--control-plane-trust-domain %s (or set "
                           "DAPR_CONTROLPLANE_TRUST_DOMAIN=%s)",
                           cfg->address, got.uri, expected, got.trust_domain, got.trust_domain,
                           got.trust_domain);
        } else {
            r = pk_err_set(err, PK_E_DENIED,
                           "Sentry at %s presented the identity %s, but %s was expected: Sentry "
                           "runs in namespace %s, so start picket with "
                           "--control-plane-namespace %s (or set "
                           "DAPR_CONTROLPLANE_NAMESPACE=%s)",
                           cfg->address, got.uri, expected, got.namespace_, got.namespace_,
                           got.namespace_);
        }
    } else {
        char shown[300];
        snprintf(shown, sizeof(shown), "%.256s", pk_cert_uri(leaf, 0));
        r = pk_err_set(err, PK_E_DENIED,
                       "the server at %s presented the identity %s, which is not a Sentry "
                       "identity; %s was expected",
                       cfg->address, shown, expected);
    }
out:
    pk_cert_free(leaf);
    return r;
}

/* The token in file (what: where it was set, for messages), without trailing blanks, into token
 * (a secret buffer). */
static int read_token(const char *file, const char *what, struct pk_buf *token, struct pk_err *err)
{
    int r;

    what = what != NULL ? what : "token file";
    r = pk_fs_read_file(file, MAX_TOKEN, token, err);
    if (r != 0) {
        return pk_err_prefix(err, r, "Sentry token (%s)", what);
    }
    while (token->len > 0 &&
           (token->data[token->len - 1] == '\n' || token->data[token->len - 1] == '\r' ||
            token->data[token->len - 1] == ' ')) {
        pk_buf_truncate(token, token->len - 1);
    }
    if (token->len == 0) {
        return pk_err_set(err, PK_E_INVALID, "Sentry token (%s): %s: the file is empty", what,
                          file);
    }
    return 0;
}

int pk_sentry_client_check_token(const char *file, const char *what, struct pk_err *err)
{
    struct pk_buf token;
    int r;

    pk_buf_init_secret(&token, MAX_TOKEN);
    r = read_token(file, what, &token, err);
    pk_buf_free(&token);
    return r;
}

int pk_sentry_request_build(const struct pk_sentry_client_config *cfg, struct pk_key **key_out,
                            struct pk_buf *request, struct pk_err *err)
{
    Dapr__Proto__Sentry__V1__SignCertificateRequest req =
            DAPR__PROTO__SENTRY__V1__SIGN_CERTIFICATE_REQUEST__INIT;
    struct pk_key *key = NULL;
    struct pk_buf csr, token;
    uint8_t *dst;
    size_t size;
    int r;

    pk_buf_init(&csr, 16 * 1024);
    pk_buf_init_secret(&token, MAX_TOKEN);
    if (cfg->token != NULL) {
        r = pk_buf_append(&token, cfg->token, cfg->token_len);
        if (r != 0) {
            pk_err_set(err, r, "the Sentry token is longer than %u bytes", MAX_TOKEN);
            goto out;
        }
    } else if (cfg->token_file != NULL) {
        /* Re-read on every request: projected tokens rotate underneath us. */
        r = read_token(cfg->token_file, cfg->token_setting, &token, err);
        if (r != 0) {
            goto out;
        }
    }
    r = pk_key_generate(PK_KEY_P256, &key, err);
    if (r != 0) {
        goto out;
    }
    /* CN and DNS SAN = app id: ignored by Sentry 1.12+, required by older ones. */
    r = pk_csr_create(key, cfg->app_id, &csr, err);
    if (r != 0) {
        goto out;
    }
    req.id = (char *)cfg->app_id;
    req.namespace_ = (char *)cfg->namespace_;
    req.trust_domain = (char *)(cfg->trust_domain != NULL ? cfg->trust_domain : "");
    req.token = token.data != NULL ? (char *)token.data : (char *)"";
    req.token_validator = cfg->token_validator;
    req.certificate_signing_request.data = csr.data;
    req.certificate_signing_request.len = csr.len;
    size = dapr__proto__sentry__v1__sign_certificate_request__get_packed_size(&req);
    r = pk_buf_reserve(request, size, &dst);
    if (r != 0) {
        pk_err_set(err, r, "the SignCertificateRequest is too large");
        goto out;
    }
    dapr__proto__sentry__v1__sign_certificate_request__pack(&req, dst);
    pk_buf_commit(request, size);
    *key_out = key;
    key = NULL;
out:
    pk_key_free(key);
    pk_buf_free(&csr);
    pk_buf_free(&token);
    return r;
}

int pk_sentry_response_check(const struct pk_sentry_client_config *cfg, struct pk_key *key,
                             struct pk_slice response, const struct pk_certs *anchors, time_t now,
                             struct pk_svid **out, struct pk_err *err)
{
    Dapr__Proto__Sentry__V1__SignCertificateResponse *resp = NULL;
    struct pk_svid *svid = pk_xcalloc(1, sizeof(*svid));
    struct pk_certs intermediates = {0};
    const struct pk_cert *leaf;
    int r;

    svid->key = key;
    pk_buf_init(&svid->chain_pem, MAX_RESPONSE);
    pk_buf_init(&svid->anchors_pem, MAX_RESPONSE);
    r = pk_sentry_client_expected_id(cfg, svid->spiffe_id, sizeof(svid->spiffe_id), err);
    if (r != 0) {
        goto out;
    }
    resp = dapr__proto__sentry__v1__sign_certificate_response__unpack(NULL, response.len,
                                                                      response.ptr);
    if (resp == NULL) {
        r = pk_err_set(err, PK_E_PROTO, "Sentry's SignCertificateResponse does not decode");
        goto out;
    }
    r = pk_certs_parse_pem(resp->workload_certificate.data, resp->workload_certificate.len,
                           "workload_certificate", &svid->chain, err);
    if (r != 0) {
        goto out;
    }
    leaf = svid->chain.v[0];
    if (pk_cert_uri_count(leaf) != 1 || strcmp(pk_cert_uri(leaf, 0), svid->spiffe_id) != 0) {
        r = pk_err_set(err, PK_E_MISMATCH,
                       "Sentry returned a certificate for %s (%zu URI SANs) instead of the "
                       "requested %s",
                       pk_cert_uri_count(leaf) > 0 ? pk_cert_uri(leaf, 0) : "no identity",
                       pk_cert_uri_count(leaf), svid->spiffe_id);
        goto out;
    }
    if (pk_cert_is_ca(leaf) ||
        (pk_cert_key_usage(leaf) & (PK_KU_KEY_CERT_SIGN | PK_KU_CRL_SIGN)) != 0) {
        r = pk_err_set(err, PK_E_INVALID, "Sentry returned a CA certificate as the workload leaf");
        goto out;
    }
    if (!pk_cert_matches_key(leaf, key)) {
        r = pk_err_set(err, PK_E_MISMATCH,
                       "Sentry returned a certificate for a different public key than our CSR's");
        goto out;
    }
    if (pk_cert_not_after(leaf) <= now) {
        r = pk_err_set(err, PK_E_EXPIRED, "Sentry returned a certificate that has expired");
        goto out;
    }
    for (size_t i = 1; i < svid->chain.n; i++) {
        r = pk_certs_push_copy(&intermediates, svid->chain.v[i]);
        if (r != 0) {
            goto out;
        }
    }
    r = pk_x509_verify_chain(leaf, &intermediates, anchors, err);
    if (r != 0) {
        pk_err_prefix(err, r,
                      "Sentry's certificate for %s does not verify against the trust "
                      "anchors",
                      svid->spiffe_id);
        goto out;
    }
    r = pk_certs_to_pem(&svid->chain, &svid->chain_pem);
    for (size_t i = 0; r == 0 && i < resp->n_trust_chain_certificates; i++) {
        r = pk_buf_append(&svid->anchors_pem, resp->trust_chain_certificates[i].data,
                          resp->trust_chain_certificates[i].len);
    }
    if (r != 0) {
        pk_err_set(err, r, "Sentry's response is too large");
        goto out;
    }
    svid->not_before = pk_cert_not_before(leaf);
    svid->not_after = pk_cert_not_after(leaf);
    pk_cert_serial_hex(leaf, svid->serial_hex, sizeof(svid->serial_hex));
    *out = svid;
    svid = NULL;
    r = 0;
out:
    if (resp != NULL) {
        dapr__proto__sentry__v1__sign_certificate_response__free_unpacked(resp, NULL);
    }
    pk_certs_clear(&intermediates);
    pk_svid_free(svid); /* frees key too when the check failed */
    return r;
}

int pk_sentry_fetch_sync(const struct pk_sentry_client_config *cfg, struct pk_svid **out,
                         struct pk_err *err)
{
    struct pk_tls_config tcfg = {
            .server = false,
            .anchors_pem = cfg->anchors_pem,
            .anchors_pem_len = cfg->anchors_pem_len,
            .alpn = "h2",
            .allow_tls12 = true,
    };
    struct pk_tls_ctx *tls = NULL;
    struct pk_certs anchors = {0};
    struct pk_key *key = NULL;
    struct pk_buf request;
    struct pk_rpc_owned_result result = {0};
    int r;

    pk_buf_init(&request, 256 * 1024);
    r = pk_certs_parse_anchors_pem(cfg->anchors_pem, cfg->anchors_pem_len, "trust anchors",
                                   &anchors, err);
    if (r != 0) {
        goto out;
    }
    r = pk_tls_ctx_new(&tcfg, &tls, err);
    if (r != 0) {
        goto out;
    }
    r = pk_sentry_request_build(cfg, &key, &request, err);
    if (r != 0) {
        goto out;
    }
    {
        struct pk_rpc_call_opts copts = {
                .address = cfg->address,
                .tls = tls,
                .path = SIGN_METHOD,
                .request = pk_buf_slice(&request),
                .timeout = cfg->timeout,
                .max_response = MAX_RESPONSE,
                .verify_peer = pk_sentry_client_verify_server,
                .verify_ctx = (void *)cfg,
                .mark = cfg->mark,
        };
        r = pk_rpc_call_sync(&copts, &result, err);
        if (r != 0) {
            goto out;
        }
    }
    if (result.status != PK_GRPC_OK) {
        r = pk_err_set(err, PK_E_DENIED, "Sentry at %s answered %s: %s", cfg->address,
                       pk_grpc_status_name(result.status), result.message);
        goto out;
    }
    r = pk_sentry_response_check(cfg, key, pk_buf_slice(&result.response), &anchors, time(NULL),
                                 out, err);
    key = NULL; /* taken by the check */
out:
    pk_rpc_owned_result_clear(&result);
    pk_key_free(key);
    pk_buf_free(&request);
    pk_certs_clear(&anchors);
    pk_tls_ctx_unref(tls);
    return r;
}

struct pk_sentry_fetch {
    struct pk_sentry_client_config cfg; /* strings below are owned copies */
    char *strings[7];
    struct pk_buf anchors_pem;
    struct pk_certs anchors;
    struct pk_tls_ctx *tls;
    struct pk_key *key;
    struct pk_rpc_call *call;
    pk_sentry_fetch_fn done;
    void *ctx;
};

static const char *own(struct pk_sentry_fetch *f, size_t i, const char *s)
{
    f->strings[i] = s != NULL ? pk_xstrdup(s) : NULL;
    return f->strings[i];
}

static void fetch_free(struct pk_sentry_fetch *f)
{
    for (size_t i = 0; i < PK_ARRAY_LEN(f->strings); i++) {
        free(f->strings[i]);
    }
    pk_buf_free(&f->anchors_pem);
    pk_certs_clear(&f->anchors);
    pk_tls_ctx_unref(f->tls);
    pk_key_free(f->key);
    free(f);
}

static void fetch_done(void *ctx, const struct pk_rpc_result *res)
{
    struct pk_sentry_fetch *f = ctx;
    struct pk_sentry_fetch_result out = {.grpc_status = res->status};
    struct pk_err err;

    pk_err_clear(&err);
    f->call = NULL;
    if (res->status != PK_GRPC_OK) {
        out.result = pk_err_set(&err, PK_E_DENIED, "Sentry at %s answered %s: %s", f->cfg.address,
                                pk_grpc_status_name(res->status), res->message);
    } else {
        out.result = pk_sentry_response_check(&f->cfg, f->key, res->response, &f->anchors,
                                              time(NULL), &out.svid, &err);
        f->key = NULL; /* taken by the check */
        out.response_rejected = out.result != 0;
    }
    out.err = &err;
    f->done(f->ctx, &out);
    fetch_free(f);
}

int pk_sentry_fetch_start(struct ev_loop *loop, const struct pk_sentry_client_config *cfg,
                          pk_sentry_fetch_fn done, void *ctx, struct pk_sentry_fetch **out,
                          struct pk_err *err)
{
    struct pk_sentry_fetch *f = pk_xcalloc(1, sizeof(*f));
    struct pk_buf request;
    int r;

    pk_buf_init_secret(&request, 256 * 1024); /* it carries the token */
    pk_buf_init(&f->anchors_pem, MAX_RESPONSE);
    f->done = done;
    f->ctx = ctx;
    f->cfg = *cfg;
    f->cfg.address = own(f, 0, cfg->address);
    f->cfg.control_plane_trust_domain = own(f, 1, cfg->control_plane_trust_domain);
    f->cfg.control_plane_namespace = own(f, 2, cfg->control_plane_namespace);
    f->cfg.app_id = own(f, 3, cfg->app_id);
    f->cfg.namespace_ = own(f, 4, cfg->namespace_);
    f->cfg.trust_domain = own(f, 5, cfg->trust_domain);
    f->cfg.token_file = own(f, 6, cfg->token_file);
    r = pk_buf_append(&f->anchors_pem, cfg->anchors_pem, cfg->anchors_pem_len);
    if (r != 0) {
        r = pk_err_set(err, r, "trust anchors: more than %u bytes", MAX_RESPONSE);
        goto fail;
    }
    f->cfg.anchors_pem = f->anchors_pem.data;
    f->cfg.anchors_pem_len = f->anchors_pem.len;
    r = pk_certs_parse_anchors_pem(f->anchors_pem.data, f->anchors_pem.len, "trust anchors",
                                   &f->anchors, err);
    if (r != 0) {
        goto fail;
    }
    {
        struct pk_tls_config tcfg = {
                .server = false,
                .anchors_pem = f->anchors_pem.data,
                .anchors_pem_len = f->anchors_pem.len,
                .alpn = "h2",
                .allow_tls12 = true,
        };
        r = pk_tls_ctx_new(&tcfg, &f->tls, err);
        if (r != 0) {
            goto fail;
        }
    }
    r = pk_sentry_request_build(&f->cfg, &f->key, &request, err);
    /* The token was the caller's, for this call only. */
    f->cfg.token = NULL;
    f->cfg.token_len = 0;
    if (r != 0) {
        goto fail;
    }
    {
        struct pk_rpc_call_opts copts = {
                .address = f->cfg.address,
                .tls = f->tls,
                .path = SIGN_METHOD,
                .request = pk_buf_slice(&request),
                .timeout = f->cfg.timeout > 0 ? f->cfg.timeout : 10.0,
                .max_response = MAX_RESPONSE,
                .verify_peer = pk_sentry_client_verify_server,
                .verify_ctx = &f->cfg,
                .mark = f->cfg.mark,
                .resolved = f->cfg.resolved,
        };
        r = pk_rpc_call_start(loop, &copts, fetch_done, f, &f->call, err);
        if (r != 0) {
            goto fail;
        }
    }
    pk_buf_free(&request);
    if (out != NULL) {
        *out = f;
    }
    return 0;
fail:
    pk_buf_free(&request);
    fetch_free(f);
    return r;
}

void pk_sentry_fetch_cancel(struct pk_sentry_fetch *f)
{
    if (f == NULL) {
        return;
    }
    pk_rpc_call_cancel(f->call);
    fetch_free(f);
}
