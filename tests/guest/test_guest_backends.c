/* SPDX-License-Identifier: MIT */
/*
 * libapf-guest backends: kvm_x86 and kvm_arm64 over recording arch hooks (exact MSR
 * writes, SMCCC calls, host answers checked, the channel decoded: area and ring), the null
 * backend, and both backends over arch hooks wired to the real host frontends
 * (libapf-host), byte for byte.
 */
#include <string.h>

#include "apf/guest_backend.h"
#include "apf/host_kvm_arm64.h"
#include "apf/host_kvm_x86.h"
#include "apf_check.h"

/* A channel as the runtime would carve it (the area first; room for a ring page). */
static _Alignas(4096) unsigned char chanmem[2 * 4096];
#define CHAN ((void *)chanmem)
#define CHAN_AREA ((struct apf_shared_area *)(void *)chanmem)
#define CHAN_RING ((struct apf_ring *)(void *)(chanmem + 4096))

/* ---- a recording x86 arch ------------------------------------------------------------------ */

struct fx86 {
    uint32_t sig_base;  /* where the KVM signature is, 0 = nowhere */
    uint32_t features;  /* EAX of sig_base + 1 */
    int fail_msr;       /* wrmsr of this MSR returns -EINVAL (#GP) */
    struct {
        uint32_t msr;
        uint64_t value;
        uint32_t cpu;
    } w[16];
    int nw;
};

static void fx_cpuid(void *ctx, uint32_t cpu, uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    struct fx86 *f = ctx;
    (void)cpu, (void)sub;
    memset(r, 0, 16);
    if (leaf == 0x40000000 && f->sig_base != 0x40000000) {
        r[1] = 0x7263694d; /* "Micr" "osof" "t Hv": another hypervisor's leaves first */
        r[2] = 0x666f736f;
        r[3] = 0x76482074;
    } else if (leaf == f->sig_base && f->sig_base) {
        r[0] = f->sig_base + 1;
        r[1] = APF_KVM_SIGNATURE_EBX;
        r[2] = APF_KVM_SIGNATURE_ECX;
        r[3] = APF_KVM_SIGNATURE_EDX;
    } else if (leaf == f->sig_base + 1 && f->sig_base) {
        r[0] = f->features;
    }
}

static int fx_wrmsr(void *ctx, uint32_t cpu, uint32_t msr, uint64_t v)
{
    struct fx86 *f = ctx;
    if (f->nw < 16) {
        f->w[f->nw].msr = msr;
        f->w[f->nw].value = v;
        f->w[f->nw].cpu = cpu;
        f->nw++;
    }
    return (int)msr == f->fail_msr ? APF_EINVAL : 0;
}

static int fx_rdmsr(void *ctx, uint32_t cpu, uint32_t msr, uint64_t *v)
{
    (void)ctx, (void)cpu, (void)msr;
    *v = 0;
    return 0;
}

static const struct apf_x86_arch_ops fx_ops = {fx_cpuid, fx_wrmsr, fx_rdmsr};

#define KVM_APF_FEATURES ((1u << APF_KVM_FEATURE_ASYNC_PF) | (1u << APF_KVM_FEATURE_ASYNC_PF_INT))

START_TEST(test_x86_probe_finds_signature_and_features)
{
    struct fx86 f = {.sig_base = 0x40000000, .features = KVM_APF_FEATURES};
    struct apf_guest_kvm_x86 b;
    apf_guest_kvm_x86_init(&b, &fx_ops, &f);
    struct apf_guest_backend_info info;
    memset(&info, 0xaa, sizeof(info));
    ck_assert_int_eq(apf_guest_backend_kvm_x86.probe(&b, &info), 0);
    ck_assert_uint_eq(b.cpuid_base, 0x40000000);
    ck_assert_uint_eq(info.version, APF_PROTO_VERSION);
    ck_assert_uint_eq(info.slots, 64);
    ck_assert_uint_eq(info.irq, 0);
    ck_assert_uint_eq(apf_guest_backend_kvm_x86.capabilities(&b), APF_BACKEND_CAP_SEND_ALWAYS);
    ck_assert_str_eq(apf_guest_backend_kvm_x86.name, "kvm-x86");
}
END_TEST

START_TEST(test_x86_probe_finds_kvm_behind_another_hypervisor)
{
    struct fx86 f = {.sig_base = 0x40000100, .features = KVM_APF_FEATURES};
    struct apf_guest_kvm_x86 b;
    apf_guest_kvm_x86_init(&b, &fx_ops, &f);
    struct apf_guest_backend_info info;
    ck_assert_int_eq(apf_guest_backend_kvm_x86.probe(&b, &info), 0);
    ck_assert_uint_eq(b.cpuid_base, 0x40000100);
}
END_TEST

