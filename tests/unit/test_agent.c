/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for agent/agent, the identity state machine, on a hand-driven clock: renewal
 * at the scheduled fraction, capped and jittered backoff, giving up on the first identity,
 * expiry of the identity held, the anchor-validity boundary, and wall-clock jumps both ways.
 * Hours of agent time pass in milliseconds; nothing sleeps.
 *
 * The real state machine runs; only two things are stood in for at its interface (struct
 * pk_agent_deps): the clock, and Sentry, whose client needs a network server. Certificates are
 * minted at test time and valid around the real now, as building an identity runs a real
 * in-memory handshake; the fake wall clock starts at the real now (T0). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* cmocka.h needs the standard headers before it. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
/* clang-format on */

#include "agent/agent.h"
#include "agent/clock.h"
#include "common/grpc.h"
#include "common/identity.h"
#include "common/key.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/x509.h"
#include "testutil.h"

#define APP_ID   "spiffe://example.test/ns/default/app"
#define ISSUER_O "spiffe://example.test/ns/dapr-system/dapr-sentry"
#define LIFETIME 3600
#define MAX_TICK 5.0 /* agent.c: the longest the agent goes without reading the wall clock */

/* ---- a clock the test drives -------------------------------------------------------------- */

struct pk_clock_timer {
    struct fake_clock *clock;
    bool armed;
    double deadline; /* monotonic */
    pk_clock_timer_fn fn;
    void *ctx;
};

struct fake_clock {
    struct pk_clock base;
    double mono;
    double wall;
    struct pk_clock_timer *timers[4];
    size_t n_timers;
    void (*after_fire)(void); /* e.g. answer a request the tick started */
};

static struct fake_clock fake;

static double fake_monotonic(struct pk_clock *c)
{
    return ((struct fake_clock *)c)->mono;
}

static double fake_wall(struct pk_clock *c)
{
    return ((struct fake_clock *)c)->wall;
}

static struct pk_clock_timer *fake_timer_new(struct pk_clock *c, pk_clock_timer_fn fn, void *ctx)
{
    struct fake_clock *fc = (struct fake_clock *)c;
    struct pk_clock_timer *t = pk_xcalloc(1, sizeof(*t));

    assert_true(fc->n_timers < PK_ARRAY_LEN(fc->timers));
    t->clock = fc;
    t->fn = fn;
    t->ctx = ctx;
    fc->timers[fc->n_timers++] = t;
    return t;
}

static void fake_timer_arm(struct pk_clock_timer *t, double after)
{
    assert_true(after >= 0);
    t->armed = true;
    t->deadline = t->clock->mono + after;
}

static void fake_timer_stop(struct pk_clock_timer *t)
{
    t->armed = false;
}

static struct pk_clock_timer *fake_timer_free(struct pk_clock_timer *t)
{
    struct fake_clock *fc = t->clock;
    for (size_t i = 0; i < fc->n_timers; i++) {
        if (fc->timers[i] == t) {
            fc->timers[i] = fc->timers[--fc->n_timers];
            break;
        }
    }
    free(t);
    return NULL;
}

static const struct pk_clock_ops fake_ops = {
        .monotonic = fake_monotonic,
        .wall = fake_wall,
        .timer_new = fake_timer_new,
        .timer_arm = fake_timer_arm,
        .timer_stop = fake_timer_stop,
        .timer_free = fake_timer_free,
};

/* Let dt seconds pass on both clocks, firing every timer that falls due on the way, at its
 * deadline. */
static void advance(double dt)
{
    double end = fake.mono + dt;

    for (int fired = 0;; fired++) {
        assert_true(fired < 1000000); /* a timer re-arming itself at zero delay forever */
        struct pk_clock_timer *next = NULL;
        for (size_t i = 0; i < fake.n_timers; i++) {
            struct pk_clock_timer *t = fake.timers[i];
            if (t->armed && t->deadline <= end && (next == NULL || t->deadline < next->deadline)) {
                next = t;
            }
        }
        if (next == NULL) {
            break;
        }
        fake.wall += next->deadline - fake.mono;
        fake.mono = next->deadline;
        next->armed = false;
        next->fn(next->ctx);
        if (fake.after_fire != NULL) {
            fake.after_fire();
        }
    }
    fake.wall += end - fake.mono;
    fake.mono = end;
}

