/* SPDX-License-Identifier: Apache-2.0 */
/* picket: writing the identity to files and telling another program about it. */
#include "agent/export.h"

#include <errno.h>
#include <ev.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/signame.h"

extern char **environ;

#define MAX_PEM (1024u * 1024u)

static int write_one(const char *dir, const char *name, struct pk_slice data, mode_t mode,
                     struct pk_err *err)
{
    char path[4096];

    if (pk_fs_join(path, sizeof(path), dir, name) != 0) {
        return pk_err_set(err, PK_E_TOOBIG, "%s: export path too long", dir);
    }
    return pk_fs_write_atomic(path, data.ptr, data.len, mode, err);
}

int pk_export_write(const struct pk_export_opts *opts, const struct pk_identity *id,
                    struct pk_err *err)
{
    struct pk_buf key;
    int r;

    if (mkdir(opts->dir, 0700) != 0 && errno != EEXIST) {
        return pk_err_set(err, -errno, "%s: cannot create export directory: %s", opts->dir,
                          strerror(errno));
    }
    pk_buf_init_secret(&key, MAX_PEM);
    r = pk_identity_key_pem(id, &key);
    if (r != 0) {
        pk_err_set(err, r, "cannot encode the private key for export");
        goto out;
    }
    /* The key first: a reader that sees the new certificate must find the new key already. */
    r = write_one(opts->dir, "key.pem", pk_buf_slice(&key), 0600, err);
    if (r == 0) {
        r = write_one(opts->dir, "cert.pem", pk_identity_chain_pem(id), 0644, err);
    }
    if (r == 0) {
        r = write_one(opts->dir, "bundle.pem", pk_identity_anchors_pem(id), 0644, err);
    }
out:
    pk_buf_free(&key);
    return r;
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
    (void)revents;
    int status = w->rstatus;

    ev_child_stop(loop, w);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        PK_LOG_INFO("export command finished pid=%d status=0", w->rpid);
    } else if (WIFEXITED(status)) {
        PK_LOG_WARN("export command failed pid=%d status=%d", w->rpid, WEXITSTATUS(status));
    } else {
        char name[16];
        PK_LOG_WARN("export command killed pid=%d signal=%s", w->rpid,
                    WIFSIGNALED(status) ? pk_signal_name(WTERMSIG(status), name, sizeof(name))
                                        : "none");
    }
    free(w);
}

static int run_command(struct ev_loop *loop, const char *command, struct pk_err *err)
{
    char *argv[] = {"/bin/sh", "-c", (char *)command, NULL};
    pid_t pid;
    int r;

    r = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ);
    if (r != 0) {
        return pk_err_set(err, -r, "export command: cannot start /bin/sh: %s", strerror(r));
    }
    /* Reaped on the loop so the agent never blocks on a slow hook. */
    ev_child *w = pk_xcalloc(1, sizeof(*w));
    ev_child_init(w, child_cb, pid, 0);
    ev_child_start(loop, w);
    PK_LOG_INFO("export command started pid=%d", (int)pid);
    return 0;
}

static int signal_pid_file(const char *pid_file, int sig, struct pk_err *err)
{
    struct pk_buf text;
    long pid;
    char *end;
    int r;

    pk_buf_init(&text, 64);
    r = pk_fs_read_file(pid_file, 63, &text, err);
    if (r != 0) {
        goto out;
    }
    r = pk_buf_append(&text, "", 1);
    if (r != 0) {
        goto out;
    }
    errno = 0;
    pid = strtol((const char *)text.data, &end, 10);
    while (*end == '\n' || *end == ' ' || *end == '\r') {
        end++;
    }
    if (errno != 0 || pid <= 1 || *end != '\0' || end == (char *)text.data) {
        r = pk_err_set(err, PK_E_INVALID, "%s: does not hold a process id", pid_file);
        goto out;
    }
    if (kill((pid_t)pid, sig) != 0) {
        r = pk_err_set(err, -errno, "%s: cannot signal pid %ld: %s", pid_file, pid,
                       strerror(errno));
        goto out;
    }
    char name[16];
    PK_LOG_INFO("export signal sent pid=%ld signal=%s", pid,
                pk_signal_name(sig, name, sizeof(name)));
out:
    pk_buf_free(&text);
    return r;
}

int pk_export_notify(struct ev_loop *loop, const struct pk_export_opts *opts, struct pk_err *err)
{
    int r = 0;

    if (opts->command != NULL && opts->command[0] != '\0') {
        r = run_command(loop, opts->command, err);
    }
    if (r == 0 && opts->pid_file != NULL && opts->pid_file[0] != '\0') {
        r = signal_pid_file(opts->pid_file, opts->signal, err);
    }
    return r;
}
