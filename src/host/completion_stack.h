/* SPDX-License-Identifier: MIT */
/*
 * The completion stack of one vCPU: many producers (workers, any thread calling
 * apf_host_complete), one consumer (the vCPU). A Treiber stack of slots: a producer pushes
 * with one CAS; the consumer takes the whole stack with one exchange and reverses it into
 * completion order. No locks, no ABA (single elements are never popped), no allocation
 * (the slot is the node). The seq_cst accesses are halves of the lost-kick pattern
 * (completion.c apf__kick_after_push).
 */
#ifndef APF_SRC_HOST_COMPLETION_STACK_H
#define APF_SRC_HOST_COMPLETION_STACK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "host/slot.h"
#include "proto/atomic.h"

/* Pushes a slot; returns true if the stack was empty (the empty -> non-empty transition).
 * The CAS is seq_cst: the store half of the lost-kick pattern. */
static inline bool apf__cq_push(_Atomic(struct apf__slot *) *head_p, struct apf__slot *s)
{
    struct apf__slot *head = apf_load_relaxed(head_p);
    do {
        s->cq_next = head;
    } while (!atomic_compare_exchange_weak_explicit(head_p, &head, s, memory_order_seq_cst,
                                                    memory_order_relaxed));
    return head == NULL;
}

/* Takes everything, oldest first (NULL if empty). The seq_cst load is the load half of the
 * lost-kick pattern. Consumer only. */
static inline struct apf__slot *apf__cq_take_all(_Atomic(struct apf__slot *) *head_p)
{
    if (apf_load_seq_cst(head_p) == NULL)
        return NULL;
    struct apf__slot *s = atomic_exchange_explicit(head_p, NULL, memory_order_seq_cst);
    struct apf__slot *ordered = NULL; /* the stack is newest first: reverse it */
    while (s) {
        struct apf__slot *next = s->cq_next;
        s->cq_next = ordered;
        ordered = s;
        s = next;
    }
    return ordered;
}

#endif
