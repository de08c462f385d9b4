/* SPDX-License-Identifier: MIT */
/*
 * arm64 frontend (apf/host_kvm_arm64.h, src/host/kvm_arm64.c): the SMCCC vendor-hyp APF
 * call and the VMM's GET/SET commands, driven the way a guest and its VMM drive them, over
 * an engine with ABI_ARM64 in embedder-completion mode and the fake hypervisor.
 *
 * Every refused call is followed by a check that nothing changed: the frontend state
 * (GET), the engine's enabled and saved state field by field, the shared area, and the
 * fake's log (no new injection).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apf/host_kvm_arm64.h"
#include "apf_check.h"
#include "fake_vmm.h"

#define N_VCPUS 2u
#define PPI 20u
#define FUNC APF_ARM64_FUNC_ID
#define F_VERSION APF_ARM64_FUNC_VERSION
#define F_SLOTS APF_ARM64_FUNC_SLOTS
#define F_SDEI APF_ARM64_FUNC_SDEI
#define F_IRQ APF_ARM64_FUNC_IRQ
#define F_ENABLE APF_ARM64_FUNC_ENABLE
#define F_IRQ_ACK APF_ARM64_FUNC_IRQ_ACK
#define SMC_OK 0ull
#define SMC_NOT_SUPPORTED 0xffffffffffffffffull /* -1 sign-extended */
#define SMC_INVALID 0xfffffffffffffffdull       /* -3 sign-extended */
#define POISON64 0x5a5a5a5a5a5a5a5aull
#define ABOVE_4G 0x100000000ull

static struct fake_vmm g_f;
static struct apf_host *g_h;
static struct apf_host_kvm_arm64 *g_fe;
static int g_live;

/* ---- fixture ------------------------------------------------------------------------------ */

static void teardown(void)
{
    if (!g_live)
        return;
    apf_host_kvm_arm64_destroy(g_fe);
    apf_host_destroy(g_h);
    fake_fini(&g_f);
    g_fe = NULL;
    g_h = NULL;
    g_live = 0;
}

/* (Re)creates fake, engine (ABI arm64, embedder completion) and frontend. */
static void make(uint32_t max_outstanding, uint32_t sdei_event)
{
    teardown();
    fake_init(&g_f);
    struct apf_host_config c = fake_config(&g_f, N_VCPUS, 0, &apf_host_transport_kvm_arm64);
    c.max_outstanding = max_outstanding;
    ck_assert_int_eq(apf_host_create(&c, &g_h), 0);
    struct apf_host_kvm_arm64_config a = {.sdei_event = sdei_event};
    ck_assert_int_eq(apf_host_kvm_arm64_create(g_h, sdei_event ? &a : NULL, &g_fe), 0);
    g_live = 1;
}

static void setup(void)
{
    make(0, 0);
}

/* ---- guest-side helpers ------------------------------------------------------------------- */

/* An SMCCC call with x0..x3; returns the frontend's result, out[] as left by it. */
static int smccc(struct apf_host_kvm_arm64 *fe, uint32_t vcpu, uint64_t x0, uint64_t x1, uint64_t x2,
                 uint64_t x3, uint64_t out[4])
{
    const uint64_t in[4] = {x0, x1, x2, x3};
    out[0] = out[1] = out[2] = out[3] = POISON64;
    return apf_host_kvm_arm64_hvc(fe, vcpu, in, out);
}

/* The APF call on g_fe: must be handled; returns x0 and checks x1..x3 are zeroed. */
static uint64_t apf_call_on(struct apf_host_kvm_arm64 *fe, uint32_t vcpu, uint64_t sub, uint64_t x2,
                            uint64_t x3)
{
    uint64_t out[4];
    ck_assert_int_eq(smccc(fe, vcpu, FUNC, sub, x2, x3, out), 0);
    ck_assert_uint_eq(out[1], 0);
    ck_assert_uint_eq(out[2], 0);
    ck_assert_uint_eq(out[3], 0);
    return out[0];
}

static uint64_t apf_call(uint32_t vcpu, uint64_t sub, uint64_t x2, uint64_t x3)
{
    return apf_call_on(g_fe, vcpu, sub, x2, x3);
}

/* ENABLE with a 64-bit control value split as the guest does: x2 low, x3 high. */
static uint64_t enable(uint32_t vcpu, uint64_t control)
{
    return apf_call(vcpu, F_ENABLE, control & 0xffffffffu, control >> 32);
}

static struct apf_host_vcpu_stats stats(uint32_t vcpu)
{
    struct apf_host_vcpu_stats s;
    ck_assert_int_eq(apf_host_vcpu_stats(g_h, vcpu, &s), 0);
    return s;
}

static struct apf_host_kvm_arm64_state get_state(uint32_t vcpu)
{
    struct apf_host_kvm_arm64_state st;
    memset(&st, 0xa5, sizeof(st));
    ck_assert_int_eq(apf_host_kvm_arm64_get_state(g_fe, vcpu, &st), 0);
    return st;
}

/* The guest consumed the area (SDEI or PPI handler): reason and token back to 0. */
static void guest_consume(uint32_t vcpu)
{
    fake_area_write(&g_f, vcpu, 0, 0);
}

/* VMM sets the PPI, guest enables at FAKE_AREA(vcpu) and consumes the wake-all (clear,
 * IRQ_ACK). The log is cleared afterwards. */
static void guest_apf_on(uint32_t vcpu, uint32_t flags)
{
    ck_assert_int_eq(apf_host_kvm_arm64_set_irq(g_fe, vcpu, PPI), 0);
    ck_assert_uint_eq(enable(vcpu, FAKE_AREA(vcpu) | flags), SMC_OK);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, vcpu, GS_USER), 1);
    ck_assert_uint_eq(fake_area_flags(&g_f, vcpu), APF_REASON_READY);
    ck_assert_uint_eq(fake_area_token(&g_f, vcpu), APF_TOKEN_WAKE_ALL);
    guest_consume(vcpu);
    ck_assert_uint_eq(apf_call(vcpu, F_IRQ_ACK, 0, 0), SMC_OK);
    fake_log_clear(&g_f);
}

/* A fault that goes async: the area holds (1, token), the SDEI event is injected with the
 * token, the work is submitted for the same token and address. Returns the token. The
 * guest has not consumed the area yet. */
