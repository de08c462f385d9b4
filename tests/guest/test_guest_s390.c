/* SPDX-License-Identifier: MIT */
/*
 * libapf-guest on s390 pfault: the backend's exact parameter blocks (the bytes Linux's s390
 * guest sends), and the runtime + s390 backend against the real host frontend (libapf-host)
 * in one process: "not present" on one CPU answered on another, completion before the
 * initial interrupt, CPU offline, a completion landing on a CPU without pfault, interrupts
 * that are not pfault's, bad keys. Runs unchanged on s390x (qemu-s390x in CI): the blocks
 * and tokens are big-endian on both byte orders.
 */
#include <stdlib.h>
#include <string.h>

#include "apf/guest_s390.h"
#include "apf/host_s390.h"
#include "apf_check.h"
#include "test_env.h"

#define TOKREAL 0x340u /* the token doubleword's real address (in each CPU's prefix area) */
#define PSTATE APF_S390_PSW_MASK_PSTATE
#define EXT APF_S390_PSW_MASK_EXT
#define CR0 APF_S390_CR0_SERVICE_SIGNAL

static const struct apf_host_s390_cpu USER_ON = {.psw_mask = EXT | PSTATE, .cr0 = CR0};
static const struct apf_host_s390_cpu EXT_OFF = {.psw_mask = PSTATE, .cr0 = CR0};

/* ---- the backend alone, over a recording arch hook --------------------------------------- */

struct rec {
    uint8_t block[40];
    uint32_t cpu;
    int calls;
    int rc;
};

static int rec_diag(void *ctx, uint32_t cpu, uint64_t block)
{
    struct rec *r = ctx;
    ck_assert_uint_eq(block % 8, 0);
    memcpy(r->block, (const void *)(uintptr_t)block, 40);
    r->cpu = cpu;
    r->calls++;
    return r->rc;
}

static const struct apf_s390_arch_ops rec_ops = {rec_diag};

/* The bytes of Linux's INIT block (token address in the prefix area, problem-state masks,
 * the z/Architecture reserved word) and of its CANCEL block: big-endian, as a host reads. */
static const uint8_t linux_init[40] = {
    0x02, 0x58, 0x00, 0x00, 0x00, 0x05, 0x00, 0x02, /* code, subcode 0, length 5, version 2 */
    0, 0, 0, 0, 0, 0, 0x03, 0x40,                   /* token address */
    0x00, 0x01, 0, 0, 0, 0, 0, 0,                   /* select: PSW problem state */
    0x00, 0x01, 0, 0, 0, 0, 0, 0,                   /* compare */
    0x80, 0, 0, 0, 0, 0, 0, 0};                     /* reserved */
static const uint8_t linux_cancel[40] = {0x02, 0x58, 0x00, 0x01, 0x00, 0x05, 0x00, 0x02};

static _Alignas(64) uint8_t chan[64];

START_TEST(test_init_and_cancel_blocks_are_linux_bytes)
{
    struct rec r = {0};
    struct apf_guest_s390 b;
    apf_guest_s390_init(&b, &rec_ops, &r, TOKREAL);
    b.cancel_pa = (uint64_t)(uintptr_t)b.cancel;
    struct apf_guest_backend_info info;
    ck_assert_int_eq(apf_guest_backend_s390.probe(&b, &info), 0);
    ck_assert_uint_eq(info.irq, APF_S390_EXT_CODE);
    ck_assert_uint_eq(apf_guest_backend_s390.capabilities(&b),
                      APF_BACKEND_CAP_HOST_VECTOR | APF_BACKEND_CAP_SEND_ALWAYS);
    size_t align = 0;
    ck_assert_uint_eq(apf_guest_backend_s390.chan_size(&b, &align), 64);
    ck_assert_uint_eq(align, 8);
    ck_assert_int_eq(apf_guest_backend_s390.vector_check(&b, 0x2603), 0);
    ck_assert_int_eq(apf_guest_backend_s390.vector_check(&b, 0x2602), APF_EPROTO);
    ck_assert_int_eq(apf_guest_backend_s390.enable(&b, 3, chan, (uintptr_t)chan, 0x2603, 0), 0);
    ck_assert_int_eq(r.calls, 1);
    ck_assert_uint_eq(r.cpu, 3);
    ck_assert_mem_eq(r.block, linux_init, 40);
    ck_assert_int_eq(apf_guest_backend_s390.disable(&b, 3), 0);
    ck_assert_mem_eq(r.block, linux_cancel, 40);
    /* SEND_ALWAYS: masks 0 (async in every state) */
    ck_assert_int_eq(apf_guest_backend_s390.enable(&b, 0, chan, (uintptr_t)chan, 0x2603,
                                                   APF_EN_SEND_ALWAYS),
                     0);
    uint8_t always[40];
    memcpy(always, linux_init, 40);
    memset(always + 0x10, 0, 16);
    ck_assert_mem_eq(r.block, always, 40);
}
END_TEST

