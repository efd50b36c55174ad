/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for common/tls, net/tls_stream, net/grpc_server and net/grpc_client over
 * real sockets on 127.0.0.1, with Sentry-profile certificates minted by the openssl CLI at test
 * time (leaf: empty subject, one critical URI SAN, no BasicConstraints; chain leaf + issuer; the
 * root is the only anchor). */
#include <arpa/inet.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
/* cmocka.h needs setjmp.h, stdarg.h and stddef.h first. */
/* clang-format off */
#include <cmocka.h>
/* clang-format on */

#include "common/buf.h"
#include "common/err.h"
#include "common/grpc.h"
#include "common/tls.h"
#include "net/grpc_client.h"
#include "net/grpc_server.h"

#define SENTRY_ID "spiffe://localhost/ns/default/dapr-sentry"
#define ECHO_PATH "/picket.test.Echo/Echo"

/* ---- fixtures: certificates ---------------------------------------------------------------- */

struct blob {
    uint8_t *p;
    size_t len;
};

struct creds {
    struct blob chain;  /* leaf + issuer, PEM */
    struct blob key;    /* leaf key, PKCS#8 DER */
    struct blob leaf;   /* leaf alone, PEM */
    struct blob anchor; /* root, PEM */
};

static char tmpdir[512];
static struct creds ec_a, ec_b, ed, other_root;

