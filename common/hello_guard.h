/* SPDX-License-Identifier: Apache-2.0 */
/* picket: check what a TLS peer sends before its first encrypted byte, ahead of wolfSSL.
 *
 * RFC 8446 §4.2.8.2 requires each side to validate the other's key share: a P-256 share must be
 * an uncompressed point whose coordinates are field elements and which lies on the curve.
 * wolfSSL 5.5.4 (Debian's build and picket's "fast" one; only WOLFSSL_VALIDATE_ECC_IMPORT would
 * do it, at a full key check per import) imports the point without that check, and as a server
 * answers with a ServerHello and its whole flight; nor does it refuse a ChangeCipherSpec record
 * that comes before the hello (§5: only allowed after it, for middlebox compatibility). A side
 * feeds every byte it receives from its peer through pk_hello_guard_feed before handing it to
 * wolfSSL; when the guard refuses, the side sends pk_hello_guard_alert (a plaintext alert
 * record) and closes, and wolfSSL never sees the offending bytes, so a server sends no flight.
 *
 * The guard follows the record layer (records split across reads, several records in one read,
 * a hello split across records) and inspects: a ChangeCipherSpec before the peer's first hello
 * (unexpected_message); the key_share extension of each ClientHello (the first, and the second
 * one after a HelloRetryRequest) or ServerHello (after a HelloRetryRequest too): a secp256r1
 * share is checked with wolfCrypt (pk_pubkey_from_raw: 65-byte uncompressed point, x and y
 * below p, on the curve), an X25519 share must have 32 bytes and not be one of the order-8
 * points that wolfSSL's own check lets through (with them the shared secret is all zeros,
 * which RFC 8446 §7.4.2 says to refuse; wolfSSL 5.5.4 only refuses that when built with
 * WOLFSSL_ECDHX_SHARED_NOT_ZERO) (illegal_parameter); a hello that does not parse is a
 * decode_error. It stops inspecting (PK_HELLO_DONE) at the first record of another type than
 * handshake or ChangeCipherSpec (TLS 1.3's encrypted part), at a handshake message after a
 * hello that is not another hello (TLS 1.2's plaintext flight), after a ServerHello that is not
 * a HelloRetryRequest and after a second ClientHello. TLS 1.2's ClientKeyExchange and
 * ServerKeyExchange are not inspected.
 *
 * Sans-I/O: no sockets, no clock; one guard per connection, not thread-safe. */
#ifndef PK_HELLO_GUARD_H
#define PK_HELLO_GUARD_H

#include <stdbool.h>
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

/* Whose flight the guard checks. */
enum pk_hello_peer {
    PK_HELLO_PEER_CLIENT, /* we are the server: the client's ClientHello(s) */
    PK_HELLO_PEER_SERVER, /* we are the client: the server's ServerHello(s) */
};

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
    bool from_server;      /* checking a server's flight */
    unsigned hellos;       /* hellos seen */
    uint8_t alert;         /* with PK_HELLO_REFUSE */
    char why[160];         /* with PK_HELLO_REFUSE: what was wrong, for the log */
};

void pk_hello_guard_init(struct pk_hello_guard *g, enum pk_hello_peer peer);
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
struct pk_hello_guard *pk_hello_guard_new(enum pk_hello_peer peer);
void pk_hello_guard_destroy(struct pk_hello_guard **g);

/* Pass n bytes that are about to go to the TLS library through *g (NULL: nothing to check;
 * returns PK_HELLO_DONE). On PK_HELLO_DONE the guard is destroyed. On PK_HELLO_REFUSE the alert
 * is sent on fd (best effort, non-blocking: the connection closes either way), the reason is
 * copied into why (NUL-terminated) and the guard is destroyed; the caller must not hand these
 * bytes on. */
enum pk_hello_verdict pk_hello_guard_pass(struct pk_hello_guard **g, int fd, const void *buf,
                                          size_t n, char *why, size_t why_len) PK_MUST_USE;

#endif
