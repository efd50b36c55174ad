/* SPDX-License-Identifier: Apache-2.0 */
/* picket: listeners, workers and identity hand-off for the proxy. */
#include "proxy/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/spiffe.h"
#include "common/tls.h"
#include "proxy/conn.h"
#include "proxy/policy.h"
#include "proxy/recheck.h"

/* Connections accepted per wake-up, so one busy listener cannot starve the loop. */
#define ACCEPT_BATCH 64
/* While a cap is reached or the process is out of descriptors, look again this often. */
#define ACCEPT_PAUSE   0.05
#define LISTEN_BACKLOG 1024
#define MAX_WORKERS    256

struct listener {
    const struct pk_listener_config *cfg;
    struct sockaddr_storage listen_addr;
    socklen_t listen_len;
    struct sockaddr_storage target;
    socklen_t target_len;
    bool is_unix;
    uint16_t port;
    struct pk_conn_limits limits;
    _Atomic uint64_t active, total, handshaking, bytes_in, bytes_out;
    _Atomic uint64_t handshake_failed, denied, connect_failed, timeouts, resets;
};

/* The identity in force and the policies built for it. Refcounted: a worker holds the newest,
 * each connection the one it started with. */
struct gen {
    atomic_int refs;
    struct pk_identity *id;
    struct pk_policy **policies; /* one per listener */
    size_t n;
};

struct worker;

struct proxied {
    struct proxied *prev, *next;
    struct worker *w;
    size_t li; /* listener index */
    struct gen *gen;
    struct pk_conn *conn;
    bool established; /* no longer counted as a handshake in progress */
};

struct worker {
    struct pk_proxy *px;
    unsigned index;
    pthread_t thread;
    bool thread_started;
    struct ev_loop *loop;
    ev_async wake;
    pthread_mutex_t lock; /* guards pending, stopping, drain_timeout */
    struct gen *pending;
    bool stopping;
    double drain_timeout;
    /* Loop-thread state. */
    struct gen *current;
    int *fds;         /* per listener: the listening socket, or -1 */
    ev_io *accept_io; /* per listener */
    ev_timer *resume; /* per listener: accepting paused */
    bool *starved;    /* per listener: paused for lack of descriptors (logged once) */
    bool accepting;
    bool draining;
    ev_timer drain_timer;
    struct proxied *conns;
    size_t n_conns;
};

struct pk_proxy {
    const struct pk_agent_config *cfg;
    struct listener *listeners;
    size_t n_listeners;
    struct worker *workers;
    unsigned n_workers;
};

/* ---- generations -------------------------------------------------------------------------- */

static struct gen *gen_ref(struct gen *g)
{
    atomic_fetch_add(&g->refs, 1);
    return g;
}

static void gen_unref(struct gen *g)
{
    if (g == NULL || atomic_fetch_sub(&g->refs, 1) != 1) {
        return;
    }
    for (size_t i = 0; i < g->n; i++) {
        pk_policy_free(g->policies[i]);
    }
    free(g->policies);
    pk_identity_unref(g->id);
    free(g);
}

/* The policy of one listener for our trust domain and namespace. */
static int build_policy(const struct pk_listener_config *lc, const char *td, const char *ns,
                        struct pk_policy **out, struct pk_err *err)
{
    struct pk_policy *p = pk_policy_new(td, ns);
    int r = 0;

    if (lc->kind == PK_LISTENER_INBOUND) {
        for (size_t i = 0; r == 0 && i < lc->n_allow_trust_domain; i++) {
            r = pk_policy_add(p, PK_ALLOW_TRUST_DOMAIN, lc->allow_trust_domain[i], err);
        }
        for (size_t i = 0; r == 0 && i < lc->n_allow_namespace; i++) {
            r = pk_policy_add(p, PK_ALLOW_NAMESPACE, lc->allow_namespace[i], err);
        }
        for (size_t i = 0; r == 0 && i < lc->n_allow_app_id; i++) {
            r = pk_policy_add(p, PK_ALLOW_APP_ID, lc->allow_app_id[i], err);
        }
        for (size_t i = 0; r == 0 && i < lc->n_allow_spiffe_id; i++) {
            r = pk_policy_add(p, PK_ALLOW_SPIFFE_ID, lc->allow_spiffe_id[i], err);
        }
    } else if (lc->expect_spiffe_id != NULL) {
        r = pk_policy_add(p, PK_EXPECT_SPIFFE_ID, lc->expect_spiffe_id, err);
    } else {
        char id[PK_SPIFFE_MAX_LEN + 1];
        r = pk_spiffe_format_workload(id, sizeof(id), td,
                                      lc->expect_namespace != NULL ? lc->expect_namespace : ns,
                                      lc->expect_app_id, err);
        if (r == 0) {
            r = pk_policy_add(p, PK_EXPECT_SPIFFE_ID, id, err);
        }
    }
    if (r != 0) {
        pk_err_prefix(err, r, "[%s %s]", lc->kind == PK_LISTENER_INBOUND ? "inbound" : "outbound",
                      lc->name);
        pk_policy_free(p);
        return r;
    }
    *out = p;
    return 0;
}

