/* SPDX-License-Identifier: Apache-2.0 */
/* picket: reading picket.ini (see the notes at the top of sidecar/config.c). */
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

#define KNOWN_SECTIONS                                                                             \
    "[agent], [sentry], [admin], [log], [proxy], [iptables], [inbound NAME], [outbound NAME] "     \
    "and [transparent NAME]"
/* Every key of every unnamed section at most once. */
#define MAX_SEEN 64
/* "transparent " NAME and its NUL. */
#define SECTION_LABEL_LEN 64

struct seen {
    const struct section_kind *kind;
    const struct key *key;
    int line;
};

/* Where one listener section and its keys are: 0 = not in the text. */
struct listener_lines {
    int section;
    int key[CONFIG_N_LISTENER_KEYS]; /* the first line of each key of config_listener_keys[] */
};

struct parser {
    const char *name; /* of the text, for messages */
    const char *p, *end;
    int line;                        /* number of the line last handed to inih */
    const struct section_kind *kind; /* of the current section; NULL before the first */
    char section[SECTION_LABEL_LEN]; /* the current section as messages show it: "inbound web" */
    bool key_in_section; /* inih's prev_name: an indented line now would be a continuation */
    struct pk_sidecar_config *scratch;
    struct seen seen[MAX_SEEN];
    size_t n_seen;
    struct listener_lines *lines; /* one per scratch->listeners[], owned */
    size_t listener;              /* a named current section: its index in scratch->listeners */
    bool failed;
    struct pk_err *err;
};

/* ---- the INI parser ---- */

static void fail(struct parser *ps, const char *fmt, ...) PK_PRINTF(2, 3);

static void fail(struct parser *ps, const char *fmt, ...)
{
    char msg[sizeof(ps->err->msg)];
    va_list ap;

    if (ps->failed) {
        return;
    }
    ps->failed = true;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pk_err_set(ps->err, PK_E_INVALID, "%s:%d: %s", ps->name, ps->line, msg);
}

/* fail() at an earlier line: for the rules checked after the whole text is read. */
static void fail_at(struct parser *ps, int line, const char *fmt, ...) PK_PRINTF(3, 4);

