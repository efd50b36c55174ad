/* SPDX-License-Identifier: Apache-2.0 */
/* picket: one proxied connection — two sockets, two bounded buffers, explicit phases.
 *
 * Implementation notes. "acc" is the accepted socket, "tgt" the one we connect; one of them is
 * the "tls" side (acc inbound, tgt outbound) and the other the "plain" side. Two rings carry
 * the bytes: to_plain holds what wolfSSL_read returned, to_tls what recv() returned on the plain
 * side. bytes_in counts bytes written to tgt, bytes_out bytes written to acc (the PROXY header
 * excluded).
 *
 * Every I/O operation (connect, handshake, TLS read, TLS write, close_notify, plain read, plain
 * write) is either free to run or blocked on one event of its socket: the EV_READ/EV_WRITE that
 * EAGAIN or wolfSSL's WANT_READ/WANT_WRITE asked for. A watcher event unblocks the operations
 * waiting for it, then run() tries every unblocked operation that has work, round after round,
 * until nothing moves, and starts exactly the watchers that the blocked operations need. An
 * operation without work (its ring full, its side at EOF) is not blocked, only not tried: that
 * is backpressure, and its socket is not watched for it. Bytes that wolfSSL holds already
 * decrypted (wolfSSL_pending) or still encrypted in its input buffer are reached the same way:
 * a TLS read is tried whenever to_plain has room and the last read did not say WANT_READ, which
 * wolfSSL only says when it holds no complete record — never by waiting for the socket.
 *
 * Before authorization nothing reads application data: inbound, the TLS side only runs the
 * handshake (wolfSSL_negotiate) and the target is not connected; outbound, the plain side is
 * not watched or read at all, so what the app wrote waits in the kernel.
 *
 * Entry points (watchers, timers, pk_conn_close) hold the connection; a failure only records
 * its reason, and the release of the outermost hold tears everything down and calls closed()
 * last, with the summary on the stack, so that closed() may free whatever it likes. */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/pem.h"
#include "common/tls.h"
#include "common/tlsio.h"
#include "proxy/proxy_v2.h"
#include "proxy/recheck.h"
#include "proxy/ring.h"
#include "proxy/summary.h"

#define CONN_MAGIC 0x434f4e4eu /* "CONN" */

#define DEFAULT_CONNECT_TIMEOUT   5.0
#define DEFAULT_HANDSHAKE_TIMEOUT 10.0
#define DEFAULT_IDLE_TIMEOUT      300.0
#define DEFAULT_BUFFER_SIZE       (16u * 1024u)
/* The PROXY v2 header is queued in to_plain before any payload, so a ring always fits it. */
#define MIN_BUFFER_SIZE 1024u
/* Rounds of run() before yielding to the loop, so one busy connection cannot starve the
 * others of its worker; the rest continues from a zero timer. */
#define RUN_ROUNDS 16

#define PP2_HEADER_MAX PK_PROXY_V2_HEADER_MAX(sizeof(((struct pk_conn_summary *)0)->peer_id))

enum phase {
    PH_CONNECT,   /* TCP connect to the target (outbound first; inbound after authorization) */
    PH_HANDSHAKE, /* TLS handshake, then authorization */
    PH_STREAM,    /* copying both ways, half-closes included */
};

struct side {
    int fd;
    ev_io r;
    ev_io w;
    const char *name; /* "client" (acc) or "target" (tgt), for details */
};

struct pk_conn {
    unsigned magic;
    struct ev_loop *loop;
    enum pk_conn_dir dir;
    enum phase phase;
    struct side acc;
    struct side tgt;
    struct side *tls;   /* &acc inbound, &tgt outbound */
    struct side *plain; /* the other one */

    struct sockaddr_storage peer; /* the accepted socket's peer, for the PROXY header */
    struct pk_identity *identity; /* our reference */
    WOLFSSL *ssl;                 /* on tls->fd once it exists */
    struct sockaddr_storage target;
    socklen_t target_len;
    struct pk_addrset *targets; /* a DNS name's addresses, or NULL */
    size_t target_first, target_attempt;
    char *sni;
    pk_conn_authorize_fn authorize;
    void *authorize_ctx;
    bool proxy_protocol;
    bool close_on_peer_expiry;
    bool close_on_own_expiry;
    uint32_t mark;
    struct pk_conn_limits limits;
    void (*closed)(void *ctx, const struct pk_conn_summary *summary);
    void (*established)(void *ctx, struct pk_conn *c);
    void *cb_ctx;
    struct pk_cert *peer_leaf;           /* set once authorized */
    struct pk_tls_peer_chain peer_chain; /* what the peer sent, leaf first (kept: re-checks) */

    ev_timer t_connect;
    ev_timer t_handshake;
    ev_timer t_idle;
    ev_timer t_lifetime;
    ev_timer t_kick;
    /* Wall-clock, not monotonic: the peer's notAfter is a calendar time. */
    ev_periodic t_expiry;
    ev_tstamp last_activity;
    struct timespec started;

    struct pk_ring to_plain;
    struct pk_ring to_tls;
    size_t proxy_hdr_left; /* header bytes at the front of to_plain, not counted as payload */

    /* What each blocked operation waits for: 0, EV_READ or EV_WRITE. */
    int connect_want;
    int hs_want;
    int tls_rd_want;
    int tls_wr_want;
    int tls_sd_want;
    int plain_rd_want;
    int plain_wr_want;

