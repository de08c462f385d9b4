/* SPDX-License-Identifier: MIT */
/*
 * The fault path: apf_host_vcpu_fault(). vCPU context. Allocates nothing: the slot, the
 * dedup entry and (in pool mode) the job all live in memory reserved at create time.
 */
#include "host/engine.h"

/*
 * Rule: may this fault go async at all? (Linux kvm_can_do_async_pf and kvm_setup_async_pf.)
 * Not when APF is off; not when interrupts are off in the guest (then not even an
 * artificial halt could be woken); not with an event pending injection. Also not when the
 * same access already failed asynchronously: it is retried synchronously so that the
 * embedder's synchronous path reports the error.
 * Returns 0 if it may, else an APF_WHY_* reason.
 */
static int32_t apf__fault_sync_reason(struct apf__vcpu *v, uint64_t gfn, uint32_t gs)
{
    if (!v->chan.enabled)
        return APF_WHY_DISABLED;
    if (v->failed.n && apf__failed_take(&v->failed, gfn))
        return APF_WHY_RETRY_FAILED;
    if (!(gs & APF_GS_IRQ_ON))
        return APF_WHY_IRQS_OFF;
    if (gs & APF_GS_EXC_PENDING)
        return APF_WHY_EXC_PENDING;
    return 0;
}

/*
 * Rule: can "not present" be delivered to the guest now? (Linux kvm_can_deliver_async_pf;
 * arm64 series: "only when the previous event was consumed".)
 *  - not masked (arm64: no SDEI handler running);
 *  - the guest is unprivileged, unless it asked for SEND_ALWAYS;
 *  - in a nested guest only if L1 opted into DELIVERY_AS_PF_VMEXIT;
 *  - what the wire needs (transport np_deliverable: x86 paging on).
 * Whether the area is free (arm64 "previous event consumed") and writable is decided when
 * the transport posts it (np_post).
 */
static bool apf__np_deliverable(const struct apf__vcpu *v, uint32_t gs)
{
    const struct apf_host *h = v->chan.host;
    if (gs & APF_GS_NP_MASKED)
        return false;
    if (!(gs & APF_GS_USER) && !(v->chan.flags & APF_EN_SEND_ALWAYS))
        return false;
    if (gs & APF_GS_NESTED)
        return (v->chan.flags & APF_EN_DELIVERY_AS_PF_VMEXIT) != 0;
    return h->tp.np_deliverable(h->tctx, &v->chan, gs) != 0;
}

static int apf__fault_sync(struct apf__vcpu *v, uint64_t gpa, int32_t why)
{
    apf_counter_inc(&v->stats.faults_sync);
    apf__trace(v, APF_TRACE_HOST_SYNC, 0, gpa, why);
    return APF_FAULT_SYNC;
}

/* The vCPU halts until a completion arrives. The seq_cst store pairs with the completer's
 * seq_cst load of `halted` after its push (see apf__kick_after_push). */
static int apf__fault_halt(struct apf__vcpu *v, uint32_t token, uint64_t gpa, int32_t why)
{
    apf_store_seq_cst(&v->halted, 1);
    apf_counter_inc(&v->stats.faults_halt);
    apf__trace(v, APF_TRACE_HOST_HALT, token, gpa, why);
    return APF_FAULT_HALT;
}

/* Rule: one fetch per frame (see dedup.h). A fault on a frame with work in flight halts
 * the vCPU until that work (or any other) completes, then the access is retried. */
static bool apf__fault_dedup(struct apf__vcpu *v, uint64_t gfn, uint32_t *token)
{
    uint32_t idx;
    if (!apf__map_find(&v->dedup, gfn, &idx))
        return false;
    *token = v->slots[idx].token;
    return true;
}

int apf_host_vcpu_fault(struct apf_host *h, uint32_t vcpu, uint64_t gpa, uint32_t guest_state)
{
    struct apf__vcpu *v = apf__vcpu_get(h, vcpu);
    if (v == NULL)
        return APF_EINVAL;
    apf__drain(v); /* the dedup table and the halt state are current from here on */
    uint64_t gfn = apf__gfn(v, gpa);

    int32_t why = apf__fault_sync_reason(v, gfn, guest_state);
    if (why)
        return apf__fault_sync(v, gpa, why);

    uint32_t inflight;
    if (apf__fault_dedup(v, gfn, &inflight)) {
        apf_counter_inc(&v->stats.faults_dedup);
        return apf__fault_halt(v, inflight, gpa, APF_WHY_DEDUP);
    }
    if (apf__tokens_used(&v->tokens) >= h->limit)
        return apf__fault_sync(v, gpa, APF_WHY_LIMIT);

    bool deliver = apf__np_deliverable(v, guest_state);
    if (!deliver && h->cfg.fallback == APF_HOST_FALLBACK_SYNC)
        return apf__fault_sync(v, gpa, APF_WHY_UNDELIVERABLE);

    uint32_t idx;
    uint32_t token = apf__token_alloc(&v->tokens, &idx);
    APF__BUG_ON(h, token == APF_TOKEN_INVALID); /* the limit check above guarantees a slot */
    if (deliver && h->tp.np_post(h->tctx, &v->chan, token) != 0) {
        deliver = false;
        if (h->cfg.fallback == APF_HOST_FALLBACK_SYNC) {
            apf__token_free(&v->tokens, idx);
            return apf__fault_sync(v, gpa, APF_WHY_UNDELIVERABLE);
        }
    }

    struct apf__slot *s = &v->slots[idx];
    s->gpa = gpa;
    s->token = token;
    s->np_delivered = deliver;
    s->cancelled = 0;
    s->status = 0;
    int err = apf__map_insert(&v->dedup, gfn, idx);
    APF__BUG_ON(h, err != 0); /* looked up above; the table has room for every slot */
    uint32_t used = apf__tokens_used(&v->tokens);
    apf_store_relaxed(&v->stats.outstanding, used);
    apf__stat_max(&v->stats.outstanding_hwm, used);
    /* Publish the slot to completers before anyone can hold its token. */
    apf_store_release(&s->tag, APF__TAG(token, APF__SLOT_INFLIGHT));

    /* Rule: "not present" is injected before the work starts (so no completion can race
     * ahead of the notification it answers). */
    int result;
    if (deliver) {
        h->ops.inject_not_present(h->cfg.ctx, v->chan.vcpu, token);
        apf_counter_inc(&v->stats.faults_async);
        apf__trace(v, APF_TRACE_HOST_NOT_PRESENT, token, gpa, 0);
        result = APF_FAULT_ASYNC;
    } else {
        result = apf__fault_halt(v, token, gpa, APF_WHY_UNDELIVERABLE);
    }
    h->submit(h->submit_ctx, v->chan.vcpu, token, gpa);
    return result;
}
