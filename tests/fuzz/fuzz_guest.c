/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the guest runtime's entry points with the shared area and the ready ring
 * fully attacker-controlled (the host is the attacker). Three channels: KVM x86 (area +
 * CR2), arm64 slot (area + IRQ_ACK), arm64 ready ring; real backends over fake arch hooks
 * that answer as a host would. The kernel, the event loop and the common invariants are
 * guest_env.h's (shared with fuzz_guest_transports.c); this file is the KVM channels.
 * Invariants here: release before ACK (x86: token cleared, arm64: reason and token cleared
 * when the ACK is sent); a genuine #PF (x86: no reason in the area) is not taken as APF.
 * The input's format is frozen (the checked-in corpus and long runs depend on it): byte 0
 * the channel, then the pool, [ring size], buckets, flags, then events (guest_env.h).
 */
#include "guest_env.h"

enum { M_X86, M_ARM_SLOT, M_ARM_RING };

static struct {
    int mode;
    struct apf_guest_kvm_x86 kx;
    struct apf_guest_kvm_arm64 ka;
} M;

/* ---- fake arch hooks: the host's answers ---- */

static void x_cpuid(void *ctx, uint32_t cpu, uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    (void)ctx, (void)cpu, (void)sub;
    r[0] = r[1] = r[2] = r[3] = 0;
    if (leaf == APF_KVM_CPUID_SIGNATURE) {
        r[0] = APF_KVM_CPUID_FEATURES;
        r[1] = APF_KVM_SIGNATURE_EBX;
        r[2] = APF_KVM_SIGNATURE_ECX;
        r[3] = APF_KVM_SIGNATURE_EDX;
    } else if (leaf == APF_KVM_CPUID_FEATURES) {
        r[0] = (1u << APF_KVM_FEATURE_ASYNC_PF) | (1u << APF_KVM_FEATURE_ASYNC_PF_INT);
    }
}

static int x_wrmsr(void *ctx, uint32_t cpu, uint32_t msr, uint64_t v)
{
    (void)ctx, (void)v;
    FZ_ASSERT(cpu < N_CPUS);
    if (msr == APF_KVM_MSR_ASYNC_PF_ACK)
        FZ_ASSERT(area(cpu)->token == 0, "ACK sent before the token was released");
    return 0;
}

static int x_rdmsr(void *ctx, uint32_t cpu, uint32_t msr, uint64_t *v)
{
    (void)ctx, (void)cpu, (void)msr;
    *v = 0;
    return 0;
}

static const struct apf_x86_arch_ops x_arch = {x_cpuid, x_wrmsr, x_rdmsr};

static void a_smccc(void *ctx, uint32_t cpu, const uint64_t in[4], uint64_t out[4])
{
    (void)ctx;
    out[0] = out[1] = out[2] = out[3] = 0;
    if ((uint32_t)in[0] == APF_ARM64_FEATURES_FUNC_ID) {
        out[0] = 1ull << APF_ARM64_FEATURE_BIT;
        return;
    }
    switch (in[1]) {
    case APF_ARM64_FUNC_VERSION:
        out[0] = APF_PROTO_VERSION;
        break;
    case APF_ARM64_FUNC_SLOTS:
        out[0] = 64;
        break;
    case APF_ARM64_FUNC_SDEI:
        out[0] = APF_ARM64_SDEI_EVENT_DEFAULT;
        break;
    case APF_ARM64_FUNC_IRQ:
        out[0] = 20;
        break;
    case APF_ARM64_FUNC_FEATURES:
        out[0] = APF_FEATURE_RING;
        break;
    case APF_ARM64_FUNC_ENABLE:
    case APF_ARM64_FUNC_RING:
        break;
    case APF_ARM64_FUNC_IRQ_ACK:
        FZ_ASSERT(cpu < N_CPUS);
        FZ_ASSERT(area(cpu)->flags == 0 && area(cpu)->token == 0,
                  "IRQ_ACK sent before the slot was released");
        break;
    default:
        out[0] = (uint64_t)(int64_t)APF_SMCCC_NOT_SUPPORTED;
    }
}

static const struct apf_arm64_arch_ops a_arch = {a_smccc};

/* ---- the transport hooks (guest_env.h) ---- */

/* "page ready" for token t, well-formed (into a free slot / a ring with room). 1 if sent. */
static int host_ready(uint32_t cpu, uint32_t t)
{
    if (M.mode == M_X86) {
        if (area(cpu)->token != 0)
            return 0;
        area(cpu)->token = t;
        return 1;
    }
    struct apf_ring *r = ring(cpu);
    if (r) {
        if (r->prod - r->cons >= r->size || r->size == 0 || (r->size & (r->size - 1)) ||
            r->size > APF_RING_MAX_ENTRIES)
            return 0;
        r->entries[r->prod & (r->size - 1)] = t;
        __atomic_store_n(&r->prod, r->prod + 1, __ATOMIC_RELEASE);
        return 1;
    }
    if (area(cpu)->flags != 0 || area(cpu)->token != 0)
        return 0;
    area(cpu)->flags = APF_REASON_READY;
    area(cpu)->token = t;
    return 1;
}

