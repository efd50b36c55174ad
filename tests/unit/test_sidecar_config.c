/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for sidecar/config (picket.ini, Dapr's environment, daprd's flags). */
/* cmocka.h must come after the system headers it relies on. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
/* clang-format on */

#include "common/err.h"
#include "common/log.h"
#include "sidecar/config.h"
#include "sidecar/daprd_config.h"
#include "sidecar_config_util.h"

/* ---- defaults ---- */

static void check_defaults(const struct pk_sidecar_config *cfg)
{
    assert_string_equal(cfg->agent.namespace_, "default");
    assert_null(cfg->agent.trust_domain);
    assert_true(cfg->agent.renew_fraction == 0.5);
    assert_true(cfg->agent.renew_jitter == 0.10);
    assert_true(cfg->agent.retry_initial == 1.0);
    assert_true(cfg->agent.retry_max == 120.0);
    assert_int_equal(cfg->agent.initial_attempts, 0);
    assert_true(cfg->agent.request_timeout == 10.0);
    assert_null(cfg->agent.cert_file);
    assert_null(cfg->agent.key_file);
    assert_null(cfg->agent.cert_pem);
    assert_null(cfg->agent.key_pem);
    assert_false(cfg->agent.allow_tls12);
    assert_null(cfg->agent.export_dir);
    assert_null(cfg->agent.export_command);
    assert_null(cfg->agent.export_pid_file);
    assert_int_equal(cfg->agent.export_signal, SIGHUP);
    assert_null(cfg->agent.trust_anchors_file);
    assert_string_equal(cfg->agent.control_plane_trust_domain, "localhost");
    assert_string_equal(cfg->agent.control_plane_namespace, "default");
    assert_null(cfg->agent.token_file);
    assert_false(cfg->agent.adopt_sentry_anchors);
    assert_string_equal(cfg->admin_listen, "127.0.0.1:9901");
    assert_int_equal(cfg->log_level, PK_LOG_LEVEL_INFO);
    assert_false(cfg->log_json);
    assert_int_equal(cfg->workers, 0);
    assert_true(cfg->shutdown_timeout == 10.0);
    assert_null(cfg->listeners);
    assert_int_equal(cfg->n_listeners, 0);
    assert_null(cfg->config_file);
}

static void test_defaults(void **state)
{
    struct pk_sidecar_config *cfg = pk_sidecar_config_new();
    struct pk_err err;

    (void)state;
    check_defaults(cfg);
    assert_null(cfg->agent.app_id);
    assert_null(cfg->agent.sentry_address);
    pk_sidecar_config_free(cfg);
    pk_sidecar_config_free(NULL);

    assert_int_equal(load(NULL, base_env, base_flags, &cfg, &err), 0);
    check_defaults(cfg);
    assert_string_equal(cfg->agent.app_id, "app");
    assert_string_equal(cfg->agent.request_id, "app");
    assert_string_equal(cfg->agent.sentry_address, "localhost:50001");
    assert_string_equal(cfg->agent.trust_anchors_pem, "anchors-pem");
    pk_sidecar_config_free(cfg);

    /* An empty file changes nothing. */
    assert_int_equal(load("", base_env, base_flags, &cfg, &err), 0);
    assert_non_null(cfg->config_file);
    free(cfg->config_file);
    cfg->config_file = NULL;
    check_defaults(cfg);
    pk_sidecar_config_free(cfg);
}

/* ---- a full file ---- */

static const char full_ini[] = "; every key picket.ini has\n"
                               "[agent]\n"
                               "app_id = checkout\n"
                               "namespace = shop\n"
                               "trust_domain = example.org\n"
                               "renew_at = 0.6\n"
                               "renew_jitter = 0.05\n"
                               "retry_initial = 500ms\n"
                               "retry_max = 1h30m\n"
                               "initial_attempts = 3\n"
                               "request_timeout = 3s\n"
                               "allow_tls12 = yes\n"
                               "export_dir = /run/picket/export\n"
                               "export_command = systemctl reload nginx ; inline comment\n"
                               "export_pid_file = /run/nginx.pid\n"
                               "export_signal = SIGUSR1\n"
                               "\n"
                               "[sentry]\n"
                               "# Sentry in the control plane\n"
                               "address = dapr-sentry.dapr-system.svc:443\n"
                               "trust_anchors_file = /etc/picket/ca.pem\n"
                               "control_plane_trust_domain = cluster.local\n"
                               "control_plane_namespace = dapr-system\n"
                               "token_file = /var/run/secrets/dapr.io/sentrytoken/token\n"
                               "adopt_trust_chain = on\n"
                               "\n"
                               "[admin]\n"
                               "listen = [::1]:9902\n"
                               "\n"
                               "[log]\n"
                               "level = debug\n"
                               "json = TRUE\n";

static void test_full_file(void **state)
{
    struct pk_sidecar_config *cfg;
    struct pk_err err;

    (void)state;
    assert_int_equal(load(full_ini, NULL, NULL, &cfg, &err), 0);
    assert_string_equal(cfg->agent.app_id, "checkout");
    assert_string_equal(cfg->agent.request_id, "checkout");
    assert_string_equal(cfg->agent.namespace_, "shop");
    assert_string_equal(cfg->agent.trust_domain, "example.org");
    assert_true(cfg->agent.renew_fraction == 0.6);
    assert_true(cfg->agent.renew_jitter == 0.05);
    assert_true(cfg->agent.retry_initial == 0.5);
    assert_true(cfg->agent.retry_max == 5400.0);
    assert_int_equal(cfg->agent.initial_attempts, 3);
    assert_true(cfg->agent.request_timeout == 3.0);
    assert_true(cfg->agent.allow_tls12);
    assert_string_equal(cfg->agent.export_dir, "/run/picket/export");
    assert_string_equal(cfg->agent.export_command, "systemctl reload nginx");
    assert_string_equal(cfg->agent.export_pid_file, "/run/nginx.pid");
    assert_int_equal(cfg->agent.export_signal, SIGUSR1);
    assert_string_equal(cfg->agent.sentry_address, "dapr-sentry.dapr-system.svc:443");
    assert_string_equal(cfg->agent.trust_anchors_file, "/etc/picket/ca.pem");
    assert_null(cfg->agent.trust_anchors_pem);
    assert_string_equal(cfg->agent.control_plane_trust_domain, "cluster.local");
    assert_string_equal(cfg->agent.control_plane_namespace, "dapr-system");
    assert_string_equal(cfg->agent.token_file, "/var/run/secrets/dapr.io/sentrytoken/token");
    assert_true(cfg->agent.adopt_sentry_anchors);
    assert_string_equal(cfg->admin_listen, "[::1]:9902");
    assert_int_equal(cfg->log_level, PK_LOG_LEVEL_DEBUG);
    assert_true(cfg->log_json);
    assert_non_null(cfg->config_file);
    pk_sidecar_config_free(cfg);
}

/* ---- the proxy: [proxy], [inbound NAME], [outbound NAME] ---- */

