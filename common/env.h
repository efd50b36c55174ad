/* SPDX-License-Identifier: Apache-2.0 */
/* picket: reading an environment passed as an array, so tests can give their own. */
#ifndef PK_COMMON_ENV_H
#define PK_COMMON_ENV_H

/* The value of name in env (a NULL-terminated array of "NAME=value" strings, or NULL; pass
 * `environ'), borrowed from env; NULL when it is not set. The first entry wins. */
const char *pk_env_get(char *const *env, const char *name);

/* pk_env_get, with an empty value taken as unset (as daprd reads its variables): NULL when name
 * is not set or set to "". */
const char *pk_env_value(char *const *env, const char *name);

#endif
