/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the proxy's accepting and starting connections: mTLS, transparent, plaintext relay and
 * the permissive sniff. */
#include "proxy/proxy_impl.h"

static void release_slot(struct listener *l);
static void pause_listener(struct lwatch *lw);

static void pc_unlink(struct worker *w, struct proxied *pc)
{
    if (pc->prev != NULL) {
        pc->prev->next = pc->next;
    } else {
        w->conns = pc->next;
    }
    if (pc->next != NULL) {
        pc->next->prev = pc->prev;
    }
    w->n_conns--;
}

static void conn_closed(void *ctx, const struct pk_conn_summary *s)
{
    struct proxied *pc = ctx;
    struct worker *w = pc->w;
    struct listener *l = pc->gen->listeners[pc->li];

    atomic_fetch_sub(&l->active, 1);
    if (!pc->established) {
        atomic_fetch_sub(&l->handshaking, 1);
    }
    if ((unsigned)s->reason < PK_PROXY_CLOSE_REASONS) {
        atomic_fetch_add(&l->closed[s->reason], 1);
    }
    /* The peer's ID and the detail come from the peer: the log escapes them. */
    PK_LOG_EVENT(PK_LOG_LEVEL_INFO, "connection closed", PK_LF_STR("listener", s->listener),
                 PK_LF_STR("peer", s->peer_addr), PK_LF_STR("peer_id", s->peer_id),
                 PK_LF_UINT("bytes_in", s->bytes_in), PK_LF_UINT("bytes_out", s->bytes_out),
                 PK_LF_DOUBLE("duration_seconds", s->duration),
                 PK_LF_STR("reason", pk_conn_close_reason_name(s->reason)),
                 PK_LF_STR("detail", s->detail));
    pc_unlink(w, pc);
    proxy_gen_unref(pc->gen);
    free(pc);
    proxy_maybe_finish(w);
}

