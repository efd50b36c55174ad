/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for common/pem (PEM blocks and the DER reader/writer). */
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
#include "common/pem.h"

/* "hello world!" in base64, 12 bytes so no padding; "hi" needs "==". */
#define HELLO_B64 "aGVsbG8gd29ybGQh"

static int next(const char *text, size_t *off, struct pk_pem_block *b, struct pk_err *err)
{
    return pk_pem_next((const uint8_t *)text, strlen(text), off, b, err);
}

static void multiple_blocks_with_junk_between(void **state)
{
    const char *text = "Certificate:\n    Data: (openssl -text output)\n"
                       "-----BEGIN CERTIFICATE-----\n" HELLO_B64 "\n-----END CERTIFICATE-----\n"
                       "junk between blocks -----\n\n"
                       "-----BEGIN EC PRIVATE KEY-----  \n"
                       "aGk=\n"
                       "-----END EC PRIVATE KEY-----\n"
                       "trailing text";
    struct pk_pem_block b = {0};
    struct pk_err err = {{0}};
    size_t off = 0;

    assert_int_equal(next(text, &off, &b, &err), 0);
    assert_string_equal(b.type, "CERTIFICATE");
    assert_int_equal(b.der_len, 12);
    assert_memory_equal(b.der, "hello world!", 12);
    pk_pem_block_clear(&b);
    assert_null(b.der);

    assert_int_equal(next(text, &off, &b, &err), 0);
    assert_string_equal(b.type, "EC PRIVATE KEY");
    assert_int_equal(b.der_len, 2);
    assert_memory_equal(b.der, "hi", 2);
    pk_pem_block_clear(&b);

    assert_int_equal(next(text, &off, &b, &err), PK_E_NOTFOUND);
    assert_int_equal(next("", &(size_t){0}, &b, &err), PK_E_NOTFOUND);
    assert_int_equal(next("no pem here\n", &(size_t){0}, &b, &err), PK_E_NOTFOUND);
}

static void crlf_and_split_lines(void **state)
{
    const char *text =
            "-----BEGIN X-----\r\naGVs\r\nbG8g\r\nd29y\t \r\nbGQh\r\n-----END X-----\r\n";
    struct pk_pem_block b = {0};
    size_t off = 0;

    assert_int_equal(next(text, &off, &b, NULL), 0);
    assert_int_equal(b.der_len, 12);
    assert_memory_equal(b.der, "hello world!", 12);
    assert_int_equal(off, strlen(text));
    pk_pem_block_clear(&b);

    /* The END line may end the text without a newline. */
    off = 0;
    assert_int_equal(next("-----BEGIN X-----\naGk=\n-----END X-----", &off, &b, NULL), 0);
    pk_pem_block_clear(&b);
}

struct bad_case {
    const char *text;
    int code;
    const char *frag;
};

