/* SPDX-License-Identifier: Apache-2.0 */
/* picket: helpers shared by the `picket cert` subcommands. */
#include "cmd/cert_util.h"

#include <string.h>

#include "common/buf.h"
#include "common/fsutil.h"
#include "common/pem.h"

int pk_cert_util_read_certs(const char *path, struct pk_certs *certs, struct pk_err *err)
{
    struct pk_buf text;
    int r;

    pk_buf_init(&text, PK_CERT_UTIL_MAX_FILE);
    r = pk_fs_read_file(path, PK_CERT_UTIL_MAX_FILE, &text, err);
    if (r == 0) {
        r = pk_certs_parse_pem(text.data, text.len, path, certs, err);
    }
    pk_buf_free(&text);
    return r;
}

int pk_cert_util_read_key(const char *path, struct pk_key **out, struct pk_err *err)
{
    struct pk_buf text;
    int r;

    pk_buf_init_secret(&text, PK_CERT_UTIL_MAX_FILE);
    r = pk_fs_read_file(path, PK_CERT_UTIL_MAX_FILE, &text, err);
    if (r == 0) {
        r = pk_key_load_pem(text.data, text.len, path, out, err);
    }
    pk_buf_free(&text);
    return r;
}

int pk_cert_util_write_cert(const char *path, const struct pk_cert *cert, struct pk_err *err)
{
    struct pk_slice der = pk_cert_der(cert);
    struct pk_buf pem;
    int r;

    pk_buf_init(&pem, 64 * 1024);
    r = pk_pem_encode("CERTIFICATE", der.ptr, der.len, &pem);
    if (r != 0) {
        pk_err_set(err, r, "%s: cannot encode the certificate: %s", path, pk_err_str(r));
    } else {
        /* Certificates are public: readable by the services that trust or serve them. */
        r = pk_fs_write_atomic(path, pem.data, pem.len, 0644, err);
    }
    pk_buf_free(&pem);
    return r;
}

int pk_cert_util_write_key(const char *path, const struct pk_key *key, struct pk_err *err)
{
    struct pk_buf pem;
    int r;

    pk_buf_init_secret(&pem, 64 * 1024);
    r = pk_key_to_pem(key, &pem);
    if (r != 0) {
        pk_err_set(err, r, "%s: cannot encode the key: %s", path, pk_err_str(r));
    } else {
        r = pk_fs_write_atomic(path, pem.data, pem.len, 0600, err);
    }
    pk_buf_free(&pem);
    return r;
}

void pk_cert_util_format_time(time_t t, char *out, size_t len)
{
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(out, len, "%lld", (long long)t);
    }
}

/* "3d 4h", "4h 12m", "12m 5s" or "5s": the two largest units. */
static void format_span(long long s, char *out, size_t len)
{
    if (s >= 86400) {
        snprintf(out, len, "%lldd %lldh", s / 86400, (s % 86400) / 3600);
    } else if (s >= 3600) {
        snprintf(out, len, "%lldh %lldm", s / 3600, (s % 3600) / 60);
    } else if (s >= 60) {
        snprintf(out, len, "%lldm %llds", s / 60, s % 60);
    } else {
        snprintf(out, len, "%llds", s);
    }
}

void pk_cert_util_format_left(time_t not_before, time_t not_after, time_t now, char *out,
                              size_t len)
{
    char span[32];

    if (now < not_before) {
        format_span((long long)(not_before - now), span, sizeof(span));
        snprintf(out, len, "not valid for another %s", span);
    } else if (now > not_after) {
        format_span((long long)(now - not_after), span, sizeof(span));
        snprintf(out, len, "expired %s ago", span);
    } else {
        format_span((long long)(not_after - now), span, sizeof(span));
        snprintf(out, len, "expires in %s", span);
    }
}

