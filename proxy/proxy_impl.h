/* SPDX-License-Identifier: Apache-2.0 */
/* picket: what the parts of the proxy share and nothing outside proxy/ uses: the structures
 * (see the notes at the top of proxy/proxy.c) and the functions one part calls in another.
 *   proxy/listen.c   socket sets, listeners and listener sets
 *   proxy/gen.c      generations and the re-checks of live connections
 *   proxy/accept.c   accepting and starting connections (mTLS, transparent, relay, sniff)
 *   proxy/proxy.c    worker loops and the public side (proxy/proxy.h) */
#ifndef PK_PROXY_IMPL_H
#define PK_PROXY_IMPL_H

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/dstmap.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/spiffe.h"
#include "common/tls.h"
#include "proxy/conn.h"
#include "proxy/origdst.h"
#include "proxy/policy.h"
#include "proxy/proxy.h"
#include "proxy/recheck.h"
#include "proxy/relay.h"
#include "proxy/sniff.h"

/* Connections accepted per wake-up, so one busy listener cannot starve the loop. */
#define ACCEPT_BATCH 64
/* While a cap is reached or the process is out of descriptors, look again this often. */
#define ACCEPT_PAUSE   0.05
#define LISTEN_BACKLOG 1024
#define MAX_WORKERS    256
/* After the first bytes of what may be a ClientHello, look again this much later (peeked bytes
 * keep the socket readable, so watching it would spin). */
#define SNIFF_REPOLL 0.01

struct worker;
struct listener;

/* The listening sockets of one address. */
struct lsock {
    atomic_int refs;
    char *listen; /* as configured */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    bool is_unix;
    dev_t unix_dev; /* the socket file we created, removed when the set is freed */
    ino_t unix_ino;
    uint16_t port;
    int *fds; /* per worker; -1 where there is none (or it was closed) */
    unsigned n_fds;
};

/* One worker's accept state for one listener (that worker's thread only). */
struct lwatch {
    struct worker *w;
    struct listener *l;
    size_t li; /* the listener's index in the worker's current generation */
    ev_io io;
    ev_timer resume; /* accepting paused */
    /* A DNS name's target: this worker's reference to the answer it last took from the slot,
     * the slot's generation then, and a counter that spreads connections over the addresses. */
    struct pk_addrset *addrs;
    uint64_t addrs_generation;
    size_t next_addr;
    bool on;                  /* watchers started */
    bool starved;             /* paused for lack of descriptors */
    ev_tstamp starved_logged; /* when that was last logged (0: never) */
};

struct listener {
    atomic_int refs;
    struct pk_listener_config cfg; /* own copy */
    struct lsock *sock;
    struct sockaddr_storage target;
    socklen_t target_len;
    struct pk_conn_limits limits;
    uint32_t mark;             /* SO_MARK for sockets to targets; 0 = none */
    struct pk_dst_rule *rules; /* transparent: the map lines, parsed (cfg's map_rules) */
    size_t n_rules;
    struct pk_addrset_slot *target_slot; /* a DNS name's target (cfg's), or NULL */
    struct lwatch *watch;                /* per worker */
    unsigned n_watch;
    _Atomic unsigned accepting; /* workers whose watchers are on */
    _Atomic uint64_t active, total, handshaking;
    struct pk_live_bytes *bytes; /* per worker, added to as bytes are relayed */
    struct handshake_hist *hist; /* per worker: handshake durations */
    unsigned n_bytes;            /* workers: the length of bytes and hist */
    _Atomic uint64_t closed[PK_PROXY_CLOSE_REASONS];
    _Atomic uint64_t passthrough;    /* transparent: connections let through in plaintext */
    _Atomic uint64_t plaintext, tls; /* permissive inbound: what the first bytes were */
};

/* The identity in force, the listener set and the policies built for both. */
struct gen {
    atomic_int refs;
    struct pk_identity *id;
    struct listener **listeners; /* references */
    struct pk_policy **policies; /* one per listener */
    /* one per listener: for a transparent one, a policy per map line (NULL for passthrough and
     * deny lines); NULL for the other kinds */
    struct pk_policy ***map_policies;
    size_t n;
};

