/* SPDX-License-Identifier: MIT */
/*
 * libapf-host internals: the per-VM engine and its per-vCPU state.
 *
 * Where each protocol rule lives (one named function each):
 *   token format, O(1) lookup, uniqueness ...... token.c   apf__token_alloc / apf__token_slot
 *   one fetch per frame (dedup) ................ dedup.h   + fault.c apf__fault_dedup
 *   may this fault go async at all ............. fault.c   apf__fault_sync_reason
 *   can "not present" be delivered now ......... fault.c   apf__np_deliverable
 *   "not present" before the work starts ....... fault.c   apf_host_vcpu_fault
 *   kick on empty -> non-empty (lost-kick fix) . completion.c apf__kick_after_push
 *   one "page ready" in flight, ACK throttle ... throttle.c apf__ready_may_send
 *   "ready" only if "not present" delivered .... completion.c apf__completion_take
 *   enable queues a wake-all ................... control.c apf__wake_all_queue
 *   disable/reset drop work without leaking .... control.c apf__vcpu_drop
 *
 * Threads and lock order
 *   Each vCPU's state is touched only in vCPU context (its own thread, or any thread while
 *   the vCPU is stopped), except the fields in the "shared" block below, which completers
 *   (workers, or any thread calling apf_host_complete) touch with atomics only.
 *   The only lock is the worker pool's queue lock (pool.c). It is a leaf: nothing else is
 *   acquired while it is held, and no callback is called under it. Workers run `resolve`
 *   holding no lock at all. So there is no lock order to get wrong: pool lock, and nothing
 *   nests inside it.
 */
#ifndef APF_SRC_HOST_ENGINE_H
#define APF_SRC_HOST_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "apf/host.h"
#include "host/dedup.h"
#include "host/token.h"
#include "proto/atomic.h"

/* Slot states (low bits of apf__slot.tag). */
enum { APF__SLOT_FREE = 0, APF__SLOT_INFLIGHT = 1, APF__SLOT_DONE = 2 };

#define APF__TAG(token, state) (((uint64_t)(token) << 32) | (uint64_t)(state))
#define APF__TAG_TOKEN(tag) ((uint32_t)((tag) >> 32))
#define APF__TAG_STATE(tag) ((uint32_t)((tag)&0xffffffffu))

/* Index of the wake-all sentinel node (not a real slot). */
#define APF__WAKE_ALL_INDEX 0xffffu

/* One outstanding fault. Preallocated per vCPU; never allocated on the fault path. */
struct apf__slot {
    /* token << 32 | state. Completers CAS INFLIGHT(token) -> DONE(token), which makes a
     * stale or repeated completion fail without touching anything else. */
    _Atomic uint64_t tag;
    struct apf__slot *cq_next;   /* completion stack link: written by the one completer */
    struct apf__slot *fifo_next; /* "page ready" FIFO link: vCPU context */
    uint64_t gpa;                /* vCPU context */
    int32_t status;              /* resolve result: written by the completer before push */
    uint32_t token;              /* vCPU context copy of the token */
    uint16_t index;
    uint8_t np_delivered; /* "not present" was injected: a "page ready" is owed */
    uint8_t cancelled;    /* APF was disabled while this was outstanding: discard */
};

/* Statistics: single writer (vCPU context) except `kicks`; readers use relaxed loads. */
struct apf__stats {
    _Atomic uint64_t faults_async, faults_sync, faults_halt, faults_dedup;
    _Atomic uint64_t ready_delivered, wake_all_delivered, acks, acks_spurious;
    _Atomic uint64_t completions, completions_dropped, resolve_failures;
    _Atomic uint32_t outstanding, outstanding_hwm, ready_queue, ready_queue_hwm;
};

/* Accesses whose resolve failed, to be retried synchronously (small, per vCPU). */
#define APF__FAILED_RING 16u

