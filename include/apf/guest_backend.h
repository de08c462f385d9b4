/* SPDX-License-Identifier: MIT */
/**
 * @file guest_backend.h
 * @brief What a transport backend of libapf-guest implements, and the shipped backends.
 *
 * A backend turns the runtime's requests (probe, enable, disable, the two notifications) into
 * one hypervisor's transport, and owns its notification channel (area, ring). It is a const ops table plus a context; the context is passed first to every
 * callback. The privileged instructions a backend needs (x86 `cpuid`, `wrmsr`, `rdmsr`;
 * arm64 `hvc`) go through a small arch hook, so the same backend code runs for real on its
 * architecture (apf_x86_arch_native, apf_arm64_arch_native) and, under test or in the
 * loopback (apf/loopback.h), against an in-process host.
 *
 * Shipped backends:
 *  - apf_guest_backend_kvm_x86: Linux KVM's MSR interface (context struct apf_guest_kvm_x86);
 *  - apf_guest_backend_kvm_arm64: the arm64 SMCCC design (context struct apf_guest_kvm_arm64);
 *  - apf_guest_backend_mmio: the apf-mmio register window (apf/guest_mmio.h);
 *  - apf_guest_backend_xen: Xen HVM/PVH, vcpu_op + VIRQ (apf/guest_xen.h);
 *  - apf_guest_backend_null: always "not supported" (APF off);
 *  - the loopback: the kvm_x86 / kvm_arm64 backends over the loopback's arch hooks.
 * Freestanding.
 */
#ifndef APF_GUEST_BACKEND_H
#define APF_GUEST_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "apf/error.h"
#include "apf/export.h"
#include "apf/proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @name Backend capabilities (apf_guest_backend_ops::capabilities)
 *  @{ */
/** Informational: the token of a "not present" is in the channel (arm64), not passed by the
 *  exception (x86 CR2). The runtime does not use it (the backend decodes its channel). */
#define APF_BACKEND_CAP_TOKEN_IN_AREA (1u << 0)
/** The host chooses the "page ready" interrupt (arm64 PPI: apf_guest_backend_info::irq);
 *  otherwise the guest does (apf_guest_config::vector). */
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
    /** APF_FEATURE_* bits in use after negotiation (#APF_FEATURE_RING: "page ready" comes
     *  through the ready ring). 0 when the backend fell back to the one-slot area. */
    uint32_t features;
};

/** @brief What a channel op found (apf_guest_backend_ops::take_not_present and
 *  apf_guest_backend_ops::ready_peek). */
struct apf_guest_chan_event {
    uint32_t token; /**< The token (host-written: the runtime checks it). */
    uint32_t value; /**< For a bad host value: the offending value (for the log); else 0. */
};

/** @brief Result of apf_guest_backend_ops::take_not_present. */
enum apf_guest_np_result {
    /** Nothing for APF in the channel: a genuine fault, the kernel handles it. */
    APF_GUEST_NP_NONE = 0,
    /** A "not present" for apf_guest_chan_event::token, taken (the channel is clear). */
    APF_GUEST_NP_EVENT = 1,
    /** An event that is not ours to consume (arm64 slot: a "page ready" waiting for its
     *  interrupt): left in place; the task retries its access. */
    APF_GUEST_NP_NOT_OURS = 2,
    /** A bad host value (unknown reason, ...; apf_guest_chan_event::value): cleared. */
    APF_GUEST_NP_BAD = 3
};

/** @brief Result of apf_guest_backend_ops::ready_peek. */
enum apf_guest_ready_result {
    /** No (more) "page ready" to take. */
    APF_GUEST_READY_EMPTY = 0,
    /** The next "page ready": apf_guest_chan_event::token (may be #APF_TOKEN_WAKE_ALL; the
     *  runtime checks it). Wake it, then ready_release. */
    APF_GUEST_READY_TOKEN = 1,
    /** An entry carrying a bad host value (apf_guest_chan_event::value, e.g. an unknown
     *  reason): drop it, then ready_release (it still frees the slot). */
    APF_GUEST_READY_BAD_ENTRY = 2,
    /** Not ours to consume (arm64 slot: a "not present" whose event is not handled yet):
     *  leave it, take nothing more. */
    APF_GUEST_READY_NOT_OURS = 3,
    /** The host's producer index is not believable (ring: claims more than the ring
     *  holds, or moved backwards; apf_guest_chan_event::value): refused, nothing consumed,
     *  take nothing more now. */
    APF_GUEST_READY_BAD_INDEX = 4
};

