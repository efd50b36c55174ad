/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the dapr.proto.sentry.v1.CA/SignCertificate method, without I/O. */
#include "sentry/service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/grpc.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/pem.h"
#include "common/spiffe.h"
#include "sentry.pb-c.h"
#include "sentry/issue.h"
#include "sentry/jwks.h"

typedef Dapr__Proto__Sentry__V1__SignCertificateResponse sign_response;

/* Room for a quoted request field: 64 bytes, each possibly \xNN, and "...". */
#define QUOTE_BUF 300

enum validator {
    VALIDATOR_UNKNOWN = DAPR__PROTO__SENTRY__V1__SIGN_CERTIFICATE_REQUEST__TOKEN_VALIDATOR__UNKNOWN,
    VALIDATOR_INSECURE =
            DAPR__PROTO__SENTRY__V1__SIGN_CERTIFICATE_REQUEST__TOKEN_VALIDATOR__INSECURE,
    VALIDATOR_JWKS = DAPR__PROTO__SENTRY__V1__SIGN_CERTIFICATE_REQUEST__TOKEN_VALIDATOR__JWKS,
    VALIDATOR_KUBERNETES =
            DAPR__PROTO__SENTRY__V1__SIGN_CERTIFICATE_REQUEST__TOKEN_VALIDATOR__KUBERNETES,
};

struct pk_sentry_service {
    char trust_domain[PK_SPIFFE_MAX_TD_LEN + 1];
    char namespace_[PK_SENTRY_NAMESPACE_MAX + 1];
    char id[PK_SPIFFE_MAX_LEN + 1];
    struct pk_sentry_trust_domains allowed_trust_domains;
    bool allow_insecure_control_plane_ids;
    bool kubernetes;
    int64_t ttl_seconds;
    int64_t skew_seconds;
    struct pk_sentry_creds *creds;
    struct pk_jwks *jwks;
    /* Counters are read by the metrics endpoint on the same loop; atomics keep them correct
     * should a reader ever run on another thread. */
    _Atomic uint64_t received, success, failure, servercert_failed, issuer_changed;
};

int pk_sentry_service_new(const struct pk_sentry_service_config *cfg, struct pk_sentry_creds *creds,
                          struct pk_jwks *jwks, struct pk_sentry_service **out)
{
    struct pk_sentry_service *svc = pk_xcalloc(1, sizeof(*svc));
    struct pk_err err;
    int r;

    r = pk_sentry_check_namespace(pk_slice_make(cfg->namespace_, strlen(cfg->namespace_)),
                                  "namespace", &err);
    if (r == 0) {
        r = pk_spiffe_format_workload(svc->id, sizeof(svc->id), cfg->trust_domain, cfg->namespace_,
                                      "dapr-sentry", &err);
    }
    if (r == 0 && cfg->allowed_trust_domains != NULL) {
        svc->allowed_trust_domains = *cfg->allowed_trust_domains;
    } else if (r == 0) {
        r = pk_sentry_trust_domains_add(&svc->allowed_trust_domains, cfg->trust_domain,
                                        "--trust-domain", &err);
        if (r == 0) {
            r = pk_sentry_trust_domains_add(&svc->allowed_trust_domains,
                                            PK_SENTRY_DEFAULT_REQUEST_TRUST_DOMAIN, "default",
                                            &err);
        }
    }
    if (r != 0) {
        free(svc);
        return r;
    }
    snprintf(svc->trust_domain, sizeof(svc->trust_domain), "%s", cfg->trust_domain);
    snprintf(svc->namespace_, sizeof(svc->namespace_), "%s", cfg->namespace_);
    svc->allow_insecure_control_plane_ids = cfg->allow_insecure_control_plane_ids;
    svc->kubernetes = cfg->kubernetes_validator;
    svc->ttl_seconds = cfg->ttl_seconds;
    svc->skew_seconds = cfg->skew_seconds;
    svc->creds = creds;
    svc->jwks = jwks;
    *out = svc;
    return 0;
}

