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