START_TEST(test_enable_results_and_probe_checks)
{
    struct rec r = {0};
    struct apf_guest_s390 b;
    apf_guest_s390_init(&b, &rec_ops, &r, TOKREAL);
    struct apf_guest_backend_info info;
    ck_assert_int_eq(apf_guest_backend_s390.probe(&b, &info), APF_EINVAL); /* no cancel_pa */
    b.cancel_pa = (uint64_t)(uintptr_t)b.cancel;
    b.token_addr = TOKREAL + 4;
    ck_assert_int_eq(apf_guest_backend_s390.probe(&b, &info), APF_EINVAL);
    b.token_addr = TOKREAL;
    b.compare = EXT;
    ck_assert_int_eq(apf_guest_backend_s390.probe(&b, &info), APF_EINVAL);
    b.compare = PSTATE;
    r.rc = 8;
    ck_assert_int_eq(apf_guest_backend_s390.enable(&b, 0, chan, (uintptr_t)chan, 0x2603, 0),
                     APF_EBUSY);
    r.rc = APF_EINVAL; /* a specification exception the hook could see */
    ck_assert_int_eq(apf_guest_backend_s390.enable(&b, 0, chan, (uintptr_t)chan, 0x2603, 0),
                     APF_EINVAL);
    r.rc = 4;
    ck_assert_int_eq(apf_guest_backend_s390.disable(&b, 0), 0); /* not established: off */
    r.rc = 2;
    ck_assert_int_eq(apf_guest_backend_s390.disable(&b, 0), APF_EPROTO);
}
END_TEST

/* ---- the runtime against the real host ----------------------------------------------------- */

struct world {
    struct tenv e;
    struct apf_guest_s390 b;
    struct apf_host *h;
    struct apf_host_s390 *fe;
    _Alignas(8) uint8_t tok[2][8]; /* each CPU's token doubleword (prefix area), big-endian */
    uint32_t np_token[2];          /* the engine token of the last "not present" */
    uint64_t np_param[2];          /* and its interruption parameter */
    void (*after_sleep)(struct world *w);
    size_t gmem_size; /* the runtime's memory, from W.e.g on */
};

static struct world W;

/* Guest memory as the host sees it: addresses are the test's pointers, bounds-checked
 * against the runtime's memory, the token doublewords and the backend's CANCEL block. */
static int in(const void *base, size_t size, uint64_t gpa, uint32_t len)
{
    uintptr_t b = (uintptr_t)base;
    return gpa >= b && len <= size && gpa - b <= size - len;
}

static int h_ok(uint64_t gpa, uint32_t len)
{
    return in(W.e.g, W.gmem_size, gpa, len) ||
           in(W.tok, sizeof(W.tok), gpa, len) || in(W.b.cancel, sizeof(W.b.cancel), gpa, len);
}

static int h_read(void *ctx, uint64_t gpa, void *buf, uint32_t len)
{
    (void)ctx;
    if (!h_ok(gpa, len))
        return APF_EFAULT;
    memcpy(buf, (const void *)(uintptr_t)gpa, len);
    return 0;
}

