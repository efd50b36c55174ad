/* SPDX-License-Identifier: Apache-2.0 */
/* picket: helpers the cmocka tests share — a scratch directory, shell commands run in it, files
 * in and out of it, and certificates issued by picket's own pk_cert_issue. Every helper fails
 * the running test (cmocka) on error rather than returning one, except where it says so. */
#ifndef PK_TESTS_TESTUTIL_H
#define PK_TESTS_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "common/key.h"
#include "common/x509.h"

struct pk_identity;
struct pk_sentry_creds;

/* The scratch directory of the running test program, set by tmpdir_create. */
extern char tmpdir[512];

/* Create tmpdir as $PICKET_TEST_TMP (or /tmp) / prefix.XXXXXX; remove it with everything in
 * it. Both return 0 or -1, as cmocka group setups and teardowns do. */
int tmpdir_create(const char *prefix);
int tmpdir_remove(void);

/* Run a shell command (printf format) in tmpdir, output discarded; its exit status. */
int sh_status(const char *fmt, ...) PK_PRINTF(1, 2);
/* The same, and the test fails unless it exits 0. */
#define sh(...) assert_int_equal(sh_status(__VA_ARGS__), 0)

/* Write or read the file tmpdir/name (read: up to 1 MiB into a new out). */
void write_file(const char *name, const void *data, size_t len);
void slurp(const char *name, struct pk_buf *out);

/* Make fd non-blocking; the test fails if it cannot. */
void set_nonblocking(int fd);
/* Append everything readable now on the non-blocking socket fd to out; true at EOF. */
bool drain_nonblocking(int fd, struct pk_buf *out);

/* The public half of key (free with pk_pubkey_free). */
struct pk_pubkey *pub_of(const struct pk_key *key);
/* A certificate for subject's key from template t, signed by issuer_key (issuer NULL:
 * self-signed). */
struct pk_cert *issue(const struct pk_cert_template *t, const struct pk_key *subject,
                      const struct pk_cert *issuer, const struct pk_key *issuer_key);

/* A new workload identity for spiffe_id, valid for ttl seconds from now: a fresh P-256 key and
 * a chain issued by creds (borrowed), with creds' roots as anchors. */
struct pk_identity *workload_identity(struct pk_sentry_creds *creds, const char *spiffe_id,
                                      int64_t ttl);

/* The first bytes wolfSSL sends as a client of method (taken), read from a socketpair: its
 * ClientHello. key_share_group: a WOLFSSL_ECC_* group to send a key share for, 0 for wolfSSL's
 * default. */
size_t wolfssl_client_hello(WOLFSSL_METHOD *method, int key_share_group, uint8_t *out, size_t cap);

#endif
