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
 * inih then splits `key = value` and calls on_key, which finds the key in its section kind's
 * table, parses the value into a scratch config and records the line. Only when the whole text is
 * good are the keys that were set moved into the caller's config, so a bad file changes nothing.
 *
 * A "section kind" is a row of kinds[]: a name, whether sections of that kind carry a name
 * ([inbound web]) and the table of keys. An unnamed kind's keys are fields of struct
 * pk_sidecar_config; a key is set at most once however often its section appears, which the
 * `seen` list (one row per key set) enforces. A named kind is a listener: its header appends a
 * struct pk_listener_config to the scratch config, and its keys are fields of that listener.
 * Both listener kinds share one table, listener_keys[], whose rows say which kinds take them
 * (so a key of the other kind gets its own message) and which repeat; `lines` keeps, per
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

#define DEFAULT_NAMESPACE    "default"
#define DEFAULT_CP_TD        "localhost"
#define DEFAULT_CP_NS        "default"
#define DEFAULT_ADMIN_LISTEN "127.0.0.1:9901"

/* inih copies a section name into a 50-byte buffer (MAX_SECTION in ini.c). */
#define INIH_MAX_SECTION 49
/* Room for a quoted, escaped piece of user input in a message. */
#define QUOTE_LEN 100
/* RFC 1035 §2.3.4, as a name without its final dot. */
#define MAX_DNS_NAME 253
/* The largest duration a key takes: longer is a typo. */
#define DAY (24 * 3600.0)

enum key_type {
    K_STRING,         /* non-empty text */
    K_SEGMENT,        /* a SPIFFE path segment: app id, namespace */
    K_TRUST_DOMAIN,   /* a SPIFFE trust domain */
    K_ADDRESS,        /* HOST:PORT or [V6]:PORT, port 1 to 65535 */
    K_LISTEN,         /* the admin endpoint: HOST:PORT, unix:PATH, "" or off */
    K_SOCKET,         /* a listener's address: IPv4:PORT, [V6]:PORT, localhost:PORT, unix:/PATH */
    K_APP_ID,         /* APP or NAMESPACE/APP */
    K_SPIFFE_ID,      /* a valid SPIFFE ID */
    K_SPIFFE_PATTERN, /* spiffe://...; the proxy's policy module checks the rest */
    K_SERVER_NAME,    /* a DNS name for SNI */
    K_BOOL,
    K_FRACTION, /* a decimal in [min, max] */
    K_DURATION, /* a Go duration, stored in seconds, in [min, max] */
    K_COUNT,    /* a long in [min, max] */
    K_SIZE,     /* a size_t in [min, max] */
    K_SIGNAL,   /* a signal name: HUP, SIGUSR1, ... */
    K_LOG_LEVEL,
    K_DST,      /* CIDR [PORTS] (common/dstmap.h) */
    K_DST_RULE, /* CIDR [PORTS] ACTION (common/dstmap.h) */
    K_PORTS,    /* PORT or LO-HI */
    K_UNMAPPED, /* deny or passthrough */
    K_MARK,     /* a 32-bit firewall mark, decimal or 0x hex; 0 = none */
    K_OWNER,    /* a uid or gid */
};

/* The key types whose field is a char * (the text as written, checked): one list for every
 * switch that treats them alike, so a new text type cannot be missed in one of them. */
#define CASE_TEXT_KEYS                                                                             \
    case K_STRING:                                                                                 \
    case K_SEGMENT:                                                                                \
    case K_TRUST_DOMAIN:                                                                           \
    case K_ADDRESS:                                                                                \
    case K_LISTEN:                                                                                 \
    case K_SOCKET:                                                                                 \
    case K_APP_ID:                                                                                 \
    case K_SPIFFE_ID:                                                                              \
    case K_SPIFFE_PATTERN:                                                                         \
    case K_SERVER_NAME:                                                                            \
    case K_DST:                                                                                    \
    case K_DST_RULE:                                                                               \
    case K_PORTS

/* struct key's flags: the listener kinds that take a listener key, and whether it repeats. */
#define KF_INBOUND     1u
#define KF_OUTBOUND    2u
#define KF_TRANSPARENT 16u
#define KF_BOTH        (KF_INBOUND | KF_OUTBOUND)
#define KF_ALL         (KF_INBOUND | KF_OUTBOUND | KF_TRANSPARENT)
#define KF_REPEAT      4u /* each line appends to a list: char **field with a size_t count */
/* Keys of unnamed sections that define the identity or its sources (or the process's shape):
 * SIGHUP refuses a file that changes them, because applying them needs a restart. */
#define KF_RESTART 8u

struct key {
    const char *name;
    enum key_type type;
    size_t offset; /* of the field in struct pk_sidecar_config, or in struct pk_listener_config for
                    * a listener key */
    double min, max;
    const char *what; /* K_SEGMENT: how messages name it */
    unsigned flags;   /* KF_* */
    const char *arg;  /* the value's placeholder in the reference: "DURATION" */
    const char *doc;  /* one sentence for the reference (--help, README) */
    size_t count;     /* KF_REPEAT: offset of the list's count in struct pk_listener_config */
};

#define FIELD(f)  offsetof(struct pk_sidecar_config, f)
#define LFIELD(f) offsetof(struct pk_listener_config, f)

/* A key of an unnamed section; the optional trailing designated initializers add .flags
 * (KF_RESTART) and the documentation fields. */
#define KEY(name_, type_, field_, min_, max_, what_, ...)                                          \
    {                                                                                              \
        .name = (name_), .type = (type_), .offset = FIELD(field_), .min = (min_), .max = (max_),   \
        .what = (what_), __VA_ARGS__                                                               \
    }
/* A single-valued key of listener sections. */
#define LKEY(name_, type_, field_, min_, max_, what_, flags_, ...)                                 \
    {                                                                                              \
        .name = (name_), .type = (type_), .offset = LFIELD(field_), .min = (min_), .max = (max_),  \
        .what = (what_), .flags = (flags_), __VA_ARGS__                                            \
    }
/* A repeatable key of inbound sections: field_ and n_##field_ hold the list. */
#define LLIST(name_, type_, field_, what_, ...)                                                    \
    LLISTK(name_, type_, field_, what_, KF_INBOUND, __VA_ARGS__)
