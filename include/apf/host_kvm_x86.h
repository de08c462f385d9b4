/* SPDX-License-Identifier: MIT */
/**
 * @file host_kvm_x86.h
 * @brief KVM x86 transport: #apf_host_transport_kvm_x86 (the notification plane) and its
 * frontend (the three APF MSRs and the KVM CPUID leaves, the control plane).
 *
 * Create the engine with apf_host_config::transport = &apf_host_transport_kvm_x86, then the
 * frontend over it.
 * Lets a VMM expose exactly Linux KVM's paravirtual APF interface: route the guest's
 * `wrmsr`/`rdmsr` of MSRs 0x4b564d02/06/07 and `cpuid` of leaves 0x40000000/1 here. Semantics
 * follow Linux `Documentation/virt/kvm/x86/msr.rst` and `arch/x86/kvm/x86.c`, including its
 * fixes; where libapf is stricter it says so:
 *  - ASYNC_PF_EN: bits 5:4 reserved (\#GP); bit 2 needs CPUID ASYNC_PF_VMEXIT, bit 3 needs
 *    ASYNC_PF_INT (\#GP); APF is on only with bits 0 and 3 both set, bit 0 alone means off;
 *    without an in-kernel local APIC only 0 is accepted. Stricter than KVM: turning APF on
 *    needs the vector written first (KVM would send on vector 0) and the area to be guest
 *    memory; a refused write changes nothing (KVM's 2025 fix).
 *  - ASYNC_PF_INT: bits 63:8 reserved (\#GP); needs CPUID ASYNC_PF_INT. Stricter than KVM:
 *    vectors below 32 are refused.
 *  - ASYNC_PF_ACK: needs CPUID ASYNC_PF_INT; bit 0 set = ACK, other bits ignored, reads 0.
 *
 * Context: vCPU context for everything that names a vCPU (see apf/host.h).
 */
#ifndef APF_HOST_KVM_X86_H
#define APF_HOST_KVM_X86_H

#include <stdint.h>

#include "apf/host.h"
#include "apf/host_transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief The frontend of one VM (opaque). */
struct apf_host_kvm_x86;

/** @brief Frontend configuration (zero-initialise). */
struct apf_host_kvm_x86_config {
    /** EAX of CPUID 0x40000001 as the VMM exposes it (any KVM feature bits it implements;
     *  the APF bits decide which MSR values are valid). 0 = ASYNC_PF | ASYNC_PF_INT. */
    uint32_t cpuid_features;
    /** Non-zero if the VMM has no in-kernel local APIC: then only EN = 0 is accepted. */
    uint32_t no_lapic_in_kernel;
};

/** apf_host_kvm_x86_wrmsr() / _rdmsr() result: not one of the APF MSRs, handle it elsewhere. */
#define APF_HOST_KVM_X86_NOT_MINE 1

/**
 * @brief Create the frontend over an engine created with #apf_host_transport_kvm_x86.
 * @param h Engine (must outlive the frontend).
 * @param cfg Configuration, or NULL for defaults.
 * @param[out] out The frontend.
 * @return 0; APF_EINVAL (NULL @p h or @p out, engine of another transport); APF_ENOMEM.
 */
APF_API int apf_host_kvm_x86_create(struct apf_host *h, const struct apf_host_kvm_x86_config *cfg,
                               struct apf_host_kvm_x86 **out);

/**
 * @brief Free the frontend. It does not use the engine (it keeps its own copy of the
 * engine's allocator): the engine may be destroyed before or after it.
 * @param fe Frontend, or NULL (no-op).
 */
APF_API void apf_host_kvm_x86_destroy(struct apf_host_kvm_x86 *fe);

/**
 * @brief The guest wrote an MSR.
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @param msr MSR number (ECX).
 * @param value Value (EDX:EAX).
 * @return 0 if handled; #APF_HOST_KVM_X86_NOT_MINE for other MSRs; a negative code if KVM would
 *         raise \#GP: inject \#GP into the guest (nothing changed): APF_EINVAL for a value
 *         refused, APF_EOPNOTSUPP when the CPUID feature is not offered, APF_EFAULT for an
 *         area outside guest memory, APF_ENODEV for an unknown vCPU.
 */
APF_API int apf_host_kvm_x86_wrmsr(struct apf_host_kvm_x86 *fe, uint32_t vcpu, uint32_t msr,
                              uint64_t value);

/**
 * @brief The guest (or the VMM, e.g. for KVM_GET_MSRS) reads an MSR.
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @param msr MSR number.
 * @param[out] value The value, read from the engine whichever entry point changed it (these
 *        MSRs, or apf_host_vcpu_disable() / _reset() / _restore()): EN = area | flags while
 *        APF is on, else the last accepted write that left it off (0 after a reset or a
 *        disable at engine level); INT = the engine's vector; ACK always 0.
 * @return 0; #APF_HOST_KVM_X86_NOT_MINE; APF_EOPNOTSUPP when the CPUID feature is not offered
 *         (\#GP); APF_ENODEV for an unknown vCPU.
 */
APF_API int apf_host_kvm_x86_rdmsr(struct apf_host_kvm_x86 *fe, uint32_t vcpu, uint32_t msr,
                              uint64_t *value);

/**
 * @brief Answer a CPUID leaf the way KVM does.
 * Leaf 0x40000000: EAX = 0x40000001, EBX/ECX/EDX = "KVMKVMKVM\0\0\0". Leaf 0x40000001:
 * EAX = the configured features, EBX = ECX = EDX = 0.
 * @param fe Frontend.
 * @param leaf EAX input.
 * @param[out] regs EAX, EBX, ECX, EDX (unchanged if the leaf is not one of these).
 * @return 1 if the leaf was answered, 0 if not.
 */
APF_API int apf_host_kvm_x86_cpuid(const struct apf_host_kvm_x86 *fe, uint32_t leaf, uint32_t regs[4]);

/**
 * @brief vCPU reset (INIT/RESET): both MSRs read 0 again and the engine's vCPU is reset.
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @return 0; APF_ENODEV for an unknown vCPU.
 */
APF_API int apf_host_kvm_x86_vcpu_reset(struct apf_host_kvm_x86 *fe, uint32_t vcpu);

/**
 * @brief Migration destination: restore the MSRs saved on the source (KVM_SET_MSRS), INT
 * first, then EN (turning APF on queues the wake-all). Validated as guest writes are.
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @param msr_int Saved ASYNC_PF_INT (0 if never written).
 * @param msr_en Saved ASYNC_PF_EN.
 * @return 0, or the error of the MSR write that was refused (then nothing changed). Both 0
 *         (MSRs never written) is always accepted, whatever the CPUID features: the vCPU is
 *         reset.
 */
APF_API int apf_host_kvm_x86_restore(struct apf_host_kvm_x86 *fe, uint32_t vcpu, uint64_t msr_int,
                                uint64_t msr_en);

#ifdef __cplusplus
}
#endif

#endif /* APF_HOST_KVM_X86_H */
