/* SPDX-License-Identifier: Apache-2.0 */
/* picket: fuzz target for transparent mode's parsers.
 *
 * Targets: pk_dst_parse, pk_dst_rule_parse, pk_dst_lookup (common/dstmap.h) on the input as one
 * line, and pk_iptables_state_parse (sidecar/iptables.h) and pk_iptables_plan on the whole input
 * as `iptables -S' output. Besides memory safety it checks: a refusal is PK_E_INVALID with a
 * message; an accepted destination has a prefix within its family's width, no bit set past it,
 * a port range with lo <= hi, and formats to text that parses back to the same destination;
 * it covers its own network address at its lowest port, and a lookup over the lone rule finds
 * it there; an accepted map line has an argument exactly for its spiffe:// and app= actions;
 * and a plan, when there is one, starts with *nat and ends with COMMIT. */
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/dstmap.h"
#include "common/err.h"
#include "fuzz.h"
#include "sidecar/iptables.h"

static void check(int cond)
{
    if (!cond) {
        abort();
    }
}

static void check_dst(const struct pk_dst *d)
{
    unsigned max = d->family == AF_INET ? 32 : 128;
    char cidr[PK_DST_CIDR_STR_LEN], ports[PK_DST_PORTS_STR_LEN], text[80];
    struct pk_dst back;
    struct pk_dst_rule rule = {.dst = *d, .action = PK_DST_ANY};
    struct sockaddr_storage ss;

    check(d->family == AF_INET || d->family == AF_INET6);
    check(d->prefix <= max);
    check(d->port_lo <= d->port_hi);
    for (unsigned bit = d->prefix; bit < max; bit++) {
        check((d->addr[bit / 8] & (0x80u >> (bit % 8))) == 0);
    }
    /* Round trip: iptables writes ranges with ':', the parser takes '-'. */
    pk_dst_format_ports(d, ports);
    for (char *c = ports; *c != '\0'; c++) {
        if (*c == ':') {
            *c = '-';
        }
    }
    snprintf(text, sizeof(text), "%s %s", pk_dst_format_cidr(d, cidr), ports);
    check(pk_dst_parse(text, &back, NULL) == 0);
    check(back.family == d->family && back.prefix == d->prefix &&
          memcmp(back.addr, d->addr, 16) == 0);
    check(pk_dst_any_port(&back) == pk_dst_any_port(d));
    if (!pk_dst_any_port(d)) {
        check(back.port_lo == d->port_lo && back.port_hi == d->port_hi);
    }
    uint16_t port = d->port_lo > 0 ? d->port_lo : 1;
    check(pk_dst_covers(d, d->family, d->addr, port));
    memset(&ss, 0, sizeof(ss));
    if (d->family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        memcpy(&in->sin_addr, d->addr, 4);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        memcpy(&in6->sin6_addr, d->addr, 16);
    }
    check(pk_dst_lookup(&rule, 1, (const struct sockaddr *)&ss) == &rule);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size + 1);
    struct pk_dst d;
    struct pk_dst_rule rule;
    struct pk_iptables_state st;
    struct pk_buf plan;
    struct pk_err err;
    int r;

    if (line == NULL) {
        return 0;
    }
    memcpy(line, data, size);
    line[size] = '\0';

    pk_err_clear(&err);
    r = pk_dst_parse(line, &d, &err);
    check(r == 0 || (r == PK_E_INVALID && err.msg[0] != '\0'));
    if (r == 0) {
        check_dst(&d);
    }
    pk_err_clear(&err);
    r = pk_dst_rule_parse(line, &rule, &err);
    check(r == 0 || (r == PK_E_INVALID && err.msg[0] != '\0'));
    if (r == 0) {
        check_dst(&rule.dst);
        bool has_arg = rule.action == PK_DST_SPIFFE_ID || rule.action == PK_DST_APP_ID;
        check(has_arg == (rule.arg != NULL));
        pk_dst_rule_clear(&rule);
    }

    pk_err_clear(&err);
    r = pk_iptables_state_parse((const char *)data, size, &st, &err);
    check(r == 0 || ((r == PK_E_INVALID || r == PK_E_TOOBIG) && err.msg[0] != '\0'));
    if (r == 0) {
        pk_buf_init(&plan, 1 << 20);
        check(pk_iptables_plan(&st, NULL, false, false, &plan) == 0);
        check(plan.len == 0 || (plan.len >= 12 && memcmp(plan.data, "*nat\n", 5) == 0 &&
                                memcmp(plan.data + plan.len - 7, "COMMIT\n", 7) == 0));
        check((plan.len == 0) == (!st.has_output && !st.has_prerouting && st.n_jumps == 0));
        pk_buf_free(&plan);
    }
    pk_iptables_state_clear(&st);
    free(line);
    return 0;
}
