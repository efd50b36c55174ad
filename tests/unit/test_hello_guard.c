/* SPDX-License-Identifier: Apache-2.0 */
/* picket: unit tests for common/hello_guard: key shares checked in ClientHellos split any way
 * across records and reads, early ChangeCipherSpec, where inspection stops (TLS 1.3's encrypted
 * flight, TLS 1.2's plaintext one, after a second ClientHello), malformed hellos. */
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

#include "common/buf.h"
#include "common/compiler.h"
#include "common/hello_guard.h"
#include "common/key.h"
#include "common/mem.h"
#include "testutil.h"

#define P256   0x0017
#define X25519 0x001d

static void put16(struct pk_buf *b, size_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    assert_int_equal(pk_buf_append(b, x, 2), 0);
}

/* A TLS 1.3 ClientHello handshake message with one key share (key_len 0: an empty list). */
static void hello(struct pk_buf *out, unsigned group, const uint8_t *key, size_t key_len)
{
    static const uint8_t fixed[] = {
            0x03, 0x03, /* legacy_version, then 32 bytes of random */
            1,    2,    3,    4,    5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17,
            18,   19,   20,   21,   22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 0, /* session id */
            0,    2,    0x13, 0x01, /* cipher suites */
            1,    0,                /* compression */
    };
    struct pk_buf exts, body;

    pk_buf_init(&exts, 1 << 16);
    pk_buf_init(&body, 1 << 16);
    put16(&exts, 43); /* supported_versions: TLS 1.3 */
    put16(&exts, 3);
    assert_int_equal(pk_buf_append(&exts, "\x02\x03\x04", 3), 0);
    put16(&exts, 51); /* key_share */
    put16(&exts, key_len > 0 ? 2 + 4 + key_len : 2);
    put16(&exts, key_len > 0 ? 4 + key_len : 0);
    if (key_len > 0) {
        put16(&exts, group);
        put16(&exts, key_len);
        assert_int_equal(pk_buf_append(&exts, key, key_len), 0);
    }
    assert_int_equal(pk_buf_append(&body, fixed, sizeof(fixed)), 0);
    put16(&body, exts.len);
    assert_int_equal(pk_buf_append(&body, exts.data, exts.len), 0);
    uint8_t hdr[4] = {1, (uint8_t)(body.len >> 16), (uint8_t)(body.len >> 8), (uint8_t)body.len};
    assert_int_equal(pk_buf_append(out, hdr, 4), 0);
    assert_int_equal(pk_buf_append(out, body.data, body.len), 0);
    pk_buf_free(&exts);
    pk_buf_free(&body);
}

/* Append msg as records of type `type', each at most frag bytes. */
static void records(struct pk_buf *out, uint8_t type, const uint8_t *msg, size_t len, size_t frag)
{
    for (size_t off = 0; off < len; off += frag) {
        size_t n = PK_MIN(frag, len - off);
        uint8_t hdr[5] = {type, 3, 3, (uint8_t)(n >> 8), (uint8_t)n};
        assert_int_equal(pk_buf_append(out, hdr, 5), 0);
        assert_int_equal(pk_buf_append(out, msg + off, n), 0);
    }
}

static void hello_records(struct pk_buf *out, unsigned group, const uint8_t *key, size_t key_len,
                          size_t frag)
{
    struct pk_buf msg;
    pk_buf_init(&msg, 1 << 16);
    hello(&msg, group, key, key_len);
    records(out, 22, msg.data, msg.len, frag);
    pk_buf_free(&msg);
}

static void valid_p256(uint8_t out[65])
{
    struct pk_key *key = NULL;
    struct pk_buf spki;

    assert_int_equal(pk_key_generate(PK_KEY_P256, &key, NULL), 0);
    pk_buf_init(&spki, 256);
    assert_int_equal(pk_key_public_spki(key, &spki), 0);
    assert_true(spki.len > 65);
    memcpy(out, spki.data + spki.len - 65, 65);
    pk_buf_free(&spki);
    pk_key_free(key);
}

/* Feed wire in pieces of `step' bytes; the verdict after the last piece, and the offset at which
 * the verdict first left MORE in *at. */
