/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the client side of dapr.proto.sentry.v1.CA/SignCertificate, as daprd 1.14+ makes the
 * call (SENTRY-PROTOCOL.md §2-§3), with stricter checks of what comes back.
 *
 * Each request gets a fresh ECDSA P-256 key that lives only in memory, a CSR signed by it, and a
 * fresh TLS connection on which Sentry must present spiffe://<control-plane trust domain>/ns/
 * <control-plane namespace>/dapr-sentry chaining to the trust anchors. No request byte (and so no
 * token) is sent before that check. A response is used only when the leaf carries exactly the
 * identity asked for, chains to the anchors now, is not a CA, and matches our key. */
#ifndef PK_AGENT_SENTRY_CLIENT_H
#define PK_AGENT_SENTRY_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/addrset.h"
#include "common/buf.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/key.h"
#include "common/spiffe.h"
#include "common/x509.h"

struct pk_sentry_client_config {
    const char *address;                    /* host:port of Sentry */
    const char *control_plane_trust_domain; /* expected in Sentry's ID (daprd: localhost) */
    const char *control_plane_namespace;    /* expected in Sentry's ID (daprd: default) */
    const char *app_id;                     /* request id */
    const char *namespace_;                 /* request namespace */
    const char *trust_domain;               /* request trust_domain; NULL or "" sends none, and
                                             * Sentry then uses "public" */
    const char *token_file;                 /* re-read per request; NULL: no token */
    const char *token_setting;              /* where token_file was set, named by its errors
                                             * (a string literal; NULL: "token file") */
    const uint8_t *token;                   /* or the token itself (borrowed, secret; used
                                             * only while pk_sentry_fetch_start runs) */
    size_t token_len;
    int token_validator;        /* the SignCertificateRequest enum value to send */
    const uint8_t *anchors_pem; /* trust anchors (borrowed) */
    size_t anchors_pem_len;
    double timeout;                   /* per attempt, seconds */
    uint32_t mark;                    /* SO_MARK of the connection to Sentry; 0 = none */
    struct pk_addrset_slot *resolved; /* address is a DNS name: its answers (borrowed); NULL =
                                       * getaddrinfo, which blocks */
};

/* A workload identity obtained from Sentry and checked. */
struct pk_svid {
    struct pk_key *key;        /* owned; never leaves memory */
    struct pk_certs chain;     /* leaf first, then the issuer chain as sent */
    struct pk_buf chain_pem;   /* the same as PEM */
    struct pk_buf anchors_pem; /* trust_chain_certificates as Sentry sent them (informative) */
    char spiffe_id[PK_SPIFFE_MAX_LEN + 1];
    char serial_hex[80];
    time_t not_before;
    time_t not_after;
};

struct pk_svid *pk_svid_free(struct pk_svid *svid);

/* The SPIFFE ID this configuration asks for: spiffe://<td or public>/ns/<ns>/<app id>. */
int pk_sentry_client_expected_id(const struct pk_sentry_client_config *cfg, char *out,
                                 size_t out_len, struct pk_err *err) PK_MUST_USE;

/* Sentry's expected SPIFFE ID from the control-plane trust domain and namespace. */
int pk_sentry_client_server_id(const struct pk_sentry_client_config *cfg, char *out, size_t out_len,
                               struct pk_err *err) PK_MUST_USE;

/* Make a fresh key and the serialized SignCertificateRequest for it. *key is the caller's. */
int pk_sentry_request_build(const struct pk_sentry_client_config *cfg, struct pk_key **key,
                            struct pk_buf *request, struct pk_err *err) PK_MUST_USE;

/* Check a serialized SignCertificateResponse against the configuration and the anchors, and
 * build the identity. key is taken (freed on failure). now is the wall-clock time. */
int pk_sentry_response_check(const struct pk_sentry_client_config *cfg, struct pk_key *key,
                             struct pk_slice response, const struct pk_certs *anchors, time_t now,
                             struct pk_svid **out, struct pk_err *err) PK_MUST_USE;

/* The rpc verify_peer hook: ctx is the pk_sentry_client_config. Checks that Sentry's leaf has
 * exactly one URI SAN equal to the expected Sentry ID; on a mismatch the message names the ID
 * presented, the ID expected and the flag that fixes it. (The chain itself is verified by TLS.) */
int pk_sentry_client_verify_server(void *ctx, struct pk_slice leaf_der, struct pk_err *err);

/* The outcome of an asynchronous fetch, handed to its callback (on the loop). On success
 * result is 0 and svid is the caller's; otherwise svid is NULL, grpc_status is the call's
 * status (PK_GRPC_OK when the call worked but the response failed a check, with
 * response_rejected set) and err says what went wrong. */
struct pk_sentry_fetch_result {
    int result;
    int grpc_status;
    bool response_rejected;
    struct pk_svid *svid;
    const struct pk_err *err;
};
typedef void (*pk_sentry_fetch_fn)(void *ctx, struct pk_sentry_fetch_result *res);
struct pk_sentry_fetch;
struct ev_loop;

/* Whether the token file can be read and is not empty, as each request reads it; err names what
 * (where it was set: "DAPR_SENTRY_TOKEN_FILE", "[sentry] token_file") and file. */
int pk_sentry_client_check_token(const char *file, const char *what, struct pk_err *err)
        PK_MUST_USE;

/* Start one request on loop: fresh key, CSR, call, checks against anchors_pem. cfg is copied
 * (strings and anchors), so the caller may change its own afterwards. Errors before the call
 * starts (bad anchors, unreadable token file) are returned at once and done is never called;
 * otherwise done is called exactly once, never from inside this function, unless the fetch is
 * cancelled. Blocks only in getaddrinfo for a host name. */
int pk_sentry_fetch_start(struct ev_loop *loop, const struct pk_sentry_client_config *cfg,
                          pk_sentry_fetch_fn done, void *ctx, struct pk_sentry_fetch **out,
                          struct pk_err *err) PK_MUST_USE;

/* Abandon a fetch before its callback. NULL is fine. */
void pk_sentry_fetch_cancel(struct pk_sentry_fetch *f);

/* One complete, blocking request: connect, verify Sentry, send, check the response. */
int pk_sentry_fetch_sync(const struct pk_sentry_client_config *cfg, struct pk_svid **out,
                         struct pk_err *err) PK_MUST_USE;

#endif
