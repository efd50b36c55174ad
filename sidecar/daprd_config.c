/* SPDX-License-Identifier: Apache-2.0 */
/* picket: daprd's Configuration YAML, read with libyaml's event parser.
 *
 * The events are walked once with a stack of the mapping keys that lead to the current node,
 * so "spec.mtls.enabled" is known as it is read and nothing is loaded into a document. The
 * stack is bounded: deeper nesting is an error (libyaml's scanner is quadratic in depth). */
#include "sidecar/daprd_config.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "common/buf.h"
#include "common/fsutil.h"
#include "common/log.h"

#define MAX_DEPTH 32
#define MAX_KEY   64
#define QUOTE_LEN 100

#define WHERE_PICKET_INI                                                                           \
    "--config takes daprd's Configuration YAML; picket.ini goes to -c or --config-file"

struct frame {
    bool mapping;          /* else a sequence */
    bool want_key;         /* mapping: the next scalar is a key */
    char key[MAX_KEY + 1]; /* mapping: the key whose value is being read ("" in a sequence) */
};

struct walk {
    const char *name;
    struct frame stack[MAX_DEPTH];
    int depth; /* frames in use */
    bool root_seen, kind_ok, mtls_enabled;
    struct pk_daprd_config *out;
    struct pk_err *err;
};

/* The dotted path of the value being read: "spec.mtls.enabled". */
static void value_path(const struct walk *w, char *out, size_t len)
{
    size_t used = 0;

    out[0] = '\0';
    for (int i = 0; i < w->depth && used < len; i++) {
        int n = snprintf(out + used, len - used, "%s%s", used > 0 ? "." : "", w->stack[i].key);
        used += n > 0 ? (size_t)n : 0;
    }
}

static void note_ignored(struct walk *w, const char *path)
{
    size_t used = strlen(w->out->ignored);

    if (strstr(w->out->ignored, path) != NULL) {
        return;
    }
    snprintf(w->out->ignored + used, sizeof(w->out->ignored) - used, "%s%s", used > 0 ? ", " : "",
             path);
}

/* A mapping key at path opens a value: note what picket does not read. */
static void on_key(struct walk *w, const char *path)
{
    if (w->depth == 2 && strcmp(w->stack[0].key, "spec") == 0 && strcmp(path, "spec.mtls") != 0) {
        note_ignored(w, path);
    } else if (w->depth == 3 && strncmp(path, "spec.mtls.", 10) == 0 &&
               strcmp(path, "spec.mtls.enabled") != 0) {
        note_ignored(w, path);
    }
}

static int on_scalar(struct walk *w, const yaml_event_t *ev)
{
    const char *value = (const char *)ev->data.scalar.value;
    struct frame *top = w->depth > 0 ? &w->stack[w->depth - 1] : NULL;
    char path[MAX_DEPTH * (MAX_KEY + 1)];

    if (top == NULL) {
        return pk_err_set(w->err, PK_E_INVALID,
                          "%s:%zu:%zu: the file is a single value, not a "
                          "Configuration (" WHERE_PICKET_INI ")",
                          w->name, ev->start_mark.line + 1, ev->start_mark.column + 1);
    }
    if (top->mapping && top->want_key) {
        snprintf(top->key, sizeof(top->key), "%.*s", MAX_KEY, value);
        top->want_key = false;
        value_path(w, path, sizeof(path));
        on_key(w, path);
        return 0;
    }
    value_path(w, path, sizeof(path));
    if (top->mapping) {
        top->want_key = true;
    }
    if (strcmp(path, "kind") == 0) {
        if (strcmp(value, "Configuration") != 0) {
            char q[QUOTE_LEN];
            return pk_err_set(w->err, PK_E_INVALID,
                              "%s:%zu:%zu: kind is '%s', not Configuration (" WHERE_PICKET_INI ")",
                              w->name, ev->start_mark.line + 1, ev->start_mark.column + 1,
                              pk_quote(q, sizeof(q), value, strlen(value)));
        }
        w->kind_ok = true;
    } else if (strcmp(path, "spec.mtls.enabled") == 0) {
        /* The booleans Kubernetes' YAML decoder takes; a quoted one is a string there. */
        if (ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
            ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE) {
            return pk_err_set(w->err, PK_E_INVALID,
                              "%s:%zu:%zu: spec.mtls.enabled: a quoted value is a string; write "
                              "true or false",
                              w->name, ev->start_mark.line + 1, ev->start_mark.column + 1);
        }
        if (strcmp(value, "true") == 0 || strcmp(value, "True") == 0 ||
            strcmp(value, "TRUE") == 0) {
            w->mtls_enabled = true;
        } else if (strcmp(value, "false") == 0 || strcmp(value, "False") == 0 ||
                   strcmp(value, "FALSE") == 0) {
            return pk_err_set(w->err, PK_E_INVALID,
                              "%s:%zu:%zu: spec.mtls.enabled is false, but picket is an mTLS "
                              "proxy and cannot run without mTLS: set it to true (or remove it), "
                              "or run without picket",
                              w->name, ev->start_mark.line + 1, ev->start_mark.column + 1);
        } else {
            char q[QUOTE_LEN];
            return pk_err_set(w->err, PK_E_INVALID,
                              "%s:%zu:%zu: spec.mtls.enabled: '%s' is not true or false", w->name,
                              ev->start_mark.line + 1, ev->start_mark.column + 1,
                              pk_quote(q, sizeof(q), value, strlen(value)));
        }
    }
    return 0;
}

