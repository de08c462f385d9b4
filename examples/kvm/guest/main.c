/* SPDX-License-Identifier: MIT */
/*
 * The example guest kernel: boot, APF bring-up, then a workload of two tasks.
 *
 *  - "toucher" reads remote pages (the VMM's userfaultfd slot) and checks every word, in
 *    phases on separate pages: APF on; optionally APF on with the VMM playing the host
 *    (GABI_PHASE_SIM_HOST); APF off (after apf_guest_cpu_offline());
 *  - "compute" counts (kernel_progress) and yields every compute_batch iterations.
 *
 * With hardware KVM a first touch of a remote page is a "not present" #PF: the toucher sleeps
 * in libapf-guest and compute keeps counting until "page ready". Where KVM cannot send
 * "not present" (software-emulated guests), the vCPU just waits and compute counts nothing
 * meanwhile. The per-phase progress shows the difference.
 */
#include <stddef.h>

#include "apf_glue.h"
#include "apic.h"
#include "cpu.h"
#include "report.h"
#include "sched.h"

#define WAKE_ALL_TIMEOUT_NS 200000000u /* bound on the wait for the wake-all: 200 ms */

static struct gabi_boot_info boot;
static volatile int workload_done;

/* Two instructions per iteration (dec, jnz): the VMM times this to learn the instruction
 * rate of the vCPU (hundreds of nanoseconds each when KVM emulates every instruction). */
static void calibrate(uint32_t iters)
{
    REPORT(GABI_EV_CALIB, 0, iters);
    uint64_t n = iters;
    __asm__ volatile("1: dec %0\n\tjnz 1b" : "+r"(n) : : "cc");
    REPORT(GABI_EV_CALIB, 1, iters);
}

/* Read every word of one remote page; returns the number of wrong words. */
static uint32_t check_page(uint64_t gpa)
{
    const volatile uint64_t *p = (const volatile uint64_t *)(uintptr_t)gpa;
    uint32_t bad = 0;
    for (uint32_t i = 0; i < GABI_PAGE_SIZE / 8u; i++)
        if (p[i] != gabi_pattern(gpa + 8u * i))
            bad++;
    return bad;
}

/* libapf-host phase: tell the VMM which page comes next, with interrupts on as KVM
 * requires for "not present". The VMM may inject the #PF right after this instruction. */
static void announce(uint64_t gpa)
{
    outl(GABI_PORT_ANNOUNCE, (uint32_t)gpa);
}

static void run_phase(uint32_t phase, uint32_t first_page)
{
    uint64_t p0 = kernel_progress;
    REPORT(GABI_EV_PHASE, phase, 0, 0, 0, 0, 0, apf_glue_not_present());
    uint32_t bad = 0;
    for (uint32_t i = 0; i < boot.pages_per_phase; i++) {
        uint64_t gpa = boot.remote_base + (uint64_t)(first_page + i) * GABI_PAGE_SIZE;
        kernel_touch_addr = gpa;
        if (phase == GABI_PHASE_SIM_HOST)
            announce(gpa);
        bad += check_page(gpa);
        sched_yield();
    }
    REPORT(GABI_EV_PHASE, phase, 1, boot.pages_per_phase,
           (uint64_t)boot.pages_per_phase * (GABI_PAGE_SIZE / 8u), bad, kernel_progress - p0,
           apf_glue_not_present());
}

static void toucher(void *arg)
{
    (void)arg;
    uint32_t next = 0;
    run_phase(GABI_PHASE_APF_ON, next);
    next += boot.pages_per_phase;
    if (boot.flags & GABI_BOOT_SIM_HOST) {
        run_phase(GABI_PHASE_SIM_HOST, next);
        next += boot.pages_per_phase;
    }
    apf_glue_offline();
    run_phase(GABI_PHASE_APF_OFF, next);
    workload_done = 1;
    apf_glue_report_stats(GABI_STATS_FINAL);
    report_exit(0);
}

static void compute(void *arg)
{
    (void)arg;
    while (!workload_done) {
        for (uint32_t i = 0; i < boot.compute_batch; i++)
            kernel_progress++;
        sched_yield();
    }
}

/*
 * Enabling queued a wake-all "page ready"; it is taken through the IDT once interrupts are on.
 * Wait for it with "sti; hlt", as a kernel waits for an interrupt: a vCPU whose instructions
 * KVM emulates gets a pending interrupt injected only when it next enters the guest with
 * IF = 1, which a spin loop never does. A one-shot timer bounds the wait, so a host that never
 * sends the wake-all cannot hang the guest (the VMM reports the absence).
 */
static void wait_for_wake_all(void)
{
    uint32_t fired = apic_timer_fired;
    apic_timer_oneshot(WAKE_ALL_TIMEOUT_NS);
    while (!apf_glue_wake_all_seen() && apic_timer_fired == fired) {
        irq_enable_and_halt();
        irq_disable();
    }
    apic_timer_stop();
}

void kmain(const struct gabi_boot_info *bi);

void kmain(const struct gabi_boot_info *bi)
{
    cpu_tables_init();
    if (bi == NULL || bi->magic != GABI_BOOT_MAGIC) {
        REPORT(GABI_EV_FATAL, 0, 0, 0, 0);
        report_exit(2);
    }
    boot = *bi;
    if (boot.compute_batch == 0)
        boot.compute_batch = 1;
    uint32_t phases = (boot.flags & GABI_BOOT_SIM_HOST) ? 3u : 2u;
    if ((uint64_t)boot.pages_per_phase * phases > boot.remote_pages) {
        REPORT(GABI_EV_FATAL, 0, 0, 0, 0);
        report_exit(2);
    }

    uint32_t mode = apic_init();
    REPORT(GABI_EV_BOOT, mode, apic_svr(), apic_id(), boot.vector);
    calibrate(boot.calib_iters);

    sched_init();
    if (apf_glue_init(&boot)) /* returns with interrupts off */
        wait_for_wake_all();
    irq_enable();
    apf_glue_report_stats(GABI_STATS_AFTER_WAKE_ALL);

    sched_spawn("toucher", toucher, NULL);
    sched_spawn("compute", compute, NULL);
    sched_idle_loop();
}
