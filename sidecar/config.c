/* SPDX-License-Identifier: Apache-2.0 */
/* picket: `picket run` configuration from picket.ini, Dapr's environment and daprd's flags.
 *
 * Implementation notes.
 *
 * A "layer" is one source of settings. The layers are applied in the order defaults, file,
 * environment, flags, so a later one wins, and each checks its values as it applies them so that
 * an error names its source. Cross-field rules that span layers run last (check_merged).
 *
 * The file goes through inih with our own line reader (ini_parse_stream). The reader sees each raw
 * line before inih does, so it
 *   - counts lines: the handler of Debian's inih gets no line number;
 *   - refuses what inih would misread: a line longer than its buffer (inih cuts it and parses the
 *     rest as another line), an indented line after a key (inih appends it to that key as a
 *     continuation), a NUL byte (inih stops reading the line there), a section name longer than
 *     inih's 50-byte section buffer (inih truncates it);
 *   - checks each section header: inih reports a section only with its first key, so an empty
 *     unknown section would pass unseen.
 * That is sidecar/config_ini.c. inih then splits `key = value` and calls on_key, which finds the
 * key in its section kind's table, parses the value into a scratch config and records the line.
 * Only when the whole text is good are the keys that were set moved into the caller's config, so a
 * bad file changes nothing.
 *
 * A "section kind" is a row of config_kinds[] (sidecar/config_keys.c): a name, whether
 * sections of that kind carry a name ([inbound web]) and the table of keys. An unnamed kind's keys
 * are fields of struct pk_sidecar_config; a key is set at most once however often its section
 * appears, which the `seen` list (one row per key set) enforces. A named kind is a listener: its
 * header appends a struct pk_listener_config to the scratch config, and its keys are fields of that
 * listener. The listener kinds share one table, config_listener_keys[], whose rows say which kinds
 * take them (so a key of the other kind gets its own message) and which repeat; `lines` keeps, per
 * listener, the line of its header and of each key, for duplicates and for the rules checked
 * once the whole text is read (required keys, exclusive keys, loopback). */
#include "sidecar/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/addr.h"
#include "common/buf.h"
#include "common/dstmap.h"
#include "common/duration.h"
#include "common/env.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/spiffe.h"
#include "sidecar/config_keys.h"
#include "sidecar/daprd_config.h"

/* ---- the configuration ---- */

struct pk_sidecar_config *pk_sidecar_config_new(void)
{
    struct pk_sidecar_config *cfg = pk_xcalloc(1, sizeof(*cfg));

    cfg->agent.namespace_ = pk_xstrdup(DEFAULT_NAMESPACE);
    cfg->agent.renew_fraction = 0.5;
    cfg->agent.renew_jitter = 0.10;
    cfg->agent.retry_initial = 1;
    cfg->agent.retry_max = 120;
    cfg->agent.initial_attempts = 0;
    cfg->agent.request_timeout = 10;
    cfg->agent.allow_tls12 = false;
    cfg->agent.export_signal = SIGHUP;
    cfg->agent.export_group = -1;
    cfg->agent.control_plane_trust_domain = pk_xstrdup(DEFAULT_CP_TD);
    cfg->agent.control_plane_namespace = pk_xstrdup(DEFAULT_CP_NS);
    cfg->admin_listen = pk_xstrdup(DEFAULT_ADMIN_LISTEN);
    cfg->log_level = PK_LOG_LEVEL_INFO;
    cfg->log_json = false;
    cfg->workers = 0;
    cfg->shutdown_timeout = 10;
    cfg->agent.mark = 0;
    cfg->dns_ttl_min = 1;
    cfg->dns_ttl_max = 300;
    cfg->dns_timeout = 2;
    cfg->exclude_uid = -1;
    cfg->exclude_gid = -1;
    return cfg;
}

