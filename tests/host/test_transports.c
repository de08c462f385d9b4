/* SPDX-License-Identifier: MIT */
/*
 * The transport table: the same behavioural cases run against every shipped transport, each
 * driven through its own control plane (MSRs, SMCCC calls) and read back through its own
 * notification plane (the area, or the ready ring) exactly as a guest would:
 *   kvm-x86         one slot + ACK MSR
 *   kvm-arm64       one slot + IRQ_ACK
 *   kvm-arm64+ring  the ready ring (protocol 1.1): batches, hold-off, no ACK call
 *   s390            pfault (issue 12): floating "page ready", no ACK, no window (own rows)
 * Cases: enable (wake-all first), not present, ready, the throttle (ACK or consumer index),
 * bursts of 1, 8 and 64 completions, wake-all drops older tokens, disable with work in
 * flight, bad input from the guest, migration to another engine.
 */
#include <stdlib.h>
#include <string.h>

#include "apf/host_kvm_arm64.h"
#include "apf/host_kvm_x86.h"
#include "apf/host_s390.h"
#include "apf_check.h"
#include "fake_vmm.h"

#define RING_GPA 0x10000u /* one page of fake guest RAM per vCPU from here */
#define RING_N 64u
#define PPI 20u
#define VEC 0xecu

enum kind { T_X86, T_ARM64, T_RING, T_COUNT };
static const char *const kind_name[T_COUNT] = {"kvm-x86", "kvm-arm64", "kvm-arm64+ring"};

struct fx {
    enum kind kind;
    struct fake_vmm *f;
    struct apf_host *h;
    struct apf_host_kvm_x86 *x86;
    struct apf_host_kvm_arm64 *arm;
    uint32_t cons; /* ring: the guest's consumer index */
    uint64_t ack_calls;
};

static uint64_t arm_call(struct fx *x, uint32_t vcpu, uint32_t sub, uint64_t value)
{
    uint64_t in[4] = {APF_ARM64_FUNC_ID, sub, value & 0xffffffffu, value >> 32}, out[4];
    ck_assert_int_eq(apf_host_kvm_arm64_hvc(x->arm, vcpu, in, out), 0);
    return out[0];
}

static void mk(struct fx *x, enum kind kind, struct fake_vmm *f)
{
    memset(x, 0, sizeof(*x));
    x->kind = kind;
    x->f = f;
    struct apf_host_config c =
        fake_config(f, 2, 0, kind == T_X86 ? &apf_host_transport_kvm_x86
                                           : &apf_host_transport_kvm_arm64);
    c.max_outstanding = 128;
    ck_assert_int_eq(apf_host_create(&c, &x->h), 0);
    if (kind == T_X86)
        ck_assert_int_eq(apf_host_kvm_x86_create(x->h, NULL, &x->x86), 0);
    else
        ck_assert_int_eq(apf_host_kvm_arm64_create(x->h, NULL, &x->arm), 0);
}

/* The guest turns APF on for vCPU 0 through the transport's control plane. */
static void guest_on(struct fx *x)
{
    switch (x->kind) {
    case T_X86:
        ck_assert_int_eq(apf_host_kvm_x86_wrmsr(x->x86, 0, APF_KVM_MSR_ASYNC_PF_INT, VEC), 0);
        ck_assert_int_eq(apf_host_kvm_x86_wrmsr(x->x86, 0, APF_KVM_MSR_ASYNC_PF_EN,
                                                FAKE_AREA(0) | APF_EN_ENABLED |
                                                    APF_EN_DELIVERY_AS_INT),
                         0);
        break;
    case T_ARM64:
        ck_assert_int_eq(apf_host_kvm_arm64_set_irq(x->arm, 0, PPI), 0);
        ck_assert_uint_eq(arm_call(x, 0, APF_ARM64_FUNC_ENABLE, FAKE_AREA(0) | 1u), 0);
        break;
    case T_RING:
        ck_assert_int_eq(apf_host_kvm_arm64_set_irq(x->arm, 0, PPI), 0);
        ck_assert_uint_eq(arm_call(x, 0, APF_ARM64_FUNC_FEATURES, 0), APF_FEATURE_RING);
        ck_assert_uint_eq(arm_call(x, 0, APF_ARM64_FUNC_RING, RING_GPA | 6u /* 64 */), 0);
        ck_assert_uint_eq(arm_call(x, 0, APF_ARM64_FUNC_ENABLE,
                                   FAKE_AREA(0) | APF_EN_ENABLED | APF_ARM64_EN_RING),
                          0);
        x->cons = 0;
        break;
    default:
        break;
    }
}

