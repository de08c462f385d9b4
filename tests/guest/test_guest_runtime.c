/* SPDX-License-Identifier: MIT */
/*
 * libapf-guest runtime: decoding, the sleep table (wake-before-wait, duplicates, unknown
 * tokens, wake-all with placeholders, pool exhaustion), the order on interrupt, offline,
 * and every bad value a host could write.
 */
#include <string.h>

#include "apf_check.h"
#include "test_env.h"

static struct tenv E;

static void setup(void)
{
    tenv_init(&E);
}

static struct apf_guest_stats gstats(uint32_t cpu)
{
    struct apf_guest_stats s;
    ck_assert_int_eq(apf_guest_stats(E.g, cpu, &s), 0);
    return s;
}

/* "Not present" for `token` on `cpu`, as the host and the #PF entry would do it. */
static int take_np(uint32_t cpu, uint32_t token)
{
    tenv_host_np(&E, cpu);
    if (E.caps & APF_BACKEND_CAP_TOKEN_IN_AREA) {
        struct apf_shared_area *a = (struct apf_shared_area *)(uintptr_t)apf_guest_area(E.g, cpu);
        a->token = token;
    }
    E.cur_cpu = cpu;
    return apf_guest_on_exception(E.g, cpu, token);
}

static int take_ready(uint32_t cpu, uint32_t token)
{
    tenv_host_ready(&E, cpu, token);
    E.cur_cpu = cpu;
    return apf_guest_on_interrupt(E.g, cpu);
}

/* ---- init -------------------------------------------------------------------------------------- */

START_TEST(test_init_rejects_bad_configs)
{
    static unsigned char mem[1 << 16];
    struct apf_guest *g = (struct apf_guest *)0x1;
    struct apf_guest_config good = tenv_config(&E, 2, 0), c;
    struct apf_guest_env_ops env = tenv_ops;
    ck_assert_uint_gt(apf_guest_mem_size(&good), 0);
    c = good, c.n_cpus = 0;
    ck_assert_uint_eq(apf_guest_mem_size(&c), 0);
    ck_assert_int_eq(apf_guest_init(mem, sizeof(mem), &c, &g), APF_EINVAL);
    c = good, c.n_cpus = 4097;
    ck_assert_int_eq(apf_guest_init(mem, sizeof(mem), &c, &g), APF_EINVAL);
    c = good, c.n_buckets = 100; /* not a power of two */
    ck_assert_int_eq(apf_guest_init(mem, sizeof(mem), &c, &g), APF_EINVAL);
    c = good, c.flags = 0x80;
    ck_assert_int_eq(apf_guest_init(mem, sizeof(mem), &c, &g), APF_EINVAL);
    env.halt = NULL;
    c = good, c.env = &env;
    ck_assert_int_eq(apf_guest_init(mem, sizeof(mem), &c, &g), APF_EINVAL);
    c = good, c.backend = NULL;
    ck_assert_int_eq(apf_guest_init(mem, sizeof(mem), &c, &g), APF_EINVAL);
    ck_assert_int_eq(apf_guest_init(NULL, sizeof(mem), &good, &g), APF_EINVAL);
    ck_assert_int_eq(apf_guest_init(mem, apf_guest_mem_size(&good) - 64, &good, &g), APF_ENOSPC);
    ck_assert_ptr_eq(g, (struct apf_guest *)0x1);
    /* any alignment of the memory is fine: the size includes the slack */
    ck_assert_int_eq(apf_guest_init(mem + 3, apf_guest_mem_size(&good), &good, &g), 0);
    ck_assert_int_eq((int)((uintptr_t)apf_guest_area(g, 1) % 64), 0);
}
END_TEST

START_TEST(test_no_apf_option_keeps_it_off)
{
    struct apf_guest_config c = tenv_config(&E, 1, 0);
    c.flags = APF_GUEST_NO_APF;
    static unsigned char mem[1 << 16];
    ck_assert_int_eq(apf_guest_init(mem, sizeof(mem), &c, &E.g), 0);
    ck_assert_int_eq(apf_guest_available(E.g), APF_ECANCELED);
    ck_assert_int_eq(apf_guest_cpu_online(E.g, 0), APF_EOPNOTSUPP);
    ck_assert_int_eq(tenv_count(&E, TEV_ENABLE), 0);
    ck_assert_int_eq(apf_guest_on_exception(E.g, 0, 0x1000), 0); /* every fault genuine */
    ck_assert_uint_eq(apf_guest_vector(E.g), 0);
}
END_TEST

START_TEST(test_probe_failure_or_bad_probe_values_keep_apf_off)
{
    static unsigned char mem[1 << 16];
    struct apf_guest_config c = tenv_config(&E, 1, 0);
    E.probe_result = APF_ENODEV;
    ck_assert_int_eq(apf_guest_init(mem, sizeof(mem), &c, &E.g), 0);
    ck_assert_int_eq(apf_guest_available(E.g), APF_ENODEV);

    E.probe_result = 0;
    E.info.slots = 0; /* host-written values are checked */
    ck_assert_int_eq(apf_guest_init(mem, sizeof(mem), &c, &E.g), 0);
    ck_assert_int_eq(apf_guest_available(E.g), APF_EPROTO);
    E.info.slots = 64;
    E.info.version = APF_PROTO_VERSION_PACK(2, 0, 0);
    ck_assert_int_eq(apf_guest_init(mem, sizeof(mem), &c, &E.g), 0);
    ck_assert_int_eq(apf_guest_available(E.g), APF_EPROTO);
    E.info.version = APF_PROTO_VERSION;
    E.caps = APF_BACKEND_CAP_HOST_VECTOR;
    E.info.irq = 40; /* not a PPI */
    ck_assert_int_eq(apf_guest_init(mem, sizeof(mem), &c, &E.g), 0);
    ck_assert_int_eq(apf_guest_available(E.g), APF_EPROTO);
    E.info.irq = 20;
    ck_assert_int_eq(apf_guest_init(mem, sizeof(mem), &c, &E.g), 0);
    ck_assert_int_eq(apf_guest_available(E.g), 1);
    ck_assert_uint_eq(apf_guest_vector(E.g), 20); /* the host's choice wins */
    /* x86-style backend: the kernel's vector must be a valid external vector */
    E.caps = 0;
    c.vector = 14;
    ck_assert_int_eq(apf_guest_init(mem, sizeof(mem), &c, &E.g), 0);
    ck_assert_int_eq(apf_guest_available(E.g), APF_EINVAL);
}
END_TEST

