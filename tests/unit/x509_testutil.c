/* SPDX-License-Identifier: Apache-2.0 */
/* picket: what the common/x509 unit tests share: the templates of Dapr Sentry's profiles, a
 * root and issuer, and the two chain verifiers asked the same question. */
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

#include "x509_testutil.h"

#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/key.h"
#include "common/pem.h"
#include "common/sigmemo.h"
#include "common/x509.h"
#include "testutil.h"

/* A memo shared by every verify_both call of this program, as a context's is by its handshakes. */
static struct pk_sigmemo *shared_memo;

struct pk_cert_template root_tmpl(time_t now)
{
    struct pk_cert_template t = {
            .subject_o = TD,
            .not_before = now - 900,
            .not_after = now + 365 * 86400,
            .is_ca = true,
            .path_len = -1,
            .key_usage = PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN,
            .subject_key_id = true,
    };
    return t;
}

struct pk_cert_template issuer_tmpl(time_t now)
{
    struct pk_cert_template t = root_tmpl(now);
    t.subject_o = ISSUER_O;
    t.key_usage = PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN | PK_KU_CRL_SIGN;
    return t;
}

struct pk_cert_template leaf_tmpl(time_t nb, time_t na, const char *uri)
{
    struct pk_cert_template t = {
            .not_before = nb,
            .not_after = na,
            .key_usage = PK_KU_DIGITAL_SIGNATURE,
            .ext_key_usage = PK_EKU_SERVER_AUTH | PK_EKU_CLIENT_AUTH,
            .uri_san = uri,
    };
    return t;
}

void pki_make(struct pki *p, enum pk_key_type type)
{
    time_t now = time(NULL);
    struct pk_cert_template rt = root_tmpl(now);
    struct pk_cert_template it = issuer_tmpl(now);

    memset(p, 0, sizeof(*p));
    assert_int_equal(pk_key_generate(type, &p->root_key, NULL), 0);
    assert_int_equal(pk_key_generate(type, &p->iss_key, NULL), 0);
    p->root = issue(&rt, p->root_key, NULL, p->root_key);
    p->iss = issue(&it, p->iss_key, p->root, p->root_key);
    assert_int_equal(pk_certs_push_copy(&p->roots, p->root), 0);
    assert_int_equal(pk_certs_push_copy(&p->inter, p->iss), 0);
}

void pki_free(struct pki *p)
{
    pk_key_free(p->root_key);
    pk_key_free(p->iss_key);
    pk_cert_free(p->root);
    pk_cert_free(p->iss);
    pk_certs_clear(&p->roots);
    pk_certs_clear(&p->inter);
}

/* pk_x509_verify_chain, with the handshake's verifier asked the same question three ways (no
 * memo, a fresh memo, and the memo every earlier call has filled): each must give the same
 * answer, and the returned error is the full verifier's. */
int verify_both(const struct pk_cert *leaf, const struct pk_certs *inter,
                const struct pk_certs *roots, struct pk_err *err)
{
    struct pk_sigmemo *fresh = pk_sigmemo_new();
    struct pk_err fast_err = {{0}};
    int r = pk_x509_verify_chain(leaf, inter, roots, err);

    if (shared_memo == NULL) {
        shared_memo = pk_sigmemo_new();
    }
    assert_int_equal(pk_x509_verify_peer_chain(leaf, inter, roots, NULL, &fast_err), r);
    assert_int_equal(pk_x509_verify_peer_chain(leaf, inter, roots, fresh, &fast_err), r);
    assert_int_equal(pk_x509_verify_peer_chain(leaf, inter, roots, shared_memo, &fast_err), r);
    pk_sigmemo_free(fresh);
    return r;
}

void x509_testutil_free(void)
{
    shared_memo = pk_sigmemo_free(shared_memo);
}
