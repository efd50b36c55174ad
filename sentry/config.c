/* SPDX-License-Identifier: Apache-2.0 */
/* picket: Dapr's `Configuration` YAML for picket sentry.
 *
 * Implementation notes: libyaml's document API loads the whole (size-capped) input into a node
 * graph; the walk below visits only the few paths it understands, each at a fixed depth, so
 * aliases (even self-referencing ones) cannot make it loop or blow up. libyaml gives every plain
 * scalar the string tag, so nulls ("", "~", "null") are recognised here by text and style. A
 * "path" is the dotted key path used in messages ("spec.mtls.tokenValidators[0].name"). */
#include "sentry/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "common/buf.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/mem.h"

/* Deeper than any real Configuration (which needs 6 levels), shallow enough to stay linear. */
#define MAX_DEPTH 64
/* Unknown keys in spec.mtls are reported one by one up to this many, then summed up. */
#define MAX_UNKNOWN_WARNINGS 5
/* Room for a quoted scalar in a message: 64 bytes shown. */
#define QUOTE_LEN 68

struct walk {
    yaml_document_t *doc;
    const char *name;
    struct pk_err *err;
};

/* Build a key path for messages; a path cut short by the buffer is still useful. */
static void subpath(char *dst, size_t cap, const char *fmt, ...) PK_PRINTF(3, 4);

static void subpath(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
}

static int at(const struct walk *w, const yaml_node_t *node, const char *path, const char *fmt, ...)
        PK_PRINTF(4, 5);

/* Report an error at node: "name:line:col: path: message". */
static int at(const struct walk *w, const yaml_node_t *node, const char *path, const char *fmt, ...)
{
    char msg[384];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return pk_err_set(w->err, PK_E_INVALID, "%s:%zu:%zu: %s%s%s", w->name,
                      node->start_mark.line + 1, node->start_mark.column + 1, path,
                      path[0] ? ": " : "", msg);
}

static const char *kind_name(const yaml_node_t *node)
{
    switch (node->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

static bool is_null(const yaml_node_t *node)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};

    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return false;
    }
    for (size_t i = 0; i < PK_ARRAY_LEN(nulls); i++) {
        if (node->data.scalar.length == strlen(nulls[i]) &&
            memcmp(node->data.scalar.value, nulls[i], node->data.scalar.length) == 0) {
            return true;
        }
    }
    return false;
}

static bool key_is(const yaml_node_t *key, const char *name)
{
    size_t n = strlen(name);
    return key->data.scalar.length == n &&
           strncasecmp((const char *)key->data.scalar.value, name, n) == 0;
}

/* The node's scalar text as a new C string. Refuses lists, mappings and embedded NULs. */
static int get_string(const struct walk *w, const yaml_node_t *node, const char *path, char **out)
{
    if (node->type != YAML_SCALAR_NODE) {
        return at(w, node, path, "expected a string, found %s", kind_name(node));
    }
    if (memchr(node->data.scalar.value, '\0', node->data.scalar.length) != NULL) {
        return at(w, node, path, "string contains a NUL byte");
    }
    *out = pk_xstrndup((const char *)node->data.scalar.value, node->data.scalar.length);
    return 0;
}

static int get_bool(const struct walk *w, const yaml_node_t *node, const char *path, bool *out)
{
    static const char *const yes[] = {"true", "True", "TRUE"};
    static const char *const no[] = {"false", "False", "FALSE"};
    char q[QUOTE_LEN];

    if (node->type != YAML_SCALAR_NODE) {
        return at(w, node, path, "expected true or false, found %s", kind_name(node));
    }
    if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        for (size_t i = 0; i < PK_ARRAY_LEN(yes); i++) {
            if (node->data.scalar.length == strlen(yes[i]) &&
                memcmp(node->data.scalar.value, yes[i], node->data.scalar.length) == 0) {
                *out = true;
                return 0;
            }
            if (node->data.scalar.length == strlen(no[i]) &&
                memcmp(node->data.scalar.value, no[i], node->data.scalar.length) == 0) {
                *out = false;
                return 0;
            }
        }
    }
    return at(w, node, path, "expected true or false (unquoted), found \"%s\"",
              pk_quote(q, sizeof(q), (const char *)node->data.scalar.value,
                       node->data.scalar.length));
}

