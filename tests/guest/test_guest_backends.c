/* SPDX-License-Identifier: MIT */
/*
 * libapf-guest backends: kvm_x86 and kvm_arm64 over recording arch hooks (exact MSR
 * writes, SMCCC calls, host answers checked), the null backend, and both backends over
 * arch hooks wired to the real host frontends (libapf-host), byte for byte.
 */
#include <string.h>

#include "apf/guest_backend.h"
#include "apf/host_kvm_arm64.h"
#include "apf/host_kvm_x86.h"
#include "apf_check.h"

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
    ck_assert_int_eq(apf_guest_backend_kvm_x86.enable(&b, 3, 0x12340, 0xec, 0), 0);
    ck_assert_int_eq(f.nw, 2);
    ck_assert_uint_eq(f.w[0].msr, APF_KVM_MSR_ASYNC_PF_INT);
    ck_assert_uint_eq(f.w[0].value, 0xec);
    ck_assert_uint_eq(f.w[0].cpu, 3);
    ck_assert_uint_eq(f.w[1].msr, APF_KVM_MSR_ASYNC_PF_EN);
    ck_assert_uint_eq(f.w[1].value, 0x12340 | APF_EN_ENABLED | APF_EN_DELIVERY_AS_INT);
    f.nw = 0;
    ck_assert_int_eq(apf_guest_backend_kvm_x86.enable(&b, 0, 0x12340, 0xec, APF_EN_SEND_ALWAYS), 0);
    ck_assert_uint_eq(f.w[1].value, 0x12340 | 0xbu);
}
END_TEST

START_TEST(test_x86_enable_validates_before_writing)
{
    struct fx86 f = {0};
    struct apf_guest_kvm_x86 b;
    apf_guest_kvm_x86_init(&b, &fx_ops, &f);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.enable(&b, 0, 0x12340, 31, 0), APF_EINVAL);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.enable(&b, 0, 0x12344, 0xec, 0), APF_EINVAL);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.enable(&b, 0, 0x12340, 0xec, 0x10), APF_EINVAL);
    ck_assert_int_eq(f.nw, 0);
    /* #GP on INT: EN is never written */
    f.fail_msr = (int)APF_KVM_MSR_ASYNC_PF_INT;
    ck_assert_int_eq(apf_guest_backend_kvm_x86.enable(&b, 0, 0x12340, 0xec, 0), APF_EINVAL);
    ck_assert_int_eq(f.nw, 1);
}
END_TEST

START_TEST(test_x86_disable_and_ack)
{
    struct fx86 f = {0};
    struct apf_guest_kvm_x86 b;
    apf_guest_kvm_x86_init(&b, &fx_ops, &f);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.disable(&b, 1), 0);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.ack(&b, 1), 0);
    ck_assert_int_eq(f.nw, 2);
    ck_assert_uint_eq(f.w[0].msr, APF_KVM_MSR_ASYNC_PF_EN);
    ck_assert_uint_eq(f.w[0].value, 0);
    ck_assert_uint_eq(f.w[1].msr, APF_KVM_MSR_ASYNC_PF_ACK);
    ck_assert_uint_eq(f.w[1].value, 1);
}
END_TEST

/* ---- a scripted arm64 host --------------------------------------------------------------------- */

struct farm {
    uint64_t features, version, slots, sdei, irq, enable_result;
    uint64_t last[4];
    int calls;
};

static void fa_smccc(void *ctx, uint32_t cpu, const uint64_t in[4], uint64_t out[4])
{
    struct farm *f = ctx;
    (void)cpu;
    memcpy(f->last, in, sizeof(f->last));
    f->calls++;
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
    default: out[0] = 0;
    }
}

static const struct apf_arm64_arch_ops fa_ops = {fa_smccc};

static struct farm good_arm(void)
{
    return (struct farm){.features = 1u << 2, .version = 0x010000, .slots = 64,
                         .sdei = 0x40400001, .irq = 20};
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
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.enable(&b, 0, 0x123456789ac0ull, 20, 0), 0);
    ck_assert_uint_eq(f.last[0], APF_ARM64_FUNC_ID);
    ck_assert_uint_eq(f.last[1], APF_ARM64_FUNC_ENABLE);
    ck_assert_uint_eq(f.last[2], 0x56789ac1u); /* low half | ENABLED */
    ck_assert_uint_eq(f.last[3], 0x1234u);
    f.enable_result = (uint64_t)(int64_t)APF_SMCCC_INVALID_PARAMETER;
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.enable(&b, 0, 0x1000, 20, 0), APF_EINVAL);
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.enable(&b, 0, 0x1010, 20, 0), APF_EINVAL);
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.disable(&b, 0), APF_EINVAL);
    ck_assert_uint_eq(f.last[2], 0);
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.ack(&b, 0), 0);
    ck_assert_uint_eq(f.last[1], APF_ARM64_FUNC_IRQ_ACK);
}
END_TEST

