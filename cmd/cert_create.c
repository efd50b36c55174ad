/* SPDX-License-Identifier: Apache-2.0 */
/* picket: `picket cert create-root` and `picket cert create-issuer`: the root and issuer that
 * Dapr's mTLS guide makes with OpenSSL or step, or that Sentry makes for itself
 * (sentry/ca_profile.h), with a new key or an existing one.
 *
 * Re-using the root key is what makes a root rotation free of downtime: a new root with the
 * same key and the same subject still verifies everything the old one did (SENTRY-PROTOCOL.md
 * §7, "Signed with the same private root key"). So an existing key file is never overwritten by
 * accident: --reuse-key signs with it, --force replaces it, and without either picket refuses. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/cert.h"
#include "cmd/cert_util.h"
#include "cmd/flags.h"
#include "common/fsutil.h"
#include "sentry/ca_profile.h"
#include "sentry/creds.h"

/* Dapr's allowedClockSkew default: its own generated CA certificates start this far back. */
#define SENTRY_SKEW_SECONDS (15 * 60)
/* --validity: at least a minute, at most 100 years (longer is a typo). */
#define MIN_VALIDITY 60.0
#define MAX_VALIDITY (100.0 * 365 * 86400)

struct create_opts {
    bool issuer; /* create-issuer */
    const char *cmd;
    enum pk_ca_profile profile;
    const char *trust_domain;
    const char *namespace_;
    enum pk_key_type key_type;
    bool key_type_given;
    double validity;
    const char *cert_path;
    const char *key_path;
    const char *ca_cert_path;
    const char *ca_key_path;
    bool reuse_key;
    bool force;
};

static void create_usage(FILE *out, bool issuer)
{
    if (!issuer) {
        fprintf(out,
                "usage: picket cert create-root [flags]\n"
                "\n"
                "Create a self-signed root certificate (the trust anchor, ca.crt) and its\n"
                "key. With --reuse-key the existing key signs the new root: same key and same\n"
                "subject, so certificates under the old root keep verifying (rotation\n"
                "without downtime).\n"
                "\n"
                "  --cert FILE            root certificate to write (default ca.crt)\n"
                "  --key FILE             root key to write, 0600 (default ca.key)\n");
    } else {
        fprintf(out, "usage: picket cert create-issuer [flags]\n"
                     "\n"
                     "Create an issuer certificate (issuer.crt) and key (issuer.key) signed by a\n"
                     "root, and check the three files as `picket sentry` checks its credentials.\n"
                     "\n"
                     "  --ca-cert FILE         root certificate that signs (default ca.crt)\n"
                     "  --ca-key FILE          its key (default ca.key)\n"
                     "  --cert FILE            issuer certificate to write (default issuer.crt)\n"
                     "  --key FILE             issuer key to write, 0600 (default issuer.key)\n"
                     "  --namespace NS         sentry profile: the namespace in the issuer's\n"
                     "                         subject (default: env NAMESPACE, else default)\n");
    }
    fprintf(out, "  --profile NAME         openssl (default): the OpenSSL recipe of Dapr's guide;\n"
                 "                         step: 'step certificate create --profile root-ca /\n"
                 "                         intermediate-ca'; sentry: what Sentry generates\n"
                 "  --trust-domain TD      the name in the subject (default localhost, as picket\n"
                 "                         sentry's --trust-domain)\n"
                 "  --key-type TYPE        ecdsa (P-256, default) or ed25519\n"
                 "  --validity DURATION    lifetime from now (default 8760h, one year)\n"
                 "  --reuse-key            sign with the existing --key instead of a new one\n"
                 "  --force                overwrite existing output files\n");
}

