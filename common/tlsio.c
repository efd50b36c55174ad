/* SPDX-License-Identifier: Apache-2.0 */
/* picket: wolfSSL over a non-blocking socket (see tlsio.h). */
#include "tlsio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "mem.h"
#include "tls.h"

/* Map a hard socket error onto wolfSSL's callback codes, remembering it for pk_tlsio_outcome. */
static int io_hard_error(struct pk_tlsio *io, int e)
{
    io->io_errno = e;
    return e == EPIPE || e == ECONNRESET ? WOLFSSL_CBIO_ERR_CONN_RST : WOLFSSL_CBIO_ERR_GENERAL;
}

/* Hand n received bytes to wolfSSL once the hello guard passed them: n, or an I/O error once it
 * refused, so that wolfSSL never reads what it refused. */
static int io_deliver(struct pk_tlsio *io, const char *buf, size_t n)
{
    if (io->_guard != NULL && pk_hello_guard_pass(&io->_guard, io->fd, buf, n, io->_refused,
                                                  sizeof(io->_refused)) == PK_HELLO_REFUSE) {
        return WOLFSSL_CBIO_ERR_GENERAL;
    }
    return (int)n;
}

/* Serve wolfSSL's ask from the read-ahead, or fill both with one recvmsg(). wolfSSL hears
 * WANT_READ only when the read-ahead is empty. */
static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct pk_tlsio *io = ctx;
    size_t want = (size_t)sz;
    ssize_t n;

    (void)ssl;
    if (io->_refused[0] != '\0') {
        return WOLFSSL_CBIO_ERR_GENERAL;
    }
    if (io->_ra_len > 0) {
        size_t take = PK_MIN(want, io->_ra_len);
        memcpy(buf, io->_ra + io->_ra_off, take);
        io->_ra_off += take;
        io->_ra_len -= take;
        return io_deliver(io, buf, take);
    }
    if (io->_read_ahead && io->_ra == NULL) {
        io->_ra = pk_xmalloc(PK_TLSIO_READ_AHEAD);
    }
    struct iovec iov[2] = {
            {.iov_base = buf, .iov_len = want},
            {.iov_base = io->_ra, .iov_len = io->_read_ahead ? PK_TLSIO_READ_AHEAD : 0},
    };
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = io->_read_ahead ? 2 : 1};
    do {
        n = recvmsg(io->fd, &msg, 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        io->progress = true;
        if ((size_t)n > want) {
            io->_ra_off = 0;
            io->_ra_len = (size_t)n - want;
            return io_deliver(io, buf, want);
        }
        return io_deliver(io, buf, (size_t)n);
    }
    if (n == 0) {
        io->peer_eof = true;
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return WOLFSSL_CBIO_ERR_WANT_READ;
    }
    return io_hard_error(io, errno);
}

/* Send what the kernel refused of our close_notify: 0 when nothing is left, PK_TLSIO_WANT_WRITE
 * when the socket is full, else -errno. */
static int tail_flush(struct pk_tlsio *io)
{
    while (io->_tail_len > 0) {
        ssize_t n = send(io->fd, io->_tail, io->_tail_len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return errno == EAGAIN || errno == EWOULDBLOCK ? PK_TLSIO_WANT_WRITE : -errno;
        }
        io->progress = true;
        memmove(io->_tail, io->_tail + n, io->_tail_len - (size_t)n);
        io->_tail_len -= (size_t)n;
    }
    return 0;
}

