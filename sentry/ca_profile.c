/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the profiles of CA certificates (root and issuer). */
#include "sentry/ca_profile.h"

#include <string.h>

#include "common/buf.h"
#include "common/spiffe.h"

/* One profile's fixed parts; the trust domain fills the rest. */
struct profile {
    const char *name;
    /* Subject attributes besides the trust domain's; the trust domain goes into CN (cn_td) or
     * O (o_td). The sentry issuer's O is its SPIFFE ID instead. */
    const char *c, *st, *l, *o, *ou;
    bool cn_td, o_td, dns_td;
    unsigned root_ku, issuer_ku;
    unsigned eku;
    int root_path_len, issuer_path_len; /* -1: none */
};

static const struct profile profiles[] = {
        [PK_CA_PROFILE_SENTRY] =
                {
                        .name = "sentry",
                        .o_td = true,
                        .root_ku = PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN,
                        .issuer_ku = PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN | PK_KU_CRL_SIGN,
                        .root_path_len = -1,
                        .issuer_path_len = -1,
                },
        [PK_CA_PROFILE_OPENSSL] =
                {
                        .name = "openssl",
                        .c = "US",
                        .st = "VA",
                        .l = "Daprville",
                        .o = "dapr.io/sentry",
                        .ou = "dapr.io/sentry",
                        .cn_td = true,
                        .dns_td = true,
                        .root_ku = PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN | PK_KU_CRL_SIGN,
                        .issuer_ku = PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN | PK_KU_CRL_SIGN,
                        .eku = PK_EKU_SERVER_AUTH | PK_EKU_CLIENT_AUTH,
                        .root_path_len = -1,
                        .issuer_path_len = 0,
                },
        [PK_CA_PROFILE_STEP] =
                {
                        .name = "step",
                        .cn_td = true,
                        .root_ku = PK_KU_KEY_CERT_SIGN | PK_KU_CRL_SIGN,
                        .issuer_ku = PK_KU_KEY_CERT_SIGN | PK_KU_CRL_SIGN,
                        .root_path_len = 1,
                        .issuer_path_len = 0,
                },
};

const char *pk_ca_profile_name(enum pk_ca_profile profile)
{
    return (size_t)profile < PK_ARRAY_LEN(profiles) ? profiles[profile].name : "unknown";
}

int pk_ca_profile_parse(const char *name, enum pk_ca_profile *out, struct pk_err *err)
{
    for (size_t i = 0; i < PK_ARRAY_LEN(profiles); i++) {
        if (strcmp(name, profiles[i].name) == 0) {
            *out = (enum pk_ca_profile)i;
            return 0;
        }
    }
    return pk_err_set(err, PK_E_INVALID, "profile '%.60s' is not openssl, step or sentry", name);
}

/* The template of a root (issuer_o NULL) or an issuer (issuer_o: the sentry issuer's O). */
static int make_template(const struct pk_ca_request *req, bool issuer, const char *issuer_o,
                         struct pk_cert_template *t, struct pk_err *err)
{
    const struct profile *p;
    int r;

    if ((size_t)req->profile >= PK_ARRAY_LEN(profiles)) {
        return pk_err_set(err, PK_E_INVALID, "unknown certificate profile %d", (int)req->profile);
    }
    p = &profiles[req->profile];
    /* The trust domain lands in a DNS SAN or a SPIFFE ID in some profiles: hold every profile
     * to the SPIFFE rules so a name valid in one is valid in all. */
    r = pk_spiffe_check_trust_domain(req->trust_domain, err);
    if (r != 0) {
        return pk_err_prefix(err, r, "trust domain");
    }
    memset(t, 0, sizeof(*t));
    t->subject_c = p->c;
    t->subject_st = p->st;
    t->subject_l = p->l;
    t->subject_o = issuer_o != NULL ? issuer_o : p->o_td ? req->trust_domain : p->o;
    t->subject_ou = p->ou;
    t->subject_cn = p->cn_td ? req->trust_domain : NULL;
    t->dns_san = p->dns_td ? req->trust_domain : NULL;
    t->not_before = req->not_before;
    t->not_after = req->not_after;
    t->is_ca = true;
    t->path_len = issuer ? p->issuer_path_len : p->root_path_len;
    t->key_usage = issuer ? p->issuer_ku : p->root_ku;
    t->ext_key_usage = p->eku;
    t->subject_key_id = true;
    return 0;
}

int pk_ca_profile_root(const struct pk_ca_request *req, const struct pk_key *key,
                       struct pk_cert **out, struct pk_err *err)
{
    struct pk_cert_template t;
    struct pk_pubkey *pub = NULL;
    int r;

    r = make_template(req, false, NULL, &t, err);
    if (r != 0) {
        return r;
    }
    r = pk_key_public(key, &pub);
    if (r != 0) {
        return pk_err_set(err, r, "cannot take the public half of the root key");
    }
    r = pk_cert_issue(&t, pub, NULL, key, out, err);
    pk_pubkey_free(pub);
    return r;
}

int pk_ca_profile_issuer(const struct pk_ca_request *req, const struct pk_pubkey *subject,
                         const struct pk_cert *root, const struct pk_key *root_key,
                         struct pk_cert **out, struct pk_err *err)
{
    char sentry_o[PK_SPIFFE_MAX_LEN + 1];
    struct pk_cert_template t;
    int r;

    if (req->profile == PK_CA_PROFILE_SENTRY) {
        /* Dapr names its issuer after Sentry's own SPIFFE ID. */
        r = pk_spiffe_format_workload(sentry_o, sizeof(sentry_o), req->trust_domain,
                                      req->namespace_ != NULL ? req->namespace_ : "default",
                                      "dapr-sentry", err);
        if (r != 0) {
            return r;
        }
    }
    r = make_template(req, true, req->profile == PK_CA_PROFILE_SENTRY ? sentry_o : NULL, &t, err);
    if (r != 0) {
        return r;
    }
    return pk_cert_issue(&t, subject, root, root_key, out, err);
}
