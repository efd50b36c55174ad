/* SPDX-License-Identifier: Apache-2.0 */
#include "proxy/listener.h"

#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(list[i]);
    }
    free(list);
}

static void listener_free_fields(struct pk_listener_config *lc)
{
    free(lc->name);
    free(lc->listen);
    free(lc->target);
    free_list(lc->allow_trust_domain, lc->n_allow_trust_domain);
    free_list(lc->allow_namespace, lc->n_allow_namespace);
    free_list(lc->allow_app_id, lc->n_allow_app_id);
    free_list(lc->allow_spiffe_id, lc->n_allow_spiffe_id);
    free_list(lc->intercept_port, lc->n_intercept_port);
    free_list(lc->map, lc->n_map);
    for (size_t i = 0; lc->map_rules != NULL && i < lc->n_map; i++) {
        pk_dst_rule_clear(&lc->map_rules[i]);
    }
    free(lc->map_rules);
    free(lc->intercept_port_dst);
    free(lc->intercept_dst);
    free(lc->exclude_dst);
    free_list(lc->intercept, lc->n_intercept);
    free_list(lc->exclude, lc->n_exclude);
    free(lc->expect_spiffe_id);
    free(lc->expect_app_id);
    free(lc->expect_namespace);
    free(lc->server_name);
    for (size_t i = 0; i < lc->n_policy; i++) {
        pk_policy_rule_clear(&lc->policy[i]);
    }
    free(lc->policy);
}

static char **copy_list(char *const *list, size_t n)
{
    char **out = NULL;
    if (n > 0) {
        out = pk_xcalloc(n, sizeof(*out));
        for (size_t i = 0; i < n; i++) {
            out[i] = pk_xstrdup(list[i]);
        }
    }
    return out;
}

static char *copy_string(const char *s)
{
    return s != NULL ? pk_xstrdup(s) : NULL;
}

/* A copy of n destinations; NULL for none. */
static struct pk_dst *copy_dsts(const struct pk_dst *src, size_t n)
{
    struct pk_dst *out = NULL;

    if (src != NULL && n > 0) {
        out = pk_xcalloc(n, sizeof(*out));
        memcpy(out, src, n * sizeof(*out));
    }
    return out;
}

void pk_listener_config_copy(struct pk_listener_config *dst, const struct pk_listener_config *src)
{
    *dst = *src;
    dst->name = copy_string(src->name);
    dst->listen = copy_string(src->listen);
    dst->target = copy_string(src->target);
    dst->allow_trust_domain = copy_list(src->allow_trust_domain, src->n_allow_trust_domain);
    dst->allow_namespace = copy_list(src->allow_namespace, src->n_allow_namespace);
    dst->allow_app_id = copy_list(src->allow_app_id, src->n_allow_app_id);
    dst->allow_spiffe_id = copy_list(src->allow_spiffe_id, src->n_allow_spiffe_id);
    dst->intercept_port = copy_list(src->intercept_port, src->n_intercept_port);
    dst->map = copy_list(src->map, src->n_map);
    dst->map_rules = NULL;
    if (src->map_rules != NULL && src->n_map > 0) {
        dst->map_rules = pk_xcalloc(src->n_map, sizeof(*dst->map_rules));
        for (size_t i = 0; i < src->n_map; i++) {
            dst->map_rules[i] = src->map_rules[i];
            dst->map_rules[i].arg = copy_string(src->map_rules[i].arg);
            dst->map_rules[i].app_id = copy_string(src->map_rules[i].app_id);
            dst->map_rules[i].app_ns = copy_string(src->map_rules[i].app_ns);
        }
    }
    dst->intercept = copy_list(src->intercept, src->n_intercept);
    dst->exclude = copy_list(src->exclude, src->n_exclude);
    dst->expect_spiffe_id = copy_string(src->expect_spiffe_id);
    dst->expect_app_id = copy_string(src->expect_app_id);
    dst->expect_namespace = copy_string(src->expect_namespace);
    dst->server_name = copy_string(src->server_name);
    dst->intercept_port_dst = copy_dsts(src->intercept_port_dst, src->n_intercept_port);
    dst->intercept_dst = copy_dsts(src->intercept_dst, src->n_intercept);
    dst->exclude_dst = copy_dsts(src->exclude_dst, src->n_exclude);
    dst->policy = NULL;
    if (src->n_policy > 0) {
        dst->policy = pk_xcalloc(src->n_policy, sizeof(*dst->policy));
        for (size_t i = 0; i < src->n_policy; i++) {
            pk_policy_rule_copy(&dst->policy[i], &src->policy[i]);
        }
    }
}

static bool string_equal(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool list_equal(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb) {
        return false;
    }
    for (size_t i = 0; i < na; i++) {
        if (strcmp(a[i], b[i]) != 0) {
            return false;
        }
    }
    return true;
}

bool pk_listener_config_equal(const struct pk_listener_config *a,
                              const struct pk_listener_config *b)
{
    return a->kind == b->kind && string_equal(a->name, b->name) &&
           string_equal(a->listen, b->listen) && string_equal(a->target, b->target) &&
           list_equal(a->allow_trust_domain, a->n_allow_trust_domain, b->allow_trust_domain,
                      b->n_allow_trust_domain) &&
           list_equal(a->allow_namespace, a->n_allow_namespace, b->allow_namespace,
                      b->n_allow_namespace) &&
           list_equal(a->allow_app_id, a->n_allow_app_id, b->allow_app_id, b->n_allow_app_id) &&
           list_equal(a->allow_spiffe_id, a->n_allow_spiffe_id, b->allow_spiffe_id,
                      b->n_allow_spiffe_id) &&
           a->proxy_protocol == b->proxy_protocol && a->permissive == b->permissive &&
           list_equal(a->intercept_port, a->n_intercept_port, b->intercept_port,
                      b->n_intercept_port) &&
           list_equal(a->map, a->n_map, b->map, b->n_map) && a->unmapped == b->unmapped &&
           list_equal(a->intercept, a->n_intercept, b->intercept, b->n_intercept) &&
           list_equal(a->exclude, a->n_exclude, b->exclude, b->n_exclude) &&
           string_equal(a->expect_spiffe_id, b->expect_spiffe_id) &&
           string_equal(a->expect_app_id, b->expect_app_id) &&
           string_equal(a->expect_namespace, b->expect_namespace) &&
           string_equal(a->server_name, b->server_name) &&
           a->allow_non_loopback == b->allow_non_loopback &&
           a->max_connections == b->max_connections && a->max_handshakes == b->max_handshakes &&
           a->connect_timeout == b->connect_timeout &&
           a->handshake_timeout == b->handshake_timeout && a->idle_timeout == b->idle_timeout &&
           a->max_lifetime == b->max_lifetime && a->buffer_size == b->buffer_size &&
           a->close_on_own_expiry == b->close_on_own_expiry;
}

const char *pk_listener_kind_name(enum pk_listener_kind kind)
{
    switch (kind) {
    case PK_LISTENER_INBOUND:
        return "inbound";
    case PK_LISTENER_OUTBOUND:
        return "outbound";
    case PK_LISTENER_TRANSPARENT:
        return "transparent";
    }
    return "?";
}

void pk_listener_config_clear(struct pk_listener_config *lc)
{
    if (lc != NULL) {
        listener_free_fields(lc);
        memset(lc, 0, sizeof(*lc));
    }
}