static void fail_at(struct parser *ps, int line, const char *fmt, ...)
{
    char msg[sizeof(ps->err->msg)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ps->line = line;
    fail(ps, "%s", msg);
}

/* inih's find_chars_or_comment over s[i, end): the first of chars, or of a ';' that follows a
 * blank (an inline comment), or end. */
static size_t find_chars_or_comment(const char *s, size_t i, size_t end, const char *chars)
{
    bool was_space = false;

    while (i < end && strchr(chars, s[i]) == NULL && !(was_space && s[i] == ';')) {
        was_space = config_is_blank(s[i]);
        i++;
    }
    return i;
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

/* Start a listener section: name (len bytes, not NUL-terminated) is its NAME and shown its
 * header as messages quote it. */
static int begin_listener(struct parser *ps, const char *name, size_t len, const char *shown)
{
    struct pk_sidecar_config *sc = ps->scratch;
    enum pk_listener_kind kind = ps->kind->only == KF_INBOUND    ? PK_LISTENER_INBOUND
                                 : ps->kind->only == KF_OUTBOUND ? PK_LISTENER_OUTBOUND
                                                                 : PK_LISTENER_TRANSPARENT;
    char q[QUOTE_LEN];
    size_t n = sc->n_listeners;

    for (size_t i = 0; i < len; i++) {
        if (!is_name_char(name[i])) {
            fail(ps, "[%s]: bad NAME: it must be 1 to %d of the letters, digits, '_', '.' and '-'",
                 pk_quote(q, sizeof(q), shown, strlen(shown)), PK_SIDECAR_CONFIG_MAX_NAME);
            return PK_E_INVALID;
        }
    }
    if (len > PK_SIDECAR_CONFIG_MAX_NAME) {
        fail(ps, "[%s...]: the NAME is longer than %d bytes",
             pk_quote(q, sizeof(q), shown, strlen(shown)), PK_SIDECAR_CONFIG_MAX_NAME);
        return PK_E_INVALID;
    }
    /* Names label logs, metrics and /status, so both config_kinds share one namespace. */
    for (size_t i = 0; i < n; i++) {
        const struct pk_listener_config *other = &sc->listeners[i];
        if (strlen(other->name) == len && memcmp(other->name, name, len) == 0) {
            fail(ps, "[%s]: the NAME %s is already used by [%s %s] on line %d", shown, other->name,
                 pk_listener_kind_name(other->kind), other->name, ps->lines[i].section);
            return PK_E_INVALID;
        }
    }
    if (n >= PK_SIDECAR_CONFIG_MAX_LISTENERS) {
        fail(ps, "[%s]: more than %d listener sections", shown, PK_SIDECAR_CONFIG_MAX_LISTENERS);
        return PK_E_INVALID;
    }
    sc->listeners = pk_xrealloc(sc->listeners, (n + 1) * sizeof(*sc->listeners));
    ps->lines = pk_xrealloc(ps->lines, (n + 1) * sizeof(*ps->lines));
    config_listener_init(&sc->listeners[n], kind, pk_xstrndup(name, len));
    ps->lines[n] = (struct listener_lines){.section = ps->line};
    sc->n_listeners = n + 1;
    ps->listener = n;
    snprintf(ps->section, sizeof(ps->section), "%s", shown);
    return 0;
}

static int begin_section(struct parser *ps, const char *header, size_t len)
{
    const char *space = memchr(header, ' ', len);
    size_t kind_len = space != NULL ? (size_t)(space - header) : len;
    size_t cut = INIH_MAX_SECTION;
    char q[QUOTE_LEN], shown[SECTION_LABEL_LEN];

    ps->kind = NULL;
    ps->key_in_section = false;
    for (size_t i = 0; i < CONFIG_N_KINDS; i++) {
        if (strlen(config_kinds[i].name) == kind_len &&
            memcmp(config_kinds[i].name, header, kind_len) == 0) {
            ps->kind = &config_kinds[i];
        }
    }
    /* inih cuts section names to 49 bytes; ours track a listener's name themselves. */
    if (ps->kind != NULL && ps->kind->named) {
        cut = kind_len + 1 + PK_SIDECAR_CONFIG_MAX_NAME;
    }
    PK_ASSERT(cut < sizeof(shown));
    snprintf(shown, sizeof(shown), "%.*s", (int)PK_MIN(len, cut), header);
    if (len > INIH_MAX_SECTION && (ps->kind == NULL || !ps->kind->named)) {
        fail(ps, "[%s...]: section name is longer than %d bytes",
             pk_quote(q, sizeof(q), shown, strlen(shown)), INIH_MAX_SECTION);
        return PK_E_INVALID;
    }
    if (ps->kind == NULL) {
        fail(ps, "[%s]: unknown section (picket.ini has " KNOWN_SECTIONS ")",
             pk_quote(q, sizeof(q), shown, strlen(shown)));
        return PK_E_INVALID;
    }
    if (!ps->kind->named && space != NULL) {
        fail(ps, "[%s]: section [%s] takes no name", pk_quote(q, sizeof(q), shown, strlen(shown)),
             ps->kind->name);
        return PK_E_INVALID;
    }
    if (ps->kind->named && (space == NULL || kind_len + 1 == len)) {
        fail(ps, "[%s]: section [%s] needs a name, as in [%s NAME]",
             pk_quote(q, sizeof(q), shown, strlen(shown)), ps->kind->name, ps->kind->name);
        return PK_E_INVALID;
    }
    if (ps->kind->named) {
        return begin_listener(ps, space + 1, len - kind_len - 1, shown);
    }
    snprintf(ps->section, sizeof(ps->section), "%s", ps->kind->name);
    return 0;
}

/* Classify one raw line (len bytes, no LF) the way inih will, and refuse what inih would
 * misread. */
static int check_line(struct parser *ps, const char *s, size_t len)
{
    size_t start = 0, end = len;

    if (ps->line == 1 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
        start = 3; /* inih skips a UTF-8 BOM on the first line */
    }
    while (end > start && config_is_blank(s[end - 1])) {
        end--;
    }
    while (start < end && config_is_blank(s[start])) {
        start++;
    }
    if (start == end || s[start] == ';' || s[start] == '#') {
        return 0;
    }
    if (start > 0 && config_is_blank(s[start - 1]) && ps->key_in_section) {
        fail(ps, "indented line: inih would append it to the value of the key above; remove the "
                 "leading blanks (picket.ini has no continuation lines)");
        return PK_E_INVALID;
    }
    if (s[start] == '[') {
        size_t close = find_chars_or_comment(s, start + 1, end, "]");
        size_t after = close + 1;
        if (close == end || s[close] != ']') {
            fail(ps, "section header without a closing ']'");
            return PK_E_INVALID;
        }
        while (after < end && config_is_blank(s[after])) {
            after++;
        }
        if (after < end && s[after] != ';' && s[after] != '#') {
            fail(ps, "unexpected text after the section header");
            return PK_E_INVALID;
        }
        return begin_section(ps, s + start + 1, close - start - 1);
    }
    size_t eq = find_chars_or_comment(s, start, end, "=:");
    if (eq == end || (s[eq] != '=' && s[eq] != ':')) {
        fail(ps, "expected 'key = value', a [section] or a comment");
        return PK_E_INVALID;
    }
    ps->key_in_section = true;
    return 0;
}

/* inih's fgets-style reader over the text: one line per call, after check_line. */
static char *read_line(char *str, int num, void *stream)
{
    struct parser *ps = stream;
    const char *nl;
    size_t len, content;

    if (ps->failed || ps->p >= ps->end) {
        return NULL;
    }
    nl = memchr(ps->p, '\n', (size_t)(ps->end - ps->p));
    len = nl != NULL ? (size_t)(nl - ps->p) : (size_t)(ps->end - ps->p);
    content = (len > 0 && ps->p[len - 1] == '\r') ? len - 1 : len;
    ps->line++;
    /* The line, its CR, LF and NUL must all fit in inih's num-byte buffer. */
    if (content > PK_SIDECAR_CONFIG_MAX_LINE || num < 4 || len + 2 > (size_t)num) {
        fail(ps, "line is too long (%zu bytes; at most %d): inih would cut it", content,
             PK_MIN(PK_SIDECAR_CONFIG_MAX_LINE, num - 3));
        return NULL;
    }
    if (memchr(ps->p, '\0', len) != NULL) {
        fail(ps, "NUL byte in the line");
        return NULL;
    }
    if (check_line(ps, ps->p, len) != 0) {
        return NULL;
    }
    memcpy(str, ps->p, len);
    if (nl != NULL) {
        str[len++] = '\n';
    }
    str[len] = '\0';
    ps->p += len; /* len now counts the LF, if there was one */
    return str;
}

/* Where the file set key_name of the unnamed section whose key table is keys. */
static const struct seen *find_seen_in(const struct parser *ps, const struct key *keys,
                                       const char *key_name)
{
    for (size_t i = 0; i < ps->n_seen; i++) {
        if (ps->seen[i].kind->keys == keys && strcmp(ps->seen[i].key->name, key_name) == 0) {
            return &ps->seen[i];
        }
    }
    return NULL;
}

/* Where the file set key_name of [agent] (most rules between keys are about [agent]). */
static const struct seen *find_seen(const struct parser *ps, const char *key_name)
{
    return find_seen_in(ps, config_agent_keys, key_name);
}

/* Whether sections of kind take key (a listener kind takes only its own listener keys). */
static bool kind_takes(const struct section_kind *kind, const struct key *key)
{
    return kind->only == 0 || (key->flags & kind->only) != 0;
}

/* A key of the current listener section. */
static int on_listener_key(struct parser *ps, const struct key *key, const char *value)
{
    struct listener_lines *lines = &ps->lines[ps->listener];
    int *first = &lines->key[key - config_listener_keys];
    struct pk_err e;

    if (*first != 0 && !(key->flags & KF_REPEAT)) {
        fail(ps, "[%s] %s: given twice (first on line %d)", ps->section, key->name, *first);
        return 0;
    }
    pk_err_clear(&e);
    if (config_set_value(key, value, &ps->scratch->listeners[ps->listener], &e) != 0) {
        fail(ps, "[%s] %s: %s", ps->section, key->name, e.msg);
        return 0;
    }
    if (*first == 0) {
        *first = ps->line;
    }
    return 1;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct parser *ps = user;
    const struct key *key = NULL;
    char q[QUOTE_LEN], known[512];
    struct pk_err e;
    size_t off = 0;

    /* inih cuts section names to 49 bytes: ps->section has the whole one. */
    (void)section;
    if (ps->failed) {
        return 0;
    }
    if (ps->kind == NULL) {
        fail(ps, "%s: key outside a section (put it under " KNOWN_SECTIONS ")",
             pk_quote(q, sizeof(q), name, strlen(name)));
        return 0;
    }
    for (size_t i = 0; i < ps->kind->n_keys; i++) {
        if (strcmp(ps->kind->keys[i].name, name) == 0) {
            key = &ps->kind->keys[i];
        }
    }
    if (key != NULL && !kind_takes(ps->kind, key)) {
        char where[96] = "";
        size_t off_w = 0;
        for (size_t i = 0; i < CONFIG_N_KINDS; i++) {
            if (config_kinds[i].named && (key->flags & config_kinds[i].only) != 0) {
                int w = snprintf(where + off_w, sizeof(where) - off_w, "%s[%s NAME]",
                                 off_w > 0 ? " or " : "", config_kinds[i].name);
                off_w += w > 0 ? (size_t)w : 0;
            }
        }
        fail(ps, "[%s] %s: not valid in a%s %s section (only %s has it)", ps->section, key->name,
             ps->kind->only == KF_TRANSPARENT ? "" : "n", ps->kind->name, where);
        return 0;
    }
    if (key == NULL) {
        known[0] = '\0';
        for (size_t i = 0; i < ps->kind->n_keys && off < sizeof(known); i++) {
            if (!kind_takes(ps->kind, &ps->kind->keys[i])) {
                continue;
            }
            int n = snprintf(known + off, sizeof(known) - off, "%s%s", off > 0 ? ", " : "",
                             ps->kind->keys[i].name);
            off += n > 0 ? (size_t)n : 0;
        }
        fail(ps, "[%s] %s: unknown key (the keys of [%s%s] are %s)", ps->section,
             pk_quote(q, sizeof(q), name, strlen(name)), ps->kind->name,
             ps->kind->named ? " NAME" : "", known);
        return 0;
    }
    if (ps->kind->named) {
        return on_listener_key(ps, key, value);
    }
    /* Dapr's settings are single-valued; a second line is a mistake, not an override. */
    for (size_t i = 0; i < ps->n_seen; i++) {
        if (ps->seen[i].key == key) {
            fail(ps, "[%s] %s: given twice (first on line %d)", ps->section, name,
                 ps->seen[i].line);
            return 0;
        }
    }
    pk_err_clear(&e);
    if (config_set_value(key, value, ps->scratch, &e) != 0) {
        fail(ps, "[%s] %s: %s", ps->section, name, e.msg);
        return 0;
    }
    PK_ASSERT(ps->n_seen < MAX_SEEN);
    ps->seen[ps->n_seen++] = (struct seen){.kind = ps->kind, .key = key, .line = ps->line};
    return 1;
}

/* The value a key will have after the merge: the file's when it set the key, else into's. */
static const void *effective(const struct parser *ps, const struct pk_sidecar_config *into,
                             const char *key_name, size_t offset)
{
    const void *base = find_seen(ps, key_name) != NULL ? (const void *)ps->scratch : into;
    return (const char *)base + offset;
}

/* Fail at the later of the two keys' lines (the one that made the pair wrong), if the file set
 * either. */
static bool fail_pair(struct parser *ps, const char *a, const char *b, const char *fmt, ...)
        PK_PRINTF(4, 5);

static bool fail_pair(struct parser *ps, const char *a, const char *b, const char *fmt, ...)
{
    const struct seen *sa = find_seen(ps, a), *sb = find_seen(ps, b);
    const struct seen *at = sa;
    char msg[512];
    va_list ap;

    if (sa == NULL && sb == NULL) {
        return false;
    }
    if (at == NULL || (sb != NULL && sb->line > sa->line)) {
        at = sb;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ps->line = at->line;
    fail(ps, "[%s] %s: %s", at->kind->name, at->key->name, msg);
    return true;
}

/* [dns] ttl_max >= ttl_min, on the values the merge will produce; the error is at the later of
 * the two lines. */
static int check_dns_ttls(struct parser *ps, const struct pk_sidecar_config *into)
{
    const struct seen *lo = find_seen_in(ps, config_dns_keys, "ttl_min");
    const struct seen *hi = find_seen_in(ps, config_dns_keys, "ttl_max");
    double min = lo != NULL ? ps->scratch->dns_ttl_min : into->dns_ttl_min;
    double max = hi != NULL ? ps->scratch->dns_ttl_max : into->dns_ttl_max;
    const struct seen *at = lo;
    char a[PK_DURATION_STR_LEN], b[PK_DURATION_STR_LEN];

    if (max >= min || (lo == NULL && hi == NULL)) {
        return 0;
    }
    if (at == NULL || (hi != NULL && hi->line > lo->line)) {
        at = hi;
    }
    ps->line = at->line;
    fail(ps, "[dns] %s: ttl_max %s is less than ttl_min %s", at->key->name,
         pk_duration_format((int64_t)(max * 1e9), a, sizeof(a)),
         pk_duration_format((int64_t)(min * 1e9), b, sizeof(b)));
    return PK_E_INVALID;
}

/* Rules between keys of the file, checked on the values the merge will produce. */
static int check_file_rules(struct parser *ps, const struct pk_sidecar_config *into)
{
    double renew = *(const double *)effective(ps, into, "renew_at", FIELD(agent.renew_fraction));
    double jitter = *(const double *)effective(ps, into, "renew_jitter", FIELD(agent.renew_jitter));
    double initial =
            *(const double *)effective(ps, into, "retry_initial", FIELD(agent.retry_initial));
    double max = *(const double *)effective(ps, into, "retry_max", FIELD(agent.retry_max));
    char *const *dir = effective(ps, into, "export_dir", FIELD(agent.export_dir));
    char *const *command = effective(ps, into, "export_command", FIELD(agent.export_command));
    char *const *pid_file = effective(ps, into, "export_pid_file", FIELD(agent.export_pid_file));
    char a[PK_DURATION_STR_LEN], b[PK_DURATION_STR_LEN];

    /* The renewal time is drawn from renew +/- jitter: it must fall inside the lifetime. */
    if ((renew - jitter <= 0 || renew + jitter >= 1) &&
        fail_pair(ps, "renew_at", "renew_jitter",
                  "renew_at %g +/- renew_jitter %g leaves the lifetime: both ends must be between "
                  "0 and 1",
                  renew, jitter)) {
        return PK_E_INVALID;
    }
    if (max < initial &&
        fail_pair(ps, "retry_initial", "retry_max", "retry_max %s is less than retry_initial %s",
                  pk_duration_format((int64_t)(max * 1e9), a, sizeof(a)),
                  pk_duration_format((int64_t)(initial * 1e9), b, sizeof(b)))) {
        return PK_E_INVALID;
    }
    if (check_dns_ttls(ps, into) != 0) {
        return PK_E_INVALID;
    }
    if (*dir == NULL && *command != NULL &&
        fail_pair(ps, "export_command", "export_dir",
                  "export_command runs after an export, but export_dir is not set")) {
        return PK_E_INVALID;
    }
    if (*dir == NULL && *pid_file != NULL &&
        fail_pair(ps, "export_pid_file", "export_dir",
                  "export_pid_file is signalled after an export, but export_dir is not set")) {
        return PK_E_INVALID;
    }
    if (*dir == NULL && find_seen(ps, "export_group") != NULL &&
        fail_pair(ps, "export_group", "export_dir",
                  "export_group is the group of the exported files, but export_dir is not set")) {
        return PK_E_INVALID;
    }
    if (*pid_file == NULL && find_seen(ps, "export_signal") != NULL &&
        fail_pair(ps, "export_signal", "export_pid_file",
                  "export_signal needs export_pid_file (the process to signal)")) {
        return PK_E_INVALID;
    }
    return 0;
}

/* The first line of listener key key_name in lines; 0 when it was not given. */
static int key_line(const struct listener_lines *lines, const char *key_name)
{
    for (size_t i = 0; i < CONFIG_N_LISTENER_KEYS; i++) {
        if (strcmp(config_listener_keys[i].name, key_name) == 0) {
            return lines->key[i];
        }
    }
    PK_ASSERT(!"not a listener key");
    return 0;
}

/* The rules of one listener section that need all of its keys. */
static int check_listener(struct parser *ps, const struct pk_listener_config *lc,
                          const struct listener_lines *lines)
{
    const char *kind = pk_listener_kind_name(lc->kind);
    int spiffe_line = key_line(lines, "expect_spiffe_id");
    int app_line = key_line(lines, "expect_app_id");
    int ns_line = key_line(lines, "expect_namespace");
    char q[QUOTE_LEN];

    if (lc->listen == NULL) {
        fail_at(ps, lines->section,
                "[%s %s] listen: missing: a listener needs listen (where to accept)%s", kind,
                lc->name,
                lc->kind == PK_LISTENER_TRANSPARENT ? "" : " and target (where to connect)");
        return PK_E_INVALID;
    }
    if (lc->kind == PK_LISTENER_TRANSPARENT) {
        /* The firewall redirects TCP to a port of this host: a unix socket cannot take it. */
        if (lc->listen_addr.kind != PK_ADDR_INET) {
            fail_at(ps, key_line(lines, "listen"),
                    "[%s %s] listen: '%s': a transparent listener takes redirected TCP "
                    "connections, so it needs an IP address and port",
                    kind, lc->name, pk_quote(q, sizeof(q), lc->listen, strlen(lc->listen)));
            return PK_E_INVALID;
        }
        if (lc->n_map == 0 && lc->unmapped == PK_UNMAPPED_DENY) {
            fail_at(ps, lines->section,
                    "[%s %s]: no map line and unmapped = deny would refuse every connection: "
                    "add map = CIDR [PORTS] ACTION lines",
                    kind, lc->name);
            return PK_E_INVALID;
        }
        if (lc->n_map == 0 && lc->n_intercept == 0) {
            fail_at(ps, lines->section,
                    "[%s %s]: nothing to intercept: add intercept = CIDR [PORTS] (or map lines, "
                    "whose destinations are intercepted by default)",
                    kind, lc->name);
            return PK_E_INVALID;
        }
    } else if (lc->target == NULL) {
        fail_at(ps, lines->section,
                "[%s %s] target: missing: a listener needs listen (where to accept) and target "
                "(where to connect)",
                kind, lc->name);
        return PK_E_INVALID;
    }
    if (lc->kind == PK_LISTENER_INBOUND) {
        /* REDIRECT in PREROUTING sends to the address of the interface the connection came
         * in on, never to loopback. */
        if (lc->n_intercept_port > 0 && pk_addr_is_loopback(&lc->listen_addr)) {
            fail_at(ps, key_line(lines, "intercept_port"),
                    "[%s %s] intercept_port: the firewall redirects incoming connections to this "
                    "host's own address, but listen is '%s'; listen on 0.0.0.0:PORT or [::]:PORT",
                    kind, lc->name, pk_quote(q, sizeof(q), lc->listen, strlen(lc->listen)));
            return PK_E_INVALID;
        }
        return 0;
    }
    if (lc->kind == PK_LISTENER_OUTBOUND) {
        if (spiffe_line != 0 && app_line != 0) {
            bool app_later = app_line > spiffe_line;
            fail_at(ps, app_later ? app_line : spiffe_line,
                    "[%s %s] %s: the server's identity is already given by %s on line %d: keep "
                    "one of expect_spiffe_id and expect_app_id",
                    kind, lc->name, app_later ? "expect_app_id" : "expect_spiffe_id",
                    app_later ? "expect_spiffe_id" : "expect_app_id",
                    app_later ? spiffe_line : app_line);
            return PK_E_INVALID;
        }
        if (ns_line != 0 && app_line == 0) {
            fail_at(ps, ns_line,
                    "[%s %s] expect_namespace: only goes with expect_app_id (expect_spiffe_id "
                    "names its namespace itself)",
                    kind, lc->name);
            return PK_E_INVALID;
        }
        if (spiffe_line == 0 && app_line == 0) {
            fail_at(ps, lines->section,
                    "[%s %s]: the server's identity is missing: set expect_app_id (with "
                    "expect_namespace for another namespace) or expect_spiffe_id",
                    kind, lc->name);
            return PK_E_INVALID;
        }
    }
    /* Whoever can connect to an outbound or transparent listener talks with this app's
     * identity. */
    if (!lc->allow_non_loopback && !pk_addr_is_loopback(&lc->listen_addr)) {
        fail_at(ps, key_line(lines, "listen"),
                "[%s %s] listen: '%s' is not a loopback address, so other hosts could connect "
                "with this app's identity; set allow_non_loopback = true if that is intended",
                kind, lc->name, pk_quote(q, sizeof(q), lc->listen, strlen(lc->listen)));
        return PK_E_INVALID;
    }
    return 0;
}

/* A transparent listener needs a way for the firewall to tell picket's own connections from
 * the app's: without one, each connection picket makes to an original destination would be
 * redirected back to picket, forever. */
static int check_loop_prevention(struct parser *ps, const struct pk_sidecar_config *into)
{
    const struct seen *mark_seen = find_seen_in(ps, config_proxy_keys, "mark");
    const struct seen *uid_seen = find_seen_in(ps, config_iptables_keys, "exclude_uid");
    const struct seen *gid_seen = find_seen_in(ps, config_iptables_keys, "exclude_gid");
    long mark = mark_seen != NULL ? ps->scratch->agent.mark : into->agent.mark;
    long uid = uid_seen != NULL ? ps->scratch->exclude_uid : into->exclude_uid;
    long gid = gid_seen != NULL ? ps->scratch->exclude_gid : into->exclude_gid;

    if (mark != 0 || uid >= 0 || gid >= 0) {
        return 0;
    }
    for (size_t i = 0; i < ps->scratch->n_listeners; i++) {
        const struct pk_listener_config *lc = &ps->scratch->listeners[i];
        if (lc->kind == PK_LISTENER_TRANSPARENT) {
            fail_at(ps, ps->lines[i].section,
                    "[transparent %s]: picket's own connections would be redirected back to it: "
                    "set [proxy] mark (a firewall mark picket puts on its sockets) or [iptables] "
                    "exclude_uid / exclude_gid (the user or group picket runs as)",
                    lc->name);
            return PK_E_INVALID;
        }
    }
    return 0;
}

/* Append the typed form of a rule (each value was checked as its line was read). */
static void add_policy_rule(struct pk_listener_config *lc, enum pk_policy_kind kind,
                            const char *value)
{
    int r;

    lc->policy = pk_xrealloc(lc->policy, (lc->n_policy + 1) * sizeof(*lc->policy));
    r = pk_policy_rule_parse(kind, value, &lc->policy[lc->n_policy], NULL);
    PK_ASSERT(r == 0);
    lc->n_policy++;
}

/* The listener's rules as the proxy takes them: inbound, the allow rules in the order the proxy
 * ORs them; outbound, the one expected peer (check_listener saw that there is exactly one). */
static void parse_policy(struct pk_listener_config *lc)
{
    static const enum pk_policy_kind allow_kinds[] = {PK_ALLOW_TRUST_DOMAIN, PK_ALLOW_NAMESPACE,
                                                      PK_ALLOW_APP_ID, PK_ALLOW_SPIFFE_ID};
    char *const *allow_lists[] = {lc->allow_trust_domain, lc->allow_namespace, lc->allow_app_id,
                                  lc->allow_spiffe_id};
    const size_t allow_counts[] = {lc->n_allow_trust_domain, lc->n_allow_namespace,
                                   lc->n_allow_app_id, lc->n_allow_spiffe_id};

    if (lc->kind == PK_LISTENER_INBOUND) {
        for (size_t k = 0; k < PK_ARRAY_LEN(allow_kinds); k++) {
            for (size_t i = 0; i < allow_counts[k]; i++) {
                add_policy_rule(lc, allow_kinds[k], allow_lists[k][i]);
            }
        }
    } else if (lc->kind == PK_LISTENER_OUTBOUND && lc->expect_spiffe_id != NULL) {
        add_policy_rule(lc, PK_EXPECT_SPIFFE_ID, lc->expect_spiffe_id);
    } else if (lc->kind == PK_LISTENER_OUTBOUND) {
        struct pk_policy_rule rule = {.kind = PK_EXPECT_APP_ID};
        int r = pk_policy_rule_parse(PK_EXPECT_APP_ID, lc->expect_app_id, &rule, NULL);
        PK_ASSERT(r == 0 && rule.ns == NULL);
        /* expect_namespace is a key of its own (checked as a namespace when read). */
        if (lc->expect_namespace != NULL) {
            rule.ns = pk_xstrdup(lc->expect_namespace);
        }
        lc->policy = pk_xrealloc(lc->policy, (lc->n_policy + 1) * sizeof(*lc->policy));
        lc->policy[lc->n_policy++] = rule; /* the listener takes rule's strings */
    }
}

/* n destinations parsed with parse (each text was checked as its line was read). */
static struct pk_dst *parse_dsts(char *const *texts, size_t n,
                                 int (*parse)(const char *, struct pk_dst *, struct pk_err *))
{
    struct pk_dst *out = n > 0 ? pk_xcalloc(n, sizeof(*out)) : NULL;

    for (size_t i = 0; i < n; i++) {
        int r = parse(texts[i], &out[i], NULL);
        PK_ASSERT(r == 0);
    }
    return out;
}

/* The listener's target, map lines, rules and firewall lines as their consumers take them:
 * parsed once, here. Each was checked as its line was read (listen is parsed before the checks
 * of check_listener, which look at it). */
static void parse_typed(struct pk_listener_config *lc)
{
    int r;

    lc->intercept_port_dst =
            parse_dsts(lc->intercept_port, lc->n_intercept_port, pk_dst_parse_ports);
    lc->intercept_dst = parse_dsts(lc->intercept, lc->n_intercept, pk_dst_parse);
    lc->exclude_dst = parse_dsts(lc->exclude, lc->n_exclude, pk_dst_parse);
    if (lc->target != NULL) {
        /* Literal first, so "localhost" stays the loopback address it always was. */
        r = pk_addr_parse(lc->target, 0, &lc->target_addr, NULL);
        if (r != 0) {
            r = pk_addr_parse(lc->target, PK_ADDR_NAMES, &lc->target_addr, NULL);
        }
        PK_ASSERT(r == 0);
    }
    if (lc->n_map > 0) {
        lc->map_rules = pk_xcalloc(lc->n_map, sizeof(*lc->map_rules));
        for (size_t i = 0; i < lc->n_map; i++) {
            r = pk_dst_rule_parse(lc->map[i], &lc->map_rules[i], NULL);
            PK_ASSERT(r == 0);
        }
    }
    parse_policy(lc);
}

/* Two listeners on one address would split its connections between two policies (or, as the
 * listening socket is exclusive, the second would fail late to bind); two on one unix path would
 * replace each other's socket file; a listener on the admin endpoint's address would fail late,
 * with only "Address already in use" to say why. So each listen address is compared with the others
 * and with the admin endpoint's before anything is bound, by what they bind (localhost is
 * 127.0.0.1, a wildcard covers its family's port), and the later line is reported, naming the
 * earlier one. */
static int check_listen_overlaps(struct parser *ps, const struct pk_sidecar_config *into)
{
    const struct seen *admin_seen = find_seen_in(ps, config_admin_keys, "listen");
    const char *admin_text = admin_seen != NULL ? ps->scratch->admin_listen : into->admin_listen;
    struct pk_addr admin_addr;
    const struct pk_addr *admin = NULL;
    char q[QUOTE_LEN], q2[QUOTE_LEN], where[64];
    int r = 0;

    if (admin_text != NULL && admin_text[0] != '\0' && strcmp(admin_text, "off") != 0 &&
        pk_addr_parse(admin_text, PK_ADDR_PORT_ZERO | PK_ADDR_UNIX_RELATIVE, &admin_addr, NULL) ==
                0) {
        admin = &admin_addr;
    }
    for (size_t i = 0; i < ps->scratch->n_listeners && r == 0; i++) {
        const struct pk_listener_config *lc = &ps->scratch->listeners[i];
        int line = key_line(&ps->lines[i], "listen");
        for (size_t j = 0; j < i && r == 0; j++) {
            const struct pk_listener_config *earlier = &ps->scratch->listeners[j];
            if (pk_addr_overlaps(&earlier->listen_addr, &lc->listen_addr)) {
                fail_at(ps, line,
                        "[%s %s] listen: '%s' takes the connections of [%s %s] listen '%s' (line "
                        "%d): give each listener its own address",
                        pk_listener_kind_name(lc->kind), lc->name,
                        pk_quote(q, sizeof(q), lc->listen, strlen(lc->listen)),
                        pk_listener_kind_name(earlier->kind), earlier->name,
                        pk_quote(q2, sizeof(q2), earlier->listen, strlen(earlier->listen)),
                        key_line(&ps->lines[j], "listen"));
                r = PK_E_INVALID;
            }
        }
        if (r == 0 && admin != NULL && pk_addr_overlaps(admin, &lc->listen_addr)) {
            if (admin_seen != NULL) {
                snprintf(where, sizeof(where), "line %d", admin_seen->line);
            } else {
                snprintf(where, sizeof(where), "its default");
            }
            if (admin_seen != NULL && admin_seen->line > line) {
                fail_at(ps, admin_seen->line,
                        "[admin] listen: '%s' is the address of [%s %s] listen '%s' (line %d): "
                        "give the admin endpoint another address",
                        pk_quote(q, sizeof(q), admin_text, strlen(admin_text)),
                        pk_listener_kind_name(lc->kind), lc->name,
                        pk_quote(q2, sizeof(q2), lc->listen, strlen(lc->listen)), line);
            } else {
                fail_at(ps, line,
                        "[%s %s] listen: '%s' is the admin endpoint's address ([admin] listen "
                        "'%s', %s): give the listener another address",
                        pk_listener_kind_name(lc->kind), lc->name,
                        pk_quote(q, sizeof(q), lc->listen, strlen(lc->listen)),
                        pk_quote(q2, sizeof(q2), admin_text, strlen(admin_text)), where);
            }
            r = PK_E_INVALID;
        }
    }
    return r;
}

/* The rules of the listener sections, checked once every key of the text is in. */
static int check_listeners(struct parser *ps, const struct pk_sidecar_config *into)
{
    for (size_t i = 0; i < ps->scratch->n_listeners; i++) {
        struct pk_listener_config *lc = &ps->scratch->listeners[i];
        /* The address the checks look at, parsed once (it was checked as its line was read). */
        if (lc->listen != NULL && pk_addr_parse(lc->listen, 0, &lc->listen_addr, NULL) != 0) {
            PK_ASSERT(!"a listen address checked when read no longer parses");
        }
        if (check_listener(ps, lc, &ps->lines[i]) != 0) {
            return PK_E_INVALID;
        }
        parse_typed(lc);
    }
    return check_listen_overlaps(ps, into);
}

int pk_sidecar_config_parse_ini(const char *text, size_t len, const char *name,
                                struct pk_sidecar_config *into, struct pk_err *err)
{
    struct parser ps = {
            .name = name,
            .p = len > 0 ? text : "",
            .end = (len > 0 ? text : "") + len,
            .scratch = pk_xcalloc(1, sizeof(*ps.scratch)),
            .err = err,
    };
    int r;

    r = ini_parse_stream(read_line, &ps, on_key, &ps);
    if (ps.failed) {
        r = PK_E_INVALID;
        goto out;
    }
    if (r == -2) {
        r = pk_err_set(err, -ENOMEM, "%s: inih is out of memory", name);
        goto out;
    }
    if (r != 0) {
        /* check_line classifies lines as inih does, so this should not happen. */
        r = pk_err_set(err, PK_E_INVALID, "%s:%d: syntax error", name, r);
        goto out;
    }
    r = check_file_rules(&ps, into);
    if (r == 0) {
        r = check_listeners(&ps, into);
    }
    if (r == 0) {
        r = check_loop_prevention(&ps, into);
    }
    if (r != 0) {
        goto out;
    }
    for (size_t i = 0; i < ps.n_seen; i++) {
        config_move_field(ps.seen[i].key, into, ps.scratch);
    }
    /* The listeners are one setting: a text that has some replaces into's, whose old ones
     * the scratch config then frees. */
    if (ps.scratch->n_listeners > 0) {
        struct pk_listener_config *old = into->listeners;
        size_t n_old = into->n_listeners;
        into->listeners = ps.scratch->listeners;
        into->n_listeners = ps.scratch->n_listeners;
        ps.scratch->listeners = old;
        ps.scratch->n_listeners = n_old;
    }
out:
    free(ps.lines);
    pk_sidecar_config_free(ps.scratch);
    return r;
}