static const char listeners_ini[] = "[agent]\n"
                                    "app_id = checkout\n"
                                    "namespace = shop\n"
                                    "\n"
                                    "[proxy]\n"
                                    "workers = 4\n"
                                    "shutdown_timeout = 30s\n"
                                    "\n"
                                    "; other apps call this app here\n"
                                    "[inbound web]\n"
                                    "listen = 0.0.0.0:8443\n"
                                    "target = 127.0.0.1:8080\n"
                                    "allow_app_id = frontend\n"
                                    "allow_namespace = ops\n"
                                    "allow_app_id = billing/invoices\n"
                                    "allow_trust_domain = partner.example\n"
                                    "allow_spiffe_id = spiffe://example.org/ns/*/cron\n"
                                    "allow_app_id = admin ; last\n"
                                    "allow_namespace = audit\n"
                                    "proxy_protocol = yes\n"
                                    "max_connections = 500\n"
                                    "buffer_size = 65536\n"
                                    "\n"
                                    "[outbound billing]\n"
                                    "listen = 127.0.0.1:9001\n"
                                    "target = 10.0.0.7:8443\n"
                                    "expect_app_id = invoices\n"
                                    "expect_namespace = billing\n"
                                    "server_name = billing.internal\n"
                                    "connect_timeout = 2s\n"
                                    "idle_timeout = 0\n"
                                    "\n"
                                    "[inbound grpc.v2_x-1]\n"
                                    "listen = [::]:50051\n"
                                    "target = unix:/run/app/grpc.sock\n"
                                    "max_handshakes = 1000\n"
                                    "handshake_timeout = 3s\n"
                                    "max_lifetime = 1h\n"
                                    "\n"
                                    "[log]\n"
                                    "level = warn\n"
                                    "\n"
                                    "[outbound ext-api]\n"
                                    "listen = 0.0.0.0:9002\n"
                                    "allow_non_loopback = true\n"
                                    "target = [2001:db8::7]:443\n"
                                    "expect_spiffe_id = spiffe://partner.example/ns/prod/api\n";

/* The values no key of the section set. */
static void check_listener_defaults(const struct pk_listener_config *lc, bool connections,
                                    bool handshakes, bool timeouts)
{
    if (connections) {
        assert_int_equal(lc->max_connections, 10000);
        assert_int_equal(lc->buffer_size, 16384);
    }
    if (handshakes) {
        assert_int_equal(lc->max_handshakes, 256);
        assert_true(lc->handshake_timeout == 10.0);
        assert_true(lc->max_lifetime == 0.0);
    }
    if (timeouts) {
        assert_true(lc->connect_timeout == 5.0);
        assert_true(lc->idle_timeout == 300.0);
    }
}

static void assert_list(char **got, size_t n_got, const char *const *want, size_t n_want)
{
    assert_int_equal(n_got, n_want);
    for (size_t i = 0; i < n_want; i++) {
        assert_string_equal(got[i], want[i]);
    }
}

static void check_listeners(const struct pk_sidecar_config *cfg)
{
    static const char *const app_ids[] = {"frontend", "billing/invoices", "admin"};
    static const char *const namespaces[] = {"ops", "audit"};
    static const char *const tds[] = {"partner.example"};
    static const char *const ids[] = {"spiffe://example.org/ns/*/cron"};
    const struct pk_listener_config *lc;

    assert_int_equal(cfg->workers, 4);
    assert_true(cfg->shutdown_timeout == 30.0);
    assert_int_equal(cfg->n_listeners, 4);

    /* In the order of the file, whatever the kind. */
    lc = &cfg->listeners[0];
    assert_int_equal(lc->kind, PK_LISTENER_INBOUND);
    assert_string_equal(lc->name, "web");
    assert_string_equal(lc->listen, "0.0.0.0:8443");
    assert_string_equal(lc->target, "127.0.0.1:8080");
    /* Repeated keys append in the order of their lines. */
    assert_list(lc->allow_app_id, lc->n_allow_app_id, app_ids, 3);
    assert_list(lc->allow_namespace, lc->n_allow_namespace, namespaces, 2);
    assert_list(lc->allow_trust_domain, lc->n_allow_trust_domain, tds, 1);
    assert_list(lc->allow_spiffe_id, lc->n_allow_spiffe_id, ids, 1);
    assert_true(lc->proxy_protocol);
    assert_int_equal(lc->max_connections, 500);
    assert_int_equal(lc->buffer_size, 65536);
    assert_null(lc->expect_spiffe_id);
    assert_null(lc->expect_app_id);
    assert_null(lc->expect_namespace);
    assert_null(lc->server_name);
    assert_false(lc->allow_non_loopback);
    check_listener_defaults(lc, false, true, true);

    lc = &cfg->listeners[1];
    assert_int_equal(lc->kind, PK_LISTENER_OUTBOUND);
    assert_string_equal(lc->name, "billing");
    assert_string_equal(lc->listen, "127.0.0.1:9001");
    assert_string_equal(lc->target, "10.0.0.7:8443");
    assert_string_equal(lc->expect_app_id, "invoices");
    assert_string_equal(lc->expect_namespace, "billing");
    assert_null(lc->expect_spiffe_id);
    assert_string_equal(lc->server_name, "billing.internal");
    assert_false(lc->allow_non_loopback);
    assert_true(lc->connect_timeout == 2.0);
    assert_true(lc->idle_timeout == 0.0);
    assert_int_equal(lc->n_allow_app_id + lc->n_allow_namespace + lc->n_allow_trust_domain +
                             lc->n_allow_spiffe_id,
                     0);
    assert_null(lc->allow_app_id);
    assert_false(lc->proxy_protocol);
    check_listener_defaults(lc, true, true, false);

    lc = &cfg->listeners[2];
    assert_int_equal(lc->kind, PK_LISTENER_INBOUND);
    assert_string_equal(lc->name, "grpc.v2_x-1");
    assert_string_equal(lc->listen, "[::]:50051");
    assert_string_equal(lc->target, "unix:/run/app/grpc.sock");
    assert_int_equal(lc->n_allow_app_id + lc->n_allow_namespace + lc->n_allow_trust_domain +
                             lc->n_allow_spiffe_id,
                     0);
    assert_false(lc->proxy_protocol);
    assert_int_equal(lc->max_handshakes, 1000);
    assert_true(lc->handshake_timeout == 3.0);
    assert_true(lc->max_lifetime == 3600.0);
    check_listener_defaults(lc, true, false, true);

    lc = &cfg->listeners[3];
    assert_int_equal(lc->kind, PK_LISTENER_OUTBOUND);
    assert_string_equal(lc->name, "ext-api");
    assert_string_equal(lc->listen, "0.0.0.0:9002");
    assert_true(lc->allow_non_loopback);
    assert_string_equal(lc->target, "[2001:db8::7]:443");
    assert_string_equal(lc->expect_spiffe_id, "spiffe://partner.example/ns/prod/api");
    assert_null(lc->expect_app_id);
    assert_null(lc->expect_namespace);
    assert_null(lc->server_name);
    check_listener_defaults(lc, true, true, true);
}

