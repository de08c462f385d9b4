/* SPDX-License-Identifier: MIT */
/*
 * xen-hvm transport (apf_host_transport_xen) and frontend (vcpu_op
 * APF_XEN_VCPUOP_REGISTER_APF, apf/proto_xen.h). Written against the public headers only.
 *
 * Notification plane: "not present" = reason and token in the area, then the #PF with
 * CR2 = token (the embedder's inject_not_present); "page ready" = the ready ring, then the
 * VIRQ (inject_ready with the VIRQ number); no ACK.
 * Control plane: one registration per vCPU, validated in Xen's order and with Xen's errors
 * before anything changes; ~0 unregisters.
 * One source of truth per vCPU (as kvm_arm64.c): the engine's channel (on, area, flags) and
 * the ring in the transport's block; get_state reads them, whoever changed them (an
 * engine-level disable, reset or restore included). The frontend keeps no copy.
 */
#include "apf/host_xen.h"

/* Per-vCPU transport block (apf_host_chan::priv). */
struct xen_chan {
    uint64_t reg_gpa;  /* ring of the registration (0 = none) */
    uint32_t reg_size; /* its entries */
    uint32_t resume;   /* 1: the next enable continues the ring at resume_prod/cons */
    uint32_t resume_prod;
    uint32_t resume_cons;
    uint32_t ring_on;
    uint32_t pad;
    struct apf_host_ring ring;
};

static struct xen_chan *xc_of(const struct apf_host_chan *c)
{
    return c->priv;
}

/* ---- transport -------------------------------------------------------------------------- */

static int xen_vector_check(void *tctx, uint32_t vector)
{
    (void)tctx;
    return vector >= 1 && vector < APF_XEN_NR_VIRQS ? 0 : APF_EINVAL;
}

static int area_in_page(uint64_t area, uint64_t page)
{
    return area + APF_AREA_SIZE > page && area < page + APF_RING_PAGE_SIZE;
}

static int xen_enable_check(void *tctx, const struct apf_host_chan *c, uint64_t area_gpa,
                            uint32_t flags)
{
    (void)tctx;
    (void)flags;
    const struct xen_chan *x = xc_of(c);
    if (x->reg_gpa == 0 || area_in_page(area_gpa, x->reg_gpa))
        return APF_EINVAL;
    uint8_t probe[APF_AREA_SIZE];
    return apf_host_chan_read(c, area_gpa, probe, sizeof(probe)) ? APF_EFAULT : 0;
}

static void xen_enabled(void *tctx, struct apf_host_chan *c)
{
    (void)tctx;
    struct xen_chan *x = xc_of(c);
    x->ring_on = 1;
    c->window = x->reg_size;
    c->needs_ack = 0;
    if (x->resume) {
        x->resume = 0;
        x->ring = (struct apf_host_ring){.gpa = x->reg_gpa,
                                         .size = x->reg_size,
                                         .prod = x->resume_prod,
                                         .published = x->resume_prod,
                                         .cons = x->resume_cons};
        return;
    }
    if (apf_host_ring_start(&x->ring, c, x->reg_gpa, x->reg_size) != 0) {
        apf_host_chan_bad_value(c);
        x->ring.gpa = 0;
    }
}

static void xen_reset(void *tctx, struct apf_host_chan *c)
{
    (void)tctx;
    struct xen_chan *x = xc_of(c);
    x->ring_on = 0;
    x->ring.gpa = 0;
}

static int xen_np_deliverable(void *tctx, const struct apf_host_chan *c, uint32_t gs)
{
    (void)tctx;
    (void)c;
    return (gs & APF_GS_PAGING) != 0; /* a #PF */
}

static int xen_np_post(void *tctx, struct apf_host_chan *c, uint32_t token)
{
    (void)tctx;
    return apf_host_area_post_np(c, token);
}

static uint32_t xen_ready_room(void *tctx, struct apf_host_chan *c, uint32_t gs)
{
    (void)tctx;
    (void)gs;
    return apf_host_ring_room(&xc_of(c)->ring, c);
}

static int xen_ready_post(void *tctx, struct apf_host_chan *c, uint32_t token)
{
    (void)tctx;
    return apf_host_ring_post(&xc_of(c)->ring, c, token);
}

