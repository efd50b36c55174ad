/* SPDX-License-Identifier: Apache-2.0 */
/* picket: destinations and transparent-listener maps, parsed and looked up. */
#include "common/dstmap.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/spiffe.h"

/* Room for a quoted token in a message. */
#define QUOTE_LEN 100
/* The most tokens a line has: CIDR, PORTS, ACTION. */
#define MAX_TOKENS 3

struct token {
    const char *p;
    size_t len;
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Split text at blanks into at most MAX_TOKENS tokens; a further one is an error. */
static int split(const char *text, struct token *tok, size_t *n, struct pk_err *err)
{
    const char *s = text;
    char q[QUOTE_LEN];

    *n = 0;
    for (;;) {
        while (is_blank(*s)) {
            s++;
        }
        if (*s == '\0') {
            return 0;
        }
        if (*n == MAX_TOKENS) {
            return pk_err_set(err, PK_E_INVALID, "'%s': too many words (at most CIDR PORTS ACTION)",
                              pk_log_escape(q, sizeof(q), text));
        }
        tok[*n].p = s;
        while (*s != '\0' && !is_blank(*s)) {
            s++;
        }
        tok[*n].len = (size_t)(s - tok[*n].p);
        (*n)++;
    }
}

/* A token as a NUL-terminated string in buf (n bytes), quoted for messages when cut. */
static const char *tok_str(const struct token *t, char *buf, size_t n)
{
    size_t len = t->len < n - 1 ? t->len : n - 1;
    memcpy(buf, t->p, len);
    buf[len] = '\0';
    return buf;
}

static int parse_uint(const char *p, size_t len, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;

    if (len == 0 || len > 10) {
        return PK_E_INVALID;
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return PK_E_INVALID;
        }
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    /* "08080" reads as a typo more often than as a port. */
    if ((len > 1 && p[0] == '0') || v > max) {
        return PK_E_INVALID;
    }
    *out = v;
    return 0;
}

static int parse_cidr(const struct token *t, struct pk_dst *out, struct pk_err *err)
{
    char text[PK_DST_CIDR_STR_LEN + 8], q[QUOTE_LEN];
    const char *slash;
    unsigned long prefix;
    size_t alen, bytes;
    unsigned max;

    if (t->len >= sizeof(text)) {
        return pk_err_set(err, PK_E_INVALID, "'%s...' is not an address block (CIDR)",
                          pk_log_escape(q, sizeof(q), tok_str(t, text, sizeof(text))));
    }
    tok_str(t, text, sizeof(text));
    slash = strchr(text, '/');
    alen = slash != NULL ? (size_t)(slash - text) : strlen(text);
    memset(out, 0, sizeof(*out));
    {
        char addr[INET6_ADDRSTRLEN];
        if (alen >= sizeof(addr)) {
            goto bad;
        }
        memcpy(addr, text, alen);
        addr[alen] = '\0';
        if (inet_pton(AF_INET, addr, out->addr) == 1) {
            out->family = AF_INET;
            max = 32;
        } else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
            out->family = AF_INET6;
            max = 128;
        } else {
            goto bad;
        }
    }
    prefix = max;
    if (slash != NULL && parse_uint(slash + 1, strlen(slash + 1), max, &prefix) != 0) {
        return pk_err_set(err, PK_E_INVALID,
                          "'%s': the prefix length must be a number from 0 to %u",
                          pk_log_escape(q, sizeof(q), text), max);
    }
    out->prefix = (unsigned)prefix;
    /* Bits past the prefix are a typo for another block; say which ones were meant. */
    bytes = max / 8;
    for (size_t i = 0; i < bytes; i++) {
        unsigned keep = prefix >= (i + 1) * 8 ? 8 : prefix > i * 8 ? (unsigned)(prefix - i * 8) : 0;
        uint8_t mask = keep == 0 ? 0 : (uint8_t)(0xffu << (8 - keep));
        if ((out->addr[i] & (uint8_t)~mask) != 0) {
            return pk_err_set(err, PK_E_INVALID,
                              "'%s': bits are set past the /%lu prefix (write the network address, "
                              "or the address alone for one host)",
                              pk_log_escape(q, sizeof(q), text), prefix);
        }
    }
    return 0;
bad:
    return pk_err_set(err, PK_E_INVALID,
                      "'%s' is not an address block: expected IPv4 or IPv6 CIDR such as 10.0.0.0/8 "
                      "or fd00::/8",
                      pk_log_escape(q, sizeof(q), text));
}

