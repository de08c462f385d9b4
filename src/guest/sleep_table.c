/* SPDX-License-Identifier: MIT */
/*
 * The sleep table: tasks waiting for tokens, in hashed buckets with their own
 * interrupt-safe locks. A waiter's node lives on its own stack; being woken means being
 * unlinked from the bucket (under its lock) and then marked woken.
 *
 * Rule (wake before wait; reference "The guest's sleep table", Linux kvm.c
 * kvm_async_pf_task_wake): a "page ready" can reach the table before the task that is
 * about to sleep on its token. The waker then leaves a placeholder; the late waiter finds
 * it, removes it and does not sleep. Placeholders come from a bounded pool preallocated at
 * init (Linux allocates them from the heap, and its wake-all unlinks them without freeing:
 * a leak); a wake-all of a CPU returns that CPU's placeholders to the pool.
 */
#include "guest/runtime.h"
#include "proto/div64.h"

static inline struct apf__bucket *bucket_of(struct apf_guest *g, uint32_t token)
{
    /* Multiplicative hashing: KVM tokens differ in their high bits (seq << 12). */
    return &g->buckets[(uint32_t)(token * 0x9e3779b1u) >> g->bucket_shift & g->bucket_mask];
}

static inline uintptr_t blk(struct apf_guest *g, struct apf_guest_lock *l)
{
    return g->cfg.env->lock(g->cfg.env_ctx, l);
}

static inline void bunlk(struct apf_guest *g, struct apf_guest_lock *l, uintptr_t f)
{
    g->cfg.env->unlock(g->cfg.env_ctx, l, f);
}

/* Shares the pool out among the CPUs in contiguous runs (CPU c owns nodes
 * [c * n / n_cpus, (c + 1) * n / n_cpus)), so that no lock and no cache line is shared by
 * the CPUs on the "page ready" path. */
void apf__st_init(struct apf_guest *g)
{
    uint64_t n = g->cfg.n_placeholders, ncpu = g->cfg.n_cpus;
    for (uint32_t c = 0; c < g->cfg.n_cpus; c++)
        g->cpus[c].pool_free = NULL;
    for (uint32_t i = g->cfg.n_placeholders; i-- > 0;) {
        uint32_t cpu = (uint32_t)apf__udiv64((uint64_t)i * ncpu, n);
        struct apf__gcpu *owner = &g->cpus[cpu];
        g->pool[i].cpu = cpu;
        g->pool[i].next = owner->pool_free;
        owner->pool_free = &g->pool[i];
    }
}

/* A placeholder from `cpu`'s share. Called with a bucket lock held (lock order: bucket,
 * then pool). */
static struct apf_guest_waiter *pool_get(struct apf_guest *g, uint32_t cpu)
{
    struct apf__gcpu *c = &g->cpus[cpu];
    uintptr_t f = blk(g, &c->pool_lock);
    struct apf_guest_waiter *p = c->pool_free;
    if (p)
        c->pool_free = p->next;
    bunlk(g, &c->pool_lock, f);
    return p;
}

/* Back to the share of the CPU that made it (p->cpu). */
static void pool_put(struct apf_guest *g, struct apf_guest_waiter *p)
{
    struct apf__gcpu *c = &g->cpus[p->cpu];
    atomic_fetch_sub_explicit(&c->stats.placeholders_in_use, 1, memory_order_relaxed);
    uintptr_t f = blk(g, &c->pool_lock);
    p->next = c->pool_free;
    c->pool_free = p;
    bunlk(g, &c->pool_lock, f);
}

