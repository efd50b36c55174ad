/* SPDX-License-Identifier: Apache-2.0 */
/* picket: transparent-mode firewall rules and the plan that installs or removes them. */
#include "sidecar/iptables.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dstmap.h"
#include "common/mem.h"

/* The jump from each built-in chain, exactly as `iptables -S' prints it (minus "-A "). */
#define JUMP_OUTPUT     "OUTPUT -p tcp -j " PK_IPTABLES_OUTPUT
#define JUMP_PREROUTING "PREROUTING -p tcp -j " PK_IPTABLES_PREROUTING

/* ---- state ---------------------------------------------------------------------------------- */

void pk_iptables_state_clear(struct pk_iptables_state *st)
{
    for (size_t i = 0; i < st->n_jumps; i++) {
        free(st->jumps[i]);
    }
    memset(st, 0, sizeof(*st));
}

/* Whether line (len bytes) ends with the word target after " -j " or " -g ". */
static bool jumps_to(const char *line, size_t len, const char *target)
{
    size_t tl = strlen(target);

    if (len < tl + 4) {
        return false;
    }
    const char *tail = line + len - tl - 4;
    return memcmp(tail + 4, target, tl) == 0 &&
           (memcmp(tail, " -j ", 4) == 0 || memcmp(tail, " -g ", 4) == 0);
}

static bool starts_with(const char *line, size_t len, const char *prefix)
{
    size_t pl = strlen(prefix);
    return len >= pl && memcmp(line, prefix, pl) == 0;
}

static bool line_is(const char *line, size_t len, const char *text)
{
    return len == strlen(text) && memcmp(line, text, len) == 0;
}

int pk_iptables_state_parse(const char *text, size_t len, struct pk_iptables_state *out,
                            struct pk_err *err)
{
    const char *p = text, *end = text + len;

    memset(out, 0, sizeof(*out));
    if (len > PK_IPTABLES_MAX_STATE) {
        return pk_err_set(err, PK_E_TOOBIG, "iptables -S printed more than %d bytes",
                          PK_IPTABLES_MAX_STATE);
    }
    if (len > 0 && memchr(text, '\0', len) != NULL) {
        return pk_err_set(err, PK_E_INVALID, "iptables -S printed a NUL byte");
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

        if (n > 0 && p[n - 1] == '\r') {
            n--;
        }
        if (line_is(p, n, "-N " PK_IPTABLES_OUTPUT)) {
            out->has_output = true;
        } else if (line_is(p, n, "-N " PK_IPTABLES_PREROUTING)) {
            out->has_prerouting = true;
        } else if (n > 3 && memcmp(p, "-A ", 3) == 0 &&
                   (jumps_to(p, n, PK_IPTABLES_OUTPUT) || jumps_to(p, n, PK_IPTABLES_PREROUTING))) {
            /* Rules inside our own chains are flushed with them; only jumps from elsewhere
             * need deleting one by one. */
            bool ours = starts_with(p + 3, n - 3, PK_IPTABLES_OUTPUT " ") ||
                        starts_with(p + 3, n - 3, PK_IPTABLES_PREROUTING " ");
            if (!ours) {
                if (out->n_jumps == PK_IPTABLES_MAX_JUMPS) {
                    return pk_err_set(err, PK_E_TOOBIG,
                                      "more than %d rules jump to picket's chains",
                                      PK_IPTABLES_MAX_JUMPS);
                }
                out->jumps[out->n_jumps++] = pk_xstrndup(p + 3, n - 3);
            }
        }
        p += nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(end - p);
    }
    return 0;
}

/* ---- rules ---------------------------------------------------------------------------------- */

/* The family (4 or 6) and port of a listener's listen address; 0 for a unix socket. */
static int listen_family(const struct pk_listener_config *lc, unsigned *port)
{
    if (lc->listen_addr.kind != PK_ADDR_INET) {
        return 0;
    }
    *port = lc->listen_addr.port;
    return lc->listen_addr.sa.ss_family == AF_INET6 ? 6 : 4;
}

