/* SPDX-License-Identifier: MIT */
/**
 * @file guest_xen.h
 * @brief The xen-hvm guest backend (apf/proto_xen.h) and its hypercall arch hook.
 *
 * For x86 HVM/PVH guests of a Xen that offers #APF_XEN_FEAT_APF. The kernel installed the
 * hypercall page already (it knows it runs on Xen); the backend discovers the feature,
 * registers each CPU's area and ring with `vcpu_op`, sets the event-channel upcall vector
 * and binds #APF_XEN_VIRQ_APF on the CPU. The kernel's event-channel code calls
 * apf_guest_on_interrupt() when that port fires; "not present" is the \#PF with CR2 =
 * token, passed to apf_guest_on_exception() as on KVM. Freestanding.
 *
 * xen-arm64 is not offered: Xen on Arm has no SDEI and no other event a guest takes
 * synchronously at the faulting instruction that Xen could raise for APF today (see
 * docs/transport-xen.md); the arm64 hypercall hook exists for the discovery path only.
 */
#ifndef APF_GUEST_XEN_H
#define APF_GUEST_XEN_H

#include <stdint.h>

#include "apf/guest_backend.h"
#include "apf/proto_xen.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief A Xen hypercall on behalf of CPU @p cpu (the current one). */
struct apf_xen_arch_ops {
    /** Hypercall @p nr with five arguments (pointers are the kernel's addresses of the
     *  argument structures); returns the hypercall's result (0 or a negated Xen error). */
    int64_t (*hypercall)(void *ctx, uint32_t cpu, uint32_t nr, const uint64_t args[5]);
};

#if defined(__x86_64__) || defined(__i386__) || defined(DOXYGEN)
/** x86: `call hypercall_page + nr * 32`, arguments in rdi, rsi, rdx, r10, r8 (x86-64) or
 *  ebx, ecx, edx, esi, edi (i686, each truncated to 32 bits), result in rax / eax; `ctx` is
 *  the hypercall page as the kernel mapped it. CPL 0 only. */
APF_API extern const struct apf_xen_arch_ops apf_xen_arch_native;
#endif
#if defined(__aarch64__) || defined(DOXYGEN)
/** arm64: `hvc #0xEA1` with the number in x16, arguments in x0..x4, result in x0.
 *  EL1 only. (xen-arm64 APF is not offered; this serves discovery.) */
APF_API extern const struct apf_xen_arch_ops apf_xen_arch_native_arm64;
#endif

/** @brief Context of the xen-hvm backend (initialise with apf_guest_xen_init()). */
struct apf_guest_xen {
    const struct apf_xen_arch_ops *arch; /**< Arch hook. */
    void *arch_ctx;                      /**< Its context. */
    /** Ready ring entries per CPU: a power of two #APF_RING_MIN_ENTRIES ..
     *  #APF_RING_MAX_ENTRIES. Default #APF_RING_DEFAULT_ENTRIES. */
    uint32_t ring_entries;
    uint32_t slots; /**< Set by the first registration: the host's limit (OUT). Read-only. */
    /** The unregistration argument (`area_gpa` = #APF_XEN_UNREGISTER), constant after
     *  apf_guest_xen_init(): Xen reads it from the kernel's memory, so the context must
     *  live in memory Xen can read (it does, in a kernel's data). Read-only. */
    struct apf_xen_vcpu_apf unreg;
};

/**
 * @brief xen-hvm: probe = `XENVER_get_features` submap 0 bit #APF_XEN_FEAT_APF; channel =
 * the 64-byte area, the hypercall argument, the guest's ring state, the ring page at 4096
 * (8 KiB, 4096-aligned); vector = the kernel's event-channel upcall vector (0x10..0xff);
 * enable = HVMOP_set_evtchn_upcall_vector, vcpu_op(REGISTER_APF) (OUT fields checked),
 * EVTCHNOP_bind_virq; disable = vcpu_op(REGISTER_APF, ~0), EVTCHNOP_close. "Not present":
 * reason in the area, token = CR2 (the area's token must agree). "Page ready": the ring.
 */
APF_API extern const struct apf_guest_backend_ops apf_guest_backend_xen;

/**
 * @brief Initialise a xen-hvm backend context (ring_entries = #APF_RING_DEFAULT_ENTRIES).
 * @param b Context to fill.
 * @param arch Arch hook (apf_xen_arch_native on real hardware).
 * @param arch_ctx Its context (the hypercall page for apf_xen_arch_native).
 */
APF_API void apf_guest_xen_init(struct apf_guest_xen *b, const struct apf_xen_arch_ops *arch,
                                void *arch_ctx);

#ifdef __cplusplus
}
#endif

#endif /* APF_GUEST_XEN_H */