static struct gen *gen_new(struct pk_proxy *px, struct pk_identity *id, struct pk_err *err)
{
    const struct pk_spiffe_id *sid = pk_identity_spiffe(id);
    const char *ns = sid->is_workload ? sid->namespace_ : px->cfg->namespace_;
    struct gen *g = pk_xcalloc(1, sizeof(*g));

    atomic_init(&g->refs, 1);
    g->policies = pk_xcalloc(px->n_listeners > 0 ? px->n_listeners : 1, sizeof(*g->policies));
    for (size_t i = 0; i < px->n_listeners; i++) {
        if (build_policy(px->listeners[i].cfg, sid->trust_domain, ns, &g->policies[i], err) != 0) {
            g->n = i;
            gen_unref(g);
            return NULL;
        }
    }
    g->n = px->n_listeners;
    g->id = pk_identity_ref(id);
    return g;
}

/* ---- addresses and sockets ------------------------------------------------------------------ */

static int parse_addr(const char *text, struct sockaddr_storage *ss, socklen_t *len,
                      struct pk_err *err)
{
    char host[256];
    const char *colon;
    size_t hl;
    long port;
    char *end;

    memset(ss, 0, sizeof(*ss));
    if (strncmp(text, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)ss;
        if (strlen(text + 5) >= sizeof(un->sun_path)) {
            return pk_err_set(err, PK_E_INVALID, "%s: unix socket path too long", text);
        }
        un->sun_family = AF_UNIX;
        strcpy(un->sun_path, text + 5);
        *len = sizeof(*un);
        return 0;
    }
    colon = strrchr(text, ':');
    if (colon == NULL) {
        return pk_err_set(err, PK_E_INVALID, "%s: expected HOST:PORT or unix:PATH", text);
    }
    hl = (size_t)(colon - text);
    if (hl >= 2 && text[0] == '[' && text[hl - 1] == ']') {
        memcpy(host, text + 1, hl - 2);
        host[hl - 2] = '\0';
    } else if (hl < sizeof(host)) {
        memcpy(host, text, hl);
        host[hl] = '\0';
    } else {
        return pk_err_set(err, PK_E_INVALID, "%s: host too long", text);
    }
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || end == colon + 1 || port < 0 || port > 65535) {
        return pk_err_set(err, PK_E_INVALID, "%s: bad port", text);
    }
    if (strcmp(host, "localhost") == 0) {
        strcpy(host, "127.0.0.1");
    }
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *len = sizeof(*in4);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*in6);
    } else {
        return pk_err_set(err, PK_E_INVALID, "%s: the host must be a numeric address", text);
    }
    return 0;
}

