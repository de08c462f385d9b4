/* SPDX-License-Identifier: MIT */
/*
 * Slots: one per outstanding fault, preallocated per vCPU, never allocated on the fault
 * path. A slot's `tag` (token << 32 | state) is the only field completers touch: they CAS
 * INFLIGHT(token) -> DONE(token), which makes a stale or repeated completion fail without
 * touching anything else. Freed by host.c apf__slot_free (vCPU context).
 */
#ifndef APF_SRC_HOST_SLOT_H
#define APF_SRC_HOST_SLOT_H

#include <stdatomic.h>
#include <stdint.h>

/* Slot states (low bits of apf__slot.tag). */
enum { APF__SLOT_FREE = 0, APF__SLOT_INFLIGHT = 1, APF__SLOT_DONE = 2 };

#define APF__TAG(token, state) (((uint64_t)(token) << 32) | (uint64_t)(state))
#define APF__TAG_TOKEN(tag) ((uint32_t)((tag) >> 32))
#define APF__TAG_STATE(tag) ((uint32_t)((tag)&0xffffffffu))

/* Index of the wake-all sentinel node (not a real slot). */
#define APF__WAKE_ALL_INDEX 0xffffu

struct apf__slot {
    _Atomic uint64_t tag;        /* token << 32 | state */
    struct apf__slot *cq_next;   /* completion stack link: written by the one completer */
    struct apf__slot *fifo_next; /* "page ready" FIFO link: vCPU context */
    uint64_t gpa;                /* vCPU context */
    int32_t status;              /* resolve result: written by the completer before push */
    uint32_t token;              /* vCPU context copy of the token */
    uint16_t index;
    uint8_t np_delivered; /* "not present" was injected: a "page ready" is owed */
    uint8_t cancelled;    /* APF was disabled while this was outstanding: discard */
};

#endif
