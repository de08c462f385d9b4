/* SPDX-License-Identifier: MIT */
/*
 * The guest-side fuzz harness shared by fuzz_guest.c (KVM x86, arm64 slot and ring) and
 * fuzz_guest_transports.c (xen-hvm, apf-mmio, s390): the kernel (tasks, sleep, halt, locks:
 * struct apf_guest_env_ops), the input-driven event loop and the invariants common to every
 * transport. Tasks "sleep" by running more input-driven events (other tasks faulting,
 * interrupts, host writes, CPU offline/online) until they are woken; when the input runs out,
 * the CPU goes offline, which must wake them.
 *
 * A target includes this file once (it holds static definitions: each target is one
 * translation unit, so the hooks below inline as if written in place) and then defines the
 * transport hooks, the gt_* functions declared here: how the host posts "not present" and
 * "page ready" on its channel, how the guest takes them, what the host may write besides,
 * and what CPU online/offline answer. Bytes of the input are consumed front to back by the
 * core and the hooks in call order; the core consumes them exactly as fuzz_guest.c did
 * before the split, so the guest corpus keeps its meaning.
 *
 * Invariants checked here: no lost wake-up (a well-formed "page ready" for a sleeper's token,
 * or a wake-all, wakes it at once; one that came in a waiter's window stops it from sleeping
 * or halting; offline wakes every sleeper of the CPU); no wake of a task that is not waiting;
 * nothing sleeps or halts holding a lock; the entry points return only what they document;
 * counters stay within the pool; no overrun (ASan) and no endless loop (libFuzzer timeout).
 */
#ifndef APF_TESTS_FUZZ_GUEST_ENV_H
#define APF_TESTS_FUZZ_GUEST_ENV_H

#include "apf/guest.h"
#include "fuzz.h"

#define N_CPUS 2u
#define MAX_DEPTH 4
#define MAX_SLEEPERS 16

/* A "not present" being handled (innermost last): what reached its CPU since. */
struct window {
    uint32_t cpu, token;
    uint32_t wake_alls; /* the CPU's well-formed wake-alls and offlines when it began */
    int ready_seen;     /* a well-formed "page ready" for its token came since */
    int checked;
};

struct sleeper {
    struct apf_guest_waiter *w; /* NULL for a halted wait (the waiter is not passed) */
    uintptr_t task;
    uint32_t cpu;
};

static struct {
    struct fz *f;
    struct apf_guest *g;
    uint32_t n_placeholders;
    uint32_t cur_cpu;
    uintptr_t cur_task, next_task;
    int depth, locks, steps;
    struct sleeper sl[MAX_SLEEPERS];
    int n_sl;
    int chaos[N_CPUS]; /* the host wrote raw values since the CPU came online */
    uint32_t wake_alls[N_CPUS];
    struct window win[MAX_DEPTH + 2];
    int n_win;
    uint32_t last_np[N_CPUS];
    long halts;
    _Alignas(64) unsigned char mem[160 * 1024];
} G;

/* ---- the transport hooks (defined by the target, after this file) ---- */

/* The host posts "not present" for token t on cpu's channel (before the exception). */
static void gt_host_np(uint32_t cpu, uint32_t t);
/* The "not present" exception for t reaches the guest (the current task faulted on cpu). */
static void gt_take_np(uint32_t cpu, uint32_t t);
/* Called once per "not present" after the core's duplicate-token check (more such checks). */
static void gt_np_tokens(uint32_t cpu, uint32_t t);
/* The host posts "page ready" for t and the guest takes its interrupt: 1 if it was posted
 * well-formed (then the core checks that it woke what it must). */
static int gt_ready(uint32_t cpu, uint32_t t);
/* Whether a well-formed "page ready" on cpu must wake its sleepers at once (a ring may hold
 * older entries it cannot get past). */
static int gt_ready_at_once(uint32_t cpu);
/* Whether a "page ready" for a token taken on cpu a answers a waiter of cpu b (the same
 * token space): a == b, or any CPU where completions float (s390). */
static int gt_same_tokens(uint32_t a, uint32_t b);
/* The host writes anything it likes (raw values, malformed events). */
static void gt_host_chaos(uint32_t cpu);
/* An interrupt or an unrelated fault with nothing new for APF. */
static void gt_unrelated(uint32_t cpu);
/* CPU online / offline through the runtime (the host's answers, what they must return). */
static int gt_online(uint32_t cpu);
static int gt_offline(uint32_t cpu);
/* A waiter of cpu was woken (after the core's own checks). */
static void gt_woken(uintptr_t task, uint32_t cpu, int halted);
/* The innermost waiter (G.win[G.n_win - 1]) is about to sleep or halt. */
static void gt_waiting(void);

