/* SPDX-License-Identifier: MIT */
/*
 * apf-trace-check: Linux KVM traces (tracefs `trace` text or `trace-cmd report`) checked
 * through the library's KVM translator (apf/trace_kvm.h) and the protocol checker.
 * Mapping and known differences: docs/kvm-traces.md.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apf/error.h"
#include "apf/trace.h"
#include "apf/trace_kvm.h"
#include "trace_check.h"

int tc_slurp(FILE *in, char **text, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *b = malloc(cap);
    while (b) {
        size_t got = fread(b + n, 1, cap - n - 1, in);
        n += got;
        if (n + 1 < cap) {
            if (ferror(in))
                break;
            b[n] = '\0';
            *text = b;
            *len = n;
            return 0;
        }
        char *g = cap < SIZE_MAX / 2 ? realloc(b, cap * 2) : NULL;
        if (!g)
            break;
        b = g;
        cap *= 2;
    }
    free(b);
    return -1;
}

uint32_t tc_detect(const char *buf, size_t len)
{
    size_t at = 0;
    for (int lines = 0; at < len && lines < 10000; lines++) {
        const char *nl = memchr(buf + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - buf) : len;
        uint32_t f = apf_trace_detect_format(buf + at, end - at);
        if (f != APF_TRACE_FORMAT_UNKNOWN)
            return f;
        at = end + 1;
    }
    return APF_TRACE_FORMAT_APF;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static bool vcpu_side(uint32_t tp)
{
    return tp != APF_TRACE_KVM_COMPLETED && tp != APF_TRACE_KVM_USERSPACE_EXIT &&
           tp != APF_TRACE_KVM_OTHER;
}

struct kin {
    char **line;
    size_t n;
};

/* Splits @p buf into NUL-terminated lines in place. */
static bool split(char *buf, size_t len, struct kin *in)
{
    size_t cap = 0;
    in->line = NULL;
    in->n = 0;
    size_t at = 0;
    while (at < len) {
        char *nl = memchr(buf + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - buf) : len;
        if (in->n == cap) {
            cap = cap ? cap * 2 : 4096;
            char **g = realloc(in->line, cap * sizeof(*g));
            if (!g)
                return false;
            in->line = g;
        }
        buf[end] = '\0'; /* buf has one byte of room after len */
        in->line[in->n++] = buf + at;
        at = end + 1;
    }
    return true;
}

static const char *format_name(uint32_t f)
{
    return f == APF_TRACE_FORMAT_KVM_REPORT ? "trace-cmd report" : "tracefs";
}

