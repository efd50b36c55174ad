/* SPDX-License-Identifier: Apache-2.0 */
/* picket: fuzz target for common/hello_guard, the check of a TLS client's cleartext flight.
 *
 * The first input byte chooses whose flight the rest is (low bit: 0 a client's, 1 a server's)
 * and the size of the pieces it is fed in (the other bits: 1 to 128 bytes), so the same records
 * are also seen split across reads. Besides memory safety it checks: once the
 * verdict leaves PK_HELLO_MORE it never changes; a refusal carries one of the three alerts and a
 * reason; and feeding the same bytes in one piece gives the same verdict. */
#include <stdlib.h>
#include <string.h>

#include "common/hello_guard.h"
#include "fuzz.h"

static void check(int cond)
{
    if (!cond) {
        abort();
    }
}

static enum pk_hello_verdict run(enum pk_hello_peer peer, const uint8_t *p, size_t n, size_t step,
                                 uint8_t *alert)
{
    struct pk_hello_guard g;
    enum pk_hello_verdict v = PK_HELLO_MORE, first = PK_HELLO_MORE;

    pk_hello_guard_init(&g, peer);
    for (size_t off = 0; off < n; off += step) {
        size_t k = n - off < step ? n - off : step;
        v = pk_hello_guard_feed(&g, p + off, k);
        if (first != PK_HELLO_MORE) {
            check(v == first);
        }
        first = v;
    }
    if (v == PK_HELLO_REFUSE) {
        check(g.alert == PK_TLS_ALERT_UNEXPECTED_MESSAGE ||
              g.alert == PK_TLS_ALERT_ILLEGAL_PARAMETER || g.alert == PK_TLS_ALERT_DECODE_ERROR);
        check(g.why[0] != '\0');
        *alert = g.alert;
    }
    pk_hello_guard_free(&g);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t a = 0, b = 0;

    if (size == 0) {
        return 0;
    }
    enum pk_hello_peer peer = data[0] & 1 ? PK_HELLO_PEER_SERVER : PK_HELLO_PEER_CLIENT;
    size_t step = (size_t)(data[0] >> 1) + 1;
    enum pk_hello_verdict split = run(peer, data + 1, size - 1, step, &a);
    enum pk_hello_verdict whole = run(peer, data + 1, size - 1, size, &b);
    check(split == whole && a == b);
    return 0;
}
