/* SPDX-License-Identifier: MIT */
/**
 * @file host.h
 * @brief libapf-host: the hypervisor's side of the APF protocol.
 *
 * One apf_host per VM (no global state). The hypervisor calls the engine from its vCPU
 * threads at three points:
 *  - apf_host_vcpu_fault() when a stage-2 fault needs a page that is not present;
 *  - apf_host_vcpu_before_entry() before every guest entry (delivers "page ready");
 *  - apf_host_vcpu_ack() when the guest ACKs (normally through a transport frontend:
 *    apf/host_kvm_x86.h or apf/host_kvm_arm64.h).
 * The guest-visible wire is a transport (apf/host_transport.h) chosen at create:
 * #apf_host_transport_kvm_x86, #apf_host_transport_kvm_arm64, or an embedder's own.
 * Work that makes a page present runs on the engine's worker threads (`resolve`), or the
 * embedder runs it itself (`submit` + apf_host_complete()).
 *
 * Calling contexts used in this file:
 *  - "vCPU context": the thread that runs that vCPU, or any thread while that vCPU is not
 *    running. Calls for one vCPU must not overlap.
 *  - "any thread": may run concurrently with everything else.
 *
 * Return values follow one rule: 0 (or a non-negative result) on success, a negative
 * `APF_E*` code (apf/error.h) on failure. A call that fails changes nothing.
 */
#ifndef APF_HOST_H
#define APF_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "apf/error.h"
#include "apf/export.h"
#include "apf/proto.h"
#include "apf/trace.h"

struct apf_host_transport_ops; /* apf/host_transport.h */