static void test_listeners(void **state)
{
    struct pk_sidecar_config *cfg = pk_sidecar_config_new();
    struct pk_err err;

    (void)state;
    assert_int_equal(
            pk_sidecar_config_parse_ini(listeners_ini, strlen(listeners_ini), "t.ini", cfg, &err),
            0);
    check_listeners(cfg);
    assert_string_equal(cfg->agent.app_id, "checkout");
    assert_int_equal(cfg->log_level, PK_LOG_LEVEL_WARN);

    /* A text without listeners keeps them; one with listeners replaces them all. */
    static const char no_listeners[] = "[proxy]\nworkers = 2\n";
    assert_int_equal(
            pk_sidecar_config_parse_ini(no_listeners, strlen(no_listeners), "t.ini", cfg, &err), 0);
    assert_int_equal(cfg->workers, 2);
    assert_int_equal(cfg->n_listeners, 4);
    static const char one[] = "[inbound only]\nlisten = localhost:1\ntarget = localhost:2\n";
    assert_int_equal(pk_sidecar_config_parse_ini(one, strlen(one), "t.ini", cfg, &err), 0);
    assert_int_equal(cfg->n_listeners, 1);
    assert_string_equal(cfg->listeners[0].name, "only");
    assert_null(cfg->listeners[0].allow_app_id);
    check_listener_defaults(&cfg->listeners[0], true, true, true);
    /* A bad text leaves them too. */
    static const char bad[] = "[inbound other]\nlisten = localhost:1\n";
    assert_int_equal(pk_sidecar_config_parse_ini(bad, strlen(bad), "t.ini", cfg, &err),
                     PK_E_INVALID);
    assert_int_equal(cfg->n_listeners, 1);
    assert_string_equal(cfg->listeners[0].name, "only");
    pk_sidecar_config_free(cfg);

    /* Through load: the other layers leave the listeners alone. */
    assert_int_equal(load(listeners_ini, base_env, base_flags, &cfg, &err), 0);
    check_listeners(cfg);
    assert_string_equal(cfg->agent.app_id, "app");
    pk_sidecar_config_free(cfg);
    static const char missing[] = "[outbound x]\nlisten = 127.0.0.1:1\ntarget = 127.0.0.1:2\n";
    assert_int_equal(load(missing, base_env, base_flags, &cfg, &err), PK_E_INVALID);
    assert_contains(err.msg, ":1: [outbound x]: the server's identity is missing");
    assert_contains(err.msg, "picket-config-");
}

static void assert_rule(const struct pk_policy_rule *rule, enum pk_policy_kind kind,
                        const char *value, const char *ns)
{
    assert_int_equal(rule->kind, kind);
    assert_string_equal(rule->value, value);
    if (ns == NULL) {
        assert_null(rule->ns);
    } else {
        assert_string_equal(rule->ns, ns);
    }
}

/* Each listener's rules come out of the configuration typed: the proxy builds its policies from
 * these, in this order, and parses no rule text again. */
static void test_listener_policies_typed(void **state)
{
    struct pk_sidecar_config *cfg = pk_sidecar_config_new();
    struct pk_listener_config copy = {0};
    const struct pk_listener_config *lc;
    struct pk_err err;

    (void)state;
    assert_int_equal(
            pk_sidecar_config_parse_ini(listeners_ini, strlen(listeners_ini), "t.ini", cfg, &err),
            0);
    lc = &cfg->listeners[0];
    assert_int_equal(lc->n_policy, 7);
    assert_rule(&lc->policy[0], PK_ALLOW_TRUST_DOMAIN, "partner.example", NULL);
    assert_rule(&lc->policy[1], PK_ALLOW_NAMESPACE, "ops", NULL);
    assert_rule(&lc->policy[2], PK_ALLOW_NAMESPACE, "audit", NULL);
    assert_rule(&lc->policy[3], PK_ALLOW_APP_ID, "frontend", NULL);
    assert_rule(&lc->policy[4], PK_ALLOW_APP_ID, "invoices", "billing");
    assert_rule(&lc->policy[5], PK_ALLOW_APP_ID, "admin", NULL);
    assert_rule(&lc->policy[6], PK_ALLOW_SPIFFE_ID, "spiffe://example.org/ns/*/cron", NULL);
    lc = &cfg->listeners[1];
    assert_int_equal(lc->n_policy, 1);
    assert_rule(&lc->policy[0], PK_EXPECT_APP_ID, "invoices", "billing");
    assert_int_equal(cfg->listeners[2].n_policy, 0);
    lc = &cfg->listeners[3];
    assert_int_equal(lc->n_policy, 1);
    assert_rule(&lc->policy[0], PK_EXPECT_SPIFFE_ID, "spiffe://partner.example/ns/prod/api", NULL);

    /* A copy owns copies of them. */
    pk_listener_config_copy(&copy, &cfg->listeners[0]);
    pk_sidecar_config_free(cfg);
    assert_int_equal(copy.n_policy, 7);
    assert_rule(&copy.policy[4], PK_ALLOW_APP_ID, "invoices", "billing");
    pk_listener_config_clear(&copy);
}

/* Parse head, value and tail as one text into a new configuration; on success *out (if out is
 * not NULL) is the configuration, else it is freed. */
static int parse_one(const char *head, const char *value, const char *tail,
                     struct pk_sidecar_config **out, struct pk_err *err)
{
    char text[1200];
    struct pk_sidecar_config *cfg = pk_sidecar_config_new();
    int r;

    assert_true((size_t)snprintf(text, sizeof(text), "%s%s%s", head, value, tail) < sizeof(text));
    pk_err_clear(err);
    r = pk_sidecar_config_parse_ini(text, strlen(text), "t.ini", cfg, err);
    if (r != 0 || out == NULL) {
        pk_sidecar_config_free(cfg);
        cfg = NULL;
    }
    if (out != NULL) {
        *out = cfg;
    }
    return r;
}