static void fini(struct fx *x)
{
    apf_host_kvm_x86_destroy(x->x86);
    apf_host_kvm_arm64_destroy(x->arm);
    apf_host_destroy(x->h);
}

static uint32_t rd32(struct fx *x, uint64_t gpa)
{
    uint32_t v;
    memcpy(&v, x->f->mem + gpa, 4);
    return v;
}

static void wr32(struct fx *x, uint64_t gpa, uint32_t v)
{
    memcpy(x->f->mem + gpa, &v, 4);
}

/* The guest's "page ready" handler: takes every token the channel holds now, in order,
 * releases them and (slot) ACKs. Returns how many. */
static uint32_t guest_take(struct fx *x, uint32_t *tokens, uint32_t max)
{
    uint32_t n = 0;
    if (x->kind == T_RING) {
        uint32_t prod = rd32(x, RING_GPA + APF_RING_PROD_OFFSET);
        ck_assert_uint_le(prod - x->cons, RING_N); /* the host never overruns */
        while (x->cons != prod && n < max) {
            tokens[n++] =
                rd32(x, RING_GPA + APF_RING_ENTRIES_OFFSET + 4u * (x->cons & (RING_N - 1)));
            x->cons++;
        }
        wr32(x, RING_GPA + APF_RING_CONS_OFFSET, x->cons);
        wr32(x, RING_GPA + APF_RING_EVENT_OFFSET, x->cons + 1);
        return n;
    }
    uint32_t token = fake_area_token(x->f, 0);
    if (token == APF_TOKEN_INVALID)
        return 0;
    if (x->kind == T_ARM64)
        ck_assert_uint_eq(fake_area_flags(x->f, 0), APF_REASON_READY);
    tokens[n++] = token;
    fake_area_write(x->f, 0, x->kind == T_X86 ? fake_area_flags(x->f, 0) : 0, 0);
    if (x->kind == T_X86)
        ck_assert_int_eq(apf_host_kvm_x86_wrmsr(x->x86, 0, APF_KVM_MSR_ASYNC_PF_ACK, 1), 0);
    else
        ck_assert_uint_eq(arm_call(x, 0, APF_ARM64_FUNC_IRQ_ACK, 0), 0);
    x->ack_calls++;
    return n;
}

/* The guest's "not present" handler: the token, and the area cleared. */
static uint32_t guest_np(struct fx *x)
{
    size_t n = fake_count(x->f, FAKE_NP, 0);
    ck_assert_uint_gt(n, 0);
    uint32_t token = fake_nth(x->f, FAKE_NP, 0, n - 1)->value; /* CR2 / the SDEI event */
    ck_assert_uint_eq(fake_area_flags(x->f, 0), APF_REASON_NOT_PRESENT);
    if (x->kind == T_X86) {
        fake_area_write(x->f, 0, 0, fake_area_token(x->f, 0));
    } else {
        ck_assert_uint_eq(fake_area_token(x->f, 0), token);
        fake_area_write(x->f, 0, 0, 0);
    }
    return token;
}

static uint32_t fault(struct fx *x, uint64_t gpa)
{
    ck_assert_int_eq(apf_host_vcpu_fault(x->h, 0, gpa, GS_USER), APF_FAULT_ASYNC);
    return guest_np(x);
}

/* Delivery points until nothing more comes; collects the tokens in arrival order. */
static uint32_t deliver_all(struct fx *x, uint32_t *tokens, uint32_t max)
{
    uint32_t n = 0;
    for (int i = 0; i < 1000; i++) {
        int r = apf_host_vcpu_before_entry(x->h, 0, GS_USER);
        ck_assert_int_ge(r, 0);
        if (r == 0)
            return n;
        n += guest_take(x, tokens + n, max - n);
    }
    ck_abort_msg("delivery does not end");
    return n;
}

static struct apf_host_vcpu_stats st(struct fx *x)
{
    struct apf_host_vcpu_stats s;
    ck_assert_int_eq(apf_host_vcpu_stats(x->h, 0, &s), 0);
    return s;
}

static void ready_fx(struct fx *x, struct fake_vmm *f, int i)
{
    fake_init(f);
    mk(x, (enum kind)i, f);
    guest_on(x);
    uint32_t t[4];
    ck_assert_uint_eq(deliver_all(x, t, 4), 1);
    ck_assert_uint_eq(t[0], APF_TOKEN_WAKE_ALL);
    fake_log_clear(f);
}