/* 0: go on; 1: --help was printed; 2: bad usage (message printed). */
static int parse_opts(int argc, char **argv, struct create_opts *o)
{
    enum {
        O_PROFILE = 256,
        O_TD,
        O_NS,
        O_KEY_TYPE,
        O_VALIDITY,
        O_CERT,
        O_KEY,
        O_CA_CERT,
        O_CA_KEY,
        O_REUSE,
        O_FORCE,
        O_HELP
    };
    static const struct option root_options[] = {
            {"profile", required_argument, NULL, O_PROFILE},
            {"trust-domain", required_argument, NULL, O_TD},
            {"key-type", required_argument, NULL, O_KEY_TYPE},
            {"validity", required_argument, NULL, O_VALIDITY},
            {"cert", required_argument, NULL, O_CERT},
            {"key", required_argument, NULL, O_KEY},
            {"reuse-key", no_argument, NULL, O_REUSE},
            {"force", no_argument, NULL, O_FORCE},
            {"help", no_argument, NULL, O_HELP},
            {NULL, 0, NULL, 0},
    };
    static const struct option issuer_options[] = {
            {"profile", required_argument, NULL, O_PROFILE},
            {"trust-domain", required_argument, NULL, O_TD},
            {"namespace", required_argument, NULL, O_NS},
            {"key-type", required_argument, NULL, O_KEY_TYPE},
            {"validity", required_argument, NULL, O_VALIDITY},
            {"cert", required_argument, NULL, O_CERT},
            {"key", required_argument, NULL, O_KEY},
            {"ca-cert", required_argument, NULL, O_CA_CERT},
            {"ca-key", required_argument, NULL, O_CA_KEY},
            {"reuse-key", no_argument, NULL, O_REUSE},
            {"force", no_argument, NULL, O_FORCE},
            {"help", no_argument, NULL, O_HELP},
            {NULL, 0, NULL, 0},
    };
    struct pk_err err;
    int c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long_only(argc, argv, "", o->issuer ? issuer_options : root_options,
                                 NULL)) != -1) {
        switch (c) {
        case O_PROFILE:
            if (pk_ca_profile_parse(optarg, &o->profile, &err) != 0) {
                fprintf(stderr, "%s: --profile: %s\n", o->cmd, err.msg);
                return 2;
            }
            break;
        case O_TD:
            o->trust_domain = optarg;
            break;
        case O_NS:
            o->namespace_ = optarg;
            break;
        case O_KEY_TYPE:
            if (pk_flag_key_type("--key-type", optarg, &o->key_type) != 0) {
                return 2;
            }
            o->key_type_given = true;
            break;
        case O_VALIDITY:
            if (pk_flag_duration("--validity", optarg, &o->validity) != 0) {
                return 2;
            }
            if (o->validity < MIN_VALIDITY || o->validity > MAX_VALIDITY) {
                fprintf(stderr, "%s: --validity: '%s' is not between 1m and 876000h\n", o->cmd,
                        optarg);
                return 2;
            }
            break;
        case O_CERT:
            o->cert_path = optarg;
            break;
        case O_KEY:
            o->key_path = optarg;
            break;
        case O_CA_CERT:
            o->ca_cert_path = optarg;
            break;
        case O_CA_KEY:
            o->ca_key_path = optarg;
            break;
        case O_REUSE:
            o->reuse_key = true;
            break;
        case O_FORCE:
            o->force = true;
            break;
        case O_HELP:
            create_usage(stdout, o->issuer);
            return 1;
        default:
            fprintf(stderr, "%s: unknown flag or missing value: '%s'\n", o->cmd, argv[optind - 1]);
            create_usage(stderr, o->issuer);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", o->cmd, argv[optind]);
        return 2;
    }
    if (o->cert_path[0] == '\0' || o->key_path[0] == '\0' ||
        (o->issuer && (o->ca_cert_path[0] == '\0' || o->ca_key_path[0] == '\0'))) {
        fprintf(stderr, "%s: a file name is empty\n", o->cmd);
        return 2;
    }
    /* With --force, writing the issuer over its own root or root key would lose the root. */
    if (strcmp(o->cert_path, o->key_path) == 0 ||
        (o->issuer &&
         (strcmp(o->cert_path, o->ca_cert_path) == 0 || strcmp(o->key_path, o->ca_key_path) == 0 ||
          strcmp(o->cert_path, o->ca_key_path) == 0 ||
          strcmp(o->key_path, o->ca_cert_path) == 0))) {
        fprintf(stderr, "%s: the output files must differ from each other and from the root's\n",
                o->cmd);
        return 2;
    }
    return 0;
}

/* Refuse to overwrite what exists, unless told to: a CA key overwritten by mistake cannot be
 * recovered, and every certificate under it would have to be replaced. */
static int check_outputs(const struct create_opts *o, struct pk_err *err)
{
    if (!o->force && pk_fs_exists(o->cert_path)) {
        return pk_err_set(err, PK_E_INVALID, "%s exists; pass --force to replace it", o->cert_path);
    }
    if (o->reuse_key) {
        if (!pk_fs_exists(o->key_path)) {
            return pk_err_set(err, PK_E_NOTFOUND, "--reuse-key: %s does not exist", o->key_path);
        }
    } else if (!o->force && pk_fs_exists(o->key_path)) {
        return pk_err_set(err, PK_E_INVALID,
                          "%s exists; pass --reuse-key to sign with it (same-key rotation) or "
                          "--force to replace it with a new key",
                          o->key_path);
    }
    return 0;
}

