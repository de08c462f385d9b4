/* SPDX-License-Identifier: MIT */
/*
 * apf-bench host: the cost of one asynchronous page fault in libapf-host.
 *
 * "engine" mode (embedder completion, one thread as every vCPU's context): per APF,
 *   fault -> token + "not present" -> complete -> before_entry ("page ready") -> guest
 *   clears the slot -> ack.
 * Faults are issued in batches of `depth` per vCPU (up to the per-vCPU limit in flight),
 * over 1..256 vCPUs round robin. Reported: median ns per APF over repeated runs.
 *
 * "pool" mode: the same through the engine's worker threads (resolve is a no-op), so the
 * hand-off to a worker and back (a mutex, a condition variable, a kick) is included; a
 * batch of 64 faults shares the wake-ups, so this is throughput.
 *
 * "handoff" rows: one fault, one completion, no batching (what one fault costs when a vCPU
 * faults alone): the vCPU thread on CPU 0 faults, then polls its next entry until "page
 * ready"; one worker, on the other CPU ("-xcpu", parked or spinning 50 us) or the same CPU
 * ("-same"). Needs 2 CPUs for the cross-CPU rows.
 *
 * Prints a table, or JSON with --json. Numbers, not pass/fail: this is not a test.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apf/host.h"
#include "bench.h"

#define AREA(v) ((uint64_t)(v)*64u)

struct env {
    uint8_t *mem;
    uint64_t mem_size;
    uint32_t *last_token; /* per vCPU: from inject_not_present */
    uint32_t *submitted;  /* ring of submitted tokens (engine mode) */
    uint32_t nsub;
    atomic_uint kicks;
};

static int b_read(void *ctx, uint64_t gpa, void *buf, uint32_t len)
{
    struct env *e = ctx;
    if (gpa >= e->mem_size || len > e->mem_size - gpa)
        return APF_EFAULT;
    memcpy(buf, e->mem + gpa, len);
    return 0;
}

static int b_write(void *ctx, uint64_t gpa, const void *buf, uint32_t len)
{
    struct env *e = ctx;
    if (gpa >= e->mem_size || len > e->mem_size - gpa)
        return APF_EFAULT;
    memcpy(e->mem + gpa, buf, len);
    return 0;
}

static void b_np(void *ctx, uint32_t vcpu, uint32_t token)
{
    struct env *e = ctx;
    e->last_token[vcpu] = token;
}

static void b_ready(void *ctx, uint32_t vcpu, uint32_t vector)
{
    (void)ctx, (void)vcpu, (void)vector;
}

static void b_kick(void *ctx, uint32_t vcpu)
{
    (void)vcpu;
    struct env *e = ctx;
    atomic_fetch_add_explicit(&e->kicks, 1, memory_order_relaxed);
}

static void b_submit(void *ctx, uint32_t vcpu, uint32_t token, uint64_t gpa)
{
    (void)vcpu, (void)gpa;
    struct env *e = ctx;
    e->submitted[e->nsub++] = token;
}

static int b_resolve(void *ctx, uint32_t vcpu, uint64_t gpa)
{
    (void)ctx, (void)vcpu, (void)gpa;
    return 0;
}

static const uint32_t GS = APF_GS_USER | APF_GS_IRQ_ON | APF_GS_PAGING | APF_GS_IRQCHIP_ON;

static struct apf_host *make_host(struct env *e, struct apf_host_ops *ops, uint32_t n_vcpus,
                                  uint32_t workers)
{
    *ops = (struct apf_host_ops){.resolve = b_resolve,
                                 .submit = b_submit,
                                 .inject_not_present = b_np,
                                 .inject_ready = b_ready,
                                 .kick = b_kick,
                                 .read_guest = b_read,
                                 .write_guest = b_write};
    struct apf_host_config c = {.n_vcpus = n_vcpus, .n_workers = workers,
                                .transport = &apf_host_transport_kvm_x86, .ops = ops, .ctx = e};
    struct apf_host *h;
    if (apf_host_create(&c, &h) != 0)
        return NULL;
    for (uint32_t v = 0; v < n_vcpus; v++) {
        apf_host_vcpu_set_vector(h, v, 0xec);
        apf_host_vcpu_enable(h, v, AREA(v), APF_EN_ENABLED | APF_EN_DELIVERY_AS_INT);
        apf_host_vcpu_before_entry(h, v, GS); /* the wake-all */
        memset(e->mem + AREA(v), 0, 8);
        apf_host_vcpu_ack(h, v);
    }
    return h;
}

/* The guest side of a "page ready": read the token, clear the slot, ACK. */
static inline void guest_ready(struct env *e, struct apf_host *h, uint32_t v)
{
    memset(e->mem + AREA(v) + 4, 0, 4);
    apf_host_vcpu_ack(h, v);
}

