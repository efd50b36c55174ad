/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the plaintext relay.
 *
 * Implementation notes. "a" is the accepted socket, "b" the target. Each direction (a2b,
 * b2a) has one buffer that is either being filled (empty: read the source) or drained (not
 * empty: write the destination), never both; that keeps the copy loop short at the cost of
 * overlapping a read with a write, which plaintext we merely let through does not need. The
 * watchers are level-triggered and follow the state: a source is watched for reading while its
 * buffer is empty and it has not ended, a destination for writing while its buffer holds bytes.
 * Every event runs pump(), which tries each step without blocking until nothing moves. A
 * failure marks the relay finishing; the callback that noticed it tears it down last. */
#include "proxy/relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "proxy/summary.h"

#define RELAY_MAGIC             0x52454c59u /* "RELY" */
#define DEFAULT_CONNECT_TIMEOUT 5.0
#define DEFAULT_BUFFER_SIZE     (16u * 1024u)

struct dir {
    uint8_t *buf;
    size_t off, len;
    bool src_eof;  /* the source sent FIN */
    bool dst_shut; /* shutdown(SHUT_WR) done on the destination */
};

struct pk_relay {
    unsigned magic;
    struct ev_loop *loop;
    int a, b;
    ev_io ar, aw, br, bw;
    ev_timer t_kick, t_connect, t_idle, t_life;
    bool started, connected, finishing;
    struct sockaddr_storage target;
    socklen_t target_len;
    uint32_t mark;
    struct pk_conn_limits limits;
    struct dir a2b, b2a;
    ev_tstamp last_activity;
    struct timespec t0;
    void (*closed)(void *, const struct pk_conn_summary *);
    void (*established)(void *);
    void *ctx;
    struct pk_conn_summary sum;
    struct pk_live_bytes *live_bytes; /* NULL = none */
};

/* Record why the relay ends; the first reason wins. The callback that noticed it tears down. */
#define relay_fail(r, reason, ...)                                                                 \
    pk_conn_summary_fail(&(r)->sum, &(r)->finishing, (reason), __VA_ARGS__)

static void relay_destroy(struct pk_relay *r)
{
    void (*closed)(void *, const struct pk_conn_summary *) = r->closed;
    void *ctx = r->ctx;
    struct pk_conn_summary sum;
    struct timespec now;

    ev_io_stop(r->loop, &r->ar);
    ev_io_stop(r->loop, &r->aw);
    ev_io_stop(r->loop, &r->br);
    ev_io_stop(r->loop, &r->bw);
    ev_timer_stop(r->loop, &r->t_kick);
    ev_timer_stop(r->loop, &r->t_connect);
    ev_timer_stop(r->loop, &r->t_idle);
    ev_timer_stop(r->loop, &r->t_life);
    close(r->a);
    if (r->b >= 0) {
        close(r->b);
    }
    /* Plaintext, but somebody's data all the same. */
    r->a2b.buf = pk_free_secret(r->a2b.buf, r->limits.buffer_size);
    r->b2a.buf = pk_free_secret(r->b2a.buf, r->limits.buffer_size);
    sum = r->sum;
    clock_gettime(CLOCK_MONOTONIC, &now);
    sum.duration =
            (double)(now.tv_sec - r->t0.tv_sec) + (double)(now.tv_nsec - r->t0.tv_nsec) / 1e9;
    r->magic = 0;
    free(r);
    closed(ctx, &sum);
}

static const char *side_name(const struct pk_relay *r, int fd)
{
    return fd == r->a ? "client" : "target";
}

/* Move bytes of one direction from src to dst. Returns true when something moved. */
static bool pump_dir(struct pk_relay *r, struct dir *d, int src, int dst, uint64_t *count,
                     _Atomic uint64_t *live)
{
    bool moved = false;
    ssize_t n;

    if (d->len == 0 && !d->src_eof) {
        d->off = 0;
        n = recv(src, d->buf, r->limits.buffer_size, 0);
        if (n > 0) {
            d->len = (size_t)n;
            moved = true;
        } else if (n == 0) {
            d->src_eof = true;
            moved = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            relay_fail(r, PK_CLOSE_RESET, "reading from %s: %s", side_name(r, src),
                       strerror(errno));
            return false;
        }
    }
    if (d->len > 0) {
        n = send(dst, d->buf + d->off, d->len, MSG_NOSIGNAL);
        if (n > 0) {
            d->off += (size_t)n;
            d->len -= (size_t)n;
            *count += (uint64_t)n;
            if (live != NULL) {
                atomic_fetch_add_explicit(live, (uint64_t)n, memory_order_relaxed);
            }
            moved = true;
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            relay_fail(r, PK_CLOSE_RESET, "writing to %s: %s", side_name(r, dst), strerror(errno));
            return false;
        }
    }
    if (d->src_eof && d->len == 0 && !d->dst_shut) {
        /* An error here (the other side reset already) shows on its next read. */
        (void)shutdown(dst, SHUT_WR);
        d->dst_shut = true;
        moved = true;
    }
    if (moved) {
        r->last_activity = ev_now(r->loop);
    }
    return moved;
}

