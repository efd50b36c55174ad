/* SPDX-License-Identifier: Apache-2.0 */
/* picket: a small facade over wolfSSL's X.509: parse, inspect, verify chains, issue.
 *
 * Implementation notes
 *
 * Parsing has two halves. Our DER walk (pem.h's reader) checks the outer structure exactly
 * (lengths, nothing trailing, inner and outer signature algorithms equal, serial 1..20 octets and
 * positive, no duplicate extension) and records where the TBS, names, SubjectPublicKeyInfo,
 * signature and subject key identifier sit; it also decodes the validity times itself (UTCTime
 * and GeneralizedTime, RFC 5280 §4.1.2.5, to Unix seconds) and the extended key usage list, so
 * that a purpose wolfSSL has no bit for still shows as PK_EKU_OTHER. wolfSSL's wc_ParseCert
 * (NO_VERIFY) then supplies the X.509 semantics: it refuses unknown critical extensions
 * (ASN_CRIT_EXT_E), and its DecodedCert gives the subject alternative names (altNames, a list in
 * order of appearance whose URI entries have type ASN_URI_TYPE), SAN criticality, basic
 * constraints and key usage.
 *
 * Signatures are checked with wolfCrypt directly (pk_pubkey_verify over the TBS bytes), because
 * wc_CheckCertSigPubKey exists only in wolfSSL builds with the OpenSSL compatibility layer.
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
 * only as "these bytes were signed by those bytes", and only if an anchor vouches for them.
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

#define CERT_MAX_EXTENSIONS 64
#define NAME_STR_MAX        (16 * 1024)
#define CHAIN_MAX_DEPTH     10
#define ISSUE_MAX_STRING    1024
#define ISSUE_MAX_URI       2048
#define ISSUE_MAX_DNS       253 /* RFC 1035 §2.3.4, without the final dot */

static const uint8_t oid_ecdsa_sha256[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
static const uint8_t oid_ecdsa_sha384[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03};
static const uint8_t oid_ecdsa_sha512[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04};
static const uint8_t oid_ed25519[] = {0x2b, 0x65, 0x70};
static const uint8_t oid_ext_skid[] = {0x55, 0x1d, 0x0e};
static const uint8_t oid_ext_bc[] = {0x55, 0x1d, 0x13};
static const uint8_t oid_ext_eku[] = {0x55, 0x1d, 0x25};
static const uint8_t oid_ext_nc[] = {0x55, 0x1d, 0x1e};
static const uint8_t oid_eku_any[] = {0x55, 0x1d, 0x25, 0x00};
static const uint8_t oid_eku_server[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01};
static const uint8_t oid_eku_client[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02};
static const uint8_t oid_at_cn[] = {0x55, 0x04, 0x03};
static const uint8_t oid_at_c[] = {0x55, 0x04, 0x06};
static const uint8_t oid_at_l[] = {0x55, 0x04, 0x07};
static const uint8_t oid_at_st[] = {0x55, 0x04, 0x08};
static const uint8_t oid_at_o[] = {0x55, 0x04, 0x0a};
static const uint8_t oid_at_ou[] = {0x55, 0x04, 0x0b};

#define OID_IS(el, oid) pk_der_is_oid((el), (oid), sizeof(oid))

/* A part of cert->der. */
struct span {
    size_t off;
    size_t len;
};

struct pk_cert {
    uint8_t *der;
    size_t der_len;
    struct span tbs;     /* TBSCertificate, whole element */
    struct span sig;     /* signature bits, without the unused-bits octet */
    struct span serial;  /* INTEGER contents */
    struct span issuer;  /* Name, whole element */
    struct span subject; /* Name, whole element */
    struct span spki;    /* SubjectPublicKeyInfo, whole element */
    struct span skid;    /* subject key identifier bytes; len 0 when absent */
    struct span nc;      /* NameConstraints SEQUENCE, whole element; len 0 when absent */
    enum pk_sig_alg sig_alg;
    time_t not_before;
    time_t not_after;
    char *subject_str;
    char *issuer_str;
    char *uris[PK_CERT_MAX_URIS];
    size_t n_uris;
    size_t n_dns;
    bool san_critical;
    bool has_bc;
    bool is_ca;
    int path_len;
    bool has_ku;
    unsigned ku;
    bool has_eku;
    unsigned eku;
    enum pk_key_type key_type;
    /* wolfSSL's view of the key identifiers, with which its certificate manager finds an issuer:
     * the authority key identifier (when present), and the subject's own identifier, from its
     * extension or else computed from the public key. Both KEYID_SIZE bytes, hashed by wolfSSL
     * when the extension holds another length. */
    bool has_akid;
    bool has_skid_ext;
    uint8_t akid[KEYID_SIZE];
    uint8_t keyid[KEYID_SIZE];
};

static struct pk_slice cert_part(const struct pk_cert *cert, struct span s)
{
    return pk_slice_make(cert->der + s.off, s.len);
}

static struct span span_of(const struct pk_cert *cert, const uint8_t *p, size_t len)
{
    struct span s = {(size_t)(p - cert->der), len};
    return s;
}

/* ---- times ---- */

static bool is_leap(long y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static long long days_from_civil(long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (long long)era * 146097 + (long long)doe - 719468;
}

static bool digits(const uint8_t *p, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    *out = v;
    return true;
}

/* RFC 5280 §4.1.2.5: UTCTime YYMMDDHHMMSSZ (YY < 50 is 20YY) or GeneralizedTime
 * YYYYMMDDHHMMSSZ; seconds present, no fraction, always Zulu. */
static int parse_time(const struct pk_der *el, time_t *out)
{
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const uint8_t *p = el->val;
    unsigned year, mon, day, hour, min, sec;
    size_t ylen;

    if (el->tag == PK_DER_UTC_TIME && el->len == 13) {
        ylen = 2;
    } else if (el->tag == PK_DER_GEN_TIME && el->len == 15) {
        ylen = 4;
    } else {
        return PK_E_INVALID;
    }
    if (p[el->len - 1] != 'Z' || !digits(p, ylen, &year) || !digits(p + ylen, 2, &mon) ||
        !digits(p + ylen + 2, 2, &day) || !digits(p + ylen + 4, 2, &hour) ||
        !digits(p + ylen + 6, 2, &min) || !digits(p + ylen + 8, 2, &sec)) {
        return PK_E_INVALID;
    }
    if (ylen == 2) {
        year += year < 50 ? 2000 : 1900;
    }
    if (mon < 1 || mon > 12 || day < 1 ||
        day > mdays[mon - 1] + (mon == 2 && is_leap((long)year)) || hour > 23 || min > 59 ||
        sec > 59) {
        return PK_E_INVALID;
    }
    *out = (time_t)(days_from_civil((long)year, mon, day) * 86400LL + hour * 3600LL + min * 60LL +
                    sec);
    return 0;
}

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

static void format_time(time_t t, char *out, size_t out_len)
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, out_len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(out, out_len, "@%lld", (long long)t);
    }
}

