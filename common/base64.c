/* SPDX-License-Identifier: Apache-2.0 */
#include "common/base64.h"

#include "common/err.h"

int pk_base64_value(unsigned char c, enum pk_base64_alphabet alphabet)
{
    bool std = alphabet != PK_BASE64_URL;
    bool url = alphabet != PK_BASE64_STD;

    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if ((url && c == '-') || (std && c == '+')) {
        return 62;
    }
    if ((url && c == '_') || (std && c == '/')) {
        return 63;
    }
    return -1;
}

int pk_base64_decode(const char *in, size_t len, bool strict, uint8_t *out, size_t cap,
                     size_t *out_len)
{
    uint32_t acc = 0;
    size_t bits = 0;
    size_t chars = 0;
    size_t pads = 0;
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        int v;
        if (!strict && (c == ' ' || c == '\t' || c == '\r' || c == '\n')) {
            continue;
        }
        if (!strict && c == '=') {
            pads++;
            continue;
        }
        v = pk_base64_value(c, strict ? PK_BASE64_URL : PK_BASE64_EITHER);
        if (v < 0 || pads > 0) {
            return PK_E_INVALID;
        }
        chars++;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap) {
                return PK_E_TOOBIG;
            }
            out[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (chars % 4 == 1 || pads > 2 || (pads > 0 && (chars + pads) % 4 != 0)) {
        return PK_E_INVALID;
    }
    if (strict && acc != 0) {
        return PK_E_INVALID;
    }
    *out_len = n;
    return 0;
}

size_t pk_base64_max_decoded(size_t len)
{
    return len / 4 * 3 + 3;
}
