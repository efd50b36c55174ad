/* SPDX-License-Identifier: Apache-2.0 */
/* picket run: the sidecar — the agent, the admin endpoint and the proxy listeners on one loop.
 *
 * Life cycle. Readiness (a valid identity and every listener accepting, pk_admin_ready) is
 * re-evaluated whenever it can change: an identity is published, a listener starts or stops
 * accepting (the proxy's hook), a reload, and once a second for expiry. The service manager
 * hears of it through common/notify: READY=1 the first time, STATUS= whenever the line changes,
 * WATCHDOG=1 at half the watchdog interval, RELOADING=1 ... READY=1 around a reload and
 * STOPPING=1 before the drain.
 *
 * SIGHUP: the configuration is loaded again from the same flags, environment and file and
 * checked in full (pk_sidecar_config_load, then the settings that need a restart, then the new
 * listener set with its sockets bound); only then does it replace the running one. A failure
 * anywhere keeps everything as it was and says why in the log. The anchor and certificate files
 * are re-read in either case.
 *
 * SIGTERM/SIGINT: STOPPING=1, then the proxy stops accepting and lets open connections finish
 * for up to [proxy] shutdown_timeout before closing them.
 *
 * Exit status: 0 after SIGTERM/SIGINT, 1 when the agent gives up (initial_attempts), 2 for a
 * configuration error. */
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/agent.h"
#include "cmd/commands.h"
#include "common/addr.h"
#include "common/identity.h"
#include "common/log.h"
#include "common/notify.h"
#include "common/tls.h"
#include "net/resolver.h"
#include "proxy/proxy.h"
#include "sidecar/admin.h"
#include "sidecar/config.h"

extern char **environ;

/* How often readiness is looked at without a reason (it also turns false by expiry alone). */
#define READINESS_TICK 1.0

struct run {
    struct ev_loop *loop;
    int argc;
    char **argv;
    struct pk_sidecar_config *cfg; /* the running configuration */
    struct pk_identity_slot slot;
    struct pk_agent *agent;
    struct pk_proxy *proxy;
    struct pk_admin *admin;
    struct pk_notify *notify;
    struct pk_resolver *resolver; /* DNS names of targets and Sentry; outlives proxy and agent */
    int status;
    bool agent_started;
    bool ready_sent;     /* READY=1 went out (the first time) */
    char last_line[600]; /* the last STATUS= sent */
    ev_signal sigterm, sigint, sighup;
    ev_async proxy_changed;
    ev_timer readiness_tick;
    ev_timer watchdog;
};

static void notify(struct run *run, const char *text)
{
    struct pk_err err;

    pk_err_clear(&err);
    if (pk_notify_send(run->notify, text, &err) != 0) {
        PK_LOG_WARN("service manager notification failed error=\"%s\"", err.msg);
    }
}

/* Look at readiness and tell the service manager what changed. */
static void update_readiness(struct run *run)
{
    char why[512], line[600], msg[640];
    bool ready = pk_admin_ready(run->agent, run->proxy, why, sizeof(why));

    if (ready) {
        struct pk_agent_stats st;
        char when[32];
        time_t na;
        pk_agent_stats(run->agent, &st);
        na = st.not_after;
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&na));
        snprintf(line, sizeof(line), "ready: %s serial %s, expires %s", st.spiffe_id, st.serial,
                 when);
    } else {
        snprintf(line, sizeof(line), "not ready: %s", why);
    }
    if (ready && !run->ready_sent) {
        snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", line);
        notify(run, msg);
        run->ready_sent = true;
        PK_LOG_INFO("ready %s", why);
    } else if (strcmp(line, run->last_line) != 0) {
        snprintf(msg, sizeof(msg), "STATUS=%s", line);
        notify(run, msg);
    }
    snprintf(run->last_line, sizeof(run->last_line), "%s", line);
}

static void fatal_cb(void *ctx, const char *why)
{
    struct run *run = ctx;
    fprintf(stderr, "picket run: %s\n", why);
    run->status = 1;
    ev_break(run->loop, EVBREAK_ALL);
}

/* A new identity is in the slot: the proxy's workers take it from there. */
static void published_cb(void *ctx, struct pk_identity *id)
{
    struct run *run = ctx;
    (void)id;
    if (run->proxy != NULL) {
        pk_proxy_identity_changed(run->proxy);
    }
    if (run->agent != NULL) {
        update_readiness(run);
    }
}

/* From a worker thread: only wake the main loop. */
static void proxy_hook(void *ctx)
{
    struct run *run = ctx;
    ev_async_send(run->loop, &run->proxy_changed);
}

