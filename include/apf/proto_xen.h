/* SPDX-License-Identifier: MIT */
/**
 * @file proto_xen.h
 * @brief The xen-hvm wire ABI: APF for Xen HVM/PVH guests in Xen's own conventions
 * (dual-use: a hypervisor, a guest kernel or a test alike; needs only `<stdint.h>`).
 *
 * Facts taken from Xen's public interface (numbers only, no code): hypercall numbers,
 * sub-op numbers, error values, the x86-64 and arm64 calling conventions. Everything under
 * "Proposed" is libapf's choice, **not allocated by Xen**: an allocation upstream is a
 * change of one define here.
 *
 * The wire, per vCPU (docs/transport-xen.md has the sequences):
 *  - discovery: `xen_version(XENVER_get_features, {submap_idx 0})`, bit #APF_XEN_FEAT_APF;
 *  - registration: `vcpu_op(APF_XEN_VCPUOP_REGISTER_APF, vcpu, &struct apf_xen_vcpu_apf)`
 *    naming, by guest-physical address, the 64-byte area and the ring page; the same call
 *    with `area_gpa = ~0` unregisters. Validated as Xen validates its phys-area
 *    registrations, before anything changes; results are Xen error values (-EINVAL,
 *    -EBUSY, -EPERM, -EAGAIN, -ENOENT, -EFAULT);
 *  - "not present": \#PF, error code 0, CR2 = token, reason (and token) in the area: the
 *    KVM x86 decode;
 *  - "page ready": tokens in the ready ring (struct apf_ring, no ACK), then an event on the
 *    per-vCPU VIRQ #APF_XEN_VIRQ_APF (bound with `EVTCHNOP_bind_virq`): Xen coalesces
 *    pending events, so the event carries nothing, the ring carries everything.
 */
#ifndef APF_PROTO_XEN_H
#define APF_PROTO_XEN_H

#include "apf/proto.h"

/** @name Xen facts: hypercalls, sub-ops, conventions (public Xen ABI)
 *  @{ */
#define APF_XEN_HC_XEN_VERSION 17u       /**< `__HYPERVISOR_xen_version`. */
#define APF_XEN_HC_VCPU_OP 24u           /**< `__HYPERVISOR_vcpu_op`: (cmd, vcpuid, arg). */
#define APF_XEN_HC_EVENT_CHANNEL_OP 32u  /**< `__HYPERVISOR_event_channel_op`: (cmd, arg). */
#define APF_XEN_HC_HVM_OP 34u            /**< `__HYPERVISOR_hvm_op`: (cmd, arg). */
#define APF_XEN_XENVER_GET_FEATURES 6u   /**< `XENVER_get_features` {submap_idx; OUT submap}. */
#define APF_XEN_EVTCHNOP_BIND_VIRQ 1u    /**< {virq, vcpu; OUT port}. */
#define APF_XEN_EVTCHNOP_CLOSE 3u        /**< {port}. */
#define APF_XEN_EVTCHNOP_UNMASK 9u       /**< {port}. */
#define APF_XEN_HVMOP_SET_EVTCHN_UPCALL_VECTOR 23u /**< {vcpu; vector (>= 0x10)}. */
#define APF_XEN_UPCALL_VECTOR_MIN 0x10u  /**< Lowest upcall vector Xen accepts. */
#define APF_XEN_HYPERCALL_STUB_SIZE 32u  /**< x86: `call hypercall_page + nr * 32`. */
#define APF_XEN_ARM64_HVC_IMM 0xEA1u     /**< arm64: `hvc #0xEA1`, number in x16. */
#define APF_XEN_NR_VIRQS 24u             /**< VIRQ numbers are below this. */
/** @} */

/** @name Xen error values (hypercalls return their negation; equal to Linux errno)
 *  @{ */
