/* SPDX-License-Identifier: MIT */
/*
 * libapf-guest internals. Freestanding: only compiler headers.
 *
 * Where each rule lives:
 *   channel decoding (area, ring) ................ the backends (backend_*.c), ring.c
 *   host values checked (tokens, probe) .......... runtime.c apf_guest_on_exception /
 *                                                  apf_guest_on_interrupt, check_info
 *   wake, release, finish (ACK) - in that order .. runtime.c apf_guest_on_interrupt
 *   ready ring: untrusted prod, hold-off ......... ring.c
 *   wake-before-wait (placeholders) .............. sleep_table.c apf__st_wait / apf__st_wake
 *   pool exhaustion: never lose a wake-up ........ sleep_table.c apf__st_must_not_sleep
 *   wake-all frees this CPU's placeholders ....... sleep_table.c apf__st_wake_cpu
 *   offline: disable, then wake local sleepers ... runtime.c apf_guest_cpu_offline
 *
 * Lock order: a bucket lock, then (nested) a CPU's pool lock. Nothing else nests. The env's
 * lock hook disables local interrupts, so the "page ready" interrupt (which takes bucket
 * locks) can never interrupt a holder on the same CPU.
 */
#ifndef APF_SRC_GUEST_RUNTIME_H
#define APF_SRC_GUEST_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apf/guest.h"
#include "proto/atomic.h"

struct apf__gstats {
    _Atomic uint64_t not_present, slept, halted, placeholder_hits, retries;
    _Atomic uint64_t ready, wake_all, woken, placeholders, lost_wakeups, spurious;
    _Atomic uint64_t bad_host_values, acks, ring_entries, notifications;
    _Atomic uint32_t placeholders_in_use;
    _Atomic uint32_t waiting; /* this CPU's waiters in the table now */
};

/* One cache-line-aligned block per CPU: the CPUs never write each other's lines (except
 * placeholders_in_use, when a placeholder is consumed by another CPU). */
struct apf__gcpu {
    /* The backend's notification channel (apf_guest_backend_ops::chan_size bytes, aligned
     * as it asked, in the runtime's memory), or NULL if it needs none. */
    _Alignas(64) void *chan;
    _Atomic uint32_t enabled; /* written on this CPU; read by statistics from anywhere */
    /* Wake-alls of this CPU so far (apf__st_wake_cpu): a waiter whose window contains one
     * must not sleep (see sleep_table.c). */
    _Atomic uint32_t wake_all_gen;
    /* Lost-wake-up epoch this CPU has seen through: the value read at the start of its
     * most recent entry point that has completed (see sleep_table.c). Only this CPU. */
    uint64_t seen_epoch;
    /* This CPU's share of the placeholder pool: "page ready"s taken on this CPU draw from
     * it; a consumed placeholder goes back to the pool of the CPU that made it. */
    struct apf_guest_lock pool_lock;
    struct apf_guest_waiter *pool_free;
    struct apf__gstats stats;
};

struct apf__bucket {
    struct apf_guest_lock lock;
    uint32_t pad;
    struct apf_guest_waiter *head; /* waiters and placeholders */
};

struct apf_guest {
    struct apf_guest_config cfg;
    int available;   /* 1, or why not (negative) */
    uint32_t caps;   /* backend capabilities */
    size_t chan_size; /* per-CPU channel bytes (backend's chan_size) */
    uint32_t vector; /* "page ready" vector in use */
    struct apf_guest_backend_info info;
    struct apf__gcpu *cpus;
    struct apf__bucket *buckets;
    uint32_t bucket_mask;
    uint32_t bucket_shift;
    struct apf_guest_waiter *pool; /* n_placeholders nodes, shared out among the CPUs */
    _Atomic uint64_t lost_epoch; /* bumped when a wake-up could not be recorded */
};

/* sleep_table.c */
void apf__st_init(struct apf_guest *g);
/* The current task waits for `token` on `cpu` (task context). */
/* Where a waiter's window began (apf_guest_on_exception): see apf__st_wait. */
struct apf__window {
    uint64_t ref_epoch;    /* lost-wake-up epoch reference */
    uint32_t wake_all_gen; /* this CPU's wake_all_gen */
};
void apf__st_wait(struct apf_guest *g, uint32_t cpu, uint32_t token,
                  const struct apf__window *win);
/* "page ready" for `token` arrived on `cpu` (interrupt context): returns waiters woken. */
uint32_t apf__st_wake(struct apf_guest *g, uint32_t cpu, uint32_t token);
/* Wake every waiter of `cpu` and free its placeholders: returns waiters woken. */
uint32_t apf__st_wake_cpu(struct apf_guest *g, uint32_t cpu);

/* diag.c (a leaf: runtime.c and sleep_table.c call it) */
void apf__glog(const struct apf_guest *g, int level, const char *what, uint32_t cpu,
               uint64_t value);
void apf__gtrace_emit(const struct apf_guest *g, uint32_t kind, uint32_t cpu, uint32_t token,
                      int32_t arg);
/* The trace check inline: without a hook (the common case) a trace point costs a load and
 * a branch, not a call. */
static inline void apf__gtrace(const struct apf_guest *g, uint32_t kind, uint32_t cpu,
                               uint32_t token, int32_t arg)
{
    if (g->cfg.trace)
        apf__gtrace_emit(g, kind, cpu, token, arg);
}

#endif
