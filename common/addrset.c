/* SPDX-License-Identifier: Apache-2.0 */
/* picket: published DNS answers. */
#include "common/addrset.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/compiler.h"
#include "common/mem.h"

static int same_addr(const struct sockaddr_storage *a, socklen_t alen,
                     const struct sockaddr_storage *b, socklen_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

struct pk_addrset *pk_addrset_new(const struct sockaddr_storage *addrs, const socklen_t *lens,
                                  size_t n, uint16_t port)
{
    struct pk_addrset *set = pk_xcalloc(1, sizeof(*set));

    PK_ASSERT(n > 0 && n <= PK_ADDRSET_MAX);
    atomic_init(&set->refs, 1);
    for (size_t i = 0; i < n; i++) {
        struct sockaddr_storage a = {0};
        socklen_t len = lens[i];
        bool dup = false;

        PK_ASSERT(len <= sizeof(a));
        memcpy(&a, &addrs[i], len);
        if (a.ss_family == AF_INET) {
            ((struct sockaddr_in *)&a)->sin_port = htons(port);
        } else if (a.ss_family == AF_INET6) {
            ((struct sockaddr_in6 *)&a)->sin6_port = htons(port);
        }
        for (size_t j = 0; j < set->n && !dup; j++) {
            dup = same_addr(&set->addr[j], set->len[j], &a, len);
        }
        if (!dup) {
            set->addr[set->n] = a;
            set->len[set->n] = len;
            set->n++;
        }
    }
    return set;
}

struct pk_addrset *pk_addrset_ref(struct pk_addrset *set)
{
    atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
    return set;
}

void pk_addrset_unref(struct pk_addrset *set)
{
    if (set != NULL && atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) == 1) {
        free(set);
    }
}

int pk_addrset_equal(const struct pk_addrset *a, const struct pk_addrset *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    if (a->n != b->n) {
        return 0;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (!same_addr(&a->addr[i], a->len[i], &b->addr[i], b->len[i])) {
            return 0;
        }
    }
    return 1;
}

size_t pk_addrset_pick(size_t n, size_t start, size_t attempt)
{
    PK_ASSERT(n > 0);
    return (start % n + attempt % n) % n;
}

void pk_addrset_format(const struct pk_addrset *set, char *out, size_t len)
{
    size_t used = 0;

    if (len == 0) {
        return;
    }
    out[0] = '\0';
    for (size_t i = 0; set != NULL && i < set->n && used < len; i++) {
        char host[INET6_ADDRSTRLEN] = "?";
        unsigned port = 0;
        int w;
        if (set->addr[i].ss_family == AF_INET) {
            const struct sockaddr_in *s = (const struct sockaddr_in *)&set->addr[i];
            inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
            port = ntohs(s->sin_port);
            w = snprintf(out + used, len - used, "%s%s:%u", i > 0 ? ", " : "", host, port);
        } else {
            const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&set->addr[i];
            inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
            port = ntohs(s->sin6_port);
            w = snprintf(out + used, len - used, "%s[%s]:%u", i > 0 ? ", " : "", host, port);
        }
        used += w > 0 ? (size_t)w : 0;
    }
}

double pk_dns_ttl_clamp(double ttl, double floor, double ceiling)
{
    if (!(ttl >= floor)) { /* also NaN */
        return floor;
    }
    return ttl > ceiling ? ceiling : ttl;
}

void pk_addrset_slot_init(struct pk_addrset_slot *slot)
{
    int r = pthread_mutex_init(&slot->_lock, NULL);
    PK_ASSERT(r == 0);
    slot->_current = NULL;
    atomic_init(&slot->_generation, 0);
}

void pk_addrset_slot_destroy(struct pk_addrset_slot *slot)
{
    pk_addrset_unref(slot->_current);
    slot->_current = NULL;
    pthread_mutex_destroy(&slot->_lock);
}

void pk_addrset_slot_publish(struct pk_addrset_slot *slot, struct pk_addrset *set)
{
    struct pk_addrset *old;

    pthread_mutex_lock(&slot->_lock);
    old = slot->_current;
    slot->_current = set;
    atomic_fetch_add_explicit(&slot->_generation, 1, memory_order_release);
    pthread_mutex_unlock(&slot->_lock);
    pk_addrset_unref(old);
}

struct pk_addrset *pk_addrset_slot_get(struct pk_addrset_slot *slot)
{
    struct pk_addrset *set;

    pthread_mutex_lock(&slot->_lock);
    set = slot->_current != NULL ? pk_addrset_ref(slot->_current) : NULL;
    pthread_mutex_unlock(&slot->_lock);
    return set;
}

uint64_t pk_addrset_slot_generation(const struct pk_addrset_slot *slot)
{
    return atomic_load_explicit((atomic_uint_fast64_t *)&slot->_generation, memory_order_acquire);
}
