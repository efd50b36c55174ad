/* SPDX-License-Identifier: Apache-2.0 */
/* picket: SPIFFE IDs (SPIFFE-ID spec §2) and Dapr's workload form.
 *
 * Implementation notes
 *
 * The rules are those of the SPIFFE-ID specification §2.1-2.3 as go-spiffe enforces them:
 * scheme "spiffe" in lower case, "//", a trust domain of [a-z0-9.-_], then a path of segments
 * of [A-Za-z0-9.-_]. Characters a URI would allow elsewhere get a message of their own, so an
 * operator learns that "spiffe://td:443/x" failed for its port rather than for a "bad
 * character". Inputs are quoted in messages with pk_quote (anything unprintable escaped), cut
 * to fit 120 bytes. */
#include "spiffe.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

#define SCHEME     "spiffe://"
#define SCHEME_LEN (sizeof(SCHEME) - 1)
/* Room for a quoted SPIFFE ID in a message. */
#define QUOTE_LEN 124

static bool td_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static bool seg_char(char c)
{
    return td_char(c) || (c >= 'A' && c <= 'Z');
}

/* Why c cannot appear where it is, for the few characters that have a URI meaning. */
static const char *char_reason(char c, bool in_td)
{
    switch (c) {
    case ':':
        return in_td ? "a port is not allowed" : "':' is not allowed in a path segment";
    case '@':
        return "userinfo is not allowed";
    case '?':
        return "a query is not allowed";
    case '#':
        return "a fragment is not allowed";
    case '%':
        return "percent-encoding is not allowed";
    case '\0':
        return "a NUL byte is not allowed";
    default:
        break;
    }
    if (in_td && c >= 'A' && c <= 'Z') {
        return "the trust domain must be lower case";
    }
    return in_td ? "the trust domain may only contain a-z, 0-9, '.', '-' and '_'"
                 : "a path segment may only contain A-Z, a-z, 0-9, '.', '-' and '_'";
}

static int check_td(const char *td, size_t len, const char *whole, size_t whole_len,
                    struct pk_err *err)
{
    char q[QUOTE_LEN];
    const char *what = whole != NULL ? "SPIFFE ID" : "trust domain";

    if (whole == NULL) {
        whole = td;
        whole_len = len;
    }
    if (len == 0) {
        return pk_err_set(err, PK_E_INVALID, "%s has no trust domain: '%s'", what,
                          pk_quote(q, sizeof(q), whole, whole_len));
    }
    if (len > PK_SPIFFE_MAX_TD_LEN) {
        return pk_err_set(err, PK_E_INVALID, "%s: the trust domain is longer than %d bytes: '%s'",
                          what, PK_SPIFFE_MAX_TD_LEN, pk_quote(q, sizeof(q), whole, whole_len));
    }
    for (size_t i = 0; i < len; i++) {
        if (!td_char(td[i])) {
            return pk_err_set(err, PK_E_INVALID, "%s: %s: '%s'", what, char_reason(td[i], true),
                              pk_quote(q, sizeof(q), whole, whole_len));
        }
    }
    return 0;
}

static int check_seg(const char *seg, size_t len, const char *what, const char *whole,
                     size_t whole_len, struct pk_err *err)
{
    char q[QUOTE_LEN];

    if (whole == NULL) {
        whole = seg;
        whole_len = len;
    }
    if (len == 0) {
        return pk_err_set(err, PK_E_INVALID, "%s: empty path segment (or trailing slash): '%s'",
                          what, pk_quote(q, sizeof(q), whole, whole_len));
    }
    if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.')) {
        return pk_err_set(err, PK_E_INVALID, "%s: path segment '.' or '..' is not allowed: '%s'",
                          what, pk_quote(q, sizeof(q), whole, whole_len));
    }
    for (size_t i = 0; i < len; i++) {
        if (!seg_char(seg[i])) {
            return pk_err_set(err, PK_E_INVALID, "%s: %s: '%s'", what, char_reason(seg[i], false),
                              pk_quote(q, sizeof(q), whole, whole_len));
        }
    }
    return 0;
}

