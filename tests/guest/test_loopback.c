/* SPDX-License-Identifier: MIT */
/*
 * End to end through the loopback: the real guest runtime and kvm_x86 / kvm_arm64 backend on
 * one side, the real host engine, frontend and worker pool on the other. Several vCPU
 * threads, several tasks per vCPU, random resolve delays, random CPU offline/online, some
 * tasks in contexts that cannot sleep (the CPU halts). Afterwards: every task that slept
 * was woken exactly once, no placeholder leaked, host and guest counters agree, and the
 * combined host+guest trace passes the conformance checker. Run under ThreadSanitizer in CI.
 *
 * The guest "kernel" here runs each task on its own thread but lets only one task per vCPU
 * run at a time (a baton passed under the vCPU's lock): the semantics of a cooperative
 * scheduler, in a form ThreadSanitizer understands.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apf/host_s390.h"
#include "apf/host_transport.h"
#include "apf/host_mmio.h"
#include "apf/host_xen.h"
#include "apf/loopback.h"
#include "apf_check.h"

#define N_VCPUS 3
#define N_TASKS 4 /* per vCPU */
#define N_PAGES 48
#define PAGE 4096u
#define REMOTE_BASE 0x100000000ull /* the "remote" pages' guest-physical addresses */
#define GS (APF_GS_USER | APF_GS_IRQ_ON | APF_GS_PAGING | APF_GS_IRQCHIP_ON)

/* Failures off the test's own thread abort with a message (ck_assert must not be used). */
#define REQUIRE(cond, ...)                                                                     \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "loopback test: %s:%d: %s: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, " " __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                               \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

static int accesses_per_task(void)
{
    const char *e = getenv("APF_LOOPBACK_ACCESSES");
    return e ? atoi(e) : 5000;
}

enum { T_RUNNABLE, T_RUNNING, T_BLOCKED, T_DONE };

struct task {
    int id;
    uint32_t vcpu;
    int can_sleep;
    int state;
    pthread_t th;
    pthread_cond_t cv;
    unsigned seed;
    int sleeps, wakes, halted_wakes;
    long faults_async, faults_sync, faults_halt;
};

struct vcpu {
    uint32_t id;
    pthread_mutex_t m;
    struct task *running;
    struct task *rq[N_TASKS];
    int rq_head, rq_n;
    int n_done;
};

struct world {
    const struct apf_host_transport_ops *transport;
    uint32_t ring;
    struct apf_loopback *lb;
    struct apf_guest *g;
    void *gmem;
    struct vcpu v[N_VCPUS];
    struct task t[N_VCPUS][N_TASKS];
    _Atomic uint8_t present[N_PAGES];
    atomic_uint seed;
    pthread_mutex_t trace_lock;
    struct apf_trace_checker *chk;
    void *chk_mem;
    int trace_err;
    char trace_msg[256];
};

static struct world W;
static _Thread_local struct task *cur;

/* ---- the trace: host and guest events into one checker ---------------------------------------- */

static void trace_hook(void *ctx, const struct apf_trace_event *ev)
{
    struct world *w = ctx;
    pthread_mutex_lock(&w->trace_lock);
    if (!w->trace_err) {
        w->trace_err = apf_trace_checker_feed(w->chk, ev);
        if (w->trace_err)
            snprintf(w->trace_msg, sizeof(w->trace_msg), "%s", apf_trace_checker_error(w->chk));
    }
    pthread_mutex_unlock(&w->trace_lock);
}

/* ---- the host's page work: a worker makes the page present after a random delay ------------------ */

static int resolve(void *ctx, uint32_t vcpu, uint64_t gpa)
{
    struct world *w = ctx;
    (void)vcpu;
    unsigned s = atomic_fetch_add(&w->seed, 7919);
    struct timespec ts = {0, (long)(rand_r(&s) % 300) * 1000};
    nanosleep(&ts, NULL);
    atomic_store(&w->present[(gpa - REMOTE_BASE) / PAGE], 1);
    return 0;
}

