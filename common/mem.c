/* SPDX-License-Identifier: Apache-2.0 */
/* picket: allocation that aborts on failure, and wiping of secrets. */
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compiler.h"

PK_NORETURN static void out_of_memory(size_t size)
{
    char msg[96];
    int n = snprintf(msg, sizeof(msg), "level=fatal out of memory size=%zu\n", size);
    ssize_t PK_UNUSED ignored = write(STDERR_FILENO, msg, (size_t)n);
    abort();
}

void *pk_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL) {
        out_of_memory(size);
    }
    return p;
}

void *pk_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) {
        out_of_memory(n * size);
    }
    return p;
}

void *pk_xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (q == NULL) {
        out_of_memory(size);
    }
    return q;
}

char *pk_xstrdup(const char *s)
{
    return pk_xmemdup(s, strlen(s) + 1);
}

char *pk_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = pk_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void *pk_xmemdup(const void *p, size_t n)
{
    void *q = pk_xmalloc(n);
    if (n > 0) {
        memcpy(q, p, n);
    }
    return q;
}

void pk_wipe(void *p, size_t n)
{
    if (p != NULL && n > 0) {
        explicit_bzero(p, n);
    }
}

void *pk_free_secret(void *p, size_t n)
{
    if (p != NULL) {
        pk_wipe(p, n);
        free(p);
    }
    return NULL;
}
