/* SPDX-License-Identifier: Apache-2.0 */
/* picket: gRPC message framing, status codes, grpc-message and grpc-timeout encodings.
 *
 * Everything here is a pure function over bytes, following the gRPC "PROTOCOL-HTTP2" spec
 * (github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md):
 *
 *   Length-Prefixed-Message = Compressed-Flag (1 byte) Message-Length (4 bytes, big endian) Message
 *
 * picket never negotiates compression, so a message whose Compressed-Flag is set is an error, as
 * is any flag value other than 0 or 1. The deframer enforces a hard maximum message size: a
 * declared length above it fails as soon as the 5-byte prefix is seen, before any body byte is
 * buffered, so a peer cannot make us allocate what it merely claims. */
#ifndef PK_GRPC_H
#define PK_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "compiler.h"
#include "err.h"

/* gRPC status codes (doc/statuscodes.md). The numeric values are on the wire in grpc-status. */
enum pk_grpc_status {
    PK_GRPC_OK = 0,
    PK_GRPC_CANCELLED = 1,
    PK_GRPC_UNKNOWN = 2,
    PK_GRPC_INVALID_ARGUMENT = 3,
    PK_GRPC_DEADLINE_EXCEEDED = 4,
    PK_GRPC_NOT_FOUND = 5,
    PK_GRPC_ALREADY_EXISTS = 6,
    PK_GRPC_PERMISSION_DENIED = 7,
    PK_GRPC_RESOURCE_EXHAUSTED = 8,
    PK_GRPC_FAILED_PRECONDITION = 9,
    PK_GRPC_ABORTED = 10,
    PK_GRPC_OUT_OF_RANGE = 11,
    PK_GRPC_UNIMPLEMENTED = 12,
    PK_GRPC_INTERNAL = 13,
    PK_GRPC_UNAVAILABLE = 14,
    PK_GRPC_DATA_LOSS = 15,
    PK_GRPC_UNAUTHENTICATED = 16,
};

/* Size of the length prefix in front of every message. */
#define PK_GRPC_FRAME_HEADER_LEN 5

/* The canonical upper-case name of a status ("OK", "DEADLINE_EXCEEDED", ...), or "UNKNOWN_CODE"
 * for a value outside 0..16. Static storage. */
const char *pk_grpc_status_name(int status);

/* Parse a grpc-status header value (borrows p, len bytes, no NUL needed): 1 to 10 ASCII digits,
 * nothing else. Any value up to INT32_MAX is accepted (codes above 16 are legal on the wire and
 * are treated as UNKNOWN by callers). 0 or PK_E_INVALID; *out is written only on success. */
int pk_grpc_status_parse(const uint8_t *p, size_t len, int *out) PK_MUST_USE;

/* Map an HTTP :status to a gRPC code for a response that carried no grpc-status
 * (doc/http-grpc-status-mapping.md): 400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED,
 * 404 UNIMPLEMENTED, 429/502/503/504 UNAVAILABLE, anything else UNKNOWN. */
int pk_grpc_status_from_http(int http_status);

/* Append one length-prefixed, uncompressed message (borrows msg) to out. 0, PK_E_TOOBIG when the
 * message is longer than 2^32-1 bytes or out's cap would be passed (out is then unchanged). */
int pk_grpc_frame_encode(struct pk_buf *out, struct pk_slice msg) PK_MUST_USE;

/* Called once for each complete message. msg is borrowed and valid only during the call.
 * Return 0 to continue; any other value stops pk_grpc_deframer_feed, which returns it. */
typedef int (*pk_grpc_message_fn)(void *ctx, struct pk_slice msg);

/* An incremental deframer. Keep it on the stack or embed it; the fields are private. */
struct pk_grpc_deframer {
    uint8_t _hdr[PK_GRPC_FRAME_HEADER_LEN];
    size_t _hdr_len; /* prefix bytes seen for the current message */
    uint32_t _want;  /* declared length of the current message, once _hdr_len == 5 */
    struct pk_buf _body;
    size_t _max;
    size_t _count; /* complete messages delivered so far */
    int _failed;   /* sticky: the first error returned */
};

/* Start a deframer that accepts messages of at most max_message bytes. Allocates nothing. */
void pk_grpc_deframer_init(struct pk_grpc_deframer *d, size_t max_message);

/* Release buffered bytes. The deframer may be re-initialised afterwards. */
void pk_grpc_deframer_free(struct pk_grpc_deframer *d);

/* Feed len bytes (borrows p). Each complete message is passed to fn (which may be NULL to only
 * validate), several per call if present; a message split across calls is buffered, one that lies
 * entirely inside p is passed without copying. Returns 0, or:
 *   PK_E_TOOBIG       a declared length above max_message (nothing of it was buffered),
 *   PK_E_UNSUPPORTED  Compressed-Flag 1 (we never negotiate compression),
 *   PK_E_PROTO        a Compressed-Flag other than 0 or 1,
 *   fn's non-zero return value.
 * Errors are sticky: later calls return the same value and deliver nothing. err (may be NULL)
 * receives a sentence naming the problem. */
int pk_grpc_deframer_feed(struct pk_grpc_deframer *d, const uint8_t *p, size_t len,
                          pk_grpc_message_fn fn, void *ctx, struct pk_err *err) PK_MUST_USE;

/* The stream ended: 0 when it ended on a message boundary, PK_E_TRUNCATED when a prefix or a
 * body was cut short, or the sticky error of an earlier feed. */
int pk_grpc_deframer_finish(struct pk_grpc_deframer *d, struct pk_err *err) PK_MUST_USE;

/* Number of complete messages delivered so far. */
size_t pk_grpc_deframer_count(const struct pk_grpc_deframer *d);

/* Bytes of an incomplete message body held right now (what the deframer costs in memory). */
size_t pk_grpc_deframer_buffered(const struct pk_grpc_deframer *d);

/* Percent-encode a status message for grpc-message (borrows msg, len bytes): every byte outside
 * 0x20..0x7e, and '%' itself, becomes "%XX" with upper-case hex. Appends to out; 0 or
 * PK_E_TOOBIG (out is then left with a partial encoding; reset it). */
int pk_grpc_percent_encode(struct pk_buf *out, const uint8_t *msg, size_t len) PK_MUST_USE;

/* Decode a grpc-message value (borrows p). As the spec requires, malformed sequences are never
 * an error: a '%' not followed by two hex digits is kept literally. Appends to out; 0 or
 * PK_E_TOOBIG. */
int pk_grpc_percent_decode(struct pk_buf *out, const uint8_t *p, size_t len) PK_MUST_USE;

/* Longest grpc-timeout value we produce, with its NUL: 8 digits + unit + NUL. */
#define PK_GRPC_TIMEOUT_STRLEN 10

/* Parse a grpc-timeout value (borrows p): 1 to 8 ASCII digits followed by one unit out of
 * H (hours), M (minutes), S (seconds), m (milliseconds), u (microseconds), n (nanoseconds).
 * *out_ns receives the timeout in nanoseconds, saturated at UINT64_MAX. 0 or PK_E_INVALID. */
int pk_grpc_timeout_parse(const uint8_t *p, size_t len, uint64_t *out_ns) PK_MUST_USE;

/* Format a timeout for grpc-timeout, using the finest unit whose value fits in 8 digits and
 * rounding up so the peer never sees a shorter deadline than ours. timeout_ns 0 is written as
 * "0n". Writes a NUL-terminated string into out (PK_GRPC_TIMEOUT_STRLEN bytes). */
void pk_grpc_timeout_format(uint64_t timeout_ns, char out[PK_GRPC_TIMEOUT_STRLEN]);

#endif
