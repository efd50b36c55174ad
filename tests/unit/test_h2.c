/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for common/h2: client and server sessions wired to each other in memory,
 * and each of them against a raw nghttp2 peer that misbehaves on purpose.
 *
 * With PICKET_H2_SEED_DIR set, the round trip writes the bytes each side sent into
 * <dir>/fuzz_h2_server/ and <dir>/fuzz_h2_client/, behind a first byte that the fuzz targets
 * read as their chunk size (how the fuzz seed corpora were made). */
#include <nghttp2/nghttp2.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
/* cmocka.h needs setjmp.h, stdarg.h and stddef.h first. */
/* clang-format off */
#include <cmocka.h>
/* clang-format on */

#include "common/buf.h"
#include "common/err.h"
#include "common/grpc.h"
#include "common/h2.h"

#define ECHO_PATH "/picket.test.Echo/Echo"

/* ---- a generic in-memory pipe between two endpoints ---------------------------------------- */

struct ep {
    int (*send)(void *self, struct pk_buf *out);
    int (*recv)(void *self, const uint8_t *p, size_t len);
    void *self;
    struct pk_buf log; /* everything this endpoint sent */
    int recv_rc;       /* first non-zero recv result */
};

/* Move bytes both ways until neither side has anything to say. Small chunks exercise partial
 * output (the transport's cap). */
static void pump(struct ep *a, struct ep *b, size_t chunk)
{
    for (int round = 0; round < 10000; round++) {
        bool moved = false;
        struct ep *from[2] = {a, b};
        struct ep *to[2] = {b, a};
        for (int i = 0; i < 2; i++) {
            struct pk_buf out;
            pk_buf_init(&out, chunk);
            assert_int_equal(from[i]->send(from[i]->self, &out), 0);
            if (out.len > 0) {
                moved = true;
                assert_int_equal(pk_buf_append(&from[i]->log, out.data, out.len), 0);
                int r = to[i]->recv(to[i]->self, out.data, out.len);
                if (r != 0 && to[i]->recv_rc == 0) {
                    to[i]->recv_rc = r;
                }
            }
            pk_buf_free(&out);
        }
        if (!moved) {
            return;
        }
    }
    fail_msg("pump did not settle");
}

static int pk_client_send(void *self, struct pk_buf *out)
{
    return pk_h2_client_send(self, out);
}

static int pk_client_recv(void *self, const uint8_t *p, size_t len)
{
    return pk_h2_client_recv(self, p, len);
}

static int pk_server_send(void *self, struct pk_buf *out)
{
    return pk_h2_server_send(self, out);
}

static int pk_server_recv(void *self, const uint8_t *p, size_t len)
{
    return pk_h2_server_recv(self, p, len, NULL);
}

/* ---- the server under test ----------------------------------------------------------------- */

struct handler_state {
    int calls;
    char last_path[128];
    size_t last_len;
    uint64_t last_timeout;
    char md[64];
    int reply_status;
    const char *reply_message;
};

static const void *route(void *ctx, const char *path)
{
    return strcmp(path, ECHO_PATH) == 0 ? (const void *)ECHO_PATH : NULL;
}

static void handle(void *ctx, const void *method, const struct pk_h2_request *req,
                   struct pk_h2_reply *reply)
{
    struct handler_state *hs = ctx;
    assert_ptr_equal(method, ECHO_PATH);
    hs->calls++;
    snprintf(hs->last_path, sizeof(hs->last_path), "%s", req->path);
    hs->last_len = req->message.len;
    hs->last_timeout = req->timeout_ns;
    hs->md[0] = 0;
    for (size_t i = 0; i < req->n_headers; i++) {
        if (strcmp(req->headers[i].name, "x-retry-attempty") == 0) {
            snprintf(hs->md, sizeof(hs->md), "%s", req->headers[i].value);
        }
    }
    if (hs->reply_status != PK_GRPC_OK) {
        reply->status = hs->reply_status;
        snprintf(reply->message, sizeof(reply->message), "%s", hs->reply_message);
        return;
    }
    assert_int_equal(pk_buf_append(&reply->body, "re:", 3), 0);
    assert_int_equal(pk_buf_append(&reply->body, req->message.ptr, req->message.len), 0);
    reply->status = PK_GRPC_OK;
}

static struct pk_h2_server *make_server(struct handler_state *hs, size_t max_message,
                                        uint32_t max_streams)
{
    struct pk_h2_server_config cfg = {
            .max_message = max_message,
            .max_concurrent_streams = max_streams,
            .max_header_list = 4096,
            .route = route,
            .handle = handle,
            .ctx = hs,
    };
    struct pk_h2_server *s = NULL;
    assert_int_equal(pk_h2_server_new(&cfg, &s, NULL), 0);
    return s;
}

