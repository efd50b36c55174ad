/* SPDX-License-Identifier: Apache-2.0 */
/* picket: DNS names resolved on a libev loop without ever waiting: c-ares, driven by the loop.
 *
 * c-ares tells us which sockets it wants watched (ARES_OPT_SOCK_STATE_CB), each becomes an ev_io
 * that calls ares_process_fd, and one ev_timer follows ares_timeout. Nothing here blocks: a DNS
 * server that never answers costs a socket and a timer, not the loop.
 *
 * Each watched name (HOST:PORT) has a slot (common/addrset.h) that holds its last good answer.
 * The name is asked again when the answer's TTL runs out, the TTL held between ttl_min and
 * ttl_max; a failed lookup leaves the last good answer in the slot (connections keep going where
 * they went) and is tried again after ttl_min. /etc/resolv.conf (and /etc/hosts) are honoured
 * unless servers are given.
 *
 * Single-threaded: every function on the loop's thread. The slots may be read from any thread. */
#ifndef PK_NET_RESOLVER_H
#define PK_NET_RESOLVER_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/addrset.h"
#include "common/compiler.h"
#include "common/err.h"

struct pk_resolver_options {
    const char *servers; /* "IP:PORT,[IPV6]:PORT,..." instead of resolv.conf's; NULL = those */
    double ttl_min;      /* seconds; the floor of an answer's TTL and the retry after a failure */
    double ttl_max;      /* seconds; the ceiling */
    double timeout;      /* seconds one query waits for the server before trying again */
};

struct pk_resolver;

/* What /status and /metrics show of one name. */
struct pk_resolver_stats {
    const char *name;     /* "HOST:PORT" (borrowed) */
    uint64_t answers;     /* successful lookups */
    uint64_t failures;    /* failed lookups */
    uint64_t changes;     /* answers that differed from the one before */
    double age;           /* seconds since the last good answer; -1 before one */
    double ttl;           /* the (clamped) TTL of the last good answer */
    char addresses[512];  /* the last good answer, formatted; "" before one */
    char last_error[160]; /* the last failure; "" if none since the last answer */
};

int pk_resolver_new(struct ev_loop *loop, const struct pk_resolver_options *opts,
                    struct pk_resolver **out, struct pk_err *err) PK_MUST_USE;

/* The slot of host:port (host a DNS name, borrowed), watched from now on; the same name given
 * again gets the same slot. The slot lives as long as the resolver; it is empty until the first
 * answer. The first lookup starts at once (its answer arrives on the loop). */
struct pk_addrset_slot *pk_resolver_watch(struct pk_resolver *r, const char *host, uint16_t port);

/* Call fn(ctx) on the loop after each lookup ends, answered or not (NULL fn: none). */
void pk_resolver_set_hook(struct pk_resolver *r, void (*fn)(void *ctx), void *ctx);

/* Whether the name behind slot (from pk_resolver_watch) has had a lookup end, answered or not. */
bool pk_resolver_settled(const struct pk_resolver *r, const struct pk_addrset_slot *slot);

size_t pk_resolver_count(const struct pk_resolver *r);
void pk_resolver_stats(const struct pk_resolver *r, size_t i, struct pk_resolver_stats *out);

/* Cancel every lookup and free everything, slots included: the proxy and the agent must be gone.
 * NULL is fine. */
void pk_resolver_free(struct pk_resolver *r);

#endif