    bool connect_started;
    bool hs_done;
    size_t tls_wr_pending; /* length given to a wolfSSL_write that must be repeated */
    bool tls_eof;          /* close_notify (or a bare FIN) received */
    bool tls_bare_fin;     /* ... and it was a FIN without close_notify */
    bool tls_wr_shut;      /* no more writes: our close_notify is under way */
    bool tls_sd_done;      /* ... and all of it is in the kernel (or the peer is gone) */
    bool plain_eof;
    bool plain_wr_shut;
    bool tls_broken; /* TLS or socket failure: no close_notify at teardown */

    struct pk_tlsio tlsio; /* the TLS side's socket I/O (common/tlsio) */

    unsigned holds;
    bool finishing;
    struct pk_conn_summary sum;
    struct pk_live_bytes *live_bytes; /* NULL = none */
};

/* ---- formatting ------------------------------------------------------------------------------ */

static void format_addr(const struct sockaddr_storage *ss, socklen_t len, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN];

    if (ss->ss_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(out, n, "%s:%u", ip, ntohs(sin->sin_port));
    } else if (ss->ss_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        snprintf(out, n, "[%s]:%u", ip, ntohs(sin6->sin6_port));
    } else if (ss->ss_family == AF_UNIX) {
        snprintf(out, n, "unix");
    } else {
        snprintf(out, n, "unknown");
    }
}

/* ---- lifetime: holds, failure, teardown --------------------------------------------------- */

static void conn_hold(struct pk_conn *c)
{
    c->holds++;
}

/* Record why the connection ends; the first reason wins. The outermost release acts. */
#define conn_fail(c, reason, ...)                                                                  \
    pk_conn_summary_fail(&(c)->sum, &(c)->finishing, (reason), __VA_ARGS__)

static void side_stop(struct pk_conn *c, struct side *s)
{
    ev_io_stop(c->loop, &s->r);
    ev_io_stop(c->loop, &s->w);
}

/* A peer that finished its handshake hears close_notify when we end the conversation
 * ourselves (denied, timeouts, shutdown), not after an error or a reset: a close_notify there
 * would pass an aborted stream off as a complete one. One non-blocking attempt. */
static void teardown_close_notify(struct pk_conn *c)
{
    switch (c->sum.reason) {
    case PK_CLOSE_DENIED:
    case PK_CLOSE_IDLE_TIMEOUT:
    case PK_CLOSE_LIFETIME:
    case PK_CLOSE_PEER_EXPIRED:
    case PK_CLOSE_OWN_EXPIRED:
    case PK_CLOSE_SHUTDOWN:
    case PK_CLOSE_UNTRUSTED:
        break;
    default:
        return;
    }
    if (c->ssl == NULL || !c->hs_done || c->tls_broken) {
        return;
    }
    (void)pk_tlsio_shutdown(&c->tlsio, c->ssl); /* or the rest of it */
}

static void conn_destroy(struct pk_conn *c)
{
    struct pk_conn_summary sum;
    void (*closed)(void *, const struct pk_conn_summary *) = c->closed;
    void *ctx = c->cb_ctx;
    struct timespec now;

    side_stop(c, &c->acc);
    side_stop(c, &c->tgt);
    ev_timer_stop(c->loop, &c->t_connect);
    ev_timer_stop(c->loop, &c->t_handshake);
    ev_timer_stop(c->loop, &c->t_idle);
    ev_timer_stop(c->loop, &c->t_lifetime);
    ev_timer_stop(c->loop, &c->t_kick);
    ev_periodic_stop(c->loop, &c->t_expiry);
    teardown_close_notify(c);
    if (c->ssl != NULL) {
        wolfSSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->acc.fd >= 0) {
        close(c->acc.fd);
    }
    if (c->tgt.fd >= 0) {
        close(c->tgt.fd);
    }
    /* After wolfSSL_free: the identity's reference keeps the WOLFSSL_CTX alive until then. */
    pk_identity_unref(c->identity);
    pk_addrset_unref(c->targets);
    pk_cert_free(c->peer_leaf);
    pk_tls_peer_chain_clear(&c->peer_chain);
    pk_ring_release(&c->to_plain);
    pk_ring_release(&c->to_tls);
    pk_tlsio_clear(&c->tlsio);
    free(c->sni);
    sum = c->sum;
    clock_gettime(CLOCK_MONOTONIC, &now);
    sum.duration = (double)(now.tv_sec - c->started.tv_sec) +
                   (double)(now.tv_nsec - c->started.tv_nsec) / 1e9;
    c->magic = 0;
    free(c);
    closed(ctx, &sum);
}

static void conn_release(struct pk_conn *c)
{
    PK_ASSERT(c->holds > 0);
    c->holds--;
    if (c->holds == 0 && c->finishing) {
        conn_destroy(c);
    }
}

/* The socket event a blocked TLS operation waits for: EV_READ, EV_WRITE, or 0 when the outcome
 * is not a wait. */
static int want_events(enum pk_tlsio_outcome o)
{
    return o == PK_TLSIO_WANT_READ ? EV_READ : o == PK_TLSIO_WANT_WRITE ? EV_WRITE : 0;
}

/* A WOLFSSL for the TLS side, speaking through common/tlsio. 0 or pk_tls_session_new's
 * error. */
static int tls_session(struct pk_conn *c, struct pk_tls_ctx *ctx, struct pk_err *err)
{
    int rc = pk_tls_session_new(ctx, c->tls->fd, c->sni, &c->ssl, err);
    if (rc != 0) {
        return rc;
    }
    /* Read-ahead: a handshake flight or a small record costs one recvmsg() (common/tlsio). */
    pk_tlsio_attach(&c->tlsio, c->ssl, c->tls->fd, true);
    pk_tls_session_record_peer_chain(ctx, c->ssl, &c->peer_chain);
    return 0;
}

