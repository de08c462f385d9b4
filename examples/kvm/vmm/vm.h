/* SPDX-License-Identifier: MIT */
/* One KVM VM with one vCPU: in-kernel irqchip, a low memory slot, an optional remote slot,
 * guest CPUID, a vCPU started in 64-bit mode, and MSR read-back. */
#ifndef VMM_VM_H
#define VMM_VM_H

#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

/* Return value of vmm_vm_create() when KVM is missing or unusable here (a test skips). */
#define VMM_UNUSABLE 1

struct vmm_vm {
    int kvm_fd;
    int vm_fd;
    int vcpu_fd;
    struct kvm_run *run;
    size_t run_size;
    uint8_t *low; /* guest-physical [0, low_size) */
    size_t low_size;
    int cap_async_pf; /* KVM_CHECK_EXTENSION(KVM_CAP_ASYNC_PF) */
    int cap_user_msr; /* KVM_CAP_X86_USER_SPACE_MSR (informative) */
};

/* What KVM offers in its paravirtual CPUID leaves, and what the guest was given. */
struct vmm_cpuid_info {
    uint32_t base;      /* leaf holding the KVM signature, 0 if none */
    char signature[13]; /* EBX ECX EDX of that leaf */
    uint32_t offered;   /* EAX of base + 1 from KVM_GET_SUPPORTED_CPUID */
    uint32_t given;     /* EAX of base + 1 as set with KVM_SET_CPUID2 */
    uint32_t x2apic;    /* CPUID.1:ECX.x2APIC as given */
};

/* 0; VMM_UNUSABLE with @p why filled when /dev/kvm is missing or a VM cannot be made here;
 * -1 on another error (also in @p why). */
int vmm_vm_create(struct vmm_vm *vm, size_t low_size, char *why, size_t why_len);
void vmm_vm_destroy(struct vmm_vm *vm);
/* Map @p size bytes at @p host as guest-physical @p gpa (slot @p slot). 0 or -errno. */
int vmm_vm_add_slot(struct vmm_vm *vm, uint32_t slot, uint64_t gpa, void *host, size_t size);
/* Give the guest KVM's supported CPUID, without the APF bits if @p hide_apf. 0 or -errno. */
int vmm_vm_setup_cpuid(struct vmm_vm *vm, int hide_apf, struct vmm_cpuid_info *info);
/* Identity page tables for 0-4 GiB, a boot GDT, and a vCPU in 64-bit mode at @p entry with
 * RDI = @p arg. 0 or -errno. */
int vmm_vm_setup_long_mode(struct vmm_vm *vm, uint64_t entry, uint64_t arg);
/* Identity page tables for 0-4 GiB usable at CPL 3, a GDT with user segments (CS 0x33,
 * SS 0x2b), and in @p out the special registers of a vCPU in 64-bit user mode with no IDT
 * (any event delivered to it shuts the VM down; the caller sets them with KVM_SET_SREGS).
 * 0 or -errno. */
int vmm_vm_user_sregs(struct vmm_vm *vm, struct kvm_sregs *out);
/* KVM_SET_MSRS of one MSR, as the VMM (host-initiated). 1 if KVM took it, 0 if it refused
 * the value, or -errno. Not while KVM_RUN is in progress. */
int vmm_vm_set_msr(struct vmm_vm *vm, uint32_t index, uint64_t value);
/* KVM_GET_MSRS: read @p n MSRs. Returns how many were read, or -errno. Must not be called
 * while KVM_RUN is in progress (it would block). */
int vmm_vm_get_msrs(struct vmm_vm *vm, const uint32_t *index, uint64_t *value, int n);
/* A 32-bit local APIC register (xAPIC offset, e.g. 0xf0 SVR, 0x100 ISR) as KVM holds it
 * (KVM_GET_LAPIC). 0 or -errno. Not while KVM_RUN is in progress. */
int vmm_vm_lapic_reg(struct vmm_vm *vm, uint32_t offset, uint32_t *value);
/* Route the guest's reads and writes of the three APF MSRs to user space
 * (KVM_CAP_X86_USER_SPACE_MSR with KVM_MSR_EXIT_REASON_FILTER, KVM_X86_SET_MSR_FILTER):
 * KVM_EXIT_X86_RDMSR / _WRMSR. 0; VMM_UNUSABLE (with @p why) if this KVM cannot. */
int vmm_vm_msr_filter_apf(struct vmm_vm *vm, char *why, size_t why_len);
/* Bounds-checked access to low guest memory: NULL if [gpa, gpa + len) is outside. */
void *vmm_vm_low_ptr(struct vmm_vm *vm, uint64_t gpa, size_t len);

#endif /* VMM_VM_H */
