/* SPDX-License-Identifier: Apache-2.0 */
/* picket: strict parsing of command-line flag values. Each prints a message naming the flag and
 * the bad value to stderr and returns PK_E_INVALID on error. */
#ifndef PK_CMD_FLAGS_H
#define PK_CMD_FLAGS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/compiler.h"
#include "common/key.h"

/* A TCP port, 0 to 65535. */
int pk_flag_port(const char *flag, const char *value, uint16_t *out) PK_MUST_USE;

/* A boolean as Go's flag package spells it; NULL (the flag alone) means true. */
int pk_flag_bool(const char *flag, const char *value, bool *out) PK_MUST_USE;

/* A Go duration ("10s", "1m30s") in seconds as a double. */
int pk_flag_duration(const char *flag, const char *value, double *out) PK_MUST_USE;

/* A key type: ecdsa, p256 or p-256 (PK_KEY_P256), or ed25519 (PK_KEY_ED25519); any case. */
int pk_flag_key_type(const char *flag, const char *value, enum pk_key_type *out) PK_MUST_USE;

#endif