struct pk_sentry_service *pk_sentry_service_free(struct pk_sentry_service *svc)
{
    if (svc != NULL) {
        pk_sentry_creds_free(svc->creds);
        pk_jwks_free(svc->jwks);
        free(svc);
    }
    return NULL;
}

void pk_sentry_service_set_creds(struct pk_sentry_service *svc, struct pk_sentry_creds *creds)
{
    pk_sentry_creds_free(svc->creds);
    svc->creds = creds;
}

const struct pk_sentry_creds *pk_sentry_service_creds(const struct pk_sentry_service *svc)
{
    return svc->creds;
}

const char *pk_sentry_service_id(const struct pk_sentry_service *svc)
{
    return svc->id;
}

const struct pk_sentry_trust_domains *
pk_sentry_service_trust_domains(const struct pk_sentry_service *svc)
{
    return &svc->allowed_trust_domains;
}

void pk_sentry_service_metrics(const struct pk_sentry_service *svc, struct pk_sentry_metrics *out)
{
    out->sign_request_received = svc->received;
    out->sign_success = svc->success;
    out->sign_failure = svc->failure;
    out->servercert_issue_failed = svc->servercert_failed;
    out->issuercert_changed = svc->issuer_changed;
}

void pk_sentry_service_count_servercert_failure(struct pk_sentry_service *svc)
{
    svc->servercert_failed++;
}

void pk_sentry_service_count_issuer_changed(struct pk_sentry_service *svc)
{
    svc->issuer_changed++;
}

/* Append one problem to the list of a failed common check ("\n"-joined, as Dapr does). */
static void add_problem(char *out, size_t out_len, const char *problem)
{
    size_t len = strlen(out);
    size_t room;

    if (len > 0 && len + 1 < out_len) {
        out[len++] = '\n';
    }
    /* A list longer than the buffer is cut; the status code already says what failed. */
    room = out_len - len - 1;
    size_t add = strnlen(problem, room);
    memcpy(out + len, problem, add);
    out[len + add] = '\0';
}

/* Dapr's common request checks with picket's stricter field rules (sentry/request.h), the allowed
 * trust domains among them. On failure message holds "invalid request: ..." with every problem
 * found, and the result is non-zero. *td_out receives the trust domain to sign for. */
static int common_checks(const struct pk_sentry_service *svc, const struct pk_sentry_request *req,
                         bool check_td, struct pk_slice *td_out, char *message, size_t message_len)
{
    char problems[900] = "";
    struct pk_err err;

    if (pk_sentry_check_app_id(req->id, &err) != 0) {
        add_problem(problems, sizeof(problems), err.msg);
    }
    if (req->csr.len == 0) {
        add_problem(problems, sizeof(problems), "CSR is required");
    }
    if (pk_sentry_check_namespace(req->namespace_, "namespace", &err) != 0) {
        add_problem(problems, sizeof(problems), err.msg);
    }
    if (check_td && pk_sentry_check_trust_domain(req->trust_domain, &svc->allowed_trust_domains,
                                                 td_out, &err) != 0) {
        add_problem(problems, sizeof(problems), err.msg);
    }
    if (problems[0] != '\0') {
        snprintf(message, message_len, "invalid request: %s", problems);
        return PK_E_DENIED;
    }
    return 0;
}

/* Whether a validator establishes who the caller is, so that it may be given a control-plane
 * identity. JWKS does: the token's subject must be exactly the SPIFFE ID requested. INSECURE
 * does not. KUBERNETES does for a pod carrying the dapr.io/control-plane annotation in Sentry's
 * namespace (Dapr's rule), which kube_control_plane says. */
static bool validator_authenticates(int validator, bool kube_control_plane)
{
    return validator == VALIDATOR_JWKS || (validator == VALIDATOR_KUBERNETES && kube_control_plane);
}

