/* SPDX-License-Identifier: Apache-2.0 */
/* picket demo: picket's whole job on one machine, in about a minute.
 *
 * In a new directory under /tmp it starts, as children running this same executable
 * (/proc/self/exe): a `picket sentry` that generates its root and issuer and signs workload
 * certificates of --ttl (15s), and two sidecars, frontend and backend. A small HTTP app (a thread
 * of this process) sits behind backend's inbound listener; this process is also the client, and
 * sends GET requests into frontend's outbound listener: client -> frontend -> mTLS -> backend ->
 * app. While it runs, both certificates rotate every few seconds; each second a line shows the
 * requests so far (ok and failed), each side's serial and time left, and the rotations. At the end
 * a summary, then every child is stopped and the directory removed — also on Ctrl-C.
 *
 * Exit status: 0 when every request succeeded, 1 when any failed, 2 for a usage error, 3 when the
 * set-up did not come up (the children's logs are printed then). */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmd/admin_client.h"
#include "cmd/commands.h"
#include "cmd/flags.h"
#include "common/buf.h"
#include "common/err.h"
#include "net/http_server.h"

#define EXIT_FAILED_REQUESTS 1
#define EXIT_USAGE           2
#define EXIT_SETUP           3
#define READY_TIMEOUT        30.0
#define REQUEST_TIMEOUT      5.0
#define APP_REPLY            "hello from the app behind backend\n"

enum child_id { SENTRY, BACKEND, FRONTEND, N_CHILDREN };
static const char *const child_names[N_CHILDREN] = {"sentry", "backend", "frontend"};

struct demo {
    char dir[64];
    char exe[4096];
    pid_t pids[N_CHILDREN];
    uint16_t grpc_port, healthz_port, metrics_port, backend_port;
    char app_sock[128], front_sock[128], admin[N_CHILDREN][160];
    /* the app */
    pthread_t app_thread;
    bool app_started;
    struct ev_loop *app_loop;
    ev_async app_stop;
    struct pk_http_server *app;
    atomic_ulong app_served;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_for(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    /* EINTR ends the sleep early: a Ctrl-C is then seen at once. */
    (void)nanosleep(&ts, NULL);
}

/* A loopback port that was free a moment ago. */
static uint16_t free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    uint16_t port = 0;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

static int write_text(const char *dir, const char *name, const char *text)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "picket demo: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- the app: an HTTP server on a unix socket, on its own thread ------------------------- */

static int app_hello(void *ctx, const struct pk_http1_request *req, struct pk_http_reply *reply)
{
    (void)req;
    struct demo *d = ctx;
    atomic_fetch_add(&d->app_served, 1);
    return pk_buf_append_str(&reply->body, APP_REPLY);
}

static void app_stop_cb(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void *app_main(void *arg)
{
    struct demo *d = arg;
    ev_run(d->app_loop, 0);
    return NULL;
}

static int app_start(struct demo *d)
{
    struct pk_http_server_opts opts = {.unix_path = d->app_sock, .unix_mode = 0600};
    struct pk_err err;

    d->app_loop = ev_loop_new(EVFLAG_AUTO);
    if (d->app_loop == NULL) {
        fprintf(stderr, "picket demo: cannot create an event loop for the app\n");
        return -1;
    }
    ev_async_init(&d->app_stop, app_stop_cb);
    ev_async_start(d->app_loop, &d->app_stop);
    if (pk_http_server_new(d->app_loop, &opts, &d->app, &err) != 0 ||
        pk_http_server_route(d->app, "/hello", app_hello, d) != 0) {
        fprintf(stderr, "picket demo: the app: %s\n", err.msg);
        return -1;
    }
    if (pthread_create(&d->app_thread, NULL, app_main, d) != 0) {
        fprintf(stderr, "picket demo: cannot start the app thread\n");
        return -1;
    }
    d->app_started = true;
    return 0;
}

static void app_stop(struct demo *d)
{
    if (d->app_started) {
        ev_async_send(d->app_loop, &d->app_stop);
        pthread_join(d->app_thread, NULL);
    }
    d->app = pk_http_server_free(d->app);
    if (d->app_loop != NULL) {
        ev_async_stop(d->app_loop, &d->app_stop);
        ev_loop_destroy(d->app_loop);
        d->app_loop = NULL;
    }
}

/* ---- children ------------------------------------------------------------------------------ */

static int spawn(struct demo *d, enum child_id id, char *const args[])
{
    char log[256];
    pid_t pid;
    int fd;

    snprintf(log, sizeof(log), "%s/%s.log", d->dir, child_names[id]);
    fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "picket demo: %s: %s\n", log, strerror(errno));
        return -1;
    }
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "picket demo: fork: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls until exec: the app thread may hold a lock. Its own
         * process group keeps a terminal's Ctrl-C from reaching the child directly, so the
         * demo stops everything in order; if the demo dies without cleaning up (SIGKILL),
         * PR_SET_PDEATHSIG still takes its children along. */
        static const char msg[] = "picket demo: cannot execute this program again\n";
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execv(d->exe, args);
        (void)!write(fd, msg, sizeof(msg) - 1);
        _exit(127);
    }
    close(fd);
    d->pids[id] = pid;
    return 0;
}

