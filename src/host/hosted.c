/* SPDX-License-Identifier: MIT */
/*
 * The hosted library's side of the engine: the C library's allocator, clock and error
 * output as defaults, and the worker pool (pool.c) wired in as the engine's submit step.
 * Not part of the freestanding host core.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "host/engine.h"
#include "host/pool.h"

static void *default_alloc(void *ctx, size_t size, size_t align)
{
    (void)ctx;
    void *p = NULL;
    if (align < sizeof(void *))
        align = sizeof(void *);
    return posix_memalign(&p, align, size) == 0 ? p : NULL;
}

static void default_free(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    (void)size;
    free(ptr);
}

static const struct apf_allocator default_allocator = {default_alloc, default_free, NULL};

static uint64_t default_now_ns(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void default_log(void *ctx, int level, const char *msg)
{
    (void)ctx;
    static const char *const names[] = {"error", "warning", "info"};
    fprintf(stderr, "libapf-host: %s: %s\n", names[level < 0 || level > 2 ? 0 : level], msg);
}

static void default_fatal(void *ctx, const char *file, int line, const char *what)
{
    (void)ctx;
    fprintf(stderr, "libapf-host: internal invariant broken at %s:%d: %s\n", file, line, what);
    abort();
}

static const struct apf_host_env_ops default_env = {default_now_ns, default_log,
                                                    default_fatal, NULL};

/* ---- the worker pool as the engine's executor --------------------------------------------- */

/* A worker: resolve (unless the vCPU dropped its work since the job was queued: disable,
 * reset), then complete. The completion is delivered even for a skipped job, to be
 * discarded by the vCPU, which frees the slot. No lock held. */
static void hosted_run(void *ctx, const struct apf__job *job)
{
    struct apf_host *h = ctx;
    struct apf__vcpu *v = &h->vcpus[job->vcpu];
    int status;
    if (apf_load_relaxed(&v->epoch) != job->gen)
        status = APF_ECANCELED;
    else
        status = h->ops.resolve(h->cfg.ctx, job->vcpu, job->gpa);
    if (status > 0)
        status = APF_EIO; /* a resolve must return 0 or a negative code */
    int err = apf__complete(v, job->token, status);
    APF__BUG_ON(h, err != 0); /* the job holds the only right to complete its token */
}

static void hosted_submit(void *ctx, uint32_t vcpu, uint32_t token, uint64_t gpa)
{
    struct apf_host *h = ctx;
    struct apf__job job = {
        .gpa = gpa, .vcpu = vcpu, .token = token,
        .gen = apf_load_relaxed(&h->vcpus[vcpu].epoch)};
    apf__pool_submit(h->hosted, &job);
}

int apf_host_create(const struct apf_host_config *cfg, struct apf_host **out)
{
    struct apf_host *h;
    if (out == NULL)
        return APF_EINVAL;
    int err = apf__host_create(cfg, &default_allocator, &default_env, &h);
    if (err)
        return err;
    if (cfg->n_workers > 0) {
        uint32_t capacity = h->limit * h->n_vcpus;
        struct apf__pool *p;
        err = apf__pool_create(&h->alloc, cfg->n_workers, capacity, cfg->worker_spin_ns,
                               hosted_run, h, &p);
        if (err) {
            apf__host_destroy(h);
            return err;
        }
        h->hosted = p;
        h->submit = hosted_submit;
        h->submit_ctx = h;
        h->executor_owned = 1;
        size_t pool_mem = apf__pool_memory(cfg->n_workers, capacity);
        h->mem_total += pool_mem;
        h->mem_per_vcpu += pool_mem / h->n_vcpus;
    }
    *out = h;
    return 0;
}

void apf_host_destroy(struct apf_host *h)
{
    if (h == NULL)
        return;
    if (h->hosted)
        apf__pool_destroy(h->hosted);
    apf__host_destroy(h);
}
