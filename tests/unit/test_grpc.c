/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for common/grpc (framing, status codes, grpc-message, grpc-timeout). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* cmocka.h needs setjmp.h, stdarg.h and stddef.h first. */
/* clang-format off */
#include <cmocka.h>
/* clang-format on */

#include "common/buf.h"
#include "common/err.h"
#include "common/grpc.h"

struct collected {
    int n;
    size_t lens[8];
    uint8_t data[8][300];
    int stop_at; /* return an error from the n-th message (1-based); 0 = never */
};

static int collect(void *ctx, struct pk_slice msg)
{
    struct collected *c = ctx;
    assert_true(c->n < 8);
    assert_true(msg.len <= sizeof(c->data[0]));
    c->lens[c->n] = msg.len;
    if (msg.len > 0) {
        memcpy(c->data[c->n], msg.ptr, msg.len);
    }
    c->n++;
    return c->n == c->stop_at ? PK_E_DENIED : 0;
}

static void encode_two(struct pk_buf *b, const char *m1, const char *m2)
{
    pk_buf_init(b, 1024);
    assert_int_equal(pk_grpc_frame_encode(b, pk_slice_make(m1, strlen(m1))), 0);
    assert_int_equal(pk_grpc_frame_encode(b, pk_slice_make(m2, strlen(m2))), 0);
}

static void encode_layout(void **state)
{
    struct pk_buf b;
    pk_buf_init(&b, 64);
    assert_int_equal(pk_grpc_frame_encode(&b, pk_slice_make("abc", 3)), 0);
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.data,
                        "\x00\x00\x00\x00\x03"
                        "abc",
                        8);
    assert_int_equal(pk_grpc_frame_encode(&b, pk_slice_make(NULL, 0)), 0);
    assert_memory_equal(b.data + 8, "\x00\x00\x00\x00\x00", 5);
    pk_buf_free(&b);

    /* The cap counts the prefix: 5 + 3 does not fit in 7, and nothing is written. */
    pk_buf_init(&b, 7);
    assert_int_equal(pk_grpc_frame_encode(&b, pk_slice_make("abc", 3)), PK_E_TOOBIG);
    assert_int_equal(b.len, 0);
    pk_buf_free(&b);
}

static void two_messages_in_one_feed(void **state)
{
    struct pk_grpc_deframer d;
    struct collected c = {0};
    struct pk_buf b;

    encode_two(&b, "hello", "");
    pk_grpc_deframer_init(&d, 100);
    assert_int_equal(pk_grpc_deframer_feed(&d, b.data, b.len, collect, &c, NULL), 0);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.lens[0], 5);
    assert_memory_equal(c.data[0], "hello", 5);
    assert_int_equal(c.lens[1], 0);
    assert_int_equal(pk_grpc_deframer_count(&d), 2);
    assert_int_equal(pk_grpc_deframer_finish(&d, NULL), 0);
    pk_grpc_deframer_free(&d);
    pk_buf_free(&b);
}

static void split_at_every_byte(void **state)
{
    struct pk_buf b;
    char big[260];

    memset(big, 'x', sizeof(big));
    big[sizeof(big) - 1] = 0;
    encode_two(&b, "first message", big);
    /* Every split point, and also byte-at-a-time. */
    for (size_t cut = 0; cut <= b.len; cut++) {
        struct pk_grpc_deframer d;
        struct collected c = {0};
        pk_grpc_deframer_init(&d, 300);
        assert_int_equal(pk_grpc_deframer_feed(&d, b.data, cut, collect, &c, NULL), 0);
        assert_int_equal(pk_grpc_deframer_feed(&d, b.data + cut, b.len - cut, collect, &c, NULL),
                         0);
        assert_int_equal(c.n, 2);
        assert_memory_equal(c.data[0], "first message", 13);
        assert_int_equal(c.lens[1], strlen(big));
        assert_memory_equal(c.data[1], big, strlen(big));
        assert_int_equal(pk_grpc_deframer_finish(&d, NULL), 0);
        pk_grpc_deframer_free(&d);
    }
    struct pk_grpc_deframer d;
    struct collected c = {0};
    pk_grpc_deframer_init(&d, 300);
    for (size_t i = 0; i < b.len; i++) {
        assert_int_equal(pk_grpc_deframer_feed(&d, b.data + i, 1, collect, &c, NULL), 0);
    }
    assert_int_equal(c.n, 2);
    assert_int_equal(pk_grpc_deframer_finish(&d, NULL), 0);
    pk_grpc_deframer_free(&d);
    pk_buf_free(&b);
}

