/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the name of a signal for log lines and messages ("SIGHUP", not 1). */
#ifndef PK_SIGNAME_H
#define PK_SIGNAME_H

#include <stddef.h>

/* "SIGHUP", "SIGTERM", ... for sig; "SIG<n>" in buf (len bytes) for a signal without a name
 * here (real-time signals). Returns a static string or buf. */
const char *pk_signal_name(int sig, char *buf, size_t len);

#endif