static void proxy_changed_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)revents;
    update_readiness(w->data);
}

static void readiness_tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    update_readiness(w->data);
}

static void watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    notify(w->data, "WATCHDOG=1");
}

/* Point cfg's DNS names (listener targets, Sentry's address) at the resolver's slots; their
 * lookups start now, on this loop. A reload's new names join the running resolver (whose
 * settings need a restart); names no longer used stay watched until exit. */
static void attach_names(struct run *run, struct pk_sidecar_config *cfg)
{
    struct pk_addr addr;

    for (size_t i = 0; i < cfg->n_listeners; i++) {
        struct pk_listener_config *lc = &cfg->listeners[i];
        if (lc->target != NULL && lc->target_addr.kind == PK_ADDR_NAME) {
            lc->target_slot =
                    pk_resolver_watch(run->resolver, lc->target_addr.host, lc->target_addr.port);
        }
    }
    if (cfg->agent.sentry_address != NULL &&
        pk_addr_parse(cfg->agent.sentry_address, PK_ADDR_NAMES, &addr, NULL) == 0 &&
        addr.kind == PK_ADDR_NAME) {
        cfg->agent.sentry_slot = pk_resolver_watch(run->resolver, addr.host, addr.port);
    }
}

/* Start the agent once Sentry's address can be connected to: at once for an IP address, after
 * the name's first lookup (answered or not) for a DNS name, so that the first request is not
 * spent on a lookup still under way. */
static void maybe_start_agent(struct run *run)
{
    const struct pk_addrset_slot *slot = run->cfg->agent.sentry_slot;

    if (run->agent_started || (slot != NULL && !pk_resolver_settled(run->resolver, slot))) {
        return;
    }
    run->agent_started = true;
    pk_agent_start(run->agent);
    update_readiness(run);
}

static void dns_settled_cb(void *ctx)
{
    maybe_start_agent(ctx);
}

/* Create and start the proxy for cfg's listeners, handing it the current identity if any. */
static int start_proxy(struct run *run, const struct pk_sidecar_config *cfg, struct pk_err *err)
{
    struct pk_proxy_options opts;
    int r;

    pk_sidecar_proxy_options(cfg, &opts);
    r = pk_proxy_new(&opts, &run->slot, &run->proxy, err);
    if (r != 0) {
        return r;
    }
    pk_proxy_set_change_hook(run->proxy, proxy_hook, run);
    r = pk_proxy_start(run->proxy, err);
    if (r != 0) {
        return r;
    }
    pk_proxy_identity_changed(run->proxy);
    pk_admin_set_proxy(run->admin, run->proxy);
    return 0;
}

/* --check: what a start would find wrong, found without binding, writing or connecting
 * anything. The configuration itself was checked as it was loaded (values, rules between keys,
 * listener addresses and policies, before anything is bound); the files it names are read here. */
static int check_only(const struct pk_sidecar_config *cfg)
{
    struct pk_err err;

    pk_err_clear(&err);
    if (pk_agent_check(&cfg->agent, &err) != 0) {
        fprintf(stderr, "picket run: %s\n", err.msg);
        return 2;
    }
    printf("picket run: configuration ok: %s (app_id=%s namespace=%s mode=%s listeners=%zu "
           "admin=%s)\n",
           cfg->config_file != NULL ? cfg->config_file : "no file", cfg->agent.app_id,
           cfg->agent.namespace_,
           cfg->agent.sentry_address != NULL && cfg->agent.sentry_address[0] != '\0' ? "sentry"
                                                                                     : "static",
           cfg->n_listeners, cfg->admin_listen != NULL ? cfg->admin_listen : "off");
    return 0;
}

