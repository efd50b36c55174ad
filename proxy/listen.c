/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the proxy's listener sockets and listener sets. */
#include <fcntl.h>

#include "common/fsutil.h"
#include "proxy/proxy_impl.h"

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

struct listener *proxy_listener_ref(struct listener *l)
{
    atomic_fetch_add(&l->refs, 1);
    return l;
}

void proxy_listener_unref(struct listener *l)
{
    if (l == NULL || atomic_fetch_sub(&l->refs, 1) != 1) {
        return;
    }
    lsock_unref(l->sock);
    pk_listener_config_clear(&l->cfg); /* l->rules with it */
    for (unsigned i = 0; i < l->n_watch; i++) {
        pk_addrset_unref(l->watch[i].addrs);
    }
    free(l->watch);
    free(l->bytes);
    free(l->hist);
    free(l);
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
            /* A changed listener on this address finds it by the port it got. */
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
 * each wake-up accepts up to ACCEPT_BATCH connections. */
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
    if (lc->listen_addr.sa_len == 0) {
        r = pk_err_set(err, PK_E_INVALID, "[%s %s] listen %s: the address was not parsed",
                       pk_listener_kind_name(lc->kind), lc->name, lc->listen);
        goto fail;
    }
    s->addr = lc->listen_addr.sa;
    s->addr_len = lc->listen_addr.sa_len;
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

/* An app rule that names no namespace means ours: refuse it when we are configured with none
 * (the generation would, at the first identity). */
static int needs_namespace(const struct pk_policy_rule *rule, const char *ns,
                           const struct pk_listener_config *lc, struct pk_err *err)
{
    if ((rule->kind != PK_ALLOW_APP_ID && rule->kind != PK_EXPECT_APP_ID) || rule->ns != NULL ||
        (ns != NULL && ns[0] != '\0')) {
        return 0;
    }
    return pk_err_set(err, PK_E_INVALID,
                      "[%s %s] %s: '%s' names no namespace and our own SPIFFE ID has none; "
                      "write NAMESPACE/APP",
                      pk_listener_kind_name(lc->kind), lc->name,
                      rule->kind == PK_ALLOW_APP_ID ? "allow_app_id" : "expect_app_id",
                      rule->value);
}

/* A listener for lc on socket set sock (a reference is taken), its settings checked. */
static int listener_new(const struct pk_listener_config *lc, const char *ns, uint32_t mark,
                        struct lsock *sock, unsigned n_workers, struct listener **out,
                        struct pk_err *err)
{
    struct listener *l;
    struct sockaddr_storage target = {0};
    socklen_t target_len = 0;
    int r = 0;

    /* A transparent listener's targets are the original destinations. */
    if (lc->target != NULL && lc->target_addr.kind == PK_ADDR_NAME) {
        if (lc->target_slot == NULL) {
            return pk_err_set(err, PK_E_INVALID,
                              "[%s %s] target %s: a DNS name, but nothing resolves it",
                              pk_listener_kind_name(lc->kind), lc->name, lc->target);
        }
    } else if (lc->target != NULL) {
        if (lc->target_addr.sa_len == 0) {
            return pk_err_set(err, PK_E_INVALID, "[%s %s] target %s: the address was not parsed",
                              pk_listener_kind_name(lc->kind), lc->name, lc->target);
        }
        target = lc->target_addr.sa;
        target_len = lc->target_addr.sa_len;
    }
    /* The rules and map lines were parsed and checked with the configuration. What depends on
     * our identity (our trust domain: the length of an app rule's whole ID) is checked when a
     * generation binds them to one (proxy_gen_new); what depends only on settings is checked
     * here, so that it stops the start (or the reload) instead of the first connection. */
    if (lc->n_map > 0 && lc->map_rules == NULL) {
        return pk_err_set(err, PK_E_INVALID, "[transparent %s] map: the lines were not parsed",
                          lc->name);
    }
    /* An outbound listener without its expected peer would fall back to "any peer of our trust
     * domain". */
    if (lc->kind == PK_LISTENER_OUTBOUND &&
        (lc->n_policy != 1 ||
         (lc->policy[0].kind != PK_EXPECT_SPIFFE_ID && lc->policy[0].kind != PK_EXPECT_APP_ID))) {
        return pk_err_set(err, PK_E_INVALID, "[outbound %s]: the server's identity is missing",
                          lc->name);
    }
    for (size_t i = 0; i < lc->n_policy; i++) {
        r = needs_namespace(&lc->policy[i], ns, lc, err);
        if (r != 0) {
            return r;
        }
    }
    for (size_t k = 0; k < lc->n_map; k++) {
        const struct pk_dst_rule *rule = &lc->map_rules[k];
        struct pk_policy_rule app = {
                .kind = PK_EXPECT_APP_ID, .value = rule->app_id, .ns = rule->app_ns};
        if (rule->action == PK_DST_APP_ID) {
            r = needs_namespace(&app, ns, lc, err);
            if (r != 0) {
                return r;
            }
        }
    }
    l = pk_xcalloc(1, sizeof(*l));
    atomic_init(&l->refs, 1);
    l->mark = mark;
    pk_listener_config_copy(&l->cfg, lc);
    l->rules = l->cfg.map_rules; /* owned by l->cfg */
    l->n_rules = l->cfg.n_map;
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
    l->target_slot =
            lc->target != NULL && lc->target_addr.kind == PK_ADDR_NAME ? lc->target_slot : NULL;
    l->watch = pk_xcalloc(n_workers, sizeof(*l->watch));
    l->n_watch = n_workers;
    l->bytes = aligned_alloc(alignof(struct pk_live_bytes), n_workers * sizeof(*l->bytes));
    if (l->bytes == NULL) {
        abort(); /* as pk_xcalloc does */
    }
    for (unsigned wi = 0; wi < n_workers; wi++) {
        atomic_init(&l->bytes[wi].in, 0);
        atomic_init(&l->bytes[wi].out, 0);
    }
    l->hist = aligned_alloc(alignof(struct handshake_hist), n_workers * sizeof(*l->hist));
    if (l->hist == NULL) {
        abort();
    }
    for (unsigned wi = 0; wi < n_workers; wi++) {
        for (size_t b = 0; b <= PK_HANDSHAKE_BUCKETS; b++) {
            atomic_init(&l->hist[wi].bucket[b], 0);
        }
        atomic_init(&l->hist[wi].sum_ns, 0);
    }
    l->n_bytes = n_workers;
    *out = l;
    return 0;
}

/* Setting SO_MARK needs CAP_NET_ADMIN: find out at start, not on the first connection (which
 * would otherwise fail, or worse, loop through the firewall's redirect). */
int proxy_check_mark(uint32_t mark, struct pk_err *err)
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

void proxy_free_set(struct listener **set, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        proxy_listener_unref(set[i]);
    }
    free(set);
}

