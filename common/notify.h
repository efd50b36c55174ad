/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the service manager's notification protocol (systemd's sd_notify), without libsystemd.
 *
 * The protocol: the manager puts the address of a unix datagram socket in $NOTIFY_SOCKET — a
 * file system path ("/run/systemd/notify") or, with a leading '@', a name in Linux's abstract
 * namespace — and the service sends it datagrams of newline-separated VARIABLE=VALUE lines:
 * READY=1 once it serves, RELOADING=1 (with MONOTONIC_USEC=) when it starts a reload and READY=1
 * again when done, STOPPING=1 when it begins to shut down, STATUS=text for `systemctl status`,
 * and WATCHDOG=1 as a keep-alive when the unit has WatchdogSec= (the manager then sets
 * $WATCHDOG_USEC, and $WATCHDOG_PID when the watchdog is meant for one process only).
 *
 * Without $NOTIFY_SOCKET every call here does nothing and succeeds, so picket behaves the same
 * under systemd and anywhere else. A send never blocks (MSG_DONTWAIT): a manager that is not
 * reading loses a message rather than stalling the sidecar. */
#ifndef PK_NOTIFY_H
#define PK_NOTIFY_H

#include <stdbool.h>

#include "compiler.h"
#include "err.h"

struct pk_notify;

/* Read NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from env (borrowed; a NULL-terminated
 * "NAME=value" array: pass `environ`) and open a datagram socket for them. *out is NULL when
 * NOTIFY_SOCKET is unset or empty. PK_E_INVALID, with err naming the variable and the value,
 * when NOTIFY_SOCKET is neither an absolute path nor an '@' name, or is too long for a unix
 * socket address, or WATCHDOG_USEC is not a positive number of microseconds; -errno when no
 * socket can be made. Never blocks. */
int pk_notify_open(char *const *env, struct pk_notify **out, struct pk_err *err) PK_MUST_USE;

/* Send one datagram holding text (borrowed: one or more VARIABLE=VALUE lines). 0 when sent or
 * when notify is NULL; -errno when the manager's socket refuses it (err says which address).
 * Never blocks. */
int pk_notify_send(struct pk_notify *notify, const char *text, struct pk_err *err) PK_MUST_USE;

/* The watchdog interval in seconds from WATCHDOG_USEC, or 0 when there is none (unset, notify
 * NULL, or WATCHDOG_PID names another process). Send WATCHDOG=1 at least twice per interval. */
double pk_notify_watchdog_interval(const struct pk_notify *notify);

/* The address as given in NOTIFY_SOCKET, for logs. */
const char *pk_notify_address(const struct pk_notify *notify);

/* Close the socket and free. NULL is fine. Returns NULL. */
struct pk_notify *pk_notify_free(struct pk_notify *notify);

#endif
