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
 * certificate.
 *
 * The handshake's verifier (pk_x509_verify_peer_chain) does without the certificate manager,
 * which costs a signature check per certificate on top of our walk's. It builds the path leaf
 * upwards, matching issuers the way the manager's lookup does (ParseCertRelative in 5.5.4: the
 * issuer name, and the AKID against the issuer's key identifier, which wolfSSL takes from the
 * SKID extension or computes from the key; both are read from wolfSSL's DecodedCert at parse
 * time), applies the walk's checks to each candidate before its signature, and verifies each
 * signature once with wolfCrypt. What the manager evaluates and the walk does not, name
 * constraints of the DNS, e-mail and directory name forms, is left to pk_x509_verify_chain for
 * the rare path through a constrained CA. A memo (sigmemo.h) may answer for signatures above
 * the leaf; it learns them only from chains accepted whole, so what a peer sent is remembered
 * only as "these bytes were signed by those bytes", and only if an anchor vouches for them. */
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
#include "sigmemo.h"
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

/* What is asked of every issuer on a path, at the current time: valid now, a CA, allowed to sign
 * certificates when it has a key usage, and a path length constraint (if any) that allows the
 * n_inter intermediates below it. */
static int check_issuer(const struct pk_cert *ca, const char *who, size_t n_inter, time_t now,
                        struct pk_err *err)
{
    int r = check_dates(ca, who, now, err);