static void format_sockaddr(const struct sockaddr_storage *ss, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN];

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(out, n, "%s:%u", ip, ntohs(in->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(out, n, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else {
        snprintf(out, n, "unix");
    }
}

/* End a connection that never got as far as a pk_conn or a relay (refused by the map, not
 * redirected, closed while its first bytes were awaited): the same accounting and log line. */
void proxy_pc_finish(struct proxied *pc, enum pk_conn_close_reason reason, const char *detail)
{
    struct pk_conn_summary sum = {
            .listener = pc->gen->listeners[pc->li]->cfg.name,
            .reason = reason,
    };

    if (pc->kind == PC_SNIFF) {
        ev_io_stop(pc->w->loop, &pc->sniff_io);
        ev_timer_stop(pc->w->loop, &pc->sniff_timer);
    }
    if (pc->fd >= 0) {
        close(pc->fd);
        pc->fd = -1;
    }
    format_sockaddr(&pc->peer, sum.peer_addr, sizeof(sum.peer_addr));
    snprintf(sum.detail, sizeof(sum.detail), "%s", detail);
    conn_closed(pc, &sum);
}

static void mark_established(struct proxied *pc)
{
    if (!pc->established) {
        pc->established = true;
        atomic_fetch_sub(&pc->gen->listeners[pc->li]->handshaking, 1);
    }
}

/* Count the time from accept to streaming in this worker's histogram of the listener. */
static void observe_handshake(struct proxied *pc)
{
    struct listener *l = pc->gen->listeners[pc->li];
    struct handshake_hist *h = &l->hist[pc->w->index];
    double seconds = ev_time() - pc->accepted_at;
    size_t b = 0;

    if (seconds < 0) {
        seconds = 0;
    }
    while (b < PK_HANDSHAKE_BUCKETS && seconds > pk_handshake_bucket_le[b]) {
        b++;
    }
    atomic_fetch_add_explicit(&h->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, (uint64_t)(seconds * 1e9), memory_order_relaxed);
}

static void conn_established(void *ctx, struct pk_conn *c)
{
    struct proxied *pc = ctx;
    struct worker *w = pc->w;

    observe_handshake(pc);
    mark_established(pc);
    /* Authorized under a generation that has been replaced since it began: catch up. */
    if (pc->gen != w->current) {
        struct pk_recheck rc;
        pk_recheck_begin(&rc, pk_identity_trusted_anchors(w->current->id));
        (void)proxy_recheck_conn(pc, w->current, &rc);
        pk_recheck_end(&rc);
    }
    (void)c;
}

static void relay_established(void *ctx)
{
    mark_established(ctx);
}

/* A new connection of listener li of the worker's current generation, counted and linked; its
 * slot was reserved before accept(). pc->fd holds the socket until a pk_conn or relay takes
 * it. */
static struct proxied *pc_new(struct worker *w, size_t li, int fd,
                              const struct sockaddr_storage *peer, socklen_t peer_len)
{
    struct proxied *pc = pk_xcalloc(1, sizeof(*pc));

    pc->w = w;
    pc->li = li;
    pc->gen = proxy_gen_ref(w->current);
    pc->fd = fd;
    pc->peer = *peer;
    pc->peer_len = peer_len;
    pc->accepted_at = ev_time();
    atomic_fetch_add(&pc->gen->listeners[li]->total, 1);
    pc->next = w->conns;
    if (w->conns != NULL) {
        w->conns->prev = pc;
    }
    w->conns = pc;
    w->n_conns++;
    return pc;
}

/* Once every this many seconds at most, per listener and worker, the starvation is logged. */
#define STARVED_LOG_INTERVAL 10.0

/* Out of descriptors (or memory): pause accepting on this worker and say so at error level, at
 * most once per STARVED_LOG_INTERVAL. The limit needs raising, and a line per retry (twenty a
 * second) would bury everything else while the process cannot even open a log file. */
static void starved(struct lwatch *lw, int error, const char *detail)
{
    ev_tstamp now = ev_now(lw->w->loop);

    if (lw->starved_logged == 0 || now - lw->starved_logged >= STARVED_LOG_INTERVAL) {
        if (error == EMFILE || error == ENFILE) {
            PK_LOG_ERR("too many open files: accept paused listener=%s worker=%u error=\"%s\" "
                       "hint=\"raise the descriptor limit (LimitNOFILE=, ulimit -n)\"",
                       lw->l->cfg.name, lw->w->index, detail);
        } else {
            PK_LOG_ERR("out of memory: accept paused listener=%s worker=%u error=\"%s\"",
                       lw->l->cfg.name, lw->w->index, detail);
        }
        lw->starved_logged = now;
    }
    lw->starved = true;
    pause_listener(lw);
}

/* Near the descriptor limit accept() can succeed while wolfSSL cannot get the descriptor its
 * RNG needs: the same starvation as EMFILE, handled the same way. pc (whose socket the failed
 * start closed) is dropped without a close line: it never began. */
static void start_failed(struct proxied *pc, const char *why)
{
    struct worker *w = pc->w;
    struct listener *l = pc->gen->listeners[pc->li];
    struct lwatch *lw = &l->watch[w->index];

    starved(lw, EMFILE, why);
    release_slot(l);
    atomic_fetch_sub(&l->total, 1);
    pc_unlink(w, pc);
    proxy_gen_unref(pc->gen);
    free(pc);
}

static void started(struct proxied *pc)
{
    struct listener *l = pc->gen->listeners[pc->li];
    struct lwatch *lw = &l->watch[pc->w->index];

    if (lw->starved) {
        PK_LOG_INFO("accept resumed listener=%s worker=%u", l->cfg.name, pc->w->index);
        lw->starved = false;
    }
}

/* The answer for l's DNS-named target as this worker holds it. The resolver publishes answers
 * on the main loop into the target's slot; a worker keeps its own reference and looks at the
 * slot's generation (one atomic load) for each connection, taking the slot's lock only when the
 * answer changed. So the data path never locks and never waits for DNS, and a worker does not
 * run a resolver of its own (one query per name, not one per worker). NULL before the first
 * answer. */
static struct pk_addrset *worker_addrs(struct listener *l, struct worker *w)
{
    struct lwatch *lw = &l->watch[w->index];
    uint64_t generation = pk_addrset_slot_generation(l->target_slot);

    if (generation != lw->addrs_generation || lw->addrs == NULL) {
        pk_addrset_unref(lw->addrs);
        lw->addrs = pk_addrset_slot_get(l->target_slot);
        lw->addrs_generation = generation;
    }
    return lw->addrs;
}

/* For a DNS-named target: the set to connect to and the address to try first (connections take
 * the addresses in turn). false, with pc finished, when the name has no answer yet. */
static bool named_target(struct proxied *pc, struct pk_addrset **set, size_t *first)
{
    struct listener *l = pc->gen->listeners[pc->li];
    struct lwatch *lw = &l->watch[pc->w->index];
    char detail[300];

    *set = worker_addrs(l, pc->w);
    if (*set == NULL) {
        snprintf(detail, sizeof(detail), "target %s: no DNS answer yet", l->cfg.target);
        proxy_pc_finish(pc, PK_CLOSE_CONNECT_FAILED, detail);
        return false;
    }
    *first = lw->next_addr++ % (*set)->n;
    return true;
}

/* Hand pc's socket to a new pk_conn towards target, authorized by policy. */
static void start_tls(struct proxied *pc, enum pk_conn_dir dir,
                      const struct sockaddr_storage *target, socklen_t target_len,
                      struct pk_policy *policy)
{
    struct worker *w = pc->w;
    struct listener *l = pc->gen->listeners[pc->li];
    struct pk_conn_params p = {
            .dir = dir,
            .fd = pc->fd,
            .peer = pc->peer,
            .peer_len = pc->peer_len,
            .target = *target,
            .target_len = target_len,
            .target_sni = l->cfg.server_name,
            .identity = pc->gen->id,
            .authorize = pk_policy_authorize,
            .authorize_ctx = policy,
            .proxy_protocol = l->cfg.proxy_protocol,
            .close_on_peer_expiry = true,
            .close_on_own_expiry = l->cfg.close_on_own_expiry,
            .mark = l->mark,
            .limits = &l->limits,
            .listener = l->cfg.name,
            .live_bytes = &l->bytes[w->index],
            .closed = conn_closed,
            .closed_ctx = pc,
            .established = conn_established,
    };
    struct pk_err err;

    if (l->target_slot != NULL && target == &l->target &&
        !named_target(pc, &p.targets, &p.target_first)) {
        return;
    }
    pk_err_clear(&err);
    pc->fd = -1; /* pk_conn_start takes it, on failure too */
    pc->kind = PC_CONN;
    if (pk_conn_start(w->loop, &p, &pc->conn, &err) != 0) {
        start_failed(pc, err.msg);
        return;
    }
    started(pc);
}

/* Hand pc's socket to a plaintext relay towards target. */
static void start_relay(struct proxied *pc, const struct sockaddr_storage *target,
                        socklen_t target_len)
{
    struct listener *l = pc->gen->listeners[pc->li];
    struct pk_relay_params p = {
            .fd = pc->fd,
            .peer = pc->peer,
            .peer_len = pc->peer_len,
            .target = *target,
            .target_len = target_len,
            .mark = l->mark,
            .limits = &l->limits,
            .listener = l->cfg.name,
            .live_bytes = &l->bytes[pc->w->index],
            .closed = conn_closed,
            .established = relay_established,
            .ctx = pc,
    };
    struct pk_err err;

    /* A plaintext client of a permissive listener: the relay takes one address of the name. */
    if (l->target_slot != NULL && target == &l->target) {
        struct pk_addrset *set;
        size_t first;
        if (!named_target(pc, &set, &first)) {
            return;
        }
        memcpy(&p.target, &set->addr[first], set->len[first]);
        p.target_len = set->len[first];
    }
    pk_err_clear(&err);
    pc->fd = -1;
    pc->kind = PC_RELAY;
    if (pk_relay_start(pc->w->loop, &p, &pc->relay, &err) != 0) {
        start_failed(pc, err.msg);
        return;
    }
    started(pc);
}

/* A transparent listener's connection: where was it going, and what does the map say? */
static void start_transparent(struct proxied *pc)
{
    struct listener *l = pc->gen->listeners[pc->li];
    socklen_t dst_len = 0;
    const struct pk_dst_rule *rule;
    enum pk_dst_action action;
    char where[80], peer[80], detail[200];
    struct pk_err err;

    pk_err_clear(&err);
    if (pk_origdst_get(pc->fd, &pc->dst, &dst_len, &err) != 0) {
        proxy_pc_finish(pc, PK_CLOSE_DENIED, err.msg);
        return;
    }
    pc->transparent = true;
    format_sockaddr(&pc->dst, where, sizeof(where));
    rule = pk_dst_lookup(l->rules, l->n_rules, (const struct sockaddr *)&pc->dst);
    if (rule != NULL) {
        action = rule->action;
    } else {
        action = l->cfg.unmapped == PK_UNMAPPED_PASSTHROUGH ? PK_DST_PASSTHROUGH : PK_DST_DENY;
    }
    switch (action) {
    case PK_DST_DENY:
        snprintf(detail, sizeof(detail), "destination %s is %s", where,
                 rule != NULL ? "denied by its map line" : "not mapped (unmapped = deny)");
        proxy_pc_finish(pc, PK_CLOSE_DENIED, detail);
        return;
    case PK_DST_PASSTHROUGH:
        /* Plaintext leaves the host here: say so every time. */
        format_sockaddr(&pc->peer, peer, sizeof(peer));
        PK_LOG_EVENT(PK_LOG_LEVEL_INFO, "passthrough without TLS",
                     PK_LF_STR("listener", l->cfg.name), PK_LF_STR("peer", peer),
                     PK_LF_STR("destination", where),
                     PK_LF_STR("reason", rule != NULL ? "map" : "unmapped"));
        atomic_fetch_add(&l->passthrough, 1);
        start_relay(pc, &pc->dst, dst_len);
        return;
    default:
        PK_LOG_DEBUG("transparent connection listener=%s destination=%s", l->cfg.name, where);
        start_tls(pc, PK_CONN_OUTBOUND, &pc->dst, dst_len,
                  pc->gen->map_policies[pc->li][rule - l->rules]);
        return;
    }
}

static void sniff_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct proxied *pc = io->data;
    struct listener *l = pc->gen->listeners[pc->li];
    uint8_t first[PK_SNIFF_BYTES];
    ssize_t n;

    /* Peek, so that the TLS side or the app still gets every byte. */
    n = recv(pc->fd, first, sizeof(first), MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        proxy_pc_finish(pc, n == 0 ? PK_CLOSE_DONE : PK_CLOSE_RESET,
                        n == 0 ? "closed before sending anything" : strerror(errno));
        return;
    }
    ev_io_stop(pc->w->loop, &pc->sniff_io);
    ev_timer_stop(pc->w->loop, &pc->sniff_timer);
    switch (pk_sniff_client_hello(first, (size_t)n)) {
    case PK_SNIFF_MORE:
        /* A few bytes of what may be a ClientHello: the rest follows shortly. MSG_PEEK keeps
         * them readable, so look again a little later rather than spin on the socket. */
        ev_timer_set(&pc->sniff_timer, SNIFF_REPOLL, 0.);
        ev_timer_start(pc->w->loop, &pc->sniff_timer);
        return;
    case PK_SNIFF_TLS:
        atomic_fetch_add(&l->tls, 1);
        start_tls(pc, PK_CONN_INBOUND, &l->target, l->target_len, pc->gen->policies[pc->li]);
        return;
    case PK_SNIFF_PLAIN:
        atomic_fetch_add(&l->plaintext, 1);
        PK_LOG_INFO("permissive: plaintext client listener=%s", l->cfg.name);
        start_relay(pc, &l->target, l->target_len);
        return;
    }
}

static void sniff_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct proxied *pc = t->data;
    struct listener *l = pc->gen->listeners[pc->li];
    char detail[120];

    /* A millisecond of slack: the timer and ev_now() may round differently. */
    if (ev_now(loop) + 0.001 >= pc->sniff_deadline) {
        snprintf(detail, sizeof(detail), "no TLS ClientHello or plaintext within %gs",
                 l->limits.handshake_timeout);
        proxy_pc_finish(pc, PK_CLOSE_HANDSHAKE_TIMEOUT, detail);
        return;
    }
    /* The pause after a partial ClientHello is over: watch the socket again. */
    ev_io_start(loop, &pc->sniff_io);
    ev_timer_set(t, pc->sniff_deadline - ev_now(loop), 0.);
    ev_timer_start(loop, t);
}

