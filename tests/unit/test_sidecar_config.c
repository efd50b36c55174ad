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

#define MAX_ARGS 32

static int sentinel;

/* The least a valid configuration needs besides what a test varies. */
static const char *const base_env[] = {"DAPR_TRUST_ANCHORS=anchors-pem", NULL};
static const char *const base_flags[] = {"--app-id", "app", "--sentry-address", "localhost:50001",
                                         NULL};

static void write_file(char *path, size_t path_len, const char *text)
{
    const char *dir = getenv("PICKET_TEST_TMP");
    int fd;

    snprintf(path, path_len, "%s/picket-config-XXXXXX", dir != NULL ? dir : "/tmp");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(close(fd), 0);
}

/* Run pk_sidecar_config_load as `picket run [-c FILE] flags...` with the environment env; ini NULL
 * means no -c. On return *cfg is what load wrote (NULL when it wrote nothing). */
static int load_full(const char *ini, const char *const *env, const char *const *flags,
                     struct pk_sidecar_config **cfg, bool *help, struct pk_err *err)
{
    char path[512];
    char *argv[MAX_ARGS + 1];
    int argc = 0, r;

    argv[argc++] = "run";
    if (ini != NULL) {
        write_file(path, sizeof(path), ini);
        argv[argc++] = "-c";
        argv[argc++] = path;
    }
    for (size_t i = 0; flags != NULL && flags[i] != NULL; i++) {
        assert_true(argc < MAX_ARGS);
        argv[argc++] = (char *)flags[i];
    }
    argv[argc] = NULL;
    /* A value load must leave alone on error and overwrite otherwise. */
    *cfg = (struct pk_sidecar_config *)&sentinel;
    r = pk_sidecar_config_load(argc, argv, (char *const *)env, cfg, help, err);
    if (ini != NULL) {
        unlink(path);
    }
    if (r != 0) {
        assert_ptr_equal(*cfg, &sentinel);
        assert_true(err->msg[0] != '\0');
        *cfg = NULL;
    } else {
        assert_ptr_not_equal(*cfg, &sentinel);
    }
    return r;
}

static int load(const char *ini, const char *const *env, const char *const *flags,
                struct pk_sidecar_config **cfg, struct pk_err *err)
{
    bool help = true;
    int r = load_full(ini, env, flags, cfg, &help, err);
    assert_false(help);
    return r;
}

static void assert_contains(const char *msg, const char *want)
{
    if (strstr(msg, want) == NULL) {
        fail_msg("message \"%s\" lacks \"%s\"", msg, want);
    }
}

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
    write_file(path, sizeof(path), "[agent]\napp_id = from-file\n[sentry]\naddress = h:1\n");
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

struct load_error {
    const char *ini;
    const char *env[6];
    const char *flags[8];
    int rc;
    const char *want[3];
};

static const struct load_error load_errors[] = {
        /* required settings */
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--sentry-address", "h:1"},
         PK_E_INVALID,
         {"app id is required", "--app-id", "[agent] app_id"}},
        {NULL,
         {NULL},
         {"--app-id", "a", "--sentry-address", "h:1"},
         PK_E_INVALID,
         {"trust anchors are required: set [sentry] trust_anchors_file, --trust-anchors-file or "
          "DAPR_TRUST_ANCHORS"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a"},
         PK_E_INVALID,
         {"no identity source", "--sentry-address", "cert_file"}},
        {"[agent]\ncert_file = /c.pem\n",
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a"},
         PK_E_INVALID,
         {"certificate is configured (/c.pem) but no private key"}},
        {"[agent]\nkey_file = /k.pem\n",
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a"},
         PK_E_INVALID,
         {"private key is configured (/k.pem) but no certificate"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem", "DAPR_CERT_CHAIN=chain"},
         {"--app-id", "a"},
         PK_E_INVALID,
         {"certificate is configured (DAPR_CERT_CHAIN) but no private key"}},
        {"[agent]\ncert_file = /c.pem\nkey_file = /k.pem\n",
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "--sentry-address", "h:1"},
         PK_E_INVALID,
         {"exclude each other"}},
        /* environment */
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem", "DAPR_SENTRY_TOKEN_FILE="},
         {"--app-id", "a", "--sentry-address", "h:1"},
         PK_E_INVALID,
         {"DAPR_SENTRY_TOKEN_FILE is set but empty"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem", "NAMESPACE=a/b"},
         {"--app-id", "a", "--sentry-address", "h:1"},
         PK_E_INVALID,
         {"NAMESPACE: "}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem", "APP_ID=.."},
         {"--sentry-address", "h:1"},
         PK_E_INVALID,
         {"APP_ID: "}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem", "DAPR_CONTROLPLANE_TRUST_DOMAIN=Bad TD"},
         {"--app-id", "a", "--sentry-address", "h:1"},
         PK_E_INVALID,
         {"DAPR_CONTROLPLANE_TRUST_DOMAIN: "}},
        /* flags */
        {NULL, {"DAPR_TRUST_ANCHORS=pem"}, {"--bogus"}, PK_E_INVALID, {"unknown flag '--bogus'"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "-bogus=1"},
         PK_E_INVALID,
         {"unknown flag '-bogus'"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--sentry-address", "h:1", "--app-id"},
         PK_E_INVALID,
         {"flag '--app-id' needs a value"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "extra"},
         PK_E_INVALID,
         {"unexpected argument 'extra'"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "--sentry-address", "h:1", "--", "x"},
         PK_E_INVALID,
         {"unexpected argument 'x'"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a/b", "--sentry-address", "h:1"},
         PK_E_INVALID,
         {"--app-id: "}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "--sentry-address", "nocolon"},
         PK_E_INVALID,
         {"--sentry-address: 'nocolon' is not HOST:PORT"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "--sentry-address", "h:1", "--log-level", "loud"},
         PK_E_INVALID,
         {"--log-level: 'loud' is not debug, info, warn or error"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "--sentry-address", "h:1", "--log-as-json=maybe"},
         PK_E_INVALID,
         {"--log-as-json: 'maybe' is not a boolean"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "--sentry-address", "h:1", "--log-as-json="},
         PK_E_INVALID,
         {"--log-as-json: '' is not a boolean"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "--sentry-address", "h:1", "--control-plane-namespace", ""},
         PK_E_INVALID,
         {"--control-plane-namespace: "}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "--sentry-address", "h:1", "--trust-domain", "UPPER.example"},
         PK_E_INVALID,
         {"--trust-domain: "}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "--sentry-address", "h:1", "--trust-anchors-file="},
         PK_E_INVALID,
         {"--trust-anchors-file: empty"}},
        /* the file, through load */
        {"[agent]\napp_id = a\n[sentry]\naddress = h:1\nfoo = bar\n",
         {"DAPR_TRUST_ANCHORS=pem"},
         {NULL},
         PK_E_INVALID,
         {":5: [sentry] foo: unknown key"}},
};

