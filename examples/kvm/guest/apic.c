/* SPDX-License-Identifier: MIT */
/*
 * Local APIC. KVM delivers "page ready" through it and, with APF on, dequeues completions
 * only while it is software-enabled (SVR bit 8), so apic_init() runs before APF is enabled.
 * Register numbers: Intel SDM vol. 3, "Advanced Programmable Interrupt Controller".
 */
#include "apic.h"

#include "cpu.h"
#include "guest_abi.h"

#define MSR_APIC_BASE 0x1bu
#define APIC_BASE_ENABLE (1ull << 11)
#define APIC_BASE_X2APIC (1ull << 10)
#define APIC_XAPIC_PHYS 0xfee00000u
#define CPUID1_ECX_X2APIC (1u << 21)

/* Register offsets in the xAPIC page; the x2APIC MSR is 0x800 + offset / 16. */
#define REG_ID 0x20u
#define REG_TPR 0x80u
#define REG_EOI 0xb0u
#define REG_SVR 0xf0u
#define REG_ISR 0x100u
#define REG_IRR 0x200u
#define REG_LVT_TIMER 0x320u
#define REG_TIMER_INIT 0x380u
#define REG_TIMER_DIV 0x3e0u
#define LVT_MASKED (1u << 16)
#define TIMER_DIV_1 0xbu
#define SVR_ENABLE (1u << 8)

static int x2apic;
volatile uint32_t apic_timer_fired;

static uint32_t reg_read(uint32_t off)
{
    if (x2apic)
        return (uint32_t)rdmsr(0x800u + off / 16u);
    return *(volatile uint32_t *)(uintptr_t)(APIC_XAPIC_PHYS + off);
}

static void reg_write(uint32_t off, uint32_t v)
{
    if (x2apic)
        wrmsr(0x800u + off / 16u, v);
    else
        *(volatile uint32_t *)(uintptr_t)(APIC_XAPIC_PHYS + off) = v;
}

uint32_t apic_init(void)
{
    uint32_t r[4];
    cpuid(1, 0, r);
    uint64_t base = rdmsr(MSR_APIC_BASE);
    if (r[2] & CPUID1_ECX_X2APIC) {
        /* xAPIC -> x2APIC: the globally enabled bit must already be set. */
        base |= APIC_BASE_ENABLE;
        wrmsr(MSR_APIC_BASE, base);
        wrmsr(MSR_APIC_BASE, base | APIC_BASE_X2APIC);
        x2apic = 1;
    } else {
        wrmsr(MSR_APIC_BASE, base | APIC_BASE_ENABLE);
    }
    reg_write(REG_TPR, 0);
    reg_write(REG_SVR, SVR_ENABLE | APIC_SPURIOUS_VECTOR);
    return x2apic ? GABI_LAPIC_X2APIC : GABI_LAPIC_XAPIC;
}

uint32_t apic_svr(void)
{
    return reg_read(REG_SVR);
}

uint32_t apic_id(void)
{
    uint32_t id = reg_read(REG_ID);
    return x2apic ? id : id >> 24;
}

void apic_eoi(void)
{
    reg_write(REG_EOI, 0);
}

int apic_in_service(uint32_t vector)
{
    return (reg_read(REG_ISR + 0x10u * (vector / 32u)) >> (vector % 32u)) & 1u;
}

int apic_requested(uint32_t vector)
{
    return (reg_read(REG_IRR + 0x10u * (vector / 32u)) >> (vector % 32u)) & 1u;
}

void apic_timer_oneshot(uint32_t count)
{
    reg_write(REG_TIMER_DIV, TIMER_DIV_1);
    reg_write(REG_LVT_TIMER, APIC_TIMER_VECTOR); /* one-shot, unmasked */
    reg_write(REG_TIMER_INIT, count);
}

void apic_timer_stop(void)
{
    reg_write(REG_LVT_TIMER, LVT_MASKED | APIC_TIMER_VECTOR);
    reg_write(REG_TIMER_INIT, 0);
}

void apic_timer_interrupt(void)
{
    apic_timer_fired++;
    apic_eoi();
}
