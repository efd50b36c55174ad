/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the settings of the agent, as it takes them from its configuration (the [agent] and
 * [sentry] sections of picket.ini, [proxy] mark, Dapr's environment variables and daprd's flags:
 * sidecar/config.h reads and checks them all). The agent borrows them; they never change under
 * it: a reload hands it a new set (pk_agent_set_config). */
#ifndef PK_AGENT_CONFIG_H
#define PK_AGENT_CONFIG_H

#include <stdbool.h>

struct pk_addrset_slot;

/* Where the agent runs, as daprd's --mode: it decides which token goes to Sentry (agent/token.h).
 */
enum pk_agent_mode {
    PK_AGENT_MODE_AUTO,       /* not given: sidecar/config resolves it before the agent sees it */
    PK_AGENT_MODE_STANDALONE, /* self-hosted */
    PK_AGENT_MODE_KUBERNETES, /* in a pod: the projected service-account token, validator
                               * KUBERNETES */
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
    bool allow_static_id_mismatch; /* key allow_static_id_mismatch: accept a static certificate
                                    * whose SPIFFE ID is not app_id/namespace/trust_domain's;
                                    * default false */
    char *export_dir;              /* key export_dir; NULL = no export */
    long export_group;             /* key export_group: the gid the exported files are given (name
                                    * resolved at load); -1 = none (owner-only files) */
    char *export_command;          /* key export_command: run with /bin/sh -c after each export */
    char *export_pid_file;         /* key export_pid_file: signal this pid after each export */
    int export_signal; /* key export_signal: HUP, USR1, ... (with or without SIG); SIGHUP */
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
    bool token_file_from_env;         /* token_file came from DAPR_SENTRY_TOKEN_FILE (for
                                       * messages, which name where it was set) */
    int mode;          /* enum pk_agent_mode; key [agent] mode; flag --mode; env PICKET_MODE */
    char *secrets_dir; /* env PICKET_TEST_SECRETS_DIR (tests only); NULL = /var/run/secrets */
    struct pk_addrset_slot *sentry_slot; /* sentry_address is a DNS name: where picket run's
                                          * resolver publishes its answers (borrowed) */
    bool adopt_sentry_anchors; /* key adopt_trust_chain: also trust the roots Sentry returns */
    /* [proxy] */
    long mark; /* key mark: SO_MARK set on every socket picket connects (proxy and Sentry
                * client), so the firewall can leave them alone; 0 = none (default); 1 to
                * 0xffffffff, decimal or 0x hex */
};

#endif