/* A repeatable key of the listener kinds in flags_. */
#define LLISTK(name_, type_, field_, what_, flags_, ...)                                           \
    {                                                                                              \
        .name = (name_), .type = (type_), .offset = LFIELD(field_), .what = (what_),               \
        .flags = (flags_) | KF_REPEAT, .count = LFIELD(n_##field_), __VA_ARGS__                    \
    }

static const struct key agent_keys[] = {
        KEY("app_id", K_SEGMENT, agent.app_id, 0, 0, "app id", .flags = KF_RESTART, .arg = "ID",
            .doc = "the app id; required here, as --app-id or as APP_ID"),
        KEY("namespace", K_SEGMENT, agent.namespace_, 0, 0, "namespace", .flags = KF_RESTART,
            .arg = "NS", .doc = "the app's namespace (NAMESPACE overrides it)"),
        KEY("trust_domain", K_TRUST_DOMAIN, agent.trust_domain, 0, 0, NULL, .flags = KF_RESTART,
            .arg = "TD", .doc = "the trust domain to ask Sentry for; none: Sentry uses \"public\""),
        KEY("renew_at", K_FRACTION, agent.renew_fraction, 0.05, 0.95, NULL, .arg = "FRACTION",
            .doc = "renew at this fraction of the certificate's lifetime, 0.05 to 0.95"),
        KEY("renew_jitter", K_FRACTION, agent.renew_jitter, 0, 0.25, NULL, .arg = "FRACTION",
            .doc = "move the renewal by up to +/- this fraction of the lifetime, 0 to 0.25; "
                   "renew_at +/- renew_jitter stays between 0 and 1"),
        /* Durations from 1ms (a zero wait would spin) to a day (longer is a typo). */
        KEY("retry_initial", K_DURATION, agent.retry_initial, 0.001, DAY, NULL, .arg = "DURATION",
            .doc = "first wait after a failed request; each further wait doubles"),
        KEY("retry_max", K_DURATION, agent.retry_max, 0.001, DAY, NULL, .arg = "DURATION",
            .doc = "longest wait between retries"),
        KEY("initial_attempts", K_COUNT, agent.initial_attempts, 0, 1000000, NULL, .arg = "N",
            .doc = "exit after N failed first fetches; 0 keeps trying (daprd exits after one)"),
        KEY("request_timeout", K_DURATION, agent.request_timeout, 0.001, DAY, NULL,
            .arg = "DURATION", .doc = "deadline of one Sentry request"),
        KEY("cert_file", K_STRING, agent.cert_file, 0, 0, NULL, .flags = KF_RESTART, .arg = "FILE",
            .doc = "static identity instead of Sentry: the certificate chain (PEM), reloaded on "
                   "change"),
        KEY("key_file", K_STRING, agent.key_file, 0, 0, NULL, .flags = KF_RESTART, .arg = "FILE",
            .doc = "static identity: the private key (PEM), reloaded on change"),
        KEY("allow_tls12", K_BOOL, agent.allow_tls12, 0, 0, NULL, .arg = "BOOL",
            .doc = "also accept TLS 1.2 (AEAD suites only); otherwise TLS 1.3 only"),
        KEY("export_dir", K_STRING, agent.export_dir, 0, 0, NULL, .arg = "DIR",
            .doc = "write cert.pem, key.pem (0600) and bundle.pem here after each renewal"),
        KEY("export_command", K_STRING, agent.export_command, 0, 0, NULL, .arg = "COMMAND",
            .doc = "run with /bin/sh -c after each export"),
        KEY("export_pid_file", K_STRING, agent.export_pid_file, 0, 0, NULL, .arg = "FILE",
            .doc = "send export_signal to the process in this pid file after each export"),
        KEY("export_signal", K_SIGNAL, agent.export_signal, 0, 0, NULL, .arg = "SIGNAL",
            .doc = "the signal for export_pid_file: HUP, USR1, ... (with or without SIG)"),
};

static const struct key sentry_keys[] = {
        KEY("address", K_ADDRESS, agent.sentry_address, 0, 0, NULL, .flags = KF_RESTART,
            .arg = "HOST:PORT",
            .doc = "Sentry's gRPC address; none: a static identity (--sentry-address)"),
        KEY("trust_anchors_file", K_STRING, agent.trust_anchors_file, 0, 0, NULL,
            .flags = KF_RESTART, .arg = "FILE",
            .doc = "PEM file of the trusted roots, watched for changes (--trust-anchors-file, "
                   "DAPR_TRUST_ANCHORS_FILE)"),
        KEY("control_plane_trust_domain", K_TRUST_DOMAIN, agent.control_plane_trust_domain, 0, 0,
            NULL, .flags = KF_RESTART, .arg = "TD",
            .doc = "Sentry's trust domain: it must present spiffe://TD/ns/NS/dapr-sentry"),
        KEY("control_plane_namespace", K_SEGMENT, agent.control_plane_namespace, 0, 0,
            "control-plane namespace", .flags = KF_RESTART, .arg = "NS",
            .doc = "Sentry's namespace"),
        KEY("token_file", K_STRING, agent.token_file, 0, 0, NULL, .arg = "FILE",
            .doc = "a JWT sent to Sentry with each request (JWKS validator), read each time "
                   "(DAPR_SENTRY_TOKEN_FILE)"),
        KEY("adopt_trust_chain", K_BOOL, agent.adopt_sentry_anchors, 0, 0, NULL, .arg = "BOOL",
            .doc = "also trust the roots Sentry returns with each certificate"),
};

static const struct key admin_keys[] = {
        KEY("listen", K_LISTEN, admin_listen, 0, 0, NULL, .flags = KF_RESTART, .arg = "ADDRESS",
            .doc = "/healthz, /readyz, /status and /metrics on HOST:PORT, [V6]:PORT or unix:/PATH; "
                   "empty or off: none"),
};

static const struct key log_keys[] = {
        KEY("level", K_LOG_LEVEL, log_level, 0, 0, NULL, .arg = "LEVEL",
            .doc = "debug, info, warn or error (--log-level)"),
        KEY("json", K_BOOL, log_json, 0, 0, NULL, .arg = "BOOL",
            .doc = "log JSON objects instead of key=value lines (--log-as-json)"),
};

static const struct key proxy_keys[] = {
        /* 256 threads is far past the cores of any node a sidecar runs on. */
        KEY("workers", K_COUNT, workers, 0, 256, NULL, .flags = KF_RESTART, .arg = "N",
            .doc = "proxy threads, up to 256; 0: one per core"),
        /* 0: close every connection at once. */
        KEY("shutdown_timeout", K_DURATION, shutdown_timeout, 0, DAY, NULL, .arg = "DURATION",
            .doc = "on SIGTERM, let open connections finish for this long; 0 closes them at once"),
        KEY("mark", K_MARK, agent.mark, 0, 0, NULL, .flags = KF_RESTART, .arg = "MARK",
            .doc = "firewall mark (SO_MARK) on every socket picket connects, Sentry's included, so "
                   "the rules of `picket iptables` let them pass; decimal or 0x hex; 0: none; "
                   "needs CAP_NET_ADMIN"),
};

static const struct key iptables_keys[] = {
        KEY("exclude_uid", K_OWNER, exclude_uid, 0, 0, "uid", .arg = "UID",
            .doc = "`picket iptables`: never redirect this user's connections (picket's); -1: "
                   "none"),
        KEY("exclude_gid", K_OWNER, exclude_gid, 0, 0, "gid", .arg = "GID",
            .doc = "`picket iptables`: never redirect this group's connections; -1: none"),
};

static const struct key listener_keys[] = {
        LKEY("listen", K_SOCKET, listen, 0, 0, NULL, KF_ALL, .arg = "ADDRESS",
             .doc = "where to accept (required); outbound and transparent: loopback (or unix: "
                    "for outbound) unless allow_non_loopback"),
        LKEY("target", K_SOCKET, target, 0, 0, NULL, KF_BOTH, .arg = "ADDRESS",
             .doc = "where to connect (required): inbound, this app; outbound, the other app's "
                    "inbound listener"),
        LLIST("allow_trust_domain", K_TRUST_DOMAIN, allow_trust_domain, NULL, .arg = "TD",
              .doc = "let in any workload of trust domain TD (repeatable)"),
        LLIST("allow_namespace", K_SEGMENT, allow_namespace, "namespace", .arg = "NS",
              .doc = "let in any app of namespace NS of our trust domain (repeatable)"),
        LLIST("allow_app_id", K_APP_ID, allow_app_id, NULL, .arg = "APP",
              .doc = "let in app APP of our namespace, or NS/APP (repeatable)"),
        LLIST("allow_spiffe_id", K_SPIFFE_PATTERN, allow_spiffe_id, NULL, .arg = "ID",
              .doc = "let in this SPIFFE ID; a path segment * matches any one segment "
                     "(repeatable)"),
        LKEY("proxy_protocol", K_BOOL, proxy_protocol, 0, 0, NULL, KF_INBOUND, .arg = "BOOL",
             .doc = "send a PROXY protocol v2 header with the peer's SPIFFE ID to the target"),
        LKEY("permissive", K_BOOL, permissive, 0, 0, NULL, KF_INBOUND, .arg = "BOOL",
             .doc = "also accept plaintext (no TLS ClientHello first) and forward it as is, "
                    "counted apart"),
        LLISTK("intercept_port", K_PORTS, intercept_port, NULL, KF_INBOUND, .arg = "PORT",
               .doc = "`picket iptables` redirects incoming connections to PORT (or LO-HI) here; "
                      "listen must then not be loopback (repeatable)"),
        LLISTK("map", K_DST_RULE, map, NULL, KF_TRANSPARENT, .arg = "CIDR [PORTS] ACTION",
               .doc = "the identity a destination must prove: spiffe://..., app=APP, "
                      "app=NS/APP, any (our trust domain), passthrough or deny; the most "
                      "specific line wins (repeatable)"),
        LKEY("unmapped", K_UNMAPPED, unmapped, 0, 0, NULL, KF_TRANSPARENT, .arg = "POLICY",
             .doc = "deny or passthrough (plaintext, logged and counted) for destinations no map "
                    "line covers"),
        LLISTK("intercept", K_DST, intercept, NULL, KF_TRANSPARENT, .arg = "CIDR [PORTS]",
               .doc = "what `picket iptables` redirects here; none: the map lines' destinations "
                      "(repeatable)"),
        LLISTK("exclude", K_DST, exclude, NULL, KF_TRANSPARENT, .arg = "CIDR [PORTS]",
               .doc = "never redirected (repeatable)"),
        LKEY("expect_spiffe_id", K_SPIFFE_ID, expect_spiffe_id, 0, 0, NULL, KF_OUTBOUND,
             .arg = "ID", .doc = "the server must be exactly this SPIFFE ID"),
        LKEY("expect_app_id", K_SEGMENT, expect_app_id, 0, 0, "app id", KF_OUTBOUND, .arg = "APP",
             .doc = "the server must be app APP of our trust domain (this or expect_spiffe_id)"),
        LKEY("expect_namespace", K_SEGMENT, expect_namespace, 0, 0, "namespace", KF_OUTBOUND,
             .arg = "NS", .doc = "... in namespace NS; none: our namespace"),
        LKEY("server_name", K_SERVER_NAME, server_name, 0, 0, NULL, KF_OUTBOUND, .arg = "HOST",
             .doc = "SNI to send; none: no SNI"),
        LKEY("allow_non_loopback", K_BOOL, allow_non_loopback, 0, 0, NULL,
             KF_OUTBOUND | KF_TRANSPARENT, .arg = "BOOL",
             .doc = "let listen be reachable from other hosts, which then connect with our "
                    "identity"),
        LKEY("max_connections", K_COUNT, max_connections, 1, 1000000, NULL, KF_ALL, .arg = "N",
             .doc = "open connections, 1 to 1000000; more wait in the backlog"),
        LKEY("max_handshakes", K_COUNT, max_handshakes, 1, 100000, NULL, KF_ALL, .arg = "N",
             .doc = "connections not yet streaming, 1 to 100000"),
        /* A zero connect or handshake timeout would fail every connection; a zero idle time or
         * lifetime means none. */
        LKEY("connect_timeout", K_DURATION, connect_timeout, 0.001, DAY, NULL, KF_ALL,
             .arg = "DURATION", .doc = "to connect to the target"),
        LKEY("handshake_timeout", K_DURATION, handshake_timeout, 0.001, DAY, NULL, KF_ALL,
             .arg = "DURATION", .doc = "to complete the TLS handshake"),
        LKEY("idle_timeout", K_DURATION, idle_timeout, 0, DAY, NULL, KF_ALL, .arg = "DURATION",
             .doc = "close after this long without a byte either way; 0: never"),
        LKEY("max_lifetime", K_DURATION, max_lifetime, 0, DAY, NULL, KF_ALL, .arg = "DURATION",
             .doc = "close after this long in any case; 0: never"),
        /* A TLS record is up to 16 KiB; below 1 KiB per-read overhead dominates. */
        LKEY("buffer_size", K_SIZE, buffer_size, 1024, 1048576, NULL, KF_ALL, .arg = "BYTES",
             .doc = "buffer per direction, 1024 to 1048576"),
        LKEY("close_on_own_expiry", K_BOOL, close_on_own_expiry, 0, 0, NULL, KF_ALL, .arg = "BOOL",
             .doc = "also close a connection when the certificate it started with expires (the "
                    "peer's expiry always closes it)"),
};

struct section_kind {
    const char *name;
    bool named; /* sections of this kind are written [KIND NAME] */
    const struct key *keys;
    size_t n_keys;
    unsigned only;   /* named kinds: the KF_ bit of the keys it takes */
    const char *doc; /* what the section is, for the reference */
};

static const struct section_kind kinds[] = {
        {"agent", false, agent_keys, PK_ARRAY_LEN(agent_keys), 0,
         "The workload identity: who we are, when to renew, what to export."},
        {"sentry", false, sentry_keys, PK_ARRAY_LEN(sentry_keys), 0,
         "Where certificates come from and whom to trust."},
        {"admin", false, admin_keys, PK_ARRAY_LEN(admin_keys), 0,
         "The admin endpoint (`picket status` reads its /status)."},
        {"log", false, log_keys, PK_ARRAY_LEN(log_keys), 0, "Logging to stderr."},
        {"proxy", false, proxy_keys, PK_ARRAY_LEN(proxy_keys), 0, "All listeners."},
        {"iptables", false, iptables_keys, PK_ARRAY_LEN(iptables_keys), 0,
         "Read by `picket iptables` only: whose connections the redirect rules leave alone."},
        {"inbound", true, listener_keys, PK_ARRAY_LEN(listener_keys), KF_INBOUND,
         "Any number, NAME 1 to 48 of A-Z a-z 0-9 _ . - and unique among listeners. Accepts mTLS "
         "from other apps and forwards plain bytes to this app. Each allow_* line adds a rule and "
         "a peer matching any rule is let in; with no rule, any peer of our own trust domain is."},
        {"outbound", true, listener_keys, PK_ARRAY_LEN(listener_keys), KF_OUTBOUND,
         "Any number, NAME as above. Accepts plain connections from this app and forwards them "
         "over mTLS to another app's sidecar, which must prove the identity named by "
         "expect_app_id or expect_spiffe_id (exactly one of them)."},
        {"transparent", true, listener_keys, PK_ARRAY_LEN(listener_keys), KF_TRANSPARENT,
         "Any number, NAME as above. Accepts this app's outgoing connections that the firewall "
         "redirected here (`picket iptables`), reads where each was going (SO_ORIGINAL_DST) and "
         "forwards it there over mTLS, expecting the identity its map line names. Needs [proxy] "
         "mark or [iptables] exclude_uid/exclude_gid. IPv4 and IPv6 take a listener each."},
};

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
    int key[PK_ARRAY_LEN(listener_keys)]; /* the first line of each key of listener_keys[] */
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

static bool is_blank(char c)
{
    return isspace((unsigned char)c) != 0;
}
/* ---- values ---- */

static int parse_bool(const char *text, bool go_forms, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < PK_ARRAY_LEN(yes); i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    /* Go's flag package also takes t and f, and daprd's users write them. */
    if (go_forms && (strcasecmp(text, "t") == 0 || strcasecmp(text, "f") == 0)) {
        *out = text[0] == 't' || text[0] == 'T';
        return 0;
    }
    return PK_E_INVALID;
}

/* Digits with at most one '.', nothing else: strtod alone would also take "nan", "1e3", "0x1p-1"
 * and leading blanks. */
static int parse_decimal(const char *text, double *out)
{
    size_t digits = 0, dots = 0;
    char *end;

    for (const char *s = text; *s != '\0'; s++) {
        if (*s >= '0' && *s <= '9') {
            digits++;
        } else if (*s == '.') {
            dots++;
        } else {
            return PK_E_INVALID;
        }
    }
    if (digits == 0 || dots > 1 || digits > 30) {
        return PK_E_INVALID;
    }
    errno = 0;
    *out = strtod(text, &end);
    return (*end != '\0' || errno != 0) ? PK_E_INVALID : 0;
}

static int parse_count(const char *text, long min, long max, long *out)
{
    char *end;
    long v;

    if (text[0] < '0' || text[0] > '9') {
        return PK_E_INVALID;
    }
    errno = 0;
    v = strtol(text, &end, 10);
    if (*end != '\0' || errno != 0 || v < min || v > max) {
        return PK_E_INVALID;
    }
    *out = v;
    return 0;
}

static const struct {
    const char *name;
    int number;
} signals[] = {
        {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT},
        {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM},
        {"ALRM", SIGALRM}, {"CONT", SIGCONT}, {"WINCH", SIGWINCH},
};

static int parse_signal(const char *text, int *out)
{
    const char *name = strncasecmp(text, "SIG", 3) == 0 ? text + 3 : text;

    for (size_t i = 0; i < PK_ARRAY_LEN(signals); i++) {
        if (strcasecmp(name, signals[i].name) == 0) {
            *out = signals[i].number;
            return 0;
        }
    }
    return PK_E_INVALID;
}

/* A firewall mark: decimal or 0x hex, 0 to 0xffffffff (the kernel's mark is 32 bits). */
static int parse_mark(const char *text, long *out)
{
    bool hex = text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
    const char *digits = hex ? text + 2 : text;
    unsigned long long v = 0;
    size_t n = strlen(digits);

    if (n == 0 || n > (hex ? 8 : 10)) {
        return PK_E_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        int d = isdigit((unsigned char)digits[i]) ? digits[i] - '0'
                : hex && isxdigit((unsigned char)digits[i])
                        ? (tolower((unsigned char)digits[i]) - 'a' + 10)
                        : -1;
        if (d < 0) {
            return PK_E_INVALID;
        }
        v = v * (hex ? 16 : 10) + (unsigned)d;
    }
    if (v > 0xffffffffull) {
        return PK_E_INVALID;
    }
    *out = (long)v;
    return 0;
}

/* [admin] listen: also "off" or empty (no admin endpoint), port 0 (any free port) and a
 * relative unix socket path. */
static int check_listen(const char *text, struct pk_err *err)
{
    struct pk_addr addr;

    if (text[0] == '\0' || strcmp(text, "off") == 0) {
        return 0;
    }
    return pk_addr_parse(text, PK_ADDR_PORT_ZERO | PK_ADDR_UNIX_RELATIVE, &addr, err);
}

/* Whether a checked listener address can only be reached from this host. */
static bool is_loopback(const char *text)
{
    struct pk_addr addr;

    return pk_addr_parse(text, 0, &addr, NULL) == 0 && pk_addr_is_loopback(&addr);
}

/* allow_app_id: APP in our namespace, or NAMESPACE/APP. */
static int check_app_id(const char *text, struct pk_err *err)
{
    const char *slash = strchr(text, '/');
    char q[QUOTE_LEN];
    char *ns = NULL;
    int r;

    if (slash == NULL) {
        return pk_spiffe_check_segment(text, "app id", err);
    }
    if (strchr(slash + 1, '/') != NULL) {
        return pk_err_set(err, PK_E_INVALID, "expected APP or NAMESPACE/APP, got `%s'",
                          pk_quote(q, sizeof(q), text, strlen(text)));
    }
    ns = pk_xstrndup(text, (size_t)(slash - text));
    r = pk_spiffe_check_segment(ns, "namespace", err);
    if (r != 0) {
        goto out;
    }
    r = pk_spiffe_check_segment(slash + 1, "app id", err);
out:
    free(ns);
    return r;
}

/* allow_spiffe_id: a SPIFFE ID in which `*' may stand for whole path segments. */
static int check_spiffe_pattern(const char *text, struct pk_err *err)
{
    char q[QUOTE_LEN];

    if (strncmp(text, "spiffe://", 9) != 0 || text[9] == '\0') {
        return pk_err_set(err, PK_E_INVALID,
                          "`%s' is not a SPIFFE ID: it must start with spiffe:// and a trust "
                          "domain",
                          pk_quote(q, sizeof(q), text, strlen(text)));
    }
    /* The grammar pk_spiffe_match (the proxy's policy) matches with: checked here, so that a
     * bad pattern is reported with its line before any socket is bound. */
    return pk_spiffe_check_pattern(text, err);
}

/* server_name: a host name for SNI. RFC 6066 §3 forbids IP literals there. */
static int check_server_name(const char *text, struct pk_err *err)
{
    size_t len = strlen(text);
    char q[QUOTE_LEN];
    struct in_addr a4;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (!isalnum(c) && c != '-' && c != '.' && c != '_') {
            return pk_err_set(err, PK_E_INVALID,
                              "`%s' is not a host name (letters, digits, `-', `_' and `.')",
                              pk_quote(q, sizeof(q), text, strlen(text)));
        }
    }
    if (len > MAX_DNS_NAME) {
        return pk_err_set(err, PK_E_INVALID, "`%s' is longer than a host name can be (%d bytes)",
                          pk_quote(q, sizeof(q), text, strlen(text)), MAX_DNS_NAME);
    }
    if (inet_pton(AF_INET, text, &a4) == 1) {
        return pk_err_set(err, PK_E_INVALID,
                          "`%s': SNI cannot carry an IP address (RFC 6066 §3); leave server_name "
                          "out",
                          pk_quote(q, sizeof(q), text, strlen(text)));
    }
    return 0;
}

