/* SPDX-License-Identifier: MIT */
/*
 * The migration source's pieces that need no network: page contents and checksums
 * (page.h), latency models and the precise sleep (latency.h), the in-process source
 * (source.h). Latency statistics are deterministic math on fixed seeds, not timing; the
 * sleep's accuracy is printed, and only "never wakes early" is asserted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apf_check.h"
#include "latency.h"
#include "page.h"
#include "source.h"

/* --- page contents ------------------------------------------------------------------------ */

START_TEST(test_same_seed_and_page_give_same_bytes_and_checksum)
{
    static unsigned char a[PC_PAGE_SIZE], b[PC_PAGE_SIZE];
    for (uint64_t i = 0; i < 64; i++) {
        memset(a, 0x11, sizeof(a));
        memset(b, 0x22, sizeof(b));
        pc_page_fill(42, i * 977, a);
        pc_page_fill(42, i * 977, b);
        ck_assert_int_eq(memcmp(a, b, sizeof(a)), 0);
        ck_assert_uint_eq(pc_page_checksum(a), pc_page_checksum(b));
        ck_assert_uint_eq(pc_page_checksum(a), pc_page_expected_checksum(42, i * 977));
        ck_assert(pc_page_verify(a, 42, i * 977));
    }
}
END_TEST

START_TEST(test_different_page_or_seed_gives_different_bytes)
{
    static unsigned char a[PC_PAGE_SIZE], b[PC_PAGE_SIZE];
    pc_page_fill(42, 7, a);
    pc_page_fill(42, 8, b);
    ck_assert_int_ne(memcmp(a, b, sizeof(a)), 0);
    ck_assert_uint_ne(pc_page_checksum(a), pc_page_checksum(b));
    /* Not just the header: the random body differs too. */
    ck_assert_int_ne(memcmp(a + 16, b + 16, 64), 0);
    pc_page_fill(43, 7, b);
    ck_assert_int_ne(memcmp(a + 16, b + 16, 64), 0);
    ck_assert_uint_ne(pc_page_checksum(a), pc_page_checksum(b));
    ck_assert(!pc_page_verify(b, 42, 7));
    ck_assert(!pc_page_verify(a, 42, 8));
}
END_TEST

START_TEST(test_verify_catches_corrupt_torn_and_zero_pages)
{
    static unsigned char p[PC_PAGE_SIZE], q[PC_PAGE_SIZE];
    pc_page_fill(9, 100, p);
    ck_assert(pc_page_verify(p, 9, 100));
    for (size_t off = 0; off < PC_PAGE_SIZE; off += 509) {
        memcpy(q, p, sizeof(q));
        q[off] ^= 0x01;
        ck_assert_msg(!pc_page_verify(q, 9, 100), "bit flip at %zu not caught", off);
    }
    /* Half of another page (a torn copy). */
    pc_page_fill(9, 101, q);
    memcpy(q, p, PC_PAGE_SIZE / 2);
    ck_assert(!pc_page_verify(q, 9, 100));
    memset(q, 0, sizeof(q));
    ck_assert(!pc_page_verify(q, 0, 0));
    ck_assert_uint_ne(pc_page_checksum(q), 0);
}
END_TEST

START_TEST(test_checksum_depends_on_every_byte_and_length)
{
    unsigned char buf[100];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)(i * 7);
    uint64_t base = pc_page_checksum64(buf, sizeof(buf));
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] ^= 0x80;
        ck_assert_uint_ne(pc_page_checksum64(buf, sizeof(buf)), base);
        buf[i] ^= 0x80;
    }
    ck_assert_uint_eq(pc_page_checksum64(buf, sizeof(buf)), base);
    unsigned char zeros[64] = {0};
    ck_assert_uint_ne(pc_page_checksum64(zeros, 8), pc_page_checksum64(zeros, 16));
    ck_assert_uint_ne(pc_page_checksum64(zeros, 0), pc_page_checksum64(zeros, 1));
}
END_TEST

/* The format is shared by two processes, possibly two builds or hosts: pin it. The values
 * were computed once on x86-64 and agree on aarch64 (qemu-user). */
#define PINNED_CHECKSUM_1_0 0x75b4bc39410d5abfull
#define PINNED_CHECKSUM_12345_678 0xa9ad88543386ba4dull

