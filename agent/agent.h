/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the agent — holds a valid workload identity at all times and publishes each new one.
 *
 * Sources: Sentry (fresh P-256 key per request, SignCertificate, every response checked) or a
 * static certificate and key (env DAPR_CERT_CHAIN/DAPR_CERT_KEY or files, watched). Trust
 * anchors come from DAPR_TRUST_ANCHORS, a watched file, or both.
 *
 * Timing: renewal at a jittered fraction of the lifetime (agent/schedule.h), capped exponential
 * backoff on failure, the current identity kept until it expires. All time comes from one
 * pk_clock (agent/clock.h): delays are monotonic; validity is judged on the wall clock, re-read at
 * least every 5 seconds so that a jump of the wall clock is noticed at once. A certificate that is
 * due for renewal on arrival (our clock ahead of Sentry's) is renewed at the configured fraction of
 * what is left of its life, never in a loop.
 *
 * Every new identity is built complete (common/identity.h: checks and an in-memory handshake)
 * before it is published into the slot; a failure never replaces a good identity. The slot is the
 * current identity's only owner: the agent keeps no reference beside it and reads the identity
 * back from the slot (pk_identity_slot_peek), so it must be the slot's only publisher.
 * Runs on one libev loop (the default loop: export commands are reaped with ev_child). */
#ifndef PK_AGENT_AGENT_H
#define PK_AGENT_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "agent/clock.h"
#include "agent/config.h"
#include "agent/sentry_client.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/grpc.h"
#include "common/identity.h"

struct ev_loop;
struct pk_agent;

enum pk_agent_state {
    PK_AGENT_STARTING, /* no identity yet */
    PK_AGENT_FRESH,    /* identity held, renewal not yet due */
    PK_AGENT_RENEWING, /* renewal due, no failure yet */
    PK_AGENT_OVERDUE,  /* renewal due and at least one attempt failed */
    PK_AGENT_EXPIRED,  /* the identity held has expired */
};

const char *pk_agent_state_name(enum pk_agent_state state);

/* What the admin endpoint shows. */
struct pk_agent_stats {
    enum pk_agent_state state;
    bool ready;           /* a valid identity is held */
    bool static_identity; /* from files/env rather than Sentry */
    char spiffe_id[256];  /* "" without identity */
    char serial[80];
    time_t not_before;
    time_t not_after;
    double renew_at;        /* wall clock, 0 in static mode */
    double next_attempt_in; /* seconds until the next retry, -1 when none is pending */
    unsigned failures;      /* consecutive failed attempts */
    uint64_t rotations_ok;  /* identities installed after the first */
    uint64_t rotations_failed;
    uint64_t initial_failures;
    uint64_t responses_rejected;
    uint64_t sentry_requests[PK_GRPC_UNAUTHENTICATED + 1]; /* by gRPC status */
    uint64_t anchors_updates;
    uint64_t anchors_refused;
    uint64_t static_refused;
    uint64_t token_failures; /* fetches not started: the Sentry token could not be read */
    char last_error[512];    /* why the last fetch failed; "" after a success or before any */
    size_t anchors;
};

/* Hooks: published runs after each new identity is in the slot (id borrowed from the slot; take a
 * reference to keep it past the hook); fatal when the agent gives up (first fetch failed
 * initial_attempts times). Either may be NULL. */
struct pk_agent_hooks {
    void (*published)(void *ctx, struct pk_identity *id);
    void (*fatal)(void *ctx, const char *why);
    void *ctx;
};

/* Check, as pk_agent_new and the first Sentry request would, everything cfg names on disk or in
 * the environment without starting anything: the trust anchors, a static certificate and key
 * (their mode and SPIFFE ID included), the Sentry token file. 0, or the first problem in err.
 * For `picket run --check`. */
int pk_agent_check(const struct pk_agent_config *cfg, struct pk_err *err) PK_MUST_USE;

/* How the agent asks Sentry: pk_sentry_fetch_start and pk_sentry_fetch_cancel, with their
 * contract (agent/sentry_client.h), or a stand-in with the same contract. */
struct pk_agent_sentry {
    int (*start)(struct ev_loop *loop, const struct pk_sentry_client_config *cfg,
                 pk_sentry_fetch_fn done, void *ctx, struct pk_sentry_fetch **out,
                 struct pk_err *err);
    void (*cancel)(struct pk_sentry_fetch *f);
};

/* What the state machine takes from outside; both borrowed, and must outlive the agent. NULL
 * members (or deps) mean the real ones: libev's clock on the agent's loop, the Sentry client. */
struct pk_agent_deps {
    struct pk_clock *clock;
    const struct pk_agent_sentry *sentry;
};

/* cfg and slot are borrowed and must outlive the agent; nothing else publishes to the slot. Loads
 * the anchors (and, in static mode, the identity); errors there are returned. Nothing is fetched
 * before pk_agent_start. The loop also serves the file watches and the export command. */
int pk_agent_new(struct ev_loop *loop, const struct pk_agent_config *cfg,
                 struct pk_identity_slot *slot, const struct pk_agent_hooks *hooks,
                 struct pk_agent **out, struct pk_err *err) PK_MUST_USE;

/* The same with deps (borrowed, may be NULL) in place of the real clock and Sentry client. */
int pk_agent_new_with(struct ev_loop *loop, const struct pk_agent_config *cfg,
                      struct pk_identity_slot *slot, const struct pk_agent_hooks *hooks,
                      const struct pk_agent_deps *deps, struct pk_agent **out, struct pk_err *err)
        PK_MUST_USE;

/* Start fetching and watching. */
void pk_agent_start(struct pk_agent *agent);

/* Use cfg (borrowed; must outlive the agent or the next call) instead of the configuration
 * given so far, as on SIGHUP. The caller has checked with pk_sidecar_config_restart_changes that
 * nothing defining the identity or its sources changed; every other setting takes effect at its
 * next use (the renewal fraction and jitter at the next renewal, allow_tls12 with the next
 * identity, export settings at the next export, timeouts at the next request). */
void pk_agent_set_config(struct pk_agent *agent, const struct pk_agent_config *cfg);

/* Re-read the anchors and static files now (SIGHUP). */
void pk_agent_reload_files(struct pk_agent *agent);

void pk_agent_stats(const struct pk_agent *agent, struct pk_agent_stats *out);

/* The trust anchors in force: the current identity's (the configured set, plus Sentry's roots
 * with adopt_trust_chain), or the configured set before the first identity. Borrowed; valid
 * until the next loop iteration. */
const struct pk_certs *pk_agent_anchors(const struct pk_agent *agent);

void pk_agent_free(struct pk_agent *agent);

#endif
