/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for proxy/sniff: real ClientHellos (from wolfSSL, TLS 1.2 and 1.3) are
 * TLS from their sixth byte and "more" before; plaintext protocols are plaintext from their
 * first byte; each header field out of range makes plaintext. */
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

#include <sys/socket.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "common/compiler.h"
#include "proxy/sniff.h"
#include "testutil.h"

static void check_hello(const uint8_t *p, size_t n)
{
    for (size_t len = 0; len < PK_SNIFF_BYTES; len++) {
        assert_int_equal(pk_sniff_client_hello(p, len), PK_SNIFF_MORE);
    }
    for (size_t len = PK_SNIFF_BYTES; len <= n; len++) {
        assert_int_equal(pk_sniff_client_hello(p, len), PK_SNIFF_TLS);
    }
}

static void test_real_client_hellos(void **state)
{
    (void)state;
    uint8_t buf[4096];
    size_t n;

    n = wolfssl_client_hello(wolfTLSv1_3_client_method(), 0, buf, sizeof(buf));
    check_hello(buf, n);
    n = wolfssl_client_hello(wolfTLSv1_2_client_method(), 0, buf, sizeof(buf));
    check_hello(buf, n);
}

static void test_plaintext(void **state)
{
    (void)state;
    static const char *const texts[] = {
            "GET / HTTP/1.1\r\n",   "POST /x HTTP/1.0\r\n",    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "*1\r\n$4\r\nPING\r\n", "SSH-2.0-OpenSSH_9.2\r\n", "\x00\x00\x00\x08\x04\xd2\x16\x2f",
    };
    for (size_t i = 0; i < PK_ARRAY_LEN(texts); i++) {
        const uint8_t *p = (const uint8_t *)texts[i];
        /* One byte settles it: none of these starts with 22. */
        assert_int_equal(pk_sniff_client_hello(p, 1), PK_SNIFF_PLAIN);
        assert_int_equal(pk_sniff_client_hello(p, 8), PK_SNIFF_PLAIN);
    }
}

static void test_header_fields(void **state)
{
    (void)state;
    static const struct {
        uint8_t b[6];
        size_t len;
        enum pk_sniff_result want;
    } cases[] = {
            {{22, 3, 1, 0, 200, 1}, 6, PK_SNIFF_TLS},
            {{22, 3, 3, 0x40, 0, 1}, 6, PK_SNIFF_TLS}, /* 2^14 exactly */
            {{22, 3, 0, 0, 4, 1}, 6, PK_SNIFF_TLS},    /* SSL 3.0 record version */
            {{22, 3, 4, 0, 4, 1}, 6, PK_SNIFF_TLS},
            {{23, 3, 3, 0, 200, 1}, 6, PK_SNIFF_PLAIN},  /* application data first */
            {{22, 2, 0, 0, 200, 1}, 2, PK_SNIFF_PLAIN},  /* major version 2 */
            {{22, 3, 5, 0, 200, 1}, 3, PK_SNIFF_PLAIN},  /* minor version 5 */
            {{22, 3, 3, 0x41, 0, 1}, 4, PK_SNIFF_PLAIN}, /* longer than 2^14 from its high byte */
            {{22, 3, 3, 0x40, 1, 1}, 5, PK_SNIFF_PLAIN}, /* 2^14 + 1 */
            {{22, 3, 3, 0, 3, 1}, 5, PK_SNIFF_PLAIN},    /* shorter than a handshake header */
            {{22, 3, 3, 0, 200, 2}, 6, PK_SNIFF_PLAIN},  /* ServerHello */
            {{22, 3, 3, 0, 200, 0}, 6, PK_SNIFF_PLAIN},
            {{22, 3, 3, 0, 200, 1}, 5, PK_SNIFF_MORE},
            {{22, 3, 3, 0x40, 0, 1}, 4, PK_SNIFF_MORE},
            {{0x80, 0x2e, 1, 0, 2, 0}, 6, PK_SNIFF_PLAIN}, /* an SSL 2.0 hello */
    };
    for (size_t i = 0; i < PK_ARRAY_LEN(cases); i++) {
        enum pk_sniff_result got = pk_sniff_client_hello(cases[i].b, cases[i].len);
        if (got != cases[i].want) {
            fail_msg("case %zu: got %d, want %d", i, (int)got, (int)cases[i].want);
        }
    }
    assert_int_equal(pk_sniff_client_hello(NULL, 0), PK_SNIFF_MORE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_real_client_hellos),
            cmocka_unit_test(test_plaintext),
            cmocka_unit_test(test_header_fields),
    };
    wolfSSL_Init();
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    wolfSSL_Cleanup();
    return r;
}
