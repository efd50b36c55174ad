/* SPDX-License-Identifier: Apache-2.0 */
/* picket: one proxied connection, from accept to close — the data path of DESIGN.md.
 *
 * Two sockets, one of them TLS (wolfSSL, non-blocking), two bounded buffers, explicit phases:
 *
 *   inbound:  TLS handshake (server, client certificate required) -> authorize the peer ->
 *             connect to the target -> [PROXY v2 header] -> streaming -> closing
 *   outbound: connect to the target -> TLS handshake (client, our identity) -> authorize the
 *             server -> streaming -> closing
 *
 * A peer that fails the handshake or authorization never reaches the target: inbound, the
 * target is not even connected, and nothing the peer sent (TLS 1.3 early application data
 * after its Finished included) is read before authorization passes.
 *
 * Streaming: each direction has one buffer of limits->buffer_size bytes; when it is full the
 * reader of that direction stops (backpressure) until the writer drains it. Half-close is
 * propagated: EOF from the plain side -> close_notify on the TLS side once the buffer is
 * drained; close_notify (or EOF) from the TLS side -> shutdown(SHUT_WR) on the plain side.
 * The connection ends when both directions are finished, on an error, a reset, or a timeout
 * (connect, handshake, idle; and the optional maximum lifetime). Every phase has a timer.
 *
 * Each connection holds a reference to the identity it started with (its TLS context) until it
 * closes, so rotation never touches a live connection. Runs on one libev loop (one worker's). */
#ifndef PK_PROXY_CONN_H
#define PK_PROXY_CONN_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "common/addrset.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/identity.h"
#include "common/tls.h"
#include "common/x509.h"

struct ev_loop;
struct pk_conn;

enum pk_conn_dir {
    PK_CONN_INBOUND,  /* accepted fd speaks TLS; target is plaintext */
    PK_CONN_OUTBOUND, /* accepted fd is plaintext; target speaks TLS */
};

struct pk_conn_limits {
    double connect_timeout;   /* seconds; default 5 */
    double handshake_timeout; /* seconds; default 10 */
    double idle_timeout;      /* seconds without a byte either way; 0 = none; default 300 */
    double max_lifetime;      /* seconds; 0 = none */
    size_t buffer_size;       /* per direction; default 16 KiB */
};

/* Why a connection ended (for the close log line and the counters). */
enum pk_conn_close_reason {
    PK_CLOSE_DONE,              /* both directions finished cleanly */
    PK_CLOSE_HANDSHAKE_FAILED,  /* TLS handshake failed (bad chain, no cert, protocol) */
    PK_CLOSE_HANDSHAKE_TIMEOUT, /* no complete handshake within handshake_timeout */
    PK_CLOSE_DENIED,            /* authorize() refused the peer */
    PK_CLOSE_CONNECT_FAILED,    /* target refused or unreachable */
    PK_CLOSE_CONNECT_TIMEOUT,   /* no connection within connect_timeout */
    PK_CLOSE_IDLE_TIMEOUT,      /* no byte either way for idle_timeout */
    PK_CLOSE_LIFETIME,          /* max_lifetime reached */
    PK_CLOSE_PEER_EXPIRED,      /* the peer's certificate expired while connected */
    PK_CLOSE_OWN_EXPIRED,       /* our certificate expired (close_on_own_expiry) */
    PK_CLOSE_RESET,             /* a socket error or reset mid-stream */
    PK_CLOSE_TLS_ERROR,         /* a TLS error mid-stream */
    PK_CLOSE_SHUTDOWN,          /* pk_conn_close() (drain timeout, ...) */
    PK_CLOSE_UNTRUSTED, /* the peer no longer passes after a trust-anchor or policy change */
};
const char *pk_conn_close_reason_name(enum pk_conn_close_reason r);

/* Bytes relayed by one worker's connections of one listener, counted as they are written so that
 * they show while a connection is open, not only when it ends. Only that worker's thread adds
 * (relaxed: an uncontended add on a cache line of its own); readers sum the workers' counters. */
struct pk_live_bytes {
    alignas(64) _Atomic uint64_t in; /* from the accepted side to the target */
    _Atomic uint64_t out;            /* from the target to the accepted side */
};

struct pk_conn_summary {
    const char *listener;             /* the listener's name */
    char peer_addr[64];               /* "1.2.3.4:5678", "[::1]:5678" or "unix" */
    char peer_id[256];                /* the peer's SPIFFE ID, "" before authorization */
    uint64_t bytes_in;                /* from the accepted side to the target */
    uint64_t bytes_out;               /* from the target to the accepted side */
    double duration;                  /* seconds since accept */
    enum pk_conn_close_reason reason; /* why it ended */
    char detail[256];                 /* e.g. wolfSSL's error text, the authorize() message */
    bool streamed;                    /* reached the streaming phase */
};

/* Decide whether the verified peer may talk to us. leaf is the peer's leaf (its chain already
 * verified against the identity's anchors by TLS). Return 0 to allow and write the peer's
 * SPIFFE ID into peer_id; non-zero to deny with err saying why. */
