/* SPDX-License-Identifier: Apache-2.0 */
/* picket: which token the agent sends to Sentry, and with which validator, as daprd 1.14+ decides
 * (pkg/security/token, GetSentryToken):
 *   1. DAPR_SENTRY_TOKEN_FILE (or [sentry] token_file) is set: that file; the validator is
 *      KUBERNETES in Kubernetes mode, else JWKS.
 *   2. Else, in Kubernetes mode: the projected token SECRETS/dapr.io/sentrytoken/token, or, when
 *      that file does not exist, the legacy service-account token
 *      SECRETS/kubernetes.io/serviceaccount/token (with a warning); the validator is KUBERNETES.
 *   3. Else no token and the validator UNKNOWN: Sentry applies its default.
 * SECRETS is /var/run/secrets; PICKET_TEST_SECRETS_DIR replaces it (for tests only).
 *
 * The token is read again for every request: a projected token rotates underneath us. Its bytes
 * live only in secret buffers and are never logged. */
#ifndef PK_AGENT_TOKEN_H
#define PK_AGENT_TOKEN_H

#include "agent/config.h"
#include "common/buf.h"
#include "common/compiler.h"
#include "common/err.h"

/* The largest token read. */
#define PK_TOKEN_MAX (64u * 1024u)

/* Where the projected and legacy tokens live, below the secrets directory. */
#define PK_TOKEN_PROJECTED_PATH "dapr.io/sentrytoken/token"
#define PK_TOKEN_LEGACY_PATH    "kubernetes.io/serviceaccount/token"
#define PK_TOKEN_SECRETS_DIR    "/var/run/secrets"

/* The validator that goes with cfg's token (the SignCertificateRequest enum value). */
int pk_token_validator(const struct pk_agent_config *cfg);

/* Read the token cfg calls for into token (a secret buffer of at least PK_TOKEN_MAX; appended,
 * with trailing blanks and line ends removed). No token (rule 3) leaves token empty and returns
 * 0. Errors name the file and where its name came from: PK_E_NOTFOUND, PK_E_INVALID (an empty
 * file, not a regular file), PK_E_TOOBIG or -errno. Blocks only on reading a local file. */
int pk_token_read(const struct pk_agent_config *cfg, struct pk_buf *token, struct pk_err *err)
        PK_MUST_USE;

#endif