static void truncated_stream(void **state)
{
    struct pk_buf b;
    struct pk_err err;

    encode_two(&b, "abcdef", "ghi");
    for (size_t cut = 1; cut < b.len; cut++) {
        struct pk_grpc_deframer d;
        struct collected c = {0};
        if (cut == 11) {
            continue; /* the boundary between the two messages is a clean end */
        }
        pk_grpc_deframer_init(&d, 100);
        assert_int_equal(pk_grpc_deframer_feed(&d, b.data, cut, collect, &c, NULL), 0);
        pk_err_clear(&err);
        assert_int_equal(pk_grpc_deframer_finish(&d, &err), PK_E_TRUNCATED);
        assert_non_null(strstr(err.msg, "ends inside"));
        /* Sticky: a later feed reports the same. */
        assert_int_equal(pk_grpc_deframer_feed(&d, b.data, b.len, collect, &c, NULL),
                         PK_E_TRUNCATED);
        pk_grpc_deframer_free(&d);
    }
    pk_buf_free(&b);
}

static void oversized_declared_length(void **state)
{
    struct pk_grpc_deframer d;
    struct collected c = {0};
    struct pk_err err;
    /* A lying length: 0xFFFFFFFF with only 3 bytes behind it. */
    static const uint8_t lie[] = {0, 0xff, 0xff, 0xff, 0xff, 'a', 'b', 'c'};
    static const uint8_t just_over[] = {0, 0, 0, 0, 101};
    static const uint8_t at_limit[] = {0, 0, 0, 0, 100};

    pk_grpc_deframer_init(&d, 100);
    pk_err_clear(&err);
    assert_int_equal(pk_grpc_deframer_feed(&d, lie, sizeof(lie), collect, &c, &err), PK_E_TOOBIG);
    assert_non_null(strstr(err.msg, "4294967295"));
    assert_int_equal(pk_grpc_deframer_buffered(&d), 0); /* nothing buffered */
    assert_int_equal(pk_grpc_deframer_finish(&d, NULL), PK_E_TOOBIG);
    pk_grpc_deframer_free(&d);

    pk_grpc_deframer_init(&d, 100);
    assert_int_equal(pk_grpc_deframer_feed(&d, just_over, sizeof(just_over), collect, &c, NULL),
                     PK_E_TOOBIG);
    pk_grpc_deframer_free(&d);

    pk_grpc_deframer_init(&d, 100);
    assert_int_equal(pk_grpc_deframer_feed(&d, at_limit, sizeof(at_limit), collect, &c, NULL), 0);
    assert_int_equal(pk_grpc_deframer_finish(&d, NULL), PK_E_TRUNCATED);
    pk_grpc_deframer_free(&d);
    assert_int_equal(c.n, 0);
}

static void compressed_and_bad_flags(void **state)
{
    struct pk_grpc_deframer d;
    struct collected c = {0};
    struct pk_err err;
    static const uint8_t compressed[] = {1, 0, 0, 0, 1, 'x'};
    static const uint8_t bad_flag[] = {0x80, 0, 0, 0, 1, 'x'};

    pk_grpc_deframer_init(&d, 100);
    pk_err_clear(&err);
    assert_int_equal(pk_grpc_deframer_feed(&d, compressed, sizeof(compressed), collect, &c, &err),
                     PK_E_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "compressed"));
    pk_grpc_deframer_free(&d);

    pk_grpc_deframer_init(&d, 100);
    assert_int_equal(pk_grpc_deframer_feed(&d, bad_flag, sizeof(bad_flag), collect, &c, &err),
                     PK_E_PROTO);
    assert_non_null(strstr(err.msg, "0x80"));
    pk_grpc_deframer_free(&d);
    assert_int_equal(c.n, 0);
}