/* Classify a failed wolfSSL call (ret) on the TLS side. */
static void tls_fail(struct pk_conn *c, int ret, enum pk_conn_close_reason tls_reason,
                     const char *what)
{
    enum pk_conn_close_reason socket_reason =
            c->phase == PH_HANDSHAKE ? PK_CLOSE_HANDSHAKE_FAILED : PK_CLOSE_RESET;
    char text[192];

    c->tls_broken = true;
    if (pk_tlsio_refused(&c->tlsio) != NULL) {
        conn_fail(c, PK_CLOSE_HANDSHAKE_FAILED, "%s %s: refused before the handshake: %s", what,
                  c->tls->name, pk_tlsio_refused(&c->tlsio));
        return;
    }
    pk_tlsio_error_text(&c->tlsio, c->ssl, ret, text, sizeof(text));
    if (c->tlsio.io_errno == 0 && c->tlsio.peer_eof) {
        conn_fail(c, socket_reason, "%s %s: connection closed by the %s", what, c->tls->name,
                  c->tls->name);
        return;
    }
    conn_fail(c, c->tlsio.io_errno != 0 ? socket_reason : tls_reason, "%s %s: %s", what,
              c->tls->name, text);
}

/* ---- phases ------------------------------------------------------------------------------- */

static void side_init(struct pk_conn *c, struct side *s, int fd);

static void start_streaming(struct pk_conn *c);

static void set_nodelay(int fd)
{
    int one = 1;
    /* Interactive protocols pass through us; Nagle would add a round trip. Fails harmlessly
     * on unix sockets. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Connecting to the current address failed (why): when the target is a DNS name with addresses
 * not tried yet, drop this socket and make the next address current, so that the next step
 * connects to it; false when there is none left. */
static bool connect_next(struct pk_conn *c, const char *why)
{
    size_t i;

    if (c->targets == NULL || c->target_attempt + 1 >= c->targets->n) {
        return false;
    }
    PK_LOG_INFO("connect to an address of the target failed error=\"%s\"; trying the next one "
                "(%zu of %zu)",
                why, c->target_attempt + 2, c->targets->n);
    side_stop(c, &c->tgt);
    close(c->tgt.fd);
    c->tgt.fd = -1;
    ev_timer_stop(c->loop, &c->t_connect);
    c->target_attempt++;
    i = pk_addrset_pick(c->targets->n, c->target_first, c->target_attempt);
    memcpy(&c->target, &c->targets->addr[i], c->targets->len[i]);
    c->target_len = c->targets->len[i];
    c->connect_started = false;
    c->connect_want = 0;
    return true;
}

/* Issue the non-blocking connect(). Returns true when something changed. */
static bool connect_begin(struct pk_conn *c)
{
    int fd;

    c->connect_started = true;
    fd = socket(c->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        conn_fail(c, PK_CLOSE_CONNECT_FAILED, "socket: %s", strerror(errno));
        return false;
    }
    side_init(c, &c->tgt, fd);
    if (c->mark != 0 && setsockopt(fd, SOL_SOCKET, SO_MARK, &c->mark, sizeof(c->mark)) != 0) {
        conn_fail(c, PK_CLOSE_CONNECT_FAILED, "SO_MARK %#x: %s", (unsigned)c->mark,
                  strerror(errno));
        return false;
    }
    if (c->limits.connect_timeout > 0) {
        ev_timer_set(&c->t_connect, c->limits.connect_timeout, 0.);
        ev_timer_start(c->loop, &c->t_connect);
    }
    if (connect(fd, (const struct sockaddr *)&c->target, c->target_len) == 0) {
        return true; /* connected already (unix sockets, some loopback cases) */
    }
    if (errno == EINPROGRESS || errno == EINTR) {
        c->connect_want = EV_WRITE;
        return true;
    }
    /* A unix listener with a full backlog says EAGAIN: unreachable, as TCP would time out. */
    if (connect_next(c, strerror(errno))) {
        return true;
    }
    conn_fail(c, PK_CLOSE_CONNECT_FAILED, "connect to target: %s", strerror(errno));
    return false;
}

static bool connect_finish(struct pk_conn *c)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);

    if (getsockopt(c->tgt.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) {
        soerr = errno;
    }
    if (soerr != 0) {
        if (connect_next(c, strerror(soerr))) {
            return true;
        }
        conn_fail(c, PK_CLOSE_CONNECT_FAILED, "connect to target: %s", strerror(soerr));
        return false;
    }
    ev_timer_stop(c->loop, &c->t_connect);
    set_nodelay(c->tgt.fd);
    if (c->dir == PK_CONN_INBOUND) {
        start_streaming(c);
        return true;
    }
    /* Outbound: TLS client on the fresh socket, as our identity. */
    struct pk_err err = {{0}};
    if (tls_session(c, pk_identity_client_tls(c->identity), &err) != 0) {
        conn_fail(c, PK_CLOSE_HANDSHAKE_FAILED, "%s", err.msg);
        return false;
    }
    c->phase = PH_HANDSHAKE;
    ev_timer_set(&c->t_handshake, c->limits.handshake_timeout, 0.);
    ev_timer_start(c->loop, &c->t_handshake);
    return true;
}

static bool step_connect(struct pk_conn *c)
{
    if (!c->connect_started) {
        return connect_begin(c);
    }
    if (c->connect_want != 0) {
        return false;
    }
    return connect_finish(c);
}