static void start_sniff(struct proxied *pc)
{
    struct listener *l = pc->gen->listeners[pc->li];

    pc->kind = PC_SNIFF;
    ev_io_init(&pc->sniff_io, sniff_io_cb, pc->fd, EV_READ);
    pc->sniff_io.data = pc;
    pc->sniff_deadline = ev_now(pc->w->loop) + l->limits.handshake_timeout;
    ev_timer_init(&pc->sniff_timer, sniff_timer_cb, l->limits.handshake_timeout, 0.);
    pc->sniff_timer.data = pc;
    ev_io_start(pc->w->loop, &pc->sniff_io);
    ev_timer_start(pc->w->loop, &pc->sniff_timer);
    started(pc);
}

static void start_conn(struct lwatch *lw, int fd, const struct sockaddr_storage *peer,
                       socklen_t peer_len)
{
    struct listener *l = lw->l;
    struct proxied *pc = pc_new(lw->w, lw->li, fd, peer, peer_len);

    switch (l->cfg.kind) {
    case PK_LISTENER_TRANSPARENT:
        start_transparent(pc);
        return;
    case PK_LISTENER_INBOUND:
        if (l->cfg.permissive) {
            start_sniff(pc);
        } else {
            start_tls(pc, PK_CONN_INBOUND, &l->target, l->target_len, pc->gen->policies[pc->li]);
        }
        return;
    case PK_LISTENER_OUTBOUND:
        start_tls(pc, PK_CONN_OUTBOUND, &l->target, l->target_len, pc->gen->policies[pc->li]);
        return;
    }
}