START_TEST(test_x86_probe_without_kvm_or_feature_fails)
{
    struct fx86 f = {.sig_base = 0, .features = KVM_APF_FEATURES};
    struct apf_guest_kvm_x86 b;
    struct apf_guest_backend_info info;
    apf_guest_kvm_x86_init(&b, &fx_ops, &f);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.probe(&b, &info), APF_ENODEV);
    f.sig_base = 0x40000000;
    f.features = 1u << APF_KVM_FEATURE_ASYNC_PF; /* no ASYNC_PF_INT: old host */
    ck_assert_int_eq(apf_guest_backend_kvm_x86.probe(&b, &info), APF_EOPNOTSUPP);
    f.features = 1u << APF_KVM_FEATURE_ASYNC_PF_INT;
    ck_assert_int_eq(apf_guest_backend_kvm_x86.probe(&b, &info), APF_EOPNOTSUPP);
}
END_TEST

START_TEST(test_x86_enable_writes_int_then_en)
{
    struct fx86 f = {0};
    struct apf_guest_kvm_x86 b;
    apf_guest_kvm_x86_init(&b, &fx_ops, &f);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.enable(&b, 3, CHAN, 0x12340, 0xec, 0), 0);
    ck_assert_int_eq(f.nw, 2);
    ck_assert_uint_eq(f.w[0].msr, APF_KVM_MSR_ASYNC_PF_INT);
    ck_assert_uint_eq(f.w[0].value, 0xec);
    ck_assert_uint_eq(f.w[0].cpu, 3);
    ck_assert_uint_eq(f.w[1].msr, APF_KVM_MSR_ASYNC_PF_EN);
    ck_assert_uint_eq(f.w[1].value, 0x12340 | APF_EN_ENABLED | APF_EN_DELIVERY_AS_INT);
    f.nw = 0;
    ck_assert_int_eq(
        apf_guest_backend_kvm_x86.enable(&b, 0, CHAN, 0x12340, 0xec, APF_EN_SEND_ALWAYS), 0);
    ck_assert_uint_eq(f.w[1].value, 0x12340 | 0xbu);
}
END_TEST

START_TEST(test_x86_enable_validates_before_writing)
{
    struct fx86 f = {0};
    struct apf_guest_kvm_x86 b;
    apf_guest_kvm_x86_init(&b, &fx_ops, &f);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.enable(&b, 0, CHAN, 0x12340, 31, 0), APF_EINVAL);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.enable(&b, 0, CHAN, 0x12344, 0xec, 0), APF_EINVAL);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.enable(&b, 0, CHAN, 0x12340, 0xec, 0x10),
                     APF_EINVAL);
    ck_assert_int_eq(f.nw, 0);
    /* #GP on INT: EN is never written */
    f.fail_msr = (int)APF_KVM_MSR_ASYNC_PF_INT;
    ck_assert_int_eq(apf_guest_backend_kvm_x86.enable(&b, 0, CHAN, 0x12340, 0xec, 0), APF_EINVAL);
    ck_assert_int_eq(f.nw, 1);
}
END_TEST

START_TEST(test_x86_disable_and_ack)
{
    struct fx86 f = {0};
    struct apf_guest_kvm_x86 b;
    apf_guest_kvm_x86_init(&b, &fx_ops, &f);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.disable(&b, 1), 0);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.ready_finish(&b, 1, CHAN), 0);
    ck_assert_int_eq(f.nw, 2);
    ck_assert_uint_eq(f.w[0].msr, APF_KVM_MSR_ASYNC_PF_EN);
    ck_assert_uint_eq(f.w[0].value, 0);
    ck_assert_uint_eq(f.w[1].msr, APF_KVM_MSR_ASYNC_PF_ACK);
    ck_assert_uint_eq(f.w[1].value, 1);
    f.fail_msr = (int)APF_KVM_MSR_ASYNC_PF_ACK; /* a refused ACK surfaces */
    ck_assert_int_eq(apf_guest_backend_kvm_x86.ready_finish(&b, 1, CHAN), APF_EINVAL);
}
END_TEST

START_TEST(test_x86_channel_is_the_64_byte_area_and_vectors_are_the_kernels)
{
    struct fx86 f = {0};
    struct apf_guest_kvm_x86 b;
    apf_guest_kvm_x86_init(&b, &fx_ops, &f);
    size_t align = 0;
    ck_assert_uint_eq(apf_guest_backend_kvm_x86.chan_size(&b, &align), 64);
    ck_assert_uint_eq(align, 64);
    ck_assert_ptr_eq(apf_guest_backend_kvm_x86.area(&b, CHAN), CHAN_AREA);
    ck_assert_ptr_null(apf_guest_backend_kvm_x86.ring);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.vector_check(&b, 31), APF_EINVAL);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.vector_check(&b, 32), 0);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.vector_check(&b, 255), 0);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.vector_check(&b, 256), APF_EINVAL);
}
END_TEST

