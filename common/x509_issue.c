/* SPDX-License-Identifier: Apache-2.0 */
/* picket: X.509 issuance: sign a certificate from a template.
 *
 * Implementation notes
 *
 * Issuance drives wolfSSL's Cert (wc_InitCert, wc_MakeCert_ex, wc_SignCert_ex). wolfSSL 5.5.4
 * honours raw validity times (beforeDate/afterDate, tag and length included), raw GeneralNames
 * (altNames, with altNamesCrit for a critical SAN), keyUsage (always critical), extKeyUsage,
 * skid and akid, and emits no BasicConstraints when isCA is 0. It cannot express two things
 * Dapr's profiles need: it marks BasicConstraints non-critical, and it encodes names from fixed
 * 64-byte CertName fields (the raw-name fields sbjRaw/issRaw are measured with strlen, so a
 * Name whose DER holds a zero octet, e.g. a 256-byte attribute, is silently cut). So wolfSSL
 * builds the TBSCertificate with empty names, and tbs_rebuild() copies it element by element,
 * putting in our own issuer and subject Name DER and replacing any BasicConstraints with a
 * critical one that we encode (CA certificates only); wc_SignCert_ex then signs the rebuilt TBS,
 * exactly as it would have signed wolfSSL's. Every issued certificate is parsed back, compared
 * with the template field by field, and its signature verified before it is returned. */
#include "x509_issue.h"

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

#define ISSUE_MAX_STRING 1024
#define ISSUE_MAX_URI    2048
#define ISSUE_MAX_DNS    253 /* RFC 1035 §2.3.4, without the final dot */

/* The DER of a time: UTCTime for 1950..2049, GeneralizedTime otherwise (RFC 5280 §4.1.2.5).
 * out must hold 17 bytes. Returns the length, or 0 when t is outside years 0..9999. */
static size_t encode_time(time_t t, uint8_t *out)
{
    struct tm tm;
    char text[20];
    int n;

    if (gmtime_r(&t, &tm) == NULL || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900) {
        return 0;
    }
    if (tm.tm_year >= 50 && tm.tm_year < 150) {
        n = snprintf(text, sizeof(text), "%02d%02d%02d%02d%02d%02dZ", tm.tm_year % 100,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        out[0] = PK_DER_UTC_TIME;
    } else {
        n = snprintf(text, sizeof(text), "%04d%02d%02d%02d%02d%02dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        out[0] = PK_DER_GEN_TIME;
    }
    out[1] = (uint8_t)n;
    memcpy(out + 2, text, (size_t)n);
    return (size_t)n + 2;
}

/* Go's asn1 marshalling rule: PrintableString when every character allows it, else UTF8String.
 * Using it keeps our names byte-identical to those Dapr Sentry writes. */
static bool printable_string_ok(const char *s)
{
    for (; *s != '\0'; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == ' ' || c == '\'' || c == '(' || c == ')' || c == '+' || c == ',' || c == '-' ||
              c == '.' || c == '/' || c == ':' || c == '=' || c == '?')) {
            return false;
        }
    }
    return true;
}

static int name_put_rdn(struct pk_buf *b, const uint8_t *oid, size_t oid_len, const char *value)
{
    size_t start = b->len;
    int r = pk_der_put(b, PK_DER_OID, oid, oid_len);

    r = r != 0 ? r
               : pk_der_put(b, printable_string_ok(value) ? PK_DER_PRINTABLE : PK_DER_UTF8_STRING,
                            value, strlen(value));
    r = r != 0 ? r : pk_der_wrap(b, start, PK_DER_SEQUENCE);
    return r != 0 ? r : pk_der_wrap(b, start, PK_DER_SET);
}

static word16 ku_to_wolf(unsigned ku)
{
    word16 wc = 0;
    for (unsigned bit = 0; bit < 8; bit++) {
        if (ku & (1u << bit)) {
            wc |= (word16)(0x80u >> bit);
        }
    }
    if (ku & (1u << 8)) {
        wc |= KEYUSE_DECIPHER_ONLY;
    }
    return wc;
}

/* ---- issuance ---- */

static int check_issue_string(const char *s, size_t max, const char *field, struct pk_err *err)
{
    size_t len = strnlen(s, max + 1);

    if (len == 0 || len > max) {
        return pk_err_set(err, PK_E_INVALID, "certificate template: %s must have 1 to %zu bytes",
                          field, max);
    }
    return 0;
}