static enum pk_hello_verdict feed(struct pk_hello_guard *g, const struct pk_buf *wire, size_t step,
                                  size_t *at)
{
    enum pk_hello_verdict v = PK_HELLO_MORE;
    *at = wire->len;
    for (size_t off = 0; off < wire->len; off += step) {
        v = pk_hello_guard_feed(g, wire->data + off, PK_MIN(step, wire->len - off));
        if (v != PK_HELLO_MORE) {
            *at = off;
            return v;
        }
    }
    return v;
}

static const uint8_t app_data_header[] = {23, 3, 3, 0, 20};
static const uint8_t ccs_record[] = {20, 3, 3, 0, 1, 1};

static void valid_share_then_encrypted_flight(void **state)
{
    uint8_t pt[65];
    size_t steps[] = {1, 3, 7, 100, 1 << 16};

    (void)state;
    valid_p256(pt);
    for (size_t i = 0; i < PK_ARRAY_LEN(steps); i++) {
        struct pk_hello_guard g;
        struct pk_buf wire;
        size_t at;
        pk_buf_init(&wire, 1 << 16);
        hello_records(&wire, P256, pt, sizeof(pt), i % 2 ? 16 : 16384);
        /* Middlebox-compatibility CCS after the hello, then the encrypted flight. */
        assert_int_equal(pk_buf_append(&wire, ccs_record, sizeof(ccs_record)), 0);
        pk_hello_guard_init(&g, PK_HELLO_PEER_CLIENT);
        assert_int_equal(feed(&g, &wire, steps[i], &at), PK_HELLO_MORE);
        assert_int_equal(pk_hello_guard_feed(&g, app_data_header, sizeof(app_data_header)),
                         PK_HELLO_DONE);
        assert_int_equal(pk_hello_guard_feed(&g, app_data_header, 1), PK_HELLO_DONE);
        pk_hello_guard_free(&g);
        pk_buf_free(&wire);
    }
}

static void refuse_share(unsigned group, const uint8_t *key, size_t len, size_t frag, size_t step,
                         uint8_t want_alert, const char *why)
{
    struct pk_hello_guard g;
    struct pk_buf wire;
    uint8_t rec[PK_TLS_ALERT_RECORD_LEN];
    size_t at;

    pk_buf_init(&wire, 1 << 16);
    hello_records(&wire, group, key, len, frag);
    pk_hello_guard_init(&g, PK_HELLO_PEER_CLIENT);
    assert_int_equal(feed(&g, &wire, step, &at), PK_HELLO_REFUSE);
    /* Only once the whole hello is in: the last piece is the one refused. */
    assert_true(at + step >= wire.len);
    assert_int_equal(g.alert, want_alert);
    if (strstr(g.why, why) == NULL) {
        fail_msg("reason '%s' lacks '%s'", g.why, why);
    }
    pk_hello_guard_alert(&g, rec);
    const uint8_t want[] = {21, 3, 3, 0, 2, 2, want_alert};
    assert_memory_equal(rec, want, sizeof(want));
    assert_int_equal(pk_hello_guard_feed(&g, app_data_header, 1), PK_HELLO_REFUSE);
    pk_hello_guard_free(&g);
    pk_buf_free(&wire);
}