static void pause_listener(struct lwatch *lw)
{
    ev_io_stop(lw->w->loop, &lw->io);
    if (!ev_is_active(&lw->resume)) {
        ev_timer_set(&lw->resume, ACCEPT_PAUSE, 0.0);
        ev_timer_start(lw->w->loop, &lw->resume);
    }
}

/* Take one unit of a counter shared by all workers, unless that would pass cap. A load and a
 * compare-and-swap, so workers accepting at the same moment cannot overshoot together. */
static bool reserve(_Atomic uint64_t *counter, long cap)
{
    uint64_t cur = atomic_load(counter);
    do {
        if (cur >= (uint64_t)cap) {
            return false;
        }
    } while (!atomic_compare_exchange_weak(counter, &cur, cur + 1));
    return true;
}

static bool reserve_slot(struct listener *l)
{
    if (!reserve(&l->active, l->cfg.max_connections)) {
        return false;
    }
    if (!reserve(&l->handshaking, l->cfg.max_handshakes)) {
        atomic_fetch_sub(&l->active, 1);
        return false;
    }
    return true;
}

static void release_slot(struct listener *l)
{
    atomic_fetch_sub(&l->active, 1);
    atomic_fetch_sub(&l->handshaking, 1);
}

static bool at_cap(const struct listener *l)
{
    return atomic_load(&l->active) >= (uint64_t)l->cfg.max_connections ||
           atomic_load(&l->handshaking) >= (uint64_t)l->cfg.max_handshakes;
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct lwatch *lw = io->data;
    struct listener *l = lw->l;
    int lfd = l->sock->fds[lw->w->index];

    for (int n = 0; n < ACCEPT_BATCH; n++) {
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        int fd;

        /* Caps leave new connections in the kernel's backlog instead of refusing them. The
         * slots are taken before accept() so the caps hold exactly across workers. */
        if (!reserve_slot(l)) {
            pause_listener(lw);
            return;
        }
        fd = accept4(lfd, (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            release_slot(l);
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                starved(lw, errno, strerror(errno));
            }
            return; /* EAGAIN, or a connection aborted before accept */
        }
        if (l->sock->is_unix) {
            memset(&peer, 0, sizeof(peer));
            peer.ss_family = AF_UNIX;
            peer_len = sizeof(sa_family_t);
        }
        start_conn(lw, fd, &peer, peer_len);
    }
}

