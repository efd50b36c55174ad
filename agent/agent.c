/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the agent's state machine on libev. */
#include "agent/agent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/export.h"
#include "agent/refusal.h"
#include "agent/schedule.h"
#include "agent/sentry_client.h"
#include "agent/token.h"
#include "common/fsutil.h"
#include "common/key.h"
#include "common/log.h"
#include "common/mem.h"
#include "net/filewatch.h"
#include "sentry.pb-c.h"

/* The longest the agent sleeps without looking at the wall clock again: a jump of the wall
 * clock is noticed within this time. A wake-up costs next to nothing. */
#define MAX_TICK      5.0
#define MAX_PEM_FILE  (1024u * 1024u)
#define FILE_DEBOUNCE 0.2
/* A trust anchors file refused for this long is logged again (once), as a reminder. */
#define ANCHORS_REFUSAL_REMIND 600.0

struct pk_agent {
    struct ev_loop *loop; /* for the file watches and the export command */
    struct pk_clock *clock;
    struct pk_clock *own_clock; /* the libev clock made for us, if no clock was given */
    const struct pk_agent_sentry *sentry;
    const struct pk_agent_config *cfg;
    struct pk_identity_slot *slot;
    struct pk_agent_hooks hooks;

    /* No identity of its own: the slot owns the current one (current_identity()). */
    time_t trust_refused_at; /* its anchor-validity change that retrust() refused */
    struct pk_certs anchors; /* the set in force */
    struct pk_buf anchors_pem;
    bool anchors_changed; /* since the last identity from Sentry: a failure may be theirs */

    uint64_t seed; /* jitter seed (ID + process start) */
    uint64_t process_salt;
    double renew_at; /* wall clock */
    double retry_at; /* monotonic, 0 = no retry pending */
    unsigned failures;
    bool expired_logged;
    bool dead; /* gave up (fatal hook called): nothing more is started */

    struct pk_sentry_fetch *fetch;
    /* A refused anchor set waiting to be proven by a renewal against it (Sentry mode). */
    struct pk_certs pending_anchors;
    struct pk_buf pending_anchors_pem;
    uint8_t pending_digest[PK_REFUSAL_DIGEST];
    bool fetch_uses_pending;

    /* A refused anchors input: counted and logged once, looked at again on a back-off. */
    struct pk_refusal anchors_refusal;
    double anchors_recheck_at; /* monotonic, 0 = none */
    /* Renewals against a new anchor set back off like ordinary renewals, whatever the file. */
    unsigned speculative_failures;
    double speculative_not_before; /* monotonic */

    struct pk_clock_timer *tick;
    struct pk_filewatch *anchors_watch;
    struct pk_filewatch *static_watch;

    struct pk_agent_stats stats;
};

const char *pk_agent_state_name(enum pk_agent_state state)
{
    switch (state) {
    case PK_AGENT_STARTING:
        return "starting";
    case PK_AGENT_FRESH:
        return "fresh";
    case PK_AGENT_RENEWING:
        return "renewing";
    case PK_AGENT_OVERDUE:
        return "overdue";
    case PK_AGENT_EXPIRED:
        return "expired";
    }
    return "unknown";
}

static bool static_mode(const struct pk_agent *a)
{
    return a->cfg->sentry_address == NULL || a->cfg->sentry_address[0] == '\0';
}

static double wall_now(const struct pk_agent *a)
{
    return pk_clock_wall(a->clock);
}

/* The wall clock in whole seconds, as certificate checks take it. */
static time_t wall_seconds(const struct pk_agent *a)
{
    return (time_t)pk_clock_wall(a->clock);
}

static double mono_now(const struct pk_agent *a)
{
    return pk_clock_monotonic(a->clock);
}

/* ---- trust anchors ---------------------------------------------------------------------- */

static bool certs_equal(const struct pk_certs *a, const struct pk_certs *b)
{
    if (a->n != b->n) {
        return false;
    }
    for (size_t i = 0; i < a->n; i++) {
        struct pk_slice x = pk_cert_der(a->v[i]), y = pk_cert_der(b->v[i]);
        if (x.len != y.len || memcmp(x.ptr, y.ptr, x.len) != 0) {
            return false;
        }
    }
    return true;
}

static bool certs_contain(const struct pk_certs *set, const struct pk_cert *c)
{
    struct pk_slice d = pk_cert_der(c);
    for (size_t i = 0; i < set->n; i++) {
        struct pk_slice e = pk_cert_der(set->v[i]);
        if (e.len == d.len && memcmp(e.ptr, d.ptr, d.len) == 0) {
            return true;
        }
    }
    return false;
}

/* Append every certificate of pem (named what in messages) to out, skipping duplicates. */
static int add_anchors(struct pk_certs *out, const uint8_t *pem, size_t len, const char *what,
                       struct pk_err *err)
{
    struct pk_certs parsed = {0};
    int r = pk_certs_parse_anchors_pem(pem, len, what, &parsed, err);

    for (size_t i = 0; r == 0 && i < parsed.n; i++) {
        if (!certs_contain(out, parsed.v[i])) {
            r = pk_certs_push_copy(out, parsed.v[i]);
        }
    }
    pk_certs_clear(&parsed);
    return r;
}

/* The configured anchor set: DAPR_TRUST_ANCHORS and the file, united. digest identifies the
 * input (the variable and the file's bytes, or why the file could not be read), so that the
 * same refused input is recognised when it is read again. */
