/* SPDX-License-Identifier: Apache-2.0 */
/* picket: a plaintext relay — the accepted socket and one connection to a target, no TLS.
 *
 * For what picket lets through without mutual TLS on purpose: a transparent listener's
 * `passthrough' destinations and a permissive inbound listener's plaintext clients. Phases:
 * connect to the target (with the connect timeout), then copy both ways through one buffer per
 * direction until both directions have ended; an EOF from one side becomes shutdown(SHUT_WR) on
 * the other once its buffer is drained. A reset or error on either side ends both, as do the
 * idle timeout and the maximum lifetime. Runs on one libev loop. */
#ifndef PK_PROXY_RELAY_H
#define PK_PROXY_RELAY_H

#include <stdint.h>
#include <sys/socket.h>

#include "common/compiler.h"
#include "common/err.h"
#include "proxy/conn.h"

struct ev_loop;
struct pk_relay;

struct pk_relay_params {
    int fd;                         /* the accepted socket, non-blocking; taken */
    struct sockaddr_storage peer;   /* its peer, for the summary */
    socklen_t peer_len;             /* 0 when unknown */
    struct sockaddr_storage target; /* AF_INET or AF_INET6 */
    socklen_t target_len;
    uint32_t mark; /* SO_MARK for the target socket; 0 = none */
    /* Copied; NULL = defaults. handshake_timeout is not used; buffer_size 0 = 16 KiB. */
    const struct pk_conn_limits *limits;
    const char *listener;             /* borrowed: must outlive the relay */
    struct pk_live_bytes *live_bytes; /* optional, borrowed; as in struct pk_conn_params */
    /* Called once when the relay has ended and released everything, the relay already gone;
     * never from within pk_relay_start. Required. */
    void (*closed)(void *ctx, const struct pk_conn_summary *summary);
    /* Called at most once, when the target is connected (summary.streamed turns true).
     * Optional; must not close the relay. */
    void (*established)(void *ctx);
    void *ctx;
};

/* Start a relay on loop; the first step runs on the loop's next iteration, so every outcome
 * after a successful start arrives through closed(). PK_E_INVALID for bad params (the fd is
 * then closed and closed() never called). Borrows p. Does not block. */
int pk_relay_start(struct ev_loop *loop, const struct pk_relay_params *p, struct pk_relay **out,
                   struct pk_err *err) PK_MUST_USE;

/* End the relay now with PK_CLOSE_SHUTDOWN; closed() runs before this returns. Not from within
 * its own closed() or established(). */
void pk_relay_close(struct pk_relay *r);

#endif
