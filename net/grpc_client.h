/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unary gRPC calls over HTTP/2 over TLS on a libev loop (the agent's Sentry client).
 *
 * Every call opens a fresh connection, as daprd does: resolve the address (getaddrinfo, which
 * blocks), connect to each resolved address in turn without blocking, handshake TLS with SNI set
 * to the host part of the address (none for IP literals) and ALPN from the context (the server
 * must select it), hand the server's leaf certificate to the caller's verify_peer hook, and only
 * then send the request. The whole call, connect and handshake included, is bounded by
 * opts.timeout; the remaining time is also sent as grpc-timeout.
 *
 * Results follow gRPC's conventions: UNAVAILABLE for resolve, connect, TLS and verify failures
 * (the verify hook's text becomes the message), DEADLINE_EXCEEDED when the deadline passes,
 * otherwise the server's grpc-status, or the status common/h2 derives from HTTP. After `done`
 * the connection is closed with close_notify in the background.
 *
 * Single-threaded: call these on the loop's thread. */
#ifndef PK_NET_GRPC_CLIENT_H
#define PK_NET_GRPC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "common/addrset.h"
#include "common/buf.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/grpc.h"
#include "common/tls.h"

struct ev_loop;
struct pk_rpc_call;

struct pk_rpc_call_opts {
    const char *address;     /* "host:port" or "[v6]:port" */
    const char *authority;   /* :authority; NULL = address */
    struct pk_tls_ctx *tls;  /* a client context (borrowed; the call takes its own reference) */
    const char *path;        /* "/package.Service/Method" */
    struct pk_slice request; /* serialized request message (copied) */
    double timeout;          /* whole-call deadline in seconds; > 0 */
    size_t max_response;     /* response message cap; 0 = 4 MiB */
    /* NULL-terminated name, value pairs sent as request metadata (copied), e.g.
     * {"x-retry-attempty", "2", NULL}. May be NULL. See common/h2.h for the allowed names. */
    const char *const *metadata;
    /* Called on the loop after the TLS handshake and before any request byte is sent, with the
     * DER of the server's leaf certificate (borrowed, valid during the call). Return 0 to go on;
     * non-zero aborts the call with UNAVAILABLE and err's text as the message. May be NULL (no
     * check beyond the context's chain verification). Must not cancel the call. */
    int (*verify_peer)(void *ctx, struct pk_slice leaf_der, struct pk_err *err);
    void *verify_ctx;
    /* SO_MARK for the connection (so a transparent-mode firewall lets picket's own traffic
     * pass); 0 = none. A mark that cannot be set fails the attempt like a refused connect. */
    uint32_t mark;
    /* For a host that is a DNS name: the resolver's answers (net/resolver), used instead of a
     * blocking getaddrinfo; the call fails with UNAVAILABLE while the slot is still empty. NULL:
     * getaddrinfo (for one-shot commands, not for a server's loop). */
    struct pk_addrset_slot *resolved;
};

/* The outcome handed to `done`; everything is borrowed and valid only during `done`. */
struct pk_rpc_result {
    int status;               /* PK_GRPC_* */
    const char *message;      /* never NULL; "" when there is nothing to say */
    struct pk_slice response; /* the response message when status is PK_GRPC_OK */
};

/* Called exactly once per started call (unless cancelled first), always from the loop, never from
 * inside pk_rpc_call_start. The call handle is invalid once done returns. */
typedef void (*pk_rpc_done_fn)(void *ctx, const struct pk_rpc_result *res);

/* Start a call. On 0, done will be called (or the call cancelled); *out (may be NULL) receives a
 * handle valid until done is called. Errors in the options are returned at once (PK_E_INVALID,
 * with err naming the option) and done is then never called. Blocks in getaddrinfo for a DNS
 * name unless opts.resolved is given. */
int pk_rpc_call_start(struct ev_loop *loop, const struct pk_rpc_call_opts *opts,
                      pk_rpc_done_fn done, void *ctx, struct pk_rpc_call **out, struct pk_err *err)
        PK_MUST_USE;

/* Abandon a call before its done: the connection is dropped, done is not called, the handle is
 * freed. Not from inside verify_peer or done. NULL is fine. */
void pk_rpc_call_cancel(struct pk_rpc_call *call);

/* A result that owns its bytes, for pk_rpc_call_sync. */
struct pk_rpc_owned_result {
    int status;             /* PK_GRPC_* */
    char message[512];      /* NUL-terminated, "" when there is nothing to say (cut if longer) */
    struct pk_buf response; /* the response message (owned; empty unless status is OK) */
};

/* Run one call to completion on a private loop (blocks the thread for up to opts->timeout plus
 * a short close linger). 0 when the call ran: its outcome, good or bad, is in out (free it with
 * pk_rpc_owned_result_clear). Otherwise the error of pk_rpc_call_start, or -ENOMEM when no loop
 * could be made; out is then left untouched. */
int pk_rpc_call_sync(const struct pk_rpc_call_opts *opts, struct pk_rpc_owned_result *out,
                     struct pk_err *err) PK_MUST_USE;

/* Free what pk_rpc_call_sync put into r and zero it. A zeroed struct is fine. */
void pk_rpc_owned_result_clear(struct pk_rpc_owned_result *r);

#endif
