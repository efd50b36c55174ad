/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the proxy's listener sockets and listener sets. */
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
        struct sockaddr_un *un = (struct sockaddr_un *)&s->addr;
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
            return pk_err_set(err, -e, "[%s %s] listen %s: SO_REUSEPORT: %s",
                              pk_listener_kind_name(lc->kind), lc->name, s->listen, strerror(e));
        }
        if (s->addr.ss_family == AF_INET6) {
            (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        }
    }
    if (bind(fd, (struct sockaddr *)&s->addr, s->addr_len) != 0 ||
        listen(fd, LISTEN_BACKLOG) != 0) {
        int e = errno;
        close(fd);
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

/* The socket set for lc's listen address, bound on every worker (worker 0 only for a unix
 * socket, which SO_REUSEPORT cannot share). */
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
    for (unsigned i = 0; i < (s->is_unix ? 1 : n_workers); i++) {
        int fd = listen_socket(s, lc, err);
        if (fd < 0) {
            r = fd;
            goto fail;
        }
        s->fds[i] = fd;
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
    /* Policies are built per identity (they depend on our trust domain); build one now so a
     * bad rule stops the start (or the reload) instead of the first connection. */
    r = proxy_build_policy(lc, "picket.check", ns, &probe, err);
    pk_policy_free(probe);
    if (r != 0) {
        return r;
    }
    /* The same for each map line (parsed with the configuration), a policy per line. */
    if (lc->n_map > 0 && lc->map_rules == NULL) {
        return pk_err_set(err, PK_E_INVALID, "[transparent %s] map: the lines were not parsed",
                          lc->name);
    }
    for (size_t k = 0; r == 0 && k < lc->n_map; k++) {
        r = proxy_build_rule_policy(&lc->map_rules[k], "picket.check", ns, &probe, err);
        pk_policy_free(probe);
        probe = NULL;
        if (r != 0) {
            return pk_err_prefix(err, r, "[transparent %s] map", lc->name);
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