/* The handshake is complete: check the peer's leaf and ask authorize(). Nothing of the peer's
 * application data has been read. */
static bool handshake_done(struct pk_conn *c)
{
    struct pk_buf der;
    struct pk_slice leaf_der = {0};
    struct pk_cert *leaf = NULL;
    struct pk_err err = {{0}};
    char id[sizeof(c->sum.peer_id)] = {0};
    bool ok = false;
    int r;

    c->hs_done = true;
    ev_timer_stop(c->loop, &c->t_handshake);
    pk_buf_init(&der, PK_PEM_MAX_DER);
    /* The leaf as the verify callback copied it; wolfSSL's own copy costs a second parse. */
    if (pk_tls_peer_chain_get(&c->peer_chain, 0, &leaf_der)) {
        r = 0;
    } else {
        r = pk_tls_peer_leaf_der(c->ssl, &der);
        leaf_der = pk_buf_slice(&der);
    }
    if (r != 0) {
        conn_fail(c, PK_CLOSE_HANDSHAKE_FAILED, "%s certificate: %s", c->tls->name,
                  r == PK_E_NOTFOUND ? "none sent" : pk_err_str(r));
        goto out;
    }
    r = pk_cert_parse_der(leaf_der.ptr, leaf_der.len, "peer certificate", &leaf, &err);
    if (r != 0) {
        conn_fail(c, PK_CLOSE_HANDSHAKE_FAILED, "%s", err.msg);
        goto out;
    }
    /* wolfSSL verified the chain but not URI name constraints: ours to check. */
    r = pk_peer_name_constraints(leaf, &c->peer_chain, pk_identity_trusted_anchors(c->identity),
                                 &err);
    if (r != 0) {
        conn_fail(c, PK_CLOSE_HANDSHAKE_FAILED, "%s certificate: %s", c->tls->name, err.msg);
        goto out;
    }
    r = c->authorize(c->authorize_ctx, leaf, id, sizeof(id), &err);
    id[sizeof(id) - 1] = '\0';
    /* Kept on denial too when authorize() named the peer: the log line wants it. */
    memcpy(c->sum.peer_id, id, sizeof(id));
    if (r != 0) {
        conn_fail(c, PK_CLOSE_DENIED, "%s", err.msg[0] != '\0' ? err.msg : "peer not authorized");
        goto out;
    }
    c->peer_leaf = leaf;
    leaf = NULL;
    if (c->close_on_peer_expiry || c->close_on_own_expiry) {
        /* One wall-clock timer for whichever of the two expiries comes first. */
        time_t peer_end = pk_cert_not_after(c->peer_leaf);
        time_t own_end = pk_identity_not_after(c->identity);
        time_t end = !c->close_on_own_expiry                          ? peer_end
                     : !c->close_on_peer_expiry || own_end < peer_end ? own_end
                                                                      : peer_end;
        ev_periodic_set(&c->t_expiry, (ev_tstamp)end, 0., NULL);
        ev_periodic_start(c->loop, &c->t_expiry);
    }
    if (c->dir == PK_CONN_INBOUND) {
        c->phase = PH_CONNECT; /* only now may the target see a connection */
    } else {
        start_streaming(c);
    }
    ok = true;
out:
    pk_cert_free(leaf);
    pk_buf_free(&der);
    return ok;
}

static bool step_handshake(struct pk_conn *c)
{
    if (c->hs_want != 0) {
        return false;
    }
    int r = wolfSSL_negotiate(c->ssl);
    if (r == WOLFSSL_SUCCESS) {
        return handshake_done(c);
    }
    c->hs_want = want_events(pk_tlsio_outcome(&c->tlsio, c->ssl, r));
    if (c->hs_want == 0) {
        tls_fail(c, r, PK_CLOSE_HANDSHAKE_FAILED, "TLS handshake with");
    }
    return false;
}

/* The PROXY v2 header for this connection: the client's address and ours. */
static size_t proxy_v2_header(const struct pk_conn *c, uint8_t out[PP2_HEADER_MAX])
{
    struct sockaddr_storage local;
    socklen_t local_len = sizeof(local);

    if (getsockname(c->acc.fd, (struct sockaddr *)&local, &local_len) != 0) {
        local.ss_family = AF_UNSPEC;
    }
    return pk_proxy_v2_header(&c->peer, &local, c->sum.peer_id, out);
}

static void start_streaming(struct pk_conn *c)
{
    /* The rings get memory on their first byte (pk_ring_wr): a connection that never
     * authenticates, or sits idle, costs no buffers. */
    c->to_plain.cap = c->to_tls.cap = c->limits.buffer_size;
    if (c->dir == PK_CONN_INBOUND && c->proxy_protocol) {
        uint8_t hdr[PP2_HEADER_MAX];
        size_t n = proxy_v2_header(c, hdr);
        size_t space;
        uint8_t *p = pk_ring_wr(&c->to_plain, &space);
        PK_ASSERT(space >= n);
        memcpy(p, hdr, n);
        pk_ring_commit(&c->to_plain, n);
        c->proxy_hdr_left = n;
    }
    set_nodelay(c->acc.fd);
    c->phase = PH_STREAM;
    c->sum.streamed = true;
    c->last_activity = ev_now(c->loop);
    if (c->limits.idle_timeout > 0) {
        ev_timer_set(&c->t_idle, c->limits.idle_timeout, 0.);
        ev_timer_start(c->loop, &c->t_idle);
    }
    if (c->established != NULL) {
        c->established(c->cb_ctx, c); /* under the caller's hold: may pk_conn_close(c) */
    }
}