static void test_load_errors(void **state)
{
    struct pk_sidecar_config *cfg;
    struct pk_err err;

    (void)state;
    for (size_t i = 0; i < sizeof(load_errors) / sizeof(load_errors[0]); i++) {
        const struct load_error *c = &load_errors[i];
        int r = load(c->ini, c->env, c->flags, &cfg, &err);
        if (r != c->rc) {
            fail_msg("case %zu: rc %d, want %d (%s)", i, r, c->rc, err.msg);
        }
        for (size_t j = 0; j < 3 && c->want[j] != NULL; j++) {
            assert_contains(err.msg, c->want[j]);
        }
    }
}

static void test_missing_config_file(void **state)
{
    const char *flags[] = {"-c", "/nonexistent/dir/picket.ini", "--app-id", "a", NULL};
    struct pk_sidecar_config *cfg;
    struct pk_err err;

    (void)state;
    assert_int_equal(load(NULL, base_env, flags, &cfg, &err), PK_E_NOTFOUND);
    assert_contains(err.msg, "/nonexistent/dir/picket.ini");
    assert_contains(err.msg, "does not exist");
}

/* ---- errors from the INI parser ---- */

struct ini_error {
    const char *text;
    const char *want;
};

static const struct ini_error ini_errors[] = {
        {"[agent]\nfoo = 1\n", "t.ini:2: [agent] foo: unknown key (the keys of [agent] are app_id"},
        {"[agnet]\napp_id = a\n", "t.ini:1: [agnet]: unknown section"},
        {"[agent]\n[empty-unknown]\n", "t.ini:2: [empty-unknown]: unknown section"},
        {"[tproxy]\nlisten = :8443\n",
         "t.ini:1: [tproxy]: unknown section (picket.ini has [agent], "
         "[sentry], [admin], [log], [proxy], [iptables], [inbound "
         "NAME], [outbound NAME] and [transparent NAME])"},
        {"[transparent]\nlisten = :8443\n",
         "t.ini:1: [transparent]: section [transparent] needs a name, as in [transparent NAME]"},
        {"[agent x]\n", "t.ini:1: [agent x]: section [agent] takes no name"},
        {"[agent\n", "t.ini:1: section header without a closing ']'"},
        {"[agent] junk\n", "t.ini:1: unexpected text after the section header"},
        {"[abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijXYZ]\n",
         "t.ini:1: [abcdefghijabcdefghijabcdefghijabcdefghijabcdefghi...]: section name is "
         "longer than 49 bytes"},
        {"app_id = a\n", "t.ini:1: app_id: key outside a section"},
        {"[agent]\napp_id\n", "t.ini:2: expected 'key = value'"},
        {"[agent]\napp_id = a\n  namespace = b\n", "t.ini:3: indented line"},
        {"[agent]\nallow_tls12 = maybe\n",
         "t.ini:2: [agent] allow_tls12: 'maybe' is not a boolean"},
        {"[log]\njson = 2\n", "t.ini:2: [log] json: '2' is not a boolean"},
        {"[agent]\nretry_max = 5 minutes\n", "t.ini:2: [agent] retry_max: invalid duration"},
        {"[agent]\nrequest_timeout = 0s\n", "t.ini:2: [agent] request_timeout: 0s is out of range"},
        {"[agent]\nretry_initial = -1s\n", "t.ini:2: [agent] retry_initial: -1s is out of range"},
        {"[agent]\nretry_initial = 5s\nretry_max = 2s\n",
         "t.ini:3: [agent] retry_max: retry_max 2s is less than retry_initial 5s"},
        {"[agent]\nrenew_at = 1.5\n", "t.ini:2: [agent] renew_at: 1.5 is out of range"},
        {"[agent]\nrenew_at = 0\n", "t.ini:2: [agent] renew_at: 0 is out of range"},
        {"[agent]\nrenew_at = nan\n", "t.ini:2: [agent] renew_at: 'nan' is not a decimal"},
        {"[agent]\nrenew_at = 1e-1\n", "t.ini:2: [agent] renew_at: '1e-1' is not a decimal"},
        {"[agent]\nrenew_jitter = 0.3\n", "t.ini:2: [agent] renew_jitter: 0.3 is out of range"},
        {"[agent]\nrenew_jitter = 0.1\n\nrenew_at = 0.9\n",
         "t.ini:4: [agent] renew_at: renew_at 0.9 +/- renew_jitter 0.1 leaves the lifetime"},
        {"[agent]\nrenew_at = 0.05\n", "t.ini:2: [agent] renew_at: renew_at 0.05 +/- renew_jitter "
                                       "0.1"},
        {"[agent]\napp_id = a\n\napp_id = b\n",
         "t.ini:4: [agent] app_id: given twice (first on line 2)"},
        {"[agent]\napp_id = a\n[log]\nlevel = info\n[agent]\napp_id = b\n",
         "t.ini:6: [agent] app_id: given twice (first on line 2)"},
        {"[agent]\napp_id = a/b\n", "t.ini:2: [agent] app_id: "},
        {"[agent]\nnamespace = ..\n", "t.ini:2: [agent] namespace: "},
        {"[agent]\ntrust_domain = Example.org\n", "t.ini:2: [agent] trust_domain: "},
        {"[agent]\ninitial_attempts = -1\n",
         "t.ini:2: [agent] initial_attempts: '-1' is not a whole number"},
        {"[agent]\ninitial_attempts = 3x\n",
         "t.ini:2: [agent] initial_attempts: '3x' is not a whole number"},
        {"[agent]\nexport_signal = FOO\n", "t.ini:2: [agent] export_signal: 'FOO' is not a signal"},
        {"[agent]\nexport_dir =\n", "t.ini:2: [agent] export_dir: empty value"},
        {"[agent]\nexport_command = true\n",
         "t.ini:2: [agent] export_command: export_command runs after an export, but export_dir"},
        {"[agent]\nexport_dir = /d\nexport_signal = USR1\n",
         "t.ini:3: [agent] export_signal: export_signal needs export_pid_file"},
        {"[agent]\nexport_dir = /d\nexport_group = pk-no-such-group\n",
         "t.ini:3: [agent] export_group: no group named 'pk-no-such-group' on this system"},
        {"[agent]\nexport_dir = /d\nexport_group = 4294967295\n",
         "t.ini:3: [agent] export_group: '4294967295' is not a group name or a gid"},
        {"[agent]\nexport_group = root\n",
         "t.ini:2: [agent] export_group: export_group is the group of the exported files, but "
         "export_dir is not set"},
        {"[sentry]\naddress = nocolon\n", "t.ini:2: [sentry] address: 'nocolon' is not HOST:PORT"},
        {"[sentry]\naddress = ::1:50001\n", "t.ini:2: [sentry] address: '::1:50001': put an IPv6"},
        {"[sentry]\naddress = host:0\n", "t.ini:2: [sentry] address: 'host:0': the port"},
        {"[sentry]\naddress = host:http\n", "t.ini:2: [sentry] address: 'host:http': the port"},
        {"[sentry]\ncontrol_plane_namespace = a b\n", "t.ini:2: [sentry] control_plane_namespace"},
        {"[sentry]\nadopt_trust_chain = y\n", "t.ini:2: [sentry] adopt_trust_chain: 'y' is not"},
        {"[admin]\nlisten = 127.0.0.1:99999\n", "t.ini:2: [admin] listen: expected HOST:PORT"},
        {"[admin]\nlisten = unix:\n", "t.ini:2: [admin] listen: 'unix:': a unix socket path"},
        {"[log]\nlevel = loud\n", "t.ini:2: [log] level: 'loud' is not debug, info, warn or error"},
        {"[log]\nlevel = info\nlevel = debug\n", "t.ini:3: [log] level: given twice"},
        {"[agent]\napp_id = \x01\n", "t.ini:2: [agent] app_id: "},
        /* [proxy] */
        {"[proxy]\nworkers = 257\n", "t.ini:2: [proxy] workers: '257' is not a whole number from "
                                     "0 to 256"},
        {"[proxy]\nworkers = -1\n", "t.ini:2: [proxy] workers: '-1' is not a whole number"},
        {"[proxy]\nshutdown_timeout = 1d\n", "t.ini:2: [proxy] shutdown_timeout: invalid duration"},
        {"[proxy]\nshutdown_timeout = 25h\n", "t.ini:2: [proxy] shutdown_timeout: 25h is out of "
                                              "range"},
        {"[proxy]\nworkers = 1\n[proxy]\nworkers = 2\n",
         "t.ini:4: [proxy] workers: given twice (first on line 2)"},
        {"[proxy main]\n", "t.ini:1: [proxy main]: section [proxy] takes no name"},
        {"[proxy]\nlisten = 127.0.0.1:1\n", "t.ini:2: [proxy] listen: unknown key (the keys of "
                                            "[proxy] are workers, shutdown_timeout, mark)"},
        /* listener names */
        {"[inbound]\n", "t.ini:1: [inbound]: section [inbound] needs a name, as in [inbound NAME]"},
        {"[outbound ]\n", "t.ini:1: [outbound ]: section [outbound] needs a name"},
        {"[inbound we/b]\n", "t.ini:1: [inbound we/b]: bad NAME: it must be 1 to 48 of the "
                             "letters, digits, '_', '.' and '-'"},
        {"[inbound a b]\n", "t.ini:1: [inbound a b]: bad NAME"},
        {"[outbound caf\xc3\xa9]\n", "t.ini:1: [outbound caf\\xc3\\xa9]: bad NAME"},
        {"[inbound abcdefghijabcdefghijabcdefghijabcdefghijabcdefghi]\n",
         "t.ini:1: [inbound abcdefghijabcdefghijabcdefghijabcdefghijabcdefgh...]: the NAME is "
         "longer than 48 bytes"},
        {"[inbound web]\nlisten = 127.0.0.1:1\ntarget = 127.0.0.1:2\n\n[outbound web]\n",
         "t.ini:5: [outbound web]: the NAME web is already used by [inbound web] on line 1"},
        {"[outbound a]\n[inbound b]\n[outbound a]\n",
         "t.ini:3: [outbound a]: the NAME a is already used by [outbound a] on line 1"},
        /* keys of the other kind, unknown keys, keys given twice */
        {"[outbound api]\nallow_app_id = x\n",
         "t.ini:2: [outbound api] allow_app_id: not valid in an outbound section (only [inbound "
         "NAME] has it)"},
        {"[outbound api]\nproxy_protocol = true\n",
         "t.ini:2: [outbound api] proxy_protocol: not valid in an outbound section"},
        {"[inbound web]\nexpect_app_id = x\n",
         "t.ini:2: [inbound web] expect_app_id: not valid in an inbound section (only [outbound "
         "NAME] has it)"},
        {"[inbound web]\nallow_non_loopback = true\n",
         "t.ini:2: [inbound web] allow_non_loopback: not valid in an inbound section"},
        {"[inbound web]\nserver_name = x\n",
         "t.ini:2: [inbound web] server_name: not valid in an inbound section"},
        {"[inbound web]\nallow = spiffe://a/b\n",
         "t.ini:2: [inbound web] allow: unknown key (the keys of [inbound NAME] are listen, "
         "target, "
         "allow_trust_domain, allow_namespace, allow_app_id, allow_spiffe_id, proxy_protocol, "
         "permissive, intercept_port, max_connections"},
        {"[outbound api]\nexpect = a\n",
         "t.ini:2: [outbound api] expect: unknown key (the keys of [outbound NAME] are listen, "
         "target, expect_spiffe_id, expect_app_id, expect_namespace, server_name, "
         "allow_non_loopback, max_connections"},
        {"[inbound web]\nlisten = 127.0.0.1:1\nlisten = 127.0.0.1:2\n",
         "t.ini:3: [inbound web] listen: given twice (first on line 2)"},
        {"[outbound api]\nexpect_app_id = a\nidle_timeout = 1s\n\nidle_timeout = 2s\n",
         "t.ini:5: [outbound api] idle_timeout: given twice (first on line 3)"},
        {"[inbound web]\nproxy_protocol = no\n[agent]\n[inbound web2]\nproxy_protocol = no\n"
         "[inbound web]\n",
         "t.ini:6: [inbound web]: the NAME web is already used"},
        /* empty values */
        {"[inbound web]\nallow_app_id = a\nallow_app_id =\n",
         "t.ini:3: [inbound web] allow_app_id: empty value: an allow rule must name whom it "
         "allows (an empty one never means \"allow all\")"},
        {"[inbound web]\nallow_trust_domain =\n", "t.ini:2: [inbound web] allow_trust_domain: "
                                                  "empty value: an allow rule"},
        {"[inbound web]\nallow_namespace = ; nothing\n", "t.ini:2: [inbound web] allow_namespace: "
                                                         "empty value: an allow rule"},
        {"[inbound web]\nallow_spiffe_id =\n", "t.ini:2: [inbound web] allow_spiffe_id: empty "
                                               "value: an allow rule"},
        {"[inbound web]\nlisten =\n", "t.ini:2: [inbound web] listen: empty value: the address is "
                                      "required"},
        {"[outbound api]\nserver_name =\n", "t.ini:2: [outbound api] server_name: empty value"},
        {"[outbound api]\nexpect_namespace =\n", "t.ini:2: [outbound api] expect_namespace: empty "
                                                 "value"},
        {"[inbound web]\nproxy_protocol =\n", "t.ini:2: [inbound web] proxy_protocol: '' is not a "
                                              "boolean"},
        {"[inbound web]\nmax_connections =\n", "t.ini:2: [inbound web] max_connections: '' is not "
                                               "a whole number"},
        {"[inbound web]\nidle_timeout =\n", "t.ini:2: [inbound web] idle_timeout: "},
        /* addresses */
        {"[inbound web]\nlisten = example.com:443\n",
         "t.ini:2: [inbound web] listen: 'example.com:443': the host must be a numeric IPv4 "
         "address, [IPv6] or localhost (names are not resolved)"},
        {"[inbound web]\ntarget = 256.0.0.1:80\n", "t.ini:2: [inbound web] target: '256.0.0.1:80': "
                                                   "the host must be a numeric IPv4"},
        {"[inbound web]\ntarget = 127.1:80\n", "t.ini:2: [inbound web] target: '127.1:80': the "
                                               "host must be"},
        {"[inbound web]\ntarget = peer .svc:80\n", "t.ini:2: [inbound web] target: "},
        {"[outbound web]\ntarget = peer.svc:0\n", "t.ini:2: [outbound web] target: "},
        /* [dns] */
        {"[dns]\nservers = dns.example:53\n",
         "t.ini:2: [dns] servers: 'dns.example:53': the host must be"},
        {"[dns]\nservers = 127.0.0.1:53,\n", "t.ini:2: [dns] servers: '127.0.0.1:53,' is not a "
                                             "comma-separated list"},
        {"[dns]\nservers = unix:/run/dns\n", "not a unix socket"},
        {"[dns]\nservers = localhost:53\n", "a DNS server must be an IP address"},
        {"[dns]\nttl_min = 10s\nttl_max = 5s\n", "t.ini:3: [dns] ttl_max: ttl_max 5s is less than "
                                                 "ttl_min"},
        {"[dns]\nttl_min = 0s\n", "t.ini:2: [dns] ttl_min: "},
        {"[inbound web]\nlisten = LOCALHOST:80\n", "t.ini:2: [inbound web] listen: "
                                                   "'LOCALHOST:80': the host must be"},
        {"[inbound web]\nlisten = 127.0.0.1:0\n",
         "t.ini:2: [inbound web] listen: expected HOST:PORT, [V6]:PORT or unix:/PATH: "
         "'127.0.0.1:0': the port is not a number from 1 to 65535"},
        {"[inbound web]\nlisten = 127.0.0.1:65536\n", "t.ini:2: [inbound web] listen: expected "
                                                      "HOST:PORT"},
        {"[inbound web]\nlisten = 127.0.0.1\n", "t.ini:2: [inbound web] listen: expected "
                                                "HOST:PORT, [V6]:PORT or unix:/PATH: '127.0.0.1' "
                                                "is not HOST:PORT"},
        {"[inbound web]\nlisten = :8443\n", "t.ini:2: [inbound web] listen: expected HOST:PORT"},
        {"[inbound web]\nlisten = ::1:8443\n", "t.ini:2: [inbound web] listen: expected "
                                               "HOST:PORT, [V6]:PORT or unix:/PATH: '::1:8443': "
                                               "put an IPv6 address in brackets"},
        {"[inbound web]\nlisten = [fe80::1%eth0]:8443\n", "t.ini:2: [inbound web] listen: "
                                                          "'[fe80::1%eth0]:8443': not an IPv6 "
                                                          "address in brackets"},
        {"[inbound web]\nlisten = [127.0.0.1]:8443\n", "t.ini:2: [inbound web] listen: "
                                                       "'[127.0.0.1]:8443': not an IPv6"},
        {"[inbound web]\nlisten = [::1:8443\n", "t.ini:2: [inbound web] listen: expected "
                                                "HOST:PORT"},
        {"[inbound web]\ntarget = unix:run/app.sock\n",
         "t.ini:2: [inbound web] target: 'unix:run/app.sock': a unix socket path must be "
         "absolute, as in unix:/run/app.sock"},
        {"[inbound web]\ntarget = unix:\n", "t.ini:2: [inbound web] target: 'unix:': a unix "
                                            "socket path must be absolute"},
        {"[inbound web]\ntarget = unix:/"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaa\n",
         "t.ini:2: [inbound web] target: 'unix:/aaa"},
        /* outbound listen must be loopback unless allowed */
        {"[outbound api]\nlisten = 0.0.0.0:9000\ntarget = 10.0.0.1:443\nexpect_app_id = api\n",
         "t.ini:2: [outbound api] listen: '0.0.0.0:9000' is not a loopback address, so other "
         "hosts could connect with this app's identity; set allow_non_loopback = true"},
        {"[outbound api]\nallow_non_loopback = false\nexpect_app_id = api\ntarget = "
         "10.0.0.1:443\nlisten = [::]:9000\n",
         "t.ini:5: [outbound api] listen: '[::]:9000' is not a loopback address"},
        {"[outbound api]\nlisten = 128.0.0.1:9000\ntarget = 10.0.0.1:443\nexpect_app_id = api\n",
         "t.ini:2: [outbound api] listen: '128.0.0.1:9000' is not a loopback"},
        {"[outbound api]\nlisten = [::2]:9000\ntarget = 10.0.0.1:443\nexpect_app_id = api\n",
         "t.ini:2: [outbound api] listen: '[::2]:9000' is not a loopback"},
        /* the server's identity */
        {"[outbound api]\nlisten = 127.0.0.1:9000\ntarget = 10.0.0.1:443\nexpect_app_id = "
         "api\nexpect_spiffe_id = spiffe://td/ns/default/api\n",
         "t.ini:5: [outbound api] expect_spiffe_id: the server's identity is already given by "
         "expect_app_id on line 4: keep one of expect_spiffe_id and expect_app_id"},
        {"[outbound api]\nexpect_spiffe_id = spiffe://td/ns/default/api\nlisten = "
         "127.0.0.1:9000\ntarget = 10.0.0.1:443\nexpect_app_id = api\n",
         "t.ini:5: [outbound api] expect_app_id: the server's identity is already given by "
         "expect_spiffe_id on line 2"},
        {"[agent]\n\n[outbound api]\nlisten = 127.0.0.1:9000\ntarget = 10.0.0.1:443\n",
         "t.ini:3: [outbound api]: the server's identity is missing: set expect_app_id (with "
         "expect_namespace for another namespace) or expect_spiffe_id"},
        {"[outbound api]\nlisten = 127.0.0.1:9000\ntarget = 10.0.0.1:443\nexpect_namespace = ns\n",
         "t.ini:4: [outbound api] expect_namespace: only goes with expect_app_id"},
        {"[outbound api]\nexpect_namespace = ns\nlisten = 127.0.0.1:9000\ntarget = "
         "10.0.0.1:443\nexpect_spiffe_id = spiffe://td/ns/ns/api\n",
         "t.ini:2: [outbound api] expect_namespace: only goes with expect_app_id"},
        {"[outbound api]\nexpect_spiffe_id = spiffe://td/ns/*/api\n",
         "t.ini:2: [outbound api] expect_spiffe_id: "},
        {"[outbound api]\nexpect_spiffe_id = https://td/api\n",
         "t.ini:2: [outbound api] expect_spiffe_id: "},
        {"[outbound api]\nexpect_app_id = a/b\n", "t.ini:2: [outbound api] expect_app_id: "},
        {"[outbound api]\nexpect_namespace = ..\n", "t.ini:2: [outbound api] expect_namespace: "},
        {"[outbound api]\nserver_name = 10.0.0.1\n",
         "t.ini:2: [outbound api] server_name: '10.0.0.1': SNI cannot carry an IP address"},
        {"[outbound api]\nserver_name = api service\n",
         "t.ini:2: [outbound api] server_name: 'api service' is not a host name"},
        {"[outbound api]\nserver_name = [::1]\n", "t.ini:2: [outbound api] server_name: '[::1]' "
                                                  "is not a host name"},
        /* authorization values */
        {"[inbound web]\nallow_trust_domain = Example.org\n",
         "t.ini:2: [inbound web] allow_trust_domain: "},
        {"[inbound web]\nallow_trust_domain = *.example.org\n",
         "t.ini:2: [inbound web] allow_trust_domain: "},
        {"[inbound web]\nallow_namespace = a/b\n", "t.ini:2: [inbound web] allow_namespace: "},
        {"[inbound web]\nallow_app_id = ns/app/x\n", "t.ini:2: [inbound web] allow_app_id: "
                                                     "expected APP or NAMESPACE/APP, got "
                                                     "'ns/app/x'"},
        {"[inbound web]\nallow_app_id = /app\n", "t.ini:2: [inbound web] allow_app_id: "},
        {"[inbound web]\nallow_app_id = ns/\n", "t.ini:2: [inbound web] allow_app_id: "},
        {"[inbound web]\nallow_app_id = ../app\n", "t.ini:2: [inbound web] allow_app_id: "},
        {"[inbound web]\nallow_spiffe_id = example.org/ns/a/b\n",
         "t.ini:2: [inbound web] allow_spiffe_id: 'example.org/ns/a/b' is not a SPIFFE ID: it "
         "must start with spiffe://"},
        {"[inbound web]\nallow_spiffe_id = spiffe://\n", "t.ini:2: [inbound web] allow_spiffe_id: "
                                                         "'spiffe://' is not a SPIFFE ID"},
        {"[inbound web]\nallow_spiffe_id = SPIFFE://td/x\n",
         "t.ini:2: [inbound web] allow_spiffe_id: 'SPIFFE://td/x' is not a SPIFFE ID"},
        /* required keys, reported at the section's line */
        {"[agent]\napp_id = a\n\n[inbound web]\ntarget = 127.0.0.1:8080\n",
         "t.ini:4: [inbound web] listen: missing: a listener needs listen (where to accept) and "
         "target (where to connect)"},
        {"[inbound a]\nlisten = 127.0.0.1:1\ntarget = 127.0.0.1:2\n[outbound b]\nlisten = "
         "127.0.0.1:3\nexpect_app_id = x\n",
         "t.ini:4: [outbound b] target: missing"},
        {"[inbound web]\n", "t.ini:1: [inbound web] listen: missing"},
        /* numbers and durations */
        {"[inbound web]\nmax_connections = 0\n",
         "t.ini:2: [inbound web] max_connections: '0' is not a whole number from 1 to 1000000"},
        {"[inbound web]\nmax_connections = 1000001\n", "t.ini:2: [inbound web] max_connections: "
                                                       "'1000001' is not a whole number"},
        {"[outbound api]\nmax_handshakes = 100001\n",
         "t.ini:2: [outbound api] max_handshakes: '100001' is not a whole number from 1 to 100000"},
        {"[outbound api]\nmax_handshakes = 1e3\n", "t.ini:2: [outbound api] max_handshakes: '1e3' "
                                                   "is not a whole number"},
        {"[inbound web]\nbuffer_size = 1023\n",
         "t.ini:2: [inbound web] buffer_size: '1023' is not a whole number from 1024 to 1048576"},
        {"[inbound web]\nbuffer_size = 1048577\n", "t.ini:2: [inbound web] buffer_size: '1048577' "
                                                   "is not a whole number"},
        {"[inbound web]\nbuffer_size = 16k\n", "t.ini:2: [inbound web] buffer_size: '16k' is not "
                                               "a whole number"},
        {"[inbound web]\nconnect_timeout = 0s\n", "t.ini:2: [inbound web] connect_timeout: 0s is "
                                                  "out of range: it must be from 1ms to 24h0m0s"},
        {"[inbound web]\nhandshake_timeout = 5\n", "t.ini:2: [inbound web] handshake_timeout: "
                                                   "invalid duration"},
        {"[outbound api]\nidle_timeout = -1s\n", "t.ini:2: [outbound api] idle_timeout: -1s is "
                                                 "out of range"},
        {"[outbound api]\nmax_lifetime = 25h\n", "t.ini:2: [outbound api] max_lifetime: 25h is "
                                                 "out of range: it must be from 0s to 24h0m0s"},
        {"[inbound web]\nproxy_protocol = maybe\n", "t.ini:2: [inbound web] proxy_protocol: "
                                                    "'maybe' is not a boolean"},
        {"[outbound api]\nallow_non_loopback = 2\n", "t.ini:2: [outbound api] allow_non_loopback: "
                                                     "'2' is not a boolean"},
        /* a bad key after good listeners still changes nothing */
        {"[inbound a]\nlisten = 127.0.0.1:1\ntarget = 127.0.0.1:2\n[agent]\nbogus = 1\n",
         "t.ini:5: [agent] bogus: unknown key"},
        /* transparent mode */
        {"[transparent out]\nlisten = 127.0.0.1:15001\n",
         "t.ini:1: [transparent out]: no map line and unmapped = deny would refuse every "
         "connection"},
        {"[transparent out]\nlisten = 127.0.0.1:15001\nunmapped = passthrough\n",
         "t.ini:1: [transparent out]: nothing to intercept"},
        {"[transparent out]\nlisten = 127.0.0.1:15001\nmap = 10.0.0.1/8 any\n",
         "t.ini:3: [transparent out] map: '10.0.0.1/8': bits are set past the /8 prefix"},
        {"[transparent out]\nlisten = 127.0.0.1:15001\nmap = 10.0.0.0/8 8080 allow\n",
         "t.ini:3: [transparent out] map: 'allow' is not an action"},
        {"[transparent out]\nlisten = 127.0.0.1:15001\nintercept = 10.0.0.0/8 http\n",
         "t.ini:3: [transparent out] intercept: 'http' is not a port"},
        {"[transparent out]\nlisten = 127.0.0.1:15001\nunmapped = allow\n",
         "t.ini:3: [transparent out] unmapped: 'allow' is not deny or passthrough"},
        {"[transparent out]\ntarget = 10.0.0.1:80\n",
         "t.ini:2: [transparent out] target: not valid in a transparent section (only [inbound "
         "NAME] or [outbound NAME] has it)"},
        {"[transparent out]\nmap = 10.0.0.0/8 any\n",
         "t.ini:1: [transparent out] listen: missing: a listener needs listen (where to "
         "accept)"},
        {"[transparent out]\nlisten = unix:/run/x.sock\nmap = 10.0.0.0/8 any\n",
         "t.ini:2: [transparent out] listen: 'unix:/run/x.sock': a transparent listener takes "
         "redirected TCP connections"},
        {"[proxy]\nmark = 1\n[transparent out]\nlisten = 0.0.0.0:15001\nmap = 10.0.0.0/8 any\n",
         "t.ini:4: [transparent out] listen: '0.0.0.0:15001' is not a loopback address"},
        {"[transparent out]\nlisten = 127.0.0.1:15001\nmap = 10.0.0.0/8 any\n",
         "t.ini:1: [transparent out]: picket's own connections would be redirected back to it: "
         "set [proxy] mark"},
        {"[proxy]\nmark = 0x1ffffffff\n", "t.ini:2: [proxy] mark: '0x1ffffffff' is not a "
                                          "firewall mark"},
        {"[proxy]\nmark = 0x\n", "t.ini:2: [proxy] mark: '0x' is not a firewall mark"},
        {"[proxy]\nmark = -1\n", "t.ini:2: [proxy] mark: '-1' is not a firewall mark"},
        {"[iptables]\nexclude_uid = root\n",
         "t.ini:2: [iptables] exclude_uid: 'root' is not a numeric uid from 0 to 4294967294"},
        {"[iptables]\nexclude_gid = 4294967295\n",
         "t.ini:2: [iptables] exclude_gid: '4294967295' is not a numeric gid"},
        {"[inbound in]\nlisten = 127.0.0.1:15006\ntarget = 127.0.0.1:80\nintercept_port = 80\n",
         "t.ini:4: [inbound in] intercept_port: the firewall redirects incoming connections to "
         "this host's own address"},
        {"[inbound in]\nintercept_port = 80 81\n",
         "t.ini:2: [inbound in] intercept_port: '80 81' is not a port"},
        {"[inbound in]\nintercept_port = 0\n", "t.ini:2: [inbound in] intercept_port: '0' is "
                                               "not a port"},
        {"[inbound in]\npermissive = maybe\n",
         "t.ini:2: [inbound in] permissive: 'maybe' is not a boolean"},
        {"[outbound o]\npermissive = true\n",
         "t.ini:2: [outbound o] permissive: not valid in an outbound section (only [inbound "
         "NAME] has it)"},
        {"[inbound in]\nmap = 10.0.0.0/8 any\n",
         "t.ini:2: [inbound in] map: not valid in an inbound section (only [transparent NAME] "
         "has it)"},
};

