/* SPDX-License-Identifier: Apache-2.0 */
/* picket: PEM blocks (RFC 7468) to and from DER.
 *
 * The decoder is strict about structure and lenient only where RFC 7468 allows: text before,
 * between and after blocks is ignored (OpenSSL's `-text` output, comments), CRLF or LF line ends,
 * any base64 line length. It never depends on NUL termination. */
#ifndef PK_PEM_H
#define PK_PEM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "compiler.h"
#include "err.h"

/* Upper bound on one block's DER; larger input is refused with PK_E_TOOBIG. */
#define PK_PEM_MAX_DER (256u * 1024u)

struct pk_pem_block {
    char type[64];  /* the label between "BEGIN " and "-----", e.g. "CERTIFICATE" */
    uint8_t *der;   /* owned; wiped and freed by pk_pem_block_clear */
    size_t der_len;
};

/* Decode the next block of text[*offset..len). On success fills out (the caller clears it) and
 * advances *offset past the END line. Returns PK_E_NOTFOUND when no further BEGIN line exists,
 * PK_E_INVALID for a malformed block (no END line, label mismatch, bad base64), PK_E_TOOBIG.
 * err names the block's ordinal and what is wrong. */
int pk_pem_next(const uint8_t *text, size_t len, size_t *offset, struct pk_pem_block *out,
                struct pk_err *err) PK_MUST_USE;

/* Wipe and free the DER; the block may be reused afterwards. */
void pk_pem_block_clear(struct pk_pem_block *block);

/* Append a PEM block of the given type with 64-column base64 lines to out. */
int pk_pem_encode(const char *type, const uint8_t *der, size_t der_len,
                  struct pk_buf *out) PK_MUST_USE;

#endif
