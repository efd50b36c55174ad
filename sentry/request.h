/* SPDX-License-Identifier: Apache-2.0 */
/* picket: a SignCertificateRequest read from its wire bytes, and the rules its fields must meet
 * before Sentry signs anything.
 *
 * The request is decoded here, not by protobuf-c, because protobuf-c hands `string` fields over
 * as NUL-terminated copies: an app id "a\0b" would reach every check as "a" and be signed as
 * .../a. Here every field is a slice of the wire bytes with its true length, and every check
 * takes that length. Fields are proto3: the last occurrence of a singular field wins, unknown
 * fields are skipped, a known field with the wrong wire type is an error, and every `string`
 * field (id, token, trust_domain, namespace, jwt_audiences) must be valid UTF-8 (Go's protobuf
 * refuses to unmarshal it otherwise).
 *
 * The rules (SENTRY-PROTOCOL.md §4, and picket's stricter ones where Dapr sets none):
 *   - app id: Dapr's common checks (non-empty, no '.', at most 64 bytes), then a SPIFFE path
 *     segment: A-Z, a-z, 0-9, '-' and '_' only;
 *   - namespace: required, and a Kubernetes namespace name, i.e. a DNS-1123 label: at most 63
 *     bytes of a-z, 0-9 and '-', starting and ending with a letter or digit (Dapr sets no bound;
 *     without one a 300-byte namespace was signed);
 *   - trust domain: a SPIFFE trust domain (a-z, 0-9, '.', '-', '_'; lower case only, nothing
 *     normalised) that is exactly one of the trust domains this Sentry signs for;
 *   - control-plane ids: dapr-sentry, Sentry's own identity, is never issued (Sentry makes its
 *     serving certificate itself); dapr-placement, dapr-scheduler, dapr-operator and
 *     dapr-injector in Sentry's namespace only when a validator authenticated them or the
 *     operator allowed it; any other spelling of these ids there (another case) is refused.
 * Every error quotes the offending value with anything unprintable escaped as \xNN. */
#ifndef PK_SENTRY_REQUEST_H
#define PK_SENTRY_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/log.h"
#include "common/spiffe.h"

/* Dapr's common checks cap the app id at 64 bytes. */
#define PK_SENTRY_APP_ID_MAX 64
/* Kubernetes namespace names are DNS-1123 labels, at most 63 bytes. */
#define PK_SENTRY_NAMESPACE_MAX 63
/* The trust domain of a request that names none (daprd's default). */
#define PK_SENTRY_DEFAULT_REQUEST_TRUST_DOMAIN "public"
/* Room for the trust domains a Sentry signs for: its own, public, and those of the flag. */
#define PK_SENTRY_MAX_TRUST_DOMAINS 32

/* A decoded request. Every slice borrows the wire bytes given to pk_sentry_request_decode; an
 * absent field is an empty slice. */
struct pk_sentry_request {
    struct pk_slice id;           /* field 1 */
    struct pk_slice token;        /* field 2 */
    struct pk_slice trust_domain; /* field 3 */
    struct pk_slice namespace_;   /* field 4 */
    struct pk_slice csr;          /* field 5, bytes */
    int32_t token_validator;      /* field 6, enum; unknown numbers are kept */
    size_t n_jwt_audiences;       /* field 7, repeated; checked for UTF-8, otherwise unused */
};

/* Decode wire (borrowed; out's slices point into it). 0, or PK_E_INVALID with err saying what
 * is malformed and at which byte. */
int pk_sentry_request_decode(struct pk_slice wire, struct pk_sentry_request *out,
                             struct pk_err *err) PK_MUST_USE;

/* Dapr's app id rules plus the SPIFFE path segment characters. The message is Dapr's for the
 * rules Dapr has ("parameter app-id cannot be empty", "... cannot contain dots", "app ID must be
 * 64 characters or less"). 0 or PK_E_INVALID. */
int pk_sentry_check_app_id(struct pk_slice id, struct pk_err *err) PK_MUST_USE;

/* "namespace is required", then a DNS-1123 label. what names the value in messages
 * ("namespace", "NAMESPACE"). 0 or PK_E_INVALID. */
int pk_sentry_check_namespace(struct pk_slice ns, const char *what, struct pk_err *err) PK_MUST_USE;

/* The trust domains a Sentry signs for, compared byte for byte. A value type: no allocation. */
struct pk_sentry_trust_domains {
    size_t n;
    char name[PK_SENTRY_MAX_TRUST_DOMAINS][PK_SPIFFE_MAX_TD_LEN + 1];
};

/* Add one trust domain (borrowed C string) unless it is already listed. It must be a valid SPIFFE
 * trust domain without a leading or trailing '.' or an empty label; what names its origin in
 * messages ("--allowed-trust-domains"). 0, PK_E_INVALID or PK_E_TOOBIG (list full). */
int pk_sentry_trust_domains_add(struct pk_sentry_trust_domains *list, const char *td,
                                const char *what, struct pk_err *err) PK_MUST_USE;

/* Add each name of a comma-separated list (white space around names ignored; an empty name is an
 * error). 0, PK_E_INVALID or PK_E_TOOBIG, with err naming what and the bad name. */
int pk_sentry_trust_domains_add_list(struct pk_sentry_trust_domains *list, const char *csv,
                                     const char *what, struct pk_err *err) PK_MUST_USE;

/* Whether td is exactly one of the list. */
bool pk_sentry_trust_domains_contains(const struct pk_sentry_trust_domains *list,
                                      struct pk_slice td);

/* "a, b, c" into out (cut with "..." when it does not fit). Returns out. */
const char *pk_sentry_trust_domains_format(const struct pk_sentry_trust_domains *list, char *out,
                                           size_t out_len);

/* Check the request's trust domain (empty means "public", as in Dapr) against the SPIFFE rules and
 * the list. On success *td points to the trust domain to sign for (into the request or a static
 * string). 0, PK_E_INVALID (not a trust domain) or PK_E_DENIED (not allowed). */
int pk_sentry_check_trust_domain(struct pk_slice td, const struct pk_sentry_trust_domains *allowed,
                                 struct pk_slice *out, struct pk_err *err) PK_MUST_USE;

/* What an app id is, for the control-plane rule. */
enum pk_sentry_id_kind {
    PK_SENTRY_ID_WORKLOAD,      /* an ordinary app id */
    PK_SENTRY_ID_SENTRY,        /* dapr-sentry in any case and namespace: never issued */
    PK_SENTRY_ID_CONTROL_PLANE, /* exactly dapr-placement|scheduler|operator|injector, in
                                   Sentry's namespace */
    PK_SENTRY_ID_LOOKALIKE,     /* one of those in another case, in Sentry's namespace */
};

/* Classify an app id requested in namespace ns (both already checked) for a Sentry whose own
 * namespace is sentry_namespace (borrowed C string). */
enum pk_sentry_id_kind pk_sentry_classify_id(struct pk_slice id, struct pk_slice ns,
                                             const char *sentry_namespace);

/* Sentry's messages and log lines show at most this many bytes of an untrusted value. */
#define PK_SENTRY_QUOTE_MAX 64

/* Untrusted bytes of a request for a message or a log line: pk_quote_n (common/log.h) with
 * Sentry's cap, so printable ASCII as is, '"', '\\' and everything else as \xNN, cut at
 * PK_SENTRY_QUOTE_MAX input bytes with "...". Returns out (always terminated). */
static inline const char *pk_sentry_quote(char *out, size_t out_len, struct pk_slice value)
{
    return pk_quote_n(out, out_len, (const char *)value.ptr, value.len, PK_SENTRY_QUOTE_MAX);
}

#endif
