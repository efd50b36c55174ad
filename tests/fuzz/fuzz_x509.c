/* SPDX-License-Identifier: Apache-2.0 */
/* picket: fuzz target for certificate, CSR, public key and private key parsing.
 *
 * Targets: pk_cert_parse_der and every pk_cert_* accessor, pk_cert_self_signed,
 * pk_certs_push_copy, pk_certs_to_pem, pk_certs_parse_pem, pk_csr_parse_verify,
 * pk_pubkey_from_spki, pk_key_load_pem and pk_key_to_der. Every input is tried as a DER
 * certificate, a DER CSR, a DER SubjectPublicKeyInfo and a PEM text of certificates and of a
 * private key. Besides memory safety it checks: a parsed certificate keeps exactly its input,
 * its slices lie inside it, a copy and a PEM round trip parse to the same fields, at most
 * PK_CERT_MAX_URIS URIs come back, a loaded key exports to PKCS#8 that loads to the same key,
 * and failures use only the documented codes. The validity dates are never compared with the
 * clock here, so the target is deterministic. */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/csr.h"
#include "common/err.h"
#include "common/key.h"
#include "common/pem.h"
#include "common/x509.h"
#include "fuzz.h"

static void check(int cond)
{
    if (!cond) {
        abort();
    }
}

static int inside(struct pk_slice s, struct pk_slice whole)
{
    return s.len == 0 || (s.ptr >= whole.ptr && s.len <= whole.len &&
                          (size_t)(s.ptr - whole.ptr) <= whole.len - s.len);
}

static void same_fields(const struct pk_cert *a, const struct pk_cert *b)
{
    char sa[64], sb[64];

    check(strcmp(pk_cert_subject(a), pk_cert_subject(b)) == 0);
    check(strcmp(pk_cert_issuer(a), pk_cert_issuer(b)) == 0);
    check(pk_cert_not_before(a) == pk_cert_not_before(b));
    check(pk_cert_not_after(a) == pk_cert_not_after(b));
    check(pk_cert_uri_count(a) == pk_cert_uri_count(b));
    for (size_t i = 0; i < pk_cert_uri_count(a); i++) {
        check(strcmp(pk_cert_uri(a, i), pk_cert_uri(b, i)) == 0);
    }
    check(pk_cert_dns_count(a) == pk_cert_dns_count(b));
    check(pk_cert_is_ca(a) == pk_cert_is_ca(b) && pk_cert_path_len(a) == pk_cert_path_len(b));
    check(pk_cert_key_usage(a) == pk_cert_key_usage(b));
    check(pk_cert_ext_key_usage(a) == pk_cert_ext_key_usage(b));
    check(pk_cert_key_type(a) == pk_cert_key_type(b));
    pk_cert_serial_hex(a, sa, sizeof(sa));
    pk_cert_serial_hex(b, sb, sizeof(sb));
    check(strcmp(sa, sb) == 0);
}

static void try_cert(const uint8_t *data, size_t size)
{
    struct pk_cert *cert = NULL;
    struct pk_err err;
    int r = pk_cert_parse_der(data, size, "fuzz", &cert, &err);

    if (r != 0) {
        check(r == PK_E_INVALID || r == PK_E_TOOBIG);
        check(cert == NULL);
        return;
    }
    struct pk_slice der = pk_cert_der(cert);
    check(der.len == size && memcmp(der.ptr, data, size) == 0);
    check(inside(pk_cert_subject_der(cert), der) && inside(pk_cert_issuer_der(cert), der));
    check(inside(pk_cert_spki(cert), der) && inside(pk_cert_skid(cert), der));
    check(pk_cert_uri_count(cert) <= PK_CERT_MAX_URIS);
    check(pk_cert_uri(cert, pk_cert_uri_count(cert)) == NULL);
    check(pk_cert_path_len(cert) >= -1);
    check(pk_cert_is_ca(cert) ? pk_cert_has_basic_constraints(cert) : 1);
    char serial[8];
    pk_cert_serial_hex(cert, serial, sizeof(serial));
    check(strlen(serial) > 0 && strlen(serial) < sizeof(serial));
    (void)pk_cert_self_signed(cert);
    (void)pk_cert_san_critical(cert);
    (void)pk_cert_has_key_usage(cert);
    (void)pk_cert_has_ext_key_usage(cert);

    struct pk_certs certs = {NULL, 0}, back = {NULL, 0};
    struct pk_buf pem;
    check(pk_certs_push_copy(&certs, cert) == 0);
    pk_buf_init(&pem, 4 * PK_PEM_MAX_DER);
    check(pk_certs_to_pem(&certs, &pem) == 0);
    check(pk_certs_parse_pem(pem.data, pem.len, "again", &back, NULL) == 0);
    check(back.n == 1);
    same_fields(cert, certs.v[0]);
    same_fields(cert, back.v[0]);
    pk_buf_free(&pem);
    pk_certs_clear(&certs);
    pk_certs_clear(&back);
    pk_cert_free(cert);
}

static void try_key(const uint8_t *data, size_t size)
{
    struct pk_key *key = NULL, *again = NULL;
    struct pk_err err;
    int r = pk_key_load_pem(data, size, "fuzz", &key, &err);

    if (r != 0) {
        check(r == PK_E_INVALID || r == PK_E_UNSUPPORTED || r == PK_E_TOOBIG || r == PK_E_CRYPTO);
        check(key == NULL);
        return;
    }
    struct pk_buf d1, d2, pem;
    pk_buf_init_secret(&d1, 4096);
    pk_buf_init_secret(&d2, 4096);
    pk_buf_init_secret(&pem, 8192);
    check(pk_key_to_der(key, &d1) == 0);
    check(pk_key_to_pem(key, &pem) == 0);
    check(pk_key_load_pem(pem.data, pem.len, "again", &again, NULL) == 0);
    check(pk_key_to_der(again, &d2) == 0);
    check(d1.len == d2.len && memcmp(d1.data, d2.data, d1.len) == 0);
    pk_buf_free(&d1);
    pk_buf_free(&d2);
    pk_buf_free(&pem);
    pk_key_free(again);
    pk_key_free(key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pk_pubkey *pub = NULL;
    struct pk_certs certs = {NULL, 0};
    struct pk_err err;
    int r;

    try_cert(data, size);

    r = pk_csr_parse_verify(data, size, &pub, &err);
    check(r == 0 || r == PK_E_INVALID || r == PK_E_UNSUPPORTED);
    check((r == 0) == (pub != NULL));
    pub = pk_pubkey_free(pub);

    r = pk_pubkey_from_spki(data, size, &pub, &err);
    check(r == 0 || r == PK_E_INVALID || r == PK_E_UNSUPPORTED);
    if (r == 0) {
        struct pk_slice spki = pk_pubkey_spki(pub);
        struct pk_pubkey *again = NULL;
        check(pk_pubkey_from_spki(spki.ptr, spki.len, &again, NULL) == 0);
        check(pk_pubkey_equal(pub, again));
        pk_pubkey_free(again);
    }
    pk_pubkey_free(pub);

    r = pk_certs_parse_pem(data, size, "fuzz.pem", &certs, &err);
    check(r == 0 ? certs.n > 0 : certs.n == 0);
    pk_certs_clear(&certs);

    try_key(data, size);
    return 0;
}
