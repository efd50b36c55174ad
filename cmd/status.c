/* SPDX-License-Identifier: Apache-2.0 */
/* picket status: ask a running sidecar what it holds, through its admin endpoint's /status.
 *
 * Exit status: 0 ready, 1 not ready (the sidecar answered and said why), 2 usage or
 * configuration error, 3 the endpoint could not be reached or gave no valid answer — so the
 * command works as a probe. Times are shown in UTC, and "in"/"ago" are measured from the
 * sidecar's own clock (the "now" of its answer), not this machine's. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/admin_client.h"
#include "cmd/commands.h"
#include "cmd/flags.h"
#include "common/buf.h"
#include "common/fsutil.h"
#include "sidecar/config.h"

#define EXIT_NOT_READY   1
#define EXIT_USAGE       2
#define EXIT_UNREACHABLE 3

static void usage(FILE *out)
{
    fprintf(out,
            "usage: picket status [--admin ADDRESS | -c picket.ini] [--json] [--timeout DURATION]\n"
            "\n"
            "Show what a running `picket run` holds: its identity, serial, validity, next\n"
            "renewal and state, the trust anchors and the listeners with their connections.\n"
            "\n"
            "  --admin ADDRESS      the admin endpoint: HOST:PORT, [V6]:PORT or unix:/PATH\n"
            "                       (default: [admin] listen of -c, else 127.0.0.1:9901)\n"
            "  -c, --config FILE    take the admin address from this picket.ini\n"
            "  --json               print /status as the sidecar sent it (JSON)\n"
            "  --timeout DURATION   give up after this long (default 5s)\n"
            "\n"
            "Exit status: 0 ready, 1 not ready, 2 usage error, 3 endpoint unreachable or\n"
            "answer invalid.\n");
}

/* "11h 52m", "3m 05s", "2d 4h", "45s". */
static const char *span(long long s, char *buf, size_t len)
{
    if (s < 0) {
        s = -s;
    }
    if (s >= 86400) {
        snprintf(buf, len, "%lldd %lldh", s / 86400, s % 86400 / 3600);
    } else if (s >= 3600) {
        snprintf(buf, len, "%lldh %lldm", s / 3600, s % 3600 / 60);
    } else if (s >= 60) {
        snprintf(buf, len, "%lldm %02llds", s / 60, s % 60);
    } else {
        snprintf(buf, len, "%llds", s);
    }
    return buf;
}

static const char *utc(long long t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0) {
        snprintf(buf, len, "%lld", t);
    }
    return buf;
}

/* "2025-01-01 00:00:00 UTC (expires in 11h 52m)" and the like: the span between t and now
 * framed by the words for a future or a past t. */
struct framing {
    const char *before, *after;
};

static void when(const char *label, long long t, long long now, struct framing future,
                 struct framing past)
{
    char a[64], b[32];
    struct framing f = t >= now ? future : past;
    printf("  %-12s %s (%s%s%s)\n", label, utc(t, a, sizeof(a)), f.before,
           span(t >= now ? t - now : now - t, b, sizeof(b)), f.after);
}

static const char *str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s != NULL ? s : "?";
}

static long long num(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : (long long)json_number_value(v);
}

static void print_human(json_t *root, const char *address)
{
    json_t *id = json_object_get(root, "identity");
    json_t *rot = json_object_get(root, "rotation");
    json_t *anchors = json_object_get(root, "trust_anchors");
    json_t *listeners = json_object_get(root, "listeners");
    long long now = num(root, "now");
    bool ready = json_is_true(json_object_get(root, "ready"));
    size_t i;
    json_t *v;

    printf("picket %s at %s\n", str(root, "version"), address);
    if (ready) {
        printf("  %-12s ready, %s\n", "state", str(root, "state"));
    } else {
        printf("  %-12s NOT READY, %s: %s\n", "state", str(root, "state"),
               str(root, "not_ready_reason"));
    }
    if (json_is_object(id)) {
        printf("  %-12s %s (from %s)\n", "identity", str(id, "spiffe_id"), str(id, "source"));
        printf("  %-12s %s\n", "serial", str(id, "serial"));
        when("not before", num(id, "not_before"), now, (struct framing){"valid in ", ""},
             (struct framing){"", " ago"});
        when("not after", num(id, "not_after"), now, (struct framing){"expires in ", ""},
             (struct framing){"EXPIRED ", " ago"});
        if (json_object_get(id, "renew_at") != NULL) {
            when("renewal", num(id, "renew_at"), now, (struct framing){"in ", ""},
                 (struct framing){"overdue by ", ""});
        }
    } else {
        printf("  %-12s none yet\n", "identity");
    }
    if (json_is_object(rot)) {
        printf("  %-12s %lld ok, %lld failed; %lld failed in a row", "rotations", num(rot, "ok"),
               num(rot, "failed"), num(rot, "consecutive_failures"));
        if (json_object_get(rot, "next_retry_in") != NULL) {
            char b[32];
            printf(", next retry in %s", span(num(rot, "next_retry_in"), b, sizeof(b)));
        }
        printf("\n");
    }
    printf("  %-12s %zu\n", "anchors", json_array_size(anchors));
    json_array_foreach(anchors, i, v)
    {
        char a[64], b[32];
        long long na = num(v, "not_after");
        printf("    %s\n      sha256 %s\n      serial %s, %s %s (%s)\n", str(v, "subject"),
               str(v, "sha256"), str(v, "serial"), na >= now ? "expires in" : "EXPIRED",
               span(na - now, b, sizeof(b)), utc(na, a, sizeof(a)));
    }
    if (json_is_array(listeners)) {
        printf("  %-12s %zu\n", "listeners", json_array_size(listeners));
        json_array_foreach(listeners, i, v)
        {
            printf("    %-8s %-16s %-24s %s  %lld open, %lld total, %lld handshake failures, "
                   "%lld denied\n",
                   str(v, "kind"), str(v, "name"), str(v, "listen"),
                   json_is_true(json_object_get(v, "up")) ? "up  " : "DOWN", num(v, "active"),
                   num(v, "total"), num(v, "handshake_failed"), num(v, "denied"));
        }
    }
}

