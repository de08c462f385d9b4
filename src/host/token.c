/* SPDX-License-Identifier: MIT */
/* Token allocator: see token.h for the rule and why lookup and uniqueness are O(1). */
#include "host/token.h"

#include "apf/proto.h"

uint32_t apf__pow2_ceil(uint32_t n)
{
    uint32_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

void apf__tokens_init(struct apf__tokens *t, uint16_t *ring, uint32_t limit, uint32_t vcpu_id)
{
    t->free_ring = ring;
    t->cap = apf__pow2_ceil(limit);
    t->limit = limit;
    t->head = 0;
    t->tail = limit;
    t->seq = 1; /* KVM's first token is 0x1000 | vcpu */
    t->vcpu_id = vcpu_id & APF_TOKEN_KVM_MAX_VCPU;
    /* Slots 1, 2, ..., limit-1, 0: while faults complete in order, seq k lands on slot
     * k % limit with no skipping, giving KVM's own sequence 0x1000, 0x2000, ... */
    for (uint32_t i = 0; i < limit; i++)
        ring[i] = (uint16_t)((i + 1) % limit);
}

uint32_t apf__token_alloc(struct apf__tokens *t, uint32_t *slot)
{
    if (t->tail == t->head)
        return APF_TOKEN_INVALID;
    uint32_t mask = t->cap - 1;
    uint32_t idx = t->free_ring[t->head & mask];
    t->head++;

    /* The first sequence number >= t->seq whose low bits name this slot. */
    uint32_t seq = (t->seq & ~mask) | idx;
    if (seq < t->seq)
        seq += t->cap;
    seq &= APF__SEQ_MASK;
    uint32_t token = apf_token_kvm_make(seq, t->vcpu_id);
    if (!apf_token_is_fault(token)) {
        /* seq 0 with vCPU 0, or seq 0xfffff with vCPU 0xfff: next generation of the slot. */
        seq = (seq + t->cap) & APF__SEQ_MASK;
        token = apf_token_kvm_make(seq, t->vcpu_id);
    }
    t->seq = (seq + 1) & APF__SEQ_MASK;
    *slot = idx;
    return token;
}

void apf__token_free(struct apf__tokens *t, uint32_t slot)
{
    t->free_ring[t->tail & (t->cap - 1)] = (uint16_t)slot;
    t->tail++;
}

int32_t apf__token_slot(const struct apf__tokens *t, uint32_t token)
{
    if (!apf_token_is_fault(token) || apf_token_kvm_vcpu(token) != t->vcpu_id)
        return -1;
    uint32_t idx = apf_token_kvm_seq(token) & (t->cap - 1);
    return idx < t->limit ? (int32_t)idx : -1;
}