/* A Go duration string. *set is false (and *out untouched) for null or "", which mean default. */
static int get_duration(const struct walk *w, const yaml_node_t *node, const char *path,
                        int64_t *out, bool *set)
{
    struct pk_err derr;

    *set = false;
    if (is_null(node)) {
        return 0;
    }
    if (node->type != YAML_SCALAR_NODE) {
        return at(w, node, path, "expected a duration such as \"24h\", found %s", kind_name(node));
    }
    if (node->data.scalar.length == 0) {
        return 0;
    }
    if (pk_duration_parse((const char *)node->data.scalar.value, node->data.scalar.length, out,
                          &derr) != 0) {
        return at(w, node, path, "%s", derr.msg);
    }
    *set = true;
    return 0;
}

static int compare_keys(const void *a, const void *b)
{
    const yaml_node_t *x = *(const yaml_node_t *const *)a;
    const yaml_node_t *y = *(const yaml_node_t *const *)b;
    size_t n = PK_MIN(x->data.scalar.length, y->data.scalar.length);
    int c = strncasecmp((const char *)x->data.scalar.value, (const char *)y->data.scalar.value, n);

    if (c != 0) {
        return c;
    }
    if (x->data.scalar.length != y->data.scalar.length) {
        return x->data.scalar.length < y->data.scalar.length ? -1 : 1;
    }
    /* Equal keys: order by position so the error names the later one. */
    return x->start_mark.index < y->start_mark.index ? -1 : 1;
}

/* Check that node is a mapping whose keys are scalars, none repeated (ignoring case, as Dapr's
 * JSON decoding does). O(n log n), so a huge mapping cannot stall the parser. */
static int check_mapping(const struct walk *w, const yaml_node_t *node, const char *path)
{
    size_t n;
    const yaml_node_t **keys;
    int rc = 0;
    char q[QUOTE_LEN];

    if (node->type != YAML_MAPPING_NODE) {
        return at(w, node, path, "expected a mapping, found %s", kind_name(node));
    }
    n = (size_t)(node->data.mapping.pairs.top - node->data.mapping.pairs.start);
    if (n < 2) {
        if (n == 1) {
            const yaml_node_t *k =
                    yaml_document_get_node(w->doc, node->data.mapping.pairs.start->key);
            if (k == NULL || k->type != YAML_SCALAR_NODE) {
                return at(w, k ? k : node, path, "mapping key is not a string");
            }
        }
        return 0;
    }
    keys = pk_xcalloc(n, sizeof(*keys));
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *k =
                yaml_document_get_node(w->doc, node->data.mapping.pairs.start[i].key);
        if (k == NULL || k->type != YAML_SCALAR_NODE) {
            rc = at(w, k ? k : node, path, "mapping key is not a string");
            goto out;
        }
        keys[i] = k;
    }
    qsort(keys, n, sizeof(*keys), compare_keys);
    for (size_t i = 1; i < n; i++) {
        if (keys[i - 1]->data.scalar.length == keys[i]->data.scalar.length &&
            strncasecmp((const char *)keys[i - 1]->data.scalar.value,
                        (const char *)keys[i]->data.scalar.value,
                        keys[i]->data.scalar.length) == 0) {
            const yaml_node_t *later = keys[i];
            rc = at(w, later, path, "duplicate key \"%s\" (first given on line %zu)",
                    pk_quote(q, sizeof(q), (const char *)later->data.scalar.value,
                             later->data.scalar.length),
                    keys[i - 1]->start_mark.line + 1);
            goto out;
        }
    }
out:
    free(keys);
    return rc;
}

#define FOR_EACH_PAIR(w, node, key, value)                                                         \
    for (yaml_node_pair_t *pk__p = (node)->data.mapping.pairs.start;                               \
         pk__p < (node)->data.mapping.pairs.top &&                                                 \
         ((key) = yaml_document_get_node((w)->doc, pk__p->key)) != NULL &&                         \
         ((value) = yaml_document_get_node((w)->doc, pk__p->value)) != NULL;                       \
         pk__p++)

