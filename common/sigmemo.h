/* SPDX-License-Identifier: Apache-2.0 */
/* picket: a bounded memo of certificate signatures already found valid.
 *
 * Whether a certificate's signature verifies with an issuer's public key is a pure function of
 * the two certificates' bytes, so it may be remembered: a key is SHA-256(subject DER) followed by
 * SHA-256(issuer DER), and its presence means "this subject's signature verified with this
 * issuer's key". Nothing else is remembered: dates, CA flags, key usage, path length, name
 * constraints and policy are the caller's to check on every use.
 *
 * One memo belongs to one TLS context (so it dies with that context's anchors) and is shared by
 * every thread that handshakes with it. It never blocks: each slot is a sequence lock whose
 * readers retry nothing (a slot being written reads as a miss) and whose writers skip a slot
 * another writer holds (an insert may be dropped; a memo may forget). It never grows: a fixed
 * number of sets of a few ways each, a new key replacing the ways of its set in turn. */
#ifndef PK_SIGMEMO_H
#define PK_SIGMEMO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compiler.h"

#define PK_SIGMEMO_KEY_LEN 64 /* SHA-256(subject DER) || SHA-256(issuer DER) */
#define PK_SIGMEMO_SETS    16
#define PK_SIGMEMO_WAYS    4

struct pk_sigmemo;

struct pk_sigmemo_key {
    uint8_t b[PK_SIGMEMO_KEY_LEN];
};

/* A new, empty memo (aborts when out of memory). Free with pk_sigmemo_free. */
struct pk_sigmemo *pk_sigmemo_new(void);
/* Takes memo. NULL is fine. Returns NULL. */
struct pk_sigmemo *pk_sigmemo_free(struct pk_sigmemo *memo);

/* The key for subject's signature by issuer (both DER, borrowed). */
void pk_sigmemo_key_of(const uint8_t *subject_der, size_t subject_len, const uint8_t *issuer_der,
                       size_t issuer_len, struct pk_sigmemo_key *out);

/* True when key was inserted and is still remembered. Borrows both; any thread. */
bool pk_sigmemo_contains(struct pk_sigmemo *memo, const struct pk_sigmemo_key *key);

/* Remember key (borrowed), replacing the oldest way of its set. May silently do nothing when
 * another thread is writing the same slot. Any thread. */
void pk_sigmemo_insert(struct pk_sigmemo *memo, const struct pk_sigmemo_key *key);

/* How many keys the memo holds now (for tests; exact only when no thread is writing). */
size_t pk_sigmemo_count(struct pk_sigmemo *memo);

#endif
