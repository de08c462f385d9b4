/* SPDX-License-Identifier: MIT */
/*
 * libapf-host internals: the per-VM engine and its per-vCPU state.
 *
 * Files: one per data structure, one per protocol step. Steps call data structures, never
 * the other way round, so the call graph has no cycle:
 *   data structures  slot.h (slot states, tags), token.c (free list + token format),
 *                    dedup.h (frame -> slot), completion_stack.h (Treiber stack),
 *                    ready_fifo.c (completions owed a "page ready"), failed_ring.c (resolves
 *                    that failed, retried synchronously), ring.c (the ready ring, producer)
 *   steps            fault.c (a stage-2 fault), completion.c (work done -> vCPU),
 *                    deliver.c ("page ready" + ACK), control.c (enable/disable/migrate)
 *   engine           host.c (create, queries, what transports are given), hosted.c (libc
 *                    defaults and the worker pool glue; not in the freestanding core)
 *   transports       kvm_x86.c, kvm_arm64.c, s390.c: public headers only (apf/host_transport.h)
 *   worker pool      pool.c: a generic job queue with threads; knows nothing of the engine
 * The one exception to "steps do not call steps": control.c and deliver.c call
 * completion.c's apf__drain() first, so that they act on current state.
 *
 * Where each protocol rule lives (one named function each):
 *   token format, O(1) lookup, uniqueness ...... token.c   apf__token_alloc / apf__token_slot
 *   one fetch per frame (dedup) ................ dedup.h   + fault.c apf__fault_dedup
 *   may this fault go async at all ............. fault.c   apf__fault_sync_reason
 *   can "not present" be delivered now ......... fault.c   apf__np_deliverable (+ transport)
 *   "not present" before the work starts ....... fault.c   apf_host_vcpu_fault
 *   kick on empty -> non-empty (lost-kick fix) . completion.c apf__kick_after_push
 *   the throttle (slot + ACK, ring room) ....... deliver.c apf__ready_room (+ transport)
 *   "ready" only if "not present" delivered .... completion.c apf__completion_take
 *   a wake-all answers everything before it .... deliver.c apf__wake_all_covers
 *   enable queues a wake-all ................... control.c apf__wake_all_queue
 *   disable/reset drop work without leaking .... control.c apf__vcpu_drop
 *   ring indices from the guest are untrusted .. ring.c    apf_host_ring_room
 *
 * Threads and lock order
 *   Each vCPU's state is touched only in vCPU context (its own thread, or any thread while
 *   the vCPU is stopped), except the fields in the "shared" block below, which completers
 *   (workers, or any thread calling apf_host_complete) touch with atomics only.
 *   The engine takes no lock. The only lock is the worker pool's queue lock (pool.c), a
 *   leaf: nothing else is acquired while it is held, and no callback is called under it.
 *   Workers run `resolve` holding no lock at all.
 */
#ifndef APF_SRC_HOST_ENGINE_H
#define APF_SRC_HOST_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apf/host.h"
#include "apf/host_transport.h"
#include "host/dedup.h"
#include "host/failed_ring.h"
#include "host/ready_fifo.h"
#include "host/slot.h"
#include "host/token.h"
#include "proto/atomic.h"

/* Statistics: single writer (vCPU context) except `kicks`; readers use relaxed loads. */
struct apf__stats {
    _Atomic uint64_t faults_async, faults_sync, faults_halt, faults_dedup;
    _Atomic uint64_t ready_delivered, wake_all_delivered, acks, acks_spurious;
    _Atomic uint64_t completions, completions_dropped, resolve_failures;
    _Atomic uint64_t notifications, ready_batches, bad_guest_values;
    _Atomic uint32_t outstanding, outstanding_hwm, ready_queue, ready_queue_hwm;
};

struct apf__vcpu {
    /* ---- shared with completers (any thread), on its own cache line ---- */
    _Alignas(64) _Atomic(struct apf__slot *) cq_head; /* completion stack (Treiber) */
    _Atomic uint32_t ready_pending; /* a "page ready" awaits its ACK (NEEDS_ACK transports) */
    _Atomic uint32_t halted;        /* fault() returned HALT; any completion ends it */
    _Atomic uint32_t epoch;         /* bumped by drop: queued jobs of an older epoch skip */
    _Atomic uint64_t kicks;