/* The subject attributes a template may set, in the order they are written. */
static const struct {
    const uint8_t *oid;
    size_t oid_len;
    size_t field; /* of the const char * in struct pk_cert_template */
    const char *what;
} subject_attrs[] = {
        {pk_x509__oid_at_c, sizeof(pk_x509__oid_at_c), offsetof(struct pk_cert_template, subject_c),
         "subject C"},
        {pk_x509__oid_at_st, sizeof(pk_x509__oid_at_st),
         offsetof(struct pk_cert_template, subject_st), "subject ST"},
        {pk_x509__oid_at_l, sizeof(pk_x509__oid_at_l), offsetof(struct pk_cert_template, subject_l),
         "subject L"},
        {pk_x509__oid_at_o, sizeof(pk_x509__oid_at_o), offsetof(struct pk_cert_template, subject_o),
         "subject O"},
        {pk_x509__oid_at_ou, sizeof(pk_x509__oid_at_ou),
         offsetof(struct pk_cert_template, subject_ou), "subject OU"},
        {pk_x509__oid_at_cn, sizeof(pk_x509__oid_at_cn),
         offsetof(struct pk_cert_template, subject_cn), "subject CN"},
};

/* RFC 5280 Appendix A: countryName is a two-character PrintableString (ISO 3166 alpha-2). */
static bool country_ok(const char *c)
{
    return ((c[0] >= 'A' && c[0] <= 'Z') || (c[0] >= 'a' && c[0] <= 'z')) &&
           ((c[1] >= 'A' && c[1] <= 'Z') || (c[1] >= 'a' && c[1] <= 'z')) && c[2] == '\0';
}

/* SAN values are IA5String: printable ASCII without blanks keeps them unambiguous. */
static int check_san_ascii(const char *s, const char *what, struct pk_err *err)
{
    if (s == NULL) {
        return 0;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (*p <= 0x20 || *p >= 0x7f) {
            return pk_err_set(err, PK_E_INVALID,
                              "certificate template: %s '%.200s' is not printable ASCII", what, s);
        }
    }
    return 0;
}

#define SKID_LEN 20

/* RFC 5280 §4.2.1.2 method (1), SHA-1 of the subjectPublicKey bits, as Go computes it; a build
 * without SHA-1 uses the first 20 bytes of SHA-256 (RFC 7093 §2 method 1). out: 32 bytes. */
static int skid_hash(const uint8_t *bits, size_t len, uint8_t *out)
{
#ifndef NO_SHA
    return wc_ShaHash(bits, (word32)len, out);
#else
    return wc_Sha256Hash(bits, (word32)len, out);
#endif
}

