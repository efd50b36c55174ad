/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for sidecar/iptables: the exact rules a picket.ini asks for, per family;
 * the state read from `iptables -S'; and the iptables-restore plans for a fresh install, a
 * repeated one, stray and duplicate jumps, a chain no longer wanted, and removal. */
/* cmocka.h needs the standard headers before it. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
/* clang-format on */

#include "common/buf.h"
#include "common/err.h"
#include "sidecar/config.h"
#include "sidecar/iptables.h"

static const char full_ini[] = "[proxy]\n"
                               "mark = 0x539\n"
                               "[iptables]\n"
                               "exclude_uid = 1337\n"
                               "exclude_gid = 1338\n"
                               "[transparent out]\n"
                               "listen = 127.0.0.1:15001\n"
                               "map = 10.0.0.0/8 app=web\n"
                               "map = 10.1.0.0/16 8080 spiffe://example.test/ns/a/b\n"
                               "map = fd00::/8 443 any\n"
                               "exclude = 10.9.0.0/16 53\n"
                               "exclude = fd00:9::/32\n"
                               "[transparent out6]\n"
                               "listen = [::1]:15002\n"
                               "map = fd00::/8 any\n"
                               "intercept = ::/0 443\n"
                               "intercept = 2001:db8::/32 8000-8099\n"
                               "[inbound in]\n"
                               "listen = 0.0.0.0:15006\n"
                               "target = 127.0.0.1:8080\n"
                               "intercept_port = 8080\n"
                               "intercept_port = 9000-9010\n"
                               "[inbound local]\n"
                               "listen = 127.0.0.1:15007\n"
                               "target = 127.0.0.1:8081\n";

static struct pk_sidecar_config *load(const char *ini)
{
    struct pk_sidecar_config *cfg = pk_sidecar_config_new();
    struct pk_err err;

    pk_err_clear(&err);
    if (pk_sidecar_config_parse_ini(ini, strlen(ini), "t.ini", cfg, &err) != 0) {
        fail_msg("config: %s", err.msg);
    }
    return cfg;
}

static char *rules_of(const struct pk_sidecar_config *cfg, int family, bool *out_w, bool *pre_w)
{
    struct pk_buf b;
    struct pk_err err;

    pk_err_clear(&err);
    pk_buf_init(&b, 1 << 20);
    if (pk_iptables_rules(cfg, family, &b, out_w, pre_w, &err) != 0) {
        fail_msg("rules: %s", err.msg);
    }
    assert_int_equal(pk_buf_append(&b, "", 1), 0);
    char *s = strdup((const char *)b.data);
    pk_buf_free(&b);
    return s;
}

/* Replace a configuration string with text no parser takes. */
static void scribble(char **text)
{
    free(*text);
    *text = strdup("not a destination");
}

/* The rules come from the lines as the configuration parsed them when it was loaded: the
 * builder reads no text, so changing the strings afterwards changes nothing. */
static void test_rules_from_typed_lines(void **state)
{
    (void)state;
    struct pk_sidecar_config *cfg = load(full_ini);
    bool out_w, pre_w;
    char *v4 = rules_of(cfg, 4, &out_w, &pre_w);
    char *v6 = rules_of(cfg, 6, &out_w, &pre_w);

    for (size_t i = 0; i < cfg->n_listeners; i++) {
        struct pk_listener_config *lc = &cfg->listeners[i];
        for (size_t k = 0; k < lc->n_exclude; k++) {
            scribble(&lc->exclude[k]);
        }
        for (size_t k = 0; k < lc->n_intercept; k++) {
            scribble(&lc->intercept[k]);
        }
        for (size_t k = 0; k < lc->n_intercept_port; k++) {
            scribble(&lc->intercept_port[k]);
        }
    }
    char *again4 = rules_of(cfg, 4, &out_w, &pre_w);
    char *again6 = rules_of(cfg, 6, &out_w, &pre_w);
    assert_string_equal(again4, v4);
    assert_string_equal(again6, v6);
    free(v4);
    free(v6);
    free(again4);
    free(again6);
    pk_sidecar_config_free(cfg);
}

static void test_rules_exact(void **state)
{
    (void)state;
    struct pk_sidecar_config *cfg = load(full_ini);
    bool ow, pw;
    char *v4 = rules_of(cfg, 4, &ow, &pw);

    assert_true(ow);
    assert_true(pw);
    assert_string_equal(
            v4, "-A PICKET_OUTPUT -o lo -j RETURN\n"
                "-A PICKET_OUTPUT -m mark --mark 0x539 -j RETURN\n"
                "-A PICKET_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"
                "-A PICKET_OUTPUT -m owner --gid-owner 1338 -j RETURN\n"
                "-A PICKET_OUTPUT -d 10.9.0.0/16 -p tcp -m tcp --dport 53 -j RETURN\n"
                "-A PICKET_OUTPUT -d 10.0.0.0/8 -p tcp -j REDIRECT --to-ports 15001\n"
                "-A PICKET_OUTPUT -d 10.1.0.0/16 -p tcp -m tcp --dport 8080 -j REDIRECT "
                "--to-ports 15001\n"
                "-A PICKET_PREROUTING -p tcp -m tcp --dport 8080 -j REDIRECT --to-ports 15006\n"
                "-A PICKET_PREROUTING -p tcp -m tcp --dport 9000:9010 -j REDIRECT --to-ports "
                "15006\n");
    free(v4);
    /* IPv6: only out6 listens on IPv6; out's IPv6 map line is not redirected to an IPv4
     * listener, and intercept replaces the map lines' destinations. */
    char *v6 = rules_of(cfg, 6, &ow, &pw);
    assert_true(ow);
    assert_false(pw);
    assert_string_equal(
            v6, "-A PICKET_OUTPUT -o lo -j RETURN\n"
                "-A PICKET_OUTPUT -m mark --mark 0x539 -j RETURN\n"
                "-A PICKET_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"
                "-A PICKET_OUTPUT -m owner --gid-owner 1338 -j RETURN\n"
                "-A PICKET_OUTPUT -d fd00:9::/32 -p tcp -j RETURN\n"
                "-A PICKET_OUTPUT -p tcp -m tcp --dport 443 -j REDIRECT --to-ports 15002\n"
                "-A PICKET_OUTPUT -d 2001:db8::/32 -p tcp -m tcp --dport 8000:8099 -j REDIRECT "
                "--to-ports 15002\n");
    free(v6);
    pk_sidecar_config_free(cfg);
}

static void test_rules_none(void **state)
{
    (void)state;
    struct pk_sidecar_config *cfg = load("[inbound a]\nlisten = 127.0.0.1:1\ntarget = "
                                         "127.0.0.1:2\n");
    bool ow = true, pw = true;
    char *v4 = rules_of(cfg, 4, &ow, &pw);

    assert_string_equal(v4, "");
    assert_false(ow);
    assert_false(pw);
    free(v4);
    pk_sidecar_config_free(cfg);
}

static char *plan_of(const char *state_text, const char *rules, bool ow, bool pw)
{
    struct pk_iptables_state st;
    struct pk_buf r, out;
    struct pk_err err;

    pk_err_clear(&err);
    if (pk_iptables_state_parse(state_text, strlen(state_text), &st, &err) != 0) {
        fail_msg("state: %s", err.msg);
    }
    pk_buf_init(&r, 1 << 20);
    pk_buf_init(&out, 1 << 20);
    assert_int_equal(pk_buf_append(&r, rules, strlen(rules)), 0);
    assert_int_equal(pk_iptables_plan(&st, rules[0] != '\0' ? &r : NULL, ow, pw, &out), 0);
    assert_int_equal(pk_buf_append(&out, "", 1), 0);
    char *s = strdup((const char *)out.data);
    pk_buf_free(&r);
    pk_buf_free(&out);
    pk_iptables_state_clear(&st);
    return s;
}

#define EMPTY_NAT "-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n"
#define RULE      "-A PICKET_OUTPUT -o lo -j RETURN\n"

static void test_plan_fresh_install(void **state)
{
    (void)state;
    char *p = plan_of(EMPTY_NAT "-A OUTPUT -d 192.0.2.1/32 -j ACCEPT\n", RULE, true, false);
    assert_string_equal(p, "*nat\n"
                           ":PICKET_OUTPUT - [0:0]\n" RULE "-I OUTPUT 1 -p tcp -j PICKET_OUTPUT\n"
                           "COMMIT\n");
    free(p);
}

static void test_plan_reinstall_keeps_one_jump(void **state)
{
    (void)state;
    char *p = plan_of(EMPTY_NAT "-N PICKET_OUTPUT\n"
                                "-A OUTPUT -p tcp -j PICKET_OUTPUT\n"
                                "-A OUTPUT -d 192.0.2.1/32 -j ACCEPT\n" RULE,
                      RULE, true, false);
    /* The chain is declared (flushed) and refilled; the jump stays; nothing is inserted. */
    assert_string_equal(p, "*nat\n:PICKET_OUTPUT - [0:0]\n" RULE "COMMIT\n");
    free(p);
}

static void test_plan_stray_and_duplicate_jumps(void **state)
{
    (void)state;
    char *p = plan_of(EMPTY_NAT "-N PICKET_OUTPUT\n"
                                "-N PICKET_PREROUTING\n"
                                "-A PREROUTING -p tcp -j PICKET_PREROUTING\n"
                                "-A OUTPUT -p tcp -j PICKET_OUTPUT\n"
                                "-A OUTPUT -p tcp -j PICKET_OUTPUT\n"
                                "-A OUTPUT -d 10.0.0.0/8 -j PICKET_OUTPUT\n"
                                "-A PICKET_OUTPUT -j PICKET_PREROUTING\n",
                      RULE, true, false);
    assert_string_equal(p, "*nat\n"
                           ":PICKET_OUTPUT - [0:0]\n"
                           ":PICKET_PREROUTING - [0:0]\n" RULE
                           "-D PREROUTING -p tcp -j PICKET_PREROUTING\n"
                           "-D OUTPUT -p tcp -j PICKET_OUTPUT\n"
                           "-D OUTPUT -d 10.0.0.0/8 -j PICKET_OUTPUT\n"
                           "-X PICKET_PREROUTING\n"
                           "COMMIT\n");
    free(p);
}

static void test_plan_remove(void **state)
{
    (void)state;
    char *p = plan_of(EMPTY_NAT "-N PICKET_OUTPUT\n-N PICKET_PREROUTING\n"
                                "-A PREROUTING -p tcp -j PICKET_PREROUTING\n"
                                "-A OUTPUT -p tcp -j PICKET_OUTPUT\n" RULE,
                      "", false, false);
    assert_string_equal(p, "*nat\n"
                           ":PICKET_OUTPUT - [0:0]\n"
                           ":PICKET_PREROUTING - [0:0]\n"
                           "-D PREROUTING -p tcp -j PICKET_PREROUTING\n"
                           "-D OUTPUT -p tcp -j PICKET_OUTPUT\n"
                           "-X PICKET_OUTPUT\n"
                           "-X PICKET_PREROUTING\n"
                           "COMMIT\n");
    free(p);
    /* Nothing of ours: nothing to run at all. */
    p = plan_of(EMPTY_NAT "-N PICKET_OTHER\n-A OUTPUT -j PICKET_OTHER\n", "", false, false);
    assert_string_equal(p, "");
    free(p);
}

static void test_state_parse(void **state)
{
    (void)state;
    struct pk_iptables_state st;
    struct pk_err err;
    static const char nul[] = "-N PICKET_OUTPUT\n\0";
    char *big;

    /* CRLF, no final newline, look-alike names. */
    const char *t = "-N PICKET_OUTPUTX\r\n-N PICKET_OUTPUT\r\n-A OUTPUT -j PICKET_OUTPUTX\n"
                    "-A OUTPUT -p tcp -j PICKET_OUTPUT";
    assert_int_equal(pk_iptables_state_parse(t, strlen(t), &st, &err), 0);
    assert_true(st.has_output);
    assert_false(st.has_prerouting);
    assert_int_equal(st.n_jumps, 1);
    assert_string_equal(st.jumps[0], "OUTPUT -p tcp -j PICKET_OUTPUT");
    pk_iptables_state_clear(&st);

    assert_int_equal(pk_iptables_state_parse(nul, sizeof(nul) - 1, &st, &err), PK_E_INVALID);
    pk_iptables_state_clear(&st);

    /* More jumps than kept. */
    size_t n = (PK_IPTABLES_MAX_JUMPS + 1) * 40;
    big = calloc(1, n + 1);
    for (int i = 0; i <= PK_IPTABLES_MAX_JUMPS; i++) {
        strcat(big, "-A OUTPUT -p tcp -j PICKET_OUTPUT\n");
    }
    assert_int_equal(pk_iptables_state_parse(big, strlen(big), &st, &err), PK_E_TOOBIG);
    assert_non_null(strstr(err.msg, "jump to picket's chains"));
    pk_iptables_state_clear(&st);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_rules_exact),
            cmocka_unit_test(test_rules_from_typed_lines),
            cmocka_unit_test(test_rules_none),
            cmocka_unit_test(test_plan_fresh_install),
            cmocka_unit_test(test_plan_reinstall_keeps_one_jump),
            cmocka_unit_test(test_plan_stray_and_duplicate_jumps),
            cmocka_unit_test(test_plan_remove),
            cmocka_unit_test(test_state_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