static int load_anchors(const struct pk_agent_config *cfg, struct pk_certs *out,
                        struct pk_buf *out_pem, uint8_t digest[PK_REFUSAL_DIGEST],
                        struct pk_err *err)
{
    struct pk_slice env = {0};
    struct pk_buf file;
    struct pk_err read_err;
    int read_r = 0;
    int r = 0;

    pk_buf_init(&file, MAX_PEM_FILE);
    pk_err_clear(&read_err);
    if (cfg->trust_anchors_pem != NULL) {
        env = pk_slice_make(cfg->trust_anchors_pem, strlen(cfg->trust_anchors_pem));
    }
    if (cfg->trust_anchors_file != NULL) {
        read_r = pk_fs_read_file(cfg->trust_anchors_file, MAX_PEM_FILE, &file, &read_err);
    }
    pk_refusal_digest(env,
                      read_r == 0 ? pk_buf_slice(&file)
                                  : pk_slice_make(read_err.msg, strlen(read_err.msg)),
                      digest);
    if (env.len > 0) {
        r = add_anchors(out, env.ptr, env.len, "DAPR_TRUST_ANCHORS", err);
    }
    if (r == 0 && read_r != 0) {
        *err = read_err;
        r = read_r;
    }
    if (r == 0 && cfg->trust_anchors_file != NULL) {
        r = add_anchors(out, file.data, file.len, cfg->trust_anchors_file, err);
    }
    if (r == 0 && out->n == 0) {
        r = pk_err_set(err, PK_E_INVALID, "no trust anchors configured");
    }
    if (r == 0) {
        r = pk_certs_to_pem(out, out_pem);
        if (r != 0) {
            pk_err_set(err, r, "trust anchors: more than %u bytes", MAX_PEM_FILE);
        }
    }
    if (r != 0) {
        pk_certs_clear(out);
        pk_buf_truncate(out_pem, 0);
    }
    pk_buf_free(&file);
    return r;
}

static void log_anchors(const char *what, const struct pk_certs *anchors)
{
    for (size_t i = 0; i < anchors->n; i++) {
        char serial[80];
        pk_cert_serial_hex(anchors->v[i], serial, sizeof(serial));
        PK_LOG_INFO("%s index=%zu subject=\"%s\" serial=%s not_after=%lld", what, i,
                    pk_cert_subject(anchors->v[i]), serial,
                    (long long)pk_cert_not_after(anchors->v[i]));
    }
}

static void set_anchors(struct pk_agent *a, struct pk_certs *anchors, struct pk_buf *pem)
{
    pk_certs_clear(&a->anchors);
    a->anchors = *anchors;
    memset(anchors, 0, sizeof(*anchors));
    pk_buf_truncate(&a->anchors_pem, 0);
    if (pk_buf_append(&a->anchors_pem, pem->data, pem->len) != 0) {
        PK_ASSERT(!"anchor PEM exceeds its own cap");
    }
    a->stats.anchors = a->anchors.n;
}

/* ---- publishing ------------------------------------------------------------------------- */

static void reschedule(struct pk_agent *a);
static void check_anchors(struct pk_agent *a);

static void export_identity(struct pk_agent *a, const struct pk_identity *id)
{
    const struct pk_agent_config *cfg = a->cfg;
    struct pk_export_opts opts = {
            .dir = cfg->export_dir,
            .command = cfg->export_command,
            .pid_file = cfg->export_pid_file,
            .signal = cfg->export_signal,
            .group_set = cfg->export_group >= 0,
            .group = (gid_t)cfg->export_group,
    };
    struct pk_err err;

    if (cfg->export_dir == NULL) {
        return;
    }
    pk_err_clear(&err);
    if (pk_export_write(&opts, id, &err) != 0) {
        PK_LOG_ERR("export failed dir=%s error=\"%s\"", cfg->export_dir, err.msg);
        return;
    }
    PK_LOG_INFO("identity exported dir=%s serial=%s", cfg->export_dir, pk_identity_serial_hex(id));
    if (pk_export_notify(a->loop, &opts, &err) != 0) {
        PK_LOG_ERR("export notification failed error=\"%s\"", err.msg);
    }
}

/* Clear what an export interrupted by a crash left behind (a key in an unfinished version). */
static void export_prepare(const struct pk_agent *a)
{
    struct pk_export_opts opts = {
            .dir = a->cfg->export_dir,
            .group_set = a->cfg->export_group >= 0,
            .group = (gid_t)a->cfg->export_group,
    };
    struct pk_err err;

    pk_err_clear(&err);
    if (opts.dir != NULL && pk_export_prepare(&opts, &err) != 0) {
        PK_LOG_ERR("export directory unusable dir=%s error=\"%s\"", opts.dir, err.msg);
    }
}

/* The current identity, borrowed from the slot, which is its only owner; NULL until the first
 * one. The agent is the slot's only publisher and runs on one thread, so the pointer holds until
 * our own next publish(): a caller that publishes must look again afterwards. */
static struct pk_identity *current_identity(const struct pk_agent *a)
{
    return pk_identity_slot_peek(a->slot);
}

