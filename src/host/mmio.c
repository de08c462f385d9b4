/* SPDX-License-Identifier: MIT */
/*
 * apf-mmio transport (apf_host_transport_mmio) and frontend (the register window of
 * apf/proto_mmio.h). Written against the public headers only.
 *
 * Notification plane: "not present" = reason and token in the area (only once the guest
 * consumed the previous one), then the synchronous exception of the configured kind (the
 * embedder's inject_not_present); "page ready" = the ready ring, always, no ACK.
 * Control plane: staging registers (area, ring) that change nothing, and a CONTROL commit
 * that validates everything and then applies all of it or nothing (STATUS says why).
 * One source of truth per vCPU (as kvm_arm64.c): what is in force - CONTROL, IRQ, the
 * committed area and ring - is the engine's channel and the ring in the transport's block,
 * read whoever changed them (an engine-level disable, reset or restore included); the
 * frontend keeps only the guest's staging registers and STATUS.
 */
#include "apf/host_mmio.h"

/* Per-vCPU transport block (apf_host_chan::priv). */
struct mmio_chan {
    uint64_t reg_gpa;  /* ring to start at the next enable (0 = none) */
    uint32_t reg_size; /* its entries */
    uint32_t np_kind;  /* APF_MMIO_NP_* */
    uint32_t resume;   /* 1: the next enable continues the ring at resume_prod/cons */
    uint32_t resume_prod;
    uint32_t resume_cons;
    uint32_t ring_on;
    struct apf_host_ring ring;
};

static struct mmio_chan *mm_of(const struct apf_host_chan *c)
{
    return c->priv;
}

/* ---- transport -------------------------------------------------------------------------- */

static int mm_vector_check(void *tctx, uint32_t vector)
{
    (void)tctx;
    return vector >= 1 && vector <= APF_MMIO_IRQ_MAX ? 0 : APF_EINVAL;
}

static int mm_area_in_ring(uint64_t area, uint64_t ring)
{
    return area + APF_AREA_SIZE > ring && area < ring + APF_RING_PAGE_SIZE;
}

static int mm_enable_check(void *tctx, const struct apf_host_chan *c, uint64_t area_gpa,
                           uint32_t flags)
{
    (void)tctx;
    (void)flags;
    const struct mmio_chan *m = mm_of(c);
    if (m->reg_gpa == 0 || mm_area_in_ring(area_gpa, m->reg_gpa))
        return APF_EINVAL;
    uint8_t probe[APF_AREA_SIZE];
    return apf_host_chan_read(c, area_gpa, probe, sizeof(probe)) ? APF_EFAULT : 0;
}

static void mm_enabled(void *tctx, struct apf_host_chan *c)
{
    (void)tctx;
    struct mmio_chan *m = mm_of(c);
    m->ring_on = 1;
    c->window = m->reg_size;
    c->needs_ack = 0; /* the consumer index is the ACK */
    if (m->resume) {
        /* Migration: the ring page came with guest memory; continue where the source
         * stopped (the header is not rewritten: the guest's consumer keeps its index). */
        m->resume = 0;
        m->ring = (struct apf_host_ring){.gpa = m->reg_gpa,
                                         .size = m->reg_size,
                                         .prod = m->resume_prod,
                                         .published = m->resume_prod,
                                         .cons = m->resume_cons};
        return;
    }
    if (apf_host_ring_start(&m->ring, c, m->reg_gpa, m->reg_size) != 0) {
        apf_host_chan_bad_value(c); /* memory went away since the check: room stays 0 */
        m->ring.gpa = 0;
    }
}

static void mm_reset(void *tctx, struct apf_host_chan *c)
{
    (void)tctx;
    struct mmio_chan *m = mm_of(c);
    m->ring_on = 0;
    m->ring.gpa = 0;
}

static int mm_np_deliverable(void *tctx, const struct apf_host_chan *c, uint32_t gs)
{
    (void)tctx;
    /* x86: a #PF needs paging on; the arm64 / riscv64 synchronous aborts need nothing. */
    return mm_of(c)->np_kind != APF_MMIO_NP_X86_PF || (gs & APF_GS_PAGING) != 0;
}

/* Reason and token in the area; refused while the guest has not consumed the last one. */
static int mm_np_post(void *tctx, struct apf_host_chan *c, uint32_t token)
{
    (void)tctx;
    return apf_host_area_post_np(c, token);
}