static int parse_jwks_options(const struct walk *w, const yaml_node_t *node, const char *path,
                              struct pk_sentry_config *cfg)
{
    yaml_node_t *key;
    yaml_node_t *value;
    char sub[160];
    bool set;
    int rc;

    if (is_null(node)) {
        return at(w, node, path, "the jwks validator needs options with a source");
    }
    rc = check_mapping(w, node, path);
    if (rc != 0) {
        return rc;
    }
    FOR_EACH_PAIR(w, node, key, value)
    {
        char q[QUOTE_LEN];
        subpath(sub, sizeof(sub), "%s.%.*s", path, (int)PK_MIN(key->data.scalar.length, (size_t)64),
                (const char *)key->data.scalar.value);
        if (key_is(key, "source")) {
            if (!is_null(value)) {
                free(cfg->jwks.source);
                cfg->jwks.source = NULL;
                rc = get_string(w, value, sub, &cfg->jwks.source);
            }
        } else if (key_is(key, "caCertificate")) {
            if (!is_null(value)) {
                free(cfg->jwks.ca_certificate);
                cfg->jwks.ca_certificate = NULL;
                rc = get_string(w, value, sub, &cfg->jwks.ca_certificate);
            }
        } else if (key_is(key, "minRefreshInterval")) {
            rc = get_duration(w, value, sub, &cfg->jwks.min_refresh_interval_ns, &set);
            if (rc == 0 && set && cfg->jwks.min_refresh_interval_ns < 0) {
                rc = at(w, value, sub, "must not be negative");
            }
        } else if (key_is(key, "requestTimeout")) {
            rc = get_duration(w, value, sub, &cfg->jwks.request_timeout_ns, &set);
            if (rc == 0 && set && cfg->jwks.request_timeout_ns < 0) {
                rc = at(w, value, sub, "must not be negative");
            }
        } else {
            rc = at(w, key, path,
                    "unknown option \"%s\" (known: source, caCertificate, minRefreshInterval, "
                    "requestTimeout)",
                    pk_quote(q, sizeof(q), (const char *)key->data.scalar.value,
                             key->data.scalar.length));
        }
        if (rc != 0) {
            return rc;
        }
    }
    if (cfg->jwks.source == NULL || cfg->jwks.source[0] == '\0') {
        return at(w, node, path, "the jwks validator needs a non-empty source");
    }
    return 0;
}

static int parse_validator(const struct walk *w, const yaml_node_t *node, const char *path,
                           struct pk_sentry_config *cfg)
{
    yaml_node_t *key;
    yaml_node_t *value;
    const yaml_node_t *name = NULL;
    const yaml_node_t *options = NULL;
    char sub[160];
    char q[QUOTE_LEN];
    int rc;

    rc = check_mapping(w, node, path);
    if (rc != 0) {
        return rc;
    }
    FOR_EACH_PAIR(w, node, key, value)
    {
        if (key_is(key, "name")) {
            name = value;
        } else if (key_is(key, "options")) {
            options = value;
        } else {
            return at(w, key, path, "unknown key \"%s\" (known: name, options)",
                      pk_quote(q, sizeof(q), (const char *)key->data.scalar.value,
                               key->data.scalar.length));
        }
    }
    subpath(sub, sizeof(sub), "%s.name", path);
    if (name == NULL || is_null(name)) {
        return at(w, node, sub, "a token validator needs a name");
    }
    if (name->type != YAML_SCALAR_NODE) {
        return at(w, name, sub, "expected a string, found %s", kind_name(name));
    }
    if (key_is(name, "kubernetes") || key_is(name, "insecure")) {
        return at(w, name, sub,
                  "validator \"%s\" cannot be set in the configuration: Sentry enables it itself; "
                  "only \"jwks\" may be listed",
                  pk_quote(q, sizeof(q), (const char *)name->data.scalar.value,
                           name->data.scalar.length));
    }
    if (!key_is(name, "jwks")) {
        return at(w, name, sub, "unknown validator \"%s\" (only \"jwks\" may be listed)",
                  pk_quote(q, sizeof(q), (const char *)name->data.scalar.value,
                           name->data.scalar.length));
    }
    if (cfg->jwks_enabled) {
        return at(w, name, sub, "the jwks validator is listed twice");
    }
    subpath(sub, sizeof(sub), "%s.options", path);
    if (options == NULL) {
        return at(w, node, sub, "the jwks validator needs options with a source");
    }
    rc = parse_jwks_options(w, options, sub, cfg);
    if (rc == 0) {
        cfg->jwks_enabled = true;
    }
    return rc;
}

