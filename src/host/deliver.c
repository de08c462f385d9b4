/* SPDX-License-Identifier: MIT */
/*
 * "Page ready" delivery: the throttle, batches through the transport, the ACK, wake-all.
 *
 * Completions owed a "page ready" wait in the vCPU's FIFO (ready_fifo.h) and go out in
 * completion order, as many at a delivery point as the transport has room for (one for a
 * slot whose ACK is in; the free entries of a ring), followed by at most one notification.
 */
#include "host/engine.h"

/*
 * Rule: the throttle. The next "page ready"s may go out only when all of these hold (Linux
 * msr.rst MSR_KVM_ASYNC_PF_ACK, x86.c kvm_arch_can_dequeue_async_page_present; arm64
 * IRQ_ACK; reference "Page ready" 3-4):
 *   1. no ACK is outstanding (transports with APF_HOST_TRANSPORT_NEEDS_ACK);
 *   2. the guest's interrupt controller can take the interrupt (local APIC software
 *      enabled): otherwise nothing is dequeued (2021 KVM fix: a guest that enabled APF
 *      before its APIC made the vCPU spin);
 *   3. APF is on and the vector is set;
 *   4. the transport has room: a slot reads 0 again (the guest consumed the previous token,
 *      so writing cannot overwrite an unread one); a ring has free entries by the guest's
 *      consumer index. An unreadable area or ring counts as "no room": the "page ready"
 *      waits (the guest broke its own memory; disabling APF or a reset drops it).
 */
static uint32_t apf__ready_room(struct apf__vcpu *v, uint32_t guest_state)
{
    const struct apf_host *h = v->chan.host;
    if (apf_load_relaxed(&v->ready_pending))
        return 0;
    if (!(guest_state & APF_GS_IRQCHIP_ON))
        return 0;
    if (!v->chan.enabled || v->chan.vector == 0)
        return 0;
    return h->tp.ready_room(h->tctx, &v->chan, guest_state);
}

/* The ACK half of the lost-kick pattern: see apf__kick_after_push in completion.c. The
 * seq_cst store here and the seq_cst load of cq_head in apf__drain() (called next, at the
 * following entry) pair with the producer's seq_cst push and load of ready_pending. */
void apf__ready_pending_clear(struct apf__vcpu *v)
{
    apf_store_seq_cst(&v->ready_pending, 0);
}

/*
 * Rule: a wake-all answers every "not present" delivered before it. Once the guest has it,
 * every task sleeping on this vCPU retries its access, so no "page ready" is owed for those
 * tokens any more: queued ones are dropped, running ones will complete without one. (Sending
 * them anyway would hand the guest tokens with no waiter, which it must keep as
 * placeholders.) A retried access whose frame is still in flight halts on the dedup table.
 * The batch that carries a wake-all ends with it, so no older token follows it on a ring.
 */
static void apf__wake_all_covers(struct apf__vcpu *v)
{
    while (apf__fifo_peek(&v->fifo)) {
        struct apf__slot *s = apf__fifo_pop(&v->fifo);
        APF__BUG_ON(v->chan.host, s == &v->wake_all); /* queued at most once */
        apf_counter_inc(&v->stats.completions_dropped);
        apf__trace(v, APF_TRACE_HOST_DROP, s->token, s->gpa, s->status);
        apf__slot_free(v, s);
    }
    apf__fifo_stats(v);
    for (uint32_t i = 0; i < v->chan.host->limit; i++)
        v->slots[i].np_delivered = 0;
}

int apf_host_vcpu_before_entry(struct apf_host *h, uint32_t vcpu, uint32_t guest_state)
{
    struct apf__vcpu *v = apf__vcpu_get(h, vcpu);
    if (v == NULL)
        return APF_EINVAL;
    apf__drain(v);
    if (apf__fifo_peek(&v->fifo) == NULL)
        return 0;
    uint32_t room = apf__ready_room(v, guest_state);
    uint32_t posted = 0, last = APF_TOKEN_INVALID;
    bool wake_all = false;
    while (posted < room && apf__fifo_peek(&v->fifo)) {
        struct apf__slot *s = apf__fifo_peek(&v->fifo);
        if (h->tp.ready_post(h->tctx, &v->chan, s->token) != 0)
            break;
        apf__fifo_pop(&v->fifo);
        /* Each entry is traced once the next is posted: the last one's event carries
         * whether the batch raised a notification. */
        if (posted++)
            apf__trace(v, APF_TRACE_HOST_READY, last, 0, 0);
        last = s->token;
        if (s == &v->wake_all) {
            apf_counter_inc(&v->stats.wake_all_delivered);
            wake_all = true;
            break; /* nothing older may follow a wake-all */
        }
        apf_counter_inc(&v->stats.ready_delivered);
        apf__slot_free(v, s);
    }
    if (posted == 0)
        return 0;
    apf__fifo_stats(v);
    apf_counter_inc(&v->stats.ready_batches);
    if (v->chan.needs_ack)
        apf_store_seq_cst(&v->ready_pending, 1);
    int notify = h->tp.ready_notify(h->tctx, &v->chan, posted);
    if (notify) {
        apf_counter_inc(&v->stats.notifications);
        h->ops.inject_ready(h->cfg.ctx, v->chan.vcpu, v->chan.vector);
    }
    apf__trace(v, APF_TRACE_HOST_READY, last, 0, notify ? (int32_t)v->chan.vector : 0);
    if (wake_all)
        apf__wake_all_covers(v);
    return (int)posted;
}

int apf_host_vcpu_ack(struct apf_host *h, uint32_t vcpu)
{
    struct apf__vcpu *v = apf__vcpu_get(h, vcpu);
    if (v == NULL)
        return APF_EINVAL;
    apf_counter_inc(&v->stats.acks);
    int was_pending = apf_load_relaxed(&v->ready_pending) != 0;
    if (!was_pending)
        apf_counter_inc(&v->stats.acks_spurious);
    else
        apf__ready_pending_clear(v);
    apf__trace(v, APF_TRACE_HOST_ACK, 0, 0, was_pending);
    return was_pending;
}

int apf_host_vcpu_halted(struct apf_host *h, uint32_t vcpu)
{
    struct apf__vcpu *v = apf__vcpu_get(h, vcpu);
    if (v == NULL)
        return APF_EINVAL;
    apf__drain(v);
    return apf_load_seq_cst(&v->halted) != 0;
}
