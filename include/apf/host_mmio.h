/* SPDX-License-Identifier: MIT */
/**
 * @file host_mmio.h
 * @brief apf-mmio transport: #apf_host_transport_mmio and its frontend, the register window
 * of apf/proto_mmio.h.
 *
 * Create the engine with apf_host_config::transport = &apf_host_transport_mmio, then the
 * frontend over it. Map the window (#APF_MMIO_WINDOW_SIZE bytes) wherever the VMM's MMIO
 * bus has room, describe it to the guest (device tree, ACPI: docs/transport-mmio.md) and
 * route every access to it here with the id of the vCPU that made it: the accessing vCPU
 * selects its own registers. "Not present" reaches the guest as the synchronous exception
 * of apf_host_mmio_config::np_kind (the engine's `inject_not_present`), "page ready" as
 * the interrupt apf_host_mmio_config::irq (the engine's `inject_ready`), through the ready
 * ring only.
 *
 * Context: vCPU context for everything that names a vCPU (see apf/host.h).
 */
#ifndef APF_HOST_MMIO_H
#define APF_HOST_MMIO_H

#include <stdint.h>

#include "apf/host.h"
#include "apf/host_transport.h"
#include "apf/proto_mmio.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The apf-mmio transport: "not present" in the area (+ the synchronous exception), "page
 *  ready" through the ready ring, no ACK. */
APF_API extern const struct apf_host_transport_ops apf_host_transport_mmio;

/** @brief The frontend of one VM (opaque). */
struct apf_host_mmio;

/** @brief Frontend configuration. */
struct apf_host_mmio_config {
    /** "Page ready" interrupt, 1..#APF_MMIO_IRQ_MAX (read by the guest in IRQ). Required. */
    uint32_t irq;
    /** An APF_MMIO_NP_* value (read by the guest in NP_KIND). Required. */
    uint32_t np_kind;
};

/** @brief A vCPU's frontend state for migration (apf_host_mmio_get_state()). */
struct apf_host_mmio_state {
    uint32_t version;  /**< #APF_PROTO_VERSION; set_state refuses another major. */
    uint32_t control;  /**< Flags in force (CONTROL), 0 = off. */
    uint64_t area;     /**< Area as committed (0 when off). */
    uint64_t ring;     /**< Ring as committed: page | log2(entries) (0 when off). */
    uint64_t staged_area; /**< AREA_LO/HI as the guest last wrote them. */
    uint64_t staged_ring; /**< RING_LO/HI as the guest last wrote them. */
    uint32_t prod;     /**< The host's producer index (published). */
    uint32_t cons;     /**< The consumer index the host last accepted. */
    uint32_t seq;      /**< The engine's token sequence (tokens stay fresh). */
    uint32_t status;   /**< STATUS. */
};

/**
 * @brief Create the frontend over an engine created with #apf_host_transport_mmio; sets
 * every vCPU's "page ready" interrupt to apf_host_mmio_config::irq.
 * @param h Engine (must outlive the frontend).
 * @param cfg Configuration (required).
 * @param[out] out The frontend.
 * @return 0; APF_EINVAL (NULL argument, engine of another transport, irq or np_kind out of
 *         range); APF_ENOMEM.
 */
APF_API int apf_host_mmio_create(struct apf_host *h, const struct apf_host_mmio_config *cfg,
                                 struct apf_host_mmio **out);

/**
 * @brief Free the frontend. It does not use the engine (it keeps its own copy of the
 * engine's allocator): the engine may be destroyed before or after it.
 * @param fe Frontend, or NULL (no-op).
 */
APF_API void apf_host_mmio_destroy(struct apf_host_mmio *fe);

/**
 * @brief The guest accessed the window.
 * @param fe Frontend.
 * @param vcpu The vCPU whose access exited (it selects its own registers).
 * @param offset Offset in the window.
 * @param len Access size in bytes (only 4 is valid).
 * @param is_write Non-zero for a store.
 * @param[in,out] data The value stored (write) or the value to return (read).
 * @return 0 if the access was served (including writes to read-only or reserved
 *         registers, ignored and counted); APF_EINVAL for an access the window does not
 *         decode (offset past the window, misaligned, size other than 4, NULL @p data): a
 *         read returns 0, a write changes nothing; APF_ENODEV for an unknown vCPU.
 */
APF_API int apf_host_mmio_access(struct apf_host_mmio *fe, uint32_t vcpu, uint64_t offset,
                                 uint32_t len, int is_write, uint32_t *data);

/**
 * @brief vCPU reset: the engine's vCPU is reset and the registers return to their reset
 * values (nothing staged, APF off).
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @return 0; APF_ENODEV for an unknown vCPU.
 */
APF_API int apf_host_mmio_vcpu_reset(struct apf_host_mmio *fe, uint32_t vcpu);

/**
 * @brief Save a vCPU's frontend state (migration source). What is in force (control, area,
 * ring; also the CONTROL and IRQ registers) is read from the engine, whoever changed it (an
 * engine-level apf_host_vcpu_disable(), _reset() or _restore() included).
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @param[out] st The state.
 * @return 0; APF_ENODEV for an unknown vCPU; APF_EINVAL for NULL @p st.
 */
APF_API int apf_host_mmio_get_state(struct apf_host_mmio *fe, uint32_t vcpu,
                                    struct apf_host_mmio_state *st);

/**
 * @brief Restore a vCPU's frontend state (migration destination, before the vCPU runs).
 * Validated as a CONTROL commit is, plus the ring indices (`prod - cons` at most the ring
 * size); the ring continues at the saved indices (its page migrated with guest memory) and a
 * wake-all is queued behind what it already holds.
 * @param fe Frontend.
 * @param vcpu vCPU id.
 * @param st The state saved on the source.
 * @return 0; APF_EINVAL (version, flags, area, ring, indices); APF_EFAULT (not guest RAM);
 *         APF_ENODEV for an unknown vCPU. Nothing changes on error.
 */
APF_API int apf_host_mmio_set_state(struct apf_host_mmio *fe, uint32_t vcpu,
                                    const struct apf_host_mmio_state *st);

#ifdef __cplusplus
}
#endif

#endif /* APF_HOST_MMIO_H */
