/* SPDX-License-Identifier: Apache-2.0 */
/* picket: a strict, sans-I/O HTTP/1.1 response parser for answers of the Kubernetes API server.
 *
 * The client sends one request per connection with "Connection: close", so a response is a
 * status line, header fields and a body delimited by Content-Length, by chunked transfer coding
 * (RFC 9112 §7.1) or by the end of the connection. The parser is stateless: the caller keeps
 * every byte received so far and calls pk_kube_http_parse after each read, saying whether the
 * peer has closed. Bounds: the head must end within PK_KUBE_HTTP_MAX_HEAD bytes and the body
 * (decoded) may not exceed the caller's max_body; a lying Content-Length, a malformed chunk size,
 * a bare LF, a control character in a field, or a second Content-Length are errors. */
#ifndef PK_KUBE_HTTP_H
#define PK_KUBE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "common/err.h"

#define PK_KUBE_HTTP_MAX_HEAD 16384

struct pk_kube_http_response {
    int status;                 /* 100..599 */
    struct pk_slice media_type; /* Content-Type up to ';', borrowed from the input; may be empty */
};

/* Parse the response in p[0..len) (borrowed); eof says the peer closed after these bytes. On 0
 * (complete) *out is filled and body holds the decoded body (body is reset first; its own cap
 * must allow max_body). Returns PK_E_AGAIN when more bytes are needed (never with eof),
 * PK_E_TOOBIG when the head or the body exceeds its bound, PK_E_PROTO for a malformed or
 * truncated response; err says what and where. 1xx responses are refused (the client never asks
 * for one). */
int pk_kube_http_parse(const uint8_t *p, size_t len, bool eof, size_t max_body,
                       struct pk_kube_http_response *out, struct pk_buf *body, struct pk_err *err)
        PK_MUST_USE;

#endif