static void run_event(void);

/* ---- the channel, as the host writes it ---- */

static struct apf_shared_area *area(uint32_t cpu)
{
    return (struct apf_shared_area *)(uintptr_t)apf_guest_area(G.g, cpu);
}

static struct apf_ring *ring(uint32_t cpu)
{
    return (struct apf_ring *)(uintptr_t)apf_guest_ring(G.g, cpu);
}

/* ---- the kernel ---- */

static void *e_current_task(void *ctx)
{
    (void)ctx;
    return (void *)G.cur_task;
}

static uint32_t e_cpu_id(void *ctx)
{
    (void)ctx;
    return G.cur_cpu;
}

/* Called after "not present" was read, before the waiter is in the table: interrupts that
 * arrive in this window (one nested event) - the lost wake-up's home. */
static int e_can_sleep(void *ctx)
{
    (void)ctx;
    uint8_t b = fz_u8(G.f);
    if ((b & 0x30) == 0x30 && G.depth < MAX_DEPTH && G.f->n > 0 && G.steps < 2000) {
        uint32_t cpu = G.cur_cpu;
        uintptr_t task = G.cur_task;
        G.depth++;
        run_event();
        G.depth--;
        G.cur_cpu = cpu;
        G.cur_task = task;
    }
    return (b & 7) != 0;
}

/* About to sleep or halt for the innermost "not present": a wake-all of its CPU, or a
 * "page ready" for its token, that came in its window must have stopped it (it would wait
 * for ever: nothing else will come for that token). */
static void check_window(const char *how)
{
    if (G.n_win == 0)
        return;
    struct window *w = &G.win[G.n_win - 1];
    if (w->checked || G.chaos[w->cpu])
        return;
    w->checked = 1;
    FZ_ASSERT(w->wake_alls == G.wake_alls[w->cpu],
              "lost wake-up: %s although a wake-all came in its window (token %#x)", how, w->token);
    FZ_ASSERT(!w->ready_seen,
              "lost wake-up: %s although its page ready came in its window (token %#x)", how,
              w->token);
}

/* The rest of the system runs while a task waits: more events, or, with the input (or the
 * nesting budget) exhausted, CPU offline - which must wake it. */
static void wait_loop(struct sleeper *s)
{
    uint32_t cpu = G.cur_cpu;
    uintptr_t task = G.cur_task;
    int forced = 0;
    for (;;) {
        if (apf_guest_waiter_woken(s->w))
            break;
        if (!forced && G.depth < MAX_DEPTH && G.f->n > 0 && G.steps < 2000) {
            G.depth++;
            run_event();
            G.depth--;
            G.cur_cpu = cpu;
            G.cur_task = task;
            continue;
        }
        FZ_ASSERT(!forced, "CPU offline left a sleeper of CPU %u asleep", s->cpu);
        forced = 1;
        int r = gt_offline(s->cpu);
        FZ_ASSERT(r >= 0, "offline %d", r);
    }
}

static void e_sleep(void *ctx, struct apf_guest_waiter *w)
{
    (void)ctx;
    FZ_ASSERT(G.locks == 0, "sleeping with a lock held");
    FZ_ASSERT(G.n_sl < MAX_SLEEPERS);
    check_window("sleeps");
    gt_waiting();
    FZ_ASSERT(apf_guest_waiter_cpu(w) == G.cur_cpu);
    struct sleeper *s = &G.sl[G.n_sl++];
    *s = (struct sleeper){.w = w, .task = G.cur_task, .cpu = G.cur_cpu};
    wait_loop(s);
    G.n_sl--;
}

static void e_wake(void *ctx, void *task, uint32_t cpu, int halted)
{
    (void)ctx;
    FZ_ASSERT(cpu < N_CPUS);
    FZ_ASSERT((uintptr_t)task != 0 && (uintptr_t)task < G.next_task, "woke unknown task");
    gt_woken((uintptr_t)task, cpu, halted);
}