static int xen_ready_notify(void *tctx, struct apf_host_chan *c, uint32_t posted)
{
    (void)tctx;
    (void)posted;
    return apf_host_ring_publish(&xc_of(c)->ring, c);
}

const struct apf_host_transport_ops apf_host_transport_xen = {
    .name = "xen-hvm",
    .id = APF_TRANSPORT_ID_XEN_HVM,
    .caps = 0,
    .valid_flags = APF_EN_ENABLED | APF_EN_SEND_ALWAYS,
    .window = APF_RING_DEFAULT_ENTRIES,
    .priv_size = sizeof(struct xen_chan),
    .vector_check = xen_vector_check,
    .enable_check = xen_enable_check,
    .enabled = xen_enabled,
    .np_deliverable = xen_np_deliverable,
    .np_post = xen_np_post,
    .ready_room = xen_ready_room,
    .ready_post = xen_ready_post,
    .ready_notify = xen_ready_notify,
    .reset = xen_reset,
};

/* ---- frontend ----------------------------------------------------------------------------- */

struct apf_host_xen {
    struct apf_host *host;
    struct apf_allocator alloc; /* the engine's, copied: destroy does not need the engine */
    struct apf_host_xen_config cfg;
    uint32_t n_vcpus;
    uint32_t pad;
};

int apf_host_xen_create(struct apf_host *h, const struct apf_host_xen_config *cfg,
                        struct apf_host_xen **out)
{
    if (h == NULL || out == NULL || apf_host_transport(h, NULL) != &apf_host_transport_xen)
        return APF_EINVAL;
    uint32_t n = apf_host_vcpu_count(h);
    struct apf_host_xen *fe = apf_host_zalloc(h, sizeof(*fe));
    if (fe != NULL)
        apf_host_allocator(h, &fe->alloc);
    if (fe == NULL)
        return APF_ENOMEM;
    fe->host = h;
    fe->n_vcpus = n;
    if (cfg)
        fe->cfg = *cfg;
    for (uint32_t i = 0; i < n; i++)
        apf_host_vcpu_set_vector(h, i, APF_XEN_VIRQ_APF);
    *out = fe;
    return 0;
}

void apf_host_xen_destroy(struct apf_host_xen *fe)
{
    if (fe == NULL)
        return;
    struct apf_allocator a = fe->alloc; /* the engine may be gone already */
    a.free(a.ctx, fe, sizeof(*fe));
}

uint32_t apf_host_xen_features(uint32_t submap_idx)
{
    return submap_idx == 0 ? 1u << APF_XEN_FEAT_APF : 0;
}

/* Xen's phys-area rules for one page-contained object at gpa: the p2m type first (MMIO:
 * -EPERM, paged/shared: -EAGAIN, nothing: -EINVAL), then the accessor (-EINVAL). */
static int mem_check(const struct apf_host_xen *fe, const struct apf_host_chan *c,
                     uint64_t gpa, uint32_t len)
{
    if (fe->cfg.gpa_type) {
        switch (fe->cfg.gpa_type(fe->cfg.gpa_ctx, gpa)) {
        case APF_HOST_XEN_GPA_RAM:
            break;
        case APF_HOST_XEN_GPA_MMIO:
            return -(int)APF_XEN_EPERM;
        case APF_HOST_XEN_GPA_PAGED:
            return -(int)APF_XEN_EAGAIN;
        default:
            return -(int)APF_XEN_EINVAL;
        }
    }
    uint32_t probe[2];
    if (apf_host_chan_read(c, gpa, probe, sizeof(probe)) ||
        apf_host_chan_read(c, gpa + len - sizeof(probe), probe, sizeof(probe)))
        return -(int)APF_XEN_EINVAL;
    return 0;
}

/* Everything a registration (or a restore) needs, checked without side effects. Returns
 * 0 or a negated Xen error value. */