/* KVM x86 byte for byte: reason in flags (token = CR2); page ready = token, cleared, ACK. */
START_TEST(test_x86_channel_decodes_kvm_area)
{
    struct fx86 f = {0};
    struct apf_guest_kvm_x86 b;
    apf_guest_kvm_x86_init(&b, &fx_ops, &f);
    const struct apf_guest_backend_ops *o = &apf_guest_backend_kvm_x86;
    struct apf_guest_chan_event ev;
    memset(chanmem, 0, sizeof(chanmem));
    ck_assert_int_eq(o->take_not_present(&b, 0, CHAN, 0x1000, &ev), APF_GUEST_NP_NONE);
    CHAN_AREA->flags = APF_REASON_NOT_PRESENT;
    CHAN_AREA->token = 0x5000; /* a "page ready" pending: not touched by "not present" */
    ck_assert_int_eq(o->take_not_present(&b, 0, CHAN, 0x3000, &ev), APF_GUEST_NP_EVENT);
    ck_assert_uint_eq(ev.token, 0x3000); /* CR2 */
    ck_assert_uint_eq(CHAN_AREA->flags, 0);
    ck_assert_uint_eq(CHAN_AREA->token, 0x5000);
    CHAN_AREA->flags = 7;
    ck_assert_int_eq(o->take_not_present(&b, 0, CHAN, 0x3000, &ev), APF_GUEST_NP_BAD);
    ck_assert_uint_eq(ev.value, 7);
    ck_assert_uint_eq(CHAN_AREA->flags, 0);
    /* page ready */
    ck_assert_int_eq(o->ready_peek(&b, 0, CHAN, &ev), APF_GUEST_READY_TOKEN);
    ck_assert_uint_eq(ev.token, 0x5000);
    ck_assert_int_eq(f.nw, 0);
    ck_assert_int_eq(o->ready_release(&b, 0, CHAN), 0); /* finish before the next */
    ck_assert_uint_eq(CHAN_AREA->token, 0);
    ck_assert_int_eq(o->ready_finish(&b, 0, CHAN), 0);
    ck_assert_int_eq(f.nw, 1);
    ck_assert_uint_eq(f.w[0].msr, APF_KVM_MSR_ASYNC_PF_ACK);
    ck_assert_uint_eq(f.w[0].value, 1);
    ck_assert_int_eq(o->ready_peek(&b, 0, CHAN, &ev), APF_GUEST_READY_EMPTY);
}
END_TEST

/* ---- a scripted arm64 host --------------------------------------------------------------------- */

struct farm {
    uint64_t features, version, slots, sdei, irq, enable_result;
    uint64_t apf_features; /* answer to FEATURES (sub-function 6) */
    uint64_t ring_result;  /* answer to RING (sub-function 7) */
    uint64_t last[4];
    int calls;
    struct {
        uint64_t func, a2, a3;
    } log[32];
    int nlog;
};

static void fa_smccc(void *ctx, uint32_t cpu, const uint64_t in[4], uint64_t out[4])
{
    struct farm *f = ctx;
    (void)cpu;
    memcpy(f->last, in, sizeof(f->last));
    f->calls++;
    if (f->nlog < 32 && (uint32_t)in[0] == APF_ARM64_FUNC_ID) {
        f->log[f->nlog].func = in[1];
        f->log[f->nlog].a2 = in[2];
        f->log[f->nlog].a3 = in[3];
        f->nlog++;
    }
    out[1] = out[2] = out[3] = 0;
    if ((uint32_t)in[0] == APF_ARM64_FEATURES_FUNC_ID) {
        out[0] = f->features;
        return;
    }
    switch (in[1]) {
    case APF_ARM64_FUNC_VERSION: out[0] = f->version; break;
    case APF_ARM64_FUNC_SLOTS: out[0] = f->slots; break;
    case APF_ARM64_FUNC_SDEI: out[0] = f->sdei; break;
    case APF_ARM64_FUNC_IRQ: out[0] = f->irq; break;
    case APF_ARM64_FUNC_ENABLE: out[0] = f->enable_result; break;
    case APF_ARM64_FUNC_FEATURES: out[0] = f->apf_features; break;
    case APF_ARM64_FUNC_RING: out[0] = f->ring_result; break;
    case APF_ARM64_FUNC_IRQ_ACK: out[0] = 0; break;
    default: out[0] = (uint64_t)(int64_t)APF_SMCCC_NOT_SUPPORTED;
    }
}

static const struct apf_arm64_arch_ops fa_ops = {fa_smccc};

static struct farm good_arm(void)
{
    return (struct farm){.features = 1ull << APF_ARM64_FEATURE_BIT, .version = 0x010000,
                         .slots = 64, .sdei = 0x40400001, .irq = 20,
                         .apf_features = (uint64_t)(int64_t)APF_SMCCC_NOT_SUPPORTED};
}

START_TEST(test_arm64_probe_reads_and_checks_host_values)
{
    struct farm f = good_arm();
    struct apf_guest_kvm_arm64 b;
    apf_guest_kvm_arm64_init(&b, &fa_ops, &f);
    struct apf_guest_backend_info info;
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.probe(&b, &info), 0);
    ck_assert_uint_eq(info.version, 0x010000);
    ck_assert_uint_eq(info.slots, 64);
    ck_assert_uint_eq(info.sdei_event, 0x40400001);
    ck_assert_uint_eq(info.irq, 20);
    ck_assert_uint_eq(apf_guest_backend_kvm_arm64.capabilities(&b),
                      APF_BACKEND_CAP_TOKEN_IN_AREA | APF_BACKEND_CAP_HOST_VECTOR |
                          APF_BACKEND_CAP_SEND_ALWAYS);
}
END_TEST

