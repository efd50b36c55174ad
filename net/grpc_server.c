/* SPDX-License-Identifier: Apache-2.0 */
/* picket: a unary gRPC server over HTTP/2 over TLS on a libev loop. */
#include "grpc_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "tls_stream.h"

#define SERVER_MAGIC         0x52505353u /* "RPSS" */
#define CONN_MAGIC           0x52504343u /* "RPCC" */
#define DEFAULT_MAX_MESSAGE  (4u * 1024 * 1024)
#define DEFAULT_HS_TIMEOUT   10.0
#define DEFAULT_IDLE_TIMEOUT 300.0
#define DEFAULT_MAX_CONNS    256
#define ACCEPTS_PER_EVENT    32
#define ACCEPT_BACKOFF       0.25
#define SERVER_MAX_METHODS   64
#define BACKOFF_LOG_INTERVAL 10.0 /* seconds between "accept paused" warnings */

struct rpc_method {
    char *path;
    pk_rpc_unary_fn fn;
    void *ctx;
};

struct rpc_conn {
    unsigned magic;
    struct pk_rpc_server *s;
    struct rpc_conn *prev, *next;
    uint64_t id;
    struct pk_tls_ctx *tls;
    struct pk_tls_stream *st;
    struct pk_h2_server *h2;
    bool handshaken;
    char peer[INET6_ADDRSTRLEN + 8];
};

struct pk_rpc_server {
    unsigned magic;
    struct ev_loop *loop;
    struct pk_rpc_server_config cfg;
    char *listen_address;
    struct pk_tls_ctx *tls;
    struct rpc_method methods[SERVER_MAX_METHODS];
    size_t n_methods;
    int lfd;
    ev_io lio;
    ev_timer backoff;
    ev_tstamp last_backoff_log;
    bool listening;
    uint16_t port;
    struct rpc_conn *conns;
    uint64_t next_id;
    struct pk_rpc_server_stats stats;
};

const char *pk_rpc_request_metadata(const struct pk_rpc_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_metadata; i++) {
        if (strcmp(req->metadata[i].name, name) == 0) {
            return req->metadata[i].value;
        }
    }
    return NULL;
}

/* ---- connections -------------------------------------------------------------------------- */

static const void *conn_route(void *ctx, const char *path)
{
    struct rpc_conn *c = ctx;
    struct pk_rpc_server *s = c->s;

    for (size_t i = 0; i < s->n_methods; i++) {
        if (strcmp(s->methods[i].path, path) == 0) {
            return &s->methods[i];
        }
    }
    return NULL;
}

static void conn_handle(void *ctx, const void *method, const struct pk_h2_request *hreq,
                        struct pk_h2_reply *hreply)
{
    struct rpc_conn *c = ctx;
    const struct rpc_method *m = method;
    struct pk_rpc_request req = {
            .path = hreq->path,
            .message = hreq->message,
            .peer = c->peer,
            .authority = hreq->authority,
            .timeout_ns = hreq->timeout_ns,
            .metadata = hreq->headers,
            .n_metadata = hreq->n_headers,
            .call = {.conn_id = c->id, .stream_id = hreq->stream_id},
    };
    struct pk_rpc_reply reply;

    memset(&reply, 0, sizeof(reply));
    reply.status = PK_GRPC_UNKNOWN;
    reply.body = hreply->body; /* moved in, moved back below */
    m->fn(m->ctx, &req, &reply);
    if (reply.defer) {
        hreply->defer = true;
        hreply->body = reply.body;
        PK_LOG_DEBUG("grpc call deferred conn=%llu peer=%s path=%s stream=%d",
                     (unsigned long long)c->id, c->peer, hreq->path, (int)hreq->stream_id);
        return;
    }
    c->s->stats.calls++;
    if (reply.status == PK_GRPC_OK) {
        c->s->stats.calls_ok++;
    }
    hreply->status = reply.status;
    memcpy(hreply->message, reply.message, sizeof(hreply->message));
    hreply->message[sizeof(hreply->message) - 1] = '\0';
    hreply->body = reply.body;
    PK_LOG_DEBUG("grpc call conn=%llu peer=%s path=%s status=%s", (unsigned long long)c->id,
                 c->peer, hreq->path, pk_grpc_status_name(reply.status));
}