static struct pk_h2_client *make_client(const char *path, const char *msg, size_t len,
                                        size_t max_response)
{
    static const char *const md[] = {"x-retry-attempty", "3", NULL};
    struct pk_h2_call call = {
            .authority = "localhost:50001",
            .path = path,
            .timeout_ns = 3000000000ULL,
            .metadata = md,
            .request = pk_slice_make(msg, len),
            .max_response = max_response,
    };
    struct pk_h2_client *c = NULL;
    struct pk_err err;
    int r = pk_h2_client_new(&call, &c, &err);
    if (r != 0) {
        fail_msg("client: %s", err.msg);
    }
    return c;
}

static void write_seed(const char *target, const char *name, const struct pk_buf *b)
{
    const char *dir = getenv("PICKET_H2_SEED_DIR");
    char path[1024];
    FILE *f;

    if (dir == NULL || dir[0] == 0) {
        return;
    }
    snprintf(path, sizeof(path), "%s/%s", dir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/%s/%s", dir, target, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    /* The fuzz targets read the chunk size from the first byte: 0xff = 2041-byte chunks. */
    assert_int_equal(fputc(0xff, f), 0xff);
    assert_int_equal(fwrite(b->data, 1, b->len, f), b->len);
    fclose(f);
}

/* Client and server sessions against each other. */
static const struct pk_h2_result *run_pair(struct handler_state *hs, struct pk_h2_client *c,
                                           struct pk_h2_server *s, size_t chunk, const char *seed)
{
    struct ep ce = {pk_client_send, pk_client_recv, c};
    struct ep se = {pk_server_send, pk_server_recv, s};
    pk_buf_init(&ce.log, 1 << 20);
    pk_buf_init(&se.log, 1 << 20);
    pump(&ce, &se, chunk);
    assert_true(pk_h2_client_done(c));
    assert_int_equal(ce.recv_rc, 0);
    assert_int_equal(se.recv_rc, 0);
    if (seed != NULL) {
        write_seed("fuzz_h2_server", seed, &ce.log);
        write_seed("fuzz_h2_client", seed, &se.log);
    }
    pk_buf_free(&ce.log);
    pk_buf_free(&se.log);
    return pk_h2_client_result(c);
}

static void round_trip(void **state)
{
    struct handler_state hs = {0};
    struct pk_h2_server *s = make_server(&hs, 1 << 16, 8);

    /* Several chunk sizes: 1 byte at a time is the harshest partial-write test. */
    static const size_t chunks[] = {1, 7, 100, 16384, 1 << 20};
    for (size_t i = 0; i < PK_ARRAY_LEN(chunks); i++) {
        struct pk_h2_client *c = make_client(ECHO_PATH, "ping", 4, 1024);
        const struct pk_h2_result *res =
                run_pair(&hs, c, s, chunks[i], chunks[i] == 16384 ? "round_trip" : NULL);
        assert_int_equal(res->status, PK_GRPC_OK);
        assert_int_equal(res->response.len, 7);
        assert_memory_equal(res->response.ptr, "re:ping", 7);
        assert_string_equal(res->message, "");
        pk_h2_client_free(c);
        /* A fresh server per client connection, as in real life. */
        pk_h2_server_free(s);
        s = make_server(&hs, 1 << 16, 8);
    }
    assert_int_equal(hs.calls, (int)PK_ARRAY_LEN(chunks));
    assert_string_equal(hs.last_path, ECHO_PATH);
    assert_int_equal(hs.last_timeout, 3000000000ULL);
    assert_string_equal(hs.md, "3");

    /* A message bigger than the flow-control windows and frame size. */
    static char big[200000];
    memset(big, 'b', sizeof(big));
    struct pk_h2_client *c = make_client(ECHO_PATH, big, sizeof(big), 300000);
    pk_h2_server_free(s);
    s = make_server(&hs, 300000, 8);
    const struct pk_h2_result *res = run_pair(&hs, c, s, 16384, NULL);
    assert_int_equal(res->status, PK_GRPC_OK);
    assert_int_equal(res->response.len, sizeof(big) + 3);
    assert_int_equal(pk_h2_server_calls_ok(s), 1);
    assert_true(pk_h2_server_idle(s));
    pk_h2_client_free(c);
    pk_h2_server_free(s);
}

static void trailers_only_error(void **state)
{
    struct handler_state hs = {.reply_status = PK_GRPC_PERMISSION_DENIED,
                               .reply_message = "token for app 'a' cannot request 'b' (100%)"};
    struct pk_h2_server *s = make_server(&hs, 1024, 8);
    struct pk_h2_client *c = make_client(ECHO_PATH, "x", 1, 1024);
    const struct pk_h2_result *res = run_pair(&hs, c, s, 16384, "trailers_only");

    assert_int_equal(res->status, PK_GRPC_PERMISSION_DENIED);
    assert_string_equal(res->message, "token for app 'a' cannot request 'b' (100%)");
    assert_int_equal(res->response.len, 0);
    assert_int_equal(pk_h2_server_calls(s), 1);
    assert_int_equal(pk_h2_server_calls_ok(s), 0);
    pk_h2_client_free(c);
    pk_h2_server_free(s);
}

static void unknown_path_unimplemented(void **state)
{
    struct handler_state hs = {0};
    struct pk_h2_server *s = make_server(&hs, 1024, 8);
    struct pk_h2_client *c = make_client("/picket.test.Echo/Missing", "x", 1, 1024);
    const struct pk_h2_result *res = run_pair(&hs, c, s, 16384, "unknown_path");

    assert_int_equal(res->status, PK_GRPC_UNIMPLEMENTED);
    assert_non_null(strstr(res->message, "/picket.test.Echo/Missing"));
    assert_int_equal(hs.calls, 0);
    pk_h2_client_free(c);
    pk_h2_server_free(s);
}

static void request_over_limit(void **state)
{
    struct handler_state hs = {0};
    struct pk_h2_server *s = make_server(&hs, 100, 8);
    static char big[5000];
    memset(big, 'x', sizeof(big));
    struct pk_h2_client *c = make_client(ECHO_PATH, big, sizeof(big), 1024);
    const struct pk_h2_result *res = run_pair(&hs, c, s, 16384, "over_limit");

    assert_int_equal(res->status, PK_GRPC_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(res->message, "5000"));
    assert_int_equal(hs.calls, 0);
    pk_h2_client_free(c);
    pk_h2_server_free(s);
}

static void response_over_limit(void **state)
{
    struct handler_state hs = {0};
    struct pk_h2_server *s = make_server(&hs, 1024, 8);
    struct pk_h2_client *c = make_client(ECHO_PATH, "0123456789", 10, 8);
    const struct pk_h2_result *res = run_pair(&hs, c, s, 16384, NULL);

    assert_int_equal(res->status, PK_GRPC_RESOURCE_EXHAUSTED);
    assert_int_equal(res->response.len, 0);
    pk_h2_client_free(c);
    pk_h2_server_free(s);
}

static void server_fed_garbage(void **state)
{
    struct handler_state hs = {0};
    struct pk_err err;
#define PREFACE  "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define SETTINGS "\x00\x00\x00\x04\x00\x00\x00\x00\x00"
#define IN(lit)                                                                                    \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }
    static const struct {
        const char *p;
        size_t len;
    } inputs[] = {
            IN("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            /* CONTINUATION without HEADERS */
            IN(PREFACE SETTINGS "\x00\x00\x04\x09\x04\x00\x00\x00\x01zzzz"),
            /* no SETTINGS first */
            IN(PREFACE "\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
            /* DATA on stream 0 */
            IN(PREFACE SETTINGS "\x00\x00\x01\x00\x00\x00\x00\x00\x00x"),
            /* even (server-initiated) stream id from the client */
            IN(PREFACE SETTINGS "\x00\x00\x01\x01\x05\x00\x00\x00\x02\x82"),
            /* WINDOW_UPDATE overflowing the connection window */
            IN(PREFACE SETTINGS "\x00\x00\x04\x08\x00\x00\x00\x00\x00\x7f\xff\xff\xff"),
            /* SETTINGS with a bad INITIAL_WINDOW_SIZE (2^31) */
            IN(PREFACE "\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x04\x80\x00\x00\x00"),
            /* HPACK garbage in HEADERS */
            IN(PREFACE SETTINGS "\x00\x00\x03\x01\x05\x00\x00\x00\x01\xff\xff\xff"),
    };
#undef IN
    for (size_t i = 0; i < PK_ARRAY_LEN(inputs); i++) {
        struct pk_h2_server *s = make_server(&hs, 1024, 8);
        struct pk_buf out;
        int r;
        pk_err_clear(&err);
        r = pk_h2_server_recv(s, (const uint8_t *)inputs[i].p, inputs[i].len, &err);
        pk_buf_init(&out, 4096);
        assert_int_equal(pk_h2_server_send(s, &out), 0);
        /* Either the bytes are refused outright, or a GOAWAY ends the session once sent. */
        if (r == 0) {
            assert_false(pk_h2_server_want_read(s));
            assert_false(pk_h2_server_want_write(s));
            assert_true(out.len > 0);
        } else {
            assert_int_equal(r, PK_E_PROTO);
            assert_non_null(strstr(err.msg, "HTTP/2"));
        }
        pk_buf_free(&out);
        pk_h2_server_free(s);
    }
    assert_int_equal(hs.calls, 0);
}

static void client_fed_garbage(void **state)
{
    struct pk_h2_client *c = make_client(ECHO_PATH, "x", 1, 1024);
    struct pk_buf out;

    pk_buf_init(&out, 1 << 16);
    assert_int_equal(pk_h2_client_send(c, &out), 0);
    assert_true(out.len > 24); /* preface, SETTINGS, HEADERS, DATA */
    assert_memory_equal(out.data, "PRI * HTTP/2.0", 14);
    assert_int_equal(pk_h2_client_recv(c, (const uint8_t *)"HTTP/1.1 400 Bad\r\n\r\n", 20),
                     PK_E_PROTO);
    assert_true(pk_h2_client_done(c));
    assert_int_equal(pk_h2_client_result(c)->status, PK_GRPC_INTERNAL);
    /* Done is final: more bytes and an abort change nothing. */
    assert_int_equal(pk_h2_client_recv(c, (const uint8_t *)"x", 1), 0);
    pk_h2_client_abort(c, PK_GRPC_CANCELLED, "late");
    assert_int_equal(pk_h2_client_result(c)->status, PK_GRPC_INTERNAL);
    pk_buf_free(&out);
    pk_h2_client_free(c);

    /* A transport failure before any answer. */
    c = make_client(ECHO_PATH, "x", 1, 1024);
    pk_h2_client_abort(c, PK_GRPC_UNAVAILABLE, "connection closed by %s", "peer");
    assert_true(pk_h2_client_done(c));
    assert_int_equal(pk_h2_client_result(c)->status, PK_GRPC_UNAVAILABLE);
    assert_string_equal(pk_h2_client_result(c)->message, "connection closed by peer");
    pk_h2_client_free(c);
}

static void client_options_rejected(void **state)
{
    struct pk_h2_client *c = NULL;
    struct pk_err err;
    const char *const bad_md[][3] = {{"X-Upper", "v", NULL},
                                     {"grpc-status", "0", NULL},
                                     {"te", "x", NULL},
                                     {"x-ok", "tab\there", NULL},
                                     {"", "v", NULL}};
    struct pk_h2_call call = {
            .authority = "a:1",
            .path = ECHO_PATH,
            .max_response = 10,
    };

    for (size_t i = 0; i < PK_ARRAY_LEN(bad_md); i++) {
        call.metadata = bad_md[i];
        assert_int_equal(pk_h2_client_new(&call, &c, &err), PK_E_INVALID);
    }
    call.metadata = NULL;
    call.path = "nope";
    assert_int_equal(pk_h2_client_new(&call, &c, &err), PK_E_INVALID);
    call.path = ECHO_PATH;
    call.authority = "";
    assert_int_equal(pk_h2_client_new(&call, &c, &err), PK_E_INVALID);
    call.authority = "a:1";
    call.max_response = 0;
    assert_int_equal(pk_h2_client_new(&call, &c, &err), PK_E_INVALID);
    assert_null(c);

    struct pk_h2_server_config scfg = {.max_message = 0, .route = route, .handle = handle};
    struct pk_h2_server *s = NULL;
    assert_int_equal(pk_h2_server_new(&scfg, &s, &err), PK_E_INVALID);
    scfg.max_message = 10;
    scfg.route = NULL;
    assert_int_equal(pk_h2_server_new(&scfg, &s, &err), PK_E_INVALID);
    assert_null(s);
}

/* ---- a raw nghttp2 client: sends requests pk_h2_client never would ------------------------ */

struct raw {
    nghttp2_session *ses;
    int http_status[16];
    int grpc_status[16]; /* -1 = none */
    char grpc_message[16][256];
    uint32_t close_code[16];
    bool closed[16];
    int data_frames[16];
    /* server mode: what to answer */
    const nghttp2_nv *resp;
    size_t n_resp;
    const uint8_t *resp_data;
    size_t resp_data_len;
    const nghttp2_nv *trailers;
    size_t n_trailers;
    bool goaway_first;
    bool rst_refused;
    size_t data_off;
};

static int raw_slot(int32_t id)
{
    return (id / 2) % 16;
}

static int raw_on_header(nghttp2_session *ses, const nghttp2_frame *frame, const uint8_t *name,
                         size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                         void *user_data)
{
    struct raw *r = user_data;
    int i = raw_slot(frame->hd.stream_id);
    char v[256];
    snprintf(v, sizeof(v), "%.*s", (int)valuelen, value);
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        r->http_status[i] = atoi(v);
    } else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        r->grpc_status[i] = atoi(v);
    } else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        snprintf(r->grpc_message[i], sizeof(r->grpc_message[i]), "%s", v);
    }
    return 0;
}

