/* SPDX-License-Identifier: Apache-2.0 */
/* picket: Sentry's issuer credentials in Kubernetes, in the dapr-trust-bundle Secret and
 * ConfigMap of Sentry's namespace, as Dapr's Sentry keeps them.
 *
 * Reading: the Secret's data holds ca.crt, issuer.crt and issuer.key (the base names of the
 * --issuer-*-filename flags), the ConfigMap's data ca.crt. When all three are present and not
 * empty and the ConfigMap's ca.crt equals the Secret's, they are validated like files
 * (sentry/creds.h) and used; a set that fails validation stops start-up. Otherwise a new root
 * and issuer are generated and written back: the Secret's three keys, then the ConfigMap's
 * ca.crt, each by an update of the object just read (its other keys, labels and resourceVersion
 * kept, so a concurrent writer makes the update fail rather than be lost). Both objects must
 * exist (the manifest creates them empty), as Dapr requires.
 *
 * This runs before Sentry serves: it drives the loop itself until the API has answered. */
#ifndef PK_SENTRY_KUBE_STORE_H
#define PK_SENTRY_KUBE_STORE_H

#include "common/compiler.h"
#include "common/err.h"
#include "sentry/creds.h"

struct pk_kube_client;

#define PK_KUBE_TRUST_BUNDLE "dapr-trust-bundle"

struct pk_kube_store_names {
    const char *ca;   /* data key of the roots, e.g. "ca.crt" */
    const char *cert; /* "issuer.crt" */
    const char *key;  /* "issuer.key" */
    const char *ns;   /* Sentry's namespace */
};

/* Load the credentials from the Secret, or generate and store them. *generated says which.
 * 0, or an error naming the object, the key and what is wrong (an API status, bad base64, a
 * certificate that does not validate). */
int pk_kube_store_load_or_generate(struct pk_kube_client *client,
                                   const struct pk_kube_store_names *names,
                                   const struct pk_sentry_creds_gen *gen,
                                   struct pk_sentry_creds **out, bool *generated,
                                   struct pk_err *err) PK_MUST_USE;

#endif
