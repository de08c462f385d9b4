/* SPDX-License-Identifier: MIT */
/*
 * libapf-host engine (embedder-completion mode) against a fake hypervisor: the fault path,
 * the throttle, the kick rule, wake-all, disable/reset/restore, untrusted input.
 */
#include <stdlib.h>
#include <string.h>

#include "apf/host_kvm_x86.h"
#include "apf_check.h"
#include "fake_vmm.h"

static struct fake_vmm F;
static struct apf_host *H;

static void setup(void)
{
    fake_init(&F);
    H = NULL;
}

static void teardown(void)
{
    apf_host_destroy(H);
    fake_fini(&F);
}

static struct apf_host *ready_host(uint32_t n_vcpus, uint32_t flags)
{
    struct apf_host_config c = fake_config(&F, n_vcpus, 0, &apf_host_transport_kvm_x86);
    H = fake_host_ready(&F, &c, flags);
    ck_assert_ptr_nonnull(H);
    return H;
}

#define EN_INT (APF_EN_ENABLED | APF_EN_DELIVERY_AS_INT)

static struct apf_host_vcpu_stats stats(uint32_t vcpu)
{
    struct apf_host_vcpu_stats s;
    ck_assert_int_eq(apf_host_vcpu_stats(H, vcpu, &s), 0);
    return s;
}

/* The guest consumes a "page ready": reads the token, clears the slot, ACKs. */
static uint32_t guest_take_ready(uint32_t vcpu)
{
    uint32_t tok = fake_area_token(&F, vcpu);
    fake_area_write(&F, vcpu, fake_area_flags(&F, vcpu), 0);
    ck_assert_int_eq(apf_host_vcpu_ack(H, vcpu), 1);
    return tok;
}

/* Fault async and return the token the engine injected. */
static uint32_t fault_async(uint32_t vcpu, uint64_t gpa)
{
    size_t n = fake_count(&F, FAKE_NP, vcpu);
    ck_assert_int_eq(apf_host_vcpu_fault(H, vcpu, gpa, GS_USER), APF_FAULT_ASYNC);
    ck_assert_uint_eq(fake_count(&F, FAKE_NP, vcpu), n + 1);
    fake_area_write(&F, vcpu, 0, fake_area_token(&F, vcpu)); /* guest clears flags */
    return fake_nth(&F, FAKE_NP, vcpu, n)->value;
}

static void assert_state_eq(const struct apf_host_vcpu_state *a,
                            const struct apf_host_vcpu_state *b)
{
    ck_assert_uint_eq(a->enabled, b->enabled);
    ck_assert_uint_eq(a->area_gpa, b->area_gpa);
    ck_assert_uint_eq(a->flags, b->flags);
    ck_assert_uint_eq(a->vector, b->vector);
    ck_assert_uint_eq(a->seq, b->seq);
}

/* ---- create ---------------------------------------------------------------------------------- */

/* Issue 13 finding 5: the queries answer a NULL engine as their siblings do (no crash). */
START_TEST(test_queries_accept_a_null_engine)
{
    size_t per = 12345;
    ck_assert_uint_eq(apf_host_memory(NULL, &per), 0);
    ck_assert_uint_eq(per, 0);
    ck_assert_uint_eq(apf_host_memory(NULL, NULL), 0);
    ck_assert_uint_eq(apf_host_vcpu_count(NULL), 0);
    ck_assert_uint_eq(apf_host_max_outstanding(NULL), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(NULL, 0), APF_EINVAL);
    struct apf_host_vcpu_stats st;
    ck_assert_int_eq(apf_host_vcpu_stats(NULL, 0, &st), APF_EINVAL);
    uint32_t regs[4] = {1, 2, 3, 4};
    ck_assert_int_eq(apf_host_kvm_x86_cpuid(NULL, 0x40000001u, regs), 0);
    ck_assert_int_eq(apf_host_kvm_x86_cpuid(NULL, 0x40000000u, regs), 0);
    ck_assert_uint_eq(regs[0], 1); /* untouched */
    ck_assert_uint_eq(regs[3], 4);
}
END_TEST

START_TEST(test_create_rejects_bad_configs)
{
    struct apf_host *h = (struct apf_host *)0x1;
    struct apf_host_config good = fake_config(&F, 2, 0, &apf_host_transport_kvm_x86);
    struct apf_host_config c;
    struct apf_host_ops ops;

    ck_assert_int_eq(apf_host_create(NULL, &h), APF_EINVAL);
    ck_assert_int_eq(apf_host_create(&good, NULL), APF_EINVAL);
    c = good, c.n_vcpus = 0;
    ck_assert_int_eq(apf_host_create(&c, &h), APF_EINVAL);
    c = good, c.n_vcpus = APF_HOST_MAX_VCPUS + 1;
    ck_assert_int_eq(apf_host_create(&c, &h), APF_EINVAL);
    c = good, c.max_outstanding = APF_HOST_MAX_OUTSTANDING + 1;
    ck_assert_int_eq(apf_host_create(&c, &h), APF_EINVAL);
    c = good, c.transport = NULL;
    ck_assert_int_eq(apf_host_create(&c, &h), APF_EINVAL);
    struct apf_host_transport_ops bad_tp = apf_host_transport_kvm_x86;
    bad_tp.ready_post = NULL; /* every op but `enabled` and `reset` is required */
    c = good, c.transport = &bad_tp;
    ck_assert_int_eq(apf_host_create(&c, &h), APF_EINVAL);
    bad_tp = apf_host_transport_kvm_x86;
    bad_tp.valid_flags = 0; /* ENABLED must be valid */
    ck_assert_int_eq(apf_host_create(&c, &h), APF_EINVAL);
    c = good, c.reserved[7] = 1; /* an unknown non-zero tail is refused */
    ck_assert_int_eq(apf_host_create(&c, &h), APF_EINVAL);
    c = good, c.fallback = 2;
    ck_assert_int_eq(apf_host_create(&c, &h), APF_EINVAL);
    c = good, c.page_shift = 11;
    ck_assert_int_eq(apf_host_create(&c, &h), APF_EINVAL);
    c = good, c.n_workers = APF_HOST_MAX_WORKERS + 1;
    ck_assert_int_eq(apf_host_create(&c, &h), APF_EINVAL);
    ops = F.ops, ops.submit = NULL; /* embedder mode needs submit */
    c = good, c.ops = &ops;
    ck_assert_int_eq(apf_host_create(&c, &h), APF_EINVAL);
    ops = F.ops, ops.resolve = NULL; /* pool mode needs resolve */
    c = good, c.ops = &ops, c.n_workers = 1;
    ck_assert_int_eq(apf_host_create(&c, &h), APF_EINVAL);
    ops = F.ops, ops.kick = NULL;
    c = good, c.ops = &ops;
    ck_assert_int_eq(apf_host_create(&c, &h), APF_EINVAL);
    ops = F.ops, ops.read_guest = NULL;
    c = good, c.ops = &ops;
    ck_assert_int_eq(apf_host_create(&c, &h), APF_EINVAL);
    ck_assert_ptr_eq(h, (struct apf_host *)0x1); /* untouched by every failure */
}
END_TEST

