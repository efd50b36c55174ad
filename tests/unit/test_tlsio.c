/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for common/tlsio — wolfSSL over a non-blocking socketpair, both ends real
 * wolfSSL (TLS 1.3): data both ways with and without read-ahead, how outcomes are classified
 * (close_notify, bare FIN, socket error), and the shutdown rules (one close_notify, even when the
 * socket was full). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

/* cmocka.h needs the standard headers before it. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
/* clang-format on */

#include "common/buf.h"
#include "common/tlsio.h"
#include "testutil.h"

#define RECORD_HEADER 5

static struct pk_buf cert_pem;
static struct pk_buf key_pem;

/* One TLS connection over a socketpair: cli on fds[0], srv on fds[1]. */
struct pair {
    int fds[2];
    WOLFSSL_CTX *cctx;
    WOLFSSL_CTX *sctx;
    WOLFSSL *cli;
    WOLFSSL *srv;
    struct pk_tlsio cio;
    struct pk_tlsio sio;
};

/* Both ends attached, nothing sent yet. */
static void pair_new(struct pair *p, bool read_ahead)
{
    memset(p, 0, sizeof(*p));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fds), 0);
    set_nonblocking(p->fds[0]);
    set_nonblocking(p->fds[1]);
    p->sctx = wolfSSL_CTX_new(wolfTLSv1_3_server_method());
    p->cctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
    assert_non_null(p->sctx);
    assert_non_null(p->cctx);
    assert_int_equal(wolfSSL_CTX_use_certificate_buffer(p->sctx, cert_pem.data, (long)cert_pem.len,
                                                        WOLFSSL_FILETYPE_PEM),
                     WOLFSSL_SUCCESS);
    assert_int_equal(wolfSSL_CTX_use_PrivateKey_buffer(p->sctx, key_pem.data, (long)key_pem.len,
                                                       WOLFSSL_FILETYPE_PEM),
                     WOLFSSL_SUCCESS);
    wolfSSL_CTX_set_verify(p->cctx, WOLFSSL_VERIFY_NONE, NULL);
    p->cli = wolfSSL_new(p->cctx);
    p->srv = wolfSSL_new(p->sctx);
    assert_non_null(p->cli);
    assert_non_null(p->srv);
    pk_tlsio_attach(&p->cio, p->cli, p->fds[0], read_ahead);
    pk_tlsio_attach(&p->sio, p->srv, p->fds[1], read_ahead);
}

/* Both ends attached and past the handshake. */
static void pair_open(struct pair *p, bool read_ahead)
{
    pair_new(p, read_ahead);
    /* Lock-step handshake: each side runs until it has to wait for the other. */
    bool cli_done = false;
    bool srv_done = false;
    for (int i = 0; i < 100 && !(cli_done && srv_done); i++) {
        if (!cli_done) {
            int r = wolfSSL_negotiate(p->cli);
            cli_done = r == WOLFSSL_SUCCESS;
            if (!cli_done) {
                assert_int_equal(pk_tlsio_outcome(&p->cio, p->cli, r), PK_TLSIO_WANT_READ);
            }
        }
        if (!srv_done) {
            int r = wolfSSL_negotiate(p->srv);
            srv_done = r == WOLFSSL_SUCCESS;
            if (!srv_done) {
                assert_int_equal(pk_tlsio_outcome(&p->sio, p->srv, r), PK_TLSIO_WANT_READ);
            }
        }
    }
    assert_true(cli_done && srv_done);
}

static void pair_close(struct pair *p)
{
    wolfSSL_free(p->cli);
    wolfSSL_free(p->srv);
    wolfSSL_CTX_free(p->cctx);
    wolfSSL_CTX_free(p->sctx);
    pk_tlsio_clear(&p->cio);
    pk_tlsio_clear(&p->sio);
    if (p->fds[0] >= 0) {
        close(p->fds[0]);
    }
    if (p->fds[1] >= 0) {
        close(p->fds[1]);
    }
}

/* Read exactly len plaintext bytes from ssl (the data is in flight already). */
static void read_exactly(WOLFSSL *ssl, struct pk_tlsio *io, uint8_t *out, size_t len)
{
    size_t got = 0;
    for (int i = 0; i < 1000 && got < len; i++) {
        int r = wolfSSL_read(ssl, out + got, (int)(len - got));
        if (r > 0) {
            got += (size_t)r;
        } else {
            assert_int_equal(pk_tlsio_outcome(io, ssl, r), PK_TLSIO_WANT_READ);
        }
    }
    assert_int_equal(got, len);
}