static struct blob read_file(const char *dir, const char *name)
{
    char path[768];
    struct blob b = {0};
    FILE *f;
    long n;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (f == NULL) {
        fail_msg("cannot open %s", path);
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b.p = malloc((size_t)n + 1);
    assert_non_null(b.p);
    assert_int_equal(fread(b.p, 1, (size_t)n, f), (size_t)n);
    b.p[n] = 0;
    b.len = (size_t)n;
    fclose(f);
    return b;
}

/* Mint root -> issuer -> leaf in dir/sub with openssl. alg is "ec" or "ed25519". */
static void mint(const char *sub, const char *alg, const char *root_from, struct creds *out)
{
    char dir[640];
    char cmd[4096];
    const char *gen =
            strcmp(alg, "ed25519") == 0
                    ? "openssl genpkey -algorithm ed25519 -out"
                    : "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out";

    snprintf(dir, sizeof(dir), "%s/%s", tmpdir, sub);
    mkdir(dir, 0700);
    snprintf(cmd, sizeof(cmd),
             "set -e; cd '%s'; "
             "if [ -n '%s' ]; then cp '%s/%s/root.key' '%s/%s/root.crt' .; else "
             "%s root.key; "
             "openssl req -x509 -new -key root.key -subj /O=picket-test/CN=root -days 2 "
             "-addext basicConstraints=critical,CA:TRUE "
             "-addext keyUsage=critical,keyCertSign,cRLSign -out root.crt; fi; "
             "%s issuer.key; %s leaf.key; "
             "openssl req -new -key issuer.key -subj /O=picket-test/CN=issuer -out issuer.csr; "
             "printf 'basicConstraints=critical,CA:TRUE,pathlen:0\\n"
             "keyUsage=critical,keyCertSign,cRLSign\\nsubjectKeyIdentifier=hash\\n"
             "authorityKeyIdentifier=keyid\\n' > issuer.ext; "
             "openssl x509 -req -in issuer.csr -CA root.crt -CAkey root.key -set_serial 0x%lx "
             "-days 2 -extfile issuer.ext -out issuer.crt; "
             "openssl req -new -key leaf.key -subj / -out leaf.csr; "
             "printf 'subjectAltName=critical,URI:%s\\nkeyUsage=critical,digitalSignature\\n"
             "extendedKeyUsage=serverAuth,clientAuth\\nauthorityKeyIdentifier=keyid\\n' "
             "> leaf.ext; "
             "openssl x509 -req -in leaf.csr -CA issuer.crt -CAkey issuer.key -set_serial 0x%lx "
             "-days 1 -extfile leaf.ext -out leaf.crt; "
             "cat leaf.crt issuer.crt > chain.pem; "
             "openssl pkcs8 -topk8 -nocrypt -in leaf.key -outform DER -out leaf.p8.der",
             dir, root_from ? root_from : "", tmpdir, root_from ? root_from : "", tmpdir,
             root_from ? root_from : "", gen, gen, gen, (unsigned long)random() | 0x1000, SENTRY_ID,
             (unsigned long)random() | 0x1000);
    char full[4200];
    snprintf(full, sizeof(full), "(%s) >/dev/null 2>&1", cmd);
    if (system(full) != 0) {
        fail_msg("openssl failed minting %s", dir);
    }
    out->chain = read_file(dir, "chain.pem");
    out->key = read_file(dir, "leaf.p8.der");
    out->leaf = read_file(dir, "leaf.crt");
    out->anchor = read_file(dir, "root.crt");
}

static void free_creds(struct creds *c)
{
    free(c->chain.p);
    free(c->key.p);
    free(c->leaf.p);
    free(c->anchor.p);
}

static int group_setup(void **state)
{
    const char *base = getenv("PICKET_TEST_TMP");
    snprintf(tmpdir, sizeof(tmpdir), "%s/rpc-XXXXXX", base && base[0] ? base : "/tmp");
    if (mkdtemp(tmpdir) == NULL) {
        return -1;
    }
    srandom((unsigned)getpid());
    mint("a", "ec", NULL, &ec_a);
    mint("b", "ec", "a", &ec_b); /* same root as a, new issuer and leaf */
    mint("ed", "ed25519", NULL, &ed);
    mint("other", "ec", NULL, &other_root);
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[640];
    free_creds(&ec_a);
    free_creds(&ec_b);
    free_creds(&ed);
    free_creds(&other_root);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct pk_tls_ctx *server_ctx(const struct creds *c, bool tls12)
{
    struct pk_tls_config cfg = {
            .server = true,
            .chain_pem = c->chain.p,
            .chain_pem_len = c->chain.len,
            .key_der = c->key.p,
            .key_der_len = c->key.len,
            .alpn = "h2",
            .allow_tls12 = tls12,
    };
    struct pk_tls_ctx *ctx = NULL;
    struct pk_err err = {{0}};
    int r = pk_tls_ctx_new(&cfg, &ctx, &err);
    if (r != 0) {
        fail_msg("server ctx: %s", err.msg);
    }
    return ctx;
}

static struct pk_tls_ctx *client_ctx(const struct blob *anchor, const char *alpn)
{
    struct pk_tls_config cfg = {
            .anchors_pem = anchor->p,
            .anchors_pem_len = anchor->len,
            .alpn = alpn,
    };
    struct pk_tls_ctx *ctx = NULL;
    struct pk_err err = {{0}};
    int r = pk_tls_ctx_new(&cfg, &ctx, &err);
    if (r != 0) {
        fail_msg("client ctx: %s", err.msg);
    }
    return ctx;
}

/* ---- fixtures: server and loop ------------------------------------------------------------- */

struct echo_state {
    int calls;
    char retry_md[32];
    char peer[64];
    int deferred; /* calls whose reply was deferred */
    struct pk_rpc_call call;
};

static void echo_handler(void *ctx, const struct pk_rpc_request *req, struct pk_rpc_reply *reply)
{
    struct echo_state *es = ctx;
    const char *md = pk_rpc_request_metadata(req, "x-retry-attempty");

    es->calls++;
    snprintf(es->retry_md, sizeof(es->retry_md), "%s", md ? md : "");
    snprintf(es->peer, sizeof(es->peer), "%s", req->peer);
    if (req->message.len >= 5 && memcmp(req->message.ptr, "later", 5) == 0) {
        es->deferred++;
        es->call = req->call;
        reply->defer = true;
        return;
    }
    if (req->message.len >= 4 && memcmp(req->message.ptr, "fail", 4) == 0) {
        reply->status = PK_GRPC_PERMISSION_DENIED;
        snprintf(reply->message, sizeof(reply->message), "denied: 100%% sure\n");
        return;
    }
    assert_int_equal(pk_buf_append(&reply->body, "echo:", 5), 0);
    assert_int_equal(pk_buf_append(&reply->body, req->message.ptr, req->message.len), 0);
    reply->status = PK_GRPC_OK;
}

static struct pk_rpc_server *start_server(struct ev_loop *loop, struct pk_tls_ctx *tls,
                                          struct echo_state *es, unsigned max_conns,
                                          double hs_timeout)
{
    struct pk_rpc_server_config cfg = {
            .listen_address = "127.0.0.1",
            .port = 0,
            .max_message = 64 * 1024,
            .handshake_timeout = hs_timeout,
            .idle_timeout = 5,
            .max_connections = max_conns,
    };
    struct pk_rpc_server *s = NULL;
    struct pk_err err = {{0}};

    assert_int_equal(pk_rpc_server_new(loop, &cfg, &s, &err), 0);
    assert_int_equal(pk_rpc_server_add_method(s, ECHO_PATH, echo_handler, es), 0);
    pk_rpc_server_set_tls(s, tls);
    if (pk_rpc_server_start(s, &err) != 0) {
        fail_msg("server start: %s", err.msg);
    }
    assert_int_not_equal(pk_rpc_server_port(s), 0);
    return s;
}

struct call_out {
    bool done;
    int status;
    char message[512];
    char response[512];
    size_t response_len;
};

static void on_done(void *ctx, const struct pk_rpc_result *res)
{
    struct call_out *co = ctx;
    assert_false(co->done);
    co->done = true;
    co->status = res->status;
    snprintf(co->message, sizeof(co->message), "%s", res->message);
    co->response_len = PK_MIN(res->response.len, sizeof(co->response) - 1);
    if (co->response_len > 0) {
        memcpy(co->response, res->response.ptr, co->response_len);
    }
    co->response[co->response_len] = 0;
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    *(bool *)w->data = true;
}

/* Run the loop until *flag or limit seconds; fails the test on the limit. */
static void run_until(struct ev_loop *loop, const bool *flag, double limit)
{
    bool expired = false;
    ev_timer t;
    ev_timer_init(&t, timeout_cb, limit, 0.);
    t.data = &expired;
    ev_timer_start(loop, &t);
    while (!*flag && !expired) {
        ev_run(loop, EVRUN_ONCE);
    }
    ev_timer_stop(loop, &t);
    assert_false(expired);
}

/* Run the loop for a while (lets connections finish closing). */
static void run_for(struct ev_loop *loop, double seconds)
{
    bool expired = false;
    ev_timer t;
    ev_timer_init(&t, timeout_cb, seconds, 0.);
    t.data = &expired;
    ev_timer_start(loop, &t);
    while (!expired) {
        ev_run(loop, EVRUN_ONCE);
    }
}

struct verify_state {
    int calls;
    bool reject;
    char seen_uri[128];
    uint8_t leaf[4096];
    size_t leaf_len;
};

static int verify_hook(void *ctx, struct pk_slice leaf_der, struct pk_err *err)
{
    struct verify_state *vs = ctx;

    vs->calls++;
    vs->leaf_len = PK_MIN(leaf_der.len, sizeof(vs->leaf));
    memcpy(vs->leaf, leaf_der.ptr, vs->leaf_len);
    /* The URI SAN is stored verbatim in the DER. */
    if (memmem(leaf_der.ptr, leaf_der.len, SENTRY_ID, strlen(SENTRY_ID)) != NULL) {
        snprintf(vs->seen_uri, sizeof(vs->seen_uri), "%s", SENTRY_ID);
    }
    if (vs->reject) {
        return pk_err_set(
                err, PK_E_DENIED,
                "server identity %s is not the expected spiffe://example.test/ns/x/dapr-sentry",
                vs->seen_uri);
    }
    return 0;
}

static void call_async(struct ev_loop *loop, uint16_t port, struct pk_tls_ctx *tls,
                       const char *request, struct verify_state *vs, const char *const *md,
                       double timeout, struct call_out *co)
{
    char addr[64];
    struct pk_err err = {{0}};
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
    struct pk_rpc_call_opts opts = {
            .address = addr,
            .tls = tls,
            .path = ECHO_PATH,
            .request = pk_slice_make(request, strlen(request)),
            .timeout = timeout,
            .metadata = md,
            .verify_peer = vs ? verify_hook : NULL,
            .verify_ctx = vs,
    };
    memset(co, 0, sizeof(*co));
    if (pk_rpc_call_start(loop, &opts, on_done, co, NULL, &err) != 0) {
        fail_msg("call start: %s", err.msg);
    }
}

/* ---- tests --------------------------------------------------------------------------------- */

static void unary_round_trip(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pk_tls_ctx *stls = server_ctx(&ec_a, false);
    struct pk_tls_ctx *ctls = client_ctx(&ec_a.anchor, "h2");
    struct echo_state es = {0};
    struct verify_state vs = {0};
    struct call_out co;
    struct pk_rpc_server_stats stats;
    const char *const md[] = {"x-retry-attempty", "2", NULL};
    struct pk_rpc_server *s = start_server(loop, stls, &es, 8, 5);

    call_async(loop, pk_rpc_server_port(s), ctls, "hello", &vs, md, 5, &co);
    run_until(loop, &co.done, 10);
    assert_int_equal(co.status, PK_GRPC_OK);
    assert_string_equal(co.response, "echo:hello");
    assert_int_equal(vs.calls, 1);
    assert_string_equal(vs.seen_uri, SENTRY_ID);
    assert_int_equal(es.calls, 1);
    assert_string_equal(es.retry_md, "2");
    assert_memory_equal(es.peer, "127.0.0.1:", 10);

    /* An error status travels in trailers, with grpc-message percent-encoded and decoded. */
    call_async(loop, pk_rpc_server_port(s), ctls, "fail please", NULL, NULL, 5, &co);
    run_until(loop, &co.done, 10);
    assert_int_equal(co.status, PK_GRPC_PERMISSION_DENIED);
    assert_string_equal(co.message, "denied: 100% sure\n");
    assert_int_equal(co.response_len, 0);

    run_for(loop, 0.2);
    pk_rpc_server_get_stats(s, &stats);
    assert_int_equal(stats.accepted, 2);
    assert_int_equal(stats.calls, 2);
    assert_int_equal(stats.calls_ok, 1);
    assert_int_equal(stats.active, 0); /* both connections closed with close_notify */
    assert_int_equal(stats.handshake_failed, 0);

    pk_rpc_server_free(s);
    pk_tls_ctx_unref(stls);
    pk_tls_ctx_unref(ctls);
    ev_loop_destroy(loop);
}

struct late_answer {
    ev_timer timer;
    struct pk_rpc_server *s;
    struct echo_state *es;
    int rc;
};

static void late_answer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct late_answer *la = w->data;
    static const char body[] = "answered later";

    la->rc = pk_rpc_server_answer(la->s, la->es->call, PK_GRPC_OK, "",
                                  pk_slice_make(body, sizeof(body) - 1));
}

/* A handler that defers: the client waits while the loop runs on, and the answer given later
 * from a timer arrives; answering the same call twice, or a call on no connection, is refused. */
static void deferred_reply(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pk_tls_ctx *stls = server_ctx(&ec_a, false);
    struct pk_tls_ctx *ctls = client_ctx(&ec_a.anchor, "h2");
    struct echo_state es = {0};
    struct call_out co = {0};
    struct pk_rpc_server_stats stats;
    struct pk_rpc_server *s = start_server(loop, stls, &es, 8, 5);
    struct late_answer la = {.s = s, .es = &es, .rc = -1};
    struct pk_rpc_call nowhere = {.conn_id = 999999, .stream_id = 1};

    call_async(loop, pk_rpc_server_port(s), ctls, "later please", NULL, NULL, 5, &co);
    run_for(loop, 0.3);
    assert_false(co.done); /* the handler deferred: nothing is sent yet */
    assert_int_equal(es.deferred, 1);

    ev_timer_init(&la.timer, late_answer_cb, 0.05, 0);
    la.timer.data = &la;
    ev_timer_start(loop, &la.timer);
    run_until(loop, &co.done, 10);
    assert_int_equal(la.rc, 0);
    assert_int_equal(co.status, PK_GRPC_OK);
    assert_string_equal(co.response, "answered later");

    assert_int_equal(pk_rpc_server_answer(s, es.call, PK_GRPC_OK, "", pk_slice_make("x", 1)),
                     PK_E_NOTFOUND);
    assert_int_equal(pk_rpc_server_answer(s, nowhere, PK_GRPC_OK, "", pk_slice_make("x", 1)),
                     PK_E_NOTFOUND);
    run_for(loop, 0.2);
    pk_rpc_server_get_stats(s, &stats);
    assert_int_equal(stats.calls, 1);
    assert_int_equal(stats.calls_ok, 1);

    pk_rpc_server_free(s);
    pk_tls_ctx_unref(stls);
    pk_tls_ctx_unref(ctls);
    ev_loop_destroy(loop);
}

/* The client gives up (deadline) while its call is deferred: the late answer finds the call gone
 * and is dropped. */
static void deferred_reply_after_client_left(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pk_tls_ctx *stls = server_ctx(&ec_a, false);
    struct pk_tls_ctx *ctls = client_ctx(&ec_a.anchor, "h2");
    struct echo_state es = {0};
    struct call_out co = {0};
    struct pk_rpc_server *s = start_server(loop, stls, &es, 8, 5);
    struct pk_rpc_server_stats stats;
    int r = 0;

    call_async(loop, pk_rpc_server_port(s), ctls, "later, maybe", NULL, NULL, 0.3, &co);
    run_until(loop, &co.done, 10);
    assert_int_equal(co.status, PK_GRPC_DEADLINE_EXCEEDED);
    assert_int_equal(es.deferred, 1);
    /* The client's connection ends soon after its deadline. */
    for (int i = 0; i < 200; i++) {
        pk_rpc_server_get_stats(s, &stats);
        if (stats.active == 0) {
            break;
        }
        run_for(loop, 0.05);
    }
    assert_int_equal(stats.active, 0);
    r = pk_rpc_server_answer(s, es.call, PK_GRPC_OK, "", pk_slice_make("x", 1));
    assert_int_equal(r, PK_E_NOTFOUND);
    pk_rpc_server_get_stats(s, &stats);
    assert_int_equal(stats.calls_ok, 0);

    pk_rpc_server_free(s);
    pk_tls_ctx_unref(stls);
    pk_tls_ctx_unref(ctls);
    ev_loop_destroy(loop);
}

static void ed25519_chain_and_unknown_method(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pk_tls_ctx *stls = server_ctx(&ed, true);
    struct pk_tls_ctx *ctls = client_ctx(&ed.anchor, "h2");
    struct echo_state es = {0};
    struct verify_state vs = {0};
    struct call_out co = {0};
    struct pk_rpc_server *s = start_server(loop, stls, &es, 8, 5);
    char addr[64];
    struct pk_err err = {{0}};

    call_async(loop, pk_rpc_server_port(s), ctls, "ed", &vs, NULL, 5, &co);
    run_until(loop, &co.done, 10);
    if (co.status != PK_GRPC_OK) {
        fail_msg("Ed25519 call: %s %s", pk_grpc_status_name(co.status), co.message);
    }
    assert_string_equal(co.response, "echo:ed");
    assert_string_equal(vs.seen_uri, SENTRY_ID);

    snprintf(addr, sizeof(addr), "127.0.0.1:%u", pk_rpc_server_port(s));
    struct pk_rpc_call_opts opts = {
            .address = addr,
            .tls = ctls,
            .path = "/picket.test.Echo/Nope",
            .request = pk_slice_make("x", 1),
            .timeout = 5,
    };
    memset(&co, 0, sizeof(co));
    assert_int_equal(pk_rpc_call_start(loop, &opts, on_done, &co, NULL, &err), 0);
    run_until(loop, &co.done, 10);
    assert_int_equal(co.status, PK_GRPC_UNIMPLEMENTED);
    assert_non_null(strstr(co.message, "/picket.test.Echo/Nope"));
    assert_int_equal(es.calls, 1);

    run_for(loop, 0.1);
    pk_rpc_server_free(s);
    pk_tls_ctx_unref(stls);
    pk_tls_ctx_unref(ctls);
    ev_loop_destroy(loop);
}

static void verify_reject_sends_nothing(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pk_tls_ctx *stls = server_ctx(&ec_a, false);
    struct pk_tls_ctx *ctls = client_ctx(&ec_a.anchor, "h2");
    struct echo_state es = {0};
    struct verify_state vs = {.reject = true};
    struct call_out co;
    struct pk_rpc_server_stats stats;
    struct pk_rpc_server *s = start_server(loop, stls, &es, 8, 5);

    call_async(loop, pk_rpc_server_port(s), ctls, "secret", &vs, NULL, 5, &co);
    run_until(loop, &co.done, 10);
    assert_int_equal(co.status, PK_GRPC_UNAVAILABLE);
    assert_non_null(strstr(co.message, "spiffe://example.test/ns/x/dapr-sentry"));
    assert_non_null(strstr(co.message, SENTRY_ID));
    run_for(loop, 0.2);
    pk_rpc_server_get_stats(s, &stats);
    assert_int_equal(es.calls, 0);
    assert_int_equal(stats.calls, 0);
    assert_int_equal(stats.active, 0);

    pk_rpc_server_free(s);
    pk_tls_ctx_unref(stls);
    pk_tls_ctx_unref(ctls);
    ev_loop_destroy(loop);
}

static void untrusted_server_is_unavailable(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pk_tls_ctx *stls = server_ctx(&ec_a, false);
    struct pk_tls_ctx *ctls = client_ctx(&other_root.anchor, "h2");
    struct echo_state es = {0};
    struct verify_state vs = {0};
    struct call_out co;
    struct pk_rpc_server *s = start_server(loop, stls, &es, 8, 5);

    call_async(loop, pk_rpc_server_port(s), ctls, "x", &vs, NULL, 5, &co);
    run_until(loop, &co.done, 10);
    assert_int_equal(co.status, PK_GRPC_UNAVAILABLE);
    assert_non_null(strstr(co.message, "TLS"));
    assert_int_equal(vs.calls, 0);
    assert_int_equal(es.calls, 0);

    run_for(loop, 0.1);
    pk_rpc_server_free(s);
    pk_tls_ctx_unref(stls);
    pk_tls_ctx_unref(ctls);
    ev_loop_destroy(loop);
}

static void client_without_alpn_refused(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pk_tls_ctx *stls = server_ctx(&ec_a, false);
    struct pk_tls_ctx *ctls = client_ctx(&ec_a.anchor, NULL);
    struct echo_state es = {0};
    struct call_out co;
    struct pk_rpc_server_stats stats;
    struct pk_rpc_server *s = start_server(loop, stls, &es, 8, 5);

    call_async(loop, pk_rpc_server_port(s), ctls, "x", NULL, NULL, 5, &co);
    run_until(loop, &co.done, 10);
    assert_int_equal(co.status, PK_GRPC_UNAVAILABLE);
    run_for(loop, 0.1);
    pk_rpc_server_get_stats(s, &stats);
    assert_int_equal(stats.handshake_failed, 1);
    assert_int_equal(es.calls, 0);

    pk_rpc_server_free(s);
    pk_tls_ctx_unref(stls);
    pk_tls_ctx_unref(ctls);
    ev_loop_destroy(loop);
}

static void deadline_against_silent_server(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pk_tls_ctx *ctls = client_ctx(&ec_a.anchor, "h2");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct call_out co;

    /* Accepts TCP (the kernel completes the handshake from the backlog), never answers. */
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 8), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    ev_tstamp t0 = ev_time();
    call_async(loop, ntohs(a.sin_port), ctls, "x", NULL, NULL, 0.3, &co);
    run_until(loop, &co.done, 5);
    assert_int_equal(co.status, PK_GRPC_DEADLINE_EXCEEDED);
    assert_true(ev_time() - t0 >= 0.29);
    assert_true(ev_time() - t0 < 2.0);