static void test_listener_values(void **state)
{
    static const char inbound[] = "[inbound web]\nlisten = ";
    static const char inbound_tail[] = "\ntarget = 127.0.0.1:1\n";
    static const char outbound[] = "[outbound api]\nlisten = ";
    static const char outbound_tail[] = "\ntarget = 127.0.0.1:1\nexpect_app_id = api\n";
    static const char *const sockets[] = {
            "127.0.0.1:1",        "0.0.0.0:65535", "10.1.2.3:8443",      "localhost:80",
            "[::]:443",           "[::1]:443",     "[2001:db8::1]:8443", "[::ffff:10.0.0.1]:1",
            "unix:/run/app.sock", "unix:/",
    };
    /* Outbound listen addresses that stay on this host, and ones that do not. */
    static const char *const loopback[] = {"127.0.0.1:9000", "127.255.0.9:1", "localhost:9000",
                                           "[::1]:9000", "unix:/run/picket/api.sock"};
    static const char *const remote[] = {"0.0.0.0:9000", "10.0.0.1:9000", "[::]:9000",
                                         "[::ffff:127.0.0.1]:9000", "126.255.255.255:9000"};
    static const char *const names[] = {"a", "Z", "0", "_", ".", "-", "web.v2_blue-1"};
    struct pk_sidecar_config *cfg;
    struct pk_err err;
    char text[300];

    (void)state;
    for (size_t i = 0; i < sizeof(sockets) / sizeof(sockets[0]); i++) {
        if (parse_one(inbound, sockets[i], inbound_tail, &cfg, &err) != 0) {
            fail_msg("listen %s: %s", sockets[i], err.msg);
        }
        assert_string_equal(cfg->listeners[0].listen, sockets[i]);
        pk_sidecar_config_free(cfg);
        snprintf(text, sizeof(text),
                 "[inbound web]\nlisten = 127.0.0.1:1\ntarget = %s\n[inbound w2]\n"
                 "listen = 127.0.0.1:2\ntarget = ",
                 sockets[i]);
        if (parse_one(text, sockets[i], "\n", &cfg, &err) != 0) {
            fail_msg("target %s: %s", sockets[i], err.msg);
        }
        assert_string_equal(cfg->listeners[0].target, sockets[i]);
        assert_string_equal(cfg->listeners[1].target, sockets[i]);
        pk_sidecar_config_free(cfg);
    }
    for (size_t i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++) {
        if (parse_one(outbound, loopback[i], outbound_tail, NULL, &err) != 0) {
            fail_msg("outbound listen %s: %s", loopback[i], err.msg);
        }
    }
    for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++) {
        assert_int_equal(parse_one(outbound, remote[i], outbound_tail, NULL, &err), PK_E_INVALID);
        assert_contains(err.msg, "t.ini:2: [outbound api] listen: ");
        assert_contains(err.msg, "is not a loopback address");
        assert_contains(err.msg, "set allow_non_loopback = true");
        /* Allowed, before or after listen. */
        snprintf(text, sizeof(text), "%sallow_non_loopback = on\n", outbound_tail);
        assert_int_equal(parse_one(outbound, remote[i], text, NULL, &err), 0);
        assert_int_equal(parse_one("[outbound api]\nallow_non_loopback = 1\nlisten = ", remote[i],
                                   outbound_tail, NULL, &err),
                         0);
    }
    /* Inbound listeners may listen anywhere: that is their purpose. */
    assert_int_equal(parse_one(inbound, "0.0.0.0:8443", inbound_tail, NULL, &err), 0);

    /* Names: every allowed character, 48 bytes, case matters. */
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (parse_one("[outbound ", names[i],
                      "]\nlisten = localhost:1\ntarget = localhost:2\nexpect_app_id = a\n", &cfg,
                      &err) != 0) {
            fail_msg("name %s: %s", names[i], err.msg);
        }
        assert_string_equal(cfg->listeners[0].name, names[i]);
        pk_sidecar_config_free(cfg);
    }
    char name48[49];
    memset(name48, 'n', 48);
    name48[48] = '\0';
    snprintf(text, sizeof(text), "[inbound %s]\nlisten = 127.0.0.1:1\ntarget = 127.0.0.1:2\n",
             name48);
    assert_int_equal(parse_one(text, "", "", &cfg, &err), 0);
    assert_string_equal(cfg->listeners[0].name, name48);
    pk_sidecar_config_free(cfg);
    static const char cases[] = "[inbound web]\nlisten = 127.0.0.1:1\ntarget = 127.0.0.1:2\n"
                                "[inbound Web]\nlisten = 127.0.0.1:3\ntarget = 127.0.0.1:4\n";
    assert_int_equal(parse_one(cases, "", "", &cfg, &err), 0);
    assert_int_equal(cfg->n_listeners, 2);
    pk_sidecar_config_free(cfg);

    /* The longest unix path sun_path holds, and one more byte. */
    char path[120];
    strcpy(path, "unix:/");
    memset(path + 6, 'p', 106);
    path[112] = '\0';
    assert_int_equal(parse_one(inbound, path, inbound_tail, NULL, &err), 0);
    strcat(path, "p");
    assert_int_equal(parse_one(inbound, path, inbound_tail, NULL, &err), PK_E_INVALID);
    assert_contains(err.msg, "a unix socket path must be shorter than 108 bytes");

    /* Edges of the ranges. */
    static const char edges[] = "[inbound web]\nlisten = 127.0.0.1:1\ntarget = 127.0.0.1:2\n"
                                "max_connections = 1\nmax_handshakes = 100000\n"
                                "buffer_size = 1048576\nconnect_timeout = 1ms\n"
                                "handshake_timeout = 24h\nidle_timeout = 24h\nmax_lifetime = 0s\n"
                                "[outbound api]\nlisten = 127.0.0.1:3\ntarget = 127.0.0.1:4\n"
                                "expect_app_id = a\nmax_connections = 1000000\n"
                                "max_handshakes = 1\nbuffer_size = 1024\nmax_lifetime = 24h\n"
                                "[proxy]\nworkers = 256\nshutdown_timeout = 0\n";
    assert_int_equal(parse_one(edges, "", "", &cfg, &err), 0);
    assert_int_equal(cfg->listeners[0].max_connections, 1);
    assert_int_equal(cfg->listeners[0].max_handshakes, 100000);
    assert_int_equal(cfg->listeners[0].buffer_size, 1048576);
    assert_true(cfg->listeners[0].connect_timeout == 0.001);
    assert_true(cfg->listeners[0].handshake_timeout == 86400.0);
    assert_true(cfg->listeners[0].idle_timeout == 86400.0);
    assert_true(cfg->listeners[0].max_lifetime == 0.0);
    assert_int_equal(cfg->listeners[1].max_connections, 1000000);
    assert_int_equal(cfg->listeners[1].max_handshakes, 1);
    assert_int_equal(cfg->listeners[1].buffer_size, 1024);
    assert_true(cfg->listeners[1].max_lifetime == 86400.0);
    assert_null(cfg->listeners[1].expect_namespace);
    assert_int_equal(cfg->workers, 256);
    assert_true(cfg->shutdown_timeout == 0.0);
    pk_sidecar_config_free(cfg);

    /* At most PK_SIDECAR_CONFIG_MAX_LISTENERS sections. */
    size_t cap = (PK_SIDECAR_CONFIG_MAX_LISTENERS + 1) * 64;
    char *many = malloc(cap);
    size_t len = 0;
    assert_non_null(many);
    for (int i = 0; i <= PK_SIDECAR_CONFIG_MAX_LISTENERS; i++) {
        len += (size_t)snprintf(many + len, cap - len,
                                "[inbound l%d]\nlisten = 127.0.0.1:%d\ntarget = localhost:1\n", i,
                                i + 1);
    }
    cfg = pk_sidecar_config_new();
    assert_int_equal(pk_sidecar_config_parse_ini(many, len, "t.ini", cfg, &err), PK_E_INVALID);
    assert_contains(err.msg, "t.ini:769: [inbound l256]: more than 256 listener sections");
    assert_int_equal(cfg->n_listeners, 0);
    /* Without the last one it loads. */
    len = (size_t)(strstr(many, "[inbound l256]") - many);
    assert_int_equal(pk_sidecar_config_parse_ini(many, len, "t.ini", cfg, &err), 0);
    assert_int_equal(cfg->n_listeners, PK_SIDECAR_CONFIG_MAX_LISTENERS);
    assert_string_equal(cfg->listeners[255].name, "l255");
    pk_sidecar_config_free(cfg);
    free(many);
}