START_TEST(test_online_registers_aligned_area_and_vector)
{
    struct apf_guest_config c = tenv_config(&E, 2, 0);
    c.flags = APF_GUEST_SEND_ALWAYS;
    E.caps = APF_BACKEND_CAP_SEND_ALWAYS;
    static unsigned char mem[1 << 16];
    ck_assert_int_eq(apf_guest_init(mem, sizeof(mem), &c, &E.g), 0);
    ck_assert_int_eq(apf_guest_cpu_online(E.g, 1), 0);
    ck_assert_int_eq(apf_guest_cpu_online(E.g, 1), APF_EALREADY);
    ck_assert_int_eq(apf_guest_cpu_online(E.g, 2), APF_EINVAL);
    ck_assert_int_eq(tenv_count(&E, TEV_ENABLE), 1);
    const struct tev *en = &E.log[tenv_index(&E, TEV_ENABLE, 0)];
    ck_assert_uint_eq(en->cpu, 1);
    ck_assert_uint_eq(en->pa, (uint64_t)(uintptr_t)apf_guest_area(E.g, 1));
    ck_assert_uint_eq(en->pa % 64, 0);
    ck_assert_uint_eq(en->vector, 0xec);
    ck_assert_uint_eq(en->flags, APF_EN_SEND_ALWAYS);
    ck_assert_uint_eq(gstats(1).enabled, 1);
    ck_assert_uint_eq(gstats(0).enabled, 0);
}
END_TEST

START_TEST(test_send_always_only_if_backend_offers_it)
{
    struct apf_guest_config c = tenv_config(&E, 1, 0);
    c.flags = APF_GUEST_SEND_ALWAYS;
    E.caps = 0;
    static unsigned char mem[1 << 16];
    ck_assert_int_eq(apf_guest_init(mem, sizeof(mem), &c, &E.g), 0);
    ck_assert_int_eq(apf_guest_cpu_online(E.g, 0), 0);
    ck_assert_uint_eq(E.log[tenv_index(&E, TEV_ENABLE, 0)].flags, 0);
}
END_TEST

START_TEST(test_host_refusing_enable_leaves_cpu_off)
{
    struct apf_guest_config c = tenv_config(&E, 1, 0);
    static unsigned char mem[1 << 16];
    ck_assert_int_eq(apf_guest_init(mem, sizeof(mem), &c, &E.g), 0);
    E.enable_result = APF_EINVAL;
    ck_assert_int_eq(apf_guest_cpu_online(E.g, 0), APF_EINVAL);
    ck_assert_uint_eq(gstats(0).enabled, 0);
    tenv_host_np(&E, 0);
    ck_assert_int_eq(apf_guest_on_exception(E.g, 0, 0x1000), 0);
}
END_TEST

/* ---- "not present" and "page ready" ------------------------------------------------------------- */

static void genuine_fault_is_untouched(void)
{
    ck_assert_int_eq(apf_guest_on_exception(E.g, 0, 0x7fff1000), 0);
    ck_assert_int_eq(E.sleeps, 0);
    ck_assert_uint_eq(gstats(0).not_present, 0);
}

START_TEST(test_flags_zero_means_genuine_fault)
{
    struct apf_guest_config c = tenv_config(&E, 1, 0);
    tenv_start(&E, &c);
    genuine_fault_is_untouched();
}
END_TEST

static uint32_t ready_token;
static void deliver_ready(struct tenv *e, struct apf_guest_waiter *w)
{
    (void)w;
    /* while the task sleeps, flags must already be clear (so a real #PF can follow) */
    ck_assert_uint_eq(tenv_area_flags(e, 0), 0);
    ck_assert_int_eq(take_ready(0, ready_token), 1);
}

/* KVM's guest fix: the reason belongs to the #PF the host injected. An NMI (or a kernel #PF
 * without SEND_ALWAYS) that faults before that handler reads the reason must neither read nor
 * clear it; the owner then takes it. */
START_TEST(test_reason_is_consumed_only_by_the_path_that_owns_it)
{
    struct apf_guest_config c = tenv_config(&E, 1, 0);
    tenv_start(&E, &c);
    tenv_host_np(&E, 0);
    int events = E.nlog;
    ck_assert_int_eq(apf_guest_on_exception_from(E.g, 0, 0x7fff1000, APF_GUEST_FROM_NMI), 0);
    ck_assert_int_eq(apf_guest_on_exception_from(E.g, 0, 0x7fff1000, APF_GUEST_FROM_KERNEL), 0);
    ck_assert_int_eq(
        apf_guest_on_exception_from(E.g, 0, 0x7fff1000, APF_GUEST_FROM_KERNEL | APF_GUEST_FROM_NMI),
        0);
    ck_assert_int_eq(apf_guest_on_exception_from(E.g, 0, 0x4000, 4), APF_EINVAL);
    ck_assert_int_eq(apf_guest_on_exception_from(E.g, 1, 0x4000, 0), APF_EINVAL);
    ck_assert_int_eq(apf_guest_on_exception_from(NULL, 0, 0x4000, 0), APF_EINVAL);
    /* nothing read, cleared, counted or logged */
    ck_assert_uint_eq(tenv_area_flags(&E, 0), APF_REASON_NOT_PRESENT);
    ck_assert_int_eq(E.nlog, events);
    ck_assert_int_eq(E.sleeps, 0);
    ck_assert_uint_eq(gstats(0).not_present, 0);
    ck_assert_uint_eq(gstats(0).bad_host_values, 0);
    /* the owner (the user-mode #PF) takes it: sleeps on its token */
    E.while_asleep = deliver_ready;
    ready_token = 0x4000;
    E.cur_cpu = 0;
    ck_assert_int_eq(apf_guest_on_exception_from(E.g, 0, 0x4000, 0), 1);
    ck_assert_int_eq(E.sleeps, 1);
    ck_assert_uint_eq(tenv_area_flags(&E, 0), 0);
    ck_assert_uint_eq(gstats(0).not_present, 1);
    ck_assert_uint_eq(gstats(0).woken, 1);
}
END_TEST

