/* SPDX-License-Identifier: Apache-2.0 */
/* picket: fuzz target for picket.ini.
 *
 * Targets: pk_sidecar_config_parse_ini (and through it inih's ini_parse_stream, pk_duration_parse,
 * pk_spiffe_parse, pk_spiffe_check_segment and pk_spiffe_check_trust_domain), pk_sidecar_config_new
 * and pk_sidecar_config_free. Checks that a success leaves every value inside its documented range
 * and every listener complete (listen, target, a unique NAME, exactly one server identity on
 * outbound, only its own kind's keys, loopback unless allowed), and that a failure leaves the
 * configuration untouched and says where, as "fuzz.ini:LINE: ...", and never comes from inih
 * alone (config.c's own line checks must catch every line inih rejects). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "fuzz.h"
#include "sidecar/config.h"

static void check_string(const char *s)
{
    /* Values come from single lines: none can be empty or longer than a line. */
    if (s == NULL || s[0] == '\0' || strlen(s) > PK_SIDECAR_CONFIG_MAX_LINE) {
        abort();
    }
}

static void check_list(char *const *list, size_t n)
{
    if ((n == 0) != (list == NULL)) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        check_string(list[i]);
    }
}

/* An independent oracle for the addresses an outbound listen may have without
 * allow_non_loopback: unix:, localhost, 127.0.0.0/8 and ::1. */
static bool is_loopback(const char *listen)
{
    const char *colon = strrchr(listen, ':');
    char host[64];
    struct in6_addr a6;
    struct in_addr a4;
    size_t len;

    if (strncmp(listen, "unix:", 5) == 0) {
        return true;
    }
    if (colon == NULL || (size_t)(colon - listen) >= sizeof(host)) {
        return false;
    }
    len = (size_t)(colon - listen);
    if (listen[0] == '[' && len >= 2 && listen[len - 1] == ']') {
        memcpy(host, listen + 1, len - 2);
        host[len - 2] = '\0';
        return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
    }
    memcpy(host, listen, len);
    host[len] = '\0';
    if (strcmp(host, "localhost") == 0) {
        return true;
    }
    return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

static void check_listener(const struct pk_listener_config *lc)
{
    bool inbound = lc->kind == PK_LISTENER_INBOUND;
    size_t n_rules = lc->n_allow_trust_domain + lc->n_allow_namespace + lc->n_allow_app_id +
                     lc->n_allow_spiffe_id;

    if (lc->kind != PK_LISTENER_INBOUND && lc->kind != PK_LISTENER_OUTBOUND) {
        abort();
    }
    check_string(lc->name);
    if (strlen(lc->name) > PK_SIDECAR_CONFIG_MAX_NAME ||
        strspn(lc->name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
                strlen(lc->name)) {
        abort();
    }
    check_string(lc->listen);
    check_string(lc->target);
    check_list(lc->allow_trust_domain, lc->n_allow_trust_domain);
    check_list(lc->allow_namespace, lc->n_allow_namespace);
    check_list(lc->allow_app_id, lc->n_allow_app_id);
    check_list(lc->allow_spiffe_id, lc->n_allow_spiffe_id);
    for (size_t i = 0; i < lc->n_allow_spiffe_id; i++) {
        if (strncmp(lc->allow_spiffe_id[i], "spiffe://", 9) != 0) {
            abort();
        }
    }
    if (lc->max_connections < 1 || lc->max_connections > 1000000 || lc->max_handshakes < 1 ||
        lc->max_handshakes > 100000 || lc->buffer_size < 1024 || lc->buffer_size > 1048576 ||
        !(lc->connect_timeout > 0) || !(lc->handshake_timeout > 0) || lc->idle_timeout < 0 ||
        lc->max_lifetime < 0 || lc->connect_timeout > 86400 || lc->handshake_timeout > 86400 ||
        lc->idle_timeout > 86400 || lc->max_lifetime > 86400) {
        abort();
    }
    if (inbound) {
        /* No outbound key in an inbound listener. */
        if (lc->expect_spiffe_id != NULL || lc->expect_app_id != NULL ||
            lc->expect_namespace != NULL || lc->server_name != NULL || lc->allow_non_loopback) {
            abort();
        }
        return;
    }
    /* Exactly one server identity, and no inbound key. */
    if ((lc->expect_spiffe_id != NULL) == (lc->expect_app_id != NULL) ||
        (lc->expect_namespace != NULL && lc->expect_app_id == NULL) || n_rules != 0 ||
        lc->proxy_protocol) {
        abort();
    }
    if (lc->expect_spiffe_id != NULL && strncmp(lc->expect_spiffe_id, "spiffe://", 9) != 0) {
        abort();
    }
    if (!lc->allow_non_loopback && !is_loopback(lc->listen)) {
        abort();
    }
}

static void check_listeners(const struct pk_sidecar_config *cfg)
{
    if (cfg->n_listeners > PK_SIDECAR_CONFIG_MAX_LISTENERS ||
        (cfg->n_listeners == 0) != (cfg->listeners == NULL)) {
        abort();
    }
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        check_listener(&cfg->listeners[i]);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cfg->listeners[i].name, cfg->listeners[j].name) == 0) {
                abort();
            }
        }
    }
    if (cfg->workers < 0 || cfg->workers > 256 || cfg->shutdown_timeout < 0 ||
        cfg->shutdown_timeout > 86400) {
        abort();
    }
}

