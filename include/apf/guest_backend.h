/* SPDX-License-Identifier: MIT */
/**
 * @file guest_backend.h
 * @brief What a transport backend of libapf-guest implements, and the shipped backends.
 *
 * A backend turns the runtime's requests (probe, enable, disable, ack) into one hypervisor's
 * transport. It is a const ops table plus a context; the context is passed first to every
 * callback. The privileged instructions a backend needs (x86 `cpuid`, `wrmsr`, `rdmsr`;
 * arm64 `hvc`) go through a small arch hook, so the same backend code runs for real on its
 * architecture (apf_x86_arch_native, apf_arm64_arch_native) and, under test or in the
 * loopback (apf/loopback.h), against an in-process host.
 *
 * Shipped backends:
 *  - apf_guest_backend_kvm_x86: Linux KVM's MSR interface (context struct apf_guest_kvm_x86);
 *  - apf_guest_backend_kvm_arm64: the arm64 SMCCC design (context struct apf_guest_kvm_arm64);
 *  - apf_guest_backend_null: always "not supported" (APF off);
 *  - the loopback: the kvm_x86 / kvm_arm64 backends over the loopback's arch hooks.
 * Freestanding.
 */
#ifndef APF_GUEST_BACKEND_H
#define APF_GUEST_BACKEND_H

#include <stdint.h>