#define APF_XEN_EPERM 1u   /**< Not RAM (MMIO). */
#define APF_XEN_ENOENT 2u  /**< No such vCPU. */
#define APF_XEN_EAGAIN 11u /**< Paged out or shared: retry. */
#define APF_XEN_EFAULT 14u /**< The argument could not be read / written. */
#define APF_XEN_EBUSY 16u  /**< Already registered. */
#define APF_XEN_EINVAL 22u /**< Bad value, alignment, page crossing, no such page. */
#define APF_XEN_ENOSYS 38u /**< Unknown hypercall / sub-op. */
/** @} */

/** @name Proposed numbers (libapf's choice; not allocated by Xen)
 *  @{ */
/** vcpu_op sub-op registering APF (the highest allocated, `register_vcpu_time_phys_area`,
 *  is 15). */
#define APF_XEN_VCPUOP_REGISTER_APF 16u
/** `XENVER_get_features` bit, submap 0: the host offers #APF_XEN_VCPUOP_REGISTER_APF. */
#define APF_XEN_FEAT_APF 21u
/** Per-vCPU VIRQ of "page ready" (14 and 15 are unused by Xen). */
#define APF_XEN_VIRQ_APF 14u
/** @} */

/** apf_xen_vcpu_apf::area_gpa value that unregisters. */
#define APF_XEN_UNREGISTER (~0ull)
/** apf_xen_vcpu_apf::flags: deliver "not present" at CPL 0 too. */
#define APF_XEN_APF_SEND_ALWAYS (1u << 0)
/** Valid apf_xen_vcpu_apf::flags bits. */
#define APF_XEN_APF_FLAGS_VALID APF_XEN_APF_SEND_ALWAYS

/**
 * @brief Argument of `vcpu_op(APF_XEN_VCPUOP_REGISTER_APF)` (32 bytes, in guest memory).
 * The guest writes the IN fields; on success (only) the host writes the OUT fields.
 */
struct apf_xen_vcpu_apf {
    /** IN: the 64-byte aligned shared area (struct apf_shared_area), or
     *  #APF_XEN_UNREGISTER (the other fields are then ignored). */
    uint64_t area_gpa;
    /** IN: the ready ring page (4096-aligned). */
    uint64_t ring_gpa;
    /** IN: the guest's protocol version (#APF_PROTO_VERSION; another major: -EINVAL).
     *  OUT: the host's. */
    uint32_t version;
    /** IN: APF_XEN_APF_* flags (unknown bits: -EINVAL). */
    uint32_t flags;
    /** IN: ring entries, a power of two #APF_RING_MIN_ENTRIES .. #APF_RING_MAX_ENTRIES.
     *  OUT: as accepted. */
    uint32_t ring_entries;
    /** OUT: the host's per-vCPU outstanding limit. */
    uint32_t slots;
};

#define APF_XEN_VCPU_APF_SIZE 32u /**< sizeof(struct apf_xen_vcpu_apf). */
APF_STATIC_ASSERT(sizeof(struct apf_xen_vcpu_apf) == APF_XEN_VCPU_APF_SIZE, "32 bytes");
APF_STATIC_ASSERT(APF__OFFSETOF(struct apf_xen_vcpu_apf, version) == 16, "version at 16");
APF_STATIC_ASSERT(APF__OFFSETOF(struct apf_xen_vcpu_apf, slots) == 28, "slots at 28");

/** @brief `EVTCHNOP_bind_virq` argument (Xen layout). */
struct apf_xen_evtchn_bind_virq {
    uint32_t virq; /**< IN: VIRQ number. */
    uint32_t vcpu; /**< IN: vCPU to bind it on. */
    uint32_t port; /**< OUT: the event-channel port. */
};

/** @brief `XENVER_get_features` argument (Xen layout). */
struct apf_xen_feature_info {
    uint32_t submap_idx; /**< IN: which 32-bit submap. */
    uint32_t submap;     /**< OUT: its bits. */
};

/** @brief `HVMOP_set_evtchn_upcall_vector` argument (Xen layout). */
struct apf_xen_upcall_vector {
    uint32_t vcpu;  /**< IN: vCPU. */
    uint8_t vector; /**< IN: vector (>= #APF_XEN_UPCALL_VECTOR_MIN). */
    uint8_t pad[3]; /**< 0. */
};

#endif /* APF_PROTO_XEN_H */
