/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the Sentry CA's issuer credentials: load, validate, generate. */
#include "sentry/creds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fsutil.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/pem.h"
#include "common/spiffe.h"
#include "sentry/ca_profile.h"

int pk_sentry_creds_paths_init(struct pk_sentry_creds_paths *paths, const char *dir,
                               const char *ca_name, const char *cert_name, const char *key_name)
{
    if (pk_fs_join(paths->ca, sizeof(paths->ca), dir, ca_name) != 0 ||
        pk_fs_join(paths->issuer_cert, sizeof(paths->issuer_cert), dir, cert_name) != 0 ||
        pk_fs_join(paths->issuer_key, sizeof(paths->issuer_key), dir, key_name) != 0) {
        return PK_E_TOOBIG;
    }
    return 0;
}

bool pk_sentry_creds_missing(const struct pk_sentry_creds_paths *paths)
{
    return !pk_fs_exists(paths->ca) || !pk_fs_exists(paths->issuer_cert) ||
           !pk_fs_exists(paths->issuer_key);
}

struct pk_sentry_creds *pk_sentry_creds_free(struct pk_sentry_creds *creds)
{
    if (creds == NULL) {
        return NULL;
    }
    pk_certs_clear(&creds->roots);
    pk_certs_clear(&creds->issuer_chain);
    pk_key_free(creds->issuer_key);
    pk_buf_free(&creds->roots_pem);
    pk_buf_free(&creds->chain_pem);
    free(creds);
    return NULL;
}

/* Go's x509 verifier, which Dapr's Sentry uses, checks the chain for serverAuth: an EKU that
 * lists neither serverAuth nor anyExtendedKeyUsage makes Dapr refuse the set, so we refuse it
 * too rather than start with credentials a real Sentry would not. */
static bool eku_allows_server(const struct pk_cert *cert)
{
    return !pk_cert_has_ext_key_usage(cert) ||
           (pk_cert_ext_key_usage(cert) & (PK_EKU_SERVER_AUTH | PK_EKU_ANY)) != 0;
}

static int check_roots(const struct pk_sentry_creds_paths *paths, const struct pk_certs *roots,
                       struct pk_err *err)
{
    if (roots->n == 0) {
        return pk_err_set(err, PK_E_INVALID, "%s: no certificate found", paths->ca);
    }
    for (size_t i = 0; i < roots->n; i++) {
        if (!pk_cert_self_signed(roots->v[i])) {
            return pk_err_set(err, PK_E_INVALID,
                              "%s: certificate #%zu (subject \"%s\") is not self-signed; trust "
                              "anchors must be root certificates",
                              paths->ca, i + 1, pk_cert_subject(roots->v[i]));
        }
    }
    return 0;
}

/* issuer.crt: each certificate signed by the next; a trailing self-signed root is dropped. */
static int check_issuer_chain(const struct pk_sentry_creds_paths *paths, struct pk_certs *chain,
                              struct pk_err *err)
{
    const struct pk_cert *issuer;

    if (chain->n == 0) {
        return pk_err_set(err, PK_E_INVALID, "%s: no certificate found", paths->issuer_cert);
    }
    for (size_t i = 0; i + 1 < chain->n; i++) {
        if (!pk_cert_signed_by(chain->v[i], chain->v[i + 1])) {
            return pk_err_set(err, PK_E_INVALID,
                              "%s: certificate #%zu (subject \"%s\") is not signed by the "
                              "certificate after it (subject \"%s\"); list the issuer first, then "
                              "its own issuers in order",
                              paths->issuer_cert, i + 1, pk_cert_subject(chain->v[i]),
                              pk_cert_subject(chain->v[i + 1]));
        }
    }
    if (chain->n > 1 && pk_cert_self_signed(chain->v[chain->n - 1])) {
        chain->n--;
        pk_cert_free(chain->v[chain->n]);
        chain->v[chain->n] = NULL;
    }
    issuer = chain->v[0];
    if (!pk_cert_is_ca(issuer)) {
        return pk_err_set(err, PK_E_INVALID,
                          "%s: the issuer certificate (subject \"%s\") is not a CA (it needs "
                          "basicConstraints CA:TRUE)",
                          paths->issuer_cert, pk_cert_subject(issuer));
    }
    if (pk_cert_has_key_usage(issuer) && (pk_cert_key_usage(issuer) & PK_KU_KEY_CERT_SIGN) == 0) {
        return pk_err_set(err, PK_E_INVALID,
                          "%s: the issuer certificate's key usage does not allow keyCertSign",
                          paths->issuer_cert);
    }
    for (size_t i = 0; i < chain->n; i++) {
        if (!eku_allows_server(chain->v[i])) {
            return pk_err_set(err, PK_E_INVALID,
                              "%s: certificate #%zu has an extended key usage without serverAuth, "
                              "which Dapr's verifier rejects",
                              paths->issuer_cert, i + 1);
        }
    }
    return 0;
}

