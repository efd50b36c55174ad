/* SPDX-License-Identifier: Apache-2.0 */
/* picket: error codes and human-readable error messages.
 *
 * Functions return an int: 0 is success, a negative -errno value is an unexpected system failure
 * passed up unchanged, and a positive PK_E_* value is an expected outcome the caller handles.
 * Where the caller needs to tell a person what went wrong, a function also takes an optional
 * `struct pk_err *` and writes one sentence into it that names the input and the problem, e.g.
 * "issuer.key: key does not match the certificate in issuer.crt". */
#ifndef PK_ERR_H
#define PK_ERR_H

#include <stddef.h>

#include "compiler.h"

/* The table of expected outcomes: PK_ERR(NAME, "short text"). */
#define PK_ERR_TABLE                                                                               \
    PK_ERR(INVALID, "invalid input")                                                               \
    PK_ERR(NOTFOUND, "not found")                                                                  \
    PK_ERR(TOOBIG, "too large")                                                                    \
    PK_ERR(TRUNCATED, "truncated input")                                                           \
    PK_ERR(EXPIRED, "expired")                                                                     \
    PK_ERR(NOTYETVALID, "not yet valid")                                                           \
    PK_ERR(MISMATCH, "mismatch")                                                                   \
    PK_ERR(UNTRUSTED, "does not chain to a trusted root")                                          \
    PK_ERR(UNSUPPORTED, "unsupported")                                                             \
    PK_ERR(CRYPTO, "cryptographic operation failed")                                               \
    PK_ERR(TLS, "TLS failure")                                                                     \
    PK_ERR(PROTO, "protocol violation")                                                            \
    PK_ERR(AGAIN, "try again")                                                                     \
    PK_ERR(EOF, "end of stream")                                                                   \
    PK_ERR(TIMEOUT, "timed out")                                                                   \
    PK_ERR(DENIED, "permission denied")                                                            \
    PK_ERR(CLOSED, "closed")

enum pk_err_code {
    PK_OK = 0,
#define PK_ERR(name, text) PK_E_##name,
    PK_ERR_TABLE
#undef PK_ERR
            PK_E__COUNT
};

/* A message for a person. Fixed size so it can live on the stack and never fails to allocate. */
struct pk_err {
    char msg[1024];
};

/* Short static text for a return code (positive PK_E_*, negative -errno, or 0). */
const char *pk_err_str(int code);

/* Write a message into err (which may be NULL: then nothing happens). Returns code, so that
 * `return pk_err_set(err, PK_E_INVALID, "...")` reads naturally. */
int pk_err_set(struct pk_err *err, int code, const char *fmt, ...) PK_PRINTF(3, 4);

/* Put "prefix: " in front of the message already in err (e.g. the file name). Returns code. */
int pk_err_prefix(struct pk_err *err, int code, const char *fmt, ...) PK_PRINTF(3, 4);

/* Clear err so that an empty message means "no detail". NULL is fine. */
void pk_err_clear(struct pk_err *err);

/* The exit status of every picket command when its configuration (flags, picket.ini, a
 * --config file) is wrong, as for bad usage; 1 is for failures at run time. */
#define PK_EXIT_CONFIG 2

#endif
