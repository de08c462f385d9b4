/* SPDX-License-Identifier: MIT */
/**
 * @file proto.h
 * @brief The APF wire ABI, shared by host and guest ("dual-use").
 *
 * Everything two parties must agree on byte for byte: the shared area, reason and token
 * values, the enable bits, the transport constants (KVM x86 MSRs and CPUID bits, arm64
 * SMCCC sub-functions) and the protocol version. Self-contained: needs only `<stdint.h>`,
 * no libc, usable in a hypervisor, a guest kernel or a unikernel alike.
 *
 * Sources of the facts (no code taken): Linux `Documentation/virt/kvm/x86/msr.rst` and
 * `arch/x86/include/uapi/asm/kvm_para.h` for x86; the arm64 APF series' `apf.rst` for arm64.
 * `tests/proto/test_kvm_abi.c` proves the x86 values equal the system's `<asm/kvm_para.h>`.
 *
 * Append-only: values are never renumbered; new features get new bits.
 */
#ifndef APF_PROTO_H
#define APF_PROTO_H

#include <stdint.h>

/** @cond INTERNAL */
#if defined(__cplusplus)
#define APF_STATIC_ASSERT(c, msg) static_assert(c, msg)
#else
#define APF_STATIC_ASSERT(c, msg) _Static_assert(c, msg)
#endif

#if defined(__GNUC__) || defined(__clang__)
#define APF__OFFSETOF(type, member) __builtin_offsetof(type, member)
#else
#include <stddef.h>
#define APF__OFFSETOF(type, member) offsetof(type, member)
#endif
/** @endcond */

/* ---------------------------------------------------------------------------------------- */
/** @name Protocol version (one byte each: major, minor, revision)
 *  Separate from the library's version (apf/version.h). The arm64 VERSION sub-function
 *  returns this value.
 *  @{ */
#define APF_PROTO_VERSION_MAJOR 1u    /**< Incompatible wire changes. */
#define APF_PROTO_VERSION_MINOR 1u    /**< Compatible additions (1.1: the ready ring). */
#define APF_PROTO_VERSION_REVISION 0u /**< Clarifications. */
/** Pack a protocol version as `major << 16 | minor << 8 | revision`. */
#define APF_PROTO_VERSION_PACK(major, minor, rev)                                              \
    ((((uint32_t)(major)&0xffu) << 16) | (((uint32_t)(minor)&0xffu) << 8) |                   \
     ((uint32_t)(rev)&0xffu))
/** The protocol version this header describes: 1.1.0 = 0x010100. Version 1.0 peers (the
 *  one-slot area only) interoperate: the ring is negotiated (#APF_FEATURE_RING). */
#define APF_PROTO_VERSION                                                                      \
    APF_PROTO_VERSION_PACK(APF_PROTO_VERSION_MAJOR, APF_PROTO_VERSION_MINOR,                   \
                           APF_PROTO_VERSION_REVISION)
/** @} */

/* ---------------------------------------------------------------------------------------- */
/**
 * @brief The per-vCPU shared area ("kvm_vcpu_pv_apf_data" on KVM x86).
 *
 * 64 bytes, 64-byte aligned, in guest memory. The guest registers its guest-physical
 * address; the host reads and writes only the first 8 bytes, and only through a
 * bounds-checked accessor (it never dereferences a guest address).
 *
 * Byte-compatible with Linux KVM x86 since Linux 6.9. Older kernel headers (including the
 * 6.1 headers of Debian 12) declare a guest-private `enabled` field at offset 64; the host
 * never read it, so the wire layout is the same.
 */
struct apf_shared_area {
    /**
     * Written by the host: #APF_REASON_NOT_PRESENT when it injects "page not present".
     * Read and reset to 0 by the guest's exception handler; 0 there means a genuine fault.
     * (arm64: holds the reason of either notification.)
     */
    uint32_t flags;
    /**
     * Written by the host: the token of a "page ready" (x86), or of either notification
     * (arm64). Read and reset to 0 by the guest, which then ACKs. 0 means "slot free".
     */
    uint32_t token;
    /** Reserved; neither side writes it. */
    uint8_t pad[56];
};

#define APF_AREA_SIZE 64u          /**< Size of struct apf_shared_area in bytes. */
#define APF_AREA_ALIGN 64u         /**< Required alignment of the area's address. */
#define APF_AREA_FLAGS_OFFSET 0u   /**< Offset of apf_shared_area::flags. */
#define APF_AREA_TOKEN_OFFSET 4u   /**< Offset of apf_shared_area::token. */
#define APF_AREA_HOST_BYTES 8u     /**< The host touches only bytes [0, 8) of the area. */

