/* SPDX-License-Identifier: MIT */
/*
 * libapf-guest runtime: init over caller memory, CPU online/offline, and the two
 * notification entry points. Every value the host writes (reason, token, probe results)
 * is checked before it is used.
 */
#include "guest/runtime.h"

#include "proto/strbuf.h"

#define APF__DEFAULT_BUCKETS 256u
#define APF__MAX_BUCKETS 65536u
#define APF__MAX_CPUS 4096u
#define APF__MAX_PLACEHOLDERS (1u << 20)

/* ---- helpers ------------------------------------------------------------------------------ */

void apf__glog(const struct apf_guest *g, int level, const char *what, uint32_t cpu,
               uint64_t value)
{
    if (g->cfg.env->log == 0)
        return;
    char buf[128];
    struct apf__sb b = apf__sb_make(buf, sizeof(buf));
    apf__sb_str(&b, "apf: cpu ");
    apf__sb_u64(&b, cpu);
    apf__sb_str(&b, ": ");
    apf__sb_str(&b, what);
    apf__sb_char(&b, ' ');
    apf__sb_hex(&b, value);
    g->cfg.env->log(g->cfg.env_ctx, level, buf);
}

void apf__gtrace(const struct apf_guest *g, uint32_t kind, uint32_t cpu, uint32_t token,
                 int32_t arg)
{
    if (g->cfg.trace == 0)
        return;
    struct apf_trace_event ev = {0};
    ev.vcpu = cpu;
    ev.token = token;
    ev.kind = kind;
    ev.arg = arg;
    g->cfg.trace(g->cfg.trace_ctx, &ev);
}

static uintptr_t align_up(uintptr_t v, uintptr_t a)
{
    return (v + a - 1) & ~(a - 1);
}

static void zero(void *p, size_t n)
{
    unsigned char *c = p;
    while (n--)
        *c++ = 0;
}

/* ---- init ----------------------------------------------------------------------------------- */

struct layout {
    uint32_t n_buckets, n_placeholders;
    size_t cpus_off, buckets_off, pool_off, size;
};

static int layout_of(const struct apf_guest_config *cfg, struct layout *l)
{
    if (cfg == 0 || cfg->env == 0 || cfg->backend == 0)
        return APF_EINVAL;
    const struct apf_guest_env_ops *e = cfg->env;
    if (!e->current_task || !e->cpu_id || !e->can_sleep || !e->sleep || !e->wake || !e->halt ||
        !e->lock || !e->unlock || !e->virt_to_phys)
        return APF_EINVAL;
    const struct apf_guest_backend_ops *be = cfg->backend;
    if (!be->capabilities || !be->probe || !be->enable || !be->disable || !be->ack)
        return APF_EINVAL;
    if (cfg->n_cpus == 0 || cfg->n_cpus > APF__MAX_CPUS)
        return APF_EINVAL;
    if (cfg->flags & ~(uint32_t)(APF_GUEST_NO_APF | APF_GUEST_SEND_ALWAYS))
        return APF_EINVAL;
    l->n_buckets = cfg->n_buckets ? cfg->n_buckets : APF__DEFAULT_BUCKETS;
    if (l->n_buckets > APF__MAX_BUCKETS || (l->n_buckets & (l->n_buckets - 1)))
        return APF_EINVAL;
    l->n_placeholders = cfg->n_placeholders ? cfg->n_placeholders : 2 * cfg->n_cpus + 16;
    if (l->n_placeholders > APF__MAX_PLACEHOLDERS)
        return APF_EINVAL;
    l->cpus_off = align_up(sizeof(struct apf_guest), 64);
    l->buckets_off = align_up(l->cpus_off + sizeof(struct apf__gcpu) * cfg->n_cpus, 64);
    l->pool_off = align_up(l->buckets_off + sizeof(struct apf__bucket) * l->n_buckets, 64);
    l->size = l->pool_off + sizeof(struct apf_guest_waiter) * l->n_placeholders;
    return 0;
}

size_t apf_guest_mem_size(const struct apf_guest_config *cfg)
{
    struct layout l;
    if (layout_of(cfg, &l) != 0)
        return 0;
    return l.size + 63; /* room to align the start */
}

/* Probe results are host-written: check them before use. */
static int check_info(const struct apf_guest_backend_info *info, uint32_t caps)
{
    if (info->slots == 0 || info->slots > 4096)
        return APF_EPROTO;
    if ((info->version >> 16) != APF_PROTO_VERSION_MAJOR)
        return APF_EPROTO;
    if (caps & APF_BACKEND_CAP_HOST_VECTOR) {
        if (info->irq < APF_ARM64_PPI_MIN || info->irq > APF_ARM64_PPI_MAX)
            return APF_EPROTO;
    }
    return 0;
}

