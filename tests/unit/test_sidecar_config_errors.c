/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for sidecar/config: the errors of a configuration, each with its file:line and
 * its message, and the limits of the INI reader. */
/* cmocka.h must come after the system headers it relies on. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
/* clang-format on */

#include "common/err.h"
#include "common/log.h"
#include "sidecar/config.h"
#include "sidecar_config_util.h"

struct load_error {
    const char *ini;
    const char *env[6];
    const char *flags[8];
    int rc;
    const char *want[3];
};

static const struct load_error load_errors[] = {
        /* required settings */
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--sentry-address", "h:1"},
         PK_E_INVALID,
         {"app id is required", "--app-id", "[agent] app_id"}},
        {NULL,
         {NULL},
         {"--app-id", "a", "--sentry-address", "h:1"},
         PK_E_INVALID,
         {"trust anchors are required: set [sentry] trust_anchors_file, --trust-anchors-file or "
          "DAPR_TRUST_ANCHORS"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a"},
         PK_E_INVALID,
         {"no identity source", "--sentry-address", "cert_file"}},
        {"[agent]\ncert_file = /c.pem\n",
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a"},
         PK_E_INVALID,
         {"certificate is configured (/c.pem) but no private key"}},
        {"[agent]\nkey_file = /k.pem\n",
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a"},
         PK_E_INVALID,
         {"private key is configured (/k.pem) but no certificate"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem", "DAPR_CERT_CHAIN=chain"},
         {"--app-id", "a"},
         PK_E_INVALID,
         {"certificate is configured (DAPR_CERT_CHAIN) but no private key"}},
        {"[agent]\ncert_file = /c.pem\nkey_file = /k.pem\n",
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "--sentry-address", "h:1"},
         PK_E_INVALID,
         {"exclude each other"}},
        /* environment */
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem", "DAPR_SENTRY_TOKEN_FILE="},
         {"--app-id", "a", "--sentry-address", "h:1"},
         PK_E_INVALID,
         {"DAPR_SENTRY_TOKEN_FILE is set but empty"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem", "NAMESPACE=a/b"},
         {"--app-id", "a", "--sentry-address", "h:1"},
         PK_E_INVALID,
         {"NAMESPACE: "}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem", "APP_ID=.."},
         {"--sentry-address", "h:1"},
         PK_E_INVALID,
         {"APP_ID: "}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem", "DAPR_CONTROLPLANE_TRUST_DOMAIN=Bad TD"},
         {"--app-id", "a", "--sentry-address", "h:1"},
         PK_E_INVALID,
         {"DAPR_CONTROLPLANE_TRUST_DOMAIN: "}},
        /* flags */
        {NULL, {"DAPR_TRUST_ANCHORS=pem"}, {"--bogus"}, PK_E_INVALID, {"unknown flag '--bogus'"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "-bogus=1"},
         PK_E_INVALID,
         {"unknown flag '-bogus'"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--sentry-address", "h:1", "--app-id"},
         PK_E_INVALID,
         {"flag '--app-id' needs a value"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "extra"},
         PK_E_INVALID,
         {"unexpected argument 'extra'"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "--sentry-address", "h:1", "--", "x"},
         PK_E_INVALID,
         {"unexpected argument 'x'"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a/b", "--sentry-address", "h:1"},
         PK_E_INVALID,
         {"--app-id: "}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "--sentry-address", "nocolon"},
         PK_E_INVALID,
         {"--sentry-address: 'nocolon' is not HOST:PORT"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "--sentry-address", "h:1", "--log-level", "loud"},
         PK_E_INVALID,
         {"--log-level: 'loud' is not debug, info, warn or error"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "--sentry-address", "h:1", "--log-as-json=maybe"},
         PK_E_INVALID,
         {"--log-as-json: 'maybe' is not a boolean"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "--sentry-address", "h:1", "--log-as-json="},
         PK_E_INVALID,
         {"--log-as-json: '' is not a boolean"}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "--sentry-address", "h:1", "--control-plane-namespace", ""},
         PK_E_INVALID,
         {"--control-plane-namespace: "}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "--sentry-address", "h:1", "--trust-domain", "UPPER.example"},
         PK_E_INVALID,
         {"--trust-domain: "}},
        {NULL,
         {"DAPR_TRUST_ANCHORS=pem"},
         {"--app-id", "a", "--sentry-address", "h:1", "--trust-anchors-file="},
         PK_E_INVALID,
         {"--trust-anchors-file: empty"}},
        /* the file, through load */
        {"[agent]\napp_id = a\n[sentry]\naddress = h:1\nfoo = bar\n",
         {"DAPR_TRUST_ANCHORS=pem"},
         {NULL},
         PK_E_INVALID,
         {":5: [sentry] foo: unknown key"}},
};

static void test_load_errors(void **state)
{
    struct pk_sidecar_config *cfg;
    struct pk_err err;

    (void)state;
    for (size_t i = 0; i < sizeof(load_errors) / sizeof(load_errors[0]); i++) {
        const struct load_error *c = &load_errors[i];
        int r = load(c->ini, c->env, c->flags, &cfg, &err);
        if (r != c->rc) {
            fail_msg("case %zu: rc %d, want %d (%s)", i, r, c->rc, err.msg);
        }
        for (size_t j = 0; j < 3 && c->want[j] != NULL; j++) {
            assert_contains(err.msg, c->want[j]);
        }
    }
}

static void test_missing_config_file(void **state)
{
    const char *flags[] = {"-c", "/nonexistent/dir/picket.ini", "--app-id", "a", NULL};
    struct pk_sidecar_config *cfg;
    struct pk_err err;

    (void)state;
    assert_int_equal(load(NULL, base_env, flags, &cfg, &err), PK_E_NOTFOUND);
    assert_contains(err.msg, "/nonexistent/dir/picket.ini");
    assert_contains(err.msg, "does not exist");
}

/* ---- errors from the INI parser ---- */

struct ini_error {
    const char *text;
    const char *want;
};

