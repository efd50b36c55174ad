/* SPDX-License-Identifier: Apache-2.0 */
#include "common/env.h"

#include <string.h>

const char *pk_env_get(char *const *env, const char *name)
{
    size_t n = strlen(name);

    for (; env != NULL && *env != NULL; env++) {
        if (strncmp(*env, name, n) == 0 && (*env)[n] == '=') {
            return *env + n + 1;
        }
    }
    return NULL;
}

const char *pk_env_value(char *const *env, const char *name)
{
    const char *v = pk_env_get(env, name);

    return v != NULL && v[0] != '\0' ? v : NULL;
}
