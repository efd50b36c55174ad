/* SPDX-License-Identifier: Apache-2.0 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>

/* cmocka.h needs the standard headers before it. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>
/* clang-format on */

#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/identity.h"
#include "sentry/creds.h"
#include "sentry/issue.h"

char tmpdir[512];

int tmpdir_create(const char *prefix)
{
    const char *base = getenv("PICKET_TEST_TMP");
    snprintf(tmpdir, sizeof(tmpdir), "%s/%s.XXXXXX", base != NULL ? base : "/tmp", prefix);
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

int tmpdir_remove(void)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int sh_status(const char *fmt, ...)
{
    char cmd[4096];
    char full[4700];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    snprintf(full, sizeof(full), "cd '%s' && (%s) >/dev/null 2>&1", tmpdir, cmd);
    return system(full);
}

void write_file(const char *name, const void *data, size_t len)
{
    char path[700];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

void slurp(const char *name, struct pk_buf *out)
{
    char path[700];
    uint8_t chunk[4096];
    size_t n;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "rb");
    assert_non_null(f);
    pk_buf_init(out, 1 << 20);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        assert_int_equal(pk_buf_append(out, chunk, n), 0);
    }
    fclose(f);
}

struct pk_pubkey *pub_of(const struct pk_key *key)
{
    struct pk_pubkey *pub = NULL;
    assert_int_equal(pk_key_public(key, &pub), 0);
    return pub;
}

struct pk_cert *issue(const struct pk_cert_template *t, const struct pk_key *subject,
                      const struct pk_cert *issuer, const struct pk_key *issuer_key)
{
    struct pk_pubkey *pub = pub_of(subject);
    struct pk_cert *cert = NULL;
    struct pk_err err = {{0}};
    int r = pk_cert_issue(t, pub, issuer, issuer_key, &cert, &err);

    if (r != 0) {
        fail_msg("pk_cert_issue: %d %s", r, err.msg);
    }
    pk_pubkey_free(pub);
    return cert;
}

void set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    assert_true(fl >= 0);
    assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

bool drain_nonblocking(int fd, struct pk_buf *out)
{
    uint8_t chunk[4096];
    for (;;) {
        ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
        if (n == 0) {
            return true;
        }
        if (n < 0) {
            assert_int_equal(errno, EAGAIN);
            return false;
        }
        assert_int_equal(pk_buf_append(out, chunk, (size_t)n), 0);
    }
}

struct pk_identity *workload_identity(struct pk_sentry_creds *creds, const char *spiffe_id,
                                      int64_t ttl)
{
    struct pk_key *key = NULL;
    struct pk_pubkey *pub = NULL;
    struct pk_sentry_issued issued;
    struct pk_certs chain = {0};
    struct pk_identity *id = NULL;
    struct pk_err err = {{0}};

    assert_int_equal(pk_key_generate(PK_KEY_P256, &key, &err), 0);
    assert_int_equal(pk_key_public(key, &pub), 0);
    assert_int_equal(
            pk_sentry_issue_workload(creds, pub, spiffe_id, time(NULL), ttl, 60, &issued, &err), 0);
    assert_int_equal(
            pk_certs_parse_pem(issued.chain_pem.data, issued.chain_pem.len, "chain", &chain, &err),
            0);
    struct pk_identity_params p = {
            .key = key, .chain = &chain, .anchors = &creds->roots, .source = "test"};
    int r = pk_identity_new(&p, time(NULL), &id, &err);
    if (r != 0) {
        fail_msg("pk_identity_new: %s", err.msg);
    }
    pk_certs_clear(&chain);
    pk_buf_free(&issued.chain_pem);
    pk_pubkey_free(pub);
    return id;
}

size_t wolfssl_client_hello(WOLFSSL_METHOD *method, int key_share_group, uint8_t *out, size_t cap)
{
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(method);
    WOLFSSL *ssl;
    int sv[2];
    ssize_t n;

    assert_non_null(ctx);
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
    /* Non-blocking: wolfSSL_connect sends the ClientHello and returns, wanting to read. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    ssl = wolfSSL_new(ctx);
    assert_non_null(ssl);
    wolfSSL_set_fd(ssl, sv[0]);
    if (key_share_group != 0) {
        assert_int_equal(wolfSSL_UseKeyShare(ssl, (word16)key_share_group), WOLFSSL_SUCCESS);
    }
    (void)wolfSSL_connect(ssl);
    n = recv(sv[1], out, cap, MSG_DONTWAIT);
    assert_true(n > 6);
    wolfSSL_free(ssl);
    wolfSSL_CTX_free(ctx);
    close(sv[0]);
    close(sv[1]);
    return (size_t)n;
}
