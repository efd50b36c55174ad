/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the `picket sentry` process — a Sentry-compatible CA on one libev loop.
 *
 * Implementation notes. Everything runs on libev's default loop: gRPC calls, HTTP requests,
 * file-change events, the server-certificate renewal timer and signals. A SignCertificate call
 * runs to completion inside one callback, so swapping the credentials between callbacks can never
 * affect a call in flight. Rotating Sentry's own TLS context only changes what new handshakes
 * use: each connection holds a reference to the context it started with. */
#include "sentry/server.h"

#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/fsutil.h"
#include "common/grpc.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/procmetrics.h"
#include "common/signame.h"
#include "common/spiffe.h"
#include "common/tls.h"
#include "kube/client.h"
#include "net/filewatch.h"
#include "net/grpc_server.h"
#include "net/http_server.h"
#include "sentry/config.h"
#include "sentry/creds.h"
#include "sentry/issue.h"
#include "sentry/jwks.h"
#include "sentry/kube_store.h"
#include "sentry/kube_validator.h"
#include "sentry/request.h"
#include "sentry/service.h"

#define SIGN_METHOD "/dapr.proto.sentry.v1.CA/SignCertificate"
/* Dapr's self-generated root and issuer live one year. */
#define GENERATED_CA_TTL (365L * 24 * 3600)
/* After a failed renewal of the server certificate, try again this soon. */
#define SERVER_CERT_RETRY 10.0

struct sentry {
    const struct pk_sentry_options *opts;
    struct ev_loop *loop;
    struct pk_sentry_creds_paths paths;
    struct pk_sentry_service *svc;
    struct pk_rpc_server *rpc;
    struct pk_http_server *healthz;
    struct pk_http_server *metrics;
    int64_t ttl_seconds;
    int64_t skew_seconds;
    time_t server_cert_not_after;
    bool serving;
    struct pk_filewatch *watch;
    ev_timer renew_timer;
    ev_signal sigterm, sigint, sighup;
    struct pk_kube_client *kube_client;
    struct pk_kube_validator *kube;
    struct pending_sign *pending; /* calls waiting for the KUBERNETES validator */
};

/* A SignCertificate call waiting for the KUBERNETES validator. It keeps its own copy of the
 * request (which holds the token: wiped on free) and names the gRPC call by value, so a caller
 * that has gone away only makes the answer be dropped. */
struct pending_sign {
    struct sentry *s;
    struct pending_sign *prev, *next;
    struct pk_rpc_call call;
    uint8_t *request;
    size_t request_len;
    struct pk_kube_check *check;
};

static int64_t seconds_of(int64_t ns)
{
    return ns / 1000000000;
}

/* Issue Sentry's own certificate from the current credentials and hand new handshakes a TLS
 * context built on it. The key is made here and lives only inside the TLS context. */
static int renew_server_cert(struct sentry *s, struct pk_err *err)
{
    const struct pk_sentry_creds *creds = pk_sentry_service_creds(s->svc);
    struct pk_key *key = NULL;
    struct pk_pubkey *pub = NULL;
    struct pk_tls_ctx *tls = NULL;
    struct pk_sentry_issued issued = {0};
    struct pk_buf spki, key_der;
    time_t now = time(NULL);
    double next;
    int r;

    pk_buf_init(&spki, 4096);
    pk_buf_init_secret(&key_der, 8192);
    r = pk_key_generate(PK_KEY_P256, &key, err);
    if (r == 0) {
        r = pk_key_public_spki(key, &spki);
    }
    if (r == 0) {
        r = pk_pubkey_from_spki(spki.data, spki.len, &pub, err);
    }
    if (r == 0) {
        r = pk_sentry_issue_workload(creds, pub, pk_sentry_service_id(s->svc), now, s->ttl_seconds,
                                     s->skew_seconds, &issued, err);
    }
    if (r == 0) {
        r = pk_key_to_der(key, &key_der);
    }
    if (r == 0) {
        struct pk_tls_config cfg = {
                .server = true,
                .chain_pem = issued.chain_pem.data,
                .chain_pem_len = issued.chain_pem.len,
                .key_der = key_der.data,
                .key_der_len = key_der.len,
                .alpn = "h2",
                /* daprd and grpc-go accept TLS 1.2 with AEAD suites; so do we. */
                .allow_tls12 = true,
        };
        r = pk_tls_ctx_new(&cfg, &tls, err);
    }
    if (r != 0) {
        pk_sentry_service_count_servercert_failure(s->svc);
        goto out;
    }
    pk_rpc_server_set_tls(s->rpc, tls);
    s->server_cert_not_after = issued.not_after;
    next = pk_sentry_server_cert_renew_in(now, issued.not_after);
    ev_timer_stop(s->loop, &s->renew_timer);
    ev_timer_set(&s->renew_timer, next, 0.0);
    ev_timer_start(s->loop, &s->renew_timer);
    PK_LOG_INFO("server certificate issued spiffe_id=%s serial=%s not_after=%lld "
                "next_renewal_in=%.0fs",
                pk_sentry_service_id(s->svc), issued.serial_hex, (long long)issued.not_after, next);
out:
    pk_tls_ctx_unref(tls);
    pk_buf_free(&issued.chain_pem);
    pk_buf_free(&spki);
    pk_buf_free(&key_der);
    pk_pubkey_free(pub);
    pk_key_free(key);
    return r;
}

