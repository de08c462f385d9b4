/* SPDX-License-Identifier: MIT */
/*
 * The fault path: apf_host_vcpu_fault(). vCPU context. Allocates nothing: the slot, the
 * dedup entry and (in pool mode) the job all live in memory reserved at create time.
 */
#include "host/engine.h"

/* ---- accesses whose async resolve failed: retried synchronously ---------------------------- */

void apf__failed_add(struct apf__vcpu *v, uint64_t gfn)
{
    /* A small ring: if more than APF__FAILED_RING failures wait for their retry, the oldest
     * is forgotten and that retry goes async once more (and may fail once more): no
     * completion is ever lost, only a retry repeated. */
    v->failed_gfn[v->failed_next] = gfn;
    v->failed_next = (v->failed_next + 1) % APF__FAILED_RING;
    if (v->failed_n < APF__FAILED_RING)
        v->failed_n++;
}

int apf__failed_take(struct apf__vcpu *v, uint64_t gfn)
{
    for (uint32_t i = 0; i < v->failed_n; i++) {
        uint32_t at = (v->failed_next + APF__FAILED_RING - 1 - i) % APF__FAILED_RING;
        if (v->failed_gfn[at] == gfn) {
            /* Remove by moving the oldest entry into its place. */
            uint32_t oldest = (v->failed_next + APF__FAILED_RING - v->failed_n) % APF__FAILED_RING;
            v->failed_gfn[at] = v->failed_gfn[oldest];
            v->failed_n--;
            return 1;
        }
    }
    return 0;
}

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
    if (!v->enabled)
        return APF_WHY_DISABLED;
    if (v->failed_n && apf__failed_take(v, gfn))
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
 *  - x86: paging on (a \#PF needs CR0.PG = 1).
 * The arm64 "previous event consumed" and the writability of the area are checked when the
 * reason is written (apf__np_write).
 */
static bool apf__np_deliverable(const struct apf__vcpu *v, uint32_t gs)
{
    if (gs & APF_GS_NP_MASKED)
        return false;
    if (!(gs & APF_GS_USER) && !(v->flags & APF_EN_SEND_ALWAYS))
        return false;
    if (gs & APF_GS_NESTED)
        return (v->flags & APF_EN_DELIVERY_AS_PF_VMEXIT) != 0;
    if (v->host->cfg.abi == APF_HOST_ABI_KVM_X86 && !(gs & APF_GS_PAGING))
        return false;
    return true;
}

/* Writes the reason (x86: flags = 1, the token goes in CR2; arm64: reason and token, only
 * into a consumed area). Returns 0, or an error if it cannot be delivered now. */
static int apf__np_write(struct apf__vcpu *v, uint32_t token)
{
    struct apf_host *h = v->host;
    if (h->cfg.abi == APF_HOST_ABI_ARM64) {
        uint32_t area[2];
        int err = h->ops.read_guest(h->cfg.ctx, v->area_gpa, area, sizeof(area));
        if (err)
            return err;
        if (area[0] != APF_REASON_NONE || area[1] != APF_TOKEN_INVALID)
            return APF_EBUSY;
        area[0] = APF_REASON_NOT_PRESENT;
        area[1] = token;
        return h->ops.write_guest(h->cfg.ctx, v->area_gpa, area, sizeof(area));
    }
    uint32_t reason = APF_REASON_NOT_PRESENT;
    return h->ops.write_guest(h->cfg.ctx, v->area_gpa + APF_AREA_FLAGS_OFFSET, &reason,
                              sizeof(reason));
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
    APF__BUG_ON(token == APF_TOKEN_INVALID); /* the limit check above guarantees a slot */
    if (deliver && apf__np_write(v, token) != 0) {
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
    APF__BUG_ON(err != 0); /* looked up above; the table has room for every slot */
    uint32_t used = apf__tokens_used(&v->tokens);
    apf_store_relaxed(&v->stats.outstanding, used);
    apf__stat_max(&v->stats.outstanding_hwm, used);
    /* Publish the slot to completers before anyone can hold its token. */
    apf_store_release(&s->tag, APF__TAG(token, APF__SLOT_INFLIGHT));

    /* Rule: "not present" is injected before the work starts (so no completion can race
     * ahead of the notification it answers). */
    int result;
    if (deliver) {
        h->ops.inject_not_present(h->cfg.ctx, v->id, token);
        apf_counter_inc(&v->stats.faults_async);
        apf__trace(v, APF_TRACE_HOST_NOT_PRESENT, token, gpa, 0);
        result = APF_FAULT_ASYNC;
    } else {
        result = apf__fault_halt(v, token, gpa, APF_WHY_UNDELIVERABLE);
    }

    if (h->pool) {
        struct apf__job job = {
            .v = v, .gpa = gpa, .token = token, .epoch = apf_load_relaxed(&v->epoch)};
        apf__pool_submit(h, &job);
    } else {
        h->ops.submit(h->cfg.ctx, v->id, token, gpa);
    }
    return result;
}
