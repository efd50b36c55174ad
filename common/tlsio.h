/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the one place where wolfSSL meets a non-blocking socket — the I/O callbacks, what a
 * failed wolfSSL call means, and how a connection says close_notify. No event loop: the owner
 * (proxy/conn on libev, net/tls_stream on libev) maps the outcomes onto its own watchers.
 *
 * Callbacks. wolfSSL's own socket callbacks are replaced: Debian's 5.5.4 EmbedSend calls send()
 * with flags nothing sets (no MSG_NOSIGNAL: a peer that went away raises SIGPIPE), and its error
 * codes blur a clean EOF with a reset. Ours record what the socket said (peer_eof, io_errno) for
 * pk_tlsio_outcome and, optionally, read ahead: one recvmsg() fills what wolfSSL asked for and
 * spills whatever else has arrived into a small buffer that serves its next asks, so a small
 * record or a handshake flight costs one system call instead of two (header, then body).
 *
 * Hello guard. Every byte handed to wolfSSL first passes common/hello_guard, which checks the
 * peer's cleartext flight (its key shares, an early ChangeCipherSpec) until the encrypted part
 * begins. When it refuses, it has sent its alert; from then on wolfSSL reads nothing and sends
 * nothing, and the failing call's outcome is PK_TLSIO_FAILED with pk_tlsio_refused saying why.
 *
 * Shutdown rules. wolfSSL_shutdown marks close_notify as sent only once the whole alert is out:
 * asked again after WANT_WRITE it queues a second alert, and asked again after success it starts
 * reading the peer's reply. So pk_tlsio_shutdown calls it exactly once per connection. During that
 * call the send callback keeps whatever the kernel refused of the alert in a small tail, which
 * later calls of pk_tlsio_shutdown (and any later send) flush first. The socket's sending side is
 * the owner's to shut (half-close), after pk_tlsio_shutdown returned 0. */
#ifndef PK_TLSIO_H
#define PK_TLSIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "compiler.h"
#include "hello_guard.h"

/* A TLS 1.3 close_notify record is 24 bytes, TLS 1.2 with AES-GCM 31: room for one. */
#define PK_TLSIO_TAIL_MAX 64
/* Read-ahead: enough for a whole client flight, or the next record header and part of its body
 * during bulk transfer. */
#define PK_TLSIO_READ_AHEAD 2048

/* What a wolfSSL call that did not succeed (ret <= 0) means for its caller. */
enum pk_tlsio_outcome {
    PK_TLSIO_WANT_READ = 1, /* retry the same call once the socket is readable */
    PK_TLSIO_WANT_WRITE,    /* ... once it is writable */
    PK_TLSIO_CLOSE_NOTIFY,  /* the peer said close_notify: its direction ended cleanly */
    PK_TLSIO_FIN,           /* the peer's FIN without close_notify (no socket error seen) */
    PK_TLSIO_FAILED,        /* a socket error (io_errno) or a TLS error: the connection is broken */
};

/* One connection's I/O state; embedded in its owner, which keeps it alive as long as the
 * WOLFSSL that points to it. Fields without a leading underscore may be read by the owner. */
struct pk_tlsio {
    int fd;        /* borrowed: the owner closes it */
    bool peer_eof; /* recv() returned 0 */
    int io_errno;  /* the last hard socket error, 0 if none */
    bool progress; /* a byte moved since the owner last cleared it */
    bool _read_ahead;
    bool _shutdown_called; /* wolfSSL_shutdown ran: never again */
    bool _shutdown_failed; /* ... and could not send the alert */
    bool _stash;           /* inside that call: keep what the kernel refuses in _tail */
    uint8_t _tail[PK_TLSIO_TAIL_MAX];
    size_t _tail_len;
    uint8_t *_ra; /* PK_TLSIO_READ_AHEAD bytes while it holds some, else NULL after trim */
    size_t _ra_off;
    size_t _ra_len;
    struct pk_hello_guard *_guard; /* NULL once the peer's cleartext flight is over */
    char _refused[sizeof(((struct pk_hello_guard *)0)->why)]; /* "" unless the guard refused */
};

/* Make io the I/O of ssl (borrowed) over fd (borrowed, non-blocking), with a hello guard for the
 * peer's side of ssl. read_ahead: see above; the owner must then call wolfSSL_read whenever it
 * has room and the last call did not say WANT_READ, as ciphertext may wait here rather than in
 * the socket. */
void pk_tlsio_attach(struct pk_tlsio *io, WOLFSSL *ssl, int fd, bool read_ahead);

/* Release the read-ahead buffer if it holds nothing (it comes back on the next read). */
void pk_tlsio_trim(struct pk_tlsio *io);

/* Release everything; io may not be used again. */
void pk_tlsio_clear(struct pk_tlsio *io);

/* Memory held for buffering right now, in bytes. */
size_t pk_tlsio_buffer_bytes(const struct pk_tlsio *io);

/* Why the hello guard refused the peer's flight, or NULL when it did not. */
const char *pk_tlsio_refused(const struct pk_tlsio *io);

/* Classify ret, the result of a wolfSSL_negotiate/read/write on ssl that did not succeed. */
enum pk_tlsio_outcome pk_tlsio_outcome(const struct pk_tlsio *io, WOLFSSL *ssl, int ret);

/* Describe a PK_TLSIO_FAILED result in buf: strerror(io_errno) after a socket error, else
 * "wolfSSL error N (text)". Returns buf. */
const char *pk_tlsio_error_text(const struct pk_tlsio *io, WOLFSSL *ssl, int ret, char *buf,
                                size_t len);

/* Send our close_notify, or the rest of it: call until it returns 0, and then shut the
 * socket's sending side if the protocol wants a half-close. wolfSSL_shutdown runs on the first
 * call only. Returns 0 when the whole alert is in the kernel, PK_TLSIO_WANT_WRITE when some of it
 * waits for the socket to become writable, PK_TLSIO_FAILED when wolfSSL could not send it (its
 * code: wolfSSL_get_error(ssl, WOLFSSL_FATAL_ERROR); io_errno after a socket error) — then on
 * every later call too — or -errno when the socket refused the rest. Output still waiting inside
 * wolfSSL (a wolfSSL_write that said WANT_WRITE) leaves no room to keep the alert: finish writes
 * first. A connection torn down anyway may ignore the result. */
int pk_tlsio_shutdown(struct pk_tlsio *io, WOLFSSL *ssl);

/* True once pk_tlsio_shutdown has handed close_notify to wolfSSL. */
bool pk_tlsio_shutdown_called(const struct pk_tlsio *io);

#endif
