/* SPDX-License-Identifier: Apache-2.0 */
/* picket: what the X.509 modules (x509_cert, x509_issue, x509_nc, x509) share and nothing else
 * may include: the layout of struct pk_cert and the object identifiers both the parser and the
 * issuer write or compare. */
#ifndef PK_X509_INTERNAL_H
#define PK_X509_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
/* wolfssl/options.h must come before every other wolfSSL header. */
/* clang-format off */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn.h>
/* clang-format on */

#include "pem.h"
#include "x509_cert.h"

#define OID_IS(el, oid) pk_der_is_oid((el), (oid), sizeof(oid))

extern const uint8_t pk_x509__oid_ext_bc[3];
extern const uint8_t pk_x509__oid_at_cn[3];
extern const uint8_t pk_x509__oid_at_c[3];
extern const uint8_t pk_x509__oid_at_l[3];
extern const uint8_t pk_x509__oid_at_st[3];
extern const uint8_t pk_x509__oid_at_o[3];
extern const uint8_t pk_x509__oid_at_ou[3];

/* A part of cert->der. */
struct span {
    size_t off;
    size_t len;
};

struct pk_cert {
    uint8_t *der;
    size_t der_len;
    struct span tbs;     /* TBSCertificate, whole element */
    struct span sig;     /* signature bits, without the unused-bits octet */
    struct span serial;  /* INTEGER contents */
    struct span issuer;  /* Name, whole element */
    struct span subject; /* Name, whole element */
    struct span spki;    /* SubjectPublicKeyInfo, whole element */
    struct span skid;    /* subject key identifier bytes; len 0 when absent */
    struct span nc;      /* NameConstraints SEQUENCE, whole element; len 0 when absent */
    enum pk_sig_alg sig_alg;
    time_t not_before;
    time_t not_after;
    char *subject_str;
    char *issuer_str;
    char *uris[PK_CERT_MAX_URIS];
    size_t n_uris;
    size_t n_dns;
    bool san_critical;
    bool has_bc;
    bool is_ca;
    int path_len;
    bool has_ku;
    unsigned ku;
    bool has_eku;
    unsigned eku;
    enum pk_key_type key_type;
    /* wolfSSL's view of the key identifiers, with which its certificate manager finds an issuer:
     * the authority key identifier (when present), and the subject's own identifier, from its
     * extension or else computed from the public key. Both KEYID_SIZE bytes, hashed by wolfSSL
     * when the extension holds another length. */
    bool has_akid;
    bool has_skid_ext;
    uint8_t akid[KEYID_SIZE];
    uint8_t keyid[KEYID_SIZE];
};

/* The bytes of a part of cert's DER (borrowed from cert). */
static inline struct pk_slice pk_x509__part(const struct pk_cert *cert, struct span s)
{
    return pk_slice_make(cert->der + s.off, s.len);
}

static inline bool pk_x509__slices_equal(struct pk_slice a, struct pk_slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* "the leaf certificate (URI spiffe://...)" / "intermediate #2 (O=...)" for messages: role, then
 * the index when it is not 0, then the first URI SAN or else the subject. */
void pk_x509__describe(const struct pk_cert *cert, const char *role, size_t index, char *out,
                       size_t out_len);

#endif
