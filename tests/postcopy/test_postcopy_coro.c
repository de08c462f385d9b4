/* SPDX-License-Identifier: MIT */
/*
 * Coroutines (examples/postcopy/support/coro.h): switch order and arguments, the return
 * rule, many coroutines, callee-saved state, the stack guard page, and a switch benchmark
 * that prints ns per switch (informational, never asserted).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fenv.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apf_check.h"
#include "coro.h"
#include "sanitize.h"

/* --- switch order and arguments ---------------------------------------------------------- */

struct order_ctx {
    struct pc_coro main, a, b;
    char log[64];
    size_t n;
    void *seen_arg_a, *seen_arg_b;
};

static void log_step(struct order_ctx *o, char c)
{
    o->log[o->n++] = c;
    o->log[o->n] = '\0';
}

static struct order_ctx *g_order; /* only to check that arg is passed, not used for it */

static void order_a(void *arg)
{
    struct order_ctx *o = arg;
    o->seen_arg_a = arg;
    log_step(o, 'a');
    pc_coro_switch(&o->a, &o->b); /* a -> b */
    log_step(o, 'c');
    pc_coro_switch(&o->a, &o->main); /* a -> main */
    log_step(o, 'e');
}

static void order_b(void *arg)
{
    struct order_ctx *o = g_order;
    o->seen_arg_b = arg;
    log_step(o, 'b');
    pc_coro_switch(&o->b, &o->a); /* b -> a */
    log_step(o, 'f');
}

START_TEST(test_switch_order_and_arguments)
{
    struct pc_coro_stack sa, sb;
    ck_assert_int_eq(pc_coro_stack_alloc(&sa, PC_CORO_STACK_DEFAULT), 0);
    ck_assert_int_eq(pc_coro_stack_alloc(&sb, PC_CORO_STACK_DEFAULT), 0);
    static struct order_ctx o;
    memset(&o, 0, sizeof(o));
    g_order = &o;
    int token = 7;
    pc_coro_init_thread(&o.main);
    ck_assert_int_eq(pc_coro_init(&o.a, sa.base, sa.size, order_a, &o), 0);
    ck_assert_int_eq(pc_coro_init(&o.b, sb.base, sb.size, order_b, &token), 0);

    pc_coro_switch(&o.main, &o.a); /* a, b, c, then back here */
    ck_assert_str_eq(o.log, "abc");
    ck_assert_ptr_eq(o.seen_arg_a, &o);
    ck_assert_ptr_eq(o.seen_arg_b, &token);
    log_step(&o, 'd');
    pc_coro_switch(&o.main, &o.a); /* a returns: back to its resumer, main */
    ck_assert_str_eq(o.log, "abcde");
    ck_assert(pc_coro_finished(&o.a));
    ck_assert(!pc_coro_finished(&o.b));
    pc_coro_switch(&o.main, &o.b); /* b resumes after its switch, returns to main */
    ck_assert_str_eq(o.log, "abcdef");
    ck_assert(pc_coro_finished(&o.b));

    pc_coro_destroy(&o.a);
    pc_coro_destroy(&o.b);
    pc_coro_stack_free(&sa);
    pc_coro_stack_free(&sb);
}
END_TEST

/* --- the return rule --------------------------------------------------------------------- */

struct ret_ctx {
    struct pc_coro main, worker, sched;
    int steps;
};

static void ret_worker(void *arg)
{
    struct ret_ctx *r = arg;
    r->steps++;
}

static void ret_sched(void *arg)
{
    struct ret_ctx *r = arg;
    /* The worker returns into us (its set return target), not into its resumer. */
    pc_coro_switch(&r->sched, &r->worker);
    r->steps += 10;
    pc_coro_switch(&r->sched, &r->main);
}

START_TEST(test_return_goes_to_resumer_or_set_target)
{
    struct pc_coro_stack s1, s2;
    ck_assert_int_eq(pc_coro_stack_alloc(&s1, PC_CORO_STACK_DEFAULT), 0);
    ck_assert_int_eq(pc_coro_stack_alloc(&s2, PC_CORO_STACK_DEFAULT), 0);
    struct ret_ctx r;
    memset(&r, 0, sizeof(r));

    /* No target set: back to the resumer (main). */
    ck_assert_int_eq(pc_coro_init(&r.worker, s1.base, s1.size, ret_worker, &r), 0);
    pc_coro_switch(&r.main, &r.worker);
    ck_assert_int_eq(r.steps, 1);
    ck_assert(pc_coro_finished(&r.worker));
    pc_coro_destroy(&r.worker);

    /* Re-initialised on the same stack, with a return target. */
    ck_assert_int_eq(pc_coro_init(&r.worker, s1.base, s1.size, ret_worker, &r), 0);
    ck_assert(!pc_coro_finished(&r.worker));
    ck_assert_int_eq(pc_coro_init(&r.sched, s2.base, s2.size, ret_sched, &r), 0);
    pc_coro_set_return(&r.worker, &r.sched);
    pc_coro_switch(&r.main, &r.sched);
    ck_assert_int_eq(r.steps, 12);
    ck_assert(pc_coro_finished(&r.worker));
    ck_assert(!pc_coro_finished(&r.sched));

    pc_coro_destroy(&r.worker);
    pc_coro_destroy(&r.sched);
    pc_coro_stack_free(&s1);
    pc_coro_stack_free(&s2);
}
END_TEST