static uint32_t fault_async_gs(uint32_t vcpu, uint64_t gpa, uint32_t gs)
{
    size_t n_np = fake_count(&g_f, FAKE_NP, vcpu);
    size_t n_sub = fake_count(&g_f, FAKE_SUBMIT, vcpu);
    ck_assert_int_eq(apf_host_vcpu_fault(g_h, vcpu, gpa, gs), APF_FAULT_ASYNC);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_NP, vcpu), n_np + 1);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_SUBMIT, vcpu), n_sub + 1);
    uint32_t tok = fake_nth(&g_f, FAKE_NP, vcpu, n_np)->value;
    ck_assert(apf_token_is_fault(tok));
    ck_assert_uint_eq(apf_token_kvm_vcpu(tok), vcpu);
    ck_assert_uint_eq(fake_nth(&g_f, FAKE_SUBMIT, vcpu, n_sub)->value, tok);
    ck_assert_uint_eq(fake_nth(&g_f, FAKE_SUBMIT, vcpu, n_sub)->gpa, gpa);
    ck_assert_uint_eq(fake_area_flags(&g_f, vcpu), APF_REASON_NOT_PRESENT);
    ck_assert_uint_eq(fake_area_token(&g_f, vcpu), tok);
    return tok;
}

static uint32_t fault_async(uint32_t vcpu, uint64_t gpa)
{
    return fault_async_gs(vcpu, gpa, GS_USER);
}

/* ---- "nothing changed" -------------------------------------------------------------------- */

struct snap {
    struct apf_host_kvm_arm64_state fs;
    uint64_t irq_call;
    struct fake_engine_snap e; /* the engine's side */
};

static void snap_take(uint32_t vcpu, struct snap *s)
{
    memset(s, 0, sizeof(*s));
    s->fs = get_state(vcpu);
    s->irq_call = apf_call(vcpu, F_IRQ, 0, 0);
    fake_engine_snap(&g_f, g_h, vcpu, &s->e);
}

static void unchanged_at(int line, uint32_t vcpu, const struct snap *b)
{
    struct snap a;
    snap_take(vcpu, &a);
    ck_assert_msg(a.fs.version == b->fs.version, "line %d: GET version %#x -> %#x", line,
                  b->fs.version, a.fs.version);
    ck_assert_msg(a.fs.sdei_event == b->fs.sdei_event, "line %d: GET sdei %#x -> %#x", line,
                  b->fs.sdei_event, a.fs.sdei_event);
    ck_assert_msg(a.fs.irq == b->fs.irq, "line %d: GET irq %u -> %u", line, b->fs.irq,
                  a.fs.irq);
    ck_assert_msg(a.fs.reserved == b->fs.reserved, "line %d: GET reserved changed", line);
    ck_assert_msg(a.fs.control == b->fs.control, "line %d: GET control %#llx -> %#llx", line,
                  (unsigned long long)b->fs.control, (unsigned long long)a.fs.control);
    ck_assert_msg(a.irq_call == b->irq_call, "line %d: IRQ call %#llx -> %#llx", line,
                  (unsigned long long)b->irq_call, (unsigned long long)a.irq_call);
    fake_engine_assert_same(line, &b->e, &a.e);
}
#define ck_assert_unchanged(vcpu, before) unchanged_at(__LINE__, (vcpu), (before))

/* Nothing is queued: the next entry injects no "page ready". */
static void nothing_queued_at(int line, uint32_t vcpu)
{
    fake_assert_nothing_queued(&g_f, g_h, line, vcpu);
}
#define ck_assert_nothing_queued(vcpu) nothing_queued_at(__LINE__, (vcpu))

/* ---- routing and discovery ---------------------------------------------------------------- */

START_TEST(test_other_function_ids_are_not_mine_and_out_untouched)
{
    static const uint64_t ids[] = {
        0x86000000u,          /* vendor-hyp features query: the VMM answers it */
        0x86000001u,          0x86000003u, 0x8600ff02u, 0x86000102u,
        0xc6000002u,          /* SMC64 encoding of the same number */
        0x06000002u,          /* yielding call */
        0x84000000u,          /* PSCI_VERSION */
        0x80000000u,          /* SMCCC_VERSION */
        0x0u,                 0xffffffffu,
        0x0000000186000003ull /* ours in the upper half only */
    };
    guest_apf_on(0, APF_EN_ENABLED);
    struct snap before;
    snap_take(0, &before);
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        for (uint64_t sub = 0; sub <= 6; sub++) {
            uint64_t out[4];
            ck_assert_int_eq(smccc(g_fe, 0, ids[i], sub, FAKE_AREA(0) | 1u, 0, out),
                             APF_HOST_KVM_ARM64_NOT_MINE);
            for (int r = 0; r < 4; r++)
                ck_assert_uint_eq(out[r], POISON64);
        }
    }
    ck_assert_unchanged(0, &before);
    ck_assert_nothing_queued(0);
}
END_TEST

START_TEST(test_function_id_upper_32_bits_are_ignored)
{
    uint64_t out[4];
    ck_assert_int_eq(smccc(g_fe, 0, 0xffffffff86000018ull, F_VERSION, 0, 0, out), 0);
    ck_assert_uint_eq(out[0], 0x010100u);
    ck_assert_uint_eq(out[1], 0);
    ck_assert_uint_eq(out[2], 0);
    ck_assert_uint_eq(out[3], 0);
    ck_assert_int_eq(smccc(g_fe, 0, 0x0000000186000018ull, F_SLOTS, 0, 0, out), 0);
    ck_assert_uint_eq(out[0], 64);
    /* A whole call through such an ID: ENABLE works. */
    ck_assert_int_eq(apf_host_kvm_arm64_set_irq(g_fe, 0, PPI), 0);
    ck_assert_int_eq(smccc(g_fe, 0, 0xffffffff86000018ull, F_ENABLE, FAKE_AREA(0) | 1u, 0, out),
                     0);
    ck_assert_uint_eq(out[0], SMC_OK);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 0), 1);
}
END_TEST

START_TEST(test_features_query_bit_is_bit_24)
{
    /* function 24 (proposed; upstream's function 2 is pKVM HYP_MEMINFO): bit 24 */
    ck_assert_uint_eq(APF_ARM64_FUNC_ID, 0x86000018u);
    ck_assert_uint_eq(apf_host_kvm_arm64_features(), 0x1000000u);
}
END_TEST

START_TEST(test_version_is_1_1_0)
{
    ck_assert_uint_eq(apf_call(0, F_VERSION, 0, 0), 0x010100u);
    ck_assert_uint_eq(apf_call(1, F_VERSION, 0xffffffffu, 0xffffffffu), 0x010100u);
}
END_TEST