struct apf__vcpu {
    /* ---- shared with completers (any thread), on its own cache line ---- */
    _Alignas(64) _Atomic(struct apf__slot *) cq_head; /* completion stack (Treiber) */
    _Atomic uint32_t ready_pending; /* a "page ready" is in flight, not yet ACKed */
    _Atomic uint32_t halted;        /* fault() returned HALT; any completion ends it */
    _Atomic uint32_t epoch;         /* bumped by drop: queued jobs of an older epoch skip */
    _Atomic uint64_t kicks;

    /* ---- vCPU context only ---- */
    _Alignas(64) struct apf_host *host;
    uint32_t id;
    uint32_t enabled;
    uint32_t flags;  /* APF_EN_* in force */
    uint32_t vector; /* 0 = not set */
    uint64_t area_gpa;
    struct apf__tokens tokens;
    struct apf__slot *slots;
    struct apf__map dedup;
    struct apf__slot *fifo_head, *fifo_tail; /* completions owed a "page ready" */
    uint32_t fifo_len;
    uint32_t failed_n, failed_next;
    uint64_t failed_gfn[APF__FAILED_RING];
    struct apf__slot wake_all; /* sentinel queued in the FIFO by enable / restore */
    struct apf__stats stats;
};

struct apf__pool;

struct apf_host {
    struct apf_host_config cfg; /* copy, with defaults applied */
    struct apf_host_ops ops;    /* copy */
    struct apf_allocator alloc;
    uint32_t n_vcpus;
    uint32_t limit;
    uint32_t page_shift;
    struct apf__vcpu *vcpus;
    void *storage; /* slots, free rings and dedup tables of all vCPUs */
    size_t storage_size;
    struct apf__pool *pool; /* NULL in embedder-completion mode */
    size_t mem_total;
    size_t mem_per_vcpu;
};

/* ---- shared helpers (host.c) ---- */
/* Zeroed memory from the embedder's allocator (64-byte aligned), and its release. */
void *apf__zalloc(const struct apf_host *h, size_t size);
void apf__free(const struct apf_host *h, void *p, size_t size);
struct apf__vcpu *apf__vcpu_get(const struct apf_host *h, uint32_t id);
void apf__trace(const struct apf__vcpu *v, uint32_t kind, uint32_t token, uint64_t gpa,
                int32_t arg);
static inline uint64_t apf__gfn(const struct apf__vcpu *v, uint64_t gpa)
{
    return gpa >> v->host->page_shift;
}
void apf__slot_free(struct apf__vcpu *v, struct apf__slot *s);
void apf__stat_max(_Atomic uint32_t *hwm, uint32_t value);

/* ---- completion.c ---- */
int apf__complete(struct apf__vcpu *v, uint32_t token, int status);
/* Takes every completion queued for the vCPU: returns how many. vCPU context. */
uint32_t apf__drain(struct apf__vcpu *v);

/* ---- throttle.c ---- */
void apf__ready_pending_clear(struct apf__vcpu *v);
void apf__fifo_push(struct apf__vcpu *v, struct apf__slot *s);

/* ---- control.c ---- */
uint32_t apf__vcpu_drop(struct apf__vcpu *v);
int apf__vcpu_enable_check(const struct apf__vcpu *v, uint64_t area_gpa, uint32_t flags,
                           uint32_t vector);

/* ---- fault.c ---- */
int apf__failed_take(struct apf__vcpu *v, uint64_t gfn);
void apf__failed_add(struct apf__vcpu *v, uint64_t gfn);

/* ---- pool.c ---- */
struct apf__job {
    struct apf__vcpu *v;
    uint64_t gpa;
    uint32_t token;
    uint32_t epoch;
};
int apf__pool_create(struct apf_host *h, uint32_t n_workers, uint32_t capacity);
void apf__pool_destroy(struct apf_host *h);
void apf__pool_submit(struct apf_host *h, const struct apf__job *job);
size_t apf__pool_memory(uint32_t n_workers, uint32_t capacity);

/* Abort on a broken internal invariant (never on bad input). */
#define APF__BUG_ON(cond)                                                                      \
    do {                                                                                       \
        if (cond)                                                                              \
            apf__bug(__FILE__, __LINE__, #cond);                                               \
    } while (0)
_Noreturn void apf__bug(const char *file, int line, const char *what);

#endif