/* With SEND_ALWAYS in force a kernel-mode fault may be the injected one; an NMI never is. */
START_TEST(test_kernel_mode_owns_the_reason_with_send_always)
{
    struct apf_guest_config c = tenv_config(&E, 1, 0);
    c.flags = APF_GUEST_SEND_ALWAYS;
    E.caps = APF_BACKEND_CAP_SEND_ALWAYS;
    tenv_start(&E, &c);
    tenv_host_np(&E, 0);
    ck_assert_int_eq(apf_guest_on_exception_from(E.g, 0, 0x5000, APF_GUEST_FROM_NMI), 0);
    ck_assert_uint_eq(tenv_area_flags(&E, 0), APF_REASON_NOT_PRESENT);
    E.while_asleep = deliver_ready;
    ready_token = 0x5000;
    E.cur_cpu = 0;
    ck_assert_int_eq(apf_guest_on_exception_from(E.g, 0, 0x5000, APF_GUEST_FROM_KERNEL), 1);
    ck_assert_int_eq(E.sleeps, 1);
    ck_assert_uint_eq(tenv_area_flags(&E, 0), 0);
    ck_assert_uint_eq(gstats(0).not_present, 1);
}
END_TEST

START_TEST(test_not_present_sleeps_until_ready_and_order_is_wake_clear_ack)
{
    struct apf_guest_config c = tenv_config(&E, 1, 0);
    tenv_start(&E, &c);
    E.cur_task = 0xabc0;
    E.while_asleep = deliver_ready;
    ready_token = 0x3000;
    ck_assert_int_eq(take_np(0, 0x3000), 1);
    ck_assert_int_eq(E.sleeps, 1);
    ck_assert_int_eq(tenv_count(&E, TEV_WAKE), 1);
    const struct tev *wake = &E.log[tenv_index(&E, TEV_WAKE, 0)];
    ck_assert_uint_eq(wake->task, 0xabc0);
    ck_assert_uint_eq(wake->halted, 0);
    /* wake, then clear, then ACK: the wake saw the token still there, the ACK saw an empty
     * slot and came after the wake; exactly one ACK */
    ck_assert_uint_eq(wake->token, 0x3000);
    ck_assert_int_lt(tenv_index(&E, TEV_WAKE, 0), tenv_index(&E, TEV_ACK, 0));
    ck_assert_int_eq(tenv_count(&E, TEV_ACK), 1);
    ck_assert_uint_eq(E.log[tenv_index(&E, TEV_ACK, 0)].token, 0);
    ck_assert_uint_eq(tenv_area_token(&E, 0), 0);
    struct apf_guest_stats s = gstats(0);
    ck_assert_uint_eq(s.not_present, 1);
    ck_assert_uint_eq(s.slept, 1);
    ck_assert_uint_eq(s.ready, 1);
    ck_assert_uint_eq(s.woken, 1);
    ck_assert_uint_eq(s.acks, 1);
    ck_assert_uint_eq(s.placeholders, 0);
}
END_TEST

START_TEST(test_wake_before_wait_uses_placeholder_and_does_not_sleep)
{
    struct apf_guest_config c = tenv_config(&E, 1, 0);
    tenv_start(&E, &c);
    ck_assert_int_eq(take_ready(0, 0x5000), 0); /* nobody waits yet */
    ck_assert_uint_eq(gstats(0).placeholders, 1);
    ck_assert_uint_eq(gstats(0).placeholders_in_use, 1);
    ck_assert_int_eq(tenv_count(&E, TEV_ACK), 1); /* ACKed all the same */
    ck_assert_int_eq(take_np(0, 0x5000), 1);
    ck_assert_int_eq(E.sleeps, 0); /* found its placeholder */
    ck_assert_uint_eq(gstats(0).placeholder_hits, 1);
    ck_assert_uint_eq(gstats(0).placeholders_in_use, 0);
}
END_TEST

START_TEST(test_duplicate_ready_keeps_one_placeholder)
{
    struct apf_guest_config c = tenv_config(&E, 1, 0);
    tenv_start(&E, &c);
    ck_assert_int_eq(take_ready(0, 0x5000), 0);
    ck_assert_int_eq(take_ready(0, 0x5000), 0);
    ck_assert_uint_eq(gstats(0).placeholders_in_use, 1);
    ck_assert_int_eq(tenv_count(&E, TEV_ACK), 2);
    ck_assert_int_eq(take_np(0, 0x5000), 1);
    ck_assert_int_eq(E.sleeps, 0);
    ck_assert_uint_eq(gstats(0).placeholders_in_use, 0);
}
END_TEST

START_TEST(test_unknown_token_placeholders_freed_by_wake_all_of_that_cpu)
{
    struct apf_guest_config c = tenv_config(&E, 2, 0);
    tenv_start(&E, &c);
    take_ready(0, 0x7000); /* a token nobody will ever wait for */
    take_ready(0, 0x8000);
    take_ready(1, 0x9001);
    ck_assert_uint_eq(gstats(0).placeholders_in_use, 2);
    ck_assert_uint_eq(gstats(1).placeholders_in_use, 1);
    ck_assert_int_eq(take_ready(0, APF_TOKEN_WAKE_ALL), 0);
    ck_assert_uint_eq(gstats(0).placeholders_in_use, 0); /* freed, not leaked */
    ck_assert_uint_eq(gstats(1).placeholders_in_use, 1); /* other CPU's untouched */
    ck_assert_uint_eq(gstats(0).wake_all, 1);
}
END_TEST

/* Nested "tasks": while A sleeps, B runs on the same CPU and faults; while B sleeps, a
 * wake-all arrives. Both wake; a task on CPU 1 does not. */
static int nest_step;
static void nested_sleepers(struct tenv *e, struct apf_guest_waiter *w)
{
    (void)w;
    if (nest_step == 0) {
        nest_step = 1;
        e->cur_task = 0xb000;
        ck_assert_int_eq(take_np(0, 0x2000), 1); /* B sleeps here */
    } else if (nest_step == 1) {
        nest_step = 2;
        e->cur_task = 0xc000;
        e->cur_cpu = 1;
        ck_assert_int_eq(take_np(1, 0x3001), 1); /* C sleeps on CPU 1 */
    } else if (nest_step == 2) {
        nest_step = 3;
        ck_assert_uint_eq(gstats(0).waiting, 2);
        ck_assert_uint_eq(gstats(1).waiting, 1);
        ck_assert_int_eq(take_ready(0, APF_TOKEN_WAKE_ALL), 2); /* A and B */
        ck_assert_uint_eq(gstats(0).waiting, 0);
        ck_assert_uint_eq(gstats(1).waiting, 1);
        ck_assert_int_eq(apf_guest_waiter_woken(w), 0); /* C, whose callback this is */
        ck_assert_int_eq(take_ready(1, 0x3001), 1);
    }
}