START_TEST(test_arm64_probe_rejects_bad_host_answers)
{
    struct apf_guest_kvm_arm64 b;
    struct apf_guest_backend_info info;
    struct farm f;
    apf_guest_kvm_arm64_init(&b, &fa_ops, &f);
    f = good_arm(), f.features = (uint64_t)-1; /* no vendor-hyp service */
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.probe(&b, &info), APF_ENODEV);
    f = good_arm(), f.features = 1u << 1;
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.probe(&b, &info), APF_EOPNOTSUPP);
    f = good_arm(), f.features = 1u << 2; /* the seed series' function 2 is not APF any more */
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.probe(&b, &info), APF_EOPNOTSUPP);
    f = good_arm(), f.version = 0x020000;
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.probe(&b, &info), APF_EPROTO);
    f = good_arm(), f.version = 0x1010000;
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.probe(&b, &info), APF_EPROTO);
    f = good_arm(), f.slots = 0;
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.probe(&b, &info), APF_EPROTO);
    f = good_arm(), f.slots = 5000;
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.probe(&b, &info), APF_EPROTO);
    f = good_arm(), f.sdei = 0;
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.probe(&b, &info), APF_EPROTO);
    f = good_arm(), f.irq = 40;
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.probe(&b, &info), APF_EPROTO);
    f = good_arm(), f.irq = (uint64_t)-1; /* IRQ not set by the VMM */
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.probe(&b, &info), APF_EOPNOTSUPP);
}
END_TEST

START_TEST(test_arm64_enable_passes_control_in_two_halves)
{
    struct farm f = good_arm();
    struct apf_guest_kvm_arm64 b;
    apf_guest_kvm_arm64_init(&b, &fa_ops, &f);
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.enable(&b, 0, CHAN, 0x123456789ac0ull, 20, 0), 0);
    ck_assert_uint_eq(f.last[0], APF_ARM64_FUNC_ID);
    ck_assert_uint_eq(f.last[1], APF_ARM64_FUNC_ENABLE);
    ck_assert_uint_eq(f.last[2], 0x56789ac1u); /* low half | ENABLED */
    ck_assert_uint_eq(f.last[3], 0x1234u);
    f.enable_result = (uint64_t)(int64_t)APF_SMCCC_INVALID_PARAMETER;
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.enable(&b, 0, CHAN, 0x1000, 20, 0), APF_EINVAL);
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.enable(&b, 0, CHAN, 0x1010, 20, 0), APF_EINVAL);
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.disable(&b, 0), APF_EINVAL);
    ck_assert_uint_eq(f.last[2], 0);
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.ready_finish(&b, 0, CHAN), 0);
    ck_assert_uint_eq(f.last[1], APF_ARM64_FUNC_IRQ_ACK);
}
END_TEST

START_TEST(test_arm64_slot_channel_reason_and_token_in_area)
{
    struct farm f = good_arm();
    struct apf_guest_kvm_arm64 b;
    apf_guest_kvm_arm64_init(&b, &fa_ops, &f);
    const struct apf_guest_backend_ops *o = &apf_guest_backend_kvm_arm64;
    struct apf_guest_backend_info info;
    ck_assert_int_eq(o->probe(&b, &info), 0);
    size_t align = 0;
    ck_assert_uint_eq(o->chan_size(&b, &align), 64);
    ck_assert_uint_eq(align, 64);
    ck_assert_int_eq(o->vector_check(&b, 15), APF_EPROTO);
    ck_assert_int_eq(o->vector_check(&b, 16), 0);
    ck_assert_int_eq(o->vector_check(&b, 31), 0);
    ck_assert_int_eq(o->vector_check(&b, 32), APF_EPROTO);
    ck_assert_ptr_null(o->ring(&b, CHAN));
    struct apf_guest_chan_event ev;
    memset(chanmem, 0, sizeof(chanmem));
    CHAN_AREA->flags = APF_REASON_NOT_PRESENT;
    CHAN_AREA->token = 0x4000;
    /* the interrupt finds a "not present": not ours */
    ck_assert_int_eq(o->ready_peek(&b, 0, CHAN, &ev), APF_GUEST_READY_NOT_OURS);
    ck_assert_int_eq(o->take_not_present(&b, 0, CHAN, 0x9999, &ev), APF_GUEST_NP_EVENT);
    ck_assert_uint_eq(ev.token, 0x4000); /* from the area, not the hint */
    ck_assert_uint_eq(CHAN_AREA->flags, 0);
    ck_assert_uint_eq(CHAN_AREA->token, 0);
    CHAN_AREA->flags = APF_REASON_READY;
    CHAN_AREA->token = 0x5000;
    /* the exception finds a "page ready": not ours, left */
    ck_assert_int_eq(o->take_not_present(&b, 0, CHAN, 0, &ev), APF_GUEST_NP_NOT_OURS);
    ck_assert_uint_eq(CHAN_AREA->flags, APF_REASON_READY);
    ck_assert_int_eq(o->ready_peek(&b, 0, CHAN, &ev), APF_GUEST_READY_TOKEN);
    ck_assert_uint_eq(ev.token, 0x5000);
    ck_assert_int_eq(o->ready_release(&b, 0, CHAN), 0);
    ck_assert_uint_eq(CHAN_AREA->flags, 0);
    ck_assert_uint_eq(CHAN_AREA->token, 0);
    f.nlog = 0;
    ck_assert_int_eq(o->ready_finish(&b, 0, CHAN), 0);
    ck_assert_int_eq(f.nlog, 1);
    ck_assert_uint_eq(f.log[0].func, APF_ARM64_FUNC_IRQ_ACK);
    CHAN_AREA->flags = 9;
    CHAN_AREA->token = 0x6000;
    ck_assert_int_eq(o->ready_peek(&b, 0, CHAN, &ev), APF_GUEST_READY_BAD_ENTRY);
    ck_assert_uint_eq(ev.value, 9);
}
END_TEST

