/* SPDX-License-Identifier: MIT */
/*
 * KVM x86 frontend (apf/host_kvm_x86.h, src/host/kvm_x86.c): the KVM CPUID leaves and the
 * three APF MSRs, driven the way a guest and its VMM drive them, over an engine in
 * embedder-completion mode (n_workers 0) and the fake hypervisor.
 *
 * Every refused write is followed by a check that nothing changed: both MSRs read back as
 * before, the engine's enabled state and saved state are identical field by field, the
 * shared area is untouched, and the fake's log shows no new injection.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apf/host_kvm_x86.h"

#include "apf_check.h"
#include "fake_vmm.h"

#define N_VCPUS 2u
#define MSR_EN APF_KVM_MSR_ASYNC_PF_EN
#define MSR_INT APF_KVM_MSR_ASYNC_PF_INT
#define MSR_ACK APF_KVM_MSR_ASYNC_PF_ACK
#define EN_ON ((uint64_t)(APF_EN_ENABLED | APF_EN_DELIVERY_AS_INT)) /* 0x9: APF on */
#define VEC 0xecu
#define FEAT_PF (1u << APF_KVM_FEATURE_ASYNC_PF)
#define FEAT_VMEXIT (1u << APF_KVM_FEATURE_ASYNC_PF_VMEXIT)
#define FEAT_INT (1u << APF_KVM_FEATURE_ASYNC_PF_INT)
#define POISON64 0x5a5a5a5a5a5a5a5aull
#define POISON32 0xa5a5a5a5u
#define FAR_AREA 0x7ffff000000ull /* far outside the fake's 1 MiB */

static struct fake_vmm g_f;
static struct apf_host *g_h;
static struct apf_host_kvm_x86 *g_fe;
static int g_live;

/* ---- fixture ------------------------------------------------------------------------------ */

static void teardown(void)
{
    if (!g_live)
        return;
    apf_host_kvm_x86_destroy(g_fe);
    apf_host_destroy(g_h);
    fake_fini(&g_f);
    g_fe = NULL;
    g_h = NULL;
    g_live = 0;
}

/* (Re)creates fake, engine (ABI KVM x86, embedder completion) and frontend. */
static void make(const struct apf_host_kvm_x86_config *xcfg)
{
    teardown();
    fake_init(&g_f);
    struct apf_host_config c = fake_config(&g_f, N_VCPUS, 0, &apf_host_transport_kvm_x86);
    ck_assert_int_eq(apf_host_create(&c, &g_h), 0);
    ck_assert_int_eq(apf_host_kvm_x86_create(g_h, xcfg, &g_fe), 0);
    g_live = 1;
}

static void make_features(uint32_t features, uint32_t no_lapic)
{
    struct apf_host_kvm_x86_config x = {0};
    x.cpuid_features = features;
    x.no_lapic_in_kernel = no_lapic;
    make(&x);
}

static void setup(void)
{
    make(NULL);
}

/* ---- guest-side helpers ------------------------------------------------------------------- */

static int wrmsr(uint32_t vcpu, uint32_t msr, uint64_t value)
{
    return apf_host_kvm_x86_wrmsr(g_fe, vcpu, msr, value);
}

static uint64_t rdmsr_ok(uint32_t vcpu, uint32_t msr)
{
    uint64_t v = POISON64;
    ck_assert_int_eq(apf_host_kvm_x86_rdmsr(g_fe, vcpu, msr, &v), 0);
    return v;
}

static uint32_t mem_u32(uint64_t gpa)
{
    uint32_t v;
    memcpy(&v, g_f.mem + gpa, sizeof(v));
    return v;
}

static struct apf_host_vcpu_stats stats(uint32_t vcpu)
{
    struct apf_host_vcpu_stats s;
    ck_assert_int_eq(apf_host_vcpu_stats(g_h, vcpu, &s), 0);
    return s;
}

/* The guest turns APF on the way Linux does (INT first, then EN at FAKE_AREA(vcpu)) and
 * consumes the wake-all (read token, clear it, ACK). The log is cleared afterwards. */
static void guest_apf_on(uint32_t vcpu)
{
    ck_assert_int_eq(wrmsr(vcpu, MSR_INT, VEC), 0);
    ck_assert_int_eq(wrmsr(vcpu, MSR_EN, FAKE_AREA(vcpu) | EN_ON), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, vcpu, GS_USER), 1);
    ck_assert_uint_eq(fake_area_token(&g_f, vcpu), APF_TOKEN_WAKE_ALL);
    fake_area_write(&g_f, vcpu, 0, 0);
    ck_assert_int_eq(wrmsr(vcpu, MSR_ACK, 1), 0);
    fake_log_clear(&g_f);
}

/* A user-mode fault that goes async: checks the "not present" (flags = 1, #PF with the
 * token, work submitted for the same token and address), then the guest's #PF handler
 * resets flags to 0. Returns the token. */
static uint32_t fault_async(uint32_t vcpu, uint64_t gpa)
{
    size_t n_np = fake_count(&g_f, FAKE_NP, vcpu);
    size_t n_sub = fake_count(&g_f, FAKE_SUBMIT, vcpu);
    ck_assert_int_eq(apf_host_vcpu_fault(g_h, vcpu, gpa, GS_USER), APF_FAULT_ASYNC);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_NP, vcpu), n_np + 1);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_SUBMIT, vcpu), n_sub + 1);
    uint32_t tok = fake_nth(&g_f, FAKE_NP, vcpu, n_np)->value;
    ck_assert(apf_token_is_fault(tok));
    ck_assert_uint_eq(apf_token_kvm_vcpu(tok), vcpu);
    ck_assert_uint_eq(fake_nth(&g_f, FAKE_SUBMIT, vcpu, n_sub)->value, tok);
    ck_assert_uint_eq(fake_nth(&g_f, FAKE_SUBMIT, vcpu, n_sub)->gpa, gpa);
    ck_assert_uint_eq(fake_area_flags(&g_f, vcpu), APF_REASON_NOT_PRESENT);
    fake_area_write(&g_f, vcpu, 0, fake_area_token(&g_f, vcpu));
    return tok;
}

/* ---- "nothing changed" -------------------------------------------------------------------- */

struct snap {
    int rc_en, rc_int;
    uint64_t en, vec;
    struct fake_engine_snap e; /* the engine's side */
};

static void snap_take(uint32_t vcpu, struct snap *s)
{
    memset(s, 0, sizeof(*s));
    s->en = POISON64;
    s->vec = POISON64;
    s->rc_en = apf_host_kvm_x86_rdmsr(g_fe, vcpu, MSR_EN, &s->en);
    s->rc_int = apf_host_kvm_x86_rdmsr(g_fe, vcpu, MSR_INT, &s->vec);
    fake_engine_snap(&g_f, g_h, vcpu, &s->e);
}

static void unchanged_at(int line, uint32_t vcpu, const struct snap *b)
{
    struct snap a;
    snap_take(vcpu, &a);
    ck_assert_msg(a.rc_en == b->rc_en && a.en == b->en,
                  "line %d: MSR EN changed: rc %d -> %d, %#llx -> %#llx", line, b->rc_en,
                  a.rc_en, (unsigned long long)b->en, (unsigned long long)a.en);
    ck_assert_msg(a.rc_int == b->rc_int && a.vec == b->vec,
                  "line %d: MSR INT changed: rc %d -> %d, %#llx -> %#llx", line, b->rc_int,
                  a.rc_int, (unsigned long long)b->vec, (unsigned long long)a.vec);
    fake_engine_assert_same(line, &b->e, &a.e);
}
#define ck_assert_unchanged(vcpu, before) unchanged_at(__LINE__, (vcpu), (before))

/* Nothing is queued for delivery: the next entry injects no "page ready". Use only where
 * the state before the refused call had nothing queued. */