START_TEST(test_wake_all_wakes_every_sleeper_of_its_cpu_only)
{
    struct apf_guest_config c = tenv_config(&E, 2, 0);
    tenv_start(&E, &c);
    nest_step = 0;
    E.while_asleep = nested_sleepers;
    E.cur_task = 0xa000;
    ck_assert_int_eq(take_np(0, 0x1000), 1);
    ck_assert_int_eq(E.sleeps, 3);
    ck_assert_int_eq(tenv_count(&E, TEV_WAKE), 3);
    ck_assert_uint_eq(gstats(1).waiting, 0);
    ck_assert_uint_eq(gstats(0).woken, 2);
    ck_assert_uint_eq(gstats(1).woken, 1);
    ck_assert_uint_eq(gstats(0).wake_all, 1);
}
END_TEST

START_TEST(test_pool_exhaustion_never_loses_a_wakeup)
{
    struct apf_guest_config c = tenv_config(&E, 2, 4); /* two placeholders per CPU */
    tenv_start(&E, &c);
    take_ready(0, 0x1000);
    take_ready(0, 0x2000);
    take_ready(0, 0x3000); /* pool empty: this one cannot be recorded */
    struct apf_guest_stats s = gstats(0);
    ck_assert_uint_eq(s.placeholders, 2);
    ck_assert_uint_eq(s.lost_wakeups, 1);
    ck_assert_int_eq(tenv_count(&E, TEV_LOG), 1);

    /* The owner of 0x3000 arrives: no placeholder, but it must not sleep. */
    ck_assert_int_eq(take_np(0, 0x3000), 1);
    ck_assert_int_eq(E.sleeps, 0);
    ck_assert_uint_eq(gstats(0).retries, 1);
    /* The owners of the recorded ones find their placeholders. */
    ck_assert_int_eq(take_np(0, 0x1000), 1);
    ck_assert_int_eq(take_np(0, 0x2000), 1);
    ck_assert_int_eq(E.sleeps, 0);
    ck_assert_uint_eq(gstats(0).placeholder_hits, 2);

    /* CPU 0 completed entry points that began after the loss: back to normal sleeping. */
    E.while_asleep = deliver_ready;
    ready_token = 0x4000;
    ck_assert_int_eq(take_np(0, 0x4000), 1);
    ck_assert_int_eq(E.sleeps, 1);

    /* CPU 1 had not: its next waiter without a placeholder retries once, then sleeps. */
    E.while_asleep = NULL;
    ck_assert_int_eq(take_np(1, 0x5001), 1);
    ck_assert_int_eq(E.sleeps, 1);
    ck_assert_uint_eq(gstats(1).retries, 1);
}
END_TEST

/* Two interrupts in the window of the waiter for 0x3000 on CPU 0, pool empty: the "page
 * ready" of 0x3000 itself (cannot be recorded), then a spurious one, a complete entry point
 * that began after the loss. (Review finding: the CPU-wide epoch the second one advanced
 * made the waiter sleep on its lost token for ever.) */
static void two_interrupts_in_window(struct tenv *e)
{
    take_ready(0, 0x3000);
    e->cur_cpu = 0;
    ck_assert_int_eq(apf_guest_on_interrupt(e->g, 0), 0); /* slot empty: spurious */
}

START_TEST(test_lost_wakeup_survives_a_later_entry_in_the_window)
{
    struct apf_guest_config c = tenv_config(&E, 1, 1); /* one placeholder */
    tenv_start(&E, &c);
    take_ready(0, 0x1000); /* takes the only placeholder (nobody waits for 0x1000 yet) */
    ck_assert_uint_eq(gstats(0).placeholders_in_use, 1);
    E.in_window = two_interrupts_in_window;
    ck_assert_int_eq(take_np(0, 0x3000), 1);
    struct apf_guest_stats s = gstats(0);
    ck_assert_uint_eq(s.lost_wakeups, 1);
    ck_assert_uint_eq(s.spurious, 1);
    ck_assert_uint_eq(s.retries, 1); /* 0x3000's task returned to retry its access */
    ck_assert_int_eq(E.sleeps, 0);   /* ... instead of sleeping for ever */
    ck_assert_uint_eq(s.waiting, 0);
}
END_TEST

/* A wake-all in the window: it answers every "not present" before it, including the one
 * whose waiter is not in the table yet (the host owes no "page ready" for it any more). */
static void wake_all_in_window(struct tenv *e)
{
    (void)e;
    take_ready(0, APF_TOKEN_WAKE_ALL);
}

START_TEST(test_wake_all_in_the_window_is_not_lost)
{
    struct apf_guest_config c = tenv_config(&E, 1, 0);
    tenv_start(&E, &c);
    E.in_window = wake_all_in_window;
    ck_assert_int_eq(take_np(0, 0x7000), 1);
    ck_assert_int_eq(E.sleeps, 0);
    struct apf_guest_stats s = gstats(0);
    ck_assert_uint_eq(s.wake_all, 1);
    ck_assert_uint_eq(s.retries, 1);
    ck_assert_uint_eq(s.waiting, 0);
    /* the next waiter (its "not present" after the wake-all) sleeps normally */
    E.while_asleep = deliver_ready;
    ready_token = 0x8000;
    ck_assert_int_eq(take_np(0, 0x8000), 1);
    ck_assert_int_eq(E.sleeps, 1);
    ck_assert_uint_eq(gstats(0).retries, 1);
}
END_TEST

static void deliver_ready_any_cpu(struct tenv *e, struct apf_guest_waiter *w)
{
    (void)w;
    (void)e;
    take_ready(0, ready_token);
}

START_TEST(test_context_that_cannot_sleep_halts_until_ready)
{
    struct apf_guest_config c = tenv_config(&E, 1, 0);
    tenv_start(&E, &c);
    E.can_sleep = 0;
    E.while_asleep = deliver_ready_any_cpu;
    ready_token = 0x6000;
    ck_assert_int_eq(take_np(0, 0x6000), 1);
    ck_assert_int_eq(E.sleeps, 0);
    ck_assert_int_eq(E.halts, 1);
    ck_assert_uint_eq(gstats(0).halted, 1);
    const struct tev *wake = &E.log[tenv_index(&E, TEV_WAKE, 0)];
    ck_assert_uint_eq(wake->halted, 1);
    ck_assert_uint_eq(wake->cpu, 0);
}
END_TEST

/* ---- offline ------------------------------------------------------------------------------------ */

static void offline_while_asleep(struct tenv *e, struct apf_guest_waiter *w)
{
    (void)w;
    take_ready(0, 0x7000); /* a placeholder too */
    ck_assert_int_eq(apf_guest_cpu_offline(e->g, 0), 1);
}