static void stop_children(struct demo *d)
{
    double deadline;

    for (int i = N_CHILDREN - 1; i >= 0; i--) {
        if (d->pids[i] > 0) {
            kill(d->pids[i], SIGTERM);
        }
    }
    deadline = now_mono() + 10;
    for (int i = 0; i < N_CHILDREN; i++) {
        while (d->pids[i] > 0) {
            pid_t r = waitpid(d->pids[i], NULL, WNOHANG);
            if (r == d->pids[i] || (r < 0 && errno != EINTR)) {
                d->pids[i] = 0;
            } else if (now_mono() > deadline) {
                kill(d->pids[i], SIGKILL);
                waitpid(d->pids[i], NULL, 0);
                d->pids[i] = 0;
            } else {
                sleep_for(0.02);
            }
        }
    }
}

static bool child_alive(struct demo *d, enum child_id id)
{
    if (d->pids[id] <= 0) {
        return false;
    }
    if (waitpid(d->pids[id], NULL, WNOHANG) == d->pids[id]) {
        d->pids[id] = 0;
        return false;
    }
    return true;
}

static void print_logs(struct demo *d)
{
    for (int i = 0; i < N_CHILDREN; i++) {
        char path[256], line[1024];
        FILE *f;
        snprintf(path, sizeof(path), "%s/%s.log", d->dir, child_names[i]);
        f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        fprintf(stderr, "---- %s.log\n", child_names[i]);
        while (fgets(line, sizeof(line), f) != NULL) {
            fputs(line, stderr);
        }
        fclose(f);
    }
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* ---- asking the sidecars ------------------------------------------------------------------- */

/* Wait until GET path on address answers 200. */
static bool wait_ready(struct demo *d, enum child_id id, const char *address, const char *path)
{
    double deadline = now_mono() + READY_TIMEOUT;

    while (!interrupted && now_mono() < deadline) {
        struct pk_buf body;
        struct pk_err err;
        int status = 0, r;
        pk_buf_init(&body, 4096);
        r = pk_admin_get(address, path, 1.0, &status, &body, &err);
        pk_buf_free(&body);
        if (r == 0 && status == 200) {
            return true;
        }
        if (!child_alive(d, id)) {
            fprintf(stderr, "picket demo: %s exited during start-up\n", child_names[id]);
            return false;
        }
        sleep_for(0.1);
    }
    if (!interrupted) {
        fprintf(stderr, "picket demo: %s was not ready within %.0fs\n", child_names[id],
                READY_TIMEOUT);
    }
    return false;
}

struct side {
    char serial[80];
    long long not_after, now, rotations;
    bool ok;
};

static void ask_status(const char *address, struct side *out)
{
    struct pk_buf body;
    struct pk_err err;
    json_t *root = NULL, *id, *rot;
    int status = 0;

    memset(out, 0, sizeof(*out));
    pk_buf_init(&body, PK_ADMIN_CLIENT_MAX_REPLY);
    if (pk_admin_get(address, "/status", 2.0, &status, &body, &err) == 0 && status == 200) {
        root = json_loadb((const char *)body.data, body.len, 0, NULL);
    }
    id = json_object_get(root, "identity");
    rot = json_object_get(root, "rotation");
    if (json_is_object(id)) {
        const char *s = json_string_value(json_object_get(id, "serial"));
        snprintf(out->serial, sizeof(out->serial), "%s", s != NULL ? s : "?");
        out->not_after = json_integer_value(json_object_get(id, "not_after"));
        out->now = json_integer_value(json_object_get(root, "now"));
        out->rotations = json_integer_value(json_object_get(rot, "ok"));
        out->ok = true;
    }
    json_decref(root);
    pk_buf_free(&body);
}

/* "3f2a1c…e09b, 9s left" */
static const char *side_text(const struct side *s, char *buf, size_t len)
{
    size_t n = strlen(s->serial);
    if (!s->ok) {
        snprintf(buf, len, "%-28s", "(no answer)");
    } else {
        snprintf(buf, len, "%.6s..%s %3llds left", s->serial, n > 4 ? s->serial + n - 4 : "",
                 s->not_after - s->now);
    }
    return buf;
}

/* One request through frontend: client -> frontend -> mTLS -> backend -> app. */
static bool one_request(struct demo *d, char *why, size_t why_len)
{
    struct pk_buf body;
    struct pk_err err;
    char address[160];
    int status = 0;
    bool ok = false;

    snprintf(address, sizeof(address), "unix:%s", d->front_sock);
    pk_buf_init(&body, 4096);
    pk_err_clear(&err);
    if (pk_admin_get(address, "/hello", REQUEST_TIMEOUT, &status, &body, &err) != 0) {
        snprintf(why, why_len, "%s", err.msg);
    } else if (status != 200 || body.len != strlen(APP_REPLY) ||
               memcmp(body.data, APP_REPLY, body.len) != 0) {
        snprintf(why, why_len, "status %d, %zu bytes of body", status, body.len);
    } else {
        ok = true;
    }
    pk_buf_free(&body);
    return ok;
}

/* ---- the run --------------------------------------------------------------------------------- */

static int set_up(struct demo *d, const char *ttl)
{
    char text[2048], creds[128], cfg_path[128], port[3][8], ini[2][160];
    d->grpc_port = free_port();
    d->healthz_port = free_port();
    d->metrics_port = free_port();
    d->backend_port = free_port();
    if (d->grpc_port == 0 || d->healthz_port == 0 || d->metrics_port == 0 || d->backend_port == 0) {
        fprintf(stderr, "picket demo: no free loopback ports\n");
        return -1;
    }
    snprintf(d->app_sock, sizeof(d->app_sock), "%s/app.sock", d->dir);
    snprintf(d->front_sock, sizeof(d->front_sock), "%s/frontend.sock", d->dir);
    snprintf(d->admin[SENTRY], sizeof(d->admin[SENTRY]), "127.0.0.1:%u", d->healthz_port);
    snprintf(d->admin[BACKEND], sizeof(d->admin[BACKEND]), "unix:%s/backend-admin.sock", d->dir);
    snprintf(d->admin[FRONTEND], sizeof(d->admin[FRONTEND]), "unix:%s/frontend-admin.sock", d->dir);
    snprintf(creds, sizeof(creds), "%s/creds", d->dir);
    snprintf(cfg_path, sizeof(cfg_path), "%s/sentry.yaml", d->dir);
    if (mkdir(creds, 0700) != 0) {
        fprintf(stderr, "picket demo: %s: %s\n", creds, strerror(errno));
        return -1;
    }
    /* No clock skew allowance: certificates then live exactly --ttl, so renewal comes at half
     * of it. (Sentry's default backdates them 15 minutes.) */
    snprintf(text, sizeof(text),
             "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: daprsystem\n"
             "spec:\n  mtls:\n    enabled: true\n    workloadCertTTL: \"%s\"\n"
             "    allowedClockSkew: \"0s\"\n",
             ttl);
    if (write_text(d->dir, "sentry.yaml", text) != 0) {
        return -1;
    }
    snprintf(text, sizeof(text),
             "[agent]\napp_id = backend\n[sentry]\naddress = 127.0.0.1:%u\n"
             "trust_anchors_file = %s/ca.crt\n[admin]\nlisten = %s\n[proxy]\nworkers = 1\n"
             "[inbound web]\nlisten = 127.0.0.1:%u\ntarget = unix:%s\nallow_app_id = frontend\n",
             d->grpc_port, creds, d->admin[BACKEND], d->backend_port, d->app_sock);
    if (write_text(d->dir, "backend.ini", text) != 0) {
        return -1;
    }
    snprintf(text, sizeof(text),
             "[agent]\napp_id = frontend\n[sentry]\naddress = 127.0.0.1:%u\n"
             "trust_anchors_file = %s/ca.crt\n[admin]\nlisten = %s\n[proxy]\nworkers = 1\n"
             "[outbound backend]\nlisten = unix:%s\ntarget = 127.0.0.1:%u\n"
             "expect_app_id = backend\n",
             d->grpc_port, creds, d->admin[FRONTEND], d->front_sock, d->backend_port);
    if (write_text(d->dir, "frontend.ini", text) != 0) {
        return -1;
    }
    snprintf(port[0], sizeof(port[0]), "%u", d->grpc_port);
    snprintf(port[1], sizeof(port[1]), "%u", d->healthz_port);
    snprintf(port[2], sizeof(port[2]), "%u", d->metrics_port);
    char *sentry_args[] = {"picket",
                           "sentry",
                           "--issuer-credentials",
                           creds,
                           "--config",
                           cfg_path,
                           "--listen-address",
                           "127.0.0.1",
                           "--port",
                           port[0],
                           "--healthz-listen-address",
                           "127.0.0.1",
                           "--healthz-port",
                           port[1],
                           "--metrics-listen-address",
                           "127.0.0.1",
                           "--metrics-port",
                           port[2],
                           NULL};
    printf("picket demo: a local Sentry (certificates of %s), sidecars frontend and backend, an\n"
           "app behind backend; requests go client -> frontend -> mTLS -> backend -> app.\n"
           "Working directory %s\n",
           ttl, d->dir);
    if (app_start(d) != 0 || spawn(d, SENTRY, sentry_args) != 0 ||
        !wait_ready(d, SENTRY, d->admin[SENTRY], "/healthz")) {
        return -1;
    }
    snprintf(ini[0], sizeof(ini[0]), "%s/backend.ini", d->dir);
    snprintf(ini[1], sizeof(ini[1]), "%s/frontend.ini", d->dir);
    char *backend_args[] = {"picket", "run", "-c", ini[0], NULL};
    char *frontend_args[] = {"picket", "run", "-c", ini[1], NULL};
    if (spawn(d, BACKEND, backend_args) != 0 || spawn(d, FRONTEND, frontend_args) != 0 ||
        !wait_ready(d, BACKEND, d->admin[BACKEND], "/readyz") ||
        !wait_ready(d, FRONTEND, d->admin[FRONTEND], "/readyz")) {
        return -1;
    }
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: picket demo [--duration SECONDS] [--ttl DURATION] [--rate N]\n"
                 "\n"
                 "Run a local Sentry, two sidecars and an app, send requests through mTLS while\n"
                 "the certificates rotate, and print what happens each second.\n"
                 "\n"
                 "  --duration SECONDS   how long to send requests (default 60)\n"
                 "  --ttl DURATION       workload certificate lifetime (default 15s)\n"
                 "  --rate N             requests per second (default 20)\n"
                 "\n"
                 "Exit status: 0 when every request succeeded, 1 when any failed, 2 usage error,\n"
                 "3 when the set-up did not come up.\n");
}

