/* SPDX-License-Identifier: Apache-2.0 */
/* picket: a unary gRPC server over HTTP/2 over TLS on a libev loop (used by `picket sentry`).
 *
 * Each accepted connection takes a reference on the server's current TLS context, runs the
 * handshake (ALPN "h2" is required when the context is configured with it: a client that offers
 * no ALPN is refused), then serves any number of unary calls through common/h2. Handlers run
 * synchronously on the loop thread and fill a reply; they must not block for long.
 *
 * Bounds: at most max_connections open connections (one more is accepted and closed at once, so
 * the kernel backlog never fills with clients waiting for nothing), a handshake timer, an idle
 * timer (no I/O progress), messages capped at max_message, the HTTP/2 limits of common/h2.h.
 * When accept fails for lack of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), the
 * listener pauses for a short back-off instead of spinning on a readable socket it cannot drain.
 *
 * Single-threaded: every function must be called on the loop's thread. */
#ifndef PK_NET_GRPC_SERVER_H
#define PK_NET_GRPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/grpc.h"
#include "common/h2.h"
#include "common/tls.h"

struct ev_loop;
struct pk_rpc_server;

/* Names one call for a reply given later (pk_rpc_server_answer). A plain value: it stays safe to
 * use after the call or its connection is gone (the answer is then dropped), because connection
 * ids are never reused and HTTP/2 never reuses a stream id on a connection. */
struct pk_rpc_call {
    uint64_t conn_id;
    int32_t stream_id;
};

/* One call as a handler sees it; everything is borrowed and valid only during the handler. */
struct pk_rpc_request {
    const char *path;                    /* "/package.Service/Method" */
    struct pk_slice message;             /* the serialized request message */
    const char *peer;                    /* "ip:port" of the client ("[v6]:port" for IPv6) */
    const char *authority;               /* :authority, "" when absent */
    uint64_t timeout_ns;                 /* the client's grpc-timeout, 0 = none */
    const struct pk_h2_header *metadata; /* request headers other than pseudo-headers */
    size_t n_metadata;
    struct pk_rpc_call call; /* for a deferred reply */
};

/* The value of the first request header called name (lower case), or NULL. Borrowed. */
const char *pk_rpc_request_metadata(const struct pk_rpc_request *req, const char *name);

/* What a handler fills in. The server presets status PK_GRPC_UNKNOWN, an empty message and an
 * empty body capped at max_message. body is sent only with PK_GRPC_OK; message (NUL-terminated,
 * may be empty) is sent as grpc-message. */
struct pk_rpc_reply {
    int status;
    char message[512];
    struct pk_buf body;
    /* Set by a handler that answers later with pk_rpc_server_answer(req->call, ...), e.g. after
     * asking another service on the same loop; status, message and body are then ignored. The
     * call stays open until answered or reset by the client; the connection's idle timer keeps
     * running, so the handler must answer (or give up) well within it. */
    bool defer;
};

/* A method handler. ctx is what was given to pk_rpc_server_add_method. Must not free or stop the
 * server. */
typedef void (*pk_rpc_unary_fn)(void *ctx, const struct pk_rpc_request *req,
                                struct pk_rpc_reply *reply);

struct pk_rpc_server_config {
    const char *listen_address; /* numeric address or host name; "" or NULL = all interfaces,
                                   IPv6 dual-stack (IPv4 only when IPv6 is unavailable) */
    uint16_t port;              /* 0 = any free port (see pk_rpc_server_port) */
    size_t max_message;         /* request and response cap; 0 = 4 MiB (gRPC's default) */
    double handshake_timeout;   /* seconds; 0 = 10 */
    double idle_timeout;        /* seconds without I/O on a connection; 0 = 300 */
    unsigned max_connections;   /* 0 = 256 */
};

struct pk_rpc_server_stats {
    uint64_t accepted;         /* TCP connections accepted and served */
    uint64_t rejected;         /* accepted and closed at once (connection cap, no TLS context) */
    uint64_t handshake_failed; /* TLS handshakes that failed, timed out or missed ALPN */
    uint64_t calls;            /* handler invocations */
    uint64_t calls_ok;         /* of which answered PK_GRPC_OK */
    uint64_t accept_backoffs;  /* times accept paused for lack of resources */
    unsigned active;           /* connections open now */
};

/* Make a server (copies cfg). No socket yet. 0 or PK_E_INVALID. */
int pk_rpc_server_new(struct ev_loop *loop, const struct pk_rpc_server_config *cfg,
                      struct pk_rpc_server **out, struct pk_err *err) PK_MUST_USE;

/* Register a handler for an exact path such as "/dapr.proto.sentry.v1.CA/SignCertificate"
 * (copied). fn and ctx are borrowed for the server's life. 0, PK_E_INVALID (path not
 * "/service/method") or PK_E_MISMATCH (path already registered). */
int pk_rpc_server_add_method(struct pk_rpc_server *s, const char *path, pk_rpc_unary_fn fn,
                             void *ctx) PK_MUST_USE;

/* Use tls (a server context; the server takes its own reference, the caller keeps theirs) for
 * new handshakes. Connections already open keep the context they started with, so a rotation
 * drops nothing. NULL makes new connections be refused. */
void pk_rpc_server_set_tls(struct pk_rpc_server *s, struct pk_tls_ctx *tls);

/* Bind and listen (may block briefly to resolve a host name), then accept on the loop. 0, or
 * -errno / PK_E_INVALID with err naming the address. */
int pk_rpc_server_start(struct pk_rpc_server *s, struct pk_err *err) PK_MUST_USE;

/* The bound port (useful after port 0), or 0 before start. */
uint16_t pk_rpc_server_port(const struct pk_rpc_server *s);

/* Stop accepting and close the listening socket. Open connections get a GOAWAY: calls already
 * started finish, then the connections end. */
void pk_rpc_server_stop(struct pk_rpc_server *s);

/* Answer a call whose handler set reply->defer: status, message (NUL-terminated, may be empty)
 * and body (borrowed; sent only with PK_GRPC_OK) as a handler would have filled them. 0, or
 * PK_E_NOTFOUND when the call is gone (client reset, connection closed, already answered): the
 * answer is dropped. Never from inside a handler for the same call. */
int pk_rpc_server_answer(struct pk_rpc_server *s, struct pk_rpc_call call, int status,
                         const char *message, struct pk_slice body) PK_MUST_USE;

/* Counters, copied into out. */
void pk_rpc_server_get_stats(const struct pk_rpc_server *s, struct pk_rpc_server_stats *out);

/* Close every connection at once (no close_notify), the listener, and free the server. Not from
 * inside a handler. NULL is fine. Returns NULL. */
struct pk_rpc_server *pk_rpc_server_free(struct pk_rpc_server *s);

#endif
