/* SPDX-License-Identifier: Apache-2.0 */
/* picket: one TLS connection on a libev loop.
 *
 * Implementation notes. States: HANDSHAKE -> OPEN -> FLUSHING -> DRAINING -> DONE, with any state
 * able to jump to DONE on an error. FLUSHING writes what is left, sends close_notify and shuts
 * the socket's sending side; DRAINING then reads and discards until the peer's FIN (or the linger
 * timer), so that closing never turns unread input into a TCP RST that could destroy the last
 * bytes we sent (hitch's SHUTDOWN_CLEAR). "run" is the one place that does I/O; the watchers,
 * the timer and the public kick/close entry points all end up there. Requests made while a
 * callback is running (close, fail, free) only record what to do; the outermost run acts. */
#include "tls_stream.h"

#include <errno.h>
#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/tls.h"
#include "common/tlsio.h"

#define STREAM_MAGIC          0x53544d53u /* "STMS" */
#define STREAM_READ_CHUNK     16384
#define STREAM_READS_PER_RUN  16
#define STREAM_WRITE_CHUNK    16384
#define STREAM_LINGER         2.0
#define STREAM_DEFAULT_HS     10.0
#define STREAM_DEFAULT_OUTMAX (64 * 1024)

enum stream_state { ST_HANDSHAKE, ST_OPEN, ST_FLUSHING, ST_DRAINING, ST_DONE };

struct pk_tls_stream {
    unsigned magic;
    struct ev_loop *loop;
    int fd;
    WOLFSSL *ssl;
    ev_io rio;
    ev_io wio;
    ev_timer timer;
    struct pk_tls_stream_config cfg;
    char *alpn;
    const struct pk_tls_stream_ops *ops;
    void *ctx;
    enum stream_state state;
    struct pk_buf out;
    int hs_want; /* PK_TLSIO_WANT_READ/WRITE while handshaking */
    bool read_wants_write;
    bool write_wants_read;
    bool shutdown_wants_write;
    struct pk_tlsio io;
    ev_tstamp last_activity;
    unsigned holds;
    bool doomed; /* pk_tls_stream_free was called during a callback */
    bool closed_called;
    bool fail_pending; /* fail/close recorded during a callback */
    int final_code;
    char final_msg[sizeof(((struct pk_err *)0)->msg)];
};

static void stream_destroy(struct pk_tls_stream *st)
{
    ev_io_stop(st->loop, &st->rio);
    ev_io_stop(st->loop, &st->wio);
    ev_timer_stop(st->loop, &st->timer);
    if (st->ssl != NULL) {
        wolfSSL_free(st->ssl);
    }
    if (st->fd >= 0) {
        close(st->fd);
    }
    pk_tlsio_clear(&st->io);
    pk_buf_free(&st->out);
    free(st->alpn);
    st->magic = 0;
    free(st);
}

static void stream_hold(struct pk_tls_stream *st)
{
    st->holds++;
}

/* Returns false when the stream is gone (the caller must not touch it). */
static bool stream_release(struct pk_tls_stream *st)
{
    PK_ASSERT(st->holds > 0);
    st->holds--;
    if (st->holds == 0 && st->doomed) {
        stream_destroy(st);
        return false;
    }
    return true;
}

/* Stop everything and tell the owner. */
static void stream_finish(struct pk_tls_stream *st, int code, const char *msg)
{
    if (st->closed_called) {
        return;
    }
    st->closed_called = true;
    st->state = ST_DONE;
    ev_io_stop(st->loop, &st->rio);
    ev_io_stop(st->loop, &st->wio);
    ev_timer_stop(st->loop, &st->timer);
    if (st->fd >= 0) {
        close(st->fd);
        st->fd = -1;
    }
    stream_hold(st);
    st->ops->closed(st->ctx, code, msg != NULL ? msg : "");
    stream_release(st);
}

/* Record a failure; the outermost run delivers it. */
static void stream_set_fail(struct pk_tls_stream *st, int code, const char *msg)
{
    if (st->fail_pending || st->closed_called) {
        return;
    }
    st->fail_pending = true;
    st->final_code = code;
    if (msg != st->final_msg) {
        snprintf(st->final_msg, sizeof(st->final_msg), "%s", msg);
    }
}

static bool stream_gone(const struct pk_tls_stream *st)
{
    return st->doomed || st->closed_called || st->fail_pending;
}