START_TEST(test_slots_is_default_limit_64)
{
    ck_assert_uint_eq(apf_call(0, F_SLOTS, 0, 0), 64);
    ck_assert_uint_eq(apf_call(1, F_SLOTS, 0, 0), 64);
}
END_TEST

START_TEST(test_slots_is_configured_limit)
{
    make(16, 0);
    ck_assert_uint_eq(apf_call(0, F_SLOTS, 0, 0), 16);
    make(200, 0);
    ck_assert_uint_eq(apf_call(1, F_SLOTS, 0, 0), 200);
    ck_assert_uint_eq(apf_host_max_outstanding(g_h), 200);
}
END_TEST

START_TEST(test_sdei_is_default_event)
{
    ck_assert_uint_eq(apf_call(0, F_SDEI, 0, 0), 0x40400001u);
    ck_assert_uint_eq(apf_call(1, F_SDEI, 0, 0), 0x40400001u);
    ck_assert_uint_eq(get_state(0).sdei_event, 0x40400001u);
}
END_TEST

START_TEST(test_sdei_is_configured_event)
{
    make(0, 0x40400007u);
    ck_assert_uint_eq(apf_call(0, F_SDEI, 0, 0), 0x40400007u);
    ck_assert_uint_eq(apf_call(1, F_SDEI, 0, 0), 0x40400007u);
    ck_assert_uint_eq(get_state(1).sdei_event, 0x40400007u);
}
END_TEST

START_TEST(test_irq_is_not_supported_until_set_then_returns_ppi)
{
    ck_assert_uint_eq(apf_call(0, F_IRQ, 0, 0), 0xffffffffffffffffull);
    ck_assert_uint_eq(get_state(0).irq, 0);
    ck_assert_int_eq(apf_host_kvm_arm64_set_irq(g_fe, 0, PPI), 0);
    ck_assert_uint_eq(apf_call(0, F_IRQ, 0, 0), PPI);
    ck_assert_uint_eq(get_state(0).irq, PPI);
    /* Per vCPU. */
    ck_assert_uint_eq(apf_call(1, F_IRQ, 0, 0), 0xffffffffffffffffull);
    /* The whole PPI range. */
    for (uint32_t ppi = 16; ppi <= 31; ppi++) {
        ck_assert_int_eq(apf_host_kvm_arm64_set_irq(g_fe, 1, ppi), 0);
        ck_assert_uint_eq(apf_call(1, F_IRQ, 0, 0), ppi);
    }
}
END_TEST

START_TEST(test_set_irq_out_of_range_is_refused)
{
    static const uint32_t bad[] = {0, 1, 15, 32, 33, 1020, 1023, 0xffffffffu};
    struct snap before;
    snap_take(0, &before); /* not set */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(apf_host_kvm_arm64_set_irq(g_fe, 0, bad[i]), APF_EINVAL);
        ck_assert_unchanged(0, &before);
    }
    ck_assert_uint_eq(apf_call(0, F_IRQ, 0, 0), SMC_NOT_SUPPORTED);
    /* Set, then refused: the old PPI stays. */
    guest_apf_on(1, APF_EN_ENABLED);
    snap_take(1, &before);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(apf_host_kvm_arm64_set_irq(g_fe, 1, bad[i]), APF_EINVAL);
        ck_assert_unchanged(1, &before);
    }
    ck_assert_uint_eq(apf_call(1, F_IRQ, 0, 0), PPI);
    ck_assert_nothing_queued(1);
}
END_TEST

START_TEST(test_argument_registers_upper_halves_are_ignored)
{
    /* x1: only the low 32 bits select the sub-function. */
    ck_assert_uint_eq(apf_call(0, 0xffffffff00000000ull | F_VERSION, 0, 0), 0x010100u);
    ck_assert_uint_eq(apf_call(0, 0x0000000100000000ull | F_SLOTS, 0, 0), 64);
    ck_assert_uint_eq(apf_call(0, 0x8000000000000000ull | F_SDEI, 0, 0), 0x40400001u);
}
END_TEST

START_TEST(test_unknown_sub_function_is_not_supported)
{
    static const uint64_t subs[] = {8, 9, 0xff, 0x100, 0x7fffffffu, 0x80000000u, 0xffffffffu,
                                    0xffffffff00000008ull};
    guest_apf_on(0, APF_EN_ENABLED);
    struct snap before;
    snap_take(0, &before);
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        ck_assert_uint_eq(apf_call(0, subs[i], FAKE_AREA(0) | 1u, 0), 0xffffffffffffffffull);
        ck_assert_unchanged(0, &before);
    }
    ck_assert_nothing_queued(0);
}
END_TEST

/* ---- ENABLE ------------------------------------------------------------------------------- */

START_TEST(test_enable_takes_control_from_low_halves_of_x2_and_x3)
{
    ck_assert_int_eq(apf_host_kvm_arm64_set_irq(g_fe, 0, PPI), 0);
    /* Garbage in the upper halves of x2 and x3 is ignored: control = FAKE_AREA(0) | 1. */
    ck_assert_uint_eq(apf_call(0, F_ENABLE, 0xdeadbeef00000000ull | FAKE_AREA(0) | 1u,
                               0xcafef00d00000000ull),
                      SMC_OK);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 0), 1);
    ck_assert_uint_eq(get_state(0).control, FAKE_AREA(0) | 1u);
    struct apf_host_vcpu_state st;
    ck_assert_int_eq(apf_host_vcpu_save(g_h, 0, &st), 0);
    ck_assert_uint_eq(st.enabled, 1);
    ck_assert_uint_eq(st.area_gpa, FAKE_AREA(0));
    ck_assert_uint_eq(st.flags, APF_EN_ENABLED);
    /* The flags come from the low 6 bits: SEND_ALWAYS is taken. */
    ck_assert_int_eq(apf_host_kvm_arm64_set_irq(g_fe, 1, PPI), 0);
    ck_assert_uint_eq(apf_call(1, F_ENABLE, FAKE_AREA(1) | 3u, 0), SMC_OK);
    ck_assert_int_eq(apf_host_vcpu_save(g_h, 1, &st), 0);
    ck_assert_uint_eq(st.area_gpa, FAKE_AREA(1));
    ck_assert_uint_eq(st.flags, APF_EN_ENABLED | APF_EN_SEND_ALWAYS);
    ck_assert_uint_eq(get_state(1).control, FAKE_AREA(1) | 3u);
}
END_TEST