int pk_spiffe_parse(const char *text, size_t len, struct pk_spiffe_id *out, struct pk_err *err)
{
    char q[QUOTE_LEN];
    size_t td_end;
    size_t n_segs = 0;
    size_t seg_start[3];
    size_t seg_len[3];
    int r;

    if (len == 0) {
        return pk_err_set(err, PK_E_INVALID, "SPIFFE ID is empty");
    }
    if (len > PK_SPIFFE_MAX_LEN) {
        return pk_err_set(err, PK_E_INVALID, "SPIFFE ID is longer than %d bytes: '%s'",
                          PK_SPIFFE_MAX_LEN, pk_quote(q, sizeof(q), text, len));
    }
    if (len < SCHEME_LEN || memcmp(text, SCHEME, SCHEME_LEN) != 0) {
        return pk_err_set(err, PK_E_INVALID, "SPIFFE ID does not start with \"spiffe://\": '%s'",
                          pk_quote(q, sizeof(q), text, len));
    }
    for (td_end = SCHEME_LEN; td_end < len && text[td_end] != '/'; td_end++) {
    }
    r = check_td(text + SCHEME_LEN, td_end - SCHEME_LEN, text, len, err);
    if (r != 0) {
        return r;
    }
    /* The path: "" or "/" segment { "/" segment } */
    for (size_t pos = td_end; pos < len;) {
        size_t start = pos + 1;
        size_t end = start;
        while (end < len && text[end] != '/') {
            end++;
        }
        r = check_seg(text + start, end - start, "SPIFFE ID", text, len, err);
        if (r != 0) {
            return r;
        }
        if (n_segs < 3) {
            seg_start[n_segs] = start;
            seg_len[n_segs] = end - start;
        }
        n_segs++;
        pos = end;
    }

    memcpy(out->uri, text, len);
    out->uri[len] = '\0';
    memcpy(out->trust_domain, text + SCHEME_LEN, td_end - SCHEME_LEN);
    out->trust_domain[td_end - SCHEME_LEN] = '\0';
    out->path = out->uri + td_end;
    out->is_workload = n_segs == 3 && seg_len[0] == 2 &&
                       memcmp(text + seg_start[0], "ns", 2) == 0 &&
                       seg_len[1] < sizeof(out->namespace_) && seg_len[2] < sizeof(out->app_id);
    out->namespace_[0] = '\0';
    out->app_id[0] = '\0';
    if (out->is_workload) {
        memcpy(out->namespace_, text + seg_start[1], seg_len[1]);
        out->namespace_[seg_len[1]] = '\0';
        memcpy(out->app_id, text + seg_start[2], seg_len[2]);
        out->app_id[seg_len[2]] = '\0';
    }
    return 0;
}

int pk_spiffe_check_trust_domain(const char *td, struct pk_err *err)
{
    return check_td(td, strnlen(td, PK_SPIFFE_MAX_LEN + 1), NULL, 0, err);
}

int pk_spiffe_check_segment(const char *seg, const char *what, struct pk_err *err)
{
    size_t len = strnlen(seg, PK_SPIFFE_MAX_LEN + 1);
    char q[QUOTE_LEN];

    if (len > PK_SPIFFE_MAX_LEN - SCHEME_LEN) {
        return pk_err_set(err, PK_E_INVALID, "%s is too long for a SPIFFE ID: '%s'", what,
                          pk_quote(q, sizeof(q), seg, len));
    }
    return check_seg(seg, len, what, NULL, 0, err);
}

int pk_spiffe_format_workload(char *out, size_t out_len, const char *td, const char *ns,
                              const char *app_id, struct pk_err *err)
{
    int r = pk_spiffe_check_trust_domain(td, err);
    int n;

    if (r == 0) {
        r = pk_spiffe_check_segment(ns, "namespace", err);
    }
    if (r == 0) {
        r = pk_spiffe_check_segment(app_id, "app id", err);
    }
    if (r != 0) {
        return r;
    }
    n = snprintf(NULL, 0, SCHEME "%s/ns/%s/%s", td, ns, app_id);
    if (n < 0 || n > PK_SPIFFE_MAX_LEN) {
        return pk_err_set(err, PK_E_INVALID,
                          "SPIFFE ID for trust domain '%s', namespace '%.64s', app id '%.64s' "
                          "would be longer than %d bytes",
                          td, ns, app_id, PK_SPIFFE_MAX_LEN);
    }
    if ((size_t)n >= out_len) {
        return pk_err_set(err, PK_E_TOOBIG, "SPIFFE ID needs %d bytes, the buffer has %zu", n + 1,
                          out_len);
    }
    snprintf(out, out_len, SCHEME "%s/ns/%s/%s", td, ns, app_id);
    return 0;
}

/* Without a wildcard it must simply parse; with one, each part is checked on its own so that
 * messages quote what the operator wrote. */
