/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for common/http1 (request parser and response writer). */
/* cmocka.h must come after the system headers it relies on. */
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

#include "common/buf.h"
#include "common/err.h"
#include "common/http1.h"

static int parse_str(const char *s, struct pk_http1_request *req, int *status, struct pk_err *err)
{
    return pk_http1_parse_request((const uint8_t *)s, strlen(s), req, status, err);
}

static bool slice_is(struct pk_slice s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

/* The parse result of s must be an error with this status. */
static void expect_status(const char *s, int want)
{
    struct pk_http1_request req;
    struct pk_err err = {{0}};
    int status = 0;
    int rc = parse_str(s, &req, &status, &err);
    if (rc != PK_E_PROTO || status != want) {
        print_error("request %.60s: rc=%d status=%d want %d (%s)\n", s, rc, status, want, err.msg);
    }
    assert_int_equal(rc, PK_E_PROTO);
    assert_int_equal(status, want);
    assert_true(err.msg[0] != '\0');
}

static void good_get(void **state)
{
    static const char req_text[] = "GET /metrics?name=x&y HTTP/1.1\r\n"
                                   "Host: localhost:9090\r\n"
                                   "User-Agent:curl/8.0\r\n"
                                   "Accept: */*  \t\r\n"
                                   "X-Empty:\r\n"
                                   "\r\n"
                                   "trailing bytes are not looked at";
    struct pk_http1_request req;
    int status = 0;
    const struct pk_slice *h;

    assert_int_equal(parse_str(req_text, &req, &status, NULL), 0);
    assert_int_equal(req.method, PK_HTTP1_GET);
    assert_int_equal(req.minor_version, 1);
    assert_true(slice_is(req.target, "/metrics?name=x&y"));
    assert_true(slice_is(req.path, "/metrics"));
    assert_true(slice_is(req.query, "name=x&y"));
    assert_int_equal(req.header_count, 4);
    assert_int_equal(req.head_len, strlen(req_text) - strlen("trailing bytes are not looked at"));
    h = pk_http1_header_get(&req, "HOST");
    assert_non_null(h);
    assert_true(slice_is(*h, "localhost:9090"));
    h = pk_http1_header_get(&req, "user-agent");
    assert_non_null(h);
    assert_true(slice_is(*h, "curl/8.0"));
    h = pk_http1_header_get(&req, "accept");
    assert_true(slice_is(*h, "*/*"));
    h = pk_http1_header_get(&req, "x-empty");
    assert_non_null(h);
    assert_int_equal(h->len, 0);
    assert_null(pk_http1_header_get(&req, "cookie"));
}

static void good_head_and_http10(void **state)
{
    struct pk_http1_request req;
    int status = 0;

    assert_int_equal(parse_str("HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n", &req, &status, NULL),
                     0);
    assert_int_equal(req.method, PK_HTTP1_HEAD);
    assert_true(slice_is(req.path, "/healthz"));
    assert_int_equal(req.query.len, 0);
    /* HTTP/1.0 needs no Host. */
    assert_int_equal(parse_str("GET / HTTP/1.0\r\n\r\n", &req, &status, NULL), 0);
    assert_int_equal(req.minor_version, 0);
    assert_int_equal(req.header_count, 0);
    /* Content-Length: 0 is no body. */
    assert_int_equal(parse_str("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &req,
                               &status, NULL),
                     0);
}

static void split_byte_by_byte(void **state)
{
    static const char text[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n";
    size_t n = strlen(text);
    struct pk_http1_request req;
    int status = 0;
    /* Each prefix lives in its own exact-size heap copy, so ASan sees any over-read. */
    for (size_t i = 0; i < n; i++) {
        uint8_t *copy = malloc(i ? i : 1);
        memcpy(copy, text, i);
        assert_int_equal(pk_http1_parse_request(copy, i, &req, &status, NULL), PK_E_AGAIN);
        free(copy);
    }
    uint8_t *copy = malloc(n);
    memcpy(copy, text, n);
    assert_int_equal(pk_http1_parse_request(copy, n, &req, &status, NULL), 0);
    assert_int_equal(req.head_len, n);
    assert_int_equal(req.header_count, 2);
    free(copy);
}

static void errors_found_early(void **state)
{
    struct pk_http1_request req;
    int status = 0;

    /* The method is known to be wrong as soon as its space arrives. */
    assert_int_equal(parse_str("POST ", &req, &status, NULL), PK_E_PROTO);
    assert_int_equal(status, 405);
    assert_int_equal(parse_str("POS", &req, &status, NULL), PK_E_AGAIN);
    /* A bad target byte is refused before the line ends. */
    assert_int_equal(parse_str("GET /a\x01", &req, &status, NULL), PK_E_PROTO);
    assert_int_equal(status, 400);
    /* The version is checked byte by byte. */
    assert_int_equal(parse_str("GET / HTTX", &req, &status, NULL), PK_E_PROTO);
    assert_int_equal(status, 400);
    assert_int_equal(parse_str("GET / HTTP/1.", &req, &status, NULL), PK_E_AGAIN);
}

static void bad_requests(void **state)
{
    expect_status("POST /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 405);
    expect_status("DELETE / HTTP/1.1\r\nHost: a\r\n\r\n", 405);
    expect_status("get / HTTP/1.1\r\nHost: a\r\n\r\n", 405); /* methods are case-sensitive */
    expect_status("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
    expect_status("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505);
    expect_status("GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505);
    expect_status("GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400);
    expect_status("GET / http/1.1\r\nHost: a\r\n\r\n", 400);
    expect_status("GET /\r\n\r\n", 400);                         /* HTTP/0.9 form */
    expect_status("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400);    /* double space */
    expect_status(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);    /* leading space */
    expect_status("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400); /* leading empty line */
    expect_status("GET http://x/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    expect_status("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    expect_status("GET / HTTP/1.1\nHost: a\r\n\r\n", 400); /* bare LF */
    expect_status("GET / HTTP/1.1\r\nHost: a\n\r\n", 400); /* bare LF in a header */
    expect_status("GET / HTTP/1.1\r\nHost: a\r\n\n", 400); /* bare LF at the end */
    expect_status("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400);
    expect_status("GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", 400);
    expect_status("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400); /* space before colon */
    expect_status("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400);
    expect_status("GET / HTTP/1.1\r\nHost: a\x01z\r\n\r\n", 400); /* control character */
    expect_status("GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n", 400);
    expect_status("GET / HTTP/1.1\r\nHost: a\rX\r\n\r\n", 400); /* CR without LF */
    expect_status("GET / HTTP/1.1\r\n\r\n", 400);               /* no Host */
    expect_status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    expect_status("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", 400);
    expect_status("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
                  400);
    expect_status("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
}

static void embedded_nul_is_refused(void **state)
{
    static const uint8_t text[] = "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n";
    struct pk_http1_request req;
    int status = 0;

    assert_int_equal(pk_http1_parse_request(text, sizeof(text) - 1, &req, &status, NULL),
                     PK_E_PROTO);
    assert_int_equal(status, 400);
}

static void too_long(void **state)
{
    char *big = malloc(PK_HTTP1_MAX_REQUEST + 100);
    struct pk_http1_request req;
    int status = 0;
    size_t n;

    /* A target that never ends: need more until the cap, then 414. */
    memcpy(big, "GET /", 5);
    memset(big + 5, 'a', PK_HTTP1_MAX_REQUEST + 95);
    assert_int_equal(
            pk_http1_parse_request((uint8_t *)big, PK_HTTP1_MAX_REQUEST - 1, &req, &status, NULL),
            PK_E_AGAIN);
    assert_int_equal(
            pk_http1_parse_request((uint8_t *)big, PK_HTTP1_MAX_REQUEST, &req, &status, NULL),
            PK_E_PROTO);
    assert_int_equal(status, 414);

    /* A short request line followed by a header section that never ends: 431. */
    n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ");
    memset(big + n, 'b', PK_HTTP1_MAX_REQUEST + 100 - n);
    assert_int_equal(
            pk_http1_parse_request((uint8_t *)big, PK_HTTP1_MAX_REQUEST, &req, &status, NULL),
            PK_E_PROTO);
    assert_int_equal(status, 431);

    /* Exactly at the cap is fine; one byte over is 431. */
    n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ");
    memset(big + n, 'c', PK_HTTP1_MAX_REQUEST - n - 4);
    memcpy(big + PK_HTTP1_MAX_REQUEST - 4, "\r\n\r\n", 4);
    assert_int_equal(
            pk_http1_parse_request((uint8_t *)big, PK_HTTP1_MAX_REQUEST, &req, &status, NULL), 0);
    assert_int_equal(req.head_len, PK_HTTP1_MAX_REQUEST);
    n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ");
    memset(big + n, 'c', PK_HTTP1_MAX_REQUEST - n - 3);
    memcpy(big + PK_HTTP1_MAX_REQUEST - 3, "\r\n\r\n", 4);
    assert_int_equal(
            pk_http1_parse_request((uint8_t *)big, PK_HTTP1_MAX_REQUEST + 1, &req, &status, NULL),
            PK_E_PROTO);
    assert_int_equal(status, 431);
    free(big);
}

static void too_many_headers(void **state)
{
    char text[4096];
    size_t n = (size_t)sprintf(text, "GET / HTTP/1.1\r\n");
    struct pk_http1_request req;
    int status = 0;

    /* Host plus 63 others is the most allowed. */
    n += (size_t)sprintf(text + n, "Host: a\r\n");
    for (int i = 1; i < PK_HTTP1_MAX_HEADERS; i++) {
        n += (size_t)sprintf(text + n, "H%d: v\r\n", i);
    }
    memcpy(text + n, "\r\n", 3);
    assert_int_equal(parse_str(text, &req, &status, NULL), 0);
    assert_int_equal(req.header_count, PK_HTTP1_MAX_HEADERS);
    sprintf(text + n, "H64: v\r\n\r\n");
    assert_int_equal(parse_str(text, &req, &status, NULL), PK_E_PROTO);
    assert_int_equal(status, 431);
}

static void response_writer(void **state)
{
    struct pk_buf out;
    struct pk_http1_response resp = {200, "text/plain; version=0.0.4", pk_slice_make("up 1\n", 5),
                                     false};
    static const char want[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/plain; version=0.0.4\r\n"
                               "Content-Length: 5\r\n"
                               "Cache-Control: no-store\r\n"
                               "Connection: close\r\n"
                               "\r\n"
                               "up 1\n";

    pk_buf_init(&out, 4096);
    assert_int_equal(pk_http1_write_response(&resp, &out), 0);
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.data, want, out.len);

    /* HEAD: the length of the body, not the body. */
    pk_buf_reset(&out);
    resp.head_only = true;
    assert_int_equal(pk_http1_write_response(&resp, &out), 0);
    assert_non_null(strstr((char *)out.data, "Content-Length: 5\r\n"));
    assert_int_equal(out.len, strlen(want) - 5);

    /* 405 names the allowed methods; NULL content type is text/plain. */
    pk_buf_reset(&out);
    resp = (struct pk_http1_response){405, NULL, pk_slice_make("no\n", 3), false};
    assert_int_equal(pk_http1_write_response(&resp, &out), 0);
    assert_non_null(strstr((char *)out.data, "HTTP/1.1 405 Method Not Allowed\r\n"));
    assert_non_null(strstr((char *)out.data, "Allow: GET, HEAD\r\n"));
    assert_non_null(strstr((char *)out.data, "Content-Type: text/plain; charset=utf-8\r\n"));
    pk_buf_free(&out);
}

static void response_writer_refuses(void **state)
{
    struct pk_buf out;
    struct pk_http1_response resp = {200, "text/plain\r\nSet-Cookie: x=1", pk_slice_make("x", 1),
                                     false};

    pk_buf_init(&out, 200);
    /* Header injection through the content type. */
    assert_int_equal(pk_http1_write_response(&resp, &out), PK_E_INVALID);
    assert_int_equal(out.len, 0);
    resp.content_type = NULL;
    resp.status = 99;
    assert_int_equal(pk_http1_write_response(&resp, &out), PK_E_INVALID);
    resp.status = 600;
    assert_int_equal(pk_http1_write_response(&resp, &out), PK_E_INVALID);
    /* A body that does not fit leaves the buffer as it was. */
    assert_int_equal(pk_buf_append(&out, "keep", 4), 0);
    resp.status = 200;
    resp.body = pk_slice_make(memset(malloc(150), 'z', 150), 150);
    assert_int_equal(pk_http1_write_response(&resp, &out), PK_E_TOOBIG);
    assert_int_equal(out.len, 4);
    assert_memory_equal(out.data, "keep", 4);
    free((void *)resp.body.ptr);
    pk_buf_free(&out);
    assert_string_equal(pk_http1_reason(404), "Not Found");
    assert_string_equal(pk_http1_reason(431), "Request Header Fields Too Large");
    assert_string_equal(pk_http1_reason(299), "Unknown");
}

static int parse_resp(const char *s, struct pk_http1_response_view *v)
{
    struct pk_err err;
    return pk_http1_parse_response((const uint8_t *)s, strlen(s), v, &err);
}

/* Responses as picket status reads them: the body exactly as long as announced. */
static void responses(void **state)
{
    (void)state;
    struct pk_http1_response_view v;
    static const char *const bad[] = {
            "",
            "HTTP/1.1 200 OK",
            "HTTP/2 200 OK\r\n\r\n",
            "HTTP/1.1 20 OK\r\n\r\n",
            "HTTP/1.1 600 x\r\n\r\n",
            "HTTP/1.1 200OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabc",
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            "HTTP/1.1 200 OK\r\n: empty name\r\n\r\n",
    };

    assert_int_equal(parse_resp("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                                "content-length:  4 \r\nConnection: close\r\n\r\nwhy\n",
                                &v),
                     0);
    assert_int_equal(v.status, 503);
    assert_true(slice_is(v.body, "why\n"));
    assert_int_equal(parse_resp("HTTP/1.0 200\r\n\r\nall of it", &v), 0);
    assert_int_equal(v.status, 200);
    assert_true(slice_is(v.body, "all of it"));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse_resp(bad[i], &v) != PK_E_PROTO) {
            fail_msg("accepted: %s", bad[i]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(good_get),           cmocka_unit_test(good_head_and_http10),
            cmocka_unit_test(split_byte_by_byte), cmocka_unit_test(errors_found_early),
            cmocka_unit_test(bad_requests),       cmocka_unit_test(embedded_nul_is_refused),
            cmocka_unit_test(too_long),           cmocka_unit_test(too_many_headers),
            cmocka_unit_test(response_writer),    cmocka_unit_test(response_writer_refuses),
            cmocka_unit_test(responses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
