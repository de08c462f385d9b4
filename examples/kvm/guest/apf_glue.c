/* SPDX-License-Identifier: MIT */
/*
 * libapf-guest in this kernel: every call into the library is in this file.
 *
 * Transport: the kvm_x86 backend over the real instructions (apf_x86_arch_native). The arch
 * hook handed to the backend forwards each call to apf_x86_arch_native unchanged and then
 * reports it to the VMM, so the VMM sees which cpuid leaves the probe read and every wrmsr
 * the backend executed, in order, while it happens (the VMM reads the MSRs back with
 * KVM_GET_MSRS at that very exit).
 *
 * Environment: one CPU; tasks of sched.c; a spinlock with interrupts off for the runtime's
 * lock words; identity mapping for virt_to_phys; log lines go to the report channel.
 */
#include <stddef.h>

#include "apf/guest.h"
#include "apf_glue.h"
#include "apic.h"
#include "cpu.h"
#include "report.h"
#include "sched.h"

#define RUNTIME_MEM_MAX 65536u

volatile uint64_t kernel_progress;
volatile uint64_t kernel_touch_addr;

static struct apf_guest *rt;
static struct apf_guest_kvm_x86 backend;
static uint8_t runtime_mem[RUNTIME_MEM_MAX] __attribute__((aligned(64)));
static uint32_t rt_vector;

/* ---- the recording arch hook ------------------------------------------------------------- */

static struct {
    uint32_t seq;     /* wrmsrs so far */
    uint32_t int_seq; /* sequence number of the last ASYNC_PF_INT write */
    uint32_t en_seq;  /* ... of the last ASYNC_PF_EN write */
    uint64_t int_val; /* last value written to ASYNC_PF_INT */
    uint64_t en_val;  /* ... to ASYNC_PF_EN */
    uint32_t acks;    /* writes to ASYNC_PF_ACK */
} msrlog;

static void rec_cpuid(void *ctx, uint32_t cpu, uint32_t leaf, uint32_t subleaf, uint32_t regs[4])
{
    (void)ctx;
    apf_x86_arch_native.cpuid(NULL, cpu, leaf, subleaf, regs);
    REPORT(GABI_EV_CPUID, leaf, regs[0], regs[1], regs[2], regs[3]);
}

static int rec_wrmsr(void *ctx, uint32_t cpu, uint32_t msr, uint64_t value)
{
    (void)ctx;
    int rc = apf_x86_arch_native.wrmsr(NULL, cpu, msr, value);
    uint32_t seq = ++msrlog.seq;
    if (msr == APF_KVM_MSR_ASYNC_PF_INT) {
        msrlog.int_seq = seq;
        msrlog.int_val = value;
    } else if (msr == APF_KVM_MSR_ASYNC_PF_EN) {
        msrlog.en_seq = seq;
        msrlog.en_val = value;
    } else if (msr == APF_KVM_MSR_ASYNC_PF_ACK) {
        msrlog.acks++;
    }
    REPORT(GABI_EV_WRMSR, seq, msr, value, (uint64_t)(int64_t)rc);
    return rc;
}

static int rec_rdmsr(void *ctx, uint32_t cpu, uint32_t msr, uint64_t *value)
{
    (void)ctx;
    return apf_x86_arch_native.rdmsr(NULL, cpu, msr, value);
}

static const struct apf_x86_arch_ops rec_arch = {
    .cpuid = rec_cpuid,
    .wrmsr = rec_wrmsr,
    .rdmsr = rec_rdmsr,
};

/* ---- the environment --------------------------------------------------------------------- */

static struct {
    uint64_t before; /* compute progress when the task went to sleep */
    uint64_t after;  /* ... when it ran again */
    uint32_t slept;
} last_sleep;

static void *env_current_task(void *ctx)
{
    (void)ctx;
    return sched_current();
}

static uint32_t env_cpu_id(void *ctx)
{
    (void)ctx;
    return 0;
}

/* Only the #PF handler itself (depth 1) of a real task may sleep: not a fault taken inside an
 * interrupt handler, not the idle task. */
static int env_can_sleep(void *ctx)
{
    (void)ctx;
    return cpu_trap_depth <= 1 && !sched_in_idle();
}

static int waiter_woken(const void *w)
{
    return apf_guest_waiter_woken(w);
}

static void env_sleep(void *ctx, struct apf_guest_waiter *w)
{
    (void)ctx;
    last_sleep.before = kernel_progress;
    last_sleep.slept = 1;
    /* The task sleeps inside its #PF handler; the tasks that run meanwhile are not. */
    uint32_t depth = cpu_trap_depth;
    cpu_trap_depth = 0;
    sched_wait(waiter_woken, w);
    cpu_trap_depth = depth;
    last_sleep.after = kernel_progress;
    irq_enable(); /* the hook's contract: interrupts enabled on return */
}

static void env_wake(void *ctx, void *task, uint32_t cpu, int halted)
{
    (void)ctx;
    (void)cpu;
    /* A halted waiter is on this (only) CPU: the interrupt that got us here ends its HLT. */
    if (!halted)
        sched_wake(task);
}

static void env_halt(void *ctx)
{
    (void)ctx;
    irq_enable_and_halt();
}

static uintptr_t env_lock(void *ctx, struct apf_guest_lock *l)
{
    (void)ctx;
    uint64_t flags = irq_save();
    while (__atomic_exchange_n(&l->word, 1u, __ATOMIC_ACQUIRE) != 0)
        cpu_relax();
    return (uintptr_t)flags;
}

static void env_unlock(void *ctx, struct apf_guest_lock *l, uintptr_t flags)
{
    (void)ctx;
    __atomic_store_n(&l->word, 0u, __ATOMIC_RELEASE);
    irq_restore(flags);
}

