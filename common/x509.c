/* SPDX-License-Identifier: Apache-2.0 */
/* picket: X.509 chain verification.
 *
 * Implementation notes
 *
 * Chain verification uses a WOLFSSL_CERT_MANAGER. Loading a CA (LoadCABuffer) does not check
 * its signature, so an intermediate is first verified (VerifyBuffer) against what is already
 * loaded and only then loaded as a CA; intermediates are retried until a round adds none, which
 * accepts them in any order. After wolfSSL accepts the leaf, the path is built again with
 * pk_cert_signed_by and checked at the current time for validity, CA flag, keyCertSign and
 * path length at every level, roots included (a loaded root's expiry is not rechecked by wolfSSL
 * when it verifies a child). The first failure found decides the error and names the
 * certificate. */
#include "x509.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
/* wolfssl/options.h must come before every other wolfSSL header. */
/* clang-format off */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
/* clang-format on */
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "mem.h"
#include "pem.h"
#include "x509_internal.h"

#define CHAIN_MAX_DEPTH 10

static pthread_once_t wolfssl_once = PTHREAD_ONCE_INIT;
static int wolfssl_init_ret;

static void wolfssl_init(void)
{
    wolfssl_init_ret = wolfSSL_Init();
}

static void format_time(time_t t, char *out, size_t out_len)
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, out_len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(out, out_len, "@%lld", (long long)t);
    }
}

/* Our time check for one certificate on the path. */
static int check_dates(const struct pk_cert *cert, const char *who, time_t now, struct pk_err *err)
{
    char when[32];

    if (now > cert->not_after) {
        format_time(cert->not_after, when, sizeof(when));
        return pk_err_set(err, PK_E_EXPIRED, "%s expired at %s", who, when);
    }
    if (now < cert->not_before) {
        format_time(cert->not_before, when, sizeof(when));
        return pk_err_set(err, PK_E_NOTYETVALID, "%s is not valid before %s", who, when);
    }
    return 0;
}

/* Map a wolfSSL verification error about one certificate. */
static int wolf_error(int wc, const struct pk_cert *cert, const char *who, struct pk_err *err)
{
    char when[32];

    switch (wc) {
    case ASN_AFTER_DATE_E:
        format_time(cert->not_after, when, sizeof(when));
        return pk_err_set(err, PK_E_EXPIRED, "%s expired at %s", who, when);
    case ASN_BEFORE_DATE_E:
        format_time(cert->not_before, when, sizeof(when));
        return pk_err_set(err, PK_E_NOTYETVALID, "%s is not valid before %s", who, when);
    case ASN_NO_SIGNER_E:
        return pk_err_set(err, PK_E_UNTRUSTED,
                          "%s: its issuer '%.200s' is not a trusted root or a verified "
                          "intermediate",
                          who, cert->issuer_str);
    case ASN_SIG_CONFIRM_E:
    case ASN_SIG_OID_E:
    case ASN_SIG_KEY_E:
    case ASN_SIG_HASH_E:
    case SIG_VERIFY_E:
        return pk_err_set(err, PK_E_UNTRUSTED,
                          "%s: signature does not verify with the key of its issuer '%.200s'", who,
                          cert->issuer_str);
    case NOT_CA_ERROR:
        return pk_err_set(err, PK_E_UNTRUSTED, "%s is not a CA certificate", who);
    case ASN_PATHLEN_SIZE_E:
    case ASN_PATHLEN_INV_E:
        return pk_err_set(err, PK_E_UNTRUSTED, "%s exceeds a path length constraint", who);
    default:
        return pk_err_set(err, PK_E_UNTRUSTED, "%s rejected: %s", who, wc_GetErrorString(wc));
    }
}

/* What became of each candidate issuer while loading the certificate manager. */
struct chain_state {
    const struct pk_certs *inter;
    const struct pk_certs *roots;
    bool *inter_ok;
    int *inter_err; /* wolfSSL error of the last attempt */
    bool *root_ok;
    int *root_err;
};