static void replace_string(char **field, const char *value)
{
    free(*field);
    *field = value != NULL ? pk_xstrdup(value) : NULL;
}

/* Append a copy of value to the list at field, whose count is at count. */
static void append_string(char ***field, size_t *count, const char *value)
{
    /* Grow to the next power of two, so n lines cost O(n) copying. */
    if ((*count & (*count - 1)) == 0) {
        *field = pk_xrealloc(*field, (*count > 0 ? *count * 2 : 1) * sizeof(**field));
    }
    (*field)[(*count)++] = pk_xstrdup(value);
}

/* Check a value of one of the string types. */
static int check_text(const struct key *k, const char *value, struct pk_err *err)
{
    struct pk_spiffe_id id;
    struct pk_addr addr;

    if (value[0] == '\0') {
        if ((k->flags & KF_REPEAT) && strncmp(k->name, "allow_", 6) == 0) {
            /* The policy module would refuse it too; say so here, with the line. */
            return pk_err_set(err, PK_E_INVALID,
                              "empty value: an allow rule must name whom it allows (an empty "
                              "one never means \"allow all\")");
        }
        if (k->type == K_SOCKET) {
            return pk_err_set(err, PK_E_INVALID, "empty value: the address is required");
        }
        return pk_err_set(err, PK_E_INVALID, "empty value (leave the key out to get the default)");
    }
    switch (k->type) {
    case K_SEGMENT:
        return pk_spiffe_check_segment(value, k->what, err);
    case K_TRUST_DOMAIN:
        return pk_spiffe_check_trust_domain(value, err);
    case K_ADDRESS:
        return pk_addr_parse(value, PK_ADDR_NAMES, &addr, err);
    case K_SOCKET:
        /* The proxy binds and connects without resolving names. */
        return pk_addr_parse(value, 0, &addr, err);
    case K_APP_ID:
        return check_app_id(value, err);
    case K_SPIFFE_ID:
        return pk_spiffe_parse(value, strlen(value), &id, err);
    case K_SPIFFE_PATTERN:
        return check_spiffe_pattern(value, err);
    case K_SERVER_NAME:
        return check_server_name(value, err);
    case K_DST: {
        struct pk_dst dst;
        return pk_dst_parse(value, &dst, err);
    }
    case K_DST_RULE: {
        struct pk_dst_rule rule;
        int r = pk_dst_rule_parse(value, &rule, err);
        if (r == 0) {
            pk_dst_rule_clear(&rule);
        }
        return r;
    }
    case K_PORTS: {
        /* The ports of a destination, checked by the same parser. */
        char text[QUOTE_LEN + 16];
        struct pk_dst dst;
        char q[QUOTE_LEN];
        if (strlen(value) > QUOTE_LEN || strpbrk(value, " \t") != NULL) {
            return pk_err_set(err, PK_E_INVALID,
                              "`%s' is not a port (1 to 65535) or a range such as 8000-8099",
                              pk_quote(q, sizeof(q), value, strlen(value)));
        }
        snprintf(text, sizeof(text), "0.0.0.0/0 %s", value);
        return pk_dst_parse(text, &dst, err);
    }
    default:
        return 0;
    }
}

