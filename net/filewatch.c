/* SPDX-License-Identifier: Apache-2.0 */
/* picket: file change notification on libev, inotify on the directories plus ev_stat. */
#include "filewatch.h"

#include <errno.h>
#include <ev.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"

#define MAX_PATHS     8
#define STAT_INTERVAL 2.0

struct pk_filewatch {
    struct ev_loop *loop;
    pk_filewatch_fn fn;
    void *ctx;
    double debounce;
    int inotify_fd;
    ev_io inotify_io;
    ev_stat stats[MAX_PATHS];
    char *paths[MAX_PATHS];
    size_t n_paths;
    ev_timer settle;
};

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
    w->fn(w->ctx);
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
    /* Aligned as inotify(7) asks; the events themselves are not inspected. */
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool any = false;

    for (;;) {
        ssize_t n = read(w->inotify_fd, buf, sizeof(buf));
        if (n > 0) {
            any = true;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        break; /* EAGAIN: drained */
    }
    if (any) {
        changed(w);
    }
}

/* Watch the directory of path with inotify; failure is logged and left to ev_stat. */
static void watch_dir(struct pk_filewatch *w, const char *path)
{
    char copy[PATH_MAX];
    const uint32_t mask = IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                          IN_DELETE | IN_ATTRIB | IN_ONLYDIR;

    if (w->inotify_fd < 0 || snprintf(copy, sizeof(copy), "%s", path) >= (int)sizeof(copy)) {
        return;
    }
    /* Adding the same directory twice returns the same watch, so no bookkeeping is needed. */
    if (inotify_add_watch(w->inotify_fd, dirname(copy), mask) < 0) {
        PK_LOG_WARN("cannot watch directory with inotify, polling instead path=%s error=\"%s\"",
                    path, strerror(errno));
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
        w->paths[i] = pk_xstrdup(paths[i]);
        ev_stat_init(&w->stats[i], stat_cb, w->paths[i], STAT_INTERVAL);
        w->stats[i].data = w;
        ev_stat_start(loop, &w->stats[i]);
        watch_dir(w, w->paths[i]);
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
        ev_stat_stop(w->loop, &w->stats[i]);
        free(w->paths[i]);
    }
    ev_timer_stop(w->loop, &w->settle);
    if (w->inotify_fd >= 0) {
        ev_io_stop(w->loop, &w->inotify_io);
        close(w->inotify_fd);
    }
    free(w);
}