/* ---- names ---- */

static const char *attr_short_name(const struct pk_der *oid)
{
    static const struct {
        uint8_t oid[10];
        size_t len;
        const char *name;
    } names[] = {
            {{0x55, 0x04, 0x03}, 3, "CN"},
            {{0x55, 0x04, 0x05}, 3, "serialNumber"},
            {{0x55, 0x04, 0x06}, 3, "C"},
            {{0x55, 0x04, 0x07}, 3, "L"},
            {{0x55, 0x04, 0x08}, 3, "ST"},
            {{0x55, 0x04, 0x09}, 3, "street"},
            {{0x55, 0x04, 0x0a}, 3, "O"},
            {{0x55, 0x04, 0x0b}, 3, "OU"},
            {{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01}, 9, "emailAddress"},
            {{0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19}, 10, "DC"},
            {{0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01}, 10, "UID"},
    };
    for (size_t i = 0; i < PK_ARRAY_LEN(names); i++) {
        if (pk_der_is_oid(oid, names[i].oid, names[i].len)) {
            return names[i].name;
        }
    }
    return NULL;
}

/* Append one attribute value: text types byte by byte (non-printable bytes and the separators
 * as escapes), anything else as RFC 4514 "#hex" of its DER. */
static int name_put_value(struct pk_buf *b, const struct pk_der *v)
{
    int r = 0;

    switch (v->tag) {
    case PK_DER_UTF8_STRING:
    case PK_DER_PRINTABLE:
    case PK_DER_IA5_STRING:
    case 0x12: /* NumericString */
    case 0x14: /* TeletexString */
    case 0x1a: /* VisibleString */
        for (size_t i = 0; i < v->len && r == 0; i++) {
            uint8_t c = v->val[i];
            if (c < 0x20 || c >= 0x7f) {
                r = pk_buf_printf(b, "\\x%02x", c);
            } else if (c == ',' || c == '+' || c == '\\') {
                r = pk_buf_printf(b, "\\%c", c);
            } else {
                r = pk_buf_append(b, &c, 1);
            }
        }
        return r;
    default:
        r = pk_buf_append_str(b, "#");
        for (size_t i = 0; i < v->tlv_len && r == 0; i++) {
            r = pk_buf_printf(b, "%02x", v->tlv[i]);
        }
        return r;
    }
}