static const struct ini_error ini_errors[] = {
        {"[agent]\nfoo = 1\n", "t.ini:2: [agent] foo: unknown key (the keys of [agent] are app_id"},
        {"[agnet]\napp_id = a\n", "t.ini:1: [agnet]: unknown section"},
        {"[agent]\n[empty-unknown]\n", "t.ini:2: [empty-unknown]: unknown section"},
        {"[tproxy]\nlisten = :8443\n",
         "t.ini:1: [tproxy]: unknown section (picket.ini has [agent], "
         "[sentry], [admin], [log], [proxy], [iptables], [inbound "
         "NAME], [outbound NAME] and [transparent NAME])"},
        {"[transparent]\nlisten = :8443\n",
         "t.ini:1: [transparent]: section [transparent] needs a name, as in [transparent NAME]"},
        {"[agent x]\n", "t.ini:1: [agent x]: section [agent] takes no name"},
        {"[agent\n", "t.ini:1: section header without a closing ']'"},
        {"[agent] junk\n", "t.ini:1: unexpected text after the section header"},
        {"[abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijXYZ]\n",
         "t.ini:1: [abcdefghijabcdefghijabcdefghijabcdefghijabcdefghi...]: section name is "
         "longer than 49 bytes"},
        {"app_id = a\n", "t.ini:1: app_id: key outside a section"},
        {"[agent]\napp_id\n", "t.ini:2: expected 'key = value'"},
        {"[agent]\napp_id = a\n  namespace = b\n", "t.ini:3: indented line"},
        {"[agent]\nallow_tls12 = maybe\n",
         "t.ini:2: [agent] allow_tls12: 'maybe' is not a boolean"},
        {"[log]\njson = 2\n", "t.ini:2: [log] json: '2' is not a boolean"},
        {"[agent]\nretry_max = 5 minutes\n", "t.ini:2: [agent] retry_max: invalid duration"},
        {"[agent]\nrequest_timeout = 0s\n", "t.ini:2: [agent] request_timeout: 0s is out of range"},
        {"[agent]\nretry_initial = -1s\n", "t.ini:2: [agent] retry_initial: -1s is out of range"},
        {"[agent]\nretry_initial = 5s\nretry_max = 2s\n",
         "t.ini:3: [agent] retry_max: retry_max 2s is less than retry_initial 5s"},
        {"[agent]\nrenew_at = 1.5\n", "t.ini:2: [agent] renew_at: 1.5 is out of range"},
        {"[agent]\nrenew_at = 0\n", "t.ini:2: [agent] renew_at: 0 is out of range"},
        {"[agent]\nrenew_at = nan\n", "t.ini:2: [agent] renew_at: 'nan' is not a decimal"},
        {"[agent]\nrenew_at = 1e-1\n", "t.ini:2: [agent] renew_at: '1e-1' is not a decimal"},
        {"[agent]\nrenew_jitter = 0.3\n", "t.ini:2: [agent] renew_jitter: 0.3 is out of range"},
        {"[agent]\nrenew_jitter = 0.1\n\nrenew_at = 0.9\n",
         "t.ini:4: [agent] renew_at: renew_at 0.9 +/- renew_jitter 0.1 leaves the lifetime"},
        {"[agent]\nrenew_at = 0.05\n", "t.ini:2: [agent] renew_at: renew_at 0.05 +/- renew_jitter "
                                       "0.1"},
        {"[agent]\napp_id = a\n\napp_id = b\n",
         "t.ini:4: [agent] app_id: given twice (first on line 2)"},
        {"[agent]\napp_id = a\n[log]\nlevel = info\n[agent]\napp_id = b\n",
         "t.ini:6: [agent] app_id: given twice (first on line 2)"},
        {"[agent]\napp_id = a/b\n", "t.ini:2: [agent] app_id: "},
        {"[agent]\nnamespace = ..\n", "t.ini:2: [agent] namespace: "},
        {"[agent]\ntrust_domain = Example.org\n", "t.ini:2: [agent] trust_domain: "},
        {"[agent]\ninitial_attempts = -1\n",
         "t.ini:2: [agent] initial_attempts: '-1' is not a whole number"},
        {"[agent]\ninitial_attempts = 3x\n",
         "t.ini:2: [agent] initial_attempts: '3x' is not a whole number"},
        {"[agent]\nexport_signal = FOO\n", "t.ini:2: [agent] export_signal: 'FOO' is not a signal"},
        {"[agent]\nexport_dir =\n", "t.ini:2: [agent] export_dir: empty value"},
        {"[agent]\nexport_command = true\n",
         "t.ini:2: [agent] export_command: export_command runs after an export, but export_dir"},
        {"[agent]\nexport_dir = /d\nexport_signal = USR1\n",
         "t.ini:3: [agent] export_signal: export_signal needs export_pid_file"},
        {"[agent]\nexport_dir = /d\nexport_group = pk-no-such-group\n",
         "t.ini:3: [agent] export_group: no group named 'pk-no-such-group' on this system"},
        {"[agent]\nexport_dir = /d\nexport_group = 4294967295\n",
         "t.ini:3: [agent] export_group: '4294967295' is not a group name or a gid"},
        {"[agent]\nexport_group = root\n",
         "t.ini:2: [agent] export_group: export_group is the group of the exported files, but "
         "export_dir is not set"},
        {"[sentry]\naddress = nocolon\n", "t.ini:2: [sentry] address: 'nocolon' is not HOST:PORT"},
        {"[sentry]\naddress = ::1:50001\n", "t.ini:2: [sentry] address: '::1:50001': put an IPv6"},
        {"[sentry]\naddress = host:0\n", "t.ini:2: [sentry] address: 'host:0': the port"},
        {"[sentry]\naddress = host:http\n", "t.ini:2: [sentry] address: 'host:http': the port"},
        {"[sentry]\ncontrol_plane_namespace = a b\n", "t.ini:2: [sentry] control_plane_namespace"},
        {"[sentry]\nadopt_trust_chain = y\n", "t.ini:2: [sentry] adopt_trust_chain: 'y' is not"},
        {"[admin]\nlisten = 127.0.0.1:99999\n", "t.ini:2: [admin] listen: expected HOST:PORT"},
        {"[admin]\nlisten = unix:\n", "t.ini:2: [admin] listen: 'unix:': a unix socket path"},
        {"[log]\nlevel = loud\n", "t.ini:2: [log] level: 'loud' is not debug, info, warn or error"},
        {"[log]\nlevel = info\nlevel = debug\n", "t.ini:3: [log] level: given twice"},
        {"[agent]\napp_id = \x01\n", "t.ini:2: [agent] app_id: "},
        /* [proxy] */
        {"[proxy]\nworkers = 257\n", "t.ini:2: [proxy] workers: '257' is not a whole number from "
                                     "0 to 256"},
        {"[proxy]\nworkers = -1\n", "t.ini:2: [proxy] workers: '-1' is not a whole number"},
        {"[proxy]\nshutdown_timeout = 1d\n", "t.ini:2: [proxy] shutdown_timeout: invalid duration"},
        {"[proxy]\nshutdown_timeout = 25h\n", "t.ini:2: [proxy] shutdown_timeout: 25h is out of "
                                              "range"},
        {"[proxy]\nworkers = 1\n[proxy]\nworkers = 2\n",
         "t.ini:4: [proxy] workers: given twice (first on line 2)"},
        {"[proxy main]\n", "t.ini:1: [proxy main]: section [proxy] takes no name"},
        {"[proxy]\nlisten = 127.0.0.1:1\n", "t.ini:2: [proxy] listen: unknown key (the keys of "
                                            "[proxy] are workers, shutdown_timeout, mark)"},
        /* listener names */
        {"[inbound]\n", "t.ini:1: [inbound]: section [inbound] needs a name, as in [inbound NAME]"},
        {"[outbound ]\n", "t.ini:1: [outbound ]: section [outbound] needs a name"},
        {"[inbound we/b]\n", "t.ini:1: [inbound we/b]: bad NAME: it must be 1 to 48 of the "
                             "letters, digits, '_', '.' and '-'"},
        {"[inbound a b]\n", "t.ini:1: [inbound a b]: bad NAME"},
        {"[outbound caf\xc3\xa9]\n", "t.ini:1: [outbound caf\\xc3\\xa9]: bad NAME"},
        {"[inbound abcdefghijabcdefghijabcdefghijabcdefghijabcdefghi]\n",
         "t.ini:1: [inbound abcdefghijabcdefghijabcdefghijabcdefghijabcdefgh...]: the NAME is "
         "longer than 48 bytes"},
        {"[inbound web]\nlisten = 127.0.0.1:1\ntarget = 127.0.0.1:2\n\n[outbound web]\n",
         "t.ini:5: [outbound web]: the NAME web is already used by [inbound web] on line 1"},
        {"[outbound a]\n[inbound b]\n[outbound a]\n",
         "t.ini:3: [outbound a]: the NAME a is already used by [outbound a] on line 1"},
        /* keys of the other kind, unknown keys, keys given twice */
        {"[outbound api]\nallow_app_id = x\n",
         "t.ini:2: [outbound api] allow_app_id: not valid in an outbound section (only [inbound "
         "NAME] has it)"},
        {"[outbound api]\nproxy_protocol = true\n",
         "t.ini:2: [outbound api] proxy_protocol: not valid in an outbound section"},
        {"[inbound web]\nexpect_app_id = x\n",
         "t.ini:2: [inbound web] expect_app_id: not valid in an inbound section (only [outbound "
         "NAME] has it)"},
        {"[inbound web]\nallow_non_loopback = true\n",
         "t.ini:2: [inbound web] allow_non_loopback: not valid in an inbound section"},
        {"[inbound web]\nserver_name = x\n",
         "t.ini:2: [inbound web] server_name: not valid in an inbound section"},
        {"[inbound web]\nallow = spiffe://a/b\n",
         "t.ini:2: [inbound web] allow: unknown key (the keys of [inbound NAME] are listen, "
         "target, "
         "allow_trust_domain, allow_namespace, allow_app_id, allow_spiffe_id, proxy_protocol, "
         "permissive, intercept_port, max_connections"},
        {"[outbound api]\nexpect = a\n",
         "t.ini:2: [outbound api] expect: unknown key (the keys of [outbound NAME] are listen, "
         "target, expect_spiffe_id, expect_app_id, expect_namespace, server_name, "
         "allow_non_loopback, max_connections"},
        {"[inbound web]\nlisten = 127.0.0.1:1\nlisten = 127.0.0.1:2\n",
         "t.ini:3: [inbound web] listen: given twice (first on line 2)"},
        {"[outbound api]\nexpect_app_id = a\nidle_timeout = 1s\n\nidle_timeout = 2s\n",
         "t.ini:5: [outbound api] idle_timeout: given twice (first on line 3)"},
        {"[inbound web]\nproxy_protocol = no\n[agent]\n[inbound web2]\nproxy_protocol = no\n"
         "[inbound web]\n",
         "t.ini:6: [inbound web]: the NAME web is already used"},
        /* empty values */
        {"[inbound web]\nallow_app_id = a\nallow_app_id =\n",
         "t.ini:3: [inbound web] allow_app_id: empty value: an allow rule must name whom it "
         "allows (an empty one never means \"allow all\")"},
        {"[inbound web]\nallow_trust_domain =\n", "t.ini:2: [inbound web] allow_trust_domain: "
                                                  "empty value: an allow rule"},
        {"[inbound web]\nallow_namespace = ; nothing\n", "t.ini:2: [inbound web] allow_namespace: "
                                                         "empty value: an allow rule"},
        {"[inbound web]\nallow_spiffe_id =\n", "t.ini:2: [inbound web] allow_spiffe_id: empty "
                                               "value: an allow rule"},
        {"[inbound web]\nlisten =\n", "t.ini:2: [inbound web] listen: empty value: the address is "
                                      "required"},
        {"[outbound api]\nserver_name =\n", "t.ini:2: [outbound api] server_name: empty value"},
        {"[outbound api]\nexpect_namespace =\n", "t.ini:2: [outbound api] expect_namespace: empty "
                                                 "value"},
        {"[inbound web]\nproxy_protocol =\n", "t.ini:2: [inbound web] proxy_protocol: '' is not a "
                                              "boolean"},
        {"[inbound web]\nmax_connections =\n", "t.ini:2: [inbound web] max_connections: '' is not "
                                               "a whole number"},
        {"[inbound web]\nidle_timeout =\n", "t.ini:2: [inbound web] idle_timeout: "},
        /* addresses */
        {"[inbound web]\nlisten = example.com:443\n",
         "t.ini:2: [inbound web] listen: 'example.com:443': the host must be a numeric IPv4 "
         "address, [IPv6] or localhost (names are not resolved)"},
        {"[inbound web]\ntarget = 256.0.0.1:80\n", "t.ini:2: [inbound web] target: '256.0.0.1:80': "
                                                   "the host must be a numeric IPv4"},
        {"[inbound web]\ntarget = 127.1:80\n", "t.ini:2: [inbound web] target: '127.1:80': the "
                                               "host must be"},
        {"[inbound web]\ntarget = peer .svc:80\n", "t.ini:2: [inbound web] target: "},
        {"[outbound web]\ntarget = peer.svc:0\n", "t.ini:2: [outbound web] target: "},
        /* [dns] */
        {"[dns]\nservers = dns.example:53\n",
         "t.ini:2: [dns] servers: 'dns.example:53': the host must be"},
        {"[dns]\nservers = 127.0.0.1:53,\n", "t.ini:2: [dns] servers: '127.0.0.1:53,' is not a "
                                             "comma-separated list"},
        {"[dns]\nservers = unix:/run/dns\n", "not a unix socket"},
        {"[dns]\nservers = localhost:53\n", "a DNS server must be an IP address"},
        {"[dns]\nttl_min = 10s\nttl_max = 5s\n", "t.ini:3: [dns] ttl_max: ttl_max 5s is less than "
                                                 "ttl_min"},
        {"[dns]\nttl_min = 0s\n", "t.ini:2: [dns] ttl_min: "},
        {"[inbound web]\nlisten = LOCALHOST:80\n", "t.ini:2: [inbound web] listen: "
                                                   "'LOCALHOST:80': the host must be"},
        {"[inbound web]\nlisten = 127.0.0.1:0\n",
         "t.ini:2: [inbound web] listen: expected HOST:PORT, [V6]:PORT or unix:/PATH: "
         "'127.0.0.1:0': the port is not a number from 1 to 65535"},
        {"[inbound web]\nlisten = 127.0.0.1:65536\n", "t.ini:2: [inbound web] listen: expected "
                                                      "HOST:PORT"},
        {"[inbound web]\nlisten = 127.0.0.1\n", "t.ini:2: [inbound web] listen: expected "
                                                "HOST:PORT, [V6]:PORT or unix:/PATH: '127.0.0.1' "
                                                "is not HOST:PORT"},
        {"[inbound web]\nlisten = :8443\n", "t.ini:2: [inbound web] listen: expected HOST:PORT"},
        {"[inbound web]\nlisten = ::1:8443\n", "t.ini:2: [inbound web] listen: expected "
                                               "HOST:PORT, [V6]:PORT or unix:/PATH: '::1:8443': "
                                               "put an IPv6 address in brackets"},
        {"[inbound web]\nlisten = [fe80::1%eth0]:8443\n", "t.ini:2: [inbound web] listen: "
                                                          "'[fe80::1%eth0]:8443': not an IPv6 "
                                                          "address in brackets"},
        {"[inbound web]\nlisten = [127.0.0.1]:8443\n", "t.ini:2: [inbound web] listen: "
                                                       "'[127.0.0.1]:8443': not an IPv6"},
        {"[inbound web]\nlisten = [::1:8443\n", "t.ini:2: [inbound web] listen: expected "
                                                "HOST:PORT"},
        {"[inbound web]\ntarget = unix:run/app.sock\n",
         "t.ini:2: [inbound web] target: 'unix:run/app.sock': a unix socket path must be "
         "absolute, as in unix:/run/app.sock"},
        {"[inbound web]\ntarget = unix:\n", "t.ini:2: [inbound web] target: 'unix:': a unix "
                                            "socket path must be absolute"},
        {"[inbound web]\ntarget = unix:/"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaa\n",
         "t.ini:2: [inbound web] target: 'unix:/aaa"},
        /* outbound listen must be loopback unless allowed */
        {"[outbound api]\nlisten = 0.0.0.0:9000\ntarget = 10.0.0.1:443\nexpect_app_id = api\n",
         "t.ini:2: [outbound api] listen: '0.0.0.0:9000' is not a loopback address, so other "
         "hosts could connect with this app's identity; set allow_non_loopback = true"},
        {"[outbound api]\nallow_non_loopback = false\nexpect_app_id = api\ntarget = "
         "10.0.0.1:443\nlisten = [::]:9000\n",
         "t.ini:5: [outbound api] listen: '[::]:9000' is not a loopback address"},
        {"[outbound api]\nlisten = 128.0.0.1:9000\ntarget = 10.0.0.1:443\nexpect_app_id = api\n",
         "t.ini:2: [outbound api] listen: '128.0.0.1:9000' is not a loopback"},
        {"[outbound api]\nlisten = [::2]:9000\ntarget = 10.0.0.1:443\nexpect_app_id = api\n",
         "t.ini:2: [outbound api] listen: '[::2]:9000' is not a loopback"},
        /* the server's identity */
        {"[outbound api]\nlisten = 127.0.0.1:9000\ntarget = 10.0.0.1:443\nexpect_app_id = "
         "api\nexpect_spiffe_id = spiffe://td/ns/default/api\n",
         "t.ini:5: [outbound api] expect_spiffe_id: the server's identity is already given by "
         "expect_app_id on line 4: keep one of expect_spiffe_id and expect_app_id"},
        {"[outbound api]\nexpect_spiffe_id = spiffe://td/ns/default/api\nlisten = "
         "127.0.0.1:9000\ntarget = 10.0.0.1:443\nexpect_app_id = api\n",
         "t.ini:5: [outbound api] expect_app_id: the server's identity is already given by "
         "expect_spiffe_id on line 2"},
        {"[agent]\n\n[outbound api]\nlisten = 127.0.0.1:9000\ntarget = 10.0.0.1:443\n",
         "t.ini:3: [outbound api]: the server's identity is missing: set expect_app_id (with "
         "expect_namespace for another namespace) or expect_spiffe_id"},
        {"[outbound api]\nlisten = 127.0.0.1:9000\ntarget = 10.0.0.1:443\nexpect_namespace = ns\n",
         "t.ini:4: [outbound api] expect_namespace: only goes with expect_app_id"},
        {"[outbound api]\nexpect_namespace = ns\nlisten = 127.0.0.1:9000\ntarget = "
         "10.0.0.1:443\nexpect_spiffe_id = spiffe://td/ns/ns/api\n",
         "t.ini:2: [outbound api] expect_namespace: only goes with expect_app_id"},
        {"[outbound api]\nexpect_spiffe_id = spiffe://td/ns/*/api\n",
         "t.ini:2: [outbound api] expect_spiffe_id: "},
        {"[outbound api]\nexpect_spiffe_id = https://td/api\n",
         "t.ini:2: [outbound api] expect_spiffe_id: "},
        {"[outbound api]\nexpect_app_id = a/b\n", "t.ini:2: [outbound api] expect_app_id: "},
        {"[outbound api]\nexpect_namespace = ..\n", "t.ini:2: [outbound api] expect_namespace: "},
        {"[outbound api]\nserver_name = 10.0.0.1\n",
         "t.ini:2: [outbound api] server_name: '10.0.0.1': SNI cannot carry an IP address"},
        {"[outbound api]\nserver_name = api service\n",
         "t.ini:2: [outbound api] server_name: 'api service' is not a host name"},
        {"[outbound api]\nserver_name = [::1]\n", "t.ini:2: [outbound api] server_name: '[::1]' "
                                                  "is not a host name"},
        /* authorization values */
        {"[inbound web]\nallow_trust_domain = Example.org\n",
         "t.ini:2: [inbound web] allow_trust_domain: "},
        {"[inbound web]\nallow_trust_domain = *.example.org\n",
         "t.ini:2: [inbound web] allow_trust_domain: "},
        {"[inbound web]\nallow_namespace = a/b\n", "t.ini:2: [inbound web] allow_namespace: "},
        {"[inbound web]\nallow_app_id = ns/app/x\n", "t.ini:2: [inbound web] allow_app_id: "
                                                     "expected APP or NAMESPACE/APP, got "
                                                     "'ns/app/x'"},
        {"[inbound web]\nallow_app_id = /app\n", "t.ini:2: [inbound web] allow_app_id: "},
        {"[inbound web]\nallow_app_id = ns/\n", "t.ini:2: [inbound web] allow_app_id: "},
        {"[inbound web]\nallow_app_id = ../app\n", "t.ini:2: [inbound web] allow_app_id: "},
        {"[inbound web]\nallow_spiffe_id = example.org/ns/a/b\n",
         "t.ini:2: [inbound web] allow_spiffe_id: 'example.org/ns/a/b' is not a SPIFFE ID: it "
         "must start with spiffe://"},
        {"[inbound web]\nallow_spiffe_id = spiffe://\n", "t.ini:2: [inbound web] allow_spiffe_id: "
                                                         "'spiffe://' is not a SPIFFE ID"},
        {"[inbound web]\nallow_spiffe_id = SPIFFE://td/x\n",
         "t.ini:2: [inbound web] allow_spiffe_id: 'SPIFFE://td/x' is not a SPIFFE ID"},
        /* required keys, reported at the section's line */
        {"[agent]\napp_id = a\n\n[inbound web]\ntarget = 127.0.0.1:8080\n",
         "t.ini:4: [inbound web] listen: missing: a listener needs listen (where to accept) and "
         "target (where to connect)"},
        {"[inbound a]\nlisten = 127.0.0.1:1\ntarget = 127.0.0.1:2\n[outbound b]\nlisten = "
         "127.0.0.1:3\nexpect_app_id = x\n",
         "t.ini:4: [outbound b] target: missing"},
        {"[inbound web]\n", "t.ini:1: [inbound web] listen: missing"},
        /* numbers and durations */
        {"[inbound web]\nmax_connections = 0\n",
         "t.ini:2: [inbound web] max_connections: '0' is not a whole number from 1 to 1000000"},
        {"[inbound web]\nmax_connections = 1000001\n", "t.ini:2: [inbound web] max_connections: "
                                                       "'1000001' is not a whole number"},
        {"[outbound api]\nmax_handshakes = 100001\n",
         "t.ini:2: [outbound api] max_handshakes: '100001' is not a whole number from 1 to 100000"},
        {"[outbound api]\nmax_handshakes = 1e3\n", "t.ini:2: [outbound api] max_handshakes: '1e3' "
                                                   "is not a whole number"},
        {"[inbound web]\nbuffer_size = 1023\n",
         "t.ini:2: [inbound web] buffer_size: '1023' is not a whole number from 1024 to 1048576"},
        {"[inbound web]\nbuffer_size = 1048577\n", "t.ini:2: [inbound web] buffer_size: '1048577' "
                                                   "is not a whole number"},
        {"[inbound web]\nbuffer_size = 16k\n", "t.ini:2: [inbound web] buffer_size: '16k' is not "
                                               "a whole number"},
        {"[inbound web]\nconnect_timeout = 0s\n", "t.ini:2: [inbound web] connect_timeout: 0s is "
                                                  "out of range: it must be from 1ms to 24h0m0s"},
        {"[inbound web]\nhandshake_timeout = 5\n", "t.ini:2: [inbound web] handshake_timeout: "
                                                   "invalid duration"},
        {"[outbound api]\nidle_timeout = -1s\n", "t.ini:2: [outbound api] idle_timeout: -1s is "
                                                 "out of range"},
        {"[outbound api]\nmax_lifetime = 25h\n", "t.ini:2: [outbound api] max_lifetime: 25h is "
                                                 "out of range: it must be from 0s to 24h0m0s"},
        {"[inbound web]\nproxy_protocol = maybe\n", "t.ini:2: [inbound web] proxy_protocol: "
                                                    "'maybe' is not a boolean"},
        {"[outbound api]\nallow_non_loopback = 2\n", "t.ini:2: [outbound api] allow_non_loopback: "
                                                     "'2' is not a boolean"},
        /* a bad key after good listeners still changes nothing */
        {"[inbound a]\nlisten = 127.0.0.1:1\ntarget = 127.0.0.1:2\n[agent]\nbogus = 1\n",
         "t.ini:5: [agent] bogus: unknown key"},
        /* transparent mode */
        {"[transparent out]\nlisten = 127.0.0.1:15001\n",
         "t.ini:1: [transparent out]: no map line and unmapped = deny would refuse every "
         "connection"},
        {"[transparent out]\nlisten = 127.0.0.1:15001\nunmapped = passthrough\n",
         "t.ini:1: [transparent out]: nothing to intercept"},
        {"[transparent out]\nlisten = 127.0.0.1:15001\nmap = 10.0.0.1/8 any\n",
         "t.ini:3: [transparent out] map: '10.0.0.1/8': bits are set past the /8 prefix"},
        {"[transparent out]\nlisten = 127.0.0.1:15001\nmap = 10.0.0.0/8 8080 allow\n",
         "t.ini:3: [transparent out] map: 'allow' is not an action"},
        {"[transparent out]\nlisten = 127.0.0.1:15001\nintercept = 10.0.0.0/8 http\n",
         "t.ini:3: [transparent out] intercept: 'http' is not a port"},
        {"[transparent out]\nlisten = 127.0.0.1:15001\nunmapped = allow\n",
         "t.ini:3: [transparent out] unmapped: 'allow' is not deny or passthrough"},
        {"[transparent out]\ntarget = 10.0.0.1:80\n",
         "t.ini:2: [transparent out] target: not valid in a transparent section (only [inbound "
         "NAME] or [outbound NAME] has it)"},
        {"[transparent out]\nmap = 10.0.0.0/8 any\n",
         "t.ini:1: [transparent out] listen: missing: a listener needs listen (where to "
         "accept)"},
        {"[transparent out]\nlisten = unix:/run/x.sock\nmap = 10.0.0.0/8 any\n",
         "t.ini:2: [transparent out] listen: 'unix:/run/x.sock': a transparent listener takes "
         "redirected TCP connections"},
        {"[proxy]\nmark = 1\n[transparent out]\nlisten = 0.0.0.0:15001\nmap = 10.0.0.0/8 any\n",
         "t.ini:4: [transparent out] listen: '0.0.0.0:15001' is not a loopback address"},
        {"[transparent out]\nlisten = 127.0.0.1:15001\nmap = 10.0.0.0/8 any\n",
         "t.ini:1: [transparent out]: picket's own connections would be redirected back to it: "
         "set [proxy] mark"},
        {"[proxy]\nmark = 0x1ffffffff\n", "t.ini:2: [proxy] mark: '0x1ffffffff' is not a "
                                          "firewall mark"},
        {"[proxy]\nmark = 0x\n", "t.ini:2: [proxy] mark: '0x' is not a firewall mark"},
        {"[proxy]\nmark = -1\n", "t.ini:2: [proxy] mark: '-1' is not a firewall mark"},
        {"[iptables]\nexclude_uid = root\n",
         "t.ini:2: [iptables] exclude_uid: 'root' is not a numeric uid from 0 to 4294967294"},
        {"[iptables]\nexclude_gid = 4294967295\n",
         "t.ini:2: [iptables] exclude_gid: '4294967295' is not a numeric gid"},
        {"[inbound in]\nlisten = 127.0.0.1:15006\ntarget = 127.0.0.1:80\nintercept_port = 80\n",
         "t.ini:4: [inbound in] intercept_port: the firewall redirects incoming connections to "
         "this host's own address"},
        {"[inbound in]\nintercept_port = 80 81\n",
         "t.ini:2: [inbound in] intercept_port: '80 81' is not a port"},
        {"[inbound in]\nintercept_port = 0\n", "t.ini:2: [inbound in] intercept_port: '0' is "
                                               "not a port"},
        {"[inbound in]\npermissive = maybe\n",
         "t.ini:2: [inbound in] permissive: 'maybe' is not a boolean"},
        {"[outbound o]\npermissive = true\n",
         "t.ini:2: [outbound o] permissive: not valid in an outbound section (only [inbound "
         "NAME] has it)"},
        {"[inbound in]\nmap = 10.0.0.0/8 any\n",
         "t.ini:2: [inbound in] map: not valid in an inbound section (only [transparent NAME] "
         "has it)"},
};

