/* SPDX-License-Identifier: MIT */
/*
 * xen-hvm backend (apf/proto_xen.h) over the hypercall arch hook. Every value Xen returns
 * is range-checked before use.
 *
 * Channel (per CPU, from the runtime's memory, 4096-aligned):
 *   [0, 64)       the shared area: reason + token of "not present";
 *   [64, 96)      the vcpu_op argument (struct apf_xen_vcpu_apf);
 *   [96, 128)     event-channel and hvm_op arguments;
 *   [128, ...)    the guest's private state (ring consumer, bound port);
 *   [4096, 8192)  the ready ring page.
 */
#include "apf/guest_xen.h"
#include "guest/area.h"

#define XB_RING_OFFSET APF_RING_PAGE_SIZE
#define XB_CHAN_SIZE (2u * APF_RING_PAGE_SIZE)

struct xb_chan {
    struct apf__area area;
    struct apf_xen_vcpu_apf reg;
    union {
        struct apf_xen_evtchn_bind_virq bind;
        struct apf_xen_upcall_vector upcall;
        uint32_t port;
        uint8_t raw[32];
    } arg;
    struct apf_guest_ring_consumer consumer;
    uint32_t port;  /* the VIRQ's port, if this enable bound it */
    uint32_t bound; /* 1 if this enable bound it */
};
_Static_assert(sizeof(struct xb_chan) <= XB_RING_OFFSET, "state fits before the ring");
_Static_assert(__builtin_offsetof(struct xb_chan, reg) == 64, "argument at 64");

void apf_guest_xen_init(struct apf_guest_xen *b, const struct apf_xen_arch_ops *arch,
                        void *arch_ctx)
{
    b->arch = arch;
    b->arch_ctx = arch_ctx;
    b->ring_entries = APF_RING_DEFAULT_ENTRIES;
    b->slots = 0;
    b->unreg = (struct apf_xen_vcpu_apf){.area_gpa = APF_XEN_UNREGISTER};
}

static int64_t hc(struct apf_guest_xen *b, uint32_t cpu, uint32_t nr, uint64_t a0, uint64_t a1,
                  uint64_t a2)
{
    uint64_t args[5] = {a0, a1, a2, 0, 0};
    return b->arch->hypercall(b->arch_ctx, cpu, nr, args);
}

static uint64_t ptr(const void *p)
{
    return (uint64_t)(uintptr_t)p;
}

/* A Xen error value as an APF code (both are Linux errno values). */
static int xen_err(int64_t r)
{
    if (r == 0)
        return 0;
    if (r < 0 && r >= -4095)
        return (int)r;
    return APF_EPROTO;
}

static int entries_valid(uint32_t n)
{
    return n >= APF_RING_MIN_ENTRIES && n <= APF_RING_MAX_ENTRIES && (n & (n - 1)) == 0;
}

static uint32_t xb_caps(void *ctx)
{
    (void)ctx;
    return APF_BACKEND_CAP_SEND_ALWAYS;
}

static int xb_probe(void *ctx, struct apf_guest_backend_info *info)
{
    struct apf_guest_xen *b = ctx;
    b->slots = 0;
    if (b->arch == 0 || !entries_valid(b->ring_entries))
        return APF_EINVAL;
    struct apf_xen_feature_info fi = {0, 0};
    int64_t r = hc(b, 0, APF_XEN_HC_XEN_VERSION, APF_XEN_XENVER_GET_FEATURES, ptr(&fi), 0);
    if (r != 0)
        return APF_ENODEV;
    if (!(fi.submap & (1u << APF_XEN_FEAT_APF)))
        return APF_EOPNOTSUPP;
    info->version = APF_PROTO_VERSION; /* the host's comes back with each registration */
    info->slots = 64;                  /* a sizing hint; the host's limit is OUT */
    info->irq = 0;                     /* the kernel's upcall vector */
    info->sdei_event = 0;
    info->features = APF_FEATURE_RING;
    return 0;
}

static size_t xb_chan_size(void *ctx, size_t *align)
{
    (void)ctx;
    *align = APF_RING_PAGE_SIZE;
    return XB_CHAN_SIZE;
}

static int xb_vector_check(void *ctx, uint32_t vector)
{
    (void)ctx;
    return vector >= APF_XEN_UPCALL_VECTOR_MIN && vector <= 0xff ? 0 : APF_EINVAL;
}

/* The unregistration argument is the context's, constant after init (Xen only reads it):
 * CPUs may use it at the same time, and disable needs no channel. */
static int xb_unregister(struct apf_guest_xen *b, uint32_t cpu)
{
    return xen_err(hc(b, cpu, APF_XEN_HC_VCPU_OP, APF_XEN_VCPUOP_REGISTER_APF, cpu,
                      ptr(&b->unreg)));
}

