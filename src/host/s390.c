/* SPDX-License-Identifier: MIT */
/*
 * s390 pfault transport (apf_host_transport_s390) and frontend (DIAGNOSE X'258', the gate,
 * the floating FIFO, migration). Wire: apf/proto_s390.h; sequences: docs/transport-s390.md.
 * Written against the public headers only.
 *
 * State:
 *  - per vCPU (the engine's apf_host_chan::priv, struct s390_chan): token address and masks
 *    as established, the PSW/CR0 of the fault being decided, and the vCPU's "owed" table:
 *    engine token -> guest task token, for every "not present" delivered and not yet
 *    answered (at most max_outstanding entries; the memory is the frontend's);
 *  - per VM (struct apf_host_s390): the floating FIFO of "page ready"s, shared by the vCPU
 *    threads under `lock` (a spinlock, a leaf: nothing is called while it is held).
 */
#include <stdatomic.h>
#include <stdbool.h>

#include "apf/host_s390.h"
#include "apf/host_transport.h"

#define S390_FLOAT_MAX 65536u /* largest floating FIFO */

struct s390_owed {
    uint32_t token; /* engine token; 0 = free */
    uint32_t pad;
    uint64_t param; /* the guest's task token, read at fault time */
};

struct s390_float {
    uint64_t param;
    uint32_t vcpu; /* whose fault it answers (CANCEL drops them) */
    uint32_t pad;
};

/* Per-vCPU transport block (apf_host_chan::priv). */
struct s390_chan {
    struct apf_host_s390 *fe; /* set by apf_host_s390_create; NULL: no frontend, no APF */
    uint64_t token_addr;      /* as established (engine's area_gpa is the same) */
    uint64_t select, compare;
    uint64_t psw_mask, cr0; /* of the fault being decided (apf_host_s390_fault) */
    uint64_t np_param;      /* the task token of the last "not present" */
    struct s390_owed *owed; /* owed_cap entries, in the frontend's allocation */
    uint32_t posted;        /* entries posted in the current batch */
    uint32_t bad;           /* internal: owed lookups that failed (never expected) */
    uint32_t arming;        /* INIT or set_state is enabling (see s390_enable_check) */
};

struct apf_host_s390 {
    struct apf_host *host;
    struct apf_host_s390_config cfg;
    uint32_t n_vcpus;
    uint32_t owed_cap; /* power of two >= max_outstanding */
    size_t size;
    _Atomic uint32_t lock;
    _Atomic uint32_t fl_count; /* written under lock; read relaxed for room and queries */
    uint32_t fl_head, fl_cap;
    struct s390_float *fl; /* in the same allocation */
    struct s390_owed *owed;
};

static struct s390_chan *s390_of(const struct apf_host_chan *c)
{
    return c->priv;
}

static void fl_lock(struct apf_host_s390 *fe)
{
    while (atomic_exchange_explicit(&fe->lock, 1, memory_order_acquire))
        while (atomic_load_explicit(&fe->lock, memory_order_relaxed))
            ;
}

static void fl_unlock(struct apf_host_s390 *fe)
{
    atomic_store_explicit(&fe->lock, 0, memory_order_release);
}

static uint64_t real_to_abs(const struct apf_host_s390 *fe, uint32_t vcpu, uint64_t real)
{
    return fe->cfg.real_to_abs ? fe->cfg.real_to_abs(fe->cfg.ctx, vcpu, real) : real;
}

/* ---- the owed table: engine token -> task token ------------------------------------------ */
/* Home slot from the token's high bits (the engine's sequence number): with libapf's token
 * format two live tokens of a vCPU never share it, but nothing depends on that - a miss
 * falls back to a scan. */

static uint32_t owed_home(const struct s390_chan *s, uint32_t token)
{
    return (token >> APF_TOKEN_KVM_VCPU_BITS) & (s->fe->owed_cap - 1);
}

static void owed_put(struct s390_chan *s, uint32_t token, uint64_t param)
{
    uint32_t cap = s->fe->owed_cap, i = owed_home(s, token);
    for (uint32_t n = 0; n < cap; n++, i = (i + 1) & (cap - 1)) {
        if (s->owed[i].token == 0) {
            s->owed[i].token = token;
            s->owed[i].param = param;
            return;
        }
    }
    s->bad++; /* cannot happen: at most max_outstanding tokens are live */
}

/* ---- transport ---------------------------------------------------------------------------- */

static int s390_vector_check(void *tctx, uint32_t vector)
{
    (void)tctx;
    return vector == APF_S390_EXT_CODE ? 0 : APF_EINVAL;
}