/* ---- Sentry, at the agent's interface ----------------------------------------------------- */

struct fake_sentry {
    unsigned starts;
    double started_at[64]; /* monotonic time of each start */
    bool pending;
    pk_sentry_fetch_fn done;
    void *ctx;
};

static struct fake_sentry sentry;

static int fake_start(struct ev_loop *loop, const struct pk_sentry_client_config *cfg,
                      pk_sentry_fetch_fn done, void *ctx, struct pk_sentry_fetch **out,
                      struct pk_err *err)
{
    assert_false(sentry.pending);
    if (sentry.starts < PK_ARRAY_LEN(sentry.started_at)) {
        sentry.started_at[sentry.starts] = fake.mono;
    }
    sentry.starts++;
    sentry.pending = true;
    sentry.done = done;
    sentry.ctx = ctx;
    *out = (struct pk_sentry_fetch *)&sentry;
    return 0;
}

static void fake_cancel(struct pk_sentry_fetch *f)
{
    if (f != NULL) {
        sentry.pending = false;
    }
}

static const struct pk_agent_sentry fake_sentry_ops = {.start = fake_start, .cancel = fake_cancel};

/* Answer the pending request with a failure. */
static void sentry_fail(void)
{
    struct pk_err err = {{0}};
    struct pk_sentry_fetch_result res = {
            .result = -111,
            .grpc_status = PK_GRPC_UNAVAILABLE,
            .err = &err,
    };

    assert_true(sentry.pending);
    snprintf(err.msg, sizeof(err.msg), "connect to Sentry: Connection refused");
    sentry.pending = false;
    sentry.done(sentry.ctx, &res);
}

static void fail_pending(void)
{
    if (sentry.pending) {
        sentry_fail();
    }
}

/* ---- certificates ------------------------------------------------------------------------- */

static time_t T0;

struct pki {
    struct pk_key *root_key;
    struct pk_key *iss_key;
    struct pk_cert *root;
    struct pk_cert *iss;
};

static struct pki pki;             /* our Sentry's */
static struct pki other_pki;       /* a Sentry under a new root */
static struct pk_cert *short_root; /* another root, valid until T0 + 100 */
static char *anchors_pem;          /* the root, NUL-terminated */
static char *two_anchors_pem;      /* the root and short_root */
static char *new_anchors_pem;      /* other_pki's root: does not verify our certificate */
static char *new_anchors2_pem;     /* the same with short_root: another such set */

static char *pem_of(const struct pk_cert *const *certs, size_t n)
{
    struct pk_certs set = {0};
    struct pk_buf pem;

    pk_buf_init(&pem, 1u << 20);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(pk_certs_push_copy(&set, certs[i]), 0);
    }
    assert_int_equal(pk_certs_to_pem(&set, &pem), 0);
    assert_int_equal(pk_buf_append(&pem, "", 1), 0);
    char *s = pk_xstrdup((const char *)pem.data);
    pk_certs_clear(&set);
    pk_buf_free(&pem);
    return s;
}

/* What Sentry (of pki p) would return: a fresh key and a leaf valid from not_before to
 * not_after. */
static struct pk_svid *svid_make(const struct pki *p, time_t not_before, time_t not_after)
{
    struct pk_svid *s = pk_xcalloc(1, sizeof(*s));
    struct pk_cert_template t = {
            .not_before = not_before,
            .not_after = not_after,
            .key_usage = PK_KU_DIGITAL_SIGNATURE,
            .ext_key_usage = PK_EKU_SERVER_AUTH | PK_EKU_CLIENT_AUTH,
            .uri_san = APP_ID,
    };

    assert_int_equal(pk_key_generate(PK_KEY_P256, &s->key, NULL), 0);
    struct pk_cert *leaf = issue(&t, s->key, p->iss, p->iss_key);
    assert_int_equal(pk_certs_push_copy(&s->chain, leaf), 0);
    assert_int_equal(pk_certs_push_copy(&s->chain, p->iss), 0);
    pk_cert_free(leaf);
    pk_buf_init(&s->chain_pem, 1u << 20);
    pk_buf_init(&s->anchors_pem, 1u << 20);
    return s;
}

