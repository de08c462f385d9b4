/* SPDX-License-Identifier: MIT */
/**
 * @file host_s390.h
 * @brief s390 "pfault" transport: #apf_host_transport_s390 (the notification plane) and its
 * frontend (DIAGNOSE X'258', the gate, the floating "page ready" queue, migration).
 *
 * Byte-compatible with what Linux's s390 guest expects from KVM s390 and z/VM (wire:
 * apf/proto_s390.h, sequences: docs/transport-s390.md). Create the engine with
 * apf_host_config::transport = &apf_host_transport_s390, then this frontend over it, and
 * drive the vCPU through it:
 *  - DIAGNOSE X'258' intercept: apf_host_s390_diag258();
 *  - a stage-2 fault: apf_host_s390_fault() (instead of apf_host_vcpu_fault(): it carries
 *    the PSW mask, CR0 and "interrupt pending" to the gate); on #APF_FAULT_ASYNC inject
 *    external interrupt 0x2603 subcode 0x0600 with the returned parameter into this vCPU;
 *  - before every guest entry: apf_host_s390_before_entry() (instead of
 *    apf_host_vcpu_before_entry()); if it returns 1, inject 0x2603 subcode 0x0680 with the
 *    returned parameter into the entering vCPU.
 *
 * How the model differs from KVM x86, and how the engine absorbs it:
 *  - **The guest owns the token.** At fault time the transport reads the 8-byte big-endian
 *    value at the guest's token address (the current task's) and keeps it, keyed by the
 *    engine's own 32-bit token, in a per-vCPU table of the frontend; it comes back as the
 *    interruption parameter of the completion. The engine's token stays the key of dedup,
 *    the outstanding limit and apf_host_complete().
 *  - **The gate** is `(PSW & select) == compare`, external interrupts enabled, nothing
 *    pending, CR0 service-signal subclass on. The frontend turns PSW/CR0/pending into the
 *    engine's #APF_GS_IRQ_ON / #APF_GS_EXC_PENDING and the transport checks the masks.
 *    APF is enabled in the engine with #APF_EN_SEND_ALWAYS, so the engine's own
 *    "user mode only" rule gives way to the guest's masks.
 *  - **Floating "page ready".** A completion leaves its vCPU's engine FIFO into one
 *    VM-wide FIFO (ready_post) and may be taken by any vCPU that can take a service-signal
 *    interrupt: whichever calls apf_host_s390_before_entry() next, or one the VMM picks
 *    with apf_host_s390_take_ready(). The engine's inject_ready callback (vector 0x2603)
 *    means "the floating FIFO became non-empty": wake or kick a vCPU that can take it.
 *  - **No ACK, no window** (apf_host_chan::window 0, needs_ack 0), no broadcast wake-all.
 *    Dedup and the outstanding limit hold as for every transport; the floating FIFO holds
 *    n_vcpus * max_outstanding entries, and a full FIFO keeps completions in the engine.
 *  - **Only the frontend establishes.** The masks are not part of the engine's state, so
 *    apf_host_vcpu_enable() and an apf_host_vcpu_restore() of an enabled state answer
 *    APF_EINVAL for this transport (changing nothing): migrate with
 *    apf_host_s390_get_state() / apf_host_s390_set_state(). The engine's disable, reset and
 *    restore of a disabled state cancel, as CANCEL does.
 *
 * Calling contexts: as apf/host.h (vCPU context for everything that names a vCPU); the
 * floating FIFO is shared between vCPU threads under a spinlock of its own (a leaf).
 */
#ifndef APF_HOST_S390_H
#define APF_HOST_S390_H

#include <stdint.h>

#include "apf/host.h"
#include "apf/host_transport.h"
#include "apf/proto_s390.h"

