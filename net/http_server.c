/* SPDX-License-Identifier: Apache-2.0 */
/* picket: a small HTTP/1.1 server on libev for health and metrics.
 *
 * Implementation notes: a connection goes through three phases, each under the same per-phase
 * timer: READING (collect the request head, parse after every read), WRITING (send the answer)
 * and LINGER (our side is shut down; read and discard until the peer closes, so that unread
 * request bytes do not turn our close into a RST that destroys the answer in flight). Watchers are
 * stopped before a connection is freed, which also clears any event still pending for them, so
 * no callback can reach a freed connection. */
#include "net/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/log.h"
#include "common/mem.h"

#define SERVER_MAGIC 0x48535256u /* "HSRV" */
#define CONN_MAGIC   0x48434f4eu /* "HCON" */

#define LINGER_SECONDS     2.0
#define ACCEPT_BATCH       32
#define RESUME_SECONDS     0.5
#define OUT_HEAD_ALLOWANCE 512

enum conn_phase {
    PHASE_READING,
    PHASE_WRITING,
    PHASE_LINGER,
};

struct route {
    char *path;
    pk_http_handler_fn *fn;
    void *ctx;
};

struct http_conn {
    uint32_t magic;
    struct pk_http_server *srv;
    struct http_conn *prev;
    struct http_conn *next;
    int fd;
    enum conn_phase phase;
    ev_io io;
    ev_timer timer;
    uint64_t id;
    char peer[64];
    struct pk_buf out;
    size_t out_off;
    size_t in_len;
    uint8_t in[PK_HTTP1_MAX_REQUEST];
};

struct pk_http_server {
    uint32_t magic;
    struct ev_loop *loop;
    int fd;
    ev_io accept_io;
    ev_timer resume_timer;
    double timeout;
    unsigned max_conns;
    size_t max_body;
    uint16_t port;
    char *unix_path; /* set when we created the socket file */
    dev_t unix_dev;
    ino_t unix_ino;
    unsigned nconns;
    uint64_t next_id;
    struct http_conn *conns;
    size_t nroutes;
    struct route routes[PK_HTTP_SERVER_MAX_ROUTES];
};

static void conn_free(struct http_conn *c)
{
    struct pk_http_server *srv = c->srv;

    ev_io_stop(srv->loop, &c->io);
    ev_timer_stop(srv->loop, &c->timer);
    close(c->fd);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        srv->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    srv->nconns--;
    pk_buf_free(&c->out);
    c->magic = 0;
    free(c);
}

static void conn_set_phase(struct http_conn *c, enum conn_phase phase, int events, double seconds)
{
    struct ev_loop *loop = c->srv->loop;

    c->phase = phase;
    ev_io_stop(loop, &c->io);
    ev_io_set(&c->io, c->fd, events);
    ev_io_start(loop, &c->io);
    ev_timer_stop(loop, &c->timer);
    ev_timer_set(&c->timer, seconds, 0.0);
    ev_timer_start(loop, &c->timer);
}

/* Send what is left of the answer. Returns true when the connection was freed. */
static bool conn_flush(struct http_conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return false;
        }
        if (n < 0) {
            PK_LOG_DEBUG("http write failed conn=%llu peer=%s error=\"%s\"",
                         (unsigned long long)c->id, c->peer, strerror(errno));
            conn_free(c);
            return true;
        }
        c->out_off += (size_t)n;
    }
    /* All sent: half-close and wait for the peer's FIN (bounded by the linger timer). */
    shutdown(c->fd, SHUT_WR);
    pk_buf_free(&c->out);
    conn_set_phase(c, PHASE_LINGER, EV_READ, LINGER_SECONDS);
    return false;
}

