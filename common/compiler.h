/* SPDX-License-Identifier: Apache-2.0 */
/* picket: compiler attributes and the few control-flow macros the project uses. */
#ifndef PK_COMPILER_H
#define PK_COMPILER_H

#include <stddef.h>

#define PK_MUST_USE     __attribute__((warn_unused_result))
#define PK_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define PK_NORETURN     __attribute__((noreturn))
#define PK_UNUSED       __attribute__((unused))
#define PK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define PK_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define PK_MAX(a, b)    ((a) > (b) ? (a) : (b))
#define PK_LIKELY(x)    __builtin_expect(!!(x), 1)
#define PK_UNLIKELY(x)  __builtin_expect(!!(x), 0)

/* Always-on invariant check: logs file:line and aborts. Never compiled out. */
PK_NORETURN void pk__assert_fail(const char *expr, const char *file, int line);
#define PK_ASSERT(expr)                                                                            \
    do {                                                                                           \
        if (PK_UNLIKELY(!(expr))) {                                                                \
            pk__assert_fail(#expr, __FILE__, __LINE__);                                            \
        }                                                                                          \
    } while (0)

/* Return a negative (unexpected) error unchanged; positive values are expected outcomes and are
 * left to the caller. */
#define PK_TRY(expr)                                                                               \
    do {                                                                                           \
        int pk__r = (expr);                                                                        \
        if (pk__r < 0) {                                                                           \
            return pk__r;                                                                          \
        }                                                                                          \
    } while (0)

/* Bounds check for parsers: fail with the given code when cond does not hold. */
#define PK_ENSURE(cond, code)                                                                      \
    do {                                                                                           \
        if (PK_UNLIKELY(!(cond))) {                                                                \
            return (code);                                                                         \
        }                                                                                          \
    } while (0)

#endif
