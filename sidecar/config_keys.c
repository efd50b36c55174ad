/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the sections and keys of picket.ini, and parsing one value into its field. */
#include "sidecar/config_keys.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
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

const struct key config_agent_keys[] = {
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
        KEY("allow_static_id_mismatch", K_BOOL, agent.allow_static_id_mismatch, 0, 0, NULL,
            .arg = "BOOL",
            .doc = "accept a static certificate whose SPIFFE ID is not this app's (app_id, "
                   "namespace, trust_domain); otherwise it is refused"),
        KEY("allow_tls12", K_BOOL, agent.allow_tls12, 0, 0, NULL, .arg = "BOOL",
            .doc = "also accept TLS 1.2 (AEAD suites only); otherwise TLS 1.3 only"),
        KEY("export_dir", K_STRING, agent.export_dir, 0, 0, NULL, .arg = "DIR",
            .doc = "write cert.pem, key.pem (0600) and bundle.pem here after each renewal"),
        KEY("export_group", K_GROUP, agent.export_group, 0, 0, NULL, .arg = "GROUP",
            .doc = "give the exported files to this group (name or gid): key.pem 0640, version "
                   "directories 0750; picket must be a member of it"),
        KEY("export_command", K_STRING, agent.export_command, 0, 0, NULL, .arg = "COMMAND",
            .doc = "run with /bin/sh -c after each export"),
        KEY("export_pid_file", K_STRING, agent.export_pid_file, 0, 0, NULL, .arg = "FILE",
            .doc = "send export_signal to the process in this pid file after each export"),
        KEY("mode", K_MODE, agent.mode, 0, 0, NULL, .flags = KF_RESTART, .arg = "MODE",
            .doc = "standalone, kubernetes or auto (kubernetes when KUBERNETES_SERVICE_HOST is "
                   "set); kubernetes sends the pod's projected token with the KUBERNETES "
                   "validator (--mode, PICKET_MODE)"),
        KEY("export_signal", K_SIGNAL, agent.export_signal, 0, 0, NULL, .arg = "SIGNAL",
            .doc = "the signal for export_pid_file: HUP, USR1, ... (with or without SIG)"),
};

