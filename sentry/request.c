/* SPDX-License-Identifier: Apache-2.0 */
/* picket: decoding a SignCertificateRequest with true lengths, and the rules for its fields.
 *
 * Implementation notes: the decoder is a straight walk over (key, value) pairs; every read checks
 * the bytes left first, and a length is compared with what is left before it is added to the
 * position, so no arithmetic can wrap. Nothing is copied: the slices point into the wire bytes. */
#include "sentry/request.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Field numbers of SignCertificateRequest (sentry.proto). */
enum {
    FIELD_ID = 1,
    FIELD_TOKEN = 2,
    FIELD_TRUST_DOMAIN = 3,
    FIELD_NAMESPACE = 4,
    FIELD_CSR = 5,
    FIELD_TOKEN_VALIDATOR = 6,
    FIELD_JWT_AUDIENCES = 7,
};

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

#define QUOTE_LEN 300

static const char *field_name(uint64_t field)
{
    static const char *const names[] = {
            NULL,
            "id",
            "token",
            "trust_domain",
            "namespace",
            "certificate_signing_request",
            "token_validator",
            "jwt_audiences",
    };
    return field < sizeof(names) / sizeof(names[0]) ? names[field] : NULL;
}

const char *pk_sentry_quote(char *out, size_t out_len, struct pk_slice value)
{
    size_t shown = value.len > 64 ? 64 : value.len;
    size_t n = 0;

    if (out_len == 0) {
        return out;
    }
    for (size_t i = 0; i < shown; i++) {
        uint8_t c = value.ptr[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            if (n + 1 >= out_len) {
                break;
            }
            out[n++] = (char)c;
        } else {
            if (n + 4 >= out_len) {
                break;
            }
            n += (size_t)snprintf(out + n, out_len - n, "\\x%02x", c);
        }
    }
    if (shown < value.len && n + 3 < out_len) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

static int read_varint(struct pk_slice wire, size_t *pos, uint64_t *out)
{
    uint64_t value = 0;

    for (unsigned shift = 0; shift < 64; shift += 7) {
        uint8_t b;
        if (*pos >= wire.len) {
            return PK_E_TRUNCATED;
        }
        b = wire.ptr[(*pos)++];
        if (shift == 63 && b > 1) {
            return PK_E_INVALID; /* more than 64 bits */
        }
        value |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *out = value;
            return 0;
        }
    }
    return PK_E_INVALID;
}

/* The offset of the first byte that breaks UTF-8 (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF), or len when all of it is valid. */
static size_t utf8_error_at(const uint8_t *p, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint8_t c = p[i];
        size_t need;
        uint32_t cp;
        uint32_t min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1, cp = c & 0x1fu, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2, cp = c & 0x0fu, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3, cp = c & 0x07u, min = 0x10000;
        } else {
            return i;
        }
        if (need > len - i - 1) {
            return i;
        }
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return i;
            }
            cp = (cp << 6) | (p[i + k] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return i;
        }
        i += need + 1;
    }
    return len;
}

static int malformed(struct pk_err *err, size_t at, uint64_t field, const char *problem)
{
    const char *name = field_name(field);

    return pk_err_set(err, PK_E_INVALID, "field %llu%s%s%s at byte %zu: %s",
                      (unsigned long long)field, name != NULL ? " (" : "", name != NULL ? name : "",
                      name != NULL ? ")" : "", at, problem);
}

static int bad_wire_type(struct pk_err *err, size_t at, uint64_t field, unsigned wt)
{
    char problem[64];

    snprintf(problem, sizeof(problem), "wire type %u is not allowed here", wt);
    return malformed(err, at, field, problem);
}

int pk_sentry_request_decode(struct pk_slice wire, struct pk_sentry_request *out,
                             struct pk_err *err)
{
    struct pk_sentry_request req;
    size_t pos = 0;

