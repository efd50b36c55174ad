/* SPDX-License-Identifier: Apache-2.0 */
/* picket iptables: install, remove or show the transparent-mode rules of picket.ini.
 *
 * It reads the state with `iptables -w -t nat -S' and applies the plan of sidecar/iptables.h
 * with `iptables-restore -w --noflush', once for IPv4 (iptables) and once for IPv6
 * (ip6tables). The programs are run directly (no shell) from PATH: iptables or, with
 * --backend, iptables-nft or iptables-legacy and their ip6tables and -restore siblings.
 *
 * Exit status: 0 on success, 1 when iptables fails, 2 for bad arguments or configuration. */
#include "sidecar/iptables.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd/commands.h"
#include "common/buf.h"
#include "common/fsutil.h"
#include "sidecar/config.h"

/* The most output read from one iptables run. */
#define MAX_OUTPUT PK_IPTABLES_MAX_STATE
#define MAX_PLAN   (1024 * 1024)

static const char usage_text[] =
        "usage: picket iptables install|remove|show [-c picket.ini] [--dry-run]\n"
        "                       [--backend auto|nft|legacy]\n"
        "\n"
        "Manage the firewall rules of transparent mode, in picket's own nat chains\n"
        "PICKET_OUTPUT and PICKET_PREROUTING, for IPv4 (iptables) and IPv6 (ip6tables).\n"
        "\n"
        "  install    make the chains hold exactly the rules picket.ini asks for (repeatable)\n"
        "  remove     delete picket's chains and the rules that jump to them (-c is ignored)\n"
        "  show       print what picket has installed now\n"
        "\n"
        "  -c, --config FILE   picket.ini: its [transparent NAME] listeners, the intercept_port\n"
        "                      lines of [inbound NAME], [proxy] mark and [iptables]\n"
        "  --dry-run           print the iptables-restore input instead of applying it\n"
        "  --backend B         auto (iptables, ip6tables: the system's choice), nft or legacy\n"
        "  -h, --help          print this text\n"
        "\n"
        "Needs CAP_NET_ADMIN. Exit status: 0 done, 1 iptables failed, 2 bad arguments or\n"
        "configuration.\n";

struct family {
    int number;         /* 4 or 6 */
    const char *label;  /* "IPv4" */
    char list_cmd[32];  /* iptables, iptables-nft, ... */
    char apply_cmd[40]; /* iptables-restore, ... */
};

/* Run argv (argv[0] looked up in PATH) with input on its stdin (may be NULL), its stdout and
 * stderr together into out. Returns the exit status (127 when it could not be executed), or -1
 * when no process could be started (the reason is printed). */