int apf_guest_init(void *mem, size_t size, const struct apf_guest_config *cfg,
                   struct apf_guest **out)
{
    struct layout l;
    int err = layout_of(cfg, &l);
    if (err)
        return err;
    if (mem == 0 || out == 0)
        return APF_EINVAL;
    uintptr_t base = align_up((uintptr_t)mem, 64);
    if (size < l.size + (base - (uintptr_t)mem))
        return APF_ENOSPC;
    zero((void *)base, l.size);

    struct apf_guest *g = (struct apf_guest *)base;
    g->cfg = *cfg;
    g->cfg.n_buckets = l.n_buckets;
    g->cfg.n_placeholders = l.n_placeholders;
    g->cpus = (struct apf__gcpu *)(base + l.cpus_off);
    g->buckets = (struct apf__bucket *)(base + l.buckets_off);
    g->pool = (struct apf_guest_waiter *)(base + l.pool_off);
    g->bucket_mask = l.n_buckets - 1;
    uint32_t bits = 0;
    while ((1u << bits) < l.n_buckets)
        bits++;
    g->bucket_shift = 32 - bits;
    if (bits == 0)
        g->bucket_shift = 31; /* one bucket: the mask makes any shift land on 0 */
    apf__st_init(g);

    g->caps = cfg->backend->capabilities(cfg->backend_ctx);
    if (cfg->flags & APF_GUEST_NO_APF) {
        g->available = APF_ECANCELED;
    } else {
        err = cfg->backend->probe(cfg->backend_ctx, &g->info);
        if (err == 0)
            err = check_info(&g->info, g->caps);
        if (err == 0) {
            if (g->caps & APF_BACKEND_CAP_HOST_VECTOR)
                g->vector = g->info.irq;
            else if (cfg->vector >= APF_X86_FIRST_EXTERNAL_VECTOR && cfg->vector <= 0xff)
                g->vector = cfg->vector;
            else
                err = APF_EINVAL; /* the kernel did not choose a valid vector */
        }
        g->available = err ? err : 1;
        if (err)
            apf__glog(g, 2, "APF not available, error", 0, (uint64_t)(int64_t)err);
    }
    *out = g;
    return 0;
}

int apf_guest_available(const struct apf_guest *g)
{
    return g->available;
}

uint32_t apf_guest_vector(const struct apf_guest *g)
{
    return g->available == 1 ? g->vector : 0;
}

/* ---- CPUs ------------------------------------------------------------------------------------ */

int apf_guest_cpu_online(struct apf_guest *g, uint32_t cpu)
{
    if (cpu >= g->cfg.n_cpus)
        return APF_EINVAL;
    if (g->available != 1)
        return APF_EOPNOTSUPP;
    struct apf__gcpu *c = &g->cpus[cpu];
    if (apf_load_relaxed(&c->enabled))
        return APF_EALREADY;
    apf_store_relaxed(&c->area.flags, 0);
    apf_store_relaxed(&c->area.token, 0);
    uint64_t pa = g->cfg.env->virt_to_phys(g->cfg.env_ctx, &c->area);
    uint32_t flags = 0;
    if ((g->cfg.flags & APF_GUEST_SEND_ALWAYS) && (g->caps & APF_BACKEND_CAP_SEND_ALWAYS))
        flags |= APF_EN_SEND_ALWAYS;
    /* enabled first: a wake-all may arrive as soon as the host has the area */
    apf_store_relaxed(&c->enabled, 1);
    int err = g->cfg.backend->enable(g->cfg.backend_ctx, cpu, pa, g->vector, flags);
    if (err) {
        apf_store_relaxed(&c->enabled, 0);
        apf__glog(g, 1, "host refused to enable APF, error", cpu, (uint64_t)(int64_t)err);
        return err;
    }
    apf__gtrace(g, APF_TRACE_GUEST_ENABLE, cpu, 0, (int32_t)flags);
    return 0;
}

/*
 * Rule (CPU offline; reference "Disable, reset, CPU offline"): disable APF on this CPU
 * through the backend first (no new "not present" can arrive), then wake every local
 * sleeper so it retries its access, and free this CPU's placeholders.
 */
