/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the guest runtime's entry points with the shared area and the ready ring
 * fully attacker-controlled (the host is the attacker). Three channels: KVM x86 (area +
 * CR2), arm64 slot (area + IRQ_ACK), arm64 ready ring; real backends over fake arch hooks
 * that answer as a host would. Tasks "sleep" by running more input-driven events (other
 * tasks faulting, interrupts, host writes, CPU offline/online) until they are woken;
 * when the input runs out, the CPU goes offline, which must wake them.
 * Invariants: no lost wake-up (a well-formed "page ready" for a sleeper's token, or a
 * wake-all, wakes it at once; offline wakes every sleeper of the CPU); no wake of a task
 * that is not waiting; nothing sleeps holding a lock; release before ACK (x86: token
 * cleared, arm64: reason and token cleared when the ACK is sent); the entry points return
 * only what they document; counters stay within the pool; no overrun of the channel
 * (ASan) and no endless loop (libFuzzer timeout).
 */
#include "apf/guest.h"
#include "fuzz.h"

#define N_CPUS 2u
#define MAX_DEPTH 4
#define MAX_SLEEPERS 16

enum { M_X86, M_ARM_SLOT, M_ARM_RING };

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
    int mode;
    uint32_t n_placeholders;
    struct apf_guest_kvm_x86 kx;
    struct apf_guest_kvm_arm64 ka;
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

/* ---- fake arch hooks: the host's answers ---- */

static void x_cpuid(void *ctx, uint32_t cpu, uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    (void)ctx, (void)cpu, (void)sub;
    r[0] = r[1] = r[2] = r[3] = 0;
    if (leaf == APF_KVM_CPUID_SIGNATURE) {
        r[0] = APF_KVM_CPUID_FEATURES;
        r[1] = APF_KVM_SIGNATURE_EBX;
        r[2] = APF_KVM_SIGNATURE_ECX;
        r[3] = APF_KVM_SIGNATURE_EDX;
    } else if (leaf == APF_KVM_CPUID_FEATURES) {
        r[0] = (1u << APF_KVM_FEATURE_ASYNC_PF) | (1u << APF_KVM_FEATURE_ASYNC_PF_INT);
    }
}

static int x_wrmsr(void *ctx, uint32_t cpu, uint32_t msr, uint64_t v)
{
    (void)ctx, (void)v;
    FZ_ASSERT(cpu < N_CPUS);
    if (msr == APF_KVM_MSR_ASYNC_PF_ACK)
        FZ_ASSERT(area(cpu)->token == 0, "ACK sent before the token was released");
    return 0;
}

static int x_rdmsr(void *ctx, uint32_t cpu, uint32_t msr, uint64_t *v)
{
    (void)ctx, (void)cpu, (void)msr;
    *v = 0;
    return 0;
}

static const struct apf_x86_arch_ops x_arch = {x_cpuid, x_wrmsr, x_rdmsr};

static void a_smccc(void *ctx, uint32_t cpu, const uint64_t in[4], uint64_t out[4])
{
    (void)ctx;
    out[0] = out[1] = out[2] = out[3] = 0;
    if ((uint32_t)in[0] == APF_ARM64_FEATURES_FUNC_ID) {
        out[0] = 1ull << APF_ARM64_FEATURE_BIT;
        return;
    }
    switch (in[1]) {
    case APF_ARM64_FUNC_VERSION:
        out[0] = APF_PROTO_VERSION;
        break;
    case APF_ARM64_FUNC_SLOTS:
        out[0] = 64;
        break;
    case APF_ARM64_FUNC_SDEI:
        out[0] = APF_ARM64_SDEI_EVENT_DEFAULT;
        break;
    case APF_ARM64_FUNC_IRQ:
        out[0] = 20;
        break;
    case APF_ARM64_FUNC_FEATURES:
        out[0] = APF_FEATURE_RING;
        break;
    case APF_ARM64_FUNC_ENABLE:
    case APF_ARM64_FUNC_RING:
        break;
    case APF_ARM64_FUNC_IRQ_ACK:
        FZ_ASSERT(cpu < N_CPUS);
        FZ_ASSERT(area(cpu)->flags == 0 && area(cpu)->token == 0,
                  "IRQ_ACK sent before the slot was released");
        break;
    default:
        out[0] = (uint64_t)(int64_t)APF_SMCCC_NOT_SUPPORTED;
    }
}

