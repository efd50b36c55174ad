/* SPDX-License-Identifier: Apache-2.0 */
/* picket: a strict, sans-I/O HTTP/1.1 response parser. */
#include "kube/http.h"

#include <string.h>
#include <strings.h>

#define MAX_HEADERS 100

/* The index just past the next CRLF at or after from, or 0 when there is none yet. A bare LF or
 * CR is reported through *bad. */
static size_t line_end(const uint8_t *p, size_t len, size_t from, bool *bad)
{
    for (size_t i = from; i < len; i++) {
        if (p[i] == '\n') {
            if (i == from || p[i - 1] != '\r') {
                *bad = true;
                return 0;
            }
            return i + 1;
        }
        if (p[i] == '\r' && i + 1 < len && p[i + 1] != '\n') {
            *bad = true;
            return 0;
        }
    }
    return 0;
}

static bool slice_ieq(const uint8_t *p, size_t len, const char *s)
{
    return strlen(s) == len && strncasecmp((const char *)p, s, len) == 0;
}

static bool is_tchar(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* A decimal number of at most 15 digits (bodies here are far smaller). */
static int parse_decimal(const uint8_t *p, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 15) {
        return PK_E_PROTO;
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return PK_E_PROTO;
        }
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return 0;
}

/* Decode a chunked body starting at p[off..len). 0 complete, PK_E_AGAIN, or an error. */
static int parse_chunked(const uint8_t *p, size_t len, size_t off, size_t max_body,
                         struct pk_buf *body, struct pk_err *err)
{
    bool bad = false;

    for (;;) {
        size_t end = line_end(p, len, off, &bad);
        uint64_t size = 0;
        size_t digits = 0;

        if (bad) {
            return pk_err_set(err, PK_E_PROTO,
                              "HTTP response: chunk size line at byte %zu "
                              "does not end in CRLF",
                              off);
        }
        if (end == 0) {
            return len - off > 64
                           ? pk_err_set(err, PK_E_PROTO, "HTTP response: chunk size line too long")
                           : PK_E_AGAIN;
        }
        for (size_t i = off; i < end - 2; i++) {
            uint8_t c = p[i];
            int v;
            if (c >= '0' && c <= '9') {
                v = c - '0';
            } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
                v = (c | 0x20) - 'a' + 10;
            } else if (c == ';' && digits > 0) {
                break; /* chunk extensions are ignored (RFC 9112 §7.1.1) */
            } else {
                return pk_err_set(err, PK_E_PROTO,
                                  "HTTP response: malformed chunk size at byte %zu", off);
            }
            if (++digits > 8) {
                return pk_err_set(err, PK_E_TOOBIG, "HTTP response: chunk size too large");
            }
            size = size * 16 + (uint64_t)v;
        }
        if (digits == 0) {
            return pk_err_set(err, PK_E_PROTO, "HTTP response: empty chunk size at byte %zu", off);
        }
        off = end;
        if (size == 0) {
            /* Trailer fields, then the final CRLF. */
            for (;;) {
                end = line_end(p, len, off, &bad);
                if (bad) {
                    return pk_err_set(err, PK_E_PROTO, "HTTP response: malformed trailer");
                }
                if (end == 0) {
                    return len - off > PK_KUBE_HTTP_MAX_HEAD ? pk_err_set(err, PK_E_TOOBIG,
                                                                          "HTTP response: trailer "
                                                                          "section too large")
                                                             : PK_E_AGAIN;
                }
                if (end - off == 2) {
                    return 0;
                }
                off = end;
            }
        }
        if (size > max_body - body->len) {
            return pk_err_set(err, PK_E_TOOBIG, "HTTP response: body larger than %zu bytes",
                              max_body);
        }
        if (len - off < size + 2) {
            return PK_E_AGAIN;
        }
        if (pk_buf_append(body, p + off, (size_t)size) != 0) {
            return pk_err_set(err, PK_E_TOOBIG, "HTTP response: body larger than its buffer");
        }
        off += (size_t)size;
        if (p[off] != '\r' || p[off + 1] != '\n') {
            return pk_err_set(err, PK_E_PROTO,
                              "HTTP response: chunk data not followed by CRLF at byte %zu", off);
        }
        off += 2;
    }
}

int pk_kube_http_parse(const uint8_t *p, size_t len, bool eof, size_t max_body,
                       struct pk_kube_http_response *out, struct pk_buf *body, struct pk_err *err)
{
    struct pk_kube_http_response resp = {0};
    bool bad = false, chunked = false, have_length = false;
    uint64_t content_length = 0;
    size_t off, end, n_headers = 0;
    int r;