/* ---- streaming ---------------------------------------------------------------------------- */

static void count_to(struct pk_conn *c, const struct side *dst, size_t n)
{
    if (dst == &c->tgt) {
        c->sum.bytes_in += n;
        if (c->live_bytes != NULL) {
            atomic_fetch_add_explicit(&c->live_bytes->in, n, memory_order_relaxed);
        }
    } else {
        c->sum.bytes_out += n;
        if (c->live_bytes != NULL) {
            atomic_fetch_add_explicit(&c->live_bytes->out, n, memory_order_relaxed);
        }
    }
    c->last_activity = ev_now(c->loop);
}

static bool tls_read(struct pk_conn *c)
{
    size_t space;
    uint8_t *p;
    int r;

    if (c->finishing || c->tls_eof || c->tls_rd_want != 0) {
        return false;
    }
    p = pk_ring_wr(&c->to_plain, &space);
    if (space == 0) {
        return false; /* backpressure; wolfSSL keeps the rest until there is room */
    }
    r = wolfSSL_read(c->ssl, p, (int)PK_MIN(space, (size_t)INT_MAX));
    if (r > 0) {
        pk_ring_commit(&c->to_plain, (size_t)r);
        c->last_activity = ev_now(c->loop);
        return true;
    }
    enum pk_tlsio_outcome o = pk_tlsio_outcome(&c->tlsio, c->ssl, r);
    c->tls_rd_want = want_events(o);
    if (c->tls_rd_want != 0) {
        return false;
    }
    if (o == PK_TLSIO_CLOSE_NOTIFY || o == PK_TLSIO_FIN) {
        /* close_notify, or a bare FIN: both end this direction once it is drained (the
         * summary notes the FIN: the stream may have been truncated). */
        c->tls_eof = true;
        c->tls_bare_fin = o == PK_TLSIO_FIN;
        return true;
    }
    tls_fail(c, r, PK_CLOSE_TLS_ERROR, "TLS read from");
    return false;
}

static bool tls_write(struct pk_conn *c)
{
    size_t n;
    uint8_t *p;
    int r;

    if (c->finishing || c->tls_wr_want != 0 || c->tls_wr_shut) {
        return false;
    }
    p = pk_ring_rd(&c->to_tls, &n);
    if (c->tls_wr_pending > 0) {
        n = c->tls_wr_pending; /* wolfSSL wants exactly the same call again */
    }
    if (n == 0) {
        return false;
    }
    n = PK_MIN(n, (size_t)INT_MAX);
    r = wolfSSL_write(c->ssl, p, (int)n);
    if (r > 0) {
        c->tls_wr_pending = 0;
        pk_ring_consume(&c->to_tls, (size_t)r);
        count_to(c, c->tls, (size_t)r);
        return true;
    }
    c->tls_wr_want = want_events(pk_tlsio_outcome(&c->tlsio, c->ssl, r));
    if (c->tls_wr_want != 0) {
        c->tls_wr_pending = n;
        return false;
    }
    tls_fail(c, r, PK_CLOSE_TLS_ERROR, "TLS write to");
    return false;
}

static void plain_fail(struct pk_conn *c, const char *what, int e)
{
    conn_fail(c, PK_CLOSE_RESET, "%s %s: %s", what, c->plain->name, strerror(e));
}

static bool plain_read(struct pk_conn *c)
{
    size_t space;
    uint8_t *p;
    ssize_t n;

    if (c->finishing || c->plain_eof || c->plain_rd_want != 0) {
        return false;
    }
    p = pk_ring_wr(&c->to_tls, &space);
    if (space == 0) {
        return false;
    }
    n = recv(c->plain->fd, p, space, 0);
    if (n > 0) {
        pk_ring_commit(&c->to_tls, (size_t)n);
        c->last_activity = ev_now(c->loop);
        return true;
    }
    if (n == 0) {
        c->plain_eof = true;
        return true;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        c->plain_rd_want = EV_READ;
        return false;
    }
    if (errno == EINTR) {
        return true;
    }
    plain_fail(c, "reading from", errno);
    return false;
}

static bool plain_write(struct pk_conn *c)
{
    size_t len;
    uint8_t *p;
    ssize_t n;

    if (c->finishing || c->plain_wr_want != 0 || c->plain_wr_shut) {
        return false;
    }
    p = pk_ring_rd(&c->to_plain, &len);
    if (len == 0) {
        return false;
    }
    n = send(c->plain->fd, p, len, MSG_NOSIGNAL);
    if (n > 0) {
        size_t payload = (size_t)n;
        size_t hdr = PK_MIN(payload, c->proxy_hdr_left);
        c->proxy_hdr_left -= hdr;
        pk_ring_consume(&c->to_plain, (size_t)n);
        count_to(c, c->plain, payload - hdr);
        return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        c->plain_wr_want = EV_WRITE;
        return false;
    }
    if (n < 0 && errno == EINTR) {
        return true;
    }
    plain_fail(c, "writing to", n < 0 ? errno : EIO);
    return false;
}

/* The plain side ended and everything it sent is written: say close_notify, once (tlsio's
 * rules), the rest of it when the socket is writable again. */