static void callback_stops_feed(void **state)
{
    struct pk_grpc_deframer d;
    struct collected c = {.stop_at = 1};
    struct pk_buf b;

    encode_two(&b, "one", "two");
    pk_grpc_deframer_init(&d, 100);
    assert_int_equal(pk_grpc_deframer_feed(&d, b.data, b.len, collect, &c, NULL), PK_E_DENIED);
    assert_int_equal(c.n, 1);
    assert_int_equal(pk_grpc_deframer_feed(&d, b.data, b.len, collect, &c, NULL), PK_E_DENIED);
    assert_int_equal(c.n, 1);
    pk_grpc_deframer_free(&d);
    pk_buf_free(&b);
}

static void status_names_and_parse(void **state)
{
    int st = -1;
    assert_string_equal(pk_grpc_status_name(PK_GRPC_OK), "OK");
    assert_string_equal(pk_grpc_status_name(PK_GRPC_DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED");
    assert_string_equal(pk_grpc_status_name(PK_GRPC_UNAUTHENTICATED), "UNAUTHENTICATED");
    assert_string_equal(pk_grpc_status_name(17), "UNKNOWN_CODE");
    assert_string_equal(pk_grpc_status_name(-1), "UNKNOWN_CODE");

    assert_int_equal(pk_grpc_status_parse((const uint8_t *)"14", 2, &st), 0);
    assert_int_equal(st, 14);
    assert_int_equal(pk_grpc_status_parse((const uint8_t *)"0", 1, &st), 0);
    assert_int_equal(st, 0);
    st = 99;
    assert_int_equal(pk_grpc_status_parse((const uint8_t *)"", 0, &st), PK_E_INVALID);
    assert_int_equal(pk_grpc_status_parse((const uint8_t *)"1a", 2, &st), PK_E_INVALID);
    assert_int_equal(pk_grpc_status_parse((const uint8_t *)"-1", 2, &st), PK_E_INVALID);
    assert_int_equal(pk_grpc_status_parse((const uint8_t *)" 1", 2, &st), PK_E_INVALID);
    assert_int_equal(pk_grpc_status_parse((const uint8_t *)"2147483648", 10, &st), PK_E_INVALID);
    assert_int_equal(pk_grpc_status_parse((const uint8_t *)"12345678901", 11, &st), PK_E_INVALID);
    assert_int_equal(st, 99); /* untouched on failure */

    assert_int_equal(pk_grpc_status_from_http(400), PK_GRPC_INTERNAL);
    assert_int_equal(pk_grpc_status_from_http(401), PK_GRPC_UNAUTHENTICATED);
    assert_int_equal(pk_grpc_status_from_http(403), PK_GRPC_PERMISSION_DENIED);
    assert_int_equal(pk_grpc_status_from_http(404), PK_GRPC_UNIMPLEMENTED);
    assert_int_equal(pk_grpc_status_from_http(429), PK_GRPC_UNAVAILABLE);
    assert_int_equal(pk_grpc_status_from_http(502), PK_GRPC_UNAVAILABLE);
    assert_int_equal(pk_grpc_status_from_http(503), PK_GRPC_UNAVAILABLE);
    assert_int_equal(pk_grpc_status_from_http(504), PK_GRPC_UNAVAILABLE);
    assert_int_equal(pk_grpc_status_from_http(500), PK_GRPC_UNKNOWN);
    assert_int_equal(pk_grpc_status_from_http(200), PK_GRPC_UNKNOWN);
}

static void percent_encoding(void **state)
{
    struct pk_buf b;
    const char *in = "50% off\r\nü ok";

    pk_buf_init(&b, 128);
    assert_int_equal(pk_grpc_percent_encode(&b, (const uint8_t *)in, strlen(in)), 0);
    assert_string_equal((char *)b.data, "50%25 off%0D%0A%C3%BC ok");
    pk_buf_reset(&b);
    assert_int_equal(pk_grpc_percent_decode(&b, (const uint8_t *)"50%25 off%0D%0A%C3%bc ok",
                                            strlen("50%25 off%0D%0A%C3%bc ok")),
                     0);
    assert_string_equal((char *)b.data, in);

    /* Malformed sequences are kept literally, never an error. */
    pk_buf_reset(&b);
    assert_int_equal(pk_grpc_percent_decode(&b, (const uint8_t *)"%zz %4 %", 8), 0);
    assert_string_equal((char *)b.data, "%zz %4 %");

    /* Round trip of every byte value. */
    uint8_t all[256];
    for (int i = 0; i < 256; i++) {
        all[i] = (uint8_t)i;
    }
    struct pk_buf enc, dec;
    pk_buf_init(&enc, 1024);
    pk_buf_init(&dec, 256);
    assert_int_equal(pk_grpc_percent_encode(&enc, all, sizeof(all)), 0);
    for (size_t i = 0; i < enc.len; i++) {
        assert_true(enc.data[i] >= 0x20 && enc.data[i] <= 0x7e);
    }
    assert_int_equal(pk_grpc_percent_decode(&dec, enc.data, enc.len), 0);
    assert_int_equal(dec.len, 256);
    assert_memory_equal(dec.data, all, 256);

    /* Caps are honoured. */
    struct pk_buf small;
    pk_buf_init(&small, 4);
    assert_int_equal(pk_grpc_percent_encode(&small, (const uint8_t *)"\n\n", 2), PK_E_TOOBIG);
    pk_buf_free(&small);
    pk_buf_init(&small, 2);
    assert_int_equal(pk_grpc_percent_decode(&small, (const uint8_t *)"abc", 3), PK_E_TOOBIG);
    pk_buf_free(&small);
    pk_buf_free(&enc);
    pk_buf_free(&dec);
    pk_buf_free(&b);
}

static void timeout_strings(void **state)
{
    static const struct {
        const char *text;
        uint64_t ns;
    } good[] = {
            {"3S", 3000000000ULL},
            {"100m", 100000000ULL},
            {"1H", 3600000000000ULL},
            {"2M", 120000000000ULL},
            {"7u", 7000ULL},
            {"0n", 0},
            {"99999999n", 99999999ULL},
            {"00000001S", 1000000000ULL},
    };
    static const char *const bad[] = {"",           "S",    "3",   "3s", "3 S", "-1S",
                                      "123456789S", "1.5S", "3SS", "3x", "+3S"};
    char out[PK_GRPC_TIMEOUT_STRLEN];
    uint64_t ns = 42;

    for (size_t i = 0; i < PK_ARRAY_LEN(good); i++) {
        assert_int_equal(
                pk_grpc_timeout_parse((const uint8_t *)good[i].text, strlen(good[i].text), &ns), 0);
        assert_int_equal(ns, good[i].ns);
    }
    ns = 42;
    for (size_t i = 0; i < PK_ARRAY_LEN(bad); i++) {
        assert_int_equal(pk_grpc_timeout_parse((const uint8_t *)bad[i], strlen(bad[i]), &ns),
                         PK_E_INVALID);
    }
    assert_int_equal(ns, 42);
    /* Saturates instead of overflowing. */
    assert_int_equal(pk_grpc_timeout_parse((const uint8_t *)"99999999H", 9, &ns), 0);
    assert_int_equal(ns, UINT64_MAX);

    pk_grpc_timeout_format(3000000000ULL, out);
    assert_string_equal(out, "3000000u");
    pk_grpc_timeout_format(99999999ULL, out);
    assert_string_equal(out, "99999999n");
    pk_grpc_timeout_format(100000001ULL, out); /* rounds up, never down */
    assert_string_equal(out, "100001u");
    pk_grpc_timeout_format(0, out);
    assert_string_equal(out, "0n");
    pk_grpc_timeout_format(UINT64_MAX, out);
    assert_string_equal(out, "5124096H");
    /* What we format we parse back to at least the same value. */
    for (uint64_t v = 1; v < UINT64_MAX / 7; v = v * 7 + 3) {
        pk_grpc_timeout_format(v, out);
        assert_int_equal(pk_grpc_timeout_parse((const uint8_t *)out, strlen(out), &ns), 0);
        assert_true(ns >= v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(encode_layout),
            cmocka_unit_test(two_messages_in_one_feed),
            cmocka_unit_test(split_at_every_byte),
            cmocka_unit_test(truncated_stream),
            cmocka_unit_test(oversized_declared_length),
            cmocka_unit_test(compressed_and_bad_flags),
            cmocka_unit_test(callback_stops_feed),
            cmocka_unit_test(status_names_and_parse),
            cmocka_unit_test(percent_encoding),
            cmocka_unit_test(timeout_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