/*
 * Rule (pool exhaustion: never lose a wake-up). When the waking CPU has no placeholder
 * left in its share of the pool, apf__st_wake cannot record the token; it bumps
 * g->lost_epoch instead. The task that owns the lost token is, at that moment, between
 * taking "not present" and reaching this table (that is the only way a "page ready" can
 * beat its waiter). So a waiter compares lost_epoch with a reference epoch fixed when its
 * exception began (apf_guest_on_exception): the smaller of
 *   - the epoch read at that moment: any loss after it may be its own token, however many
 *     other entry points complete before it reaches the table; and
 *   - the epoch this CPU had seen through then (seen_epoch: every entry point records,
 *     when it completes, the epoch it read when it began): a loss that happened on this
 *     CPU after the "not present" but before the handler ran (an interrupt taken first).
 * If lost_epoch is beyond the reference, the waiter does not sleep but returns at once and
 * the task retries its access. That is always safe (the page is present, or the host halts
 * the vCPU on the frame still in flight) and costs at most one retry per waiter in the
 * window of a loss. Nothing is lost and no memory is needed.
 * A wake-all of the waiter's CPU in the same window answers its token as well (a host may
 * send no "page ready" for it any more: libapf-host does not): the waiter compares the
 * CPU's wake_all_gen with the value at its exception and does not sleep either.
 * Called with the waiter's bucket lock held: the waker bumps the epoch under the same
 * lock, so the owner of a token lost in this bucket always sees it.
 */
static bool apf__st_must_not_sleep(struct apf_guest *g, uint32_t cpu,
                                   const struct apf__window *win)
{
    return apf_load_relaxed(&g->lost_epoch) > win->ref_epoch ||
           apf_load_relaxed(&g->cpus[cpu].wake_all_gen) != win->wake_all_gen;
}

static inline void wake_one(struct apf_guest *g, uint32_t by_cpu, struct apf_guest_waiter *w)
{
    /* Copy what the env needs: once `woken` is set the waiter may return and its stack
     * frame (where w lives) may be gone. */
    void *task = w->task;
    uint32_t cpu = w->cpu;
    int halted = (int)w->halted;
    atomic_fetch_sub_explicit(&g->cpus[cpu].stats.waiting, 1, memory_order_relaxed);
    atomic_store_explicit((_Atomic uint32_t *)&w->woken, 1, memory_order_release);
    apf_counter_inc(&g->cpus[by_cpu].stats.woken);
    g->cfg.env->wake(g->cfg.env_ctx, task, cpu, halted);
}

void apf__st_wait(struct apf_guest *g, uint32_t cpu, uint32_t token,
                  const struct apf__window *win)
{
    const struct apf_guest_env_ops *env = g->cfg.env;
    struct apf__gstats *st = &g->cpus[cpu].stats;
    struct apf_guest_waiter w = {0};
    w.token = token;
    w.cpu = cpu;
    w.task = env->current_task(g->cfg.env_ctx);
    w.halted = env->can_sleep(g->cfg.env_ctx) ? 0u : 1u;

    struct apf__bucket *b = bucket_of(g, token);
    uintptr_t f = blk(g, &b->lock);
    for (struct apf_guest_waiter **pp = &b->head; *pp; pp = &(*pp)->next) {
        struct apf_guest_waiter *p = *pp;
        if (p->placeholder && p->token == token) {
            *pp = p->next; /* the "page ready" came first: consume it, do not sleep */
            pool_put(g, p);
            bunlk(g, &b->lock, f);
            apf_counter_inc(&st->placeholder_hits);
            return;
        }
    }
    if (apf__st_must_not_sleep(g, cpu, win)) {
        bunlk(g, &b->lock, f);
        apf_counter_inc(&st->retries);
        return;
    }
    w.next = b->head;
    b->head = &w;
    atomic_fetch_add_explicit(&st->waiting, 1, memory_order_relaxed);
    bunlk(g, &b->lock, f);

    apf__gtrace(g, APF_TRACE_GUEST_SLEEP, cpu, token, (int32_t)w.halted);
    if (!w.halted) {
        apf_counter_inc(&st->slept);
        env->sleep(g->cfg.env_ctx, &w);
    } else {
        /* Cannot schedule: halt this CPU until the token's "page ready" (an interrupt
         * on this CPU, or another CPU's wake) marks us woken. */
        apf_counter_inc(&st->halted);
        while (!apf_guest_waiter_woken(&w))
            env->halt(g->cfg.env_ctx);
    }
}