/* Every allocation made by create is scripted to fail in turn: ENOMEM, and nothing leaks. */
START_TEST(test_create_survives_each_allocation_failure)
{
    for (uint32_t workers = 0; workers <= 2; workers += 2) {
        struct counting_alloc probe;
        counting_alloc_init(&probe, 0);
        struct apf_host_config c = fake_config(&F, 4, workers, &apf_host_transport_kvm_x86);
        c.alloc = &probe.a;
        struct apf_host *h;
        ck_assert_int_eq(apf_host_create(&c, &h), 0);
        long n_allocs = atomic_load(&probe.calls);
        ck_assert_int_ge(n_allocs, 3);
        apf_host_destroy(h);
        ck_assert_int_eq(atomic_load(&probe.live_blocks), 0);

        for (long k = 1; k <= n_allocs; k++) {
            struct counting_alloc ca;
            counting_alloc_init(&ca, k);
            c.alloc = &ca.a;
            h = NULL;
            ck_assert_int_eq(apf_host_create(&c, &h), APF_ENOMEM);
            ck_assert_ptr_null(h);
            ck_assert_int_eq(atomic_load(&ca.live_blocks), 0);
            ck_assert_int_eq(atomic_load(&ca.live_bytes), 0);
        }
    }
}
END_TEST

START_TEST(test_memory_per_vcpu_within_16k_at_default_limit)
{
    struct apf_host_config c = fake_config(&F, 64, 0, &apf_host_transport_kvm_x86);
    ck_assert_int_eq(apf_host_create(&c, &H), 0);
    size_t per = 0, total = apf_host_memory(H, &per);
    ck_assert_uint_le(per, 16 * 1024);
    ck_assert_uint_ge(total, 64 * per / 2);
    ck_assert_uint_eq(apf_host_max_outstanding(H), 64);
    ck_assert_uint_eq(apf_host_vcpu_count(H), 64);
}
END_TEST

/* ---- enable and its validation -------------------------------------------------------------------- */

START_TEST(test_enable_queues_one_wake_all)
{
    struct apf_host_config c = fake_config(&F, 1, 0, &apf_host_transport_kvm_x86);
    ck_assert_int_eq(apf_host_create(&c, &H), 0);
    ck_assert_int_eq(apf_host_vcpu_set_vector(H, 0, 0xec), 0);
    ck_assert_int_eq(apf_host_vcpu_enable(H, 0, FAKE_AREA(0), EN_INT), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(H, 0), 1);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_token(&F, 0), APF_TOKEN_WAKE_ALL);
    ck_assert_uint_eq(fake_count(&F, FAKE_READY, 0), 1);
    ck_assert_uint_eq(fake_nth(&F, FAKE_READY, 0, 0)->value, 0xec);
    guest_take_ready(0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 0); /* exactly one */
    ck_assert_uint_eq(stats(0).wake_all_delivered, 1);
}
END_TEST

