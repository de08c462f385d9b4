/* SPDX-License-Identifier: MIT */
/*
 * libapf-host core: engine creation and teardown, shared helpers, statistics, and what the
 * engine gives transports (apf/host_transport.h). Freestanding: no libc, no threads; the
 * allocator, clock, log and fatal-error hooks come from the embedder (hosted.c supplies the
 * C library's in the hosted build).
 */
#include "host/engine.h"

_Noreturn void apf__bug(const struct apf_host *h, const char *file, int line, const char *what)
{
    if (h && h->env.fatal)
        h->env.fatal(h->env.ctx, file, line, what);
    __builtin_trap(); /* `fatal` must not return; without one, stop here */
}

/* ---- helpers ------------------------------------------------------------------------------ */

void apf__memzero(void *p, size_t n)
{
    unsigned char *c = p;
    while (n--)
        *c++ = 0;
}

void *apf__zalloc(const struct apf_host *h, size_t size)
{
    void *p = h->alloc.alloc(h->alloc.ctx, size, 64);
    if (p)
        apf__memzero(p, size);
    return p;
}

void apf__free(const struct apf_host *h, void *p, size_t size)
{
    if (p)
        h->alloc.free(h->alloc.ctx, p, size);
}

void apf__trace_emit(const struct apf__vcpu *v, uint32_t kind, uint32_t token, uint64_t gpa,
                     int32_t arg)
{
    const struct apf_host *h = v->chan.host;
    struct apf_trace_event ev = {
        .time_ns = h->env.now_ns ? h->env.now_ns(h->env.ctx) : 0,
        .gpa = gpa,
        .vcpu = v->chan.vcpu,
        .token = token,
        .kind = kind,
        .arg = arg,
    };
    h->cfg.trace(h->cfg.trace_ctx, &ev);
}

/* A slot goes back to the free FIFO; its tag keeps the old token in state FREE so that a
 * late completion of that token fails its CAS. vCPU context. */
void apf__slot_free(struct apf__vcpu *v, struct apf__slot *s)
{
    apf_store_release(&s->tag, APF__TAG(s->token, APF__SLOT_FREE));
    s->cancelled = 0;
    s->np_delivered = 0;
    apf__token_free(&v->tokens, s->index);
    apf_store_relaxed(&v->stats.outstanding, apf__tokens_used(&v->tokens));
}

/* ---- layout of the per-vCPU storage -------------------------------------------------------- */

struct layout {
    uint32_t cap;       /* token ring capacity */
    uint32_t dedup_cap; /* dedup entries */
    size_t slots_off, ring_off, dedup_off, priv_off, per_vcpu;
};

static size_t align_up(size_t n, size_t a)
{
    return (n + a - 1) & ~(a - 1);
}

static struct layout layout_of(uint32_t limit, uint32_t priv_size)
{
    struct layout l;
    l.cap = apf__pow2_ceil(limit);
    l.dedup_cap = 2 * l.cap;
    l.slots_off = 0;
    l.dedup_off = align_up(sizeof(struct apf__slot) * limit, 64);
    l.ring_off = l.dedup_off + align_up(sizeof(struct apf__map_entry) * l.dedup_cap, 64);
    l.priv_off = l.ring_off + align_up(sizeof(uint16_t) * l.cap, 64);
    l.per_vcpu = l.priv_off + align_up(priv_size, 64);
    return l;
}

static int transport_check(const struct apf_host_transport_ops *t)
{
    if (t == NULL || !t->vector_check || !t->enable_check || !t->np_deliverable ||
        !t->np_post || !t->ready_room || !t->ready_post || !t->ready_notify)
        return APF_EINVAL;
    if (t->priv_size > 4096 || t->reserved != 0 || !(t->valid_flags & APF_EN_ENABLED))
        return APF_EINVAL;
    return 0;
}

static int config_check(const struct apf_host_config *cfg, int hosted)
{
    if (cfg == NULL || cfg->ops == NULL)
        return APF_EINVAL;
    const struct apf_host_ops *o = cfg->ops;
    if (cfg->n_vcpus == 0 || cfg->n_vcpus > APF_HOST_MAX_VCPUS)
        return APF_EINVAL;
    if (cfg->max_outstanding > APF_HOST_MAX_OUTSTANDING)
        return APF_EINVAL;
    if (cfg->n_workers > APF_HOST_MAX_WORKERS)
        return APF_EINVAL;
    if (transport_check(cfg->transport) != 0)
        return APF_EINVAL;
    if (cfg->fallback != APF_HOST_FALLBACK_HALT && cfg->fallback != APF_HOST_FALLBACK_SYNC)
        return APF_EINVAL;
    if (cfg->page_shift != 0 && (cfg->page_shift < 12 || cfg->page_shift > 30))
        return APF_EINVAL;
    if (cfg->worker_spin_ns > 1000000)
        return APF_EINVAL;
    for (unsigned i = 0; i < sizeof(cfg->reserved) / sizeof(cfg->reserved[0]); i++)
        if (cfg->reserved[i] != 0)
            return APF_EINVAL;
    if (!o->inject_not_present || !o->inject_ready || !o->kick || !o->read_guest ||
        !o->write_guest)
        return APF_EINVAL;
    if (cfg->n_workers > 0 ? o->resolve == NULL : o->submit == NULL)
        return APF_EINVAL;
    if (cfg->alloc && (!cfg->alloc->alloc || !cfg->alloc->free))
        return APF_EINVAL;
    if (!hosted && cfg->alloc == NULL)
        return APF_EINVAL;
    if (!hosted && cfg->n_workers > 0)
        return APF_EOPNOTSUPP;
    return 0;
}

