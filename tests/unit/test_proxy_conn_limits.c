/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for proxy/conn's limits and lifecycle, over real sockets on 127.0.0.1
 * with real mTLS: the handshake, connect, idle and lifetime timeouts, connect failures,
 * pk_conn_close in any phase, and parameters pk_conn_start refuses. The fixtures are in
 * proxy_conn_testutil.c. */
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
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/identity.h"
#include "common/pem.h"
#include "common/tls.h"
#include "common/x509.h"
#include "proxy/conn.h"
#include "proxy_conn_testutil.h"
#include "testutil.h"

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
            cmocka_unit_test_setup(handshake_timeout, test_setup),
            cmocka_unit_test_setup(connect_failures, test_setup),
            cmocka_unit_test_setup(idle_and_lifetime, test_setup),
            cmocka_unit_test_setup(close_in_any_phase, test_setup),
            cmocka_unit_test_setup(bad_params, test_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