    close(lfd);
    pk_tls_ctx_unref(ctls);
    ev_loop_destroy(loop);
}

static void connect_refused_is_unavailable(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pk_tls_ctx *ctls = client_ctx(&ec_a.anchor, "h2");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct call_out co;

    /* A port that was just free: nothing listens there. */
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    call_async(loop, ntohs(a.sin_port), ctls, "x", NULL, NULL, 2, &co);
    run_until(loop, &co.done, 5);
    assert_int_equal(co.status, PK_GRPC_UNAVAILABLE);
    assert_non_null(strstr(co.message, "refused"));

    pk_tls_ctx_unref(ctls);
    ev_loop_destroy(loop);
}

struct rotate_state {
    struct verify_state vs;
    struct pk_rpc_server *server;
    struct pk_tls_ctx *next;
};

/* Rotates the server's context while this connection is open and already handshaken with the
 * old one: the call must still complete on the old context. */
static int rotate_hook(void *ctx, struct pk_slice leaf_der, struct pk_err *err)
{
    struct rotate_state *rs = ctx;
    if (rs->next != NULL) {
        pk_rpc_server_set_tls(rs->server, rs->next);
        pk_tls_ctx_unref(rs->next); /* the server holds the only reference now */
        rs->next = NULL;
    }
    return verify_hook(&rs->vs, leaf_der, err);
}

