/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the Sentry token, chosen and read as daprd does. */
#include "agent/token.h"

#include <stdio.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "sentry.pb-c.h"

int pk_token_validator(const struct pk_agent_config *cfg)
{
    if (cfg->mode == PK_AGENT_MODE_KUBERNETES) {
        return DAPR__PROTO__SENTRY__V1__SIGN_CERTIFICATE_REQUEST__TOKEN_VALIDATOR__KUBERNETES;
    }
    if (cfg->token_file != NULL) {
        return DAPR__PROTO__SENTRY__V1__SIGN_CERTIFICATE_REQUEST__TOKEN_VALIDATOR__JWKS;
    }
    return DAPR__PROTO__SENTRY__V1__SIGN_CERTIFICATE_REQUEST__TOKEN_VALIDATOR__UNKNOWN;
}

/* Read path into token and drop the line end an editor or `kubectl create secret` leaves. */
static int read_token_file(const char *path, const char *origin, struct pk_buf *token,
                           struct pk_err *err)
{
    int r = pk_fs_read_file(path, PK_TOKEN_MAX, token, err);

    if (r != 0) {
        return pk_err_prefix(err, r, "Sentry token (%s)", origin);
    }
    while (token->len > 0 &&
           (token->data[token->len - 1] == '\n' || token->data[token->len - 1] == '\r' ||
            token->data[token->len - 1] == ' ')) {
        pk_buf_truncate(token, token->len - 1);
    }
    if (token->len == 0) {
        return pk_err_set(err, PK_E_INVALID, "Sentry token (%s): %s: the file is empty", origin,
                          path);
    }
    return 0;
}

int pk_token_read(const struct pk_agent_config *cfg, struct pk_buf *token, struct pk_err *err)
{
    const char *dir = cfg->secrets_dir != NULL ? cfg->secrets_dir : PK_TOKEN_SECRETS_DIR;
    char projected[4096], legacy[4096];
    int r;

    if (cfg->token_file != NULL) {
        return read_token_file(cfg->token_file,
                               cfg->token_file_from_env ? "DAPR_SENTRY_TOKEN_FILE"
                                                        : "[sentry] token_file",
                               token, err);
    }
    if (cfg->mode != PK_AGENT_MODE_KUBERNETES) {
        return 0;
    }
    if ((size_t)snprintf(projected, sizeof(projected), "%s/%s", dir, PK_TOKEN_PROJECTED_PATH) >=
                sizeof(projected) ||
        (size_t)snprintf(legacy, sizeof(legacy), "%s/%s", dir, PK_TOKEN_LEGACY_PATH) >=
                sizeof(legacy)) {
        return pk_err_set(err, PK_E_INVALID, "the secrets directory name is too long");
    }
    r = read_token_file(projected,
                        "Kubernetes mode, DAPR_SENTRY_TOKEN_FILE unset: the projected token", token,
                        err);
    if (r != PK_E_NOTFOUND) {
        return r;
    }
    /* As daprd: a pod without the projected volume (an older injector) still has its
     * service-account token, which only an older Sentry accepts. */
    pk_err_clear(err);
    {
        char origin[4200];
        snprintf(origin, sizeof(origin),
                 "Kubernetes mode, DAPR_SENTRY_TOKEN_FILE unset, no projected token %s: the legacy "
                 "service-account token",
                 projected);
        r = read_token_file(legacy, origin, token, err);
    }
    if (r == 0) {
        PK_LOG_WARN("sentry token legacy path=%s missing=%s: Dapr 1.12+ Sentry refuses this "
                    "token; mount the dapr-identity-token volume or set DAPR_SENTRY_TOKEN_FILE",
                    legacy, projected);
    }
    return r;
}