static void done_fx(struct fx *x, struct fake_vmm *f)
{
    fini(x);
    fake_fini(f);
}

/* ---- cases ----------------------------------------------------------------------------------- */

START_TEST(test_enable_delivers_wake_all_first_then_nothing)
{
    struct fake_vmm *f = calloc(1, sizeof(*f));
    struct fx x;
    ready_fx(&x, f, _i); /* asserts the wake-all came first and alone */
    ck_assert_int_eq(apf_host_vcpu_before_entry(x.h, 0, GS_USER), 0);
    struct apf_host_vcpu_stats s = st(&x);
    ck_assert_uint_eq(s.wake_all_delivered, 1);
    ck_assert_uint_eq(s.notifications, 1);
    ck_assert_uint_eq(fake_nth(f, FAKE_READY, 0, 0) == NULL, 1); /* log was cleared */
    done_fx(&x, f);
    free(f);
}
END_TEST

START_TEST(test_not_present_then_ready_carries_the_exact_token)
{
    struct fake_vmm *f = calloc(1, sizeof(*f));
    struct fx x;
    ready_fx(&x, f, _i);
    uint32_t t = fault(&x, 0x40000);
    ck_assert(apf_token_is_fault(t));
    ck_assert_uint_eq(apf_token_kvm_vcpu(t), 0);
    ck_assert_uint_eq(fake_nth(f, FAKE_SUBMIT, 0, 0)->value, t); /* work after "not present" */
    ck_assert_int_lt(fake_index(f, FAKE_NP, 0, 0), fake_index(f, FAKE_SUBMIT, 0, 0));
    ck_assert_int_eq(apf_host_vcpu_before_entry(x.h, 0, GS_USER), 0); /* nothing yet */
    ck_assert_int_eq(apf_host_complete(x.h, 0, t, 0), 0);
    uint32_t got[4];
    ck_assert_uint_eq(deliver_all(&x, got, 4), 1);
    ck_assert_uint_eq(got[0], t);
    ck_assert_uint_eq(fake_nth(f, FAKE_READY, 0, 0)->value, x.kind == T_X86 ? VEC : PPI);
    done_fx(&x, f);
    free(f);
}
END_TEST

/* The throttle: a slot holds one "page ready" until the ACK (and the token cleared); a ring
 * holds as many as it has free entries, released by the consumer index alone. */
START_TEST(test_throttle_ack_or_consumer_index)
{
    struct fake_vmm *f = calloc(1, sizeof(*f));
    struct fx x;
    ready_fx(&x, f, _i);
    uint32_t a = fault(&x, 0x40000), b = fault(&x, 0x41000);
    ck_assert_int_eq(apf_host_complete(x.h, 0, a, 0), 0);
    ck_assert_int_eq(apf_host_complete(x.h, 0, b, 0), 0);
    int r = apf_host_vcpu_before_entry(x.h, 0, GS_USER);
    if (x.kind == T_RING) {
        ck_assert_int_eq(r, 2); /* both in one batch */
        ck_assert_int_eq(apf_host_vcpu_before_entry(x.h, 0, GS_USER), 0);
    } else {
        ck_assert_int_eq(r, 1);
        /* no ACK yet: nothing more, even though the guest could take it */
        ck_assert_int_eq(apf_host_vcpu_before_entry(x.h, 0, GS_USER), 0);
    }
    uint32_t got[4], n = guest_take(&x, got, 4);
    n += deliver_all(&x, got + n, 4 - n);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(got[0], a);
    ck_assert_uint_eq(got[1], b);
    struct apf_host_vcpu_stats s = st(&x);
    ck_assert_uint_eq(s.acks_spurious, 0);
    ck_assert_uint_eq(x.ack_calls, x.kind == T_RING ? 0 : 3); /* incl. the wake-all's */
    done_fx(&x, f);
    free(f);
}
END_TEST

/* Bursts of 1, 8 and 64 completions: every token arrives once, in completion order; the
 * ring needs one notification and no ACK call per burst, the slot one of each per token. */
