/* SPDX-License-Identifier: MIT */
/*
 * arm64 transport (apf_host_transport_kvm_arm64) and frontend (the SMCCC vendor-hyp APF
 * call; reference/arm64-apf.md "Control path", function number in apf/proto.h).
 *
 * Notification plane: "not present" writes reason and token into the area, only when the
 * guest has consumed the previous event (the embedder raises the SDEI event); "page ready"
 * either the same way in the area, one at a time, throttled by IRQ_ACK (protocol 1.0), or,
 * when the guest registered a ring and enabled with APF_ARM64_EN_RING (protocol 1.1), as
 * entries of the ready ring with notification hold-off and no ACK call at all.
 * One source of truth per vCPU: the engine's channel (area, flags, vector) and the ring
 * registration in the transport's block of it; get_state reads them, whoever changed them.
 * The frontend keeps only the SDEI event number and the raw value of an ENABLE call that
 * left APF off, and frees itself with its own copy of the allocator (it may outlive the
 * engine). Written against the public headers only.
 */
#include "apf/host_kvm_arm64.h"
#include "apf/host.h"
#include "apf/host_transport.h"

/* Per-vCPU transport block (apf_host_chan::priv). */
struct arm64_chan {
    uint64_t reg_gpa;  /* ring registered by FUNC_RING (0 = none) */
    uint32_t reg_size; /* its entries */
    uint32_t ring_on;  /* APF is on in ring mode */
    struct apf_host_ring ring;
};

static struct arm64_chan *arm64_of(const struct apf_host_chan *c)
{
    return c->priv;
}

/* ---- transport -------------------------------------------------------------------------- */

static int arm64_vector_check(void *tctx, uint32_t vector)
{
    (void)tctx;
    return vector >= APF_ARM64_PPI_MIN && vector <= APF_ARM64_PPI_MAX ? 0 : APF_EINVAL;
}

static int arm64_enable_check(void *tctx, const struct apf_host_chan *c, uint64_t area_gpa,
                              uint32_t flags)
{
    (void)tctx;
    if ((flags & APF_ARM64_EN_RING) && arm64_of(c)->reg_gpa == 0)
        return APF_EINVAL; /* ring mode without a registered ring */
    uint32_t probe[2];
    return apf_host_chan_read(c, area_gpa, probe, sizeof(probe)) ? APF_EFAULT : 0;
}

static void arm64_enabled(void *tctx, struct apf_host_chan *c)
{
    (void)tctx;
    struct arm64_chan *a = arm64_of(c);
    a->ring_on = 0;
    if (!(c->flags & APF_ARM64_EN_RING))
        return;
    if (apf_host_ring_start(&a->ring, c, a->reg_gpa, a->reg_size) != 0) {
        /* Checked at registration; the memory went away since: no "page ready" can be
         * delivered (room 0) until the guest enables again. */
        apf_host_chan_bad_value(c);
        a->ring.gpa = 0;
    }
    a->ring_on = 1;
    c->window = a->reg_size;
    c->needs_ack = 0; /* the consumer index is the ACK */
}

static void arm64_reset(void *tctx, struct apf_host_chan *c)
{
    (void)tctx;
    struct arm64_chan *a = arm64_of(c);
    a->ring_on = 0;
    a->ring.gpa = 0; /* the registration stays: the guest's next ENABLE may use it */
}

static int arm64_np_deliverable(void *tctx, const struct apf_host_chan *c, uint32_t gs)
{
    (void)tctx;
    (void)c;
    (void)gs;
    return 1; /* no paging condition: the event is not an exception of the MMU */
}

/* "Only when the previous event was consumed": reason and token both 0. */
static int arm64_np_post(void *tctx, struct apf_host_chan *c, uint32_t token)
{
    (void)tctx;
    uint32_t area[2];
    int err = apf_host_chan_read(c, c->area_gpa, area, sizeof(area));
    if (err)
        return err;
    if (area[0] != APF_REASON_NONE || area[1] != APF_TOKEN_INVALID)
        return APF_EBUSY;
    area[0] = APF_REASON_NOT_PRESENT;
    area[1] = token;
    return apf_host_chan_write(c, c->area_gpa, area, sizeof(area));
}