/* Install id (taking its reference) as the current identity. */
static void publish(struct pk_agent *a, struct pk_identity *id, const char *why)
{
    bool first = current_identity(a) == NULL;

    /* The same certificate with new anchors keeps its renewal time. */
    if (!static_mode(a) && strcmp(why, "trust-anchors") != 0) {
        a->seed = pk_schedule_seed(pk_identity_spiffe_id(id), a->process_salt);
        a->renew_at = pk_schedule_renew_at(pk_identity_not_before(id), pk_identity_not_after(id),
                                           a->cfg->renew_fraction, a->cfg->renew_jitter, a->seed);
        double now = wall_now(a);
        if (a->renew_at <= now) {
            /* Renewal due the moment a certificate arrives: our clock is ahead of Sentry's
             * (or jumped). Scheduling by the certificate alone would renew in a loop, so take
             * the fraction of what is left of its life as seen from here. */
            double left = (double)pk_identity_not_after(id) - now;
            a->renew_at = now + left * a->cfg->renew_fraction;
            PK_LOG_WARN("clock skew: the new certificate was due for renewal on arrival, "
                        "renewing in %.0fs instead not_before=%lld now=%.0f",
                        a->renew_at - now, (long long)pk_identity_not_before(id), now);
        }
    }
    /* The slot takes our reference; from here on id is borrowed from it (valid on this thread
     * until the next publish), which covers the log line and the hook below. */
    pk_identity_slot_publish(a->slot, id);
    a->expired_logged = false;
    if (!first && strcmp(why, "trust-anchors") != 0) {
        a->stats.rotations_ok++;
    }
    PK_LOG_EVENT(PK_LOG_LEVEL_INFO, "identity installed", PK_LF_STR("reason", why),
                 PK_LF_STR("spiffe_id", pk_identity_spiffe_id(id)),
                 PK_LF_STR("serial", pk_identity_serial_hex(id)),
                 PK_LF_INT("not_before", (long long)pk_identity_not_before(id)),
                 PK_LF_INT("not_after", (long long)pk_identity_not_after(id)),
                 PK_LF_INT("next_renewal", static_mode(a) ? 0 : (long long)a->renew_at),
                 PK_LF_STR("source", pk_identity_source(id)),
                 PK_LF_UINT("anchors", pk_identity_anchors(id)->n));
    export_identity(a, id);
    if (a->hooks.published != NULL) {
        a->hooks.published(a->hooks.ctx, id);
    }
}

/* ---- fetching from Sentry --------------------------------------------------------------- */

/* Where the anchors come from, for messages: the file, else the variable. */
static const char *anchors_source(const struct pk_agent_config *cfg)
{
    return cfg->trust_anchors_file != NULL ? cfg->trust_anchors_file : "DAPR_TRUST_ANCHORS";
}

static void fetch_failed(struct pk_agent *a, const char *why)
{
    const struct pk_identity *held = current_identity(a);
    double delay;
    char hint[1200] = "";

    snprintf(a->stats.last_error, sizeof(a->stats.last_error), "%s", why);
    a->failures++;
    if (held == NULL) {
        a->stats.initial_failures++;
    } else {
        a->stats.rotations_failed++;
    }
    delay = pk_schedule_backoff(a->failures - 1, a->cfg->retry_initial, a->cfg->retry_max,
                                a->process_salt ^ a->failures);
    a->retry_at = mono_now(a) + delay;
    /* A TLS failure with Sentry is most often a trust anchor set it does not chain to (above
     * all just after the set changed): name where the anchors come from. */
    if (strstr(why, "TLS") != NULL) {
        snprintf(hint, sizeof(hint),
                 " hint=\"Sentry's certificate must chain to the trust anchors (%s)%s\"",
                 anchors_source(a->cfg),
                 a->anchors_changed ? ", which changed since the last identity from Sentry" : "");
    }
    PK_LOG_ERR("identity fetch failed attempt=%u error=\"%s\" retry_in=%.1fs holding=%s%s",
               a->failures, why, delay, held != NULL ? pk_identity_serial_hex(held) : "none", hint);
    if (held == NULL && a->cfg->initial_attempts > 0 &&
        a->failures >= (unsigned long)a->cfg->initial_attempts) {
        char msg[1200];
        snprintf(msg, sizeof(msg), "no identity after %u attempts; last error: %s", a->failures,
                 why);
        a->dead = true;
        PK_LOG_ERR("giving up reason=\"%s\"", msg);
        if (a->hooks.fatal != NULL) {
            a->hooks.fatal(a->hooks.ctx, msg);
        }
    }
}

static void drop_pending_anchors(struct pk_agent *a)
{
    pk_certs_clear(&a->pending_anchors);
    pk_buf_truncate(&a->pending_anchors_pem, 0);
    a->fetch_uses_pending = false;
}

/* ---- refused anchors ---------------------------------------------------------------------- */

/* The anchors input with digest is refused (why: ": reason" or ""): counted and logged the
 * first time, quietly afterwards, and looked at again on a back-off instead of at every event. */
static void refuse_anchors(struct pk_agent *a, const uint8_t digest[PK_REFUSAL_DIGEST],
                           const char *why, const char *error)
{
    const struct pk_refusal_policy policy = {
            .initial = a->cfg->retry_initial,
            .max = a->cfg->retry_max,
            .remind = ANCHORS_REFUSAL_REMIND,
            .seed = a->process_salt,
    };
    double now = mono_now(a);
    enum pk_refusal_news news = pk_refusal_note(&a->anchors_refusal, &policy, digest, now);

    a->anchors_recheck_at = a->anchors_refusal.retry_at;
    if (a->anchors_recheck_at < a->speculative_not_before) {
        a->anchors_recheck_at = a->speculative_not_before;
    }
    if (news == PK_REFUSAL_REPEAT) {
        PK_LOG_DEBUG("trust anchors still refused%s retry_in=%.1fs error=\"%s\"", why,
                     a->anchors_recheck_at - now, error);
        return;
    }
    if (news == PK_REFUSAL_NEW) {
        a->stats.anchors_refused++;
    }
    PK_LOG_ERR("trust anchors refused%s, keeping the current set anchors=%s count=%zu%s "
               "retry_in=%.1fs error=\"%s\"",
               why, anchors_source(a->cfg), a->anchors.n,
               news == PK_REFUSAL_REMINDER ? " still=true" : "", a->anchors_recheck_at - now,
               error);
}

