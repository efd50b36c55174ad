/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for net/filewatch: edits that stat cannot see, directory swaps, debouncing. */
#include <ev.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Kubernetes swaps a mounted Secret by renaming a symlink next to the file. */
static void test_directory_rename_is_seen(void **state)
{
    (void)state;
    char path[512], tmp[512], link[512];
    struct counter c = {0, ev_loop_new(EVFLAG_AUTO)};
    struct pk_filewatch *w = NULL;
    struct pk_err err;

    snprintf(path, sizeof(path), "%s/ca.crt", dir);
    snprintf(tmp, sizeof(tmp), "%s/..data_tmp", dir);
    snprintf(link, sizeof(link), "%s/..data", dir);
    write_text(path, "x");
    const char *paths[] = {path};
    assert_int_equal(pk_filewatch_start(c.loop, paths, 1, 0.05, on_change, &c, &w, &err), 0);
    assert_int_equal(symlink(".", tmp), 0);
    assert_int_equal(rename(tmp, link), 0);
    run_for(&c, 1.5);
    assert_int_equal(c.calls, 1);
    pk_filewatch_stop(w);
    unlink(link);
    ev_loop_destroy(c.loop);
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
            cmocka_unit_test(test_directory_rename_is_seen),
            cmocka_unit_test(test_burst_is_debounced),
            cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, make_dir, NULL);
}
