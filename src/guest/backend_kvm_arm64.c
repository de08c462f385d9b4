/* SPDX-License-Identifier: MIT */
/*
 * kvm_arm64 backend: the SMCCC vendor-hyp APF call of the arm64 design
 * (reference/arm64-apf.md, "Control path"), through the arm64 arch hook. Every value the
 * host returns is range-checked before use.
 *
 * Channel (per CPU, from the runtime's memory):
 *   [0, 64)       the shared area: reason + token of "not present" (and, in slot mode, of
 *                 "page ready");
 *   [64, ...)     ring mode: the guest's private ring state (the host never reads it);
 *   [4096, 8192)  ring mode: the ready ring page (4096-aligned).
 */
#include "guest/area.h"

#define KA_RING_OFFSET APF_RING_PAGE_SIZE
#define KA_CHAN_RING_SIZE (2u * APF_RING_PAGE_SIZE)

struct ka_chan {
    struct apf__area area;
    struct apf_guest_ring_consumer consumer;
};
_Static_assert(sizeof(struct ka_chan) <= KA_RING_OFFSET, "ring state fits before the ring");

void apf_guest_kvm_arm64_init(struct apf_guest_kvm_arm64 *b, const struct apf_arm64_arch_ops *arch,
                              void *arch_ctx)
{
    b->arch = arch;
    b->arch_ctx = arch_ctx;
    b->ring_entries = 0;
    b->ring_active = 0;
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

static uint32_t log2_u32(uint32_t v)
{
    uint32_t l = 0;
    while ((1u << l) < v)
        l++;
    return l;
}

static int ring_entries_valid(uint32_t n)
{
    return n >= APF_RING_MIN_ENTRIES && n <= APF_RING_MAX_ENTRIES && (n & (n - 1)) == 0;
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
    b->ring_active = 0;
    if (b->ring_entries != 0 && !ring_entries_valid(b->ring_entries))
        return APF_EINVAL;
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
    /* Major 1, any minor: minors are compatible additions (1.1: the ring, negotiated). */
    if (version > 0xffffff || (version >> 16) != APF_PROTO_VERSION_MAJOR)
        return APF_EPROTO;
    if (slots == 0 || slots > 4096)
        return APF_EPROTO;
    if ((int64_t)sdei < 0 || sdei > 0xffffffffu || sdei == 0)
        return APF_EPROTO;
    if (irq < APF_ARM64_PPI_MIN || irq > APF_ARM64_PPI_MAX)
        return APF_EPROTO;
    uint32_t features = 0;
    if (b->ring_entries != 0) {
        /* A 1.0 host answers NOT_SUPPORTED: slot mode, as with a host lacking the bit. */
        uint64_t f = call(b, 0, APF_ARM64_FUNC_FEATURES, 0, 0);
        if ((int64_t)f >= 0 && f <= 0xffffffffu && (f & APF_FEATURE_RING))
            features |= APF_FEATURE_RING;
    }
    b->ring_active = (features & APF_FEATURE_RING) != 0;
    info->version = (uint32_t)version;
    info->slots = (uint32_t)slots;
    info->sdei_event = (uint32_t)sdei;
    info->irq = (uint32_t)irq;
    info->features = features;
    return 0;
}

/* Sized from the configuration alone (before probe): a ring wanted gets its page even if
 * the host turns out not to offer it. */
static size_t ka_chan_size(void *ctx, size_t *align)
{
    const struct apf_guest_kvm_arm64 *b = ctx;
    if (b->ring_entries == 0) {
        *align = APF_AREA_ALIGN;
        return APF_AREA_SIZE;
    }
    *align = APF_RING_PAGE_SIZE;
    return KA_CHAN_RING_SIZE;
}

/* The host chose the PPI: a value outside 16..31 is a bad host value. */
static int ka_vector_check(void *ctx, uint32_t vector)
{
    (void)ctx;
    if (vector < APF_ARM64_PPI_MIN || vector > APF_ARM64_PPI_MAX)
        return APF_EPROTO;
    return 0;
}

static int ka_enable(void *ctx, uint32_t cpu, void *chan, uint64_t chan_pa, uint32_t vector,
                     uint32_t flags)
{
    struct apf_guest_kvm_arm64 *b = ctx;
    (void)vector; /* the host chose the PPI */
    if (chan_pa & (APF_AREA_ALIGN - 1))
        return APF_EINVAL;
    if (flags & ~APF_EN_SEND_ALWAYS)
        return APF_EINVAL;
    uint64_t control = chan_pa | APF_EN_ENABLED | (flags & APF_EN_SEND_ALWAYS);
    if (b->ring_active) {
        uint64_t ring_pa = chan_pa + KA_RING_OFFSET;
        if (chan == 0 || (ring_pa & (APF_RING_PAGE_SIZE - 1)))
            return APF_EINVAL;
        struct ka_chan *kc = chan;
        struct apf_ring *ring = (struct apf_ring *)((unsigned char *)chan + KA_RING_OFFSET);
        int err = apf_guest_ring_init(&kc->consumer, ring, b->ring_entries, 0);
        if (err)
            return err;
        uint64_t reg = ring_pa | log2_u32(b->ring_entries);
        err = smccc_err(call(b, cpu, APF_ARM64_FUNC_RING, reg & 0xffffffffu, reg >> 32));
        if (err)
            return err;
        control |= APF_ARM64_EN_RING;
        err = smccc_err(call(b, cpu, APF_ARM64_FUNC_ENABLE, control & 0xffffffffu,
                             control >> 32));
        if (err)
            call(b, cpu, APF_ARM64_FUNC_RING, 0, 0); /* unregister: APF stays off */
        return err;
    }
    return smccc_err(call(b, cpu, APF_ARM64_FUNC_ENABLE, control & 0xffffffffu, control >> 32));
}

static int ka_disable(void *ctx, uint32_t cpu)
{
    struct apf_guest_kvm_arm64 *b = ctx;
    int err = smccc_err(call(b, cpu, APF_ARM64_FUNC_ENABLE, 0, 0));
    if (b->ring_active) {
        int err2 = smccc_err(call(b, cpu, APF_ARM64_FUNC_RING, 0, 0));
        if (err == 0)
            err = err2;
    }
    return err;
}

/* "Not present" (SDEI): reason and token in the area, both reset. In slot mode a "page
 * ready" there waits for its interrupt, not ours to consume: clearing it would leave the
 * host waiting for an IRQ_ACK for ever. In ring mode "page ready" never uses the area. */
static int ka_take_not_present(void *ctx, uint32_t cpu, void *chan, uint32_t token_hint,
                               struct apf_guest_chan_event *ev)
{
    struct apf_guest_kvm_arm64 *b = ctx;
    struct apf__area *a = apf__area_of(chan);
    (void)cpu, (void)token_hint; /* the token is in the area */
    ev->token = 0;
    ev->value = 0;
    uint32_t reason = apf_load_relaxed(&a->flags);
    if (reason == APF_REASON_NONE)
        return APF_GUEST_NP_NONE;
    if (reason == APF_REASON_READY && !b->ring_active) {
        ev->value = reason;
        return APF_GUEST_NP_NOT_OURS;
    }
    uint32_t token = apf_load_relaxed(&a->token);
    apf_store_relaxed(&a->flags, 0);
    apf_store_relaxed(&a->token, 0);
    if (reason != APF_REASON_NOT_PRESENT) {
        ev->value = reason;
        return APF_GUEST_NP_BAD;
    }
    ev->token = token;
    return APF_GUEST_NP_EVENT;
}

static int ka_ready_peek(void *ctx, uint32_t cpu, void *chan, struct apf_guest_chan_event *ev)
{
    struct apf_guest_kvm_arm64 *b = ctx;
    (void)cpu;
    if (b->ring_active)
        return apf_guest_ring_peek(&((struct ka_chan *)chan)->consumer, ev);
    struct apf__area *a = apf__area_of(chan);
    ev->token = apf_load_relaxed(&a->token);
    ev->value = 0;
    if (ev->token == APF_TOKEN_INVALID)
        return APF_GUEST_READY_EMPTY;
    uint32_t reason = apf_load_relaxed(&a->flags);
    if (reason == APF_REASON_NOT_PRESENT)
        return APF_GUEST_READY_NOT_OURS; /* its event not handled yet: leave it, no ACK */
    if (reason != APF_REASON_READY) {
        ev->value = reason;
        return APF_GUEST_READY_BAD_ENTRY;
    }
    return APF_GUEST_READY_TOKEN;
}

static int ka_ready_release(void *ctx, uint32_t cpu, void *chan)
{
    struct apf_guest_kvm_arm64 *b = ctx;
    (void)cpu;
    if (b->ring_active)
        return apf_guest_ring_release(&((struct ka_chan *)chan)->consumer);
    struct apf__area *a = apf__area_of(chan);
    apf_store_relaxed(&a->flags, 0);
    /* Release: the reads and the reason's reset come before the slot reads free. */
    apf_store_release(&a->token, 0);
    return 0; /* one entry per IRQ_ACK */
}

static int ka_ready_finish(void *ctx, uint32_t cpu, void *chan)
{
    struct apf_guest_kvm_arm64 *b = ctx;
    if (b->ring_active)
        return apf_guest_ring_finish(&((struct ka_chan *)chan)->consumer);
    return smccc_err(call(b, cpu, APF_ARM64_FUNC_IRQ_ACK, 0, 0));
}

static struct apf_shared_area *ka_area(void *ctx, void *chan)
{
    (void)ctx;
    return (struct apf_shared_area *)chan;
}

static struct apf_ring *ka_ring(void *ctx, void *chan)
{
    struct apf_guest_kvm_arm64 *b = ctx;
    if (!b->ring_active || chan == 0)
        return 0;
    return (struct apf_ring *)((unsigned char *)chan + KA_RING_OFFSET);
}

const struct apf_guest_backend_ops apf_guest_backend_kvm_arm64 = {
    .name = "kvm-arm64",
    .capabilities = ka_caps,
    .probe = ka_probe,
    .chan_size = ka_chan_size,
    .vector_check = ka_vector_check,
    .enable = ka_enable,
    .disable = ka_disable,
    .take_not_present = ka_take_not_present,
    .ready_peek = ka_ready_peek,
    .ready_release = ka_ready_release,
    .ready_finish = ka_ready_finish,
    .area = ka_area,
    .ring = ka_ring,
};
