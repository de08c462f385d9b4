/* SPDX-License-Identifier: MIT */
/*
 * apf-bench: micro-benchmarks of libapf. Prints numbers (a table, or JSON with --json);
 * never pass/fail. Medians over repeated runs, because the machine is shared and noisy.
 *
 *   apf-bench host  [--repeats N] [--json]    libapf-host per-APF cost and memory
 *   apf-bench guest [--repeats N] [--json]    libapf-guest per-APF cost
 */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

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
            printf("  %-8s %6s %6s %10s %10s %10s %12s\n", "mode", "n", "depth", "median",
                   "min", "max", "mem/vcpu B");
        printf("  %-8s %6u %6u %10.1f %10.1f %10.1f %12.0f\n", mode, n, depth, med, lo, hi,
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

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "host") == 0)
        return bench_host_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "guest") == 0)
        return bench_guest_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "transport") == 0)
        return bench_transport_main(argc - 1, argv + 1);
    fprintf(stderr, "usage: apf-bench host|guest|transport [--repeats N] [--json]\n");
    return 2;
}
