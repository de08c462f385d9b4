/* SPDX-License-Identifier: MIT */
/*
 * The simulated host: the VMM plays KVM's host side of the APF protocol for the remote pages
 * the guest announces (GABI_PORT_ANNOUNCE), using only KVM's ordinary interfaces:
 *
 *  - "not present": flags = 1 in the guest's shared area, CR2 = token (KVM_SET_SREGS), #PF
 *    with error code 0 (KVM_SET_VCPU_EVENTS), at the announcing instruction's boundary;
 *  - resolution: a worker thread copies the page in (UFFDIO_COPY) after the delay;
 *  - "page ready": token in the shared area, the vector raised as an MSI to APIC 0
 *    (KVM_SIGNAL_MSI, which also kicks the vCPU), one at a time: the next only after the
 *    slot reads 0 and the guest's ACK was seen (the guest reports each ACK wrmsr).
 *
 * It follows KVM's rules for when to go async: APF on with DELIVERY_AS_INT, SEND_ALWAYS
 * (the guest is at CPL 0), interrupts enabled, the page missing, no work in flight for it.
 * Where KVM emulates the guest's instructions it never sends "not present" itself; this
 * lets the guest's sleep/wake path run against real interrupt and exception delivery there.
 */
#ifndef VMM_SIMHOST_H
#define VMM_SIMHOST_H

#include <stdint.h>

#include "remote.h"
#include "vm.h"

struct vmm_simhost;

struct vmm_simhost_stats {
    uint64_t announced; /* announces seen */
    uint64_t injected;  /* "not present" injected */
    uint64_t declined;  /* announces answered with no event (why: see the log line) */
    uint64_t resolved;  /* pages copied in by the worker */
    uint64_t delivered; /* "page ready" raised */
    uint64_t deferred;  /* completions that had to wait for the slot or the ACK */
    uint64_t acks;      /* guest ACKs seen */
};

/* 0 or -errno. */
int vmm_simhost_create(struct vmm_simhost **out, struct vmm_vm *vm, struct vmm_remote *remote,
                       uint32_t vector, uint32_t delay_us);
/* The guest announced a read of @p gpa. vCPU thread, between two KVM_RUN calls. Returns the
 * token injected as "not present", 0 if none was (the access proceeds synchronously), or
 * -errno. */
int64_t vmm_simhost_on_announce(struct vmm_simhost *s, uint64_t gpa);
/* The guest wrote ASYNC_PF_ACK. vCPU thread, between two KVM_RUN calls. */
void vmm_simhost_on_ack(struct vmm_simhost *s);
void vmm_simhost_get_stats(struct vmm_simhost *s, struct vmm_simhost_stats *out);
void vmm_simhost_destroy(struct vmm_simhost *s);

#endif /* VMM_SIMHOST_H */