START_TEST(test_arm64_ring_probe_negotiates_the_feature)
{
    struct farm f = good_arm();
    struct apf_guest_kvm_arm64 b;
    apf_guest_kvm_arm64_init(&b, &fa_ops, &f);
    ck_assert_uint_eq(b.ring_entries, 0);
    const struct apf_guest_backend_ops *o = &apf_guest_backend_kvm_arm64;
    struct apf_guest_backend_info info;
    b.ring_entries = 128;
    size_t align = 0;
    ck_assert_uint_eq(o->chan_size(&b, &align), 8192); /* sized before probe */
    ck_assert_uint_eq(align, 4096);
    /* 1.1 host offering the ring */
    f.version = 0x010100;
    f.apf_features = APF_FEATURE_RING;
    ck_assert_int_eq(o->probe(&b, &info), 0);
    ck_assert_uint_eq(info.features, APF_FEATURE_RING);
    ck_assert_uint_eq(b.ring_active, 1);
    ck_assert_uint_eq(f.log[f.nlog - 1].func, APF_ARM64_FUNC_FEATURES);
    ck_assert_ptr_eq(o->ring(&b, CHAN), CHAN_RING);
    /* fallback: 1.1 host without the bit */
    f.apf_features = 0;
    ck_assert_int_eq(o->probe(&b, &info), 0);
    ck_assert_uint_eq(info.features, 0);
    ck_assert_uint_eq(b.ring_active, 0);
    ck_assert_ptr_null(o->ring(&b, CHAN));
    /* fallback: 1.0 host, FEATURES not supported */
    f = good_arm();
    ck_assert_int_eq(o->probe(&b, &info), 0);
    ck_assert_uint_eq(info.features, 0);
    ck_assert_uint_eq(b.ring_active, 0);
    ck_assert_uint_eq(info.version, 0x010000);
    /* no ring wanted: FEATURES not even asked */
    f = good_arm();
    f.apf_features = APF_FEATURE_RING;
    b.ring_entries = 0;
    ck_assert_int_eq(o->probe(&b, &info), 0);
    ck_assert_uint_eq(b.ring_active, 0);
    for (int i = 0; i < f.nlog; i++)
        ck_assert_uint_ne(f.log[i].func, APF_ARM64_FUNC_FEATURES);
    /* a bad ring size is the context's error */
    b.ring_entries = 100;
    ck_assert_int_eq(o->probe(&b, &info), APF_EINVAL);
    b.ring_entries = 1024;
    ck_assert_int_eq(o->probe(&b, &info), APF_EINVAL);
}
END_TEST

