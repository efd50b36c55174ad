/* SPDX-License-Identifier: Apache-2.0 */
/* picket: gRPC message framing, status codes, grpc-message and grpc-timeout encodings. */
#include "grpc.h"

#include <stdio.h>
#include <string.h>

static const char *const status_names[] = {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
};

const char *pk_grpc_status_name(int status)
{
    if (status < 0 || (size_t)status >= PK_ARRAY_LEN(status_names)) {
        return "UNKNOWN_CODE";
    }
    return status_names[status];
}

int pk_grpc_status_parse(const uint8_t *p, size_t len, int *out)
{
    uint64_t v = 0;

    PK_ENSURE(len >= 1 && len <= 10, PK_E_INVALID);
    for (size_t i = 0; i < len; i++) {
        PK_ENSURE(p[i] >= '0' && p[i] <= '9', PK_E_INVALID);
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    PK_ENSURE(v <= INT32_MAX, PK_E_INVALID);
    *out = (int)v;
    return 0;
}

int pk_grpc_status_from_http(int http_status)
{
    switch (http_status) {
    case 400:
        return PK_GRPC_INTERNAL;
    case 401:
        return PK_GRPC_UNAUTHENTICATED;
    case 403:
        return PK_GRPC_PERMISSION_DENIED;
    case 404:
        return PK_GRPC_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return PK_GRPC_UNAVAILABLE;
    default:
        return PK_GRPC_UNKNOWN;
    }
}

int pk_grpc_frame_encode(struct pk_buf *out, struct pk_slice msg)
{
    uint8_t *dst;

    PK_ENSURE(msg.len <= UINT32_MAX, PK_E_TOOBIG);
    PK_ENSURE(msg.len <= SIZE_MAX - PK_GRPC_FRAME_HEADER_LEN, PK_E_TOOBIG);
    int r = pk_buf_reserve(out, PK_GRPC_FRAME_HEADER_LEN + msg.len, &dst);
    if (r != 0) {
        return r;
    }
    dst[0] = 0;
    dst[1] = (uint8_t)(msg.len >> 24);
    dst[2] = (uint8_t)(msg.len >> 16);
    dst[3] = (uint8_t)(msg.len >> 8);
    dst[4] = (uint8_t)msg.len;
    if (msg.len > 0) {
        memcpy(dst + PK_GRPC_FRAME_HEADER_LEN, msg.ptr, msg.len);
    }
    pk_buf_commit(out, PK_GRPC_FRAME_HEADER_LEN + msg.len);
    return 0;
}

void pk_grpc_deframer_init(struct pk_grpc_deframer *d, size_t max_message)
{
    memset(d, 0, sizeof(*d));
    d->_max = max_message;
    pk_buf_init(&d->_body, max_message);
}

void pk_grpc_deframer_free(struct pk_grpc_deframer *d)
{
    pk_buf_free(&d->_body);
    d->_hdr_len = 0;
}

size_t pk_grpc_deframer_count(const struct pk_grpc_deframer *d)
{
    return d->_count;
}

size_t pk_grpc_deframer_buffered(const struct pk_grpc_deframer *d)
{
    return d->_body.len;
}

static int deframer_fail(struct pk_grpc_deframer *d, int code)
{
    d->_failed = code;
    pk_buf_free(&d->_body);
    return code;
}

/* The 5-byte prefix is complete: validate it before anything of the body is kept. */
static int deframer_check_header(struct pk_grpc_deframer *d, struct pk_err *err)
{
    uint32_t n = (uint32_t)d->_hdr[1] << 24 | (uint32_t)d->_hdr[2] << 16 |
                 (uint32_t)d->_hdr[3] << 8 | (uint32_t)d->_hdr[4];

    if (d->_hdr[0] == 1) {
        pk_err_set(err, PK_E_UNSUPPORTED,
                   "gRPC message has the compressed flag set, but no compression was negotiated");
        return deframer_fail(d, PK_E_UNSUPPORTED);
    }
    if (d->_hdr[0] != 0) {
        pk_err_set(err, PK_E_PROTO, "gRPC message has an invalid compressed flag 0x%02x",
                   d->_hdr[0]);
        return deframer_fail(d, PK_E_PROTO);
    }
    if (n > d->_max) {
        pk_err_set(err, PK_E_TOOBIG, "gRPC message of %u bytes exceeds the limit of %zu bytes", n,
                   d->_max);
        return deframer_fail(d, PK_E_TOOBIG);
    }
    d->_want = n;
    return 0;
}

static int deframer_deliver(struct pk_grpc_deframer *d, struct pk_slice msg, pk_grpc_message_fn fn,
                            void *ctx)
{
    d->_count++;
    d->_hdr_len = 0;
    if (fn != NULL) {
        int r = fn(ctx, msg);
        if (r != 0) {
            return deframer_fail(d, r);
        }
    }
    return 0;
}

int pk_grpc_deframer_feed(struct pk_grpc_deframer *d, const uint8_t *p, size_t len,
                          pk_grpc_message_fn fn, void *ctx, struct pk_err *err)
{
    int r;

    if (d->_failed != 0) {
        return d->_failed;
    }
    while (len > 0) {
        if (d->_hdr_len < PK_GRPC_FRAME_HEADER_LEN) {
            size_t n = PK_MIN(len, PK_GRPC_FRAME_HEADER_LEN - d->_hdr_len);
            memcpy(d->_hdr + d->_hdr_len, p, n);
            d->_hdr_len += n;
            p += n;
            len -= n;
            if (d->_hdr_len < PK_GRPC_FRAME_HEADER_LEN) {
                break;
            }
            r = deframer_check_header(d, err);
            if (r != 0) {
                return r;
            }
            if (d->_want == 0) {
                r = deframer_deliver(d, pk_slice_make(p, 0), fn, ctx);
                if (r != 0) {
                    return r;
                }
            }
            continue;
        }
        /* In a body: d->_body.len < d->_want bytes kept so far. */
        size_t need = d->_want - d->_body.len;
        if (d->_body.len == 0 && len >= need) {
            /* The whole body is in this chunk: no copy. */
            struct pk_slice msg = pk_slice_make(p, need);
            p += need;
            len -= need;
            r = deframer_deliver(d, msg, fn, ctx);
            if (r != 0) {
                return r;
            }
            continue;
        }
        size_t n = PK_MIN(len, need);
        r = pk_buf_append(&d->_body, p, n);
        PK_ASSERT(r == 0); /* _want <= _max, the body buffer's cap */
        p += n;
        len -= n;
        if (d->_body.len == d->_want) {
            r = deframer_deliver(d, pk_buf_slice(&d->_body), fn, ctx);
            if (r != 0) {
                return r;
            }
            pk_buf_reset(&d->_body);
        }
    }
    return 0;
}

int pk_grpc_deframer_finish(struct pk_grpc_deframer *d, struct pk_err *err)
{
    if (d->_failed != 0) {
        return d->_failed;
    }
    if (d->_hdr_len == 0) {
        return 0;
    }
    if (d->_hdr_len < PK_GRPC_FRAME_HEADER_LEN) {
        pk_err_set(err, PK_E_TRUNCATED, "gRPC stream ends inside a message prefix (%zu of 5 bytes)",
                   d->_hdr_len);
    } else {
        pk_err_set(err, PK_E_TRUNCATED,
                   "gRPC stream ends inside a message (%zu of %u declared bytes)", d->_body.len,
                   d->_want);
    }
    return deframer_fail(d, PK_E_TRUNCATED);
}

int pk_grpc_percent_encode(struct pk_buf *out, const uint8_t *msg, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < len; i++) {
        uint8_t c = msg[i];
        int r;
        if (c >= 0x20 && c <= 0x7e && c != '%') {
            r = pk_buf_append(out, &c, 1);
        } else {
            char enc[3] = {'%', hex[c >> 4], hex[c & 0xf]};
            r = pk_buf_append(out, enc, sizeof(enc));
        }
        if (r != 0) {
            return r;
        }
    }
    return 0;
}

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int pk_grpc_percent_decode(struct pk_buf *out, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t c = p[i];
        if (c == '%' && len - i >= 3) {
            int hi = hex_value(p[i + 1]);
            int lo = hex_value(p[i + 2]);
            if (hi >= 0 && lo >= 0) {
                c = (uint8_t)(hi << 4 | lo);
                i += 2;
            }
        }
        int r = pk_buf_append(out, &c, 1);
        if (r != 0) {
            return r;
        }
    }
    return 0;
}