START_TEST(test_enable_rejects_bad_input_and_changes_nothing)
{
    struct apf_host_config c = fake_config(&F, 1, 0, &apf_host_transport_kvm_x86);
    ck_assert_int_eq(apf_host_create(&c, &H), 0);
    struct apf_host_vcpu_state before, after;
    ck_assert_int_eq(apf_host_vcpu_save(H, 0, &before), 0);

    /* No vector set yet. */
    ck_assert_int_eq(apf_host_vcpu_enable(H, 0, FAKE_AREA(0), EN_INT), APF_EINVAL);
    ck_assert_int_eq(apf_host_vcpu_set_vector(H, 0, 31), APF_EINVAL);
    ck_assert_int_eq(apf_host_vcpu_set_vector(H, 0, 256), APF_EINVAL);
    ck_assert_int_eq(apf_host_vcpu_save(H, 0, &after), 0);
    assert_state_eq(&before, &after);

    ck_assert_int_eq(apf_host_vcpu_set_vector(H, 0, 0xec), 0);
    ck_assert_int_eq(apf_host_vcpu_save(H, 0, &before), 0);
    ck_assert_int_eq(apf_host_vcpu_enable(H, 0, FAKE_AREA(0) + 8, EN_INT), APF_EINVAL);
    ck_assert_int_eq(apf_host_vcpu_enable(H, 0, FAKE_MEM_SIZE, EN_INT), APF_EFAULT);
    ck_assert_int_eq(apf_host_vcpu_enable(H, 0, 0xffffffffffffffc0ull, EN_INT), APF_EFAULT);
    ck_assert_int_eq(apf_host_vcpu_enable(H, 0, FAKE_AREA(0), EN_INT | 0x10), APF_EINVAL);
    ck_assert_int_eq(apf_host_vcpu_enable(H, 0, FAKE_AREA(0), 0x100), APF_EINVAL);
    ck_assert_int_eq(apf_host_vcpu_enable(H, 1, FAKE_AREA(0), EN_INT), APF_EINVAL);
    ck_assert_int_eq(apf_host_vcpu_save(H, 0, &after), 0);
    assert_state_eq(&before, &after);
    ck_assert_int_eq(apf_host_vcpu_enabled(H, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 0); /* no wake-all queued */
    ck_assert_uint_eq(fake_count(&F, FAKE_READY, 0), 0);
}
END_TEST

START_TEST(test_unknown_vcpu_is_rejected_everywhere)
{
    ready_host(2, EN_INT);
    struct apf_host_vcpu_state st;
    struct apf_host_vcpu_stats s;
    ck_assert_int_eq(apf_host_vcpu_fault(H, 2, 0x5000, GS_USER), APF_EINVAL);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 2, GS_USER), APF_EINVAL);
    ck_assert_int_eq(apf_host_vcpu_ack(H, 2), APF_EINVAL);
    ck_assert_int_eq(apf_host_vcpu_halted(H, 2), APF_EINVAL);
    ck_assert_int_eq(apf_host_vcpu_disable(H, 99), APF_EINVAL);
    ck_assert_int_eq(apf_host_vcpu_reset(H, 0xffffffffu), APF_EINVAL);
    ck_assert_int_eq(apf_host_vcpu_set_vector(H, 2, 0xec), APF_EINVAL);
    ck_assert_int_eq(apf_host_vcpu_save(H, 2, &st), APF_EINVAL);
    ck_assert_int_eq(apf_host_vcpu_restore(H, 2, &st), APF_EINVAL);
    ck_assert_int_eq(apf_host_vcpu_stats(H, 2, &s), APF_EINVAL);
    ck_assert_int_eq(apf_host_vcpu_enabled(H, 2), APF_EINVAL);
    ck_assert_int_eq(apf_host_complete(H, 2, 0x1002, 0), APF_EINVAL);
    ck_assert_uint_eq(F.nlog, 0);
}
END_TEST

/* ---- the fault path ---------------------------------------------------------------------------- */

START_TEST(test_fault_async_writes_reason_injects_then_submits)
{
    ready_host(2, EN_INT);
    ck_assert_int_eq(apf_host_vcpu_fault(H, 1, 0x9000, GS_USER), APF_FAULT_ASYNC);
    ck_assert_uint_eq(fake_area_flags(&F, 1), APF_REASON_NOT_PRESENT);
    ck_assert_uint_eq(fake_area_token(&F, 1), 0); /* x86: the token travels in CR2 */
    const struct fake_log_entry *np = fake_nth(&F, FAKE_NP, 1, 0);
    const struct fake_log_entry *sub = fake_nth(&F, FAKE_SUBMIT, 1, 0);
    ck_assert_ptr_nonnull(np);
    ck_assert_ptr_nonnull(sub);
    ck_assert_uint_eq(np->value, sub->value);
    ck_assert_uint_eq(sub->gpa, 0x9000);
    /* "not present" before the work starts */
    ck_assert_int_lt(fake_index(&F, FAKE_NP, 1, 0), fake_index(&F, FAKE_SUBMIT, 1, 0));
    /* vCPU 1's first token after the wake-all: KVM format, seq 1 */
    ck_assert_uint_eq(np->value, 0x1001);
    ck_assert_uint_eq(stats(1).faults_async, 1);
    ck_assert_uint_eq(stats(1).outstanding, 1);
}
END_TEST

START_TEST(test_tokens_are_kvm_sequence)
{
    ready_host(1, EN_INT);
    for (uint32_t i = 1; i <= 5; i++) {
        uint32_t tok = fault_async(0, 0x10000 + i * 0x1000);
        ck_assert_uint_eq(tok, i << 12);
    }
}
END_TEST

START_TEST(test_cannot_go_async_returns_sync)
{
    ready_host(1, EN_INT);
    /* interrupts off: not even a halt could be woken */
    ck_assert_int_eq(apf_host_vcpu_fault(H, 0, 0x5000, GS_USER & ~APF_GS_IRQ_ON), APF_FAULT_SYNC);
    ck_assert_int_eq(apf_host_vcpu_fault(H, 0, 0x5000, GS_USER | APF_GS_EXC_PENDING),
                     APF_FAULT_SYNC);
    ck_assert_uint_eq(stats(0).faults_sync, 2);
    ck_assert_uint_eq(fake_count(&F, FAKE_NP, 0) + fake_count(&F, FAKE_SUBMIT, 0), 0);
    ck_assert_uint_eq(fake_area_flags(&F, 0), 0);
}
END_TEST

START_TEST(test_fault_with_apf_off_is_sync)
{
    struct apf_host_config c = fake_config(&F, 1, 0, &apf_host_transport_kvm_x86);
    ck_assert_int_eq(apf_host_create(&c, &H), 0);
    ck_assert_int_eq(apf_host_vcpu_fault(H, 0, 0x5000, GS_USER), APF_FAULT_SYNC);
    ck_assert_uint_eq(F.nlog, 0);
}
END_TEST

START_TEST(test_limit_reached_is_sync)
{
    struct apf_host_config c = fake_config(&F, 1, 0, &apf_host_transport_kvm_x86);
    c.max_outstanding = 3;
    H = fake_host_ready(&F, &c, EN_INT);
    ck_assert_ptr_nonnull(H);
    for (int i = 0; i < 3; i++)
        fault_async(0, 0x20000 + (uint64_t)i * 0x1000);
    ck_assert_int_eq(apf_host_vcpu_fault(H, 0, 0x30000, GS_USER), APF_FAULT_SYNC);
    ck_assert_uint_eq(stats(0).outstanding, 3);
    ck_assert_uint_eq(stats(0).outstanding_hwm, 3);
}
END_TEST

