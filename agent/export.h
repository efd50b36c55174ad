/* SPDX-License-Identifier: Apache-2.0 */
/* picket: hand the current identity to programs that terminate TLS themselves.
 *
 * After each rotation: cert.pem (leaf + intermediates), key.pem (mode 0600) and bundle.pem (the
 * trust anchors) are written into a directory, each atomically (temporary file, fsync, rename,
 * fsync of the directory), so a reader sees the old file or the new one, never half of one.
 * Then a configured command runs (/bin/sh -c, not waited for; its exit is logged) or a signal is
 * sent to the pid in a pid file. The key is the one thing picket otherwise never writes to disk,
 * so this is off unless export_dir is set. */
#ifndef PK_AGENT_EXPORT_H
#define PK_AGENT_EXPORT_H

#include "common/compiler.h"
#include "common/err.h"
#include "common/identity.h"

struct ev_loop;

struct pk_export_opts {
    const char *dir;      /* created (0700) when missing */
    const char *command;  /* NULL: none */
    const char *pid_file; /* NULL: none */
    int signal;           /* sent to the pid in pid_file */
};

/* Write the three files. A failure leaves every file either old or new. */
int pk_export_write(const struct pk_export_opts *opts, const struct pk_identity *id,
                    struct pk_err *err) PK_MUST_USE;

/* Run the command (reaped on loop, which must be the default loop) and/or signal the pid. */
int pk_export_notify(struct ev_loop *loop, const struct pk_export_opts *opts, struct pk_err *err)
        PK_MUST_USE;

#endif