static void test_data_both_ways(bool read_ahead)
{
    struct pair p;
    uint8_t big[40000];
    uint8_t got[sizeof(big)];

    pair_open(&p, read_ahead);
    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (uint8_t)(i * 7);
    }
    /* Three records (16 KiB each at most), all in the socket before the reader starts. */
    size_t sent = 0;
    while (sent < sizeof(big)) {
        int r = wolfSSL_write(p.cli, big + sent, (int)(sizeof(big) - sent));
        assert_true(r > 0);
        sent += (size_t)r;
    }
    assert_true(p.cio.progress);
    read_exactly(p.srv, &p.sio, got, sizeof(got));
    assert_memory_equal(got, big, sizeof(big));
    /* Everything read: nothing more to hear, and an empty read-ahead can go. */
    int r = wolfSSL_read(p.srv, got, sizeof(got));
    assert_int_equal(pk_tlsio_outcome(&p.sio, p.srv, r), PK_TLSIO_WANT_READ);
    assert_int_equal(pk_tlsio_buffer_bytes(&p.sio), read_ahead ? PK_TLSIO_READ_AHEAD : 0);
    pk_tlsio_trim(&p.sio);
    assert_int_equal(pk_tlsio_buffer_bytes(&p.sio), 0);

    assert_int_equal(wolfSSL_write(p.srv, "pong", 4), 4);
    read_exactly(p.cli, &p.cio, got, 4);
    assert_memory_equal(got, "pong", 4);
    pair_close(&p);
}

static void test_data_read_ahead(void **state)
{
    test_data_both_ways(true);
}

static void test_data_plain_recv(void **state)
{
    test_data_both_ways(false);
}

/* A small record and the next one arrive together: one recvmsg() takes both, the second
 * record is served from the read-ahead without another trip to the socket. */
static void test_read_ahead_serves_next_record(void **state)
{
    struct pair p;
    uint8_t got[8];

    pair_open(&p, true);
    assert_int_equal(wolfSSL_write(p.cli, "one", 3), 3);
    assert_int_equal(wolfSSL_write(p.cli, "two", 3), 3);
    assert_int_equal(wolfSSL_read(p.srv, got, sizeof(got)), 3);
    assert_memory_equal(got, "one", 3);
    assert_true(pk_tlsio_buffer_bytes(&p.sio) > 0);
    /* The socket is empty now; the second record is here. */
    uint8_t probe;
    assert_int_equal(recv(p.fds[1], &probe, 1, MSG_PEEK), -1);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(wolfSSL_read(p.srv, got, sizeof(got)), 3);
    assert_memory_equal(got, "two", 3);
    pair_close(&p);
}

static void test_outcome_close_notify(void **state)
{
    struct pair p;
    uint8_t buf[16];

    pair_open(&p, true);
    assert_int_equal(pk_tlsio_shutdown(&p.cio, p.cli), 0);
    assert_true(pk_tlsio_shutdown_called(&p.cio));
    int r = wolfSSL_read(p.srv, buf, sizeof(buf));
    assert_int_equal(pk_tlsio_outcome(&p.sio, p.srv, r), PK_TLSIO_CLOSE_NOTIFY);
    pair_close(&p);
}

/* Half-close: after our close_notify (and the socket's SHUT_WR) the peer may go on talking, and
 * we go on reading until its own close_notify. */
static void test_half_close_keeps_reading(void **state)
{
    struct pair p;
    uint8_t buf[16];

    pair_open(&p, true);
    assert_int_equal(pk_tlsio_shutdown(&p.cio, p.cli), 0);
    assert_int_equal(shutdown(p.fds[0], SHUT_WR), 0);
    int r = wolfSSL_read(p.srv, buf, sizeof(buf));
    assert_int_equal(pk_tlsio_outcome(&p.sio, p.srv, r), PK_TLSIO_CLOSE_NOTIFY);

    assert_int_equal(wolfSSL_write(p.srv, "late", 4), 4);
    assert_int_equal(pk_tlsio_shutdown(&p.sio, p.srv), 0);
    read_exactly(p.cli, &p.cio, buf, 4);
    assert_memory_equal(buf, "late", 4);
    r = wolfSSL_read(p.cli, buf, sizeof(buf));
    assert_int_equal(pk_tlsio_outcome(&p.cio, p.cli, r), PK_TLSIO_CLOSE_NOTIFY);
    pair_close(&p);
}

static void test_outcome_bare_fin(void **state)
{
    struct pair p;
    uint8_t buf[16];

    pair_open(&p, true);
    assert_int_equal(shutdown(p.fds[0], SHUT_WR), 0);
    int r = wolfSSL_read(p.srv, buf, sizeof(buf));
    assert_int_equal(pk_tlsio_outcome(&p.sio, p.srv, r), PK_TLSIO_FIN);
    assert_true(p.sio.peer_eof);
    assert_int_equal(p.sio.io_errno, 0);
    pair_close(&p);
}

