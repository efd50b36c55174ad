/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the firewall rules of transparent mode, generated from picket.ini (pure functions).
 *
 * Everything picket adds lives in two chains of its own in the nat table, PICKET_OUTPUT
 * (jumped to from OUTPUT: the app's outgoing connections) and PICKET_PREROUTING (jumped to from
 * PREROUTING: connections arriving for the app), plus one jump rule each. Removing those two
 * jumps and chains therefore leaves every other rule as it was.
 *
 * PICKET_OUTPUT, for the [transparent NAME] listeners of one address family, in this order:
 *   -o lo -j RETURN                      local traffic is never intercepted
 *   -m mark --mark M -j RETURN           picket's own connections ([proxy] mark)
 *   -m owner --uid-owner U -j RETURN     ... and those of its user / group ([iptables])
 *   -m owner --gid-owner G -j RETURN
 *   -d CIDR -p tcp [--dport P] -j RETURN                   every exclude line
 *   -d CIDR -p tcp [--dport P] -j REDIRECT --to-ports L    every intercept line (by default
 *                                                          every map line's destination)
 * PICKET_PREROUTING, for the [inbound NAME] listeners with intercept_port:
 *   -p tcp --dport P -j REDIRECT --to-ports L
 * A listener's family is its listen address's: IPv4 rules go to iptables, IPv6 rules to
 * ip6tables. Rules are written the way `iptables -S' prints them, so what is installed reads
 * back identically.
 *
 * Applying them is one `iptables-restore --noflush' input per family (atomic per table, with
 * iptables-nft and iptables-legacy alike): declaring a chain creates it or flushes it, the
 * rules follow, a missing jump is inserted first in its built-in chain, stray or duplicate
 * jumps to our chains are deleted, and chains no longer wanted are deleted. The current state
 * comes from `iptables -t nat -S'. So installing twice changes nothing the second time, and
 * removing is the same plan with nothing wanted. */
#ifndef PK_SIDECAR_IPTABLES_H
#define PK_SIDECAR_IPTABLES_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "common/err.h"
#include "sidecar/config.h"

#define PK_IPTABLES_OUTPUT     "PICKET_OUTPUT"
#define PK_IPTABLES_PREROUTING "PICKET_PREROUTING"

/* The largest `iptables -S' output read, and the most jump lines kept from it. */
#define PK_IPTABLES_MAX_STATE (4 * 1024 * 1024)
#define PK_IPTABLES_MAX_JUMPS 64

/* What `iptables -t nat -S' shows of picket's chains. */
struct pk_iptables_state {
    bool has_output;     /* -N PICKET_OUTPUT */
    bool has_prerouting; /* -N PICKET_PREROUTING */
    /* each rule of another chain that jumps to one of ours, as printed minus its "-A " */
    char *jumps[PK_IPTABLES_MAX_JUMPS];
    size_t n_jumps;
};

/* Parse len bytes of `iptables -t nat -S' output (borrowed; need not be NUL-terminated) into
 * *out (the caller clears it with pk_iptables_state_clear, on failure too). PK_E_TOOBIG for more
 * than PK_IPTABLES_MAX_STATE bytes or PK_IPTABLES_MAX_JUMPS jumps, PK_E_INVALID for a NUL byte;
 * err says which. Lines that are not ours are skipped. */
int pk_iptables_state_parse(const char *text, size_t len, struct pk_iptables_state *out,
                            struct pk_err *err) PK_MUST_USE;

/* Free what a state owns and empty it. */
void pk_iptables_state_clear(struct pk_iptables_state *st);

/* The rules cfg (borrowed) wants for family (4 or 6), one `-A CHAIN ...' line each, appended to
 * out; *want_output / *want_prerouting say whether each chain is wanted at all (it may be wanted
 * with rules only of its fixed head). PK_E_INVALID (err names the listener) for a listen
 * address that is not IP:PORT; PK_E_TOOBIG when out's cap is reached. */
int pk_iptables_rules(const struct pk_sidecar_config *cfg, int family, struct pk_buf *out,
                      bool *want_output, bool *want_prerouting, struct pk_err *err) PK_MUST_USE;

/* The iptables-restore --noflush input that turns st into rules (the output of
 * pk_iptables_rules, with its want_* flags), appended to out; nothing at all when st already
 * has no trace of picket and nothing is wanted. rules NULL with both flags false removes
 * everything picket added. PK_E_TOOBIG when out's cap is reached. */
int pk_iptables_plan(const struct pk_iptables_state *st, const struct pk_buf *rules,
                     bool want_output, bool want_prerouting, struct pk_buf *out) PK_MUST_USE;

#endif