static int h_write(void *ctx, uint64_t gpa, const void *buf, uint32_t len)
{
    (void)ctx;
    if (!h_ok(gpa, len))
        return APF_EFAULT;
    memcpy((void *)(uintptr_t)gpa, buf, len);
    return 0;
}

static void h_np(void *ctx, uint32_t vcpu, uint32_t token)
{
    (void)ctx;
    W.np_token[vcpu] = token;
}

static void h_ready(void *ctx, uint32_t vcpu, uint32_t vector)
{
    (void)ctx, (void)vcpu;
    ck_assert_uint_eq(vector, APF_S390_EXT_CODE);
}

static void h_kick(void *ctx, uint32_t vcpu)
{
    (void)ctx, (void)vcpu;
}

static void h_submit(void *ctx, uint32_t vcpu, uint32_t token, uint64_t gpa)
{
    (void)ctx, (void)vcpu, (void)token, (void)gpa;
}

static const struct apf_host_ops hops = {.submit = h_submit,
                                         .inject_not_present = h_np,
                                         .inject_ready = h_ready,
                                         .kick = h_kick,
                                         .read_guest = h_read,
                                         .write_guest = h_write};

/* Prefixing: the token's real address is each CPU's own doubleword. */
static uint64_t h_real_to_abs(void *ctx, uint32_t vcpu, uint64_t real)
{
    (void)ctx;
    return real == TOKREAL ? (uint64_t)(uintptr_t)W.tok[vcpu] : real;
}

static int lb_diag(void *ctx, uint32_t cpu, uint64_t block)
{
    (void)ctx;
    uint64_t ry = 0;
    int err = apf_host_s390_diag258(W.fe, cpu, block, &ry);
    return err ? err : (int)ry;
}

static const struct apf_s390_arch_ops lb_ops = {lb_diag};

static void t_asleep(struct tenv *e, struct apf_guest_waiter *w)
{
    (void)e, (void)w;
    if (W.after_sleep)
        W.after_sleep(&W);
}

static void start(void)
{
    memset(&W, 0, sizeof(W));
    tenv_init(&W.e);
    struct apf_host_config hc = {0};
    hc.n_vcpus = 2;
    hc.transport = &apf_host_transport_s390;
    hc.ops = &hops;
    ck_assert_int_eq(apf_host_create(&hc, &W.h), 0);
    struct apf_host_s390_config fc = {.real_to_abs = h_real_to_abs};
    ck_assert_int_eq(apf_host_s390_create(W.h, &fc, &W.fe), 0);
    apf_guest_s390_init(&W.b, &lb_ops, NULL, TOKREAL);
    W.b.cancel_pa = (uint64_t)(uintptr_t)W.b.cancel;
    struct apf_guest_config gc = tenv_config(&W.e, 2, 0);
    gc.backend = &apf_guest_backend_s390;
    gc.backend_ctx = &W.b;
    W.e.g = NULL;
    W.gmem_size = apf_guest_mem_size(&gc);
    W.e.while_asleep = t_asleep;
    tenv_start(&W.e, &gc);
}

static void stop(void)
{
    apf_host_s390_destroy(W.fe);
    apf_host_destroy(W.h);
}

/* The kernel switches CPU `cpu` to task `id`: its token doubleword now holds the task's. */
static void switch_to(uint32_t cpu, uint32_t id)
{
    uint64_t t = apf_guest_s390_task_token(id);
    for (int i = 0; i < 8; i++)
        W.tok[cpu][i] = (uint8_t)(t >> (56 - 8 * i));
    W.e.cur_cpu = cpu;
    W.e.cur_task = id;
}

/* The host takes a fault of CPU `cpu` asynchronously. */
static void host_fault(uint32_t cpu, uint64_t gpa)
{
    uint64_t p = 0;
    ck_assert_int_eq(apf_host_s390_fault(W.fe, cpu, gpa, &USER_ON, &p), APF_FAULT_ASYNC);
    W.np_param[cpu] = p;
}