static void test_ini_errors(void **state)
{
    struct pk_err err;

    (void)state;
    for (size_t i = 0; i < sizeof(ini_errors) / sizeof(ini_errors[0]); i++) {
        struct pk_sidecar_config *into = pk_sidecar_config_new();
        const char *text = ini_errors[i].text;
        pk_err_clear(&err);
        int r = pk_sidecar_config_parse_ini(text, strlen(text), "t.ini", into, &err);
        if (r != PK_E_INVALID || strstr(err.msg, ini_errors[i].want) == NULL) {
            fail_msg("case %zu: rc %d, message \"%s\", want \"%s\"", i, r, err.msg,
                     ini_errors[i].want);
        }
        /* A bad file changes nothing, even the keys before the bad line. */
        assert_null(into->agent.app_id);
        assert_true(into->agent.renew_fraction == 0.5);
        assert_string_equal(into->agent.namespace_, "default");
        assert_int_equal(into->workers, 0);
        assert_null(into->listeners);
        assert_int_equal(into->n_listeners, 0);
        pk_sidecar_config_free(into);
    }
}

/* Mistakes that used to surface only when the proxy built its policies or bound its sockets:
 * found while reading the file, with the line, before anything is bound. */
#define IN_A "[inbound a]\ntarget = 127.0.0.1:9\nlisten = "
#define IN_B "\n[inbound b]\ntarget = 127.0.0.1:9\nlisten = "
static const struct {
    const char *text;
    const char *want;
} load_time_errors[] = {
        {"[inbound web]\nallow_spiffe_id = spiffe://x/**\n",
         "t.ini:2: [inbound web] allow_spiffe_id: '*' must stand for a whole path segment, not "
         "part of one ('**'): 'spiffe://x/**'"},
        {"[inbound web]\nallow_spiffe_id = spiffe://x/ns/a*\n",
         "t.ini:2: [inbound web] allow_spiffe_id: '*' must stand for a whole path segment"},
        {"[inbound web]\nallow_spiffe_id = spiffe://*.x/ns/a\n",
         "t.ini:2: [inbound web] allow_spiffe_id: '*' is not allowed in the trust domain"},
        {"[inbound web]\nallow_spiffe_id = spiffe://x/ns//a\n",
         "t.ini:2: [inbound web] allow_spiffe_id: "},
        {"[inbound web]\nallow_spiffe_id = spiffe://x/ns/*/a b\n",
         "t.ini:2: [inbound web] allow_spiffe_id: pattern 'spiffe://x/ns/*/a b'"},
        {IN_A "127.0.0.1:8443" IN_B "127.0.0.1:8443\n",
         "t.ini:6: [inbound b] listen: '127.0.0.1:8443' takes the connections of [inbound a] "
         "listen '127.0.0.1:8443' (line 3): give each listener its own address"},
        {IN_A "localhost:8443" IN_B "127.0.0.1:8443\n",
         "t.ini:6: [inbound b] listen: '127.0.0.1:8443' takes the connections of [inbound a] "
         "listen 'localhost:8443' (line 3)"},
        {IN_A "0.0.0.0:8443" IN_B "10.0.0.1:8443\n",
         "t.ini:6: [inbound b] listen: '10.0.0.1:8443' takes the connections of [inbound a] "
         "listen '0.0.0.0:8443' (line 3)"},
        {IN_A "[::1]:8443" IN_B "[::]:8443\n",
         "t.ini:6: [inbound b] listen: '[::]:8443' takes the connections of [inbound a] listen "
         "'[::1]:8443' (line 3)"},
        {"[inbound a]\ntarget = 127.0.0.1:9\nlisten = unix:/run/a.sock\n[outbound b]\n"
         "expect_app_id = x\ntarget = 127.0.0.1:9\nlisten = unix:/run/a.sock\n",
         "t.ini:7: [outbound b] listen: 'unix:/run/a.sock' takes the connections of [inbound a] "
         "listen 'unix:/run/a.sock' (line 3)"},
        {"[admin]\nlisten = 127.0.0.1:7000\n" IN_A "0.0.0.0:7000\n",
         "t.ini:5: [inbound a] listen: '0.0.0.0:7000' is the admin endpoint's address ([admin] "
         "listen '127.0.0.1:7000', line 2): give the listener another address"},
        {IN_A "127.0.0.1:7000\n[admin]\nlisten = localhost:7000\n",
         "t.ini:5: [admin] listen: 'localhost:7000' is the address of [inbound a] listen "
         "'127.0.0.1:7000' (line 3): give the admin endpoint another address"},
        {IN_A "127.0.0.1:9901\n",
         "t.ini:3: [inbound a] listen: '127.0.0.1:9901' is the admin endpoint's address ([admin] "
         "listen '127.0.0.1:9901', its default)"},
};