static void renew_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct sentry *s = w->data;
    struct pk_err err;

    pk_err_clear(&err);
    if (renew_server_cert(s, &err) != 0) {
        PK_LOG_ERR("server certificate renewal failed error=\"%s\" retry_in=%.0fs", err.msg,
                   SERVER_CERT_RETRY);
        ev_timer_set(&s->renew_timer, SERVER_CERT_RETRY, 0.0);
        ev_timer_start(loop, &s->renew_timer);
    }
}

static bool slices_equal(struct pk_slice a, struct pk_slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Same roots and same issuer chain (the key was checked to match the issuer certificate). */
static bool creds_equal(const struct pk_sentry_creds *a, const struct pk_sentry_creds *b)
{
    return slices_equal(pk_buf_slice(&a->roots_pem), pk_buf_slice(&b->roots_pem)) &&
           slices_equal(pk_buf_slice(&a->chain_pem), pk_buf_slice(&b->chain_pem)) &&
           slices_equal(pk_cert_der(a->issuer_chain.v[0]), pk_cert_der(b->issuer_chain.v[0]));
}

/* Re-read the credentials; on success swap them in and re-issue the server certificate. */
static void reload_creds(struct sentry *s, const char *why)
{
    struct pk_sentry_creds *creds = NULL;
    struct pk_err err;

    pk_err_clear(&err);
    if (pk_sentry_creds_load(&s->paths, &creds, &err) != 0) {
        PK_LOG_ERR("credentials reload refused (still serving the previous set) trigger=%s "
                   "error=\"%s\"",
                   why, err.msg);
        return;
    }
    if (creds_equal(creds, pk_sentry_service_creds(s->svc))) {
        PK_LOG_DEBUG("credentials unchanged trigger=%s", why);
        pk_sentry_creds_free(creds);
        return;
    }
    pk_sentry_service_set_creds(s->svc, creds);
    pk_sentry_service_count_issuer_changed(s->svc);
    PK_LOG_INFO("credentials reloaded trigger=%s issuer_not_after=%lld", why,
                (long long)creds->issuer_not_after);
    pk_err_clear(&err);
    if (renew_server_cert(s, &err) != 0) {
        PK_LOG_ERR("server certificate re-issue after reload failed error=\"%s\"", err.msg);
        ev_timer_stop(s->loop, &s->renew_timer);
        ev_timer_set(&s->renew_timer, SERVER_CERT_RETRY, 0.0);
        ev_timer_start(s->loop, &s->renew_timer);
    }
}

static void files_changed(void *ctx)
{
    reload_creds(ctx, "file-change");
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct sentry *s = w->data;
    if (w->signum == SIGHUP) {
        PK_LOG_INFO("reloading signal=SIGHUP dir=%s", s->opts->credentials_dir);
        reload_creds(s, "SIGHUP");
        return;
    }
    char name[16];
    PK_LOG_INFO("stopping signal=%s", pk_signal_name(w->signum, name, sizeof(name)));
    s->serving = false;
    ev_break(loop, EVBREAK_ALL);
}

static void pending_free(struct pending_sign *p)
{
    struct sentry *s = p->s;

    if (p->prev != NULL) {
        p->prev->next = p->next;
    } else {
        s->pending = p->next;
    }
    if (p->next != NULL) {
        p->next->prev = p->prev;
    }
    pk_kube_check_cancel(p->check);
    pk_wipe(p->request, p->request_len);
    free(p->request);
    free(p);
}

static void kube_verdict(void *ctx, const struct pk_kube_verdict *verdict)
{
    struct pending_sign *p = ctx;
    struct sentry *s = p->s;
    struct pk_sentry_kube_outcome outcome = {
            .allowed = verdict->allowed,
            .unavailable = verdict->unavailable,
            .control_plane = verdict->control_plane,
            .trust_domain = verdict->trust_domain,
            .message = verdict->message,
    };
    char message[512];
    struct pk_buf body;
    int status = PK_GRPC_UNKNOWN;

    p->check = NULL; /* ends with this callback */
    pk_buf_init(&body, PK_SENTRY_MAX_RESPONSE);
    pk_sentry_service_sign_kube(s->svc, pk_slice_make(p->request, p->request_len), time(NULL),
                                &outcome, &status, message, sizeof(message), &body);
    if (pk_rpc_server_answer(s->rpc, p->call, status, message, pk_buf_slice(&body)) != 0) {
        PK_LOG_INFO("sign answer dropped: the caller is gone status=%s",
                    pk_grpc_status_name(status));
    }
    pk_buf_free(&body);
    pending_free(p);
}

static void sign_handler(void *ctx, const struct pk_rpc_request *req, struct pk_rpc_reply *reply)
{
    struct sentry *s = ctx;
    struct pk_sentry_request decoded;
    struct pending_sign *p;
    struct pk_err err;

    if (pk_sentry_service_sign(s->svc, req->message, time(NULL), &reply->status, reply->message,
                               sizeof(reply->message), &reply->body) != PK_E_AGAIN) {
        return;
    }
    /* The KUBERNETES validator asks the API server: answer when it has. */
    p = pk_xcalloc(1, sizeof(*p));
    p->s = s;
    p->call = req->call;
    p->request = pk_xmemdup(req->message.ptr, req->message.len);
    p->request_len = req->message.len;
    p->next = s->pending;
    if (s->pending != NULL) {
        s->pending->prev = p;
    }
    s->pending = p;
    /* Decoded once already by the service: this cannot fail. */
    int r = pk_sentry_request_decode(pk_slice_make(p->request, p->request_len), &decoded, &err);
    PK_ASSERT(r == 0);
    reply->defer = true;
    pk_kube_validator_check(s->kube, decoded.token, decoded.namespace_, decoded.id, kube_verdict, p,
                            &p->check);
}

static int healthz_handler(void *ctx, const struct pk_http1_request *req,
                           struct pk_http_reply *reply)
{
    struct sentry *s = ctx;
    bool ok = s->serving && s->server_cert_not_after > time(NULL);
    reply->status = ok ? 200 : 503;
    return pk_buf_append_str(&reply->body, ok ? "ok\n" : "not serving\n");
}

static int metric(struct pk_buf *out, const char *name, const char *type, const char *help,
                  const char *labels, double value)
{
    return pk_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s%s %.17g\n", name, help, name, type,
                         name, labels, value);
}

