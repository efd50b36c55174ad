/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unary gRPC calls over HTTP/2 over TLS on a libev loop.
 *
 * Implementation notes. A call goes RESOLVED -> CONNECTING (one address at a time) -> TLS (the
 * tls_stream owns the socket) -> delivered (done called) -> closing (the stream sends
 * close_notify; the call object lives until the stream reports closed). "finished" means done was
 * called or the call was cancelled; nothing reaches the user after that. */
#include "grpc_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/h2.h"
#include "common/log.h"
#include "common/mem.h"
#include "tls_stream.h"

#define CALL_MAGIC           0x52504341u /* "RPCA" */
#define DEFAULT_MAX_RESPONSE (4u * 1024 * 1024)
#define LEAF_DER_MAX         (64 * 1024)

struct pk_rpc_call {
    unsigned magic;
    struct ev_loop *loop;
    pk_rpc_done_fn done;
    void *done_ctx;
    struct pk_tls_ctx *tls;
    char *address;
    char host[PK_ADDR_HOST_LEN]; /* as written, without brackets */
    char port[8];
    bool host_is_name;         /* not an IP literal: resolved, and sent as the TLS server name */
    struct addrinfo *addrs;    /* from getaddrinfo */
    struct addrinfo *from_set; /* or made from a resolver's answer (one allocation) */
    struct addrinfo *next_addr;
    int fd;
    ev_io cio;
    ev_timer deadline;
    ev_timer async; /* delivers failures found before the loop runs */
    struct pk_tls_stream *st;
    struct pk_h2_client *h2;
    int (*verify_peer)(void *ctx, struct pk_slice leaf_der, struct pk_err *err);
    void *verify_ctx;
    double timeout;
    uint32_t mark; /* SO_MARK; 0 = none */
    bool verified;
    bool finished;
    int async_status;
    char message[512]; /* the failure to report: last connect error, async failure */
};

static void call_destroy(struct pk_rpc_call *call)
{
    ev_io_stop(call->loop, &call->cio);
    ev_timer_stop(call->loop, &call->deadline);
    ev_timer_stop(call->loop, &call->async);
    if (call->fd >= 0) {
        close(call->fd);
    }
    call->st = pk_tls_stream_free(call->st);
    call->h2 = pk_h2_client_free(call->h2);
    if (call->addrs != NULL) {
        freeaddrinfo(call->addrs);
    }
    free(call->from_set);
    pk_tls_ctx_unref(call->tls);
    free(call->address);
    call->magic = 0;
    free(call);
}

/* Hand the result to the user once; afterwards only cleanup happens. */
static void call_deliver(struct pk_rpc_call *call, int status, const char *message,
                         struct pk_slice response)
{
    struct pk_rpc_result res = {status, message != NULL ? message : "", response};

    if (call->finished) {
        return;
    }
    call->finished = true;
    ev_timer_stop(call->loop, &call->deadline);
    ev_timer_stop(call->loop, &call->async);
    call->done(call->done_ctx, &res);
}

static void call_fail(struct pk_rpc_call *call, int status, const char *fmt, ...) PK_PRINTF(3, 4);

static void call_fail(struct pk_rpc_call *call, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    call_deliver(call, status, msg, pk_slice_make(NULL, 0));
}

/* ---- TLS stream ops ----------------------------------------------------------------------- */

static int call_handshake_done(void *ctx, WOLFSSL *ssl, struct pk_err *err)
{
    struct pk_rpc_call *call = ctx;
    struct pk_buf leaf;
    int r = 0;

    if (call->verify_peer != NULL) {
        pk_buf_init(&leaf, LEAF_DER_MAX);
        r = pk_tls_peer_leaf_der(ssl, &leaf);
        if (r != 0) {
            pk_err_set(err, PK_E_DENIED, "server sent no usable certificate (%s)", pk_err_str(r));
            r = PK_E_DENIED;
        } else {
            pk_err_clear(err);
            r = call->verify_peer(call->verify_ctx, pk_buf_slice(&leaf), err);
            if (r != 0) {
                if (err->msg[0] == '\0') {
                    pk_err_set(err, r, "server certificate rejected by the verify hook");
                }
                r = PK_E_DENIED;
            }
        }
        pk_buf_free(&leaf);
    }
    if (r == 0) {
        call->verified = true;
    }
    return r;
}