int apf_guest_cpu_offline(struct apf_guest *g, uint32_t cpu)
{
    if (cpu >= g->cfg.n_cpus)
        return APF_EINVAL;
    struct apf__gcpu *c = &g->cpus[cpu];
    if (!apf_load_relaxed(&c->enabled))
        return 0;
    int err = g->cfg.backend->disable(g->cfg.backend_ctx, cpu);
    if (err)
        apf__glog(g, 1, "disable failed (waking sleepers anyway), error", cpu,
                  (uint64_t)(int64_t)err);
    apf_store_relaxed(&c->enabled, 0);
    uint32_t woken = apf__st_wake_cpu(g, cpu);
    apf__gtrace(g, APF_TRACE_GUEST_DISABLE, cpu, 0, (int32_t)woken);
    return (int)woken;
}

/* An entry point that began at lost-epoch `e0` has completed on `c` (see sleep_table.c). */
static inline void entry_done(struct apf__gcpu *c, uint64_t e0)
{
    if (e0 > c->seen_epoch)
        c->seen_epoch = e0;
}

/* ---- "not present" ----------------------------------------------------------------------------- */

int apf_guest_on_exception(struct apf_guest *g, uint32_t cpu, uint32_t token_hint)
{
    if (cpu >= g->cfg.n_cpus)
        return APF_EINVAL;
    struct apf__gcpu *c = &g->cpus[cpu];
    if (!apf_load_relaxed(&c->enabled))
        return 0;
    uint64_t e0 = apf_load_relaxed(&g->lost_epoch);
    /* The waiter's reference epoch (sleep_table.c): a loss after this point, or one this
     * CPU had not seen through before this exception, makes it retry instead of sleeping.
     * Taken here, not when it reaches the table, so entry points that complete in between
     * cannot hide a loss. */
    struct apf__window win = {.ref_epoch = e0 < c->seen_epoch ? e0 : c->seen_epoch,
                              .wake_all_gen = apf_load_relaxed(&c->wake_all_gen)};
    uint32_t reason = apf_load_relaxed(&c->area.flags);
    if (reason == APF_REASON_NONE)
        return 0; /* a genuine fault: the kernel's own handler takes it */

    bool in_area = (g->caps & APF_BACKEND_CAP_TOKEN_IN_AREA) != 0;
    if (in_area && reason == APF_REASON_READY) {
        /* arm64: a "page ready" waiting for its interrupt, not ours to consume: clearing it
         * would leave the host waiting for an ACK for ever. Leave it; retry the access. */
        apf_counter_inc(&c->stats.bad_host_values);
        apf__glog(g, 1, "not-present event with a page ready in the area, left:", cpu, reason);
        entry_done(c, e0);
        return 1;
    }
    uint32_t token = in_area ? apf_load_relaxed(&c->area.token) : token_hint;
    /* Reset the reason (and, where it carries it, the token) so a real fault can follow. */
    apf_store_relaxed(&c->area.flags, 0);
    if (in_area)
        apf_store_relaxed(&c->area.token, 0);

    if (reason != APF_REASON_NOT_PRESENT) {
        apf_counter_inc(&c->stats.bad_host_values);
        apf__glog(g, 1, "unexpected reason from the host, cleared:", cpu, reason);
    } else if (!apf_token_is_fault(token)) {
        apf_counter_inc(&c->stats.bad_host_values);
        apf__glog(g, 1, "not present with an invalid token, ignored:", cpu, token);
    } else {
        apf_counter_inc(&c->stats.not_present);
        apf__gtrace(g, APF_TRACE_GUEST_NOT_PRESENT, cpu, token, 0);
        apf__st_wait(g, cpu, token, &win);
    }
    entry_done(c, e0);
    return 1;
}

/* ---- "page ready" --------------------------------------------------------------------------------- */

/*
 * Rule (the order on "page ready"; Linux kvm_async_pf_intr, msr.rst ASYNC_PF_ACK): read the
 * token, wake its sleeper(s), clear the token (the slot is free again), then ACK so the
 * host may put the next token in. Clearing before waking could let the next token in while
 * this one is still being handled; ACKing before clearing would let the host see a busy
 * slot and wait for an ACK that never comes.
 */
