/* SPDX-License-Identifier: MIT */
/* apf/proto.h and apf/version.h: layout, token helpers, version packing. */
#include <stddef.h>
#include <string.h>

#include "apf/proto.h"
#include "apf/version.h"
#include "apf_check.h"

START_TEST(test_area_layout)
{
    ck_assert_uint_eq(sizeof(struct apf_shared_area), 64);
    ck_assert_uint_eq(offsetof(struct apf_shared_area, flags), 0);
    ck_assert_uint_eq(offsetof(struct apf_shared_area, token), 4);
    ck_assert_uint_eq(offsetof(struct apf_shared_area, pad), 8);
    ck_assert_uint_eq(APF_AREA_HOST_BYTES, 8);
}
END_TEST

START_TEST(test_reason_and_token_values)
{
    ck_assert_uint_eq(APF_REASON_NOT_PRESENT, 1);
    ck_assert_uint_eq(APF_REASON_READY, 2);
    ck_assert_uint_eq(APF_TOKEN_INVALID, 0);
    ck_assert_uint_eq(APF_TOKEN_WAKE_ALL, 0xffffffffu);
    ck_assert_int_eq(apf_token_is_fault(0), 0);
    ck_assert_int_eq(apf_token_is_fault(0xffffffffu), 0);
    ck_assert_int_eq(apf_token_is_fault(0x1000), 1);
    ck_assert_int_eq(apf_token_is_fault(1), 1);
}
END_TEST

START_TEST(test_kvm_token_format)
{
    ck_assert_uint_eq(apf_token_kvm_make(1, 0), 0x1000u);
    ck_assert_uint_eq(apf_token_kvm_make(2, 0), 0x2000u);
    ck_assert_uint_eq(apf_token_kvm_make(3, 5), 0x3005u);
    ck_assert_uint_eq(apf_token_kvm_make(0xfffff, 0xfff), 0xffffffffu);
    ck_assert_uint_eq(apf_token_kvm_make(7, 0x1abc), 0x7abcu); /* vCPU masked to 12 bits */
    ck_assert_uint_eq(apf_token_kvm_vcpu(0x3005), 5);
    ck_assert_uint_eq(apf_token_kvm_seq(0x3005), 3);
    ck_assert_uint_eq(apf_token_kvm_seq(0xfffff123u), 0xfffff);
}
END_TEST

START_TEST(test_enable_bits)
{
    ck_assert_uint_eq(APF_EN_ENABLED, 1);
    ck_assert_uint_eq(APF_EN_SEND_ALWAYS, 2);
    ck_assert_uint_eq(APF_EN_DELIVERY_AS_PF_VMEXIT, 4);
    ck_assert_uint_eq(APF_EN_DELIVERY_AS_INT, 8);
    ck_assert_uint_eq(APF_EN_X86_RESERVED, 0x30);
    ck_assert_uint_eq(0x123456789ac0ull & APF_EN_ADDR_MASK, 0x123456789ac0ull);
    ck_assert_uint_eq(0x123456789affull & APF_EN_ADDR_MASK, 0x123456789ac0ull);
    ck_assert_uint_eq(APF_ARM64_EN_VALID, 7); /* ENABLED | SEND_ALWAYS | RING (1.1) */
}
END_TEST

START_TEST(test_signature_spells_kvmkvmkvm)
{
    uint32_t regs[3] = {APF_KVM_SIGNATURE_EBX, APF_KVM_SIGNATURE_ECX, APF_KVM_SIGNATURE_EDX};
    char sig[12];
    memcpy(sig, regs, sizeof(sig)); /* x86 is little-endian: the bytes as the guest sees them */
    ck_assert_int_eq(memcmp(sig, "KVMKVMKVM\0\0\0", 12), 0);
}
END_TEST

START_TEST(test_arm64_constants)
{
    /* function 24, not the series' 2 (upstream's pKVM HYP_MEMINFO) */
    ck_assert_uint_eq(APF_ARM64_FUNC_ID, 0x86000018u);
    ck_assert_uint_eq(APF_ARM64_FUNC_VERSION, 0);
    ck_assert_uint_eq(APF_ARM64_FUNC_SLOTS, 1);
    ck_assert_uint_eq(APF_ARM64_FUNC_SDEI, 2);
    ck_assert_uint_eq(APF_ARM64_FUNC_IRQ, 3);
    ck_assert_uint_eq(APF_ARM64_FUNC_ENABLE, 4);
    ck_assert_uint_eq(APF_ARM64_FUNC_IRQ_ACK, 5);
    ck_assert_uint_eq(APF_ARM64_FUNC_FEATURES, 6);
    ck_assert_uint_eq(APF_ARM64_FUNC_RING, 7);
    ck_assert_uint_eq(APF_ARM64_FEATURE_BIT, 24);
    ck_assert_uint_eq(APF_ARM64_EN_RING, 4);
    ck_assert_uint_eq(APF_ARM64_EN_VALID, 7);
    ck_assert_uint_eq(APF_ARM64_SDEI_EVENT_DEFAULT, 0x40400001u);
    ck_assert_int_eq(APF_SMCCC_NOT_SUPPORTED, -1);
    ck_assert_int_eq(APF_SMCCC_NOT_REQUIRED, -2);
    ck_assert_int_eq(APF_SMCCC_INVALID_PARAMETER, -3);
}
END_TEST

