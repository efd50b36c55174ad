/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the admin endpoint's handlers over net/http_server. */
#include "sidecar/admin.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/addr.h"
#include "common/grpc.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/procmetrics.h"
#include "common/x509.h"
#include "net/http_server.h"
#include "proxy/proxy.h"

/* Long enough for any error a reload gives (struct pk_err's message). */
#define RELOAD_ERROR_LEN 512

struct pk_admin {
    struct pk_http_server *http;
    struct pk_agent *agent;
    struct pk_proxy *proxy;       /* NULL without listeners */
    struct pk_resolver *resolver; /* NULL: no DNS names */
    uint64_t reloads_ok;
    uint64_t reloads_refused;
    char last_reload_error[RELOAD_ERROR_LEN]; /* "" until a reload is refused */
    time_t last_reload_error_time;
};

void pk_admin_set_resolver(struct pk_admin *adm, struct pk_resolver *resolver)
{
    if (adm != NULL) {
        adm->resolver = resolver;
    }
}

void pk_admin_note_reload(struct pk_admin *adm, const char *error)
{
    if (adm == NULL) {
        return;
    }
    if (error == NULL) {
        adm->reloads_ok++;
        return;
    }
    adm->reloads_refused++;
    snprintf(adm->last_reload_error, sizeof(adm->last_reload_error), "%s", error);
    adm->last_reload_error_time = time(NULL);
}

void pk_admin_set_proxy(struct pk_admin *adm, struct pk_proxy *proxy)
{
    if (adm != NULL) {
        adm->proxy = proxy;
    }
}

static int healthz(void *ctx, const struct pk_http1_request *req, struct pk_http_reply *reply)
{
    (void)ctx;
    (void)req;
    return pk_buf_append_str(&reply->body, "ok\n");
}

bool pk_admin_ready(struct pk_agent *agent, struct pk_proxy *proxy, char *why, size_t why_len)
{
    struct pk_agent_stats st;
    char scratch[8];

    if (why == NULL) {
        why = scratch;
        why_len = sizeof(scratch);
    }
    pk_agent_stats(agent, &st);
    if (!st.ready) {
        if (st.state == PK_AGENT_EXPIRED) {
            snprintf(why, why_len, "identity %s (serial %s) expired at %lld", st.spiffe_id,
                     st.serial, (long long)st.not_after);
        } else {
            snprintf(why, why_len, "no identity yet (%u failed attempts)", st.failures);
        }
        return false;
    }
    for (size_t i = 0; proxy != NULL && i < pk_proxy_listener_count(proxy); i++) {
        struct pk_listener_stats ls;
        pk_proxy_listener_stats(proxy, i, &ls);
        if (!ls.up) {
            snprintf(why, why_len, "listener [%s %s] on %s is not accepting yet", ls.kind, ls.name,
                     ls.listen);
            return false;
        }
    }
    snprintf(why, why_len, "%s serial %s", st.spiffe_id, st.serial);
    return true;
}

static int readyz(void *ctx, const struct pk_http1_request *req, struct pk_http_reply *reply)
{
    (void)req;
    struct pk_admin *adm = ctx;
    char why[512];

    if (pk_admin_ready(adm->agent, adm->proxy, why, sizeof(why))) {
        return pk_buf_printf(&reply->body, "ready: %s\n", why);
    }
    reply->status = 503;
    return pk_buf_printf(&reply->body, "not ready: %s\n", why);
}

/* Add key = value to obj; jansson copies strings and escapes them on output. */
static void set_str(json_t *obj, const char *key, const char *value)
{
    json_object_set_new(obj, key, json_string(value));
}

static void set_int(json_t *obj, const char *key, long long value)
{
    json_object_set_new(obj, key, json_integer(value));
}