static void print_usages(FILE *out, const struct pk_cert *cert)
{
    static const struct {
        unsigned bit;
        const char *name;
    } ku[] = {
            {PK_KU_DIGITAL_SIGNATURE, "digitalSignature"},
            {PK_KU_KEY_ENCIPHERMENT, "keyEncipherment"},
            {PK_KU_KEY_AGREEMENT, "keyAgreement"},
            {PK_KU_KEY_CERT_SIGN, "keyCertSign"},
            {PK_KU_CRL_SIGN, "cRLSign"},
    };
    static const struct {
        unsigned bit;
        const char *name;
    } eku[] = {
            {PK_EKU_SERVER_AUTH, "serverAuth"},
            {PK_EKU_CLIENT_AUTH, "clientAuth"},
            {PK_EKU_ANY, "any"},
            {PK_EKU_OTHER, "other"},
    };
    const char *sep = "";

    fprintf(out, "  key usage:     ");
    if (!pk_cert_has_key_usage(cert)) {
        fprintf(out, "(none)");
    }
    for (size_t i = 0; i < PK_ARRAY_LEN(ku); i++) {
        if (pk_cert_key_usage(cert) & ku[i].bit) {
            fprintf(out, "%s%s", sep, ku[i].name);
            sep = ", ";
        }
    }
    fprintf(out, "\n  ext key usage: ");
    sep = "";
    if (!pk_cert_has_ext_key_usage(cert)) {
        fprintf(out, "(none)");
    }
    for (size_t i = 0; i < PK_ARRAY_LEN(eku); i++) {
        if (pk_cert_ext_key_usage(cert) & eku[i].bit) {
            fprintf(out, "%s%s", sep, eku[i].name);
            sep = ", ";
        }
    }
    fprintf(out, "\n");
}

void pk_cert_util_describe(FILE *out, const struct pk_cert *cert, time_t now)
{
    char serial[80], nb[32], na[32], left[48], fp[65];
    const char *spiffe = NULL;

    pk_cert_serial_hex(cert, serial, sizeof(serial));
    pk_cert_util_format_time(pk_cert_not_before(cert), nb, sizeof(nb));
    pk_cert_util_format_time(pk_cert_not_after(cert), na, sizeof(na));
    pk_cert_util_format_left(pk_cert_not_before(cert), pk_cert_not_after(cert), now, left,
                             sizeof(left));
    pk_cert_fingerprint(cert, fp);
    for (size_t i = 0; i < pk_cert_uri_count(cert); i++) {
        if (strncmp(pk_cert_uri(cert, i), "spiffe://", 9) == 0) {
            spiffe = pk_cert_uri(cert, i);
            break;
        }
    }
    fprintf(out, "  subject:       %s\n",
            pk_cert_subject(cert)[0] ? pk_cert_subject(cert) : "(empty)");
    fprintf(out, "  issuer:        %s%s\n",
            pk_cert_issuer(cert)[0] ? pk_cert_issuer(cert) : "(empty)",
            pk_cert_self_signed(cert) ? " (self-signed)" : "");
    fprintf(out, "  spiffe id:     %s\n", spiffe != NULL ? spiffe : "(none)");
    if (pk_cert_dns_count(cert) > 0) {
        fprintf(out, "  dns names:     %zu\n", pk_cert_dns_count(cert));
    }
    fprintf(out, "  serial:        %s\n", serial);
    fprintf(out, "  not before:    %s\n", nb);
    fprintf(out, "  not after:     %s (%s)\n", na, left);
    fprintf(out, "  key:           %s\n", pk_key_type_name(pk_cert_key_type(cert)));
    if (pk_cert_is_ca(cert)) {
        if (pk_cert_path_len(cert) >= 0) {
            fprintf(out, "  ca:            yes, path length %d\n", pk_cert_path_len(cert));
        } else {
            fprintf(out, "  ca:            yes\n");
        }
    } else {
        fprintf(out, "  ca:            no\n");
    }
    print_usages(out, cert);
    fprintf(out, "  sha256:        %s\n", fp);
}