/* Serialize an answer and start writing it. Returns true when the connection was freed. */
static bool conn_respond(struct http_conn *c, int status, const char *ctype, struct pk_slice body,
                         bool head_only)
{
    struct pk_http1_response resp = {status, ctype, body, head_only};
    int rc;

    pk_buf_reset(&c->out);
    rc = pk_http1_write_response(&resp, &c->out);
    if (rc != 0) {
        static const char msg[] = "Internal Server Error\n";
        struct pk_http1_response fallback = {500, NULL, pk_slice_make(msg, sizeof(msg) - 1),
                                             head_only};
        PK_LOG_WARN("http answer not sent conn=%llu peer=%s status=%d error=\"%s\"",
                    (unsigned long long)c->id, c->peer, status, pk_err_str(rc));
        pk_buf_reset(&c->out);
        rc = pk_http1_write_response(&fallback, &c->out);
        PK_ASSERT(rc == 0); /* the buffer always has room for this fixed answer */
    }
    c->out_off = 0;
    conn_set_phase(c, PHASE_WRITING, EV_WRITE, c->srv->timeout);
    return conn_flush(c);
}

static bool conn_respond_text(struct http_conn *c, int status, const char *text, bool head_only)
{
    return conn_respond(c, status, NULL, pk_slice_make(text, strlen(text)), head_only);
}

static bool conn_dispatch(struct http_conn *c, const struct pk_http1_request *req)
{
    struct pk_http_server *srv = c->srv;
    const struct route *route = NULL;
    struct pk_http_reply reply;
    bool head = req->method == PK_HTTP1_HEAD;
    bool freed;
    int rc;

    for (size_t i = 0; i < srv->nroutes; i++) {
        if (strlen(srv->routes[i].path) == req->path.len &&
            memcmp(srv->routes[i].path, req->path.ptr, req->path.len) == 0) {
            route = &srv->routes[i];
            break;
        }
    }
    if (route == NULL) {
        PK_LOG_DEBUG("http request conn=%llu peer=%s path=\"%.*s\" status=404",
                     (unsigned long long)c->id, c->peer, (int)PK_MIN(req->path.len, (size_t)128),
                     (const char *)req->path.ptr);
        return conn_respond_text(c, 404, "Not Found\n", head);
    }
    reply.status = 200;
    reply.content_type = NULL;
    pk_buf_init(&reply.body, srv->max_body);
    rc = route->fn(route->ctx, req, &reply);
    if (rc != 0) {
        PK_LOG_WARN("http handler failed conn=%llu path=%s error=\"%s\"", (unsigned long long)c->id,
                    route->path, pk_err_str(rc));
        freed = conn_respond_text(c, 500, "Internal Server Error\n", head);
    } else {
        PK_LOG_DEBUG("http request conn=%llu peer=%s path=%s status=%d", (unsigned long long)c->id,
                     c->peer, route->path, reply.status);
        freed = conn_respond(c, reply.status, reply.content_type, pk_buf_slice(&reply.body), head);
    }
    pk_buf_free(&reply.body);
    return freed;
}

static void conn_on_readable(struct http_conn *c)
{
    struct pk_http1_request req;
    struct pk_err err;
    int status = 0;
    ssize_t n;
    int rc;

    if (c->in_len == sizeof(c->in)) {
        /* The parser decides at the cap; reaching this means a bug, not a client error. */
        conn_free(c);
        return;
    }
    n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        /* The peer closed or reset before sending a whole request: nobody to answer. */
        conn_free(c);
        return;
    }
    c->in_len += (size_t)n;
    pk_err_clear(&err);
    rc = pk_http1_parse_request(c->in, c->in_len, &req, &status, &err);
    if (rc == PK_E_AGAIN) {
        return;
    }
    if (rc == PK_E_PROTO) {
        char body[sizeof(err.msg) + 2];
        PK_LOG_DEBUG("http request rejected conn=%llu peer=%s status=%d reason=\"%s\"",
                     (unsigned long long)c->id, c->peer, status, err.msg);
        snprintf(body, sizeof(body), "%s\n", err.msg);
        (void)conn_respond_text(c, status, body, false);
        return;
    }
    PK_ASSERT(rc == 0);
    (void)conn_dispatch(c, &req);
}

static void conn_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct http_conn *c = w->data;
    char sink[512];
    ssize_t n;

    PK_ASSERT(c != NULL && c->magic == CONN_MAGIC);
    switch (c->phase) {
    case PHASE_READING:
        conn_on_readable(c);
        break;
    case PHASE_WRITING:
        (void)conn_flush(c);
        break;
    case PHASE_LINGER:
        n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            break;
        }
        if (n <= 0) {
            conn_free(c);
        }
        break;
    }
}

