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
 * previous value), a NUL byte, and a line longer than PK_SIDECAR_CONFIG_MAX_LINE bytes are errors
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
#ifndef PK_SIDECAR_CONFIG_H
#define PK_SIDECAR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "agent/config.h"
#include "common/buf.h"
#include "common/compiler.h"
#include "common/err.h"
#include "proxy/listener.h"
#include "proxy/proxy.h"

/* The longest line of picket.ini, not counting its line ending: inih's 200-byte buffer less
 * CR, LF and NUL. */
#define PK_SIDECAR_CONFIG_MAX_LINE 197

/* The largest picket.ini read. */
#define PK_SIDECAR_CONFIG_MAX_FILE (1024 * 1024)

/* The most listener sections a file may have: each costs a socket per worker. */
#define PK_SIDECAR_CONFIG_MAX_LISTENERS 256

/* The longest NAME of [inbound NAME] or [outbound NAME]. */
#define PK_SIDECAR_CONFIG_MAX_NAME 48

struct pk_sidecar_config {
    struct pk_agent_config agent; /* [agent], [sentry] and [proxy] mark */
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
    /* [dns] */
    char *dns_servers;  /* key servers: "IP:PORT,..."; NULL = /etc/resolv.conf's */
    double dns_ttl_min; /* key ttl_min: seconds; default 1 */
    double dns_ttl_max; /* key ttl_max: seconds; default 300; >= ttl_min */
    double dns_timeout; /* key timeout: seconds; default 2 */
    /* [iptables] */
    long exclude_uid; /* key exclude_uid: connections of this uid are not redirected; -1 = none */
    long exclude_gid; /* key exclude_gid: the same for a gid; -1 = none */
    /* [inbound NAME], [outbound NAME] and [transparent NAME], in the order of the file */
    struct pk_listener_config *listeners;
    size_t n_listeners;
    /* where it came from */
    char *config_file; /* the -c/--config path, NULL if none */
    bool check_only;   /* --check: validate everything, bind and start nothing, exit */
};

/* Build the configuration of `picket run` from its arguments (borrowed; argv[0] is "run"), the
 * environment env (borrowed; a NULL-terminated array of "NAME=value" strings: pass `environ`)
 * and the file named by -c/--config, if any. Flags are --app-id, --sentry-address,
 * --control-plane-trust-domain, --control-plane-namespace, --trust-domain, --trust-anchors-file,
 * -c/--config, --log-level, --log-as-json[=BOOL] and -h/--help, each as `--flag value`,
 * `--flag=value` or daprd's `-flag value`.
 *
 * On success writes a new configuration to *out (the caller owns it: pk_sidecar_config_free) and
 * returns 0. When --help is given, sets *help_out, writes NULL to *out and returns 0 without
 * reading the file or checking anything: the caller prints pk_sidecar_config_help(). Otherwise
 * *help_out is false.
 *
 * Errors: PK_E_NOTFOUND when the -c file does not exist; PK_E_INVALID for anything else that is
 * wrong (unknown flag, stray argument, bad value, missing setting, a file that cannot be read);
 * err (may be NULL) says what and where. *out is then untouched.
 *
 * Blocks on reading the file. Not thread-safe: uses getopt's globals. */
int pk_sidecar_config_load(int argc, char **argv, char *const *env, struct pk_sidecar_config **out,
                           bool *help_out, struct pk_err *err) PK_MUST_USE;

/* Free a configuration and everything it owns; the private key contents are wiped first. NULL is
 * fine. */
void pk_sidecar_config_free(struct pk_sidecar_config *cfg);

/* The full --help text: usage, flags, every section and key of picket.ini with its default, the
 * environment variables and the precedence. Static storage, built on the first call (not
 * thread-safe). */
const char *pk_sidecar_config_help(void);

/* Append the reference of every section and key of picket.ini to out, made from the same tables
 * the parser uses (names, value kinds, the defaults of a new configuration, which keys need a
 * restart), so it cannot drift from what is parsed: Markdown tables for the README when markdown
 * is true, else the plain text of --help. 0 or PK_E_TOOBIG (out's cap). */
int pk_sidecar_config_reference(bool markdown, struct pk_buf *out) PK_MUST_USE;

/* Parse len bytes of INI text (borrowed; need not be NUL-terminated) named name (borrowed; used
 * in messages) on top of into (borrowed): the keys the text sets replace those fields of into,
 * the others stay; a text with listener sections replaces into's listeners with its own, and one
 * without leaves them. Checks each value and the rules between keys of the file (renew_at +/-
 * renew_jitter, retry_max >= retry_initial, each listener's required and exclusive keys) but
 * not the rules that need the other layers (a required app id, anchors, identity source).
 * Returns 0, or PK_E_INVALID with err saying "NAME:LINE: [section] key: what is wrong"; into is
 * then unchanged. Never blocks. */
int pk_sidecar_config_parse_ini(const char *text, size_t len, const char *name,
                                struct pk_sidecar_config *into, struct pk_err *err) PK_MUST_USE;

/* The settings that SIGHUP cannot apply (they define the identity, its sources, the admin
 * address or the worker threads): how many differ between running and next, with their names
 * ("[agent] app_id, [admin] listen") written to out (borrowed, out_len bytes, cut to fit). */
size_t pk_sidecar_config_restart_changes(const struct pk_sidecar_config *running,
                                         const struct pk_sidecar_config *next, char *out,
                                         size_t out_len);

/* The proxy's view of cfg (borrowed: out points into cfg). */
void pk_sidecar_proxy_options(const struct pk_sidecar_config *cfg, struct pk_proxy_options *out);

/* A new configuration holding the defaults (no app id, anchors, identity source or listeners).
 * Never NULL. */
struct pk_sidecar_config *pk_sidecar_config_new(void);

#endif
