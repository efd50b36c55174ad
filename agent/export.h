/* SPDX-License-Identifier: Apache-2.0 */
/* picket: hand the current identity to programs that terminate TLS themselves.
 *
 * After each rotation: cert.pem (leaf + intermediates), key.pem (mode 0600, created so; 0640 of
 * a configured group, given it before a byte is written) and bundle.pem (the trust anchors) are
 * written into a new version directory, which then replaces the previous one in a single rename of
 * the `..data` link, as Kubernetes updates a mounted Secret; cert.pem, key.pem and bundle.pem at
 * the top are links into `..data`. A reader (or a crash) sees the old three files or the new three,
 * never a new key beside an old certificate. Leftovers of an interrupted export are removed at
 * start and at the next export; files written in place by an older release are moved under `..data`
 * without a mismatched moment. Then a configured command runs (/bin/sh -c, not waited for; its exit
 * is logged) or a signal is sent to the pid in a pid file. The key is the one thing picket
 * otherwise never writes to disk, so this is off unless export_dir is set. */
#ifndef PK_AGENT_EXPORT_H
#define PK_AGENT_EXPORT_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/compiler.h"
#include "common/err.h"
#include "common/identity.h"

struct ev_loop;

struct pk_export_opts {
    const char *dir;      /* created (0700, or 0750 of group) when missing; refused when
                           * group/others may write */
    bool group_set;       /* false: files owner-only (key 0600, version directories 0700) */
    gid_t group;          /* group_set: every version and its files belong to this group, the
                           * key 0640 and version directories 0750; picket must be a member */
    const char *command;  /* NULL: none */
    const char *pid_file; /* NULL: none */
    int signal;           /* sent to the pid in pid_file */
};

/* Remove what an interrupted export left in the directory (temporaries, versions ..data does
 * not point to). Nothing to do when the directory does not exist yet: it is created. */
int pk_export_prepare(const struct pk_export_opts *opts, struct pk_err *err) PK_MUST_USE;

/* Write the three files as one new version. A failure leaves the previous version in force. */
int pk_export_write(const struct pk_export_opts *opts, const struct pk_identity *id,
                    struct pk_err *err) PK_MUST_USE;

/* Run the command (reaped on loop, which must be the default loop) and/or signal the pid. */
int pk_export_notify(struct ev_loop *loop, const struct pk_export_opts *opts, struct pk_err *err)
        PK_MUST_USE;

#endif
