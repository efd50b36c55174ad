/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the PROXY protocol v2 header (haproxy doc/proxy-protocol.txt §2.2) that an inbound
 * connection puts before the plaintext it hands the application: the client's and our address,
 * and the peer's SPIFFE ID in a custom TLV (type 0xE0). Pure encoding, no I/O. */
#ifndef PK_PROXY_PROXY_V2_H
#define PK_PROXY_PROXY_V2_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The largest header for a peer ID of at most id_max bytes. */
#define PK_PROXY_V2_HEADER_MAX(id_max) (16 + 36 + 3 + (id_max))

/* Write the header for a connection from src to dst (both borrowed; TCP4 when both are IPv4,
 * TCP6 when both are IPv6, else UNSPEC: the receiver keeps the socket's own addresses) carrying
 * peer_id (borrowed, at most 65535 bytes) into out, which has PK_PROXY_V2_HEADER_MAX(
 * strlen(peer_id)) bytes. Returns the header's length. */
size_t pk_proxy_v2_header(const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
                          const char *peer_id, uint8_t *out);

#endif