static int call_recv(void *ctx, const uint8_t *p, size_t len, struct pk_err *err)
{
    struct pk_rpc_call *call = ctx;

    if (call->finished) {
        return 0; /* closing: the answer was delivered, the rest is noise */
    }
    if (pk_h2_client_recv(call->h2, p, len) != 0 || pk_h2_client_done(call->h2)) {
        const struct pk_h2_result *res = pk_h2_client_result(call->h2);
        call_deliver(call, res->status, res->message, res->response);
        pk_tls_stream_close(call->st);
    }
    return 0;
}

static int call_produce(void *ctx, struct pk_buf *out, struct pk_err *err)
{
    struct pk_rpc_call *call = ctx;

    if (!call->verified || call->finished) {
        return 0;
    }
    if (pk_h2_client_send(call->h2, out) != 0) {
        return pk_err_set(err, PK_E_PROTO, "HTTP/2 session failed to send");
    }
    return 0;
}

static void call_closed(void *ctx, int code, const char *msg)
{
    struct pk_rpc_call *call = ctx;

    PK_ASSERT(call->magic == CALL_MAGIC);
    if (!call->finished) {
        if (code == PK_E_DENIED) {
            call_fail(call, PK_GRPC_UNAVAILABLE, "%s", msg);
        } else if (call->verified) {
            pk_h2_client_abort(call->h2, PK_GRPC_UNAVAILABLE, "connection to %s closed: %s",
                               call->address, msg[0] ? msg : pk_err_str(code));
            const struct pk_h2_result *res = pk_h2_client_result(call->h2);
            call_deliver(call, res->status, res->message, res->response);
        } else {
            call_fail(call, PK_GRPC_UNAVAILABLE, "TLS with %s failed: %s", call->address,
                      msg[0] ? msg : pk_err_str(code));
        }
    }
    call_destroy(call); /* the stream's free is deferred until its callback returns */
}

static const struct pk_tls_stream_ops call_ops = {
        .handshake_done = call_handshake_done,
        .recv = call_recv,
        .produce = call_produce,
        .finished = NULL,
        .closed = call_closed,
};

/* ---- connecting --------------------------------------------------------------------------- */

static void call_start_tls(struct pk_rpc_call *call)
{
    struct pk_tls_stream_config scfg = {
            /* The call deadline bounds the handshake; this is only a backstop. */
            .handshake_timeout = call->timeout + 1.0,
            .alpn = pk_tls_ctx_alpn(call->tls),
    };
    struct pk_err err = {{0}};
    WOLFSSL *ssl = NULL;
    const char *sni = call->host_is_name ? call->host : NULL;

    if (pk_tls_session_new(call->tls, call->fd, sni, &ssl, &err) != 0 ||
        pk_tls_stream_new(call->loop, call->fd, ssl, &scfg, &call_ops, call, &call->st, &err) !=
                0) {
        if (ssl != NULL) {
            wolfSSL_free(ssl);
        }
        call_fail(call, PK_GRPC_UNAVAILABLE, "cannot start TLS with %s: %s", call->address,
                  err.msg);
        call_destroy(call);
        return;
    }
    call->fd = -1; /* taken by the stream */
    pk_tls_stream_start(call->st);
}

static void call_try_next(struct pk_rpc_call *call);

static void call_connect_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pk_rpc_call *call = w->data;
    int soerr = 0;
    socklen_t len = sizeof(soerr);

    PK_ASSERT(call->magic == CALL_MAGIC);
    ev_io_stop(loop, &call->cio);
    if (getsockopt(call->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) {
        soerr = errno;
    }
    if (soerr != 0) {
        snprintf(call->message, sizeof(call->message), "cannot connect to %s: %s", call->address,
                 strerror(soerr));
        close(call->fd);
        call->fd = -1;
        call_try_next(call);
        return;
    }
    call_start_tls(call);
}