/* Rebuild wolfSSL's TBSCertificate with our names and BasicConstraints (implementation notes). */
static int tbs_rebuild(struct pk_slice tbs, struct pk_slice issuer, struct pk_slice subject,
                       const struct pk_cert_template *t, struct pk_buf *out)
{
    static const uint8_t bool_true[] = {0xff};
    struct pk_der seq, el, list, ext, oid;
    struct pk_slice body, exts;
    struct pk_buf ext_buf;
    size_t index = 0;
    int r = 0;

    pk_buf_init(&ext_buf, 64 * 1024);
    if (pk_der_expect(&tbs, PK_DER_SEQUENCE, &seq) != 0 || tbs.len != 0) {
        r = PK_E_INVALID;
        goto out;
    }
    for (body = pk_der_inner(&seq); body.len > 0 && r == 0; index++) {
        if (pk_der_read(&body, &el) != 0) {
            r = PK_E_INVALID;
            break;
        }
        if (index == 0 && el.tag != PK_DER_CTX_CONS(0)) {
            r = PK_E_INVALID; /* wolfSSL always writes the v3 version */
        } else if (index == 3 || index == 5) {
            r = el.tag != PK_DER_SEQUENCE
                        ? PK_E_INVALID
                        : pk_buf_append(out, index == 3 ? issuer.ptr : subject.ptr,
                                        index == 3 ? issuer.len : subject.len);
        } else if (el.tag == PK_DER_CTX_CONS(3)) {
            struct pk_slice w = pk_der_inner(&el);
            if (pk_der_expect(&w, PK_DER_SEQUENCE, &list) != 0 || w.len != 0) {
                r = PK_E_INVALID;
                break;
            }
            for (exts = pk_der_inner(&list); exts.len > 0 && r == 0;) {
                struct pk_slice parts;
                if (pk_der_expect(&exts, PK_DER_SEQUENCE, &ext) != 0) {
                    r = PK_E_INVALID;
                    break;
                }
                parts = pk_der_inner(&ext);
                if (pk_der_expect(&parts, PK_DER_OID, &oid) != 0) {
                    r = PK_E_INVALID;
                    break;
                }
                if (!OID_IS(&oid, pk_x509__oid_ext_bc)) {
                    r = pk_buf_append(&ext_buf, ext.tlv, ext.tlv_len);
                }
            }
        } else {
            r = pk_buf_append(out, el.tlv, el.tlv_len);
        }
    }
    if (r != 0 || index < 7) {
        r = r != 0 ? r : PK_E_INVALID;
        goto out;
    }
    if (t->is_ca) {
        /* Extension { basicConstraints, critical TRUE, OCTET STRING { SEQUENCE { cA TRUE,
         * pathLenConstraint } } } (RFC 5280 §4.2.1.9: critical in CA certificates). */
        size_t start = ext_buf.len;
        r = pk_der_put(&ext_buf, PK_DER_OID, pk_x509__oid_ext_bc, sizeof(pk_x509__oid_ext_bc));
        r = r != 0 ? r : pk_der_put(&ext_buf, PK_DER_BOOLEAN, bool_true, 1);
        size_t value = ext_buf.len;
        r = r != 0 ? r : pk_der_put(&ext_buf, PK_DER_BOOLEAN, bool_true, 1);
        if (r == 0 && t->path_len >= 0) {
            uint8_t pl[2] = {0, (uint8_t)t->path_len};
            bool pad = t->path_len >= 0x80;
            r = pk_der_put(&ext_buf, PK_DER_INTEGER, pad ? pl : pl + 1, pad ? 2 : 1);
        }
        r = r != 0 ? r : pk_der_wrap(&ext_buf, value, PK_DER_SEQUENCE);
        r = r != 0 ? r : pk_der_wrap(&ext_buf, value, PK_DER_OCTET_STRING);
        r = r != 0 ? r : pk_der_wrap(&ext_buf, start, PK_DER_SEQUENCE);
    }
    if (r == 0 && ext_buf.len > 0) {
        r = pk_der_wrap(&ext_buf, 0, PK_DER_SEQUENCE);
        r = r != 0 ? r : pk_der_wrap(&ext_buf, 0, PK_DER_CTX_CONS(3));
        r = r != 0 ? r : pk_buf_append(out, ext_buf.data, ext_buf.len);
    }
    r = r != 0 ? r : pk_der_wrap(out, 0, PK_DER_SEQUENCE);
out:
    pk_buf_free(&ext_buf);
    return r;
}

/* The issued certificate must say what the template asked for. */
static int issue_check(const struct pk_cert *c, const struct pk_cert_template *t,
                       struct pk_slice issuer_name, struct pk_slice subject_name,
                       const struct pk_pubkey *subject_key, const struct pk_cert *issuer,
                       struct pk_err *err)
{
    const char *bad = NULL;
    struct pk_pubkey *pub = NULL;

    if (pk_pubkey_from_spki(c->der + c->spki.off, c->spki.len, &pub, NULL) != 0 ||
        !pk_pubkey_equal(pub, subject_key)) {
        bad = "public key";
    } else if (!pk_x509__slices_equal(pk_cert_subject_der(c), subject_name)) {
        bad = "subject";
    } else if (!pk_x509__slices_equal(pk_cert_issuer_der(c), issuer_name)) {
        bad = "issuer";
    } else if (c->not_before != t->not_before || c->not_after != t->not_after) {
        bad = "validity";
    } else if (c->n_uris != (t->uri_san != NULL) ||
               (t->uri_san != NULL && strcmp(c->uris[0], t->uri_san) != 0) ||
               c->n_dns != (t->dns_san != NULL)) {
        bad = "subject alternative name";
    } else if ((t->uri_san != NULL || t->dns_san != NULL) &&
               c->san_critical != (subject_name.len == 2)) {
        bad = "subject alternative name criticality";
    } else if (c->has_bc != t->is_ca || c->is_ca != t->is_ca ||
               (t->is_ca && c->path_len != t->path_len)) {
        bad = "basic constraints";
    } else if (c->has_ku != (t->key_usage != 0) || c->ku != t->key_usage) {
        bad = "key usage";
    } else if (c->has_eku != (t->ext_key_usage != 0) || c->eku != t->ext_key_usage) {
        bad = "extended key usage";
    } else if ((c->skid.len != 0) != t->subject_key_id) {
        bad = "subject key identifier";
    } else if (!pk_cert_signed_by(c, issuer != NULL ? issuer : c)) {
        bad = "signature";
    }
    pk_pubkey_free(pub);
    if (bad != NULL) {
        return pk_err_set(err, PK_E_CRYPTO,
                          "the certificate wolfSSL produced has the wrong %s; not issued", bad);
    }
    return 0;
}