START_TEST(test_arm64_ring_enable_registers_ring_then_enable_and_disable_reverses)
{
    struct farm f = good_arm();
    f.version = 0x010100;
    f.apf_features = APF_FEATURE_RING;
    struct apf_guest_kvm_arm64 b;
    apf_guest_kvm_arm64_init(&b, &fa_ops, &f);
    b.ring_entries = 512;
    const struct apf_guest_backend_ops *o = &apf_guest_backend_kvm_arm64;
    struct apf_guest_backend_info info;
    ck_assert_int_eq(o->probe(&b, &info), 0);
    memset(chanmem, 0, sizeof(chanmem));
    f.nlog = 0;
    uint64_t pa = 0x12345678000ull;
    ck_assert_int_eq(o->enable(&b, 0, CHAN, pa, 20, APF_EN_SEND_ALWAYS), 0);
    ck_assert_int_eq(f.nlog, 2);
    ck_assert_uint_eq(f.log[0].func, APF_ARM64_FUNC_RING);
    ck_assert_uint_eq(f.log[0].a2, (uint32_t)(pa + 4096) | 9u); /* log2(512) */
    ck_assert_uint_eq(f.log[0].a3, (pa + 4096) >> 32);
    ck_assert_uint_eq(f.log[1].func, APF_ARM64_FUNC_ENABLE);
    ck_assert_uint_eq(f.log[1].a2, (uint32_t)pa | APF_EN_ENABLED | APF_EN_SEND_ALWAYS |
                                       APF_ARM64_EN_RING);
    ck_assert_uint_eq(f.log[1].a3, pa >> 32);
    ck_assert_uint_eq(CHAN_RING->event, 1);
    /* page ready through the ring only: no IRQ_ACK */
    CHAN_RING->entries[0] = 0x7000;
    CHAN_RING->prod = 1;
    struct apf_guest_chan_event ev;
    ck_assert_int_eq(o->ready_peek(&b, 0, CHAN, &ev), APF_GUEST_READY_TOKEN);
    ck_assert_uint_eq(ev.token, 0x7000);
    ck_assert_int_eq(o->ready_release(&b, 0, CHAN), 1);
    ck_assert_int_eq(o->ready_peek(&b, 0, CHAN, &ev), APF_GUEST_READY_EMPTY);
    ck_assert_int_eq(o->ready_finish(&b, 0, CHAN), 0);
    ck_assert_uint_eq(CHAN_RING->cons, 1);
    ck_assert_uint_eq(CHAN_RING->event, 2);
    ck_assert_int_eq(f.nlog, 2);
    /* a "page ready" in the area is a bad host value in ring mode: cleared */
    CHAN_AREA->flags = APF_REASON_READY;
    CHAN_AREA->token = 0x8000;
    ck_assert_int_eq(o->take_not_present(&b, 0, CHAN, 0, &ev), APF_GUEST_NP_BAD);
    ck_assert_uint_eq(CHAN_AREA->flags, 0);
    /* disable: ENABLE 0, then RING 0 */
    ck_assert_int_eq(o->disable(&b, 0), 0);
    ck_assert_int_eq(f.nlog, 4);
    ck_assert_uint_eq(f.log[2].func, APF_ARM64_FUNC_ENABLE);
    ck_assert_uint_eq(f.log[2].a2, 0);
    ck_assert_uint_eq(f.log[3].func, APF_ARM64_FUNC_RING);
    ck_assert_uint_eq(f.log[3].a2, 0);
    ck_assert_uint_eq(f.log[3].a3, 0);
    /* the host refuses ENABLE after RING: the ring is unregistered again */
    f.nlog = 0;
    f.enable_result = (uint64_t)(int64_t)APF_SMCCC_INVALID_PARAMETER;
    ck_assert_int_eq(o->enable(&b, 0, CHAN, pa, 20, 0), APF_EINVAL);
    ck_assert_int_eq(f.nlog, 3);
    ck_assert_uint_eq(f.log[2].func, APF_ARM64_FUNC_RING);
    ck_assert_uint_eq(f.log[2].a2, 0);
    /* the host refuses RING: ENABLE is never called */
    f.nlog = 0;
    f.enable_result = 0;
    f.ring_result = (uint64_t)(int64_t)APF_SMCCC_INVALID_PARAMETER;
    ck_assert_int_eq(o->enable(&b, 0, CHAN, pa, 20, 0), APF_EINVAL);
    ck_assert_int_eq(f.nlog, 1);
}
END_TEST

START_TEST(test_null_backend_is_never_available)
{
    struct apf_guest_backend_info info;
    struct apf_guest_chan_event ev;
    size_t align = 0;
    ck_assert_int_eq(apf_guest_backend_null.probe(NULL, &info), APF_ENODEV);
    ck_assert_uint_eq(apf_guest_backend_null.chan_size(NULL, &align), 0);
    ck_assert_uint_eq(align, 1);
    ck_assert_int_eq(apf_guest_backend_null.vector_check(NULL, 0xec), APF_EOPNOTSUPP);
    ck_assert_int_eq(apf_guest_backend_null.enable(NULL, 0, NULL, 0x1000, 0xec, 0),
                     APF_EOPNOTSUPP);
    ck_assert_int_eq(apf_guest_backend_null.disable(NULL, 0), APF_EOPNOTSUPP);
    ck_assert_int_eq(apf_guest_backend_null.take_not_present(NULL, 0, NULL, 0x1000, &ev),
                     APF_GUEST_NP_NONE);
    ck_assert_int_eq(apf_guest_backend_null.ready_peek(NULL, 0, NULL, &ev),
                     APF_GUEST_READY_EMPTY);
    ck_assert_int_eq(apf_guest_backend_null.ready_release(NULL, 0, NULL), 0);
    ck_assert_int_eq(apf_guest_backend_null.ready_finish(NULL, 0, NULL), APF_EOPNOTSUPP);
    ck_assert_ptr_null(apf_guest_backend_null.area);
    ck_assert_ptr_null(apf_guest_backend_null.ring);
    ck_assert_uint_eq(apf_guest_backend_null.capabilities(NULL), 0);
}
END_TEST

/* ---- against the real host frontends ----------------------------------------------------------- */

static uint8_t guest_ram[8192];

static int h_read(void *ctx, uint64_t gpa, void *buf, uint32_t len)
{
    (void)ctx;
    if (gpa >= sizeof(guest_ram) || len > sizeof(guest_ram) - gpa)
        return APF_EFAULT;
    memcpy(buf, guest_ram + gpa, len);
    return 0;
}

static int h_write(void *ctx, uint64_t gpa, const void *buf, uint32_t len)
{
    (void)ctx;
    if (gpa >= sizeof(guest_ram) || len > sizeof(guest_ram) - gpa)
        return APF_EFAULT;
    memcpy(guest_ram + gpa, buf, len);
    return 0;
}

static int n_ready;
static uint32_t ready_vector;
static void h_ready(void *ctx, uint32_t vcpu, uint32_t vector)
{
    (void)ctx, (void)vcpu;
    n_ready++;
    ready_vector = vector;
}