#include "apf/error.h"
#include "apf/export.h"
#include "apf/proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @name Backend capabilities (apf_guest_backend_ops::capabilities)
 *  @{ */
/** The token of a "not present" is in the shared area (arm64), not passed by the exception
 *  (x86 CR2); both notifications also carry their reason in apf_shared_area::flags. */
#define APF_BACKEND_CAP_TOKEN_IN_AREA (1u << 0)
/** The host chooses the "page ready" interrupt (arm64 PPI); otherwise the guest does. */
#define APF_BACKEND_CAP_HOST_VECTOR (1u << 1)
/** "Not present" can be requested in kernel mode too (SEND_ALWAYS). */
#define APF_BACKEND_CAP_SEND_ALWAYS (1u << 2)
/** @} */

/** @brief What probe learned from the host. All values are host-written and were checked. */
struct apf_guest_backend_info {
    uint32_t version;    /**< Protocol version offered (#APF_PROTO_VERSION packing). */
    uint32_t slots;      /**< Host's per-CPU outstanding limit (a sizing hint), 1..4096. */
    uint32_t irq;        /**< "Page ready" interrupt chosen by the host, or 0 if the guest
                              chooses (x86). */
    uint32_t sdei_event; /**< arm64: SDEI event of "not present"; 0 elsewhere. */
};

/** @brief A transport backend (const table; `ctx` first in every callback). */
struct apf_guest_backend_ops {
    const char *name; /**< Short name, e.g. "kvm-x86". */
    /** APF_BACKEND_CAP_* bits. Any context. */
    uint32_t (*capabilities)(void *ctx);
    /** Does the host offer APF? Fills @p info. 0; APF_ENODEV (no such hypervisor);
     *  APF_EOPNOTSUPP (hypervisor without the feature); APF_EPROTO (host answered values
     *  out of range). Boot CPU, may be called once. */
    int (*probe)(void *ctx, struct apf_guest_backend_info *info);
    /** Turn APF on for @p cpu with the area at guest-physical @p area_pa, "page ready" on
     *  @p vector, APF_EN_SEND_ALWAYS in @p flags if wanted. Must run on @p cpu. 0 or an error
     *  (the host refused: APF stays off on that CPU). */
    int (*enable)(void *ctx, uint32_t cpu, uint64_t area_pa, uint32_t vector, uint32_t flags);
    /** Turn APF off for @p cpu. Must run on @p cpu. 0 or an error. */
    int (*disable)(void *ctx, uint32_t cpu);
    /** Acknowledge the "page ready" just consumed on @p cpu. Interrupt context, on @p cpu. */
    int (*ack)(void *ctx, uint32_t cpu);
};

/* ---- arch hooks ------------------------------------------------------------------------ */

/** @brief x86 privileged instructions, executed on behalf of CPU @p cpu (the current one). */
struct apf_x86_arch_ops {
    /** `cpuid` with EAX = @p leaf, ECX = @p subleaf; @p regs = EAX, EBX, ECX, EDX. */
    void (*cpuid)(void *ctx, uint32_t cpu, uint32_t leaf, uint32_t subleaf, uint32_t regs[4]);
    /** `wrmsr`. 0, or a negative code if the write was refused (\#GP). The native hook cannot
     *  observe a \#GP (the kernel's exception table does) and returns 0. */
    int (*wrmsr)(void *ctx, uint32_t cpu, uint32_t msr, uint64_t value);
    /** `rdmsr`. 0 and @p value, or a negative code (\#GP). */
    int (*rdmsr)(void *ctx, uint32_t cpu, uint32_t msr, uint64_t *value);
};

/** @brief arm64 privileged instructions: an SMCCC call (HVC \#0) with x0..x3 in and out. */
struct apf_arm64_arch_ops {
    /** Make the call on behalf of @p cpu (the current one). */
    void (*smccc)(void *ctx, uint32_t cpu, const uint64_t in[4], uint64_t out[4]);
};

#if defined(__x86_64__) || defined(DOXYGEN)
/** The real instructions (inline assembly), for a guest kernel at CPL 0 on x86-64. */
APF_API extern const struct apf_x86_arch_ops apf_x86_arch_native;
#endif
#if defined(__aarch64__) || defined(DOXYGEN)
/** The real `hvc #0` (inline assembly), for a guest kernel at EL1 on arm64. */
APF_API extern const struct apf_arm64_arch_ops apf_arm64_arch_native;
#endif

/* ---- the shipped backends ---------------------------------------------------------------- */

/** @brief Context of the kvm_x86 backend (initialise with apf_guest_kvm_x86_init()). */
struct apf_guest_kvm_x86 {
    const struct apf_x86_arch_ops *arch; /**< Arch hook. */
    void *arch_ctx;                      /**< Its context. */
    uint32_t cpuid_base; /**< Found by probe: the leaf with the KVM signature (0x40000000
                              or higher when another hypervisor's leaves come first). */
};

/** @brief Context of the kvm_arm64 backend (initialise with apf_guest_kvm_arm64_init()). */
struct apf_guest_kvm_arm64 {
    const struct apf_arm64_arch_ops *arch; /**< Arch hook. */
    void *arch_ctx;                        /**< Its context. */
};

/**
 * @brief Linux KVM on x86: probe = CPUID signature (KVMKVMKVM at 0x40000000, or at a
 * multiple of 0x100 above it) and the ASYNC_PF and ASYNC_PF_INT feature bits; enable =
 * `wrmsr` ASYNC_PF_INT (vector) then ASYNC_PF_EN (address | ENABLED | DELIVERY_AS_INT, plus
 * SEND_ALWAYS only if asked); disable = EN 0; ack = `wrmsr` ASYNC_PF_ACK 1. The token of a
 * "not present" is the kernel's CR2, passed to apf_guest_on_exception().
 */
APF_API extern const struct apf_guest_backend_ops apf_guest_backend_kvm_x86;

/**
 * @brief The arm64 design: probe = vendor-hyp features bit 2, VERSION major 1, SLOTS, SDEI
 * and IRQ numbers (each checked); enable = ENABLE with the control value in two 32-bit
 * halves; disable = ENABLE 0; ack = IRQ_ACK. Tokens of both notifications are in the area.
 */
APF_API extern const struct apf_guest_backend_ops apf_guest_backend_kvm_arm64;

/** @brief No APF: probe returns APF_ENODEV, every other call APF_EOPNOTSUPP. */
APF_API extern const struct apf_guest_backend_ops apf_guest_backend_null;

/**
 * @brief Initialise a kvm_x86 backend context.
 * @param b Context to fill.
 * @param arch Arch hook (apf_x86_arch_native on real hardware).
 * @param arch_ctx Its context.
 */
APF_API void apf_guest_kvm_x86_init(struct apf_guest_kvm_x86 *b, const struct apf_x86_arch_ops *arch,
                                    void *arch_ctx);

/**
 * @brief Initialise a kvm_arm64 backend context.
 * @param b Context to fill.
 * @param arch Arch hook (apf_arm64_arch_native on real hardware).
 * @param arch_ctx Its context.
 */
APF_API void apf_guest_kvm_arm64_init(struct apf_guest_kvm_arm64 *b,
                                      const struct apf_arm64_arch_ops *arch, void *arch_ctx);

#ifdef __cplusplus
}
#endif

#endif /* APF_GUEST_BACKEND_H */
