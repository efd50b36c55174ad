/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the settings of one proxy listener, as the proxy takes them from its configuration
 * ([inbound NAME], [outbound NAME] and [transparent NAME] of picket.ini, sidecar/config.h), and
 * the plain operations on them the proxy needs: copy, compare, clear. */
#ifndef PK_PROXY_LISTENER_H
#define PK_PROXY_LISTENER_H

#include <stdbool.h>
#include <stddef.h>

#include "common/addr.h"
#include "common/addrset.h"
#include "common/dstmap.h"
#include "proxy/policy.h"

enum pk_listener_kind { PK_LISTENER_INBOUND, PK_LISTENER_OUTBOUND, PK_LISTENER_TRANSPARENT };

/* What a transparent listener does with a destination no map line covers. */
enum pk_unmapped_policy { PK_UNMAPPED_DENY, PK_UNMAPPED_PASSTHROUGH };

/* One [inbound NAME], [outbound NAME] or [transparent NAME] section. Addresses are "HOST:PORT" with
 * a numeric IPv4 host or "localhost", "[V6]:PORT", or "unix:/absolute/path"; ports are 1 to 65535.
 * Every string is owned by the configuration that holds the listener. */
struct pk_listener_config {
    enum pk_listener_kind kind;
    char *name;   /* the NAME of [inbound NAME]: 1 to 48 of [A-Za-z0-9_.-], unique in the file */
    char *listen; /* key listen: where to accept; required */
    char *target; /* key target: where to connect; required (transparent: none, the
                   * original destination is the target) */
    struct pk_addr listen_addr; /* listen, parsed: what the proxy binds */
    struct pk_addr target_addr; /* target, parsed: what the proxy connects to (sa_len 0 when
                                 * there is no target, or it is a DNS name) */
    struct pk_addrset_slot *target_slot; /* a DNS name's target: where its answers are published
                                          * (borrowed; picket run's resolver owns it and outlives
                                          * the proxy); NULL otherwise */
    /* inbound: authorization, each key repeatable (every line adds a rule; all rules are OR-ed);
     * values kept as written, checked here; no rule at all = peers of our own trust domain */
    char **allow_trust_domain; /* key allow_trust_domain: a trust domain */
    size_t n_allow_trust_domain;
    char **allow_namespace; /* key allow_namespace: a namespace of our trust domain */
    size_t n_allow_namespace;
    char **allow_app_id; /* key allow_app_id: "APP" (our namespace) or "NS/APP" */
    size_t n_allow_app_id;
    char **allow_spiffe_id; /* key allow_spiffe_id: spiffe://..., `*' for whole path segments
                             * (pk_spiffe_check_pattern) */
    size_t n_allow_spiffe_id;
    bool proxy_protocol;   /* inbound only: key proxy_protocol; default false */
    bool permissive;       /* inbound only: key permissive: also take plaintext (no TLS
                            * ClientHello first) and forward it as is; default false */
    char **intercept_port; /* inbound only: key intercept_port, repeatable: PORT or LO-HI;
                            * `picket iptables' redirects connections to these ports here */
    struct pk_dst *intercept_port_dst; /* intercept_port, parsed (pk_dst_parse_ports): only
                                        * the ports are meant; n_intercept_port of them */
    size_t n_intercept_port;
    /* transparent only: outbound connections redirected here by the firewall */
    char **map; /* key map, repeatable: CIDR [PORTS] ACTION (common/dstmap.h), checked */
    struct pk_dst_rule *map_rules; /* map, parsed: n_map rules in the same order */
    size_t n_map;
    enum pk_unmapped_policy unmapped; /* key unmapped: deny (default) or passthrough */
    char **intercept; /* key intercept, repeatable: CIDR [PORTS] to redirect here; none = the
                       * destinations of the map lines */
    struct pk_dst *intercept_dst; /* intercept, parsed: n_intercept destinations */
    size_t n_intercept;
    char **exclude;             /* key exclude, repeatable: CIDR [PORTS] never redirected */
    struct pk_dst *exclude_dst; /* exclude, parsed: n_exclude destinations */
    size_t n_exclude;
    /* outbound: the server's identity: expect_spiffe_id, or expect_app_id (+ expect_namespace,
     * default: our namespace) in our trust domain. Exactly one form is required. */
    char *expect_spiffe_id; /* key expect_spiffe_id: a valid SPIFFE ID */
    char *expect_app_id;    /* key expect_app_id */
    char *expect_namespace; /* key expect_namespace: only with expect_app_id; NULL = ours */
    /* inbound and outbound: the rules above in typed form, built once when the configuration is
     * loaded (inbound: allow_trust_domain, allow_namespace, allow_app_id, allow_spiffe_id in
     * that order; outbound: the one expect rule). The proxy builds its policies from these and
     * never from the strings, which are kept to be shown and compared. */
    struct pk_policy_rule *policy;
    size_t n_policy;
    char *server_name;       /* outbound: key server_name: SNI to send; NULL = none */
    bool allow_non_loopback; /* outbound: key allow_non_loopback: listen may be non-loopback
                              * (anything but 127.0.0.0/8, [::1], localhost, unix:) only with
                              * this; default false */
    /* both */
    long max_connections;     /* key max_connections; default 10000; 1 to 1000000 */
    long max_handshakes;      /* key max_handshakes: handshakes in progress; default 256; 1 to
                               * 100000 */
    double connect_timeout;   /* key connect_timeout, seconds; default 5; 1ms to 24h */
    double handshake_timeout; /* key handshake_timeout, seconds; default 10; 1ms to 24h */
    double idle_timeout;      /* key idle_timeout, seconds; default 300; 0 = none; up to 24h */
    double max_lifetime;      /* key max_lifetime, seconds; default 0 = none; up to 24h */
    size_t buffer_size;       /* key buffer_size, bytes per direction; default 16384; 1024 to
                               * 1048576 */
    bool close_on_own_expiry; /* key close_on_own_expiry: also close when our certificate of
                               * the connection expires; default false */
};

/* "inbound", "outbound" or "transparent": the word of the section header. */
const char *pk_listener_kind_name(enum pk_listener_kind kind);

/* Deep-copy src into dst (which owns the copies afterwards: pk_listener_config_clear). */
void pk_listener_config_copy(struct pk_listener_config *dst, const struct pk_listener_config *src);

/* True when every setting of a and b is the same (lists in the same order). */
bool pk_listener_config_equal(const struct pk_listener_config *a,
                              const struct pk_listener_config *b);

/* Free what lc owns and zero it (lc itself is not freed). NULL is fine. */
void pk_listener_config_clear(struct pk_listener_config *lc);

#endif
