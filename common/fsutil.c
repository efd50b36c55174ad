/* SPDX-License-Identifier: Apache-2.0 */
/* picket: bounded file reads and atomic, durable file writes. */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int pk_fs_read_file(const char *path, size_t max, struct pk_buf *out, struct pk_err *err)
{
    struct stat st;
    uint8_t *dst;
    size_t done = 0;
    size_t start_len = out->len;
    int fd;
    int r;

    /* O_NONBLOCK: a FIFO put where a file belongs must not block the event loop in open();
     * it is refused as not a regular file below. Reads of a regular file never block. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        r = errno;
        if (r == ENOENT) {
            return pk_err_set(err, PK_E_NOTFOUND, "%s: file does not exist", path);
        }
        return pk_err_set(err, -r, "%s: cannot open: %s", path, strerror(r));
    }
    if (fstat(fd, &st) != 0) {
        r = pk_err_set(err, -errno, "%s: cannot stat: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        r = pk_err_set(err, PK_E_INVALID, "%s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
        r = pk_err_set(err, PK_E_TOOBIG, "%s: file is %lld bytes, more than the %zu allowed", path,
                       (long long)st.st_size, max);
        goto out;
    }
    /* Read until EOF rather than trusting st_size, so a file that grew after fstat is caught by
     * the cap instead of being cut short. */
    for (;;) {
        size_t chunk = PK_MIN((size_t)65536, max - done);
        uint8_t probe;
        ssize_t n;

        if (chunk == 0) {
            /* Exactly max bytes so far: one more byte means the file is too big. The probe
             * lives outside out, whose capacity may be exactly max. */
            n = read(fd, &probe, 1);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n == 0) {
                break;
            }
            r = n < 0 ? pk_err_set(err, -errno, "%s: read failed: %s", path, strerror(errno))
                      : pk_err_set(err, PK_E_TOOBIG,
                                   "%s: file is larger than the %zu bytes allowed", path, max);
            goto out;
        }
        chunk = PK_MIN(chunk, pk_buf_space(out));
        if (chunk == 0 || pk_buf_reserve(out, chunk, &dst) != 0) {
            r = pk_err_set(err, PK_E_TOOBIG, "%s: file is larger than the %zu bytes allowed", path,
                           max);
            goto out;
        }
        n = read(fd, dst, chunk);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            r = pk_err_set(err, -errno, "%s: read failed: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0) {
            break;
        }
        pk_buf_commit(out, (size_t)n);
        done += (size_t)n;
        if (done > max) {
            r = pk_err_set(err, PK_E_TOOBIG, "%s: file is larger than the %zu bytes allowed", path,
                           max);
            goto out;
        }
    }
    r = 0;
out:
    if (r != 0) {
        /* Leave out as it was: nothing half-read is handed back. */
        pk_buf_truncate(out, start_len);
    }
    close(fd);
    return r;
}

/* Write all of data to fd and fsync it; what names the file in messages. */
static int write_all_and_sync(int fd, const void *data, size_t len, const char *what,
                              struct pk_err *err)
{
    const uint8_t *p = data;
    size_t done = 0;

    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return pk_err_set(err, -errno, "%s: write failed: %s", what, strerror(errno));
        }
        done += (size_t)n;
    }
    if (fsync(fd) != 0) {
        return pk_err_set(err, -errno, "%s: fsync failed: %s", what, strerror(errno));
    }
    return 0;
}

int pk_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                       struct pk_err *err)
{
    char tmp[PATH_MAX];
    char dir_copy[PATH_MAX];
    int fd = -1;
    int dfd = -1;
    int r;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= sizeof(tmp) ||
        (size_t)snprintf(dir_copy, sizeof(dir_copy), "%s", path) >= sizeof(dir_copy)) {
        return pk_err_set(err, PK_E_TOOBIG, "%s: path too long", path);
    }
    /* mkostemp creates the file 0600; fchmod only ever narrows or keeps that for key files. */
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        return pk_err_set(err, -errno, "%s: cannot create temporary file: %s", path,
                          strerror(errno));
    }
    if (fchmod(fd, mode) != 0) {
        r = pk_err_set(err, -errno, "%s: cannot set mode: %s", path, strerror(errno));
        goto fail;
    }
    r = write_all_and_sync(fd, data, len, path, err);
    if (r != 0) {
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        r = pk_err_set(err, -errno, "%s: close failed: %s", path, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        r = pk_err_set(err, -errno, "%s: rename failed: %s", path, strerror(errno));
        goto fail;
    }
    /* Make the rename itself durable. */
    dfd = open(dirname(dir_copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
fail:
    if (fd >= 0) {
        close(fd);
    }
    unlink(tmp);
    return r;
}

int pk_fs_write_new_at(int dfd, const char *name, const void *data, size_t len, mode_t mode,
                       const char *what, struct pk_err *err)
{
    return pk_fs_write_new_at_group(dfd, name, data, len, mode, (gid_t)-1, what, err);
}

int pk_fs_write_new_at_group(int dfd, const char *name, const void *data, size_t len, mode_t mode,
                             gid_t gid, const char *what, struct pk_err *err)
{
    /* With a group to give, the file is born owner-only: until fchown it carries the
     * creator's group, which must not read it. */
    mode_t born = gid == (gid_t)-1 ? mode : (mode & 0700);
    int fd;
    int r;

    /* O_EXCL and O_NOFOLLOW: never write through something planted under the name. The file
     * is born with at most mode (the umask can only narrow it); fchmod then sets exactly mode,
     * which for a key (0600) never widens it beyond what it was born with, and for a key of a
     * group (0640) widens it only once the group is the right one. */
    fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, born);
    if (fd < 0) {
        return pk_err_set(err, -errno, "%s: cannot create: %s", what, strerror(errno));
    }
    if (gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) != 0) {
        r = pk_err_set(err, -errno, "%s: cannot give it group %lu: %s", what, (unsigned long)gid,
                       strerror(errno));
        goto fail;
    }
    if (fchmod(fd, mode) != 0) {
        r = pk_err_set(err, -errno, "%s: cannot set mode: %s", what, strerror(errno));
        goto fail;
    }
    r = write_all_and_sync(fd, data, len, what, err);
    if (r != 0) {
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        r = pk_err_set(err, -errno, "%s: close failed: %s", what, strerror(errno));
        goto fail;
    }
    return 0;
fail:
    if (fd >= 0) {
        close(fd);
    }
    (void)unlinkat(dfd, name, 0);
    return r;
}

int pk_fs_sync_dir(int dfd, const char *what, struct pk_err *err)
{
    if (fsync(dfd) != 0) {
        return pk_err_set(err, -errno, "%s: fsync of the directory failed: %s", what,
                          strerror(errno));
    }
    return 0;
}

bool pk_fs_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int pk_fs_join(char *out, size_t out_len, const char *dir, const char *name)
{
    int n;

    if (name[0] == '/') {
        n = snprintf(out, out_len, "%s", name);
    } else {
        size_t dl = strlen(dir);
        n = snprintf(out, out_len, "%s%s%s", dir, (dl > 0 && dir[dl - 1] == '/') ? "" : "/", name);
    }
    if (n < 0 || (size_t)n >= out_len) {
        return PK_E_TOOBIG;
    }
    return 0;
}
