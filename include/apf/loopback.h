/* SPDX-License-Identifier: MIT */
/**
 * @file loopback.h
 * @brief Both halves in one process: a vCPU model joining libapf-guest to libapf-host.
 *
 * The loopback owns a host engine and its transport frontend (KVM x86 or arm64, the latter
 * with the one-slot area or the ready ring; apf-mmio, apf/host_mmio.h; xen-hvm,
 * apf/host_xen.h, with the loopback playing Xen's own hypercalls; s390 pfault,
 * apf/host_s390.h) and gives the guest runtime the matching real backend
 * (apf_guest_backend_kvm_x86 / apf_guest_backend_kvm_arm64 / apf_guest_backend_mmio /
 * apf_guest_backend_xen / apf_guest_backend_s390) over arch hooks that
 * call the frontend: the guest's `cpuid`, `wrmsr` and `hvc` reach apf_host_kvm_x86_wrmsr()
 * / apf_host_kvm_arm64_hvc() exactly as a VMM would route them. The host's injections are delivered on the vCPU's own thread: "not
 * present" as an exception at the fault (apf_loopback_fault() calls the runtime's
 * apf_guest_on_exception()), "page ready" as an interrupt at the guest's next delivery
 * point (apf_loopback_deliver() calls apf_guest_on_interrupt()); kicks wake a vCPU idling
 * in apf_loopback_idle().
 *
 * s390: DIAGNOSE X'258' goes to apf_host_s390_diag258(); "not present" and "page ready" are
 * external interrupt 0x2603 (apf_guest_s390_external()), the latter taken from the floating
 * FIFO by whichever vCPU enters; each vCPU's token doubleword (real address 0x340, mapped per
 * vCPU as prefixing would) gets a fresh task token before each fault, standing in for the
 * kernel's context switch. apf_loopback_config::ppi and ring_entries must be 0.
 *
 * "Guest-physical" addresses are this process's addresses: register the memory the guest
 * owns (at least the runtime's memory, where the shared areas are) with
 * apf_loopback_add_ram(); the host side can touch nothing else. Use
 * apf_loopback_virt_to_phys() as the environment's `virt_to_phys`.
 *
 * Part of the hosted library apf_loopback (pthreads); for simulators, conformance tests and
 * embedders' own tests.
 */
#ifndef APF_LOOPBACK_H
#define APF_LOOPBACK_H

#include <stddef.h>
#include <stdint.h>

#include "apf/guest.h"
#include "apf/host.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief The loopback of one VM (opaque). */
struct apf_loopback;

/** @brief Loopback configuration (zero-initialise). */
struct apf_loopback_config {
    /**
     * The engine's configuration, as for apf_host_create(): n_vcpus, transport
     * (&apf_host_transport_kvm_x86, &apf_host_transport_kvm_arm64, &apf_host_transport_mmio,
     * &apf_host_transport_xen or &apf_host_transport_s390), n_workers,
     * max_outstanding, fallback, worker_spin_ns, trace, alloc, env. Leave `ops` and `ctx`
     * NULL: the loopback supplies them (guest memory, injections, kicks) and calls
     * @ref resolve / @ref submit below.
     */
    struct apf_host_config host;
    /** arm64: PPI of "page ready" (16..31); apf-mmio: its IRQ (1..1023); 0 = 20. */
    uint32_t ppi;
    /** arm64: ready ring entries the guest backend asks for (a power of two, 2..512;
     *  0 = the one-slot area with IRQ_ACK). apf-mmio: ring entries (0 = 256). */
    uint32_t ring_entries;
    /** apf-mmio only: how "not present" is delivered, an APF_MMIO_NP_* value
     *  (apf/proto_mmio.h); 0 = #APF_MMIO_NP_X86_PF. The loopback takes the exception at
     *  the faulting access in every kind; only what it carries differs (CR2 or nothing). */
    uint32_t mmio_np_kind;
    /** Make a page present (worker thread; see apf_host_ops::resolve). */
    int (*resolve)(void *ctx, uint32_t vcpu, uint64_t gpa);
    /** Start making a page present (see apf_host_ops::submit). */
    void (*submit)(void *ctx, uint32_t vcpu, uint32_t token, uint64_t gpa);
    void *ctx;            /**< First argument of resolve / submit. */
    uint64_t reserved[4]; /**< Must be 0 (room to grow, as apf_host_config::reserved). */
};

/**
 * @brief Create a loopback (host engine + frontend, workers started).
 * @param cfg Configuration.
 * @param[out] out The loopback.
 * @return 0; APF_EINVAL; APF_ENOMEM; APF_EAGAIN (threads).
 */
APF_API int apf_loopback_create(const struct apf_loopback_config *cfg, struct apf_loopback **out);

/**
 * @brief Destroy: stops the host's workers, frees everything.
 * @param lb Loopback, or NULL.
 */