static int raw_on_close(nghttp2_session *ses, int32_t id, uint32_t code, void *user_data)
{
    struct raw *r = user_data;
    r->closed[raw_slot(id)] = true;
    r->close_code[raw_slot(id)] = code;
    return 0;
}

static ssize_t raw_read_data(nghttp2_session *ses, int32_t id, uint8_t *buf, size_t len,
                             uint32_t *flags, nghttp2_data_source *src, void *user_data)
{
    struct raw *r = user_data;
    size_t n = PK_MIN(len, r->resp_data_len - r->data_off);
    memcpy(buf, r->resp_data + r->data_off, n);
    r->data_off += n;
    if (r->data_off == r->resp_data_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (r->trailers != NULL) {
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            nghttp2_submit_trailer(ses, id, r->trailers, r->n_trailers);
        }
    }
    return (ssize_t)n;
}

/* Server mode: answer each complete request as configured. */
static int raw_on_frame_recv(nghttp2_session *ses, const nghttp2_frame *frame, void *user_data)
{
    struct raw *r = user_data;
    if (r->resp == NULL && !r->goaway_first && !r->rst_refused) {
        return 0;
    }
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        if (r->goaway_first) {
            nghttp2_submit_goaway(ses, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
        } else if (r->rst_refused) {
            nghttp2_submit_rst_stream(ses, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                      NGHTTP2_REFUSED_STREAM);
        } else if (r->resp_data != NULL) {
            nghttp2_data_provider prd = {.read_callback = raw_read_data};
            r->data_off = 0;
            nghttp2_submit_response(ses, frame->hd.stream_id, r->resp, r->n_resp, &prd);
        } else {
            nghttp2_submit_response(ses, frame->hd.stream_id, r->resp, r->n_resp, NULL);
        }
    }
    return 0;
}