/* Parse value for key into its field of base: a struct pk_sidecar_config, or for a listener key
 * a struct pk_listener_config. On error err says what is wrong with the value, without naming
 * the key. */
static int set_value(const struct key *k, const char *value, void *base, struct pk_err *err)
{
    char q[QUOTE_LEN], a[PK_DURATION_STR_LEN], b[PK_DURATION_STR_LEN];
    void *field = (char *)base + k->offset;
    int64_t ns;
    double d;
    bool flag;
    long n;
    int i;

    switch (k->type) {
    case K_STRING:
    case K_SEGMENT:
    case K_TRUST_DOMAIN:
    case K_ADDRESS:
    case K_SOCKET:
    case K_APP_ID:
    case K_SPIFFE_ID:
    case K_SPIFFE_PATTERN:
    case K_SERVER_NAME:
    case K_DST:
    case K_DST_RULE:
    case K_PORTS:
        if (check_text(k, value, err) != 0) {
            return PK_E_INVALID;
        }
        if (k->flags & KF_REPEAT) {
            append_string(field, (size_t *)((char *)base + k->count), value);
        } else {
            replace_string(field, value);
        }
        return 0;
    case K_LISTEN:
        if (check_listen(value, err) != 0) {
            return PK_E_INVALID;
        }
        replace_string(field, value);
        return 0;
    case K_BOOL:
        if (parse_bool(value, false, &flag) != 0) {
            return pk_err_set(err, PK_E_INVALID,
                              "`%s' is not a boolean (true/false, yes/no, on/off, 1/0)",
                              pk_quote(q, sizeof(q), value, strlen(value)));
        }
        *(bool *)field = flag;
        return 0;
    case K_FRACTION:
        if (parse_decimal(value, &d) != 0) {
            return pk_err_set(err, PK_E_INVALID, "`%s' is not a decimal fraction such as 0.5",
                              pk_quote(q, sizeof(q), value, strlen(value)));
        }
        if (d < k->min || d > k->max) {
            return pk_err_set(err, PK_E_INVALID, "%s is out of range: it must be from %g to %g",
                              pk_quote(q, sizeof(q), value, strlen(value)), k->min, k->max);
        }
        *(double *)field = d;
        return 0;
    case K_DURATION:
        if (pk_duration_parse(value, strlen(value), &ns, err) != 0) {
            return PK_E_INVALID;
        }
        d = (double)ns / 1e9;
        if (d < k->min || d > k->max) {
            return pk_err_set(err, PK_E_INVALID, "%s is out of range: it must be from %s to %s",
                              pk_quote(q, sizeof(q), value, strlen(value)),
                              pk_duration_format((int64_t)(k->min * 1e9), a, sizeof(a)),
                              pk_duration_format((int64_t)(k->max * 1e9), b, sizeof(b)));
        }
        *(double *)field = d;
        return 0;
    case K_COUNT:
    case K_SIZE:
        if (parse_count(value, (long)k->min, (long)k->max, &n) != 0) {
            return pk_err_set(err, PK_E_INVALID, "`%s' is not a whole number from %ld to %ld",
                              pk_quote(q, sizeof(q), value, strlen(value)), (long)k->min,
                              (long)k->max);
        }
        if (k->type == K_SIZE) {
            *(size_t *)field = (size_t)n;
        } else {
            *(long *)field = n;
        }
        return 0;
    case K_SIGNAL:
        if (parse_signal(value, &i) != 0) {
            return pk_err_set(err, PK_E_INVALID,
                              "`%s' is not a signal name (HUP, INT, QUIT, USR1, USR2, TERM, "
                              "ALRM, CONT or WINCH, with or without SIG)",
                              pk_quote(q, sizeof(q), value, strlen(value)));
        }
        *(int *)field = i;
        return 0;
    case K_LOG_LEVEL: {
        enum pk_log_level level;
        if (pk_log_level_parse(value, &level) != 0) {
            return pk_err_set(err, PK_E_INVALID, "`%s' is not debug, info, warn or error",
                              pk_quote(q, sizeof(q), value, strlen(value)));
        }
        *(int *)field = (int)level;
        return 0;
    }
    case K_UNMAPPED:
        if (strcmp(value, "deny") == 0) {
            *(enum pk_unmapped_policy *)field = PK_UNMAPPED_DENY;
        } else if (strcmp(value, "passthrough") == 0) {
            *(enum pk_unmapped_policy *)field = PK_UNMAPPED_PASSTHROUGH;
        } else {
            return pk_err_set(err, PK_E_INVALID, "`%s' is not deny or passthrough",
                              pk_quote(q, sizeof(q), value, strlen(value)));
        }
        return 0;
    case K_MARK:
        if (parse_mark(value, &n) != 0) {
            return pk_err_set(err, PK_E_INVALID,
                              "`%s' is not a firewall mark: a number from 0 to 4294967295, "
                              "decimal or 0x hex",
                              pk_quote(q, sizeof(q), value, strlen(value)));
        }
        *(long *)field = n;
        return 0;
    case K_OWNER:
        /* (uid_t)-1 means "no change" to the kernel: not a real owner. */
        if (parse_count(value, 0, 4294967294L, &n) != 0) {
            return pk_err_set(err, PK_E_INVALID, "`%s' is not a numeric %s from 0 to 4294967294",
                              pk_quote(q, sizeof(q), value, strlen(value)), k->what);
        }
        *(long *)field = n;
        return 0;
    }
    PK_ASSERT(!"unknown key type");
    return PK_E_INVALID;
}