static void nothing_queued_at(int line, uint32_t vcpu)
{
    fake_assert_nothing_queued(&g_f, g_h, line, vcpu);
}
#define ck_assert_nothing_queued(vcpu) nothing_queued_at(__LINE__, (vcpu))

/* ---- CPUID -------------------------------------------------------------------------------- */

START_TEST(test_cpuid_signature_leaf_is_kvmkvmkvm)
{
    uint32_t regs[4] = {POISON32, POISON32, POISON32, POISON32};
    ck_assert_int_eq(apf_host_kvm_x86_cpuid(g_fe, 0x40000000u, regs), 1);
    ck_assert_uint_eq(regs[0], 0x40000001u);
    ck_assert_int_eq(memcmp(&regs[1], "KVMKVMKVM\0\0\0", 12), 0);
    ck_assert_uint_eq(regs[1], 0x4b4d564bu);
    ck_assert_uint_eq(regs[2], 0x564b4d56u);
    ck_assert_uint_eq(regs[3], 0x0000004du);
}
END_TEST

START_TEST(test_cpuid_features_leaf_defaults_to_async_pf_and_async_pf_int)
{
    uint32_t regs[4] = {POISON32, POISON32, POISON32, POISON32};
    ck_assert_int_eq(apf_host_kvm_x86_cpuid(g_fe, 0x40000001u, regs), 1);
    ck_assert_uint_eq(regs[0], (1u << 4) | (1u << 14));
    ck_assert_uint_eq(regs[1], 0);
    ck_assert_uint_eq(regs[2], 0);
    ck_assert_uint_eq(regs[3], 0);
}
END_TEST

START_TEST(test_cpuid_features_leaf_returns_configured_features)
{
    /* Any KVM feature bits the VMM implements pass through: CLOCKSOURCE2 (3), PV_EOI (6). */
    uint32_t features = FEAT_PF | FEAT_VMEXIT | FEAT_INT | (1u << 3) | (1u << 6);
    make_features(features, 0);
    uint32_t regs[4] = {POISON32, POISON32, POISON32, POISON32};
    ck_assert_int_eq(apf_host_kvm_x86_cpuid(g_fe, 0x40000001u, regs), 1);
    ck_assert_uint_eq(regs[0], 0x4458u);
    ck_assert_uint_eq(regs[1], 0);
    ck_assert_uint_eq(regs[2], 0);
    ck_assert_uint_eq(regs[3], 0);
    /* The signature leaf does not depend on the features. */
    ck_assert_int_eq(apf_host_kvm_x86_cpuid(g_fe, 0x40000000u, regs), 1);
    ck_assert_uint_eq(regs[0], 0x40000001u);
    ck_assert_int_eq(memcmp(&regs[1], "KVMKVMKVM\0\0\0", 12), 0);
}
END_TEST

START_TEST(test_cpuid_other_leaves_are_not_answered_and_regs_untouched)
{
    static const uint32_t leaves[] = {0x0u,        0x1u,        0xdu,        0x3fffffffu,
                                      0x40000002u, 0x40000010u, 0x40000100u, 0x40000101u,
                                      0x4fffffffu, 0x80000000u, 0xc0000000u, 0xffffffffu};
    for (size_t i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++) {
        uint32_t regs[4] = {POISON32, POISON32 + 1, POISON32 + 2, POISON32 + 3};
        ck_assert_int_eq(apf_host_kvm_x86_cpuid(g_fe, leaves[i], regs), 0);
        ck_assert_uint_eq(regs[0], POISON32);
        ck_assert_uint_eq(regs[1], POISON32 + 1);
        ck_assert_uint_eq(regs[2], POISON32 + 2);
        ck_assert_uint_eq(regs[3], POISON32 + 3);
    }
}
END_TEST

/* ---- MSR routing -------------------------------------------------------------------------- */

START_TEST(test_other_msrs_are_not_mine_for_wrmsr_and_rdmsr)
{
    /* Neighbours in KVM's range (system time, steal time, PV EOI, poll control, migration
     * control...), the legacy KVM MSRs, and ordinary architectural MSRs. */
    static const uint32_t msrs[] = {0x4b564d00u, 0x4b564d01u, 0x4b564d03u, 0x4b564d04u,
                                    0x4b564d05u, 0x4b564d08u, 0x4b564dffu, 0x4b564e02u,
                                    0x0b564d02u, 0x11u,       0x12u,       0x10u,
                                    0x1bu,       0xc0000080u, 0x0u,        0xffffffffu};
    guest_apf_on(0);
    struct snap before;
    snap_take(0, &before);
    for (size_t i = 0; i < sizeof(msrs) / sizeof(msrs[0]); i++) {
        ck_assert_int_eq(wrmsr(0, msrs[i], 0), APF_HOST_KVM_X86_NOT_MINE);
        ck_assert_int_eq(wrmsr(0, msrs[i], FAKE_AREA(0) | EN_ON), APF_HOST_KVM_X86_NOT_MINE);
        ck_assert_int_eq(wrmsr(0, msrs[i], 1), APF_HOST_KVM_X86_NOT_MINE);
        uint64_t v = POISON64;
        ck_assert_int_eq(apf_host_kvm_x86_rdmsr(g_fe, 0, msrs[i], &v), APF_HOST_KVM_X86_NOT_MINE);
        ck_assert_uint_eq(v, POISON64);
    }
    ck_assert_unchanged(0, &before);
    ck_assert_nothing_queued(0);
}
END_TEST

/* ---- ASYNC_PF_INT ------------------------------------------------------------------------- */

START_TEST(test_int_with_bits_above_7_is_refused)
{
    static const uint64_t bad[] = {0x100u, 0x1ecu, 0x1ffu, 0xff00u, 1ull << 32, 1ull << 63,
                                   ~0ull};
    ck_assert_int_eq(wrmsr(0, MSR_INT, 0x40), 0);
    struct snap before;
    snap_take(0, &before);
    ck_assert_uint_eq(before.vec, 0x40);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(wrmsr(0, MSR_INT, bad[i]), APF_EINVAL);
        ck_assert_unchanged(0, &before);
    }
    /* Also while APF is on. */
    guest_apf_on(1);
    snap_take(1, &before);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(wrmsr(1, MSR_INT, bad[i]), APF_EINVAL);
        ck_assert_unchanged(1, &before);
    }
    ck_assert_uint_eq(rdmsr_ok(1, MSR_INT), VEC);
    ck_assert_nothing_queued(1);
}
END_TEST

START_TEST(test_int_vector_below_32_is_refused)
{
    struct snap before;
    snap_take(0, &before); /* never written: reads 0 */
    ck_assert_uint_eq(before.vec, 0);
    for (uint64_t vec = 0; vec < 32; vec++) {
        ck_assert_int_eq(wrmsr(0, MSR_INT, vec), APF_EINVAL);
        ck_assert_unchanged(0, &before);
    }
    ck_assert_int_eq(wrmsr(0, MSR_INT, 32), 0);
    snap_take(0, &before);
    for (uint64_t vec = 0; vec < 32; vec++) {
        ck_assert_int_eq(wrmsr(0, MSR_INT, vec), APF_EINVAL);
        ck_assert_unchanged(0, &before);
    }
    ck_assert_uint_eq(rdmsr_ok(0, MSR_INT), 32);
}
END_TEST

START_TEST(test_int_vectors_32_to_255_are_accepted_and_read_back)
{
    for (uint64_t vec = 32; vec <= 255; vec++) {
        ck_assert_int_eq(wrmsr(0, MSR_INT, vec), 0);
        ck_assert_uint_eq(rdmsr_ok(0, MSR_INT), vec);
        struct apf_host_vcpu_state st;
        ck_assert_int_eq(apf_host_vcpu_save(g_h, 0, &st), 0);
        ck_assert_uint_eq(st.vector, vec);
    }
    /* Per vCPU: the other one never saw a write. */
    ck_assert_uint_eq(rdmsr_ok(1, MSR_INT), 0);
    /* The vector written last is the one "page ready" uses. */
    ck_assert_int_eq(wrmsr(0, MSR_INT, 0x41), 0);
    ck_assert_int_eq(wrmsr(0, MSR_EN, FAKE_AREA(0) | EN_ON), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 1);
    ck_assert_uint_eq(fake_nth(&g_f, FAKE_READY, 0, 0)->value, 0x41);
}
END_TEST

