/* SPDX-License-Identifier: Apache-2.0 */
/* proxyload: the load generator and the backend app of bench/proxy.
 *
 * One single-threaded epoll loop per process, non-blocking sockets, wolfSSL (the fast build) on
 * the client side. bench/proxy compiles it with a plain cc command against the fast wolfSSL
 * prefix; it is not part of picket and not built by meson.
 *
 *   proxyload backend --listen IP:PORT
 *       The app behind the proxy. The first byte of each connection picks what it does:
 *         'R'  read REQ_LEN bytes in all (this byte included), answer REPLY_LEN bytes, close;
 *         'E'  echo every following byte;
 *         'D'  discard every following byte;
 *         'S'  send bytes until the peer goes away (download).
 *
 *   proxyload MODE --connect IP:PORT --cert CHAIN.pem --key KEY.pem [--ca ROOTS.pem] [options]
 *     MODE is one of
 *       hs     new connection, full TLS 1.3 handshake with a client certificate, one request
 *              ('R', REQ_LEN bytes) and its REPLY_LEN-byte answer, close_notify both ways,
 *              close; --concurrency connections in flight, a new one for each that ends.
 *       up     --streams connections send 16 KiB records ('D') as fast as they can.
 *       down   --streams connections read what the backend sends ('S').
 *       lat    one connection; 'E', then --size-byte ping-pongs, each timed.
 *       hold   open --conns connections (--concurrency at a time), one --size-byte echo on
 *              each, then keep them open and idle; print "ready" on stderr and wait for
 *              stdin to close.
 *       check  one 'R' exchange, print the negotiated version, suite and group.
 *     Timing: --warmup S seconds not counted, then --seconds S counted (hs, up, down, lat).
 *     --pid PID (repeatable): CPU time of these processes over the counted window.
 *     --watch-cpu N: busy and steal time of CPU N over the window (/proc/stat), to tell
 *     whether something besides the proxy ran on its core.
 *     Without --ca the server certificate is not verified (the server's cost is the same
 *     either way; the client saves three ECDSA verifications per handshake). No session is
 *     ever resumed: each connection is a new WOLFSSL without a session.
 *   Results: one JSON object on stdout. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#define REQ_LEN   16
#define REPLY_LEN 64
#define CHUNK     16384
#define MAX_PIDS  8
#define MAX_EV    256

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("proxyload: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void parse_addr(const char *s, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof(host)) {
        die("bad address %s (want IP:PORT)", s);
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
        die("bad IPv4 address %s", host);
    }
}

static void nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* CPU seconds (user + system) of a process, all threads, from /proc/PID/stat. */
static double proc_cpu(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL) {
        return -1;
    }
    unsigned long ut = 0, st = 0;
    /* After ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime(14) stime(15). */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) {
        return -1;
    }
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Busy and steal seconds of one CPU so far, from /proc/stat (to see what else ran there). */
static void cpu_busy(int cpu, double *busy, double *steal)
{
    char want[16], line[512];
    unsigned long long v[10] = {0};
    FILE *f = fopen("/proc/stat", "r");

    *busy = *steal = -1;
    if (f == NULL) {
        return;
    }
    snprintf(want, sizeof(want), "cpu%d ", cpu);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, want, strlen(want)) == 0) {
            /* user nice system idle iowait irq softirq steal guest guest_nice */
            sscanf(line + strlen(want), "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
            double hz = (double)sysconf(_SC_CLK_TCK);
            *busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / hz;
            *steal = (double)v[7] / hz;
            break;
        }
    }
    fclose(f);
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static uint8_t junk[CHUNK];

/* ============================== backend ====================================================== */

struct bconn {
    int fd;
    char mode; /* 0 until the first byte */
    size_t got;
    uint8_t *out;
    size_t out_len, out_off;
};

static void bclose(int ep, struct bconn *b)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, b->fd, NULL);
    close(b->fd);
    free(b->out);
    free(b);
}

static void bset(int ep, struct bconn *b, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = b};
    epoll_ctl(ep, EPOLL_CTL_MOD, b->fd, &e);
}

/* Returns false when b was closed. */
static bool bflush(int ep, struct bconn *b)
{
    while (b->out_off < b->out_len) {
        ssize_t n = send(b->fd, b->out + b->out_off, b->out_len - b->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            bset(ep, b, EPOLLOUT);
            return true;
        }
        if (n < 0) {
            bclose(ep, b);
            return false;
        }
        b->out_off += (size_t)n;
    }
    b->out_off = b->out_len = 0;
    bset(ep, b, EPOLLIN);
    return true;
}