static void test_ini_errors(void **state)
{
    struct pk_err err;

    (void)state;
    for (size_t i = 0; i < sizeof(ini_errors) / sizeof(ini_errors[0]); i++) {
        struct pk_sidecar_config *into = pk_sidecar_config_new();
        const char *text = ini_errors[i].text;
        pk_err_clear(&err);
        int r = pk_sidecar_config_parse_ini(text, strlen(text), "t.ini", into, &err);
        if (r != PK_E_INVALID || strstr(err.msg, ini_errors[i].want) == NULL) {
            fail_msg("case %zu: rc %d, message \"%s\", want \"%s\"", i, r, err.msg,
                     ini_errors[i].want);
        }
        /* A bad file changes nothing, even the keys before the bad line. */
        assert_null(into->agent.app_id);
        assert_true(into->agent.renew_fraction == 0.5);
        assert_string_equal(into->agent.namespace_, "default");
        assert_int_equal(into->workers, 0);
        assert_null(into->listeners);
        assert_int_equal(into->n_listeners, 0);
        pk_sidecar_config_free(into);
    }
}

/* Mistakes that used to surface only when the proxy built its policies or bound its sockets:
 * found while reading the file, with the line, before anything is bound. */
#define IN_A "[inbound a]\ntarget = 127.0.0.1:9\nlisten = "
#define IN_B "\n[inbound b]\ntarget = 127.0.0.1:9\nlisten = "
static const struct {
    const char *text;
    const char *want;
} load_time_errors[] = {
        {"[inbound web]\nallow_spiffe_id = spiffe://x/**\n",
         "t.ini:2: [inbound web] allow_spiffe_id: '*' must stand for a whole path segment, not "
         "part of one ('**'): 'spiffe://x/**'"},
        {"[inbound web]\nallow_spiffe_id = spiffe://x/ns/a*\n",
         "t.ini:2: [inbound web] allow_spiffe_id: '*' must stand for a whole path segment"},
        {"[inbound web]\nallow_spiffe_id = spiffe://*.x/ns/a\n",
         "t.ini:2: [inbound web] allow_spiffe_id: '*' is not allowed in the trust domain"},
        {"[inbound web]\nallow_spiffe_id = spiffe://x/ns//a\n",
         "t.ini:2: [inbound web] allow_spiffe_id: "},
        {"[inbound web]\nallow_spiffe_id = spiffe://x/ns/*/a b\n",
         "t.ini:2: [inbound web] allow_spiffe_id: pattern 'spiffe://x/ns/*/a b'"},
        {IN_A "127.0.0.1:8443" IN_B "127.0.0.1:8443\n",
         "t.ini:6: [inbound b] listen: '127.0.0.1:8443' takes the connections of [inbound a] "
         "listen '127.0.0.1:8443' (line 3): give each listener its own address"},
        {IN_A "localhost:8443" IN_B "127.0.0.1:8443\n",
         "t.ini:6: [inbound b] listen: '127.0.0.1:8443' takes the connections of [inbound a] "
         "listen 'localhost:8443' (line 3)"},
        {IN_A "0.0.0.0:8443" IN_B "10.0.0.1:8443\n",
         "t.ini:6: [inbound b] listen: '10.0.0.1:8443' takes the connections of [inbound a] "
         "listen '0.0.0.0:8443' (line 3)"},
        {IN_A "[::1]:8443" IN_B "[::]:8443\n",
         "t.ini:6: [inbound b] listen: '[::]:8443' takes the connections of [inbound a] listen "
         "'[::1]:8443' (line 3)"},
        {"[inbound a]\ntarget = 127.0.0.1:9\nlisten = unix:/run/a.sock\n[outbound b]\n"
         "expect_app_id = x\ntarget = 127.0.0.1:9\nlisten = unix:/run/a.sock\n",
         "t.ini:7: [outbound b] listen: 'unix:/run/a.sock' takes the connections of [inbound a] "
         "listen 'unix:/run/a.sock' (line 3)"},
        {"[admin]\nlisten = 127.0.0.1:7000\n" IN_A "0.0.0.0:7000\n",
         "t.ini:5: [inbound a] listen: '0.0.0.0:7000' is the admin endpoint's address ([admin] "
         "listen '127.0.0.1:7000', line 2): give the listener another address"},
        {IN_A "127.0.0.1:7000\n[admin]\nlisten = localhost:7000\n",
         "t.ini:5: [admin] listen: 'localhost:7000' is the address of [inbound a] listen "
         "'127.0.0.1:7000' (line 3): give the admin endpoint another address"},
        {IN_A "127.0.0.1:9901\n",
         "t.ini:3: [inbound a] listen: '127.0.0.1:9901' is the admin endpoint's address ([admin] "
         "listen '127.0.0.1:9901', its default)"},
};