START_TEST(test_second_fault_on_frame_in_flight_halts_without_new_work)
{
    ready_host(1, EN_INT);
    uint32_t tok = fault_async(0, 0x7000);
    /* same frame, other offset */
    ck_assert_int_eq(apf_host_vcpu_fault(H, 0, 0x7abc, GS_USER), APF_FAULT_HALT);
    ck_assert_uint_eq(fake_count(&F, FAKE_SUBMIT, 0), 1);
    ck_assert_uint_eq(fake_count(&F, FAKE_NP, 0), 1);
    ck_assert_int_eq(apf_host_vcpu_halted(H, 0), 1);
    ck_assert_uint_eq(stats(0).faults_dedup, 1);
    size_t kicks = atomic_load(&F.kicks);
    ck_assert_int_eq(apf_host_complete(H, 0, tok, 0), 0);
    ck_assert_uint_eq(atomic_load(&F.kicks), kicks + 1); /* a halted vCPU is always kicked */
    ck_assert_int_eq(apf_host_vcpu_halted(H, 0), 0);
    /* and the frame's work is gone from the dedup table: a new fault starts new work */
    ck_assert_int_eq(apf_host_vcpu_fault(H, 0, 0x7000, GS_USER), APF_FAULT_ASYNC);
    ck_assert_uint_eq(fake_count(&F, FAKE_SUBMIT, 0), 2);
}
END_TEST

START_TEST(test_kernel_mode_without_send_always_halts_and_owes_no_ready)
{
    ready_host(1, EN_INT);
    ck_assert_int_eq(apf_host_vcpu_fault(H, 0, 0x8000, GS_KERNEL), APF_FAULT_HALT);
    ck_assert_uint_eq(fake_count(&F, FAKE_NP, 0), 0);
    ck_assert_uint_eq(fake_area_flags(&F, 0), 0);
    const struct fake_log_entry *sub = fake_nth(&F, FAKE_SUBMIT, 0, 0);
    ck_assert_ptr_nonnull(sub); /* the work starts: KVM's artificial halt */
    ck_assert_int_eq(apf_host_vcpu_halted(H, 0), 1);
    ck_assert_int_eq(apf_host_complete(H, 0, sub->value, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_halted(H, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 0);
    ck_assert_uint_eq(fake_count(&F, FAKE_READY, 0), 0); /* never a ready for it */
    ck_assert_uint_eq(fake_area_token(&F, 0), 0);
    ck_assert_uint_eq(stats(0).outstanding, 0);
}
END_TEST

START_TEST(test_send_always_delivers_in_kernel_mode)
{
    ready_host(1, EN_INT | APF_EN_SEND_ALWAYS);
    ck_assert_int_eq(apf_host_vcpu_fault(H, 0, 0x8000, GS_KERNEL), APF_FAULT_ASYNC);
}
END_TEST

START_TEST(test_paging_off_nested_and_masked_are_undeliverable)
{
    ready_host(1, EN_INT | APF_EN_SEND_ALWAYS);
    ck_assert_int_eq(apf_host_vcpu_fault(H, 0, 0x10000, GS_USER & ~APF_GS_PAGING), APF_FAULT_HALT);
    ck_assert_int_eq(apf_host_vcpu_fault(H, 0, 0x11000, GS_USER | APF_GS_NESTED), APF_FAULT_HALT);
    ck_assert_int_eq(apf_host_vcpu_fault(H, 0, 0x12000, GS_USER | APF_GS_NP_MASKED),
                     APF_FAULT_HALT);
    ck_assert_uint_eq(fake_count(&F, FAKE_NP, 0), 0);
    ck_assert_uint_eq(fake_count(&F, FAKE_SUBMIT, 0), 3);
}
END_TEST

START_TEST(test_nested_with_pf_vmexit_delivers)
{
    ready_host(1, EN_INT | APF_EN_DELIVERY_AS_PF_VMEXIT);
    ck_assert_int_eq(apf_host_vcpu_fault(H, 0, 0x11000, GS_USER | APF_GS_NESTED), APF_FAULT_ASYNC);
}
END_TEST

START_TEST(test_fallback_sync_starts_no_work)
{
    struct apf_host_config c = fake_config(&F, 1, 0, &apf_host_transport_kvm_x86);
    c.fallback = APF_HOST_FALLBACK_SYNC;
    H = fake_host_ready(&F, &c, EN_INT);
    ck_assert_ptr_nonnull(H);
    ck_assert_int_eq(apf_host_vcpu_fault(H, 0, 0x8000, GS_KERNEL), APF_FAULT_SYNC);
    ck_assert_uint_eq(fake_count(&F, FAKE_SUBMIT, 0), 0);
    ck_assert_uint_eq(stats(0).outstanding, 0);
}
END_TEST

/* ---- completion, throttle, kick -------------------------------------------------------------------- */

START_TEST(test_ready_goes_out_after_completion)
{
    ready_host(1, EN_INT);
    uint32_t tok = fault_async(0, 0x9000);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 0); /* not done yet */
    ck_assert_int_eq(apf_host_complete(H, 0, tok, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_token(&F, 0), tok);
    ck_assert_uint_eq(fake_nth(&F, FAKE_READY, 0, 0)->value, 0xec);
    ck_assert_uint_eq(guest_take_ready(0), tok);
    ck_assert_uint_eq(stats(0).ready_delivered, 1);
    ck_assert_uint_eq(stats(0).outstanding, 0);
}
END_TEST

START_TEST(test_ready_waits_for_slot_free_and_ack)
{
    ready_host(1, EN_INT);
    uint32_t t1 = fault_async(0, 0x9000);
    uint32_t t2 = fault_async(0, 0xa000);
    ck_assert_int_eq(apf_host_complete(H, 0, t1, 0), 0);
    ck_assert_int_eq(apf_host_complete(H, 0, t2, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_token(&F, 0), t1); /* completion order */
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 0); /* one in flight */

    /* ACK without clearing the slot: still waits (slot not free) */
    ck_assert_int_eq(apf_host_vcpu_ack(H, 0), 1);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 0);
    ck_assert_uint_eq(fake_area_token(&F, 0), t1);

    /* slot cleared but (second) ACK still missing after a new ready... first: clear */
    fake_area_write(&F, 0, 0, 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 1); /* ACK pulled the next */
    ck_assert_uint_eq(fake_area_token(&F, 0), t2);
    ck_assert_uint_eq(fake_count(&F, FAKE_READY, 0), 2);
}
END_TEST

START_TEST(test_ready_waits_for_ack_even_when_slot_is_free)
{
    ready_host(1, EN_INT);
    uint32_t t1 = fault_async(0, 0x9000);
    uint32_t t2 = fault_async(0, 0xa000);
    apf_host_complete(H, 0, t1, 0);
    apf_host_complete(H, 0, t2, 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 1);
    fake_area_write(&F, 0, 0, 0); /* guest consumed, but has not ACKed */
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 0);
    ck_assert_uint_eq(fake_area_token(&F, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_ack(H, 0), 1);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_token(&F, 0), t2);
}
END_TEST