static int reg_check(const struct apf_host_xen *fe, const struct apf_host_chan *c,
                     uint64_t area, uint64_t ring, uint32_t entries, uint32_t version,
                     uint32_t flags)
{
    if ((version >> 16) != APF_PROTO_VERSION_MAJOR || version > 0xffffffu)
        return -(int)APF_XEN_EINVAL;
    if (flags & ~APF_XEN_APF_FLAGS_VALID)
        return -(int)APF_XEN_EINVAL;
    /* alignment (64 bytes: the area cannot cross a page) */
    if (area & (APF_AREA_ALIGN - 1))
        return -(int)APF_XEN_EINVAL;
    if (ring == 0 || (ring & (APF_RING_PAGE_SIZE - 1)))
        return -(int)APF_XEN_EINVAL;
    if (entries < APF_RING_MIN_ENTRIES || entries > APF_RING_MAX_ENTRIES ||
        (entries & (entries - 1)))
        return -(int)APF_XEN_EINVAL;
    if (area_in_page(area, ring))
        return -(int)APF_XEN_EINVAL;
    int err = mem_check(fe, c, area, APF_AREA_SIZE);
    if (err == 0)
        err = mem_check(fe, c, ring, APF_RING_PAGE_SIZE);
    return err;
}

static int64_t unregister(struct apf_host_xen *fe, uint32_t vcpu)
{
    struct apf_host_chan *c = apf_host_chan_get(fe->host, vcpu);
    struct xen_chan *x = xc_of(c);
    apf_host_vcpu_disable(fe->host, vcpu);
    x->reg_gpa = 0;
    x->reg_size = 0;
    return 0;
}

static int64_t do_register(struct apf_host_xen *fe, uint32_t vcpu, uint64_t arg_gpa)
{
    struct apf_host_chan *c = apf_host_chan_get(fe->host, vcpu);
    struct xen_chan *x = xc_of(c);
    struct apf_xen_vcpu_apf a;
    if (apf_host_chan_read(c, arg_gpa, &a, sizeof(a)) != 0)
        return -(int64_t)APF_XEN_EFAULT;
    if (a.area_gpa == APF_XEN_UNREGISTER)
        return unregister(fe, vcpu);
    if (c->enabled) /* registered: APF is on */
        return -(int64_t)APF_XEN_EBUSY;
    int err = reg_check(fe, c, a.area_gpa, a.ring_gpa, a.ring_entries, a.version, a.flags);
    if (err)
        return err;
    uint32_t en = APF_EN_ENABLED | ((a.flags & APF_XEN_APF_SEND_ALWAYS) ? APF_EN_SEND_ALWAYS : 0);
    struct xen_chan old = *x;
    x->reg_gpa = a.ring_gpa;
    x->reg_size = a.ring_entries;
    /* OUT fields first (the argument must be writable: -EFAULT changes nothing) */
    struct apf_xen_vcpu_apf o = a;
    o.version = APF_PROTO_VERSION;
    o.slots = apf_host_max_outstanding(fe->host);
    err = apf_host_vcpu_enable_check(fe->host, vcpu, a.area_gpa, en, c->vector);
    if (err) {
        *x = old;
        return -(int64_t)APF_XEN_EINVAL;
    }
    if (apf_host_chan_write(c, arg_gpa, &o, sizeof(o)) != 0) {
        *x = old;
        return -(int64_t)APF_XEN_EFAULT;
    }
    if (apf_host_vcpu_enable(fe->host, vcpu, a.area_gpa, en) != 0) {
        *x = old; /* checked above: does not happen */
        return -(int64_t)APF_XEN_EINVAL;
    }
    return 0;
}

int apf_host_xen_hypercall(struct apf_host_xen *fe, uint32_t vcpu, uint64_t nr,
                           const uint64_t args[5], int64_t *ret)
{
    if (args == NULL || ret == NULL)
        return APF_EINVAL;
    /* vcpu_op(cmd, vcpuid, arg): the command is an int in Xen's ABI */
    if (nr != APF_XEN_HC_VCPU_OP || (uint32_t)args[0] != APF_XEN_VCPUOP_REGISTER_APF)
        return APF_HOST_XEN_NOT_MINE;
    if (fe == NULL || vcpu >= fe->n_vcpus)
        return APF_ENODEV;
    uint64_t target = args[1];
    if (target >= fe->n_vcpus)
        *ret = -(int64_t)APF_XEN_ENOENT;
    else if (target != vcpu)
        *ret = -(int64_t)APF_XEN_EINVAL; /* a vCPU registers its own area only */
    else
        *ret = do_register(fe, vcpu, args[2]);
    if (*ret != 0)
        apf_host_chan_bad_value(apf_host_chan_get(fe->host, vcpu));
    return 0;
}