START_TEST(test_int_and_ack_without_async_pf_int_feature_are_unsupported)
{
    make_features(FEAT_PF, 0);
    struct snap before;
    snap_take(0, &before);
    ck_assert_int_eq(before.rc_int, APF_EOPNOTSUPP);
    ck_assert_uint_eq(before.vec, POISON64); /* not written on failure */
    static const uint64_t vals[] = {0xec, 32, 255, 0};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        ck_assert_int_eq(wrmsr(0, MSR_INT, vals[i]), APF_EOPNOTSUPP);
        ck_assert_unchanged(0, &before);
    }
    ck_assert_int_eq(wrmsr(0, MSR_ACK, 1), APF_EOPNOTSUPP);
    uint64_t v = POISON64;
    ck_assert_int_eq(apf_host_kvm_x86_rdmsr(g_fe, 0, MSR_ACK, &v), APF_EOPNOTSUPP);
    ck_assert_uint_eq(stats(0).acks, 0);
    ck_assert_uint_eq(before.e.st.vector, 0);
    ck_assert_unchanged(0, &before);
}
END_TEST

/* ---- ASYNC_PF_EN -------------------------------------------------------------------------- */

START_TEST(test_en_with_reserved_bit_is_refused)
{
    static const uint64_t bad_bits[] = {0x10u, 0x20u, 0x30u};
    /* APF off, vector set. */
    ck_assert_int_eq(wrmsr(0, MSR_INT, VEC), 0);
    struct snap before;
    snap_take(0, &before);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(wrmsr(0, MSR_EN, FAKE_AREA(0) | EN_ON | bad_bits[i]), APF_EINVAL);
        ck_assert_unchanged(0, &before);
        ck_assert_int_eq(wrmsr(0, MSR_EN, bad_bits[i]), APF_EINVAL);
        ck_assert_unchanged(0, &before);
    }
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 0), 0);
    ck_assert_nothing_queued(0);

    /* APF on: a refused write neither turns it off nor restarts it (no new wake-all). */
    guest_apf_on(1);
    snap_take(1, &before);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(wrmsr(1, MSR_EN, FAKE_AREA(1) | EN_ON | bad_bits[i]), APF_EINVAL);
        ck_assert_unchanged(1, &before);
        ck_assert_int_eq(wrmsr(1, MSR_EN, 0x2000 | bad_bits[i] | APF_EN_ENABLED), APF_EINVAL);
        ck_assert_unchanged(1, &before);
    }
    ck_assert_uint_eq(rdmsr_ok(1, MSR_EN), FAKE_AREA(1) | EN_ON);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 1), 1);
    ck_assert_nothing_queued(1);
}
END_TEST

START_TEST(test_en_bit0_without_bit3_means_off)
{
    /* Never on: accepted and read back, APF stays off, nothing queued. */
    ck_assert_int_eq(wrmsr(0, MSR_INT, VEC), 0);
    ck_assert_int_eq(wrmsr(0, MSR_EN, FAKE_AREA(0) | APF_EN_ENABLED), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), FAKE_AREA(0) | APF_EN_ENABLED);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 0), 0);
    ck_assert_nothing_queued(0);

    /* Without INT written either: "off" needs no vector. */
    ck_assert_int_eq(wrmsr(1, MSR_EN, FAKE_AREA(1) | APF_EN_ENABLED | APF_EN_SEND_ALWAYS), 0);
    ck_assert_uint_eq(rdmsr_ok(1, MSR_EN), FAKE_AREA(1) | 0x3u);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 1), 0);

    /* From on: turns it off. */
    ck_assert_int_eq(wrmsr(0, MSR_EN, FAKE_AREA(0) | EN_ON), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 0), 1);
    ck_assert_int_eq(wrmsr(0, MSR_EN, FAKE_AREA(0) | APF_EN_ENABLED), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), FAKE_AREA(0) | APF_EN_ENABLED);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 0), 0);
    struct apf_host_vcpu_state st;
    ck_assert_int_eq(apf_host_vcpu_save(g_h, 0, &st), 0);
    ck_assert_uint_eq(st.enabled, 0);
    ck_assert_uint_eq(st.area_gpa, 0);
    ck_assert_uint_eq(st.flags, 0);
    ck_assert_uint_eq(st.vector, VEC); /* INT is kept */
    /* The wake-all queued by the short "on" was dropped with it. */
    ck_assert_nothing_queued(0);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), 0);
    /* Faults are synchronous while off. */
    ck_assert_int_eq(apf_host_vcpu_fault(g_h, 0, 0x20000, GS_USER), APF_FAULT_SYNC);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_NP, 0), 0);
}
END_TEST

START_TEST(test_en_on_before_int_is_refused)
{
    struct snap before;
    snap_take(0, &before);
    ck_assert_int_eq(wrmsr(0, MSR_EN, FAKE_AREA(0) | EN_ON), APF_EINVAL);
    ck_assert_unchanged(0, &before);
    ck_assert_int_eq(wrmsr(0, MSR_EN, FAKE_AREA(0) | EN_ON | APF_EN_SEND_ALWAYS), APF_EINVAL);
    ck_assert_unchanged(0, &before);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 0), 0);
    ck_assert_nothing_queued(0);
    /* After a refused INT (vector < 32) it is still refused. */
    ck_assert_int_eq(wrmsr(0, MSR_INT, 2), APF_EINVAL);
    ck_assert_int_eq(wrmsr(0, MSR_EN, FAKE_AREA(0) | EN_ON), APF_EINVAL);
    ck_assert_unchanged(0, &before);
    /* INT then EN works. */
    ck_assert_int_eq(wrmsr(0, MSR_INT, VEC), 0);
    ck_assert_int_eq(wrmsr(0, MSR_EN, FAKE_AREA(0) | EN_ON), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 0), 1);
}
END_TEST

START_TEST(test_en_with_area_outside_guest_memory_is_refused_and_keeps_old_value)
{
    static const uint64_t far[] = {FAKE_MEM_SIZE, FAKE_MEM_SIZE + 0x1000u, 0xffffffc0u,
                                   1ull << 32, FAR_AREA, ~0x3full};
    /* Off (vector set): EN stays 0. */
    ck_assert_int_eq(wrmsr(0, MSR_INT, VEC), 0);
    struct snap before;
    snap_take(0, &before);
    for (size_t i = 0; i < sizeof(far) / sizeof(far[0]); i++) {
        ck_assert_int_eq(wrmsr(0, MSR_EN, far[i] | EN_ON), APF_EFAULT);
        ck_assert_unchanged(0, &before);
    }
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), 0);
    ck_assert_nothing_queued(0);

    /* On: the old value and the old area stay in force (the 2025 KVM bug stored first). */
    guest_apf_on(1);
    snap_take(1, &before);
    ck_assert_int_eq(wrmsr(1, MSR_EN, 0x7ffff000000ull | 0x9u), APF_EFAULT);
    ck_assert_unchanged(1, &before);
    ck_assert_uint_eq(rdmsr_ok(1, MSR_EN), FAKE_AREA(1) | EN_ON);
    for (size_t i = 0; i < sizeof(far) / sizeof(far[0]); i++) {
        ck_assert_int_eq(wrmsr(1, MSR_EN, far[i] | EN_ON), APF_EFAULT);
        ck_assert_unchanged(1, &before);
    }
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 1), 1);
    ck_assert_nothing_queued(1);
    /* Still fully working at the old area. */
    uint32_t tok = fault_async(1, 0x30000);
    ck_assert_int_eq(apf_host_complete(g_h, 1, tok, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 1, GS_USER), 1);
    ck_assert_uint_eq(fake_area_token(&g_f, 1), tok);
}
END_TEST

