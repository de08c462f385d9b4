/* SPDX-License-Identifier: MIT */
/*
 * Control: enable, vector, disable, reset, save and restore. vCPU context.
 *
 * Every entry point validates all of its (guest-controlled) input before changing anything,
 * so a rejected call leaves the vCPU exactly as it was (a 2025 KVM bug stored the enable
 * value before validating the address).
 */
#include "host/engine.h"

/*
 * Rule: every transition to "APF on" queues one wake-all "page ready" (token 0xffffffff)
 * (Linux kvm_pv_enable_async_pf -> kvm_async_pf_wakeup_all; arm64 VMM SET_CONTROL). After
 * boot, kexec or a migration restore the guest may have tasks sleeping on tokens this
 * engine never issued or has dropped: the broadcast makes every one of them retry.
 */
static void apf__wake_all_queue(struct apf__vcpu *v)
{
    apf__fifo_push(&v->fifo, &v->wake_all);
    apf__fifo_stats(v);
}

/*
 * Rule: disable and reset drop outstanding work without leaking it (reference "Disable,
 * reset"; "never drop a completion for which a not-present was delivered, unless a wake-all
 * follows": every later enable queues one).
 *  - work still running (INFLIGHT) or queued for the vCPU (DONE): marked cancelled; its
 *    completion is taken and discarded later by apf__drain (the slot is freed then, never
 *    earlier, because a worker or the embedder still holds its token);
 *  - completions waiting for their "page ready": freed now, no "page ready" is sent;
 *  - the pending wake-all, the ready_pending flag and a halt are cleared;
 *  - the epoch moves on, so jobs still queued in the pool skip `resolve`.
 * Returns the number of outstanding faults dropped.
 */
uint32_t apf__vcpu_drop(struct apf__vcpu *v)
{
    apf__drain(v);
    uint32_t dropped = 0;
    while (apf__fifo_peek(&v->fifo)) {
        struct apf__slot *s = apf__fifo_pop(&v->fifo);
        if (s != &v->wake_all) {
            apf_counter_inc(&v->stats.completions_dropped);
            apf__trace(v, APF_TRACE_HOST_DROP, s->token, s->gpa, s->status);
            apf__slot_free(v, s);
            dropped++;
        }
    }
    apf__fifo_stats(v);
    for (uint32_t i = 0; i < v->chan.host->limit; i++) {
        struct apf__slot *s = &v->slots[i];
        uint32_t state = APF__TAG_STATE(apf_load_acquire(&s->tag));
        if (state != APF__SLOT_FREE && !s->cancelled) {
            s->cancelled = 1;
            dropped++;
        }
    }
    atomic_fetch_add_explicit(&v->epoch, 1, memory_order_relaxed);
    apf__ready_pending_clear(v);
    apf_store_seq_cst(&v->halted, 0);
    apf__failed_clear(&v->failed);
    return dropped;
}

static bool apf__vector_valid(const struct apf__vcpu *v, uint32_t vector)
{
    const struct apf_host *h = v->chan.host;
    return h->tp.vector_check(h->tctx, vector) == 0;
}

/* Everything enable needs, checked without side effects. */
int apf__vcpu_enable_check(const struct apf__vcpu *v, uint64_t area_gpa, uint32_t flags,
                           uint32_t vector)
{
    const struct apf_host *h = v->chan.host;
    if (flags & ~h->tp.valid_flags)
        return APF_EINVAL;
    /* A transport may relax the area's alignment (s390: the token is a doubleword). */
    uint64_t align = (h->tp.caps & APF_HOST_TRANSPORT_AREA_ALIGN_8) ? 8u : APF_AREA_ALIGN;
    if (area_gpa & (align - 1))
        return APF_EINVAL;
    if (!apf__vector_valid(v, vector))
        return APF_EINVAL;
    return h->tp.enable_check(h->tctx, &v->chan, area_gpa, flags | APF_EN_ENABLED);
}

/* APF goes off for the channel: the transport forgets its state, the channel its values. */
static void apf__chan_off(struct apf__vcpu *v)
{
    struct apf_host *h = v->chan.host;
    v->chan.enabled = 0;
    v->chan.flags = 0;
    v->chan.area_gpa = 0;
    v->chan.window = h->tp.window;
    v->chan.needs_ack = (h->tp.caps & APF_HOST_TRANSPORT_NEEDS_ACK) != 0;
    if (h->tp.reset)
        h->tp.reset(h->tctx, &v->chan);
}

