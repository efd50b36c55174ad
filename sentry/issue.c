/* SPDX-License-Identifier: Apache-2.0 */
/* picket: signing workload certificates in Dapr Sentry's 1.14+ profile. */
#include "sentry/issue.h"

#include <string.h>

#include "common/pem.h"
#include "common/x509.h"

int pk_sentry_issue_workload(const struct pk_sentry_creds *creds,
                             const struct pk_pubkey *subject_key, const char *spiffe_id, time_t now,
                             int64_t ttl_seconds, int64_t skew_seconds,
                             struct pk_sentry_issued *out, struct pk_err *err)
{
    struct pk_cert_template tmpl = {
            .not_before = now - (time_t)skew_seconds,
            .not_after = now + (time_t)ttl_seconds,
            .is_ca = false,
            .path_len = -1,
            .key_usage = PK_KU_DIGITAL_SIGNATURE,
            .ext_key_usage = PK_EKU_SERVER_AUTH | PK_EKU_CLIENT_AUTH,
            .uri_san = spiffe_id,
    };
    struct pk_cert *leaf = NULL;
    struct pk_slice der;
    int r;

    /* A workload certificate never outlives the certificate that vouches for it. */
    if (tmpl.not_after > creds->issuer_not_after) {
        tmpl.not_after = creds->issuer_not_after;
    }
    if (tmpl.not_after <= now) {
        return pk_err_set(err, PK_E_EXPIRED, "the issuer certificate has expired");
    }
    r = pk_cert_issue(&tmpl, subject_key, creds->issuer_chain.v[0], creds->issuer_key, &leaf, err);
    if (r != 0) {
        return r;
    }
    memset(out, 0, sizeof(*out));
    pk_buf_init(&out->chain_pem, PK_SENTRY_CREDS_MAX_FILE + 64 * 1024);
    der = pk_cert_der(leaf);
    r = pk_pem_encode("CERTIFICATE", der.ptr, der.len, &out->chain_pem);
    if (r == 0) {
        r = pk_buf_append(&out->chain_pem, creds->chain_pem.data, creds->chain_pem.len);
    }
    if (r != 0) {
        pk_buf_free(&out->chain_pem);
        pk_err_set(err, r, "encoding the certificate chain: %s", pk_err_str(r));
        goto out;
    }
    out->not_before = pk_cert_not_before(leaf);
    out->not_after = pk_cert_not_after(leaf);
    pk_cert_serial_hex(leaf, out->serial_hex, sizeof(out->serial_hex));
out:
    pk_cert_free(leaf);
    return r;
}

double pk_sentry_server_cert_renew_in(time_t now, time_t not_after)
{
    double window = difftime(not_after, now);
    double next = window * PK_SENTRY_RENEW_FRACTION;

    if (window <= 0) {
        return PK_SENTRY_RENEW_RETRY;
    }
    if (next < PK_SENTRY_RENEW_FLOOR) {
        next = window - 1 > PK_SENTRY_RENEW_FLOOR ? PK_SENTRY_RENEW_FLOOR : window - 1;
        if (next < 1.0) {
            next = 1.0;
        }
    }
    return next;
}