/* Depth-first search for a path from cert to a loaded root, checking at each step what the
 * certificate manager does not (see the implementation notes). n_inter counts the
 * intermediates below the current issuer, for pathLenConstraint. */
static int path_check(const struct chain_state *st, const struct pk_cert *cert, size_t depth,
                      size_t n_inter, time_t now, struct pk_err *err)
{
    struct pk_err first_err = {{0}};
    int first = PK_E_UNTRUSTED;
    bool have_first = false;
    char who[320];
    bool found = false;

    if (depth > CHAIN_MAX_DEPTH) {
        return pk_err_set(err, PK_E_UNTRUSTED, "chain is longer than %d certificates",
                          CHAIN_MAX_DEPTH);
    }
    for (int pass = 0; pass < 2; pass++) {
        const struct pk_certs *set = pass == 0 ? st->roots : st->inter;
        const bool *ok = pass == 0 ? st->root_ok : st->inter_ok;
        for (size_t i = 0; i < set->n; i++) {
            const struct pk_cert *ca = set->v[i];
            struct pk_err sub = {{0}};
            int r;
            if (!ok[i] || ca == cert || !pk_cert_signed_by(cert, ca)) {
                continue;
            }
            found = true;
            pk_x509__describe(ca, pass == 0 ? "root" : "intermediate", i + 1, who, sizeof(who));
            r = check_dates(ca, who, now, &sub);
            if (r == 0 && !ca->is_ca) {
                r = pk_err_set(&sub, PK_E_UNTRUSTED, "%s is not a CA certificate", who);
            }
            if (r == 0 && ca->has_ku && !(ca->ku & PK_KU_KEY_CERT_SIGN)) {
                r = pk_err_set(&sub, PK_E_UNTRUSTED, "%s may not sign certificates (key usage)",
                               who);
            }
            if (r == 0 && ca->path_len >= 0 && n_inter > (size_t)ca->path_len) {
                r = pk_err_set(&sub, PK_E_UNTRUSTED,
                               "%s allows %d intermediate(s) below it, the chain has %zu", who,
                               ca->path_len, n_inter);
            }
            if (r == 0 && pass == 1) {
                r = path_check(st, ca, depth + 1, n_inter + 1, now, &sub);
            }
            if (r == 0) {
                return 0;
            }
            if (!have_first) {
                first_err = sub;
                first = r;
                have_first = true;
            }
        }
    }
    if (!found) {
        pk_x509__describe(cert, depth == 0 ? "the leaf certificate" : "a certificate", 0, who,
                          sizeof(who));
        return pk_err_set(err, PK_E_UNTRUSTED, "%s: no trusted issuer found", who);
    }
    if (err != NULL) {
        *err = first_err;
    }
    return first;
}

/* Explain why the leaf has no signer: the first failed candidate whose subject is its issuer. */
static int explain_no_signer(const struct chain_state *st, const struct pk_cert *leaf,
                             const char *leaf_who, size_t depth, struct pk_err *err)
{
    char who[320];

    if (depth > CHAIN_MAX_DEPTH) {
        return wolf_error(ASN_NO_SIGNER_E, leaf, leaf_who, err);
    }

    for (size_t i = 0; i < st->inter->n; i++) {
        const struct pk_cert *c = st->inter->v[i];
        if (!st->inter_ok[i] &&
            pk_x509__slices_equal(pk_cert_subject_der(c), pk_cert_issuer_der(leaf))) {
            pk_x509__describe(c, "intermediate", i + 1, who, sizeof(who));
            if (st->inter_err[i] == ASN_NO_SIGNER_E) {
                /* Its own issuer is missing too: follow the chain up. */
                return explain_no_signer(st, c, who, depth + 1, err);
            }
            return wolf_error(st->inter_err[i], c, who, err);
        }
    }
    for (size_t i = 0; i < st->roots->n; i++) {
        const struct pk_cert *c = st->roots->v[i];
        if (!st->root_ok[i] &&
            pk_x509__slices_equal(pk_cert_subject_der(c), pk_cert_issuer_der(leaf))) {
            pk_x509__describe(c, "root", i + 1, who, sizeof(who));
            return wolf_error(st->root_err[i], c, who, err);
        }
    }
    return wolf_error(ASN_NO_SIGNER_E, leaf, leaf_who, err);
}