/* Whether field k of a and b (struct pk_sidecar_config) holds the same value. */
static bool field_equal(const struct key *k, const void *a, const void *b)
{
    const void *x = (const char *)a + k->offset, *y = (const char *)b + k->offset;

    switch (k->type) {
    CASE_TEXT_KEYS : {
        const char *s = *(char *const *)x, *t = *(char *const *)y;
        return (s == NULL && t == NULL) || (s != NULL && t != NULL && strcmp(s, t) == 0);
    }
    case K_BOOL:
        return *(const bool *)x == *(const bool *)y;
    case K_FRACTION:
    case K_DURATION:
        return *(const double *)x == *(const double *)y;
    case K_COUNT:
    case K_MARK:
    case K_OWNER:
    case K_GROUP:
        return *(const long *)x == *(const long *)y;
    case K_UNMAPPED:
        return *(const enum pk_unmapped_policy *)x == *(const enum pk_unmapped_policy *)y;
    case K_SIZE:
        return *(const size_t *)x == *(const size_t *)y;
    case K_SIGNAL:
    case K_LOG_LEVEL:
    case K_MODE:
        return *(const int *)x == *(const int *)y;
    }
    PK_ASSERT(!"unknown key type");
    return false;
}

size_t pk_sidecar_config_restart_changes(const struct pk_sidecar_config *running,
                                         const struct pk_sidecar_config *next, char *out,
                                         size_t out_len)
{
    size_t n = 0, used = 0;

    if (out_len > 0) {
        out[0] = '\0';
    }
    for (size_t i = 0; i < CONFIG_N_KINDS; i++) {
        if (config_kinds[i].named) {
            continue;
        }
        for (size_t j = 0; j < config_kinds[i].n_keys; j++) {
            const struct key *k = &config_kinds[i].keys[j];
            if (!(k->flags & KF_RESTART) || field_equal(k, running, next)) {
                continue;
            }
            if (used < out_len) {
                int w = snprintf(out + used, out_len - used, "%s[%s] %s", n > 0 ? ", " : "",
                                 config_kinds[i].name, k->name);
                used += w > 0 ? (size_t)w : 0;
            }
            n++;
        }
    }
    /* Settings that only flags or variables give (request id, PEM contents) cannot differ: a
     * reload applies the same argv and environment again. */
    return n;
}

void pk_sidecar_config_free(struct pk_sidecar_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    free(cfg->agent.app_id);
    free(cfg->agent.request_id);
    free(cfg->agent.namespace_);
    free(cfg->agent.trust_domain);
    free(cfg->agent.cert_file);
    free(cfg->agent.key_file);
    free(cfg->agent.cert_pem);
    if (cfg->agent.key_pem != NULL) {
        pk_free_secret(cfg->agent.key_pem, strlen(cfg->agent.key_pem) + 1);
    }
    free(cfg->agent.export_dir);
    free(cfg->agent.export_command);
    free(cfg->agent.export_pid_file);
    free(cfg->agent.sentry_address);
    free(cfg->agent.trust_anchors_file);
    free(cfg->agent.trust_anchors_pem);
    free(cfg->agent.control_plane_trust_domain);
    free(cfg->agent.control_plane_namespace);
    free(cfg->agent.token_file);
    free(cfg->agent.secrets_dir);
    free(cfg->admin_listen);
    free(cfg->dns_servers);
    free(cfg->config_file);
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        pk_listener_config_clear(&cfg->listeners[i]);
    }
    free(cfg->listeners);
    free(cfg);
}

void pk_sidecar_proxy_options(const struct pk_sidecar_config *cfg, struct pk_proxy_options *out)
{
    *out = (struct pk_proxy_options){
            .listeners = cfg->listeners,
            .n_listeners = cfg->n_listeners,
            .workers = cfg->workers,
            .mark = cfg->agent.mark,
            .namespace_ = cfg->agent.namespace_,
    };
}

/* ---- flags ---- */

struct flags {
    /* Each borrowed from argv; NULL when the flag was not given. */
    const char *app_id, *sentry_address, *cp_trust_domain, *cp_namespace, *trust_domain;
    const char *anchors_file, *config_file, *log_level;
    const char *daprd_config; /* --config: daprd's Configuration */
    const char *mode, *enable_mtls;
    bool enable_mtls_given;
    const char *log_json; /* NULL for the bare flag */
    bool log_json_given, help, check;
};

