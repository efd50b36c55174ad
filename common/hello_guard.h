/* SPDX-License-Identifier: Apache-2.0 */
/* picket: check what a TLS client sends before its first encrypted byte, ahead of wolfSSL.
 *
 * RFC 8446 §4.2.8.2 requires a server to validate the client's key shares: a P-256 share must
 * be an uncompressed point whose coordinates are field elements and which lies on the curve.
 * wolfSSL 5.5.4 as Debian builds it imports the point without that check and answers with a
 * ServerHello and its whole flight; nor does it refuse a ChangeCipherSpec record that comes
 * before the ClientHello (§5: only allowed after it, for middlebox compatibility). A server
 * feeds every byte it receives from the client through pk_hello_guard_feed before handing it
 * to wolfSSL; when the guard refuses, the server sends pk_hello_guard_alert (a plaintext alert
 * record) and closes, and wolfSSL never sees the offending bytes, so no server flight goes out.
 *
 * The guard follows the record layer (records split across reads, several records in one read,
 * a ClientHello split across records) and inspects: a ChangeCipherSpec before the first
 * ClientHello (unexpected_message); each ClientHello's key_share extension (the first, and the
 * second one after a HelloRetryRequest): every secp256r1 share is checked with wolfCrypt
 * (pk_pubkey_from_raw: 65-byte uncompressed point, x and y below p, on the curve), and an
 * X25519 share must have 32 bytes (illegal_parameter otherwise); a ClientHello that does not
 * parse is a decode_error. It stops inspecting (PK_HELLO_DONE) at the first record of another
 * type than handshake or ChangeCipherSpec (TLS 1.3's encrypted flight), at a handshake message
 * after a ClientHello that is not a second ClientHello (TLS 1.2's plaintext flight), and after
 * the second ClientHello. X25519 values need no check here: RFC 7748 allows every 32-byte
 * string, and wolfSSL refuses the all-zero shared secret that small-order points produce.
 *
 * Sans-I/O: no sockets, no clock; one guard per connection, not thread-safe. */
#ifndef PK_HELLO_GUARD_H
#define PK_HELLO_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "compiler.h"

/* TLS alert descriptions (RFC 8446 §6). */
#define PK_TLS_ALERT_UNEXPECTED_MESSAGE 10
#define PK_TLS_ALERT_ILLEGAL_PARAMETER  47
#define PK_TLS_ALERT_DECODE_ERROR       50

/* The bytes of a plaintext fatal alert record. */
#define PK_TLS_ALERT_RECORD_LEN 7

enum pk_hello_verdict {
    PK_HELLO_MORE,   /* nothing wrong so far: keep feeding */
    PK_HELLO_DONE,   /* the cleartext part is over: stop feeding, pass everything through */
    PK_HELLO_REFUSE, /* refuse the connection: send pk_hello_guard_alert, then close */
};

struct pk_hello_guard {
    int state;
    uint8_t header[5];
    size_t header_len;
    size_t record_left;    /* body bytes of the current record still to come */
    uint8_t record_type;   /* of the current record */
    struct pk_buf message; /* a handshake message being reassembled */
    unsigned hellos;       /* ClientHellos seen */
    uint8_t alert;         /* with PK_HELLO_REFUSE */
    char why[160];         /* with PK_HELLO_REFUSE: what was wrong, for the log */
};

void pk_hello_guard_init(struct pk_hello_guard *g);
/* Free what the guard holds; it may be initialised again. */
void pk_hello_guard_free(struct pk_hello_guard *g);

/* Feed the next n bytes the client sent (p borrowed). Once the verdict is DONE or REFUSE it
 * stays so and further bytes are ignored. */
enum pk_hello_verdict pk_hello_guard_feed(struct pk_hello_guard *g, const uint8_t *p, size_t n)
        PK_MUST_USE;

/* The fatal alert record to send after PK_HELLO_REFUSE (legacy version 3.3, as a TLS 1.3
 * server's first records carry). */
void pk_hello_guard_alert(const struct pk_hello_guard *g, uint8_t out[PK_TLS_ALERT_RECORD_LEN]);

/* For a transport's receive callback. A guard on the heap (free with pk_hello_guard_destroy,
 * which sets *g to NULL; NULL is fine). */
struct pk_hello_guard *pk_hello_guard_new(void);
void pk_hello_guard_destroy(struct pk_hello_guard **g);

/* Pass n bytes that are about to go to the TLS library through *g (NULL: nothing to check;
 * returns PK_HELLO_DONE). On PK_HELLO_DONE the guard is destroyed. On PK_HELLO_REFUSE the alert
 * is sent on fd (best effort, non-blocking: the connection closes either way), the reason is
 * copied into why (NUL-terminated) and the guard is destroyed; the caller must not hand these
 * bytes on. */
enum pk_hello_verdict pk_hello_guard_pass(struct pk_hello_guard **g, int fd, const void *buf,
                                          size_t n, char *why, size_t why_len) PK_MUST_USE;

#endif