/* The control-plane rule. 0, or PK_E_DENIED with message saying why and what to do. */
static int control_plane_check(const struct pk_sentry_service *svc,
                               const struct pk_sentry_request *req, int validator,
                               bool kube_control_plane, char *message, size_t message_len)
{
    char id[QUOTE_BUF];

    pk_sentry_quote(id, sizeof(id), req->id);
    switch (pk_sentry_classify_id(req->id, req->namespace_, svc->namespace_)) {
    case PK_SENTRY_ID_WORKLOAD:
        return 0;
    case PK_SENTRY_ID_SENTRY:
        snprintf(message, message_len,
                 "invalid request: app id '%s' is Sentry's own identity, which is never issued "
                 "to a request",
                 id);
        return PK_E_DENIED;
    case PK_SENTRY_ID_LOOKALIKE:
        snprintf(message, message_len,
                 "invalid request: app id '%s' in Sentry's namespace '%s' is a control-plane "
                 "id in another case; control-plane ids are lower case",
                 id, svc->namespace_);
        return PK_E_DENIED;
    case PK_SENTRY_ID_CONTROL_PLANE:
        if (validator_authenticates(validator, kube_control_plane) ||
            (validator == VALIDATOR_INSECURE && svc->allow_insecure_control_plane_ids)) {
            return 0;
        }
        if (validator == VALIDATOR_KUBERNETES) {
            snprintf(message, message_len,
                     "invalid request: app id '%s' in Sentry's namespace '%s' is a control-plane "
                     "identity, which is issued only to a pod annotated dapr.io/control-plane",
                     id, svc->namespace_);
            return PK_E_DENIED;
        }
        snprintf(message, message_len,
                 "invalid request: app id '%s' in Sentry's namespace '%s' is a control-plane "
                 "identity, which the INSECURE validator does not authenticate; use a JWKS token "
                 "for it, or start picket sentry with --allow-insecure-control-plane-ids for a "
                 "self-hosted control plane",
                 id, svc->namespace_);
        return PK_E_DENIED;
    }
    return PK_E_DENIED;
}

/* A slice as a C string, for one the checks above bounded and found free of NUL bytes. Never
 * cut short: a shorter identity than the one checked is what this code exists to prevent. */
static void copy_text(char *out, size_t out_len, struct pk_slice s)
{
    PK_ASSERT(s.len < out_len && memchr(s.ptr, '\0', s.len) == NULL);
    memcpy(out, s.ptr, s.len);
    out[s.len] = '\0';
}

/* Fill the response and serialize it into out. */
static int encode_response(const struct pk_sentry_service *svc,
                           const struct pk_sentry_issued *issued, struct pk_buf *out)
{
    sign_response resp = DAPR__PROTO__SENTRY__V1__SIGN_CERTIFICATE_RESPONSE__INIT;
    Google__Protobuf__Timestamp valid_until = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ProtobufCBinaryData roots;
    uint8_t *dst;
    size_t size;
    int r;

    resp.workload_certificate.data = issued->chain_pem.data;
    resp.workload_certificate.len = issued->chain_pem.len;
    /* One element holding every root, as Dapr 1.12+ sends it. */
    roots.data = svc->creds->roots_pem.data;
    roots.len = svc->creds->roots_pem.len;
    resp.n_trust_chain_certificates = 1;
    resp.trust_chain_certificates = &roots;
    valid_until.seconds = issued->not_after;
    resp.valid_until = &valid_until;

    size = dapr__proto__sentry__v1__sign_certificate_response__get_packed_size(&resp);
    r = pk_buf_reserve(out, size, &dst);
    if (r != 0) {
        return r;
    }
    dapr__proto__sentry__v1__sign_certificate_response__pack(&resp, dst);
    pk_buf_commit(out, size);
    return 0;
}

/* Steps 3 to 5 of Dapr's order: PEM, parse, signature. */
static int decode_csr(const struct pk_sentry_request *req, struct pk_pubkey **pub, char *message,
                      size_t message_len)
{
    struct pk_pem_block block = {0};
    struct pk_err err;
    size_t offset = 0;
    int r;

    pk_err_clear(&err);
    r = pk_pem_next(req->csr.ptr, req->csr.len, &offset, &block, &err);
    if (r != 0 || (strcmp(block.type, "CERTIFICATE REQUEST") != 0 &&
                   strcmp(block.type, "CERTIFICATE") != 0)) {
        snprintf(message, message_len, "invalid certificate signing request");
        r = PK_E_INVALID;
        goto out;
    }
    r = pk_csr_parse_verify(block.der, block.der_len, pub, &err);
    if (r == PK_E_CRYPTO) {
        snprintf(message, message_len, "invalid signature");
    } else if (r != 0) {
        snprintf(message, message_len, "failed to parse certificate signing request: %s", err.msg);
    }
out:
    pk_pem_block_clear(&block);
    return r;
}

