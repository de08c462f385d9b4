/* SPDX-License-Identifier: MIT */
/*
 * The ready ring's consumer (src/guest/ring.c, apf_guest_ring_*): drains in order, across
 * the 2^32 wrap of the free-running indices, with notification hold-off, and against a
 * host whose producer index lies (overrun, rewind, jump): refused, counted by the caller,
 * never out of bounds, never delivered twice, and recovered from.
 */
#include <string.h>

#include "apf/guest_backend.h"
#include "apf_check.h"

/* The ring page with a guard page on each side: reads stay inside the page. */
static _Alignas(4096) unsigned char mem[3 * APF_RING_PAGE_SIZE];
static struct apf_ring *R;
static struct apf_guest_ring_consumer C;

#define GUARD 0xa5u

static void setup(void)
{
    memset(mem, GUARD, sizeof(mem));
    R = (struct apf_ring *)(void *)(mem + APF_RING_PAGE_SIZE);
    memset(R, 0, APF_RING_PAGE_SIZE);
}

static void guards_intact(void)
{
    for (size_t i = 0; i < APF_RING_PAGE_SIZE; i++) {
        ck_assert_uint_eq(mem[i], GUARD);
        ck_assert_uint_eq(mem[2 * APF_RING_PAGE_SIZE + i], GUARD);
    }
}

/* The host: publish tokens (entries first, then prod). */
static void push(uint32_t entries, uint32_t token)
{
    R->entries[R->prod & (entries - 1)] = token;
    __atomic_store_n(&R->prod, R->prod + 1, __ATOMIC_RELEASE);
}

/* The guest: drain everything believable; returns how many, tokens into out[]. */
static uint32_t drain(uint32_t *out, uint32_t max)
{
    uint32_t n = 0;
    struct apf_guest_chan_event ev;
    int r;
    while ((r = apf_guest_ring_peek(&C, &ev)) == APF_GUEST_READY_TOKEN) {
        ck_assert_uint_lt(n, max);
        out[n++] = ev.token;
        ck_assert_int_eq(apf_guest_ring_release(&C), 1);
    }
    ck_assert_int_eq(r, APF_GUEST_READY_EMPTY);
    return n;
}

static void drain_n_in_order(uint32_t entries, uint32_t n, uint32_t start)
{
    ck_assert_int_eq(apf_guest_ring_init(&C, R, entries, start), 0);
    R->prod = start; /* the host takes the ring over at the guest's start index */
    ck_assert_uint_eq(R->cons, start);
    ck_assert_uint_eq(R->event, start + 1);
    uint32_t out[512], got = 0;
    for (uint32_t i = 0; i < n; i++) {
        push(entries, 0x1000u * (i + 1) + 3);
        if ((i + 1) % entries == 0) /* full: the guest must drain before the host goes on */
            got += drain(out + got, 512 - got);
    }
    got += drain(out + got, 512 - got);
    ck_assert_uint_eq(got, n);
    for (uint32_t i = 0; i < n; i++)
        ck_assert_uint_eq(out[i], 0x1000u * (i + 1) + 3);
    ck_assert_uint_eq(R->cons, start + n); /* published: the ACK */
    ck_assert_int_eq(apf_guest_ring_finish(&C), 0);
    ck_assert_uint_eq(R->event, start + n + 1);
    guards_intact();
}

START_TEST(test_ring_drains_1_8_64_in_order)
{
    drain_n_in_order(256, 1, 0);
    setup();
    drain_n_in_order(256, 8, 0);
    setup();
    drain_n_in_order(256, 64, 0);
    setup();
    drain_n_in_order(8, 64, 0); /* 8 laps of a small ring */
}
END_TEST

START_TEST(test_ring_indices_wrap_around_2_pow_32)
{
    drain_n_in_order(16, 64, 0xfffffff0u);
    ck_assert_uint_eq(R->cons, 0x30u);
    setup();
    drain_n_in_order(512, 40, 0xffffffecu);
}
END_TEST

START_TEST(test_ring_full_ring_is_believable)
{
    ck_assert_int_eq(apf_guest_ring_init(&C, R, 4, 7), 0);
    R->prod = 7;
    for (uint32_t i = 0; i < 4; i++)
        push(4, 0x2000u + i);
    uint32_t out[8];
    ck_assert_uint_eq(drain(out, 8), 4);
    ck_assert_uint_eq(out[3], 0x2003u);
}
END_TEST

START_TEST(test_ring_finish_rechecks_after_setting_event)
{
    ck_assert_int_eq(apf_guest_ring_init(&C, R, 64, 0), 0);
    uint32_t out[8];
    push(64, 0x1000);
    ck_assert_uint_eq(drain(out, 8), 1);
    /* an entry published after the drain, before the event write: the host saw the old
     * event (1, already passed: no notification), so the re-check must catch it */
    uint32_t old = R->prod;
    push(64, 0x2000);
    ck_assert_int_eq(apf_ring_need_notify(old, R->prod, R->event), 0);
    ck_assert_int_eq(apf_guest_ring_finish(&C), 1);
    ck_assert_uint_eq(R->event, 2);
    ck_assert_uint_eq(drain(out, 8), 1);
    ck_assert_uint_eq(out[0], 0x2000);
    ck_assert_int_eq(apf_guest_ring_finish(&C), 0);
    ck_assert_uint_eq(R->event, 3); /* hold-off: notify for the next entry */
    /* published after the finish: the host sees the event in its window and notifies */
    old = R->prod;
    push(64, 0x3000);
    ck_assert_int_eq(apf_ring_need_notify(old, R->prod, R->event), 1);
    /* entries known but not taken yet: finish says drain, without re-arming */
    ck_assert_uint_eq(drain(out, 8), 1);
    push(64, 0x4000);
    push(64, 0x5000);
    struct apf_guest_chan_event ev;
    ck_assert_int_eq(apf_guest_ring_peek(&C, &ev), APF_GUEST_READY_TOKEN);
    ck_assert_int_eq(apf_guest_ring_release(&C), 1);
    ck_assert_int_eq(apf_guest_ring_finish(&C), 1);
    ck_assert_uint_eq(drain(out, 8), 1);
    ck_assert_uint_eq(out[0], 0x5000);
}
END_TEST