uint32_t apf__st_wake(struct apf_guest *g, uint32_t cpu, uint32_t token)
{
    struct apf__gstats *st = &g->cpus[cpu].stats;
    struct apf__bucket *b = bucket_of(g, token);
    uint32_t woken = 0;
    bool have_placeholder = false, lost = false;
    uintptr_t f = blk(g, &b->lock);
    for (struct apf_guest_waiter **pp = &b->head; *pp;) {
        struct apf_guest_waiter *p = *pp;
        if (p->token != token) {
            pp = &p->next;
        } else if (p->placeholder) {
            have_placeholder = true; /* a repeated "page ready": keep the one we have */
            pp = &p->next;
        } else {
            *pp = p->next; /* a repeated "not present" token: wake every waiter on it */
            wake_one(g, cpu, p);
            woken++;
        }
    }
    if (woken == 0 && !have_placeholder) {
        struct apf_guest_waiter *p = pool_get(g, cpu);
        if (p) {
            p->token = token;
            p->task = 0;
            p->halted = 0;
            p->placeholder = 1;
            p->next = b->head;
            b->head = p;
            apf_counter_inc(&st->placeholders);
            atomic_fetch_add_explicit(&st->placeholders_in_use, 1, memory_order_relaxed);
        } else {
            atomic_fetch_add_explicit(&g->lost_epoch, 1, memory_order_relaxed);
            apf_counter_inc(&st->lost_wakeups);
            lost = true;
        }
    }
    bunlk(g, &b->lock, f);
    if (lost)
        apf__glog(g, 1, "placeholder pool empty, waiters retry instead; token", cpu, token);
    return woken;
}

/*
 * Rule (wake-all; reference "Wake-all", Linux apf_task_wake_all): the broadcast token
 * wakes every task waiting on this CPU, and this CPU's placeholders go back to the pool
 * (their tokens are void after the broadcast). Also used by apf_guest_cpu_offline().
 * A placeholder is a "page ready" already taken; it belongs to the pool of the CPU that
 * took it, which is not always its waiter's: an s390 completion floats to any CPU. Freeing
 * one therefore drops a wake-up some other CPU's waiter may still be on its way to (between
 * its "not present" and this table): bump the lost-wake-up epoch, under the bucket lock as
 * apf__st_wake does, so that such a waiter retries instead of sleeping (see
 * apf__st_must_not_sleep).
 */
uint32_t apf__st_wake_cpu(struct apf_guest *g, uint32_t cpu)
{
    /* Nothing of this CPU in the table: skip the walk over every bucket. Exact, because only
     * this CPU adds its waiters (apf__st_wait) and its placeholders (apf__st_wake), and we
     * are on this CPU now. */
    /* A waiter of this CPU still on its way to the table (its "not present" came before
     * this broadcast) must not sleep: a "page ready" may never follow for its token. */
    atomic_fetch_add_explicit(&g->cpus[cpu].wake_all_gen, 1, memory_order_relaxed);
    const struct apf__gstats *st = &g->cpus[cpu].stats;
    if (apf_load_relaxed(&st->waiting) == 0 && apf_load_relaxed(&st->placeholders_in_use) == 0)
        return 0;
    uint32_t woken = 0;
    for (uint32_t i = 0; i <= g->bucket_mask; i++) {
        struct apf__bucket *b = &g->buckets[i];
        uintptr_t f = blk(g, &b->lock);
        for (struct apf_guest_waiter **pp = &b->head; *pp;) {
            struct apf_guest_waiter *p = *pp;
            if (p->cpu != cpu) {
                pp = &p->next;
                continue;
            }
            *pp = p->next;
            if (p->placeholder) {
                atomic_fetch_add_explicit(&g->lost_epoch, 1, memory_order_relaxed);
                pool_put(g, p);
            } else {
                wake_one(g, cpu, p);
                woken++;
            }
        }
        bunlk(g, &b->lock, f);
    }
    return woken;
}