APF_STATIC_ASSERT(sizeof(struct apf_shared_area) == APF_AREA_SIZE, "area is 64 bytes");
APF_STATIC_ASSERT(APF__OFFSETOF(struct apf_shared_area, flags) == APF_AREA_FLAGS_OFFSET,
                  "flags at offset 0");
APF_STATIC_ASSERT(APF__OFFSETOF(struct apf_shared_area, token) == APF_AREA_TOKEN_OFFSET,
                  "token at offset 4");
APF_STATIC_ASSERT(APF__OFFSETOF(struct apf_shared_area, pad) == 8, "padding from offset 8");

/* ---------------------------------------------------------------------------------------- */
/** @name Reasons (values of apf_shared_area::flags)
 *  @{ */
#define APF_REASON_NONE 0u        /**< No event: a \#PF with this value is a genuine fault. */
#define APF_REASON_NOT_PRESENT 1u /**< "Page not present": the current task must wait. */
#define APF_REASON_READY 2u       /**< "Page ready" (arm64; x86 before 2020). */
/** @} */

/** @name Tokens
 *  A token names one outstanding fault. It is never 0 (the free-slot value, see the 2022
 *  KVM fix) and never 0xffffffff (the wake-all broadcast).
 *  @{ */
#define APF_TOKEN_INVALID 0u           /**< Free slot / no token. */
#define APF_TOKEN_WAKE_ALL 0xffffffffu /**< "Wake every task waiting on this vCPU". */
/** Bits of a KVM-format token that carry the vCPU id: `token = seq << 12 | vcpu_id`. */
#define APF_TOKEN_KVM_VCPU_BITS 12u
/** The largest vCPU id a KVM-format token can carry. */
#define APF_TOKEN_KVM_MAX_VCPU ((1u << APF_TOKEN_KVM_VCPU_BITS) - 1u)
/** @} */

/**
 * @brief Whether @p token may name an outstanding fault.
 * @param token A token as read from the wire.
 * @return 1 if it is neither #APF_TOKEN_INVALID nor #APF_TOKEN_WAKE_ALL, else 0.
 */
static inline int apf_token_is_fault(uint32_t token)
{
    return token != APF_TOKEN_INVALID && token != APF_TOKEN_WAKE_ALL;
}

/**
 * @brief Build a KVM-format token.
 * @param seq Sequence number (the high 20 bits of the token).
 * @param vcpu vCPU id, masked to its low 12 bits.
 * @return `seq << 12 | vcpu`.
 */
static inline uint32_t apf_token_kvm_make(uint32_t seq, uint32_t vcpu)
{
    return (seq << APF_TOKEN_KVM_VCPU_BITS) | (vcpu & APF_TOKEN_KVM_MAX_VCPU);
}

/**
 * @brief The vCPU id carried by a KVM-format token.
 * @param token A KVM-format token.
 * @return Its low 12 bits.
 */
static inline uint32_t apf_token_kvm_vcpu(uint32_t token)
{
    return token & APF_TOKEN_KVM_MAX_VCPU;
}

/**
 * @brief The sequence number carried by a KVM-format token.
 * @param token A KVM-format token.
 * @return Its high 20 bits.
 */
static inline uint32_t apf_token_kvm_seq(uint32_t token)
{
    return token >> APF_TOKEN_KVM_VCPU_BITS;
}

/* ---------------------------------------------------------------------------------------- */
/** @name Enable bits (low 6 bits of the control value: MSR_KVM_ASYNC_PF_EN, arm64 ENABLE)
 *  The rest of the value is the area's guest-physical address, 64-byte aligned.
 *  @{ */
#define APF_EN_ENABLED (1u << 0)     /**< APF on (x86: only together with DELIVERY_AS_INT). */
#define APF_EN_SEND_ALWAYS (1u << 1) /**< Deliver "not present" at CPL 0 / EL1 too. */
#define APF_EN_DELIVERY_AS_PF_VMEXIT (1u << 2) /**< x86 nested: as \#PF vmexit to L1. */
#define APF_EN_DELIVERY_AS_INT (1u << 3)       /**< x86: "page ready" as an interrupt. */
#define APF_EN_X86_RESERVED 0x30u  /**< x86 bits 5:4: reserved, a write with them is refused. */
#define APF_EN_FLAGS_MASK 0x3full  /**< The low 6 bits hold flags. */
#define APF_EN_ADDR_MASK (~0x3full) /**< The area address: `value & APF_EN_ADDR_MASK`. */
/** @} */

