/* SPDX-License-Identifier: MIT */
/*
 * The worker pool (pool.h): pthreads that run jobs. It knows nothing of the engine:
 * hosted.c hands it a `run` function (resolve, then complete).
 *
 * One FIFO of jobs, a ring preallocated for every slot of every vCPU (a slot has at most
 * one job), so submitting never allocates and never fails. Lock order: `lock` is a leaf
 * (see engine.h); `resolve` and the completion run with no lock held.
 *
 * Spin-then-park (apf_host_config::worker_spin_ns): a worker that finished a job polls
 * `queued` for a while before it sleeps on the condition variable (one worker at a time). The submitter signals
 * only when more jobs are queued than workers are spinning, so a spinning worker takes the
 * next job without any wake-up. No job is stranded: a spinner that gives up re-checks the
 * queue under the lock before it sleeps.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host/pool.h"
#include "proto/atomic.h"

#define POOL_BUG_ON(cond)                                                                      \
    do {                                                                                       \
        if (cond) {                                                                            \
            fprintf(stderr, "libapf-host pool: invariant broken at %s:%d: %s\n", __FILE__,     \
                    __LINE__, #cond);                                                          \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

struct apf__pool {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    struct apf__job *ring; /* capacity entries */
    uint32_t capacity;
    uint32_t head;  /* index of the oldest job, < capacity; under lock */
    uint32_t count; /* jobs in the ring; under lock. (Free-running head/tail counters would
                     * break at their 2^32 wrap: capacity is rarely a power of two.) */
    uint32_t idle;       /* workers waiting on cv */
    bool stop;
    uint64_t spin_ns;
    _Atomic uint32_t stop_flag; /* `stop`, readable without the lock */
    _Atomic uint32_t queued;   /* count, readable without the lock */
    _Atomic uint32_t spinning; /* workers polling `queued` */
    uint32_t n_threads, n_workers;
    pthread_t *threads;
    struct apf_allocator alloc;
    apf__job_fn run;
    void *run_ctx;
};

static void *pool_zalloc(const struct apf_allocator *a, size_t size)
{
    void *p = a->alloc(a->ctx, size, 64);
    if (p)
        memset(p, 0, size);
    return p;
}

static void pool_free(const struct apf_allocator *a, void *p, size_t size)
{
    if (p)
        a->free(a->ctx, p, size);
}

static uint64_t apf__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Polls for a job for p->spin_ns; returns when one may be queued or the time is up. One
 * worker spins at a time: more would only take turns on the CPU the next job needs. */
static void apf__worker_spin(struct apf__pool *p)
{
    uint32_t none = 0;
    if (!atomic_compare_exchange_strong_explicit(&p->spinning, &none, 1, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return;
    uint64_t end = apf__now_ns() + p->spin_ns;
    for (unsigned i = 0;; i++) {
        if (apf_load_acquire(&p->queued) || apf_load_relaxed(&p->stop_flag))
            break;
        if ((i & 63) == 63 && apf__now_ns() >= end)
            break;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ __volatile__("yield" ::: "memory");
#endif
    }
    atomic_fetch_sub_explicit(&p->spinning, 1, memory_order_seq_cst);
}

static void *apf__worker(void *arg)
{
    struct apf__pool *p = arg;
    bool spun = true; /* no spinning before the first job */
    for (;;) {
        if (!spun && p->spin_ns)
            apf__worker_spin(p);
        spun = true;
        pthread_mutex_lock(&p->lock);
        while (p->count == 0 && !p->stop) {
            p->idle++;
            pthread_cond_wait(&p->cv, &p->lock);
            p->idle--;
        }
        if (p->stop) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        struct apf__job job = p->ring[p->head];
        p->head = p->head + 1 == p->capacity ? 0 : p->head + 1;
        p->count--;
        atomic_fetch_sub_explicit(&p->queued, 1, memory_order_relaxed);
        pthread_mutex_unlock(&p->lock);
        spun = false;
        p->run(p->run_ctx, &job); /* no lock held */
    }
}

size_t apf__pool_memory(uint32_t n_workers, uint32_t capacity)
{
    return sizeof(struct apf__pool) + sizeof(struct apf__job) * capacity +
           sizeof(pthread_t) * n_workers;
}

int apf__pool_create(const struct apf_allocator *a, uint32_t n_workers, uint32_t capacity,
                     uint64_t spin_ns, apf__job_fn run, void *ctx, struct apf__pool **out)
{
    struct apf__pool *p = pool_zalloc(a, sizeof(*p));
    if (p == NULL)
        return APF_ENOMEM;
    p->alloc = *a;
    p->capacity = capacity;
    p->n_workers = n_workers;
    p->spin_ns = spin_ns;
    p->run = run;
    p->run_ctx = ctx;
    p->ring = pool_zalloc(a, sizeof(struct apf__job) * capacity);
    p->threads = pool_zalloc(a, sizeof(pthread_t) * n_workers);
    if (p->ring == NULL || p->threads == NULL)
        goto enomem;
    if (pthread_mutex_init(&p->lock, NULL) != 0)
        goto enomem;
    if (pthread_cond_init(&p->cv, NULL) != 0) {
        pthread_mutex_destroy(&p->lock);
        goto enomem;
    }
    for (uint32_t i = 0; i < n_workers; i++) {
        if (pthread_create(&p->threads[i], NULL, apf__worker, p) != 0) {
            apf__pool_destroy(p);
            return APF_EAGAIN;
        }
        p->n_threads++;
    }
    *out = p;
    return 0;

enomem:
    pool_free(a, p->threads, sizeof(pthread_t) * n_workers);
    pool_free(a, p->ring, sizeof(struct apf__job) * capacity);
    pool_free(a, p, sizeof(*p));
    return APF_ENOMEM;
}

void apf__pool_destroy(struct apf__pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    apf_store_release(&p->stop_flag, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->lock);
    for (uint32_t i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->lock);
    struct apf_allocator a = p->alloc;
    pool_free(&a, p->threads, sizeof(pthread_t) * p->n_workers);
    pool_free(&a, p->ring, sizeof(struct apf__job) * p->capacity);
    pool_free(&a, p, sizeof(*p));
}

void apf__pool_submit(struct apf__pool *p, const struct apf__job *job)
{
    pthread_mutex_lock(&p->lock);
    POOL_BUG_ON(p->count >= p->capacity); /* sized for every slot */
    uint32_t at = p->head + p->count; /* < 2 * capacity <= 2^25: no overflow */
    p->ring[at >= p->capacity ? at - p->capacity : at] = *job;
    p->count++;
    uint32_t queued = atomic_fetch_add_explicit(&p->queued, 1, memory_order_seq_cst) + 1;
    /* A spinning worker takes it without a wake-up; wake a sleeper only for the rest. */
    bool wake = p->idle > 0 && queued > atomic_load_explicit(&p->spinning, memory_order_seq_cst);
    pthread_mutex_unlock(&p->lock);
    /* Signal outside the lock: the woken worker need not block on it again. */
    if (wake)
        pthread_cond_signal(&p->cv);
}
