/* SPDX-License-Identifier: Apache-2.0 */
/* picket: fuzz target for the Sentry Configuration YAML.
 *
 * Targets: pk_sentry_config_parse and pk_sentry_config_free (and through them libyaml's document
 * loader and pk_duration_parse). Checks that a success yields a configuration within the rules
 * (positive TTL, non-negative skew, a source when jwks is on) and a failure yields a message. */
#include <stdlib.h>

#include "common/err.h"
#include "common/log.h"
#include "fuzz.h"
#include "sentry/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    struct pk_sentry_config *cfg = NULL;
    struct pk_err err;
    int rc;

    if (!quiet) {
        /* Unknown keys in spec.mtls log a warning; keep the fuzzer's output readable. */
        pk_log_setup(PK_LOG_LEVEL_FATAL, false);
        quiet = 1;
    }
    pk_err_clear(&err);
    rc = pk_sentry_config_parse(data, size, "fuzz.yaml", &cfg, &err);
    if (rc == 0) {
        if (cfg == NULL || cfg->ttl_ns <= 0 || cfg->skew_ns < 0 ||
            cfg->control_plane_trust_domain == NULL ||
            (cfg->jwks_enabled && (cfg->jwks.source == NULL || cfg->jwks.source[0] == '\0'))) {
            abort();
        }
    } else if (cfg != NULL || err.msg[0] == '\0' || (rc != PK_E_INVALID && rc != PK_E_TOOBIG)) {
        abort();
    }
    pk_sentry_config_free(cfg);
    return 0;
}