START_TEST(test_page_format_is_pinned)
{
    unsigned char p[PC_PAGE_SIZE];
    pc_page_fill(1, 0, p);
    ck_assert_uint_eq(p[0], 0); /* word 0: index, little-endian */
    ck_assert_uint_eq(p[8], 1); /* word 1: seed */
    pc_page_fill(0x0102030405060708ull, 0x1122, p);
    ck_assert_uint_eq(p[0], 0x22);
    ck_assert_uint_eq(p[1], 0x11);
    ck_assert_uint_eq(p[8], 0x08);
    ck_assert_uint_eq(p[15], 0x01);
    ck_assert_uint_eq(pc_page_expected_checksum(1, 0), PINNED_CHECKSUM_1_0);
    ck_assert_uint_eq(pc_page_expected_checksum(12345, 678), PINNED_CHECKSUM_12345_678);
}
END_TEST

/* --- latency models ----------------------------------------------------------------------- */

START_TEST(test_latency_parse_and_format_round_trip)
{
    struct pc_latency l = {.seed = 77};
    char buf[64];
    ck_assert_int_eq(pc_latency_parse("fixed:300", &l), 0);
    ck_assert_int_eq(l.kind, PC_LATENCY_FIXED);
    ck_assert(l.a_us == 300.0);
    ck_assert_uint_eq(l.seed, 77);
    ck_assert_int_gt(pc_latency_format(&l, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "fixed:300");
    ck_assert_int_eq(pc_latency_parse("uniform:100,500", &l), 0);
    ck_assert_int_eq(l.kind, PC_LATENCY_UNIFORM);
    pc_latency_format(&l, buf, sizeof(buf));
    ck_assert_str_eq(buf, "uniform:100,500");
    ck_assert_int_eq(pc_latency_parse(PC_LATENCY_DEFAULT_SPEC, &l), 0);
    ck_assert_int_eq(l.kind, PC_LATENCY_LOGNORMAL);
    pc_latency_format(&l, buf, sizeof(buf));
    ck_assert_str_eq(buf, PC_LATENCY_DEFAULT_SPEC);

    struct pc_latency d;
    pc_latency_default(&d, 5);
    ck_assert_int_eq(d.kind, l.kind);
    ck_assert(d.a_us == l.a_us && d.b_us == l.b_us);
    ck_assert_uint_eq(d.seed, 5);

    static const char *bad[] = {"",
                                "fixed",
                                "fixed:",
                                "fixed:-1",
                                "fixed:1x",
                                "fixed:1,2",
                                "uniform:5",
                                "uniform:5,4",
                                "lognormal:0,1",
                                "lognormal:250,-1",
                                "lognormal:250,9",
                                "gauss:1,2",
                                "fixed:nan",
                                "fixed:1e99",
                                "uniform:1,"};
    struct pc_latency before = l;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(pc_latency_parse(bad[i], &l) == -EINVAL, "accepted '%s'", bad[i]);
        ck_assert_int_eq(memcmp(&l, &before, sizeof(l)), 0); /* unchanged on error */
    }
}
END_TEST

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

#define NSAMPLES 10000

START_TEST(test_latency_samples_are_deterministic_per_key)
{
    struct pc_latency l;
    pc_latency_default(&l, 1234);
    struct pc_latency other = l;
    other.seed = 1235;
    int differ = 0;
    for (uint64_t k = 0; k < 1000; k++) {
        ck_assert_uint_eq(pc_latency_sample_ns(&l, k), pc_latency_sample_ns(&l, k));
        differ += pc_latency_sample_ns(&l, k) != pc_latency_sample_ns(&other, k);
    }
    ck_assert_int_gt(differ, 990); /* another seed, other samples */
    struct pc_latency f = {.kind = PC_LATENCY_FIXED, .a_us = 300.0, .seed = 1};
    for (uint64_t k = 0; k < 100; k++)
        ck_assert_uint_eq(pc_latency_sample_ns(&f, k), 300000);
}
END_TEST