static int s390_enable_check(void *tctx, const struct apf_host_chan *c, uint64_t area_gpa,
                             uint32_t flags)
{
    (void)tctx;
    (void)flags;
    const struct s390_chan *s = s390_of(c);
    /* Only the frontend establishes (INIT, set_state): the engine's own enable and restore
     * cannot carry the masks, and would leave APF on with the gate open and no token. */
    if (s->fe == NULL || !s->arming)
        return APF_EINVAL;
    uint8_t probe[8];
    return apf_host_chan_read(c, real_to_abs(s->fe, c->vcpu, area_gpa), probe, sizeof(probe));
}

/* The rest of the gate: the guest's masks and the service-signal subclass (the engine has
 * checked external interrupts on and nothing pending: APF_GS_IRQ_ON, APF_GS_EXC_PENDING). */
static int s390_np_deliverable(void *tctx, const struct apf_host_chan *c, uint32_t gs)
{
    (void)tctx;
    (void)gs;
    const struct s390_chan *s = s390_of(c);
    return (s->psw_mask & s->select) == s->compare &&
           (s->cr0 & APF_S390_CR0_SERVICE_SIGNAL) != 0;
}

/* The guest owns the token: read the current task's 8 bytes (big-endian) now. Unreadable:
 * "cannot deliver", the engine falls back (halt or sync). */
static int s390_np_post(void *tctx, struct apf_host_chan *c, uint32_t token)
{
    (void)tctx;
    struct s390_chan *s = s390_of(c);
    if (s->fe == NULL)
        return APF_ENODEV;
    uint8_t raw[8];
    int err = apf_host_chan_read(c, real_to_abs(s->fe, c->vcpu, s->token_addr), raw, 8);
    if (err)
        return err;
    s->np_param = apf_s390_be64(raw);
    owed_put(s, token, s->np_param);
    return 0;
}

/* No throttle: as many as the floating FIFO has room for (a relaxed estimate; ready_post
 * re-checks under the lock). */
static uint32_t s390_ready_room(void *tctx, struct apf_host_chan *c, uint32_t gs)
{
    (void)tctx;
    (void)gs;
    const struct apf_host_s390 *fe = s390_of(c)->fe;
    if (fe == NULL)
        return 0;
    return fe->fl_cap - atomic_load_explicit(&fe->fl_count, memory_order_relaxed);
}

static int s390_ready_post(void *tctx, struct apf_host_chan *c, uint32_t token)
{
    (void)tctx;
    struct s390_chan *s = s390_of(c);
    struct apf_host_s390 *fe = s->fe;
    uint64_t param;
    if (fe == NULL)
        return APF_ENODEV;
    /* No wake-all is ever queued (APF_HOST_TRANSPORT_NO_WAKE_ALL); every other token was
     * recorded by np_post. A token without a record would be an engine bug: dropped. */
    uint32_t cap = fe->owed_cap, i = owed_home(s, token);
    bool found = false;
    for (uint32_t n = 0; n < cap; n++, i = (i + 1) & (cap - 1))
        if (s->owed[i].token == token) {
            found = true;
            break;
        }
    if (!found) {
        s->bad++;
        return 0;
    }
    fl_lock(fe);
    uint32_t count = atomic_load_explicit(&fe->fl_count, memory_order_relaxed);
    if (count == fe->fl_cap) {
        fl_unlock(fe);
        return APF_ENOSPC; /* stays in the engine's FIFO */
    }
    param = s->owed[i].param;
    struct s390_float *e = &fe->fl[(fe->fl_head + count) & (fe->fl_cap - 1)];
    e->param = param;
    e->vcpu = c->vcpu;
    atomic_store_explicit(&fe->fl_count, count + 1, memory_order_relaxed);
    fl_unlock(fe);
    s->owed[i].token = 0;
    s->posted++;
    return 0;
}

/* One "the floating FIFO has work" per batch: the engine calls inject_ready(0x2603). */
static int s390_ready_notify(void *tctx, struct apf_host_chan *c, uint32_t posted)
{
    (void)tctx;
    (void)posted;
    struct s390_chan *s = s390_of(c);
    int notify = s->posted != 0;
    s->posted = 0;
    return notify;
}

/* The token became invalid (CANCEL, reset, restore): this vCPU's completions waiting in the
 * floating FIFO are dropped, as KVM s390 clears its completion queue; nothing is owed. */
