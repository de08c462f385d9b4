/* SPDX-License-Identifier: MIT */
/* The real aarch64 `hvc #0` behind the kvm_arm64 backend's arch hook (EL1 only). */
#include "apf/guest_backend.h"

#if defined(__aarch64__)

static void native_smccc(void *ctx, uint32_t cpu, const uint64_t in[4], uint64_t out[4])
{
    (void)ctx, (void)cpu;
    /* Loads first: instrumentation (KASAN, sanitizers) may call out between a register
     * variable's initialisation and the asm, clobbering x0..x3. */
    uint64_t a0 = in[0], a1 = in[1], a2 = in[2], a3 = in[3];
    register uint64_t x0 __asm__("x0") = a0;
    register uint64_t x1 __asm__("x1") = a1;
    register uint64_t x2 __asm__("x2") = a2;
    register uint64_t x3 __asm__("x3") = a3;
    /* SMCCC 1.0 lets the callee clobber x4-x17. */
    __asm__ volatile("hvc #0"
                     : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3)
                     :
                     : "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14",
                       "x15", "x16", "x17", "memory");
    out[0] = x0;
    out[1] = x1;
    out[2] = x2;
    out[3] = x3;
}

const struct apf_arm64_arch_ops apf_arm64_arch_native = {
    .smccc = native_smccc,
};

#endif