static uint32_t mm_ready_room(void *tctx, struct apf_host_chan *c, uint32_t gs)
{
    (void)tctx;
    (void)gs;
    return apf_host_ring_room(&mm_of(c)->ring, c);
}

static int mm_ready_post(void *tctx, struct apf_host_chan *c, uint32_t token)
{
    (void)tctx;
    return apf_host_ring_post(&mm_of(c)->ring, c, token);
}

static int mm_ready_notify(void *tctx, struct apf_host_chan *c, uint32_t posted)
{
    (void)tctx;
    (void)posted;
    return apf_host_ring_publish(&mm_of(c)->ring, c);
}

const struct apf_host_transport_ops apf_host_transport_mmio = {
    .name = "apf-mmio",
    .id = APF_TRANSPORT_ID_MMIO,
    .caps = 0,
    .valid_flags = APF_MMIO_CONTROL_VALID,
    .window = APF_RING_DEFAULT_ENTRIES,
    .priv_size = sizeof(struct mmio_chan),
    .vector_check = mm_vector_check,
    .enable_check = mm_enable_check,
    .enabled = mm_enabled,
    .np_deliverable = mm_np_deliverable,
    .np_post = mm_np_post,
    .ready_room = mm_ready_room,
    .ready_post = mm_ready_post,
    .ready_notify = mm_ready_notify,
    .reset = mm_reset,
};

/* ---- frontend: the register window ------------------------------------------------------- */

struct mmio_regs {
    uint64_t staged_area;
    uint64_t staged_ring;
    uint32_t status;
    uint32_t pad;
};

struct apf_host_mmio {
    struct apf_host *host;
    struct apf_allocator alloc; /* the engine's, copied: destroy does not need the engine */
    uint32_t n_vcpus;
    uint32_t irq;
    uint32_t np_kind;
    uint32_t pad;
    struct mmio_regs regs[]; /* one per vCPU */
};

static size_t fe_size(uint32_t n)
{
    return sizeof(struct apf_host_mmio) + sizeof(struct mmio_regs) * n;
}

int apf_host_mmio_create(struct apf_host *h, const struct apf_host_mmio_config *cfg,
                         struct apf_host_mmio **out)
{
    if (h == NULL || cfg == NULL || out == NULL ||
        apf_host_transport(h, NULL) != &apf_host_transport_mmio)
        return APF_EINVAL;
    if (cfg->irq < 1 || cfg->irq > APF_MMIO_IRQ_MAX || cfg->np_kind < APF_MMIO_NP_X86_PF ||
        cfg->np_kind > APF_MMIO_NP_RISCV_ACCESS_FAULT)
        return APF_EINVAL;
    uint32_t n = apf_host_vcpu_count(h);
    struct apf_host_mmio *fe = apf_host_zalloc(h, fe_size(n));
    if (fe != NULL)
        apf_host_allocator(h, &fe->alloc);
    if (fe == NULL)
        return APF_ENOMEM;
    fe->host = h;
    fe->n_vcpus = n;
    fe->irq = cfg->irq;
    fe->np_kind = cfg->np_kind;
    for (uint32_t i = 0; i < n; i++) {
        apf_host_vcpu_set_vector(h, i, cfg->irq); /* checked above: cannot fail */
        mm_of(apf_host_chan_get(h, i))->np_kind = cfg->np_kind;
    }
    *out = fe;
    return 0;
}

void apf_host_mmio_destroy(struct apf_host_mmio *fe)
{
    if (fe == NULL)
        return;
    struct apf_allocator a = fe->alloc; /* the engine may be gone already */
    a.free(a.ctx, fe, fe_size(fe->n_vcpus));
}

/* A ring value: page | log2(entries) in the low 12 bits. 0, APF_EINVAL or APF_EFAULT. */
static int ring_decode(const struct apf_host_chan *c, uint64_t value, uint64_t *gpa,
                       uint32_t *size)
{
    uint64_t log2 = value & APF_RING_LOG2_MASK;
    *gpa = value & ~APF_RING_LOG2_MASK;
    if (log2 > 31)
        return APF_EINVAL;
    *size = 1u << log2;
    return apf_host_ring_check(c, *gpa, *size);
}

/* What is in force: CONTROL (the flags, 0 = off), and the committed area and ring value. */
static uint32_t control_of(const struct apf_host_chan *c)
{
    return c->enabled ? c->flags : 0;
}