static void watch(struct pk_relay *r, ev_io *w, bool on)
{
    if (on && !ev_is_active(w)) {
        ev_io_start(r->loop, w);
    } else if (!on && ev_is_active(w)) {
        ev_io_stop(r->loop, w);
    }
}

static void pump(struct pk_relay *r)
{
    bool moved = true;

    /* Bounded, so one busy relay cannot hold its worker; level-triggered watchers resume it. */
    for (int round = 0; moved && round < 16 && !r->finishing; round++) {
        moved = pump_dir(r, &r->a2b, r->a, r->b, &r->sum.bytes_in,
                         r->live_bytes != NULL ? &r->live_bytes->in : NULL);
        if (!r->finishing) {
            moved |= pump_dir(r, &r->b2a, r->b, r->a, &r->sum.bytes_out,
                              r->live_bytes != NULL ? &r->live_bytes->out : NULL);
        }
    }
    if (r->finishing) {
        return;
    }
    if (r->a2b.dst_shut && r->b2a.dst_shut) {
        relay_fail(r, PK_CLOSE_DONE, "%s", "");
        return;
    }
    watch(r, &r->ar, r->a2b.len == 0 && !r->a2b.src_eof);
    watch(r, &r->bw, r->a2b.len > 0);
    watch(r, &r->br, r->b2a.len == 0 && !r->b2a.src_eof);
    watch(r, &r->aw, r->b2a.len > 0);
}

