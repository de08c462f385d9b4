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
 * Comment and blank lines are skipped (the whitespace rule of apf/trace.h). The checker is
 * sized by what the trace needs: one state per vCPU id that occurs (ids may be sparse), and
 * per vCPU as many outstanding tokens and queued "page ready"s as its busiest vCPU could
 * have (never more than --max-outstanding); a trace that would need more than
 * APF_TRACE_CHECK_MAX_MIB of checker memory is refused with a clear message.
 * Exit status: 0 the trace is consistent, 1 a violation (printed with its line), 2 bad
 * usage, an unreadable line, or a trace the checker is too small for (more outstanding
 * faults than --max-outstanding allows, or more memory than the cap).
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

/* The most checker memory a trace may make this tool allocate. */
#define APF_TRACE_CHECK_MAX_MIB 1024u

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The dense index of vCPU id `id` in the sorted distinct ids. */
static uint32_t dense_of(const uint32_t *ids, uint32_t n, uint32_t id)
{
    const uint32_t *p = bsearch(&id, ids, n, sizeof(*ids), cmp_u32);
    return (uint32_t)(p - ids);
}

/* The checker numbers vCPUs densely; its messages say "vcpu <dense>": print the trace's id. */
static void print_error(const char *prefix, const char *msg, const uint32_t *ids,
                        const char *suffix)
{
    const char *at = strstr(msg, " vcpu ");
    char *end;
    unsigned long d = at ? strtoul(at + 6, &end, 10) : 0;
    if (at == NULL || end == at + 6) {
        printf("%s%s%s\n", prefix, msg, suffix);
        return;
    }
    printf("%s%.*s vcpu %u%s%s\n", prefix, (int)(at - msg), msg, ids[d], end, suffix);
}

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
    int remapped = 0; /* lines carry dense vCPU numbers (the checker's) */
    struct apf_trace_checker *c = NULL;
    f = text_len ? fmemopen(text, text_len, "r") : NULL;
    /* Read everything first: the checker is sized by the number of vCPUs in the trace. */
    int rc = 2;
    void *mem = NULL;
    struct line *lines = NULL;
    size_t n = 0, cap = 0;
    unsigned long max_window = max_out > APF_TRACE_DEFAULT_MAX_WINDOW ? max_out
                                                                     : APF_TRACE_DEFAULT_MAX_WINDOW;
    if (window > 0 && (unsigned long)window > max_window)
        max_window = (unsigned long)window;
    char *buf = NULL;
    size_t bufcap = 0;
    ssize_t len;
    unsigned long no = 0;
    uint32_t *ids = NULL, *np_count = NULL, *ready_count = NULL;
    while (f && (len = getline(&buf, &bufcap, f)) >= 0) {
        no++;
        if (apf_trace_line_ignored(buf, (size_t)len))
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
        /* the window queues hold the largest window in the trace (rings: up to 65536) */
        if (window < 0 && lines[n].ev.kind == APF_TRACE_HOST_TRANSPORT && lines[n].ev.arg > 0 &&
            (unsigned long)lines[n].ev.arg > max_window)
            max_window = lines[n].ev.arg > 65536 ? 65536 : (unsigned long)lines[n].ev.arg;
        n++;
    }
    /* The distinct vCPU ids, sorted (a trace of vCPUs 0..N-1 keeps its numbering). */
    uint32_t n_ids = 0;
    ids = malloc((n ? n : 1) * sizeof(*ids));
    if (ids == NULL) {
        fprintf(stderr, "apf-trace-check: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        ids[i] = lines[i].ev.vcpu;
    qsort(ids, n, sizeof(*ids), cmp_u32);
    for (size_t i = 0; i < n; i++)
        if (n_ids == 0 || ids[n_ids - 1] != ids[i])
            ids[n_ids++] = ids[i];
    if (n_ids == 0)
        ids[n_ids++] = 0; /* an empty trace: one idle vCPU */
    if (n_ids > 65536) {
        fprintf(stderr, "apf-trace-check: %u vCPUs: at most 65536\n", n_ids);
        goto out;
    }
    /* What the busiest vCPU can need: every "not present" outstanding at once, every
     * "page ready" unconsumed at once; never more than the options allow. */
    np_count = calloc(n_ids, sizeof(*np_count));
    ready_count = calloc(n_ids, sizeof(*ready_count));
    if (np_count == NULL || ready_count == NULL) {
        fprintf(stderr, "apf-trace-check: out of memory\n");
        goto out;
    }
    uint32_t need_out = 1, need_window = 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t d = dense_of(ids, n_ids, lines[i].ev.vcpu);
        lines[i].ev.vcpu = d; /* mapped back before the SVG is drawn */
        if (lines[i].ev.kind == APF_TRACE_HOST_NOT_PRESENT && np_count[d] < UINT32_MAX &&
            ++np_count[d] > need_out)
            need_out = np_count[d];
        if (lines[i].ev.kind == APF_TRACE_HOST_READY && ready_count[d] < UINT32_MAX &&
            ++ready_count[d] > need_window)
            need_window = ready_count[d];
    }
    if (need_out > max_out)
        need_out = (uint32_t)max_out;
    if (need_window > max_window)
        need_window = (uint32_t)max_window;
    size_t size = apf_trace_checker_size_windowed(n_ids, need_out, need_window);
    if (size == 0 || size / (1024 * 1024) >= APF_TRACE_CHECK_MAX_MIB) {
        fprintf(stderr,
                "apf-trace-check: this trace needs a checker of %zu MiB (%u vCPUs, %u "
                "outstanding and %u page readies per vCPU), more than the %u MiB this tool "
                "allocates: lower --max-outstanding or split the trace\n",
                size ? size / (1024 * 1024) : (size_t)-1, n_ids, need_out, need_window,
                APF_TRACE_CHECK_MAX_MIB);
        goto out;
    }
    remapped = 1;
    mem = aligned_alloc(64, (size + 63) & ~(size_t)63);
    c = mem ? apf_trace_checker_init_windowed(mem, size, n_ids, need_out, need_window) : NULL;
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
            char prefix[64];
            snprintf(prefix, sizeof(prefix), "apf-trace-check: line %lu: cannot check: ",
                     lines[i].no);
            print_error(prefix, apf_trace_checker_error(c), ids, " (see --max-outstanding)");
            rc = 2;
            goto out;
        }
        if (err != 0) {
            char prefix[64];
            snprintf(prefix, sizeof(prefix), "apf-trace-check: line %lu: ", lines[i].no);
            print_error(prefix, apf_trace_checker_error(c), ids, "");
            fail_at = i;
            goto out;
        }
    }
    if (apf_trace_checker_finish(c) != 0) {
        print_error("apf-trace-check: ", apf_trace_checker_error(c), ids, "");
        fail_at = n;
        goto out;
    }
    uint32_t wmin = UINT32_MAX, wmax = 0;
    for (uint32_t v = 0; v < n_ids; v++) {
        uint32_t w = apf_trace_checker_window(c, v);
        wmin = w < wmin ? w : wmin;
        wmax = w > wmax ? w : wmax;
    }
    if (wmin == wmax)
        printf("apf-trace-check: %zu events, %u vCPUs: consistent (window %u%s)\n", n,
               n_ids, wmin, wmin == 0 ? ", unthrottled" : "");
    else
        printf("apf-trace-check: %zu events, %u vCPUs: consistent (windows %u..%u)\n", n,
               n_ids, wmin, wmax);
    rc = 0;
out:
    if (remapped) /* the timeline shows the trace's own vCPU ids */
        for (size_t i = 0; i < n; i++)
            lines[i].ev.vcpu = ids[lines[i].ev.vcpu];
    if (svg && rc != 2 && tc_svg_write(svg, lines, n, fail_at == SIZE_MAX ? n : fail_at,
                                       c ? apf_trace_checker_error(c) : "",
                                       "libapf protocol trace") != 0)
        rc = 2;
    if (f)
        fclose(f);
    free(text);
    free(buf);
    free(lines);
    free(ids);
    free(np_count);
    free(ready_count);
    free(mem);
    return rc;
}
