/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the Sentry CA's issuer credentials — trust anchors (ca.crt), issuer chain (issuer.crt)
 * and issuer key (issuer.key) — loaded and validated, or generated, as Dapr's Sentry does
 * (SENTRY-PROTOCOL.md §7).
 *
 * A pk_sentry_creds is immutable once built. The service holds one and replaces it whole on
 * reload; a set that fails validation never replaces a good one. */
#ifndef PK_SENTRY_CREDS_H
#define PK_SENTRY_CREDS_H

#include <limits.h>
#include <stdbool.h>
#include <time.h>

#include "common/buf.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/key.h"
#include "common/x509.h"

/* The largest credential file picket reads (a bundle of many roots fits comfortably). */
#define PK_SENTRY_CREDS_MAX_FILE (1024u * 1024u)

struct pk_sentry_creds_paths {
    char ca[PATH_MAX];          /* ca.crt: one or more self-signed roots */
    char issuer_cert[PATH_MAX]; /* issuer.crt: issuer first, optionally followed by its chain */
    char issuer_key[PATH_MAX];  /* issuer.key: SEC1 or PKCS#8, P-256 or Ed25519 */
};

struct pk_sentry_creds {
    struct pk_certs roots;        /* every certificate of ca.crt, all self-signed */
    struct pk_certs issuer_chain; /* issuer first; a trailing self-signed root is dropped */
    struct pk_key *issuer_key;
    struct pk_buf roots_pem; /* the roots re-encoded without comments (the response's
                              * trust_chain_certificates element) */
    struct pk_buf chain_pem; /* issuer_chain as PEM: appended to every workload leaf */
    time_t issuer_not_after; /* the issuer's NotAfter: no workload cert outlives it */
    time_t roots_not_after;  /* the earliest NotAfter among the roots */
};

/* Build the three paths from a directory and file names; an absolute name overrides the
 * directory (as Dapr 1.15+ does). PK_E_TOOBIG when a path does not fit. */
int pk_sentry_creds_paths_init(struct pk_sentry_creds_paths *paths, const char *dir,
                               const char *ca_name, const char *cert_name, const char *key_name)
        PK_MUST_USE;

/* Read and validate the three files:
 *  - ca.crt holds at least one certificate and every one is self-signed;
 *  - issuer.crt starts with the issuer, each certificate is signed by the next, and a trailing
 *    self-signed root is dropped; the issuer is a CA (BasicConstraints CA:TRUE, keyCertSign when
 *    a key usage is present);
 *  - issuer.key is a P-256 or Ed25519 key (SEC1 or PKCS#8) that matches the issuer's public key;
 *  - the issuer chains to one of the roots now (every element within its validity);
 *  - an EKU on the issuer or a root, when present, allows serverAuth (as Go's verifier demands).
 * Every failure names the file and the problem. */
int pk_sentry_creds_load(const struct pk_sentry_creds_paths *paths, struct pk_sentry_creds **out,
                         struct pk_err *err) PK_MUST_USE;

/* The checks of pk_sentry_creds_load on texts already in memory (borrowed): paths only name the
 * three parts in messages (the Secret's keys in Kubernetes). */
int pk_sentry_creds_parse(const struct pk_sentry_creds_paths *paths, struct pk_slice ca_text,
                          struct pk_slice cert_text, struct pk_slice key_text,
                          struct pk_sentry_creds **out, struct pk_err *err) PK_MUST_USE;

struct pk_sentry_creds_gen {
    const char *trust_domain;  /* root subject O=<trust domain> */
    const char *namespace_;    /* issuer subject O=spiffe://<td>/ns/<namespace>/dapr-sentry */
    enum pk_key_type key_type; /* P-256 (default) or Ed25519, for both root and issuer */
    time_t now;
    long skew_seconds; /* NotBefore = now - skew */
    long ttl_seconds;  /* NotAfter = now + ttl (Dapr: one year) */
};

/* Generate a new root and issuer as Dapr's Sentry does when credentials are missing, and write
 * ca.crt, issuer.crt and issuer.key atomically with mode 0600. The root key is not kept. On
 * success *out holds the new set (validated like a loaded one). */
int pk_sentry_creds_generate(const struct pk_sentry_creds_paths *paths,
                             const struct pk_sentry_creds_gen *gen, struct pk_sentry_creds **out,
                             struct pk_err *err) PK_MUST_USE;

/* Generate a new root and issuer like pk_sentry_creds_generate, into PEM buffers (appended;
 * key_pem should be a secret buffer) instead of files. Validate them with pk_sentry_creds_parse. */
int pk_sentry_creds_generate_pem(const struct pk_sentry_creds_gen *gen, struct pk_buf *root_pem,
                                 struct pk_buf *issuer_pem, struct pk_buf *key_pem,
                                 struct pk_err *err) PK_MUST_USE;

/* True when any of the three files is missing (then Sentry generates a new set). */
bool pk_sentry_creds_missing(const struct pk_sentry_creds_paths *paths);

struct pk_sentry_creds *pk_sentry_creds_free(struct pk_sentry_creds *creds);

#endif
