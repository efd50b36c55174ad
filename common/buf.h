/* SPDX-License-Identifier: Apache-2.0 */
/* picket: borrowed byte slices and growable byte buffers with a hard cap.
 *
 * A pk_slice is always borrowed and never freed. A pk_buf owns its bytes; every pk_buf has a
 * maximum size fixed at init, and an append that would pass it fails with PK_E_TOOBIG and leaves
 * the buffer unchanged. A buffer marked secret is wiped whenever its memory is released. */
#ifndef PK_BUF_H
#define PK_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compiler.h"

struct pk_slice {
    const uint8_t *ptr;
    size_t len;
};

static inline struct pk_slice pk_slice_make(const void *ptr, size_t len)
{
    struct pk_slice s = {(const uint8_t *)ptr, len};
    return s;
}

struct pk_buf {
    uint8_t *data; /* len bytes of content; NULL until the first append */
    size_t len;
    size_t _alloc;
    size_t _max;
    bool _secret;
};

/* Start an empty buffer that may hold at most max bytes. Allocates nothing. */
void pk_buf_init(struct pk_buf *buf, size_t max);

/* Like pk_buf_init, but the contents are wiped on growth, consume and free. */
void pk_buf_init_secret(struct pk_buf *buf, size_t max);

/* Append n bytes (borrows p). 0, or PK_E_TOOBIG when the cap would be passed. */
int pk_buf_append(struct pk_buf *buf, const void *p, size_t n) PK_MUST_USE;

/* Append a NUL-terminated string without its NUL. */
int pk_buf_append_str(struct pk_buf *buf, const char *s) PK_MUST_USE;

/* Append formatted text (without a trailing NUL in len, though one is kept after the data). */
int pk_buf_printf(struct pk_buf *buf, const char *fmt, ...) PK_PRINTF(2, 3) PK_MUST_USE;

/* Make room for n more bytes and return where they go; the caller writes them and then calls
 * pk_buf_commit(buf, written). 0, or PK_E_TOOBIG. */
int pk_buf_reserve(struct pk_buf *buf, size_t n, uint8_t **out) PK_MUST_USE;
void pk_buf_commit(struct pk_buf *buf, size_t n);

/* Drop the first n bytes (n <= len). */
void pk_buf_consume(struct pk_buf *buf, size_t n);

/* Shorten the content to n bytes (n <= len), wiping the dropped tail if secret. */
void pk_buf_truncate(struct pk_buf *buf, size_t n);

/* Empty the buffer but keep its memory (wiped first if secret). */
void pk_buf_reset(struct pk_buf *buf);

/* Release the memory (wiped first if secret); the buffer is empty and reusable afterwards. */
void pk_buf_free(struct pk_buf *buf);

/* Hand the bytes over to the caller: *out takes them (malloc'd, caller frees), buf is left empty.
 * A NUL is kept after the data, so text content can be used as a C string. */
void pk_buf_steal(struct pk_buf *buf, uint8_t **out, size_t *out_len);

static inline size_t pk_buf_space(const struct pk_buf *buf)
{
    return buf->_max - buf->len;
}

static inline struct pk_slice pk_buf_slice(const struct pk_buf *buf)
{
    return pk_slice_make(buf->data, buf->len);
}

#endif