START_TEST(test_en_area_at_end_of_guest_memory_is_accepted)
{
    uint64_t last = FAKE_MEM_SIZE - APF_AREA_SIZE; /* 0xfffc0: the last whole area */
    ck_assert_int_eq(wrmsr(0, MSR_INT, VEC), 0);
    ck_assert_int_eq(wrmsr(0, MSR_EN, last | EN_ON), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), last | EN_ON);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    ck_assert_uint_eq(mem_u32(last + 4), APF_TOKEN_WAKE_ALL);
}
END_TEST

START_TEST(test_en_area_address_is_value_without_low_6_bits)
{
    struct apf_host_vcpu_state st;
    ck_assert_int_eq(wrmsr(0, MSR_INT, VEC), 0);

    ck_assert_int_eq(wrmsr(0, MSR_EN, 0x2000u | EN_ON), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), 0x2009u);
    ck_assert_int_eq(apf_host_vcpu_save(g_h, 0, &st), 0);
    ck_assert_uint_eq(st.enabled, 1);
    ck_assert_uint_eq(st.area_gpa, 0x2000u);
    ck_assert_uint_eq(st.flags, 0x9u);
    /* The wake-all lands at area + 4 and nowhere else. */
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    ck_assert_uint_eq(mem_u32(0x2000u), 0);
    ck_assert_uint_eq(mem_u32(0x2004u), APF_TOKEN_WAKE_ALL);
    ck_assert_uint_eq(mem_u32(0x2008u), 0);

    /* With SEND_ALWAYS too, the address is the value without its low 6 bits. */
    ck_assert_int_eq(wrmsr(0, MSR_EN, 0x3040u | EN_ON | APF_EN_SEND_ALWAYS), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), 0x304bu);
    ck_assert_int_eq(apf_host_vcpu_save(g_h, 0, &st), 0);
    ck_assert_uint_eq(st.area_gpa, 0x3040u);
    ck_assert_uint_eq(st.flags, 0xbu);
    memset(g_f.mem + 0x2004u, 0, 4); /* the guest consumes the first wake-all and ACKs */
    ck_assert_int_eq(wrmsr(0, MSR_ACK, 1), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    ck_assert_uint_eq(mem_u32(0x3044u), APF_TOKEN_WAKE_ALL);
}
END_TEST

START_TEST(test_en_delivery_as_pf_vmexit_needs_cpuid_bit_10)
{
    uint64_t val = FAKE_AREA(0) | EN_ON | APF_EN_DELIVERY_AS_PF_VMEXIT; /* ...0x0d */
    ck_assert_int_eq(wrmsr(0, MSR_INT, VEC), 0);
    struct snap before;
    snap_take(0, &before);
    ck_assert_int_eq(wrmsr(0, MSR_EN, val), APF_EINVAL);
    ck_assert_unchanged(0, &before);
    /* Refused in the "off" form too (bit 2 is checked whatever bit 3 says). */
    ck_assert_int_eq(wrmsr(0, MSR_EN, FAKE_AREA(0) | APF_EN_DELIVERY_AS_PF_VMEXIT), APF_EINVAL);
    ck_assert_unchanged(0, &before);
    ck_assert_nothing_queued(0);
    /* Refused while on, too, and APF stays on. */
    guest_apf_on(1);
    snap_take(1, &before);
    ck_assert_int_eq(wrmsr(1, MSR_EN, FAKE_AREA(1) | EN_ON | APF_EN_DELIVERY_AS_PF_VMEXIT),
                     APF_EINVAL);
    ck_assert_unchanged(1, &before);
    ck_assert_nothing_queued(1);

    /* Offered: accepted, and in force. */
    make_features(FEAT_PF | FEAT_INT | FEAT_VMEXIT, 0);
    ck_assert_int_eq(wrmsr(0, MSR_INT, VEC), 0);
    ck_assert_int_eq(wrmsr(0, MSR_EN, val), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), val);
    struct apf_host_vcpu_state st;
    ck_assert_int_eq(apf_host_vcpu_save(g_h, 0, &st), 0);
    ck_assert_uint_eq(st.enabled, 1);
    ck_assert_uint_eq(st.flags, 0xdu);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
}
END_TEST

START_TEST(test_en_delivery_as_int_needs_cpuid_bit_14)
{
    make_features(FEAT_PF, 0);
    struct snap before;
    snap_take(0, &before);
    ck_assert_int_eq(wrmsr(0, MSR_EN, FAKE_AREA(0) | EN_ON), APF_EINVAL);
    ck_assert_unchanged(0, &before);
    ck_assert_int_eq(wrmsr(0, MSR_EN, FAKE_AREA(0) | APF_EN_DELIVERY_AS_INT), APF_EINVAL);
    ck_assert_unchanged(0, &before);
    ck_assert_nothing_queued(0);
    /* Bit 0 alone (off) is fine, and 0 too. */
    ck_assert_int_eq(wrmsr(0, MSR_EN, FAKE_AREA(0) | APF_EN_ENABLED), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), FAKE_AREA(0) | APF_EN_ENABLED);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 0), 0);
    ck_assert_int_eq(wrmsr(0, MSR_EN, 0), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), 0);
    ck_assert_nothing_queued(0);
}
END_TEST

START_TEST(test_no_lapic_in_kernel_accepts_only_en_zero)
{
    static const uint64_t refused[] = {FAKE_AREA(0) | 0x9u, FAKE_AREA(0) | 0x1u,
                                       FAKE_AREA(0) | 0x8u, FAKE_AREA(0) | 0x2u, FAKE_AREA(0),
                                       0x1u, 0x9u};
    make_features(0, 1);
    ck_assert_int_eq(wrmsr(0, MSR_INT, VEC), 0);
    struct snap before;
    snap_take(0, &before);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        ck_assert_int_eq(wrmsr(0, MSR_EN, refused[i]), APF_EINVAL);
        ck_assert_unchanged(0, &before);
    }
    ck_assert_nothing_queued(0);
    ck_assert_int_eq(wrmsr(0, MSR_EN, 0), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 0), 0);
}
END_TEST

START_TEST(test_turning_on_queues_exactly_one_wake_all)
{
    ck_assert_int_eq(wrmsr(0, MSR_INT, 0xec), 0);
    ck_assert_int_eq(wrmsr(0, MSR_EN, FAKE_AREA(0) | 0x1u | 0x8u), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), FAKE_AREA(0) | 0x9u);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 0), 1);
    /* Nothing is injected until the next entry. */
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 0);

    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), 0xffffffffu);
    ck_assert_uint_eq(fake_area_flags(&g_f, 0), 0); /* x86: "page ready" leaves flags alone */
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 1);
    ck_assert_uint_eq(fake_nth(&g_f, FAKE_READY, 0, 0)->value, 0xec);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_NP, 0), 0);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 1), 0);

    /* Exactly one: after the guest consumes and ACKs, nothing more comes. */
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 0);
    fake_area_write(&g_f, 0, 0, 0);
    ck_assert_int_eq(wrmsr(0, MSR_ACK, 1), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 0);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 1);
    struct apf_host_vcpu_stats s = stats(0);
    ck_assert_uint_eq(s.wake_all_delivered, 1);
    ck_assert_uint_eq(s.ready_delivered, 0);
    ck_assert_uint_eq(s.acks, 1);
    ck_assert_uint_eq(s.acks_spurious, 0);
}
END_TEST