/* ---- the scheduler (a baton per vCPU) ---------------------------------------------------------------- */

static void rq_push(struct vcpu *v, struct task *t)
{
    REQUIRE(v->rq_n < N_TASKS);
    v->rq[(v->rq_head + v->rq_n++) % N_TASKS] = t;
    t->state = T_RUNNABLE;
}

static struct task *rq_pop(struct vcpu *v)
{
    if (v->rq_n == 0)
        return NULL;
    struct task *t = v->rq[v->rq_head];
    v->rq_head = (v->rq_head + 1) % N_TASKS;
    v->rq_n--;
    return t;
}

/* With v->m held: give the CPU to the next runnable task, running the idle loop (delivery
 * points, idle waits) while there is none. Returns when `me` runs again (or, for a task
 * that is done, once the baton is handed on or every task is done). */
static void schedule(struct vcpu *v, struct task *me)
{
    for (;;) {
        struct task *next = rq_pop(v);
        if (next == me) {
            me->state = T_RUNNING;
            return;
        }
        if (next) {
            v->running = next;
            next->state = T_RUNNING;
            pthread_cond_signal(&next->cv);
            if (me->state == T_DONE)
                return;
            while (v->running != me)
                pthread_cond_wait(&me->cv, &v->m);
            return;
        }
        if (v->n_done == N_TASKS)
            return;
        pthread_mutex_unlock(&v->m);
        if (apf_loopback_deliver(W.lb, v->id, GS) == 0)
            apf_loopback_idle(W.lb, v->id, 1000000);
        pthread_mutex_lock(&v->m);
    }
}

/* ---- the environment hooks --------------------------------------------------------------------------- */

static void *e_current(void *ctx)
{
    (void)ctx;
    return cur;
}

static uint32_t e_cpu(void *ctx)
{
    (void)ctx;
    return cur->vcpu;
}

static int e_can_sleep(void *ctx)
{
    (void)ctx;
    return cur->can_sleep;
}

static void e_sleep(void *ctx, struct apf_guest_waiter *w)
{
    (void)ctx;
    struct task *me = cur;
    struct vcpu *v = &W.v[me->vcpu];
    pthread_mutex_lock(&v->m);
    me->sleeps++;
    me->state = T_BLOCKED;
    while (!apf_guest_waiter_woken(w))
        schedule(v, me);
    me->state = T_RUNNING;
    pthread_mutex_unlock(&v->m);
}

static void e_wake(void *ctx, void *task, uint32_t cpu, int halted)
{
    (void)ctx;
    struct task *t = task;
    struct vcpu *v = &W.v[cpu];
    pthread_mutex_lock(&v->m);
    if (halted) {
        t->halted_wakes++;
    } else {
        t->wakes++;
        if (t->state == T_BLOCKED)
            rq_push(v, t);
    }
    pthread_mutex_unlock(&v->m);
    apf_loopback_kick(W.lb, cpu);
}

/* The CPU halts (the current task keeps it): take interrupts until one arrives. */
static void e_halt(void *ctx)
{
    (void)ctx;
    if (apf_loopback_deliver(W.lb, cur->vcpu, GS) == 0)
        apf_loopback_idle(W.lb, cur->vcpu, 1000000);
}

static uintptr_t e_lock(void *ctx, struct apf_guest_lock *l)
{
    (void)ctx;
    _Atomic uint32_t *word = (_Atomic uint32_t *)&l->word;
    uint32_t expect = 0;
    while (!atomic_compare_exchange_weak(word, &expect, 1)) {
        expect = 0;
        sched_yield();
    }
    return 0;
}

static void e_unlock(void *ctx, struct apf_guest_lock *l, uintptr_t flags)
{
    (void)ctx, (void)flags;
    atomic_store((_Atomic uint32_t *)&l->word, 0);
}

