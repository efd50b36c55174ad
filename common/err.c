/* SPDX-License-Identifier: Apache-2.0 */
/* picket: error codes and human-readable error messages. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const pk_err_texts[] = {[PK_OK] = "success",
#define PK_ERR(name, text) [PK_E_##name] = text,
                                           PK_ERR_TABLE
#undef PK_ERR
};

const char *pk_err_str(int code)
{
    if (code < 0) {
        return strerror(-code);
    }
    if ((size_t)code < PK_ARRAY_LEN(pk_err_texts) && pk_err_texts[code] != NULL) {
        return pk_err_texts[code];
    }
    return "unknown error";
}

int pk_err_set(struct pk_err *err, int code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL) {
        return code;
    }
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

int pk_err_prefix(struct pk_err *err, int code, const char *fmt, ...)
{
    char prefix[480];
    char old[sizeof(err->msg) - sizeof(prefix) - 2];
    va_list ap;

    if (err == NULL) {
        return code;
    }
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    /* The tail of a very long old message is cut rather than the prefix that names the input. */
    size_t old_len = strnlen(err->msg, sizeof(old) - 1);
    memcpy(old, err->msg, old_len);
    old[old_len] = '\0';
    if (old[0] == '\0') {
        snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, pk_err_str(code));
    } else {
        snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
    }
    return code;
}

void pk_err_clear(struct pk_err *err)
{
    if (err != NULL) {
        err->msg[0] = '\0';
    }
}