/* Answer the pending request with a leaf of pki p valid from not_before to not_after. */
static void sentry_issue_from(const struct pki *p, time_t not_before, time_t not_after)
{
    struct pk_err err = {{0}};
    struct pk_sentry_fetch_result res = {
            .grpc_status = PK_GRPC_OK,
            .svid = svid_make(p, not_before, not_after),
            .err = &err,
    };

    assert_true(sentry.pending);
    sentry.pending = false;
    sentry.done(sentry.ctx, &res);
}

static void sentry_issue(time_t not_before, time_t not_after)
{
    sentry_issue_from(&pki, not_before, not_after);
}

/* ---- the agent under test ----------------------------------------------------------------- */

struct harness {
    struct pk_agent_config cfg;
    struct pk_identity_slot slot;
    struct pk_agent *agent;
    unsigned published;
    const struct pk_identity *last_published; /* as the hook saw it; only compared */
    unsigned fatal;
};

static void on_published(void *ctx, struct pk_identity *id)
{
    struct harness *h = ctx;

    h->published++;
    h->last_published = id;
}

static void on_fatal(void *ctx, const char *why)
{
    ((struct harness *)ctx)->fatal++;
}

static void harness_config(struct harness *h)
{
    memset(h, 0, sizeof(*h));
    h->cfg.request_id = "app";
    h->cfg.namespace_ = "default";
    h->cfg.sentry_address = "sentry.invalid:50001";
    h->cfg.trust_anchors_pem = anchors_pem;
    h->cfg.control_plane_trust_domain = "localhost";
    h->cfg.control_plane_namespace = "default";
    h->cfg.renew_fraction = 0.5;
    h->cfg.renew_jitter = 0;
    h->cfg.retry_initial = 1;
    h->cfg.retry_max = 120;
    h->cfg.request_timeout = 10;
}

static void harness_start(struct harness *h)
{
    struct pk_agent_deps deps = {.clock = &fake.base, .sentry = &fake_sentry_ops};
    struct pk_agent_hooks hooks = {.published = on_published, .fatal = on_fatal, .ctx = h};
    struct pk_err err = {{0}};

    pk_identity_slot_init(&h->slot);
    if (pk_agent_new_with(NULL, &h->cfg, &h->slot, &hooks, &deps, &h->agent, &err) != 0) {
        fail_msg("pk_agent_new_with: %s", err.msg);
    }
    pk_agent_start(h->agent);
}

static void harness_stop(struct harness *h)
{
    pk_agent_free(h->agent);
    pk_identity_slot_destroy(&h->slot);
}

static struct pk_agent_stats stats_of(const struct harness *h)
{
    struct pk_agent_stats st;
    pk_agent_stats(h->agent, &st);
    return st;
}

/* Start the agent and give it its first identity, valid from T0 - 60 for LIFETIME seconds. */
static void start_with_identity(struct harness *h)
{
    harness_start(h);
    assert_int_equal(sentry.starts, 1); /* the first fetch goes out at once */
    assert_int_equal(stats_of(h).state, PK_AGENT_STARTING);
    sentry_issue(T0 - 60, T0 - 60 + LIFETIME);
    assert_int_equal(h->published, 1);
    assert_int_equal(stats_of(h).state, PK_AGENT_FRESH);
}

static int test_setup(void **state)
{
    memset(&fake, 0, sizeof(fake));
    fake.base.ops = &fake_ops;
    fake.mono = 1000.0;
    fake.wall = (double)T0;
    memset(&sentry, 0, sizeof(sentry));
    return 0;
}

/* ---- tests -------------------------------------------------------------------------------- */

/* Renewal goes out at not_before + fraction × lifetime (no jitter here), not a moment before;
 * its answer is installed and scheduled in turn. */