static void test_load_time_errors(void **state)
{
    struct pk_err err;

    (void)state;
    for (size_t i = 0; i < PK_ARRAY_LEN(load_time_errors); i++) {
        struct pk_sidecar_config *into = pk_sidecar_config_new();
        const char *text = load_time_errors[i].text;
        pk_err_clear(&err);
        int r = pk_sidecar_config_parse_ini(text, strlen(text), "t.ini", into, &err);
        if (r != PK_E_INVALID || strstr(err.msg, load_time_errors[i].want) == NULL) {
            fail_msg("case %zu: rc %d, message \"%s\", want \"%s\"", i, r, err.msg,
                     load_time_errors[i].want);
        }
        assert_null(into->listeners);
        pk_sidecar_config_free(into);
    }
}

/* Listeners that share a port but not the connections are fine. */
static void test_listen_addresses_apart(void **state)
{
    static const char *const texts[] = {
            IN_A "127.0.0.1:8443" IN_B "127.0.0.2:8443\n",
            IN_A "0.0.0.0:8443" IN_B "[::]:8443\n",
            IN_A "127.0.0.1:8443" IN_B "127.0.0.1:8444\n",
            IN_A "unix:/run/a.sock" IN_B "unix:/run/b.sock\n",
            "[admin]\nlisten = off\n" IN_A "127.0.0.1:9901\n",
            "[admin]\nlisten = 127.0.0.1:0\n" IN_A "127.0.0.1:9901\n",
            "[admin]\nlisten = unix:/run/admin.sock\n" IN_A "127.0.0.1:9901\n",
            "[inbound web]\ntarget = 127.0.0.1:9\nlisten = 127.0.0.1:1\n"
            "allow_spiffe_id = spiffe://x/ns/*/a\nallow_spiffe_id = spiffe://x/*/*/*\n",
    };
    struct pk_err err;

    (void)state;
    for (size_t i = 0; i < PK_ARRAY_LEN(texts); i++) {
        struct pk_sidecar_config *into = pk_sidecar_config_new();
        pk_err_clear(&err);
        if (pk_sidecar_config_parse_ini(texts[i], strlen(texts[i]), "t.ini", into, &err) != 0) {
            fail_msg("case %zu: %s", i, err.msg);
        }
        pk_sidecar_config_free(into);
    }
}
#undef IN_A
#undef IN_B

