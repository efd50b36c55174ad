/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the one address grammar of picket's settings and flags.
 *
 *   HOST:PORT     HOST a numeric IPv4 address or "localhost" (127.0.0.1)
 *   [V6]:PORT     a numeric IPv6 address in brackets (no zone)
 *   unix:/PATH    a unix socket; the path is shorter than sun_path
 *
 * Ports are 1 to 65535 (0 too with PK_ADDR_PORT_ZERO: "pick a free one"). Names are never
 * resolved: binding and connecting must not wait for DNS. The one exception is the Sentry
 * address (PK_ADDR_NAMES), whose host may be a DNS name that the gRPC client resolves itself.
 *
 * Every function here is pure: no socket is touched and nothing blocks. Messages quote the text
 * (escaped: it comes from an operator's file or a flag) and say what is wrong with it; a syntax
 * error (no port, a bare IPv6 address, a bad port) starts with "expected HOST:PORT, [V6]:PORT or
 * unix:/PATH: " when unix sockets are allowed, so the caller only adds where the text came from. */
#ifndef PK_COMMON_ADDR_H
#define PK_COMMON_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/compiler.h"
#include "common/err.h"

/* The longest unix socket path: sun_path less its NUL. */
#define PK_ADDR_MAX_UNIX_PATH 107

/* Room for a host as written (a DNS name is at most 253 bytes) and its NUL. */
#define PK_ADDR_HOST_LEN 256

/* Room for any address pk_addr_format writes, and its NUL. */
#define PK_ADDR_STR_LEN (5 + PK_ADDR_MAX_UNIX_PATH + 1)

/* What pk_addr_parse accepts beyond the grammar above. */
enum pk_addr_flags {
    PK_ADDR_PORT_ZERO = 1u << 0,     /* port 0 is fine (a listener that takes any free port) */
    PK_ADDR_NAMES = 1u << 1,         /* HOST may be a DNS name, kept unresolved; no unix: */
    PK_ADDR_UNIX_RELATIVE = 1u << 2, /* unix:PATH need not be absolute */
};

enum pk_addr_kind {
    PK_ADDR_INET, /* IPv4 or IPv6: sa holds the address and port */
    PK_ADDR_UNIX, /* sa holds the path */
    PK_ADDR_NAME, /* only with PK_ADDR_NAMES: host is a DNS name, sa is unset */
};

struct pk_addr {
    enum pk_addr_kind kind;
    struct sockaddr_storage sa; /* PK_ADDR_INET, PK_ADDR_UNIX: ready for bind() or connect() */
    socklen_t sa_len;
    char host[PK_ADDR_HOST_LEN]; /* PK_ADDR_INET, PK_ADDR_NAME: the host as written, without
                                  * brackets ("localhost" stays "localhost") */
    uint16_t port;               /* PK_ADDR_INET, PK_ADDR_NAME */
};

/* Parse text (borrowed, NUL-terminated) into *out. Returns 0, or PK_E_INVALID with err (may be
 * NULL) saying what is wrong; *out is then unspecified. */
int pk_addr_parse(const char *text, unsigned flags, struct pk_addr *out, struct pk_err *err)
        PK_MUST_USE;

/* Parse a host alone (a numeric IPv4 or IPv6 address, brackets allowed, or "localhost") with
 * port into an PK_ADDR_INET address. Returns 0 or PK_E_INVALID with err naming host. */
int pk_addr_from_host(const char *host, uint16_t port, struct pk_addr *out, struct pk_err *err)
        PK_MUST_USE;

/* Write a in the grammar above into buf (len bytes, PK_ADDR_STR_LEN is always enough; cut to
 * fit otherwise). IPv4 and IPv6 hosts are written numerically ("localhost" as 127.0.0.1).
 * Returns buf. */
const char *pk_addr_format(const struct pk_addr *a, char *buf, size_t len);

/* Whether a can only be reached from this host: a unix socket, 127.0.0.0/8 or ::1. */
bool pk_addr_is_loopback(const struct pk_addr *a);

/* Whether binding a and b at once would take the same connections: the same unix path, or the
 * same family and port where the two hosts are equal or one is the wildcard (0.0.0.0 or ::).
 * IPv6 listeners are IPV6_V6ONLY, so [::]:P and 0.0.0.0:P do not overlap. */
bool pk_addr_overlaps(const struct pk_addr *a, const struct pk_addr *b);

#endif
