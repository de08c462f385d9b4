/* SPDX-License-Identifier: MIT */
/*
 * Accesses whose async resolve failed, to be retried synchronously (small, per vCPU).
 *
 * A small ring: if more than APF__FAILED_RING failures wait for their retry, the oldest is
 * forgotten and that retry goes async once more (and may fail once more): no completion is
 * ever lost, only a retry repeated. vCPU context only.
 */
#ifndef APF_SRC_HOST_FAILED_RING_H
#define APF_SRC_HOST_FAILED_RING_H

#include <stdint.h>

#define APF__FAILED_RING 16u

struct apf__failed {
    uint32_t n, next;
    uint64_t gfn[APF__FAILED_RING];
};

void apf__failed_add(struct apf__failed *f, uint64_t gfn);
/* 1 (and forgets it) if `gfn` is waiting for its synchronous retry, else 0. */
int apf__failed_take(struct apf__failed *f, uint64_t gfn);

static inline void apf__failed_clear(struct apf__failed *f)
{
    f->n = 0;
    f->next = 0;
}

#endif
