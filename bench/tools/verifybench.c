/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the cost of deciding one peer chain, for bench/verify.
 *
 *   verifybench MODE ITERATIONS
 *
 * builds a chain in the shape Dapr Sentry issues (a P-256 root, an issuer below it, a workload
 * leaf with one URI SAN below that), then runs MODE ITERATIONS times inside bench_loop, which
 * bench/verify counts with callgrind (--toggle-collect=bench_loop) or times on a pinned core:
 *
 *   full   pk_x509_verify_chain(leaf, {issuer}, {root}): wolfSSL's certificate manager, then
 *          our own walk of the path (what verify_cb did before)
 *   once   pk_x509_verify_peer_chain without a memo: each signature checked once
 *   memo   pk_x509_verify_peer_chain with a warm memo (a repeat peer's issuer): only the leaf's
 *          signature is checked
 *   ecdsa  one bare P-256 ECDSA verification (pk_pubkey_verify over a TBS-sized message), the
 *          floor per certificate
 *   cb-before, cb-after
 *          all verify_cb does with the chain, before and after (warm memo): parse the leaf's and
 *          the issuer's DER, then (before) copy them and pk_x509_verify_chain, or (after)
 *          pk_x509_verify_peer_chain with the context's memo
 *
 * and prints the wall-clock nanoseconds per iteration (CLOCK_MONOTONIC). The first four modes
 * take certificates parsed outside the loop. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/key.h"
#include "common/sigmemo.h"
#include "common/x509.h"

enum mode { MODE_FULL, MODE_ONCE, MODE_MEMO, MODE_ECDSA, MODE_CB_BEFORE, MODE_CB_AFTER };

struct fixture {
    struct pk_cert *leaf;
    struct pk_certs inter;
    struct pk_certs roots;
    struct pk_sigmemo *memo;
    struct pk_pubkey *pub;
    struct pk_buf msg;
    struct pk_buf sig;
};

int bench_loop(enum mode mode, long n, struct fixture *f);

/* verify_cb's work on the chain a peer sent (leaf, issuer), before or after. */
static int callback_work(bool before, struct fixture *f)
{
    struct pk_slice der[2] = {pk_cert_der(f->leaf), pk_cert_der(f->inter.v[0])};
    struct pk_cert *sent[2] = {NULL, NULL};
    struct pk_certs copies = {NULL, 0};
    int r = 0;

    for (size_t i = 0; r == 0 && i < 2; i++) {
        r = pk_cert_parse_der(der[i].ptr, der[i].len, "peer certificate", &sent[i], NULL);
    }
    if (r == 0 && before) {
        /* The former verify_peer_chain kept a copy of each parsed certificate. */
        for (size_t i = 0; r == 0 && i < 2; i++) {
            r = pk_certs_push_copy(&copies, sent[i]);
        }
        struct pk_certs above = {copies.v + 1, 1};
        r = r != 0 ? r : pk_x509_verify_chain(copies.v[0], &above, &f->roots, NULL);
    } else if (r == 0) {
        struct pk_certs above = {sent + 1, 1};
        r = pk_x509_verify_peer_chain(sent[0], &above, &f->roots, f->memo, NULL);
    }
    pk_certs_clear(&copies);
    pk_cert_free(sent[0]);
    pk_cert_free(sent[1]);
    return r;
}

static void die(const char *what, const struct pk_err *err)
{
    fprintf(stderr, "verifybench: %s: %s\n", what, err != NULL ? err->msg : "failed");
    exit(1);
}

static struct pk_cert *issue_or_die(const struct pk_cert_template *t, const struct pk_key *subject,
                                    const struct pk_cert *issuer, const struct pk_key *issuer_key)
{
    struct pk_pubkey *pub = NULL;
    struct pk_cert *cert = NULL;
    struct pk_err err = {{0}};

    if (pk_key_public(subject, &pub) != 0 ||
        pk_cert_issue(t, pub, issuer, issuer_key, &cert, &err) != 0) {
        die("issuing a certificate", &err);
    }
    pk_pubkey_free(pub);
    return cert;
}

static void fixture_make(struct fixture *f)
{
    struct pk_key *root_key = NULL, *iss_key = NULL, *leaf_key = NULL;
    struct pk_err err = {{0}};
    time_t now = time(NULL);

    memset(f, 0, sizeof(*f));
    if (pk_key_generate(PK_KEY_P256, &root_key, &err) != 0 ||
        pk_key_generate(PK_KEY_P256, &iss_key, &err) != 0 ||
        pk_key_generate(PK_KEY_P256, &leaf_key, &err) != 0) {
        die("generating keys", &err);
    }
    struct pk_cert_template ca = {
            .subject_o = "example.test",
            .not_before = now - 900,
            .not_after = now + 86400,
            .is_ca = true,
            .path_len = -1,
            .key_usage = PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_CERT_SIGN | PK_KU_CRL_SIGN,
            .subject_key_id = true,
    };
    struct pk_cert *root = issue_or_die(&ca, root_key, NULL, root_key);
    ca.subject_o = "spiffe://example.test/ns/dapr-system/dapr-sentry";
    struct pk_cert *iss = issue_or_die(&ca, iss_key, root, root_key);
    struct pk_cert_template lt = {
            .not_before = now - 900,
            .not_after = now + 86400,
            .key_usage = PK_KU_DIGITAL_SIGNATURE | PK_KU_KEY_ENCIPHERMENT,
            .ext_key_usage = PK_EKU_SERVER_AUTH | PK_EKU_CLIENT_AUTH,
            .uri_san = "spiffe://example.test/ns/default/frontend",
    };
    f->leaf = issue_or_die(&lt, leaf_key, iss, iss_key);
    if (pk_certs_push_copy(&f->inter, iss) != 0 || pk_certs_push_copy(&f->roots, root) != 0) {
        die("copying certificates", NULL);
    }
    f->memo = pk_sigmemo_new();
    if (pk_x509_verify_peer_chain(f->leaf, &f->inter, &f->roots, f->memo, &err) != 0 ||
        pk_x509_verify_chain(f->leaf, &f->inter, &f->roots, &err) != 0) {
        die("the chain does not verify", &err);
    }
    /* The bare verification: a message as long as the leaf, signed by the issuer's key. */
    struct pk_slice der = pk_cert_der(f->leaf);
    pk_buf_init(&f->msg, der.len);
    pk_buf_init(&f->sig, 256);
    if (pk_buf_append(&f->msg, der.ptr, der.len) != 0 || pk_key_public(iss_key, &f->pub) != 0 ||
        pk_key_sign(iss_key, f->msg.data, f->msg.len, &f->sig) != 0) {
        die("signing", NULL);
    }
    pk_cert_free(root);
    pk_cert_free(iss);
    pk_key_free(root_key);
    pk_key_free(iss_key);
    pk_key_free(leaf_key);
}

/* Not static and not inlined, so callgrind can count exactly this (--toggle-collect). */
__attribute__((noinline)) int bench_loop(enum mode mode, long n, struct fixture *f)
{
    int bad = 0;

    for (long i = 0; i < n; i++) {
        switch (mode) {
        case MODE_FULL:
            bad |= pk_x509_verify_chain(f->leaf, &f->inter, &f->roots, NULL);
            break;
        case MODE_ONCE:
            bad |= pk_x509_verify_peer_chain(f->leaf, &f->inter, &f->roots, NULL, NULL);
            break;
        case MODE_MEMO:
            bad |= pk_x509_verify_peer_chain(f->leaf, &f->inter, &f->roots, f->memo, NULL);
            break;
        case MODE_ECDSA:
            bad |= pk_pubkey_verify(f->pub, PK_SIG_ECDSA_SHA256, f->msg.data, f->msg.len,
                                    f->sig.data, f->sig.len);
            break;
        case MODE_CB_BEFORE:
        case MODE_CB_AFTER:
            bad |= callback_work(mode == MODE_CB_BEFORE, f);
            break;
        }
    }
    return bad;
}

int main(int argc, char **argv)
{
    static const char *const names[] = {"full", "once", "memo", "ecdsa", "cb-before", "cb-after"};
    struct fixture f;
    struct timespec t0, t1;
    int mode = -1;
    long n;

    for (int i = 0; argc == 3 && i < (int)(sizeof(names) / sizeof(names[0])); i++) {
        if (strcmp(argv[1], names[i]) == 0) {
            mode = i;
        }
    }
    n = argc == 3 ? strtol(argv[2], NULL, 10) : 0;
    if (mode < 0 || n <= 0) {
        fprintf(stderr, "usage: verifybench full|once|memo|ecdsa|cb-before|cb-after ITERATIONS\n");
        return 2;
    }
    fixture_make(&f);
    /* One round outside the count: wolfSSL's per-thread caches warm up as in a running proxy. */
    if (bench_loop((enum mode)mode, 1, &f) != 0) {
        die("the warm-up round failed", NULL);
    }
    unsigned long sigs = pk_x509__signature_checks();
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (bench_loop((enum mode)mode, n, &f) != 0) {
        die("a verification failed", NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    printf("mode=%s iterations=%ld ns_per_iteration=%.0f own_signature_checks_per_iteration=%.2f\n",
           names[mode], n, ns / (double)n,
           (double)(pk_x509__signature_checks() - sigs) / (double)n);
    pk_sigmemo_free(f.memo);
    pk_pubkey_free(f.pub);
    pk_buf_free(&f.msg);
    pk_buf_free(&f.sig);
    pk_cert_free(f.leaf);
    pk_certs_clear(&f.inter);
    pk_certs_clear(&f.roots);
    return 0;
}
