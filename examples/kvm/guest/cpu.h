/* SPDX-License-Identifier: MIT */
/* x86-64 CPU primitives of the example kernel: port I/O, interrupt flag, control registers,
 * MSRs, descriptor tables, and the trap frame the stubs in entry.S build. */
#ifndef KG_CPU_H
#define KG_CPU_H

#include <stdint.h>

#define RFLAGS_IF (1ull << 9)

/* What trap_common pushes, lowest address first. */
struct trap_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};

static inline void outl(uint16_t port, uint32_t v)
{
    __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint64_t irq_save(void)
{
    uint64_t f;
    __asm__ volatile("pushfq; popq %0; cli" : "=r"(f) : : "memory");
    return f;
}

static inline void irq_restore(uint64_t f)
{
    if (f & RFLAGS_IF)
        __asm__ volatile("sti" : : : "memory");
}

static inline void irq_enable(void)
{
    __asm__ volatile("sti" : : : "memory");
}

static inline void irq_disable(void)
{
    __asm__ volatile("cli" : : : "memory");
}

/* STI's one-instruction shadow makes "sti; hlt" atomic: an interrupt that is already pending
 * wakes the HLT instead of being taken just before it. */
static inline void irq_enable_and_halt(void)
{
    __asm__ volatile("sti; hlt" : : : "memory");
}

static inline void cpu_relax(void)
{
    __asm__ volatile("pause" : : : "memory");
}

static inline uint64_t read_cr2(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr2, %0" : "=r"(v));
    return v;
}

static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory");
}

static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    __asm__ volatile("cpuid"
                     : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                     : "a"(leaf), "c"(sub));
}

/* Load this kernel's GDT (with a TSS) and IDT. */
void cpu_tables_init(void);

/* Called by trap_common for every vector (entry.S). */
void trap_dispatch(struct trap_frame *f);

/* Nesting depth of trap_dispatch: > 0 in exception or interrupt context. */
extern volatile uint32_t cpu_trap_depth;

#endif /* KG_CPU_H */