static void gt_np_tokens(uint32_t cpu, uint32_t t)
{
    (void)cpu, (void)t;
}

static void gt_host_np(uint32_t cpu, uint32_t t)
{
    if (area(cpu)) {
        area(cpu)->flags = APF_REASON_NOT_PRESENT;
        if (M.mode != M_X86)
            area(cpu)->token = t;
    }
}

static void gt_take_np(uint32_t cpu, uint32_t t)
{
    int r = apf_guest_on_exception(G.g, cpu, t);
    FZ_ASSERT(r == 0 || r == 1, "on_exception %d", r);
}

static int gt_ready(uint32_t cpu, uint32_t t)
{
    struct apf_guest_stats st;
    apf_guest_stats(G.g, cpu, &st);
    int sent = st.enabled && host_ready(cpu, t);
    int r = apf_guest_on_interrupt(G.g, cpu);
    FZ_ASSERT(r >= 0, "on_interrupt %d", r);
    return sent;
}

static int gt_ready_at_once(uint32_t cpu)
{
    return M.mode != M_ARM_RING || ring(cpu) == NULL;
}

static int gt_same_tokens(uint32_t a, uint32_t b)
{
    return a == b;
}

static void gt_host_chaos(uint32_t cpu)
{
    G.chaos[cpu] = 1;
    uint32_t val = (uint32_t)fz_val(
        G.f, (const uint64_t[]){0, 1, 2, 3, 0xffffffffu, 0x80000000u, 512, 513}, 8);
    uint8_t where = fz_u8(G.f);
    struct apf_ring *r = ring(cpu);
    if (r && (where & 1)) {
        uint32_t *w = (uint32_t *)r;
        w[fz_u16(G.f) % (APF_RING_PAGE_SIZE / 4)] = val;
    } else if (area(cpu)) {
        uint32_t *w = (uint32_t *)area(cpu);
        w[(where >> 1) % 16] = val;
    }
}

static void gt_unrelated(uint32_t cpu)
{
    if (fz_u8(G.f) & 1) {
        FZ_ASSERT(apf_guest_on_interrupt(G.g, cpu) >= 0);
    } else {
        int x86_genuine = M.mode == M_X86 && area(cpu) && area(cpu)->flags == 0;
        int r = apf_guest_on_exception(G.g, cpu, fz_u32(G.f));
        FZ_ASSERT(r == 0 || r == 1);
        if (x86_genuine)
            FZ_ASSERT(r == 0, "a genuine #PF taken as APF");
    }
}

static int gt_online(uint32_t cpu)
{
    int r = apf_guest_cpu_online(G.g, cpu);
    FZ_ASSERT(r == 0 || r == APF_EALREADY, "online %d", r);
    return r;
}

static int gt_offline(uint32_t cpu)
{
    return apf_guest_cpu_offline(G.g, cpu);
}

static void gt_woken(uintptr_t task, uint32_t cpu, int halted)
{
    (void)task, (void)cpu, (void)halted;
}

static void gt_waiting(void)
{
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = {data, size};
    ge_begin(&f);
    M.mode = fz_u8(&f) % 3;
    G.n_placeholders = fz_u8(&f) % 9;
    const struct apf_guest_backend_ops *be;
    void *bctx;
    if (M.mode == M_X86) {
        apf_guest_kvm_x86_init(&M.kx, &x_arch, NULL);
        be = &apf_guest_backend_kvm_x86;
        bctx = &M.kx;
    } else {
        apf_guest_kvm_arm64_init(&M.ka, &a_arch, NULL);
        if (M.mode == M_ARM_RING)
            M.ka.ring_entries = 2u << (fz_u8(&f) % 9); /* 2..512 */
        be = &apf_guest_backend_kvm_arm64;
        bctx = &M.ka;
    }
    struct apf_guest_config cfg = {
        .n_cpus = N_CPUS,
        .n_buckets = 1u << (fz_u8(&f) % 4),
        .n_placeholders = G.n_placeholders,
        .vector = 0xec,
        .flags = (fz_u8(&f) & 1) ? APF_GUEST_SEND_ALWAYS : 0,
        .env = &env,
        .backend = be,
        .backend_ctx = bctx,
    };
    ge_init(&cfg);
    FZ_ASSERT(apf_guest_available(G.g) == 1);
    for (uint32_t c = 0; c < N_CPUS; c++)
        FZ_ASSERT(apf_guest_cpu_online(G.g, c) == 0);
    ge_run();
    return 0;
}