static int die(const char *what)
{
    fprintf(stderr, "apf-bench host: %s\n", what);
    exit(1);
}

/* One run: `rounds` batches of `depth` APFs on every vCPU. Returns ns per APF. */
__attribute__((noinline)) static double run_engine(struct env *e, struct apf_host *h, uint32_t n_vcpus, uint32_t depth,
                         uint32_t rounds)
{
    uint64_t page = 0;
    double t0 = bench_now_ns();
    for (uint32_t r = 0; r < rounds; r++) {
        for (uint32_t v = 0; v < n_vcpus; v++) {
            e->nsub = 0;
            for (uint32_t k = 0; k < depth; k++) {
                uint64_t gpa = 0x100000000ull + (page++ % 65536) * 4096;
                if (apf_host_vcpu_fault(h, v, gpa, GS) != APF_FAULT_ASYNC)
                    die("fault did not go async");
                memset(e->mem + AREA(v), 0, 4); /* the guest's #PF handler clears flags */
            }
            for (uint32_t k = 0; k < depth; k++)
                if (apf_host_complete(h, v, e->submitted[k], 0) != 0)
                    die("complete failed");
            for (uint32_t k = 0; k < depth; k++) {
                if (apf_host_vcpu_before_entry(h, v, GS) != 1)
                    die("no page ready");
                guest_ready(e, h, v);
            }
        }
    }
    double t1 = bench_now_ns();
    return (t1 - t0) / ((double)rounds * n_vcpus * depth);
}

/* Pool mode: one vCPU context thread; faults resolved by the engine's workers. */
static double run_pool(struct env *e, struct apf_host *h, uint32_t n_vcpus, uint32_t depth,
                       uint32_t rounds)
{
    uint64_t page = 0;
    double t0 = bench_now_ns();
    for (uint32_t r = 0; r < rounds; r++) {
        for (uint32_t v = 0; v < n_vcpus; v++) {
            for (uint32_t k = 0; k < depth; k++) {
                uint64_t gpa = 0x100000000ull + (page++ % 65536) * 4096;
                if (apf_host_vcpu_fault(h, v, gpa, GS) != APF_FAULT_ASYNC)
                    die("fault did not go async");
                memset(e->mem + AREA(v), 0, 4);
            }
        }
        for (uint32_t v = 0; v < n_vcpus; v++) {
            for (uint32_t k = 0; k < depth;) {
                int got = apf_host_vcpu_before_entry(h, v, GS);
                if (got == 1) {
                    guest_ready(e, h, v);
                    k++;
                }
            }
        }
    }
    double t1 = bench_now_ns();
    return (t1 - t0) / ((double)rounds * n_vcpus * depth);
}

/* One fault at a time through the pool: fault, wait for "page ready", ACK. */
static double run_handoff(struct env *e, struct apf_host *h, uint32_t n)
{
    uint64_t page = 0;
    double t0 = bench_now_ns();
    for (uint32_t i = 0; i < n; i++) {
        uint64_t gpa = 0x100000000ull + (page++ % 65536) * 4096;
        if (apf_host_vcpu_fault(h, 0, gpa, GS) != APF_FAULT_ASYNC)
            die("fault did not go async");
        memset(e->mem + AREA(0), 0, 4);
        while (apf_host_vcpu_before_entry(h, 0, GS) != 1)
            ;
        guest_ready(e, h, 0);
    }
    return (bench_now_ns() - t0) / n;
}

static void pin_self(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* A host whose workers run on `worker_cpu` (threads inherit the creator's affinity). */
static struct apf_host *make_pinned_pool(struct env *e, struct apf_host_ops *ops, int worker_cpu,
                                         uint32_t spin_ns)
{
    pin_self(worker_cpu);
    *ops = (struct apf_host_ops){.resolve = b_resolve,
                                 .inject_not_present = b_np,
                                 .inject_ready = b_ready,
                                 .kick = b_kick,
                                 .read_guest = b_read,
                                 .write_guest = b_write};
    struct apf_host_config c = {.n_vcpus = 1, .n_workers = 1, .worker_spin_ns = spin_ns,
                                .transport = &apf_host_transport_kvm_x86, .ops = ops, .ctx = e};
    struct apf_host *h;
    int err = apf_host_create(&c, &h);
    pin_self(0);
    if (err)
        return NULL;
    apf_host_vcpu_set_vector(h, 0, 0xec);
    apf_host_vcpu_enable(h, 0, AREA(0), APF_EN_ENABLED | APF_EN_DELIVERY_AS_INT);
    apf_host_vcpu_before_entry(h, 0, GS);
    memset(e->mem + AREA(0), 0, 8);
    apf_host_vcpu_ack(h, 0);
    return h;
}

static void handoff_rows(struct bench_report *rep, struct env *e, int repeats)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    static const struct {
        const char *name;
        int other_cpu;
        uint32_t spin_ns;
    } rows[] = {{"handoff-xcpu", 1, 0}, {"handoff-xcpu-spin", 1, 50000}, {"handoff-same", 0, 0}};
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (rows[i].other_cpu && ncpu < 2)
            continue;
        struct apf_host_ops ops;
        struct apf_host *h = make_pinned_pool(e, &ops, rows[i].other_cpu, rows[i].spin_ns);
        if (!h)
            die("create failed");
        run_handoff(e, h, 200);
        double samples[BENCH_MAX_REPEATS];
        for (int k = 0; k < repeats; k++)
            samples[k] = run_handoff(e, h, 2000);
        size_t per_vcpu;
        apf_host_memory(h, &per_vcpu);
        bench_report_row(rep, rows[i].name, 1, 1, samples, repeats, (double)per_vcpu);
        apf_host_destroy(h);
    }
    cpu_set_t all;
    CPU_ZERO(&all);
    for (long c = 0; c < ncpu && c < CPU_SETSIZE; c++)
        CPU_SET((int)c, &all);
    pthread_setaffinity_np(pthread_self(), sizeof(all), &all);
}

