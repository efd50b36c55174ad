/* SPDX-License-Identifier: Apache-2.0 */
/* picket: the proxy's generations (identity + listener set + policies) and the re-checks of live
 * connections when one replaces another. */
#include "proxy/proxy_impl.h"

struct gen *proxy_gen_ref(struct gen *g)
{
    atomic_fetch_add(&g->refs, 1);
    return g;
}

void proxy_gen_unref(struct gen *g)
{
    if (g == NULL || atomic_fetch_sub(&g->refs, 1) != 1) {
        return;
    }
    for (size_t i = 0; i < g->n; i++) {
        pk_policy_free(g->policies[i]);
        if (g->map_policies[i] != NULL) {
            for (size_t k = 0; k < g->listeners[i]->n_rules; k++) {
                pk_policy_free(g->map_policies[i][k]);
            }
            free(g->map_policies[i]);
        }
        proxy_listener_unref(g->listeners[i]);
    }
    free(g->policies);
    free(g->map_policies);
    free(g->listeners);
    pk_identity_unref(g->id);
    free(g);
}

/* The policy of one map line of a transparent listener for our trust domain and namespace:
 * *out is NULL for passthrough and deny lines, which no peer is checked against. The line was
 * parsed with the configuration (common/dstmap); this only binds it to our identity. */
int proxy_build_rule_policy(const struct pk_dst_rule *rule, const char *td, const char *ns,
                            struct pk_policy **out, struct pk_err *err)
{
    struct pk_policy_rule expect = {0};
    struct pk_policy *p;
    int r;

    *out = NULL;
    switch (rule->action) {
    case PK_DST_PASSTHROUGH:
    case PK_DST_DENY:
        return 0;
    case PK_DST_ANY:
        /* A policy without rules allows the peers of our own trust domain. */
        *out = pk_policy_new(td, ns);
        return 0;
    case PK_DST_SPIFFE_ID:
        expect = (struct pk_policy_rule){.kind = PK_EXPECT_SPIFFE_ID, .value = rule->arg};
        break;
    case PK_DST_APP_ID:
        expect = (struct pk_policy_rule){
                .kind = PK_EXPECT_APP_ID, .value = rule->app_id, .ns = rule->app_ns};
        break;
    default:
        return pk_err_set(err, PK_E_INVALID, "unknown map action");
    }
    p = pk_policy_new(td, ns);
    r = pk_policy_add_rule(p, &expect, err); /* expect borrows the rule's strings */
    if (r != 0) {
        pk_policy_free(p);
        return r;
    }
    *out = p;
    return 0;
}

/* The policy of one listener for our trust domain and namespace, from its rules in typed form
 * (pk_listener_config.policy, built when the configuration was loaded). */
int proxy_build_policy(const struct pk_listener_config *lc, const char *td, const char *ns,
                       struct pk_policy **out, struct pk_err *err)
{
    struct pk_policy *p = pk_policy_new(td, ns);
    int r = 0;

    /* A transparent listener has no rules of its own: each map line has its policy
     * (proxy_build_rule_policy). */
    for (size_t i = 0; r == 0 && lc->kind != PK_LISTENER_TRANSPARENT && i < lc->n_policy; i++) {
        r = pk_policy_add_rule(p, &lc->policy[i], err);
    }
    if (r != 0) {
        pk_err_prefix(err, r, "[%s %s]", pk_listener_kind_name(lc->kind), lc->name);
        pk_policy_free(p);
        return r;
    }
    *out = p;
    return 0;
}

struct gen *proxy_gen_new(struct pk_proxy *px, struct pk_identity *id, struct pk_err *err)
{
    const struct pk_spiffe_id *sid = pk_identity_spiffe(id);
    const char *ns = sid->is_workload ? sid->namespace_ : px->namespace_;
    struct gen *g = pk_xcalloc(1, sizeof(*g));
    size_t n = px->n_listeners;

    atomic_init(&g->refs, 1);
    g->id = pk_identity_ref(id);
    g->policies = pk_xcalloc(n > 0 ? n : 1, sizeof(*g->policies));
    g->map_policies = pk_xcalloc(n > 0 ? n : 1, sizeof(*g->map_policies));
    g->listeners = pk_xcalloc(n > 0 ? n : 1, sizeof(*g->listeners));
    for (size_t i = 0; i < n; i++) {
        struct listener *l = px->listeners[i];
        struct pk_policy *p = NULL;
        if (proxy_build_policy(&l->cfg, sid->trust_domain, ns, &p, err) != 0) {
            proxy_gen_unref(g);
            return NULL;
        }
        g->policies[i] = p;
        g->listeners[i] = proxy_listener_ref(l);
        g->n = i + 1;
        if (l->n_rules > 0) {
            g->map_policies[i] = pk_xcalloc(l->n_rules, sizeof(**g->map_policies));
            for (size_t k = 0; k < l->n_rules; k++) {
                int r = proxy_build_rule_policy(&l->rules[k], sid->trust_domain, ns,
                                                &g->map_policies[i][k], err);
                if (r != 0) {
                    pk_err_prefix(err, r, "[transparent %s] map", l->cfg.name);
                    proxy_gen_unref(g);
                    return NULL;
                }
            }
        }
    }
    return g;
}

