/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for the Sentry CA: credentials (generate, load, refuse), the workload
 * certificate profile, and SignCertificate's validation order and status codes, driven through
 * real protobuf encodings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* cmocka.h needs setjmp.h, stdarg.h and stddef.h first. */
/* clang-format off */
#include <cmocka.h>
/* clang-format on */

#include "common/fsutil.h"
#include "common/grpc.h"
#include "common/pem.h"
#include "common/x509.h"
#include "sentry.pb-c.h"
#include "sentry/creds.h"
#include "sentry/issue.h"
#include "sentry/service.h"

struct fixture {
    char dir[256];
    struct pk_sentry_creds_paths paths;
    struct pk_sentry_creds *creds;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct pk_sentry_creds_gen gen = {
            .trust_domain = "example.test",
            .namespace_ = "dapr-system",
            .key_type = PK_KEY_P256,
            .now = time(NULL),
            .skew_seconds = 900,
            .ttl_seconds = 365L * 24 * 3600,
    };
    struct pk_err err;

    snprintf(f->dir, sizeof(f->dir), "/tmp/picket-test-sentry-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(
            pk_sentry_creds_paths_init(&f->paths, f->dir, "ca.crt", "issuer.crt", "issuer.key"), 0);
    assert_true(pk_sentry_creds_missing(&f->paths));
    assert_int_equal(pk_sentry_creds_generate(&f->paths, &gen, &f->creds, &err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[300];
    pk_sentry_creds_free(f->creds);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void generated_files_are_private_and_reload(void **state)
{
    struct fixture *f = *state;
    struct pk_sentry_creds *again = NULL;
    struct pk_err err;
    struct stat st;

    assert_false(pk_sentry_creds_missing(&f->paths));
    assert_int_equal(stat(f->paths.issuer_key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(f->paths.ca, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(pk_sentry_creds_load(&f->paths, &again, &err), 0);
    assert_int_equal(again->roots.n, 1);
    assert_int_equal(again->issuer_chain.n, 1);
    assert_string_equal(pk_cert_subject(again->roots.v[0]), "O=example.test");
    assert_string_equal(pk_cert_subject(again->issuer_chain.v[0]),
                        "O=spiffe://example.test/ns/dapr-system/dapr-sentry");
    assert_true(pk_cert_is_ca(again->issuer_chain.v[0]));
    assert_int_equal(pk_cert_path_len(again->issuer_chain.v[0]), -1);
    pk_sentry_creds_free(again);
}

static void write_file(const char *path, const char *text)
{
    struct pk_err err;
    assert_int_equal(pk_fs_write_atomic(path, text, strlen(text), 0600, &err), 0);
}

static void mismatched_key_is_refused_naming_the_file(void **state)
{
    struct fixture *f = *state;
    struct pk_sentry_creds *c = NULL;
    struct pk_key *other = NULL;
    struct pk_buf pem;
    struct pk_err err;

    pk_buf_init_secret(&pem, 8192);
    assert_int_equal(pk_key_generate(PK_KEY_P256, &other, &err), 0);
    assert_int_equal(pk_key_to_pem(other, &pem), 0);
    write_file(f->paths.issuer_key, (const char *)pem.data);
    pk_err_clear(&err);
    assert_int_equal(pk_sentry_creds_load(&f->paths, &c, &err), PK_E_MISMATCH);
    assert_null(c);
    assert_non_null(strstr(err.msg, "issuer.key"));
    assert_non_null(strstr(err.msg, "does not match"));
    pk_buf_free(&pem);
    pk_key_free(other);
}

static void garbage_and_missing_files_are_refused(void **state)
{
    struct fixture *f = *state;
    struct pk_sentry_creds *c = NULL;
    struct pk_err err;

    write_file(f->paths.ca, "-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n");
    pk_err_clear(&err);
    assert_int_not_equal(pk_sentry_creds_load(&f->paths, &c, &err), 0);
    assert_non_null(strstr(err.msg, "ca.crt"));
    write_file(f->paths.ca, "no certificates here\n");
    pk_err_clear(&err);
    assert_int_not_equal(pk_sentry_creds_load(&f->paths, &c, &err), 0);
    assert_non_null(strstr(err.msg, "ca.crt"));
    assert_int_equal(unlink(f->paths.ca), 0);
    assert_true(pk_sentry_creds_missing(&f->paths));
    pk_err_clear(&err);
    assert_int_equal(pk_sentry_creds_load(&f->paths, &c, &err), PK_E_NOTFOUND);
    assert_non_null(strstr(err.msg, "does not exist"));
}

static void issuer_as_anchor_is_refused(void **state)
{
    struct fixture *f = *state;
    struct pk_sentry_creds *c = NULL;
    struct pk_buf pem;
    struct pk_err err;

    /* ca.crt holding the (non-self-signed) issuer instead of the root. */
    pk_buf_init(&pem, 65536);
    assert_int_equal(pk_pem_encode("CERTIFICATE", pk_cert_der(f->creds->issuer_chain.v[0]).ptr,
                                   pk_cert_der(f->creds->issuer_chain.v[0]).len, &pem),
                     0);
    write_file(f->paths.ca, (const char *)pem.data);
    pk_err_clear(&err);
    assert_int_equal(pk_sentry_creds_load(&f->paths, &c, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "self-signed"));
    pk_buf_free(&pem);
}

static struct pk_pubkey *fresh_pubkey(enum pk_key_type type, struct pk_key **key_out)
{
    struct pk_key *key = NULL;
    struct pk_pubkey *pub = NULL;
    struct pk_buf spki;
    struct pk_err err;

    pk_buf_init(&spki, 4096);
    assert_int_equal(pk_key_generate(type, &key, &err), 0);
    assert_int_equal(pk_key_public_spki(key, &spki), 0);
    assert_int_equal(pk_pubkey_from_spki(spki.data, spki.len, &pub, &err), 0);
    pk_buf_free(&spki);
    if (key_out != NULL) {
        *key_out = key;
    } else {
        pk_key_free(key);
    }
    return pub;
}

static void workload_profile(void **state)
{
    struct fixture *f = *state;
    struct pk_sentry_issued issued;
    struct pk_certs chain = {0};
    struct pk_key *key = NULL;
    struct pk_pubkey *pub = fresh_pubkey(PK_KEY_P256, &key);
    time_t now = time(NULL);
    const struct pk_cert *leaf;
    struct pk_err err;

    assert_int_equal(pk_sentry_issue_workload(f->creds, pub, "spiffe://public/ns/default/app", now,
                                              3600, 900, &issued, &err),
                     0);
    assert_int_equal(
            pk_certs_parse_pem(issued.chain_pem.data, issued.chain_pem.len, "chain", &chain, &err),
            0);
    assert_int_equal(chain.n, 2);
    leaf = chain.v[0];
    assert_string_equal(pk_cert_subject(leaf), "");
    assert_int_equal(pk_cert_uri_count(leaf), 1);
    assert_string_equal(pk_cert_uri(leaf, 0), "spiffe://public/ns/default/app");
    assert_true(pk_cert_san_critical(leaf));
    assert_int_equal(pk_cert_dns_count(leaf), 0);
    assert_false(pk_cert_has_basic_constraints(leaf));
    assert_int_equal(pk_cert_key_usage(leaf), PK_KU_DIGITAL_SIGNATURE);
    assert_int_equal(pk_cert_ext_key_usage(leaf), PK_EKU_SERVER_AUTH | PK_EKU_CLIENT_AUTH);
    assert_int_equal(pk_cert_not_before(leaf), now - 900);
    assert_int_equal(pk_cert_not_after(leaf), now + 3600);
    assert_true(pk_cert_matches_key(leaf, key));
    assert_true(pk_cert_signed_by(leaf, f->creds->issuer_chain.v[0]));
    assert_int_equal(pk_x509_verify_chain(leaf, &f->creds->issuer_chain, &f->creds->roots, &err),
                     0);
    pk_certs_clear(&chain);
    pk_buf_free(&issued.chain_pem);

    /* NotAfter never passes the issuer's. */
    assert_int_equal(pk_sentry_issue_workload(f->creds, pub, "spiffe://public/ns/default/app", now,
                                              10L * 365 * 24 * 3600, 0, &issued, &err),
                     0);
    assert_int_equal(issued.not_after, f->creds->issuer_not_after);
    pk_buf_free(&issued.chain_pem);
    pk_pubkey_free(pub);
    pk_key_free(key);
}

/* Serialize a request with a fresh P-256 CSR (or the given CSR text). */
static void pack_request(struct pk_buf *out, const char *id, const char *ns, const char *td,
                         int validator, const char *csr_text, bool with_csr)
{
    Dapr__Proto__Sentry__V1__SignCertificateRequest req =
            DAPR__PROTO__SENTRY__V1__SIGN_CERTIFICATE_REQUEST__INIT;
    struct pk_key *key = NULL;
    struct pk_buf csr;
    struct pk_err err;
    uint8_t *dst;
    size_t n;

    pk_buf_init(&csr, 16384);
    if (with_csr && csr_text == NULL) {
        assert_int_equal(pk_key_generate(PK_KEY_P256, &key, &err), 0);
        assert_int_equal(pk_csr_create(key, NULL, &csr, &err), 0);
    } else if (with_csr) {
        assert_int_equal(pk_buf_append_str(&csr, csr_text), 0);
    }
    req.id = (char *)id;
    req.namespace_ = (char *)ns;
    req.trust_domain = (char *)td;
    req.token_validator = validator;
    req.certificate_signing_request.data = csr.data;
    req.certificate_signing_request.len = csr.len;
    n = dapr__proto__sentry__v1__sign_certificate_request__get_packed_size(&req);
    assert_int_equal(pk_buf_reserve(out, n, &dst), 0);
    dapr__proto__sentry__v1__sign_certificate_request__pack(&req, dst);
    pk_buf_commit(out, n);
    pk_buf_free(&csr);
    pk_key_free(key);
}

struct sign_case {
    const char *id, *ns, *td;
    int validator;
    const char *csr; /* NULL: a good CSR; "": none */
    int status;
    const char *text;
};

static void sign_table(void **state)
{
    struct fixture *f = *state;
    static const struct sign_case cases[] = {
            {"app", "default", "", 0, NULL, PK_GRPC_OK, ""},
            {"app", "default", "", 1, NULL, PK_GRPC_OK, ""},
            {"app", "default", "", 2, NULL, PK_GRPC_INVALID_ARGUMENT, "not enabled"},
            {"app", "default", "", 3, NULL, PK_GRPC_INVALID_ARGUMENT, "not enabled"},
            {"app", "default", "", 42, NULL, PK_GRPC_INVALID_ARGUMENT, "not enabled"},
            {"", "default", "", 0, NULL, PK_GRPC_PERMISSION_DENIED, "cannot be empty"},
            {"a.b", "default", "", 0, NULL, PK_GRPC_PERMISSION_DENIED, "cannot contain dots"},
            {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "default", "", 0,
             NULL, PK_GRPC_PERMISSION_DENIED, "64 characters or less"},
            {"app", "", "", 0, NULL, PK_GRPC_PERMISSION_DENIED, "namespace is required"},
            {"app", "default", "", 0, "", PK_GRPC_PERMISSION_DENIED, "CSR is required"},
            {"", "", "", 0, "", PK_GRPC_PERMISSION_DENIED, "cannot be empty\nCSR is required\n"},
            {"app", "default", "UPPER.case", 0, NULL, PK_GRPC_PERMISSION_DENIED, "trust domain"},
            {"app", "de/fault", "", 0, NULL, PK_GRPC_PERMISSION_DENIED, "namespace"},
            {"app", "default", "", 0, "not pem", PK_GRPC_INVALID_ARGUMENT,
             "invalid certificate signing request"},
            {"app", "default", "", 0,
             "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
             PK_GRPC_INVALID_ARGUMENT, "invalid certificate signing request"},
            {"app", "default", "", 0,
             "-----BEGIN CERTIFICATE REQUEST-----\nMAMCAQA=\n-----END CERTIFICATE REQUEST-----\n",
             PK_GRPC_INVALID_ARGUMENT, "failed to parse certificate signing request"},
    };
    struct pk_sentry_service_config cfg = {
            .trust_domain = "example.test",
            .namespace_ = "dapr-system",
            .ttl_seconds = 3600,
            .skew_seconds = 900,
    };
    struct pk_sentry_service *svc = NULL;
    struct pk_sentry_metrics m;
    size_t ok = 0;

    assert_int_equal(pk_sentry_service_new(&cfg, f->creds, NULL, &svc), 0);
    f->creds = NULL; /* taken */
    assert_string_equal(pk_sentry_service_id(svc),
                        "spiffe://example.test/ns/dapr-system/dapr-sentry");
    for (size_t i = 0; i < PK_ARRAY_LEN(cases); i++) {
        const struct sign_case *c = &cases[i];
        struct pk_buf req, resp;
        char message[1024];
        int status = -1;

        pk_buf_init(&req, 65536);
        pk_buf_init(&resp, 1 << 20);
        pack_request(&req, c->id, c->ns, c->td, c->validator, c->csr,
                     c->csr == NULL || c->csr[0] != '\0');
        pk_sentry_service_sign(svc, pk_buf_slice(&req), time(NULL), &status, message,
                               sizeof(message), &resp);
        if (status != c->status || strstr(message, c->text) == NULL) {
            fail_msg("case %zu: status %d message \"%s\", want %d \"%s\"", i, status, message,
                     c->status, c->text);
        }
        if (status == PK_GRPC_OK) {
            Dapr__Proto__Sentry__V1__SignCertificateResponse *r =
                    dapr__proto__sentry__v1__sign_certificate_response__unpack(NULL, resp.len,
                                                                               resp.data);
            assert_non_null(r);
            assert_int_equal(r->n_trust_chain_certificates, 1);
            assert_non_null(r->valid_until);
            assert_true(r->valid_until->seconds > time(NULL));
            assert_null(r->jwt);
            dapr__proto__sentry__v1__sign_certificate_response__free_unpacked(r, NULL);
            ok++;
        } else {
            assert_int_equal(resp.len, 0);
        }
        pk_buf_free(&req);
        pk_buf_free(&resp);
    }
    /* A body that is not a SignCertificateRequest at all. */
    {
        struct pk_buf resp;
        char message[256];
        int status;
        static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
        pk_buf_init(&resp, 1024);
        pk_sentry_service_sign(svc, pk_slice_make(junk, sizeof(junk)), time(NULL), &status, message,
                               sizeof(message), &resp);
        assert_int_equal(status, PK_GRPC_INVALID_ARGUMENT);
        pk_buf_free(&resp);
    }
    pk_sentry_service_metrics(svc, &m);
    assert_int_equal(m.sign_request_received, PK_ARRAY_LEN(cases) + 1);
    assert_int_equal(m.sign_success, ok);
    assert_int_equal(m.sign_failure, PK_ARRAY_LEN(cases) + 1 - ok);
    pk_sentry_service_free(svc);
}

/* The KUBERNETES validator's outcome applied by the service: the first pass stops at "ask the
 * API server" after the common checks, the second signs for the trust domain the validator
 * found, and picket's own rules (allowed trust domains, control-plane ids, Sentry's id) still
 * hold whatever the validator says. */
static void sign_kubernetes_outcomes(void **state)
{
    struct fixture *f = *state;
    struct pk_sentry_service_config cfg = {
            .trust_domain = "example.test",
            .namespace_ = "dapr-system",
            .ttl_seconds = 3600,
            .skew_seconds = 900,
            .kubernetes_validator = true,
    };
    static const struct {
        const char *id, *ns;
        int validator;
        int first; /* pk_sentry_service_sign's result */
        int first_status;
        struct pk_sentry_kube_outcome outcome;
        int status;
        const char *text; /* message part, or the SPIFFE ID issued */
    } cases[] = {
            {"app",
             "default",
             0,
             PK_E_AGAIN,
             0,
             {.allowed = true, .trust_domain = "public"},
             PK_GRPC_OK,
             "spiffe://public/ns/default/app"},
            {"app",
             "default",
             2,
             PK_E_AGAIN,
             0,
             {.allowed = true, .trust_domain = "example.test"},
             PK_GRPC_OK,
             "spiffe://example.test/ns/default/app"},
            {"app", "default", 1, 0, PK_GRPC_INVALID_ARGUMENT, {0}, 0, "not enabled"},
            {"", "default", 2, 0, PK_GRPC_PERMISSION_DENIED, {0}, 0, "cannot be empty"},
            {"app",
             "default",
             2,
             PK_E_AGAIN,
             0,
             {.allowed = true, .trust_domain = "corp.example"},
             PK_GRPC_PERMISSION_DENIED,
             "not one this Sentry signs for"},
            {"app",
             "default",
             2,
             PK_E_AGAIN,
             0,
             {.allowed = false, .message = "pod service account mismatch"},
             PK_GRPC_PERMISSION_DENIED,
             "pod service account mismatch"},
            {"app",
             "default",
             2,
             PK_E_AGAIN,
             0,
             {.allowed = false, .unavailable = true, .message = "too many"},
             PK_GRPC_UNAVAILABLE,
             "too many"},
            {"dapr-placement",
             "dapr-system",
             2,
             PK_E_AGAIN,
             0,
             {.allowed = true, .control_plane = true, .trust_domain = "example.test"},
             PK_GRPC_OK,
             "spiffe://example.test/ns/dapr-system/dapr-placement"},
            {"dapr-placement",
             "dapr-system",
             2,
             PK_E_AGAIN,
             0,
             {.allowed = true, .trust_domain = "public"},
             PK_GRPC_PERMISSION_DENIED,
             "only to a pod annotated dapr.io/control-plane"},
            {"dapr-sentry",
             "dapr-system",
             2,
             PK_E_AGAIN,
             0,
             {.allowed = true, .control_plane = true, .trust_domain = "example.test"},
             PK_GRPC_PERMISSION_DENIED,
             "Sentry's own identity"},
    };
    struct pk_sentry_service *svc = NULL;
    struct pk_sentry_metrics m;

    assert_int_equal(pk_sentry_service_new(&cfg, f->creds, NULL, &svc), 0);
    f->creds = NULL; /* taken */
    for (size_t i = 0; i < PK_ARRAY_LEN(cases); i++) {
        struct pk_buf req, resp;
        char message[1024] = "";
        int status = -1;
        int r;

        pk_buf_init(&req, 65536);
        pk_buf_init(&resp, 1 << 20);
        pack_request(&req, cases[i].id, cases[i].ns, "", cases[i].validator, NULL, true);
        r = pk_sentry_service_sign(svc, pk_buf_slice(&req), time(NULL), &status, message,
                                   sizeof(message), &resp);
        if (r != cases[i].first) {
            fail_msg("case %zu: first pass %d, want %d (%s)", i, r, cases[i].first, message);
        }
        if (r == 0) {
            if (status != cases[i].first_status || strstr(message, cases[i].text) == NULL) {
                fail_msg("case %zu: status %d \"%s\"", i, status, message);
            }
        } else {
            assert_int_equal(resp.len, 0);
            pk_sentry_service_sign_kube(svc, pk_buf_slice(&req), time(NULL), &cases[i].outcome,
                                        &status, message, sizeof(message), &resp);
            if (status != cases[i].status) {
                fail_msg("case %zu: status %d \"%s\", want %d", i, status, message,
                         cases[i].status);
            }
            if (status == PK_GRPC_OK) {
                /* The URI SAN is in the leaf as is: find it in the response. */
                Dapr__Proto__Sentry__V1__SignCertificateResponse *p =
                        dapr__proto__sentry__v1__sign_certificate_response__unpack(NULL, resp.len,
                                                                                   resp.data);
                struct pk_pem_block blk = {0};
                size_t off = 0;
                struct pk_err err;
                assert_non_null(p);
                assert_int_equal(pk_pem_next(p->workload_certificate.data,
                                             p->workload_certificate.len, &off, &blk, &err),
                                 0);
                if (memmem(blk.der, blk.der_len, cases[i].text, strlen(cases[i].text)) == NULL) {
                    fail_msg("case %zu: the leaf does not name %s", i, cases[i].text);
                }
                pk_pem_block_clear(&blk);
                dapr__proto__sentry__v1__sign_certificate_response__free_unpacked(p, NULL);
            } else if (strstr(message, cases[i].text) == NULL) {
                fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, message, cases[i].text);
            }
        }
        pk_buf_free(&req);
        pk_buf_free(&resp);
    }
    pk_sentry_service_metrics(svc, &m);
    assert_int_equal(m.sign_request_received, PK_ARRAY_LEN(cases)); /* once per call */
    assert_int_equal(m.sign_success, 3);
    assert_int_equal(m.sign_failure, PK_ARRAY_LEN(cases) - 3);
    pk_sentry_service_free(svc);
}

/* Sentry's own certificate is renewed at half of what is really left of it, whatever the TTL and
 * skew: issued for real over a table of pairs (the skew moves NotBefore back, never the
 * schedule), and never sooner than the floor unless the certificate ends first. */
static void server_cert_renewal_schedule(void **state)
{
    static const struct {
        int64_t ttl, skew;
        double want; /* seconds until renewal */
    } table[] = {
            {25, 900, 12.5}, /* the seeds' short TTL under the default 15 min skew */
            {25, 0, 12.5},
            {60, 15 * 60, 30},
            {3600, 15 * 60, 1800},
            {86400, 15 * 60, 43200},
            {86400, 86400, 43200},
            {30, 7 * 86400, 15},
            {10, 900, 5}, /* half would be below the floor */
            {8, 900, 5},
            {6, 900, 5}, /* floor, still before expiry */
            {4, 900, 3}, /* ends before the floor: one second before it does */
            {2, 900, 1},
            {1, 900, 1},
            {1, 0, 1},
    };
    struct fixture *f = *state;
    struct pk_key *key = NULL;
    struct pk_pubkey *pub = fresh_pubkey(PK_KEY_P256, &key);
    time_t now = time(NULL);
    struct pk_err err;

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        struct pk_sentry_issued issued;
        double next;

        assert_int_equal(pk_sentry_issue_workload(f->creds, pub,
                                                  "spiffe://public/ns/default/dapr-sentry", now,
                                                  table[i].ttl, table[i].skew, &issued, &err),
                         0);
        next = pk_sentry_server_cert_renew_in(now, issued.not_after);
        print_message("ttl=%llds skew=%llds renew_in=%.1fs\n", (long long)table[i].ttl,
                      (long long)table[i].skew, next);
        assert_true(next == table[i].want);
        assert_true(next >= 1.0);
        if (table[i].ttl > 1) {
            assert_true(now + next < (double)issued.not_after);
        }
        pk_buf_free(&issued.chain_pem);
    }

    /* Capped by the issuer (which lives a year): half of what the issuer leaves. */
    {
        struct pk_sentry_issued issued;
        assert_int_equal(pk_sentry_issue_workload(f->creds, pub,
                                                  "spiffe://public/ns/default/dapr-sentry", now,
                                                  10L * 365 * 24 * 3600, 900, &issued, &err),
                         0);
        assert_true(pk_sentry_server_cert_renew_in(now, issued.not_after) ==
                    difftime(f->creds->issuer_not_after, now) / 2);
        pk_buf_free(&issued.chain_pem);
    }
    /* Nothing left (the issuer expires now, or the clock jumped): a retry, not a loop. */
    assert_true(pk_sentry_server_cert_renew_in(now, now) == PK_SENTRY_RENEW_RETRY);
    assert_true(pk_sentry_server_cert_renew_in(now, now - 3600) == PK_SENTRY_RENEW_RETRY);
    pk_pubkey_free(pub);
    pk_key_free(key);
}

/* Append one length-delimited protobuf field (tag < 16, len < 128) of len bytes. */
static void put_field(struct pk_buf *out, uint8_t field, const void *bytes, size_t len)
{
    uint8_t head[2] = {(uint8_t)(field << 3 | 2), (uint8_t)len};
    assert_true(len < 128);
    assert_int_equal(pk_buf_append(out, head, 2), 0);
    assert_int_equal(pk_buf_append(out, bytes, len), 0);
}

/* A request encoded by hand, so that strings may hold NUL bytes: id, namespace, trust domain
 * with their lengths, the validator, and a fresh P-256 CSR. */
static void pack_raw(struct pk_buf *out, const char *id, size_t id_len, const char *ns,
                     size_t ns_len, const char *td, size_t td_len, int validator)
{
    struct pk_key *key = NULL;
    struct pk_buf csr;
    struct pk_err err;
    uint8_t head[3];

    pk_buf_init(&csr, 16384);
    assert_int_equal(pk_key_generate(PK_KEY_P256, &key, &err), 0);
    assert_int_equal(pk_csr_create(key, NULL, &csr, &err), 0);
    put_field(out, 1, id, id_len);
    put_field(out, 4, ns, ns_len);
    if (td_len > 0) {
        put_field(out, 3, td, td_len);
    }
    head[0] = 5 << 3 | 2;
    head[1] = (uint8_t)(0x80 | (csr.len & 0x7f));
    head[2] = (uint8_t)(csr.len >> 7);
    assert_true(csr.len < 16384);
    assert_int_equal(pk_buf_append(out, head, 3), 0);
    assert_int_equal(pk_buf_append(out, csr.data, csr.len), 0);
    head[0] = 6 << 3;
    head[1] = (uint8_t)validator;
    assert_int_equal(pk_buf_append(out, head, 2), 0);
    pk_buf_free(&csr);
    pk_key_free(key);
}

struct raw_case {
    const char *id;
    size_t id_len;
    const char *ns;
    size_t ns_len;
    const char *td;
    size_t td_len;
    bool allow_control_plane; /* a service started with --allow-insecure-control-plane-ids */
    int status;
    const char *text; /* in the message, or the SPIFFE ID issued */
};

#define L(lit) lit, sizeof(lit) - 1

/* What the CA must not issue: NUL bytes, foreign trust domains, Sentry's own and the other
 * control-plane identities. The SPIFFE ID of each certificate issued is checked. */
static void sign_refuses_identities_it_must_not_issue(void **state)
{
    struct fixture *f = *state;
    static const struct raw_case cases[] = {
            {L("app"), L("dapr-system"), L(""), false, PK_GRPC_OK,
             "spiffe://public/ns/dapr-system/app"},
            {L("app"), L("shop"), L("example.test"), false, PK_GRPC_OK,
             "spiffe://example.test/ns/shop/app"},
            {L("app"), L("shop"), L("extra.test"), false, PK_GRPC_OK,
             "spiffe://extra.test/ns/shop/app"},
            {L("a\0b"), L("default"), L(""), false, PK_GRPC_PERMISSION_DENIED,
             "app id 'a\\x00b': a NUL byte is not allowed"},
            {L("app\0"), L("default"), L(""), false, PK_GRPC_PERMISSION_DENIED, "a NUL byte"},
            {L("app"), L("default\0x"), L(""), false, PK_GRPC_PERMISSION_DENIED,
             "namespace 'default\\x00x': a NUL byte"},
            {L("app"), L("default"), L("example.test\0evil"), false, PK_GRPC_PERMISSION_DENIED,
             "a NUL byte"},
            {L("app"), L("default"), L("evil.test"), false, PK_GRPC_PERMISSION_DENIED,
             "trust domain 'evil.test' is not one this Sentry signs for (allowed: example.test, "
             "public, extra.test"},
            {L("app"), L("default"), L("example.test."), false, PK_GRPC_PERMISSION_DENIED,
             "not one this Sentry signs for"},
            {L("app"), L("default"), L("localhost"), false, PK_GRPC_PERMISSION_DENIED,
             "not one this Sentry signs for"},
            {L("dapr-sentry"), L("dapr-system"), L("example.test"), false,
             PK_GRPC_PERMISSION_DENIED, "Sentry's own identity"},
            {L("dapr-sentry"), L("dapr-system"), L("example.test"), true, PK_GRPC_PERMISSION_DENIED,
             "Sentry's own identity"},
            {L("dapr-sentry"), L("default"), L(""), true, PK_GRPC_PERMISSION_DENIED,
             "Sentry's own identity"},
            {L("Dapr-Sentry"), L("dapr-system"), L(""), true, PK_GRPC_PERMISSION_DENIED,
             "Sentry's own identity"},
            {L("dapr-placement"), L("dapr-system"), L("example.test"), false,
             PK_GRPC_PERMISSION_DENIED, "--allow-insecure-control-plane-ids"},
            {L("dapr-scheduler"), L("dapr-system"), L(""), false, PK_GRPC_PERMISSION_DENIED,
             "control-plane identity"},
            {L("dapr-operator"), L("dapr-system"), L(""), false, PK_GRPC_PERMISSION_DENIED,
             "control-plane identity"},
            {L("dapr-injector"), L("dapr-system"), L(""), false, PK_GRPC_PERMISSION_DENIED,
             "control-plane identity"},
            {L("dapr-placement"), L("dapr-system"), L("example.test"), true, PK_GRPC_OK,
             "spiffe://example.test/ns/dapr-system/dapr-placement"},
            {L("Dapr-Placement"), L("dapr-system"), L("example.test"), true,
             PK_GRPC_PERMISSION_DENIED, "in another case"},
            {L("dapr-placement"), L("shop"), L(""), false, PK_GRPC_OK,
             "spiffe://public/ns/shop/dapr-placement"},
            {L("app"), L("Dapr-System"), L(""), false, PK_GRPC_PERMISSION_DENIED,
             "upper case is not allowed"},
            {L("app"), L("a234567890123456789012345678901234567890123456789012345678901234"), L(""),
             false, PK_GRPC_PERMISSION_DENIED, "is 64 bytes long"},
    };
    struct pk_sentry_trust_domains allowed = {0};
    struct pk_sentry_service *svc[2] = {NULL, NULL};
    struct pk_sentry_creds *second = NULL;
    struct pk_err err;

    assert_int_equal(pk_sentry_trust_domains_add_list(&allowed, "example.test,public,extra.test",
                                                      "test", &err),
                     0);
    assert_int_equal(pk_sentry_creds_load(&f->paths, &second, &err), 0);
    for (int i = 0; i < 2; i++) {
        struct pk_sentry_service_config cfg = {
                .trust_domain = "example.test",
                .namespace_ = "dapr-system",
                .ttl_seconds = 3600,
                .skew_seconds = 900,
                .allowed_trust_domains = &allowed,
                .allow_insecure_control_plane_ids = i == 1,
        };
        assert_int_equal(pk_sentry_service_new(&cfg, i == 0 ? f->creds : second, NULL, &svc[i]), 0);
    }
    f->creds = NULL; /* taken */
    for (size_t i = 0; i < PK_ARRAY_LEN(cases); i++) {
        const struct raw_case *c = &cases[i];
        struct pk_buf req, resp;
        char message[1024];
        int status = -1;

        pk_buf_init(&req, 65536);
        pk_buf_init(&resp, 1 << 20);
        pack_raw(&req, c->id, c->id_len, c->ns, c->ns_len, c->td, c->td_len, 1);
        pk_sentry_service_sign(svc[c->allow_control_plane], pk_buf_slice(&req), time(NULL), &status,
                               message, sizeof(message), &resp);
        if (status == PK_GRPC_OK) {
            Dapr__Proto__Sentry__V1__SignCertificateResponse *r =
                    dapr__proto__sentry__v1__sign_certificate_response__unpack(NULL, resp.len,
                                                                               resp.data);
            struct pk_pem_block block = {0};
            struct pk_cert *leaf = NULL;
            size_t offset = 0;
            assert_non_null(r);
            assert_int_equal(pk_pem_next(r->workload_certificate.data, r->workload_certificate.len,
                                         &offset, &block, &err),
                             0);
            assert_int_equal(pk_cert_parse_der(block.der, block.der_len, "leaf", &leaf, &err), 0);
            assert_int_equal(pk_cert_uri_count(leaf), 1);
            snprintf(message, sizeof(message), "%s", pk_cert_uri(leaf, 0));
            pk_cert_free(leaf);
            pk_pem_block_clear(&block);
            dapr__proto__sentry__v1__sign_certificate_response__free_unpacked(r, NULL);
        }
        if (status != c->status || strstr(message, c->text) == NULL) {
            fail_msg("case %zu: status %d message \"%s\", want %d \"%s\"", i, status, message,
                     c->status, c->text);
        }
        pk_buf_free(&req);
        pk_buf_free(&resp);
    }
    pk_sentry_service_free(svc[0]);
    pk_sentry_service_free(svc[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(generated_files_are_private_and_reload, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(mismatched_key_is_refused_naming_the_file, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(garbage_and_missing_files_are_refused, setup, teardown),
            cmocka_unit_test_setup_teardown(issuer_as_anchor_is_refused, setup, teardown),
            cmocka_unit_test_setup_teardown(workload_profile, setup, teardown),
            cmocka_unit_test_setup_teardown(server_cert_renewal_schedule, setup, teardown),
            cmocka_unit_test_setup_teardown(sign_table, setup, teardown),
            cmocka_unit_test_setup_teardown(sign_kubernetes_outcomes, setup, teardown),
            cmocka_unit_test_setup_teardown(sign_refuses_identities_it_must_not_issue, setup,
                                            teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
