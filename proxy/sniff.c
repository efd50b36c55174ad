/* SPDX-License-Identifier: Apache-2.0 */
/* picket: TLS ClientHello detection from a connection's first bytes. */
#include "proxy/sniff.h"

#define TLS_CONTENT_HANDSHAKE     22
#define TLS_HANDSHAKE_CLIENTHELLO 1
#define TLS_MAX_RECORD            16384 /* RFC 8446 §5.1: a TLSPlaintext fragment */
#define TLS_HANDSHAKE_HEADER      4     /* type and 24-bit length */

enum pk_sniff_result pk_sniff_client_hello(const uint8_t *p, size_t len)
{
    /* Each byte is judged as soon as it is there, so plaintext is told at once. */
    if (len < 1) {
        return PK_SNIFF_MORE;
    }
    if (p[0] != TLS_CONTENT_HANDSHAKE) {
        return PK_SNIFF_PLAIN;
    }
    if (len < 2) {
        return PK_SNIFF_MORE;
    }
    if (p[1] != 3) {
        return PK_SNIFF_PLAIN;
    }
    if (len < 3) {
        return PK_SNIFF_MORE;
    }
    if (p[2] > 4) {
        return PK_SNIFF_PLAIN;
    }
    if (len < 4) {
        return PK_SNIFF_MORE;
    }
    /* The length's high byte alone already rules out records over 2^14. */
    if (p[3] > (TLS_MAX_RECORD >> 8)) {
        return PK_SNIFF_PLAIN;
    }
    if (len < 5) {
        return PK_SNIFF_MORE;
    }
    unsigned rec = (unsigned)p[3] << 8 | p[4];
    if (rec < TLS_HANDSHAKE_HEADER || rec > TLS_MAX_RECORD) {
        return PK_SNIFF_PLAIN;
    }
    if (len < 6) {
        return PK_SNIFF_MORE;
    }
    return p[5] == TLS_HANDSHAKE_CLIENTHELLO ? PK_SNIFF_TLS : PK_SNIFF_PLAIN;
}