/* SIGHUP: load, check and apply a new configuration, or keep the running one. */
static void reload(struct run *run)
{
    struct pk_sidecar_config *next = NULL;
    char changed[400], msg[80];
    size_t added = 0, removed = 0, modified = 0;
    struct timespec ts;
    bool help;
    struct pk_err err;
    int r;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* MONOTONIC_USEC lets a Type=notify-reload manager match this reload to its request. */
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    notify(run, msg);
    PK_LOG_INFO("reloading signal=SIGHUP file=%s",
                run->cfg->config_file != NULL ? run->cfg->config_file : "none");
    pk_err_clear(&err);
    r = pk_sidecar_config_load(run->argc, run->argv, environ, &next, &help, &err);
    if (r != 0) {
        goto refused;
    }
    if (pk_sidecar_config_restart_changes(run->cfg, next, changed, sizeof(changed)) > 0) {
        r = pk_err_set(&err, PK_E_INVALID, "these settings need a restart: %s", changed);
        goto refused;
    }
    attach_names(run, next);
    if (run->proxy != NULL) {
        struct pk_proxy_options opts;
        pk_sidecar_proxy_options(next, &opts);
        r = pk_proxy_update(run->proxy, &opts, &added, &removed, &modified, &err);
    } else if (next->n_listeners > 0) {
        added = next->n_listeners;
        r = start_proxy(run, next, &err);
        if (r != 0) {
            /* Nothing was accepted through it yet: drop it whole. */
            pk_proxy_free(run->proxy, 0);
            run->proxy = NULL;
            pk_admin_set_proxy(run->admin, NULL);
        }
    }
    if (r != 0) {
        goto refused;
    }
    pk_agent_set_config(run->agent, &next->agent);
    pk_sidecar_config_free(run->cfg);
    run->cfg = next;
    next = NULL;
    pk_log_setup((enum pk_log_level)run->cfg->log_level, run->cfg->log_json);
    PK_LOG_INFO("configuration reloaded listeners=%zu added=%zu removed=%zu changed=%zu",
                run->cfg->n_listeners, added, removed, modified);
    pk_admin_note_reload(run->admin, NULL);
    goto done;
refused:
    PK_LOG_ERR("reload refused, keeping the running configuration error=\"%s\"", err.msg);
    pk_admin_note_reload(run->admin, err.msg);
done:
    pk_sidecar_config_free(next);
    /* The files are re-read either way: SIGHUP also means "look at the certificates again". */
    pk_agent_reload_files(run->agent);
    /* The reload is over. Before the first READY=1 (still starting) there is nothing to end:
     * READY=1 now would tell the manager we are up before we are. */
    if (run->ready_sent) {
        notify(run, "READY=1");
    }
    update_readiness(run);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    struct run *run = w->data;
    if (w->signum == SIGHUP) {
        reload(run);
        return;
    }
    PK_LOG_INFO("stopping signal=%s", w->signum == SIGTERM ? "SIGTERM" : "SIGINT");
    notify(run, "STOPPING=1");
    ev_break(loop, EVBREAK_ALL);
}

