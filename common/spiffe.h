/* SPDX-License-Identifier: Apache-2.0 */
/* picket: SPIFFE IDs (SPIFFE-ID spec §2) and Dapr's workload form
 * spiffe://<trust-domain>/ns/<namespace>/<app-id>.
 *
 * Parsing is strict: scheme exactly "spiffe", a trust domain of [a-z0-9.-_] only, path segments
 * of [A-Za-z0-9.-_] that are neither empty nor "." or "..", no trailing slash, no port, userinfo,
 * query or fragment, at most 2048 bytes, no NUL. Every rejection says which rule failed and quotes
 * the input. */
#ifndef PK_SPIFFE_H
#define PK_SPIFFE_H

#include <stdbool.h>
#include <stddef.h>

#include "compiler.h"
#include "err.h"

#define PK_SPIFFE_MAX_LEN    2048
#define PK_SPIFFE_MAX_TD_LEN 255

struct pk_spiffe_id {
    char uri[PK_SPIFFE_MAX_LEN + 1]; /* the whole ID as given */
    char trust_domain[PK_SPIFFE_MAX_TD_LEN + 1];
    const char *path; /* points into uri: "" or "/seg/..." */
    /* Set only when the path is exactly /ns/<namespace>/<app-id> (Dapr's workload form). */
    bool is_workload;
    char namespace_[256];
    char app_id[256];
};

/* Parse and validate an ID of len bytes (not NUL-terminated necessarily). 0 or PK_E_INVALID. */
int pk_spiffe_parse(const char *text, size_t len, struct pk_spiffe_id *out, struct pk_err *err)
        PK_MUST_USE;

/* Check a trust domain name alone ("example.org"). 0 or PK_E_INVALID. */
int pk_spiffe_check_trust_domain(const char *td, struct pk_err *err) PK_MUST_USE;

/* Check one path segment (namespace or app id). 0 or PK_E_INVALID. what names it in the error
 * ("namespace", "app id"). */
int pk_spiffe_check_segment(const char *seg, const char *what, struct pk_err *err) PK_MUST_USE;

/* Build spiffe://td/ns/ns/app into out after checking each part. 0, PK_E_INVALID or
 * PK_E_TOOBIG (out too small). */
int pk_spiffe_format_workload(char *out, size_t out_len, const char *td, const char *ns,
                              const char *app_id, struct pk_err *err) PK_MUST_USE;

/* Check a pattern for pk_spiffe_match: a SPIFFE ID in which a path segment may be exactly "*"
 * (never part of a segment, never in the trust domain: a wildcard there would let any trust
 * domain sharing our anchors name itself). 0 or PK_E_INVALID with err quoting the pattern. */
int pk_spiffe_check_pattern(const char *pattern, struct pk_err *err) PK_MUST_USE;

/* Match an ID against a pattern in which a path segment "*" matches any one segment and the
 * trust domain must match exactly, e.g. spiffe://td/ns/\*\/frontend. Both must be valid. */
bool pk_spiffe_match(const struct pk_spiffe_id *id, const char *pattern);

#endif
