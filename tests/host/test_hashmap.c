/* SPDX-License-Identifier: MIT */
/* The dedup table's map (src/proto/hashmap.h): insert/find/remove, deletion in the middle
 * of a probe chain, full table, and a long random run against a reference model. */
#include <stdlib.h>
#include <string.h>

#include "apf_check.h"
#include "host/dedup.h"

#define CAP 128
static struct apf__map_entry entries[CAP];

static struct apf__map fresh(void)
{
    struct apf__map m;
    memset(entries, 0, sizeof(entries));
    apf__map_init(&m, entries, CAP);
    return m;
}

/* n keys whose home position is the same bucket (found by search). */
static void colliding_keys(const struct apf__map *m, uint64_t *keys, int n)
{
    uint32_t want = apf__map_home(m, 1000);
    int k = 0;
    for (uint64_t key = 1000; k < n; key++)
        if (apf__map_home(m, key) == want)
            keys[k++] = key;
}

START_TEST(test_insert_find_remove)
{
    struct apf__map m = fresh();
    uint32_t v = 0;
    ck_assert_int_eq(apf__map_find(&m, 42, &v), 0);
    ck_assert_int_eq(apf__map_insert(&m, 42, 7), 0);
    ck_assert_int_eq(apf__map_insert(&m, 42, 8), APF_EEXIST);
    ck_assert_int_eq(apf__map_find(&m, 42, &v), 1);
    ck_assert_uint_eq(v, 7); /* the refused insert changed nothing */
    ck_assert_uint_eq(m.count, 1);
    ck_assert_int_eq(apf__map_remove(&m, 42), 0);
    ck_assert_int_eq(apf__map_remove(&m, 42), APF_ENOENT);
    ck_assert_int_eq(apf__map_find(&m, 42, &v), 0);
    ck_assert_uint_eq(m.count, 0);
}
END_TEST