/* ---- precedence: flags > env > file > defaults ---- */

struct layered {
    const char *what;
    size_t offset;
    const char *ini;       /* the file layer's text */
    const char *env;       /* "NAME=value", or NULL when no variable exists */
    const char *flag;      /* the flag, or NULL when there is none */
    const char *values[3]; /* the value each layer gives: file, env, flag */
    const char *def;       /* the default; NULL = none */
    const char *error;     /* when no layer gives it and there is no default: the error */
};

static const struct layered layered[] = {
        {"app_id",
         offsetof(struct pk_sidecar_config, agent.app_id),
         "[agent]\napp_id = app-file\n",
         "APP_ID=app-env",
         "--app-id",
         {"app-file", "app-env", "app-flag"},
         NULL,
         "app id is required"},
        {"namespace",
         offsetof(struct pk_sidecar_config, agent.namespace_),
         "[agent]\nnamespace = ns-file\n",
         "NAMESPACE=ns-env",
         NULL,
         {"ns-file", "ns-env", NULL},
         "default",
         NULL},
        {"trust_domain",
         offsetof(struct pk_sidecar_config, agent.trust_domain),
         "[agent]\ntrust_domain = file.example\n",
         NULL,
         "--trust-domain",
         {"file.example", NULL, "flag.example"},
         NULL,
         NULL},
        {"control_plane_trust_domain",
         offsetof(struct pk_sidecar_config, agent.control_plane_trust_domain),
         "[sentry]\ncontrol_plane_trust_domain = file.example\n",
         "DAPR_CONTROLPLANE_TRUST_DOMAIN=env.example",
         "--control-plane-trust-domain",
         {"file.example", "env.example", "flag.example"},
         "localhost",
         NULL},
        {"control_plane_namespace",
         offsetof(struct pk_sidecar_config, agent.control_plane_namespace),
         "[sentry]\ncontrol_plane_namespace = cpns-file\n",
         "DAPR_CONTROLPLANE_NAMESPACE=cpns-env",
         "--control-plane-namespace",
         {"cpns-file", "cpns-env", "cpns-flag"},
         "default",
         NULL},
        {"trust_anchors_file",
         offsetof(struct pk_sidecar_config, agent.trust_anchors_file),
         "[sentry]\ntrust_anchors_file = /file/ca.pem\n",
         "DAPR_TRUST_ANCHORS_FILE=/env/ca.pem",
         "--trust-anchors-file",
         {"/file/ca.pem", "/env/ca.pem", "/flag/ca.pem"},
         NULL,
         NULL},
        {"sentry_address",
         offsetof(struct pk_sidecar_config, agent.sentry_address),
         "[sentry]\naddress = file.example:1\n",
         NULL,
         "--sentry-address",
         {"file.example:1", NULL, "flag.example:2"},
         NULL,
         NULL},
        {"token_file",
         offsetof(struct pk_sidecar_config, agent.token_file),
         "[sentry]\ntoken_file = /file/token\n",
         "DAPR_SENTRY_TOKEN_FILE=/env/token",
         NULL,
         {"/file/token", "/env/token", NULL},
         NULL,
         NULL},
};

static void run_layered(const struct layered *c, unsigned mask)
{
    const char *env[8], *flags[8];
    const char *want = c->def;
    struct pk_sidecar_config *cfg;
    struct pk_err err;
    size_t ne = 0, nf = 0;
    bool is_app = strcmp(c->what, "app_id") == 0;
    bool is_address = strcmp(c->what, "sentry_address") == 0;
    int r;

    /* Anchors as PEM text and a static identity, so the tested key may be absent. */
    env[ne++] = "DAPR_TRUST_ANCHORS=anchors-pem";
    env[ne++] = "DAPR_CERT_CHAIN=chain-pem";
    env[ne++] = "DAPR_CERT_KEY=key-pem";
    if (!is_app) {
        flags[nf++] = "--app-id";
        flags[nf++] = "base-app";
    }
    if (!is_address) {
        flags[nf++] = "--sentry-address";
        flags[nf++] = "base.example:50001";
    }
    if (mask & 1) {
        want = c->values[0];
    }
    if (mask & 2) {
        env[ne++] = c->env;
        want = c->values[1];
    }
    if (mask & 4) {
        flags[nf++] = c->flag;
        flags[nf++] = c->values[2];
        want = c->values[2];
    }
    env[ne] = NULL;
    flags[nf] = NULL;
    r = load((mask & 1) ? c->ini : NULL, env, flags, &cfg, &err);
    if (want == NULL && c->error != NULL) {
        assert_int_equal(r, PK_E_INVALID);
        assert_contains(err.msg, c->error);
        return;
    }
    if (r != 0) {
        fail_msg("%s, layers %u: %s", c->what, mask, err.msg);
    }
    const char *got = *(char **)((char *)cfg + c->offset);
    if (want == NULL) {
        if (got != NULL) {
            fail_msg("%s, layers %u: got \"%s\", want none", c->what, mask, got);
        }
    } else if (got == NULL || strcmp(got, want) != 0) {
        fail_msg("%s, layers %u: got \"%s\", want \"%s\"", c->what, mask, got ? got : "(null)",
                 want);
    }
    pk_sidecar_config_free(cfg);
}

static void test_precedence(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(layered) / sizeof(layered[0]); i++) {
        for (unsigned mask = 0; mask < 8; mask++) {
            if (((mask & 2) && layered[i].env == NULL) || ((mask & 4) && layered[i].flag == NULL)) {
                continue;
            }
            run_layered(&layered[i], mask);
        }
    }
}

static void test_env_empty_is_unset(void **state)
{
    const char *env[] = {"DAPR_TRUST_ANCHORS=pem",       "NAMESPACE=",
                         "DAPR_CONTROLPLANE_NAMESPACE=", "DAPR_CONTROLPLANE_TRUST_DOMAIN=",
                         "SENTRY_LOCAL_IDENTITY=",       NULL};
    struct pk_sidecar_config *cfg;
    struct pk_err err;

    (void)state;
    assert_int_equal(load("[agent]\nnamespace = from-file\n", env, base_flags, &cfg, &err), 0);
    assert_string_equal(cfg->agent.namespace_, "from-file");
    assert_string_equal(cfg->agent.control_plane_namespace, "default");
    assert_string_equal(cfg->agent.control_plane_trust_domain, "localhost");
    assert_string_equal(cfg->agent.request_id, "app");
    pk_sidecar_config_free(cfg);
}