static int listen_socket(struct listener *l, struct pk_err *err)
{
    int fd = socket(l->listen_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    const char *what = l->cfg->listen;

    if (fd < 0) {
        return pk_err_set(err, -errno, "%s: socket: %s", what, strerror(errno));
    }
    if (l->is_unix) {
        struct sockaddr_un *un = (struct sockaddr_un *)&l->listen_addr;
        struct stat st;
        /* A socket file left by an earlier run is replaced; anything else is not touched. */
        if (lstat(un->sun_path, &st) == 0 && S_ISSOCK(st.st_mode)) {
            (void)unlink(un->sun_path);
        }
    } else {
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        /* One socket per worker on the same port; the kernel spreads the connections. */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
            int e = errno;
            close(fd);
            return pk_err_set(err, -e, "%s: SO_REUSEPORT: %s", what, strerror(e));
        }
        if (l->listen_addr.ss_family == AF_INET6) {
            (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        }
    }
    if (bind(fd, (struct sockaddr *)&l->listen_addr, l->listen_len) != 0 ||
        listen(fd, LISTEN_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        return pk_err_set(err, -e, "[%s %s] listen %s: %s",
                          l->cfg->kind == PK_LISTENER_INBOUND ? "inbound" : "outbound",
                          l->cfg->name, what, strerror(e));
    }
    if (!l->is_unix && l->port == 0) {
        struct sockaddr_storage bound;
        socklen_t blen = sizeof(bound);
        if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0) {
            l->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                        : ((struct sockaddr_in *)&bound)->sin_port);
            /* Later workers bind the port the first one got. */
            if (l->listen_addr.ss_family == AF_INET6) {
                ((struct sockaddr_in6 *)&l->listen_addr)->sin6_port = htons(l->port);
            } else {
                ((struct sockaddr_in *)&l->listen_addr)->sin_port = htons(l->port);
            }
        }
    }
    return fd;
}

/* ---- connections ---------------------------------------------------------------------------- */

static void stop_accepting(struct worker *w);
static void maybe_finish(struct worker *w);
static void release_slot(struct listener *l);
static void pause_listener(struct worker *w, size_t li);

