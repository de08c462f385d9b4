/* SPDX-License-Identifier: MIT */
/*
 * KVM x86 transport (apf_host_transport_kvm_x86) and frontend (the MSRs and CPUID leaves).
 *
 * Notification plane, byte for byte as Linux KVM (Documentation/virt/kvm/x86/msr.rst):
 * "not present" writes area.flags = 1 and the token travels in CR2 (the embedder injects
 * \#PF); "page ready" writes area.token and raises the vector; one slot, throttled by the
 * ACK MSR. All protocol state lives in the engine, the one source of truth: rdmsr reads the
 * engine's channel (area, flags, vector), whoever changed it (these MSRs, or the VMM through
 * apf_host_vcpu_disable/reset/restore). The frontend keeps only what the engine cannot: the
 * raw value of an EN write that left APF off (KVM reads it back as written). It frees itself
 * with its own copy of the allocator: it may outlive the engine. Written against the public
 * headers only.
 */
#include "apf/host_kvm_x86.h"
#include "apf/host.h"
#include "apf/host_transport.h"

/* ---- transport -------------------------------------------------------------------------- */

static int x86_vector_check(void *tctx, uint32_t vector)
{
    (void)tctx;
    return vector >= APF_X86_FIRST_EXTERNAL_VECTOR && vector <= 0xff ? 0 : APF_EINVAL;
}

static int x86_enable_check(void *tctx, const struct apf_host_chan *c, uint64_t area_gpa,
                            uint32_t flags)
{
    (void)tctx;
    (void)flags;
    uint32_t probe[2];
    return apf_host_chan_read(c, area_gpa, probe, sizeof(probe)) ? APF_EFAULT : 0;
}

/* A \#PF needs paging on (CR0.PG = 1). */
static int x86_np_deliverable(void *tctx, const struct apf_host_chan *c, uint32_t gs)
{
    (void)tctx;
    (void)c;
    return (gs & APF_GS_PAGING) != 0;
}

static int x86_np_post(void *tctx, struct apf_host_chan *c, uint32_t token)
{
    (void)tctx;
    (void)token; /* in CR2 */
    uint32_t reason = APF_REASON_NOT_PRESENT;
    return apf_host_chan_write(c, c->area_gpa + APF_AREA_FLAGS_OFFSET, &reason, sizeof(reason));
}

/* The slot is free once the guest has read and cleared the previous token. */
static uint32_t x86_ready_room(void *tctx, struct apf_host_chan *c, uint32_t gs)
{
    (void)tctx;
    (void)gs;
    uint32_t token;
    if (apf_host_chan_read(c, c->area_gpa + APF_AREA_TOKEN_OFFSET, &token, sizeof(token)))
        return 0;
    return token == APF_TOKEN_INVALID ? 1 : 0;
}

static int x86_ready_post(void *tctx, struct apf_host_chan *c, uint32_t token)
{
    (void)tctx;
    return apf_host_chan_write(c, c->area_gpa + APF_AREA_TOKEN_OFFSET, &token, sizeof(token));
}

static int x86_ready_notify(void *tctx, struct apf_host_chan *c, uint32_t posted)
{
    (void)tctx;
    (void)c;
    (void)posted;
    return 1; /* every "page ready" is an interrupt */
}

const struct apf_host_transport_ops apf_host_transport_kvm_x86 = {
    .name = "kvm-x86",
    .id = APF_TRANSPORT_ID_KVM_X86,
    .caps = APF_HOST_TRANSPORT_NEEDS_ACK,
    .valid_flags = APF_EN_ENABLED | APF_EN_SEND_ALWAYS | APF_EN_DELIVERY_AS_PF_VMEXIT |
                   APF_EN_DELIVERY_AS_INT,
    .window = 1,
    .vector_check = x86_vector_check,
    .enable_check = x86_enable_check,
    .np_deliverable = x86_np_deliverable,
    .np_post = x86_np_post,
    .ready_room = x86_ready_room,
    .ready_post = x86_ready_post,
    .ready_notify = x86_ready_notify,
};

/* ---- frontend: MSRs and CPUID ------------------------------------------------------------ */

