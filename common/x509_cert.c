/* SPDX-License-Identifier: Apache-2.0 */
/* picket: X.509 certificates: parse, inspect, compare, certificate lists and PEM, trust
 * anchors.
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
 * wc_CheckCertSigPubKey exists only in wolfSSL builds with the OpenSSL compatibility layer. */
#include "x509_cert.h"

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

#define CERT_MAX_EXTENSIONS 64
#define NAME_STR_MAX        (16 * 1024)

static const uint8_t oid_ecdsa_sha256[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
static const uint8_t oid_ecdsa_sha384[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03};
static const uint8_t oid_ecdsa_sha512[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04};
static const uint8_t oid_ed25519[] = {0x2b, 0x65, 0x70};
static const uint8_t oid_ext_skid[] = {0x55, 0x1d, 0x0e};
const uint8_t pk_x509__oid_ext_bc[3] = {0x55, 0x1d, 0x13};
static const uint8_t oid_ext_eku[] = {0x55, 0x1d, 0x25};
static const uint8_t oid_ext_nc[] = {0x55, 0x1d, 0x1e};
static const uint8_t oid_eku_any[] = {0x55, 0x1d, 0x25, 0x00};
static const uint8_t oid_eku_server[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01};
static const uint8_t oid_eku_client[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02};
const uint8_t pk_x509__oid_at_cn[3] = {0x55, 0x04, 0x03};
const uint8_t pk_x509__oid_at_c[3] = {0x55, 0x04, 0x06};
const uint8_t pk_x509__oid_at_l[3] = {0x55, 0x04, 0x07};
const uint8_t pk_x509__oid_at_st[3] = {0x55, 0x04, 0x08};
const uint8_t pk_x509__oid_at_o[3] = {0x55, 0x04, 0x0a};
const uint8_t pk_x509__oid_at_ou[3] = {0x55, 0x04, 0x0b};

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
    if (r == 0 && (name_to_string(pk_x509__part(cert, cert->subject), &cert->subject_str) != 0 ||
                   name_to_string(pk_x509__part(cert, cert->issuer), &cert->issuer_str) != 0)) {
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
    return pk_x509__part(cert, cert->subject);
}

struct pk_slice pk_cert_issuer_der(const struct pk_cert *cert)
{
    return pk_x509__part(cert, cert->issuer);
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
    return pk_x509__part(cert, cert->spki);
}

struct pk_slice pk_cert_skid(const struct pk_cert *cert)
{
    return pk_x509__part(cert, cert->skid);
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
    struct pk_slice tbs = pk_x509__part(cert, cert->tbs);
    struct pk_slice sig = pk_x509__part(cert, cert->sig);
    bool ok;

    if (!pk_x509__slices_equal(pk_cert_issuer_der(cert), pk_cert_subject_der(issuer)) ||
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
        ok = pk_x509__slices_equal(pk_pubkey_spki(pub), pk_buf_slice(&spki));
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

/* ---- trust anchors ---- */

void pk_x509__describe(const struct pk_cert *cert, const char *role, size_t index, char *out,
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

    pk_x509__describe(cert, what, index, who, sizeof(who));
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
