/* SPDX-License-Identifier: MIT */
/*
 * apf-bench guest: libapf-guest's cost per APF, excluding the task switch itself:
 *   "not present" decode -> sleep-table insert -> (the task would switch away here) ->
 *   "page ready" read -> wake -> clear -> ACK.
 * The environment's `sleep` does not switch: it plays the host and raises "page ready" for
 * the token at once, then returns. The channel is the real kvm_x86 backend's; its ACK is a
 * counter (on real hardware it is a VM exit, the host's cost). With 2 CPUs, two threads work on their own CPU at the same
 * time, sharing the sleep table (bucket locks are real spinlocks).
 * Rows: "wait" (normal order) and "early" (ready before its waiter: the placeholder path).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apf/guest.h"
#include "bench.h"

struct bcpu {
    uint32_t id;
    struct apf_shared_area *area;
    uint32_t pending; /* token the "host" answers from inside sleep */
};

static struct apf_guest *G;
static _Thread_local struct bcpu *cur;

static void *e_task(void *ctx)
{
    (void)ctx;
    return cur;
}

static uint32_t e_cpu(void *ctx)
{
    (void)ctx;
    return cur->id;
}

static int e_can_sleep(void *ctx)
{
    (void)ctx;
    return 1;
}

/* The task sleeps: here the host answers at once (no switch is measured). */
static void e_sleep(void *ctx, struct apf_guest_waiter *w)
{
    (void)ctx;
    cur->area->token = cur->pending;
    apf_guest_on_interrupt(G, cur->id);
    if (!apf_guest_waiter_woken(w)) {
        fprintf(stderr, "apf-bench guest: waiter not woken\n");
        exit(1);
    }
}

static void e_wake(void *ctx, void *task, uint32_t cpu, int halted)
{
    (void)ctx, (void)task, (void)cpu, (void)halted;
}

static void e_halt(void *ctx)
{
    (void)ctx;
}

static uintptr_t e_lock(void *ctx, struct apf_guest_lock *l)
{
    (void)ctx;
    _Atomic uint32_t *w = (_Atomic uint32_t *)&l->word;
    while (atomic_exchange_explicit(w, 1, memory_order_acquire))
        while (atomic_load_explicit(w, memory_order_relaxed))
            sched_yield();
    return 0;
}

static void e_unlock(void *ctx, struct apf_guest_lock *l, uintptr_t f)
{
    (void)ctx, (void)f;
    atomic_store_explicit((_Atomic uint32_t *)&l->word, 0, memory_order_release);
}

static uint64_t e_v2p(void *ctx, const void *va)
{
    (void)ctx;
    return (uint64_t)(uintptr_t)va;
}

static const struct apf_guest_env_ops env = {e_task, e_cpu,  e_can_sleep, e_sleep, e_wake,
                                             e_halt, e_lock, e_unlock,    e_v2p,   NULL};


/* The channel is decoded by the real kvm_x86 backend (area, token, ACK); its ACK goes to an
 * arch hook that only counts (on real hardware a wrmsr and its VM exit: host time). Probe
 * and enable are the bench's. */
static void a_cpuid(void *ctx, uint32_t cpu, uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    (void)ctx, (void)cpu, (void)leaf, (void)sub;
    r[0] = r[1] = r[2] = r[3] = 0;
}

static _Atomic uint64_t acks;
static int a_wrmsr(void *ctx, uint32_t cpu, uint32_t msr, uint64_t v)
{
    (void)ctx, (void)cpu, (void)v;
    if (msr == APF_KVM_MSR_ASYNC_PF_ACK)
        atomic_fetch_add_explicit(&acks, 1, memory_order_relaxed);
    return 0;
}

static int a_rdmsr(void *ctx, uint32_t cpu, uint32_t msr, uint64_t *v)
{
    (void)ctx, (void)cpu, (void)msr;
    *v = 0;
    return 0;
}

static const struct apf_x86_arch_ops count_arch = {a_cpuid, a_wrmsr, a_rdmsr};
static struct apf_guest_kvm_x86 kx;

static uint32_t b_caps(void *ctx)
{
    (void)ctx;
    return 0;
}

static int b_probe(void *ctx, struct apf_guest_backend_info *info)
{
    (void)ctx;
    *info = (struct apf_guest_backend_info){.version = APF_PROTO_VERSION, .slots = 64};
    return 0;
}

static int b_enable(void *ctx, uint32_t cpu, void *chan, uint64_t pa, uint32_t vector,
                    uint32_t flags)
{
    (void)ctx, (void)cpu, (void)chan, (void)pa, (void)vector, (void)flags;
    return 0;
}

static int b_disable(void *ctx, uint32_t cpu)
{
    (void)ctx, (void)cpu;
    return 0;
}

static struct apf_guest_backend_ops backend;

