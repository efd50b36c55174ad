/* SPDX-License-Identifier: Apache-2.0 */
/* picket: fuzz target for the gRPC framing helpers.
 *
 * Targets: pk_grpc_deframer_feed and pk_grpc_deframer_finish (the input, cut into chunks whose
 * size comes from the first byte, so every split of a frame is reachable), pk_grpc_frame_encode
 * (each delivered message is re-encoded and must deframe to the same bytes),
 * pk_grpc_percent_decode / pk_grpc_percent_encode (decode(encode(x)) == x), pk_grpc_timeout_parse
 * / pk_grpc_timeout_format and pk_grpc_status_parse on a prefix of the input. */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "common/grpc.h"
#include "fuzz.h"

#define MAX_MESSAGE 4096

struct seen {
    size_t count;
    size_t bytes;
};

static int check_message(void *ctx, struct pk_slice msg)
{
    struct seen *s = ctx;
    struct pk_grpc_deframer d;
    struct pk_buf enc;
    struct seen again = {0};

    PK_ASSERT(msg.len <= MAX_MESSAGE);
    s->count++;
    s->bytes += msg.len;
    /* Re-encode and deframe: exactly one message of the same length must come back. */
    pk_buf_init(&enc, MAX_MESSAGE + PK_GRPC_FRAME_HEADER_LEN);
    PK_ASSERT(pk_grpc_frame_encode(&enc, msg) == 0);
    pk_grpc_deframer_init(&d, MAX_MESSAGE);
    PK_ASSERT(pk_grpc_deframer_feed(&d, enc.data, enc.len, NULL, &again, NULL) == 0);
    PK_ASSERT(pk_grpc_deframer_finish(&d, NULL) == 0);
    PK_ASSERT(pk_grpc_deframer_count(&d) == 1);
    pk_grpc_deframer_free(&d);
    pk_buf_free(&enc);
    return 0;
}

static void fuzz_deframer(const uint8_t *data, size_t size)
{
    struct pk_grpc_deframer d;
    struct seen s = {0};
    size_t chunk;
    int r = 0;

    if (size == 0) {
        return;
    }
    chunk = (size_t)data[0] % 32 + 1;
    data++;
    size--;
    pk_grpc_deframer_init(&d, MAX_MESSAGE);
    for (size_t off = 0; off < size && r == 0; off += chunk) {
        r = pk_grpc_deframer_feed(&d, data + off, PK_MIN(chunk, size - off), check_message, &s,
                                  NULL);
    }
    if (r == 0) {
        r = pk_grpc_deframer_finish(&d, NULL);
    }
    PK_ASSERT(s.count == pk_grpc_deframer_count(&d));
    /* Each message costs at least its 5-byte prefix. */
    PK_ASSERT(s.bytes + s.count * PK_GRPC_FRAME_HEADER_LEN <= size);
    pk_grpc_deframer_free(&d);
}

static void fuzz_text(const uint8_t *data, size_t size)
{
    struct pk_buf enc, dec, raw;
    uint64_t ns;
    int st;
    char text[PK_GRPC_TIMEOUT_STRLEN];
    size_t n = PK_MIN(size, 512);

    pk_buf_init(&enc, 3 * 512);
    pk_buf_init(&dec, 512);
    pk_buf_init(&raw, 512);
    PK_ASSERT(pk_grpc_percent_encode(&enc, data, n) == 0);
    PK_ASSERT(pk_grpc_percent_decode(&dec, enc.data, enc.len) == 0);
    PK_ASSERT(dec.len == n && (n == 0 || memcmp(dec.data, data, n) == 0));
    /* Decoding arbitrary bytes never grows them. */
    PK_ASSERT(pk_grpc_percent_decode(&raw, data, n) == 0);
    PK_ASSERT(raw.len <= n);
    pk_buf_free(&enc);
    pk_buf_free(&dec);
    pk_buf_free(&raw);

    if (pk_grpc_timeout_parse(data, PK_MIN(size, 12), &ns) == 0) {
        uint64_t back;
        pk_grpc_timeout_format(ns, text);
        PK_ASSERT(pk_grpc_timeout_parse((const uint8_t *)text, strlen(text), &back) == 0);
        PK_ASSERT(back >= ns || ns == UINT64_MAX || back == UINT64_MAX);
    }
    if (pk_grpc_status_parse(data, PK_MIN(size, 12), &st) == 0) {
        PK_ASSERT(st >= 0);
        (void)pk_grpc_status_name(st);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_deframer(data, size);
    fuzz_text(data, size);
    return 0;
}