/* Keep bytes of the close_notify that the kernel refused; false when they do not fit. */
static bool tail_keep(struct pk_tlsio *io, const char *p, size_t n)
{
    if (!io->_stash || n > PK_TLSIO_TAIL_MAX - io->_tail_len) {
        return false;
    }
    memcpy(io->_tail + io->_tail_len, p, n);
    io->_tail_len += n;
    return true;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct pk_tlsio *io = ctx;
    ssize_t n;

    (void)ssl;
    if (io->_refused[0] != '\0') {
        /* The guard's alert is the only answer: nothing of wolfSSL's follows it. */
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    }
    /* Whatever wolfSSL sends next must follow the stashed bytes. */
    int t = tail_flush(io);
    if (t < 0) {
        return io_hard_error(io, -t);
    }
    if (t == PK_TLSIO_WANT_WRITE) {
        return tail_keep(io, buf, (size_t)sz) ? sz : WOLFSSL_CBIO_ERR_WANT_WRITE;
    }
    do {
        n = send(io->fd, buf, (size_t)sz, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        return io_hard_error(io, errno);
    }
    n = PK_MAX(n, 0);
    if (n > 0) {
        io->progress = true;
    }
    /* Inside pk_tlsio_shutdown: the rest of the alert is ours to send, as asking wolfSSL again
     * would queue a second one. */
    if (tail_keep(io, buf + n, (size_t)(sz - n))) {
        return sz;
    }
    return n > 0 ? (int)n : WOLFSSL_CBIO_ERR_WANT_WRITE;
}

void pk_tlsio_attach(struct pk_tlsio *io, WOLFSSL *ssl, int fd, bool read_ahead)
{
    memset(io, 0, sizeof(*io));
    io->fd = fd;
    io->_read_ahead = read_ahead;
    io->_guard =
            pk_hello_guard_new(wolfSSL_GetSide(ssl) == WOLFSSL_SERVER_END ? PK_HELLO_PEER_CLIENT
                                                                          : PK_HELLO_PEER_SERVER);
    wolfSSL_SSLSetIORecv(ssl, io_recv);
    wolfSSL_SSLSetIOSend(ssl, io_send);
    wolfSSL_SetIOReadCtx(ssl, io);
    wolfSSL_SetIOWriteCtx(ssl, io);
}

void pk_tlsio_trim(struct pk_tlsio *io)
{
    if (io->_ra_len == 0) {
        free(io->_ra);
        io->_ra = NULL;
    }
}

void pk_tlsio_clear(struct pk_tlsio *io)
{
    pk_hello_guard_destroy(&io->_guard);
    free(io->_ra);
    io->_ra = NULL;
    io->_ra_len = io->_ra_off = 0;
    io->_tail_len = 0;
}

size_t pk_tlsio_buffer_bytes(const struct pk_tlsio *io)
{
    return io->_ra != NULL ? PK_TLSIO_READ_AHEAD : 0;
}

const char *pk_tlsio_refused(const struct pk_tlsio *io)
{
    return io->_refused[0] != '\0' ? io->_refused : NULL;
}

enum pk_tlsio_outcome pk_tlsio_outcome(const struct pk_tlsio *io, WOLFSSL *ssl, int ret)
{
    switch (wolfSSL_get_error(ssl, ret)) {
    case WOLFSSL_ERROR_WANT_READ:
        return PK_TLSIO_WANT_READ;
    case WOLFSSL_ERROR_WANT_WRITE:
        return PK_TLSIO_WANT_WRITE;
    case WOLFSSL_ERROR_ZERO_RETURN:
        return PK_TLSIO_CLOSE_NOTIFY;
    default:
        return io->peer_eof && io->io_errno == 0 ? PK_TLSIO_FIN : PK_TLSIO_FAILED;
    }
}

const char *pk_tlsio_error_text(const struct pk_tlsio *io, WOLFSSL *ssl, int ret, char *buf,
                                size_t len)
{
    char text[128];
    int e;

    if (io->io_errno != 0) {
        snprintf(buf, len, "%s", strerror(io->io_errno));
        return buf;
    }
    e = wolfSSL_get_error(ssl, ret);
    pk_tls_strerror(e, text, sizeof(text));
    snprintf(buf, len, "wolfSSL error %d (%s)", e, text);
    return buf;
}

int pk_tlsio_shutdown(struct pk_tlsio *io, WOLFSSL *ssl)
{
    if (!io->_shutdown_called) {
        io->_shutdown_called = true;
        io->_stash = true;
        int r = wolfSSL_shutdown(ssl);
        io->_stash = false;
        /* WANT_WRITE cannot happen (the alert fits the tail) and must not be retried: it
         * would queue a second alert. Any failure leaves nothing to say. */
        io->_shutdown_failed = r != WOLFSSL_SUCCESS && r != WOLFSSL_SHUTDOWN_NOT_DONE;
    }
    return io->_shutdown_failed ? PK_TLSIO_FAILED : tail_flush(io);
}

bool pk_tlsio_shutdown_called(const struct pk_tlsio *io)
{
    return io->_shutdown_called;
}