static void test_outcome_socket_error(void **state)
{
    struct pair p;
    char text[192];

    pair_open(&p, false);
    close(p.fds[1]);
    p.fds[1] = -1;
    /* No SIGPIPE (the test would die): EPIPE, classified as a failure with its errno. */
    int r = wolfSSL_write(p.cli, "lost", 4);
    assert_true(r <= 0);
    assert_int_equal(pk_tlsio_outcome(&p.cio, p.cli, r), PK_TLSIO_FAILED);
    assert_int_equal(p.cio.io_errno, EPIPE);
    assert_string_equal(pk_tlsio_error_text(&p.cio, p.cli, r, text, sizeof(text)), strerror(EPIPE));
    pair_close(&p);
}

/* The hello guard sits in the core: a ChangeCipherSpec before the ClientHello is refused with
 * its alert, the server sends nothing else (no flight), and the outcome says why. */
static void test_hello_guard_refuses_early_ccs(void **state)
{
    static const uint8_t ccs[] = {0x14, 0x03, 0x03, 0x00, 0x01, 0x01};
    struct pair p;
    uint8_t got[64];

    pair_new(&p, true);
    assert_int_equal(send(p.fds[0], ccs, sizeof(ccs), 0), (ssize_t)sizeof(ccs));
    int r = wolfSSL_negotiate(p.srv);
    assert_int_equal(pk_tlsio_outcome(&p.sio, p.srv, r), PK_TLSIO_FAILED);
    assert_non_null(pk_tlsio_refused(&p.sio));
    r = wolfSSL_negotiate(p.srv); /* asked again: still nothing read or sent */
    assert_int_equal(pk_tlsio_outcome(&p.sio, p.srv, r), PK_TLSIO_FAILED);
    assert_int_equal(recv(p.fds[0], got, sizeof(got), 0), PK_TLS_ALERT_RECORD_LEN);
    assert_int_equal(got[0], 0x15); /* alert */
    assert_int_equal(got[6], PK_TLS_ALERT_UNEXPECTED_MESSAGE);
    assert_int_equal(recv(p.fds[0], got, sizeof(got), 0), -1);
    assert_int_equal(errno, EAGAIN);
    assert_null(pk_tlsio_refused(&p.cio));
    pair_close(&p);
}

/* Count the TLS records in p..p+len; the bytes must end on a record boundary. */
static size_t count_records(const uint8_t *p, size_t len)
{
    size_t n = 0;
    size_t off = 0;
    while (off < len) {
        assert_true(len - off >= RECORD_HEADER);
        size_t body = (size_t)p[off + 3] << 8 | p[off + 4];
        assert_true(len - off - RECORD_HEADER >= body);
        off += RECORD_HEADER + body;
        n++;
    }
    return n;
}

struct replay {
    const uint8_t *p;
    size_t len;
};

static int replay_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct replay *rp = ctx;
    size_t n = PK_MIN((size_t)sz, rp->len);
    if (n == 0) {
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    }
    memcpy(buf, rp->p, n);
    rp->p += n;
    rp->len -= n;
    return (int)n;
}

/* The socket is full when close_notify is due: the alert must wait, and however often the
 * owner asks again while it waits (as a writable socket makes it do), the peer receives exactly
 * one close_notify after the data. Asking wolfSSL_shutdown again after WANT_WRITE would queue a
 * second alert record. */
