/* SPDX-License-Identifier: Apache-2.0 */
/* picket: when to renew and how long to wait after a failure, as pure functions.
 *
 * daprd renews every sidecar at exactly half-life and retries every 10 s, so a fleet started
 * together renews together and hammers a recovering Sentry in lockstep. picket spreads both:
 *   - renewal at not_before + lifetime × (fraction ± jitter), the offset drawn from a seed that
 *     hashes the SPIFFE ID with the process start, so replicas of one app spread out while one
 *     process keeps a stable plan (the same certificate always gives the same renewal time);
 *   - retries with capped exponential backoff and "equal jitter": the n-th wait is drawn from
 *     [d/2, d] with d = min(cap, initial × 2^n).
 * Everything here is deterministic given its inputs, so the tests can tabulate it. */
#ifndef PK_AGENT_SCHEDULE_H
#define PK_AGENT_SCHEDULE_H

#include <stdint.h>
#include <time.h>

/* A 64-bit seed from the SPIFFE ID and a per-process value (start time in ns, pid). */
uint64_t pk_schedule_seed(const char *spiffe_id, uint64_t process_salt);

/* A uniform value in [0, 1) derived from seed and a tag (e.g. a certificate's not-before). */
double pk_schedule_unit(uint64_t seed, uint64_t tag);

/* The wall-clock time (seconds, fractional) at which to renew a certificate valid from
 * not_before to not_after: not_before + lifetime × (fraction + jitter × u), u in [-1, 1) from
 * (seed, not_before). The result is clamped into [not_before, not_after]. */
double pk_schedule_renew_at(time_t not_before, time_t not_after, double fraction, double jitter,
                            uint64_t seed);

/* Seconds to wait before retry number attempt (0 for the first retry after a failure). */
double pk_schedule_backoff(unsigned attempt, double initial, double cap, uint64_t seed);

#endif
