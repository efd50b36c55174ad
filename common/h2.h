/* SPDX-License-Identifier: Apache-2.0 */
/* picket: sans-I/O HTTP/2 sessions (nghttp2) that carry unary gRPC calls, server and client.
 *
 * A session never touches a socket. The transport hands received bytes to *_recv() and asks
 * *_send() for bytes to transmit, which are appended to a capped pk_buf; what does not fit stays
 * queued inside the session until the next *_send(), so the transport's buffer cap is the
 * backpressure. nghttp2 does all HTTP/2 and HPACK work (frames, flow control, SETTINGS, PING,
 * GOAWAY, RST_STREAM, header validation per RFC 9113 §8); this module adds the gRPC rules of
 * PROTOCOL-HTTP2.md on top.
 *
 * Limits against a hostile peer: SETTINGS_MAX_CONCURRENT_STREAMS and SETTINGS_MAX_HEADER_LIST_SIZE
 * are advertised and enforced (a header block over the limit resets its stream), messages are
 * capped by the gRPC deframer before any body byte is buffered, the bytes buffered across all
 * streams of a server session are capped, queued SETTINGS/PING acknowledgements are capped
 * (nghttp2_option_set_max_outbound_ack) as are SETTINGS entries per frame, and, where the nghttp2
 * library provides them (upstream 1.60+/1.61+, Debian 12's backports), the stream reset rate
 * (CVE-2023-44487) and the number of CONTINUATION frames (CVE-2024-28182).
 *
 * Not thread-safe: one session belongs to one connection on one loop. */
#ifndef PK_H2_H
#define PK_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "compiler.h"
#include "err.h"

/* One request or response header, NUL-terminated, name in lower case (HTTP/2 requires it). */
struct pk_h2_header {
    const char *name;
    const char *value;
};

/* ---- server ------------------------------------------------------------------------------- */

struct pk_h2_server;

/* What a handler sees of one call. Everything is borrowed and valid only during the call. */
struct pk_h2_request {
    const char *path;                   /* e.g. "/dapr.proto.sentry.v1.CA/SignCertificate" */
    const char *authority;              /* :authority, "" when absent */
    struct pk_slice message;            /* the single request message, deframed */
    uint64_t timeout_ns;                /* from grpc-timeout; 0 = none sent */
    const struct pk_h2_header *headers; /* every non-pseudo request header, in order */
    size_t n_headers;
    int32_t stream_id; /* names the call to pk_h2_server_answer when the reply is deferred */
};

/* What a handler fills in. body is initialised empty with the session's max_message as cap and
 * holds the serialized response message; it is sent only when status is PK_GRPC_OK (otherwise
 * the reply is a trailers-only response). message (NUL-terminated) becomes grpc-message,
 * percent-encoded; leave it empty for none. */
struct pk_h2_reply {
    int status;
    char message[512];
    struct pk_buf body;
    /* Set by a handler that answers later through pk_h2_server_answer (status, message and body
     * are then ignored). The stream stays open, unanswered, until then or until the client
     * resets it. */
    bool defer;
};

struct pk_h2_server_config {
    size_t max_message;              /* request and response message cap, bytes; > 0 */
    size_t max_header_list;          /* RFC 7541 §4.1 size (name + value + 32 each); 0 = 16 KiB */
    uint32_t max_concurrent_streams; /* 0 = 32 */
    size_t max_buffered; /* request bytes buffered by all streams; 0 = 4 x max_message */
    /* Called when a request's headers are complete (before its body is read). Return a non-NULL
     * token for a known path, NULL for an unknown one (answered UNIMPLEMENTED). path is borrowed.
     */
    const void *(*route)(void *ctx, const char *path);
    /* Called when the request message is complete, with route's token. Must fill reply
     * synchronously; must not free the session. */
    void (*handle)(void *ctx, const void *method, const struct pk_h2_request *req,
                   struct pk_h2_reply *reply);
    void *ctx; /* borrowed, passed to route and handle */
};

/* Make a server session (borrows cfg; copies what it needs) and queue our SETTINGS. 0,
 * PK_E_INVALID for a bad config. */
int pk_h2_server_new(const struct pk_h2_server_config *cfg, struct pk_h2_server **out,
                     struct pk_err *err) PK_MUST_USE;

/* Free the session and every stream. NULL is fine. Returns NULL. Not from inside route/handle. */
struct pk_h2_server *pk_h2_server_free(struct pk_h2_server *s);

/* Process received bytes (borrows p). Calls route/handle as requests complete. Returns 0, or
 * PK_E_PROTO when the peer broke HTTP/2 badly enough that the connection must end (a GOAWAY is
 * usually queued: flush pk_h2_server_send output, then close). err gets nghttp2's reason. */