/* The anchors input is accepted (or back to the set in force): nothing is refused. */
static void anchors_settled(struct pk_agent *a)
{
    pk_refusal_clear(&a->anchors_refusal);
    a->anchors_recheck_at = 0;
}

/* A renewal against a new anchor set failed: the next one waits as an ordinary retry would,
 * however often the anchors file changes meanwhile. */
static void speculative_failed(struct pk_agent *a)
{
    double delay =
            pk_schedule_backoff(a->speculative_failures, a->cfg->retry_initial, a->cfg->retry_max,
                                a->process_salt ^ 0x5bec ^ a->speculative_failures);

    a->speculative_failures++;
    a->speculative_not_before = mono_now(a) + delay;
}

/* A renewal against the pending set failed (error says why). */
static void pending_refused(struct pk_agent *a, const char *why, const char *error)
{
    uint8_t digest[PK_REFUSAL_DIGEST];

    memcpy(digest, a->pending_digest, sizeof(digest));
    drop_pending_anchors(a);
    speculative_failed(a);
    refuse_anchors(a, digest, why, error);
}

/* The anchors an identity from Sentry is built with: ours, plus Sentry's roots when adopting. */
static int anchors_for(struct pk_agent *a, const struct pk_svid *svid, const struct pk_certs *base,
                       struct pk_certs *out, struct pk_err *err)
{
    int r = 0;
    for (size_t i = 0; r == 0 && i < base->n; i++) {
        r = pk_certs_push_copy(out, base->v[i]);
    }
    if (r == 0 && a->cfg->adopt_sentry_anchors && svid->anchors_pem.len > 0) {
        r = add_anchors(out, svid->anchors_pem.data, svid->anchors_pem.len,
                        "Sentry's trust_chain_certificates", err);
    }
    return r;
}

static void fetch_done(void *ctx, struct pk_sentry_fetch_result *res)
{
    struct pk_agent *a = ctx;
    bool with_pending = a->fetch_uses_pending;
    struct pk_certs anchors = {0};
    struct pk_identity *id = NULL;
    struct pk_err err;
    int r;

    a->fetch = NULL;
    if (res->grpc_status >= 0 && res->grpc_status <= PK_GRPC_UNAUTHENTICATED) {
        a->stats.sentry_requests[res->grpc_status]++;
    }
    if (res->result != 0) {
        if (res->response_rejected) {
            a->stats.responses_rejected++;
        }
        if (with_pending) {
            /* A speculative renewal: the schedule of the current identity is untouched. */
            pending_refused(a, ": a renewal against the new set failed", res->err->msg);
            goto out;
        }
        fetch_failed(a, res->err->msg);
        goto out;
    }
    pk_err_clear(&err);
    r = anchors_for(a, res->svid, with_pending ? &a->pending_anchors : &a->anchors, &anchors, &err);
    if (r == 0) {
        struct pk_identity_params p = {
                .key = res->svid->key,
                .chain = &res->svid->chain,
                .anchors = &anchors,
                .allow_tls12 = a->cfg->allow_tls12,
                .source = "sentry",
        };
        res->svid->key = NULL; /* taken by pk_identity_new */
        r = pk_identity_new(&p, wall_seconds(a), &id, &err);
    }
    if (r != 0) {
        a->stats.responses_rejected++;
        if (with_pending) {
            pending_refused(a, ": the identity renewed against the new set failed its checks",
                            err.msg);
            goto out;
        }
        fetch_failed(a, err.msg);
        goto out;
    }
    if (with_pending) {
        struct pk_buf pem;
        pk_buf_init(&pem, MAX_PEM_FILE);
        if (pk_buf_append(&pem, a->pending_anchors_pem.data, a->pending_anchors_pem.len) == 0) {
            set_anchors(a, &a->pending_anchors, &pem);
            a->stats.anchors_updates++;
            log_anchors("trust anchor", &a->anchors);
        }
        pk_buf_free(&pem);
        drop_pending_anchors(a);
        anchors_settled(a);
        a->speculative_failures = 0;
        a->speculative_not_before = 0;
    }
    a->failures = 0;
    a->retry_at = 0;
    a->anchors_changed = false;
    a->stats.last_error[0] = '\0';
    publish(a, id, current_identity(a) == NULL ? "initial" : "renewal");
out:
    pk_certs_clear(&anchors);
    pk_svid_free(res->svid);
    res->svid = NULL;
    reschedule(a);
}