static void bevent(int ep, struct bconn *b, uint32_t ev)
{
    static uint8_t buf[256 * 1024];

    if (b->mode == 'S') {
        for (;;) {
            ssize_t n = send(b->fd, junk, sizeof(junk), MSG_NOSIGNAL);
            if (n < 0 && errno == EAGAIN) {
                return;
            }
            if (n <= 0) {
                bclose(ep, b);
                return;
            }
        }
    }
    if ((ev & EPOLLOUT) && b->out_len > 0) {
        if (!bflush(ep, b) || b->out_len > 0) {
            return;
        }
    }
    for (;;) {
        ssize_t n = recv(b->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        if (n <= 0) {
            bclose(ep, b);
            return;
        }
        uint8_t *p = buf;
        if (b->mode == 0) {
            b->mode = (char)p[0];
            if (b->mode == 'S') {
                bset(ep, b, EPOLLOUT);
                bevent(ep, b, EPOLLOUT);
                return;
            }
            if (b->mode != 'R' && b->mode != 'E' && b->mode != 'D') {
                bclose(ep, b);
                return;
            }
            if (b->mode != 'R') {
                p++;
                n--;
            }
        }
        switch (b->mode) {
        case 'R':
            b->got += (size_t)n;
            if (b->got >= REQ_LEN) {
                uint8_t reply[REPLY_LEN];
                memset(reply, 'r', sizeof(reply));
                (void)send(b->fd, reply, sizeof(reply), MSG_NOSIGNAL); /* fits a fresh socket */
                bclose(ep, b);
                return;
            }
            break;
        case 'E':
            if (n > 0) {
                b->out = realloc(b->out, (size_t)n);
                memcpy(b->out, p, (size_t)n);
                b->out_len = (size_t)n;
                b->out_off = 0;
                if (!bflush(ep, b) || b->out_len > 0) {
                    return; /* closed, or wait for EPOLLOUT before reading more */
                }
            }
            break;
        case 'D':
            break;
        }
    }
}

static _Noreturn void run_backend(const char *listen_addr)
{
    struct sockaddr_in sa;
    int one = 1;
    parse_addr(listen_addr, &sa);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 4096) != 0) {
        die("backend: listen %s: %s", listen_addr, strerror(errno));
    }
    socklen_t sl = sizeof(sa);
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    printf("{\"port\": %u}\n", ntohs(sa.sin_port));
    fflush(stdout);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
    struct epoll_event evs[MAX_EV];
    for (;;) {
        int n = epoll_wait(ep, evs, MAX_EV, -1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) {
                        break;
                    }
                    nodelay(fd);
                    struct bconn *b = calloc(1, sizeof(*b));
                    b->fd = fd;
                    struct epoll_event ce = {.events = EPOLLIN, .data.ptr = b};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ce);
                }
            } else {
                bevent(ep, evs[i].data.ptr, evs[i].events);
            }
        }
    }
}

/* ============================== client ======================================================= */

enum mode { M_HS, M_UP, M_DOWN, M_LAT, M_HOLD, M_CHECK };

enum state {
    ST_CONNECT,
    ST_HS,
    ST_SEND,    /* write the request or the ping */
    ST_RECV,    /* read the answer */
    ST_SHUT,    /* got close_notify: send ours */
    ST_WAITEOF, /* wait for the server's FIN, so the TIME_WAIT is the server's */
    ST_BULK,    /* up: write records forever */
    ST_SINK,    /* down: read forever */
    ST_IDLE,    /* hold: nothing more */
};

struct cconn {
    int fd;
    WOLFSSL *ssl;
    enum state st;
    size_t got;
    uint64_t t0;
    bool selector_sent;
};

static struct {
    enum mode mode;
    struct sockaddr_in addr;
    WOLFSSL_CTX *ctx;
    int ep;
    int concurrency, streams, conns, size;
    double seconds, warmup;
    int pids[MAX_PIDS];
    int npids;
    int watch_cpu;
    /* counters */
    bool counting;
    uint64_t done;  /* hs: completed exchanges; lat: pings; hold: established */
    uint64_t bytes; /* up/down */
    uint64_t errors;
    uint64_t started;
    uint64_t *lat;
    size_t nlat, caplat;
    int live;
    char first_error[256];
} G;

