/* SPDX-License-Identifier: Apache-2.0 */
/* picket: fuzz target for PEM decoding/encoding and the DER reader.
 *
 * Targets: pk_pem_next, pk_pem_encode, pk_pem_block_clear, pk_der_read, pk_der_put,
 * pk_der_oid_str. Besides memory safety it checks their contracts: every decoded block is at
 * most PK_PEM_MAX_DER bytes, the offset only moves forward and stays within the text, a block
 * re-encoded with pk_pem_encode decodes to the same label and bytes, errors are only the
 * documented codes, and every DER element read lies within its input and is re-encoded
 * byte-for-byte by pk_der_put (the reader accepts only canonical DER headers). */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/pem.h"
#include "fuzz.h"

#define DER_MAX_DEPTH 32

static void check(int cond)
{
    if (!cond) {
        abort();
    }
}

static void walk_der(struct pk_slice in, int depth)
{
    while (in.len > 0) {
        const uint8_t *start = in.ptr;
        size_t avail = in.len;
        struct pk_der el;
        int r = pk_der_read(&in, &el);
        if (r != 0) {
            check(r == PK_E_TRUNCATED || r == PK_E_INVALID);
            check(in.ptr == start && in.len == avail);
            return;
        }
        check(el.tlv == start && el.tlv_len <= avail && el.val + el.len == start + el.tlv_len);
        check(in.ptr == start + el.tlv_len && in.len == avail - el.tlv_len);
        /* The header we read is the one we write. */
        struct pk_buf b;
        pk_buf_init(&b, el.tlv_len);
        check(pk_der_put(&b, el.tag, el.val, el.len) == 0);
        check(b.len == el.tlv_len && memcmp(b.data, el.tlv, b.len) == 0);
        pk_buf_free(&b);
        if (el.tag == PK_DER_OID) {
            char text[128];
            pk_der_oid_str(el.val, el.len, text, sizeof(text));
            check(memchr(text, '\0', sizeof(text)) != NULL);
        }
        if ((el.tag & 0x20) != 0 && depth < DER_MAX_DEPTH) {
            walk_der(pk_der_inner(&el), depth + 1);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pk_pem_block block = {0};
    struct pk_err err;
    size_t offset = 0;

    walk_der(pk_slice_make(data, size), 0);
    for (;;) {
        size_t before = offset;
        int r = pk_pem_next(data, size, &offset, &block, &err);
        if (r != 0) {
            check(r == PK_E_NOTFOUND || r == PK_E_INVALID || r == PK_E_TOOBIG);
            check(offset == before && block.der == NULL);
            break;
        }
        check(offset > before && offset <= size);
        check(block.der_len > 0 && block.der_len <= PK_PEM_MAX_DER);
        check(strlen(block.type) > 0 && strlen(block.type) < sizeof(block.type));

        struct pk_buf pem;
        struct pk_pem_block again = {0};
        size_t off2 = 0;
        pk_buf_init(&pem, 2 * PK_PEM_MAX_DER);
        check(pk_pem_encode(block.type, block.der, block.der_len, &pem) == 0);
        check(pk_pem_next(pem.data, pem.len, &off2, &again, NULL) == 0);
        check(off2 == pem.len);
        check(strcmp(again.type, block.type) == 0);
        check(again.der_len == block.der_len && memcmp(again.der, block.der, block.der_len) == 0);
        walk_der(pk_slice_make(block.der, block.der_len), 0);
        pk_pem_block_clear(&again);
        pk_buf_free(&pem);
        pk_pem_block_clear(&block);
        check(block.der == NULL);
    }
    return 0;
}
