/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the PROXY protocol v2 header (see proxy_v2.h). */
#include "proxy/proxy_v2.h"

#include <netinet/in.h>
#include <string.h>

#define PP2_SIGNATURE       "\r\n\r\n\0\r\nQUIT\n"
#define PP2_SIGNATURE_LEN   12
#define PP2_VERSION_PROXY   0x21 /* version 2, command PROXY */
#define PP2_FAM_UNSPEC      0x00
#define PP2_FAM_TCP4        0x11
#define PP2_FAM_TCP6        0x21
#define PP2_TYPE_MIN_CUSTOM 0xE0

size_t pk_proxy_v2_header(const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
                          const char *peer_id, uint8_t *out)
{
    size_t id_len = strlen(peer_id);
    size_t n = PP2_SIGNATURE_LEN + 4;
    uint8_t fam = PP2_FAM_UNSPEC;

    memcpy(out, PP2_SIGNATURE, PP2_SIGNATURE_LEN);
    out[12] = PP2_VERSION_PROXY;
    if (src->ss_family == AF_INET && dst->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)src;
        const struct sockaddr_in *d = (const struct sockaddr_in *)dst;
        fam = PP2_FAM_TCP4;
        memcpy(out + n, &s->sin_addr, 4);
        memcpy(out + n + 4, &d->sin_addr, 4);
        memcpy(out + n + 8, &s->sin_port, 2);
        memcpy(out + n + 10, &d->sin_port, 2);
        n += 12;
    } else if (src->ss_family == AF_INET6 && dst->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)src;
        const struct sockaddr_in6 *d = (const struct sockaddr_in6 *)dst;
        fam = PP2_FAM_TCP6;
        memcpy(out + n, &s->sin6_addr, 16);
        memcpy(out + n + 16, &d->sin6_addr, 16);
        memcpy(out + n + 32, &s->sin6_port, 2);
        memcpy(out + n + 34, &d->sin6_port, 2);
        n += 36;
    }
    /* Unix sockets (or mixed families) have no TCP addresses to tell: UNSPEC, but the receiver
     * still reads the TLVs. */
    out[13] = fam;
    out[n++] = PP2_TYPE_MIN_CUSTOM;
    out[n++] = (uint8_t)(id_len >> 8);
    out[n++] = (uint8_t)id_len;
    memcpy(out + n, peer_id, id_len);
    n += id_len;
    size_t body = n - (PP2_SIGNATURE_LEN + 4);
    out[14] = (uint8_t)(body >> 8);
    out[15] = (uint8_t)body;
    return n;
}
