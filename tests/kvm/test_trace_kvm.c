/* SPDX-License-Identifier: MIT */
/* Linux KVM trace input (apf/trace_kvm.h): the line parser on every tracepoint in both
 * text forms, malformed and truncated lines, and the translator's events. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "apf/error.h"
#include "apf/proto.h"
#include "apf/trace.h"
#include "apf/trace_kvm.h"

/* Parses a copy of @p s in a buffer of exactly its length (no NUL: overruns show). */
static int parse(const char *s, struct apf_trace_kvm_record *r)
{
    size_t n = strlen(s);
    char *b = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(b);
    memcpy(b, s, n);
    int rc = apf_trace_kvm_parse(b, n, r);
    free(b);
    return rc;
}

#define TF(task_pid, ev, body) " " task_pid "    [001] d..1.  1234.567890: " ev ": " body
#define TR(task_pid, ev, body) " " task_pid " [001]  1234.567890: " ev ":   " body

START_TEST(parse_tracefs_lines)
{
    struct apf_trace_kvm_record r;
    ck_assert_int_eq(parse(TF("qemu-system-x86-1234", "kvm_async_pf_not_present",
                              "token 0x1000 gva 0x40000000\n"), &r), 0);
    ck_assert_uint_eq(r.tp, APF_TRACE_KVM_NOT_PRESENT);
    ck_assert_uint_eq(r.format, APF_TRACE_FORMAT_KVM_TRACEFS);
    ck_assert_uint_eq(r.pid, 1234);
    ck_assert_uint_eq(r.cpu, 1);
    ck_assert_uint_eq(r.time_ns, 1234567890000ull);
    ck_assert_uint_eq(r.token, 0x1000);
    ck_assert_uint_eq(r.gva, 0x40000000);

    ck_assert_int_eq(parse(TF("CPU 0/KVM-99", "kvm_async_pf_ready", "token 0xffffffff gva 0x0"),
                           &r), 0);
    ck_assert_uint_eq(r.tp, APF_TRACE_KVM_READY);
    ck_assert_uint_eq(r.pid, 99); /* a task name with a space and a slash */
    ck_assert_uint_eq(r.token, 0xffffffffu);

    ck_assert_int_eq(parse(TF("a-1", "kvm_try_async_get_page", "gva = 0x40001000, gfn = 0x40001"),
                           &r), 0);
    ck_assert_uint_eq(r.tp, APF_TRACE_KVM_TRY_ASYNC);
    ck_assert_uint_eq(r.gva, 0x40001000);
    ck_assert_uint_eq(r.gfn, 0x40001);
    ck_assert_int_eq(parse(TF("a-1", "kvm_async_pf_repeated_fault", "gva = 0x5, gfn = 0x6"), &r),
                     0);
    ck_assert_uint_eq(r.tp, APF_TRACE_KVM_REPEATED_FAULT);
    ck_assert_uint_eq(r.gfn, 6);
    ck_assert_int_eq(parse(TF("kworker/0:3-24748", "kvm_async_pf_completed",
                              "gva 0x40003000 address 0x7fa689f8a000"), &r), 0);
    ck_assert_uint_eq(r.tp, APF_TRACE_KVM_COMPLETED);
    ck_assert_uint_eq(r.address, 0x7fa689f8a000ull);
    ck_assert_uint_eq(r.pid, 24748);

    ck_assert_int_eq(parse(TF("a-1", "kvm_inj_exception", "#PF (0x0)"), &r), 0);
    ck_assert_uint_eq(r.vector, 14);
    ck_assert_uint_eq(r.has_error, 1);
    ck_assert_uint_eq(r.reinjected, 0);
    ck_assert_int_eq(parse(TF("a-1", "kvm_inj_exception", "#GP (0x10) [reinjected]"), &r), 0);
    ck_assert_uint_eq(r.vector, 13);
    ck_assert_uint_eq(r.error_code, 0x10);
    ck_assert_uint_eq(r.reinjected, 1);
    ck_assert_int_eq(parse(TF("a-1", "kvm_inj_exception", "#UD"), &r), 0);
    ck_assert_uint_eq(r.vector, 6);
    ck_assert_uint_eq(r.has_error, 0);

    ck_assert_int_eq(parse(TF("a-1", "kvm_entry", "vcpu 3, rip 0xffffffff81000000 intr_info "
                              "0x00000000 error_code 0x00000000"), &r), 0);
    ck_assert_uint_eq(r.tp, APF_TRACE_KVM_ENTRY);
    ck_assert_uint_eq(r.vcpu_id, 3);
    ck_assert_int_eq(parse(TF("a-1", "kvm_entry", "vcpu 7"), &r), 0); /* older kernels */
    ck_assert_uint_eq(r.vcpu_id, 7);

    ck_assert_int_eq(parse(TF("a-1", "kvm_userspace_exit", "reason KVM_EXIT_IO (2)"), &r), 0);
    ck_assert_int_eq(r.reason, 2);
    ck_assert_int_eq(parse(TF("a-1", "kvm_userspace_exit", "reason restart (4)"), &r), 0);
    ck_assert_int_eq(r.reason, -4);

    ck_assert_int_eq(parse(TF("a-1", "kvm_msr", "msr_write 4b564d07 = 0x1"), &r), 0);
    ck_assert_uint_eq(r.tp, APF_TRACE_KVM_MSR);
    ck_assert_uint_eq(r.write, 1);
    ck_assert_uint_eq(r.msr, APF_KVM_MSR_ASYNC_PF_ACK);
    ck_assert_uint_eq(r.address, 1);
    ck_assert_uint_eq(r.gp, 0);
    ck_assert_int_eq(parse(TF("a-1", "kvm_msr", "msr_write 4b564d02 = 0x11 (#GP)"), &r), 0);
    ck_assert_uint_eq(r.gp, 1);
    ck_assert_int_eq(parse(TF("a-1", "kvm_msr", "msr_read 1b = 0xfee00900"), &r), 0);
    ck_assert_uint_eq(r.write, 0);
}
END_TEST