START_TEST(test_enable_high_half_is_used_and_area_above_4gib_is_refused)
{
    ck_assert_int_eq(apf_host_kvm_arm64_set_irq(g_fe, 0, PPI), 0);
    struct snap before;
    snap_take(0, &before);
    /* x2 alone would name a valid area: the high half makes it 4 GiB + 0x1000. */
    ck_assert_uint_eq(apf_call(0, F_ENABLE, FAKE_AREA(0) | 1u, 1), SMC_INVALID);
    ck_assert_unchanged(0, &before);
    ck_assert_uint_eq(apf_call(0, F_ENABLE, FAKE_AREA(0) | 1u, 0x80000000u), SMC_INVALID);
    ck_assert_unchanged(0, &before);
    ck_assert_uint_eq(enable(0, ABOVE_4G | FAKE_AREA(0) | 1u), SMC_INVALID);
    ck_assert_unchanged(0, &before);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 0), 0);
    ck_assert_nothing_queued(0);
    /* While on: the old control stays in force. */
    guest_apf_on(1, APF_EN_ENABLED);
    snap_take(1, &before);
    ck_assert_uint_eq(apf_call(1, F_ENABLE, FAKE_AREA(1) | 1u, 1), SMC_INVALID);
    ck_assert_unchanged(1, &before);
    ck_assert_uint_eq(get_state(1).control, FAKE_AREA(1) | 1u);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 1), 1);
    ck_assert_nothing_queued(1);
    /* An area just below 1 MiB in the low half is fine. */
    ck_assert_uint_eq(apf_call(0, F_ENABLE, (FAKE_MEM_SIZE - 64u) | 1u, 0), SMC_OK);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
}
END_TEST

START_TEST(test_enable_with_undefined_flags_is_refused)
{
    static const uint32_t bad[] = {0x4u, 0x8u, 0x10u, 0x20u, 0x3cu, 0x3fu};
    ck_assert_int_eq(apf_host_kvm_arm64_set_irq(g_fe, 0, PPI), 0);
    struct snap before;
    snap_take(0, &before);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_uint_eq(enable(0, FAKE_AREA(0) | APF_EN_ENABLED | bad[i]), SMC_INVALID);
        ck_assert_unchanged(0, &before);
        ck_assert_uint_eq(enable(0, FAKE_AREA(0) | bad[i]), SMC_INVALID); /* "off" form too */
        ck_assert_unchanged(0, &before);
    }
    ck_assert_nothing_queued(0);
    guest_apf_on(1, APF_EN_ENABLED);
    snap_take(1, &before);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_uint_eq(enable(1, FAKE_AREA(1) | APF_EN_ENABLED | bad[i]), SMC_INVALID);
        ck_assert_unchanged(1, &before);
        ck_assert_uint_eq(enable(1, bad[i]), SMC_INVALID);
        ck_assert_unchanged(1, &before);
    }
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 1), 1);
    ck_assert_nothing_queued(1);
}
END_TEST

START_TEST(test_enable_before_irq_is_refused)
{
    struct snap before;
    snap_take(0, &before);
    ck_assert_uint_eq(enable(0, FAKE_AREA(0) | 1u), SMC_INVALID);
    ck_assert_unchanged(0, &before);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 0), 0);
    ck_assert_nothing_queued(0);
}
END_TEST

START_TEST(test_enable_queues_wake_all_with_reason_ready)
{
    ck_assert_int_eq(apf_host_kvm_arm64_set_irq(g_fe, 0, PPI), 0);
    ck_assert_uint_eq(enable(0, FAKE_AREA(0) | 1u), SMC_OK);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_flags(&g_f, 0), 2u);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), 0xffffffffu);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 1);
    ck_assert_uint_eq(fake_nth(&g_f, FAKE_READY, 0, 0)->value, PPI);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_NP, 0), 0);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 1), 0);
    /* Exactly one. */
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 0);
    guest_consume(0);
    ck_assert_uint_eq(apf_call(0, F_IRQ_ACK, 0, 0), SMC_OK);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 0);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 1);
    ck_assert_uint_eq(stats(0).wake_all_delivered, 1);
}
END_TEST

START_TEST(test_enable_with_bit0_clear_turns_apf_off)
{
    guest_apf_on(0, APF_EN_ENABLED);
    uint32_t tok = fault_async(0, 0x10000);
    guest_consume(0);
    ck_assert_uint_eq(enable(0, FAKE_AREA(0)), SMC_OK);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 0), 0);
    ck_assert_uint_eq(get_state(0).control, FAKE_AREA(0));
    /* The outstanding fault is dropped. */
    ck_assert_int_eq(apf_host_complete(g_h, 0, tok, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 0);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 0);
    ck_assert_uint_eq(stats(0).outstanding, 0);
    ck_assert_int_eq(apf_host_vcpu_fault(g_h, 0, 0x10000, GS_USER), APF_FAULT_SYNC);
    /* 0 as well. */
    ck_assert_uint_eq(enable(0, 0), SMC_OK);
    ck_assert_uint_eq(get_state(0).control, 0);
}
END_TEST

/* ---- "not present" ------------------------------------------------------------------------ */

START_TEST(test_not_present_writes_reason_and_token)
{
    guest_apf_on(0, APF_EN_ENABLED);
    uint32_t tok = fault_async(0, 0x10000);
    ck_assert_uint_eq(fake_area_flags(&g_f, 0), 1u);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), tok);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_NP, 0), 1);
    ck_assert_uint_eq(stats(0).faults_async, 1);
    /* The "page ready" for it comes back with reason 2 once the area is consumed. */
    guest_consume(0);
    ck_assert_int_eq(apf_host_complete(g_h, 0, tok, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_flags(&g_f, 0), 2u);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), tok);
    ck_assert_uint_eq(fake_nth(&g_f, FAKE_READY, 0, 0)->value, PPI);
}
END_TEST