static void raw_init(struct raw *r, bool server)
{
    nghttp2_session_callbacks *cbs;
    memset(r->grpc_status, 0xff, sizeof(r->grpc_status));
    assert_int_equal(nghttp2_session_callbacks_new(&cbs), 0);
    nghttp2_session_callbacks_set_on_header_callback(cbs, raw_on_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, raw_on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, raw_on_frame_recv);
    if (server) {
        assert_int_equal(nghttp2_session_server_new(&r->ses, cbs, r), 0);
    } else {
        assert_int_equal(nghttp2_session_client_new(&r->ses, cbs, r), 0);
    }
    nghttp2_session_callbacks_del(cbs);
    assert_int_equal(nghttp2_submit_settings(r->ses, NGHTTP2_FLAG_NONE, NULL, 0), 0);
}

static int raw_send(void *self, struct pk_buf *out)
{
    struct raw *r = self;
    const uint8_t *data;
    /* The pipe chunk is large enough in these tests that a frame always fits. */
    for (;;) {
        ssize_t n = nghttp2_session_mem_send(r->ses, &data);
        assert_true(n >= 0);
        if (n == 0) {
            return 0;
        }
        assert_int_equal(pk_buf_append(out, data, (size_t)n), 0);
    }
}

static int raw_recv(void *self, const uint8_t *p, size_t len)
{
    struct raw *r = self;
    ssize_t n = nghttp2_session_mem_recv(r->ses, p, len);
    return n < 0 ? PK_E_PROTO : 0;
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE         \
    }