static void submit_embedder(void *ctx, uint32_t vcpu, uint32_t token, uint64_t gpa)
{
    const struct apf_host *h = ctx;
    h->ops.submit(h->cfg.ctx, vcpu, token, gpa);
}

int apf__host_create(const struct apf_host_config *cfg, const struct apf_allocator *alloc,
                     const struct apf_host_env_ops *env, struct apf_host **out)
{
    int err = config_check(cfg, alloc != NULL);
    if (err)
        return err;
    if (out == NULL)
        return APF_EINVAL;
    const struct apf_allocator *a = cfg->alloc ? cfg->alloc : alloc;

    struct apf_host boot = {.alloc = *a}; /* allocates the engine itself */
    struct apf_host *h = apf__zalloc(&boot, sizeof(*h));
    if (h == NULL)
        return APF_ENOMEM;
    h->cfg = *cfg;
    h->ops = *cfg->ops;
    h->tp = *cfg->transport;
    h->tctx = cfg->transport_ctx;
    h->alloc = *a;
    if (cfg->env)
        h->env = *cfg->env;
    else if (env)
        h->env = *env;
    h->submit = submit_embedder;
    h->submit_ctx = h;
    h->n_vcpus = cfg->n_vcpus;
    h->limit = cfg->max_outstanding ? cfg->max_outstanding : APF_HOST_DEFAULT_OUTSTANDING;
    h->cfg.max_outstanding = h->limit;
    h->page_shift = cfg->page_shift ? cfg->page_shift : 12;
    h->cfg.page_shift = h->page_shift;

    size_t vcpus_size = sizeof(struct apf__vcpu) * h->n_vcpus;
    h->vcpus = apf__zalloc(h, vcpus_size);
    if (h->vcpus == NULL)
        goto enomem;

    struct layout l = layout_of(h->limit, h->tp.priv_size);
    h->storage_size = l.per_vcpu * h->n_vcpus;
    h->storage = apf__zalloc(h, h->storage_size);
    if (h->storage == NULL)
        goto enomem;

    for (uint32_t i = 0; i < h->n_vcpus; i++) {
        struct apf__vcpu *v = &h->vcpus[i];
        char *base = (char *)h->storage + l.per_vcpu * i;
        v->chan.host = h;
        v->chan.vcpu = i;
        v->chan.window = h->tp.window;
        v->chan.needs_ack = (h->tp.caps & APF_HOST_TRANSPORT_NEEDS_ACK) != 0;
        v->chan.read_guest = h->ops.read_guest;
        v->chan.write_guest = h->ops.write_guest;
        v->chan.guest_ctx = h->cfg.ctx;
        v->chan.priv = h->tp.priv_size ? base + l.priv_off : NULL;
        v->slots = (struct apf__slot *)(void *)(base + l.slots_off);
        for (uint32_t s = 0; s < h->limit; s++)
            v->slots[s].index = (uint16_t)s;
        v->wake_all.index = APF__WAKE_ALL_INDEX;
        v->wake_all.token = APF_TOKEN_WAKE_ALL;
        apf__tokens_init(&v->tokens, (uint16_t *)(void *)(base + l.ring_off), h->limit, i);
        apf__map_init(&v->dedup, (struct apf__map_entry *)(void *)(base + l.dedup_off),
                      l.dedup_cap);
    }

    h->mem_total = sizeof(*h) + vcpus_size + h->storage_size;
    h->mem_per_vcpu = sizeof(struct apf__vcpu) + l.per_vcpu;
    *out = h;
    return 0;

enomem:
    apf__free(h, h->storage, h->storage_size);
    apf__free(h, h->vcpus, vcpus_size);
    apf__free(&boot, h, sizeof(*h));
    return APF_ENOMEM;
}

void apf__host_destroy(struct apf_host *h)
{
    struct apf_host boot = {.alloc = h->alloc};
    apf__free(h, h->storage, h->storage_size);
    apf__free(h, h->vcpus, sizeof(struct apf__vcpu) * h->n_vcpus);
    apf__free(&boot, h, sizeof(*h));
}

/* ---- queries ------------------------------------------------------------------------------- */

