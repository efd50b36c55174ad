/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/recheck.h"

#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

/* The issuing path of a leaf: its issuer's name and whatever the peer sent above it. */
struct pk_recheck_entry {
    uint8_t *key;
    size_t key_len;
    int rc;
    char msg[sizeof(((struct pk_err *)0)->msg)];
};

void pk_recheck_begin(struct pk_recheck *rc, const struct pk_certs *anchors)
{
    memset(rc, 0, sizeof(*rc));
    rc->anchors = anchors;
}

void pk_recheck_end(struct pk_recheck *rc)
{
    for (size_t i = 0; i < rc->n_memo; i++) {
        free(rc->memo[i].key);
    }
    free(rc->memo);
    memset(rc, 0, sizeof(*rc));
}

/* Key of the memo: the leaf's issuer name, then every certificate above the leaf. */
static uint8_t *path_key(const struct pk_cert *leaf, const struct pk_tls_peer_chain *chain,
                         size_t *len)
{
    struct pk_slice issuer = pk_cert_issuer_der(leaf);
    struct pk_slice first = {0};
    size_t above = 0;
    uint8_t *key;

    if (pk_tls_peer_chain_get(chain, 0, &first)) {
        /* The blob minus the leaf's entry (its 4-byte length and DER). */
        above = chain->len - (4 + first.len);
    }
    *len = issuer.len + above;
    key = pk_xmalloc(*len > 0 ? *len : 1);
    if (issuer.len > 0) {
        memcpy(key, issuer.ptr, issuer.len);
    }
    if (above > 0) {
        memcpy(key + issuer.len, chain->blob + 4 + first.len, above);
    }
    return key;
}

static int verify_path(const struct pk_recheck *rc, const struct pk_cert *leaf,
                       const struct pk_tls_peer_chain *chain, struct pk_err *err)
{
    struct pk_certs above = {0};
    struct pk_slice der;
    int r = 0;

    for (size_t i = 1; pk_tls_peer_chain_get(chain, i, &der); i++) {
        struct pk_cert *cert = NULL;
        r = pk_cert_parse_der(der.ptr, der.len, "peer chain certificate", &cert, err);
        if (r != 0) {
            goto out;
        }
        r = pk_certs_push_copy(&above, cert);
        pk_cert_free(cert);
        if (r != 0) {
            goto out;
        }
    }
    r = pk_x509_verify_chain(leaf, &above, rc->anchors, err);
    if (r == 0) {
        r = pk_peer_name_constraints(leaf, chain, rc->anchors, err);
    }
out:
    pk_certs_clear(&above);
    return r;
}

int pk_recheck_peer(struct pk_recheck *rc, const struct pk_cert *leaf,
                    const struct pk_tls_peer_chain *chain, struct pk_err *err)
{
    size_t key_len;
    uint8_t *key = path_key(leaf, chain, &key_len);
    struct pk_err local = {{0}};
    int r;

    for (size_t i = 0; i < rc->n_memo; i++) {
        struct pk_recheck_entry *e = &rc->memo[i];
        if (e->key_len == key_len && memcmp(e->key, key, key_len) == 0) {
            free(key);
            return e->rc == 0 ? 0 : pk_err_set(err, e->rc, "%s", e->msg);
        }
    }
    r = verify_path(rc, leaf, chain, &local);
    rc->memo = pk_xrealloc(rc->memo, (rc->n_memo + 1) * sizeof(*rc->memo));
    struct pk_recheck_entry *e = &rc->memo[rc->n_memo++];
    e->key = key;
    e->key_len = key_len;
    e->rc = r;
    memcpy(e->msg, local.msg, sizeof(e->msg));
    return r == 0 ? 0 : pk_err_set(err, r, "%s", local.msg);
}

/* The DER of the NameConstraints extension's OID, 2.5.29.30: present in every certificate
 * that has the extension. */
static const uint8_t nc_oid_tlv[] = {0x06, 0x03, 0x55, 0x1d, 0x1e};

int pk_peer_name_constraints(const struct pk_cert *leaf, const struct pk_tls_peer_chain *chain,
                             const struct pk_certs *anchors, struct pk_err *err)
{
    struct pk_cert *top = NULL; /* the last certificate the peer sent, parsed if needed */
    struct pk_slice der;
    size_t last = 0;
    int r = 0;

    if (pk_cert_uri_count(leaf) == 0) {
        return 0; /* no ID to constrain; the peer check refuses such a leaf anyway */
    }
    const char *uri = pk_cert_uri(leaf, 0);
    for (size_t i = 1; pk_tls_peer_chain_get(chain, i, &der); i++) {
        last = i;
        if (memmem(der.ptr, der.len, nc_oid_tlv, sizeof(nc_oid_tlv)) == NULL) {
            continue;
        }
        struct pk_cert *ca = NULL;
        r = pk_cert_parse_der(der.ptr, der.len, "peer chain certificate", &ca, err);
        if (r == 0) {
            r = pk_cert_name_constraints_allow_uri(ca, uri, err);
        }
        pk_cert_free(ca);
        if (r != 0) {
            return r;
        }
    }
    bool anchor_constrains = false;
    for (size_t i = 0; i < anchors->n; i++) {
        anchor_constrains |= pk_cert_has_name_constraints(anchors->v[i]);
    }
    if (!anchor_constrains) {
        return 0;
    }
    const struct pk_cert *issued = leaf;
    if (last > 0 && pk_tls_peer_chain_get(chain, last, &der)) {
        r = pk_cert_parse_der(der.ptr, der.len, "peer chain certificate", &top, err);
        if (r != 0) {
            return r;
        }
        issued = top;
    }
    struct pk_slice want = pk_cert_issuer_der(issued);
    for (size_t i = 0; r == 0 && i < anchors->n; i++) {
        const struct pk_cert *a = anchors->v[i];
        struct pk_slice subject = pk_cert_subject_der(a);
        if (pk_cert_has_name_constraints(a) && subject.len == want.len &&
            memcmp(subject.ptr, want.ptr, want.len) == 0) {
            r = pk_cert_name_constraints_allow_uri(a, uri, err);
        }
    }
    pk_cert_free(top);
    return r;
}
