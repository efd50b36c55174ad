/* SPDX-License-Identifier: Apache-2.0 */
/* picket: does a connection start with a TLS ClientHello? For permissive inbound listeners.
 *
 * A TLS client speaks first, and its first bytes are fixed by the record layer (RFC 8446 §5.1,
 * the same in TLS 1.0 to 1.2): content type 22 (handshake), a legacy record version 3.x with x
 * from 0 to 4, a 16-bit length of at most 2^14 that covers at least a handshake header, then
 * handshake type 1 (ClientHello, §4). Six bytes settle it; a plaintext protocol almost never
 * starts with byte 22, so most plaintext is recognised from its first byte. SSL 2.0 hellos are
 * plaintext here: picket speaks TLS 1.2 and 1.3 only. Pure; never blocks. */
#ifndef PK_PROXY_SNIFF_H
#define PK_PROXY_SNIFF_H

#include <stddef.h>
#include <stdint.h>

/* The most bytes pk_sniff_client_hello needs. */
#define PK_SNIFF_BYTES 6

enum pk_sniff_result {
    PK_SNIFF_TLS,   /* the bytes begin a TLS ClientHello */
    PK_SNIFF_PLAIN, /* they cannot */
    PK_SNIFF_MORE,  /* every byte so far fits a ClientHello: wait for more */
};

/* Classify the first len bytes a client sent (p borrowed; len may be 0). */
enum pk_sniff_result pk_sniff_client_hello(const uint8_t *p, size_t len);

#endif