enum proxied_kind {
    PC_CONN,  /* an mTLS connection (struct pk_conn) */
    PC_RELAY, /* a plaintext relay: passthrough, or permissive plaintext */
    PC_SNIFF, /* permissive inbound: waiting for the first bytes to tell TLS from plaintext */
};

/* One worker's handshake durations for one listener: written by that worker only (relaxed), on
 * cache lines of its own; summed when read. */
struct handshake_hist {
    alignas(64) _Atomic uint64_t bucket[PK_HANDSHAKE_BUCKETS + 1]; /* not cumulative; last +Inf */
    _Atomic uint64_t sum_ns;
};

struct proxied {
    struct proxied *prev, *next;
    struct worker *w;
    size_t li; /* listener index in gen */
    struct gen *gen;
    enum proxied_kind kind;
    struct pk_conn *conn;   /* PC_CONN */
    struct pk_relay *relay; /* PC_RELAY */
    /* the accepted socket until a pk_conn or relay takes it (PC_SNIFF waits with it) */
    int fd;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    ev_io sniff_io;
    ev_timer sniff_timer; /* the deadline, or a short pause after a partial ClientHello */
    ev_tstamp sniff_deadline;
    struct sockaddr_storage dst; /* transparent: the original destination */
    bool transparent;            /* dst is set and decides the policy */
    bool established;            /* no longer counted as a handshake in progress */
    ev_tstamp accepted_at;       /* ev_time() at accept, for the handshake duration */
};

struct worker {
    struct pk_proxy *px;
    unsigned index;
    pthread_t thread;
    bool thread_started;
    struct ev_loop *loop;
    ev_async wake;
    pthread_mutex_t lock; /* guards pending, stopping, drain_timeout */
    struct gen *pending;
    bool stopping;
    double drain_timeout;
    /* Loop-thread state. */
    struct gen *current;
    bool draining;
    ev_timer drain_timer;
    struct proxied *conns;
    size_t n_conns;
};

struct pk_proxy {
    char *namespace_;            /* ours, for policies before the identity says */
    uint32_t mark;               /* [proxy] mark: SO_MARK for sockets to targets; 0 = none */
    struct listener **listeners; /* the current set (main thread), references */
    size_t n_listeners;
    struct pk_identity_slot *slot; /* where the agent publishes the current identity (borrowed) */
    struct worker *workers;
    unsigned n_workers;
    void (*hook)(void *ctx);
    void *hook_ctx;
};

/* proxy/listen.c */
struct listener *proxy_listener_ref(struct listener *l);
void proxy_listener_unref(struct listener *l);
int proxy_check_mark(uint32_t mark, struct pk_err *err);
void proxy_free_set(struct listener **set, size_t n);
int proxy_build_set(struct pk_proxy *px, const struct pk_proxy_options *cfg, struct listener **old,
                    size_t n_old, struct listener ***out, size_t *added, size_t *changed_out,
                    struct pk_err *err);
void proxy_log_listener(const struct listener *l, const char *what, unsigned n_workers);

/* proxy/gen.c */
struct gen *proxy_gen_ref(struct gen *g);
void proxy_gen_unref(struct gen *g);
int proxy_build_rule_policy(const struct pk_dst_rule *rule, const char *td, const char *ns,
                            struct pk_policy **out, struct pk_err *err);
int proxy_build_policy(const struct pk_listener_config *lc, const char *td, const char *ns,
                       struct pk_policy **out, struct pk_err *err);
struct gen *proxy_gen_new(struct pk_proxy *px, struct pk_identity *id, struct pk_err *err);
bool proxy_recheck_conn(struct proxied *pc, struct gen *g, struct pk_recheck *rc);
void proxy_recheck_all(struct worker *w, struct gen *g);
bool proxy_gen_has(const struct gen *g, const struct listener *l, size_t *index);
bool proxy_gen_uses_sock(const struct gen *g, const struct lsock *s);

/* proxy/accept.c */
void proxy_pc_finish(struct proxied *pc, enum pk_conn_close_reason reason, const char *detail);
void proxy_switch_gen(struct worker *w, struct gen *old, struct gen *g);
void proxy_stop_accepting(struct worker *w);

/* proxy/proxy.c */
void proxy_maybe_finish(struct worker *w);

#endif