static void e_halt(void *ctx)
{
    (void)ctx;
    FZ_ASSERT(G.locks == 0, "halting with a lock held");
    /* A halted waiter: the rest of the system takes a turn (one event), then the runtime
     * checks its waiter again; once the input is exhausted the CPU goes offline, which
     * wakes halted waiters too. Bounded: a waiter offline does not wake would make the
     * runtime halt for ever. */
    FZ_ASSERT(++G.halts < 100000, "a halted waiter is never woken");
    check_window("halts");
    gt_waiting();
    uint32_t cpu = G.cur_cpu;
    uintptr_t task = G.cur_task;
    if (G.depth < MAX_DEPTH && G.f->n > 0 && G.steps < 2000 && G.n_sl < MAX_SLEEPERS) {
        G.sl[G.n_sl++] = (struct sleeper){.w = NULL, .task = task, .cpu = cpu};
        G.depth++;
        run_event();
        G.depth--;
        G.n_sl--;
        G.cur_cpu = cpu;
        G.cur_task = task;
        return;
    }
    FZ_ASSERT(gt_offline(cpu) >= 0);
}

static uintptr_t e_lock(void *ctx, struct apf_guest_lock *l)
{
    (void)ctx;
    FZ_ASSERT(l->word == 0, "lock taken twice (self-deadlock)");
    l->word = 1;
    G.locks++;
    return 0;
}

static void e_unlock(void *ctx, struct apf_guest_lock *l, uintptr_t flags)
{
    (void)ctx, (void)flags;
    FZ_ASSERT(l->word == 1);
    l->word = 0;
    G.locks--;
}

static uint64_t e_v2p(void *ctx, const void *va)
{
    (void)ctx;
    return (uint64_t)(uintptr_t)va;
}

static const struct apf_guest_env_ops env = {
    e_current_task, e_cpu_id, e_can_sleep, e_sleep, e_wake, e_halt, e_lock, e_unlock, e_v2p, NULL,
};

/* ---- events ---- */

static uint32_t pick_token(uint32_t cpu)
{
    uint8_t k = fz_u8(G.f) % 8;
    if (k < 3) { /* a sleeper's token */
        for (int i = G.n_sl - 1; i >= 0; i--)
            if (G.sl[i].w && G.sl[i].cpu == cpu && !apf_guest_waiter_woken(G.sl[i].w))
                return apf_guest_waiter_token(G.sl[i].w);
        return G.last_np[cpu];
    }
    if (k == 3)
        return G.last_np[cpu];
    if (k == 4)
        return APF_TOKEN_WAKE_ALL;
    if (k == 5)
        return 0;
    return fz_u32(G.f);
}

static void check_stats(uint32_t cpu)
{
    struct apf_guest_stats st;
    FZ_ASSERT(apf_guest_stats(G.g, cpu, &st) == 0);
    FZ_ASSERT(st.placeholders_in_use <= G.n_placeholders, "%u placeholders in use",
              st.placeholders_in_use);
    uint32_t mine = 0;
    for (int i = 0; i < G.n_sl; i++)
        mine += G.sl[i].cpu == cpu && (G.sl[i].w == NULL || !apf_guest_waiter_woken(G.sl[i].w));
    FZ_ASSERT(st.waiting <= mine + 1, "%u waiting, %u tasks asleep", st.waiting, mine);
    FZ_ASSERT(st.reserved0 == 0);
}