/**
 * @brief A transport backend (const table; `ctx` first in every callback).
 *
 * The backend owns the notification channel: its layout (a 64-byte area, a ring page, its
 * own private state), how each notification is decoded and how a "page ready" is
 * acknowledged. The runtime gives it memory (chan_size) per CPU, inside the runtime's own
 * memory, and keeps the protocol rules common to all transports (token checks, the sleep
 * table, the order wake -> release -> finish).
 *
 * A "page ready" interrupt runs: ready_peek, wake, ready_release, ... until ready_peek
 * finds nothing or ready_release says to finish, then ready_finish; if that reports more
 * entries, the runtime drains again. One-slot transports: one entry per ready_finish
 * (the ACK). Ring transports: ready_finish re-arms the notification and re-checks.
 *
 * All callbacks are required except area and ring.
 */
struct apf_guest_backend_ops {
    const char *name; /**< Short name, e.g. "kvm-x86". */
    /** APF_BACKEND_CAP_* bits. Any context. */
    uint32_t (*capabilities)(void *ctx);
    /** Does the host offer APF? Fills @p info. 0; APF_ENODEV (no such hypervisor);
     *  APF_EOPNOTSUPP (hypervisor without the feature); APF_EPROTO (host answered values
     *  out of range); APF_EINVAL (the context is misconfigured). Boot CPU, once. */
    int (*probe)(void *ctx, struct apf_guest_backend_info *info);
    /** Channel memory needed per CPU: returns the size in bytes (0: none) and stores the
     *  alignment in @p align (a power of two, at most 4096). A pure query of the context's
     *  configuration: callable before probe (apf_guest_mem_size()), any number of times;
     *  the answer must not change afterwards. */
    size_t (*chan_size)(void *ctx, size_t *align);
    /** Is @p vector a valid "page ready" interrupt for this transport? 0; APF_EINVAL (a
     *  guest-chosen vector out of range, x86: 32..255); APF_EPROTO (a host-chosen one out of
     *  range, arm64 PPI 16..31); APF_EOPNOTSUPP (no APF). Boot CPU, after probe. */
    int (*vector_check)(void *ctx, uint32_t vector);
    /** Turn APF on for @p cpu: register the channel @p chan (chan_size bytes, zeroed by the
     *  runtime, guest-physical @p chan_pa, physically contiguous), "page ready" on
     *  @p vector, APF_EN_SEND_ALWAYS in @p flags if wanted. Must run on @p cpu. 0 or an
     *  error (the host refused: APF stays off on that CPU). */
    int (*enable)(void *ctx, uint32_t cpu, void *chan, uint64_t chan_pa, uint32_t vector,
                  uint32_t flags);
    /** Turn APF off for @p cpu. Must run on @p cpu. 0 or an error. */
    int (*disable)(void *ctx, uint32_t cpu);
    /** The "not present" exception: decode and consume the channel's "not present".
     *  @p token_hint is what the exception carried (x86: CR2). Fills @p ev. Returns an
     *  #apf_guest_np_result. Exception context, on @p cpu, interrupts off. */
    int (*take_not_present)(void *ctx, uint32_t cpu, void *chan, uint32_t token_hint,
                            struct apf_guest_chan_event *ev);
    /** The next "page ready" without consuming it (fills @p ev). Returns an
     *  #apf_guest_ready_result. Interrupt context, on @p cpu. */
    int (*ready_peek)(void *ctx, uint32_t cpu, void *chan, struct apf_guest_chan_event *ev);
    /** Consume the entry ready_peek returned (slot: clear it; ring: advance the consumer
     *  index). Returns 1 if the runtime may peek again before ready_finish (ring), 0 if it
     *  must finish first (slot: one entry per ACK). Interrupt context, on @p cpu. */
    int (*ready_release)(void *ctx, uint32_t cpu, void *chan);
    /** After at least one ready_release: acknowledge (slot: the ACK call) or re-arm the
     *  notification and re-check (ring). Returns 0 (done), 1 (more entries arrived: drain
     *  again) or a negative error (the ACK failed). Interrupt context, on @p cpu. */
    int (*ready_finish)(void *ctx, uint32_t cpu, void *chan);
    /** Optional: the 64-byte shared area inside @p chan, or NULL if the transport has none.
     *  Any context. */
    struct apf_shared_area *(*area)(void *ctx, void *chan);
    /** Optional: the ready ring inside @p chan if the transport uses one now (after probe),
     *  else NULL. Any context. */
    struct apf_ring *(*ring)(void *ctx, void *chan);
};

