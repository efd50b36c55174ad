/* SPDX-License-Identifier: Apache-2.0 */
/* picket: writing the identity to files and telling another program about it. */
#include "agent/export.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/signame.h"

extern char **environ;

#define MAX_PEM (1024u * 1024u)

/* The layout, as Kubernetes' atomic writer lays out a mounted Secret:
 *
 *   ..2026_12_07_23_45_01.Ab12Cd/   one version: cert.pem, key.pem (0600), bundle.pem
 *   ..data -> ..2026_12_07_23_45_01.Ab12Cd
 *   cert.pem -> ..data/cert.pem     (and key.pem, bundle.pem: stable paths for readers)
 *
 * A new version is written completely in its own directory, then ..data is swapped to it with
 * one rename, so readers of cert.pem and key.pem see the old pair or the new pair, never one of
 * each; the previous version is removed after the swap. */
#define DATA_LINK      "..data"
#define DATA_LINK_TMP  "..data_tmp"
#define TOP_LINK_TMP   ".tmp-link"
#define VERSION_PREFIX ".."

struct export_file {
    const char *name;
    mode_t mode;       /* owner-only export */
    mode_t group_mode; /* export_group: the group reads the key; the certificates stay public
                        * (the 0750 version directory keeps others out of all three anyway) */
};

static const struct export_file EXPORT_FILES[] = {
        {"cert.pem", 0644, 0644},
        {"key.pem", 0600, 0640},
        {"bundle.pem", 0644, 0644},
};
#define N_EXPORT_FILES (sizeof(EXPORT_FILES) / sizeof(EXPORT_FILES[0]))

/* ..<digit>...: a version directory this code made (".." itself and "..data" are not). */
static bool is_version_name(const char *name)
{
    return strncmp(name, VERSION_PREFIX, 2) == 0 && isdigit((unsigned char)name[2]) &&
           strchr(name, '/') == NULL;
}

/* Temporaries a crash may leave: the ..data swap link, the top-level link swaps, and the
 * "NAME.tmp-XXXXXX" files of older releases, which wrote each file in place. */
static bool is_stale_temporary(const char *name)
{
    if (strcmp(name, DATA_LINK_TMP) == 0) {
        return true;
    }
    for (size_t i = 0; i < N_EXPORT_FILES; i++) {
        size_t n = strlen(EXPORT_FILES[i].name);
        if (strncmp(name, EXPORT_FILES[i].name, n) == 0 && strncmp(name + n, ".tmp-", 5) == 0) {
            return true;
        }
    }
    return false;
}

/* The version ..data points to, into out; "" when there is none. */
static int current_version(int dfd, const char *dir, char *out, size_t out_len, struct pk_err *err)
{
    ssize_t n = readlinkat(dfd, DATA_LINK, out, out_len - 1);

    if (n < 0) {
        out[0] = '\0';
        if (errno == ENOENT) {
            return 0;
        }
        return pk_err_set(err, -errno, "%s/%s: cannot read the link: %s", dir, DATA_LINK,
                          strerror(errno));
    }
    out[n] = '\0';
    if (!is_version_name(out)) {
        return pk_err_set(err, PK_E_INVALID,
                          "%s/%s: points to \"%s\", not to a version directory picket made", dir,
                          DATA_LINK, out);
    }
    return 0;
}

/* Remove a version directory and the files in it (never following a link). */
static void remove_version(int dfd, const char *dir, const char *name)
{
    int vfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d;
    struct dirent *e;

    if (vfd < 0) {
        PK_LOG_WARN("export: cannot open an old version to remove it dir=%s version=%s "
                    "error=\"%s\"",
                    dir, name, strerror(errno));
        return;
    }
    d = fdopendir(vfd);
    if (d == NULL) {
        close(vfd);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            unlinkat(vfd, e->d_name, 0) != 0) {
            PK_LOG_WARN("export: cannot remove a file of an old version dir=%s version=%s "
                        "file=%s error=\"%s\"",
                        dir, name, e->d_name, strerror(errno));
        }
    }
    closedir(d);
    if (unlinkat(dfd, name, AT_REMOVEDIR) != 0) {
        PK_LOG_WARN("export: cannot remove an old version dir=%s version=%s error=\"%s\"", dir,
                    name, strerror(errno));
    }
}