static void rotation_keeps_live_connections(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pk_tls_ctx *tls_a = server_ctx(&ec_a, false);
    struct pk_tls_ctx *ctls = client_ctx(&ec_a.anchor, "h2"); /* b shares a's root */
    struct echo_state es = {0};
    struct rotate_state rs = {0};
    struct verify_state vs2 = {0};
    struct call_out co1, co2;
    struct pk_err err = {{0}};
    char addr[64];
    struct pk_rpc_server *s = start_server(loop, tls_a, &es, 8, 5);

    pk_tls_ctx_unref(tls_a); /* only the server and its connections hold a now */
    rs.server = s;
    rs.next = server_ctx(&ec_b, false);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", pk_rpc_server_port(s));
    struct pk_rpc_call_opts opts = {
            .address = addr,
            .tls = ctls,
            .path = ECHO_PATH,
            .request = pk_slice_make("one", 3),
            .timeout = 5,
            .verify_peer = rotate_hook,
            .verify_ctx = &rs,
    };
    memset(&co1, 0, sizeof(co1));
    assert_int_equal(pk_rpc_call_start(loop, &opts, on_done, &co1, NULL, &err), 0);
    run_until(loop, &co1.done, 10);
    assert_int_equal(co1.status, PK_GRPC_OK);
    assert_string_equal(co1.response, "echo:one");
    assert_null(rs.next);

    call_async(loop, pk_rpc_server_port(s), ctls, "two", &vs2, NULL, 5, &co2);
    run_until(loop, &co2.done, 10);
    assert_int_equal(co2.status, PK_GRPC_OK);
    /* The first connection saw leaf a, the second leaf b. */
    assert_true(rs.vs.leaf_len > 0 && vs2.leaf_len > 0);
    assert_false(rs.vs.leaf_len == vs2.leaf_len && memcmp(rs.vs.leaf, vs2.leaf, vs2.leaf_len) == 0);

    run_for(loop, 0.1);
    pk_rpc_server_free(s);
    pk_tls_ctx_unref(ctls);
    ev_loop_destroy(loop);
}