static const struct bad_case bad_cases[] = {
        {"-----BEGIN CERTIFICATE-----\n" HELLO_B64 "\n", PK_E_INVALID, "no END line"},
        {"-----BEGIN CERTIFICATE-----\n" HELLO_B64, PK_E_INVALID, "no END line"},
        {"-----BEGIN CERTIFICATE-----\n" HELLO_B64 "\n-----BEGIN CERTIFICATE-----\n" HELLO_B64
         "\n-----END CERTIFICATE-----\n",
         PK_E_INVALID, "before the next boundary"},
        {"-----BEGIN CERTIFICATE-----\n" HELLO_B64 "\n-----END PRIVATE KEY-----\n", PK_E_INVALID,
         "does not match"},
        {"-----BEGIN CERTIFICATE-----\naGVs*G8g\n-----END CERTIFICATE-----\n", PK_E_INVALID,
         "invalid base64 character 0x2a"},
        {"-----BEGIN CERTIFICATE-----\naGVsb G8g\n-----END CERTIFICATE-----\n", PK_E_INVALID,
         "invalid base64 character 0x20"},
        {"-----BEGIN CERTIFICATE-----\naGk\n-----END CERTIFICATE-----\n", PK_E_INVALID,
         "not a multiple of 4"},
        {"-----BEGIN CERTIFICATE-----\naGk=aGk=\n-----END CERTIFICATE-----\n", PK_E_INVALID,
         "after padding"},
        {"-----BEGIN CERTIFICATE-----\naGk=\naGk=\n-----END CERTIFICATE-----\n", PK_E_INVALID,
         "after padding"},
        {"-----BEGIN CERTIFICATE-----\na===\n-----END CERTIFICATE-----\n", PK_E_INVALID,
         "too much"},
        {"-----BEGIN CERTIFICATE-----\naGl=\n-----END CERTIFICATE-----\n", PK_E_INVALID,
         "non-canonical"},
        {"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", PK_E_INVALID, "no data"},
        {"-----BEGIN CERTIFICATE-----\naGk=\n\n-----END CERTIFICATE-----\n", PK_E_INVALID,
         "blank line"},
        {"-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\naGk=\n"
         "-----END EC PRIVATE KEY-----\n",
         PK_E_INVALID, "RFC 1421 headers"},
        {"-----BEGIN -----\naGk=\n-----END -----\n", PK_E_INVALID, "malformed BEGIN"},
        {"-----BEGIN A--B-----\naGk=\n-----END A--B-----\n", PK_E_INVALID, "malformed BEGIN"},
        {"-----BEGIN X----\naGk=\n-----END X-----\n", PK_E_INVALID, "malformed BEGIN"},
        {"-----BEGIN X-----junk\naGk=\n-----END X-----\n", PK_E_INVALID, "malformed BEGIN"},
        {"-----BEGIN X-----\naGk=\n-----END X-----junk\n", PK_E_INVALID, "malformed END"},
        {"-----BEGIN 0123456789012345678901234567890123456789012345678901234567890123-----\n"
         "aGk=\n-----END 0123456789012345678901234567890123456789012345678901234567890123-----\n",
         PK_E_INVALID, "malformed BEGIN"},
};

static void malformed_blocks(void **state)
{
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        struct pk_pem_block b = {0};
        struct pk_err err = {{0}};
        size_t off = 0;
        int r = next(bad_cases[i].text, &off, &b, &err);
        if (r != bad_cases[i].code || strstr(err.msg, bad_cases[i].frag) == NULL) {
            fail_msg("bad case %zu: got %d '%s', want %d with '%s'", i, r, err.msg,
                     bad_cases[i].code, bad_cases[i].frag);
        }
        assert_null(b.der);
        assert_int_equal(off, 0);
        assert_non_null(strstr(err.msg, "PEM block #1"));
    }
}

static void error_names_the_block_ordinal(void **state)
{
    const char *text = "-----BEGIN A-----\naGk=\n-----END A-----\n"
                       "-----BEGIN B-----\naGk=\n-----END B-----\n"
                       "-----BEGIN C-----\naG!=\n-----END C-----\n";
    struct pk_pem_block b = {0};
    struct pk_err err = {{0}};
    size_t off = 0;

    assert_int_equal(next(text, &off, &b, &err), 0);
    pk_pem_block_clear(&b);
    assert_int_equal(next(text, &off, &b, &err), 0);
    pk_pem_block_clear(&b);
    assert_int_equal(next(text, &off, &b, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "PEM block #3 (C)"));
}

static void oversize_block(void **state)
{
    /* One byte over the cap: the count is checked before anything is allocated. */
    size_t der_len = PK_PEM_MAX_DER + 1;
    size_t b64 = (der_len + 2) / 3 * 4;
    struct pk_buf t;
    struct pk_pem_block b = {0};
    struct pk_err err = {{0}};
    size_t off = 0;

    pk_buf_init(&t, 2 * b64);
    assert_int_equal(pk_buf_append_str(&t, "-----BEGIN BIG-----\n"), 0);
    for (size_t i = 0; i < b64; i += 64) {
        size_t n = b64 - i < 64 ? b64 - i : 64;
        for (size_t k = 0; k < n; k++) {
            assert_int_equal(pk_buf_append(&t, "A", 1), 0);
        }
        assert_int_equal(pk_buf_append(&t, "\n", 1), 0);
    }
    assert_int_equal(pk_buf_append_str(&t, "-----END BIG-----\n"), 0);
    assert_int_equal(pk_pem_next(t.data, t.len, &off, &b, &err), PK_E_TOOBIG);
    assert_non_null(strstr(err.msg, "BIG"));
    assert_null(b.der);
    pk_buf_free(&t);
}