static void burst(int i, uint32_t n)
{
    struct fake_vmm *f = calloc(1, sizeof(*f));
    struct fx x;
    ready_fx(&x, f, i);
    uint32_t tok[64], got[64];
    for (uint32_t k = 0; k < n; k++)
        tok[k] = fault(&x, 0x40000 + 0x1000ull * k);
    for (uint32_t k = 0; k < n; k++) /* complete in reverse: order is completion order */
        ck_assert_int_eq(apf_host_complete(x.h, 0, tok[n - 1 - k], 0), 0);
    struct apf_host_vcpu_stats s0 = st(&x);
    uint64_t acks0 = x.ack_calls;
    ck_assert_uint_eq(deliver_all(&x, got, 64), n);
    for (uint32_t k = 0; k < n; k++)
        ck_assert_uint_eq(got[k], tok[n - 1 - k]);
    struct apf_host_vcpu_stats s = st(&x);
    ck_assert_uint_eq(s.ready_delivered - s0.ready_delivered, n);
    if (x.kind == T_RING) {
        ck_assert_uint_eq(s.notifications - s0.notifications, 1);
        ck_assert_uint_eq(x.ack_calls - acks0, 0);
    } else {
        ck_assert_uint_eq(s.notifications - s0.notifications, n);
        ck_assert_uint_eq(x.ack_calls - acks0, n);
    }
    ck_assert_uint_eq(s.outstanding, 0);
    done_fx(&x, f);
    free(f);
}

START_TEST(test_burst_of_1)
{
    burst(_i, 1);
}
END_TEST

START_TEST(test_burst_of_8)
{
    burst(_i, 8);
}
END_TEST

START_TEST(test_burst_of_64)
{
    burst(_i, 64);
}
END_TEST

/* A wake-all answers every "not present" delivered before it: a token whose "not present"
 * preceded the wake-all gets no "page ready" of its own, before or after it; a later one
 * does. */
START_TEST(test_wake_all_is_not_followed_by_older_tokens)
{
    struct fake_vmm *f = calloc(1, sizeof(*f));
    struct fx x;
    ready_fx(&x, f, _i);
    uint32_t a = fault(&x, 0x40000);
    ck_assert_int_eq(apf_host_complete(x.h, 0, a, 0), 0);
    if (x.kind == T_RING) /* the ring is re-registered only while off */
        ck_assert_uint_eq(arm_call(&x, 0, APF_ARM64_FUNC_ENABLE, 0), 0);
    guest_on(&x); /* enable again: drops a, queues a wake-all */
    uint32_t b = fault(&x, 0x41000), c_tok = fault(&x, 0x42000);
    ck_assert_int_eq(apf_host_complete(x.h, 0, b, 0), 0); /* queued behind the wake-all */
    uint32_t got[8];
    ck_assert_uint_eq(deliver_all(&x, got, 8), 1);
    ck_assert_uint_eq(got[0], APF_TOKEN_WAKE_ALL);
    ck_assert_int_eq(apf_host_complete(x.h, 0, c_tok, 0), 0); /* completes after it */
    ck_assert_uint_eq(deliver_all(&x, got, 8), 0);
    uint32_t d = fault(&x, 0x43000);
    ck_assert_int_eq(apf_host_complete(x.h, 0, d, 0), 0);
    ck_assert_uint_eq(deliver_all(&x, got, 8), 1);
    ck_assert_uint_eq(got[0], d);
    struct apf_host_vcpu_stats s = st(&x);
    ck_assert_uint_eq(s.outstanding, 0);
    /* a (re-enable) and b (queued, the wake-all covers it) are dropped; c ends quietly */
    ck_assert_uint_eq(s.completions_dropped, 2);
    done_fx(&x, f);
    free(f);
}
END_TEST

START_TEST(test_disable_with_work_in_flight_sends_nothing_and_leaks_nothing)
{
    struct fake_vmm *f = calloc(1, sizeof(*f));
    struct fx x;
    ready_fx(&x, f, _i);
    uint32_t a = fault(&x, 0x40000), b = fault(&x, 0x41000);
    ck_assert_int_eq(apf_host_complete(x.h, 0, a, 0), 0);
    if (x.kind == T_X86)
        ck_assert_int_eq(apf_host_kvm_x86_wrmsr(x.x86, 0, APF_KVM_MSR_ASYNC_PF_EN, 0), 0);
    else
        ck_assert_uint_eq(arm_call(&x, 0, APF_ARM64_FUNC_ENABLE, 0), 0);
    ck_assert_int_eq(apf_host_complete(x.h, 0, b, 0), 0); /* completes after the disable */
    ck_assert_int_eq(apf_host_vcpu_before_entry(x.h, 0, GS_USER), 0);
    struct apf_host_vcpu_stats s = st(&x);
    ck_assert_uint_eq(s.outstanding, 0);
    ck_assert_uint_eq(s.completions_dropped, 2);
    ck_assert_uint_eq(fake_count(f, FAKE_READY, 0), 0);
    done_fx(&x, f);
    free(f);
}
END_TEST