static const uint8_t one_message[] = {0, 0, 0, 0, 2, 'h', 'i'};

/* Send one request with the given headers and body through a raw client; return its slot. */
static int raw_request(struct raw *rc, struct pk_h2_server *s, const nghttp2_nv *nv, size_t n,
                       const uint8_t *body, size_t body_len)
{
    struct ep ce = {raw_send, raw_recv, rc};
    struct ep se = {pk_server_send, pk_server_recv, s};
    int32_t id;

    rc->resp_data = body;
    rc->resp_data_len = body_len;
    rc->data_off = 0;
    if (body != NULL) {
        nghttp2_data_provider prd = {.read_callback = raw_read_data};
        id = nghttp2_submit_request(rc->ses, NULL, nv, n, &prd, NULL);
    } else {
        id = nghttp2_submit_request(rc->ses, NULL, nv, n, NULL, NULL);
    }
    assert_true(id > 0);
    pk_buf_init(&ce.log, 1 << 20);
    pk_buf_init(&se.log, 1 << 20);
    pump(&ce, &se, 1 << 16);
    pk_buf_free(&ce.log);
    pk_buf_free(&se.log);
    rc->resp_data = NULL;
    return raw_slot(id);
}

static void bad_requests(void **state)
{
    struct handler_state hs = {0};
    struct pk_h2_server *s = make_server(&hs, 1024, 8);
    struct raw rc = {0};
    static const struct {
        nghttp2_nv nv[7];
        size_t n;
        bool body;
        int http;
        int grpc;
    } cases[] = {
            /* wrong content-type */
            {{NV(":method", "POST"), NV(":scheme", "https"), NV(":path", ECHO_PATH),
              NV(":authority", "a"), NV("content-type", "text/plain"), NV("te", "trailers")},
             6,
             true,
             415,
             PK_GRPC_INTERNAL},
            /* no te: trailers */
            {{NV(":method", "POST"), NV(":scheme", "https"), NV(":path", ECHO_PATH),
              NV(":authority", "a"), NV("content-type", "application/grpc")},
             5,
             true,
             400,
             PK_GRPC_INTERNAL},
            /* GET */
            {{NV(":method", "GET"), NV(":scheme", "https"), NV(":path", ECHO_PATH),
              NV(":authority", "a"), NV("content-type", "application/grpc"), NV("te", "trailers")},
             6,
             false,
             405,
             PK_GRPC_UNIMPLEMENTED},
            /* compression we never offered */
            {{NV(":method", "POST"), NV(":scheme", "https"), NV(":path", ECHO_PATH),
              NV(":authority", "a"), NV("content-type", "application/grpc+proto"),
              NV("te", "trailers"), NV("grpc-encoding", "gzip")},
             7,
             true,
             200,
             PK_GRPC_UNIMPLEMENTED},
            /* garbage grpc-timeout */
            {{NV(":method", "POST"), NV(":scheme", "https"), NV(":path", ECHO_PATH),
              NV(":authority", "a"), NV("content-type", "application/grpc"), NV("te", "trailers"),
              NV("grpc-timeout", "soon")},
             7,
             true,
             400,
             PK_GRPC_INTERNAL},
            /* zero messages */
            {{NV(":method", "POST"), NV(":scheme", "https"), NV(":path", ECHO_PATH),
              NV(":authority", "a"), NV("content-type", "application/grpc"), NV("te", "trailers")},
             6,
             false,
             200,
             PK_GRPC_INTERNAL},
    };

    raw_init(&rc, false);
    for (size_t i = 0; i < PK_ARRAY_LEN(cases); i++) {
        int slot = raw_request(&rc, s, cases[i].nv, cases[i].n, cases[i].body ? one_message : NULL,
                               sizeof(one_message));
        assert_true(rc.closed[slot]);
        assert_int_equal(rc.http_status[slot], cases[i].http);
        assert_int_equal(rc.grpc_status[slot], cases[i].grpc);
    }
    assert_int_equal(hs.calls, 0);

    /* A good request on the same connection still works afterwards. */
    static const nghttp2_nv good[] = {NV(":method", "POST"),
                                      NV(":scheme", "https"),
                                      NV(":path", ECHO_PATH),
                                      NV(":authority", "a"),
                                      NV("content-type", "application/grpc"),
                                      NV("te", "trailers")};
    int slot = raw_request(&rc, s, good, PK_ARRAY_LEN(good), one_message, sizeof(one_message));
    assert_int_equal(rc.grpc_status[slot], PK_GRPC_OK);
    assert_int_equal(hs.calls, 1);

    /* Two messages in a unary request; a truncated message; a compressed-flag message. */
    static const uint8_t two[] = {0, 0, 0, 0, 1, 'a', 0, 0, 0, 0, 1, 'b'};
    static const uint8_t cut[] = {0, 0, 0, 0, 9, 'a', 'b'};
    static const uint8_t zipped[] = {1, 0, 0, 0, 1, 'a'};
    static const uint8_t huge[] = {0, 0xff, 0xff, 0xff, 0xff};
    const uint8_t *bodies[] = {two, cut, zipped, huge};
    size_t lens[] = {sizeof(two), sizeof(cut), sizeof(zipped), sizeof(huge)};
    int want[] = {PK_GRPC_INTERNAL, PK_GRPC_INTERNAL, PK_GRPC_INTERNAL, PK_GRPC_RESOURCE_EXHAUSTED};
    for (size_t i = 0; i < PK_ARRAY_LEN(bodies); i++) {
        slot = raw_request(&rc, s, good, PK_ARRAY_LEN(good), bodies[i], lens[i]);
        assert_true(rc.closed[slot]);
        assert_int_equal(rc.grpc_status[slot], want[i]);
    }
    assert_int_equal(hs.calls, 1);

    /* A header block over max_header_list resets the stream; the handler never runs. */
    static char big[6000];
    memset(big, 'v', sizeof(big) - 1);
    nghttp2_nv fat[7];
    memcpy(fat, good, sizeof(good));
    fat[6] = (nghttp2_nv){(uint8_t *)"x-big", (uint8_t *)big, 5, sizeof(big) - 1,
                          NGHTTP2_NV_FLAG_NONE};
    slot = raw_request(&rc, s, fat, 7, one_message, sizeof(one_message));
    assert_true(rc.closed[slot]);
    assert_int_not_equal(rc.close_code[slot], NGHTTP2_NO_ERROR);
    assert_int_equal(hs.calls, 1);
    assert_true(pk_h2_server_idle(s));

    nghttp2_session_del(rc.ses);
    pk_h2_server_free(s);
}

