/* SPDX-License-Identifier: Apache-2.0 */
/* picket: recording a connection's end (see summary.h). */
#include "proxy/summary.h"

#include <stdarg.h>
#include <stdio.h>

void pk_conn_summary_fail(struct pk_conn_summary *sum, bool *finishing,
                          enum pk_conn_close_reason reason, const char *fmt, ...)
{
    va_list ap;

    if (*finishing) {
        return;
    }
    *finishing = true;
    sum->reason = reason;
    va_start(ap, fmt);
    vsnprintf(sum->detail, sizeof(sum->detail), fmt, ap);
    va_end(ap);
}

const char *pk_conn_close_reason_name(enum pk_conn_close_reason r)
{
    switch (r) {
    case PK_CLOSE_DONE:
        return "done";
    case PK_CLOSE_HANDSHAKE_FAILED:
        return "handshake_failed";
    case PK_CLOSE_HANDSHAKE_TIMEOUT:
        return "handshake_timeout";
    case PK_CLOSE_DENIED:
        return "denied";
    case PK_CLOSE_CONNECT_FAILED:
        return "connect_failed";
    case PK_CLOSE_CONNECT_TIMEOUT:
        return "connect_timeout";
    case PK_CLOSE_IDLE_TIMEOUT:
        return "idle_timeout";
    case PK_CLOSE_LIFETIME:
        return "lifetime";
    case PK_CLOSE_PEER_EXPIRED:
        return "peer_expired";
    case PK_CLOSE_OWN_EXPIRED:
        return "own_expired";
    case PK_CLOSE_RESET:
        return "reset";
    case PK_CLOSE_TLS_ERROR:
        return "tls_error";
    case PK_CLOSE_SHUTDOWN:
        return "shutdown";
    case PK_CLOSE_UNTRUSTED:
        return "untrusted";
    }
    return "unknown";
}