int pk_cert_issue(const struct pk_cert_template *tmpl, const struct pk_pubkey *subject_key,
                  const struct pk_cert *issuer, const struct pk_key *issuer_key,
                  struct pk_cert **out, struct pk_err *err)
{
    struct pk_buf subject, issuer_name, san, tbs;
    struct pk_pubkey *issuer_pub = NULL;
    struct pk_cert *cert = NULL;
    Cert *wc = NULL;
    uint8_t *buf = NULL;
    size_t buf_len = 0;
    WC_RNG *rng = NULL;
    int subj_type, iss_type;
    void *subj_key, *iss_key;
    int n;
    int r;

    pk_buf_init(&subject, 8192);
    pk_buf_init(&issuer_name, PK_PEM_MAX_DER);
    pk_buf_init(&san, 8192);
    pk_buf_init(&tbs, PK_PEM_MAX_DER);

    /* The template. */
    if (tmpl->not_after < tmpl->not_before) {
        r = pk_err_set(err, PK_E_INVALID, "certificate template: not_after is before not_before");
        goto out;
    }
    for (size_t i = 0; i < PK_ARRAY_LEN(subject_attrs); i++) {
        const char *value = *(const char *const *)((const char *)tmpl + subject_attrs[i].field);
        if (value != NULL &&
            (r = check_issue_string(value, ISSUE_MAX_STRING, subject_attrs[i].what, err)) != 0) {
            goto out;
        }
    }
    if (tmpl->subject_c != NULL && !country_ok(tmpl->subject_c)) {
        r = pk_err_set(err, PK_E_INVALID,
                       "certificate template: subject C '%.20s' is not a two-letter country code",
                       tmpl->subject_c);
        goto out;
    }
    if ((tmpl->uri_san != NULL &&
         (r = check_issue_string(tmpl->uri_san, ISSUE_MAX_URI, "URI SAN", err)) != 0) ||
        (tmpl->dns_san != NULL &&
         (r = check_issue_string(tmpl->dns_san, ISSUE_MAX_DNS, "DNS SAN", err)) != 0)) {
        goto out;
    }
    if ((r = check_san_ascii(tmpl->uri_san, "URI SAN", err)) != 0 ||
        (r = check_san_ascii(tmpl->dns_san, "DNS SAN", err)) != 0) {
        goto out;
    }
    if ((tmpl->key_usage & ~0x1ffu) != 0 ||
        (tmpl->ext_key_usage & ~(unsigned)(PK_EKU_SERVER_AUTH | PK_EKU_CLIENT_AUTH | PK_EKU_ANY)) !=
                0 ||
        (tmpl->is_ca && (tmpl->path_len < -1 || tmpl->path_len > 255))) {
        r = pk_err_set(err, PK_E_INVALID,
                       "certificate template: key usage, extended key usage or path length "
                       "out of range");
        goto out;
    }
    if (pk_key_get_type(issuer_key) != PK_KEY_P256 &&
        pk_key_get_type(issuer_key) != PK_KEY_ED25519) {
        r = pk_err_set(err, PK_E_UNSUPPORTED, "cannot sign with a %s key",
                       pk_key_type_name(pk_key_get_type(issuer_key)));
        goto out;
    }