/* One `-A CHAIN [-d CIDR] -p tcp [-m tcp --dport P] -j TARGET' line for dst. */
static int dst_rule(struct pk_buf *out, const char *chain, const struct pk_dst *dst,
                    const char *target)
{
    char cidr[PK_DST_CIDR_STR_LEN], ports[PK_DST_PORTS_STR_LEN];
    int r = pk_buf_printf(out, "-A %s", chain);

    /* iptables -S leaves out a match-everything destination. */
    if (dst->prefix > 0) {
        r |= pk_buf_printf(out, " -d %s", pk_dst_format_cidr(dst, cidr));
    }
    r |= pk_buf_printf(out, " -p tcp");
    if (!pk_dst_any_port(dst)) {
        r |= pk_buf_printf(out, " -m tcp --dport %s", pk_dst_format_ports(dst, ports));
    }
    r |= pk_buf_printf(out, " -j %s\n", target);
    return r != 0 ? PK_E_TOOBIG : 0;
}

/* Every destination (an exclude or intercept line) of family, as rules to target. */
static int dst_rules(struct pk_buf *out, const struct pk_dst *dsts, size_t n, int family,
                     const char *target, struct pk_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if ((family == 4) != (dsts[i].family == AF_INET)) {
            continue;
        }
        int r = dst_rule(out, PK_IPTABLES_OUTPUT, &dsts[i], target);
        if (r != 0) {
            return pk_err_set(err, r, "the rules are too large");
        }
    }
    return 0;
}

static int map_rules(struct pk_buf *out, const struct pk_dst_rule *rules, size_t n, int family,
                     const char *target, struct pk_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if ((family == 4) != (rules[i].dst.family == AF_INET)) {
            continue;
        }
        int r = dst_rule(out, PK_IPTABLES_OUTPUT, &rules[i].dst, target);
        if (r != 0) {
            return pk_err_set(err, r, "the rules are too large");
        }
    }
    return 0;
}

int pk_iptables_rules(const struct pk_sidecar_config *cfg, int family, struct pk_buf *out,
                      bool *want_output, bool *want_prerouting, struct pk_err *err)
{
    const char *O = PK_IPTABLES_OUTPUT;
    char redirect[48];
    unsigned port = 0;
    int r = 0;

    *want_output = false;
    *want_prerouting = false;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct pk_listener_config *lc = &cfg->listeners[i];
        if (lc->kind == PK_LISTENER_TRANSPARENT && listen_family(lc, &port) == family) {
            *want_output = true;
        }
    }
    if (*want_output) {
        /* The exits first: what must never be redirected, whatever the lines below say. */
        r |= pk_buf_printf(out, "-A %s -o lo -j RETURN\n", O);
        if (cfg->agent.mark != 0) {
            r |= pk_buf_printf(out, "-A %s -m mark --mark %#lx -j RETURN\n", O,
                               (unsigned long)cfg->agent.mark);
        }
        if (cfg->exclude_uid >= 0) {
            r |= pk_buf_printf(out, "-A %s -m owner --uid-owner %ld -j RETURN\n", O,
                               cfg->exclude_uid);
        }
        if (cfg->exclude_gid >= 0) {
            r |= pk_buf_printf(out, "-A %s -m owner --gid-owner %ld -j RETURN\n", O,
                               cfg->exclude_gid);
        }
        if (r != 0) {
            return pk_err_set(err, PK_E_TOOBIG, "the rules are too large");
        }
        for (size_t i = 0; i < cfg->n_listeners; i++) {
            const struct pk_listener_config *lc = &cfg->listeners[i];
            if (lc->kind == PK_LISTENER_TRANSPARENT) {
                r = dst_rules(out, lc->exclude_dst, lc->n_exclude, family, "RETURN", err);
                if (r != 0) {
                    return pk_err_prefix(err, r, "[transparent %s] exclude", lc->name);
                }
            }
        }
        for (size_t i = 0; i < cfg->n_listeners; i++) {
            const struct pk_listener_config *lc = &cfg->listeners[i];
            if (lc->kind != PK_LISTENER_TRANSPARENT || listen_family(lc, &port) != family) {
                continue;
            }
            snprintf(redirect, sizeof(redirect), "REDIRECT --to-ports %u", port);
            if (lc->n_intercept > 0) {
                r = dst_rules(out, lc->intercept_dst, lc->n_intercept, family, redirect, err);
            } else {
                r = map_rules(out, lc->map_rules, lc->n_map, family, redirect, err);
            }
            if (r != 0) {
                return pk_err_prefix(err, r, "[transparent %s]", lc->name);
            }
        }
    }
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const struct pk_listener_config *lc = &cfg->listeners[i];
        if (lc->kind != PK_LISTENER_INBOUND || lc->n_intercept_port == 0 ||
            listen_family(lc, &port) != family) {
            continue;
        }
        *want_prerouting = true;
        for (size_t k = 0; k < lc->n_intercept_port; k++) {
            char ports[PK_DST_PORTS_STR_LEN];
            if (pk_buf_printf(out, "-A %s -p tcp -m tcp --dport %s -j REDIRECT --to-ports %u\n",
                              PK_IPTABLES_PREROUTING,
                              pk_dst_format_ports(&lc->intercept_port_dst[k], ports), port) != 0) {
                return pk_err_set(err, PK_E_TOOBIG, "the rules are too large");
            }
        }
    }
    return 0;
}