static void apf__enable_apply(struct apf__vcpu *v, uint64_t area_gpa, uint32_t flags)
{
    struct apf_host *h = v->chan.host;
    if (v->chan.enabled)
        apf__vcpu_drop(v);
    v->chan.area_gpa = area_gpa;
    v->chan.flags = flags | APF_EN_ENABLED;
    v->chan.enabled = 1;
    v->chan.window = h->tp.window;
    v->chan.needs_ack = (h->tp.caps & APF_HOST_TRANSPORT_NEEDS_ACK) != 0;
    if (h->tp.enabled)
        h->tp.enabled(h->tctx, &v->chan);
    /* No broadcast on the wire (s390): nothing to queue (see APF_HOST_TRANSPORT_NO_WAKE_ALL). */
    if (!(h->tp.caps & APF_HOST_TRANSPORT_NO_WAKE_ALL))
        apf__wake_all_queue(v);
    apf__trace(v, APF_TRACE_HOST_ENABLE, 0, area_gpa, (int32_t)v->chan.flags);
    apf__trace(v, APF_TRACE_HOST_TRANSPORT, h->tp.id, 0, (int32_t)v->chan.window);
}

int apf_host_vcpu_enable(struct apf_host *h, uint32_t vcpu, uint64_t area_gpa, uint32_t flags)
{
    struct apf__vcpu *v = apf__vcpu_get(h, vcpu);
    if (v == NULL)
        return APF_EINVAL;
    int err = apf__vcpu_enable_check(v, area_gpa, flags, v->chan.vector);
    if (err)
        return err;
    apf__enable_apply(v, area_gpa, flags);
    return 0;
}

int apf_host_vcpu_set_vector(struct apf_host *h, uint32_t vcpu, uint32_t vector)
{
    struct apf__vcpu *v = apf__vcpu_get(h, vcpu);
    if (v == NULL || !apf__vector_valid(v, vector))
        return APF_EINVAL;
    v->chan.vector = vector;
    return 0;
}

int apf_host_vcpu_disable(struct apf_host *h, uint32_t vcpu)
{
    struct apf__vcpu *v = apf__vcpu_get(h, vcpu);
    if (v == NULL)
        return APF_EINVAL;
    if (!v->chan.enabled)
        return 0;
    uint32_t dropped = apf__vcpu_drop(v);
    apf__chan_off(v);
    apf__trace(v, APF_TRACE_HOST_DISABLE, 0, 0, (int32_t)dropped);
    return (int)dropped;
}

static void apf__vcpu_reset(struct apf__vcpu *v)
{
    uint32_t dropped = apf__vcpu_drop(v);
    if (v->chan.enabled)
        apf__trace(v, APF_TRACE_HOST_DISABLE, 0, 0, (int32_t)dropped);
    apf__chan_off(v);
    v->chan.vector = 0;
    apf__trace(v, APF_TRACE_HOST_RESET, 0, 0, 0);
}

int apf_host_vcpu_reset(struct apf_host *h, uint32_t vcpu)
{
    struct apf__vcpu *v = apf__vcpu_get(h, vcpu);
    if (v == NULL)
        return APF_EINVAL;
    apf__vcpu_reset(v);
    return 0;
}

int apf_host_vcpu_save(struct apf_host *h, uint32_t vcpu, struct apf_host_vcpu_state *st)
{
    struct apf__vcpu *v = apf__vcpu_get(h, vcpu);
    if (v == NULL || st == NULL)
        return APF_EINVAL;
    st->version = APF_HOST_STATE_VERSION;
    st->enabled = v->chan.enabled;
    st->area_gpa = v->chan.area_gpa;
    st->flags = v->chan.flags;
    st->vector = v->chan.vector;
    st->seq = v->tokens.seq;
    st->reserved = 0;
    return 0;
}

int apf_host_vcpu_restore(struct apf_host *h, uint32_t vcpu, const struct apf_host_vcpu_state *st)
{
    struct apf__vcpu *v = apf__vcpu_get(h, vcpu);
    if (v == NULL || st == NULL)
        return APF_EINVAL;
    if (st->version != APF_HOST_STATE_VERSION || st->reserved != 0 || st->enabled > 1 ||
        st->seq > APF__SEQ_MASK)
        return APF_EINVAL;
    if (st->vector != 0 && !apf__vector_valid(v, st->vector))
        return APF_EINVAL;
    if (st->enabled) {
        if (!(st->flags & APF_EN_ENABLED))
            return APF_EINVAL;
        int err = apf__vcpu_enable_check(v, st->area_gpa, st->flags, st->vector);
        if (err)
            return err;
    } else if (st->flags != 0 || st->area_gpa != 0) {
        return APF_EINVAL;
    }

    apf__vcpu_reset(v);
    v->chan.vector = st->vector;
    v->tokens.seq = st->seq;
    apf__trace(v, APF_TRACE_HOST_RESTORE, 0, st->area_gpa, (int32_t)st->enabled);
    if (st->enabled)
        apf__enable_apply(v, st->area_gpa, st->flags);
    return 0;
}