static int on_event(struct walk *w, const yaml_event_t *ev)
{
    struct frame *top = w->depth > 0 ? &w->stack[w->depth - 1] : NULL;

    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return on_scalar(w, ev);
    case YAML_ALIAS_EVENT:
        if (top != NULL && top->mapping) {
            top->want_key = !top->want_key;
        }
        return 0;
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT:
        if (top == NULL && ev->type == YAML_SEQUENCE_START_EVENT) {
            return pk_err_set(w->err, PK_E_INVALID,
                              "%s:%zu:%zu: the file is a list, not a Configuration "
                              "(" WHERE_PICKET_INI ")",
                              w->name, ev->start_mark.line + 1, ev->start_mark.column + 1);
        }
        if (top != NULL && top->mapping && top->want_key) {
            return pk_err_set(w->err, PK_E_INVALID, "%s:%zu:%zu: a mapping key must be text",
                              w->name, ev->start_mark.line + 1, ev->start_mark.column + 1);
        }
        if (w->depth == MAX_DEPTH) {
            return pk_err_set(w->err, PK_E_INVALID, "%s:%zu:%zu: nested deeper than %d levels",
                              w->name, ev->start_mark.line + 1, ev->start_mark.column + 1,
                              MAX_DEPTH);
        }
        if (top != NULL && !top->mapping) {
            top->key[0] = '\0';
        }
        w->root_seen = true;
        w->stack[w->depth++] = (struct frame){
                .mapping = ev->type == YAML_MAPPING_START_EVENT,
                .want_key = true,
        };
        return 0;
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT:
        w->depth--;
        if (w->depth > 0 && w->stack[w->depth - 1].mapping) {
            w->stack[w->depth - 1].want_key = true;
        }
        return 0;
    case YAML_DOCUMENT_START_EVENT:
        if (w->root_seen) {
            return pk_err_set(w->err, PK_E_INVALID, "%s:%zu:%zu: more than one YAML document",
                              w->name, ev->start_mark.line + 1, ev->start_mark.column + 1);
        }
        return 0;
    default:
        return 0;
    }
}

int pk_daprd_config_parse(const uint8_t *yaml, size_t len, const char *name,
                          struct pk_daprd_config *out, struct pk_err *err)
{
    struct walk w = {.name = name, .err = err};
    struct pk_daprd_config cfg = {{0}};
    yaml_parser_t parser;
    yaml_event_t ev;
    int r = 0;

    w.out = &cfg;
    if (len > PK_DAPRD_CONFIG_MAX_BYTES) {
        return pk_err_set(err, PK_E_TOOBIG, "%s: %zu bytes, more than the %u allowed", name, len,
                          (unsigned)PK_DAPRD_CONFIG_MAX_BYTES);
    }
    if (!yaml_parser_initialize(&parser)) {
        return pk_err_set(err, PK_E_INVALID, "%s: cannot initialise the YAML parser", name);
    }
    yaml_parser_set_input_string(&parser, len > 0 ? yaml : (const uint8_t *)"", len);
    for (;;) {
        yaml_event_type_t type;
        if (!yaml_parser_parse(&parser, &ev)) {
            r = pk_err_set(err, PK_E_INVALID, "%s:%zu:%zu: not YAML: %s (" WHERE_PICKET_INI ")",
                           name, parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                           parser.problem != NULL ? parser.problem : "malformed");
            break;
        }
        type = ev.type;
        r = on_event(&w, &ev);
        yaml_event_delete(&ev);
        if (r != 0 || type == YAML_STREAM_END_EVENT) {
            break;
        }
    }
    yaml_parser_delete(&parser);
    if (r == 0 && !w.kind_ok) {
        r = pk_err_set(err, PK_E_INVALID,
                       "%s: no 'kind: Configuration': this is not a Dapr Configuration "
                       "(" WHERE_PICKET_INI ")",
                       name);
    }
    if (r == 0) {
        *out = cfg;
    }
    return r;
}

int pk_daprd_config_load(const char *path, struct pk_daprd_config *out, struct pk_err *err)
{
    struct pk_buf text;
    int r;

    pk_buf_init(&text, PK_DAPRD_CONFIG_MAX_BYTES);
    r = pk_fs_read_file(path, PK_DAPRD_CONFIG_MAX_BYTES, &text, err);
    if (r == 0) {
        r = pk_daprd_config_parse(text.data, text.len, path, out, err);
    }
    pk_buf_free(&text);
    return r;
}
