/* SPDX-License-Identifier: Apache-2.0 */
/* picket: c-ares on libev. */
#include "net/resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/mem.h"

/* c-ares opens a socket or two per server; more than this many at once means something is
 * badly wrong, and the extra ones are refused (their queries time out). */
#define MAX_SOCKETS 32

struct name {
    struct pk_resolver *r;
    char *host;
    uint16_t port;
    char label[300]; /* host:port */
    struct pk_addrset_slot slot;
    struct pk_addrset *last; /* our reference to what the slot holds */
    ev_timer refresh;
    bool in_flight;
    bool settled; /* a lookup has ended */
    uint64_t answers, failures, changes;
    double answered_at; /* ev_now of the last good answer; 0 before one */
    double ttl;
    char last_error[160];
};

struct sock_watch {
    ev_io io;
    bool used;
};

struct pk_resolver {
    struct ev_loop *loop;
    ares_channel channel;
    bool channel_ready;
    struct pk_resolver_options opts;
    ev_timer timeout;
    struct sock_watch socks[MAX_SOCKETS];
    struct name **names;
    size_t n_names;
    void (*hook)(void *ctx);
    void *hook_ctx;
};

static void lookup(struct name *n);

/* Follow ares_timeout: the earliest moment c-ares wants to retransmit or give up. */
static void update_timer(struct pk_resolver *r)
{
    struct timeval tv, *tvp = ares_timeout(r->channel, NULL, &tv);

    ev_timer_stop(r->loop, &r->timeout);
    if (tvp != NULL) {
        ev_timer_set(&r->timeout, (double)tvp->tv_sec + (double)tvp->tv_usec / 1e6, 0.);
        ev_timer_start(r->loop, &r->timeout);
    }
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct pk_resolver *r = w->data;
    (void)loop;
    (void)revents;
    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    update_timer(r);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct pk_resolver *r = w->data;
    int fd = w->fd;
    (void)loop;
    ares_process_fd(r->channel, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    update_timer(r);
}

/* c-ares says which sockets to watch for what; none of both means it closed the socket. */
static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    struct pk_resolver *r = data;
    struct sock_watch *free_slot = NULL;

    for (size_t i = 0; i < MAX_SOCKETS; i++) {
        struct sock_watch *s = &r->socks[i];
        if (!s->used) {
            free_slot = free_slot != NULL ? free_slot : s;
            continue;
        }
        if (s->io.fd != fd) {
            continue;
        }
        ev_io_stop(r->loop, &s->io);
        if (!readable && !writable) {
            s->used = false;
            return;
        }
        ev_io_set(&s->io, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
        ev_io_start(r->loop, &s->io);
        return;
    }
    if (!readable && !writable) {
        return;
    }
    if (free_slot == NULL) {
        PK_LOG_ERR("dns resolver out of socket watchers max=%d: a query will time out",
                   MAX_SOCKETS);
        return;
    }
    free_slot->used = true;
    ev_io_init(&free_slot->io, io_cb, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    free_slot->io.data = r;
    ev_io_start(r->loop, &free_slot->io);
}

static void schedule(struct name *n, double after)
{
    ev_timer_stop(n->r->loop, &n->refresh);
    ev_timer_set(&n->refresh, after, 0.);
    ev_timer_start(n->r->loop, &n->refresh);
}

static void refresh_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    lookup(w->data);
}

static void answered(struct name *n, struct ares_addrinfo *res)
{
    struct sockaddr_storage addrs[PK_ADDRSET_MAX];
    socklen_t lens[PK_ADDRSET_MAX];
    struct pk_addrset *set;
    char shown[512];
    size_t count = 0;
    int min_ttl = -1;

    for (struct ares_addrinfo_node *ai = res->nodes; ai != NULL && count < PK_ADDRSET_MAX;
         ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            (size_t)ai->ai_addrlen > sizeof(addrs[0])) {
            continue;
        }
        memset(&addrs[count], 0, sizeof(addrs[count]));
        memcpy(&addrs[count], ai->ai_addr, ai->ai_addrlen);
        lens[count] = (socklen_t)ai->ai_addrlen;
        count++;
        if (min_ttl < 0 || ai->ai_ttl < min_ttl) {
            min_ttl = ai->ai_ttl;
        }
    }
    if (count == 0) {
        n->failures++;
        snprintf(n->last_error, sizeof(n->last_error), "no IPv4 or IPv6 address in the answer");
        PK_LOG_WARN("dns lookup failed name=%s error=\"no address in the answer\" keeping=%s",
                    n->label, n->last != NULL ? "last-answer" : "none");
        schedule(n, n->r->opts.ttl_min);
        return;
    }
    n->answers++;
    n->answered_at = ev_now(n->r->loop);
    n->last_error[0] = '\0';
    n->ttl = pk_dns_ttl_clamp(min_ttl < 0 ? 0 : (double)min_ttl, n->r->opts.ttl_min,
                              n->r->opts.ttl_max);
    set = pk_addrset_new(addrs, lens, count, n->port);
    if (pk_addrset_equal(set, n->last)) {
        pk_addrset_unref(set);
    } else {
        n->changes++;
        pk_addrset_format(set, shown, sizeof(shown));
        PK_LOG_INFO("dns answer name=%s addresses=\"%s\" ttl=%gs", n->label, shown, n->ttl);
        pk_addrset_unref(n->last);
        n->last = pk_addrset_ref(set);
        pk_addrset_slot_publish(&n->slot, set);
    }
    schedule(n, n->ttl);
}