START_TEST(test_not_present_while_area_unconsumed_falls_back_to_halt)
{
    guest_apf_on(0, APF_EN_ENABLED);
    uint32_t ta = fault_async(0, 0x10000);

    /* Area still (1, ta): the second fault halts and injects nothing. */
    size_t np = fake_count(&g_f, FAKE_NP, 0);
    ck_assert_int_eq(apf_host_vcpu_fault(g_h, 0, 0x11000, GS_USER), APF_FAULT_HALT);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_NP, 0), np);
    ck_assert_uint_eq(fake_area_flags(&g_f, 0), 1u);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), ta);
    ck_assert_int_eq(apf_host_vcpu_halted(g_h, 0), 1);

    /* Half-consumed (only the reason, or only the token, cleared) is not consumed. */
    fake_area_write(&g_f, 0, 0, ta);
    ck_assert_int_eq(apf_host_vcpu_fault(g_h, 0, 0x12000, GS_USER), APF_FAULT_HALT);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_NP, 0), np);
    ck_assert_uint_eq(fake_area_flags(&g_f, 0), 0);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), ta);
    fake_area_write(&g_f, 0, 1, 0);
    ck_assert_int_eq(apf_host_vcpu_fault(g_h, 0, 0x13000, GS_USER), APF_FAULT_HALT);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_NP, 0), np);
    ck_assert_uint_eq(fake_area_flags(&g_f, 0), 1u);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), 0);
    struct apf_host_vcpu_stats s = stats(0);
    ck_assert_uint_eq(s.faults_async, 1);
    ck_assert_uint_eq(s.faults_halt, 3);
    ck_assert_uint_eq(s.faults_dedup, 0);

    /* Consumed: async again. */
    guest_consume(0);
    uint32_t tb = fault_async(0, 0x14000);
    ck_assert_uint_ne(tb, ta);
    ck_assert_uint_eq(fake_area_flags(&g_f, 0), 1u);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), tb);
    ck_assert_uint_eq(stats(0).faults_async, 2);
}
END_TEST

START_TEST(test_not_present_at_el1_needs_send_always)
{
    guest_apf_on(0, APF_EN_ENABLED);
    size_t np = fake_count(&g_f, FAKE_NP, 0);
    ck_assert_int_eq(apf_host_vcpu_fault(g_h, 0, 0x10000, GS_KERNEL), APF_FAULT_HALT);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_NP, 0), np);
    ck_assert_uint_eq(fake_area_flags(&g_f, 0), 0);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), 0);
    /* SDEI handler running: masked. */
    ck_assert_int_eq(apf_host_vcpu_fault(g_h, 0, 0x11000, GS_USER | APF_GS_NP_MASKED),
                     APF_FAULT_HALT);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_NP, 0), np);

    guest_apf_on(1, APF_EN_ENABLED | APF_EN_SEND_ALWAYS);
    fault_async_gs(1, 0x10000, GS_KERNEL);
}
END_TEST

/* ---- IRQ_ACK ------------------------------------------------------------------------------ */

START_TEST(test_irq_ack_releases_throttle)
{
    guest_apf_on(0, APF_EN_ENABLED);
    uint32_t ta = fault_async(0, 0x10000);
    guest_consume(0);
    uint32_t tb = fault_async(0, 0x11000);
    guest_consume(0);
    uint32_t tc = fault_async(0, 0x12000);
    guest_consume(0);
    ck_assert_int_eq(apf_host_complete(g_h, 0, ta, 0), 0);
    ck_assert_int_eq(apf_host_complete(g_h, 0, tb, 0), 0);
    ck_assert_int_eq(apf_host_complete(g_h, 0, tc, 0), 0);

    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_flags(&g_f, 0), APF_REASON_READY);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), ta);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 0);

    /* Consumed but not ACKed: held. */
    guest_consume(0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 0);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 1);
    ck_assert_uint_eq(apf_call(0, F_IRQ_ACK, 0, 0), SMC_OK);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_flags(&g_f, 0), APF_REASON_READY);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), tb);

    /* ACKed but not consumed: held, nothing overwritten. */
    ck_assert_uint_eq(apf_call(0, F_IRQ_ACK, 0, 0), SMC_OK);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 0);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), tb);
    /* Token cleared but reason left: still not consumed on arm64. */
    fake_area_write(&g_f, 0, APF_REASON_READY, 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 0);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), 0);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 2);
    guest_consume(0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_flags(&g_f, 0), APF_REASON_READY);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), tc);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 3);
    for (size_t i = 0; i < 3; i++)
        ck_assert_uint_eq(fake_nth(&g_f, FAKE_READY, 0, i)->value, PPI);

    guest_consume(0);
    ck_assert_uint_eq(apf_call(0, F_IRQ_ACK, 0, 0), SMC_OK);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 0);
    struct apf_host_vcpu_stats s = stats(0);
    ck_assert_uint_eq(s.ready_delivered, 3);
    ck_assert_uint_eq(s.acks, 4);
    ck_assert_uint_eq(s.acks_spurious, 0);
    ck_assert_uint_eq(s.outstanding, 0);
}
END_TEST

START_TEST(test_irq_ack_with_nothing_pending_is_counted_noop)
{
    struct snap before;
    snap_take(0, &before);
    ck_assert_uint_eq(apf_call(0, F_IRQ_ACK, 0, 0), SMC_OK);
    ck_assert_unchanged(0, &before);
    ck_assert_uint_eq(stats(0).acks, 1);
    ck_assert_uint_eq(stats(0).acks_spurious, 1);
    guest_apf_on(0, APF_EN_ENABLED);
    snap_take(0, &before);
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_eq(apf_call(0, F_IRQ_ACK, 0xffffffffu, 0xffffffffu), SMC_OK);
        ck_assert_unchanged(0, &before);
    }
    ck_assert_uint_eq(stats(0).acks, 5);
    ck_assert_uint_eq(stats(0).acks_spurious, 4);
    ck_assert_nothing_queued(0);
}
END_TEST

/* ---- VMM GET/SET -------------------------------------------------------------------------- */