static void concurrent_stream_limit(void **state)
{
    struct handler_state hs = {0};
    struct pk_h2_server *s = make_server(&hs, 1024, 2);
    struct raw rc = {0};
    struct ep ce = {raw_send, raw_recv, &rc};
    struct ep se = {pk_server_send, pk_server_recv, s};
    static const nghttp2_nv good[] = {NV(":method", "POST"),
                                      NV(":scheme", "https"),
                                      NV(":path", ECHO_PATH),
                                      NV(":authority", "a"),
                                      NV("content-type", "application/grpc"),
                                      NV("te", "trailers")};
    int32_t ids[4];

    raw_init(&rc, false);
    /* Open four streams (headers only, no END_STREAM) before the server's SETTINGS arrive. */
    for (int i = 0; i < 4; i++) {
        ids[i] = nghttp2_submit_headers(rc.ses, NGHTTP2_FLAG_NONE, -1, NULL, good,
                                        PK_ARRAY_LEN(good), NULL);
        assert_true(ids[i] > 0);
    }
    pk_buf_init(&ce.log, 1 << 20);
    pk_buf_init(&se.log, 1 << 20);
    pump(&ce, &se, 1 << 16);
    int refused = 0;
    for (int i = 0; i < 4; i++) {
        if (rc.closed[raw_slot(ids[i])]) {
            refused++;
            assert_int_not_equal(rc.close_code[raw_slot(ids[i])], NGHTTP2_NO_ERROR);
        }
    }
    assert_int_equal(refused, 2);
    assert_int_equal(hs.calls, 0);
    pk_buf_free(&ce.log);
    pk_buf_free(&se.log);
    nghttp2_session_del(rc.ses);
    pk_h2_server_free(s);
}

