/* SPDX-License-Identifier: Apache-2.0 */
/* picket: what the proxy/conn unit tests share: identities minted at test time by the project's
 * own Sentry CA, loopback sockets, TLS for the blocking helper threads (their sockets carry 5 s
 * timeouts, so a bug fails a check instead of hanging) and the connection under test, run on a
 * libev loop in the main thread. SIGPIPE keeps its default action: a send() without
 * MSG_NOSIGNAL anywhere in the connection would kill the test. */
/* cmocka.h needs the standard headers before it. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
/* clang-format on */

#include "proxy_conn_testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/identity.h"
#include "common/key.h"
#include "common/tls.h"
#include "common/x509.h"
#include "proxy/conn.h"
#include "sentry/creds.h"
#include "sentry/issue.h"
#include "testutil.h"

/* ---- fixtures: a CA and two workload identities ------------------------------------------- */

static char scratch_dir[600];
static struct pk_sentry_creds *creds;
struct pk_identity *id_front;
struct pk_identity *id_back;
struct pk_tls_ctx *ctx_nocert; /* a client that verifies the server but has no cert */

struct pk_identity *make_identity(const char *spiffe_id, int64_t ttl)
{
    return workload_identity(creds, spiffe_id, ttl);
}

int group_setup(void **state)
{
    const char *base = getenv("PICKET_TEST_TMP");
    struct pk_sentry_creds_paths paths;
    struct pk_sentry_creds_gen gen = {"example.test",  "default", PK_KEY_P256, 0, 900,
                                      365L * 24 * 3600};
    struct pk_err err = {{0}};

    (void)state;
    /* Default action on purpose: see the file comment. */
    signal(SIGPIPE, SIG_DFL);
    snprintf(scratch_dir, sizeof(scratch_dir), "%s/proxy_conn-XXXXXX",
             base != NULL ? base : "/tmp");
    assert_non_null(mkdtemp(scratch_dir));
    assert_int_equal(
            pk_sentry_creds_paths_init(&paths, scratch_dir, "ca.crt", "issuer.crt", "issuer.key"),
            0);
    gen.now = time(NULL);
    assert_int_equal(pk_sentry_creds_generate(&paths, &gen, &creds, &err), 0);
    id_front = make_identity(FRONTEND, 3600);
    id_back = make_identity(BACKEND, 3600);
    struct pk_tls_config cfg = {.anchors_pem = creds->roots_pem.data,
                                .anchors_pem_len = creds->roots_pem.len};
    assert_int_equal(pk_tls_ctx_new(&cfg, &ctx_nocert, &err), 0);
    return 0;
}

int group_teardown(void **state)
{
    char cmd[700];

    (void)state;
    pk_tls_ctx_unref(ctx_nocert);
    pk_identity_unref(id_front);
    pk_identity_unref(id_back);
    pk_sentry_creds_free(creds);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch_dir);
    assert_int_equal(system(cmd), 0);
    pk_tls_thread_exit();
    return 0;
}

/* ---- failures inside helper threads ------------------------------------------------------- */

static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static char thread_failure[512];

void tfail(const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&fail_lock);
    if (thread_failure[0] == '\0') {
        va_start(ap, fmt);
        vsnprintf(thread_failure, sizeof(thread_failure), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&fail_lock);
}

int test_setup(void **state)
{
    (void)state;
    thread_failure[0] = '\0';
    return 0;
}

void join(pthread_t th)
{
    assert_int_equal(pthread_join(th, NULL), 0);
}

void assert_threads_ok(void)
{
    if (thread_failure[0] != '\0') {
        fail_msg("helper thread: %s", thread_failure);
    }
}

/* ---- sockets ------------------------------------------------------------------------------ */

void set_timeouts(int fd)
{
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void set_buf(int fd, int opt, int size)
{
    assert_int_equal(setsockopt(fd, SOL_SOCKET, opt, &size, sizeof(size)), 0);
}

/* A TCP listener on 127.0.0.1 with an ephemeral port; rcvbuf 0 keeps the default. */
int tcp_listener(struct sockaddr_storage *addr, socklen_t *len, int backlog, int rcvbuf)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;

    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (rcvbuf > 0) {
        set_buf(fd, SO_RCVBUF, rcvbuf);
    }
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(fd, backlog), 0);
    *len = sizeof(*addr);
    assert_int_equal(getsockname(fd, (struct sockaddr *)addr, len), 0);
    return fd;
}

/* A listener on an abstract unix socket (no file; Linux). Its peers' send buffers do not
 * autotune the way TCP's do, which keeps the kernel's share of a stalled stream small. */
int unix_listener(struct sockaddr_storage *addr, socklen_t *len)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    static int seq;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    int n = snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1, "picket-test-%d-%d", (int)getpid(),
                     seq++);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, *len), 0);
    assert_int_equal(listen(fd, 4), 0);
    memset(addr, 0, sizeof(*addr));
    memcpy(addr, &sun, *len);
    return fd;
}

/* A loopback TCP connection: *cl the client end (blocking, with timeouts), *sv the accepted end
 * (non-blocking, for the connection) and *peer the client's address as accept() saw it.
 * cl_sndbuf and sv_rcvbuf (0 = default) shrink the buffers for the backpressure test. */