static void test_load_time_errors(void **state)
{
    struct pk_err err;

    (void)state;
    for (size_t i = 0; i < PK_ARRAY_LEN(load_time_errors); i++) {
        struct pk_sidecar_config *into = pk_sidecar_config_new();
        const char *text = load_time_errors[i].text;
        pk_err_clear(&err);
        int r = pk_sidecar_config_parse_ini(text, strlen(text), "t.ini", into, &err);
        if (r != PK_E_INVALID || strstr(err.msg, load_time_errors[i].want) == NULL) {
            fail_msg("case %zu: rc %d, message \"%s\", want \"%s\"", i, r, err.msg,
                     load_time_errors[i].want);
        }
        assert_null(into->listeners);
        pk_sidecar_config_free(into);
    }
}

/* Listeners that share a port but not the connections are fine. */
static void test_listen_addresses_apart(void **state)
{
    static const char *const texts[] = {
            IN_A "127.0.0.1:8443" IN_B "127.0.0.2:8443\n",
            IN_A "0.0.0.0:8443" IN_B "[::]:8443\n",
            IN_A "127.0.0.1:8443" IN_B "127.0.0.1:8444\n",
            IN_A "unix:/run/a.sock" IN_B "unix:/run/b.sock\n",
            "[admin]\nlisten = off\n" IN_A "127.0.0.1:9901\n",
            "[admin]\nlisten = 127.0.0.1:0\n" IN_A "127.0.0.1:9901\n",
            "[admin]\nlisten = unix:/run/admin.sock\n" IN_A "127.0.0.1:9901\n",
            "[inbound web]\ntarget = 127.0.0.1:9\nlisten = 127.0.0.1:1\n"
            "allow_spiffe_id = spiffe://x/ns/*/a\nallow_spiffe_id = spiffe://x/*/*/*\n",
    };
    struct pk_err err;

    (void)state;
    for (size_t i = 0; i < PK_ARRAY_LEN(texts); i++) {
        struct pk_sidecar_config *into = pk_sidecar_config_new();
        pk_err_clear(&err);
        if (pk_sidecar_config_parse_ini(texts[i], strlen(texts[i]), "t.ini", into, &err) != 0) {
            fail_msg("case %zu: %s", i, err.msg);
        }
        pk_sidecar_config_free(into);
    }
}
#undef IN_A
#undef IN_B

