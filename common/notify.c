/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the service manager's notification protocol over a unix datagram socket. */
#include "common/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/env.h"
#include "common/log.h"
#include "common/mem.h"

struct pk_notify {
    int fd;
    struct sockaddr_un addr;
    socklen_t addr_len;
    char *text; /* NOTIFY_SOCKET as given */
    double watchdog;
};

/* A decimal number without sign, blanks or anything after it. */
static int parse_u64(const char *text, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (text[0] < '0' || text[0] > '9') {
        return PK_E_INVALID;
    }
    errno = 0;
    v = strtoull(text, &end, 10);
    if (*end != '\0' || errno != 0) {
        return PK_E_INVALID;
    }
    *out = v;
    return 0;
}

/* The watchdog settings: WATCHDOG_PID, when present, must name us, else the watchdog belongs to
 * another process of the unit (a parent that exec'd us keeps it) and we must not feed it. */
static int read_watchdog(char *const *env, double *out, struct pk_err *err)
{
    const char *usec = pk_env_get(env, "WATCHDOG_USEC");
    const char *pid = pk_env_get(env, "WATCHDOG_PID");
    char q[80];
    uint64_t v, p;

    *out = 0;
    if (usec == NULL || usec[0] == '\0') {
        return 0;
    }
    if (parse_u64(usec, &v) != 0 || v == 0) {
        return pk_err_set(err, PK_E_INVALID,
                          "WATCHDOG_USEC: '%s' is not a positive number of microseconds",
                          pk_log_escape(q, sizeof(q), usec));
    }
    if (pid != NULL && pid[0] != '\0') {
        if (parse_u64(pid, &p) != 0) {
            return pk_err_set(err, PK_E_INVALID, "WATCHDOG_PID: '%s' is not a process id",
                              pk_log_escape(q, sizeof(q), pid));
        }
        if (p != (uint64_t)getpid()) {
            return 0;
        }
    }
    *out = (double)v / 1e6;
    return 0;
}

int pk_notify_open(char *const *env, struct pk_notify **out, struct pk_err *err)
{
    const char *text = pk_env_get(env, "NOTIFY_SOCKET");
    struct pk_notify *n = NULL;
    size_t len;
    char q[120];
    int r;

    *out = NULL;
    if (text == NULL || text[0] == '\0') {
        return 0;
    }
    len = strlen(text);
    n = pk_xcalloc(1, sizeof(*n));
    n->fd = -1;
    n->addr.sun_family = AF_UNIX;
    /* An abstract name has no terminating NUL and its length is part of the name, so the
     * address length must count exactly its bytes; a path is NUL-terminated as usual. */
    if (text[0] == '@') {
        if (len < 2 || len > sizeof(n->addr.sun_path)) {
            r = pk_err_set(err, PK_E_INVALID,
                           "NOTIFY_SOCKET: '%s' must be an abstract name of 1 to %zu bytes",
                           pk_log_escape(q, sizeof(q), text), sizeof(n->addr.sun_path) - 1);
            goto fail;
        }
        n->addr.sun_path[0] = '\0';
        memcpy(n->addr.sun_path + 1, text + 1, len - 1);
        n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else if (text[0] == '/') {
        if (len >= sizeof(n->addr.sun_path)) {
            r = pk_err_set(err, PK_E_INVALID, "NOTIFY_SOCKET: '%s' is longer than %zu bytes",
                           pk_log_escape(q, sizeof(q), text), sizeof(n->addr.sun_path) - 1);
            goto fail;
        }
        memcpy(n->addr.sun_path, text, len + 1);
        n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    } else {
        /* systemd 254+ also knows vsock: addresses, for services in virtual machines; a
         * sidecar is not one, so say so rather than send nowhere. */
        r = pk_err_set(err, PK_E_INVALID,
                       "NOTIFY_SOCKET: '%s' is neither an absolute path nor an @abstract name",
                       pk_log_escape(q, sizeof(q), text));
        goto fail;
    }
    r = read_watchdog(env, &n->watchdog, err);
    if (r != 0) {
        goto fail;
    }
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (n->fd < 0) {
        r = pk_err_set(err, -errno, "NOTIFY_SOCKET: socket: %s", strerror(errno));
        goto fail;
    }
    n->text = pk_xstrdup(text);
    *out = n;
    return 0;
fail:
    pk_notify_free(n);
    return r;
}

int pk_notify_send(struct pk_notify *n, const char *text, struct pk_err *err)
{
    size_t len = strlen(text);
    ssize_t sent;

    if (n == NULL) {
        return 0;
    }
    sent = sendto(n->fd, text, len, MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&n->addr,
                  n->addr_len);
    if (sent < 0) {
        return pk_err_set(err, -errno, "notify %s: %s", n->text, strerror(errno));
    }
    /* A datagram is sent whole or not at all. */
    PK_ASSERT((size_t)sent == len);
    return 0;
}

double pk_notify_watchdog_interval(const struct pk_notify *n)
{
    return n != NULL ? n->watchdog : 0;
}

const char *pk_notify_address(const struct pk_notify *n)
{
    return n != NULL ? n->text : "";
}

struct pk_notify *pk_notify_free(struct pk_notify *n)
{
    if (n == NULL) {
        return NULL;
    }
    if (n->fd >= 0) {
        close(n->fd);
    }
    free(n->text);
    free(n);
    return NULL;
}
