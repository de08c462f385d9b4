/* SPDX-License-Identifier: MIT */
/*
 * The s390 pfault backend (apf_guest_backend_s390) and the external-interrupt entry point.
 *
 * The channel (64 bytes per CPU, in the runtime's memory) holds the DIAGNOSE X'258'
 * parameter block, built big-endian byte by byte (never a struct overlay: the host reads
 * bytes), and a one-entry mailbox: the external interrupt being handled. s390 delivers the
 * token in the interruption parameter, not in memory: apf_guest_s390_external() puts it in
 * the mailbox and runs the runtime's entry point, whose backend ops read it back. So the
 * runtime's rules (token checks, wake-before-wait, wake -> release -> finish) apply
 * unchanged.
 */
#include "apf/guest_s390.h"
#include "guest/runtime.h"

enum { MB_NONE = 0, MB_NOT_PRESENT = 1, MB_READY = 2 };

struct s390_gchan {
    uint8_t refbk[APF_S390_REFBK_SIZE]; /* the parameter block, as the host reads it */
    uint32_t kind;                      /* mailbox: MB_* (this CPU only) */
    uint32_t pad;
    uint64_t param; /* the interruption parameter */
    uint64_t pad2;
};
_Static_assert(sizeof(struct s390_gchan) == 64, "one 64-byte channel per CPU");
_Static_assert(__builtin_offsetof(struct s390_gchan, refbk) == 0, "block first, 8-aligned");

static uint32_t s390_caps(void *ctx)
{
    (void)ctx;
    return APF_BACKEND_CAP_HOST_VECTOR | APF_BACKEND_CAP_SEND_ALWAYS;
}

/* Nothing to ask: s390 has no discovery call; the first INIT answers (Linux does the same). */
static int s390_probe(void *ctx, struct apf_guest_backend_info *info)
{
    struct apf_guest_s390 *b = ctx;
    if (b == 0 || b->arch == 0 || b->arch->diag258 == 0 ||
        (b->token_addr & (APF_S390_TOKEN_ALIGN - 1)) || (b->compare & b->select) != b->compare ||
        b->cancel_pa == 0 || (b->cancel_pa & (APF_S390_REFBK_ALIGN - 1)))
        return APF_EINVAL;
    info->version = APF_PROTO_VERSION;
    info->slots = 64; /* not announced on this wire: a sizing hint only */
    info->irq = APF_S390_EXT_CODE;
    info->sdei_event = 0;
    info->features = 0;
    return 0;
}

static size_t s390_chan_size(void *ctx, size_t *align)
{
    (void)ctx;
    *align = APF_S390_REFBK_ALIGN;
    return sizeof(struct s390_gchan);
}

static int s390_vector_check(void *ctx, uint32_t vector)
{
    (void)ctx;
    return vector == APF_S390_EXT_CODE ? 0 : APF_EPROTO;
}

static int diag(struct apf_guest_s390 *b, uint32_t cpu, struct s390_gchan *ch, uint64_t ch_pa,
                const struct apf_s390_refbk *blk)
{
    apf_s390_refbk_encode(blk, ch->refbk);
    /* The host reads the block when it handles the diagnose: the stores come first (the
     * instruction serialises on real hardware; the compiler barrier keeps them here). */
    atomic_signal_fence(memory_order_seq_cst);
    return b->arch->diag258(b->arch_ctx, cpu, ch_pa + __builtin_offsetof(struct s390_gchan, refbk));
}

static int s390_enable(void *ctx, uint32_t cpu, void *chan, uint64_t chan_pa, uint32_t vector,
                       uint32_t flags)
{
    struct apf_guest_s390 *b = ctx;
    (void)vector;
    bool always = (flags & APF_EN_SEND_ALWAYS) != 0;
    struct apf_s390_refbk blk = {
        .code = APF_S390_DIAG_CODE,
        .subcode = APF_S390_SUB_INIT,
        .dwords = APF_S390_REFBK_DWORDS,
        .version = APF_S390_REFBK_VERSION,
        .token_addr = b->token_addr,
        .select = always ? 0 : b->select,
        .compare = always ? 0 : b->compare,
        .reserved = APF_S390_REFBK_RESERVED,
    };
    int rc = diag(b, cpu, chan, chan_pa, &blk);
    if (rc < 0)
        return rc; /* program exception */
    if (rc == (int)APF_S390_RC_ALREADY)
        return APF_EBUSY;
    return rc == (int)APF_S390_RC_OK ? 0 : APF_EPROTO;
}

/* CANCEL with the context's block (the same for every CPU, never written after init).
 * Ry 0 (cancelled) and 4 (was not established) both leave pfault off. */
static int s390_disable(void *ctx, uint32_t cpu)
{
    struct apf_guest_s390 *b = ctx;
    int rc = b->arch->diag258(b->arch_ctx, cpu, b->cancel_pa);
    if (rc < 0)
        return rc;
    return rc == (int)APF_S390_RC_OK || rc == (int)APF_S390_RC_NOT_ESTABLISHED ? 0 : APF_EPROTO;
}

static int take(struct s390_gchan *ch, uint32_t want, struct apf_guest_chan_event *ev)
{
    if (ch->kind != want)
        return 0;
    uint32_t key = apf_guest_s390_key(ch->param);
    ev->token = key;
    ev->value = key;
    return apf_token_is_fault(key) ? 1 : -1;
}

