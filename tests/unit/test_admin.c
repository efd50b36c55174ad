/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for sidecar/admin: each path of the admin endpoint reaches its handler
 * (/healthz, /readyz, /status, /metrics), HEAD is answered like GET without a body, and any
 * other path is a 404. The agent is made but not started, so it holds no identity: /readyz
 * says so with a 503. The endpoint runs on this thread's loop; a client thread asks. */
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
#include <ev.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "common/identity.h"
#include "sentry/creds.h"
#include "sidecar/admin.h"
#include "sidecar/config.h"
#include "testutil.h"

/* Long enough for a loaded machine; the client gives up on its own before. */
#define DEADLINE 20.0

struct exchange {
    const char *request;
    int status;         /* expected */
    const char *body;   /* expected in the answer; NULL: none */
    bool empty_body;    /* HEAD: nothing after the header */
    char answer[65536]; /* what came back */
};

static struct exchange exchanges[] = {
        {"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200, "ok\n", false, ""},
        {"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 503,
         "not ready: no identity yet", false, ""},
        {"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200, "\"ready\": false",
         false, ""},
        {"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200, "# TYPE picket_",
         false, ""},
        {"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200, NULL, true, ""},
        {"GET /healthz/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404, "Not Found", false,
         ""},
        {"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404, "Not Found", false, ""},
};

struct client {
    uint16_t port;
    atomic_bool done;
};

static void ask(uint16_t port, struct exchange *x)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 10};
    size_t n = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0) {
        return;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        send(fd, x->request, strlen(x->request), MSG_NOSIGNAL) == (ssize_t)strlen(x->request)) {
        for (;;) {
            ssize_t r = recv(fd, x->answer + n, sizeof(x->answer) - 1 - n, 0);
            if (r <= 0) {
                break;
            }
            n += (size_t)r;
        }
    }
    x->answer[n] = '\0';
    close(fd);
}

static void *client_main(void *arg)
{
    struct client *c = arg;

    for (size_t i = 0; i < PK_ARRAY_LEN(exchanges); i++) {
        ask(c->port, &exchanges[i]);
    }
    atomic_store(&c->done, true);
    return NULL;
}

static void poll_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct client *c = t->data;
    (void)revents;
    if (atomic_load(&c->done)) {
        ev_break(loop, EVBREAK_ALL);
    }
}

static void deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void check(const struct exchange *x)
{
    char status_line[32];
    const char *body = strstr(x->answer, "\r\n\r\n");

    snprintf(status_line, sizeof(status_line), "HTTP/1.1 %d ", x->status);
    if (strncmp(x->answer, status_line, strlen(status_line)) != 0 || body == NULL) {
        fail_msg("%.*s: expected %d, got \"%.80s\"", (int)strcspn(x->request, "\r"), x->request,
                 x->status, x->answer);
    }
    body += 4;
    if (x->body != NULL && strstr(body, x->body) == NULL) {
        fail_msg("%.*s: the body lacks \"%s\": \"%.200s\"", (int)strcspn(x->request, "\r"),
                 x->request, x->body, body);
    }
    if (x->empty_body && body[0] != '\0') {
        fail_msg("%.*s: a body came back: \"%.80s\"", (int)strcspn(x->request, "\r"), x->request,
                 body);
    }
}

static void routes(void **state)
{
    struct pk_sentry_creds_paths paths;
    struct pk_sentry_creds_gen gen = {"example.test",  "default", PK_KEY_P256, 0, 900,
                                      365L * 24 * 3600};
    struct pk_sentry_creds *creds = NULL;
    struct pk_sidecar_config *cfg = NULL;
    struct pk_identity_slot slot;
    struct pk_agent_hooks hooks = {0};
    struct pk_agent *agent = NULL;
    struct pk_admin *adm = NULL;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct client c = {0};
    struct pk_err err = {{0}};
    char *argv[] = {"run", "--app-id", "web", "--sentry-address", "127.0.0.1:1", NULL};
    char *env[2] = {NULL, NULL};
    bool help = false;
    ev_timer poll_timer, deadline;
    pthread_t th;

    (void)state;
    assert_int_equal(tmpdir_create("admin"), 0);
    assert_int_equal(
            pk_sentry_creds_paths_init(&paths, tmpdir, "ca.crt", "issuer.crt", "issuer.key"), 0);
    gen.now = time(NULL);
    assert_int_equal(pk_sentry_creds_generate(&paths, &gen, &creds, &err), 0);
    env[0] = malloc(creds->roots_pem.len + 32);
    assert_non_null(env[0]);
    snprintf(env[0], creds->roots_pem.len + 32, "DAPR_TRUST_ANCHORS=%.*s",
             (int)creds->roots_pem.len, (const char *)creds->roots_pem.data);
    if (pk_sidecar_config_load(5, argv, env, &cfg, &help, &err) != 0) {
        fail_msg("config: %s", err.msg);
    }
    pk_identity_slot_init(&slot);
    if (pk_agent_new(loop, &cfg->agent, &slot, &hooks, &agent, &err) != 0 ||
        pk_admin_start(loop, "127.0.0.1:0", agent, &adm, &err) != 0) {
        fail_msg("start: %s", err.msg);
    }
    c.port = (uint16_t)pk_admin_port(adm);
    assert_true(c.port > 0);
    assert_int_equal(pthread_create(&th, NULL, client_main, &c), 0);
    ev_timer_init(&poll_timer, poll_cb, 0.01, 0.01);
    poll_timer.data = &c;
    ev_timer_start(loop, &poll_timer);
    ev_timer_init(&deadline, deadline_cb, DEADLINE, 0);
    ev_timer_start(loop, &deadline);
    ev_run(loop, 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(atomic_load(&c.done));
    for (size_t i = 0; i < PK_ARRAY_LEN(exchanges); i++) {
        check(&exchanges[i]);
    }

    pk_admin_free(adm);
    pk_agent_free(agent);
    pk_identity_slot_destroy(&slot);
    pk_sidecar_config_free(cfg);
    pk_sentry_creds_free(creds);
    free(env[0]);
    ev_loop_destroy(loop);
    assert_int_equal(tmpdir_remove(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