    if (r != 0) {
        return r;
    }
    if (!ca->is_ca) {
        return pk_err_set(err, PK_E_UNTRUSTED, "%s is not a CA certificate", who);
    }
    if (ca->has_ku && !(ca->ku & PK_KU_KEY_CERT_SIGN)) {
        return pk_err_set(err, PK_E_UNTRUSTED, "%s may not sign certificates (key usage)", who);
    }
    if (ca->path_len >= 0 && n_inter > (size_t)ca->path_len) {
        return pk_err_set(err, PK_E_UNTRUSTED,
                          "%s allows %d intermediate(s) below it, the chain has %zu", who,
                          ca->path_len, n_inter);
    }
    return 0;
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
            r = check_issuer(ca, who, n_inter, now, &sub);
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

static int verify_chain_once(const struct pk_cert *leaf, const struct pk_certs *intermediates,
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

/* ---- the handshake's chain verifier ---- */

/* Whether wolfSSL's certificate manager would pick issuer as cert's signer (ParseCertRelative
 * in 5.5.4): the issuer's subject is cert's issuer name (we compare the DER, wolfSSL its hash),
 * and when cert has an authority key identifier, the issuer's key identifier is that AKID, or
 * else cert's own subject key identifier (wolfSSL's second lookup). */
static bool issuer_candidate(const struct pk_cert *cert, const struct pk_cert *issuer)
{
    if (!pk_x509__slices_equal(pk_cert_issuer_der(cert), pk_cert_subject_der(issuer))) {
        return false;
    }
    if (!cert->has_akid) {
        return true;
    }
    return memcmp(cert->akid, issuer->keyid, KEYID_SIZE) == 0 ||
           (cert->has_skid_ext && memcmp(cert->keyid, issuer->keyid, KEYID_SIZE) == 0);
}

/* cert's signature by issuer, once: from memo when it is there, else verified. *learned is set
 * when a verification succeeded that the caller may memoise into *key (memoisable says whether
 * this link may be remembered at all). */
static bool signature_ok(const struct pk_cert *cert, const struct pk_cert *issuer,
                         struct pk_sigmemo *memo, bool memoisable, struct pk_sigmemo_key *key,
                         bool *learned)
{
    *learned = false;
    if (memo == NULL || !memoisable) {
        return pk_cert_signed_by(cert, issuer);
    }
    pk_sigmemo_key_of(cert->der, cert->der_len, issuer->der, issuer->der_len, key);
    if (pk_sigmemo_contains(memo, key)) {
        return true;
    }
    if (!pk_cert_signed_by(cert, issuer)) {
        return false;
    }
    *learned = true;
    return true;
}

int pk_x509_verify_peer_chain(const struct pk_cert *leaf, const struct pk_certs *intermediates,
                              const struct pk_certs *anchors, struct pk_sigmemo *memo,
                              struct pk_err *err)
{
    static const struct pk_certs none = {NULL, 0};
    struct pk_sigmemo_key learned[CHAIN_MAX_DEPTH + 1];
    size_t n_learned = 0;
    const struct pk_cert *cur = leaf;
    const struct pk_cert *anchor = NULL;
    bool constrained = false;
    uint64_t used = 0; /* bit i: intermediates->v[i] is on the path */
    size_t depth = 0;  /* intermediates on the path so far */
    /* wolfSSL counts a leaf that is a CA against its issuers' path length constraints (its
     * maxPathLen check in ParseCertRelative); so does this, to refuse what it refuses. */
    const size_t below_leaf = leaf->is_ca ? 1 : 0;
    char cur_who[320];
    time_t now = time(NULL);
    int r;

    if (intermediates == NULL) {
        intermediates = &none;
    }
    pk_x509__describe(leaf, "the leaf certificate", 0, cur_who, sizeof(cur_who));
    if (anchors->n == 0) {
        return pk_err_set(err, PK_E_UNTRUSTED, "%s: no trusted roots given", cur_who);
    }
    if (intermediates->n > 64) {
        return pk_err_set(err, PK_E_UNTRUSTED, "%s: more than 64 intermediates", cur_who);
    }
    r = check_dates(leaf, cur_who, now, err);
    if (r != 0) {
        return r;
    }
    while (anchor == NULL) {
        const struct pk_cert *next = NULL;
        struct pk_err first_err = {{0}};
        int first = 0;
        bool found = false;

        /* An anchor first, so a path never runs longer than it must; then what the peer sent.
         * Each candidate's own checks come before its signature, so a certificate refused on
         * its dates or flags costs no signature verification. */
        for (size_t pass = 0; pass < 2 && anchor == NULL && next == NULL; pass++) {
            const struct pk_certs *set = pass == 0 ? anchors : intermediates;
            for (size_t i = 0; i < set->n; i++) {
                const struct pk_cert *ca = set->v[i];
                struct pk_err sub = {{0}};
                char who[320];
                bool fresh;
                if ((pass == 1 && (used & (UINT64_C(1) << i)) != 0) || !issuer_candidate(cur, ca)) {
                    continue;
                }
                if (pass == 1 && depth == CHAIN_MAX_DEPTH) {
                    r = pk_err_set(err, PK_E_UNTRUSTED, "chain is longer than %d certificates",
                                   CHAIN_MAX_DEPTH);
                    goto out;
                }
                found = true;
                pk_x509__describe(ca, pass == 0 ? "root" : "intermediate", i + 1, who, sizeof(who));
                r = check_issuer(ca, who, depth + below_leaf, now, &sub);
                /* Only links above the leaf are memoised: those certificates are CAs that an
                 * anchor's path vouches for, so no peer can fill the memo with its own. */
                if (r == 0 &&
                    !signature_ok(cur, ca, memo, cur != leaf, &learned[n_learned], &fresh)) {
                    r = pk_err_set(&sub, PK_E_UNTRUSTED,
                                   "%s: signature does not verify with the key of its issuer "
                                   "`%.200s'",
                                   cur_who, cur->issuer_str);
                }
                if (r == 0) {
                    n_learned += fresh;
                    if (pass == 0) {
                        anchor = ca;
                    } else {
                        used |= UINT64_C(1) << i;
                        next = ca;
                        snprintf(cur_who, sizeof(cur_who), "%s", who);
                    }
                    break;
                }
                if (first == 0) {
                    first = r;
                    first_err = sub;
                }
            }
        }
        if (anchor == NULL && next == NULL) {
            if (!found) {
                r = pk_err_set(err, PK_E_UNTRUSTED, "%s: no trusted issuer found", cur_who);
            } else {
                r = first;
                if (err != NULL) {
                    *err = first_err;
                }
            }
            goto out;
        }
        if (next != NULL) {
            constrained |= pk_cert_has_name_constraints(next);
            cur = next;
            depth++;
        }
    }
    constrained |= pk_cert_has_name_constraints(anchor);
    if (constrained) {
        /* wolfSSL's certificate manager evaluates name constraints of the rfc822Name, dNSName
         * and directoryName forms; this path does not, so a constrained chain is decided again
         * by the full verifier, whose verdict stands. Rare, and only reachable with a chain an
         * anchor vouches for. */
        r = pk_x509_verify_chain(leaf, intermediates, anchors, err);
        if (r != 0) {
            goto out;
        }
    }
    for (size_t i = 0; memo != NULL && i < n_learned; i++) {
        pk_sigmemo_insert(memo, &learned[i]);
    }
    r = 0;
out:
    return r;
}

/* True when two of certs have the same subject name. */
static bool repeated_subject(const struct pk_certs *certs)
{
    for (size_t i = 0; i < certs->n; i++) {
        for (size_t j = i + 1; j < certs->n; j++) {
            if (pk_x509__slices_equal(pk_cert_subject_der(certs->v[i]),
                                      pk_cert_subject_der(certs->v[j]))) {
                return true;
            }
        }
    }
    return false;
}

/* wolfSSL's certificate manager finds the issuer of a certificate that has no authority key
 * identifier by subject name alone, and takes the first CA of that name it holds. When two roots
 * share a subject (Dapr names every root of a trust domain O=<trust domain>, and its issuers
 * carry no authority key identifier), it can take the other one and refuse a chain that the
 * right one verifies. So roots with a repeated subject are split into sets in which no subject
 * repeats, and the chain is accepted when it verifies against one set; otherwise the error is
 * that of the first set. */
int pk_x509_verify_chain(const struct pk_cert *leaf, const struct pk_certs *intermediates,
                         const struct pk_certs *roots, struct pk_err *err)
{
    struct pk_err first_err = {{0}};
    int first = 0;
    bool *placed;
    size_t n_placed = 0;

    if (!repeated_subject(roots)) {
        return verify_chain_once(leaf, intermediates, roots, err);
    }
    placed = pk_xcalloc(roots->n, sizeof(bool));
    while (n_placed < roots->n) {
        struct pk_certs set = {pk_xcalloc(roots->n, sizeof(struct pk_cert *)), 0};
        struct pk_err set_err = {{0}};
        int r;
        for (size_t i = 0; i < roots->n; i++) {
            bool clash = false;
            if (placed[i]) {
                continue;
            }
            for (size_t k = 0; k < set.n; k++) {
                clash = clash || pk_x509__slices_equal(pk_cert_subject_der(set.v[k]),
                                                       pk_cert_subject_der(roots->v[i]));
            }
            if (!clash) {
                set.v[set.n++] = roots->v[i]; /* borrowed */
                placed[i] = true;
                n_placed++;
            }
        }
        r = verify_chain_once(leaf, intermediates, &set, &set_err);
        free(set.v);
        if (r == 0) {
            free(placed);
            return 0;
        }
        if (first == 0) {
            first = r;
            first_err = set_err;
        }
    }
    free(placed);
    if (err != NULL) {
        *err = first_err;
    }
    return first;
}
