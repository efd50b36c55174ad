/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for proxy/conn's data path, over real sockets on 127.0.0.1 (and
 * socketpairs) with real mTLS: bytes both ways, half-close each way, backpressure, a reset
 * mid-transfer and the PROXY protocol v2 header. The fixtures are in proxy_conn_testutil.c. */
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

#define BIG (4u * 1024u * 1024u)

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

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup(inbound_happy_path, test_setup),
            cmocka_unit_test_setup(half_close_each_way, test_setup),
            cmocka_unit_test_setup(backpressure, test_setup),
            cmocka_unit_test_setup(peer_reset, test_setup),
            cmocka_unit_test_setup(proxy_protocol_header, test_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