/* Turn a failed wolfSSL call into the stream's final result. */
static void stream_tls_error(struct pk_tls_stream *st, int ret, const char *what)
{
    enum pk_tlsio_outcome o = pk_tlsio_outcome(&st->io, st->ssl, ret);
    char text[192];
    char msg[256];

    if (st->io.peer_eof || o == PK_TLSIO_CLOSE_NOTIFY) {
        if (st->state == ST_HANDSHAKE) {
            stream_set_fail(st, PK_E_EOF, "peer closed the connection during the TLS handshake");
        } else {
            stream_set_fail(st, 0, "peer closed the connection");
        }
        return;
    }
    if (pk_tlsio_refused(&st->io) != NULL) {
        snprintf(msg, sizeof(msg), "%s: refused before the handshake: %s", what,
                 pk_tlsio_refused(&st->io));
        stream_set_fail(st, PK_E_TLS, msg);
        return;
    }
    snprintf(msg, sizeof(msg), "%s: %s", what,
             pk_tlsio_error_text(&st->io, st->ssl, ret, text, sizeof(text)));
    stream_set_fail(st, st->io.io_errno != 0 ? -st->io.io_errno : PK_E_TLS, msg);
}

static void stream_handshake(struct pk_tls_stream *st)
{
    struct pk_err err = {{0}};
    int r;

    st->hs_want = 0;
    r = wolfSSL_negotiate(st->ssl);
    if (r != WOLFSSL_SUCCESS) {
        enum pk_tlsio_outcome o = pk_tlsio_outcome(&st->io, st->ssl, r);
        if (o == PK_TLSIO_WANT_READ || o == PK_TLSIO_WANT_WRITE) {
            st->hs_want = o;
            return;
        }
        stream_tls_error(st, r, "TLS handshake failed");
        return;
    }
    r = pk_tls_alpn_check(st->ssl, st->alpn, &err);
    if (r != 0) {
        stream_set_fail(st, r, err.msg);
        return;
    }
    st->state = ST_OPEN;
    ev_timer_stop(st->loop, &st->timer);
    st->last_activity = ev_now(st->loop);
    if (st->cfg.idle_timeout > 0) {
        ev_timer_set(&st->timer, st->cfg.idle_timeout, 0.);
        ev_timer_start(st->loop, &st->timer);
    }
    r = st->ops->handshake_done(st->ctx, st->ssl, &err);
    if (r != 0 && !stream_gone(st)) {
        stream_set_fail(st, r, err.msg[0] ? err.msg : pk_err_str(r));
    }
}

/* Begin the graceful end: flush, close_notify, half-close, drain. */
static void stream_begin_close(struct pk_tls_stream *st, int code, const char *msg)
{
    if (st->state == ST_FLUSHING || st->state == ST_DRAINING || st->state == ST_DONE) {
        return;
    }
    if (st->state == ST_HANDSHAKE) {
        stream_set_fail(st, code != 0 ? code : PK_E_CLOSED, msg);
        return;
    }
    st->state = ST_FLUSHING;
    st->final_code = code;
    snprintf(st->final_msg, sizeof(st->final_msg), "%s", msg);
    ev_timer_stop(st->loop, &st->timer);
    ev_timer_set(&st->timer, STREAM_LINGER, 0.);
    ev_timer_start(st->loop, &st->timer);
}

static void stream_flush(struct pk_tls_stream *st)
{
    struct pk_err err = {{0}};

    st->write_wants_read = false;
    for (;;) {
        if (st->state == ST_OPEN || st->state == ST_FLUSHING) {
            if (pk_buf_space(&st->out) > 0) {
                int r = st->ops->produce(st->ctx, &st->out, &err);
                if (stream_gone(st)) {
                    return;
                }
                if (r != 0) {
                    stream_set_fail(st, r, err.msg[0] ? err.msg : pk_err_str(r));
                    return;
                }
            }
        }
        if (st->out.len == 0) {
            return;
        }
        int n = wolfSSL_write(st->ssl, st->out.data, (int)PK_MIN(st->out.len, STREAM_WRITE_CHUNK));
        if (n > 0) {
            pk_buf_consume(&st->out, (size_t)n);
            continue;
        }
        enum pk_tlsio_outcome o = pk_tlsio_outcome(&st->io, st->ssl, n);
        if (o == PK_TLSIO_WANT_WRITE) {
            return;
        }
        if (o == PK_TLSIO_WANT_READ) {
            st->write_wants_read = true;
            return;
        }
        stream_tls_error(st, n, "TLS write failed");
        return;
    }
}

