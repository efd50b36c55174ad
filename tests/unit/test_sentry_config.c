/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for sentry/config (Dapr Configuration YAML). */
/* cmocka.h must come after the system headers it relies on. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
/* clang-format on */

#include "common/duration.h"
#include "common/err.h"
#include "common/log.h"
#include "sentry/config.h"

/* The two Sentry configurations of the seed guide ("Setup & configure mutual TLS"), verbatim:
 * the documented defaults, and the self-hosted example that sets a 25 s workload TTL. */
static const char seed_default[] = "apiVersion: dapr.io/v1alpha1\n"
                                   "kind: Configuration\n"
                                   "metadata:\n"
                                   "  name: daprsystem\n"
                                   "  namespace: default\n"
                                   "spec:\n"
                                   "  mtls:\n"
                                   "    enabled: true\n"
                                   "    workloadCertTTL: \"24h\"\n"
                                   "    allowedClockSkew: \"15m\"\n";

static const char seed_25s[] = "apiVersion: dapr.io/v1alpha1\n"
                               "kind: Configuration\n"
                               "metadata:\n"
                               "  name: daprsystem\n"
                               "  namespace: default\n"
                               "spec:\n"
                               "  mtls:\n"
                               "    enabled: true\n"
                               "    workloadCertTTL: \"25s\"\n";

/* The guide's daprd (not Sentry) configuration: Sentry must accept it and keep its defaults. */
static const char seed_enable_only[] = "apiVersion: dapr.io/v1alpha1\n"
                                       "kind: Configuration\n"
                                       "metadata:\n"
                                       "  name: daprsystem\n"
                                       "  namespace: default\n"
                                       "spec:\n"
                                       "  mtls:\n"
                                       "    enabled: true\n";

static const char full[] = "# everything picket sentry reads, plus sections it must ignore\n"
                           "apiVersion: dapr.io/v1alpha1\n"
                           "kind: Configuration\n"
                           "metadata:\n"
                           "  name: daprsystem\n"
                           "  labels: {app: dapr}\n"
                           "spec:\n"
                           "  tracing:\n"
                           "    samplingRate: \"1\"\n"
                           "    zipkin: {endpointAddress: \"http://localhost:9411/api/v2/spans\"}\n"
                           "  metric:\n"
                           "    enabled: true\n"
                           "  mtls:\n"
                           "    enabled: false\n"
                           "    workloadCertTTL: 1h30m\n"
                           "    allowedClockSkew: '2m30s'\n"
                           "    controlPlaneTrustDomain: \"example.org\"\n"
                           "    sentryAddress: dapr-sentry.dapr-system.svc.cluster.local:443\n"
                           "    tokenValidators:\n"
                           "      - name: jwks\n"
                           "        options:\n"
                           "          source: /etc/picket/jwks.json\n"
                           "          caCertificate: /etc/picket/ca.pem\n"
                           "          minRefreshInterval: 2m\n"
                           "          requestTimeout: 1m\n"
                           "  features:\n"
                           "    - name: SomeFeature\n"
                           "      enabled: true\n";

static struct pk_sentry_config *parse_ok(const char *yaml)
{
    struct pk_sentry_config *cfg = NULL;
    struct pk_err err = {{0}};
    int rc = pk_sentry_config_parse((const uint8_t *)yaml, strlen(yaml), "test.yaml", &cfg, &err);
    if (rc != 0) {
        print_error("unexpected failure: %s\n", err.msg);
    }
    assert_int_equal(rc, 0);
    assert_non_null(cfg);
    return cfg;
}

/* Parsing must fail with PK_E_INVALID and a message containing want. */
static void parse_fails(const char *yaml, const char *want)
{
    struct pk_sentry_config *cfg = NULL;
    struct pk_err err = {{0}};
    int rc = pk_sentry_config_parse((const uint8_t *)yaml, strlen(yaml), "test.yaml", &cfg, &err);
    if (rc != PK_E_INVALID || strstr(err.msg, want) == NULL) {
        print_error("yaml:\n%s\nrc=%d msg=%s\nwanted: %s\n", yaml, rc, err.msg, want);
    }
    assert_int_equal(rc, PK_E_INVALID);
    assert_null(cfg);
    assert_non_null(strstr(err.msg, want));
}

static void assert_defaults(const struct pk_sentry_config *cfg)
{
    assert_true(cfg->ttl_ns == 24 * PK_DURATION_HOUR);
    assert_true(cfg->skew_ns == 15 * PK_DURATION_MINUTE);
    assert_string_equal(cfg->control_plane_trust_domain, "cluster.local");
    assert_false(cfg->control_plane_trust_domain_set);
    assert_true(cfg->mtls_enabled);
    assert_null(cfg->sentry_address);
    assert_false(cfg->jwks_enabled);
    assert_null(cfg->jwks.source);
}

