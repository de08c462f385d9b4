/* SPDX-License-Identifier: MIT */
#include "test_env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add(struct tenv *e, struct tev ev)
{
    if (e->nlog < TEV_MAX)
        e->log[e->nlog++] = ev;
}

static void *t_current(void *ctx)
{
    return (void *)((struct tenv *)ctx)->cur_task;
}

static uint32_t t_cpu(void *ctx)
{
    return ((struct tenv *)ctx)->cur_cpu;
}

static int t_can_sleep(void *ctx)
{
    struct tenv *e = ctx;
    void (*hook)(struct tenv *) = e->in_window;
    if (hook) {
        e->in_window = NULL;
        hook(e);
    }
    return e->can_sleep;
}

static void t_sleep(void *ctx, struct apf_guest_waiter *w)
{
    struct tenv *e = ctx;
    e->sleeps++;
    add(e, (struct tev){.kind = TEV_SLEEP, .cpu = apf_guest_waiter_cpu(w),
                        .task = (uintptr_t)apf_guest_waiter_task(w),
                        .token = apf_guest_waiter_token(w)});
    if (e->locks_held) {
        fprintf(stderr, "test env: sleeping with a lock held\n");
        abort();
    }
    uintptr_t saved_task = e->cur_task;
    if (e->while_asleep)
        e->while_asleep(e, w);
    e->cur_task = saved_task;
    if (!apf_guest_waiter_woken(w)) {
        fprintf(stderr, "test env: task %#lx would sleep forever on token %#x\n",
                (unsigned long)saved_task, apf_guest_waiter_token(w));
        abort();
    }
}

static void t_wake(void *ctx, void *task, uint32_t cpu, int halted)
{
    struct tenv *e = ctx;
    add(e, (struct tev){.kind = TEV_WAKE, .cpu = cpu, .task = (uintptr_t)task,
                        .halted = (uint32_t)halted,
                        .token = apf_guest_area(e->g, cpu) ? tenv_area_token(e, cpu) : 0});
}

static void t_halt(void *ctx)
{
    struct tenv *e = ctx;
    if (++e->halts > 100) {
        fprintf(stderr, "test env: CPU halted 100 times without being woken\n");
        abort();
    }
    add(e, (struct tev){.kind = TEV_HALT, .cpu = e->cur_cpu});
    if (e->while_asleep)
        e->while_asleep(e, NULL);
}

static uintptr_t t_lock(void *ctx, struct apf_guest_lock *l)
{
    struct tenv *e = ctx;
    if (l->word != 0) {
        fprintf(stderr, "test env: lock taken twice (deadlock)\n");
        abort();
    }
    l->word = 1;
    e->locks_held++;
    return 0x200; /* "interrupts were on" */
}

static void t_unlock(void *ctx, struct apf_guest_lock *l, uintptr_t flags)
{
    struct tenv *e = ctx;
    if (l->word != 1 || flags != 0x200) {
        fprintf(stderr, "test env: bad unlock\n");
        abort();
    }
    l->word = 0;
    e->locks_held--;
}

static uint64_t t_v2p(void *ctx, const void *va)
{
    (void)ctx;
    return (uint64_t)(uintptr_t)va;
}

static void t_log(void *ctx, int level, const char *msg)
{
    struct tenv *e = ctx;
    (void)level;
    snprintf(e->last_log, sizeof(e->last_log), "%s", msg);
    add(e, (struct tev){.kind = TEV_LOG});
}

const struct apf_guest_env_ops tenv_ops = {
    .current_task = t_current,
    .cpu_id = t_cpu,
    .can_sleep = t_can_sleep,
    .sleep = t_sleep,
    .wake = t_wake,
    .halt = t_halt,
    .lock = t_lock,
    .unlock = t_unlock,
    .virt_to_phys = t_v2p,
    .log = t_log,
};

/* ---- the real backends' arch hooks ---------------------------------------------------- */

static void fx_cpuid(void *ctx, uint32_t cpu, uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    (void)ctx, (void)cpu, (void)leaf, (void)sub;
    memset(r, 0, 16);
}

static int fx_wrmsr(void *ctx, uint32_t cpu, uint32_t msr, uint64_t v)
{
    struct tenv *e = ctx;
    if (msr == APF_KVM_MSR_ASYNC_PF_ACK) {
        add(e, (struct tev){.kind = TEV_ACK, .cpu = cpu, .token = tenv_area_token(e, cpu)});
        return e->ack_result;
    }
    if (msr == APF_KVM_MSR_ASYNC_PF_EN)
        e->last_enable = v;
    return 0;
}

static int fx_rdmsr(void *ctx, uint32_t cpu, uint32_t msr, uint64_t *v)
{
    (void)ctx, (void)cpu, (void)msr;
    *v = 0;
    return 0;
}

static const struct apf_x86_arch_ops tenv_x86_arch = {fx_cpuid, fx_wrmsr, fx_rdmsr};

static uint64_t smccc_of(int err)
{
    return err == 0 ? 0 : (uint64_t)(int64_t)APF_SMCCC_INVALID_PARAMETER;
}

