/* SPDX-License-Identifier: Apache-2.0 */
/* picket: daprd's --config file, a Dapr `Configuration` YAML, as `picket run --config` reads it.
 *
 * daprd takes its configuration with --config; picket's own file is picket.ini, given with
 * -c/--config-file. The two never share a flag, whatever the file holds: `--config` is always a
 * Configuration, and a file that is not one (an INI, say) is an error that says where
 * picket.ini goes.
 *
 * What picket reads from it:
 *   - `kind`, which must be `Configuration`;
 *   - `spec.mtls.enabled`: picket is mTLS-only, so `false` is an error that stops picket run
 *     rather than a sidecar that would not do what the file says; true or absent is fine.
 * Everything else under spec (tracing, metric, accessControl, features, ...) does not concern an
 * mTLS proxy and is ignored, with one log line naming it. That includes
 * spec.accessControl.trustDomain: daprd 1.14+ does not send it to Sentry either (Sentry in
 * Kubernetes mode reads it from the pod's Configuration itself); the trust domain to request is
 * [agent] trust_domain or --trust-domain.
 *
 * In Kubernetes mode daprd's --config is the name of a Configuration resource, not a file; picket
 * does not read resources, and run says so and goes on. */
#ifndef PK_SIDECAR_DAPRD_CONFIG_H
#define PK_SIDECAR_DAPRD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "common/compiler.h"
#include "common/err.h"

/* The largest file read. */
#define PK_DAPRD_CONFIG_MAX_BYTES (1024u * 1024u)

struct pk_daprd_config {
    char ignored[512]; /* "spec.tracing, spec.metric": the keys read and ignored; "" if none */
};

/* Parse len bytes of YAML (borrowed) named name (borrowed; used in messages) into out. 0, or
 * PK_E_INVALID with err naming name:line:column and what is wrong. Pure. */
int pk_daprd_config_parse(const uint8_t *yaml, size_t len, const char *name,
                          struct pk_daprd_config *out, struct pk_err *err) PK_MUST_USE;

/* Read the file at path and parse it. PK_E_NOTFOUND when it does not exist; the other errors of
 * pk_daprd_config_parse and of reading. Blocks on the read. */
int pk_daprd_config_load(const char *path, struct pk_daprd_config *out, struct pk_err *err)
        PK_MUST_USE;

#endif