static void s390_reset(void *tctx, struct apf_host_chan *c)
{
    (void)tctx;
    struct s390_chan *s = s390_of(c);
    struct apf_host_s390 *fe = s->fe;
    s->token_addr = 0;
    s->select = s->compare = 0;
    s->posted = 0;
    if (fe == NULL)
        return;
    for (uint32_t i = 0; i < fe->owed_cap; i++)
        s->owed[i].token = 0;
    fl_lock(fe);
    uint32_t count = atomic_load_explicit(&fe->fl_count, memory_order_relaxed), kept = 0;
    uint32_t mask = fe->fl_cap - 1;
    for (uint32_t k = 0; k < count; k++) {
        struct s390_float e = fe->fl[(fe->fl_head + k) & mask];
        if (e.vcpu != c->vcpu)
            fe->fl[(fe->fl_head + kept++) & mask] = e;
    }
    atomic_store_explicit(&fe->fl_count, kept, memory_order_relaxed);
    fl_unlock(fe);
}

const struct apf_host_transport_ops apf_host_transport_s390 = {
    .name = "s390",
    .id = APF_TRANSPORT_ID_S390,
    .caps = APF_HOST_TRANSPORT_AREA_ALIGN_8 | APF_HOST_TRANSPORT_NO_WAKE_ALL,
    .valid_flags = APF_EN_ENABLED | APF_EN_SEND_ALWAYS,
    .window = 0, /* no throttle */
    .priv_size = sizeof(struct s390_chan),
    .vector_check = s390_vector_check,
    .enable_check = s390_enable_check,
    .np_deliverable = s390_np_deliverable,
    .np_post = s390_np_post,
    .ready_room = s390_ready_room,
    .ready_post = s390_ready_post,
    .ready_notify = s390_ready_notify,
    .reset = s390_reset,
};

/* ---- frontend ------------------------------------------------------------------------------ */

