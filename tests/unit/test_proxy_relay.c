/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for proxy/relay, the plaintext relay: bytes both ways at once, half-close
 * in each direction, backpressure from a target that stops reading, a reset, a refused connect
 * and the idle timeout. The accepted side is a socketpair, the target a TCP listener on
 * 127.0.0.1; the test plays both ends between turns of a libev loop. Every wait polls until a
 * deadline. */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* cmocka.h needs the standard headers before it. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
/* clang-format on */

#include "common/buf.h"
#include "proxy/relay.h"
#include "testutil.h"

#define DEADLINE 20.0 /* seconds: generous, for a loaded machine */

struct fixture {
    struct ev_loop *loop;
    ev_timer heartbeat; /* so that one loop turn never blocks for long */
    int listener;
    struct sockaddr_storage target;
    socklen_t target_len;
    int client; /* our end of the accepted socket */
    int server; /* the target's accepted connection, -1 until accepted */
    struct pk_relay *relay;
    bool closed;
    bool established;
    struct pk_conn_summary sum;
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void heartbeat_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
}

static void on_closed(void *ctx, const struct pk_conn_summary *sum)
{
    struct fixture *f = ctx;
    assert_false(f->closed);
    f->closed = true;
    f->sum = *sum;
    f->relay = NULL;
}

static void on_established(void *ctx)
{
    ((struct fixture *)ctx)->established = true;
}

static void turn(struct fixture *f)
{
    ev_run(f->loop, EVRUN_ONCE);
}

/* Turn the loop until cond (evaluated once per turn: it may have side effects) holds. */
#define RUN_UNTIL(f, cond)                                                                         \
    do {                                                                                           \
        double until_ = mono() + DEADLINE;                                                         \
        bool ok_;                                                                                  \
        while (!(ok_ = (cond)) && mono() < until_) {                                               \
            turn(f);                                                                               \
        }                                                                                          \
        if (!ok_) {                                                                                \
            fail_msg("timed out waiting for %s", #cond);                                           \
        }                                                                                          \
    } while (0)

/* A listener on 127.0.0.1 with an ephemeral port. */
static void listen_local(struct fixture *f, bool do_listen)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(f->listener >= 0);
    assert_int_equal(bind(f->listener, (struct sockaddr *)&sin, sizeof(sin)), 0);
    f->target_len = sizeof(f->target);
    assert_int_equal(getsockname(f->listener, (struct sockaddr *)&f->target, &f->target_len), 0);
    if (do_listen) {
        assert_int_equal(listen(f->listener, 8), 0);
    }
}

static void start_relay(struct fixture *f, const struct pk_conn_limits *limits, bool do_listen)
{
    int sv[2];
    struct pk_err err = {{0}};

    memset(f, 0, sizeof(*f));
    f->server = -1;
    f->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(f->loop);
    ev_timer_init(&f->heartbeat, heartbeat_cb, 0.01, 0.01);
    ev_timer_start(f->loop, &f->heartbeat);
    listen_local(f, do_listen);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    set_nonblocking(sv[0]);
    set_nonblocking(sv[1]);
    f->client = sv[0];
    struct pk_relay_params p = {
            .fd = sv[1],
            .target_len = f->target_len,
            .limits = limits,
            .listener = "test",
            .closed = on_closed,
            .established = on_established,
            .ctx = f,
    };
    memcpy(&p.target, &f->target, f->target_len);
    if (pk_relay_start(f->loop, &p, &f->relay, &err) != 0) {
        fail_msg("pk_relay_start: %s", err.msg);
    }
}

static void accept_target(struct fixture *f)
{
    RUN_UNTIL(f, (f->server = accept4(f->listener, NULL, NULL, SOCK_NONBLOCK)) >= 0);
    RUN_UNTIL(f, f->established);
}

static void finish(struct fixture *f)
{
    if (f->relay != NULL) {
        pk_relay_close(f->relay);
        assert_true(f->closed);
    }
    ev_timer_stop(f->loop, &f->heartbeat);
    ev_loop_destroy(f->loop);
    close(f->listener);
    close(f->client);
    if (f->server >= 0) {
        close(f->server);
    }
}

static uint8_t pattern(uint64_t i, uint8_t salt)
{
    return (uint8_t)((i * 131u + (i >> 9)) ^ salt);
}

/* Non-blocking step: send what fits of the stream [*off, total) of pattern salt. */
static void send_some(int fd, uint64_t *off, uint64_t total, uint8_t salt)
{
    uint8_t chunk[8192];
    while (*off < total) {
        size_t n = (size_t)(total - *off < sizeof(chunk) ? total - *off : sizeof(chunk));
        for (size_t i = 0; i < n; i++) {
            chunk[i] = pattern(*off + i, salt);
        }
        ssize_t w = send(fd, chunk, n, MSG_NOSIGNAL);
        if (w < 0) {
            assert_int_equal(errno, EAGAIN);
            return;
        }
        *off += (uint64_t)w;
    }
}

/* Non-blocking step: receive and check what is there; true at EOF. */
static bool recv_some(int fd, uint64_t *off, uint8_t salt)
{
    struct pk_buf got;

    pk_buf_init(&got, 64u << 20);
    bool eof = drain_nonblocking(fd, &got);
    for (size_t i = 0; i < got.len; i++) {
        if (got.data[i] != pattern(*off + i, salt)) {
            fail_msg("byte %llu differs", (unsigned long long)(*off + i));
        }
    }
    *off += got.len;
    pk_buf_free(&got);
    return eof;
}