int pk_x509_verify_chain(const struct pk_cert *leaf, const struct pk_certs *intermediates,
                         const struct pk_certs *roots, struct pk_err *err)
{
    static const struct pk_certs none = {NULL, 0};
    WOLFSSL_CERT_MANAGER *cm = NULL;
    struct chain_state st;
    char who[320];
    bool progress;
    int r;

    if (intermediates == NULL) {
        intermediates = &none;
    }
    st.inter = intermediates;
    st.roots = roots;
    st.inter_ok = pk_xcalloc(intermediates->n + 1, sizeof(bool));
    st.inter_err = pk_xcalloc(intermediates->n + 1, sizeof(int));
    st.root_ok = pk_xcalloc(roots->n + 1, sizeof(bool));
    st.root_err = pk_xcalloc(roots->n + 1, sizeof(int));
    pk_x509__describe(leaf, "the leaf certificate", 0, who, sizeof(who));

    if (roots->n == 0) {
        r = pk_err_set(err, PK_E_UNTRUSTED, "%s: no trusted roots given", who);
        goto out;
    }
    pthread_once(&wolfssl_once, wolfssl_init);
    if (wolfssl_init_ret != WOLFSSL_SUCCESS || (cm = wolfSSL_CertManagerNew()) == NULL) {
        r = pk_err_set(err, PK_E_CRYPTO, "cannot create a wolfSSL certificate manager");
        goto out;
    }
    for (size_t i = 0; i < roots->n; i++) {
        struct pk_slice der = pk_cert_der(roots->v[i]);
        r = wolfSSL_CertManagerLoadCABuffer(cm, der.ptr, (long)der.len, WOLFSSL_FILETYPE_ASN1);
        st.root_ok[i] = r == WOLFSSL_SUCCESS;
        st.root_err[i] = r;
    }
    do {
        progress = false;
        for (size_t i = 0; i < intermediates->n; i++) {
            struct pk_slice der = pk_cert_der(intermediates->v[i]);
            if (st.inter_ok[i]) {
                continue;
            }
            r = wolfSSL_CertManagerVerifyBuffer(cm, der.ptr, (long)der.len, WOLFSSL_FILETYPE_ASN1);
            if (r == WOLFSSL_SUCCESS) {
                r = wolfSSL_CertManagerLoadCABuffer(cm, der.ptr, (long)der.len,
                                                    WOLFSSL_FILETYPE_ASN1);
            }
            st.inter_err[i] = r;
            if (r == WOLFSSL_SUCCESS) {
                st.inter_ok[i] = true;
                progress = true;
            }
        }
    } while (progress);

    {
        struct pk_slice der = pk_cert_der(leaf);
        r = wolfSSL_CertManagerVerifyBuffer(cm, der.ptr, (long)der.len, WOLFSSL_FILETYPE_ASN1);
    }
    if (r == ASN_NO_SIGNER_E) {
        r = explain_no_signer(&st, leaf, who, 0, err);
        goto out;
    }
    if (r != WOLFSSL_SUCCESS) {
        r = wolf_error(r, leaf, who, err);
        goto out;
    }
    /* wolfSSL accepted the leaf; now our own walk of the same path. */
    {
        time_t now = time(NULL);
        r = check_dates(leaf, who, now, err);
        if (r == 0) {
            r = path_check(&st, leaf, 0, 0, now, err);
        }
    }
out:
    if (cm != NULL) {
        wolfSSL_CertManagerFree(cm);
    }
    free(st.inter_ok);
    free(st.inter_err);
    free(st.root_ok);
    free(st.root_err);
    return r;
}
