/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the process_* metrics every Prometheus client library exports, for /metrics of both
 * picket run and picket sentry: process_cpu_seconds_total, process_resident_memory_bytes,
 * process_open_fds, process_max_fds and process_start_time_seconds. */
#ifndef PK_PROCMETRICS_H
#define PK_PROCMETRICS_H

#include "common/buf.h"
#include "common/compiler.h"

/* Remember when the process started (wall clock). Call once, early in main: under
 * ProcSubset=pid the boot time in /proc/stat that client libraries use is not readable. */
void pk_process_metrics_init(void);

/* Append the families, with HELP and TYPE, in the text exposition format. A value that cannot
 * be read here (no /proc) is left out, never invented. 0 or PK_E_TOOBIG. */
int pk_process_metrics(struct pk_buf *out) PK_MUST_USE;

#endif