/* ---------------------------------------------------------------------------------------- */
/** @name KVM x86 transport: CPUID leaves, feature bits, MSRs, capability
 *  @{ */
#define APF_KVM_CPUID_SIGNATURE 0x40000000u /**< EBX, ECX, EDX = "KVMKVMKVM\0\0\0". */
#define APF_KVM_CPUID_FEATURES 0x40000001u  /**< EAX = feature bits, EDX = hints. */
#define APF_KVM_SIGNATURE_EBX 0x4b4d564bu   /**< "KVMK" as a little-endian u32. */
#define APF_KVM_SIGNATURE_ECX 0x564b4d56u   /**< "VMKV". */
#define APF_KVM_SIGNATURE_EDX 0x0000004du   /**< "M\0\0\0". */
#define APF_KVM_FEATURE_ASYNC_PF 4u         /**< Bit number: async page faults. */
#define APF_KVM_FEATURE_ASYNC_PF_VMEXIT 10u /**< Bit number: delivery as \#PF vmexit. */
#define APF_KVM_FEATURE_ASYNC_PF_INT 14u    /**< Bit number: "page ready" as interrupt. */

#define APF_KVM_MSR_ASYNC_PF_EN 0x4b564d02u  /**< Area address | enable bits. */
#define APF_KVM_MSR_ASYNC_PF_INT 0x4b564d06u /**< Bits 7:0 = vector of "page ready". */
#define APF_KVM_MSR_ASYNC_PF_ACK 0x4b564d07u /**< Guest writes 1 after consuming a ready. */
#define APF_KVM_ASYNC_PF_VEC_MASK 0xffull    /**< Valid bits of MSR_KVM_ASYNC_PF_INT. */
#define APF_KVM_ASYNC_PF_ACK_BIT 1ull        /**< The only valid bit of the ACK MSR. */
#define APF_KVM_CAP_ASYNC_PF 59u             /**< KVM_CAP_ASYNC_PF. */
#define APF_X86_PF_VECTOR 14u                /**< "Not present" is a page fault (vector 14), CR2 = token. */
#define APF_X86_FIRST_EXTERNAL_VECTOR 32u    /**< "Page ready" vectors start here. */
/** @} */

/* ---------------------------------------------------------------------------------------- */
/** @name arm64 transport (SMCCC vendor hypervisor service)
 *  One fast SMC32 function of the KVM vendor-hyp service; x1 selects the sub-function.
 *  Notifications: "not present" as an SDEI event, "page ready" as a PPI (slot + IRQ_ACK, or
 *  the ready ring when negotiated).
 *
 *  Function number: **proposed** by libapf, not allocated upstream. The seed series used
 *  function 2, which upstream KVM has documented since 2023 as pKVM's `HYP_MEMINFO`
 *  (0xC6000002; upstream allocates 0 FEATURES, 1 PTP, 2-5 pKVM memory and MMIO-guard calls,
 *  64-65 implementation discovery, 127 FEATURES_2). A guest cannot tell function 2's two
 *  meanings apart safely (HYP_MEMINFO answers the VERSION sub-function with a page size), so
 *  the old number is not kept. libapf uses function 24 (0x86000018), far from upstream's
 *  growth from 0 and inside the first features bitmap, so discovery stays one call: bit 24
 *  of the vendor-hyp features query (function 0) says the host offers it. An upstream
 *  allocation is a change of #APF_ARM64_FUNC_NUM alone.
 *  @{ */