struct apf_host_kvm_x86 {
    struct apf_host *host;
    struct apf_allocator alloc; /* the engine's, copied: destroy does not need the engine */
    uint32_t n_vcpus;
    uint32_t features;
    uint32_t no_lapic;
    uint32_t pad;
    /* per vCPU: the last accepted EN value that left APF off (0 after one that turned it
     * on, or a reset): what rdmsr returns while the engine says off */
    uint64_t en_off[];
};

#define FEATURE(fe, bit) (((fe)->features >> (bit)) & 1u)

static size_t fe_size(uint32_t n_vcpus)
{
    return sizeof(struct apf_host_kvm_x86) + sizeof(uint64_t) * n_vcpus;
}

int apf_host_kvm_x86_create(struct apf_host *h, const struct apf_host_kvm_x86_config *cfg,
                            struct apf_host_kvm_x86 **out)
{
    if (h == NULL || out == NULL || apf_host_transport(h, NULL) != &apf_host_transport_kvm_x86)
        return APF_EINVAL;
    uint32_t n = apf_host_vcpu_count(h);
    struct apf_host_kvm_x86 *fe = apf_host_zalloc(h, fe_size(n));
    if (fe == NULL)
        return APF_ENOMEM;
    fe->host = h;
    apf_host_allocator(h, &fe->alloc);
    fe->n_vcpus = n;
    fe->features = cfg && cfg->cpuid_features ? cfg->cpuid_features
                                              : (1u << APF_KVM_FEATURE_ASYNC_PF) |
                                                    (1u << APF_KVM_FEATURE_ASYNC_PF_INT);
    fe->no_lapic = cfg ? cfg->no_lapic_in_kernel : 0;
    *out = fe;
    return 0;
}

void apf_host_kvm_x86_destroy(struct apf_host_kvm_x86 *fe)
{
    if (fe == NULL)
        return;
    struct apf_allocator a = fe->alloc;
    a.free(a.ctx, fe, fe_size(fe->n_vcpus));
}

/* The checks of MSR_KVM_ASYNC_PF_EN that need no engine state (Linux kvm_pv_enable_async_pf). */
static int en_check_bits(const struct apf_host_kvm_x86 *fe, uint64_t value)
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
static int en_turns_on(uint64_t value)
{
    return (value & APF_EN_ENABLED) && (value & APF_EN_DELIVERY_AS_INT);
}

/* MSR_KVM_ASYNC_PF_EN. Everything is validated before anything changes (the 2025 fix). */
static int wr_en(struct apf_host_kvm_x86 *fe, uint32_t vcpu, uint64_t value)
{
    int err = en_check_bits(fe, value);
    if (err)
        return err;
    if (!en_turns_on(value)) {
        /* Off: drop outstanding work, remember the value for rdmsr. */
        apf_host_vcpu_disable(fe->host, vcpu);
        fe->en_off[vcpu] = value;
        return 0;
    }
    err = apf_host_vcpu_enable(fe->host, vcpu, value & APF_EN_ADDR_MASK,
                               (uint32_t)(value & APF_EN_FLAGS_MASK));
    if (err)
        return err;
    fe->en_off[vcpu] = 0; /* on: the engine holds the value */
    return 0;
}

static int is_apf_msr(uint32_t msr)
{
    return msr == APF_KVM_MSR_ASYNC_PF_EN || msr == APF_KVM_MSR_ASYNC_PF_INT ||
           msr == APF_KVM_MSR_ASYNC_PF_ACK;
}

int apf_host_kvm_x86_wrmsr(struct apf_host_kvm_x86 *fe, uint32_t vcpu, uint32_t msr,
                           uint64_t value)
{
    if (!is_apf_msr(msr))
        return APF_HOST_KVM_X86_NOT_MINE;
    if (fe == NULL || vcpu >= fe->n_vcpus)
        return APF_ENODEV;
    switch (msr) {
    case APF_KVM_MSR_ASYNC_PF_EN:
        return wr_en(fe, vcpu, value);
    case APF_KVM_MSR_ASYNC_PF_INT: {
        if (!FEATURE(fe, APF_KVM_FEATURE_ASYNC_PF_INT))
            return APF_EOPNOTSUPP;
        if (value & ~APF_KVM_ASYNC_PF_VEC_MASK)
            return APF_EINVAL;
        return apf_host_vcpu_set_vector(fe->host, vcpu, (uint32_t)value);
    }
    default: /* APF_KVM_MSR_ASYNC_PF_ACK */
        if (!FEATURE(fe, APF_KVM_FEATURE_ASYNC_PF_INT))
            return APF_EOPNOTSUPP;
        if (value & APF_KVM_ASYNC_PF_ACK_BIT)
            apf_host_vcpu_ack(fe->host, vcpu);
        return 0;
    }
}