static uint32_t arm64_ready_room(void *tctx, struct apf_host_chan *c, uint32_t gs)
{
    (void)tctx;
    (void)gs;
    struct arm64_chan *a = arm64_of(c);
    if (a->ring_on)
        return apf_host_ring_room(&a->ring, c);
    uint32_t area[2];
    if (apf_host_chan_read(c, c->area_gpa, area, sizeof(area)))
        return 0;
    return area[0] == APF_REASON_NONE && area[1] == APF_TOKEN_INVALID ? 1 : 0;
}

static int arm64_ready_post(void *tctx, struct apf_host_chan *c, uint32_t token)
{
    (void)tctx;
    struct arm64_chan *a = arm64_of(c);
    if (a->ring_on)
        return apf_host_ring_post(&a->ring, c, token);
    uint32_t area[2] = {APF_REASON_READY, token};
    return apf_host_chan_write(c, c->area_gpa, area, sizeof(area));
}

static int arm64_ready_notify(void *tctx, struct apf_host_chan *c, uint32_t posted)
{
    (void)tctx;
    (void)posted;
    struct arm64_chan *a = arm64_of(c);
    return a->ring_on ? apf_host_ring_publish(&a->ring, c) : 1;
}

const struct apf_host_transport_ops apf_host_transport_kvm_arm64 = {
    .name = "kvm-arm64",
    .id = APF_TRANSPORT_ID_KVM_ARM64,
    .caps = APF_HOST_TRANSPORT_NEEDS_ACK,
    .valid_flags = APF_ARM64_EN_VALID,
    .window = 1,
    .priv_size = sizeof(struct arm64_chan),
    .vector_check = arm64_vector_check,
    .enable_check = arm64_enable_check,
    .enabled = arm64_enabled,
    .np_deliverable = arm64_np_deliverable,
    .np_post = arm64_np_post,
    .ready_room = arm64_ready_room,
    .ready_post = arm64_ready_post,
    .ready_notify = arm64_ready_notify,
    .reset = arm64_reset,
};

/* ---- frontend: the SMCCC call ------------------------------------------------------------ */

struct apf__kvm_arm64_regs {
    uint64_t control_off; /* last accepted ENABLE value that left APF off (0 after an on) */
    uint32_t sdei_event;
    uint32_t pad;
};

struct apf_host_kvm_arm64 {
    struct apf_host *host;
    struct apf_allocator alloc; /* the engine's, copied: destroy does not need the engine */
    uint32_t n_vcpus;
    uint32_t features; /* APF_FEATURE_* offered */
    struct apf__kvm_arm64_regs regs[]; /* one per vCPU, in the same allocation */
};

static size_t fe_size(uint32_t n_vcpus)
{
    return sizeof(struct apf_host_kvm_arm64) + sizeof(struct apf__kvm_arm64_regs) * n_vcpus;
}

int apf_host_kvm_arm64_create(struct apf_host *h, const struct apf_host_kvm_arm64_config *cfg,
                              struct apf_host_kvm_arm64 **out)
{
    if (h == NULL || out == NULL ||
        apf_host_transport(h, NULL) != &apf_host_transport_kvm_arm64)
        return APF_EINVAL;
    uint32_t n = apf_host_vcpu_count(h);
    struct apf_host_kvm_arm64 *fe = apf_host_zalloc(h, fe_size(n));
    if (fe == NULL)
        return APF_ENOMEM;
    uint32_t sdei = cfg && cfg->sdei_event ? cfg->sdei_event : APF_ARM64_SDEI_EVENT_DEFAULT;
    for (uint32_t i = 0; i < n; i++)
        fe->regs[i].sdei_event = sdei;
    fe->host = h;
    apf_host_allocator(h, &fe->alloc);
    fe->n_vcpus = n;
    fe->features = cfg && cfg->no_ring ? 0 : APF_FEATURE_RING;
    *out = fe;
    return 0;
}

void apf_host_kvm_arm64_destroy(struct apf_host_kvm_arm64 *fe)
{
    if (fe == NULL)
        return;
    struct apf_allocator a = fe->alloc;
    a.free(a.ctx, fe, fe_size(fe->n_vcpus));
}

uint64_t apf_host_kvm_arm64_features(void)
{
    return 1ull << APF_ARM64_FEATURE_BIT;
}

static uint64_t smccc(int64_t code)
{
    return (uint64_t)code; /* sign-extended into the 64-bit register */
}