static int sign(struct pk_sentry_service *svc, struct pk_slice request, time_t now,
                const struct pk_sentry_kube_outcome *kube, int *status, char *message,
                size_t message_len, struct pk_buf *response)
{
    struct pk_sentry_request req = {0};
    struct pk_pubkey *pub = NULL;
    struct pk_sentry_issued issued = {0};
    struct pk_slice td = {0};
    char td_text[PK_SPIFFE_MAX_TD_LEN + 1];
    char ns_text[PK_SENTRY_NAMESPACE_MAX + 1];
    char id_text[PK_SENTRY_APP_ID_MAX + 1];
    char spiffe_id[PK_SPIFFE_MAX_LEN + 1];
    struct pk_err err;
    int validator;
    int result = 0;

    if (kube == NULL) {
        svc->received++; /* once per call: the second pass of a KUBERNETES call has kube */
    }
    message[0] = '\0';
    pk_err_clear(&err);

    if (pk_sentry_request_decode(request, &req, &err) != 0) {
        *status = PK_GRPC_INVALID_ARGUMENT;
        snprintf(message, message_len, "malformed SignCertificateRequest: %s", err.msg);
        goto fail;
    }

    /* 1. The validator: the one asked for, else the default (INSECURE only when no token
     *    validator is configured, as in self-hosted Dapr). */
    validator = (int)req.token_validator;
    if (validator == VALIDATOR_UNKNOWN) {
        /* Kubernetes: KUBERNETES, as in Dapr's Sentry there; else INSECURE only when no token
         * validator is configured. */
        validator = svc->kubernetes     ? VALIDATOR_KUBERNETES
                    : svc->jwks == NULL ? VALIDATOR_INSECURE
                                        : VALIDATOR_UNKNOWN;
    }
    if (validator == VALIDATOR_UNKNOWN) {
        *status = PK_GRPC_INVALID_ARGUMENT;
        snprintf(message, message_len, "a validator name must be specified in this environment");
        goto fail;
    }
    if (!((validator == VALIDATOR_INSECURE && svc->jwks == NULL && !svc->kubernetes) ||
          (validator == VALIDATOR_JWKS && svc->jwks != NULL) ||
          (validator == VALIDATOR_KUBERNETES && svc->kubernetes))) {
        *status = PK_GRPC_INVALID_ARGUMENT;
        snprintf(message, message_len, "the requested validator is not enabled");
        goto fail;
    }

    /* 2. The validator proper; its every failure is PERMISSION_DENIED. */
    *status = PK_GRPC_PERMISSION_DENIED;
    if (validator == VALIDATOR_JWKS && req.token.len == 0) {
        snprintf(message, message_len, "the request does not contain a token");
        goto fail;
    }
    if (common_checks(svc, &req, validator != VALIDATOR_KUBERNETES, &td, message, message_len) !=
        0) {
        goto fail;
    }
    if (validator == VALIDATOR_KUBERNETES) {
        /* The trust domain is the validator's answer; the request's is ignored, as in Dapr. */
        if (kube == NULL) {
            result = PK_E_AGAIN;
            goto out;
        }
        if (!kube->allowed) {
            *status = kube->unavailable ? PK_GRPC_UNAVAILABLE : PK_GRPC_PERMISSION_DENIED;
            snprintf(message, message_len, "%s", kube->message);
            goto fail;
        }
        td = pk_slice_make(kube->trust_domain, strlen(kube->trust_domain));
        if (!pk_sentry_trust_domains_contains(&svc->allowed_trust_domains, td)) {
            char td_q[QUOTE_BUF];
            snprintf(message, message_len,
                     "invalid request: trust domain '%s' of the pod's Configuration is not one "
                     "this Sentry signs for (--allowed-trust-domains)",
                     pk_sentry_quote(td_q, sizeof(td_q), td));
            goto fail;
        }
    }
    if (control_plane_check(svc, &req, validator, kube != NULL && kube->control_plane, message,
                            message_len) != 0) {
        goto fail;
    }
    copy_text(td_text, sizeof(td_text), td);
    copy_text(ns_text, sizeof(ns_text), req.namespace_);
    copy_text(id_text, sizeof(id_text), req.id);
    if (pk_spiffe_format_workload(spiffe_id, sizeof(spiffe_id), td_text, ns_text, id_text, &err) !=
        0) {
        snprintf(message, message_len, "invalid request: %s", err.msg);
        goto fail;
    }
    if (validator == VALIDATOR_JWKS &&
        pk_jwks_verify(svc->jwks, (const char *)req.token.ptr, req.token.len, svc->id, spiffe_id,
                       now, &err) != 0) {
        snprintf(message, message_len, "%s", err.msg);
        goto fail;
    }

    /* 3-5. The CSR contributes its public key, after its signature is checked. */
    if (decode_csr(&req, &pub, message, message_len) != 0) {
        *status = PK_GRPC_INVALID_ARGUMENT;
        goto fail;
    }

    /* 7. Sign. */
    if (pk_sentry_issue_workload(svc->creds, pub, spiffe_id, now, svc->ttl_seconds,
                                 svc->skew_seconds, &issued, &err) != 0) {
        PK_LOG_EVENT(PK_LOG_LEVEL_ERROR, "sign failed", PK_LF_STR("spiffe_id", spiffe_id),
                     PK_LF_STR("error", err.msg));
        *status = PK_GRPC_INTERNAL;
        snprintf(message, message_len, "failed to sign certificate");
        goto fail;
    }
    if (encode_response(svc, &issued, response) != 0) {
        *status = PK_GRPC_INTERNAL;
        snprintf(message, message_len, "failed to encode certificate chain");
        goto fail;
    }
    svc->success++;
    *status = PK_GRPC_OK;
    PK_LOG_EVENT(PK_LOG_LEVEL_INFO, "signed", PK_LF_STR("spiffe_id", spiffe_id),
                 PK_LF_STR("serial", issued.serial_hex),
                 PK_LF_INT("not_after", (long long)issued.not_after),
                 PK_LF_STR("validator", validator == VALIDATOR_JWKS         ? "jwks"
                                        : validator == VALIDATOR_KUBERNETES ? "kubernetes"
                                                                            : "insecure"));
    goto out;

fail:
    svc->failure++;
    if (pk_log_enabled(PK_LOG_LEVEL_INFO)) {
        char id_q[QUOTE_BUF], ns_q[QUOTE_BUF], td_q[QUOTE_BUF], reason_text[600];
        PK_LOG_INFO("sign refused status=%d app_id=\"%s\" namespace=\"%s\" trust_domain=\"%s\" "
                    "reason=\"%s\"",
                    *status, pk_sentry_quote(id_q, sizeof(id_q), req.id),
                    pk_sentry_quote(ns_q, sizeof(ns_q), req.namespace_),
                    pk_sentry_quote(td_q, sizeof(td_q), req.trust_domain),
                    pk_log_escape(reason_text, sizeof(reason_text), message));
    }
out:
    pk_buf_free(&issued.chain_pem);
    pk_pubkey_free(pub);
    return result;
}

int pk_sentry_service_sign(struct pk_sentry_service *svc, struct pk_slice request, time_t now,
                           int *status, char *message, size_t message_len, struct pk_buf *response)
{
    return sign(svc, request, now, NULL, status, message, message_len, response);
}

void pk_sentry_service_sign_kube(struct pk_sentry_service *svc, struct pk_slice request, time_t now,
                                 const struct pk_sentry_kube_outcome *outcome, int *status,
                                 char *message, size_t message_len, struct pk_buf *response)
{
    int r = sign(svc, request, now, outcome, status, message, message_len, response);
    PK_ASSERT(r == 0);
}
