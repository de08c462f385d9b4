/* SPDX-License-Identifier: MIT */
/*
 * Token allocator of one vCPU: preallocated slots, tokens in KVM's format, O(1) both ways.
 *
 * Rule (token format; Linux x86.c kvm_setup_async_pf, the arm64 series):
 *   token = seq << 12 | vcpu_id, never 0 (the free-slot value: a 2022 KVM bug handed out 0
 *   after a wrap and the guest dropped that "page ready") and never 0xffffffff (wake-all).
 *
 * The slot of an outstanding fault is encoded in the token: its low bits of `seq` are the
 * slot index (seq & (cap - 1), cap a power of two). So the work of a token is found in O(1)
 * (apf__token_slot), and uniqueness among the outstanding tokens holds by construction,
 * across wrap-around too: two outstanding tokens live in different slots, hence differ.
 * Free slots are reused in FIFO order and `seq` only moves forward. A slot can take only
 * 2^20 / cap different tokens (its seq values are congruent to its index), so a token value
 * comes back after 2^20 / cap allocations *of that slot*: after 2^20 allocations of the vCPU
 * when all slots cycle in FIFO order (as in KVM), but sooner when one slot cycles while the
 * others stay outstanding (256 reuses of one slot at cap 4096). A stale completion is
 * therefore refused only within that window (apf_host_complete()).
 */
#ifndef APF_SRC_HOST_TOKEN_H
#define APF_SRC_HOST_TOKEN_H

#include <stdint.h>

#define APF__SEQ_BITS 20u
#define APF__SEQ_MASK ((1u << APF__SEQ_BITS) - 1u)

struct apf__tokens {
    uint16_t *free_ring; /* FIFO of free slot indices, `cap` entries */
    uint32_t cap;        /* power of two >= limit */
    uint32_t limit;      /* slots 0..limit-1 exist */
    uint32_t head;       /* next index to take (free-running) */
    uint32_t tail;       /* next place to put (free-running) */
    uint32_t seq;        /* next sequence number, 20 bits */
    uint32_t vcpu_id;    /* low 12 bits of every token */
};

/* Smallest power of two >= n (n >= 1). */
uint32_t apf__pow2_ceil(uint32_t n);

/* `ring` must hold apf__pow2_ceil(limit) entries. */
void apf__tokens_init(struct apf__tokens *t, uint16_t *ring, uint32_t limit, uint32_t vcpu_id);

/* Number of slots in use. */
static inline uint32_t apf__tokens_used(const struct apf__tokens *t)
{
    return t->limit - (t->tail - t->head);
}

/* Takes a free slot and returns its new token (never 0 / 0xffffffff); *slot = its index.
 * Returns 0 if every slot is in use. */
uint32_t apf__token_alloc(struct apf__tokens *t, uint32_t *slot);

/* Returns a slot to the free FIFO. */
void apf__token_free(struct apf__tokens *t, uint32_t slot);

/* The slot a token names, or -1 if the token cannot be one of this vCPU's. */
int32_t apf__token_slot(const struct apf__tokens *t, uint32_t token);

#endif
