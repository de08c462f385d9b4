/* SPDX-License-Identifier: MIT */
/* The real s390x DIAGNOSE X'258' behind the s390 backend's arch hook (supervisor state). */
#include "apf/guest_s390.h"

#if defined(__s390x__)

/* Rx holds the block's real address, Ry receives the return code. A program exception
 * (no pfault support) is the kernel's to catch with its exception table; then Ry keeps the
 * value it had, preset to "already established" so that the caller treats it as refused. */
static int native_diag258(void *ctx, uint32_t cpu, uint64_t block)
{
    (void)ctx, (void)cpu;
    unsigned long rx = (unsigned long)block;
    unsigned long ry = APF_S390_RC_ALREADY;
    __asm__ volatile("diag %[rx],%[ry],0x258" : [ry] "+d"(ry) : [rx] "a"(rx) : "memory", "cc");
    return (int)(ry & 0xffffffffu);
}

const struct apf_s390_arch_ops apf_s390_arch_native = {
    .diag258 = native_diag258,
};

#endif
