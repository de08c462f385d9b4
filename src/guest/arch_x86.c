/* SPDX-License-Identifier: MIT */
/* The real x86 instructions behind the kvm_x86 backend's arch hook (CPL 0 only; x86-64 and
 * i686: the same 32-bit register interface). */
#include "apf/guest_backend.h"

#if defined(__x86_64__) || defined(__i386__)

static void native_cpuid(void *ctx, uint32_t cpu, uint32_t leaf, uint32_t subleaf,
                         uint32_t regs[4])
{
    (void)ctx, (void)cpu;
    uint32_t a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(leaf), "c"(subleaf));
    regs[0] = a;
    regs[1] = b;
    regs[2] = c;
    regs[3] = d;
}

static int native_wrmsr(void *ctx, uint32_t cpu, uint32_t msr, uint64_t value)
{
    (void)ctx, (void)cpu;
    __asm__ volatile("wrmsr"
                     :
                     : "c"(msr), "a"((uint32_t)value), "d"((uint32_t)(value >> 32))
                     : "memory");
    return 0;
}

static int native_rdmsr(void *ctx, uint32_t cpu, uint32_t msr, uint64_t *value)
{
    (void)ctx, (void)cpu;
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    *value = ((uint64_t)hi << 32) | lo;
    return 0;
}

const struct apf_x86_arch_ops apf_x86_arch_native = {
    .cpuid = native_cpuid,
    .wrmsr = native_wrmsr,
    .rdmsr = native_rdmsr,
};

#endif