static int conn_handshake_done(void *ctx, WOLFSSL *ssl, struct pk_err *err)
{
    struct rpc_conn *c = ctx;
    struct pk_h2_server_config hcfg = {
            .max_message = c->s->cfg.max_message,
            .route = conn_route,
            .handle = conn_handle,
            .ctx = c,
    };

    c->handshaken = true;
    PK_LOG_DEBUG("tls accepted conn=%llu peer=%s version=%s cipher=%s", (unsigned long long)c->id,
                 c->peer, wolfSSL_get_version(ssl), wolfSSL_get_cipher_name(ssl));
    return pk_h2_server_new(&hcfg, &c->h2, err);
}

static int conn_recv(void *ctx, const uint8_t *p, size_t len, struct pk_err *err)
{
    struct rpc_conn *c = ctx;
    return pk_h2_server_recv(c->h2, p, len, err);
}

static int conn_produce(void *ctx, struct pk_buf *out, struct pk_err *err)
{
    struct rpc_conn *c = ctx;

    if (c->h2 == NULL) {
        return 0;
    }
    int r = pk_h2_server_send(c->h2, out);
    if (r != 0) {
        pk_err_set(err, r, "HTTP/2 session failed");
    }
    return r;
}

static bool conn_finished(void *ctx)
{
    struct rpc_conn *c = ctx;
    return c->h2 != NULL && !pk_h2_server_want_read(c->h2) && !pk_h2_server_want_write(c->h2);
}

static void server_update_listener(struct pk_rpc_server *s);

static void conn_free(struct rpc_conn *c)
{
    struct pk_rpc_server *s = c->s;

    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    s->stats.active--;
    c->st = pk_tls_stream_free(c->st);
    c->h2 = pk_h2_server_free(c->h2);
    pk_tls_ctx_unref(c->tls);
    c->magic = 0;
    free(c);
}

static void conn_closed(void *ctx, int code, const char *msg)
{
    struct rpc_conn *c = ctx;
    struct pk_rpc_server *s = c->s;

    PK_ASSERT(c->magic == CONN_MAGIC);
    if (!c->handshaken) {
        s->stats.handshake_failed++;
        PK_LOG_INFO("tls handshake failed conn=%llu peer=%s reason=\"%s\"",
                    (unsigned long long)c->id, c->peer, msg);
    } else if (code != 0) {
        PK_LOG_DEBUG("connection closed conn=%llu peer=%s reason=\"%s\"", (unsigned long long)c->id,
                     c->peer, msg);
    }
    conn_free(c);
    server_update_listener(s);
}

static const struct pk_tls_stream_ops conn_ops = {
        .handshake_done = conn_handshake_done,
        .recv = conn_recv,
        .produce = conn_produce,
        .finished = conn_finished,
        .closed = conn_closed,
};

static void format_peer(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN];

    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
            inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], host, sizeof(host));
            snprintf(out, len, "%s:%u", host, ntohs(a->sin6_port));
        } else {
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
            snprintf(out, len, "[%s]:%u", host, ntohs(a->sin6_port));
        }
    } else if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        snprintf(out, len, "%s:%u", host, ntohs(a->sin_port));
    } else {
        snprintf(out, len, "unknown");
    }
}