START_TEST(test_no_dequeue_while_irqchip_disabled)
{
    ready_host(1, EN_INT);
    uint32_t t = fault_async(0, 0x9000);
    apf_host_complete(H, 0, t, 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER & ~APF_GS_IRQCHIP_ON), 0);
    ck_assert_uint_eq(fake_area_token(&F, 0), 0);
    ck_assert_uint_eq(stats(0).ready_queue, 1);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_token(&F, 0), t);
}
END_TEST

START_TEST(test_kick_only_on_empty_to_nonempty_without_pending_ready)
{
    ready_host(1, EN_INT);
    uint32_t t[4];
    for (int i = 0; i < 4; i++)
        t[i] = fault_async(0, 0x40000 + (uint64_t)i * 0x1000);
    ck_assert_int_eq(apf_host_complete(H, 0, t[0], 0), 0);
    ck_assert_uint_eq(atomic_load(&F.kicks), 1); /* empty -> non-empty */
    ck_assert_int_eq(apf_host_complete(H, 0, t[1], 0), 0);
    ck_assert_uint_eq(atomic_load(&F.kicks), 1); /* queue was not empty */
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 1); /* t0 in flight */
    ck_assert_int_eq(apf_host_complete(H, 0, t[2], 0), 0);
    /* the completion queue was empty again, but a ready is pending: the ACK will pull */
    ck_assert_uint_eq(atomic_load(&F.kicks), 1);
    guest_take_ready(0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 1); /* t1 */
    guest_take_ready(0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 1); /* t2 */
    guest_take_ready(0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 0);
    ck_assert_int_eq(apf_host_complete(H, 0, t[3], 0), 0);
    ck_assert_uint_eq(atomic_load(&F.kicks), 2); /* empty, nothing pending: kick */
    ck_assert_uint_eq(stats(0).kicks, 2);
}
END_TEST

START_TEST(test_ack_with_nothing_pending_is_a_noop)
{
    ready_host(1, EN_INT);
    struct apf_host_vcpu_state before, after;
    apf_host_vcpu_save(H, 0, &before);
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(apf_host_vcpu_ack(H, 0), 0);
    apf_host_vcpu_save(H, 0, &after);
    assert_state_eq(&before, &after);
    ck_assert_uint_eq(stats(0).acks_spurious, 1000);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 0);
    ck_assert_uint_eq(F.nlog, 0);
}
END_TEST

START_TEST(test_complete_rejects_bad_tokens_and_changes_nothing)
{
    ready_host(2, EN_INT);
    uint32_t t = fault_async(0, 0x9000);
    ck_assert_int_eq(apf_host_complete(H, 0, 0, 0), APF_EINVAL);
    ck_assert_int_eq(apf_host_complete(H, 0, APF_TOKEN_WAKE_ALL, 0), APF_EINVAL);
    ck_assert_int_eq(apf_host_complete(H, 1, t, 0), APF_EINVAL);     /* other vCPU's token */
    ck_assert_int_eq(apf_host_complete(H, 0, t, 1), APF_EINVAL);     /* positive status */
    ck_assert_int_eq(apf_host_complete(H, 0, t + 0x1000, 0), APF_ENOENT); /* never issued */
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 0);
    ck_assert_uint_eq(stats(0).outstanding, 1);
    ck_assert_uint_eq(atomic_load(&F.kicks), 0);
    ck_assert_int_eq(apf_host_complete(H, 0, t, 0), 0);
    ck_assert_int_eq(apf_host_complete(H, 0, t, 0), APF_EALREADY); /* twice */
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 1);
    guest_take_ready(0);
    /* stale: the slot is free again (and later reused with a new token) */
    ck_assert_int_eq(apf_host_complete(H, 0, t, 0), APF_ENOENT);
    ck_assert_uint_eq(fake_count(&F, FAKE_READY, 0), 1);
}
END_TEST

START_TEST(test_resolve_failure_wakes_then_retries_sync)
{
    ready_host(1, EN_INT);
    uint32_t t = fault_async(0, 0x9000);
    ck_assert_int_eq(apf_host_complete(H, 0, t, APF_EIO), 0);
    /* the sleeping task must still be woken, or it would hang */
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 1);
    ck_assert_uint_eq(guest_take_ready(0), t);
    ck_assert_uint_eq(stats(0).resolve_failures, 1);
    /* its retry goes synchronous, so the embedder's sync path reports the error */
    ck_assert_int_eq(apf_host_vcpu_fault(H, 0, 0x9008, GS_USER), APF_FAULT_SYNC);
    /* once: the next fault on that frame may go async again */
    ck_assert_int_eq(apf_host_vcpu_fault(H, 0, 0x9008, GS_USER), APF_FAULT_ASYNC);
}
END_TEST