static bool same_anchors(const struct gen *a, const struct gen *b)
{
    struct pk_slice x = pk_identity_trusted_anchors_pem(a->id);
    struct pk_slice y = pk_identity_trusted_anchors_pem(b->id);
    return x.len == y.len && memcmp(x.ptr, y.ptr, x.len) == 0;
}

/* The policy in g for pc's listener: the same listener's, or that of the listener of the same
 * kind that took over its address with new settings; NULL when its listener is gone from g
 * (its connections then run on under the rules they started with). For a transparent
 * connection it is the policy of the map line that covers its destination in g's listener;
 * *unmapped is set when no line there names an identity for it any more. */
static struct pk_policy *policy_in(const struct gen *g, const struct proxied *pc, bool *unmapped)
{
    const struct listener *l = pc->gen->listeners[pc->li];
    size_t i = g->n;

    *unmapped = false;
    for (size_t k = 0; k < g->n && i == g->n; k++) {
        if (g->listeners[k] == l) {
            i = k;
        }
    }
    for (size_t k = 0; k < g->n && i == g->n; k++) {
        if (g->listeners[k]->sock == l->sock && g->listeners[k]->cfg.kind == l->cfg.kind) {
            i = k;
        }
    }
    if (i == g->n) {
        return NULL;
    }
    if (!pc->transparent) {
        return g->policies[i];
    }
    const struct listener *gl = g->listeners[i];
    const struct pk_dst_rule *rule =
            pk_dst_lookup(gl->rules, gl->n_rules, (const struct sockaddr *)&pc->dst);
    struct pk_policy *p = rule != NULL ? g->map_policies[i][rule - gl->rules] : NULL;
    *unmapped = p == NULL;
    return p;
}

/* Would the peer of pc, verified under its own generation, still be let in under g? When the
 * anchors differ its chain is verified again (rc is the pass's memo); the listener's policy of
 * g is asked in any case. Closes the connection (reason untrusted) when not; true if closed.
 * Only mTLS connections have a peer: relays and connections still sniffed are left alone. */
bool proxy_recheck_conn(struct proxied *pc, struct gen *g, struct pk_recheck *rc)
{
    const struct pk_cert *leaf = pc->kind == PC_CONN ? pk_conn_peer_leaf(pc->conn) : NULL;
    struct pk_policy *policy;
    struct pk_err err;
    char detail[512];
    bool unmapped;

    pk_err_clear(&err);
    if (leaf == NULL || pc->gen == g) {
        return false; /* not authorized yet: it will be, by g's rules or in conn_established */
    }
    policy = policy_in(g, pc, &unmapped);
    if (!same_anchors(pc->gen, g) &&
        pk_recheck_peer(rc, leaf, pk_conn_peer_chain(pc->conn), &err) != 0) {
        snprintf(detail, sizeof(detail), "peer no longer chains to the trust anchors: %.400s",
                 err.msg);
    } else if (unmapped) {
        snprintf(detail, sizeof(detail), "the destination no longer maps to an identity");
    } else if (policy != NULL && pk_policy_authorize(policy, leaf, NULL, 0, &err) != 0) {
        snprintf(detail, sizeof(detail), "peer no longer allowed: %.400s", err.msg);
    } else {
        return false;
    }
    pk_conn_close_because(pc->conn, PK_CLOSE_UNTRUSTED, detail);
    return true;
}

/* A new generation is in force: every live connection is checked against it. */
void proxy_recheck_all(struct worker *w, struct gen *g)
{
    struct pk_recheck rc;
    size_t checked = 0, closed = 0;

    pk_recheck_begin(&rc, pk_identity_trusted_anchors(g->id));
    for (struct proxied *pc = w->conns, *next; pc != NULL; pc = next) {
        next = pc->next; /* recheck_conn may free pc */
        if (pc->kind != PC_CONN || pk_conn_peer_leaf(pc->conn) == NULL || pc->gen == g) {
            continue;
        }
        checked++;
        closed += proxy_recheck_conn(pc, g, &rc) ? 1 : 0;
    }
    pk_recheck_end(&rc);
    if (checked > 0) {
        PK_LOG_INFO("connections re-checked worker=%u checked=%zu closed=%zu", w->index, checked,
                    closed);
    }
}

bool proxy_gen_has(const struct gen *g, const struct listener *l, size_t *index)
{
    for (size_t i = 0; g != NULL && i < g->n; i++) {
        if (g->listeners[i] == l) {
            if (index != NULL) {
                *index = i;
            }
            return true;
        }
    }
    return false;
}

bool proxy_gen_uses_sock(const struct gen *g, const struct lsock *s)
{
    for (size_t i = 0; i < g->n; i++) {
        if (g->listeners[i]->sock == s) {
            return true;
        }
    }
    return false;
}
