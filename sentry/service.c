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

/* Dapr's common checks cap the app id at 64 characters. */
#define APP_ID_MAX_LEN 64

typedef Dapr__Proto__Sentry__V1__SignCertificateRequest sign_request;
typedef Dapr__Proto__Sentry__V1__SignCertificateResponse sign_response;

enum validator {
    VALIDATOR_UNKNOWN = DAPR__PROTO__SENTRY__V1__SIGN_CERTIFICATE_REQUEST__TOKEN_VALIDATOR__UNKNOWN,
    VALIDATOR_INSECURE =
            DAPR__PROTO__SENTRY__V1__SIGN_CERTIFICATE_REQUEST__TOKEN_VALIDATOR__INSECURE,
    VALIDATOR_JWKS = DAPR__PROTO__SENTRY__V1__SIGN_CERTIFICATE_REQUEST__TOKEN_VALIDATOR__JWKS,
};

struct pk_sentry_service {
    char trust_domain[PK_SPIFFE_MAX_TD_LEN + 1];
    char namespace_[256];
    char id[PK_SPIFFE_MAX_LEN + 1];
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
    int r;

    snprintf(svc->trust_domain, sizeof(svc->trust_domain), "%s", cfg->trust_domain);
    snprintf(svc->namespace_, sizeof(svc->namespace_), "%s", cfg->namespace_);
    r = pk_spiffe_format_workload(svc->id, sizeof(svc->id), cfg->trust_domain, cfg->namespace_,
                                  "dapr-sentry", NULL);
    if (r != 0) {
        free(svc);
        return r;
    }
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

/* Dapr's common request checks, plus picket's stricter character rules. On failure message holds
 * "invalid request: ..." and the result is non-zero. *td_out receives the trust domain. */
static int common_checks(const sign_request *req, const char **td_out, char *message,
                         size_t message_len)
{
    char problems[900] = "";
    struct pk_err err;
    const char *td = req->trust_domain[0] != '\0' ? req->trust_domain : "public";

    if (req->id[0] == '\0') {
        add_problem(problems, sizeof(problems), "parameter app-id cannot be empty");
    } else if (strchr(req->id, '.') != NULL) {
        add_problem(problems, sizeof(problems), "parameter app-id cannot contain dots");
    } else if (strlen(req->id) > APP_ID_MAX_LEN) {
        add_problem(problems, sizeof(problems), "app ID must be 64 characters or less");
    } else if (pk_spiffe_check_segment(req->id, "app id", &err) != 0) {
        add_problem(problems, sizeof(problems), err.msg);
    }
    if (req->certificate_signing_request.len == 0) {
        add_problem(problems, sizeof(problems), "CSR is required");
    }
    if (req->namespace_[0] == '\0') {
        add_problem(problems, sizeof(problems), "namespace is required");
    } else if (pk_spiffe_check_segment(req->namespace_, "namespace", &err) != 0) {
        add_problem(problems, sizeof(problems), err.msg);
    }
    if (pk_spiffe_check_trust_domain(td, &err) != 0) {
        add_problem(problems, sizeof(problems), err.msg);
    }
    if (problems[0] != '\0') {
        snprintf(message, message_len, "invalid request: %s", problems);
        return PK_E_DENIED;
    }
    *td_out = td;
    return 0;
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
static int decode_csr(const sign_request *req, struct pk_pubkey **pub, char *message,
                      size_t message_len)
{
    struct pk_pem_block block = {0};
    struct pk_err err;
    size_t offset = 0;
    int r;

    pk_err_clear(&err);
    r = pk_pem_next(req->certificate_signing_request.data, req->certificate_signing_request.len,
                    &offset, &block, &err);
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

void pk_sentry_service_sign(struct pk_sentry_service *svc, struct pk_slice request, time_t now,
                            int *status, char *message, size_t message_len, struct pk_buf *response)
{
    sign_request *req = NULL;
    struct pk_pubkey *pub = NULL;
    struct pk_sentry_issued issued = {0};
    const char *td = NULL;
    char spiffe_id[PK_SPIFFE_MAX_LEN + 1];
    struct pk_err err;
    int validator;

    svc->received++;
    message[0] = '\0';
    pk_err_clear(&err);

    req = dapr__proto__sentry__v1__sign_certificate_request__unpack(NULL, request.len, request.ptr);
    if (req == NULL) {
        *status = PK_GRPC_INVALID_ARGUMENT;
        snprintf(message, message_len, "malformed SignCertificateRequest");
        goto fail;
    }

    /* 1. The validator: the one asked for, else the default (INSECURE only when no token
     *    validator is configured, as in self-hosted Dapr). */
    validator = (int)req->token_validator;
    if (validator == VALIDATOR_UNKNOWN) {
        validator = svc->jwks == NULL ? VALIDATOR_INSECURE : VALIDATOR_UNKNOWN;
    }
    if (validator == VALIDATOR_UNKNOWN) {
        *status = PK_GRPC_INVALID_ARGUMENT;
        snprintf(message, message_len, "a validator name must be specified in this environment");
        goto fail;
    }
    if (!((validator == VALIDATOR_INSECURE && svc->jwks == NULL) ||
          (validator == VALIDATOR_JWKS && svc->jwks != NULL))) {
        *status = PK_GRPC_INVALID_ARGUMENT;
        snprintf(message, message_len, "the requested validator is not enabled");
        goto fail;
    }

    /* 2. The validator proper; its every failure is PERMISSION_DENIED. */
    if (validator == VALIDATOR_JWKS && req->token[0] == '\0') {
        *status = PK_GRPC_PERMISSION_DENIED;
        snprintf(message, message_len, "the request does not contain a token");
        goto fail;
    }
    if (common_checks(req, &td, message, message_len) != 0) {
        *status = PK_GRPC_PERMISSION_DENIED;
        goto fail;
    }
    if (pk_spiffe_format_workload(spiffe_id, sizeof(spiffe_id), td, req->namespace_, req->id,
                                  &err) != 0) {
        *status = PK_GRPC_PERMISSION_DENIED;
        snprintf(message, message_len, "invalid request: %s", err.msg);
        goto fail;
    }
    if (validator == VALIDATOR_JWKS && pk_jwks_verify(svc->jwks, req->token, strlen(req->token),
                                                      svc->id, spiffe_id, now, &err) != 0) {
        *status = PK_GRPC_PERMISSION_DENIED;
        snprintf(message, message_len, "%s", err.msg);
        goto fail;
    }

    /* 3-5. The CSR contributes its public key, after its signature is checked. */
    if (decode_csr(req, &pub, message, message_len) != 0) {
        *status = PK_GRPC_INVALID_ARGUMENT;
        goto fail;
    }

    /* 7. Sign. */
    if (pk_sentry_issue_workload(svc->creds, pub, spiffe_id, now, svc->ttl_seconds,
                                 svc->skew_seconds, &issued, &err) != 0) {
        PK_LOG_ERR("sign failed spiffe_id=%s error=\"%s\"", spiffe_id, err.msg);
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
    PK_LOG_INFO("signed spiffe_id=%s serial=%s not_after=%lld validator=%s", spiffe_id,
                issued.serial_hex, (long long)issued.not_after,
                validator == VALIDATOR_JWKS ? "jwks" : "insecure");
    goto out;

fail:
    svc->failure++;
    if (pk_log_enabled(PK_LOG_LEVEL_INFO)) {
        char id_text[300], ns_text[300], reason_text[600];
        PK_LOG_INFO("sign refused status=%d app_id=\"%s\" namespace=\"%s\" reason=\"%s\"", *status,
                    pk_log_escape(id_text, sizeof(id_text), req != NULL ? req->id : ""),
                    pk_log_escape(ns_text, sizeof(ns_text), req != NULL ? req->namespace_ : ""),
                    pk_log_escape(reason_text, sizeof(reason_text), message));
    }
out:
    pk_buf_free(&issued.chain_pem);
    pk_pubkey_free(pub);
    if (req != NULL) {
        dapr__proto__sentry__v1__sign_certificate_request__free_unpacked(req, NULL);
    }
}
