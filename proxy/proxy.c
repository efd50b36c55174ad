/* SPDX-License-Identifier: Apache-2.0 */
/* picket: listeners, workers and identity hand-off for the proxy.
 *
 * Implementation notes.
 *
 * A "socket set" (struct lsock) is the listening socket of one address: for TCP one descriptor
 * per worker, dup()s of one socket (see lsock_new), one on worker 0 for a unix socket. A "listener"
 * (struct listener) is one [inbound NAME] or [outbound NAME] section: its own copy of the settings,
 * its target, its counters, a reference on its socket set, and per worker the accept watcher state
 * (struct lwatch), touched only by that worker's thread. A "generation" (struct gen) is the
 * identity, the listener set and the policies built for both. All three are refcounted: the main
 * thread holds the current listener set and identity; each worker holds its current generation;
 * each connection holds the generation it started with, so a listener (its name, its counters)
 * lives as long as its last connection.
 *
 * A worker that takes a new generation stops the watchers of listeners not in it and starts
 * those of new ones; a dropped listener's sockets are closed right there (per worker) unless a
 * listener of the new set shares them, so a removed port refuses connections at once instead of
 * holding them in a backlog nobody accepts from. */
#include "proxy/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
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

#include "common/addr.h"
#include "common/dstmap.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/spiffe.h"
#include "common/tls.h"
#include "proxy/conn.h"
#include "proxy/origdst.h"
#include "proxy/policy.h"
#include "proxy/recheck.h"
#include "proxy/relay.h"
#include "proxy/sniff.h"

/* Connections accepted per wake-up, so one busy listener cannot starve the loop. */
#define ACCEPT_BATCH 64
/* While a cap is reached or the process is out of descriptors, look again this often. */
#define ACCEPT_PAUSE   0.05
#define LISTEN_BACKLOG 1024
#define MAX_WORKERS    256
/* After the first bytes of what may be a ClientHello, look again this much later (peeked bytes
 * keep the socket readable, so watching it would spin). */
#define SNIFF_REPOLL 0.01

struct worker;
struct listener;

/* The listening sockets of one address. */
struct lsock {
    atomic_int refs;
    char *listen; /* as configured */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    bool is_unix;
    dev_t unix_dev; /* the socket file we created, removed when the set is freed */
    ino_t unix_ino;
    uint16_t port;
    int *fds; /* per worker; -1 where there is none (or it was closed) */
    unsigned n_fds;
};

/* One worker's accept state for one listener (that worker's thread only). */
struct lwatch {
    struct worker *w;
    struct listener *l;
    size_t li; /* the listener's index in the worker's current generation */
    ev_io io;
    ev_timer resume; /* accepting paused */
    bool on;         /* watchers started */
    bool starved;    /* paused for lack of descriptors (logged once) */
};

struct listener {
    atomic_int refs;
    struct pk_listener_config cfg; /* own copy */
    struct lsock *sock;
    struct sockaddr_storage target;
    socklen_t target_len;
    struct pk_conn_limits limits;
    uint32_t mark;             /* SO_MARK for sockets to targets; 0 = none */
    struct pk_dst_rule *rules; /* transparent: the map lines, parsed */
    size_t n_rules;
    struct lwatch *watch;       /* per worker */
    _Atomic unsigned accepting; /* workers whose watchers are on */
    _Atomic uint64_t active, total, handshaking, bytes_in, bytes_out;
    _Atomic uint64_t closed[PK_PROXY_CLOSE_REASONS];
    _Atomic uint64_t passthrough;    /* transparent: connections let through in plaintext */
    _Atomic uint64_t plaintext, tls; /* permissive inbound: what the first bytes were */
};

/* The identity in force, the listener set and the policies built for both. */
struct gen {
    atomic_int refs;
    struct pk_identity *id;
    struct listener **listeners; /* references */
    struct pk_policy **policies; /* one per listener */
    /* one per listener: for a transparent one, a policy per map line (NULL for passthrough and
     * deny lines); NULL for the other kinds */
    struct pk_policy ***map_policies;
    size_t n;
};

enum proxied_kind {
    PC_CONN,  /* an mTLS connection (struct pk_conn) */
    PC_RELAY, /* a plaintext relay: passthrough, or permissive plaintext */
    PC_SNIFF, /* permissive inbound: waiting for the first bytes to tell TLS from plaintext */
};

struct proxied {
    struct proxied *prev, *next;
    struct worker *w;
    size_t li; /* listener index in gen */
    struct gen *gen;
    enum proxied_kind kind;
    struct pk_conn *conn;   /* PC_CONN */
    struct pk_relay *relay; /* PC_RELAY */
    /* the accepted socket until a pk_conn or relay takes it (PC_SNIFF waits with it) */
    int fd;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    ev_io sniff_io;
    ev_timer sniff_timer; /* the deadline, or a short pause after a partial ClientHello */
    ev_tstamp sniff_deadline;
    struct sockaddr_storage dst; /* transparent: the original destination */
    bool transparent;            /* dst is set and decides the policy */
    bool established;            /* no longer counted as a handshake in progress */
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
    bool draining;
    ev_timer drain_timer;
    struct proxied *conns;
    size_t n_conns;
};

