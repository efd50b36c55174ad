/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: sentry/ca_profile — each profile's root and issuer carry exactly the fields of the
 * recipe it follows and chain to each other; bad names and dates are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* cmocka.h needs setjmp.h, stdarg.h and stddef.h first. */
/* clang-format off */
#include <cmocka.h>
/* clang-format on */

#include "common/key.h"
#include "common/x509.h"
#include "sentry/ca_profile.h"

struct expect {
    enum pk_ca_profile profile;
    const char *root_subject;
    const char *issuer_subject;
    unsigned root_ku, issuer_ku, eku;
    int root_path_len, issuer_path_len;
    size_t dns;
};

static const struct expect expected[] = {
        {PK_CA_PROFILE_SENTRY, "O=cluster.local",
         "O=spiffe://cluster.local/ns/dapr-system/dapr-sentry",
         PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN,
         PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN | PK_KU_CRL_SIGN, 0, -1, -1, 0},
        {PK_CA_PROFILE_OPENSSL,
         "C=US, ST=VA, L=Daprville, O=dapr.io/sentry, OU=dapr.io/sentry, CN=cluster.local",
         "C=US, ST=VA, L=Daprville, O=dapr.io/sentry, OU=dapr.io/sentry, CN=cluster.local",
         PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN | PK_KU_CRL_SIGN,
         PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN | PK_KU_CRL_SIGN,
         PK_EKU_SERVER_AUTH | PK_EKU_CLIENT_AUTH, -1, 0, 1},
        {PK_CA_PROFILE_STEP, "CN=cluster.local", "CN=cluster.local",
         PK_KU_KEY_CERT_SIGN | PK_KU_CRL_SIGN, PK_KU_KEY_CERT_SIGN | PK_KU_CRL_SIGN, 0, 1, 0, 0},
};

static void check_profile(const struct expect *e, enum pk_key_type type)
{
    time_t now = time(NULL);
    struct pk_ca_request req = {
            .profile = e->profile,
            .trust_domain = "cluster.local",
            .namespace_ = "dapr-system",
            .not_before = now,
            .not_after = now + 86400,
    };
    struct pk_key *root_key = NULL, *issuer_key = NULL;
    struct pk_pubkey *issuer_pub = NULL;
    struct pk_cert *root = NULL, *issuer = NULL;
    struct pk_certs roots = {NULL, 0};
    struct pk_err err = {{0}};

    assert_int_equal(pk_key_generate(type, &root_key, NULL), 0);
    assert_int_equal(pk_key_generate(type, &issuer_key, NULL), 0);
    assert_int_equal(pk_key_public(issuer_key, &issuer_pub), 0);
    assert_int_equal(pk_ca_profile_root(&req, root_key, &root, &err), 0);
    assert_int_equal(pk_ca_profile_issuer(&req, issuer_pub, root, root_key, &issuer, &err), 0);

    assert_string_equal(pk_cert_subject(root), e->root_subject);
    assert_string_equal(pk_cert_issuer(root), e->root_subject);
    assert_string_equal(pk_cert_subject(issuer), e->issuer_subject);
    assert_true(pk_cert_self_signed(root));
    assert_true(pk_cert_signed_by(issuer, root));
    assert_true(pk_cert_is_ca(root) && pk_cert_is_ca(issuer));
    assert_int_equal(pk_cert_path_len(root), e->root_path_len);
    assert_int_equal(pk_cert_path_len(issuer), e->issuer_path_len);
    assert_int_equal(pk_cert_key_usage(root), e->root_ku);
    assert_int_equal(pk_cert_key_usage(issuer), e->issuer_ku);
    assert_int_equal(pk_cert_has_ext_key_usage(root), e->eku != 0);
    assert_int_equal(pk_cert_ext_key_usage(issuer), e->eku);
    assert_int_equal(pk_cert_dns_count(root), e->dns);
    assert_int_equal(pk_cert_dns_count(issuer), e->dns);
    assert_int_equal(pk_cert_uri_count(issuer), 0);
    assert_true(pk_cert_skid(root).len > 0 && pk_cert_skid(issuer).len > 0);
    assert_int_equal(pk_cert_not_before(issuer), now);
    assert_int_equal(pk_cert_not_after(issuer), now + 86400);
    assert_int_equal(pk_cert_key_type(issuer), type);
    assert_true(pk_cert_matches_key(issuer, issuer_key));
    assert_int_equal(pk_certs_push_copy(&roots, root), 0);
    assert_int_equal(pk_x509_verify_chain(issuer, NULL, &roots, &err), 0);

    pk_certs_clear(&roots);
    pk_cert_free(root);
    pk_cert_free(issuer);
    pk_pubkey_free(issuer_pub);
    pk_key_free(root_key);
    pk_key_free(issuer_key);
}

static void profiles_p256(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        check_profile(&expected[i], PK_KEY_P256);
    }
}

static void profiles_ed25519(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        check_profile(&expected[i], PK_KEY_ED25519);
    }
}

static void names_and_refusals(void **state)
{
    (void)state;
    enum pk_ca_profile p;
    struct pk_err err = {{0}};
    struct pk_key *key = NULL;
    struct pk_cert *cert = NULL;
    time_t now = time(NULL);
    struct pk_ca_request req = {
            .profile = PK_CA_PROFILE_OPENSSL,
            .trust_domain = "Bad Domain",
            .not_before = now,
            .not_after = now + 60,
    };

    assert_int_equal(pk_ca_profile_parse("step", &p, &err), 0);
    assert_int_equal(p, PK_CA_PROFILE_STEP);
    assert_string_equal(pk_ca_profile_name(PK_CA_PROFILE_OPENSSL), "openssl");
    assert_int_equal(pk_ca_profile_parse("cfssl", &p, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "cfssl"));

    assert_int_equal(pk_key_generate(PK_KEY_P256, &key, NULL), 0);
    assert_int_equal(pk_ca_profile_root(&req, key, &cert, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "trust domain"));
    assert_null(cert);
    req.trust_domain = "cluster.local";
    req.not_after = now - 60;
    assert_int_equal(pk_ca_profile_root(&req, key, &cert, &err), PK_E_INVALID);
    assert_null(cert);
    pk_key_free(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(profiles_p256),
            cmocka_unit_test(profiles_ed25519),
            cmocka_unit_test(names_and_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
