/* SPDX-License-Identifier: MIT */
/* apf-bench: shared option parsing, timing and reporting (table or JSON). */
#ifndef APF_BENCH_H
#define APF_BENCH_H

#include <stdint.h>
#include <stdio.h>

#define BENCH_MAX_REPEATS 101

struct bench_opts {
    int repeats; /* runs per configuration; the median is reported */
    int json;
};

/* Parses --repeats N and --json. Returns 0, or prints usage and returns 2. */
int bench_parse(int argc, char **argv, struct bench_opts *o);
double bench_now_ns(void);
double bench_median(double *v, int n); /* sorts v */

struct bench_report {
    const char *name;
    int json;
    int rows;
};

void bench_report_init(struct bench_report *r, const char *name, int json);
void bench_report_meta(struct bench_report *r, const char *key, long value);
/* One configuration: mode, vCPUs (or CPUs), depth (in flight), samples (ns per op),
 * memory per vCPU in bytes (0 if not measured). */
void bench_report_row(struct bench_report *r, const char *mode, uint32_t n, uint32_t depth,
                      double *samples, int n_samples, double mem_per_vcpu);
void bench_report_end(struct bench_report *r);

int bench_host_main(int argc, char **argv);
int bench_guest_main(int argc, char **argv);
int bench_transport_main(int argc, char **argv);

#endif