static void connection_cap(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pk_tls_ctx *stls = server_ctx(&ec_a, false);
    struct pk_tls_ctx *ctls = client_ctx(&ec_a.anchor, "h2");
    struct echo_state es = {0};
    struct call_out co;
    struct pk_rpc_server_stats stats;
    struct pk_rpc_server *s = start_server(loop, stls, &es, 1, 0.5);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons(pk_rpc_server_port(s))};
    int hog = socket(AF_INET, SOCK_STREAM, 0);

    /* A silent client takes the only slot. */
    assert_int_equal(connect(hog, (struct sockaddr *)&a, sizeof(a)), 0);
    for (int i = 0; i < 100; i++) {
        run_for(loop, 0.01);
        pk_rpc_server_get_stats(s, &stats);
        if (stats.active == 1) {
            break;
        }
    }
    assert_int_equal(stats.active, 1);
    call_async(loop, pk_rpc_server_port(s), ctls, "x", NULL, NULL, 5, &co);
    run_until(loop, &co.done, 10);
    assert_int_equal(co.status, PK_GRPC_UNAVAILABLE);
    pk_rpc_server_get_stats(s, &stats);
    assert_int_equal(stats.rejected, 1);

    /* The silent client hits the handshake timeout; the slot frees up. */
    run_for(loop, 0.7);
    pk_rpc_server_get_stats(s, &stats);
    assert_int_equal(stats.active, 0);
    assert_int_equal(stats.handshake_failed, 1);
    call_async(loop, pk_rpc_server_port(s), ctls, "y", NULL, NULL, 5, &co);
    run_until(loop, &co.done, 10);
    assert_int_equal(co.status, PK_GRPC_OK);

    close(hog);
    run_for(loop, 0.1);
    pk_rpc_server_free(s);
    pk_tls_ctx_unref(stls);
    pk_tls_ctx_unref(ctls);
    ev_loop_destroy(loop);
}

