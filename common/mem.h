/* SPDX-License-Identifier: Apache-2.0 */
/* picket: allocation that aborts on failure, and wiping of secrets.
 *
 * Out of memory aborts the process (the supervisor restarts it); every size that an attacker can
 * influence is capped before it reaches these functions. */
#ifndef PK_MEM_H
#define PK_MEM_H

#include <stddef.h>

void *pk_xmalloc(size_t size) __attribute__((malloc, returns_nonnull));
void *pk_xcalloc(size_t n, size_t size) __attribute__((malloc, returns_nonnull));
void *pk_xrealloc(void *p, size_t size) __attribute__((returns_nonnull));
char *pk_xstrdup(const char *s) __attribute__((malloc, returns_nonnull));
char *pk_xstrndup(const char *s, size_t n) __attribute__((malloc, returns_nonnull));
void *pk_xmemdup(const void *p, size_t n) __attribute__((malloc, returns_nonnull));

/* Overwrite n bytes with zeros in a way the compiler may not elide. */
void pk_wipe(void *p, size_t n);

/* Wipe n bytes at p, then free it. NULL is fine. Returns NULL: `p = pk_free_secret(p, n);` */
void *pk_free_secret(void *p, size_t n);

#endif