/* Builds "[agent]\nexport_dir = /d\nexport_command = xxx...", whose third line has len bytes. */
static char *long_line_ini(size_t len, const char *eol)
{
    static const char head[] = "[agent]\nexport_dir = /d\n";
    static const char key[] = "export_command = ";
    size_t n = strlen(head) + len + strlen(eol) + 1;
    char *text = malloc(n);

    assert_non_null(text);
    assert_true(len > strlen(key));
    strcpy(text, head);
    strcat(text, key);
    memset(text + strlen(text), 'x', len - strlen(key));
    strcpy(text + strlen(head) + len, eol);
    assert_int_equal(strlen(text) + 1, n);
    return text;
}

static void test_long_lines(void **state)
{
    struct pk_sidecar_config *cfg;
    struct pk_err err;
    char *text;

    (void)state;
    /* The longest line inih keeps whole, with LF, CRLF and at the end of the text. */
    static const char *const eols[] = {"\n", "\r\n", ""};
    for (size_t i = 0; i < 3; i++) {
        cfg = pk_sidecar_config_new();
        text = long_line_ini(PK_SIDECAR_CONFIG_MAX_LINE, eols[i]);
        assert_int_equal(pk_sidecar_config_parse_ini(text, strlen(text), "t.ini", cfg, &err), 0);
        assert_int_equal(strlen(cfg->agent.export_command), PK_SIDECAR_CONFIG_MAX_LINE - 17);
        free(text);
        pk_sidecar_config_free(cfg);

        cfg = pk_sidecar_config_new();
        text = long_line_ini(PK_SIDECAR_CONFIG_MAX_LINE + 1, eols[i]);
        assert_int_equal(pk_sidecar_config_parse_ini(text, strlen(text), "t.ini", cfg, &err),
                         PK_E_INVALID);
        assert_contains(err.msg, "t.ini:3: line is too long (198 bytes; at most 197)");
        assert_null(cfg->agent.export_command);
        free(text);
        pk_sidecar_config_free(cfg);
    }

    /* 250 bytes: inih would have cut the value at 198 and parsed the rest as line 4. */
    text = long_line_ini(250, "\n");
    cfg = pk_sidecar_config_new();
    assert_int_equal(pk_sidecar_config_parse_ini(text, strlen(text), "big.ini", cfg, &err),
                     PK_E_INVALID);
    assert_contains(err.msg, "big.ini:3: line is too long (250 bytes; at most 197)");
    pk_sidecar_config_free(cfg);

    /* Through load, the message names the file. */
    const char *flags[] = {"--app-id", "a", "--sentry-address", "h:1", NULL};
    assert_int_equal(load(text, base_env, flags, &cfg, &err), PK_E_INVALID);
    assert_contains(err.msg, ":3: line is too long");
    assert_contains(err.msg, "picket-config-");
    free(text);

    /* A long comment is still a long line. */
    char comment[300];
    memset(comment, ';', 250);
    strcpy(comment + 250, "\n[agent]\n");
    cfg = pk_sidecar_config_new();
    assert_int_equal(pk_sidecar_config_parse_ini(comment, strlen(comment), "t.ini", cfg, &err),
                     PK_E_INVALID);
    assert_contains(err.msg, "t.ini:1: line is too long");
    pk_sidecar_config_free(cfg);
}