START_TEST(test_latency_uniform_stays_in_bounds_with_right_mean)
{
    struct pc_latency l = {.kind = PC_LATENCY_UNIFORM, .a_us = 100.0, .b_us = 500.0, .seed = 3};
    double sum = 0;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (uint64_t k = 0; k < NSAMPLES; k++) {
        uint64_t v = pc_latency_sample_ns(&l, k);
        ck_assert_uint_ge(v, 100000);
        ck_assert_uint_le(v, 500000);
        sum += (double)v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    double mean_us = sum / NSAMPLES / 1000.0;
    printf("uniform:100,500 over %d samples: mean %.1f us, min %.1f, max %.1f\n", NSAMPLES, mean_us,
           (double)lo / 1e3, (double)hi / 1e3);
    ck_assert_double_ge(mean_us, 300.0 * 0.98);
    ck_assert_double_le(mean_us, 300.0 * 1.02);
    ck_assert_uint_lt(lo, 110000); /* the range is covered */
    ck_assert_uint_gt(hi, 490000);
}
END_TEST

START_TEST(test_latency_lognormal_median_within_10_percent)
{
    static uint64_t s[NSAMPLES];
    struct pc_latency l;
    pc_latency_default(&l, 2024); /* median 250 us, sigma 0.5 */
    for (uint64_t k = 0; k < NSAMPLES; k++)
        s[k] = pc_latency_sample_ns(&l, k);
    qsort(s, NSAMPLES, sizeof(s[0]), cmp_u64);
    double median = (double)s[NSAMPLES / 2] / 1000.0;
    double p90 = (double)s[NSAMPLES * 9 / 10] / 1000.0;
    double p99 = (double)s[NSAMPLES * 99 / 100] / 1000.0;
    double sum = 0;
    for (size_t k = 0; k < NSAMPLES; k++)
        sum += (double)s[k];
    double mean = sum / NSAMPLES / 1000.0;
    printf("lognormal:250,0.5 over %d samples: median %.1f us, mean %.1f, p90 %.1f, p99 %.1f "
           "(theory 250, 283.3, 474.5, 799.6)\n",
           NSAMPLES, median, mean, p90, p99);
    ck_assert_double_ge(median, 250.0 * 0.9);
    ck_assert_double_le(median, 250.0 * 1.1);
    /* exp(sigma * 1.2816) above the median at p90; exp(sigma^2 / 2) for the mean. */
    ck_assert_double_ge(p90, 250.0 * exp(0.5 * 1.2816) * 0.9);
    ck_assert_double_le(p90, 250.0 * exp(0.5 * 1.2816) * 1.1);
    ck_assert_double_ge(mean, 250.0 * exp(0.125) * 0.95);
    ck_assert_double_le(mean, 250.0 * exp(0.125) * 1.05);
}
END_TEST

/* --- the sleep ---------------------------------------------------------------------------- */

static uint64_t thread_cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

START_TEST(test_sleep_never_wakes_early_and_reports_accuracy)
{
    static const uint64_t req_us[] = {20, 50, 100, 300, 1000};
    for (size_t r = 0; r < sizeof(req_us) / sizeof(req_us[0]); r++) {
        uint64_t over[60];
        const size_t n = sizeof(over) / sizeof(over[0]);
        uint64_t cpu0 = thread_cpu_ns();
        for (size_t i = 0; i < n; i++) {
            uint64_t t0 = pc_now_ns();
            pc_sleep_ns(req_us[r] * 1000u);
            uint64_t dt = pc_now_ns() - t0;
            ck_assert_uint_ge(dt, req_us[r] * 1000u); /* a property, not a timing */
            over[i] = dt - req_us[r] * 1000u;
        }
        uint64_t cpu = thread_cpu_ns() - cpu0;
        qsort(over, n, sizeof(over[0]), cmp_u64);
        printf("pc_sleep_ns(%4llu us): overshoot median %.2f us, p90 %.2f us, max %.2f us; "
               "CPU %.1f us per sleep\n",
               (unsigned long long)req_us[r], (double)over[n / 2] / 1e3,
               (double)over[n * 9 / 10] / 1e3, (double)over[n - 1] / 1e3,
               (double)cpu / (double)n / 1e3);
    }
    uint64_t t0 = pc_now_ns();
    pc_sleep_until_ns(t0 - 1); /* the past: returns at once */
    pc_sleep_ns(0);
    fflush(stdout);
}
END_TEST

/* --- the in-process source ---------------------------------------------------------------- */

#define FETCH_THREADS 4
#define FETCHES_PER_THREAD 100

struct fetch_arg {
    struct pc_source *src;
    unsigned id;
    int bad;
};

static void *fetch_thread(void *arg)
{
    struct fetch_arg *f = arg;
    unsigned char page[PC_PAGE_SIZE];
    for (unsigned i = 0; i < FETCHES_PER_THREAD; i++) {
        uint64_t idx = (i * 37u + f->id * 101u) % f->src->npages;
        int err = pc_source_fetch(f->src, idx, page);
        f->bad += err != 0 || !pc_page_verify(page, f->src->seed, idx);
    }
    return NULL;
}

START_TEST(test_local_source_concurrent_fetches_verify)
{
    struct pc_latency lat = {.kind = PC_LATENCY_FIXED, .a_us = 100.0};
    struct pc_source *src = NULL;
    ck_assert_int_eq(pc_source_local_create(&src, 99, 512, &lat), 0);
    ck_assert_str_eq(src->ops->name, "local");
    ck_assert_uint_eq(src->seed, 99);
    ck_assert_uint_eq(src->npages, 512);
    pthread_t t[FETCH_THREADS];
    struct fetch_arg fa[FETCH_THREADS];
    uint64_t t0 = pc_now_ns();
    for (unsigned i = 0; i < FETCH_THREADS; i++) {
        fa[i] = (struct fetch_arg){.src = src, .id = i};
        ck_assert_int_eq(pthread_create(&t[i], NULL, fetch_thread, &fa[i]), 0);
    }
    for (unsigned i = 0; i < FETCH_THREADS; i++) {
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
        ck_assert_int_eq(fa[i].bad, 0);
    }
    uint64_t wall = pc_now_ns() - t0;
    struct pc_source_stats st;
    pc_source_get_stats(src, &st);
    ck_assert_uint_eq(st.fetches, FETCH_THREADS * FETCHES_PER_THREAD);
    ck_assert_uint_eq(st.errors, 0);
    /* Every fetch lasts at least its latency: a property, not a timing. */
    ck_assert_uint_ge(st.fetch_ns, (uint64_t)FETCH_THREADS * FETCHES_PER_THREAD * 100000u);
    printf("local source: %d fetches of 100 us on %d threads: mean fetch %.1f us, wall %.1f ms\n",
           FETCH_THREADS * FETCHES_PER_THREAD, FETCH_THREADS,
           (double)st.fetch_ns / (double)st.fetches / 1e3, (double)wall / 1e6);
    pc_source_destroy(src);
}
END_TEST

START_TEST(test_local_source_out_of_range_is_erange_with_message)
{
    struct pc_source *src = NULL;
    ck_assert_int_eq(pc_source_local_create(&src, 1, 8, NULL), 0);
    unsigned char page[PC_PAGE_SIZE];
    char msg[256];
    ck_assert_str_eq(pc_source_last_error(src, msg, sizeof(msg)), "");
    ck_assert_int_eq(pc_source_fetch(src, 7, page), 0);
    ck_assert(pc_page_verify(page, 1, 7));
    ck_assert_int_eq(pc_source_fetch(src, 8, page), -ERANGE);
    ck_assert_ptr_nonnull(strstr(pc_source_last_error(src, msg, sizeof(msg)), "page 8"));
    struct pc_source_stats st;
    pc_source_get_stats(src, &st);
    ck_assert_uint_eq(st.fetches, 1);
    ck_assert_uint_eq(st.errors, 1);
    pc_source_destroy(src);
    pc_source_destroy(NULL);
    ck_assert_int_eq(pc_source_local_create(&src, 1, 0, NULL), -EINVAL);
}
END_TEST

static Suite *source_suite(void)
{
    Suite *s = suite_create("postcopy_source");
    TCase *tc = tcase_create("page");
    tcase_add_test(tc, test_same_seed_and_page_give_same_bytes_and_checksum);
    tcase_add_test(tc, test_different_page_or_seed_gives_different_bytes);
    tcase_add_test(tc, test_verify_catches_corrupt_torn_and_zero_pages);
    tcase_add_test(tc, test_checksum_depends_on_every_byte_and_length);
    tcase_add_test(tc, test_page_format_is_pinned);
    suite_add_tcase(s, tc);
    tc = tcase_create("latency");
    tcase_add_test(tc, test_latency_parse_and_format_round_trip);
    tcase_add_test(tc, test_latency_samples_are_deterministic_per_key);
    tcase_add_test(tc, test_latency_uniform_stays_in_bounds_with_right_mean);
    tcase_add_test(tc, test_latency_lognormal_median_within_10_percent);
    tcase_add_test(tc, test_sleep_never_wakes_early_and_reports_accuracy);
    suite_add_tcase(s, tc);
    tc = tcase_create("local");
    tcase_add_test(tc, test_local_source_concurrent_fetches_verify);
    tcase_add_test(tc, test_local_source_out_of_range_is_erange_with_message);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(source_suite)