/* A RING value: page address | log2(entries) in the low 12 bits; 0 unregisters. */
static int ring_decode(const struct apf_host_chan *c, uint64_t value, uint64_t *gpa,
                       uint32_t *size)
{
    *gpa = value & ~APF_RING_LOG2_MASK;
    uint64_t log2 = value & APF_RING_LOG2_MASK;
    if (value == 0) {
        *size = 0;
        return 0;
    }
    if (log2 > 31)
        return APF_EINVAL;
    *size = 1u << log2;
    return apf_host_ring_check(c, *gpa, *size);
}

static int64_t call_ring(struct apf_host_kvm_arm64 *fe, uint32_t vcpu, uint64_t value)
{
    struct apf_host_chan *c = apf_host_chan_get(fe->host, vcpu);
    struct arm64_chan *a = arm64_of(c);
    uint64_t gpa;
    uint32_t size;
    if (ring_decode(c, value, &gpa, &size) != 0)
        return APF_SMCCC_INVALID_PARAMETER;
    if (a->ring_on)
        return APF_SMCCC_INVALID_PARAMETER; /* in use: ENABLE 0 first */
    if (value != 0 && !(fe->features & APF_FEATURE_RING))
        return APF_SMCCC_NOT_SUPPORTED;
    a->reg_gpa = value ? gpa : 0;
    a->reg_size = size;
    return APF_SMCCC_SUCCESS;
}

/* ENABLE: validated (flags, alignment, vector set, area is guest memory, ring registered)
 * before anything changes; bit 0 clear turns APF off. */
static int64_t call_enable(struct apf_host_kvm_arm64 *fe, uint32_t vcpu, uint64_t control)
{
    uint32_t flags = (uint32_t)(control & APF_EN_FLAGS_MASK);
    if (flags & ~APF_ARM64_EN_VALID)
        return APF_SMCCC_INVALID_PARAMETER;
    if ((flags & APF_ARM64_EN_RING) && !(flags & APF_EN_ENABLED))
        return APF_SMCCC_INVALID_PARAMETER; /* RING only together with ENABLED */
    if (!(flags & APF_EN_ENABLED)) {
        apf_host_vcpu_disable(fe->host, vcpu);
        fe->regs[vcpu].control_off = control;
        return APF_SMCCC_SUCCESS;
    }
    if (apf_host_vcpu_enable(fe->host, vcpu, control & APF_EN_ADDR_MASK, flags) != 0)
        return APF_SMCCC_INVALID_PARAMETER;
    fe->regs[vcpu].control_off = 0; /* on: the engine holds the value */
    return APF_SMCCC_SUCCESS;
}

int apf_host_kvm_arm64_hvc(struct apf_host_kvm_arm64 *fe, uint32_t vcpu, const uint64_t in[4],
                           uint64_t out[4])
{
    if (in == NULL || (uint32_t)in[0] != APF_ARM64_FUNC_ID)
        return APF_HOST_KVM_ARM64_NOT_MINE;
    if (fe == NULL || vcpu >= fe->n_vcpus || out == NULL)
        return APF_ENODEV;
    struct apf_host *h = fe->host;
    const struct apf_host_chan *c = apf_host_chan_get(h, vcpu);
    uint64_t res;
    /* SMC32: the argument registers are 32 bits wide; upper halves are ignored (SMCCC). */
    uint64_t value = (in[2] & 0xffffffffu) | ((in[3] & 0xffffffffu) << 32);
    switch ((uint32_t)in[1]) {
    case APF_ARM64_FUNC_VERSION:
        res = APF_PROTO_VERSION;
        break;
    case APF_ARM64_FUNC_SLOTS:
        res = apf_host_max_outstanding(h);
        break;
    case APF_ARM64_FUNC_SDEI:
        res = fe->regs[vcpu].sdei_event;
        break;
    case APF_ARM64_FUNC_IRQ:
        res = c->vector ? c->vector : smccc(APF_SMCCC_NOT_SUPPORTED);
        break;
    case APF_ARM64_FUNC_ENABLE:
        res = smccc(call_enable(fe, vcpu, value));
        break;
    case APF_ARM64_FUNC_IRQ_ACK:
        apf_host_vcpu_ack(h, vcpu); /* in ring mode: a counted no-op */
        res = APF_SMCCC_SUCCESS;
        break;
    case APF_ARM64_FUNC_FEATURES:
        res = fe->features;
        break;
    case APF_ARM64_FUNC_RING:
        res = smccc(call_ring(fe, vcpu, value));
        break;
    default:
        res = smccc(APF_SMCCC_NOT_SUPPORTED);
        break;
    }
    out[0] = res;
    out[1] = out[2] = out[3] = 0;
    return 0;
}

