/* SPDX-License-Identifier: Apache-2.0 */
/* picket: fuzz target for the Sentry CA's request path.
 *
 * Targets: pk_sentry_service_sign (decoding of SignCertificateRequest with true lengths, validator
 * choice, common checks, allowed trust domains, control-plane ids, PEM and CSR decoding and
 * signature check, issuance, response encoding). The credentials are generated once into a
 * temporary directory; the clock is fixed so a run is deterministic apart from the random serial
 * and signature of a successful issue. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/log.h"
#include "fuzz.h"
#include "sentry/creds.h"
#include "sentry/request.h"
#include "sentry/service.h"

/* Two services on one set of credentials: Dapr's defaults (trust domains example.test and
 * public, control-plane ids refused), and one with an extra trust domain and
 * --allow-insecure-control-plane-ids, so that both sides of each rule are reached. */
static struct pk_sentry_service **services(void)
{
    static struct pk_sentry_service *svc[2];
    if (svc[0] == NULL) {
        static char dir[] = "/tmp/picket-fuzz-sentry-XXXXXX";
        struct pk_sentry_creds_paths paths;
        struct pk_sentry_creds *creds[2] = {NULL, NULL};
        struct pk_sentry_creds_gen gen = {"example.test",  "dapr-system", PK_KEY_P256, 0, 900,
                                          365L * 24 * 3600};
        struct pk_sentry_trust_domains allowed = {0};
        struct pk_sentry_service_config cfg = {"example.test", "dapr-system", 3600, 900,
                                               NULL,           false};
        struct pk_err err;

        pk_log_setup(PK_LOG_LEVEL_ERROR, false);
        gen.now = time(NULL);
        if (mkdtemp(dir) == NULL ||
            pk_sentry_creds_paths_init(&paths, dir, "ca.crt", "issuer.crt", "issuer.key") != 0 ||
            pk_sentry_creds_generate(&paths, &gen, &creds[0], &err) != 0 ||
            pk_sentry_creds_load(&paths, &creds[1], &err) != 0 ||
            pk_sentry_trust_domains_add_list(&allowed, "example.test,public,extra.test", "fuzz",
                                             &err) != 0 ||
            pk_sentry_service_new(&cfg, creds[0], NULL, &svc[0]) != 0) {
            fprintf(stderr, "fuzz_sentry_req: set-up failed\n");
            abort();
        }
        cfg.allowed_trust_domains = &allowed;
        cfg.allow_insecure_control_plane_ids = true;
        if (pk_sentry_service_new(&cfg, creds[1], NULL, &svc[1]) != 0) {
            fprintf(stderr, "fuzz_sentry_req: set-up failed\n");
            abort();
        }
        remove(paths.ca);
        remove(paths.issuer_cert);
        remove(paths.issuer_key);
        remove(dir);
    }
    return svc;
}

/* An empty field may have no bytes at all (ptr NULL), which memchr must not be given. */
static bool has_nul(struct pk_slice s)
{
    return s.len > 0 && memchr(s.ptr, '\0', s.len) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pk_sentry_service **svc = services();

    if (size > PK_SENTRY_MAX_REQUEST) {
        return 0;
    }
    for (int i = 0; i < 2; i++) {
        struct pk_buf response;
        char message[1024];
        int status;

        pk_buf_init(&response, 1024 * 1024);
        pk_sentry_service_sign(svc[i], pk_slice_make(data, size), time(NULL), &status, message,
                               sizeof(message), &response);
        /* What the rules refuse is never signed, by either service. */
        if (status == 0) {
            struct pk_sentry_request req;
            struct pk_err err;
            if (pk_sentry_request_decode(pk_slice_make(data, size), &req, &err) != 0 ||
                has_nul(req.id) || has_nul(req.namespace_) || has_nul(req.trust_domain) ||
                pk_sentry_classify_id(req.id, req.namespace_, "dapr-system") ==
                        PK_SENTRY_ID_SENTRY) {
                abort();
            }
        }
        pk_buf_free(&response);
    }
    return 0;
}
