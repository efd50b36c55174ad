/* SPDX-License-Identifier: Apache-2.0 */
/* picket: a small HTTP/1.1 server on libev for /healthz, /readyz, /metrics and /status.
 *
 * Plain TCP (or a unix socket), GET and HEAD only, one request per connection: the server reads
 * the request head (common/http1.h), calls the handler registered for the exact path, writes the
 * answer with `Connection: close`, shuts down its sending side and closes once the peer has gone
 * (or after a short linger). Requests for unknown paths get 404; malformed ones get the parser's
 * 400/405/414/431/505.
 *
 * Bounds: a request head is at most PK_HTTP1_MAX_REQUEST bytes; a reply body at most
 * opts.max_body bytes (a larger one becomes a 500); every connection has one timer, so a client
 * that sends or reads too slowly is dropped after opts.timeout seconds (a partial request is
 * answered with 408 first); at most opts.max_conns connections are open at once, and a
 * connection beyond that is answered with a fixed 503 and closed at once. No call blocks: the
 * sockets are non-blocking, writes use MSG_NOSIGNAL, and hosts must be numeric (or "localhost")
 * so binding never waits for DNS.
 *
 * Everything runs on the thread of the given loop; the functions here must be called on it. */
#ifndef PK_NET_HTTP_SERVER_H
#define PK_NET_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/http1.h"

struct ev_loop;
struct pk_http_server;

#define PK_HTTP_SERVER_DEFAULT_TIMEOUT   5.0
#define PK_HTTP_SERVER_DEFAULT_MAX_CONNS 64
#define PK_HTTP_SERVER_DEFAULT_MAX_BODY  (1024u * 1024u)
#define PK_HTTP_SERVER_MAX_ROUTES        16

struct pk_http_server_opts {
    /* TCP: a numeric IPv4 or IPv6 address (brackets allowed), "localhost" (127.0.0.1), or NULL
     * or "" for all interfaces (IPv6 dual-stack where available). port 0 picks a free port;
     * pk_http_server_port() tells which. */
    const char *host;
    uint16_t port;
    /* When set, listen on this unix socket path instead (host and port are ignored). A stale
     * socket file left by a dead process is replaced; a live one is EADDRINUSE. */
    const char *unix_path;
    unsigned unix_mode; /* permission bits for the socket file; 0 means 0660 */
    double timeout;     /* seconds per phase (reading, writing); 0 means 5 */
    unsigned max_conns; /* 0 means PK_HTTP_SERVER_DEFAULT_MAX_CONNS */
    size_t max_body;    /* 0 means PK_HTTP_SERVER_DEFAULT_MAX_BODY */
};

/* What a handler fills in. The server presets status 200, content_type NULL (text/plain;
 * charset=utf-8) and an empty body capped at opts.max_body. */
struct pk_http_reply {
    int status;
    const char *content_type; /* borrowed; must stay valid until the handler returns */
    struct pk_buf body;       /* owned by the server */
};

/* A route handler. req (borrowed, valid during the call) is a GET or HEAD for the route's path;
 * for HEAD the server sends the body's length but not the body. Return 0 when reply is filled;
 * any other value makes the answer a 500. Called on the loop thread; must not block and must not
 * free the server. */
typedef int pk_http_handler_fn(void *ctx, const struct pk_http1_request *req,
                               struct pk_http_reply *reply);

/* Create a server on loop (borrowed; must outlive the server), bind and listen according to opts
 * (borrowed; copied) and start accepting once the loop runs. 0, PK_E_INVALID (bad host, path
 * too long), or -errno from socket/bind/listen (e.g. -EADDRINUSE); err names the address. */
int pk_http_server_new(struct ev_loop *loop, const struct pk_http_server_opts *opts,
                       struct pk_http_server **out, struct pk_err *err) PK_MUST_USE;

/* Register fn(ctx, ...) for requests whose path (the target without its query) equals path
 * exactly. path is copied; ctx is borrowed and must outlive the server. 0, PK_E_INVALID (path
 * does not start with '/', or is already routed) or PK_E_TOOBIG (PK_HTTP_SERVER_MAX_ROUTES). */
int pk_http_server_route(struct pk_http_server *srv, const char *path, pk_http_handler_fn *fn,
                         void *ctx) PK_MUST_USE;

/* The bound TCP port (useful after port 0); 0 for a unix socket. */
uint16_t pk_http_server_port(const struct pk_http_server *srv);

/* Connections open right now. */
unsigned pk_http_server_conn_count(const struct pk_http_server *srv);

/* Close every connection and the listening socket (and remove the unix socket file this server
 * created), then free. NULL is fine. Returns NULL. */
struct pk_http_server *pk_http_server_free(struct pk_http_server *srv);

#endif