int apf_host_kvm_x86_rdmsr(struct apf_host_kvm_x86 *fe, uint32_t vcpu, uint32_t msr,
                           uint64_t *value)
{
    if (!is_apf_msr(msr))
        return APF_HOST_KVM_X86_NOT_MINE;
    if (fe == NULL || vcpu >= fe->n_vcpus || value == NULL)
        return APF_ENODEV;
    const struct apf_host_chan *c = apf_host_chan_get(fe->host, vcpu);
    switch (msr) {
    case APF_KVM_MSR_ASYNC_PF_EN:
        if (!FEATURE(fe, APF_KVM_FEATURE_ASYNC_PF))
            return APF_EOPNOTSUPP;
        /* On: exactly the accepted value (address | flags; reserved bits are refused). */
        *value = c->enabled ? c->area_gpa | c->flags : fe->en_off[vcpu];
        return 0;
    case APF_KVM_MSR_ASYNC_PF_INT:
        if (!FEATURE(fe, APF_KVM_FEATURE_ASYNC_PF_INT))
            return APF_EOPNOTSUPP;
        *value = c->vector;
        return 0;
    default:
        if (!FEATURE(fe, APF_KVM_FEATURE_ASYNC_PF_INT))
            return APF_EOPNOTSUPP;
        *value = 0;
        return 0;
    }
}

int apf_host_kvm_x86_cpuid(const struct apf_host_kvm_x86 *fe, uint32_t leaf, uint32_t regs[4])
{
    if (fe == NULL || regs == NULL)
        return 0;
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

int apf_host_kvm_x86_vcpu_reset(struct apf_host_kvm_x86 *fe, uint32_t vcpu)
{
    if (fe == NULL || vcpu >= fe->n_vcpus)
        return APF_ENODEV;
    apf_host_vcpu_reset(fe->host, vcpu);
    fe->en_off[vcpu] = 0;
    return 0;
}

int apf_host_kvm_x86_restore(struct apf_host_kvm_x86 *fe, uint32_t vcpu, uint64_t msr_int,
                             uint64_t msr_en)
{
    if (fe == NULL || vcpu >= fe->n_vcpus)
        return APF_ENODEV;
    /* Dry run of both writes first, so that a refused restore changes nothing. */
    if (msr_int != 0) {
        if (!FEATURE(fe, APF_KVM_FEATURE_ASYNC_PF_INT))
            return APF_EOPNOTSUPP;
        if ((msr_int & ~APF_KVM_ASYNC_PF_VEC_MASK) || msr_int < APF_X86_FIRST_EXTERNAL_VECTOR)
            return APF_EINVAL;
    }
    /* Both 0 is the state of a vCPU that never wrote them: accepted whatever CPUID offers
     * (a VMM restores every vCPU's MSRs unconditionally). */
    int err = msr_en == 0 ? 0 : en_check_bits(fe, msr_en);
    if (err)
        return err;
    if (en_turns_on(msr_en)) {
        err = apf_host_vcpu_enable_check(fe->host, vcpu, msr_en & APF_EN_ADDR_MASK,
                                         (uint32_t)(msr_en & APF_EN_FLAGS_MASK),
                                         (uint32_t)msr_int);
        if (err)
            return err;
    }
    apf_host_kvm_x86_vcpu_reset(fe, vcpu);
    /* Checked above: these cannot be refused now. */
    if (msr_int != 0)
        apf_host_kvm_x86_wrmsr(fe, vcpu, APF_KVM_MSR_ASYNC_PF_INT, msr_int);
    return msr_en == 0 ? 0 : wr_en(fe, vcpu, msr_en);
}