#define APF_ARM64_FUNC_NUM 24u /**< Vendor-hyp function number of the APF call (proposed). */
/** SMCCC function ID of the APF call: fast, SMC32, vendor-hyp service, #APF_ARM64_FUNC_NUM. */
#define APF_ARM64_FUNC_ID (0x86000000u | APF_ARM64_FUNC_NUM)
#define APF_ARM64_FEATURES_FUNC_ID 0x86000000u /**< Vendor-hyp features query (function 0). */
#define APF_ARM64_FEATURE_BIT APF_ARM64_FUNC_NUM /**< Bit of the features result: APF offered. */
#define APF_ARM64_FUNC_VERSION 0u /**< Returns #APF_PROTO_VERSION. */
#define APF_ARM64_FUNC_SLOTS 1u   /**< Returns the sleep-table size to use (64). */
#define APF_ARM64_FUNC_SDEI 2u    /**< Returns the SDEI event number of "not present". */
#define APF_ARM64_FUNC_IRQ 3u     /**< Returns the PPI number of "page ready". */
#define APF_ARM64_FUNC_ENABLE 4u  /**< x2 = low 32 bits, x3 = high 32 bits of the control. */
#define APF_ARM64_FUNC_IRQ_ACK 5u /**< Guest ACKs a "page ready" (slot mode only). */
/** Protocol 1.1: returns the APF_FEATURE_* bits the host offers. */
#define APF_ARM64_FUNC_FEATURES 6u
/** Protocol 1.1: register the ready ring before ENABLE with #APF_ARM64_EN_RING.
 *  x2 = low 32 bits, x3 = high 32 bits of `ring_gpa | log2(entries)` (a page-aligned
 *  address; the low bits carry the size); 0 unregisters. */
#define APF_ARM64_FUNC_RING 7u
#define APF_ARM64_SLOTS 64u                   /**< Default per-vCPU outstanding limit. */
#define APF_ARM64_SDEI_EVENT_DEFAULT 0x40400001u /**< The series' SDEI event number. */
#define APF_ARM64_PPI_MIN 16u /**< PPIs are INTIDs 16..31. */
#define APF_ARM64_PPI_MAX 31u /**< Last PPI INTID. */
/** arm64 ENABLE flag (protocol 1.1): "page ready" goes through the registered ring, not the
 *  area (the area then carries "not present" only). Only if #APF_FEATURE_RING is offered. */
#define APF_ARM64_EN_RING (1u << 2)
/** Valid arm64 flags. */
#define APF_ARM64_EN_VALID (APF_EN_ENABLED | APF_EN_SEND_ALWAYS | APF_ARM64_EN_RING)

#define APF_SMCCC_SUCCESS 0           /**< SMCCC: success. */
#define APF_SMCCC_NOT_SUPPORTED (-1)  /**< SMCCC: not supported. */
#define APF_SMCCC_NOT_REQUIRED (-2)   /**< SMCCC: not required. */
#define APF_SMCCC_INVALID_PARAMETER (-3) /**< SMCCC: invalid parameters. */
/** @} */


/* ---------------------------------------------------------------------------------------- */
/** @name Protocol features (negotiated; append-only bits)
 *  @{ */
#define APF_FEATURE_RING (1u << 0) /**< The ready ring (protocol 1.1). */
/** @} */

/** @name Transport identifiers (recorded in traces: apf_trace_event::token of host.transport)
 *  @{ */
#define APF_TRANSPORT_ID_KVM_X86 1u   /**< KVM x86 MSRs, one slot + ACK. */
#define APF_TRANSPORT_ID_KVM_ARM64 2u /**< arm64 SMCCC, one slot + IRQ_ACK (or the ring). */
/** s390 pfault (DIAGNOSE X'258' + external interrupt 0x2603): floating "page ready", no
 *  ACK, no window (apf/proto_s390.h). */
#define APF_TRANSPORT_ID_S390 3u
#define APF_TRANSPORT_ID_XEN_HVM 4u  /**< Xen HVM/PVH vcpu_op + ready ring + VIRQ (apf/proto_xen.h). */
#define APF_TRANSPORT_ID_MMIO 5u     /**< apf-mmio register window + ready ring (apf/proto_mmio.h). */
#define APF_TRANSPORT_ID_TEST 255u    /**< Reserved for test transports. */
/** @} */