int apf_host_kvm_arm64_set_irq(struct apf_host_kvm_arm64 *fe, uint32_t vcpu, uint32_t ppi)
{
    if (fe == NULL || vcpu >= fe->n_vcpus)
        return APF_ENODEV;
    return apf_host_vcpu_set_vector(fe->host, vcpu, ppi);
}

int apf_host_kvm_arm64_vcpu_reset(struct apf_host_kvm_arm64 *fe, uint32_t vcpu)
{
    if (fe == NULL || vcpu >= fe->n_vcpus)
        return APF_ENODEV;
    apf_host_vcpu_reset(fe->host, vcpu);
    struct arm64_chan *a = arm64_of(apf_host_chan_get(fe->host, vcpu));
    a->reg_gpa = 0;
    a->reg_size = 0;
    fe->regs[vcpu].control_off = 0;
    return 0;
}

int apf_host_kvm_arm64_get_state(struct apf_host_kvm_arm64 *fe, uint32_t vcpu,
                                 struct apf_host_kvm_arm64_state *st)
{
    if (fe == NULL || vcpu >= fe->n_vcpus)
        return APF_ENODEV;
    if (st == NULL)
        return APF_EINVAL;
    st->version = APF_PROTO_VERSION;
    st->sdei_event = fe->regs[vcpu].sdei_event;
    const struct apf_host_chan *c = apf_host_chan_get(fe->host, vcpu);
    const struct arm64_chan *a = arm64_of(c);
    st->irq = c->vector;
    st->reserved = 0;
    st->control = c->enabled ? c->area_gpa | c->flags : fe->regs[vcpu].control_off;
    uint32_t log2 = 0;
    while (log2 < 31 && (1u << log2) < a->reg_size)
        log2++;
    st->ring = a->reg_gpa ? a->reg_gpa | log2 : 0;
    return 0;
}

int apf_host_kvm_arm64_set_state(struct apf_host_kvm_arm64 *fe, uint32_t vcpu,
                                 const struct apf_host_kvm_arm64_state *st)
{
    if (fe == NULL || vcpu >= fe->n_vcpus)
        return APF_ENODEV;
    /* 1.1.0, or 1.0.0 from a source without the ring. */
    if (st == NULL || st->reserved != 0 ||
        (st->version != APF_PROTO_VERSION &&
         !(st->version == APF_PROTO_VERSION_PACK(1, 0, 0) && st->ring == 0)))
        return APF_EINVAL;
    uint32_t flags = (uint32_t)(st->control & APF_EN_FLAGS_MASK);
    if (flags & ~APF_ARM64_EN_VALID)
        return APF_EINVAL;
    if ((flags & APF_ARM64_EN_RING) && !(flags & APF_EN_ENABLED))
        return APF_EINVAL;
    struct apf_host_chan *c = apf_host_chan_get(fe->host, vcpu);
    struct arm64_chan *a = arm64_of(c);
    uint64_t gpa;
    uint32_t size;
    int err = ring_decode(c, st->ring, &gpa, &size);
    if (err)
        return err;
    if (st->ring && !(fe->features & APF_FEATURE_RING))
        return APF_EINVAL;
    if ((flags & APF_EN_ENABLED) && (flags & APF_ARM64_EN_RING) && st->ring == 0)
        return APF_EINVAL;
    /* Through the engine's restore: validated as a whole, then reset + wake-all. The ring
     * registration goes in first (enable reads it) and back out if the restore fails. */
    struct apf_host_vcpu_state hs;
    err = apf_host_vcpu_save(fe->host, vcpu, &hs);
    if (err)
        return err;
    hs.vector = st->irq;
    hs.enabled = (flags & APF_EN_ENABLED) ? 1 : 0;
    hs.area_gpa = hs.enabled ? st->control & APF_EN_ADDR_MASK : 0;
    hs.flags = hs.enabled ? flags : 0;
    struct arm64_chan old = *a;
    if (a->ring_on)
        a->ring_on = 0; /* the restore resets the channel anyway */
    a->reg_gpa = st->ring ? gpa : 0;
    a->reg_size = size;
    err = apf_host_vcpu_restore(fe->host, vcpu, &hs);
    if (err) {
        *a = old;
        return err;
    }
    fe->regs[vcpu].sdei_event = st->sdei_event;
    fe->regs[vcpu].control_off = hs.enabled ? 0 : st->control;
    return 0;
}
