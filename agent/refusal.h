/* SPDX-License-Identifier: Apache-2.0 */
/* picket: remembering a refused input, so a bad file costs one log line and one count.
 *
 * A refused input (the trust anchors file, say) stays refused until it changes, yet something
 * should look again now and then: the refusal may have depended on something else (Sentry
 * issuing under a new root, a transient read error). The tracker remembers the refused
 * content by digest: a refusal of new content is news (count it, log it); a refusal of the
 * same content again is not (quiet, except for a reminder after a long interval), and the
 * next look backs off exponentially up to a cap. New content starts over. */
#ifndef PK_AGENT_REFUSAL_H
#define PK_AGENT_REFUSAL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"

#define PK_REFUSAL_DIGEST 32

struct pk_refusal_policy {
    double initial; /* first retry after this many seconds (half of it to all, jittered) */
    double max;     /* retries never further apart than this */
    double remind;  /* a refusal of unchanged content is logged again after this long */
    uint64_t seed;  /* jitter */
};

struct pk_refusal {
    bool active; /* something is refused */
    uint8_t digest[PK_REFUSAL_DIGEST];
    unsigned streak;  /* refusals of this content in a row */
    double logged_at; /* when it was last logged (the caller's clock) */
    double retry_at;  /* when to look again */
};

enum pk_refusal_news {
    PK_REFUSAL_NEW,      /* content not refused just before: count and log */
    PK_REFUSAL_REMINDER, /* the same, refused for a long time: log again, do not count */
    PK_REFUSAL_REPEAT,   /* the same again: neither */
};

/* The digest of an input made of two parts (e.g. an environment variable and a file's bytes,
 * or the reason the file could not be read). */
void pk_refusal_digest(struct pk_slice a, struct pk_slice b, uint8_t out[PK_REFUSAL_DIGEST]);

/* Record that the content with digest was refused at now; sets retry_at. */
enum pk_refusal_news pk_refusal_note(struct pk_refusal *r, const struct pk_refusal_policy *p,
                                     const uint8_t digest[PK_REFUSAL_DIGEST], double now);

/* True when digest is the content refused last (and still refused). */
bool pk_refusal_same(const struct pk_refusal *r, const uint8_t digest[PK_REFUSAL_DIGEST]);

/* Something was accepted: forget the refusal. */
void pk_refusal_clear(struct pk_refusal *r);

#endif