/* Hand one field of an unnamed section's key from `from` to `to` (both struct pk_sidecar_config):
 * strings move, so `from` no longer owns them. */
static void move_field(const struct key *k, void *to, void *from)
{
    char **dst = (char **)((char *)to + k->offset), **src = (char **)((char *)from + k->offset);

    PK_ASSERT(!(k->flags & KF_REPEAT));
    switch (k->type) {
    CASE_TEXT_KEYS:
        free(*dst);
        *dst = *src;
        *src = NULL;
        return;
    case K_BOOL:
        memcpy(dst, src, sizeof(bool));
        return;
    case K_FRACTION:
    case K_DURATION:
        memcpy(dst, src, sizeof(double));
        return;
    case K_COUNT:
    case K_MARK:
    case K_OWNER:
        memcpy(dst, src, sizeof(long));
        return;
    case K_UNMAPPED:
        memcpy(dst, src, sizeof(enum pk_unmapped_policy));
        return;
    case K_SIZE:
        memcpy(dst, src, sizeof(size_t));
        return;
    case K_SIGNAL:
    case K_LOG_LEVEL:
        memcpy(dst, src, sizeof(int));
        return;
    }
    PK_ASSERT(!"unknown key type");
}

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
        was_space = is_blank(s[i]);
        i++;
    }
    return i;
}