static void test_shutdown_after_want_write_sends_one_close_notify(void **state)
{
    enum { PLAINTEXT = 100 };
    struct pair p;
    struct pk_buf wire;
    uint8_t msg[PLAINTEXT];
    uint8_t rec[RECORD_HEADER + 256];
    size_t records_sent = 0;
    int r;

    pair_open(&p, false);
    pk_buf_init(&wire, 16u << 20);
    memset(msg, 'x', sizeof(msg));
    int small = 4096;
    assert_int_equal(setsockopt(p.fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    /* Fill the socket with equal records (one skb each) until one has to wait in wolfSSL. */
    for (;;) {
        r = wolfSSL_write(p.cli, msg, sizeof(msg));
        if (r <= 0) {
            break;
        }
        records_sent++;
    }
    assert_int_equal(pk_tlsio_outcome(&p.cio, p.cli, r), PK_TLSIO_WANT_WRITE);
    /* Take exactly one record off the wire: room for the waiting one, and no more. */
    size_t body_len = 0;
    assert_int_equal(recv(p.fds[1], rec, RECORD_HEADER, 0), RECORD_HEADER);
    body_len = (size_t)rec[3] << 8 | rec[4];
    assert_true(body_len <= sizeof(rec) - RECORD_HEADER);
    assert_int_equal(recv(p.fds[1], rec + RECORD_HEADER, body_len, 0), (ssize_t)body_len);
    assert_int_equal(pk_buf_append(&wire, rec, RECORD_HEADER + body_len), 0);
    r = wolfSSL_write(p.cli, msg, sizeof(msg));
    assert_int_equal(r, (int)sizeof(msg));
    records_sent++;

    assert_int_equal(pk_tlsio_shutdown(&p.cio, p.cli), PK_TLSIO_WANT_WRITE);
    assert_true(pk_tlsio_shutdown_called(&p.cio));
    /* Still full: asked again, still waiting. */
    assert_int_equal(pk_tlsio_shutdown(&p.cio, p.cli), PK_TLSIO_WANT_WRITE);
    assert_false(drain_nonblocking(p.fds[1], &wire));
    assert_int_equal(pk_tlsio_shutdown(&p.cio, p.cli), 0);
    assert_int_equal(pk_tlsio_shutdown(&p.cio, p.cli), 0);
    assert_int_equal(shutdown(p.fds[0], SHUT_WR), 0); /* the owner's half-close */
    assert_true(drain_nonblocking(p.fds[1], &wire));

    /* The data records, then one more: the alert. */
    assert_int_equal(count_records(wire.data, wire.len), records_sent + 1);
    /* And it decrypts to the data followed by close_notify. */
    struct replay rp = {wire.data, wire.len};
    wolfSSL_SSLSetIORecv(p.srv, replay_recv);
    wolfSSL_SetIOReadCtx(p.srv, &rp);
    size_t plain = 0;
    uint8_t buf[PLAINTEXT];
    while ((r = wolfSSL_read(p.srv, buf, sizeof(buf))) > 0) {
        plain += (size_t)r;
    }
    assert_int_equal(wolfSSL_get_error(p.srv, r), WOLFSSL_ERROR_ZERO_RETURN);
    assert_int_equal(plain, records_sent * PLAINTEXT);
    assert_int_equal(rp.len, 0);
    pk_buf_free(&wire);
    pair_close(&p);
}

/* close_notify behind a write still waiting inside wolfSSL: too much to keep, so wolfSSL_shutdown
 * fails, and it is not asked again (which would queue a second alert). */
static void test_shutdown_behind_pending_write_fails_once(void **state)
{
    struct pair p;
    uint8_t msg[100];
    int r;

    pair_open(&p, false);
    memset(msg, 'y', sizeof(msg));
    int small = 4096;
    assert_int_equal(setsockopt(p.fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    while ((r = wolfSSL_write(p.cli, msg, sizeof(msg))) > 0) {
    }
    assert_int_equal(pk_tlsio_shutdown(&p.cio, p.cli), PK_TLSIO_FAILED);
    assert_int_equal(wolfSSL_get_error(p.cli, WOLFSSL_FATAL_ERROR), WOLFSSL_ERROR_WANT_WRITE);
    assert_int_equal(pk_tlsio_shutdown(&p.cio, p.cli), PK_TLSIO_FAILED);
    pair_close(&p);
}

static int group_setup(void **state)
{
    if (tmpdir_create("tlsiotest") != 0) {
        return -1;
    }
    if (sh_status("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                  "-keyout key.pem -out cert.pem -subj /CN=tlsio -days 1") != 0) {
        return -1;
    }
    pk_buf_init(&cert_pem, 1u << 20);
    pk_buf_init(&key_pem, 1u << 20);
    slurp("cert.pem", &cert_pem);
    slurp("key.pem", &key_pem);
    return wolfSSL_Init() == WOLFSSL_SUCCESS ? 0 : -1;
}

static int group_teardown(void **state)
{
    pk_buf_free(&cert_pem);
    pk_buf_free(&key_pem);
    wolfSSL_Cleanup();
    return tmpdir_remove();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_data_read_ahead),
            cmocka_unit_test(test_data_plain_recv),
            cmocka_unit_test(test_read_ahead_serves_next_record),
            cmocka_unit_test(test_outcome_close_notify),
            cmocka_unit_test(test_half_close_keeps_reading),
            cmocka_unit_test(test_outcome_bare_fin),
            cmocka_unit_test(test_outcome_socket_error),
            cmocka_unit_test(test_hello_guard_refuses_early_ccs),
            cmocka_unit_test(test_shutdown_after_want_write_sends_one_close_notify),
            cmocka_unit_test(test_shutdown_behind_pending_write_fails_once),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