static void lookup_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct name *n = arg;
    (void)timeouts;

    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
        ares_freeaddrinfo(res);
        return; /* the resolver is going away; n may be too */
    }
    n->in_flight = false;
    n->settled = true;
    if (status == ARES_SUCCESS && res != NULL) {
        answered(n, res);
    } else {
        n->failures++;
        snprintf(n->last_error, sizeof(n->last_error), "%s", ares_strerror(status));
        PK_LOG_WARN("dns lookup failed name=%s error=\"%s\" keeping=%s retry_in=%gs", n->label,
                    ares_strerror(status), n->last != NULL ? "last-answer" : "none",
                    n->r->opts.ttl_min);
        schedule(n, n->r->opts.ttl_min);
    }
    ares_freeaddrinfo(res);
    if (n->r->hook != NULL) {
        n->r->hook(n->r->hook_ctx);
    }
}

static void lookup(struct name *n)
{
    struct ares_addrinfo_hints hints = {
            .ai_family = AF_UNSPEC,
            .ai_socktype = SOCK_STREAM,
            /* No RFC 6724 sorting: it probes each address with a UDP connect(); the order of
             * the answer is kept, and connections rotate over it anyway. */
            .ai_flags = ARES_AI_NOSORT,
    };

    if (n->in_flight) {
        return;
    }
    n->in_flight = true;
    /* The answer may come back from inside this call (/etc/hosts). */
    ares_getaddrinfo(n->r->channel, n->host, NULL, &hints, lookup_cb, n);
    update_timer(n->r);
}

int pk_resolver_new(struct ev_loop *loop, const struct pk_resolver_options *opts,
                    struct pk_resolver **out, struct pk_err *err)
{
    struct pk_resolver *r = pk_xcalloc(1, sizeof(*r));
    struct ares_options ao = {0};
    int rc;

