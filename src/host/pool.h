/* SPDX-License-Identifier: MIT */
/*
 * The worker pool: threads that run jobs from one FIFO. Generic: it knows nothing of the
 * engine (hosted.c gives it a `run` function that resolves and completes). Hosted only.
 */
#ifndef APF_SRC_HOST_POOL_H
#define APF_SRC_HOST_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "apf/host.h"

struct apf__pool;

struct apf__job {
    uint64_t gpa;
    uint32_t vcpu;
    uint32_t token;
    uint32_t gen; /* the vCPU's generation when submitted (stale jobs skip the work) */
};

typedef void (*apf__job_fn)(void *ctx, const struct apf__job *job);

/* `capacity` jobs fit (submitting more is a broken invariant). 0, APF_ENOMEM, APF_EAGAIN. */
int apf__pool_create(const struct apf_allocator *a, uint32_t n_workers, uint32_t capacity,
                     uint64_t spin_ns, apf__job_fn run, void *ctx, struct apf__pool **out);
/* Stops the workers (jobs running finish; queued ones are dropped) and frees the pool. */
void apf__pool_destroy(struct apf__pool *p);
/* Queues a job; never blocks on a worker, never allocates. Any thread. */
void apf__pool_submit(struct apf__pool *p, const struct apf__job *job);
size_t apf__pool_memory(uint32_t n_workers, uint32_t capacity);

#endif
