/* SPDX-License-Identifier: Apache-2.0 */
/* picket: destinations (address block and port range) and the map of a transparent listener.
 *
 * A destination is written `CIDR [PORTS]`: CIDR is an IPv4 or IPv6 address block in its usual
 * form ("10.0.0.0/8", "fd00::/8"; a bare address means the one address), with no bit set past
 * the prefix ("10.1.2.3/8" is refused: it is a typo for 10.0.0.0/8 or 10.1.2.3/32); PORTS is
 * one TCP port ("8080") or an inclusive range ("8000-8099"), and leaving it out means every
 * port. Tokens are separated by blanks.
 *
 * A map line of a transparent listener is `CIDR [PORTS] ACTION`, where ACTION says whom a
 * connection to that destination must reach:
 *   spiffe://TD/PATH   exactly this SPIFFE ID
 *   app=APP            app APP of our namespace and trust domain; app=NS/APP for namespace NS
 *   any                any workload of our own trust domain
 *   passthrough        nobody: the bytes go out as they are, without TLS (logged and counted)
 *   deny               nobody: the connection is refused
 *
 * A lookup picks the most specific line that covers an address and port: the longest prefix,
 * then the narrowest port range (one port before a range before every port), then the first
 * in the file. So `10.0.0.0/8 deny` and `10.1.0.0/16 8080 app=web` send 10.1.2.3:8080 to web
 * and refuse everything else of 10/8, whatever their order.
 *
 * Everything here is pure: parsing, formatting and lookups never block and touch no socket. */
#ifndef PK_COMMON_DSTMAP_H
#define PK_COMMON_DSTMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/compiler.h"
#include "common/err.h"

/* Room for a formatted CIDR ("ffff:...:ffff/128") and its NUL. */
#define PK_DST_CIDR_STR_LEN 48
/* Room for formatted ports ("65535:65535") and its NUL. */
#define PK_DST_PORTS_STR_LEN 12

struct pk_dst {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* the network, in network byte order; 4 bytes used for AF_INET */
    unsigned prefix;  /* 0 to 32, or 0 to 128 */
    uint16_t port_lo; /* inclusive; 1 to 65535, or 0 with port_hi 65535 for every port */
    uint16_t port_hi;
};

enum pk_dst_action {
    PK_DST_SPIFFE_ID,   /* expect exactly arg */
    PK_DST_APP_ID,      /* expect app arg ("APP" or "NS/APP") of our trust domain */
    PK_DST_ANY,         /* any workload of our trust domain */
    PK_DST_PASSTHROUGH, /* plaintext, no identity */
    PK_DST_DENY,        /* refuse */
};

struct pk_dst_rule {
    struct pk_dst dst;
    enum pk_dst_action action;
    char *arg; /* PK_DST_SPIFFE_ID and PK_DST_APP_ID: owned by the rule; NULL otherwise */
    /* PK_DST_APP_ID, arg taken apart: the app id, and the namespace of app=NS/APP (NULL for
     * app=APP: ours); owned by the rule, NULL otherwise */
    char *app_id;
    char *app_ns;
};

/* Parse a destination, `CIDR [PORTS]`, from text (borrowed, NUL-terminated). On success fills
 * *out and returns 0; PK_E_INVALID with err saying what is wrong and quoting the input
 * otherwise (*out is then unspecified). */
int pk_dst_parse(const char *text, struct pk_dst *out, struct pk_err *err) PK_MUST_USE;

/* Parse the ports alone, `PORT` or `LO-HI` (text borrowed), into out as a destination that
 * covers every IPv4 address (only its ports are meant to be used). PK_E_INVALID with err
 * quoting the input otherwise. */
int pk_dst_parse_ports(const char *text, struct pk_dst *out, struct pk_err *err) PK_MUST_USE;

/* Parse a map line, `CIDR [PORTS] ACTION` (text borrowed). On success *out holds the rule and
 * the caller owns its arg (pk_dst_rule_clear); PK_E_INVALID with err as above otherwise, and
 * then *out owns nothing. The SPIFFE ID of a spiffe:// action must parse (pk_spiffe_parse) and
 * the names of app= are checked as path segments. */
int pk_dst_rule_parse(const char *text, struct pk_dst_rule *out, struct pk_err *err) PK_MUST_USE;

/* Free what a rule owns; the struct itself stays the caller's. */
void pk_dst_rule_clear(struct pk_dst_rule *rule);

/* Whether dst covers addr (4 or 16 bytes in network order, of family) and port. */
bool pk_dst_covers(const struct pk_dst *dst, int family, const uint8_t *addr, uint16_t port);

/* Whether dst covers every port. */
bool pk_dst_any_port(const struct pk_dst *dst);

/* The CIDR of dst, "10.0.0.0/8" or "fd00::/8", always with its prefix; buf must have
 * PK_DST_CIDR_STR_LEN bytes. Returns buf. */
const char *pk_dst_format_cidr(const struct pk_dst *dst, char *buf);

/* The ports of dst as iptables writes them: "8080" or "8000:8099"; "" for every port. buf must
 * have PK_DST_PORTS_STR_LEN bytes. Returns buf. */
const char *pk_dst_format_ports(const struct pk_dst *dst, char *buf);

/* The most specific of n rules (borrowed) covering the address of sa (AF_INET or AF_INET6;
 * anything else covers nothing), as described at the top; NULL when none does. */
const struct pk_dst_rule *pk_dst_lookup(const struct pk_dst_rule *rules, size_t n,
                                        const struct sockaddr *sa);

#endif