/* Builds "[agent]\nexport_dir = /d\nexport_command = xxx...", whose third line has len bytes. */
static char *long_line_ini(size_t len, const char *eol)
{
    static const char head[] = "[agent]\nexport_dir = /d\n";
    static const char key[] = "export_command = ";
    size_t n = strlen(head) + len + strlen(eol) + 1;
    char *text = malloc(n);

    assert_non_null(text);
    assert_true(len > strlen(key));
    strcpy(text, head);
    strcat(text, key);
    memset(text + strlen(text), 'x', len - strlen(key));
    strcpy(text + strlen(head) + len, eol);
    assert_int_equal(strlen(text) + 1, n);
    return text;
}

static void test_long_lines(void **state)
{
    struct pk_sidecar_config *cfg;
    struct pk_err err;
    char *text;

    (void)state;
    /* The longest line inih keeps whole, with LF, CRLF and at the end of the text. */
    static const char *const eols[] = {"\n", "\r\n", ""};
    for (size_t i = 0; i < 3; i++) {
        cfg = pk_sidecar_config_new();
        text = long_line_ini(PK_SIDECAR_CONFIG_MAX_LINE, eols[i]);
        assert_int_equal(pk_sidecar_config_parse_ini(text, strlen(text), "t.ini", cfg, &err), 0);
        assert_int_equal(strlen(cfg->agent.export_command), PK_SIDECAR_CONFIG_MAX_LINE - 17);
        free(text);
        pk_sidecar_config_free(cfg);

        cfg = pk_sidecar_config_new();
        text = long_line_ini(PK_SIDECAR_CONFIG_MAX_LINE + 1, eols[i]);
        assert_int_equal(pk_sidecar_config_parse_ini(text, strlen(text), "t.ini", cfg, &err),
                         PK_E_INVALID);
        assert_contains(err.msg, "t.ini:3: line is too long (198 bytes; at most 197)");
        assert_null(cfg->agent.export_command);
        free(text);
        pk_sidecar_config_free(cfg);
    }

    /* 250 bytes: inih would have cut the value at 198 and parsed the rest as line 4. */
    text = long_line_ini(250, "\n");
    cfg = pk_sidecar_config_new();
    assert_int_equal(pk_sidecar_config_parse_ini(text, strlen(text), "big.ini", cfg, &err),
                     PK_E_INVALID);
    assert_contains(err.msg, "big.ini:3: line is too long (250 bytes; at most 197)");
    pk_sidecar_config_free(cfg);

    /* Through load, the message names the file. */
    const char *flags[] = {"--app-id", "a", "--sentry-address", "h:1", NULL};
    assert_int_equal(load(text, base_env, flags, &cfg, &err), PK_E_INVALID);
    assert_contains(err.msg, ":3: line is too long");
    assert_contains(err.msg, "picket-config-");
    free(text);

    /* A long comment is still a long line. */
    char comment[300];
    memset(comment, ';', 250);
    strcpy(comment + 250, "\n[agent]\n");
    cfg = pk_sidecar_config_new();
    assert_int_equal(pk_sidecar_config_parse_ini(comment, strlen(comment), "t.ini", cfg, &err),
                     PK_E_INVALID);
    assert_contains(err.msg, "t.ini:1: line is too long");
    pk_sidecar_config_free(cfg);
}