START_TEST(test_init_rejects_bad_arguments)
{
    struct pc_coro c;
    char small[1024];
    ck_assert_int_eq(pc_coro_init(&c, NULL, 65536, ret_worker, NULL), -EINVAL);
    ck_assert_int_eq(pc_coro_init(&c, small, sizeof(small), ret_worker, NULL), -EINVAL);
    ck_assert_int_eq(pc_coro_init(&c, small, 65536, NULL, NULL), -EINVAL);
    struct pc_coro_stack st;
    ck_assert_int_eq(pc_coro_stack_alloc(&st, 0), -EINVAL);
    ck_assert_int_eq(pc_coro_stack_alloc(&st, 5000), 0);
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    ck_assert_uint_eq(st.size % pg, 0);
    ck_assert_uint_ge(st.size, 5000);
    ck_assert_uint_eq(st.guard, pg);
    ck_assert_uint_eq((uintptr_t)st.base % pg, 0);
    pc_coro_stack_free(&st);
    ck_assert_ptr_null(st.base);
    pc_coro_stack_free(&st); /* a zeroed stack: no-op */
}
END_TEST

/* --- many coroutines under a round-robin scheduler ----------------------------------------- */

#define MANY 1000
#define ROUNDS 20

struct many_task {
    struct pc_coro co;
    struct pc_coro_stack st;
    struct pc_coro *sched;
    unsigned id;
    unsigned runs;
    uint64_t sum;
};

static void many_fn(void *arg)
{
    struct many_task *t = arg;
    for (unsigned r = 0; r < ROUNDS; r++) {
        /* Locals live across the switch: each task's own stack keeps them. */
        uint64_t local = (uint64_t)t->id * 1000u + r;
        t->runs++;
        pc_coro_switch(&t->co, t->sched);
        t->sum += local;
    }
}

START_TEST(test_many_coroutines_round_robin)
{
    static struct many_task tasks[MANY];
    struct pc_coro sched;
    pc_coro_init_thread(&sched);
    for (unsigned i = 0; i < MANY; i++) {
        memset(&tasks[i], 0, sizeof(tasks[i]));
        ck_assert_int_eq(pc_coro_stack_alloc(&tasks[i].st, 32 * 1024), 0);
        tasks[i].id = i;
        tasks[i].sched = &sched;
        ck_assert_int_eq(
            pc_coro_init(&tasks[i].co, tasks[i].st.base, tasks[i].st.size, many_fn, &tasks[i]), 0);
    }
    unsigned live = MANY;
    while (live > 0) {
        live = 0;
        for (unsigned i = 0; i < MANY; i++) {
            if (pc_coro_finished(&tasks[i].co))
                continue;
            pc_coro_switch(&sched, &tasks[i].co);
            live += !pc_coro_finished(&tasks[i].co);
        }
    }
    for (unsigned i = 0; i < MANY; i++) {
        uint64_t want = (uint64_t)i * 1000u * ROUNDS + (ROUNDS - 1) * ROUNDS / 2;
        ck_assert_uint_eq(tasks[i].runs, ROUNDS);
        ck_assert_uint_eq(tasks[i].sum, want);
        pc_coro_destroy(&tasks[i].co);
        pc_coro_stack_free(&tasks[i].st);
    }
}
END_TEST

/* --- callee-saved state -------------------------------------------------------------------- */

struct fp_ctx {
    struct pc_coro main, co;
    double d_in, d_out;
    int round_in_co;
};

static void fp_fn(void *arg)
{
    struct fp_ctx *f = arg;
    fesetround(FE_UPWARD);
    volatile double x = f->d_in;
    double acc = 0.0;
    for (int i = 0; i < 8; i++) {
        acc += x * (double)(i + 1);
        pc_coro_switch(&f->co, &f->main);
    }
    f->round_in_co = fegetround();
    f->d_out = acc;
}

START_TEST(test_fp_state_and_locals_survive_switches)
{
    struct pc_coro_stack st;
    ck_assert_int_eq(pc_coro_stack_alloc(&st, PC_CORO_STACK_DEFAULT), 0);
    struct fp_ctx f;
    memset(&f, 0, sizeof(f));
    f.d_in = 1.5;
    ck_assert_int_eq(pc_coro_init(&f.co, st.base, st.size, fp_fn, &f), 0);
    fesetround(FE_TONEAREST);
    double mine = 0.25;
    for (int i = 0; i < 8; i++) {
        pc_coro_switch(&f.main, &f.co);
        /* The coroutine's rounding mode does not leak into this context. */
        ck_assert_int_eq(fegetround(), FE_TONEAREST);
        mine *= 2.0;
    }
    pc_coro_switch(&f.main, &f.co); /* finishes */
    ck_assert(pc_coro_finished(&f.co));
    ck_assert_int_eq(f.round_in_co, FE_UPWARD);
    ck_assert(f.d_out == 1.5 * 36.0);
    ck_assert(mine == 64.0);
    pc_coro_destroy(&f.co);
    pc_coro_stack_free(&st);
}
END_TEST