static int parse_ports(const struct token *t, struct pk_dst *out, struct pk_err *err)
{
    const char *dash = memchr(t->p, '-', t->len);
    char text[QUOTE_LEN], q[QUOTE_LEN];
    unsigned long lo, hi;

    if (dash == NULL) {
        if (parse_uint(t->p, t->len, 65535, &lo) != 0 || lo == 0) {
            goto bad;
        }
        hi = lo;
    } else if (parse_uint(t->p, (size_t)(dash - t->p), 65535, &lo) != 0 || lo == 0 ||
               parse_uint(dash + 1, t->len - (size_t)(dash - t->p) - 1, 65535, &hi) != 0 ||
               hi < lo) {
        goto bad;
    }
    out->port_lo = (uint16_t)lo;
    out->port_hi = (uint16_t)hi;
    return 0;
bad:
    return pk_err_set(err, PK_E_INVALID,
                      "'%s' is not a port (1 to 65535) or a range of ports such as 8000-8099",
                      pk_log_escape(q, sizeof(q), tok_str(t, text, sizeof(text))));
}

static bool tok_is(const struct token *t, const char *word)
{
    return t->len == strlen(word) && memcmp(t->p, word, t->len) == 0;
}

/* A second token that starts with a digit is PORTS; anything else is not. */
static bool looks_like_ports(const struct token *t)
{
    return t->len > 0 && t->p[0] >= '0' && t->p[0] <= '9';
}

static int parse_dst_tokens(const struct token *tok, size_t n, struct pk_dst *out,
                            struct pk_err *err)
{
    int r = parse_cidr(&tok[0], out, err);

    if (r != 0) {
        return r;
    }
    out->port_lo = 0;
    out->port_hi = 65535;
    if (n > 1) {
        return parse_ports(&tok[1], out, err);
    }
    return 0;
}

int pk_dst_parse(const char *text, struct pk_dst *out, struct pk_err *err)
{
    struct token tok[MAX_TOKENS];
    char q[QUOTE_LEN];
    size_t n;
    int r;

    r = split(text, tok, &n, err);
    if (r != 0) {
        return r;
    }
    if (n == 0 || n > 2) {
        return pk_err_set(err, PK_E_INVALID, "'%s': expected CIDR [PORTS], as in 10.0.0.0/8 8080",
                          pk_log_escape(q, sizeof(q), text));
    }
    return parse_dst_tokens(tok, n, out, err);
}

static int check_app(const char *arg, struct pk_err *err)
{
    const char *slash = strchr(arg, '/');
    char q[QUOTE_LEN];
    char *ns;
    int r;

    if (slash == NULL) {
        return pk_spiffe_check_segment(arg, "app id", err);
    }
    if (strchr(slash + 1, '/') != NULL) {
        return pk_err_set(err, PK_E_INVALID, "app='%s': expected app=APP or app=NAMESPACE/APP",
                          pk_log_escape(q, sizeof(q), arg));
    }
    ns = pk_xstrndup(arg, (size_t)(slash - arg));
    r = pk_spiffe_check_segment(ns, "namespace", err);
    free(ns);
    return r != 0 ? r : pk_spiffe_check_segment(slash + 1, "app id", err);
}