    /* ---- vCPU context only ---- */
    _Alignas(64) struct apf_host_chan chan; /* host, id, enabled, area, flags, vector */
    struct apf__tokens tokens;
    struct apf__slot *slots;
    struct apf__map dedup;
    struct apf__fifo fifo;     /* completions owed a "page ready" */
    struct apf__failed failed; /* accesses whose resolve failed */
    struct apf__slot wake_all; /* sentinel queued in the FIFO by enable / restore */
    struct apf__stats stats;
};

/* The submit step: the embedder's `submit`, or the hosted worker pool. */
typedef void (*apf__submit_fn)(void *ctx, uint32_t vcpu, uint32_t token, uint64_t gpa);

struct apf_host {
    struct apf_host_config cfg; /* copy, with defaults applied */
    struct apf_host_ops ops;    /* copy */
    struct apf_host_transport_ops tp; /* copy: one indirection less on the hot path */
    void *tctx;
    struct apf_allocator alloc;
    struct apf_host_env_ops env;
    apf__submit_fn submit;
    void *submit_ctx;
    uint32_t executor_owned; /* completions come only from the worker pool */
    uint32_t n_vcpus;
    uint32_t limit;
    uint32_t page_shift;
    struct apf__vcpu *vcpus;
    void *storage; /* slots, free rings, dedup tables, transport blocks of all vCPUs */
    size_t storage_size;
    void *hosted; /* hosted.c: the worker pool glue, or NULL */
    size_t mem_total;
    size_t mem_per_vcpu;
};

/* ---- shared helpers (host.c) ---- */
/* Zeroed memory from the embedder's allocator (64-byte aligned), and its release. */
void *apf__zalloc(const struct apf_host *h, size_t size);
void apf__free(const struct apf_host *h, void *p, size_t size);
void apf__memzero(void *p, size_t n);
static inline struct apf__vcpu *apf__vcpu_get(const struct apf_host *h, uint32_t id)
{
    if (h == NULL || id >= h->n_vcpus)
        return NULL;
    return &h->vcpus[id];
}
static inline struct apf__vcpu *apf__vcpu_of(struct apf_host_chan *c)
{
    return (struct apf__vcpu *)(void *)((char *)c - offsetof(struct apf__vcpu, chan));
}
void apf__trace_emit(const struct apf__vcpu *v, uint32_t kind, uint32_t token, uint64_t gpa,
                     int32_t arg);
static inline void apf__trace(const struct apf__vcpu *v, uint32_t kind, uint32_t token,
                              uint64_t gpa, int32_t arg)
{
    if (v->chan.host->cfg.trace)
        apf__trace_emit(v, kind, token, gpa, arg);
}
static inline uint64_t apf__gfn(const struct apf__vcpu *v, uint64_t gpa)
{
    return gpa >> v->chan.host->page_shift;
}
void apf__slot_free(struct apf__vcpu *v, struct apf__slot *s);
/* Statistics on the hot paths: inline (a call each cost more than the stores). */
static inline void apf__stat_max(_Atomic uint32_t *hwm, uint32_t value)
{
    if (value > apf_load_relaxed(hwm))
        apf_store_relaxed(hwm, value);
}
static inline void apf__fifo_stats(struct apf__vcpu *v)
{
    apf_store_relaxed(&v->stats.ready_queue, v->fifo.len);
    apf__stat_max(&v->stats.ready_queue_hwm, v->fifo.len);
}

/* Create the engine (host.c); the hosted library adds its defaults and pool (hosted.c). */
int apf__host_create(const struct apf_host_config *cfg, const struct apf_allocator *alloc,
                     const struct apf_host_env_ops *env, struct apf_host **out);
void apf__host_destroy(struct apf_host *h);

/* ---- completion.c ---- */
int apf__complete(struct apf__vcpu *v, uint32_t token, int status);
/* Takes every completion queued for the vCPU: returns how many. vCPU context. */
uint32_t apf__drain(struct apf__vcpu *v);

/* ---- deliver.c ---- */
void apf__ready_pending_clear(struct apf__vcpu *v);

/* ---- control.c ---- */
uint32_t apf__vcpu_drop(struct apf__vcpu *v);
int apf__vcpu_enable_check(const struct apf__vcpu *v, uint64_t area_gpa, uint32_t flags,
                           uint32_t vector);

/* Abort on a broken internal invariant (never on bad input). */
#define APF__BUG_ON(h, cond)                                                                   \
    do {                                                                                       \
        if (__builtin_expect(!!(cond), 0))                                                     \
            apf__bug((h), __FILE__, __LINE__, #cond);                                          \
    } while (0)
_Noreturn void apf__bug(const struct apf_host *h, const char *file, int line, const char *what);

#endif