static void h_nop_np(void *ctx, uint32_t vcpu, uint32_t token)
{
    (void)ctx, (void)vcpu, (void)token;
}

static void h_nop_kick(void *ctx, uint32_t vcpu)
{
    (void)ctx, (void)vcpu;
}

static void h_nop_submit(void *ctx, uint32_t vcpu, uint32_t token, uint64_t gpa)
{
    (void)ctx, (void)vcpu, (void)token, (void)gpa;
}

static const struct apf_host_ops hops = {
    .submit = h_nop_submit, .inject_not_present = h_nop_np, .inject_ready = h_ready,
    .kick = h_nop_kick, .read_guest = h_read, .write_guest = h_write};

struct x86_wire {
    struct apf_host_kvm_x86 *fe;
};

static void w_cpuid(void *ctx, uint32_t cpu, uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    struct x86_wire *w = ctx;
    (void)cpu, (void)sub;
    memset(r, 0, 16);
    apf_host_kvm_x86_cpuid(w->fe, leaf, r);
}

static int w_wrmsr(void *ctx, uint32_t cpu, uint32_t msr, uint64_t v)
{
    struct x86_wire *w = ctx;
    int r = apf_host_kvm_x86_wrmsr(w->fe, cpu, msr, v);
    return r == APF_HOST_KVM_X86_NOT_MINE ? APF_EINVAL : r; /* an unknown MSR #GPs */
}

static int w_rdmsr(void *ctx, uint32_t cpu, uint32_t msr, uint64_t *v)
{
    struct x86_wire *w = ctx;
    int r = apf_host_kvm_x86_rdmsr(w->fe, cpu, msr, v);
    return r == APF_HOST_KVM_X86_NOT_MINE ? APF_EINVAL : r;
}

static const struct apf_x86_arch_ops wire_x86 = {w_cpuid, w_wrmsr, w_rdmsr};

static const uint32_t GS = APF_GS_USER | APF_GS_IRQ_ON | APF_GS_PAGING | APF_GS_IRQCHIP_ON;

START_TEST(test_x86_backend_against_real_kvm_x86_frontend)
{
    struct apf_host_config hc = {.n_vcpus = 2, .ops = &hops, .transport = &apf_host_transport_kvm_x86};
    struct apf_host *h;
    ck_assert_int_eq(apf_host_create(&hc, &h), 0);
    struct x86_wire w;
    ck_assert_int_eq(apf_host_kvm_x86_create(h, NULL, &w.fe), 0);
    struct apf_guest_kvm_x86 b;
    apf_guest_kvm_x86_init(&b, &wire_x86, &w);
    struct apf_guest_backend_info info;
    ck_assert_int_eq(apf_guest_backend_kvm_x86.probe(&b, &info), 0);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.enable(&b, 1, guest_ram + 0x1040, 0x1040, 0xf3, 0),
                     0);
    uint64_t v;
    ck_assert_int_eq(apf_host_kvm_x86_rdmsr(w.fe, 1, APF_KVM_MSR_ASYNC_PF_INT, &v), 0);
    ck_assert_uint_eq(v, 0xf3);
    ck_assert_int_eq(apf_host_kvm_x86_rdmsr(w.fe, 1, APF_KVM_MSR_ASYNC_PF_EN, &v), 0);
    ck_assert_uint_eq(v, 0x1040 | 9);
    ck_assert_int_eq(apf_host_vcpu_enabled(h, 1), 1);
    n_ready = 0;
    ck_assert_int_eq(apf_host_vcpu_before_entry(h, 1, GS), 1); /* the wake-all */
    ck_assert_int_eq(n_ready, 1);
    ck_assert_uint_eq(ready_vector, 0xf3);
    uint32_t token;
    memcpy(&token, guest_ram + 0x1044, 4);
    ck_assert_uint_eq(token, APF_TOKEN_WAKE_ALL);
    /* the backend reads what the host wrote, clears it, ACKs */
    struct apf_guest_chan_event ev;
    ck_assert_int_eq(apf_guest_backend_kvm_x86.ready_peek(&b, 1, guest_ram + 0x1040, &ev),
                     APF_GUEST_READY_TOKEN);
    ck_assert_uint_eq(ev.token, APF_TOKEN_WAKE_ALL);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.ready_release(&b, 1, guest_ram + 0x1040), 0);
    memcpy(&token, guest_ram + 0x1044, 4);
    ck_assert_uint_eq(token, 0);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.ready_finish(&b, 1, guest_ram + 0x1040), 0);
    struct apf_host_vcpu_stats s;
    apf_host_vcpu_stats(h, 1, &s);
    ck_assert_uint_eq(s.acks, 1);
    ck_assert_uint_eq(s.acks_spurious, 0);
    /* a host refusal surfaces as the backend's error: area outside guest RAM */
    ck_assert_int_eq(apf_guest_backend_kvm_x86.enable(&b, 0, CHAN, 0x100000, 0xf3, 0), APF_EFAULT);
    ck_assert_int_eq(apf_host_vcpu_enabled(h, 0), 0);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.disable(&b, 1), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(h, 1), 0);
    apf_host_kvm_x86_destroy(w.fe);
    apf_host_destroy(h);
}
END_TEST

