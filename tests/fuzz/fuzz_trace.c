/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the trace text format and the checker (apf/trace.h), as apf-trace-check uses
 * them on a file from anywhere. Input: two bytes of sizing (vCPUs 1..4, outstanding 1..8,
 * window queue 1..16, an optional pinned window), then text, one event per line.
 * Invariants: a line is a comment or parses or is refused, never both comment and event;
 * an event formats and parses back to itself; the checker answers 0, APF_EPROTO or
 * APF_ENOSPC (APF_EINVAL only for a vCPU it was not sized for, changing nothing), stays
 * failed once failed with the same code, and its message is a bounded string; no map or
 * queue overrun (ASan) and no endless loop (libFuzzer's timeout) at any size, full maps
 * included.
 */
#include "apf/error.h"
#include "apf/trace.h"
#include "fuzz.h"

static _Alignas(64) unsigned char mem[1 << 20];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = {data, size};
    uint8_t a = fz_u8(&f), b = fz_u8(&f);
    uint32_t n_vcpus = 1 + a % 4, max_out = 1 + (a >> 2) % 8, qcap = 1 + b % 16;
    size_t need = apf_trace_checker_size_windowed(n_vcpus, max_out, qcap);
    FZ_ASSERT(need > 0 && need <= sizeof(mem));
    struct apf_trace_checker *c =
        apf_trace_checker_init_windowed(mem, need, n_vcpus, max_out, qcap);
    FZ_ASSERT(c != NULL);
    FZ_ASSERT(apf_trace_checker_init_windowed(mem, need - 1, n_vcpus, max_out, qcap) == NULL);
    c = apf_trace_checker_init_windowed(mem, need, n_vcpus, max_out, qcap);
    if (b & 0x80)
        FZ_ASSERT(apf_trace_checker_set_window(c, APF_TRACE_ALL_VCPUS, (b >> 4) & 7) == 0);
    int failed = 0;
    const char *text = (const char *)f.p;
    size_t len = f.n;
    for (size_t at = 0; at < len;) {
        size_t end = at;
        while (end < len && text[end] != '\n')
            end++;
        size_t line_len = end < len ? end - at + 1 : end - at; /* with its '\n' */
        const char *line = text + at;
        at += line_len;
        struct apf_trace_event ev = {.kind = 0xdead};
        int ignored = apf_trace_line_ignored(line, line_len);
        int r = apf_trace_parse(line, line_len, &ev);
        FZ_ASSERT(r == 0 || r == APF_EINVAL);
        FZ_ASSERT(!(ignored && r == 0), "a comment line parsed as an event");
        if (r != 0) {
            FZ_ASSERT(ev.kind == 0xdead, "a refused line changed the event");
            continue;
        }
        char buf[128];
        int n = apf_trace_format(&ev, buf, sizeof(buf));
        FZ_ASSERT(n > 0 && (size_t)n < sizeof(buf));
        struct apf_trace_event back;
        FZ_ASSERT(apf_trace_parse(buf, (size_t)n, &back) == 0, "format does not parse: %s", buf);
        FZ_ASSERT(back.time_ns == ev.time_ns && back.kind == ev.kind && back.vcpu == ev.vcpu &&
                      back.token == ev.token && back.gpa == ev.gpa && back.arg == ev.arg,
                  "round trip differs: %s", buf);
        uint64_t events = apf_trace_checker_events(c);
        int got = apf_trace_checker_feed(c, &ev);
        if (failed) {
            FZ_ASSERT(got == failed, "a failed checker answered %d, was %d", got, failed);
            continue;
        }
        if (ev.vcpu >= n_vcpus) {
            FZ_ASSERT(got == APF_EINVAL && apf_trace_checker_events(c) == events);
            continue;
        }
        FZ_ASSERT(got == 0 || got == APF_EPROTO || got == APF_ENOSPC, "feed answered %d", got);
        if (got) {
            failed = got;
            const char *msg = apf_trace_checker_error(c);
            FZ_ASSERT(memchr(msg, '\0', 192) != NULL && msg[0] != '\0');
        }
    }
    int fin = apf_trace_checker_finish(c);
    FZ_ASSERT(failed ? fin == failed : (fin == 0 || fin == APF_EPROTO), "finish %d", fin);
    for (uint32_t v = 0; v < n_vcpus + 1; v++)
        (void)apf_trace_checker_window(c, v);
    return 0;
}
