/* SPDX-License-Identifier: Apache-2.0 */
/* picket: process_* metrics from getrusage, getrlimit and /proc/self. */
#include "procmetrics.h"

#include <dirent.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

static double process_start_time;

void pk_process_metrics_init(void)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    process_start_time = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static int family(struct pk_buf *out, const char *name, const char *type, const char *help,
                  double value)
{
    return pk_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type,
                         name, value);
}

/* Open descriptors: the entries of /proc/self/fd, less the one reading it. -1 without /proc. */
static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long n = 0;

    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n - 1;
}

/* Resident set size in bytes from /proc/self/statm (its second field, in pages). */
static double resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long size = 0, resident = 0;
    int got;

    if (f == NULL) {
        return -1;
    }
    got = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return got == 2 ? (double)resident * (double)sysconf(_SC_PAGESIZE) : -1;
}

int pk_process_metrics(struct pk_buf *out)
{
    struct rusage ru;
    struct rlimit rl;
    double rss = resident_bytes();
    long fds = open_fds();
    int r = 0;

    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        r |= family(out, "process_cpu_seconds_total", "counter",
                    "Total user and system CPU time spent in seconds.", cpu);
    }
    if (rss >= 0) {
        r |= family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                    rss);
    }
    if (fds >= 0) {
        r |= family(out, "process_open_fds", "gauge", "Number of open file descriptors.",
                    (double)fds);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        r |= family(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
                    rl.rlim_cur == RLIM_INFINITY ? -1.0 : (double)rl.rlim_cur);
    }
    if (process_start_time > 0) {
        r |= family(out, "process_start_time_seconds", "gauge",
                    "Start time of the process since unix epoch in seconds.", process_start_time);
    }
    return r != 0 ? PK_E_TOOBIG : 0;
}
