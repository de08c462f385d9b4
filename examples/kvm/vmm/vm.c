/* SPDX-License-Identifier: MIT */
/* KVM VM setup from the documented KVM API (Documentation/virt/kvm/api.rst). */
#define _GNU_SOURCE
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest_abi.h"

#define CPUID_MAX_ENTRIES 512

static int xioctl(int fd, unsigned long req, void *arg)
{
    int rc;
    do
        rc = ioctl(fd, req, arg);
    while (rc < 0 && errno == EINTR);
    return rc;
}

static int xioctl_val(int fd, unsigned long req, unsigned long arg)
{
    int rc;
    do
        rc = ioctl(fd, req, arg);
    while (rc < 0 && errno == EINTR);
    return rc;
}

int vmm_vm_create(struct vmm_vm *vm, size_t low_size, char *why, size_t why_len)
{
    memset(vm, 0, sizeof(*vm));
    vm->kvm_fd = vm->vm_fd = vm->vcpu_fd = -1;
    vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (vm->kvm_fd < 0) {
        snprintf(why, why_len, "cannot open /dev/kvm: %s", strerror(errno));
        return VMM_UNUSABLE;
    }
    int api = xioctl_val(vm->kvm_fd, KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION) {
        snprintf(why, why_len, "KVM API version %d, expected %d", api, KVM_API_VERSION);
        return VMM_UNUSABLE;
    }
    vm->vm_fd = xioctl_val(vm->kvm_fd, KVM_CREATE_VM, 0);
    if (vm->vm_fd < 0) {
        snprintf(why, why_len, "KVM_CREATE_VM: %s", strerror(errno));
        return VMM_UNUSABLE;
    }
    vm->cap_async_pf = xioctl_val(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ASYNC_PF);
    vm->cap_user_msr = xioctl_val(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_USER_SPACE_MSR);
    if (xioctl_val(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQCHIP) <= 0) {
        snprintf(why, why_len, "KVM has no in-kernel irqchip (KVM_CAP_IRQCHIP)");
        return VMM_UNUSABLE;
    }
    /* Needed on Intel for real-mode emulation only; harmless elsewhere, so errors are
     * ignored. */
    (void)xioctl_val(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul);
    if (xioctl_val(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
        snprintf(why, why_len, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
        return VMM_UNUSABLE;
    }

    vm->low = mmap(NULL, low_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_POPULATE, -1, 0);
    if (vm->low == MAP_FAILED) {
        vm->low = NULL;
        snprintf(why, why_len, "mmap low memory: %s", strerror(errno));
        return -1;
    }
    vm->low_size = low_size;
    int rc = vmm_vm_add_slot(vm, 0, 0, vm->low, low_size);
    if (rc < 0) {
        snprintf(why, why_len, "KVM_SET_USER_MEMORY_REGION (low): %s", strerror(-rc));
        return -1;
    }

    vm->vcpu_fd = xioctl_val(vm->vm_fd, KVM_CREATE_VCPU, 0);
    if (vm->vcpu_fd < 0) {
        snprintf(why, why_len, "KVM_CREATE_VCPU: %s", strerror(errno));
        return VMM_UNUSABLE;
    }
    int sz = xioctl_val(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (sz <= 0) {
        snprintf(why, why_len, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
        return -1;
    }
    vm->run = mmap(NULL, (size_t)sz, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu_fd, 0);
    if (vm->run == MAP_FAILED) {
        vm->run = NULL;
        snprintf(why, why_len, "mmap kvm_run: %s", strerror(errno));
        return -1;
    }
    vm->run_size = (size_t)sz;
    return 0;
}

void vmm_vm_destroy(struct vmm_vm *vm)
{
    if (vm->run != NULL)
        munmap(vm->run, vm->run_size);
    if (vm->vcpu_fd >= 0)
        close(vm->vcpu_fd);
    if (vm->vm_fd >= 0)
        close(vm->vm_fd);
    if (vm->kvm_fd >= 0)
        close(vm->kvm_fd);
    if (vm->low != NULL)
        munmap(vm->low, vm->low_size);
    memset(vm, 0, sizeof(*vm));
    vm->kvm_fd = vm->vm_fd = vm->vcpu_fd = -1;
}

int vmm_vm_add_slot(struct vmm_vm *vm, uint32_t slot, uint64_t gpa, void *host, size_t size)
{
    struct kvm_userspace_memory_region r = {
        .slot = slot,
        .flags = 0,
        .guest_phys_addr = gpa,
        .memory_size = size,
        .userspace_addr = (uint64_t)(uintptr_t)host,
    };
    return xioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -errno : 0;
}

static struct kvm_cpuid_entry2 *find_leaf(struct kvm_cpuid2 *c, uint32_t leaf)
{
    for (uint32_t i = 0; i < c->nent; i++)
        if (c->entries[i].function == leaf)
            return &c->entries[i];
    return NULL;
}

int vmm_vm_setup_cpuid(struct vmm_vm *vm, int hide_apf, struct vmm_cpuid_info *info)
{
    memset(info, 0, sizeof(*info));
    size_t bytes = sizeof(struct kvm_cpuid2) + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *c = calloc(1, bytes);
    if (c == NULL)
        return -ENOMEM;
    c->nent = CPUID_MAX_ENTRIES;
    if (xioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
        int e = errno;
        free(c);
        return -e;
    }
    /* KVM's leaves start at 0x40000000, or at a multiple of 0x100 above it. */
    for (uint32_t base = 0x40000000u; base < 0x40010000u; base += 0x100u) {
        struct kvm_cpuid_entry2 *s = find_leaf(c, base);
        if (s == NULL)
            continue;
        char sig[13];
        memcpy(sig + 0, &s->ebx, 4);
        memcpy(sig + 4, &s->ecx, 4);
        memcpy(sig + 8, &s->edx, 4);
        sig[12] = '\0';
        if (memcmp(sig, "KVMKVMKVM\0\0\0", 12) != 0)
            continue;
        info->base = base;
        memcpy(info->signature, sig, sizeof(sig));
        struct kvm_cpuid_entry2 *f = find_leaf(c, base + 1);
        if (f != NULL) {
            info->offered = f->eax;
            if (hide_apf)
                f->eax &= ~((1u << 4) | (1u << 10) | (1u << 14));
            info->given = f->eax;
        }
        break;
    }
    struct kvm_cpuid_entry2 *l1 = find_leaf(c, 1);
    if (l1 != NULL) {
        l1->ebx &= 0x00ffffffu; /* initial APIC id 0 */
        info->x2apic = (l1->ecx >> 21) & 1u;
    }
    int rc = xioctl(vm->vcpu_fd, KVM_SET_CPUID2, c) < 0 ? -errno : 0;
    free(c);
    return rc;
}

/* Page tables: PML4[0] -> PDPT, PDPT[0..3] -> 4 PDs of 2 MiB pages: identity for 0-4 GiB.
 * The top GiB (local APIC page at 0xfee00000) is uncached. With @p user every entry also
 * has U/S set, so code at CPL 3 may use the whole map. */
static void build_page_tables(uint8_t *mem, int user)
{
    const uint64_t P = 1, RW = user ? 2 | 4 : 2, PWT = 8, PCD = 16, PS = 128;
    uint64_t *pml4 = (uint64_t *)(void *)(mem + GABI_PT_PML4);
    uint64_t *pdpt = (uint64_t *)(void *)(mem + GABI_PT_PDPT);
    uint64_t *pd = (uint64_t *)(void *)(mem + GABI_PT_PD);
    memset(pml4, 0, 4096);
    memset(pdpt, 0, 4096);
    pml4[0] = GABI_PT_PDPT | P | RW;
    for (uint64_t i = 0; i < 4; i++)
        pdpt[i] = (GABI_PT_PD + i * 4096) | P | RW;
    for (uint64_t i = 0; i < 4 * 512; i++) {
        uint64_t pa = i << 21;
        pd[i] = pa | P | RW | PS | (pa >= 0xc0000000ull ? PCD | PWT : 0);
    }
}

static void set_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, int code)
{
    memset(s, 0, sizeof(*s));
    s->base = 0;
    s->limit = 0xffffffff;
    s->selector = sel;
    s->type = type;
    s->present = 1;
    s->dpl = 0;
    s->s = 1;
    s->g = 1;
    s->l = code ? 1 : 0;
    s->db = code ? 0 : 1;
}

/* Page tables, the boot GDT, and in @p out a vCPU in 64-bit mode: CPL 0 (CS 0x08, DS 0x10)
 * or, with @p user, CPL 3 (CS 0x33, DS 0x2b) with user-accessible page tables. No IDT. */
static int long_mode_sregs(struct vmm_vm *vm, int user, struct kvm_sregs *out)
{
    build_page_tables(vm->low, user);
    /* Boot GDT: null, 64-bit code (0x08), data (0x10), TSS (0x18, 16 bytes), user data
     * (0x28, selector 0x2b), user 64-bit code (0x30, selector 0x33): the x86-64 layout
     * SYSRET expects. */
    uint64_t *gdt = (uint64_t *)(void *)(vm->low + GABI_BOOT_GDT);
    gdt[0] = 0;
    gdt[1] = 0x00af9b000000ffffull;
    gdt[2] = 0x00cf93000000ffffull;
    gdt[3] = 0x00008b0000000067ull; /* busy 64-bit TSS at 0, limit 0x67 */
    gdt[4] = 0;
    gdt[5] = 0x00cff3000000ffffull;
    gdt[6] = 0x00affb000000ffffull;

    struct kvm_sregs sr;
    if (xioctl(vm->vcpu_fd, KVM_GET_SREGS, &sr) < 0)
        return -errno;
    set_seg(&sr.cs, user ? 0x33 : 0x08, 11, 1);
    set_seg(&sr.ds, user ? 0x2b : 0x10, 3, 0);
    sr.cs.dpl = sr.ds.dpl = user ? 3 : 0;
    sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
    memset(&sr.tr, 0, sizeof(sr.tr));
    sr.tr.selector = 0x18;
    sr.tr.limit = 0x67;
    sr.tr.type = 11; /* busy 64-bit TSS */
    sr.tr.present = 1;
    memset(&sr.ldt, 0, sizeof(sr.ldt));
    sr.ldt.type = 2;
    sr.ldt.unusable = 1;
    sr.gdt.base = GABI_BOOT_GDT;
    sr.gdt.limit = 7 * 8 - 1;
    sr.idt.base = 0;
    sr.idt.limit = 0;
    sr.cr0 = 0x80050033ull; /* PG AM WP NE ET MP PE */
    sr.cr2 = 0;
    sr.cr3 = GABI_PT_PML4;
    sr.cr4 = 0x20;   /* PAE */
    sr.efer = 0x500; /* LMA LME */
    *out = sr;
    return 0;
}

int vmm_vm_setup_long_mode(struct vmm_vm *vm, uint64_t entry, uint64_t arg)
{
    struct kvm_sregs sr;
    int rc = long_mode_sregs(vm, 0, &sr);
    if (rc < 0)
        return rc;
    if (xioctl(vm->vcpu_fd, KVM_SET_SREGS, &sr) < 0)
        return -errno;

    struct kvm_regs r;
    memset(&r, 0, sizeof(r));
    r.rip = entry;
    r.rsp = GABI_KERNEL_BASE; /* the kernel switches to its own stack at once */
    r.rdi = arg;
    r.rflags = 0x2;
    if (xioctl(vm->vcpu_fd, KVM_SET_REGS, &r) < 0)
        return -errno;
    return 0;
}

int vmm_vm_user_sregs(struct vmm_vm *vm, struct kvm_sregs *out)
{
    return long_mode_sregs(vm, 1, out);
}

int vmm_vm_set_msr(struct vmm_vm *vm, uint32_t index, uint64_t value)
{
    union {
        struct kvm_msrs hdr;
        uint8_t raw[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
    } m;
    memset(&m, 0, sizeof(m));
    m.hdr.nmsrs = 1;
    m.hdr.entries[0].index = index;
    m.hdr.entries[0].data = value;
    int rc = xioctl(vm->vcpu_fd, KVM_SET_MSRS, &m);
    return rc < 0 ? -errno : rc;
}

int vmm_vm_get_msrs(struct vmm_vm *vm, const uint32_t *index, uint64_t *value, int n)
{
    enum { MAX = 8 };
    union {
        struct kvm_msrs hdr;
        uint8_t raw[sizeof(struct kvm_msrs) + MAX * sizeof(struct kvm_msr_entry)];
    } m;
    if (n < 0 || n > MAX)
        return -EINVAL;
    memset(&m, 0, sizeof(m));
    m.hdr.nmsrs = (uint32_t)n;
    for (int i = 0; i < n; i++)
        m.hdr.entries[i].index = index[i];
    int rc = xioctl(vm->vcpu_fd, KVM_GET_MSRS, &m);
    if (rc < 0)
        return -errno;
    for (int i = 0; i < rc && i < n; i++)
        value[i] = m.hdr.entries[i].data;
    return rc;
}

int vmm_vm_lapic_reg(struct vmm_vm *vm, uint32_t offset, uint32_t *value)
{
    struct kvm_lapic_state s;
    if (offset > KVM_APIC_REG_SIZE - 4 || offset % 16 != 0)
        return -EINVAL;
    if (xioctl(vm->vcpu_fd, KVM_GET_LAPIC, &s) < 0)
        return -errno;
    memcpy(value, &s.regs[offset], 4);
    return 0;
}

void *vmm_vm_low_ptr(struct vmm_vm *vm, uint64_t gpa, size_t len)
{
    if (gpa > vm->low_size || len > vm->low_size - gpa)
        return NULL;
    return vm->low + gpa;
}

int vmm_vm_msr_filter_apf(struct vmm_vm *vm, char *why, size_t why_len)
{
    int user = xioctl_val(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_USER_SPACE_MSR);
    int filter = xioctl_val(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_MSR_FILTER);
    if (user <= 0 || filter <= 0) {
        snprintf(why, why_len, "KVM_CAP_X86_USER_SPACE_MSR %d, KVM_CAP_X86_MSR_FILTER %d", user,
                 filter);
        return VMM_UNUSABLE;
    }
    struct kvm_enable_cap cap = {.cap = KVM_CAP_X86_USER_SPACE_MSR,
                                 .args = {KVM_MSR_EXIT_REASON_FILTER}};
    if (xioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0) {
        snprintf(why, why_len, "KVM_ENABLE_CAP(KVM_CAP_X86_USER_SPACE_MSR): %s", strerror(errno));
        return VMM_UNUSABLE;
    }
    /* Deny (bit 0) reads and writes of EN (0x4b564d02) and of INT, ACK (0x4b564d06..07):
     * the guest's accesses exit to user space. Everything else stays KVM's. */
    static uint8_t deny[1] = {0};
    struct kvm_msr_filter fl;
    memset(&fl, 0, sizeof(fl));
    fl.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
    fl.ranges[0] = (struct kvm_msr_filter_range){
        .flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE, .nmsrs = 1,
        .base = 0x4b564d02u, .bitmap = deny};
    fl.ranges[1] = (struct kvm_msr_filter_range){
        .flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE, .nmsrs = 2,
        .base = 0x4b564d06u, .bitmap = deny};
    if (xioctl(vm->vm_fd, KVM_X86_SET_MSR_FILTER, &fl) < 0) {
        snprintf(why, why_len, "KVM_X86_SET_MSR_FILTER: %s", strerror(errno));
        return VMM_UNUSABLE;
    }
    return 0;
}