static int parse_validators(const struct walk *w, const yaml_node_t *node, const char *path,
                            struct pk_sentry_config *cfg)
{
    size_t n;
    char sub[160];

    if (is_null(node)) {
        return 0;
    }
    if (node->type != YAML_SEQUENCE_NODE) {
        return at(w, node, path, "expected a list, found %s", kind_name(node));
    }
    n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item =
                yaml_document_get_node(w->doc, node->data.sequence.items.start[i]);
        int rc;
        if (item == NULL) {
            return at(w, node, path, "list item %zu is missing", i);
        }
        subpath(sub, sizeof(sub), "%s[%zu]", path, i);
        rc = parse_validator(w, item, sub, cfg);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int parse_mtls(const struct walk *w, const yaml_node_t *node, struct pk_sentry_config *cfg)
{
    static const char path[] = "spec.mtls";
    yaml_node_t *key;
    yaml_node_t *value;
    char sub[160];
    char q[QUOTE_LEN];
    int64_t d;
    bool set;
    size_t unknown = 0;
    int rc;

    if (is_null(node)) {
        return 0;
    }
    rc = check_mapping(w, node, path);
    if (rc != 0) {
        return rc;
    }
    FOR_EACH_PAIR(w, node, key, value)
    {
        subpath(sub, sizeof(sub), "%s.%.*s", path, (int)PK_MIN(key->data.scalar.length, (size_t)64),
                (const char *)key->data.scalar.value);
        if (key_is(key, "workloadCertTTL")) {
            rc = get_duration(w, value, sub, &d, &set);
            if (rc == 0 && set) {
                char f[PK_DURATION_STR_LEN];
                if (d <= 0) {
                    rc = at(w, value, sub, "must be positive, found %s",
                            pk_duration_format(d, f, sizeof(f)));
                } else {
                    cfg->ttl_ns = d;
                }
            }
        } else if (key_is(key, "allowedClockSkew")) {
            rc = get_duration(w, value, sub, &d, &set);
            if (rc == 0 && set) {
                char f[PK_DURATION_STR_LEN];
                if (d < 0) {
                    rc = at(w, value, sub, "must not be negative, found %s",
                            pk_duration_format(d, f, sizeof(f)));
                } else {
                    cfg->skew_ns = d;
                }
            }
        } else if (key_is(key, "enabled")) {
            if (!is_null(value)) {
                rc = get_bool(w, value, sub, &cfg->mtls_enabled);
            }
        } else if (key_is(key, "controlPlaneTrustDomain")) {
            char *td = NULL;
            if (!is_null(value)) {
                rc = get_string(w, value, sub, &td);
            }
            if (rc == 0 && td != NULL && td[0] != '\0') {
                free(cfg->control_plane_trust_domain);
                cfg->control_plane_trust_domain = td;
                cfg->control_plane_trust_domain_set = true;
                td = NULL;
            }
            free(td);
        } else if (key_is(key, "sentryAddress")) {
            char *addr = NULL;
            if (!is_null(value)) {
                rc = get_string(w, value, sub, &addr);
            }
            if (rc == 0 && addr != NULL && addr[0] != '\0') {
                free(cfg->sentry_address);
                cfg->sentry_address = addr;
                addr = NULL;
            }
            free(addr);
        } else if (key_is(key, "tokenValidators")) {
            rc = parse_validators(w, value, sub, cfg);
        } else if (++unknown <= MAX_UNKNOWN_WARNINGS) {
            PK_LOG_WARN("config unknown key ignored file=%s line=%zu key=\"%s\"", w->name,
                        key->start_mark.line + 1,
                        pk_quote(q, sizeof(q), (const char *)key->data.scalar.value,
                                 key->data.scalar.length));
        }
        if (rc != 0) {
            return rc;
        }
    }
    if (unknown > MAX_UNKNOWN_WARNINGS) {
        PK_LOG_WARN("config unknown keys ignored file=%s section=spec.mtls more=%zu", w->name,
                    unknown - MAX_UNKNOWN_WARNINGS);
    }
    return 0;
}

static int parse_root(const struct walk *w, const yaml_node_t *root, struct pk_sentry_config *cfg)
{
    yaml_node_t *key;
    yaml_node_t *value;
    const yaml_node_t *spec = NULL;
    int rc;

    if (root == NULL || is_null(root)) {
        return 0;
    }
    rc = check_mapping(w, root, "");
    if (rc != 0) {
        return rc;
    }
    FOR_EACH_PAIR(w, root, key, value)
    {
        if (key_is(key, "spec")) {
            spec = value;
        }
    }
    if (spec == NULL || is_null(spec)) {
        return 0;
    }
    rc = check_mapping(w, spec, "spec");
    if (rc != 0) {
        return rc;
    }
    FOR_EACH_PAIR(w, spec, key, value)
    {
        if (key_is(key, "mtls")) {
            return parse_mtls(w, value, cfg);
        }
    }
    return 0;
}

/* Turn libyaml's error state into "name:line:col: malformed YAML: problem (context)". */
static int yaml_failure(const yaml_parser_t *parser, const char *name, struct pk_err *err)
{
    const char *problem = parser->problem ? parser->problem : "unknown error";

    if (parser->error == YAML_MEMORY_ERROR) {
        return pk_err_set(err, PK_E_INVALID, "%s: malformed YAML: out of memory", name);
    }
    if (parser->error == YAML_READER_ERROR) {
        return pk_err_set(err, PK_E_INVALID, "%s: malformed YAML: %s at byte %zu", name, problem,
                          parser->problem_offset);
    }
    if (parser->context != NULL) {
        return pk_err_set(err, PK_E_INVALID, "%s:%zu:%zu: malformed YAML: %s (%s at line %zu)",
                          name, parser->problem_mark.line + 1, parser->problem_mark.column + 1,
                          problem, parser->context, parser->context_mark.line + 1);
    }
    return pk_err_set(err, PK_E_INVALID, "%s:%zu:%zu: malformed YAML: %s", name,
                      parser->problem_mark.line + 1, parser->problem_mark.column + 1, problem);
}

/* libyaml's scanner costs O(depth) per token, so deep nesting is quadratic (half a megabyte of
 * "[" takes minutes). Walk the events first and stop at MAX_DEPTH, before loading the document. */
static int check_depth(const uint8_t *yaml, size_t len, const char *name, struct pk_err *err)
{
    yaml_parser_t parser;
    yaml_event_t event;
    int depth = 0;
    int rc = 0;

    if (!yaml_parser_initialize(&parser)) {
        return pk_err_set(err, -ENOMEM, "%s: cannot initialise the YAML parser", name);
    }
    yaml_parser_set_input_string(&parser, yaml, len);
    for (;;) {
        yaml_event_type_t type;
        if (!yaml_parser_parse(&parser, &event)) {
            rc = yaml_failure(&parser, name, err);
            break;
        }
        type = event.type;
        if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) {
            if (++depth > MAX_DEPTH) {
                rc = pk_err_set(err, PK_E_INVALID, "%s:%zu:%zu: nested deeper than %d levels", name,
                                event.start_mark.line + 1, event.start_mark.column + 1, MAX_DEPTH);
            }
        } else if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT) {
            depth--;
        }
        yaml_event_delete(&event);
        if (rc != 0 || type == YAML_STREAM_END_EVENT) {
            break;
        }
    }
    yaml_parser_delete(&parser);
    return rc;
}