static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct http_conn *c = w->data;

    PK_ASSERT(c != NULL && c->magic == CONN_MAGIC);
    if (c->phase == PHASE_READING && c->in_len > 0) {
        PK_LOG_DEBUG("http request timed out conn=%llu peer=%s received=%zu",
                     (unsigned long long)c->id, c->peer, c->in_len);
        (void)conn_respond_text(c, 408, "Request Timeout\n", false);
        return;
    }
    if (c->phase == PHASE_WRITING) {
        PK_LOG_DEBUG("http answer timed out conn=%llu peer=%s", (unsigned long long)c->id, c->peer);
    }
    conn_free(c);
}

static void format_peer(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN];

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        snprintf(out, len, "%s:%u", host, (unsigned)ntohs(a->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        snprintf(out, len, "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
    } else {
        snprintf(out, len, "unix");
    }
}

/* A connection past the cap gets a fixed answer, best effort, and is closed at once. */
static void refuse_busy(int fd)
{
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
                               "Content-Type: text/plain; charset=utf-8\r\n"
                               "Content-Length: 20\r\n"
                               "Connection: close\r\n"
                               "\r\n"
                               "too many connections";
    ssize_t PK_UNUSED n = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    shutdown(fd, SHUT_WR);
    close(fd);
}

static void accept_one(struct pk_http_server *srv, int fd, const struct sockaddr_storage *ss)
{
    struct http_conn *c;

    if (srv->nconns >= srv->max_conns) {
        PK_LOG_DEBUG("http connection refused reason=\"limit of %u reached\"", srv->max_conns);
        refuse_busy(fd);
        return;
    }
    c = pk_xcalloc(1, sizeof(*c));
    c->magic = CONN_MAGIC;
    c->srv = srv;
    c->fd = fd;
    c->id = ++srv->next_id;
    format_peer(ss, c->peer, sizeof(c->peer));
    pk_buf_init(&c->out, srv->max_body + OUT_HEAD_ALLOWANCE);
    ev_io_init(&c->io, conn_io_cb, fd, EV_READ);
    c->io.data = c;
    ev_timer_init(&c->timer, conn_timer_cb, srv->timeout, 0.0);
    c->timer.data = c;
    c->next = srv->conns;
    if (srv->conns != NULL) {
        srv->conns->prev = c;
    }
    srv->conns = c;
    srv->nconns++;
    conn_set_phase(c, PHASE_READING, EV_READ, srv->timeout);
}

static void resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pk_http_server *srv = w->data;

    PK_ASSERT(srv != NULL && srv->magic == SERVER_MAGIC);
    ev_io_start(loop, &srv->accept_io);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pk_http_server *srv = w->data;

    PK_ASSERT(srv != NULL && srv->magic == SERVER_MAGIC);
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(srv->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            accept_one(srv, fd, &ss);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED) {
            continue;
        }
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* Out of descriptors: pause accepting instead of spinning on a readable listener. */
            PK_LOG_WARN("http accept paused error=\"%s\"", strerror(errno));
            ev_io_stop(loop, &srv->accept_io);
            ev_timer_stop(loop, &srv->resume_timer);
            ev_timer_set(&srv->resume_timer, RESUME_SECONDS, 0.0);
            ev_timer_start(loop, &srv->resume_timer);
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            PK_LOG_WARN("http accept failed error=\"%s\"", strerror(errno));
        }
        break;
    }
}

/* Resolve opts->host without DNS into addr: NULL or "" is every interface (dual-stack). */
static int tcp_address(const char *host, uint16_t port, struct sockaddr_storage *addr,
                       socklen_t *addr_len, struct pk_err *err)
{
    struct pk_addr parsed;

    if (host == NULL || host[0] == '\0') {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
        memset(addr, 0, sizeof(*addr));
        a6->sin6_family = AF_INET6;
        a6->sin6_addr = in6addr_any;
        a6->sin6_port = htons(port);
        *addr_len = sizeof(*a6);
        return 0;
    }
    if (pk_addr_from_host(host, port, &parsed, err) != 0) {
        return PK_E_INVALID;
    }
    *addr = parsed.sa;
    *addr_len = parsed.sa_len;
    return 0;
}