int pk_dst_rule_parse(const char *text, struct pk_dst_rule *out, struct pk_err *err)
{
    struct token tok[MAX_TOKENS];
    struct pk_dst_rule rule = {0};
    const struct token *act;
    char q[QUOTE_LEN];
    size_t n;
    int r;

    r = split(text, tok, &n, err);
    if (r != 0) {
        return r;
    }
    if (n < 2 || (n == 2 && looks_like_ports(&tok[1])) || (n == 3 && !looks_like_ports(&tok[1]))) {
        return pk_err_set(err, PK_E_INVALID,
                          "'%s': expected CIDR [PORTS] ACTION, where ACTION is spiffe://..., "
                          "app=APP, any, passthrough or deny",
                          pk_log_escape(q, sizeof(q), text));
    }
    r = parse_dst_tokens(tok, n - 1, &rule.dst, err);
    if (r != 0) {
        return r;
    }
    act = &tok[n - 1];
    if (tok_is(act, "any")) {
        rule.action = PK_DST_ANY;
    } else if (tok_is(act, "passthrough")) {
        rule.action = PK_DST_PASSTHROUGH;
    } else if (tok_is(act, "deny")) {
        rule.action = PK_DST_DENY;
    } else if (act->len > 4 && memcmp(act->p, "app=", 4) == 0) {
        rule.action = PK_DST_APP_ID;
        rule.arg = pk_xstrndup(act->p + 4, act->len - 4);
        r = check_app(rule.arg, err);
    } else if (act->len > 9 && memcmp(act->p, "spiffe://", 9) == 0) {
        struct pk_spiffe_id *id = pk_xmalloc(sizeof(*id));
        rule.action = PK_DST_SPIFFE_ID;
        rule.arg = pk_xstrndup(act->p, act->len);
        r = pk_spiffe_parse(rule.arg, act->len, id, err);
        free(id);
    } else {
        char t[QUOTE_LEN];
        r = pk_err_set(err, PK_E_INVALID,
                       "'%s' is not an action: expected spiffe://..., app=APP, app=NS/APP, any, "
                       "passthrough or deny",
                       pk_log_escape(q, sizeof(q), tok_str(act, t, sizeof(t))));
    }
    if (r != 0) {
        pk_dst_rule_clear(&rule);
        return r;
    }
    *out = rule;
    return 0;
}

void pk_dst_rule_clear(struct pk_dst_rule *rule)
{
    free(rule->arg);
    rule->arg = NULL;
}

bool pk_dst_any_port(const struct pk_dst *dst)
{
    return dst->port_lo <= 1 && dst->port_hi == 65535;
}

bool pk_dst_covers(const struct pk_dst *dst, int family, const uint8_t *addr, uint16_t port)
{
    unsigned full, rest;

    if (family != dst->family || port < dst->port_lo || port > dst->port_hi) {
        return false;
    }
    full = dst->prefix / 8;
    rest = dst->prefix % 8;
    if (memcmp(addr, dst->addr, full) != 0) {
        return false;
    }
    if (rest != 0) {
        uint8_t mask = (uint8_t)(0xffu << (8 - rest));
        if ((addr[full] & mask) != dst->addr[full]) {
            return false;
        }
    }
    return true;
}

const char *pk_dst_format_cidr(const struct pk_dst *dst, char *buf)
{
    char addr[INET6_ADDRSTRLEN];

    if (inet_ntop(dst->family, dst->addr, addr, sizeof(addr)) == NULL) {
        snprintf(buf, PK_DST_CIDR_STR_LEN, "?");
        return buf;
    }
    snprintf(buf, PK_DST_CIDR_STR_LEN, "%s/%u", addr, dst->prefix);
    return buf;
}

const char *pk_dst_format_ports(const struct pk_dst *dst, char *buf)
{
    if (pk_dst_any_port(dst)) {
        buf[0] = '\0';
    } else if (dst->port_lo == dst->port_hi) {
        snprintf(buf, PK_DST_PORTS_STR_LEN, "%u", dst->port_lo);
    } else {
        snprintf(buf, PK_DST_PORTS_STR_LEN, "%u:%u", dst->port_lo, dst->port_hi);
    }
    return buf;
}

/* Whether a is more specific than b (both cover the same address and port). */
static bool more_specific(const struct pk_dst *a, const struct pk_dst *b)
{
    if (a->prefix != b->prefix) {
        return a->prefix > b->prefix;
    }
    return (unsigned)(a->port_hi - a->port_lo) < (unsigned)(b->port_hi - b->port_lo);
}

const struct pk_dst_rule *pk_dst_lookup(const struct pk_dst_rule *rules, size_t n,
                                        const struct sockaddr *sa)
{
    const struct pk_dst_rule *best = NULL;
    const uint8_t *addr;
    uint16_t port;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        addr = (const uint8_t *)&in->sin_addr;
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        addr = in6->sin6_addr.s6_addr;
        port = ntohs(in6->sin6_port);
    } else {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        /* Strictly more specific only: among equals the first line wins. */
        if (pk_dst_covers(&rules[i].dst, sa->sa_family, addr, port) &&
            (best == NULL || more_specific(&rules[i].dst, &best->dst))) {
            best = &rules[i];
        }
    }
    return best;
}