static bool tls_close_notify(struct pk_conn *c)
{
    bool first = !c->tls_wr_shut;

    if (!c->plain_eof || c->to_tls.len != 0 || c->tls_sd_done || c->tls_sd_want != 0) {
        return false;
    }
    c->tls_wr_shut = true;
    int r = pk_tlsio_shutdown(&c->tlsio, c->ssl);
    if (r == 0 || (r == PK_TLSIO_FAILED && c->tls_eof)) {
        /* Sent; or the peer is gone already (a bare FIN): nobody to tell. */
        c->tls_sd_done = true;
        return true;
    }
    if (r == PK_TLSIO_WANT_WRITE) {
        c->tls_sd_want = EV_WRITE;
        return first;
    }
    if (r == PK_TLSIO_FAILED) {
        tls_fail(c, WOLFSSL_FATAL_ERROR, PK_CLOSE_TLS_ERROR, "sending close_notify to");
        return false;
    }
    c->tls_broken = true;
    conn_fail(c, PK_CLOSE_RESET, "sending close_notify to %s: %s", c->tls->name, strerror(-r));
    return false;
}

/* Propagate EOFs once the buffer towards that side is drained. */
static bool half_close(struct pk_conn *c)
{
    bool progress = false;

    if (c->finishing) {
        return false;
    }
    progress |= tls_close_notify(c);
    if (c->finishing) {
        return false;
    }
    if (c->tls_eof && c->to_plain.len == 0 && !c->plain_wr_shut) {
        /* An error here (the target reset already) shows up on the next read. */
        (void)shutdown(c->plain->fd, SHUT_WR);
        c->plain_wr_shut = true;
        progress = true;
    }
    if (c->plain_eof && c->tls_sd_done && c->tls_eof && c->plain_wr_shut) {
        conn_fail(c, PK_CLOSE_DONE, "%s",
                  c->tls_bare_fin ? "TLS peer closed without close_notify" : "");
        return false;
    }
    return progress;
}

static bool step_stream(struct pk_conn *c)
{
    bool progress = false;

    progress |= tls_read(c);
    progress |= plain_write(c);
    progress |= plain_read(c);
    progress |= tls_write(c);
    progress |= half_close(c);
    return progress && !c->finishing;
}

/* ---- the driver --------------------------------------------------------------------------- */

static void side_watch(struct pk_conn *c, struct side *s, int events)
{
    if (s->fd < 0) {
        return;
    }
    if (((events & EV_READ) != 0) != (ev_is_active(&s->r) != 0)) {
        if (events & EV_READ) {
            ev_io_start(c->loop, &s->r);
        } else {
            ev_io_stop(c->loop, &s->r);
        }
    }
    if (((events & EV_WRITE) != 0) != (ev_is_active(&s->w) != 0)) {
        if (events & EV_WRITE) {
            ev_io_start(c->loop, &s->w);
        } else {
            ev_io_stop(c->loop, &s->w);
        }
    }
}

static void update_watchers(struct pk_conn *c)
{
    int tls = c->hs_want | c->tls_rd_want | c->tls_wr_want | c->tls_sd_want;
    int plain = c->plain_rd_want | c->plain_wr_want;
    int acc = 0;
    int tgt = c->connect_want;

    if (c->tls == &c->acc) {
        acc |= tls;
        tgt |= plain;
    } else {
        tgt |= tls;
        acc |= plain;
    }
    side_watch(c, &c->acc, acc);
    side_watch(c, &c->tgt, tgt);
}

/* Called with a hold. */
static void conn_run(struct pk_conn *c)
{
    bool progress = false;

    for (int round = 0; round < RUN_ROUNDS && !c->finishing; round++) {
        switch (c->phase) {
        case PH_CONNECT:
            progress = step_connect(c);
            break;
        case PH_HANDSHAKE:
            progress = step_handshake(c);
            break;
        case PH_STREAM:
            progress = step_stream(c);
            break;
        }
        if (!progress) {
            break;
        }
    }
    if (c->finishing) {
        return;
    }
    if (progress && !ev_is_active(&c->t_kick)) {
        ev_timer_set(&c->t_kick, 0., 0.);
        ev_timer_start(c->loop, &c->t_kick);
    } else {
        /* Waiting for the sockets now: drained buffers need not stay. */
        pk_ring_trim(&c->to_plain);
        pk_ring_trim(&c->to_tls);
        pk_tlsio_trim(&c->tlsio);
    }
    update_watchers(c);
}

static void unblock(int *want, int revents)
{
    if (*want & revents) {
        *want = 0;
    }
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pk_conn *c = w->data;

    (void)loop;
    PK_ASSERT(c != NULL && c->magic == CONN_MAGIC);
    conn_hold(c);
    struct side *s = (w == &c->acc.r || w == &c->acc.w) ? &c->acc : &c->tgt;
    if (revents & EV_ERROR) {
        conn_fail(c, PK_CLOSE_RESET, "event loop error on the %s socket", s->name);
    }
    int ev = revents & (EV_READ | EV_WRITE);
    if (s == &c->tgt) {
        unblock(&c->connect_want, ev);
    }
    if (s == c->tls) {
        unblock(&c->hs_want, ev);
        unblock(&c->tls_rd_want, ev);
        unblock(&c->tls_wr_want, ev);
        unblock(&c->tls_sd_want, ev);
    } else {
        unblock(&c->plain_rd_want, ev);
        unblock(&c->plain_wr_want, ev);
    }
    conn_run(c);
    conn_release(c);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pk_conn *c = w->data;

    (void)revents;
    PK_ASSERT(c != NULL && c->magic == CONN_MAGIC);
    conn_hold(c);
    if (w == &c->t_connect) {
        /* With addresses of a DNS name left, conn_run below connects to the next one. */
        if (!connect_next(c, "timed out")) {
            conn_fail(c, PK_CLOSE_CONNECT_TIMEOUT, "no connection to the target within %gs",
                      c->limits.connect_timeout);
        }
    } else if (w == &c->t_handshake) {
        conn_fail(c, PK_CLOSE_HANDSHAKE_TIMEOUT, "no TLS handshake with the %s within %gs",
                  c->tls->name, c->limits.handshake_timeout);
    } else if (w == &c->t_lifetime) {
        conn_fail(c, PK_CLOSE_LIFETIME, "maximum lifetime of %gs reached", c->limits.max_lifetime);
    } else if (w == &c->t_idle) {
        /* Re-armed lazily rather than on every byte. */
        ev_tstamp idle = ev_now(loop) - c->last_activity;
        if (idle >= c->limits.idle_timeout) {
            conn_fail(c, PK_CLOSE_IDLE_TIMEOUT, "idle for %gs", c->limits.idle_timeout);
        } else {
            ev_timer_set(&c->t_idle, c->limits.idle_timeout - idle, 0.);
            ev_timer_start(loop, &c->t_idle);
        }
    }
    if (!c->finishing) {
        conn_run(c);
    }
    conn_release(c);
}