void tcp_pair(int *cl, int *sv, struct sockaddr_storage *peer, socklen_t *peer_len, int cl_sndbuf,
              int sv_rcvbuf)
{
    struct sockaddr_storage addr;
    socklen_t len;
    int lfd = tcp_listener(&addr, &len, 4, sv_rcvbuf);

    *cl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(*cl >= 0);
    if (cl_sndbuf > 0) {
        set_buf(*cl, SO_SNDBUF, cl_sndbuf);
    }
    assert_int_equal(connect(*cl, (struct sockaddr *)&addr, len), 0);
    set_timeouts(*cl);
    *peer_len = sizeof(*peer);
    *sv = accept4(lfd, (struct sockaddr *)peer, peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    assert_true(*sv >= 0);
    close(lfd);
}

int accept_timeout(int lfd, int ms)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};

    if (poll(&p, 1, ms) != 1) {
        return -1;
    }
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
        set_timeouts(fd);
    }
    return fd;
}

/* True when a connection is waiting on the listener: the kernel completes TCP handshakes
 * without accept(), so a connect() by the proxy would show up here. */
bool listener_has_connection(int lfd)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    if (poll(&p, 1, 50) != 0) {
        return true;
    }
    int fl = fcntl(lfd, F_GETFL);
    fcntl(lfd, F_SETFL, fl | O_NONBLOCK);
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    int e = errno;
    fcntl(lfd, F_SETFL, fl);
    errno = e;
    if (fd >= 0) {
        close(fd);
        return true;
    }
    return errno != EAGAIN;
}

bool write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return false;
        }
        b += w;
        n -= (size_t)w;
    }
    return true;
}

/* Read up to n bytes, stopping early only at EOF. Returns the count, or -1 on an error. */
ssize_t read_full(int fd, void *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, (uint8_t *)p + got, n - got, 0);
        if (r < 0) {
            return -1;
        }
        if (r == 0) {
            break;
        }
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static uint8_t pattern(uint64_t i, uint32_t seed)
{
    uint64_t x = (i + seed) * 0x9E3779B97F4A7C15ull;
    return (uint8_t)(x >> 56);
}

void fill(uint8_t *p, size_t n, uint64_t off, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = pattern(off + i, seed);
    }
}

bool check(const uint8_t *p, size_t n, uint64_t off, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != pattern(off + i, seed)) {
            return false;
        }
    }
    return true;
}

/* ---- TLS for the helper threads ----------------------------------------------------------- */

/* MSG_NOSIGNAL here too, so that only the connection under test could raise SIGPIPE. */
static int tio_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    int fd = *(int *)ctx;
    (void)ssl;
    ssize_t n = recv(fd, buf, (size_t)sz, 0);
    if (n > 0) {
        return (int)n;
    }
    if (n == 0) {
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return WOLFSSL_CBIO_ERR_WANT_READ;
    }
    return errno == ECONNRESET ? WOLFSSL_CBIO_ERR_CONN_RST : WOLFSSL_CBIO_ERR_GENERAL;
}

static int tio_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    int fd = *(int *)ctx;
    (void)ssl;
    ssize_t n = send(fd, buf, (size_t)sz, MSG_NOSIGNAL);
    if (n >= 0) {
        return (int)n;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return WOLFSSL_CBIO_ERR_WANT_WRITE;
    }
    return errno == EPIPE || errno == ECONNRESET ? WOLFSSL_CBIO_ERR_CONN_RST
                                                 : WOLFSSL_CBIO_ERR_GENERAL;
}

/* A WOLFSSL on *fdp (which must outlive it). */
WOLFSSL *tls_session(struct pk_tls_ctx *ctx, int *fdp)
{
    WOLFSSL *ssl = NULL;
    struct pk_err err = {{0}};

    if (pk_tls_session_new(ctx, *fdp, NULL, &ssl, &err) != 0) {
        tfail("pk_tls_session_new: %s", err.msg);
        return NULL;
    }
    wolfSSL_SSLSetIORecv(ssl, tio_recv);
    wolfSSL_SSLSetIOSend(ssl, tio_send);
    wolfSSL_SetIOReadCtx(ssl, fdp);
    wolfSSL_SetIOWriteCtx(ssl, fdp);
    return ssl;
}

bool tls_write_all(WOLFSSL *ssl, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        int w = wolfSSL_write(ssl, b, (int)PK_MIN(n, 65536u));
        if (w <= 0) {
            return false;
        }
        b += w;
        n -= (size_t)w;
    }
    return true;
}

/* Like read_full over TLS. *clean (may be NULL) says whether EOF was a close_notify. */
ssize_t tls_read_full(WOLFSSL *ssl, void *p, size_t n, bool *clean)
{
    size_t got = 0;
    if (clean != NULL) {
        *clean = false;
    }
    while (got < n) {
        int r = wolfSSL_read(ssl, (uint8_t *)p + got, (int)PK_MIN(n - got, 65536u));
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        int e = wolfSSL_get_error(ssl, r);
        if (e == WOLFSSL_ERROR_ZERO_RETURN) {
            if (clean != NULL) {
                *clean = true;
            }
            break;
        }
        if (r == 0) {
            break;
        }
        return -1;
    }
    return (ssize_t)got;
}