static int status(void *ctx, const struct pk_http1_request *req, struct pk_http_reply *reply)
{
    (void)req;
    struct pk_admin *adm = ctx;
    const struct pk_certs *anchors = pk_agent_anchors(adm->agent);
    struct pk_agent_stats st;
    json_t *root = json_object(), *id = json_object(), *rot = json_object(), *anc = json_array(),
           *sentry = json_object();
    time_t now = time(NULL);
    char *text;
    int r;

    char why[512];
    bool ready = pk_admin_ready(adm->agent, adm->proxy, why, sizeof(why));

    pk_agent_stats(adm->agent, &st);
    set_str(root, "state", pk_agent_state_name(st.state));
    json_object_set_new(root, "ready", json_boolean(ready));
    if (!ready) {
        set_str(root, "not_ready_reason", why);
    }
    set_str(root, "version", PK_VERSION);
    set_int(root, "now", (long long)now);
    if (st.spiffe_id[0] != '\0') {
        set_str(id, "spiffe_id", st.spiffe_id);
        set_str(id, "serial", st.serial);
        set_int(id, "not_before", (long long)st.not_before);
        set_int(id, "not_after", (long long)st.not_after);
        set_str(id, "source", st.static_identity ? "static" : "sentry");
        if (!st.static_identity) {
            set_int(id, "renew_at", (long long)st.renew_at);
        }
        json_object_set_new(root, "identity", id);
    } else {
        json_decref(id);
        json_object_set_new(root, "identity", json_null());
    }
    set_int(rot, "ok", (long long)st.rotations_ok);
    set_int(rot, "failed", (long long)st.rotations_failed);
    set_int(rot, "initial_failures", (long long)st.initial_failures);
    set_int(rot, "responses_rejected", (long long)st.responses_rejected);
    set_int(rot, "consecutive_failures", st.failures);
    set_int(rot, "token_failures", (long long)st.token_failures);
    if (st.last_error[0] != '\0') {
        json_object_set_new(rot, "last_error", json_string(st.last_error));
    }
    if (st.next_attempt_in >= 0) {
        json_object_set_new(rot, "next_retry_in", json_real(st.next_attempt_in));
    }
    json_object_set_new(root, "rotation", rot);
    {
        json_t *rel = json_object();
        set_int(rel, "ok", (long long)adm->reloads_ok);
        set_int(rel, "refused", (long long)adm->reloads_refused);
        if (adm->last_reload_error[0] != '\0') {
            set_str(rel, "last_error", adm->last_reload_error);
            set_int(rel, "last_error_time", (long long)adm->last_reload_error_time);
        }
        json_object_set_new(root, "reloads", rel);
    }
    for (int code = 0; code <= PK_GRPC_UNAUTHENTICATED; code++) {
        if (st.sentry_requests[code] > 0) {
            set_int(sentry, pk_grpc_status_name(code), (long long)st.sentry_requests[code]);
        }
    }
    json_object_set_new(root, "sentry_requests", sentry);
    for (size_t i = 0; i < anchors->n; i++) {
        json_t *a = json_object();
        char serial[80], fp[65];
        pk_cert_serial_hex(anchors->v[i], serial, sizeof(serial));
        pk_cert_fingerprint(anchors->v[i], fp);
        set_str(a, "subject", pk_cert_subject(anchors->v[i]));
        set_str(a, "serial", serial);
        set_str(a, "sha256", fp);
        set_int(a, "not_before", (long long)pk_cert_not_before(anchors->v[i]));
        set_int(a, "not_after", (long long)pk_cert_not_after(anchors->v[i]));
        json_array_append_new(anc, a);
    }
    json_object_set_new(root, "trust_anchors", anc);
    if (adm->proxy != NULL) {
        json_t *ls = json_array();
        for (size_t i = 0; i < pk_proxy_listener_count(adm->proxy); i++) {
            struct pk_listener_stats ps;
            json_t *o = json_object();
            pk_proxy_listener_stats(adm->proxy, i, &ps);
            set_str(o, "name", ps.name);
            set_str(o, "kind", ps.kind);
            set_str(o, "listen", ps.listen);
            json_object_set_new(o, "up", json_boolean(ps.up));
            set_int(o, "port", ps.port);
            set_int(o, "active", (long long)ps.active);
            set_int(o, "total", (long long)ps.total);
            set_int(o, "handshaking", (long long)ps.handshaking);
            set_int(o, "bytes_in", (long long)ps.bytes_in);
            set_int(o, "bytes_out", (long long)ps.bytes_out);
            set_int(o, "handshake_failed", (long long)ps.handshake_failed);
            set_int(o, "denied", (long long)ps.denied);
            set_int(o, "connect_failed", (long long)ps.connect_failed);
            set_int(o, "timeouts", (long long)ps.timeouts);
            set_int(o, "resets", (long long)ps.resets);
            set_int(o, "passthrough", (long long)ps.passthrough);
            set_int(o, "permissive_plaintext", (long long)ps.plaintext);
            set_int(o, "permissive_tls", (long long)ps.tls);
            json_array_append_new(ls, o);
        }
        json_object_set_new(root, "listeners", ls);
    }
    if (pk_resolver_count(adm->resolver) > 0) {
        json_t *names = json_array();
        for (size_t i = 0; i < pk_resolver_count(adm->resolver); i++) {
            struct pk_resolver_stats ds;
            json_t *o = json_object();
            pk_resolver_stats(adm->resolver, i, &ds);
            set_str(o, "name", ds.name);
            set_str(o, "addresses", ds.addresses);
            set_int(o, "answers", (long long)ds.answers);
            set_int(o, "failures", (long long)ds.failures);
            set_int(o, "changes", (long long)ds.changes);
            if (ds.age >= 0) {
                json_object_set_new(o, "age", json_real(ds.age));
                json_object_set_new(o, "ttl", json_real(ds.ttl));
            }
            if (ds.last_error[0] != '\0') {
                set_str(o, "last_error", ds.last_error);
            }
            json_array_append_new(names, o);
        }
        json_object_set_new(root, "dns", names);
    }
    text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    if (text == NULL) {
        return -ENOMEM;
    }
    reply->content_type = "application/json";
    r = pk_buf_printf(&reply->body, "%s\n", text);
    free(text);
    return r;
}