static void defaults_constructor(void **state)
{
    struct pk_sentry_config *cfg = pk_sentry_config_new();
    assert_defaults(cfg);
    pk_sentry_config_log(cfg);
    assert_null(pk_sentry_config_free(cfg));
    assert_null(pk_sentry_config_free(NULL));
}

static void full_file(void **state)
{
    struct pk_sentry_config *cfg = parse_ok(full);

    assert_true(cfg->ttl_ns == 90 * PK_DURATION_MINUTE);
    assert_true(cfg->skew_ns == 150 * PK_DURATION_SECOND);
    assert_string_equal(cfg->control_plane_trust_domain, "example.org");
    assert_true(cfg->control_plane_trust_domain_set);
    assert_false(cfg->mtls_enabled);
    assert_string_equal(cfg->sentry_address, "dapr-sentry.dapr-system.svc.cluster.local:443");
    assert_true(cfg->jwks_enabled);
    assert_string_equal(cfg->jwks.source, "/etc/picket/jwks.json");
    assert_string_equal(cfg->jwks.ca_certificate, "/etc/picket/ca.pem");
    assert_true(cfg->jwks.min_refresh_interval_ns == 2 * PK_DURATION_MINUTE);
    assert_true(cfg->jwks.request_timeout_ns == PK_DURATION_MINUTE);
    pk_sentry_config_free(cfg);
}

static void seed_examples(void **state)
{
    struct pk_sentry_config *cfg = parse_ok(seed_default);
    assert_defaults(cfg);
    pk_sentry_config_free(cfg);

    cfg = parse_ok(seed_25s);
    assert_true(cfg->ttl_ns == 25 * PK_DURATION_SECOND);
    assert_true(cfg->skew_ns == 15 * PK_DURATION_MINUTE);
    assert_true(cfg->mtls_enabled);
    pk_sentry_config_free(cfg);

    cfg = parse_ok(seed_enable_only);
    assert_defaults(cfg);
    pk_sentry_config_free(cfg);
}

static void empty_inputs_give_defaults(void **state)
{
    static const char *const inputs[] = {
            "",
            "\n\n",
            "# only a comment\n",
            "~\n",
            "---\n",
            "kind: Configuration\n",
            "spec:\n",
            "spec: {}\n",
            "spec:\n  mtls:\n",
            "spec:\n  mtls: {}\n",
            ("spec:\n  mtls:\n    workloadCertTTL: \"\"\n    allowedClockSkew: ~\n"
             "    tokenValidators: []\n    controlPlaneTrustDomain: \"\"\n"),
            "spec:\n  mtls:\n    tokenValidators:\n",
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        struct pk_sentry_config *cfg = parse_ok(inputs[i]);
        assert_defaults(cfg);
        pk_sentry_config_free(cfg);
    }
    /* NULL data with length 0 is fine too. */
    struct pk_sentry_config *cfg = NULL;
    assert_int_equal(pk_sentry_config_parse(NULL, 0, "empty", &cfg, NULL), 0);
    assert_defaults(cfg);
    pk_sentry_config_free(cfg);
}

static void keys_match_case_insensitively_and_aliases_resolve(void **state)
{
    struct pk_sentry_config *cfg =
            parse_ok("defaults: &ttl 2h\n"
                     "Spec:\n  MTLS:\n    WorkloadCertTTL: *ttl\n    ALLOWEDCLOCKSKEW: 0s\n"
                     "    tokenValidators:\n      - name: JWKS\n        options: {Source: x}\n");
    assert_true(cfg->ttl_ns == 2 * PK_DURATION_HOUR);
    assert_true(cfg->skew_ns == 0);
    assert_true(cfg->jwks_enabled);
    assert_string_equal(cfg->jwks.source, "x");
    pk_sentry_config_free(cfg);

    /* A self-referencing alias in a section picket ignores does not make it loop. */
    cfg = parse_ok("metadata: &a [*a]\nspec:\n  tracing: &b {x: *b}\n  mtls:\n"
                   "    workloadCertTTL: 1m\n");
    assert_true(cfg->ttl_ns == PK_DURATION_MINUTE);
    pk_sentry_config_free(cfg);
}