struct arm_wire {
    struct apf_host_kvm_arm64 *fe;
};

static void w_smccc(void *ctx, uint32_t cpu, const uint64_t in[4], uint64_t out[4])
{
    struct arm_wire *w = ctx;
    if ((uint32_t)in[0] == APF_ARM64_FEATURES_FUNC_ID) {
        out[0] = apf_host_kvm_arm64_features();
        out[1] = out[2] = out[3] = 0;
        return;
    }
    if (apf_host_kvm_arm64_hvc(w->fe, cpu, in, out) != 0) {
        out[0] = (uint64_t)(int64_t)APF_SMCCC_NOT_SUPPORTED;
        out[1] = out[2] = out[3] = 0;
    }
}

static const struct apf_arm64_arch_ops wire_arm = {w_smccc};

START_TEST(test_arm64_backend_against_real_kvm_arm64_frontend)
{
    struct apf_host_config hc = {.n_vcpus = 1, .ops = &hops, .transport = &apf_host_transport_kvm_arm64};
    struct apf_host *h;
    ck_assert_int_eq(apf_host_create(&hc, &h), 0);
    struct arm_wire w;
    ck_assert_int_eq(apf_host_kvm_arm64_create(h, NULL, &w.fe), 0);
    struct apf_guest_kvm_arm64 b;
    apf_guest_kvm_arm64_init(&b, &wire_arm, &w);
    struct apf_guest_backend_info info;
    /* the VMM has not set the PPI yet: APF is not offered */
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.probe(&b, &info), APF_EOPNOTSUPP);
    ck_assert_int_eq(apf_host_kvm_arm64_set_irq(w.fe, 0, 23), 0);
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.probe(&b, &info), 0);
    ck_assert_uint_eq(info.irq, 23);
    ck_assert_uint_eq(info.slots, 64);
    ck_assert_uint_eq(info.sdei_event, APF_ARM64_SDEI_EVENT_DEFAULT);
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.enable(&b, 0, guest_ram + 0x1080, 0x1080, 23, 0),
                     0);
    struct apf_host_kvm_arm64_state st;
    ck_assert_int_eq(apf_host_kvm_arm64_get_state(w.fe, 0, &st), 0);
    ck_assert_uint_eq(st.control, 0x1081);
    n_ready = 0;
    ck_assert_int_eq(apf_host_vcpu_before_entry(h, 0, GS), 1);
    ck_assert_uint_eq(ready_vector, 23);
    uint32_t area[2];
    memcpy(area, guest_ram + 0x1080, 8);
    ck_assert_uint_eq(area[0], APF_REASON_READY);
    ck_assert_uint_eq(area[1], APF_TOKEN_WAKE_ALL);
    struct apf_guest_chan_event ev;
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.ready_peek(&b, 0, guest_ram + 0x1080, &ev),
                     APF_GUEST_READY_TOKEN);
    ck_assert_uint_eq(ev.token, APF_TOKEN_WAKE_ALL);
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.ready_release(&b, 0, guest_ram + 0x1080), 0);
    memcpy(area, guest_ram + 0x1080, 8);
    ck_assert_uint_eq(area[0], 0);
    ck_assert_uint_eq(area[1], 0);
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.ready_finish(&b, 0, guest_ram + 0x1080), 0);
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.disable(&b, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(h, 0), 0);
    apf_host_kvm_arm64_destroy(w.fe);
    apf_host_destroy(h);
}
END_TEST

static Suite *backend_suite(void)
{
    Suite *s = suite_create("guest_backends");
    TCase *tc = tcase_create("kvm_x86");
    tcase_add_test(tc, test_x86_probe_finds_signature_and_features);
    tcase_add_test(tc, test_x86_probe_finds_kvm_behind_another_hypervisor);
    tcase_add_test(tc, test_x86_probe_without_kvm_or_feature_fails);
    tcase_add_test(tc, test_x86_enable_writes_int_then_en);
    tcase_add_test(tc, test_x86_enable_validates_before_writing);
    tcase_add_test(tc, test_x86_disable_and_ack);
    tcase_add_test(tc, test_x86_channel_is_the_64_byte_area_and_vectors_are_the_kernels);
    tcase_add_test(tc, test_x86_channel_decodes_kvm_area);
    tcase_add_test(tc, test_x86_backend_against_real_kvm_x86_frontend);
    suite_add_tcase(s, tc);
    tc = tcase_create("kvm_arm64");
    tcase_add_test(tc, test_arm64_probe_reads_and_checks_host_values);
    tcase_add_test(tc, test_arm64_probe_rejects_bad_host_answers);
    tcase_add_test(tc, test_arm64_enable_passes_control_in_two_halves);
    tcase_add_test(tc, test_arm64_slot_channel_reason_and_token_in_area);
    tcase_add_test(tc, test_arm64_ring_probe_negotiates_the_feature);
    tcase_add_test(tc, test_arm64_ring_enable_registers_ring_then_enable_and_disable_reverses);
    tcase_add_test(tc, test_arm64_backend_against_real_kvm_arm64_frontend);
    suite_add_tcase(s, tc);
    tc = tcase_create("null");
    tcase_add_test(tc, test_null_backend_is_never_available);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(backend_suite)