static void start_fetch(struct pk_agent *a)
{
    const struct pk_agent_config *cfg = a->cfg;
    const struct pk_buf *anchors =
            a->fetch_uses_pending ? &a->pending_anchors_pem : &a->anchors_pem;
    struct pk_sentry_client_config sc = {
            .address = cfg->sentry_address,
            .control_plane_trust_domain = cfg->control_plane_trust_domain,
            .control_plane_namespace = cfg->control_plane_namespace,
            .app_id = cfg->request_id,
            .namespace_ = cfg->namespace_,
            .trust_domain = cfg->trust_domain,
            /* As daprd: the token and its validator depend on the mode (agent/token.h). */
            .token_validator = pk_token_validator(cfg),
            .anchors_pem = anchors->data,
            .anchors_pem_len = anchors->len,
            .timeout = cfg->request_timeout,
            .mark = (uint32_t)cfg->mark,
            .resolved = cfg->sentry_slot,
    };
    const struct pk_identity *held = current_identity(a);
    struct pk_buf token;
    struct pk_err err;
    int r;

    pk_err_clear(&err);
    a->retry_at = 0;
    /* Read here rather than in the client so that a token that cannot be read is counted on its
     * own: it is the operator's to fix, not Sentry's. */
    pk_buf_init_secret(&token, PK_TOKEN_MAX);
    if (pk_token_read(cfg, &token, &err) != 0) {
        pk_buf_free(&token);
        a->stats.token_failures++;
        fetch_failed(a, err.msg);
        return;
    }
    sc.token = token.len > 0 ? token.data : NULL;
    sc.token_len = token.len;
    PK_LOG_INFO("identity fetch started sentry=%s attempt=%u holding=%s", cfg->sentry_address,
                a->failures + 1, held != NULL ? pk_identity_serial_hex(held) : "none");
    r = a->sentry->start(a->loop, &sc, fetch_done, a, &a->fetch, &err);
    pk_buf_free(&token);
    if (r != 0) {
        if (a->fetch_uses_pending) {
            pending_refused(a, ": cannot renew against the new set", err.msg);
            return;
        }
        fetch_failed(a, err.msg);
    }
}

/* ---- the clock ---------------------------------------------------------------------------- */

static void update_state(struct pk_agent *a, double now)
{
    const struct pk_identity *cur = current_identity(a);
    enum pk_agent_state st;

    if (cur == NULL) {
        st = PK_AGENT_STARTING;
    } else if (now >= (double)pk_identity_not_after(cur)) {
        st = PK_AGENT_EXPIRED;
    } else if (static_mode(a) || now < a->renew_at) {
        st = PK_AGENT_FRESH;
    } else {
        st = a->failures > 0 ? PK_AGENT_OVERDUE : PK_AGENT_RENEWING;
    }
    if (st == PK_AGENT_EXPIRED && !a->expired_logged) {
        PK_LOG_ERR("identity expired spiffe_id=%s serial=%s not_after=%lld",
                   pk_identity_spiffe_id(cur), pk_identity_serial_hex(cur),
                   (long long)pk_identity_not_after(cur));
        a->expired_logged = true;
    }
    a->stats.state = st;
}

/* An anchor of the current identity has just expired or become valid: rebuild the identity
 * with the same anchors at the current time, so that TLS trusts exactly the valid ones (and
 * the proxy re-checks its connections against them). */
static void retrust(struct pk_agent *a)
{
    /* Borrowed from the slot, and anchors from it: both are done with before publish(). */
    const struct pk_identity *cur = current_identity(a);
    const struct pk_certs *anchors = pk_identity_anchors(cur);
    struct pk_identity *id = NULL;
    struct pk_err err;

    pk_err_clear(&err);
    if (pk_identity_with_anchors(cur, anchors, wall_seconds(a), &id, &err) != 0) {
        /* Our own root expired (or nothing is valid any more): the identity stops working
         * anyway; keep it, say so once, and let renewal or an anchor update fix it. */
        a->trust_refused_at = pk_identity_trust_changes_at(cur);
        PK_LOG_ERR("trust anchors changed validity, but the identity cannot be rebuilt with "
                   "them error=\"%s\"",
                   err.msg);
        return;
    }
    PK_LOG_INFO("trust anchors changed validity trusted=%zu of=%zu",
                pk_identity_trusted_anchors(id)->n, anchors->n);
    publish(a, id, "trust-anchors");
}

/* Decide what is due and arm the tick for the next thing (at most MAX_TICK away). */
static void reschedule(struct pk_agent *a)
{
    double now = wall_now(a);
    double mono = mono_now(a);
    double wait = MAX_TICK;

    update_state(a, now);
    if (a->dead) {
        a->clock->ops->timer_stop(a->tick);
        return;
    }
    if (a->anchors_recheck_at > 0 && a->anchors_recheck_at <= mono) {
        a->anchors_recheck_at = 0;
        check_anchors(a); /* may refuse again (with a later recheck) or start a renewal */
    }
    if (a->anchors_recheck_at > 0 && a->anchors_recheck_at - mono < wait) {
        wait = a->anchors_recheck_at - mono;
    }
    if (a->fetch != NULL) {
        /* The call has its own deadline; the tick only keeps the state current. */
    } else if (!static_mode(a)) {
        double due_in;
        if (a->retry_at > 0) {
            due_in = a->retry_at - mono;
        } else if (current_identity(a) == NULL) {
            due_in = 0;
        } else {
            due_in = a->renew_at - now;
        }
        if (due_in <= 0) {
            start_fetch(a);
            if (a->fetch == NULL) { /* failed before the call: a retry is now scheduled */
                due_in = a->retry_at - mono;
            } else {
                due_in = MAX_TICK;
            }
        }
        if (due_in < wait) {
            wait = due_in;
        }
    }
    if (current_identity(a) != NULL) {
        double expires_in = (double)pk_identity_not_after(current_identity(a)) - now;
        if (expires_in > 0 && expires_in < wait) {
            wait = expires_in;
        }
        time_t trust_at = pk_identity_trust_changes_at(current_identity(a));
        if (trust_at != 0 && trust_at != a->trust_refused_at && (double)trust_at <= now) {
            retrust(a); /* may publish: look at the slot again */
            trust_at = pk_identity_trust_changes_at(current_identity(a));
        }
        if (trust_at != 0 && trust_at != a->trust_refused_at && (double)trust_at > now &&
            (double)trust_at - now < wait) {
            wait = (double)trust_at - now;
        }
    }
    if (wait < 0.001) {
        wait = 0.001;
    }
    a->clock->ops->timer_arm(a->tick, wait);
}