typedef int (*pk_conn_authorize_fn)(void *ctx, const struct pk_cert *leaf, char *peer_id,
                                    size_t peer_id_len, struct pk_err *err);

struct pk_conn_params {
    enum pk_conn_dir dir;
    int fd;                         /* the accepted socket, non-blocking; taken */
    struct sockaddr_storage peer;   /* its peer address */
    socklen_t peer_len;             /* 0 when unknown */
    struct sockaddr_storage target; /* where to connect: AF_INET, AF_INET6 or AF_UNIX */
    socklen_t target_len;           /* the size of that address */
    /* Or, for a target named by DNS: the name's addresses (a reference is taken) and the one to
     * try first. When connecting to one fails or times out, the next is tried, each once. */
    struct pk_addrset *targets;
    size_t target_first;
    const char *target_sni;         /* outbound: SNI to send, or NULL */
    struct pk_identity *identity;   /* a reference is taken; server TLS context for
                                     * inbound, client for outbound */
    pk_conn_authorize_fn authorize; /* required */
    void *authorize_ctx;            /* passed to authorize */
    bool proxy_protocol;            /* inbound: send a PROXY v2 header to the target */
    bool close_on_peer_expiry;      /* close when the peer's leaf expires (default on) */
    bool close_on_own_expiry; /* close when the identity the connection started with expires */
    uint32_t mark;            /* SO_MARK for the socket to the target (the firewall lets
                               * picket's own connections pass by it); 0 = none */
    /* Copied. NULL = all defaults; in a given struct, a connect or handshake timeout or a
     * buffer size of 0 means the default, buffers are at least 1 KiB (room for the PROXY
     * header), and idle_timeout / max_lifetime 0 mean none. */
    const struct pk_conn_limits *limits;
    const char *listener; /* name, borrowed: must outlive the connection */
    /* Optional (NULL = none), borrowed: must outlive the connection; every byte written to
     * either side is added here as well as to the summary. */
    struct pk_live_bytes *live_bytes;
    /* Called once when the connection has ended and released everything (on the loop): its
     * sockets are closed, its WOLFSSL freed and its identity reference dropped, and the
     * struct pk_conn is already gone (summary lives on the caller's stack), so closed() may free
     * its own context. Never called from within pk_conn_start. Required. */
    void (*closed)(void *ctx, const struct pk_conn_summary *summary);
    void *closed_ctx;
    /* Optional (NULL = none), called with closed_ctx at most once, when the connection reaches
     * the streaming phase: the peer was authorized and the target connected, so
     * pk_conn_handshaking() has just turned false. closed() later reports streamed = true for
     * exactly the connections that got this call, so a listener counts handshakes in progress
     * as: +1 on a successful pk_conn_start, -1 here, and -1 in closed() when !streamed. It may
     * call pk_conn_close(c); closed() then runs after it returns. */
    void (*established)(void *ctx, struct pk_conn *c);
};

/* Start a connection on loop. No I/O happens before the loop runs again (the first step is
 * scheduled with a zero timer), so every outcome after a successful start, an immediate
 * connect() failure included, arrives through closed(). On failure (PK_E_INVALID for bad
 * params, PK_E_TLS when no WOLFSSL can be made) the fd is closed and closed() is NOT called.
 * Borrows p (see the fields for what is taken or copied). Does not block. */
int pk_conn_start(struct ev_loop *loop, const struct pk_conn_params *p, struct pk_conn **out,
                  struct pk_err *err) PK_MUST_USE;

/* Close at once with PK_CLOSE_SHUTDOWN, in any phase: buffered bytes are dropped; a TLS peer
 * that completed its handshake gets a best-effort close_notify. closed() is called before this
 * returns, unless pk_conn_close is called from within established(), then right after that
 * returns; either way c must not be used afterwards. Not from within closed() (c is gone). */
void pk_conn_close(struct pk_conn *c);

/* pk_conn_close with a reason and a detail (borrowed, copied) for the summary. */
void pk_conn_close_because(struct pk_conn *c, enum pk_conn_close_reason reason, const char *detail);

/* True until the connection reaches the streaming phase: the TCP connect (outbound, and
 * inbound after authorization), the TLS handshake and the authorization (counts against a
 * listener's handshake cap; see established above). */
bool pk_conn_handshaking(const struct pk_conn *c);

/* The identity the connection started with (borrowed). */
const struct pk_identity *pk_conn_identity(const struct pk_conn *c);

/* The peer's leaf once authorized (borrowed), else NULL: for re-checks after an anchor or
 * policy change. */
const struct pk_cert *pk_conn_peer_leaf(const struct pk_conn *c);

/* The certificates the peer sent, leaf first, as it sent them (borrowed; empty before its
 * chain passed verification): with pk_conn_peer_leaf, what a re-check against new trust
 * anchors needs. */
const struct pk_tls_peer_chain *pk_conn_peer_chain(const struct pk_conn *c);

/* Bytes of buffer memory the connection holds right now: 0 while both directions are drained
 * (the buffers are released then), up to 2 * buffer_size while data waits. */
size_t pk_conn_buffer_bytes(const struct pk_conn *c);

#endif
