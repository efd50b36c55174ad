/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for proxy/conn over real sockets on 127.0.0.1 (and socketpairs), with real
 * mTLS between identities minted at test time by the project's own Sentry CA. The connection
 * runs on a libev loop in the main thread; the TLS clients, TLS servers and plaintext targets
 * around it are small blocking threads (their sockets carry 5 s timeouts, so a bug fails a
 * check instead of hanging). SIGPIPE keeps its default action: a send() without MSG_NOSIGNAL
 * anywhere in the connection would kill the test. */
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
#include "common/pem.h"
#include "common/tls.h"
#include "common/x509.h"
#include "proxy/conn.h"
#include "sentry/creds.h"
#include "sentry/issue.h"
#include "testutil.h"

#define FRONTEND "spiffe://example.test/ns/default/frontend"
#define BACKEND  "spiffe://example.test/ns/default/backend"
#define OTHER    "spiffe://example.test/ns/default/other"

#define BIG (4u * 1024u * 1024u)

/* ---- fixtures: a CA and two workload identities ------------------------------------------- */

static char scratch_dir[600];
static struct pk_sentry_creds *creds;
static struct pk_identity *id_front;
static struct pk_identity *id_back;
static struct pk_tls_ctx *ctx_nocert; /* a client that verifies the server but has no cert */

static struct pk_identity *make_identity(const char *spiffe_id, int64_t ttl)
{
    return workload_identity(creds, spiffe_id, ttl);
}

static int group_setup(void **state)
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

static int group_teardown(void **state)
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

static void tfail(const char *fmt, ...) PK_PRINTF(1, 2);
static void tfail(const char *fmt, ...)
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

#define TCHECK(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            tfail("%s:%d: %s (errno %s)", __FILE__, __LINE__, #cond, strerror(errno));             \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

static int test_setup(void **state)
{
    (void)state;
    thread_failure[0] = '\0';
    return 0;
}

static void join(pthread_t th)
{
    assert_int_equal(pthread_join(th, NULL), 0);
}

static void assert_threads_ok(void)
{
    if (thread_failure[0] != '\0') {
        fail_msg("helper thread: %s", thread_failure);
    }
}

/* ---- sockets ------------------------------------------------------------------------------ */

static void set_timeouts(int fd)
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
static int tcp_listener(struct sockaddr_storage *addr, socklen_t *len, int backlog, int rcvbuf)
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
static int unix_listener(struct sockaddr_storage *addr, socklen_t *len)
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
static void tcp_pair(int *cl, int *sv, struct sockaddr_storage *peer, socklen_t *peer_len,
                     int cl_sndbuf, int sv_rcvbuf)
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

static int accept_timeout(int lfd, int ms)
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
static bool listener_has_connection(int lfd)
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

static bool write_all(int fd, const void *p, size_t n)
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
static ssize_t read_full(int fd, void *p, size_t n)
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

static void fill(uint8_t *p, size_t n, uint64_t off, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = pattern(off + i, seed);
    }
}

static bool check(const uint8_t *p, size_t n, uint64_t off, uint32_t seed)
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
static WOLFSSL *tls_session(struct pk_tls_ctx *ctx, int *fdp)
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

static bool tls_write_all(WOLFSSL *ssl, const void *p, size_t n)
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
static ssize_t tls_read_full(WOLFSSL *ssl, void *p, size_t n, bool *clean)
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
static bool tls_expect_close_notify(WOLFSSL *ssl)
{
    uint8_t b;
    bool clean = false;
    return tls_read_full(ssl, &b, 1, &clean) == 0 && clean;
}

/* ---- the connection under test ------------------------------------------------------------ */

struct run {
    struct ev_loop *loop;
    ev_timer guard;
    bool guard_fired;
    int closed_calls;
    int established_calls;
    bool close_in_established;
    struct pk_conn *conn;
    struct pk_conn_summary sum;
    char detail[256];
    /* Optional: called every 5 ms on the loop while the connection lives. */
    void (*probe)(struct run *r, void *arg);
    void *probe_arg;
    ev_timer probe_timer;
};

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

static void run_init(struct run *r)
{
    memset(r, 0, sizeof(*r));
    r->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(r->loop);
    ev_timer_init(&r->guard, guard_cb, 8., 0.);
    r->guard.data = r;
    ev_timer_init(&r->probe_timer, probe_cb, 0.005, 0.005);
    r->probe_timer.data = r;
}

struct authz {
    const char *expect; /* NULL: allow anyone */
    int calls;
    char seen[256];
    atomic_int *wait_for; /* hold the decision until this is set (at most 3 s) */
};

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

static struct pk_conn_params base_params(struct run *r, enum pk_conn_dir dir, int fd,
                                         const struct sockaddr_storage *peer, socklen_t peer_len,
                                         const struct sockaddr_storage *target,
                                         socklen_t target_len, struct authz *a,
                                         const struct pk_conn_limits *limits)
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

static void start(struct run *r, const struct pk_conn_params *p)
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
static void run_loop(struct run *r)
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

static void run_free(struct run *r)
{
    ev_loop_destroy(r->loop);
}

static void expect_reason(const struct run *r, enum pk_conn_close_reason reason)
{
    if (r->sum.reason != reason) {
        fail_msg("reason %s (%s), expected %s", pk_conn_close_reason_name(r->sum.reason),
                 r->sum.detail, pk_conn_close_reason_name(reason));
    }
}

/* ---- 1. inbound happy path ---------------------------------------------------------------- */

struct t1 {
    int cl;
    int lfd;
    size_t up_got;
    size_t down_got;
    atomic_int idle;         /* the client got its pong and waits */
    atomic_int idle_checked; /* the loop has looked at the idle connection */
    size_t idle_buffer_bytes;
    int idle_probes;
};

/* Once the client sits idle after the ping-pong, the connection must hold no buffers. */
static void t1_probe(struct run *r, void *arg)
{
    struct t1 *t = arg;
    if (!atomic_load(&t->idle) || atomic_load(&t->idle_checked)) {
        return;
    }
    /* The client may read the pong before the loop has finished the round that sent it. */
    t->idle_buffer_bytes = pk_conn_buffer_bytes(r->conn);
    if (t->idle_buffer_bytes == 0 || ++t->idle_probes >= 100) {
        atomic_store(&t->idle_checked, 1);
    }
}