static void bad_durations(void **state)
{
    parse_fails("apiVersion: dapr.io/v1alpha1\nspec:\n  mtls:\n    workloadCertTTL: 24x\n",
                "test.yaml:4:22: spec.mtls.workloadCertTTL: invalid duration \"24x\": unknown "
                "unit \"x\"");
    parse_fails("spec:\n  mtls:\n    workloadCertTTL: \"24\"\n", "missing unit");
    parse_fails("spec:\n  mtls:\n    workloadCertTTL: 0s\n",
                "test.yaml:3:22: spec.mtls.workloadCertTTL: must be positive, found 0s");
    parse_fails("spec:\n  mtls:\n    workloadCertTTL: 0\n", "must be positive");
    parse_fails("spec:\n  mtls:\n    workloadCertTTL: -1h\n", "must be positive, found -1h0m0s");
    parse_fails("spec:\n  mtls:\n    allowedClockSkew: -1m\n",
                "spec.mtls.allowedClockSkew: must not be negative, found -1m0s");
    parse_fails("spec:\n  mtls:\n    allowedClockSkew: 99999999999h\n", "out of range");
    parse_fails("spec:\n  mtls:\n    tokenValidators:\n    - name: jwks\n      options:\n"
                "        source: x\n        requestTimeout: 5\n",
                "spec.mtls.tokenValidators[0].options.requestTimeout: invalid duration");
    parse_fails("spec:\n  mtls:\n    tokenValidators:\n    - name: jwks\n      options:\n"
                "        source: x\n        minRefreshInterval: -2m\n",
                "minRefreshInterval: must not be negative");
}

static void malformed_yaml(void **state)
{
    parse_fails("spec:\n  mtls:\n    workloadCertTTL: \"24h\n", "test.yaml:4:1: malformed YAML");
    parse_fails("spec:\n  mtls: [\n", "malformed YAML");
    parse_fails("spec:\n\tmtls: {}\n", "test.yaml:2:1: malformed YAML");
    parse_fails("spec:\n  mtls:\n    enabled: true\n   bad: indent\n", "test.yaml:4:");
    parse_fails("a: b: c\n", "test.yaml:1:5: malformed YAML");
    parse_fails("spec: *missing\n", "malformed YAML");
    parse_fails("key: \"nul\x01\"\n", "malformed YAML");
    parse_fails("spec: {}\n---\nspec: {}\n", "test.yaml:2:1: more than one YAML document");
}

static void wrong_types(void **state)
{
    parse_fails("- a\n- b\n", "test.yaml:1:1: expected a mapping, found a list");
    parse_fails("just a string\n", "expected a mapping, found a scalar");
    parse_fails("spec: [1, 2]\n", "test.yaml:1:7: spec: expected a mapping, found a list");
    parse_fails("spec:\n  mtls: 5\n", "spec.mtls: expected a mapping, found a scalar");
    parse_fails("spec:\n  mtls:\n    workloadCertTTL: [24h]\n",
                "spec.mtls.workloadCertTTL: expected a duration such as \"24h\", found a list");
    parse_fails("spec:\n  mtls:\n    allowedClockSkew: {m: 15}\n", "found a mapping");
    parse_fails("spec:\n  mtls:\n    enabled: yes\n",
                "spec.mtls.enabled: expected true or false (unquoted), found \"yes\"");
    parse_fails("spec:\n  mtls:\n    enabled: \"true\"\n", "expected true or false");
    parse_fails("spec:\n  mtls:\n    enabled: [true]\n", "found a list");
    parse_fails("spec:\n  mtls:\n    controlPlaneTrustDomain: [a]\n",
                "spec.mtls.controlPlaneTrustDomain: expected a string, found a list");
    parse_fails("spec:\n  mtls:\n    sentryAddress: {a: b}\n", "expected a string");
    parse_fails("spec:\n  mtls:\n    sentryAddress: \"a\\0b\"\n", "NUL byte");
    parse_fails("spec:\n  mtls:\n    tokenValidators: {name: jwks}\n",
                "spec.mtls.tokenValidators: expected a list, found a mapping");
    parse_fails("spec:\n  mtls:\n    tokenValidators: [jwks]\n",
                "spec.mtls.tokenValidators[0]: expected a mapping, found a scalar");
    parse_fails("spec:\n  mtls:\n    [a]: b\n", "mapping key is not a string");
    parse_fails("? [x]\n: y\n", "mapping key is not a string");
}

