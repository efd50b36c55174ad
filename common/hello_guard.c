/* SPDX-License-Identifier: Apache-2.0 */
/* picket: check a TLS peer's cleartext flight before wolfSSL reads it. */
#include "hello_guard.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "err.h"
#include "key.h"
#include "log.h"
#include "mem.h"

#define RECORD_CHANGE_CIPHER_SPEC 20
#define RECORD_HANDSHAKE          22
#define RECORD_MAX_PLAINTEXT      16384 /* RFC 8446 §5.1 */
#define HANDSHAKE_CLIENT_HELLO    1
#define HANDSHAKE_SERVER_HELLO    2
#define HANDSHAKE_HEADER          4
/* A hello is a few hundred bytes, a few KiB with post-quantum shares; wolfSSL itself
 * refuses one over about 32 KiB. */
#define CLIENT_HELLO_MAX (64u * 1024u)

#define EXT_KEY_SHARE   51
#define GROUP_SECP256R1 23
#define GROUP_X25519    29
#define X25519_LEN      32

enum { ST_INSPECT, ST_DONE, ST_REFUSED };

/* The HelloRetryRequest's ServerHello.random (RFC 8446 §4.1.3). */
static const uint8_t hrr_random[32] = {0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11,
                                       0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
                                       0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e,
                                       0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c};

static const char *hello_name(const struct pk_hello_guard *g)
{
    return g->from_server ? "ServerHello" : "ClientHello";
}

/* X25519 u-coordinates of order 8 (little-endian), the ones wolfSSL's
 * wc_curve25519_check_public lets through: with any clamped scalar they give the all-zero
 * shared secret that RFC 8446 §7.4.2 and RFC 7748 §6.1 tell a peer to refuse. (0, 1 and the
 * values from p-1 up, the other small-order encodings, wolfSSL refuses itself.) */
