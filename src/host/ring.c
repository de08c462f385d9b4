/* SPDX-License-Identifier: MIT */
/*
 * The ready ring, producer side (protocol 1.1; wire: struct apf_ring in apf/proto.h).
 * Transport-neutral: a transport keeps a struct apf_host_ring in its per-vCPU block and
 * calls these from its ready_room / ready_post / ready_notify ops. Public headers only.
 *
 * The host's own `prod` and `cons` are the truth. The guest's words (cons, event) are
 * inputs: a consumer index that moves backwards or past what was published is ignored (the
 * entries it would free stay in use, so nothing is overwritten; the guest that corrupts its
 * index only stops its own "page ready"s until it writes a sane one), and never blocks the
 * host: every operation is O(1) or O(batch).
 */
#include <stdatomic.h>

#include "apf/host_transport.h"

int apf_host_ring_check(const struct apf_host_chan *c, uint64_t gpa, uint32_t size)
{
    if (c == NULL)
        return APF_EINVAL;
    if (gpa == 0 || (gpa & (APF_RING_PAGE_SIZE - 1)))
        return APF_EINVAL;
    if (size < APF_RING_MIN_ENTRIES || size > APF_RING_MAX_ENTRIES || (size & (size - 1)))
        return APF_EINVAL;
    uint32_t probe[2];
    /* First and last word of the page: the whole ring must be guest memory. */
    if (apf_host_chan_read(c, gpa, probe, sizeof(probe)) != 0 ||
        apf_host_chan_read(c, gpa + APF_RING_PAGE_SIZE - sizeof(probe), probe,
                           sizeof(probe)) != 0)
        return APF_EFAULT;
    return 0;
}

int apf_host_ring_start(struct apf_host_ring *r, const struct apf_host_chan *c, uint64_t gpa,
                        uint32_t size)
{
    /* The ring starts empty at the guest's own consumer index, whatever it is: a fresh
     * registration has it at 0 (the guest cleared its page), and after a migration the
     * guest's index lives on in its memory while the host's state was not carried (arm64
     * saves only the registration). Starting at 0 there would make the guest refuse the
     * restore's wake-all as an overrun. Any value is safe: indices are free-running. */
    uint32_t cons;
    if (apf_host_chan_read(c, gpa + APF_RING_CONS_OFFSET, &cons, sizeof(cons)))
        return APF_EFAULT;
    uint32_t host_line[2] = {cons, size};
    uint32_t event = cons + 1; /* notify on the first entry */
    if (apf_host_chan_write(c, gpa + APF_RING_PROD_OFFSET, host_line, sizeof(host_line)) ||
        apf_host_chan_write(c, gpa + APF_RING_EVENT_OFFSET, &event, sizeof(event)))
        return APF_EFAULT;
    r->gpa = gpa;
    r->size = size;
    r->prod = cons;
    r->published = cons;
    r->cons = cons;
    r->bad_cons = 0;
    return 0;
}

uint32_t apf_host_ring_room(struct apf_host_ring *r, struct apf_host_chan *c)
{
    if (r->gpa == 0)
        return 0;
    uint32_t cons;
    if (apf_host_chan_read(c, r->gpa + APF_RING_CONS_OFFSET, &cons, sizeof(cons)) != 0)
        return 0;
    /* Acquire: the guest's reads of the entries it consumed happen before we reuse them. */
    atomic_thread_fence(memory_order_acquire);
    uint32_t moved = cons - r->cons;
    if (moved > r->published - r->cons) {
        /* Rewound, or past what was published (overrun, a huge jump): refused. */
        r->bad_cons++;
        apf_host_chan_bad_value(c);
    } else if (moved) {
        r->cons = cons;
        apf_host_chan_released(c, moved);
    }
    return r->size - (r->prod - r->cons);
}

int apf_host_ring_post(struct apf_host_ring *r, const struct apf_host_chan *c, uint32_t token)
{
    if (r->gpa == 0 || r->prod - r->cons >= r->size)
        return APF_ENOSPC;
    uint64_t at = r->gpa + APF_RING_ENTRIES_OFFSET +
                  (uint64_t)(r->prod & (r->size - 1)) * APF_RING_ENTRY_SIZE;
    if (apf_host_chan_write(c, at, &token, sizeof(token)) != 0)
        return APF_EFAULT;
    r->prod++;
    return 0;
}

int apf_host_ring_publish(struct apf_host_ring *r, const struct apf_host_chan *c)
{
    uint32_t old = r->published, now = r->prod;
    if (old == now)
        return 0;
    /* Release: the entries are visible before the producer index that covers them. */
    atomic_thread_fence(memory_order_release);
    if (apf_host_chan_write(c, r->gpa + APF_RING_PROD_OFFSET, &now, sizeof(now)) != 0)
        return 0;
    r->published = now;
    /* Full barrier: our prod store is ordered before the event load, as the guest's event
     * store is before its prod re-check; one of the two sides sees the other's write. */
    atomic_thread_fence(memory_order_seq_cst);
    uint32_t event;
    if (apf_host_chan_read(c, r->gpa + APF_RING_EVENT_OFFSET, &event, sizeof(event)) != 0)
        return 1; /* unreadable: notify, the guest sorts it out */
    return apf_ring_need_notify(old, now, event);
}