static uint64_t ring_of(const struct apf_host_chan *c)
{
    const struct mmio_chan *m = mm_of(c);
    if (!c->enabled)
        return 0;
    uint32_t log2 = 0;
    while (log2 < 31 && (1u << log2) < m->reg_size)
        log2++;
    return m->reg_gpa | log2;
}

static uint32_t status_of(int err)
{
    return err == 0 ? APF_MMIO_STATUS_OK
                    : err == APF_EFAULT ? APF_MMIO_STATUS_NOT_RAM : APF_MMIO_STATUS_INVALID;
}

/* CONTROL write: everything validated before anything changes. */
static int commit(struct apf_host_mmio *fe, uint32_t vcpu, uint32_t value)
{
    struct mmio_regs *r = &fe->regs[vcpu];
    struct apf_host_chan *c = apf_host_chan_get(fe->host, vcpu);
    struct mmio_chan *m = mm_of(c);
    if (value & ~APF_MMIO_CONTROL_VALID)
        return APF_EINVAL;
    if (!(value & APF_EN_ENABLED)) {
        if (value != 0)
            return APF_EINVAL; /* SEND_ALWAYS alone */
        apf_host_vcpu_disable(fe->host, vcpu);
        return 0;
    }
    uint64_t gpa;
    uint32_t size;
    int err = ring_decode(c, r->staged_ring, &gpa, &size);
    if (err)
        return err;
    struct mmio_chan old = *m;
    m->reg_gpa = gpa;
    m->reg_size = size;
    err = apf_host_vcpu_enable_check(fe->host, vcpu, r->staged_area, value, c->vector);
    if (err == 0)
        err = apf_host_vcpu_enable(fe->host, vcpu, r->staged_area, value);
    if (err) {
        *m = old;
        return err;
    }
    return 0;
}

static uint64_t set_half(uint64_t v, int hi, uint32_t half)
{
    return hi ? (v & 0xffffffffu) | ((uint64_t)half << 32)
              : (v & ~(uint64_t)0xffffffffu) | half;
}

int apf_host_mmio_access(struct apf_host_mmio *fe, uint32_t vcpu, uint64_t offset,
                         uint32_t len, int is_write, uint32_t *data)
{
    if (fe == NULL || vcpu >= fe->n_vcpus)
        return APF_ENODEV;
    struct apf_host_chan *c = apf_host_chan_get(fe->host, vcpu);
    if (data == NULL)
        return APF_EINVAL;
    if (offset >= APF_MMIO_WINDOW_SIZE || (offset & 3u) || len != 4) {
        apf_host_chan_bad_value(c);
        if (!is_write)
            *data = 0;
        return APF_EINVAL;
    }
    struct mmio_regs *r = &fe->regs[vcpu];
    if (!is_write) {
        uint32_t v = 0;
        switch ((uint32_t)offset) {
        case APF_MMIO_REG_MAGIC: v = APF_MMIO_MAGIC; break;
        case APF_MMIO_REG_VERSION: v = APF_PROTO_VERSION; break;
        case APF_MMIO_REG_FEATURES: v = APF_FEATURE_RING; break;
        case APF_MMIO_REG_SLOTS: v = apf_host_max_outstanding(fe->host); break;
        case APF_MMIO_REG_IRQ: v = c->vector; break;
        case APF_MMIO_REG_NP_KIND: v = fe->np_kind; break;
        case APF_MMIO_REG_AREA_LO: v = (uint32_t)r->staged_area; break;
        case APF_MMIO_REG_AREA_HI: v = (uint32_t)(r->staged_area >> 32); break;
        case APF_MMIO_REG_RING_LO: v = (uint32_t)r->staged_ring; break;
        case APF_MMIO_REG_RING_HI: v = (uint32_t)(r->staged_ring >> 32); break;
        case APF_MMIO_REG_CONTROL: v = control_of(c); break;
        case APF_MMIO_REG_STATUS: v = r->status; break;
        default: v = 0; break; /* reserved */
        }
        *data = v;
        return 0;
    }
    uint32_t v = *data;
    switch ((uint32_t)offset) {
    case APF_MMIO_REG_AREA_LO: r->staged_area = set_half(r->staged_area, 0, v); break;
    case APF_MMIO_REG_AREA_HI: r->staged_area = set_half(r->staged_area, 1, v); break;
    case APF_MMIO_REG_RING_LO: r->staged_ring = set_half(r->staged_ring, 0, v); break;
    case APF_MMIO_REG_RING_HI: r->staged_ring = set_half(r->staged_ring, 1, v); break;
    case APF_MMIO_REG_CONTROL:
        r->status = status_of(commit(fe, vcpu, v));
        if (r->status != APF_MMIO_STATUS_OK)
            apf_host_chan_bad_value(c);
        break;
    default:
        apf_host_chan_bad_value(c); /* read-only or reserved: ignored */
        break;
    }
    return 0;
}

