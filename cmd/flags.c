/* SPDX-License-Identifier: Apache-2.0 */
/* picket: strict parsing of command-line flag values. */
#include "cmd/flags.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/duration.h"
#include "common/err.h"

int pk_flag_port(const char *flag, const char *value, uint16_t *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(value, &end, 10);
    if (value[0] == '\0' || value[0] == '-' || *end != '\0' || errno != 0 || v > 65535) {
        fprintf(stderr, "picket: %s: '%s' is not a port number (0 to 65535)\n", flag, value);
        return PK_E_INVALID;
    }
    *out = (uint16_t)v;
    return 0;
}

int pk_flag_bool(const char *flag, const char *value, bool *out)
{
    static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True"};
    static const char *const no[] = {"0", "f", "F", "false", "FALSE", "False"};

    if (value == NULL) {
        *out = true;
        return 0;
    }
    for (size_t i = 0; i < PK_ARRAY_LEN(yes); i++) {
        if (strcmp(value, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcmp(value, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    fprintf(stderr, "picket: %s: '%s' is not a boolean (true or false)\n", flag, value);
    return PK_E_INVALID;
}

int pk_flag_duration(const char *flag, const char *value, double *out)
{
    struct pk_err err;
    int64_t ns;

    if (pk_duration_parse(value, strlen(value), &ns, &err) != 0) {
        fprintf(stderr, "picket: %s: %s\n", flag, err.msg);
        return PK_E_INVALID;
    }
    *out = (double)ns / 1e9;
    return 0;
}

int pk_flag_key_type(const char *flag, const char *value, enum pk_key_type *out)
{
    if (strcasecmp(value, "ecdsa") == 0 || strcasecmp(value, "p256") == 0 ||
        strcasecmp(value, "p-256") == 0) {
        *out = PK_KEY_P256;
        return 0;
    }
    if (strcasecmp(value, "ed25519") == 0) {
        *out = PK_KEY_ED25519;
        return 0;
    }
    fprintf(stderr, "picket: %s: '%s' is not ecdsa (P-256) or ed25519\n", flag, value);
    return PK_E_INVALID;
}