static void conn_closed(void *ctx, const struct pk_conn_summary *s)
{
    struct proxied *pc = ctx;
    struct worker *w = pc->w;
    struct listener *l = &w->px->listeners[pc->li];
    char peer_id[300], detail[300];

    atomic_fetch_sub(&l->active, 1);
    atomic_fetch_add(&l->bytes_in, s->bytes_in);
    atomic_fetch_add(&l->bytes_out, s->bytes_out);
    if (!pc->established) {
        atomic_fetch_sub(&l->handshaking, 1);
    }
    switch (s->reason) {
    case PK_CLOSE_HANDSHAKE_FAILED:
        atomic_fetch_add(&l->handshake_failed, 1);
        break;
    case PK_CLOSE_DENIED:
        atomic_fetch_add(&l->denied, 1);
        break;
    case PK_CLOSE_CONNECT_FAILED:
        atomic_fetch_add(&l->connect_failed, 1);
        break;
    case PK_CLOSE_HANDSHAKE_TIMEOUT:
    case PK_CLOSE_CONNECT_TIMEOUT:
    case PK_CLOSE_IDLE_TIMEOUT:
        atomic_fetch_add(&l->timeouts, 1);
        break;
    case PK_CLOSE_RESET:
    case PK_CLOSE_TLS_ERROR:
        atomic_fetch_add(&l->resets, 1);
        break;
    default:
        break;
    }
    PK_LOG_INFO("connection closed listener=%s peer=%s peer_id=\"%s\" bytes_in=%llu "
                "bytes_out=%llu duration=%.3fs reason=%s detail=\"%s\"",
                s->listener, s->peer_addr, pk_log_escape(peer_id, sizeof(peer_id), s->peer_id),
                (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out, s->duration,
                pk_conn_close_reason_name(s->reason),
                pk_log_escape(detail, sizeof(detail), s->detail));
    if (pc->prev != NULL) {
        pc->prev->next = pc->next;
    } else {
        w->conns = pc->next;
    }
    if (pc->next != NULL) {
        pc->next->prev = pc->prev;
    }
    w->n_conns--;
    gen_unref(pc->gen);
    free(pc);
    maybe_finish(w);
}

/* ---- re-checks ------------------------------------------------------------------------------ */

static bool same_anchors(const struct gen *a, const struct gen *b)
{
    struct pk_slice x = pk_identity_trusted_anchors_pem(a->id);
    struct pk_slice y = pk_identity_trusted_anchors_pem(b->id);
    return x.len == y.len && memcmp(x.ptr, y.ptr, x.len) == 0;
}

/* Would the peer of pc, verified under its own generation, still be let in under g? When the
 * anchors differ its chain is verified again (rc is the pass's memo); the listener's policy of
 * g is asked in any case. Closes the connection (reason untrusted) when not; true if closed. */
static bool recheck_conn(struct proxied *pc, struct gen *g, struct pk_recheck *rc)
{
    const struct pk_cert *leaf = pk_conn_peer_leaf(pc->conn);
    struct pk_err err;
    char detail[512];

    pk_err_clear(&err);
    if (leaf == NULL || pc->gen == g) {
        return false; /* not authorized yet: it will be, by g's rules or in conn_established */
    }
    if (!same_anchors(pc->gen, g) &&
        pk_recheck_peer(rc, leaf, pk_conn_peer_chain(pc->conn), &err) != 0) {
        snprintf(detail, sizeof(detail), "peer no longer chains to the trust anchors: %.400s",
                 err.msg);
    } else if (pk_policy_authorize(g->policies[pc->li], leaf, NULL, 0, &err) != 0) {
        snprintf(detail, sizeof(detail), "peer no longer allowed: %.400s", err.msg);
    } else {
        return false;
    }
    pk_conn_close_because(pc->conn, PK_CLOSE_UNTRUSTED, detail);
    return true;
}

/* A new generation is in force: every live connection is checked against it. */
static void recheck_all(struct worker *w, struct gen *g)
{
    struct pk_recheck rc;
    size_t checked = 0, closed = 0;

    pk_recheck_begin(&rc, pk_identity_trusted_anchors(g->id));
    for (struct proxied *pc = w->conns, *next; pc != NULL; pc = next) {
        next = pc->next; /* recheck_conn may free pc */
        if (pk_conn_peer_leaf(pc->conn) == NULL || pc->gen == g) {
            continue;
        }
        checked++;
        closed += recheck_conn(pc, g, &rc) ? 1 : 0;
    }
    pk_recheck_end(&rc);
    if (checked > 0) {
        PK_LOG_INFO("connections re-checked worker=%u checked=%zu closed=%zu", w->index, checked,
                    closed);
    }
}

static void conn_established(void *ctx, struct pk_conn *c)
{
    struct proxied *pc = ctx;
    struct worker *w = pc->w;

    if (!pc->established) {
        pc->established = true;
        atomic_fetch_sub(&w->px->listeners[pc->li].handshaking, 1);
    }
    /* Authorized under a generation that has been replaced since it began: catch up. */
    if (pc->gen != w->current) {
        struct pk_recheck rc;
        pk_recheck_begin(&rc, pk_identity_trusted_anchors(w->current->id));
        (void)recheck_conn(pc, w->current, &rc);
        pk_recheck_end(&rc);
    }
    (void)c;
}

static void start_conn(struct worker *w, size_t li, int fd, const struct sockaddr_storage *peer,
                       socklen_t peer_len)
{
    struct listener *l = &w->px->listeners[li];
    struct proxied *pc = pk_xcalloc(1, sizeof(*pc));
    struct pk_conn_params p = {
            .dir = l->cfg->kind == PK_LISTENER_INBOUND ? PK_CONN_INBOUND : PK_CONN_OUTBOUND,
            .fd = fd,
            .peer = *peer,
            .peer_len = peer_len,
            .target = l->target,
            .target_len = l->target_len,
            .target_sni = l->cfg->server_name,
            .identity = w->current->id,
            .authorize = pk_policy_authorize,
            .authorize_ctx = w->current->policies[li],
            .proxy_protocol = l->cfg->proxy_protocol,
            .close_on_peer_expiry = true,
            .close_on_own_expiry = l->cfg->close_on_own_expiry,
            .limits = &l->limits,
            .listener = l->cfg->name,
            .closed = conn_closed,
            .closed_ctx = pc,
            .established = conn_established,
    };
    struct pk_err err;

    pk_err_clear(&err);
    pc->w = w;
    pc->li = li;
    pc->gen = gen_ref(w->current);
    atomic_fetch_add(&l->total, 1); /* active and handshaking were reserved before accept() */
    if (pk_conn_start(w->loop, &p, &pc->conn, &err) != 0) {
        /* Near the descriptor limit accept() can succeed while wolfSSL cannot get the
         * descriptor its RNG needs: the same starvation as EMFILE, handled the same way. */
        if (!w->starved[li]) {
            PK_LOG_WARN("accept paused: out of resources listener=%s worker=%u error=\"%s\"",
                        l->cfg->name, w->index, err.msg);
            w->starved[li] = true;
        }
        pause_listener(w, li);
        release_slot(l);
        gen_unref(pc->gen);
        free(pc);
        return;
    }
    if (w->starved[li]) {
        PK_LOG_INFO("accept resumed listener=%s worker=%u", l->cfg->name, w->index);
        w->starved[li] = false;
    }
    pc->next = w->conns;
    if (w->conns != NULL) {
        w->conns->prev = pc;
    }
    w->conns = pc;
    w->n_conns++;
}

/* ---- accepting ------------------------------------------------------------------------------ */

static void pause_listener(struct worker *w, size_t li)
{
    ev_io_stop(w->loop, &w->accept_io[li]);
    if (!ev_is_active(&w->resume[li])) {
        ev_timer_set(&w->resume[li], ACCEPT_PAUSE, 0.0);
        ev_timer_start(w->loop, &w->resume[li]);
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
    if (!reserve(&l->active, l->cfg->max_connections)) {
        return false;
    }
    if (!reserve(&l->handshaking, l->cfg->max_handshakes)) {
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
    return atomic_load(&l->active) >= (uint64_t)l->cfg->max_connections ||
           atomic_load(&l->handshaking) >= (uint64_t)l->cfg->max_handshakes;
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct worker *w = io->data;
    size_t li = (size_t)(io - w->accept_io);
    struct listener *l = &w->px->listeners[li];

    for (int n = 0; n < ACCEPT_BATCH; n++) {
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        int fd;

        /* Caps leave new connections in the kernel's backlog instead of refusing them. The
         * slots are taken before accept() so the caps hold exactly across workers. */
        if (!reserve_slot(l)) {
            pause_listener(w, li);
            return;
        }
        fd = accept4(w->fds[li], (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            release_slot(l);
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                if (!w->starved[li]) {
                    PK_LOG_WARN("accept paused: out of resources listener=%s worker=%u "
                                "error=\"%s\"",
                                l->cfg->name, w->index, strerror(errno));
                    w->starved[li] = true;
                }
                pause_listener(w, li);
            }
            return; /* EAGAIN, or a connection aborted before accept */
        }
        if (l->is_unix) {
            memset(&peer, 0, sizeof(peer));
            peer.ss_family = AF_UNIX;
            peer_len = sizeof(sa_family_t);
        }
        start_conn(w, li, fd, &peer, peer_len);
    }
}

static void resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)revents;
    struct worker *w = t->data;
    size_t li = (size_t)(t - w->resume);

    if (!w->accepting) {
        return;
    }
    if (at_cap(&w->px->listeners[li])) {
        ev_timer_set(t, ACCEPT_PAUSE, 0.0);
        ev_timer_start(loop, t);
        return;
    }
    ev_io_start(loop, &w->accept_io[li]);
}

static void start_accepting(struct worker *w)
{
    if (w->accepting || w->draining) {
        return;
    }
    w->accepting = true;
    for (size_t i = 0; i < w->px->n_listeners; i++) {
        if (w->fds[i] >= 0) {
            ev_io_start(w->loop, &w->accept_io[i]);
        }
    }
}

static void stop_accepting(struct worker *w)
{
    w->accepting = false;
    for (size_t i = 0; i < w->px->n_listeners; i++) {
        ev_io_stop(w->loop, &w->accept_io[i]);
        ev_timer_stop(w->loop, &w->resume[i]);
        if (w->fds[i] >= 0) {
            close(w->fds[i]);
            w->fds[i] = -1;
        }
    }
}

/* ---- the worker loop ------------------------------------------------------------------------ */

static void maybe_finish(struct worker *w)
{
    if (w->draining && w->n_conns == 0) {
        ev_timer_stop(w->loop, &w->drain_timer);
        ev_break(w->loop, EVBREAK_ALL);
    }
}

static void drain_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct worker *w = t->data;
    PK_LOG_WARN("shutdown timeout: closing connections worker=%u count=%zu", w->index, w->n_conns);
    while (w->conns != NULL) {
        pk_conn_close(w->conns->conn); /* conn_closed unlinks it */
    }
    maybe_finish(w);
}

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)revents;
    struct worker *w = a->data;
    struct gen *g;
    bool stopping;
    double drain;

    pthread_mutex_lock(&w->lock);
    g = w->pending;
    w->pending = NULL;
    stopping = w->stopping;
    drain = w->drain_timeout;
    pthread_mutex_unlock(&w->lock);

    if (g != NULL) {
        gen_unref(w->current);
        w->current = g;
        recheck_all(w, g);
        start_accepting(w);
    }
    if (stopping && !w->draining) {
        stop_accepting(w);
        w->draining = true;
        ev_timer_init(&w->drain_timer, drain_timeout_cb, drain > 0 ? drain : 0.001, 0.0);
        w->drain_timer.data = w;
        ev_timer_start(loop, &w->drain_timer);
        maybe_finish(w);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    ev_run(w->loop, 0);
    pk_tls_thread_exit();
    return NULL;
}

