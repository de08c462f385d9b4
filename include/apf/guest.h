/* SPDX-License-Identifier: MIT */
/**
 * @file guest.h
 * @brief libapf-guest: the guest kernel's side of the APF protocol.
 *
 * Freestanding: no libc, no allocation. The kernel gives the runtime its memory
 * (apf_guest_mem_size() then apf_guest_init()), its services (struct apf_guest_env_ops) and
 * a transport backend (apf/guest_backend.h), then calls four entry points:
 *  - apf_guest_cpu_online() / apf_guest_cpu_offline() on each CPU;
 *  - apf_guest_on_exception() from the "not present" exception handler (x86 \#PF, before
 *    the kernel's own page-fault handling, with CR2; arm64 SDEI handler);
 *  - apf_guest_on_interrupt() from the "page ready" interrupt handler.
 *
 * Calling contexts used in this file: "task context" (may sleep if the environment says
 * so), "interrupt context" (must not sleep), "any".
 *
 * Wake-before-wait, wake-all and what happens when the placeholder pool runs out are
 * described at apf_guest_config::n_placeholders.
 */
#ifndef APF_GUEST_H
#define APF_GUEST_H

#include <stddef.h>
#include <stdint.h>

#include "apf/error.h"
#include "apf/export.h"
#include "apf/guest_backend.h"
#include "apf/proto.h"
#include "apf/trace.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief The runtime (opaque; lives in memory given to apf_guest_init()). */
struct apf_guest;

/**
 * @brief A lock word owned by the runtime (one per sleep-table bucket and one for the
 * placeholder pool). All-zero means unlocked. The environment's lock hooks define the
 * algorithm (spinlock with interrupts disabled in a kernel; a futex in user space).
 */
struct apf_guest_lock {
    uint32_t word; /**< Owned by the environment's lock/unlock hooks. */
};

/**
 * @brief A task waiting for a token: lives on the waiting task's stack for the duration of
 * the wait. Fields are private to the runtime; use the accessors.
 */
struct apf_guest_waiter {
    /** @cond INTERNAL */
    struct apf_guest_waiter *next;
    void *task;
    uint32_t token;
    uint32_t cpu;
    uint32_t halted;
    uint32_t placeholder;
    uint32_t woken; /* accessed atomically */
    uint32_t pad;
    /** @endcond */
};

/**
 * @brief The kernel's services. `ctx` (apf_guest_config::env_ctx) is passed first.
 * All are required except `log`.
 */
struct apf_guest_env_ops {
    /** The task running now (an opaque pointer the runtime hands back in `wake`). */
    void *(*current_task)(void *ctx);
    /** The CPU running now. */
    uint32_t (*cpu_id)(void *ctx);
    /** Whether the current context may sleep (false in atomic or idle context: then the
     *  CPU halts until the token's "page ready" arrives instead). */
    int (*can_sleep)(void *ctx);
    /** Block the current task until apf_guest_waiter_woken(@p w) is true. The wake may
     *  come from interrupt context on any CPU at any moment, so check it again after
     *  marking the task blocked. Task context, interrupts enabled on return. */
    void (*sleep)(void *ctx, struct apf_guest_waiter *w);
    /** A waiter was woken: make @p task runnable, or, if @p halted, make CPU @p cpu leave
     *  `halt` (an IPI if it is another CPU). The waiter itself may already be gone (it
     *  lives on the woken task's stack), hence the copies. Interrupt context, under a
     *  bucket lock: must not block. */
    void (*wake)(void *ctx, void *task, uint32_t cpu, int halted);
    /** Wait for an interrupt with interrupts enabled, then return (x86: `sti; hlt`). */
    void (*halt)(void *ctx);
    /** Take @p l with local interrupts disabled; return the previous interrupt state. */
    uintptr_t (*lock)(void *ctx, struct apf_guest_lock *l);
    /** Release @p l and restore the interrupt state @p flags. */
    void (*unlock)(void *ctx, struct apf_guest_lock *l, uintptr_t flags);
    /** Guest-physical address of a kernel virtual address (for the backend's channels, in
     *  the runtime's memory; each CPU's channel must be physically contiguous, as kernel
     *  linear-map memory is: apf_guest_cpu_online() checks it page by page). */
    uint64_t (*virt_to_phys)(void *ctx, const void *va);
    /** Optional diagnostics: @p level 0 error, 1 warning, 2 info; @p msg one line. */
    void (*log)(void *ctx, int level, const char *msg);
};

