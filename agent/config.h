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
 * The file: sections [agent], [sentry], [admin] and [log] with `key = value` lines; `;` or `#`
 * start a comment line, and ` ;` (a semicolon after a blank) starts a comment at the end of a
 * value. Unknown sections, unknown keys, a key given twice, a value of the wrong type, an indented
 * line (inih would glue it to the previous value), a NUL byte, and a line longer than
 * PK_AGENT_CONFIG_MAX_LINE bytes are errors that name the file and line. The long-line check is
 * ours: Debian's libinih reads lines into a 200-byte buffer and would silently cut the value.
 *
 * Booleans are true/false, yes/no, on/off or 1/0 (any case); durations are Go durations ("10s",
 * "1m30s"); fractions are decimals between 0 and 1 ("0.5"). */
#ifndef PK_AGENT_CONFIG_H
#define PK_AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "common/compiler.h"
#include "common/err.h"

/* The longest line of picket.ini, not counting its line ending: inih's 200-byte buffer less
 * CR, LF and NUL. */
#define PK_AGENT_CONFIG_MAX_LINE 197

/* The largest picket.ini read. */
#define PK_AGENT_CONFIG_MAX_FILE (1024 * 1024)

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
 * environment variables and the precedence. Static storage. */
const char *pk_agent_config_help(void);

/* Parse len bytes of INI text (borrowed; need not be NUL-terminated) named name (borrowed; used
 * in messages) on top of into (borrowed): the keys the text sets replace those fields of into,
 * the others stay. Checks each value and the rules between keys of the file (renew_at +/-
 * renew_jitter, retry_max >= retry_initial) but not the rules that need the other layers (a
 * required app id, anchors, identity source). Returns 0, or PK_E_INVALID with err saying
 * "NAME:LINE: [section] key: what is wrong"; into is then unchanged. Never blocks. */
int pk_agent_config_parse_ini(const char *text, size_t len, const char *name,
                              struct pk_agent_config *into, struct pk_err *err) PK_MUST_USE;

/* A new configuration holding the defaults (no app id, anchors or identity source). Never NULL. */
struct pk_agent_config *pk_agent_config_new(void);

#endif