    /* The issuer and the names. */
    r = 0;
    for (size_t i = 0; i < PK_ARRAY_LEN(subject_attrs) && r == 0; i++) {
        const char *value = *(const char *const *)((const char *)tmpl + subject_attrs[i].field);
        if (value != NULL) {
            r = name_put_rdn(&subject, subject_attrs[i].oid, subject_attrs[i].oid_len, value);
        }
    }
    r = r != 0 ? r : pk_der_wrap(&subject, 0, PK_DER_SEQUENCE);
    if (r != 0) {
        r = pk_err_set(err, PK_E_INVALID, "certificate template: subject too long");
        goto out;
    }
    if (issuer == NULL) {
        r = pk_key_public(issuer_key, &issuer_pub);
        if (r != 0 || !pk_pubkey_equal(issuer_pub, subject_key)) {
            r = pk_err_set(err, PK_E_MISMATCH,
                           "self-signed certificate: the subject key is not the signing key");
            goto out;
        }
        r = pk_buf_append(&issuer_name, subject.data, subject.len);
    } else {
        if (!pk_cert_matches_key(issuer, issuer_key)) {
            r = pk_err_set(err, PK_E_MISMATCH,
                           "the issuer key does not match the issuer certificate '%.200s'",
                           issuer->subject_str);
            goto out;
        }
        if (!issuer->is_ca || (issuer->has_ku && !(issuer->ku & PK_KU_KEY_CERT_SIGN))) {
            r = pk_err_set(err, PK_E_INVALID,
                           "the issuer certificate '%.200s' is not a CA that may sign "
                           "certificates",
                           issuer->subject_str);
            goto out;
        }
        r = pk_buf_append(&issuer_name, issuer->der + issuer->subject.off, issuer->subject.len);
    }
    if (r != 0) {
        r = pk_err_set(err, r, "issuer name too long");
        goto out;
    }

    /* wolfSSL's Cert. */
    wc = pk_xcalloc(1, sizeof(*wc));
    if (wc_InitCert(wc) != 0) {
        r = pk_err_set(err, PK_E_CRYPTO, "wc_InitCert failed");
        goto out;
    }
    wc->selfSigned = 0;
    wc->isCA = tmpl->is_ca ? 1 : 0; /* its BasicConstraints is replaced by tbs_rebuild */
    wc->sigType = pk_key_get_type(issuer_key) == PK_KEY_P256 ? CTC_SHA256wECDSA : CTC_ED25519;
    {
        uint8_t serial[16];
        r = pk_key_random(serial, sizeof(serial));
        if (r != 0) {
            r = pk_err_set(err, PK_E_CRYPTO, "no random serial number");
            goto out;
        }
        if ((serial[0] | serial[1]) == 0) {
            serial[1] = 1; /* keep it 128-bit-ish and never zero */
        }
        /* wolfSSL encodes it as a positive, minimal INTEGER (a 0x00 pad when the top bit is
         * set, leading zero octets dropped). */
        memcpy(wc->serial, serial, sizeof(serial));
        wc->serialSz = (int)sizeof(serial);
    }
    wc->beforeDateSz = (int)encode_time(tmpl->not_before, wc->beforeDate);
    wc->afterDateSz = (int)encode_time(tmpl->not_after, wc->afterDate);
    if (wc->beforeDateSz == 0 || wc->afterDateSz == 0) {
        r = pk_err_set(err, PK_E_INVALID, "certificate template: validity outside years 0-9999");
        goto out;
    }
    wc->keyUsage = ku_to_wolf(tmpl->key_usage);
    wc->extKeyUsage =
            (byte)(((tmpl->ext_key_usage & PK_EKU_SERVER_AUTH) ? EXTKEYUSE_SERVER_AUTH : 0) |
                   ((tmpl->ext_key_usage & PK_EKU_CLIENT_AUTH) ? EXTKEYUSE_CLIENT_AUTH : 0) |
                   ((tmpl->ext_key_usage & PK_EKU_ANY) ? EXTKEYUSE_ANY : 0));
    if (tmpl->uri_san != NULL || tmpl->dns_san != NULL) {
        /* GeneralNames ::= SEQUENCE { [2] dNSName IA5String, [6] uniformResourceIdentifier
         * IA5String } */
        r = 0;
        if (tmpl->dns_san != NULL) {
            r = pk_der_put(&san, PK_DER_CTX(2), tmpl->dns_san, strlen(tmpl->dns_san));
        }
        if (r == 0 && tmpl->uri_san != NULL) {
            r = pk_der_put(&san, PK_DER_CTX(6), tmpl->uri_san, strlen(tmpl->uri_san));
        }
        r = r != 0 ? r : pk_der_wrap(&san, 0, PK_DER_SEQUENCE);
        if (r != 0 || san.len > sizeof(wc->altNames)) {
            r = pk_err_set(err, PK_E_INVALID,
                           "certificate template: subject alternative names "
                           "too long");
            goto out;
        }
        memcpy(wc->altNames, san.data, san.len);
        wc->altNamesSz = (int)san.len;
        /* RFC 5280 §4.2.1.6: critical when the subject is empty. */
        wc->altNamesCrit = subject.len == 2 ? 1 : 0;
    }
    if (tmpl->subject_key_id) {
        /* RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits, as Go computes it. */
        struct pk_slice spki = pk_pubkey_spki(subject_key);
        struct pk_slice in = spki;
        struct pk_der seq, alg, bits;
        struct pk_slice body;
        if (pk_der_expect(&in, PK_DER_SEQUENCE, &seq) != 0) {
            r = pk_err_set(err, PK_E_INVALID, "subject key: malformed SubjectPublicKeyInfo");
            goto out;
        }
        body = pk_der_inner(&seq);
        if (pk_der_expect(&body, PK_DER_SEQUENCE, &alg) != 0 ||
            pk_der_expect(&body, PK_DER_BIT_STRING, &bits) != 0 || bits.len < 1 ||
            skid_hash(bits.val + 1, bits.len - 1, wc->skid) != 0) {
            r = pk_err_set(err, PK_E_CRYPTO, "cannot compute the subject key identifier");
            goto out;
        }
        wc->skidSz = SKID_LEN;
    }
    if (issuer != NULL && issuer->skid.len > 0) {
        if (issuer->skid.len > sizeof(wc->akid) || issuer->skid.len > CTC_MAX_AKID_SIZE) {
            r = pk_err_set(err, PK_E_UNSUPPORTED,
                           "the issuer's subject key identifier is %zu bytes; at most %d are "
                           "supported",
                           issuer->skid.len, CTC_MAX_AKID_SIZE);
            goto out;
        }
        memcpy(wc->akid, issuer->der + issuer->skid.off, issuer->skid.len);
        wc->akidSz = (int)issuer->skid.len;
    }