struct timeout_unit {
    char name;
    uint64_t ns;
};

/* Finest first, so that formatting picks the most precise unit that fits. */
static const struct timeout_unit timeout_units[] = {
        {'n', 1ULL},
        {'u', 1000ULL},
        {'m', 1000000ULL},
        {'S', 1000000000ULL},
        {'M', 60ULL * 1000000000ULL},
        {'H', 3600ULL * 1000000000ULL},
};

#define TIMEOUT_MAX_DIGITS 8
#define TIMEOUT_MAX_VALUE  99999999ULL

int pk_grpc_timeout_parse(const uint8_t *p, size_t len, uint64_t *out_ns)
{
    uint64_t v = 0;
    const struct timeout_unit *unit = NULL;

    PK_ENSURE(len >= 2 && len <= TIMEOUT_MAX_DIGITS + 1, PK_E_INVALID);
    for (size_t i = 0; i + 1 < len; i++) {
        PK_ENSURE(p[i] >= '0' && p[i] <= '9', PK_E_INVALID);
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    for (size_t i = 0; i < PK_ARRAY_LEN(timeout_units); i++) {
        if (timeout_units[i].name == (char)p[len - 1]) {
            unit = &timeout_units[i];
        }
    }
    PK_ENSURE(unit != NULL, PK_E_INVALID);
    *out_ns = v > UINT64_MAX / unit->ns ? UINT64_MAX : v * unit->ns;
    return 0;
}

void pk_grpc_timeout_format(uint64_t timeout_ns, char out[PK_GRPC_TIMEOUT_STRLEN])
{
    for (size_t i = 0; i < PK_ARRAY_LEN(timeout_units); i++) {
        const struct timeout_unit *u = &timeout_units[i];
        uint64_t v = timeout_ns / u->ns + (timeout_ns % u->ns != 0);
        if (v <= TIMEOUT_MAX_VALUE) {
            snprintf(out, PK_GRPC_TIMEOUT_STRLEN, "%llu%c", (unsigned long long)v, u->name);
            return;
        }
    }
    snprintf(out, PK_GRPC_TIMEOUT_STRLEN, "%lluH", TIMEOUT_MAX_VALUE);
}
