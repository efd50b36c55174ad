/* SPDX-License-Identifier: Apache-2.0 */
/* picket: what the proxy/conn unit tests share (test_proxy_conn_*.c): a CA and two workload
 * identities, helper threads that report their failures, loopback sockets, TLS for the helper
 * threads, and the connection under test on its own libev loop. */
#ifndef PK_TEST_PROXY_CONN_TESTUTIL_H
#define PK_TEST_PROXY_CONN_TESTUTIL_H

#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "common/compiler.h"
#include "common/identity.h"
#include "common/tls.h"
#include "proxy/conn.h"

#define FRONTEND "spiffe://example.test/ns/default/frontend"
#define BACKEND  "spiffe://example.test/ns/default/backend"
#define OTHER    "spiffe://example.test/ns/default/other"

/* ---- fixtures: a CA and two workload identities ------------------------------------------- */

extern struct pk_identity *id_front;
extern struct pk_identity *id_back;
extern struct pk_tls_ctx *ctx_nocert; /* a client that verifies the server but has no cert */

/* A new identity for spiffe_id from the test CA, valid for ttl seconds. */
struct pk_identity *make_identity(const char *spiffe_id, int64_t ttl);

/* The cmocka group setup and teardown: the CA, id_front, id_back and ctx_nocert. */
int group_setup(void **state);
int group_teardown(void **state);

/* ---- failures inside helper threads ------------------------------------------------------- */

/* Record the first failure of a helper thread (assert_threads_ok reports it). */
void tfail(const char *fmt, ...) PK_PRINTF(1, 2);

#define TCHECK(cond)                                                                               \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            tfail("%s:%d: %s (errno %s)", __FILE__, __LINE__, #cond, strerror(errno));             \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* The cmocka per-test setup: forget any earlier thread failure. */
int test_setup(void **state);
void join(pthread_t th);
/* Fail the running test with a helper thread's failure, if any. */
void assert_threads_ok(void);

/* ---- sockets ------------------------------------------------------------------------------ */

/* 5 s send and receive timeouts on fd. */
void set_timeouts(int fd);
/* A TCP listener on 127.0.0.1 with an ephemeral port; rcvbuf 0 keeps the default. */
int tcp_listener(struct sockaddr_storage *addr, socklen_t *len, int backlog, int rcvbuf);
/* A listener on an abstract unix socket (no file; Linux). */
int unix_listener(struct sockaddr_storage *addr, socklen_t *len);
/* A loopback TCP connection: *cl the client end (blocking, with timeouts), *sv the accepted end
 * (non-blocking, for the connection) and *peer the client's address as accept() saw it.
 * cl_sndbuf and sv_rcvbuf (0 = default) shrink the buffers. */
void tcp_pair(int *cl, int *sv, struct sockaddr_storage *peer, socklen_t *peer_len, int cl_sndbuf,
              int sv_rcvbuf);
/* accept() within ms milliseconds (the socket gets timeouts); -1 when none came. */
int accept_timeout(int lfd, int ms);
/* True when a connection is waiting on the listener. */
bool listener_has_connection(int lfd);
bool write_all(int fd, const void *p, size_t n);
/* Read up to n bytes, stopping early only at EOF. Returns the count, or -1 on an error. */
ssize_t read_full(int fd, void *p, size_t n);
/* Fill p with, or check it against, the bytes at offset off of the stream of seed. */
void fill(uint8_t *p, size_t n, uint64_t off, uint32_t seed);
bool check(const uint8_t *p, size_t n, uint64_t off, uint32_t seed);

/* ---- TLS for the helper threads ----------------------------------------------------------- */

/* A WOLFSSL on *fdp (which must outlive it). */
WOLFSSL *tls_session(struct pk_tls_ctx *ctx, int *fdp);
bool tls_write_all(WOLFSSL *ssl, const void *p, size_t n);
/* Like read_full over TLS. *clean (may be NULL) says whether EOF was a close_notify. */
ssize_t tls_read_full(WOLFSSL *ssl, void *p, size_t n, bool *clean);
/* The next TLS read must be a close_notify. */
bool tls_expect_close_notify(WOLFSSL *ssl);

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

struct authz {
    const char *expect; /* NULL: allow anyone */
    int calls;
    char seen[256];
    atomic_int *wait_for; /* hold the decision until this is set (at most 3 s) */
};

/* A fresh loop for r, with its guard (8 s) and probe timers. */
void run_init(struct run *r);
/* The parameters of a connection on fd that reports to r and asks a whether to let peers in;
 * limits may be NULL. */
struct pk_conn_params base_params(struct run *r, enum pk_conn_dir dir, int fd,
                                  const struct sockaddr_storage *peer, socklen_t peer_len,
                                  const struct sockaddr_storage *target, socklen_t target_len,
                                  struct authz *a, const struct pk_conn_limits *limits);
/* pk_conn_start into r->conn; the test fails unless it starts handshaking. */
void start(struct run *r, const struct pk_conn_params *p);
/* Run until closed() (or the guard), then check that it came exactly once and that the
 * connection left no watcher behind. */
void run_loop(struct run *r);
void run_free(struct run *r);
/* Fail unless the connection closed for reason. */
void expect_reason(const struct run *r, enum pk_conn_close_reason reason);

#endif
