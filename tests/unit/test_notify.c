/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for common/notify: datagrams reach a path socket and an abstract one, bad addresses
 * and watchdog values are refused with the variable named, WATCHDOG_PID for another process
 * turns the watchdog off, and no NOTIFY_SOCKET means no-ops. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* cmocka.h needs setjmp.h, stdarg.h and stddef.h first. */
/* clang-format off */
#include <cmocka.h>
/* clang-format on */

#include "common/err.h"
#include "common/notify.h"

/* A receiving datagram socket bound to addr (path, or '@' name). */
static int bind_receiver(const char *addr)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    size_t len = strlen(addr);
    socklen_t alen;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    memcpy(un.sun_path, addr, len);
    if (addr[0] == '@') {
        un.sun_path[0] = '\0';
        alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        unlink(addr);
        alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    }
    assert_int_equal(bind(fd, (struct sockaddr *)&un, alen), 0);
    return fd;
}

static void expect_datagram(int fd, const char *want)
{
    char buf[512];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
    assert_true(n >= 0);
    buf[n] = '\0';
    assert_string_equal(buf, want);
}

static void send_and_receive(const char *addr)
{
    char var[200];
    char *env[] = {var, NULL};
    struct pk_notify *n = NULL;
    struct pk_err err;
    int fd = bind_receiver(addr);

    snprintf(var, sizeof(var), "NOTIFY_SOCKET=%s", addr);
    assert_int_equal(pk_notify_open(env, &n, &err), 0);
    assert_non_null(n);
    assert_string_equal(pk_notify_address(n), addr);
    assert_int_equal(pk_notify_send(n, "READY=1\nSTATUS=serving", &err), 0);
    expect_datagram(fd, "READY=1\nSTATUS=serving");
    assert_int_equal(pk_notify_send(n, "STOPPING=1", &err), 0);
    expect_datagram(fd, "STOPPING=1");
    assert_true(pk_notify_watchdog_interval(n) == 0);
    pk_notify_free(n);
    close(fd);
    if (addr[0] != '@') {
        unlink(addr);
    }
}

static void test_path_socket(void **state)
{
    (void)state;
    const char *base = getenv("PICKET_TEST_TMP");
    char path[100];
    snprintf(path, sizeof(path), "%s/notify-%d.sock", base != NULL ? base : "/tmp", (int)getpid());
    if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        snprintf(path, sizeof(path), "/tmp/picket-notify-%d.sock", (int)getpid());
    }
    send_and_receive(path);
}

static void test_abstract_socket(void **state)
{
    (void)state;
    char name[64];
    snprintf(name, sizeof(name), "@picket-test-notify-%d", (int)getpid());
    send_and_receive(name);
}

static void test_unset_is_a_no_op(void **state)
{
    (void)state;
    char *env[] = {"PATH=/bin", "NOTIFY_SOCKET=", NULL};
    struct pk_notify *n = (struct pk_notify *)1;
    struct pk_err err;

    assert_int_equal(pk_notify_open(env, &n, &err), 0);
    assert_null(n);
    assert_int_equal(pk_notify_send(NULL, "READY=1", &err), 0);
    assert_true(pk_notify_watchdog_interval(NULL) == 0);
    assert_null(pk_notify_free(NULL));
}

static void expect_refused(char **env, const char *words)
{
    struct pk_notify *n = NULL;
    struct pk_err err;

    pk_err_clear(&err);
    assert_int_equal(pk_notify_open(env, &n, &err), PK_E_INVALID);
    assert_null(n);
    if (strstr(err.msg, words) == NULL) {
        fail_msg("message '%s' lacks '%s'", err.msg, words);
    }
}

static void test_bad_addresses(void **state)
{
    (void)state;
    char long_path[200] = "NOTIFY_SOCKET=/";
    memset(long_path + strlen(long_path), 'a', 150);
    char *relative[] = {"NOTIFY_SOCKET=run/notify", NULL};
    char *vsock[] = {"NOTIFY_SOCKET=vsock:2:1234", NULL};
    char *bare_at[] = {"NOTIFY_SOCKET=@", NULL};
    char *too_long[] = {long_path, NULL};

    expect_refused(relative, "NOTIFY_SOCKET: 'run/notify'");
    expect_refused(vsock, "neither an absolute path nor an @abstract name");
    expect_refused(bare_at, "abstract name of 1 to");
    expect_refused(too_long, "longer than");
}

static void test_watchdog(void **state)
{
    (void)state;
    char pid[40], other[40];
    char *ok[] = {"NOTIFY_SOCKET=@picket-wd", "WATCHDOG_USEC=3000000", NULL};
    char *mine[] = {"NOTIFY_SOCKET=@picket-wd", "WATCHDOG_USEC=500000", pid, NULL};
    char *theirs[] = {"NOTIFY_SOCKET=@picket-wd", "WATCHDOG_USEC=500000", other, NULL};
    char *zero[] = {"NOTIFY_SOCKET=@picket-wd", "WATCHDOG_USEC=0", NULL};
    char *junk[] = {"NOTIFY_SOCKET=@picket-wd", "WATCHDOG_USEC=5s", NULL};
    char *bad_pid[] = {"NOTIFY_SOCKET=@picket-wd", "WATCHDOG_USEC=5", "WATCHDOG_PID=x1", NULL};
    struct pk_notify *n = NULL;
    struct pk_err err;

    snprintf(pid, sizeof(pid), "WATCHDOG_PID=%d", (int)getpid());
    snprintf(other, sizeof(other), "WATCHDOG_PID=%d", (int)getpid() + 1);
    assert_int_equal(pk_notify_open(ok, &n, &err), 0);
    assert_true(pk_notify_watchdog_interval(n) == 3.0);
    n = pk_notify_free(n);
    assert_int_equal(pk_notify_open(mine, &n, &err), 0);
    assert_true(pk_notify_watchdog_interval(n) == 0.5);
    n = pk_notify_free(n);
    assert_int_equal(pk_notify_open(theirs, &n, &err), 0);
    assert_true(pk_notify_watchdog_interval(n) == 0);
    n = pk_notify_free(n);
    expect_refused(zero, "WATCHDOG_USEC: '0'");
    expect_refused(junk, "WATCHDOG_USEC: '5s' is not a positive number");
    expect_refused(bad_pid, "WATCHDOG_PID: 'x1'");
}

/* Nobody listening: the send fails with the address named, and nothing blocks. */
static void test_send_without_receiver(void **state)
{
    (void)state;
    char *env[] = {"NOTIFY_SOCKET=/nonexistent/picket/notify", NULL};
    struct pk_notify *n = NULL;
    struct pk_err err;

    assert_int_equal(pk_notify_open(env, &n, &err), 0);
    pk_err_clear(&err);
    assert_true(pk_notify_send(n, "READY=1", &err) < 0);
    assert_non_null(strstr(err.msg, "/nonexistent/picket/notify"));
    pk_notify_free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_path_socket),      cmocka_unit_test(test_abstract_socket),
            cmocka_unit_test(test_unset_is_a_no_op), cmocka_unit_test(test_bad_addresses),
            cmocka_unit_test(test_watchdog),         cmocka_unit_test(test_send_without_receiver),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