static const struct apf_guest_env_ops env = {
    .current_task = e_current,
    .cpu_id = e_cpu,
    .can_sleep = e_can_sleep,
    .sleep = e_sleep,
    .wake = e_wake,
    .halt = e_halt,
    .lock = e_lock,
    .unlock = e_unlock,
    .virt_to_phys = apf_loopback_virt_to_phys,
};

/* ---- the tasks ------------------------------------------------------------------------------------------ */

static void yield(struct vcpu *v, struct task *me)
{
    pthread_mutex_lock(&v->m);
    rq_push(v, me);
    schedule(v, me);
    pthread_mutex_unlock(&v->m);
}

static void *task_main(void *arg)
{
    struct task *me = arg;
    struct vcpu *v = &W.v[me->vcpu];
    cur = me;
    pthread_mutex_lock(&v->m);
    while (v->running != me)
        pthread_cond_wait(&me->cv, &v->m);
    pthread_mutex_unlock(&v->m);

    int n = accesses_per_task();
    for (int i = 0; i < n; i++) {
        unsigned page = (unsigned)rand_r(&me->seed) % N_PAGES;
        uint64_t gpa = REMOTE_BASE + (uint64_t)page * PAGE;
        for (int tries = 0; !atomic_load(&W.present[page]); tries++) {
            REQUIRE(tries < 100000, "task %d: page %u never became present", me->id, page);
            int r = apf_loopback_fault(W.lb, me->vcpu, gpa, GS);
            REQUIRE(r >= 0, "fault: %d", r);
            if (r == APF_FAULT_SYNC) {
                me->faults_sync++;
                atomic_store(&W.present[page], 1); /* the synchronous path fetches it */
            } else if (r == APF_FAULT_ASYNC) {
                me->faults_async++;
            } else {
                me->faults_halt++;
            }
        }
        unsigned r = (unsigned)rand_r(&me->seed) % 1000;
        if (r < 150) /* memory pressure: a page goes away again */
            atomic_store(&W.present[rand_r(&me->seed) % N_PAGES], 0);
        if (r < 300)
            apf_loopback_deliver(W.lb, me->vcpu, GS); /* a timer interrupt */
        if (r < 400)
            yield(v, me);
        if (r == 999) { /* CPU offline and back: sleepers wake and retry */
            REQUIRE(apf_guest_cpu_offline(W.g, me->vcpu) >= 0);
            REQUIRE(apf_guest_cpu_online(W.g, me->vcpu) == 0);
        }
    }
    pthread_mutex_lock(&v->m);
    me->state = T_DONE;
    v->n_done++;
    schedule(v, me);
    /* wake any thread still waiting for a baton that will never come: everyone is done */
    if (v->n_done == N_TASKS)
        for (int k = 0; k < N_TASKS; k++)
            pthread_cond_signal(&W.t[v->id][k].cv);
    pthread_mutex_unlock(&v->m);
    return NULL;
}