    memset(&req, 0, sizeof(req));
    while (pos < wire.len) {
        size_t start = pos;
        uint64_t key;
        uint64_t field;
        unsigned wt;
        uint64_t value;

        if (read_varint(wire, &pos, &key) != 0) {
            return pk_err_set(err, PK_E_INVALID, "bad field key at byte %zu", start);
        }
        field = key >> 3;
        wt = (unsigned)(key & 7);
        if (field == 0 || field > 0x1fffffff) {
            return pk_err_set(err, PK_E_INVALID, "invalid field number %llu at byte %zu",
                              (unsigned long long)field, start);
        }
        bool known = field_name(field) != NULL;
        bool want_varint = field == FIELD_TOKEN_VALIDATOR;
        if (known && (wt == WIRE_VARINT) != want_varint) {
            return bad_wire_type(err, start, field, wt);
        }
        switch (wt) {
        case WIRE_VARINT:
            if (read_varint(wire, &pos, &value) != 0) {
                return malformed(err, start, field, "bad varint");
            }
            if (field == FIELD_TOKEN_VALIDATOR) {
                /* An enum is an int32: the low 32 bits, as protobuf decoders do. */
                req.token_validator = (int32_t)(uint32_t)value;
            }
            break;
        case WIRE_FIXED64:
        case WIRE_FIXED32: {
            size_t size = wt == WIRE_FIXED64 ? 8 : 4;
            if (size > wire.len - pos) {
                return malformed(err, start, field, "truncated");
            }
            pos += size;
            break;
        }
        case WIRE_LEN: {
            struct pk_slice s;
            size_t bad;
            if (read_varint(wire, &pos, &value) != 0) {
                return malformed(err, start, field, "bad length");
            }
            if (value > wire.len - pos) {
                return malformed(err, start, field, "length runs past the end of the message");
            }
            s = pk_slice_make(wire.ptr + pos, (size_t)value);
            pos += (size_t)value;
            if (known && field != FIELD_CSR && (bad = utf8_error_at(s.ptr, s.len)) < s.len) {
                return pk_err_set(err, PK_E_INVALID,
                                  "field %llu (%s) is not valid UTF-8 (byte %zu of the string)",
                                  (unsigned long long)field, field_name(field), bad);
            }
            switch (field) {
            case FIELD_ID:
                req.id = s;
                break;
            case FIELD_TOKEN:
                req.token = s;
                break;
            case FIELD_TRUST_DOMAIN:
                req.trust_domain = s;
                break;
            case FIELD_NAMESPACE:
                req.namespace_ = s;
                break;
            case FIELD_CSR:
                req.csr = s;
                break;
            case FIELD_JWT_AUDIENCES:
                req.n_jwt_audiences++;
                break;
            default:
                break; /* an unknown field, skipped */
            }
            break;
        }
        default:
            /* Groups (3, 4) and the unused numbers 6 and 7. */
            return bad_wire_type(err, start, field, wt);
        }
    }
    *out = req;
    return 0;
}

/* Why byte c cannot be in an app id or namespace, for the few that get a message of their own. */
static const char *byte_reason(uint8_t c)
{
    if (c == '\0') {
        return "a NUL byte is not allowed";
    }
    if (c < 0x20 || c == 0x7f) {
        return "control characters are not allowed";
    }
    if (c >= 0x80) {
        return "only ASCII is allowed";
    }
    if (c == '/') {
        return "'/' is not allowed";
    }
    if (c == '%') {
        return "percent-encoding is not allowed";
    }
    if (c == ' ') {
        return "white space is not allowed";
    }
    return NULL;
}