/* Bad input from the guest: a slot it never clears holds everything back (and nothing is
 * overwritten); a ring consumer index that rewinds, overruns or jumps by 2^31 is refused
 * and counted, and once it is sane again every token arrives exactly once. */
START_TEST(test_guest_corrupting_its_channel_loses_nothing)
{
    struct fake_vmm *f = calloc(1, sizeof(*f));
    struct fx x;
    ready_fx(&x, f, _i);
    uint32_t tok[6], got[16];
    for (int k = 0; k < 6; k++)
        tok[k] = fault(&x, 0x40000 + 0x1000ull * (uint64_t)k);
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(apf_host_complete(x.h, 0, tok[k], 0), 0);
    uint32_t n = 0;
    if (x.kind == T_RING) {
        ck_assert_int_eq(apf_host_vcpu_before_entry(x.h, 0, GS_USER), 3);
        uint32_t prod = rd32(&x, RING_GPA + APF_RING_PROD_OFFSET);
        static const uint32_t bad[] = {0xffffffffu /* rewind */, 0x7fffffffu /* 2^31 jump */};
        for (size_t k = 0; k < 2; k++) {
            wr32(&x, RING_GPA + APF_RING_CONS_OFFSET, x.cons + bad[k]);
            ck_assert_int_eq(apf_host_complete(x.h, 0, tok[3 + k], 0), 0);
            ck_assert_int_eq(apf_host_vcpu_before_entry(x.h, 0, GS_USER), 1); /* room left */
        }
        wr32(&x, RING_GPA + APF_RING_CONS_OFFSET, prod + 7); /* past what was published */
        ck_assert_int_eq(apf_host_complete(x.h, 0, tok[5], 0), 0);
        ck_assert_int_eq(apf_host_vcpu_before_entry(x.h, 0, GS_USER), 1);
        struct apf_host_vcpu_stats s = st(&x);
        ck_assert_uint_eq(s.bad_guest_values, 3);
        ck_assert_uint_eq(rd32(&x, RING_GPA + APF_RING_PROD_OFFSET), prod + 3);
        n = guest_take(&x, got, 16); /* sane again */
    } else {
        ck_assert_int_eq(apf_host_vcpu_before_entry(x.h, 0, GS_USER), 1);
        ck_assert_uint_eq(fake_area_token(f, 0), tok[0]);
        /* The guest ACKs without clearing the token: the slot stays busy. */
        if (x.kind == T_X86)
            apf_host_kvm_x86_wrmsr(x.x86, 0, APF_KVM_MSR_ASYNC_PF_ACK, 1);
        else
            arm_call(&x, 0, APF_ARM64_FUNC_IRQ_ACK, 0);
        for (int k = 3; k < 6; k++)
            ck_assert_int_eq(apf_host_complete(x.h, 0, tok[k], 0), 0);
        ck_assert_int_eq(apf_host_vcpu_before_entry(x.h, 0, GS_USER), 0);
        ck_assert_uint_eq(fake_area_token(f, 0), tok[0]); /* not overwritten */
        got[n++] = tok[0];
        fake_area_write(f, 0, 0, 0); /* sane again: cleared (the ACK came already) */
    }
    n += deliver_all(&x, got + n, 16 - n);
    ck_assert_uint_eq(n, 6);
    for (int k = 0; k < 6; k++)
        ck_assert_uint_eq(got[k], tok[k]);
    ck_assert_uint_eq(st(&x).outstanding, 0);
    done_fx(&x, f);
    free(f);
}
END_TEST

/* Migration: the frontend's state moves to another engine; the destination delivers a
 * wake-all first (through the same channel kind), then works as before. */
