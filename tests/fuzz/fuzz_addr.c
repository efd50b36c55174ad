/* SPDX-License-Identifier: Apache-2.0 */
/* picket: fuzz target for the address grammar (common/addr.h): operators write these in
 * picket.ini and on the command line.
 *
 * Targets: pk_addr_parse under every combination of flags. Besides memory safety it checks: a
 * refusal is PK_E_INVALID with a message; an accepted IP or unix address has a socket address
 * of its family, formats to text that parses back to the same socket address, and overlaps
 * itself unless its port is 0; an accepted name is only possible with PK_ADDR_NAMES. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/addr.h"
#include "common/err.h"
#include "fuzz.h"

static void check(int cond)
{
    if (!cond) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);

    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    for (unsigned flags = 0; flags < 8; flags++) {
        char buf[PK_ADDR_STR_LEN];
        struct pk_addr a, back;
        struct pk_err err = {{0}};
        int r = pk_addr_parse(text, flags, &a, &err);

        check(r == 0 || (r == PK_E_INVALID && err.msg[0] != '\0'));
        if (r != 0) {
            continue;
        }
        if (a.kind == PK_ADDR_NAME) {
            check((flags & PK_ADDR_NAMES) != 0);
            continue;
        }
        check(a.sa_len > 0);
        check(a.sa.ss_family == (a.kind == PK_ADDR_UNIX ? AF_UNIX : a.sa.ss_family));
        pk_addr_format(&a, buf, sizeof(buf));
        check(pk_addr_parse(buf, flags | PK_ADDR_UNIX_RELATIVE, &back, NULL) == 0);
        check(back.sa_len == a.sa_len && memcmp(&back.sa, &a.sa, a.sa_len) == 0);
        check(pk_addr_overlaps(&a, &back) == (a.kind == PK_ADDR_UNIX || a.port != 0));
    }
    free(text);
    return 0;
}
