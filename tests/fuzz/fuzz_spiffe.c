/* SPDX-License-Identifier: Apache-2.0 */
/* picket: fuzz target for SPIFFE ID parsing, checking, formatting and matching.
 *
 * Targets: pk_spiffe_parse, pk_spiffe_check_trust_domain, pk_spiffe_check_segment,
 * pk_spiffe_format_workload, pk_spiffe_match. The input is an ID, optionally followed by a
 * newline and a pattern. Besides memory safety it checks: a parsed ID is its input, NUL-free and
 * at most 2048 bytes; its trust domain passes the trust-domain check; parsing its own text again
 * gives the same result; it matches itself as a pattern; a Dapr workload ID is rebuilt exactly by
 * pk_spiffe_format_workload; and every rejection leaves a message. */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/spiffe.h"
#include "fuzz.h"

static void check(int cond)
{
    if (!cond) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const uint8_t *nl = memchr(data, '\n', size);
    size_t id_len = nl != NULL ? (size_t)(nl - data) : size;
    static struct pk_spiffe_id id, again;
    struct pk_err err;
    int r;

    err.msg[0] = '\0';
    r = pk_spiffe_parse(text, id_len, &id, &err);
    if (r != 0) {
        check(r == PK_E_INVALID && err.msg[0] != '\0');
    } else {
        check(id_len <= PK_SPIFFE_MAX_LEN && memchr(text, '\0', id_len) == NULL);
        check(strlen(id.uri) == id_len && memcmp(id.uri, text, id_len) == 0);
        check(pk_spiffe_check_trust_domain(id.trust_domain, NULL) == 0);
        check(id.path >= id.uri && id.path <= id.uri + id_len);
        check(id.path[0] == '\0' || id.path[0] == '/');
        check(pk_spiffe_parse(id.uri, strlen(id.uri), &again, NULL) == 0);
        check(strcmp(again.trust_domain, id.trust_domain) == 0 &&
              strcmp(again.path, id.path) == 0 && again.is_workload == id.is_workload);
        check(pk_spiffe_match(&id, id.uri));
        if (id.is_workload) {
            char out[PK_SPIFFE_MAX_LEN + 1];
            check(pk_spiffe_check_segment(id.namespace_, "namespace", NULL) == 0);
            check(pk_spiffe_check_segment(id.app_id, "app id", NULL) == 0);
            check(pk_spiffe_format_workload(out, sizeof(out), id.trust_domain, id.namespace_,
                                            id.app_id, NULL) == 0);
            check(strcmp(out, id.uri) == 0);
        }
        if (nl != NULL) {
            size_t plen = size - id_len - 1;
            char *pattern = malloc(plen + 1);
            check(pattern != NULL);
            memcpy(pattern, nl + 1, plen);
            pattern[plen] = '\0';
            bool m = pk_spiffe_match(&id, pattern);
            /* A pattern without wildcards matches only the very same ID. */
            if (m && strchr(pattern, '*') == NULL) {
                check(strcmp(pattern, id.uri) == 0);
            }
            free(pattern);
        }
    }

    /* The helpers on the whole input as a C string. */
    char *s = malloc(size + 1);
    check(s != NULL);
    memcpy(s, data, size);
    s[size] = '\0';
    r = pk_spiffe_check_trust_domain(s, &err);
    check(r == 0 || r == PK_E_INVALID);
    r = pk_spiffe_check_segment(s, "segment", &err);
    check(r == 0 || r == PK_E_INVALID);
    if (r == 0) {
        char out[PK_SPIFFE_MAX_LEN + 1];
        r = pk_spiffe_format_workload(out, sizeof(out), "td", s, s, NULL);
        check(r == 0 || r == PK_E_INVALID);
    }
    free(s);
    return 0;
}
