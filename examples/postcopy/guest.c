/* SPDX-License-Identifier: MIT */
/*
 * The guest kernel of apf-postcopy: per vCPU, a scheduler of guest tasks (coroutines, a
 * hand-written context switch) that embeds libapf-guest. Tasks do the workload: each
 * access reads a page of guest memory, verifies it against the source's checksum, then
 * computes. A missing page faults on the vCPU thread (vm.c) and, with APF, the task sleeps
 * inside libapf-guest while the others run.
 *
 * Interrupts ("page ready") are taken at delivery points: in the scheduler, and every
 * microsecond or so inside a task's computation (a cheap flag check), as a real CPU takes
 * an interrupt between instructions.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"
#include "support/page.h"
#include "support/sigbus.h"

static _Thread_local struct pc_vcpu *this_vcpu;

/* ---- the environment hooks of libapf-guest ------------------------------------------------- */

static void *env_current(void *ctx)
{
    (void)ctx;
    return this_vcpu->cur;
}

static uint32_t env_cpu(void *ctx)
{
    (void)ctx;
    return this_vcpu->id;
}

static int env_can_sleep(void *ctx)
{
    (void)ctx;
    return this_vcpu->cur != NULL; /* a task may sleep; the scheduler itself may not */
}

static void rq_push(struct pc_vcpu *v, struct pc_task *t)
{
    v->rq[(v->rq_head + v->rq_n++) % v->ntasks] = t;
    t->state = TASK_RUNNABLE;
}

static struct pc_task *rq_pop(struct pc_vcpu *v)
{
    if (v->rq_n == 0)
        return NULL;
    struct pc_task *t = v->rq[v->rq_head];
    v->rq_head = (v->rq_head + 1) % v->ntasks;
    v->rq_n--;
    return t;
}

/* The task blocks: back to the scheduler until its waiter is woken. */
static void env_sleep(void *ctx, struct apf_guest_waiter *w)
{
    (void)ctx;
    struct pc_vcpu *v = this_vcpu;
    struct pc_task *t = v->cur;
    t->state = TASK_BLOCKED;
    while (!apf_guest_waiter_woken(w))
        pc_coro_switch(&t->co, &v->sched);
    t->state = TASK_RUNNING;
}

static void sample(struct pc_vcpu *v, double ready_us, double overhead_us)
{
    if (v->nsamples == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4096;
        double *a = realloc(v->ready_us, cap * sizeof(double));
        double *b = a ? realloc(v->overhead_us, cap * sizeof(double)) : NULL;
        if (a)
            v->ready_us = a;
        if (!b)
            return; /* out of memory: drop the sample, never the wake-up */
        v->overhead_us = b;
        v->cap = cap;
    }
    v->ready_us[v->nsamples] = ready_us;
    v->overhead_us[v->nsamples++] = overhead_us;
}

/* "Page ready" woke a task (interrupt context, on this vCPU's thread). */
static void env_wake(void *ctx, void *task, uint32_t cpu, int halted)
{
    (void)ctx, (void)cpu, (void)halted;
    struct pc_task *t = task;
    struct pc_vcpu *v = t->v;
    struct pc_sim *s = v->sim;
    if (t->fault_t0) {
        uint64_t now = pc_now_ns();
        t->t_wake = now;
        t->woke_idle = v->idling;
        double ready = (double)(now - t->fault_t0) / 1e3;
        double fetch = (double)atomic_load_explicit(&s->fetch_ns[t->fault_page],
                                                    memory_order_relaxed) / 1e3;
        sample(v, ready, ready - fetch);
        t->fault_t0 = 0;
    }
    if (t->state == TASK_BLOCKED)
        rq_push(v, t);
}

/* Idle polling, adaptive as KVM's halt polling: poll for a kick up to poll_ns before
 * sleeping; a wake-up that came after the poll but within the limit grows the window, one
 * beyond the limit shrinks it. Only where the layout gives the vCPU its own CPU (the poll
 * takes no CPU another thread needs). */