static int run_program(char *const argv[], const struct pk_buf *input, struct pk_buf *out)
{
    int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
    size_t written = 0;
    int status = -1;
    pid_t pid;

    if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0) {
        fprintf(stderr, "picket iptables: pipe: %s\n", strerror(errno));
        goto out;
    }
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "picket iptables: fork: %s\n", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        dup2(in_pipe[0], STDIN_FILENO);
        dup2(out_pipe[1], STDOUT_FILENO);
        dup2(out_pipe[1], STDERR_FILENO);
        execvp(argv[0], argv);
        dprintf(STDERR_FILENO, "cannot run %s: %s", argv[0], strerror(errno));
        _exit(127);
    }
    close(in_pipe[0]);
    in_pipe[0] = -1;
    close(out_pipe[1]);
    out_pipe[1] = -1;
    if (input == NULL || input->len == 0) {
        close(in_pipe[1]);
        in_pipe[1] = -1;
    }
    /* Feed stdin and drain stdout together: neither side can then block the other. */
    for (;;) {
        struct pollfd fds[2] = {{.fd = out_pipe[0], .events = POLLIN},
                                {.fd = in_pipe[1], .events = POLLOUT}};
        nfds_t n = in_pipe[1] >= 0 ? 2 : 1;
        if (poll(fds, n, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (n == 2 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
            ssize_t w = write(in_pipe[1], input->data + written, input->len - written);
            if (w > 0) {
                written += (size_t)w;
            }
            if (w < 0 || written == input->len) {
                close(in_pipe[1]);
                in_pipe[1] = -1;
            }
        }
        if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            char chunk[4096];
            ssize_t r = read(out_pipe[0], chunk, sizeof(chunk));
            if (r < 0 && errno == EINTR) {
                continue;
            }
            if (r <= 0) {
                break;
            }
            if (pk_buf_append(out, chunk, (size_t)r) != 0) {
                break; /* more than anyone reads; the status still counts */
            }
        }
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
out:
    for (int i = 0; i < 2; i++) {
        if (in_pipe[i] >= 0) {
            close(in_pipe[i]);
        }
        if (out_pipe[i] >= 0) {
            close(out_pipe[i]);
        }
    }
    return status;
}

/* out's text without its trailing newline, for a message. */
static const char *text_of(struct pk_buf *b)
{
    while (b->len > 0 && b->data[b->len - 1] == '\n') {
        b->len--;
    }
    if (pk_buf_append(b, "", 1) != 0 && b->len > 0) {
        b->data[b->len - 1] = '\0';
    }
    return b->len > 0 ? (const char *)b->data : "";
}

static int read_state(const struct family *f, struct pk_iptables_state *st, struct pk_buf *raw,
                      bool *available)
{
    char *argv[] = {(char *)f->list_cmd, "-w", "-t", "nat", "-S", NULL};
    struct pk_err err;
    int status = run_program(argv, NULL, raw);

    pk_err_clear(&err);
    *available = status == 0;
    if (status != 0) {
        return 0;
    }
    if (pk_iptables_state_parse((const char *)raw->data, raw->len, st, &err) != 0) {
        fprintf(stderr, "picket iptables: %s: %s\n", f->list_cmd, err.msg);
        return 1;
    }
    return 0;
}

static int do_family(const struct family *f, const char *action,
                     const struct pk_sidecar_config *cfg, bool dry_run)
{
    struct pk_iptables_state st;
    struct pk_buf raw, rules, plan, result;
    bool want_output = false, want_prerouting = false, available;
    struct pk_err err;
    int rc = 0;

    memset(&st, 0, sizeof(st));
    pk_err_clear(&err);
    pk_buf_init(&raw, MAX_OUTPUT);
    pk_buf_init(&rules, MAX_PLAN);
    pk_buf_init(&plan, MAX_PLAN);
    pk_buf_init(&result, MAX_OUTPUT);
    if (cfg != NULL && strcmp(action, "install") == 0 &&
        pk_iptables_rules(cfg, f->number, &rules, &want_output, &want_prerouting, &err) != 0) {
        fprintf(stderr, "picket iptables: %s\n", err.msg);
        rc = 2;
        goto out;
    }
    rc = read_state(f, &st, &raw, &available);
    if (rc != 0) {
        goto out;
    }
    if (!available) {
        /* A host without IPv6 (or without the nat table) has nothing of ours to remove. */
        if (want_output || want_prerouting) {
            fprintf(stderr, "picket iptables: %s -t nat -S failed: %s\n", f->list_cmd,
                    text_of(&raw));
            rc = 1;
        } else {
            fprintf(stderr, "picket iptables: %s: skipped, '%s -t nat -S' failed: %s\n", f->label,
                    f->list_cmd, text_of(&raw));
        }
        goto out;
    }
    if (strcmp(action, "show") == 0) {
        /* Our chains' rules and the jumps to them, as iptables prints them. */
        const char *p = (const char *)raw.data, *end = p + raw.len;
        printf("# %s (%s)\n", f->label, f->list_cmd);
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
            if (memmem(p, n, "PICKET_OUTPUT", 13) != NULL ||
                memmem(p, n, "PICKET_PREROUTING", 17) != NULL) {
                printf("%.*s\n", (int)n, p);
            }
            p += n + 1;
        }
        goto out;
    }
    if (pk_iptables_plan(&st, &rules, want_output, want_prerouting, &plan) != 0) {
        fprintf(stderr, "picket iptables: the %s rules are too large\n", f->label);
        rc = 2;
        goto out;
    }
    if (dry_run) {
        printf("# %s: input for %s --noflush%s\n", f->label, f->apply_cmd,
               plan.len == 0 ? " (nothing to do)" : "");
        fwrite(plan.data != NULL ? (const char *)plan.data : "", 1, plan.len, stdout);
        goto out;
    }
    if (plan.len == 0) {
        goto out;
    }
    char *argv[] = {(char *)f->apply_cmd, "-w", "--noflush", NULL};
    int status = run_program(argv, &plan, &result);
    if (status != 0) {
        fprintf(stderr, "picket iptables: %s %s failed (status %d): %s\n", f->label, f->apply_cmd,
                status, text_of(&result));
        rc = 1;
        goto out;
    }
    fprintf(stderr, "picket iptables: %s %s done (%s)\n", f->label, action, f->apply_cmd);
out:
    pk_iptables_state_clear(&st);
    pk_buf_free(&raw);
    pk_buf_free(&rules);
    pk_buf_free(&plan);
    pk_buf_free(&result);
    return rc;
}