/* accept() failing with EMFILE must pause the listener, not spin on the readable socket. */
static void emfile_backoff(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pk_tls_ctx *stls = server_ctx(&ec_a, false);
    struct pk_tls_ctx *ctls = client_ctx(&ec_a.anchor, "h2");
    struct echo_state es = {0};
    struct pk_rpc_server_stats stats;
    struct call_out co;
    struct rlimit old, low;
    struct pk_rpc_server *s = start_server(loop, stls, &es, 8, 5);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons(pk_rpc_server_port(s))};
    int client = socket(AF_INET, SOCK_STREAM, 0);
    int probe;

    assert_int_equal(connect(client, (struct sockaddr *)&a, sizeof(a)), 0);
    /* The lowest free descriptor: every one below it is in use, so a limit equal to it makes
     * the server's accept() fail with EMFILE. */
    probe = open("/dev/null", O_RDONLY);
    assert_true(probe >= 0);
    close(probe);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)probe;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    ev_tstamp t0 = ev_time();
    unsigned long iterations = 0;
    while (ev_time() - t0 < 0.6) {
        ev_run(loop, EVRUN_ONCE);
        iterations++;
    }
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    pk_rpc_server_get_stats(s, &stats);
    assert_true(stats.accept_backoffs >= 1 && stats.accept_backoffs <= 4);
    assert_true(iterations < 50); /* no busy loop */
    assert_int_equal(stats.accepted, 0);

    /* With descriptors back, the pending connection is accepted and service resumes. */
    close(client);
    call_async(loop, pk_rpc_server_port(s), ctls, "after", NULL, NULL, 5, &co);
    run_until(loop, &co.done, 10);
    assert_int_equal(co.status, PK_GRPC_OK);

    run_for(loop, 0.1);
    pk_rpc_server_free(s);
    pk_tls_ctx_unref(stls);
    pk_tls_ctx_unref(ctls);
    ev_loop_destroy(loop);
}

/* stop: no new connections; a connection already open gets GOAWAY and ends. */
static void stop_refuses_new_connections(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pk_tls_ctx *stls = server_ctx(&ec_a, false);
    struct pk_tls_ctx *ctls = client_ctx(&ec_a.anchor, "h2");
    struct echo_state es = {0};
    struct pk_rpc_server_stats stats;
    struct call_out co;
    struct pk_rpc_server *s = start_server(loop, stls, &es, 8, 5);
    uint16_t port = pk_rpc_server_port(s);

    call_async(loop, port, ctls, "before", NULL, NULL, 5, &co);
    run_until(loop, &co.done, 10);
    assert_int_equal(co.status, PK_GRPC_OK);
    pk_rpc_server_stop(s);
    call_async(loop, port, ctls, "after", NULL, NULL, 5, &co);
    run_until(loop, &co.done, 10);
    assert_int_equal(co.status, PK_GRPC_UNAVAILABLE);
    run_for(loop, 0.1);
    pk_rpc_server_get_stats(s, &stats);
    assert_int_equal(stats.active, 0);
    assert_int_equal(stats.calls, 1);

    pk_rpc_server_free(s);
    pk_tls_ctx_unref(stls);
    pk_tls_ctx_unref(ctls);
    ev_loop_destroy(loop);
}

struct thread_server {
    struct ev_loop *loop;
    ev_async stop;
    struct pk_rpc_server *s;
};

static void thread_stop_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void *server_thread(void *arg)
{
    struct thread_server *ts = arg;
    ev_run(ts->loop, 0);
    pk_tls_thread_exit();
    return NULL;
}