/* ---- the public side ---------------------------------------------------------------------- */

static unsigned worker_count(const struct pk_agent_config *cfg)
{
    long n = cfg->workers;
    if (n <= 0) {
        n = sysconf(_SC_NPROCESSORS_ONLN);
    }
    return (unsigned)(n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : n);
}

int pk_proxy_new(const struct pk_agent_config *cfg, struct pk_proxy **out, struct pk_err *err)
{
    struct pk_proxy *px = pk_xcalloc(1, sizeof(*px));
    int r = 0;

    px->cfg = cfg;
    px->n_listeners = cfg->n_listeners;
    px->listeners = pk_xcalloc(px->n_listeners > 0 ? px->n_listeners : 1, sizeof(*px->listeners));
    px->n_workers = worker_count(cfg);
    px->workers = pk_xcalloc(px->n_workers, sizeof(*px->workers));
    for (size_t i = 0; i < px->n_listeners; i++) {
        struct listener *l = &px->listeners[i];
        const struct pk_listener_config *lc = &cfg->listeners[i];
        struct pk_policy *probe = NULL;

        l->cfg = lc;
        l->limits = (struct pk_conn_limits){
                .connect_timeout = lc->connect_timeout,
                .handshake_timeout = lc->handshake_timeout,
                .idle_timeout = lc->idle_timeout,
                .max_lifetime = lc->max_lifetime,
                .buffer_size = lc->buffer_size,
        };
        r = parse_addr(lc->listen, &l->listen_addr, &l->listen_len, err);
        if (r == 0) {
            r = parse_addr(lc->target, &l->target, &l->target_len, err);
        }
        /* Policies are built per identity (they depend on our trust domain); build one now
         * so a bad rule stops the start instead of the first connection. */
        if (r == 0) {
            r = build_policy(lc, "picket.check", cfg->namespace_, &probe, err);
            pk_policy_free(probe);
        }
        if (r != 0) {
            goto fail;
        }
        l->is_unix = l->listen_addr.ss_family == AF_UNIX;
        l->port = l->is_unix ? 0
                  : l->listen_addr.ss_family == AF_INET6
                          ? ntohs(((struct sockaddr_in6 *)&l->listen_addr)->sin6_port)
                          : ntohs(((struct sockaddr_in *)&l->listen_addr)->sin_port);
    }
    for (unsigned wi = 0; wi < px->n_workers; wi++) {
        struct worker *w = &px->workers[wi];
        w->px = px;
        w->index = wi;
        pthread_mutex_init(&w->lock, NULL);
        w->fds = pk_xcalloc(px->n_listeners + 1, sizeof(int));
        for (size_t i = 0; i <= px->n_listeners; i++) {
            w->fds[i] = -1; /* never 0: stop_accepting closes what is here */
        }
        w->accept_io = pk_xcalloc(px->n_listeners + 1, sizeof(ev_io));
        w->resume = pk_xcalloc(px->n_listeners + 1, sizeof(ev_timer));
        w->starved = pk_xcalloc(px->n_listeners + 1, sizeof(bool));
        w->loop = ev_loop_new(EVFLAG_AUTO);
        if (w->loop == NULL) {
            r = pk_err_set(err, -ENOMEM, "cannot create an event loop for worker %u", wi);
            goto fail;
        }
        ev_async_init(&w->wake, wake_cb);
        w->wake.data = w;
        ev_async_start(w->loop, &w->wake);
        for (size_t i = 0; i < px->n_listeners; i++) {
            struct listener *l = &px->listeners[i];
            w->fds[i] = -1;
            ev_timer_init(&w->resume[i], resume_cb, 0.0, 0.0);
            w->resume[i].data = w;
            if (l->is_unix && wi > 0) {
                continue; /* a unix socket cannot be shared by SO_REUSEPORT */
            }
            int fd = listen_socket(l, err);
            if (fd < 0) {
                r = fd;
                goto fail;
            }
            w->fds[i] = fd;
            ev_io_init(&w->accept_io[i], accept_cb, fd, EV_READ);
            w->accept_io[i].data = w;
        }
    }
    for (size_t i = 0; i < px->n_listeners; i++) {
        const struct listener *l = &px->listeners[i];
        PK_LOG_INFO("listener ready kind=%s name=%s listen=%s port=%u target=%s workers=%u",
                    l->cfg->kind == PK_LISTENER_INBOUND ? "inbound" : "outbound", l->cfg->name,
                    l->cfg->listen, l->port, l->cfg->target, l->is_unix ? 1 : px->n_workers);
    }
    *out = px;
    return 0;
fail:
    pk_proxy_free(px, 0);
    return r;
}

