/* SPDX-License-Identifier: Apache-2.0 */
/* picket: fuzz target for the HTTP/1.1 request parser and response writer.
 *
 * Targets: pk_http1_parse_request, pk_http1_header_get, pk_http1_write_response and
 * pk_http1_parse_response (the body of a parsed response lies within the input). Besides memory
 * safety it checks the parser's contract: a complete request lies within the input and the cap,
 * its slices point into the input, re-parsing exactly its head gives the same result, and no
 * prefix of the input is complete when the whole is an error (errors are found as early as the
 * bytes allow, never reversed by more bytes). */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/http1.h"
#include "fuzz.h"

static int within(struct pk_slice s, const uint8_t *data, size_t size)
{
    return s.len == 0 ||
           (s.ptr >= data && s.len <= size && s.ptr - data <= (ptrdiff_t)(size - s.len));
}

static int parse(const uint8_t *data, size_t size, struct pk_http1_request *req, int *status)
{
    struct pk_err err;
    int rc = pk_http1_parse_request(data, size, req, status, &err);

    if (rc != 0 && rc != PK_E_AGAIN && rc != PK_E_PROTO) {
        abort();
    }
    if (rc == PK_E_PROTO && *status != 400 && *status != 405 && *status != 414 && *status != 431 &&
        *status != 505) {
        abort();
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pk_http1_request req;
    struct pk_http1_request again;
    struct pk_buf out;
    int status = 0;
    int rc;

    struct pk_http1_response_view view;
    struct pk_err err;
    if (pk_http1_parse_response(data, size, &view, &err) == 0 &&
        (view.status < 100 || view.status > 599 || !within(view.body, data, size))) {
        abort();
    }
    rc = parse(data, size, &req, &status);
    if (rc == 0) {
        if (req.head_len > size || req.head_len > PK_HTTP1_MAX_REQUEST ||
            req.header_count > PK_HTTP1_MAX_HEADERS || !within(req.target, data, size) ||
            !within(req.path, data, size) || !within(req.query, data, size)) {
            abort();
        }
        for (size_t i = 0; i < req.header_count; i++) {
            if (!within(req.headers[i].name, data, req.head_len) ||
                !within(req.headers[i].value, data, req.head_len)) {
                abort();
            }
        }
        if (parse(data, req.head_len, &again, &status) != 0 || again.head_len != req.head_len ||
            again.header_count != req.header_count) {
            abort();
        }
        (void)pk_http1_header_get(&req, "host");
        /* Echo the path as a body, as a handler might. */
        struct pk_http1_response resp = {200, NULL, req.path, req.method == PK_HTTP1_HEAD};
        pk_buf_init(&out, 2 * PK_HTTP1_MAX_REQUEST);
        if (pk_http1_write_response(&resp, &out) != 0) {
            abort();
        }
        pk_buf_free(&out);
    } else if (rc == PK_E_PROTO && size > 0) {
        /* A shorter prefix may need more bytes or fail, but never be complete. */
        if (parse(data, size - 1, &again, &status) == 0) {
            abort();
        }
    }
    return 0;
}
