/* SPDX-License-Identifier: MIT */
/*
 * kvm_x86 backend: Linux KVM's paravirtual APF interface (reference/kvm-x86-apf.md,
 * "Discovery" and "MSRs"), through the x86 arch hook. The channel is the 64-byte area:
 * "not present" = reason in `flags`, token in CR2; "page ready" = token in `token`, cleared
 * by the guest, then `wrmsr` ASYNC_PF_ACK 1. Byte for byte what Linux KVM expects.
 */
#include "guest/area.h"

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
    info->features = 0; /* the one-slot area only */
    return 0;
}

static size_t kx_chan_size(void *ctx, size_t *align)
{
    (void)ctx;
    *align = APF_AREA_ALIGN;
    return APF_AREA_SIZE;
}

/* The kernel chooses the vector: an external interrupt vector (KVM would accept vectors
 * below 32 and send on an exception vector). */
static int kx_vector_check(void *ctx, uint32_t vector)
{
    (void)ctx;
    if (vector < APF_X86_FIRST_EXTERNAL_VECTOR || vector > 0xff)
        return APF_EINVAL;
    return 0;
}

/* INT before EN: otherwise an event could arrive on vector 0 (msr.rst). */
static int kx_enable(void *ctx, uint32_t cpu, void *chan, uint64_t chan_pa, uint32_t vector,
                     uint32_t flags)
{
    struct apf_guest_kvm_x86 *b = ctx;
    (void)chan;
    if (kx_vector_check(ctx, vector) != 0)
        return APF_EINVAL;
    if (chan_pa & (APF_AREA_ALIGN - 1))
        return APF_EINVAL;
    if (flags & ~APF_EN_SEND_ALWAYS)
        return APF_EINVAL;
    int err = b->arch->wrmsr(b->arch_ctx, cpu, APF_KVM_MSR_ASYNC_PF_INT, vector);
    if (err)
        return err;
    uint64_t en = chan_pa | APF_EN_ENABLED | APF_EN_DELIVERY_AS_INT | (flags & APF_EN_SEND_ALWAYS);
    return b->arch->wrmsr(b->arch_ctx, cpu, APF_KVM_MSR_ASYNC_PF_EN, en);
}

static int kx_disable(void *ctx, uint32_t cpu)
{
    struct apf_guest_kvm_x86 *b = ctx;
    return b->arch->wrmsr(b->arch_ctx, cpu, APF_KVM_MSR_ASYNC_PF_EN, 0);
}

/* "Not present": the reason is in the area, the token is CR2. Only `flags` is reset: the
 * token field belongs to "page ready". */
static int kx_take_not_present(void *ctx, uint32_t cpu, void *chan, uint32_t token_hint,
                               struct apf_guest_chan_event *ev)
{
    (void)ctx, (void)cpu;
    struct apf__area *a = apf__area_of(chan);
    uint32_t reason = apf_load_relaxed(&a->flags);
    ev->token = 0;
    ev->value = 0;
    if (reason == APF_REASON_NONE)
        return APF_GUEST_NP_NONE;
    apf_store_relaxed(&a->flags, 0); /* so that a real fault can follow */
    if (reason != APF_REASON_NOT_PRESENT) {
        ev->value = reason;
        return APF_GUEST_NP_BAD;
    }
    ev->token = token_hint;
    return APF_GUEST_NP_EVENT;
}

/* "Page ready": the token in the area; 0 = the slot is empty (a spurious interrupt). */
static int kx_ready_peek(void *ctx, uint32_t cpu, void *chan, struct apf_guest_chan_event *ev)
{
    (void)ctx, (void)cpu;
    ev->token = apf_load_relaxed(&apf__area_of(chan)->token);
    ev->value = 0;
    return ev->token == APF_TOKEN_INVALID ? APF_GUEST_READY_EMPTY : APF_GUEST_READY_TOKEN;
}

/* Clear the token: the slot is free again (release: our reads of it come first). One
 * entry per ACK: the runtime finishes (ACKs) before it looks again. */
static int kx_ready_release(void *ctx, uint32_t cpu, void *chan)
{
    (void)ctx, (void)cpu;
    apf_store_release(&apf__area_of(chan)->token, 0);
    return 0;
}

static int kx_ready_finish(void *ctx, uint32_t cpu, void *chan)
{
    struct apf_guest_kvm_x86 *b = ctx;
    (void)chan;
    int err = b->arch->wrmsr(b->arch_ctx, cpu, APF_KVM_MSR_ASYNC_PF_ACK, APF_KVM_ASYNC_PF_ACK_BIT);
    return err < 0 ? err : 0;
}

static struct apf_shared_area *kx_area(void *ctx, void *chan)
{
    (void)ctx;
    return (struct apf_shared_area *)chan;
}

const struct apf_guest_backend_ops apf_guest_backend_kvm_x86 = {
    .name = "kvm-x86",
    .capabilities = kx_caps,
    .probe = kx_probe,
    .chan_size = kx_chan_size,
    .vector_check = kx_vector_check,
    .enable = kx_enable,
    .disable = kx_disable,
    .take_not_present = kx_take_not_present,
    .ready_peek = kx_ready_peek,
    .ready_release = kx_ready_release,
    .ready_finish = kx_ready_finish,
    .area = kx_area,
    .ring = 0,
};
