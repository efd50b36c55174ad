/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the byte ring of a proxied connection's direction. Inline: every record passes through
 * it, and a call per span would cost more than the arithmetic. */
#ifndef PK_PROXY_RING_H
#define PK_PROXY_RING_H

#include <stddef.h>
#include <stdint.h>

#include "common/compiler.h"
#include "common/mem.h"

/* A bounded byte ring; never moves its bytes, so a wolfSSL_write retry sees the same ones.
 * Its memory exists only while it holds bytes: allocated by the first pk_ring_wr, released by
 * pk_ring_trim once drained, so an idle connection costs no buffers whatever passed through it
 * before. dirty bounds what was ever written since the allocation, the span to wipe. */
struct pk_ring {
    uint8_t *p; /* NULL while released */
    size_t cap;
    size_t head;
    size_t len;
    size_t dirty;
};

/* The readable span at the front: its start, and its length in *n (0 when empty). */
static inline uint8_t *pk_ring_rd(const struct pk_ring *r, size_t *n)
{
    if (r->len == 0) {
        *n = 0;
        return r->p; /* possibly NULL: released */
    }
    *n = PK_MIN(r->len, r->cap - r->head);
    return r->p + r->head;
}

/* The writable span after the bytes held, allocating the memory on first use: its start, and
 * its length in *n (0 when full). */
static inline uint8_t *pk_ring_wr(struct pk_ring *r, size_t *n)
{
    if (r->p == NULL) {
        r->p = pk_xmalloc(r->cap);
        r->head = r->len = r->dirty = 0;
    }
    if (r->len == 0) {
        r->head = 0; /* the largest contiguous space; nothing can point into an empty ring */
    }
    size_t tail = (r->head + r->len) % r->cap;
    if (r->len == r->cap) {
        *n = 0;
    } else if (tail >= r->head) {
        *n = r->cap - tail;
    } else {
        *n = r->head - tail;
    }
    return r->p + tail;
}

/* n bytes were written at the start of the span pk_ring_wr gave. */
static inline void pk_ring_commit(struct pk_ring *r, size_t n)
{
    size_t end = (r->head + r->len) % r->cap + n;
    r->dirty = PK_MAX(r->dirty, end);
    r->len += n;
}

/* n bytes at the front were used. */
static inline void pk_ring_consume(struct pk_ring *r, size_t n)
{
    r->head = (r->head + n) % r->cap;
    r->len -= n;
}

/* Release the memory (keeping the capacity for the next pk_ring_wr). The bytes are application
 * plaintext (decrypted, or on their way to be encrypted): wiped like any secret, but only the
 * span ever written, not the whole capacity at every close. */
static inline void pk_ring_release(struct pk_ring *r)
{
    if (r->p != NULL) {
        r->p = pk_free_secret(r->p, r->dirty);
    }
    r->len = r->head = r->dirty = 0;
}

/* Release a drained ring. */
static inline void pk_ring_trim(struct pk_ring *r)
{
    if (r->len == 0) {
        pk_ring_release(r);
    }
}

#endif
