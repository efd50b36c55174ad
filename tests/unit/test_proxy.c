/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for proxy/proxy: a proxy with an inbound listener serves the identity in
 * its slot, and after pk_proxy_identity_changed every new connection is served with the new
 * one (the generation swap), while a connection opened before keeps the certificate it was
 * accepted with. The clients are blocking wolfSSL sessions on this thread; the proxy runs its
 * own worker threads. */
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
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "common/identity.h"
#include "common/tls.h"
#include "common/x509.h"
#include "proxy/proxy.h"
#include "sentry/creds.h"
#include "testutil.h"

#define FRONTEND "spiffe://example.test/ns/default/frontend"
#define BACKEND  "spiffe://example.test/ns/default/backend"
/* Long enough for a loaded machine; the conditions are polled, never slept on. */
#define DEADLINE 20.0

static struct pk_sentry_creds *creds;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int group_setup(void **state)
{
    struct pk_sentry_creds_paths paths;
    struct pk_sentry_creds_gen gen = {"example.test",  "default", PK_KEY_P256, 0, 900,
                                      365L * 24 * 3600};
    struct pk_err err = {{0}};

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if (tmpdir_create("proxy") != 0 ||
        pk_sentry_creds_paths_init(&paths, tmpdir, "ca.crt", "issuer.crt", "issuer.key") != 0) {
        return -1;
    }
    gen.now = time(NULL);
    return pk_sentry_creds_generate(&paths, &gen, &creds, &err) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    pk_sentry_creds_free(creds);
    pk_tls_thread_exit();
    return tmpdir_remove();
}

/* A TCP socket listening on 127.0.0.1 (never accepted from: the backlog is enough). */
static int backend_listener(uint16_t *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 4096), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* An mTLS session as client to 127.0.0.1:port, NULL when the handshake fails. *fdp gets the
 * socket. */
static WOLFSSL *client_connect(struct pk_identity *client, uint16_t port, int *fdp)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 5};
    struct pk_err err = {{0}};
    WOLFSSL *ssl = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        pk_tls_session_new(pk_identity_client_tls(client), fd, NULL, &ssl, &err) != 0 ||
        wolfSSL_connect(ssl) != WOLFSSL_SUCCESS) {
        if (ssl != NULL) {
            wolfSSL_free(ssl);
        }
        close(fd);
        return NULL;
    }
    *fdp = fd;
    return ssl;
}

/* Whether the server of ssl presented the leaf certificate of id. */
static bool served_by(WOLFSSL *ssl, const struct pk_identity *id)
{
    WOLFSSL_X509 *peer = wolfSSL_get_peer_certificate(ssl);
    struct pk_slice want = pk_cert_der(pk_identity_chain(id)->v[0]);
    const unsigned char *der;
    int len = 0;
    bool same;

    if (peer == NULL) {
        return false;
    }
    der = wolfSSL_X509_get_der(peer, &len);
    same = der != NULL && (size_t)len == want.len && memcmp(der, want.ptr, want.len) == 0;
    wolfSSL_X509_free(peer);
    return same;
}

static void client_close(WOLFSSL *ssl, int fd)
{
    wolfSSL_free(ssl);
    close(fd);
}

/* Connect until the server presents id's certificate or the deadline passes. */
static void expect_served_by(struct pk_identity *client, uint16_t port,
                             const struct pk_identity *id)
{
    double deadline = now_s() + DEADLINE;

    for (;;) {
        int fd = -1;
        WOLFSSL *ssl = client_connect(client, port, &fd);
        bool ok = ssl != NULL && served_by(ssl, id);
        if (ssl != NULL) {
            client_close(ssl, fd);
        }
        if (ok) {
            return;
        }
        if (now_s() > deadline) {
            fail_msg("no connection to port %u was served with %s serial %s", port,
                     pk_identity_spiffe_id(id), pk_identity_serial_hex(id));
        }
        usleep(20000);
    }
}

static void generation_swap(void **state)
{
    struct pk_identity *front = workload_identity(creds, FRONTEND, 3600);
    struct pk_identity *back1 = workload_identity(creds, BACKEND, 3600);
    struct pk_identity *back2 = workload_identity(creds, BACKEND, 3600);
    struct pk_identity_slot slot;
    struct pk_listener_config lc = {
            .kind = PK_LISTENER_INBOUND,
            .name = "web",
            .listen = "127.0.0.1:0",
            .max_connections = 100,
            .max_handshakes = 100,
            .connect_timeout = 5,
            .handshake_timeout = 5,
            .buffer_size = 16384,
    };
    struct pk_proxy_options opts = {
            .listeners = &lc, .n_listeners = 1, .workers = 2, .namespace_ = "default"};
    struct pk_listener_stats st;
    struct pk_proxy *px = NULL;
    struct pk_err err = {{0}};
    char target[32];
    uint16_t backend_port;
    int backend = backend_listener(&backend_port);
    double deadline = now_s() + DEADLINE;
    WOLFSSL *early;
    int early_fd = -1;

    (void)state;
    snprintf(target, sizeof(target), "127.0.0.1:%u", backend_port);
    lc.target = target;
    assert_int_equal(pk_addr_parse(lc.listen, PK_ADDR_PORT_ZERO, &lc.listen_addr, &err), 0);
    assert_int_equal(pk_addr_parse(lc.target, 0, &lc.target_addr, &err), 0);
    pk_identity_slot_init(&slot);
    pk_identity_slot_publish(&slot, pk_identity_ref(back1));
    if (pk_proxy_new(&opts, &slot, &px, &err) != 0 || pk_proxy_start(px, &err) != 0) {
        fail_msg("proxy: %s", err.msg);
    }
    pk_proxy_identity_changed(px);
    do {
        assert_true(now_s() < deadline);
        usleep(10000);
        pk_proxy_listener_stats(px, 0, &st);
    } while (!st.up);

    /* The identity of the slot is served. */
    expect_served_by(front, st.port, back1);
    early = client_connect(front, st.port, &early_fd);
    assert_non_null(early);
    assert_true(served_by(early, back1));

    /* A new identity in the slot: new connections get it once the workers took the new
     * generation; the one opened before keeps what it was accepted with. */
    pk_identity_slot_publish(&slot, pk_identity_ref(back2));
    pk_proxy_identity_changed(px);
    expect_served_by(front, st.port, back2);
    assert_true(served_by(early, back1));
    client_close(early, early_fd);

    pk_proxy_free(px, 0);
    pk_identity_slot_destroy(&slot);
    close(backend);
    pk_identity_unref(front);
    pk_identity_unref(back1);
    pk_identity_unref(back2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(generation_swap),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