static void expiry_cb(struct ev_loop *loop, ev_periodic *w, int revents)
{
    struct pk_conn *c = w->data;

    (void)loop;
    (void)revents;
    PK_ASSERT(c != NULL && c->magic == CONN_MAGIC);
    conn_hold(c);
    /* The timer was set for the earlier of the two ends; the same comparison says which. */
    if (c->close_on_own_expiry &&
        (!c->close_on_peer_expiry ||
         pk_identity_not_after(c->identity) <= pk_cert_not_after(c->peer_leaf))) {
        conn_fail(c, PK_CLOSE_OWN_EXPIRED, "our certificate (serial %s) expired",
                  pk_identity_serial_hex(c->identity));
    } else {
        conn_fail(c, PK_CLOSE_PEER_EXPIRED, "the %s's certificate expired", c->tls->name);
    }
    conn_release(c);
}

static void side_init(struct pk_conn *c, struct side *s, int fd)
{
    s->fd = fd;
    ev_io_init(&s->r, io_cb, fd, EV_READ);
    ev_io_init(&s->w, io_cb, fd, EV_WRITE);
    s->r.data = c;
    s->w.data = c;
}

/* ---- public ------------------------------------------------------------------------------- */

static int check_params(const struct pk_conn_params *p, struct pk_err *err)
{
    if (p->fd < 0 || p->identity == NULL || p->authorize == NULL || p->closed == NULL) {
        return pk_err_set(err, PK_E_INVALID,
                          "connection needs a socket, an identity, authorize() and closed()");
    }
    if (p->dir != PK_CONN_INBOUND && p->dir != PK_CONN_OUTBOUND) {
        return pk_err_set(err, PK_E_INVALID, "connection direction %d is unknown", (int)p->dir);
    }
    if (p->targets != NULL) {
        return p->targets->n > 0 ? 0 : pk_err_set(err, PK_E_INVALID, "no target address");
    }
    sa_family_t fam = p->target.ss_family;
    if ((fam != AF_INET && fam != AF_INET6 && fam != AF_UNIX) || p->target_len == 0 ||
        p->target_len > sizeof(p->target)) {
        return pk_err_set(err, PK_E_INVALID, "connection target must be IPv4, IPv6 or unix");
    }
    if (p->peer_len > sizeof(p->peer)) {
        return pk_err_set(err, PK_E_INVALID, "peer address length %u is too large",
                          (unsigned)p->peer_len);
    }
    return 0;
}

static void apply_limits(struct pk_conn_limits *out, const struct pk_conn_limits *in)
{
    static const struct pk_conn_limits defaults = {
            .connect_timeout = DEFAULT_CONNECT_TIMEOUT,
            .handshake_timeout = DEFAULT_HANDSHAKE_TIMEOUT,
            .idle_timeout = DEFAULT_IDLE_TIMEOUT,
            .max_lifetime = 0,
            .buffer_size = DEFAULT_BUFFER_SIZE,
    };

    *out = in != NULL ? *in : defaults;
    /* Zero means "default" for these two: a connection without them could hang forever. */
    if (!(out->connect_timeout > 0)) {
        out->connect_timeout = DEFAULT_CONNECT_TIMEOUT;
    }
    if (!(out->handshake_timeout > 0)) {
        out->handshake_timeout = DEFAULT_HANDSHAKE_TIMEOUT;
    }
    if (out->buffer_size == 0) {
        out->buffer_size = DEFAULT_BUFFER_SIZE;
    }
    out->buffer_size = PK_MAX(out->buffer_size, MIN_BUFFER_SIZE);
    if (!(out->idle_timeout > 0)) {
        out->idle_timeout = 0;
    }
    if (!(out->max_lifetime > 0)) {
        out->max_lifetime = 0;
    }
}

/* A connection in its first phase's state, nothing started. */
static struct pk_conn *conn_new(struct ev_loop *loop, const struct pk_conn_params *p)
{
    struct pk_conn *c = pk_xcalloc(1, sizeof(*c));

