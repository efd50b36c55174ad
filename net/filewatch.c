/* SPDX-License-Identifier: Apache-2.0 */
/* picket: file change notification on libev, inotify on the directories plus ev_stat. */
#include "filewatch.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "common/log.h"
#include "common/mem.h"

#define MAX_PATHS     8
#define STAT_INTERVAL 2.0
/* Kubernetes' atomic writer swaps a mounted Secret by renaming this link. */
#define K8S_DATA_LINK "..data"
/* Contents beyond this are not hashed (their size still counts); every caller refuses such a
 * file anyway, and a path pointed at a huge file must not cost a huge read per event. */
#define MAX_HASHED (4u * 1024u * 1024u)

/* What a watched file looked like when the callback last ran: its contents, or why it could
 * not be read. Equal fingerprints mean nothing a reader could see has changed. */
struct fingerprint {
    int error; /* 0, an errno, or -1 for "not a regular file" */
    uint64_t size;
    uint8_t digest[WC_SHA256_DIGEST_SIZE];
};

struct watched_path {
    char *path;
    const char *name; /* the last component of path (inside path) */
    int wd;           /* inotify watch of path's directory, -1 if none */
    /* Where a symlink at path leads: its directory is watched too, for the target's name. */
    char target_name[NAME_MAX + 1];
    int target_wd;
    ev_stat stat;
    struct fingerprint last;
};

struct pk_filewatch {
    struct ev_loop *loop;
    pk_filewatch_fn fn;
    void *ctx;
    double debounce;
    int inotify_fd;
    ev_io inotify_io;
    struct watched_path paths[MAX_PATHS];
    size_t n_paths;
    ev_timer settle;
};

static void take_fingerprint(const char *path, struct fingerprint *fp)
{
    uint8_t chunk[16384];
    wc_Sha256 sha;
    struct stat st;
    uint64_t hashed = 0;
    int fd;

    memset(fp, 0, sizeof(*fp));
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        fp->error = errno;
        return;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        fp->error = -1;
        close(fd);
        return;
    }
    fp->size = (uint64_t)st.st_size;
    if (wc_InitSha256(&sha) != 0) {
        fp->error = ENOMEM;
        close(fd);
        return;
    }
    while (hashed < MAX_HASHED) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            fp->error = errno;
            break;
        }
        if (n == 0) {
            break;
        }
        wc_Sha256Update(&sha, chunk, (word32)n);
        hashed += (uint64_t)n;
    }
    wc_Sha256Final(&sha, fp->digest);
    wc_Sha256Free(&sha);
    /* The file may be a private key: leave none of it on the stack. */
    pk_wipe(chunk, sizeof(chunk));
    close(fd);
}

static bool fingerprints_equal(const struct fingerprint *a, const struct fingerprint *b)
{
    return a->error == b->error && a->size == b->size &&
           memcmp(a->digest, b->digest, sizeof(a->digest)) == 0;
}

/* Watch the directory of `of` with inotify; the watch descriptor, or -1 (logged; ev_stat
 * polls instead). */
static int watch_dir_of(struct pk_filewatch *w, const char *of)
{
    char copy[PATH_MAX];
    const uint32_t mask = IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                          IN_DELETE | IN_ATTRIB | IN_ONLYDIR;
    int wd;

    if (w->inotify_fd < 0 || snprintf(copy, sizeof(copy), "%s", of) >= (int)sizeof(copy)) {
        return -1;
    }
    /* Adding the same directory twice returns the same watch, so no bookkeeping is needed. */
    wd = inotify_add_watch(w->inotify_fd, dirname(copy), mask);
    if (wd < 0) {
        PK_LOG_WARN("cannot watch directory with inotify, polling instead path=%s error=\"%s\"", of,
                    strerror(errno));
    }
    return wd;
}

/* When path is a symlink, watch where it leads now (a link elsewhere than `..data`, whose
 * swap the watch of path's own directory already sees). Called again after each change. */
static void watch_target(struct pk_filewatch *w, struct watched_path *p)
{
    char real[PATH_MAX];
    struct stat st;

    p->target_wd = -1;
    p->target_name[0] = '\0';
    if (lstat(p->path, &st) != 0 || !S_ISLNK(st.st_mode) || realpath(p->path, real) == NULL) {
        return;
    }
    const char *slash = strrchr(real, '/');
    if (slash == NULL || strlen(slash + 1) > NAME_MAX) {
        return;
    }
    snprintf(p->target_name, sizeof(p->target_name), "%s", slash + 1);
    p->target_wd = watch_dir_of(w, real);
}