/* One-line text of a Name: "C=US, O=example, CN=x"; multi-valued RDNs joined with "+". */
static int name_to_string(struct pk_slice name_tlv, char **out)
{
    struct pk_der name, rdn, atv, type, value;
    struct pk_slice rdns, atvs, parts;
    struct pk_buf b;
    bool first = true;
    int r;

    pk_buf_init(&b, NAME_STR_MAX);
    if (pk_der_expect(&name_tlv, PK_DER_SEQUENCE, &name) != 0 || name_tlv.len != 0) {
        r = PK_E_INVALID;
        goto out;
    }
    r = pk_buf_append(&b, "", 0);
    for (rdns = pk_der_inner(&name); rdns.len > 0 && r == 0;) {
        if (pk_der_expect(&rdns, PK_DER_SET, &rdn) != 0 || rdn.len == 0) {
            r = PK_E_INVALID;
            break;
        }
        bool first_atv = true;
        for (atvs = pk_der_inner(&rdn); atvs.len > 0 && r == 0;) {
            if (pk_der_expect(&atvs, PK_DER_SEQUENCE, &atv) != 0) {
                r = PK_E_INVALID;
                break;
            }
            parts = pk_der_inner(&atv);
            if (pk_der_expect(&parts, PK_DER_OID, &type) != 0 || pk_der_read(&parts, &value) != 0 ||
                parts.len != 0) {
                r = PK_E_INVALID;
                break;
            }
            const char *sep = first ? "" : first_atv ? ", " : "+";
            const char *short_name = attr_short_name(&type);
            if (short_name != NULL) {
                r = pk_buf_printf(&b, "%s%s=", sep, short_name);
            } else {
                char oid[96];
                pk_der_oid_str(type.val, type.len, oid, sizeof(oid));
                r = pk_buf_printf(&b, "%s%s=", sep, oid);
            }
            r = r != 0 ? r : name_put_value(&b, &value);
            first = false;
            first_atv = false;
        }
    }
    if (r != 0) {
        r = r == PK_E_TOOBIG ? PK_E_INVALID : r;
        goto out;
    }
    size_t len;
    pk_buf_steal(&b, (uint8_t **)out, &len);
out:
    pk_buf_free(&b);
    return r;
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

/* ---- parsing ---- */

static unsigned ku_from_wolf(word16 wc)
{
    unsigned ku = 0;
    for (unsigned bit = 0; bit < 8; bit++) {
        if (wc & (0x80u >> bit)) {
            ku |= 1u << bit;
        }
    }
    if (wc & KEYUSE_DECIPHER_ONLY) {
        ku |= 1u << 8;
    }
    return ku;
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

static enum pk_sig_alg sig_alg_of(const struct pk_der *alg_seq)
{
    struct pk_slice body = pk_der_inner(alg_seq);
    struct pk_der oid;

    /* RFC 5758 §3.2 and RFC 8410 §3: parameters absent for all four. */
    if (pk_der_expect(&body, PK_DER_OID, &oid) != 0 || body.len != 0) {
        return PK_SIG_NONE;
    }
    if (OID_IS(&oid, oid_ecdsa_sha256)) {
        return PK_SIG_ECDSA_SHA256;
    }
    if (OID_IS(&oid, oid_ecdsa_sha384)) {
        return PK_SIG_ECDSA_SHA384;
    }
    if (OID_IS(&oid, oid_ecdsa_sha512)) {
        return PK_SIG_ECDSA_SHA512;
    }
    if (OID_IS(&oid, oid_ed25519)) {
        return PK_SIG_ED25519;
    }
    return PK_SIG_NONE;
}

static int walk_eku(struct pk_cert *cert, struct pk_slice value)
{
    struct pk_der seq, oid;
    struct pk_slice list;

    if (pk_der_expect(&value, PK_DER_SEQUENCE, &seq) != 0 || value.len != 0 || seq.len == 0) {
        return PK_E_INVALID;
    }
    cert->has_eku = true;
    for (list = pk_der_inner(&seq); list.len > 0;) {
        if (pk_der_expect(&list, PK_DER_OID, &oid) != 0) {
            return PK_E_INVALID;
        }
        if (OID_IS(&oid, oid_eku_server)) {
            cert->eku |= PK_EKU_SERVER_AUTH;
        } else if (OID_IS(&oid, oid_eku_client)) {
            cert->eku |= PK_EKU_CLIENT_AUTH;
        } else if (OID_IS(&oid, oid_eku_any)) {
            cert->eku |= PK_EKU_ANY;
        } else {
            cert->eku |= PK_EKU_OTHER;
        }
    }
    return 0;
}

static int walk_extensions(struct pk_cert *cert, const struct pk_der *wrapper, struct pk_err *err)
{
    struct pk_slice w = pk_der_inner(wrapper);
    struct pk_der list, ext, oid, crit, value;
    struct pk_slice exts, parts;
    struct pk_der seen[CERT_MAX_EXTENSIONS];
    size_t n_seen = 0;

    if (pk_der_expect(&w, PK_DER_SEQUENCE, &list) != 0 || w.len != 0 || list.len == 0) {
        return pk_err_set(err, PK_E_INVALID, "malformed extensions");
    }
    for (exts = pk_der_inner(&list); exts.len > 0;) {
        if (pk_der_expect(&exts, PK_DER_SEQUENCE, &ext) != 0) {
            return pk_err_set(err, PK_E_INVALID, "malformed extension");
        }
        parts = pk_der_inner(&ext);
        if (pk_der_expect(&parts, PK_DER_OID, &oid) != 0) {
            return pk_err_set(err, PK_E_INVALID, "malformed extension");
        }
        if (pk_der_expect(&parts, PK_DER_BOOLEAN, &crit) == 0 &&
            (crit.len != 1 || (crit.val[0] != 0 && crit.val[0] != 0xff))) {
            return pk_err_set(err, PK_E_INVALID, "malformed extension criticality");
        }
        if (pk_der_expect(&parts, PK_DER_OCTET_STRING, &value) != 0 || parts.len != 0) {
            return pk_err_set(err, PK_E_INVALID, "malformed extension value");
        }
        for (size_t i = 0; i < n_seen; i++) {
            if (seen[i].len == oid.len && memcmp(seen[i].val, oid.val, oid.len) == 0) {
                char text[96];
                pk_der_oid_str(oid.val, oid.len, text, sizeof(text));
                /* RFC 5280 §4.2: at most one instance of a particular extension. */
                return pk_err_set(err, PK_E_INVALID, "extension %s appears twice", text);
            }
        }
        if (n_seen == CERT_MAX_EXTENSIONS) {
            return pk_err_set(err, PK_E_INVALID, "more than %d extensions", CERT_MAX_EXTENSIONS);
        }
        seen[n_seen++] = oid;
        if (OID_IS(&oid, oid_ext_skid)) {
            struct pk_slice v = pk_der_inner(&value);
            struct pk_der id;
            if (pk_der_expect(&v, PK_DER_OCTET_STRING, &id) != 0 || v.len != 0 || id.len == 0) {
                return pk_err_set(err, PK_E_INVALID, "malformed subject key identifier");
            }
            cert->skid = span_of(cert, id.val, id.len);
        } else if (OID_IS(&oid, oid_ext_eku)) {
            if (walk_eku(cert, pk_der_inner(&value)) != 0) {
                return pk_err_set(err, PK_E_INVALID, "malformed extended key usage");
            }
        } else if (OID_IS(&oid, oid_ext_nc)) {
            struct pk_slice v = pk_der_inner(&value);
            struct pk_der nc;
            if (pk_der_expect(&v, PK_DER_SEQUENCE, &nc) != 0 || v.len != 0) {
                return pk_err_set(err, PK_E_INVALID, "malformed name constraints");
            }
            cert->nc = span_of(cert, nc.tlv, nc.tlv_len);
        }
    }
    return 0;
}

/* The structural half of parsing: see the implementation notes. */
static int cert_walk(struct pk_cert *cert, struct pk_err *err)
{
    struct pk_slice in = pk_slice_make(cert->der, cert->der_len);
    struct pk_der outer, tbs, alg, sig, el, version, serial, inner_alg, issuer, validity, nb, na,
            subject, spki;
    struct pk_slice body, t, v;
    unsigned ver = 0;

    if (pk_der_expect(&in, PK_DER_SEQUENCE, &outer) != 0) {
        return pk_err_set(err, PK_E_INVALID, "not a DER certificate (truncated or malformed)");
    }
    if (in.len != 0) {
        return pk_err_set(err, PK_E_INVALID, "%zu bytes of trailing data after the certificate",
                          in.len);
    }
    body = pk_der_inner(&outer);
    if (pk_der_expect(&body, PK_DER_SEQUENCE, &tbs) != 0 ||
        pk_der_expect(&body, PK_DER_SEQUENCE, &alg) != 0 ||
        pk_der_expect(&body, PK_DER_BIT_STRING, &sig) != 0 || body.len != 0 || sig.len < 2 ||
        sig.val[0] != 0) {
        return pk_err_set(err, PK_E_INVALID, "malformed certificate structure");
    }
    t = pk_der_inner(&tbs);
    if (pk_der_expect(&t, PK_DER_CTX_CONS(0), &el) == 0) {
        v = pk_der_inner(&el);
        if (pk_der_expect(&v, PK_DER_INTEGER, &version) != 0 || v.len != 0 || version.len != 1 ||
            version.val[0] > 2) {
            return pk_err_set(err, PK_E_INVALID, "malformed version");
        }
        ver = version.val[0];
    }
    if (pk_der_expect(&t, PK_DER_INTEGER, &serial) != 0 || serial.len == 0) {
        return pk_err_set(err, PK_E_INVALID, "malformed serial number");
    }
    if (serial.len > 1 && ((serial.val[0] == 0 && serial.val[1] < 0x80) ||
                           (serial.val[0] == 0xff && serial.val[1] >= 0x80))) {
        return pk_err_set(err, PK_E_INVALID, "serial number is not minimally encoded");
    }
    if (serial.val[0] & 0x80) {
        return pk_err_set(err, PK_E_INVALID, "serial number is negative");
    }
    if (serial.len == 1 && serial.val[0] == 0) {
        return pk_err_set(err, PK_E_INVALID, "serial number is zero");
    }
    if (serial.len - (serial.val[0] == 0) > 20) {
        /* RFC 5280 §4.1.2.2: at most 20 octets. */
        return pk_err_set(err, PK_E_INVALID, "serial number is longer than 20 octets");
    }
    if (pk_der_expect(&t, PK_DER_SEQUENCE, &inner_alg) != 0 ||
        pk_der_expect(&t, PK_DER_SEQUENCE, &issuer) != 0 ||
        pk_der_expect(&t, PK_DER_SEQUENCE, &validity) != 0 ||
        pk_der_expect(&t, PK_DER_SEQUENCE, &subject) != 0 ||
        pk_der_expect(&t, PK_DER_SEQUENCE, &spki) != 0) {
        return pk_err_set(err, PK_E_INVALID, "malformed TBSCertificate");
    }
    if (inner_alg.tlv_len != alg.tlv_len || memcmp(inner_alg.tlv, alg.tlv, alg.tlv_len) != 0) {
        /* RFC 5280 §4.1.1.2 */
        return pk_err_set(err, PK_E_INVALID,
                          "signature algorithm differs inside and outside the TBSCertificate");
    }
    v = pk_der_inner(&validity);
    if (pk_der_read(&v, &nb) != 0 || pk_der_read(&v, &na) != 0 || v.len != 0 ||
        parse_time(&nb, &cert->not_before) != 0 || parse_time(&na, &cert->not_after) != 0) {
        return pk_err_set(err, PK_E_INVALID, "malformed validity period");
    }
    if (pk_der_expect(&t, PK_DER_CTX(1), &el) == 0 && ver == 0) {
        return pk_err_set(err, PK_E_INVALID, "issuerUniqueID in a v1 certificate");
    }
    if (pk_der_expect(&t, PK_DER_CTX(2), &el) == 0 && ver == 0) {
        return pk_err_set(err, PK_E_INVALID, "subjectUniqueID in a v1 certificate");
    }
    if (pk_der_expect(&t, PK_DER_CTX_CONS(3), &el) == 0) {
        int r;
        if (ver != 2) {
            return pk_err_set(err, PK_E_INVALID, "extensions in a certificate that is not v3");
        }
        r = walk_extensions(cert, &el, err);
        if (r != 0) {
            return r;
        }
    }
    if (t.len != 0) {
        return pk_err_set(err, PK_E_INVALID, "unexpected data at the end of the TBSCertificate");
    }
    cert->tbs = span_of(cert, tbs.tlv, tbs.tlv_len);
    cert->sig = span_of(cert, sig.val + 1, sig.len - 1);
    cert->serial = span_of(cert, serial.val, serial.len);
    cert->issuer = span_of(cert, issuer.tlv, issuer.tlv_len);
    cert->subject = span_of(cert, subject.tlv, subject.tlv_len);
    cert->spki = span_of(cert, spki.tlv, spki.tlv_len);
    cert->sig_alg = sig_alg_of(&alg);
    return 0;
}

/* The semantic half: wolfSSL's own parse. */
static int cert_decode(struct pk_cert *cert, struct pk_err *err)
{
    DecodedCert dc;
    int r;

    wc_InitDecodedCert(&dc, cert->der, (word32)cert->der_len, NULL);
    r = wc_ParseCert(&dc, CERT_TYPE, NO_VERIFY, NULL);
    if (r == ASN_CRIT_EXT_E) {
        r = pk_err_set(err, PK_E_INVALID, "has an unsupported critical extension");
        goto out;
    }
    if (r != 0) {
        r = pk_err_set(err, PK_E_INVALID, "malformed certificate (wolfSSL: %s)",
                       wc_GetErrorString(r));
        goto out;
    }
    for (DNS_entry *e = dc.altNames; e != NULL; e = e->next) {
        if (e->type == ASN_DNS_TYPE) {
            cert->n_dns++;
        }
        if (e->type != ASN_URI_TYPE) {
            continue;
        }
        if (cert->n_uris == PK_CERT_MAX_URIS) {
            r = pk_err_set(err, PK_E_INVALID, "more than %d URI subject alternative names",
                           PK_CERT_MAX_URIS);
            goto out;
        }
        if (e->len < 0 || memchr(e->name, '\0', (size_t)e->len) != NULL) {
            r = pk_err_set(err, PK_E_INVALID, "URI subject alternative name contains a NUL");
            goto out;
        }
        cert->uris[cert->n_uris++] = pk_xstrndup(e->name, (size_t)e->len);
    }
    /* wolfSSL appends names in certificate order only in builds with OPENSSL_EXTRA (or
     * WOLFSSL_ASN_ALL) and without WOLFSSL_ALT_NAMES_NO_REV; other builds, such as the fast one,
     * prepend, so the list comes out reversed. Keep the certificate's order either way. */
#if !((defined(WOLFSSL_ASN_ALL) || defined(OPENSSL_EXTRA)) && !defined(WOLFSSL_ALT_NAMES_NO_REV))
    for (size_t i = 0; i < cert->n_uris / 2; i++) {
        char *t = cert->uris[i];
        cert->uris[i] = cert->uris[cert->n_uris - 1 - i];
        cert->uris[cert->n_uris - 1 - i] = t;
    }
#endif
    cert->san_critical = dc.extSubjAltNameSet && dc.extSubjAltNameCrit;
    cert->has_bc = dc.extBasicConstSet;
    cert->is_ca = dc.extBasicConstSet && dc.isCA;
    cert->path_len = cert->is_ca && dc.pathLengthSet ? (int)dc.pathLength : -1;
    cert->has_ku = dc.extKeyUsageSet;
    cert->ku = dc.extKeyUsageSet ? ku_from_wolf(dc.extKeyUsage) : 0;
    cert->has_akid = dc.extAuthKeyIdSet;
    cert->has_skid_ext = dc.extSubjKeyIdSet;
    memcpy(cert->akid, dc.extAuthKeyId, sizeof(cert->akid));
    memcpy(cert->keyid, dc.extSubjKeyId, sizeof(cert->keyid));
    if (dc.keyOID == ECDSAk && dc.pkCurveOID == ECC_SECP256R1_OID) {
        cert->key_type = PK_KEY_P256;
    } else if (dc.keyOID == ED25519k) {
        cert->key_type = PK_KEY_ED25519;
    } else {
        cert->key_type = PK_KEY_OTHER;
    }
    r = 0;
out:
    wc_FreeDecodedCert(&dc);
    return r;
}

struct pk_cert *pk_cert_free(struct pk_cert *cert)
{
    if (cert == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < cert->n_uris; i++) {
        free(cert->uris[i]);
    }
    free(cert->subject_str);
    free(cert->issuer_str);
    free(cert->der);
    free(cert);
    return NULL;
}

int pk_cert_parse_der(const uint8_t *der, size_t len, const char *what, struct pk_cert **out,
                      struct pk_err *err)
{
    struct pk_cert *cert = NULL;
    int r;

    if (len == 0) {
        return pk_err_set(err, PK_E_INVALID, "%s: empty certificate", what);
    }
    if (len > PK_PEM_MAX_DER) {
        return pk_err_set(err, PK_E_TOOBIG, "%s: certificate of %zu bytes is too large", what, len);
    }
    cert = pk_xcalloc(1, sizeof(*cert));
    cert->der = pk_xmemdup(der, len);
    cert->der_len = len;
    cert->path_len = -1;
    r = cert_walk(cert, err);
    if (r == 0) {
        r = cert_decode(cert, err);
    }
    if (r == 0 && (name_to_string(cert_part(cert, cert->subject), &cert->subject_str) != 0 ||
                   name_to_string(cert_part(cert, cert->issuer), &cert->issuer_str) != 0)) {
        r = pk_err_set(err, PK_E_INVALID, "malformed subject or issuer name");
    }
    if (r != 0) {
        r = pk_err_prefix(err, r, "%s", what);
        goto out;
    }
    *out = cert;
    cert = NULL;
out:
    pk_cert_free(cert);
    return r;
}

struct pk_slice pk_cert_der(const struct pk_cert *cert)
{
    return pk_slice_make(cert->der, cert->der_len);
}

time_t pk_cert_not_before(const struct pk_cert *cert)
{
    return cert->not_before;
}

time_t pk_cert_not_after(const struct pk_cert *cert)
{
    return cert->not_after;
}

void pk_cert_serial_hex(const struct pk_cert *cert, char *out, size_t out_len)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = cert->der + cert->serial.off;
    size_t n = cert->serial.len;
    size_t o = 0;
    bool started = false;

    if (out_len == 0) {
        return;
    }
    for (size_t i = 0; i < n && o + 1 < out_len; i++) {
        uint8_t nib[2] = {(uint8_t)(p[i] >> 4), (uint8_t)(p[i] & 0x0f)};
        for (int k = 0; k < 2 && o + 1 < out_len; k++) {
            if (!started && nib[k] == 0) {
                continue;
            }
            started = true;
            out[o++] = hex[nib[k]];
        }
    }
    if (!started && o + 1 < out_len) {
        out[o++] = '0';
    }
    out[o] = '\0';
}

const char *pk_cert_subject(const struct pk_cert *cert)
{
    return cert->subject_str;
}

const char *pk_cert_issuer(const struct pk_cert *cert)
{
    return cert->issuer_str;
}

struct pk_slice pk_cert_subject_der(const struct pk_cert *cert)
{
    return cert_part(cert, cert->subject);
}

struct pk_slice pk_cert_issuer_der(const struct pk_cert *cert)
{
    return cert_part(cert, cert->issuer);
}

size_t pk_cert_uri_count(const struct pk_cert *cert)
{
    return cert->n_uris;
}

const char *pk_cert_uri(const struct pk_cert *cert, size_t i)
{
    return i < cert->n_uris ? cert->uris[i] : NULL;
}

size_t pk_cert_dns_count(const struct pk_cert *cert)
{
    return cert->n_dns;
}

bool pk_cert_san_critical(const struct pk_cert *cert)
{
    return cert->san_critical;
}

bool pk_cert_has_basic_constraints(const struct pk_cert *cert)
{
    return cert->has_bc;
}

bool pk_cert_is_ca(const struct pk_cert *cert)
{
    return cert->is_ca;
}

int pk_cert_path_len(const struct pk_cert *cert)
{
    return cert->path_len;
}

bool pk_cert_has_key_usage(const struct pk_cert *cert)
{
    return cert->has_ku;
}

unsigned pk_cert_key_usage(const struct pk_cert *cert)
{
    return cert->ku;
}

bool pk_cert_has_ext_key_usage(const struct pk_cert *cert)
{
    return cert->has_eku;
}

unsigned pk_cert_ext_key_usage(const struct pk_cert *cert)
{
    return cert->eku;
}

enum pk_key_type pk_cert_key_type(const struct pk_cert *cert)
{
    return cert->key_type;
}

struct pk_slice pk_cert_spki(const struct pk_cert *cert)
{
    return cert_part(cert, cert->spki);
}

struct pk_slice pk_cert_skid(const struct pk_cert *cert)
{
    return cert_part(cert, cert->skid);
}

static bool slices_equal(struct pk_slice a, struct pk_slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

void pk_cert_fingerprint(const struct pk_cert *cert, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t digest[WC_SHA256_DIGEST_SIZE];
    /* Only fails for bad arguments; the DER is at most PK_PEM_MAX_DER bytes. */
    int r = wc_Sha256Hash(cert->der, (word32)cert->der_len, digest);

    PK_ASSERT(r == 0);
    for (size_t k = 0; k < sizeof(digest); k++) {
        out[2 * k] = hex[digest[k] >> 4];
        out[2 * k + 1] = hex[digest[k] & 0x0f];
    }
    out[64] = '\0';
}

/* Signatures this thread has verified with pk_cert_signed_by; see pk_x509__signature_checks. */
static _Thread_local unsigned long signature_checks;

unsigned long pk_x509__signature_checks(void)
{
    return signature_checks;
}

bool pk_cert_signed_by(const struct pk_cert *cert, const struct pk_cert *issuer)
{
    struct pk_pubkey *pub = NULL;
    struct pk_slice tbs = cert_part(cert, cert->tbs);
    struct pk_slice sig = cert_part(cert, cert->sig);
    bool ok;

    if (!slices_equal(pk_cert_issuer_der(cert), pk_cert_subject_der(issuer)) ||
        cert->sig_alg == PK_SIG_NONE) {
        return false;
    }
    if (pk_pubkey_from_spki(issuer->der + issuer->spki.off, issuer->spki.len, &pub, NULL) != 0) {
        return false;
    }
    signature_checks++;
    ok = pk_pubkey_verify(pub, cert->sig_alg, tbs.ptr, tbs.len, sig.ptr, sig.len) == 0;
    pk_pubkey_free(pub);
    return ok;
}

bool pk_cert_self_signed(const struct pk_cert *cert)
{
    return pk_cert_signed_by(cert, cert);
}

bool pk_cert_matches_key(const struct pk_cert *cert, const struct pk_key *key)
{
    struct pk_pubkey *pub = NULL;
    struct pk_buf spki;
    bool ok = false;

    pk_buf_init(&spki, 256);
    if (pk_pubkey_from_spki(cert->der + cert->spki.off, cert->spki.len, &pub, NULL) == 0 &&
        pk_key_public_spki(key, &spki) == 0) {
        ok = slices_equal(pk_pubkey_spki(pub), pk_buf_slice(&spki));
    }
    pk_pubkey_free(pub);
    pk_buf_free(&spki);
    return ok;
}

/* ---- lists ---- */

static struct pk_cert *cert_clone(const struct pk_cert *src)
{
    struct pk_cert *cert = pk_xmemdup(src, sizeof(*src));

    cert->der = pk_xmemdup(src->der, src->der_len);
    cert->subject_str = pk_xstrdup(src->subject_str);
    cert->issuer_str = pk_xstrdup(src->issuer_str);
    for (size_t i = 0; i < src->n_uris; i++) {
        cert->uris[i] = pk_xstrdup(src->uris[i]);
    }
    return cert;
}

static void certs_push(struct pk_certs *certs, struct pk_cert *cert)
{
    certs->v = pk_xrealloc(certs->v, (certs->n + 1) * sizeof(*certs->v));
    certs->v[certs->n++] = cert;
}

int pk_certs_push_copy(struct pk_certs *certs, const struct pk_cert *cert)
{
    certs_push(certs, cert_clone(cert));
    return 0;
}

void pk_certs_clear(struct pk_certs *certs)
{
    for (size_t i = 0; i < certs->n; i++) {
        pk_cert_free(certs->v[i]);
    }
    free(certs->v);
    certs->v = NULL;
    certs->n = 0;
}

int pk_certs_parse_pem(const uint8_t *pem, size_t len, const char *what, struct pk_certs *out,
                       struct pk_err *err)
{
    struct pk_certs got = {NULL, 0};
    struct pk_pem_block block = {0};
    size_t offset = 0;
    size_t ordinal = 0;
    char label[256];
    int r;

    for (;;) {
        struct pk_cert *cert = NULL;
        r = pk_pem_next(pem, len, &offset, &block, err);
        if (r == PK_E_NOTFOUND) {
            pk_err_clear(err);
            break;
        }
        ordinal++;
        if (r != 0) {
            r = pk_err_prefix(err, r, "%s", what);
            goto out;
        }
        if (strcmp(block.type, "CERTIFICATE") != 0) {
            r = pk_err_set(err, PK_E_INVALID,
                           "%s: PEM block #%zu is a \"%s\", not a \"CERTIFICATE\"", what, ordinal,
                           block.type);
            goto out;
        }
        snprintf(label, sizeof(label), "%s certificate #%zu", what, ordinal);
        r = pk_cert_parse_der(block.der, block.der_len, label, &cert, err);
        pk_pem_block_clear(&block);
        if (r != 0) {
            goto out;
        }
        certs_push(&got, cert);
    }
    if (got.n == 0) {
        r = pk_err_set(err, PK_E_INVALID, "%s: no PEM \"CERTIFICATE\" block found", what);
        goto out;
    }
    for (size_t i = 0; i < got.n; i++) {
        certs_push(out, got.v[i]);
    }
    free(got.v);
    got.v = NULL;
    got.n = 0;
    r = 0;
out:
    pk_pem_block_clear(&block);
    pk_certs_clear(&got);
    return r;
}

int pk_certs_to_pem(const struct pk_certs *certs, struct pk_buf *out)
{
    struct pk_buf pem;
    int r = 0;

    pk_buf_init(&pem, pk_buf_space(out));
    for (size_t i = 0; i < certs->n && r == 0; i++) {
        r = pk_pem_encode("CERTIFICATE", certs->v[i]->der, certs->v[i]->der_len, &pem);
    }
    if (r == 0 && pem.len > 0) {
        r = pk_buf_append(out, pem.data, pem.len);
    }
    pk_buf_free(&pem);
    return r;
}

/* ---- chain verification ---- */

static pthread_once_t wolfssl_once = PTHREAD_ONCE_INIT;
static int wolfssl_init_ret;

static void wolfssl_init(void)
{
    wolfssl_init_ret = wolfSSL_Init();
}

/* "the leaf certificate (URI spiffe://...)" / "intermediate #2 (O=...)" for messages. */
static void describe(const struct pk_cert *cert, const char *role, size_t index, char *out,
                     size_t out_len)
{
    const char *id = cert->n_uris > 0 ? cert->uris[0] : cert->subject_str;
    const char *kind = cert->n_uris > 0 ? "URI " : "";

    if (index == 0) {
        snprintf(out, out_len, "%s (%s%.200s)", role, kind, id[0] != '\0' ? id : "empty subject");
    } else {
        snprintf(out, out_len, "%s #%zu (%s%.200s)", role, index, kind,
                 id[0] != '\0' ? id : "empty subject");
    }
}

int pk_cert_check_anchor(const struct pk_cert *cert, const char *what, size_t index,
                         struct pk_err *err)
{
    char who[320];

    describe(cert, what, index, who, sizeof(who));
    /* RFC 5280 §6.1: a trust anchor stands for a CA. A workload certificate among the anchors
     * would let whoever holds its key issue any SPIFFE ID. */
    if (!cert->is_ca) {
        return pk_err_set(err, PK_E_INVALID,
                          "%s is not a CA certificate (no BasicConstraints CA:TRUE), so it cannot "
                          "be a trust anchor; is it a workload certificate?",
                          who);
    }
    if (cert->has_ku && !(cert->ku & PK_KU_KEY_CERT_SIGN)) {
        return pk_err_set(err, PK_E_INVALID,
                          "%s has a key usage without keyCertSign, so it cannot be a trust anchor",
                          who);
    }
    return 0;
}

int pk_certs_parse_anchors_pem(const uint8_t *pem, size_t len, const char *what,
                               struct pk_certs *out, struct pk_err *err)
{
    struct pk_certs got = {NULL, 0};
    int r = pk_certs_parse_pem(pem, len, what, &got, err);

    for (size_t i = 0; r == 0 && i < got.n; i++) {
        char role[256];
        snprintf(role, sizeof(role), "%s certificate", what);
        r = pk_cert_check_anchor(got.v[i], role, i + 1, err);
    }
    if (r == 0) {
        for (size_t i = 0; i < got.n; i++) {
            certs_push(out, got.v[i]);
        }
        free(got.v);
        return 0;
    }
    pk_certs_clear(&got);
    return r;
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
            describe(ca, pass == 0 ? "root" : "intermediate", i + 1, who, sizeof(who));
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
        describe(cert, depth == 0 ? "the leaf certificate" : "a certificate", 0, who, sizeof(who));
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
        if (!st->inter_ok[i] && slices_equal(pk_cert_subject_der(c), pk_cert_issuer_der(leaf))) {
            describe(c, "intermediate", i + 1, who, sizeof(who));
            if (st->inter_err[i] == ASN_NO_SIGNER_E) {
                /* Its own issuer is missing too: follow the chain up. */
                return explain_no_signer(st, c, who, depth + 1, err);
            }
            return wolf_error(st->inter_err[i], c, who, err);
        }
    }
    for (size_t i = 0; i < st->roots->n; i++) {
        const struct pk_cert *c = st->roots->v[i];
        if (!st->root_ok[i] && slices_equal(pk_cert_subject_der(c), pk_cert_issuer_der(leaf))) {
            describe(c, "root", i + 1, who, sizeof(who));
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
    describe(leaf, "the leaf certificate", 0, who, sizeof(who));

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
    if (!slices_equal(pk_cert_issuer_der(cert), pk_cert_subject_der(issuer))) {
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
    describe(leaf, "the leaf certificate", 0, cur_who, sizeof(cur_who));
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
                describe(ca, pass == 0 ? "root" : "intermediate", i + 1, who, sizeof(who));
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
            if (slices_equal(pk_cert_subject_der(certs->v[i]), pk_cert_subject_der(certs->v[j]))) {
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
                clash = clash || slices_equal(pk_cert_subject_der(set.v[k]),
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
        {oid_at_c, sizeof(oid_at_c), offsetof(struct pk_cert_template, subject_c), "subject C"},
        {oid_at_st, sizeof(oid_at_st), offsetof(struct pk_cert_template, subject_st), "subject ST"},
        {oid_at_l, sizeof(oid_at_l), offsetof(struct pk_cert_template, subject_l), "subject L"},
        {oid_at_o, sizeof(oid_at_o), offsetof(struct pk_cert_template, subject_o), "subject O"},
        {oid_at_ou, sizeof(oid_at_ou), offsetof(struct pk_cert_template, subject_ou), "subject OU"},
        {oid_at_cn, sizeof(oid_at_cn), offsetof(struct pk_cert_template, subject_cn), "subject CN"},
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
                if (!OID_IS(&oid, oid_ext_bc)) {
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
        r = pk_der_put(&ext_buf, PK_DER_OID, oid_ext_bc, sizeof(oid_ext_bc));
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
    } else if (!slices_equal(pk_cert_subject_der(c), subject_name)) {
        bad = "subject";
    } else if (!slices_equal(pk_cert_issuer_der(c), issuer_name)) {
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

bool pk_cert_has_name_constraints(const struct pk_cert *cert)
{
    return cert->nc.len > 0;
}

/* The host of a URI: between "scheme://" (and any userinfo@) and the next ':', '/', '?' or
 * '#'. False when there is none. */
static bool uri_host(const char *uri, const char **host, size_t *len)
{
    const char *p = strstr(uri, "://");
    if (p == NULL) {
        return false;
    }
    p += 3;
    size_t n = strcspn(p, "/?#");
    const char *at = memchr(p, '@', n);
    if (at != NULL) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    const char *colon = memchr(p, ':', n);
    if (colon != NULL) {
        n = (size_t)(colon - p);
    }
    *host = p;
    *len = n;
    return n > 0;
}

/* RFC 5280 §4.2.1.10: a URI constraint names a host ("example.test": that host only) or a
 * domain (".example.test": any host below it, not the domain itself); case-insensitive. */
static bool uri_host_matches(const char *host, size_t host_len, const uint8_t *base, size_t len)
{
    if (len == 0) {
        return false;
    }
    if (base[0] == '.') {
        return host_len > len && strncasecmp(host + host_len - len, (const char *)base, len) == 0;
    }
    return host_len == len && strncasecmp(host, (const char *)base, len) == 0;
}

/* Walk one GeneralSubtrees list: *matched when uri's host matches a URI base. Forms that
 * wolfSSL evaluates itself (rfc822Name, dNSName, directoryName) are skipped; any other form,
 * or a minimum/maximum, is refused (PK_E_UNSUPPORTED): what nobody checks must not pass. */
static int walk_subtrees(struct pk_slice list, const char *host, size_t host_len, bool *any_uri,
                         bool *matched)
{
    while (list.len > 0) {
        struct pk_der subtree, base;
        if (pk_der_expect(&list, PK_DER_SEQUENCE, &subtree) != 0) {
            return PK_E_INVALID;
        }
        struct pk_slice parts = pk_der_inner(&subtree);
        if (pk_der_read(&parts, &base) != 0) {
            return PK_E_INVALID;
        }
        if (parts.len != 0) {
            return PK_E_UNSUPPORTED; /* minimum or maximum: RFC 5280 says never */
        }
        switch (base.tag) {
        case PK_DER_CTX(1):      /* rfc822Name */
        case PK_DER_CTX(2):      /* dNSName */
        case PK_DER_CTX_CONS(4): /* directoryName */
            break;
        case PK_DER_CTX(6): /* uniformResourceIdentifier */
            *any_uri = true;
            if (uri_host_matches(host, host_len, base.val, base.len)) {
                *matched = true;
            }
            break;
        default:
            return PK_E_UNSUPPORTED;
        }
    }
    return 0;
}

int pk_cert_name_constraints_allow_uri(const struct pk_cert *ca, const char *uri,
                                       struct pk_err *err)
{
    struct pk_slice in = cert_part(ca, ca->nc);
    struct pk_der nc, part;
    const char *host = NULL;
    size_t host_len = 0;
    bool permitted_uri = false, permitted_hit = false, excluded_uri = false, excluded_hit = false;
    int r = 0;

    if (ca->nc.len == 0) {
        return 0;
    }
    if (!uri_host(uri, &host, &host_len)) {
        return pk_err_set(err, PK_E_INVALID,
                          "URI '%.200s' has no host to check against the "
                          "name constraints of '%.200s'",
                          uri, ca->subject_str);
    }
    if (pk_der_expect(&in, PK_DER_SEQUENCE, &nc) != 0) {
        return pk_err_set(err, PK_E_INVALID, "malformed name constraints in '%.200s'",
                          ca->subject_str);
    }
    for (struct pk_slice body = pk_der_inner(&nc); r == 0 && body.len > 0;) {
        if (pk_der_read(&body, &part) != 0) {
            r = PK_E_INVALID;
        } else if (part.tag == PK_DER_CTX_CONS(0)) {
            r = walk_subtrees(pk_der_inner(&part), host, host_len, &permitted_uri, &permitted_hit);
        } else if (part.tag == PK_DER_CTX_CONS(1)) {
            r = walk_subtrees(pk_der_inner(&part), host, host_len, &excluded_uri, &excluded_hit);
        } else {
            r = PK_E_INVALID;
        }
    }
    if (r == PK_E_UNSUPPORTED) {
        return pk_err_set(err, PK_E_UNSUPPORTED,
                          "name constraints of '%.200s' use a form picket does not evaluate",
                          ca->subject_str);
    }
    if (r != 0) {
        return pk_err_set(err, PK_E_INVALID, "malformed name constraints in '%.200s'",
                          ca->subject_str);
    }
    if (excluded_hit || (permitted_uri && !permitted_hit)) {
        return pk_err_set(err, PK_E_UNTRUSTED,
                          "URI '%.200s' violates the name constraints of '%.200s'", uri,
                          ca->subject_str);
    }
    (void)excluded_uri;
    return 0;
}