/* The subject key: the existing one (--reuse-key) or a new one. */
static int obtain_key(const struct create_opts *o, struct pk_key **out, struct pk_err *err)
{
    int r;

    if (!o->reuse_key) {
        return pk_key_generate(o->key_type, out, err);
    }
    r = pk_cert_util_read_key(o->key_path, out, err);
    if (r != 0) {
        return r;
    }
    if (o->key_type_given && pk_key_get_type(*out) != o->key_type) {
        r = pk_err_set(err, PK_E_MISMATCH, "%s is a %s key, not %s as --key-type asks", o->key_path,
                       pk_key_type_name(pk_key_get_type(*out)), pk_key_type_name(o->key_type));
        *out = pk_key_free(*out);
    }
    return r;
}

static void fill_request(const struct create_opts *o, time_t now, struct pk_ca_request *req)
{
    long skew = o->profile == PK_CA_PROFILE_SENTRY ? SENTRY_SKEW_SECONDS : 0;

    memset(req, 0, sizeof(*req));
    req->profile = o->profile;
    req->trust_domain = o->trust_domain;
    req->namespace_ = o->namespace_;
    req->not_before = now - skew;
    req->not_after = now + (time_t)o->validity;
}

/* Write the key (when it is new) before the certificate, so a certificate on disk always has its
 * key next to it. */
static int write_outputs(const struct create_opts *o, const struct pk_key *key,
                         const struct pk_cert *cert, struct pk_err *err)
{
    int r = 0;

    if (!o->reuse_key) {
        r = pk_cert_util_write_key(o->key_path, key, err);
    }
    if (r == 0) {
        r = pk_cert_util_write_cert(o->cert_path, cert, err);
    }
    return r;
}

static void report(const struct create_opts *o, const char *role, const struct pk_cert *cert,
                   time_t now)
{
    printf("%s %s (%s profile)\n", role, o->cert_path, pk_ca_profile_name(o->profile));
    pk_cert_util_describe(stdout, cert, now);
    printf("key %s: %s\n", o->key_path,
           o->reuse_key ? "re-used (not rewritten)" : "new, written with mode 0600");
}

static void init_opts(struct create_opts *o, bool issuer)
{
    const char *ns = getenv("NAMESPACE");

    memset(o, 0, sizeof(*o));
    o->issuer = issuer;
    o->cmd = issuer ? "picket cert create-issuer" : "picket cert create-root";
    o->profile = PK_CA_PROFILE_OPENSSL;
    /* picket sentry's default (Dapr's), so that credentials made with defaults name the trust
     * domain a default Sentry serves. */
    o->trust_domain = "localhost";
    o->namespace_ = (ns != NULL && ns[0] != '\0') ? ns : "default";
    o->key_type = PK_KEY_P256;
    o->validity = 365 * 86400.0;
    o->cert_path = issuer ? "issuer.crt" : "ca.crt";
    o->key_path = issuer ? "issuer.key" : "ca.key";
    o->ca_cert_path = "ca.crt";
    o->ca_key_path = "ca.key";
}

int pk_cmd_cert_create_root(int argc, char **argv)
{
    struct create_opts o;
    struct pk_ca_request req;
    struct pk_key *key = NULL;
    struct pk_cert *root = NULL;
    struct pk_err err;
    time_t now = time(NULL);
    int status = 1;
    int r;

    pk_err_clear(&err);
    init_opts(&o, false);
    r = parse_opts(argc, argv, &o);
    if (r != 0) {
        return r == 1 ? 0 : 2;
    }
    if (check_outputs(&o, &err) != 0 || obtain_key(&o, &key, &err) != 0) {
        goto out;
    }
    fill_request(&o, now, &req);
    if (pk_ca_profile_root(&req, key, &root, &err) != 0) {
        goto out;
    }
    if (write_outputs(&o, key, root, &err) != 0) {
        goto out;
    }
    report(&o, "root", root, now);
    status = 0;
out:
    if (status != 0) {
        fprintf(stderr, "%s: %s\n", o.cmd, err.msg[0] ? err.msg : "failed");
    }
    pk_cert_free(root);
    pk_key_free(key);
    return status;
}