START_TEST(test_state_round_trip_to_another_engine)
{
    make(0, 0x40400009u);
    ck_assert_int_eq(apf_host_kvm_arm64_set_irq(g_fe, 0, 21), 0);
    ck_assert_uint_eq(enable(0, FAKE_AREA(0) | 3u), SMC_OK);
    struct apf_host_kvm_arm64_state src = get_state(0);
    ck_assert_uint_eq(src.version, 0x010100u);
    ck_assert_uint_eq(src.sdei_event, 0x40400009u);
    ck_assert_uint_eq(src.irq, 21);
    ck_assert_uint_eq(src.reserved, 0);
    ck_assert_uint_eq(src.control, FAKE_AREA(0) | 3u);

    /* Destination: another VM with default settings. */
    struct fake_vmm *f2 = malloc(sizeof(*f2));
    ck_assert_ptr_nonnull(f2);
    fake_init(f2);
    struct apf_host_config c = fake_config(f2, N_VCPUS, 0, &apf_host_transport_kvm_arm64);
    struct apf_host *h2 = NULL;
    struct apf_host_kvm_arm64 *fe2 = NULL;
    ck_assert_int_eq(apf_host_create(&c, &h2), 0);
    ck_assert_int_eq(apf_host_kvm_arm64_create(h2, NULL, &fe2), 0);
    ck_assert_int_eq(apf_host_kvm_arm64_set_state(fe2, 0, &src), 0);

    struct apf_host_kvm_arm64_state dst;
    memset(&dst, 0xa5, sizeof(dst));
    ck_assert_int_eq(apf_host_kvm_arm64_get_state(fe2, 0, &dst), 0);
    ck_assert_uint_eq(dst.version, src.version);
    ck_assert_uint_eq(dst.sdei_event, src.sdei_event);
    ck_assert_uint_eq(dst.irq, src.irq);
    ck_assert_uint_eq(dst.reserved, 0);
    ck_assert_uint_eq(dst.control, src.control);
    ck_assert_uint_eq(apf_call_on(fe2, 0, F_SDEI, 0, 0), 0x40400009u);
    ck_assert_uint_eq(apf_call_on(fe2, 0, F_IRQ, 0, 0), 21);
    ck_assert_int_eq(apf_host_vcpu_enabled(h2, 0), 1);
    struct apf_host_vcpu_state st;
    ck_assert_int_eq(apf_host_vcpu_save(h2, 0, &st), 0);
    ck_assert_uint_eq(st.area_gpa, FAKE_AREA(0));
    ck_assert_uint_eq(st.flags, APF_EN_ENABLED | APF_EN_SEND_ALWAYS);
    ck_assert_uint_eq(st.vector, 21);
    /* The destination guest gets a wake-all; the other vCPU is untouched. */
    ck_assert_int_eq(apf_host_vcpu_before_entry(h2, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_flags(f2, 0), APF_REASON_READY);
    ck_assert_uint_eq(fake_area_token(f2, 0), APF_TOKEN_WAKE_ALL);
    ck_assert_uint_eq(fake_count(f2, FAKE_READY, 0), 1);
    ck_assert_uint_eq(fake_nth(f2, FAKE_READY, 0, 0)->value, 21);
    ck_assert_int_eq(apf_host_vcpu_enabled(h2, 1), 0);
    ck_assert_uint_eq(apf_call_on(fe2, 1, F_SDEI, 0, 0), 0x40400001u);
    /* Nothing happened on the source. */
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 0);

    apf_host_kvm_arm64_destroy(fe2);
    apf_host_destroy(h2);
    fake_fini(f2);
    free(f2);
}
END_TEST

/* A valid state for vCPU 0 (APF on at FAKE_AREA(0)) to corrupt one field at a time. */
static struct apf_host_kvm_arm64_state valid_state(void)
{
    struct apf_host_kvm_arm64_state st = {0};
    st.version = APF_PROTO_VERSION;
    st.sdei_event = 0x40400002u;
    st.irq = 22;
    st.reserved = 0;
    st.control = FAKE_AREA(0) | 1u;
    return st;
}

/* Runs a refused set_state from two starting points: off, and on with the wake-all
 * consumed and a fault outstanding. */
static void set_state_refused(const struct apf_host_kvm_arm64_state *bad, int err)
{
    struct snap before;
    snap_take(0, &before);
    ck_assert_int_eq(apf_host_kvm_arm64_set_state(g_fe, 0, bad), err);
    ck_assert_unchanged(0, &before);
    ck_assert_nothing_queued(0);

    struct apf_host_kvm_arm64_state b1 = *bad;
    if (b1.control & APF_EN_ADDR_MASK)
        b1.control = (b1.control & ~(uint64_t)FAKE_AREA(0)) | FAKE_AREA(1);
    guest_apf_on(1, APF_EN_ENABLED);
    uint32_t tok = fault_async(1, 0x10000);
    guest_consume(1);
    snap_take(1, &before);
    ck_assert_int_eq(apf_host_kvm_arm64_set_state(g_fe, 1, &b1), err);
    ck_assert_unchanged(1, &before);
    ck_assert_nothing_queued(1);
    /* The outstanding fault survived. */
    ck_assert_int_eq(apf_host_complete(g_h, 1, tok, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 1, GS_USER), 1);
    ck_assert_uint_eq(fake_area_token(&g_f, 1), tok);
}

START_TEST(test_set_state_with_wrong_version_is_refused)
{
    static const uint32_t versions[] = {0, 0x000100u, 0x010001u, 0x010101u, 0x020000u,
                                        0xffffffffu};
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        setup();
        struct apf_host_kvm_arm64_state st = valid_state();
        st.version = versions[i];
        set_state_refused(&st, APF_EINVAL);
    }
}
END_TEST

START_TEST(test_set_state_with_reserved_nonzero_is_refused)
{
    static const uint32_t res[] = {1, 0x80000000u, 0xffffffffu};
    for (size_t i = 0; i < sizeof(res) / sizeof(res[0]); i++) {
        setup();
        struct apf_host_kvm_arm64_state st = valid_state();
        st.reserved = res[i];
        set_state_refused(&st, APF_EINVAL);
    }
}
END_TEST

START_TEST(test_set_state_with_invalid_flags_is_refused)
{
    static const uint64_t ctl[] = {FAKE_AREA(0) | 0x5u, FAKE_AREA(0) | 0x9u,
                                   FAKE_AREA(0) | 0x11u, FAKE_AREA(0) | 0x21u,
                                   FAKE_AREA(0) | 0x3fu, FAKE_AREA(0) | 0x4u};
    for (size_t i = 0; i < sizeof(ctl) / sizeof(ctl[0]); i++) {
        setup();
        struct apf_host_kvm_arm64_state st = valid_state();
        st.control = ctl[i];
        set_state_refused(&st, APF_EINVAL);
    }
}
END_TEST

START_TEST(test_set_state_with_irq_out_of_range_is_refused)
{
    static const uint32_t irqs[] = {1, 15, 32, 1020, 0xffffffffu};
    for (size_t i = 0; i < sizeof(irqs) / sizeof(irqs[0]); i++) {
        setup();
        struct apf_host_kvm_arm64_state st = valid_state();
        st.irq = irqs[i];
        set_state_refused(&st, APF_EINVAL);
        /* Also with APF off in the state. */
        setup();
        st.control = 0;
        set_state_refused(&st, APF_EINVAL);
    }
    /* No PPI while the control enables APF. */
    setup();
    struct apf_host_kvm_arm64_state st = valid_state();
    st.irq = 0;
    set_state_refused(&st, APF_EINVAL);
}
END_TEST