START_TEST(test_en_rewrite_while_on_drops_work_and_queues_new_wake_all)
{
    guest_apf_on(0);
    uint32_t tok = fault_async(0, 0x40000);
    ck_assert_int_eq(wrmsr(0, MSR_EN, FAKE_AREA(0) | EN_ON), 0);
    ck_assert_uint_eq(stats(0).outstanding, 1); /* still running in the embedder */
    ck_assert_int_eq(apf_host_complete(g_h, 0, tok, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), APF_TOKEN_WAKE_ALL);
    fake_area_write(&g_f, 0, 0, 0);
    ck_assert_int_eq(wrmsr(0, MSR_ACK, 1), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 0);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 1);
    ck_assert_uint_eq(stats(0).outstanding, 0);
}
END_TEST

/* ---- ASYNC_PF_ACK ------------------------------------------------------------------------- */

START_TEST(test_ack_releases_throttle_only_with_token_slot_cleared)
{
    guest_apf_on(0);
    uint32_t ta = fault_async(0, 0x10000);
    uint32_t tb = fault_async(0, 0x11000);
    uint32_t tc = fault_async(0, 0x12000);
    ck_assert_uint_ne(ta, tb);
    ck_assert_uint_ne(tb, tc);
    ck_assert_int_eq(apf_host_complete(g_h, 0, ta, 0), 0);
    ck_assert_int_eq(apf_host_complete(g_h, 0, tb, 0), 0);
    ck_assert_int_eq(apf_host_complete(g_h, 0, tc, 0), 0);

    /* First ready goes out at once. */
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), ta);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 1);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 0);

    /* Slot cleared but no ACK: held. */
    fake_area_write(&g_f, 0, 0, 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 0);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), 0);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 1);
    /* ACK: released. */
    ck_assert_int_eq(wrmsr(0, MSR_ACK, 1), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), tb);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 2);

    /* ACK but slot not cleared: held, and the unread token is not overwritten. */
    ck_assert_int_eq(wrmsr(0, MSR_ACK, 1), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 0);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), tb);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 2);
    /* Slot cleared: released. */
    fake_area_write(&g_f, 0, 0, 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), tc);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 3);
    for (size_t i = 0; i < 3; i++)
        ck_assert_uint_eq(fake_nth(&g_f, FAKE_READY, 0, i)->value, VEC);

    fake_area_write(&g_f, 0, 0, 0);
    ck_assert_int_eq(wrmsr(0, MSR_ACK, 1), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 0);
    struct apf_host_vcpu_stats s = stats(0);
    ck_assert_uint_eq(s.ready_delivered, 3);
    ck_assert_uint_eq(s.acks, 4); /* including the wake-all's */
    ck_assert_uint_eq(s.acks_spurious, 0);
    ck_assert_uint_eq(s.outstanding, 0);
}
END_TEST

START_TEST(test_ack_with_nothing_pending_is_counted_noop)
{
    /* Before APF was ever on. */
    struct snap before;
    snap_take(0, &before);
    ck_assert_int_eq(wrmsr(0, MSR_ACK, 1), 0);
    ck_assert_unchanged(0, &before);
    struct apf_host_vcpu_stats s = stats(0);
    ck_assert_uint_eq(s.acks, 1);
    ck_assert_uint_eq(s.acks_spurious, 1);

    /* APF on, wake-all consumed and ACKed: an ACK storm changes nothing. */
    guest_apf_on(0);
    snap_take(0, &before);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(wrmsr(0, MSR_ACK, 1), 0);
        ck_assert_unchanged(0, &before);
    }
    s = stats(0);
    ck_assert_uint_eq(s.acks, 7);
    ck_assert_uint_eq(s.acks_spurious, 6);
    ck_assert_nothing_queued(0);
    /* And the throttle still works afterwards. */
    uint32_t ta = fault_async(0, 0x10000);
    uint32_t tb = fault_async(0, 0x11000);
    ck_assert_int_eq(apf_host_complete(g_h, 0, ta, 0), 0);
    ck_assert_int_eq(apf_host_complete(g_h, 0, tb, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    fake_area_write(&g_f, 0, 0, 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 0);
}
END_TEST

START_TEST(test_ack_with_bit0_clear_does_nothing)
{
    static const uint64_t not_acks[] = {0, 2, 0x100, 0xfffffffffffffffeull};
    guest_apf_on(0);
    uint32_t ta = fault_async(0, 0x10000);
    uint32_t tb = fault_async(0, 0x11000);
    ck_assert_int_eq(apf_host_complete(g_h, 0, ta, 0), 0);
    ck_assert_int_eq(apf_host_complete(g_h, 0, tb, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), ta);
    fake_area_write(&g_f, 0, 0, 0);
    struct apf_host_vcpu_stats s0 = stats(0);
    for (size_t i = 0; i < sizeof(not_acks) / sizeof(not_acks[0]); i++) {
        ck_assert_int_eq(wrmsr(0, MSR_ACK, not_acks[i]), 0);
        /* Still throttled. */
        ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 0);
        ck_assert_uint_eq(fake_area_token(&g_f, 0), 0);
    }
    struct apf_host_vcpu_stats s1 = stats(0);
    ck_assert_uint_eq(s1.acks, s0.acks);
    ck_assert_uint_eq(s1.acks_spurious, s0.acks_spurious);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 1);
    /* Other bits are ignored when bit 0 is set. */
    ck_assert_int_eq(wrmsr(0, MSR_ACK, 0xffffffffffffffffull), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), tb);
    ck_assert_uint_eq(stats(0).acks, s0.acks + 1);
    ck_assert_uint_eq(stats(0).acks_spurious, s0.acks_spurious);
}
END_TEST

START_TEST(test_rdmsr_ack_reads_zero)
{
    ck_assert_uint_eq(rdmsr_ok(0, MSR_ACK), 0);
    guest_apf_on(0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_ACK), 0);
    ck_assert_int_eq(wrmsr(0, MSR_ACK, 1), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_ACK), 0);
    ck_assert_int_eq(wrmsr(0, MSR_ACK, ~0ull), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_ACK), 0);
}
END_TEST

/* ---- disable, reset ----------------------------------------------------------------------- */

START_TEST(test_en_zero_drops_outstanding_faults)
{
    guest_apf_on(0);
    uint32_t ta = fault_async(0, 0x10000);
    uint32_t tb = fault_async(0, 0x11000);
    uint32_t tc = fault_async(0, 0x12000);
    /* One finishes before the guest turns APF off (queued, not yet seen by the vCPU). */
    ck_assert_int_eq(apf_host_complete(g_h, 0, ta, 0), 0);
    ck_assert_uint_eq(stats(0).outstanding, 3);

    ck_assert_int_eq(wrmsr(0, MSR_EN, 0), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 0), 0);

    /* The rest finish later: accepted, harmless. */
    ck_assert_int_eq(apf_host_complete(g_h, 0, tb, 0), 0);
    ck_assert_int_eq(apf_host_complete(g_h, 0, tc, APF_EIO), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 0);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 0);
    struct apf_host_vcpu_stats s = stats(0);
    ck_assert_uint_eq(s.outstanding, 0);
    ck_assert_uint_eq(s.ready_queue, 0);
    ck_assert_uint_eq(s.completions, 3);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), 0);

    /* Turning APF on again brings only the wake-all, never the dropped tokens. */
    ck_assert_int_eq(wrmsr(0, MSR_EN, FAKE_AREA(0) | EN_ON), 0);
    for (int i = 0; i < 4; i++) {
        int r = apf_host_vcpu_before_entry(g_h, 0, GS_USER);
        ck_assert_int_eq(r, i == 0 ? 1 : 0);
        if (r) {
            ck_assert_uint_eq(fake_area_token(&g_f, 0), APF_TOKEN_WAKE_ALL);
            fake_area_write(&g_f, 0, 0, 0);
            ck_assert_int_eq(wrmsr(0, MSR_ACK, 1), 0);
        }
    }
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 1);
    /* A fresh fault after the re-enable works normally. */
    uint32_t td = fault_async(0, 0x10000);
    ck_assert_int_eq(apf_host_complete(g_h, 0, td, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), td);
}
END_TEST