START_TEST(test_delete_in_middle_of_probe_chain)
{
    struct apf__map m = fresh();
    uint64_t k[4];
    colliding_keys(&m, k, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(apf__map_insert(&m, k[i], (uint32_t)i), 0);
    /* Remove the second member of the chain: the third and fourth must stay reachable. */
    ck_assert_int_eq(apf__map_remove(&m, k[1]), 0);
    uint32_t v;
    ck_assert_int_eq(apf__map_find(&m, k[0], &v), 1);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(apf__map_find(&m, k[1], &v), 0);
    ck_assert_int_eq(apf__map_find(&m, k[2], &v), 1);
    ck_assert_uint_eq(v, 2);
    ck_assert_int_eq(apf__map_find(&m, k[3], &v), 1);
    ck_assert_uint_eq(v, 3);
    /* Then the head of the chain. */
    ck_assert_int_eq(apf__map_remove(&m, k[0]), 0);
    ck_assert_int_eq(apf__map_find(&m, k[2], &v), 1);
    ck_assert_int_eq(apf__map_find(&m, k[3], &v), 1);
    ck_assert_uint_eq(m.count, 2);
}
END_TEST

START_TEST(test_chain_wrapping_around_the_end)
{
    struct apf__map m = fresh();
    /* Keys homed at the last bucket, so the chain wraps to index 0. */
    uint64_t k[3];
    int n = 0;
    for (uint64_t key = 1; n < 3; key++)
        if (apf__map_home(&m, key) == CAP - 1)
            k[n++] = key;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(apf__map_insert(&m, k[i], (uint32_t)i), 0);
    ck_assert_int_eq(apf__map_remove(&m, k[0]), 0);
    uint32_t v;
    ck_assert_int_eq(apf__map_find(&m, k[1], &v), 1);
    ck_assert_uint_eq(v, 1);
    ck_assert_int_eq(apf__map_find(&m, k[2], &v), 1);
    ck_assert_uint_eq(v, 2);
}
END_TEST

START_TEST(test_full_table_refuses_insert)
{
    struct apf__map m = fresh();
    for (uint64_t key = 0; key < CAP; key++)
        ck_assert_int_eq(apf__map_insert(&m, key * 4096, (uint32_t)key), 0);
    ck_assert_int_eq(apf__map_insert(&m, 999999, 1), APF_ENOSPC);
    uint32_t v;
    ck_assert_int_eq(apf__map_find(&m, 999999, &v), 0); /* absent, even in a full table */
    ck_assert_int_eq(apf__map_find(&m, 77 * 4096, &v), 1);
    ck_assert_uint_eq(v, 77);
}
END_TEST

/* Regression: remove in a completely full map used to scan for an empty entry that a full
 * map does not have, and looped for ever. Every operation on a full map must end, and the
 * map must stay correct: remove each key in turn (every removal shifts a full-length chain),
 * checking all the others are still found, then refill. */
static void full_map_round(struct apf__map *m, uint32_t cap, uint64_t stride, unsigned seed)
{
    uint64_t keys[CAP];
    for (uint32_t i = 0; i < cap; i++) {
        keys[i] = (i + 1) * stride;
        ck_assert_int_eq(apf__map_insert(m, keys[i], i), 0);
    }
    ck_assert_uint_eq(m->count, cap);
    uint32_t v;
    ck_assert_int_eq(apf__map_insert(m, 7777777, 1), APF_ENOSPC);
    ck_assert_int_eq(apf__map_insert(m, keys[0], 1), APF_ENOSPC); /* full first */
    ck_assert_int_eq(apf__map_find(m, 7777777, &v), 0);
    ck_assert_int_eq(apf__map_remove(m, 7777777), APF_ENOENT);
    /* remove in a random order */
    for (uint32_t i = cap - 1; i > 0; i--) {
        uint32_t k = (uint32_t)rand_r(&seed) % (i + 1);
        uint64_t t = keys[i];
        keys[i] = keys[k];
        keys[k] = t;
    }
    for (uint32_t i = 0; i < cap; i++) {
        ck_assert_int_eq(apf__map_remove(m, keys[i]), 0);
        ck_assert_int_eq(apf__map_find(m, keys[i], &v), 0);
        for (uint32_t k = i + 1; k < cap; k++)
            ck_assert_msg(apf__map_find(m, keys[k], &v) == 1, "key %llu lost",
                          (unsigned long long)keys[k]);
        /* refill the hole once: insert into the (again) full map, then take it out */
        if (i == 0) {
            ck_assert_int_eq(apf__map_insert(m, 7777777, 5), 0);
            ck_assert_uint_eq(m->count, cap);
            ck_assert_int_eq(apf__map_find(m, 7777777, &v), 1);
            ck_assert_uint_eq(v, 5);
            ck_assert_int_eq(apf__map_remove(m, 7777777), 0);
        }
    }
    ck_assert_uint_eq(m->count, 0);
}

START_TEST(test_full_map_find_remove_insert_end)
{
    struct apf__map m = fresh();
    full_map_round(&m, CAP, 4096, 1);
    full_map_round(&m, CAP, 1, 2); /* consecutive keys */
    /* the smallest map (the trace checker's with max_outstanding 1) */
    static struct apf__map_entry two[2];
    struct apf__map s;
    apf__map_init(&s, two, 2);
    for (unsigned seed = 0; seed < 8; seed++)
        full_map_round(&s, 2, 0x1000 + seed, seed);
}
END_TEST

/* 200k random operations at up to half load, checked against a plain array. */
START_TEST(test_random_against_reference)
{
    struct apf__map m = fresh();
    uint64_t present[CAP / 2];
    int n = 0;
    unsigned seed = 99;
    for (int op = 0; op < 200000; op++) {
        uint64_t key = (uint64_t)(rand_r(&seed) % 500);
        int idx = -1;
        for (int i = 0; i < n; i++)
            if (present[i] == key)
                idx = i;
        uint32_t v;
        switch (rand_r(&seed) % 3) {
        case 0:
            if (n < CAP / 2) {
                ck_assert_int_eq(apf__map_insert(&m, key, (uint32_t)key + 1),
                                 idx >= 0 ? APF_EEXIST : 0);
                if (idx < 0)
                    present[n++] = key;
            }
            break;
        case 1:
            ck_assert_int_eq(apf__map_remove(&m, key), idx >= 0 ? 0 : APF_ENOENT);
            if (idx >= 0)
                present[idx] = present[--n];
            break;
        default:
            ck_assert_int_eq(apf__map_find(&m, key, &v), idx >= 0);
            if (idx >= 0)
                ck_assert_uint_eq(v, key + 1);
        }
        ck_assert_uint_eq(m.count, (uint32_t)n);
    }
    for (int i = 0; i < n; i++) {
        uint32_t v;
        ck_assert_int_eq(apf__map_find(&m, present[i], &v), 1);
    }
}
END_TEST

static Suite *hashmap_suite(void)
{
    Suite *s = suite_create("hashmap");
    TCase *tc = tcase_create("dedup");
    tcase_add_test(tc, test_insert_find_remove);
    tcase_add_test(tc, test_delete_in_middle_of_probe_chain);
    tcase_add_test(tc, test_chain_wrapping_around_the_end);
    tcase_add_test(tc, test_full_table_refuses_insert);
    tcase_add_test(tc, test_full_map_find_remove_insert_end);
    tcase_add_test(tc, test_random_against_reference);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(hashmap_suite)