/* A reload that moves a listener to an address overlapping a running one's (127.0.0.1:P to
 * 0.0.0.0:P, say) cannot bind while the old socket is open, and the old one is closed only once
 * the new set is in force: it is our own socket in the way, not another process, and err says
 * so. */
static void explain_running_overlap(const struct pk_listener_config *lc, struct listener **old,
                                    size_t n_old, struct pk_err *err)
{
    for (size_t j = 0; j < n_old; j++) {
        const struct pk_listener_config *o = &old[j]->cfg;
        if (pk_addr_overlaps(&o->listen_addr, &lc->listen_addr)) {
            pk_err_set(err, -EADDRINUSE,
                       "[%s %s] listen %s: overlaps the running [%s %s] listen %s: a listener "
                       "moves to an overlapping address only with a restart",
                       pk_listener_kind_name(lc->kind), lc->name, lc->listen,
                       pk_listener_kind_name(o->kind), o->name, o->listen);
            return;
        }
    }
}

/* Build the listener set of cfg, reusing from old (n_old) what has not changed. On success
 * *out holds n = cfg->n_listeners references; counts go to the optional outputs. */
int proxy_build_set(struct pk_proxy *px, const struct pk_proxy_options *cfg, struct listener **old,
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
                set[i] = proxy_listener_ref(old[j]);
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
            if (r == -EADDRINUSE) {
                explain_running_overlap(lc, old, n_old, err);
            }
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
    proxy_free_set(set, n);
    return r;
}

void proxy_log_listener(const struct listener *l, const char *what, unsigned n_workers)
{
    PK_LOG_INFO("listener %s kind=%s name=%s listen=%s port=%u target=%s workers=%u", what,
                pk_listener_kind_name(l->cfg.kind), l->cfg.name, l->cfg.listen, l->sock->port,
                l->cfg.target != NULL ? l->cfg.target : "original-destination",
                l->sock->is_unix ? 1 : n_workers);
}