/* ---- wake-all ---------------------------------------------------------------------------------- */

START_TEST(test_wake_all_covers_not_present_delivered_before_it)
{
    /* Enable with the APIC off: the wake-all stays queued while a fault goes async. */
    struct apf_host_config c = fake_config(&F, 1, 0, &apf_host_transport_kvm_x86);
    ck_assert_int_eq(apf_host_create(&c, &H), 0);
    apf_host_vcpu_set_vector(H, 0, 0xec);
    ck_assert_int_eq(apf_host_vcpu_enable(H, 0, FAKE_AREA(0), EN_INT), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER & ~APF_GS_IRQCHIP_ON), 0);
    uint32_t t1 = fault_async(0, 0x9000);
    uint32_t t2 = fault_async(0, 0xa000);
    apf_host_complete(H, 0, t1, 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 1);
    ck_assert_uint_eq(guest_take_ready(0), APF_TOKEN_WAKE_ALL);
    apf_host_complete(H, 0, t2, 0);
    /* neither t1 (queued behind the wake-all) nor t2 (running) gets a ready */
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 0);
    ck_assert_uint_eq(fake_count(&F, FAKE_READY, 0), 1);
    ck_assert_uint_eq(stats(0).outstanding, 0);
}
END_TEST

/* ---- disable, reset ----------------------------------------------------------------------------- */

