/* SPDX-License-Identifier: Apache-2.0 */
/* picket: borrowed byte slices and growable byte buffers with a hard cap. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mem.h"

void pk_buf_init(struct pk_buf *buf, size_t max)
{
    memset(buf, 0, sizeof(*buf));
    buf->_max = max;
}

void pk_buf_init_secret(struct pk_buf *buf, size_t max)
{
    pk_buf_init(buf, max);
    buf->_secret = true;
}

/* Grow the allocation to hold at least need bytes plus a NUL guard. */
static void buf_grow(struct pk_buf *buf, size_t need)
{
    size_t alloc = buf->_alloc ? buf->_alloc : 64;
    uint8_t *data;

#ifndef PK_BUF_DEBUG
    if (need + 1 <= buf->_alloc) {
        return;
    }
    while (alloc < need + 1) {
        alloc = alloc > SIZE_MAX / 2 ? need + 1 : alloc * 2;
    }
#else
    /* Reallocate on every growth so that a stale pointer into the buffer is caught by ASan. */
    alloc = need + 1;
#endif
    data = pk_xmalloc(alloc);
    if (buf->len > 0) {
        memcpy(data, buf->data, buf->len);
    }
    if (buf->data != NULL) {
        if (buf->_secret) {
            pk_wipe(buf->data, buf->_alloc);
        }
        free(buf->data);
    }
    buf->data = data;
    buf->_alloc = alloc;
}

int pk_buf_reserve(struct pk_buf *buf, size_t n, uint8_t **out)
{
    if (n > buf->_max - buf->len) {
        return PK_E_TOOBIG;
    }
    buf_grow(buf, buf->len + n);
    *out = buf->data + buf->len;
    return 0;
}

void pk_buf_commit(struct pk_buf *buf, size_t n)
{
    PK_ASSERT(buf->len + n < buf->_alloc);
    buf->len += n;
    buf->data[buf->len] = '\0';
}

int pk_buf_append(struct pk_buf *buf, const void *p, size_t n)
{
    uint8_t *dst;
    int r = pk_buf_reserve(buf, n, &dst);
    if (r != 0) {
        return r;
    }
    if (n > 0) {
        memcpy(dst, p, n);
    }
    pk_buf_commit(buf, n);
    return 0;
}

int pk_buf_append_str(struct pk_buf *buf, const char *s)
{
    return pk_buf_append(buf, s, strlen(s));
}

int pk_buf_printf(struct pk_buf *buf, const char *fmt, ...)
{
    va_list ap;
    int n;
    uint8_t *dst;
    int r;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return PK_E_INVALID;
    }
    r = pk_buf_reserve(buf, (size_t)n, &dst);
    if (r != 0) {
        return r;
    }
    va_start(ap, fmt);
    vsnprintf((char *)dst, (size_t)n + 1, fmt, ap);
    va_end(ap);
    pk_buf_commit(buf, (size_t)n);
    return 0;
}

void pk_buf_consume(struct pk_buf *buf, size_t n)
{
    PK_ASSERT(n <= buf->len);
    if (n == 0) {
        return;
    }
    memmove(buf->data, buf->data + n, buf->len - n);
    buf->len -= n;
    if (buf->_secret) {
        pk_wipe(buf->data + buf->len, n);
    }
    buf->data[buf->len] = '\0';
}

void pk_buf_truncate(struct pk_buf *buf, size_t n)
{
    PK_ASSERT(n <= buf->len);
    if (buf->data == NULL) {
        return;
    }
    if (buf->_secret) {
        pk_wipe(buf->data + n, buf->len - n);
    }
    buf->len = n;
    buf->data[n] = '\0';
}

void pk_buf_reset(struct pk_buf *buf)
{
    if (buf->data != NULL) {
        if (buf->_secret) {
            pk_wipe(buf->data, buf->_alloc);
        }
        buf->data[0] = '\0';
    }
    buf->len = 0;
}

void pk_buf_free(struct pk_buf *buf)
{
    if (buf->data != NULL) {
        if (buf->_secret) {
            pk_wipe(buf->data, buf->_alloc);
        }
        free(buf->data);
    }
    buf->data = NULL;
    buf->len = 0;
    buf->_alloc = 0;
}

void pk_buf_steal(struct pk_buf *buf, uint8_t **out, size_t *out_len)
{
    if (buf->data == NULL) {
        buf_grow(buf, 0);
        buf->data[0] = '\0';
    }
    *out = buf->data;
    *out_len = buf->len;
    buf->data = NULL;
    buf->len = 0;
    buf->_alloc = 0;
}