#ifdef __cplusplus
extern "C" {
#endif

/** s390 pfault: floating "page ready", no ACK, no window, guest-owned 64-bit tokens. */
APF_API extern const struct apf_host_transport_ops apf_host_transport_s390;

/** @brief The frontend of one VM (opaque). */
struct apf_host_s390;

/** @brief Frontend configuration (zero-initialise). */
struct apf_host_s390_config {
    /** Optional: guest real address -> absolute address for @p vcpu (s390 prefixing: the
     *  parameter block and the token address are real addresses). NULL = identity. vCPU
     *  context. */
    uint64_t (*real_to_abs)(void *ctx, uint32_t vcpu, uint64_t real);
    void *ctx;           /**< First argument of real_to_abs. */
    uint64_t reserved[4]; /**< Must be 0. */
};

/** @brief What the gate needs of a vCPU at a fault or an entry. */
struct apf_host_s390_cpu {
    uint64_t psw_mask; /**< The PSW mask (bits 0-63 of the 128-bit PSW). */
    uint64_t cr0;      /**< Control register 0. */
    uint32_t pending;  /**< Non-zero if an interrupt is pending for this vCPU. */
    uint32_t reserved; /**< 0. */
};

/** @brief A vCPU's pfault registers, for migration (KVM's PFTOKEN, PFSELECT, PFCOMPARE). */
struct apf_host_s390_state {
    uint64_t token_addr; /**< Token address, or #APF_S390_TOKEN_INVALID if not established. */
    uint64_t select;     /**< Select mask (0 if not established). */
    uint64_t compare;    /**< Compare mask (0 if not established). */
};

/** apf_host_s390_diag258(): the VMM raises a specification exception (nothing changed). */
#define APF_HOST_S390_SPECIFICATION APF_EINVAL
/** apf_host_s390_diag258(): the VMM raises an addressing exception (nothing changed). */
#define APF_HOST_S390_ADDRESSING APF_EFAULT

/**
 * @brief Create the frontend over an engine created with #apf_host_transport_s390.
 * @param h Engine (must outlive the frontend).
 * @param cfg Configuration, or NULL for defaults.
 * @param[out] out The frontend.
 * @return 0; APF_EINVAL (NULL @p h or @p out, engine of another transport, a frontend
 *         exists already, non-zero reserved words); APF_ENOMEM.
 */
APF_API int apf_host_s390_create(struct apf_host *h, const struct apf_host_s390_config *cfg,
                                 struct apf_host_s390 **out);

/**
 * @brief Free the frontend (the engine must not be used with it afterwards). Unlike the
 * other frontends, destroy it before the engine: it unhooks itself from the engine's
 * per-vCPU channels (the floating completion queue lives in the frontend).
 * @param fe Frontend, or NULL (no-op).
 */
APF_API void apf_host_s390_destroy(struct apf_host_s390 *fe);

/**
 * @brief The guest executed DIAGNOSE X'258' with Rx = @p block (a real address).
 *
 * Checks, in this order (everything before anything changes):
 *  1. @p block 8-byte aligned, else specification; its 40 bytes readable, else addressing;
 *  2. code 0x0258, length >= 5 doublewords, version 2, else specification;
 *  3. INIT (subcode 0): already established -> Ry = 8, nothing changes; compare not within
 *     select, token address not 8-byte aligned or reserved word not 0x8000000000000000 ->
 *     specification; token address not guest memory -> addressing; else established,
 *     Ry = 0;
 *  4. CANCEL (subcode 1): token address, masks or reserved word non-zero -> specification;
 *     not established -> Ry = 4; else cancelled (outstanding faults and this vCPU's
 *     completions in the floating FIFO are dropped), Ry = 0;
 *  5. any other subcode: specification.
 * Context: vCPU context.
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @param block Rx: real address of the parameter block.
 * @param[out] ry The return code for Ry (set only when 0 is returned).
 * @return 0; #APF_HOST_S390_SPECIFICATION; #APF_HOST_S390_ADDRESSING; APF_ENODEV (unknown
 *         vCPU or NULL argument).
 */
APF_API int apf_host_s390_diag258(struct apf_host_s390 *fe, uint32_t vcpu, uint64_t block,
                                  uint64_t *ry);

/**
 * @brief A stage-2 fault: apf_host_vcpu_fault() with the s390 gate.
 * Context: vCPU context.
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @param gpa Faulting absolute address.
 * @param cpu PSW mask, CR0 and "pending" now.
 * @param[out] param On #APF_FAULT_ASYNC: the interruption parameter of 0x2603/0x0600 (the
 *        task token read from the guest). Untouched otherwise.
 * @return An #apf_fault_result; APF_ENODEV (unknown vCPU or NULL argument).
 */
APF_API int apf_host_s390_fault(struct apf_host_s390 *fe, uint32_t vcpu, uint64_t gpa,
                                const struct apf_host_s390_cpu *cpu, uint64_t *param);

/**
 * @brief Before entering @p vcpu: move its completions to the floating FIFO
 * (apf_host_vcpu_before_entry()), then apf_host_s390_take_ready() for it.
 * Context: vCPU context.
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @param cpu PSW mask, CR0 and "pending" now.
 * @param[out] param When 1 is returned: the interruption parameter of 0x2603/0x0680.
 * @return 1 (inject it now), 0 (nothing for this vCPU); APF_ENODEV.
 */
APF_API int apf_host_s390_before_entry(struct apf_host_s390 *fe, uint32_t vcpu,
                                       const struct apf_host_s390_cpu *cpu, uint64_t *param);

/**
 * @brief Take the oldest floating "page ready" for @p vcpu if it can take a service-signal
 * external interrupt now (PSW external mask and CR0 subclass mask on). Any vCPU may take
 * any completion (the VMM may choose which one calls this).
 * Context: vCPU context of @p vcpu.
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @param cpu PSW mask and CR0 now.
 * @param[out] param When 1 is returned: the interruption parameter (the task token).
 * @return 1 (inject 0x2603/0x0680 now), 0 (none, or this vCPU cannot take it); APF_ENODEV.
 */
APF_API int apf_host_s390_take_ready(struct apf_host_s390 *fe, uint32_t vcpu,
                                     const struct apf_host_s390_cpu *cpu, uint64_t *param);

/**
 * @brief Floating "page ready"s waiting for a vCPU. Any thread (a relaxed snapshot).
 * @param fe Frontend.
 * @return The count (0 for NULL).
 */
APF_API uint32_t apf_host_s390_floating(const struct apf_host_s390 *fe);

/**
 * @brief Save a vCPU's pfault registers.
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @param[out] st The state.
 * @return 0; APF_ENODEV.
 */
APF_API int apf_host_s390_get_state(struct apf_host_s390 *fe, uint32_t vcpu,
                                    struct apf_host_s390_state *st);

/**
 * @brief Restore a vCPU's pfault registers (migration destination, or the VMM setting the
 * registers). A token address of #APF_S390_TOKEN_INVALID cancels: outstanding faults and
 * this vCPU's floating completions are dropped, as KVM s390 does. A valid one is checked as
 * INIT checks it (8-byte aligned, guest memory, compare within select) and established
 * afresh (work of an earlier establishment is dropped). Invalid input changes nothing.
 * Context: vCPU context.
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @param st The state.
 * @return 0; APF_EINVAL (alignment, masks, non-zero masks with an invalid token);
 *         APF_EFAULT (token address not guest memory); APF_ENODEV.
 */
APF_API int apf_host_s390_set_state(struct apf_host_s390 *fe, uint32_t vcpu,
                                    const struct apf_host_s390_state *st);

/**
 * @brief vCPU reset: pfault is cancelled (as CANCEL, and the engine's vCPU reset).
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @return 0; APF_ENODEV.
 */
APF_API int apf_host_s390_vcpu_reset(struct apf_host_s390 *fe, uint32_t vcpu);

#ifdef __cplusplus
}
#endif

#endif /* APF_HOST_S390_H */