static void validators(void **state)
{
    parse_fails("spec:\n  mtls:\n    tokenValidators:\n    - name: kubernetes\n",
                "test.yaml:4:13: spec.mtls.tokenValidators[0].name: validator \"kubernetes\" "
                "cannot be set in the configuration");
    parse_fails("spec:\n  mtls:\n    tokenValidators:\n    - name: insecure\n",
                "validator \"insecure\" cannot be set");
    parse_fails("spec:\n  mtls:\n    tokenValidators:\n    - name: oidc\n",
                "unknown validator \"oidc\"");
    parse_fails("spec:\n  mtls:\n    tokenValidators:\n    - options: {source: x}\n",
                "tokenValidators[0].name: a token validator needs a name");
    parse_fails("spec:\n  mtls:\n    tokenValidators:\n    - name: [jwks]\n", "found a list");
    parse_fails("spec:\n  mtls:\n    tokenValidators:\n    - name: jwks\n",
                "tokenValidators[0].options: the jwks validator needs options with a source");
    parse_fails("spec:\n  mtls:\n    tokenValidators:\n    - name: jwks\n      options:\n",
                "needs options with a source");
    parse_fails("spec:\n  mtls:\n    tokenValidators:\n    - name: jwks\n"
                "      options: {caCertificate: x}\n",
                "needs a non-empty source");
    parse_fails("spec:\n  mtls:\n    tokenValidators:\n    - name: jwks\n"
                "      options: {source: \"\"}\n",
                "needs a non-empty source");
    parse_fails("spec:\n  mtls:\n    tokenValidators:\n    - name: jwks\n"
                "      options: {source: x, sources: y}\n",
                "unknown option \"sources\"");
    parse_fails("spec:\n  mtls:\n    tokenValidators:\n    - name: jwks\n      options: [x]\n",
                "options: expected a mapping, found a list");
    parse_fails("spec:\n  mtls:\n    tokenValidators:\n    - name: jwks\n"
                "      options: {source: x}\n      extra: 1\n",
                "unknown key \"extra\"");
    parse_fails("spec:\n  mtls:\n    tokenValidators:\n"
                "    - {name: jwks, options: {source: a}}\n"
                "    - {name: jwks, options: {source: b}}\n",
                "tokenValidators[1].name: the jwks validator is listed twice");
}

static void duplicate_keys(void **state)
{
    parse_fails("spec:\n  mtls:\n    workloadCertTTL: 1h\n    workloadCertTTL: 2h\n",
                "test.yaml:4:5: spec.mtls: duplicate key \"workloadCertTTL\" (first given on "
                "line 3)");
    parse_fails("spec:\n  mtls:\n    workloadCertTTL: 1h\n    WorkloadCertTTL: 2h\n",
                "duplicate key \"WorkloadCertTTL\"");
    parse_fails("spec: {}\nkind: x\nspec: {}\n", "test.yaml:3:1: duplicate key \"spec\"");
    parse_fails("spec:\n  mtls: {}\n  mtls: {}\n", "spec: duplicate key \"mtls\"");
    parse_fails("spec:\n  mtls:\n    tokenValidators:\n    - name: jwks\n      name: jwks\n"
                "      options: {source: a}\n",
                "duplicate key \"name\"");
    parse_fails("spec:\n  mtls:\n    tokenValidators:\n    - name: jwks\n"
                "      options: {source: a, source: b}\n",
                "options: duplicate key \"source\"");
}

static void nesting_is_bounded(void **state)
{
    char buf[512];
    size_t n;
    char *deep;
    struct pk_sentry_config *cfg;

    /* The root mapping plus 63 lists is 64 levels: fine. One more is refused. */
    n = (size_t)snprintf(buf, sizeof(buf), "metadata: ");
    memset(buf + n, '[', 63);
    memset(buf + n + 63, ']', 63);
    buf[n + 126] = '\0';
    cfg = parse_ok(buf);
    assert_defaults(cfg);
    pk_sentry_config_free(cfg);
    memset(buf + n, '[', 64);
    memset(buf + n + 64, ']', 64);
    buf[n + 128] = '\0';
    parse_fails(buf, "test.yaml:1:74: nested deeper than 64 levels");
    /* Half a megabyte of "[" took libyaml minutes to reject on its own; now it is immediate
     * (a regression would run into the test timeout). */
    deep = malloc(500001);
    memset(deep, '[', 500000);
    deep[500000] = '\0';
    parse_fails(deep, "nested deeper than 64 levels");
    memset(deep, ' ', 500000);
    for (size_t i = 0; i + 4 <= 500000; i += 4) {
        memcpy(deep + i, "{a: ", 4);
    }
    parse_fails(deep, "nested deeper than 64 levels");
    free(deep);
}