START_TEST(test_set_state_with_area_outside_guest_memory_is_efault)
{
    struct apf_host_kvm_arm64_state st = valid_state();
    st.control = ABOVE_4G | FAKE_AREA(0) | 1u;
    struct snap before;
    snap_take(0, &before);
    ck_assert_int_eq(apf_host_kvm_arm64_set_state(g_fe, 0, &st), APF_EFAULT);
    ck_assert_unchanged(0, &before);
    ck_assert_nothing_queued(0);
    guest_apf_on(1, APF_EN_ENABLED);
    snap_take(1, &before);
    st.control = FAKE_MEM_SIZE | 1u;
    ck_assert_int_eq(apf_host_kvm_arm64_set_state(g_fe, 1, &st), APF_EFAULT);
    ck_assert_unchanged(1, &before);
    ck_assert_nothing_queued(1);
}
END_TEST

START_TEST(test_set_state_with_control_enabled_queues_wake_all)
{
    guest_apf_on(0, APF_EN_ENABLED);
    uint32_t tok = fault_async(0, 0x10000);
    guest_consume(0);
    struct apf_host_kvm_arm64_state st = get_state(0);
    ck_assert_int_eq(apf_host_kvm_arm64_set_state(g_fe, 0, &st), 0);
    /* Work in flight is dropped: only the wake-all is delivered. */
    ck_assert_int_eq(apf_host_complete(g_h, 0, tok, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 1);
    ck_assert_uint_eq(fake_area_flags(&g_f, 0), APF_REASON_READY);
    ck_assert_uint_eq(fake_area_token(&g_f, 0), APF_TOKEN_WAKE_ALL);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 1);
    ck_assert_uint_eq(fake_nth(&g_f, FAKE_READY, 0, 0)->value, PPI);
    guest_consume(0);
    ck_assert_uint_eq(apf_call(0, F_IRQ_ACK, 0, 0), SMC_OK);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 0, GS_USER), 0);
    ck_assert_uint_eq(fake_count(&g_f, FAKE_READY, 0), 1);
    ck_assert_uint_eq(stats(0).outstanding, 0);
    ck_assert_uint_eq(stats(0).wake_all_delivered, 2);

    /* On a vCPU that never ran: SET applies everything and queues the wake-all. */
    struct apf_host_kvm_arm64_state v1 = valid_state();
    v1.control = FAKE_AREA(1) | 1u;
    ck_assert_int_eq(apf_host_kvm_arm64_set_state(g_fe, 1, &v1), 0);
    struct apf_host_kvm_arm64_state got = get_state(1);
    ck_assert_uint_eq(got.sdei_event, 0x40400002u);
    ck_assert_uint_eq(got.irq, 22);
    ck_assert_uint_eq(got.control, FAKE_AREA(1) | 1u);
    ck_assert_int_eq(apf_host_vcpu_before_entry(g_h, 1, GS_USER), 1);
    ck_assert_uint_eq(fake_area_flags(&g_f, 1), APF_REASON_READY);
    ck_assert_uint_eq(fake_area_token(&g_f, 1), APF_TOKEN_WAKE_ALL);
    ck_assert_uint_eq(fake_nth(&g_f, FAKE_READY, 1, 0)->value, 22);
}
END_TEST

START_TEST(test_set_state_with_control_off_disables_without_wake_all)
{
    guest_apf_on(0, APF_EN_ENABLED);
    struct apf_host_kvm_arm64_state st = get_state(0);
    st.control = 0;
    ck_assert_int_eq(apf_host_kvm_arm64_set_state(g_fe, 0, &st), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(g_h, 0), 0);
    ck_assert_uint_eq(get_state(0).control, 0);
    ck_assert_uint_eq(get_state(0).irq, PPI);
    ck_assert_nothing_queued(0);
}
END_TEST

START_TEST(test_get_state_null_is_einval)
{
    ck_assert_int_eq(apf_host_kvm_arm64_get_state(g_fe, 0, NULL), APF_EINVAL);
    ck_assert_int_eq(apf_host_kvm_arm64_set_state(g_fe, 0, NULL), APF_EINVAL);
}
END_TEST

/* ---- ids and ABI -------------------------------------------------------------------------- */

START_TEST(test_unknown_vcpu_is_enodev)
{
    static const uint32_t ids[] = {N_VCPUS, N_VCPUS + 1, 4095, 4096, 0xffffffffu};
    guest_apf_on(0, APF_EN_ENABLED);
    struct snap before0, before1;
    snap_take(0, &before0);
    snap_take(1, &before1);
    struct apf_host_kvm_arm64_state st = valid_state();
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        for (uint64_t sub = 0; sub <= 6; sub++) {
            uint64_t out[4];
            ck_assert_int_eq(smccc(g_fe, ids[i], FUNC, sub, FAKE_AREA(0) | 1u, 0, out),
                             APF_ENODEV);
        }
        ck_assert_int_eq(apf_host_kvm_arm64_set_irq(g_fe, ids[i], PPI), APF_ENODEV);
        struct apf_host_kvm_arm64_state got;
        ck_assert_int_eq(apf_host_kvm_arm64_get_state(g_fe, ids[i], &got), APF_ENODEV);
        ck_assert_int_eq(apf_host_kvm_arm64_set_state(g_fe, ids[i], &st), APF_ENODEV);
    }
    ck_assert_unchanged(0, &before0);
    ck_assert_unchanged(1, &before1);
    ck_assert_nothing_queued(0);
    ck_assert_nothing_queued(1);
}
END_TEST