    pk_buf_reset(body);
    /* Status line: HTTP/1.1 SP 3DIGIT SP reason CRLF (RFC 9112 §4). */
    end = line_end(p, len, 0, &bad);
    if (bad) {
        return pk_err_set(err, PK_E_PROTO, "HTTP response: status line does not end in CRLF");
    }
    if (end == 0) {
        if (len > PK_KUBE_HTTP_MAX_HEAD) {
            return pk_err_set(err, PK_E_TOOBIG, "HTTP response: status line too long");
        }
        goto need_more;
    }
    if (end < 14 || (memcmp(p, "HTTP/1.1 ", 9) != 0 && memcmp(p, "HTTP/1.0 ", 9) != 0) ||
        p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' ||
        (p[12] != ' ' && p[12] != '\r')) {
        return pk_err_set(err, PK_E_PROTO, "HTTP response: malformed status line `%.*s'",
                          (int)PK_MIN(end - 2, (size_t)40), (const char *)p);
    }
    resp.status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (resp.status < 200) {
        return pk_err_set(err, PK_E_PROTO, "HTTP response: unexpected status %d", resp.status);
    }
    for (size_t i = 12; i < end - 2; i++) {
        if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f) {
            return pk_err_set(err, PK_E_PROTO, "HTTP response: control character in status line");
        }
    }

    /* Header fields (RFC 9112 §5). */
    off = end;
    for (;;) {
        size_t colon, vstart, vend;

        end = line_end(p, len, off, &bad);
        if (bad) {
            return pk_err_set(err, PK_E_PROTO,
                              "HTTP response: header line at byte %zu does not end in CRLF", off);
        }
        if (end == 0) {
            if (len > PK_KUBE_HTTP_MAX_HEAD) {
                return pk_err_set(err, PK_E_TOOBIG,
                                  "HTTP response: header section larger "
                                  "than %d bytes",
                                  PK_KUBE_HTTP_MAX_HEAD);
            }
            goto need_more;
        }
        if (end > PK_KUBE_HTTP_MAX_HEAD) {
            return pk_err_set(err, PK_E_TOOBIG,
                              "HTTP response: header section larger than %d "
                              "bytes",
                              PK_KUBE_HTTP_MAX_HEAD);
        }
        if (end - off == 2) {
            off = end;
            break;
        }
        if (++n_headers > MAX_HEADERS) {
            return pk_err_set(err, PK_E_TOOBIG, "HTTP response: more than %d header fields",
                              MAX_HEADERS);
        }
        for (colon = off; colon < end - 2 && is_tchar(p[colon]); colon++) {
        }
        if (colon == off || p[colon] != ':') {
            return pk_err_set(err, PK_E_PROTO, "HTTP response: malformed header field at byte %zu",
                              off);
        }
        for (vstart = colon + 1; vstart < end - 2 && (p[vstart] == ' ' || p[vstart] == '\t');
             vstart++) {
        }
        for (vend = end - 2; vend > vstart && (p[vend - 1] == ' ' || p[vend - 1] == '\t'); vend--) {
        }
        for (size_t i = vstart; i < vend; i++) {
            if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f) {
                return pk_err_set(err, PK_E_PROTO,
                                  "HTTP response: control character in header at byte %zu", off);
            }
        }
        if (slice_ieq(p + off, colon - off, "content-length")) {
            uint64_t v;
            if (have_length || parse_decimal(p + vstart, vend - vstart, &v) != 0) {
                return pk_err_set(err, PK_E_PROTO,
                                  "HTTP response: repeated or malformed Content-Length");
            }
            have_length = true;
            content_length = v;
        } else if (slice_ieq(p + off, colon - off, "transfer-encoding")) {
            if (!slice_ieq(p + vstart, vend - vstart, "chunked") || chunked) {
                return pk_err_set(err, PK_E_PROTO,
                                  "HTTP response: unsupported Transfer-Encoding `%.*s'",
                                  (int)PK_MIN(vend - vstart, (size_t)40), (const char *)p + vstart);
            }
            chunked = true;
        } else if (slice_ieq(p + off, colon - off, "content-type")) {
            size_t semi = vstart;
            while (semi < vend && p[semi] != ';' && p[semi] != ' ') {
                semi++;
            }
            resp.media_type = pk_slice_make(p + vstart, semi - vstart);
        }
        off = end;
    }
    /* RFC 9112 §6.3: both present is a smuggling vector; refuse rather than pick one. */
    if (chunked && have_length) {
        return pk_err_set(err, PK_E_PROTO,
                          "HTTP response: both Transfer-Encoding and Content-Length");
    }
    if (resp.status == 204 || resp.status == 304) {
        goto done;
    }
    if (chunked) {
        r = parse_chunked(p, len, off, max_body, body, err);
        if (r == PK_E_AGAIN) {
            pk_buf_reset(body);
            goto need_more;
        }
        if (r != 0) {
            return r;
        }
        goto done;
    }
    if (have_length) {
        if (content_length > max_body) {
            return pk_err_set(err, PK_E_TOOBIG,
                              "HTTP response: Content-Length %llu above the limit of %zu bytes",
                              (unsigned long long)content_length, max_body);
        }
        if (len - off < content_length) {
            goto need_more;
        }
        if (len - off > content_length) {
            return pk_err_set(err, PK_E_PROTO,
                              "HTTP response: %zu bytes after the body of Content-Length %llu",
                              len - off - (size_t)content_length,
                              (unsigned long long)content_length);
        }
        if (pk_buf_append(body, p + off, (size_t)content_length) != 0) {
            return pk_err_set(err, PK_E_TOOBIG, "HTTP response: body larger than its buffer");
        }
        goto done;
    }
    /* Delimited by the end of the connection. */
    if (len - off > max_body) {
        return pk_err_set(err, PK_E_TOOBIG, "HTTP response: body larger than %zu bytes", max_body);
    }
    if (!eof) {
        return PK_E_AGAIN;
    }
    if (pk_buf_append(body, p + off, len - off) != 0) {
        return pk_err_set(err, PK_E_TOOBIG, "HTTP response: body larger than its buffer");
    }
done:
    *out = resp;
    return 0;

need_more:
    if (eof) {
        return pk_err_set(err, PK_E_PROTO,
                          "HTTP response truncated: the server closed the "
                          "connection after %zu bytes",
                          len);
    }
    return PK_E_AGAIN;
}