#ifdef __cplusplus
extern "C" {
#endif

/** @brief The engine of one VM (opaque). */
struct apf_host;

/** @brief What apf_host_vcpu_fault() decided (non-negative results). */
enum apf_fault_result {
    /** "Not present" was injected with a new token; re-enter the guest, which will run
     *  another task. The page arrives later as a "page ready". */
    APF_FAULT_ASYNC = 0,
    /** Cannot go async now: handle the fault synchronously (stall this vCPU until the page
     *  is present, then retry the access). */
    APF_FAULT_SYNC = 1,
    /** Halt this vCPU (do not enter the guest) until apf_host_vcpu_halted() returns 0; the
     *  engine calls `kick` when that may have changed. Then retry the access. Returned when
     *  the frame already has work in flight, or when "not present" cannot be delivered now
     *  and the fallback is #APF_HOST_FALLBACK_HALT (KVM's "artificial halt"). */
    APF_FAULT_HALT = 2
};

/** @name Guest state bits (the `guest_state` argument)
 *  What the hypervisor knows about the vCPU at the fault or before entry.
 *  @{ */
#define APF_GS_USER (1u << 0)        /**< Guest runs unprivileged (x86 CPL > 0, arm64 EL0). */
#define APF_GS_IRQ_ON (1u << 1)      /**< Guest interrupts enabled (x86 RFLAGS.IF). */
#define APF_GS_PAGING (1u << 2)      /**< Guest paging on (x86 CR0.PG). */
#define APF_GS_NESTED (1u << 3)      /**< Guest runs a nested guest (L2). */
#define APF_GS_EXC_PENDING (1u << 4) /**< An exception or event is pending injection. */
/** The guest's interrupt controller can take "page ready" (x86: local APIC software
 *  enabled; arm64: GIC CPU interface on). Without it no "page ready" is dequeued. */
#define APF_GS_IRQCHIP_ON (1u << 5)
#define APF_GS_NP_MASKED (1u << 6) /**< "Not present" masked (arm64: SDEI handler running). */
/** @} */

/** @brief What to do when a fault may go async but "not present" cannot be delivered. */
enum apf_host_fallback {
    APF_HOST_FALLBACK_HALT = 0, /**< Start the work and halt the vCPU until done (KVM). */
    APF_HOST_FALLBACK_SYNC = 1  /**< Return #APF_FAULT_SYNC and start nothing. */
};

/**
 * @brief The embedder's callbacks. `ctx` (apf_host_config::ctx) is passed first to each.
 *
 * Guest memory: the engine never dereferences a guest address; it reads and writes the
 * shared area (only its first 8 bytes) through `read_guest` / `write_guest`, which must
 * bounds-check and return APF_EFAULT for an address that is not guest RAM.
 */
struct apf_host_ops {
    /**
     * Make the page containing @p gpa present (read swap, UFFDIO_COPY from a migration
     * source...). Worker thread; may block. Required when apf_host_config::n_workers > 0.
     * Two vCPUs faulting on the same frame may each cause a call: it must be idempotent.
     * Return 0, or a negative code: the failure is reported to the vCPU, which then retries
     * the access synchronously.
     */
    int (*resolve)(void *ctx, uint32_t vcpu, uint64_t gpa);
    /**
     * Start making @p gpa present without blocking, then call apf_host_complete() with
     * @p token exactly once, from any thread, even if APF was disabled meanwhile. vCPU
     * context. Required when apf_host_config::n_workers == 0.
     */
    void (*submit)(void *ctx, uint32_t vcpu, uint32_t token, uint64_t gpa);
    /** Inject "not present" at the faulting instruction: x86 \#PF with CR2 = @p token, error
     *  code 0; arm64 the SDEI event. vCPU context. Required. */
    void (*inject_not_present)(void *ctx, uint32_t vcpu, uint32_t token);
    /** Raise the "page ready" interrupt @p vector (x86 vector, arm64 PPI INTID). vCPU
     *  context. Required. */
    void (*inject_ready)(void *ctx, uint32_t vcpu, uint32_t vector);
    /** A completion is waiting: make the vCPU return to the engine soon (leave the guest,
     *  or wake it from a halt). Any thread; must not block or call into the engine.
     *  Required. */
    void (*kick)(void *ctx, uint32_t vcpu);
    /** Copy @p len bytes of guest memory at @p gpa into @p buf. 0 or APF_EFAULT. vCPU
     *  context. Required. */
    int (*read_guest)(void *ctx, uint64_t gpa, void *buf, uint32_t len);
    /** Copy @p len bytes from @p buf into guest memory at @p gpa. 0 or APF_EFAULT. vCPU
     *  context. Required. */
    int (*write_guest)(void *ctx, uint64_t gpa, const void *buf, uint32_t len);
};

/** @brief Memory allocator for the engine's own state (used only in create and destroy). */
struct apf_allocator {
    /** Allocate @p size bytes aligned to @p align (a power of two <= 4096); NULL on
     *  failure. */
    void *(*alloc)(void *ctx, size_t size, size_t align);
    /** Free a block from `alloc` (@p size as allocated). */
    void (*free)(void *ctx, void *ptr, size_t size);
    void *ctx; /**< Passed to both. */
};

/**
 * @brief The environment of a freestanding host core (a kernel-mode hypervisor). Every hook
 * is optional; the hosted library (the default) uses CLOCK_MONOTONIC, stderr and abort().
 */
struct apf_host_env_ops {
    /** Monotonic time in nanoseconds, for trace events (0 if absent). Any thread. */
    uint64_t (*now_ns)(void *ctx);
    /** Diagnostics: @p level 0 error, 1 warning, 2 info; @p msg one line. Any thread. */
    void (*log)(void *ctx, int level, const char *msg);
    /** A broken internal invariant (never bad input): must not return. Absent: the
     *  engine executes a trap instruction. Any thread. */
    void (*fatal)(void *ctx, const char *file, int line, const char *what);
    void *ctx; /**< Passed to every hook. */
};

/** @brief Engine configuration (zero-initialise, then set what you need).
 *  Growing rule: new fields are taken from `reserved`, whose words must be 0 (a
 *  non-zero reserved word is refused with APF_EINVAL, so a binary built against a newer
 *  header that sets a newer field fails loudly instead of being misread). */
struct apf_host_config {
    uint32_t n_vcpus;         /**< vCPUs, 1..4096 (ids 0..n_vcpus-1). */
    uint32_t max_outstanding; /**< Per-vCPU limit of outstanding faults; 0 = 64; max 4096. */
    /** Worker threads; 0 = the embedder completes (`submit`). Hosted library only: a
     *  freestanding host core refuses non-zero (APF_EOPNOTSUPP). */
    uint32_t n_workers;
    uint32_t fallback;        /**< An #apf_host_fallback. */
    uint32_t page_shift;      /**< log2 of the page size for deduplication; 0 = 12 (4 KiB). */
    /** After a job, a worker polls for the next one this long before it sleeps, saving the
     *  wake-up (often 10-20 us) of the next fault. Costs CPU: use it where the workers have
     *  CPUs of their own (pinned away from the vCPUs). 0 = sleep at once; at most 1000000. */
    uint32_t worker_spin_ns;
    /** The guest-visible transport (required): #apf_host_transport_kvm_x86,
     *  #apf_host_transport_kvm_arm64, or one of the embedder's (apf/host_transport.h). */
    const struct apf_host_transport_ops *transport;
    void *transport_ctx;            /**< First argument of every transport op. */
    const struct apf_host_ops *ops; /**< Callbacks (required). */
    void *ctx;                      /**< First argument of every callback. */
    apf_trace_fn trace;             /**< Optional trace hook (see apf/trace.h). */
    void *trace_ctx;                /**< First argument of @ref trace. */
    const struct apf_allocator *alloc; /**< Optional in the hosted library (NULL = the C
                                            library's); required freestanding. */
    const struct apf_host_env_ops *env; /**< Optional environment hooks. */
    uint64_t reserved[8];               /**< Must be 0 (room to grow). */
};

/** KVM x86 (MSRs + \#PF with CR2 = token + interrupt, one slot + ACK): apf/host_kvm_x86.h. */
APF_API extern const struct apf_host_transport_ops apf_host_transport_kvm_x86;
/** arm64 SMCCC (SDEI + PPI, one slot + IRQ_ACK, or the ready ring): apf/host_kvm_arm64.h. */
APF_API extern const struct apf_host_transport_ops apf_host_transport_kvm_arm64;

/** @brief Limits. */
enum {
    APF_HOST_MAX_VCPUS = 4096,             /**< KVM token format: 12 bits of vCPU id. */
    APF_HOST_MAX_OUTSTANDING = 4096,       /**< Largest per-vCPU limit. */
    APF_HOST_DEFAULT_OUTSTANDING = 64,     /**< Default per-vCPU limit (KVM's). */
    APF_HOST_MAX_WORKERS = 256             /**< Largest worker pool. */
};

/** @brief Per-vCPU statistics (cumulative since create; see apf_host_vcpu_stats()). */
struct apf_host_vcpu_stats {
    uint64_t faults_async;       /**< "Not present" injected. */
    uint64_t faults_sync;        /**< Returned #APF_FAULT_SYNC. */
    uint64_t faults_halt;        /**< Returned #APF_FAULT_HALT (both causes). */
    uint64_t faults_dedup;       /**< ... of which: frame already in flight. */
    uint64_t ready_delivered;    /**< "Page ready" raised for a token. */
    uint64_t wake_all_delivered; /**< "Page ready" raised with the wake-all token. */
    uint64_t acks;               /**< ACKs received. */
    uint64_t acks_spurious;      /**< ... of which: no "page ready" was pending (no-op). */
    uint64_t completions;        /**< Work completed and seen by the vCPU. */
    uint64_t completions_dropped; /**< Completions discarded without a "page ready": APF was
                                       disabled meanwhile, or a wake-all answered them. */
    uint64_t resolve_failures;   /**< ... of which: resolve failed (access retried sync). */
    uint64_t kicks;              /**< Kicks sent for this vCPU. */
    uint32_t outstanding;        /**< Outstanding faults now (slots in use). */
    uint32_t outstanding_hwm;    /**< High-water mark of @ref outstanding. */
    uint32_t ready_queue;        /**< Completions waiting for delivery now. */
    uint32_t ready_queue_hwm;    /**< High-water mark of @ref ready_queue. */
    uint64_t notifications;      /**< "Page ready" interrupts raised (one per batch at most;
                                      a ring holds them off while the guest drains). */
    uint64_t ready_batches;      /**< Delivery points that posted at least one "page ready". */
    uint64_t bad_guest_values;   /**< Guest-written values refused (ring indices...). */
    uint64_t reserved[5];        /**< 0 (room to grow). */
};

/** @brief A vCPU's protocol state, for migration (apf_host_vcpu_save / _restore). */
struct apf_host_vcpu_state {
    uint32_t version;  /**< #APF_HOST_STATE_VERSION. */
    uint32_t enabled;  /**< 1 if APF is on. */
    uint64_t area_gpa; /**< Shared area address (when enabled). */
    uint32_t flags;    /**< APF_EN_* bits in force. */
    uint32_t vector;   /**< "Page ready" vector / PPI; 0 = not set. */
    uint32_t seq;      /**< Next token sequence number (keeps tokens fresh after restore). */
    uint32_t reserved; /**< Must be 0. */
};

/** The layout version of struct apf_host_vcpu_state. */
#define APF_HOST_STATE_VERSION 1u

/**
 * @brief Create the engine of one VM and start its worker threads.
 * Context: any thread.
 * @param cfg Configuration; copied.
 * @param[out] out The engine.
 * @return 0; APF_EINVAL for an invalid configuration (bad counts, missing callbacks or
 *         transport ops, unknown fallback, a non-zero reserved word); APF_ENOMEM; APF_EAGAIN
 *         if a worker thread cannot be created; APF_EOPNOTSUPP for workers in a freestanding
 *         host core.
 */
APF_API int apf_host_create(const struct apf_host_config *cfg, struct apf_host **out);

/**
 * @brief Stop the workers (waiting for resolves in progress) and free the engine.
 * Work that was queued but not started is dropped. With n_workers == 0 the embedder must
 * not call apf_host_complete() any more. Context: any thread, with no other call running.
 * @param h The engine, or NULL (no-op).
 */
APF_API void apf_host_destroy(struct apf_host *h);

/**
 * @brief A stage-2 fault on a page that is not present.
 *
 * Decides between async, sync and halt (see #apf_fault_result), in this order:
 * APF off, a retry of a failed resolve, guest interrupts off, or an event pending -> SYNC;
 * frame already in flight -> HALT; limit reached -> SYNC; "not present" not deliverable
 * (privilege without SEND_ALWAYS, paging off, nested without DELIVERY_AS_PF_VMEXIT, masked,
 * arm64 area not consumed, area not writable) -> the configured fallback; otherwise a token
 * is allocated, the reason written, "not present" injected, and only then the work started.
 * Allocates nothing.
 * Context: vCPU context.
 * @param h Engine.
 * @param vcpu vCPU id.
 * @param gpa Faulting guest-physical address.
 * @param guest_state APF_GS_* bits.
 * @return An #apf_fault_result; APF_EINVAL for an unknown vCPU.
 */
APF_API int apf_host_vcpu_fault(struct apf_host *h, uint32_t vcpu, uint64_t gpa,
                                uint32_t guest_state);

/**
 * @brief Before entering the guest: take completed work and deliver the "page ready"s the
 * transport has room for (one for a slot whose ACK is in, up to the free entries of a
 * ring), in completion order, then notify the guest at most once.
 * Call it on every way back into the guest, and also when the guest halts (HLT, WFI) before
 * the vCPU blocks: with a ready ring the guest frees entries without an exit, so work that
 * completed while the ring was full (its kick already spent) is delivered only here; if it
 * returns > 0, enter instead of blocking (the SPIN model, docs/hardening.md).
 * Context: vCPU context.
 * @param h Engine.
 * @param vcpu vCPU id.
 * @param guest_state APF_GS_* bits; "page ready" needs #APF_GS_IRQCHIP_ON.
 * @return The number of "page ready"s posted (0 if none); APF_EINVAL for an unknown vCPU.
 */
APF_API int apf_host_vcpu_before_entry(struct apf_host *h, uint32_t vcpu, uint32_t guest_state);

/**
 * @brief The guest ACKed a "page ready" (KVM: wrmsr ACK = 1; arm64: IRQ_ACK).
 * Releases the throttle: the next "page ready" goes out at the next
 * apf_host_vcpu_before_entry() once the slot reads 0. An ACK with no "page ready" pending
 * is a counted no-op (ACK storms are harmless).
 * Context: vCPU context.
 * @param h Engine.
 * @param vcpu vCPU id.
 * @return 1 if a "page ready" was pending, 0 if the ACK was a no-op; APF_EINVAL for an
 *         unknown vCPU.
 */
APF_API int apf_host_vcpu_ack(struct apf_host *h, uint32_t vcpu);

/**
 * @brief Whether a vCPU that got #APF_FAULT_HALT must stay halted.
 * Takes completed work first; any completion for the vCPU ends the halt (it then retries
 * its access, as KVM does). Also 0 once APF is disabled or the vCPU reset.
 * Context: vCPU context.
 * @param h Engine.
 * @param vcpu vCPU id.
 * @return 1 while halted, 0 when it may run; APF_EINVAL for an unknown vCPU.
 */
APF_API int apf_host_vcpu_halted(struct apf_host *h, uint32_t vcpu);

/**
 * @brief Work started by `submit` is done (embedder-completion mode).
 * Context: any thread.
 * @param h Engine.
 * @param vcpu The vCPU passed to `submit`.
 * @param token The token passed to `submit`.
 * @param status 0 if the page is now present; a negative code if it could not be made
 *        present (the vCPU will retry the access synchronously).
 * @return 0; APF_EINVAL for an unknown vCPU, a token that cannot be valid (0, wake-all, other
 *         vCPU's), a positive status, or an engine with worker threads (they complete their
 *         own work); APF_ENOENT if @p token is not outstanding (unknown, or stale: its slot
 *         was reused); APF_EALREADY if it was completed already. A stale token is recognised
 *         while its slot has been reused fewer than 2^20 / P times since (P = max_outstanding
 *         rounded up to a power of two: 16384 times at the default 64): tokens carry KVM's
 *         20-bit sequence number, so after that a value can come back, as in KVM.
 */
APF_API int apf_host_complete(struct apf_host *h, uint32_t vcpu, uint32_t token, int status);

/**
 * @brief Turn APF on for a vCPU (KVM: wrmsr ASYNC_PF_EN; arm64: ENABLE).
 *
 * Validates everything before changing anything: the "page ready" vector was set, @p flags
 * holds only bits of the transport (apf_host_transport_ops::valid_flags), the area is
 * 64-byte aligned (8-byte with #APF_HOST_TRANSPORT_AREA_ALIGN_8) and the transport accepts it
 * (guest memory, read through `read_guest`). If APF was already on, outstanding work is
 * dropped first, as by apf_host_vcpu_disable(). Then queues one wake-all "page ready"
 * (not for a transport with #APF_HOST_TRANSPORT_NO_WAKE_ALL).
 * Context: vCPU context.
 * @param h Engine.
 * @param vcpu vCPU id.
 * @param area_gpa Guest-physical address of the shared area.
 * @param flags APF_EN_* bits.
 * @return 0; APF_EINVAL (unknown vCPU, bad flags, misaligned area, vector not set);
 *         APF_EFAULT (area not guest memory).
 */
APF_API int apf_host_vcpu_enable(struct apf_host *h, uint32_t vcpu, uint64_t area_gpa,
                                 uint32_t flags);

/**
 * @brief Set the "page ready" vector (x86: 32..255) or PPI (arm64: 16..31): the
 * transport's apf_host_transport_ops::vector_check decides.
 * Context: vCPU context.
 * @param h Engine.
 * @param vcpu vCPU id.
 * @param vector The vector or INTID.
 * @return 0; APF_EINVAL for an unknown vCPU or a vector out of range.
 */
APF_API int apf_host_vcpu_set_vector(struct apf_host *h, uint32_t vcpu, uint32_t vector);

/**
 * @brief Turn APF off: outstanding faults are dropped (no "page ready" for them), queued
 * "page ready"s are discarded. Work still running completes later and is discarded then;
 * nothing leaks. Disabling a disabled vCPU is a no-op.
 * Context: vCPU context.
 * @param h Engine.
 * @param vcpu vCPU id.
 * @return The number of outstanding faults dropped (>= 0); APF_EINVAL for an unknown vCPU.
 */
APF_API int apf_host_vcpu_disable(struct apf_host *h, uint32_t vcpu);

/**
 * @brief vCPU reset: as apf_host_vcpu_disable(), and forget the vector and any halt.
 * Context: vCPU context.
 * @param h Engine.
 * @param vcpu vCPU id.
 * @return 0; APF_EINVAL for an unknown vCPU.
 */
APF_API int apf_host_vcpu_reset(struct apf_host *h, uint32_t vcpu);

/**
 * @brief Save a vCPU's protocol state for migration. Work in flight is not part of it:
 * the destination sends a wake-all instead.
 * Context: vCPU context.
 * @param h Engine.
 * @param vcpu vCPU id.
 * @param[out] st The state.
 * @return 0; APF_EINVAL for an unknown vCPU or NULL @p st.
 */
APF_API int apf_host_vcpu_save(struct apf_host *h, uint32_t vcpu, struct apf_host_vcpu_state *st);

/**
 * @brief Restore a vCPU's protocol state (destination of a migration). Validated like
 * apf_host_vcpu_enable() and apf_host_vcpu_set_vector(); on success, the vCPU is reset and
 * the state applied, and if APF is on a wake-all is queued so that every sleeper retries
 * (unless the transport has #APF_HOST_TRANSPORT_NO_WAKE_ALL).
 * Context: vCPU context, before the vCPU first runs.
 * @param h Engine.
 * @param vcpu vCPU id.
 * @param st The state.
 * @return 0; APF_EINVAL (unknown vCPU, wrong version, reserved bits, bad values);
 *         APF_EFAULT (area not guest memory).
 */
APF_API int apf_host_vcpu_restore(struct apf_host *h, uint32_t vcpu,
                                  const struct apf_host_vcpu_state *st);

/**
 * @brief Read a vCPU's statistics.
 * Context: any thread (a consistent-enough snapshot: each counter is read atomically).
 * @param h Engine.
 * @param vcpu vCPU id.
 * @param[out] out The statistics.
 * @return 0; APF_EINVAL for an unknown vCPU or NULL @p out.
 */
APF_API int apf_host_vcpu_stats(const struct apf_host *h, uint32_t vcpu,
                                struct apf_host_vcpu_stats *out);

/**
 * @brief Whether APF is on for a vCPU.
 * Context: vCPU context.
 * @param h Engine.
 * @param vcpu vCPU id.
 * @return 1 or 0; APF_EINVAL for an unknown vCPU.
 */
APF_API int apf_host_vcpu_enabled(const struct apf_host *h, uint32_t vcpu);

/**
 * @brief Bytes of memory the engine allocated, in total and per vCPU.
 * Context: any thread.
 * @param h Engine.
 * @param[out] per_vcpu If not NULL: bytes attributable to each vCPU (its state, slots,
 *             dedup table and share of the worker queue).
 * @return Total bytes allocated by apf_host_create().
 */
APF_API size_t apf_host_memory(const struct apf_host *h, size_t *per_vcpu);

/**
 * @brief The number of vCPUs the engine was created with.
 * @param h Engine.
 * @return apf_host_config::n_vcpus.
 */
APF_API uint32_t apf_host_vcpu_count(const struct apf_host *h);

/**
 * @brief The per-vCPU outstanding limit in force (after defaults).
 * @param h Engine.
 * @return apf_host_config::max_outstanding, or 64 if it was 0.
 */
APF_API uint32_t apf_host_max_outstanding(const struct apf_host *h);

#ifdef __cplusplus
}
#endif

#endif /* APF_HOST_H */
