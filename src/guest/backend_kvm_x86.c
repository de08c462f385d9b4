/* SPDX-License-Identifier: MIT */
/*
 * kvm_x86 backend: Linux KVM's paravirtual APF interface (reference/kvm-x86-apf.md,
 * "Discovery" and "MSRs"), through the x86 arch hook.
 */
#include "apf/guest_backend.h"

#define KVM_CPUID_SCAN_END 0x40010000u
#define KVM_CPUID_SCAN_STEP 0x100u

void apf_guest_kvm_x86_init(struct apf_guest_kvm_x86 *b, const struct apf_x86_arch_ops *arch,
                            void *arch_ctx)
{
    b->arch = arch;
    b->arch_ctx = arch_ctx;
    b->cpuid_base = 0;
}

static uint32_t kx_caps(void *ctx)
{
    (void)ctx;
    return APF_BACKEND_CAP_SEND_ALWAYS;
}

/* The KVM leaves normally start at 0x40000000; with another hypervisor's leaves in front
 * (e.g. Hyper-V emulation) they move up in steps of 0x100: look for the signature. */
static int kx_probe(void *ctx, struct apf_guest_backend_info *info)
{
    struct apf_guest_kvm_x86 *b = ctx;
    uint32_t r[4];
    b->cpuid_base = 0;
    for (uint32_t base = APF_KVM_CPUID_SIGNATURE; base < KVM_CPUID_SCAN_END;
         base += KVM_CPUID_SCAN_STEP) {
        b->arch->cpuid(b->arch_ctx, 0, base, 0, r);
        if (r[1] == APF_KVM_SIGNATURE_EBX && r[2] == APF_KVM_SIGNATURE_ECX &&
            r[3] == APF_KVM_SIGNATURE_EDX) {
            b->cpuid_base = base;
            break;
        }
    }
    if (b->cpuid_base == 0)
        return APF_ENODEV;
    b->arch->cpuid(b->arch_ctx, 0, b->cpuid_base + 1, 0, r);
    uint32_t need = (1u << APF_KVM_FEATURE_ASYNC_PF) | (1u << APF_KVM_FEATURE_ASYNC_PF_INT);
    if ((r[0] & need) != need)
        return APF_EOPNOTSUPP; /* a modern guest uses APF only with interrupt delivery */
    info->version = APF_PROTO_VERSION;
    info->slots = 64; /* KVM's fixed per-vCPU limit */
    info->irq = 0;    /* the guest chooses the vector */
    info->sdei_event = 0;
    return 0;
}

/* INT before EN: otherwise an event could arrive on vector 0 (msr.rst). */
static int kx_enable(void *ctx, uint32_t cpu, uint64_t area_pa, uint32_t vector, uint32_t flags)
{
    struct apf_guest_kvm_x86 *b = ctx;
    if (vector < APF_X86_FIRST_EXTERNAL_VECTOR || vector > 0xff)
        return APF_EINVAL;
    if (area_pa & (APF_AREA_ALIGN - 1))
        return APF_EINVAL;
    if (flags & ~APF_EN_SEND_ALWAYS)
        return APF_EINVAL;
    int err = b->arch->wrmsr(b->arch_ctx, cpu, APF_KVM_MSR_ASYNC_PF_INT, vector);
    if (err)
        return err;
    uint64_t en = area_pa | APF_EN_ENABLED | APF_EN_DELIVERY_AS_INT | (flags & APF_EN_SEND_ALWAYS);
    return b->arch->wrmsr(b->arch_ctx, cpu, APF_KVM_MSR_ASYNC_PF_EN, en);
}

static int kx_disable(void *ctx, uint32_t cpu)
{
    struct apf_guest_kvm_x86 *b = ctx;
    return b->arch->wrmsr(b->arch_ctx, cpu, APF_KVM_MSR_ASYNC_PF_EN, 0);
}

static int kx_ack(void *ctx, uint32_t cpu)
{
    struct apf_guest_kvm_x86 *b = ctx;
    return b->arch->wrmsr(b->arch_ctx, cpu, APF_KVM_MSR_ASYNC_PF_ACK, APF_KVM_ASYNC_PF_ACK_BIT);
}

const struct apf_guest_backend_ops apf_guest_backend_kvm_x86 = {
    .name = "kvm-x86",
    .capabilities = kx_caps,
    .probe = kx_probe,
    .enable = kx_enable,
    .disable = kx_disable,
    .ack = kx_ack,
};