/* ---- the ready ring, guest side (for backend implementers) ------------------------------ */

/**
 * @brief The guest's private state of one ready ring (one per CPU, in guest memory the host
 * never sees). Fields are private to the apf_guest_ring_* helpers.
 */
struct apf_guest_ring_consumer {
    /** @cond INTERNAL */
    struct apf_ring *ring; /* the registered ring page */
    uint32_t mask;         /* registered entries - 1 (never the page's `size`) */
    uint32_t cons;         /* next index to consume (free-running) */
    uint32_t prod;         /* last believable `prod` read: cons..prod may be consumed */
    uint32_t have;         /* 1: `entry` holds the copy of entries[cons] */
    uint32_t entry;        /* that copy (each entry is read once) */
    uint32_t pad;
    /** @endcond */
};

/**
 * @brief Set up a consumer for a ring page before it is registered with the host.
 *
 * Writes the guest's words of the page (`cons` = `event` - 1 = @p start); the host's words
 * (`prod`, `size`) are left as they are: `prod` must equal @p start when the host takes
 * the ring over (a zeroed page and @p start 0, as the shipped backends do).
 * Context: any, before registration.
 * @param c Consumer state to fill.
 * @param ring The ring page (4096-aligned, #APF_RING_PAGE_SIZE bytes).
 * @param entries Number of entries registered: a power of two, #APF_RING_MIN_ENTRIES ..
 *        #APF_RING_MAX_ENTRIES. The consumer uses this, never the page's `size`.
 * @param start Initial free-running index.
 * @return 0; APF_EINVAL (NULL, misaligned @p ring or bad @p entries).
 */
APF_API int apf_guest_ring_init(struct apf_guest_ring_consumer *c, struct apf_ring *ring,
                                uint32_t entries, uint32_t start);

/**
 * @brief The next "page ready" token of the ring, without consuming it.
 *
 * When the entries known are used up, reads `prod` again (acquire) and refuses it if it
 * claims more than the ring holds beyond `cons` (overrun, moved backwards, a jump): then
 * nothing is consumed until the host writes a believable `prod`. Indices are masked with
 * the registered size: never out of bounds. Each entry is copied once.
 * Context: interrupt context, on the ring's CPU (single consumer).
 * @param c Consumer.
 * @param[out] ev Token (#APF_GUEST_READY_TOKEN) or refused `prod` (#APF_GUEST_READY_BAD_INDEX).
 * @return #APF_GUEST_READY_EMPTY, #APF_GUEST_READY_TOKEN or #APF_GUEST_READY_BAD_INDEX.
 */
APF_API int apf_guest_ring_peek(struct apf_guest_ring_consumer *c, struct apf_guest_chan_event *ev);

/**
 * @brief Consume the entry apf_guest_ring_peek() returned: advance `cons` (a release
 * store: the host may reuse the entry once it sees it).
 * Context: interrupt context, on the ring's CPU.
 * @param c Consumer.
 * @return 1 (more may be peeked before apf_guest_ring_finish()); 0 if nothing was peeked.
 */