int pk_proxy_start(struct pk_proxy *px, struct pk_err *err)
{
    for (unsigned wi = 0; wi < px->n_workers; wi++) {
        struct worker *w = &px->workers[wi];
        int r = pthread_create(&w->thread, NULL, worker_main, w);
        if (r != 0) {
            return pk_err_set(err, -r, "cannot start worker thread %u: %s", wi, strerror(r));
        }
        w->thread_started = true;
    }
    return 0;
}

void pk_proxy_set_identity(struct pk_proxy *px, struct pk_identity *id)
{
    struct pk_err err;

    pk_err_clear(&err);
    for (unsigned wi = 0; wi < px->n_workers; wi++) {
        struct worker *w = &px->workers[wi];
        struct gen *g = gen_new(px, id, &err);
        if (g == NULL) {
            /* The rules were checked at start; only an ID we cannot express gets here. */
            PK_LOG_ERR("proxy keeps the previous identity error=\"%s\"", err.msg);
            return;
        }
        pthread_mutex_lock(&w->lock);
        gen_unref(w->pending);
        w->pending = g;
        pthread_mutex_unlock(&w->lock);
        ev_async_send(w->loop, &w->wake);
    }
}

size_t pk_proxy_listener_count(const struct pk_proxy *px)
{
    return px->n_listeners;
}