static const uint8_t x25519_order8[2][X25519_LEN] = {
        {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3,
         0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32,
         0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
        {0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1,
         0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c,
         0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
};

void pk_hello_guard_init(struct pk_hello_guard *g, enum pk_hello_peer peer)
{
    memset(g, 0, sizeof(*g));
    g->state = ST_INSPECT;
    g->from_server = peer == PK_HELLO_PEER_SERVER;
    pk_buf_init(&g->message, CLIENT_HELLO_MAX + HANDSHAKE_HEADER);
}

void pk_hello_guard_free(struct pk_hello_guard *g)
{
    pk_buf_free(&g->message);
}

void pk_hello_guard_alert(const struct pk_hello_guard *g, uint8_t out[PK_TLS_ALERT_RECORD_LEN])
{
    /* alert(21), legacy_record_version 3.3, length 2, fatal(2), description */
    const uint8_t rec[PK_TLS_ALERT_RECORD_LEN] = {21, 3, 3, 0, 2, 2, g->alert};
    memcpy(out, rec, sizeof(rec));
}

static enum pk_hello_verdict refuse(struct pk_hello_guard *g, uint8_t alert, const char *fmt, ...)
        PK_PRINTF(3, 4);

static enum pk_hello_verdict refuse(struct pk_hello_guard *g, uint8_t alert, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(g->why, sizeof(g->why), fmt, ap);
    va_end(ap);
    g->alert = alert;
    g->state = ST_REFUSED;
    pk_buf_free(&g->message);
    return PK_HELLO_REFUSE;
}

static enum pk_hello_verdict done(struct pk_hello_guard *g)
{
    g->state = ST_DONE;
    pk_buf_free(&g->message);
    return PK_HELLO_DONE;
}

/* A bounds-checked reader over one message. */
struct reader {
    const uint8_t *p;
    size_t left;
};

static bool take(struct reader *r, size_t n, const uint8_t **out)
{
    if (r->left < n) {
        return false;
    }
    *out = r->p;
    r->p += n;
    r->left -= n;
    return true;
}

static bool take_u8(struct reader *r, size_t *v)
{
    const uint8_t *p;
    if (!take(r, 1, &p)) {
        return false;
    }
    *v = p[0];
    return true;
}

static bool take_u16(struct reader *r, size_t *v)
{
    const uint8_t *p;
    if (!take(r, 2, &p)) {
        return false;
    }
    *v = (size_t)p[0] << 8 | p[1];
    return true;
}

/* A length-prefixed vector (1 or 2 bytes of length) as a sub-reader. */
static bool take_vector(struct reader *r, int len_bytes, struct reader *sub)
{
    size_t n;
    if (!(len_bytes == 1 ? take_u8(r, &n) : take_u16(r, &n))) {
        return false;
    }
    sub->left = n;
    return take(r, n, &sub->p);
}

static enum pk_hello_verdict check_share(struct pk_hello_guard *g, size_t group, const uint8_t *key,
                                         size_t len)
{
    if (group == GROUP_SECP256R1) {
        struct pk_pubkey *pub = NULL;
        struct pk_err err = {{0}};
        int r = pk_pubkey_from_raw(PK_KEY_P256, key, len, &pub, &err);
        pk_pubkey_free(pub);
        if (r != 0) {
            return refuse(g, PK_TLS_ALERT_ILLEGAL_PARAMETER,
                          "%s #%u: invalid secp256r1 key share (%zu bytes): %.80s", hello_name(g),
                          g->hellos, len, err.msg);
        }
    } else if (group == GROUP_X25519) {
        if (len != X25519_LEN) {
            return refuse(g, PK_TLS_ALERT_ILLEGAL_PARAMETER,
                          "%s #%u: x25519 key share has %zu bytes, not 32", hello_name(g),
                          g->hellos, len);
        }
        for (size_t i = 0; i < PK_ARRAY_LEN(x25519_order8); i++) {
            if (memcmp(key, x25519_order8[i], X25519_LEN) == 0) {
                return refuse(g, PK_TLS_ALERT_ILLEGAL_PARAMETER,
                              "%s #%u: x25519 key share is a point of small order", hello_name(g),
                              g->hellos);
            }
        }
    }
    return PK_HELLO_MORE;
}

/* A ClientHello's key_share: a list of entries. A ServerHello's: one entry, or in a
 * HelloRetryRequest only the selected group (no key). */
static enum pk_hello_verdict check_key_share(struct pk_hello_guard *g, struct reader ext,
                                             bool retry_request)
{
    struct reader shares = ext;

    if (retry_request) {
        return PK_HELLO_MORE;
    }
    if (!g->from_server && (!take_vector(&ext, 2, &shares) || ext.left != 0)) {
        return refuse(g, PK_TLS_ALERT_DECODE_ERROR, "%s #%u: malformed key_share", hello_name(g),
                      g->hellos);
    }
    while (shares.left > 0) {
        struct reader key;
        size_t group;
        if (!take_u16(&shares, &group) || !take_vector(&shares, 2, &key) || key.left == 0 ||
            (g->from_server && shares.left != 0)) {
            return refuse(g, PK_TLS_ALERT_DECODE_ERROR, "%s #%u: malformed key_share entry",
                          hello_name(g), g->hellos);
        }
        enum pk_hello_verdict v = check_share(g, group, key.p, key.left);
        if (v != PK_HELLO_MORE) {
            return v;
        }
    }
    return PK_HELLO_MORE;
}

/* body: a ClientHello or ServerHello after its handshake header (RFC 8446 §4.1.2, §4.1.3;
 * TLS 1.2's are prefixes of them, extensions optional). *retry_request: it is a
 * HelloRetryRequest. */
static enum pk_hello_verdict check_hello(struct pk_hello_guard *g, const uint8_t *body, size_t len,
                                         bool *retry_request)
{
    struct reader r = {body, len};
    struct reader skip, exts;
    const uint8_t *fixed, *random;

    /* legacy_version and random; session id; then the cipher suites and compression methods a
     * client offers, or the one suite and method a server chose. */
    bool ok = take(&r, 2, &fixed) && take(&r, 32, &random) && take_vector(&r, 1, &skip) &&
              skip.left <= 32;
    if (ok && g->from_server) {
        ok = take(&r, 3, &fixed);
    } else if (ok) {
        ok = take_vector(&r, 2, &skip) && take_vector(&r, 1, &skip);
    }
    if (!ok) {
        return refuse(g, PK_TLS_ALERT_DECODE_ERROR, "%s #%u does not parse", hello_name(g),
                      g->hellos);
    }
    *retry_request = g->from_server && memcmp(random, hrr_random, sizeof(hrr_random)) == 0;
    if (r.left == 0) {
        return PK_HELLO_MORE; /* no extensions: no key share */
    }
    if (!take_vector(&r, 2, &exts) || r.left != 0) {
        return refuse(g, PK_TLS_ALERT_DECODE_ERROR, "%s #%u: extensions do not parse",
                      hello_name(g), g->hellos);
    }
    while (exts.left > 0) {
        struct reader ext;
        size_t type;
        if (!take_u16(&exts, &type) || !take_vector(&exts, 2, &ext)) {
            return refuse(g, PK_TLS_ALERT_DECODE_ERROR, "%s #%u: extensions do not parse",
                          hello_name(g), g->hellos);
        }
        if (type == EXT_KEY_SHARE) {
            enum pk_hello_verdict v = check_key_share(g, ext, *retry_request);
            if (v != PK_HELLO_MORE) {
                return v;
            }
        }
    }
    return PK_HELLO_MORE;
}

/* Handle the handshake bytes gathered so far: complete messages are checked and consumed. */
static enum pk_hello_verdict handshake_bytes(struct pk_hello_guard *g)
{
    const unsigned want = g->from_server ? HANDSHAKE_SERVER_HELLO : HANDSHAKE_CLIENT_HELLO;

    while (g->message.len > 0) {
        const uint8_t *m = g->message.data;
        if (m[0] != want) {
            if (g->hellos == 0) {
                return refuse(g, PK_TLS_ALERT_UNEXPECTED_MESSAGE,
                              "handshake message type %u before the %s", m[0], hello_name(g));
            }
            return done(g); /* TLS 1.2's plaintext flight: nothing more to inspect */
        }
        if (g->message.len < HANDSHAKE_HEADER) {
            return PK_HELLO_MORE;
        }
        size_t len = (size_t)m[1] << 16 | (size_t)m[2] << 8 | m[3];
        if (len > CLIENT_HELLO_MAX) {
            return refuse(g, PK_TLS_ALERT_DECODE_ERROR, "%s of %zu bytes is too large",
                          hello_name(g), len);
        }
        if (g->message.len < HANDSHAKE_HEADER + len) {
            return PK_HELLO_MORE;
        }
        bool retry_request = false;
        g->hellos++;
        enum pk_hello_verdict v = check_hello(g, m + HANDSHAKE_HEADER, len, &retry_request);
        if (v != PK_HELLO_MORE) {
            return v;
        }
        /* At most one HelloRetryRequest: after the second ClientHello, or the ServerHello that
         * is not a retry request, the rest is encrypted (or TLS 1.2's). */
        if (g->hellos == 2 || (g->from_server && !retry_request)) {
            return done(g);
        }
        pk_buf_consume(&g->message, HANDSHAKE_HEADER + len);
    }
    return PK_HELLO_MORE;
}

enum pk_hello_verdict pk_hello_guard_feed(struct pk_hello_guard *g, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (g->state == ST_DONE) {
            return PK_HELLO_DONE;
        }
        if (g->state == ST_REFUSED) {
            return PK_HELLO_REFUSE;
        }
        if (g->record_left == 0) {
            /* A record header. */
            size_t want = sizeof(g->header) - g->header_len;
            size_t k = PK_MIN(want, n);
            memcpy(g->header + g->header_len, p, k);
            g->header_len += k;
            p += k;
            n -= k;
            if (g->header_len < sizeof(g->header)) {
                return PK_HELLO_MORE;
            }
            g->header_len = 0;
            g->record_type = g->header[0];
            g->record_left = (size_t)g->header[3] << 8 | g->header[4];
            if (g->record_type == RECORD_CHANGE_CIPHER_SPEC && g->hellos == 0) {
                return refuse(g, PK_TLS_ALERT_UNEXPECTED_MESSAGE, "ChangeCipherSpec before the %s",
                              hello_name(g));
            }
            if ((g->record_type != RECORD_HANDSHAKE &&
                 g->record_type != RECORD_CHANGE_CIPHER_SPEC) ||
                g->record_left > RECORD_MAX_PLAINTEXT) {
                /* The encrypted part begins (or a record wolfSSL refuses on its own). */
                return done(g);
            }
            continue;
        }
        size_t k = PK_MIN(g->record_left, n);
        if (g->record_type == RECORD_HANDSHAKE) {
            if (pk_buf_append(&g->message, p, k) != 0) {
                return refuse(g, PK_TLS_ALERT_DECODE_ERROR, "ClientHello is too large");
            }
        }
        g->record_left -= k;
        p += k;
        n -= k;
        if (g->record_type == RECORD_HANDSHAKE) {
            enum pk_hello_verdict v = handshake_bytes(g);
            if (v != PK_HELLO_MORE) {
                return v;
            }
        }
    }
    return g->state == ST_DONE      ? PK_HELLO_DONE
           : g->state == ST_REFUSED ? PK_HELLO_REFUSE
                                    : PK_HELLO_MORE;
}

struct pk_hello_guard *pk_hello_guard_new(enum pk_hello_peer peer)
{
    struct pk_hello_guard *g = pk_xmalloc(sizeof(*g));
    pk_hello_guard_init(g, peer);
    return g;
}

void pk_hello_guard_destroy(struct pk_hello_guard **g)
{
    if (*g != NULL) {
        pk_hello_guard_free(*g);
        free(*g);
        *g = NULL;
    }
}

enum pk_hello_verdict pk_hello_guard_pass(struct pk_hello_guard **g, int fd, const void *buf,
                                          size_t n, char *why, size_t why_len)
{
    uint8_t alert[PK_TLS_ALERT_RECORD_LEN];

    if (*g == NULL) {
        return PK_HELLO_DONE;
    }
    enum pk_hello_verdict v = pk_hello_guard_feed(*g, buf, n);
    if (v == PK_HELLO_MORE) {
        return v;
    }
    if (v == PK_HELLO_REFUSE) {
        pk_hello_guard_alert(*g, alert);
        if (send(fd, alert, sizeof(alert), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
            PK_LOG_DEBUG("sending a TLS alert failed: %s", strerror(errno));
        }
        snprintf(why, why_len, "%s", (*g)->why);
    }
    pk_hello_guard_destroy(g);
    return v;
}
