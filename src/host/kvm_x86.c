/* SPDX-License-Identifier: MIT */
/*
 * KVM x86 frontend: decodes the APF MSRs and CPUID leaves into engine calls. It keeps only
 * the raw MSR values (for rdmsr); all protocol state lives in the engine. The rules and
 * where libapf is stricter than KVM are listed in apf/host_kvm_x86.h.
 */
#include "apf/host_kvm_x86.h"
#include "host/engine.h"

struct apf__kvm_x86_regs {
    uint64_t en;  /* MSR_KVM_ASYNC_PF_EN as last accepted */
    uint64_t vec; /* MSR_KVM_ASYNC_PF_INT as last accepted */
};

struct apf_kvm_x86 {
    struct apf_host *host;
    uint32_t features;
    uint32_t no_lapic;
    struct apf__kvm_x86_regs regs[]; /* one per vCPU, in the same allocation */
};

#define FEATURE(fe, bit) (((fe)->features >> (bit)) & 1u)

int apf_kvm_x86_create(struct apf_host *h, const struct apf_kvm_x86_config *cfg,
                       struct apf_kvm_x86 **out)
{
    if (h == NULL || out == NULL || h->cfg.abi != APF_HOST_ABI_KVM_X86)
        return APF_EINVAL;
    struct apf_kvm_x86 *fe = apf__zalloc(h, sizeof(*fe) + sizeof(fe->regs[0]) * h->n_vcpus);
    if (fe == NULL)
        return APF_ENOMEM;
    fe->host = h;
    fe->features = cfg && cfg->cpuid_features ? cfg->cpuid_features
                                              : (1u << APF_KVM_FEATURE_ASYNC_PF) |
                                                    (1u << APF_KVM_FEATURE_ASYNC_PF_INT);
    fe->no_lapic = cfg ? cfg->no_lapic_in_kernel : 0;
    *out = fe;
    return 0;
}

void apf_kvm_x86_destroy(struct apf_kvm_x86 *fe)
{
    if (fe == NULL)
        return;
    const struct apf_host *h = fe->host;
    apf__free(h, fe, sizeof(*fe) + sizeof(fe->regs[0]) * h->n_vcpus);
}

/* The checks of MSR_KVM_ASYNC_PF_EN that need no engine state (Linux kvm_pv_enable_async_pf). */
static int en_check_bits(const struct apf_kvm_x86 *fe, uint64_t value)
{
    if (!FEATURE(fe, APF_KVM_FEATURE_ASYNC_PF))
        return APF_EOPNOTSUPP;
    if (value & APF_EN_X86_RESERVED)
        return APF_EINVAL;
    if ((value & APF_EN_DELIVERY_AS_PF_VMEXIT) && !FEATURE(fe, APF_KVM_FEATURE_ASYNC_PF_VMEXIT))
        return APF_EINVAL;
    if ((value & APF_EN_DELIVERY_AS_INT) && !FEATURE(fe, APF_KVM_FEATURE_ASYNC_PF_INT))
        return APF_EINVAL;
    if (fe->no_lapic && value != 0)
        return APF_EINVAL;
    return 0;
}

/* APF is on only with ENABLED and DELIVERY_AS_INT both set; bit 0 alone means off. */
static bool en_turns_on(uint64_t value)
{
    return (value & APF_EN_ENABLED) && (value & APF_EN_DELIVERY_AS_INT);
}

/* MSR_KVM_ASYNC_PF_EN. Everything is validated before anything changes (the 2025 fix). */
static int wr_en(struct apf_kvm_x86 *fe, uint32_t vcpu, uint64_t value)
{
    int err = en_check_bits(fe, value);
    if (err)
        return err;
    if (!en_turns_on(value)) {
        /* Off: drop outstanding work, remember the value for rdmsr. */
        apf_host_vcpu_disable(fe->host, vcpu);
        fe->regs[vcpu].en = value;
        return 0;
    }
    err = apf_host_vcpu_enable(fe->host, vcpu, value & APF_EN_ADDR_MASK,
                               (uint32_t)(value & APF_EN_FLAGS_MASK));
    if (err)
        return err;
    fe->regs[vcpu].en = value;
    return 0;
}

