/* SPDX-License-Identifier: MIT */
/* The protocol trace (apf/trace.h): text format round trip, parser errors, and every
 * invariant of the conformance checker, each on a minimal trace that breaks just it. */
#include <string.h>

#include "apf/error.h"
#include "apf/proto.h"
#include "apf/trace.h"
#include "apf_check.h"

/* ---- format and parse ------------------------------------------------------------------ */

START_TEST(test_format_parse_round_trip)
{
    struct apf_trace_event ev = {.time_ns = 123456789012ull, .gpa = 0x7f0000001000ull,
                                 .vcpu = 3, .token = 0x5003, .kind = APF_TRACE_HOST_NOT_PRESENT,
                                 .arg = -22};
    char line[96];
    int n = apf_trace_format(&ev, line, sizeof(line));
    ck_assert_int_gt(n, 0);
    ck_assert_str_eq(line, "123456789012 host.np 3 0x5003 0x7f0000001000 -22");
    ck_assert_int_eq(n, (int)strlen(line));
    struct apf_trace_event back;
    ck_assert_int_eq(apf_trace_parse(line, strlen(line), &back), 0);
    ck_assert_int_eq(memcmp(&back, &ev, sizeof(ev)), 0);
}
END_TEST

START_TEST(test_every_kind_has_a_name_that_parses)
{
    static const uint32_t kinds[] = {
        APF_TRACE_HOST_NOT_PRESENT, APF_TRACE_HOST_SYNC,    APF_TRACE_HOST_HALT,
        APF_TRACE_HOST_DONE,        APF_TRACE_HOST_READY,   APF_TRACE_HOST_ACK,
        APF_TRACE_HOST_ENABLE,      APF_TRACE_HOST_DISABLE, APF_TRACE_HOST_DROP,
        APF_TRACE_HOST_RESET,       APF_TRACE_HOST_RESTORE, APF_TRACE_GUEST_NOT_PRESENT,
        APF_TRACE_GUEST_READY,      APF_TRACE_GUEST_WAKE,   APF_TRACE_GUEST_ACK,
        APF_TRACE_GUEST_SLEEP,      APF_TRACE_GUEST_ENABLE, APF_TRACE_GUEST_DISABLE};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        struct apf_trace_event ev = {.kind = kinds[i], .token = 0xffffffffu, .gpa = ~0ull};
        char line[96];
        ck_assert_int_gt(apf_trace_format(&ev, line, sizeof(line)), 0);
        ck_assert_str_ne(apf_trace_kind_name(kinds[i]), "unknown");
        struct apf_trace_event back;
        ck_assert_int_eq(apf_trace_parse(line, strlen(line), &back), 0);
        ck_assert_uint_eq(back.kind, kinds[i]);
        ck_assert_uint_eq(back.token, 0xffffffffu);
        ck_assert_uint_eq(back.gpa, ~0ull);
    }
    ck_assert_str_eq(apf_trace_kind_name(999), "unknown");
}
END_TEST

START_TEST(test_format_refuses_small_buffers)
{
    struct apf_trace_event ev = {.kind = APF_TRACE_HOST_ACK};
    char line[8] = "garbage";
    ck_assert_int_eq(apf_trace_format(&ev, line, sizeof(line)), APF_ENOSPC);
    ck_assert_str_eq(line, "");
    ck_assert_int_eq(apf_trace_format(&ev, line, 0), APF_ENOSPC);
}
END_TEST

