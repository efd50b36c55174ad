/* SPDX-License-Identifier: Apache-2.0 */
/* picket: Dapr's `Configuration` YAML as `picket sentry --config` reads it.
 *
 * Read from the file: `spec.mtls.workloadCertTTL` (Go duration, default 24h),
 * `spec.mtls.allowedClockSkew` (default 15m), `spec.mtls.controlPlaneTrustDomain`,
 * `spec.mtls.enabled`, `spec.mtls.sentryAddress` and `spec.mtls.tokenValidators`, a list of
 * `{name, options}` in which only `jwks` may appear (Sentry always has its kubernetes or insecure
 * validator built in, so naming those is an error, as in Dapr). JWKS options: `source`
 * (required), `caCertificate`, `minRefreshInterval`, `requestTimeout`.
 *
 * Everything else (apiVersion, kind, metadata, other spec sections such as tracing or metric) is
 * accepted and ignored, as Dapr does; an unknown key inside spec.mtls is ignored with a warning.
 * Key names match case-insensitively, because Dapr decodes the YAML through encoding/json. An
 * empty string or a null value means "use the default", as in Dapr.
 *
 * Stricter than Dapr: a non-positive workloadCertTTL, a negative allowedClockSkew, a repeated key,
 * a list or mapping where a scalar belongs, a quoted or misspelt boolean, an unknown option of
 * the jwks validator and a second YAML document are errors. Every error names the file, line and
 * column and the key path, e.g.
 *   config.yaml:7:22: spec.mtls.workloadCertTTL: invalid duration "24x": unknown unit "x"
 *
 * The control-plane trust domain is parsed and kept, but Dapr's Sentry ignores it (its
 * --trust-domain flag always wins), and so should the caller. */
#ifndef PK_SENTRY_CONFIG_H
#define PK_SENTRY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/compiler.h"
#include "common/duration.h"
#include "common/err.h"

#define PK_SENTRY_DEFAULT_WORKLOAD_CERT_TTL          (24 * PK_DURATION_HOUR)
#define PK_SENTRY_DEFAULT_ALLOWED_CLOCK_SKEW         (15 * PK_DURATION_MINUTE)
#define PK_SENTRY_DEFAULT_CONTROL_PLANE_TRUST_DOMAIN "cluster.local"
#define PK_SENTRY_CONFIG_MAX_BYTES                   (1024u * 1024u)

/* Options of the jwks token validator, when one is configured. */
struct pk_sentry_jwks_config {
    char *source;                    /* URL, file path, inline JSON or base64 JSON; never NULL */
    char *ca_certificate;            /* PEM or path for an https source; NULL when not given */
    int64_t min_refresh_interval_ns; /* 0 when not given */
    int64_t request_timeout_ns;      /* 0 when not given */
};

/* A loaded configuration. Callers read the fields; only this module writes them. All strings are
 * owned by the struct and freed by pk_sentry_config_free. */
struct pk_sentry_config {
    int64_t ttl_ns;                   /* spec.mtls.workloadCertTTL, > 0 */
    int64_t skew_ns;                  /* spec.mtls.allowedClockSkew, >= 0 */
    char *control_plane_trust_domain; /* never NULL; "cluster.local" unless given */
    bool control_plane_trust_domain_set;
    bool mtls_enabled;                 /* spec.mtls.enabled, default true; Sentry does not use it */
    char *sentry_address;              /* spec.mtls.sentryAddress, NULL when absent */
    bool jwks_enabled;                 /* a jwks entry is in tokenValidators */
    struct pk_sentry_jwks_config jwks; /* all zero unless jwks_enabled */
};

/* A configuration holding the defaults (what Sentry uses when the file sets nothing). Never
 * fails. Free with pk_sentry_config_free. */
struct pk_sentry_config *pk_sentry_config_new(void) __attribute__((returns_nonnull));

/* Parse len bytes of YAML (borrowed; need not be NUL-terminated, at most
 * PK_SENTRY_CONFIG_MAX_BYTES). name (borrowed) names the input in messages, e.g. the file path.
 * Empty input, or input with only comments, gives the defaults. On success *out takes a new
 * configuration. PK_E_INVALID with err (may be NULL) naming name:line:column and the key path,
 * or PK_E_TOOBIG. Pure: no I/O except a warning log line for unknown keys in spec.mtls. */
int pk_sentry_config_parse(const uint8_t *yaml, size_t len, const char *name,
                           struct pk_sentry_config **out, struct pk_err *err) PK_MUST_USE;

/* Read the file at path (borrowed) and parse it. PK_E_NOTFOUND ("<path>: file does not exist")
 * when it is missing: Dapr's Sentry treats a missing --config file as fatal, and so should the
 * caller. PK_E_TOOBIG, PK_E_INVALID, or -errno for other read errors. Blocks on the file read. */
int pk_sentry_config_load(const char *path, struct pk_sentry_config **out, struct pk_err *err)
        PK_MUST_USE;

/* Log the effective settings on one info line (ttl, skew, validators; never a secret). */
void pk_sentry_config_log(const struct pk_sentry_config *cfg);

/* Free cfg and its strings. NULL is fine. Returns NULL. */
struct pk_sentry_config *pk_sentry_config_free(struct pk_sentry_config *cfg);

#endif
