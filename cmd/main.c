/* SPDX-License-Identifier: Apache-2.0 */
/* picket: command dispatch. Started as `sentry` (argv[0]) it is `picket sentry`, so that Dapr's
 * documented command lines (./sentry --issuer-credentials ...) work unchanged. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmd/commands.h"
#include "common/compiler.h"
#include "common/procmetrics.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
        {"run", pk_cmd_run, "run the sidecar: workload identity from Sentry or files"},
        {"sentry", pk_cmd_sentry, "run a Sentry-compatible certificate authority"},
        {"cert", pk_cmd_cert,
         "certificate tools: create a root and an issuer, inspect, fetch from Sentry"},
        {"status", pk_cmd_status, "show what a running sidecar holds; non-zero when not ready"},
        {"demo", pk_cmd_demo,
         "Sentry, two sidecars and an app on this machine, certificates "
         "rotating under traffic"},
        {"iptables", pk_cmd_iptables,
         "install, remove or show the transparent-mode firewall rules"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: picket <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < PK_ARRAY_LEN(commands); i++) {
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(out, "  %-8s %s\n", "version", "print the version");
    fprintf(out, "\nRun `picket <command> --help` for a command's options.\n");
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

int main(int argc, char **argv)
{
    /* A peer that goes away must never kill the process: writes report EPIPE instead. */
    signal(SIGPIPE, SIG_IGN);
    pk_process_metrics_init();

    if (argc > 0 && strcmp(base_name(argv[0]), "sentry") == 0) {
        return pk_cmd_sentry(argc, argv);
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("picket %s\n", PK_VERSION);
        return 0;
    }
    for (size_t i = 0; i < PK_ARRAY_LEN(commands); i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            return commands[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "picket: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