static void server_serve(struct pk_rpc_server *s, int fd, const struct sockaddr_storage *ss)
{
    struct pk_tls_stream_config scfg = {
            .handshake_timeout = s->cfg.handshake_timeout,
            .idle_timeout = s->cfg.idle_timeout,
            .alpn = pk_tls_ctx_alpn(s->tls),
    };
    struct pk_err err = {{0}};
    struct rpc_conn *c;
    WOLFSSL *ssl = NULL;
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c = pk_xcalloc(1, sizeof(*c));
    c->magic = CONN_MAGIC;
    c->s = s;
    c->id = ++s->next_id;
    format_peer(ss, c->peer, sizeof(c->peer));
    if (pk_tls_session_new(s->tls, fd, NULL, &ssl, &err) != 0 ||
        pk_tls_stream_new(s->loop, fd, ssl, &scfg, &conn_ops, c, &c->st, &err) != 0) {
        PK_LOG_WARN("cannot serve connection peer=%s reason=\"%s\"", c->peer, err.msg);
        if (ssl != NULL) {
            wolfSSL_free(ssl);
        }
        close(fd);
        free(c);
        s->stats.rejected++;
        return;
    }
    c->tls = pk_tls_ctx_ref(s->tls);
    c->next = s->conns;
    if (s->conns != NULL) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->stats.active++;
    s->stats.accepted++;
    pk_tls_stream_start(c->st);
}

/* ---- listener ----------------------------------------------------------------------------- */

static void server_update_listener(struct pk_rpc_server *s)
{
    bool want = s->listening && !ev_is_active(&s->backoff);
    if (want && !ev_is_active(&s->lio)) {
        ev_io_start(s->loop, &s->lio);
    } else if (!want && ev_is_active(&s->lio)) {
        ev_io_stop(s->loop, &s->lio);
    }
}

static void server_backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pk_rpc_server *s = w->data;

    PK_ASSERT(s->magic == SERVER_MAGIC);
    server_update_listener(s);
}

static void server_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pk_rpc_server *s = w->data;

    PK_ASSERT(s->magic == SERVER_MAGIC);
    for (int i = 0; i < ACCEPTS_PER_EVENT && s->listening; i++) {
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof(ss);
        int fd = accept4(s->lfd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The pending connection stays readable: pause instead of spinning on it. */
                s->stats.accept_backoffs++;
                if (ev_now(loop) - s->last_backoff_log >= BACKOFF_LOG_INTERVAL) {
                    s->last_backoff_log = ev_now(loop);
                    PK_LOG_WARN("accept paused port=%u reason=\"%s\" backoff=%.2fs pauses=%llu",
                                s->port, strerror(errno), ACCEPT_BACKOFF,
                                (unsigned long long)s->stats.accept_backoffs);
                }
                ev_timer_set(&s->backoff, ACCEPT_BACKOFF, 0.);
                ev_timer_start(loop, &s->backoff);
                server_update_listener(s);
                return;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                PK_LOG_WARN("accept failed port=%u reason=\"%s\"", s->port, strerror(errno));
            }
            return;
        }
        if (s->tls == NULL || s->stats.active >= s->cfg.max_connections) {
            s->stats.rejected++;
            close(fd);
            continue;
        }
        server_serve(s, fd, &ss);
    }
}

int pk_rpc_server_new(struct ev_loop *loop, const struct pk_rpc_server_config *cfg,
                      struct pk_rpc_server **out, struct pk_err *err)
{
    struct pk_rpc_server *s;