START_TEST(test_parse_rejects_malformed_lines_and_leaves_event_alone)
{
    static const char *const bad[] = {
        "",
        "1 host.np 0 0x1000 0x0",            /* missing field */
        "1 host.np 0 0x1000 0x0 0 extra",    /* trailing field */
        "x host.np 0 0x1000 0x0 0",          /* bad time */
        "1 host.nope 0 0x1000 0x0 0",        /* unknown kind */
        "1 host.np -1 0x1000 0x0 0",         /* negative vCPU */
        "1 host.np 0 0x100000000 0x0 0",     /* token > 32 bits */
        "1 host.np 0 0xzz 0x0 0",            /* bad hex */
        "1 host.np 0 0x1000 0x0 2147483648", /* arg > int32 */
        "1 host.np 4294967296 0x1000 0x0 0", /* vCPU > 32 bits */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct apf_trace_event ev = {.kind = 77, .vcpu = 77};
        ck_assert_msg(apf_trace_parse(bad[i], strlen(bad[i]), &ev) == APF_EINVAL, "%s", bad[i]);
        ck_assert_uint_eq(ev.kind, 77);
        ck_assert_uint_eq(ev.vcpu, 77);
    }
    struct apf_trace_event ev;
    const char *ok = "5 guest.ack 1 0x1 0x0 -2147483648\n";
    ck_assert_int_eq(apf_trace_parse(ok, strlen(ok), &ev), 0);
    ck_assert_int_eq(ev.arg, INT32_MIN);
}
END_TEST

/* ---- the checker ------------------------------------------------------------------------ */

static unsigned char mem[1 << 16];
static struct apf_trace_checker *chk;

static void fresh(void)
{
    chk = apf_trace_checker_init(mem, sizeof(mem), 2, 8);
    ck_assert_ptr_nonnull(chk);
}

/* Feeds "kind vcpu token" triples; returns the first non-zero result. */
static int feed(uint32_t kind, uint32_t vcpu, uint32_t token)
{
    struct apf_trace_event ev = {.kind = kind, .vcpu = vcpu, .token = token};
    return apf_trace_checker_feed(chk, &ev);
}

/* A correct session on vCPU 0: enable, wake-all, two faults answered in either order. */
static void good_prefix(void)
{
    ck_assert_int_eq(feed(APF_TRACE_HOST_ENABLE, 0, 0), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, APF_TOKEN_WAKE_ALL), 0);
    ck_assert_int_eq(feed(APF_TRACE_GUEST_READY, 0, APF_TOKEN_WAKE_ALL), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_ACK, 0, 0), 0);
}

START_TEST(test_checker_accepts_a_correct_session)
{
    fresh();
    good_prefix();
    ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, 0x1000), 0);
    ck_assert_int_eq(feed(APF_TRACE_GUEST_NOT_PRESENT, 0, 0x1000), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, 0x2000), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_DONE, 0, 0x2000), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, 0x2000), 0);
    ck_assert_int_eq(feed(APF_TRACE_GUEST_READY, 0, 0x2000), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_ACK, 0, 0), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, 0x1000), 0);
    ck_assert_int_eq(feed(APF_TRACE_GUEST_READY, 0, 0x1000), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_ACK, 0, 0), 0);
    ck_assert_int_eq(apf_trace_checker_finish(chk), 0);
    ck_assert_str_eq(apf_trace_checker_error(chk), "");
    ck_assert_uint_eq(apf_trace_checker_events(chk), 14);
}
END_TEST

/* Each of these breaks one rule: the checker must flag exactly the last event. */
struct violation {
    const char *name;
    uint32_t ev[8][3];
    int n;
};