bool pk_filewatch_event_matters(int wd, const char *name, int path_wd, const char *path_name,
                                int target_wd, const char *target_name)
{
    if (wd == path_wd && path_wd >= 0) {
        return strcmp(name, path_name) == 0 || strcmp(name, K8S_DATA_LINK) == 0;
    }
    return wd == target_wd && target_wd >= 0 && strcmp(name, target_name) == 0;
}

/* Whether an inotify event can concern one of the watched files. */
static bool event_matters(const struct pk_filewatch *w, const struct inotify_event *ev)
{
    if ((ev->mask & (IN_Q_OVERFLOW | IN_IGNORED)) != 0) {
        return true; /* events were lost, or a watched directory went away: look */
    }
    if (ev->len == 0) {
        return false; /* about a directory itself */
    }
    for (size_t i = 0; i < w->n_paths; i++) {
        const struct watched_path *p = &w->paths[i];
        if (pk_filewatch_event_matters(ev->wd, ev->name, p->wd, p->name, p->target_wd,
                                       p->target_name)) {
            return true;
        }
    }
    return false;
}

static void changed(struct pk_filewatch *w)
{
    ev_timer_stop(w->loop, &w->settle);
    ev_timer_set(&w->settle, w->debounce, 0.0);
    ev_timer_start(w->loop, &w->settle);
}

static void settle_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct pk_filewatch *w = t->data;
    bool any = false;

    for (size_t i = 0; i < w->n_paths; i++) {
        struct watched_path *p = &w->paths[i];
        struct fingerprint now;

        take_fingerprint(p->path, &now);
        if (!fingerprints_equal(&now, &p->last)) {
            p->last = now;
            any = true;
        }
        watch_target(w, p);
    }
    /* Nothing a reader could see has changed (a rewrite with the same bytes, a touch): the
     * callback, which re-reads and re-checks, has nothing new to decide. */
    if (any) {
        w->fn(w->ctx);
    }
}

static void stat_cb(struct ev_loop *loop, ev_stat *s, int revents)
{
    (void)loop;
    (void)revents;
    changed(s->data);
}

static void inotify_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    struct pk_filewatch *w = io->data;
    /* Aligned as inotify(7) asks. */
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool any = false;

    for (;;) {
        ssize_t n = read(w->inotify_fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break; /* EAGAIN: drained */
        }
        for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
            any = any || event_matters(w, ev);
            off += (ssize_t)(sizeof(struct inotify_event) + ev->len);
        }
    }
    if (any) {
        changed(w);
    }
}

int pk_filewatch_start(struct ev_loop *loop, const char *const *paths, size_t n_paths,
                       double debounce, pk_filewatch_fn fn, void *ctx, struct pk_filewatch **out,
                       struct pk_err *err)
{
    struct pk_filewatch *w;

    if (n_paths == 0 || n_paths > MAX_PATHS || fn == NULL) {
        return pk_err_set(err, PK_E_INVALID, "file watch: between 1 and %d paths", MAX_PATHS);
    }
    w = pk_xcalloc(1, sizeof(*w));
    w->loop = loop;
    w->fn = fn;
    w->ctx = ctx;
    w->debounce = debounce > 0 ? debounce : 0.0;
    w->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->inotify_fd < 0) {
        PK_LOG_WARN("inotify unavailable, polling files instead error=\"%s\"", strerror(errno));
    }
    ev_timer_init(&w->settle, settle_cb, 0.0, 0.0);
    w->settle.data = w;
    for (size_t i = 0; i < n_paths; i++) {
        struct watched_path *p = &w->paths[i];
        const char *slash;

        p->path = pk_xstrdup(paths[i]);
        slash = strrchr(p->path, '/');
        p->name = slash != NULL ? slash + 1 : p->path;
        take_fingerprint(p->path, &p->last);
        ev_stat_init(&p->stat, stat_cb, p->path, STAT_INTERVAL);
        p->stat.data = w;
        ev_stat_start(loop, &p->stat);
        p->wd = watch_dir_of(w, p->path);
        watch_target(w, p);
    }
    w->n_paths = n_paths;
    if (w->inotify_fd >= 0) {
        ev_io_init(&w->inotify_io, inotify_cb, w->inotify_fd, EV_READ);
        w->inotify_io.data = w;
        ev_io_start(loop, &w->inotify_io);
    }
    *out = w;
    return 0;
}

void pk_filewatch_stop(struct pk_filewatch *w)
{
    if (w == NULL) {
        return;
    }
    for (size_t i = 0; i < w->n_paths; i++) {
        ev_stat_stop(w->loop, &w->paths[i].stat);
        free(w->paths[i].path);
    }
    ev_timer_stop(w->loop, &w->settle);
    if (w->inotify_fd >= 0) {
        ev_io_stop(w->loop, &w->inotify_io);
        close(w->inotify_fd);
    }
    free(w);
}