    if (loop == NULL || cfg->handshake_timeout < 0 || cfg->idle_timeout < 0) {
        return pk_err_set(err, PK_E_INVALID, "gRPC server needs a loop and non-negative timeouts");
    }
    if (cfg->max_message > UINT32_MAX) {
        return pk_err_set(err, PK_E_INVALID, "gRPC max_message %zu is above 2^32-1",
                          cfg->max_message);
    }
    s = pk_xcalloc(1, sizeof(*s));
    s->magic = SERVER_MAGIC;
    s->loop = loop;
    s->cfg = *cfg;
    s->listen_address = pk_xstrdup(cfg->listen_address ? cfg->listen_address : "");
    s->cfg.listen_address = s->listen_address;
    if (s->cfg.max_message == 0) {
        s->cfg.max_message = DEFAULT_MAX_MESSAGE;
    }
    if (s->cfg.handshake_timeout == 0) {
        s->cfg.handshake_timeout = DEFAULT_HS_TIMEOUT;
    }
    if (s->cfg.idle_timeout == 0) {
        s->cfg.idle_timeout = DEFAULT_IDLE_TIMEOUT;
    }
    if (s->cfg.max_connections == 0) {
        s->cfg.max_connections = DEFAULT_MAX_CONNS;
    }
    s->lfd = -1;
    ev_io_init(&s->lio, server_accept_cb, -1, EV_READ);
    s->lio.data = s;
    ev_timer_init(&s->backoff, server_backoff_cb, ACCEPT_BACKOFF, 0.);
    s->backoff.data = s;
    *out = s;
    return 0;
}

int pk_rpc_server_add_method(struct pk_rpc_server *s, const char *path, pk_rpc_unary_fn fn,
                             void *ctx)
{
    const char *slash;

    PK_ASSERT(s->magic == SERVER_MAGIC);
    if (path == NULL || path[0] != '/' || (slash = strchr(path + 1, '/')) == NULL ||
        slash == path + 1 || slash[1] == '\0' || strchr(slash + 1, '/') != NULL || fn == NULL) {
        return PK_E_INVALID;
    }
    for (size_t i = 0; i < s->n_methods; i++) {
        if (strcmp(s->methods[i].path, path) == 0) {
            return PK_E_MISMATCH;
        }
    }
    if (s->n_methods >= SERVER_MAX_METHODS) {
        return PK_E_TOOBIG;
    }
    s->methods[s->n_methods++] = (struct rpc_method){pk_xstrdup(path), fn, ctx};
    return 0;
}

void pk_rpc_server_set_tls(struct pk_rpc_server *s, struct pk_tls_ctx *tls)
{
    PK_ASSERT(s->magic == SERVER_MAGIC);
    if (tls != NULL) {
        pk_tls_ctx_ref(tls);
    }
    pk_tls_ctx_unref(s->tls);
    s->tls = tls;
}

/* Open, bind and listen on one address. Returns the fd or -errno. */
static int listen_on(const struct sockaddr *sa, socklen_t salen, bool dual_stack)
{
    int one = 1;
    int zero = 0;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        return -errno;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (sa->sa_family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual_stack ? &zero : &one, sizeof(int));
    }
    if (bind(fd, sa, salen) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static int server_listen(struct pk_rpc_server *s, int *out_fd, struct pk_err *err)
{
    const char *addr = s->listen_address;
    char host[256];
    char port[8];
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int fd = -EADDRNOTAVAIL;

    snprintf(port, sizeof(port), "%u", s->cfg.port);
    if (addr[0] == '\0') {
        struct sockaddr_in6 a6 = {.sin6_family = AF_INET6,
                                  .sin6_port = htons(s->cfg.port),
                                  .sin6_addr = IN6ADDR_ANY_INIT};
        struct sockaddr_in a4 = {.sin_family = AF_INET,
                                 .sin_port = htons(s->cfg.port),
                                 .sin_addr.s_addr = htonl(INADDR_ANY)};
        fd = listen_on((struct sockaddr *)&a6, sizeof(a6), true);
        if (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL) {
            fd = listen_on((struct sockaddr *)&a4, sizeof(a4), false);
        }
        if (fd < 0) {
            return pk_err_set(err, fd, "cannot listen on port %u: %s", s->cfg.port, strerror(-fd));
        }
        *out_fd = fd;
        return 0;
    }
    /* "[v6]" or a plain host. */
    size_t n = strlen(addr);
    if (addr[0] == '[' && n >= 2 && addr[n - 1] == ']') {
        snprintf(host, sizeof(host), "%.*s", (int)(n - 2), addr + 1);
    } else {
        snprintf(host, sizeof(host), "%s", addr);
    }
    int r = getaddrinfo(host, port, &hints, &res);
    if (r != 0) {
        return pk_err_set(err, PK_E_INVALID, "cannot resolve listen address '%s': %s", addr,
                          gai_strerror(r));
    }
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = listen_on(ai->ai_addr, ai->ai_addrlen, false);
        if (fd >= 0) {
            break;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        return pk_err_set(err, fd, "cannot listen on '%s' port %u: %s", addr, s->cfg.port,
                          strerror(-fd));
    }
    *out_fd = fd;
    return 0;
}

int pk_rpc_server_start(struct pk_rpc_server *s, struct pk_err *err)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    int fd = -1;
    int r;

    PK_ASSERT(s->magic == SERVER_MAGIC);
    if (s->lfd >= 0) {
        return pk_err_set(err, PK_E_INVALID, "gRPC server is already started");
    }
    r = server_listen(s, &fd, err);
    if (r != 0) {
        return r;
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0) {
        s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    }
    s->lfd = fd;
    ev_io_set(&s->lio, fd, EV_READ);
    s->listening = true;
    server_update_listener(s);
    PK_LOG_INFO("grpc listening address=\"%s\" port=%u", s->listen_address, s->port);
    return 0;
}

