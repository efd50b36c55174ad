/* SPDX-License-Identifier: Apache-2.0 */
/* picket: Sentry's JWKS token validator (Dapr `tokenValidators: [{name: jwks}]`).
 *
 * A JWKS (RFC 7517) is loaded once from the validator's `source`, which is, decided by content:
 *   - inline JSON: the text starts with '{' (after white space);
 *   - base64 of the JSON (standard or URL alphabet, padding and line breaks allowed), when the
 *     whole text is base64 and decodes to something starting with '{';
 *   - otherwise a file path, read with a cap of PK_JWKS_MAX_BYTES.
 * An http:// or https:// URL is refused with PK_E_UNSUPPORTED: picket sentry does not fetch
 * JWKS over the network, so serve the file locally instead.
 *
 * Keys used: RSA ("kty":"RSA", 2048 to 4096 bits, for RS256), EC P-256 ("kty":"EC",
 * "crv":"P-256", for ES256) and Ed25519 ("kty":"OKP", "crv":"Ed25519", for EdDSA). Keys of other
 * types, curves or algorithms, and keys whose "use" is not "sig", are skipped with a warning; a
 * malformed key, a key carrying private members, or a set with no usable key is an error.
 *
 * A token is a compact JWS (RFC 7515 §7.1) of at most PK_JWT_MAX_BYTES. It is accepted when:
 *   - its header's "alg" is RS256, ES256 or EdDSA ("none", HMAC and everything else are refused,
 *     as is any "crit" header), and
 *   - the signature verifies with a key of that type: the key named by "kid" if the header has
 *     one, else any key of the type (a key that states an "alg" must state this one), and
 *   - "exp" is present and not passed, "nbf" (if any) is reached and "iat" (if any) is not in
 *     the future, each with PK_JWT_LEEWAY_SECONDS of clock skew allowed, as in Dapr, and
 *   - "aud" (a string or a list of strings) contains the given audience (Sentry's SPIFFE ID),
 *   - "sub" equals the expected SPIFFE ID spiffe://<td>/ns/<namespace>/<app-id>.
 * Stricter than Dapr: "exp" is required. The token itself is never logged or copied into an
 * error message. */
#ifndef PK_SENTRY_JWKS_H
#define PK_SENTRY_JWKS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/compiler.h"
#include "common/err.h"

#define PK_JWKS_MAX_BYTES     (1024u * 1024u)
#define PK_JWKS_MAX_KEYS      64
#define PK_JWT_MAX_BYTES      (16u * 1024u)
#define PK_JWT_LEEWAY_SECONDS 300

struct pk_jwks;

/* Load a JWKS from source (borrowed; see above for how it is read). On success *out takes a new
 * key set. PK_E_INVALID (bad JSON, malformed key, no usable key), PK_E_TOOBIG, PK_E_NOTFOUND
 * (file missing), PK_E_UNSUPPORTED (URL), or -errno; err says which and where. May block on the
 * file read. */
int pk_jwks_load(const char *source, struct pk_jwks **out, struct pk_err *err) PK_MUST_USE;

/* Parse len bytes of JWKS JSON (borrowed; need not be NUL-terminated). Pure. Same results as
 * pk_jwks_load without the file and base64 cases. */
int pk_jwks_parse(const uint8_t *json, size_t len, struct pk_jwks **out, struct pk_err *err)
        PK_MUST_USE;

/* Number of usable keys in the set. */
size_t pk_jwks_key_count(const struct pk_jwks *jwks);

/* Verify token[0..len) (borrowed; need not be NUL-terminated) against jwks at time now, with
 * audience and expected_sub (borrowed C strings). Returns 0 when the token is good, PK_E_DENIED
 * with the reason in err (never the token) otherwise. Does not block. Calls on one jwks must not
 * run concurrently (wolfCrypt's key objects are not const while in use). */
int pk_jwks_verify(const struct pk_jwks *jwks, const char *token, size_t len, const char *audience,
                   const char *expected_sub, time_t now, struct pk_err *err) PK_MUST_USE;

/* Free the key set. NULL is fine. Returns NULL. */
struct pk_jwks *pk_jwks_free(struct pk_jwks *jwks);

#endif