static uint32_t pow2_at_least(uint32_t n)
{
    uint32_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

int apf_host_s390_create(struct apf_host *h, const struct apf_host_s390_config *cfg,
                         struct apf_host_s390 **out)
{
    if (h == NULL || out == NULL || apf_host_transport(h, NULL) != &apf_host_transport_s390)
        return APF_EINVAL;
    if (cfg)
        for (int i = 0; i < 4; i++)
            if (cfg->reserved[i])
                return APF_EINVAL;
    uint32_t n = apf_host_vcpu_count(h);
    if (s390_of(apf_host_chan_get(h, 0))->fe != NULL)
        return APF_EINVAL; /* one frontend per engine */
    uint32_t owed_cap = pow2_at_least(apf_host_max_outstanding(h));
    /* Room for every completion that can be owed, up to a bound (a full FIFO only keeps
     * completions waiting in the engine, counted against the limit: nothing is lost). */
    uint64_t want = (uint64_t)n * apf_host_max_outstanding(h);
    uint32_t fl_cap = pow2_at_least(want > S390_FLOAT_MAX ? S390_FLOAT_MAX : (uint32_t)want);
    size_t size = sizeof(struct apf_host_s390) + sizeof(struct s390_float) * fl_cap +
                  sizeof(struct s390_owed) * (size_t)owed_cap * n;
    struct apf_host_s390 *fe = apf_host_zalloc(h, size);
    if (fe == NULL)
        return APF_ENOMEM;
    fe->host = h;
    if (cfg)
        fe->cfg = *cfg;
    fe->n_vcpus = n;
    fe->owed_cap = owed_cap;
    fe->size = size;
    fe->fl_cap = fl_cap;
    fe->fl = (struct s390_float *)(void *)(fe + 1);
    fe->owed = (struct s390_owed *)(void *)(fe->fl + fl_cap);
    for (uint32_t i = 0; i < n; i++) {
        struct s390_chan *s = s390_of(apf_host_chan_get(h, i));
        s->fe = fe;
        s->owed = fe->owed + (size_t)owed_cap * i;
    }
    *out = fe;
    return 0;
}

void apf_host_s390_destroy(struct apf_host_s390 *fe)
{
    if (fe == NULL)
        return;
    for (uint32_t i = 0; i < fe->n_vcpus; i++) {
        struct s390_chan *s = s390_of(apf_host_chan_get(fe->host, i));
        s->fe = NULL;
        s->owed = NULL;
    }
    apf_host_free(fe->host, fe, fe->size);
}

static struct s390_chan *chan_of(struct apf_host_s390 *fe, uint32_t vcpu)
{
    if (fe == NULL || vcpu >= fe->n_vcpus)
        return NULL;
    return s390_of(apf_host_chan_get(fe->host, vcpu));
}

/* INIT's checks of the token and masks, without side effects (also used by restore). */
static int init_check(struct apf_host_s390 *fe, uint32_t vcpu, uint64_t token_addr,
                      uint64_t select, uint64_t compare)
{
    if ((compare & select) != compare || (token_addr & (APF_S390_TOKEN_ALIGN - 1)))
        return APF_HOST_S390_SPECIFICATION;
    struct s390_chan *s = chan_of(fe, vcpu);
    s->arming = 1;
    int err = apf_host_vcpu_enable_check(fe->host, vcpu, token_addr, APF_EN_SEND_ALWAYS,
                                         APF_S390_EXT_CODE);
    s->arming = 0;
    return err == APF_EFAULT ? APF_HOST_S390_ADDRESSING : err;
}

/* Establish (checked by init_check). SEND_ALWAYS: the masks, not the engine's "user mode
 * only" rule, decide (the transport's np_deliverable). */
static void init_apply(struct apf_host_s390 *fe, uint32_t vcpu, uint64_t token_addr,
                       uint64_t select, uint64_t compare)
{
    struct s390_chan *s = chan_of(fe, vcpu);
    apf_host_vcpu_disable(fe->host, vcpu); /* restore over an established token */
    apf_host_vcpu_set_vector(fe->host, vcpu, APF_S390_EXT_CODE);
    s->token_addr = token_addr;
    s->select = select;
    s->compare = compare;
    s->arming = 1;
    apf_host_vcpu_enable(fe->host, vcpu, token_addr, APF_EN_SEND_ALWAYS);
    s->arming = 0;
}

int apf_host_s390_diag258(struct apf_host_s390 *fe, uint32_t vcpu, uint64_t block, uint64_t *ry)
{
    struct s390_chan *s = chan_of(fe, vcpu);
    if (s == NULL || ry == NULL)
        return APF_ENODEV;
    if (block & (APF_S390_REFBK_ALIGN - 1))
        return APF_HOST_S390_SPECIFICATION;
    uint8_t raw[APF_S390_REFBK_SIZE];
    struct apf_host_chan *c = apf_host_chan_get(fe->host, vcpu);
    /* A real range: prefixing maps each 8 KiB page of it on its own, so a block across a
     * page boundary is two absolute pieces. Translate each doubleword (aligned, so never
     * split by a boundary). */
    for (uint32_t off = 0; off < sizeof(raw); off += 8)
        if (apf_host_chan_read(c, real_to_abs(fe, vcpu, block + off), raw + off, 8))
            return APF_HOST_S390_ADDRESSING;
    struct apf_s390_refbk b;
    apf_s390_refbk_decode(raw, &b);
    if (b.code != APF_S390_DIAG_CODE || b.dwords < APF_S390_REFBK_DWORDS ||
        b.version != APF_S390_REFBK_VERSION)
        return APF_HOST_S390_SPECIFICATION;
    bool established = apf_host_vcpu_enabled(fe->host, vcpu) == 1;
    switch (b.subcode) {
    case APF_S390_SUB_INIT: {
        if (established) {
            *ry = APF_S390_RC_ALREADY; /* the token must not change while established */
            return 0;
        }
        if (b.reserved != APF_S390_REFBK_RESERVED)
            return APF_HOST_S390_SPECIFICATION;
        int err = init_check(fe, vcpu, b.token_addr, b.select, b.compare);
        if (err)
            return err;
        init_apply(fe, vcpu, b.token_addr, b.select, b.compare);
        *ry = APF_S390_RC_OK;
        return 0;
    }
    case APF_S390_SUB_CANCEL:
        if (b.token_addr || b.select || b.compare || b.reserved)
            return APF_HOST_S390_SPECIFICATION;
        if (!established) {
            *ry = APF_S390_RC_NOT_ESTABLISHED;
            return 0;
        }
        apf_host_vcpu_disable(fe->host, vcpu); /* drops work; reset op drops floating */
        *ry = APF_S390_RC_OK;
        return 0;
    default:
        return APF_HOST_S390_SPECIFICATION;
    }
}

/* The engine's guest-state bits from the PSW: external interrupts on -> IRQ_ON; pending ->
 * EXC_PENDING; problem state -> USER (informational: SEND_ALWAYS is set, the masks decide).
 * IRQCHIP_ON always: moving a completion to the floating FIFO does not depend on this vCPU
 * (apf_host_s390_take_ready checks the taker). */
static uint32_t guest_state(const struct apf_host_s390_cpu *cpu)
{
    uint32_t gs = APF_GS_IRQCHIP_ON;
    if (cpu->psw_mask & APF_S390_PSW_MASK_EXT)
        gs |= APF_GS_IRQ_ON;
    if (cpu->psw_mask & APF_S390_PSW_MASK_PSTATE)
        gs |= APF_GS_USER;
    if (cpu->pending)
        gs |= APF_GS_EXC_PENDING;
    return gs;
}

int apf_host_s390_fault(struct apf_host_s390 *fe, uint32_t vcpu, uint64_t gpa,
                        const struct apf_host_s390_cpu *cpu, uint64_t *param)
{
    struct s390_chan *s = chan_of(fe, vcpu);
    if (s == NULL || cpu == NULL || param == NULL)
        return APF_ENODEV;
    s->psw_mask = cpu->psw_mask;
    s->cr0 = cpu->cr0;
    int r = apf_host_vcpu_fault(fe->host, vcpu, gpa, guest_state(cpu));
    if (r == APF_FAULT_ASYNC)
        *param = s->np_param;
    return r;
}

int apf_host_s390_take_ready(struct apf_host_s390 *fe, uint32_t vcpu,
                             const struct apf_host_s390_cpu *cpu, uint64_t *param)
{
    if (chan_of(fe, vcpu) == NULL || cpu == NULL || param == NULL)
        return APF_ENODEV;
    /* A service-signal external interrupt needs the PSW external mask and CR0's subclass. */
    if (!(cpu->psw_mask & APF_S390_PSW_MASK_EXT) || !(cpu->cr0 & APF_S390_CR0_SERVICE_SIGNAL))
        return 0;
    if (atomic_load_explicit(&fe->fl_count, memory_order_relaxed) == 0)
        return 0;
    fl_lock(fe);
    uint32_t count = atomic_load_explicit(&fe->fl_count, memory_order_relaxed);
    int took = 0;
    if (count) {
        *param = fe->fl[fe->fl_head].param;
        fe->fl_head = (fe->fl_head + 1) & (fe->fl_cap - 1);
        atomic_store_explicit(&fe->fl_count, count - 1, memory_order_relaxed);
        took = 1;
    }
    fl_unlock(fe);
    return took;
}

int apf_host_s390_before_entry(struct apf_host_s390 *fe, uint32_t vcpu,
                               const struct apf_host_s390_cpu *cpu, uint64_t *param)
{
    if (chan_of(fe, vcpu) == NULL || cpu == NULL || param == NULL)
        return APF_ENODEV;
    apf_host_vcpu_before_entry(fe->host, vcpu, guest_state(cpu));
    return apf_host_s390_take_ready(fe, vcpu, cpu, param);
}

uint32_t apf_host_s390_floating(const struct apf_host_s390 *fe)
{
    return fe ? atomic_load_explicit(&fe->fl_count, memory_order_relaxed) : 0;
}

int apf_host_s390_get_state(struct apf_host_s390 *fe, uint32_t vcpu,
                            struct apf_host_s390_state *st)
{
    struct s390_chan *s = chan_of(fe, vcpu);
    if (s == NULL || st == NULL)
        return APF_ENODEV;
    if (apf_host_vcpu_enabled(fe->host, vcpu) == 1) {
        st->token_addr = s->token_addr;
        st->select = s->select;
        st->compare = s->compare;
    } else {
        st->token_addr = APF_S390_TOKEN_INVALID;
        st->select = st->compare = 0;
    }
    return 0;
}

int apf_host_s390_set_state(struct apf_host_s390 *fe, uint32_t vcpu,
                            const struct apf_host_s390_state *st)
{
    if (chan_of(fe, vcpu) == NULL || st == NULL)
        return APF_ENODEV;
    if (st->token_addr == APF_S390_TOKEN_INVALID) {
        if (st->select || st->compare)
            return APF_EINVAL;
        apf_host_vcpu_disable(fe->host, vcpu); /* invalid token: pending completions go */
        return 0;
    }
    int err = init_check(fe, vcpu, st->token_addr, st->select, st->compare);
    if (err)
        return err;
    init_apply(fe, vcpu, st->token_addr, st->select, st->compare);
    return 0;
}

int apf_host_s390_vcpu_reset(struct apf_host_s390 *fe, uint32_t vcpu)
{
    if (chan_of(fe, vcpu) == NULL)
        return APF_ENODEV;
    apf_host_vcpu_reset(fe->host, vcpu);
    return 0;
}