static void tick_cb(void *ctx)
{
    reschedule(ctx);
}

/* ---- static identity ---------------------------------------------------------------------- */

/* A static certificate is for this app: its SPIFFE ID is spiffe://TD/ns/NAMESPACE/APP_ID of our
 * settings (any trust domain when none is set). Peers authorize us by that ID, so another app's
 * certificate, copied by mistake, would make us speak as that app. */
static int check_static_id(const struct pk_agent_config *cfg, const struct pk_identity *id,
                           const char *cert_what, struct pk_err *err)
{
    const struct pk_spiffe_id *sid = pk_identity_spiffe(id);
    const char *ns = cfg->namespace_ != NULL ? cfg->namespace_ : "default";
    const char *wrong = NULL;

    if (cfg->allow_static_id_mismatch) {
        return 0;
    }
    if (!sid->is_workload) {
        wrong = "its path is not /ns/NAMESPACE/APP_ID";
    } else if (cfg->app_id != NULL && strcmp(sid->app_id, cfg->app_id) != 0) {
        wrong = "the app id differs";
    } else if (strcmp(sid->namespace_, ns) != 0) {
        wrong = "the namespace differs";
    } else if (cfg->trust_domain != NULL && strcmp(sid->trust_domain, cfg->trust_domain) != 0) {
        wrong = "the trust domain differs";
    }
    if (wrong == NULL) {
        return 0;
    }
    return pk_err_set(err, PK_E_INVALID,
                      "static certificate %s is for %s, but this app is app_id=%s namespace=%s "
                      "trust_domain=%s (%s): use this app's certificate, or set [agent] "
                      "allow_static_id_mismatch = true",
                      cert_what, sid->uri, cfg->app_id != NULL ? cfg->app_id : "(any)", ns,
                      cfg->trust_domain != NULL ? cfg->trust_domain : "(any)", wrong);
}

static int load_static(const struct pk_agent_config *cfg, const struct pk_certs *anchors,
                       time_t now, struct pk_identity **out, struct pk_err *err)
{
    struct pk_buf cert, key;
    struct pk_certs chain = {0};
    struct pk_key *k = NULL;
    const char *cert_what = cfg->cert_pem != NULL ? "DAPR_CERT_CHAIN" : cfg->cert_file;
    const char *key_what = cfg->key_pem != NULL ? "DAPR_CERT_KEY" : cfg->key_file;
    int r;

    pk_buf_init(&cert, MAX_PEM_FILE);
    pk_buf_init_secret(&key, MAX_PEM_FILE);
    if (cfg->cert_pem != NULL) {
        r = pk_buf_append_str(&cert, cfg->cert_pem);
    } else {
        r = pk_fs_read_file(cfg->cert_file, MAX_PEM_FILE, &cert, err);
    }
    if (r == 0) {
        if (cfg->key_pem != NULL) {
            r = pk_buf_append_str(&key, cfg->key_pem);
        } else {
            r = pk_fs_check_private(cfg->key_file, "key file", err);
            if (r == 0) {
                r = pk_fs_read_file(cfg->key_file, MAX_PEM_FILE, &key, err);
            }
        }
    }
    if (r != 0) {
        if (err->msg[0] == '\0') {
            pk_err_set(err, r, "static certificate or key too large");
        }
        goto out;
    }
    r = pk_certs_parse_pem(cert.data, cert.len, cert_what, &chain, err);
    if (r == 0) {
        r = pk_key_load_pem(key.data, key.len, key_what, &k, err);
    }
    if (r == 0) {
        struct pk_identity_params p = {
                .key = k,
                .chain = &chain,
                .anchors = anchors,
                .allow_tls12 = cfg->allow_tls12,
                .source = "static",
        };
        k = NULL; /* taken */
        r = pk_identity_new(&p, now, out, err);
        if (r != 0) {
            pk_err_prefix(err, r, "static identity (%s, %s)", cert_what, key_what);
        } else {
            r = check_static_id(cfg, *out, cert_what, err);
            if (r != 0) {
                pk_identity_unref(*out);
                *out = NULL;
            }
        }
    }
out:
    pk_key_free(k);
    pk_certs_clear(&chain);
    pk_buf_free(&cert);
    pk_buf_free(&key);
    return r;
}

