/* SPDX-License-Identifier: Apache-2.0 */
/* picket: fuzz target for picket.ini.
 *
 * Targets: pk_agent_config_parse_ini (and through it inih's ini_parse_stream, pk_duration_parse,
 * pk_spiffe_check_segment and pk_spiffe_check_trust_domain), pk_agent_config_new and
 * pk_agent_config_free. Checks that a success leaves every value inside its documented range and
 * that a failure leaves the configuration untouched and says where, as "fuzz.ini:LINE: ...", and
 * never comes from inih alone (config.c's own line checks must catch every line inih rejects). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "agent/config.h"
#include "common/err.h"
#include "common/log.h"
#include "fuzz.h"

static void check_ranges(const struct pk_agent_config *cfg)
{
    if (cfg->renew_fraction < 0.05 || cfg->renew_fraction > 0.95 || cfg->renew_jitter < 0 ||
        cfg->renew_jitter > 0.25 || cfg->renew_fraction - cfg->renew_jitter <= 0 ||
        cfg->renew_fraction + cfg->renew_jitter >= 1) {
        abort();
    }
    if (!(cfg->retry_initial > 0) || cfg->retry_max < cfg->retry_initial ||
        !(cfg->request_timeout > 0) || cfg->initial_attempts < 0) {
        abort();
    }
    if (cfg->namespace_ == NULL || cfg->namespace_[0] == '\0' ||
        cfg->control_plane_trust_domain == NULL || cfg->control_plane_namespace == NULL ||
        cfg->admin_listen == NULL) {
        abort();
    }
    if ((cfg->export_command != NULL || cfg->export_pid_file != NULL) && cfg->export_dir == NULL) {
        abort();
    }
    /* Values come from single lines: none can be longer than a line. */
    const char *const strings[] = {
            cfg->app_id,         cfg->namespace_,         cfg->trust_domain,   cfg->cert_file,
            cfg->key_file,       cfg->export_dir,         cfg->export_command, cfg->export_pid_file,
            cfg->sentry_address, cfg->trust_anchors_file, cfg->token_file,     cfg->admin_listen};
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        if (strings[i] != NULL && strlen(strings[i]) > PK_AGENT_CONFIG_MAX_LINE) {
            abort();
        }
    }
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
    struct pk_agent_config *cfg = pk_agent_config_new();
    struct pk_err err;
    int rc;

    if (!quiet) {
        pk_log_setup(PK_LOG_LEVEL_FATAL, false);
        quiet = 1;
    }
    pk_err_clear(&err);
    rc = pk_agent_config_parse_ini((const char *)data, size, "fuzz.ini", cfg, &err);
    if (rc == 0) {
        check_ranges(cfg);
    } else if (rc != PK_E_INVALID || strncmp(err.msg, "fuzz.ini:", 9) != 0 ||
               from_inih_alone(err.msg) || cfg->app_id != NULL || cfg->renew_fraction != 0.5 ||
               strcmp(cfg->namespace_, "default") != 0) {
        abort();
    }
    pk_agent_config_free(cfg);
    return 0;
}