static void sync_call_on_private_loop(void **state)
{
    struct thread_server ts;
    struct pk_tls_ctx *stls = server_ctx(&ec_a, false);
    struct pk_tls_ctx *ctls = client_ctx(&ec_a.anchor, "h2");
    struct echo_state es = {0};
    struct pk_rpc_owned_result res;
    struct pk_err err = {{0}};
    pthread_t th;
    char addr[64];

    ts.loop = ev_loop_new(EVFLAG_AUTO);
    ts.s = start_server(ts.loop, stls, &es, 8, 5);
    ev_async_init(&ts.stop, thread_stop_cb);
    ev_async_start(ts.loop, &ts.stop);
    snprintf(addr, sizeof(addr), "localhost:%u", pk_rpc_server_port(ts.s));
    assert_int_equal(pthread_create(&th, NULL, server_thread, &ts), 0);

    struct pk_rpc_call_opts opts = {
            .address = addr,
            .tls = ctls,
            .path = ECHO_PATH,
            .request = pk_slice_make("sync", 4),
            .timeout = 5,
    };
    assert_int_equal(pk_rpc_call_sync(&opts, &res, &err), 0);
    assert_int_equal(res.status, PK_GRPC_OK);
    assert_int_equal(res.response.len, 9);
    assert_memory_equal(res.response.data, "echo:sync", 9);
    pk_rpc_owned_result_clear(&res);
    assert_null(res.response.data);

    ev_async_send(ts.loop, &ts.stop);
    pthread_join(th, NULL);
    pk_rpc_server_free(ts.s);
    ev_loop_destroy(ts.loop);
    pk_tls_ctx_unref(stls);
    pk_tls_ctx_unref(ctls);
}

static void call_options_rejected(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pk_tls_ctx *ctls = client_ctx(&ec_a.anchor, "h2");
    struct pk_tls_ctx *stls = server_ctx(&ec_a, false);
    struct call_out co = {0};
    struct pk_err err;
    static const char *const bad_addrs[] = {"localhost",  "localhost:", ":50001",
                                            "::1:50001",  "[::1]50001", "host:0",
                                            "host:65536", "host:12x",   "[::1:80"};
    const char *const bad_md1[] = {"Upper", "v", NULL};
    const char *const bad_md2[] = {"grpc-timeout", "1S", NULL};
    const char *const bad_md3[] = {"x-ok", "line\nbreak", NULL};
    const char *const bad_md4[] = {"x-no-value", NULL};
    const char *const *bad_mds[] = {bad_md1, bad_md2, bad_md3, bad_md4};
    struct pk_rpc_call_opts opts = {
            .address = "127.0.0.1:1",
            .tls = ctls,
            .path = ECHO_PATH,
            .timeout = 1,
    };

    for (size_t i = 0; i < PK_ARRAY_LEN(bad_addrs); i++) {
        opts.address = bad_addrs[i];
        pk_err_clear(&err);
        assert_int_equal(pk_rpc_call_start(loop, &opts, on_done, &co, NULL, &err), PK_E_INVALID);
        assert_non_null(strstr(err.msg, bad_addrs[i]));
    }
    opts.address = "127.0.0.1:1";
    for (size_t i = 0; i < PK_ARRAY_LEN(bad_mds); i++) {
        opts.metadata = bad_mds[i];
        assert_int_equal(pk_rpc_call_start(loop, &opts, on_done, &co, NULL, &err), PK_E_INVALID);
    }
    opts.metadata = NULL;
    opts.path = "no-slash";
    assert_int_equal(pk_rpc_call_start(loop, &opts, on_done, &co, NULL, &err), PK_E_INVALID);
    opts.path = ECHO_PATH;
    opts.timeout = 0;
    assert_int_equal(pk_rpc_call_start(loop, &opts, on_done, &co, NULL, &err), PK_E_INVALID);
    opts.timeout = 1;
    opts.tls = stls; /* a server context cannot make calls */
    assert_int_equal(pk_rpc_call_start(loop, &opts, on_done, &co, NULL, &err), PK_E_INVALID);
    opts.tls = NULL;
    assert_int_equal(pk_rpc_call_start(loop, &opts, on_done, &co, NULL, &err), PK_E_INVALID);
    /* None of these may ever call done. */
    run_for(loop, 0.05);
    assert_false(co.done);

    /* Unresolvable host: done reports UNAVAILABLE from the loop, not from call_start. */
    opts.tls = ctls;
    opts.address = "no-such-host.invalid:443";
    assert_int_equal(pk_rpc_call_start(loop, &opts, on_done, &co, NULL, &err), 0);
    assert_false(co.done);
    run_until(loop, &co.done, 5);
    assert_int_equal(co.status, PK_GRPC_UNAVAILABLE);

    /* Cancel: done is never called. */
    struct pk_rpc_call *call = NULL;
    memset(&co, 0, sizeof(co));
    opts.address = "127.0.0.1:1";
    assert_int_equal(pk_rpc_call_start(loop, &opts, on_done, &co, &call, &err), 0);
    pk_rpc_call_cancel(call);
    run_for(loop, 0.05);
    assert_false(co.done);

    pk_tls_ctx_unref(stls);
    pk_tls_ctx_unref(ctls);
    ev_loop_destroy(loop);
}

