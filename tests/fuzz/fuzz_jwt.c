/* SPDX-License-Identifier: Apache-2.0 */
/* picket: fuzz target for JWT verification and JWKS parsing.
 *
 * Targets: pk_jwks_verify (with a fixed key set holding an EC P-256, an Ed25519 and an RSA-2048
 * public key; the seed tokens in corpus/fuzz_jwt/ were signed with their private halves, which
 * were thrown away), pk_jwks_parse and pk_jwks_free.
 * Input: the first byte chooses the target (even: the rest is a token; odd: the rest is a JWKS).
 * The clock is fixed, so every run is deterministic. */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "fuzz.h"
#include "sentry/jwks.h"

#define NOW      ((time_t)1700000000)
#define AUDIENCE "spiffe://cluster.local/ns/default/dapr-sentry"
#define SUBJECT  "spiffe://public/ns/default/myapp"

static const char fixed_jwks[] =
        "{\"keys\":["
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"ec\",\"use\":\"sig\",\"alg\":\"ES256\",\"x"
        "\":\"xrW-rbqKntGSk1y71R2NYN_p5KAsN0peGpX_d9Kn54Q\",\"y\":\"k97Q2r2X5eJ8FKUphZ51cIIqrIt"
        "_J3lwYCkSf0fKPko\"},"
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"ed\",\"x\":\"iW9sQ6iaZ0ZfxaU39L72HMTgCV"
        "5423n1XENAC3rA7wU\"},"
        "{\"kty\":\"RSA\",\"kid\":\"rsa\",\"alg\":\"RS256\",\"n\":\"3Ly-Hgo5IfZVk8vIXEI6c6jeAp_"
        "NrUkkvMzKhWlbEs9CZ2NpD5e-qn5NewHz8ueZVlTCr8c3ar3wTbjWpm29nDO6I9Pqh7JTwtxY2DyLx90kdGuvL"
        "EPs6xdNMjs2QsBM8WC0TT36hKpkQtuxSwbEuiWO2GTvluNPRcnz8stGX_gFJXlwZSrJIyj5nR0omDvmyqMYPJT"
        "Vzkd4WFk7BnSMrSG8RiAowea3-nC-CCuPXQMFNbSnclCKKNhLtig0EP3XSfj_vTR92H45CLazhdcMUYB0GH8mW"
        "eU1Osc8CFKFr9_mIaqwtsAiaax0FegR-Yy8TdR3pkOZPJkNzLHYyMWAJw\",\"e\":\"AQAB\"}"
        "]}";

static struct pk_jwks *keys(void)
{
    static struct pk_jwks *jwks;

    if (jwks == NULL) {
        pk_log_setup(PK_LOG_LEVEL_FATAL, false);
        if (pk_jwks_parse((const uint8_t *)fixed_jwks, strlen(fixed_jwks), &jwks, NULL) != 0 ||
            pk_jwks_key_count(jwks) != 3) {
            abort();
        }
    }
    return jwks;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pk_jwks *set = keys();
    struct pk_jwks *parsed = NULL;
    struct pk_err err;
    char *token;
    int rc;

    if (size == 0) {
        return 0;
    }
    if ((data[0] & 1) == 0) {
        /* An exact-size copy, so a read past the token's end is caught. */
        token = malloc(size - 1 ? size - 1 : 1);
        memcpy(token, data + 1, size - 1);
        rc = pk_jwks_verify(set, token, size - 1, AUDIENCE, SUBJECT, NOW, &err);
        if (rc != 0 && rc != PK_E_DENIED) {
            abort();
        }
        free(token);
        return 0;
    }
    rc = pk_jwks_parse(data + 1, size - 1, &parsed, &err);
    if ((rc == 0) != (parsed != NULL) || (rc == 0 && pk_jwks_key_count(parsed) == 0)) {
        abort();
    }
    pk_jwks_free(parsed);
    return 0;
}