/* vCPU bring-up, on the vCPU: APF on, then start the first task. */
static void run_world_kind(const struct apf_host_transport_ops *transport, uint32_t ring,
                           uint32_t mmio_np_kind)
{
    memset(&W, 0, sizeof(W));
    W.transport = transport;
    W.ring = ring;
    pthread_mutex_init(&W.trace_lock, NULL);
    size_t csz = apf_trace_checker_size(N_VCPUS, 64);
    W.chk_mem = aligned_alloc(64, (csz + 63) & ~(size_t)63);
    W.chk = apf_trace_checker_init(W.chk_mem, csz, N_VCPUS, 64);
    ck_assert_ptr_nonnull(W.chk);

    struct apf_loopback_config lc = {
        .host = {.n_vcpus = N_VCPUS, .transport = transport, .n_workers = 2,
                 .trace = trace_hook, .trace_ctx = &W},
        .ring_entries = ring,
        .mmio_np_kind = mmio_np_kind,
        .resolve = resolve,
        .ctx = &W,
    };
    ck_assert_int_eq(apf_loopback_create(&lc, &W.lb), 0);
    const struct apf_guest_backend_ops *bops;
    void *bctx;
    apf_loopback_guest_backend(W.lb, &bops, &bctx);
    struct apf_guest_config gc = {
        .n_cpus = N_VCPUS,
        .vector = 0xf3,
        .env = &env,
        .env_ctx = &W,
        .backend = bops,
        .backend_ctx = bctx,
        .trace = trace_hook,
        .trace_ctx = &W,
    };
    size_t gsz = apf_guest_mem_size(&gc);
    W.gmem = malloc(gsz);
    ck_assert_int_eq(apf_loopback_add_ram(W.lb, W.gmem, gsz), 0);
    ck_assert_int_eq(apf_guest_init(W.gmem, gsz, &gc, &W.g), 0);
    ck_assert_int_eq(apf_guest_available(W.g), 1);
    apf_loopback_attach(W.lb, W.g);

    for (uint32_t c = 0; c < N_VCPUS; c++) {
        struct vcpu *v = &W.v[c];
        v->id = c;
        pthread_mutex_init(&v->m, NULL);
        for (int k = 0; k < N_TASKS; k++) {
            struct task *t = &W.t[c][k];
            t->id = (int)c * N_TASKS + k;
            t->vcpu = c;
            t->can_sleep = (k != N_TASKS - 1); /* the last task of each CPU halts instead */
            t->seed = 100u + (unsigned)t->id;
            pthread_cond_init(&t->cv, NULL);
        }
        /* The first task of each vCPU brings APF up on it (as the kernel's CPU init). */
        struct task *first = &W.t[c][0];
        cur = first;
        ck_assert_int_eq(apf_guest_cpu_online(W.g, c), 0);
        cur = NULL;
        for (int k = 1; k < N_TASKS; k++)
            rq_push(v, &W.t[c][k]);
        v->running = first;
        first->state = T_RUNNING;
    }
    for (uint32_t c = 0; c < N_VCPUS; c++)
        for (int k = 0; k < N_TASKS; k++)
            pthread_create(&W.t[c][k].th, NULL, task_main, &W.t[c][k]);
    for (uint32_t c = 0; c < N_VCPUS; c++)
        for (int k = 0; k < N_TASKS; k++)
            pthread_join(W.t[c][k].th, NULL);

    /* Every sleep matched by exactly one wake. */
    long sleeps = 0, async = 0, sync_ = 0, halts = 0;
    for (uint32_t c = 0; c < N_VCPUS; c++)
        for (int k = 0; k < N_TASKS; k++) {
            struct task *t = &W.t[c][k];
            ck_assert_int_eq(t->sleeps, t->wakes);
            sleeps += t->sleeps;
            async += t->faults_async;
            sync_ += t->faults_sync;
            halts += t->faults_halt;
        }

    /* Let work that owes no "page ready" finish; none of it may raise one. */
    struct apf_host *h = apf_loopback_host(W.lb);
    uint64_t ready_host = 0, ready_guest = 0;
    for (uint32_t c = 0; c < N_VCPUS; c++) {
        struct apf_host_vcpu_stats hs;
        for (int i = 0;; i++) {
            ck_assert_int_eq(apf_host_vcpu_before_entry(h, c, GS), 0);
            apf_host_vcpu_stats(h, c, &hs);
            if (hs.outstanding == 0)
                break;
            ck_assert_int_lt(i, 10000);
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        struct apf_guest_stats gs;
        ck_assert_int_eq(apf_guest_stats(W.g, c, &gs), 0);
        /* host and guest agree */
        ck_assert_uint_eq(hs.faults_async, gs.not_present);
        ck_assert_uint_eq(hs.wake_all_delivered, gs.wake_all);
        ck_assert_uint_eq(hs.acks_spurious, 0);
        if (W.transport == &apf_host_transport_s390) {
            /* floating: a "page ready" may be taken by another vCPU (summed below); no ACK
             * exit, no wake-all, no bad value */
            ready_host += hs.ready_delivered;
            ready_guest += gs.ready;
            ck_assert_uint_eq(hs.acks, 0);
            ck_assert_uint_eq(hs.wake_all_delivered, 0);
            ck_assert_uint_eq(hs.bad_guest_values, 0);
        } else if (W.ring == 0) {
            ck_assert_uint_eq(hs.ready_delivered, gs.ready);
            ck_assert_uint_eq(hs.acks, gs.acks); /* one ACK exit per "page ready" */
            ck_assert_uint_eq(hs.notifications, hs.ready_delivered + hs.wake_all_delivered);
        } else {
            ck_assert_uint_eq(hs.ready_delivered, gs.ready);
            /* the ring: no ACK exit at all, at most one notification per batch */
            ck_assert_uint_le(hs.notifications, hs.ready_batches);
            ck_assert_uint_eq(hs.bad_guest_values, 0);
        }
        /* no placeholder leaked; none was even needed (the loopback delivers in order) */
        ck_assert_uint_eq(gs.placeholders_in_use, 0);
        ck_assert_uint_eq(gs.waiting, 0);
        ck_assert_uint_eq(gs.lost_wakeups, 0);
        ck_assert_uint_eq(gs.bad_host_values, 0);
    }
    ck_assert_uint_eq(ready_host, ready_guest);
    pthread_mutex_lock(&W.trace_lock);
    ck_assert_msg(W.trace_err == 0, "trace: %s", W.trace_msg);
    ck_assert_msg(apf_trace_checker_finish(W.chk) == 0, "trace: %s", apf_trace_checker_error(W.chk));
    pthread_mutex_unlock(&W.trace_lock);
    ck_assert_int_gt(sleeps, 100); /* the run exercised the protocol */
    ck_assert_int_gt(async, 100);
    printf("loopback %s%s: %ld async (%ld slept), %ld sync, %ld halts, %llu trace events\n",
           W.transport->name, W.ring ? "+ring" : "", async, sleeps, sync_, halts,
           (unsigned long long)apf_trace_checker_events(W.chk));

    for (uint32_t c = 0; c < N_VCPUS; c++) {
        cur = &W.t[c][0];
        apf_guest_cpu_offline(W.g, c);
        pthread_mutex_destroy(&W.v[c].m);
        for (int k = 0; k < N_TASKS; k++)
            pthread_cond_destroy(&W.t[c][k].cv);
    }
    cur = NULL;
    apf_loopback_destroy(W.lb);
    free(W.gmem);
    free(W.chk_mem);
}

static void run_world(const struct apf_host_transport_ops *transport, uint32_t ring)
{
    run_world_kind(transport, ring, 0);
}

START_TEST(test_loopback_kvm_x86_every_sleeper_wakes_once)
{
    run_world(&apf_host_transport_kvm_x86, 0);
}
END_TEST

START_TEST(test_loopback_kvm_arm64_every_sleeper_wakes_once)
{
    run_world(&apf_host_transport_kvm_arm64, 0);
}
END_TEST

START_TEST(test_loopback_kvm_arm64_ring_every_sleeper_wakes_once)
{
    run_world(&apf_host_transport_kvm_arm64, APF_RING_DEFAULT_ENTRIES);
}
END_TEST

START_TEST(test_loopback_kvm_arm64_small_ring_every_sleeper_wakes_once)
{
    run_world(&apf_host_transport_kvm_arm64, 2); /* the ring fills: completions wait */
}
END_TEST

/* apf-mmio, each "not present" kind: x86 #PF with CR2 = token; the arm64 synchronous
 * external abort and the riscv64 access fault, both taken at the faulting access with the
 * token in the area (the loopback passes no hint: the guest must find it there). */
START_TEST(test_loopback_mmio_x86_every_sleeper_wakes_once)
{
    run_world_kind(&apf_host_transport_mmio, APF_RING_DEFAULT_ENTRIES, APF_MMIO_NP_X86_PF);
}
END_TEST

START_TEST(test_loopback_mmio_arm64_sea_every_sleeper_wakes_once)
{
    run_world_kind(&apf_host_transport_mmio, APF_RING_DEFAULT_ENTRIES, APF_MMIO_NP_ARM64_SEA);
}
END_TEST

START_TEST(test_loopback_mmio_riscv_small_ring_every_sleeper_wakes_once)
{
    run_world_kind(&apf_host_transport_mmio, 2, APF_MMIO_NP_RISCV_ACCESS_FAULT);
}
END_TEST

START_TEST(test_loopback_xen_every_sleeper_wakes_once)
{
    run_world(&apf_host_transport_xen, APF_RING_DEFAULT_ENTRIES);
}
END_TEST

START_TEST(test_loopback_xen_small_ring_every_sleeper_wakes_once)
{
    run_world(&apf_host_transport_xen, 2);
}
END_TEST

START_TEST(test_loopback_s390_every_sleeper_wakes_once)
{
    run_world(&apf_host_transport_s390, 0);
}
END_TEST

static int nop_resolve(void *ctx, uint32_t vcpu, uint64_t gpa)
{
    (void)ctx;
    (void)vcpu;
    (void)gpa;
    return 0;
}

/* Issue 13 finding 4: apf_loopback_idle() checks its vCPU id like every other entry point
 * (it used to index past the vCPU array: a heap-buffer-overflow under ASan). */
START_TEST(test_loopback_bad_vcpu_ids_are_refused)
{
    struct apf_loopback_config lc = {
        .host = {.n_vcpus = 2, .transport = &apf_host_transport_kvm_x86, .n_workers = 1},
        .resolve = nop_resolve,
    };
    struct apf_loopback *lb;
    ck_assert_int_eq(apf_loopback_create(&lc, &lb), 0);
    ck_assert_int_eq(apf_loopback_idle(lb, 2, 1000000000ull), 0); /* at once, not after 1 s */
    ck_assert_int_eq(apf_loopback_idle(lb, UINT32_MAX, 1000000000ull), 0);
    apf_loopback_kick(lb, 2);
    ck_assert_int_eq(apf_loopback_pending(lb, 2), 0);
    ck_assert_int_eq(apf_loopback_pending(lb, 1), 0); /* the bad kick went nowhere */
    ck_assert_int_eq(apf_loopback_idle(lb, 1, 0), 0);
    apf_loopback_kick(lb, 1);
    ck_assert_int_eq(apf_loopback_idle(lb, 1, 1000000000ull), 1); /* a good id still works */
    apf_loopback_destroy(lb);
}
END_TEST

static Suite *loopback_suite(void)
{
    Suite *s = suite_create("loopback");
    TCase *tc = tcase_create("end_to_end");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_loopback_kvm_x86_every_sleeper_wakes_once);
    tcase_add_test(tc, test_loopback_bad_vcpu_ids_are_refused);
    tcase_add_test(tc, test_loopback_kvm_arm64_every_sleeper_wakes_once);
    tcase_add_test(tc, test_loopback_kvm_arm64_ring_every_sleeper_wakes_once);
    tcase_add_test(tc, test_loopback_kvm_arm64_small_ring_every_sleeper_wakes_once);
    tcase_add_test(tc, test_loopback_mmio_x86_every_sleeper_wakes_once);
    tcase_add_test(tc, test_loopback_mmio_arm64_sea_every_sleeper_wakes_once);
    tcase_add_test(tc, test_loopback_mmio_riscv_small_ring_every_sleeper_wakes_once);
    tcase_add_test(tc, test_loopback_xen_every_sleeper_wakes_once);
    tcase_add_test(tc, test_loopback_xen_small_ring_every_sleeper_wakes_once);
    tcase_add_test(tc, test_loopback_s390_every_sleeper_wakes_once);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(loopback_suite)