struct pk_proxy {
    char *namespace_;            /* ours, for policies before the identity says */
    uint32_t mark;               /* [proxy] mark: SO_MARK for sockets to targets; 0 = none */
    struct listener **listeners; /* the current set (main thread), references */
    size_t n_listeners;
    struct pk_identity_slot *slot; /* where the agent publishes the current identity (borrowed) */
    struct worker *workers;
    unsigned n_workers;
    void (*hook)(void *ctx);
    void *hook_ctx;
};

/* ---- socket sets and listeners ---------------------------------------------------------- */

static struct lsock *lsock_ref(struct lsock *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

static void lsock_unref(struct lsock *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1) {
        return;
    }
    for (unsigned i = 0; i < s->n_fds; i++) {
        if (s->fds[i] >= 0) {
            close(s->fds[i]);
        }
    }
    if (s->is_unix && s->unix_ino != 0) {
        const char *path = ((struct sockaddr_un *)&s->addr)->sun_path;
        struct stat st;
        /* Only the file we made: another process may have bound the path since. */
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == s->unix_dev &&
            st.st_ino == s->unix_ino) {
            (void)unlink(path);
        }
    }
    free(s->fds);
    free(s->listen);
    free(s);
}

static struct listener *listener_ref(struct listener *l)
{
    atomic_fetch_add(&l->refs, 1);
    return l;
}

static void listener_unref(struct listener *l)
{
    if (l == NULL || atomic_fetch_sub(&l->refs, 1) != 1) {
        return;
    }
    lsock_unref(l->sock);
    for (size_t k = 0; k < l->n_rules; k++) {
        pk_dst_rule_clear(&l->rules[k]);
    }
    free(l->rules);
    pk_listener_config_clear(&l->cfg);
    free(l->watch);
    free(l);
}

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
        if (g->map_policies[i] != NULL) {
            for (size_t k = 0; k < g->listeners[i]->n_rules; k++) {
                pk_policy_free(g->map_policies[i][k]);
            }
            free(g->map_policies[i]);
        }
        listener_unref(g->listeners[i]);
    }
    free(g->policies);
    free(g->map_policies);
    free(g->listeners);
    pk_identity_unref(g->id);
    free(g);
}

/* The policy of one map line of a transparent listener for our trust domain and namespace:
 * *out is NULL for passthrough and deny lines, which no peer is checked against. */
static int build_rule_policy(const struct pk_dst_rule *rule, const char *td, const char *ns,
                             struct pk_policy **out, struct pk_err *err)
{
    char id[PK_SPIFFE_MAX_LEN + 1];
    struct pk_policy *p;
    int r = 0;

    *out = NULL;
    switch (rule->action) {
    case PK_DST_PASSTHROUGH:
    case PK_DST_DENY:
        return 0;
    case PK_DST_ANY:
        /* A policy without rules allows the peers of our own trust domain. */
        *out = pk_policy_new(td, ns);
        return 0;
    case PK_DST_SPIFFE_ID:
        p = pk_policy_new(td, ns);
        r = pk_policy_add(p, PK_EXPECT_SPIFFE_ID, rule->arg, err);
        break;
    case PK_DST_APP_ID: {
        const char *slash = strchr(rule->arg, '/');
        char app_ns[PK_SPIFFE_MAX_LEN + 1];
        const char *app = rule->arg;
        if (slash != NULL) {
            snprintf(app_ns, sizeof(app_ns), "%.*s", (int)(slash - rule->arg), rule->arg);
            app = slash + 1;
        }
        p = pk_policy_new(td, ns);
        r = pk_spiffe_format_workload(id, sizeof(id), td, slash != NULL ? app_ns : ns, app, err);
        if (r == 0) {
            r = pk_policy_add(p, PK_EXPECT_SPIFFE_ID, id, err);
        }
        break;
    }
    default:
        return pk_err_set(err, PK_E_INVALID, "unknown map action");
    }
    if (r != 0) {
        pk_policy_free(p);
        return r;
    }
    *out = p;
    return 0;
}

/* The policy of one listener for our trust domain and namespace. */
static int build_policy(const struct pk_listener_config *lc, const char *td, const char *ns,
                        struct pk_policy **out, struct pk_err *err)
{
    struct pk_policy *p = pk_policy_new(td, ns);
    int r = 0;

    if (lc->kind == PK_LISTENER_TRANSPARENT) {
        /* Unused: each map line has its own (build_rule_policy). */
    } else if (lc->kind == PK_LISTENER_INBOUND) {
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
        pk_err_prefix(err, r, "[%s %s]", pk_listener_kind_name(lc->kind), lc->name);
        pk_policy_free(p);
        return r;
    }
    *out = p;
    return 0;
}