static void test_sentry_local_identity(void **state)
{
    const char *env[] = {"DAPR_TRUST_ANCHORS=pem", "SENTRY_LOCAL_IDENTITY=other-id",
                         "NAMESPACE=ns1", NULL};
    const char *bad[] = {"DAPR_TRUST_ANCHORS=pem", "SENTRY_LOCAL_IDENTITY=ns:sa", NULL};
    struct pk_sidecar_config *cfg;
    struct pk_err err;

    (void)state;
    assert_int_equal(load(NULL, env, base_flags, &cfg, &err), 0);
    assert_string_equal(cfg->agent.app_id, "app");
    assert_string_equal(cfg->agent.request_id, "other-id");
    assert_string_equal(cfg->agent.namespace_, "ns1");
    pk_sidecar_config_free(cfg);

    /* It does not stand in for a missing app id. */
    const char *no_app_flags[] = {"--sentry-address", "localhost:50001", NULL};
    assert_int_equal(load(NULL, env, no_app_flags, &cfg, &err), PK_E_INVALID);
    assert_contains(err.msg, "app id is required");

    assert_int_equal(load(NULL, bad, base_flags, &cfg, &err), PK_E_INVALID);
    assert_contains(err.msg, "SENTRY_LOCAL_IDENTITY");
}

static void test_static_identity_from_env(void **state)
{
    const char *env[] = {"DAPR_TRUST_ANCHORS=-----BEGIN CERTIFICATE-----\nroot\n",
                         "DAPR_CERT_CHAIN=-----BEGIN CERTIFICATE-----\nleaf\n",
                         "DAPR_CERT_KEY=-----BEGIN PRIVATE KEY-----\nkey\n", NULL};
    const char *flags[] = {"--app-id", "app", NULL};
    const char *ini = "[agent]\ncert_file = /file/cert.pem\nkey_file = /file/key.pem\n";
    struct pk_sidecar_config *cfg;
    struct pk_err err;

    (void)state;
    assert_int_equal(load(ini, env, flags, &cfg, &err), 0);
    assert_null(cfg->agent.sentry_address);
    assert_string_equal(cfg->agent.trust_anchors_pem, "-----BEGIN CERTIFICATE-----\nroot\n");
    assert_string_equal(cfg->agent.cert_pem, "-----BEGIN CERTIFICATE-----\nleaf\n");
    assert_string_equal(cfg->agent.key_pem, "-----BEGIN PRIVATE KEY-----\nkey\n");
    /* The contents replace the files: env wins over the file. */
    assert_null(cfg->agent.cert_file);
    assert_null(cfg->agent.key_file);
    pk_sidecar_config_free(cfg);

    /* Files alone. */
    assert_int_equal(load(ini, base_env, flags, &cfg, &err), 0);
    assert_string_equal(cfg->agent.cert_file, "/file/cert.pem");
    assert_string_equal(cfg->agent.key_file, "/file/key.pem");
    assert_null(cfg->agent.cert_pem);
    pk_sidecar_config_free(cfg);

    /* With a Sentry address they are ignored, as daprd 1.14+ does. */
    assert_int_equal(load(NULL, env, base_flags, &cfg, &err), 0);
    assert_null(cfg->agent.cert_pem);
    assert_null(cfg->agent.key_pem);
    pk_sidecar_config_free(cfg);

    /* --sentry-address "" turns a file's address off: static mode. */
    const char *off[] = {"--app-id", "app", "--sentry-address", "", NULL};
    assert_int_equal(load("[sentry]\naddress = s.example:50001\n", env, off, &cfg, &err), 0);
    assert_null(cfg->agent.sentry_address);
    assert_non_null(cfg->agent.cert_pem);
    pk_sidecar_config_free(cfg);
}

/* ---- flags ---- */

static void test_flag_forms(void **state)
{
    static const char *const forms[][5] = {
            {"--app-id", "x1", NULL},
            {"--app-id=x1", NULL},
            {"-app-id", "x1", NULL},
            {"-app-id=x1", NULL},
    };
    struct pk_sidecar_config *cfg;
    struct pk_err err;

    (void)state;
    /* Repeated calls also check that getopt starts over each time. */
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        const char *flags[8];
        size_t n = 0;
        for (size_t j = 0; forms[i][j] != NULL; j++) {
            flags[n++] = forms[i][j];
        }
        flags[n++] = "-sentry-address=localhost:1";
        flags[n] = NULL;
        assert_int_equal(load(NULL, base_env, flags, &cfg, &err), 0);
        assert_string_equal(cfg->agent.app_id, "x1");
        assert_string_equal(cfg->agent.sentry_address, "localhost:1");
        pk_sidecar_config_free(cfg);
    }

    const char *log1[] = {"--app-id",    "a",    "--sentry-address", "h:1",
                          "--log-level", "warn", "--log-as-json",    NULL};
    assert_int_equal(load("[log]\nlevel = debug\njson = false\n", base_env, log1, &cfg, &err), 0);
    assert_int_equal(cfg->log_level, PK_LOG_LEVEL_WARN);
    assert_true(cfg->log_json);
    pk_sidecar_config_free(cfg);

    const char *log2[] = {"--app-id",          "a", "--sentry-address", "h:1", "-log-as-json=false",
                          "--log-level=error", NULL};
    assert_int_equal(load("[log]\njson = true\n", base_env, log2, &cfg, &err), 0);
    assert_false(cfg->log_json);
    assert_int_equal(cfg->log_level, PK_LOG_LEVEL_ERROR);
    pk_sidecar_config_free(cfg);

    const char *cp[] = {
            "-app-id",       "a", "-sentry-address", "[::1]:50001", "-control-plane-trust-domain",
            "cluster.local", NULL};
    assert_int_equal(load(NULL, base_env, cp, &cfg, &err), 0);
    assert_string_equal(cfg->agent.sentry_address, "[::1]:50001");
    assert_string_equal(cfg->agent.control_plane_trust_domain, "cluster.local");
    pk_sidecar_config_free(cfg);
}

static void test_config_flag_forms(void **state)
{
    static const char *const forms[] = {"-c", "--config-file", "-config-file"};
    char path[512], arg[600];
    struct pk_sidecar_config *cfg;
    struct pk_err err;
    bool help;

    (void)state;
    write_temp_ini(path, sizeof(path), "[agent]\napp_id = from-file\n[sentry]\naddress = h:1\n");
    for (size_t i = 0; i < 3; i++) {
        const char *flags[] = {forms[i], path, NULL};
        assert_int_equal(load_full(NULL, base_env, flags, &cfg, &help, &err), 0);
        assert_string_equal(cfg->agent.app_id, "from-file");
        assert_string_equal(cfg->config_file, path);
        pk_sidecar_config_free(cfg);
    }
    snprintf(arg, sizeof(arg), "--config-file=%s", path);
    const char *eq[] = {arg, NULL};
    assert_int_equal(load_full(NULL, base_env, eq, &cfg, &help, &err), 0);
    assert_string_equal(cfg->agent.app_id, "from-file");
    pk_sidecar_config_free(cfg);
    /* --config is daprd's Configuration YAML: picket.ini there is refused, saying where it goes. */
    const char *daprd[] = {"--config", path, NULL};
    assert_int_equal(load_full(NULL, base_env, daprd, &cfg, &help, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "-c or --config-file"));
    unlink(path);
}

