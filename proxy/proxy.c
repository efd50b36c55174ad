/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the proxy's worker loops and its public side (proxy/proxy.h); the other parts are
 * proxy/listen.c, proxy/gen.c and proxy/accept.c (proxy/proxy_impl.h lists them).
 *
 * Implementation notes.
 *
 * A "socket set" (struct lsock) is the listening sockets of one address: one per worker for TCP
 * (SO_REUSEPORT), one on worker 0 for a unix socket. A "listener" (struct listener) is one
 * [inbound NAME] or [outbound NAME] section: its own copy of the settings, its target, its
 * counters, a reference on its socket set, and per worker the accept watcher state (struct
 * lwatch), touched only by that worker's thread. A "generation" (struct gen) is the identity, the
 * listener set and the policies built for both: built once per change of either, never changed
 * afterwards, and shared by the workers. All three are refcounted: the main thread holds
 * the current listener set (the identity is read from the slot); each worker holds its current
 * generation; each connection holds the generation it started with, so a listener (its name, its
 * counters) lives as long as its last connection.
 *
 * A worker that takes a new generation stops the watchers of listeners not in it and starts
 * those of new ones; a dropped listener's sockets are closed right there (per worker) unless a
 * listener of the new set shares them, so a removed port refuses connections at once instead of
 * holding them in a backlog nobody accepts from. */
#include "proxy/proxy_impl.h"

void proxy_maybe_finish(struct worker *w)
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
            proxy_pc_finish(pc, PK_CLOSE_SHUTDOWN, "closed by picket");
            break;
        }
    }
    proxy_maybe_finish(w);
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
            proxy_switch_gen(w, old, g);
        }
        proxy_recheck_all(w, g);
        proxy_gen_unref(old);
    }
    if (stopping && !w->draining) {
        proxy_stop_accepting(w);
        w->draining = true;
        ev_timer_init(&w->drain_timer, drain_timeout_cb, drain > 0 ? drain : 0.001, 0.0);
        w->drain_timer.data = w;
        ev_timer_start(loop, &w->drain_timer);
        proxy_maybe_finish(w);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    ev_run(w->loop, 0);
    pk_tls_thread_exit();
    return NULL;
}

static unsigned worker_count(const struct pk_proxy_options *cfg)
{
    long n = cfg->workers;
    if (n <= 0) {
        n = sysconf(_SC_NPROCESSORS_ONLN);
    }
    return (unsigned)(n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : n);
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
        r = proxy_check_mark(px->mark, err);
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
    r = proxy_build_set(px, cfg, NULL, 0, &px->listeners, NULL, NULL, err);
    if (r != 0) {
        goto fail;
    }
    px->n_listeners = cfg->n_listeners;
    for (size_t i = 0; i < px->n_listeners; i++) {
        proxy_log_listener(px->listeners[i], "ready", px->n_workers);
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
    struct gen *g;

    if (id == NULL) {
        return; /* nothing is accepted before the first identity */
    }
    pk_err_clear(&err);
    /* One generation for all workers: it never changes once built, and its count of references
     * is atomic. */
    g = proxy_gen_new(px, id, &err);
    pk_identity_unref(id);
    if (g == NULL) {
        /* The rules were checked when the set was built; only an ID we cannot express gets
         * here. */
        PK_LOG_ERR("proxy keeps the previous identity error=\"%s\"", err.msg);
        return;
    }
    for (unsigned wi = 0; wi < px->n_workers; wi++) {
        struct worker *w = &px->workers[wi];
        pthread_mutex_lock(&w->lock);
        proxy_gen_unref(w->pending);
        w->pending = proxy_gen_ref(g);
        pthread_mutex_unlock(&w->lock);
        ev_async_send(w->loop, &w->wake);
    }
    proxy_gen_unref(g);
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

    r = proxy_build_set(px, cfg, px->listeners, px->n_listeners, &set, &n_added, &n_changed, err);
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
            proxy_log_listener(set[i], "ready", px->n_workers);
        }
    }
    for (size_t j = 0; j < px->n_listeners; j++) {
        bool gone = true;
        for (size_t i = 0; i < cfg->n_listeners && gone; i++) {
            gone = set[i] != px->listeners[j];
        }
        if (gone) {
            proxy_log_listener(px->listeners[j], "retired", px->n_workers);
        }
    }
    size_t n_old = px->n_listeners;
    proxy_free_set(px->listeners, px->n_listeners);
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

const double pk_handshake_bucket_le[PK_HANDSHAKE_BUCKETS] = {
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
};

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
    uint64_t bytes_in = 0, bytes_out = 0;

    for (size_t k = 0; k < PK_PROXY_CLOSE_REASONS; k++) {
        closed[k] = atomic_load(&l->closed[k]);
    }
    for (unsigned wi = 0; wi < l->n_bytes; wi++) {
        bytes_in += atomic_load_explicit(&l->bytes[wi].in, memory_order_relaxed);
        bytes_out += atomic_load_explicit(&l->bytes[wi].out, memory_order_relaxed);
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
            .bytes_in = bytes_in,
            .bytes_out = bytes_out,
            .handshake_failed = closed[PK_CLOSE_HANDSHAKE_FAILED],
            .denied = closed[PK_CLOSE_DENIED],
            .connect_failed = closed[PK_CLOSE_CONNECT_FAILED],
            .timeouts = closed[PK_CLOSE_HANDSHAKE_TIMEOUT] + closed[PK_CLOSE_CONNECT_TIMEOUT] +
                        closed[PK_CLOSE_IDLE_TIMEOUT],
            .resets = closed[PK_CLOSE_RESET] + closed[PK_CLOSE_TLS_ERROR],
            .port = s->port,
    };
    memcpy(out->closed, closed, sizeof(closed));
    for (unsigned wi = 0; wi < l->n_bytes; wi++) {
        uint64_t cumulative = 0;
        for (size_t b = 0; b <= PK_HANDSHAKE_BUCKETS; b++) {
            cumulative += atomic_load_explicit(&l->hist[wi].bucket[b], memory_order_relaxed);
            out->handshake_le[b] += cumulative;
        }
        out->handshake_seconds_sum +=
                (double)atomic_load_explicit(&l->hist[wi].sum_ns, memory_order_relaxed) / 1e9;
    }
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
        proxy_gen_unref(w->pending);
        proxy_gen_unref(w->current);
        pthread_mutex_destroy(&w->lock);
    }
    proxy_free_set(px->listeners, px->n_listeners);
    free(px->workers);
    free(px->namespace_);
    free(px);
}
