/* SPDX-License-Identifier: Apache-2.0 */
/* picket: what the sidecar/config unit tests share (test_sidecar_config*.c). */
#ifndef PK_TEST_SIDECAR_CONFIG_UTIL_H
#define PK_TEST_SIDECAR_CONFIG_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "sidecar/config.h"

/* The least a valid configuration needs besides what a test varies. */
extern const char *const base_env[];
extern const char *const base_flags[];

/* Write text to a new temporary file (under $PICKET_TEST_TMP, else /tmp); its path goes to path
 * (path_len bytes). */
void write_temp_ini(char *path, size_t path_len, const char *text);

/* Run pk_sidecar_config_load as `picket run [-c FILE] flags...` with the environment env; ini NULL
 * means no -c. On return *cfg is what load wrote (NULL when it wrote nothing). */
int load_full(const char *ini, const char *const *env, const char *const *flags,
              struct pk_sidecar_config **cfg, bool *help, struct pk_err *err);

/* load_full that expects no --help. */
int load(const char *ini, const char *const *env, const char *const *flags,
         struct pk_sidecar_config **cfg, struct pk_err *err);

/* Fail unless msg contains want. */
void assert_contains(const char *msg, const char *want);

#endif