START_TEST(parse_trace_cmd_report_lines)
{
    struct apf_trace_kvm_record r;
    ck_assert_int_eq(parse(TR("apf-kvm-vmm-25019", "kvm_async_pf_ready", "token 0xffffffff gva 0"),
                           &r), 0);
    ck_assert_uint_eq(r.format, APF_TRACE_FORMAT_KVM_REPORT);
    ck_assert_uint_eq(r.gva, 0); /* "%#llx" of 0 is "0" in user space */
    ck_assert_uint_eq(r.pid, 25019);
    /* an instance's name before each line (trace-cmd report of a tracefs instance) */
    ck_assert_int_eq(parse("apf-record-15609:  apf-kvm-conform-15614 [001]  1643.265669: "
                           "kvm_async_pf_ready:   token 0x1000 gva 0x40000000", &r), 0);
    ck_assert_uint_eq(r.pid, 15614);
    ck_assert_uint_eq(r.time_ns, 1643265669000ull);
    /* libtraceevent could not evaluate the print format: raw fields */
    ck_assert_int_eq(parse(TR("a-5", "kvm_inj_exception", "[FAILED TO PARSE] exception=14 "
                              "has_error=1 error_code=0 reinjected=1"), &r), 0);
    ck_assert_uint_eq(r.vector, 14);
    ck_assert_uint_eq(r.has_error, 1);
    ck_assert_uint_eq(r.reinjected, 1);
    ck_assert_int_eq(parse(TR("a-5", "kvm_msr", "[FAILED TO PARSE] write=1 ecx=1263947015 "
                              "data=0x1 exception=0"), &r), 0);
    ck_assert_uint_eq(r.msr, 0x4b564d07u);
    ck_assert_uint_eq(r.write, 1);
    ck_assert_uint_eq(r.gp, 0);
    /* raw fields of another tracepoint are not carried: they stay 0 */
    ck_assert_int_eq(parse(TR("a-5", "kvm_async_pf_completed", "[FAILED TO PARSE] gva=0x10 "
                              "address=0x7f00 token=5 vcpu_id=3 exception=14 ecx=7 gfn=9"), &r), 0);
    ck_assert_uint_eq(r.gva, 0x10);
    ck_assert_uint_eq(r.address, 0x7f00);
    ck_assert_uint_eq(r.token, 0);
    ck_assert_uint_eq(r.vcpu_id, 0);
    ck_assert_uint_eq(r.vector, 0);
    ck_assert_uint_eq(r.msr, 0);
    ck_assert_uint_eq(r.gfn, 0);
    ck_assert_int_eq(parse(TR("a-5", "kvm_entry", "[FAILED TO PARSE] vcpu_id=2 data=0x5 write=1"),
                     &r), 0);
    ck_assert_uint_eq(r.vcpu_id, 2);
    ck_assert_uint_eq(r.address, 0);
    ck_assert_uint_eq(r.write, 0);
    /* nanosecond timestamps */
    ck_assert_int_eq(parse(" a-5 [000]  12.000000001: kvm_entry: vcpu 0", &r), 0);
    ck_assert_uint_eq(r.time_ns, 12000000001ull);
}
END_TEST