static void test_renews_at_scheduled_fraction(void **state)
{
    struct harness h;
    const double renew_at = (double)(T0 - 60) + 0.5 * LIFETIME;

    harness_config(&h);
    start_with_identity(&h);
    assert_float_equal(stats_of(&h).renew_at, renew_at, 1e-6);

    advance(renew_at - fake.wall - 0.01);
    assert_int_equal(sentry.starts, 1);
    assert_int_equal(stats_of(&h).state, PK_AGENT_FRESH);
    advance(0.02);
    assert_int_equal(sentry.starts, 2);
    assert_int_equal(stats_of(&h).state, PK_AGENT_RENEWING);

    sentry_issue(T0, T0 + 2 * LIFETIME);
    struct pk_agent_stats st = stats_of(&h);
    assert_int_equal(st.state, PK_AGENT_FRESH);
    assert_int_equal(st.rotations_ok, 1);
    assert_int_equal(st.not_after, T0 + 2 * LIFETIME);
    assert_float_equal(st.renew_at, (double)T0 + LIFETIME, 1e-6);
    struct pk_identity *id = pk_identity_slot_get(&h.slot);
    assert_non_null(id);
    assert_int_equal(pk_identity_not_after(id), T0 + 2 * LIFETIME);
    pk_identity_unref(id);
    harness_stop(&h);
}

/* With jitter the renewal time stays in fraction ± jitter of the lifetime. */
static void test_renewal_jitter_stays_in_window(void **state)
{
    struct harness h;

    harness_config(&h);
    h.cfg.renew_jitter = 0.1;
    start_with_identity(&h);
    double at = stats_of(&h).renew_at;
    assert_true(at >= (double)(T0 - 60) + 0.4 * LIFETIME);
    assert_true(at < (double)(T0 - 60) + 0.6 * LIFETIME);
    advance(at - fake.wall - 0.01);
    assert_int_equal(sentry.starts, 1);
    advance(0.02);
    assert_int_equal(sentry.starts, 2);
    harness_stop(&h);
}

/* Failed attempts back off exponentially from retry_initial, each wait drawn from [d/2, d],
 * capped at retry_max; stats show the wait. */
static void test_backoff_is_capped_and_jittered(void **state)
{
    struct harness h;
    enum { ATTEMPTS = 12 };

    harness_config(&h);
    h.cfg.retry_initial = 1;
    h.cfg.retry_max = 16;
    harness_start(&h);
    fake.after_fire = fail_pending;
    sentry_fail();
    double wait = stats_of(&h).next_attempt_in;
    assert_true(wait >= 0.5 && wait <= 1.0);
    advance(600);
    assert_true(sentry.starts >= ATTEMPTS);
    bool jittered = false;
    for (unsigned n = 0; n + 1 < ATTEMPTS; n++) {
        double d = n < 4 ? (double)(1u << n) : 16.0;
        double gap = sentry.started_at[n + 1] - sentry.started_at[n];
        if (gap < d / 2 - 0.01 || gap > d + 0.01) {
            fail_msg("retry %u after %.3fs, outside [%.1f, %.1f]", n, gap, d / 2, d);
        }
        jittered |= gap < d - 0.01;
    }
    assert_true(jittered);
    struct pk_agent_stats st = stats_of(&h);
    assert_int_equal(st.state, PK_AGENT_STARTING);
    assert_int_equal(st.initial_failures, st.failures);
    assert_true(st.failures >= ATTEMPTS);
    harness_stop(&h);
}

/* initial_attempts = N: the agent gives up after N failed first fetches and starts no more. */
static void test_gives_up_after_initial_attempts(void **state)
{
    struct harness h;

    harness_config(&h);
    h.cfg.initial_attempts = 3;
    harness_start(&h);
    fake.after_fire = fail_pending;
    sentry_fail();
    advance(3600);
    assert_int_equal(sentry.starts, 3);
    assert_int_equal(h.fatal, 1);
    assert_int_equal(h.published, 0);
    harness_stop(&h);
}

/* Renewal keeps failing: the identity is held (overdue) until its not-after, then the agent
 * reports it expired and not ready, and keeps retrying at most retry_max apart; a late success
 * recovers. */
