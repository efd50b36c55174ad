/* SPDX-License-Identifier: Apache-2.0 */
/* picket: one TLS connection on a libev loop, moving bytes between a socket, wolfSSL and a
 * sans-I/O protocol (the HTTP/2 sessions of common/h2).
 *
 * The stream owns a non-blocking socket and a WOLFSSL. It runs the handshake (bounded by a
 * timer), checks ALPN, then tells its owner through ops.handshake_done (where the owner checks
 * the peer and sets up its protocol). Afterwards every readable event decrypts records and hands
 * the plaintext to ops.recv; after that, and whenever the socket becomes writable, it asks
 * ops.produce for output, which is appended to a capped plaintext buffer and written with
 * wolfSSL_write. wolfSSL's WANT_READ/WANT_WRITE are mapped onto the two ev_io watchers
 * (including a read that needs a write, and the reverse).
 *
 * Backpressure: while the output buffer is full the stream stops reading, so a peer that does
 * not read its responses cannot make us queue more. Activity timeout: a connection with no
 * successful read or write for idle_timeout seconds fails with PK_E_TIMEOUT.
 *
 * Errors are sticky: the first failure stops all I/O, and ops.closed is called exactly once,
 * whatever the reason (peer EOF, error, timeout, or the end of a graceful pk_tls_stream_close).
 *
 * Lifetime (STYLE.md §6): callbacks run with a hold on the stream. pk_tls_stream_free may be
 * called from inside any op (typically from ops.closed); the memory is released when the
 * outermost callback returns, and no op is called after pk_tls_stream_free. Outside callbacks it
 * frees at once. The stream never frees its owner. */
#ifndef PK_NET_TLS_STREAM_H
#define PK_NET_TLS_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "common/err.h"

struct ev_loop;
struct pk_tls_stream;

struct pk_tls_stream_ops {
    /* Handshake done and ALPN checked. ssl is borrowed. Return 0 to go on; non-zero fails the
     * stream with that code and err's text (ops.closed follows). */
    int (*handshake_done)(void *ctx, WOLFSSL *ssl, struct pk_err *err);
    /* Plaintext received (borrowed, valid during the call). Non-zero fails the stream, except
     * that the stream first flushes what ops.produce still has (e.g. a GOAWAY). */
    int (*recv)(void *ctx, const uint8_t *p, size_t len, struct pk_err *err);
    /* Append pending protocol output to out (respect its cap). Non-zero fails the stream. */
    int (*produce)(void *ctx, struct pk_buf *out, struct pk_err *err);
    /* True when the protocol has nothing more to say or hear: the stream then closes
     * gracefully once its output is flushed. May be NULL (never finished by itself). */
    bool (*finished)(void *ctx);
    /* The stream is over. code: 0 after a graceful close or clean peer EOF (close_notify or
     * TCP FIN), PK_E_EOF when the peer closed before the handshake completed, PK_E_TIMEOUT,
     * PK_E_TLS, PK_E_PROTO, -errno, or the code an op returned. msg is borrowed. */
    void (*closed)(void *ctx, int code, const char *msg);
};

struct pk_tls_stream_config {
    double handshake_timeout; /* seconds; 0 = 10 */
    double idle_timeout;      /* seconds without I/O progress after the handshake; 0 = none */
    size_t out_max;           /* plaintext output buffer cap; 0 = 64 KiB */
    const char *alpn;         /* required ALPN protocol (borrowed, copied), NULL = none */
};

/* Make a stream over fd (taken: closed by the stream; must be connected and non-blocking) and
 * ssl (taken: freed by the stream; its fd I/O is replaced by the stream's own callbacks, which
 * use MSG_NOSIGNAL). ops and ctx are borrowed for the stream's life. Nothing happens until
 * pk_tls_stream_start. 0, or PK_E_INVALID (then fd and ssl are still the caller's). */
int pk_tls_stream_new(struct ev_loop *loop, int fd, WOLFSSL *ssl,
                      const struct pk_tls_stream_config *cfg, const struct pk_tls_stream_ops *ops,
                      void *ctx, struct pk_tls_stream **out, struct pk_err *err) PK_MUST_USE;

/* Start the handshake (arms the watchers and the handshake timer). */
void pk_tls_stream_start(struct pk_tls_stream *st);

/* The protocol has new output outside an I/O callback (e.g. after a timer): try to write it. */
void pk_tls_stream_kick(struct pk_tls_stream *st);

/* Graceful close: stop reading, flush pending output, send close_notify, close the socket,
 * then ops.closed(0). Bounded by a short linger timer. No-op on a stream already closing. */
void pk_tls_stream_close(struct pk_tls_stream *st);

/* Fail the stream now with code and msg (borrowed): no further I/O, ops.closed follows. */
void pk_tls_stream_fail(struct pk_tls_stream *st, int code, const char *msg);

/* True once ops.closed has been called or is about to be. */
bool pk_tls_stream_is_closed(const struct pk_tls_stream *st);

/* Release the stream (closing the socket without close_notify if still open). Never calls an op.
 * Deferred while inside one of the stream's callbacks. NULL is fine; returns NULL. */
struct pk_tls_stream *pk_tls_stream_free(struct pk_tls_stream *st);

#endif