int pk_h2_server_recv(struct pk_h2_server *s, const uint8_t *p, size_t len, struct pk_err *err)
        PK_MUST_USE;

/* Append queued output to out, as much as its cap allows. 0, or PK_E_PROTO on an nghttp2 failure
 * (the connection must end). */
int pk_h2_server_send(struct pk_h2_server *s, struct pk_buf *out) PK_MUST_USE;

/* True while the session wants to read more / has output queued. When both are false the
 * connection is finished (after a GOAWAY exchange or a fatal error). */
bool pk_h2_server_want_read(const struct pk_h2_server *s);
bool pk_h2_server_want_write(const struct pk_h2_server *s);

/* True when no stream is open: the connection may be closed for idleness. */
bool pk_h2_server_idle(const struct pk_h2_server *s);

/* Queue a graceful GOAWAY (NO_ERROR): streams already started finish, new ones are refused. */
void pk_h2_server_shutdown(struct pk_h2_server *s);

/* Answer a call whose handler deferred its reply: the call is named by the stream_id its request
 * carried. body (borrowed) is sent only with PK_GRPC_OK; message (may be empty) becomes
 * grpc-message. 0, or PK_E_NOTFOUND when that stream is gone (the client reset it or the
 * connection is ending) or was already answered: nothing is sent then. The caller flushes
 * pk_h2_server_send output afterwards. */
int pk_h2_server_answer(struct pk_h2_server *s, int32_t stream_id, int status, const char *message,
                        struct pk_slice body) PK_MUST_USE;

/* Calls answered so far (any status) and of those, answered with PK_GRPC_OK. */
uint64_t pk_h2_server_calls(const struct pk_h2_server *s);
uint64_t pk_h2_server_calls_ok(const struct pk_h2_server *s);

/* ---- client ------------------------------------------------------------------------------- */

struct pk_h2_client;

/* One unary call. All pointers are borrowed during pk_h2_client_new, which copies them. */
struct pk_h2_call {
    const char *authority;  /* :authority, e.g. "localhost:50001" */
    const char *path;       /* "/package.Service/Method" */
    const char *user_agent; /* NULL = "picket/<version>" */
    uint64_t timeout_ns;    /* sent as grpc-timeout; 0 = no header */
    /* NULL-terminated list of name, value pairs (may be NULL): lower-case names of
     * [a-z0-9-_.], not starting with "grpc-" and not one of the headers set here; values
     * printable ASCII. */
    const char *const *metadata;
    struct pk_slice request; /* the serialized request message */
    size_t max_response;     /* response message cap, bytes; > 0 */
    size_t max_header_list;  /* cap on response header and trailer blocks; 0 = 16 KiB */
};

/* The outcome of a call. message is "" or text (decoded grpc-message or our own reason);
 * response is the single response message (empty unless status is PK_GRPC_OK). Borrowed from
 * the client session. */
struct pk_h2_result {
    int status;
    const char *message;
    struct pk_slice response;
};

/* Make a client session with the call queued (connection preface, SETTINGS, HEADERS, DATA with
 * END_STREAM). 0, or PK_E_INVALID for bad call options (err names the field). */
int pk_h2_client_new(const struct pk_h2_call *call, struct pk_h2_client **out, struct pk_err *err)
        PK_MUST_USE;

/* NULL is fine. Returns NULL. */
struct pk_h2_client *pk_h2_client_free(struct pk_h2_client *c);

/* Process received bytes (borrows p). 0, or PK_E_PROTO when the server broke HTTP/2 (the call is
 * then done with INTERNAL). Bytes after the call is done are ignored. */
int pk_h2_client_recv(struct pk_h2_client *c, const uint8_t *p, size_t len) PK_MUST_USE;

/* Append queued output to out, as much as its cap allows. 0 or PK_E_PROTO. */
int pk_h2_client_send(struct pk_h2_client *c, struct pk_buf *out) PK_MUST_USE;

/* True while there is output queued. */
bool pk_h2_client_want_write(const struct pk_h2_client *c);

/* True once the call has a final result (response complete, stream reset, GOAWAY refused it,
 * protocol error, or pk_h2_client_abort). */
bool pk_h2_client_done(const struct pk_h2_client *c);

/* The result; only meaningful when pk_h2_client_done(). Borrowed from c. */
const struct pk_h2_result *pk_h2_client_result(const struct pk_h2_client *c);

/* End the call from outside (transport closed, deadline): the result becomes status with the
 * formatted message, unless the call is already done. */
void pk_h2_client_abort(struct pk_h2_client *c, int status, const char *fmt, ...) PK_PRINTF(3, 4);

#endif
