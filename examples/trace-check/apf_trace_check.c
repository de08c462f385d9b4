/* SPDX-License-Identifier: MIT */
/*
 * apf-trace-check: checks a protocol trace in libapf's text format (apf/trace.h) against
 * the protocol's invariants, for any implementation that writes the format.
 *
 *   apf-trace-check [--max-outstanding N] [--window N] [--format F] [--svg OUT] [FILE]
 *                                                                  (stdin without FILE)
 *
 * --window N checks every vCPU with a "page ready" window of N (0 = unthrottled, 1 = slot +
 * ACK, N = a ready ring of N entries) whatever the trace's host.transport events say;
 * without it, each vCPU has window 1 until its host.transport event says otherwise.
 *
 * --format apf|kvm|auto (default auto): libapf's format, or Linux KVM's tracepoint text
 * (tracefs or `trace-cmd report`, kvm_input.c, docs/kvm-traces.md). --svg OUT writes the
 * trace as a per-vCPU timeline (svg.c).
 *
 * Lines starting with '#' and empty lines are skipped. Exit status: 0 the trace is
 * consistent, 1 a violation (printed with its line), 2 bad usage, an unreadable line, or a
 * trace the checker is too small for (more outstanding faults than --max-outstanding allows).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apf/error.h"
#include "apf/trace.h"
#include "apf/trace_kvm.h"
#include "trace_check.h"

int main(int argc, char **argv)
{
    const char *path = NULL;
    unsigned long max_out = 4096;
    long window = -1; /* -1: as the trace says (default 1) */
    const char *svg = NULL, *format_opt = "auto";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--max-outstanding") == 0 && i + 1 < argc) {
            char *end;
            max_out = strtoul(argv[++i], &end, 10);
            if (*end || max_out == 0 || max_out > 65536) {
                fprintf(stderr, "apf-trace-check: --max-outstanding must be 1..65536\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--window") == 0 && i + 1 < argc) {
            char *end;
            const char *arg = argv[++i];
            unsigned long w = strtoul(arg, &end, 10);
            if (*end || !*arg || arg[0] == '-' || w > 65536) {
                fprintf(stderr, "apf-trace-check: --window must be 0..65536\n");
                return 2;
            }
            window = (long)w;
        } else if (strcmp(argv[i], "--svg") == 0 && i + 1 < argc) {
            svg = argv[++i];
        } else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
            format_opt = argv[++i];
            if (strcmp(format_opt, "apf") && strcmp(format_opt, "kvm") &&
                strcmp(format_opt, "auto")) {
                fprintf(stderr, "apf-trace-check: --format must be apf, kvm or auto\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: apf-trace-check [--max-outstanding N] [--window N] [--format F]\n"
                   "                       [--svg OUT] [FILE]\n"
                   "  --max-outstanding N  most faults outstanding per vCPU (1..65536, 4096)\n"
                   "  --window N           \"page ready\" window of every vCPU: 0 unthrottled,\n"
                   "                       1 slot + ACK, N ring of N entries (default: 1, or\n"
                   "                       what the trace's host.transport events say)\n"
                   "  --format F           apf, kvm (Linux KVM tracepoints: tracefs or\n"
                   "                       trace-cmd report text) or auto (default)\n"
                   "  --svg OUT            write the trace as a per-vCPU timeline (SVG)\n");
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
    FILE *in = path && strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (in == NULL) {
        fprintf(stderr, "apf-trace-check: %s: %s\n", path, strerror(errno));
        return 2;
    }
    /* The whole input, to tell its format; libapf's format is then read from memory. */
    char *text = NULL;
    size_t text_len = 0;
    FILE *f = NULL;
    if (tc_slurp(in, &text, &text_len) != 0) {
        fprintf(stderr, "apf-trace-check: cannot read the input\n");
        if (in != stdin)
            fclose(in);
        return 2;
    }
    if (in != stdin)
        fclose(in);
    uint32_t format = strcmp(format_opt, "apf") == 0 ? APF_TRACE_FORMAT_APF
                                                     : tc_detect(text, text_len);
    if (strcmp(format_opt, "kvm") == 0 && format != APF_TRACE_FORMAT_KVM_REPORT)
        format = APF_TRACE_FORMAT_KVM_TRACEFS;
    if (format != APF_TRACE_FORMAT_APF) {
        int krc = tc_kvm_check(text, text_len, format, max_out, window, svg);
        free(text);
        return krc;
    }
    size_t fail_at = SIZE_MAX;
    struct apf_trace_checker *c = NULL;
    f = text_len ? fmemopen(text, text_len, "r") : NULL;
    /* Read everything first: the checker is sized by the number of vCPUs in the trace. */
    int rc = 2;
    void *mem = NULL;
    struct line *lines = NULL;
    size_t n = 0, cap = 0;
    uint32_t max_vcpu = 0;
    unsigned long max_window = max_out > APF_TRACE_DEFAULT_MAX_WINDOW ? max_out
                                                                     : APF_TRACE_DEFAULT_MAX_WINDOW;
    if (window > 0 && (unsigned long)window > max_window)
        max_window = (unsigned long)window;
    char *buf = NULL;
    size_t bufcap = 0;
    ssize_t len;
    unsigned long no = 0;
    while (f && (len = getline(&buf, &bufcap, f)) >= 0) {
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
        /* the window queues hold the largest window in the trace (rings: up to 65536) */
        if (window < 0 && lines[n].ev.kind == APF_TRACE_HOST_TRANSPORT && lines[n].ev.arg > 0 &&
            (unsigned long)lines[n].ev.arg > max_window)
            max_window = lines[n].ev.arg > 65536 ? 65536 : (unsigned long)lines[n].ev.arg;
        n++;
    }
    if (max_vcpu >= 65536) {
        fprintf(stderr, "apf-trace-check: vCPU %u: at most 65536 vCPUs\n", max_vcpu);
        goto out;
    }
    size_t size = apf_trace_checker_size_windowed(max_vcpu + 1, (uint32_t)max_out,
                                                  (uint32_t)max_window);
    mem = size ? aligned_alloc(64, (size + 63) & ~(size_t)63) : NULL;
    c = mem ? apf_trace_checker_init_windowed(mem, size, max_vcpu + 1, (uint32_t)max_out,
                                              (uint32_t)max_window)
            : NULL;
    if (c == NULL) {
        fprintf(stderr, "apf-trace-check: cannot allocate the checker\n");
        goto out;
    }
    if (window >= 0)
        apf_trace_checker_set_window(c, APF_TRACE_ALL_VCPUS, (uint32_t)window);
    rc = 1;
    for (size_t i = 0; i < n; i++) {
        int err = apf_trace_checker_feed(c, &lines[i].ev);
        if (err == APF_ENOSPC) {
            printf("apf-trace-check: line %lu: cannot check: %s (see --max-outstanding)\n",
                   lines[i].no, apf_trace_checker_error(c));
            rc = 2;
            goto out;
        }
        if (err != 0) {
            printf("apf-trace-check: line %lu: %s\n", lines[i].no, apf_trace_checker_error(c));
            fail_at = i;
            goto out;
        }
    }
    if (apf_trace_checker_finish(c) != 0) {
        printf("apf-trace-check: %s\n", apf_trace_checker_error(c));
        fail_at = n;
        goto out;
    }
    uint32_t wmin = UINT32_MAX, wmax = 0;
    for (uint32_t v = 0; v <= max_vcpu; v++) {
        uint32_t w = apf_trace_checker_window(c, v);
        wmin = w < wmin ? w : wmin;
        wmax = w > wmax ? w : wmax;
    }
    if (wmin == wmax)
        printf("apf-trace-check: %zu events, %u vCPUs: consistent (window %u%s)\n", n,
               max_vcpu + 1, wmin, wmin == 0 ? ", unthrottled" : "");
    else
        printf("apf-trace-check: %zu events, %u vCPUs: consistent (windows %u..%u)\n", n,
               max_vcpu + 1, wmin, wmax);
    rc = 0;
out:
    if (svg && rc != 2 && tc_svg_write(svg, lines, n, fail_at == SIZE_MAX ? n : fail_at,
                                       c ? apf_trace_checker_error(c) : "",
                                       "libapf protocol trace") != 0)
        rc = 2;
    if (f)
        fclose(f);
    free(text);
    free(buf);
    free(lines);
    free(mem);
    return rc;
}