static void test_identity_expires_while_renewal_fails(void **state)
{
    struct harness h;
    const time_t not_after = T0 - 60 + LIFETIME;

    harness_config(&h);
    h.cfg.retry_max = 30;
    start_with_identity(&h);
    fake.after_fire = fail_pending;
    advance((double)not_after - fake.wall - 1);
    struct pk_agent_stats st = stats_of(&h);
    assert_int_equal(st.state, PK_AGENT_OVERDUE);
    assert_true(st.ready);
    assert_true(st.rotations_failed > 0);

    advance(2);
    st = stats_of(&h);
    assert_int_equal(st.state, PK_AGENT_EXPIRED);
    assert_false(st.ready);
    /* The expired identity is still the one published: nothing better exists. */
    struct pk_identity *id = pk_identity_slot_get(&h.slot);
    assert_non_null(id);
    assert_int_equal(pk_identity_not_after(id), not_after);
    pk_identity_unref(id);

    unsigned before = sentry.starts;
    advance(60);
    assert_true(sentry.starts >= before + 2); /* still trying, at most retry_max apart */

    fake.after_fire = NULL;
    advance(30.01);
    assert_true(sentry.pending);
    sentry_issue(T0 - 60, T0 + 3 * LIFETIME);
    st = stats_of(&h);
    assert_int_equal(st.state, PK_AGENT_FRESH);
    assert_true(st.ready);
    assert_int_equal(st.failures, 0);
    /* A double: cmocka's integer compare would convert -1 to an unsigned type. */
    assert_true(st.next_attempt_in == -1.0);
    harness_stop(&h);
}

/* An anchor of the identity expires: at that second the identity is rebuilt with the anchors
 * still valid (same certificate, same renewal time) and published again. */
static void test_retrust_at_anchor_expiry(void **state)
{
    struct harness h;

    harness_config(&h);
    h.cfg.trust_anchors_pem = two_anchors_pem;
    start_with_identity(&h);
    struct pk_identity *first = pk_identity_slot_get(&h.slot);
    assert_int_equal(pk_identity_trusted_anchors(first)->n, 2);
    time_t change = pk_identity_trust_changes_at(first);
    assert_true(change > T0 && change <= T0 + 101);
    double renew_at = stats_of(&h).renew_at;

    advance((double)change - fake.wall - 0.01);
    assert_int_equal(h.published, 1);
    advance(0.02);
    assert_int_equal(h.published, 2);
    struct pk_identity *second = pk_identity_slot_get(&h.slot);
    assert_ptr_not_equal(second, first);
    assert_int_equal(pk_identity_trusted_anchors(second)->n, 1);
    assert_string_equal(pk_identity_serial_hex(second), pk_identity_serial_hex(first));
    assert_true(pk_identity_trust_changes_at(second) > T0 + 86400); /* the root, in a year */
    struct pk_agent_stats st = stats_of(&h);
    assert_int_equal(st.rotations_ok, 0);
    assert_float_equal(st.renew_at, renew_at, 1e-6);
    assert_int_equal(sentry.starts, 1);
    pk_identity_unref(first);
    pk_identity_unref(second);
    harness_stop(&h);
}

/* The wall clock jumps forward past the renewal time: noticed within MAX_TICK seconds of
 * monotonic time. */
static void test_wall_clock_jump_forward(void **state)
{
    struct harness h;

    harness_config(&h);
    start_with_identity(&h);
    advance(10);
    assert_int_equal(sentry.starts, 1);
    fake.wall += LIFETIME / 2.0; /* past renew_at, before not_after */
    advance(MAX_TICK);
    assert_int_equal(sentry.starts, 2);
    assert_int_equal(stats_of(&h).state, PK_AGENT_RENEWING);
    harness_stop(&h);
}

/* The wall clock jumps backwards: renewal, judged on the wall clock, moves with it; a retry
 * wait, measured on the monotonic clock, does not. */
static void test_wall_clock_jump_backward(void **state)
{
    struct harness h;
    const double renew_at = (double)(T0 - 60) + 0.5 * LIFETIME;

    harness_config(&h);
    start_with_identity(&h);
    fake.wall -= 1000;
    advance(renew_at - (fake.wall + 1000) + 1);
    assert_int_equal(sentry.starts, 1);
    advance(1000);
    assert_int_equal(sentry.starts, 2);

    sentry_fail();
    double wait = stats_of(&h).next_attempt_in;
    assert_true(wait > 0 && wait <= 1.0);
    fake.wall -= 86400;
    advance(wait + 0.01);
    assert_int_equal(sentry.starts, 3);
    harness_stop(&h);
}