static void *t1_target(void *arg)
{
    struct t1 *t = arg;
    uint8_t *buf = malloc(65536);
    char ping[4];
    int fd = accept_timeout(t->lfd, 5000);

    TCHECK(fd >= 0);
    TCHECK(read_full(fd, ping, 4) == 4 && memcmp(ping, "ping", 4) == 0);
    TCHECK(write_all(fd, "pong", 4));
    for (;;) {
        ssize_t n = recv(fd, buf, 65536, 0);
        TCHECK(n >= 0);
        if (n == 0) {
            break;
        }
        TCHECK(check(buf, (size_t)n, t->up_got, 1));
        t->up_got += (size_t)n;
    }
    for (size_t off = 0; off < BIG; off += 65536) {
        fill(buf, 65536, off, 2);
        TCHECK(write_all(fd, buf, 65536));
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    free(buf);
    return NULL;
}

static void *t1_client(void *arg)
{
    struct t1 *t = arg;
    uint8_t *buf = malloc(65536);
    char pong[4];
    bool clean = false;
    WOLFSSL *ssl = tls_session(pk_identity_client_tls(id_front), &t->cl);

    TCHECK(ssl != NULL && wolfSSL_connect(ssl) == WOLFSSL_SUCCESS);
    TCHECK(tls_write_all(ssl, "ping", 4));
    TCHECK(tls_read_full(ssl, pong, 4, NULL) == 4 && memcmp(pong, "pong", 4) == 0);
    atomic_store(&t->idle, 1);
    for (int i = 0; i < 500 && !atomic_load(&t->idle_checked); i++) {
        usleep(10000);
    }
    for (size_t off = 0; off < BIG; off += 65536) {
        fill(buf, 65536, off, 1);
        TCHECK(tls_write_all(ssl, buf, 65536));
    }
    TCHECK(wolfSSL_shutdown(ssl) != WOLFSSL_FATAL_ERROR);
    for (;;) {
        ssize_t n = tls_read_full(ssl, buf, 65536, &clean);
        TCHECK(n >= 0);
        TCHECK(check(buf, (size_t)n, t->down_got, 2));
        t->down_got += (size_t)n;
        if (n < 65536) {
            break;
        }
    }
    TCHECK(clean);
out:
    wolfSSL_free(ssl);
    free(buf);
    pk_tls_thread_exit();
    return NULL;
}

/* TLS client with a certificate -> conn -> plaintext target: bytes both ways arrive exactly,
 * 4 MiB each way, the counts match, and both half-closes end the connection as DONE. */
static void inbound_happy_path(void **state)
{
    struct run r;
    struct t1 t = {0};
    struct authz a = {.expect = FRONTEND};
    struct sockaddr_storage peer, target;
    socklen_t peer_len, target_len;
    pthread_t thc, tht;
    int sv;
    char want_addr[64];

    (void)state;
    run_init(&r);
    t.lfd = tcp_listener(&target, &target_len, 4, 0);
    tcp_pair(&t.cl, &sv, &peer, &peer_len, 0, 0);
    snprintf(want_addr, sizeof(want_addr), "127.0.0.1:%u",
             ntohs(((struct sockaddr_in *)&peer)->sin_port));
    struct pk_conn_params p =
            base_params(&r, PK_CONN_INBOUND, sv, &peer, peer_len, &target, target_len, &a, NULL);
    start(&r, &p);
    r.probe = t1_probe;
    r.probe_arg = &t;
    pthread_create(&tht, NULL, t1_target, &t);
    pthread_create(&thc, NULL, t1_client, &t);
    run_loop(&r);
    join(thc);
    join(tht);
    assert_threads_ok();
    expect_reason(&r, PK_CLOSE_DONE);
    assert_string_equal(r.sum.detail, "");
    assert_true(r.sum.streamed);
    assert_int_equal(a.calls, 1);
    assert_string_equal(r.sum.peer_id, FRONTEND);
    assert_string_equal(r.sum.peer_addr, want_addr);
    assert_int_equal(t.up_got, BIG);
    assert_int_equal(t.down_got, BIG);
    assert_int_equal(r.sum.bytes_in, 4 + BIG);
    assert_int_equal(r.sum.bytes_out, 4 + BIG);
    assert_true(r.sum.duration > 0 && r.sum.duration < 8);
    assert_true(atomic_load(&t.idle_checked));
    assert_int_equal(t.idle_buffer_bytes, 0);
    close(t.cl);
    close(t.lfd);
    run_free(&r);
}

/* ---- 2. half-close both ways -------------------------------------------------------------- */

struct t2 {
    int cl;
    int lfd;
    bool target_first; /* the target half-closes first (b), else the client (a) */
    bool target_saw_eof;
    bool client_saw_close_notify;
};

static void *t2_target(void *arg)
{
    struct t2 *t = arg;
    char buf[64];
    int fd = accept_timeout(t->lfd, 5000);

    TCHECK(fd >= 0);
    if (t->target_first) {
        TCHECK(write_all(fd, "banner", 6));
        TCHECK(shutdown(fd, SHUT_WR) == 0);
        TCHECK(read_full(fd, buf, sizeof(buf)) == 4 && memcmp(buf, "late", 4) == 0);
        t->target_saw_eof = true;
    } else {
        /* EOF (read 0) arrives while our own direction is still open. */
        TCHECK(read_full(fd, buf, sizeof(buf)) == 7 && memcmp(buf, "request", 7) == 0);
        t->target_saw_eof = true;
        TCHECK(write_all(fd, "response", 8));
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    return NULL;
}

static void *t2_client(void *arg)
{
    struct t2 *t = arg;
    char buf[64];
    bool clean = false;
    WOLFSSL *ssl = tls_session(pk_identity_client_tls(id_front), &t->cl);

    TCHECK(ssl != NULL && wolfSSL_connect(ssl) == WOLFSSL_SUCCESS);
    if (t->target_first) {
        TCHECK(tls_read_full(ssl, buf, sizeof(buf), &clean) == 6 && clean);
        TCHECK(memcmp(buf, "banner", 6) == 0);
        t->client_saw_close_notify = true;
        /* Our direction is still open after the close_notify. */
        TCHECK(tls_write_all(ssl, "late", 4));
        TCHECK(wolfSSL_shutdown(ssl) != WOLFSSL_FATAL_ERROR);
    } else {
        TCHECK(tls_write_all(ssl, "request", 7));
        TCHECK(wolfSSL_shutdown(ssl) != WOLFSSL_FATAL_ERROR);
        TCHECK(tls_read_full(ssl, buf, sizeof(buf), &clean) == 8 && clean);
        TCHECK(memcmp(buf, "response", 8) == 0);
        t->client_saw_close_notify = true;
    }
out:
    wolfSSL_free(ssl);
    pk_tls_thread_exit();
    return NULL;
}

static void half_close_case(bool target_first)
{
    struct run r;
    struct t2 t = {.target_first = target_first};
    struct authz a = {0};
    struct sockaddr_storage peer, target;
    socklen_t peer_len, target_len;
    pthread_t thc, tht;
    int sv;

    run_init(&r);
    t.lfd = tcp_listener(&target, &target_len, 4, 0);
    tcp_pair(&t.cl, &sv, &peer, &peer_len, 0, 0);
    struct pk_conn_params p =
            base_params(&r, PK_CONN_INBOUND, sv, &peer, peer_len, &target, target_len, &a, NULL);
    start(&r, &p);
    pthread_create(&tht, NULL, t2_target, &t);
    pthread_create(&thc, NULL, t2_client, &t);
    run_loop(&r);
    join(thc);
    join(tht);
    assert_threads_ok();
    expect_reason(&r, PK_CLOSE_DONE);
    assert_true(t.target_saw_eof);
    assert_true(t.client_saw_close_notify);
    assert_int_equal(r.sum.bytes_in, target_first ? 4 : 7);
    assert_int_equal(r.sum.bytes_out, target_first ? 6 : 8);
    close(t.cl);
    close(t.lfd);
    run_free(&r);
}

/* The client's close_notify reaches the target as EOF while the target can still answer; the
 * target's shutdown(SHUT_WR) reaches the client as close_notify while it can still send. */
static void half_close_each_way(void **state)
{
    (void)state;
    half_close_case(false);
    half_close_case(true);
}

/* ---- 3. backpressure ---------------------------------------------------------------------- */

#define T3_TOTAL (8u * 1024u * 1024u)

struct t3 {
    int cl;
    int lfd;
    atomic_int client_blocked;
    size_t written_before_block;
    size_t got;
    size_t max_buffer_bytes;     /* the most the connection held, seen between loop rounds */
    size_t blocked_buffer_bytes; /* what it held while the client was stalled */
    bool blocked_seen;
};

static void t3_probe(struct run *r, void *arg)
{
    struct t3 *t = arg;
    size_t n = pk_conn_buffer_bytes(r->conn);
    t->max_buffer_bytes = PK_MAX(t->max_buffer_bytes, n);
    if (atomic_load(&t->client_blocked) && !t->blocked_seen) {
        t->blocked_buffer_bytes = n;
        t->blocked_seen = true;
    }
}

static void *t3_target(void *arg)
{
    struct t3 *t = arg;
    uint8_t *buf = malloc(65536);
    int fd = accept_timeout(t->lfd, 5000);

    TCHECK(fd >= 0);
    /* Do not read until the client's writes have stalled. */
    for (int i = 0; i < 500 && !atomic_load(&t->client_blocked); i++) {
        usleep(10000);
    }
    TCHECK(atomic_load(&t->client_blocked));
    for (;;) {
        ssize_t n = recv(fd, buf, 65536, 0);
        TCHECK(n >= 0);
        if (n == 0) {
            break;
        }
        TCHECK(check(buf, (size_t)n, t->got, 3));
        t->got += (size_t)n;
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    free(buf);
    return NULL;
}

static void *t3_client(void *arg)
{
    struct t3 *t = arg;
    uint8_t *buf = malloc(16384);
    size_t off = 0;
    int stalls = 0;
    WOLFSSL *ssl = tls_session(pk_identity_client_tls(id_front), &t->cl);

    TCHECK(ssl != NULL && wolfSSL_connect(ssl) == WOLFSSL_SUCCESS);
    TCHECK(fcntl(t->cl, F_SETFL, O_NONBLOCK) == 0);
    while (off < T3_TOTAL) {
        /* The same bytes at the same address for every retry, as wolfSSL requires. */
        fill(buf, 16384, off, 3);
        int w = wolfSSL_write(ssl, buf, 16384);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        TCHECK(wolfSSL_get_error(ssl, w) == WOLFSSL_ERROR_WANT_WRITE);
        struct pollfd pfd = {.fd = t->cl, .events = POLLOUT};
        int pr = poll(&pfd, 1, 300);
        TCHECK(pr >= 0);
        if (pr == 0 && !atomic_load(&t->client_blocked)) {
            t->written_before_block = off;
            atomic_store(&t->client_blocked, 1);
        }
        stalls = pr == 0 ? stalls + 1 : 0;
        TCHECK(stalls < 15); /* once the target reads, the data must flow again */
    }
    TCHECK(fcntl(t->cl, F_SETFL, 0) == 0);
    TCHECK(wolfSSL_shutdown(ssl) != WOLFSSL_FATAL_ERROR);
    TCHECK(tls_expect_close_notify(ssl));
out:
    atomic_store(&t->client_blocked, 1);
    wolfSSL_free(ssl);
    free(buf);
    pk_tls_thread_exit();
    return NULL;
}

/* The target (on a unix socket) stops reading: the client's writes stall within 1 MiB — the
 * connection holds two 16 KiB rings and stops reading, the rest is kernel socket buffers —
 * and when the target resumes, all 8 MiB arrive in order. */
static void backpressure(void **state)
{
    struct run r;
    struct t3 t = {0};
    struct authz a = {0};
    struct sockaddr_storage peer, target;
    socklen_t peer_len, target_len;
    struct pk_conn_limits lim = {.buffer_size = 16384, .idle_timeout = 30};
    pthread_t thc, tht;
    int sv;

    (void)state;
    run_init(&r);
    t.lfd = unix_listener(&target, &target_len);
    tcp_pair(&t.cl, &sv, &peer, &peer_len, 16384, 16384);
    struct pk_conn_params p =
            base_params(&r, PK_CONN_INBOUND, sv, &peer, peer_len, &target, target_len, &a, &lim);
    start(&r, &p);
    r.probe = t3_probe;
    r.probe_arg = &t;
    pthread_create(&tht, NULL, t3_target, &t);
    pthread_create(&thc, NULL, t3_client, &t);
    run_loop(&r);
    join(thc);
    join(tht);
    assert_threads_ok();
    expect_reason(&r, PK_CLOSE_DONE);
    assert_true(t.written_before_block > 2 * 16384);
    assert_true(t.written_before_block < 1024 * 1024);
    assert_int_equal(t.got, T3_TOTAL);
    /* Stalled: the ring toward the target is full, and ciphertext may wait in the small
     * read-ahead (at most 4 KiB); the other direction carries nothing and holds no memory. */
    assert_in_range(t.max_buffer_bytes, 16384, 16384 + 4096);
    assert_int_equal(r.sum.bytes_in, T3_TOTAL);
    assert_int_equal(r.sum.bytes_out, 0);
    close(t.cl);
    close(t.lfd);
    run_free(&r);
}

/* ---- 4. reset mid-transfer ---------------------------------------------------------------- */

struct t4 {
    int cl;
    int lfd;
};

static void *t4_target(void *arg)
{
    struct t4 *t = arg;
    uint8_t *buf = calloc(1, 65536);
    char go[2];
    int fd = accept_timeout(t->lfd, 5000);

    TCHECK(fd >= 0);
    TCHECK(read_full(fd, go, 2) == 2 && memcmp(go, "go", 2) == 0);
    /* Stream towards the client until the connection goes away. */
    for (int i = 0; i < 1024 && write_all(fd, buf, 65536); i++) {
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    free(buf);
    return NULL;
}

static void *t4_client(void *arg)
{
    struct t4 *t = arg;
    uint8_t *buf = malloc(65536);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    WOLFSSL *ssl = tls_session(pk_identity_client_tls(id_front), &t->cl);

    TCHECK(ssl != NULL && wolfSSL_connect(ssl) == WOLFSSL_SUCCESS);
    TCHECK(tls_write_all(ssl, "go", 2));
    TCHECK(tls_read_full(ssl, buf, 65536, NULL) == 65536);
    TCHECK(setsockopt(t->cl, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0);
    close(t->cl); /* RST, with the connection still writing to us */
    t->cl = -1;
out:
    wolfSSL_free(ssl);
    free(buf);
    pk_tls_thread_exit();
    return NULL;
}

/* The client resets the TCP connection while the target streams to it: RESET, closed() once,
 * nothing leaks (ASan), and no SIGPIPE from writing into the reset socket. */
static void peer_reset(void **state)
{
    struct run r;
    struct t4 t = {0};
    struct authz a = {0};
    struct sockaddr_storage peer, target;
    socklen_t peer_len, target_len;
    pthread_t thc, tht;
    int sv;

    (void)state;
    run_init(&r);
    t.lfd = tcp_listener(&target, &target_len, 4, 0);
    tcp_pair(&t.cl, &sv, &peer, &peer_len, 0, 0);
    struct pk_conn_params p =
            base_params(&r, PK_CONN_INBOUND, sv, &peer, peer_len, &target, target_len, &a, NULL);
    start(&r, &p);
    pthread_create(&tht, NULL, t4_target, &t);
    pthread_create(&thc, NULL, t4_client, &t);
    run_loop(&r);
    join(thc);
    join(tht);
    assert_threads_ok();
    expect_reason(&r, PK_CLOSE_RESET);
    assert_non_null(strstr(r.sum.detail, "client"));
    assert_true(r.sum.streamed);
    assert_true(r.sum.bytes_in == 2);
    assert_true(r.sum.bytes_out >= 65536);
    close(t.lfd);
    run_free(&r);
}

/* ---- 5. denied peers ---------------------------------------------------------------------- */

struct t5 {
    int cl;
    struct pk_tls_ctx *ctx;
    atomic_int sent;
    int read_result;
};

static void *t5_client(void *arg)
{
    struct t5 *t = arg;
    uint8_t b[16];
    WOLFSSL *ssl = tls_session(t->ctx, &t->cl);

    TCHECK(ssl != NULL);
    if (wolfSSL_connect(ssl) == WOLFSSL_SUCCESS) {
        /* TLS 1.3: our Finished is out, the server has not judged us yet; application data
         * right behind it must still not reach the target. */
        (void)tls_write_all(ssl, "secret", 6);
    }
    atomic_store(&t->sent, 1);
    t->read_result = wolfSSL_read(ssl, b, sizeof(b));
out:
    atomic_store(&t->sent, 1);
    wolfSSL_free(ssl);
    pk_tls_thread_exit();
    return NULL;
}

static void denied_case(struct pk_tls_ctx *client_ctx, const char *expect,
                        enum pk_conn_close_reason reason)
{
    struct run r;
    struct t5 t = {.ctx = client_ctx};
    struct authz a = {.expect = expect, .wait_for = &t.sent};
    struct sockaddr_storage peer, target;
    socklen_t peer_len, target_len;
    pthread_t thc;
    int sv;
    int lfd;

    run_init(&r);
    lfd = tcp_listener(&target, &target_len, 4, 0);
    tcp_pair(&t.cl, &sv, &peer, &peer_len, 0, 0);
    struct pk_conn_params p =
            base_params(&r, PK_CONN_INBOUND, sv, &peer, peer_len, &target, target_len, &a, NULL);
    start(&r, &p);
    pthread_create(&thc, NULL, t5_client, &t);
    run_loop(&r);
    join(thc);
    assert_threads_ok();
    expect_reason(&r, reason);
    assert_false(r.sum.streamed);
    assert_int_equal(r.sum.bytes_in, 0);
    assert_int_equal(r.sum.bytes_out, 0);
    assert_true(t.read_result <= 0); /* the client was turned away */
    /* Not one connect(): nothing is queued on the target's listener. */
    assert_false(listener_has_connection(lfd));
    if (reason == PK_CLOSE_DENIED) {
        assert_int_equal(a.calls, 1);
        assert_string_equal(a.seen, FRONTEND);
        assert_non_null(strstr(r.sum.detail, "is not '" BACKEND "'"));
        assert_string_equal(r.sum.peer_id, "");
    } else {
        assert_int_equal(a.calls, 0);
    }
    close(t.cl);
    close(lfd);
    run_free(&r);
}

/* authorize() refuses the client (which sends application data right after its Finished):
 * DENIED with authorize's message, and the target never sees a connection. A client without
 * a certificate fails the handshake and never reaches authorize(). */
static void denied_peer(void **state)
{
    (void)state;
    denied_case(pk_identity_client_tls(id_front), BACKEND, PK_CLOSE_DENIED);
    denied_case(ctx_nocert, NULL, PK_CLOSE_HANDSHAKE_FAILED);
}

/* ---- 6. timeouts and connect failures ----------------------------------------------------- */

/* The client connects and says nothing. */
static void handshake_timeout(void **state)
{
    struct run r;
    struct authz a = {0};
    struct sockaddr_storage peer, target;
    socklen_t peer_len, target_len;
    struct pk_conn_limits lim = {.handshake_timeout = 0.2};
    int cl, sv, lfd;

    (void)state;
    run_init(&r);
    lfd = tcp_listener(&target, &target_len, 4, 0);
    tcp_pair(&cl, &sv, &peer, &peer_len, 0, 0);
    struct pk_conn_params p =
            base_params(&r, PK_CONN_INBOUND, sv, &peer, peer_len, &target, target_len, &a, &lim);
    start(&r, &p);
    run_loop(&r);
    expect_reason(&r, PK_CLOSE_HANDSHAKE_TIMEOUT);
    assert_true(r.sum.duration >= 0.15 && r.sum.duration < 3);
    assert_int_equal(a.calls, 0);
    assert_false(listener_has_connection(lfd));
    char b;
    assert_int_equal(recv(cl, &b, 1, 0), 0); /* our socket was closed */
    close(cl);
    close(lfd);
    run_free(&r);
}

static void *handshake_then_read(void *arg)
{
    int *cl = arg;
    uint8_t b;
    WOLFSSL *ssl = tls_session(pk_identity_client_tls(id_front), cl);

    TCHECK(ssl != NULL && wolfSSL_connect(ssl) == WOLFSSL_SUCCESS);
    TCHECK(wolfSSL_read(ssl, &b, 1) <= 0);
out:
    wolfSSL_free(ssl);
    pk_tls_thread_exit();
    return NULL;
}

/* Inbound to a closed port; outbound to a unix path that does not exist; outbound to a
 * listener whose backlog is full (the SYN is dropped: a connect timeout). */
static void connect_failures(void **state)
{
    struct run r;
    struct authz a = {0};
    struct sockaddr_storage peer, target;
    socklen_t peer_len, target_len;
    pthread_t th;
    int cl, sv, lfd;

    (void)state;
    /* Closed port: bind one, close it. */
    run_init(&r);
    lfd = tcp_listener(&target, &target_len, 4, 0);
    close(lfd);
    tcp_pair(&cl, &sv, &peer, &peer_len, 0, 0);
    struct pk_conn_params p =
            base_params(&r, PK_CONN_INBOUND, sv, &peer, peer_len, &target, target_len, &a, NULL);
    start(&r, &p);
    pthread_create(&th, NULL, handshake_then_read, &cl);
    run_loop(&r);
    join(th);
    assert_threads_ok();
    expect_reason(&r, PK_CLOSE_CONNECT_FAILED);
    assert_non_null(strstr(r.sum.detail, strerror(ECONNREFUSED)));
    assert_string_equal(r.sum.peer_id, FRONTEND); /* authorized first, then connected */
    assert_false(r.sum.streamed);
    close(cl);
    run_free(&r);

    /* A unix socket path that does not exist. */
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    /* Relative to the working directory: scratch_dir may be longer than sun_path. */
    snprintf(sun.sun_path, sizeof(sun.sun_path), "picket-test-no-such-%d.sock", (int)getpid());
    memset(&target, 0, sizeof(target));
    memcpy(&target, &sun, sizeof(sun));
    run_init(&r);
    tcp_pair(&cl, &sv, &peer, &peer_len, 0, 0);
    p = base_params(&r, PK_CONN_OUTBOUND, sv, &peer, peer_len, &target, sizeof(sun), &a, NULL);
    start(&r, &p);
    run_loop(&r);
    expect_reason(&r, PK_CLOSE_CONNECT_FAILED);
    assert_non_null(strstr(r.sum.detail, strerror(ENOENT)));
    close(cl);
    run_free(&r);

    /* Backlog 0 with one connection queued: the next SYN goes unanswered. */
    struct pk_conn_limits lim = {.connect_timeout = 0.3};
    lfd = tcp_listener(&target, &target_len, 0, 0);
    int filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(filler, (struct sockaddr *)&target, target_len), 0);
    run_init(&r);
    tcp_pair(&cl, &sv, &peer, &peer_len, 0, 0);
    p = base_params(&r, PK_CONN_OUTBOUND, sv, &peer, peer_len, &target, target_len, &a, &lim);
    start(&r, &p);
    run_loop(&r);
    expect_reason(&r, PK_CLOSE_CONNECT_TIMEOUT);
    assert_true(r.sum.duration >= 0.25 && r.sum.duration < 3);
    close(cl);
    close(filler);
    close(lfd);
    run_free(&r);
}

struct t6 {
    int cl;
    int lfd;
    double tick;   /* client: send one byte every tick seconds until closed (0: send one) */
    bool notified; /* the client got close_notify */
    size_t got;    /* bytes the target received */
};

static void *t6_target(void *arg)
{
    struct t6 *t = arg;
    char b[64];
    int fd = accept_timeout(t->lfd, 5000);

    TCHECK(fd >= 0);
    for (;;) {
        ssize_t n = recv(fd, b, sizeof(b), 0);
        if (n <= 0) {
            break;
        }
        t->got += (size_t)n;
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    return NULL;
}

static void *t6_client(void *arg)
{
    struct t6 *t = arg;
    WOLFSSL *ssl = tls_session(pk_identity_client_tls(id_front), &t->cl);

    TCHECK(ssl != NULL && wolfSSL_connect(ssl) == WOLFSSL_SUCCESS);
    for (int i = 0; i < 50; i++) {
        TCHECK(tls_write_all(ssl, "x", 1));
        if (t->tick == 0) {
            break;
        }
        struct pollfd pfd = {.fd = t->cl, .events = POLLIN};
        if (poll(&pfd, 1, (int)(t->tick * 1000)) == 1) {
            break; /* the close_notify */
        }
    }
    t->notified = tls_expect_close_notify(ssl);
out:
    wolfSSL_free(ssl);
    pk_tls_thread_exit();
    return NULL;
}

static void timed_case(double tick, const struct pk_conn_limits *lim, struct run *r, struct t6 *t)
{
    struct authz a = {0};
    struct sockaddr_storage peer, target;
    socklen_t peer_len, target_len;
    pthread_t thc, tht;
    int sv;

    run_init(r);
    memset(t, 0, sizeof(*t));
    t->tick = tick;
    t->lfd = tcp_listener(&target, &target_len, 4, 0);
    tcp_pair(&t->cl, &sv, &peer, &peer_len, 0, 0);
    struct pk_conn_params p =
            base_params(r, PK_CONN_INBOUND, sv, &peer, peer_len, &target, target_len, &a, lim);
    start(r, &p);
    pthread_create(&tht, NULL, t6_target, t);
    pthread_create(&thc, NULL, t6_client, t);
    run_loop(r);
    join(thc);
    join(tht);
    assert_threads_ok();
    close(t->cl);
    close(t->lfd);
    run_free(r);
}

/* Idle: one byte, then silence -> IDLE_TIMEOUT, and the client hears close_notify. Lifetime:
 * a byte every 0.1 s keeps a 0.3 s idle timer from firing, and max_lifetime ends it anyway. */
static void idle_and_lifetime(void **state)
{
    struct run r;
    struct t6 t;
    struct pk_conn_limits idle = {.idle_timeout = 0.3};
    struct pk_conn_limits life = {.idle_timeout = 0.3, .max_lifetime = 0.9};

    (void)state;
    timed_case(0, &idle, &r, &t);
    expect_reason(&r, PK_CLOSE_IDLE_TIMEOUT);
    assert_true(r.sum.streamed);
    assert_true(t.notified);
    assert_int_equal(t.got, 1);
    assert_int_equal(r.sum.bytes_in, 1);
    assert_true(r.sum.duration >= 0.3 && r.sum.duration < 3);

    timed_case(0.1, &life, &r, &t);
    expect_reason(&r, PK_CLOSE_LIFETIME);
    assert_true(t.notified);
    assert_true(t.got >= 5);
    assert_true(r.sum.duration >= 0.85 && r.sum.duration < 3);
}

/* ---- 7. outbound -------------------------------------------------------------------------- */

struct t7 {
    int app;
    int lfd;
    bool deny;
    char client_id[256]; /* the server saw this client certificate */
    size_t app_bytes;    /* application bytes the server received */
    bool got_close_notify;
    char app_got[64];
    ssize_t app_read;
};

static void *t7_server(void *arg)
{
    struct t7 *t = arg;
    char buf[256];
    struct pk_buf der;
    struct pk_cert *leaf = NULL;
    bool clean = false;
    WOLFSSL *ssl = NULL;
    int fd = accept_timeout(t->lfd, 5000);

    pk_buf_init(&der, PK_PEM_MAX_DER);
    TCHECK(fd >= 0);
    ssl = tls_session(pk_identity_server_tls(id_back), &fd);
    TCHECK(ssl != NULL && wolfSSL_accept(ssl) == WOLFSSL_SUCCESS);
    TCHECK(pk_tls_peer_leaf_der(ssl, &der) == 0);
    TCHECK(pk_cert_parse_der(der.data, der.len, "client", &leaf, NULL) == 0);
    snprintf(t->client_id, sizeof(t->client_id), "%s", pk_cert_uri(leaf, 0));
    ssize_t n = tls_read_full(ssl, buf, sizeof(buf), &clean);
    t->app_bytes = n > 0 ? (size_t)n : 0;
    t->got_close_notify = clean;
    if (!t->deny) {
        TCHECK(n == 14 && memcmp(buf, "hello from app", 14) == 0);
        TCHECK(tls_write_all(ssl, "hello from backend", 18));
        TCHECK(wolfSSL_shutdown(ssl) != WOLFSSL_FATAL_ERROR);
    }
out:
    pk_cert_free(leaf);
    pk_buf_free(&der);
    wolfSSL_free(ssl);
    if (fd >= 0) {
        close(fd);
    }
    pk_tls_thread_exit();
    return NULL;
}

static void *t7_app(void *arg)
{
    struct t7 *t = arg;

    if (t->deny) {
        /* More while the connection is connecting and handshaking. */
        (void)write_all(t->app, " more secret", 12);
    } else {
        TCHECK(shutdown(t->app, SHUT_WR) == 0);
    }
    t->app_read = read_full(t->app, t->app_got, sizeof(t->app_got));
out:
    return NULL;
}

static void outbound_case(bool deny)
{
    struct run r;
    struct t7 t = {.deny = deny};
    struct authz a = {.expect = deny ? OTHER : BACKEND};
    struct sockaddr_storage peer, target;
    socklen_t peer_len, target_len;
    pthread_t ths, tha;
    int sv;

    run_init(&r);
    t.lfd = tcp_listener(&target, &target_len, 4, 0);
    tcp_pair(&t.app, &sv, &peer, &peer_len, 0, 0);
    /* The app speaks first, before the connection even exists. */
    assert_true(write_all(t.app, deny ? "secret" : "hello from app", deny ? 6 : 14));
    struct pk_conn_params p =
            base_params(&r, PK_CONN_OUTBOUND, sv, &peer, peer_len, &target, target_len, &a, NULL);
    p.target_sni = "backend.example.test";
    start(&r, &p);
    pthread_create(&ths, NULL, t7_server, &t);
    pthread_create(&tha, NULL, t7_app, &t);
    run_loop(&r);
    join(ths);
    join(tha);
    assert_threads_ok();
    assert_string_equal(t.client_id, FRONTEND);
    assert_int_equal(a.calls, 1);
    assert_string_equal(a.seen, BACKEND);
    if (deny) {
        expect_reason(&r, PK_CLOSE_DENIED);
        assert_non_null(strstr(r.sum.detail, "is not '" OTHER "'"));
        assert_false(r.sum.streamed);
        assert_int_equal(t.app_bytes, 0); /* not one app byte reached the server */
        assert_true(t.got_close_notify);
        assert_int_equal(r.sum.bytes_in, 0);
        assert_true(t.app_read <= 0); /* the app was turned away too */
    } else {
        expect_reason(&r, PK_CLOSE_DONE);
        assert_string_equal(r.sum.peer_id, BACKEND);
        assert_int_equal(t.app_read, 18);
        assert_memory_equal(t.app_got, "hello from backend", 18);
        assert_int_equal(r.sum.bytes_in, 14);
        assert_int_equal(r.sum.bytes_out, 18);
    }
    close(t.app);
    close(t.lfd);
    run_free(&r);
}

/* Plaintext app -> conn -> TLS server requiring a client certificate: the exchange works and
 * the server sees our identity; a server that authorize() rejects gets close_notify and not
 * one of the bytes the app wrote before and during the connect. */
static void outbound(void **state)
{
    (void)state;
    outbound_case(false);
    outbound_case(true);
}

/* ---- 8. PROXY protocol v2 ----------------------------------------------------------------- */

struct t8 {
    int cl;
    int lfd;
    uint8_t hdr[512];
    size_t hdr_len;
    char payload[16];
};

static void *t8_target(void *arg)
{
    struct t8 *t = arg;
    int fd = accept_timeout(t->lfd, 5000);

    TCHECK(fd >= 0);
    TCHECK(read_full(fd, t->hdr, 16) == 16);
    size_t body = ((size_t)t->hdr[14] << 8) | t->hdr[15];
    TCHECK(body <= sizeof(t->hdr) - 16);
    TCHECK(read_full(fd, t->hdr + 16, body) == (ssize_t)body);
    t->hdr_len = 16 + body;
    TCHECK(read_full(fd, t->payload, sizeof(t->payload)) == 5);
    TCHECK(write_all(fd, "ok", 2));
out:
    if (fd >= 0) {
        close(fd);
    }
    return NULL;
}

static void *t8_client(void *arg)
{
    struct t8 *t = arg;
    char b[8];
    bool clean = false;
    WOLFSSL *ssl = tls_session(pk_identity_client_tls(id_front), &t->cl);

    TCHECK(ssl != NULL && wolfSSL_connect(ssl) == WOLFSSL_SUCCESS);
    TCHECK(tls_write_all(ssl, "hello", 5));
    TCHECK(wolfSSL_shutdown(ssl) != WOLFSSL_FATAL_ERROR);
    TCHECK(tls_read_full(ssl, b, sizeof(b), &clean) == 2 && clean);
out:
    wolfSSL_free(ssl);
    pk_tls_thread_exit();
    return NULL;
}

static void proxy_case(bool unix_client, struct t8 *t, struct sockaddr_storage *peer,
                       struct sockaddr_storage *local)
{
    struct run r;
    struct authz a = {0};
    struct sockaddr_storage target;
    socklen_t peer_len, target_len, local_len = sizeof(*local);
    pthread_t thc, tht;
    int sv;

    run_init(&r);
    memset(t, 0, sizeof(*t));
    t->lfd = tcp_listener(&target, &target_len, 4, 0);
    if (unix_client) {
        int sp[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        t->cl = sp[1];
        sv = sp[0];
        set_timeouts(t->cl);
        assert_int_equal(fcntl(sv, F_SETFL, O_NONBLOCK), 0);
        memset(peer, 0, sizeof(*peer));
        peer->ss_family = AF_UNIX;
        peer_len = sizeof(sa_family_t);
    } else {
        tcp_pair(&t->cl, &sv, peer, &peer_len, 0, 0);
    }
    assert_int_equal(getsockname(sv, (struct sockaddr *)local, &local_len), 0);
    struct pk_conn_params p =
            base_params(&r, PK_CONN_INBOUND, sv, peer, peer_len, &target, target_len, &a, NULL);
    p.proxy_protocol = true;
    start(&r, &p);
    pthread_create(&tht, NULL, t8_target, t);
    pthread_create(&thc, NULL, t8_client, t);
    run_loop(&r);
    join(thc);
    join(tht);
    assert_threads_ok();
    expect_reason(&r, PK_CLOSE_DONE);
    if (unix_client) {
        assert_string_equal(r.sum.peer_addr, "unix");
    } else {
        assert_non_null(strstr(r.sum.peer_addr, "127.0.0.1:"));
    }
    assert_memory_equal(t->payload, "hello", 5);
    /* The header is not payload. */
    assert_int_equal(r.sum.bytes_in, 5);
    assert_int_equal(r.sum.bytes_out, 2);
    close(t->cl);
    close(t->lfd);
    run_free(&r);
}

static const uint8_t pp2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static void expect_tlv(const uint8_t *p, size_t len)
{
    size_t id_len = strlen(FRONTEND);
    assert_int_equal(len, 3 + id_len);
    assert_int_equal(p[0], 0xE0);
    assert_int_equal(((size_t)p[1] << 8) | p[2], id_len);
    assert_memory_equal(p + 3, FRONTEND, id_len);
}

/* The target receives, before the payload, exactly: the v2 signature, PROXY over TCP/IPv4
 * from the client's address to the address it connected to, and a 0xE0 TLV with the client's
 * SPIFFE ID; from a unix socket client, family UNSPEC with the TLV alone. */
static void proxy_protocol_header(void **state)
{
    struct t8 t;
    struct sockaddr_storage peer, local;

    (void)state;
    proxy_case(false, &t, &peer, &local);
    const struct sockaddr_in *src = (const struct sockaddr_in *)&peer;
    const struct sockaddr_in *dst = (const struct sockaddr_in *)&local;
    assert_memory_equal(t.hdr, pp2_sig, 12);
    assert_int_equal(t.hdr[12], 0x21);
    assert_int_equal(t.hdr[13], 0x11);
    assert_int_equal(t.hdr_len, 16 + 12 + 3 + strlen(FRONTEND));
    assert_memory_equal(t.hdr + 16, &src->sin_addr, 4);
    assert_memory_equal(t.hdr + 20, &dst->sin_addr, 4);
    assert_memory_equal(t.hdr + 24, &src->sin_port, 2);
    assert_memory_equal(t.hdr + 26, &dst->sin_port, 2);
    assert_int_equal(ntohs(src->sin_port) != 0, 1);
    expect_tlv(t.hdr + 28, t.hdr_len - 28);

    proxy_case(true, &t, &peer, &local);
    assert_memory_equal(t.hdr, pp2_sig, 12);
    assert_int_equal(t.hdr[12], 0x21);
    assert_int_equal(t.hdr[13], 0x00);
    expect_tlv(t.hdr + 16, t.hdr_len - 16);
}

/* ---- the rest: peer expiry, pk_conn_close, bad parameters --------------------------------- */

struct t9 {
    int cl;
    int lfd;
    struct pk_identity *id;
    bool notified;
};

static void *t9_client(void *arg)
{
    struct t9 *t = arg;
    WOLFSSL *ssl = tls_session(pk_identity_client_tls(t->id), &t->cl);

    TCHECK(ssl != NULL && wolfSSL_connect(ssl) == WOLFSSL_SUCCESS);
    TCHECK(tls_write_all(ssl, "x", 1));
    t->notified = tls_expect_close_notify(ssl);
out:
    wolfSSL_free(ssl);
    pk_tls_thread_exit();
    return NULL;
}

static void *t9_target(void *arg)
{
    struct t9 *t = arg;
    char b[8];
    int fd = accept_timeout(t->lfd, 5000);
    TCHECK(fd >= 0);
    while (recv(fd, b, sizeof(b), 0) > 0) {
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    return NULL;
}

/* A client whose certificate expires two seconds from now is cut off when it does. */
static void peer_certificate_expiry(void **state)
{
    struct run r;
    struct t9 t = {0};
    struct authz a = {0};
    struct sockaddr_storage peer, target;
    socklen_t peer_len, target_len;
    pthread_t thc, tht;
    int sv;

    (void)state;
    t.id = make_identity(FRONTEND, 2);
    time_t not_after = pk_identity_not_after(t.id);
    run_init(&r);
    t.lfd = tcp_listener(&target, &target_len, 4, 0);
    tcp_pair(&t.cl, &sv, &peer, &peer_len, 0, 0);
    struct pk_conn_params p =
            base_params(&r, PK_CONN_INBOUND, sv, &peer, peer_len, &target, target_len, &a, NULL);
    start(&r, &p);
    pthread_create(&tht, NULL, t9_target, &t);
    pthread_create(&thc, NULL, t9_client, &t);
    run_loop(&r);
    join(thc);
    join(tht);
    assert_threads_ok();
    expect_reason(&r, PK_CLOSE_PEER_EXPIRED);
    /* Not time(): glibc reads the coarse clock, a few milliseconds behind libev's. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    assert_true(now.tv_sec >= not_after);
    assert_true(t.notified);
    close(t.cl);
    close(t.lfd);
    pk_identity_unref(t.id);
    run_free(&r);
}

/* pk_conn_close before the loop ever ran, and from within established(): SHUTDOWN, closed()
 * once, synchronously in the first case. */
static void close_in_any_phase(void **state)
{
    struct run r;
    struct authz a = {0};
    struct sockaddr_storage peer, target;
    socklen_t peer_len, target_len;
    pthread_t th;
    int cl, sv, lfd;

    (void)state;
    run_init(&r);
    lfd = tcp_listener(&target, &target_len, 4, 0);
    tcp_pair(&cl, &sv, &peer, &peer_len, 0, 0);
    struct pk_conn_params p =
            base_params(&r, PK_CONN_INBOUND, sv, &peer, peer_len, &target, target_len, &a, NULL);
    start(&r, &p);
    pk_conn_close(r.conn);
    assert_int_equal(r.closed_calls, 1);
    expect_reason(&r, PK_CLOSE_SHUTDOWN);
    assert_int_equal(ev_run(r.loop, EVRUN_NOWAIT), 0);
    close(cl);
    run_free(&r);

    run_init(&r);
    r.close_in_established = true;
    tcp_pair(&cl, &sv, &peer, &peer_len, 0, 0);
    p = base_params(&r, PK_CONN_INBOUND, sv, &peer, peer_len, &target, target_len, &a, NULL);
    start(&r, &p);
    pthread_create(&th, NULL, handshake_then_read, &cl);
    run_loop(&r);
    join(th);
    assert_threads_ok();
    expect_reason(&r, PK_CLOSE_SHUTDOWN);
    assert_true(r.sum.streamed);
    int afd = accept_timeout(lfd, 1000);
    assert_true(afd >= 0); /* it had connected: closing is allowed after that too */
    close(afd);
    close(cl);
    close(lfd);
    run_free(&r);
}

static void bad_params(void **state)
{
    struct run r;
    struct authz a = {0};
    struct sockaddr_storage peer = {0}, target = {0};
    struct pk_conn *c = NULL;
    struct pk_err err = {{0}};
    int sp[2];

    (void)state;
    run_init(&r);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    target.ss_family = AF_APPLETALK;
    struct pk_conn_params p =
            base_params(&r, PK_CONN_INBOUND, sp[0], &peer, 0, &target, sizeof(target), &a, NULL);
    assert_int_equal(pk_conn_start(r.loop, &p, &c, &err), PK_E_INVALID);
    assert_null(c);
    assert_non_null(strstr(err.msg, "target"));
    assert_int_equal(fcntl(sp[0], F_GETFD), -1); /* taken and closed */
    assert_int_equal(errno, EBADF);
    close(sp[1]);
    run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup(inbound_happy_path, test_setup),
            cmocka_unit_test_setup(half_close_each_way, test_setup),
            cmocka_unit_test_setup(backpressure, test_setup),
            cmocka_unit_test_setup(peer_reset, test_setup),
            cmocka_unit_test_setup(denied_peer, test_setup),
            cmocka_unit_test_setup(handshake_timeout, test_setup),
            cmocka_unit_test_setup(connect_failures, test_setup),
            cmocka_unit_test_setup(idle_and_lifetime, test_setup),
            cmocka_unit_test_setup(outbound, test_setup),
            cmocka_unit_test_setup(proxy_protocol_header, test_setup),
            cmocka_unit_test_setup(peer_certificate_expiry, test_setup),
            cmocka_unit_test_setup(close_in_any_phase, test_setup),
            cmocka_unit_test_setup(bad_params, test_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