/* 1 MiB each way at once, through 4 KiB buffers: everything arrives, in order. */
static void test_relays_both_ways_at_once(void **state)
{
    struct fixture f;
    struct pk_conn_limits lim = {.buffer_size = 4096};
    const uint64_t total = 1u << 20;
    uint64_t up_sent = 0, up_got = 0, down_sent = 0, down_got = 0;

    start_relay(&f, &lim, true);
    accept_target(&f);
    double until = mono() + DEADLINE;
    while ((up_got < total || down_got < total) && mono() < until) {
        send_some(f.client, &up_sent, total, 0x11);
        send_some(f.server, &down_sent, total, 0x22);
        assert_false(recv_some(f.server, &up_got, 0x11));
        assert_false(recv_some(f.client, &down_got, 0x22));
        turn(&f);
    }
    assert_int_equal(up_got, total);
    assert_int_equal(down_got, total);
    assert_false(f.closed);
    finish(&f);
    assert_int_equal(f.sum.bytes_in, total);
    assert_int_equal(f.sum.bytes_out, total);
    assert_int_equal(f.sum.reason, PK_CLOSE_SHUTDOWN);
}

/* Each EOF travels on its own: the client's FIN reaches the target while the target still
 * talks, and the relay ends cleanly once both directions have ended. */
static void test_half_close_each_way(void **state)
{
    struct fixture f;
    uint8_t buf[16];
    ssize_t n = -1;

    start_relay(&f, NULL, true);
    accept_target(&f);
    assert_int_equal(send(f.client, "ping", 4, 0), 4);
    assert_int_equal(shutdown(f.client, SHUT_WR), 0);
    RUN_UNTIL(&f, recv(f.server, buf, sizeof(buf), MSG_PEEK) == 4);
    assert_int_equal(recv(f.server, buf, sizeof(buf), 0), 4);
    assert_memory_equal(buf, "ping", 4);
    RUN_UNTIL(&f, recv(f.server, buf, sizeof(buf), 0) == 0); /* the client's EOF */
    assert_false(f.closed);

    assert_int_equal(send(f.server, "pong", 4, 0), 4);
    RUN_UNTIL(&f, (n = recv(f.client, buf, sizeof(buf), 0)) >= 0);
    assert_int_equal(n, 4);
    assert_memory_equal(buf, "pong", 4);
    assert_false(f.closed);
    assert_int_equal(shutdown(f.server, SHUT_WR), 0);
    RUN_UNTIL(&f, f.closed);
    assert_int_equal(recv(f.client, buf, sizeof(buf), 0), 0);
    assert_int_equal(f.sum.reason, PK_CLOSE_DONE);
    assert_int_equal(f.sum.bytes_in, 4);
    assert_int_equal(f.sum.bytes_out, 4);
    assert_true(f.sum.streamed);
    finish(&f);
}

/* A target that stops reading stops the relay reading the client: the client's writes block
 * after a bounded amount (its socket, one relay buffer, the kernel's TCP buffers), and nothing
 * is lost once the target reads again. */
static void test_backpressure_from_slow_target(void **state)
{
    struct fixture f;
    struct pk_conn_limits lim = {.buffer_size = 4096};
    int small = 16384;
    uint64_t sent = 0, got = 0;
    const uint64_t cap = 64u << 20;

    start_relay(&f, &lim, true);
    assert_int_equal(setsockopt(f.listener, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    accept_target(&f);
    /* Write until no turn of the loop makes room any more. */
    int still = 0;
    double until = mono() + DEADLINE;
    while (still < 50 && sent < cap && mono() < until) {
        uint64_t before = sent;
        send_some(f.client, &sent, cap, 0x33);
        still = sent == before ? still + 1 : 0;
        turn(&f);
    }
    assert_true(still >= 50);
    assert_true(sent < cap);
    assert_false(f.closed);

    /* The target reads: everything written arrives, and more fits again. */
    const uint64_t total = sent + (256u << 10);
    until = mono() + DEADLINE;
    while (got < total && mono() < until) {
        send_some(f.client, &sent, total, 0x33);
        assert_false(recv_some(f.server, &got, 0x33));
        turn(&f);
    }
    assert_int_equal(got, total);
    finish(&f);
    assert_int_equal(f.sum.bytes_in, total);
}

/* A reset from the target ends both sides. */
static void test_target_reset_ends_relay(void **state)
{
    struct fixture f;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    uint8_t buf[16];

    start_relay(&f, NULL, true);
    accept_target(&f);
    assert_int_equal(setsockopt(f.server, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(f.server);
    f.server = -1;
    RUN_UNTIL(&f, f.closed);
    assert_int_equal(f.sum.reason, PK_CLOSE_RESET);
    assert_int_equal(recv(f.client, buf, sizeof(buf), 0), 0);
    finish(&f);
}

static void test_connect_refused(void **state)
{
    struct fixture f;

    start_relay(&f, NULL, false); /* bound, not listening: connect is refused */
    RUN_UNTIL(&f, f.closed);
    assert_int_equal(f.sum.reason, PK_CLOSE_CONNECT_FAILED);
    assert_false(f.sum.streamed);
    assert_false(f.established);
    finish(&f);
}

static void test_idle_timeout(void **state)
{
    struct fixture f;
    struct pk_conn_limits lim = {.idle_timeout = 0.2};

    start_relay(&f, &lim, true);
    accept_target(&f);
    RUN_UNTIL(&f, f.closed);
    assert_int_equal(f.sum.reason, PK_CLOSE_IDLE_TIMEOUT);
    finish(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_relays_both_ways_at_once),
            cmocka_unit_test(test_half_close_each_way),
            cmocka_unit_test(test_backpressure_from_slow_target),
            cmocka_unit_test(test_target_reset_ends_relay),
            cmocka_unit_test(test_connect_refused),
            cmocka_unit_test(test_idle_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