static void invalid_p256_shares(void **state)
{
    /* The field prime p = 2^256 - 2^224 + 2^192 + 2^96 - 1, big-endian. */
    static const uint8_t prime[32] = {0xff, 0xff, 0xff, 0xff, 0,    0,    0,    1,
                                      0,    0,    0,    0,    0,    0,    0,    0,
                                      0,    0,    0,    0,    0xff, 0xff, 0xff, 0xff,
                                      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    uint8_t pt[65];

    (void)state;
    memset(pt, 0, sizeof(pt));
    pt[0] = 4; /* (0,0) */
    refuse_share(P256, pt, sizeof(pt), 16384, 1, PK_TLS_ALERT_ILLEGAL_PARAMETER, "secp256r1");
    valid_p256(pt);
    pt[64] ^= 1; /* one bit off the curve */
    refuse_share(P256, pt, sizeof(pt), 20, 3, PK_TLS_ALERT_ILLEGAL_PARAMETER, "secp256r1");
    valid_p256(pt);
    memcpy(pt + 1, prime, 32); /* x = p */
    refuse_share(P256, pt, sizeof(pt), 16384, 1000, PK_TLS_ALERT_ILLEGAL_PARAMETER, "out of range");
    refuse_share(P256, pt, 33, 16384, 1000, PK_TLS_ALERT_ILLEGAL_PARAMETER, "33 bytes");
    refuse_share(P256, pt, 1, 16384, 1000, PK_TLS_ALERT_ILLEGAL_PARAMETER, "1 bytes");
}

static void x25519_shares(void **state)
{
    static const uint8_t order8[32] = {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae,
                                       0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
                                       0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd,
                                       0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00};
    uint8_t any[32];
    struct pk_hello_guard g;
    struct pk_buf wire;
    size_t at;

    (void)state;
    refuse_share(X25519, order8, 32, 16384, 5, PK_TLS_ALERT_ILLEGAL_PARAMETER, "small order");
    refuse_share(X25519, order8, 31, 16384, 5, PK_TLS_ALERT_ILLEGAL_PARAMETER, "not 32");
    memset(any, 0x42, sizeof(any));
    pk_buf_init(&wire, 1 << 16);
    hello_records(&wire, X25519, any, sizeof(any), 16384);
    pk_hello_guard_init(&g, PK_HELLO_PEER_CLIENT);
    assert_int_equal(feed(&g, &wire, 9, &at), PK_HELLO_MORE);
    pk_hello_guard_free(&g);
    pk_buf_free(&wire);
}

static void early_change_cipher_spec(void **state)
{
    struct pk_hello_guard g;

    (void)state;
    pk_hello_guard_init(&g, PK_HELLO_PEER_CLIENT);
    assert_int_equal(pk_hello_guard_feed(&g, ccs_record, 3), PK_HELLO_MORE);
    assert_int_equal(pk_hello_guard_feed(&g, ccs_record + 3, 3), PK_HELLO_REFUSE);
    assert_int_equal(g.alert, PK_TLS_ALERT_UNEXPECTED_MESSAGE);
    assert_non_null(strstr(g.why, "ChangeCipherSpec"));
    pk_hello_guard_free(&g);

    /* A handshake message other than a ClientHello first. */
    static const uint8_t finished[] = {22, 3, 3, 0, 4, 20, 0, 0, 0};
    pk_hello_guard_init(&g, PK_HELLO_PEER_CLIENT);
    assert_int_equal(pk_hello_guard_feed(&g, finished, sizeof(finished)), PK_HELLO_REFUSE);
    assert_int_equal(g.alert, PK_TLS_ALERT_UNEXPECTED_MESSAGE);
    pk_hello_guard_free(&g);
}

static void second_hello_and_tls12(void **state)
{
    uint8_t good[65], bad[65];
    struct pk_hello_guard g;
    struct pk_buf wire;
    size_t at;

    (void)state;
    valid_p256(good);
    memset(bad, 0, sizeof(bad));
    bad[0] = 4;
    /* No share, then (after the server's HelloRetryRequest) CCS and a bad share. */
    pk_buf_init(&wire, 1 << 16);
    hello_records(&wire, P256, NULL, 0, 16384);
    assert_int_equal(pk_buf_append(&wire, ccs_record, sizeof(ccs_record)), 0);
    hello_records(&wire, P256, bad, sizeof(bad), 50);
    pk_hello_guard_init(&g, PK_HELLO_PEER_CLIENT);
    assert_int_equal(feed(&g, &wire, 11, &at), PK_HELLO_REFUSE);
    assert_non_null(strstr(g.why, "ClientHello #2"));
    pk_hello_guard_free(&g);
    /* A good second hello ends the inspection. */
    pk_buf_reset(&wire);
    hello_records(&wire, P256, NULL, 0, 16384);
    hello_records(&wire, P256, good, sizeof(good), 16384);
    pk_hello_guard_init(&g, PK_HELLO_PEER_CLIENT);
    assert_int_equal(feed(&g, &wire, wire.len, &at), PK_HELLO_DONE);
    pk_hello_guard_free(&g);
    /* TLS 1.2: a ClientKeyExchange after the hello ends it too. */
    pk_buf_reset(&wire);
    hello_records(&wire, P256, good, sizeof(good), 16384);
    static const uint8_t cke[] = {22, 3, 3, 0, 5, 16, 0, 0, 1, 0};
    assert_int_equal(pk_buf_append(&wire, cke, sizeof(cke)), 0);
    pk_hello_guard_init(&g, PK_HELLO_PEER_CLIENT);
    assert_int_equal(feed(&g, &wire, wire.len, &at), PK_HELLO_DONE);
    pk_hello_guard_free(&g);
    pk_buf_free(&wire);
}

static void malformed_hellos(void **state)
{
    uint8_t good[65];
    struct pk_buf msg, wire;
    struct pk_hello_guard g;
    size_t at;

    (void)state;
    valid_p256(good);
    pk_buf_init(&msg, 1 << 16);
    pk_buf_init(&wire, 1 << 16);
    hello(&msg, P256, good, sizeof(good));
    /* Every truncation of the body, with the header's length adjusted, is a decode_error or a
     * hello without extensions (accepted). */
    for (size_t cut = 4; cut < msg.len; cut++) {
        uint8_t *m = pk_xmemdup(msg.data, cut);
        size_t body = cut - 4;
        m[1] = (uint8_t)(body >> 16);
        m[2] = (uint8_t)(body >> 8);
        m[3] = (uint8_t)body;
        pk_buf_reset(&wire);
        records(&wire, 22, m, cut, 16384);
        pk_hello_guard_init(&g, PK_HELLO_PEER_CLIENT);
        enum pk_hello_verdict v = feed(&g, &wire, wire.len, &at);
        if (v == PK_HELLO_REFUSE) {
            assert_int_equal(g.alert, PK_TLS_ALERT_DECODE_ERROR);
        } else {
            assert_int_equal(v, PK_HELLO_MORE);
            assert_int_equal(cut, 4 + 2 + 32 + 1 + 4 + 2); /* ends after compression */
        }
        pk_hello_guard_free(&g);
        free(m);
    }
    /* A hello that claims more than the guard buffers. */
    static const uint8_t huge[] = {22, 3, 3, 0, 4, 1, 0x10, 0, 0};
    pk_hello_guard_init(&g, PK_HELLO_PEER_CLIENT);
    assert_int_equal(pk_hello_guard_feed(&g, huge, sizeof(huge)), PK_HELLO_REFUSE);
    assert_int_equal(g.alert, PK_TLS_ALERT_DECODE_ERROR);
    pk_hello_guard_free(&g);
    pk_buf_free(&msg);
    pk_buf_free(&wire);
}

/* A TLS 1.3 ServerHello handshake message: with a key share (key_len > 0), or a
 * HelloRetryRequest selecting group (key_len 0). */
static void server_hello(struct pk_buf *out, unsigned group, const uint8_t *key, size_t key_len)
{
    static const uint8_t hrr_random[32] = {0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11,
                                           0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
                                           0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e,
                                           0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c};
    struct pk_buf body;

    pk_buf_init(&body, 1 << 16);
    put16(&body, 0x0303);
    if (key_len == 0) {
        assert_int_equal(pk_buf_append(&body, hrr_random, 32), 0);
    } else {
        uint8_t random[32];
        memset(random, 0x5a, sizeof(random));
        assert_int_equal(pk_buf_append(&body, random, 32), 0);
    }
    assert_int_equal(pk_buf_append(&body, "\0\x13\x01\0", 4), 0); /* session id, suite */
    put16(&body, 6 + 4 + (key_len > 0 ? 4 + key_len : 2));
    put16(&body, 43); /* supported_versions: TLS 1.3 */
    put16(&body, 2);
    put16(&body, 0x0304);
    put16(&body, 51); /* key_share */
    put16(&body, key_len > 0 ? 4 + key_len : 2);
    put16(&body, group);
    if (key_len > 0) {
        put16(&body, key_len);
        assert_int_equal(pk_buf_append(&body, key, key_len), 0);
    }
    uint8_t hdr[4] = {2, (uint8_t)(body.len >> 16), (uint8_t)(body.len >> 8), (uint8_t)body.len};
    assert_int_equal(pk_buf_append(out, hdr, 4), 0);
    assert_int_equal(pk_buf_append(out, body.data, body.len), 0);
    pk_buf_free(&body);
}

/* The client side: a server's ServerHello(s). */
static void server_flight(void **state)
{
    uint8_t good[65], bad[65];
    struct pk_buf msg, wire;
    struct pk_hello_guard g;
    size_t at;

    (void)state;
    valid_p256(good);
    memset(bad, 0, sizeof(bad));
    bad[0] = 4;
    pk_buf_init(&msg, 1 << 16);
    pk_buf_init(&wire, 1 << 16);

    /* A good ServerHello ends the inspection, even split in 3-byte reads. */
    server_hello(&msg, P256, good, sizeof(good));
    records(&wire, 22, msg.data, msg.len, 16384);
    pk_hello_guard_init(&g, PK_HELLO_PEER_SERVER);
    assert_int_equal(feed(&g, &wire, 3, &at), PK_HELLO_DONE);
    assert_true(at + 3 >= wire.len);
    pk_hello_guard_free(&g);
    /* The same bytes as a ClientHello are a handshake message of the wrong type. */
    pk_hello_guard_init(&g, PK_HELLO_PEER_CLIENT);
    assert_int_equal(feed(&g, &wire, 3, &at), PK_HELLO_REFUSE);
    assert_int_equal(g.alert, PK_TLS_ALERT_UNEXPECTED_MESSAGE);
    pk_hello_guard_free(&g);

    /* HelloRetryRequest, CCS, then a ServerHello with (0,0). */
    pk_buf_reset(&msg);
    pk_buf_reset(&wire);
    server_hello(&msg, P256, NULL, 0);
    records(&wire, 22, msg.data, msg.len, 16384);
    assert_int_equal(pk_buf_append(&wire, ccs_record, sizeof(ccs_record)), 0);
    pk_buf_reset(&msg);
    server_hello(&msg, P256, bad, sizeof(bad));
    records(&wire, 22, msg.data, msg.len, 30);
    pk_hello_guard_init(&g, PK_HELLO_PEER_SERVER);
    assert_int_equal(feed(&g, &wire, 1, &at), PK_HELLO_REFUSE);
    assert_int_equal(g.alert, PK_TLS_ALERT_ILLEGAL_PARAMETER);
    assert_non_null(strstr(g.why, "ServerHello #2"));
    pk_hello_guard_free(&g);

    /* CCS before the ServerHello. */
    pk_hello_guard_init(&g, PK_HELLO_PEER_SERVER);
    assert_int_equal(pk_hello_guard_feed(&g, ccs_record, sizeof(ccs_record)), PK_HELLO_REFUSE);
    assert_int_equal(g.alert, PK_TLS_ALERT_UNEXPECTED_MESSAGE);
    assert_non_null(strstr(g.why, "before the ServerHello"));
    pk_hello_guard_free(&g);

    pk_buf_free(&msg);
    pk_buf_free(&wire);
}

/* Real ClientHellos, from wolfSSL as a TLS 1.3 client with each key share, pass. */
static void wolfssl_client_hello_passes(void **state)
{
    static const int groups[] = {WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_X25519};
    uint8_t buf[4096];

    (void)state;
    for (size_t k = 0; k < PK_ARRAY_LEN(groups); k++) {
        size_t n = wolfssl_client_hello(wolfTLSv1_3_client_method(), groups[k], buf, sizeof(buf));
        struct pk_hello_guard g;
        pk_hello_guard_init(&g, PK_HELLO_PEER_CLIENT);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(pk_hello_guard_feed(&g, buf + i, 1), PK_HELLO_MORE);
        }
        pk_hello_guard_free(&g);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(valid_share_then_encrypted_flight),
            cmocka_unit_test(invalid_p256_shares),
            cmocka_unit_test(x25519_shares),
            cmocka_unit_test(early_change_cipher_spec),
            cmocka_unit_test(second_hello_and_tls12),
            cmocka_unit_test(malformed_hellos),
            cmocka_unit_test(server_flight),
            cmocka_unit_test(wolfssl_client_hello_passes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
