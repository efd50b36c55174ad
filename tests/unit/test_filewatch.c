/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for net/filewatch: edits that stat cannot see, ..data swaps, the name filter,
 * unchanged contents, debouncing. */
#include <ev.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* cmocka.h needs setjmp.h, stdarg.h and stddef.h first. */
/* clang-format off */
#include <cmocka.h>
/* clang-format on */

#include "net/filewatch.h"

static char dir[256];

struct counter {
    int calls;
    struct ev_loop *loop;
};

static int make_dir(void **state)
{
    (void)state;
    const char *base = getenv("PICKET_TEST_TMP");
    snprintf(dir, sizeof(dir), "%s/filewatch-XXXXXX", base != NULL ? base : "/tmp");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void on_change(void *ctx)
{
    struct counter *c = ctx;
    c->calls++;
    ev_break(c->loop, EVBREAK_ALL);
}

static void stop_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)t;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* Run the loop until the callback fires or `limit` seconds pass. */
static void run_for(struct counter *c, double limit)
{
    ev_timer stop;
    ev_timer_init(&stop, stop_cb, limit, 0.0);
    ev_timer_start(c->loop, &stop);
    ev_run(c->loop, 0);
    ev_timer_stop(c->loop, &stop);
}

/* Rewritten in place, same size, same second: stat data may be identical, inotify is not. */
static void test_same_size_rewrite_is_seen(void **state)
{
    (void)state;
    char path[512];
    struct counter c = {0, ev_loop_new(EVFLAG_AUTO)};
    struct pk_filewatch *w = NULL;
    struct pk_err err;

    snprintf(path, sizeof(path), "%s/key.pem", dir);
    write_text(path, "AAAA");
    const char *paths[] = {path};
    assert_int_equal(pk_filewatch_start(c.loop, paths, 1, 0.05, on_change, &c, &w, &err), 0);
    write_text(path, "BBBB");
    run_for(&c, 1.5); /* less than the 2 s stat poll: only inotify can have fired */
    assert_int_equal(c.calls, 1);
    pk_filewatch_stop(w);
    ev_loop_destroy(c.loop);
}

/* A subdirectory of the scratch directory for one test. */
static void subdir(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
    assert_int_equal(mkdir(out, 0700), 0);
}

/* Lay out version `version` of a Kubernetes volume holding ca.crt = text, and swap ..data to
 * it the way the atomic writer does: a fresh link renamed over ..data. */
static void k8s_publish(const char *vol, const char *version, const char *text)
{
    char vdir[512], file[600], tmp[512], data[512];

    snprintf(vdir, sizeof(vdir), "%s/%s", vol, version);
    assert_int_equal(mkdir(vdir, 0700), 0);
    snprintf(file, sizeof(file), "%s/ca.crt", vdir);
    write_text(file, text);
    snprintf(tmp, sizeof(tmp), "%s/..data_tmp", vol);
    snprintf(data, sizeof(data), "%s/..data", vol);
    assert_int_equal(symlink(version, tmp), 0);
    assert_int_equal(rename(tmp, data), 0);
}

/* Kubernetes swaps a mounted Secret by renaming ..data; ca.crt is a link through it. A swap to
 * new contents is seen; a swap to identical contents is not a change. */
static void test_kubernetes_data_swap(void **state)
{
    (void)state;
    char vol[512], path[600];
    struct counter c = {0, ev_loop_new(EVFLAG_AUTO)};
    struct pk_filewatch *w = NULL;
    struct pk_err err;

    subdir(vol, sizeof(vol), "k8s");
    k8s_publish(vol, "..2026_01_01_00_00_00.1", "one");
    snprintf(path, sizeof(path), "%s/ca.crt", vol);
    assert_int_equal(symlink("..data/ca.crt", path), 0);
    const char *paths[] = {path};
    assert_int_equal(pk_filewatch_start(c.loop, paths, 1, 0.05, on_change, &c, &w, &err), 0);
    k8s_publish(vol, "..2026_01_01_00_00_00.2", "two");
    run_for(&c, 1.5); /* less than the 2 s stat poll: only inotify can have fired */
    assert_int_equal(c.calls, 1);
    c.calls = 0;
    k8s_publish(vol, "..2026_01_01_00_00_00.3", "two");
    run_for(&c, 1.0);
    assert_int_equal(c.calls, 0);
    pk_filewatch_stop(w);
    ev_loop_destroy(c.loop);
}

struct neighbour {
    char path[600];
    int writes;
};

static void write_neighbour_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    struct neighbour *n = t->data;
    char line[32];
    FILE *f = fopen(n->path, "a");
    assert_non_null(f);
    snprintf(line, sizeof(line), "line %d\n", n->writes++);
    fputs(line, f);
    fclose(f);
}

/* A file written every 50 ms beside the watched one (a log) never fires the callback. */
static void test_neighbour_writes_are_ignored(void **state)
{
    (void)state;
    char sub[512], path[600];
    struct counter c = {0, ev_loop_new(EVFLAG_AUTO)};
    struct pk_filewatch *w = NULL;
    struct neighbour n = {.writes = 0};
    struct pk_err err;
    ev_timer writer;

    subdir(sub, sizeof(sub), "neighbour");
    snprintf(path, sizeof(path), "%s/ca.crt", sub);
    snprintf(n.path, sizeof(n.path), "%s/ca.crt.log", sub);
    write_text(path, "anchors");
    const char *paths[] = {path};
    assert_int_equal(pk_filewatch_start(c.loop, paths, 1, 0.05, on_change, &c, &w, &err), 0);
    ev_timer_init(&writer, write_neighbour_cb, 0.05, 0.05);
    writer.data = &n;
    ev_timer_start(c.loop, &writer);
    run_for(&c, 1.5);
    ev_timer_stop(c.loop, &writer);
    assert_true(n.writes >= 10);
    assert_int_equal(c.calls, 0);
    pk_filewatch_stop(w);
    ev_loop_destroy(c.loop);
}

