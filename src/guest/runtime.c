/* SPDX-License-Identifier: MIT */
/*
 * libapf-guest runtime: init over caller memory, CPU online/offline, and the two
 * notification entry points. The backend owns the notification channel (its memory is
 * carved here, per CPU) and decodes it; the runtime checks every value that matters to
 * the protocol (tokens, probe results) before it is used, and keeps the order of the
 * "page ready" steps.
 */
#include "guest/runtime.h"


#define APF__DEFAULT_BUCKETS 256u
#define APF__MAX_BUCKETS 65536u
#define APF__MAX_CPUS 4096u
#define APF__MAX_PLACEHOLDERS (1u << 20)
#define APF__MAX_CHAN_ALIGN 4096u      /* largest channel alignment a backend may ask for */
#define APF__MAX_CHAN_SIZE (64u << 10) /* largest channel per CPU */
#define APF__PAGE 4096u
/* "Page ready" entries taken in one interrupt before the host is deemed faulty: a host
 * that follows the protocol owes at most its outstanding limit (<= 4096) plus wake-alls,
 * and no new "not present" can be taken on this CPU while it is in the handler. */
#define APF__READY_BUDGET 8192u

/* ---- helpers ------------------------------------------------------------------------------ */

static uintptr_t align_up(uintptr_t v, uintptr_t a)
{
    return (v + a - 1) & ~(a - 1);
}

/* No libc here: a word at a time where aligned (channels are 64-byte aligned and up to
 * 64 KiB), bytes at the edges. Left out of fuzzing coverage: every channel (re)enable runs
 * it, and instrumenting each word made it most of a fuzz target's time. */
#if defined(__clang__) && defined(__has_attribute)
#if __has_attribute(no_sanitize)
__attribute__((no_sanitize("coverage")))
#endif
#endif
static void zero(void *p, size_t n)
{
    unsigned char *c = p;
    while (n && ((uintptr_t)c & (sizeof(uint64_t) - 1))) {
        *c++ = 0;
        n--;
    }
    for (; n >= sizeof(uint64_t); n -= sizeof(uint64_t), c += sizeof(uint64_t))
        *(uint64_t *)(void *)c = 0;
    while (n--)
        *c++ = 0;
}

/* SEND_ALWAYS is asked for and the backend offers it: "not present" may come in kernel mode. */
static bool send_always(const struct apf_guest *g)
{
    return (g->cfg.flags & APF_GUEST_SEND_ALWAYS) && (g->caps & APF_BACKEND_CAP_SEND_ALWAYS);
}

/* ---- init ----------------------------------------------------------------------------------- */

struct layout {
    uint32_t n_buckets, n_placeholders;
    size_t chan_size, chan_stride, align;
    size_t cpus_off, chans_off, buckets_off, pool_off, size;
};

static bool all_zero(const uint32_t *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (w[i] != 0)
            return false;
    return true;
}

static int layout_of(const struct apf_guest_config *cfg, struct layout *l)
{
    if (cfg == 0 || cfg->env == 0 || cfg->backend == 0)
        return APF_EINVAL;
    const struct apf_guest_env_ops *e = cfg->env;
    if (!e->current_task || !e->cpu_id || !e->can_sleep || !e->sleep || !e->wake || !e->halt ||
        !e->lock || !e->unlock || !e->virt_to_phys)
        return APF_EINVAL;
    const struct apf_guest_backend_ops *be = cfg->backend;
    if (!be->capabilities || !be->probe || !be->chan_size || !be->vector_check ||
        !be->enable || !be->disable || !be->take_not_present || !be->ready_peek ||
        !be->ready_release || !be->ready_finish)
        return APF_EINVAL;
    if (cfg->n_cpus == 0 || cfg->n_cpus > APF__MAX_CPUS)
        return APF_EINVAL;
    if (cfg->flags & ~(uint32_t)(APF_GUEST_NO_APF | APF_GUEST_SEND_ALWAYS))
        return APF_EINVAL;
    if (!all_zero(cfg->reserved, sizeof(cfg->reserved) / sizeof(cfg->reserved[0])))
        return APF_EINVAL;
    l->n_buckets = cfg->n_buckets ? cfg->n_buckets : APF__DEFAULT_BUCKETS;
    if (l->n_buckets > APF__MAX_BUCKETS || (l->n_buckets & (l->n_buckets - 1)))
        return APF_EINVAL;
    l->n_placeholders = cfg->n_placeholders ? cfg->n_placeholders : 2 * cfg->n_cpus + 16;
    if (l->n_placeholders > APF__MAX_PLACEHOLDERS)
        return APF_EINVAL;
    size_t chan_align = 1;
    l->chan_size = be->chan_size(cfg->backend_ctx, &chan_align);
    if (chan_align == 0 || (chan_align & (chan_align - 1)) || chan_align > APF__MAX_CHAN_ALIGN ||
        l->chan_size > APF__MAX_CHAN_SIZE)
        return APF_EINVAL;
    l->align = chan_align > 64 ? chan_align : 64;
    l->chan_stride = align_up(l->chan_size, l->align);
    l->cpus_off = align_up(sizeof(struct apf_guest), 64);
    l->chans_off = align_up(l->cpus_off + sizeof(struct apf__gcpu) * cfg->n_cpus, l->align);
    l->buckets_off = align_up(l->chans_off + l->chan_stride * cfg->n_cpus, 64);
    l->pool_off = align_up(l->buckets_off + sizeof(struct apf__bucket) * l->n_buckets, 64);
    l->size = l->pool_off + sizeof(struct apf_guest_waiter) * l->n_placeholders;
    return 0;
}

