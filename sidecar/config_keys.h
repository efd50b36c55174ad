/* SPDX-License-Identifier: Apache-2.0 */
/* picket: what the parts of sidecar/config share, and nothing outside sidecar/config*.c uses:
 * the tables of sections and keys (names, value types, fields, ranges, documentation) and the
 * value parsers. config_keys.c defines the tables and parses values; config_ini.c reads
 * picket.ini; config.c layers the environment and flags and owns the configuration's life;
 * config_reference.c writes --help and the Markdown reference from the same tables. */
#ifndef PK_SIDECAR_CONFIG_KEYS_H
#define PK_SIDECAR_CONFIG_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "sidecar/config.h"

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
    K_MODE,     /* auto, standalone or kubernetes (enum pk_agent_mode) */
    K_SERVERS,  /* IP:PORT or [IPV6]:PORT, comma-separated: DNS servers */
    K_TARGET,   /* what K_SOCKET takes, or HOST:PORT with a DNS name (resolved by [dns]) */
    K_DST,      /* CIDR [PORTS] (common/dstmap.h) */
    K_DST_RULE, /* CIDR [PORTS] ACTION (common/dstmap.h) */
    K_PORTS,    /* PORT or LO-HI */
    K_UNMAPPED, /* deny or passthrough */
    K_MARK,     /* a 32-bit firewall mark, decimal or 0x hex; 0 = none */
    K_OWNER,    /* a uid or gid */
    K_GROUP,    /* a group name (resolved at load) or numeric gid, stored as a long; -1 = none */
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
    case K_TARGET:                                                                                 \
    case K_SERVERS:                                                                                \
    case K_APP_ID:                                                                                 \
    case K_SPIFFE_ID:                                                                              \
    case K_SPIFFE_PATTERN:                                                                         \
    case K_SERVER_NAME:                                                                            \
    case K_DST:                                                                                    \
    case K_DST_RULE:                                                                               \
    case K_PORTS

/* struct key's flags: the listener config_kinds that take a listener key, and whether it repeats.
 */
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
/* A repeatable key of the listener config_kinds in flags_. */
#define LLISTK(name_, type_, field_, what_, flags_, ...)                                           \
    {                                                                                              \
        .name = (name_), .type = (type_), .offset = LFIELD(field_), .what = (what_),               \
        .flags = (flags_) | KF_REPEAT, .count = LFIELD(n_##field_), __VA_ARGS__                    \
    }

struct section_kind {
    const char *name;
    bool named; /* sections of this kind are written [KIND NAME] */
    const struct key *keys;
    size_t n_keys;
    unsigned only;   /* named config_kinds: the KF_ bit of the keys it takes */
    const char *doc; /* what the section is, for the reference */
};

/* The sections and keys. The counts are checked against the tables where they are defined. */
#define CONFIG_N_KINDS         10
#define CONFIG_N_LISTENER_KEYS 26
extern const struct key config_agent_keys[];
extern const struct key config_sentry_keys[];
extern const struct key config_admin_keys[];
extern const struct key config_log_keys[];
extern const struct key config_proxy_keys[];
extern const struct key config_iptables_keys[];
extern const struct key config_dns_keys[];
extern const struct key config_listener_keys[CONFIG_N_LISTENER_KEYS];
extern const struct section_kind config_kinds[CONFIG_N_KINDS];

bool config_is_blank(char c);

int config_parse_bool(const char *text, bool go_forms, bool *out);

void config_replace_string(char **field, const char *value);

int config_set_value(const struct key *k, const char *value, void *base, struct pk_err *err);

void config_move_field(const struct key *k, void *to, void *from);

void config_listener_init(struct pk_listener_config *lc, enum pk_listener_kind kind, char *name);

/* The name export_signal takes for signal number ("HUP"), or NULL when it takes none. */
const char *config_signal_name(int number);

/* "auto", "standalone" or "kubernetes" (exactly, as daprd's --mode) into *out (enum
 * pk_agent_mode); PK_E_INVALID for anything else. */
int config_parse_mode(const char *text, int *out);

/* The name of an enum pk_agent_mode value. */
const char *config_mode_name(int mode);

#endif