static int listen_tcp(struct pk_http_server *srv, const struct pk_http_server_opts *opts,
                      struct pk_err *err)
{
    struct sockaddr_storage addr;
    socklen_t addr_len = 0;
    int one = 1;
    int zero = 0;
    int fd = -1;
    int rc;

    rc = tcp_address(opts->host, opts->port, &addr, &addr_len, err);
    if (rc != 0) {
        return rc;
    }
    fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 && addr.ss_family == AF_INET6 && (opts->host == NULL || opts->host[0] == '\0') &&
        errno == EAFNOSUPPORT) {
        /* No IPv6 on this host: "all interfaces" means IPv4's. */
        struct sockaddr_in *a4 = (struct sockaddr_in *)&addr;
        memset(&addr, 0, sizeof(addr));
        a4->sin_family = AF_INET;
        a4->sin_addr.s_addr = htonl(INADDR_ANY);
        a4->sin_port = htons(opts->port);
        addr_len = sizeof(*a4);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    if (fd < 0) {
        rc = pk_err_set(err, -errno, "http listener: socket: %s", strerror(errno));
        goto out;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (addr.ss_family == AF_INET6 && (opts->host == NULL || opts->host[0] == '\0')) {
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    }
    if (bind(fd, (struct sockaddr *)&addr, addr_len) != 0) {
        rc = pk_err_set(err, -errno, "http listener: bind to %s port %u: %s",
                        opts->host && opts->host[0] ? opts->host : "all interfaces",
                        (unsigned)opts->port, strerror(errno));
        goto out;
    }
    if (listen(fd, 64) != 0) {
        rc = pk_err_set(err, -errno, "http listener: listen: %s", strerror(errno));
        goto out;
    }
    addr_len = sizeof(addr);
    if (getsockname(fd, (struct sockaddr *)&addr, &addr_len) != 0) {
        rc = pk_err_set(err, -errno, "http listener: getsockname: %s", strerror(errno));
        goto out;
    }
    srv->port = ntohs(addr.ss_family == AF_INET ? ((struct sockaddr_in *)&addr)->sin_port
                                                : ((struct sockaddr_in6 *)&addr)->sin6_port);
    srv->fd = fd;
    fd = -1;
    rc = 0;
out:
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

/* A socket file nobody accepts on any more (its server died) may be replaced. */
static bool unix_socket_is_stale(const struct sockaddr_un *addr)
{
    struct stat st;
    bool stale = false;
    int fd;

    if (lstat(addr->sun_path, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        return false;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) != 0 && errno == ECONNREFUSED) {
        stale = true;
    }
    close(fd);
    return stale;
}

static int listen_unix(struct pk_http_server *srv, const struct pk_http_server_opts *opts,
                       struct pk_err *err)
{
    struct sockaddr_un addr;
    struct stat st;
    size_t n = strlen(opts->unix_path);
    unsigned mode = opts->unix_mode ? opts->unix_mode : 0660;
    int fd = -1;
    int rc;

    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    if (n == 0 || n >= sizeof(addr.sun_path)) {
        return pk_err_set(err, PK_E_INVALID,
                          "unix socket path \"%.64s\" is empty or longer than %zu bytes",
                          opts->unix_path, sizeof(addr.sun_path) - 1);
    }
    memcpy(addr.sun_path, opts->unix_path, n + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = pk_err_set(err, -errno, "%s: socket: %s", opts->unix_path, strerror(errno));
        goto out;
    }
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        if (errno != EADDRINUSE || !unix_socket_is_stale(&addr) || unlink(addr.sun_path) != 0 ||
            bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
            rc = pk_err_set(err, -errno, "%s: bind: %s", opts->unix_path, strerror(errno));
            goto out;
        }
    }
    if (chmod(addr.sun_path, mode & 07777) != 0 || lstat(addr.sun_path, &st) != 0) {
        rc = pk_err_set(err, -errno, "%s: chmod: %s", opts->unix_path, strerror(errno));
        unlink(addr.sun_path);
        goto out;
    }
    if (listen(fd, 64) != 0) {
        rc = pk_err_set(err, -errno, "%s: listen: %s", opts->unix_path, strerror(errno));
        unlink(addr.sun_path);
        goto out;
    }
    srv->unix_path = pk_xstrdup(addr.sun_path);
    srv->unix_dev = st.st_dev;
    srv->unix_ino = st.st_ino;
    srv->fd = fd;
    fd = -1;
    rc = 0;
out:
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

int pk_http_server_new(struct ev_loop *loop, const struct pk_http_server_opts *opts,
                       struct pk_http_server **out, struct pk_err *err)
{
    struct pk_http_server *srv = pk_xcalloc(1, sizeof(*srv));
    int rc;

    srv->magic = SERVER_MAGIC;
    srv->loop = loop;
    srv->fd = -1;
    srv->timeout = opts->timeout > 0 ? opts->timeout : PK_HTTP_SERVER_DEFAULT_TIMEOUT;
    srv->max_conns = opts->max_conns ? opts->max_conns : PK_HTTP_SERVER_DEFAULT_MAX_CONNS;
    srv->max_body = opts->max_body ? opts->max_body : PK_HTTP_SERVER_DEFAULT_MAX_BODY;
    if (opts->unix_path != NULL) {
        rc = listen_unix(srv, opts, err);
    } else {
        rc = listen_tcp(srv, opts, err);
    }
    if (rc != 0) {
        goto out;
    }
    ev_io_init(&srv->accept_io, accept_cb, srv->fd, EV_READ);
    srv->accept_io.data = srv;
    ev_timer_init(&srv->resume_timer, resume_cb, RESUME_SECONDS, 0.0);
    srv->resume_timer.data = srv;
    ev_io_start(loop, &srv->accept_io);
    *out = srv;
    srv = NULL;
out:
    if (srv != NULL) {
        srv->magic = 0;
        free(srv);
    }
    return rc;
}

int pk_http_server_route(struct pk_http_server *srv, const char *path, pk_http_handler_fn *fn,
                         void *ctx)
{
    PK_ASSERT(srv->magic == SERVER_MAGIC);
    if (path[0] != '/' || fn == NULL) {
        return PK_E_INVALID;
    }
    for (size_t i = 0; i < srv->nroutes; i++) {
        if (strcmp(srv->routes[i].path, path) == 0) {
            return PK_E_INVALID;
        }
    }
    if (srv->nroutes == PK_HTTP_SERVER_MAX_ROUTES) {
        return PK_E_TOOBIG;
    }
    srv->routes[srv->nroutes].path = pk_xstrdup(path);
    srv->routes[srv->nroutes].fn = fn;
    srv->routes[srv->nroutes].ctx = ctx;
    srv->nroutes++;
    return 0;
}

uint16_t pk_http_server_port(const struct pk_http_server *srv)
{
    return srv->port;
}

unsigned pk_http_server_conn_count(const struct pk_http_server *srv)
{
    return srv->nconns;
}

struct pk_http_server *pk_http_server_free(struct pk_http_server *srv)
{
    struct stat st;

    if (srv == NULL) {
        return NULL;
    }
    PK_ASSERT(srv->magic == SERVER_MAGIC);
    while (srv->conns != NULL) {
        conn_free(srv->conns);
    }
    ev_io_stop(srv->loop, &srv->accept_io);
    ev_timer_stop(srv->loop, &srv->resume_timer);
    close(srv->fd);
    /* Remove the socket file only if it is still ours, not one a newer server put there. */
    if (srv->unix_path != NULL && lstat(srv->unix_path, &st) == 0 && st.st_dev == srv->unix_dev &&
        st.st_ino == srv->unix_ino) {
        unlink(srv->unix_path);
    }
    free(srv->unix_path);
    for (size_t i = 0; i < srv->nroutes; i++) {
        free(srv->routes[i].path);
    }
    srv->magic = 0;
    free(srv);
    return NULL;
}
