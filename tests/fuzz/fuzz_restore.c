/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: migration-state restore. A source engine runs a little (faults, deliveries,
 * enables), its state is saved - through the engine (struct apf_host_vcpu_state), the KVM
 * x86 MSRs, or the arm64 VMM state - and the input then corrupts any bytes of that image
 * before the destination restores it. Invariants: a refused restore changes nothing on the
 * destination; an accepted one is consistent (what was restored is what is in force, and
 * an enabled vCPU's first "page ready" is the wake-all: the trace checker); no leak.
 */
#include "apf/host_kvm_arm64.h"
#include "apf/host_kvm_x86.h"
#include "host_env.h"

static void corrupt(struct fz *f, void *img, size_t len)
{
    uint8_t *b = img;
    for (uint32_t n = fz_u8(f) % 4; n > 0; n--) {
        size_t at = fz_u8(f) % len;
        b[at] = fz_u8(f);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = {data, size};
    static struct fz_host src, dst;
    int arm = fz_u8(&f) & 1;
    const struct apf_host_transport_ops *tp =
        arm ? &apf_host_transport_kvm_arm64 : &apf_host_transport_kvm_x86;
    fz_host_init(&src, tp, &f);
    fz_host_init(&dst, tp, &f);
    struct apf_host_kvm_x86 *sx = NULL, *dx = NULL;
    struct apf_host_kvm_arm64 *sa = NULL, *da = NULL;
    if (arm) {
        FZ_ASSERT(apf_host_kvm_arm64_create(src.h, NULL, &sa) == 0);
        FZ_ASSERT(apf_host_kvm_arm64_create(dst.h, NULL, &da) == 0);
    } else {
        FZ_ASSERT(apf_host_kvm_x86_create(src.h, NULL, &sx) == 0);
        FZ_ASSERT(apf_host_kvm_x86_create(dst.h, NULL, &dx) == 0);
    }
    /* The source guest turns APF on the usual way on vCPU 0 (input may change it). */
    if (arm) {
        apf_host_kvm_arm64_set_irq(sa, 0, 20);
        uint64_t in[4] = {APF_ARM64_FUNC_ID, APF_ARM64_FUNC_ENABLE, 0x1001, 0}, out[4];
        apf_host_kvm_arm64_hvc(sa, 0, in, out);
    } else {
        apf_host_kvm_x86_wrmsr(sx, 0, APF_KVM_MSR_ASYNC_PF_INT, 0xec);
        apf_host_kvm_x86_wrmsr(sx, 0, APF_KVM_MSR_ASYNC_PF_EN, 0x1009);
    }
    for (int rounds = 0; f.n > 0 && rounds < 256; rounds++) {
        for (int k = fz_u8(&f) % 8; k > 0; k--)
            fz_host_engine_step(&src, &f);
        uint32_t v = fz_u8(&f) % FZ_VCPUS, w = fz_u8(&f) % FZ_VCPUS;
        struct apf_host_vcpu_state before = fz_save(&dst, w);
        int r;
        switch (fz_u8(&f) % 3) {
        case 0: { /* the engine's own state image */
            struct apf_host_vcpu_state st = fz_save(&src, v);
            corrupt(&f, &st, sizeof(st));
            r = apf_host_vcpu_restore(dst.h, w, &st);
            struct apf_host_vcpu_state after = fz_save(&dst, w);
            if (r == 0)
                FZ_ASSERT(
                    after.enabled == st.enabled && after.vector == st.vector &&
                        after.seq == st.seq &&
                        (!st.enabled || (after.area_gpa == st.area_gpa && after.flags == st.flags)),
                    "engine restore accepted, state differs");
            break;
        }
        case 1:
            if (arm) {
                struct apf_host_kvm_arm64_state st;
                FZ_ASSERT(apf_host_kvm_arm64_get_state(sa, v, &st) == 0);
                corrupt(&f, &st, sizeof(st));
                r = apf_host_kvm_arm64_set_state(da, w, &st);
                if (r == 0) {
                    struct apf_host_kvm_arm64_state got;
                    FZ_ASSERT(apf_host_kvm_arm64_get_state(da, w, &got) == 0);
                    FZ_ASSERT(got.control == st.control && got.ring == st.ring && got.irq == st.irq,
                              "set_state accepted, reads back differently");
                }
            } else {
                uint64_t img[2];
                apf_host_kvm_x86_rdmsr(sx, v, APF_KVM_MSR_ASYNC_PF_INT, &img[0]);
                apf_host_kvm_x86_rdmsr(sx, v, APF_KVM_MSR_ASYNC_PF_EN, &img[1]);
                corrupt(&f, img, sizeof(img));
                r = apf_host_kvm_x86_restore(dx, w, img[0], img[1]);
                if (r == 0) {
                    uint64_t en = 0, vec = 0;
                    apf_host_kvm_x86_rdmsr(dx, w, APF_KVM_MSR_ASYNC_PF_EN, &en);
                    apf_host_kvm_x86_rdmsr(dx, w, APF_KVM_MSR_ASYNC_PF_INT, &vec);
                    FZ_ASSERT(en == img[1] && vec == img[0], "MSR restore reads back differently");
                }
            }
            break;
        default: /* restore with the whole image from the input */
        {
            struct apf_host_vcpu_state st;
            for (size_t i = 0; i < sizeof(st); i++)
                ((uint8_t *)&st)[i] = fz_u8(&f);
            if (fz_u8(&f) & 1)
                st.version = APF_HOST_STATE_VERSION;
            r = apf_host_vcpu_restore(dst.h, w, &st);
            break;
        }
        }
        if (r != 0) {
            struct apf_host_vcpu_state after = fz_save(&dst, w);
            fz_assert_same_state(&before, &after, "a refused restore");
        }
        for (int k = fz_u8(&f) % 4; k > 0; k--)
            fz_host_engine_step(&dst, &f);
    }
    if (arm) {
        apf_host_kvm_arm64_destroy(sa);
        apf_host_kvm_arm64_destroy(da);
    } else {
        apf_host_kvm_x86_destroy(sx);
        apf_host_kvm_x86_destroy(dx);
    }
    fz_host_fini(&src, 0);
    fz_host_fini(&dst, 0);
    return 0;
}