static const struct apf_arm64_arch_ops a_arch = {a_smccc};

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
        int r = apf_guest_cpu_offline(G.g, s->cpu);
        FZ_ASSERT(r >= 0, "offline %d", r);
    }
}

static void e_sleep(void *ctx, struct apf_guest_waiter *w)
{
    (void)ctx;
    FZ_ASSERT(G.locks == 0, "sleeping with a lock held");
    FZ_ASSERT(G.n_sl < MAX_SLEEPERS);
    check_window("sleeps");
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
    (void)halted;
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
    FZ_ASSERT(apf_guest_cpu_offline(G.g, cpu) >= 0);
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

/* "page ready" for token t, well-formed (into a free slot / a ring with room). 1 if sent. */
static int host_ready(uint32_t cpu, uint32_t t)
{
    if (G.mode == M_X86) {
        if (area(cpu)->token != 0)
            return 0;
        area(cpu)->token = t;
        return 1;
    }
    struct apf_ring *r = ring(cpu);
    if (r) {
        if (r->prod - r->cons >= r->size || r->size == 0 || (r->size & (r->size - 1)) ||
            r->size > APF_RING_MAX_ENTRIES)
            return 0;
        r->entries[r->prod & (r->size - 1)] = t;
        __atomic_store_n(&r->prod, r->prod + 1, __ATOMIC_RELEASE);
        return 1;
    }
    if (area(cpu)->flags != 0 || area(cpu)->token != 0)
        return 0;
    area(cpu)->flags = APF_REASON_READY;
    area(cpu)->token = t;
    return 1;
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
        /* A token already waited for on this CPU (or 0, ~0) is the host misbehaving: the
         * lost-wake-up checks no longer apply to this CPU (robustness ones still do). */
        for (int i = 0; i < G.n_win; i++)
            if (G.win[i].cpu == cpu && G.win[i].token == t)
                G.chaos[cpu] = 1;
        for (int i = 0; i < G.n_sl; i++)
            if (G.sl[i].w && G.sl[i].cpu == cpu && apf_guest_waiter_token(G.sl[i].w) == t)
                G.chaos[cpu] = 1;
        if (!apf_token_is_fault(t))
            G.chaos[cpu] = 1;
        if (area(cpu)) {
            area(cpu)->flags = APF_REASON_NOT_PRESENT;
            if (G.mode != M_X86)
                area(cpu)->token = t;
        }
        uintptr_t task = G.cur_task;
        G.cur_task = G.next_task++;
        G.win[G.n_win++] = (struct window){.cpu = cpu, .token = t, .wake_alls = G.wake_alls[cpu]};
        int r = apf_guest_on_exception(G.g, cpu, t);
        FZ_ASSERT(r == 0 || r == 1, "on_exception %d", r);
        G.n_win--;
        G.cur_task = task;
        break;
    }
    case 2:
    case 3: { /* "page ready" then its interrupt */
        uint32_t t = pick_token(cpu);
        struct apf_guest_stats st;
        apf_guest_stats(G.g, cpu, &st);
        int sent = st.enabled && host_ready(cpu, t);
        int r = apf_guest_on_interrupt(G.g, cpu);
        FZ_ASSERT(r >= 0, "on_interrupt %d", r);
        if (!sent || G.chaos[cpu])
            break;
        if (t == APF_TOKEN_WAKE_ALL)
            G.wake_alls[cpu]++;
        for (int i = 0; i < G.n_win; i++)
            if (G.win[i].cpu == cpu && G.win[i].token == t && (G.mode != M_ARM_RING || !ring(cpu)))
                G.win[i].ready_seen = 1;
        /* No lost wake-up: the sleepers of that token (all of the CPU's for a wake-all)
         * are awake now. (Only slot channels: a ring may hold older entries first.) */
        if (G.mode != M_ARM_RING || ring(cpu) == NULL)
            for (int i = 0; i < G.n_sl; i++)
                if (G.sl[i].w && G.sl[i].cpu == cpu &&
                    (t == APF_TOKEN_WAKE_ALL || apf_guest_waiter_token(G.sl[i].w) == t))
                    FZ_ASSERT(apf_guest_waiter_woken(G.sl[i].w),
                              "page ready %#x did not wake its sleeper", t);
        break;
    }
    case 4: { /* the host writes anything anywhere in the channel */
        G.chaos[cpu] = 1;
        uint32_t val = (uint32_t)fz_val(
            G.f, (const uint64_t[]){0, 1, 2, 3, 0xffffffffu, 0x80000000u, 512, 513}, 8);
        uint8_t where = fz_u8(G.f);
        struct apf_ring *r = ring(cpu);
        if (r && (where & 1)) {
            uint32_t *w = (uint32_t *)r;
            w[fz_u16(G.f) % (APF_RING_PAGE_SIZE / 4)] = val;
        } else if (area(cpu)) {
            uint32_t *w = (uint32_t *)area(cpu);
            w[(where >> 1) % 16] = val;
        }
        break;
    }
    case 5: { /* an interrupt or an unrelated fault (NMI, kernel #PF) with nothing new */
        if (fz_u8(G.f) & 1) {
            FZ_ASSERT(apf_guest_on_interrupt(G.g, cpu) >= 0);
        } else {
            int x86_genuine = G.mode == M_X86 && area(cpu) && area(cpu)->flags == 0;
            int r = apf_guest_on_exception(G.g, cpu, fz_u32(G.f));
            FZ_ASSERT(r == 0 || r == 1);
            if (x86_genuine)
                FZ_ASSERT(r == 0, "a genuine #PF taken as APF");
        }
        break;
    }
    case 6: {
        int r = apf_guest_cpu_offline(G.g, cpu);
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
        int r = apf_guest_cpu_online(G.g, cpu);
        FZ_ASSERT(r == 0 || r == APF_EALREADY, "online %d", r);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = {data, size};
    memset(&G.sl, 0, sizeof(G.sl));
    G.f = &f;
    G.mode = fz_u8(&f) % 3;
    G.n_placeholders = fz_u8(&f) % 9;
    G.cur_cpu = 0;
    G.cur_task = 1;
    G.next_task = 2;
    G.depth = G.locks = G.steps = G.n_sl = 0;
    G.halts = 0;
    memset(G.chaos, 0, sizeof(G.chaos));
    memset(G.wake_alls, 0, sizeof(G.wake_alls));
    G.n_win = 0;
    memset(G.last_np, 0, sizeof(G.last_np));
    const struct apf_guest_backend_ops *be;
    void *bctx;
    if (G.mode == M_X86) {
        apf_guest_kvm_x86_init(&G.kx, &x_arch, NULL);
        be = &apf_guest_backend_kvm_x86;
        bctx = &G.kx;
    } else {
        apf_guest_kvm_arm64_init(&G.ka, &a_arch, NULL);
        if (G.mode == M_ARM_RING)
            G.ka.ring_entries = 2u << (fz_u8(&f) % 9); /* 2..512 */
        be = &apf_guest_backend_kvm_arm64;
        bctx = &G.ka;
    }
    struct apf_guest_config cfg = {
        .n_cpus = N_CPUS,
        .n_buckets = 1u << (fz_u8(&f) % 4),
        .n_placeholders = G.n_placeholders,
        .vector = 0xec,
        .flags = (fz_u8(&f) & 1) ? APF_GUEST_SEND_ALWAYS : 0,
        .env = &env,
        .backend = be,
        .backend_ctx = bctx,
    };
    if (G.n_placeholders == 0)
        G.n_placeholders = 2 * N_CPUS + 16;
    size_t need = apf_guest_mem_size(&cfg);
    FZ_ASSERT(need > 0 && need <= sizeof(G.mem), "mem %zu", need);
    FZ_ASSERT(apf_guest_init(G.mem, sizeof(G.mem), &cfg, &G.g) == 0);
    FZ_ASSERT(apf_guest_available(G.g) == 1);
    for (uint32_t c = 0; c < N_CPUS; c++)
        FZ_ASSERT(apf_guest_cpu_online(G.g, c) == 0);
    while (f.n > 0 && G.steps < 2000)
        run_event();
    for (uint32_t c = 0; c < N_CPUS; c++) {
        FZ_ASSERT(apf_guest_cpu_offline(G.g, c) >= 0);
        check_stats(c);
    }
    FZ_ASSERT(G.locks == 0 && G.n_sl == 0);
    return 0;
}