/* New anchors that do not verify our certificate are adopted only through a renewal against
 * them. A failed one is counted once, and the next waits out an ordinary retry's back-off, growing,
 * however often the anchors change meanwhile; a renewal that works adopts them. */
static void test_new_anchors_renewal_backs_off(void **state)
{
    struct harness h;

    harness_config(&h);
    start_with_identity(&h);
    h.cfg.trust_anchors_pem = new_anchors_pem;
    pk_agent_reload_files(h.agent);
    assert_int_equal(sentry.starts, 2); /* a renewal against the new set, at once */
    double failed_at = fake.mono;
    sentry_fail();
    assert_int_equal(stats_of(&h).anchors_refused, 1);

    /* The same set again, or another one, before the back-off is over: no call. */
    pk_agent_reload_files(h.agent);
    h.cfg.trust_anchors_pem = new_anchors2_pem;
    pk_agent_reload_files(h.agent);
    assert_int_equal(sentry.starts, 2);
    advance(1.01); /* the first wait is at most retry_initial */
    assert_int_equal(sentry.starts, 3);
    double first_wait = sentry.started_at[2] - failed_at;
    assert_true(first_wait >= 0.5 - 0.01 && first_wait <= 1.0 + 0.01);

    failed_at = fake.mono;
    sentry_fail();
    pk_agent_reload_files(h.agent);
    h.cfg.trust_anchors_pem = new_anchors_pem;
    pk_agent_reload_files(h.agent);
    assert_int_equal(sentry.starts, 3);
    advance(2.01); /* the second wait: up to twice as long */
    assert_int_equal(sentry.starts, 4);
    double second_wait = sentry.started_at[3] - failed_at;
    assert_true(second_wait >= 1.0 - 0.01 && second_wait <= 2.0 + 0.01);

    /* Sentry now issues under the new root: the set is adopted with the new identity. */
    struct pk_agent_stats before = stats_of(&h);
    sentry_issue_from(&other_pki, T0 - 60, T0 + 2 * LIFETIME);
    struct pk_agent_stats st = stats_of(&h);
    assert_int_equal(st.anchors_updates, before.anchors_updates + 1);
    assert_int_equal(st.rotations_ok, 1);
    assert_int_equal(h.published, 2);
    assert_int_equal(pk_agent_anchors(h.agent)->n, 1);
    struct pk_slice got = pk_cert_der(pk_agent_anchors(h.agent)->v[0]);
    struct pk_slice want = pk_cert_der(other_pki.root);
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.ptr, want.ptr, want.len);
    harness_stop(&h);
}

/* The identity in the slot (a reference the caller drops), checked to be the very object the
 * agent works from: its anchors, its status and the one handed to the published hook. */
static struct pk_identity *slot_identity_seen_by_agent(struct harness *h)
{
    struct pk_identity *id = pk_identity_slot_get(&h->slot);

    assert_non_null(id);
    assert_ptr_equal(pk_agent_anchors(h->agent), pk_identity_anchors(id));
    assert_ptr_equal(h->last_published, id);
    struct pk_agent_stats st = stats_of(h);
    assert_string_equal(st.serial, pk_identity_serial_hex(id));
    assert_int_equal(st.not_after, pk_identity_not_after(id));
    return id;
}

/* The agent keeps no identity beside the slot: after the first install, a renewal and a refused
 * anchor update, what it reports and works from is the slot's identity itself. */
static void test_agent_reads_its_identity_from_the_slot(void **state)
{
    struct harness h;
    struct pk_identity *installed, *renewed, *kept;

    harness_config(&h);
    start_with_identity(&h);
    installed = slot_identity_seen_by_agent(&h);

    advance((double)(T0 - 60) + 0.5 * LIFETIME - fake.wall + 0.01);
    assert_int_equal(sentry.starts, 2);
    sentry_issue(T0, T0 + 2 * LIFETIME);
    assert_int_equal(h.published, 2);
    renewed = slot_identity_seen_by_agent(&h);
    assert_ptr_not_equal(renewed, installed); /* both referenced: distinct objects */

    /* A set that does not verify our certificate, and Sentry does not issue under it either. */
    h.cfg.trust_anchors_pem = new_anchors_pem;
    pk_agent_reload_files(h.agent);
    assert_int_equal(sentry.starts, 3);
    sentry_fail();
    assert_int_equal(stats_of(&h).anchors_refused, 1);
    assert_int_equal(h.published, 2);
    kept = slot_identity_seen_by_agent(&h);
    assert_ptr_equal(kept, renewed);

    pk_identity_unref(kept);
    pk_identity_unref(renewed);
    pk_identity_unref(installed);
    harness_stop(&h);
}