static struct gen *gen_new(struct pk_proxy *px, struct pk_identity *id, struct pk_err *err)
{
    const struct pk_spiffe_id *sid = pk_identity_spiffe(id);
    const char *ns = sid->is_workload ? sid->namespace_ : px->namespace_;
    struct gen *g = pk_xcalloc(1, sizeof(*g));
    size_t n = px->n_listeners;

    atomic_init(&g->refs, 1);
    g->id = pk_identity_ref(id);
    g->policies = pk_xcalloc(n > 0 ? n : 1, sizeof(*g->policies));
    g->map_policies = pk_xcalloc(n > 0 ? n : 1, sizeof(*g->map_policies));
    g->listeners = pk_xcalloc(n > 0 ? n : 1, sizeof(*g->listeners));
    for (size_t i = 0; i < n; i++) {
        struct listener *l = px->listeners[i];
        struct pk_policy *p = NULL;
        if (build_policy(&l->cfg, sid->trust_domain, ns, &p, err) != 0) {
            gen_unref(g);
            return NULL;
        }
        g->policies[i] = p;
        g->listeners[i] = listener_ref(l);
        g->n = i + 1;
        if (l->n_rules > 0) {
            g->map_policies[i] = pk_xcalloc(l->n_rules, sizeof(**g->map_policies));
            for (size_t k = 0; k < l->n_rules; k++) {
                int r = build_rule_policy(&l->rules[k], sid->trust_domain, ns,
                                          &g->map_policies[i][k], err);
                if (r != 0) {
                    pk_err_prefix(err, r, "[transparent %s] map", l->cfg.name);
                    gen_unref(g);
                    return NULL;
                }
            }
        }
    }
    return g;
}

/* ---- addresses and sockets ------------------------------------------------------------------ */

static int parse_addr(const char *text, struct sockaddr_storage *ss, socklen_t *len,
                      struct pk_err *err)
{
    struct pk_addr addr;
    int r = pk_addr_parse(text, PK_ADDR_PORT_ZERO, &addr, err);

    if (r == 0) {
        *ss = addr.sa;
        *len = addr.sa_len;
    }
    return r;
}

/* One listening socket of set s, or -errno with err naming the listener lc. */
static int listen_socket(struct lsock *s, const struct pk_listener_config *lc, struct pk_err *err)
{
    int fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;

    if (fd < 0) {
        return pk_err_set(err, -errno, "[%s %s] listen %s: socket: %s",
                          pk_listener_kind_name(lc->kind), lc->name, s->listen, strerror(errno));
    }
    if (s->is_unix) {
        const char *path = ((struct sockaddr_un *)&s->addr)->sun_path;
        /* A socket file left by an earlier run is replaced; a live one (another process
         * accepts on it) is an error, and anything else is not touched. */
        if (pk_fs_socket_is_stale(path)) {
            (void)unlink(path);
        }
    } else {
        /* SO_REUSEADDR only lets us bind past connections in TIME_WAIT; Linux still refuses a
         * port something listens on. There is deliberately no SO_REUSEPORT (see lsock_new). */
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (s->addr.ss_family == AF_INET6) {
            (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        }
    }
    if (bind(fd, (struct sockaddr *)&s->addr, s->addr_len) != 0 ||
        listen(fd, LISTEN_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        if (e == EADDRINUSE) {
            return pk_err_set(err, -e,
                              "[%s %s] listen %s: address in use: another process listens on %s",
                              pk_listener_kind_name(lc->kind), lc->name, s->listen,
                              s->is_unix ? "this socket" : "this address");
        }
        return pk_err_set(err, -e, "[%s %s] listen %s: %s", pk_listener_kind_name(lc->kind),
                          lc->name, s->listen, strerror(e));
    }
    if (s->is_unix) {
        struct stat st;
        if (stat(((struct sockaddr_un *)&s->addr)->sun_path, &st) == 0) {
            s->unix_dev = st.st_dev;
            s->unix_ino = st.st_ino;
        }
    } else if (s->port == 0) {
        struct sockaddr_storage bound;
        socklen_t blen = sizeof(bound);
        if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0) {
            s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                        : ((struct sockaddr_in *)&bound)->sin_port);
            /* Later workers bind the port the first one got. */
            if (s->addr.ss_family == AF_INET6) {
                ((struct sockaddr_in6 *)&s->addr)->sin6_port = htons(s->port);
            } else {
                ((struct sockaddr_in *)&s->addr)->sin_port = htons(s->port);
            }
        }
    }
    return fd;
}

/* The socket set for lc's listen address: one socket, bound once, and for TCP a dup() of it for
 * every further worker (worker 0 alone watches a unix socket).
 *
 * Why one socket and not one per worker with SO_REUSEPORT: the kernel lets any process of the
 * same user join a SO_REUSEPORT group, so a second picket started on our port would silently
 * take a share of our connections (and deny them, holding another identity). A socket bound
 * without SO_REUSEPORT is ours alone: a second bind fails with "address in use". The workers
 * share it through dup()s, one descriptor each, so every worker still has its own watcher and
 * closes its own descriptor when a reload drops the listener: the port is refused as soon as the
 * last worker lets go, and a listener kept across a reload keeps its socket untouched. The cost
 * is that a new connection wakes every idle worker and one accept() wins (libev has no
 * EPOLLEXCLUSIVE); with a handful of workers that is a few empty accept() calls per burst, and
 * each accept_cb takes up to ACCEPT_BATCH connections per wake-up. */