int tc_kvm_check(char *buf, size_t len, uint32_t format, unsigned long max_out, long window,
                 const char *svg)
{
    int rc = 2;
    struct kin in = {0};
    uint32_t *pids = NULL;
    void *kmem = NULL, *cmem = NULL;
    struct line *evs = NULL;
    size_t n_evs = 0, cap_evs = 0, fail_at = SIZE_MAX;
    char fail_msg[256] = "";
    struct bind {
        uint32_t pid, id;
    } *binds = NULL;
    size_t n_binds = 0, last_bind = 0;
    if (!split(buf, len, &in)) {
        fprintf(stderr, "apf-trace-check: out of memory\n");
        goto out;
    }
    /* First pass: syntax, vCPU threads, kvm_entry bindings, whether ACKs are visible. */
    size_t n_pids = 0;
    pids = malloc((in.n + 1) * sizeof(*pids));
    uint32_t max_id = 0;
    bool ack_visible = false, any_entry = false;
    unsigned long skipped = 0, records = 0;
    if (!pids) {
        fprintf(stderr, "apf-trace-check: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < in.n; i++) {
        struct apf_trace_kvm_record r;
        int prc = apf_trace_kvm_parse(in.line[i], strlen(in.line[i]), &r);
        if (prc == APF_TRACE_KVM_HEADER)
            continue;
        if (prc == APF_ENOENT) {
            skipped++;
            continue;
        }
        if (prc != 0 && strstr(in.line[i], "[LOST ") && strstr(in.line[i], " EVENTS]")) {
            fprintf(stderr, "apf-trace-check: line %zu: events lost (the trace buffer "
                    "overflowed; record with a larger buffer_size_kb): cannot check: %s\n",
                    i + 1, in.line[i]);
            goto out;
        }
        if (prc != 0) {
            fprintf(stderr, "apf-trace-check: line %zu: not a %s tracepoint line: %s\n", i + 1,
                    format_name(format), in.line[i]);
            goto out;
        }
        records++;
        if (vcpu_side(r.tp))
            pids[n_pids++] = r.pid;
        if (r.tp == APF_TRACE_KVM_ENTRY) {
            any_entry = true;
            if (r.vcpu_id >= 65536) {
                fprintf(stderr, "apf-trace-check: line %zu: vCPU %u: at most 65536 vCPUs\n",
                        i + 1, r.vcpu_id);
                goto out;
            }
            max_id = r.vcpu_id > max_id ? r.vcpu_id : max_id;
            bool bound = n_binds && binds[last_bind].pid == r.pid;
            for (size_t j = 0; j < n_binds && !bound; j++)
                if (binds[j].pid == r.pid) {
                    bound = true;
                    last_bind = j;
                }
            if (!bound) {
                struct bind *g = realloc(binds, (n_binds + 1) * sizeof(*g));
                if (!g) {
                    fprintf(stderr, "apf-trace-check: out of memory\n");
                    goto out;
                }
                binds = g;
                last_bind = n_binds;
                binds[n_binds].pid = r.pid;
                binds[n_binds++].id = r.vcpu_id;
            }
        }
        if (r.tp == APF_TRACE_KVM_MSR && r.write && !r.gp && r.msr == 0x4b564d07u)
            ack_visible = true;
    }
    qsort(pids, n_pids, sizeof(*pids), cmp_u32);
    size_t uniq = 0;
    for (size_t i = 0; i < n_pids; i++)
        if (uniq == 0 || pids[uniq - 1] != pids[i])
            pids[uniq++] = pids[i];
    uint64_t nv = (uint64_t)uniq + (any_entry ? (uint64_t)max_id + 1 : 0);
    if (nv == 0)
        nv = 1;
    if (nv > 65536) {
        fprintf(stderr, "apf-trace-check: more than 65536 vCPU threads\n");
        goto out;
    }
    uint32_t max_vcpus = (uint32_t)nv;
    uint32_t kout = max_out > 1024 ? 1024 : (uint32_t)max_out; /* KVM queues 64 per vCPU */
    size_t ksize = apf_trace_kvm_size(max_vcpus, kout);
    kmem = ksize ? aligned_alloc(64, (ksize + 63) & ~(size_t)63) : NULL;
    struct apf_trace_kvm *k =
        kmem ? apf_trace_kvm_init(kmem, ksize, max_vcpus, kout,
                                  ack_visible ? APF_TRACE_KVM_ACK_VISIBLE : 0)
             : NULL;
    uint32_t qwin = max_out > APF_TRACE_DEFAULT_MAX_WINDOW ? (uint32_t)max_out
                                                           : APF_TRACE_DEFAULT_MAX_WINDOW;
    if (window > 0 && (unsigned long)window > qwin)
        qwin = (uint32_t)window;
    size_t csize = apf_trace_checker_size_windowed(max_vcpus, (uint32_t)max_out, qwin);
    cmem = csize ? aligned_alloc(64, (csize + 63) & ~(size_t)63) : NULL;
    struct apf_trace_checker *c =
        cmem ? apf_trace_checker_init_windowed(cmem, csize, max_vcpus, (uint32_t)max_out, qwin)
             : NULL;
    if (!k || !c) {
        fprintf(stderr, "apf-trace-check: cannot allocate the translator and checker\n");
        goto out;
    }
    if (window >= 0)
        apf_trace_checker_set_window(c, APF_TRACE_ALL_VCPUS, (uint32_t)window);
    /* bind threads to the vCPU ids their kvm_entry lines name (first one per thread) */
    for (size_t i = 0; i < n_binds; i++) {
        if (apf_trace_kvm_bind(k, binds[i].pid, binds[i].id) != 0) {
            fprintf(stderr, "apf-trace-check: cannot bind vCPU %u\n", binds[i].id);
            goto out;
        }
    }
    /* Second pass: translate and check, line by line: the first violation of either. */
    rc = 1;
    struct apf_trace_event out[APF_TRACE_KVM_MAX_OUT];
    uint32_t n_out = 0;
    for (size_t i = 0; i <= in.n; i++) {
        int krc;
        unsigned long no = (unsigned long)(i < in.n ? i + 1 : in.n);
        if (i < in.n) {
            struct apf_trace_kvm_record r;
            if (apf_trace_kvm_parse(in.line[i], strlen(in.line[i]), &r) != 0)
                continue;
            krc = apf_trace_kvm_feed(k, &r, out, &n_out);
        } else {
            krc = apf_trace_kvm_finish(k, out, &n_out);
        }
        for (;;) {
            for (uint32_t e = 0; e < n_out; e++) {
                if (n_evs == cap_evs) {
                    cap_evs = cap_evs ? cap_evs * 2 : 4096;
                    struct line *g = realloc(evs, cap_evs * sizeof(*g));
                    if (!g) {
                        fprintf(stderr, "apf-trace-check: out of memory\n");
                        rc = 2;
                        goto out;
                    }
                    evs = g;
                }
                evs[n_evs].ev = out[e];
                evs[n_evs].no = no;
                int err = apf_trace_checker_feed(c, &out[e]);
                n_evs++;
                if (err == APF_ENOSPC) {
                    printf("apf-trace-check: line %lu: cannot check: %s (see "
                           "--max-outstanding)\n", no, apf_trace_checker_error(c));
                    rc = 2;
                    goto out;
                }
                if (err != 0) {
                    fail_at = n_evs - 1;
                    snprintf(fail_msg, sizeof(fail_msg), "%s", apf_trace_checker_error(c));
                    printf("apf-trace-check: line %lu: %s\n", no, fail_msg);
                    goto out;
                }
            }
            if (krc != APF_EAGAIN)
                break;
            krc = apf_trace_kvm_finish(k, out, &n_out);
        }
        if (krc == APF_ENOSPC) {
            printf("apf-trace-check: line %lu: cannot check: %s (see --max-outstanding)\n", no,
                   apf_trace_kvm_error(k));
            rc = 2;
            goto out;
        }
        if (krc != 0) {
            fail_at = n_evs ? n_evs - 1 : SIZE_MAX;
            snprintf(fail_msg, sizeof(fail_msg), "%s", apf_trace_kvm_error(k));
            if (i < in.n)
                printf("apf-trace-check: line %lu: %s\n", no, fail_msg);
            else
                printf("apf-trace-check: %s\n", fail_msg);
            goto out;
        }
    }
    if (apf_trace_checker_finish(c) != 0) {
        snprintf(fail_msg, sizeof(fail_msg), "%s", apf_trace_checker_error(c));
        fail_at = n_evs ? n_evs - 1 : SIZE_MAX;
        printf("apf-trace-check: %s\n", fail_msg);
        goto out;
    }
    struct apf_trace_kvm_stats st;
    apf_trace_kvm_stats(k, &st);
    uint32_t w = apf_trace_checker_window(c, 0);
    if (n_evs == 0) {
        printf("apf-trace-check: Linux KVM trace (%s): %lu tracepoint lines read, %lu of other "
               "tracepoints skipped; no protocol events (KVM's own APF was not used): "
               "consistent\n", format_name(format), records, skipped);
        rc = 0;
        goto out;
    }
    printf("apf-trace-check: Linux KVM trace (%s): %lu tracepoint lines read, %lu of other "
           "tracepoints skipped; %zu protocol events, %zu vCPU threads: consistent (window %u%s)\n",
           format_name(format), records, skipped, n_evs, uniq, w,
           w == 0 ? ", unthrottled" : "");
    printf("apf-trace-check: kvm: not present delivered %llu, artificial halts %llu "
           "(woken %llu), repeated faults %llu, sync fallbacks %llu, readies %llu after "
           "disable\n",
           (unsigned long long)st.np_delivered, (unsigned long long)st.np_halted,
           (unsigned long long)st.halt_wakes, (unsigned long long)st.repeated,
           (unsigned long long)st.sync_fallbacks, (unsigned long long)st.readies_dropped);
    printf("apf-trace-check: kvm: known differences (not violations): %llu page readies for "
           "tokens a wake-all had answered (libapf-host drops them), %llu artificial halts "
           "(not present traced, not delivered), %llu ACKs with no KVM page ready in flight, "
           "%llu enables implied (no kvm_msr enable in the trace), %llu wake-alls implied\n",
           (unsigned long long)st.covered_readies, (unsigned long long)st.np_halted,
           (unsigned long long)st.acks_unmatched, (unsigned long long)st.implied_enables,
           (unsigned long long)st.implied_wake_alls);
    if (!ack_visible && window < 0)
        printf("apf-trace-check: kvm: no ACK in the trace (kvm_msr writes of 0x4b564d07): "
               "\"one page ready in flight\" not checked\n");
    rc = 0;
out:
    if (svg && rc != 2) {
        char title[128];
        snprintf(title, sizeof(title), "Linux KVM trace (%s)", format_name(format));
        if (tc_svg_write(svg, evs, n_evs, fail_at == SIZE_MAX ? n_evs : fail_at, fail_msg,
                         title) != 0)
            rc = 2;
    }
    free(in.line);
    free(pids);
    free(binds);
    free(kmem);
    free(cmem);
    free(evs);
    return rc;
}