int apf_kvm_x86_wrmsr(struct apf_kvm_x86 *fe, uint32_t vcpu, uint32_t msr, uint64_t value)
{
    if (msr != APF_KVM_MSR_ASYNC_PF_EN && msr != APF_KVM_MSR_ASYNC_PF_INT &&
        msr != APF_KVM_MSR_ASYNC_PF_ACK)
        return APF_KVM_X86_NOT_MINE;
    if (fe == NULL || vcpu >= fe->host->n_vcpus)
        return APF_ENODEV;
    switch (msr) {
    case APF_KVM_MSR_ASYNC_PF_EN:
        return wr_en(fe, vcpu, value);
    case APF_KVM_MSR_ASYNC_PF_INT: {
        if (!FEATURE(fe, APF_KVM_FEATURE_ASYNC_PF_INT))
            return APF_EOPNOTSUPP;
        if (value & ~APF_KVM_ASYNC_PF_VEC_MASK)
            return APF_EINVAL;
        int err = apf_host_vcpu_set_vector(fe->host, vcpu, (uint32_t)value);
        if (err)
            return err;
        fe->regs[vcpu].vec = value;
        return 0;
    }
    default: /* APF_KVM_MSR_ASYNC_PF_ACK */
        if (!FEATURE(fe, APF_KVM_FEATURE_ASYNC_PF_INT))
            return APF_EOPNOTSUPP;
        if (value & APF_KVM_ASYNC_PF_ACK_BIT)
            apf_host_vcpu_ack(fe->host, vcpu);
        return 0;
    }
}

int apf_kvm_x86_rdmsr(struct apf_kvm_x86 *fe, uint32_t vcpu, uint32_t msr, uint64_t *value)
{
    if (msr != APF_KVM_MSR_ASYNC_PF_EN && msr != APF_KVM_MSR_ASYNC_PF_INT &&
        msr != APF_KVM_MSR_ASYNC_PF_ACK)
        return APF_KVM_X86_NOT_MINE;
    if (fe == NULL || vcpu >= fe->host->n_vcpus || value == NULL)
        return APF_ENODEV;
    switch (msr) {
    case APF_KVM_MSR_ASYNC_PF_EN:
        if (!FEATURE(fe, APF_KVM_FEATURE_ASYNC_PF))
            return APF_EOPNOTSUPP;
        *value = fe->regs[vcpu].en;
        return 0;
    case APF_KVM_MSR_ASYNC_PF_INT:
        if (!FEATURE(fe, APF_KVM_FEATURE_ASYNC_PF_INT))
            return APF_EOPNOTSUPP;
        *value = fe->regs[vcpu].vec;
        return 0;
    default:
        if (!FEATURE(fe, APF_KVM_FEATURE_ASYNC_PF_INT))
            return APF_EOPNOTSUPP;
        *value = 0;
        return 0;
    }
}

int apf_kvm_x86_cpuid(const struct apf_kvm_x86 *fe, uint32_t leaf, uint32_t regs[4])
{
    if (leaf == APF_KVM_CPUID_SIGNATURE) {
        regs[0] = APF_KVM_CPUID_FEATURES;
        regs[1] = APF_KVM_SIGNATURE_EBX;
        regs[2] = APF_KVM_SIGNATURE_ECX;
        regs[3] = APF_KVM_SIGNATURE_EDX;
        return 1;
    }
    if (leaf == APF_KVM_CPUID_FEATURES) {
        regs[0] = fe->features;
        regs[1] = regs[2] = regs[3] = 0;
        return 1;
    }
    return 0;
}

int apf_kvm_x86_vcpu_reset(struct apf_kvm_x86 *fe, uint32_t vcpu)
{
    if (fe == NULL || vcpu >= fe->host->n_vcpus)
        return APF_ENODEV;
    apf_host_vcpu_reset(fe->host, vcpu);
    fe->regs[vcpu].en = 0;
    fe->regs[vcpu].vec = 0;
    return 0;
}

int apf_kvm_x86_restore(struct apf_kvm_x86 *fe, uint32_t vcpu, uint64_t msr_int, uint64_t msr_en)
{
    if (fe == NULL || vcpu >= fe->host->n_vcpus)
        return APF_ENODEV;
    /* Dry run of both writes first, so that a refused restore changes nothing. */
    if (msr_int != 0) {
        if (!FEATURE(fe, APF_KVM_FEATURE_ASYNC_PF_INT))
            return APF_EOPNOTSUPP;
        if ((msr_int & ~APF_KVM_ASYNC_PF_VEC_MASK) || msr_int < APF_X86_FIRST_EXTERNAL_VECTOR)
            return APF_EINVAL;
    }
    int err = en_check_bits(fe, msr_en);
    if (err)
        return err;
    if (en_turns_on(msr_en)) {
        err = apf__vcpu_enable_check(&fe->host->vcpus[vcpu], msr_en & APF_EN_ADDR_MASK,
                                     (uint32_t)(msr_en & APF_EN_FLAGS_MASK), (uint32_t)msr_int);
        if (err)
            return err;
    }
    apf_kvm_x86_vcpu_reset(fe, vcpu);
    if (msr_int != 0) {
        err = apf_kvm_x86_wrmsr(fe, vcpu, APF_KVM_MSR_ASYNC_PF_INT, msr_int);
        APF__BUG_ON(err != 0);
    }
    err = wr_en(fe, vcpu, msr_en);
    APF__BUG_ON(err != 0);
    return 0;
}
