/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for the log line formats: every field its own JSON key (checked by parsing
 * with jansson, duplicates refused), logfmt text, untrusted values escaped in both, printf-style
 * messages split into msg and fields. stderr is captured through a temporary file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* cmocka.h needs setjmp.h, stdarg.h and stddef.h first. */
/* clang-format off */
#include <cmocka.h>
/* clang-format on */
#include <jansson.h>

#include "common/log.h"

/* Start capturing stderr; returns the saved descriptor. */
static int capture_begin(FILE **tmp)
{
    int saved = dup(STDERR_FILENO);

    *tmp = tmpfile();
    assert_non_null(*tmp);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(*tmp), STDERR_FILENO) >= 0);
    return saved;
}

/* Stop capturing; returns what was written (one line expected), freed by the caller. */
static char *capture_end(FILE *tmp, int saved)
{
    char *text = calloc(1, 8192);
    size_t n;

    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    rewind(tmp);
    n = fread(text, 1, 8191, tmp);
    fclose(tmp);
    assert_true(n > 0 && text[n - 1] == '\n');
    assert_null(memchr(text, '\n', n - 1)); /* one line, whatever the values held */
    return text;
}

static json_t *parse_line(const char *line)
{
    json_error_t e;
    json_t *obj = json_loads(line, JSON_REJECT_DUPLICATES, &e);

    if (obj == NULL) {
        fail_msg("not one JSON object (%s): %s", e.text, line);
    }
    assert_true(json_is_object(obj));
    return obj;
}

static const char *str_of(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v)) {
        fail_msg("no string %s", key);
    }
    return json_string_value(v);
}

static void json_fields_are_keys(void **state)
{
    (void)state;
    static const char evil[] = "spiffe://x/ns/a/\"b\"\n\x01\xff";
    FILE *tmp;
    int saved;
    char *line;
    json_t *obj;

    pk_log_setup(PK_LOG_LEVEL_INFO, true);
    pk_log_set_app_id("myapp");
    saved = capture_begin(&tmp);
    PK_LOG_EVENT(PK_LOG_LEVEL_INFO, "connection closed", PK_LF_STR("listener", "in"),
                 PK_LF_STR("peer_id", evil), PK_LF_UINT("bytes_in", 5), PK_LF_INT("delta", -3),
                 PK_LF_DOUBLE("duration_seconds", 0.25), PK_LF_STR("app_id", "myapp"),
                 PK_LF_STR("msg", "a field called msg"), PK_LF_STR("detail", NULL));
    line = capture_end(tmp, saved);
    obj = parse_line(line);
    assert_string_equal(str_of(obj, "msg"), "connection closed");
    assert_string_equal(str_of(obj, "level"), "info");
    assert_string_equal(str_of(obj, "type"), "log");
    assert_string_equal(str_of(obj, "scope"), "picket.unit");
    assert_string_equal(str_of(obj, "app_id"), "myapp");
    assert_string_equal(str_of(obj, "listener"), "in");
    /* Printable ASCII kept as is; control and non-ASCII bytes as \u00XX. */
    assert_string_equal(str_of(obj, "peer_id"), "spiffe://x/ns/a/\"b\"\n\x01\xc3\xbf");
    assert_int_equal(json_integer_value(json_object_get(obj, "bytes_in")), 5);
    assert_int_equal(json_integer_value(json_object_get(obj, "delta")), -3);
    assert_true(json_real_value(json_object_get(obj, "duration_seconds")) == 0.25);
    assert_string_equal(str_of(obj, "field_msg"), "a field called msg");
    assert_string_equal(str_of(obj, "detail"), "");
    assert_non_null(json_object_get(obj, "time"));
    json_decref(obj);
    free(line);
    pk_log_set_app_id(NULL);
}

static void printf_messages_are_split(void **state)
{
    (void)state;
    FILE *tmp;
    int saved;
    char *line;
    json_t *obj;

    pk_log_setup(PK_LOG_LEVEL_INFO, true);
    saved = capture_begin(&tmp);
    PK_LOG_INFO("reload refused, keeping the running configuration error=\"%s\" count=%d",
                "t.ini:8: invalid duration \"forever\": expected 10s", 2);
    line = capture_end(tmp, saved);
    obj = parse_line(line);
    assert_string_equal(str_of(obj, "msg"), "reload refused, keeping the running configuration");
    assert_string_equal(str_of(obj, "error"),
                        "t.ini:8: invalid duration \"forever\": expected 10s");
    assert_string_equal(str_of(obj, "count"), "2");
    json_decref(obj);
    free(line);

    /* Words after a key=value that are not one: everything stays in msg, nothing is lost. */
    saved = capture_begin(&tmp);
    PK_LOG_INFO("odd a=b then words");
    line = capture_end(tmp, saved);
    obj = parse_line(line);
    assert_string_equal(str_of(obj, "msg"), "odd a=b then words");
    assert_null(json_object_get(obj, "a"));
    json_decref(obj);
    free(line);
}

static void text_is_logfmt(void **state)
{
    (void)state;
    FILE *tmp;
    int saved;
    char *line;

    pk_log_setup(PK_LOG_LEVEL_INFO, false);
    saved = capture_begin(&tmp);
    PK_LOG_EVENT(PK_LOG_LEVEL_WARN, "connection closed", PK_LF_STR("listener", "in"),
                 PK_LF_STR("peer_id", "spiffe://x/\"b\"\n"), PK_LF_STR("empty", ""),
                 PK_LF_STR("spaced", "a b=c"), PK_LF_UINT("bytes_in", 7));
    line = capture_end(tmp, saved);
    assert_int_equal(strncmp(line, "time=", 5), 0);
    assert_non_null(strstr(line, " level=warn scope=picket.unit msg=\"connection closed\" "
                                 "listener=in peer_id=\"spiffe://x/\\\"b\\\"\\x0a\" empty=\"\" "
                                 "spaced=\"a b=c\" bytes_in=7\n"));
    free(line);

    saved = capture_begin(&tmp);
    PK_LOG_INFO("stopping signal=%s", "SIGTERM");
    line = capture_end(tmp, saved);
    assert_non_null(strstr(line, " msg=\"stopping\" signal=SIGTERM\n"));
    free(line);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(json_fields_are_keys),
            cmocka_unit_test(printf_messages_are_split),
            cmocka_unit_test(text_is_logfmt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
