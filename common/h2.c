/* SPDX-License-Identifier: Apache-2.0 */
/* picket: sans-I/O HTTP/2 sessions (nghttp2) that carry unary gRPC calls, server and client.
 *
 * Implementation notes. "Stream" is an HTTP/2 stream = one gRPC call. A server stream collects
 * headers, then the request body through a gRPC deframer, and is answered either early (a
 * trailers-only response as soon as we know the call fails: bad headers, unknown path, oversized
 * message) or after END_STREAM with HEADERS + one DATA message + trailers. "Answered" means the
 * response is queued in nghttp2; if the client is still sending then, the stream is reset with
 * NO_ERROR once our END_STREAM is out (RFC 9113 §8.1), so a client cannot keep us reading a body
 * nobody wants. A client session runs exactly one call on stream 1. */
#include "h2.h"

#include <nghttp2/nghttp2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc.h"
#include "mem.h"

#define H2_DEFAULT_HEADER_LIST (16 * 1024)
#define H2_DEFAULT_STREAMS     32
#define H2_MAX_OUTBOUND_ACK    64
#define H2_MAX_SETTINGS        32
#define H2_MAX_HEADERS         64 /* header fields kept per request */
#define H2_MAX_CONTINUATIONS   8
#define H2_RESET_BURST         100
#define H2_RESET_RATE          33
#define H2_CLIENT_WINDOW       (1 << 20)
#define H2_GRPC_MESSAGE_MAX    4096 /* decoded grpc-message bytes kept by a client */

#ifndef PK_VERSION
#define PK_VERSION "0"
#endif

/* These two options are in upstream nghttp2 1.60/1.61 and in Debian 12's security backports of
 * 1.52; weak references keep the library usable with a 1.52 that lacks them. */
#pragma weak nghttp2_option_set_stream_reset_rate_limit
#pragma weak nghttp2_option_set_max_continuations

static int h2_options(nghttp2_option **out, bool server)
{
    nghttp2_option *opt;

    if (nghttp2_option_new(&opt) != 0) {
        return PK_E_PROTO;
    }
    nghttp2_option_set_max_outbound_ack(opt, H2_MAX_OUTBOUND_ACK);
    nghttp2_option_set_max_settings(opt, H2_MAX_SETTINGS);
    nghttp2_option_set_max_reserved_remote_streams(opt, 0);
    if (server && nghttp2_option_set_stream_reset_rate_limit != NULL) {
        nghttp2_option_set_stream_reset_rate_limit(opt, H2_RESET_BURST, H2_RESET_RATE);
    }
    if (nghttp2_option_set_max_continuations != NULL) {
        nghttp2_option_set_max_continuations(opt, H2_MAX_CONTINUATIONS);
    }
    *out = opt;
    return 0;
}

/* Copy as much of the session's queued output into out as fits; keeps the rest pending. */
static int h2_drain(nghttp2_session *ses, const uint8_t **pend, size_t *pend_len,
                    struct pk_buf *out)
{
    for (;;) {
        if (*pend_len == 0) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(ses, &data);
            if (n < 0) {
                return PK_E_PROTO;
            }
            if (n == 0) {
                return 0;
            }
            *pend = data;
            *pend_len = (size_t)n;
        }
        size_t k = PK_MIN(pk_buf_space(out), *pend_len);
        if (k == 0) {
            return 0;
        }
        int r = pk_buf_append(out, *pend, k);
        PK_ASSERT(r == 0);
        *pend += k;
        *pend_len -= k;
    }
}

static bool header_is(const uint8_t *name, size_t namelen, const char *want)
{
    return namelen == strlen(want) && memcmp(name, want, namelen) == 0;
}