/* ---------------------------------------------------------------------------------------- */
/**
 * @brief The ready ring (protocol 1.1): "page ready" tokens from host to guest, no ACK exit.
 *
 * One page per vCPU in guest memory, registered by the guest (transport-specific call).
 * Semantics follow Xen's `io/ring.h` with notification hold-off (the virtio event index):
 *  - indices are free-running 32-bit counters, masked only when indexing `entries`;
 *  - the **host** (producer) writes entries at `prod`, then publishes `prod` (write barrier
 *    before), then, after a full barrier, raises the notification only if the guest's
 *    `event` lies in the window just published: `(new - event) < (new - old)`;
 *  - the **guest** (consumer) reads entries from `cons` to `prod` (read barrier after
 *    reading `prod`), wakes each token, advances `cons` (the ACK: the host reuses an entry
 *    only after `cons` has passed it), then sets `event = cons + 1`, full barrier, and
 *    re-reads `prod`: anything that arrived meanwhile is drained before it returns;
 *  - each side treats the other's indices as untrusted: the host never lets `cons` move
 *    backwards or past `prod` (such a value is ignored and counted) and never overwrites an
 *    unconsumed entry; the guest consumes at most #apf_ring::entries' size entries per read
 *    of `prod` and refuses a `prod` that claims more than the ring holds.
 * A wake-all is an entry (#APF_TOKEN_WAKE_ALL); no entry for an older token follows it.
 * The host-written and the guest-written words sit on separate 64-byte cache lines.
 */
struct apf_ring {
    /** Written by the host: producer index (entries published so far). */
    uint32_t prod;
    /** Written by the host at registration: the number of entries (a power of two). */
    uint32_t size;
    /** Reserved (host line); 0. */
    uint32_t host_pad[14];
    /** Written by the guest: consumer index (entries consumed so far): the ACK. */
    uint32_t cons;
    /** Written by the guest: notify when `prod` passes this value (hold-off). */
    uint32_t event;
    /** Reserved (guest line); 0. */
    uint32_t guest_pad[14];
    /** Tokens, `size` of them (flexible: the rest of the page). Written by the host. */
    uint32_t entries[];
};

#define APF_RING_PAGE_SIZE 4096u      /**< One ring per page; the page is 4 KiB aligned. */
#define APF_RING_HEADER_SIZE 128u     /**< Two cache lines: host's, then guest's. */
#define APF_RING_PROD_OFFSET 0u       /**< Offset of apf_ring::prod. */
#define APF_RING_SIZE_OFFSET 4u       /**< Offset of apf_ring::size. */
#define APF_RING_CONS_OFFSET 64u      /**< Offset of apf_ring::cons. */
#define APF_RING_EVENT_OFFSET 68u     /**< Offset of apf_ring::event. */
#define APF_RING_ENTRIES_OFFSET 128u  /**< Offset of apf_ring::entries. */
#define APF_RING_ENTRY_SIZE 4u        /**< One token per entry. */
#define APF_RING_DEFAULT_ENTRIES 256u /**< Default ring size. */
#define APF_RING_MAX_ENTRIES 512u     /**< Largest power of two that fits the page. */
#define APF_RING_MIN_ENTRIES 2u       /**< Smallest ring. */
/** Low bits of a ring registration value that carry log2(entries). */
#define APF_RING_LOG2_MASK 0xfffull

APF_STATIC_ASSERT(sizeof(struct apf_ring) == APF_RING_HEADER_SIZE, "ring header is 128 bytes");
APF_STATIC_ASSERT(APF__OFFSETOF(struct apf_ring, prod) == APF_RING_PROD_OFFSET, "prod");
APF_STATIC_ASSERT(APF__OFFSETOF(struct apf_ring, size) == APF_RING_SIZE_OFFSET, "size");
APF_STATIC_ASSERT(APF__OFFSETOF(struct apf_ring, cons) == APF_RING_CONS_OFFSET, "cons");
APF_STATIC_ASSERT(APF__OFFSETOF(struct apf_ring, event) == APF_RING_EVENT_OFFSET, "event");
APF_STATIC_ASSERT(APF__OFFSETOF(struct apf_ring, entries) == APF_RING_ENTRIES_OFFSET,
                  "entries");
APF_STATIC_ASSERT(APF_RING_ENTRIES_OFFSET + APF_RING_MAX_ENTRIES * APF_RING_ENTRY_SIZE <=
                      APF_RING_PAGE_SIZE,
                  "the largest ring fits its page");

/**
 * @brief Whether the producer must notify after publishing (Xen RING_PUSH_..._AND_CHECK_NOTIFY).
 * @param old_prod `prod` before this batch.
 * @param new_prod `prod` after it.
 * @param event The consumer's event index, read after a full barrier.
 * @return 1 if @p event lies in (old_prod, new_prod] (modulo 2^32), else 0.
 */
static inline int apf_ring_need_notify(uint32_t old_prod, uint32_t new_prod, uint32_t event)
{
    return (uint32_t)(new_prod - event) < (uint32_t)(new_prod - old_prod);
}

#endif /* APF_PROTO_H */