struct pk_sentry_config *pk_sentry_config_new(void)
{
    struct pk_sentry_config *cfg = pk_xcalloc(1, sizeof(*cfg));

    cfg->ttl_ns = PK_SENTRY_DEFAULT_WORKLOAD_CERT_TTL;
    cfg->skew_ns = PK_SENTRY_DEFAULT_ALLOWED_CLOCK_SKEW;
    cfg->control_plane_trust_domain = pk_xstrdup(PK_SENTRY_DEFAULT_CONTROL_PLANE_TRUST_DOMAIN);
    cfg->mtls_enabled = true;
    return cfg;
}

int pk_sentry_config_parse(const uint8_t *yaml, size_t len, const char *name,
                           struct pk_sentry_config **out, struct pk_err *err)
{
    struct pk_sentry_config *cfg = NULL;
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_document_t extra;
    bool parser_ready = false;
    bool doc_ready = false;
    struct walk w;
    int rc;

    if (len > PK_SENTRY_CONFIG_MAX_BYTES) {
        return pk_err_set(err, PK_E_TOOBIG, "%s: %zu bytes, more than the %u allowed", name, len,
                          (unsigned)PK_SENTRY_CONFIG_MAX_BYTES);
    }
    if (len == 0) {
        yaml = (const uint8_t *)"";
    }
    rc = check_depth(yaml, len, name, err);
    if (rc != 0) {
        return rc;
    }
    if (!yaml_parser_initialize(&parser)) {
        return pk_err_set(err, -ENOMEM, "%s: cannot initialise the YAML parser", name);
    }
    parser_ready = true;
    yaml_parser_set_input_string(&parser, yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = yaml_failure(&parser, name, err);
        goto out;
    }
    doc_ready = true;
    if (yaml_document_get_root_node(&doc) != NULL) {
        /* A second document is refused rather than silently ignored. */
        if (!yaml_parser_load(&parser, &extra)) {
            rc = yaml_failure(&parser, name, err);
            goto out;
        }
        if (yaml_document_get_root_node(&extra) != NULL) {
            rc = pk_err_set(err, PK_E_INVALID, "%s:%zu:%zu: more than one YAML document", name,
                            extra.start_mark.line + 1, extra.start_mark.column + 1);
            yaml_document_delete(&extra);
            goto out;
        }
        yaml_document_delete(&extra);
    }
    cfg = pk_sentry_config_new();
    w.doc = &doc;
    w.name = name;
    w.err = err;
    rc = parse_root(&w, yaml_document_get_root_node(&doc), cfg);
    if (rc != 0) {
        goto out;
    }
    *out = cfg;
    cfg = NULL;
out:
    pk_sentry_config_free(cfg);
    if (doc_ready) {
        yaml_document_delete(&doc);
    }
    if (parser_ready) {
        yaml_parser_delete(&parser);
    }
    return rc;
}

