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
                        .halted = (uint32_t)halted});
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

static uint32_t b_caps(void *ctx)
{
    return ((struct tenv *)ctx)->caps;
}

static int b_probe(void *ctx, struct apf_guest_backend_info *info)
{
    struct tenv *e = ctx;
    *info = e->info;
    return e->probe_result;
}

static int b_enable(void *ctx, uint32_t cpu, uint64_t pa, uint32_t vector, uint32_t flags)
{
    struct tenv *e = ctx;
    add(e, (struct tev){.kind = TEV_ENABLE, .cpu = cpu, .pa = pa, .vector = vector,
                        .flags = flags});
    return e->enable_result;
}

static int b_disable(void *ctx, uint32_t cpu)
{
    struct tenv *e = ctx;
    add(e, (struct tev){.kind = TEV_DISABLE, .cpu = cpu});
    return e->disable_result;
}

static int b_ack(void *ctx, uint32_t cpu)
{
    struct tenv *e = ctx;
    add(e, (struct tev){.kind = TEV_ACK, .cpu = cpu, .token = tenv_area_token(e, cpu)});
    return e->ack_result;
}

const struct apf_guest_backend_ops tbackend_ops = {
    .name = "test",
    .capabilities = b_caps,
    .probe = b_probe,
    .enable = b_enable,
    .disable = b_disable,
    .ack = b_ack,
};

void tenv_init(struct tenv *e)
{
    memset(e, 0, sizeof(*e));
    e->cur_task = 0x1000;
    e->can_sleep = 1;
    e->info = (struct apf_guest_backend_info){.version = APF_PROTO_VERSION, .slots = 64};
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

void tenv_host_ready(struct tenv *e, uint32_t cpu, uint32_t token)
{
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
