/* SPDX-License-Identifier: MIT */
/**
 * @file proto_mmio.h
 * @brief The apf-mmio wire ABI: a libapf-defined paravirtual MMIO device (dual-use).
 *
 * For VMMs that model devices on an MMIO bus (crosvm, Firecracker, cloud-hypervisor, any
 * non-KVM backend) and for any guest architecture: no MSR, no hypercall. One register
 * window; the **accessing vCPU selects its own state** (the VMM passes the id of the vCPU
 * whose access exited, as crosvm does with every access): a vCPU can neither read nor change
 * another vCPU's registration, and the window's size does not depend on the number of vCPUs.
 *
 * Every register is 32 bits wide, little-endian, accessed with aligned 4-byte loads and
 * stores only (anything else is refused by the host: reads return 0, writes are ignored).
 * 64-bit addresses are split into LO/HI halves.
 *
 * | offset | name      | access | meaning |
 * |--------|-----------|--------|---------|
 * | 0x00   | MAGIC     | RO     | #APF_MMIO_MAGIC |
 * | 0x04   | VERSION   | RO     | #APF_PROTO_VERSION |
 * | 0x08   | FEATURES  | RO     | APF_FEATURE_* offered: always #APF_FEATURE_RING |
 * | 0x0c   | SLOTS     | RO     | the host's per-vCPU outstanding limit (1..4096) |
 * | 0x10   | IRQ       | RO     | "page ready" interrupt the VMM raises (x86 vector, arm64 PPI INTID, riscv64 PLIC/APLIC source); 0 = not configured |
 * | 0x14   | NP_KIND   | RO     | how "not present" arrives: an APF_MMIO_NP_* value |
 * | 0x18   | AREA_LO   | RW     | staged: 64-byte aligned shared area (low half) |
 * | 0x1c   | AREA_HI   | RW     | staged: area (high half) |
 * | 0x20   | RING_LO   | RW     | staged: ring page address \| log2(entries) (low half) |
 * | 0x24   | RING_HI   | RW     | staged: ring (high half) |
 * | 0x28   | CONTROL   | RW     | write = commit: APF_EN_ENABLED \| APF_EN_SEND_ALWAYS (validated, then applied) or 0 (off); read = the flags in force |
 * | 0x2c   | STATUS    | RO     | result of the last CONTROL write: an APF_MMIO_STATUS_* value |
 * | 0x30..0x3c | -     | -      | reserved: read 0, writes ignored (counted as bad guest values) |
 *
 * The staging registers change nothing by themselves; a CONTROL write validates the staged
 * area and ring, the flags and the IRQ as a whole and either applies all of it (APF on, the
 * ring started, a wake-all queued) or nothing (STATUS says why). "Page ready" always goes
 * through the ready ring (struct apf_ring): there is no ACK register (the consumer index is
 * the ACK; a guest without the ring cannot use apf-mmio).
 *
 * All numbers here are **proposed** by libapf (nothing is allocated upstream): an
 * allocation by a VMM project is a change of this header alone.
 */
#ifndef APF_PROTO_MMIO_H
#define APF_PROTO_MMIO_H

#include "apf/proto.h"

#define APF_MMIO_MAGIC 0x4d465041u /**< "APFM" as a little-endian u32 (proposed). */
#define APF_MMIO_WINDOW_SIZE 0x40u /**< Bytes of the register window (proposed). */

#define APF_MMIO_REG_MAGIC 0x00u    /**< RO: #APF_MMIO_MAGIC. */
#define APF_MMIO_REG_VERSION 0x04u  /**< RO: #APF_PROTO_VERSION. */
#define APF_MMIO_REG_FEATURES 0x08u /**< RO: APF_FEATURE_* bits. */
#define APF_MMIO_REG_SLOTS 0x0cu    /**< RO: outstanding limit. */
#define APF_MMIO_REG_IRQ 0x10u      /**< RO: "page ready" interrupt number. */
#define APF_MMIO_REG_NP_KIND 0x14u  /**< RO: an APF_MMIO_NP_* value. */
#define APF_MMIO_REG_AREA_LO 0x18u  /**< RW: staged area, low half. */
#define APF_MMIO_REG_AREA_HI 0x1cu  /**< RW: staged area, high half. */
#define APF_MMIO_REG_RING_LO 0x20u  /**< RW: staged ring (page \| log2 entries), low half. */
#define APF_MMIO_REG_RING_HI 0x24u  /**< RW: staged ring, high half. */
#define APF_MMIO_REG_CONTROL 0x28u  /**< RW: commit / flags in force. */
#define APF_MMIO_REG_STATUS 0x2cu   /**< RO: result of the last commit. */

/** Flags a CONTROL write accepts. */
#define APF_MMIO_CONTROL_VALID (APF_EN_ENABLED | APF_EN_SEND_ALWAYS)

/** @name STATUS values (result of the last CONTROL write)
 *  @{ */
#define APF_MMIO_STATUS_OK 0u       /**< Applied. */
#define APF_MMIO_STATUS_INVALID 1u  /**< Bad flags, alignment, ring size, overlap, IRQ unset. */
#define APF_MMIO_STATUS_NOT_RAM 2u  /**< Area or ring is not guest RAM. */
/** @} */

/** @name "Not present" kinds (NP_KIND register; the VMM chooses by guest architecture)
 *  In every kind the host writes #APF_REASON_NOT_PRESENT and the token into the shared area
 *  (flags, token) before injecting; the kinds differ in the synchronous exception.
 *  @{ */
/** x86: \#PF, error code 0, CR2 = token (as on KVM: the guest decode is shared). */
#define APF_MMIO_NP_X86_PF 1u
/** arm64: a synchronous external data abort taken at the faulting instruction (KVM lets a
 *  VMM inject one with KVM_SET_VCPU_EVENTS `ext_dabt_pending`); token in the area. */
#define APF_MMIO_NP_ARM64_SEA 2u
/** riscv64: a load/store access fault (cause 5 / 7) taken at the faulting instruction,
 *  injected through the hypervisor's VS-level trap registers; token in the area. */
#define APF_MMIO_NP_RISCV_ACCESS_FAULT 3u
/** @} */

/** Largest "page ready" interrupt number (PLIC sources and GIC SPIs fit; x86 uses 32..255,
 *  arm64 PPIs 16..31). */
#define APF_MMIO_IRQ_MAX 1023u

#endif /* APF_PROTO_MMIO_H */