/** @name apf_guest_config::flags
 *  @{ */
/** Keep APF off on every CPU (the equivalent of Linux's `no-kvmapf`). */
#define APF_GUEST_NO_APF (1u << 0)
/** Ask for "not present" in kernel mode too (SEND_ALWAYS), if the backend offers it. */
#define APF_GUEST_SEND_ALWAYS (1u << 1)
/** @} */

/** @brief Runtime configuration (zero-initialise, then set what you need). */
struct apf_guest_config {
    uint32_t n_cpus;    /**< CPUs, 1..4096 (ids 0..n_cpus-1). */
    uint32_t n_buckets; /**< Sleep-table buckets, a power of two; 0 = 256. */
    /**
     * Placeholder pool size; 0 = 2 * n_cpus + 16. Shared out evenly among the CPUs (each
     * gets n_placeholders / n_cpus, rounded): a "page ready" taken on a CPU uses that CPU's
     * share, so no lock is common to all CPUs; give each CPU at least one.
     *
     * Wake-before-wait: a "page ready" may reach the sleep table before the task that
     * is about to wait on its token. The waker then leaves a placeholder from this bounded,
     * preallocated pool; the late waiter finds it, removes it and does not sleep.
     * A late waiter exists only between a CPU taking "not present" and its handler
     * reaching the sleep table, so with a protocol-conforming host at most one placeholder
     * per CPU is live at a time; the rest of the pool absorbs "page ready"s for unknown or
     * repeated tokens from a faulty host (a wake-all of the CPU frees those).
     *
     * Exhaustion (defined behaviour, never a lost wake-up): if the CPU's share has no free
     * placeholder, the runtime records that a wake-up was dropped (an epoch counter) instead. Until each CPU
     * has completed an entry point that began after the drop, a waiter on that CPU that
     * finds no placeholder does not sleep: apf_guest_on_exception() returns at once and the
     * task retries its access (a spurious wake-up is always safe: the page is either present,
     * or the host halts the vCPU on the frame in flight). Counted in
     * apf_guest_stats::lost_wakeups and apf_guest_stats::retries.
     */
    uint32_t n_placeholders;
    /** The "page ready" vector the kernel chose, checked by the backend (x86: 32..255).
     *  Ignored when the backend's host chooses it (arm64: see apf_guest_vector()). */
    uint32_t vector;
    uint32_t flags; /**< APF_GUEST_* bits. */
    const struct apf_guest_env_ops *env;         /**< Required. */
    void *env_ctx;                               /**< First argument of every env hook. */
    const struct apf_guest_backend_ops *backend; /**< Required (apf_guest_backend_null for none). */
    void *backend_ctx;                           /**< First argument of every backend op. */
    apf_trace_fn trace;                          /**< Optional trace hook (time_ns is 0). */
    void *trace_ctx;                             /**< First argument of @ref trace. */
    /** Reserved for future options: must be 0 (apf_guest_mem_size() returns 0 and
     *  apf_guest_init() APF_EINVAL otherwise), so that a later release can give them a
     *  meaning without breaking binaries built against this one. */
    uint32_t reserved[8];
};