static void truncated_inputs_never_crash(void **state)
{
    size_t n = strlen(full);
    size_t ok = 0;

    /* Every prefix either parses or fails cleanly; each prefix is its own exact-size heap
     * block so ASan sees any over-read. */
    for (size_t i = 0; i <= n; i++) {
        uint8_t *copy = malloc(i ? i : 1);
        struct pk_sentry_config *cfg = NULL;
        struct pk_err err = {{0}};
        memcpy(copy, full, i);
        int rc = pk_sentry_config_parse(copy, i, "prefix", &cfg, &err);
        assert_true(rc == 0 || rc == PK_E_INVALID);
        if (rc == 0) {
            ok++;
            assert_non_null(cfg);
            pk_sentry_config_free(cfg);
        } else {
            assert_null(cfg);
            assert_non_null(strstr(err.msg, "prefix"));
        }
        free(copy);
    }
    assert_true(ok > 0 && ok < n);
}

static void too_big(void **state)
{
    size_t n = PK_SENTRY_CONFIG_MAX_BYTES + 1;
    uint8_t *big = malloc(n);
    struct pk_sentry_config *cfg = NULL;
    struct pk_err err = {{0}};

    memset(big, '#', n);
    assert_int_equal(pk_sentry_config_parse(big, n, "big.yaml", &cfg, &err), PK_E_TOOBIG);
    assert_null(cfg);
    assert_non_null(strstr(err.msg, "big.yaml"));
    free(big);
}

static char tmpdir[512];

static int make_tmpdir(void **state)
{
    const char *base = getenv("PICKET_TEST_TMP");
    snprintf(tmpdir, sizeof(tmpdir), "%s/sentry-config-XXXXXX", base ? base : "/tmp");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void load_from_files(void **state)
{
    char path[600];
    struct pk_sentry_config *cfg = NULL;
    struct pk_err err = {{0}};

    snprintf(path, sizeof(path), "%s/config.yaml", tmpdir);
    write_file(path, seed_25s, strlen(seed_25s));
    assert_int_equal(pk_sentry_config_load(path, &cfg, &err), 0);
    assert_true(cfg->ttl_ns == 25 * PK_DURATION_SECOND);
    cfg = pk_sentry_config_free(cfg);

    /* Errors name the file path. */
    write_file(path, "spec:\n  mtls:\n    workloadCertTTL: 24x\n", 38);
    assert_int_equal(pk_sentry_config_load(path, &cfg, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, ":3:22: spec.mtls.workloadCertTTL"));
    assert_null(cfg);

    /* A missing file is an error that says so (Dapr's Sentry exits in this case). */
    snprintf(path, sizeof(path), "%s/nope.yaml", tmpdir);
    assert_int_equal(pk_sentry_config_load(path, &cfg, &err), PK_E_NOTFOUND);
    assert_non_null(strstr(err.msg, "does not exist"));
    assert_non_null(strstr(err.msg, "nope.yaml"));
    assert_null(cfg);

    /* A directory is not a config file. */
    assert_int_not_equal(pk_sentry_config_load(tmpdir, &cfg, &err), 0);
    assert_null(cfg);

    /* Exactly at the cap still loads; one byte more does not. */
    snprintf(path, sizeof(path), "%s/big.yaml", tmpdir);
    char *big = malloc(PK_SENTRY_CONFIG_MAX_BYTES + 1);
    memset(big, '#', PK_SENTRY_CONFIG_MAX_BYTES + 1);
    write_file(path, big, PK_SENTRY_CONFIG_MAX_BYTES);
    assert_int_equal(pk_sentry_config_load(path, &cfg, &err), 0);
    cfg = pk_sentry_config_free(cfg);
    write_file(path, big, PK_SENTRY_CONFIG_MAX_BYTES + 1);
    assert_int_equal(pk_sentry_config_load(path, &cfg, &err), PK_E_TOOBIG);
    assert_null(cfg);
    free(big);
    unlink(path);
    snprintf(path, sizeof(path), "%s/config.yaml", tmpdir);
    unlink(path);
    rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(defaults_constructor),
            cmocka_unit_test(full_file),
            cmocka_unit_test(seed_examples),
            cmocka_unit_test(empty_inputs_give_defaults),
            cmocka_unit_test(keys_match_case_insensitively_and_aliases_resolve),
            cmocka_unit_test(bad_durations),
            cmocka_unit_test(malformed_yaml),
            cmocka_unit_test(wrong_types),
            cmocka_unit_test(validators),
            cmocka_unit_test(duplicate_keys),
            cmocka_unit_test(nesting_is_bounded),
            cmocka_unit_test(truncated_inputs_never_crash),
            cmocka_unit_test(too_big),
            cmocka_unit_test_setup(load_from_files, make_tmpdir),
    };
    pk_log_setup(PK_LOG_LEVEL_ERROR, false);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