static void listener_init(struct pk_listener_config *lc, enum pk_listener_kind kind, char *name)
{
    *lc = (struct pk_listener_config){
            .kind = kind,
            .name = name,
            .max_connections = 10000,
            .max_handshakes = 256,
            .connect_timeout = 5,
            .handshake_timeout = 10,
            .idle_timeout = 300,
            .max_lifetime = 0,
            .buffer_size = 16384,
    };
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
            fail(ps, "[%s]: bad NAME: it must be 1 to %d of the letters, digits, `_', `.' and `-'",
                 pk_quote(q, sizeof(q), shown, strlen(shown)), PK_SIDECAR_CONFIG_MAX_NAME);
            return PK_E_INVALID;
        }
    }
    if (len > PK_SIDECAR_CONFIG_MAX_NAME) {
        fail(ps, "[%s...]: the NAME is longer than %d bytes",
             pk_quote(q, sizeof(q), shown, strlen(shown)), PK_SIDECAR_CONFIG_MAX_NAME);
        return PK_E_INVALID;
    }
    /* Names label logs, metrics and /status, so both kinds share one namespace. */
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
    listener_init(&sc->listeners[n], kind, pk_xstrndup(name, len));
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
    for (size_t i = 0; i < PK_ARRAY_LEN(kinds); i++) {
        if (strlen(kinds[i].name) == kind_len && memcmp(kinds[i].name, header, kind_len) == 0) {
            ps->kind = &kinds[i];
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
    while (end > start && is_blank(s[end - 1])) {
        end--;
    }
    while (start < end && is_blank(s[start])) {
        start++;
    }
    if (start == end || s[start] == ';' || s[start] == '#') {
        return 0;
    }
    if (start > 0 && is_blank(s[start - 1]) && ps->key_in_section) {
        fail(ps, "indented line: inih would append it to the value of the key above; remove the "
                 "leading blanks (picket.ini has no continuation lines)");
        return PK_E_INVALID;
    }
    if (s[start] == '[') {
        size_t close = find_chars_or_comment(s, start + 1, end, "]");
        size_t after = close + 1;
        if (close == end || s[close] != ']') {
            fail(ps, "section header without a closing `]'");
            return PK_E_INVALID;
        }
        while (after < end && is_blank(s[after])) {
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
        fail(ps, "expected `key = value', a [section] or a comment");
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
    return find_seen_in(ps, agent_keys, key_name);
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
    int *first = &lines->key[key - listener_keys];
    struct pk_err e;

    if (*first != 0 && !(key->flags & KF_REPEAT)) {
        fail(ps, "[%s] %s: given twice (first on line %d)", ps->section, key->name, *first);
        return 0;
    }
    pk_err_clear(&e);
    if (set_value(key, value, &ps->scratch->listeners[ps->listener], &e) != 0) {
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
        for (size_t i = 0; i < PK_ARRAY_LEN(kinds); i++) {
            if (kinds[i].named && (key->flags & kinds[i].only) != 0) {
                int w = snprintf(where + off_w, sizeof(where) - off_w, "%s[%s NAME]",
                                 off_w > 0 ? " or " : "", kinds[i].name);
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
    if (set_value(key, value, ps->scratch, &e) != 0) {
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
    for (size_t i = 0; i < PK_ARRAY_LEN(listener_keys); i++) {
        if (strcmp(listener_keys[i].name, key_name) == 0) {
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
        if (strncmp(lc->listen, "unix:", 5) == 0) {
            fail_at(ps, key_line(lines, "listen"),
                    "[%s %s] listen: `%s': a transparent listener takes redirected TCP "
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
        if (lc->n_intercept_port > 0 && is_loopback(lc->listen)) {
            fail_at(ps, key_line(lines, "intercept_port"),
                    "[%s %s] intercept_port: the firewall redirects incoming connections to this "
                    "host's own address, but listen is `%s'; listen on 0.0.0.0:PORT or [::]:PORT",
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
    if (!lc->allow_non_loopback && !is_loopback(lc->listen)) {
        fail_at(ps, key_line(lines, "listen"),
                "[%s %s] listen: `%s' is not a loopback address, so other hosts could connect "
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
    const struct seen *mark_seen = find_seen_in(ps, proxy_keys, "mark");
    const struct seen *uid_seen = find_seen_in(ps, iptables_keys, "exclude_uid");
    const struct seen *gid_seen = find_seen_in(ps, iptables_keys, "exclude_gid");
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

/* Two listeners on one address would both bind (SO_REUSEPORT) and the kernel would share the
 * connections between them; two on one unix path would replace each other's socket file; a
 * listener on the admin endpoint's address would fail late, with only "Address already in
 * use" to say why. So each listen address is compared with the others and with the admin
 * endpoint's before anything is bound, by what they bind (localhost is 127.0.0.1, a wildcard
 * covers its family's port), and the later line is reported, naming the earlier one. */
static int check_listen_overlaps(struct parser *ps, const struct pk_sidecar_config *into)
{
    const struct seen *admin_seen = find_seen_in(ps, admin_keys, "listen");
    const char *admin_text = admin_seen != NULL ? ps->scratch->admin_listen : into->admin_listen;
    struct pk_addr *addrs = pk_xcalloc(ps->scratch->n_listeners + 1, sizeof(*addrs));
    struct pk_addr *admin = NULL;
    char q[QUOTE_LEN], q2[QUOTE_LEN], where[64];
    int r = 0;

    if (admin_text != NULL && admin_text[0] != '\0' && strcmp(admin_text, "off") != 0 &&
        pk_addr_parse(admin_text, PK_ADDR_PORT_ZERO | PK_ADDR_UNIX_RELATIVE,
                      &addrs[ps->scratch->n_listeners], NULL) == 0) {
        admin = &addrs[ps->scratch->n_listeners];
    }
    for (size_t i = 0; i < ps->scratch->n_listeners && r == 0; i++) {
        const struct pk_listener_config *lc = &ps->scratch->listeners[i];
        int line = key_line(&ps->lines[i], "listen");
        /* check_listener saw that every listener has a valid listen. */
        int parsed = pk_addr_parse(lc->listen, 0, &addrs[i], NULL);
        PK_ASSERT(parsed == 0);
        for (size_t j = 0; j < i && r == 0; j++) {
            const struct pk_listener_config *earlier = &ps->scratch->listeners[j];
            if (pk_addr_overlaps(&addrs[j], &addrs[i])) {
                fail_at(ps, line,
                        "[%s %s] listen: `%s' takes the connections of [%s %s] listen `%s' (line "
                        "%d): give each listener its own address",
                        pk_listener_kind_name(lc->kind), lc->name,
                        pk_quote(q, sizeof(q), lc->listen, strlen(lc->listen)),
                        pk_listener_kind_name(earlier->kind), earlier->name,
                        pk_quote(q2, sizeof(q2), earlier->listen, strlen(earlier->listen)),
                        key_line(&ps->lines[j], "listen"));
                r = PK_E_INVALID;
            }
        }
        if (r == 0 && admin != NULL && pk_addr_overlaps(admin, &addrs[i])) {
            if (admin_seen != NULL) {
                snprintf(where, sizeof(where), "line %d", admin_seen->line);
            } else {
                snprintf(where, sizeof(where), "its default");
            }
            if (admin_seen != NULL && admin_seen->line > line) {
                fail_at(ps, admin_seen->line,
                        "[admin] listen: `%s' is the address of [%s %s] listen `%s' (line %d): "
                        "give the admin endpoint another address",
                        pk_quote(q, sizeof(q), admin_text, strlen(admin_text)),
                        pk_listener_kind_name(lc->kind), lc->name,
                        pk_quote(q2, sizeof(q2), lc->listen, strlen(lc->listen)), line);
            } else {
                fail_at(ps, line,
                        "[%s %s] listen: `%s' is the admin endpoint's address ([admin] listen "
                        "`%s', %s): give the listener another address",
                        pk_listener_kind_name(lc->kind), lc->name,
                        pk_quote(q, sizeof(q), lc->listen, strlen(lc->listen)),
                        pk_quote(q2, sizeof(q2), admin_text, strlen(admin_text)), where);
            }
            r = PK_E_INVALID;
        }
    }
    free(addrs);
    return r;
}

/* The rules of the listener sections, checked once every key of the text is in. */
static int check_listeners(struct parser *ps, const struct pk_sidecar_config *into)
{
    for (size_t i = 0; i < ps->scratch->n_listeners; i++) {
        if (check_listener(ps, &ps->scratch->listeners[i], &ps->lines[i]) != 0) {
            return PK_E_INVALID;
        }
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
        move_field(ps.seen[i].key, into, ps.scratch);
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
    cfg->agent.control_plane_trust_domain = pk_xstrdup(DEFAULT_CP_TD);
    cfg->agent.control_plane_namespace = pk_xstrdup(DEFAULT_CP_NS);
    cfg->admin_listen = pk_xstrdup(DEFAULT_ADMIN_LISTEN);
    cfg->log_level = PK_LOG_LEVEL_INFO;
    cfg->log_json = false;
    cfg->workers = 0;
    cfg->shutdown_timeout = 10;
    cfg->agent.mark = 0;
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
        return *(const long *)x == *(const long *)y;
    case K_UNMAPPED:
        return *(const enum pk_unmapped_policy *)x == *(const enum pk_unmapped_policy *)y;
    case K_SIZE:
        return *(const size_t *)x == *(const size_t *)y;
    case K_SIGNAL:
    case K_LOG_LEVEL:
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
    for (size_t i = 0; i < PK_ARRAY_LEN(kinds); i++) {
        if (kinds[i].named) {
            continue;
        }
        for (size_t j = 0; j < kinds[i].n_keys; j++) {
            const struct key *k = &kinds[i].keys[j];
            if (!(k->flags & KF_RESTART) || field_equal(k, running, next)) {
                continue;
            }
            if (used < out_len) {
                int w = snprintf(out + used, out_len - used, "%s[%s] %s", n > 0 ? ", " : "",
                                 kinds[i].name, k->name);
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
    free(cfg->admin_listen);
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
    const char *anchors_file, *config, *log_level;
    const char *log_json; /* NULL for the bare flag */
    bool log_json_given, help;
};

enum {
    OPT_APP_ID = 256,
    OPT_SENTRY_ADDRESS,
    OPT_CP_TRUST_DOMAIN,
    OPT_CP_NAMESPACE,
    OPT_TRUST_DOMAIN,
    OPT_ANCHORS_FILE,
    OPT_CONFIG,
    OPT_LOG_LEVEL,
    OPT_LOG_JSON,
    OPT_HELP,
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
            {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
            {"log-as-json", optional_argument, NULL, OPT_LOG_JSON},
            {"help", no_argument, NULL, OPT_HELP},
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
        case OPT_CONFIG:
            fl->config = optarg;
            break;
        case OPT_LOG_LEVEL:
            fl->log_level = optarg;
            break;
        case OPT_LOG_JSON:
            fl->log_json_given = true;
            fl->log_json = optarg;
            break;
        case 'h':
        case OPT_HELP:
            fl->help = true;
            return 0;
        case ':':
            return pk_err_set(err, PK_E_INVALID, "flag `%s' needs a value", flag_name(name, arg));
        default:
            return pk_err_set(err, PK_E_INVALID, "unknown flag `%s'", flag_name(name, arg));
        }
    }
    if (optind < argc) {
        char q[QUOTE_LEN];
        return pk_err_set(err, PK_E_INVALID,
                          "unexpected argument `%s' (picket run takes only flags)",
                          pk_quote(q, sizeof(q), argv[optind], strlen(argv[optind])));
    }
    return 0;
}

/* ---- layers ---- */

/* An environment variable's value, or NULL when it is unset or empty (as daprd reads them). */
static const char *env_value(char *const *env, const char *name)
{
    const char *v = pk_env_get(env, name);
    return (v != NULL && v[0] != '\0') ? v : NULL;
}

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
        v = env_value(env, env_strings[i].name);
        if (v == NULL) {
            continue;
        }
        if ((env_strings[i].type == K_SEGMENT &&
             check_segment_from(env_strings[i].name, v, env_strings[i].what, err) != 0) ||
            (env_strings[i].type == K_TRUST_DOMAIN &&
             check_td_from(env_strings[i].name, v, err) != 0)) {
            return PK_E_INVALID;
        }
        replace_string((char **)((char *)cfg + env_strings[i].offset), v);
    }
    /* daprd: a token file variable that is set must name a file (pkg/security/token). */
    if ((v = pk_env_get(env, "DAPR_SENTRY_TOKEN_FILE")) != NULL) {
        if (v[0] == '\0') {
            return pk_err_set(err, PK_E_INVALID,
                              "DAPR_SENTRY_TOKEN_FILE is set but empty: unset it, or set it to "
                              "the file that holds the Sentry token");
        }
        replace_string(&cfg->agent.token_file, v);
    }
    /* The PEM contents replace the file keys, so the agent reads (and watches) neither file. */
    if ((v = env_value(env, "DAPR_CERT_CHAIN")) != NULL) {
        replace_string(&cfg->agent.cert_pem, v);
        replace_string(&cfg->agent.cert_file, NULL);
    }
    if ((v = env_value(env, "DAPR_CERT_KEY")) != NULL) {
        if (cfg->agent.key_pem != NULL) {
            cfg->agent.key_pem = pk_free_secret(cfg->agent.key_pem, strlen(cfg->agent.key_pem) + 1);
        }
        cfg->agent.key_pem = pk_xstrdup(v);
        replace_string(&cfg->agent.key_file, NULL);
    }
    return 0;
}

static int apply_flags(struct pk_sidecar_config *cfg, const struct flags *fl, struct pk_err *err)
{
    if (fl->app_id != NULL) {
        if (check_segment_from("--app-id", fl->app_id, "app id", err) != 0) {
            return PK_E_INVALID;
        }
        replace_string(&cfg->agent.app_id, fl->app_id);
    }
    if (fl->sentry_address != NULL) {
        /* daprd's default is "": no Sentry. Given empty, the flag turns a file's address off. */
        struct pk_addr addr;
        if (fl->sentry_address[0] != '\0' &&
            pk_addr_parse(fl->sentry_address, PK_ADDR_NAMES, &addr, err) != 0) {
            return pk_err_prefix(err, PK_E_INVALID, "--sentry-address");
        }
        replace_string(&cfg->agent.sentry_address,
                       fl->sentry_address[0] != '\0' ? fl->sentry_address : NULL);
    }
    if (fl->cp_trust_domain != NULL) {
        if (check_td_from("--control-plane-trust-domain", fl->cp_trust_domain, err) != 0) {
            return PK_E_INVALID;
        }
        replace_string(&cfg->agent.control_plane_trust_domain, fl->cp_trust_domain);
    }
    if (fl->cp_namespace != NULL) {
        if (check_segment_from("--control-plane-namespace", fl->cp_namespace,
                               "control-plane namespace", err) != 0) {
            return PK_E_INVALID;
        }
        replace_string(&cfg->agent.control_plane_namespace, fl->cp_namespace);
    }
    if (fl->trust_domain != NULL) {
        if (check_td_from("--trust-domain", fl->trust_domain, err) != 0) {
            return PK_E_INVALID;
        }
        replace_string(&cfg->agent.trust_domain, fl->trust_domain);
    }
    if (fl->anchors_file != NULL) {
        if (fl->anchors_file[0] == '\0') {
            return pk_err_set(err, PK_E_INVALID, "--trust-anchors-file: empty file name");
        }
        replace_string(&cfg->agent.trust_anchors_file, fl->anchors_file);
    }
    if (fl->log_level != NULL) {
        enum pk_log_level level;
        char q[QUOTE_LEN];
        if (pk_log_level_parse(fl->log_level, &level) != 0) {
            return pk_err_set(err, PK_E_INVALID,
                              "--log-level: `%s' is not debug, info, warn or error",
                              pk_quote(q, sizeof(q), fl->log_level, strlen(fl->log_level)));
        }
        cfg->log_level = (int)level;
    }
    if (fl->log_json_given) {
        char q[QUOTE_LEN];
        bool json = true;
        if (fl->log_json != NULL && parse_bool(fl->log_json, true, &json) != 0) {
            return pk_err_set(err, PK_E_INVALID, "--log-as-json: `%s' is not a boolean",
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
        replace_string(&cfg->agent.cert_pem, NULL);
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
    if (fl.config != NULL) {
        cfg->config_file = pk_xstrdup(fl.config);
        r = read_config_file(cfg, fl.config, err);
        if (r != 0) {
            goto out;
        }
    }
    r = apply_env(cfg, env, err);
    if (r == 0) {
        r = apply_flags(cfg, &fl, err);
    }
    if (r == 0) {
        r = check_merged(cfg, err);
    }
    if (r != 0) {
        goto out;
    }
    /* daprd sends SENTRY_LOCAL_IDENTITY, when set, as the request id instead of the app id. */
    local_id = env_value(env, "SENTRY_LOCAL_IDENTITY");
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

/* ---- help ---- */

static const char help_head[] =
        "usage: picket run [flags]\n"
        "\n"
        "The sidecar: obtain this app's SPIFFE identity from Dapr's Sentry (or from static\n"
        "files), renew it before it expires, serve the admin endpoint, and carry the app's\n"
        "connections over mTLS through the listeners of picket.ini.\n"
        "\n"
        "Flags (`--flag value', `--flag=value' and daprd's `-flag value' all work):\n"
        "  -c, --config FILE                  picket.ini to read (default: none)\n"
        "  --app-id ID                        the app id (required here, in APP_ID or in\n"
        "                                     [agent] app_id)\n"
        "  --sentry-address HOST:PORT         Sentry's gRPC address; \"\" = no Sentry, use a\n"
        "                                     static identity\n"
        "  --trust-anchors-file FILE          PEM file of the trusted roots\n"
        "  --trust-domain TD                  trust domain to ask Sentry for (default: none,\n"
        "                                     Sentry then uses \"public\")\n"
        "  --control-plane-trust-domain TD    Sentry's trust domain (default localhost)\n"
        "  --control-plane-namespace NS       Sentry's namespace (default default); Sentry must\n"
        "                                     present spiffe://TD/ns/NS/dapr-sentry\n"
        "  --log-level LEVEL                  debug, info, warn or error (default info)\n"
        "  --log-as-json[=BOOL]               log JSON objects instead of key=value lines\n"
        "  -h, --help                         print this text\n"
        "\n"
        "Precedence: flags, then environment variables, then picket.ini, then the defaults.\n"
        "\n"
        "Environment (Dapr's names; an empty value counts as unset, except where noted):\n"
        "  APP_ID                             the app id\n"
        "  NAMESPACE                          the app's namespace (default \"default\")\n"
        "  SENTRY_LOCAL_IDENTITY              the id sent to Sentry instead of the app id\n"
        "  DAPR_TRUST_ANCHORS                 trusted roots as PEM text (used together with a\n"
        "                                     trust anchors file)\n"
        "  DAPR_TRUST_ANCHORS_FILE            PEM file of the trusted roots\n"
        "  DAPR_CONTROLPLANE_TRUST_DOMAIN     Sentry's trust domain\n"
        "  DAPR_CONTROLPLANE_NAMESPACE        Sentry's namespace\n"
        "  DAPR_SENTRY_TOKEN_FILE             file holding the JWT sent to Sentry (JWKS\n"
        "                                     validator), re-read for every request; set but\n"
        "                                     empty is an error, as in daprd\n"
        "  DAPR_CERT_CHAIN, DAPR_CERT_KEY     static identity: certificate chain and private key\n"
        "                                     as PEM text; ignored when a Sentry address is set\n"
        "\n"
        "picket.ini: [section] headers, `key = value' lines, `;' or `#' comment lines and\n"
        "` ;' comments after a value. Each key at most once (allow_* may repeat); no empty\n"
        "values; no indented lines; at most 197 bytes per line. Booleans: true/false, yes/no,\n"
        "on/off, 1/0. Durations: 10s, 1m30s, 2h. Addresses: IPV4:PORT, [IPV6]:PORT,\n"
        "localhost:PORT or unix:/PATH (names other than localhost are not resolved).\n";

static const char help_tail[] =
        "\n"
        "Either a Sentry address or a static certificate and key is required, and trust\n"
        "anchors always are. Exit status: 0 after SIGTERM or SIGINT, 1 when the agent gives\n"
        "up, 2 for a configuration error. SIGHUP loads the configuration again and applies\n"
        "it whole, except the settings marked [restart]; a configuration that fails any check\n"
        "is refused and the running one stays.\n";

/* ---- the reference, from the tables above ---- */

/* The default of key k as text, from base (the defaults: a new config, or a listener fresh from
 * listener_init); NULL when there is none. */
static const char *default_text(const struct key *k, const void *base, char *buf, size_t len)
{
    const void *field = (const char *)base + k->offset;
    static const char *const levels[] = {"debug", "info", "warn", "error", "fatal"};

    if (k->flags & KF_REPEAT) {
        return NULL;
    }
    switch (k->type) {
    CASE_TEXT_KEYS : {
        const char *v = *(char *const *)field;
        return v != NULL ? v : NULL;
    }
    case K_BOOL:
        return *(const bool *)field ? "true" : "false";
    case K_FRACTION:
        snprintf(buf, len, "%g", *(const double *)field);
        return buf;
    case K_DURATION:
        return pk_duration_format((int64_t)(*(const double *)field * 1e9), buf, len);
    case K_COUNT:
    case K_OWNER:
        snprintf(buf, len, "%ld", *(const long *)field);
        return buf;
    case K_MARK:
        snprintf(buf, len, "%#lx", *(const long *)field);
        return buf;
    case K_UNMAPPED:
        return *(const enum pk_unmapped_policy *)field == PK_UNMAPPED_PASSTHROUGH ? "passthrough"
                                                                                  : "deny";
    case K_SIZE:
        snprintf(buf, len, "%zu", *(const size_t *)field);
        return buf;
    case K_SIGNAL:
        for (size_t i = 0; i < PK_ARRAY_LEN(signals); i++) {
            if (signals[i].number == *(const int *)field) {
                return signals[i].name;
            }
        }
        return NULL;
    case K_LOG_LEVEL: {
        int level = *(const int *)field;
        return level >= 0 && (size_t)level < PK_ARRAY_LEN(levels) ? levels[level] : NULL;
    }
    }
    return NULL;
}

/* Append text to out wrapped at width columns, continuation lines indented by indent; col is
 * the column the text starts at. */
static int append_wrapped(struct pk_buf *out, const char *text, size_t col, size_t indent,
                          size_t width)
{
    int r = 0;

    while (*text != '\0') {
        size_t word = strcspn(text, " ");
        if (col > indent && col + 1 + word > width) {
            r |= pk_buf_printf(out, "\n%*s", (int)indent, "");
            col = indent;
        } else if (col > indent) {
            r |= pk_buf_append_str(out, " ");
            col++;
        }
        r |= pk_buf_append(out, text, word);
        col += word;
        text += word;
        while (*text == ' ') {
            text++;
        }
    }
    return r;
}

int pk_sidecar_config_reference(bool markdown, struct pk_buf *out)
{
    struct pk_sidecar_config *defaults = pk_sidecar_config_new();
    struct pk_listener_config listener;
    int r = 0;

    listener_init(&listener, PK_LISTENER_INBOUND, NULL);
    for (size_t i = 0; i < PK_ARRAY_LEN(kinds); i++) {
        const struct section_kind *kind = &kinds[i];
        const void *base = kind->named ? (const void *)&listener : (const void *)defaults;
        char title[40];

        snprintf(title, sizeof(title), "[%s%s]", kind->name, kind->named ? " NAME" : "");
        if (markdown) {
            r |= pk_buf_printf(out,
                               "#### `%s`\n\n%s\n\n| key | value | default | meaning |\n"
                               "|---|---|---|---|\n",
                               title, kind->doc);
        } else {
            r |= pk_buf_printf(out, "\n%s\n  ", title);
            r |= append_wrapped(out, kind->doc, 2, 2, 92);
            r |= pk_buf_append_str(out, "\n");
        }
        for (size_t j = 0; j < kind->n_keys; j++) {
            const struct key *k = &kind->keys[j];
            char buf[PK_DURATION_STR_LEN + 16], text[400];
            const char *def;

            if (kind->named && !(k->flags & kind->only)) {
                continue;
            }
            def = default_text(k, base, buf, sizeof(buf));
            snprintf(text, sizeof(text), "%s%s", k->doc,
                     (k->flags & KF_RESTART) ? " [restart]" : "");
            if (markdown) {
                r |= pk_buf_printf(out, "| `%s` | %s | %s%s%s | %s |\n", k->name, k->arg,
                                   def != NULL ? "`" : "", def != NULL ? def : "none",
                                   def != NULL ? "`" : "", text);
            } else {
                char head[64];
                int n = snprintf(head, sizeof(head), "  %s = %s", k->name, k->arg);
                r |= pk_buf_printf(out, "%-32s", head);
                if (def != NULL) {
                    size_t l = strlen(text);
                    snprintf(text + l, sizeof(text) - l, " (default %s)", def);
                }
                r |= append_wrapped(out, text, n < 32 ? 32 : (size_t)n, 32, 92);
                r |= pk_buf_append_str(out, "\n");
            }
        }
        if (markdown) {
            r |= pk_buf_append_str(out, "\n");
        }
    }
    if (markdown) {
        r |= pk_buf_append_str(out, "Keys marked [restart] need a restart to change: SIGHUP "
                                    "refuses a file that changes them.\n");
    } else {
        r |= pk_buf_append_str(out, "\nKeys marked [restart] need a restart to change: SIGHUP "
                                    "refuses a file that changes them.\n");
    }
    pk_sidecar_config_free(defaults);
    return r != 0 ? PK_E_TOOBIG : 0;
}

const char *pk_sidecar_config_help(void)
{
    /* Built once, on the main thread, and kept for the life of the process. */
    static struct pk_buf text;
    static bool built;

    if (!built) {
        pk_buf_init(&text, 256 * 1024);
        if (pk_buf_append_str(&text, help_head) != 0 ||
            pk_sidecar_config_reference(false, &text) != 0 ||
            pk_buf_append_str(&text, help_tail) != 0 || pk_buf_append(&text, "", 1) != 0) {
            PK_ASSERT(!"help text exceeds its cap");
        }
        built = true;
    }
    return (const char *)text.data;
}