APF_API void apf_loopback_destroy(struct apf_loopback *lb);

/**
 * @brief The host engine (for statistics, apf_host_complete(), save/restore...).
 * @param lb Loopback.
 * @return The engine.
 */
APF_API struct apf_host *apf_loopback_host(const struct apf_loopback *lb);

/**
 * @brief Declare guest RAM: [@p base, @p base + @p size) of this process. Up to 16 regions.
 * Context: before the guest runs.
 * @param lb Loopback.
 * @param base Start.
 * @param size Size in bytes.
 * @return 0; APF_ENOSPC (too many regions); APF_EINVAL (empty or wrapping region).
 */
APF_API int apf_loopback_add_ram(struct apf_loopback *lb, void *base, size_t size);

/**
 * @brief The guest backend to configure the runtime with: the real kvm_x86 or kvm_arm64
 * backend over the loopback's arch hooks.
 * @param lb Loopback.
 * @param[out] ops Backend ops.
 * @param[out] ctx Backend context.
 */
APF_API void apf_loopback_guest_backend(struct apf_loopback *lb,
                                        const struct apf_guest_backend_ops **ops, void **ctx);

/**
 * @brief The guest runtime the vCPUs deliver notifications to.
 * @param lb Loopback.
 * @param g Runtime (initialised with apf_loopback_guest_backend()).
 */
APF_API void apf_loopback_attach(struct apf_loopback *lb, struct apf_guest *g);

/**
 * @brief `virt_to_phys` for the guest environment: the identity.
 * @param ctx Ignored.
 * @param va Address.
 * @return @p va as an integer.
 */
APF_API uint64_t apf_loopback_virt_to_phys(void *ctx, const void *va);

/**
 * @brief The current task touched a missing page: the "stage-2 exit" of vCPU @p vcpu.
 *
 * Asks the engine. On #APF_FAULT_ASYNC, delivers "not present" to the guest right away, on
 * this thread (apf_guest_on_exception(): the task sleeps until its "page ready"), and
 * returns when the task runs again. On #APF_FAULT_HALT, keeps the vCPU halted (delivering
 * "page ready" interrupts meanwhile) until the engine lets it run. On #APF_FAULT_SYNC
 * returns at once: the caller makes the page present itself. In every case the caller then
 * retries the access.
 * Context: vCPU @p vcpu's thread, task context.
 * @param lb Loopback.
 * @param vcpu vCPU.
 * @param gpa Faulting address.
 * @param guest_state APF_GS_* bits.
 * @return The engine's #apf_fault_result, or a negative code.
 */
APF_API int apf_loopback_fault(struct apf_loopback *lb, uint32_t vcpu, uint64_t gpa,
                               uint32_t guest_state);

/**
 * @brief A delivery point of vCPU @p vcpu (the guest can take interrupts): runs the engine's
 * before-entry step and, if it raised "page ready", the guest's interrupt handler; repeats
 * while the engine has more (a slot: each ACK is an exit after which KVM enters with the
 * next; a ring: the next entry finds the entries the guest consumed free again).
 * Context: vCPU @p vcpu's thread.
 * @param lb Loopback.
 * @param vcpu vCPU.
 * @param guest_state APF_GS_* bits (#APF_GS_IRQCHIP_ON to take "page ready").
 * @return The number of interrupts delivered (0 if none); a negative code on error.
 */
APF_API int apf_loopback_deliver(struct apf_loopback *lb, uint32_t vcpu, uint32_t guest_state);

/**
 * @brief Whether vCPU @p vcpu was kicked since the last call (and clear it): a cheap check a
 * busy vCPU model can make often, to reach a delivery point soon after a completion, as a
 * real vCPU takes an interrupt between instructions.
 * Context: vCPU @p vcpu's thread.
 * @param lb Loopback.
 * @param vcpu vCPU.
 * @return 1 if kicked, else 0.
 */
APF_API int apf_loopback_pending(struct apf_loopback *lb, uint32_t vcpu);

/**
 * @brief vCPU @p vcpu has nothing to run (the guest's `hlt`): wait for a kick, at most
 * @p timeout_ns.
 * Context: vCPU @p vcpu's thread.
 * @param lb Loopback.
 * @param vcpu vCPU.
 * @param timeout_ns Upper bound of the wait.
 * @return 1 if kicked, 0 on timeout.
 */
APF_API int apf_loopback_idle(struct apf_loopback *lb, uint32_t vcpu, uint64_t timeout_ns);

/**
 * @brief Wake vCPU @p vcpu from apf_loopback_idle() (as the engine's kick, or an IPI).
 * Context: any thread.
 * @param lb Loopback.
 * @param vcpu vCPU.
 */
APF_API void apf_loopback_kick(struct apf_loopback *lb, uint32_t vcpu);

#ifdef __cplusplus
}
#endif

#endif /* APF_LOOPBACK_H */
