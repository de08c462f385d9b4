/* SPDX-License-Identifier: MIT */
/*
 * The "page ready" FIFO of one vCPU: completions owed a "page ready", in completion order,
 * plus at most one wake-all sentinel. vCPU context only; intrusive (the slot is the node).
 */
#ifndef APF_SRC_HOST_READY_FIFO_H
#define APF_SRC_HOST_READY_FIFO_H

#include <stddef.h>
#include <stdint.h>

#include "host/slot.h"

struct apf__fifo {
    struct apf__slot *head, *tail;
    uint32_t len;
};

void apf__fifo_push(struct apf__fifo *f, struct apf__slot *s);
/* Removes and returns the oldest entry (the FIFO must not be empty). */
struct apf__slot *apf__fifo_pop(struct apf__fifo *f);

static inline struct apf__slot *apf__fifo_peek(const struct apf__fifo *f)
{
    return f->head;
}

#endif