/* Remove what an interrupted export left: temporaries and every version but keep. */
static void remove_leftovers(int dfd, const char *dir, const char *keep)
{
    int fd = dup(dfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;

    if (d == NULL) {
        if (fd >= 0) {
            close(fd);
        }
        PK_LOG_WARN("export: cannot list the directory dir=%s error=\"%s\"", dir, strerror(errno));
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (is_version_name(e->d_name) && strcmp(e->d_name, keep) != 0) {
            PK_LOG_INFO("export: removing an old or unfinished version dir=%s version=%s", dir,
                        e->d_name);
            remove_version(dfd, dir, e->d_name);
        } else if (is_stale_temporary(e->d_name)) {
            PK_LOG_INFO("export: removing a leftover temporary dir=%s file=%s", dir, e->d_name);
            if (unlinkat(dfd, e->d_name, 0) != 0) {
                PK_LOG_WARN("export: cannot remove a leftover temporary dir=%s file=%s "
                            "error=\"%s\"",
                            dir, e->d_name, strerror(errno));
            }
        }
    }
    closedir(d);
}

/* Replace the message of a failed fchown(what, group) with one that says how to fix it: the
 * kernel refuses a group the process is not a member of (EPERM), and a user namespace such as
 * systemd's PrivateUsers=yes does not map it at all (EINVAL). */
static int group_error(const struct pk_export_opts *opts, const char *what, int e,
                       struct pk_err *err)
{
    char buf[4096];
    char gid_text[24];
    struct group grp, *found = NULL;
    const char *name;

    snprintf(gid_text, sizeof(gid_text), "%lu", (unsigned long)opts->group);
    name = getgrgid_r(opts->group, &grp, buf, sizeof(buf), &found) == 0 && found != NULL
                   ? grp.gr_name
                   : gid_text;
    return pk_err_set(err, -e,
                      "%s: cannot give it to export_group %s (gid %s): %s; picket (uid %lu) must "
                      "be a member of that group: under systemd, add SupplementaryGroups=%s and "
                      "PrivateUsers=no in a drop-in of the unit (see export-group.conf)",
                      what, name, gid_text, strerror(e), (unsigned long)geteuid(), name);
}

/* Give the open directory dfd to the export group and open it to the group: group first, so
 * the wider mode never applies to the group it had before. */
static int give_dir_to_group(const struct pk_export_opts *opts, int dfd, const char *what,
                             struct pk_err *err)
{
    if (fchown(dfd, (uid_t)-1, opts->group) != 0) {
        return group_error(opts, what, errno, err);
    }
    if (fchmod(dfd, 0750) != 0) {
        return pk_err_set(err, -errno, "%s: cannot set mode: %s", what, strerror(errno));
    }
    return 0;
}

/* Open (creating it when missing: 0700, or 0750 of export_group) the export directory. Refused
 * when others may write to it: whoever can rename entries there can hand readers a key of their
 * choosing. */
static int open_export_dir(const struct pk_export_opts *opts, int *dfd_out, mode_t *mode_out,
                           struct pk_err *err)
{
    const char *dir = opts->dir;
    bool created;
    struct stat st;
    int dfd;
    int r;

    created = mkdir(dir, 0700) == 0;
    if (!created && errno != EEXIST) {
        return pk_err_set(err, -errno, "%s: cannot create export directory: %s", dir,
                          strerror(errno));
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        return pk_err_set(err, -errno, "%s: cannot open export directory: %s", dir,
                          strerror(errno));
    }
    /* A directory picket makes is the group's to enter; one that existed is left as it is
     * (pk_export_prepare warns when the group cannot enter it). */
    if (created && opts->group_set) {
        r = give_dir_to_group(opts, dfd, dir, err);
        if (r != 0) {
            /* Removed, so the next attempt (once picket is a member) makes it again. */
            close(dfd);
            (void)rmdir(dir);
            return r;
        }
    }
    if (fstat(dfd, &st) != 0) {
        int e = errno;
        close(dfd);
        return pk_err_set(err, -e, "%s: cannot stat export directory: %s", dir, strerror(e));
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        close(dfd);
        return pk_err_set(err, PK_E_DENIED,
                          "%s: export directory is writable by group or others (mode %04o); "
                          "make it 0700 or 0750",
                          dir, (unsigned)(st.st_mode & 07777));
    }
    *dfd_out = dfd;
    *mode_out = st.st_mode & 0750;
    return 0;
}

/* Make an empty version directory "..YYYY_MM_DD_HH_MM_SS.XXXXXX" with mode; its name into
 * name, an open descriptor into *vfd_out. */
static int make_version(const struct pk_export_opts *opts, mode_t mode, char *name, size_t name_len,
                        int *vfd_out, struct pk_err *err)
{
    const char *dir = opts->dir;
    char path[PATH_MAX];
    char stamp[32];
    struct tm tm;
    time_t now = time(NULL);
    const char *base;
    int vfd;
    int r = 0;

    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y_%m_%d_%H_%M_%S", &tm);
    if (pk_fs_join(path, sizeof(path), dir, VERSION_PREFIX) != 0 ||
        strlen(path) + strlen(stamp) + 8 >= sizeof(path)) {
        return pk_err_set(err, PK_E_TOOBIG, "%s: export path too long", dir);
    }
    strcat(path, stamp);
    strcat(path, ".XXXXXX");
    /* mkdtemp creates it 0700 and unique. */
    if (mkdtemp(path) == NULL) {
        return pk_err_set(err, -errno, "%s: cannot create a version directory: %s", dir,
                          strerror(errno));
    }
    base = strrchr(path, '/') + 1;
    if ((size_t)snprintf(name, name_len, "%s", base) >= name_len) {
        rmdir(path);
        return pk_err_set(err, PK_E_TOOBIG, "%s: export path too long", dir);
    }
    vfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (vfd < 0) {
        r = pk_err_set(err, -errno, "%s: cannot open the version directory: %s", path,
                       strerror(errno));
        goto fail;
    }
    if (opts->group_set) {
        r = give_dir_to_group(opts, vfd, path, err);
    } else if (fchmod(vfd, mode | 0700) != 0) {
        r = pk_err_set(err, -errno, "%s: cannot set mode: %s", path, strerror(errno));
    }
    if (r != 0) {
        goto fail;
    }
    *vfd_out = vfd;
    return 0;
fail:
    if (vfd >= 0) {
        close(vfd);
    }
    rmdir(path);
    return r;
}

/* Point name in dfd at target with one rename of a fresh link over it. */
static int swap_link(int dfd, const char *dir, const char *name, const char *tmp,
                     const char *target, struct pk_err *err)
{
    if (unlinkat(dfd, tmp, 0) != 0 && errno != ENOENT) {
        return pk_err_set(err, -errno, "%s/%s: cannot remove: %s", dir, tmp, strerror(errno));
    }
    if (symlinkat(target, dfd, tmp) != 0) {
        return pk_err_set(err, -errno, "%s/%s: cannot create the link: %s", dir, tmp,
                          strerror(errno));
    }
    if (renameat(dfd, tmp, dfd, name) != 0) {
        int e = errno;
        (void)unlinkat(dfd, tmp, 0);
        return pk_err_set(err, -e, "%s/%s: cannot replace: %s", dir, name, strerror(e));
    }
    return 0;
}

/* Make each top-level name a link to ..data/name, replacing whatever is there. */
static int link_top_level(int dfd, const char *dir, struct pk_err *err)
{
    for (size_t i = 0; i < N_EXPORT_FILES; i++) {
        const char *name = EXPORT_FILES[i].name;
        char target[64], tmp[64], now[64];
        ssize_t n;

        snprintf(target, sizeof(target), "%s/%s", DATA_LINK, name);
        snprintf(tmp, sizeof(tmp), "%s%s", name, TOP_LINK_TMP);
        n = readlinkat(dfd, name, now, sizeof(now) - 1);
        if (n >= 0) {
            now[n] = '\0';
            if (strcmp(now, target) == 0) {
                continue;
            }
        }
        int r = swap_link(dfd, dir, name, tmp, target, err);
        if (r != 0) {
            return r;
        }
    }
    return 0;
}

/* True when some top-level name is a file rather than our link (an older release wrote the
 * files in place, or someone put one there). */
static bool needs_migration(int dfd)
{
    for (size_t i = 0; i < N_EXPORT_FILES; i++) {
        struct stat st;
        if (fstatat(dfd, EXPORT_FILES[i].name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            !S_ISLNK(st.st_mode)) {
            return true;
        }
    }
    return false;
}

/* Move files written in place by an older release under ..data without a moment in which
 * cert.pem and key.pem disagree: first a version holding (hard links to) what the names show
 * now, ..data swapped to it, then each name replaced by its link. The new pair follows with
 * the ordinary swap. version holds the version in force before, and receives the one after. */
static int migrate(int dfd, const struct pk_export_opts *opts, mode_t dir_mode, char *version,
                   size_t version_len, struct pk_err *err)
{
    const char *dir = opts->dir;
    char made[NAME_MAX + 1];
    int vfd = -1;
    int r;

    PK_LOG_INFO("export: moving files written in place under %s dir=%s", DATA_LINK, dir);
    r = make_version(opts, dir_mode, made, sizeof(made), &vfd, err);
    if (r != 0) {
        return r;
    }
    for (size_t i = 0; i < N_EXPORT_FILES; i++) {
        const char *name = EXPORT_FILES[i].name;
        struct stat st;
        if (fstatat(dfd, name, &st, 0) != 0 || !S_ISREG(st.st_mode)) {
            continue; /* missing (or not a file): nothing to preserve */
        }
        /* An old key left readable by others is narrowed first (before it has a second
         * name), through the name it has now. */
        if ((st.st_mode & 077 & ~EXPORT_FILES[i].mode) != 0 &&
            fchmodat(dfd, name, st.st_mode & EXPORT_FILES[i].mode & 0777, 0) != 0) {
            r = pk_err_set(err, -errno, "%s/%s: cannot narrow its mode: %s", dir, name,
                           strerror(errno));
            goto fail;
        }
        if (linkat(dfd, name, vfd, name, AT_SYMLINK_FOLLOW) != 0) {
            r = pk_err_set(err, -errno, "%s/%s: cannot move it under %s: %s", dir, name, DATA_LINK,
                           strerror(errno));
            goto fail;
        }
    }
    r = pk_fs_sync_dir(vfd, dir, err);
    if (r == 0) {
        r = swap_link(dfd, dir, DATA_LINK, DATA_LINK_TMP, made, err);
    }
    if (r != 0) {
        goto fail;
    }
    close(vfd);
    r = link_top_level(dfd, dir, err);
    if (r == 0) {
        r = pk_fs_sync_dir(dfd, dir, err);
    }
    /* A version from a migration interrupted earlier is superseded by the one just made. */
    if (version[0] != '\0') {
        remove_version(dfd, dir, version);
    }
    snprintf(version, version_len, "%s", made);
    return r;
fail:
    close(vfd);
    remove_version(dfd, dir, made);
    return r;
}

/* An export directory made before export_group was set (or by someone else) may keep the group
 * out: said once at start, since changing a directory picket did not make is not picket's to do. */
static void warn_unreachable(const struct pk_export_opts *opts, int dfd)
{
    struct stat st;
    mode_t search;

    if (!opts->group_set || fstat(dfd, &st) != 0) {
        return;
    }
    search = st.st_gid == opts->group ? S_IXGRP : S_IXOTH;
    if ((st.st_mode & search) == 0) {
        PK_LOG_WARN("export: export_group cannot enter the export directory dir=%s gid=%lu "
                    "mode=%04o; give it to the group with mode 0750 (chgrp, chmod)",
                    opts->dir, (unsigned long)opts->group, (unsigned)(st.st_mode & 07777));
    }
}

int pk_export_prepare(const struct pk_export_opts *opts, struct pk_err *err)
{
    char version[NAME_MAX + 1];
    mode_t mode;
    int dfd;
    int r;

    r = open_export_dir(opts, &dfd, &mode, err);
    if (r != 0) {
        return r;
    }
    warn_unreachable(opts, dfd);
    r = current_version(dfd, opts->dir, version, sizeof(version), err);
    if (r == 0) {
        remove_leftovers(dfd, opts->dir, version);
    }
    close(dfd);
    return r;
}

int pk_export_write(const struct pk_export_opts *opts, const struct pk_identity *id,
                    struct pk_err *err)
{
    char old[NAME_MAX + 1];
    char made[NAME_MAX + 1] = "";
    struct pk_buf key;
    mode_t dir_mode;
    int dfd = -1;
    int vfd = -1;
    int r;

    pk_buf_init_secret(&key, MAX_PEM);
    r = open_export_dir(opts, &dfd, &dir_mode, err);
    if (r != 0) {
        goto out;
    }
    r = current_version(dfd, opts->dir, old, sizeof(old), err);
    if (r != 0) {
        goto out;
    }
    remove_leftovers(dfd, opts->dir, old);
    if (needs_migration(dfd)) {
        r = migrate(dfd, opts, dir_mode, old, sizeof(old), err);
        if (r != 0) {
            goto out;
        }
    }
    r = pk_identity_key_pem(id, &key);
    if (r != 0) {
        pk_err_set(err, r, "cannot encode the private key for export");
        goto out;
    }
    r = make_version(opts, dir_mode, made, sizeof(made), &vfd, err);
    if (r != 0) {
        made[0] = '\0';
        goto out;
    }
    {
        const struct pk_slice contents[N_EXPORT_FILES] = {
                pk_identity_chain_pem(id),
                pk_buf_slice(&key),
                pk_identity_anchors_pem(id),
        };
        for (size_t i = 0; r == 0 && i < N_EXPORT_FILES; i++) {
            char what[PATH_MAX];
            snprintf(what, sizeof(what), "%s/%s/%s", opts->dir, made, EXPORT_FILES[i].name);
            if (opts->group_set) {
                r = pk_fs_write_new_at_group(vfd, EXPORT_FILES[i].name, contents[i].ptr,
                                             contents[i].len, EXPORT_FILES[i].group_mode,
                                             opts->group, what, err);
                if (r == -EPERM || r == -EINVAL) {
                    r = group_error(opts, what, -r, err);
                }
            } else {
                r = pk_fs_write_new_at(vfd, EXPORT_FILES[i].name, contents[i].ptr, contents[i].len,
                                       EXPORT_FILES[i].mode, what, err);
            }
        }
    }
    if (r == 0) {
        r = pk_fs_sync_dir(vfd, opts->dir, err);
    }
    if (r == 0) {
        /* The one step that changes what readers see: the pair and the bundle at once. */
        r = swap_link(dfd, opts->dir, DATA_LINK, DATA_LINK_TMP, made, err);
    }
    if (r != 0) {
        remove_version(dfd, opts->dir, made);
        goto out;
    }
    r = link_top_level(dfd, opts->dir, err);
    if (r == 0) {
        r = pk_fs_sync_dir(dfd, opts->dir, err);
    }
    if (old[0] != '\0' && strcmp(old, made) != 0) {
        remove_version(dfd, opts->dir, old);
    }
out:
    if (vfd >= 0) {
        close(vfd);
    }
    if (dfd >= 0) {
        close(dfd);
    }
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