static const struct violation violations[] = {
    {"not present while APF is off", {{APF_TRACE_HOST_NOT_PRESENT, 0, 0x1000}}, 1},
    {"token 0", {{APF_TRACE_HOST_ENABLE, 0, 0}, {APF_TRACE_HOST_NOT_PRESENT, 0, 0}}, 2},
    {"wake-all token as a fault",
     {{APF_TRACE_HOST_ENABLE, 0, 0}, {APF_TRACE_HOST_NOT_PRESENT, 0, 0xffffffffu}}, 2},
    {"token outstanding twice",
     {{APF_TRACE_HOST_ENABLE, 0, 0},
      {APF_TRACE_HOST_NOT_PRESENT, 0, 0x1000},
      {APF_TRACE_HOST_NOT_PRESENT, 0, 0x1000}},
     3},
    {"ready before the owed wake-all",
     {{APF_TRACE_HOST_ENABLE, 0, 0},
      {APF_TRACE_HOST_NOT_PRESENT, 0, 0x1000},
      {APF_TRACE_HOST_READY, 0, 0x1000}},
     3},
    {"ready for a token never delivered",
     {{APF_TRACE_HOST_ENABLE, 0, 0},
      {APF_TRACE_HOST_READY, 0, APF_TOKEN_WAKE_ALL},
      {APF_TRACE_HOST_ACK, 0, 0},
      {APF_TRACE_HOST_READY, 0, 0x3000}},
     4},
    {"second ready before the ACK",
     {{APF_TRACE_HOST_ENABLE, 0, 0},
      {APF_TRACE_HOST_NOT_PRESENT, 0, 0x1000},
      {APF_TRACE_HOST_READY, 0, APF_TOKEN_WAKE_ALL},
      {APF_TRACE_HOST_NOT_PRESENT, 0, 0x2000},
      {APF_TRACE_HOST_READY, 0, 0x2000}},
     5},
    {"ready while the slot is still full (guest events present)",
     {{APF_TRACE_HOST_ENABLE, 0, 0},
      {APF_TRACE_HOST_READY, 0, APF_TOKEN_WAKE_ALL},
      {APF_TRACE_GUEST_ACK, 0, 0},
      {APF_TRACE_HOST_ACK, 0, 0},
      {APF_TRACE_HOST_NOT_PRESENT, 0, 0x1000},
      {APF_TRACE_HOST_READY, 0, 0x1000}},
     6},
    {"ready answered twice",
     {{APF_TRACE_HOST_ENABLE, 0, 0},
      {APF_TRACE_HOST_READY, 0, APF_TOKEN_WAKE_ALL},
      {APF_TRACE_HOST_ACK, 0, 0},
      {APF_TRACE_HOST_NOT_PRESENT, 0, 0x1000},
      {APF_TRACE_HOST_READY, 0, 0x1000},
      {APF_TRACE_HOST_ACK, 0, 0},
      {APF_TRACE_HOST_READY, 0, 0x1000}},
     7},
    {"ready for work dropped by disable",
     {{APF_TRACE_HOST_ENABLE, 0, 0},
      {APF_TRACE_HOST_READY, 0, APF_TOKEN_WAKE_ALL},
      {APF_TRACE_HOST_ACK, 0, 0},
      {APF_TRACE_HOST_NOT_PRESENT, 0, 0x1000},
      {APF_TRACE_HOST_DISABLE, 0, 0},
      {APF_TRACE_HOST_ENABLE, 0, 0},
      {APF_TRACE_HOST_READY, 0, 0x1000}},
     7},
    {"guest read another token",
     {{APF_TRACE_HOST_ENABLE, 0, 0},
      {APF_TRACE_HOST_READY, 0, APF_TOKEN_WAKE_ALL},
      {APF_TRACE_GUEST_READY, 0, 0x5000}},
     3},
    {"guest not present the host never sent",
     {{APF_TRACE_HOST_ENABLE, 0, 0}, {APF_TRACE_GUEST_NOT_PRESENT, 0, 0x1000}},
     2},
    {"unknown kind", {{99, 0, 0}}, 1},
};

START_TEST(test_checker_flags_each_violation_at_its_event)
{
    const struct violation *v = &violations[_i];
    fresh();
    for (int k = 0; k < v->n; k++) {
        int r = feed(v->ev[k][0], v->ev[k][1], v->ev[k][2]);
        if (k < v->n - 1)
            ck_assert_msg(r == 0, "%s: flagged early at event %d: %s", v->name, k + 1,
                          apf_trace_checker_error(chk));
        else
            ck_assert_msg(r == APF_EPROTO, "%s: not flagged", v->name);
    }
    ck_assert_uint_eq(apf_trace_checker_events(chk), (uint64_t)v->n);
    ck_assert_str_ne(apf_trace_checker_error(chk), "");
    /* failed for good: later events are ignored and finish still fails */
    ck_assert_int_eq(feed(APF_TRACE_HOST_ACK, 0, 0), APF_EPROTO);
    ck_assert_uint_eq(apf_trace_checker_events(chk), (uint64_t)v->n);
    ck_assert_int_eq(apf_trace_checker_finish(chk), APF_EPROTO);
}
END_TEST