static void encode_round_trip_64_columns(void **state)
{
    uint8_t der[200];
    struct pk_buf out;
    struct pk_pem_block b = {0};
    size_t off = 0;

    for (size_t i = 0; i < sizeof(der); i++) {
        der[i] = (uint8_t)(i * 7 + 3);
    }
    for (size_t n = 1; n <= sizeof(der); n += 13) {
        pk_buf_init(&out, 4096);
        assert_int_equal(pk_pem_encode("CERTIFICATE", der, n, &out), 0);
        /* Every base64 line has at most 64 columns, all but the last exactly 64. */
        const char *p = strchr((const char *)out.data, '\n') + 1;
        size_t lines = 0;
        while (strncmp(p, "-----END", 8) != 0) {
            const char *nl = strchr(p, '\n');
            size_t len = (size_t)(nl - p);
            assert_true(len <= 64);
            lines++;
            if (strncmp(nl + 1, "-----END", 8) != 0) {
                assert_int_equal(len, 64);
            }
            p = nl + 1;
        }
        assert_int_equal(lines, ((n + 2) / 3 * 4 + 63) / 64);
        off = 0;
        assert_int_equal(pk_pem_next(out.data, out.len, &off, &b, NULL), 0);
        assert_int_equal(off, out.len);
        assert_string_equal(b.type, "CERTIFICATE");
        assert_int_equal(b.der_len, n);
        assert_memory_equal(b.der, der, n);
        pk_pem_block_clear(&b);
        pk_buf_free(&out);
    }
}

static void encode_refuses_bad_input_and_keeps_buffer(void **state)
{
    struct pk_buf out;
    uint8_t der[100] = {1, 2, 3};

    pk_buf_init(&out, 100);
    assert_int_equal(pk_buf_append_str(&out, "keep"), 0);
    assert_int_equal(pk_pem_encode("bad--label", der, 3, &out), PK_E_INVALID);
    assert_int_equal(pk_pem_encode("", der, 3, &out), PK_E_INVALID);
    assert_int_equal(pk_pem_encode("X", der, 0, &out), PK_E_INVALID);
    /* 100 bytes of DER need ~180 bytes of PEM: over the cap, and nothing is written. */
    assert_int_equal(pk_pem_encode("X", der, sizeof(der), &out), PK_E_TOOBIG);
    assert_int_equal(out.len, 4);
    assert_memory_equal(out.data, "keep", 4);
    pk_buf_free(&out);
}

static void der_reader(void **state)
{
    static const uint8_t seq[] = {0x30, 0x06, 0x02, 0x01, 0x05, 0x04, 0x01, 0xaa, 0xff};
    struct pk_slice in = pk_slice_make(seq, sizeof(seq));
    struct pk_der el, i1, o1;
    struct pk_slice inner;

    assert_int_equal(pk_der_expect(&in, PK_DER_SEQUENCE, &el), 0);
    assert_int_equal(el.tlv_len, 8);
    assert_int_equal(in.len, 1); /* the trailing 0xff stays */
    inner = pk_der_inner(&el);
    assert_int_equal(pk_der_expect(&inner, PK_DER_OCTET_STRING, &o1), PK_E_INVALID);
    assert_int_equal(inner.len, 6); /* a wrong tag consumes nothing */
    assert_int_equal(pk_der_expect(&inner, PK_DER_INTEGER, &i1), 0);
    assert_int_equal(i1.len, 1);
    assert_int_equal(i1.val[0], 5);
    assert_int_equal(pk_der_expect(&inner, PK_DER_OCTET_STRING, &o1), 0);
    assert_int_equal(inner.len, 0);
}

struct der_bad {
    uint8_t bytes[8];
    size_t len;
    int code;
};

static const struct der_bad der_bad_cases[] = {
        {{0x30}, 1, PK_E_TRUNCATED},                          /* header cut */
        {{0x30, 0x05, 0x01}, 3, PK_E_TRUNCATED},              /* length lies */
        {{0x30, 0x82, 0x01}, 3, PK_E_TRUNCATED},              /* long length cut */
        {{0x30, 0x82, 0x01, 0x00}, 4, PK_E_TRUNCATED},        /* 256 promised */
        {{0x30, 0x80, 0x00, 0x00}, 4, PK_E_INVALID},          /* indefinite (BER) */
        {{0x30, 0x81, 0x05, 1, 2, 3, 4, 5}, 8, PK_E_INVALID}, /* should be short form */
        {{0x30, 0x82, 0x00, 0x85}, 4, PK_E_INVALID},          /* leading zero length */
        {{0x30, 0x85, 1, 0, 0, 0, 0}, 7, PK_E_INVALID},       /* 5 length octets */
        {{0x1f, 0x81, 0x01, 0x00}, 4, PK_E_INVALID},          /* high tag number */
};