static void check_ranges(const struct pk_sidecar_config *cfg)
{
    if (cfg->agent.renew_fraction < 0.05 || cfg->agent.renew_fraction > 0.95 ||
        cfg->agent.renew_jitter < 0 || cfg->agent.renew_jitter > 0.25 ||
        cfg->agent.renew_fraction - cfg->agent.renew_jitter <= 0 ||
        cfg->agent.renew_fraction + cfg->agent.renew_jitter >= 1) {
        abort();
    }
    if (!(cfg->agent.retry_initial > 0) || cfg->agent.retry_max < cfg->agent.retry_initial ||
        !(cfg->agent.request_timeout > 0) || cfg->agent.initial_attempts < 0) {
        abort();
    }
    if (cfg->agent.namespace_ == NULL || cfg->agent.namespace_[0] == '\0' ||
        cfg->agent.control_plane_trust_domain == NULL ||
        cfg->agent.control_plane_namespace == NULL || cfg->admin_listen == NULL) {
        abort();
    }
    if ((cfg->agent.export_command != NULL || cfg->agent.export_pid_file != NULL) &&
        cfg->agent.export_dir == NULL) {
        abort();
    }
    /* Values come from single lines: none can be longer than a line. */
    const char *const strings[] = {cfg->agent.app_id,         cfg->agent.namespace_,
                                   cfg->agent.trust_domain,   cfg->agent.cert_file,
                                   cfg->agent.key_file,       cfg->agent.export_dir,
                                   cfg->agent.export_command, cfg->agent.export_pid_file,
                                   cfg->agent.sentry_address, cfg->agent.trust_anchors_file,
                                   cfg->agent.token_file,     cfg->admin_listen};
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        if (strings[i] != NULL && strlen(strings[i]) > PK_SIDECAR_CONFIG_MAX_LINE) {
            abort();
        }
    }
    check_listeners(cfg);
}

/* config.c's message for an error that inih found and its own line checks did not:
 * "fuzz.ini:LINE: syntax error". Those checks must agree with inih, so this never happens. */
static bool from_inih_alone(const char *msg)
{
    const char *s = msg + 9;

    while (*s >= '0' && *s <= '9') {
        s++;
    }
    return s > msg + 9 && strcmp(s, ": syntax error") == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    struct pk_sidecar_config *cfg = pk_sidecar_config_new();
    struct pk_err err;
    int rc;

    if (!quiet) {
        pk_log_setup(PK_LOG_LEVEL_FATAL, false);
        quiet = 1;
    }
    pk_err_clear(&err);
    rc = pk_sidecar_config_parse_ini((const char *)data, size, "fuzz.ini", cfg, &err);
    if (rc == 0) {
        check_ranges(cfg);
    } else if (rc != PK_E_INVALID || strncmp(err.msg, "fuzz.ini:", 9) != 0 ||
               from_inih_alone(err.msg) || cfg->agent.app_id != NULL ||
               cfg->agent.renew_fraction != 0.5 || strcmp(cfg->agent.namespace_, "default") != 0 ||
               cfg->listeners != NULL || cfg->n_listeners != 0 || cfg->workers != 0) {
        abort();
    }
    pk_sidecar_config_free(cfg);
    return 0;
}