static int s390_take_not_present(void *ctx, uint32_t cpu, void *chan, uint32_t token_hint,
                                 struct apf_guest_chan_event *ev)
{
    (void)ctx, (void)cpu, (void)token_hint;
    struct s390_gchan *ch = chan;
    int r = take(ch, MB_NOT_PRESENT, ev);
    if (r == 0)
        return APF_GUEST_NP_NONE;
    ch->kind = MB_NONE;
    return r > 0 ? APF_GUEST_NP_EVENT : APF_GUEST_NP_BAD;
}

static int s390_ready_peek(void *ctx, uint32_t cpu, void *chan, struct apf_guest_chan_event *ev)
{
    (void)ctx, (void)cpu;
    int r = take(chan, MB_READY, ev);
    if (r == 0)
        return APF_GUEST_READY_EMPTY;
    return r > 0 ? APF_GUEST_READY_TOKEN : APF_GUEST_READY_BAD_ENTRY;
}

static int s390_ready_release(void *ctx, uint32_t cpu, void *chan)
{
    (void)ctx, (void)cpu;
    ((struct s390_gchan *)chan)->kind = MB_NONE;
    return 0; /* one interrupt, one token */
}

static int s390_ready_finish(void *ctx, uint32_t cpu, void *chan)
{
    (void)ctx, (void)cpu, (void)chan;
    return 0; /* no ACK on this wire */
}

const struct apf_guest_backend_ops apf_guest_backend_s390 = {
    .name = "s390",
    .capabilities = s390_caps,
    .probe = s390_probe,
    .chan_size = s390_chan_size,
    .vector_check = s390_vector_check,
    .enable = s390_enable,
    .disable = s390_disable,
    .take_not_present = s390_take_not_present,
    .ready_peek = s390_ready_peek,
    .ready_release = s390_ready_release,
    .ready_finish = s390_ready_finish,
};

void apf_guest_s390_init(struct apf_guest_s390 *b, const struct apf_s390_arch_ops *arch,
                         void *arch_ctx, uint64_t token_addr)
{
    b->arch = arch;
    b->arch_ctx = arch_ctx;
    b->token_addr = token_addr;
    b->select = APF_S390_PSW_MASK_PSTATE;
    b->compare = APF_S390_PSW_MASK_PSTATE;
    const struct apf_s390_refbk cancel = {
        .code = APF_S390_DIAG_CODE,
        .subcode = APF_S390_SUB_CANCEL,
        .dwords = APF_S390_REFBK_DWORDS,
        .version = APF_S390_REFBK_VERSION,
    };
    apf_s390_refbk_encode(&cancel, (uint8_t *)b->cancel);
    b->cancel_pa = 0;
}

/* ---- the entry point --------------------------------------------------------------------- */

/* A "page ready" on a CPU where pfault is not established (never INIT, or offline since):
 * the completion floats, so it may land here; its waiter (on another CPU) must still wake.
 * The same checks and order as the runtime's take, without an ACK (none on this wire). */
static void ready_without_channel(struct apf_guest *g, uint32_t cpu, uint32_t key)
{
    struct apf__gcpu *c = &g->cpus[cpu];
    apf__gtrace(g, APF_TRACE_GUEST_READY, cpu, key, 0);
    if (!apf_token_is_fault(key)) {
        apf_counter_inc(&c->stats.bad_host_values);
        apf__glog(g, 1, "pfault completion with an invalid key, dropped:", cpu, key);
        return;
    }
    apf_counter_inc(&c->stats.ready);
    uint32_t woken = apf__st_wake(g, cpu, key);
    apf_counter_inc(&c->stats.notifications);
    apf__gtrace(g, APF_TRACE_GUEST_WAKE, cpu, key, (int32_t)woken);
}

/*
 * Rule (s390 external interrupt 0x2603; reference transports.md section 2): the code is
 * shared with other service signals, so only `(subcode & 0xff00) == 0x0600` is ours; bit
 * 0x0080 tells a completion ("page ready", floating: any CPU) from an initial one ("not
 * present", the current task of this CPU). The token is the interruption parameter.
 */
int apf_guest_s390_external(struct apf_guest *g, uint32_t cpu, uint32_t code, uint32_t subcode,
                            uint64_t param)
{
    if (g == 0 || cpu >= g->cfg.n_cpus || g->cfg.backend != &apf_guest_backend_s390)
        return APF_EINVAL;
    if (code != APF_S390_EXT_CODE || (subcode & APF_S390_EXT_SUB_MASK) != APF_S390_EXT_SUB_INIT)
        return 0;
    struct apf__gcpu *c = &g->cpus[cpu];
    struct s390_gchan *ch = c->chan;
    bool done = (subcode & APF_S390_EXT_SUB_DONE_BIT) != 0;
    if (done && !apf_load_relaxed(&c->enabled)) {
        ready_without_channel(g, cpu, apf_guest_s390_key(param));
        return 1;
    }
    ch->param = param;
    ch->kind = done ? MB_READY : MB_NOT_PRESENT;
    if (done) {
        apf_guest_on_interrupt(g, cpu);
    } else if (apf_guest_on_exception(g, cpu, 0) == 0) {
        /* "Not present" on a CPU where pfault is off: the host broke the protocol. The
         * task simply continues (its access faults again and is handled synchronously). */
        ch->kind = MB_NONE;
        apf_counter_inc(&c->stats.bad_host_values);
        apf__glog(g, 1, "pfault initial interrupt while pfault is off, ignored:", cpu,
                  apf_guest_s390_key(param));
    }
    return 1;
}
