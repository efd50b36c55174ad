/* SPDX-License-Identifier: Apache-2.0 */
/* picket: a bounded memo of certificate signatures already found valid.
 *
 * Implementation notes
 *
 * Each slot is a sequence lock over eight 64-bit words of key: the sequence is 0 while the slot
 * is empty, odd while a writer fills it, and even (and non-zero) when it holds a key. A reader
 * loads the sequence (acquire), the words (relaxed atomics, so a concurrent write is a stale
 * read and not a data race), then an acquire fence and the sequence again; it counts a hit only
 * when both sequences are the same even, non-zero value and every word matched. A writer claims
 * a slot by moving its sequence from even to odd with a compare-and-swap; if another writer
 * holds it, the insert is dropped. This is the seqlock of Boehm, "Can seqlocks get along with
 * programming language memory models?" (MSPC 2012), with the writer's exclusion done by CAS.
 *
 * Why one shared memo and not one per worker thread: the proxy's workers share a context, and a
 * shared memo lets the first handshake on any worker spare every other worker the same
 * verification, with no worker index to pass through common/tls. Lookups are a few loads; the
 * rare insert is one CAS. The memo is bounded (PK_SIGMEMO_SETS x PK_SIGMEMO_WAYS slots) and the
 * caller decides what may enter: see pk_x509_verify_peer_chain. */
#include "sigmemo.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
/* clang-format off */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha256.h>
/* clang-format on */

#include "mem.h"

#define KEY_WORDS (PK_SIGMEMO_KEY_LEN / 8)

struct slot {
    _Atomic uint64_t seq;
    _Atomic uint64_t word[KEY_WORDS];
};

struct set {
    struct slot way[PK_SIGMEMO_WAYS];
    atomic_uint next; /* the way the next insert replaces */
};

struct pk_sigmemo {
    struct set sets[PK_SIGMEMO_SETS];
};

struct pk_sigmemo *pk_sigmemo_new(void)
{
    struct pk_sigmemo *memo = pk_xcalloc(1, sizeof(*memo));

    for (size_t s = 0; s < PK_SIGMEMO_SETS; s++) {
        atomic_init(&memo->sets[s].next, 0);
        for (size_t w = 0; w < PK_SIGMEMO_WAYS; w++) {
            atomic_init(&memo->sets[s].way[w].seq, 0);
            for (size_t i = 0; i < KEY_WORDS; i++) {
                atomic_init(&memo->sets[s].way[w].word[i], 0);
            }
        }
    }
    return memo;
}

struct pk_sigmemo *pk_sigmemo_free(struct pk_sigmemo *memo)
{
    free(memo);
    return NULL;
}

void pk_sigmemo_key_of(const uint8_t *subject_der, size_t subject_len, const uint8_t *issuer_der,
                       size_t issuer_len, struct pk_sigmemo_key *out)
{
    /* Only fails for bad arguments; certificates are at most PK_PEM_MAX_DER bytes. */
    int r = wc_Sha256Hash(subject_der, (word32)subject_len, out->b);
    PK_ASSERT(r == 0);
    r = wc_Sha256Hash(issuer_der, (word32)issuer_len, out->b + WC_SHA256_DIGEST_SIZE);
    PK_ASSERT(r == 0);
}

static void key_words(const struct pk_sigmemo_key *key, uint64_t words[KEY_WORDS])
{
    memcpy(words, key->b, PK_SIGMEMO_KEY_LEN);
}

/* The set is chosen by the subject's digest: the first byte of a SHA-256 output. */
static struct set *set_of(struct pk_sigmemo *memo, const struct pk_sigmemo_key *key)
{
    return &memo->sets[key->b[0] % PK_SIGMEMO_SETS];
}

static bool slot_holds(struct slot *slot, const uint64_t words[KEY_WORDS])
{
    uint64_t before = atomic_load_explicit(&slot->seq, memory_order_acquire);
    bool same = true;

    if (before == 0 || (before & 1) != 0) {
        return false;
    }
    for (size_t i = 0; i < KEY_WORDS; i++) {
        same &= atomic_load_explicit(&slot->word[i], memory_order_relaxed) == words[i];
    }
    atomic_thread_fence(memory_order_acquire);
    return same && atomic_load_explicit(&slot->seq, memory_order_relaxed) == before;
}

bool pk_sigmemo_contains(struct pk_sigmemo *memo, const struct pk_sigmemo_key *key)
{
    uint64_t words[KEY_WORDS];
    struct set *set = set_of(memo, key);

    key_words(key, words);
    for (size_t w = 0; w < PK_SIGMEMO_WAYS; w++) {
        if (slot_holds(&set->way[w], words)) {
            return true;
        }
    }
    return false;
}

void pk_sigmemo_insert(struct pk_sigmemo *memo, const struct pk_sigmemo_key *key)
{
    uint64_t words[KEY_WORDS];
    struct set *set = set_of(memo, key);

    key_words(key, words);
    for (size_t w = 0; w < PK_SIGMEMO_WAYS; w++) {
        if (slot_holds(&set->way[w], words)) {
            return;
        }
    }
    unsigned way = atomic_fetch_add_explicit(&set->next, 1, memory_order_relaxed) % PK_SIGMEMO_WAYS;
    struct slot *slot = &set->way[way];
    uint64_t seq = atomic_load_explicit(&slot->seq, memory_order_relaxed);
    if ((seq & 1) != 0 ||
        !atomic_compare_exchange_strong_explicit(&slot->seq, &seq, seq + 1, memory_order_relaxed,
                                                 memory_order_relaxed)) {
        return; /* another writer has it */
    }
    /* Readers that see any new word must also see the odd sequence. */
    atomic_thread_fence(memory_order_release);
    for (size_t i = 0; i < KEY_WORDS; i++) {
        atomic_store_explicit(&slot->word[i], words[i], memory_order_relaxed);
    }
    atomic_store_explicit(&slot->seq, seq + 2, memory_order_release);
}

size_t pk_sigmemo_count(struct pk_sigmemo *memo)
{
    size_t n = 0;

    for (size_t s = 0; s < PK_SIGMEMO_SETS; s++) {
        for (size_t w = 0; w < PK_SIGMEMO_WAYS; w++) {
            uint64_t seq = atomic_load_explicit(&memo->sets[s].way[w].seq, memory_order_acquire);
            n += seq != 0 && (seq & 1) == 0;
        }
    }
    return n;
}