static void call_try_next(struct pk_rpc_call *call)
{
    int one = 1;

    while (call->next_addr != NULL) {
        struct addrinfo *ai = call->next_addr;
        call->next_addr = ai->ai_next;
        call->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (call->fd < 0) {
            snprintf(call->message, sizeof(call->message), "cannot connect to %s: %s",
                     call->address, strerror(errno));
            continue;
        }
        setsockopt(call->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (call->mark != 0 &&
            setsockopt(call->fd, SOL_SOCKET, SO_MARK, &call->mark, sizeof(call->mark)) != 0) {
            snprintf(call->message, sizeof(call->message), "cannot connect to %s: SO_MARK: %s",
                     call->address, strerror(errno));
            close(call->fd);
            call->fd = -1;
            continue;
        }
        if (connect(call->fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            call_start_tls(call);
            return;
        }
        if (errno == EINPROGRESS) {
            ev_io_set(&call->cio, call->fd, EV_WRITE);
            ev_io_start(call->loop, &call->cio);
            return;
        }
        snprintf(call->message, sizeof(call->message), "cannot connect to %s: %s", call->address,
                 strerror(errno));
        close(call->fd);
        call->fd = -1;
    }
    call_fail(call, PK_GRPC_UNAVAILABLE, "%s", call->message);
    call_destroy(call);
}

static void call_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pk_rpc_call *call = w->data;

    PK_ASSERT(call->magic == CALL_MAGIC);
    call_fail(call, PK_GRPC_DEADLINE_EXCEEDED, "deadline exceeded calling %s%s", call->address,
              call->st == NULL ? " (not connected)" : "");
    call_destroy(call);
}

static void call_async_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pk_rpc_call *call = w->data;

    PK_ASSERT(call->magic == CALL_MAGIC);
    if (call->async_status != PK_GRPC_OK) {
        call_fail(call, call->async_status, "%s", call->message);
        call_destroy(call);
        return;
    }
    call_try_next(call);
}

/* Split "host:port" / "[v6]:port". */
/* The addresses of a resolver's answer as an addrinfo chain, in one allocation (nodes, then the
 * addresses they point to), so call_try_next walks them as it walks getaddrinfo's. */
static struct addrinfo *addrinfo_from_set(const struct pk_addrset *set)
{
    struct addrinfo *ai = pk_xcalloc(1, set->n * (sizeof(*ai) + sizeof(set->addr[0])));
    struct sockaddr_storage *sa = (struct sockaddr_storage *)(ai + set->n);

    for (size_t i = 0; i < set->n; i++) {
        memcpy(&sa[i], &set->addr[i], set->len[i]);
        ai[i].ai_family = set->addr[i].ss_family;
        ai[i].ai_socktype = SOCK_STREAM;
        ai[i].ai_addr = (struct sockaddr *)&sa[i];
        ai[i].ai_addrlen = set->len[i];
        ai[i].ai_next = i + 1 < set->n ? &ai[i + 1] : NULL;
    }
    return ai;
}

/* getaddrinfo: blocks on DNS. Only for callers without a resolver (one-shot commands). */
static void resolve_blocking(struct pk_rpc_call *call, const struct addrinfo *hints)
{
    int gr = getaddrinfo(call->host, call->port, hints, &call->addrs);

    if (gr != 0) {
        call->async_status = PK_GRPC_UNAVAILABLE;
        snprintf(call->message, sizeof(call->message), "cannot resolve '%s': %s", call->host,
                 gai_strerror(gr));
    } else {
        call->next_addr = call->addrs;
        snprintf(call->message, sizeof(call->message), "no address for '%s'", call->host);
    }
}