static void fa_smccc(void *ctx, uint32_t cpu, const uint64_t in[4], uint64_t out[4])
{
    struct tenv *e = ctx;
    out[0] = out[1] = out[2] = out[3] = 0;
    if ((uint32_t)in[0] == APF_ARM64_FEATURES_FUNC_ID) {
        out[0] = 1ull << APF_ARM64_FEATURE_BIT;
        return;
    }
    switch (in[1]) {
    case APF_ARM64_FUNC_VERSION: out[0] = e->info.version; break;
    case APF_ARM64_FUNC_SLOTS: out[0] = e->info.slots; break;
    case APF_ARM64_FUNC_SDEI: out[0] = APF_ARM64_SDEI_EVENT_DEFAULT; break;
    case APF_ARM64_FUNC_IRQ: out[0] = e->info.irq; break;
    case APF_ARM64_FUNC_FEATURES: out[0] = e->host_features; break;
    case APF_ARM64_FUNC_ENABLE: e->last_enable = (in[2] & 0xffffffffu) | in[3] << 32; break;
    case APF_ARM64_FUNC_RING:
        e->ring_calls++;
        e->last_ring = (in[2] & 0xffffffffu) | in[3] << 32;
        break;
    case APF_ARM64_FUNC_IRQ_ACK:
        add(e, (struct tev){.kind = TEV_ACK, .cpu = cpu, .token = tenv_area_token(e, cpu)});
        out[0] = smccc_of(e->ack_result);
        break;
    default: out[0] = (uint64_t)(int64_t)APF_SMCCC_NOT_SUPPORTED;
    }
}

static const struct apf_arm64_arch_ops tenv_arm64_arch = {fa_smccc};

/* ---- the recording backend --------------------------------------------------------------- */

/* The real backend that decodes the channel, and its context. */
static const struct apf_guest_backend_ops *chan_ops(struct tenv *e, void **bctx)
{
    if (e->caps & APF_BACKEND_CAP_TOKEN_IN_AREA) {
        e->ka.ring_entries = e->ring_entries;
        *bctx = &e->ka;
        return &apf_guest_backend_kvm_arm64;
    }
    *bctx = &e->kx;
    return &apf_guest_backend_kvm_x86;
}

static uint32_t b_caps(void *ctx)
{
    return ((struct tenv *)ctx)->caps;
}

static int b_probe(void *ctx, struct apf_guest_backend_info *info)
{
    struct tenv *e = ctx;
    void *bctx;
    const struct apf_guest_backend_ops *be = chan_ops(e, &bctx);
    struct apf_guest_backend_info real = {0};
    /* the real probe decides slot or ring mode (arm64); the test's answer is what counts */
    be->probe(bctx, &real);
    *info = e->info;
    info->features = real.features;
    return e->probe_result;
}

static size_t b_chan_size(void *ctx, size_t *align)
{
    void *bctx;
    const struct apf_guest_backend_ops *be = chan_ops(ctx, &bctx);
    return be->chan_size(bctx, align);
}

static int b_vector_check(void *ctx, uint32_t vector)
{
    struct tenv *e = ctx;
    if (e->caps & APF_BACKEND_CAP_HOST_VECTOR)
        return apf_guest_backend_kvm_arm64.vector_check(&e->ka, vector);
    return apf_guest_backend_kvm_x86.vector_check(&e->kx, vector);
}

static int b_enable(void *ctx, uint32_t cpu, void *chan, uint64_t pa, uint32_t vector,
                    uint32_t flags)
{
    struct tenv *e = ctx;
    add(e, (struct tev){.kind = TEV_ENABLE, .cpu = cpu, .pa = pa, .vector = vector,
                        .flags = flags});
    if (e->enable_result)
        return e->enable_result;
    void *bctx;
    const struct apf_guest_backend_ops *be = chan_ops(e, &bctx);
    return be->enable(bctx, cpu, chan, pa, vector, flags);
}

static int b_disable(void *ctx, uint32_t cpu)
{
    struct tenv *e = ctx;
    add(e, (struct tev){.kind = TEV_DISABLE, .cpu = cpu});
    void *bctx;
    const struct apf_guest_backend_ops *be = chan_ops(e, &bctx);
    be->disable(bctx, cpu);
    return e->disable_result;
}

static int b_take_np(void *ctx, uint32_t cpu, void *chan, uint32_t hint,
                     struct apf_guest_chan_event *ev)
{
    void *bctx;
    const struct apf_guest_backend_ops *be = chan_ops(ctx, &bctx);
    return be->take_not_present(bctx, cpu, chan, hint, ev);
}

static int b_ready_peek(void *ctx, uint32_t cpu, void *chan, struct apf_guest_chan_event *ev)
{
    void *bctx;
    const struct apf_guest_backend_ops *be = chan_ops(ctx, &bctx);
    return be->ready_peek(bctx, cpu, chan, ev);
}

static int b_ready_release(void *ctx, uint32_t cpu, void *chan)
{
    void *bctx;
    const struct apf_guest_backend_ops *be = chan_ops(ctx, &bctx);
    return be->ready_release(bctx, cpu, chan);
}