/* A root and an issuer under it, in the Dapr Sentry profile. */
static int pki_make(struct pki *p, const char *org)
{
    struct pk_cert_template rt = {
            .subject_o = org,
            .not_before = T0 - 900,
            .not_after = T0 + 365 * 86400,
            .is_ca = true,
            .path_len = -1,
            .key_usage = PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN,
            .subject_key_id = true,
    };
    struct pk_cert_template it = rt;

    it.subject_o = ISSUER_O;
    it.key_usage = PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN | PK_KU_CRL_SIGN;
    it.not_after = T0 + 30 * 86400;
    if (pk_key_generate(PK_KEY_P256, &p->root_key, NULL) != 0 ||
        pk_key_generate(PK_KEY_P256, &p->iss_key, NULL) != 0) {
        return -1;
    }
    p->root = issue(&rt, p->root_key, NULL, p->root_key);
    p->iss = issue(&it, p->iss_key, p->root, p->root_key);
    return 0;
}

static void pki_free(struct pki *p)
{
    pk_key_free(p->root_key);
    pk_key_free(p->iss_key);
    pk_cert_free(p->root);
    pk_cert_free(p->iss);
}

static int group_setup(void **state)
{
    T0 = time(NULL);
    pk_log_setup(PK_LOG_LEVEL_FATAL, false);
    if (pki_make(&pki, "picket-test") != 0 || pki_make(&other_pki, "picket-test-new") != 0) {
        return -1;
    }

    /* A root that expires 100 s from now, valid when the identities are built. */
    struct pk_key *short_key = NULL;
    struct pk_cert_template st = {
            .subject_o = "picket-test-short",
            .not_before = T0 - 900,
            .not_after = T0 + 100,
            .is_ca = true,
            .path_len = -1,
            .key_usage = PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN,
            .subject_key_id = true,
    };
    if (pk_key_generate(PK_KEY_P256, &short_key, NULL) != 0) {
        return -1;
    }
    short_root = issue(&st, short_key, NULL, short_key);
    pk_key_free(short_key);

    const struct pk_cert *one[] = {pki.root};
    const struct pk_cert *two[] = {pki.root, short_root};
    const struct pk_cert *new1[] = {other_pki.root};
    const struct pk_cert *new2[] = {other_pki.root, short_root};
    anchors_pem = pem_of(one, 1);
    two_anchors_pem = pem_of(two, 2);
    new_anchors_pem = pem_of(new1, 1);
    new_anchors2_pem = pem_of(new2, 2);
    return 0;
}

static int group_teardown(void **state)
{
    pki_free(&pki);
    pki_free(&other_pki);
    pk_cert_free(short_root);
    free(anchors_pem);
    free(two_anchors_pem);
    free(new_anchors_pem);
    free(new_anchors2_pem);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup(test_renews_at_scheduled_fraction, test_setup),
            cmocka_unit_test_setup(test_renewal_jitter_stays_in_window, test_setup),
            cmocka_unit_test_setup(test_backoff_is_capped_and_jittered, test_setup),
            cmocka_unit_test_setup(test_gives_up_after_initial_attempts, test_setup),
            cmocka_unit_test_setup(test_identity_expires_while_renewal_fails, test_setup),
            cmocka_unit_test_setup(test_retrust_at_anchor_expiry, test_setup),
            cmocka_unit_test_setup(test_wall_clock_jump_forward, test_setup),
            cmocka_unit_test_setup(test_wall_clock_jump_backward, test_setup),
            cmocka_unit_test_setup(test_new_anchors_renewal_backs_off, test_setup),
            cmocka_unit_test_setup(test_agent_reads_its_identity_from_the_slot, test_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