int apf_host_mmio_vcpu_reset(struct apf_host_mmio *fe, uint32_t vcpu)
{
    if (fe == NULL || vcpu >= fe->n_vcpus)
        return APF_ENODEV;
    struct apf_host_chan *c = apf_host_chan_get(fe->host, vcpu);
    apf_host_vcpu_reset(fe->host, vcpu);
    apf_host_vcpu_set_vector(fe->host, vcpu, fe->irq); /* the wire, not the guest, sets it */
    struct mmio_chan *m = mm_of(c);
    m->reg_gpa = 0;
    m->reg_size = 0;
    m->resume = 0;
    fe->regs[vcpu] = (struct mmio_regs){0};
    return 0;
}

int apf_host_mmio_get_state(struct apf_host_mmio *fe, uint32_t vcpu,
                            struct apf_host_mmio_state *st)
{
    if (fe == NULL || vcpu >= fe->n_vcpus)
        return APF_ENODEV;
    if (st == NULL)
        return APF_EINVAL;
    const struct mmio_regs *r = &fe->regs[vcpu];
    struct apf_host_chan *c = apf_host_chan_get(fe->host, vcpu);
    const struct mmio_chan *m = mm_of(c);
    struct apf_host_vcpu_state hs;
    apf_host_vcpu_save(fe->host, vcpu, &hs);
    *st = (struct apf_host_mmio_state){
        .version = APF_PROTO_VERSION,
        .control = control_of(c),
        .area = c->enabled ? c->area_gpa : 0,
        .ring = ring_of(c),
        .staged_area = r->staged_area,
        .staged_ring = r->staged_ring,
        .prod = m->ring_on ? m->ring.published : 0,
        .cons = m->ring_on ? m->ring.cons : 0,
        .seq = hs.seq,
        .status = r->status,
    };
    return 0;
}

int apf_host_mmio_set_state(struct apf_host_mmio *fe, uint32_t vcpu,
                            const struct apf_host_mmio_state *st)
{
    if (fe == NULL || vcpu >= fe->n_vcpus)
        return APF_ENODEV;
    if (st == NULL || (st->version >> 16) != APF_PROTO_VERSION_MAJOR ||
        st->version > APF_PROTO_VERSION || st->status > APF_MMIO_STATUS_NOT_RAM ||
        (st->control & ~APF_MMIO_CONTROL_VALID) ||
        (st->control != 0 && !(st->control & APF_EN_ENABLED)))
        return APF_EINVAL;
    struct apf_host_chan *c = apf_host_chan_get(fe->host, vcpu);
    struct mmio_chan *m = mm_of(c);
    uint64_t gpa = 0;
    uint32_t size = 0;
    int on = st->control != 0;
    if (on) {
        int err = ring_decode(c, st->ring, &gpa, &size);
        if (err)
            return err;
        if (st->prod - st->cons > size)
            return APF_EINVAL;
    } else if (st->area || st->ring || st->prod || st->cons) {
        return APF_EINVAL;
    }
    struct apf_host_vcpu_state hs;
    int err = apf_host_vcpu_save(fe->host, vcpu, &hs);
    if (err)
        return err;
    hs.vector = fe->irq;
    hs.enabled = (uint32_t)on;
    hs.area_gpa = st->area;
    hs.flags = st->control;
    hs.seq = st->seq;
    struct mmio_chan old = *m;
    m->ring_on = 0;
    m->reg_gpa = gpa;
    m->reg_size = size;
    m->resume = (uint32_t)on;
    m->resume_prod = st->prod;
    m->resume_cons = st->cons;
    err = apf_host_vcpu_restore(fe->host, vcpu, &hs);
    if (err) {
        *m = old;
        return err;
    }
    m->resume = 0;
    fe->regs[vcpu] = (struct mmio_regs){.staged_area = st->staged_area,
                                        .staged_ring = st->staged_ring,
                                        .status = st->status};
    return 0;
}
