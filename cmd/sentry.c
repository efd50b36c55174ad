/* SPDX-License-Identifier: Apache-2.0 */
/* picket: `picket sentry`, a CA with the flags, files and defaults of Dapr's Sentry. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmd/commands.h"
#include "cmd/flags.h"
#include "common/log.h"
#include "kube/client.h"
#include "sentry/server.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: picket sentry [flags]   (also: sentry [flags], as Dapr's binary)\n"
            "\n"
            "A Sentry-compatible certificate authority: serves dapr.proto.sentry.v1.CA/"
            "SignCertificate\nover gRPC (TLS, ALPN h2) and signs SPIFFE workload certificates.\n"
            "\n"
            "flags (`--flag value`, `--flag=value` and `-flag value` are all accepted):\n"
            "  --issuer-credentials DIR         credentials directory "
            "(default /var/run/secrets/dapr.io/credentials)\n"
            "  --issuer-ca-filename NAME        trust anchors file (default ca.crt)\n"
            "  --issuer-certificate-filename N  issuer certificate file (default issuer.crt)\n"
            "  --issuer-key-filename NAME       issuer key file (default issuer.key)\n"
            "                                   (an absolute file name overrides the directory)\n"
            "  --trust-domain TD                trust domain of Sentry's own identity and of a\n"
            "                                   generated root (default localhost)\n"
            "  --allowed-trust-domains TD,...   trust domains signed for besides --trust-domain "
            "and\n"
            "                                   public (the default of daprd); any other is "
            "refused\n"
            "  --allow-insecure-control-plane-ids[=BOOL]\n"
            "                                   let the INSECURE validator issue dapr-placement,\n"
            "                                   dapr-scheduler, dapr-operator and dapr-injector "
            "in\n"
            "                                   NAMESPACE, for a self-hosted control plane "
            "(default\n"
            "                                   false; dapr-sentry is never issued)\n"
            "  --config FILE                    Dapr Configuration YAML (spec.mtls: "
            "workloadCertTTL,\n"
            "                                   allowedClockSkew, tokenValidators); without it "
            "the\n"
            "                                   defaults 24h and 15m apply\n"
            "  --port N                         gRPC port (default 50001)\n"
            "  --listen-address ADDR            gRPC listen address (default: all interfaces)\n"
            "  --healthz-port N                 /healthz port (default 8080)\n"
            "  --healthz-listen-address ADDR    (default: all interfaces)\n"
            "  --enable-metrics[=BOOL]          serve Prometheus /metrics (default true)\n"
            "  --metrics-port N                 /metrics port (default 9090)\n"
            "  --metrics-listen-address ADDR    (default: all interfaces)\n"
            "  --mode standalone|kubernetes     kubernetes: the KUBERNETES validator (TokenReview "
            "and\n"
            "                                   the pod, through the API server at\n"
            "                                   KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT) "
            "is\n"
            "                                   enabled and the default (default standalone)\n"
            "  --kube-token-file FILE           bearer token for the API server, re-read per "
            "request\n"
            "                                   (default " PK_KUBE_DEFAULT_TOKEN_PATH ")\n"
            "  --kube-ca-file FILE              CA of the API server (default\n"
            "                                   " PK_KUBE_DEFAULT_CA_PATH ")\n"
            "  --kube-tls-server-name NAME      DNS name the API server's certificate must carry\n"
            "                                   (default " PK_KUBE_DEFAULT_SERVER_NAME ")\n"
            "  --kube-client-certificate-file FILE, --kube-client-key-file FILE\n"
            "                                   a client certificate for the API server "
            "(optional)\n"
            "  --key-type ecdsa|ed25519         key type of a generated root and issuer "
            "(default ecdsa, P-256)\n"
            "  --log-level LEVEL                debug, info, warn, error (default info)\n"
            "  --log-as-json[=BOOL]             JSON log lines (default false)\n"
            "\n"
            "environment: NAMESPACE (default \"default\"): the namespace of Sentry's own "
            "identity,\nspiffe://<trust-domain>/ns/<NAMESPACE>/dapr-sentry.\n"
            "\n"
            "When any of the three credential files is missing, a new root and issuer are "
            "generated\n(one year, like Dapr's) and written with mode 0600. When the files "
            "change, they are\nre-validated and reloaded; a bad set is refused and the old one "
            "keeps serving.\n");
}

enum {
    OPT_CREDS = 256,
    OPT_CA_FILE,
    OPT_CERT_FILE,
    OPT_KEY_FILE,
    OPT_TRUST_DOMAIN,
    OPT_ALLOWED_TRUST_DOMAINS,
    OPT_ALLOW_INSECURE_CONTROL_PLANE_IDS,
    OPT_CONFIG,
    OPT_PORT,
    OPT_LISTEN,
    OPT_HEALTHZ_PORT,
    OPT_HEALTHZ_LISTEN,
    OPT_ENABLE_METRICS,
    OPT_METRICS_PORT,
    OPT_METRICS_LISTEN,
    OPT_MODE,
    OPT_KUBE_TOKEN,
    OPT_KUBE_CA,
    OPT_KUBE_SERVER_NAME,
    OPT_KUBE_CLIENT_CERT,
    OPT_KUBE_CLIENT_KEY,
    OPT_KEY_TYPE,
    OPT_LOG_LEVEL,
    OPT_LOG_JSON,
    OPT_HELP,
};

int pk_cmd_sentry(int argc, char **argv)
{
    static const struct option options[] = {
            {"issuer-credentials", required_argument, NULL, OPT_CREDS},
            {"issuer-ca-filename", required_argument, NULL, OPT_CA_FILE},
            {"issuer-certificate-filename", required_argument, NULL, OPT_CERT_FILE},
            {"issuer-key-filename", required_argument, NULL, OPT_KEY_FILE},
            {"trust-domain", required_argument, NULL, OPT_TRUST_DOMAIN},
            {"allowed-trust-domains", required_argument, NULL, OPT_ALLOWED_TRUST_DOMAINS},
            {"allow-insecure-control-plane-ids", optional_argument, NULL,
             OPT_ALLOW_INSECURE_CONTROL_PLANE_IDS},
            {"config", required_argument, NULL, OPT_CONFIG},
            {"port", required_argument, NULL, OPT_PORT},
            {"listen-address", required_argument, NULL, OPT_LISTEN},
            {"healthz-port", required_argument, NULL, OPT_HEALTHZ_PORT},
            {"healthz-listen-address", required_argument, NULL, OPT_HEALTHZ_LISTEN},
            {"enable-metrics", optional_argument, NULL, OPT_ENABLE_METRICS},
            {"metrics-port", required_argument, NULL, OPT_METRICS_PORT},
            {"metrics-listen-address", required_argument, NULL, OPT_METRICS_LISTEN},
            {"mode", required_argument, NULL, OPT_MODE},
            {"kube-token-file", required_argument, NULL, OPT_KUBE_TOKEN},
            {"kube-ca-file", required_argument, NULL, OPT_KUBE_CA},
            {"kube-tls-server-name", required_argument, NULL, OPT_KUBE_SERVER_NAME},
            {"kube-client-certificate-file", required_argument, NULL, OPT_KUBE_CLIENT_CERT},
            {"kube-client-key-file", required_argument, NULL, OPT_KUBE_CLIENT_KEY},
            {"key-type", required_argument, NULL, OPT_KEY_TYPE},
            {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
            {"log-as-json", optional_argument, NULL, OPT_LOG_JSON},
            {"help", no_argument, NULL, OPT_HELP},
            {NULL, 0, NULL, 0},
    };
    const char *ns = getenv("NAMESPACE");
    struct pk_sentry_options opts = {
            .credentials_dir = "/var/run/secrets/dapr.io/credentials",
            .ca_filename = "ca.crt",
            .cert_filename = "issuer.crt",
            .key_filename = "issuer.key",
            .trust_domain = "localhost",
            .namespace_ = (ns != NULL && ns[0] != '\0') ? ns : "default",
            .listen_address = "",
            .port = 50001,
            .healthz_address = "",
            .healthz_port = 8080,
            .enable_metrics = true,
            .metrics_address = "",
            .metrics_port = 9090,
            .key_type = PK_KEY_P256,
            .reload_delay = 1.0,
            .kube_host = getenv("KUBERNETES_SERVICE_HOST"),
            .kube_port = getenv("KUBERNETES_SERVICE_PORT"),
            .kube_token_file = PK_KUBE_DEFAULT_TOKEN_PATH,
            .kube_ca_file = PK_KUBE_DEFAULT_CA_PATH,
            .kube_tls_server_name = PK_KUBE_DEFAULT_SERVER_NAME,
    };
    struct pk_sentry_trust_domains allowed = {0};
    /* Every --allowed-trust-domains given adds to the list; a repeat never drops the earlier. */
    const char *allowed_flags[16];
    size_t n_allowed_flags = 0;
    struct pk_err err;
    enum pk_log_level level = PK_LOG_LEVEL_INFO;
    bool json = false;
    int c;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long_only(argc, argv, "", options, NULL)) != -1) {
        const char *name = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
        switch (c) {
        case OPT_CREDS:
            opts.credentials_dir = optarg;
            break;
        case OPT_CA_FILE:
            opts.ca_filename = optarg;
            break;
        case OPT_CERT_FILE:
            opts.cert_filename = optarg;
            break;
        case OPT_KEY_FILE:
            opts.key_filename = optarg;
            break;
        case OPT_TRUST_DOMAIN:
            opts.trust_domain = optarg;
            break;
        case OPT_ALLOWED_TRUST_DOMAINS:
            if (n_allowed_flags == PK_ARRAY_LEN(allowed_flags)) {
                fprintf(stderr,
                        "picket sentry: --allowed-trust-domains given more than %zu times; "
                        "list several trust domains in one, separated by commas\n",
                        PK_ARRAY_LEN(allowed_flags));
                return 2;
            }
            allowed_flags[n_allowed_flags++] = optarg;
            break;
        case OPT_ALLOW_INSECURE_CONTROL_PLANE_IDS:
            if (pk_flag_bool("--allow-insecure-control-plane-ids", optarg,
                             &opts.allow_insecure_control_plane_ids) != 0) {
                return 2;
            }
            break;
        case OPT_CONFIG:
            opts.config_path = optarg;
            break;
        case OPT_PORT:
            if (pk_flag_port("--port", optarg, &opts.port) != 0) {
                return 2;
            }
            break;
        case OPT_LISTEN:
            opts.listen_address = optarg;
            break;
        case OPT_HEALTHZ_PORT:
            if (pk_flag_port("--healthz-port", optarg, &opts.healthz_port) != 0) {
                return 2;
            }
            break;
        case OPT_HEALTHZ_LISTEN:
            opts.healthz_address = optarg;
            break;
        case OPT_ENABLE_METRICS:
            if (pk_flag_bool("--enable-metrics", optarg, &opts.enable_metrics) != 0) {
                return 2;
            }
            break;
        case OPT_METRICS_PORT:
            if (pk_flag_port("--metrics-port", optarg, &opts.metrics_port) != 0) {
                return 2;
            }
            break;
        case OPT_METRICS_LISTEN:
            opts.metrics_address = optarg;
            break;
        case OPT_MODE:
            if (strcmp(optarg, "standalone") == 0) {
                opts.kubernetes = false;
            } else if (strcmp(optarg, "kubernetes") == 0) {
                opts.kubernetes = true;
            } else {
                fprintf(stderr, "picket sentry: --mode: `%s' is not standalone or kubernetes\n",
                        optarg);
                return 2;
            }
            break;
        case OPT_KUBE_TOKEN:
            opts.kube_token_file = optarg;
            break;
        case OPT_KUBE_CA:
            opts.kube_ca_file = optarg;
            break;
        case OPT_KUBE_SERVER_NAME:
            opts.kube_tls_server_name = optarg;
            break;
        case OPT_KUBE_CLIENT_CERT:
            opts.kube_client_cert_file = optarg;
            break;
        case OPT_KUBE_CLIENT_KEY:
            opts.kube_client_key_file = optarg;
            break;
        case OPT_KEY_TYPE:
            if (pk_flag_key_type("--key-type", optarg, &opts.key_type) != 0) {
                return 2;
            }
            break;
        case OPT_LOG_LEVEL:
            if (pk_log_level_parse(optarg, &level) != 0) {
                fprintf(stderr,
                        "picket sentry: --log-level: '%s' is not debug, info, warn or error\n",
                        optarg);
                return 2;
            }
            break;
        case OPT_LOG_JSON:
            if (pk_flag_bool("--log-as-json", optarg, &json) != 0) {
                return 2;
            }
            break;
        case OPT_HELP:
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "picket sentry: unknown flag or missing value: '%s'\n", name);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "picket sentry: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    /* Signed for: Sentry's own trust domain, daprd's default "public", and the flag's. */
    if (pk_sentry_trust_domains_add(&allowed, opts.trust_domain, "--trust-domain", &err) != 0 ||
        pk_sentry_trust_domains_add(&allowed, PK_SENTRY_DEFAULT_REQUEST_TRUST_DOMAIN, "default",
                                    &err) != 0) {
        fprintf(stderr, "picket sentry: %s\n", err.msg);
        return 2;
    }
    for (size_t i = 0; i < n_allowed_flags; i++) {
        if (pk_sentry_trust_domains_add_list(&allowed, allowed_flags[i], "--allowed-trust-domains",
                                             &err) != 0) {
            fprintf(stderr, "picket sentry: %s\n", err.msg);
            return 2;
        }
    }
    opts.allowed_trust_domains = &allowed;
    pk_log_setup(level, json);
    return pk_sentry_run(&opts);
}