/** @brief Per-CPU statistics (apf_guest_stats()). */
struct apf_guest_stats {
    uint64_t not_present;      /**< "Not present" taken. */
    uint64_t slept;            /**< ... tasks that slept. */
    uint64_t halted;           /**< ... waits that halted the CPU (context could not sleep). */
    uint64_t placeholder_hits; /**< ... waits satisfied by a placeholder (ready came first). */
    uint64_t retries;          /**< ... waits skipped because a wake-up was dropped. */
    uint64_t ready;            /**< "Page ready" taken for a token. */
    uint64_t wake_all;         /**< "Page ready" taken with the wake-all token. */
    uint64_t woken;            /**< Waiters woken (by token, wake-all or offline). */
    uint64_t placeholders;     /**< Placeholders created (ready before its waiter). */
    uint64_t lost_wakeups;     /**< Placeholders that could not be created (pool empty). */
    uint64_t spurious;         /**< Interrupts that found nothing to take (empty slot or
                                    ring, or a "not present" left in an arm64 slot). */
    uint64_t bad_host_values;  /**< Host-written values rejected (reason, token, ...). */
    uint64_t acks;             /**< ACKs sent (slot: one per "page ready"; ring: one per
                                    drain, the consumer index published and re-checked). */
    uint32_t placeholders_in_use; /**< Placeholders of this CPU in the table now. */
    uint32_t waiting;             /**< Tasks of this CPU waiting (asleep or halted) now. */
    uint32_t enabled;             /**< APF is on for this CPU. */
    uint32_t reserved0;           /**< Reserved: 0. */
    uint64_t ring_entries;        /**< "Page ready" entries taken from a ready ring. */
    uint64_t notifications;       /**< "Page ready" interrupts that found work. */
    uint64_t reserved[6];         /**< Reserved for future counters: 0. */
};

/**
 * @brief Bytes of memory apf_guest_init() needs for @p cfg (any alignment). Includes each
 * CPU's notification channel as the backend sizes it (apf_guest_backend_ops::chan_size:
 * 64 bytes for the one-slot area, 8 KiB for kvm_arm64 with the ready ring), so configure
 * the backend context first. Pure: calls only the backend's chan_size.
 * Context: any.
 * @param cfg Configuration.
 * @return The size, or 0 if @p cfg is invalid (including non-zero reserved words).
 */
APF_API size_t apf_guest_mem_size(const struct apf_guest_config *cfg);

/**
 * @brief Initialise the runtime in caller-provided memory and probe the host.
 *
 * If APF_GUEST_NO_APF is set, or the backend's probe fails, the runtime is still valid
 * but keeps APF off: apf_guest_cpu_online() returns APF_EOPNOTSUPP and
 * apf_guest_on_exception() reports every fault as genuine.
 * Context: boot CPU, before the other entry points.
 * @param mem Memory of at least apf_guest_mem_size() bytes (zeroing is not required).
 * @param size Its size.
 * @param cfg Configuration (copied).
 * @param[out] out The runtime (inside @p mem).
 * @return 0 (APF usable, or off by choice, probe or vector check: see
 *         apf_guest_available()); APF_EINVAL for an invalid configuration (including
 *         non-zero apf_guest_config::reserved words); APF_ENOSPC if @p size is too small.
 */
APF_API int apf_guest_init(void *mem, size_t size, const struct apf_guest_config *cfg,
                           struct apf_guest **out);

/**
 * @brief Whether the host offers APF and the runtime may use it.
 * @param g Runtime.
 * @return 1 if usable; otherwise the reason as a negative code: APF_EINVAL for a NULL
 *         @p g, APF_ECANCELED for
 *         APF_GUEST_NO_APF, the backend probe's error, APF_EPROTO for probe values out of
 *         range, or the backend's vector_check error (APF_EINVAL: the kernel's vector;
 *         APF_EPROTO: the host's).
 */
APF_API int apf_guest_available(const struct apf_guest *g);

/**
 * @brief The "page ready" interrupt: the configured vector (x86) or the host's (arm64).
 * @param g Runtime.
 * @return The vector or INTID, 0 if APF is unavailable (or @p g is NULL).
 */
APF_API uint32_t apf_guest_vector(const struct apf_guest *g);

/**
 * @brief Bring APF up on a CPU: zero its notification channel (inside the runtime's
 * memory, sized and aligned as the backend asked: the 64-byte area, and a ring page if the
 * backend uses one) and register it with the host through the backend.
 * Context: on @p cpu, task context.
 * @param g Runtime.
 * @param cpu This CPU.
 * @return 0; APF_EINVAL (NULL @p g, bad cpu); APF_EOPNOTSUPP (APF unavailable); APF_EALREADY (already
 *         on); APF_EFAULT (the channel is not physically contiguous); or the backend's
 *         error (the host refused; APF stays off on this CPU).
 */