START_TEST(test_vcpu_reset_clears_both_msrs_and_disables)
{
    guest_apf_on(0);
    guest_apf_on(1);
    uint32_t ta = fault_async(0, 0x10000);
    ck_assert_int_eq(apf_host_kvm_x86_vcpu_reset(g_fe, 0), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_INT), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 0), 0);
    struct apf_host_vcpu_state st;
    ck_assert_int_eq(apf_host_vcpu_save(g_h, 0, &st), 0);
    ck_assert_uint_eq(st.enabled, 0);
    ck_assert_uint_eq(st.area_gpa, 0);
    ck_assert_uint_eq(st.flags, 0);
    ck_assert_uint_eq(st.vector, 0);
    /* The outstanding fault is dropped. */
    ck_assert_int_eq(apf_host_complete(g_h, 0, ta, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 0);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 0);
    ck_assert_uint_eq(stats(0).outstanding, 0);
    /* The vector is forgotten: the guest must write INT again. */
    ck_assert_int_eq(wrmsr(0, MSR_EN, FAKE_AREA(0) | EN_ON), APF_EINVAL);
    /* The other vCPU is untouched. */
    ck_assert_uint_eq(rdmsr_ok(1, MSR_EN), FAKE_AREA(1) | EN_ON);
    ck_assert_uint_eq(rdmsr_ok(1, MSR_INT), VEC);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 1), 1);
    /* Resetting a reset vCPU is fine. */
    ck_assert_int_eq(apf_host_kvm_x86_vcpu_reset(g_fe, 0), 0);
}
END_TEST

/* ---- migration restore -------------------------------------------------------------------- */

START_TEST(test_restore_applies_int_then_en_and_queues_wake_all)
{
    ck_assert_int_eq(apf_host_kvm_x86_restore(g_fe, 0, 0xec, FAKE_AREA(0) | EN_ON), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_INT), 0xec);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), FAKE_AREA(0) | EN_ON);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 0), 1);
    struct apf_host_vcpu_state st;
    ck_assert_int_eq(apf_host_vcpu_save(g_h, 0, &st), 0);
    ck_assert_uint_eq(st.area_gpa, FAKE_AREA(0));
    ck_assert_uint_eq(st.flags, 0x9u);
    ck_assert_uint_eq(st.vector, 0xec);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), APF_TOKEN_WAKE_ALL);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 1);
    ck_assert_uint_eq(fake_nth(&g_f, FAKE_READY, 0, 0)->value, 0xec);

    /* Restoring over a running vCPU: its work is dropped, one new wake-all. */
    fake_area_write(&g_f, 0, 0, 0);
    ck_assert_int_eq(wrmsr(0, MSR_ACK, 1), 0);
    uint32_t tok = fault_async(0, 0x10000);
    ck_assert_int_eq(apf_host_kvm_x86_restore(g_fe, 0, 0x50, FAKE_AREA(0) | EN_ON), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_INT), 0x50);
    ck_assert_int_eq(apf_host_complete(g_h, 0, tok, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), APF_TOKEN_WAKE_ALL);
    ck_assert_uint_eq(fake_nth(&g_f, FAKE_READY, 0, 1)->value, 0x50);
    fake_area_write(&g_f, 0, 0, 0);
    ck_assert_int_eq(wrmsr(0, MSR_ACK, 1), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 0);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 2);

    /* Restoring "off" values: MSRs read back, APF off, nothing queued. */
    ck_assert_int_eq(apf_host_kvm_x86_restore(g_fe, 1, 0, 0), 0);
    ck_assert_uint_eq(rdmsr_ok(1, MSR_INT), 0);
    ck_assert_uint_eq(rdmsr_ok(1, MSR_EN), 0);
    ck_assert_int_eq(apf_host_kvm_x86_restore(g_fe, 1, 0x40, FAKE_AREA(1) | APF_EN_ENABLED), 0);
    ck_assert_uint_eq(rdmsr_ok(1, MSR_INT), 0x40);
    ck_assert_uint_eq(rdmsr_ok(1, MSR_EN), FAKE_AREA(1) | APF_EN_ENABLED);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 1), 0);
    ck_assert_nothing_queued(1);
}
END_TEST

START_TEST(test_restore_with_invalid_values_changes_nothing)
{
    struct bad {
        uint64_t msr_int, msr_en;
        int err;
    };
    static const struct bad bad[] = {
        {0xf0, FAKE_AREA(0) | EN_ON | 0x10u, APF_EINVAL}, /* EN reserved bit 4 */
        {0xf0, FAKE_AREA(0) | EN_ON | 0x20u, APF_EINVAL}, /* EN reserved bit 5 */
        {0xf0, 0x10u, APF_EINVAL},                        /* reserved bit, "off" form */
        {0x1f, FAKE_AREA(0) | EN_ON, APF_EINVAL},         /* INT below 32 */
        {0x01, 0, APF_EINVAL},                            /* INT below 32, APF off */
        {0x1ec, FAKE_AREA(0) | EN_ON, APF_EINVAL},        /* INT bits above 7 */
        {0, FAKE_AREA(0) | EN_ON, APF_EINVAL},            /* on without a vector */
        {0xf0, FAKE_AREA(0) | EN_ON | APF_EN_DELIVERY_AS_PF_VMEXIT, APF_EINVAL}, /* no bit 10 */
        {0xf0, FAR_AREA | EN_ON, APF_EFAULT},             /* area outside guest memory */
    };
    /* From off (never written). */
    struct snap before;
    snap_take(0, &before);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(apf_host_kvm_x86_restore(g_fe, 0, bad[i].msr_int, bad[i].msr_en),
                         bad[i].err);
        ck_assert_unchanged(0, &before);
    }
    ck_assert_nothing_queued(0);
    /* From on. */
    guest_apf_on(1);
    uint32_t tok = fault_async(1, 0x10000);
    snap_take(1, &before);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(apf_host_kvm_x86_restore(g_fe, 1, bad[i].msr_int, bad[i].msr_en),
                         bad[i].err);
        ck_assert_unchanged(1, &before);
    }
    ck_assert_uint_eq(rdmsr_ok(1, MSR_INT), VEC);
    ck_assert_uint_eq(rdmsr_ok(1, MSR_EN), FAKE_AREA(1) | EN_ON);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 1), 1);
    ck_assert_nothing_queued(1);
    /* The outstanding fault survived the refused restores. */
    ck_assert_uint_eq(stats(1).outstanding, 1);
    ck_assert_int_eq(apf_host_complete(g_h, 1, tok, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 1, GS_USER), 1);
    ck_assert_uint_eq(fake_area_token(&g_f, 1), tok);
}
END_TEST

/* ---- ids and ABI -------------------------------------------------------------------------- */

START_TEST(test_unknown_vcpu_is_enodev)
{
    static const uint32_t ids[] = {N_VCPUS, N_VCPUS + 1, 4095, 4096, 0xffffffffu};
    static const uint32_t msrs[] = {MSR_EN, MSR_INT, MSR_ACK};
    guest_apf_on(0);
    struct snap before0, before1;
    snap_take(0, &before0);
    snap_take(1, &before1);
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        for (size_t m = 0; m < 3; m++) {
            ck_assert_int_eq(wrmsr(ids[i], msrs[m], 0), APF_ENODEV);
            ck_assert_int_eq(wrmsr(ids[i], msrs[m], 1), APF_ENODEV);
            uint64_t v = POISON64;
            ck_assert_int_eq(apf_host_kvm_x86_rdmsr(g_fe, ids[i], msrs[m], &v), APF_ENODEV);
            ck_assert_uint_eq(v, POISON64);
        }
        ck_assert_int_eq(apf_host_kvm_x86_vcpu_reset(g_fe, ids[i]), APF_ENODEV);
        ck_assert_int_eq(apf_host_kvm_x86_restore(g_fe, ids[i], VEC, FAKE_AREA(0) | EN_ON),
                         APF_ENODEV);
    }
    ck_assert_unchanged(0, &before0);
    ck_assert_unchanged(1, &before1);
    ck_assert_nothing_queued(0);
    ck_assert_nothing_queued(1);
}
END_TEST

