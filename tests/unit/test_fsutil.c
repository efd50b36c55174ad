/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for common/fsutil: bounded reads at and around the cap, atomic writes and modes. */
#include <errno.h>
#include <fcntl.h>
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

#include "common/buf.h"
#include "common/err.h"
#include "common/fsutil.h"

static char dir[256];

static int make_dir(void **state)
{
    (void)state;
    const char *base = getenv("PICKET_TEST_TMP");
    snprintf(dir, sizeof(dir), "%s/fsutil-XXXXXX", base != NULL ? base : "/tmp");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static void write_n(const char *path, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++) {
        fputc('a' + (int)(i % 26), f);
    }
    fclose(f);
}

/* A file of exactly the cap fits a buffer whose capacity is exactly the cap. */
static void test_read_exactly_max(void **state)
{
    (void)state;
    char path[512];
    struct pk_buf out;
    struct pk_err err;

    snprintf(path, sizeof(path), "%s/exact", dir);
    write_n(path, 100);
    pk_buf_init(&out, 100);
    assert_int_equal(pk_fs_read_file(path, 100, &out, &err), 0);
    assert_int_equal(out.len, 100);
    assert_int_equal(out.data[99], 'a' + 99 % 26);
    pk_buf_free(&out);
}

/* One byte over the cap is refused, and the buffer is left as it was. */
static void test_read_one_over_max(void **state)
{
    (void)state;
    char path[512];
    struct pk_buf out;
    struct pk_err err;

    snprintf(path, sizeof(path), "%s/over", dir);
    write_n(path, 101);
    pk_buf_init(&out, 1000);
    assert_int_equal(pk_buf_append(&out, "xy", 2), 0);
    assert_int_equal(pk_fs_read_file(path, 100, &out, &err), PK_E_TOOBIG);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(out.len, 2);
    pk_buf_free(&out);
}

static void test_read_missing_and_directory(void **state)
{
    (void)state;
    char path[512];
    struct pk_buf out;
    struct pk_err err;

    snprintf(path, sizeof(path), "%s/missing", dir);
    pk_buf_init(&out, 100);
    assert_int_equal(pk_fs_read_file(path, 100, &out, &err), PK_E_NOTFOUND);
    assert_non_null(strstr(err.msg, "does not exist"));
    assert_int_equal(pk_fs_read_file(dir, 100, &out, &err), PK_E_INVALID);
    assert_non_null(strstr(err.msg, "not a regular file"));
    pk_buf_free(&out);
}

/* A FIFO where a file belongs is refused at once, not waited on for a writer (the alarm kills
 * the test if open() blocks). */
static void test_read_fifo_does_not_block(void **state)
{
    (void)state;
    char path[512];
    struct pk_buf out;
    struct pk_err err;

    snprintf(path, sizeof(path), "%s/fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    pk_buf_init(&out, 100);
    alarm(10);
    assert_int_equal(pk_fs_read_file(path, 100, &out, &err), PK_E_INVALID);
    alarm(0);
    assert_non_null(strstr(err.msg, "not a regular file"));
    pk_buf_free(&out);
}

static void test_write_atomic_mode(void **state)
{
    (void)state;
    char path[512];
    struct stat st;
    struct pk_err err;

    snprintf(path, sizeof(path), "%s/secret", dir);
    assert_int_equal(pk_fs_write_atomic(path, "k1", 2, 0600, &err), 0);
    assert_int_equal(pk_fs_write_atomic(path, "key2", 4, 0600, &err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 4);
}

/* A new file is born with its mode under any umask, and never written through a planted link
 * or over an existing file. */
static void test_write_new_at_exclusive_and_mode(void **state)
{
    (void)state;
    char target[512], linkp[512];
    struct stat st;
    struct pk_err err;
    mode_t old_umask = umask(0);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);

    assert_true(dfd >= 0);
    assert_int_equal(pk_fs_write_new_at(dfd, "new-key", "k", 1, 0600, "new-key", &err), 0);
    assert_int_equal(fstatat(dfd, "new-key", &st, 0), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* Existing: refused, and the file is left as it was. */
    assert_int_equal(pk_fs_write_new_at(dfd, "new-key", "kk", 2, 0600, "new-key", &err), -EEXIST);
    assert_non_null(strstr(err.msg, "new-key: cannot create"));
    assert_int_equal(fstatat(dfd, "new-key", &st, 0), 0);
    assert_int_equal(st.st_size, 1);
    /* A dangling link planted under the name is not followed to create its target. */
    snprintf(target, sizeof(target), "%s/elsewhere", dir);
    snprintf(linkp, sizeof(linkp), "%s/planted", dir);
    assert_int_equal(symlink(target, linkp), 0);
    assert_int_equal(pk_fs_write_new_at(dfd, "planted", "k", 1, 0600, "planted", &err), -EEXIST);
    assert_int_equal(stat(target, &st), -1);
    assert_int_equal(pk_fs_sync_dir(dfd, dir, &err), 0);
    umask(old_umask);
    close(dfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_read_exactly_max),
            cmocka_unit_test(test_read_one_over_max),
            cmocka_unit_test(test_read_missing_and_directory),
            cmocka_unit_test(test_read_fifo_does_not_block),
            cmocka_unit_test(test_write_atomic_mode),
            cmocka_unit_test(test_write_new_at_exclusive_and_mode),
    };
    return cmocka_run_group_tests(tests, make_dir, NULL);
}