static int metrics_handler(void *ctx, const struct pk_http1_request *req,
                           struct pk_http_reply *reply)
{
    struct sentry *s = ctx;
    const struct pk_sentry_creds *creds = pk_sentry_service_creds(s->svc);
    struct pk_sentry_metrics m;
    struct pk_buf *out = &reply->body;
    int r = 0;

    pk_sentry_service_metrics(s->svc, &m);
    reply->content_type = "text/plain; version=0.0.4; charset=utf-8";
    r |= metric(out, "dapr_sentry_cert_sign_request_received_total", "counter",
                "Certificate signing requests received.", "", (double)m.sign_request_received);
    r |= metric(out, "dapr_sentry_cert_sign_success_total", "counter",
                "Certificates signed successfully.", "", (double)m.sign_success);
    r |= metric(out, "dapr_sentry_cert_sign_failure_total", "counter",
                "Certificate signing requests that failed.", "{reason=\"sign\"}",
                (double)m.sign_failure);
    r |= metric(out, "dapr_sentry_servercert_issue_failed_total", "counter",
                "Failures to issue Sentry's own server certificate.", "",
                (double)m.servercert_issue_failed);
    r |= metric(out, "dapr_sentry_issuercert_changed_total", "counter",
                "Reloads of changed issuer credentials.", "", (double)m.issuercert_changed);
    r |= metric(out, "dapr_sentry_issuercert_expiry_timestamp", "gauge",
                "Expiry of the issuer certificate, in Unix seconds.", "",
                (double)creds->issuer_not_after);
    r |= metric(out, "picket_sentry_root_cert_expiry_timestamp_seconds", "gauge",
                "Earliest expiry among the trust anchors (ca.crt), in Unix seconds.", "",
                (double)creds->roots_not_after);
    r |= metric(out, "picket_sentry_server_cert_expiry_timestamp_seconds", "gauge",
                "Expiry of Sentry's own serving certificate, in Unix seconds.", "",
                (double)s->server_cert_not_after);
    r |= pk_process_metrics(out);
    return r != 0 ? PK_E_TOOBIG : 0;
}