APF_API int apf_guest_cpu_online(struct apf_guest *g, uint32_t cpu);

/**
 * @brief Take APF down on a CPU: disable it through the backend, then wake every task
 * sleeping on this CPU (they retry their accesses) and free this CPU's placeholders.
 * Context: on @p cpu.
 * @param g Runtime.
 * @param cpu This CPU.
 * @return The number of waiters woken (>= 0); APF_EINVAL (NULL @p g, bad cpu). Offlining a CPU
 *         that is not on is a no-op returning 0.
 */
APF_API int apf_guest_cpu_offline(struct apf_guest *g, uint32_t cpu);

/**
 * @brief The "not present" exception (x86 \#PF before the kernel's own handling; arm64 SDEI).
 *
 * The backend reads and clears the reason (apf_guest_backend_ops::take_not_present). 0
 * means a genuine fault: returns 0 and the kernel handles it. "Not present" puts the
 * current task to sleep on the token (or, if the environment says the context cannot
 * sleep, halts the CPU until that token's "page ready" arrives), then returns 1: the task
 * retries its access. Any other value, or an invalid token, is reported, cleared and
 * returns 1 without harm (the access is retried); except a "page ready" in an area that
 * carries the reason (arm64 slot mode), which is left for the interrupt.
 * Context: the faulting task's context, on @p cpu, called before the exception path
 * enables interrupts (x86: first thing in the \#PF handler, as the interrupt gate left
 * them off; arm64: inside the SDEI handler). "Page ready" interrupts that arrive later, but
 * before the task is in the sleep table, are handled: a lost wake-up or a wake-all of this
 * CPU in that window makes the task retry instead of sleeping.
 * @param g Runtime.
 * @param cpu This CPU.
 * @param token_hint x86: CR2 (the token); arm64: ignored (the token is in the area).
 * @return 1 if it was an APF event (handled); 0 if it is a genuine fault; APF_EINVAL for a
 *         NULL @p g (early boot, before apf_guest_init()) or a bad @p cpu. Only 1 means
 *         "handled": a handler must treat anything else as a fault of its own (see the
 *         README's guest snippet).
 */
APF_API int apf_guest_on_exception(struct apf_guest *g, uint32_t cpu, uint32_t token_hint);

/** @name Where a fault was taken (apf_guest_on_exception_from())
 *  @{ */
/** Taken in kernel mode (x86: the saved CS has RPL 0). Without SEND_ALWAYS in force the
 *  host never sends "not present" to kernel mode, so such a fault is genuine. */
#define APF_GUEST_FROM_KERNEL (1u << 0)
/** Taken inside an NMI (or another handler that can run between the host's injection and
 *  the faulting task's handler, e.g. x86 \#MC or \#DB): never the owner of a reason. */
#define APF_GUEST_FROM_NMI (1u << 1)
/** @} */

/**
 * @brief apf_guest_on_exception() for a handler that knows where the fault was taken: the
 * reason is consumed only on the path that owns it.
 *
 * On x86 the host writes the reason into the area, then injects \#PF into the task it
 * interrupted (user mode, or kernel mode with SEND_ALWAYS). An NMI can arrive before that
 * \#PF handler reads the reason, and a \#PF inside the NMI (a perf callchain touching user
 * memory, say) would find the reason set: consuming it there sends the NMI to sleep on the
 * token and leaves the real handler a "genuine" fault at CR2 = token. So: with
 * #APF_GUEST_FROM_NMI, or with #APF_GUEST_FROM_KERNEL while SEND_ALWAYS is not in force,
 * the channel is not read and 0 (genuine) is returned; the owner takes the reason later.
 * Otherwise exactly apf_guest_on_exception().
 * Context: as apf_guest_on_exception(), or NMI context with #APF_GUEST_FROM_NMI.
 * @param g Runtime.
 * @param cpu This CPU.
 * @param token_hint As for apf_guest_on_exception().
 * @param from #APF_GUEST_FROM_KERNEL, #APF_GUEST_FROM_NMI, or 0 (user mode).
 * @return As apf_guest_on_exception(); APF_EINVAL also for an unknown bit in @p from
 *         (nothing read or changed).
 */