START_TEST(test_offline_disables_then_wakes_local_sleepers)
{
    struct apf_guest_config c = tenv_config(&E, 1, 0);
    tenv_start(&E, &c);
    E.while_asleep = offline_while_asleep;
    ck_assert_int_eq(take_np(0, 0x1000), 1);
    ck_assert_int_lt(tenv_index(&E, TEV_DISABLE, 0), tenv_index(&E, TEV_WAKE, 0));
    ck_assert_uint_eq(gstats(0).placeholders_in_use, 0);
    ck_assert_uint_eq(gstats(0).enabled, 0);
    ck_assert_int_eq(apf_guest_cpu_offline(E.g, 0), 0); /* again: no-op */
    ck_assert_int_eq(tenv_count(&E, TEV_DISABLE), 1);
    /* back online */
    ck_assert_int_eq(apf_guest_cpu_online(E.g, 0), 0);
}
END_TEST

/* ---- bad host values ------------------------------------------------------------------------------ */

START_TEST(test_unknown_reason_is_reported_and_cleared)
{
    struct apf_guest_config c = tenv_config(&E, 1, 0);
    tenv_start(&E, &c);
    struct apf_shared_area *a = (struct apf_shared_area *)(uintptr_t)apf_guest_area(E.g, 0);
    a->flags = 7;
    ck_assert_int_eq(apf_guest_on_exception(E.g, 0, 0x1000), 1);
    ck_assert_uint_eq(a->flags, 0);
    ck_assert_int_eq(E.sleeps, 0);
    ck_assert_uint_eq(gstats(0).bad_host_values, 1);
    ck_assert_int_eq(tenv_count(&E, TEV_LOG), 1);
    genuine_fault_is_untouched(); /* the next real #PF is seen as one */
}
END_TEST

START_TEST(test_not_present_with_reserved_token_is_ignored)
{
    struct apf_guest_config c = tenv_config(&E, 1, 0);
    tenv_start(&E, &c);
    ck_assert_int_eq(take_np(0, 0), 1);
    ck_assert_int_eq(take_np(0, APF_TOKEN_WAKE_ALL), 1);
    ck_assert_int_eq(E.sleeps, 0);
    ck_assert_uint_eq(gstats(0).bad_host_values, 2);
    ck_assert_uint_eq(gstats(0).not_present, 0);
    ck_assert_uint_eq(tenv_area_flags(&E, 0), 0);
}
END_TEST

START_TEST(test_empty_slot_interrupt_is_spurious_and_not_acked)
{
    struct apf_guest_config c = tenv_config(&E, 1, 0);
    tenv_start(&E, &c);
    ck_assert_int_eq(apf_guest_on_interrupt(E.g, 0), 0);
    ck_assert_uint_eq(gstats(0).spurious, 1);
    ck_assert_int_eq(tenv_count(&E, TEV_ACK), 0);
}
END_TEST

START_TEST(test_bad_cpu_ids_are_rejected)
{
    struct apf_guest_config c = tenv_config(&E, 2, 0);
    tenv_start(&E, &c);
    struct apf_guest_stats s;
    ck_assert_int_eq(apf_guest_on_exception(E.g, 2, 0x1000), APF_EINVAL);
    ck_assert_int_eq(apf_guest_on_interrupt(E.g, 99), APF_EINVAL);
    ck_assert_int_eq(apf_guest_cpu_online(E.g, 2), APF_EINVAL);
    ck_assert_int_eq(apf_guest_cpu_offline(E.g, 2), APF_EINVAL);
    ck_assert_int_eq(apf_guest_stats(E.g, 2, &s), APF_EINVAL);
    ck_assert_ptr_null(apf_guest_area(E.g, 2));
}
END_TEST

/* Issue 13 finding 5: every entry point refuses a NULL runtime (early boot: the kernel's
 * #PF handler runs before apf_guest_init()) instead of faulting inside the handler. */
START_TEST(test_null_runtime_is_refused_by_every_entry_point)
{
    struct apf_guest_stats s = {.not_present = 7};
    ck_assert_int_eq(apf_guest_available(NULL), APF_EINVAL);
    ck_assert_uint_eq(apf_guest_vector(NULL), 0);
    ck_assert_int_eq(apf_guest_cpu_online(NULL, 0), APF_EINVAL);
    ck_assert_int_eq(apf_guest_cpu_offline(NULL, 0), APF_EINVAL);
    ck_assert_int_eq(apf_guest_on_exception(NULL, 0, 0x1000), APF_EINVAL);
    ck_assert_int_eq(apf_guest_on_interrupt(NULL, 0), APF_EINVAL);
    ck_assert_int_eq(apf_guest_stats(NULL, 0, &s), APF_EINVAL);
    ck_assert_uint_eq(s.not_present, 7); /* untouched */
    ck_assert_ptr_null(apf_guest_area(NULL, 0));
    ck_assert_ptr_null(apf_guest_ring(NULL, 0));
    ck_assert_int_eq(apf_guest_waiter_woken(NULL), 0);
    ck_assert_ptr_null(apf_guest_waiter_task(NULL));
    ck_assert_uint_eq(apf_guest_waiter_cpu(NULL), 0);
    ck_assert_int_eq(apf_guest_waiter_halted(NULL), 0);
    ck_assert_uint_eq(apf_guest_waiter_token(NULL), 0);
}
END_TEST

