/* SPDX-License-Identifier: MIT */
/* Token allocator (src/host/token.c): KVM format, never 0 / 0xffffffff, uniqueness across
 * wrap-around, O(1) token -> slot. */
#include <stdlib.h>
#include <string.h>

#include "apf_check.h"
#include "apf/proto.h"
#include "host/token.h"

static uint16_t ring[4096];

START_TEST(test_first_tokens_follow_kvm_sequence)
{
    struct apf__tokens t;
    apf__tokens_init(&t, ring, 64, 3);
    uint32_t slot;
    /* Allocated and freed in order, as KVM hands them out: (seq << 12) | vcpu. */
    for (uint32_t seq = 1; seq <= 200; seq++) {
        uint32_t tok = apf__token_alloc(&t, &slot);
        ck_assert_uint_eq(tok, (seq << 12) | 3);
        ck_assert_int_eq(apf__token_slot(&t, tok), (int32_t)slot);
        apf__token_free(&t, slot);
    }
}
END_TEST

START_TEST(test_token_names_its_slot)
{
    struct apf__tokens t;
    apf__tokens_init(&t, ring, 100, 7); /* limit not a power of two */
    uint32_t slots[100];
    uint32_t toks[100];
    for (int i = 0; i < 100; i++) {
        toks[i] = apf__token_alloc(&t, &slots[i]);
        ck_assert_uint_ne(toks[i], 0);
        ck_assert_uint_lt(slots[i], 100);
        ck_assert_uint_eq(toks[i] & 0xfff, 7);
    }
    uint32_t extra;
    ck_assert_uint_eq(apf__token_alloc(&t, &extra), 0); /* all 100 in use */
    ck_assert_uint_eq(apf__tokens_used(&t), 100);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(apf__token_slot(&t, toks[i]), (int32_t)slots[i]);
}
END_TEST

START_TEST(test_lookup_rejects_foreign_and_reserved_tokens)
{
    struct apf__tokens t;
    apf__tokens_init(&t, ring, 64, 5);
    ck_assert_int_eq(apf__token_slot(&t, 0), -1);
    ck_assert_int_eq(apf__token_slot(&t, 0xffffffffu), -1);
    ck_assert_int_eq(apf__token_slot(&t, (9u << 12) | 6), -1); /* another vCPU's */
    ck_assert_int_eq(apf__token_slot(&t, (9u << 12) | 5), 9);
}
END_TEST

START_TEST(test_never_zero_for_vcpu0_across_wrap)
{
    /* vCPU 0: seq 0 would give token 0. Cycle through the whole 20-bit space 3 times. */
    struct apf__tokens t;
    apf__tokens_init(&t, ring, 64, 0);
    uint32_t slot, seen_wrap = 0, prev = 0;
    for (uint32_t i = 0; i < (1u << 20) + 4096; i++) {
        uint32_t tok = apf__token_alloc(&t, &slot);
        if (!apf_token_is_fault(tok))
            ck_abort_msg("token %#x at allocation %u", tok, i);
        if (tok < prev)
            seen_wrap++;
        prev = tok;
        apf__token_free(&t, slot);
    }
    ck_assert_uint_ge(seen_wrap, 1);
}
END_TEST

START_TEST(test_never_wake_all_for_vcpu_fff_across_wrap)
{
    struct apf__tokens t;
    apf__tokens_init(&t, ring, 64, 0xfff);
    uint32_t slot;
    int saw_top_seq = 0;
    for (uint32_t i = 0; i < (1u << 20) + 4096; i++) {
        uint32_t tok = apf__token_alloc(&t, &slot);
        if (!apf_token_is_fault(tok))
            ck_abort_msg("token %#x at allocation %u", tok, i);
        if ((tok >> 12) >= 0xfffc0)
            saw_top_seq = 1;
        apf__token_free(&t, slot);
    }
    ck_assert_int_eq(saw_top_seq, 1);
}
END_TEST

/* Some faults stay outstanding for millions of allocations while others come and go:
 * at every moment the outstanding tokens are distinct, valid, and name their slots. */
START_TEST(test_outstanding_tokens_unique_under_wrap)
{
    struct apf__tokens t;
    apf__tokens_init(&t, ring, 64, 1);
    uint32_t tok_of_slot[64];
    memset(tok_of_slot, 0, sizeof(tok_of_slot));
    uint32_t held[8], held_slot[8];
    for (int i = 0; i < 8; i++) {
        held[i] = apf__token_alloc(&t, &held_slot[i]);
        tok_of_slot[held_slot[i]] = held[i];
    }
    unsigned seed = 12345;
    uint32_t live[56], live_slot[56];
    int nlive = 0;
    for (uint32_t i = 0; i < (5u << 19); i++) { /* > 2 wraps */
        if (nlive < 56 && (nlive == 0 || (rand_r(&seed) & 1))) {
            uint32_t s;
            uint32_t tok = apf__token_alloc(&t, &s);
            if (!apf_token_is_fault(tok) || tok_of_slot[s] != 0) /* valid, slot was free */
                ck_abort_msg("token %#x slot %u at step %u", tok, s, i);
            for (int k = 0; k < 8; k++)
                if (tok == held[k])
                    ck_abort_msg("token %#x reissued while outstanding", tok);
            tok_of_slot[s] = tok;
            live[nlive] = tok;
            live_slot[nlive++] = s;
        } else {
            int k = (int)(rand_r(&seed) % (unsigned)nlive);
            if (apf__token_slot(&t, live[k]) != (int32_t)live_slot[k])
                ck_abort_msg("token %#x does not name slot %u", live[k], live_slot[k]);
            tok_of_slot[live_slot[k]] = 0;
            apf__token_free(&t, live_slot[k]);
            live[k] = live[nlive - 1];
            live_slot[k] = live_slot[--nlive];
        }
    }
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(apf__token_slot(&t, held[i]), (int32_t)held_slot[i]);
}
END_TEST

START_TEST(test_max_limit_4096)
{
    struct apf__tokens t;
    apf__tokens_init(&t, ring, 4096, 0x123);
    uint32_t slot;
    for (int i = 0; i < 4096; i++)
        ck_assert(apf_token_is_fault(apf__token_alloc(&t, &slot)));
    ck_assert_uint_eq(apf__token_alloc(&t, &slot), 0);
    ck_assert_uint_eq(apf__tokens_used(&t), 4096);
}
END_TEST

static Suite *token_suite(void)
{
    Suite *s = suite_create("token");
    TCase *tc = tcase_create("alloc");
    tcase_add_test(tc, test_first_tokens_follow_kvm_sequence);
    tcase_add_test(tc, test_token_names_its_slot);
    tcase_add_test(tc, test_lookup_rejects_foreign_and_reserved_tokens);
    tcase_add_test(tc, test_never_zero_for_vcpu0_across_wrap);
    tcase_add_test(tc, test_never_wake_all_for_vcpu_fff_across_wrap);
    tcase_add_test(tc, test_outstanding_tokens_unique_under_wrap);
    tcase_add_test(tc, test_max_limit_4096);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(token_suite)
