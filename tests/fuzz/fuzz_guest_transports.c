/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the guest runtime's entry points over the xen-hvm, apf-mmio and s390 pfault
 * backends, with everything the host writes chosen by the input, malformed values included:
 * the shared area and the ready ring (raw words anywhere), the hypercall results and OUT
 * fields (xen), the register values the device returns (mmio: identification registers,
 * STATUS), the DIAGNOSE X'258' return codes and the external interrupts' code, subcode,
 * parameter and CPU (s390). The kernel, the event loop and the common invariants are
 * guest_env.h's (shared with fuzz_guest.c).
 *
 * Invariants here, besides guest_env.h's:
 *  - wake before release, release before the host is told (rings): a waiter is woken while
 *    its entry is still the one at the page's `cons`; after an interrupt the ring is drained
 *    (`cons` = `prod`) and re-armed (`event` = `cons` + 1, so the host notifies the next
 *    entry: the host here honours the hold-off), and the guest wrote none of the host's words;
 *  - a wake only for the delivery in progress: a "page ready" wakes waiters of its token (or
 *    of its CPU for a wake-all), an offline those of its CPU and only after the host saw the
 *    disable; an s390 completion with an invalid key wakes nobody; nothing else wakes;
 *  - a malformed "not present" (bad reason, CR2 and area disagreeing, an invalid key, pfault
 *    off) never makes a task sleep or halt; a fault with no reason is genuine (0);
 *  - return values as documented: available() and online() agree with the host's answers
 *    (probe values range-checked; the first refusal is what online returns); a refused
 *    online leaves nothing registered on the host; external() is 1 exactly for pfault's
 *    interrupts, and an interrupt that is not pfault's changes nothing;
 *  - no hypercall, register access or diagnose outside init, online and offline.
 * The other CPU takes turns too (1-4 remote events inside a waiter's window or sleep), and
 * s390 completions float to either CPU, also for a task still in its window.
 * Input: byte 0 the transport, then the pool, its configuration bytes, buckets, flags, the
 * host's answers as they are asked for, then events (guest_env.h).
 */
#include "apf/guest_mmio.h"
#include "apf/guest_s390.h"
#include "apf/guest_xen.h"
#include "guest_env.h"

enum { T_XEN, T_MMIO, T_S390 };
enum { D_NONE, D_READY, D_OFFLINE };

#define MAX_TASKS 4096u
#define MAX_BATCH 8

/* What the entry point being called may wake (gt_woken). */
struct deliv {
    int kind;         /* D_* */
    uint32_t cpu;     /* the CPU taking the interrupt / going offline */
    uint32_t token;   /* s390: the completion's key */
};

/* The host's view of one CPU. */
struct hcpu {
    int reg;          /* APF registered (xen), enabled (mmio), established (s390) */
    int bound;        /* xen: the VIRQ is bound */
    int disabled;     /* a disable reached the host during the offline in progress */
    int unreg_failed; /* the host refused to turn APF off: it may think it is on */
    uint32_t entries; /* ring entries registered */
    uint32_t prod;    /* the host's producer index */
    uint32_t stage[4]; /* mmio: AREA_LO, AREA_HI, RING_LO, RING_HI */
    uint32_t status;   /* mmio: STATUS */
};

static struct {
    int tr;
    struct apf_guest_xen xen;
    struct apf_guest_mmio mmio;
    struct apf_guest_s390 s390;
    _Alignas(8) uint8_t tokdw[16]; /* s390: the kernel's token doubleword */
    int send_always;
    uint32_t mmio_reg[6]; /* mmio: MAGIC .. NP_KIND as the device answers */
    int avail_want;       /* what apf_guest_available() must say */
    int io_ok;            /* inside init, online or offline */
    int online_want;      /* the first refusal of the online in progress */
    struct hcpu h[N_CPUS];
    struct deliv d; /* the delivery in progress (gt_woken) */
    uint32_t batch[MAX_BATCH]; /* tokens published for the interrupt in progress */
    int n_batch;
    uint32_t np_hint;     /* xen / mmio: CR2 of the "not present" being posted */
    int np_bad, np_ret;   /* ... malformed (must not wait), what on_exception returns */
    int win_bad[MAX_DEPTH + 2];
    uint32_t task_token[MAX_TASKS]; /* the token each task waits for (set at its fault) */
} T;

static int enabled(uint32_t cpu)
{
    struct apf_guest_stats st;
    apf_guest_stats(G.g, cpu, &st);
    return (int)st.enabled;
}

static void want(int err)
{
    if (T.online_want == 0)
        T.online_want = err;
}

/* The host's answer: `ok` most of the time, else one of `bad` (input-chosen). */
static int64_t answer(int64_t ok, const int64_t *bad, size_t n_bad)
{
    uint8_t b = fz_u8(G.f);
    return b < 0xf0 ? ok : bad[b % n_bad];
}

/* The ring as the host registers it: prod = cons, its size. */
static void host_ring_start(uint32_t cpu, uint32_t entries)
{
    struct apf_ring *r = ring(cpu);
    T.h[cpu].entries = entries;
    T.h[cpu].prod = r->cons;
    r->prod = r->cons;
    r->size = entries;
}

/* ---- xen-hvm: the hypercalls ---- */

static const int64_t xen_bad[] = {-(int64_t)APF_XEN_EINVAL, -(int64_t)APF_XEN_EFAULT,
                                  -(int64_t)APF_XEN_EAGAIN, -(int64_t)APF_XEN_ENOSYS,
                                  -(int64_t)APF_XEN_EPERM,  -(int64_t)APF_XEN_EBUSY,
                                  1,                        -4096,
                                  INT64_MIN,                0x7fffffff};
#define N_XEN_BAD (sizeof(xen_bad) / sizeof(xen_bad[0]))

static int xen_err(int64_t r)
{
    if (r == 0)
        return 0;
    return r < 0 && r >= -4095 ? (int)r : APF_EPROTO;
}

static int64_t xen_unregister(uint32_t cpu)
{
    T.h[cpu].disabled = 1;
    int64_t r = answer(0, xen_bad, N_XEN_BAD);
    T.h[cpu].unreg_failed = r != 0;
    if (r == 0)
        T.h[cpu].reg = 0;
    return r;
}

static int64_t xen_register(uint32_t cpu, struct apf_xen_vcpu_apf *a)
{
    FZ_ASSERT(a->area_gpa == (uint64_t)(uintptr_t)area(cpu), "registered another area");
    FZ_ASSERT(a->ring_gpa == (uint64_t)(uintptr_t)ring(cpu), "registered another ring");
    FZ_ASSERT(a->version == APF_PROTO_VERSION);
    FZ_ASSERT(a->flags == (T.send_always ? APF_XEN_APF_SEND_ALWAYS : 0u), "flags %#x", a->flags);
    FZ_ASSERT(a->ring_entries == T.xen.ring_entries);
    if (T.h[cpu].reg) { /* Xen refuses a second registration */
        want(-(int)APF_XEN_EBUSY);
        return -(int64_t)APF_XEN_EBUSY;
    }
    int64_t r = answer(0, xen_bad, N_XEN_BAD);
    if (r != 0) {
        want(xen_err(r));
        return r;
    }
    T.h[cpu].reg = 1;
    host_ring_start(cpu, a->ring_entries);
    /* OUT fields, malformed now and then: the guest must refuse them and unregister. */
    uint8_t b = fz_u8(G.f);
    a->version = APF_PROTO_VERSION;
    a->slots = 1u + (b & 63u);
    if (b >= 0xf0) {
        switch (b & 7) {
        case 0: a->version = APF_PROTO_VERSION_PACK(2, 0, 0); break;
        case 1: a->version = 0x01000000u | APF_PROTO_VERSION; break;
        case 2: a->slots = 0; break;
        case 3: a->slots = 4097; break;
        case 4: a->ring_entries ^= 1u << (b >> 3 & 7); break;
        case 5: a->slots = 4096; return 0; /* the largest limit: well-formed */
        default: a->version = (uint32_t)fz_u32(G.f); break;
        }
        uint32_t v = a->version;
        if ((v >> 16) != APF_PROTO_VERSION_MAJOR || v > 0xffffffu || a->slots == 0 ||
            a->slots > 4096 || a->ring_entries != T.xen.ring_entries)
            want(APF_EPROTO);
    }
    return 0;
}

static int64_t x_hypercall(void *ctx, uint32_t cpu, uint32_t nr, const uint64_t args[5])
{
    (void)ctx;
    FZ_ASSERT(T.io_ok, "hypercall %u outside init, online and offline", nr);
    FZ_ASSERT(cpu < N_CPUS);
    void *arg = (void *)(uintptr_t)args[1];
    switch (nr) {
    case APF_XEN_HC_XEN_VERSION: {
        FZ_ASSERT(args[0] == APF_XEN_XENVER_GET_FEATURES);
        struct apf_xen_feature_info *fi = arg;
        FZ_ASSERT(fi->submap_idx == 0);
        uint8_t b = fz_u8(G.f);
        fi->submap = (1u << APF_XEN_FEAT_APF) | (b & 0x0fu);
        if (b < 0xf0)
            return 0;
        if (b & 1) {
            fi->submap &= ~(1u << APF_XEN_FEAT_APF);
            T.avail_want = APF_EOPNOTSUPP;
            return 0;
        }
        T.avail_want = APF_ENODEV;
        return b & 2 ? -(int64_t)APF_XEN_ENOSYS : 1;
    }
    case APF_XEN_HC_HVM_OP: {
        FZ_ASSERT(args[0] == APF_XEN_HVMOP_SET_EVTCHN_UPCALL_VECTOR);
        const struct apf_xen_upcall_vector *u = arg;
        FZ_ASSERT(u->vcpu == cpu && u->vector == apf_guest_vector(G.g), "upcall %u %u", u->vcpu,
                  u->vector);
        int64_t r = answer(0, xen_bad, N_XEN_BAD);
        want(xen_err(r));
        return r;
    }
    case APF_XEN_HC_VCPU_OP: {
        FZ_ASSERT(args[0] == APF_XEN_VCPUOP_REGISTER_APF && args[1] == cpu);
        struct apf_xen_vcpu_apf *a = (void *)(uintptr_t)args[2];
        if (a->area_gpa == APF_XEN_UNREGISTER) {
            FZ_ASSERT(a == &T.xen.unreg, "unregistered with another argument");
            return xen_unregister(cpu);
        }
        return xen_register(cpu, a);
    }
    case APF_XEN_HC_EVENT_CHANNEL_OP: {
        FZ_ASSERT(args[0] == APF_XEN_EVTCHNOP_BIND_VIRQ);
        struct apf_xen_evtchn_bind_virq *b = arg;
        FZ_ASSERT(b->virq == APF_XEN_VIRQ_APF && b->vcpu == cpu);
        if (T.h[cpu].bound) /* bound by an earlier enable (a disable keeps it): -EEXIST */
            return APF_EEXIST;
        int64_t r = answer(0, xen_bad, N_XEN_BAD);
        if (r == 0) {
            T.h[cpu].bound = 1;
            b->port = 1 + cpu;
        } else {
            want(xen_err(r));
        }
        return r;
    }
    default:
        FZ_ASSERT(0, "unexpected hypercall %u", nr);
        return -(int64_t)APF_XEN_ENOSYS;
    }
}

static const struct apf_xen_arch_ops x_arch = {x_hypercall};

/* ---- apf-mmio: the register window ---- */

static const int64_t status_bad[] = {APF_MMIO_STATUS_INVALID, APF_MMIO_STATUS_NOT_RAM, 3,
                                     0xffffffffu, 0x80000000u};

static int status_err(uint32_t s)
{
    return s == APF_MMIO_STATUS_OK ? 0
           : s == APF_MMIO_STATUS_INVALID ? APF_EINVAL
           : s == APF_MMIO_STATUS_NOT_RAM ? APF_EFAULT
                                          : APF_EPROTO;
}

static uint32_t m_read32(void *ctx, uint32_t cpu, uint32_t off)
{
    (void)ctx;
    FZ_ASSERT(T.io_ok, "register %#x read outside init, online and offline", off);
    FZ_ASSERT(cpu < N_CPUS && (off & 3) == 0 && off < APF_MMIO_WINDOW_SIZE, "read %#x", off);
    if (off == APF_MMIO_REG_STATUS)
        return T.h[cpu].status;
    return off <= APF_MMIO_REG_NP_KIND ? T.mmio_reg[off / 4] : 0;
}

static void m_write32(void *ctx, uint32_t cpu, uint32_t off, uint32_t v)
{
    (void)ctx;
    FZ_ASSERT(T.io_ok, "register %#x written outside init, online and offline", off);
    FZ_ASSERT(cpu < N_CPUS && (off & 3) == 0 && off >= APF_MMIO_REG_AREA_LO &&
                  off <= APF_MMIO_REG_CONTROL,
              "write %#x", off);
    struct hcpu *h = &T.h[cpu];
    if (off != APF_MMIO_REG_CONTROL) {
        h->stage[(off - APF_MMIO_REG_AREA_LO) / 4] = v;
        return;
    }
    h->status = (uint32_t)answer(APF_MMIO_STATUS_OK, status_bad, 5);
    if (v == 0) { /* off */
        h->disabled = 1;
        h->unreg_failed = h->status != APF_MMIO_STATUS_OK;
        if (!h->unreg_failed)
            h->reg = 0;
        return;
    }
    uint64_t a = (uint64_t)h->stage[1] << 32 | h->stage[0];
    uint64_t rg = (uint64_t)h->stage[3] << 32 | h->stage[2];
    uint32_t entries = T.mmio.ring_entries;
    FZ_ASSERT(a == (uint64_t)(uintptr_t)area(cpu), "staged another area");
    FZ_ASSERT((rg & ~APF_RING_LOG2_MASK) == (uint64_t)(uintptr_t)ring(cpu) &&
                  (1u << (rg & APF_RING_LOG2_MASK)) == entries,
              "staged ring %#llx", (unsigned long long)rg);
    FZ_ASSERT(v == (APF_EN_ENABLED | (T.send_always ? APF_EN_SEND_ALWAYS : 0u)), "CONTROL %#x", v);
    want(status_err(h->status));
    if (h->status == APF_MMIO_STATUS_OK) {
        h->reg = 1;
        host_ring_start(cpu, entries);
    }
}

static const struct apf_mmio_io_ops m_io = {m_read32, m_write32};

/* The identification registers: well-formed (one of the three kinds), or any values. */
static void mmio_device(void)
{
    uint8_t p = fz_u8(G.f);
    uint32_t *r = T.mmio_reg;
    r[0] = APF_MMIO_MAGIC;
    r[1] = APF_PROTO_VERSION;
    r[2] = APF_FEATURE_RING;
    r[3] = 64;
    r[4] = 1u + fz_u8(G.f) * 4u; /* 1..1021 */
    r[5] = APF_MMIO_NP_X86_PF + p % 3u;
    if (p >= 0xc0) {
        static const uint64_t sp[] = {0, 1, 2, 3, 4, 0xffffffffu, 1023, 1024, 4096, 4097,
                                      APF_MMIO_MAGIC, APF_PROTO_VERSION, 0x10000, 0x20000};
        r[p % 6u] = (uint32_t)fz_val(G.f, sp, sizeof(sp) / sizeof(sp[0]));
    }
    uint32_t v = r[1];
    int ok_v = (v >> 16) == APF_PROTO_VERSION_MAJOR;
    if (r[0] != APF_MMIO_MAGIC)
        T.avail_want = APF_ENODEV;
    else if (ok_v && (r[2] & APF_FEATURE_RING) && r[3] >= 1 && r[3] <= 4096 && r[4] >= 1 &&
             r[4] <= APF_MMIO_IRQ_MAX && r[5] >= 1 && r[5] <= 3)
        T.avail_want = 1;
    else
        T.avail_want = 2; /* refused: APF_EPROTO or APF_EOPNOTSUPP */
}

/* ---- s390: DIAGNOSE X'258' ---- */

static int d_diag258(void *ctx, uint32_t cpu, uint64_t block)
{
    (void)ctx;
    FZ_ASSERT(T.io_ok, "DIAGNOSE X'258' outside init, online and offline");
    FZ_ASSERT(cpu < N_CPUS && block % APF_S390_REFBK_ALIGN == 0);
    struct hcpu *h = &T.h[cpu];
    struct apf_s390_refbk b;
    apf_s390_refbk_decode((const uint8_t *)(uintptr_t)block, &b);
    FZ_ASSERT(b.code == APF_S390_DIAG_CODE && b.dwords == APF_S390_REFBK_DWORDS &&
              b.version == APF_S390_REFBK_VERSION);
    static const int64_t bad[] = {2, 12, APF_EINVAL, APF_EFAULT, 4, 8};
    if (block == T.s390.cancel_pa) {
        FZ_ASSERT(b.subcode == APF_S390_SUB_CANCEL && b.token_addr == 0 && b.select == 0 &&
                  b.compare == 0 && b.reserved == 0);
        h->disabled = 1;
        int rc = (int)answer(h->reg ? APF_S390_RC_OK : APF_S390_RC_NOT_ESTABLISHED, bad, 4);
        h->unreg_failed = rc != (int)APF_S390_RC_OK && rc != (int)APF_S390_RC_NOT_ESTABLISHED;
        if (!h->unreg_failed)
            h->reg = 0;
        return rc;
    }
    FZ_ASSERT(block >= (uintptr_t)G.mem && block + APF_S390_REFBK_SIZE <= (uintptr_t)G.mem + sizeof(G.mem),
              "INIT block outside the runtime's memory");
    uint64_t mask = T.send_always ? 0 : APF_S390_PSW_MASK_PSTATE;
    FZ_ASSERT(b.subcode == APF_S390_SUB_INIT && b.token_addr == T.s390.token_addr &&
              b.select == mask && b.compare == mask && b.reserved == APF_S390_REFBK_RESERVED);
    if (h->reg) { /* established already: Ry 8, nothing changes */
        want(APF_EBUSY);
        return APF_S390_RC_ALREADY;
    }
    int rc = (int)answer(APF_S390_RC_OK, bad, 6);
    want(rc == 0 ? 0 : rc < 0 ? rc : rc == (int)APF_S390_RC_ALREADY ? APF_EBUSY : APF_EPROTO);
    if (rc == 0)
        h->reg = 1;
    return rc;
}

static const struct apf_s390_arch_ops d_arch = {d_diag258};

/* An external interrupt on cpu: 1 exactly for pfault's (code 0x2603, subcode 0x06xx). */
static int s390_ext(uint32_t cpu, uint32_t code, uint32_t sub, uint64_t param)
{
    int ours = code == APF_S390_EXT_CODE && (sub & APF_S390_EXT_SUB_MASK) == APF_S390_EXT_SUB_INIT;
    int r = apf_guest_s390_external(G.g, cpu, code, sub, param);
    FZ_ASSERT(r == ours, "external %#x/%#x returned %d", code, sub, r);
    return r;
}

/* A parameter carrying key t: the high word is the kernel's (bit 63 set, as Linux's). */
static uint64_t s390_param(uint32_t t)
{
    return (uint64_t)(0x80000000u | fz_u8(G.f)) << 32 | t;
}

/* ---- the ready ring, as the host fills it (xen, mmio) ---- */

/* Publish one entry if the ring has room (the host's own size and index; `cons` is read
 * from the page, as a host does). 1 if published. */
static int host_publish(uint32_t cpu, uint32_t t)
{
    struct hcpu *h = &T.h[cpu];
    struct apf_ring *r = ring(cpu);
    if (!h->reg || h->prod - r->cons >= h->entries)
        return 0;
    r->entries[h->prod & (h->entries - 1)] = t;
    h->prod++;
    __atomic_store_n(&r->prod, h->prod, __ATOMIC_RELEASE);
    if (T.n_batch < MAX_BATCH)
        T.batch[T.n_batch++] = t;
    return 1;
}

/* After an interrupt on an enabled CPU whose channel the host did not scribble on: drained,
 * re-armed, and the host's words untouched. */
static void check_ring(uint32_t cpu)
{
    struct apf_ring *r = ring(cpu);
    const struct hcpu *h = &T.h[cpu];
    if (!h->reg || G.chaos[cpu] || !enabled(cpu))
        return;
    FZ_ASSERT(r->prod == h->prod && r->size == h->entries, "the guest wrote the host's words");
    FZ_ASSERT(r->cons == h->prod, "interrupt left entries %u..%u in the ring", r->cons, h->prod);
    FZ_ASSERT(r->event == r->cons + 1,
              "ring not re-armed after the drain (event %u, cons %u): the next page ready "
              "would not be notified",
              r->event, r->cons);
}

/* Every token published in this interrupt, besides the one the core checks: its sleepers
 * (of this CPU) are awake and its windows must not sleep. */
static void check_batch(uint32_t cpu, uint32_t t)
{
    if (G.chaos[cpu])
        return;
    for (int k = 0; k < T.n_batch; k++) {
        uint32_t b = T.batch[k];
        if (b == t)
            continue;
        if (b == APF_TOKEN_WAKE_ALL)
            G.wake_alls[cpu]++;
        for (int i = 0; i < G.n_win; i++)
            if (G.win[i].cpu == cpu && G.win[i].token == b)
                G.win[i].ready_seen = 1;
        for (int i = 0; i < G.n_sl; i++)
            if (G.sl[i].w && G.sl[i].cpu == cpu &&
                (b == APF_TOKEN_WAKE_ALL || apf_guest_waiter_token(G.sl[i].w) == b))
                FZ_ASSERT(apf_guest_waiter_woken(G.sl[i].w),
                          "page ready %#x (in a batch) did not wake its sleeper", b);
    }
}

/* The interrupt on cpu, with the delivery recorded for gt_woken. */
static int take_interrupt(uint32_t cpu)
{
    struct deliv saved = T.d;
    T.d.kind = D_READY;
    T.d.cpu = cpu;
    int r = apf_guest_on_interrupt(G.g, cpu);
    T.d = saved;
    FZ_ASSERT(r >= 0, "on_interrupt %d", r);
    check_ring(cpu);
    return r;
}

/* ---- the transport hooks (guest_env.h) ---- */

static void gt_np_tokens(uint32_t cpu, uint32_t t)
{
    if (T.tr != T_S390)
        return;
    /* s390 keys are the kernel's and completions float: a key another CPU waits for is
     * the host lying, and the lost-wake-up checks stop on every CPU. */
    for (int i = 0; i < G.n_win; i++)
        if (G.win[i].token == t)
            G.chaos[cpu] = 1;
    for (int i = 0; i < G.n_sl; i++)
        if (G.sl[i].w && apf_guest_waiter_token(G.sl[i].w) == t)
            G.chaos[cpu] = 1;
    if (G.chaos[cpu])
        for (uint32_t c = 0; c < N_CPUS; c++)
            G.chaos[c] = 1;
}

/* xen / mmio: reason and token in the area, CR2 = the token; now and then malformed. */
static void gt_host_np(uint32_t cpu, uint32_t t)
{
    T.np_hint = t;
    T.np_bad = !apf_token_is_fault(t);
    T.np_ret = 1;
    if (T.tr == T_S390)
        return;
    struct apf_shared_area *a = area(cpu);
    uint32_t reason = APF_REASON_NOT_PRESENT, tok = t;
    int x86 = T.tr == T_XEN || T.mmio.np_kind == APF_MMIO_NP_X86_PF;
    uint8_t m = fz_u8(G.f);
    if (m >= 0xe0) {
        switch (m & 3) {
        case 0: /* an unknown reason */
            reason = m & 4 ? APF_REASON_READY : fz_u32(G.f);
            if (reason == APF_REASON_NONE)
                T.np_ret = 0;
            else if (reason != APF_REASON_NOT_PRESENT)
                T.np_bad = 1;
            break;
        case 1: /* CR2 and the area disagree (x86: refused; elsewhere CR2 is not used) */
            T.np_hint = t ^ (1u + fz_u8(G.f));
            T.np_bad |= x86;
            break;
        case 2: /* the exception without the area: a genuine fault */
            reason = APF_REASON_NONE;
            T.np_ret = 0;
            break;
        default: /* an invalid token in the area */
            tok = m & 4 ? APF_TOKEN_WAKE_ALL : APF_TOKEN_INVALID;
            T.np_bad = 1;
            break;
        }
    }
    a->flags = reason;
    a->token = tok;
}

static void gt_take_np(uint32_t cpu, uint32_t t)
{
    int en = enabled(cpu);
    T.task_token[G.cur_task % MAX_TASKS] = t;
    FZ_ASSERT(G.cur_task < MAX_TASKS);
    int *bad = &T.win_bad[G.n_win - 1];
    if (T.tr == T_S390) {
        uint8_t m = fz_u8(G.f);
        uint32_t code = APF_S390_EXT_CODE, sub = APF_S390_EXT_SUB_INIT | (m & 0x7fu);
        if (m >= 0xf0) { /* not pfault's: another service signal, or another code */
            if (m & 1)
                sub = (uint32_t)fz_u8(G.f) << 8 | (m & 0x7fu);
            else
                code = fz_u16(G.f);
        }
        *bad = T.np_bad || !en || code != APF_S390_EXT_CODE ||
               (sub & APF_S390_EXT_SUB_MASK) != APF_S390_EXT_SUB_INIT;
        s390_ext(cpu, code, sub, s390_param(t)); /* (checks what it returns) */
        return;
    }
    *bad = T.np_bad || !en || T.np_ret == 0;
    int ret = en ? T.np_ret : 0; /* (nested events post their own) */
    int r = apf_guest_on_exception(G.g, cpu, T.np_hint);
    FZ_ASSERT(r == ret, "on_exception %d (enabled %d)", r, en);
}

static void gt_waiting(void)
{
    if (G.n_win == 0) { /* a fault the harness did not post: the host wrote the area */
        FZ_ASSERT(G.chaos[G.cur_cpu], "a task waits without a not present");
        return;
    }
    FZ_ASSERT(!T.win_bad[G.n_win - 1], "a malformed not present (token %#x) made the task wait",
              G.win[G.n_win - 1].token);
}

static int gt_ready(uint32_t cpu, uint32_t t)
{
    uint8_t b = fz_u8(G.f);
    if (T.tr == T_S390) {
        /* A completion, floating: taken by whichever CPU the input says. */
        uint32_t d = b & 0x80 ? (cpu + 1) % N_CPUS : cpu;
        struct deliv saved = T.d;
        T.d.kind = D_READY;
        T.d.cpu = d;
        T.d.token = t;
        s390_ext(d, APF_S390_EXT_CODE, APF_S390_EXT_SUB_DONE | (b & 0x7fu), s390_param(t));
        T.d = saved;
        return apf_token_is_fault(t);
    }
    T.n_batch = 0;
    int sent = 0;
    if (enabled(cpu) && T.h[cpu].reg) {
        uint32_t old = T.h[cpu].prod;
        sent = host_publish(cpu, t);
        for (int k = b >> 5 & 3; k > 0; k--) /* more in the same batch */
            host_publish(cpu, pick_token(cpu));
        /* The host honours the hold-off: it notifies only if the guest asked for it. */
        if (!apf_ring_need_notify(old, T.h[cpu].prod, ring(cpu)->event) && !(b & 1))
            return sent;
    } else if (!(b & 1)) {
        return 0;
    }
    take_interrupt(cpu);
    check_batch(cpu, t);
    return sent;
}

static int gt_ready_at_once(uint32_t cpu)
{
    (void)cpu;
    return 1; /* xen / mmio: nothing stops a drain but what makes the CPU chaotic */
}

static int gt_same_tokens(uint32_t a, uint32_t b)
{
    return a == b || T.tr == T_S390;
}

/* The other CPU runs 1-4 events (inside a waiter's window or sleep, too). */
static void remote_turn(uint32_t cpu, int n)
{
    uintptr_t task = G.cur_task;
    for (; n > 0 && G.depth < MAX_DEPTH && G.f->n > 0 && G.steps < 2000; n--) {
        G.cur_cpu = (cpu + 1) % N_CPUS;
        G.depth++;
        run_event();
        G.depth--;
    }
    G.cur_cpu = cpu;
    G.cur_task = task;
}

/* s390: a completion for the key of a task still on its way to the sleep table (any CPU's),
 * taken by either CPU: that task must not sleep; nobody else may wake. */
static void s390_window_completion(uint32_t cpu, uint8_t k)
{
    if (G.n_win == 0)
        return;
    uint32_t t = G.win[fz_u8(G.f) % (uint32_t)G.n_win].token;
    uint32_t d = k & 0x80 ? (cpu + 1) % N_CPUS : cpu;
    struct deliv saved = T.d;
    T.d.kind = D_READY;
    T.d.cpu = d;
    T.d.token = t;
    s390_ext(d, APF_S390_EXT_CODE, APF_S390_EXT_SUB_DONE, s390_param(t));
    T.d = saved;
    if (!apf_token_is_fault(t) || G.chaos[cpu])
        return;
    for (int i = 0; i < G.n_win; i++)
        if (G.win[i].token == t)
            G.win[i].ready_seen = 1;
    for (int i = 0; i < G.n_sl; i++)
        if (G.sl[i].w && apf_guest_waiter_token(G.sl[i].w) == t)
            FZ_ASSERT(apf_guest_waiter_woken(G.sl[i].w), "completion %#x did not wake its sleeper", t);
}

static void gt_host_chaos(uint32_t cpu)
{
    uint8_t k = fz_u8(G.f);
    if ((k & 3) == 0) {
        remote_turn(cpu, 1 + (k >> 2 & 3));
        return;
    }
    if (T.tr == T_S390) {
        uint32_t d = k & 0x80 ? (cpu + 1) % N_CPUS : cpu;
        if ((k & 3) == 1) {
            /* A completion with an invalid key: refused, wakes nobody. */
            uint32_t key = k & 4 ? APF_TOKEN_WAKE_ALL : APF_TOKEN_INVALID;
            struct deliv saved = T.d;
            T.d.kind = D_READY;
            T.d.cpu = d;
            T.d.token = key;
            s390_ext(d, APF_S390_EXT_CODE, APF_S390_EXT_SUB_DONE, s390_param(key));
            T.d = saved;
            return;
        }
        if ((k & 3) == 3) {
            s390_window_completion(cpu, k);
            return;
        }
        /* Not pfault's (0x2603 for another service signal, or another code): returns 0,
         * changes nothing. */
        struct apf_guest_stats before, after;
        apf_guest_stats(G.g, d, &before);
        uint32_t code = fz_u16(G.f), sub = fz_u16(G.f);
        if (!(k & 4))
            code = APF_S390_EXT_CODE;
        if ((sub & APF_S390_EXT_SUB_MASK) == APF_S390_EXT_SUB_INIT)
            sub ^= 0x1000;
        struct deliv saved = T.d;
        T.d.kind = D_NONE;
        s390_ext(d, code, sub, fz_u64(G.f));
        T.d = saved;
        apf_guest_stats(G.g, d, &after);
        FZ_ASSERT(memcmp(&before, &after, sizeof(before)) == 0,
                  "an interrupt that is not pfault's changed the statistics");
        return;
    }
    /* xen / mmio: a raw word anywhere in the area or the ring page. */
    G.chaos[cpu] = 1;
    uint32_t val = (uint32_t)fz_val(
        G.f, (const uint64_t[]){0, 1, 2, 3, 0xffffffffu, 0x80000000u, 512, 513}, 8);
    uint16_t where = fz_u16(G.f);
    uint32_t *w = (uint32_t *)(k & 4 ? (void *)ring(cpu) : (void *)area(cpu));
    w[where % (k & 4 ? APF_RING_PAGE_SIZE / 4 : APF_AREA_SIZE / 4)] = val;
}

static void gt_unrelated(uint32_t cpu)
{
    uint8_t b = fz_u8(G.f);
    if (b & 1) { /* an interrupt with nothing new */
        int r;
        struct deliv saved = T.d;
        if (T.tr == T_S390) {
            T.d.kind = D_NONE;
            r = apf_guest_on_interrupt(G.g, cpu);
            FZ_ASSERT(r == 0, "an empty mailbox woke %d", r);
        } else {
            T.d.kind = G.chaos[cpu] ? D_READY : D_NONE;
            T.d.cpu = cpu;
            r = take_interrupt(cpu);
            FZ_ASSERT(r == 0 || G.chaos[cpu], "an interrupt with nothing new woke %d", r);
        }
        T.d = saved;
        return;
    }
    /* A fault of the kernel's own (no reason in the area, no pfault interrupt): genuine. */
    int genuine = T.tr == T_S390 || area(cpu)->flags == APF_REASON_NONE;
    int r = apf_guest_on_exception(G.g, cpu, fz_u32(G.f));
    FZ_ASSERT(r == 0 || r == 1);
    if (genuine)
        FZ_ASSERT(r == 0, "a genuine fault taken as APF");
}

static int gt_online(uint32_t cpu)
{
    int en = enabled(cpu);
    T.online_want = 0;
    T.io_ok = 1;
    int r = apf_guest_cpu_online(G.g, cpu);
    T.io_ok = 0;
    int w = apf_guest_available(G.g) != 1 ? APF_EOPNOTSUPP : en ? APF_EALREADY : T.online_want;
    FZ_ASSERT(r == w, "online %d, the host's answers say %d", r, w);
    if (r == 0)
        FZ_ASSERT(T.h[cpu].reg, "online without the host's registration");
    else if (!T.h[cpu].unreg_failed && !en)
        FZ_ASSERT(!T.h[cpu].reg, "a refused online (%d) left APF on in the host", r);
    return r;
}

static int gt_offline(uint32_t cpu)
{
    int en = enabled(cpu);
    struct deliv saved = T.d;
    T.d.kind = D_OFFLINE;
    T.d.cpu = cpu;
    T.h[cpu].disabled = 0;
    T.io_ok = 1;
    int r = apf_guest_cpu_offline(G.g, cpu);
    T.io_ok = 0;
    T.d = saved;
    FZ_ASSERT(en || r == 0, "offline of an offline CPU returned %d", r);
    FZ_ASSERT(!en || T.h[cpu].disabled, "offline did not turn APF off in the host");
    return r;
}

static void gt_woken(uintptr_t task, uint32_t cpu, int halted)
{
    (void)halted;
    uint32_t tok = T.task_token[task % MAX_TASKS];
    switch (T.d.kind) {
    case D_OFFLINE:
        FZ_ASSERT(cpu == T.d.cpu, "offline of CPU %u woke a waiter of CPU %u", T.d.cpu, cpu);
        FZ_ASSERT(T.h[cpu].disabled, "a waiter woken before APF was off in the host");
        break;
    case D_READY:
        if (T.tr == T_S390) { /* (keys are exact: the host writes no memory here) */
            FZ_ASSERT(apf_token_is_fault(T.d.token) && tok == T.d.token,
                      "completion %#x woke a waiter of %#x", T.d.token, tok);
            break;
        }
        /* A waiter of a CPU the host wrote on may wait for anything. */
        if (!G.chaos[T.d.cpu] && !G.chaos[cpu]) {
            /* Wake before release: the entry is still the one at `cons`. */
            const struct apf_ring *r = ring(T.d.cpu);
            uint32_t e = r->entries[r->cons & (T.h[T.d.cpu].entries - 1)];
            FZ_ASSERT(e == tok || (e == APF_TOKEN_WAKE_ALL && cpu == T.d.cpu),
                      "a waiter of %#x woken with %#x at cons %u: entry released before its "
                      "wake",
                      tok, e, r->cons);
            /* Now and then the host publishes more while the guest drains. */
            if (G.f->n > 0 && (fz_u8(G.f) & 7) == 7)
                host_publish(T.d.cpu, pick_token(T.d.cpu));
        }
        break;
    default:
        FZ_ASSERT(0, "task %lu (token %#x) woken outside a page ready or an offline",
                  (unsigned long)task, tok);
    }
}

/* ---- the configuration ---- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = {data, size};
    ge_begin(&f);
    memset(T.h, 0, sizeof(T.h));
    T.d.kind = D_NONE;
    T.n_batch = 0;
    T.tr = fz_u8(&f) % 3;
    G.n_placeholders = fz_u8(&f) % 9;
    uint8_t c0 = fz_u8(&f), c1 = fz_u8(&f);
    uint32_t n_buckets = 1u << (fz_u8(&f) % 4);
    uint8_t fl = fz_u8(&f);
    T.send_always = fl & 1;
    T.avail_want = 1;
    uint32_t vector = 0;
    const struct apf_guest_backend_ops *be;
    void *bctx;
    uint32_t entries = (c0 & 0xf0) == 0xf0 ? 3u : 2u << (c0 % 9); /* 2..512, or invalid */
    if (T.tr == T_XEN) {
        apf_guest_xen_init(&T.xen, &x_arch, NULL);
        T.xen.ring_entries = entries;
        vector = c1 < 0xf8 ? APF_XEN_UPCALL_VECTOR_MIN + c1 % 0xf0u : c1 & 0xfu;
        if (entries == 3 || vector < APF_XEN_UPCALL_VECTOR_MIN)
            T.avail_want = APF_EINVAL;
        be = &apf_guest_backend_xen;
        bctx = &T.xen;
    } else if (T.tr == T_MMIO) {
        apf_guest_mmio_init(&T.mmio, &m_io, NULL);
        T.mmio.ring_entries = entries;
        mmio_device();
        if (entries == 3)
            T.avail_want = APF_EINVAL;
        be = &apf_guest_backend_mmio;
        bctx = &T.mmio;
    } else {
        /* The token doubleword (8-aligned; misaligned is the kernel's mistake: refused). */
        apf_guest_s390_init(&T.s390, &d_arch, NULL,
                            (uint64_t)(uintptr_t)T.tokdw + ((c0 & 0xf0) == 0xf0 ? 4 : 0));
        T.s390.cancel_pa = (uint64_t)(uintptr_t)T.s390.cancel;
        if ((c0 & 0xf0) == 0xf0)
            T.avail_want = APF_EINVAL;
        be = &apf_guest_backend_s390;
        bctx = &T.s390;
    }
    uint32_t flags = T.send_always ? APF_GUEST_SEND_ALWAYS : 0;
    if ((fl & 0x0e) == 0x0e) {
        flags |= APF_GUEST_NO_APF;
        T.avail_want = APF_ECANCELED;
    }
    struct apf_guest_config cfg = {
        .n_buckets = n_buckets,
        .n_placeholders = G.n_placeholders,
        .vector = vector,
        .flags = flags,
        .backend = be,
        .backend_ctx = bctx,
    };
    T.io_ok = 1;
    ge_init(&cfg);
    T.io_ok = 0;
    int av = apf_guest_available(G.g);
    if (T.avail_want == 2)
        FZ_ASSERT(av == APF_EPROTO || av == APF_EOPNOTSUPP, "available %d", av);
    else
        FZ_ASSERT(av == T.avail_want, "available %d, the host's answers say %d", av,
                  T.avail_want);
    for (uint32_t c = 0; c < N_CPUS; c++)
        gt_online(c);
    ge_run();
    return 0;
}