static void test_ini_bytes(void **state)
{
    static const char nul[] = "[agent]\napp_id = a\0b\n";
    static const char crlf_bom[] = "\xEF\xBB\xBF[agent]\r\napp_id = crlf\r\n\r\n[log]\r\n"
                                   "json = On\r\n";
    struct pk_sidecar_config *cfg = pk_sidecar_config_new();
    struct pk_err err;

    (void)state;
    assert_int_equal(pk_sidecar_config_parse_ini(nul, sizeof(nul) - 1, "t.ini", cfg, &err),
                     PK_E_INVALID);
    assert_contains(err.msg, "t.ini:2: NUL byte");
    assert_null(cfg->agent.app_id);

    assert_int_equal(pk_sidecar_config_parse_ini(crlf_bom, strlen(crlf_bom), "t.ini", cfg, &err),
                     0);
    assert_string_equal(cfg->agent.app_id, "crlf");
    assert_true(cfg->log_json);

    /* Not NUL-terminated: only len bytes are read. */
    static const char cut[] = "[agent]\nnamespace = abcdef";
    assert_int_equal(pk_sidecar_config_parse_ini(cut, sizeof(cut) - 4, "t.ini", cfg, &err), 0);
    assert_string_equal(cfg->agent.namespace_, "abc");

    /* Nothing at all. */
    assert_int_equal(pk_sidecar_config_parse_ini(NULL, 0, "t.ini", cfg, &err), 0);
    pk_sidecar_config_free(cfg);
}