int apf_host_xen_vcpu_reset(struct apf_host_xen *fe, uint32_t vcpu)
{
    if (fe == NULL || vcpu >= fe->n_vcpus)
        return APF_ENODEV;
    apf_host_vcpu_reset(fe->host, vcpu);
    apf_host_vcpu_set_vector(fe->host, vcpu, APF_XEN_VIRQ_APF);
    struct xen_chan *x = xc_of(apf_host_chan_get(fe->host, vcpu));
    x->reg_gpa = 0;
    x->reg_size = 0;
    x->resume = 0;
    return 0;
}

int apf_host_xen_get_state(struct apf_host_xen *fe, uint32_t vcpu, struct apf_host_xen_state *st)
{
    if (fe == NULL || vcpu >= fe->n_vcpus)
        return APF_ENODEV;
    if (st == NULL)
        return APF_EINVAL;
    const struct apf_host_chan *c = apf_host_chan_get(fe->host, vcpu);
    const struct xen_chan *x = xc_of(c);
    struct apf_host_vcpu_state hs;
    apf_host_vcpu_save(fe->host, vcpu, &hs);
    *st = (struct apf_host_xen_state){.version = APF_PROTO_VERSION, .seq = hs.seq};
    if (c->enabled) { /* registered: the engine's channel and the ring APF runs on */
        st->registered = 1;
        st->area_gpa = c->area_gpa;
        st->ring_gpa = x->reg_gpa;
        st->ring_entries = x->reg_size;
        st->flags = (c->flags & APF_EN_SEND_ALWAYS) ? APF_XEN_APF_SEND_ALWAYS : 0;
        st->prod = x->ring_on ? x->ring.published : 0;
        st->cons = x->ring_on ? x->ring.cons : 0;
    }
    return 0;
}

int apf_host_xen_set_state(struct apf_host_xen *fe, uint32_t vcpu,
                           const struct apf_host_xen_state *st)
{
    if (fe == NULL || vcpu >= fe->n_vcpus)
        return APF_ENODEV;
    if (st == NULL || st->reserved != 0 || st->registered > 1 ||
        (st->version >> 16) != APF_PROTO_VERSION_MAJOR || st->version > APF_PROTO_VERSION)
        return APF_EINVAL;
    struct apf_host_chan *c = apf_host_chan_get(fe->host, vcpu);
    struct xen_chan *x = xc_of(c);
    if (st->registered) {
        int err = reg_check(fe, c, st->area_gpa, st->ring_gpa, st->ring_entries,
                            APF_PROTO_VERSION, st->flags);
        if (err)
            return err; /* Xen's error values equal APF's (Linux errno) */
        if (st->prod - st->cons > st->ring_entries)
            return APF_EINVAL;
    } else if (st->area_gpa || st->ring_gpa || st->ring_entries || st->flags || st->prod ||
               st->cons) {
        return APF_EINVAL;
    }
    struct apf_host_vcpu_state hs;
    int err = apf_host_vcpu_save(fe->host, vcpu, &hs);
    if (err)
        return err;
    hs.vector = APF_XEN_VIRQ_APF;
    hs.enabled = st->registered;
    hs.area_gpa = st->registered ? st->area_gpa : 0;
    hs.flags = st->registered ? APF_EN_ENABLED | ((st->flags & APF_XEN_APF_SEND_ALWAYS)
                                                      ? APF_EN_SEND_ALWAYS
                                                      : 0)
                              : 0;
    hs.seq = st->seq;
    struct xen_chan old = *x;
    x->ring_on = 0;
    x->reg_gpa = st->registered ? st->ring_gpa : 0;
    x->reg_size = st->registered ? st->ring_entries : 0;
    x->resume = st->registered;
    x->resume_prod = st->prod;
    x->resume_cons = st->cons;
    err = apf_host_vcpu_restore(fe->host, vcpu, &hs);
    if (err) {
        *x = old;
        return err;
    }
    x->resume = 0;
    return 0;
}