static void run_event(void)
{
    G.steps++;
    uint32_t cpu = G.cur_cpu;
    switch (fz_u8(G.f) % 10) {
    case 0:
    case 1: { /* "not present" for a new task on this CPU */
        uint32_t t = pick_token(cpu);
        if (fz_u8(G.f) & 3)
            t = 0x1000u * (1 + fz_u8(G.f)) + (uint32_t)G.steps; /* a fresh token */
        G.last_np[cpu] = t;
        /* A token already waited for on any CPU (or 0, ~0) is the host misbehaving: tokens
         * are unique among the outstanding ones of the whole VM (the host puts the vCPU in
         * them), and the sleep table is keyed by the token alone, as a "page ready" may come
         * on another CPU. The lost-wake-up checks no longer apply to either CPU (robustness
         * ones still do): the page ready of one waiter may wake the other. */
        for (int i = 0; i < G.n_win; i++)
            if (G.win[i].token == t)
                G.chaos[cpu] = G.chaos[G.win[i].cpu] = 1;
        for (int i = 0; i < G.n_sl; i++)
            if (G.sl[i].w && apf_guest_waiter_token(G.sl[i].w) == t)
                G.chaos[cpu] = G.chaos[G.sl[i].cpu] = 1;
        if (!apf_token_is_fault(t))
            G.chaos[cpu] = 1;
        gt_np_tokens(cpu, t);
        gt_host_np(cpu, t);
        uintptr_t task = G.cur_task;
        G.cur_task = G.next_task++;
        G.win[G.n_win++] = (struct window){.cpu = cpu, .token = t, .wake_alls = G.wake_alls[cpu]};
        gt_take_np(cpu, t);
        G.n_win--;
        G.cur_task = task;
        break;
    }
    case 2:
    case 3: { /* "page ready" then its interrupt */
        uint32_t t = pick_token(cpu);
        int sent = gt_ready(cpu, t);
        if (!sent || G.chaos[cpu])
            break;
        if (t == APF_TOKEN_WAKE_ALL)
            G.wake_alls[cpu]++;
        for (int i = 0; i < G.n_win; i++)
            if (gt_same_tokens(cpu, G.win[i].cpu) && G.win[i].token == t && gt_ready_at_once(cpu))
                G.win[i].ready_seen = 1;
        /* No lost wake-up: the sleepers of that token (all of the CPU's for a wake-all)
         * are awake now. (Only slot channels: a ring may hold older entries first.) */
        if (gt_ready_at_once(cpu))
            for (int i = 0; i < G.n_sl; i++)
                if (G.sl[i].w && gt_same_tokens(cpu, G.sl[i].cpu) &&
                    (t == APF_TOKEN_WAKE_ALL || apf_guest_waiter_token(G.sl[i].w) == t))
                    FZ_ASSERT(apf_guest_waiter_woken(G.sl[i].w),
                              "page ready %#x did not wake its sleeper", t);
        break;
    }
    case 4: /* the host writes anything anywhere in the channel */
        gt_host_chaos(cpu);
        break;
    case 5: /* an interrupt or an unrelated fault (NMI, kernel #PF) with nothing new */
        gt_unrelated(cpu);
        break;
    case 6: {
        int r = gt_offline(cpu);
        FZ_ASSERT(r >= 0);
        G.wake_alls[cpu]++;
        for (int i = 0; i < G.n_sl; i++)
            if (G.sl[i].w && G.sl[i].cpu == cpu)
                FZ_ASSERT(apf_guest_waiter_woken(G.sl[i].w), "offline left a sleeper");
        struct apf_guest_stats st;
        apf_guest_stats(G.g, cpu, &st);
        FZ_ASSERT(st.waiting == 0 && st.enabled == 0, "offline: %u still waiting", st.waiting);
        break;
    }
    case 7: {
        int r = gt_online(cpu);
        if (r == 0)
            G.chaos[cpu] = 0;
        break;
    }
    case 8:
        G.cur_cpu = fz_u8(G.f) % N_CPUS;
        break;
    default:
        check_stats(cpu);
        break;
    }
}

/* Per input, before the target reads its configuration. */
static void ge_begin(struct fz *f)
{
    memset(&G.sl, 0, sizeof(G.sl));
    G.f = f;
    G.cur_cpu = 0;
    G.cur_task = 1;
    G.next_task = 2;
    G.depth = G.locks = G.steps = G.n_sl = 0;
    G.halts = 0;
    memset(G.chaos, 0, sizeof(G.chaos));
    memset(G.wake_alls, 0, sizeof(G.wake_alls));
    G.n_win = 0;
    memset(G.last_np, 0, sizeof(G.last_np));
}

/* The runtime over cfg (the env is ours) in G.mem. */
static void ge_init(struct apf_guest_config *cfg)
{
    cfg->n_cpus = N_CPUS;
    cfg->env = &env;
    if (G.n_placeholders == 0)
        G.n_placeholders = 2 * N_CPUS + 16;
    size_t need = apf_guest_mem_size(cfg);
    FZ_ASSERT(need > 0 && need <= sizeof(G.mem), "mem %zu", need);
    FZ_ASSERT(apf_guest_init(G.mem, sizeof(G.mem), cfg, &G.g) == 0);
}

/* The events until the input (or the step budget) runs out, then every CPU offline. */
static void ge_run(void)
{
    while (G.f->n > 0 && G.steps < 2000)
        run_event();
    for (uint32_t c = 0; c < N_CPUS; c++) {
        FZ_ASSERT(gt_offline(c) >= 0);
        check_stats(c);
    }
    FZ_ASSERT(G.locks == 0 && G.n_sl == 0);
}

#endif
