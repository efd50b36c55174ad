/* SPDX-License-Identifier: Apache-2.0 */
/* picket: a strict, sans-I/O HTTP/1.1 request parser (GET and HEAD) and response writer.
 *
 * Implementation notes: the parser re-scans the buffer from the start on every call, which for an
 * 8 KiB cap costs less than keeping state. "pos" is the next unread byte; before every read the
 * scanner checks pos < len and, when it runs out, either asks for more or, once
 * PK_HTTP1_MAX_REQUEST bytes have arrived without the construct ending, reports 414 (still in the
 * request line) or 431 (in the header section). */
#include "http1.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int reject(int *status, int code, struct pk_err *err, const char *fmt, ...) PK_PRINTF(4, 5);

static int reject(int *status, int code, struct pk_err *err, const char *fmt, ...)
{
    va_list ap;

    *status = code;
    if (err != NULL) {
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return PK_E_PROTO;
}

/* Out of bytes inside the request line or header section. */
static int need_more(size_t len, bool in_request_line, int *status, struct pk_err *err)
{
    if (len < PK_HTTP1_MAX_REQUEST) {
        return PK_E_AGAIN;
    }
    if (in_request_line) {
        return reject(status, 414, err, "request line longer than %u bytes",
                      (unsigned)PK_HTTP1_MAX_REQUEST);
    }
    return reject(status, 431, err, "request header section longer than %u bytes",
                  (unsigned)PK_HTTP1_MAX_REQUEST);
}

/* tchar of RFC 9110 §5.6.2. */
static bool is_tchar(uint8_t c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        return true;
    }
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar, SP or HTAB (RFC 9110 §5.5); obs-text is allowed, control characters are not. */
static bool is_field_char(uint8_t c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool slice_eq(struct pk_slice s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

static bool slice_eq_nocase(struct pk_slice s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && strncasecmp((const char *)s.ptr, lit, n) == 0;
}

/* Request line: method SP request-target SP HTTP-version CRLF (RFC 9112 §3). */
static int parse_request_line(const uint8_t *p, size_t len, size_t *pos_out,
                              struct pk_http1_request *req, int *status, struct pk_err *err)
{
    static const char version_tmpl[] = "HTTP/d.d\r\n";
    size_t pos = 0;
    size_t start;
    struct pk_slice method;

    while (pos < len && is_tchar(p[pos])) {
        pos++;
    }
    if (pos == len) {
        return need_more(len, true, status, err);
    }
    if (pos == 0 || p[pos] != ' ') {
        return reject(status, 400, err, "malformed request line: bad method");
    }
    method = pk_slice_make(p, pos);
    if (slice_eq(method, "GET")) {
        req->method = PK_HTTP1_GET;
    } else if (slice_eq(method, "HEAD")) {
        req->method = PK_HTTP1_HEAD;
    } else {
        return reject(status, 405, err, "method \"%.*s\" not allowed (only GET and HEAD)",
                      (int)PK_MIN(method.len, (size_t)32), (const char *)method.ptr);
    }
    pos++;

    /* origin-form only: absolute-path [ "?" query ], visible ASCII. */
    start = pos;
    if (pos == len) {
        return need_more(len, true, status, err);
    }
    if (p[pos] != '/') {
        return reject(status, 400, err, "request target does not start with '/'");
    }
    while (pos < len && p[pos] > 0x20 && p[pos] < 0x7f) {
        pos++;
    }
    if (pos == len) {
        return need_more(len, true, status, err);
    }
    if (p[pos] != ' ') {
        return reject(status, 400, err, "request target has a byte 0x%02x it may not contain",
                      p[pos]);
    }
    req->target = pk_slice_make(p + start, pos - start);
    pos++;

    /* "HTTP/" DIGIT "." DIGIT CRLF, checked byte by byte as it arrives. */
    for (size_t k = 0; k < sizeof(version_tmpl) - 1; k++, pos++) {
        char want = version_tmpl[k];
        if (pos == len) {
            return need_more(len, true, status, err);
        }
        if (want == 'd' ? !(p[pos] >= '0' && p[pos] <= '9') : p[pos] != (uint8_t)want) {
            return reject(status, 400, err, "malformed HTTP version in request line");
        }
        if (k == 7) {
            int major = p[pos - 2] - '0';
            int minor = p[pos] - '0';
            if (major != 1 || minor > 1) {
                return reject(status, 505, err, "HTTP version %d.%d not supported", major, minor);
            }
            req->minor_version = minor;
        }
    }
    *pos_out = pos;
    return 0;
}

/* Header fields up to and including the empty line (RFC 9112 §5). */
static int parse_headers(const uint8_t *p, size_t len, size_t pos, struct pk_http1_request *req,
                         int *status, struct pk_err *err)
{
    req->header_count = 0;
    for (;;) {
        size_t name_start;
        size_t value_start;
        size_t value_end;
        struct pk_http1_header *h;

        if (pos == len) {
            return need_more(len, false, status, err);
        }
        if (p[pos] == '\r') {
            if (pos + 1 == len) {
                return need_more(len, false, status, err);
            }
            if (p[pos + 1] != '\n') {
                return reject(status, 400, err, "CR without LF after the header section");
            }
            pos += 2;
            if (pos > PK_HTTP1_MAX_REQUEST) {
                return reject(status, 431, err, "request header section longer than %u bytes",
                              (unsigned)PK_HTTP1_MAX_REQUEST);
            }
            req->head_len = pos;
            return 0;
        }
        if (p[pos] == ' ' || p[pos] == '\t') {
            return reject(status, 400, err,
                          "header line starts with whitespace (obsolete folding)");
        }
        name_start = pos;
        while (pos < len && is_tchar(p[pos])) {
            pos++;
        }
        if (pos == len) {
            return need_more(len, false, status, err);
        }
        if (p[pos] != ':' || pos == name_start) {
            return reject(status, 400, err, "header line %zu has no \"name:\" part",
                          req->header_count + 1);
        }
        if (req->header_count == PK_HTTP1_MAX_HEADERS) {
            return reject(status, 431, err, "more than %u header fields",
                          (unsigned)PK_HTTP1_MAX_HEADERS);
        }
        h = &req->headers[req->header_count];
        h->name = pk_slice_make(p + name_start, pos - name_start);
        pos++;
        while (pos < len && (p[pos] == ' ' || p[pos] == '\t')) {
            pos++;
        }
        value_start = pos;
        while (pos < len && p[pos] != '\r' && is_field_char(p[pos])) {
            pos++;
        }
        if (pos == len) {
            return need_more(len, false, status, err);
        }
        if (p[pos] != '\r') {
            return reject(status, 400, err, "header \"%.*s\" has a byte 0x%02x it may not contain",
                          (int)PK_MIN(h->name.len, (size_t)64), (const char *)h->name.ptr, p[pos]);
        }
        value_end = pos;
        while (value_end > value_start && (p[value_end - 1] == ' ' || p[value_end - 1] == '\t')) {
            value_end--;
        }
        h->value = pk_slice_make(p + value_start, value_end - value_start);
        if (pos + 1 == len) {
            return need_more(len, false, status, err);
        }
        if (p[pos + 1] != '\n') {
            return reject(status, 400, err, "CR without LF in header \"%.*s\"",
                          (int)PK_MIN(h->name.len, (size_t)64), (const char *)h->name.ptr);
        }
        pos += 2;
        req->header_count++;
    }
}

/* Rules that need the whole header section: Host (RFC 9112 §3.2) and no body. */
static int check_headers(const struct pk_http1_request *req, int *status, struct pk_err *err)
{
    size_t hosts = 0;
    size_t lengths = 0;

    for (size_t i = 0; i < req->header_count; i++) {
        const struct pk_http1_header *h = &req->headers[i];
        if (slice_eq_nocase(h->name, "host")) {
            hosts++;
        } else if (slice_eq_nocase(h->name, "transfer-encoding")) {
            return reject(status, 400, err,
                          "a GET or HEAD request may not carry a body "
                          "(Transfer-Encoding)");
        } else if (slice_eq_nocase(h->name, "content-length")) {
            lengths++;
            if (!slice_eq(h->value, "0") || lengths > 1) {
                return reject(status, 400, err,
                              "a GET or HEAD request may not carry a body "
                              "(Content-Length)");
            }
        }
    }
    if (hosts > 1) {
        return reject(status, 400, err, "more than one Host header");
    }
    if (hosts == 0 && req->minor_version == 1) {
        return reject(status, 400, err, "HTTP/1.1 request without a Host header");
    }
    return 0;
}

int pk_http1_parse_request(const uint8_t *p, size_t len, struct pk_http1_request *req, int *status,
                           struct pk_err *err)
{
    struct pk_http1_request r;
    int st = 0;
    size_t pos = 0;
    int rc;
    const uint8_t *q;

    r.header_count = 0;
    rc = parse_request_line(p, len, &pos, &r, &st, err);
    if (rc == 0) {
        rc = parse_headers(p, len, pos, &r, &st, err);
    }
    if (rc == 0) {
        rc = check_headers(&r, &st, err);
    }
    if (rc == PK_E_PROTO) {
        *status = st;
        return rc;
    }
    if (rc != 0) {
        return rc;
    }
    q = memchr(r.target.ptr, '?', r.target.len);
    if (q != NULL) {
        r.path = pk_slice_make(r.target.ptr, (size_t)(q - r.target.ptr));
        r.query = pk_slice_make(q + 1, r.target.len - r.path.len - 1);
    } else {
        r.path = r.target;
        r.query = pk_slice_make(r.target.ptr + r.target.len, 0);
    }
    memcpy(req, &r, sizeof(r));
    return 0;
}

const struct pk_slice *pk_http1_header_get(const struct pk_http1_request *req, const char *name)
{
    for (size_t i = 0; i < req->header_count; i++) {
        if (slice_eq_nocase(req->headers[i].name, name)) {
            return &req->headers[i].value;
        }
    }
    return NULL;
}

const char *pk_http1_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

#define RESPONSE_HEAD                                                                              \
    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sCache-Control: no-store\r\n"   \
    "Connection: close\r\n\r\n"

int pk_http1_write_response(const struct pk_http1_response *resp, struct pk_buf *out)
{
    const char *ctype = resp->content_type ? resp->content_type : "text/plain; charset=utf-8";
    const char *allow = resp->status == 405 ? "Allow: GET, HEAD\r\n" : "";
    size_t body_len = resp->head_only ? 0 : resp->body.len;
    int head_len;
    int rc;

    if (resp->status < 100 || resp->status > 599) {
        return PK_E_INVALID;
    }
    for (const char *c = ctype; *c != '\0'; c++) {
        if (!is_field_char((uint8_t)*c)) {
            return PK_E_INVALID;
        }
    }
    /* Check the whole size first so that out is unchanged on failure. */
    head_len = snprintf(NULL, 0, RESPONSE_HEAD, resp->status, pk_http1_reason(resp->status), ctype,
                        resp->body.len, allow);
    if (head_len < 0) {
        return PK_E_INVALID;
    }
    if ((size_t)head_len > pk_buf_space(out) || body_len > pk_buf_space(out) - (size_t)head_len) {
        return PK_E_TOOBIG;
    }
    rc = pk_buf_printf(out, RESPONSE_HEAD, resp->status, pk_http1_reason(resp->status), ctype,
                       resp->body.len, allow);
    if (rc == 0 && body_len > 0) {
        rc = pk_buf_append(out, resp->body.ptr, body_len);
    }
    PK_ASSERT(rc == 0); /* the space was checked above */
    return 0;
}

/* The first CRLF at or after pos, or len. */
static size_t find_crlf(const uint8_t *p, size_t len, size_t pos)
{
    for (size_t i = pos; i + 1 < len; i++) {
        if (p[i] == '\r' && p[i + 1] == '\n') {
            return i;
        }
    }
    return len;
}

int pk_http1_parse_response(const uint8_t *p, size_t len, struct pk_http1_response_view *out,
                            struct pk_err *err)
{
    static const char prefix[] = "HTTP/1.";
    size_t eol = find_crlf(p, len, 0), pos, content_length = 0;
    bool have_length = false;
    int status;

    /* "HTTP/1.x NNN" then a space and a reason, or nothing. */
    if (eol == len) {
        return pk_err_set(err, PK_E_PROTO, "response ends before its status line does");
    }
    if (eol < 12 || memcmp(p, prefix, 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ' ||
        p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' ||
        (eol > 12 && p[12] != ' ')) {
        return pk_err_set(err, PK_E_PROTO, "not an HTTP/1.x status line");
    }
    status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    pos = eol + 2;
    for (;;) {
        size_t end = find_crlf(p, len, pos), colon;
        if (end == len) {
            return pk_err_set(err, PK_E_PROTO, "response ends inside its header section");
        }
        if (end == pos) {
            pos += 2;
            break;
        }
        for (colon = pos; colon < end && p[colon] != ':'; colon++) {
        }
        if (colon == end || colon == pos) {
            return pk_err_set(err, PK_E_PROTO, "a header line without a field name and colon");
        }
        if (slice_eq_nocase((struct pk_slice){p + pos, colon - pos}, "content-length")) {
            size_t v = 0, i = colon + 1, digits = 0;
            while (i < end && (p[i] == ' ' || p[i] == '\t')) {
                i++;
            }
            for (; i < end && p[i] >= '0' && p[i] <= '9'; i++, digits++) {
                if (v > (SIZE_MAX - 9) / 10) {
                    return pk_err_set(err, PK_E_PROTO, "Content-Length too large");
                }
                v = v * 10 + (size_t)(p[i] - '0');
            }
            while (i < end && (p[i] == ' ' || p[i] == '\t')) {
                i++;
            }
            if (digits == 0 || i != end || (have_length && v != content_length)) {
                return pk_err_set(err, PK_E_PROTO, "bad Content-Length");
            }
            content_length = v;
            have_length = true;
        }
        pos = end + 2;
    }
    if (have_length && len - pos != content_length) {
        return pk_err_set(err, PK_E_PROTO, "body of %zu bytes where Content-Length says %zu",
                          len - pos, content_length);
    }
    out->status = status;
    out->body = (struct pk_slice){p + pos, len - pos};
    return 0;
}
