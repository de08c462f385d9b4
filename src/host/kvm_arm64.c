/* SPDX-License-Identifier: MIT */
/*
 * arm64 frontend: the SMCCC vendor-hyp APF call of the seed series
 * (reference/arm64-apf.md, "Control path"). Decodes the call into engine calls and keeps
 * the per-vCPU values the VMM commands GET/SET (SDEI event, control value); the PPI is the
 * engine's vector.
 */
#include "apf/host_kvm_arm64.h"
#include "host/engine.h"

struct apf__kvm_arm64_regs {
    uint64_t control; /* ENABLE value as last accepted */
    uint32_t sdei_event;
    uint32_t pad;
};

struct apf_kvm_arm64 {
    struct apf_host *host;
    struct apf__kvm_arm64_regs regs[]; /* one per vCPU, in the same allocation */
};

int apf_kvm_arm64_create(struct apf_host *h, const struct apf_kvm_arm64_config *cfg,
                         struct apf_kvm_arm64 **out)
{
    if (h == NULL || out == NULL || h->cfg.abi != APF_HOST_ABI_ARM64)
        return APF_EINVAL;
    struct apf_kvm_arm64 *fe = apf__zalloc(h, sizeof(*fe) + sizeof(fe->regs[0]) * h->n_vcpus);
    if (fe == NULL)
        return APF_ENOMEM;
    uint32_t sdei = cfg && cfg->sdei_event ? cfg->sdei_event : APF_ARM64_SDEI_EVENT_DEFAULT;
    for (uint32_t i = 0; i < h->n_vcpus; i++)
        fe->regs[i].sdei_event = sdei;
    fe->host = h;
    *out = fe;
    return 0;
}

void apf_kvm_arm64_destroy(struct apf_kvm_arm64 *fe)
{
    if (fe == NULL)
        return;
    const struct apf_host *h = fe->host;
    apf__free(h, fe, sizeof(*fe) + sizeof(fe->regs[0]) * h->n_vcpus);
}

uint64_t apf_kvm_arm64_features(void)
{
    return 1ull << APF_ARM64_FEATURE_BIT;
}

static uint64_t smccc(int64_t code)
{
    return (uint64_t)code; /* sign-extended into the 64-bit register */
}

/* ENABLE: validated (flags, alignment, vector set, area is guest memory) before anything
 * changes; bit 0 clear turns APF off. */
static int64_t call_enable(struct apf_kvm_arm64 *fe, uint32_t vcpu, uint64_t control)
{
    uint32_t flags = (uint32_t)(control & APF_EN_FLAGS_MASK);
    if (flags & ~APF_ARM64_EN_VALID)
        return APF_SMCCC_INVALID_PARAMETER;
    if (!(flags & APF_EN_ENABLED)) {
        apf_host_vcpu_disable(fe->host, vcpu);
        fe->regs[vcpu].control = control;
        return APF_SMCCC_SUCCESS;
    }
    if (apf_host_vcpu_enable(fe->host, vcpu, control & APF_EN_ADDR_MASK, flags) != 0)
        return APF_SMCCC_INVALID_PARAMETER;
    fe->regs[vcpu].control = control;
    return APF_SMCCC_SUCCESS;
}

int apf_kvm_arm64_hvc(struct apf_kvm_arm64 *fe, uint32_t vcpu, const uint64_t in[4],
                      uint64_t out[4])
{
    if ((uint32_t)in[0] != APF_ARM64_FUNC_ID)
        return APF_KVM_ARM64_NOT_MINE;
    if (fe == NULL || vcpu >= fe->host->n_vcpus)
        return APF_ENODEV;
    struct apf_host *h = fe->host;
    uint64_t res;
    /* SMC32: the argument registers are 32 bits wide; upper halves are ignored (SMCCC). */
    switch ((uint32_t)in[1]) {
    case APF_ARM64_FUNC_VERSION:
        res = APF_PROTO_VERSION;
        break;
    case APF_ARM64_FUNC_SLOTS:
        res = h->limit;
        break;
    case APF_ARM64_FUNC_SDEI:
        res = fe->regs[vcpu].sdei_event;
        break;
    case APF_ARM64_FUNC_IRQ:
        res = h->vcpus[vcpu].vector ? h->vcpus[vcpu].vector : smccc(APF_SMCCC_NOT_SUPPORTED);
        break;
    case APF_ARM64_FUNC_ENABLE:
        res = smccc(call_enable(fe, vcpu, (in[2] & 0xffffffffu) | ((in[3] & 0xffffffffu) << 32)));
        break;
    case APF_ARM64_FUNC_IRQ_ACK:
        apf_host_vcpu_ack(h, vcpu);
        res = APF_SMCCC_SUCCESS;
        break;
    default:
        res = smccc(APF_SMCCC_NOT_SUPPORTED);
        break;
    }
    out[0] = res;
    out[1] = out[2] = out[3] = 0;
    return 0;
}

int apf_kvm_arm64_set_irq(struct apf_kvm_arm64 *fe, uint32_t vcpu, uint32_t ppi)
{
    if (fe == NULL || vcpu >= fe->host->n_vcpus)
        return APF_ENODEV;
    return apf_host_vcpu_set_vector(fe->host, vcpu, ppi);
}

int apf_kvm_arm64_get_state(struct apf_kvm_arm64 *fe, uint32_t vcpu, struct apf_kvm_arm64_state *st)
{
    if (fe == NULL || vcpu >= fe->host->n_vcpus)
        return APF_ENODEV;
    if (st == NULL)
        return APF_EINVAL;
    st->version = APF_PROTO_VERSION;
    st->sdei_event = fe->regs[vcpu].sdei_event;
    st->irq = fe->host->vcpus[vcpu].vector;
    st->reserved = 0;
    st->control = fe->regs[vcpu].control;
    return 0;
}

int apf_kvm_arm64_set_state(struct apf_kvm_arm64 *fe, uint32_t vcpu,
                            const struct apf_kvm_arm64_state *st)
{
    if (fe == NULL || vcpu >= fe->host->n_vcpus)
        return APF_ENODEV;
    if (st == NULL || st->version != APF_PROTO_VERSION || st->reserved != 0)
        return APF_EINVAL;
    uint32_t flags = (uint32_t)(st->control & APF_EN_FLAGS_MASK);
    if (flags & ~APF_ARM64_EN_VALID)
        return APF_EINVAL;
    /* Through the engine's restore: validated as a whole, then reset + wake-all. */
    struct apf_host_vcpu_state hs;
    int err = apf_host_vcpu_save(fe->host, vcpu, &hs);
    if (err)
        return err;
    hs.vector = st->irq;
    hs.enabled = (flags & APF_EN_ENABLED) ? 1 : 0;
    hs.area_gpa = hs.enabled ? st->control & APF_EN_ADDR_MASK : 0;
    hs.flags = hs.enabled ? flags : 0;
    err = apf_host_vcpu_restore(fe->host, vcpu, &hs);
    if (err)
        return err;
    fe->regs[vcpu].sdei_event = st->sdei_event;
    fe->regs[vcpu].control = st->control;
    return 0;
}