START_TEST(test_finish_flags_unanswered_not_present)
{
    fresh();
    good_prefix();
    ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, 0x4000), 0);
    ck_assert_int_eq(apf_trace_checker_finish(chk), APF_EPROTO);
    ck_assert_ptr_nonnull(strstr(apf_trace_checker_error(chk), "never answered"));
    ck_assert_ptr_nonnull(strstr(apf_trace_checker_error(chk), "0x4000"));
}
END_TEST

START_TEST(test_wake_all_and_disable_cover_outstanding)
{
    fresh();
    good_prefix();
    ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, 0x1000), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_ENABLE, 0, 0), 0); /* re-enable: dropped */
    ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, 0x2000), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, APF_TOKEN_WAKE_ALL), 0); /* covers 0x2000 */
    ck_assert_int_eq(feed(APF_TRACE_HOST_ACK, 0, 0), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_ENABLE, 1, 0), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 1, 0x1001), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_DISABLE, 1, 0), 0); /* drops 0x1001 */
    ck_assert_int_eq(apf_trace_checker_finish(chk), 0);
}
END_TEST

START_TEST(test_checker_sizing_and_bad_input)
{
    ck_assert_uint_eq(apf_trace_checker_size(0, 64), 0);
    ck_assert_uint_eq(apf_trace_checker_size(1, 0), 0);
    ck_assert_uint_eq(apf_trace_checker_size(65537, 64), 0);
    size_t need = apf_trace_checker_size(2, 8);
    ck_assert_uint_gt(need, 0);
    ck_assert_ptr_null(apf_trace_checker_init(mem, need - 1, 2, 8));
    ck_assert_ptr_null(apf_trace_checker_init(mem + 1, need, 2, 8)); /* misaligned */
    ck_assert_ptr_null(apf_trace_checker_init(NULL, need, 2, 8));
    fresh();
    ck_assert_int_eq(feed(APF_TRACE_HOST_ENABLE, 2, 0), APF_EINVAL); /* vCPU out of range */
    ck_assert_uint_eq(apf_trace_checker_events(chk), 0);
    /* more outstanding tokens than sized for: the table has 16 entries for 8 */
    ck_assert_int_eq(feed(APF_TRACE_HOST_ENABLE, 0, 0), 0);
    int r = 0;
    for (uint32_t t = 1; t <= 17 && r == 0; t++)
        r = feed(APF_TRACE_HOST_NOT_PRESENT, 0, t << 12);
    ck_assert_int_eq(r, APF_EPROTO);
    ck_assert_ptr_nonnull(strstr(apf_trace_checker_error(chk), "sized"));
}
END_TEST

static Suite *trace_suite(void)
{
    Suite *s = suite_create("trace");
    TCase *tc = tcase_create("format");
    tcase_add_test(tc, test_format_parse_round_trip);
    tcase_add_test(tc, test_every_kind_has_a_name_that_parses);
    tcase_add_test(tc, test_format_refuses_small_buffers);
    tcase_add_test(tc, test_parse_rejects_malformed_lines_and_leaves_event_alone);
    suite_add_tcase(s, tc);
    tc = tcase_create("checker");
    tcase_add_test(tc, test_checker_accepts_a_correct_session);
    tcase_add_loop_test(tc, test_checker_flags_each_violation_at_its_event, 0,
                        (int)(sizeof(violations) / sizeof(violations[0])));
    tcase_add_test(tc, test_finish_flags_unanswered_not_present);
    tcase_add_test(tc, test_wake_all_and_disable_cover_outstanding);
    tcase_add_test(tc, test_checker_sizing_and_bad_input);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(trace_suite)