/* A listener target may be a DNS name; a literal stays a literal; [dns] keys land. */
static void test_name_targets_and_dns_keys(void **state)
{
    static const char ini[] = "[outbound peer]\nlisten = 127.0.0.1:9000\n"
                              "target = peer.shop.svc.cluster.local:8443\nexpect_app_id = p\n"
                              "[inbound web]\nlisten = 127.0.0.1:9001\ntarget = localhost:80\n"
                              "[dns]\nservers = 127.0.0.1:5353,[::1]:53\nttl_min = 2s\n"
                              "ttl_max = 1m\ntimeout = 300ms\n";
    struct pk_sidecar_config *cfg = pk_sidecar_config_new();
    struct pk_err err;

    (void)state;
    assert_int_equal(cfg->dns_ttl_min, 1);
    assert_int_equal(cfg->dns_ttl_max, 300);
    assert_null(cfg->dns_servers);
    if (pk_sidecar_config_parse_ini(ini, strlen(ini), "t.ini", cfg, &err) != 0) {
        fail_msg("%s", err.msg);
    }
    assert_int_equal(cfg->listeners[0].target_addr.kind, PK_ADDR_NAME);
    assert_string_equal(cfg->listeners[0].target_addr.host, "peer.shop.svc.cluster.local");
    assert_int_equal(cfg->listeners[0].target_addr.port, 8443);
    assert_int_equal(cfg->listeners[1].target_addr.kind, PK_ADDR_INET);
    assert_string_equal(cfg->dns_servers, "127.0.0.1:5353,[::1]:53");
    assert_true(cfg->dns_ttl_min == 2 && cfg->dns_ttl_max == 60 && cfg->dns_timeout == 0.3);
    pk_sidecar_config_free(cfg);
}

/* The mode: flag over PICKET_MODE over [agent] mode; auto is kubernetes in a pod. */
static void test_mode_layers_and_detection(void **state)
{
    static const char ini[] = "[agent]\napp_id = a\nmode = standalone\n[sentry]\naddress = h:1\n";
    const char *pod_env[] = {"DAPR_TRUST_ANCHORS=x", "KUBERNETES_SERVICE_HOST=10.0.0.1", NULL};
    const char *mode_env[] = {"DAPR_TRUST_ANCHORS=x", "PICKET_MODE=kubernetes", NULL};
    const char *app[] = {"--app-id", "a", "--sentry-address", "h:1", NULL};
    const char *flag[] = {"--mode", "standalone", NULL};
    const char *bad[] = {"--app-id", "a", "--sentry-address", "h:1", "--mode", "pod", NULL};
    struct pk_sidecar_config *cfg;
    struct pk_err err;

    (void)state;
    assert_int_equal(load(NULL, base_env, app, &cfg, &err), 0);
    assert_int_equal(cfg->agent.mode, PK_AGENT_MODE_STANDALONE);
    pk_sidecar_config_free(cfg);
    assert_int_equal(load(NULL, pod_env, app, &cfg, &err), 0);
    assert_int_equal(cfg->agent.mode, PK_AGENT_MODE_KUBERNETES);
    pk_sidecar_config_free(cfg);
    assert_int_equal(load(ini, pod_env, NULL, &cfg, &err), 0);
    assert_int_equal(cfg->agent.mode, PK_AGENT_MODE_STANDALONE);
    pk_sidecar_config_free(cfg);
    assert_int_equal(load(ini, mode_env, NULL, &cfg, &err), 0);
    assert_int_equal(cfg->agent.mode, PK_AGENT_MODE_KUBERNETES);
    pk_sidecar_config_free(cfg);
    assert_int_equal(load(ini, mode_env, flag, &cfg, &err), 0);
    assert_int_equal(cfg->agent.mode, PK_AGENT_MODE_STANDALONE);
    pk_sidecar_config_free(cfg);
    assert_int_equal(load(NULL, base_env, bad, &cfg, &err), PK_E_INVALID);
    assert_contains(err.msg, "--mode: 'pod' is not auto, standalone or kubernetes");
}

/* daprd's Configuration YAML: what is read, what is refused and where. */
static void test_daprd_config_yaml(void **state)
{
    static const struct {
        const char *yaml;
        const char *error; /* NULL: accepted */
        const char *ignored;
    } cases[] = {
            {"kind: Configuration\nspec:\n  mtls:\n    enabled: true\n", NULL, ""},
            {"kind: Configuration\nspec:\n  tracing: {samplingRate: \"1\"}\n  mtls:\n"
             "    enabled: true\n    workloadCertTTL: 1h\n",
             NULL, "spec.tracing, spec.mtls.workloadCertTTL"},
            {"kind: Configuration\nspec:\n  accessControl:\n    trustDomain: td\n", NULL,
             "spec.accessControl"},
            {"kind: Configuration\nspec:\n  mtls:\n    enabled: false\n",
             "c.yaml:4:14: spec.mtls.enabled is false", NULL},
            {"kind: Configuration\nspec:\n  mtls:\n    enabled: \"true\"\n",
             "c.yaml:4:14: spec.mtls.enabled: a quoted value", NULL},
            {"kind: Configuration\nspec:\n  mtls:\n    enabled: maybe\n",
             "'maybe' is not true or false", NULL},
            {"kind: Component\n", "c.yaml:1:7: kind is 'Component', not Configuration", NULL},
            {"spec: {}\n", "c.yaml: no 'kind: Configuration'", NULL},
            {"[agent]\napp_id = a\n", "-c or --config-file", NULL},
            {"- a\n", "c.yaml:1:1: the file is a list", NULL},
            {"kind: Configuration\n---\nkind: Configuration\n", "more than one YAML document",
             NULL},
    };
    char deep[200];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pk_daprd_config dc;
        struct pk_err err;
        int r = pk_daprd_config_parse((const uint8_t *)cases[i].yaml, strlen(cases[i].yaml),
                                      "c.yaml", &dc, &err);
        if (cases[i].error == NULL) {
            if (r != 0) {
                fail_msg("case %zu refused: %s", i, err.msg);
            }
            assert_string_equal(dc.ignored, cases[i].ignored);
        } else {
            assert_int_equal(r, PK_E_INVALID);
            assert_contains(err.msg, cases[i].error);
        }
    }
    memset(deep, '[', sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = '\0';
    {
        struct pk_daprd_config dc;
        struct pk_err err;
        assert_int_equal(pk_daprd_config_parse((const uint8_t *)"kind: Configuration\nx: ", 23,
                                               "c.yaml", &dc, &err),
                         0);
        assert_int_equal(
                pk_daprd_config_parse((const uint8_t *)deep, strlen(deep), "c.yaml", &dc, &err),
                PK_E_INVALID);
    }
}

