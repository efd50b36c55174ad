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
 * Listening sockets are created (and bind errors reported) in pk_proxy_new; accepting starts
 * with the first identity. */
#ifndef PK_PROXY_PROXY_H
#define PK_PROXY_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/config.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/identity.h"

struct pk_proxy;

/* Counters per listener, summed over workers. */
struct pk_listener_stats {
    const char *name;
    bool inbound;
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
    uint16_t port; /* bound TCP port (useful with port 0), 0 for unix */
};

/* Create listening sockets for every listener in cfg (borrowed; must outlive the proxy). */
int pk_proxy_new(const struct pk_agent_config *cfg, struct pk_proxy **out, struct pk_err *err)
        PK_MUST_USE;

/* Start the worker threads. */
int pk_proxy_start(struct pk_proxy *proxy, struct pk_err *err) PK_MUST_USE;

/* Publish a new identity (the caller keeps its reference). From the main thread. */
void pk_proxy_set_identity(struct pk_proxy *proxy, struct pk_identity *id);

/* Listener count and per-listener counters (i < count). */
size_t pk_proxy_listener_count(const struct pk_proxy *proxy);
void pk_proxy_listener_stats(const struct pk_proxy *proxy, size_t i, struct pk_listener_stats *out);

/* Stop accepting, let connections finish for up to shutdown_timeout seconds, close the rest,
 * join the workers and free everything. NULL is fine. */
void pk_proxy_free(struct pk_proxy *proxy, double shutdown_timeout);

#endif