size_t apf_guest_mem_size(const struct apf_guest_config *cfg)
{
    struct layout l;
    if (layout_of(cfg, &l) != 0)
        return 0;
    return l.size + l.align - 1; /* room to align the start */
}

/* Probe results are host-written: check them before use (the transport's own ranges, such
 * as its vectors, are the backend's: vector_check). */
static int check_info(const struct apf_guest_backend_info *info)
{
    if (info->slots == 0 || info->slots > 4096)
        return APF_EPROTO;
    if ((info->version >> 16) != APF_PROTO_VERSION_MAJOR)
        return APF_EPROTO;
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
    uintptr_t base = align_up((uintptr_t)mem, l.align);
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
    g->chan_size = l.chan_size;
    for (uint32_t i = 0; i < cfg->n_cpus; i++)
        g->cpus[i].chan = l.chan_size ? (void *)(base + l.chans_off + l.chan_stride * i) : 0;
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
            err = check_info(&g->info);
        if (err == 0) {
            /* The host's choice (checked as a host value) or the kernel's. */
            uint32_t v = (g->caps & APF_BACKEND_CAP_HOST_VECTOR) ? g->info.irq : cfg->vector;
            err = cfg->backend->vector_check(cfg->backend_ctx, v);
            if (err == 0)
                g->vector = v;
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
    if (g == 0)
        return APF_EINVAL;
    return g->available;
}

uint32_t apf_guest_vector(const struct apf_guest *g)
{
    if (g == 0)
        return 0;
    return g->available == 1 ? g->vector : 0;
}

/* ---- CPUs ------------------------------------------------------------------------------------ */

int apf_guest_cpu_online(struct apf_guest *g, uint32_t cpu)
{
    if (g == 0 || cpu >= g->cfg.n_cpus)
        return APF_EINVAL;
    if (g->available != 1)
        return APF_EOPNOTSUPP;
    struct apf__gcpu *c = &g->cpus[cpu];
    if (apf_load_relaxed(&c->enabled))
        return APF_EALREADY;
    /* A fresh channel: nothing the host wrote before (APF is off here, it writes nothing). */
    zero(c->chan, g->chan_size);
    uint64_t pa = 0;
    if (c->chan) {
        pa = g->cfg.env->virt_to_phys(g->cfg.env_ctx, c->chan);
        /* The host sees the channel as one guest-physical range: check each page. */
        uintptr_t va = (uintptr_t)c->chan;
        for (uintptr_t p = align_up(va + 1, APF__PAGE); p < va + g->chan_size; p += APF__PAGE)
            if (g->cfg.env->virt_to_phys(g->cfg.env_ctx, (const void *)p) != pa + (p - va))
                return APF_EFAULT;
    }
    uint32_t flags = 0;
    if (send_always(g))
        flags |= APF_EN_SEND_ALWAYS;
    /* enabled first: a wake-all may arrive as soon as the host has the area */
    apf_store_relaxed(&c->enabled, 1);
    int err = g->cfg.backend->enable(g->cfg.backend_ctx, cpu, c->chan, pa, g->vector, flags);
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
    if (g == 0 || cpu >= g->cfg.n_cpus)
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

/*
 * Rule (the reason is consumed only on the path that owns it; KVM's guest fix of this
 * kind): an NMI, or a kernel-mode fault while the host may not send "not present" to
 * kernel mode, is never the "not present" the host injected; reading (and clearing) the
 * reason there would steal it from the handler that is about to run.
 */
int apf_guest_on_exception_from(struct apf_guest *g, uint32_t cpu, uint32_t token_hint,
                                uint32_t from)
{
    if (g == 0 || cpu >= g->cfg.n_cpus ||
        (from & ~(uint32_t)(APF_GUEST_FROM_KERNEL | APF_GUEST_FROM_NMI)))
        return APF_EINVAL;
    if (from & APF_GUEST_FROM_NMI)
        return 0;
    if ((from & APF_GUEST_FROM_KERNEL) && !send_always(g))
        return 0;
    return apf_guest_on_exception(g, cpu, token_hint);
}

int apf_guest_on_exception(struct apf_guest *g, uint32_t cpu, uint32_t token_hint)
{
    if (g == 0 || cpu >= g->cfg.n_cpus)
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
    struct apf_guest_chan_event ev;
    int r = g->cfg.backend->take_not_present(g->cfg.backend_ctx, cpu, c->chan, token_hint, &ev);
    if (r == APF_GUEST_NP_NONE)
        return 0; /* a genuine fault: the kernel's own handler takes it */

    if (r == APF_GUEST_NP_NOT_OURS) {
        /* A "page ready" waiting for its interrupt (arm64 slot), not ours to consume:
         * clearing it would leave the host waiting for an ACK for ever. The backend left
         * it; the task retries its access. */
        apf_counter_inc(&c->stats.bad_host_values);
        apf__glog(g, 1, "not-present event with a page ready in the channel, left:", cpu,
                  ev.value);
    } else if (r != APF_GUEST_NP_EVENT) {
        apf_counter_inc(&c->stats.bad_host_values);
        apf__glog(g, 1, "unexpected reason from the host, cleared:", cpu, ev.value);
    } else if (!apf_token_is_fault(ev.token)) {
        apf_counter_inc(&c->stats.bad_host_values);
        apf__glog(g, 1, "not present with an invalid token, ignored:", cpu, ev.token);
    } else {
        apf_counter_inc(&c->stats.not_present);
        apf__gtrace(g, APF_TRACE_GUEST_NOT_PRESENT, cpu, ev.token, 0);
        apf__st_wait(g, cpu, ev.token, &win);
    }
    entry_done(c, e0);
    return 1;
}

/* ---- "page ready" --------------------------------------------------------------------------------- */

/* One "page ready" entry the backend found (trace, checks, wake). Returns waiters woken. */
static uint32_t take_ready(struct apf_guest *g, uint32_t cpu, struct apf__gcpu *c, int kind,
                           uint32_t token, uint32_t value)
{
    uint32_t woken = 0;
    apf__gtrace(g, APF_TRACE_GUEST_READY, cpu, token, 0);
    if (kind != APF_GUEST_READY_TOKEN) {
        apf_counter_inc(&c->stats.bad_host_values);
        apf__glog(g, 1, "page ready with an unexpected reason, dropped:", cpu, value);
    } else if (token == APF_TOKEN_WAKE_ALL) {
        apf_counter_inc(&c->stats.wake_all);
        woken = apf__st_wake_cpu(g, cpu);
    } else if (token == APF_TOKEN_INVALID) {
        apf_counter_inc(&c->stats.bad_host_values); /* a ring entry of 0 */
        apf__glog(g, 1, "page ready with token 0, dropped:", cpu, token);
    } else {
        apf_counter_inc(&c->stats.ready);
        woken = apf__st_wake(g, cpu, token);
    }
    apf__gtrace(g, APF_TRACE_GUEST_WAKE, cpu, token, (int32_t)woken);
    return woken;
}

/*
 * Rule (the order on "page ready"; Linux kvm_async_pf_intr, msr.rst ASYNC_PF_ACK; Xen
 * io/ring.h RING_FINAL_CHECK_FOR_RESPONSES): for each entry the backend finds, read it,
 * wake its sleeper(s), then release it (slot: clear the token; ring: advance the consumer
 * index); after the last, finish (slot: the ACK, so the host may put the next token in;
 * ring: re-arm the notification and re-check, draining again if more arrived).
 * Releasing before waking could let the next token in while this one is still being
 * handled; ACKing before releasing would let the host see a busy slot and wait for an ACK
 * that never comes. An interrupt that finds nothing (an empty slot) finishes nothing: no
 * ACK without a "page ready". For the KVM x86 slot this is exactly: read token, wake,
 * clear token, wrmsr ACK.
 */
int apf_guest_on_interrupt(struct apf_guest *g, uint32_t cpu)
{
    if (g == 0 || cpu >= g->cfg.n_cpus)
        return APF_EINVAL;
    struct apf__gcpu *c = &g->cpus[cpu];
    if (!apf_load_relaxed(&c->enabled)) {
        apf_counter_inc(&c->stats.spurious);
        return 0;
    }
    uint64_t e0 = apf_load_relaxed(&g->lost_epoch);
    const struct apf_guest_backend_ops *be = g->cfg.backend;
    void *bctx = g->cfg.backend_ctx;
    bool ring = be->ring != 0 && be->ring(bctx, c->chan) != 0;
    uint32_t woken = 0, taken = 0;
    for (;;) {
        /* Drain: peek, wake, release - until empty, or the backend must finish first. */
        uint32_t round = 0, last = 0;
        for (;;) {
            struct apf_guest_chan_event ev;
            int r = be->ready_peek(bctx, cpu, c->chan, &ev);
            if (r == APF_GUEST_READY_BAD_INDEX) {
                apf_counter_inc(&c->stats.bad_host_values);
                apf__glog(g, 1, "ready ring producer index refused:", cpu, ev.value);
                break;
            }
            if (r != APF_GUEST_READY_TOKEN && r != APF_GUEST_READY_BAD_ENTRY)
                break; /* empty, or not ours to consume (left in place) */
            if (taken + round >= APF__READY_BUDGET) {
                apf_counter_inc(&c->stats.bad_host_values);
                apf__glog(g, 1, "too many page ready in one interrupt, stopped:", cpu, taken);
                break;
            }
            woken += take_ready(g, cpu, c, r, ev.token, ev.value); /* wake before release */
            if (ring)
                apf_counter_inc(&c->stats.ring_entries);
            round++;
            last = ev.token;
            if (be->ready_release(bctx, cpu, c->chan) != 1) /* release before finish */
                break;
        }
        if (round == 0)
            break; /* nothing taken: nothing to acknowledge */
        taken += round;
        int fin = be->ready_finish(bctx, cpu, c->chan);
        if (fin < 0)
            apf__glog(g, 1, "ACK failed, error", cpu, (uint64_t)(int64_t)fin);
        else
            apf_counter_inc(&c->stats.acks);
        apf__gtrace(g, APF_TRACE_GUEST_ACK, cpu, last, fin < 0 ? fin : 0);
        if (fin != 1 || taken >= APF__READY_BUDGET)
            break; /* done; or more arrived after the re-check: drain again */
    }
    if (taken == 0)
        apf_counter_inc(&c->stats.spurious);
    else
        apf_counter_inc(&c->stats.notifications);
    entry_done(c, e0);
    return (int)woken;
}

/* ---- queries -------------------------------------------------------------------------------------- */

int apf_guest_stats(const struct apf_guest *g, uint32_t cpu, struct apf_guest_stats *out)
{
    if (g == 0 || cpu >= g->cfg.n_cpus || out == 0)
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
    out->ring_entries = apf_load_relaxed(&s->ring_entries);
    out->notifications = apf_load_relaxed(&s->notifications);
    out->placeholders_in_use = apf_load_relaxed(&s->placeholders_in_use);
    out->waiting = apf_load_relaxed(&s->waiting);
    out->enabled = apf_load_relaxed(&g->cpus[cpu].enabled);
    out->reserved0 = 0;
    for (size_t i = 0; i < sizeof(out->reserved) / sizeof(out->reserved[0]); i++)
        out->reserved[i] = 0;
    return 0;
}

const struct apf_shared_area *apf_guest_area(const struct apf_guest *g, uint32_t cpu)
{
    if (g == 0 || cpu >= g->cfg.n_cpus || g->cfg.backend->area == 0)
        return 0;
    return g->cfg.backend->area(g->cfg.backend_ctx, g->cpus[cpu].chan);
}

const struct apf_ring *apf_guest_ring(const struct apf_guest *g, uint32_t cpu)
{
    if (g == 0 || cpu >= g->cfg.n_cpus || g->cfg.backend->ring == 0)
        return 0;
    return g->cfg.backend->ring(g->cfg.backend_ctx, g->cpus[cpu].chan);
}

int apf_guest_waiter_woken(const struct apf_guest_waiter *w)
{
    if (w == 0)
        return 0;
    return atomic_load_explicit((_Atomic uint32_t *)(uintptr_t)&w->woken,
                                memory_order_acquire) != 0;
}

void *apf_guest_waiter_task(const struct apf_guest_waiter *w)
{
    return w ? w->task : 0;
}

uint32_t apf_guest_waiter_cpu(const struct apf_guest_waiter *w)
{
    return w ? w->cpu : 0;
}

int apf_guest_waiter_halted(const struct apf_guest_waiter *w)
{
    return w ? (int)w->halted : 0;
}

uint32_t apf_guest_waiter_token(const struct apf_guest_waiter *w)
{
    return w ? w->token : 0;
}