START_TEST(test_ring_entry_copied_once)
{
    ck_assert_int_eq(apf_guest_ring_init(&C, R, 4, 0), 0);
    push(4, 0x1000);
    struct apf_guest_chan_event ev;
    ck_assert_int_eq(apf_guest_ring_peek(&C, &ev), APF_GUEST_READY_TOKEN);
    ck_assert_uint_eq(ev.token, 0x1000);
    R->entries[0] = 0x6666; /* a host rewriting the entry under the guest */
    ck_assert_int_eq(apf_guest_ring_peek(&C, &ev), APF_GUEST_READY_TOKEN);
    ck_assert_uint_eq(ev.token, 0x1000);
    ck_assert_int_eq(apf_guest_ring_release(&C), 1);
    ck_assert_int_eq(apf_guest_ring_release(&C), 0); /* nothing peeked: nothing consumed */
    ck_assert_uint_eq(R->cons, 1);
}
END_TEST

/* A lying prod: refused (BAD_INDEX), nothing consumed, cons unchanged, no read outside
 * the page; then the host recovers and exactly the believable entries are delivered. */
static void refuse_then_recover(uint32_t start, uint32_t bad_prod)
{
    setup();
    ck_assert_int_eq(apf_guest_ring_init(&C, R, 8, start), 0);
    R->prod = start;
    R->size = 0xffffffffu; /* the host's size field is never trusted */
    push(8, 0x1000);
    uint32_t out[16];
    ck_assert_uint_eq(drain(out, 16), 1);
    for (uint32_t i = 0; i < 8; i++)
        R->entries[i] = 0x9999; /* stale contents */
    R->prod = bad_prod;
    struct apf_guest_chan_event ev;
    for (int i = 0; i < 3; i++) { /* refused every time, never looping inside */
        ck_assert_int_eq(apf_guest_ring_peek(&C, &ev), APF_GUEST_READY_BAD_INDEX);
        ck_assert_uint_eq(ev.value, bad_prod);
    }
    ck_assert_int_eq(apf_guest_ring_release(&C), 0);
    ck_assert_int_eq(apf_guest_ring_finish(&C), 0);
    ck_assert_uint_eq(R->cons, start + 1);
    /* sane again: two new entries, each delivered once */
    R->prod = start + 1;
    push(8, 0x2000);
    push(8, 0x3000);
    ck_assert_uint_eq(drain(out, 16), 2);
    ck_assert_uint_eq(out[0], 0x2000);
    ck_assert_uint_eq(out[1], 0x3000);
    ck_assert_uint_eq(drain(out, 16), 0);
    ck_assert_uint_eq(R->cons, start + 3);
    guards_intact();
}

START_TEST(test_ring_refuses_lying_prod_and_recovers)
{
    refuse_then_recover(0, 1 + 8 + 1);               /* overrun: size + 1 beyond cons */
    refuse_then_recover(0, 0);                       /* rewind below cons */
    refuse_then_recover(0, 1u + 0x80000000u);        /* a jump by 2^31 */
    refuse_then_recover(0xfffffffcu, 0xfffffffcu);   /* rewind across the wrap */
    refuse_then_recover(0xfffffffcu, 0xfffffffdu + 9); /* overrun across the wrap */
}
END_TEST

START_TEST(test_ring_init_checks_its_arguments)
{
    ck_assert_int_eq(apf_guest_ring_init(&C, R, 3, 0), APF_EINVAL);
    ck_assert_int_eq(apf_guest_ring_init(&C, R, 1, 0), APF_EINVAL);
    ck_assert_int_eq(apf_guest_ring_init(&C, R, 1024, 0), APF_EINVAL);
    ck_assert_int_eq(apf_guest_ring_init(&C, (struct apf_ring *)(void *)(mem + 64), 8, 0),
                     APF_EINVAL);
    ck_assert_int_eq(apf_guest_ring_init(NULL, R, 8, 0), APF_EINVAL);
    ck_assert_int_eq(apf_guest_ring_init(&C, R, APF_RING_MAX_ENTRIES, 0), 0);
    ck_assert_int_eq(apf_guest_ring_init(&C, R, APF_RING_MIN_ENTRIES, 0), 0);
}
END_TEST

static Suite *ring_suite(void)
{
    Suite *s = suite_create("guest_ring");
    TCase *tc = tcase_create("consumer");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_ring_drains_1_8_64_in_order);
    tcase_add_test(tc, test_ring_indices_wrap_around_2_pow_32);
    tcase_add_test(tc, test_ring_full_ring_is_believable);
    tcase_add_test(tc, test_ring_finish_rechecks_after_setting_event);
    tcase_add_test(tc, test_ring_entry_copied_once);
    tcase_add_test(tc, test_ring_refuses_lying_prod_and_recovers);
    tcase_add_test(tc, test_ring_init_checks_its_arguments);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(ring_suite)
