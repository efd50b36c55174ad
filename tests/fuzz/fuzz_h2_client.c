/* SPDX-License-Identifier: Apache-2.0 */
/* picket: fuzz target for the HTTP/2 gRPC client session.
 *
 * Targets: pk_h2_client_new, pk_h2_client_send (the request, drained first as a transport would
 * after the handshake), pk_h2_client_recv with the input as the server's bytes (response
 * headers, DATA deframing, trailers and trailers-only responses, grpc-status / HTTP status
 * mapping, RST_STREAM and GOAWAY), pk_h2_client_done / pk_h2_client_result and
 * pk_h2_client_abort. The first byte sets the chunk size. Seeds are server byte streams captured
 * from tests/unit/test_h2.c. */
#include <string.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "common/grpc.h"
#include "common/h2.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const md[] = {"x-retry-attempty", "1", NULL};
    struct pk_h2_call call = {
            .authority = "localhost:50001",
            .path = "/picket.test.Echo/Echo",
            .timeout_ns = 3000000000ULL,
            .metadata = md,
            .request = pk_slice_make("ping", 4),
            .max_response = 4096,
            .max_header_list = 4096,
    };
    struct pk_h2_client *c = NULL;
    struct pk_buf out;
    size_t chunk;

    if (size == 0 || pk_h2_client_new(&call, &c, NULL) != 0) {
        return 0;
    }
    chunk = (size_t)data[0] * 8 + 1;
    data++;
    size--;
    pk_buf_init(&out, 1024);
    for (int i = 0; i < 64; i++) {
        pk_buf_reset(&out);
        if (pk_h2_client_send(c, &out) != 0 || out.len == 0) {
            break;
        }
    }
    for (size_t off = 0; off < size && !pk_h2_client_done(c); off += chunk) {
        if (pk_h2_client_recv(c, data + off, PK_MIN(chunk, size - off)) != 0) {
            break;
        }
        for (int i = 0; i < 4096; i++) {
            pk_buf_reset(&out);
            if (pk_h2_client_send(c, &out) != 0 || out.len == 0) {
                break;
            }
        }
    }
    /* End of input = the transport closed. */
    pk_h2_client_abort(c, PK_GRPC_UNAVAILABLE, "connection closed");
    PK_ASSERT(pk_h2_client_done(c));
    const struct pk_h2_result *res = pk_h2_client_result(c);
    PK_ASSERT(res->message != NULL);
    PK_ASSERT(res->status == PK_GRPC_OK || res->response.len == 0);
    PK_ASSERT(res->response.len <= call.max_response);
    pk_buf_free(&out);
    pk_h2_client_free(c);
    return 0;
}