int pk_cmd_demo(int argc, char **argv)
{
    static const struct option opts[] = {
            {"duration", required_argument, NULL, 'd'},
            {"ttl", required_argument, NULL, 't'},
            {"rate", required_argument, NULL, 'r'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0},
    };
    struct demo *d = calloc(1, sizeof(*d));
    const char *ttl = "15s";
    double duration = 60, rate = 20, ttl_s, start, next_line, end;
    unsigned long ok = 0, failed = 0;
    long long first_rot[N_CHILDREN] = {0};
    struct side sides[N_CHILDREN];
    char first_error[sizeof(((struct pk_err *)0)->msg)] = "";
    struct sigaction sa = {.sa_handler = on_signal};
    ssize_t n;
    int c, code = EXIT_USAGE;
    char *end_ptr;

    if (d == NULL) {
        return EXIT_SETUP;
    }
    opterr = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            duration = strtod(optarg, &end_ptr);
            if (*end_ptr != '\0' || !(duration >= 1 && duration <= 3600)) {
                fprintf(stderr, "picket demo: --duration: '%s' is not 1 to 3600 seconds\n", optarg);
                goto out;
            }
            break;
        case 't':
            if (pk_flag_duration("--ttl", optarg, &ttl_s) != 0 || ttl_s < 2 || ttl_s > 86400) {
                fprintf(stderr, "picket demo: --ttl must be from 2s to 24h\n");
                goto out;
            }
            ttl = optarg;
            break;
        case 'r':
            rate = strtod(optarg, &end_ptr);
            if (*end_ptr != '\0' || !(rate >= 1 && rate <= 1000)) {
                fprintf(stderr, "picket demo: --rate: '%s' is not 1 to 1000\n", optarg);
                goto out;
            }
            break;
        case 'h':
            usage(stdout);
            code = 0;
            goto out;
        default:
            fprintf(stderr, "picket demo: unknown or incomplete option '%s'\n\n", argv[optind - 1]);
            usage(stderr);
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "picket demo: unexpected argument '%s'\n", argv[optind]);
        goto out;
    }
    code = EXIT_SETUP;
    n = readlink("/proc/self/exe", d->exe, sizeof(d->exe) - 1);
    if (n <= 0) {
        fprintf(stderr, "picket demo: cannot find this executable: %s\n", strerror(errno));
        goto out;
    }
    d->exe[n] = '\0';
    /* /tmp, not $TMPDIR: unix socket paths must stay under 108 bytes. */
    snprintf(d->dir, sizeof(d->dir), "/tmp/picket-demo-XXXXXX");
    if (mkdtemp(d->dir) == NULL) {
        fprintf(stderr, "picket demo: mkdtemp: %s\n", strerror(errno));
        d->dir[0] = '\0';
        goto out;
    }
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (set_up(d, ttl) != 0) {
        if (!interrupted) {
            print_logs(d);
        }
        goto out;
    }
    for (int i = BACKEND; i < N_CHILDREN; i++) {
        ask_status(d->admin[i], &sides[i]);
        first_rot[i] = sides[i].rotations;
    }
    printf("Both sidecars are ready. Sending %.0f requests a second for %.0fs (Ctrl-C stops).\n\n",
           rate, duration);
    start = now_mono();
    next_line = start + 1;
    end = start + duration;
    while (!interrupted && now_mono() < end) {
        double t0 = now_mono(), wait;
        char why[sizeof(((struct pk_err *)0)->msg)];
        if (one_request(d, why, sizeof(why))) {
            ok++;
        } else {
            failed++;
            if (first_error[0] == '\0') {
                snprintf(first_error, sizeof(first_error), "%s", why);
            }
        }
        if (now_mono() >= next_line) {
            char a[64], b[64];
            for (int i = BACKEND; i < N_CHILDREN; i++) {
                ask_status(d->admin[i], &sides[i]);
            }
            printf("[%3.0fs] requests ok %6lu failed %lu | frontend %s | backend %s | "
                   "rotations %lld+%lld\n",
                   now_mono() - start, ok, failed, side_text(&sides[FRONTEND], a, sizeof(a)),
                   side_text(&sides[BACKEND], b, sizeof(b)),
                   sides[FRONTEND].rotations - first_rot[FRONTEND],
                   sides[BACKEND].rotations - first_rot[BACKEND]);
            fflush(stdout);
            next_line += 1;
        }
        wait = 1.0 / rate - (now_mono() - t0);
        if (wait > 0) {
            sleep_for(wait);
        }
    }
    for (int i = BACKEND; i < N_CHILDREN; i++) {
        ask_status(d->admin[i], &sides[i]);
    }
    printf("\nSummary: %lu requests in %.0fs, %lu ok, %lu failed; the app answered %lu.\n"
           "Rotations: frontend %lld, backend %lld (certificates of %s, renewed at about half "
           "their life).\n",
           ok + failed, now_mono() - start, ok, failed, atomic_load(&d->app_served),
           sides[FRONTEND].rotations - first_rot[FRONTEND],
           sides[BACKEND].rotations - first_rot[BACKEND], ttl);
    if (failed > 0) {
        printf("First failure: %s\n", first_error);
    }
    if (interrupted) {
        printf("Interrupted.\n");
    }
    code = failed > 0 ? EXIT_FAILED_REQUESTS : 0;
    if (ok == 0 && !interrupted) {
        code = EXIT_FAILED_REQUESTS;
    }
out:
    stop_children(d);
    app_stop(d);
    if (d->dir[0] != '\0') {
        nftw(d->dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
        if (code != EXIT_USAGE) {
            printf("Stopped every process and removed %s.\n", d->dir);
        }
    }
    free(d);
    return code;
}
