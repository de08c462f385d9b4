/* SPDX-License-Identifier: MIT */
/*
 * "Page ready" delivery and the ACK throttle.
 *
 * Completions owed a "page ready" wait in a per-vCPU FIFO (vCPU context only) and go out one
 * at a time, in completion order, under the rule in apf__ready_may_send().
 */
#include "host/engine.h"

void apf__fifo_push(struct apf__vcpu *v, struct apf__slot *s)
{
    s->fifo_next = NULL;
    if (v->fifo_tail)
        v->fifo_tail->fifo_next = s;
    else
        v->fifo_head = s;
    v->fifo_tail = s;
    v->fifo_len++;
    apf_store_relaxed(&v->stats.ready_queue, v->fifo_len);
    apf__stat_max(&v->stats.ready_queue_hwm, v->fifo_len);
}

static struct apf__slot *apf__fifo_pop(struct apf__vcpu *v)
{
    struct apf__slot *s = v->fifo_head;
    v->fifo_head = s->fifo_next;
    if (v->fifo_head == NULL)
        v->fifo_tail = NULL;
    v->fifo_len--;
    apf_store_relaxed(&v->stats.ready_queue, v->fifo_len);
    return s;
}

/*
 * Rule: at most one "page ready" in flight per vCPU. The next token may go into the slot
 * only when all of these hold (Linux msr.rst MSR_KVM_ASYNC_PF_ACK, x86.c
 * kvm_arch_can_dequeue_async_page_present; arm64 IRQ_ACK; reference "Page ready" 3-4):
 *   1. the guest ACKed the previous one (ready_pending == 0);
 *   2. the slot reads 0 again: the guest consumed the previous token (arm64: reason and
 *      token both 0), so writing cannot overwrite an unread token;
 *   3. the guest's interrupt controller can take the interrupt (local APIC software
 *      enabled): otherwise nothing is dequeued (2021 KVM fix: a guest that enabled APF
 *      before its APIC made the vCPU spin);
 *   4. APF is on and the vector is set.
 * An unreadable area counts as "not free": the "page ready" waits (the guest broke its own
 * area; disabling APF or a reset drops it).
 */
static bool apf__ready_may_send(struct apf__vcpu *v, uint32_t guest_state)
{
    if (apf_load_relaxed(&v->ready_pending))
        return false;
    if (!(guest_state & APF_GS_IRQCHIP_ON))
        return false;
    if (!v->enabled || v->vector == 0)
        return false;
    uint32_t area[2];
    if (v->host->ops.read_guest(v->host->cfg.ctx, v->area_gpa, area, sizeof(area)) != 0)
        return false;
    if (area[1] != APF_TOKEN_INVALID)
        return false;
    if (v->host->cfg.abi == APF_HOST_ABI_ARM64 && area[0] != APF_REASON_NONE)
        return false;
    return true;
}

/* Writes the token (arm64: reason too) and raises the interrupt; ready_pending until ACK. */
static bool apf__ready_send(struct apf__vcpu *v, uint32_t token)
{
    struct apf_host *h = v->host;
    int err;
    if (h->cfg.abi == APF_HOST_ABI_ARM64) {
        uint32_t area[2] = {APF_REASON_READY, token};
        err = h->ops.write_guest(h->cfg.ctx, v->area_gpa, area, sizeof(area));
    } else {
        err = h->ops.write_guest(h->cfg.ctx, v->area_gpa + APF_AREA_TOKEN_OFFSET, &token,
                                 sizeof(token));
    }
    if (err)
        return false;
    apf_store_seq_cst(&v->ready_pending, 1);
    h->ops.inject_ready(h->cfg.ctx, v->id, v->vector);
    apf__trace(v, APF_TRACE_HOST_READY, token, 0, (int32_t)v->vector);
    return true;
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
 */
static void apf__wake_all_covers(struct apf__vcpu *v)
{
    while (v->fifo_head) {
        struct apf__slot *s = apf__fifo_pop(v);
        APF__BUG_ON(s == &v->wake_all); /* queued at most once */
        apf_counter_inc(&v->stats.completions_dropped);
        apf__trace(v, APF_TRACE_HOST_DROP, s->token, s->gpa, s->status);
        apf__slot_free(v, s);
    }
    for (uint32_t i = 0; i < v->host->limit; i++)
        v->slots[i].np_delivered = 0;
}

int apf_host_vcpu_before_entry(struct apf_host *h, uint32_t vcpu, uint32_t guest_state)
{
    struct apf__vcpu *v = apf__vcpu_get(h, vcpu);
    if (v == NULL)
        return APF_EINVAL;
    apf__drain(v);
    if (v->fifo_head == NULL || !apf__ready_may_send(v, guest_state))
        return 0;
    struct apf__slot *s = v->fifo_head;
    if (!apf__ready_send(v, s->token))
        return 0;
    apf__fifo_pop(v);
    if (s == &v->wake_all) {
        apf_counter_inc(&v->stats.wake_all_delivered);
        apf__wake_all_covers(v);
    } else {
        apf_counter_inc(&v->stats.ready_delivered);
        apf__slot_free(v, s);
    }
    return 1;
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