    c->magic = CONN_MAGIC;
    c->loop = loop;
    c->dir = p->dir;
    clock_gettime(CLOCK_MONOTONIC, &c->started);
    side_init(c, &c->acc, p->fd);
    c->acc.name = "client";
    c->tgt.fd = -1;
    c->tgt.name = "target";
    c->tls = p->dir == PK_CONN_INBOUND ? &c->acc : &c->tgt;
    c->plain = p->dir == PK_CONN_INBOUND ? &c->tgt : &c->acc;
    c->identity = pk_identity_ref(p->identity);
    if (p->targets != NULL) {
        size_t i = pk_addrset_pick(p->targets->n, p->target_first, 0);
        c->targets = pk_addrset_ref(p->targets);
        c->target_first = p->target_first;
        memcpy(&c->target, &p->targets->addr[i], p->targets->len[i]);
        c->target_len = p->targets->len[i];
    } else {
        memcpy(&c->target, &p->target, p->target_len);
        c->target_len = p->target_len;
    }
    if (p->dir == PK_CONN_OUTBOUND && p->target_sni != NULL && p->target_sni[0] != '\0') {
        c->sni = pk_xstrdup(p->target_sni);
    }
    c->authorize = p->authorize;
    c->authorize_ctx = p->authorize_ctx;
    c->proxy_protocol = p->proxy_protocol;
    c->close_on_peer_expiry = p->close_on_peer_expiry;
    c->close_on_own_expiry = p->close_on_own_expiry;
    c->mark = p->mark;
    apply_limits(&c->limits, p->limits);
    c->closed = p->closed;
    c->live_bytes = p->live_bytes;
    c->established = p->established;
    c->cb_ctx = p->closed_ctx;
    c->sum.listener = p->listener;
    c->sum.reason = PK_CLOSE_SHUTDOWN;
    memcpy(&c->peer, &p->peer, p->peer_len);
    format_addr(&p->peer, p->peer_len, c->sum.peer_addr, sizeof(c->sum.peer_addr));
    ev_timer_init(&c->t_connect, timer_cb, 0., 0.);
    ev_timer_init(&c->t_handshake, timer_cb, 0., 0.);
    ev_timer_init(&c->t_idle, timer_cb, 0., 0.);
    ev_timer_init(&c->t_lifetime, timer_cb, 0., 0.);
    ev_timer_init(&c->t_kick, timer_cb, 0., 0.);
    ev_periodic_init(&c->t_expiry, expiry_cb, 0., 0., NULL);
    c->t_connect.data = c->t_handshake.data = c->t_idle.data = c;
    c->t_lifetime.data = c->t_kick.data = c->t_expiry.data = c;
    return c;
}

int pk_conn_start(struct ev_loop *loop, const struct pk_conn_params *p, struct pk_conn **out,
                  struct pk_err *err)
{
    struct pk_conn *c = NULL;
    int rc;

    rc = check_params(p, err);
    if (rc != 0) {
        if (p->fd >= 0) {
            close(p->fd);
        }
        return rc;
    }
    c = conn_new(loop, p);

    /* The caller promised a non-blocking socket; make sure, as one blocking call would stall
     * every connection of the worker. */
    int fl = fcntl(p->fd, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK) == 0) {
        (void)fcntl(p->fd, F_SETFL, fl | O_NONBLOCK);
    }
    if (p->dir == PK_CONN_INBOUND) {
        rc = tls_session(c, pk_identity_server_tls(c->identity), err);
        if (rc != 0) {
            goto out;
        }
        c->phase = PH_HANDSHAKE;
        ev_timer_set(&c->t_handshake, c->limits.handshake_timeout, 0.);
        ev_timer_start(loop, &c->t_handshake);
    } else {
        c->phase = PH_CONNECT;
    }
    if (c->limits.max_lifetime > 0) {
        ev_timer_set(&c->t_lifetime, c->limits.max_lifetime, 0.);
        ev_timer_start(loop, &c->t_lifetime);
    }
    /* First step on the next loop iteration, so closed() never runs inside pk_conn_start. */
    ev_timer_start(loop, &c->t_kick);
    *out = c;
    c = NULL;
    rc = 0;
out:
    if (c != NULL) {
        ev_timer_stop(loop, &c->t_handshake);
        close(c->acc.fd);
        pk_identity_unref(c->identity);
        free(c->sni);
        c->magic = 0;
        free(c);
    }
    return rc;
}

void pk_conn_close(struct pk_conn *c)
{
    pk_conn_close_because(c, PK_CLOSE_SHUTDOWN, "closed by picket");
}

void pk_conn_close_because(struct pk_conn *c, enum pk_conn_close_reason reason, const char *detail)
{
    PK_ASSERT(c->magic == CONN_MAGIC);
    conn_hold(c);
    conn_fail(c, reason, "%s", detail);
    conn_release(c);
}

const struct pk_tls_peer_chain *pk_conn_peer_chain(const struct pk_conn *c)
{
    PK_ASSERT(c->magic == CONN_MAGIC);
    return &c->peer_chain;
}

bool pk_conn_handshaking(const struct pk_conn *c)
{
    PK_ASSERT(c->magic == CONN_MAGIC);
    return c->phase != PH_STREAM;
}

const struct pk_identity *pk_conn_identity(const struct pk_conn *c)
{
    PK_ASSERT(c->magic == CONN_MAGIC);
    return c->identity;
}

const struct pk_cert *pk_conn_peer_leaf(const struct pk_conn *c)
{
    PK_ASSERT(c->magic == CONN_MAGIC);
    return c->peer_leaf;
}

size_t pk_conn_buffer_bytes(const struct pk_conn *c)
{
    PK_ASSERT(c->magic == CONN_MAGIC);
    return (c->to_plain.p != NULL ? c->to_plain.cap : 0) +
           (c->to_tls.p != NULL ? c->to_tls.cap : 0) + pk_tlsio_buffer_bytes(&c->tlsio);
}