static void stream_read(struct pk_tls_stream *st)
{
    uint8_t buf[STREAM_READ_CHUNK];
    struct pk_err err = {{0}};

    st->read_wants_write = false;
    for (int i = 0; i < STREAM_READS_PER_RUN; i++) {
        if (pk_buf_space(&st->out) == 0) {
            return; /* backpressure: the peer must read first */
        }
        int n = wolfSSL_read(st->ssl, buf, sizeof(buf));
        if (n > 0) {
            int r = st->ops->recv(st->ctx, buf, (size_t)n, &err);
            if (stream_gone(st)) {
                return;
            }
            if (r != 0) {
                /* Flush what the protocol still has to say (a GOAWAY), then end. */
                stream_begin_close(st, r, err.msg[0] ? err.msg : pk_err_str(r));
                return;
            }
            if (st->state != ST_OPEN) {
                return; /* the owner began closing: stop taking input */
            }
            stream_flush(st);
            if (stream_gone(st)) {
                return;
            }
            continue;
        }
        enum pk_tlsio_outcome o = pk_tlsio_outcome(&st->io, st->ssl, n);
        if (o == PK_TLSIO_WANT_READ) {
            return;
        }
        if (o == PK_TLSIO_WANT_WRITE) {
            st->read_wants_write = true;
            return;
        }
        stream_tls_error(st, n, "TLS read failed");
        return;
    }
    /* Budget used up with data possibly still buffered in wolfSSL: come back soon. */
    if (wolfSSL_pending(st->ssl) > 0) {
        ev_feed_event(st->loop, &st->rio, EV_READ);
    }
}

/* FLUSHING: once all output is written, send close_notify (tlsio's rules: once, the rest
 * when writable) and half-close. */
static void stream_shutdown(struct pk_tls_stream *st)
{
    if (st->out.len > 0) {
        return;
    }
    st->shutdown_wants_write = false;
    if (pk_tlsio_shutdown(&st->io, st->ssl) == PK_TLSIO_WANT_WRITE) {
        st->shutdown_wants_write = true;
        return;
    }
    /* Sent, or the peer is gone already: nothing left to say either way. */
    shutdown(st->fd, SHUT_WR);
    st->state = ST_DRAINING;
}

/* DRAINING: discard input until the peer's FIN. */
static void stream_drain(struct pk_tls_stream *st)
{
    uint8_t buf[4096];

    for (int i = 0; i < STREAM_READS_PER_RUN; i++) {
        ssize_t n = recv(st->fd, buf, sizeof(buf), 0);
        if (n > 0) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            return;
        }
        break; /* FIN or error: done */
    }
    stream_set_fail(st, st->final_code, st->final_msg);
}

static void stream_update_watchers(struct pk_tls_stream *st)
{
    bool want_read = false;
    bool want_write = false;

    switch (st->state) {
    case ST_HANDSHAKE:
        want_read = st->hs_want == PK_TLSIO_WANT_READ;
        want_write = st->hs_want == PK_TLSIO_WANT_WRITE;
        break;
    case ST_OPEN:
        want_read = (!st->read_wants_write && pk_buf_space(&st->out) > 0) || st->write_wants_read;
        want_write = (st->out.len > 0 && !st->write_wants_read) || st->read_wants_write;
        break;
    case ST_FLUSHING:
        want_read = st->write_wants_read;
        want_write = st->out.len > 0 || st->shutdown_wants_write;
        break;
    case ST_DRAINING:
        want_read = true;
        break;
    case ST_DONE:
        break;
    }
    if (want_read != ev_is_active(&st->rio)) {
        if (want_read) {
            ev_io_start(st->loop, &st->rio);
        } else {
            ev_io_stop(st->loop, &st->rio);
        }
    }
    if (want_write != ev_is_active(&st->wio)) {
        if (want_write) {
            ev_io_start(st->loop, &st->wio);
        } else {
            ev_io_stop(st->loop, &st->wio);
        }
    }
}

static bool stream_finished(struct pk_tls_stream *st)
{
    return st->ops->finished != NULL && st->ops->finished(st->ctx);
}

/* The one place that moves bytes. Called with a hold. */
static void stream_run(struct pk_tls_stream *st)
{
    if (st->state == ST_HANDSHAKE && !stream_gone(st)) {
        stream_handshake(st);
    }
    if (st->state == ST_OPEN && !stream_gone(st)) {
        stream_flush(st);
        if (!stream_gone(st)) {
            stream_read(st);
        }
        if (!stream_gone(st) && st->state == ST_OPEN) {
            stream_flush(st);
        }
        if (!stream_gone(st) && st->state == ST_OPEN && st->out.len == 0 && stream_finished(st)) {
            stream_begin_close(st, 0, "");
        }
    }
    if (st->state == ST_FLUSHING && !stream_gone(st)) {
        stream_flush(st);
        if (!stream_gone(st)) {
            stream_shutdown(st);
        }
    }
    if (st->state == ST_DRAINING && !stream_gone(st)) {
        stream_drain(st);
    }
    if (st->io.progress) {
        st->io.progress = false;
        st->last_activity = ev_now(st->loop); /* the loop's time: the same all run long */
    }
    if (st->doomed || st->closed_called) {
        return;
    }
    if (st->fail_pending) {
        stream_finish(st, st->final_code, st->final_msg);
        return;
    }
    stream_update_watchers(st);
}