START_TEST(test_null_backend_is_never_available)
{
    struct apf_guest_backend_info info;
    ck_assert_int_eq(apf_guest_backend_null.probe(NULL, &info), APF_ENODEV);
    ck_assert_int_eq(apf_guest_backend_null.enable(NULL, 0, 0x1000, 0xec, 0), APF_EOPNOTSUPP);
    ck_assert_int_eq(apf_guest_backend_null.disable(NULL, 0), APF_EOPNOTSUPP);
    ck_assert_int_eq(apf_guest_backend_null.ack(NULL, 0), APF_EOPNOTSUPP);
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
    struct apf_kvm_x86 *fe;
};

static void w_cpuid(void *ctx, uint32_t cpu, uint32_t leaf, uint32_t sub, uint32_t r[4])
{
    struct x86_wire *w = ctx;
    (void)cpu, (void)sub;
    memset(r, 0, 16);
    apf_kvm_x86_cpuid(w->fe, leaf, r);
}

static int w_wrmsr(void *ctx, uint32_t cpu, uint32_t msr, uint64_t v)
{
    struct x86_wire *w = ctx;
    int r = apf_kvm_x86_wrmsr(w->fe, cpu, msr, v);
    return r == APF_KVM_X86_NOT_MINE ? APF_EINVAL : r; /* an unknown MSR #GPs */
}

static int w_rdmsr(void *ctx, uint32_t cpu, uint32_t msr, uint64_t *v)
{
    struct x86_wire *w = ctx;
    int r = apf_kvm_x86_rdmsr(w->fe, cpu, msr, v);
    return r == APF_KVM_X86_NOT_MINE ? APF_EINVAL : r;
}

static const struct apf_x86_arch_ops wire_x86 = {w_cpuid, w_wrmsr, w_rdmsr};

static const uint32_t GS = APF_GS_USER | APF_GS_IRQ_ON | APF_GS_PAGING | APF_GS_IRQCHIP_ON;

START_TEST(test_x86_backend_against_real_kvm_x86_frontend)
{
    struct apf_host_config hc = {.n_vcpus = 2, .ops = &hops, .abi = APF_HOST_ABI_KVM_X86};
    struct apf_host *h;
    ck_assert_int_eq(apf_host_create(&hc, &h), 0);
    struct x86_wire w;
    ck_assert_int_eq(apf_kvm_x86_create(h, NULL, &w.fe), 0);
    struct apf_guest_kvm_x86 b;
    apf_guest_kvm_x86_init(&b, &wire_x86, &w);
    struct apf_guest_backend_info info;
    ck_assert_int_eq(apf_guest_backend_kvm_x86.probe(&b, &info), 0);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.enable(&b, 1, 0x1040, 0xf3, 0), 0);
    uint64_t v;
    ck_assert_int_eq(apf_kvm_x86_rdmsr(w.fe, 1, APF_KVM_MSR_ASYNC_PF_INT, &v), 0);
    ck_assert_uint_eq(v, 0xf3);
    ck_assert_int_eq(apf_kvm_x86_rdmsr(w.fe, 1, APF_KVM_MSR_ASYNC_PF_EN, &v), 0);
    ck_assert_uint_eq(v, 0x1040 | 9);
    ck_assert_int_eq(apf_host_vcpu_enabled(h, 1), 1);
    n_ready = 0;
    ck_assert_int_eq(apf_host_vcpu_before_entry(h, 1, GS), 1); /* the wake-all */
    ck_assert_int_eq(n_ready, 1);
    ck_assert_uint_eq(ready_vector, 0xf3);
    uint32_t token;
    memcpy(&token, guest_ram + 0x1044, 4);
    ck_assert_uint_eq(token, APF_TOKEN_WAKE_ALL);
    memset(guest_ram + 0x1044, 0, 4);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.ack(&b, 1), 0);
    struct apf_host_vcpu_stats s;
    apf_host_vcpu_stats(h, 1, &s);
    ck_assert_uint_eq(s.acks, 1);
    ck_assert_uint_eq(s.acks_spurious, 0);
    /* a host refusal surfaces as the backend's error: area outside guest RAM */
    ck_assert_int_eq(apf_guest_backend_kvm_x86.enable(&b, 0, 0x100000, 0xf3, 0), APF_EFAULT);
    ck_assert_int_eq(apf_host_vcpu_enabled(h, 0), 0);
    ck_assert_int_eq(apf_guest_backend_kvm_x86.disable(&b, 1), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(h, 1), 0);
    apf_kvm_x86_destroy(w.fe);
    apf_host_destroy(h);
}
END_TEST