START_TEST(test_create_over_arm64_engine_is_refused)
{
    struct fake_vmm *f2 = malloc(sizeof(*f2));
    ck_assert_ptr_nonnull(f2);
    fake_init(f2);
    struct apf_host_config c = fake_config(f2, 1, 0, &apf_host_transport_kvm_arm64);
    struct apf_host *h2 = NULL;
    ck_assert_int_eq(apf_host_create(&c, &h2), 0);
    struct apf_host_kvm_x86 *fe2 = NULL;
    ck_assert_int_eq(apf_host_kvm_x86_create(h2, NULL, &fe2), APF_EINVAL);
    ck_assert_ptr_null(fe2);
    struct apf_host_kvm_x86_config x = {FEAT_PF | FEAT_INT, 0};
    ck_assert_int_eq(apf_host_kvm_x86_create(h2, &x, &fe2), APF_EINVAL);
    ck_assert_ptr_null(fe2);
    /* NULL engine or NULL out. */
    ck_assert_int_eq(apf_host_kvm_x86_create(NULL, NULL, &fe2), APF_EINVAL);
    ck_assert_ptr_null(fe2);
    ck_assert_int_eq(apf_host_kvm_x86_create(g_h, NULL, NULL), APF_EINVAL);
    apf_host_kvm_x86_destroy(NULL); /* no-op */
    apf_host_destroy(h2);
    fake_fini(f2);
    free(f2);
}
END_TEST

/* An allocator that poisons every block it frees and keeps it (quarantine) until the test
 * ends: reading an engine after its destroy reads 0xdb bytes (a wild pointer), so a
 * frontend that still needs its engine crashes here even without AddressSanitizer. */
static long g_poison_live;
static void *g_quarantine[16];
static int g_n_quarantine;
static void quarantine_release(void)
{
    while (g_n_quarantine > 0)
        free(g_quarantine[--g_n_quarantine]);
}
static void *poison_alloc(void *ctx, size_t size, size_t align)
{
    (void)ctx;
    void *p = aligned_alloc(align < 64 ? 64 : align, (size + 63) & ~(size_t)63);
    if (p)
        g_poison_live++;
    return p;
}
static void poison_free(void *ctx, void *p, size_t size)
{
    (void)ctx;
    memset(p, 0xdb, size);
    if (g_n_quarantine < 16)
        g_quarantine[g_n_quarantine++] = p;
    else
        free(p);
    g_poison_live--;
}
static const struct apf_allocator g_poison = {poison_alloc, poison_free, NULL};

/* Issue 13 finding 8: the frontend frees itself without its engine (destroy order free). */
START_TEST(test_frontend_destroy_after_engine_destroy)
{
    teardown();
    fake_init(&g_f);
    struct apf_host_config c = fake_config(&g_f, N_VCPUS, 0, &apf_host_transport_kvm_x86);
    c.alloc = &g_poison;
    struct apf_host *h;
    struct apf_host_kvm_x86 *fe;
    ck_assert_int_eq(apf_host_create(&c, &h), 0);
    ck_assert_int_eq(apf_host_kvm_x86_create(h, NULL, &fe), 0);
    apf_host_destroy(h); /* the engine first */
    apf_host_kvm_x86_destroy(fe);
    ck_assert_int_eq(g_poison_live, 0);
    quarantine_release();
    fake_fini(&g_f);
}
END_TEST

/* Issue 13 finding 9: rdmsr reads the engine, whichever entry point changed it: a VMM that
 * saves with rdmsr after an engine-level disable must not turn APF back on at restore. */
START_TEST(test_rdmsr_follows_engine_level_disable_reset_restore)
{
    guest_apf_on(0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), FAKE_AREA(0) | EN_ON);
    ck_assert_int_eq(apf_host_vcpu_disable(g_h, 0), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_INT), VEC);
    /* The migration the VMM does with those values keeps APF off on the destination. */
    ck_assert_int_eq(apf_host_kvm_x86_restore(g_fe, 1, rdmsr_ok(0, MSR_INT), rdmsr_ok(0, MSR_EN)),
                     0);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 1), 0);
    /* An engine-level restore turns it on: rdmsr says so, with its vector. */
    struct apf_host_vcpu_state st;
    ck_assert_int_eq(apf_host_vcpu_save(g_h, 0, &st), 0);
    st.enabled = 1;
    st.area_gpa = FAKE_AREA(0);
    st.flags = (uint32_t)EN_ON;
    st.vector = 0x50;
    ck_assert_int_eq(apf_host_vcpu_restore(g_h, 0, &st), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), FAKE_AREA(0) | EN_ON);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_INT), 0x50);
    /* An engine-level reset: both read 0, as after the frontend's reset. */
    ck_assert_int_eq(apf_host_vcpu_reset(g_h, 0), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_INT), 0);
    /* A value that leaves APF off still reads back as the guest wrote it. */
    ck_assert_int_eq(wrmsr(0, MSR_INT, VEC), 0);
    ck_assert_int_eq(wrmsr(0, MSR_EN, FAKE_AREA(0) | APF_EN_ENABLED), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), FAKE_AREA(0) | APF_EN_ENABLED);
    ck_assert_int_eq(wrmsr(0, MSR_EN, FAKE_AREA(0) | EN_ON), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), FAKE_AREA(0) | EN_ON);
    ck_assert_int_eq(apf_host_vcpu_disable(g_h, 0), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), 0); /* not the off value written before the on */
}
END_TEST

/* Issue 13 finding 10: restoring never-written MSRs (both 0) is accepted whatever CPUID
 * offers; anything else still needs the feature. */
START_TEST(test_restore_of_all_zero_msrs_is_accepted_without_the_features)
{
    make_features(FEAT_VMEXIT, 0); /* neither ASYNC_PF nor ASYNC_PF_INT */
    ck_assert_int_eq(apf_host_kvm_x86_restore(g_fe, 0, 0, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 0), 0);
    ck_assert_int_eq(apf_host_kvm_x86_restore(g_fe, 0, 0, FAKE_AREA(0) | EN_ON), APF_EOPNOTSUPP);
    ck_assert_int_eq(apf_host_kvm_x86_restore(g_fe, 0, 0, FAKE_AREA(0)), APF_EOPNOTSUPP);
    ck_assert_int_eq(apf_host_kvm_x86_restore(g_fe, 0, VEC, 0), APF_EOPNOTSUPP);
    /* With the features, all-zero turns a vCPU that was on off (a reset). */
    make_features(FEAT_PF | FEAT_INT, 0);
    guest_apf_on(0);
    ck_assert_int_eq(apf_host_kvm_x86_restore(g_fe, 0, 0, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 0), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_INT), 0);
}
END_TEST

/* ---- KVM's 2024-2026 fixes, as regression tests (issue 13 item 4) ------------------------- */

/* A paging toggle (CR0.PG off, SMM) keeps the completions: "page ready" waits while the
 * guest cannot take it and is delivered once, when it can (KVM once cleared the queue). */
START_TEST(test_kvm_fix_completions_survive_a_paging_toggle)
{
    guest_apf_on(0);
    uint32_t tok = fault_async(0, 0x10000);
    ck_assert_int_eq(apf_host_complete(g_h, 0, tok, 0), 0);
    /* SMM / real mode: no paging, and the interrupt controller unusable meanwhile */
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, APF_GS_IRQ_ON), 0);
    ck_assert_int_eq(apf_host_vcpu_fault(g_h, 0, 0x20000, APF_GS_USER | APF_GS_IRQ_ON),
                     APF_FAULT_HALT);
    ck_assert_uint_eq(stats(0).completions_dropped, 0);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), 0);
    /* paging back: exactly this "page ready", once */
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), tok);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 1);
    ck_assert_uint_eq(stats(0).completions_dropped, 0);
}
END_TEST