static void stream_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pk_tls_stream *st = w->data;

    PK_ASSERT(st != NULL && st->magic == STREAM_MAGIC);
    stream_hold(st);
    stream_run(st);
    stream_release(st);
}

static void stream_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pk_tls_stream *st = w->data;

    PK_ASSERT(st != NULL && st->magic == STREAM_MAGIC);
    stream_hold(st);
    switch (st->state) {
    case ST_HANDSHAKE:
        stream_set_fail(st, PK_E_TIMEOUT, "TLS handshake timed out");
        break;
    case ST_OPEN: {
        ev_tstamp idle = ev_now(loop) - st->last_activity;
        if (idle >= st->cfg.idle_timeout) {
            stream_set_fail(st, PK_E_TIMEOUT, "connection idle for too long");
        } else {
            ev_timer_set(&st->timer, st->cfg.idle_timeout - idle, 0.);
            ev_timer_start(loop, &st->timer);
        }
        break;
    }
    case ST_FLUSHING:
    case ST_DRAINING:
        /* Linger over: finish with whatever the close was for. */
        stream_set_fail(st, st->final_code, st->final_msg);
        break;
    case ST_DONE:
        break;
    }
    stream_run(st);
    stream_release(st);
}

int pk_tls_stream_new(struct ev_loop *loop, int fd, WOLFSSL *ssl,
                      const struct pk_tls_stream_config *cfg, const struct pk_tls_stream_ops *ops,
                      void *ctx, struct pk_tls_stream **out, struct pk_err *err)
{
    struct pk_tls_stream *st;

    if (fd < 0 || ssl == NULL || ops == NULL || ops->handshake_done == NULL || ops->recv == NULL ||
        ops->produce == NULL || ops->closed == NULL) {
        return pk_err_set(err, PK_E_INVALID, "TLS stream needs a socket, a WOLFSSL and ops");
    }
    st = pk_xcalloc(1, sizeof(*st));
    st->magic = STREAM_MAGIC;
    st->loop = loop;
    st->fd = fd;
    st->ssl = ssl;
    st->cfg = *cfg;
    st->cfg.alpn = NULL;
    if (st->cfg.handshake_timeout <= 0) {
        st->cfg.handshake_timeout = STREAM_DEFAULT_HS;
    }
    if (st->cfg.out_max == 0) {
        st->cfg.out_max = STREAM_DEFAULT_OUTMAX;
    }
    if (cfg->alpn != NULL) {
        st->alpn = pk_xstrdup(cfg->alpn);
    }
    st->ops = ops;
    st->ctx = ctx;
    st->state = ST_HANDSHAKE;
    pk_buf_init(&st->out, st->cfg.out_max);
    pk_tlsio_attach(&st->io, ssl, fd, false);
    ev_io_init(&st->rio, stream_io_cb, fd, EV_READ);
    ev_io_init(&st->wio, stream_io_cb, fd, EV_WRITE);
    ev_timer_init(&st->timer, stream_timer_cb, st->cfg.handshake_timeout, 0.);
    st->rio.data = st;
    st->wio.data = st;
    st->timer.data = st;
    *out = st;
    return 0;
}

void pk_tls_stream_start(struct pk_tls_stream *st)
{
    PK_ASSERT(st->magic == STREAM_MAGIC);
    ev_timer_start(st->loop, &st->timer);
    pk_tls_stream_kick(st);
}

void pk_tls_stream_kick(struct pk_tls_stream *st)
{
    PK_ASSERT(st->magic == STREAM_MAGIC);
    if (st->holds > 0 || st->closed_called) {
        return; /* the running callback flushes before it returns */
    }
    stream_hold(st);
    stream_run(st);
    stream_release(st);
}

void pk_tls_stream_close(struct pk_tls_stream *st)
{
    PK_ASSERT(st->magic == STREAM_MAGIC);
    if (st->closed_called) {
        return;
    }
    stream_begin_close(st, 0, "");
    pk_tls_stream_kick(st);
}

void pk_tls_stream_fail(struct pk_tls_stream *st, int code, const char *msg)
{
    PK_ASSERT(st->magic == STREAM_MAGIC);
    stream_set_fail(st, code, msg);
    pk_tls_stream_kick(st);
}

bool pk_tls_stream_is_closed(const struct pk_tls_stream *st)
{
    return st->closed_called || st->fail_pending;
}

struct pk_tls_stream *pk_tls_stream_free(struct pk_tls_stream *st)
{
    if (st == NULL) {
        return NULL;
    }
    PK_ASSERT(st->magic == STREAM_MAGIC);
    if (st->holds > 0) {
        st->doomed = true;
        ev_io_stop(st->loop, &st->rio);
        ev_io_stop(st->loop, &st->wio);
        ev_timer_stop(st->loop, &st->timer);
        return NULL;
    }
    stream_destroy(st);
    return NULL;
}