APF_API int apf_guest_on_exception_from(struct apf_guest *g, uint32_t cpu, uint32_t token_hint,
                                        uint32_t from);

/**
 * @brief The "page ready" interrupt: for each entry the backend finds, read the token, wake
 * its sleeper (or all of this CPU's sleepers for the wake-all token), release the entry
 * (slot: clear the token; ring: advance the consumer index), in that order; then finish
 * through the backend (slot: one ACK per "page ready"; ring: re-arm the notification and
 * re-check, draining again if more arrived). An empty slot or ring (token 0) is counted
 * as spurious and not ACKed; so is an area that carries the reason (arm64 slot) and holds
 * a "not present": it is left for apf_guest_on_exception(). A ring whose producer index
 * is not believable is refused (counted as a bad host value) until the host fixes it.
 * The kernel sends its own end-of-interrupt (x86 local APIC EOI).
 * Context: interrupt context, on @p cpu.
 * @param g Runtime.
 * @param cpu This CPU.
 * @return The number of waiters woken (>= 0); APF_EINVAL for a NULL @p g or a bad @p cpu.
 */
APF_API int apf_guest_on_interrupt(struct apf_guest *g, uint32_t cpu);

/**
 * @brief Read a CPU's statistics.
 * @param g Runtime.
 * @param cpu CPU.
 * @param[out] out Statistics.
 * @return 0; APF_EINVAL for a NULL @p g, a bad @p cpu or NULL @p out.
 */
APF_API int apf_guest_stats(const struct apf_guest *g, uint32_t cpu, struct apf_guest_stats *out);

/**
 * @brief The 64-byte shared area of a CPU (part of the backend's channel, inside the
 * runtime's memory), e.g. for diagnostics. Valid from apf_guest_init() on.
 * Context: any.
 * @param g Runtime.
 * @param cpu CPU.
 * @return The area; NULL for a NULL @p g, a bad @p cpu, or for a backend without an area (the null
 *         backend).
 */
APF_API const struct apf_shared_area *apf_guest_area(const struct apf_guest *g, uint32_t cpu);

/**
 * @brief The ready ring of a CPU (part of the backend's channel), e.g. for diagnostics.
 * Context: any, after apf_guest_init().
 * @param g Runtime.
 * @param cpu CPU.
 * @return The ring; NULL for a NULL @p g, a bad @p cpu, or when the backend uses no ring (slot mode,
 *         including a kvm_arm64 backend whose host did not offer #APF_FEATURE_RING).
 */
APF_API const struct apf_ring *apf_guest_ring(const struct apf_guest *g, uint32_t cpu);

/**
 * @brief Whether a waiter has been woken (acquire: what the waker did before is visible).
 * @param w Waiter.
 * @return 1 or 0 (0 for NULL).
 */
APF_API int apf_guest_waiter_woken(const struct apf_guest_waiter *w);

/**
 * @brief The task of a waiter, as `current_task` returned it.
 * @param w Waiter.
 * @return The task (NULL for a NULL @p w).
 */
APF_API void *apf_guest_waiter_task(const struct apf_guest_waiter *w);

/**
 * @brief The CPU a waiter waits on.
 * @param w Waiter.
 * @return The CPU id (0 for a NULL @p w).
 */
APF_API uint32_t apf_guest_waiter_cpu(const struct apf_guest_waiter *w);

/**
 * @brief Whether a waiter halts its CPU (could not sleep) rather than sleeping.
 * @param w Waiter.
 * @return 1 or 0 (0 for NULL).
 */
APF_API int apf_guest_waiter_halted(const struct apf_guest_waiter *w);

/**
 * @brief The token a waiter waits for.
 * @param w Waiter.
 * @return The token (0 for a NULL @p w).
 */
APF_API uint32_t apf_guest_waiter_token(const struct apf_guest_waiter *w);

#ifdef __cplusplus
}
#endif

#endif /* APF_GUEST_H */