static void test_ini_bytes(void **state)
{
    static const char nul[] = "[agent]\napp_id = a\0b\n";
    static const char crlf_bom[] = "\xEF\xBB\xBF[agent]\r\napp_id = crlf\r\n\r\n[log]\r\n"
                                   "json = On\r\n";
    struct pk_sidecar_config *cfg = pk_sidecar_config_new();
    struct pk_err err;

    (void)state;
    assert_int_equal(pk_sidecar_config_parse_ini(nul, sizeof(nul) - 1, "t.ini", cfg, &err),
                     PK_E_INVALID);
    assert_contains(err.msg, "t.ini:2: NUL byte");
    assert_null(cfg->agent.app_id);

    assert_int_equal(pk_sidecar_config_parse_ini(crlf_bom, strlen(crlf_bom), "t.ini", cfg, &err),
                     0);
    assert_string_equal(cfg->agent.app_id, "crlf");
    assert_true(cfg->log_json);

    /* Not NUL-terminated: only len bytes are read. */
    static const char cut[] = "[agent]\nnamespace = abcdef";
    assert_int_equal(pk_sidecar_config_parse_ini(cut, sizeof(cut) - 4, "t.ini", cfg, &err), 0);
    assert_string_equal(cfg->agent.namespace_, "abc");

    /* Nothing at all. */
    assert_int_equal(pk_sidecar_config_parse_ini(NULL, 0, "t.ini", cfg, &err), 0);
    pk_sidecar_config_free(cfg);
}