static void reload_static(struct pk_agent *a)
{
    const struct pk_identity *held = current_identity(a); /* borrowed; not used past publish() */
    struct pk_identity *id = NULL;
    struct pk_err err;

    pk_err_clear(&err);
    if (load_static(a->cfg, &a->anchors, (time_t)wall_seconds(a), &id, &err) != 0) {
        a->stats.static_refused++;
        PK_LOG_ERR("static identity update refused, keeping the current one serial=%s "
                   "error=\"%s\"",
                   held != NULL ? pk_identity_serial_hex(held) : "none", err.msg);
        return;
    }
    if (held != NULL && strcmp(pk_identity_serial_hex(id), pk_identity_serial_hex(held)) == 0 &&
        certs_equal(pk_identity_chain(id), pk_identity_chain(held))) {
        pk_identity_unref(id); /* unchanged */
        return;
    }
    publish(a, id, "static-files");
    reschedule(a);
}

static void static_changed(void *ctx)
{
    reload_static(ctx);
}

/* ---- anchor changes ----------------------------------------------------------------------- */

/* Read the anchors input again and act on it; the caller reschedules. */
static void check_anchors(struct pk_agent *a)
{
    uint8_t digest[PK_REFUSAL_DIGEST];
    struct pk_certs anchors = {0};
    struct pk_buf pem;
    struct pk_identity *id = NULL;
    struct pk_err err;
    bool retry;

    pk_err_clear(&err);
    pk_buf_init(&pem, MAX_PEM_FILE);
    if (load_anchors(a->cfg, &anchors, &pem, digest, &err) != 0) {
        refuse_anchors(a, digest, "", err.msg);
        goto out;
    }
    if (certs_equal(&anchors, &a->anchors)) {
        anchors_settled(a);
        goto out;
    }
    if (current_identity(a) == NULL) {
        set_anchors(a, &anchors, &pem);
        a->stats.anchors_updates++;
        a->anchors_changed = true;
        log_anchors("trust anchor", &a->anchors);
        anchors_settled(a);
        goto out;
    }
    if (pk_identity_with_anchors(current_identity(a), &anchors, wall_seconds(a), &id, &err) == 0) {
        set_anchors(a, &anchors, &pem);
        a->stats.anchors_updates++;
        a->anchors_changed = true;
        log_anchors("trust anchor", &a->anchors);
        anchors_settled(a);
        publish(a, id, "trust-anchors");
        goto out;
    }
    if (static_mode(a) || a->fetch != NULL) {
        refuse_anchors(a, digest, ": the new set does not verify our own certificate", err.msg);
        goto out;
    }
    /* Perhaps Sentry already issues under the new root: renew against the new set, and adopt
     * it only if that works -- but no sooner than an ordinary retry would call Sentry. */
    retry = pk_refusal_same(&a->anchors_refusal, digest);
    if (mono_now(a) < a->speculative_not_before) {
        a->anchors_recheck_at = a->speculative_not_before;
        if (!retry) {
            PK_LOG_WARN("new trust anchors do not verify our current certificate; renewing "
                        "against them in %.1fs before adopting error=\"%s\"",
                        a->speculative_not_before - mono_now(a), err.msg);
        }
        goto out;
    }
    if (retry) {
        PK_LOG_DEBUG("renewing against the refused trust anchors again");
    } else {
        PK_LOG_WARN("new trust anchors do not verify our current certificate; renewing against "
                    "them before adopting error=\"%s\"",
                    err.msg);
    }
    drop_pending_anchors(a);
    a->pending_anchors = anchors;
    memset(&anchors, 0, sizeof(anchors));
    if (pk_buf_append(&a->pending_anchors_pem, pem.data, pem.len) != 0) {
        PK_ASSERT(!"anchor PEM exceeds its own cap");
    }
    memcpy(a->pending_digest, digest, sizeof(digest));
    a->fetch_uses_pending = true;
    start_fetch(a);
out:
    pk_certs_clear(&anchors);
    pk_buf_free(&pem);
}

static void reload_anchors(struct pk_agent *a)
{
    check_anchors(a);
    reschedule(a);
}

static void anchors_changed(void *ctx)
{
    reload_anchors(ctx);
}

/* ---- life cycle --------------------------------------------------------------------------- */

int pk_agent_check(const struct pk_agent_config *cfg, struct pk_err *err)
{
    struct pk_certs anchors = {0};
    struct pk_identity *id = NULL;
    struct pk_buf pem;
    uint8_t digest[PK_REFUSAL_DIGEST];
    int r;

    pk_buf_init(&pem, MAX_PEM_FILE);
    r = load_anchors(cfg, &anchors, &pem, digest, err);
    if (r != 0) {
        pk_err_prefix(err, r, "trust anchors");
        goto out;
    }
    if (cfg->sentry_address == NULL || cfg->sentry_address[0] == '\0') {
        r = load_static(cfg, &anchors, time(NULL), &id, err);
    } else if (cfg->token_file != NULL) {
        /* What each Sentry request reads (a projected token rotates, but must be there). */
        r = pk_sentry_client_check_token(
                cfg->token_file,
                cfg->token_file_from_env ? "DAPR_SENTRY_TOKEN_FILE" : "[sentry] token_file", err);
    }
out:
    pk_identity_unref(id);
    pk_certs_clear(&anchors);
    pk_buf_free(&pem);
    return r;
}

static const struct pk_agent_sentry real_sentry = {
        .start = pk_sentry_fetch_start,
        .cancel = pk_sentry_fetch_cancel,
};

int pk_agent_new(struct ev_loop *loop, const struct pk_agent_config *cfg,
                 struct pk_identity_slot *slot, const struct pk_agent_hooks *hooks,
                 struct pk_agent **out, struct pk_err *err)
{
    return pk_agent_new_with(loop, cfg, slot, hooks, NULL, out, err);
}