START_TEST(test_protocol_version_packing)
{
    ck_assert_uint_eq(APF_PROTO_VERSION, 0x010100u); /* 1.1.0: the ready ring */
    ck_assert_uint_eq(APF_PROTO_VERSION_PACK(1, 2, 3), 0x010203u);
    ck_assert_uint_eq(APF_PROTO_VERSION_PACK(0x1ff, 0, 0), 0xff0000u); /* one byte each */
}
END_TEST

/* The ring's layout is wire ABI: host and guest lines apart, entries after both. */
START_TEST(test_ring_layout)
{
    ck_assert_uint_eq(sizeof(struct apf_ring), 128);
    ck_assert_uint_eq(offsetof(struct apf_ring, prod), 0);
    ck_assert_uint_eq(offsetof(struct apf_ring, size), 4);
    ck_assert_uint_eq(offsetof(struct apf_ring, cons), 64);
    ck_assert_uint_eq(offsetof(struct apf_ring, event), 68);
    ck_assert_uint_eq(offsetof(struct apf_ring, entries), 128);
    ck_assert_uint_eq(APF_RING_ENTRIES_OFFSET + APF_RING_MAX_ENTRIES * 4, 2176);
    ck_assert_uint_eq(APF_FEATURE_RING, 1);
}
END_TEST

/* Notification hold-off: notify only if the event index is in (old, new], modulo 2^32. */
START_TEST(test_ring_need_notify_window)
{
    ck_assert_int_eq(apf_ring_need_notify(0, 1, 1), 1);
    ck_assert_int_eq(apf_ring_need_notify(0, 4, 1), 1);
    ck_assert_int_eq(apf_ring_need_notify(0, 4, 4), 1);
    ck_assert_int_eq(apf_ring_need_notify(0, 4, 5), 0); /* guest wants a later one */
    ck_assert_int_eq(apf_ring_need_notify(4, 8, 4), 0); /* already notified for 4 */
    ck_assert_int_eq(apf_ring_need_notify(4, 4, 4), 0); /* nothing new */
    ck_assert_int_eq(apf_ring_need_notify(0xfffffffeu, 2, 0xffffffffu), 1); /* wraps */
    ck_assert_int_eq(apf_ring_need_notify(0xfffffffeu, 2, 0), 1);
    ck_assert_int_eq(apf_ring_need_notify(0xfffffffeu, 2, 3), 0);
}
END_TEST

START_TEST(test_library_version)
{
    ck_assert_uint_eq(apf_version(), (uint32_t)APF_VERSION_HEX);
    ck_assert_uint_eq(apf_version() >> 16, APF_VERSION_MAJOR);
    ck_assert_uint_eq((apf_version() >> 8) & 0xff, APF_VERSION_MINOR);
    ck_assert_uint_eq(apf_version() & 0xff, APF_VERSION_PATCH);
    char want[32];
    snprintf(want, sizeof(want), "%d.%d.%d", APF_VERSION_MAJOR, APF_VERSION_MINOR,
             APF_VERSION_PATCH);
    ck_assert_str_eq(apf_version_string(), want);
}
END_TEST

static Suite *wire_suite(void)
{
    Suite *s = suite_create("wire");
    TCase *tc = tcase_create("abi");
    tcase_add_test(tc, test_area_layout);
    tcase_add_test(tc, test_reason_and_token_values);
    tcase_add_test(tc, test_kvm_token_format);
    tcase_add_test(tc, test_enable_bits);
    tcase_add_test(tc, test_signature_spells_kvmkvmkvm);
    tcase_add_test(tc, test_arm64_constants);
    tcase_add_test(tc, test_protocol_version_packing);
    tcase_add_test(tc, test_library_version);
    tcase_add_test(tc, test_ring_layout);
    tcase_add_test(tc, test_ring_need_notify_window);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(wire_suite)