START_TEST(test_migration_restores_channel_and_sends_wake_all)
{
    struct fake_vmm *f = calloc(1, sizeof(*f));
    struct fx x, y;
    ready_fx(&x, f, _i);
    fault(&x, 0x40000); /* in flight: not part of the state */
    mk(&y, x.kind, f);  /* same guest memory */
    if (x.kind == T_X86) {
        uint64_t en, vec;
        ck_assert_int_eq(apf_host_kvm_x86_rdmsr(x.x86, 0, APF_KVM_MSR_ASYNC_PF_EN, &en), 0);
        ck_assert_int_eq(apf_host_kvm_x86_rdmsr(x.x86, 0, APF_KVM_MSR_ASYNC_PF_INT, &vec), 0);
        ck_assert_int_eq(apf_host_kvm_x86_restore(y.x86, 0, vec, en), 0);
    } else {
        struct apf_host_kvm_arm64_state s;
        ck_assert_int_eq(apf_host_kvm_arm64_get_state(x.arm, 0, &s), 0);
        ck_assert_uint_eq(s.ring != 0, x.kind == T_RING);
        ck_assert_int_eq(apf_host_kvm_arm64_set_state(y.arm, 0, &s), 0);
    }
    y.cons = 0; /* the ring restarts empty */
    uint32_t got[4];
    ck_assert_uint_eq(deliver_all(&y, got, 4), 1);
    ck_assert_uint_eq(got[0], APF_TOKEN_WAKE_ALL);
    uint32_t t = fault(&y, 0x42000);
    ck_assert_int_eq(apf_host_complete(y.h, 0, t, 0), 0);
    ck_assert_uint_eq(deliver_all(&y, got, 4), 1);
    ck_assert_uint_eq(got[0], t);
    fini(&y);
    done_fx(&x, f);
    free(f);
}
END_TEST

/* Ring registration is validated before anything changes. */
START_TEST(test_ring_registration_is_validated)
{
    struct fake_vmm *f = calloc(1, sizeof(*f));
    fake_init(f);
    struct fx x;
    mk(&x, T_RING, f);
    ck_assert_int_eq(apf_host_kvm_arm64_set_irq(x.arm, 0, PPI), 0);
    static const uint64_t bad[] = {
        RING_GPA | 0u,                  /* 1 entry */
        RING_GPA | 10u,                 /* 1024: does not fit the page */
        (RING_GPA + 0x40) | 6u,         /* not page aligned */
        (uint64_t)FAKE_MEM_SIZE | 6u,   /* not guest memory */
        (FAKE_MEM_SIZE - 0x800u) | 6u}; /* not page aligned, crosses the end */
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
        ck_assert_uint_eq(arm_call(&x, 0, APF_ARM64_FUNC_RING, bad[k]),
                          (uint64_t)(int64_t)APF_SMCCC_INVALID_PARAMETER);
    /* ENABLE with RING but no ring: refused, APF stays off */
    ck_assert_uint_eq(arm_call(&x, 0, APF_ARM64_FUNC_ENABLE, FAKE_AREA(0) | 5u),
                      (uint64_t)(int64_t)APF_SMCCC_INVALID_PARAMETER);
    ck_assert_int_eq(apf_host_vcpu_enabled(x.h, 0), 0);
    guest_on(&x);
    /* re-registering while the ring is in use is refused */
    ck_assert_uint_eq(arm_call(&x, 0, APF_ARM64_FUNC_RING, RING_GPA | 4u),
                      (uint64_t)(int64_t)APF_SMCCC_INVALID_PARAMETER);
    ck_assert_uint_eq(rd32(&x, RING_GPA + APF_RING_SIZE_OFFSET), RING_N);
    done_fx(&x, f);
    free(f);
}
END_TEST

/* ---- s390 pfault rows (issue 12) --------------------------------------------------------------
 * The same cases through s390's own planes: DIAGNOSE X'258' blocks in (big-endian), the
 * 0x2603 interruption parameters out. Where s390 differs it is asserted: no wake-all after
 * enable, no throttle, no ACK call, completions floating to whichever vCPU enters. */

#define S390_BLOCK 0x2000u
#define S390_TOK 0x3000u
#define S390_ON {APF_S390_PSW_MASK_EXT | APF_S390_PSW_MASK_PSTATE, APF_S390_CR0_SERVICE_SIGNAL, 0, 0}

struct s390x {
    struct fake_vmm *f;
    struct apf_host *h;
    struct apf_host_s390 *fe;
};

static void s390_block(struct fake_vmm *f, uint16_t sub, uint64_t tok, uint64_t mask, uint64_t res)
{
    uint8_t *p = f->mem + S390_BLOCK;
    struct apf_s390_refbk b = {0x0258, sub, 5, 2, tok, mask, mask, res};
    apf_s390_refbk_encode(&b, p);
}

static uint64_t s390_diag(struct s390x *x, uint32_t vcpu)
{
    uint64_t ry = 99;
    ck_assert_int_eq(apf_host_s390_diag258(x->fe, vcpu, S390_BLOCK, &ry), 0);
    return ry;
}