static int b_ready_finish(void *ctx, uint32_t cpu, void *chan)
{
    struct tenv *e = ctx;
    void (*hook)(struct tenv *, uint32_t) = e->before_finish;
    if (hook) {
        e->before_finish = NULL;
        hook(e, cpu);
    }
    void *bctx;
    const struct apf_guest_backend_ops *be = chan_ops(e, &bctx);
    return be->ready_finish(bctx, cpu, chan);
}

static struct apf_shared_area *b_area(void *ctx, void *chan)
{
    void *bctx;
    const struct apf_guest_backend_ops *be = chan_ops(ctx, &bctx);
    return be->area(bctx, chan);
}

static struct apf_ring *b_ring(void *ctx, void *chan)
{
    void *bctx;
    const struct apf_guest_backend_ops *be = chan_ops(ctx, &bctx);
    return be->ring ? be->ring(bctx, chan) : NULL;
}

const struct apf_guest_backend_ops tbackend_ops = {
    .name = "test",
    .capabilities = b_caps,
    .probe = b_probe,
    .chan_size = b_chan_size,
    .vector_check = b_vector_check,
    .enable = b_enable,
    .disable = b_disable,
    .take_not_present = b_take_np,
    .ready_peek = b_ready_peek,
    .ready_release = b_ready_release,
    .ready_finish = b_ready_finish,
    .area = b_area,
    .ring = b_ring,
};

void tenv_init(struct tenv *e)
{
    memset(e, 0, sizeof(*e));
    e->cur_task = 0x1000;
    e->can_sleep = 1;
    e->info = (struct apf_guest_backend_info){.version = APF_PROTO_VERSION, .slots = 64};
    e->host_features = APF_FEATURE_RING;
    apf_guest_kvm_x86_init(&e->kx, &tenv_x86_arch, e);
    apf_guest_kvm_arm64_init(&e->ka, &tenv_arm64_arch, e);
}

struct apf_guest_config tenv_config(struct tenv *e, uint32_t n_cpus, uint32_t n_placeholders)
{
    struct apf_guest_config c = {0};
    c.n_cpus = n_cpus;
    c.n_placeholders = n_placeholders;
    c.vector = 0xec;
    c.env = &tenv_ops;
    c.env_ctx = e;
    c.backend = &tbackend_ops;
    c.backend_ctx = e;
    return c;
}

static _Alignas(64) unsigned char g_mem[1 << 20];

struct apf_guest *tenv_start(struct tenv *e, const struct apf_guest_config *cfg)
{
    size_t need = apf_guest_mem_size(cfg);
    if (need == 0 || need > sizeof(g_mem) || apf_guest_init(g_mem, sizeof(g_mem), cfg, &e->g)) {
        fprintf(stderr, "test env: init failed\n");
        abort();
    }
    for (uint32_t c = 0; c < cfg->n_cpus; c++)
        if (apf_guest_cpu_online(e->g, c) != 0) {
            fprintf(stderr, "test env: online failed\n");
            abort();
        }
    e->nlog = 0;
    return e->g;
}

static struct apf_shared_area *area(struct tenv *e, uint32_t cpu)
{
    return (struct apf_shared_area *)(uintptr_t)apf_guest_area(e->g, cpu);
}

void tenv_host_np(struct tenv *e, uint32_t cpu)
{
    area(e, cpu)->flags = APF_REASON_NOT_PRESENT;
}

struct apf_ring *tenv_ring(struct tenv *e, uint32_t cpu)
{
    return (struct apf_ring *)(uintptr_t)apf_guest_ring(e->g, cpu);
}

void tenv_ring_push(struct tenv *e, uint32_t cpu, uint32_t token)
{
    struct apf_ring *r = tenv_ring(e, cpu);
    if (r == NULL) {
        fprintf(stderr, "test env: no ring on cpu %u\n", cpu);
        abort();
    }
    r->entries[r->prod & (e->ring_entries - 1)] = token;
    __atomic_store_n(&r->prod, r->prod + 1, __ATOMIC_RELEASE);
}

void tenv_host_ready(struct tenv *e, uint32_t cpu, uint32_t token)
{
    if (apf_guest_ring(e->g, cpu) != NULL) {
        tenv_ring_push(e, cpu, token);
        return;
    }
    if (e->caps & APF_BACKEND_CAP_TOKEN_IN_AREA)
        area(e, cpu)->flags = APF_REASON_READY;
    area(e, cpu)->token = token;
}

uint32_t tenv_area_flags(struct tenv *e, uint32_t cpu)
{
    return area(e, cpu)->flags;
}

uint32_t tenv_area_token(struct tenv *e, uint32_t cpu)
{
    return area(e, cpu)->token;
}

int tenv_count(const struct tenv *e, enum tev_kind k)
{
    int n = 0;
    for (int i = 0; i < e->nlog; i++)
        n += e->log[i].kind == k;
    return n;
}

int tenv_index(const struct tenv *e, enum tev_kind k, int nth)
{
    for (int i = 0; i < e->nlog; i++)
        if (e->log[i].kind == k && nth-- == 0)
            return i;
    return -1;
}