APF_API int apf_guest_ring_release(struct apf_guest_ring_consumer *c);

/**
 * @brief End of a drain (Xen RING_FINAL_CHECK_FOR_RESPONSES): ask for a notification for
 * the next entry (`event = cons + 1`), full barrier, then re-read `prod`.
 * Context: interrupt context, on the ring's CPU.
 * @param c Consumer.
 * @return 1 if believable entries arrived meanwhile (drain again: no notification will
 *         come for them); 0 otherwise.
 */
APF_API int apf_guest_ring_finish(struct apf_guest_ring_consumer *c);

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

#if defined(__x86_64__) || defined(__i386__) || defined(DOXYGEN)
/** The real instructions (inline assembly), for a guest kernel at CPL 0 on x86-64 or i686. */
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
    /** Ready ring wanted: 0 = the one-slot area (IRQ_ACK); else entries per CPU, a power of
     *  two #APF_RING_MIN_ENTRIES .. #APF_RING_MAX_ENTRIES (probe: APF_EINVAL otherwise).
     *  Set after apf_guest_kvm_arm64_init(), before apf_guest_mem_size(). */
    uint32_t ring_entries;
    /** Set by probe: 1 if the host offers the ring and it is used, 0 for slot mode
     *  (also when the host lacks #APF_FEATURE_RING: the fallback). Read-only. */
    uint32_t ring_active;
};

/**
 * @brief Linux KVM on x86: probe = CPUID signature (KVMKVMKVM at 0x40000000, or at a
 * multiple of 0x100 above it) and the ASYNC_PF and ASYNC_PF_INT feature bits; channel = the
 * 64-byte area; vectors 32..255 (the kernel's choice); enable = `wrmsr` ASYNC_PF_INT
 * (vector) then ASYNC_PF_EN (address | ENABLED | DELIVERY_AS_INT, plus SEND_ALWAYS only if
 * asked); disable = EN 0; "not present" = the area's reason, token = the kernel's CR2
 * (passed to apf_guest_on_exception()); "page ready" = the area's token, cleared, then
 * `wrmsr` ASYNC_PF_ACK 1 (one per "page ready"). Byte for byte what Linux KVM expects.
 */
APF_API extern const struct apf_guest_backend_ops apf_guest_backend_kvm_x86;

/**
 * @brief The arm64 design: probe = vendor-hyp features bit #APF_ARM64_FEATURE_BIT, VERSION
 * major 1 (any minor), SLOTS, SDEI and IRQ numbers (each checked), and, if
 * apf_guest_kvm_arm64::ring_entries asks for the ring, FEATURES (a host without
 * #APF_FEATURE_RING, or answering NOT_SUPPORTED: slot mode); vector = the host's PPI
 * (16..31). Channel: the 64-byte area, plus (ring wanted) the guest's ring state and a
 * 4096-aligned ring page at offset 4096. enable = (ring) RING `ring_pa | log2(entries)`,
 * then ENABLE with the control value in two 32-bit halves (with #APF_ARM64_EN_RING);
 * disable = ENABLE 0 (then RING 0). "Not present": reason and token in the area (SDEI).
 * "Page ready": slot mode = reason and token in the area, then IRQ_ACK; ring mode = the
 * ring only (no IRQ_ACK); a "page ready" in the area is then a bad host value.
 */
APF_API extern const struct apf_guest_backend_ops apf_guest_backend_kvm_arm64;

/** @brief No APF: probe returns APF_ENODEV, vector_check, enable, disable and
 *  ready_finish APF_EOPNOTSUPP; no channel memory; take_not_present finds a genuine fault
 *  and ready_peek nothing. */
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
 * @brief Initialise a kvm_arm64 backend context (slot mode: ring_entries = 0; set
 * apf_guest_kvm_arm64::ring_entries afterwards to ask for the ready ring).
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