/* Load the configuration file, or take Dapr's defaults when there is none. */
static int load_config(struct sentry *s, struct pk_jwks **jwks, struct pk_err *err)
{
    struct pk_sentry_config *cfg = NULL;
    int r;

    if (s->opts->config_path != NULL) {
        r = pk_sentry_config_load(s->opts->config_path, &cfg, err);
    } else {
        cfg = pk_sentry_config_new();
        r = 0;
    }
    if (r != 0) {
        return r;
    }
    s->ttl_seconds = seconds_of(cfg->ttl_ns);
    s->skew_seconds = seconds_of(cfg->skew_ns);
    if (s->ttl_seconds < 1) {
        r = pk_err_set(err, PK_E_INVALID, "%s: workloadCertTTL must be at least one second",
                       s->opts->config_path);
        goto out;
    }
    if (cfg->jwks_enabled) {
        r = pk_jwks_load(cfg->jwks.source, jwks, err);
        if (r != 0) {
            pk_err_prefix(err, r, "%s: tokenValidators jwks", s->opts->config_path);
            goto out;
        }
    }
    PK_LOG_INFO("configuration loaded file=%s workload_cert_ttl=%llds allowed_clock_skew=%llds "
                "validator=%s",
                s->opts->config_path != NULL ? s->opts->config_path : "(defaults)",
                (long long)s->ttl_seconds, (long long)s->skew_seconds,
                *jwks != NULL ? "jwks" : "insecure");
out:
    pk_sentry_config_free(cfg);
    return r;
}

/* The last component of a file name: the Secret's key for an --issuer-*-filename. */
static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

static int load_or_generate_creds(struct sentry *s, struct pk_sentry_creds **out,
                                  struct pk_err *err)
{
    struct pk_sentry_creds_gen gen = {
            .trust_domain = s->opts->trust_domain,
            .namespace_ = s->opts->namespace_,
            .key_type = s->opts->key_type,
            .now = time(NULL),
            .skew_seconds = (long)s->skew_seconds,
            .ttl_seconds = GENERATED_CA_TTL,
    };
    int r;

    if (!pk_sentry_creds_missing(&s->paths)) {
        return pk_sentry_creds_load(&s->paths, out, err);
    }
    if (pk_fs_exists(s->paths.ca) || pk_fs_exists(s->paths.issuer_cert) ||
        pk_fs_exists(s->paths.issuer_key)) {
        PK_LOG_WARN("some credential files are missing: generating a new root and issuer and "
                    "replacing ca=%s cert=%s key=%s",
                    s->paths.ca, s->paths.issuer_cert, s->paths.issuer_key);
    }
    r = pk_sentry_creds_generate(&s->paths, &gen, out, err);
    if (r == 0) {
        PK_LOG_INFO("generated a new root and issuer trust_domain=%s key_type=%s dir=%s",
                    gen.trust_domain, pk_key_type_name(gen.key_type), s->opts->credentials_dir);
    }
    return r;
}

/* Kubernetes mode: the API client, and the credentials from the dapr-trust-bundle Secret
 * (generated and stored there when it is empty). */
