/* SPDX-License-Identifier: Apache-2.0 */
/* picket run: the sidecar — the agent (and, later, the proxy listeners) on one loop.
 *
 * Exit status: 0 after SIGTERM/SIGINT, 1 when the agent gives up (initial_attempts), 2 for a
 * configuration error. */
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/admin.h"
#include "agent/agent.h"
#include "agent/config.h"
#include "cmd/commands.h"
#include "common/identity.h"
#include "common/log.h"
#include "common/tls.h"
#include "proxy/proxy.h"

extern char **environ;

struct run {
    struct ev_loop *loop;
    struct pk_agent *agent;
    struct pk_proxy *proxy;
    int status;
    ev_signal sigterm, sigint, sighup;
};

static void fatal_cb(void *ctx, const char *why)
{
    struct run *run = ctx;
    fprintf(stderr, "picket run: %s\n", why);
    run->status = 1;
    ev_break(run->loop, EVBREAK_ALL);
}

/* Every new identity goes to the proxy's workers. */
static void published_cb(void *ctx, struct pk_identity *id)
{
    struct run *run = ctx;
    if (run->proxy != NULL) {
        pk_proxy_set_identity(run->proxy, id);
    }
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    struct run *run = w->data;
    if (w->signum == SIGHUP) {
        PK_LOG_INFO("reloading files signal=SIGHUP");
        pk_agent_reload_files(run->agent);
        return;
    }
    PK_LOG_INFO("stopping signal=%d", w->signum);
    ev_break(loop, EVBREAK_ALL);
}

int pk_cmd_run(int argc, char **argv)
{
    struct run run = {.loop = ev_default_loop(EVFLAG_AUTO), .status = 2};
    struct pk_agent_config *cfg = NULL;
    struct pk_identity_slot slot;
    struct pk_admin *admin = NULL;
    struct pk_agent_hooks hooks = {.published = published_cb, .fatal = fatal_cb, .ctx = &run};
    bool help = false;
    struct pk_err err;

    pk_err_clear(&err);
    pk_identity_slot_init(&slot);
    /* A peer closing mid-write must be an error return, never a fatal signal. */
    signal(SIGPIPE, SIG_IGN);
    if (pk_agent_config_load(argc, argv, environ, &cfg, &help, &err) != 0) {
        fprintf(stderr, "picket run: %s\n(see picket run --help)\n", err.msg);
        goto out;
    }
    if (help) {
        fputs(pk_agent_config_help(), stdout);
        run.status = 0;
        goto out;
    }
    pk_log_setup((enum pk_log_level)cfg->log_level, cfg->log_json);
    if (run.loop == NULL) {
        fprintf(stderr, "picket run: cannot create the event loop\n");
        goto out;
    }
    /* Listeners first: a port in use is a start-up error, and a static identity is handed to
     * the proxy from inside pk_agent_new. */
    if (cfg->n_listeners > 0 && pk_proxy_new(cfg, &run.proxy, &err) != 0) {
        fprintf(stderr, "picket run: %s\n", err.msg);
        goto out;
    }
    if (pk_agent_new(run.loop, cfg, &slot, &hooks, &run.agent, &err) != 0) {
        fprintf(stderr, "picket run: %s\n", err.msg);
        goto out;
    }
    if (cfg->admin_listen != NULL && cfg->admin_listen[0] != '\0' &&
        strcmp(cfg->admin_listen, "off") != 0) {
        if (pk_admin_start(run.loop, cfg->admin_listen, run.agent, &admin, &err) != 0) {
            fprintf(stderr, "picket run: %s\n", err.msg);
            goto out;
        }
    }
    if (run.proxy != NULL) {
        pk_admin_set_proxy(admin, run.proxy);
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
    PK_LOG_INFO("picket run started app_id=%s namespace=%s mode=%s", cfg->app_id, cfg->namespace_,
                cfg->sentry_address != NULL ? "sentry" : "static");
    run.status = 0;
    pk_agent_start(run.agent);
    ev_run(run.loop, 0);
    ev_signal_stop(run.loop, &run.sigterm);
    ev_signal_stop(run.loop, &run.sigint);
    ev_signal_stop(run.loop, &run.sighup);
out:
    pk_proxy_free(run.proxy, cfg != NULL ? cfg->shutdown_timeout : 0);
    pk_admin_free(admin);
    pk_agent_free(run.agent);
    pk_identity_slot_destroy(&slot);
    pk_agent_config_free(cfg);
    pk_tls_thread_exit();
    return run.status;
}