static uint64_t env_virt_to_phys(void *ctx, const void *va)
{
    (void)ctx;
    return (uint64_t)(uintptr_t)va; /* identity-mapped */
}

static void env_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    uint64_t a = (uint64_t)(int64_t)level;
    report_send(GABI_EV_LOG, &a, 1, msg);
}

static const struct apf_guest_env_ops env = {
    .current_task = env_current_task,
    .cpu_id = env_cpu_id,
    .can_sleep = env_can_sleep,
    .sleep = env_sleep,
    .wake = env_wake,
    .halt = env_halt,
    .lock = env_lock,
    .unlock = env_unlock,
    .virt_to_phys = env_virt_to_phys,
    .log = env_log,
};

/* ---- entry points ------------------------------------------------------------------------ */

int apf_glue_init(const struct gabi_boot_info *bi)
{
    struct apf_guest_config cfg = {0};
    cfg.n_cpus = 1;
    cfg.vector = bi->vector;
    /* The kernel runs at CPL 0: without SEND_ALWAYS KVM never sends it "not present". */
    cfg.flags = APF_GUEST_SEND_ALWAYS;
    if (bi->flags & GABI_BOOT_NO_APF)
        cfg.flags |= APF_GUEST_NO_APF;
    cfg.env = &env;
    cfg.backend = &apf_guest_backend_kvm_x86;
    cfg.backend_ctx = &backend;
    apf_guest_kvm_x86_init(&backend, &rec_arch, NULL);

    size_t need = apf_guest_mem_size(&cfg);
    int rc = APF_EINVAL;
    if (need != 0 && need <= sizeof(runtime_mem))
        rc = apf_guest_init(runtime_mem, sizeof(runtime_mem), &cfg, &rt);
    else if (need > sizeof(runtime_mem))
        rc = APF_ENOSPC;
    int avail = rc == 0 ? apf_guest_available(rt) : rc;
    REPORT(GABI_EV_PROBE, (uint64_t)(int64_t)avail, need, cfg.vector, (uint64_t)(int64_t)rc);
    if (rc != 0 || avail != 1)
        return 0;
    rt_vector = apf_guest_vector(rt);

    /* Interrupts stay off until the ONLINE report is out, so the wake-all that enabling
     * queues is taken after it (and we can see it pending in the IRR first). */
    uint64_t f = irq_save();
    int on = apf_guest_cpu_online(rt, 0);
    const struct apf_shared_area *area = apf_guest_area(rt, 0);
    REPORT(GABI_EV_ONLINE, (uint64_t)(int64_t)on, (uint64_t)(uintptr_t)area, msrlog.en_val,
           msrlog.int_val, msrlog.int_seq != 0 && msrlog.int_seq < msrlog.en_seq,
           rt_vector ? (uint64_t)apic_requested(rt_vector) : 0);
    irq_restore(f);
    return on == 0;
}

uint32_t apf_glue_vector(void)
{
    return rt_vector;
}

int apf_glue_page_fault(uint64_t cr2, uint64_t rip)
{
    if (rt == NULL)
        return 0;
    last_sleep.slept = 0;
    /* The token is 32 bits; a genuine fault's address is never taken for one, because the
     * runtime decides from the area's flags, not from CR2. */
    /* This kernel runs everything at CPL 0 and has no NMI source: every #PF is a kernel-mode
     * one, which owns the reason because SEND_ALWAYS is in force. */
    int rc = apf_guest_on_exception_from(rt, 0, (uint32_t)cr2, APF_GUEST_FROM_KERNEL);
    if (rc != 1)
        return 0;
    REPORT(GABI_EV_APF_PF, cr2, rip, last_sleep.slept ? last_sleep.before : 0,
           last_sleep.slept ? last_sleep.after : 0, kernel_touch_addr, last_sleep.slept);
    return 1;
}

void apf_glue_interrupt(uint32_t vector)
{
    const volatile struct apf_shared_area *a = apf_guest_area(rt, 0);
    uint32_t before = a->token;
    uint32_t acks = msrlog.acks;
    int isr_before = apic_in_service(vector);
    int woken = apf_guest_on_interrupt(rt, 0);
    uint32_t after = a->token;
    apic_eoi();
    int isr_after = apic_in_service(vector);
    REPORT(GABI_EV_IRQ, vector, before, after, (uint64_t)(int64_t)woken, isr_before, isr_after,
           msrlog.acks - acks);
}

int apf_glue_offline(void)
{
    if (rt == NULL)
        return APF_EOPNOTSUPP;
    uint64_t f = irq_save();
    int rc = apf_guest_cpu_offline(rt, 0);
    irq_restore(f);
    REPORT(GABI_EV_OFFLINE, (uint64_t)(int64_t)rc, msrlog.en_val);
    return rc;
}

uint64_t apf_glue_not_present(void)
{
    struct apf_guest_stats s;
    if (rt == NULL || apf_guest_stats(rt, 0, &s) != 0)
        return 0;
    return s.not_present;
}

int apf_glue_wake_all_seen(void)
{
    struct apf_guest_stats s;
    return rt != NULL && apf_guest_stats(rt, 0, &s) == 0 && s.wake_all > 0;
}

void apf_glue_report_stats(uint32_t tag)
{
    struct apf_guest_stats s = {0};
    if (rt != NULL)
        apf_guest_stats(rt, 0, &s);
    REPORT(GABI_EV_STATS, tag, s.not_present, s.slept, s.halted, s.placeholder_hits, s.retries,
           s.ready, s.wake_all, s.woken, s.placeholders, s.lost_wakeups, s.spurious,
           s.bad_host_values, s.acks, s.placeholders_in_use, s.enabled);
}
