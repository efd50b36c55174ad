/* SPDX-License-Identifier: Apache-2.0 */
/* picket: `picket cert`, operator tools for certificates. `fetch` obtains one workload
 * certificate from a Sentry, as a sidecar would, and prints (or writes) it; create-root,
 * create-issuer (cmd/cert_create.c) and inspect (cmd/cert_inspect.c) are dispatched from here. */
#include "cmd/cert.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/sentry_client.h"
#include "cmd/commands.h"
#include "cmd/flags.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/pem.h"

static void fetch_usage(FILE *out)
{
    fprintf(out,
            "usage: picket cert fetch --sentry-address HOST:PORT --app-id ID [flags]\n"
            "\n"
            "Obtain one workload certificate from Sentry exactly as a sidecar does (fresh P-256\n"
            "key in memory, CSR, SignCertificate over TLS with ALPN h2, Sentry verified by its\n"
            "SPIFFE ID), check it, and print its identity and validity.\n"
            "\n"
            "  --sentry-address HOST:PORT           Sentry's gRPC address\n"
            "  --app-id ID                          app id (env SENTRY_LOCAL_IDENTITY wins)\n"
            "  --namespace NS                       namespace (default: env NAMESPACE, else "
            "default)\n"
            "  --trust-domain TD                    trust domain to request (default: none; "
            "Sentry uses public)\n"
            "  --trust-anchors-file FILE            PEM roots (default: env DAPR_TRUST_ANCHORS)\n"
            "  --control-plane-trust-domain TD      Sentry's trust domain (default: env\n"
            "                                       DAPR_CONTROLPLANE_TRUST_DOMAIN, else "
            "localhost)\n"
            "  --control-plane-namespace NS         Sentry's namespace (default: env\n"
            "                                       DAPR_CONTROLPLANE_NAMESPACE, else default)\n"
            "  --token-file FILE                    JWT for the JWKS validator (default: env\n"
            "                                       DAPR_SENTRY_TOKEN_FILE)\n"
            "  --out-dir DIR                        also write cert.pem, key.pem (0600), "
            "bundle.pem\n"
            "  --timeout DURATION                   per-request deadline (default 10s)\n");
}

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return (v != NULL && v[0] != '\0') ? v : fallback;
}

