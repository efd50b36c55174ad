/* SPDX-License-Identifier: Apache-2.0 */
/* picket: fuzz target for the agent's handling of Sentry's answer.
 *
 * Targets: pk_sentry_response_check (protobuf-c decoding of SignCertificateResponse, PEM and
 * X.509 parsing of the chain, identity, key and chain checks). The trust anchors are a fixed,
 * freshly generated root; the key is re-created from a cached PEM for every input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/sentry_client.h"
#include "common/buf.h"
#include "common/log.h"
#include "fuzz.h"
#include "sentry/creds.h"

struct state {
    struct pk_certs anchors;
    struct pk_buf key_pem;
};

static struct state *state(void)
{
    static struct state st;
    static int ready;
    if (!ready) {
        static char dir[] = "/tmp/picket-fuzz-resp-XXXXXX";
        struct pk_sentry_creds_paths paths;
        struct pk_sentry_creds *creds = NULL;
        struct pk_sentry_creds_gen gen = {"example.test",  "default", PK_KEY_P256, 0, 900,
                                          365L * 24 * 3600};
        struct pk_key *key = NULL;
        struct pk_err err;

        pk_log_setup(PK_LOG_LEVEL_ERROR, false);
        gen.now = time(NULL);
        pk_buf_init_secret(&st.key_pem, 8192);
        if (mkdtemp(dir) == NULL ||
            pk_sentry_creds_paths_init(&paths, dir, "ca.crt", "issuer.crt", "issuer.key") != 0 ||
            pk_sentry_creds_generate(&paths, &gen, &creds, &err) != 0 ||
            pk_certs_push_copy(&st.anchors, creds->roots.v[0]) != 0 ||
            pk_key_generate(PK_KEY_P256, &key, &err) != 0 || pk_key_to_pem(key, &st.key_pem) != 0) {
            fprintf(stderr, "fuzz_sentry_resp: set-up failed\n");
            abort();
        }
        pk_key_free(key);
        pk_sentry_creds_free(creds);
        remove(paths.ca);
        remove(paths.issuer_cert);
        remove(paths.issuer_key);
        remove(dir);
        ready = 1;
    }
    return &st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct state *st = state();
    struct pk_sentry_client_config cfg = {
            .address = "fuzz",
            .control_plane_trust_domain = "example.test",
            .control_plane_namespace = "default",
            .app_id = "app",
            .namespace_ = "default",
    };
    struct pk_key *key = NULL;
    struct pk_svid *svid = NULL;
    struct pk_err err;

    if (size > 1024 * 1024 ||
        pk_key_load_pem(st->key_pem.data, st->key_pem.len, "fuzz key", &key, &err) != 0) {
        return 0;
    }
    if (pk_sentry_response_check(&cfg, key, pk_slice_make(data, size), &st->anchors, time(NULL),
                                 &svid, &err) == 0) {
        pk_svid_free(svid);
    }
    return 0;
}
