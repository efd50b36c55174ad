/* SPDX-License-Identifier: Apache-2.0 */
/* picket: PEM blocks (RFC 7468) to and from DER, and a minimal DER reader and writer.
 *
 * The decoder is strict about structure and lenient only where RFC 7468 allows: text before,
 * between and after blocks is ignored (OpenSSL's `-text` output, comments), CRLF or LF line ends,
 * any base64 line length. It never depends on NUL termination. */
#ifndef PK_PEM_H
#define PK_PEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "compiler.h"
#include "err.h"

/* Upper bound on one block's DER; larger input is refused with PK_E_TOOBIG. */
#define PK_PEM_MAX_DER (256u * 1024u)

struct pk_pem_block {
    char type[64]; /* the label between "BEGIN " and "-----", e.g. "CERTIFICATE" */
    uint8_t *der;  /* owned; wiped and freed by pk_pem_block_clear */
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

/* Append a PEM block of the given type with 64-column base64 lines to out. der (borrowed) must
 * hold 1..PK_PEM_MAX_DER bytes and type must be a valid RFC 7468 label. 0, PK_E_INVALID,
 * PK_E_TOOBIG (der too large, or out's cap would be passed: then out is unchanged). */
int pk_pem_encode(const char *type, const uint8_t *der, size_t der_len, struct pk_buf *out)
        PK_MUST_USE;

/* A minimal DER (X.690 §10) reader and writer, enough for the certificate, key and CSR
 * structures picket handles. Only single-octet identifiers (tag numbers 0..30) and definite
 * lengths in their shortest form are accepted. */
#define PK_DER_BOOLEAN      0x01u
#define PK_DER_INTEGER      0x02u
#define PK_DER_BIT_STRING   0x03u
#define PK_DER_OCTET_STRING 0x04u
#define PK_DER_NULL         0x05u
#define PK_DER_OID          0x06u
#define PK_DER_UTF8_STRING  0x0cu
#define PK_DER_PRINTABLE    0x13u
#define PK_DER_IA5_STRING   0x16u
#define PK_DER_UTC_TIME     0x17u
#define PK_DER_GEN_TIME     0x18u
#define PK_DER_SEQUENCE     0x30u
#define PK_DER_SET          0x31u
#define PK_DER_CTX(n)       (0x80u | (n)) /* [n] IMPLICIT, primitive */
#define PK_DER_CTX_CONS(n)  (0xa0u | (n)) /* [n] constructed (EXPLICIT or IMPLICIT SEQUENCE) */

/* One element read by pk_der_read. Every pointer borrows the input. */
struct pk_der {
    uint8_t tag;        /* the identifier octet */
    const uint8_t *tlv; /* the whole element, header included */
    size_t tlv_len;
    const uint8_t *val; /* its contents */
    size_t len;
};

/* Read the element at the front of *in and advance *in past it. 0, PK_E_TRUNCATED (the input
 * ends inside the element or its header), PK_E_INVALID (multi-octet tag, indefinite or
 * non-minimal length). */
int pk_der_read(struct pk_slice *in, struct pk_der *out) PK_MUST_USE;

/* As pk_der_read, and the tag must be `tag`: PK_E_INVALID otherwise (*in is then unchanged). */
int pk_der_expect(struct pk_slice *in, uint8_t tag, struct pk_der *out) PK_MUST_USE;

/* The contents of an element, as input for reading the elements inside it. */
static inline struct pk_slice pk_der_inner(const struct pk_der *el)
{
    return pk_slice_make(el->val, el->len);
}

/* True when el is an OBJECT IDENTIFIER whose contents are exactly oid[0..oid_len). */
bool pk_der_is_oid(const struct pk_der *el, const uint8_t *oid, size_t oid_len);

/* Write the dotted form of an OID's contents (e.g. "1.2.840.10045.2.1") into out, which is
 * always NUL-terminated; a malformed OID is written as "(invalid OID)". */
void pk_der_oid_str(const uint8_t *oid, size_t oid_len, char *out, size_t out_len);

/* Append one element: tag, length, and len bytes of val (borrowed; NULL when len is 0).
 * 0 or PK_E_TOOBIG (out unchanged). */
int pk_der_put(struct pk_buf *out, uint8_t tag, const void *val, size_t len) PK_MUST_USE;

/* Turn out->data[start..len) into the contents of one element with the given tag, by inserting
 * its header at start. Lets nested structures be written inside-out in one buffer.
 * 0 or PK_E_TOOBIG (out unchanged). */
int pk_der_wrap(struct pk_buf *out, size_t start, uint8_t tag) PK_MUST_USE;

#endif