/* [admin] listen of a picket.ini, read with the parser of picket run (defaults applied). */
static int admin_from_file(const char *path, char **out)
{
    struct pk_sidecar_config *cfg = pk_sidecar_config_new();
    struct pk_buf text;
    struct pk_err err;
    int r;

    pk_buf_init(&text, PK_SIDECAR_CONFIG_MAX_FILE);
    r = pk_fs_read_file(path, PK_SIDECAR_CONFIG_MAX_FILE, &text, &err);
    if (r == 0) {
        r = pk_sidecar_config_parse_ini((const char *)text.data, text.len, path, cfg, &err);
    }
    if (r != 0) {
        fprintf(stderr, "picket status: %s\n", err.msg);
    } else if (cfg->admin_listen == NULL || cfg->admin_listen[0] == '\0' ||
               strcmp(cfg->admin_listen, "off") == 0) {
        fprintf(stderr, "picket status: %s: the admin endpoint is off ([admin] listen)\n", path);
        r = PK_E_INVALID;
    } else {
        *out = strdup(cfg->admin_listen);
    }
    pk_buf_free(&text);
    pk_sidecar_config_free(cfg);
    return r;
}

int pk_cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {
            {"admin", required_argument, NULL, 'a'}, {"config", required_argument, NULL, 'c'},
            {"json", no_argument, NULL, 'j'},        {"timeout", required_argument, NULL, 't'},
            {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    const char *admin = NULL, *config = NULL;
    char *from_file = NULL;
    bool json = false;
    double timeout = 5;
    struct pk_buf body;
    json_t *root = NULL;
    json_error_t jerr;
    struct pk_err err;
    int c, status = 0, code = EXIT_USAGE;

    pk_buf_init(&body, PK_ADMIN_CLIENT_MAX_REPLY);
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            admin = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 't':
            if (pk_flag_duration("--timeout", optarg, &timeout) != 0 || timeout <= 0) {
                fprintf(stderr, "picket status: --timeout must be a positive duration\n");
                goto out;
            }
            break;
        case 'h':
            usage(stdout);
            code = 0;
            goto out;
        default:
            fprintf(stderr, "picket status: unknown or incomplete option '%s'\n\n",
                    argv[optind - 1]);
            usage(stderr);
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "picket status: unexpected argument '%s'\n", argv[optind]);
        goto out;
    }
    if (admin != NULL && config != NULL) {
        fprintf(stderr, "picket status: give --admin or -c, not both\n");
        goto out;
    }
    if (config != NULL) {
        if (admin_from_file(config, &from_file) != 0) {
            goto out;
        }
        admin = from_file;
    }
    if (admin == NULL) {
        admin = "127.0.0.1:9901";
    }
    code = EXIT_UNREACHABLE;
    pk_err_clear(&err);
    c = pk_admin_get(admin, "/status", timeout, &status, &body, &err);
    if (c != 0) {
        fprintf(stderr, "picket status: %s\n", err.msg);
        code = c == PK_E_INVALID ? EXIT_USAGE : EXIT_UNREACHABLE;
        goto out;
    }
    if (status != 200) {
        fprintf(stderr, "picket status: %s/status answered %d\n", admin, status);
        goto out;
    }
    root = json_loadb((const char *)body.data, body.len, 0, &jerr);
    if (!json_is_object(root) || !json_is_boolean(json_object_get(root, "ready"))) {
        fprintf(stderr, "picket status: %s/status: not a picket status document (%s)\n", admin,
                root == NULL ? jerr.text : "no \"ready\"");
        goto out;
    }
    if (json) {
        fwrite(body.data, 1, body.len, stdout);
    } else {
        print_human(root, admin);
    }
    code = json_is_true(json_object_get(root, "ready")) ? 0 : EXIT_NOT_READY;
out:
    json_decref(root);
    free(from_file);
    pk_buf_free(&body);
    return code;
}
