/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the addresses a DNS name resolved to, as the resolver (net/resolver) publishes them and
 * the proxy's workers and the Sentry client read them.
 *
 * A struct pk_addrset is immutable once made and reference-counted: the resolver makes a new one
 * for each answer that differs from the last, and a reader holds its own reference for as long as
 * it uses it (a connection in the middle of trying addresses keeps the set it started with).
 *
 * A struct pk_addrset_slot holds the current set of one name, as pk_identity_slot holds the
 * identity: the mutex guards only loading the pointer and taking the reference. A reader that
 * keeps its own reference looks at the generation (one atomic load) for each use and takes the
 * lock only when it changed, that is once per DNS change, never per connection. */
#ifndef PK_COMMON_ADDRSET_H
#define PK_COMMON_ADDRSET_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The most addresses kept of one answer. */
#define PK_ADDRSET_MAX 16

struct pk_addrset {
    atomic_int refs;
    size_t n; /* 1 to PK_ADDRSET_MAX */
    struct sockaddr_storage addr[PK_ADDRSET_MAX];
    socklen_t len[PK_ADDRSET_MAX];
};

/* A new set of n (1 to PK_ADDRSET_MAX) addresses, each with its port set to port (host order),
 * in the order given; duplicates are dropped. One reference. Never NULL. */
struct pk_addrset *pk_addrset_new(const struct sockaddr_storage *addrs, const socklen_t *lens,
                                  size_t n, uint16_t port);

struct pk_addrset *pk_addrset_ref(struct pk_addrset *set);
void pk_addrset_unref(struct pk_addrset *set);

/* Whether a and b hold the same addresses in the same order (NULL equals only NULL). */
int pk_addrset_equal(const struct pk_addrset *a, const struct pk_addrset *b);

/* The index of the address to try on attempt `attempt` (0 first) of a connection whose first
 * choice was `start`: every address once, in order, wrapping around. n > 0. */
size_t pk_addrset_pick(size_t n, size_t start, size_t attempt);

/* "10.0.0.1:80, [fd00::1]:80" into out (cut to fit). */
void pk_addrset_format(const struct pk_addrset *set, char *out, size_t len);

/* How long an answer is used before the name is asked again: its TTL held between floor and
 * ceiling (seconds; floor <= ceiling). A TTL of 0 (do not cache) gets the floor: asking the
 * server for every connection would make the data path wait for DNS. */
double pk_dns_ttl_clamp(double ttl, double floor, double ceiling);

struct pk_addrset_slot {
    pthread_mutex_t _lock;
    struct pk_addrset *_current; /* guarded by _lock; the slot's own reference */
    atomic_uint_fast64_t _generation;
};

void pk_addrset_slot_init(struct pk_addrset_slot *slot);
void pk_addrset_slot_destroy(struct pk_addrset_slot *slot);

/* Make set current (takes its reference) and bump the generation. Any thread. */
void pk_addrset_slot_publish(struct pk_addrset_slot *slot, struct pk_addrset *set);

/* A new reference on the current set, or NULL before the first answer. Any thread. */
struct pk_addrset *pk_addrset_slot_get(struct pk_addrset_slot *slot);

/* How many sets were published (atomic load; any thread). */
uint64_t pk_addrset_slot_generation(const struct pk_addrset_slot *slot);

#endif