int pk_rpc_call_start(struct ev_loop *loop, const struct pk_rpc_call_opts *opts,
                      pk_rpc_done_fn done, void *ctx, struct pk_rpc_call **out, struct pk_err *err)
{
    struct pk_rpc_call *call = NULL;
    struct addrinfo hints = {
            .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct pk_addr addr;
    int rc;

    if (loop == NULL || done == NULL) {
        return pk_err_set(err, PK_E_INVALID, "gRPC call needs a loop and a done callback");
    }
    if (opts->address == NULL) {
        return pk_err_set(err, PK_E_INVALID, "gRPC call needs an address");
    }
    if (opts->tls == NULL || pk_tls_ctx_is_server(opts->tls)) {
        return pk_err_set(err, PK_E_INVALID, "gRPC call to '%s' needs a client TLS context",
                          opts->address);
    }
    if (!(opts->timeout > 0)) {
        return pk_err_set(err, PK_E_INVALID, "gRPC call to '%s' needs a positive timeout",
                          opts->address);
    }
    call = pk_xcalloc(1, sizeof(*call));
    call->magic = CALL_MAGIC;
    call->loop = loop;
    call->fd = -1;
    call->done = done;
    call->done_ctx = ctx;
    call->verify_peer = opts->verify_peer;
    call->verify_ctx = opts->verify_ctx;
    call->timeout = opts->timeout;
    call->mark = opts->mark;
    call->address = pk_xstrdup(opts->address);
    call->tls = pk_tls_ctx_ref(opts->tls);
    ev_io_init(&call->cio, call_connect_cb, -1, EV_WRITE);
    call->cio.data = call;
    ev_timer_init(&call->deadline, call_deadline_cb, opts->timeout, 0.);
    call->deadline.data = call;
    ev_timer_init(&call->async, call_async_cb, 0., 0.);
    call->async.data = call;
    if (pk_addr_parse(opts->address, PK_ADDR_NAMES, &addr, err) != 0) {
        rc = pk_err_prefix(err, PK_E_INVALID, "gRPC address");
        goto out;
    }
    memcpy(call->host, addr.host, sizeof(call->host));
    snprintf(call->port, sizeof(call->port), "%u", addr.port);
    call->host_is_name = addr.kind == PK_ADDR_NAME;
    struct pk_h2_call hcall = {
            .authority = opts->authority ? opts->authority : opts->address,
            .path = opts->path,
            .timeout_ns = (uint64_t)(opts->timeout * 1e9),
            .metadata = opts->metadata,
            .request = opts->request,
            .max_response = opts->max_response ? opts->max_response : DEFAULT_MAX_RESPONSE,
    };
    rc = pk_h2_client_new(&hcall, &call->h2, err);
    if (rc != 0) {
        pk_err_prefix(err, rc, "gRPC call to '%s'", opts->address);
        goto out;
    }
    if (call->host_is_name && opts->resolved != NULL) {
        struct pk_addrset *set = pk_addrset_slot_get(opts->resolved);
        if (set == NULL) {
            call->async_status = PK_GRPC_UNAVAILABLE;
            snprintf(call->message, sizeof(call->message), "cannot resolve '%s': no DNS answer yet",
                     call->host);
        } else {
            call->from_set = addrinfo_from_set(set);
            call->next_addr = call->from_set;
            pk_addrset_unref(set);
        }
    } else {
        resolve_blocking(call, &hints);
    }
    /* Connecting starts from the loop, so done is never called from inside this function. */
    ev_timer_start(loop, &call->deadline);
    ev_timer_start(loop, &call->async);
    if (out != NULL) {
        *out = call;
    }
    call = NULL;
    rc = 0;
out:
    if (call != NULL) {
        call_destroy(call);
    }
    return rc;
}

void pk_rpc_call_cancel(struct pk_rpc_call *call)
{
    if (call == NULL) {
        return;
    }
    PK_ASSERT(call->magic == CALL_MAGIC);
    if (call->finished) {
        return; /* done already ran; the call is only closing */
    }
    call->finished = true;
    call_destroy(call);
}

struct sync_state {
    bool done;
    struct pk_rpc_owned_result *out;
};

static void sync_done(void *ctx, const struct pk_rpc_result *res)
{
    struct sync_state *ss = ctx;
    struct pk_rpc_owned_result *out = ss->out;

    out->status = res->status;
    snprintf(out->message, sizeof(out->message), "%s", res->message);
    pk_buf_init(&out->response, PK_MAX(res->response.len, 1));
    int r = pk_buf_append(&out->response, res->response.ptr, res->response.len);
    PK_ASSERT(r == 0);
    ss->done = true;
}

int pk_rpc_call_sync(const struct pk_rpc_call_opts *opts, struct pk_rpc_owned_result *out,
                     struct pk_err *err)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pk_rpc_owned_result res;
    struct sync_state ss = {false, &res};
    int rc;

    if (loop == NULL) {
        return pk_err_set(err, -ENOMEM, "cannot create an event loop");
    }
    memset(&res, 0, sizeof(res));
    rc = pk_rpc_call_start(loop, opts, sync_done, &ss, NULL, err);
    if (rc == 0) {
        /* Runs until the call and its connection are gone (done + close linger). */
        ev_run(loop, 0);
        PK_ASSERT(ss.done);
        *out = res;
    }
    ev_loop_destroy(loop);
    return rc;
}

void pk_rpc_owned_result_clear(struct pk_rpc_owned_result *r)
{
    if (r == NULL) {
        return;
    }
    pk_buf_free(&r->response);
    memset(r, 0, sizeof(*r));
}
