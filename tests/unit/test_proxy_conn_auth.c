/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for proxy/conn's handshake and authorization, over real sockets on
 * 127.0.0.1 with real mTLS: denied and certificate-less clients, the outbound direction to a
 * TLS server allowed or refused, and a peer certificate that expires mid-connection. The
 * fixtures are in proxy_conn_testutil.c. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup(denied_peer, test_setup),
            cmocka_unit_test_setup(outbound, test_setup),
            cmocka_unit_test_setup(peer_certificate_expiry, test_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
