/* SPDX-License-Identifier: MIT */
/*
 * Completions: from a worker (or the embedder) to the vCPU, through the vCPU's completion
 * stack (completion_stack.h), and into its "page ready" FIFO (ready_fifo.h).
 */
#include "host/completion_stack.h"
#include "host/engine.h"

/*
 * Rule: kick the vCPU only on the empty -> non-empty transition of its completion queue,
 * and only when no ACK is outstanding; always kick a halted vCPU.
 * (Linux kvm_arch_async_page_present_queued; reference "Page ready" point 5.)
 *
 * Why no kick while an ACK is outstanding (slot + ACK transports): the guest's ACK brings
 * the vCPU back to apf_host_vcpu_ack(), which releases the throttle, and the next entry
 * takes the queue. A ring transport never has an ACK outstanding: every transition kicks.
 *
 * Memory ordering (the 2025 KVM fix: a lost kick leaves a completion stranded until some
 * unrelated exit). Two threads, two variables:
 *   producer:  push to cq_head (seq_cst CAS)        ; load ready_pending (seq_cst)
 *   vCPU:      store ready_pending = 0 (seq_cst)    ; load cq_head (seq_cst)
 * With plain release/acquire both loads could read the old values (store buffering): the
 * producer sees "pending" and does not kick, the vCPU sees an empty queue and does not
 * deliver. All four accesses being seq_cst puts them in one total order, so at least one
 * side sees the other's store: the full barrier the pattern needs. `halted` pairs with
 * cq_head the same way (fault() stores halted = 1, apf_host_vcpu_halted() loads cq_head).
 */
static void apf__kick_after_push(struct apf__vcpu *v, bool was_empty)
{
    bool kick = apf_load_seq_cst(&v->halted) != 0;
    if (!kick && was_empty)
        kick = apf_load_seq_cst(&v->ready_pending) == 0;
    if (kick) {
        atomic_fetch_add_explicit(&v->kicks, 1, memory_order_relaxed);
        struct apf_host *h = v->chan.host;
        h->ops.kick(h->cfg.ctx, v->chan.vcpu);
    }
}

/* Any thread: the work of `token` finished with `status`. */
int apf__complete(struct apf__vcpu *v, uint32_t token, int status)
{
    int32_t idx = apf__token_slot(&v->tokens, token);
    if (idx < 0)
        return APF_EINVAL;
    struct apf__slot *s = &v->slots[idx];
    uint64_t expected = APF__TAG(token, APF__SLOT_INFLIGHT);
    if (!atomic_compare_exchange_strong_explicit(&s->tag, &expected,
                                                 APF__TAG(token, APF__SLOT_DONE),
                                                 memory_order_acq_rel, memory_order_acquire)) {
        if (APF__TAG_TOKEN(expected) == token && APF__TAG_STATE(expected) == APF__SLOT_DONE)
            return APF_EALREADY;
        return APF_ENOENT; /* never issued, or stale: the slot moved on */
    }
    /* We own the slot until the vCPU takes it: status is ours to write, and the push
     * (seq_cst) publishes it to the vCPU's exchange. */
    s->status = status;
    apf__trace(v, APF_TRACE_HOST_DONE, token, 0, status);
    bool was_empty = apf__cq_push(&v->cq_head, s);
    apf__kick_after_push(v, was_empty);
    return 0;
}

int apf_host_complete(struct apf_host *h, uint32_t vcpu, uint32_t token, int status)
{
    struct apf__vcpu *v = apf__vcpu_get(h, vcpu);
    /* With workers, each job holds the only right to complete its token: an embedder's
     * completion would race the worker's (which then finds its token done). */
    if (v == NULL || status > 0 || h->executor_owned)
        return APF_EINVAL;
    return apf__complete(v, token, status);
}

/*
 * Rule: a "page ready" is owed only for faults whose "not present" was delivered
 * (Linux kvm_arch_async_page_present checks notpresent_injected; a 2020 bug sent tokens the
 * guest never saw and leaked its entries). Work that only halted the vCPU, and work of a
 * vCPU that disabled APF meanwhile, end here without a "page ready".
 */
static void apf__completion_take(struct apf__vcpu *v, struct apf__slot *s)
{
    int rm = apf__map_remove(&v->dedup, apf__gfn(v, s->gpa));
    APF__BUG_ON(v->chan.host, rm != 0); /* every outstanding slot has its frame in dedup */
    apf_counter_inc(&v->stats.completions);
    if (s->cancelled) {
        apf_counter_inc(&v->stats.completions_dropped);
        apf__trace(v, APF_TRACE_HOST_DROP, s->token, s->gpa, s->status);
        apf__slot_free(v, s);
        return;
    }
    if (s->status < 0) {
        apf_counter_inc(&v->stats.resolve_failures);
        apf__failed_add(&v->failed, apf__gfn(v, s->gpa));
    }
    if (!s->np_delivered) {
        apf__slot_free(v, s);
        return;
    }
    apf__fifo_push(&v->fifo, s);
    apf__fifo_stats(v);
}

uint32_t apf__drain(struct apf__vcpu *v)
{
    struct apf__slot *s = apf__cq_take_all(&v->cq_head);
    if (s == NULL)
        return 0;
    uint32_t n = 0;
    for (; s; n++) {
        struct apf__slot *next = s->cq_next;
        apf__completion_take(v, s);
        s = next;
    }
    /* Any completion ends an artificial halt: the vCPU retries its access (as KVM). */
    apf_store_seq_cst(&v->halted, 0);
    return n;
}