static int lsock_new(const struct pk_listener_config *lc, unsigned n_workers, struct lsock **out,
                     struct pk_err *err)
{
    struct lsock *s = pk_xcalloc(1, sizeof(*s));
    int r;

    atomic_init(&s->refs, 1);
    s->listen = pk_xstrdup(lc->listen);
    s->fds = pk_xcalloc(n_workers, sizeof(int));
    s->n_fds = n_workers;
    for (unsigned i = 0; i < n_workers; i++) {
        s->fds[i] = -1;
    }
    r = parse_addr(lc->listen, &s->addr, &s->addr_len, err);
    if (r != 0) {
        goto fail;
    }
    s->is_unix = s->addr.ss_family == AF_UNIX;
    if (!s->is_unix) {
        s->port = s->addr.ss_family == AF_INET6
                          ? ntohs(((struct sockaddr_in6 *)&s->addr)->sin6_port)
                          : ntohs(((struct sockaddr_in *)&s->addr)->sin_port);
    }
    r = listen_socket(s, lc, err);
    if (r < 0) {
        goto fail;
    }
    s->fds[0] = r;
    r = 0;
    for (unsigned i = 1; i < (s->is_unix ? 1 : n_workers); i++) {
        s->fds[i] = fcntl(s->fds[0], F_DUPFD_CLOEXEC, 0);
        if (s->fds[i] < 0) {
            r = pk_err_set(err, -errno, "[%s %s] listen %s: dup: %s",
                           pk_listener_kind_name(lc->kind), lc->name, s->listen, strerror(errno));
            goto fail;
        }
    }
    *out = s;
    return 0;
fail:
    lsock_unref(s);
    return r;
}

/* A listener for lc on socket set sock (a reference is taken), its settings checked. */
static int listener_new(const struct pk_listener_config *lc, const char *ns, uint32_t mark,
                        struct lsock *sock, unsigned n_workers, struct listener **out,
                        struct pk_err *err)
{
    struct listener *l;
    struct pk_policy *probe = NULL;
    struct sockaddr_storage target = {0};
    socklen_t target_len = 0;
    struct pk_dst_rule *rules = NULL;
    size_t n_rules = 0;
    int r = 0;

    /* A transparent listener's targets are the original destinations. */
    if (lc->target != NULL) {
        r = parse_addr(lc->target, &target, &target_len, err);
        if (r != 0) {
            return pk_err_prefix(err, r, "[%s %s] target", pk_listener_kind_name(lc->kind),
                                 lc->name);
        }
    }
    /* Policies are built per identity (they depend on our trust domain); build one now so a
     * bad rule stops the start (or the reload) instead of the first connection. */
    r = build_policy(lc, "picket.check", ns, &probe, err);
    pk_policy_free(probe);
    if (r != 0) {
        return r;
    }
    /* The same for each map line: parsed once here, a policy per line for a stand-in ID. */
    if (lc->n_map > 0) {
        rules = pk_xcalloc(lc->n_map, sizeof(*rules));
    }
    for (size_t k = 0; r == 0 && k < lc->n_map; k++) {
        r = pk_dst_rule_parse(lc->map[k], &rules[k], err);
        if (r == 0) {
            n_rules = k + 1;
            r = build_rule_policy(&rules[k], "picket.check", ns, &probe, err);
            pk_policy_free(probe);
            probe = NULL;
        }
        if (r != 0) {
            pk_err_prefix(err, r, "[transparent %s] map", lc->name);
        }
    }
    if (r != 0) {
        for (size_t k = 0; k < n_rules; k++) {
            pk_dst_rule_clear(&rules[k]);
        }
        free(rules);
        return r;
    }
    l = pk_xcalloc(1, sizeof(*l));
    atomic_init(&l->refs, 1);
    l->mark = mark;
    l->rules = rules;
    l->n_rules = n_rules;
    pk_listener_config_copy(&l->cfg, lc);
    l->sock = lsock_ref(sock);
    l->target = target;
    l->target_len = target_len;
    l->limits = (struct pk_conn_limits){
            .connect_timeout = lc->connect_timeout,
            .handshake_timeout = lc->handshake_timeout,
            .idle_timeout = lc->idle_timeout,
            .max_lifetime = lc->max_lifetime,
            .buffer_size = lc->buffer_size,
    };
    l->watch = pk_xcalloc(n_workers, sizeof(*l->watch));
    *out = l;
    return 0;
}

/* ---- connections ---------------------------------------------------------------------------- */