/* Rewritten with the same bytes, in place or by rename: no callback; new bytes: one. */
static void test_unchanged_rewrite_is_ignored(void **state)
{
    (void)state;
    char sub[512], path[600], tmp[600];
    struct counter c = {0, ev_loop_new(EVFLAG_AUTO)};
    struct pk_filewatch *w = NULL;
    struct pk_err err;

    subdir(sub, sizeof(sub), "unchanged");
    snprintf(path, sizeof(path), "%s/ca.crt", sub);
    snprintf(tmp, sizeof(tmp), "%s/ca.crt.new", sub);
    write_text(path, "same");
    const char *paths[] = {path};
    assert_int_equal(pk_filewatch_start(c.loop, paths, 1, 0.05, on_change, &c, &w, &err), 0);
    write_text(path, "same");
    write_text(tmp, "same");
    assert_int_equal(rename(tmp, path), 0);
    run_for(&c, 2.5); /* past the stat poll too */
    assert_int_equal(c.calls, 0);
    write_text(path, "different");
    run_for(&c, 1.5);
    assert_int_equal(c.calls, 1);
    pk_filewatch_stop(w);
    ev_loop_destroy(c.loop);
}

/* A watched symlink that leads into another directory: edits there are seen at once. */
static void test_symlink_target_directory_is_watched(void **state)
{
    (void)state;
    char sub[512], other[512], target[600], path[600];
    struct counter c = {0, ev_loop_new(EVFLAG_AUTO)};
    struct pk_filewatch *w = NULL;
    struct pk_err err;

    subdir(sub, sizeof(sub), "linked");
    subdir(other, sizeof(other), "elsewhere");
    snprintf(target, sizeof(target), "%s/real.pem", other);
    snprintf(path, sizeof(path), "%s/ca.crt", sub);
    write_text(target, "AAAA");
    assert_int_equal(symlink(target, path), 0);
    const char *paths[] = {path};
    assert_int_equal(pk_filewatch_start(c.loop, paths, 1, 0.05, on_change, &c, &w, &err), 0);
    write_text(target, "BBBB");
    run_for(&c, 1.5);
    assert_int_equal(c.calls, 1);
    pk_filewatch_stop(w);
    ev_loop_destroy(c.loop);
}

/* The name filter alone: the file, ..data, the link target; nothing else. */
static void test_event_filter(void **state)
{
    (void)state;
    assert_true(pk_filewatch_event_matters(1, "ca.crt", 1, "ca.crt", -1, ""));
    assert_true(pk_filewatch_event_matters(1, "..data", 1, "ca.crt", -1, ""));
    assert_false(pk_filewatch_event_matters(1, "..data_tmp", 1, "ca.crt", -1, ""));
    assert_false(pk_filewatch_event_matters(1, "ca.crt.log", 1, "ca.crt", -1, ""));
    assert_false(pk_filewatch_event_matters(1, "ca.cr", 1, "ca.crt", -1, ""));
    assert_false(pk_filewatch_event_matters(2, "ca.crt", 1, "ca.crt", -1, ""));
    assert_true(pk_filewatch_event_matters(2, "real.pem", 1, "ca.crt", 2, "real.pem"));
    assert_false(pk_filewatch_event_matters(2, "other.pem", 1, "ca.crt", 2, "real.pem"));
    /* ..data in the target's directory is not ours to follow; no watch matches nothing. */
    assert_false(pk_filewatch_event_matters(2, "..data", 1, "ca.crt", 2, "real.pem"));
    assert_false(pk_filewatch_event_matters(-1, "ca.crt", -1, "ca.crt", -1, ""));
}

/* Several writes in a burst give one callback, after the burst. */
static void test_burst_is_debounced(void **state)
{
    (void)state;
    char a[512], b[512];
    struct counter c = {0, ev_loop_new(EVFLAG_AUTO)};
    struct pk_filewatch *w = NULL;
    struct pk_err err;

    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/b", dir);
    write_text(a, "1");
    write_text(b, "1");
    const char *paths[] = {a, b};
    assert_int_equal(pk_filewatch_start(c.loop, paths, 2, 0.3, on_change, &c, &w, &err), 0);
    write_text(a, "2");
    write_text(b, "2");
    write_text(a, "3");
    run_for(&c, 1.5);
    assert_int_equal(c.calls, 1);
    c.calls = 0;
    run_for(&c, 0.5); /* nothing more arrives */
    assert_int_equal(c.calls, 0);
    pk_filewatch_stop(w);
    ev_loop_destroy(c.loop);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct pk_filewatch *w = NULL;
    struct pk_err err;
    const char *paths[9] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};

    assert_int_equal(pk_filewatch_start(loop, paths, 0, 0.1, on_change, NULL, &w, &err),
                     PK_E_INVALID);
    assert_int_equal(pk_filewatch_start(loop, paths, 9, 0.1, on_change, NULL, &w, &err),
                     PK_E_INVALID);
    assert_null(w);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_same_size_rewrite_is_seen),
            cmocka_unit_test(test_kubernetes_data_swap),
            cmocka_unit_test(test_neighbour_writes_are_ignored),
            cmocka_unit_test(test_unchanged_rewrite_is_ignored),
            cmocka_unit_test(test_symlink_target_directory_is_watched),
            cmocka_unit_test(test_event_filter),
            cmocka_unit_test(test_burst_is_debounced),
            cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, make_dir, NULL);
}
