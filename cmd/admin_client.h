/* SPDX-License-Identifier: Apache-2.0 */
/* picket: a blocking GET against a sidecar's admin endpoint, for `picket status` and
 * `picket demo`. One request per connection, as the endpoint serves them; the whole exchange
 * (connect, send, read to EOF) must finish within the timeout, and the answer is capped. */
#ifndef PK_CMD_ADMIN_CLIENT_H
#define PK_CMD_ADMIN_CLIENT_H

#include "common/buf.h"
#include "common/compiler.h"
#include "common/err.h"

/* The largest answer read: /status of a sidecar with the most listeners fits many times. */
#define PK_ADMIN_CLIENT_MAX_REPLY (4u * 1024u * 1024u)

/* GET path (borrowed) from address (borrowed; as [admin] listen: "HOST:PORT" with a numeric or
 * "localhost" host, "[V6]:PORT" or "unix:/PATH") within timeout seconds. On 0 *status holds the
 * HTTP status and body (initialised by the caller, its cap at least the body's size) the body.
 * PK_E_TIMEOUT, PK_E_PROTO (not an HTTP/1.x answer), PK_E_TOOBIG, PK_E_INVALID (bad address) or
 * -errno (connection refused, ...), with err naming the address. Blocks. */
int pk_admin_get(const char *address, const char *path, double timeout, int *status,
                 struct pk_buf *body, struct pk_err *err) PK_MUST_USE;

#endif