int pk_spiffe_check_pattern(const char *pat, struct pk_err *err)
{
    char q[QUOTE_LEN];
    char q2[QUOTE_LEN];
    char piece[PK_SPIFFE_MAX_LEN + 1];
    size_t len = strnlen(pat, PK_SPIFFE_MAX_LEN + 1);
    struct pk_spiffe_id id;
    size_t td_end;
    int r;

    if (len > PK_SPIFFE_MAX_LEN || strchr(pat, '*') == NULL) {
        return pk_spiffe_parse(pat, len, &id, err);
    }
    if (len < SCHEME_LEN || memcmp(pat, SCHEME, SCHEME_LEN) != 0) {
        return pk_err_set(err, PK_E_INVALID, "pattern does not start with \"spiffe://\": '%s'",
                          pk_quote(q, sizeof(q), pat, strlen(pat)));
    }
    for (td_end = SCHEME_LEN; td_end < len && pat[td_end] != '/'; td_end++) {
    }
    /* SPIFFE trust domains are compared whole: a wildcard there would let any trust domain,
     * and so any CA that shares our anchors, name itself. */
    if (memchr(pat + SCHEME_LEN, '*', td_end - SCHEME_LEN) != NULL) {
        return pk_err_set(err, PK_E_INVALID,
                          "'*' is not allowed in the trust domain of a pattern: '%s'",
                          pk_quote(q, sizeof(q), pat, strlen(pat)));
    }
    memcpy(piece, pat + SCHEME_LEN, td_end - SCHEME_LEN);
    piece[td_end - SCHEME_LEN] = '\0';
    r = pk_spiffe_check_trust_domain(piece, err);
    if (r != 0) {
        return pk_err_prefix(err, r, "pattern '%s'", pk_quote(q, sizeof(q), pat, strlen(pat)));
    }
    for (size_t pos = td_end; pos < len;) {
        size_t start = pos + 1;
        size_t end = start;
        while (end < len && pat[end] != '/') {
            end++;
        }
        memcpy(piece, pat + start, end - start);
        piece[end - start] = '\0';
        if (strcmp(piece, "*") != 0) {
            if (strchr(piece, '*') != NULL) {
                return pk_err_set(err, PK_E_INVALID,
                                  "'*' must stand for a whole path segment, not part of one "
                                  "('%s'): '%s'",
                                  pk_quote(q2, sizeof(q2), piece, strlen(piece)),
                                  pk_quote(q, sizeof(q), pat, strlen(pat)));
            }
            r = pk_spiffe_check_segment(piece, "path segment", err);
            if (r != 0) {
                return pk_err_prefix(err, r, "pattern '%s'",
                                     pk_quote(q, sizeof(q), pat, strlen(pat)));
            }
        }
        pos = end;
    }
    return 0;
}

bool pk_spiffe_match(const struct pk_spiffe_id *id, const char *pattern)
{
    size_t plen = strnlen(pattern, PK_SPIFFE_MAX_LEN + 1);
    size_t td_end;
    const char *path = id->path;

    if (plen > PK_SPIFFE_MAX_LEN || plen < SCHEME_LEN || memcmp(pattern, SCHEME, SCHEME_LEN) != 0) {
        return false;
    }
    for (td_end = SCHEME_LEN; td_end < plen && pattern[td_end] != '/'; td_end++) {
    }
    if (check_td(pattern + SCHEME_LEN, td_end - SCHEME_LEN, pattern, plen, NULL) != 0 ||
        td_end - SCHEME_LEN != strlen(id->trust_domain) ||
        memcmp(pattern + SCHEME_LEN, id->trust_domain, td_end - SCHEME_LEN) != 0) {
        return false;
    }
    /* Walk pattern and ID segments in step; "*" matches exactly one segment. */
    for (size_t pos = td_end; pos < plen;) {
        size_t start = pos + 1;
        size_t end = start;
        while (end < plen && pattern[end] != '/') {
            end++;
        }
        bool wildcard = end - start == 1 && pattern[start] == '*';
        if (!wildcard && check_seg(pattern + start, end - start, "pattern", NULL, 0, NULL) != 0) {
            return false;
        }
        if (*path != '/') {
            return false; /* the ID has fewer segments */
        }
        const char *seg = path + 1;
        const char *seg_end = strchr(seg, '/');
        size_t seg_len = seg_end != NULL ? (size_t)(seg_end - seg) : strlen(seg);
        if (!wildcard && (seg_len != end - start || memcmp(seg, pattern + start, seg_len) != 0)) {
            return false;
        }
        path = seg + seg_len;
        pos = end;
    }
    return *path == '\0'; /* and not more segments in the ID */
}
