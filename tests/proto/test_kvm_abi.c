/* SPDX-License-Identifier: MIT */
/*
 * libapf's KVM x86 constants against the kernel's own uapi header, <asm/kvm_para.h>.
 *
 * Every value is compared at run time, so a changed constant fails by name (the CTest test
 * kvm_abi_detects_mismatch builds this file against a deliberately altered proto.h and must
 * fail). Skips (exit 77) where the system has no x86 <asm/kvm_para.h>.
 *
 * Debian 12 ships the 6.1 header, whose struct kvm_vcpu_pv_apf_data still declares the
 * guest-private `enabled` field after the padding (68 bytes); libapf's area is the 64-byte
 * one of Linux 6.9+. The host only touches flags and token, whose offsets must match.
 */
#include <stddef.h>
#include <string.h>

#include "apf/proto.h"
#include "apf_check.h"

#ifdef APF_HAVE_KVM_PARA_H
#include <asm/kvm_para.h>
#include <linux/kvm.h>

START_TEST(test_cpuid_leaves_and_signature)
{
    ck_assert_uint_eq(APF_KVM_CPUID_SIGNATURE, KVM_CPUID_SIGNATURE);
    ck_assert_uint_eq(APF_KVM_CPUID_FEATURES, KVM_CPUID_FEATURES);
    uint32_t regs[3] = {APF_KVM_SIGNATURE_EBX, APF_KVM_SIGNATURE_ECX, APF_KVM_SIGNATURE_EDX};
    ck_assert_int_eq(memcmp(regs, KVM_SIGNATURE, 12), 0);
}
END_TEST

START_TEST(test_feature_bits)
{
    ck_assert_uint_eq(APF_KVM_FEATURE_ASYNC_PF, KVM_FEATURE_ASYNC_PF);
    ck_assert_uint_eq(APF_KVM_FEATURE_ASYNC_PF_VMEXIT, KVM_FEATURE_ASYNC_PF_VMEXIT);
    ck_assert_uint_eq(APF_KVM_FEATURE_ASYNC_PF_INT, KVM_FEATURE_ASYNC_PF_INT);
    ck_assert_uint_eq(APF_KVM_CAP_ASYNC_PF, KVM_CAP_ASYNC_PF);
}
END_TEST

START_TEST(test_msr_numbers)
{
    ck_assert_uint_eq(APF_KVM_MSR_ASYNC_PF_EN, MSR_KVM_ASYNC_PF_EN);
    ck_assert_uint_eq(APF_KVM_MSR_ASYNC_PF_INT, MSR_KVM_ASYNC_PF_INT);
    ck_assert_uint_eq(APF_KVM_MSR_ASYNC_PF_ACK, MSR_KVM_ASYNC_PF_ACK);
}
END_TEST

/* The uapi header uses GENMASK, which only the kernel defines. */
#ifndef GENMASK
#define GENMASK(h, l) (((~0ull) << (l)) & (~0ull >> (63 - (h))))
#endif

START_TEST(test_enable_bits_and_vector_mask)
{
    ck_assert_uint_eq(APF_EN_ENABLED, KVM_ASYNC_PF_ENABLED);
    ck_assert_uint_eq(APF_EN_SEND_ALWAYS, KVM_ASYNC_PF_SEND_ALWAYS);
    ck_assert_uint_eq(APF_EN_DELIVERY_AS_PF_VMEXIT, KVM_ASYNC_PF_DELIVERY_AS_PF_VMEXIT);
    ck_assert_uint_eq(APF_EN_DELIVERY_AS_INT, KVM_ASYNC_PF_DELIVERY_AS_INT);
    ck_assert_uint_eq(APF_KVM_ASYNC_PF_VEC_MASK, KVM_ASYNC_PF_VEC_MASK);
    ck_assert_uint_eq(APF_KVM_ASYNC_PF_ACK_BIT, KVM_MSR_ENABLED);
}
END_TEST

START_TEST(test_reasons)
{
    ck_assert_uint_eq(APF_REASON_NOT_PRESENT, KVM_PV_REASON_PAGE_NOT_PRESENT);
    ck_assert_uint_eq(APF_REASON_READY, KVM_PV_REASON_PAGE_READY);
}
END_TEST

START_TEST(test_shared_area_offsets)
{
    ck_assert_uint_eq(offsetof(struct apf_shared_area, flags),
                      offsetof(struct kvm_vcpu_pv_apf_data, flags));
    ck_assert_uint_eq(offsetof(struct apf_shared_area, token),
                      offsetof(struct kvm_vcpu_pv_apf_data, token));
    ck_assert_uint_eq(offsetof(struct apf_shared_area, pad),
                      offsetof(struct kvm_vcpu_pv_apf_data, pad));
    ck_assert_uint_eq(sizeof(((struct apf_shared_area *)0)->pad),
                      sizeof(((struct kvm_vcpu_pv_apf_data *)0)->pad));
    /* 6.9+: exactly 64 bytes; up to 6.8: 64 plus the guest-private `enabled` at offset 64. */
    size_t kernel_size = sizeof(struct kvm_vcpu_pv_apf_data);
    ck_assert(kernel_size == sizeof(struct apf_shared_area) ||
              kernel_size == sizeof(struct apf_shared_area) + 4);
}
END_TEST

static Suite *kvm_abi_suite(void)
{
    Suite *s = suite_create("kvm_abi");
    TCase *tc = tcase_create("asm_kvm_para_h");
    tcase_add_test(tc, test_cpuid_leaves_and_signature);
    tcase_add_test(tc, test_feature_bits);
    tcase_add_test(tc, test_msr_numbers);
    tcase_add_test(tc, test_enable_bits_and_vector_mask);
    tcase_add_test(tc, test_reasons);
    tcase_add_test(tc, test_shared_area_offsets);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(kvm_abi_suite)

#else /* !APF_HAVE_KVM_PARA_H */

int main(void)
{
    printf("SKIP: no x86 <asm/kvm_para.h> here (install linux-libc-dev; x86 only)\n");
    return APF_TEST_SKIP;
}

#endif