    r->loop = loop;
    r->opts = *opts;
    r->opts.servers = NULL; /* not kept: only used here */
    ev_timer_init(&r->timeout, timeout_cb, 0., 0.);
    r->timeout.data = r;
    rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        rc = pk_err_set(err, PK_E_INVALID, "dns: c-ares: %s", ares_strerror(rc));
        goto fail;
    }
    ao.sock_state_cb = sock_state_cb;
    ao.sock_state_cb_data = r;
    ao.timeout = (int)(opts->timeout * 1000);
    ao.tries = 2;
    rc = ares_init_options(&r->channel, &ao,
                           ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (rc != ARES_SUCCESS) {
        rc = pk_err_set(err, PK_E_INVALID, "dns: cannot start the resolver: %s", ares_strerror(rc));
        ares_library_cleanup();
        goto fail;
    }
    r->channel_ready = true;
    if (opts->servers != NULL) {
        rc = ares_set_servers_ports_csv(r->channel, opts->servers);
        if (rc != ARES_SUCCESS) {
            rc = pk_err_set(err, PK_E_INVALID, "[dns] servers: %s", ares_strerror(rc));
            goto fail;
        }
    }
    *out = r;
    return 0;
fail:
    pk_resolver_free(r);
    return rc;
}

struct pk_addrset_slot *pk_resolver_watch(struct pk_resolver *r, const char *host, uint16_t port)
{
    struct name *n;

    for (size_t i = 0; i < r->n_names; i++) {
        if (r->names[i]->port == port && strcasecmp(r->names[i]->host, host) == 0) {
            return &r->names[i]->slot;
        }
    }
    n = pk_xcalloc(1, sizeof(*n));
    n->r = r;
    n->host = pk_xstrdup(host);
    n->port = port;
    snprintf(n->label, sizeof(n->label), "%s:%u", host, port);
    pk_addrset_slot_init(&n->slot);
    ev_timer_init(&n->refresh, refresh_cb, 0., 0.);
    n->refresh.data = n;
    r->names = pk_xrealloc(r->names, (r->n_names + 1) * sizeof(*r->names));
    r->names[r->n_names++] = n;
    lookup(n);
    return &n->slot;
}

void pk_resolver_set_hook(struct pk_resolver *r, void (*fn)(void *ctx), void *ctx)
{
    r->hook = fn;
    r->hook_ctx = ctx;
}

bool pk_resolver_settled(const struct pk_resolver *r, const struct pk_addrset_slot *slot)
{
    for (size_t i = 0; i < r->n_names; i++) {
        if (&r->names[i]->slot == slot) {
            return r->names[i]->settled;
        }
    }
    return true;
}

size_t pk_resolver_count(const struct pk_resolver *r)
{
    return r != NULL ? r->n_names : 0;
}

void pk_resolver_stats(const struct pk_resolver *r, size_t i, struct pk_resolver_stats *out)
{
    const struct name *n = r->names[i];

    *out = (struct pk_resolver_stats){
            .name = n->label,
            .answers = n->answers,
            .failures = n->failures,
            .changes = n->changes,
            .age = n->answered_at > 0 ? ev_now(r->loop) - n->answered_at : -1,
            .ttl = n->ttl,
    };
    pk_addrset_format(n->last, out->addresses, sizeof(out->addresses));
    snprintf(out->last_error, sizeof(out->last_error), "%s", n->last_error);
}

void pk_resolver_free(struct pk_resolver *r)
{
    if (r == NULL) {
        return;
    }
    if (r->channel_ready) {
        /* Calls every pending callback with ARES_EDESTRUCTION, which touches nothing. */
        ares_destroy(r->channel);
        ares_library_cleanup();
    }
    ev_timer_stop(r->loop, &r->timeout);
    for (size_t i = 0; i < MAX_SOCKETS; i++) {
        if (r->socks[i].used) {
            ev_io_stop(r->loop, &r->socks[i].io);
        }
    }
    for (size_t i = 0; i < r->n_names; i++) {
        struct name *n = r->names[i];
        ev_timer_stop(r->loop, &n->refresh);
        pk_addrset_unref(n->last);
        pk_addrset_slot_destroy(&n->slot);
        free(n->host);
        free(n);
    }
    free(r->names);
    free(r);
}