START_TEST(test_create_over_x86_engine_is_refused)
{
    struct fake_vmm *f2 = malloc(sizeof(*f2));
    ck_assert_ptr_nonnull(f2);
    fake_init(f2);
    struct apf_host_config c = fake_config(f2, 1, 0, &apf_host_transport_kvm_x86);
    struct apf_host *h2 = NULL;
    ck_assert_int_eq(apf_host_create(&c, &h2), 0);
    struct apf_host_kvm_arm64 *fe2 = NULL;
    ck_assert_int_eq(apf_host_kvm_arm64_create(h2, NULL, &fe2), APF_EINVAL);
    ck_assert_ptr_null(fe2);
    struct apf_host_kvm_arm64_config a = {.sdei_event = 0x40400001u};
    ck_assert_int_eq(apf_host_kvm_arm64_create(h2, &a, &fe2), APF_EINVAL);
    ck_assert_ptr_null(fe2);
    ck_assert_int_eq(apf_host_kvm_arm64_create(NULL, NULL, &fe2), APF_EINVAL);
    ck_assert_ptr_null(fe2);
    ck_assert_int_eq(apf_host_kvm_arm64_create(g_h, NULL, NULL), APF_EINVAL);
    apf_host_kvm_arm64_destroy(NULL); /* no-op */
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
    struct apf_host_config c = fake_config(&g_f, N_VCPUS, 0, &apf_host_transport_kvm_arm64);
    c.alloc = &g_poison;
    struct apf_host *h;
    struct apf_host_kvm_arm64 *fe;
    ck_assert_int_eq(apf_host_create(&c, &h), 0);
    ck_assert_int_eq(apf_host_kvm_arm64_create(h, NULL, &fe), 0);
    apf_host_destroy(h); /* the engine first */
    apf_host_kvm_arm64_destroy(fe);
    ck_assert_int_eq(g_poison_live, 0);
    quarantine_release();
    fake_fini(&g_f);
}
END_TEST

/* Issue 13 finding 9: get_state reads the engine's channel and the ring registration,
 * whichever entry point changed them. */
START_TEST(test_get_state_follows_engine_level_disable_reset_restore)
{
    const uint64_t ring = 0x80000u | 3u; /* 8 entries at 512 KiB */
    ck_assert_uint_eq(apf_call(0, APF_ARM64_FUNC_RING, ring & 0xffffffffu, ring >> 32), SMC_OK);
    ck_assert_uint_eq(get_state(0).ring, ring);
    guest_apf_on(0, APF_EN_ENABLED);
    ck_assert_uint_eq(get_state(0).control, FAKE_AREA(0) | 1u);
    ck_assert_int_eq(apf_host_vcpu_disable(g_h, 0), 0);
    ck_assert_uint_eq(get_state(0).control, 0); /* was the stale "on" value */
    ck_assert_uint_eq(get_state(0).irq, PPI);
    ck_assert_uint_eq(get_state(0).ring, ring); /* an engine disable keeps the registration */
    struct apf_host_vcpu_state st;
    ck_assert_int_eq(apf_host_vcpu_save(g_h, 0, &st), 0);
    st.enabled = 1;
    st.area_gpa = FAKE_AREA(0);
    st.flags = APF_EN_ENABLED;
    ck_assert_int_eq(apf_host_vcpu_restore(g_h, 0, &st), 0);
    ck_assert_uint_eq(get_state(0).control, FAKE_AREA(0) | 1u);
    ck_assert_int_eq(apf_host_vcpu_reset(g_h, 0), 0);
    ck_assert_uint_eq(get_state(0).control, 0);
    ck_assert_uint_eq(get_state(0).irq, 0);
    /* the frontend's reset forgets the registration too, and get_state says so */
    ck_assert_int_eq(apf_host_kvm_arm64_vcpu_reset(g_fe, 0), 0);
    ck_assert_uint_eq(get_state(0).ring, 0);
}
END_TEST

static Suite *kvm_arm64_suite(void)
{
    Suite *s = suite_create("kvm_arm64");

    TCase *tc = tcase_create("discovery");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_other_function_ids_are_not_mine_and_out_untouched);
    tcase_add_test(tc, test_function_id_upper_32_bits_are_ignored);
    tcase_add_test(tc, test_features_query_bit_is_bit_24);
    tcase_add_test(tc, test_version_is_1_1_0);
    tcase_add_test(tc, test_slots_is_default_limit_64);
    tcase_add_test(tc, test_slots_is_configured_limit);
    tcase_add_test(tc, test_sdei_is_default_event);
    tcase_add_test(tc, test_sdei_is_configured_event);
    tcase_add_test(tc, test_irq_is_not_supported_until_set_then_returns_ppi);
    tcase_add_test(tc, test_set_irq_out_of_range_is_refused);
    tcase_add_test(tc, test_argument_registers_upper_halves_are_ignored);
    tcase_add_test(tc, test_unknown_sub_function_is_not_supported);
    suite_add_tcase(s, tc);

    tc = tcase_create("enable");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_enable_takes_control_from_low_halves_of_x2_and_x3);
    tcase_add_test(tc, test_enable_high_half_is_used_and_area_above_4gib_is_refused);
    tcase_add_test(tc, test_enable_with_undefined_flags_is_refused);
    tcase_add_test(tc, test_enable_before_irq_is_refused);
    tcase_add_test(tc, test_enable_queues_wake_all_with_reason_ready);
    tcase_add_test(tc, test_enable_with_bit0_clear_turns_apf_off);
    suite_add_tcase(s, tc);

    tc = tcase_create("events");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_not_present_writes_reason_and_token);
    tcase_add_test(tc, test_not_present_while_area_unconsumed_falls_back_to_halt);
    tcase_add_test(tc, test_not_present_at_el1_needs_send_always);
    tcase_add_test(tc, test_irq_ack_releases_throttle);
    tcase_add_test(tc, test_irq_ack_with_nothing_pending_is_counted_noop);
    suite_add_tcase(s, tc);

    tc = tcase_create("vmm_state");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_state_round_trip_to_another_engine);
    tcase_add_test(tc, test_set_state_with_wrong_version_is_refused);
    tcase_add_test(tc, test_set_state_with_reserved_nonzero_is_refused);
    tcase_add_test(tc, test_set_state_with_invalid_flags_is_refused);
    tcase_add_test(tc, test_set_state_with_irq_out_of_range_is_refused);
    tcase_add_test(tc, test_set_state_with_area_outside_guest_memory_is_efault);
    tcase_add_test(tc, test_set_state_with_control_enabled_queues_wake_all);
    tcase_add_test(tc, test_set_state_with_control_off_disables_without_wake_all);
    tcase_add_test(tc, test_get_state_null_is_einval);
    tcase_add_test(tc, test_unknown_vcpu_is_enodev);
    tcase_add_test(tc, test_create_over_x86_engine_is_refused);
    tcase_add_test(tc, test_frontend_destroy_after_engine_destroy);
    tcase_add_test(tc, test_get_state_follows_engine_level_disable_reset_restore);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(kvm_arm64_suite)