/* The next TLS read must be a close_notify. */
bool tls_expect_close_notify(WOLFSSL *ssl)
{
    uint8_t b;
    bool clean = false;
    return tls_read_full(ssl, &b, 1, &clean) == 0 && clean;
}

/* ---- the connection under test ------------------------------------------------------------ */

static void probe_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct run *r = w->data;
    (void)loop;
    (void)revents;
    if (r->conn != NULL && r->probe != NULL) {
        r->probe(r, r->probe_arg);
    }
}

static void on_closed(void *ctx, const struct pk_conn_summary *s)
{
    struct run *r = ctx;
    r->closed_calls++;
    r->sum = *s;
    r->conn = NULL;
    ev_break(r->loop, EVBREAK_ALL);
}

static void on_established(void *ctx, struct pk_conn *c)
{
    struct run *r = ctx;
    r->established_calls++;
    assert_false(pk_conn_handshaking(c));
    assert_non_null(pk_conn_peer_leaf(c));
    assert_ptr_equal(pk_conn_identity(c), id_front);
    if (r->close_in_established) {
        pk_conn_close(c);
    }
}

static void guard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct run *r = w->data;
    (void)revents;
    r->guard_fired = true;
    ev_break(loop, EVBREAK_ALL);
}

void run_init(struct run *r)
{
    memset(r, 0, sizeof(*r));
    r->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(r->loop);
    ev_timer_init(&r->guard, guard_cb, 8., 0.);
    r->guard.data = r;
    ev_timer_init(&r->probe_timer, probe_cb, 0.005, 0.005);
    r->probe_timer.data = r;
}

static int authorize(void *ctx, const struct pk_cert *leaf, char *peer_id, size_t len,
                     struct pk_err *err)
{
    struct authz *a = ctx;
    const char *uri = pk_cert_uri_count(leaf) > 0 ? pk_cert_uri(leaf, 0) : "";

    a->calls++;
    snprintf(a->seen, sizeof(a->seen), "%s", uri);
    for (int i = 0; a->wait_for != NULL && !atomic_load(a->wait_for) && i < 300; i++) {
        usleep(10000);
    }
    if (a->expect != NULL && strcmp(uri, a->expect) != 0) {
        return pk_err_set(err, PK_E_DENIED, "peer '%s' is not '%s'", uri, a->expect);
    }
    snprintf(peer_id, len, "%s", uri);
    return 0;
}

struct pk_conn_params base_params(struct run *r, enum pk_conn_dir dir, int fd,
                                  const struct sockaddr_storage *peer, socklen_t peer_len,
                                  const struct sockaddr_storage *target, socklen_t target_len,
                                  struct authz *a, const struct pk_conn_limits *limits)
{
    struct pk_conn_params p = {
            .dir = dir,
            .fd = fd,
            .peer_len = peer_len,
            .target_len = target_len,
            .identity = id_front,
            .authorize = authorize,
            .authorize_ctx = a,
            .close_on_peer_expiry = true,
            .limits = limits,
            .listener = "test",
            .closed = on_closed,
            .closed_ctx = r,
            .established = on_established,
    };
    memcpy(&p.peer, peer, peer_len);
    memcpy(&p.target, target, target_len);
    return p;
}

void start(struct run *r, const struct pk_conn_params *p)
{
    struct pk_err err = {{0}};
    int rc = pk_conn_start(r->loop, p, &r->conn, &err);
    if (rc != 0) {
        fail_msg("pk_conn_start: %d %s", rc, err.msg);
    }
    assert_true(pk_conn_handshaking(r->conn));
    assert_null(pk_conn_peer_leaf(r->conn));
    assert_int_equal(r->closed_calls, 0); /* never from within pk_conn_start */
}

/* Run until closed() (or the guard), then check that it came exactly once and that the
 * connection left no watcher behind. */
void run_loop(struct run *r)
{
    ev_timer_start(r->loop, &r->guard);
    if (r->probe != NULL) {
        ev_timer_start(r->loop, &r->probe_timer);
    }
    ev_run(r->loop, 0);
    ev_timer_stop(r->loop, &r->guard);
    ev_timer_stop(r->loop, &r->probe_timer);
    assert_false(r->guard_fired);
    assert_int_equal(r->closed_calls, 1);
    assert_int_equal(ev_run(r->loop, EVRUN_NOWAIT), 0);
    assert_int_equal(r->closed_calls, 1);
    assert_int_equal(r->established_calls, r->sum.streamed ? 1 : 0);
    assert_string_equal(r->sum.listener, "test");
}

void run_free(struct run *r)
{
    ev_loop_destroy(r->loop);
}

void expect_reason(const struct run *r, enum pk_conn_close_reason reason)
{
    if (r->sum.reason != reason) {
        fail_msg("reason %s (%s), expected %s", pk_conn_close_reason_name(r->sum.reason),
                 r->sum.detail, pk_conn_close_reason_name(reason));
    }
}
