/* SPDX-License-Identifier: MIT */
/*
 * The ready ring, consumer side (apf/proto.h struct apf_ring; Xen io/ring.h with the
 * virtio event index as notification hold-off). Used by ring transports' backends.
 *
 * Rule (untrusted producer index): the host writes `prod`; the guest never believes a
 * `prod` that claims more than the ring holds beyond its own `cons` (an overrun, a move
 * backwards, a jump by 2^31 all look like that in free-running u32 arithmetic). Such a
 * value is refused and nothing more is consumed until the host writes a believable one:
 * no loop, no out-of-bounds read (indices are masked with the size the guest registered,
 * never the page's `size`), no entry delivered twice (`cons` only moves forward).
 *
 * Rule (notification hold-off; Xen RING_FINAL_CHECK_FOR_RESPONSES): after a drain the
 * guest asks for a notification for the next entry (`event = cons + 1`), then a full
 * barrier, then reads `prod` again. The host publishes `prod`, full barrier, reads
 * `event`: at least one side sees the other, so an entry published during the drain is
 * either seen by the re-check or notified.
 */
#include <stdatomic.h>

#include "apf/guest_backend.h"
#include "proto/atomic.h"

_Static_assert(sizeof(_Atomic uint32_t) == sizeof(uint32_t), "atomic u32 is a plain u32");

/* The page is written by the host outside the guest's view: every access is atomic. */
#define RING_WORD(p) ((_Atomic uint32_t *)(uintptr_t)(p))

/* A producer index is believable if it claims at most the ring's size beyond `cons`. */
static inline int prod_believable(const struct apf_guest_ring_consumer *c, uint32_t prod)
{
    return (uint32_t)(prod - c->cons) <= c->mask + 1u;
}

int apf_guest_ring_init(struct apf_guest_ring_consumer *c, struct apf_ring *ring,
                        uint32_t entries, uint32_t start)
{
    if (c == 0 || ring == 0 || ((uintptr_t)ring & (APF_RING_PAGE_SIZE - 1)) != 0)
        return APF_EINVAL;
    if (entries < APF_RING_MIN_ENTRIES || entries > APF_RING_MAX_ENTRIES ||
        (entries & (entries - 1)) != 0)
        return APF_EINVAL;
    c->ring = ring;
    c->mask = entries - 1;
    c->cons = start;
    c->prod = start;
    c->have = 0;
    c->entry = 0;
    c->pad = 0;
    apf_store_relaxed(RING_WORD(&ring->cons), start);
    /* Before registration: the registering call orders these stores for the host. */
    apf_store_relaxed(RING_WORD(&ring->event), start + 1u);
    return 0;
}

int apf_guest_ring_peek(struct apf_guest_ring_consumer *c, struct apf_guest_chan_event *ev)
{
    ev->token = 0;
    ev->value = 0;
    if (c->have) {
        ev->token = c->entry;
        return APF_GUEST_READY_TOKEN;
    }
    if (c->cons == c->prod) {
        /* Acquire: the entries the host wrote before publishing `prod` are visible below. */
        uint32_t prod = apf_load_acquire(RING_WORD(&c->ring->prod));
        if (!prod_believable(c, prod)) {
            ev->value = prod;
            return APF_GUEST_READY_BAD_INDEX;
        }
        c->prod = prod;
        if (prod == c->cons)
            return APF_GUEST_READY_EMPTY;
    }
    /* One read of the entry: the host cannot change what the runtime acts on. */
    c->entry = apf_load_relaxed(RING_WORD(&c->ring->entries[c->cons & c->mask]));
    c->have = 1;
    ev->token = c->entry;
    return APF_GUEST_READY_TOKEN;
}

int apf_guest_ring_release(struct apf_guest_ring_consumer *c)
{
    if (!c->have)
        return 0;
    c->have = 0;
    c->cons++;
    /* Release: our read of the entry happens before the host may see it free and reuse it. */
    apf_store_release(RING_WORD(&c->ring->cons), c->cons);
    return 1;
}

int apf_guest_ring_finish(struct apf_guest_ring_consumer *c)
{
    if (c->cons != c->prod)
        return 1; /* entries already known but not taken yet: no need to re-arm */
    /* seq_cst store + full barrier: the event store is ordered before the re-read of `prod`
     * below (pairs with the host's full barrier between publishing `prod` and reading
     * `event`; the store-buffer pattern, src/proto/atomic.h). */
    apf_store_seq_cst(RING_WORD(&c->ring->event), c->cons + 1u);
    apf_mb();
    /* Acquire: entries published with this `prod` are visible to the next peek. */
    uint32_t prod = apf_load_acquire(RING_WORD(&c->ring->prod));
    if (prod == c->cons || !prod_believable(c, prod))
        return 0; /* nothing new; a refused value is counted by the next peek */
    c->prod = prod;
    return 1;
}
