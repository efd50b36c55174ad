/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the proxy — listeners from picket.ini served by worker threads.
 *
 * Each worker runs its own libev loop with its own SO_REUSEPORT socket per TCP listener (the
 * kernel spreads connections across them; a unix-socket listener lives on worker 0 only), and
 * shares nothing with the others but the current "generation" pointer and atomic counters.
 *
 * A generation is the identity in force plus the listeners' policies built for it. The main
 * thread publishes a new one after every rotation; each worker picks it up through an
 * ev_async, new connections take a reference to the newest one, and a connection keeps the
 * generation it started with until it closes — so rotation drops nothing and the old identity
 * is freed with its last connection.
 *
 * The listener set is part of the generation too: pk_proxy_update (SIGHUP) builds the new set
 * and publishes it like a new identity, so each worker switches its accept watchers in one step
 * on its own loop and every connection keeps the listener settings it started with.
 *
 * Listening sockets are created (and bind errors reported) in pk_proxy_new and
 * pk_proxy_update; accepting starts with the first identity. */
#ifndef PK_PROXY_PROXY_H
#define PK_PROXY_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/identity.h"
#include "proxy/conn.h"
#include "proxy/listener.h"

struct pk_proxy;

/* The close reasons of proxy/conn.h, PK_CLOSE_DONE to PK_CLOSE_UNTRUSTED (the last). */
#define PK_PROXY_CLOSE_REASONS (PK_CLOSE_UNTRUSTED + 1)

/* Counters per listener, summed over workers. */
/* What the proxy takes from its configuration, borrowed during pk_proxy_new and
 * pk_proxy_update (the proxy copies what it keeps). */
struct pk_proxy_options {
    const struct pk_listener_config *listeners; /* in the order of the file */
    size_t n_listeners;
    long workers;           /* threads; 0 = one per core */
    long mark;              /* SO_MARK on every socket the proxy connects; 0 = none */
    const char *namespace_; /* our namespace: allow_app_id APP means NAMESPACE/APP */
};

/* Upper bounds, in seconds, of the handshake-duration histogram's buckets (then +Inf): from
 * accept to streaming (TLS handshake, authorization and the connection to the target). */
#define PK_HANDSHAKE_BUCKETS 12
extern const double pk_handshake_bucket_le[PK_HANDSHAKE_BUCKETS];

struct pk_listener_stats {
    const char *name;   /* borrowed: valid until the next pk_proxy_update or pk_proxy_free */
    const char *listen; /* the listen address as configured; borrowed likewise */
    bool inbound;
    const char *kind; /* "inbound", "outbound" or "transparent" (static) */
    bool up;          /* every worker that owns one of its sockets is accepting on it */
    uint64_t active;
    uint64_t total;
    uint64_t handshaking;
    uint64_t bytes_in;  /* from the accepted side toward the target */
    uint64_t bytes_out; /* toward the accepted side */
    uint64_t handshake_failed;
    uint64_t denied;
    uint64_t connect_failed;
    uint64_t timeouts;
    uint64_t resets;
    uint64_t passthrough; /* transparent: connections let through without TLS */
    uint64_t plaintext;   /* permissive inbound: clients that spoke plaintext */
    uint64_t tls;         /* permissive inbound: clients that began with a ClientHello */
    uint64_t closed[PK_PROXY_CLOSE_REASONS]; /* connections ended, by enum pk_conn_close_reason */
    /* mTLS connections that reached streaming, by handshake duration: cumulative counts per
     * bound of pk_handshake_bucket_le, then the total (the +Inf bucket), and the sum. */
    uint64_t handshake_le[PK_HANDSHAKE_BUCKETS + 1];
    double handshake_seconds_sum;
    uint16_t port; /* bound TCP port (useful with port 0), 0 for unix */
};

/* Create listening sockets for every listener in cfg (borrowed during the call: the proxy keeps
 * its own copies of what it needs). A bad address or policy rule, two listeners on one address,
 * or a socket that cannot be bound is an error naming the listener; nothing is left open.
 * slot (borrowed; must outlive the proxy) is the one place the current identity is read from:
 * the proxy takes it from there at each pk_proxy_identity_changed and listener update. */
int pk_proxy_new(const struct pk_proxy_options *cfg, struct pk_identity_slot *slot,
                 struct pk_proxy **out, struct pk_err *err) PK_MUST_USE;

/* Start the worker threads. */
int pk_proxy_start(struct pk_proxy *proxy, struct pk_err *err) PK_MUST_USE;

/* Replace the listener set with cfg's (borrowed during the call), from the main thread, as on
 * SIGHUP. The new set is checked and every new socket bound before anything changes; on error
 * nothing has (err names the listener). Then:
 *   - a listener whose settings are all unchanged stays as it is: its sockets, its counters, its
 *     connections;
 *   - a listener with new settings on an address already in use keeps that address's sockets
 *     (nothing queued in their backlog is lost) and applies the new settings to new
 *     connections; its counters start again;
 *   - a listener that is gone stops accepting and its sockets close as each worker takes the
 *     new set; connections it already accepted run on under the settings they started with.
 * *added, *removed and *changed (each may be NULL) receive the counts. cfg's namespace and
 * workers are not taken (they need a restart). */
int pk_proxy_update(struct pk_proxy *proxy, const struct pk_proxy_options *cfg, size_t *added,
                    size_t *removed, size_t *changed, struct pk_err *err) PK_MUST_USE;

/* The identity slot holds a new identity: hand every worker a generation of it (new
 * connections take it; live ones keep theirs). From the main thread. */
void pk_proxy_identity_changed(struct pk_proxy *proxy);

/* fn(ctx) is called, from a worker thread, each time a listener starts or stops accepting on a
 * worker (so readiness can be re-evaluated): it must be thread-safe and quick (ev_async_send).
 * Set before pk_proxy_start. */
void pk_proxy_set_change_hook(struct pk_proxy *proxy, void (*fn)(void *ctx), void *ctx);

/* Listener count and per-listener counters (i < count), in the order of the configuration.
 * From the main thread. */
size_t pk_proxy_listener_count(const struct pk_proxy *proxy);
void pk_proxy_listener_stats(const struct pk_proxy *proxy, size_t i, struct pk_listener_stats *out);

/* Stop accepting, let connections finish for up to shutdown_timeout seconds, close the rest,
 * join the workers and free everything. NULL is fine. */
void pk_proxy_free(struct pk_proxy *proxy, double shutdown_timeout);

#endif