#define PC_POLL_MIN_NS 10000u
#define PC_POLL_MAX_NS 200000u

static void vcpu_idle(struct pc_vcpu *v)
{
    struct pc_sim *s = v->sim;
    if (apf_loopback_deliver(s->lb, v->id, PC_GS) != 0)
        return;
    if (s->o->layout.spin_vcpu) {
        uint64_t t0 = pc_now_ns(), end = t0 + v->poll_ns;
        for (unsigned i = 0;; i++) {
            if (apf_loopback_pending(s->lb, v->id)) {
                apf_loopback_deliver(s->lb, v->id, PC_GS);
                return;
            }
            if ((i & 15) == 15 && pc_now_ns() >= end)
                break;
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
        apf_loopback_idle(s->lb, v->id, 1000000);
        uint64_t waited = pc_now_ns() - t0;
        if (waited <= PC_POLL_MAX_NS)
            v->poll_ns = v->poll_ns * 2 > PC_POLL_MAX_NS ? PC_POLL_MAX_NS
                         : v->poll_ns * 2 < PC_POLL_MIN_NS ? PC_POLL_MIN_NS
                                                           : v->poll_ns * 2;
        else
            v->poll_ns /= 2;
        return;
    }
    apf_loopback_idle(s->lb, v->id, 1000000);
}

void pc_vcpu_idle(struct pc_vcpu *v)
{
    v->idling = true;
    vcpu_idle(v);
    v->idling = false;
}

static void env_halt(void *ctx)
{
    (void)ctx;
    pc_vcpu_idle(this_vcpu);
}

/* Bucket locks are shared by the vCPU threads: a spinlock that yields when contended. */
static uintptr_t env_lock(void *ctx, struct apf_guest_lock *l)
{
    (void)ctx;
    _Atomic uint32_t *word = (_Atomic uint32_t *)&l->word;
    for (unsigned spins = 0; atomic_exchange_explicit(word, 1, memory_order_acquire); spins++)
        while (atomic_load_explicit(word, memory_order_relaxed))
            if (++spins > 64)
                sched_yield();
    return 0;
}

static void env_unlock(void *ctx, struct apf_guest_lock *l, uintptr_t flags)
{
    (void)ctx, (void)flags;
    atomic_store_explicit((_Atomic uint32_t *)&l->word, 0, memory_order_release);
}

static void env_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    if (level <= 1)
        fprintf(stderr, "apf-postcopy: guest: %s\n", msg);
}

const struct apf_guest_env_ops pc_guest_env = {
    .current_task = env_current,
    .cpu_id = env_cpu,
    .can_sleep = env_can_sleep,
    .sleep = env_sleep,
    .wake = env_wake,
    .halt = env_halt,
    .lock = env_lock,
    .unlock = env_unlock,
    .virt_to_phys = apf_loopback_virt_to_phys,
    .log = env_log,
};

/* ---- computation ---------------------------------------------------------------------------- */

/* A fixed amount of work (calibrated to compute_us on an idle core), so CPU taken by other
 * threads shows as longer wall time rather than as less work. */
static uint64_t work(uint64_t iters, uint64_t x)
{
    for (uint64_t i = 0; i < iters; i++)
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x;
}


uint64_t pc_calibrate(double compute_us)
{
    if (compute_us <= 0)
        compute_us = 0;
    uint64_t n = 1u << 20;
    double best = 1e30;
    volatile uint64_t sink = 0;
    for (int i = 0; i < 5; i++) {
        uint64_t t0 = pc_now_ns();
        sink += work(n, sink);
        double ns = (double)(pc_now_ns() - t0);
        if (ns < best)
            best = ns;
    }
    double per_iter = best / (double)n;
    return (uint64_t)(compute_us * 1e3 / per_iter);
}

