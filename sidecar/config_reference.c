/* SPDX-License-Identifier: Apache-2.0 */
/* picket: --help and the configuration reference, made from the tables the parser uses. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/addr.h"
#include "common/buf.h"
#include "common/dstmap.h"
#include "common/duration.h"
#include "common/env.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/spiffe.h"
#include "sidecar/config_keys.h"

/* ---- help ---- */

static const char help_head[] =
        "usage: picket run [flags]\n"
        "\n"
        "The sidecar: obtain this app's SPIFFE identity from Dapr's Sentry (or from static\n"
        "files), renew it before it expires, serve the admin endpoint, and carry the app's\n"
        "connections over mTLS through the listeners of picket.ini.\n"
        "\n"
        "Flags ('--flag value', '--flag=value' and daprd's '-flag value' all work):\n"
        "  -c, --config-file FILE             picket.ini to read (default: none)\n"
        "  --config FILE                      daprd's Configuration YAML: spec.mtls.enabled\n"
        "                                     must not be false; the rest is ignored (in\n"
        "                                     Kubernetes mode a resource name, not read)\n"
        "  --mode MODE                        standalone, kubernetes or auto (see [agent] mode)\n"
        "  --enable-mtls[=BOOL]               accepted as daprd's; false is an error (picket\n"
        "                                     is mTLS-only)\n"
        "  --sentry-request-jwt-audiences A   accepted as daprd's and ignored (no JWTs)\n"
        "  --app-id ID                        the app id (required here, in APP_ID or in\n"
        "                                     [agent] app_id)\n"
        "  --sentry-address HOST:PORT         Sentry's gRPC address; \"\" = no Sentry, use a\n"
        "                                     static identity\n"
        "  --trust-anchors-file FILE          PEM file of the trusted roots\n"
        "  --trust-domain TD                  trust domain to ask Sentry for (default: none,\n"
        "                                     Sentry then uses \"public\")\n"
        "  --control-plane-trust-domain TD    Sentry's trust domain (default localhost)\n"
        "  --control-plane-namespace NS       Sentry's namespace (default default); Sentry must\n"
        "                                     present spiffe://TD/ns/NS/dapr-sentry\n"
        "  --log-level LEVEL                  debug, info, warn or error (default info)\n"
        "  --log-as-json[=BOOL]               log JSON objects instead of logfmt lines\n"
        "  --check                            check the configuration and every file it names\n"
        "                                     (anchors, certificate, key, token), bind\n"
        "                                     nothing, print the problem or \"configuration ok\"\n"
        "                                     and exit 0, or 2 (as nginx -t)\n"
        "  -h, --help                         print this text\n"
        "\n"
        "Precedence: flags, then environment variables, then picket.ini, then the defaults.\n"
        "\n"
        "Environment (Dapr's names; an empty value counts as unset, except where noted):\n"
        "  APP_ID                             the app id\n"
        "  NAMESPACE                          the app's namespace (default \"default\")\n"
        "  SENTRY_LOCAL_IDENTITY              the id sent to Sentry instead of the app id\n"
        "  DAPR_TRUST_ANCHORS                 trusted roots as PEM text (used together with a\n"
        "                                     trust anchors file)\n"
        "  DAPR_TRUST_ANCHORS_FILE            PEM file of the trusted roots\n"
        "  DAPR_CONTROLPLANE_TRUST_DOMAIN     Sentry's trust domain\n"
        "  DAPR_CONTROLPLANE_NAMESPACE        Sentry's namespace\n"
        "  DAPR_SENTRY_TOKEN_FILE             file holding the token sent to Sentry (JWKS\n"
        "                                     validator; KUBERNETES in Kubernetes mode), re-read\n"
        "                                     for every request; set but empty is an error\n"
        "  KUBERNETES_SERVICE_HOST            set in every pod: mode auto means kubernetes\n"
        "  PICKET_MODE                        standalone, kubernetes or auto\n"
        "  PICKET_TEST_SECRETS_DIR            for tests only: replaces /var/run/secrets, where\n"
        "                                     Kubernetes mode reads the projected token\n"
        "  DAPR_CERT_CHAIN, DAPR_CERT_KEY     static identity: certificate chain and private key\n"
        "                                     as PEM text; ignored when a Sentry address is set\n"
        "\n"
        "picket.ini: [section] headers, 'key = value' lines, ';' or '#' comment lines and\n"
        "' ;' comments after a value. Each key at most once (allow_* may repeat); no empty\n"
        "values; no indented lines; at most 197 bytes per line. Booleans: true/false, yes/no,\n"
        "on/off, 1/0. Durations: 10s, 1m30s, 2h. Addresses: IPV4:PORT, [IPV6]:PORT,\n"
        "localhost:PORT or unix:/PATH; a listener's target and [sentry] address may also be\n"
        "HOST:PORT with a DNS name, resolved on the event loop (see [dns]).\n";

static const char help_tail[] =
        "\n"
        "Either a Sentry address or a static certificate and key is required, and trust\n"
        "anchors always are. Exit status: 0 after SIGTERM or SIGINT, 1 when the agent gives\n"
        "up, 2 for a configuration error. SIGHUP loads the configuration again and applies\n"
        "it whole, except the settings marked [restart]; a configuration that fails any check\n"
        "is refused and the running one stays.\n";

/* ---- the reference, from the tables above ---- */

/* The default of key k as text, from base (the defaults: a new config, or a listener fresh from
 * config_listener_init); NULL when there is none. */
