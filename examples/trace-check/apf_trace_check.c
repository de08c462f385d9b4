/* SPDX-License-Identifier: MIT */
/*
 * apf-trace-check: checks a protocol trace in libapf's text format (apf/trace.h) against
 * the protocol's invariants, for any implementation that writes the format.
 *
 *   apf-trace-check [--max-outstanding N] [FILE]     (stdin without FILE)
 *
 * Lines starting with '#' and empty lines are skipped. Exit status: 0 the trace is
 * consistent, 1 a violation (printed with its line), 2 bad usage or an unreadable line.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apf/trace.h"

struct line {
    struct apf_trace_event ev;
    unsigned long no;
};

int main(int argc, char **argv)
{
    const char *path = NULL;
    unsigned long max_out = 4096;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--max-outstanding") == 0 && i + 1 < argc) {
            char *end;
            max_out = strtoul(argv[++i], &end, 10);
            if (*end || max_out == 0 || max_out > 65536) {
                fprintf(stderr, "apf-trace-check: --max-outstanding must be 1..65536\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: apf-trace-check [--max-outstanding N] [FILE]\n");
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "apf-trace-check: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            fprintf(stderr, "apf-trace-check: one file at most\n");
            return 2;
        }
    }
    FILE *f = path && strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (f == NULL) {
        fprintf(stderr, "apf-trace-check: %s: %s\n", path, strerror(errno));
        return 2;
    }
    /* Read everything first: the checker is sized by the number of vCPUs in the trace. */
    int rc = 2;
    void *mem = NULL;
    struct line *lines = NULL;
    size_t n = 0, cap = 0;
    uint32_t max_vcpu = 0;
    char *buf = NULL;
    size_t bufcap = 0;
    ssize_t len;
    unsigned long no = 0;
    while ((len = getline(&buf, &bufcap, f)) >= 0) {
        no++;
        size_t k = 0;
        while (k < (size_t)len && (buf[k] == ' ' || buf[k] == '\t'))
            k++;
        if (k == (size_t)len || buf[k] == '#' || buf[k] == '\n')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            struct line *grown = realloc(lines, cap * sizeof(*lines));
            if (!grown) {
                fprintf(stderr, "apf-trace-check: out of memory\n");
                goto out;
            }
            lines = grown;
        }
        if (apf_trace_parse(buf, (size_t)len, &lines[n].ev) != 0) {
            fprintf(stderr, "apf-trace-check: line %lu: not a trace event: %s", no, buf);
            goto out;
        }
        lines[n].no = no;
        if (lines[n].ev.vcpu > max_vcpu)
            max_vcpu = lines[n].ev.vcpu;
        n++;
    }
    if (max_vcpu >= 65536) {
        fprintf(stderr, "apf-trace-check: vCPU %u: at most 65536 vCPUs\n", max_vcpu);
        goto out;
    }
    size_t size = apf_trace_checker_size(max_vcpu + 1, (uint32_t)max_out);
    mem = aligned_alloc(64, (size + 63) & ~(size_t)63);
    struct apf_trace_checker *c =
        mem ? apf_trace_checker_init(mem, size, max_vcpu + 1, (uint32_t)max_out) : NULL;
    if (c == NULL) {
        fprintf(stderr, "apf-trace-check: cannot allocate the checker\n");
        goto out;
    }
    rc = 1;
    for (size_t i = 0; i < n; i++) {
        if (apf_trace_checker_feed(c, &lines[i].ev) != 0) {
            printf("apf-trace-check: line %lu: %s\n", lines[i].no, apf_trace_checker_error(c));
            goto out;
        }
    }
    if (apf_trace_checker_finish(c) != 0) {
        printf("apf-trace-check: %s\n", apf_trace_checker_error(c));
        goto out;
    }
    printf("apf-trace-check: %zu events, %u vCPUs: consistent\n", n, max_vcpu + 1);
    rc = 0;
out:
    if (f != stdin)
        fclose(f);
    free(buf);
    free(lines);
    free(mem);
    return rc;
}
