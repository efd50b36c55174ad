/* SPDX-License-Identifier: Apache-2.0 */
/* picket: an asynchronous client for the Kubernetes API server on a libev loop.
 *
 * One request per HTTPS connection (HTTP/1.1, "Connection: close"), JSON in and out. TLS 1.2
 * (ECDHE, AEAD) or 1.3, verified by wolfSSL itself rather than picket's SPIFFE policy: the
 * server's certificate (RSA, ECDSA or Ed25519) must chain to the configured CA (the service
 * account's ca.crt in a pod) and carry the configured server name (kubernetes.default.svc by
 * default, which every API server certificate lists); nothing is sent before that holds.
 * Authentication is the service-account token, read from its file for every request so a rotated
 * token is picked up, or a client certificate; both may be configured. Each request has one
 * deadline covering connect, handshake, send and receive, and the answer is bounded (head and
 * body). The token never appears in a log or an error.
 *
 * Single-threaded: every function on the loop's thread. The server's address is resolved once,
 * by pk_kube_client_new (which may block briefly for a host name). */
#ifndef PK_KUBE_CLIENT_H
#define PK_KUBE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "common/err.h"

struct ev_loop;
struct pk_kube_client;
struct pk_kube_request;

#define PK_KUBE_DEFAULT_TOKEN_PATH  "/var/run/secrets/kubernetes.io/serviceaccount/token"
#define PK_KUBE_DEFAULT_CA_PATH     "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
#define PK_KUBE_DEFAULT_SERVER_NAME "kubernetes.default.svc"

struct pk_kube_client_config {
    const char *host;             /* KUBERNETES_SERVICE_HOST: IP address or host name */
    const char *port;             /* KUBERNETES_SERVICE_PORT */
    const char *ca_path;          /* PEM roots for the server's certificate; required */
    const char *token_path;       /* bearer token file; NULL or "" = none */
    const char *server_name;      /* name the server's certificate must carry; NULL = default */
    const char *client_cert_path; /* optional client certificate chain (PEM) ... */
    const char *client_key_path;  /* ... and its key (PEM, P-256 or Ed25519) */
    double timeout;               /* seconds per request; 0 = 10 */
    size_t max_response;          /* body cap; 0 = PK_KUBE_MAX_RESPONSE (objects.h) */
};

/* The outcome of one request, valid during the callback only. code is 0 when an HTTP response
 * arrived (any status), else PK_E_TIMEOUT, PK_E_TLS, PK_E_PROTO, PK_E_TOOBIG, -errno, ... with
 * error saying what happened. */
struct pk_kube_result {
    int code;
    int http_status;
    struct pk_slice body;
    const char *error;
};

typedef void (*pk_kube_done_fn)(void *ctx, const struct pk_kube_result *res);

/* Make a client (cfg borrowed; copied). Reads the CA (and the client certificate) now.
 * 0, or PK_E_INVALID / -errno with err naming the file or address. */
int pk_kube_client_new(struct ev_loop *loop, const struct pk_kube_client_config *cfg,
                       struct pk_kube_client **out, struct pk_err *err) PK_MUST_USE;

/* Stops and frees every request still running (their callbacks are not called). NULL is fine. */
struct pk_kube_client *pk_kube_client_free(struct pk_kube_client *c);

/* Start method (e.g. "GET") on path (an absolute path, escaped by the caller) with an optional
 * JSON body (borrowed, copied). fn(ctx, result) is called exactly once, never from inside this
 * function, unless the request is cancelled first. *out (may be NULL) receives a handle for
 * pk_kube_request_cancel, valid until fn is called. 0, or PK_E_INVALID (nothing started). */
int pk_kube_client_request(struct pk_kube_client *c, const char *method, const char *path,
                           struct pk_slice body, pk_kube_done_fn fn, void *ctx,
                           struct pk_kube_request **out, struct pk_err *err) PK_MUST_USE;

/* Stop a request; its callback will not be called. Not from inside its own callback. */
void pk_kube_request_cancel(struct pk_kube_request *r);

/* The loop the client runs on. */
struct ev_loop *pk_kube_client_loop(const struct pk_kube_client *c);

/* "host:port" as configured, for messages. */
const char *pk_kube_client_address(const struct pk_kube_client *c);

#endif