static int xb_enable(void *ctx, uint32_t cpu, void *chan, uint64_t chan_pa, uint32_t vector,
                     uint32_t flags)
{
    struct apf_guest_xen *b = ctx;
    if (chan == 0 || (chan_pa & (APF_RING_PAGE_SIZE - 1)) || (flags & ~APF_EN_SEND_ALWAYS) ||
        xb_vector_check(ctx, vector))
        return APF_EINVAL;
    struct xb_chan *xc = chan;
    struct apf_ring *ring = (struct apf_ring *)((unsigned char *)chan + XB_RING_OFFSET);
    int err = apf_guest_ring_init(&xc->consumer, ring, b->ring_entries, 0);
    if (err)
        return err;
    /* 1. where the VIRQ's event is delivered */
    xc->arg.upcall = (struct apf_xen_upcall_vector){.vcpu = cpu, .vector = (uint8_t)vector};
    err = xen_err(hc(b, cpu, APF_XEN_HC_HVM_OP, APF_XEN_HVMOP_SET_EVTCHN_UPCALL_VECTOR,
                     ptr(&xc->arg.upcall), 0));
    if (err)
        return err;
    /* 2. the registration; OUT fields checked */
    xc->reg = (struct apf_xen_vcpu_apf){
        .area_gpa = chan_pa,
        .ring_gpa = chan_pa + XB_RING_OFFSET,
        .version = APF_PROTO_VERSION,
        .flags = (flags & APF_EN_SEND_ALWAYS) ? APF_XEN_APF_SEND_ALWAYS : 0,
        .ring_entries = b->ring_entries,
    };
    err = xen_err(hc(b, cpu, APF_XEN_HC_VCPU_OP, APF_XEN_VCPUOP_REGISTER_APF, cpu,
                     ptr(&xc->reg)));
    if (err)
        return err;
    uint32_t version = xc->reg.version, slots = xc->reg.slots;
    if ((version >> 16) != APF_PROTO_VERSION_MAJOR || version > 0xffffffu ||
        xc->reg.ring_entries != b->ring_entries || slots == 0 || slots > 4096) {
        xb_unregister(b, cpu);
        return APF_EPROTO;
    }
    b->slots = slots;
    /* 3. the per-vCPU VIRQ. A binding outlives a disable (the kernel owns the port and
     * may close it): -EEXIST on a later enable means it is still bound. */
    xc->arg.bind = (struct apf_xen_evtchn_bind_virq){.virq = APF_XEN_VIRQ_APF, .vcpu = cpu};
    err = xen_err(hc(b, cpu, APF_XEN_HC_EVENT_CHANNEL_OP, APF_XEN_EVTCHNOP_BIND_VIRQ,
                     ptr(&xc->arg.bind), 0));
    if (err == APF_EEXIST)
        return 0;
    if (err) {
        xb_unregister(b, cpu);
        return err;
    }
    xc->port = xc->arg.bind.port;
    xc->bound = 1;
    return 0;
}

static int xb_disable(void *ctx, uint32_t cpu)
{
    return xb_unregister(ctx, cpu);
}

static int xb_take_not_present(void *ctx, uint32_t cpu, void *chan, uint32_t token_hint,
                               struct apf_guest_chan_event *ev)
{
    (void)ctx, (void)cpu;
    struct apf__area *a = apf__area_of(chan);
    ev->token = 0;
    ev->value = 0;
    uint32_t reason = apf_load_relaxed(&a->flags);
    if (reason == APF_REASON_NONE)
        return APF_GUEST_NP_NONE;
    uint32_t token = apf_load_relaxed(&a->token);
    apf_store_relaxed(&a->token, 0);
    apf_store_relaxed(&a->flags, 0);
    if (reason != APF_REASON_NOT_PRESENT) {
        ev->value = reason;
        return APF_GUEST_NP_BAD;
    }
    if (token != token_hint) {
        ev->value = token;
        return APF_GUEST_NP_BAD;
    }
    ev->token = token_hint;
    return APF_GUEST_NP_EVENT;
}

static int xb_ready_peek(void *ctx, uint32_t cpu, void *chan, struct apf_guest_chan_event *ev)
{
    (void)ctx, (void)cpu;
    return apf_guest_ring_peek(&((struct xb_chan *)chan)->consumer, ev);
}

static int xb_ready_release(void *ctx, uint32_t cpu, void *chan)
{
    (void)ctx, (void)cpu;
    return apf_guest_ring_release(&((struct xb_chan *)chan)->consumer);
}

static int xb_ready_finish(void *ctx, uint32_t cpu, void *chan)
{
    (void)ctx, (void)cpu;
    return apf_guest_ring_finish(&((struct xb_chan *)chan)->consumer);
}

static struct apf_shared_area *xb_area(void *ctx, void *chan)
{
    (void)ctx;
    return (struct apf_shared_area *)chan;
}

static struct apf_ring *xb_ring(void *ctx, void *chan)
{
    (void)ctx;
    return chan ? (struct apf_ring *)((unsigned char *)chan + XB_RING_OFFSET) : 0;
}

const struct apf_guest_backend_ops apf_guest_backend_xen = {
    .name = "xen-hvm",
    .capabilities = xb_caps,
    .probe = xb_probe,
    .chan_size = xb_chan_size,
    .vector_check = xb_vector_check,
    .enable = xb_enable,
    .disable = xb_disable,
    .take_not_present = xb_take_not_present,
    .ready_peek = xb_ready_peek,
    .ready_release = xb_ready_release,
    .ready_finish = xb_ready_finish,
    .area = xb_area,
    .ring = xb_ring,
};