static void connected(struct pk_relay *r)
{
    int one = 1;

    ev_timer_stop(r->loop, &r->t_connect);
    ev_io_stop(r->loop, &r->bw);
    r->connected = true;
    r->sum.streamed = true;
    (void)setsockopt(r->b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)setsockopt(r->a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    r->a2b.buf = pk_xmalloc(r->limits.buffer_size);
    r->b2a.buf = pk_xmalloc(r->limits.buffer_size);
    r->last_activity = ev_now(r->loop);
    if (r->limits.idle_timeout > 0) {
        ev_timer_set(&r->t_idle, r->limits.idle_timeout, 0.);
        ev_timer_start(r->loop, &r->t_idle);
    }
    if (r->established != NULL) {
        r->established(r->ctx);
    }
    pump(r);
}

static void begin_connect(struct pk_relay *r)
{
    r->started = true;
    r->b = socket(r->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->b < 0) {
        relay_fail(r, PK_CLOSE_CONNECT_FAILED, "socket: %s", strerror(errno));
        return;
    }
    /* The firewall recognises picket's own connections by this mark and lets them pass. */
    if (r->mark != 0 && setsockopt(r->b, SOL_SOCKET, SO_MARK, &r->mark, sizeof(r->mark)) != 0) {
        relay_fail(r, PK_CLOSE_CONNECT_FAILED, "SO_MARK %#x: %s", (unsigned)r->mark,
                   strerror(errno));
        return;
    }
    ev_io_set(&r->br, r->b, EV_READ);
    ev_io_set(&r->bw, r->b, EV_WRITE);
    ev_timer_set(&r->t_connect, r->limits.connect_timeout, 0.);
    ev_timer_start(r->loop, &r->t_connect);
    if (connect(r->b, (const struct sockaddr *)&r->target, r->target_len) == 0) {
        connected(r);
        return;
    }
    if (errno == EINPROGRESS || errno == EINTR) {
        ev_io_start(r->loop, &r->bw);
        return;
    }
    relay_fail(r, PK_CLOSE_CONNECT_FAILED, "connect to target: %s", strerror(errno));
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pk_relay *r = w->data;

    (void)loop;
    (void)revents;
    PK_ASSERT(r != NULL && r->magic == RELAY_MAGIC);
    if (!r->connected) {
        int soerr = 0;
        socklen_t len = sizeof(soerr);
        if (getsockopt(r->b, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) {
            soerr = errno;
        }
        if (soerr != 0) {
            relay_fail(r, PK_CLOSE_CONNECT_FAILED, "connect to target: %s", strerror(soerr));
        } else {
            connected(r);
        }
    } else {
        pump(r);
    }
    if (r->finishing) {
        relay_destroy(r);
    }
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pk_relay *r = w->data;

    (void)revents;
    PK_ASSERT(r != NULL && r->magic == RELAY_MAGIC);
    if (w == &r->t_kick) {
        begin_connect(r);
    } else if (w == &r->t_connect) {
        relay_fail(r, PK_CLOSE_CONNECT_TIMEOUT, "no connection to the target within %gs",
                   r->limits.connect_timeout);
    } else if (w == &r->t_life) {
        relay_fail(r, PK_CLOSE_LIFETIME, "maximum lifetime of %gs reached", r->limits.max_lifetime);
    } else if (w == &r->t_idle) {
        ev_tstamp idle = ev_now(loop) - r->last_activity;
        if (idle >= r->limits.idle_timeout) {
            relay_fail(r, PK_CLOSE_IDLE_TIMEOUT, "idle for %gs", r->limits.idle_timeout);
        } else {
            ev_timer_set(&r->t_idle, r->limits.idle_timeout - idle, 0.);
            ev_timer_start(loop, &r->t_idle);
        }
    }
    if (r->finishing) {
        relay_destroy(r);
    }
}

static void format_peer(const struct sockaddr_storage *ss, socklen_t len, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN];

    if (ss->ss_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(out, n, "%s:%u", ip, ntohs(in->sin_port));
    } else if (ss->ss_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(out, n, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else {
        snprintf(out, n, "unknown");
    }
}

int pk_relay_start(struct ev_loop *loop, const struct pk_relay_params *p, struct pk_relay **out,
                   struct pk_err *err)
{
    struct pk_relay *r;

    if (p->fd < 0 || p->closed == NULL ||
        (p->target.ss_family != AF_INET && p->target.ss_family != AF_INET6) || p->target_len == 0 ||
        p->target_len > sizeof(p->target) || p->peer_len > sizeof(p->peer)) {
        if (p->fd >= 0) {
            close(p->fd);
        }
        return pk_err_set(err, PK_E_INVALID,
                          "relay needs a socket, closed() and an IPv4 or IPv6 target");
    }
    r = pk_xcalloc(1, sizeof(*r));
    r->magic = RELAY_MAGIC;
    r->loop = loop;
    r->a = p->fd;
    r->b = -1;
    r->target = p->target;
    r->target_len = p->target_len;
    r->mark = p->mark;
    if (p->limits != NULL) {
        r->limits = *p->limits;
    }
    if (!(r->limits.connect_timeout > 0)) {
        r->limits.connect_timeout = DEFAULT_CONNECT_TIMEOUT;
    }
    if (r->limits.buffer_size == 0) {
        r->limits.buffer_size = DEFAULT_BUFFER_SIZE;
    }
    r->closed = p->closed;
    r->live_bytes = p->live_bytes;
    r->established = p->established;
    r->ctx = p->ctx;
    r->sum.listener = p->listener;
    r->sum.reason = PK_CLOSE_SHUTDOWN;
    format_peer(&p->peer, p->peer_len, r->sum.peer_addr, sizeof(r->sum.peer_addr));
    clock_gettime(CLOCK_MONOTONIC, &r->t0);
    int fl = fcntl(r->a, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK) == 0) {
        (void)fcntl(r->a, F_SETFL, fl | O_NONBLOCK);
    }
    ev_io_init(&r->ar, io_cb, r->a, EV_READ);
    ev_io_init(&r->aw, io_cb, r->a, EV_WRITE);
    ev_io_init(&r->br, io_cb, -1, EV_READ);
    ev_io_init(&r->bw, io_cb, -1, EV_WRITE);
    r->ar.data = r->aw.data = r->br.data = r->bw.data = r;
    ev_timer_init(&r->t_kick, timer_cb, 0., 0.);
    ev_timer_init(&r->t_connect, timer_cb, 0., 0.);
    ev_timer_init(&r->t_idle, timer_cb, 0., 0.);
    ev_timer_init(&r->t_life, timer_cb, 0., 0.);
    r->t_kick.data = r->t_connect.data = r->t_idle.data = r->t_life.data = r;
    if (r->limits.max_lifetime > 0) {
        ev_timer_set(&r->t_life, r->limits.max_lifetime, 0.);
        ev_timer_start(loop, &r->t_life);
    }
    ev_timer_start(loop, &r->t_kick);
    *out = r;
    return 0;
}

void pk_relay_close(struct pk_relay *r)
{
    PK_ASSERT(r->magic == RELAY_MAGIC);
    relay_fail(r, PK_CLOSE_SHUTDOWN, "closed by picket");
    relay_destroy(r);
}