int pk_sentry_creds_load(const struct pk_sentry_creds_paths *paths, struct pk_sentry_creds **out,
                         struct pk_err *err)
{
    struct pk_buf ca_text, cert_text, key_text;
    int r;

    pk_buf_init(&ca_text, PK_SENTRY_CREDS_MAX_FILE);
    pk_buf_init(&cert_text, PK_SENTRY_CREDS_MAX_FILE);
    pk_buf_init_secret(&key_text, PK_SENTRY_CREDS_MAX_FILE);
    r = pk_fs_read_file(paths->ca, PK_SENTRY_CREDS_MAX_FILE, &ca_text, err);
    if (r == 0) {
        r = pk_fs_read_file(paths->issuer_cert, PK_SENTRY_CREDS_MAX_FILE, &cert_text, err);
    }
    if (r == 0) {
        r = pk_fs_read_file(paths->issuer_key, PK_SENTRY_CREDS_MAX_FILE, &key_text, err);
    }
    if (r == 0) {
        r = pk_sentry_creds_parse(paths, pk_buf_slice(&ca_text), pk_buf_slice(&cert_text),
                                  pk_buf_slice(&key_text), out, err);
    }
    pk_buf_free(&ca_text);
    pk_buf_free(&cert_text);
    pk_buf_free(&key_text);
    return r;
}

int pk_sentry_creds_parse(const struct pk_sentry_creds_paths *paths, struct pk_slice ca_text,
                          struct pk_slice cert_text, struct pk_slice key_text,
                          struct pk_sentry_creds **out, struct pk_err *err)
{
    struct pk_sentry_creds *creds = pk_xcalloc(1, sizeof(*creds));
    const struct pk_cert *top;
    struct pk_certs intermediates = {0};
    int r;

    pk_buf_init(&creds->roots_pem, PK_SENTRY_CREDS_MAX_FILE);
    pk_buf_init(&creds->chain_pem, PK_SENTRY_CREDS_MAX_FILE);

    r = pk_certs_parse_anchors_pem(ca_text.ptr, ca_text.len, paths->ca, &creds->roots, err);
    if (r != 0) {
        goto out;
    }
    r = check_roots(paths, &creds->roots, err);
    if (r != 0) {
        goto out;
    }
    r = pk_certs_parse_pem(cert_text.ptr, cert_text.len, paths->issuer_cert, &creds->issuer_chain,
                           err);
    if (r != 0) {
        goto out;
    }
    r = check_issuer_chain(paths, &creds->issuer_chain, err);
    if (r != 0) {
        goto out;
    }
    r = pk_key_load_pem(key_text.ptr, key_text.len, paths->issuer_key, &creds->issuer_key, err);
    if (r != 0) {
        goto out;
    }
    if (!pk_cert_matches_key(creds->issuer_chain.v[0], creds->issuer_key)) {
        r = pk_err_set(err, PK_E_MISMATCH,
                       "%s: the key does not match the issuer certificate in %s (subject \"%s\")",
                       paths->issuer_key, paths->issuer_cert,
                       pk_cert_subject(creds->issuer_chain.v[0]));
        goto out;
    }

    /* The issuer must chain to one of the roots now. */
    for (size_t i = 1; i < creds->issuer_chain.n; i++) {
        r = pk_certs_push_copy(&intermediates, creds->issuer_chain.v[i]);
        if (r != 0) {
            goto out;
        }
    }
    r = pk_x509_verify_chain(creds->issuer_chain.v[0], &intermediates, &creds->roots, err);
    if (r != 0) {
        pk_err_prefix(err, r, "%s does not chain to a root in %s", paths->issuer_cert, paths->ca);
        goto out;
    }
    top = creds->issuer_chain.v[creds->issuer_chain.n - 1];
    for (size_t i = 0; i < creds->roots.n; i++) {
        /* Only the root the chain ends at matters. */
        bool anchors_chain = pk_cert_signed_by(top, creds->roots.v[i]);
        if (anchors_chain && !eku_allows_server(creds->roots.v[i])) {
            r = pk_err_set(err, PK_E_INVALID,
                           "%s: root #%zu has an extended key usage without serverAuth, which "
                           "Dapr's verifier rejects",
                           paths->ca, i + 1);
            goto out;
        }
    }