/* --ir: exactly IR_APFS APFs (1 vCPU, depth 1) in one run_engine() call, for an instruction
 * count per APF under callgrind (docs/benchmarks.md has the command). */
#define IR_APFS 100000u

static int ir_main(void)
{
    struct env e = {0};
    e.mem_size = 4096;
    e.mem = calloc(1, e.mem_size);
    e.last_token = calloc(1, sizeof(uint32_t));
    e.submitted = calloc(64, sizeof(uint32_t));
    struct apf_host_ops ops;
    struct apf_host *h = make_host(&e, &ops, 1, 0);
    if (!h)
        die("create failed");
    run_engine(&e, h, 1, 1, IR_APFS);
    printf("apf-bench host --ir: %u APFs in run_engine (1 vCPU, depth 1)\n", IR_APFS);
    apf_host_destroy(h);
    free(e.mem);
    free(e.last_token);
    free(e.submitted);
    return 0;
}

int bench_host_main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--ir") == 0)
        return ir_main();
    struct bench_opts o;
    if (bench_parse(argc, argv, &o) != 0)
        return 2;
    static const uint32_t vcpus[] = {1, 4, 16, 64, 256};
    static const uint32_t depths[] = {1, 16, 64};
    struct bench_report rep;
    bench_report_init(&rep, "host", o.json);
    bench_report_meta(&rep, "repeats", o.repeats);

    struct env e = {0};
    e.mem_size = 64 * 256 + 4096;
    e.mem = calloc(1, e.mem_size);
    e.last_token = calloc(256, sizeof(uint32_t));
    e.submitted = calloc(4096, sizeof(uint32_t));
    struct apf_host_ops ops;

    for (size_t vi = 0; vi < sizeof(vcpus) / sizeof(vcpus[0]); vi++) {
        for (size_t di = 0; di < sizeof(depths) / sizeof(depths[0]); di++) {
            uint32_t n = vcpus[vi], d = depths[di];
            struct apf_host *h = make_host(&e, &ops, n, 0);
            if (!h)
                die("create failed");
            /* ~200k APFs per run, whatever the shape */
            uint32_t rounds = (uint32_t)(200000 / (n * d)) + 1;
            run_engine(&e, h, n, d, rounds / 4 + 1); /* warm-up */
            double samples[BENCH_MAX_REPEATS];
            for (int i = 0; i < o.repeats; i++)
                samples[i] = run_engine(&e, h, n, d, rounds);
            size_t per_vcpu;
            apf_host_memory(h, &per_vcpu);
            bench_report_row(&rep, "engine", n, d, samples, o.repeats, (double)per_vcpu);
            apf_host_destroy(h);
        }
    }
    for (size_t vi = 0; vi < sizeof(vcpus) / sizeof(vcpus[0]); vi++) {
        uint32_t n = vcpus[vi], d = 64;
        struct apf_host *h = make_host(&e, &ops, n, 2);
        if (!h)
            die("create failed");
        uint32_t rounds = (uint32_t)(20000 / (n * d)) + 1;
        run_pool(&e, h, n, d, 1);
        double samples[BENCH_MAX_REPEATS];
        for (int i = 0; i < o.repeats; i++)
            samples[i] = run_pool(&e, h, n, d, rounds);
        size_t per_vcpu;
        apf_host_memory(h, &per_vcpu);
        bench_report_row(&rep, "pool", n, d, samples, o.repeats, (double)per_vcpu);
        apf_host_destroy(h);
    }
    handoff_rows(&rep, &e, o.repeats);
    bench_report_end(&rep);
    free(e.mem);
    free(e.last_token);
    free(e.submitted);
    return 0;
}