/* --- the guard page ------------------------------------------------------------------------ */

static struct pc_coro_stack g_guard_stack;

static void guard_segv(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    uintptr_t a = (uintptr_t)si->si_addr;
    uintptr_t lo = (uintptr_t)g_guard_stack.base - g_guard_stack.guard;
    _exit(a >= lo && a < (uintptr_t)g_guard_stack.base ? 42 : 43);
}

static volatile unsigned g_depth_limit = 1u << 30; /* far beyond any stack */

static __attribute__((noinline)) unsigned recurse(unsigned depth)
{
    if (depth >= g_depth_limit)
        return 0;
    volatile char frame[512];
    frame[0] = (char)depth;
    frame[511] = (char)(frame[0] + 1);
    return recurse(depth + 1) + frame[511]; /* not a tail call */
}

static void guard_fn(void *arg)
{
    (void)arg;
    (void)recurse(0);
}

START_TEST(test_stack_overflow_hits_guard_page)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* The handler needs a stack of its own: the faulting one is exhausted. */
        static char alt[64 * 1024];
        stack_t ss = {.ss_sp = alt, .ss_size = sizeof(alt)};
        sigaltstack(&ss, NULL);
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = guard_segv;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigaction(SIGSEGV, &sa, NULL);
        if (pc_coro_stack_alloc(&g_guard_stack, 64 * 1024) != 0)
            _exit(44);
        struct pc_coro m, c;
        pc_coro_init_thread(&m);
        pc_coro_init(&c, g_guard_stack.base, g_guard_stack.size, guard_fn, NULL);
        pc_coro_switch(&m, &c);
        _exit(45); /* the recursion never returns */
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "child died of signal %d", WTERMSIG(status));
    ck_assert_int_eq(WEXITSTATUS(status), 42); /* 43: SIGSEGV, but not in the guard page */
}
END_TEST

/* --- the benchmark ------------------------------------------------------------------------- */

struct bench_ctx {
    struct pc_coro main, co;
    unsigned long n;
};

static void bench_fn(void *arg)
{
    struct bench_ctx *b = arg;
    for (;;)
        pc_coro_switch(&b->co, &b->main);
}

static uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

START_TEST(test_switch_benchmark_prints_ns_per_switch)
{
    struct pc_coro_stack st;
    ck_assert_int_eq(pc_coro_stack_alloc(&st, PC_CORO_STACK_DEFAULT), 0);
    struct bench_ctx b;
    memset(&b, 0, sizeof(b));
    ck_assert_int_eq(pc_coro_init(&b.co, st.base, st.size, bench_fn, &b), 0);
    /* Sanitizers make a switch 4 to 200 times slower: fewer rounds, same code path. */
    const unsigned long rounds = PC_ASAN || PC_TSAN ? 20000 : 1000000;
    pc_coro_switch(&b.main, &b.co); /* warm up */
    uint64_t best = UINT64_MAX;
    for (int rep = 0; rep < 5; rep++) {
        uint64_t t0 = mono_ns();
        for (unsigned long i = 0; i < rounds; i++)
            pc_coro_switch(&b.main, &b.co);
        uint64_t dt = mono_ns() - t0;
        best = dt < best ? dt : best;
    }
    /* Two switches per round. Timing is reported, never asserted. */
    printf("coro benchmark (%s): %.1f ns per switch (best of 5 x %lu round trips)\n",
           PC_CORO_BACKEND, (double)best / (2.0 * (double)rounds), rounds);
    fflush(stdout);
    /* The coroutine never finishes: abandoning it is allowed (only its stack is freed). */
    pc_coro_destroy(&b.co);
    pc_coro_stack_free(&st);
}
END_TEST

static Suite *coro_suite(void)
{
    Suite *s = suite_create("postcopy_coro");
    TCase *tc = tcase_create("coro");
    tcase_add_test(tc, test_switch_order_and_arguments);
    tcase_add_test(tc, test_return_goes_to_resumer_or_set_target);
    tcase_add_test(tc, test_init_rejects_bad_arguments);
    tcase_add_test(tc, test_many_coroutines_round_robin);
    tcase_add_test(tc, test_fp_state_and_locals_survive_switches);
    tcase_add_test(tc, test_stack_overflow_hits_guard_page);
    tcase_add_test(tc, test_switch_benchmark_prints_ns_per_switch);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(coro_suite)
