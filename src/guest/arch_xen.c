/* SPDX-License-Identifier: MIT */
/*
 * The real Xen hypercall instructions behind the xen-hvm backend's arch hook.
 * x86-64: `call hypercall_page + nr * 32` (each 32-byte stub loads the number into eax and
 * traps), arguments in rdi, rsi, rdx, r10, r8, result in rax. arm64: `hvc #0xEA1`, number in
 * x16, arguments in x0..x4, result in x0. Guest kernel only (CPL 0 / EL1).
 */
#include "apf/guest_xen.h"

#if defined(__x86_64__)

static int64_t native_hypercall(void *ctx, uint32_t cpu, uint32_t nr, const uint64_t a[5])
{
    (void)cpu;
    uintptr_t stub = (uintptr_t)ctx + (uintptr_t)nr * APF_XEN_HYPERCALL_STUB_SIZE;
    /* Every load first: the compiler may put calls between a register variable's
     * initialisation and the asm (sanitizer instrumentation of a load does), which would
     * clobber r10 / r8. Nothing but register moves may sit between them. */
    uint64_t rdi = a[0], rsi = a[1], rdx = a[2], a3 = a[3], a4 = a[4];
    register uint64_t r10 __asm__("r10") = a3;
    register uint64_t r8 __asm__("r8") = a4;
    int64_t rax;
    /* The call pushes a return address: step over the red zone of non-kernel builds.
     * Xen may clobber the argument registers (debug builds do): all are outputs. */
    __asm__ volatile("lea -128(%%rsp), %%rsp\n\t"
                     "call *%[stub]\n\t"
                     "lea 128(%%rsp), %%rsp"
                     : "=a"(rax), "+D"(rdi), "+S"(rsi), "+d"(rdx), "+r"(r10), "+r"(r8)
                     : [stub] "r"(stub)
                     : "rcx", "r11", "memory", "cc");
    return rax;
}

const struct apf_xen_arch_ops apf_xen_arch_native = {
    .hypercall = native_hypercall,
};

#elif defined(__i386__)

/* i686: arguments in ebx, ecx, edx, esi, edi; result in eax (sign-extended). ebx may be the
 * PIC register: the compiler saves it around the asm when it is an operand. */
static int64_t native_hypercall(void *ctx, uint32_t cpu, uint32_t nr, const uint64_t a[5])
{
    (void)cpu;
    uintptr_t stub = (uintptr_t)ctx + (uintptr_t)nr * APF_XEN_HYPERCALL_STUB_SIZE;
    uint32_t ebx = (uint32_t)a[0], ecx = (uint32_t)a[1], edx = (uint32_t)a[2];
    uint32_t esi = (uint32_t)a[3], edi = (uint32_t)a[4];
    int32_t eax;
    __asm__ volatile("call *%[stub]"
                     : "=a"(eax), "+b"(ebx), "+c"(ecx), "+d"(edx), "+S"(esi), "+D"(edi)
                     : [stub] "m"(stub)
                     : "memory", "cc");
    return eax;
}

const struct apf_xen_arch_ops apf_xen_arch_native = {
    .hypercall = native_hypercall,
};

#endif

#if defined(__aarch64__)

static int64_t native_hypercall_arm64(void *ctx, uint32_t cpu, uint32_t nr, const uint64_t a[5])
{
    (void)ctx, (void)cpu;
    uint64_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], a4 = a[4]; /* loads first (see above) */
    register uint64_t x0 __asm__("x0") = a0;
    register uint64_t x1 __asm__("x1") = a1;
    register uint64_t x2 __asm__("x2") = a2;
    register uint64_t x3 __asm__("x3") = a3;
    register uint64_t x4 __asm__("x4") = a4;
    register uint64_t x16 __asm__("x16") = nr;
    __asm__ volatile("hvc #0xEA1"
                     : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3), "+r"(x4), "+r"(x16)
                     :
                     : "memory");
    return (int64_t)x0;
}

const struct apf_xen_arch_ops apf_xen_arch_native_arm64 = {
    .hypercall = native_hypercall_arm64,
};

#endif
