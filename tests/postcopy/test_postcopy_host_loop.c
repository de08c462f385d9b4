/* SPDX-License-Identifier: MIT */
/*
 * The event loop of apf-postcopy's event-loop host (examples/postcopy/host_loop.c): every
 * request is prepared, then fired exactly once, never before its deadline, with the buffer
 * its preparation filled; beyond its capacity a request is refused; destroying the loop
 * with requests in flight drops them. With and without spinning. Behaviour only: how late
 * a request fires is never asserted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apf_check.h"
#include "host_loop.h"
#include "latency.h"

#define N_REQ 400
#define CAP 32

struct rec {
    uint64_t deadline[N_REQ];
    _Atomic uint64_t fired_at[N_REQ];
    _Atomic int prepared[N_REQ], fired[N_REQ], bad_buf[N_REQ];
    _Atomic int in_flight;
};

static void t_prepare(void *ctx, const struct pc_loop_job *j)
{
    struct rec *r = ctx;
    ck_assert_ptr_nonnull(j->buf);
    memset(j->buf, (int)(j->page & 0xff), 64);
    atomic_fetch_add(&r->prepared[j->page], 1);
}

static void t_fire(void *ctx, const struct pc_loop_job *j)
{
    struct rec *r = ctx;
    uint64_t now = pc_now_ns();
    const unsigned char *b = j->buf;
    for (int i = 0; i < 64; i++)
        if (b[i] != (unsigned char)(j->page & 0xff))
            atomic_store(&r->bad_buf[j->page], 1);
    atomic_store(&r->fired_at[j->page], now);
    atomic_fetch_add(&r->fired[j->page], 1);
    atomic_fetch_sub(&r->in_flight, 1);
}

static void run_requests(bool spin)
{
    struct rec *r = calloc(1, sizeof(*r));
    ck_assert_ptr_nonnull(r);
    struct pc_loop_config c = {.capacity = CAP, .buf_size = 64, .spin = spin,
                               .prepare_ns = 10000, .prepare = t_prepare, .fire = t_fire,
                               .ctx = r};
    struct pc_loop *l;
    ck_assert_int_eq(pc_loop_create(&c, &l), 0);
    uint64_t x = 12345;
    for (uint32_t i = 0; i < N_REQ; i++) {
        while (atomic_load(&r->in_flight) >= CAP)
            pc_sleep_ns(10000);
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        /* deadlines from already past to 2 ms ahead, in no order */
        uint64_t now = pc_now_ns();
        r->deadline[i] = now - 50000 + (x >> 33) % 2050000;
        struct pc_loop_job j = {.deadline = r->deadline[i], .page = i, .vcpu = 0, .token = i};
        atomic_fetch_add(&r->in_flight, 1);
        ck_assert_int_eq(pc_loop_submit(l, &j), 0);
    }
    for (int tries = 0; atomic_load(&r->in_flight) > 0 && tries < 10000; tries++)
        pc_sleep_ns(1000000); /* a bound against a hang, not a timing assertion */
    ck_assert_int_eq(atomic_load(&r->in_flight), 0);
    for (uint32_t i = 0; i < N_REQ; i++) {
        ck_assert_int_eq(atomic_load(&r->prepared[i]), 1);
        ck_assert_int_eq(atomic_load(&r->fired[i]), 1);
        ck_assert_int_eq(atomic_load(&r->bad_buf[i]), 0);
        ck_assert_uint_ge(atomic_load(&r->fired_at[i]), r->deadline[i]);
    }
    pc_loop_destroy(l);
    free(r);
}

START_TEST(test_each_request_fires_once_never_early_with_its_prepared_buffer)
{
    run_requests(false);
}
END_TEST

START_TEST(test_each_request_fires_once_never_early_when_spinning)
{
    run_requests(true);
}
END_TEST

START_TEST(test_beyond_capacity_is_refused_and_destroy_drops_in_flight)
{
    struct rec *r = calloc(1, sizeof(*r));
    struct pc_loop_config c = {.capacity = 2, .buf_size = 64, .prepare_ns = 10000,
                               .prepare = t_prepare, .fire = t_fire, .ctx = r};
    struct pc_loop *l;
    ck_assert_int_eq(pc_loop_create(&c, &l), 0);
    uint64_t far = pc_now_ns() + 3600ull * 1000000000ull; /* an hour ahead */
    struct pc_loop_job j = {.deadline = far, .page = 1};
    ck_assert_int_eq(pc_loop_submit(l, &j), 0);
    j.page = 2;
    ck_assert_int_eq(pc_loop_submit(l, &j), 0);
    j.page = 3;
    ck_assert_int_eq(pc_loop_submit(l, &j), -ENOSPC);
    pc_loop_destroy(l); /* returns: the I/O thread stops with two requests in flight */
    ck_assert_int_eq(atomic_load(&r->fired[1]) + atomic_load(&r->fired[2]), 0);
    free(r);
}
END_TEST

static Suite *loop_suite(void)
{
    Suite *s = suite_create("postcopy_host_loop");
    TCase *tc = tcase_create("loop");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_each_request_fires_once_never_early_with_its_prepared_buffer);
    tcase_add_test(tc, test_each_request_fires_once_never_early_when_spinning);
    tcase_add_test(tc, test_beyond_capacity_is_refused_and_destroy_drops_in_flight);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(loop_suite)