static const char *default_text(const struct key *k, const void *base, char *buf, size_t len)
{
    const void *field = (const char *)base + k->offset;
    static const char *const levels[] = {"debug", "info", "warn", "error", "fatal"};

    if (k->flags & KF_REPEAT) {
        return NULL;
    }
    switch (k->type) {
    CASE_TEXT_KEYS : {
        const char *v = *(char *const *)field;
        return v != NULL ? v : NULL;
    }
    case K_BOOL:
        return *(const bool *)field ? "true" : "false";
    case K_FRACTION:
        snprintf(buf, len, "%g", *(const double *)field);
        return buf;
    case K_DURATION:
        return pk_duration_format((int64_t)(*(const double *)field * 1e9), buf, len);
    case K_COUNT:
    case K_OWNER:
        snprintf(buf, len, "%ld", *(const long *)field);
        return buf;
    case K_MARK:
        snprintf(buf, len, "%#lx", *(const long *)field);
        return buf;
    case K_GROUP:
        if (*(const long *)field < 0) {
            return NULL; /* none */
        }
        snprintf(buf, len, "%ld", *(const long *)field);
        return buf;
    case K_UNMAPPED:
        return *(const enum pk_unmapped_policy *)field == PK_UNMAPPED_PASSTHROUGH ? "passthrough"
                                                                                  : "deny";
    case K_SIZE:
        snprintf(buf, len, "%zu", *(const size_t *)field);
        return buf;
    case K_SIGNAL:
        return config_signal_name(*(const int *)field);
    case K_MODE:
        return config_mode_name(*(const int *)field);
    case K_LOG_LEVEL: {
        int level = *(const int *)field;
        return level >= 0 && (size_t)level < PK_ARRAY_LEN(levels) ? levels[level] : NULL;
    }
    }
    return NULL;
}

/* Append text to out wrapped at width columns, continuation lines indented by indent; col is
 * the column the text starts at. */
static int append_wrapped(struct pk_buf *out, const char *text, size_t col, size_t indent,
                          size_t width)
{
    int r = 0;

    while (*text != '\0') {
        size_t word = strcspn(text, " ");
        if (col > indent && col + 1 + word > width) {
            r |= pk_buf_printf(out, "\n%*s", (int)indent, "");
            col = indent;
        } else if (col > indent) {
            r |= pk_buf_append_str(out, " ");
            col++;
        }
        r |= pk_buf_append(out, text, word);
        col += word;
        text += word;
        while (*text == ' ') {
            text++;
        }
    }
    return r;
}

int pk_sidecar_config_reference(bool markdown, struct pk_buf *out)
{
    struct pk_sidecar_config *defaults = pk_sidecar_config_new();
    struct pk_listener_config listener;
    int r = 0;

    config_listener_init(&listener, PK_LISTENER_INBOUND, NULL);
    for (size_t i = 0; i < CONFIG_N_KINDS; i++) {
        const struct section_kind *kind = &config_kinds[i];
        const void *base = kind->named ? (const void *)&listener : (const void *)defaults;
        char title[40];

        snprintf(title, sizeof(title), "[%s%s]", kind->name, kind->named ? " NAME" : "");
        if (markdown) {
            r |= pk_buf_printf(out,
                               "#### `%s`\n\n%s\n\n| key | value | default | meaning |\n"
                               "|---|---|---|---|\n",
                               title, kind->doc);
        } else {
            r |= pk_buf_printf(out, "\n%s\n  ", title);
            r |= append_wrapped(out, kind->doc, 2, 2, 92);
            r |= pk_buf_append_str(out, "\n");
        }
        for (size_t j = 0; j < kind->n_keys; j++) {
            const struct key *k = &kind->keys[j];
            char buf[PK_DURATION_STR_LEN + 16], text[400];
            const char *def;

            if (kind->named && !(k->flags & kind->only)) {
                continue;
            }
            def = default_text(k, base, buf, sizeof(buf));
            snprintf(text, sizeof(text), "%s%s", k->doc,
                     (k->flags & KF_RESTART) ? " [restart]" : "");
            if (markdown) {
                r |= pk_buf_printf(out, "| `%s` | %s | %s%s%s | %s |\n", k->name, k->arg,
                                   def != NULL ? "`" : "", def != NULL ? def : "none",
                                   def != NULL ? "`" : "", text);
            } else {
                char head[64];
                int n = snprintf(head, sizeof(head), "  %s = %s", k->name, k->arg);
                r |= pk_buf_printf(out, "%-32s", head);
                if (def != NULL) {
                    size_t l = strlen(text);
                    snprintf(text + l, sizeof(text) - l, " (default %s)", def);
                }
                r |= append_wrapped(out, text, n < 32 ? 32 : (size_t)n, 32, 92);
                r |= pk_buf_append_str(out, "\n");
            }
        }
        if (markdown) {
            r |= pk_buf_append_str(out, "\n");
        }
    }
    if (markdown) {
        r |= pk_buf_append_str(out, "Keys marked [restart] need a restart to change: SIGHUP "
                                    "refuses a file that changes them.\n");
    } else {
        r |= pk_buf_append_str(out, "\nKeys marked [restart] need a restart to change: SIGHUP "
                                    "refuses a file that changes them.\n");
    }
    pk_sidecar_config_free(defaults);
    return r != 0 ? PK_E_TOOBIG : 0;
}

const char *pk_sidecar_config_help(void)
{
    /* Built once, on the main thread, and kept for the life of the process. */
    static struct pk_buf text;
    static bool built;

    if (!built) {
        pk_buf_init(&text, 256 * 1024);
        if (pk_buf_append_str(&text, help_head) != 0 ||
            pk_sidecar_config_reference(false, &text) != 0 ||
            pk_buf_append_str(&text, help_tail) != 0 || pk_buf_append(&text, "", 1) != 0) {
            PK_ASSERT(!"help text exceeds its cap");
        }
        built = true;
    }
    return (const char *)text.data;
}