START_TEST(parse_headers_others_and_malformed)
{
    struct apf_trace_kvm_record r;
    ck_assert_int_eq(parse("# tracer: nop\n", &r), APF_TRACE_KVM_HEADER);
    ck_assert_int_eq(parse("", &r), APF_TRACE_KVM_HEADER);
    ck_assert_int_eq(parse("   \n", &r), APF_TRACE_KVM_HEADER);
    ck_assert_int_eq(parse("cpus=2", &r), APF_TRACE_KVM_HEADER);
    ck_assert_int_eq(parse("CPU 1 is empty", &r), APF_TRACE_KVM_HEADER);
    ck_assert_int_eq(parse(TF("a-1", "kvm_exit", "reason EPT_VIOLATION rip 0x1 info 0 0"), &r),
                     APF_ENOENT);
    ck_assert_uint_eq(r.tp, APF_TRACE_KVM_OTHER);
    static const char *const bad[] = {
        "CPU:0 [LOST 12 EVENTS]",
        "1200 host.np 0 0x1000 0x7f000 0",
        TF("a-1", "kvm_async_pf_ready", "token 0x1000 gva"),
        TF("a-1", "kvm_async_pf_ready", "token 0x1000 gva 0x2 extra"),
        TF("a-1", "kvm_async_pf_ready", "token 0x11112222333344445 gva 0x2"),
        TF("a-1", "kvm_async_pf_ready", "token 0x1000  gva 0x2"),
        TF("a-1", "kvm_msr", "msr_write 100000000 = 0x1"),
        TF("a-1", "kvm_inj_exception", "#PF (0x0"),
        TF("a-1", "kvm_entry", "vcpu x"),
        TF("a-1", "kvm_entry", "vcpu 99999999999"),
        TF("a-1", "kvm_userspace_exit", "reason KVM_EXIT_IO 2"),
        " a-1 [001] d..1.  1234: kvm_entry: vcpu 0",
        " a-1 [001] d..1.  1234.5 kvm_entry: vcpu 0",
        " a [001] d..1.  1234.5: kvm_entry: vcpu 0",
        " a-1 [0x1] d..1.  1234.5: kvm_entry: vcpu 0",
        TR("a-5", "kvm_inj_exception", "[FAILED TO PARSE]"),
        TR("a-5", "kvm_inj_exception", "[FAILED TO PARSE] exception=x"),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(parse(bad[i], &r) == APF_EINVAL, "accepted: %s", bad[i]);
}
END_TEST

/* The last nanosecond a uint64_t holds parses; one more, in the seconds or the fraction, is
 * refused (it used to wrap: "18446744073.999999999" read as 290448384 ns; found by the
 * trace_kvm fuzz target's print/parse round trip). */
START_TEST(parse_timestamps_past_2_64_ns_are_refused)
{
    struct apf_trace_kvm_record r;
    ck_assert_int_eq(parse(" a-5 [000]  18446744073.709551615: kvm_entry: vcpu 0", &r), 0);
    ck_assert_uint_eq(r.time_ns, UINT64_MAX);
    ck_assert_int_eq(parse(" a-5 [000]  18446744073.709551616: kvm_entry: vcpu 0", &r),
                     APF_EINVAL);
    ck_assert_int_eq(parse(" a-5 [000]  18446744073.999999999: kvm_entry: vcpu 0", &r),
                     APF_EINVAL);
    ck_assert_int_eq(parse(" a-5 [000] d..1.  18446744073.9: kvm_entry: vcpu 0", &r),
                     APF_EINVAL);
    ck_assert_int_eq(parse(" a-5 [000]  18446744074.0: kvm_entry: vcpu 0", &r), APF_EINVAL);
}
END_TEST

/* Every prefix and many byte mutations of every valid line: a verdict, no overrun (the
 * buffers are exactly the line's length; run under ASan in CI). */
START_TEST(parse_truncated_and_mutated)
{
    static const char *const good[] = {
        TF("qemu-1", "kvm_async_pf_not_present", "token 0x1000 gva 0x40000000"),
        TF("qemu-1", "kvm_inj_exception", "#PF (0x0) [reinjected]"),
        TF("qemu-1", "kvm_userspace_exit", "reason restart (4)"),
        TF("qemu-1", "kvm_msr", "msr_write 4b564d07 = 0x1 (#GP)"),
        TR("qemu-1", "kvm_try_async_get_page", "gva = 0x1, gfn = 0"),
        TR("qemu-1", "kvm_inj_exception", "[FAILED TO PARSE] exception=14 has_error=1"),
        "cpus=2",
    };
    unsigned seed = 12345;
    for (size_t g = 0; g < sizeof(good) / sizeof(good[0]); g++) {
        size_t n = strlen(good[g]);
        struct apf_trace_kvm_record r;
        for (size_t k = 0; k <= n; k++) {
            char *b = malloc(k ? k : 1);
            memcpy(b, good[g], k);
            int rc = apf_trace_kvm_parse(b, k, &r);
            ck_assert(rc == 0 || rc == APF_TRACE_KVM_HEADER || rc == APF_ENOENT ||
                      rc == APF_EINVAL);
            (void)apf_trace_detect_format(b, k);
            free(b);
        }
        for (int it = 0; it < 3000; it++) {
            char *b = malloc(n);
            memcpy(b, good[g], n);
            for (int m = 0; m < 3; m++) {
                seed = seed * 1103515245u + 12345u;
                b[(seed >> 8) % n] = (char)(seed >> 20);
            }
            int rc = apf_trace_kvm_parse(b, n, &r);
            ck_assert(rc == 0 || rc == APF_TRACE_KVM_HEADER || rc == APF_ENOENT ||
                      rc == APF_EINVAL);
            free(b);
        }
    }
}
END_TEST

START_TEST(detect_formats)
{
    ck_assert_uint_eq(apf_trace_detect_format("# tracer: nop", 13), APF_TRACE_FORMAT_KVM_TRACEFS);
    ck_assert_uint_eq(apf_trace_detect_format("cpus=2", 6), APF_TRACE_FORMAT_KVM_REPORT);
    const char *apf = "1200 host.np 0 0x1000 0x7f000 0\n";
    ck_assert_uint_eq(apf_trace_detect_format(apf, strlen(apf)), APF_TRACE_FORMAT_APF);
    const char *tf = TF("a-1", "kvm_exit", "anything");
    ck_assert_uint_eq(apf_trace_detect_format(tf, strlen(tf)), APF_TRACE_FORMAT_KVM_TRACEFS);
    const char *tr = TR("a-1", "kvm_entry", "vcpu 0");
    ck_assert_uint_eq(apf_trace_detect_format(tr, strlen(tr)), APF_TRACE_FORMAT_KVM_REPORT);
    ck_assert_uint_eq(apf_trace_detect_format("# a comment", 11), APF_TRACE_FORMAT_UNKNOWN);
    ck_assert_uint_eq(apf_trace_detect_format("hello", 5), APF_TRACE_FORMAT_UNKNOWN);
}
END_TEST

/* ---- translator ---- */

struct tx {
    struct apf_trace_kvm *k;
    void *mem;
    struct apf_trace_event ev[64];
    uint32_t n;
};

static void tx_init(struct tx *t, uint32_t vcpus, uint32_t out, uint32_t flags)
{
    size_t size = apf_trace_kvm_size(vcpus, out);
    ck_assert_uint_gt(size, 0);
    t->mem = aligned_alloc(8, (size + 7) & ~(size_t)7);
    t->k = apf_trace_kvm_init(t->mem, size, vcpus, out, flags);
    ck_assert_ptr_nonnull(t->k);
    ck_assert_ptr_null(apf_trace_kvm_init(t->mem, size - 1, vcpus, out, flags));
    t->n = 0;
}

/* Feeds one tracefs line; returns the feed's result and appends its events. */
static int tx_line(struct tx *t, const char *line)
{
    struct apf_trace_kvm_record r;
    ck_assert_int_eq(parse(line, &r), 0);
    struct apf_trace_event out[APF_TRACE_KVM_MAX_OUT];
    uint32_t n = 0;
    int rc = apf_trace_kvm_feed(t->k, &r, out, &n);
    ck_assert_uint_le(n, APF_TRACE_KVM_MAX_OUT);
    for (uint32_t i = 0; i < n && t->n < 64; i++)
        t->ev[t->n++] = out[i];
    return rc;
}

static int tx_finish(struct tx *t)
{
    struct apf_trace_event out[APF_TRACE_KVM_MAX_OUT];
    uint32_t n;
    int rc;
    do {
        rc = apf_trace_kvm_finish(t->k, out, &n);
        for (uint32_t i = 0; i < n && t->n < 64; i++)
            t->ev[t->n++] = out[i];
    } while (rc == APF_EAGAIN);
    return rc;
}

static void expect(const struct tx *t, uint32_t i, uint32_t kind, uint32_t vcpu, uint32_t token,
                   int32_t arg)
{
    ck_assert_uint_gt(t->n, i);
    ck_assert_msg(t->ev[i].kind == kind, "event %u: kind %s, expected %s", i,
                  apf_trace_kind_name(t->ev[i].kind), apf_trace_kind_name(kind));
    ck_assert_uint_eq(t->ev[i].vcpu, vcpu);
    ck_assert_uint_eq(t->ev[i].token, token);
    ck_assert_int_eq(t->ev[i].arg, arg);
}

#define V0(ev, body) TF("qemu-10", ev, body)
#define V1(ev, body) TF("qemu-11", ev, body)
#define WK(ev, body) TF("kworker/0:1-5", ev, body)

START_TEST(translate_a_run)
{
    struct tx t;
    tx_init(&t, 2, 64, APF_TRACE_KVM_ACK_VISIBLE);
    ck_assert_int_eq(tx_line(&t, V0("kvm_msr", "msr_write 4b564d06 = 0xec")), 0);
    ck_assert_int_eq(tx_line(&t, V0("kvm_msr", "msr_write 4b564d02 = 0x7f00b")), 0);
    ck_assert_int_eq(tx_line(&t, V0("kvm_async_pf_ready", "token 0xffffffff gva 0x0")), 0);
    ck_assert_int_eq(tx_line(&t, V0("kvm_msr", "msr_write 4b564d07 = 0x1")), 0);
    ck_assert_uint_eq(t.n, 4);
    expect(&t, 0, APF_TRACE_HOST_ENABLE, 0, 0, 0x0b);
    ck_assert_uint_eq(t.ev[0].gpa, 0x7f000);
    expect(&t, 1, APF_TRACE_HOST_TRANSPORT, 0, APF_TRANSPORT_ID_KVM_X86, 1);
    expect(&t, 2, APF_TRACE_HOST_READY, 0, APF_TOKEN_WAKE_ALL, 0xec);
    expect(&t, 3, APF_TRACE_HOST_ACK, 0, 0, 1);
    /* delivered: the not present is settled by its #PF */
    ck_assert_int_eq(tx_line(&t, V0("kvm_try_async_get_page", "gva = 0x40000000, gfn = 0x40000")), 0);
    ck_assert_int_eq(tx_line(&t, V0("kvm_async_pf_not_present", "token 0x1000 gva 0x40000000")), 0);
    ck_assert_uint_eq(t.n, 4);
    ck_assert_int_eq(tx_line(&t, V0("kvm_inj_exception", "#PF (0x0)")), 0);
    expect(&t, 4, APF_TRACE_HOST_NOT_PRESENT, 0, 0x1000, 0);
    ck_assert_uint_eq(t.ev[4].gpa, 0x40000000);
    /* repeated fault: a halt on the outstanding token (dedup) */
    ck_assert_int_eq(tx_line(&t, V0("kvm_try_async_get_page", "gva = 0x40000010, gfn = 0x40000")), 0);
    ck_assert_int_eq(tx_line(&t, V0("kvm_async_pf_repeated_fault", "gva = 0x40000010, gfn = 0x40000")), 0);
    expect(&t, 5, APF_TRACE_HOST_HALT, 0, 0x1000, APF_WHY_DEDUP);
    /* a try with no work: synchronous, settled by the next vCPU event */
    ck_assert_int_eq(tx_line(&t, V0("kvm_try_async_get_page", "gva = 0x50000000, gfn = 0x50000")), 0);
    ck_assert_int_eq(tx_line(&t, V0("kvm_entry", "vcpu 0, rip 0x1")), 0);
    expect(&t, 6, APF_TRACE_HOST_SYNC, 0, 0, APF_WHY_LIMIT);
    ck_assert_uint_eq(t.ev[6].gpa, 0x50000000);
    /* completion on a worker, then the ready */
    ck_assert_int_eq(tx_line(&t, WK("kvm_async_pf_completed", "gva 0x40000000 address 0x7f0000")), 0);
    expect(&t, 7, APF_TRACE_HOST_DONE, 0, 0x1000, 0);
    ck_assert_int_eq(tx_line(&t, V0("kvm_async_pf_ready", "token 0x1000 gva 0x40000000")), 0);
    expect(&t, 8, APF_TRACE_HOST_READY, 0, 0x1000, 0xec);
    /* vCPU 1 (another thread), APF state unknown: a delivered fault implies the enable and
     * its wake-all (sent and ACKed before the trace) */
    ck_assert_int_eq(tx_line(&t, V1("kvm_async_pf_not_present", "token 0x1001 gva 0x60000000")), 0);
    ck_assert_int_eq(tx_line(&t, V1("kvm_inj_exception", "#PF (0x0)")), 0);
    expect(&t, 9, APF_TRACE_HOST_ENABLE, 1, 0, 0);
    expect(&t, 10, APF_TRACE_HOST_TRANSPORT, 1, APF_TRANSPORT_ID_KVM_X86, 1);
    expect(&t, 11, APF_TRACE_HOST_READY, 1, APF_TOKEN_WAKE_ALL, 0);
    expect(&t, 12, APF_TRACE_HOST_ACK, 1, 0, 1);
    expect(&t, 13, APF_TRACE_HOST_NOT_PRESENT, 1, 0x1001, 0);
    /* APF off on vCPU 0: not delivered, artificial halt, woken by the ready (no event) */
    ck_assert_int_eq(tx_line(&t, V0("kvm_msr", "msr_write 4b564d07 = 0x1")), 0);
    expect(&t, 14, APF_TRACE_HOST_ACK, 0, 0, 1);
    ck_assert_int_eq(tx_line(&t, V0("kvm_msr", "msr_write 4b564d02 = 0x0")), 0);
    expect(&t, 15, APF_TRACE_HOST_DISABLE, 0, 0, 0);
    ck_assert_int_eq(tx_line(&t, V0("kvm_async_pf_not_present", "token 0x2000 gva 0x70000000")), 0);
    ck_assert_int_eq(tx_line(&t, WK("kvm_async_pf_completed", "gva 0x70000000 address 0x1")), 0);
    expect(&t, 16, APF_TRACE_HOST_DONE, 0, 0x2000, 0);
    ck_assert_int_eq(tx_line(&t, V0("kvm_async_pf_ready", "token 0x2000 gva 0x70000000")), 0);
    expect(&t, 17, APF_TRACE_HOST_HALT, 0, 0x2000, APF_WHY_DISABLED);
    ck_assert_uint_eq(t.n, 18);
    /* vCPU 1's fault is still outstanding: the translator has nothing against it (the
     * checker has) */
    ck_assert_int_eq(tx_finish(&t), 0);
    struct apf_trace_kvm_stats st;
    apf_trace_kvm_stats(t.k, &st);
    ck_assert_uint_eq(st.np_delivered, 2);
    ck_assert_uint_eq(st.np_halted, 1);
    ck_assert_uint_eq(st.halt_wakes, 1);
    ck_assert_uint_eq(st.repeated, 1);
    ck_assert_uint_eq(st.sync_fallbacks, 1);
    ck_assert_uint_eq(st.implied_enables, 1);
    ck_assert_uint_eq(st.implied_wake_alls, 1);
    ck_assert_uint_eq(st.lines[APF_TRACE_KVM_MSR], 5);
    free(t.mem);
}
END_TEST

START_TEST(translate_violations_and_limits)
{
    struct tx t;
    tx_init(&t, 1, 2, 0);
    /* a completion nobody waits for */
    ck_assert_int_eq(tx_line(&t, WK("kvm_async_pf_completed", "gva 0x1000 address 0x1")),
                     APF_EPROTO);
    ck_assert_str_eq(apf_trace_kvm_error(t.k),
                     "kvm: completion for an address with no fault outstanding: gva 0x1000");
    /* failed stays failed */
    ck_assert_int_eq(tx_line(&t, V0("kvm_entry", "vcpu 0")), APF_EPROTO);
    free(t.mem);

    tx_init(&t, 1, 2, 0);
    ck_assert_int_eq(tx_line(&t, V0("kvm_async_pf_not_present", "token 0x1000 gva 0x1000")), 0);
    ck_assert_int_eq(tx_line(&t, V0("kvm_async_pf_not_present", "token 0x2000 gva 0x2000")), 0);
    ck_assert_int_eq(tx_line(&t, V0("kvm_async_pf_not_present", "token 0x3000 gva 0x3000")),
                     APF_ENOSPC);
    free(t.mem);

    /* EN with ENABLED but without DELIVERY_AS_INT is off (KVM since 5.10) */
    tx_init(&t, 1, 2, APF_TRACE_KVM_ACK_VISIBLE);
    ck_assert_int_eq(tx_line(&t, V0("kvm_msr", "msr_write 4b564d02 = 0x7f001")), 0);
    expect(&t, 0, APF_TRACE_HOST_DISABLE, 0, 0, 0);
    ck_assert_int_eq(tx_line(&t, V0("kvm_msr", "msr_write 4b564d02 = 0x7f009")), 0);
    expect(&t, 1, APF_TRACE_HOST_ENABLE, 0, 0, 9);
    free(t.mem);

    /* one vCPU thread at most */
    tx_init(&t, 1, 2, 0);
    ck_assert_int_eq(tx_line(&t, V0("kvm_entry", "vcpu 0")), 0);
    ck_assert_int_eq(tx_line(&t, V1("kvm_entry", "vcpu 0")), APF_ENOSPC);
    free(t.mem);

    /* a halt the trace never ends */
    tx_init(&t, 1, 4, 0);
    ck_assert_int_eq(tx_line(&t, V0("kvm_async_pf_not_present", "token 0x1000 gva 0x1000")), 0);
    ck_assert_int_eq(tx_finish(&t), APF_EPROTO);
    expect(&t, 0, APF_TRACE_HOST_HALT, 0, 0x1000, APF_WHY_UNDELIVERABLE);
    ck_assert_str_eq(apf_trace_kvm_error(t.k), "kvm: end of trace: artificial halt never woken "
                     "by a page ready: token 0x1000, gva 0x1000");
    free(t.mem);

    /* finish with more pending settlements than one call returns */
    tx_init(&t, 8, 4, 0);
    static const char *const np[8] = {
        TF("q-1", "kvm_async_pf_not_present", "token 0x1000 gva 0x1000"),
        TF("q-2", "kvm_async_pf_not_present", "token 0x1001 gva 0x1000"),
        TF("q-3", "kvm_async_pf_not_present", "token 0x1002 gva 0x1000"),
        TF("q-4", "kvm_async_pf_not_present", "token 0x1003 gva 0x1000"),
        TF("q-5", "kvm_async_pf_not_present", "token 0x1004 gva 0x1000"),
        TF("q-6", "kvm_async_pf_not_present", "token 0x1005 gva 0x1000"),
        TF("q-7", "kvm_async_pf_not_present", "token 0x1006 gva 0x1000"),
        TF("q-8", "kvm_async_pf_not_present", "token 0x1007 gva 0x1000"),
    };
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(tx_line(&t, np[i]), 0);
        ck_assert_int_eq(tx_line(&t, TF("q-1", "kvm_entry", "vcpu 0")) == 0, 1);
    }
    ck_assert_uint_eq(t.n, 1); /* vCPU 0's settled by its entry */
    ck_assert_int_eq(tx_line(&t, WK("kvm_async_pf_completed", "gva 0x1000 address 0x1")), 0);
    ck_assert_int_eq(tx_finish(&t), APF_EPROTO); /* halts never woken */
    ck_assert_uint_eq(t.n, 1 + 1 + 7);
    free(t.mem);

    ck_assert_uint_eq(apf_trace_kvm_size(0, 1), 0);
    ck_assert_uint_eq(apf_trace_kvm_size(1, 0), 0);
    ck_assert_uint_eq(apf_trace_kvm_size(65537, 1), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("trace_kvm");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, parse_tracefs_lines);
    tcase_add_test(tc, parse_trace_cmd_report_lines);
    tcase_add_test(tc, parse_headers_others_and_malformed);
    tcase_add_test(tc, parse_timestamps_past_2_64_ns_are_refused);
    tcase_add_test(tc, parse_truncated_and_mutated);
    tcase_add_test(tc, detect_formats);
    tcase_add_test(tc, translate_a_run);
    tcase_add_test(tc, translate_violations_and_limits);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
