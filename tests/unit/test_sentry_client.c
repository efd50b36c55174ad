/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for the agent's Sentry client: the request it builds and every check it
 * makes of a response before using it (wrong identity, two SANs, foreign chain, expired, CA as
 * leaf, key mismatch, garbage), plus the server-identity check and its trust-domain-trap
 * message. Responses are made with the project's own CA code and tampered with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* cmocka.h needs setjmp.h, stdarg.h and stddef.h first. */
/* clang-format off */
#include <cmocka.h>
/* clang-format on */

#include "agent/sentry_client.h"
#include "common/pem.h"
#include "sentry.pb-c.h"
#include "sentry/creds.h"
#include "sentry/issue.h"

struct fixture {
    char dir[64], dir2[64];
    struct pk_sentry_creds *creds; /* our CA */
    struct pk_sentry_creds *rogue; /* another CA */
    struct pk_sentry_client_config cfg;
};

static struct pk_sentry_creds *make_ca(char *dir, const char *td)
{
    struct pk_sentry_creds_paths paths;
    struct pk_sentry_creds *creds = NULL;
    struct pk_sentry_creds_gen gen = {td, "default", PK_KEY_P256, 0, 900, 365L * 24 * 3600};
    struct pk_err err;

    gen.now = time(NULL);
    assert_non_null(mkdtemp(dir));
    assert_int_equal(pk_sentry_creds_paths_init(&paths, dir, "ca.crt", "issuer.crt", "issuer.key"),
                     0);
    assert_int_equal(pk_sentry_creds_generate(&paths, &gen, &creds, &err), 0);
    return creds;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/picket-test-client-XXXXXX");
    strcpy(f->dir2, "/tmp/picket-test-client2-XXXXXX");
    f->creds = make_ca(f->dir, "localhost");
    f->rogue = make_ca(f->dir2, "localhost");
    f->cfg = (struct pk_sentry_client_config){
            .address = "127.0.0.1:50001",
            .control_plane_trust_domain = "localhost",
            .control_plane_namespace = "default",
            .app_id = "myapp",
            .namespace_ = "default",
            .timeout = 5.0,
    };
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[200];
    pk_sentry_creds_free(f->creds);
    pk_sentry_creds_free(f->rogue);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", f->dir, f->dir2);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* A serialized response carrying `chain_pem` (leaf first). */
static void pack_response(struct pk_buf *out, const struct pk_buf *chain_pem)
{
    Dapr__Proto__Sentry__V1__SignCertificateResponse resp =
            DAPR__PROTO__SENTRY__V1__SIGN_CERTIFICATE_RESPONSE__INIT;
    uint8_t *dst;
    size_t n;

    resp.workload_certificate.data = chain_pem->data;
    resp.workload_certificate.len = chain_pem->len;
    n = dapr__proto__sentry__v1__sign_certificate_response__get_packed_size(&resp);
    assert_int_equal(pk_buf_reserve(out, n, &dst), 0);
    dapr__proto__sentry__v1__sign_certificate_response__pack(&resp, dst);
    pk_buf_commit(out, n);
}

static struct pk_pubkey *pub_of(const struct pk_key *key)
{
    struct pk_pubkey *pub = NULL;
    struct pk_buf spki;
    struct pk_err err;
    pk_buf_init(&spki, 4096);
    assert_int_equal(pk_key_public_spki(key, &spki), 0);
    assert_int_equal(pk_pubkey_from_spki(spki.data, spki.len, &pub, &err), 0);
    pk_buf_free(&spki);
    return pub;
}

/* Issue a workload leaf for `id` under `ca`, valid from now+nb to now+na, for `key` (or a
 * different key when other_key), and run the check. Returns its result; err has the message. */
static int check_issued(struct fixture *f, const struct pk_sentry_creds *ca, const char *id,
                        bool other_key, long nb, long na, struct pk_err *err)
{
    time_t now = time(NULL);
    struct pk_cert_template tmpl = {
            .not_before = now + nb,
            .not_after = now + na,
            .path_len = -1,
            .key_usage = PK_KU_DIGITAL_SIGNATURE,
            .ext_key_usage = PK_EKU_SERVER_AUTH | PK_EKU_CLIENT_AUTH,
            .uri_san = id,
    };
    struct pk_key *key = NULL;
    struct pk_key *signed_key = NULL;
    struct pk_pubkey *pub;
    struct pk_cert *leaf = NULL;
    struct pk_buf chain, resp;
    struct pk_svid *svid = NULL;
    int r;

    assert_int_equal(pk_key_generate(PK_KEY_P256, &key, err), 0);
    if (other_key) {
        assert_int_equal(pk_key_generate(PK_KEY_P256, &signed_key, err), 0);
    }
    pub = pub_of(other_key ? signed_key : key);
    assert_int_equal(pk_cert_issue(&tmpl, pub, ca->issuer_chain.v[0], ca->issuer_key, &leaf, err),
                     0);
    pk_buf_init(&chain, 1 << 20);
    pk_buf_init(&resp, 1 << 20);
    assert_int_equal(
            pk_pem_encode("CERTIFICATE", pk_cert_der(leaf).ptr, pk_cert_der(leaf).len, &chain), 0);
    assert_int_equal(pk_buf_append(&chain, ca->chain_pem.data, ca->chain_pem.len), 0);
    pack_response(&resp, &chain);
    pk_err_clear(err);
    r = pk_sentry_response_check(&f->cfg, key, pk_buf_slice(&resp), &f->creds->roots, now, &svid,
                                 err);
    if (r == 0) {
        assert_non_null(svid);
        assert_string_equal(svid->spiffe_id, "spiffe://public/ns/default/myapp");
        assert_int_equal(svid->chain.n, 2);
        assert_true(svid->not_after > now);
    }
    pk_svid_free(svid);
    pk_cert_free(leaf);
    pk_buf_free(&chain);
    pk_buf_free(&resp);
    pk_pubkey_free(pub);
    pk_key_free(signed_key);
    return r;
}

static void good_response_is_accepted(void **state)
{
    struct pk_err err;
    assert_int_equal(check_issued(*state, ((struct fixture *)*state)->creds,
                                  "spiffe://public/ns/default/myapp", false, -60, 3600, &err),
                     0);
}

static void wrong_identity_is_rejected(void **state)
{
    struct fixture *f = *state;
    struct pk_err err;
    assert_int_equal(
            check_issued(f, f->creds, "spiffe://public/ns/default/other", false, -60, 3600, &err),
            PK_E_MISMATCH);
    assert_non_null(strstr(err.msg, "spiffe://public/ns/default/other"));
    assert_int_equal(
            check_issued(f, f->creds, "spiffe://evil/ns/default/myapp", false, -60, 3600, &err),
            PK_E_MISMATCH);
    assert_int_equal(
            check_issued(f, f->creds, "spiffe://public/ns/prod/myapp", false, -60, 3600, &err),
            PK_E_MISMATCH);
}

static void foreign_chain_is_rejected(void **state)
{
    struct fixture *f = *state;
    struct pk_err err;
    assert_int_not_equal(
            check_issued(f, f->rogue, "spiffe://public/ns/default/myapp", false, -60, 3600, &err),
            0);
    assert_non_null(strstr(err.msg, "trust anchors"));
}

static void key_mismatch_is_rejected(void **state)
{
    struct fixture *f = *state;
    struct pk_err err;
    assert_int_equal(
            check_issued(f, f->creds, "spiffe://public/ns/default/myapp", true, -60, 3600, &err),
            PK_E_MISMATCH);
    assert_non_null(strstr(err.msg, "public key"));
}

static void expired_is_rejected(void **state)
{
    struct fixture *f = *state;
    struct pk_err err;
    assert_int_equal(check_issued(f, f->creds, "spiffe://public/ns/default/myapp", false, -7200,
                                  -3600, &err),
                     PK_E_EXPIRED);
}

static void garbage_and_ca_leaf_are_rejected(void **state)
{
    struct fixture *f = *state;
    static const uint8_t junk[] = {0x0a, 0x05, 'h', 'e', 'l', 'l', 'o'};
    struct pk_key *key = NULL;
    struct pk_svid *svid = NULL;
    struct pk_cert *leaf = NULL;
    struct pk_cert_template tmpl = {
            .not_before = time(NULL) - 60,
            .not_after = time(NULL) + 3600,
            .path_len = -1,
            .key_usage = PK_KU_DIGITAL_SIGNATURE,
            .ext_key_usage = PK_EKU_SERVER_AUTH | PK_EKU_CLIENT_AUTH,
            .uri_san = "spiffe://public/ns/default/myapp",
            .subject_cn = "ca-looking",
            .is_ca = true,
    };
    struct pk_pubkey *pub;
    struct pk_buf chain, resp;
    struct pk_err err;

    assert_int_equal(pk_key_generate(PK_KEY_P256, &key, &err), 0);
    assert_int_not_equal(pk_sentry_response_check(&f->cfg, key, pk_slice_make(junk, sizeof(junk)),
                                                  &f->creds->roots, time(NULL), &svid, &err),
                         0);
    assert_null(svid);

    /* A CA certificate with the right identity is still no workload certificate. */
    assert_int_equal(pk_key_generate(PK_KEY_P256, &key, &err), 0);
    pub = pub_of(key);
    assert_int_equal(pk_cert_issue(&tmpl, pub, f->creds->issuer_chain.v[0], f->creds->issuer_key,
                                   &leaf, &err),
                     0);
    pk_buf_init(&chain, 1 << 20);
    pk_buf_init(&resp, 1 << 20);
    assert_int_equal(
            pk_pem_encode("CERTIFICATE", pk_cert_der(leaf).ptr, pk_cert_der(leaf).len, &chain), 0);
    assert_int_equal(pk_buf_append(&chain, f->creds->chain_pem.data, f->creds->chain_pem.len), 0);
    pack_response(&resp, &chain);
    assert_int_equal(pk_sentry_response_check(&f->cfg, key, pk_buf_slice(&resp), &f->creds->roots,
                                              time(NULL), &svid, &err),
                     PK_E_INVALID);
    assert_non_null(strstr(err.msg, "CA"));
    pk_cert_free(leaf);
    pk_pubkey_free(pub);
    pk_buf_free(&chain);
    pk_buf_free(&resp);
}

static void request_carries_the_identity_and_a_fresh_key(void **state)
{
    struct fixture *f = *state;
    Dapr__Proto__Sentry__V1__SignCertificateRequest *req;
    struct pk_key *k1 = NULL, *k2 = NULL;
    struct pk_buf b1, b2;
    struct pk_err err;

    pk_buf_init(&b1, 1 << 16);
    pk_buf_init(&b2, 1 << 16);
    assert_int_equal(pk_sentry_request_build(&f->cfg, &k1, &b1, &err), 0);
    assert_int_equal(pk_sentry_request_build(&f->cfg, &k2, &b2, &err), 0);
    req = dapr__proto__sentry__v1__sign_certificate_request__unpack(NULL, b1.len, b1.data);
    assert_non_null(req);
    assert_string_equal(req->id, "myapp");
    assert_string_equal(req->namespace_, "default");
    assert_string_equal(req->trust_domain, "");
    assert_string_equal(req->token, "");
    assert_int_equal(req->token_validator, 0);
    assert_non_null(strstr((const char *)req->certificate_signing_request.data,
                           "-----BEGIN CERTIFICATE REQUEST-----"));
    dapr__proto__sentry__v1__sign_certificate_request__free_unpacked(req, NULL);
    /* Two requests, two different keys. */
    assert_int_not_equal(memcmp(b1.data, b2.data, PK_MIN(b1.len, b2.len)), 0);
    pk_key_free(k1);
    pk_key_free(k2);
    pk_buf_free(&b1);
    pk_buf_free(&b2);
}

static void server_identity_check_names_the_trap(void **state)
{
    struct fixture *f = *state;
    struct pk_key *key = NULL;
    struct pk_pubkey *pub;
    struct pk_sentry_issued issued;
    struct pk_certs chain = {0};
    struct pk_err err;

    assert_int_equal(pk_key_generate(PK_KEY_P256, &key, &err), 0);
    pub = pub_of(key);
    assert_int_equal(pk_sentry_issue_workload(f->creds, pub,
                                              "spiffe://cluster.local/ns/default/dapr-sentry",
                                              time(NULL), 3600, 60, &issued, &err),
                     0);
    assert_int_equal(
            pk_certs_parse_pem(issued.chain_pem.data, issued.chain_pem.len, "chain", &chain, &err),
            0);
    pk_err_clear(&err);
    assert_int_equal(pk_sentry_client_verify_server(&f->cfg, pk_cert_der(chain.v[0]), &err),
                     PK_E_DENIED);
    assert_non_null(strstr(err.msg, "spiffe://cluster.local/ns/default/dapr-sentry"));
    assert_non_null(strstr(err.msg, "spiffe://localhost/ns/default/dapr-sentry"));
    assert_non_null(strstr(err.msg, "--control-plane-trust-domain cluster.local"));
    f->cfg.control_plane_trust_domain = "cluster.local";
    assert_int_equal(pk_sentry_client_verify_server(&f->cfg, pk_cert_der(chain.v[0]), &err), 0);
    pk_certs_clear(&chain);
    pk_buf_free(&issued.chain_pem);
    pk_pubkey_free(pub);
    pk_key_free(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(good_response_is_accepted, setup, teardown),
            cmocka_unit_test_setup_teardown(wrong_identity_is_rejected, setup, teardown),
            cmocka_unit_test_setup_teardown(foreign_chain_is_rejected, setup, teardown),
            cmocka_unit_test_setup_teardown(key_mismatch_is_rejected, setup, teardown),
            cmocka_unit_test_setup_teardown(expired_is_rejected, setup, teardown),
            cmocka_unit_test_setup_teardown(garbage_and_ca_leaf_are_rejected, setup, teardown),
            cmocka_unit_test_setup_teardown(request_carries_the_identity_and_a_fresh_key, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(server_identity_check_names_the_trap, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