static void maybe_finish(struct worker *w);
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
    char peer_id[300], detail[300];

    atomic_fetch_sub(&l->active, 1);
    atomic_fetch_add(&l->bytes_in, s->bytes_in);
    atomic_fetch_add(&l->bytes_out, s->bytes_out);
    if (!pc->established) {
        atomic_fetch_sub(&l->handshaking, 1);
    }
    if ((unsigned)s->reason < PK_PROXY_CLOSE_REASONS) {
        atomic_fetch_add(&l->closed[s->reason], 1);
    }
    PK_LOG_INFO("connection closed listener=%s peer=%s peer_id=\"%s\" bytes_in=%llu "
                "bytes_out=%llu duration=%.3fs reason=%s detail=\"%s\"",
                s->listener, s->peer_addr, pk_log_escape(peer_id, sizeof(peer_id), s->peer_id),
                (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out, s->duration,
                pk_conn_close_reason_name(s->reason),
                pk_log_escape(detail, sizeof(detail), s->detail));
    pc_unlink(w, pc);
    gen_unref(pc->gen);
    free(pc);
    maybe_finish(w);
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
static void pc_finish(struct proxied *pc, enum pk_conn_close_reason reason, const char *detail)
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

/* ---- re-checks ------------------------------------------------------------------------------ */

static bool same_anchors(const struct gen *a, const struct gen *b)
{
    struct pk_slice x = pk_identity_trusted_anchors_pem(a->id);
    struct pk_slice y = pk_identity_trusted_anchors_pem(b->id);
    return x.len == y.len && memcmp(x.ptr, y.ptr, x.len) == 0;
}

/* The policy in g for pc's listener: the same listener's, or that of the listener of the same
 * kind that took over its address with new settings; NULL when its listener is gone from g
 * (its connections then run on under the rules they started with). For a transparent
 * connection it is the policy of the map line that covers its destination in g's listener;
 * *unmapped is set when no line there names an identity for it any more. */
static struct pk_policy *policy_in(const struct gen *g, const struct proxied *pc, bool *unmapped)
{
    const struct listener *l = pc->gen->listeners[pc->li];
    size_t i = g->n;

    *unmapped = false;
    for (size_t k = 0; k < g->n && i == g->n; k++) {
        if (g->listeners[k] == l) {
            i = k;
        }
    }
    for (size_t k = 0; k < g->n && i == g->n; k++) {
        if (g->listeners[k]->sock == l->sock && g->listeners[k]->cfg.kind == l->cfg.kind) {
            i = k;
        }
    }
    if (i == g->n) {
        return NULL;
    }
    if (!pc->transparent) {
        return g->policies[i];
    }
    const struct listener *gl = g->listeners[i];
    const struct pk_dst_rule *rule =
            pk_dst_lookup(gl->rules, gl->n_rules, (const struct sockaddr *)&pc->dst);
    struct pk_policy *p = rule != NULL ? g->map_policies[i][rule - gl->rules] : NULL;
    *unmapped = p == NULL;
    return p;
}

/* Would the peer of pc, verified under its own generation, still be let in under g? When the
 * anchors differ its chain is verified again (rc is the pass's memo); the listener's policy of
 * g is asked in any case. Closes the connection (reason untrusted) when not; true if closed.
 * Only mTLS connections have a peer: relays and connections still sniffed are left alone. */
static bool recheck_conn(struct proxied *pc, struct gen *g, struct pk_recheck *rc)
{
    const struct pk_cert *leaf = pc->kind == PC_CONN ? pk_conn_peer_leaf(pc->conn) : NULL;
    struct pk_policy *policy;
    struct pk_err err;
    char detail[512];
    bool unmapped;

    pk_err_clear(&err);
    if (leaf == NULL || pc->gen == g) {
        return false; /* not authorized yet: it will be, by g's rules or in conn_established */
    }
    policy = policy_in(g, pc, &unmapped);
    if (!same_anchors(pc->gen, g) &&
        pk_recheck_peer(rc, leaf, pk_conn_peer_chain(pc->conn), &err) != 0) {
        snprintf(detail, sizeof(detail), "peer no longer chains to the trust anchors: %.400s",
                 err.msg);
    } else if (unmapped) {
        snprintf(detail, sizeof(detail), "the destination no longer maps to an identity");
    } else if (policy != NULL && pk_policy_authorize(policy, leaf, NULL, 0, &err) != 0) {
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
        if (pc->kind != PC_CONN || pk_conn_peer_leaf(pc->conn) == NULL || pc->gen == g) {
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

static void mark_established(struct proxied *pc)
{
    if (!pc->established) {
        pc->established = true;
        atomic_fetch_sub(&pc->gen->listeners[pc->li]->handshaking, 1);
    }
}

static void conn_established(void *ctx, struct pk_conn *c)
{
    struct proxied *pc = ctx;
    struct worker *w = pc->w;

    mark_established(pc);
    /* Authorized under a generation that has been replaced since it began: catch up. */
    if (pc->gen != w->current) {
        struct pk_recheck rc;
        pk_recheck_begin(&rc, pk_identity_trusted_anchors(w->current->id));
        (void)recheck_conn(pc, w->current, &rc);
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
    pc->gen = gen_ref(w->current);
    pc->fd = fd;
    pc->peer = *peer;
    pc->peer_len = peer_len;
    atomic_fetch_add(&pc->gen->listeners[li]->total, 1);
    pc->next = w->conns;
    if (w->conns != NULL) {
        w->conns->prev = pc;
    }
    w->conns = pc;
    w->n_conns++;
    return pc;
}

/* Near the descriptor limit accept() can succeed while wolfSSL cannot get the descriptor its
 * RNG needs: the same starvation as EMFILE, handled the same way. pc (whose socket the failed
 * start closed) is dropped without a close line: it never began. */
static void start_failed(struct proxied *pc, const char *why)
{
    struct worker *w = pc->w;
    struct listener *l = pc->gen->listeners[pc->li];
    struct lwatch *lw = &l->watch[w->index];

    if (!lw->starved) {
        PK_LOG_WARN("accept paused: out of resources listener=%s worker=%u error=\"%s\"",
                    l->cfg.name, w->index, why);
        lw->starved = true;
    }
    pause_listener(lw);
    release_slot(l);
    atomic_fetch_sub(&l->total, 1);
    pc_unlink(w, pc);
    gen_unref(pc->gen);
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
            .closed = conn_closed,
            .closed_ctx = pc,
            .established = conn_established,
    };
    struct pk_err err;

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
            .closed = conn_closed,
            .established = relay_established,
            .ctx = pc,
    };
    struct pk_err err;

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
        pc_finish(pc, PK_CLOSE_DENIED, err.msg);
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
        pc_finish(pc, PK_CLOSE_DENIED, detail);
        return;
    case PK_DST_PASSTHROUGH:
        /* Plaintext leaves the host here: say so every time. */
        format_sockaddr(&pc->peer, peer, sizeof(peer));
        PK_LOG_INFO("passthrough without TLS listener=%s peer=%s destination=%s reason=%s",
                    l->cfg.name, peer, where, rule != NULL ? "map" : "unmapped");
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

/* ---- permissive inbound: TLS or plaintext? ----------------------------------------------- */

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
        pc_finish(pc, n == 0 ? PK_CLOSE_DONE : PK_CLOSE_RESET,
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
        pc_finish(pc, PK_CLOSE_HANDSHAKE_TIMEOUT, detail);
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

/* ---- accepting ------------------------------------------------------------------------------ */

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
                if (!lw->starved) {
                    PK_LOG_WARN("accept paused: out of resources listener=%s worker=%u "
                                "error=\"%s\"",
                                l->cfg.name, lw->w->index, strerror(errno));
                    lw->starved = true;
                }
                pause_listener(lw);
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

static bool gen_has(const struct gen *g, const struct listener *l, size_t *index)
{
    for (size_t i = 0; g != NULL && i < g->n; i++) {
        if (g->listeners[i] == l) {
            if (index != NULL) {
                *index = i;
            }
            return true;
        }
    }
    return false;
}

static bool gen_uses_sock(const struct gen *g, const struct lsock *s)
{
    for (size_t i = 0; i < g->n; i++) {
        if (g->listeners[i]->sock == s) {
            return true;
        }
    }
    return false;
}

/* Move this worker's watchers from generation old (may be NULL) to g. */
static void switch_gen(struct worker *w, struct gen *old, struct gen *g)
{
    for (size_t i = 0; old != NULL && i < old->n; i++) {
        struct listener *l = old->listeners[i];
        if (!gen_has(g, l, NULL)) {
            watch_stop(w, l, !gen_uses_sock(g, l->sock));
        }
    }
    for (size_t i = 0; i < g->n; i++) {
        watch_start(w, g->listeners[i], i);
    }
}

static void stop_accepting(struct worker *w)
{
    for (size_t i = 0; w->current != NULL && i < w->current->n; i++) {
        watch_stop(w, w->current->listeners[i], true);
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
        struct proxied *pc = w->conns; /* each close unlinks it */
        switch (pc->kind) {
        case PC_CONN:
            pk_conn_close(pc->conn);
            break;
        case PC_RELAY:
            pk_relay_close(pc->relay);
            break;
        case PC_SNIFF:
            pc_finish(pc, PK_CLOSE_SHUTDOWN, "closed by picket");
            break;
        }
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
        struct gen *old = w->current;
        w->current = g;
        if (!w->draining) {
            switch_gen(w, old, g);
        }
        recheck_all(w, g);
        gen_unref(old);
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

/* Setting SO_MARK needs CAP_NET_ADMIN: find out at start, not on the first connection (which
 * would otherwise fail, or worse, loop through the firewall's redirect). */
static int check_mark(uint32_t mark, struct pk_err *err)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int r = 0;

    if (fd < 0) {
        return pk_err_set(err, -errno, "[proxy] mark: socket: %s", strerror(errno));
    }
    if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0) {
        r = pk_err_set(err, -errno,
                       "[proxy] mark: cannot put mark %#x on sockets (SO_MARK needs "
                       "CAP_NET_ADMIN): %s",
                       (unsigned)mark, strerror(errno));
    }
    close(fd);
    return r;
}

static unsigned worker_count(const struct pk_proxy_options *cfg)
{
    long n = cfg->workers;
    if (n <= 0) {
        n = sysconf(_SC_NPROCESSORS_ONLN);
    }
    return (unsigned)(n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : n);
}

static void free_set(struct listener **set, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        listener_unref(set[i]);
    }
    free(set);
}

/* Build the listener set of cfg, reusing from old (n_old) what has not changed. On success
 * *out holds n = cfg->n_listeners references; counts go to the optional outputs. */
static int build_set(struct pk_proxy *px, const struct pk_proxy_options *cfg, struct listener **old,
                     size_t n_old, struct listener ***out, size_t *added, size_t *changed_out,
                     struct pk_err *err)
{
    size_t n = cfg->n_listeners, n_added = 0, n_changed = 0;
    struct listener **set = pk_xcalloc(n > 0 ? n : 1, sizeof(*set));
    int r = 0;

    for (size_t i = 0; i < n; i++) {
        const struct pk_listener_config *lc = &cfg->listeners[i];
        struct lsock *sock = NULL;
        bool renamed_or_changed = false;

        /* Two listeners on one address would split its connections between two policies. */
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cfg->listeners[j].listen, lc->listen) == 0) {
                r = pk_err_set(
                        err, PK_E_INVALID, "[%s %s] listen %s: already the address of [%s %s]",
                        pk_listener_kind_name(lc->kind), lc->name, lc->listen,
                        pk_listener_kind_name(cfg->listeners[j].kind), cfg->listeners[j].name);
                goto fail;
            }
        }
        for (size_t j = 0; j < n_old && set[i] == NULL; j++) {
            if (pk_listener_config_equal(&old[j]->cfg, lc)) {
                set[i] = listener_ref(old[j]);
            }
        }
        if (set[i] != NULL) {
            continue;
        }
        for (size_t j = 0; j < n_old && sock == NULL; j++) {
            if (strcmp(old[j]->cfg.listen, lc->listen) == 0) {
                sock = lsock_ref(old[j]->sock);
                renamed_or_changed = true;
            }
        }
        if (sock == NULL) {
            r = lsock_new(lc, px->n_workers, &sock, err);
            if (r != 0) {
                goto fail;
            }
        }
        r = listener_new(lc, px->namespace_, px->mark, sock, px->n_workers, &set[i], err);
        lsock_unref(sock);
        if (r != 0) {
            goto fail;
        }
        if (renamed_or_changed) {
            n_changed++;
        } else {
            n_added++;
        }
    }
    *out = set;
    if (added != NULL) {
        *added = n_added;
    }
    if (changed_out != NULL) {
        *changed_out = n_changed;
    }
    return 0;
fail:
    free_set(set, n);
    return r;
}

static void log_listener(const struct listener *l, const char *what, unsigned n_workers)
{
    PK_LOG_INFO("listener %s kind=%s name=%s listen=%s port=%u target=%s workers=%u", what,
                pk_listener_kind_name(l->cfg.kind), l->cfg.name, l->cfg.listen, l->sock->port,
                l->cfg.target != NULL ? l->cfg.target : "original-destination",
                l->sock->is_unix ? 1 : n_workers);
}

int pk_proxy_new(const struct pk_proxy_options *cfg, struct pk_identity_slot *slot,
                 struct pk_proxy **out, struct pk_err *err)
{
    struct pk_proxy *px = pk_xcalloc(1, sizeof(*px));
    int r = 0;

    px->slot = slot;
    px->namespace_ = pk_xstrdup(cfg->namespace_);
    px->mark = (uint32_t)cfg->mark;
    if (cfg->mark != 0 && cfg->n_listeners > 0) {
        r = check_mark(px->mark, err);
        if (r != 0) {
            goto fail;
        }
    }
    px->n_workers = worker_count(cfg);
    px->workers = pk_xcalloc(px->n_workers, sizeof(*px->workers));
    for (unsigned wi = 0; wi < px->n_workers; wi++) {
        struct worker *w = &px->workers[wi];
        w->px = px;
        w->index = wi;
        pthread_mutex_init(&w->lock, NULL);
        w->loop = ev_loop_new(EVFLAG_AUTO);
        if (w->loop == NULL) {
            r = pk_err_set(err, -ENOMEM, "cannot create an event loop for worker %u", wi);
            goto fail;
        }
        ev_async_init(&w->wake, wake_cb);
        w->wake.data = w;
        ev_async_start(w->loop, &w->wake);
    }
    r = build_set(px, cfg, NULL, 0, &px->listeners, NULL, NULL, err);
    if (r != 0) {
        goto fail;
    }
    px->n_listeners = cfg->n_listeners;
    for (size_t i = 0; i < px->n_listeners; i++) {
        log_listener(px->listeners[i], "ready", px->n_workers);
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

/* Hand every worker a generation of the current identity and listener set. */
static void publish(struct pk_proxy *px)
{
    struct pk_identity *id = pk_identity_slot_get(px->slot);
    struct pk_err err;

    if (id == NULL) {
        return; /* nothing is accepted before the first identity */
    }
    pk_err_clear(&err);
    for (unsigned wi = 0; wi < px->n_workers; wi++) {
        struct worker *w = &px->workers[wi];
        struct gen *g = gen_new(px, id, &err);
        if (g == NULL) {
            /* The rules were checked when the set was built; only an ID we cannot express
             * gets here. */
            PK_LOG_ERR("proxy keeps the previous identity error=\"%s\"", err.msg);
            break;
        }
        pthread_mutex_lock(&w->lock);
        gen_unref(w->pending);
        w->pending = g;
        pthread_mutex_unlock(&w->lock);
        ev_async_send(w->loop, &w->wake);
    }
    pk_identity_unref(id);
}

void pk_proxy_identity_changed(struct pk_proxy *px)
{
    publish(px);
}

int pk_proxy_update(struct pk_proxy *px, const struct pk_proxy_options *cfg, size_t *added,
                    size_t *removed, size_t *changed_out, struct pk_err *err)
{
    struct listener **set = NULL;
    size_t n_added = 0, n_changed = 0, n_kept = 0;
    int r;

    r = build_set(px, cfg, px->listeners, px->n_listeners, &set, &n_added, &n_changed, err);
    if (r != 0) {
        return r;
    }
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        bool kept = false;
        for (size_t j = 0; j < px->n_listeners && !kept; j++) {
            kept = set[i] == px->listeners[j];
        }
        n_kept += kept;
        if (!kept) {
            log_listener(set[i], "ready", px->n_workers);
        }
    }
    for (size_t j = 0; j < px->n_listeners; j++) {
        bool gone = true;
        for (size_t i = 0; i < cfg->n_listeners && gone; i++) {
            gone = set[i] != px->listeners[j];
        }
        if (gone) {
            log_listener(px->listeners[j], "retired", px->n_workers);
        }
    }
    size_t n_old = px->n_listeners;
    free_set(px->listeners, px->n_listeners);
    px->listeners = set;
    px->n_listeners = cfg->n_listeners;
    publish(px);
    if (added != NULL) {
        *added = n_added;
    }
    if (changed_out != NULL) {
        *changed_out = n_changed;
    }
    if (removed != NULL) {
        /* Every old listener not kept as it was either changed (a new one took its address:
         * addresses are unique in each set) or is gone. */
        *removed = n_old - n_kept - n_changed;
    }
    return 0;
}

void pk_proxy_set_change_hook(struct pk_proxy *px, void (*fn)(void *ctx), void *ctx)
{
    px->hook = fn;
    px->hook_ctx = ctx;
}

size_t pk_proxy_listener_count(const struct pk_proxy *px)
{
    return px->n_listeners;
}

void pk_proxy_listener_stats(const struct pk_proxy *px, size_t i, struct pk_listener_stats *out)
{
    const struct listener *l = px->listeners[i];
    const struct lsock *s = l->sock;
    uint64_t closed[PK_PROXY_CLOSE_REASONS];
    unsigned want = s->is_unix ? 1 : px->n_workers;

    for (size_t k = 0; k < PK_PROXY_CLOSE_REASONS; k++) {
        closed[k] = atomic_load(&l->closed[k]);
    }
    *out = (struct pk_listener_stats){
            .name = l->cfg.name,
            .listen = l->cfg.listen,
            .inbound = l->cfg.kind == PK_LISTENER_INBOUND,
            .kind = pk_listener_kind_name(l->cfg.kind),
            .passthrough = atomic_load(&l->passthrough),
            .plaintext = atomic_load(&l->plaintext),
            .tls = atomic_load(&l->tls),
            .up = atomic_load(&l->accepting) >= want,
            .active = atomic_load(&l->active),
            .total = atomic_load(&l->total),
            .handshaking = atomic_load(&l->handshaking),
            .bytes_in = atomic_load(&l->bytes_in),
            .bytes_out = atomic_load(&l->bytes_out),
            .handshake_failed = closed[PK_CLOSE_HANDSHAKE_FAILED],
            .denied = closed[PK_CLOSE_DENIED],
            .connect_failed = closed[PK_CLOSE_CONNECT_FAILED],
            .timeouts = closed[PK_CLOSE_HANDSHAKE_TIMEOUT] + closed[PK_CLOSE_CONNECT_TIMEOUT] +
                        closed[PK_CLOSE_IDLE_TIMEOUT],
            .resets = closed[PK_CLOSE_RESET] + closed[PK_CLOSE_TLS_ERROR],
            .port = s->port,
    };
    memcpy(out->closed, closed, sizeof(closed));
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
            /* A worker that never ran (a failed start) has no watchers; one that ran stopped
             * its own before its loop ended. */
            ev_async_stop(w->loop, &w->wake);
            ev_loop_destroy(w->loop);
        }
        gen_unref(w->pending);
        gen_unref(w->current);
        pthread_mutex_destroy(&w->lock);
    }
    free_set(px->listeners, px->n_listeners);
    free(px->workers);
    free(px->namespace_);
    free(px);
}