    r = pk_certs_to_pem(&creds->roots, &creds->roots_pem);
    if (r != 0) {
        goto out;
    }
    /* Self-signed certificates are never sent in a chain (the peer has the roots). */
    for (size_t i = 0; i < creds->issuer_chain.n; i++) {
        const struct pk_cert *c = creds->issuer_chain.v[i];
        struct pk_slice der = pk_cert_der(c);
        if (pk_cert_self_signed(c)) {
            continue;
        }
        r = pk_pem_encode("CERTIFICATE", der.ptr, der.len, &creds->chain_pem);
        if (r != 0) {
            goto out;
        }
    }
    creds->issuer_not_after = pk_cert_not_after(creds->issuer_chain.v[0]);
    creds->roots_not_after = pk_cert_not_after(creds->roots.v[0]);
    for (size_t i = 1; i < creds->roots.n; i++) {
        creds->roots_not_after =
                PK_MIN(creds->roots_not_after, pk_cert_not_after(creds->roots.v[i]));
    }

    *out = creds;
    creds = NULL;
    r = 0;
out:
    pk_certs_clear(&intermediates);
    pk_sentry_creds_free(creds);
    return r;
}

int pk_sentry_creds_generate(const struct pk_sentry_creds_paths *paths,
                             const struct pk_sentry_creds_gen *gen, struct pk_sentry_creds **out,
                             struct pk_err *err)
{
    struct pk_buf root_pem, issuer_pem, key_pem;
    int r;

    pk_buf_init(&root_pem, 64 * 1024);
    pk_buf_init(&issuer_pem, 64 * 1024);
    pk_buf_init_secret(&key_pem, 64 * 1024);
    r = pk_sentry_creds_generate_pem(gen, &root_pem, &issuer_pem, &key_pem, err);
    if (r != 0) {
        goto out;
    }
    /* The key first: a crash between writes leaves a file missing, and the next start
     * generates a complete new set. The root key is never written (as in Dapr). */
    r = pk_fs_write_atomic(paths->issuer_key, key_pem.data, key_pem.len, 0600, err);
    if (r == 0) {
        r = pk_fs_write_atomic(paths->issuer_cert, issuer_pem.data, issuer_pem.len, 0600, err);
    }
    if (r == 0) {
        r = pk_fs_write_atomic(paths->ca, root_pem.data, root_pem.len, 0600, err);
    }
    if (r != 0) {
        goto out;
    }
    r = pk_sentry_creds_load(paths, out, err);
    if (r != 0) {
        pk_err_prefix(err, r, "the generated credentials failed validation");
    }
out:
    pk_buf_free(&root_pem);
    pk_buf_free(&issuer_pem);
    pk_buf_free(&key_pem);
    return r;
}

int pk_sentry_creds_generate_pem(const struct pk_sentry_creds_gen *gen, struct pk_buf *root_pem,
                                 struct pk_buf *issuer_pem, struct pk_buf *key_pem,
                                 struct pk_err *err)
{
    struct pk_ca_request req = {
            .profile = PK_CA_PROFILE_SENTRY,
            .trust_domain = gen->trust_domain,
            .namespace_ = gen->namespace_,
            .not_before = gen->now - gen->skew_seconds,
            .not_after = gen->now + gen->ttl_seconds,
    };
    struct pk_key *root_key = NULL;
    struct pk_key *issuer_key = NULL;
    struct pk_pubkey *issuer_pub = NULL;
    struct pk_cert *root = NULL;
    struct pk_cert *issuer = NULL;
    int r;

    r = pk_key_generate(gen->key_type, &root_key, err);
    if (r != 0) {
        goto out;
    }
    r = pk_key_generate(gen->key_type, &issuer_key, err);
    if (r != 0) {
        goto out;
    }
    r = pk_key_public(issuer_key, &issuer_pub);
    if (r != 0) {
        pk_err_set(err, r, "cannot take the public half of the issuer key");
        goto out;
    }
    r = pk_ca_profile_root(&req, root_key, &root, err);
    if (r != 0) {
        pk_err_prefix(err, r, "generating the root certificate");
        goto out;
    }
    r = pk_ca_profile_issuer(&req, issuer_pub, root, root_key, &issuer, err);
    if (r != 0) {
        pk_err_prefix(err, r, "generating the issuer certificate");
        goto out;
    }
    r = pk_pem_encode("CERTIFICATE", pk_cert_der(root).ptr, pk_cert_der(root).len, root_pem);
    if (r == 0) {
        r = pk_pem_encode("CERTIFICATE", pk_cert_der(issuer).ptr, pk_cert_der(issuer).len,
                          issuer_pem);
    }
    if (r == 0) {
        r = pk_key_to_pem(issuer_key, key_pem);
    }
    if (r != 0) {
        pk_err_set(err, r, "encoding the generated credentials: %s", pk_err_str(r));
        goto out;
    }
out:
    pk_key_free(root_key);
    pk_key_free(issuer_key);
    pk_pubkey_free(issuer_pub);
    pk_cert_free(root);
    pk_cert_free(issuer);
    return r;
}