/* SIGHUP's rules: which settings need a restart, and listener copies that compare equal. */
static void test_restart_changes_and_listener_copies(void **state)
{
    (void)state;
    static const char base[] =
            "[agent]\napp_id = a\nrenew_at = 0.5\n[admin]\nlisten = 127.0.0.1:1\n"
            "[inbound web]\nlisten = 127.0.0.1:2\ntarget = 127.0.0.1:3\n"
            "allow_app_id = x\nallow_app_id = y\n";
    static const char same_keys[] =
            "[agent]\nrenew_at = 0.7\nretry_max = 5s\n[log]\nlevel = debug\n";
    static const char restart[] = "[agent]\napp_id = b\n[admin]\nlisten = off\n[proxy]\n"
                                  "workers = 3\n";
    struct pk_sidecar_config *a = pk_sidecar_config_new(), *b = pk_sidecar_config_new();
    struct pk_listener_config copy;
    char names[200];
    struct pk_err err;

    assert_int_equal(pk_sidecar_config_parse_ini(base, strlen(base), "a.ini", a, &err), 0);
    assert_int_equal(pk_sidecar_config_parse_ini(base, strlen(base), "b.ini", b, &err), 0);
    assert_int_equal(pk_sidecar_config_restart_changes(a, b, names, sizeof(names)), 0);
    assert_string_equal(names, "");
    assert_int_equal(pk_sidecar_config_parse_ini(same_keys, strlen(same_keys), "b.ini", b, &err),
                     0);
    assert_int_equal(pk_sidecar_config_restart_changes(a, b, names, sizeof(names)), 0);
    assert_int_equal(pk_sidecar_config_parse_ini(restart, strlen(restart), "b.ini", b, &err), 0);
    assert_int_equal(pk_sidecar_config_restart_changes(a, b, names, sizeof(names)), 3);
    assert_string_equal(names, "[agent] app_id, [admin] listen, [proxy] workers");
    /* Cut to fit, still counted. */
    assert_int_equal(pk_sidecar_config_restart_changes(a, b, names, 10), 3);
    assert_int_equal(strlen(names), 9);

    pk_listener_config_copy(&copy, &a->listeners[0]);
    assert_true(copy.name != a->listeners[0].name);
    assert_true(pk_listener_config_equal(&copy, &a->listeners[0]));
    free(copy.allow_app_id[1]);
    copy.allow_app_id[1] = strdup("z");
    assert_false(pk_listener_config_equal(&copy, &a->listeners[0]));
    pk_listener_config_clear(&copy);
    pk_listener_config_copy(&copy, &a->listeners[0]);
    copy.idle_timeout = 1;
    assert_false(pk_listener_config_equal(&copy, &a->listeners[0]));
    pk_listener_config_clear(&copy);
    assert_null(copy.name);
    pk_listener_config_clear(NULL);
    pk_sidecar_config_free(a);
    pk_sidecar_config_free(b);
}

static void test_help(void **state)
{
    static const char *const forms[] = {"--help", "-h", "-help"};
    struct pk_sidecar_config *cfg;
    struct pk_err err;
    bool help;

    (void)state;
    for (size_t i = 0; i < 3; i++) {
        /* Nothing is checked: no app id, no anchors, a file that does not exist. */
        const char *flags[] = {"--config", "/nonexistent/picket.ini", forms[i], NULL};
        help = false;
        assert_int_equal(load_full(NULL, NULL, flags, &cfg, &help, &err), 0);
        assert_true(help);
        assert_null(cfg);
    }
}

static void test_help_text(void **state)
{
    static const char *const names[] = {
            /* flags */
            "--app-id", "--sentry-address", "--control-plane-trust-domain",
            "--control-plane-namespace", "--trust-domain", "--trust-anchors-file", "-c", "--config",
            "--log-level", "--log-as-json", "--help", "-h",
            /* sections and keys */
            "[agent]", "app_id", "namespace", "trust_domain", "renew_at", "renew_jitter",
            "retry_initial", "retry_max", "initial_attempts", "request_timeout", "cert_file",
            "key_file", "allow_tls12", "export_dir", "export_command", "export_pid_file",
            "export_signal", "[sentry]", "address", "trust_anchors_file",
            "control_plane_trust_domain", "control_plane_namespace", "token_file",
            "adopt_trust_chain", "[admin]", "listen", "[log]", "level", "json",
            /* the proxy */
            "[proxy]", "workers", "shutdown_timeout", "[inbound NAME]", "[outbound NAME]", "target",
            "allow_trust_domain", "allow_namespace", "allow_app_id", "allow_spiffe_id",
            "proxy_protocol", "expect_spiffe_id", "expect_app_id", "expect_namespace",
            "server_name", "allow_non_loopback", "max_connections", "max_handshakes",
            "connect_timeout", "handshake_timeout", "idle_timeout", "max_lifetime", "buffer_size",
            "unix:/PATH",
            /* environment */
            "APP_ID", "NAMESPACE", "SENTRY_LOCAL_IDENTITY", "DAPR_TRUST_ANCHORS",
            "DAPR_TRUST_ANCHORS_FILE", "DAPR_CONTROLPLANE_TRUST_DOMAIN",
            "DAPR_CONTROLPLANE_NAMESPACE", "DAPR_SENTRY_TOKEN_FILE", "DAPR_CERT_CHAIN",
            "DAPR_CERT_KEY",
            /* defaults and precedence */
            "127.0.0.1:9901", "localhost", "0.5", "Precedence", "usage: picket run",
            "(default 10000)", "(default 256)", "(default 5s)", "(default 10s)", "(default 5m",
            "(default 16384)", "0: never", "(default 0s)", "(default 0)", "[restart]"};
    const char *help = pk_sidecar_config_help();

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        assert_contains(help, names[i]);
    }
    /* Fits a terminal. */
    for (const char *line = help; *line != '\0';) {
        const char *nl = strchr(line, '\n');
        size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);
        assert_true(len <= 100);
        line += len + (nl != NULL);
    }
}

/* ---- errors from load ---- */

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_defaults),
            cmocka_unit_test(test_full_file),
            cmocka_unit_test(test_listeners),
            cmocka_unit_test(test_listener_policies_typed),
            cmocka_unit_test(test_listener_values),
            cmocka_unit_test(test_precedence),
            cmocka_unit_test(test_env_empty_is_unset),
            cmocka_unit_test(test_sentry_local_identity),
            cmocka_unit_test(test_static_identity_from_env),
            cmocka_unit_test(test_flag_forms),
            cmocka_unit_test(test_config_flag_forms),
            cmocka_unit_test(test_mode_layers_and_detection),
            cmocka_unit_test(test_name_targets_and_dns_keys),
            cmocka_unit_test(test_daprd_config_yaml),
            cmocka_unit_test(test_help),
            cmocka_unit_test(test_help_text),
            cmocka_unit_test(test_restart_changes_and_listener_copies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
