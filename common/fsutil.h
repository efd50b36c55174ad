/* SPDX-License-Identifier: Apache-2.0 */
/* picket: bounded file reads and atomic, durable file writes.
 *
 * Writes go to a temporary file in the target's directory, created with the final mode (never
 * wider for a moment), then fsync, rename over the target, and fsync of the directory: a reader
 * sees the old file or the new one, never a mix, and a crash leaves no half-written key. */
#ifndef PK_FSUTIL_H
#define PK_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "compiler.h"
#include "err.h"

/* Read a whole regular file of at most max bytes into out (appended; pass a secret buffer for
 * keys). PK_E_NOTFOUND when it does not exist, PK_E_TOOBIG, PK_E_INVALID for a non-regular file,
 * -errno otherwise; err names the path. */
int pk_fs_read_file(const char *path, size_t max, struct pk_buf *out, struct pk_err *err)
        PK_MUST_USE;

/* Atomically replace path with len bytes of data, created with mode (e.g. 0600). */
int pk_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                       struct pk_err *err) PK_MUST_USE;

/* Create name in the directory dfd with mode from the start (it must not exist yet; a symlink
 * planted under the name is not followed), write len bytes of data and fsync. On failure the
 * file is removed. what names the file in messages. */
int pk_fs_write_new_at(int dfd, const char *name, const void *data, size_t len, mode_t mode,
                       const char *what, struct pk_err *err) PK_MUST_USE;

/* pk_fs_write_new_at, the file given group gid ((gid_t)-1: left as created). It is born
 * readable by its owner only and gets group, then mode, before the first byte is written: the
 * group never reads through a wider mode set under another group. A failed fchown returns
 * -errno (-EPERM: the process is not a member of gid). */
int pk_fs_write_new_at_group(int dfd, const char *name, const void *data, size_t len, mode_t mode,
                             gid_t gid, const char *what, struct pk_err *err) PK_MUST_USE;

/* fsync the directory dfd, making the creations and renames in it durable. */
int pk_fs_sync_dir(int dfd, const char *what, struct pk_err *err) PK_MUST_USE;

/* True when path exists (any type). */
bool pk_fs_exists(const char *path);

/* Join dir and name into out ("dir/name"); a name that is already absolute is used as it is.
 * PK_E_TOOBIG when out is too small. */
int pk_fs_join(char *out, size_t out_len, const char *dir, const char *name) PK_MUST_USE;

#endif