START_TEST(test_arm64_style_token_in_area_and_reason_checked)
{
    E.caps = APF_BACKEND_CAP_TOKEN_IN_AREA | APF_BACKEND_CAP_HOST_VECTOR;
    E.info.irq = 20;
    struct apf_guest_config c = tenv_config(&E, 1, 0);
    tenv_start(&E, &c);
    ck_assert_uint_eq(apf_guest_vector(E.g), 20);
    /* "not present": token from the area (the hint is ignored), both fields cleared */
    E.while_asleep = deliver_ready;
    ready_token = 0x4000;
    ck_assert_int_eq(take_np(0, 0x4000), 1);
    ck_assert_int_eq(E.sleeps, 1);
    ck_assert_uint_eq(E.log[tenv_index(&E, TEV_SLEEP, 0)].token, 0x4000);
    ck_assert_uint_eq(tenv_area_flags(&E, 0), 0);
    ck_assert_uint_eq(tenv_area_token(&E, 0), 0);
    /* An interrupt while the area holds a "not present" (its event not handled yet): not
     * consumed, not ACKed; the exception then takes it normally. */
    struct apf_shared_area *a = (struct apf_shared_area *)(uintptr_t)apf_guest_area(E.g, 0);
    a->flags = APF_REASON_NOT_PRESENT;
    a->token = 0x5000;
    ck_assert_int_eq(apf_guest_on_interrupt(E.g, 0), 0);
    ck_assert_uint_eq(gstats(0).spurious, 1);
    ck_assert_uint_eq(a->flags, APF_REASON_NOT_PRESENT);
    ck_assert_uint_eq(a->token, 0x5000);
    ck_assert_int_eq(tenv_count(&E, TEV_ACK), 1);
    ready_token = 0x5000;
    E.cur_cpu = 0;
    ck_assert_int_eq(apf_guest_on_exception(E.g, 0, 0), 1);
    ck_assert_int_eq(E.sleeps, 2);
    ck_assert_uint_eq(a->flags, 0);
    ck_assert_int_eq(tenv_count(&E, TEV_ACK), 2);
    /* The event while the area holds a "page ready" (its interrupt not taken yet): left in
     * place for the interrupt, which then wakes and ACKs; nothing slept on it. */
    a->flags = APF_REASON_READY;
    a->token = 0x6000;
    ck_assert_int_eq(apf_guest_on_exception(E.g, 0, 0), 1);
    ck_assert_uint_eq(gstats(0).bad_host_values, 1);
    ck_assert_uint_eq(a->flags, APF_REASON_READY);
    ck_assert_uint_eq(a->token, 0x6000);
    ck_assert_int_eq(E.sleeps, 2);
    ck_assert_int_eq(apf_guest_on_interrupt(E.g, 0), 0); /* nobody waits: a placeholder */
    ck_assert_uint_eq(gstats(0).placeholders, 1);
    ck_assert_uint_eq(a->flags, 0);
    ck_assert_uint_eq(a->token, 0);
    ck_assert_int_eq(tenv_count(&E, TEV_ACK), 3);
    /* A "page ready" with a reason that is neither: dropped, cleared, still ACKed. */
    a->flags = 7;
    a->token = 0x7000;
    ck_assert_int_eq(apf_guest_on_interrupt(E.g, 0), 0);
    ck_assert_uint_eq(gstats(0).bad_host_values, 2);
    ck_assert_uint_eq(a->flags, 0);
    ck_assert_uint_eq(a->token, 0);
    ck_assert_int_eq(tenv_count(&E, TEV_ACK), 4);
}
END_TEST

/* ---- trace -------------------------------------------------------------------------------------- */

static struct apf_trace_event tr[64];
static int ntr;
static void trace_hook(void *ctx, const struct apf_trace_event *ev)
{
    (void)ctx;
    if (ntr < 64)
        tr[ntr++] = *ev;
}

START_TEST(test_trace_events_in_protocol_order)
{
    ntr = 0;
    struct apf_guest_config c = tenv_config(&E, 1, 0);
    c.trace = trace_hook;
    tenv_start(&E, &c);
    E.while_asleep = deliver_ready;
    ready_token = 0x3000;
    take_np(0, 0x3000);
    static const uint32_t want[] = {APF_TRACE_GUEST_ENABLE, APF_TRACE_GUEST_NOT_PRESENT,
                                    APF_TRACE_GUEST_SLEEP,  APF_TRACE_GUEST_READY,
                                    APF_TRACE_GUEST_WAKE,   APF_TRACE_GUEST_ACK};
    ck_assert_int_eq(ntr, 6);
    for (int i = 0; i < 6; i++)
        ck_assert_uint_eq(tr[i].kind, want[i]);
    ck_assert_uint_eq(tr[1].token, 0x3000);
    ck_assert_int_eq(tr[4].arg, 1);
}
END_TEST

/* ---- the ready ring (kvm_arm64 backend in ring mode) ------------------------------------ */

static struct apf_trace_event rtr[256];
static int nrtr;
static void ring_trace_hook(void *ctx, const struct apf_trace_event *ev)
{
    (void)ctx;
    if (nrtr < 256)
        rtr[nrtr++] = *ev;
}

static int count_trace(uint32_t kind)
{
    int n = 0;
    for (int i = 0; i < nrtr; i++)
        n += rtr[i].kind == kind;
    return n;
}

/* arm64 ring mode with `entries` per CPU, `n_placeholders` in the pool, traced. */
static void start_ring(uint32_t n_cpus, uint32_t entries, uint32_t n_placeholders)
{
    E.caps = APF_BACKEND_CAP_TOKEN_IN_AREA | APF_BACKEND_CAP_HOST_VECTOR;
    E.info.irq = 20;
    E.info.version = APF_PROTO_VERSION;
    E.ring_entries = entries;
    nrtr = 0;
    struct apf_guest_config c = tenv_config(&E, n_cpus, n_placeholders);
    c.trace = ring_trace_hook;
    tenv_start(&E, &c);
    nrtr = 0;
}

START_TEST(test_ring_online_registers_ring_then_enables_with_ring_flag)
{
    start_ring(2, 256, 0);
    const struct apf_ring *r = apf_guest_ring(E.g, 1);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq((uintptr_t)r % APF_RING_PAGE_SIZE, 0);
    ck_assert_ptr_nonnull(apf_guest_area(E.g, 1));
    ck_assert_uint_eq((uintptr_t)apf_guest_area(E.g, 1) % 64, 0);
    ck_assert_int_eq(E.ring_calls, 2); /* one per CPU */
    ck_assert_uint_eq(E.last_ring, (uint64_t)(uintptr_t)r | 8u); /* log2(256) */
    ck_assert_uint_eq(E.last_enable, (uint64_t)(uintptr_t)apf_guest_area(E.g, 1) |
                                         APF_EN_ENABLED | APF_ARM64_EN_RING);
    ck_assert_uint_eq(r->cons, 0);
    ck_assert_uint_eq(r->event, 1);
    ck_assert_ptr_null(apf_guest_ring(E.g, 2));
}
END_TEST

