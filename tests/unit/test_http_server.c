/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for net/http_server, against a real libev loop on 127.0.0.1. */
/* cmocka.h must come after the system headers it relies on. */
/* clang-format off */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
/* clang-format on */

#include "common/err.h"
#include "common/log.h"
#include "net/http_server.h"

/* The server runs on its own loop in a second thread; the test talks to it over real sockets
 * from the main thread and stops the loop through an ev_async. */
struct fixture {
    struct ev_loop *loop;
    struct pk_http_server *srv;
    ev_async stop;
    pthread_t thread;
    char sock_path[256];
};

static void stop_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void *loop_thread(void *arg)
{
    struct fixture *fx = arg;
    ev_run(fx->loop, 0);
    return NULL;
}

static int healthz(void *ctx, const struct pk_http1_request *req, struct pk_http_reply *reply)
{
    return pk_buf_append_str(&reply->body, "ok\n");
}

static int metrics(void *ctx, const struct pk_http1_request *req, struct pk_http_reply *reply)
{
    reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
    return pk_buf_printf(&reply->body, "picket_up 1\npicket_query_len %zu\n", req->query.len);
}

static int failing(void *ctx, const struct pk_http1_request *req, struct pk_http_reply *reply)
{
    return PK_E_INVALID;
}

static int not_ready(void *ctx, const struct pk_http1_request *req, struct pk_http_reply *reply)
{
    reply->status = 503;
    return pk_buf_append_str(&reply->body, "no identity yet\n");
}

/* Tries to write a body larger than the server's cap. */
static int huge(void *ctx, const struct pk_http1_request *req, struct pk_http_reply *reply)
{
    char chunk[1024];
    int rc = 0;
    memset(chunk, 'x', sizeof(chunk));
    while (rc == 0) {
        rc = pk_buf_append(&reply->body, chunk, sizeof(chunk));
    }
    return rc;
}

static int bad_type(void *ctx, const struct pk_http1_request *req, struct pk_http_reply *reply)
{
    reply->content_type = "text/plain\r\nX-Injected: 1";
    return 0;
}

static void start(struct fixture *fx, const struct pk_http_server_opts *opts)
{
    struct pk_err err = {{0}};
    int rc;

    fx->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(fx->loop);
    rc = pk_http_server_new(fx->loop, opts, &fx->srv, &err);
    if (rc != 0) {
        print_error("server: %s\n", err.msg);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(pk_http_server_route(fx->srv, "/healthz", healthz, NULL), 0);
    assert_int_equal(pk_http_server_route(fx->srv, "/metrics", metrics, NULL), 0);
    assert_int_equal(pk_http_server_route(fx->srv, "/fail", failing, NULL), 0);
    assert_int_equal(pk_http_server_route(fx->srv, "/readyz", not_ready, NULL), 0);
    assert_int_equal(pk_http_server_route(fx->srv, "/huge", huge, NULL), 0);
    assert_int_equal(pk_http_server_route(fx->srv, "/badtype", bad_type, NULL), 0);
    ev_async_init(&fx->stop, stop_cb);
    ev_async_start(fx->loop, &fx->stop);
    assert_int_equal(pthread_create(&fx->thread, NULL, loop_thread, fx), 0);
}

static void stop(struct fixture *fx)
{
    ev_async_send(fx->loop, &fx->stop);
    assert_int_equal(pthread_join(fx->thread, NULL), 0);
    fx->srv = pk_http_server_free(fx->srv);
    ev_async_stop(fx->loop, &fx->stop);
    ev_loop_destroy(fx->loop);
}

static int connect_tcp(uint16_t port)
{
    struct sockaddr_in a;
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Read until EOF (or the 5 s receive timeout) into buf; returns the length. */
static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        n += (size_t)r;
        if (n == cap - 1) {
            break;
        }
    }
    buf[n] = '\0';
    return n;
}