int apf_guest_on_interrupt(struct apf_guest *g, uint32_t cpu)
{
    if (cpu >= g->cfg.n_cpus)
        return APF_EINVAL;
    struct apf__gcpu *c = &g->cpus[cpu];
    if (!apf_load_relaxed(&c->enabled)) {
        apf_counter_inc(&c->stats.spurious);
        return 0;
    }
    uint64_t e0 = apf_load_relaxed(&g->lost_epoch);
    bool in_area = (g->caps & APF_BACKEND_CAP_TOKEN_IN_AREA) != 0;
    uint32_t token = apf_load_relaxed(&c->area.token);
    if (token == APF_TOKEN_INVALID) {
        apf_counter_inc(&c->stats.spurious);
        entry_done(c, e0);
        return 0;
    }
    uint32_t woken = 0;
    uint32_t reason = in_area ? apf_load_relaxed(&c->area.flags) : APF_REASON_READY;
    if (reason == APF_REASON_NOT_PRESENT) {
        /* arm64: a "not present" whose event has not been handled yet, not ours to consume:
         * leave it for apf_guest_on_exception() and do not ACK (no "page ready" to free). */
        apf_counter_inc(&c->stats.spurious);
        entry_done(c, e0);
        return 0;
    }
    apf__gtrace(g, APF_TRACE_GUEST_READY, cpu, token, 0);
    if (reason != APF_REASON_READY) {
        apf_counter_inc(&c->stats.bad_host_values);
        apf__glog(g, 1, "page ready with an unexpected reason, dropped:", cpu, reason);
    } else if (token == APF_TOKEN_WAKE_ALL) {
        apf_counter_inc(&c->stats.wake_all);
        woken = apf__st_wake_cpu(g, cpu);
    } else {
        apf_counter_inc(&c->stats.ready);
        woken = apf__st_wake(g, cpu, token);
    }
    apf__gtrace(g, APF_TRACE_GUEST_WAKE, cpu, token, (int32_t)woken);
    if (in_area)
        apf_store_relaxed(&c->area.flags, 0);
    apf_store_release(&c->area.token, 0);
    int err = g->cfg.backend->ack(g->cfg.backend_ctx, cpu);
    if (err)
        apf__glog(g, 1, "ACK failed, error", cpu, (uint64_t)(int64_t)err);
    else
        apf_counter_inc(&c->stats.acks);
    apf__gtrace(g, APF_TRACE_GUEST_ACK, cpu, token, err);
    entry_done(c, e0);
    return (int)woken;
}

/* ---- queries -------------------------------------------------------------------------------------- */

int apf_guest_stats(const struct apf_guest *g, uint32_t cpu, struct apf_guest_stats *out)
{
    if (cpu >= g->cfg.n_cpus || out == 0)
        return APF_EINVAL;
    const struct apf__gstats *s = &g->cpus[cpu].stats;
    out->not_present = apf_load_relaxed(&s->not_present);
    out->slept = apf_load_relaxed(&s->slept);
    out->halted = apf_load_relaxed(&s->halted);
    out->placeholder_hits = apf_load_relaxed(&s->placeholder_hits);
    out->retries = apf_load_relaxed(&s->retries);
    out->ready = apf_load_relaxed(&s->ready);
    out->wake_all = apf_load_relaxed(&s->wake_all);
    out->woken = apf_load_relaxed(&s->woken);
    out->placeholders = apf_load_relaxed(&s->placeholders);
    out->lost_wakeups = apf_load_relaxed(&s->lost_wakeups);
    out->spurious = apf_load_relaxed(&s->spurious);
    out->bad_host_values = apf_load_relaxed(&s->bad_host_values);
    out->acks = apf_load_relaxed(&s->acks);
    out->placeholders_in_use = apf_load_relaxed(&s->placeholders_in_use);
    out->waiting = apf_load_relaxed(&s->waiting);
    out->enabled = apf_load_relaxed(&g->cpus[cpu].enabled);
    return 0;
}

const struct apf_shared_area *apf_guest_area(const struct apf_guest *g, uint32_t cpu)
{
    if (cpu >= g->cfg.n_cpus)
        return 0;
    return (const struct apf_shared_area *)(const void *)&g->cpus[cpu].area;
}

int apf_guest_waiter_woken(const struct apf_guest_waiter *w)
{
    return atomic_load_explicit((_Atomic uint32_t *)(uintptr_t)&w->woken,
                                memory_order_acquire) != 0;
}

void *apf_guest_waiter_task(const struct apf_guest_waiter *w)
{
    return w->task;
}

uint32_t apf_guest_waiter_cpu(const struct apf_guest_waiter *w)
{
    return w->cpu;
}

int apf_guest_waiter_halted(const struct apf_guest_waiter *w)
{
    return (int)w->halted;
}

uint32_t apf_guest_waiter_token(const struct apf_guest_waiter *w)
{
    return w->token;
}
