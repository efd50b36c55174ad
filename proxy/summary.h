/* SPDX-License-Identifier: Apache-2.0 */
/* picket: how a connection's end is recorded, shared by the TLS connection (conn.c) and the
 * plaintext relay (relay.c). Each keeps its own teardown; this only decides which reason is
 * reported. Internal to the proxy. */
#ifndef PK_PROXY_SUMMARY_H
#define PK_PROXY_SUMMARY_H

#include <stdbool.h>

#include "common/compiler.h"
#include "proxy/conn.h"

/* Record why a connection ends: the first reason wins. When *finishing is already set, nothing
 * changes; otherwise set it and write reason and the formatted detail into sum. The caller's
 * teardown acts on *finishing later (the callback that noticed the failure tears down last). */
void pk_conn_summary_fail(struct pk_conn_summary *sum, bool *finishing,
                          enum pk_conn_close_reason reason, const char *fmt, ...) PK_PRINTF(4, 5);

#endif