static int metric_head(struct pk_buf *out, const char *name, const char *type, const char *help)
{
    return pk_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int metric(struct pk_buf *out, const char *name, const char *type, const char *help,
                  double value)
{
    return metric_head(out, name, type, help) | pk_buf_printf(out, "%s %.17g\n", name, value);
}

/* The families of one listener sample each. */
enum listener_family {
    LF_UP,
    LF_ACTIVE,
    LF_TOTAL,
    LF_HANDSHAKING,
    LF_HANDSHAKE_FAILURES,
    LF_CLOSED,
    LF_BYTES,
    LF_PASSTHROUGH,
    LF_PERMISSIVE,
    LF_HANDSHAKE_DURATION,
};

static int listener_family(struct pk_buf *out, enum listener_family f, const char *name,
                           const struct pk_listener_stats *s)
{
    const char *kind = s->kind;
    int r = 0;

    switch (f) {
    case LF_HANDSHAKE_DURATION:
        for (size_t b = 0; b < PK_HANDSHAKE_BUCKETS; b++) {
            r |= pk_buf_printf(out, "%s_bucket{listener=\"%s\",kind=\"%s\",le=\"%g\"} %llu\n", name,
                               s->name, kind, pk_handshake_bucket_le[b],
                               (unsigned long long)s->handshake_le[b]);
        }
        r |= pk_buf_printf(out,
                           "%s_bucket{listener=\"%s\",kind=\"%s\",le=\"+Inf\"} %llu\n"
                           "%s_sum{listener=\"%s\",kind=\"%s\"} %.9g\n"
                           "%s_count{listener=\"%s\",kind=\"%s\"} %llu\n",
                           name, s->name, kind,
                           (unsigned long long)s->handshake_le[PK_HANDSHAKE_BUCKETS], name, s->name,
                           kind, s->handshake_seconds_sum, name, s->name, kind,
                           (unsigned long long)s->handshake_le[PK_HANDSHAKE_BUCKETS]);
        return r;
    case LF_UP:
        return pk_buf_printf(out, "%s{listener=\"%s\",kind=\"%s\"} %d\n", name, s->name, kind,
                             s->up ? 1 : 0);
    case LF_ACTIVE:
    case LF_TOTAL:
    case LF_HANDSHAKING:
        return pk_buf_printf(out, "%s{listener=\"%s\",kind=\"%s\"} %llu\n", name, s->name, kind,
                             (unsigned long long)(f == LF_ACTIVE  ? s->active
                                                  : f == LF_TOTAL ? s->total
                                                                  : s->handshaking));
    case LF_HANDSHAKE_FAILURES: {
        /* The ways a connection fails before it carries a byte: the TLS handshake (bad or no
         * certificate, protocol), the authorization of the verified peer, and the clock. */
        const struct {
            const char *reason;
            uint64_t v;
        } rs[] = {{"tls", s->closed[PK_CLOSE_HANDSHAKE_FAILED]},
                  {"denied", s->closed[PK_CLOSE_DENIED]},
                  {"timeout", s->closed[PK_CLOSE_HANDSHAKE_TIMEOUT]}};
        for (size_t k = 0; k < PK_ARRAY_LEN(rs); k++) {
            r |= pk_buf_printf(out, "%s{listener=\"%s\",kind=\"%s\",reason=\"%s\"} %llu\n", name,
                               s->name, kind, rs[k].reason, (unsigned long long)rs[k].v);
        }
        return r;
    }
    case LF_CLOSED:
        for (int k = 0; k < PK_PROXY_CLOSE_REASONS; k++) {
            r |= pk_buf_printf(out, "%s{listener=\"%s\",kind=\"%s\",reason=\"%s\"} %llu\n", name,
                               s->name, kind,
                               pk_conn_close_reason_name((enum pk_conn_close_reason)k),
                               (unsigned long long)s->closed[k]);
        }
        return r;
    case LF_BYTES:
        return pk_buf_printf(out,
                             "%s{listener=\"%s\",kind=\"%s\",direction=\"in\"} %llu\n"
                             "%s{listener=\"%s\",kind=\"%s\",direction=\"out\"} %llu\n",
                             name, s->name, kind, (unsigned long long)s->bytes_in, name, s->name,
                             kind, (unsigned long long)s->bytes_out);
    case LF_PASSTHROUGH:
        return pk_buf_printf(out, "%s{listener=\"%s\",kind=\"%s\"} %llu\n", name, s->name, kind,
                             (unsigned long long)s->passthrough);
    case LF_PERMISSIVE:
        return pk_buf_printf(out,
                             "%s{listener=\"%s\",kind=\"%s\",protocol=\"tls\"} %llu\n"
                             "%s{listener=\"%s\",kind=\"%s\",protocol=\"plaintext\"} %llu\n",
                             name, s->name, kind, (unsigned long long)s->tls, name, s->name, kind,
                             (unsigned long long)s->plaintext);
    }
    return 0;
}

/* One family per counter, one sample per listener (listener names are [A-Za-z0-9_.-], so
 * they need no escaping in a label value). */
static int listener_metrics(struct pk_buf *out, struct pk_proxy *px)
{
    static const struct {
        enum listener_family f;
        const char *name, *type, *help;
    } fam[] = {
            {LF_UP, "picket_listener_up", "gauge",
             "1 while every worker that owns a socket of the listener is accepting on it."},
            {LF_ACTIVE, "picket_listener_connections_active", "gauge", "Connections open now."},
            {LF_TOTAL, "picket_listener_connections_total", "counter", "Connections accepted."},
            {LF_HANDSHAKING, "picket_listener_handshakes_in_progress", "gauge",
             "Connections not yet streaming: TLS handshake, authorization or target connect."},
            {LF_HANDSHAKE_FAILURES, "picket_listener_handshake_failures_total", "counter",
             "Connections that failed before streaming: tls, denied (authorization) or timeout."},
            {LF_CLOSED, "picket_listener_closed_total", "counter",
             "Connections ended, by reason (done is a clean end in both directions)."},
            {LF_BYTES, "picket_listener_bytes_total", "counter",
             "Bytes relayed: in = from the accepting side toward the target, out = back."},
            {LF_PASSTHROUGH, "picket_listener_passthrough_total", "counter",
             "Transparent listeners: connections let through without TLS (passthrough)."},
            {LF_PERMISSIVE, "picket_listener_permissive_total", "counter",
             "Permissive inbound listeners: connections by what they began with, tls or "
             "plaintext."},
            {LF_HANDSHAKE_DURATION, "picket_listener_handshake_duration_seconds", "histogram",
             "mTLS connections that reached streaming, by the time from accept to streaming "
             "(TLS handshake, authorization, connecting the target)."},
    };
    size_t n = pk_proxy_listener_count(px);
    /* Every family from one read of each listener, so the families agree with each other. */
    struct pk_listener_stats *snap = pk_xcalloc(n > 0 ? n : 1, sizeof(*snap));
    int r = 0;

    for (size_t i = 0; i < n; i++) {
        pk_proxy_listener_stats(px, i, &snap[i]);
    }
    for (size_t f = 0; f < PK_ARRAY_LEN(fam); f++) {
        r |= metric_head(out, fam[f].name, fam[f].type, fam[f].help);
        for (size_t i = 0; i < n; i++) {
            r |= listener_family(out, fam[f].f, fam[f].name, &snap[i]);
        }
    }
    free(snap);
    return r;
}

/* A name as a Prometheus label value: backslash, quote and line feed escaped. */
static void label_value(const char *text, char *out, size_t len)
{
    size_t o = 0;

    for (const char *p = text; *p != '\0' && o + 3 < len; p++) {
        if (*p == '\\' || *p == '"') {
            out[o++] = '\\';
            out[o++] = *p;
        } else if (*p == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

static int dns_metrics(struct pk_buf *out, const struct pk_resolver *res)
{
    static const char *const families[][3] = {
            {"picket_dns_answers_total", "counter", "Successful lookups of a DNS name."},
            {"picket_dns_failures_total", "counter",
             "Failed lookups of a DNS name (the last good answer stays in use)."},
            {"picket_dns_answer_age_seconds", "gauge",
             "Seconds since a DNS name's last good answer (absent before one)."},
    };
    size_t n = pk_resolver_count(res);
    int r = 0;

    if (n == 0) {
        return 0;
    }
    for (size_t f = 0; f < PK_ARRAY_LEN(families); f++) {
        r |= metric_head(out, families[f][0], families[f][1], families[f][2]);
        for (size_t i = 0; i < n; i++) {
            struct pk_resolver_stats ds;
            char name[600];
            pk_resolver_stats(res, i, &ds);
            label_value(ds.name, name, sizeof(name));
            if (f == 0) {
                r |= pk_buf_printf(out, "%s{name=\"%s\"} %llu\n", families[f][0], name,
                                   (unsigned long long)ds.answers);
            } else if (f == 1) {
                r |= pk_buf_printf(out, "%s{name=\"%s\"} %llu\n", families[f][0], name,
                                   (unsigned long long)ds.failures);
            } else if (ds.age >= 0) {
                r |= pk_buf_printf(out, "%s{name=\"%s\"} %.3f\n", families[f][0], name, ds.age);
            }
        }
    }
    return r;
}

static int metrics(void *ctx, const struct pk_http1_request *req, struct pk_http_reply *reply)
{
    (void)req;
    struct pk_admin *adm = ctx;
    const struct pk_certs *anchors = pk_agent_anchors(adm->agent);
    struct pk_buf *out = &reply->body;
    struct pk_agent_stats st;
    double now = (double)time(NULL);
    int r = 0;

    pk_agent_stats(adm->agent, &st);
    reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
    r |= metric_head(out, "picket_build_info", "gauge", "Always 1; the version as a label.");
    r |= pk_buf_printf(out, "picket_build_info{version=\"%s\"} 1\n", PK_VERSION);
    r |= metric(out, "picket_ready", "gauge",
                "1 while a valid identity is held and every listener is accepting.",
                pk_admin_ready(adm->agent, adm->proxy, NULL, 0) ? 1 : 0);
    r |= metric_head(out, "picket_identity_state", "gauge",
                     "1 for the agent's current state, 0 for the others.");
    for (int k = PK_AGENT_STARTING; k <= PK_AGENT_EXPIRED; k++) {
        r |= pk_buf_printf(out, "picket_identity_state{state=\"%s\"} %d\n",
                           pk_agent_state_name((enum pk_agent_state)k), (int)st.state == k ? 1 : 0);
    }
    if (st.spiffe_id[0] != '\0') {
        r |= metric(out, "picket_identity_not_before_timestamp_seconds", "gauge",
                    "Start of the current identity's validity, in Unix seconds.",
                    (double)st.not_before);
        r |= metric(out, "picket_identity_not_after_timestamp_seconds", "gauge",
                    "End of the current identity's validity, in Unix seconds.",
                    (double)st.not_after);
        r |= metric(out, "picket_identity_outage_budget_seconds", "gauge",
                    "Seconds the current identity stays valid if Sentry cannot be reached.",
                    st.not_after > now ? (double)st.not_after - now : 0.0);
        if (!st.static_identity) {
            r |= metric(out, "picket_identity_renewal_seconds", "gauge",
                        "Seconds until the scheduled renewal (negative when overdue).",
                        st.renew_at - now);
        }
    }
    r |= metric_head(out, "picket_rotations_total", "counter",
                     "Identity renewals by result (the first identity is not counted).");
    r |= pk_buf_printf(out, "picket_rotations_total{result=\"ok\"} %llu\n",
                       (unsigned long long)st.rotations_ok);
    r |= pk_buf_printf(out, "picket_rotations_total{result=\"failed\"} %llu\n",
                       (unsigned long long)st.rotations_failed);
    r |= metric_head(out, "picket_reloads_total", "counter",
                     "SIGHUP reloads by result (refused: the running configuration was kept).");
    r |= pk_buf_printf(out, "picket_reloads_total{result=\"ok\"} %llu\n",
                       (unsigned long long)adm->reloads_ok);
    r |= pk_buf_printf(out, "picket_reloads_total{result=\"refused\"} %llu\n",
                       (unsigned long long)adm->reloads_refused);
    r |= metric(out, "picket_initial_fetch_failures_total", "counter",
                "Failed attempts to obtain the first identity.", (double)st.initial_failures);
    r |= metric(out, "picket_sentry_token_failures_total", "counter",
                "Identity requests not sent because the Sentry token could not be read.",
                (double)st.token_failures);
    r |= metric(out, "picket_sentry_responses_rejected_total", "counter",
                "Sentry responses that failed picket's checks and were not installed.",
                (double)st.responses_rejected);
    r |= metric_head(out, "picket_sentry_requests_total", "counter",
                     "SignCertificate calls by gRPC status.");
    for (int code = 0; code <= PK_GRPC_UNAUTHENTICATED; code++) {
        if (st.sentry_requests[code] > 0 || code == PK_GRPC_OK) {
            r |= pk_buf_printf(out, "picket_sentry_requests_total{code=\"%s\"} %llu\n",
                               pk_grpc_status_name(code),
                               (unsigned long long)st.sentry_requests[code]);
        }
    }
    r |= metric(out, "picket_trust_anchors", "gauge", "Trust anchors in force.",
                (double)anchors->n);
    r |= metric_head(out, "picket_trust_anchor_not_after_timestamp_seconds", "gauge",
                     "Expiry of each trust anchor, in Unix seconds.");
    for (size_t i = 0; i < anchors->n; i++) {
        char serial[80];
        pk_cert_serial_hex(anchors->v[i], serial, sizeof(serial));
        r |= pk_buf_printf(out,
                           "picket_trust_anchor_not_after_timestamp_seconds{serial=\"%s\"} %lld\n",
                           serial, (long long)pk_cert_not_after(anchors->v[i]));
    }
    r |= metric_head(out, "picket_trust_anchor_updates_total", "counter",
                     "Changes of the trust anchor set by result.");
    r |= pk_buf_printf(out, "picket_trust_anchor_updates_total{result=\"applied\"} %llu\n",
                       (unsigned long long)st.anchors_updates);
    r |= pk_buf_printf(out, "picket_trust_anchor_updates_total{result=\"refused\"} %llu\n",
                       (unsigned long long)st.anchors_refused);
    if (adm->proxy != NULL) {
        r |= listener_metrics(out, adm->proxy);
    }
    r |= dns_metrics(out, adm->resolver);
    if (st.static_identity) {
        r |= metric(out, "picket_static_identity_refused_total", "counter",
                    "Static certificate updates refused by the checks.", (double)st.static_refused);
    }
    r |= pk_process_metrics(out);
    return r != 0 ? PK_E_TOOBIG : 0;
}

int pk_admin_start(struct ev_loop *loop, const char *listen, struct pk_agent *agent,
                   struct pk_admin **out, struct pk_err *err)
{
    struct pk_admin *adm = pk_xcalloc(1, sizeof(*adm));
    struct pk_http_server_opts opts = {0};
    struct pk_addr addr;
    int r;

    adm->agent = agent;
    r = pk_addr_parse(listen, PK_ADDR_PORT_ZERO | PK_ADDR_UNIX_RELATIVE, &addr, err);
    if (r != 0) {
        pk_err_prefix(err, r, "admin listen");
        goto fail;
    }
    if (addr.kind == PK_ADDR_UNIX) {
        opts.unix_path = listen + 5;
        opts.unix_mode = 0660;
    } else {
        opts.host = addr.host;
        opts.port = addr.port;
    }
    r = pk_http_server_new(loop, &opts, &adm->http, err);
    if (r != 0) {
        pk_err_prefix(err, r, "[admin] listen %s", listen);
        goto fail;
    }
    r = pk_http_server_route(adm->http, "/healthz", healthz, adm);
    r = r != 0 ? r : pk_http_server_route(adm->http, "/readyz", readyz, adm);
    r = r != 0 ? r : pk_http_server_route(adm->http, "/status", status, adm);
    r = r != 0 ? r : pk_http_server_route(adm->http, "/metrics", metrics, adm);
    if (r != 0) {
        pk_err_set(err, r, "admin endpoint: cannot register routes");
        goto fail;
    }
    PK_LOG_INFO("admin endpoint listening address=%s port=%u", listen,
                pk_http_server_port(adm->http));
    *out = adm;
    return 0;
fail:
    pk_admin_free(adm);
    return r;
}

unsigned pk_admin_port(const struct pk_admin *adm)
{
    return pk_http_server_port(adm->http);
}

void pk_admin_free(struct pk_admin *adm)
{
    if (adm == NULL) {
        return;
    }
    pk_http_server_free(adm->http);
    free(adm);
}