int pk_sentry_config_load(const char *path, struct pk_sentry_config **out, struct pk_err *err)
{
    struct pk_buf buf;
    int rc;

    /* One byte over the cap, so that a file of exactly the cap still reads to EOF. */
    pk_buf_init(&buf, PK_SENTRY_CONFIG_MAX_BYTES + 1);
    rc = pk_fs_read_file(path, PK_SENTRY_CONFIG_MAX_BYTES, &buf, err);
    if (rc == 0) {
        rc = pk_sentry_config_parse(buf.data, buf.len, path, out, err);
    }
    pk_buf_free(&buf);
    return rc;
}

void pk_sentry_config_log(const struct pk_sentry_config *cfg)
{
    char ttl[PK_DURATION_STR_LEN];
    char skew[PK_DURATION_STR_LEN];

    PK_LOG_INFO("sentry config workload_cert_ttl=%s allowed_clock_skew=%s validators=%s",
                pk_duration_format(cfg->ttl_ns, ttl, sizeof(ttl)),
                pk_duration_format(cfg->skew_ns, skew, sizeof(skew)),
                cfg->jwks_enabled ? "jwks" : "default");
}

struct pk_sentry_config *pk_sentry_config_free(struct pk_sentry_config *cfg)
{
    if (cfg == NULL) {
        return NULL;
    }
    free(cfg->control_plane_trust_domain);
    free(cfg->sentry_address);
    free(cfg->jwks.source);
    free(cfg->jwks.ca_certificate);
    free(cfg);
    return NULL;
}
