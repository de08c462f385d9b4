/* SPDX-License-Identifier: MIT */
/**
 * @file guest_mmio.h
 * @brief The apf-mmio guest backend (apf/proto_mmio.h) and its MMIO accessor hook.
 *
 * The kernel maps the device's register window (found through its device-tree node or ACPI
 * entry: docs/transport-mmio.md) and hands the backend an accessor; the backend reads the
 * identification registers, stages the area and the ring and commits them with CONTROL.
 * "Page ready" always comes through the ready ring; "not present" is the synchronous
 * exception named by the NP_KIND register (x86: \#PF with CR2 = token; arm64 / riscv64:
 * the abort taken at the faulting instruction, token in the area). Freestanding.
 */
#ifndef APF_GUEST_MMIO_H
#define APF_GUEST_MMIO_H

#include <stdint.h>

#include "apf/guest_backend.h"
#include "apf/proto_mmio.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief 32-bit accesses to the apf-mmio register window, on behalf of CPU @p cpu (the
 *  current one: the device selects that CPU's registers). */
struct apf_mmio_io_ops {
    /** Load the register at @p offset. */
    uint32_t (*read32)(void *ctx, uint32_t cpu, uint32_t offset);
    /** Store @p value to the register at @p offset. */
    void (*write32)(void *ctx, uint32_t cpu, uint32_t offset, uint32_t value);
};

/** Real accesses: `ctx` is the window as the kernel mapped it (device memory); each
 *  access is one aligned volatile 32-bit load or store. */
APF_API extern const struct apf_mmio_io_ops apf_mmio_io_native;

/** @brief Context of the apf-mmio backend (initialise with apf_guest_mmio_init()). */
struct apf_guest_mmio {
    const struct apf_mmio_io_ops *io; /**< Accessor hook. */
    void *io_ctx;                     /**< Its context. */
    /** Ready ring entries per CPU: a power of two #APF_RING_MIN_ENTRIES ..
     *  #APF_RING_MAX_ENTRIES (probe: APF_EINVAL otherwise). Default
     *  #APF_RING_DEFAULT_ENTRIES. */
    uint32_t ring_entries;
    uint32_t np_kind; /**< Set by probe: the NP_KIND register (APF_MMIO_NP_*). Read-only. */
    uint32_t irq;     /**< Set by probe: the IRQ register. Read-only. */
};

/**
 * @brief apf-mmio: probe = MAGIC, VERSION (major 1), FEATURES (the ring, required), SLOTS,
 * IRQ and NP_KIND, each range-checked; channel = the 64-byte area, the guest's ring state,
 * and a 4096-aligned ring page at offset 4096 (8 KiB, 4096-aligned); enable = AREA_LO/HI,
 * RING_LO/HI (`page | log2(entries)`), CONTROL (ENABLED, SEND_ALWAYS if asked), then STATUS;
 * disable = CONTROL 0. "Not present": reason and token in the area, both reset; on x86 the
 * token is CR2 and must equal the area's. "Page ready": the ring, no ACK.
 */
APF_API extern const struct apf_guest_backend_ops apf_guest_backend_mmio;

/**
 * @brief Initialise an apf-mmio backend context (ring_entries = #APF_RING_DEFAULT_ENTRIES).
 * @param b Context to fill.
 * @param io Accessor hook (apf_mmio_io_native on real hardware).
 * @param io_ctx Its context (the mapped window for apf_mmio_io_native).
 */
APF_API void apf_guest_mmio_init(struct apf_guest_mmio *b, const struct apf_mmio_io_ops *io,
                                 void *io_ctx);

#ifdef __cplusplus
}
#endif

#endif /* APF_GUEST_MMIO_H */