static int start_kube_client(struct sentry *s, struct pk_sentry_creds **out, struct pk_err *err)
{
    const struct pk_sentry_options *opts = s->opts;
    struct pk_kube_client_config kcfg = {
            .host = opts->kube_host,
            .port = opts->kube_port,
            .ca_path = opts->kube_ca_file,
            .token_path = opts->kube_token_file,
            .server_name = opts->kube_tls_server_name,
            .client_cert_path = opts->kube_client_cert_file,
            .client_key_path = opts->kube_client_key_file,
    };
    struct pk_kube_store_names names = {
            .ca = base_name(opts->ca_filename),
            .cert = base_name(opts->cert_filename),
            .key = base_name(opts->key_filename),
            .ns = opts->namespace_,
    };
    struct pk_sentry_creds_gen gen = {
            .trust_domain = opts->trust_domain,
            .namespace_ = opts->namespace_,
            .key_type = opts->key_type,
            .now = time(NULL),
            .skew_seconds = (long)s->skew_seconds,
            .ttl_seconds = GENERATED_CA_TTL,
    };
    bool generated = false;
    int r;

    r = pk_kube_client_new(s->loop, &kcfg, &s->kube_client, err);
    if (r != 0) {
        return pk_err_prefix(err, r, "--mode kubernetes");
    }
    r = pk_kube_store_load_or_generate(s->kube_client, &names, &gen, out, &generated, err);
    if (r != 0) {
        return r;
    }
    if (generated) {
        PK_LOG_INFO("generated a new root and issuer trust_domain=%s key_type=%s stored=\"Secret "
                    "and ConfigMap %s/%s\"",
                    gen.trust_domain, pk_key_type_name(gen.key_type), opts->namespace_,
                    PK_KUBE_TRUST_BUNDLE);
    } else {
        PK_LOG_INFO("credentials read from Secret %s/%s", opts->namespace_, PK_KUBE_TRUST_BUNDLE);
    }
    return 0;
}

static int start_http(struct sentry *s, const char *address, uint16_t port,
                      struct pk_http_server **out, const char *what, struct pk_err *err)
{
    struct pk_http_server_opts hopts = {.host = address, .port = port};
    int r = pk_http_server_new(s->loop, &hopts, out, err);
    if (r != 0) {
        pk_err_prefix(err, r, "%s listener", what);
    }
    return r;
}

