/* SPDX-License-Identifier: Apache-2.0 */
/* picket: renewal times and retry delays. */
#include "agent/schedule.h"

#include <string.h>

/* splitmix64's finalizer: a good 64-bit mixer, enough to spread seeds (nothing here is secret). */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t pk_schedule_seed(const char *spiffe_id, uint64_t process_salt)
{
    /* FNV-1a over the ID, then mixed with the salt. */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)spiffe_id; *p != '\0'; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return mix64(h ^ mix64(process_salt));
}

double pk_schedule_unit(uint64_t seed, uint64_t tag)
{
    /* The top 53 bits make an exactly representable double in [0, 1). */
    return (double)(mix64(seed ^ mix64(tag + 0x9e3779b97f4a7c15ULL)) >> 11) * 0x1.0p-53;
}

double pk_schedule_renew_at(time_t not_before, time_t not_after, double fraction, double jitter,
                            uint64_t seed)
{
    double lifetime = difftime(not_after, not_before);
    double u = 2.0 * pk_schedule_unit(seed, (uint64_t)not_before) - 1.0;
    double at;

    if (lifetime <= 0) {
        return (double)not_after;
    }
    at = (double)not_before + lifetime * (fraction + jitter * u);
    if (at < (double)not_before) {
        at = (double)not_before;
    }
    if (at > (double)not_after) {
        at = (double)not_after;
    }
    return at;
}

double pk_schedule_backoff(unsigned attempt, double initial, double cap, uint64_t seed)
{
    /* 2^attempt overflows nothing in a double, but stop doubling once past the cap. */
    double d = initial;
    for (unsigned i = 0; i < attempt && d < cap; i++) {
        d *= 2.0;
    }
    if (d > cap) {
        d = cap;
    }
    return d / 2.0 + d / 2.0 * pk_schedule_unit(seed, attempt);
}