static void resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct lwatch *lw = t->data;

    if (!lw->on) {
        return;
    }
    if (at_cap(lw->l)) {
        ev_timer_set(t, ACCEPT_PAUSE, 0.0);
        ev_timer_start(loop, t);
        return;
    }
    ev_io_start(loop, &lw->io);
}

static void changed(struct worker *w)
{
    if (w->px->hook != NULL) {
        w->px->hook(w->px->hook_ctx);
    }
}

static void watch_start(struct worker *w, struct listener *l, size_t li)
{
    struct lwatch *lw = &l->watch[w->index];
    int fd = l->sock->fds[w->index];

    lw->li = li;
    if (lw->on || fd < 0) {
        return;
    }
    lw->w = w;
    lw->l = l;
    ev_io_init(&lw->io, accept_cb, fd, EV_READ);
    lw->io.data = lw;
    ev_timer_init(&lw->resume, resume_cb, 0.0, 0.0);
    lw->resume.data = lw;
    ev_io_start(w->loop, &lw->io);
    lw->on = true;
    atomic_fetch_add(&l->accepting, 1);
    changed(w);
}

/* Stop accepting for l on this worker; with close_fd also close this worker's socket, so the
 * kernel refuses new connections instead of queueing them for nobody. */
static void watch_stop(struct worker *w, struct listener *l, bool close_fd)
{
    struct lwatch *lw = &l->watch[w->index];

    if (lw->on) {
        ev_io_stop(w->loop, &lw->io);
        ev_timer_stop(w->loop, &lw->resume);
        lw->on = false;
        atomic_fetch_sub(&l->accepting, 1);
        changed(w);
    }
    if (close_fd && l->sock->fds[w->index] >= 0) {
        close(l->sock->fds[w->index]);
        l->sock->fds[w->index] = -1;
    }
}

/* Move this worker's watchers from generation old (may be NULL) to g. */
void proxy_switch_gen(struct worker *w, struct gen *old, struct gen *g)
{
    for (size_t i = 0; old != NULL && i < old->n; i++) {
        struct listener *l = old->listeners[i];
        if (!proxy_gen_has(g, l, NULL)) {
            watch_stop(w, l, !proxy_gen_uses_sock(g, l->sock));
        }
    }
    for (size_t i = 0; i < g->n; i++) {
        watch_start(w, g->listeners[i], i);
    }
}

void proxy_stop_accepting(struct worker *w)
{
    for (size_t i = 0; w->current != NULL && i < w->current->n; i++) {
        watch_stop(w, w->current->listeners[i], true);
    }
}
