/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the sidecar's admin endpoint — /healthz, /readyz, /status (JSON) and /metrics
 * (Prometheus text) — on a loopback address or a unix socket.
 *
 * /readyz is 200 only while the agent holds a valid identity and every listener is accepting;
 * otherwise 503 with the reason in the body, so a Kubernetes probe or `curl -f` can tell why.
 *
 * Each request is bounded by net/http_server: a request head of at most 8 KiB (the parser,
 * common/http1, is fuzzed by tests/fuzz/fuzz_http1), 5 seconds per phase, 64 connections. */
#ifndef PK_SIDECAR_ADMIN_H
#define PK_SIDECAR_ADMIN_H

#include "agent/agent.h"
#include "common/compiler.h"
#include "common/err.h"
#include "net/resolver.h"

struct ev_loop;
struct pk_admin;

/* listen: "HOST:PORT" (numeric IPv4, "[v6]:PORT" or "localhost:PORT") or "unix:/path". */
int pk_admin_start(struct ev_loop *loop, const char *listen, struct pk_agent *agent,
                   struct pk_admin **out, struct pk_err *err) PK_MUST_USE;

struct pk_proxy;

/* Whether the sidecar is ready: the agent holds a valid identity and every listener of proxy
 * (borrowed; NULL = none) is accepting on every worker that owns one of its sockets. When it is
 * not, one line saying why (no identity yet, expired, which listener) goes to why (borrowed,
 * why_len bytes; may be NULL). From the main thread. */
bool pk_admin_ready(struct pk_agent *agent, struct pk_proxy *proxy, char *why, size_t why_len);

/* Also report the proxy's listeners (borrowed; must outlive the admin endpoint). NULL admin is
 * fine. */
void pk_admin_set_proxy(struct pk_admin *admin, struct pk_proxy *proxy);

/* Record the outcome of a SIGHUP reload: error NULL when it was applied, else why it was refused
 * (copied). /metrics counts both (picket_reloads_total{result="ok|refused"}); /status carries the
 * counts and the last refusal with its time, so `picket status` can say why the running
 * configuration is not the file's. NULL admin is fine. From the main thread. */
void pk_admin_note_reload(struct pk_admin *admin, const char *error);
/* Also report the DNS names resolver resolves (borrowed; must outlive the admin endpoint; NULL =
 * none): "dns" in /status, picket_dns_* in /metrics. NULL admin is fine. */
void pk_admin_set_resolver(struct pk_admin *admin, struct pk_resolver *resolver);

/* The bound TCP port (0 for a unix socket). */
unsigned pk_admin_port(const struct pk_admin *admin);

void pk_admin_free(struct pk_admin *admin);

#endif