static void der_reader_rejects(void **state)
{
    for (size_t i = 0; i < sizeof(der_bad_cases) / sizeof(der_bad_cases[0]); i++) {
        struct pk_slice in = pk_slice_make(der_bad_cases[i].bytes, der_bad_cases[i].len);
        struct pk_der el;
        int r = pk_der_read(&in, &el);
        if (r != der_bad_cases[i].code) {
            fail_msg("der case %zu: got %d want %d", i, r, der_bad_cases[i].code);
        }
        assert_int_equal(in.len, der_bad_cases[i].len);
    }
}

static void der_writer(void **state)
{
    struct pk_buf b;
    uint8_t big[300];
    struct pk_slice in;
    struct pk_der el, inner_el;

    memset(big, 0x5a, sizeof(big));
    pk_buf_init(&b, 800);
    assert_int_equal(pk_der_put(&b, PK_DER_OCTET_STRING, big, 127), 0);
    assert_int_equal(b.data[1], 127);
    assert_int_equal(pk_der_put(&b, PK_DER_OCTET_STRING, big, 128), 0);
    assert_memory_equal(b.data + 129, "\x04\x81\x80", 3);
    assert_int_equal(pk_der_put(&b, PK_DER_OCTET_STRING, big, 300), 0);
    assert_memory_equal(b.data + 129 + 131, "\x04\x82\x01\x2c", 4);
    assert_int_equal(pk_der_wrap(&b, 0, PK_DER_SEQUENCE), 0);
    in = pk_buf_slice(&b);
    assert_int_equal(pk_der_expect(&in, PK_DER_SEQUENCE, &el), 0);
    assert_int_equal(in.len, 0);
    in = pk_der_inner(&el);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pk_der_expect(&in, PK_DER_OCTET_STRING, &inner_el), 0);
    }
    assert_int_equal(inner_el.len, 300);
    assert_int_equal(in.len, 0);
    /* Over the cap: nothing changes. */
    size_t before = b.len;
    assert_int_equal(pk_der_put(&b, PK_DER_OCTET_STRING, big, 300), PK_E_TOOBIG);
    assert_int_equal(b.len, before);
    pk_buf_free(&b);
}

static void oid_text(void **state)
{
    static const uint8_t ec[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
    static const uint8_t uid[] = {0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01};
    static const uint8_t two[] = {0x88, 0x37, 0x01};
    static const uint8_t cut[] = {0x2a, 0x86};
    static const uint8_t pad[] = {0x2a, 0x80, 0x01};
    char out[64];

    pk_der_oid_str(ec, sizeof(ec), out, sizeof(out));
    assert_string_equal(out, "1.2.840.10045.2.1");
    pk_der_oid_str(uid, sizeof(uid), out, sizeof(out));
    assert_string_equal(out, "0.9.2342.19200300.100.1.1");
    pk_der_oid_str(two, sizeof(two), out, sizeof(out));
    assert_string_equal(out, "2.999.1");
    pk_der_oid_str(cut, sizeof(cut), out, sizeof(out));
    assert_string_equal(out, "(invalid OID)");
    pk_der_oid_str(pad, sizeof(pad), out, sizeof(out));
    assert_string_equal(out, "(invalid OID)");
    pk_der_oid_str(ec, 0, out, sizeof(out));
    assert_string_equal(out, "(invalid OID)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(multiple_blocks_with_junk_between),
            cmocka_unit_test(crlf_and_split_lines),
            cmocka_unit_test(malformed_blocks),
            cmocka_unit_test(error_names_the_block_ordinal),
            cmocka_unit_test(oversize_block),
            cmocka_unit_test(encode_round_trip_64_columns),
            cmocka_unit_test(encode_refuses_bad_input_and_keeps_buffer),
            cmocka_unit_test(der_reader),
            cmocka_unit_test(der_reader_rejects),
            cmocka_unit_test(der_writer),
            cmocka_unit_test(oid_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
