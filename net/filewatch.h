/* SPDX-License-Identifier: Apache-2.0 */
/* picket: notice changes to a few files (credentials, trust anchors, certificates) on a libev loop.
 *
 * libev's ev_stat alone misses edits: it compares stat data whose timestamps have one-second
 * resolution, so a file rewritten in place within the second of its last change, at the same
 * size (every PEM P-256 key has the same size), looks unchanged. So each file's directory is
 * also watched with inotify, and any event in it counts, including the rename of a `..data`
 * symlink by which Kubernetes swaps a mounted Secret or ConfigMap. ev_stat stays as the fallback
 * where inotify is unavailable (or its limits are reached).
 *
 * Events are debounced: the callback runs once the files have been quiet for `debounce` seconds,
 * since an update usually touches several files one after another. The callback may therefore
 * run when nothing relevant changed; callers compare contents before acting. */
#ifndef PK_NET_FILEWATCH_H
#define PK_NET_FILEWATCH_H

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

/* Stop watching and free. NULL is fine. */
void pk_filewatch_stop(struct pk_filewatch *w);

#endif