static void test_ini_values(void **state)
{
    static const struct {
        const char *text;
        bool value;
    } bools[] = {
            {"true", true}, {"TRUE", true}, {"yes", true},    {"Yes", true},
            {"on", true},   {"1", true},    {"false", false}, {"False", false},
            {"no", false},  {"NO", false},  {"off", false},   {"0", false},
    };
    static const struct {
        const char *text;
        int number;
    } sigs[] = {{"HUP", SIGHUP},      {"SIGHUP", SIGHUP},   {"usr1", SIGUSR1},
                {"SIGUSR2", SIGUSR2}, {"sigterm", SIGTERM}, {"WINCH", SIGWINCH}};
    static const char *const listens[] = {"off", "unix:/run/picket/admin.sock", "[::1]:9901",
                                          "localhost:0", "0.0.0.0:9901"};
    char text[200];
    struct pk_err err;

    (void)state;
    for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
        struct pk_sidecar_config *cfg = pk_sidecar_config_new();
        cfg->agent.allow_tls12 = !bools[i].value;
        snprintf(text, sizeof(text), "[agent]\nallow_tls12 = %s\n", bools[i].text);
        assert_int_equal(pk_sidecar_config_parse_ini(text, strlen(text), "t.ini", cfg, &err), 0);
        assert_true(cfg->agent.allow_tls12 == bools[i].value);
        pk_sidecar_config_free(cfg);
    }
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        struct pk_sidecar_config *cfg = pk_sidecar_config_new();
        snprintf(text, sizeof(text),
                 "[agent]\nexport_dir = /d\nexport_pid_file = /p\nexport_signal = %s\n",
                 sigs[i].text);
        assert_int_equal(pk_sidecar_config_parse_ini(text, strlen(text), "t.ini", cfg, &err), 0);
        assert_int_equal(cfg->agent.export_signal, sigs[i].number);
        pk_sidecar_config_free(cfg);
    }
    for (size_t i = 0; i < sizeof(listens) / sizeof(listens[0]); i++) {
        struct pk_sidecar_config *cfg = pk_sidecar_config_new();
        snprintf(text, sizeof(text), "[admin]\nlisten = %s\n", listens[i]);
        assert_int_equal(pk_sidecar_config_parse_ini(text, strlen(text), "t.ini", cfg, &err), 0);
        assert_string_equal(cfg->admin_listen, listens[i]);
        pk_sidecar_config_free(cfg);
    }

    /* An empty listen value turns the endpoint off. */
    struct pk_sidecar_config *cfg = pk_sidecar_config_new();
    assert_int_equal(pk_sidecar_config_parse_ini("[admin]\nlisten =\n", 17, "t.ini", cfg, &err), 0);
    assert_string_equal(cfg->admin_listen, "");

    /* Edges of the ranges, and a file that only narrows the jitter so renew_at may move. */
    static const char edges[] = "[agent]\nrenew_jitter = 0\nrenew_at = 0.95\nretry_initial = "
                                "2m\nretry_max = 2m\ninitial_attempts = 1000000\n";
    assert_int_equal(pk_sidecar_config_parse_ini(edges, strlen(edges), "t.ini", cfg, &err), 0);
    assert_true(cfg->agent.renew_jitter == 0);
    assert_true(cfg->agent.renew_fraction == 0.95);
    assert_true(cfg->agent.retry_initial == 120 && cfg->agent.retry_max == 120);
    assert_int_equal(cfg->agent.initial_attempts, 1000000);

    /* Rules between keys also see the values already in `into`: jitter 0 from above. */
    static const char narrow[] = "[agent]\nrenew_at = 0.05\n";
    assert_int_equal(pk_sidecar_config_parse_ini(narrow, strlen(narrow), "t.ini", cfg, &err), 0);
    assert_true(cfg->agent.renew_fraction == 0.05);

    /* Comments and blank lines anywhere; inline ` ;' comments; `key: value'. */
    static const char comments[] = "# top\n; also\n\n[agent] ; the agent\n  ; indented comment\n"
                                   "namespace: other ; inline\nexport_dir = /a;b\n";
    assert_int_equal(pk_sidecar_config_parse_ini(comments, strlen(comments), "t.ini", cfg, &err),
                     0);
    assert_string_equal(cfg->agent.namespace_, "other");
    assert_string_equal(cfg->agent.export_dir, "/a;b");
    pk_sidecar_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_defaults),
            cmocka_unit_test(test_full_file),
            cmocka_unit_test(test_listeners),
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
            cmocka_unit_test(test_load_errors),
            cmocka_unit_test(test_missing_config_file),
            cmocka_unit_test(test_ini_errors),
            cmocka_unit_test(test_load_time_errors),
            cmocka_unit_test(test_listen_addresses_apart),
            cmocka_unit_test(test_long_lines),
            cmocka_unit_test(test_ini_bytes),
            cmocka_unit_test(test_ini_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