static void backend_setup(void)
{
    apf_guest_kvm_x86_init(&kx, &count_arch, NULL);
    backend = apf_guest_backend_kvm_x86;
    backend.name = "bench";
    backend.capabilities = b_caps;
    backend.probe = b_probe;
    backend.enable = b_enable;
    backend.disable = b_disable;
}

struct run {
    struct bcpu cpu;
    uint32_t n;
    int early;
    int pin; /* run on CPU cpu.id (the 2-CPU rows: each thread on its own CPU) */
    double ns;
    pthread_barrier_t *start;
};

/* The loop of one CPU: `n` APFs. Not inlined: `apf-bench guest --ir` counts inside it. */
__attribute__((noinline)) static void run_guest_apfs(struct run *r)
{
    uint32_t seq = 1;
    for (uint32_t i = 0; i < r->n; i++, seq++) {
        uint32_t token = (seq << 12) | r->cpu.id;
        if (token == APF_TOKEN_WAKE_ALL || token == 0)
            continue;
        if (r->early) {
            /* ready first (placeholder), then the late waiter finds it */
            r->cpu.area->token = token;
            apf_guest_on_interrupt(G, r->cpu.id);
        }
        r->cpu.pending = token;
        r->cpu.area->flags = APF_REASON_NOT_PRESENT;
        if (apf_guest_on_exception(G, r->cpu.id, token) != 1) {
            fprintf(stderr, "apf-bench guest: not recognised\n");
            exit(1);
        }
    }
}

static void *run_cpu(void *arg)
{
    struct run *r = arg;
    cur = &r->cpu;
    if (r->pin) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET((int)r->cpu.id, &set);
        pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    }
    pthread_barrier_wait(r->start);
    double t0 = bench_now_ns();
    run_guest_apfs(r);
    r->ns = (bench_now_ns() - t0) / r->n;
    return NULL;
}

/* One run with `ncpu` CPUs in parallel: ns per APF (the mean over the CPUs). */
static double run_once(uint32_t ncpu, uint32_t n, int early)
{
    struct run runs[2];
    pthread_t th[2];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, ncpu);
    for (uint32_t c = 0; c < ncpu; c++) {
        runs[c] = (struct run){.cpu = {.id = c, .area = (struct apf_shared_area *)(uintptr_t)
                                                        apf_guest_area(G, c)},
                               .n = n,
                               .early = early,
                               .pin = ncpu > 1,
                               .start = &start};
        pthread_create(&th[c], NULL, run_cpu, &runs[c]);
    }
    double sum = 0;
    for (uint32_t c = 0; c < ncpu; c++) {
        pthread_join(th[c], NULL);
        sum += runs[c].ns;
    }
    pthread_barrier_destroy(&start);
    return sum / ncpu;
}

#define IR_APFS 100000u

int bench_guest_main(int argc, char **argv)
{
    bool ir = argc == 2 && strcmp(argv[1], "--ir") == 0;
    struct bench_opts o;
    if (!ir && bench_parse(argc, argv, &o) != 0)
        return 2;
    backend_setup();
    struct apf_guest_config cfg = {.n_cpus = 2, .vector = 0xf3, .env = &env, .backend = &backend,
                                   .backend_ctx = &kx};
    size_t sz = apf_guest_mem_size(&cfg);
    void *mem = malloc(sz);
    if (mem == NULL || apf_guest_init(mem, sz, &cfg, &G) != 0)
        return 1;
    for (uint32_t c = 0; c < 2; c++) {
        struct bcpu bc = {.id = c};
        cur = &bc;
        if (apf_guest_cpu_online(G, c) != 0)
            return 1;
    }
    if (ir) {
        /* exactly IR_APFS APFs ("wait" order, 1 CPU) inside run_guest_apfs(), for an
         * instruction count per APF under callgrind (docs/benchmarks.md) */
        run_once(1, IR_APFS, 0);
        printf("apf-bench guest --ir: %u APFs in run_guest_apfs (1 CPU, wait)\n", IR_APFS);
        free(mem);
        return 0;
    }
    struct bench_report rep;
    bench_report_init(&rep, "guest", o.json);
    bench_report_meta(&rep, "repeats", o.repeats);
    static const char *const modes[] = {"wait", "early"};
    for (int early = 0; early <= 1; early++) {
        for (uint32_t ncpu = 1; ncpu <= 2; ncpu++) {
            run_once(ncpu, 100000, early); /* warm-up */
            double samples[BENCH_MAX_REPEATS];
            for (int i = 0; i < o.repeats; i++)
                samples[i] = run_once(ncpu, 500000, early);
            bench_report_row(&rep, modes[early], ncpu, 1, samples, o.repeats, 0);
        }
    }
    bench_report_end(&rep);
    struct apf_guest_stats s;
    apf_guest_stats(G, 0, &s);
    if (s.placeholders_in_use != 0 || s.lost_wakeups != 0) {
        fprintf(stderr, "apf-bench guest: placeholders left behind\n");
        return 1;
    }
    free(mem);
    return 0;
}
