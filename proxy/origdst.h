/* SPDX-License-Identifier: Apache-2.0 */
/* picket: where a connection redirected by the firewall was going (SO_ORIGINAL_DST).
 *
 * An iptables/nftables REDIRECT rewrites the destination of a connection to a port of this
 * host; the connection tracker remembers the address and port the client asked for, and
 * Linux hands them out through getsockopt on the accepted socket: SO_ORIGINAL_DST at level
 * SOL_IP for IPv4 (a struct sockaddr_in), IP6T_SO_ORIGINAL_DST at level SOL_IPV6 for IPv6 (a
 * struct sockaddr_in6). Both need the nf_conntrack module that REDIRECT loads anyway. */
#ifndef PK_PROXY_ORIGDST_H
#define PK_PROXY_ORIGDST_H

#include <stdbool.h>
#include <sys/socket.h>

#include "common/compiler.h"
#include "common/err.h"

/* The original destination of the accepted TCP socket fd, written to *out and *out_len.
 * Returns 0; PK_E_NOTFOUND when the connection was not redirected — the kernel has no record
 * of it, or the original destination is the socket's own local address, as it is for a client
 * that connected to the listener directly; -errno for other failures. err (may be NULL) says
 * which. Never blocks. */
int pk_origdst_get(int fd, struct sockaddr_storage *out, socklen_t *out_len, struct pk_err *err)
        PK_MUST_USE;

/* Whether two IPv4 or IPv6 socket addresses have the same family, address and port. */
bool pk_origdst_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

#endif