int pk_cmd_run(int argc, char **argv)
{
    struct run run = {.loop = ev_default_loop(EVFLAG_AUTO),
                      .status = PK_EXIT_CONFIG,
                      .argc = argc,
                      .argv = argv};
    struct pk_agent_hooks hooks = {.published = published_cb, .fatal = fatal_cb, .ctx = &run};
    bool help = false, ran = false;
    double wd = 0;
    struct pk_err err;

    pk_err_clear(&err);
    if (argc == 2 && strcmp(argv[1], "--print-config-reference") == 0) {
        /* The README's configuration section is this output (a test compares them). */
        struct pk_buf ref;
        pk_buf_init(&ref, 256 * 1024);
        run.status = pk_sidecar_config_reference(true, &ref) == 0 ? 0 : 1;
        fwrite(ref.data, 1, ref.len, stdout);
        pk_buf_free(&ref);
        return run.status;
    }
    pk_identity_slot_init(&run.slot);
    /* A peer closing mid-write must be an error return, never a fatal signal. */
    signal(SIGPIPE, SIG_IGN);
    if (pk_sidecar_config_load(argc, argv, environ, &run.cfg, &help, &err) != 0) {
        fprintf(stderr, "picket run: %s\n(see picket run --help)\n", err.msg);
        goto out;
    }
    if (help) {
        fputs(pk_sidecar_config_help(), stdout);
        run.status = 0;
        goto out;
    }
    if (run.cfg->check_only) {
        run.status = check_only(run.cfg);
        goto out;
    }
    pk_log_setup((enum pk_log_level)run.cfg->log_level, run.cfg->log_json);
    pk_log_set_app_id(run.cfg->agent.app_id);
    if (run.loop == NULL) {
        fprintf(stderr, "picket run: cannot create the event loop\n");
        goto out;
    }
    if (pk_notify_open(environ, &run.notify, &err) != 0) {
        fprintf(stderr, "picket run: %s\n", err.msg);
        goto out;
    }
    {
        struct pk_resolver_options ro = {
                .servers = run.cfg->dns_servers,
                .ttl_min = run.cfg->dns_ttl_min,
                .ttl_max = run.cfg->dns_ttl_max,
                .timeout = run.cfg->dns_timeout,
        };
        if (pk_resolver_new(run.loop, &ro, &run.resolver, &err) != 0) {
            fprintf(stderr, "picket run: %s\n", err.msg);
            goto out;
        }
        attach_names(&run, run.cfg);
    }
    ev_async_init(&run.proxy_changed, proxy_changed_cb);
    run.proxy_changed.data = &run;
    ev_async_start(run.loop, &run.proxy_changed);
    /* Listeners first: a port in use is a start-up error, and a static identity is handed to
     * the proxy from inside pk_agent_new. */
    if (run.cfg->n_listeners > 0) {
        struct pk_proxy_options opts;
        pk_sidecar_proxy_options(run.cfg, &opts);
        if (pk_proxy_new(&opts, &run.slot, &run.proxy, &err) != 0) {
            fprintf(stderr, "picket run: %s\n", err.msg);
            goto out;
        }
    }
    if (run.proxy != NULL) {
        pk_proxy_set_change_hook(run.proxy, proxy_hook, &run);
    }
    if (pk_agent_new(run.loop, &run.cfg->agent, &run.slot, &hooks, &run.agent, &err) != 0) {
        fprintf(stderr, "picket run: %s\n", err.msg);
        goto out;
    }
    if (run.cfg->admin_listen != NULL && run.cfg->admin_listen[0] != '\0' &&
        strcmp(run.cfg->admin_listen, "off") != 0) {
        if (pk_admin_start(run.loop, run.cfg->admin_listen, run.agent, &run.admin, &err) != 0) {
            fprintf(stderr, "picket run: %s\n", err.msg);
            goto out;
        }
    }
    pk_admin_set_resolver(run.admin, run.resolver);
    if (run.proxy != NULL) {
        pk_admin_set_proxy(run.admin, run.proxy);
        if (pk_proxy_start(run.proxy, &err) != 0) {
            fprintf(stderr, "picket run: %s\n", err.msg);
            goto out;
        }
    }
    ev_signal_init(&run.sigterm, signal_cb, SIGTERM);
    ev_signal_init(&run.sigint, signal_cb, SIGINT);
    ev_signal_init(&run.sighup, signal_cb, SIGHUP);
    run.sigterm.data = run.sigint.data = run.sighup.data = &run;
    ev_signal_start(run.loop, &run.sigterm);
    ev_signal_start(run.loop, &run.sigint);
    ev_signal_start(run.loop, &run.sighup);
    ev_timer_init(&run.readiness_tick, readiness_tick_cb, READINESS_TICK, READINESS_TICK);
    run.readiness_tick.data = &run;
    ev_timer_start(run.loop, &run.readiness_tick);
    wd = pk_notify_watchdog_interval(run.notify);
    if (wd > 0) {
        /* Twice per interval, as the protocol asks, so one late tick is not a missed one. */
        ev_timer_init(&run.watchdog, watchdog_cb, wd / 2, wd / 2);
        run.watchdog.data = &run;
        ev_timer_start(run.loop, &run.watchdog);
    }
    PK_LOG_INFO("picket run started app_id=%s namespace=%s mode=%s notify=%s watchdog=%.3fs",
                run.cfg->agent.app_id, run.cfg->agent.namespace_,
                run.cfg->agent.sentry_address != NULL ? "sentry" : "static",
                run.notify != NULL ? pk_notify_address(run.notify) : "none", wd);
    run.status = 0;
    pk_resolver_set_hook(run.resolver, dns_settled_cb, &run);
    maybe_start_agent(&run);
    update_readiness(&run);
    ran = true;
    ev_run(run.loop, 0);
    ev_signal_stop(run.loop, &run.sigterm);
    ev_signal_stop(run.loop, &run.sigint);
    ev_signal_stop(run.loop, &run.sighup);
    ev_timer_stop(run.loop, &run.readiness_tick);
    ev_timer_stop(run.loop, &run.watchdog);
out:
    if (run.proxy != NULL && ran) {
        size_t open = 0;
        for (size_t i = 0; i < pk_proxy_listener_count(run.proxy); i++) {
            struct pk_listener_stats ls;
            pk_proxy_listener_stats(run.proxy, i, &ls);
            open += ls.active;
        }
        PK_LOG_INFO("draining connections count=%zu timeout=%.3fs", open,
                    run.cfg->shutdown_timeout);
    }
    pk_proxy_free(run.proxy, run.cfg != NULL ? run.cfg->shutdown_timeout : 0);
    if (run.loop != NULL) {
        ev_async_stop(run.loop, &run.proxy_changed);
    }
    pk_admin_free(run.admin);
    pk_agent_free(run.agent);
    pk_resolver_free(run.resolver);
    pk_identity_slot_destroy(&run.slot);
    pk_sidecar_config_free(run.cfg);
    pk_notify_free(run.notify);
    pk_tls_thread_exit();
    if (ran) {
        PK_LOG_INFO("picket run stopped status=%d", run.status);
    }
    return run.status;
}