static void send_all(int fd, const char *s, size_t n)
{
    assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* One request on a fresh connection; returns the whole answer in buf. */
static size_t exchange(uint16_t port, const char *request, char *buf, size_t cap)
{
    int fd = connect_tcp(port);
    size_t n;
    send_all(fd, request, strlen(request));
    n = read_all(fd, buf, cap);
    close(fd);
    return n;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void routes_and_statuses(void **state)
{
    struct fixture fx;
    struct pk_http_server_opts opts = {.host = "127.0.0.1", .port = 0};
    char buf[8192];
    uint16_t port;

    start(&fx, &opts);
    port = pk_http_server_port(fx.srv);
    assert_true(port != 0);

    exchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf));
    assert_true(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(buf, "Content-Length: 3\r\n"));
    assert_non_null(strstr(buf, "Connection: close\r\n"));
    assert_non_null(strstr(buf, "\r\n\r\nok\n"));

    exchange(port, "GET /metrics?a=1 HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(buf, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_non_null(strstr(buf, "picket_up 1\npicket_query_len 3\n"));

    /* HEAD: headers only. */
    exchange(port, "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf));
    assert_non_null(strstr(buf, "Content-Length: 3\r\n"));
    assert_true(strlen(buf) >= 4 && strcmp(buf + strlen(buf) - 4, "\r\n\r\n") == 0);

    exchange(port, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf));
    assert_true(strncmp(buf, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    exchange(port, "GET /healthz/ HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf));
    assert_true(strncmp(buf, "HTTP/1.1 404", 12) == 0);

    exchange(port, "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", buf,
             sizeof(buf));
    assert_true(strncmp(buf, "HTTP/1.1 405", 12) == 0);
    assert_non_null(strstr(buf, "Allow: GET, HEAD\r\n"));

    exchange(port, "GET /healthz HTTP/3.0\r\nHost: x\r\n\r\n", buf, sizeof(buf));
    assert_true(strncmp(buf, "HTTP/1.1 505", 12) == 0);
    exchange(port, "GET /healthz HTTP/1.1\r\nBroken header\r\n\r\n", buf, sizeof(buf));
    assert_true(strncmp(buf, "HTTP/1.1 400", 12) == 0);

    exchange(port, "GET /fail HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf));
    assert_true(strncmp(buf, "HTTP/1.1 500", 12) == 0);
    exchange(port, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf));
    assert_true(strncmp(buf, "HTTP/1.1 503", 12) == 0);
    assert_non_null(strstr(buf, "no identity yet\n"));
    exchange(port, "GET /huge HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf));
    assert_true(strncmp(buf, "HTTP/1.1 500", 12) == 0);
    exchange(port, "GET /badtype HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf));
    assert_true(strncmp(buf, "HTTP/1.1 500", 12) == 0);
    assert_null(strstr(buf, "X-Injected"));
    stop(&fx);
}

static void request_split_into_pieces(void **state)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    struct fixture fx;
    struct pk_http_server_opts opts = {.host = "localhost", .port = 0};
    char buf[4096];
    int fd;

    start(&fx, &opts);
    fd = connect_tcp(pk_http_server_port(fx.srv));
    for (size_t i = 0; i < sizeof(req) - 1; i++) {
        send_all(fd, req + i, 1);
        usleep(2000);
    }
    read_all(fd, buf, sizeof(buf));
    assert_true(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
    close(fd);
    stop(&fx);
}

static void oversized_requests(void **state)
{
    struct fixture fx;
    struct pk_http_server_opts opts = {.host = "127.0.0.1", .port = 0};
    char buf[4096];
    char *big = malloc(20000);
    int fd;

    start(&fx, &opts);
    /* A request line longer than 8 KiB: 414, and the answer survives the unread rest. */
    memcpy(big, "GET /", 5);
    memset(big + 5, 'a', 19995);
    fd = connect_tcp(pk_http_server_port(fx.srv));
    send(fd, big, 20000, MSG_NOSIGNAL);
    read_all(fd, buf, sizeof(buf));
    assert_true(strncmp(buf, "HTTP/1.1 414", 12) == 0);
    close(fd);

    /* Headers past 8 KiB: 431. */
    int n = sprintf(big, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big + n, 'b', 20000 - (size_t)n);
    fd = connect_tcp(pk_http_server_port(fx.srv));
    send(fd, big, 20000, MSG_NOSIGNAL);
    read_all(fd, buf, sizeof(buf));
    assert_true(strncmp(buf, "HTTP/1.1 431", 12) == 0);
    close(fd);
    free(big);
    stop(&fx);
}

static void slow_client_times_out(void **state)
{
    struct fixture fx;
    struct pk_http_server_opts opts = {.host = "127.0.0.1", .port = 0, .timeout = 0.3};
    char buf[4096];
    double t0;
    double waited;
    int fd;

    start(&fx, &opts);
    /* A partial request gets 408, then the connection is closed. */
    fd = connect_tcp(pk_http_server_port(fx.srv));
    send_all(fd, "GET /heal", 9);
    t0 = now_seconds();
    read_all(fd, buf, sizeof(buf));
    waited = now_seconds() - t0;
    assert_true(strncmp(buf, "HTTP/1.1 408", 12) == 0);
    assert_true(waited >= 0.2 && waited < 3.0);
    close(fd);

    /* A client that sends nothing is just closed. */
    fd = connect_tcp(pk_http_server_port(fx.srv));
    t0 = now_seconds();
    assert_int_equal(read_all(fd, buf, sizeof(buf)), 0);
    waited = now_seconds() - t0;
    assert_true(waited >= 0.2 && waited < 3.0);
    close(fd);
    stop(&fx);
}

static void connection_cap(void **state)
{
    struct fixture fx;
    struct pk_http_server_opts opts = {.host = "127.0.0.1", .port = 0, .max_conns = 2};
    char buf[4096];
    uint16_t port;
    int a;
    int b;
    bool served = false;

    start(&fx, &opts);
    port = pk_http_server_port(fx.srv);
    a = connect_tcp(port);
    b = connect_tcp(port);
    /* Two idle connections hold both slots: the third is refused with 503. */
    exchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf));
    assert_true(strncmp(buf, "HTTP/1.1 503", 12) == 0);
    assert_non_null(strstr(buf, "too many connections"));

    /* Freeing a slot lets requests through again (the server sees the close asynchronously). */
    close(a);
    for (int i = 0; i < 100 && !served; i++) {
        exchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf));
        served = strncmp(buf, "HTTP/1.1 200", 12) == 0;
        if (!served) {
            usleep(10000);
        }
    }
    assert_true(served);
    close(b);
    stop(&fx);
}

static void unix_socket(void **state)
{
    struct fixture fx;
    struct pk_http_server_opts opts = {0};
    struct sockaddr_un a;
    struct stat st;
    char buf[4096];
    const char *base = getenv("PICKET_TEST_TMP");
    int fd;

    snprintf(fx.sock_path, sizeof(fx.sock_path), "%s/http-%d.sock", base ? base : "/tmp",
             (int)getpid());
    unlink(fx.sock_path);
    opts.unix_path = fx.sock_path;
    opts.unix_mode = 0600;
    start(&fx, &opts);
    assert_int_equal(pk_http_server_port(fx.srv), 0);
    assert_int_equal(stat(fx.sock_path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);

    /* A second server on the same live path is refused. */
    {
        struct ev_loop *loop2 = ev_loop_new(EVFLAG_AUTO);
        struct pk_http_server *srv2 = NULL;
        struct pk_err err = {{0}};
        assert_int_equal(pk_http_server_new(loop2, &opts, &srv2, &err), -EADDRINUSE);
        assert_null(srv2);
        assert_non_null(strstr(err.msg, fx.sock_path));
        ev_loop_destroy(loop2);
    }

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, fx.sock_path, strlen(fx.sock_path) + 1);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    send_all(fd, "GET /healthz HTTP/1.0\r\n\r\n", 25);
    read_all(fd, buf, sizeof(buf));
    assert_true(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
    close(fd);
    stop(&fx);
    /* The server removed its socket file. */
    assert_int_not_equal(stat(fx.sock_path, &st), 0);

    /* A stale socket file (nobody listening) is replaced. */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    close(fd);
    start(&fx, &opts);
    stop(&fx);
}

static void bad_options(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pk_http_server *srv = NULL;
    struct pk_http_server_opts opts = {.host = "example.com", .port = 0};
    struct pk_err err = {{0}};
    char long_path[200];

    /* Names would need DNS, which may block: refused. */
    assert_int_equal(pk_http_server_new(loop, &opts, &srv, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "example.com"));
    opts.host = "127.0.0.1.5";
    assert_int_equal(pk_http_server_new(loop, &opts, &srv, &err), PK_E_INVALID);
    opts.host = "[::1";
    assert_int_equal(pk_http_server_new(loop, &opts, &srv, &err), PK_E_INVALID);
    memset(long_path, 'p', sizeof(long_path) - 1);
    long_path[sizeof(long_path) - 1] = '\0';
    opts.unix_path = long_path;
    assert_int_equal(pk_http_server_new(loop, &opts, &srv, &err), PK_E_INVALID);
    opts.unix_path = "";
    assert_int_equal(pk_http_server_new(loop, &opts, &srv, &err), PK_E_INVALID);
    assert_null(srv);

    /* A port in use is -EADDRINUSE. */
    opts.unix_path = NULL;
    opts.host = "127.0.0.1";
    assert_int_equal(pk_http_server_new(loop, &opts, &srv, &err), 0);
    struct pk_http_server *srv2 = NULL;
    opts.port = pk_http_server_port(srv);
    assert_int_equal(pk_http_server_new(loop, &opts, &srv2, &err), -EADDRINUSE);
    assert_null(srv2);

    /* Route table rules. */
    assert_int_equal(pk_http_server_route(srv, "healthz", healthz, NULL), PK_E_INVALID);
    assert_int_equal(pk_http_server_route(srv, "/healthz", healthz, NULL), 0);
    assert_int_equal(pk_http_server_route(srv, "/healthz", healthz, NULL), PK_E_INVALID);
    for (int i = 1; i < PK_HTTP_SERVER_MAX_ROUTES; i++) {
        char p[32];
        snprintf(p, sizeof(p), "/r%d", i);
        assert_int_equal(pk_http_server_route(srv, p, healthz, NULL), 0);
    }
    assert_int_equal(pk_http_server_route(srv, "/one-too-many", healthz, NULL), PK_E_TOOBIG);
    assert_int_equal(pk_http_server_conn_count(srv), 0);
    assert_null(pk_http_server_free(srv));
    assert_null(pk_http_server_free(NULL));

    /* IPv6 loopback works where the host has it. */
    opts.host = "[::1]";
    opts.port = 0;
    int rc = pk_http_server_new(loop, &opts, &srv, &err);
    assert_true(rc == 0 || rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT);
    srv = pk_http_server_free(rc == 0 ? srv : NULL);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(routes_and_statuses), cmocka_unit_test(request_split_into_pieces),
            cmocka_unit_test(oversized_requests),  cmocka_unit_test(slow_client_times_out),
            cmocka_unit_test(connection_cap),      cmocka_unit_test(unix_socket),
            cmocka_unit_test(bad_options),
    };
    pk_log_setup(PK_LOG_LEVEL_ERROR, false);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