    buf_len = 16 * 1024 + subject.len + issuer_name.len + san.len;
    buf = pk_xmalloc(buf_len);
    subj_key = pk_pubkey__wc(subject_key, &subj_type);
    iss_key = pk_key__wc(issuer_key, &iss_type);
    rng = pk_key__rng_acquire();
    if (rng == NULL) {
        r = pk_err_set(err, PK_E_CRYPTO, "wolfCrypt's random generator is unavailable");
        goto out;
    }
    n = wc_MakeCert_ex(wc, buf, (word32)buf_len, subj_type, subj_key, rng);
    if (n <= 0) {
        r = pk_err_set(err, PK_E_CRYPTO, "wolfSSL could not build the certificate: %s",
                       wc_GetErrorString(n));
        goto out;
    }
    r = tbs_rebuild(pk_slice_make(buf, (size_t)n), pk_buf_slice(&issuer_name),
                    pk_buf_slice(&subject), tmpl, &tbs);
    if (r != 0 || tbs.len + 1024 > buf_len) {
        r = pk_err_set(err, PK_E_CRYPTO, "wolfSSL built an unexpected TBSCertificate");
        goto out;
    }
    memcpy(buf, tbs.data, tbs.len);
    n = wc_SignCert_ex((int)tbs.len, wc->sigType, buf, (word32)buf_len, iss_type, iss_key, rng);
    pk_key__rng_release();
    rng = NULL;
    if (n <= 0) {
        r = pk_err_set(err, PK_E_CRYPTO, "signing the certificate failed: %s",
                       wc_GetErrorString(n));
        goto out;
    }
    r = pk_cert_parse_der(buf, (size_t)n, "issued certificate", &cert, err);
    if (r != 0) {
        r = pk_err_prefix(err, PK_E_CRYPTO, "wolfSSL produced a certificate we cannot parse");
        goto out;
    }
    r = issue_check(cert, tmpl, pk_buf_slice(&issuer_name), pk_buf_slice(&subject), subject_key,
                    issuer, err);
    if (r != 0) {
        goto out;
    }
    *out = cert;
    cert = NULL;
out:
    if (rng != NULL) {
        pk_key__rng_release();
    }
    pk_cert_free(cert);
    pk_pubkey_free(issuer_pub);
    free(buf);
    free(wc);
    pk_buf_free(&subject);
    pk_buf_free(&issuer_name);
    pk_buf_free(&san);
    pk_buf_free(&tbs);
    return r;
}

/* ---- name constraints on URIs ------------------------------------------------------------- */