static void format_time(time_t t, char *out, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int write_out_dir(const char *dir, const struct pk_svid *svid, struct pk_err *err)
{
    char path[4096];
    struct pk_buf key_pem;
    int r;

    pk_buf_init_secret(&key_pem, 64 * 1024);
    r = pk_fs_join(path, sizeof(path), dir, "cert.pem");
    if (r == 0) {
        r = pk_fs_write_atomic(path, svid->chain_pem.data, svid->chain_pem.len, 0644, err);
    }
    if (r == 0) {
        r = pk_fs_join(path, sizeof(path), dir, "bundle.pem");
    }
    if (r == 0) {
        r = pk_fs_write_atomic(path, svid->anchors_pem.data, svid->anchors_pem.len, 0644, err);
    }
    if (r == 0) {
        r = pk_key_to_pem(svid->key, &key_pem);
    }
    if (r == 0) {
        r = pk_fs_join(path, sizeof(path), dir, "key.pem");
    }
    if (r == 0) {
        r = pk_fs_write_atomic(path, key_pem.data, key_pem.len, 0600, err);
    }
    pk_buf_free(&key_pem);
    return r;
}

static int cert_fetch(int argc, char **argv)
{
    enum {
        O_ADDR = 256,
        O_APP,
        O_NS,
        O_TD,
        O_ANCHORS,
        O_CPTD,
        O_CPNS,
        O_TOKEN,
        O_OUT,
        O_TIMEOUT,
        O_HELP
    };
    static const struct option options[] = {
            {"sentry-address", required_argument, NULL, O_ADDR},
            {"app-id", required_argument, NULL, O_APP},
            {"namespace", required_argument, NULL, O_NS},
            {"trust-domain", required_argument, NULL, O_TD},
            {"trust-anchors-file", required_argument, NULL, O_ANCHORS},
            {"control-plane-trust-domain", required_argument, NULL, O_CPTD},
            {"control-plane-namespace", required_argument, NULL, O_CPNS},
            {"token-file", required_argument, NULL, O_TOKEN},
            {"out-dir", required_argument, NULL, O_OUT},
            {"timeout", required_argument, NULL, O_TIMEOUT},
            {"help", no_argument, NULL, O_HELP},
            {NULL, 0, NULL, 0},
    };
    struct pk_sentry_client_config cfg = {
            .control_plane_trust_domain = env_or("DAPR_CONTROLPLANE_TRUST_DOMAIN", "localhost"),
            .control_plane_namespace = env_or("DAPR_CONTROLPLANE_NAMESPACE", "default"),
            .namespace_ = env_or("NAMESPACE", "default"),
            .token_file = getenv("DAPR_SENTRY_TOKEN_FILE"),
            .timeout = 10.0,
    };
    const char *anchors_file = NULL;
    const char *out_dir = NULL;
    const char *app_flag = NULL;
    struct pk_buf anchors;
    struct pk_svid *svid = NULL;
    struct pk_err err;
    char nb[32], na[32];
    int status = 1;
    int c;

    pk_err_clear(&err);
    pk_buf_init(&anchors, 1024 * 1024);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long_only(argc, argv, "", options, NULL)) != -1) {
        switch (c) {
        case O_ADDR:
            cfg.address = optarg;
            break;
        case O_APP:
            app_flag = optarg;
            break;
        case O_NS:
            cfg.namespace_ = optarg;
            break;
        case O_TD:
            cfg.trust_domain = optarg;
            break;
        case O_ANCHORS:
            anchors_file = optarg;
            break;
        case O_CPTD:
            cfg.control_plane_trust_domain = optarg;
            break;
        case O_CPNS:
            cfg.control_plane_namespace = optarg;
            break;
        case O_TOKEN:
            cfg.token_file = optarg;
            break;
        case O_OUT:
            out_dir = optarg;
            break;
        case O_TIMEOUT:
            if (pk_flag_duration("--timeout", optarg, &cfg.timeout) != 0) {
                return 2;
            }
            break;
        case O_HELP:
            fetch_usage(stdout);
            return 0;
        default:
            fprintf(stderr, "picket cert fetch: unknown flag or missing value: '%s'\n",
                    argv[optind - 1]);
            fetch_usage(stderr);
            return 2;
        }
    }
    /* daprd's order: SENTRY_LOCAL_IDENTITY overrides --app-id. */
    cfg.app_id = env_or("SENTRY_LOCAL_IDENTITY", app_flag);
    if (cfg.address == NULL || cfg.app_id == NULL) {
        fprintf(stderr, "picket cert fetch: --sentry-address and --app-id are required\n");
        return 2;
    }
    if (cfg.token_file != NULL && cfg.token_file[0] == '\0') {
        fprintf(stderr, "picket cert fetch: DAPR_SENTRY_TOKEN_FILE is set but empty\n");
        return 2;
    }
    /* With a token, ask for the JWKS validator (3) as daprd does outside Kubernetes. */
    cfg.token_validator = cfg.token_file != NULL ? 3 : 0;
    if (anchors_file != NULL) {
        if (pk_fs_read_file(anchors_file, 1024 * 1024, &anchors, &err) != 0) {
            goto out;
        }
    } else if (getenv("DAPR_TRUST_ANCHORS") != NULL && getenv("DAPR_TRUST_ANCHORS")[0] != '\0') {
        if (pk_buf_append_str(&anchors, getenv("DAPR_TRUST_ANCHORS")) != 0) {
            pk_err_set(&err, PK_E_TOOBIG, "DAPR_TRUST_ANCHORS is too large");
            goto out;
        }
    } else {
        pk_err_set(&err, PK_E_INVALID,
                   "trust anchors are required: give --trust-anchors-file or set "
                   "DAPR_TRUST_ANCHORS");
        goto out;
    }
    cfg.anchors_pem = anchors.data;
    cfg.anchors_pem_len = anchors.len;

    if (pk_sentry_fetch_sync(&cfg, &svid, &err) != 0) {
        goto out;
    }
    if (out_dir != NULL && write_out_dir(out_dir, svid, &err) != 0) {
        goto out;
    }
    format_time(svid->not_before, nb, sizeof(nb));
    format_time(svid->not_after, na, sizeof(na));
    {
        long left = (long)(svid->not_after - time(NULL));
        printf("spiffe_id: %s\nserial: %s\nnot_before: %s\nnot_after: %s (expires in %ldh "
               "%02ldm)\nchain: %zu certificate%s\n",
               svid->spiffe_id, svid->serial_hex, nb, na, left / 3600, (left % 3600) / 60,
               svid->chain.n, svid->chain.n == 1 ? "" : "s");
    }
    status = 0;
out:
    if (status != 0) {
        fprintf(stderr, "picket cert fetch: %s\n", err.msg[0] ? err.msg : "failed");
    }
    pk_svid_free(svid);
    pk_buf_free(&anchors);
    return status;
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} cert_commands[] = {
        {"fetch", cert_fetch, "obtain a workload certificate from Sentry and show it"},
        {"create-root", pk_cmd_cert_create_root, "create a root certificate and key (ca.crt)"},
        {"create-issuer", pk_cmd_cert_create_issuer,
         "create an issuer certificate and key signed by a root (issuer.crt, issuer.key)"},
        {"inspect", pk_cmd_cert_inspect, "show the certificates of a PEM file, check the chain"},
};

static void cert_usage(FILE *out)
{
    fprintf(out, "usage: picket cert <command> [flags]\n\ncommands:\n");
    for (size_t i = 0; i < PK_ARRAY_LEN(cert_commands); i++) {
        fprintf(out, "  %-14s %s\n", cert_commands[i].name, cert_commands[i].summary);
    }
    fprintf(out, "\nRun `picket cert <command> --help` for a command's flags.\n");
}

int pk_cmd_cert(int argc, char **argv)
{
    if (argc < 2) {
        cert_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        cert_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < PK_ARRAY_LEN(cert_commands); i++) {
        if (strcmp(argv[1], cert_commands[i].name) == 0) {
            return cert_commands[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "picket cert: unknown command '%s'\n\n", argv[1]);
    cert_usage(stderr);
    return 2;
}