static nghttp2_nv make_nv(const char *name, const char *value)
{
    nghttp2_nv nv = {(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                     NGHTTP2_NV_FLAG_NONE};
    return nv;
}

/* ---- server ------------------------------------------------------------------------------- */

struct h2_sstream {
    struct pk_h2_server *s;
    struct h2_sstream *prev, *next; /* all open streams of s */
    int32_t id;
    bool answered;      /* response queued */
    bool remote_closed; /* client's END_STREAM seen */
    bool rst_after_send;
    size_t header_bytes;
    size_t buffered; /* request bytes this stream counts against s->buffered */
    char *method;
    char *path;
    char *authority;
    char *content_type;
    char *te;
    char *timeout;
    char *encoding;
    struct pk_h2_header headers[H2_MAX_HEADERS];
    size_t n_headers;
    const void *route;
    struct pk_grpc_deframer deframer;
    struct pk_buf request;  /* the one request message */
    struct pk_buf response; /* the framed response message */
    size_t response_off;
    char status_text[12];
    struct pk_buf grpc_message; /* percent-encoded */
};

struct pk_h2_server {
    nghttp2_session *ses;
    struct pk_h2_server_config cfg;
    const uint8_t *pend;
    size_t pend_len;
    size_t buffered;
    size_t open_streams;
    struct h2_sstream *streams;
    uint64_t calls;
    uint64_t calls_ok;
};

static void sstream_free(struct h2_sstream *st)
{
    struct pk_h2_server *s = st->s;

    if (st->prev != NULL) {
        st->prev->next = st->next;
    } else {
        s->streams = st->next;
    }
    if (st->next != NULL) {
        st->next->prev = st->prev;
    }
    s->open_streams--;
    s->buffered -= st->buffered;
    free(st->method);
    free(st->path);
    free(st->authority);
    free(st->content_type);
    free(st->te);
    free(st->timeout);
    free(st->encoding);
    for (size_t i = 0; i < st->n_headers; i++) {
        free((char *)st->headers[i].name);
        free((char *)st->headers[i].value);
    }
    pk_grpc_deframer_free(&st->deframer);
    pk_buf_free(&st->request);
    pk_buf_free(&st->response);
    pk_buf_free(&st->grpc_message);
    free(st);
}

static ssize_t server_read_response(nghttp2_session *ses, int32_t id, uint8_t *buf, size_t len,
                                    uint32_t *flags, nghttp2_data_source *source, void *user_data)
{
    struct h2_sstream *st = source->ptr;
    size_t n = PK_MIN(len, st->response.len - st->response_off);

    if (n > 0) {
        memcpy(buf, st->response.data + st->response_off, n);
        st->response_off += n;
    }
    if (st->response_off == st->response.len) {
        nghttp2_nv trailers[2];
        size_t nt = 0;
        trailers[nt++] = make_nv("grpc-status", "0");
        if (st->grpc_message.len > 0) {
            trailers[nt++] = make_nv("grpc-message", (const char *)st->grpc_message.data);
        }
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (nghttp2_submit_trailer(ses, id, trailers, nt) == 0) {
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        }
    }
    return (ssize_t)n;
}

/* Queue the response. status != OK (or no body) gives a trailers-only response. */
static void server_answer(struct h2_sstream *st, int http_status, int grpc_status,
                          const char *message, const struct pk_slice *body)
{
    nghttp2_nv nv[4];
    size_t n = 0;
    char http_text[8];
    int r;

    if (st->answered) {
        return;
    }
    st->answered = true;
    st->s->calls++;
    if (grpc_status == 0) {
        st->s->calls_ok++;
    }
    snprintf(http_text, sizeof(http_text), "%d", http_status);
    snprintf(st->status_text, sizeof(st->status_text), "%d", grpc_status);
    pk_buf_init(&st->grpc_message, 3 * 512 + 1);
    r = pk_grpc_percent_encode(&st->grpc_message, (const uint8_t *)message, strnlen(message, 512));
    PK_ASSERT(r == 0);
    r = pk_buf_append(&st->grpc_message, "", 0); /* keeps a NUL after the text */
    PK_ASSERT(r == 0);
    nv[n++] = make_nv(":status", http_text);
    nv[n++] = make_nv("content-type", "application/grpc");
    if (grpc_status == 0 && body != NULL) {
        pk_buf_init(&st->response, body->len + PK_GRPC_FRAME_HEADER_LEN);
        r = pk_grpc_frame_encode(&st->response, *body);
        PK_ASSERT(r == 0);
        nghttp2_data_provider prd = {.source.ptr = st, .read_callback = server_read_response};
        r = nghttp2_submit_response(st->s->ses, st->id, nv, n, &prd);
    } else {
        nv[n++] = make_nv("grpc-status", st->status_text);
        if (st->grpc_message.len > 0) {
            nv[n++] = make_nv("grpc-message", (const char *)st->grpc_message.data);
        }
        r = nghttp2_submit_response(st->s->ses, st->id, nv, n, NULL);
    }
    if (r != 0) {
        nghttp2_submit_rst_stream(st->s->ses, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    /* The client is still sending: stop it once our END_STREAM is out. */
    st->rst_after_send = !st->remote_closed;
}

static void server_fail(struct h2_sstream *st, int http_status, int grpc_status, const char *fmt,
                        ...) PK_PRINTF(4, 5);

static void server_fail(struct h2_sstream *st, int http_status, int grpc_status, const char *fmt,
                        ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    server_answer(st, http_status, grpc_status, msg, NULL);
}

static bool content_type_ok(const char *ct)
{
    static const char base[] = "application/grpc";
    size_t n = sizeof(base) - 1;

    if (ct == NULL || strncmp(ct, base, n) != 0) {
        return false;
    }
    return ct[n] == '\0' || ct[n] == '+' || ct[n] == ';';
}

/* The request's header block is complete: validate it (gRPC PROTOCOL-HTTP2 "Requests"). */
static void server_headers_done(struct h2_sstream *st)
{
    struct pk_h2_server *s = st->s;
    uint64_t timeout_ns;

    if (st->method == NULL || strcmp(st->method, "POST") != 0) {
        server_fail(st, 405, PK_GRPC_UNIMPLEMENTED, "method '%.32s' is not POST",
                    st->method ? st->method : "");
        return;
    }
    if (!content_type_ok(st->content_type)) {
        server_fail(st, 415, PK_GRPC_INTERNAL, "invalid gRPC request content-type '%.64s'",
                    st->content_type ? st->content_type : "");
        return;
    }
    if (st->te == NULL || strcmp(st->te, "trailers") != 0) {
        server_fail(st, 400, PK_GRPC_INTERNAL, "gRPC request needs 'te: trailers'");
        return;
    }
    if (st->timeout != NULL && pk_grpc_timeout_parse((const uint8_t *)st->timeout,
                                                     strlen(st->timeout), &timeout_ns) != 0) {
        server_fail(st, 400, PK_GRPC_INTERNAL, "malformed grpc-timeout '%.32s'", st->timeout);
        return;
    }
    if (st->encoding != NULL && strcmp(st->encoding, "identity") != 0) {
        server_fail(st, 200, PK_GRPC_UNIMPLEMENTED, "grpc-encoding '%.32s' is not supported",
                    st->encoding);
        return;
    }
    if (st->path == NULL || st->path[0] != '/') {
        server_fail(st, 200, PK_GRPC_UNIMPLEMENTED, "malformed method path");
        return;
    }
    st->route = s->cfg.route(s->cfg.ctx, st->path);
    if (st->route == NULL) {
        server_fail(st, 200, PK_GRPC_UNIMPLEMENTED, "unknown method '%.200s'", st->path);
        return;
    }
}

static int server_on_message(void *ctx, struct pk_slice msg)
{
    struct h2_sstream *st = ctx;

    if (pk_grpc_deframer_count(&st->deframer) > 1) {
        return PK_E_PROTO;
    }
    return pk_buf_append(&st->request, msg.ptr, msg.len);
}

/* The client's END_STREAM arrived and nothing went wrong so far: run the handler. */
static void server_request_done(struct h2_sstream *st)
{
    struct pk_h2_server *s = st->s;
    struct pk_err err = {{0}};
    struct pk_h2_reply reply;
    struct pk_h2_request req;
    uint64_t timeout_ns = 0;

    if (pk_grpc_deframer_finish(&st->deframer, &err) != 0) {
        server_fail(st, 200, PK_GRPC_INTERNAL, "%s", err.msg);
        return;
    }
    if (pk_grpc_deframer_count(&st->deframer) != 1) {
        server_fail(st, 200, PK_GRPC_INTERNAL, "unary request has no message");
        return;
    }
    if (st->timeout != NULL) {
        int r = pk_grpc_timeout_parse((const uint8_t *)st->timeout, strlen(st->timeout),
                                      &timeout_ns);
        PK_ASSERT(r == 0); /* checked with the headers */
    }
    req = (struct pk_h2_request){
            .path = st->path,
            .authority = st->authority ? st->authority : "",
            .message = pk_buf_slice(&st->request),
            .timeout_ns = timeout_ns,
            .headers = st->headers,
            .n_headers = st->n_headers,
            .stream_id = st->id,
    };
    memset(&reply, 0, sizeof(reply));
    reply.status = PK_GRPC_UNKNOWN;
    pk_buf_init(&reply.body, s->cfg.max_message);
    s->cfg.handle(s->cfg.ctx, st->route, &req, &reply);
    if (!reply.defer) {
        struct pk_slice body = pk_buf_slice(&reply.body);
        reply.message[sizeof(reply.message) - 1] = '\0';
        if (reply.status < 0 || reply.status > PK_GRPC_UNAUTHENTICATED) {
            reply.status = PK_GRPC_UNKNOWN;
        }
        server_answer(st, 200, reply.status, reply.message, &body);
    }
    pk_buf_free(&reply.body);
}

int pk_h2_server_answer(struct pk_h2_server *s, int32_t stream_id, int status, const char *message,
                        struct pk_slice body)
{
    struct h2_sstream *st = nghttp2_session_get_stream_user_data(s->ses, stream_id);
    char text[512];

    /* Only a stream whose request is complete and whose handler deferred is waiting here; any
     * other (reset, answered, still receiving) is not ours to answer. */
    if (st == NULL || st->answered || !st->remote_closed || st->route == NULL) {
        return PK_E_NOTFOUND;
    }
    if (status < 0 || status > PK_GRPC_UNAUTHENTICATED) {
        status = PK_GRPC_UNKNOWN;
    }
    if (body.len > s->cfg.max_message) {
        status = PK_GRPC_RESOURCE_EXHAUSTED;
        message = "response message larger than the limit";
    }
    snprintf(text, sizeof(text), "%s", message != NULL ? message : "");
    server_answer(st, 200, status, text, &body);
    return 0;
}

static int server_on_begin_headers(nghttp2_session *ses, const nghttp2_frame *frame,
                                   void *user_data)
{
    struct pk_h2_server *s = user_data;
    struct h2_sstream *st;

    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    st = pk_xcalloc(1, sizeof(*st));
    st->s = s;
    st->id = frame->hd.stream_id;
    pk_grpc_deframer_init(&st->deframer, s->cfg.max_message);
    pk_buf_init(&st->request, s->cfg.max_message);
    st->next = s->streams;
    if (s->streams != NULL) {
        s->streams->prev = st;
    }
    s->streams = st;
    s->open_streams++;
    if (nghttp2_session_set_stream_user_data(ses, st->id, st) != 0) {
        sstream_free(st);
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

static void keep_header(char **slot, const uint8_t *value, size_t len)
{
    free(*slot);
    *slot = pk_xstrndup((const char *)value, len);
}

static int server_on_header(nghttp2_session *ses, const nghttp2_frame *frame, const uint8_t *name,
                            size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                            void *user_data)
{
    struct pk_h2_server *s = user_data;
    struct h2_sstream *st = nghttp2_session_get_stream_user_data(ses, frame->hd.stream_id);

    if (st == NULL) {
        return 0;
    }
    st->header_bytes += namelen + valuelen + 32;
    if (st->header_bytes > s->cfg.max_header_list) {
        /* Resets the stream; nghttp2 keeps decoding the block so HPACK state stays right. */
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0; /* request trailers carry nothing for unary gRPC */
    }
    if (header_is(name, namelen, ":method")) {
        keep_header(&st->method, value, valuelen);
    } else if (header_is(name, namelen, ":path")) {
        keep_header(&st->path, value, valuelen);
    } else if (header_is(name, namelen, ":authority")) {
        keep_header(&st->authority, value, valuelen);
    } else if (namelen > 0 && name[0] == ':') {
        return 0;
    } else {
        if (header_is(name, namelen, "content-type")) {
            keep_header(&st->content_type, value, valuelen);
        } else if (header_is(name, namelen, "te")) {
            keep_header(&st->te, value, valuelen);
        } else if (header_is(name, namelen, "grpc-timeout")) {
            keep_header(&st->timeout, value, valuelen);
        } else if (header_is(name, namelen, "grpc-encoding")) {
            keep_header(&st->encoding, value, valuelen);
        }
        if (st->n_headers < H2_MAX_HEADERS) {
            st->headers[st->n_headers].name = pk_xstrndup((const char *)name, namelen);
            st->headers[st->n_headers].value = pk_xstrndup((const char *)value, valuelen);
            st->n_headers++;
        }
    }
    return 0;
}

static int server_on_data(nghttp2_session *ses, uint8_t flags, int32_t id, const uint8_t *data,
                          size_t len, void *user_data)
{
    struct pk_h2_server *s = user_data;
    struct h2_sstream *st = nghttp2_session_get_stream_user_data(ses, id);
    struct pk_err err = {{0}};
    int r;

    if (st == NULL || st->answered) {
        return 0;
    }
    size_t before = pk_grpc_deframer_buffered(&st->deframer) + st->request.len;
    r = pk_grpc_deframer_feed(&st->deframer, data, len, server_on_message, st, &err);
    /* Count what this chunk left buffered; the excess is bounded by one DATA frame. */
    size_t after = pk_grpc_deframer_buffered(&st->deframer) + st->request.len;
    if (after > before) {
        s->buffered += after - before;
        st->buffered += after - before;
    }
    if (r == 0 && s->buffered > s->cfg.max_buffered) {
        server_fail(st, 200, PK_GRPC_RESOURCE_EXHAUSTED,
                    "server is buffering too many request bytes");
        return 0;
    }
    switch (r) {
    case 0:
        break;
    case PK_E_TOOBIG:
        server_fail(st, 200, PK_GRPC_RESOURCE_EXHAUSTED, "%s", err.msg);
        break;
    case PK_E_PROTO:
        if (err.msg[0] == '\0') {
            snprintf(err.msg, sizeof(err.msg), "unary request has more than one message");
        }
        server_fail(st, 200, PK_GRPC_INTERNAL, "%s", err.msg);
        break;
    default:
        server_fail(st, 200, PK_GRPC_INTERNAL, "%s", err.msg[0] ? err.msg : pk_err_str(r));
        break;
    }
    return 0;
}

static int server_on_frame_recv(nghttp2_session *ses, const nghttp2_frame *frame, void *user_data)
{
    struct h2_sstream *st;

    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) {
        return 0;
    }
    st = nghttp2_session_get_stream_user_data(ses, frame->hd.stream_id);
    if (st == NULL) {
        return 0;
    }
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        server_headers_done(st);
    }
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        st->remote_closed = true;
        st->rst_after_send = false;
        if (!st->answered) {
            server_request_done(st);
        }
    }
    return 0;
}

static int server_on_frame_send(nghttp2_session *ses, const nghttp2_frame *frame, void *user_data)
{
    struct h2_sstream *st;

    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0 ||
        (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)) {
        return 0;
    }
    st = nghttp2_session_get_stream_user_data(ses, frame->hd.stream_id);
    if (st != NULL && st->rst_after_send) {
        st->rst_after_send = false;
        nghttp2_submit_rst_stream(ses, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
    }
    return 0;
}

static int server_on_stream_close(nghttp2_session *ses, int32_t id, uint32_t error_code,
                                  void *user_data)
{
    struct h2_sstream *st = nghttp2_session_get_stream_user_data(ses, id);

    if (st == NULL) {
        return 0;
    }
    nghttp2_session_set_stream_user_data(ses, id, NULL);
    sstream_free(st);
    return 0;
}

int pk_h2_server_new(const struct pk_h2_server_config *cfg, struct pk_h2_server **out,
                     struct pk_err *err)
{
    struct pk_h2_server *s = NULL;
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_option *opt = NULL;
    int rc;

    if (cfg->max_message == 0 || cfg->max_message > UINT32_MAX || cfg->route == NULL ||
        cfg->handle == NULL) {
        return pk_err_set(
                err, PK_E_INVALID,
                "HTTP/2 server needs max_message in 1..2^32-1 and route/handle callbacks");
    }
    s = pk_xcalloc(1, sizeof(*s));
    s->cfg = *cfg;
    if (s->cfg.max_header_list == 0) {
        s->cfg.max_header_list = H2_DEFAULT_HEADER_LIST;
    }
    if (s->cfg.max_concurrent_streams == 0) {
        s->cfg.max_concurrent_streams = H2_DEFAULT_STREAMS;
    }
    if (s->cfg.max_buffered == 0) {
        s->cfg.max_buffered = s->cfg.max_message > SIZE_MAX / 4 ? SIZE_MAX : 4 * cfg->max_message;
    }
    if (nghttp2_session_callbacks_new(&cbs) != 0 || h2_options(&opt, true) != 0) {
        rc = pk_err_set(err, PK_E_PROTO, "cannot set up an HTTP/2 session");
        goto out;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, server_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, server_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, server_on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, server_on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, server_on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, server_on_stream_close);
    if (nghttp2_session_server_new2(&s->ses, cbs, s, opt) != 0) {
        rc = pk_err_set(err, PK_E_PROTO, "cannot create an HTTP/2 server session");
        goto out;
    }
    nghttp2_settings_entry iv[] = {
            {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, s->cfg.max_concurrent_streams},
            {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
             (uint32_t)PK_MIN(s->cfg.max_header_list, UINT32_MAX)},
    };
    if (nghttp2_submit_settings(s->ses, NGHTTP2_FLAG_NONE, iv, PK_ARRAY_LEN(iv)) != 0) {
        rc = pk_err_set(err, PK_E_PROTO, "cannot queue HTTP/2 SETTINGS");
        goto out;
    }
    *out = s;
    s = NULL;
    rc = 0;
out:
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    pk_h2_server_free(s);
    return rc;
}

struct pk_h2_server *pk_h2_server_free(struct pk_h2_server *s)
{
    if (s == NULL) {
        return NULL;
    }
    /* nghttp2_session_del does not call on_stream_close: free the streams ourselves. */
    while (s->streams != NULL) {
        sstream_free(s->streams);
    }
    if (s->ses != NULL) {
        nghttp2_session_del(s->ses);
    }
    free(s);
    return NULL;
}

int pk_h2_server_recv(struct pk_h2_server *s, const uint8_t *p, size_t len, struct pk_err *err)
{
    ssize_t n = nghttp2_session_mem_recv(s->ses, p, len);

    if (n < 0) {
        return pk_err_set(err, PK_E_PROTO, "HTTP/2 error from client: %s",
                          nghttp2_strerror((int)n));
    }
    return 0;
}

int pk_h2_server_send(struct pk_h2_server *s, struct pk_buf *out)
{
    return h2_drain(s->ses, &s->pend, &s->pend_len, out);
}

bool pk_h2_server_want_read(const struct pk_h2_server *s)
{
    return nghttp2_session_want_read(s->ses) != 0;
}

bool pk_h2_server_want_write(const struct pk_h2_server *s)
{
    return s->pend_len > 0 || nghttp2_session_want_write(s->ses) != 0;
}

bool pk_h2_server_idle(const struct pk_h2_server *s)
{
    return s->open_streams == 0;
}

void pk_h2_server_shutdown(struct pk_h2_server *s)
{
    nghttp2_submit_goaway(s->ses, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(s->ses), NGHTTP2_NO_ERROR, NULL,
                          0);
}

uint64_t pk_h2_server_calls(const struct pk_h2_server *s)
{
    return s->calls;
}

uint64_t pk_h2_server_calls_ok(const struct pk_h2_server *s)
{
    return s->calls_ok;
}

/* ---- client ------------------------------------------------------------------------------- */

struct pk_h2_client {
    nghttp2_session *ses;
    const uint8_t *pend;
    size_t pend_len;
    int32_t id;
    struct pk_slice request;
    uint8_t *request_copy;
    size_t request_off;
    size_t max_header_list;
    size_t header_bytes;
    bool done;
    bool final_headers; /* a final (non-1xx) response header block started */
    bool in_trailers;
    int http_status;
    bool have_content_type;
    bool grpc_content_type;
    bool have_grpc_status;
    int grpc_status;
    bool bad_grpc_status;
    bool headers_too_big;
    bool proto_error;
    struct pk_buf grpc_message;
    struct pk_grpc_deframer deframer;
    struct pk_buf response;
    struct pk_h2_result result;
    char own_message[512];
};

static void client_vfinish(struct pk_h2_client *c, int status, const char *fmt, va_list ap)
        PK_PRINTF(3, 0);

static void client_vfinish(struct pk_h2_client *c, int status, const char *fmt, va_list ap)
{
    if (c->done) {
        return;
    }
    c->done = true;
    vsnprintf(c->own_message, sizeof(c->own_message), fmt, ap);
    c->result.status = status;
    c->result.message = c->own_message;
    c->result.response = pk_slice_make(NULL, 0);
}

static void client_finish(struct pk_h2_client *c, int status, const char *fmt, ...) PK_PRINTF(3, 4);

static void client_finish(struct pk_h2_client *c, int status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    client_vfinish(c, status, fmt, ap);
    va_end(ap);
}

void pk_h2_client_abort(struct pk_h2_client *c, int status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    client_vfinish(c, status, fmt, ap);
    va_end(ap);
}

/* gRPC PROTOCOL-HTTP2 "Errors": RST_STREAM codes to status codes. */
static int status_from_rst(uint32_t code)
{
    switch (code) {
    case NGHTTP2_REFUSED_STREAM:
        return PK_GRPC_UNAVAILABLE;
    case NGHTTP2_CANCEL:
        return PK_GRPC_CANCELLED;
    case NGHTTP2_ENHANCE_YOUR_CALM:
        return PK_GRPC_RESOURCE_EXHAUSTED;
    case NGHTTP2_INADEQUATE_SECURITY:
        return PK_GRPC_PERMISSION_DENIED;
    default:
        return PK_GRPC_INTERNAL;
    }
}

/* The stream closed normally (both END_STREAMs): decide the call's status. */
static void client_complete(struct pk_h2_client *c)
{
    struct pk_err err = {{0}};

    if (!c->have_grpc_status) {
        if (c->bad_grpc_status) {
            client_finish(c, PK_GRPC_UNKNOWN, "server sent a malformed grpc-status");
        } else if (c->http_status != 200) {
            client_finish(c, pk_grpc_status_from_http(c->http_status),
                          "HTTP status %d without grpc-status", c->http_status);
        } else if (!c->grpc_content_type) {
            client_finish(c, PK_GRPC_UNKNOWN, "response is not gRPC (content-type)");
        } else {
            client_finish(c, PK_GRPC_INTERNAL, "server closed the stream without grpc-status");
        }
        return;
    }
    if (c->grpc_status != PK_GRPC_OK) {
        c->done = true;
        c->result.status = c->grpc_status;
        c->result.message = (const char *)c->grpc_message.data;
        if (c->result.message == NULL) {
            c->result.message = "";
        }
        c->result.response = pk_slice_make(NULL, 0);
        return;
    }
    if (pk_grpc_deframer_finish(&c->deframer, &err) != 0) {
        client_finish(c, PK_GRPC_INTERNAL, "%s", err.msg);
        return;
    }
    if (pk_grpc_deframer_count(&c->deframer) != 1) {
        client_finish(c, PK_GRPC_INTERNAL, "unary response has %zu messages",
                      pk_grpc_deframer_count(&c->deframer));
        return;
    }
    c->done = true;
    c->result.status = PK_GRPC_OK;
    c->result.message = c->grpc_message.data ? (const char *)c->grpc_message.data : "";
    c->result.response = pk_buf_slice(&c->response);
}

static int client_on_begin_headers(nghttp2_session *ses, const nghttp2_frame *frame,
                                   void *user_data)
{
    struct pk_h2_client *c = user_data;

    if (frame->hd.stream_id != c->id) {
        return 0;
    }
    c->header_bytes = 0;
    c->in_trailers = c->final_headers;
    return 0;
}

static int client_on_header(nghttp2_session *ses, const nghttp2_frame *frame, const uint8_t *name,
                            size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                            void *user_data)
{
    struct pk_h2_client *c = user_data;

    if (frame->hd.stream_id != c->id || c->done) {
        return 0;
    }
    c->header_bytes += namelen + valuelen + 32;
    if (c->header_bytes > c->max_header_list) {
        c->headers_too_big = true;
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (header_is(name, namelen, ":status")) {
        int st = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++) {
            st = st * 10 + (value[i] - '0'); /* nghttp2 checked it is 3 digits */
        }
        c->http_status = st;
        if (st >= 200) {
            c->final_headers = true;
        }
    } else if (header_is(name, namelen, "content-type") && !c->in_trailers) {
        static const char base[] = "application/grpc";
        size_t n = sizeof(base) - 1;
        c->have_content_type = true;
        c->grpc_content_type = valuelen >= n && memcmp(value, base, n) == 0 &&
                               (valuelen == n || value[n] == '+' || value[n] == ';');
    } else if (header_is(name, namelen, "grpc-status")) {
        int st;
        if (pk_grpc_status_parse(value, valuelen, &st) == 0) {
            c->have_grpc_status = true;
            c->grpc_status = st;
        } else {
            c->bad_grpc_status = true;
        }
    } else if (header_is(name, namelen, "grpc-message")) {
        pk_buf_reset(&c->grpc_message);
        /* An over-long message is cut at the cap, never an error. */
        int r = pk_grpc_percent_decode(&c->grpc_message, value,
                                       PK_MIN(valuelen, H2_GRPC_MESSAGE_MAX - 1));
        (void)r;
    }
    return 0;
}

static int client_on_message(void *ctx, struct pk_slice msg)
{
    struct pk_h2_client *c = ctx;

    if (pk_grpc_deframer_count(&c->deframer) > 1) {
        return PK_E_PROTO;
    }
    return pk_buf_append(&c->response, msg.ptr, msg.len);
}

static int client_on_data(nghttp2_session *ses, uint8_t flags, int32_t id, const uint8_t *data,
                          size_t len, void *user_data)
{
    struct pk_h2_client *c = user_data;
    struct pk_err err = {{0}};
    int r;

    if (id != c->id || c->done) {
        return 0;
    }
    r = pk_grpc_deframer_feed(&c->deframer, data, len, client_on_message, c, &err);
    if (r == 0) {
        return 0;
    }
    if (r == PK_E_TOOBIG) {
        client_finish(c, PK_GRPC_RESOURCE_EXHAUSTED, "%s", err.msg);
    } else if (r == PK_E_PROTO && err.msg[0] == '\0') {
        client_finish(c, PK_GRPC_INTERNAL, "unary response has more than one message");
    } else {
        client_finish(c, PK_GRPC_INTERNAL, "%s", err.msg[0] ? err.msg : pk_err_str(r));
    }
    nghttp2_submit_rst_stream(ses, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    return 0;
}

static int client_on_stream_close(nghttp2_session *ses, int32_t id, uint32_t error_code,
                                  void *user_data)
{
    struct pk_h2_client *c = user_data;

    if (id != c->id || c->done) {
        return 0;
    }
    if (c->headers_too_big) {
        client_finish(c, PK_GRPC_INTERNAL, "response headers exceed %zu bytes", c->max_header_list);
    } else if (error_code != NGHTTP2_NO_ERROR && !c->have_grpc_status) {
        client_finish(c, status_from_rst(error_code), "stream reset by server: %s",
                      nghttp2_http2_strerror(error_code));
    } else {
        client_complete(c);
    }
    return 0;
}

/* nghttp2 found the server breaking HTTP/2 and is ending the session (GOAWAY) or our stream. */
static int client_on_error(nghttp2_session *ses, int lib_error_code, const char *msg, size_t len,
                           void *user_data)
{
    struct pk_h2_client *c = user_data;

    if (!c->done) {
        c->proto_error = true;
        client_finish(c, PK_GRPC_INTERNAL, "HTTP/2 protocol error from server: %.*s",
                      (int)PK_MIN(len, 200), msg);
    }
    return 0;
}

static ssize_t client_read_request(nghttp2_session *ses, int32_t id, uint8_t *buf, size_t len,
                                   uint32_t *flags, nghttp2_data_source *source, void *user_data)
{
    struct pk_h2_client *c = user_data;
    size_t n = PK_MIN(len, c->request.len - c->request_off);

    if (n > 0) {
        memcpy(buf, c->request.ptr + c->request_off, n);
        c->request_off += n;
    }
    if (c->request_off == c->request.len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t)n;
}

static bool metadata_name_ok(const char *name)
{
    static const char *const reserved[] = {
            "te",         "content-type",     "user-agent",        "host",   "connection",
            "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"};
    if (name[0] == '\0' || strncmp(name, "grpc-", 5) == 0) {
        return false;
    }
    for (const char *p = name; *p != '\0'; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
                  *p == '.';
        if (!ok) {
            return false;
        }
    }
    for (size_t i = 0; i < PK_ARRAY_LEN(reserved); i++) {
        if (strcmp(name, reserved[i]) == 0) {
            return false;
        }
    }
    return true;
}

static bool metadata_value_ok(const char *value)
{
    for (const char *p = value; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
            return false;
        }
    }
    return true;
}

#define H2_MAX_METADATA 32

int pk_h2_client_new(const struct pk_h2_call *call, struct pk_h2_client **out, struct pk_err *err)
{
    struct pk_h2_client *c = NULL;
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_option *opt = NULL;
    nghttp2_nv nv[8 + H2_MAX_METADATA];
    size_t n = 0;
    char timeout[PK_GRPC_TIMEOUT_STRLEN];
    char user_agent[64];
    int rc;

    if (call->authority == NULL || call->authority[0] == '\0') {
        return pk_err_set(err, PK_E_INVALID, "gRPC call needs an authority");
    }
    if (call->path == NULL || call->path[0] != '/') {
        return pk_err_set(err, PK_E_INVALID, "gRPC method path '%.128s' must start with /",
                          call->path ? call->path : "");
    }
    if (call->max_response == 0 || call->max_response > UINT32_MAX) {
        return pk_err_set(err, PK_E_INVALID, "gRPC call needs max_response in 1..2^32-1");
    }
    if (call->request.len > UINT32_MAX) {
        return pk_err_set(err, PK_E_TOOBIG, "gRPC request of %zu bytes is too large",
                          call->request.len);
    }
    nv[n++] = make_nv(":method", "POST");
    nv[n++] = make_nv(":scheme", "https");
    nv[n++] = make_nv(":path", call->path);
    nv[n++] = make_nv(":authority", call->authority);
    nv[n++] = make_nv("te", "trailers");
    nv[n++] = make_nv("content-type", "application/grpc");
    snprintf(user_agent, sizeof(user_agent), "picket/%s", PK_VERSION);
    nv[n++] = make_nv("user-agent", call->user_agent ? call->user_agent : user_agent);
    if (call->timeout_ns > 0) {
        pk_grpc_timeout_format(call->timeout_ns, timeout);
        nv[n++] = make_nv("grpc-timeout", timeout);
    }
    for (size_t i = 0; call->metadata != NULL && call->metadata[i] != NULL; i += 2) {
        const char *name = call->metadata[i];
        const char *value = call->metadata[i + 1];
        if (value == NULL) {
            return pk_err_set(err, PK_E_INVALID, "gRPC metadata '%.64s' has no value", name);
        }
        if (!metadata_name_ok(name)) {
            return pk_err_set(err, PK_E_INVALID, "gRPC metadata name '%.64s' is not allowed", name);
        }
        if (!metadata_value_ok(value)) {
            return pk_err_set(err, PK_E_INVALID,
                              "gRPC metadata '%.64s' has a value that is not printable ASCII",
                              name);
        }
        if (n >= PK_ARRAY_LEN(nv)) {
            return pk_err_set(err, PK_E_TOOBIG, "more than %d gRPC metadata entries",
                              H2_MAX_METADATA);
        }
        nv[n++] = make_nv(name, value);
    }

    c = pk_xcalloc(1, sizeof(*c));
    c->max_header_list = call->max_header_list ? call->max_header_list : H2_DEFAULT_HEADER_LIST;
    c->request_copy = pk_xmemdup(call->request.ptr, call->request.len);
    pk_buf_init(&c->response, call->max_response);
    pk_buf_init(&c->grpc_message, H2_GRPC_MESSAGE_MAX);
    pk_grpc_deframer_init(&c->deframer, call->max_response);
    /* The request is framed once, here; DATA frames are cut from it. */
    {
        struct pk_buf framed;
        pk_buf_init(&framed, call->request.len + PK_GRPC_FRAME_HEADER_LEN);
        rc = pk_grpc_frame_encode(&framed, pk_slice_make(c->request_copy, call->request.len));
        PK_ASSERT(rc == 0);
        free(c->request_copy);
        pk_buf_steal(&framed, &c->request_copy, &c->request.len);
        c->request.ptr = c->request_copy;
    }
    if (nghttp2_session_callbacks_new(&cbs) != 0 || h2_options(&opt, false) != 0) {
        rc = pk_err_set(err, PK_E_PROTO, "cannot set up an HTTP/2 session");
        goto out;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, client_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, client_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, client_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, client_on_stream_close);
    nghttp2_session_callbacks_set_error_callback2(cbs, client_on_error);
    if (nghttp2_session_client_new2(&c->ses, cbs, c, opt) != 0) {
        rc = pk_err_set(err, PK_E_PROTO, "cannot create an HTTP/2 client session");
        goto out;
    }
    nghttp2_settings_entry iv[] = {
            {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
            {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 0},
            {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_CLIENT_WINDOW},
            {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
             (uint32_t)PK_MIN(c->max_header_list, UINT32_MAX)},
    };
    if (nghttp2_submit_settings(c->ses, NGHTTP2_FLAG_NONE, iv, PK_ARRAY_LEN(iv)) != 0) {
        rc = pk_err_set(err, PK_E_PROTO, "cannot queue HTTP/2 SETTINGS");
        goto out;
    }
    nghttp2_data_provider prd = {.source.ptr = c, .read_callback = client_read_request};
    c->id = nghttp2_submit_request(c->ses, NULL, nv, n, &prd, NULL);
    if (c->id < 0) {
        rc = pk_err_set(err, PK_E_INVALID, "cannot queue the gRPC request: %s",
                        nghttp2_strerror(c->id));
        goto out;
    }
    *out = c;
    c = NULL;
    rc = 0;
out:
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    pk_h2_client_free(c);
    return rc;
}

struct pk_h2_client *pk_h2_client_free(struct pk_h2_client *c)
{
    if (c == NULL) {
        return NULL;
    }
    if (c->ses != NULL) {
        nghttp2_session_del(c->ses);
    }
    free(c->request_copy);
    pk_buf_free(&c->response);
    pk_buf_free(&c->grpc_message);
    pk_grpc_deframer_free(&c->deframer);
    free(c);
    return NULL;
}

int pk_h2_client_recv(struct pk_h2_client *c, const uint8_t *p, size_t len)
{
    ssize_t n;

    if (c->done) {
        return 0;
    }
    n = nghttp2_session_mem_recv(c->ses, p, len);
    if (n < 0) {
        client_finish(c, PK_GRPC_INTERNAL, "HTTP/2 error from server: %s",
                      nghttp2_strerror((int)n));
        return PK_E_PROTO;
    }
    if (c->proto_error) {
        return PK_E_PROTO;
    }
    if (!c->done && !nghttp2_session_want_read(c->ses)) {
        /* nghttp2 ended the session (GOAWAY sent or received) while our stream was open. */
        client_finish(c, PK_GRPC_UNAVAILABLE, "HTTP/2 connection ended before the response");
        return PK_E_PROTO;
    }
    return 0;
}

int pk_h2_client_send(struct pk_h2_client *c, struct pk_buf *out)
{
    if (h2_drain(c->ses, &c->pend, &c->pend_len, out) != 0) {
        client_finish(c, PK_GRPC_INTERNAL, "HTTP/2 session failed to send");
        return PK_E_PROTO;
    }
    return 0;
}

bool pk_h2_client_want_write(const struct pk_h2_client *c)
{
    return c->pend_len > 0 || nghttp2_session_want_write(c->ses) != 0;
}

bool pk_h2_client_done(const struct pk_h2_client *c)
{
    return c->done;
}

const struct pk_h2_result *pk_h2_client_result(const struct pk_h2_client *c)
{
    return &c->result;
}