static int load_config(const char *path, struct pk_sidecar_config **out)
{
    struct pk_sidecar_config *cfg = pk_sidecar_config_new();
    struct pk_buf text;
    struct pk_err err;
    int r;

    pk_err_clear(&err);
    pk_buf_init(&text, PK_SIDECAR_CONFIG_MAX_FILE);
    r = pk_fs_read_file(path, PK_SIDECAR_CONFIG_MAX_FILE, &text, &err);
    if (r == 0) {
        /* Only the file: the identity settings `picket run' also needs are not ours to check,
         * so an init container can run this before any certificate exists. */
        r = pk_sidecar_config_parse_ini((const char *)text.data, text.len, path, cfg, &err);
    } else {
        pk_err_prefix(&err, r, "config file");
    }
    pk_buf_free(&text);
    if (r != 0) {
        fprintf(stderr, "picket iptables: %s\n", err.msg);
        pk_sidecar_config_free(cfg);
        return 2;
    }
    *out = cfg;
    return 0;
}

int pk_cmd_iptables(int argc, char **argv)
{
    static const struct option options[] = {
            {"config", required_argument, NULL, 'c'},
            {"dry-run", no_argument, NULL, 'n'},
            {"backend", required_argument, NULL, 'b'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *backend = "auto", *action;
    struct pk_sidecar_config *cfg = NULL;
    struct family fams[2] = {{.number = 4, .label = "IPv4"}, {.number = 6, .label = "IPv6"}};
    bool dry_run = false;
    int c, rc = 0;

    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":c:h", options, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'n':
            dry_run = true;
            break;
        case 'b':
            backend = optarg;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        case ':':
            fprintf(stderr, "picket iptables: %s needs a value\n%s", argv[optind - 1], usage_text);
            return 2;
        default:
            fprintf(stderr, "picket iptables: unknown flag '%s'\n%s", argv[optind - 1], usage_text);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "picket iptables: expected one of install, remove, show\n%s", usage_text);
        return 2;
    }
    action = argv[optind];
    if (strcmp(action, "install") != 0 && strcmp(action, "remove") != 0 &&
        strcmp(action, "show") != 0) {
        fprintf(stderr, "picket iptables: unknown action '%s': expected install, remove or show\n",
                action);
        return 2;
    }
    if (strcmp(action, "install") == 0 && config == NULL) {
        fprintf(stderr, "picket iptables: install needs the config file: -c picket.ini\n");
        return 2;
    }
    const char *suffix = strcmp(backend, "auto") == 0     ? ""
                         : strcmp(backend, "nft") == 0    ? "-nft"
                         : strcmp(backend, "legacy") == 0 ? "-legacy"
                                                          : NULL;
    if (suffix == NULL) {
        fprintf(stderr, "picket iptables: --backend '%s': expected auto, nft or legacy\n", backend);
        return 2;
    }
    for (size_t i = 0; i < 2; i++) {
        const char *base = fams[i].number == 4 ? "iptables" : "ip6tables";
        snprintf(fams[i].list_cmd, sizeof(fams[i].list_cmd), "%s%s", base, suffix);
        snprintf(fams[i].apply_cmd, sizeof(fams[i].apply_cmd), "%s%s-restore", base, suffix);
    }
    /* Only install reads the file: remove and show work from what is installed, so a broken
     * or missing picket.ini never keeps the rules in place (ExecStopPost= passes it anyway). */
    if (config != NULL && strcmp(action, "install") == 0) {
        rc = load_config(config, &cfg);
        if (rc != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < 2; i++) {
        int r = do_family(&fams[i], action, cfg, dry_run);
        if (r > rc) {
            rc = r;
        }
    }
    pk_sidecar_config_free(cfg);
    return rc;
}