int pk_agent_new_with(struct ev_loop *loop, const struct pk_agent_config *cfg,
                      struct pk_identity_slot *slot, const struct pk_agent_hooks *hooks,
                      const struct pk_agent_deps *deps, struct pk_agent **out, struct pk_err *err)
{
    struct pk_agent *a = pk_xcalloc(1, sizeof(*a));
    uint8_t digest[PK_REFUSAL_DIGEST]; /* not needed at start: nothing is refused yet */
    struct pk_certs anchors = {0};
    struct pk_buf pem;
    int r;

    a->loop = loop;
    a->clock = deps != NULL ? deps->clock : NULL;
    if (a->clock == NULL) {
        a->own_clock = pk_clock_ev_new(loop);
        a->clock = a->own_clock;
    }
    a->sentry = deps != NULL && deps->sentry != NULL ? deps->sentry : &real_sentry;
    a->cfg = cfg;
    a->slot = slot;
    if (hooks != NULL) {
        a->hooks = *hooks;
    }
    a->process_salt = (uint64_t)(wall_now(a) * 1e9) ^ ((uint64_t)getpid() << 32);
    pk_buf_init(&a->anchors_pem, MAX_PEM_FILE);
    pk_buf_init(&a->pending_anchors_pem, MAX_PEM_FILE);
    pk_buf_init(&pem, MAX_PEM_FILE);
    a->tick = a->clock->ops->timer_new(a->clock, tick_cb, a);
    r = load_anchors(cfg, &anchors, &pem, digest, err);
    if (r != 0) {
        pk_err_prefix(err, r, "trust anchors");
        goto fail;
    }
    set_anchors(a, &anchors, &pem);
    log_anchors("trust anchor", &a->anchors);
    a->stats.static_identity = static_mode(a);
    if (static_mode(a)) {
        struct pk_identity *id = NULL;
        r = load_static(a->cfg, &a->anchors, (time_t)wall_seconds(a), &id, err);
        if (r != 0) {
            goto fail;
        }
        publish(a, id, "static-files");
    }
    pk_buf_free(&pem);
    *out = a;
    return 0;
fail:
    pk_buf_free(&pem);
    pk_certs_clear(&anchors);
    pk_agent_free(a);
    return r;
}

void pk_agent_start(struct pk_agent *a)
{
    const struct pk_agent_config *cfg = a->cfg;
    struct pk_err err;

    pk_err_clear(&err);
    export_prepare(a);
    if (cfg->trust_anchors_file != NULL) {
        const char *paths[] = {cfg->trust_anchors_file};
        if (pk_filewatch_start(a->loop, paths, 1, FILE_DEBOUNCE, anchors_changed, a,
                               &a->anchors_watch, &err) != 0) {
            PK_LOG_ERR("cannot watch the trust anchors file error=\"%s\"", err.msg);
        }
    }
    if (static_mode(a) && cfg->cert_file != NULL && cfg->key_file != NULL) {
        const char *paths[] = {cfg->cert_file, cfg->key_file};
        if (pk_filewatch_start(a->loop, paths, 2, FILE_DEBOUNCE, static_changed, a,
                               &a->static_watch, &err) != 0) {
            PK_LOG_ERR("cannot watch the certificate files error=\"%s\"", err.msg);
        }
    }
    reschedule(a);
}

void pk_agent_set_config(struct pk_agent *a, const struct pk_agent_config *cfg)
{
    a->cfg = cfg;
}

void pk_agent_reload_files(struct pk_agent *a)
{
    reload_anchors(a);
    if (static_mode(a) && a->cfg->cert_file != NULL) {
        reload_static(a);
    }
}

void pk_agent_stats(const struct pk_agent *a, struct pk_agent_stats *out)
{
    const struct pk_identity *cur = current_identity(a);

    *out = a->stats;
    update_state((struct pk_agent *)a, wall_now(a));
    out->state = a->stats.state;
    out->ready = cur != NULL && out->state != PK_AGENT_EXPIRED;
    out->next_attempt_in = a->retry_at > 0 ? a->retry_at - mono_now(a) : -1;
    out->failures = a->failures;
    out->renew_at = static_mode(a) ? 0 : a->renew_at;
    if (cur != NULL) {
        snprintf(out->spiffe_id, sizeof(out->spiffe_id), "%s", pk_identity_spiffe_id(cur));
        snprintf(out->serial, sizeof(out->serial), "%s", pk_identity_serial_hex(cur));
        out->not_before = pk_identity_not_before(cur);
        out->not_after = pk_identity_not_after(cur);
    }
}

const struct pk_certs *pk_agent_anchors(const struct pk_agent *a)
{
    const struct pk_identity *cur = current_identity(a);

    return cur != NULL ? pk_identity_anchors(cur) : &a->anchors;
}

void pk_agent_free(struct pk_agent *a)
{
    if (a == NULL) {
        return;
    }
    a->sentry->cancel(a->fetch);
    pk_filewatch_stop(a->anchors_watch);
    pk_filewatch_stop(a->static_watch);
    if (a->tick != NULL) {
        a->clock->ops->timer_free(a->tick);
    }
    pk_clock_ev_free(a->own_clock);
    pk_certs_clear(&a->anchors);
    pk_certs_clear(&a->pending_anchors);
    pk_buf_free(&a->anchors_pem);
    pk_buf_free(&a->pending_anchors_pem);
    free(a);
}