uint16_t pk_rpc_server_port(const struct pk_rpc_server *s)
{
    return s->port;
}

void pk_rpc_server_stop(struct pk_rpc_server *s)
{
    PK_ASSERT(s->magic == SERVER_MAGIC);
    s->listening = false;
    ev_io_stop(s->loop, &s->lio);
    ev_timer_stop(s->loop, &s->backoff);
    if (s->lfd >= 0) {
        close(s->lfd);
        s->lfd = -1;
    }
    for (struct rpc_conn *c = s->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->h2 != NULL) {
            pk_h2_server_shutdown(c->h2);
            pk_tls_stream_kick(c->st);
        }
    }
}

void pk_rpc_server_get_stats(const struct pk_rpc_server *s, struct pk_rpc_server_stats *out)
{
    *out = s->stats;
}

int pk_rpc_server_answer(struct pk_rpc_server *s, struct pk_rpc_call call, int status,
                         const char *message, struct pk_slice body)
{
    struct rpc_conn *c;
    int r;

    PK_ASSERT(s->magic == SERVER_MAGIC);
    for (c = s->conns; c != NULL; c = c->next) {
        if (c->id == call.conn_id) {
            break;
        }
    }
    if (c == NULL || c->h2 == NULL || pk_tls_stream_is_closed(c->st)) {
        return PK_E_NOTFOUND;
    }
    r = pk_h2_server_answer(c->h2, call.stream_id, status, message, body);
    if (r != 0) {
        return r;
    }
    s->stats.calls++;
    if (status == PK_GRPC_OK) {
        s->stats.calls_ok++;
    }
    PK_LOG_DEBUG("grpc call answered conn=%llu peer=%s stream=%d status=%s",
                 (unsigned long long)c->id, c->peer, (int)call.stream_id,
                 pk_grpc_status_name(status));
    pk_tls_stream_kick(c->st);
    return 0;
}

struct pk_rpc_server *pk_rpc_server_free(struct pk_rpc_server *s)
{
    if (s == NULL) {
        return NULL;
    }
    PK_ASSERT(s->magic == SERVER_MAGIC);
    pk_rpc_server_stop(s);
    while (s->conns != NULL) {
        conn_free(s->conns);
    }
    pk_tls_ctx_unref(s->tls);
    for (size_t i = 0; i < s->n_methods; i++) {
        free(s->methods[i].path);
    }
    free(s->listen_address);
    s->magic = 0;
    free(s);
    return NULL;
}