/* ---- the plan ------------------------------------------------------------------------------- */

int pk_iptables_plan(const struct pk_iptables_state *st, const struct pk_buf *rules,
                     bool want_output, bool want_prerouting, struct pk_buf *out)
{
    bool kept_output = false, kept_prerouting = false;
    bool any = want_output || want_prerouting || st->has_output || st->has_prerouting ||
               st->n_jumps > 0;
    int r = 0;

    if (!any) {
        return 0;
    }
    r |= pk_buf_printf(out, "*nat\n");
    /* Declaring a chain creates it, or flushes it when it exists: an unwanted one is emptied
     * here and deleted below, once nothing jumps to it. */
    if (want_output || st->has_output) {
        r |= pk_buf_printf(out, ":%s - [0:0]\n", PK_IPTABLES_OUTPUT);
    }
    if (want_prerouting || st->has_prerouting) {
        r |= pk_buf_printf(out, ":%s - [0:0]\n", PK_IPTABLES_PREROUTING);
    }
    if (rules != NULL && rules->len > 0) {
        r |= pk_buf_append(out, rules->data, rules->len);
    }
    /* Keep one exact jump per wanted chain; delete every other jump to our chains. */
    for (size_t i = 0; i < st->n_jumps; i++) {
        const char *j = st->jumps[i];
        if (want_output && !kept_output && strcmp(j, JUMP_OUTPUT) == 0) {
            kept_output = true;
        } else if (want_prerouting && !kept_prerouting && strcmp(j, JUMP_PREROUTING) == 0) {
            kept_prerouting = true;
        } else {
            r |= pk_buf_printf(out, "-D %s\n", j);
        }
    }
    /* First in the built-in chain, so no earlier rule of someone else's ACCEPTs past us. */
    if (want_output && !kept_output) {
        r |= pk_buf_printf(out, "-I OUTPUT 1 -p tcp -j %s\n", PK_IPTABLES_OUTPUT);
    }
    if (want_prerouting && !kept_prerouting) {
        r |= pk_buf_printf(out, "-I PREROUTING 1 -p tcp -j %s\n", PK_IPTABLES_PREROUTING);
    }
    if (!want_output && st->has_output) {
        r |= pk_buf_printf(out, "-X %s\n", PK_IPTABLES_OUTPUT);
    }
    if (!want_prerouting && st->has_prerouting) {
        r |= pk_buf_printf(out, "-X %s\n", PK_IPTABLES_PREROUTING);
    }
    r |= pk_buf_printf(out, "COMMIT\n");
    return r != 0 ? PK_E_TOOBIG : 0;
}