static void s390_mk(struct s390x *x, struct fake_vmm *f)
{
    x->f = f;
    fake_init(f);
    struct apf_host_config c = fake_config(f, 2, 0, &apf_host_transport_s390);
    c.max_outstanding = 128;
    ck_assert_int_eq(apf_host_create(&c, &x->h), 0);
    ck_assert_int_eq(apf_host_s390_create(x->h, NULL, &x->fe), 0);
}

static void s390_on(struct s390x *x)
{
    s390_block(x->f, 0, S390_TOK, 1ull << 48, 0x8000000000000000ull);
    ck_assert_uint_eq(s390_diag(x, 0), 0);
}

static void s390_fini(struct s390x *x)
{
    apf_host_s390_destroy(x->fe);
    apf_host_destroy(x->h);
    fake_fini(x->f);
}

/* A fault with task token 0x8000000000000000 | id: returns the engine token. */
static uint32_t s390_fault(struct s390x *x, uint64_t gpa, uint32_t id)
{
    apf_s390_put_be64(x->f->mem + S390_TOK, 0x8000000000000000ull | id);
    const struct apf_host_s390_cpu on = S390_ON;
    uint64_t p = 0;
    ck_assert_int_eq(apf_host_s390_fault(x->fe, 0, gpa, &on, &p), APF_FAULT_ASYNC);
    ck_assert_uint_eq(p, 0x8000000000000000ull | id);
    size_t n = fake_count(x->f, FAKE_NP, 0);
    return fake_nth(x->f, FAKE_NP, 0, n - 1)->value;
}

/* Entries of vCPU `vcpu` until nothing more comes: the parameters in arrival order. */
static uint32_t s390_take_all(struct s390x *x, uint32_t vcpu, uint64_t *got, uint32_t max)
{
    const struct apf_host_s390_cpu on = S390_ON;
    uint32_t n = 0;
    while (n < max && apf_host_s390_before_entry(x->fe, vcpu, &on, &got[n]) == 1)
        n++;
    return n;
}

START_TEST(test_s390_row_enable_queues_no_wake_all)
{
    struct fake_vmm *f = calloc(1, sizeof(*f));
    struct s390x x;
    s390_mk(&x, f);
    s390_on(&x);
    uint64_t got[4];
    ck_assert_uint_eq(s390_take_all(&x, 0, got, 4), 0);
    ck_assert_uint_eq(fake_count(f, FAKE_READY, 0), 0);
    struct apf_host_vcpu_stats s;
    ck_assert_int_eq(apf_host_vcpu_stats(x.h, 0, &s), 0);
    ck_assert_uint_eq(s.wake_all_delivered, 0);
    s390_fini(&x);
    free(f);
}
END_TEST

/* Bursts of 1, 8 and 64: every token once, in completion order, one notification per
 * burst and no ACK call; taken by the other vCPU as readily as by the faulting one. */
START_TEST(test_s390_row_burst)
{
    static const uint32_t sizes[] = {1, 8, 64};
    uint32_t n = sizes[_i % 3], taker = (uint32_t)_i / 3;
    struct fake_vmm *f = calloc(1, sizeof(*f));
    struct s390x x;
    s390_mk(&x, f);
    s390_on(&x);
    uint32_t tok[64];
    for (uint32_t k = 0; k < n; k++)
        tok[k] = s390_fault(&x, 0x40000 + 0x1000ull * k, 0x100 + k);
    for (uint32_t k = 0; k < n; k++)
        ck_assert_int_eq(apf_host_complete(x.h, 0, tok[n - 1 - k], 0), 0);
    const struct apf_host_s390_cpu off = {APF_S390_PSW_MASK_PSTATE, APF_S390_CR0_SERVICE_SIGNAL,
                                          0, 0};
    uint64_t got[64], p;
    if (taker == 1) /* vCPU 0 cannot take it now: it floats to vCPU 1 */
        ck_assert_int_eq(apf_host_s390_before_entry(x.fe, 0, &off, &p), 0);
    ck_assert_uint_eq(s390_take_all(&x, taker, got, 64), n);
    for (uint32_t k = 0; k < n; k++)
        ck_assert_uint_eq(got[k], 0x8000000000000000ull | (0x100 + n - 1 - k));
    struct apf_host_vcpu_stats s;
    ck_assert_int_eq(apf_host_vcpu_stats(x.h, 0, &s), 0);
    ck_assert_uint_eq(s.ready_delivered, n);
    ck_assert_uint_eq(s.notifications, 1);
    ck_assert_uint_eq(s.acks, 0);
    ck_assert_uint_eq(s.outstanding, 0);
    s390_fini(&x);
    free(f);
}
END_TEST

