/* SPDX-License-Identifier: Apache-2.0 */
/* picket: blocking GET against the admin endpoint, bounded in time and size. */
#include "cmd/admin_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/http1.h"

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_address(const char *text, struct sockaddr_storage *ss, socklen_t *len,
                         struct pk_err *err)
{
    struct pk_addr addr;

    if (pk_addr_parse(text, PK_ADDR_UNIX_RELATIVE, &addr, err) != 0) {
        return pk_err_prefix(err, PK_E_INVALID, "admin address");
    }
    *ss = addr.sa;
    *len = addr.sa_len;
    return 0;
}

/* Wait until fd is ready for events or the deadline passes. */
static int wait_fd(int fd, short events, double deadline)
{
    for (;;) {
        double left = deadline - mono_now();
        struct pollfd pfd = {.fd = fd, .events = events};
        int n;
        if (left <= 0) {
            return PK_E_TIMEOUT;
        }
        n = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (n > 0) {
            return 0;
        }
        if (n < 0 && errno != EINTR) {
            return -errno;
        }
    }
}

int pk_admin_get(const char *address, const char *path, double timeout, int *status,
                 struct pk_buf *body, struct pk_err *err)
{
    double deadline = mono_now() + timeout;
    struct sockaddr_storage ss;
    socklen_t slen = 0;
    struct pk_buf in;
    struct pk_http1_response_view view;
    char req[512];
    size_t sent = 0, req_len;
    int fd = -1, r;

    pk_buf_init(&in, PK_ADMIN_CLIENT_MAX_REPLY);
    r = parse_address(address, &ss, &slen, err);
    if (r != 0) {
        goto out;
    }
    req_len = (size_t)snprintf(req, sizeof(req),
                               "GET %s HTTP/1.1\r\nHost: picket\r\nUser-Agent: picket\r\n"
                               "Connection: close\r\n\r\n",
                               path);
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = pk_err_set(err, -errno, "%s: socket: %s", address, strerror(errno));
        goto out;
    }
    if (connect(fd, (struct sockaddr *)&ss, slen) != 0) {
        int soerr = 0;
        socklen_t elen = sizeof(soerr);
        if (errno != EINPROGRESS && errno != EAGAIN) {
            r = pk_err_set(err, -errno, "%s: %s", address, strerror(errno));
            goto out;
        }
        r = wait_fd(fd, POLLOUT, deadline);
        if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &elen) == 0 && soerr != 0) {
            r = -soerr;
        }
        if (r != 0) {
            pk_err_set(err, r, "%s: %s", address,
                       r == PK_E_TIMEOUT ? "no connection within the timeout" : strerror(-r));
            goto out;
        }
    }
    while (sent < req_len) {
        ssize_t n = send(fd, req + sent, req_len - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            r = wait_fd(fd, POLLOUT, deadline);
        } else {
            r = -errno;
        }
        if (r != 0) {
            pk_err_set(err, r, "%s: sending the request: %s", address,
                       r == PK_E_TIMEOUT ? "timed out" : strerror(-r));
            goto out;
        }
    }
    for (;;) {
        uint8_t chunk[16384];
        ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
        if (n == 0) {
            break;
        }
        if (n > 0) {
            if (pk_buf_append(&in, chunk, (size_t)n) != 0) {
                r = pk_err_set(err, PK_E_TOOBIG, "%s: answer larger than %u bytes", address,
                               PK_ADMIN_CLIENT_MAX_REPLY);
                goto out;
            }
            continue;
        }
        r = (errno == EAGAIN || errno == EINTR) ? wait_fd(fd, POLLIN, deadline) : -errno;
        if (r != 0) {
            pk_err_set(err, r, "%s: reading the answer: %s", address,
                       r == PK_E_TIMEOUT ? "timed out" : strerror(-r));
            goto out;
        }
    }
    r = pk_http1_parse_response(in.data, in.len, &view, err);
    if (r != 0) {
        pk_err_prefix(err, r, "%s%s", address, path);
        goto out;
    }
    r = pk_buf_append(body, view.body.ptr, view.body.len);
    if (r != 0) {
        pk_err_set(err, r, "%s%s: body too large", address, path);
        goto out;
    }
    *status = view.status;
out:
    if (fd >= 0) {
        close(fd);
    }
    pk_buf_free(&in);
    return r;
}