enum {
    OPT_APP_ID = 256,
    OPT_SENTRY_ADDRESS,
    OPT_CP_TRUST_DOMAIN,
    OPT_CP_NAMESPACE,
    OPT_TRUST_DOMAIN,
    OPT_ANCHORS_FILE,
    OPT_CONFIG,
    OPT_CONFIG_FILE,
    OPT_MODE,
    OPT_ENABLE_MTLS,
    OPT_JWT_AUDIENCES,
    OPT_LOG_LEVEL,
    OPT_LOG_JSON,
    OPT_HELP,
    OPT_CHECK,
};

/* An argument up to any '=', quoted, for naming a flag in a message. */
static const char *flag_name(char buf[QUOTE_LEN], const char *arg)
{
    char name[QUOTE_LEN];

    snprintf(name, sizeof(name), "%.*s", (int)PK_MIN(strcspn(arg, "="), sizeof(name) - 1), arg);
    return pk_quote(buf, QUOTE_LEN, name, strlen(name));
}

static int parse_flags(int argc, char **argv, struct flags *fl, struct pk_err *err)
{
    static const struct option options[] = {
            {"app-id", required_argument, NULL, OPT_APP_ID},
            {"sentry-address", required_argument, NULL, OPT_SENTRY_ADDRESS},
            {"control-plane-trust-domain", required_argument, NULL, OPT_CP_TRUST_DOMAIN},
            {"control-plane-namespace", required_argument, NULL, OPT_CP_NAMESPACE},
            {"trust-domain", required_argument, NULL, OPT_TRUST_DOMAIN},
            {"trust-anchors-file", required_argument, NULL, OPT_ANCHORS_FILE},
            {"config", required_argument, NULL, OPT_CONFIG},
            {"config-file", required_argument, NULL, OPT_CONFIG_FILE},
            {"mode", required_argument, NULL, OPT_MODE},
            {"enable-mtls", optional_argument, NULL, OPT_ENABLE_MTLS},
            {"sentry-request-jwt-audiences", required_argument, NULL, OPT_JWT_AUDIENCES},
            {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
            {"log-as-json", optional_argument, NULL, OPT_LOG_JSON},
            {"help", no_argument, NULL, OPT_HELP},
            {"check", no_argument, NULL, OPT_CHECK},
            {NULL, 0, NULL, 0},
    };
    char name[QUOTE_LEN];
    int c;

    /* optind = 0 makes glibc start over (and forget a previous argv); "+" stops at the first
     * argument that is not a flag instead of permuting argv; ":" reports a missing value as
     * ':' rather than '?'. */
    opterr = 0;
    optind = 0;
    while ((c = getopt_long_only(argc, argv, "+:c:h", options, NULL)) != -1) {
        const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
        switch (c) {
        case OPT_APP_ID:
            fl->app_id = optarg;
            break;
        case OPT_SENTRY_ADDRESS:
            fl->sentry_address = optarg;
            break;
        case OPT_CP_TRUST_DOMAIN:
            fl->cp_trust_domain = optarg;
            break;
        case OPT_CP_NAMESPACE:
            fl->cp_namespace = optarg;
            break;
        case OPT_TRUST_DOMAIN:
            fl->trust_domain = optarg;
            break;
        case OPT_ANCHORS_FILE:
            fl->anchors_file = optarg;
            break;
        case 'c':
        case OPT_CONFIG_FILE:
            fl->config_file = optarg;
            break;
        case OPT_CONFIG:
            fl->daprd_config = optarg;
            break;
        case OPT_MODE:
            fl->mode = optarg;
            break;
        case OPT_ENABLE_MTLS:
            fl->enable_mtls_given = true;
            fl->enable_mtls = optarg;
            break;
        case OPT_JWT_AUDIENCES:
            /* daprd asks Sentry for JWTs with these audiences; picket uses none. */
            PK_LOG_WARN("--sentry-request-jwt-audiences is ignored: picket asks Sentry for no "
                        "JWT");
            break;
        case OPT_LOG_LEVEL:
            fl->log_level = optarg;
            break;
        case OPT_LOG_JSON:
            fl->log_json_given = true;
            fl->log_json = optarg;
            break;
        case OPT_CHECK:
            fl->check = true;
            break;
        case 'h':
        case OPT_HELP:
            fl->help = true;
            return 0;
        case ':':
            return pk_err_set(err, PK_E_INVALID, "flag '%s' needs a value", flag_name(name, arg));
        default:
            return pk_err_set(err, PK_E_INVALID, "unknown flag '%s'", flag_name(name, arg));
        }
    }
    if (optind < argc) {
        char q[QUOTE_LEN];
        return pk_err_set(err, PK_E_INVALID,
                          "unexpected argument '%s' (picket run takes only flags)",
                          pk_quote(q, sizeof(q), argv[optind], strlen(argv[optind])));
    }
    return 0;
}

/* ---- layers ---- */

static int check_segment_from(const char *source, const char *value, const char *what,
                              struct pk_err *err)
{
    if (pk_spiffe_check_segment(value, what, err) != 0) {
        return pk_err_prefix(err, PK_E_INVALID, "%s", source);
    }
    return 0;
}

static int check_td_from(const char *source, const char *value, struct pk_err *err)
{
    if (pk_spiffe_check_trust_domain(value, err) != 0) {
        return pk_err_prefix(err, PK_E_INVALID, "%s", source);
    }
    return 0;
}

/* The plain variables: each replaces one string field when it is set and not empty. */
static const struct {
    const char *name;
    size_t offset;
    enum key_type type; /* K_STRING, K_SEGMENT or K_TRUST_DOMAIN */
    const char *what;   /* K_SEGMENT: how messages name it */
} env_strings[] = {
        {"APP_ID", FIELD(agent.app_id), K_SEGMENT, "app id"},
        {"NAMESPACE", FIELD(agent.namespace_), K_SEGMENT, "namespace"},
        {"DAPR_TRUST_ANCHORS", FIELD(agent.trust_anchors_pem), K_STRING, NULL},
        {"DAPR_TRUST_ANCHORS_FILE", FIELD(agent.trust_anchors_file), K_STRING, NULL},
        {"DAPR_CONTROLPLANE_TRUST_DOMAIN", FIELD(agent.control_plane_trust_domain), K_TRUST_DOMAIN,
         NULL},
        {"DAPR_CONTROLPLANE_NAMESPACE", FIELD(agent.control_plane_namespace), K_SEGMENT,
         "control-plane namespace"},
};

static int apply_env(struct pk_sidecar_config *cfg, char *const *env, struct pk_err *err)
{
    const char *v;

    for (size_t i = 0; i < PK_ARRAY_LEN(env_strings); i++) {
        v = pk_env_value(env, env_strings[i].name);
        if (v == NULL) {
            continue;
        }
        if ((env_strings[i].type == K_SEGMENT &&
             check_segment_from(env_strings[i].name, v, env_strings[i].what, err) != 0) ||
            (env_strings[i].type == K_TRUST_DOMAIN &&
             check_td_from(env_strings[i].name, v, err) != 0)) {
            return PK_E_INVALID;
        }
        config_replace_string((char **)((char *)cfg + env_strings[i].offset), v);
    }
    if ((v = pk_env_value(env, "PICKET_MODE")) != NULL) {
        if (config_parse_mode(v, &cfg->agent.mode) != 0) {
            char q[QUOTE_LEN];
            return pk_err_set(err, PK_E_INVALID,
                              "PICKET_MODE: '%s' is not auto, standalone or "
                              "kubernetes",
                              pk_quote(q, sizeof(q), v, strlen(v)));
        }
    }
    if ((v = pk_env_value(env, "PICKET_TEST_SECRETS_DIR")) != NULL) {
        config_replace_string(&cfg->agent.secrets_dir, v);
    }
    /* daprd: a token file variable that is set must name a file (pkg/security/token). */
    if ((v = pk_env_get(env, "DAPR_SENTRY_TOKEN_FILE")) != NULL) {
        if (v[0] == '\0') {
            return pk_err_set(err, PK_E_INVALID,
                              "DAPR_SENTRY_TOKEN_FILE is set but empty: unset it, or set it to "
                              "the file that holds the Sentry token");
        }
        config_replace_string(&cfg->agent.token_file, v);
        cfg->agent.token_file_from_env = true;
    }
    /* The PEM contents replace the file keys, so the agent reads (and watches) neither file. */
    if ((v = pk_env_value(env, "DAPR_CERT_CHAIN")) != NULL) {
        config_replace_string(&cfg->agent.cert_pem, v);
        config_replace_string(&cfg->agent.cert_file, NULL);
    }
    if ((v = pk_env_value(env, "DAPR_CERT_KEY")) != NULL) {
        if (cfg->agent.key_pem != NULL) {
            cfg->agent.key_pem = pk_free_secret(cfg->agent.key_pem, strlen(cfg->agent.key_pem) + 1);
        }
        cfg->agent.key_pem = pk_xstrdup(v);
        config_replace_string(&cfg->agent.key_file, NULL);
    }
    return 0;
}

static int apply_flags(struct pk_sidecar_config *cfg, const struct flags *fl, struct pk_err *err)
{
    if (fl->app_id != NULL) {
        if (check_segment_from("--app-id", fl->app_id, "app id", err) != 0) {
            return PK_E_INVALID;
        }
        config_replace_string(&cfg->agent.app_id, fl->app_id);
    }
    if (fl->sentry_address != NULL) {
        /* daprd's default is "": no Sentry. Given empty, the flag turns a file's address off. */
        struct pk_addr addr;
        if (fl->sentry_address[0] != '\0' &&
            pk_addr_parse(fl->sentry_address, PK_ADDR_NAMES, &addr, err) != 0) {
            return pk_err_prefix(err, PK_E_INVALID, "--sentry-address");
        }
        config_replace_string(&cfg->agent.sentry_address,
                              fl->sentry_address[0] != '\0' ? fl->sentry_address : NULL);
    }
    if (fl->cp_trust_domain != NULL) {
        if (check_td_from("--control-plane-trust-domain", fl->cp_trust_domain, err) != 0) {
            return PK_E_INVALID;
        }
        config_replace_string(&cfg->agent.control_plane_trust_domain, fl->cp_trust_domain);
    }
    if (fl->cp_namespace != NULL) {
        if (check_segment_from("--control-plane-namespace", fl->cp_namespace,
                               "control-plane namespace", err) != 0) {
            return PK_E_INVALID;
        }
        config_replace_string(&cfg->agent.control_plane_namespace, fl->cp_namespace);
    }
    if (fl->trust_domain != NULL) {
        if (check_td_from("--trust-domain", fl->trust_domain, err) != 0) {
            return PK_E_INVALID;
        }
        config_replace_string(&cfg->agent.trust_domain, fl->trust_domain);
    }
    if (fl->anchors_file != NULL) {
        if (fl->anchors_file[0] == '\0') {
            return pk_err_set(err, PK_E_INVALID, "--trust-anchors-file: empty file name");
        }
        config_replace_string(&cfg->agent.trust_anchors_file, fl->anchors_file);
    }
    if (fl->mode != NULL && config_parse_mode(fl->mode, &cfg->agent.mode) != 0) {
        char q[QUOTE_LEN];
        return pk_err_set(err, PK_E_INVALID, "--mode: '%s' is not auto, standalone or kubernetes",
                          pk_quote(q, sizeof(q), fl->mode, strlen(fl->mode)));
    }
    if (fl->enable_mtls_given) {
        char q[QUOTE_LEN];
        bool on = true;
        if (fl->enable_mtls != NULL && config_parse_bool(fl->enable_mtls, true, &on) != 0) {
            return pk_err_set(err, PK_E_INVALID, "--enable-mtls: '%s' is not a boolean",
                              pk_quote(q, sizeof(q), fl->enable_mtls, strlen(fl->enable_mtls)));
        }
        if (!on) {
            return pk_err_set(err, PK_E_INVALID,
                              "--enable-mtls=false: picket is an mTLS proxy and cannot run "
                              "without mTLS; drop the flag or run without picket");
        }
    }
    if (fl->log_level != NULL) {
        enum pk_log_level level;
        char q[QUOTE_LEN];
        if (pk_log_level_parse(fl->log_level, &level) != 0) {
            return pk_err_set(err, PK_E_INVALID,
                              "--log-level: '%s' is not debug, info, warn or error",
                              pk_quote(q, sizeof(q), fl->log_level, strlen(fl->log_level)));
        }
        cfg->log_level = (int)level;
    }
    if (fl->log_json_given) {
        char q[QUOTE_LEN];
        bool json = true;
        if (fl->log_json != NULL && config_parse_bool(fl->log_json, true, &json) != 0) {
            return pk_err_set(err, PK_E_INVALID, "--log-as-json: '%s' is not a boolean",
                              pk_quote(q, sizeof(q), fl->log_json, strlen(fl->log_json)));
        }
        cfg->log_json = json;
    }
    return 0;
}

/* The rules that need every layer. */
static int check_merged(struct pk_sidecar_config *cfg, struct pk_err *err)
{
    const char *cert = cfg->agent.cert_pem != NULL ? "DAPR_CERT_CHAIN" : cfg->agent.cert_file;
    const char *key = cfg->agent.key_pem != NULL ? "DAPR_CERT_KEY" : cfg->agent.key_file;
    char q[QUOTE_LEN];

    if (cfg->agent.app_id == NULL) {
        return pk_err_set(err, PK_E_INVALID,
                          "an app id is required: set --app-id, the APP_ID environment variable "
                          "or [agent] app_id in the config file");
    }
    if (cfg->agent.trust_anchors_file == NULL && cfg->agent.trust_anchors_pem == NULL) {
        return pk_err_set(err, PK_E_INVALID,
                          "trust anchors are required: set [sentry] trust_anchors_file, "
                          "--trust-anchors-file or DAPR_TRUST_ANCHORS (or "
                          "DAPR_TRUST_ANCHORS_FILE)");
    }
    if (cfg->agent.sentry_address != NULL) {
        if (cfg->agent.cert_file != NULL || cfg->agent.key_file != NULL) {
            return pk_err_set(err, PK_E_INVALID,
                              "[agent] %s (a static identity) and a Sentry address (%s) exclude "
                              "each other: remove one",
                              cfg->agent.cert_file != NULL ? "cert_file" : "key_file",
                              pk_quote(q, sizeof(q), cfg->agent.sentry_address,
                                       strlen(cfg->agent.sentry_address)));
        }
        /* daprd 1.14+ ignores these with Sentry too; older injectors still set them. Drop them
         * so the key is not kept in memory for nothing. */
        config_replace_string(&cfg->agent.cert_pem, NULL);
        if (cfg->agent.key_pem != NULL) {
            cfg->agent.key_pem = pk_free_secret(cfg->agent.key_pem, strlen(cfg->agent.key_pem) + 1);
        }
        return 0;
    }
    if (cert == NULL && key == NULL) {
        return pk_err_set(err, PK_E_INVALID,
                          "no identity source: set [sentry] address or --sentry-address to get "
                          "certificates from Sentry, or [agent] cert_file and key_file (or "
                          "DAPR_CERT_CHAIN and DAPR_CERT_KEY) for a static identity");
    }
    if (key == NULL) {
        return pk_err_set(err, PK_E_INVALID,
                          "a certificate is configured (%s) but no private key: set [agent] "
                          "key_file or DAPR_CERT_KEY",
                          pk_quote(q, sizeof(q), cert, strlen(cert)));
    }
    if (cert == NULL) {
        return pk_err_set(err, PK_E_INVALID,
                          "a private key is configured (%s) but no certificate: set [agent] "
                          "cert_file or DAPR_CERT_CHAIN",
                          pk_quote(q, sizeof(q), key, strlen(key)));
    }
    return 0;
}

/* Mode auto becomes kubernetes in a pod, standalone elsewhere. daprd itself defaults to
 * standalone and relies on the injector's --mode kubernetes; picket is also started by hand-made
 * pod specs, so it looks at the variable every pod has (the one Sentry before 1.15 used). */
static void resolve_mode(struct pk_sidecar_config *cfg, char *const *env)
{
    if (cfg->agent.mode == PK_AGENT_MODE_AUTO) {
        cfg->agent.mode = pk_env_value(env, "KUBERNETES_SERVICE_HOST") != NULL
                                  ? PK_AGENT_MODE_KUBERNETES
                                  : PK_AGENT_MODE_STANDALONE;
    }
}

/* daprd's --config (sidecar/daprd_config.h): a file in standalone mode, a resource name in
 * Kubernetes mode. */
static int read_daprd_config(struct pk_sidecar_config *cfg, const char *path, struct pk_err *err)
{
    struct pk_daprd_config dc;
    char q[QUOTE_LEN];
    int r;

    if (path == NULL) {
        return 0;
    }
    if (cfg->agent.mode == PK_AGENT_MODE_KUBERNETES) {
        PK_LOG_INFO("--config %s names a Configuration resource (Kubernetes mode); picket does "
                    "not read resources and goes on without it",
                    pk_quote(q, sizeof(q), path, strlen(path)));
        return 0;
    }
    if (path[0] == '\0') {
        return pk_err_set(err, PK_E_INVALID, "--config: empty file name");
    }
    r = pk_daprd_config_load(path, &dc, err);
    if (r != 0) {
        return pk_err_prefix(err, r == PK_E_NOTFOUND ? PK_E_NOTFOUND : PK_E_INVALID, "--config");
    }
    if (dc.ignored[0] != '\0') {
        PK_LOG_INFO("--config %s: ignored, as they do not concern an mTLS proxy: %s",
                    pk_quote(q, sizeof(q), path, strlen(path)), dc.ignored);
    }
    return 0;
}

static int read_config_file(struct pk_sidecar_config *cfg, const char *path, struct pk_err *err)
{
    struct pk_buf text;
    int r;

    pk_buf_init(&text, PK_SIDECAR_CONFIG_MAX_FILE);
    r = pk_fs_read_file(path, PK_SIDECAR_CONFIG_MAX_FILE, &text, err);
    if (r != 0) {
        r = pk_err_prefix(err, r == PK_E_NOTFOUND ? PK_E_NOTFOUND : PK_E_INVALID, "config file");
        goto out;
    }
    r = pk_sidecar_config_parse_ini((const char *)text.data, text.len, path, cfg, err);
out:
    pk_buf_free(&text);
    return r;
}

int pk_sidecar_config_load(int argc, char **argv, char *const *env, struct pk_sidecar_config **out,
                           bool *help_out, struct pk_err *err)
{
    struct pk_sidecar_config *cfg = NULL;
    struct flags fl = {0};
    const char *local_id;
    int r;

    pk_err_clear(err);
    *help_out = false;
    r = parse_flags(argc, argv, &fl, err);
    if (r != 0 || fl.help) {
        if (r == 0) {
            *help_out = true;
            *out = NULL;
        }
        goto out;
    }
    cfg = pk_sidecar_config_new();
    cfg->check_only = fl.check;
    if (fl.config_file != NULL) {
        cfg->config_file = pk_xstrdup(fl.config_file);
        r = read_config_file(cfg, fl.config_file, err);
        if (r != 0) {
            goto out;
        }
    }
    r = apply_env(cfg, env, err);
    if (r == 0) {
        r = apply_flags(cfg, &fl, err);
    }
    if (r == 0) {
        resolve_mode(cfg, env);
        r = read_daprd_config(cfg, fl.daprd_config, err);
    }
    if (r == 0) {
        r = check_merged(cfg, err);
    }
    if (r != 0) {
        goto out;
    }
    /* daprd sends SENTRY_LOCAL_IDENTITY, when set, as the request id instead of the app id. */
    local_id = pk_env_value(env, "SENTRY_LOCAL_IDENTITY");
    if (local_id != NULL) {
        r = check_segment_from("SENTRY_LOCAL_IDENTITY", local_id, "request id", err);
        if (r != 0) {
            goto out;
        }
    }
    cfg->agent.request_id = pk_xstrdup(local_id != NULL ? local_id : cfg->agent.app_id);
    *out = cfg;
    cfg = NULL;
out:
    pk_sidecar_config_free(cfg);
    return r;
}
