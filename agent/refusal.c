/* SPDX-License-Identifier: Apache-2.0 */
/* picket: remembering a refused input. */
#include "agent/refusal.h"

#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "agent/schedule.h"

void pk_refusal_digest(struct pk_slice a, struct pk_slice b, uint8_t out[PK_REFUSAL_DIGEST])
{
    /* The length of a first, so that moving bytes between the parts changes the digest. */
    uint64_t a_len = a.len;
    wc_Sha256 sha;

    memset(out, 0, PK_REFUSAL_DIGEST);
    if (wc_InitSha256(&sha) != 0) {
        return;
    }
    wc_Sha256Update(&sha, (const uint8_t *)&a_len, sizeof(a_len));
    if (a.len > 0) {
        wc_Sha256Update(&sha, a.ptr, (word32)a.len);
    }
    if (b.len > 0) {
        wc_Sha256Update(&sha, b.ptr, (word32)b.len);
    }
    wc_Sha256Final(&sha, out);
    wc_Sha256Free(&sha);
}

bool pk_refusal_same(const struct pk_refusal *r, const uint8_t digest[PK_REFUSAL_DIGEST])
{
    return r->active && memcmp(r->digest, digest, PK_REFUSAL_DIGEST) == 0;
}

enum pk_refusal_news pk_refusal_note(struct pk_refusal *r, const struct pk_refusal_policy *p,
                                     const uint8_t digest[PK_REFUSAL_DIGEST], double now)
{
    enum pk_refusal_news news;

    if (!pk_refusal_same(r, digest)) {
        r->active = true;
        memcpy(r->digest, digest, PK_REFUSAL_DIGEST);
        r->streak = 0;
        r->logged_at = now;
        news = PK_REFUSAL_NEW;
    } else if (now - r->logged_at >= p->remind) {
        r->logged_at = now;
        news = PK_REFUSAL_REMINDER;
    } else {
        news = PK_REFUSAL_REPEAT;
    }
    r->retry_at = now + pk_schedule_backoff(r->streak, p->initial, p->max, p->seed ^ r->streak);
    if (r->streak < 64) { /* the delay is capped long before; keep the count from wrapping */
        r->streak++;
    }
    return news;
}

void pk_refusal_clear(struct pk_refusal *r)
{
    memset(r, 0, sizeof(*r));
}
