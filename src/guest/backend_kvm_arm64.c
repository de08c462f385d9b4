/* SPDX-License-Identifier: MIT */
/*
 * kvm_arm64 backend: the SMCCC vendor-hyp APF call of the arm64 design
 * (reference/arm64-apf.md, "Control path"), through the arm64 arch hook. Every value the
 * host returns is range-checked before use.
 */
#include "apf/guest_backend.h"

void apf_guest_kvm_arm64_init(struct apf_guest_kvm_arm64 *b, const struct apf_arm64_arch_ops *arch,
                              void *arch_ctx)
{
    b->arch = arch;
    b->arch_ctx = arch_ctx;
}

static uint64_t call(struct apf_guest_kvm_arm64 *b, uint32_t cpu, uint32_t func, uint64_t a2,
                     uint64_t a3)
{
    uint64_t in[4] = {APF_ARM64_FUNC_ID, func, a2, a3};
    uint64_t out[4] = {0, 0, 0, 0};
    b->arch->smccc(b->arch_ctx, cpu, in, out);
    return out[0];
}

/* An SMCCC error code in a result register (results are 32-bit: -1..-3 sign-extended). */
static int smccc_err(uint64_t r)
{
    switch ((int64_t)r) {
    case APF_SMCCC_SUCCESS:
        return 0;
    case APF_SMCCC_NOT_SUPPORTED:
        return APF_EOPNOTSUPP;
    case APF_SMCCC_NOT_REQUIRED:
        return APF_EOPNOTSUPP;
    case APF_SMCCC_INVALID_PARAMETER:
        return APF_EINVAL;
    default:
        return APF_EPROTO;
    }
}

static uint32_t ka_caps(void *ctx)
{
    (void)ctx;
    return APF_BACKEND_CAP_TOKEN_IN_AREA | APF_BACKEND_CAP_HOST_VECTOR |
           APF_BACKEND_CAP_SEND_ALWAYS;
}

static int ka_probe(void *ctx, struct apf_guest_backend_info *info)
{
    struct apf_guest_kvm_arm64 *b = ctx;
    uint64_t in[4] = {APF_ARM64_FEATURES_FUNC_ID, 0, 0, 0};
    uint64_t out[4] = {0, 0, 0, 0};
    b->arch->smccc(b->arch_ctx, 0, in, out);
    if ((int64_t)out[0] < 0)
        return APF_ENODEV; /* no KVM vendor-hyp service */
    if (!(out[0] & (1ull << APF_ARM64_FEATURE_BIT)))
        return APF_EOPNOTSUPP;

    uint64_t version = call(b, 0, APF_ARM64_FUNC_VERSION, 0, 0);
    uint64_t slots = call(b, 0, APF_ARM64_FUNC_SLOTS, 0, 0);
    uint64_t sdei = call(b, 0, APF_ARM64_FUNC_SDEI, 0, 0);
    uint64_t irq = call(b, 0, APF_ARM64_FUNC_IRQ, 0, 0);
    if ((int64_t)version < 0 || (int64_t)irq == APF_SMCCC_NOT_SUPPORTED)
        return APF_EOPNOTSUPP;
    if (version > 0xffffff || (version >> 16) != APF_PROTO_VERSION_MAJOR)
        return APF_EPROTO;
    if (slots == 0 || slots > 4096)
        return APF_EPROTO;
    if ((int64_t)sdei < 0 || sdei > 0xffffffffu || sdei == 0)
        return APF_EPROTO;
    if (irq < APF_ARM64_PPI_MIN || irq > APF_ARM64_PPI_MAX)
        return APF_EPROTO;
    info->version = (uint32_t)version;
    info->slots = (uint32_t)slots;
    info->sdei_event = (uint32_t)sdei;
    info->irq = (uint32_t)irq;
    return 0;
}

static int ka_enable(void *ctx, uint32_t cpu, uint64_t area_pa, uint32_t vector, uint32_t flags)
{
    struct apf_guest_kvm_arm64 *b = ctx;
    (void)vector; /* the host chose the PPI */
    if (area_pa & (APF_AREA_ALIGN - 1))
        return APF_EINVAL;
    if (flags & ~APF_EN_SEND_ALWAYS)
        return APF_EINVAL;
    uint64_t control = area_pa | APF_EN_ENABLED | (flags & APF_EN_SEND_ALWAYS);
    return smccc_err(call(b, cpu, APF_ARM64_FUNC_ENABLE, control & 0xffffffffu, control >> 32));
}

static int ka_disable(void *ctx, uint32_t cpu)
{
    struct apf_guest_kvm_arm64 *b = ctx;
    return smccc_err(call(b, cpu, APF_ARM64_FUNC_ENABLE, 0, 0));
}

static int ka_ack(void *ctx, uint32_t cpu)
{
    struct apf_guest_kvm_arm64 *b = ctx;
    return smccc_err(call(b, cpu, APF_ARM64_FUNC_IRQ_ACK, 0, 0));
}

const struct apf_guest_backend_ops apf_guest_backend_kvm_arm64 = {
    .name = "kvm-arm64",
    .capabilities = ka_caps,
    .probe = ka_probe,
    .enable = ka_enable,
    .disable = ka_disable,
    .ack = ka_ack,
};