int apf_host_vcpu_stats(const struct apf_host *h, uint32_t vcpu, struct apf_host_vcpu_stats *out)
{
    const struct apf__vcpu *v = apf__vcpu_get(h, vcpu);
    if (v == NULL || out == NULL)
        return APF_EINVAL;
    const struct apf__stats *s = &v->stats;
    apf__memzero(out, sizeof(*out));
    out->faults_async = apf_load_relaxed(&s->faults_async);
    out->faults_sync = apf_load_relaxed(&s->faults_sync);
    out->faults_halt = apf_load_relaxed(&s->faults_halt);
    out->faults_dedup = apf_load_relaxed(&s->faults_dedup);
    out->ready_delivered = apf_load_relaxed(&s->ready_delivered);
    out->wake_all_delivered = apf_load_relaxed(&s->wake_all_delivered);
    out->acks = apf_load_relaxed(&s->acks);
    out->acks_spurious = apf_load_relaxed(&s->acks_spurious);
    out->completions = apf_load_relaxed(&s->completions);
    out->completions_dropped = apf_load_relaxed(&s->completions_dropped);
    out->resolve_failures = apf_load_relaxed(&s->resolve_failures);
    out->kicks = apf_load_relaxed(&v->kicks);
    out->outstanding = apf_load_relaxed(&s->outstanding);
    out->outstanding_hwm = apf_load_relaxed(&s->outstanding_hwm);
    out->ready_queue = apf_load_relaxed(&s->ready_queue);
    out->ready_queue_hwm = apf_load_relaxed(&s->ready_queue_hwm);
    out->notifications = apf_load_relaxed(&s->notifications);
    out->ready_batches = apf_load_relaxed(&s->ready_batches);
    out->bad_guest_values = apf_load_relaxed(&s->bad_guest_values);
    return 0;
}

int apf_host_vcpu_enabled(const struct apf_host *h, uint32_t vcpu)
{
    const struct apf__vcpu *v = apf__vcpu_get(h, vcpu);
    if (v == NULL)
        return APF_EINVAL;
    return v->chan.enabled ? 1 : 0;
}

size_t apf_host_memory(const struct apf_host *h, size_t *per_vcpu)
{
    if (h == NULL) {
        if (per_vcpu)
            *per_vcpu = 0;
        return 0;
    }
    if (per_vcpu)
        *per_vcpu = h->mem_per_vcpu;
    return h->mem_total;
}

uint32_t apf_host_vcpu_count(const struct apf_host *h)
{
    return h ? h->n_vcpus : 0;
}

uint32_t apf_host_max_outstanding(const struct apf_host *h)
{
    return h ? h->limit : 0;
}

/* ---- what the engine gives transports (apf/host_transport.h) -------------------------------- */

struct apf_host_chan *apf_host_chan_get(struct apf_host *h, uint32_t vcpu)
{
    struct apf__vcpu *v = apf__vcpu_get(h, vcpu);
    return v ? &v->chan : NULL;
}

const struct apf_host_transport_ops *apf_host_transport(const struct apf_host *h, void **tctx)
{
    if (h == NULL)
        return NULL;
    if (tctx)
        *tctx = h->tctx;
    return h->cfg.transport;
}

void apf_host_chan_released(struct apf_host_chan *c, uint32_t n)
{
    struct apf__vcpu *v = apf__vcpu_of(c);
    apf_counter_inc(&v->stats.acks);
    apf__trace(v, APF_TRACE_HOST_ACK, 0, 0, (int32_t)n);
}

void apf_host_chan_bad_value(struct apf_host_chan *c)
{
    apf_counter_inc(&apf__vcpu_of(c)->stats.bad_guest_values);
}

void *apf_host_zalloc(struct apf_host *h, size_t size)
{
    return h ? apf__zalloc(h, size) : NULL;
}

void apf_host_free(struct apf_host *h, void *p, size_t size)
{
    if (h)
        apf__free(h, p, size);
}

int apf_host_allocator(const struct apf_host *h, struct apf_allocator *out)
{
    if (h == NULL || out == NULL)
        return APF_EINVAL;
    *out = h->alloc;
    return 0;
}

int apf_host_vcpu_enable_check(struct apf_host *h, uint32_t vcpu, uint64_t area_gpa,
                               uint32_t flags, uint32_t vector)
{
    const struct apf__vcpu *v = apf__vcpu_get(h, vcpu);
    if (v == NULL)
        return APF_EINVAL;
    return apf__vcpu_enable_check(v, area_gpa, flags, vector);
}

#ifndef APF_HOST_HOSTED
/* The freestanding core: no defaults, no workers (hosted.c has the hosted versions). */
int apf_host_create(const struct apf_host_config *cfg, struct apf_host **out)
{
    return apf__host_create(cfg, NULL, NULL, out);
}

void apf_host_destroy(struct apf_host *h)
{
    if (h)
        apf__host_destroy(h);
}
#endif