static void note_error(const char *what, struct cconn *c, int ret)
{
    G.errors++;
    if (G.first_error[0] == '\0') {
        char text[WOLFSSL_MAX_ERROR_SZ] = "";
        int e = c->ssl != NULL ? wolfSSL_get_error(c->ssl, ret) : 0;
        if (e != 0) {
            wolfSSL_ERR_error_string_n((unsigned long)e, text, sizeof(text));
        }
        snprintf(G.first_error, sizeof(G.first_error), "%s: %d %s (errno %s)", what, e, text,
                 strerror(errno));
    }
}

static void cclose(struct cconn *c)
{
    if (c->ssl != NULL) {
        wolfSSL_free(c->ssl);
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    free(c);
    G.live--;
}

static void cstart(void)
{
    struct cconn *c = calloc(1, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        die("socket: %s", strerror(errno));
    }
    nodelay(c->fd);
    c->st = ST_CONNECT;
    c->t0 = now_ns();
    G.live++;
    G.started++;
    if (connect(c->fd, (struct sockaddr *)&G.addr, sizeof(G.addr)) != 0 && errno != EINPROGRESS) {
        note_error("connect", c, 0);
        cclose(c);
        return;
    }
    struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    epoll_ctl(G.ep, EPOLL_CTL_ADD, c->fd, &e);
}

/* wolfSSL said WANT_READ/WANT_WRITE: wait for the next edge. */
static bool wants(struct cconn *c, int ret)
{
    int e = wolfSSL_get_error(c->ssl, ret);
    return e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE;
}

static void record_latency(uint64_t ns)
{
    if (G.nlat == G.caplat) {
        G.caplat = G.caplat ? G.caplat * 2 : 65536;
        G.lat = realloc(G.lat, G.caplat * sizeof(*G.lat));
    }
    G.lat[G.nlat++] = ns;
}

/* Drive one connection until it blocks. Returns false when it was closed. */
static bool cdrive(struct cconn *c)
{
    static uint8_t buf[CHUNK];
    int r;

    for (;;) {
        switch (c->st) {
        case ST_CONNECT: {
            int err = 0;
            socklen_t len = sizeof(err);
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err == EINPROGRESS) {
                return true;
            }
            if (err != 0) {
                errno = err;
                note_error("connect", c, 0);
                cclose(c);
                return false;
            }
            c->ssl = wolfSSL_new(G.ctx);
            if (c->ssl == NULL) {
                die("wolfSSL_new failed");
            }
            wolfSSL_set_fd(c->ssl, c->fd);
            c->st = ST_HS;
            break;
        }
        case ST_HS:
            r = wolfSSL_connect(c->ssl);
            if (r != WOLFSSL_SUCCESS) {
                if (wants(c, r)) {
                    return true;
                }
                note_error("handshake", c, r);
                cclose(c);
                return false;
            }
            switch (G.mode) {
            case M_UP:
                c->st = ST_BULK;
                break;
            case M_DOWN:
                c->st = ST_SINK;
                break;
            default:
                c->st = ST_SEND;
                break;
            }
            c->got = 0;
            break;
        case ST_SEND: {
            /* hs/check: the 'R' request; lat/hold: 'E' once, then a ping of --size bytes. */
            uint8_t msg[1 + 65536];
            size_t n;
            if (G.mode == M_HS || G.mode == M_CHECK) {
                memset(msg, 'q', REQ_LEN);
                msg[0] = 'R';
                n = REQ_LEN;
            } else {
                size_t off = c->selector_sent ? 0 : 1;
                msg[0] = 'E';
                memset(msg + off, 'p', (size_t)G.size);
                n = off + (size_t)G.size;
            }
            c->t0 = now_ns();
            r = wolfSSL_write(c->ssl, msg, (int)n);
            if (r <= 0) {
                if (wants(c, r)) {
                    return true; /* wolfSSL keeps the record; the same call is repeated */
                }
                note_error("write", c, r);
                cclose(c);
                return false;
            }
            c->selector_sent = true;
            c->got = 0;
            c->st = ST_RECV;
            break;
        }
        case ST_RECV: {
            size_t want = (G.mode == M_HS || G.mode == M_CHECK) ? REPLY_LEN : (size_t)G.size;
            if (c->got >= want && (G.mode == M_LAT || G.mode == M_HOLD)) {
                uint64_t t = now_ns();
                if (G.mode == M_LAT) {
                    if (G.counting) {
                        record_latency(t - c->t0);
                        G.done++;
                    }
                    c->st = ST_SEND;
                } else {
                    G.done++;
                    c->st = ST_IDLE;
                }
                break;
            }
            r = wolfSSL_read(c->ssl, buf, sizeof(buf));
            if (r > 0) {
                c->got += (size_t)r;
                break;
            }
            if (wants(c, r)) {
                return true;
            }
            int e = wolfSSL_get_error(c->ssl, r);
            if (e == WOLFSSL_ERROR_ZERO_RETURN && c->got >= want) {
                c->st = ST_SHUT;
                break;
            }
            note_error(c->got >= want ? "close" : "read", c, r);
            cclose(c);
            return false;
        }
        case ST_SHUT:
            if (G.mode == M_CHECK && G.bytes == 0) {
                const char *curve = wolfSSL_get_curve_name(c->ssl);
                G.bytes = 1;
                printf("{\"version\": \"%s\", \"suite\": \"%s\", \"group\": \"%s\"",
                       wolfSSL_get_version(c->ssl), wolfSSL_get_cipher(c->ssl),
                       curve != NULL ? curve : "?");
            }
            r = wolfSSL_shutdown(c->ssl);
            if (r != WOLFSSL_SUCCESS && r != WOLFSSL_SHUTDOWN_NOT_DONE && wants(c, r)) {
                return true;
            }
            shutdown(c->fd, SHUT_WR);
            c->st = ST_WAITEOF;
            break;
        case ST_WAITEOF: {
            ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
            if (n < 0 && errno == EAGAIN) {
                return true;
            }
            if (n > 0) {
                break;
            }
            if (G.counting) {
                G.done++;
            }
            if (G.mode == M_CHECK) {
                G.done++;
            }
            cclose(c);
            return false;
        }
        case ST_BULK:
            r = c->selector_sent ? wolfSSL_write(c->ssl, junk, CHUNK)
                                 : wolfSSL_write(c->ssl, "D", 1);
            if (r <= 0) {
                if (wants(c, r)) {
                    return true;
                }
                note_error("write", c, r);
                cclose(c);
                return false;
            }
            if (!c->selector_sent) {
                c->selector_sent = true;
            } else if (G.counting) {
                G.bytes += (uint64_t)r;
            }
            break;
        case ST_SINK:
            if (!c->selector_sent) {
                r = wolfSSL_write(c->ssl, "S", 1);
                if (r <= 0) {
                    if (wants(c, r)) {
                        return true;
                    }
                    note_error("write", c, r);
                    cclose(c);
                    return false;
                }
                c->selector_sent = true;
            }
            r = wolfSSL_read(c->ssl, buf, sizeof(buf));
            if (r > 0) {
                if (G.counting) {
                    G.bytes += (uint64_t)r;
                }
                break;
            }
            if (wants(c, r)) {
                return true;
            }
            note_error("read", c, r);
            cclose(c);
            return false;
        case ST_IDLE:
            return true;
        }
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p)
{
    if (G.nlat == 0) {
        return 0;
    }
    size_t i = (size_t)(p / 100.0 * (double)(G.nlat - 1) + 0.5);
    return (double)G.lat[i] / 1000.0;
}

static void setup_ctx(const char *cert, const char *key, const char *ca)
{
    if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
        die("wolfSSL_Init");
    }
    G.ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
    if (G.ctx == NULL) {
        die("wolfSSL_CTX_new");
    }
    if (wolfSSL_CTX_use_certificate_chain_file(G.ctx, cert) != WOLFSSL_SUCCESS) {
        die("cannot load certificate chain %s", cert);
    }
    if (wolfSSL_CTX_use_PrivateKey_file(G.ctx, key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS) {
        die("cannot load key %s", key);
    }
    if (ca != NULL) {
        if (wolfSSL_CTX_load_verify_locations(G.ctx, ca, NULL) != WOLFSSL_SUCCESS) {
            die("cannot load roots %s", ca);
        }
        wolfSSL_CTX_set_verify(G.ctx, WOLFSSL_VERIFY_PEER, NULL);
    } else {
        wolfSSL_CTX_set_verify(G.ctx, WOLFSSL_VERIFY_NONE, NULL);
    }
    /* What both servers pick first anyway: AES-128-GCM and an X25519 key share. */
    if (wolfSSL_CTX_set_cipher_list(G.ctx, "TLS13-AES128-GCM-SHA256") != WOLFSSL_SUCCESS) {
        die("cipher list");
    }
    int groups[] = {WOLFSSL_ECC_X25519};
    if (wolfSSL_CTX_set_groups(G.ctx, groups, 1) != WOLFSSL_SUCCESS) {
        die("groups");
    }
}

static void usage(void)
{
    fputs("usage: proxyload backend --listen IP:PORT\n"
          "       proxyload hs|up|down|lat|hold|check --connect IP:PORT --cert F --key F\n"
          "                 [--ca F] [--seconds S] [--warmup S] [--concurrency N]\n"
          "                 [--streams N] [--conns N] [--size N] [--pid PID]...\n"
          "                 [--watch-cpu N]\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *connect_to = NULL, *listen_at = NULL, *cert = NULL, *key = NULL, *ca = NULL;

    if (argc < 2) {
        usage();
    }
    signal(SIGPIPE, SIG_IGN);
    const char *m = argv[1];
    G.concurrency = 32;
    G.streams = 1;
    G.conns = 1000;
    G.size = 64;
    G.seconds = 5;
    G.warmup = 1;
    G.watch_cpu = -1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            usage();
        }
        i++;
        if (!strcmp(a, "--connect")) {
            connect_to = v;
        } else if (!strcmp(a, "--listen")) {
            listen_at = v;
        } else if (!strcmp(a, "--cert")) {
            cert = v;
        } else if (!strcmp(a, "--key")) {
            key = v;
        } else if (!strcmp(a, "--ca")) {
            ca = v;
        } else if (!strcmp(a, "--seconds")) {
            G.seconds = atof(v);
        } else if (!strcmp(a, "--warmup")) {
            G.warmup = atof(v);
        } else if (!strcmp(a, "--concurrency")) {
            G.concurrency = atoi(v);
        } else if (!strcmp(a, "--streams")) {
            G.streams = atoi(v);
        } else if (!strcmp(a, "--conns")) {
            G.conns = atoi(v);
        } else if (!strcmp(a, "--size")) {
            G.size = atoi(v);
            if (G.size < 1 || G.size > 65536) {
                die("--size must be 1..65536");
            }
        } else if (!strcmp(a, "--watch-cpu")) {
            G.watch_cpu = atoi(v);
        } else if (!strcmp(a, "--pid")) {
            if (G.npids == MAX_PIDS) {
                die("too many --pid");
            }
            G.pids[G.npids++] = atoi(v);
        } else {
            usage();
        }
    }
    memset(junk, 'x', sizeof(junk));
    if (!strcmp(m, "backend")) {
        if (listen_at == NULL) {
            usage();
        }
        run_backend(listen_at);
    }
    if (!strcmp(m, "hs")) {
        G.mode = M_HS;
    } else if (!strcmp(m, "up")) {
        G.mode = M_UP;
    } else if (!strcmp(m, "down")) {
        G.mode = M_DOWN;
    } else if (!strcmp(m, "lat")) {
        G.mode = M_LAT;
    } else if (!strcmp(m, "hold")) {
        G.mode = M_HOLD;
    } else if (!strcmp(m, "check")) {
        G.mode = M_CHECK;
    } else {
        usage();
    }
    if (connect_to == NULL || cert == NULL || key == NULL) {
        usage();
    }
    parse_addr(connect_to, &G.addr);
    setup_ctx(cert, key, ca);
    G.ep = epoll_create1(EPOLL_CLOEXEC);

    int target;
    switch (G.mode) {
    case M_HS:
        target = G.concurrency;
        break;
    case M_UP:
    case M_DOWN:
        target = G.streams;
        break;
    case M_HOLD:
        target = G.concurrency;
        break;
    default:
        target = 1;
        break;
    }

    if (G.mode == M_CHECK) {
        cstart();
        struct epoll_event evs[4];
        double deadline = now() + 10;
        while (G.live > 0 && now() < deadline) {
            int n = epoll_wait(G.ep, evs, 4, 100);
            for (int i = 0; i < n; i++) {
                cdrive(evs[i].data.ptr);
            }
        }
        if (G.bytes == 0 || G.done == 0) {
            die("check failed: %s", G.first_error[0] ? G.first_error : "no answer");
        }
        printf(", \"verified\": %s}\n", ca != NULL ? "true" : "false");
        return 0;
    }

    if (G.mode == M_HOLD) {
        /* Open --conns connections, at most --concurrency handshaking at a time. */
        struct epoll_event evs[MAX_EV];
        double t0 = now();
        while (G.done + G.errors < (uint64_t)G.conns) {
            while (G.started < (uint64_t)G.conns &&
                   (int64_t)G.started - (int64_t)G.done - (int64_t)G.errors < G.concurrency) {
                cstart();
            }
            int n = epoll_wait(G.ep, evs, MAX_EV, 100);
            for (int i = 0; i < n; i++) {
                cdrive(evs[i].data.ptr);
            }
            if (now() - t0 > 120) {
                die("hold: only %llu of %d connections after 120 s", (unsigned long long)G.done,
                    G.conns);
            }
        }
        fprintf(stderr, "ready %llu\n", (unsigned long long)G.done);
        /* Stay idle until stdin closes; keep serving (nothing should arrive). */
        struct pollfd p = {.fd = 0, .events = POLLIN};
        char b[64];
        for (;;) {
            if (poll(&p, 1, -1) > 0 && read(0, b, sizeof(b)) <= 0) {
                break;
            }
        }
        printf("{\"mode\": \"hold\", \"established\": %llu, \"errors\": %llu, \"live\": %d, "
               "\"first_error\": \"%s\", \"seconds\": %.3f}\n",
               (unsigned long long)G.done, (unsigned long long)G.errors, G.live, G.first_error,
               now() - t0);
        return 0;
    }

    struct epoll_event evs[MAX_EV];
    double t_start = now();
    double t_count = t_start + G.warmup, t_end = t_count + G.seconds;
    double cpu0 = 0, pcpu0[MAX_PIDS] = {0}, real0 = 0, busy0 = 0, steal0 = 0;
    bool opened_once = false;
    for (;;) {
        double t = now();
        if (!G.counting && t >= t_count) {
            G.counting = true;
            G.done = G.bytes = 0;
            G.errors = 0;
            G.first_error[0] = '\0';
            real0 = t;
            cpu0 = self_cpu();
            for (int i = 0; i < G.npids; i++) {
                pcpu0[i] = proc_cpu(G.pids[i]);
            }
            if (G.watch_cpu >= 0) {
                cpu_busy(G.watch_cpu, &busy0, &steal0);
            }
        }
        if (t >= t_end) {
            break;
        }
        /* hs keeps --concurrency connections going; the others open theirs once. */
        if (G.mode == M_HS || !opened_once) {
            while (G.live < target) {
                cstart();
            }
            opened_once = true;
        }
        int n = epoll_wait(G.ep, evs, MAX_EV, 10);
        for (int i = 0; i < n; i++) {
            cdrive(evs[i].data.ptr);
        }
        if (G.mode != M_HS && G.live < target && G.errors > 0 && G.counting) {
            die("a connection failed: %s", G.first_error);
        }
    }
    double real = now() - real0;
    double cpu = self_cpu() - cpu0;
    const char *names[] = {"hs", "up", "down", "lat", "hold", "check"};
    printf("{\"mode\": \"%s\", \"seconds\": %.3f, \"count\": %llu, \"bytes\": %llu, "
           "\"errors\": %llu, \"first_error\": \"%s\", \"client_cpu\": %.3f",
           names[G.mode], real, (unsigned long long)G.done, (unsigned long long)G.bytes,
           (unsigned long long)G.errors, G.first_error, cpu / real);
    printf(", \"pid_cpu\": [");
    for (int i = 0; i < G.npids; i++) {
        double c1 = proc_cpu(G.pids[i]);
        printf("%s%.3f", i ? ", " : "", c1 >= 0 && pcpu0[i] >= 0 ? (c1 - pcpu0[i]) / real : -1);
    }
    printf("]");
    if (G.watch_cpu >= 0) {
        double busy1, steal1;
        cpu_busy(G.watch_cpu, &busy1, &steal1);
        printf(", \"cpu_busy\": %.3f, \"cpu_steal\": %.3f", (busy1 - busy0) / real,
               (steal1 - steal0) / real);
    }
    if (G.mode == M_HS) {
        printf(", \"rate\": %.1f", (double)G.done / real);
    } else if (G.mode == M_UP || G.mode == M_DOWN) {
        printf(", \"mb_per_s\": %.1f", (double)G.bytes / real / 1e6);
    } else if (G.mode == M_LAT) {
        qsort(G.lat, G.nlat, sizeof(*G.lat), cmp_u64);
        printf(", \"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, "
               "\"max_us\": %.1f",
               pct(50), pct(90), pct(99), pct(99.9),
               G.nlat ? (double)G.lat[G.nlat - 1] / 1000.0 : 0);
    }
    printf("}\n");
    return 0;
}