/* ---- pk_h2_client against a raw server ----------------------------------------------------- */

static int client_against(struct raw *rs, size_t max_response, char *msg, size_t msglen)
{
    struct pk_h2_client *c = make_client(ECHO_PATH, "q", 1, max_response);
    struct ep ce = {pk_client_send, pk_client_recv, c};
    struct ep se = {raw_send, raw_recv, rs};
    int status;

    raw_init(rs, true);
    pk_buf_init(&ce.log, 1 << 20);
    pk_buf_init(&se.log, 1 << 20);
    pump(&ce, &se, 1 << 16);
    if (!pk_h2_client_done(c)) {
        /* The transport would report the end of the connection. */
        pk_h2_client_abort(c, PK_GRPC_UNAVAILABLE, "connection closed");
    }
    status = pk_h2_client_result(c)->status;
    snprintf(msg, msglen, "%s", pk_h2_client_result(c)->message);
    pk_buf_free(&ce.log);
    pk_buf_free(&se.log);
    nghttp2_session_del(rs->ses);
    pk_h2_client_free(c);
    return status;
}

static void client_status_mapping(void **state)
{
    char msg[512];
    static const nghttp2_nv ok_headers[] = {NV(":status", "200"),
                                            NV("content-type", "application/grpc")};
    static const nghttp2_nv ok_trailers[] = {NV("grpc-status", "0")};
    static const nghttp2_nv http503[] = {NV(":status", "503"), NV("content-type", "text/html")};
    static const nghttp2_nv http404_grpc[] = {
            NV(":status", "404"), NV("content-type", "application/grpc"), NV("grpc-status", "7"),
            NV("grpc-message", "no%20way")};
    static const nghttp2_nv only_trailers[] = {NV(":status", "200"),
                                               NV("content-type", "application/grpc"),
                                               NV("grpc-status", "5"), NV("grpc-message", "not%2")};
    static const nghttp2_nv bad_status[] = {NV(":status", "200"),
                                            NV("content-type", "application/grpc"),
                                            NV("grpc-status", "zero")};
    static const nghttp2_nv not_grpc[] = {NV(":status", "200"), NV("content-type", "text/html")};
    static const uint8_t two[] = {0, 0, 0, 0, 1, 'a', 0, 0, 0, 0, 1, 'b'};
    static const uint8_t cut[] = {0, 0, 0, 0, 9, 'a'};
    static const uint8_t big[] = {0, 0, 0, 1, 0};

    /* Trailers-only responses carry the status in the one header block. */
    struct raw rs = {.resp = only_trailers, .n_resp = 4};
    assert_int_equal(client_against(&rs, 1024, msg, sizeof(msg)), PK_GRPC_NOT_FOUND);
    assert_string_equal(msg, "not%2");
    /* grpc-status wins over the HTTP status. */
    rs = (struct raw){.resp = http404_grpc, .n_resp = 4};
    assert_int_equal(client_against(&rs, 1024, msg, sizeof(msg)), PK_GRPC_PERMISSION_DENIED);
    assert_string_equal(msg, "no way");
    /* No grpc-status: map the HTTP status. */
    rs = (struct raw){.resp = http503, .n_resp = 2};
    assert_int_equal(client_against(&rs, 1024, msg, sizeof(msg)), PK_GRPC_UNAVAILABLE);
    rs = (struct raw){.resp = not_grpc, .n_resp = 2};
    assert_int_equal(client_against(&rs, 1024, msg, sizeof(msg)), PK_GRPC_UNKNOWN);
    rs = (struct raw){.resp = ok_headers, .n_resp = 2};
    assert_int_equal(client_against(&rs, 1024, msg, sizeof(msg)), PK_GRPC_INTERNAL);
    assert_non_null(strstr(msg, "grpc-status"));
    rs = (struct raw){.resp = bad_status, .n_resp = 3};
    assert_int_equal(client_against(&rs, 1024, msg, sizeof(msg)), PK_GRPC_UNKNOWN);
    /* OK with a well-formed body. */
    rs = (struct raw){.resp = ok_headers,
                      .n_resp = 2,
                      .resp_data = one_message,
                      .resp_data_len = sizeof(one_message),
                      .trailers = ok_trailers,
                      .n_trailers = 1};
    assert_int_equal(client_against(&rs, 1024, msg, sizeof(msg)), PK_GRPC_OK);
    /* OK status but a broken body. */
    rs = (struct raw){.resp = ok_headers,
                      .n_resp = 2,
                      .resp_data = two,
                      .resp_data_len = sizeof(two),
                      .trailers = ok_trailers,
                      .n_trailers = 1};
    assert_int_equal(client_against(&rs, 1024, msg, sizeof(msg)), PK_GRPC_INTERNAL);
    rs = (struct raw){.resp = ok_headers,
                      .n_resp = 2,
                      .resp_data = cut,
                      .resp_data_len = sizeof(cut),
                      .trailers = ok_trailers,
                      .n_trailers = 1};
    assert_int_equal(client_against(&rs, 1024, msg, sizeof(msg)), PK_GRPC_INTERNAL);
    rs = (struct raw){.resp = ok_headers,
                      .n_resp = 2,
                      .resp_data = big,
                      .resp_data_len = sizeof(big),
                      .trailers = ok_trailers,
                      .n_trailers = 1};
    assert_int_equal(client_against(&rs, 100, msg, sizeof(msg)), PK_GRPC_RESOURCE_EXHAUSTED);
    rs = (struct raw){.resp = ok_headers,
                      .n_resp = 2,
                      .resp_data = one_message,
                      .resp_data_len = 0,
                      .trailers = ok_trailers,
                      .n_trailers = 1};
    assert_int_equal(client_against(&rs, 1024, msg, sizeof(msg)), PK_GRPC_INTERNAL);
    /* Refused before processing: retryable. */
    rs = (struct raw){.goaway_first = true};
    assert_int_equal(client_against(&rs, 1024, msg, sizeof(msg)), PK_GRPC_UNAVAILABLE);
    rs = (struct raw){.rst_refused = true};
    assert_int_equal(client_against(&rs, 1024, msg, sizeof(msg)), PK_GRPC_UNAVAILABLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(round_trip),
            cmocka_unit_test(trailers_only_error),
            cmocka_unit_test(unknown_path_unimplemented),
            cmocka_unit_test(request_over_limit),
            cmocka_unit_test(response_over_limit),
            cmocka_unit_test(server_fed_garbage),
            cmocka_unit_test(client_fed_garbage),
            cmocka_unit_test(client_options_rejected),
            cmocka_unit_test(bad_requests),
            cmocka_unit_test(concurrent_stream_limit),
            cmocka_unit_test(client_status_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