/* The work of CPU `from`'s last fault is done; CPU `from` enters with external interrupts
 * off (the completion floats), then CPU `taker` enters and takes it. */
static void host_complete_to(uint32_t from, uint32_t taker, const struct apf_host_s390_cpu *tc)
{
    ck_assert_int_eq(apf_host_complete(W.h, from, W.np_token[from], 0), 0);
    uint64_t p = 0;
    ck_assert_int_eq(apf_host_s390_before_entry(W.fe, from, &EXT_OFF, &p), 0);
    ck_assert_uint_eq(apf_host_s390_floating(W.fe), 1);
    ck_assert_int_eq(apf_host_s390_before_entry(W.fe, taker, tc, &p), 1);
    ck_assert_uint_eq(p, W.np_param[from]);
    ck_assert_int_eq(apf_guest_s390_external(W.e.g, taker, APF_S390_EXT_CODE,
                                             APF_S390_EXT_SUB_DONE, p),
                     1);
}

static struct apf_guest_stats gst(uint32_t cpu)
{
    struct apf_guest_stats s;
    ck_assert_int_eq(apf_guest_stats(W.e.g, cpu, &s), 0);
    return s;
}

START_TEST(test_online_establishes_with_linux_masks)
{
    start();
    for (uint32_t c = 0; c < 2; c++) {
        struct apf_host_s390_state st;
        ck_assert_int_eq(apf_host_s390_get_state(W.fe, c, &st), 0);
        ck_assert_uint_eq(st.token_addr, TOKREAL);
        ck_assert_uint_eq(st.select, PSTATE);
        ck_assert_uint_eq(st.compare, PSTATE);
    }
    ck_assert_uint_eq(apf_guest_vector(W.e.g), APF_S390_EXT_CODE);
    /* online again: the runtime refuses before asking the host */
    ck_assert_int_eq(apf_guest_cpu_online(W.e.g, 0), APF_EALREADY);
    stop();
}
END_TEST

static void complete_on_cpu1(struct world *w)
{
    (void)w;
    host_complete_to(0, 1, &USER_ON);
}

START_TEST(test_not_present_on_cpu0_answered_on_cpu1)
{
    start();
    switch_to(0, 0x457);
    host_fault(0, 0x40000);
    ck_assert_uint_eq(W.np_param[0], 0x8000000000000457ull); /* the task's token, read BE */
    W.after_sleep = complete_on_cpu1;
    ck_assert_int_eq(apf_guest_s390_external(W.e.g, 0, APF_S390_EXT_CODE,
                                             APF_S390_EXT_SUB_INIT, W.np_param[0]),
                     1);
    ck_assert_int_eq(W.e.sleeps, 1);
    ck_assert_int_eq(tenv_count(&W.e, TEV_WAKE), 1);
    ck_assert_uint_eq(W.e.log[tenv_index(&W.e, TEV_WAKE, 0)].task, 0x457);
    ck_assert_uint_eq(W.e.log[tenv_index(&W.e, TEV_WAKE, 0)].cpu, 0);
    ck_assert_uint_eq(gst(0).slept, 1);
    ck_assert_uint_eq(gst(1).ready, 1);
    ck_assert_uint_eq(gst(1).woken, 1);
    ck_assert_uint_eq(gst(1).acks, 1); /* the runtime's drain end; nothing reaches the host */
    struct apf_host_vcpu_stats hs;
    ck_assert_int_eq(apf_host_vcpu_stats(W.h, 0, &hs), 0);
    ck_assert_uint_eq(hs.acks, 0);
    ck_assert_uint_eq(hs.outstanding, 0);
    stop();
}
END_TEST