const struct key config_sentry_keys[] = {
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

const struct key config_admin_keys[] = {
        KEY("listen", K_LISTEN, admin_listen, 0, 0, NULL, .flags = KF_RESTART, .arg = "ADDRESS",
            .doc = "/healthz, /readyz, /status and /metrics on HOST:PORT, [V6]:PORT or unix:/PATH; "
                   "empty or off: none"),
};

const struct key config_log_keys[] = {
        KEY("level", K_LOG_LEVEL, log_level, 0, 0, NULL, .arg = "LEVEL",
            .doc = "debug, info, warn or error (--log-level)"),
        KEY("json", K_BOOL, log_json, 0, 0, NULL, .arg = "BOOL",
            .doc = "log JSON objects, one key per field, instead of logfmt lines "
                   "(--log-as-json)"),
};

const struct key config_proxy_keys[] = {
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

const struct key config_iptables_keys[] = {
        KEY("exclude_uid", K_OWNER, exclude_uid, 0, 0, "uid", .arg = "UID",
            .doc = "`picket iptables`: never redirect this user's connections (picket's); -1: "
                   "none"),
        KEY("exclude_gid", K_OWNER, exclude_gid, 0, 0, "gid", .arg = "GID",
            .doc = "`picket iptables`: never redirect this group's connections; -1: none"),
};

/* Seconds: a tenth of a second (a name asked ten times a second is already a lot) to a day. */
const struct key config_dns_keys[] = {
        KEY("servers", K_SERVERS, dns_servers, 0, 0, NULL, .flags = KF_RESTART,
            .arg = "IP:PORT,...",
            .doc = "ask these DNS servers instead of those of /etc/resolv.conf (IP:PORT or "
                   "[IPV6]:PORT, comma-separated)"),
        KEY("ttl_min", K_DURATION, dns_ttl_min, 0.1, DAY, NULL, .flags = KF_RESTART,
            .arg = "DURATION",
            .doc = "use an answer at least this long whatever its TTL (0 included), and ask "
                   "again this long after a failed lookup"),
        KEY("ttl_max", K_DURATION, dns_ttl_max, 0.1, DAY, NULL, .flags = KF_RESTART,
            .arg = "DURATION", .doc = "ask again after at most this long whatever the TTL"),
        KEY("timeout", K_DURATION, dns_timeout, 0.1, 60, NULL, .flags = KF_RESTART,
            .arg = "DURATION",
            .doc = "how long one query waits for the server before it is sent again (twice)"),
};

const struct key config_listener_keys[] = {
        LKEY("listen", K_SOCKET, listen, 0, 0, NULL, KF_ALL, .arg = "ADDRESS",
             .doc = "where to accept (required); outbound and transparent: loopback (or unix: "
                    "for outbound) unless allow_non_loopback"),
        LKEY("target", K_TARGET, target, 0, 0, NULL, KF_BOTH, .arg = "ADDRESS",
             .doc = "where to connect (required): inbound, this app; outbound, the other app's "
                    "inbound listener; may be HOST:PORT with a DNS name, resolved without "
                    "blocking and kept fresh (see [dns]); each address is tried in turn"),
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

const struct section_kind config_kinds[] = {
        {"agent", false, config_agent_keys, PK_ARRAY_LEN(config_agent_keys), 0,
         "The workload identity: who we are, when to renew, what to export."},
        {"sentry", false, config_sentry_keys, PK_ARRAY_LEN(config_sentry_keys), 0,
         "Where certificates come from and whom to trust."},
        {"admin", false, config_admin_keys, PK_ARRAY_LEN(config_admin_keys), 0,
         "The admin endpoint (`picket status` reads its /status)."},
        {"log", false, config_log_keys, PK_ARRAY_LEN(config_log_keys), 0, "Logging to stderr."},
        {"proxy", false, config_proxy_keys, PK_ARRAY_LEN(config_proxy_keys), 0, "All listeners."},
        {"iptables", false, config_iptables_keys, PK_ARRAY_LEN(config_iptables_keys), 0,
         "Read by `picket iptables` only: whose connections the redirect rules leave alone."},
        {"dns", false, config_dns_keys, PK_ARRAY_LEN(config_dns_keys), 0,
         "How DNS names ([sentry] address, listener targets) are resolved: on the event loop, "
         "never blocking; an answer is used for its TTL held between ttl_min and ttl_max, and a "
         "failed lookup keeps the last good answer."},
        {"inbound", true, config_listener_keys, PK_ARRAY_LEN(config_listener_keys), KF_INBOUND,
         "Any number, NAME 1 to 48 of A-Z a-z 0-9 _ . - and unique among listeners. Accepts mTLS "
         "from other apps and forwards plain bytes to this app. Each allow_* line adds a rule and "
         "a peer matching any rule is let in; with no rule, any peer of our own trust domain is."},
        {"outbound", true, config_listener_keys, PK_ARRAY_LEN(config_listener_keys), KF_OUTBOUND,
         "Any number, NAME as above. Accepts plain connections from this app and forwards them "
         "over mTLS to another app's sidecar, which must prove the identity named by "
         "expect_app_id or expect_spiffe_id (exactly one of them)."},
        {"transparent", true, config_listener_keys, PK_ARRAY_LEN(config_listener_keys),
         KF_TRANSPARENT,
         "Any number, NAME as above. Accepts this app's outgoing connections that the firewall "
         "redirected here (`picket iptables`), reads where each was going (SO_ORIGINAL_DST) and "
         "forwards it there over mTLS, expecting the identity its map line names. Needs [proxy] "
         "mark or [iptables] exclude_uid/exclude_gid. IPv4 and IPv6 take a listener each."},
};

bool config_is_blank(char c)
{
    return isspace((unsigned char)c) != 0;
}
/* ---- values ---- */

int config_parse_bool(const char *text, bool go_forms, bool *out)
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

static const char *const mode_names[] = {
        [PK_AGENT_MODE_AUTO] = "auto",
        [PK_AGENT_MODE_STANDALONE] = "standalone",
        [PK_AGENT_MODE_KUBERNETES] = "kubernetes",
};

int config_parse_mode(const char *text, int *out)
{
    for (size_t i = 0; i < PK_ARRAY_LEN(mode_names); i++) {
        if (strcmp(text, mode_names[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    }
    return PK_E_INVALID;
}

const char *config_mode_name(int mode)
{
    return mode >= 0 && (size_t)mode < PK_ARRAY_LEN(mode_names) ? mode_names[mode] : NULL;
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

/* A group name, looked up when the file is read so that a typo is an error with its line, or a
 * numeric gid (taken as it is: the group may exist only in a directory service). */
static int parse_group(const char *text, long *out, struct pk_err *err)
{
    char q[QUOTE_LEN];
    char buf[16384];
    struct group grp, *found = NULL;
    int r;

    if (text[0] >= '0' && text[0] <= '9') {
        /* (gid_t)-1 means "no change" to fchown: not a real group. */
        if (parse_count(text, 0, 4294967294L, out) != 0) {
            return pk_err_set(err, PK_E_INVALID,
                              "'%s' is not a group name or a gid from 0 to "
                              "4294967294",
                              pk_quote(q, sizeof(q), text, strlen(text)));
        }
        return 0;
    }
    r = getgrnam_r(text, &grp, buf, sizeof(buf), &found);
    if (r != 0) {
        return pk_err_set(err, -r, "cannot look up group '%s': %s",
                          pk_quote(q, sizeof(q), text, strlen(text)), strerror(r));
    }
    if (found == NULL) {
        return pk_err_set(err, PK_E_INVALID,
                          "no group named '%s' on this system: create it (groupadd) or give a "
                          "numeric gid",
                          pk_quote(q, sizeof(q), text, strlen(text)));
    }
    *out = (long)grp.gr_gid;
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

const char *config_signal_name(int number)
{
    for (size_t i = 0; i < PK_ARRAY_LEN(signals); i++) {
        if (signals[i].number == number) {
            return signals[i].name;
        }
    }
    return NULL;
}

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
        return pk_err_set(err, PK_E_INVALID, "expected APP or NAMESPACE/APP, got '%s'",
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
                          "'%s' is not a SPIFFE ID: it must start with spiffe:// and a trust "
                          "domain",
                          pk_quote(q, sizeof(q), text, strlen(text)));
    }
    /* The grammar pk_spiffe_match (the proxy's policy) matches with: checked here, so that a
     * bad pattern is reported with its line before any socket is bound. */
    return pk_spiffe_check_pattern(text, err);
}

/* server_name: a host name for SNI. RFC 6066 §3 forbids IP literals there. */
/* DNS servers as c-ares takes them: literal addresses with a port, comma-separated. */
static int check_servers(const char *text, struct pk_err *err)
{
    char one[PK_ADDR_HOST_LEN + 16];
    const char *p = text;

    for (;;) {
        size_t len = strcspn(p, ",");
        struct pk_addr addr;
        char q[QUOTE_LEN];
        if (len == 0 || len >= sizeof(one)) {
            return pk_err_set(err, PK_E_INVALID,
                              "'%s' is not a comma-separated list of IP:PORT or [IPV6]:PORT",
                              pk_quote(q, sizeof(q), text, strlen(text)));
        }
        memcpy(one, p, len);
        one[len] = '\0';
        if (strncmp(one, "unix:", 5) == 0) {
            return pk_err_set(err, PK_E_INVALID, "'%s': a DNS server is IP:PORT, not a unix socket",
                              pk_quote(q, sizeof(q), one, len));
        }
        if (pk_addr_parse(one, 0, &addr, err) != 0) {
            return PK_E_INVALID;
        }
        if (addr.kind != PK_ADDR_INET || strncmp(one, "localhost", 9) == 0) {
            return pk_err_set(err, PK_E_INVALID, "'%s': a DNS server must be an IP address",
                              pk_quote(q, sizeof(q), one, len));
        }
        if (p[len] == '\0') {
            return 0;
        }
        p += len + 1;
    }
}

static int check_server_name(const char *text, struct pk_err *err)
{
    size_t len = strlen(text);
    char q[QUOTE_LEN];
    struct in_addr a4;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (!isalnum(c) && c != '-' && c != '.' && c != '_') {
            return pk_err_set(err, PK_E_INVALID,
                              "'%s' is not a host name (letters, digits, '-', '_' and '.')",
                              pk_quote(q, sizeof(q), text, strlen(text)));
        }
    }
    if (len > MAX_DNS_NAME) {
        return pk_err_set(err, PK_E_INVALID, "'%s' is longer than a host name can be (%d bytes)",
                          pk_quote(q, sizeof(q), text, strlen(text)), MAX_DNS_NAME);
    }
    if (inet_pton(AF_INET, text, &a4) == 1) {
        return pk_err_set(err, PK_E_INVALID,
                          "'%s': SNI cannot carry an IP address (RFC 6066 §3); leave server_name "
                          "out",
                          pk_quote(q, sizeof(q), text, strlen(text)));
    }
    return 0;
}

void config_replace_string(char **field, const char *value)
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
        if (k->type == K_SOCKET || k->type == K_TARGET) {
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
        /* The proxy binds without resolving names. */
        return pk_addr_parse(value, 0, &addr, err);
    case K_SERVERS:
        return check_servers(value, err);
    case K_TARGET:
        /* A literal address (or localhost), else a DNS name the resolver keeps fresh. A host of
         * digits and dots is a mistyped IPv4 address, not a name. */
        if (strncmp(value, "unix:", 5) == 0 || value[0] == '[' ||
            strspn(value, "0123456789.") == strcspn(value, ":") ||
            pk_addr_parse(value, 0, &addr, NULL) == 0) {
            return pk_addr_parse(value, 0, &addr, err);
        }
        return pk_addr_parse(value, PK_ADDR_NAMES, &addr, err);
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
        struct pk_dst dst;
        return pk_dst_parse_ports(value, &dst, err);
    }
    default:
        return 0;
    }
}

/* Parse value for key into its field of base: a struct pk_sidecar_config, or for a listener key
 * a struct pk_listener_config. On error err says what is wrong with the value, without naming
 * the key. */
int config_set_value(const struct key *k, const char *value, void *base, struct pk_err *err)
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
    case K_TARGET:
    case K_SERVERS:
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
            config_replace_string(field, value);
        }
        return 0;
    case K_LISTEN:
        if (check_listen(value, err) != 0) {
            return PK_E_INVALID;
        }
        config_replace_string(field, value);
        return 0;
    case K_BOOL:
        if (config_parse_bool(value, false, &flag) != 0) {
            return pk_err_set(err, PK_E_INVALID,
                              "'%s' is not a boolean (true/false, yes/no, on/off, 1/0)",
                              pk_quote(q, sizeof(q), value, strlen(value)));
        }
        *(bool *)field = flag;
        return 0;
    case K_FRACTION:
        if (parse_decimal(value, &d) != 0) {
            return pk_err_set(err, PK_E_INVALID, "'%s' is not a decimal fraction such as 0.5",
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
            return pk_err_set(err, PK_E_INVALID, "'%s' is not a whole number from %ld to %ld",
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
                              "'%s' is not a signal name (HUP, INT, QUIT, USR1, USR2, TERM, "
                              "ALRM, CONT or WINCH, with or without SIG)",
                              pk_quote(q, sizeof(q), value, strlen(value)));
        }
        *(int *)field = i;
        return 0;
    case K_LOG_LEVEL: {
        enum pk_log_level level;
        if (pk_log_level_parse(value, &level) != 0) {
            return pk_err_set(err, PK_E_INVALID, "'%s' is not debug, info, warn or error",
                              pk_quote(q, sizeof(q), value, strlen(value)));
        }
        *(int *)field = (int)level;
        return 0;
    }
    case K_MODE:
        if (config_parse_mode(value, &i) != 0) {
            return pk_err_set(err, PK_E_INVALID, "'%s' is not auto, standalone or kubernetes",
                              pk_quote(q, sizeof(q), value, strlen(value)));
        }
        *(int *)field = i;
        return 0;
    case K_UNMAPPED:
        if (strcmp(value, "deny") == 0) {
            *(enum pk_unmapped_policy *)field = PK_UNMAPPED_DENY;
        } else if (strcmp(value, "passthrough") == 0) {
            *(enum pk_unmapped_policy *)field = PK_UNMAPPED_PASSTHROUGH;
        } else {
            return pk_err_set(err, PK_E_INVALID, "'%s' is not deny or passthrough",
                              pk_quote(q, sizeof(q), value, strlen(value)));
        }
        return 0;
    case K_MARK:
        if (parse_mark(value, &n) != 0) {
            return pk_err_set(err, PK_E_INVALID,
                              "'%s' is not a firewall mark: a number from 0 to 4294967295, "
                              "decimal or 0x hex",
                              pk_quote(q, sizeof(q), value, strlen(value)));
        }
        *(long *)field = n;
        return 0;
    case K_GROUP:
        return parse_group(value, (long *)field, err);
    case K_OWNER:
        /* (uid_t)-1 means "no change" to the kernel: not a real owner. */
        if (parse_count(value, 0, 4294967294L, &n) != 0) {
            return pk_err_set(err, PK_E_INVALID, "'%s' is not a numeric %s from 0 to 4294967294",
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
void config_move_field(const struct key *k, void *to, void *from)
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
    case K_GROUP:
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
    case K_MODE:
        memcpy(dst, src, sizeof(int));
        return;
    }
    PK_ASSERT(!"unknown key type");
}

void config_listener_init(struct pk_listener_config *lc, enum pk_listener_kind kind, char *name)
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