/* n "page ready" entries in one interrupt: exact tokens in order, one drain, no IRQ_ACK. */
static void ring_drain_n(uint32_t n)
{
    setup();
    start_ring(1, 256, 128);
    for (uint32_t i = 0; i < n; i++)
        tenv_ring_push(&E, 0, (i + 1) << 12);
    E.cur_cpu = 0;
    ck_assert_int_eq(apf_guest_on_interrupt(E.g, 0), 0); /* nobody waits: placeholders */
    ck_assert_int_eq(count_trace(APF_TRACE_GUEST_READY), (int)n);
    int k = 0;
    for (int i = 0; i < nrtr; i++)
        if (rtr[i].kind == APF_TRACE_GUEST_READY)
            ck_assert_uint_eq(rtr[i].token, (uint32_t)(++k) << 12);
    ck_assert_int_eq(count_trace(APF_TRACE_GUEST_ACK), 1);
    ck_assert_int_eq(tenv_count(&E, TEV_ACK), 0); /* ring mode: no IRQ_ACK call at all */
    struct apf_guest_stats s = gstats(0);
    ck_assert_uint_eq(s.ring_entries, n);
    ck_assert_uint_eq(s.ready, n);
    ck_assert_uint_eq(s.placeholders, n);
    ck_assert_uint_eq(s.notifications, 1);
    ck_assert_uint_eq(s.acks, 1);
    ck_assert_uint_eq(s.spurious, 0);
    ck_assert_uint_eq(s.bad_host_values, 0);
    const struct apf_ring *r = apf_guest_ring(E.g, 0);
    ck_assert_uint_eq(r->cons, n);
    ck_assert_uint_eq(r->event, n + 1);
    /* every waiter finds its placeholder */
    for (uint32_t i = 0; i < n; i++)
        ck_assert_int_eq(take_np(0, (i + 1) << 12), 1);
    ck_assert_int_eq(E.sleeps, 0);
    ck_assert_uint_eq(gstats(0).placeholder_hits, n);
}

START_TEST(test_ring_interrupt_drains_1_8_64_entries_in_order)
{
    ring_drain_n(1);
    ring_drain_n(8);
    ring_drain_n(64);
}
END_TEST

static void deliver_ready_by_ring(struct tenv *e, struct apf_guest_waiter *w)
{
    (void)w;
    /* "not present" came through the area, which is clear again */
    ck_assert_uint_eq(tenv_area_flags(e, 0), 0);
    ck_assert_int_eq(take_ready(0, ready_token), 1);
}

START_TEST(test_ring_not_present_in_area_ready_in_ring)
{
    start_ring(1, 16, 0);
    E.cur_task = 0xabc0;
    E.while_asleep = deliver_ready_by_ring;
    ready_token = 0x3000;
    ck_assert_int_eq(take_np(0, 0x3000), 1);
    ck_assert_int_eq(E.sleeps, 1);
    ck_assert_uint_eq(E.log[tenv_index(&E, TEV_SLEEP, 0)].token, 0x3000);
    ck_assert_int_eq(tenv_count(&E, TEV_WAKE), 1);
    ck_assert_int_eq(tenv_count(&E, TEV_ACK), 0);
    struct apf_guest_stats s = gstats(0);
    ck_assert_uint_eq(s.not_present, 1);
    ck_assert_uint_eq(s.ready, 1);
    ck_assert_uint_eq(s.ring_entries, 1);
    ck_assert_uint_eq(s.woken, 1);
    /* an empty ring: spurious, nothing finished */
    ck_assert_int_eq(apf_guest_on_interrupt(E.g, 0), 0);
    ck_assert_uint_eq(gstats(0).spurious, 1);
    ck_assert_uint_eq(gstats(0).acks, 1);
}
END_TEST

static void ring_wake_all_while_asleep(struct tenv *e, struct apf_guest_waiter *w)
{
    (void)e, (void)w;
    tenv_ring_push(&E, 0, 0x7000); /* nobody waits: a placeholder ... */
    ck_assert_int_eq(take_ready(0, APF_TOKEN_WAKE_ALL), 1); /* ... freed by the wake-all */
}

START_TEST(test_ring_wake_all_entry_wakes_and_frees_placeholders)
{
    start_ring(1, 16, 0);
    E.while_asleep = ring_wake_all_while_asleep;
    ck_assert_int_eq(take_np(0, 0x1000), 1);
    struct apf_guest_stats s = gstats(0);
    ck_assert_uint_eq(s.wake_all, 1);
    ck_assert_uint_eq(s.ready, 1);
    ck_assert_uint_eq(s.ring_entries, 2);
    ck_assert_uint_eq(s.woken, 1);
    ck_assert_uint_eq(s.placeholders_in_use, 0);
    ck_assert_uint_eq(s.waiting, 0);
    ck_assert_uint_eq(s.notifications, 1);
}
END_TEST

static uint32_t late_token;
static void publish_before_finish(struct tenv *e, uint32_t cpu)
{
    tenv_ring_push(e, cpu, late_token);
}

START_TEST(test_ring_entry_published_during_drain_is_taken_by_the_recheck)
{
    start_ring(1, 16, 0);
    E.before_finish = publish_before_finish;
    late_token = 0x2000;
    tenv_ring_push(&E, 0, 0x1000);
    ck_assert_int_eq(apf_guest_on_interrupt(E.g, 0), 0);
    /* both taken in this interrupt: the second by the re-check after the event write */
    ck_assert_int_eq(count_trace(APF_TRACE_GUEST_READY), 2);
    ck_assert_int_eq(count_trace(APF_TRACE_GUEST_ACK), 2);
    struct apf_guest_stats s = gstats(0);
    ck_assert_uint_eq(s.ring_entries, 2);
    ck_assert_uint_eq(s.notifications, 1);
    const struct apf_ring *r = apf_guest_ring(E.g, 0);
    ck_assert_uint_eq(r->cons, 2);
    ck_assert_uint_eq(r->event, 3);
}
END_TEST

START_TEST(test_ring_lying_prod_is_refused_then_recovered)
{
    start_ring(1, 16, 64);
    struct apf_ring *r = tenv_ring(&E, 0);
    tenv_ring_push(&E, 0, 0x1000);
    ck_assert_int_eq(apf_guest_on_interrupt(E.g, 0), 0);
    ck_assert_uint_eq(r->cons, 1);
    static const uint32_t lies[] = {1 + 16 + 1, 0, 1 + 0x80000000u};
    for (int i = 0; i < 3; i++) {
        r->prod = lies[i];
        ck_assert_int_eq(apf_guest_on_interrupt(E.g, 0), 0);
        ck_assert_uint_eq(r->cons, 1);
        ck_assert_uint_eq(gstats(0).bad_host_values, (uint64_t)i + 1);
        ck_assert_uint_eq(gstats(0).ring_entries, 1);
    }
    /* sane again */
    r->prod = 1;
    tenv_ring_push(&E, 0, 0x2000);
    ck_assert_int_eq(apf_guest_on_interrupt(E.g, 0), 0);
    ck_assert_uint_eq(r->cons, 2);
    struct apf_guest_stats s = gstats(0);
    ck_assert_uint_eq(s.ring_entries, 2);
    ck_assert_uint_eq(s.placeholders, 2); /* 0x1000 and 0x2000, each once */
    ck_assert_uint_eq(s.bad_host_values, 3);
}
END_TEST