START_TEST(test_disable_with_work_in_flight_drops_it_without_leak)
{
    ready_host(1, EN_INT);
    uint32_t t1 = fault_async(0, 0x9000);
    uint32_t t2 = fault_async(0, 0xa000);
    uint32_t t3 = fault_async(0, 0xb000);
    apf_host_complete(H, 0, t1, 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 1); /* t1 in flight */
    apf_host_complete(H, 0, t2, 0);                                 /* t2 queued */
    ck_assert_int_eq(apf_host_vcpu_disable(H, 0), 2);               /* t2 and t3 dropped */
    ck_assert_int_eq(apf_host_vcpu_enabled(H, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_disable(H, 0), 0); /* again: no-op */
    /* late completion: accepted, harmless, discarded */
    ck_assert_int_eq(apf_host_complete(H, 0, t3, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 0);
    ck_assert_uint_eq(fake_count(&F, FAKE_READY, 0), 1);
    struct apf_host_vcpu_stats s = stats(0);
    ck_assert_uint_eq(s.outstanding, 0);
    ck_assert_uint_eq(s.completions_dropped, 2);
    /* all slots back: re-enable and use all 64 */
    fake_area_write(&F, 0, 0, 0);
    ck_assert_int_eq(apf_host_vcpu_enable(H, 0, FAKE_AREA(0), EN_INT), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 1);
    guest_take_ready(0);
    for (int i = 0; i < 64; i++)
        fault_async(0, 0x100000 - 0x1000 * (uint64_t)(i + 1));
    ck_assert_int_eq(apf_host_vcpu_fault(H, 0, 0x50000, GS_USER), APF_FAULT_SYNC);
}
END_TEST

START_TEST(test_reenable_drops_outstanding_and_queues_wake_all)
{
    ready_host(1, EN_INT);
    uint32_t t = fault_async(0, 0x9000);
    ck_assert_int_eq(apf_host_vcpu_enable(H, 0, FAKE_AREA(0), EN_INT), 0);
    apf_host_complete(H, 0, t, 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 1);
    ck_assert_uint_eq(guest_take_ready(0), APF_TOKEN_WAKE_ALL);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 0);
    ck_assert_uint_eq(stats(0).completions_dropped, 1);
}
END_TEST

START_TEST(test_reset_forgets_vector_and_halt)
{
    ready_host(1, EN_INT);
    fault_async(0, 0x9000);
    ck_assert_int_eq(apf_host_vcpu_fault(H, 0, 0x9000, GS_USER), APF_FAULT_HALT);
    ck_assert_int_eq(apf_host_vcpu_reset(H, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_halted(H, 0), 0);
    struct apf_host_vcpu_state st;
    apf_host_vcpu_save(H, 0, &st);
    ck_assert_uint_eq(st.enabled, 0);
    ck_assert_uint_eq(st.vector, 0);
    ck_assert_uint_eq(st.area_gpa, 0);
    ck_assert_int_eq(apf_host_vcpu_enable(H, 0, FAKE_AREA(0), EN_INT), APF_EINVAL);
}
END_TEST

/* ---- migration ----------------------------------------------------------------------------------- */

START_TEST(test_restore_queues_wake_all_and_keeps_tokens_fresh)
{
    ready_host(1, EN_INT);
    for (int i = 0; i < 5; i++)
        fault_async(0, 0x20000 + (uint64_t)i * 0x1000);
    struct apf_host_vcpu_state st;
    ck_assert_int_eq(apf_host_vcpu_save(H, 0, &st), 0);
    ck_assert_uint_eq(st.version, APF_HOST_STATE_VERSION);
    ck_assert_uint_eq(st.enabled, 1);
    ck_assert_uint_eq(st.area_gpa, FAKE_AREA(0));
    ck_assert_uint_eq(st.vector, 0xec);
    ck_assert_uint_eq(st.seq, 6);

    /* destination */
    struct apf_host *src = H;
    struct apf_host_config c = fake_config(&F, 1, 0, &apf_host_transport_kvm_x86);
    ck_assert_int_eq(apf_host_create(&c, &H), 0);
    fake_log_clear(&F);
    fake_area_write(&F, 0, 0, 0);
    ck_assert_int_eq(apf_host_vcpu_restore(H, 0, &st), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(H, 0), 1);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 1);
    ck_assert_uint_eq(guest_take_ready(0), APF_TOKEN_WAKE_ALL);
    /* the sequence moves on from where the source was: no token value the guest may still
     * remember comes back soon */
    uint32_t seq = fault_async(0, 0x9000) >> 12;
    ck_assert_uint_ge(seq, 6);
    ck_assert_uint_lt(seq, 6 + 64);
    apf_host_destroy(src);
}
END_TEST

START_TEST(test_restore_rejects_bad_state_and_changes_nothing)
{
    ready_host(1, EN_INT);
    uint32_t t = fault_async(0, 0x9000);
    struct apf_host_vcpu_state good, before, after, bad;
    apf_host_vcpu_save(H, 0, &good);
    before = good;
    bad = good, bad.version = 2;
    ck_assert_int_eq(apf_host_vcpu_restore(H, 0, &bad), APF_EINVAL);
    bad = good, bad.reserved = 1;
    ck_assert_int_eq(apf_host_vcpu_restore(H, 0, &bad), APF_EINVAL);
    bad = good, bad.vector = 14;
    ck_assert_int_eq(apf_host_vcpu_restore(H, 0, &bad), APF_EINVAL);
    bad = good, bad.area_gpa = FAKE_AREA(0) + 4;
    ck_assert_int_eq(apf_host_vcpu_restore(H, 0, &bad), APF_EINVAL);
    bad = good, bad.area_gpa = 0x7fff0000000ull;
    ck_assert_int_eq(apf_host_vcpu_restore(H, 0, &bad), APF_EFAULT);
    bad = good, bad.flags = 0x30 | APF_EN_ENABLED;
    ck_assert_int_eq(apf_host_vcpu_restore(H, 0, &bad), APF_EINVAL);
    bad = good, bad.enabled = 2;
    ck_assert_int_eq(apf_host_vcpu_restore(H, 0, &bad), APF_EINVAL);
    bad = good, bad.seq = 1u << 20;
    ck_assert_int_eq(apf_host_vcpu_restore(H, 0, &bad), APF_EINVAL);
    bad = good, bad.enabled = 0; /* off, but with an area: inconsistent */
    ck_assert_int_eq(apf_host_vcpu_restore(H, 0, &bad), APF_EINVAL);
    ck_assert_int_eq(apf_host_vcpu_restore(H, 0, NULL), APF_EINVAL);
    apf_host_vcpu_save(H, 0, &after);
    assert_state_eq(&before, &after);
    /* the outstanding fault survived all of it */
    ck_assert_uint_eq(stats(0).outstanding, 1);
    ck_assert_int_eq(apf_host_complete(H, 0, t, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_token(&F, 0), t);
}
END_TEST

/* ---- guest memory ----------------------------------------------------------------------------------- */

START_TEST(test_area_write_failure_falls_back)
{
    /* The area lives in guest memory the guest controls; if it stops being accessible
     * (here: the fake's memory shrinks), "not present" cannot be delivered: fallback. */
    ready_host(1, EN_INT);
    F.mem_size = FAKE_AREA(0); /* area now outside guest RAM */
    ck_assert_int_eq(apf_host_vcpu_fault(H, 0, 0x500, GS_USER), APF_FAULT_HALT);
    ck_assert_uint_eq(fake_count(&F, FAKE_NP, 0), 0);
    const struct fake_log_entry *sub = fake_nth(&F, FAKE_SUBMIT, 0, 0);
    ck_assert_ptr_nonnull(sub);
    apf_host_complete(H, 0, sub->value, 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 0);
    ck_assert_int_eq(apf_host_vcpu_halted(H, 0), 0);
    F.mem_size = FAKE_MEM_SIZE;
}
END_TEST

/* ---- arm64 conventions ----------------------------------------------------------------------------- */

START_TEST(test_arm64_area_carries_reason_and_token)
{
    struct apf_host_config c = fake_config(&F, 1, 0, &apf_host_transport_kvm_arm64);
    H = fake_host_ready(&F, &c, APF_EN_ENABLED);
    ck_assert_ptr_nonnull(H);
    ck_assert_int_eq(apf_host_vcpu_fault(H, 0, 0x9000, GS_USER), APF_FAULT_ASYNC);
    uint32_t t = fake_nth(&F, FAKE_NP, 0, 0)->value;
    ck_assert_uint_eq(fake_area_flags(&F, 0), APF_REASON_NOT_PRESENT);
    ck_assert_uint_eq(fake_area_token(&F, 0), t);
    /* not consumed yet: the next "not present" cannot be delivered */
    ck_assert_int_eq(apf_host_vcpu_fault(H, 0, 0xa000, GS_USER), APF_FAULT_HALT);
    ck_assert_uint_eq(fake_area_token(&F, 0), t);
    fake_area_write(&F, 0, 0, 0);
    apf_host_complete(H, 0, t, 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_flags(&F, 0), APF_REASON_READY);
    ck_assert_uint_eq(fake_area_token(&F, 0), t);
    ck_assert_uint_eq(fake_nth(&F, FAKE_READY, 0, 0)->value, 20);
}
END_TEST

START_TEST(test_arm64_vector_is_a_ppi)
{
    struct apf_host_config c = fake_config(&F, 1, 0, &apf_host_transport_kvm_arm64);
    ck_assert_int_eq(apf_host_create(&c, &H), 0);
    ck_assert_int_eq(apf_host_vcpu_set_vector(H, 0, 15), APF_EINVAL);
    ck_assert_int_eq(apf_host_vcpu_set_vector(H, 0, 32), APF_EINVAL);
    ck_assert_int_eq(apf_host_vcpu_set_vector(H, 0, 16), 0);
    ck_assert_int_eq(apf_host_vcpu_set_vector(H, 0, 31), 0);
    ck_assert_int_eq(apf_host_vcpu_enable(H, 0, FAKE_AREA(0), APF_EN_ENABLED | APF_EN_DELIVERY_AS_INT),
                     APF_EINVAL); /* an x86-only flag */
}
END_TEST

/* ---- trace ------------------------------------------------------------------------------------------ */

struct trace_buf {
    struct apf_trace_event ev[256];
    int n;
};

static void collect(void *ctx, const struct apf_trace_event *ev)
{
    struct trace_buf *b = ctx;
    if (b->n < 256)
        b->ev[b->n++] = *ev;
}

START_TEST(test_trace_of_a_session_passes_the_checker)
{
    static struct trace_buf tb;
    tb.n = 0;
    struct apf_host_config c = fake_config(&F, 1, 0, &apf_host_transport_kvm_x86);
    c.trace = collect;
    c.trace_ctx = &tb;
    H = fake_host_ready(&F, &c, EN_INT);
    ck_assert_ptr_nonnull(H);
    uint32_t t1 = fault_async(0, 0x9000);
    uint32_t t2 = fault_async(0, 0xa000);
    ck_assert_int_eq(apf_host_vcpu_fault(H, 0, 0xa000, GS_USER), APF_FAULT_HALT);
    apf_host_complete(H, 0, t2, 0);
    apf_host_complete(H, 0, t1, 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 1);
    guest_take_ready(0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(H, 0, GS_USER), 1);
    guest_take_ready(0);

    static unsigned char mem[1 << 16];
    struct apf_trace_checker *chk = apf_trace_checker_init(mem, sizeof(mem), 1, 64);
    ck_assert_ptr_nonnull(chk);
    int kinds[16] = {0};
    for (int i = 0; i < tb.n; i++) {
        ck_assert_int_eq(apf_trace_checker_feed(chk, &tb.ev[i]), 0);
        if (tb.ev[i].kind < 16)
            kinds[tb.ev[i].kind]++;
    }
    ck_assert_int_eq(apf_trace_checker_finish(chk), 0);
    ck_assert_int_eq(kinds[APF_TRACE_HOST_ENABLE], 1);
    ck_assert_int_eq(kinds[APF_TRACE_HOST_NOT_PRESENT], 2);
    ck_assert_int_eq(kinds[APF_TRACE_HOST_HALT], 1);
    ck_assert_int_eq(kinds[APF_TRACE_HOST_DONE], 2);
    ck_assert_int_eq(kinds[APF_TRACE_HOST_READY], 3); /* wake-all + 2 */
    ck_assert_int_eq(kinds[APF_TRACE_HOST_ACK], 3);
    /* the readies follow completion order: t2 first */
    uint32_t readies[3];
    int r = 0;
    for (int i = 0; i < tb.n; i++)
        if (tb.ev[i].kind == APF_TRACE_HOST_READY)
            readies[r++] = tb.ev[i].token;
    ck_assert_uint_eq(readies[0], APF_TOKEN_WAKE_ALL);
    ck_assert_uint_eq(readies[1], t2);
    ck_assert_uint_eq(readies[2], t1);
}
END_TEST

static Suite *engine_suite(void)
{
    Suite *s = suite_create("host_engine");
    TCase *tc = tcase_create("create");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_create_rejects_bad_configs);
    tcase_add_test(tc, test_queries_accept_a_null_engine);
    tcase_add_test(tc, test_create_survives_each_allocation_failure);
    tcase_add_test(tc, test_memory_per_vcpu_within_16k_at_default_limit);
    suite_add_tcase(s, tc);

    tc = tcase_create("control");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_enable_queues_one_wake_all);
    tcase_add_test(tc, test_enable_rejects_bad_input_and_changes_nothing);
    tcase_add_test(tc, test_unknown_vcpu_is_rejected_everywhere);
    tcase_add_test(tc, test_disable_with_work_in_flight_drops_it_without_leak);
    tcase_add_test(tc, test_reenable_drops_outstanding_and_queues_wake_all);
    tcase_add_test(tc, test_reset_forgets_vector_and_halt);
    tcase_add_test(tc, test_restore_queues_wake_all_and_keeps_tokens_fresh);
    tcase_add_test(tc, test_restore_rejects_bad_state_and_changes_nothing);
    suite_add_tcase(s, tc);

    tc = tcase_create("fault");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_fault_async_writes_reason_injects_then_submits);
    tcase_add_test(tc, test_tokens_are_kvm_sequence);
    tcase_add_test(tc, test_cannot_go_async_returns_sync);
    tcase_add_test(tc, test_fault_with_apf_off_is_sync);
    tcase_add_test(tc, test_limit_reached_is_sync);
    tcase_add_test(tc, test_second_fault_on_frame_in_flight_halts_without_new_work);
    tcase_add_test(tc, test_kernel_mode_without_send_always_halts_and_owes_no_ready);
    tcase_add_test(tc, test_send_always_delivers_in_kernel_mode);
    tcase_add_test(tc, test_paging_off_nested_and_masked_are_undeliverable);
    tcase_add_test(tc, test_nested_with_pf_vmexit_delivers);
    tcase_add_test(tc, test_fallback_sync_starts_no_work);
    tcase_add_test(tc, test_area_write_failure_falls_back);
    suite_add_tcase(s, tc);

    tc = tcase_create("delivery");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_ready_goes_out_after_completion);
    tcase_add_test(tc, test_ready_waits_for_slot_free_and_ack);
    tcase_add_test(tc, test_ready_waits_for_ack_even_when_slot_is_free);
    tcase_add_test(tc, test_no_dequeue_while_irqchip_disabled);
    tcase_add_test(tc, test_kick_only_on_empty_to_nonempty_without_pending_ready);
    tcase_add_test(tc, test_ack_with_nothing_pending_is_a_noop);
    tcase_add_test(tc, test_complete_rejects_bad_tokens_and_changes_nothing);
    tcase_add_test(tc, test_resolve_failure_wakes_then_retries_sync);
    tcase_add_test(tc, test_wake_all_covers_not_present_delivered_before_it);
    tcase_add_test(tc, test_arm64_area_carries_reason_and_token);
    tcase_add_test(tc, test_arm64_vector_is_a_ppi);
    tcase_add_test(tc, test_trace_of_a_session_passes_the_checker);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(engine_suite)
