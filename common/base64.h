/* SPDX-License-Identifier: Apache-2.0 */
/* picket: base64 (RFC 4648), for PEM bodies and for JWS and JWKS values. Pure functions. */
#ifndef PK_COMMON_BASE64_H
#define PK_COMMON_BASE64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/compiler.h"

enum pk_base64_alphabet {
    PK_BASE64_STD,    /* RFC 4648 §4: `+' and `/' */
    PK_BASE64_URL,    /* RFC 4648 §5: `-' and `_' */
    PK_BASE64_EITHER, /* both, for text pasted by people */
};

/* The 6-bit value of c in alphabet, or -1 when c is not one of its characters ('=' is not). */
int pk_base64_value(unsigned char c, enum pk_base64_alphabet alphabet);

/* Decode len bytes of base64 at in into out (cap bytes). strict: the JWS form (RFC 7515 §2: URL
 * alphabet, no padding, no white space, zero trailing bits). Otherwise either alphabet, optional
 * padding and white space are accepted. Writes the decoded length to *out_len. Returns 0,
 * PK_E_INVALID or PK_E_TOOBIG (out is too small). */
int pk_base64_decode(const char *in, size_t len, bool strict, uint8_t *out, size_t cap,
                     size_t *out_len) PK_MUST_USE;

/* Room for what len bytes of base64 decode to, at the most. */
size_t pk_base64_max_decoded(size_t len);

#endif
