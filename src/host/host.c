/* SPDX-License-Identifier: MIT */
/* libapf-host: engine creation and teardown, shared helpers, statistics. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host/engine.h"

_Noreturn void apf__bug(const char *file, int line, const char *what)
{
    fprintf(stderr, "libapf-host: internal invariant broken at %s:%d: %s\n", file, line, what);
    abort();
}

/* ---- allocation -------------------------------------------------------------------------- */

static void *default_alloc(void *ctx, size_t size, size_t align)
{
    (void)ctx;
    void *p = NULL;
    if (align < sizeof(void *))
        align = sizeof(void *);
    return posix_memalign(&p, align, size) == 0 ? p : NULL;
}

static void default_free(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    (void)size;
    free(ptr);
}

static const struct apf_allocator default_allocator = {default_alloc, default_free, NULL};

/* ---- helpers ------------------------------------------------------------------------------ */

void *apf__zalloc(const struct apf_host *h, size_t size)
{
    void *p = h->alloc.alloc(h->alloc.ctx, size, 64);
    if (p)
        memset(p, 0, size);
    return p;
}

void apf__free(const struct apf_host *h, void *p, size_t size)
{
    if (p)
        h->alloc.free(h->alloc.ctx, p, size);
}

struct apf__vcpu *apf__vcpu_get(const struct apf_host *h, uint32_t id)
{
    if (h == NULL || id >= h->n_vcpus)
        return NULL;
    return &h->vcpus[id];
}

void apf__trace(const struct apf__vcpu *v, uint32_t kind, uint32_t token, uint64_t gpa,
                int32_t arg)
{
    const struct apf_host *h = v->host;
    if (h->cfg.trace == NULL)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    struct apf_trace_event ev = {
        .time_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec,
        .gpa = gpa,
        .vcpu = v->id,
        .token = token,
        .kind = kind,
        .arg = arg,
    };
    h->cfg.trace(h->cfg.trace_ctx, &ev);
}

void apf__stat_max(_Atomic uint32_t *hwm, uint32_t value)
{
    if (value > apf_load_relaxed(hwm))
        apf_store_relaxed(hwm, value);
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
    uint32_t cap;        /* token ring capacity */
    uint32_t dedup_cap;  /* dedup entries */
    size_t slots_off, ring_off, dedup_off, per_vcpu;
};

static size_t align_up(size_t n, size_t a)
{
    return (n + a - 1) & ~(a - 1);
}

static struct layout layout_of(uint32_t limit)
{
    struct layout l;
    l.cap = apf__pow2_ceil(limit);
    l.dedup_cap = 2 * l.cap;
    l.slots_off = 0;
    l.dedup_off = align_up(sizeof(struct apf__slot) * limit, 64);
    l.ring_off = l.dedup_off + align_up(sizeof(struct apf__map_entry) * l.dedup_cap, 64);
    l.per_vcpu = l.ring_off + align_up(sizeof(uint16_t) * l.cap, 64);
    return l;
}

static int config_check(const struct apf_host_config *cfg)
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
    if (cfg->abi != APF_HOST_ABI_KVM_X86 && cfg->abi != APF_HOST_ABI_ARM64)
        return APF_EINVAL;
    if (cfg->fallback != APF_HOST_FALLBACK_HALT && cfg->fallback != APF_HOST_FALLBACK_SYNC)
        return APF_EINVAL;
    if (cfg->page_shift != 0 && (cfg->page_shift < 12 || cfg->page_shift > 30))
        return APF_EINVAL;
    if (cfg->worker_spin_ns > 1000000)
        return APF_EINVAL;
    if (!o->inject_not_present || !o->inject_ready || !o->kick || !o->read_guest ||
        !o->write_guest)
        return APF_EINVAL;
    if (cfg->n_workers > 0 ? o->resolve == NULL : o->submit == NULL)
        return APF_EINVAL;
    if (cfg->alloc && (!cfg->alloc->alloc || !cfg->alloc->free))
        return APF_EINVAL;
    return 0;
}

int apf_host_create(const struct apf_host_config *cfg, struct apf_host **out)
{
    int err = config_check(cfg);
    if (err)
        return err;
    if (out == NULL)
        return APF_EINVAL;
    const struct apf_allocator *a = cfg->alloc ? cfg->alloc : &default_allocator;

    struct apf_host boot = {.alloc = *a}; /* allocates the engine itself */
    struct apf_host *h = apf__zalloc(&boot, sizeof(*h));
    if (h == NULL)
        return APF_ENOMEM;
    h->cfg = *cfg;
    h->ops = *cfg->ops;
    h->alloc = *a;
    h->n_vcpus = cfg->n_vcpus;
    h->limit = cfg->max_outstanding ? cfg->max_outstanding : APF_HOST_DEFAULT_OUTSTANDING;
    h->cfg.max_outstanding = h->limit;
    h->page_shift = cfg->page_shift ? cfg->page_shift : 12;
    h->cfg.page_shift = h->page_shift;

    size_t vcpus_size = sizeof(struct apf__vcpu) * h->n_vcpus;
    h->vcpus = apf__zalloc(h, vcpus_size);
    if (h->vcpus == NULL)
        goto enomem;

    struct layout l = layout_of(h->limit);
    h->storage_size = l.per_vcpu * h->n_vcpus;
    h->storage = apf__zalloc(h, h->storage_size);
    if (h->storage == NULL)
        goto enomem;

    for (uint32_t i = 0; i < h->n_vcpus; i++) {
        struct apf__vcpu *v = &h->vcpus[i];
        char *base = (char *)h->storage + l.per_vcpu * i;
        v->host = h;
        v->id = i;
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
    if (cfg->n_workers > 0) {
        uint32_t capacity = h->limit * h->n_vcpus;
        err = apf__pool_create(h, cfg->n_workers, capacity);
        if (err)
            goto fail;
        size_t pool_mem = apf__pool_memory(cfg->n_workers, capacity);
        h->mem_total += pool_mem;
        h->mem_per_vcpu += pool_mem / h->n_vcpus;
    }
    *out = h;
    return 0;

enomem:
    err = APF_ENOMEM;
fail:
    apf__free(h, h->storage, h->storage_size);
    apf__free(h, h->vcpus, vcpus_size);
    apf__free(&boot, h, sizeof(*h));
    return err;
}

void apf_host_destroy(struct apf_host *h)
{
    if (h == NULL)
        return;
    if (h->pool)
        apf__pool_destroy(h);
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
    return 0;
}

int apf_host_vcpu_enabled(const struct apf_host *h, uint32_t vcpu)
{
    const struct apf__vcpu *v = apf__vcpu_get(h, vcpu);
    if (v == NULL)
        return APF_EINVAL;
    return v->enabled ? 1 : 0;
}

size_t apf_host_memory(const struct apf_host *h, size_t *per_vcpu)
{
    if (per_vcpu)
        *per_vcpu = h->mem_per_vcpu;
    return h->mem_total;
}

uint32_t apf_host_vcpu_count(const struct apf_host *h)
{
    return h->n_vcpus;
}

uint32_t apf_host_max_outstanding(const struct apf_host *h)
{
    return h->limit;
}