START_TEST(test_completion_before_initial_interrupt_does_not_sleep)
{
    start();
    switch_to(0, 0x500);
    host_fault(0, 0x40000);
    /* CPU 1 takes the completion before CPU 0 has handled its 0x0600 */
    host_complete_to(0, 1, &USER_ON);
    ck_assert_uint_eq(gst(1).placeholders, 1);
    ck_assert_uint_eq(gst(1).placeholders_in_use, 1);
    ck_assert_int_eq(apf_guest_s390_external(W.e.g, 0, APF_S390_EXT_CODE,
                                             APF_S390_EXT_SUB_INIT, W.np_param[0]),
                     1);
    ck_assert_int_eq(W.e.sleeps, 0);
    ck_assert_uint_eq(gst(0).placeholder_hits, 1);
    ck_assert_uint_eq(gst(1).placeholders_in_use, 0);
    stop();
}
END_TEST

static void offline_cpu0(struct world *w)
{
    (void)w;
    ck_assert_int_eq(apf_guest_cpu_offline(W.e.g, 0), 1);
}

START_TEST(test_cpu_offline_cancels_and_wakes_its_sleepers)
{
    start();
    switch_to(0, 0x600);
    host_fault(0, 0x40000);
    W.after_sleep = offline_cpu0;
    ck_assert_int_eq(apf_guest_s390_external(W.e.g, 0, APF_S390_EXT_CODE,
                                             APF_S390_EXT_SUB_INIT, W.np_param[0]),
                     1);
    ck_assert_int_eq(tenv_count(&W.e, TEV_WAKE), 1);
    ck_assert_int_eq(apf_host_vcpu_enabled(W.h, 0), 0); /* CANCEL reached the host */
    /* the work finishes later: nothing is delivered for the cancelled token */
    ck_assert_int_eq(apf_host_complete(W.h, 0, W.np_token[0], 0), 0);
    uint64_t p;
    ck_assert_int_eq(apf_host_s390_before_entry(W.fe, 0, &USER_ON, &p), 0);
    ck_assert_int_eq(apf_host_s390_before_entry(W.fe, 1, &USER_ON, &p), 0);
    ck_assert_uint_eq(apf_host_s390_floating(W.fe), 0);
    /* and online again re-establishes */
    ck_assert_int_eq(apf_guest_cpu_online(W.e.g, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(W.h, 0), 1);
    stop();
}
END_TEST

START_TEST(test_completion_on_cpu_without_pfault_still_wakes)
{
    start();
    ck_assert_int_eq(apf_guest_cpu_offline(W.e.g, 1), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(W.h, 1), 0);
    switch_to(0, 0x700);
    host_fault(0, 0x40000);
    W.after_sleep = complete_on_cpu1; /* the VMM chose vCPU 1 */
    ck_assert_int_eq(apf_guest_s390_external(W.e.g, 0, APF_S390_EXT_CODE,
                                             APF_S390_EXT_SUB_INIT, W.np_param[0]),
                     1);
    ck_assert_int_eq(tenv_count(&W.e, TEV_WAKE), 1);
    ck_assert_uint_eq(gst(1).ready, 1);
    stop();
}
END_TEST

START_TEST(test_other_interrupts_and_bad_keys)
{
    start();
    /* not pfault's: another service signal on 0x2603, another code */
    ck_assert_int_eq(apf_guest_s390_external(W.e.g, 0, 0x2603, 0x0400, 0x8000000000000001ull),
                     0);
    ck_assert_int_eq(apf_guest_s390_external(W.e.g, 0, 0x2603, 0x0000, 1), 0);
    ck_assert_int_eq(apf_guest_s390_external(W.e.g, 0, 0x1004, 0x0600, 1), 0);
    ck_assert_int_eq(apf_guest_s390_external(W.e.g, 0, 0x2602, 0x0680, 1), 0);
    ck_assert_int_eq(apf_guest_s390_external(W.e.g, 2, 0x2603, 0x0600, 1), APF_EINVAL);
    ck_assert_uint_eq(gst(0).bad_host_values, 0);
    /* pfault's, with keys the sleep table cannot hold: refused, nobody sleeps */
    ck_assert_int_eq(apf_guest_s390_external(W.e.g, 0, 0x2603, 0x0600, 0x8000000000000000ull),
                     1);
    ck_assert_int_eq(apf_guest_s390_external(W.e.g, 0, 0x2603, 0x0680, 0x80000000ffffffffull),
                     1);
    ck_assert_int_eq(W.e.sleeps, 0);
    ck_assert_uint_eq(gst(0).bad_host_values, 2);
    ck_assert_uint_eq(gst(0).wake_all, 0); /* 0xffffffff is not a broadcast here */
    stop();
}
END_TEST

/* In CPU 0's window (its 0x0600 taken, the task not yet in the sleep table): CPU 1 takes
 * the completion, which leaves a placeholder from CPU 1's share of the pool, and then goes
 * offline, which frees CPU 1's placeholders. The task must not sleep: nothing else will come
 * for its key. (Found by the guest_transports fuzz target.) */
static void complete_on_cpu1_then_offline_it(struct tenv *e)
{
    (void)e;
    host_complete_to(0, 1, &USER_ON);
    ck_assert_uint_eq(gst(1).placeholders_in_use, 1);
    ck_assert_int_eq(apf_guest_cpu_offline(W.e.g, 1), 0);
    ck_assert_uint_eq(gst(1).placeholders_in_use, 0);
}

START_TEST(test_floating_completion_survives_offline_of_the_cpu_that_took_it)
{
    start();
    switch_to(0, 0x800);
    host_fault(0, 0x40000);
    W.e.in_window = complete_on_cpu1_then_offline_it;
    ck_assert_int_eq(apf_guest_s390_external(W.e.g, 0, APF_S390_EXT_CODE,
                                             APF_S390_EXT_SUB_INIT, W.np_param[0]),
                     1);
    ck_assert_ptr_null(W.e.in_window);
    ck_assert_int_eq(W.e.sleeps, 0); /* it retries its access instead */
    ck_assert_uint_eq(gst(0).retries, 1);
    ck_assert_uint_eq(gst(0).waiting, 0);
    stop();
}
END_TEST

/* The same before CPU 0 has taken its 0x0600 at all (completion before init). */
START_TEST(test_completion_before_init_survives_offline_of_the_cpu_that_took_it)
{
    start();
    switch_to(0, 0x900);
    host_fault(0, 0x40000);
    complete_on_cpu1_then_offline_it(&W.e);
    ck_assert_int_eq(apf_guest_s390_external(W.e.g, 0, APF_S390_EXT_CODE,
                                             APF_S390_EXT_SUB_INIT, W.np_param[0]),
                     1);
    ck_assert_int_eq(W.e.sleeps, 0);
    ck_assert_uint_eq(gst(0).retries, 1);
    stop();
}
END_TEST

static Suite *guest_s390_suite(void)
{
    Suite *s = suite_create("guest_s390");
    TCase *b = tcase_create("backend");
    tcase_add_test(b, test_init_and_cancel_blocks_are_linux_bytes);
    tcase_add_test(b, test_enable_results_and_probe_checks);
    suite_add_tcase(s, b);
    TCase *r = tcase_create("with_host");
    tcase_add_test(r, test_online_establishes_with_linux_masks);
    tcase_add_test(r, test_not_present_on_cpu0_answered_on_cpu1);
    tcase_add_test(r, test_completion_before_initial_interrupt_does_not_sleep);
    tcase_add_test(r, test_cpu_offline_cancels_and_wakes_its_sleepers);
    tcase_add_test(r, test_completion_on_cpu_without_pfault_still_wakes);
    tcase_add_test(r, test_other_interrupts_and_bad_keys);
    tcase_add_test(r, test_floating_completion_survives_offline_of_the_cpu_that_took_it);
    tcase_add_test(r, test_completion_before_init_survives_offline_of_the_cpu_that_took_it);
    suite_add_tcase(s, r);
    return s;
}

APF_CHECK_MAIN(guest_s390_suite)