/* The signing root: the first certificate of --ca-cert, self-signed, valid now, a CA that may
 * sign, and the key of --ca-key. */
static int load_signer(const struct create_opts *o, struct pk_certs *ca, struct pk_key **ca_key,
                       struct pk_err *err)
{
    const struct pk_cert *root;
    int r;

    r = pk_cert_util_read_certs(o->ca_cert_path, ca, err);
    if (r != 0) {
        return r;
    }
    root = ca->v[0];
    if (!pk_cert_self_signed(root)) {
        return pk_err_set(err, PK_E_INVALID,
                          "%s: the first certificate (subject \"%s\") is not a self-signed root; "
                          "an issuer for Sentry must be signed by a root of its ca.crt",
                          o->ca_cert_path, pk_cert_subject(root));
    }
    r = pk_cert_util_read_key(o->ca_key_path, ca_key, err);
    if (r != 0) {
        return r;
    }
    if (!pk_cert_matches_key(root, *ca_key)) {
        return pk_err_set(err, PK_E_MISMATCH,
                          "%s is not the key of the root in %s (subject \"%s\")", o->ca_key_path,
                          o->ca_cert_path, pk_cert_subject(root));
    }
    return 0;
}

int pk_cmd_cert_create_issuer(int argc, char **argv)
{
    struct create_opts o;
    struct pk_ca_request req;
    struct pk_certs ca = {0}, only_root = {0};
    struct pk_key *ca_key = NULL, *key = NULL;
    struct pk_pubkey *pub = NULL;
    struct pk_cert *issuer = NULL;
    struct pk_sentry_creds_paths paths;
    struct pk_sentry_creds *creds = NULL;
    struct pk_err err;
    time_t now = time(NULL);
    int status = 1;
    int r;

    pk_err_clear(&err);
    init_opts(&o, true);
    r = parse_opts(argc, argv, &o);
    if (r != 0) {
        return r == 1 ? 0 : 2;
    }
    if (check_outputs(&o, &err) != 0 || load_signer(&o, &ca, &ca_key, &err) != 0 ||
        obtain_key(&o, &key, &err) != 0) {
        goto out;
    }
    if (pk_key_public(key, &pub) != 0) {
        pk_err_set(&err, PK_E_CRYPTO, "cannot take the public half of the issuer key");
        goto out;
    }
    fill_request(&o, now, &req);
    if (pk_ca_profile_issuer(&req, pub, ca.v[0], ca_key, &issuer, &err) != 0) {
        goto out;
    }
    /* Before anything is written: the new issuer must verify under its root now. */
    if (pk_certs_push_copy(&only_root, ca.v[0]) != 0 ||
        pk_x509_verify_chain(issuer, NULL, &only_root, &err) != 0) {
        pk_err_prefix(&err, PK_E_UNTRUSTED, "the new issuer does not verify under %s",
                      o.ca_cert_path);
        goto out;
    }
    if (write_outputs(&o, key, issuer, &err) != 0) {
        goto out;
    }
    report(&o, "issuer", issuer, now);
    if (pk_cert_not_after(issuer) > pk_cert_not_after(ca.v[0])) {
        char na[32];
        pk_cert_util_format_time(pk_cert_not_after(ca.v[0]), na, sizeof(na));
        printf("warning: the issuer outlives its root, which expires %s; Sentry refuses the "
               "pair from then on\n",
               na);
    }
    /* The same checks `picket sentry` makes when it loads the three files. */
    if (pk_sentry_creds_paths_init(&paths, ".", o.ca_cert_path, o.cert_path, o.key_path) != 0) {
        pk_err_set(&err, PK_E_TOOBIG, "a file name is too long");
        goto out;
    }
    if (pk_sentry_creds_load(&paths, &creds, &err) != 0) {
        pk_err_prefix(&err, PK_E_INVALID, "written, but picket sentry would refuse these files");
        goto out;
    }
    printf("picket sentry accepts these credentials: %s (ca.crt), %s (issuer.crt), %s "
           "(issuer.key)\n",
           o.ca_cert_path, o.cert_path, o.key_path);
    status = 0;
out:
    if (status != 0) {
        fprintf(stderr, "%s: %s\n", o.cmd, err.msg[0] ? err.msg : "failed");
    }
    pk_sentry_creds_free(creds);
    pk_cert_free(issuer);
    pk_pubkey_free(pub);
    pk_key_free(key);
    pk_key_free(ca_key);
    pk_certs_clear(&ca);
    pk_certs_clear(&only_root);
    return status;
}