static bool is_lower_alnum(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int pk_sentry_check_app_id(struct pk_slice id, struct pk_err *err)
{
    char q[QUOTE_LEN];

    if (id.len == 0) {
        return pk_err_set(err, PK_E_INVALID, "parameter app-id cannot be empty");
    }
    if (memchr(id.ptr, '.', id.len) != NULL) {
        return pk_err_set(err, PK_E_INVALID, "parameter app-id cannot contain dots");
    }
    if (id.len > PK_SENTRY_APP_ID_MAX) {
        return pk_err_set(err, PK_E_INVALID, "app ID must be 64 characters or less");
    }
    for (size_t i = 0; i < id.len; i++) {
        uint8_t c = id.ptr[i];
        if (is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '-' || c == '_') {
            continue;
        }
        const char *reason = byte_reason(c);
        return pk_err_set(err, PK_E_INVALID,
                          "app id '%s': %s (an app id is a SPIFFE path segment: A-Z, a-z, 0-9, "
                          "'-' and '_')",
                          pk_sentry_quote(q, sizeof(q), id),
                          reason != NULL ? reason : "character not allowed");
    }
    return 0;
}

int pk_sentry_check_namespace(struct pk_slice ns, const char *what, struct pk_err *err)
{
    static const char rule[] = "a namespace is a Kubernetes name, a DNS-1123 label: at most 63 "
                               "of a-z, 0-9 and '-', starting and ending with a letter or digit";
    char q[QUOTE_LEN];

    if (ns.len == 0) {
        return pk_err_set(err, PK_E_INVALID, "%s is required", what);
    }
    if (ns.len > PK_SENTRY_NAMESPACE_MAX) {
        return pk_err_set(err, PK_E_INVALID, "%s '%s' is %zu bytes long (%s)", what,
                          pk_sentry_quote(q, sizeof(q), ns), ns.len, rule);
    }
    for (size_t i = 0; i < ns.len; i++) {
        uint8_t c = ns.ptr[i];
        if (is_lower_alnum(c) || c == '-') {
            continue;
        }
        const char *reason = byte_reason(c);
        if (reason == NULL) {
            reason = c >= 'A' && c <= 'Z'
                             ? "upper case is not allowed"
                             : (c == '.' ? "'.' is not allowed" : "character not allowed");
        }
        return pk_err_set(err, PK_E_INVALID, "%s '%s': %s (%s)", what,
                          pk_sentry_quote(q, sizeof(q), ns), reason, rule);
    }
    if (ns.ptr[0] == '-' || ns.ptr[ns.len - 1] == '-') {
        return pk_err_set(err, PK_E_INVALID, "%s '%s': starts or ends with '-' (%s)", what,
                          pk_sentry_quote(q, sizeof(q), ns), rule);
    }
    return 0;
}

int pk_sentry_trust_domains_add(struct pk_sentry_trust_domains *list, const char *td,
                                const char *what, struct pk_err *err)
{
    size_t len = strnlen(td, PK_SPIFFE_MAX_TD_LEN + 1);
    char q[QUOTE_LEN];
    int r;

    r = pk_spiffe_check_trust_domain(td, err);
    if (r != 0) {
        return pk_err_prefix(err, r, "%s", what);
    }
    if (td[0] == '.' || td[len - 1] == '.' || strstr(td, "..") != NULL) {
        return pk_err_set(err, PK_E_INVALID,
                          "%s: trust domain '%s' has an empty label (a leading, trailing or "
                          "doubled '.')",
                          what, pk_sentry_quote(q, sizeof(q), pk_slice_make(td, len)));
    }
    if (pk_sentry_trust_domains_contains(list, pk_slice_make(td, len))) {
        return 0;
    }
    if (list->n == PK_SENTRY_MAX_TRUST_DOMAINS) {
        return pk_err_set(err, PK_E_TOOBIG, "%s: more than %d trust domains", what,
                          PK_SENTRY_MAX_TRUST_DOMAINS);
    }
    memcpy(list->name[list->n], td, len + 1);
    list->n++;
    return 0;
}

int pk_sentry_trust_domains_add_list(struct pk_sentry_trust_domains *list, const char *csv,
                                     const char *what, struct pk_err *err)
{
    const char *p = csv;

    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        char name[PK_SPIFFE_MAX_TD_LEN + 1];
        char q[QUOTE_LEN];
        int r;

        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++, len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
            len--;
        }
        if (len == 0) {
            return pk_err_set(err, PK_E_INVALID, "%s: empty trust domain in '%s'", what,
                              pk_sentry_quote(q, sizeof(q), pk_slice_make(csv, strlen(csv))));
        }
        if (len > PK_SPIFFE_MAX_TD_LEN) {
            return pk_err_set(err, PK_E_INVALID, "%s: trust domain '%s' is longer than %d bytes",
                              what, pk_sentry_quote(q, sizeof(q), pk_slice_make(p, len)),
                              PK_SPIFFE_MAX_TD_LEN);
        }
        memcpy(name, p, len);
        name[len] = '\0';
        r = pk_sentry_trust_domains_add(list, name, what, err);
        if (r != 0) {
            return r;
        }
        if (end == NULL) {
            return 0;
        }
        p = end + 1;
    }
}

