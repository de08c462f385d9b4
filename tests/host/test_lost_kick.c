/* SPDX-License-Identifier: MIT */
/*
 * The lost-kick litmus on real threads (docs/hardening.md). Each round: vCPU 0 has a "page
 * ready" in its slot awaiting the ACK (ready_pending set) and a second fault T in flight.
 * Then, at once on two threads:
 *   vCPU:      apf_host_vcpu_ack(); apf_host_vcpu_before_entry()  (the ACK exit, then entry)
 *   completer: apf_host_complete(T)                                (push, then kick rule)
 * The forbidden outcome: the entry delivered nothing AND the completer did not kick - T's
 * "page ready" would wait until some unrelated exit (for ever in an idle guest). Both sides
 * store then load the other's variable (store-buffer pattern); the engine's seq_cst pair
 * forbids it. With it weakened to release/acquire (KVM before its 2025 fix) the outcome
 * shows up on x86 within about a million rounds.
 *   APF_LITMUS_ROUNDS (default 100000).
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "apf_check.h"
#include "fake_vmm.h"

#define EN_INT (APF_EN_ENABLED | APF_EN_DELIVERY_AS_INT)

static struct {
    struct fake_vmm f;
    struct apf_host_ops ops;
    struct apf_host *h;
    atomic_uint kicks;
    uint32_t last_np, last_submit;
    atomic_int go;   /* round number the threads start */
    atomic_int done; /* threads finished this round */
    uint32_t token;  /* T of this round */
    int delivered;   /* the vCPU's entry posted T */
} L;

static void l_submit(void *ctx, uint32_t vcpu, uint32_t token, uint64_t gpa)
{
    (void)ctx, (void)vcpu, (void)gpa;
    L.last_submit = token;
}
static void l_np(void *ctx, uint32_t vcpu, uint32_t token)
{
    (void)ctx, (void)vcpu;
    L.last_np = token;
}
static void l_ready(void *ctx, uint32_t vcpu, uint32_t vector)
{
    (void)ctx, (void)vcpu, (void)vector;
}
static void l_kick(void *ctx, uint32_t vcpu)
{
    (void)ctx, (void)vcpu;
    atomic_fetch_add(&L.kicks, 1);
}
static int l_read(void *ctx, uint64_t gpa, void *buf, uint32_t len)
{
    (void)ctx;
    return L.f.ops.read_guest(&L.f, gpa, buf, len);
}
static int l_write(void *ctx, uint64_t gpa, const void *buf, uint32_t len)
{
    (void)ctx;
    return L.f.ops.write_guest(&L.f, gpa, buf, len);
}

static int rounds(void)
{
    const char *e = getenv("APF_LITMUS_ROUNDS");
    return e ? atoi(e) : 100000;
}

/* The guest consumes the slot (reads and clears the token). */
static uint32_t guest_take(void)
{
    uint32_t t = fake_area_token(&L.f, 0);
    fake_area_write(&L.f, 0, fake_area_flags(&L.f, 0), 0);
    return t;
}

static uint32_t fault(uint64_t gpa)
{
    ck_assert_int_eq(apf_host_vcpu_fault(L.h, 0, gpa, GS_USER), APF_FAULT_ASYNC);
    fake_area_write(&L.f, 0, 0, fake_area_token(&L.f, 0)); /* the guest read the reason */
    ck_assert_uint_eq(L.last_submit, L.last_np);
    return L.last_np;
}

static void *completer(void *arg)
{
    (void)arg;
    int n = rounds();
    for (int r = 1; r <= n; r++) {
        while (atomic_load_explicit(&L.go, memory_order_acquire) != r)
            ;
        if (apf_host_complete(L.h, 0, L.token, 0) != 0)
            abort();
        atomic_fetch_add(&L.done, 1);
    }
    return NULL;
}

START_TEST(test_lost_kick_litmus)
{
    fake_init(&L.f);
    L.ops = (struct apf_host_ops){.submit = l_submit,
                                  .inject_not_present = l_np,
                                  .inject_ready = l_ready,
                                  .kick = l_kick,
                                  .read_guest = l_read,
                                  .write_guest = l_write};
    struct apf_host_config c = {
        .n_vcpus = 1, .transport = &apf_host_transport_kvm_x86, .ops = &L.ops, .ctx = &L};
    ck_assert_int_eq(apf_host_create(&c, &L.h), 0);
    ck_assert_int_eq(apf_host_vcpu_set_vector(L.h, 0, 0xec), 0);
    ck_assert_int_eq(apf_host_vcpu_enable(L.h, 0, FAKE_AREA(0), EN_INT), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(L.h, 0, GS_USER), 1); /* the wake-all */
    ck_assert_uint_eq(guest_take(), APF_TOKEN_WAKE_ALL);
    ck_assert_int_eq(apf_host_vcpu_ack(L.h, 0), 1);

    pthread_t th;
    pthread_create(&th, NULL, completer, NULL);
    int n = rounds();
    long stranded = 0, by_entry = 0, by_kick = 0;
    for (int r = 1; r <= n; r++) {
        /* U delivered and read, its ACK not sent yet (ready_pending); T in flight. */
        uint32_t u = fault(0x100000 + 0x2000ull * (uint64_t)(r % 1024));
        uint32_t t = fault(0x101000 + 0x2000ull * (uint64_t)(r % 1024));
        ck_assert_int_eq(apf_host_complete(L.h, 0, u, 0), 0);
        ck_assert_int_eq(apf_host_vcpu_before_entry(L.h, 0, GS_USER), 1);
        ck_assert_uint_eq(guest_take(), u);
        unsigned k0 = atomic_load(&L.kicks);
        L.token = t;
        atomic_store_explicit(&L.go, r, memory_order_release);
        /* the race: the ACK exit and the entry after it, against the completion */
        ck_assert_int_eq(apf_host_vcpu_ack(L.h, 0), 1);
        int posted = apf_host_vcpu_before_entry(L.h, 0, GS_USER);
        while (atomic_load(&L.done) != r)
            ;
        int kicked = atomic_load(&L.kicks) != k0;
        if (posted == 0 && !kicked)
            stranded++;
        if (posted)
            by_entry++;
        else
            by_kick++;
        /* the kick's entry (or the next exit) delivers T; the guest takes it and ACKs */
        if (!posted)
            ck_assert_int_eq(apf_host_vcpu_before_entry(L.h, 0, GS_USER), 1);
        ck_assert_uint_eq(guest_take(), t);
        ck_assert_int_eq(apf_host_vcpu_ack(L.h, 0), 1);
    }
    pthread_join(th, NULL);
    printf("lost-kick litmus: %d rounds: %ld delivered at the entry, %ld by the kick, "
           "%ld stranded (no delivery, no kick)\n",
           n, by_entry, by_kick, stranded);
    ck_assert_int_eq(stranded, 0);
    apf_host_destroy(L.h);
    fake_fini(&L.f);
}
END_TEST

static Suite *litmus_suite(void)
{
    Suite *s = suite_create("lost_kick");
    TCase *tc = tcase_create("litmus");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_lost_kick_litmus);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(litmus_suite)
