/* SPDX-License-Identifier: MIT */
/*
 * libapf-host in a KVM VMM: the engine with the kvm_x86 frontend plays the host side of
 * APF for the guest, through KVM's ordinary interfaces:
 *
 *  - the APF MSRs: KVM's MSR filter sends the guest's rdmsr/wrmsr of them to user space
 *    (vmm_vm_msr_filter_apf()); each exit goes to the frontend (#GP where KVM would);
 *  - "not present": the engine decides (apf_host_vcpu_fault()); injected with CR2 = token
 *    (KVM_SET_SREGS) and #PF error code 0 (KVM_SET_VCPU_EVENTS);
 *  - "page ready": the engine writes the token, the VMM raises the vector as an MSI to
 *    APIC 0 (KVM_SIGNAL_MSI), from the vCPU thread before an entry;
 *  - completions: the VMM's own thread fills the page through userfaultfd (UFFDIO_COPY)
 *    after the delay and calls apf_host_complete() (embedder-completion mode); the engine's
 *    kick pulls the vCPU out of KVM_RUN (immediate_exit + a signal).
 *
 * The guest announces each remote page before its first touch (GABI_PORT_ANNOUNCE): that is
 * the VMM's "missing page" event here, because under KVM's instruction emulator a touch of a
 * userfaultfd page blocks inside KVM_RUN instead of exiting.
 */
#ifndef VMM_APFHOST_H
#define VMM_APFHOST_H

#include <stdint.h>
#include <stdio.h>

#include <linux/kvm.h>

#include "remote.h"
#include "vm.h"

struct vmm_apfhost;

struct vmm_apfhost_stats {
    uint64_t announced; /* announces seen */
    uint64_t async;     /* "not present" injected (APF_FAULT_ASYNC) */
    uint64_t sync;      /* APF_FAULT_SYNC: the access proceeds and faults on userfaultfd */
    uint64_t halt;      /* APF_FAULT_HALT */
    uint64_t resolved;  /* pages copied in by the completion thread */
    uint64_t ready;     /* "page ready" raised (tokens) */
    uint64_t wake_all;  /* ... wake-alls */
    uint64_t acks;      /* ACKs the frontend received */
    uint64_t msr_exits; /* KVM_EXIT_X86_RDMSR / _WRMSR handled */
    uint64_t kicks;     /* kicks that ended a KVM_RUN */
};

/* vCPU thread (the caller's) is the one that runs KVM_RUN. @p trace: libapf's text trace of
 * the engine's events, or NULL. 0 or -errno / an APF_E* code. */
int vmm_apfhost_create(struct vmm_apfhost **out, struct vmm_vm *vm, struct vmm_remote *remote,
                       uint32_t delay_us, FILE *trace);
/* Before every KVM_RUN (vCPU thread): delivers a "page ready" if one is due; clears a kick. */
void vmm_apfhost_before_entry(struct vmm_apfhost *s);
/* KVM_RUN returned EINTR: 1 if it was our kick. */
int vmm_apfhost_kicked(struct vmm_apfhost *s);
/* KVM_EXIT_X86_RDMSR / _WRMSR (vCPU thread): answers @p run->msr. 0 or -errno. */
int vmm_apfhost_on_msr_exit(struct vmm_apfhost *s, struct kvm_run *run);
/* The guest announced a read of @p gpa (vCPU thread). The token injected as "not present",
 * 0 if none (the access proceeds synchronously), or a negative code. */
int64_t vmm_apfhost_on_announce(struct vmm_apfhost *s, uint64_t gpa);
/* The APF MSRs as the frontend holds them (for the facts' read-back). Returns @p n or < 0. */
int vmm_apfhost_get_msrs(void *s, const uint32_t *index, uint64_t *value, int n);
void vmm_apfhost_get_stats(struct vmm_apfhost *s, struct vmm_apfhost_stats *out);
void vmm_apfhost_destroy(struct vmm_apfhost *s);

#endif /* VMM_APFHOST_H */
