/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the KVM x86 frontend (MSRs, CPUID, reset, migration restore) interleaved
 * with the engine's entry points, as a guest and a VMM can issue them. Every MSR value and
 * every byte of guest RAM comes from the input. Invariants: a refused write or restore
 * changes nothing; rdmsr agrees with the engine; CPUID answers only its leaves; the trace
 * checker (host_env.c) accepts every host event; nothing leaks.
 */
#include "apf/host_kvm_x86.h"
#include "host_env.h"

static const uint64_t msrs[] = {APF_KVM_MSR_ASYNC_PF_EN,
                                APF_KVM_MSR_ASYNC_PF_INT,
                                APF_KVM_MSR_ASYNC_PF_ACK,
                                0x4b564d00u,
                                0x4b564d01u,
                                0xc0000080u};
static const uint64_t en_values[] = {0,      0x1009, 0x1049, 0x1001, 0x1008, 0x100d, 0x1019,
                                     0x1029, 0x1000, 0x1003, 0x1040, 0x100f, 0x1b};
static const uint64_t int_values[] = {0xec, 0x20, 0x1f, 0, 0xff, 0x100, 0x50};

static void check_rdmsr_agrees(struct fz_host *e, struct apf_host_kvm_x86 *fe, uint32_t v)
{
    uint64_t en = 0, vec = 0;
    struct apf_host_vcpu_state st = fz_save(e, v);
    if (apf_host_kvm_x86_rdmsr(fe, v, APF_KVM_MSR_ASYNC_PF_EN, &en) == 0 && st.enabled)
        FZ_ASSERT(en == (st.area_gpa | st.flags), "rdmsr EN %#llx, engine on at %#llx|%#x",
                  (unsigned long long)en, (unsigned long long)st.area_gpa, st.flags);
    if (apf_host_kvm_x86_rdmsr(fe, v, APF_KVM_MSR_ASYNC_PF_INT, &vec) == 0)
        FZ_ASSERT(vec == st.vector, "rdmsr INT %#llx, engine %#x", (unsigned long long)vec,
                  st.vector);
    if (!st.enabled && apf_host_kvm_x86_rdmsr(fe, v, APF_KVM_MSR_ASYNC_PF_EN, &en) == 0)
        FZ_ASSERT(!((en & APF_EN_ENABLED) && (en & APF_EN_DELIVERY_AS_INT)),
                  "rdmsr EN says on (%#llx) while the engine is off", (unsigned long long)en);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = {data, size};
    static struct fz_host e;
    fz_host_init(&e, &apf_host_transport_kvm_x86, &f);
    struct apf_host_kvm_x86_config xc = {0};
    if (fz_u8(&f) & 1)
        xc.cpuid_features = fz_u32(&f);
    xc.no_lapic_in_kernel = (fz_u8(&f) & 7) == 0;
    struct apf_host_kvm_x86 *fe;
    FZ_ASSERT(apf_host_kvm_x86_create(e.h, &xc, &fe) == 0);
    uint8_t boot = fz_u8(&f);
    for (uint32_t v = 0; v < FZ_VCPUS; v++) /* mostly: the guest turns APF on, as Linux does */
        if (boot & (1u << v)) {
            apf_host_kvm_x86_wrmsr(fe, v, APF_KVM_MSR_ASYNC_PF_INT, 0xec);
            apf_host_kvm_x86_wrmsr(fe, v, APF_KVM_MSR_ASYNC_PF_EN,
                                   (0x1000u + 64u * v) | APF_EN_ENABLED | APF_EN_DELIVERY_AS_INT |
                                       ((boot & 4) ? APF_EN_SEND_ALWAYS : 0));
        }
    for (int steps = 0; f.n > 0 && steps < 4096; steps++) {
        uint32_t v = fz_u8(&f) % (FZ_VCPUS + 1); /* FZ_VCPUS: an unknown vCPU */
        switch (fz_u8(&f) % 8) {
        case 0:
        case 1: { /* wrmsr */
            uint32_t msr = (uint32_t)msrs[fz_u8(&f) % 6];
            uint64_t val = msr == APF_KVM_MSR_ASYNC_PF_INT ? fz_val(&f, int_values, 7)
                                                           : fz_val(&f, en_values, 13);
            struct apf_host_vcpu_state before =
                v < FZ_VCPUS ? fz_save(&e, v) : (struct apf_host_vcpu_state){0};
            int r = apf_host_kvm_x86_wrmsr(fe, v, msr, val);
            if (msr != APF_KVM_MSR_ASYNC_PF_EN && msr != APF_KVM_MSR_ASYNC_PF_INT &&
                msr != APF_KVM_MSR_ASYNC_PF_ACK) {
                FZ_ASSERT(r == APF_HOST_KVM_X86_NOT_MINE);
            } else if (v >= FZ_VCPUS) {
                FZ_ASSERT(r == APF_ENODEV);
            } else if (r < 0) {
                struct apf_host_vcpu_state after = fz_save(&e, v);
                fz_assert_same_state(&before, &after, "a refused wrmsr");
            }
            break;
        }
        case 2: { /* rdmsr and CPUID */
            uint64_t val = 0x5a5a;
            uint32_t msr = (uint32_t)msrs[fz_u8(&f) % 6];
            int r = apf_host_kvm_x86_rdmsr(fe, v, msr, &val);
            FZ_ASSERT(r <= 1);
            uint32_t regs[4] = {7, 7, 7, 7}, leaf = 0x40000000u + fz_u8(&f) % 3;
            int c = apf_host_kvm_x86_cpuid(fe, leaf, regs);
            FZ_ASSERT(c == (leaf <= 0x40000001u), "cpuid leaf %#x answered %d", leaf, c);
            if (!c)
                FZ_ASSERT(regs[0] == 7 && regs[3] == 7, "unanswered leaf changed regs");
            if (v < FZ_VCPUS)
                check_rdmsr_agrees(&e, fe, v);
            break;
        }
        case 3: /* INIT/RESET */
            FZ_ASSERT(apf_host_kvm_x86_vcpu_reset(fe, v) == (v < FZ_VCPUS ? 0 : APF_ENODEV));
            if (v < FZ_VCPUS) {
                struct apf_host_vcpu_state st = fz_save(&e, v);
                FZ_ASSERT(!st.enabled && st.vector == 0, "reset left APF on");
            }
            break;
        case 4: { /* migration destination: KVM_SET_MSRS */
            uint64_t mi = fz_val(&f, int_values, 7), me = fz_val(&f, en_values, 13);
            if (v >= FZ_VCPUS) {
                FZ_ASSERT(apf_host_kvm_x86_restore(fe, v, mi, me) == APF_ENODEV);
                break;
            }
            struct apf_host_vcpu_state before = fz_save(&e, v);
            int r = apf_host_kvm_x86_restore(fe, v, mi, me);
            struct apf_host_vcpu_state after = fz_save(&e, v);
            if (r != 0) {
                fz_assert_same_state(&before, &after, "a refused restore");
            } else {
                uint64_t en = 0;
                int on = (me & APF_EN_ENABLED) && (me & APF_EN_DELIVERY_AS_INT);
                FZ_ASSERT(after.enabled == (uint32_t)on, "restore: enabled %u for EN %#llx",
                          after.enabled, (unsigned long long)me);
                if (apf_host_kvm_x86_rdmsr(fe, v, APF_KVM_MSR_ASYNC_PF_EN, &en) == 0)
                    FZ_ASSERT(en == me, "restored EN %#llx reads %#llx", (unsigned long long)me,
                              (unsigned long long)en);
            }
            break;
        }
        default:
            fz_host_engine_step(&e, &f);
            break;
        }
    }
    if (fz_u8(&f) & 1) { /* either destroy order is fine */
        apf_host_kvm_x86_destroy(fe);
        fz_host_fini(&e, 0);
    } else { /* the engine first: the frontend frees itself without it */
        fz_host_fini(&e, 1);
        apf_host_kvm_x86_destroy(fe);
        FZ_ASSERT(e.live_blocks == 0, "%ld blocks leaked", e.live_blocks);
    }
    return 0;
}