static void server_options_rejected(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pk_rpc_server_config cfg = {.listen_address = "127.0.0.1"};
    struct pk_rpc_server *s = NULL;
    struct pk_err err;

    assert_int_equal(pk_rpc_server_new(loop, &cfg, &s, &err), 0);
    assert_int_equal(pk_rpc_server_add_method(s, "/a.B/C", echo_handler, NULL), 0);
    assert_int_equal(pk_rpc_server_add_method(s, "/a.B/C", echo_handler, NULL), PK_E_MISMATCH);
    assert_int_equal(pk_rpc_server_add_method(s, "a.B/C", echo_handler, NULL), PK_E_INVALID);
    assert_int_equal(pk_rpc_server_add_method(s, "/a.B/", echo_handler, NULL), PK_E_INVALID);
    assert_int_equal(pk_rpc_server_add_method(s, "//C", echo_handler, NULL), PK_E_INVALID);
    assert_int_equal(pk_rpc_server_add_method(s, "/a/b/c", echo_handler, NULL), PK_E_INVALID);
    pk_rpc_server_free(s);

    cfg.listen_address = "256.1.1.1";
    assert_int_equal(pk_rpc_server_new(loop, &cfg, &s, &err), 0);
    assert_int_not_equal(pk_rpc_server_start(s, &err), 0);
    assert_non_null(strstr(err.msg, "256.1.1.1"));
    pk_rpc_server_free(s);

    cfg.listen_address = "";
    cfg.handshake_timeout = -1;
    assert_int_equal(pk_rpc_server_new(loop, &cfg, &s, &err), PK_E_INVALID);
    ev_loop_destroy(loop);
}

static void tls_config_errors(void **state)
{
    struct pk_tls_ctx *ctx = NULL;
    struct pk_err err;
    static const uint8_t garbage[] = "-----BEGIN CERTIFICATE-----\nnot base64!\n"
                                     "-----END CERTIFICATE-----\n";
    struct pk_tls_config cfg = {
            .server = true,
            .chain_pem = ec_a.chain.p,
            .chain_pem_len = ec_a.chain.len,
            .key_der = ec_b.key.p, /* someone else's key */
            .key_der_len = ec_b.key.len,
            .alpn = "h2",
    };

    pk_err_clear(&err);
    assert_int_equal(pk_tls_ctx_new(&cfg, &ctx, &err), PK_E_MISMATCH);
    assert_non_null(strstr(err.msg, "does not match"));
    assert_null(ctx);

    cfg.key_der = ec_a.key.p;
    cfg.key_der_len = ec_a.key.len / 2; /* truncated PKCS#8 */
    assert_int_equal(pk_tls_ctx_new(&cfg, &ctx, &err), PK_E_TLS);
    assert_non_null(strstr(err.msg, "private key"));

    cfg.key_der_len = ec_a.key.len;
    cfg.chain_pem = garbage;
    cfg.chain_pem_len = sizeof(garbage) - 1;
    assert_int_equal(pk_tls_ctx_new(&cfg, &ctx, &err), PK_E_TLS);
    assert_non_null(strstr(err.msg, "chain"));

    cfg.chain_pem = NULL;
    cfg.key_der = NULL;
    assert_int_equal(pk_tls_ctx_new(&cfg, &ctx, &err), PK_E_INVALID); /* server, no cert */

    cfg.server = false;
    cfg.anchors_pem = garbage;
    cfg.anchors_pem_len = sizeof(garbage) - 1;
    assert_int_equal(pk_tls_ctx_new(&cfg, &ctx, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "anchors"));

    cfg.anchors_pem = ec_a.anchor.p;
    cfg.anchors_pem_len = ec_a.anchor.len;
    cfg.require_peer_cert = true; /* client cannot require */
    assert_int_equal(pk_tls_ctx_new(&cfg, &ctx, &err), PK_E_INVALID);
    cfg.require_peer_cert = false;
    cfg.alpn = "";
    assert_int_equal(pk_tls_ctx_new(&cfg, &ctx, &err), PK_E_INVALID);
    char long_alpn[300];
    memset(long_alpn, 'a', sizeof(long_alpn) - 1);
    long_alpn[sizeof(long_alpn) - 1] = 0;
    cfg.alpn = long_alpn;
    assert_int_equal(pk_tls_ctx_new(&cfg, &ctx, &err), PK_E_INVALID);
    assert_null(ctx);

    /* The good config works, and refcounting keeps it alive across refs. */
    cfg.alpn = "h2";
    assert_int_equal(pk_tls_ctx_new(&cfg, &ctx, &err), 0);
    assert_ptr_equal(pk_tls_ctx_ref(ctx), ctx);
    pk_tls_ctx_unref(ctx);
    assert_non_null(pk_tls_ctx_wolfssl(ctx));
    assert_string_equal(pk_tls_ctx_alpn(ctx), "h2");
    pk_tls_ctx_unref(ctx);
    pk_tls_ctx_unref(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(unary_round_trip),
            cmocka_unit_test(deferred_reply),
            cmocka_unit_test(deferred_reply_after_client_left),
            cmocka_unit_test(ed25519_chain_and_unknown_method),
            cmocka_unit_test(verify_reject_sends_nothing),
            cmocka_unit_test(untrusted_server_is_unavailable),
            cmocka_unit_test(client_without_alpn_refused),
            cmocka_unit_test(deadline_against_silent_server),
            cmocka_unit_test(connect_refused_is_unavailable),
            cmocka_unit_test(rotation_keeps_live_connections),
            cmocka_unit_test(connection_cap),
            cmocka_unit_test(emfile_backoff),
            cmocka_unit_test(stop_refuses_new_connections),
            cmocka_unit_test(sync_call_on_private_loop),
            cmocka_unit_test(call_options_rejected),
            cmocka_unit_test(server_options_rejected),
            cmocka_unit_test(tls_config_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
