/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for common/buf. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs setjmp.h, stdarg.h and stddef.h first. */
/* clang-format off */
#include <cmocka.h>
/* clang-format on */

#include "common/buf.h"
#include "common/err.h"

static void append_within_cap(void **state)
{
    struct pk_buf b;
    pk_buf_init(&b, 8);
    assert_int_equal(pk_buf_append(&b, "abcd", 4), 0);
    assert_int_equal(pk_buf_append(&b, "efgh", 4), 0);
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.data, "abcdefgh", 8);
    assert_int_equal(b.data[8], '\0');
    pk_buf_free(&b);
}

static void append_past_cap_fails_and_keeps_content(void **state)
{
    struct pk_buf b;
    pk_buf_init(&b, 5);
    assert_int_equal(pk_buf_append(&b, "abc", 3), 0);
    assert_int_equal(pk_buf_append(&b, "def", 3), PK_E_TOOBIG);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "abc", 3);
    assert_int_equal(pk_buf_printf(&b, "%s", "xyz"), PK_E_TOOBIG);
    assert_int_equal(pk_buf_printf(&b, "%d", 12), 0);
    assert_string_equal((char *)b.data, "abc12");
    pk_buf_free(&b);
}

static void consume_and_reserve(void **state)
{
    struct pk_buf b;
    uint8_t *dst;
    pk_buf_init_secret(&b, 1024);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(pk_buf_append(&b, "0123456789", 10), 0);
    }
    pk_buf_consume(&b, 995);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "56789", 5);
    assert_int_equal(pk_buf_reserve(&b, 1019, &dst), 0);
    assert_int_equal(pk_buf_reserve(&b, 1020, &dst), PK_E_TOOBIG);
    memcpy(dst, "ab", 2);
    pk_buf_commit(&b, 2);
    assert_memory_equal(b.data, "56789ab", 7);
    pk_buf_reset(&b);
    assert_int_equal(b.len, 0);
    pk_buf_free(&b);
    assert_null(b.data);
}

static void steal_hands_over(void **state)
{
    struct pk_buf b;
    uint8_t *out;
    size_t len;
    pk_buf_init(&b, 16);
    pk_buf_steal(&b, &out, &len);
    assert_int_equal(len, 0);
    assert_int_equal(out[0], '\0');
    free(out);
    assert_int_equal(pk_buf_append_str(&b, "hi"), 0);
    pk_buf_steal(&b, &out, &len);
    assert_string_equal((char *)out, "hi");
    assert_null(b.data);
    free(out);
}

static void err_messages(void **state)
{
    struct pk_err e;
    pk_err_clear(&e);
    assert_int_equal(pk_err_set(&e, PK_E_INVALID, "bad '%s'", "x"), PK_E_INVALID);
    assert_int_equal(pk_err_prefix(&e, PK_E_INVALID, "file %s", "a.crt"), PK_E_INVALID);
    assert_string_equal(e.msg, "file a.crt: bad 'x'");
    pk_err_clear(&e);
    pk_err_prefix(&e, PK_E_EXPIRED, "issuer.crt");
    assert_string_equal(e.msg, "issuer.crt: expired");
    assert_int_equal(pk_err_set(NULL, PK_E_TOOBIG, "ignored"), PK_E_TOOBIG);
    assert_string_equal(pk_err_str(PK_E_TOOBIG), "too large");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(append_within_cap),
            cmocka_unit_test(append_past_cap_fails_and_keeps_content),
            cmocka_unit_test(consume_and_reserve),
            cmocka_unit_test(steal_hands_over),
            cmocka_unit_test(err_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