static void test_ini_values(void **state)
{
    static const struct {
        const char *text;
        bool value;
    } bools[] = {
            {"true", true}, {"TRUE", true}, {"yes", true},    {"Yes", true},
            {"on", true},   {"1", true},    {"false", false}, {"False", false},
            {"no", false},  {"NO", false},  {"off", false},   {"0", false},
    };
    static const struct {
        const char *text;
        int number;
    } sigs[] = {{"HUP", SIGHUP},      {"SIGHUP", SIGHUP},   {"usr1", SIGUSR1},
                {"SIGUSR2", SIGUSR2}, {"sigterm", SIGTERM}, {"WINCH", SIGWINCH}};
    static const char *const listens[] = {"off", "unix:/run/picket/admin.sock", "[::1]:9901",
                                          "localhost:0", "0.0.0.0:9901"};
    char text[200];
    struct pk_err err;

    (void)state;
    for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
        struct pk_sidecar_config *cfg = pk_sidecar_config_new();
        cfg->agent.allow_tls12 = !bools[i].value;
        snprintf(text, sizeof(text), "[agent]\nallow_tls12 = %s\n", bools[i].text);
        assert_int_equal(pk_sidecar_config_parse_ini(text, strlen(text), "t.ini", cfg, &err), 0);
        assert_true(cfg->agent.allow_tls12 == bools[i].value);
        pk_sidecar_config_free(cfg);
    }
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        struct pk_sidecar_config *cfg = pk_sidecar_config_new();
        snprintf(text, sizeof(text),
                 "[agent]\nexport_dir = /d\nexport_pid_file = /p\nexport_signal = %s\n",
                 sigs[i].text);
        assert_int_equal(pk_sidecar_config_parse_ini(text, strlen(text), "t.ini", cfg, &err), 0);
        assert_int_equal(cfg->agent.export_signal, sigs[i].number);
        pk_sidecar_config_free(cfg);
    }
    for (size_t i = 0; i < sizeof(listens) / sizeof(listens[0]); i++) {
        struct pk_sidecar_config *cfg = pk_sidecar_config_new();
        snprintf(text, sizeof(text), "[admin]\nlisten = %s\n", listens[i]);
        assert_int_equal(pk_sidecar_config_parse_ini(text, strlen(text), "t.ini", cfg, &err), 0);
        assert_string_equal(cfg->admin_listen, listens[i]);
        pk_sidecar_config_free(cfg);
    }

    /* An empty listen value turns the endpoint off. */
    struct pk_sidecar_config *cfg = pk_sidecar_config_new();
    assert_int_equal(pk_sidecar_config_parse_ini("[admin]\nlisten =\n", 17, "t.ini", cfg, &err), 0);
    assert_string_equal(cfg->admin_listen, "");

    /* Edges of the ranges, and a file that only narrows the jitter so renew_at may move. */
    static const char edges[] = "[agent]\nrenew_jitter = 0\nrenew_at = 0.95\nretry_initial = "
                                "2m\nretry_max = 2m\ninitial_attempts = 1000000\n";
    assert_int_equal(pk_sidecar_config_parse_ini(edges, strlen(edges), "t.ini", cfg, &err), 0);
    assert_true(cfg->agent.renew_jitter == 0);
    assert_true(cfg->agent.renew_fraction == 0.95);
    assert_true(cfg->agent.retry_initial == 120 && cfg->agent.retry_max == 120);
    assert_int_equal(cfg->agent.initial_attempts, 1000000);

    /* Rules between keys also see the values already in `into`: jitter 0 from above. */
    static const char narrow[] = "[agent]\nrenew_at = 0.05\n";
    assert_int_equal(pk_sidecar_config_parse_ini(narrow, strlen(narrow), "t.ini", cfg, &err), 0);
    assert_true(cfg->agent.renew_fraction == 0.05);

    /* Comments and blank lines anywhere; inline ` ;' comments; `key: value'. */
    static const char comments[] = "# top\n; also\n\n[agent] ; the agent\n  ; indented comment\n"
                                   "namespace: other ; inline\nexport_dir = /a;b\n";
    assert_int_equal(pk_sidecar_config_parse_ini(comments, strlen(comments), "t.ini", cfg, &err),
                     0);
    assert_string_equal(cfg->agent.namespace_, "other");
    assert_string_equal(cfg->agent.export_dir, "/a;b");
    pk_sidecar_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_load_errors),
            cmocka_unit_test(test_missing_config_file),
            cmocka_unit_test(test_ini_errors),
            cmocka_unit_test(test_load_time_errors),
            cmocka_unit_test(test_listen_addresses_apart),
            cmocka_unit_test(test_long_lines),
            cmocka_unit_test(test_ini_bytes),
            cmocka_unit_test(test_ini_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
