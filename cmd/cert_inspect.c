/* SPDX-License-Identifier: Apache-2.0 */
/* picket: `picket cert inspect FILE [--ca FILE]`: what each certificate of a PEM file says,
 * and whether the chain it forms verifies against trusted roots now. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cmd/cert.h"
#include "cmd/cert_util.h"
#include "common/fsutil.h"
#include "common/x509.h"

static void inspect_usage(FILE *out)
{
    fprintf(out,
            "usage: picket cert inspect FILE [--ca FILE]\n"
            "\n"
            "Show each certificate of a PEM file: subject, issuer, SPIFFE ID, serial, validity,\n"
            "key type, CA constraints, key usages and SHA-256 fingerprint. With --ca, also check\n"
            "that the first certificate chains through the others to a root of that file, now.\n"
            "\n"
            "  --ca FILE     PEM file of trusted roots (e.g. ca.crt or the trust bundle)\n"
            "\n"
            "Exit status: 0 when every certificate parses (and, with --ca, the chain verifies),\n"
            "1 otherwise, 2 for bad usage.\n");
}

/* Verify certs[0] through the other certificates of the file to a root of roots. A
 * self-signed certificate of the file is never used as an intermediate: trust comes only from
 * --ca. */
static int verify(const struct pk_certs *certs, const struct pk_certs *roots, struct pk_err *err)
{
    struct pk_certs inter = {0};
    int r = 0;

    for (size_t i = 1; i < certs->n && r == 0; i++) {
        if (!pk_cert_self_signed(certs->v[i])) {
            r = pk_certs_push_copy(&inter, certs->v[i]);
        }
    }
    if (r == 0) {
        r = pk_x509_verify_chain(certs->v[0], &inter, roots, err);
    }
    pk_certs_clear(&inter);
    return r;
}

int pk_cmd_cert_inspect(int argc, char **argv)
{
    enum { O_CA = 256, O_HELP };
    static const struct option options[] = {
            {"ca", required_argument, NULL, O_CA},
            {"help", no_argument, NULL, O_HELP},
            {NULL, 0, NULL, 0},
    };
    const char *ca_path = NULL;
    const char *path;
    struct pk_certs certs = {0}, roots = {0};
    struct pk_err err;
    time_t now = time(NULL);
    int status = 1;
    int c;

    pk_err_clear(&err);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long_only(argc, argv, "", options, NULL)) != -1) {
        switch (c) {
        case O_CA:
            ca_path = optarg;
            break;
        case O_HELP:
            inspect_usage(stdout);
            return 0;
        default:
            fprintf(stderr, "picket cert inspect: unknown flag or missing value: '%s'\n",
                    argv[optind - 1]);
            inspect_usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "picket cert inspect: give exactly one FILE\n");
        inspect_usage(stderr);
        return 2;
    }
    path = argv[optind];
    if (pk_cert_util_read_certs(path, &certs, &err) != 0) {
        goto out;
    }
    if (ca_path != NULL && pk_cert_util_read_certs(ca_path, &roots, &err) != 0) {
        goto out;
    }
    for (size_t i = 0; i < certs.n; i++) {
        printf("certificate %zu of %zu (%s)\n", i + 1, certs.n, path);
        pk_cert_util_describe(stdout, certs.v[i], now);
    }
    if (ca_path == NULL) {
        status = 0;
        goto out;
    }
    if (verify(&certs, &roots, &err) != 0) {
        printf("chain: FAILED against %s: %s\n", ca_path, err.msg);
        pk_err_clear(&err);
        goto out;
    }
    printf("chain: verified against %s\n", ca_path);
    status = 0;
out:
    if (err.msg[0] != '\0') {
        fprintf(stderr, "picket cert inspect: %s\n", err.msg);
    }
    pk_certs_clear(&certs);
    pk_certs_clear(&roots);
    return status;
}
