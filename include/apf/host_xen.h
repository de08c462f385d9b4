/* SPDX-License-Identifier: MIT */
/**
 * @file host_xen.h
 * @brief xen-hvm transport: #apf_host_transport_xen and its frontend, the vcpu_op sub-op
 * #APF_XEN_VCPUOP_REGISTER_APF of apf/proto_xen.h.
 *
 * Create the engine with apf_host_config::transport = &apf_host_transport_xen (normally
 * with n_workers = 0: the pager's resume completes, apf_host_complete()), then the frontend
 * over it. Route the guest's hypercalls here (apf_host_xen_hypercall(): it takes vcpu_op
 * with the APF sub-op and returns #APF_HOST_XEN_NOT_MINE for everything else), add
 * apf_host_xen_features() to the `XENVER_get_features` answer, and let the embedder's
 * event-channel code send the VIRQ when the engine calls `inject_ready` (the "vector" is
 * the VIRQ number). "Not present" is the engine's `inject_not_present`: a \#PF with error
 * code 0 and CR2 = token, as `hvm_inject_page_fault()` does.
 *
 * Context: vCPU context for everything that names a vCPU (see apf/host.h).
 */
#ifndef APF_HOST_XEN_H
#define APF_HOST_XEN_H

#include <stdint.h>

#include "apf/host.h"
#include "apf/host_transport.h"
#include "apf/proto_xen.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The xen-hvm transport: "not present" as \#PF + reason in the area, "page ready" through
 *  the ready ring plus the VIRQ, no ACK. */
APF_API extern const struct apf_host_transport_ops apf_host_transport_xen;

/** @brief The frontend of one domain (opaque). */
struct apf_host_xen;

/** @name apf_host_xen_config::gpa_type results
 *  @{ */
#define APF_HOST_XEN_GPA_RAM 0   /**< Writable RAM. */
#define APF_HOST_XEN_GPA_MMIO 1  /**< MMIO (or otherwise not RAM): -EPERM. */
#define APF_HOST_XEN_GPA_PAGED 2 /**< Paged out or shared: -EAGAIN. */
#define APF_HOST_XEN_GPA_NONE 3  /**< No page there: -EINVAL. */
/** @} */

/** @brief Frontend configuration (zero-initialise). */
struct apf_host_xen_config {
    /** Optional: the p2m type of the page holding @p gpa (an APF_HOST_XEN_GPA_* value),
     *  for Xen's distinct errors. NULL: only the guest-memory accessor decides (a page it
     *  refuses is -EINVAL). */
    int (*gpa_type)(void *ctx, uint64_t gpa);
    void *gpa_ctx; /**< First argument of gpa_type. */
};

/** @brief A vCPU's frontend state for migration (the HVM save record's payload). */
struct apf_host_xen_state {
    uint32_t version;      /**< #APF_PROTO_VERSION; set_state refuses another major. */
    uint32_t registered;   /**< 1 if APF is registered. */
    uint64_t area_gpa;     /**< Area (0 when not registered). */
    uint64_t ring_gpa;     /**< Ring page (0 when not registered). */
    uint32_t ring_entries; /**< Ring entries (0 when not registered). */
    uint32_t flags;        /**< APF_XEN_APF_* flags. */
    uint32_t prod;         /**< The host's producer index (published). */
    uint32_t cons;         /**< The consumer index the host last accepted. */
    uint32_t seq;          /**< The engine's token sequence (tokens stay fresh). */
    uint32_t reserved;     /**< 0. */
};

/** apf_host_xen_hypercall() result: not the APF sub-op, handle the call elsewhere. */
#define APF_HOST_XEN_NOT_MINE 1

/**
 * @brief Create the frontend over an engine created with #apf_host_transport_xen; sets
 * every vCPU's "page ready" vector to #APF_XEN_VIRQ_APF.
 * @param h Engine (must outlive the frontend).
 * @param cfg Configuration, or NULL for defaults.
 * @param[out] out The frontend.
 * @return 0; APF_EINVAL (NULL @p h or @p out, engine of another transport); APF_ENOMEM.
 */
APF_API int apf_host_xen_create(struct apf_host *h, const struct apf_host_xen_config *cfg,
                                struct apf_host_xen **out);

/**
 * @brief Free the frontend. It does not use the engine (it keeps its own copy of the
 * engine's allocator): the engine may be destroyed before or after it.
 * @param fe Frontend, or NULL (no-op).
 */
APF_API void apf_host_xen_destroy(struct apf_host_xen *fe);

/**
 * @brief A hypercall of vCPU @p vcpu (x86-64: number in rax, arguments in rdi, rsi, rdx,
 * r10, r8; arm64: x16, x0..x4). Only `vcpu_op(APF_XEN_VCPUOP_REGISTER_APF, vcpuid, arg)` is
 * ours: `arg` is the argument's guest-physical address (the embedder translates the
 * guest's pointer as its copy-from-guest does), read and written through the engine's
 * bounds-checked accessor. Validated before anything changes.
 * @param fe Frontend.
 * @param vcpu The calling vCPU.
 * @param nr Hypercall number.
 * @param args The five argument registers.
 * @param[out] ret The hypercall's result: 0 or a negated Xen error value.
 * @return 0 if handled; #APF_HOST_XEN_NOT_MINE for other hypercalls and vcpu_op sub-ops;
 *         APF_ENODEV for an unknown calling vCPU; APF_EINVAL for NULL @p args or @p ret.
 */
APF_API int apf_host_xen_hypercall(struct apf_host_xen *fe, uint32_t vcpu, uint64_t nr,
                                   const uint64_t args[5], int64_t *ret);

/**
 * @brief The bits this frontend adds to `XENVER_get_features` submap @p submap_idx.
 * @param submap_idx The submap asked for.
 * @return `1 << APF_XEN_FEAT_APF` for submap 0, else 0.
 */
APF_API uint32_t apf_host_xen_features(uint32_t submap_idx);

/**
 * @brief vCPU reset (VCPUOP_initialise, domain reset): the engine's vCPU is reset and the
 * registration forgotten.
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @return 0; APF_ENODEV for an unknown vCPU.
 */
APF_API int apf_host_xen_vcpu_reset(struct apf_host_xen *fe, uint32_t vcpu);

/**
 * @brief Save a vCPU's state (migration source). What is in force is read from the engine,
 * whoever changed it (an engine-level apf_host_vcpu_disable(), _reset() or _restore()
 * included): registered = APF on.
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @param[out] st The state.
 * @return 0; APF_ENODEV for an unknown vCPU; APF_EINVAL for NULL @p st.
 */
APF_API int apf_host_xen_get_state(struct apf_host_xen *fe, uint32_t vcpu,
                                   struct apf_host_xen_state *st);

/**
 * @brief Restore a vCPU's state (migration destination, before the vCPU runs). Validated
 * as a registration is, plus the ring indices; the ring continues at the saved indices and
 * a wake-all is queued behind what it holds.
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @param st The saved state.
 * @return 0; APF_EINVAL; APF_EFAULT; APF_EPERM / APF_EAGAIN (gpa_type); APF_ENODEV.
 *         Nothing changes on error.
 */
APF_API int apf_host_xen_set_state(struct apf_host_xen *fe, uint32_t vcpu,
                                   const struct apf_host_xen_state *st);

#ifdef __cplusplus
}
#endif

#endif /* APF_HOST_XEN_H */
