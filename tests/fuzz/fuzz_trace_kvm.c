/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: Linux KVM trace text (apf/trace_kvm.h) as apf-trace-check reads it - format
 * detection, apf_trace_kvm_parse() line by line, the translator (bind, feed, finish) and its
 * events fed to the protocol checker. Input: two bytes of sizing (vCPUs 1..8, outstanding
 * 1..8, ACK visible, checker queue 1..16), up to four thread bindings, then text, one line
 * each. A line starting with byte 0x01 is not text: its bytes choose a record, which the
 * harness prints as tracefs or trace-cmd report would and checks that it parses back.
 * Invariants: parse answers 0, APF_TRACE_KVM_HEADER, APF_ENOENT or APF_EINVAL, leaves the
 * record untouched unless it answers 0 or APF_ENOENT, is the same with or without the
 * line's newline, names a known tracepoint and format; the detected format agrees; a printed
 * record parses back to itself (a timestamp past 2^64 ns is refused); feed and finish answer
 * only their documented codes, at most APF_TRACE_KVM_MAX_OUT events per call, stay failed
 * with the same code; every event is a known host kind on a vCPU the translator was sized
 * for and formats/parses back to itself; counters match what came out; messages are bounded
 * strings; kvm_userspace_exit produces nothing; no overrun (ASan), no endless
 * loop (libFuzzer's timeout).
 */
#include <stdbool.h>

#include "apf/error.h"
#include "apf/trace.h"
#include "apf/trace_kvm.h"
#include "fuzz.h"

struct run {
    struct apf_trace_kvm *k;
    struct apf_trace_checker *c;
    uint32_t n_vcpus;
    int kfailed, cfailed;
    uint64_t events;
};

static bool same_record(const struct apf_trace_kvm_record *a, const struct apf_trace_kvm_record *b)
{
    return a->time_ns == b->time_ns && a->token == b->token && a->gva == b->gva &&
           a->gfn == b->gfn && a->address == b->address && a->pid == b->pid && a->cpu == b->cpu &&
           a->tp == b->tp && a->vcpu_id == b->vcpu_id && a->msr == b->msr &&
           a->error_code == b->error_code && a->reason == b->reason && a->vector == b->vector &&
           a->has_error == b->has_error && a->reinjected == b->reinjected && a->write == b->write &&
           a->gp == b->gp && a->format == b->format;
}

static void bounded_msg(const char *msg, bool failed)
{
    FZ_ASSERT(memchr(msg, '\0', 192) != NULL, "unterminated message");
    FZ_ASSERT(failed == (msg[0] != '\0'), "message \"%s\" (failed %d)", msg, failed);
    if (failed)
        FZ_ASSERT(strncmp(msg, "kvm: ", 5) == 0, "message \"%s\"", msg);
}

/* Events of one feed/finish call: well formed, round trip, then the checker. */
static void take_events(struct run *r, const struct apf_trace_event *out, uint32_t n)
{
    FZ_ASSERT(n <= APF_TRACE_KVM_MAX_OUT, "%u events in one call", n);
    for (uint32_t i = 0; i < n; i++) {
        const struct apf_trace_event *ev = &out[i];
        FZ_ASSERT(ev->kind >= APF_TRACE_HOST_NOT_PRESENT && ev->kind <= APF_TRACE_HOST_TRANSPORT,
                  "event kind %u", ev->kind);
        FZ_ASSERT(ev->vcpu < r->n_vcpus, "event on vCPU %u of %u", ev->vcpu, r->n_vcpus);
        char buf[128];
        int len = apf_trace_format(ev, buf, sizeof(buf));
        FZ_ASSERT(len > 0 && (size_t)len < sizeof(buf));
        struct apf_trace_event back;
        FZ_ASSERT(apf_trace_parse(buf, (size_t)len, &back) == 0, "does not parse: %s", buf);
        FZ_ASSERT(back.time_ns == ev->time_ns && back.kind == ev->kind && back.vcpu == ev->vcpu &&
                      back.token == ev->token && back.gpa == ev->gpa && back.arg == ev->arg,
                  "round trip differs: %s", buf);
        r->events++;
        int got = apf_trace_checker_feed(r->c, ev);
        if (r->cfailed) {
            FZ_ASSERT(got == r->cfailed, "a failed checker answered %d", got);
            continue;
        }
        FZ_ASSERT(got == 0 || got == APF_EPROTO || got == APF_ENOSPC, "checker %d", got);
        if (got) {
            r->cfailed = got;
            const char *msg = apf_trace_checker_error(r->c);
            FZ_ASSERT(memchr(msg, '\0', 192) != NULL && msg[0] != '\0');
        }
    }
}

static void feed(struct run *r, const struct apf_trace_kvm_record *rec)
{
    struct apf_trace_event out[APF_TRACE_KVM_MAX_OUT];
    uint32_t n = 99;
    struct apf_trace_kvm_stats before, after;
    apf_trace_kvm_stats(r->k, &before);
    int rc = apf_trace_kvm_feed(r->k, rec, out, &n);
    apf_trace_kvm_stats(r->k, &after);
    if (r->kfailed) {
        FZ_ASSERT(rc == r->kfailed && n == 0, "a failed translator answered %d", rc);
        FZ_ASSERT(memcmp(&before, &after, sizeof(before)) == 0, "a failed translator counted");
        return;
    }
    FZ_ASSERT(rc == 0 || rc == APF_EPROTO || rc == APF_ENOSPC, "feed %d", rc);
    FZ_ASSERT(after.lines[rec->tp] == before.lines[rec->tp] + 1, "line not counted");
    FZ_ASSERT(after.events == before.events + n, "%u events, counted %llu", n,
              (unsigned long long)(after.events - before.events));
    if (rec->tp == APF_TRACE_KVM_USERSPACE_EXIT)
        FZ_ASSERT(rc == 0 && n == 0, "a record without protocol meaning made %u events", n);
    take_events(r, out, n);
    if (rc)
        r->kfailed = rc;
    bounded_msg(apf_trace_kvm_error(r->k), r->kfailed != 0);
}

static const char *const tp_name[] = {"kvm_fpu",
                                      "kvm_try_async_get_page",
                                      "kvm_async_pf_not_present",
                                      "kvm_async_pf_ready",
                                      "kvm_async_pf_completed",
                                      "kvm_async_pf_repeated_fault",
                                      "kvm_inj_exception",
                                      "kvm_entry",
                                      "kvm_userspace_exit",
                                      "kvm_msr"};

/* Exception names of vectors 0..31 as KVM prints them ("#PF"); NULL: printed as a number. */
static const char *const exc[32] = {
    [0] = "DE",  [1] = "DB",  [3] = "BP",  [4] = "OF",  [5] = "BR",  [6] = "UD",
    [7] = "NM",  [8] = "DF",  [10] = "TS", [11] = "NP", [12] = "SS", [13] = "GP",
    [14] = "PF", [16] = "MF", [17] = "AC", [18] = "MC", [19] = "XM", [20] = "VE",
    [21] = "CP", [28] = "HV", [29] = "VC", [30] = "SX",
};

/* Prints a record chosen by the input as tracefs / trace-cmd report would; returns its
 * length and what it must parse to (want_rc APF_EINVAL: a timestamp past 2^64 ns). */
static size_t synth(struct fz *f, char *buf, size_t cap, struct apf_trace_kvm_record *w,
                    int *want_rc)
{
    memset(w, 0, sizeof(*w));
    *want_rc = 0;
    uint8_t k = fz_u8(f);
    w->tp = 1 + k % 9;
    w->format = (k & 0x80) ? APF_TRACE_FORMAT_KVM_TRACEFS : APF_TRACE_FORMAT_KVM_REPORT;
    w->pid = fz_u32(f);
    w->cpu = fz_u16(f);
    uint64_t sec = fz_u64(f) % 18446744074ull, frac = fz_u32(f) % 1000000000u;
    if (fz_u8(f) & 1) /* near the end of uint64_t nanoseconds */
        sec = 18446744073ull;
    if (sec == 18446744073ull && frac > 709551615u)
        *want_rc = APF_EINVAL;
    w->time_ns = sec * 1000000000ull + frac;
    static const char *const tasks[] = {"qemu-system-x86", "CPU 0/KVM", "a-b c", "x"};
    size_t n =
        (size_t)snprintf(buf, cap, "%s%s-%u [%03u] %s%llu.%09llu: %s: ",
                         w->format == APF_TRACE_FORMAT_KVM_TRACEFS ? "   " : "", tasks[k >> 5 & 3],
                         w->pid, w->cpu, w->format == APF_TRACE_FORMAT_KVM_TRACEFS ? "d..1. " : " ",
                         (unsigned long long)sec, (unsigned long long)frac, tp_name[w->tp]);
    char *p = buf + n;
    size_t room = cap - n;
    uint64_t a = fz_u64(f) >> (fz_u8(f) % 64), b = fz_u64(f) >> (fz_u8(f) % 64);
    switch (w->tp) {
    case APF_TRACE_KVM_TRY_ASYNC:
    case APF_TRACE_KVM_REPEATED_FAULT:
        w->gva = a, w->gfn = b;
        n += (size_t)snprintf(p, room, "gva = %#llx, gfn = %#llx", (unsigned long long)a,
                              (unsigned long long)b);
        break;
    case APF_TRACE_KVM_NOT_PRESENT:
    case APF_TRACE_KVM_READY:
        w->token = a, w->gva = b;
        n += (size_t)snprintf(p, room, "token %#llx gva %#llx", (unsigned long long)a,
                              (unsigned long long)b);
        break;
    case APF_TRACE_KVM_COMPLETED:
        w->gva = a, w->address = b;
        n += (size_t)snprintf(p, room, "gva %#llx address %#llx", (unsigned long long)a,
                              (unsigned long long)b);
        break;
    case APF_TRACE_KVM_INJ_EXCEPTION: {
        uint32_t vec = (uint32_t)(a & 0x3f);
        uint32_t sel = (uint32_t)(b & 7);
        int m;
        w->vector = (uint8_t)vec;
        if (vec < 32 && exc[vec])
            m = snprintf(p, room, "#%s", exc[vec]);
        else
            m = snprintf(p, room, "%#x", vec);
        n += (size_t)m;
        if (sel & 1) {
            w->has_error = 1;
            w->error_code = (uint32_t)(b >> 8);
            n += (size_t)snprintf(buf + n, cap - n, " (%#x)", w->error_code);
        }
        if (sel & 2) {
            w->reinjected = 1;
            n += (size_t)snprintf(buf + n, cap - n, " [reinjected]");
        }
        break;
    }
    case APF_TRACE_KVM_ENTRY:
        w->vcpu_id = (uint32_t)a;
        n += (size_t)snprintf(p, room, "vcpu %u, rip 0x%llx", w->vcpu_id, (unsigned long long)b);
        break;
    case APF_TRACE_KVM_USERSPACE_EXIT:
        if (b & 1) {
            w->reason = -4;
            n += (size_t)snprintf(p, room, "reason restart (4)");
        } else {
            w->reason = (int32_t)(a & 0x7fffffff);
            n += (size_t)snprintf(p, room, "reason KVM_EXIT_IO (%d)", w->reason);
        }
        break;
    default: /* kvm_msr */
        w->write = b & 1;
        w->gp = (b >> 1) & 1;
        w->msr = (uint32_t)(b >> 8);
        w->address = a;
        n += (size_t)snprintf(p, room, "%s %x = %#llx%s", w->write ? "msr_write" : "msr_read",
                              w->msr, (unsigned long long)a, w->gp ? " (#GP)" : "");
        break;
    }
    if (k & 0x10)
        n += (size_t)snprintf(buf + n, cap - n, "\n");
    FZ_ASSERT(n < cap);
    return n;
}

/* trace_kvm.h: "fields not carried by the tracepoint are 0", raw ([FAILED TO PARSE]) lines
 * included. */
static void carried_only(const struct apf_trace_kvm_record *r)
{
    const uint32_t tp = r->tp;
    const int np_ready = tp == APF_TRACE_KVM_NOT_PRESENT || tp == APF_TRACE_KVM_READY;
    const int try_rep = tp == APF_TRACE_KVM_TRY_ASYNC || tp == APF_TRACE_KVM_REPEATED_FAULT;
    const int inj = tp == APF_TRACE_KVM_INJ_EXCEPTION, msr = tp == APF_TRACE_KVM_MSR;
    FZ_ASSERT(np_ready || r->token == 0, "tracepoint %u carries a token", tp);
    FZ_ASSERT(np_ready || try_rep || tp == APF_TRACE_KVM_COMPLETED || r->gva == 0,
              "tracepoint %u carries a gva", tp);
    FZ_ASSERT(try_rep || r->gfn == 0, "tracepoint %u carries a gfn", tp);
    FZ_ASSERT(tp == APF_TRACE_KVM_COMPLETED || msr || r->address == 0,
              "tracepoint %u carries an address", tp);
    FZ_ASSERT(tp == APF_TRACE_KVM_ENTRY || r->vcpu_id == 0, "tracepoint %u carries a vcpu", tp);
    FZ_ASSERT(msr || (r->msr == 0 && r->write == 0 && r->gp == 0), "tracepoint %u: msr fields",
              tp);
    FZ_ASSERT(inj || (r->vector == 0 && r->has_error == 0 && r->error_code == 0 &&
                      r->reinjected == 0),
              "tracepoint %u: exception fields", tp);
    FZ_ASSERT(tp == APF_TRACE_KVM_USERSPACE_EXIT || r->reason == 0, "tracepoint %u: reason", tp);
}

/* One line: parse (checked), then feed what parsed. */
static void line(struct run *r, const char *text, size_t len,
                 const struct apf_trace_kvm_record *want, int want_rc)
{
    uint32_t fmt = apf_trace_detect_format(text, len);
    FZ_ASSERT(fmt <= APF_TRACE_FORMAT_KVM_REPORT, "format %u", fmt);
    struct apf_trace_kvm_record rec, untouched;
    memset(&untouched, 0xa5, sizeof(untouched));
    rec = untouched;
    int rc = apf_trace_kvm_parse(text, len, &rec);
    FZ_ASSERT(rc == 0 || rc == APF_TRACE_KVM_HEADER || rc == APF_ENOENT || rc == APF_EINVAL,
              "parse %d", rc);
    if (rc == APF_TRACE_KVM_HEADER || rc == APF_EINVAL)
        FZ_ASSERT(memcmp(&rec, &untouched, sizeof(rec)) == 0, "a refused line set the record");
    if (rc == 0 || rc == APF_ENOENT) {
        FZ_ASSERT((rc == 0) == (rec.tp != APF_TRACE_KVM_OTHER) && rec.tp <= APF_TRACE_KVM_MSR,
                  "parse %d with tracepoint %u", rc, rec.tp);
        FZ_ASSERT(rec.format == APF_TRACE_FORMAT_KVM_TRACEFS ||
                      rec.format == APF_TRACE_FORMAT_KVM_REPORT,
                  "record format %u", rec.format);
        FZ_ASSERT(fmt == rec.format || fmt == APF_TRACE_FORMAT_APF, "detected %u, parsed %u", fmt,
                  rec.format);
        if (rc == 0 && rec.tp == APF_TRACE_KVM_INJ_EXCEPTION && !rec.has_error)
            FZ_ASSERT(rec.error_code == 0);
        if (rc == 0)
            carried_only(&rec);
    }
    /* the line's newline changes nothing */
    size_t bare = len;
    while (bare > 0 && (text[bare - 1] == '\n' || text[bare - 1] == '\r'))
        bare--;
    if (bare != len) {
        struct apf_trace_kvm_record rec2 = untouched;
        FZ_ASSERT(apf_trace_kvm_parse(text, bare, &rec2) == rc &&
                      memcmp(&rec2, &rec, sizeof(rec)) == 0,
                  "parse depends on the newline");
    }
    if (want) {
        FZ_ASSERT(rc == want_rc, "printed record parses as %d, want %d: %.*s", rc, want_rc,
                  (int)len, text);
        if (rc == 0)
            FZ_ASSERT(same_record(&rec, want), "printed record parses differently: %.*s", (int)len,
                      text);
    }
    if (rc == 0)
        feed(r, &rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = {data, size};
    uint8_t a = fz_u8(&f), b = fz_u8(&f);
    struct run r = {0};
    r.n_vcpus = 1 + a % 8;
    uint32_t max_out = 1 + (a >> 3) % 8, qcap = 1 + b % 16;
    uint32_t flags = (a & 0x40) ? APF_TRACE_KVM_ACK_VISIBLE : 0;
    /* exactly the sizes asked for (malloc: 8-byte aligned), so ASan sees an overrun */
    size_t need = apf_trace_kvm_size(r.n_vcpus, max_out);
    FZ_ASSERT(need > 0 && need <= (1u << 16));
    unsigned char *kmem = malloc(need);
    FZ_ASSERT(kmem != NULL);
    FZ_ASSERT(apf_trace_kvm_init(kmem, need - 1, r.n_vcpus, max_out, flags) == NULL);
    FZ_ASSERT(apf_trace_kvm_init(kmem + 4, need - 4, r.n_vcpus, max_out, flags) == NULL);
    r.k = apf_trace_kvm_init(kmem, need, r.n_vcpus, max_out, flags);
    FZ_ASSERT(r.k != NULL);
    bounded_msg(apf_trace_kvm_error(r.k), false);
    size_t cneed = apf_trace_checker_size_windowed(r.n_vcpus, max_out, qcap);
    FZ_ASSERT(cneed > 0 && cneed <= (1u << 18));
    void *cmem = malloc(cneed);
    FZ_ASSERT(cmem != NULL);
    r.c = apf_trace_checker_init_windowed(cmem, cneed, r.n_vcpus, max_out, qcap);
    FZ_ASSERT(r.c != NULL);
    if (b & 0x80)
        FZ_ASSERT(apf_trace_checker_set_window(r.c, APF_TRACE_ALL_VCPUS, (b >> 4) & 7) == 0);
    /* thread bindings, as apf-trace-check makes them from kvm_entry */
    uint32_t n_binds = (b >> 4) & 3, threads = 0;
    for (uint32_t i = 0; i < n_binds; i++) {
        uint32_t pid = fz_u16(&f), vcpu = fz_u8(&f) % (r.n_vcpus + 2);
        int rc = apf_trace_kvm_bind(r.k, pid, vcpu);
        if (vcpu >= r.n_vcpus)
            FZ_ASSERT(rc == APF_EINVAL, "bind to vCPU %u of %u: %d", vcpu, r.n_vcpus, rc);
        else
            FZ_ASSERT(rc == 0 || (rc == APF_ENOSPC && threads >= r.n_vcpus), "bind %d", rc);
        threads += rc == 0;
    }
    const char *text = (const char *)f.p;
    size_t len = f.n;
    char buf[512];
    for (size_t at = 0; at < len;) {
        /* memchr: a byte loop here would be traced comparison by comparison (slow) */
        const char *nl = memchr(text + at, '\n', len - at);
        size_t line_len = nl ? (size_t)(nl - (text + at)) + 1 : len - at; /* with its '\n' */
        const char *l = text + at;
        at += line_len;
        if (line_len > 0 && l[0] == '\x01') {
            struct fz g = {(const uint8_t *)l + 1, line_len - 1};
            struct apf_trace_kvm_record want;
            int want_rc;
            size_t n = synth(&g, buf, sizeof(buf), &want, &want_rc);
            line(&r, buf, n, &want, want_rc);
        } else {
            line(&r, l, line_len, NULL, 0);
        }
    }
    struct apf_trace_event out[APF_TRACE_KVM_MAX_OUT];
    int rc;
    uint32_t rounds = 0;
    do {
        uint32_t n = 99;
        rc = apf_trace_kvm_finish(r.k, out, &n);
        FZ_ASSERT(++rounds <= r.n_vcpus + 2, "finish does not end");
        if (r.kfailed) {
            FZ_ASSERT(rc == r.kfailed && n == 0, "a failed translator finished with %d", rc);
            break;
        }
        FZ_ASSERT(rc == 0 || rc == APF_EAGAIN || rc == APF_EPROTO, "finish %d", rc);
        take_events(&r, out, n);
    } while (rc == APF_EAGAIN);
    if (rc)
        r.kfailed = rc;
    bounded_msg(apf_trace_kvm_error(r.k), r.kfailed != 0);
    struct apf_trace_kvm_stats st;
    apf_trace_kvm_stats(r.k, &st);
    FZ_ASSERT(st.events == r.events, "counted %llu events, produced %llu",
              (unsigned long long)st.events, (unsigned long long)r.events);
    int fin = apf_trace_checker_finish(r.c);
    FZ_ASSERT(r.cfailed ? fin == r.cfailed : (fin == 0 || fin == APF_EPROTO), "finish %d", fin);
    free(cmem);
    free(kmem);
    return 0;
}
