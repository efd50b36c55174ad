/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the configuration of `picket run`, from picket.ini (inih), Dapr's environment variables
 * and daprd-style flags.
 *
 * Precedence, highest first: flags > environment > file > defaults. Each layer is checked as it
 * is applied, so an error names its source: "picket.ini:7: [agent] renew_at: ...", "NAMESPACE:
 * ...", "--app-id: ...". After merging, cross-field rules are checked: an app id and trust
 * anchors are required, and either a Sentry address or a static certificate and key. A Sentry
 * address with [agent] cert_file/key_file is an error; with DAPR_CERT_CHAIN/DAPR_CERT_KEY those
 * are dropped (daprd 1.14+ ignores them too). The result never changes: a reload loads a new one
 * and swaps it in only when it is valid.
 *
 * The file: sections [agent], [sentry], [admin], [log], [proxy] and [iptables], plus any number
 * of listener sections [inbound NAME], [outbound NAME] and [transparent NAME], with `key = value`
 * lines; `;` or `#` start a
 * comment line, and ` ;` (a semicolon after a blank) starts a comment at the end of a value.
 * Unknown sections, unknown keys, a key given twice (except the repeatable allow_* keys of an
 * inbound section), an empty or badly typed value, an indented line (inih would glue it to the
 * previous value), a NUL byte, and a line longer than PK_AGENT_CONFIG_MAX_LINE bytes are errors
 * that name the file and line. The long-line check is ours: Debian's libinih reads lines into a
 * 200-byte buffer and would silently cut the value.
 *
 * Listeners exist only in the file (no flag or variable makes one). An inbound listener accepts
 * mTLS from other apps and forwards plain bytes to its target (our app); an outbound listener
 * accepts plain connections from our app and forwards them over mTLS to its target (another
 * app's sidecar). A transparent listener accepts our app's connections that the firewall
 * redirected to it (`picket iptables`), reads where each was going (SO_ORIGINAL_DST) and
 * forwards it there over mTLS, expecting the identity its map line names. Every value is checked
 * when the file is read, and so are the listen addresses together: two listeners (or a listener
 * and the admin endpoint) that would take the same connections are an error naming both lines,
 * found before any socket is bound.
 *
 * Booleans are true/false, yes/no, on/off or 1/0 (any case); durations are Go durations ("10s",
 * "1m30s"); fractions are decimals between 0 and 1 ("0.5"). */
#ifndef PK_AGENT_CONFIG_H
#define PK_AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "common/err.h"

/* The longest line of picket.ini, not counting its line ending: inih's 200-byte buffer less
 * CR, LF and NUL. */
#define PK_AGENT_CONFIG_MAX_LINE 197

/* The largest picket.ini read. */
#define PK_AGENT_CONFIG_MAX_FILE (1024 * 1024)

/* The most listener sections a file may have: each costs a socket per worker. */
#define PK_AGENT_CONFIG_MAX_LISTENERS 256

/* The longest NAME of [inbound NAME] or [outbound NAME]. */
#define PK_AGENT_CONFIG_MAX_NAME 48

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
    size_t n_intercept_port;
    /* transparent only: outbound connections redirected here by the firewall */
    char **map; /* key map, repeatable: CIDR [PORTS] ACTION (common/dstmap.h), checked */
    size_t n_map;
    enum pk_unmapped_policy unmapped; /* key unmapped: deny (default) or passthrough */
    char **intercept; /* key intercept, repeatable: CIDR [PORTS] to redirect here; none = the
                       * destinations of the map lines */
    size_t n_intercept;
    char **exclude; /* key exclude, repeatable: CIDR [PORTS] never redirected */
    size_t n_exclude;
    /* outbound: the server's identity: expect_spiffe_id, or expect_app_id (+ expect_namespace,
     * default: our namespace) in our trust domain. Exactly one form is required. */
    char *expect_spiffe_id;  /* key expect_spiffe_id: a valid SPIFFE ID */
    char *expect_app_id;     /* key expect_app_id */
    char *expect_namespace;  /* key expect_namespace: only with expect_app_id; NULL = ours */
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

struct pk_agent_config {
    /* [agent] */
    char *app_id;       /* key app_id; flag --app-id; env APP_ID */
    char *request_id;   /* the id sent to Sentry: env SENTRY_LOCAL_IDENTITY if set, else app_id */
    char *namespace_;   /* key namespace; env NAMESPACE; default "default" */
    char *trust_domain; /* key trust_domain; flag --trust-domain; the trust domain to request;
                         * NULL = send none (Sentry then uses "public") */
    double renew_fraction; /* key renew_at: renew at this fraction of the lifetime; default 0.5,
                            * 0.05 to 0.95 */
    double renew_jitter;   /* key renew_jitter: +/- this fraction of the lifetime; default 0.10,
                            * 0 to 0.25; renew_fraction +/- renew_jitter stays inside (0, 1) */
    double retry_initial; /* key retry_initial: first backoff after a failure, seconds; default 1 */
    double retry_max;     /* key retry_max: backoff cap, seconds; default 120; >= retry_initial */
    long initial_attempts;  /* key initial_attempts: 0 = retry the first fetch forever (default);
                             * N = exit after N failed first fetches (daprd exits after one) */
    double request_timeout; /* key request_timeout: per Sentry request, seconds; default 10 */
    char *cert_file;        /* key cert_file: static identity, certificate chain (PEM file) */
    char *key_file;         /* key key_file: static identity, private key (PEM file) */
    char *cert_pem;         /* env DAPR_CERT_CHAIN: PEM contents (replaces cert_file) */
    char *key_pem;          /* env DAPR_CERT_KEY: PEM contents (replaces key_file); wiped on free */
    bool allow_tls12;       /* key allow_tls12; default false (TLS 1.3 only) */
    char *export_dir;       /* key export_dir; NULL = no export */
    char *export_command;   /* key export_command: run with /bin/sh -c after each export */
    char *export_pid_file;  /* key export_pid_file: signal this pid after each export */
    int export_signal;      /* key export_signal: HUP, USR1, ... (with or without SIG); SIGHUP */
    /* [sentry] */
    char *sentry_address;     /* key address; flag --sentry-address; NULL = static mode */
    char *trust_anchors_file; /* key trust_anchors_file; flag --trust-anchors-file;
                               * env DAPR_TRUST_ANCHORS_FILE */
    char *trust_anchors_pem;  /* env DAPR_TRUST_ANCHORS (PEM contents); used with the file */
    char *control_plane_trust_domain; /* key control_plane_trust_domain; flag
                                       * --control-plane-trust-domain; env
                                       * DAPR_CONTROLPLANE_TRUST_DOMAIN; default "localhost" */
    char *control_plane_namespace;    /* key control_plane_namespace; flag
                                       * --control-plane-namespace; env
                                       * DAPR_CONTROLPLANE_NAMESPACE; default "default" */
    char *token_file;                 /* key token_file; env DAPR_SENTRY_TOKEN_FILE */
    bool adopt_sentry_anchors; /* key adopt_trust_chain: also trust the roots Sentry returns */
    /* [admin] */
    char *admin_listen; /* key listen: "127.0.0.1:PORT", "[::1]:PORT" or "unix:/path"; default
                         * "127.0.0.1:9901"; "" or "off" = no admin endpoint */
    /* [log] */
    int log_level; /* key level (enum pk_log_level); flag --log-level; default info */
    bool log_json; /* key json; flag --log-as-json; default false */
    /* [proxy] */
    long workers;            /* key workers: proxy threads; 0 = one per core (default); 0 to 256 */
    double shutdown_timeout; /* key shutdown_timeout: on exit, how long open connections may
                              * finish, seconds; default 10; 0 to 24h */
    long mark; /* key mark: SO_MARK set on every socket picket connects (proxy and Sentry
                * client), so the firewall can leave them alone; 0 = none (default); 1 to
                * 0xffffffff, decimal or 0x hex */
    /* [iptables] */
    long exclude_uid; /* key exclude_uid: connections of this uid are not redirected; -1 = none */
    long exclude_gid; /* key exclude_gid: the same for a gid; -1 = none */
    /* [inbound NAME], [outbound NAME] and [transparent NAME], in the order of the file */
    struct pk_listener_config *listeners;
    size_t n_listeners;
    /* where it came from */
    char *config_file; /* the -c/--config path, NULL if none */
};

/* Build the configuration of `picket run` from its arguments (borrowed; argv[0] is "run"), the
 * environment env (borrowed; a NULL-terminated array of "NAME=value" strings: pass `environ`)
 * and the file named by -c/--config, if any. Flags are --app-id, --sentry-address,
 * --control-plane-trust-domain, --control-plane-namespace, --trust-domain, --trust-anchors-file,
 * -c/--config, --log-level, --log-as-json[=BOOL] and -h/--help, each as `--flag value`,
 * `--flag=value` or daprd's `-flag value`.
 *
 * On success writes a new configuration to *out (the caller owns it: pk_agent_config_free) and
 * returns 0. When --help is given, sets *help_out, writes NULL to *out and returns 0 without
 * reading the file or checking anything: the caller prints pk_agent_config_help(). Otherwise
 * *help_out is false.
 *
 * Errors: PK_E_NOTFOUND when the -c file does not exist; PK_E_INVALID for anything else that is
 * wrong (unknown flag, stray argument, bad value, missing setting, a file that cannot be read);
 * err (may be NULL) says what and where. *out is then untouched.
 *
 * Blocks on reading the file. Not thread-safe: uses getopt's globals. */
int pk_agent_config_load(int argc, char **argv, char *const *env, struct pk_agent_config **out,
                         bool *help_out, struct pk_err *err) PK_MUST_USE;

/* Free a configuration and everything it owns; the private key contents are wiped first. NULL is
 * fine. */
void pk_agent_config_free(struct pk_agent_config *cfg);

/* The full --help text: usage, flags, every section and key of picket.ini with its default, the
 * environment variables and the precedence. Static storage, built on the first call (not
 * thread-safe). */
const char *pk_agent_config_help(void);

/* Append the reference of every section and key of picket.ini to out, made from the same tables
 * the parser uses (names, value kinds, the defaults of a new configuration, which keys need a
 * restart), so it cannot drift from what is parsed: Markdown tables for the README when markdown
 * is true, else the plain text of --help. 0 or PK_E_TOOBIG (out's cap). */
int pk_agent_config_reference(bool markdown, struct pk_buf *out) PK_MUST_USE;

/* Parse len bytes of INI text (borrowed; need not be NUL-terminated) named name (borrowed; used
 * in messages) on top of into (borrowed): the keys the text sets replace those fields of into,
 * the others stay; a text with listener sections replaces into's listeners with its own, and one
 * without leaves them. Checks each value and the rules between keys of the file (renew_at +/-
 * renew_jitter, retry_max >= retry_initial, each listener's required and exclusive keys) but
 * not the rules that need the other layers (a required app id, anchors, identity source).
 * Returns 0, or PK_E_INVALID with err saying "NAME:LINE: [section] key: what is wrong"; into is
 * then unchanged. Never blocks. */
int pk_agent_config_parse_ini(const char *text, size_t len, const char *name,
                              struct pk_agent_config *into, struct pk_err *err) PK_MUST_USE;

/* The settings that SIGHUP cannot apply (they define the identity, its sources, the admin
 * address or the worker threads): how many differ between running and next, with their names
 * ("[agent] app_id, [admin] listen") written to out (borrowed, out_len bytes, cut to fit). */
size_t pk_agent_config_restart_changes(const struct pk_agent_config *running,
                                       const struct pk_agent_config *next, char *out,
                                       size_t out_len);

/* "inbound", "outbound" or "transparent": the word of the section header. */
const char *pk_listener_kind_name(enum pk_listener_kind kind);

/* Deep-copy src into dst (which owns the copies afterwards: pk_listener_config_clear). */
void pk_listener_config_copy(struct pk_listener_config *dst, const struct pk_listener_config *src);

/* True when every setting of a and b is the same (lists in the same order). */
bool pk_listener_config_equal(const struct pk_listener_config *a,
                              const struct pk_listener_config *b);

/* Free what lc owns and zero it (lc itself is not freed). NULL is fine. */
void pk_listener_config_clear(struct pk_listener_config *lc);

/* A new configuration holding the defaults (no app id, anchors, identity source or listeners).
 * Never NULL. */
struct pk_agent_config *pk_agent_config_new(void);

#endif