/* A guest whose privilege level the VMM cannot see (protected guests: SEV-ES, TDX) is
 * reported without APF_GS_USER: never "not present" there unless SEND_ALWAYS. */
START_TEST(test_kvm_fix_no_not_present_at_unknown_privilege_without_send_always)
{
    guest_apf_on(0);
    uint32_t unknown = APF_GS_IRQ_ON | APF_GS_PAGING | APF_GS_IRQCHIP_ON; /* no USER bit */
    int r = apf_host_vcpu_fault(g_h, 0, 0x10000, unknown);
    ck_assert_int_ne(r, APF_FAULT_ASYNC);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_NP, 0), 0);
    ck_assert_uint_eq(fake_area_flags(&g_f, 0), 0);
    /* with SEND_ALWAYS the guest asked for it in kernel mode too */
    ck_assert_int_eq(wrmsr(1, MSR_INT, VEC), 0);
    ck_assert_int_eq(wrmsr(1, MSR_EN, FAKE_AREA(1) | EN_ON | APF_EN_SEND_ALWAYS), 0);
    ck_assert_int_eq(apf_host_vcpu_fault(g_h, 1, 0x30000, unknown), APF_FAULT_ASYNC);
}
END_TEST

/* The area address is validated before anything is stored: a refused EN leaves the MSR,
 * the engine and guest memory as they were (KVM 2025 stored first). */
START_TEST(test_kvm_fix_area_validated_before_anything_is_stored)
{
    guest_apf_on(0);
    uint64_t before = rdmsr_ok(0, MSR_EN);
    ck_assert_int_lt(wrmsr(0, MSR_EN, FAR_AREA | EN_ON), 0);
    ck_assert_uint_eq(rdmsr_ok(0, MSR_EN), before);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 0), 1);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 0); /* no wake-all for a refused on */
    ck_assert_int_lt(wrmsr(1, MSR_EN, FAR_AREA | EN_ON), 0); /* and on a vCPU that was off */
    ck_assert_uint_eq(rdmsr_ok(1, MSR_EN), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 1), 0);
}
END_TEST

/* Work in flight outlives the vCPU's teardown: after a reset (and a destroy of the
 * frontend) the worker's completion is taken and discarded, nothing is delivered, nothing
 * leaks, and the engine waits for the worker before it is freed. */
START_TEST(test_kvm_fix_worker_outlives_vcpu_teardown)
{
    teardown();
    fake_init(&g_f);
    struct counting_alloc ca;
    counting_alloc_init(&ca, 0);
    struct apf_host_config c = fake_config(&g_f, N_VCPUS, 1, &apf_host_transport_kvm_x86);
    c.alloc = &ca.a;
    atomic_store(&g_f.gate_closed, 1); /* the worker blocks inside resolve */
    ck_assert_int_eq(apf_host_create(&c, &g_h), 0);
    ck_assert_int_eq(apf_host_kvm_x86_create(g_h, NULL, &g_fe), 0);
    g_live = 1;
    ck_assert_int_eq(wrmsr(0, MSR_INT, VEC), 0);
    ck_assert_int_eq(wrmsr(0, MSR_EN, FAKE_AREA(0) | EN_ON), 0);
    ck_assert_int_eq(apf_host_vcpu_fault(g_h, 0, 0x10000, GS_USER), APF_FAULT_ASYNC);
    while (atomic_load(&g_f.resolves_started) == 0)
        ;
    ck_assert_int_eq(apf_host_kvm_x86_vcpu_reset(g_fe, 0), 0); /* teardown, work in flight */
    apf_host_kvm_x86_destroy(g_fe);
    g_fe = NULL;
    atomic_store(&g_f.gate_closed, 0); /* the worker finishes after the teardown */
    for (int i = 0; i < 20000 && stats(0).outstanding; i++) {
        apf_host_vcpu_before_entry(g_h, 0, GS_USER);
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    ck_assert_uint_eq(stats(0).outstanding, 0);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 0);
    apf_host_destroy(g_h);
    g_h = NULL;
    g_live = 0;
    ck_assert_int_eq(atomic_load(&ca.live_blocks), 0);
    fake_fini(&g_f);
}
END_TEST

static Suite *kvm_x86_suite(void)
{
    Suite *s = suite_create("kvm_x86");

    TCase *tc = tcase_create("cpuid");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_cpuid_signature_leaf_is_kvmkvmkvm);
    tcase_add_test(tc, test_cpuid_features_leaf_defaults_to_async_pf_and_async_pf_int);
    tcase_add_test(tc, test_cpuid_features_leaf_returns_configured_features);
    tcase_add_test(tc, test_cpuid_other_leaves_are_not_answered_and_regs_untouched);
    suite_add_tcase(s, tc);

    tc = tcase_create("hardening");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_frontend_destroy_after_engine_destroy);
    tcase_add_test(tc, test_rdmsr_follows_engine_level_disable_reset_restore);
    tcase_add_test(tc, test_restore_of_all_zero_msrs_is_accepted_without_the_features);
    tcase_add_test(tc, test_kvm_fix_completions_survive_a_paging_toggle);
    tcase_add_test(tc, test_kvm_fix_no_not_present_at_unknown_privilege_without_send_always);
    tcase_add_test(tc, test_kvm_fix_area_validated_before_anything_is_stored);
    tcase_add_test(tc, test_kvm_fix_worker_outlives_vcpu_teardown);
    suite_add_tcase(s, tc);

    tc = tcase_create("msr_int");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_other_msrs_are_not_mine_for_wrmsr_and_rdmsr);
    tcase_add_test(tc, test_int_with_bits_above_7_is_refused);
    tcase_add_test(tc, test_int_vector_below_32_is_refused);
    tcase_add_test(tc, test_int_vectors_32_to_255_are_accepted_and_read_back);
    tcase_add_test(tc, test_int_and_ack_without_async_pf_int_feature_are_unsupported);
    suite_add_tcase(s, tc);

    tc = tcase_create("msr_en");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_en_with_reserved_bit_is_refused);
    tcase_add_test(tc, test_en_bit0_without_bit3_means_off);
    tcase_add_test(tc, test_en_on_before_int_is_refused);
    tcase_add_test(tc, test_en_with_area_outside_guest_memory_is_refused_and_keeps_old_value);
    tcase_add_test(tc, test_en_area_at_end_of_guest_memory_is_accepted);
    tcase_add_test(tc, test_en_area_address_is_value_without_low_6_bits);
    tcase_add_test(tc, test_en_delivery_as_pf_vmexit_needs_cpuid_bit_10);
    tcase_add_test(tc, test_en_delivery_as_int_needs_cpuid_bit_14);
    tcase_add_test(tc, test_no_lapic_in_kernel_accepts_only_en_zero);
    tcase_add_test(tc, test_turning_on_queues_exactly_one_wake_all);
    tcase_add_test(tc, test_en_rewrite_while_on_drops_work_and_queues_new_wake_all);
    suite_add_tcase(s, tc);

    tc = tcase_create("msr_ack");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_ack_releases_throttle_only_with_token_slot_cleared);
    tcase_add_test(tc, test_ack_with_nothing_pending_is_counted_noop);
    tcase_add_test(tc, test_ack_with_bit0_clear_does_nothing);
    tcase_add_test(tc, test_rdmsr_ack_reads_zero);
    suite_add_tcase(s, tc);

    tc = tcase_create("lifecycle");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_en_zero_drops_outstanding_faults);
    tcase_add_test(tc, test_vcpu_reset_clears_both_msrs_and_disables);
    tcase_add_test(tc, test_restore_applies_int_then_en_and_queues_wake_all);
    tcase_add_test(tc, test_restore_with_invalid_values_changes_nothing);
    tcase_add_test(tc, test_unknown_vcpu_is_enodev);
    tcase_add_test(tc, test_create_over_arm64_engine_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(kvm_x86_suite)
