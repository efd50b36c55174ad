/* SPDX-License-Identifier: Apache-2.0 */
/* picket: SO_ORIGINAL_DST and IP6T_SO_ORIGINAL_DST. */
#include "proxy/origdst.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

/* From <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>, which clash with
 * glibc's <netinet/in.h>; the values are kernel ABI. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

bool pk_origdst_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) {
        return false;
    }
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

int pk_origdst_get(int fd, struct sockaddr_storage *out, socklen_t *out_len, struct pk_err *err)
{
    struct sockaddr_storage local, orig;
    socklen_t len = sizeof(local);
    int level, name;

    if (getsockname(fd, (struct sockaddr *)&local, &len) != 0) {
        return pk_err_set(err, -errno, "getsockname: %s", strerror(errno));
    }
    memset(&orig, 0, sizeof(orig));
    if (local.ss_family == AF_INET) {
        level = SOL_IP;
        name = SO_ORIGINAL_DST;
        len = sizeof(struct sockaddr_in);
    } else if (local.ss_family == AF_INET6) {
        level = SOL_IPV6;
        name = IP6T_SO_ORIGINAL_DST;
        len = sizeof(struct sockaddr_in6);
    } else {
        return pk_err_set(err, PK_E_NOTFOUND, "not a TCP/IP socket: no original destination");
    }
    if (getsockopt(fd, level, name, &orig, &len) != 0) {
        int e = errno;
        /* ENOENT: no connection-tracking entry, so nothing redirected this connection. */
        if (e == ENOENT) {
            return pk_err_set(err, PK_E_NOTFOUND,
                              "no original destination: the connection was not redirected");
        }
        return pk_err_set(err, -e, "getsockopt(SO_ORIGINAL_DST): %s", strerror(e));
    }
    orig.ss_family = local.ss_family;
    if (pk_origdst_same(&orig, &local)) {
        return pk_err_set(err, PK_E_NOTFOUND,
                          "no original destination: the client connected to the listener itself "
                          "instead of being redirected");
    }
    *out = orig;
    *out_len = len;
    return 0;
}