START_TEST(test_s390_row_disable_with_work_in_flight_sends_nothing)
{
    struct fake_vmm *f = calloc(1, sizeof(*f));
    struct s390x x;
    s390_mk(&x, f);
    s390_on(&x);
    uint32_t a = s390_fault(&x, 0x40000, 1), b = s390_fault(&x, 0x41000, 2);
    ck_assert_int_eq(apf_host_complete(x.h, 0, a, 0), 0);
    s390_block(f, 1, 0, 0, 0); /* CANCEL */
    ck_assert_uint_eq(s390_diag(&x, 0), 0);
    ck_assert_int_eq(apf_host_complete(x.h, 0, b, 0), 0);
    uint64_t got[4];
    ck_assert_uint_eq(s390_take_all(&x, 0, got, 4) + s390_take_all(&x, 1, got, 4), 0);
    struct apf_host_vcpu_stats s;
    ck_assert_int_eq(apf_host_vcpu_stats(x.h, 0, &s), 0);
    ck_assert_uint_eq(s.outstanding, 0);
    ck_assert_uint_eq(s.completions_dropped, 2);
    s390_fini(&x);
    free(f);
}
END_TEST

START_TEST(test_s390_row_migration_restores_registers_without_wake_all)
{
    struct fake_vmm *f = calloc(1, sizeof(*f)), *g = calloc(1, sizeof(*g));
    struct s390x x, y;
    s390_mk(&x, f);
    s390_on(&x);
    s390_fault(&x, 0x40000, 7); /* in flight: not part of the state */
    struct apf_host_s390_state st;
    ck_assert_int_eq(apf_host_s390_get_state(x.fe, 0, &st), 0);
    s390_mk(&y, g);
    ck_assert_int_eq(apf_host_s390_set_state(y.fe, 0, &st), 0);
    uint64_t got[4];
    ck_assert_uint_eq(s390_take_all(&y, 0, got, 4), 0);
    uint32_t t = s390_fault(&y, 0x42000, 8);
    ck_assert_int_eq(apf_host_complete(y.h, 0, t, 0), 0);
    ck_assert_uint_eq(s390_take_all(&y, 0, got, 4), 1);
    ck_assert_uint_eq(got[0], 0x8000000000000008ull);
    s390_fini(&y);
    s390_fini(&x);
    free(f);
    free(g);
}
END_TEST

static Suite *transports_suite(void)
{
    Suite *s = suite_create("transports");
    TCase *tc = tcase_create("table");
    tcase_add_loop_test(tc, test_enable_delivers_wake_all_first_then_nothing, 0, T_COUNT);
    tcase_add_loop_test(tc, test_not_present_then_ready_carries_the_exact_token, 0, T_COUNT);
    tcase_add_loop_test(tc, test_throttle_ack_or_consumer_index, 0, T_COUNT);
    tcase_add_loop_test(tc, test_burst_of_1, 0, T_COUNT);
    tcase_add_loop_test(tc, test_burst_of_8, 0, T_COUNT);
    tcase_add_loop_test(tc, test_burst_of_64, 0, T_COUNT);
    tcase_add_loop_test(tc, test_wake_all_is_not_followed_by_older_tokens, 0, T_COUNT);
    tcase_add_loop_test(tc, test_disable_with_work_in_flight_sends_nothing_and_leaks_nothing, 0,
                        T_COUNT);
    tcase_add_loop_test(tc, test_guest_corrupting_its_channel_loses_nothing, 0, T_COUNT);
    tcase_add_loop_test(tc, test_migration_restores_channel_and_sends_wake_all, 0, T_COUNT);
    suite_add_tcase(s, tc);
    TCase *tr = tcase_create("ring");
    tcase_add_test(tr, test_ring_registration_is_validated);
    suite_add_tcase(s, tr);
    TCase *ts = tcase_create("s390");
    tcase_add_test(ts, test_s390_row_enable_queues_no_wake_all);
    tcase_add_loop_test(ts, test_s390_row_burst, 0, 6);
    tcase_add_test(ts, test_s390_row_disable_with_work_in_flight_sends_nothing);
    tcase_add_test(ts, test_s390_row_migration_restores_registers_without_wake_all);
    suite_add_tcase(s, ts);
    (void)kind_name;
    return s;
}

APF_CHECK_MAIN(transports_suite)
