/* SPDX-License-Identifier: MIT */
/* The engine's worker pool: resolve runs on a worker, completes, kicks; a disabled vCPU's
 * queued work skips the fetch; destroy waits for resolves in progress. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "apf_check.h"
#include "fake_vmm.h"

#define EN_INT (APF_EN_ENABLED | APF_EN_DELIVERY_AS_INT)

static struct fake_vmm F;

static void setup(void)
{
    fake_init(&F);
}

static void teardown(void)
{
    fake_fini(&F);
}

/* Waits (bounded) until the vCPU has a "page ready" to deliver; returns before_entry's
 * result. Waiting on kicks is how an embedder does it; here we poll the kick counter. */
static int wait_ready(struct apf_host *h, uint32_t vcpu)
{
    for (int i = 0; i < 100000; i++) {
        int r = apf_host_vcpu_before_entry(h, vcpu, GS_USER);
        if (r != 0)
            return r;
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

START_TEST(test_workers_resolve_and_ready_follows)
{
    struct apf_host_config c = fake_config(&F, 2, 2, &apf_host_transport_kvm_x86);
    struct apf_host *h = fake_host_ready(&F, &c, EN_INT);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(apf_host_vcpu_fault(h, 1, 0x9000, GS_USER), APF_FAULT_ASYNC);
    uint32_t t = fake_nth(&F, FAKE_NP, 1, 0)->value;
    ck_assert_int_eq(wait_ready(h, 1), 1);
    ck_assert_uint_eq(fake_area_token(&F, 1), t);
    ck_assert_uint_eq(atomic_load(&F.resolves), 1);
    const struct fake_log_entry *r = fake_nth(&F, FAKE_RESOLVE, 1, 0);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->gpa, 0x9000);
    /* resolve came after the injection */
    ck_assert_int_lt(fake_index(&F, FAKE_NP, 1, 0), fake_index(&F, FAKE_RESOLVE, 1, 0));
    ck_assert_uint_eq(fake_count(&F, FAKE_SUBMIT, 1), 0); /* pool mode never calls submit */
    apf_host_destroy(h);
    /* and a kick told the vCPU: the worker kicks right after its push, which the polling
     * vCPU may beat; destroy has joined the workers, so the kick is logged by now */
    ck_assert_uint_ge(fake_count(&F, FAKE_KICK, 1), 1);
}
END_TEST

START_TEST(test_many_faults_each_answered_exactly_once)
{
    struct apf_host_config c = fake_config(&F, 1, 4, &apf_host_transport_kvm_x86);
    struct apf_host *h = fake_host_ready(&F, &c, EN_INT);
    ck_assert_ptr_nonnull(h);
    uint32_t toks[64];
    for (int i = 0; i < 64; i++) {
        ck_assert_int_eq(apf_host_vcpu_fault(h, 0, 0x10000 + (uint64_t)i * 0x1000, GS_USER),
                         APF_FAULT_ASYNC);
        toks[i] = fake_nth(&F, FAKE_NP, 0, (size_t)i)->value;
    }
    int seen[64] = {0};
    for (int n = 0; n < 64; n++) {
        ck_assert_int_eq(wait_ready(h, 0), 1);
        uint32_t t = fake_area_token(&F, 0);
        int found = 0;
        for (int i = 0; i < 64; i++)
            if (toks[i] == t) {
                ck_assert_int_eq(seen[i], 0); /* exactly once */
                seen[i] = 1;
                found = 1;
            }
        ck_assert_int_eq(found, 1);
        fake_area_write(&F, 0, 0, 0);
        ck_assert_int_eq(apf_host_vcpu_ack(h, 0), 1);
    }
    struct apf_host_vcpu_stats s;
    apf_host_vcpu_stats(h, 0, &s);
    ck_assert_uint_eq(s.ready_delivered, 64);
    ck_assert_uint_eq(s.outstanding, 0);
    apf_host_destroy(h);
}
END_TEST

/* 3 vCPUs x 64 slots: a job ring of 192, not a power of two. 600 jobs go round it three
 * times; each fault is answered by exactly its own token. */
START_TEST(test_ring_of_odd_size_wraps_without_losing_jobs)
{
    struct apf_host_config c = fake_config(&F, 3, 1, &apf_host_transport_kvm_x86);
    struct apf_host *h = fake_host_ready(&F, &c, EN_INT);
    ck_assert_ptr_nonnull(h);
    for (uint32_t round = 0; round < 200; round++) {
        uint32_t toks[3];
        for (uint32_t v = 0; v < 3; v++) {
            uint64_t gpa = 0x100000 + ((uint64_t)round * 3 + v) * 0x1000;
            ck_assert_int_eq(apf_host_vcpu_fault(h, v, gpa, GS_USER), APF_FAULT_ASYNC);
            toks[v] = fake_nth(&F, FAKE_NP, v, round)->value;
        }
        for (uint32_t v = 0; v < 3; v++) {
            ck_assert_int_eq(wait_ready(h, v), 1);
            ck_assert_uint_eq(fake_area_token(&F, v), toks[v]);
            fake_area_write(&F, v, 0, 0);
            ck_assert_int_eq(apf_host_vcpu_ack(h, v), 1);
        }
    }
    ck_assert_uint_eq(atomic_load(&F.resolves), 600);
    for (uint32_t v = 0; v < 3; v++) {
        struct apf_host_vcpu_stats s;
        apf_host_vcpu_stats(h, v, &s);
        ck_assert_uint_eq(s.ready_delivered, 200);
        ck_assert_uint_eq(s.outstanding, 0);
    }
    apf_host_destroy(h);
}
END_TEST

/* With workers, each job completes its own token: apf_host_complete() is refused and
 * changes nothing (the worker's completion still brings exactly one "page ready"). */
START_TEST(test_embedder_complete_refused_with_workers)
{
    struct apf_host_config c = fake_config(&F, 1, 1, &apf_host_transport_kvm_x86);
    struct apf_host *h = fake_host_ready(&F, &c, EN_INT);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(apf_host_vcpu_fault(h, 0, 0x9000, GS_USER), APF_FAULT_ASYNC);
    uint32_t t = fake_nth(&F, FAKE_NP, 0, 0)->value;
    ck_assert_int_eq(apf_host_complete(h, 0, t, 0), APF_EINVAL);
    ck_assert_int_eq(apf_host_complete(h, 0, t, APF_EIO), APF_EINVAL);
    ck_assert_int_eq(wait_ready(h, 0), 1);
    ck_assert_uint_eq(fake_area_token(&F, 0), t);
    struct apf_host_vcpu_stats s;
    apf_host_vcpu_stats(h, 0, &s);
    ck_assert_uint_eq(s.completions, 1);
    ck_assert_uint_eq(s.resolve_failures, 0);
    ck_assert_uint_eq(s.outstanding, 0);
    apf_host_destroy(h);
}
END_TEST

START_TEST(test_resolve_failure_reaches_the_vcpu)
{
    struct apf_host_config c = fake_config(&F, 1, 1, &apf_host_transport_kvm_x86);
    struct apf_host *h = fake_host_ready(&F, &c, EN_INT);
    ck_assert_ptr_nonnull(h);
    atomic_store(&F.resolve_status, APF_EIO);
    ck_assert_int_eq(apf_host_vcpu_fault(h, 0, 0x9000, GS_USER), APF_FAULT_ASYNC);
    ck_assert_int_eq(wait_ready(h, 0), 1);
    struct apf_host_vcpu_stats s;
    apf_host_vcpu_stats(h, 0, &s);
    ck_assert_uint_eq(s.resolve_failures, 1);
    fake_area_write(&F, 0, 0, 0);
    apf_host_vcpu_ack(h, 0);
    ck_assert_int_eq(apf_host_vcpu_fault(h, 0, 0x9000, GS_USER), APF_FAULT_SYNC);
    apf_host_destroy(h);
}
END_TEST

START_TEST(test_disabled_vcpu_queued_work_skips_resolve)
{
    struct apf_host_config c = fake_config(&F, 1, 1, &apf_host_transport_kvm_x86);
    struct apf_host *h = fake_host_ready(&F, &c, EN_INT);
    ck_assert_ptr_nonnull(h);
    atomic_store(&F.gate_closed, 1); /* the one worker blocks in its first resolve */
    ck_assert_int_eq(apf_host_vcpu_fault(h, 0, 0x9000, GS_USER), APF_FAULT_ASYNC);
    ck_assert_int_eq(apf_host_vcpu_fault(h, 0, 0xa000, GS_USER), APF_FAULT_ASYNC);
    ck_assert_int_eq(apf_host_vcpu_fault(h, 0, 0xb000, GS_USER), APF_FAULT_ASYNC);
    ck_assert_int_eq(apf_host_vcpu_disable(h, 0), 3);
    atomic_store(&F.gate_closed, 0);
    /* all three complete (dropped); at most the first one was really fetched */
    struct apf_host_vcpu_stats s;
    for (int i = 0; i < 20000; i++) {
        apf_host_vcpu_before_entry(h, 0, GS_USER);
        apf_host_vcpu_stats(h, 0, &s);
        if (s.completions_dropped == 3)
            break;
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    ck_assert_uint_eq(s.completions_dropped, 3);
    ck_assert_uint_eq(s.outstanding, 0);
    ck_assert_uint_le(atomic_load(&F.resolves), 1);
    ck_assert_uint_eq(fake_count(&F, FAKE_READY, 0), 0);
    apf_host_destroy(h);
}
END_TEST

static void *open_gate_later(void *arg)
{
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    atomic_store((atomic_int *)arg, 0);
    return NULL;
}

START_TEST(test_destroy_waits_for_resolve_in_progress)
{
    struct apf_host_config c = fake_config(&F, 1, 2, &apf_host_transport_kvm_x86);
    struct counting_alloc ca;
    counting_alloc_init(&ca, 0);
    c.alloc = &ca.a;
    struct apf_host *h = fake_host_ready(&F, &c, EN_INT);
    ck_assert_ptr_nonnull(h);
    atomic_store(&F.gate_closed, 1);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(apf_host_vcpu_fault(h, 0, 0x10000 + (uint64_t)i * 0x1000, GS_USER),
                         APF_FAULT_ASYNC);
    /* Deterministic premise: a worker is inside resolve (blocked on the gate). */
    for (int i = 0; atomic_load(&F.resolves_started) == 0; i++) {
        ck_assert_int_lt(i, 100000);
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    pthread_t t;
    pthread_create(&t, NULL, open_gate_later, &F.gate_closed);
    apf_host_destroy(h); /* must not return while a worker is inside resolve */
    ck_assert_int_eq(atomic_load(&F.gate_closed), 0);
    pthread_join(t, NULL);
    ck_assert_int_eq(atomic_load(&ca.live_blocks), 0);
    ck_assert_uint_le(atomic_load(&F.resolves), 10);
}
END_TEST

/* Spin-then-park: with a worker polling for jobs, every fault is still answered exactly
 * once, jobs queued while it spins are taken, and destroy does not wait out a spin. */
START_TEST(test_spinning_workers_answer_every_fault_once)
{
    struct apf_host_config c = fake_config(&F, 1, 3, &apf_host_transport_kvm_x86);
    c.worker_spin_ns = 500000;
    struct apf_host *h = fake_host_ready(&F, &c, EN_INT);
    ck_assert_ptr_nonnull(h);
    int seen = 0;
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 8; i++)
            ck_assert_int_eq(apf_host_vcpu_fault(h, 0, 0x10000 + (uint64_t)(round * 8 + i) * 0x1000,
                                                 GS_USER),
                             APF_FAULT_ASYNC);
        for (int n = 0; n < 8; n++) {
            ck_assert_int_eq(wait_ready(h, 0), 1);
            fake_area_write(&F, 0, 0, 0);
            ck_assert_int_eq(apf_host_vcpu_ack(h, 0), 1);
            seen++;
        }
    }
    struct apf_host_vcpu_stats s;
    apf_host_vcpu_stats(h, 0, &s);
    ck_assert_uint_eq(s.ready_delivered, 160);
    ck_assert_int_eq(seen, 160);
    ck_assert_uint_eq(atomic_load(&F.resolves), 160);
    apf_host_destroy(h); /* a worker may be spinning right now */
}
END_TEST

START_TEST(test_spin_longer_than_a_millisecond_is_refused)
{
    struct apf_host_config c = fake_config(&F, 1, 1, &apf_host_transport_kvm_x86);
    c.worker_spin_ns = 1000001;
    struct apf_host *h = NULL;
    ck_assert_int_eq(apf_host_create(&c, &h), APF_EINVAL);
    ck_assert_ptr_null(h);
}
END_TEST

static Suite *pool_suite(void)
{
    Suite *s = suite_create("host_pool");
    TCase *tc = tcase_create("workers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_workers_resolve_and_ready_follows);
    tcase_add_test(tc, test_many_faults_each_answered_exactly_once);
    tcase_add_test(tc, test_ring_of_odd_size_wraps_without_losing_jobs);
    tcase_add_test(tc, test_embedder_complete_refused_with_workers);
    tcase_add_test(tc, test_resolve_failure_reaches_the_vcpu);
    tcase_add_test(tc, test_disabled_vcpu_queued_work_skips_resolve);
    tcase_add_test(tc, test_destroy_waits_for_resolve_in_progress);
    tcase_add_test(tc, test_spinning_workers_answer_every_fault_once);
    tcase_add_test(tc, test_spin_longer_than_a_millisecond_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(pool_suite)