START_TEST(test_ring_mode_zero_entry_and_ready_in_area_are_bad_host_values)
{
    start_ring(1, 16, 0);
    tenv_ring_push(&E, 0, 0); /* token 0 in the ring: dropped, consumed */
    ck_assert_int_eq(apf_guest_on_interrupt(E.g, 0), 0);
    ck_assert_uint_eq(gstats(0).bad_host_values, 1);
    ck_assert_uint_eq(apf_guest_ring(E.g, 0)->cons, 1);
    /* "page ready" never uses the area in ring mode: cleared as a bad value */
    struct apf_shared_area *a = (struct apf_shared_area *)(uintptr_t)apf_guest_area(E.g, 0);
    a->flags = APF_REASON_READY;
    a->token = 0x6000;
    ck_assert_int_eq(apf_guest_on_exception(E.g, 0, 0), 1);
    ck_assert_uint_eq(gstats(0).bad_host_values, 2);
    ck_assert_uint_eq(a->flags, 0);
    ck_assert_uint_eq(a->token, 0);
    ck_assert_int_eq(E.sleeps, 0);
}
END_TEST

START_TEST(test_ring_falls_back_to_slot_without_the_feature)
{
    E.host_features = 0; /* a 1.1 host without the ring */
    E.caps = APF_BACKEND_CAP_TOKEN_IN_AREA | APF_BACKEND_CAP_HOST_VECTOR;
    E.info.irq = 20;
    E.ring_entries = 64;
    struct apf_guest_config c = tenv_config(&E, 1, 0);
    tenv_start(&E, &c);
    ck_assert_ptr_null(apf_guest_ring(E.g, 0));
    ck_assert_int_eq(E.ring_calls, 0);
    ck_assert_uint_eq(E.last_enable & APF_ARM64_EN_RING, 0);
    ck_assert_int_eq(take_ready(0, 0x5000), 0); /* slot + IRQ_ACK */
    ck_assert_int_eq(tenv_count(&E, TEV_ACK), 1);
    ck_assert_uint_eq(gstats(0).ring_entries, 0);
    ck_assert_uint_eq(gstats(0).placeholders, 1);
}
END_TEST

START_TEST(test_config_reserved_words_must_be_zero_and_stats_reserved_zeroed)
{
    static unsigned char mem[1 << 16];
    struct apf_guest_config c = tenv_config(&E, 1, 0);
    c.reserved[7] = 1;
    ck_assert_uint_eq(apf_guest_mem_size(&c), 0);
    ck_assert_int_eq(apf_guest_init(mem, sizeof(mem), &c, &E.g), APF_EINVAL);
    c.reserved[7] = 0;
    ck_assert_int_eq(apf_guest_init(mem, sizeof(mem), &c, &E.g), 0);
    struct apf_guest_stats s;
    memset(&s, 0xff, sizeof(s));
    ck_assert_int_eq(apf_guest_stats(E.g, 0, &s), 0);
    ck_assert_uint_eq(s.reserved0, 0);
    for (int i = 0; i < 6; i++)
        ck_assert_uint_eq(s.reserved[i], 0);
}
END_TEST

static Suite *runtime_suite(void)
{
    Suite *s = suite_create("guest_runtime");
    TCase *tc = tcase_create("init");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_init_rejects_bad_configs);
    tcase_add_test(tc, test_no_apf_option_keeps_it_off);
    tcase_add_test(tc, test_probe_failure_or_bad_probe_values_keep_apf_off);
    tcase_add_test(tc, test_online_registers_aligned_area_and_vector);
    tcase_add_test(tc, test_send_always_only_if_backend_offers_it);
    tcase_add_test(tc, test_host_refusing_enable_leaves_cpu_off);
    suite_add_tcase(s, tc);

    tc = tcase_create("sleep_table");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_flags_zero_means_genuine_fault);
    tcase_add_test(tc, test_not_present_sleeps_until_ready_and_order_is_wake_clear_ack);
    tcase_add_test(tc, test_reason_is_consumed_only_by_the_path_that_owns_it);
    tcase_add_test(tc, test_kernel_mode_owns_the_reason_with_send_always);
    tcase_add_test(tc, test_wake_before_wait_uses_placeholder_and_does_not_sleep);
    tcase_add_test(tc, test_duplicate_ready_keeps_one_placeholder);
    tcase_add_test(tc, test_unknown_token_placeholders_freed_by_wake_all_of_that_cpu);
    tcase_add_test(tc, test_wake_all_wakes_every_sleeper_of_its_cpu_only);
    tcase_add_test(tc, test_pool_exhaustion_never_loses_a_wakeup);
    tcase_add_test(tc, test_lost_wakeup_survives_a_later_entry_in_the_window);
    tcase_add_test(tc, test_wake_all_in_the_window_is_not_lost);
    tcase_add_test(tc, test_context_that_cannot_sleep_halts_until_ready);
    tcase_add_test(tc, test_offline_disables_then_wakes_local_sleepers);
    tcase_add_test(tc, test_trace_events_in_protocol_order);
    suite_add_tcase(s, tc);

    tc = tcase_create("bad_host_values");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_unknown_reason_is_reported_and_cleared);
    tcase_add_test(tc, test_not_present_with_reserved_token_is_ignored);
    tcase_add_test(tc, test_empty_slot_interrupt_is_spurious_and_not_acked);
    tcase_add_test(tc, test_bad_cpu_ids_are_rejected);
    tcase_add_test(tc, test_null_runtime_is_refused_by_every_entry_point);
    tcase_add_test(tc, test_arm64_style_token_in_area_and_reason_checked);
    tcase_add_test(tc, test_config_reserved_words_must_be_zero_and_stats_reserved_zeroed);
    suite_add_tcase(s, tc);

    tc = tcase_create("ring");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_ring_online_registers_ring_then_enables_with_ring_flag);
    tcase_add_test(tc, test_ring_interrupt_drains_1_8_64_entries_in_order);
    tcase_add_test(tc, test_ring_not_present_in_area_ready_in_ring);
    tcase_add_test(tc, test_ring_wake_all_entry_wakes_and_frees_placeholders);
    tcase_add_test(tc, test_ring_entry_published_during_drain_is_taken_by_the_recheck);
    tcase_add_test(tc, test_ring_lying_prod_is_refused_then_recovered);
    tcase_add_test(tc, test_ring_mode_zero_entry_and_ready_in_area_are_bad_host_values);
    tcase_add_test(tc, test_ring_falls_back_to_slot_without_the_feature);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(runtime_suite)