bool pk_sentry_trust_domains_contains(const struct pk_sentry_trust_domains *list,
                                      struct pk_slice td)
{
    for (size_t i = 0; i < list->n; i++) {
        if (strlen(list->name[i]) == td.len && memcmp(list->name[i], td.ptr, td.len) == 0) {
            return true;
        }
    }
    return false;
}

const char *pk_sentry_trust_domains_format(const struct pk_sentry_trust_domains *list, char *out,
                                           size_t out_len)
{
    size_t n = 0;

    out[0] = '\0';
    for (size_t i = 0; i < list->n; i++) {
        int w = snprintf(out + n, out_len - n, "%s%s", i > 0 ? ", " : "", list->name[i]);
        if (w < 0 || (size_t)w >= out_len - n) {
            if (out_len >= 4) {
                memcpy(out + out_len - 4, "...", 4);
            }
            break;
        }
        n += (size_t)w;
    }
    return out;
}

int pk_sentry_check_trust_domain(struct pk_slice td, const struct pk_sentry_trust_domains *allowed,
                                 struct pk_slice *out, struct pk_err *err)
{
    char name[PK_SPIFFE_MAX_TD_LEN + 1];
    char q[QUOTE_LEN];
    char list[512];
    int r;

    if (td.len == 0) {
        td = pk_slice_make(PK_SENTRY_DEFAULT_REQUEST_TRUST_DOMAIN,
                           strlen(PK_SENTRY_DEFAULT_REQUEST_TRUST_DOMAIN));
    }
    if (td.len > PK_SPIFFE_MAX_TD_LEN) {
        return pk_err_set(err, PK_E_INVALID, "trust domain '%s' is longer than %d bytes",
                          pk_sentry_quote(q, sizeof(q), td), PK_SPIFFE_MAX_TD_LEN);
    }
    if (memchr(td.ptr, '\0', td.len) != NULL) {
        return pk_err_set(err, PK_E_INVALID, "trust domain '%s': a NUL byte is not allowed",
                          pk_sentry_quote(q, sizeof(q), td));
    }
    memcpy(name, td.ptr, td.len);
    name[td.len] = '\0';
    r = pk_spiffe_check_trust_domain(name, err);
    if (r != 0) {
        return r;
    }
    if (!pk_sentry_trust_domains_contains(allowed, td)) {
        return pk_err_set(err, PK_E_DENIED,
                          "trust domain '%s' is not one this Sentry signs for (allowed: %s; "
                          "add trust domains with --allowed-trust-domains)",
                          pk_sentry_quote(q, sizeof(q), td),
                          pk_sentry_trust_domains_format(allowed, list, sizeof(list)));
    }
    *out = td;
    return 0;
}

/* The control-plane services of Dapr (the dapr.io/control-plane annotation values), as app ids. */
static const char *const control_plane_ids[] = {
        "dapr-placement",
        "dapr-scheduler",
        "dapr-operator",
        "dapr-injector",
};

static bool equal_ignoring_case(struct pk_slice s, const char *text)
{
    size_t n = strlen(text);
    return s.len == n && strncasecmp((const char *)s.ptr, text, n) == 0;
}

enum pk_sentry_id_kind pk_sentry_classify_id(struct pk_slice id, struct pk_slice ns,
                                             const char *sentry_namespace)
{
    /* Sentry's identity is refused in every namespace and spelling: a sidecar configured with
     * another control-plane namespace would trust it just the same. */
    if (equal_ignoring_case(id, "dapr-sentry")) {
        return PK_SENTRY_ID_SENTRY;
    }
    if (!equal_ignoring_case(ns, sentry_namespace)) {
        return PK_SENTRY_ID_WORKLOAD;
    }
    for (size_t i = 0; i < sizeof(control_plane_ids) / sizeof(control_plane_ids[0]); i++) {
        if (equal_ignoring_case(id, control_plane_ids[i])) {
            return memcmp(id.ptr, control_plane_ids[i], id.len) == 0 &&
                                   strlen(sentry_namespace) == ns.len &&
                                   memcmp(ns.ptr, sentry_namespace, ns.len) == 0
                           ? PK_SENTRY_ID_CONTROL_PLANE
                           : PK_SENTRY_ID_LOOKALIKE;
        }
    }
    return PK_SENTRY_ID_WORKLOAD;
}