static void compute(struct pc_vcpu *v, uint64_t *acc)
{
    struct pc_sim *s = v->sim;
    uint64_t step = s->iters_per_us ? s->iters_per_us : 1; /* a check every microsecond */
    for (uint64_t done = 0; done < s->iters_per_access; done += step) {
        uint64_t n = s->iters_per_access - done;
        *acc = work(n < step ? n : step, *acc);
        if (apf_loopback_pending(s->lb, v->id))
            apf_loopback_deliver(s->lb, v->id, PC_GS);
    }
}

/* ---- tasks ---------------------------------------------------------------------------------- */

void pc_task_main(void *arg)
{
    struct pc_task *t = arg;
    struct pc_vcpu *v = t->v;
    struct pc_sim *s = v->sim;
    uint64_t acc = t->id;
    for (uint64_t i = 0; i < t->todo && !atomic_load(&s->fatal) && !atomic_load(&pc_interrupted);
         i++) {
        uint64_t page = pc_workload_next(s->wl, &t->cur);
        const void *p = pc_mem_page_addr(&s->mem, page);
        t->faulted = false;
        t->t_exit = 0;
        t->t_access = pc_now_ns();
        if (s->mem.mode == PC_MEM_PRESENCE_MAP && !pc_mem_is_present(&s->mem, page)) {
            t->t_exit = t->t_access;
            pc_vcpu_missing(v, page); /* no userfaultfd: the VMM checks before the access */
        }
        /* The access: reading a missing page raises SIGBUS right here (vm.c). */
        (void)*(const volatile uint64_t *)p;
        if (t->faulted)
            pc_fault_record(v, t, pc_now_ns());
        if (!pc_page_verify(p, s->src->seed, page)) {
            pc_sim_fail(s, "page %llu does not hold the source's contents (checksum mismatch)",
                        (unsigned long long)page);
            break;
        }
        compute(v, &acc);
        v->accesses++;
        atomic_fetch_add_explicit(&s->accesses_done, 1, memory_order_relaxed);
        /* time slice: let the other runnable tasks have the CPU */
        rq_push(v, t);
        pc_coro_switch(&t->co, &v->sched);
    }
    t->state = TASK_DONE;
    if (acc == 42) /* keep the computation observable */
        fputc('\0', stderr);
}

/* ---- the vCPU ------------------------------------------------------------------------------- */

void *pc_vcpu_main(void *arg)
{
    struct pc_vcpu *v = arg;
    struct pc_sim *s = v->sim;
    this_vcpu = v;
    v->poll_ns = PC_POLL_MIN_NS;
    pc_pin_vcpu_thread(s, v->id);
    pc_coro_init_thread(&v->sched);
    if (s->mem.mode != PC_MEM_PRESENCE_MAP)
        pc_sigbus_set_handler(pc_vcpu_sigbus, v); /* this thread's page-fault exit */
    for (uint32_t i = 0; i < v->ntasks; i++)
        rq_push(v, &v->tasks[i]);
    if (s->mode == MODE_APF && apf_guest_cpu_online(s->g, v->id) != 0)
        pc_sim_fail(s, "vCPU %u: the host refused to enable APF", v->id);
    pthread_barrier_wait(&s->start);

    uint64_t t0 = pc_now_ns();
    while (v->done < v->ntasks && !atomic_load(&s->fatal)) {
        if (apf_loopback_pending(s->lb, v->id))
            apf_loopback_deliver(s->lb, v->id, PC_GS);
        struct pc_task *t = rq_pop(v);
        if (t) {
            v->cur = t;
            t->state = TASK_RUNNING;
            pc_coro_switch(&v->sched, &t->co);
            v->cur = NULL;
            if (t->state == TASK_DONE || t->state == TASK_DEAD)
                v->done++;
            continue;
        }
        /* Nothing runnable (every task waits for a page): the guest idles until a kick. */
        uint64_t i0 = pc_now_ns();
        pc_vcpu_idle(v);
        v->idle_ns += pc_now_ns() - i0;
    }
    v->busy_ns = pc_now_ns() - t0;
    if (s->mode == MODE_APF)
        apf_guest_cpu_offline(s->g, v->id);
    return NULL;
}
