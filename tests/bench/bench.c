/* SPDX-License-Identifier: MIT */
/*
 * apf-bench: micro-benchmarks of libapf. Prints numbers (a table, or JSON with --json);
 * never pass/fail. Medians over repeated runs, because the machine is shared and noisy.
 *
 *   apf-bench host  [--repeats N] [--json]    libapf-host per-APF cost and memory
 *   apf-bench guest [--repeats N] [--json]    libapf-guest per-APF cost
 *   apf-bench ir [--json]                     instructions per APF, engine and guest path
 *                                             (runs itself under valgrind's callgrind)
 */
#define _GNU_SOURCE
#include "bench.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int bench_parse(int argc, char **argv, struct bench_opts *o)
{
    o->repeats = 11;
    o->json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            o->json = 1;
        } else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 1 || n > BENCH_MAX_REPEATS) {
                fprintf(stderr, "apf-bench: --repeats must be 1..%d\n", BENCH_MAX_REPEATS);
                return 2;
            }
            o->repeats = (int)n;
        } else {
            fprintf(stderr, "apf-bench: unknown option '%s' (use --repeats N, --json)\n", argv[i]);
            return 2;
        }
    }
    return 0;
}

double bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_report_init(struct bench_report *r, const char *name, int json)
{
    r->name = name;
    r->json = json;
    r->rows = 0;
    if (json)
        printf("{\"bench\": \"%s\"", name);
    else
        printf("apf-bench %s (median of repeated runs; ns per APF)\n", name);
}

void bench_report_meta(struct bench_report *r, const char *key, long value)
{
    if (r->json)
        printf(", \"%s\": %ld", key, value);
    else
        printf("  %s: %ld\n", key, value);
}

void bench_report_row(struct bench_report *r, const char *mode, uint32_t n, uint32_t depth,
                      double *samples, int n_samples, double mem_per_vcpu)
{
    double med = bench_median(samples, n_samples);
    double lo = samples[0], hi = samples[n_samples - 1];
    if (r->json) {
        printf("%s{\"mode\": \"%s\", \"n\": %u, \"depth\": %u, \"median_ns\": %.1f, "
               "\"min_ns\": %.1f, \"max_ns\": %.1f, \"mem_per_vcpu\": %.0f}",
               r->rows ? ", " : ", \"rows\": [", mode, n, depth, med, lo, hi, mem_per_vcpu);
    } else {
        if (r->rows == 0)
            printf("  %-17s %6s %6s %10s %10s %10s %12s\n", "mode", "n", "depth", "median",
                   "min", "max", "mem/vcpu B");
        printf("  %-17s %6u %6u %10.1f %10.1f %10.1f %12.0f\n", mode, n, depth, med, lo, hi,
               mem_per_vcpu);
    }
    r->rows++;
    fflush(stdout);
}

void bench_report_end(struct bench_report *r)
{
    if (r->json)
        printf("%s}\n", r->rows ? "]" : "");
}

/* Instructions per APF: `apf-bench host|guest --ir` under callgrind, counted inside the
 * one function that runs exactly 100,000 APFs. Returns Ir per APF, or -1. */
static double ir_count(const char *self, const char *which, const char *fn)
{
    char out[] = "/tmp/apf-bench-ir-XXXXXX";
    int fd = mkstemp(out);
    if (fd < 0)
        return -1;
    close(fd);
    char cmd[8192];
    snprintf(cmd, sizeof(cmd),
             "valgrind --tool=callgrind --callgrind-out-file=%s --toggle-collect=%s '%s' %s --ir "
             ">/dev/null 2>&1",
             out, fn, self, which);
    double ir = -1;
    if (system(cmd) == 0) {
        FILE *f = fopen(out, "r");
        char line[512];
        while (f && fgets(line, sizeof(line), f)) {
            unsigned long long v;
            if (sscanf(line, "summary: %llu", &v) == 1 || sscanf(line, "totals: %llu", &v) == 1)
                ir = (double)v / 100000.0;
        }
        if (f)
            fclose(f);
    }
    unlink(out);
    return ir;
}

static int ir_main(int argc, char **argv)
{
    int json = argc >= 2 && strcmp(argv[1], "--json") == 0;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0 || system("valgrind --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "apf-bench ir: needs valgrind (callgrind) on the PATH\n");
        return 1;
    }
    self[n] = '\0';
    double engine = ir_count(self, "host", "run_engine");
    double guest = ir_count(self, "guest", "run_guest_apfs");
    if (json)
        printf("{\"bench\": \"ir\", \"rows\": [{\"path\": \"engine\", \"ir_per_apf\": %.1f}, "
               "{\"path\": \"guest\", \"ir_per_apf\": %.1f}]}\n",
               engine, guest);
    else
        printf("apf-bench ir (callgrind, instructions per APF)\n  engine %8.1f   (fault -> "
               "complete -> before_entry -> ack, KVM x86, 1 vCPU, depth 1)\n  guest  %8.1f   "
               "(not present -> sleep-table insert -> page ready -> wake -> ACK, 1 CPU)\n",
               engine, guest);
    return engine > 0 && guest > 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "ir") == 0)
        return ir_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "host") == 0)
        return bench_host_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "guest") == 0)
        return bench_guest_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "transport") == 0)
        return bench_transport_main(argc - 1, argv + 1);
    fprintf(stderr, "usage: apf-bench host|guest|transport [--repeats N] [--json]\n"
                    "       apf-bench ir [--json]\n");
    return 2;
}
