/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the `picket sentry` process — a Sentry-compatible CA on one libev loop.
 *
 * It loads (or generates) the issuer credentials, issues its own server certificate for
 * spiffe://<trust-domain>/ns/<namespace>/dapr-sentry and renews it at half its life, serves
 * dapr.proto.sentry.v1.CA/SignCertificate over gRPC (TLS, ALPN h2), /healthz and Prometheus
 * /metrics over HTTP, and reloads the credentials when their files change: a new set is
 * validated first and a bad one is refused while the old one keeps serving. */
#ifndef PK_SENTRY_SERVER_H
#define PK_SENTRY_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/key.h"
#include "sentry/request.h"

struct pk_sentry_options {
    const char *credentials_dir; /* --issuer-credentials */
    const char *ca_filename;     /* --issuer-ca-filename */
    const char *cert_filename;   /* --issuer-certificate-filename */
    const char *key_filename;    /* --issuer-key-filename */
    const char *trust_domain;    /* --trust-domain */
    /* The trust domains signed for: --trust-domain, "public" and --allowed-trust-domains
     * (borrowed); NULL for the first two. */
    const struct pk_sentry_trust_domains *allowed_trust_domains;
    bool allow_insecure_control_plane_ids; /* --allow-insecure-control-plane-ids */
    const char *namespace_;                /* env NAMESPACE */
    const char *config_path;               /* --config; NULL for the defaults */
    const char *listen_address;            /* --listen-address; "" for all interfaces */
    uint16_t port;                         /* --port */
    const char *healthz_address;           /* --healthz-listen-address */
    uint16_t healthz_port;                 /* --healthz-port */
    bool enable_metrics;                   /* --enable-metrics */
    const char *metrics_address;           /* --metrics-listen-address */
    uint16_t metrics_port;                 /* --metrics-port */
    enum pk_key_type key_type;             /* --key-type: for generated credentials */
    double reload_delay; /* seconds of quiet after a file change before reloading */
    /* --mode kubernetes: the KUBERNETES validator, through the API server below. */
    bool kubernetes;
    const char *kube_host;             /* env KUBERNETES_SERVICE_HOST */
    const char *kube_port;             /* env KUBERNETES_SERVICE_PORT */
    const char *kube_token_file;       /* --kube-token-file */
    const char *kube_ca_file;          /* --kube-ca-file */
    const char *kube_tls_server_name;  /* --kube-tls-server-name */
    const char *kube_client_cert_file; /* --kube-client-certificate-file, or NULL */
    const char *kube_client_key_file;  /* --kube-client-key-file, or NULL */
};

/* Run until SIGTERM or SIGINT. Returns the process exit status: 0 after a clean stop,
 * PK_EXIT_CONFIG (2) when a flag value or the --config file is wrong, 1 when start-up failed
 * otherwise (credentials, sockets); the reason has been logged. */
int pk_sentry_run(const struct pk_sentry_options *opts);

#endif