int pk_sentry_run(const struct pk_sentry_options *opts)
{
    struct sentry s = {.opts = opts, .loop = ev_default_loop(EVFLAG_AUTO)};
    struct pk_sentry_creds *creds = NULL;
    struct pk_jwks *jwks = NULL;
    struct pk_err err;
    int status = 1;
    int r;

    pk_err_clear(&err);
    if (s.loop == NULL) {
        PK_LOG_ERR("cannot initialise the event loop");
        return 1;
    }
    r = pk_spiffe_check_trust_domain(opts->trust_domain, &err);
    if (r == 0) {
        r = pk_sentry_check_namespace(pk_slice_make(opts->namespace_, strlen(opts->namespace_)),
                                      "namespace", &err);
    }
    if (r != 0) {
        pk_err_prefix(&err, r, "--trust-domain/NAMESPACE");
        status = PK_EXIT_CONFIG;
        goto out;
    }
    r = load_config(&s, &jwks, &err);
    if (r != 0) {
        status = PK_EXIT_CONFIG;
        goto out;
    }
    if (pk_sentry_creds_paths_init(&s.paths, opts->credentials_dir, opts->ca_filename,
                                   opts->cert_filename, opts->key_filename) != 0) {
        r = pk_err_set(&err, PK_E_TOOBIG, "--issuer-credentials: path too long");
        goto out;
    }
    if (opts->kubernetes) {
        r = start_kube_client(&s, &creds, &err);
    } else {
        r = load_or_generate_creds(&s, &creds, &err);
    }
    if (r != 0) {
        goto out;
    }
    {
        struct pk_sentry_service_config scfg = {
                .trust_domain = opts->trust_domain,
                .namespace_ = opts->namespace_,
                .ttl_seconds = s.ttl_seconds,
                .skew_seconds = s.skew_seconds,
                .allowed_trust_domains = opts->allowed_trust_domains,
                .allow_insecure_control_plane_ids = opts->allow_insecure_control_plane_ids,
                .kubernetes_validator = opts->kubernetes,
        };
        r = pk_sentry_service_new(&scfg, creds, jwks, &s.svc);
        if (r != 0) {
            pk_err_set(&err, r, "cannot create the signing service");
            goto out;
        }
        creds = NULL;
        jwks = NULL;
    }

    if (opts->kubernetes) {
        struct pk_kube_validator_config vcfg = {
                .sentry_id = pk_sentry_service_id(s.svc),
                .control_plane_ns = opts->namespace_,
                .control_plane_td = opts->trust_domain,
        };
        r = pk_kube_validator_new(s.kube_client, &vcfg, &s.kube);
        if (r != 0) {
            pk_err_set(&err, r, "cannot create the Kubernetes validator");
            goto out;
        }
        PK_LOG_INFO("kubernetes validator api_server=%s audiences=\"%s,%s\"",
                    pk_kube_client_address(s.kube_client), PK_KUBE_LEGACY_AUDIENCE,
                    pk_sentry_service_id(s.svc));
    }

    {
        struct pk_rpc_server_config rcfg = {
                .listen_address = opts->listen_address,
                .port = opts->port,
                .max_message = PK_SENTRY_MAX_REQUEST,
                .handshake_timeout = 10.0,
                .idle_timeout = 120.0,
                .max_connections = 1024,
        };
        r = pk_rpc_server_new(s.loop, &rcfg, &s.rpc, &err);
        if (r != 0) {
            goto out;
        }
        r = pk_rpc_server_add_method(s.rpc, SIGN_METHOD, sign_handler, &s);
        if (r != 0) {
            pk_err_set(&err, r, "cannot register %s", SIGN_METHOD);
            goto out;
        }
    }
    ev_timer_init(&s.renew_timer, renew_cb, 0.0, 0.0);
    s.renew_timer.data = &s;
    r = renew_server_cert(&s, &err);
    if (r != 0) {
        pk_err_prefix(&err, r, "issuing Sentry's own server certificate");
        goto out;
    }
    r = pk_rpc_server_start(s.rpc, &err);
    if (r != 0) {
        goto out;
    }
    r = start_http(&s, opts->healthz_address, opts->healthz_port, &s.healthz, "healthz", &err);
    if (r != 0) {
        goto out;
    }
    r = pk_http_server_route(s.healthz, "/healthz", healthz_handler, &s);
    if (r != 0) {
        goto out;
    }
    if (opts->enable_metrics) {
        if (opts->metrics_port == opts->healthz_port && opts->metrics_port != 0) {
            r = pk_http_server_route(s.healthz, "/metrics", metrics_handler, &s);
        } else {
            r = start_http(&s, opts->metrics_address, opts->metrics_port, &s.metrics, "metrics",
                           &err);
            if (r == 0) {
                r = pk_http_server_route(s.metrics, "/metrics", metrics_handler, &s);
            }
        }
        if (r != 0) {
            goto out;
        }
    }

    if (!opts->kubernetes) {
        const char *files[] = {s.paths.ca, s.paths.issuer_cert, s.paths.issuer_key};
        r = pk_filewatch_start(s.loop, files, PK_ARRAY_LEN(files), opts->reload_delay,
                               files_changed, &s, &s.watch, &err);
        if (r != 0) {
            goto out;
        }
    }
    ev_signal_init(&s.sigterm, signal_cb, SIGTERM);
    ev_signal_init(&s.sigint, signal_cb, SIGINT);
    ev_signal_init(&s.sighup, signal_cb, SIGHUP);
    s.sigterm.data = s.sigint.data = s.sighup.data = &s;
    ev_signal_start(s.loop, &s.sigterm);
    ev_signal_start(s.loop, &s.sigint);
    ev_signal_start(s.loop, &s.sighup);

    s.serving = true;
    {
        char tds[512];
        PK_LOG_INFO("sentry serving spiffe_id=%s grpc_port=%u healthz_port=%u metrics_port=%u "
                    "trust_domains=\"%s\" insecure_control_plane_ids=%s",
                    pk_sentry_service_id(s.svc), pk_rpc_server_port(s.rpc),
                    pk_http_server_port(s.healthz),
                    s.metrics != NULL ? pk_http_server_port(s.metrics)
                                      : pk_http_server_port(s.healthz),
                    pk_sentry_trust_domains_format(pk_sentry_service_trust_domains(s.svc), tds,
                                                   sizeof(tds)),
                    opts->allow_insecure_control_plane_ids ? "allowed" : "refused");
    }
    ev_run(s.loop, 0);
    status = 0;

out:
    if (status != 0) {
        fprintf(stderr, "picket sentry: %s\n",
                err.msg[0] != '\0' ? err.msg : "start-up failed (see the log above)");
    }
    pk_filewatch_stop(s.watch);
    if (s.sigterm.data != NULL) {
        ev_signal_stop(s.loop, &s.sigterm);
        ev_signal_stop(s.loop, &s.sigint);
        ev_signal_stop(s.loop, &s.sighup);
    }
    ev_timer_stop(s.loop, &s.renew_timer);
    pk_http_server_free(s.metrics);
    pk_http_server_free(s.healthz);
    while (s.pending != NULL) {
        pending_free(s.pending);
    }
    pk_kube_validator_free(s.kube);
    pk_kube_client_free(s.kube_client);
    pk_rpc_server_free(s.rpc);
    pk_sentry_service_free(s.svc);
    pk_sentry_creds_free(creds);
    pk_jwks_free(jwks);
    return status;
}
