/* SPDX-License-Identifier: Apache-2.0 */
/* picket: fuzz target for the Sentry CA's request path.
 *
 * Targets: pk_sentry_service_sign (protobuf-c decoding of SignCertificateRequest, validator
 * choice, common checks, PEM and CSR decoding and signature check, issuance, response encoding).
 * The credentials are generated once into a temporary directory; the clock is fixed so a run is
 * deterministic apart from the random serial and signature of a successful issue. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/log.h"
#include "fuzz.h"
#include "sentry/creds.h"
#include "sentry/service.h"

static struct pk_sentry_service *service(void)
{
    static struct pk_sentry_service *svc;
    if (svc == NULL) {
        static char dir[] = "/tmp/picket-fuzz-sentry-XXXXXX";
        struct pk_sentry_creds_paths paths;
        struct pk_sentry_creds *creds = NULL;
        struct pk_sentry_creds_gen gen = {"example.test",  "default", PK_KEY_P256, 0, 900,
                                          365L * 24 * 3600};
        struct pk_sentry_service_config cfg = {"example.test", "default", 3600, 900};
        struct pk_err err;

        pk_log_setup(PK_LOG_LEVEL_ERROR, false);
        gen.now = time(NULL);
        if (mkdtemp(dir) == NULL ||
            pk_sentry_creds_paths_init(&paths, dir, "ca.crt", "issuer.crt", "issuer.key") != 0 ||
            pk_sentry_creds_generate(&paths, &gen, &creds, &err) != 0 ||
            pk_sentry_service_new(&cfg, creds, NULL, &svc) != 0) {
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pk_sentry_service *svc = service();
    struct pk_buf response;
    char message[1024];
    int status;

    if (size > PK_SENTRY_MAX_REQUEST) {
        return 0;
    }
    pk_buf_init(&response, 1024 * 1024);
    pk_sentry_service_sign(svc, pk_slice_make(data, size), time(NULL), &status, message,
                           sizeof(message), &response);
    pk_buf_free(&response);
    return 0;
}