void pk_proxy_listener_stats(const struct pk_proxy *px, size_t i, struct pk_listener_stats *out)
{
    const struct listener *l = &px->listeners[i];
    *out = (struct pk_listener_stats){
            .name = l->cfg->name,
            .inbound = l->cfg->kind == PK_LISTENER_INBOUND,
            .active = atomic_load(&l->active),
            .total = atomic_load(&l->total),
            .handshaking = atomic_load(&l->handshaking),
            .bytes_in = atomic_load(&l->bytes_in),
            .bytes_out = atomic_load(&l->bytes_out),
            .handshake_failed = atomic_load(&l->handshake_failed),
            .denied = atomic_load(&l->denied),
            .connect_failed = atomic_load(&l->connect_failed),
            .timeouts = atomic_load(&l->timeouts),
            .resets = atomic_load(&l->resets),
            .port = l->port,
    };
}

void pk_proxy_free(struct pk_proxy *px, double shutdown_timeout)
{
    if (px == NULL) {
        return;
    }
    for (unsigned wi = 0; wi < px->n_workers; wi++) {
        struct worker *w = &px->workers[wi];
        if (!w->thread_started) {
            continue;
        }
        pthread_mutex_lock(&w->lock);
        w->stopping = true;
        w->drain_timeout = shutdown_timeout;
        pthread_mutex_unlock(&w->lock);
        ev_async_send(w->loop, &w->wake);
    }
    for (unsigned wi = 0; wi < px->n_workers; wi++) {
        struct worker *w = &px->workers[wi];
        if (w->thread_started) {
            pthread_join(w->thread, NULL);
        }
        if (w->loop != NULL) {
            if (w->fds != NULL) {
                stop_accepting(w);
            }
            ev_async_stop(w->loop, &w->wake);
            ev_loop_destroy(w->loop);
        }
        gen_unref(w->pending);
        gen_unref(w->current);
        free(w->fds);
        free(w->accept_io);
        free(w->resume);
        free(w->starved);
        pthread_mutex_destroy(&w->lock);
    }
    free(px->workers);
    free(px->listeners);
    free(px);
}
