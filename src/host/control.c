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
    apf__fifo_push(v, &v->wake_all);
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
    while (v->fifo_head) {
        struct apf__slot *s = v->fifo_head;
        v->fifo_head = s->fifo_next;
        if (s != &v->wake_all) {
            apf_counter_inc(&v->stats.completions_dropped);
            apf__trace(v, APF_TRACE_HOST_DROP, s->token, s->gpa, s->status);
            apf__slot_free(v, s);
            dropped++;
        }
    }
    v->fifo_tail = NULL;
    v->fifo_len = 0;
    apf_store_relaxed(&v->stats.ready_queue, 0);
    for (uint32_t i = 0; i < v->host->limit; i++) {
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
    v->failed_n = 0;
    v->failed_next = 0;
    return dropped;
}

static bool apf__vector_valid(const struct apf__vcpu *v, uint32_t vector)
{
    if (v->host->cfg.abi == APF_HOST_ABI_ARM64)
        return vector >= APF_ARM64_PPI_MIN && vector <= APF_ARM64_PPI_MAX;
    return vector >= APF_X86_FIRST_EXTERNAL_VECTOR && vector <= 0xff;
}

/* Everything enable needs, checked without side effects. */
int apf__vcpu_enable_check(const struct apf__vcpu *v, uint64_t area_gpa, uint32_t flags,
                             uint32_t vector)
{
    uint32_t valid = v->host->cfg.abi == APF_HOST_ABI_ARM64
                         ? APF_ARM64_EN_VALID
                         : (APF_EN_ENABLED | APF_EN_SEND_ALWAYS | APF_EN_DELIVERY_AS_PF_VMEXIT |
                            APF_EN_DELIVERY_AS_INT);
    if (flags & ~valid)
        return APF_EINVAL;
    if (area_gpa & (APF_AREA_ALIGN - 1))
        return APF_EINVAL;
    if (!apf__vector_valid(v, vector))
        return APF_EINVAL;
    uint32_t probe[2];
    if (v->host->ops.read_guest(v->host->cfg.ctx, area_gpa, probe, sizeof(probe)) != 0)
        return APF_EFAULT;
    return 0;
}

static void apf__enable_apply(struct apf__vcpu *v, uint64_t area_gpa, uint32_t flags)
{
    if (v->enabled)
        apf__vcpu_drop(v);
    v->area_gpa = area_gpa;
    v->flags = flags | APF_EN_ENABLED;
    v->enabled = 1;
    apf__wake_all_queue(v);
    apf__trace(v, APF_TRACE_HOST_ENABLE, 0, area_gpa, (int32_t)v->flags);
}

int apf_host_vcpu_enable(struct apf_host *h, uint32_t vcpu, uint64_t area_gpa, uint32_t flags)
{
    struct apf__vcpu *v = apf__vcpu_get(h, vcpu);
    if (v == NULL)
        return APF_EINVAL;
    int err = apf__vcpu_enable_check(v, area_gpa, flags, v->vector);
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
    v->vector = vector;
    return 0;
}

int apf_host_vcpu_disable(struct apf_host *h, uint32_t vcpu)
{
    struct apf__vcpu *v = apf__vcpu_get(h, vcpu);
    if (v == NULL)
        return APF_EINVAL;
    if (!v->enabled)
        return 0;
    uint32_t dropped = apf__vcpu_drop(v);
    v->enabled = 0;
    v->flags = 0;
    v->area_gpa = 0;
    apf__trace(v, APF_TRACE_HOST_DISABLE, 0, 0, (int32_t)dropped);
    return (int)dropped;
}

static void apf__vcpu_reset(struct apf__vcpu *v)
{
    uint32_t dropped = apf__vcpu_drop(v);
    if (v->enabled)
        apf__trace(v, APF_TRACE_HOST_DISABLE, 0, 0, (int32_t)dropped);
    v->enabled = 0;
    v->flags = 0;
    v->area_gpa = 0;
    v->vector = 0;
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
    st->enabled = v->enabled;
    st->area_gpa = v->area_gpa;
    st->flags = v->flags;
    st->vector = v->vector;
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
    v->vector = st->vector;
    v->tokens.seq = st->seq;
    apf__trace(v, APF_TRACE_HOST_RESTORE, 0, st->area_gpa, (int32_t)st->enabled);
    if (st->enabled)
        apf__enable_apply(v, st->area_gpa, st->flags);
    return 0;
}
