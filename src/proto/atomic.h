/* SPDX-License-Identifier: MIT */
/*
 * Memory-ordering helpers, named by meaning (as liburing does), built on C11 atomics so they
 * work freestanding. Never use `volatile` for ordering in libapf.
 *
 * apf_mb() is a full barrier. Where a protocol rule needs one between a store and a later
 * load on two threads (the Dekker / "store buffer" pattern: "completion queued" vs "ready
 * pending", "halted" vs "completion queued"), libapf makes both the store and the load
 * sequentially consistent (apf_store_seq_cst / apf_load_seq_cst / seq_cst RMW): C11 puts
 * all of them in one total order, which is exactly the full-barrier guarantee, and
 * ThreadSanitizer models it (it does not model standalone fences).
 */
#ifndef APF_SRC_PROTO_ATOMIC_H
#define APF_SRC_PROTO_ATOMIC_H

#include <stdatomic.h>

#define apf_load_relaxed(p) atomic_load_explicit((p), memory_order_relaxed)
#define apf_load_acquire(p) atomic_load_explicit((p), memory_order_acquire)
#define apf_load_seq_cst(p) atomic_load_explicit((p), memory_order_seq_cst)
#define apf_store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define apf_store_release(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define apf_store_seq_cst(p, v) atomic_store_explicit((p), (v), memory_order_seq_cst)

/* A counter with a single writer: no locked instruction needed, readers see whole values. */
#define apf_counter_inc(p) apf_store_relaxed((p), apf_load_relaxed(p) + 1)
#define apf_counter_add(p, n) apf_store_relaxed((p), apf_load_relaxed(p) + (n))

/* Full memory barrier (see the header comment for where libapf prefers seq_cst accesses). */
#define apf_mb() atomic_thread_fence(memory_order_seq_cst)

#endif