struct arm_wire {
    struct apf_kvm_arm64 *fe;
};

static void w_smccc(void *ctx, uint32_t cpu, const uint64_t in[4], uint64_t out[4])
{
    struct arm_wire *w = ctx;
    if ((uint32_t)in[0] == APF_ARM64_FEATURES_FUNC_ID) {
        out[0] = apf_kvm_arm64_features();
        out[1] = out[2] = out[3] = 0;
        return;
    }
    if (apf_kvm_arm64_hvc(w->fe, cpu, in, out) != 0) {
        out[0] = (uint64_t)(int64_t)APF_SMCCC_NOT_SUPPORTED;
        out[1] = out[2] = out[3] = 0;
    }
}

static const struct apf_arm64_arch_ops wire_arm = {w_smccc};

START_TEST(test_arm64_backend_against_real_kvm_arm64_frontend)
{
    struct apf_host_config hc = {.n_vcpus = 1, .ops = &hops, .abi = APF_HOST_ABI_ARM64};
    struct apf_host *h;
    ck_assert_int_eq(apf_host_create(&hc, &h), 0);
    struct arm_wire w;
    ck_assert_int_eq(apf_kvm_arm64_create(h, NULL, &w.fe), 0);
    struct apf_guest_kvm_arm64 b;
    apf_guest_kvm_arm64_init(&b, &wire_arm, &w);
    struct apf_guest_backend_info info;
    /* the VMM has not set the PPI yet: APF is not offered */
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.probe(&b, &info), APF_EOPNOTSUPP);
    ck_assert_int_eq(apf_kvm_arm64_set_irq(w.fe, 0, 23), 0);
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.probe(&b, &info), 0);
    ck_assert_uint_eq(info.irq, 23);
    ck_assert_uint_eq(info.slots, 64);
    ck_assert_uint_eq(info.sdei_event, APF_ARM64_SDEI_EVENT_DEFAULT);
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.enable(&b, 0, 0x1080, 23, 0), 0);
    struct apf_kvm_arm64_state st;
    ck_assert_int_eq(apf_kvm_arm64_get_state(w.fe, 0, &st), 0);
    ck_assert_uint_eq(st.control, 0x1081);
    n_ready = 0;
    ck_assert_int_eq(apf_host_vcpu_before_entry(h, 0, GS), 1);
    ck_assert_uint_eq(ready_vector, 23);
    uint32_t area[2];
    memcpy(area, guest_ram + 0x1080, 8);
    ck_assert_uint_eq(area[0], APF_REASON_READY);
    ck_assert_uint_eq(area[1], APF_TOKEN_WAKE_ALL);
    memset(guest_ram + 0x1080, 0, 8);
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.ack(&b, 0), 0);
    ck_assert_int_eq(apf_guest_backend_kvm_arm64.disable(&b, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(h, 0), 0);
    apf_kvm_arm64_destroy(w.fe);
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
    tcase_add_test(tc, test_x86_backend_against_real_kvm_x86_frontend);
    suite_add_tcase(s, tc);
    tc = tcase_create("kvm_arm64");
    tcase_add_test(tc, test_arm64_probe_reads_and_checks_host_values);
    tcase_add_test(tc, test_arm64_probe_rejects_bad_host_answers);
    tcase_add_test(tc, test_arm64_enable_passes_control_in_two_halves);
    tcase_add_test(tc, test_arm64_backend_against_real_kvm_arm64_frontend);
    suite_add_tcase(s, tc);
    tc = tcase_create("null");
    tcase_add_test(tc, test_null_backend_is_never_available);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(backend_suite)
