/* SPDX-License-Identifier: Apache-2.0 */
/* picket: X.509 name constraints on URI SANs (RFC 5280 §4.2.1.10). */
#include "x509_nc.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "pem.h"
#include "x509_internal.h"

bool pk_cert_has_name_constraints(const struct pk_cert *cert)
{
    return cert->nc.len > 0;
}

/* The host of a URI: between "scheme://" (and any userinfo@) and the next ':', '/', '?' or
 * '#'. False when there is none. */
static bool uri_host(const char *uri, const char **host, size_t *len)
{
    const char *p = strstr(uri, "://");
    if (p == NULL) {
        return false;
    }
    p += 3;
    size_t n = strcspn(p, "/?#");
    const char *at = memchr(p, '@', n);
    if (at != NULL) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    const char *colon = memchr(p, ':', n);
    if (colon != NULL) {
        n = (size_t)(colon - p);
    }
    *host = p;
    *len = n;
    return n > 0;
}

/* RFC 5280 §4.2.1.10: a URI constraint names a host ("example.test": that host only) or a
 * domain (".example.test": any host below it, not the domain itself); case-insensitive. */
static bool uri_host_matches(const char *host, size_t host_len, const uint8_t *base, size_t len)
{
    if (len == 0) {
        return false;
    }
    if (base[0] == '.') {
        return host_len > len && strncasecmp(host + host_len - len, (const char *)base, len) == 0;
    }
    return host_len == len && strncasecmp(host, (const char *)base, len) == 0;
}

/* Walk one GeneralSubtrees list: *matched when uri's host matches a URI base. Forms that
 * wolfSSL evaluates itself (rfc822Name, dNSName, directoryName) are skipped; any other form,
 * or a minimum/maximum, is refused (PK_E_UNSUPPORTED): what nobody checks must not pass. */
static int walk_subtrees(struct pk_slice list, const char *host, size_t host_len, bool *any_uri,
                         bool *matched)
{
    while (list.len > 0) {
        struct pk_der subtree, base;
        if (pk_der_expect(&list, PK_DER_SEQUENCE, &subtree) != 0) {
            return PK_E_INVALID;
        }
        struct pk_slice parts = pk_der_inner(&subtree);
        if (pk_der_read(&parts, &base) != 0) {
            return PK_E_INVALID;
        }
        if (parts.len != 0) {
            return PK_E_UNSUPPORTED; /* minimum or maximum: RFC 5280 says never */
        }
        switch (base.tag) {
        case PK_DER_CTX(1):      /* rfc822Name */
        case PK_DER_CTX(2):      /* dNSName */
        case PK_DER_CTX_CONS(4): /* directoryName */
            break;
        case PK_DER_CTX(6): /* uniformResourceIdentifier */
            *any_uri = true;
            if (uri_host_matches(host, host_len, base.val, base.len)) {
                *matched = true;
            }
            break;
        default:
            return PK_E_UNSUPPORTED;
        }
    }
    return 0;
}

int pk_cert_name_constraints_allow_uri(const struct pk_cert *ca, const char *uri,
                                       struct pk_err *err)
{
    struct pk_slice in = pk_x509__part(ca, ca->nc);
    struct pk_der nc, part;
    const char *host = NULL;
    size_t host_len = 0;
    bool permitted_uri = false, permitted_hit = false, excluded_uri = false, excluded_hit = false;
    int r = 0;

    if (ca->nc.len == 0) {
        return 0;
    }
    if (!uri_host(uri, &host, &host_len)) {
        return pk_err_set(err, PK_E_INVALID,
                          "URI '%.200s' has no host to check against the "
                          "name constraints of '%.200s'",
                          uri, ca->subject_str);
    }
    if (pk_der_expect(&in, PK_DER_SEQUENCE, &nc) != 0) {
        return pk_err_set(err, PK_E_INVALID, "malformed name constraints in '%.200s'",
                          ca->subject_str);
    }
    for (struct pk_slice body = pk_der_inner(&nc); r == 0 && body.len > 0;) {
        if (pk_der_read(&body, &part) != 0) {
            r = PK_E_INVALID;
        } else if (part.tag == PK_DER_CTX_CONS(0)) {
            r = walk_subtrees(pk_der_inner(&part), host, host_len, &permitted_uri, &permitted_hit);
        } else if (part.tag == PK_DER_CTX_CONS(1)) {
            r = walk_subtrees(pk_der_inner(&part), host, host_len, &excluded_uri, &excluded_hit);
        } else {
            r = PK_E_INVALID;
        }
    }
    if (r == PK_E_UNSUPPORTED) {
        return pk_err_set(err, PK_E_UNSUPPORTED,
                          "name constraints of '%.200s' use a form picket does not evaluate",
                          ca->subject_str);
    }
    if (r != 0) {
        return pk_err_set(err, PK_E_INVALID, "malformed name constraints in '%.200s'",
                          ca->subject_str);
    }
    if (excluded_hit || (permitted_uri && !permitted_hit)) {
        return pk_err_set(err, PK_E_UNTRUSTED,
                          "URI '%.200s' violates the name constraints of '%.200s'", uri,
                          ca->subject_str);
    }
    (void)excluded_uri;
    return 0;
}
