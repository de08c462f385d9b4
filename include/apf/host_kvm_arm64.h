/* SPDX-License-Identifier: MIT */
/**
 * @file host_kvm_arm64.h
 * @brief arm64 transport: #apf_host_transport_kvm_arm64 and its frontend, the SMCCC
 * vendor-hypervisor APF call (the seed series' design, function number moved: apf/proto.h).
 *
 * Create the engine with apf_host_config::transport = &apf_host_transport_kvm_arm64, then
 * the frontend over it. Route the guest's HVC/SMC with function ID #APF_ARM64_FUNC_ID here;
 * x1 selects the sub-function (VERSION, SLOTS, SDEI, IRQ, ENABLE, IRQ_ACK, and in protocol
 * 1.1 FEATURES and RING). "Not present" reaches the guest as the SDEI event (the engine's
 * `inject_not_present`), "page ready" as the PPI set with apf_host_kvm_arm64_set_irq() (the
 * engine's `inject_ready`). Results use SMCCC return codes.
 *
 * "Page ready" travels in the area, one at a time, released by IRQ_ACK (protocol 1.0), or,
 * if the guest registered a ring (RING: `page | log2(entries)` in x2/x3) and enabled with
 * #APF_ARM64_EN_RING, through the ready ring (struct apf_ring): batches, notification
 * hold-off, no IRQ_ACK. FEATURES returns #APF_FEATURE_RING unless the VMM turned it off.
 *
 * Argument registers of this SMC32 call are 32 bits wide: per SMCCC, the upper halves of
 * x1..x3 are ignored. ENABLE takes its 64-bit control value in x2 (low half) and x3 (high
 * half): bits 5:0 flags (ENABLED, SEND_ALWAYS, RING; others refused), the rest the 64-byte
 * aligned area address. A RING registration is refused while the ring is in use.
 *
 * Context: vCPU context for everything that names a vCPU (see apf/host.h).
 */
#ifndef APF_HOST_KVM_ARM64_H
#define APF_HOST_KVM_ARM64_H

#include <stdint.h>

#include "apf/host.h"
#include "apf/host_transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief The frontend of one VM (opaque). */
struct apf_host_kvm_arm64;

/** @brief Frontend configuration (zero-initialise). */
struct apf_host_kvm_arm64_config {
    uint32_t sdei_event; /**< SDEI event of "not present"; 0 = #APF_ARM64_SDEI_EVENT_DEFAULT. */
    uint32_t no_ring;    /**< Non-zero: do not offer the ready ring (protocol 1.0 only). */
};

/** @brief A vCPU's frontend state as the VMM commands GET/SET it (migration). */
struct apf_host_kvm_arm64_state {
    uint32_t version;    /**< Protocol version (#APF_PROTO_VERSION); SET refuses another
                              major or a newer version. */
    uint32_t sdei_event; /**< SDEI event number of "not present". */
    uint32_t irq;        /**< PPI INTID of "page ready" (16..31), 0 = not set. */
    uint32_t reserved;   /**< Must be 0. */
    uint64_t control;    /**< Control: address | flags while APF is on, else the last
                              ENABLE value that left it off (0 after a reset). */
    uint64_t ring;       /**< RING registration in force (page | log2), 0 = none. */
};

/** apf_host_kvm_arm64_hvc() result: not the APF function, handle the call elsewhere. */
#define APF_HOST_KVM_ARM64_NOT_MINE 1

/**
 * @brief Create the frontend over an engine created with #apf_host_transport_kvm_arm64.
 * @param h Engine (must outlive the frontend).
 * @param cfg Configuration, or NULL for defaults.
 * @param[out] out The frontend.
 * @return 0; APF_EINVAL (NULL @p h or @p out, engine of another transport); APF_ENOMEM.
 */
APF_API int apf_host_kvm_arm64_create(struct apf_host *h, const struct apf_host_kvm_arm64_config *cfg,
                                 struct apf_host_kvm_arm64 **out);

/**
 * @brief Free the frontend. It does not use the engine (it keeps its own copy of the
 * engine's allocator): the engine may be destroyed before or after it.
 * @param fe Frontend, or NULL (no-op).
 */
APF_API void apf_host_kvm_arm64_destroy(struct apf_host_kvm_arm64 *fe);

/**
 * @brief The guest made an SMCCC call (HVC or SMC).
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @param in x0..x3 of the call.
 * @param[out] out x0..x3 to return: x0 the result (an SMCCC code or the value asked for,
 *             sign-extended), x1..x3 zero. Unchanged if the call is not ours.
 * @return 0 if handled (including calls answered with an SMCCC error);
 *         #APF_HOST_KVM_ARM64_NOT_MINE for other function IDs; APF_ENODEV for an unknown vCPU.
 */
APF_API int apf_host_kvm_arm64_hvc(struct apf_host_kvm_arm64 *fe, uint32_t vcpu, const uint64_t in[4],
                              uint64_t out[4]);

/**
 * @brief The bits this frontend adds to the vendor-hyp features query (function
 * #APF_ARM64_FEATURES_FUNC_ID), which the VMM answers: `1 << APF_ARM64_FEATURE_BIT`.
 * @return The bit mask.
 */
APF_API uint64_t apf_host_kvm_arm64_features(void);

/**
 * @brief vCPU reset: the engine's vCPU is reset and the ring registration forgotten.
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @return 0; APF_ENODEV for an unknown vCPU.
 */
APF_API int apf_host_kvm_arm64_vcpu_reset(struct apf_host_kvm_arm64 *fe, uint32_t vcpu);

/**
 * @brief VMM command SET_IRQ: the PPI of "page ready" for a vCPU.
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @param ppi INTID 16..31.
 * @return 0; APF_EINVAL for an INTID out of range; APF_ENODEV for an unknown vCPU.
 */
APF_API int apf_host_kvm_arm64_set_irq(struct apf_host_kvm_arm64 *fe, uint32_t vcpu, uint32_t ppi);

/**
 * @brief VMM commands GET_VERSION/GET_SDEI/GET_IRQ/GET_CONTROL in one. Read from the engine
 * whichever entry point changed it (the SMCCC call, or apf_host_vcpu_disable() / _reset() /
 * _restore()): control = area | flags while APF is on, else the last accepted ENABLE that
 * left it off (0 after a reset or an engine-level disable); ring = the registration in force.
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @param[out] st The state.
 * @return 0; APF_ENODEV for an unknown vCPU; APF_EINVAL for NULL @p st.
 */
APF_API int apf_host_kvm_arm64_get_state(struct apf_host_kvm_arm64 *fe, uint32_t vcpu,
                                    struct apf_host_kvm_arm64_state *st);

/**
 * @brief VMM commands SET_SDEI/SET_IRQ/SET_RING/SET_CONTROL in one (migration destination,
 * before the vCPU runs). Validated as a guest RING and ENABLE are; if the control enables
 * APF, the guest receives a wake-all (in the ring, in ring mode: the ring restarts empty).
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @param st The state saved on the source.
 * @return 0; APF_EINVAL (version, reserved, IRQ, ring or control invalid); APF_EFAULT (area not
 *         guest memory); APF_ENODEV for an unknown vCPU. Nothing changes on error.
 */
APF_API int apf_host_kvm_arm64_set_state(struct apf_host_kvm_arm64 *fe, uint32_t vcpu,
                                    const struct apf_host_kvm_arm64_state *st);

#ifdef __cplusplus
}
#endif

#endif /* APF_HOST_KVM_ARM64_H */
