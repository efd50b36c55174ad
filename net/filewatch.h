/* SPDX-License-Identifier: Apache-2.0 */
/* picket: notice changes to a few files (credentials, trust anchors, certificates) on a libev loop.
 *
 * libev's ev_stat alone misses edits: it compares stat data whose timestamps have one-second
 * resolution, so a file rewritten in place within the second of its last change, at the same
 * size (every PEM P-256 key has the same size), looks unchanged. So each file's directory is
 * also watched with inotify, and an event counts when it names the file itself or `..data`,
 * the link by which Kubernetes swaps a mounted Secret or ConfigMap (its files are links
 * through `..data`); when a watched path is a symlink, the directory it leads to is watched
 * for the target's name as well. Other files in the same directories (a log file beside
 * ca.crt) are ignored. ev_stat stays as the fallback where inotify is unavailable (or its
 * limits are reached).
 *
 * Events are debounced: once the files have been quiet for `debounce` seconds, each watched
 * file's contents are hashed (SHA-256; or the reason it cannot be read), and the callback runs
 * only when one differs from what it was at the previous callback (or at start) — so a file
 * rewritten with the same bytes, touched, or swapped for an identical copy costs no reload,
 * whether the previous contents were accepted or refused by the caller. */
#ifndef PK_NET_FILEWATCH_H
#define PK_NET_FILEWATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "common/compiler.h"
#include "common/err.h"

struct ev_loop;
struct pk_filewatch;

typedef void (*pk_filewatch_fn)(void *ctx);

/* Watch paths (copied; at most 8). fn(ctx) runs on the loop after changes settle. */
int pk_filewatch_start(struct ev_loop *loop, const char *const *paths, size_t n_paths,
                       double debounce, pk_filewatch_fn fn, void *ctx, struct pk_filewatch **out,
                       struct pk_err *err) PK_MUST_USE;

/* Whether an inotify event (watch wd, entry name) concerns a watched file whose directory is
 * watched as path_wd under path_name, and whose symlink target's directory (if any, else -1)
 * as target_wd under target_name. Exposed for tests. */
bool pk_filewatch_event_matters(int wd, const char *name, int path_wd, const char *path_name,
                                int target_wd, const char *target_name);

/* Stop watching and free. NULL is fine. */
void pk_filewatch_stop(struct pk_filewatch *w);

#endif
