/* SPDX-License-Identifier: Apache-2.0 */
/* picket: fuzz target for the HTTP/2 gRPC server session.
 *
 * Targets: pk_h2_server_recv and pk_h2_server_send (nghttp2 server session, header validation,
 * request deframing, the handler call and response/trailer generation, RST_STREAM/GOAWAY paths),
 * pk_h2_server_want_read/want_write/idle. The input is what a client sent, fed in chunks whose
 * size comes from the first byte; output is drained through a small capped buffer after every
 * chunk, as a transport with backpressure would. The handler echoes, or fails for requests
 * starting with 'f', so both response shapes are reached. Seeds are client byte streams
 * captured from tests/unit/test_h2.c. */
#include <string.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "common/grpc.h"
#include "common/h2.h"
#include "fuzz.h"

static const void *route(void *ctx, const char *path)
{
    return strncmp(path, "/picket.test.Echo/", 18) == 0 ? (const void *)path : NULL;
}

static void handle(void *ctx, const void *method, const struct pk_h2_request *req,
                   struct pk_h2_reply *reply)
{
    int *calls = ctx;
    (*calls)++;
    if (req->message.len > 0 && req->message.ptr[0] == 'f') {
        reply->status = PK_GRPC_PERMISSION_DENIED;
        memcpy(reply->message, "denied\n%", 9);
        return;
    }
    if (pk_buf_append(&reply->body, req->message.ptr, req->message.len) == 0) {
        reply->status = PK_GRPC_OK;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int calls = 0;
    struct pk_h2_server_config cfg = {
            .max_message = 4096,
            .max_header_list = 4096,
            .max_concurrent_streams = 8,
            .route = route,
            .handle = handle,
            .ctx = &calls,
    };
    struct pk_h2_server *s = NULL;
    struct pk_buf out;
    size_t chunk;

    if (size == 0 || pk_h2_server_new(&cfg, &s, NULL) != 0) {
        return 0;
    }
    chunk = (size_t)data[0] * 8 + 1;
    data++;
    size--;
    pk_buf_init(&out, 1024);
    for (size_t off = 0; off < size; off += chunk) {
        if (pk_h2_server_recv(s, data + off, PK_MIN(chunk, size - off), NULL) != 0) {
            break;
        }
        /* Drain everything queued, 1 KiB at a time. */
        for (int i = 0; i < 4096; i++) {
            pk_buf_reset(&out);
            if (pk_h2_server_send(s, &out) != 0 || out.len == 0) {
                break;
            }
        }
        if (!pk_h2_server_want_read(s) && !pk_h2_server_want_write(s)) {
            break;
        }
    }
    (void)pk_h2_server_idle(s);
    PK_ASSERT(pk_h2_server_calls_ok(s) <= pk_h2_server_calls(s));
    PK_ASSERT(pk_h2_server_calls(s) >= (uint64_t)calls);
    pk_buf_free(&out);
    pk_h2_server_free(s);
    return 0;
}
