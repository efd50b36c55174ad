/* SPDX-License-Identifier: Apache-2.0 */
/* picket: a strict, sans-I/O HTTP/1.1 request parser (GET and HEAD) and response writer.
 *
 * Made for the health, readiness and metrics endpoints: a request is a request line and header
 * fields (RFC 9112 §2-§5) and never has a body. The parser is stateless: the caller keeps the
 * bytes received so far in one buffer and calls pk_http1_parse_request on all of them after each
 * read. It answers "need more", "complete" or "error, answer with this status":
 *
 *   400  malformed request line or header, bare LF, obsolete line folding, control characters,
 *        missing or repeated Host in HTTP/1.1, a body (Content-Length other than 0, or
 *        Transfer-Encoding), a target that is not origin-form ("/path?query")
 *   405  a well-formed method other than GET or HEAD (the response carries Allow: GET, HEAD)
 *   414  the request line does not end within PK_HTTP1_MAX_REQUEST bytes
 *   431  the header section does not end within PK_HTTP1_MAX_REQUEST bytes, or has more than
 *        PK_HTTP1_MAX_HEADERS fields
 *   505  an HTTP version other than 1.0 and 1.1
 *
 * Errors are reported as early as the bytes allow (a request starting "POST " is refused without
 * waiting for the rest). Bytes after the end of the header section are not examined: the server
 * answers one request per connection. */
#ifndef PK_HTTP1_H
#define PK_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "compiler.h"
#include "err.h"

#define PK_HTTP1_MAX_REQUEST 8192
#define PK_HTTP1_MAX_HEADERS 64

enum pk_http1_method {
    PK_HTTP1_GET = 1,
    PK_HTTP1_HEAD,
};

struct pk_http1_header {
    struct pk_slice name;  /* as received; compare case-insensitively */
    struct pk_slice value; /* without surrounding spaces or tabs */
};

/* A parsed request. Every slice borrows from the bytes passed to the parser, so the request is
 * valid only while those bytes are. */
struct pk_http1_request {
    enum pk_http1_method method;
    int minor_version;      /* 0 or 1 */
    struct pk_slice target; /* the whole request-target, e.g. "/metrics?x=1" */
    struct pk_slice path;   /* target up to '?' */
    struct pk_slice query;  /* after '?', without it; empty when absent */
    size_t header_count;
    struct pk_http1_header headers[PK_HTTP1_MAX_HEADERS];
    size_t head_len; /* bytes of the request line and headers, final CRLF included */
};

/* Parse the request at the start of p[0..len) (borrowed). Returns:
 *   0            complete: *req is filled (its slices point into p)
 *   PK_E_AGAIN   the bytes so far are a valid prefix; call again when more have arrived
 *   PK_E_PROTO   malformed: *status is the code to answer (400, 405, 414, 431 or 505) and err
 *                (may be NULL) says what is wrong
 * req and status are written only in the cases above. Never blocks, never reads past len. */
int pk_http1_parse_request(const uint8_t *p, size_t len, struct pk_http1_request *req, int *status,
                           struct pk_err *err) PK_MUST_USE;

/* The value of the first header called name (case-insensitive), or NULL. Borrows from req. */
const struct pk_slice *pk_http1_header_get(const struct pk_http1_request *req, const char *name);

/* The reason phrase of a status code ("OK", "Not Found"); "Unknown" for codes not listed. */
const char *pk_http1_reason(int status);

struct pk_http1_response {
    int status;               /* 100..599 */
    const char *content_type; /* borrowed; NULL means "text/plain; charset=utf-8" */
    struct pk_slice body;     /* borrowed */
    bool head_only;           /* answer to HEAD: Content-Length of the body, but no body bytes */
};

/* Append the status line, Content-Type, Content-Length, Connection: close (and Allow for 405),
 * the blank line and the body to out. Returns 0, PK_E_INVALID (status out of range, a CR, LF or
 * other control character in content_type) or PK_E_TOOBIG (out's cap); out is unchanged on
 * failure. */
int pk_http1_write_response(const struct pk_http1_response *resp, struct pk_buf *out) PK_MUST_USE;

/* A complete response as a client of our own admin endpoint reads it: the server sends one
 * response and closes, so the whole of it is in the bytes received up to EOF. */
struct pk_http1_response_view {
    int status;           /* 100..599 */
    struct pk_slice body; /* borrowed from the bytes parsed */
};

/* Parse a complete response p[0..len) (borrowed): "HTTP/1.x NNN reason", header lines ending in
 * CRLF, a blank line and the body. With a Content-Length header the body must be exactly that
 * long; without one it is everything after the head. Returns 0, or PK_E_PROTO with err (may be
 * NULL) saying what is wrong (a truncated head, a bad status line, a body shorter or longer than
 * announced, a header line without a colon). Never reads past len. */
int pk_http1_parse_response(const uint8_t *p, size_t len, struct pk_http1_response_view *out,
                            struct pk_err *err) PK_MUST_USE;

#endif
