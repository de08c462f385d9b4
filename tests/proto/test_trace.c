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
        APF_TRACE_HOST_RESET,       APF_TRACE_HOST_RESTORE, APF_TRACE_HOST_TRANSPORT,
        APF_TRACE_GUEST_NOT_PRESENT,
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

/* Finding 11: one whitespace rule for every reader (apf/trace.h "Whitespace"). */
START_TEST(test_parse_whitespace_is_one_rule)
{
    static const char *const good[] = {
        "5 host.np 1 0x1000 0x2000 3",
        "5 host.np 1 0x1000 0x2000 3\n",
        "5 host.np 1 0x1000 0x2000 3\r\n",      /* CRLF files */
        "\t5\thost.np\t1\t0x1000\t0x2000\t3",  /* tabs separate, and may indent */
        "  5  host.np \t 1 0x1000   0x2000 3 \t", /* runs of blanks, trailing blanks */
        " 5 host.np 1 0x1000 0x2000 3\t\r\n",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct apf_trace_event ev = {0};
        ck_assert_msg(apf_trace_parse(good[i], strlen(good[i]), &ev) == 0, "good %zu", i);
        ck_assert_uint_eq(ev.time_ns, 5);
        ck_assert_uint_eq(ev.kind, APF_TRACE_HOST_NOT_PRESENT);
        ck_assert_uint_eq(ev.vcpu, 1);
        ck_assert_uint_eq(ev.token, 0x1000);
        ck_assert_uint_eq(ev.gpa, 0x2000);
        ck_assert_int_eq(ev.arg, 3);
        ck_assert_int_eq(apf_trace_line_ignored(good[i], strlen(good[i])), 0);
    }
    static const char *const bad[] = {
        "5 host.np 1 0x1000 0x2000 3\rgarbage", /* a '\r' that does not end the line */
        "5 host.np 1 0x1000 0x2000 3\r",        /* ... nor does a lone one */
        "5 host.np 1 0x1000\r0x2000 3",
        "5 host.np 1 0x1000 0x2000 3\ngarbage", /* one line, not two */
        "5 host.np 1 0x1000 0x2000 3\n\n",
        "5 host.np 1 0x1000 0x2000 3\v",        /* only spaces and tabs are blanks */
        "5\fhost.np 1 0x1000 0x2000 3",
        "# 5 host.np 1 0x1000 0x2000 3",       /* a comment is not an event */
        "\t# 5 host.np 1 0x1000 0x2000 3",
        " \t\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct apf_trace_event ev = {.kind = 77};
        ck_assert_msg(apf_trace_parse(bad[i], strlen(bad[i]), &ev) == APF_EINVAL, "bad %zu", i);
        ck_assert_uint_eq(ev.kind, 77);
    }
    /* Comments and blank lines: the same blanks and line ends. */
    static const char *const ignored[] = {"", "\n", "\r\n", " \t \n", "#", "# x\n",
                                          "\t# x\r\n", "   #"};
    for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
        ck_assert_msg(apf_trace_line_ignored(ignored[i], strlen(ignored[i])) == 1, "ign %zu", i);
    static const char *const not_ignored[] = {"\r", "\rx", "x", "\v#", " 5 #"};
    for (size_t i = 0; i < sizeof(not_ignored) / sizeof(not_ignored[0]); i++)
        ck_assert_msg(apf_trace_line_ignored(not_ignored[i], strlen(not_ignored[i])) == 0,
                      "not ignored %zu", i);
    ck_assert_int_eq(apf_trace_line_ignored(NULL, 0), 1);
    struct apf_trace_event ev;
    ck_assert_int_eq(apf_trace_parse(NULL, 3, &ev), APF_EINVAL);
    ck_assert_int_eq(apf_trace_parse("5 host.np 1 0x1 0x2 3", 21, NULL), APF_EINVAL);
}
END_TEST

/* ---- the checker ------------------------------------------------------------------------ */

static _Alignas(8) unsigned char mem[1 << 16];
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

/* The exact text the checker gave for each of `violations` before windows existed (captured
 * from the previous trace.c): a trace without host.transport must behave exactly as before. */
static const char *const legacy_errors[] = {
    "event 1 (host.np vcpu 0 token 0x1000): not present delivered while APF is off",
    "event 2 (host.np vcpu 0 token 0x0): not present with token 0 or 0xffffffff",
    "event 2 (host.np vcpu 0 token 0xffffffff): not present with token 0 or 0xffffffff",
    "event 3 (host.np vcpu 0 token 0x1000): token already outstanding on this vCPU",
    "event 3 (host.ready vcpu 0 token 0x1000): page ready before the wake-all owed since APF "
    "was enabled",
    "event 4 (host.ready vcpu 0 token 0x3000): page ready for a token not outstanding (never "
    "delivered, dropped, or answered already)",
    "event 5 (host.ready vcpu 0 token 0x2000): second page ready before the guest ACKed the "
    "first",
    "event 6 (host.ready vcpu 0 token 0x1000): page ready written before the guest consumed "
    "the previous one",
    "event 7 (host.ready vcpu 0 token 0x1000): page ready for a token not outstanding (never "
    "delivered, dropped, or answered already)",
    "event 7 (host.ready vcpu 0 token 0x1000): page ready before the wake-all owed since APF "
    "was enabled",
    "event 3 (guest.ready vcpu 0 token 0x5000): guest read another token than the host wrote",
    "event 2 (guest.np vcpu 0 token 0x1000): guest took a not present the host did not send",
    "event 1 (unknown vcpu 0 token 0x0): unknown event kind",
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
    ck_assert_str_eq(apf_trace_checker_error(chk), legacy_errors[_i]);
    ck_assert_uint_eq(apf_trace_checker_window(chk, 0), APF_TRACE_WINDOW_SLOT); /* default */
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
    ck_assert_int_eq(r, APF_ENOSPC); /* the checker is too small: not a violation */
    ck_assert_ptr_nonnull(strstr(apf_trace_checker_error(chk), "sized"));
    ck_assert_int_eq(feed(APF_TRACE_HOST_ACK, 0, 0), APF_ENOSPC); /* stays failed */
    ck_assert_int_eq(apf_trace_checker_finish(chk), APF_ENOSPC);
}
END_TEST

/* ---- windows: ring, unthrottled, explicit ---------------------------------------------- */

static int feed_arg(uint32_t kind, uint32_t vcpu, uint32_t token, int32_t arg)
{
    struct apf_trace_event ev = {.kind = kind, .vcpu = vcpu, .token = token, .arg = arg};
    return apf_trace_checker_feed(chk, &ev);
}

struct ev4 {
    uint32_t kind, vcpu, token;
    int32_t arg;
};

/* The common prefix of tests/proto/traces/{good,bad}_ring*.txt: a ring of 4 entries, the
 * owed wake-all consumed and ACKed, four faults outstanding (16 events). */
static const struct ev4 ring_prefix[] = {
    {APF_TRACE_HOST_ENABLE, 0, 0, 13},
    {APF_TRACE_HOST_TRANSPORT, 0, APF_TRANSPORT_ID_KVM_ARM64, 4},
    {APF_TRACE_GUEST_ENABLE, 0, 0, 0},
    {APF_TRACE_HOST_READY, 0, APF_TOKEN_WAKE_ALL, 27},
    {APF_TRACE_GUEST_READY, 0, APF_TOKEN_WAKE_ALL, 0},
    {APF_TRACE_GUEST_WAKE, 0, APF_TOKEN_WAKE_ALL, 1},
    {APF_TRACE_GUEST_ACK, 0, 0, 0},
    {APF_TRACE_HOST_ACK, 0, 0, 1},
    {APF_TRACE_HOST_NOT_PRESENT, 0, 0x1000, 0},
    {APF_TRACE_GUEST_NOT_PRESENT, 0, 0x1000, 0},
    {APF_TRACE_HOST_NOT_PRESENT, 0, 0x2000, 0},
    {APF_TRACE_GUEST_NOT_PRESENT, 0, 0x2000, 0},
    {APF_TRACE_HOST_NOT_PRESENT, 0, 0x3000, 0},
    {APF_TRACE_GUEST_NOT_PRESENT, 0, 0x3000, 0},
    {APF_TRACE_HOST_NOT_PRESENT, 0, 0x4000, 0},
    {APF_TRACE_GUEST_NOT_PRESENT, 0, 0x4000, 0},
};
#define RING_PREFIX_N ((int)(sizeof(ring_prefix) / sizeof(ring_prefix[0])))

static void feed_all(const struct ev4 *e, int n)
{
    for (int k = 0; k < n; k++)
        ck_assert_msg(feed_arg(e[k].kind, e[k].vcpu, e[k].token, e[k].arg) == 0,
                      "event %d: %s", k + 1, apf_trace_checker_error(chk));
}

START_TEST(test_ring_four_in_flight_is_within_the_window)
{
    /* tests/proto/traces/good_ring.txt */
    static const struct ev4 tail[] = {
        {APF_TRACE_HOST_READY, 0, 0x1000, 27}, {APF_TRACE_HOST_READY, 0, 0x2000, 0},
        {APF_TRACE_HOST_READY, 0, 0x3000, 0},  {APF_TRACE_HOST_READY, 0, 0x4000, 0},
        {APF_TRACE_GUEST_READY, 0, 0x1000, 0}, {APF_TRACE_GUEST_WAKE, 0, 0x1000, 1},
        {APF_TRACE_GUEST_READY, 0, 0x2000, 0}, {APF_TRACE_GUEST_WAKE, 0, 0x2000, 1},
        {APF_TRACE_GUEST_ACK, 0, 0, 0},        {APF_TRACE_HOST_ACK, 0, 0, 2},
        {APF_TRACE_GUEST_READY, 0, 0x3000, 0}, {APF_TRACE_GUEST_WAKE, 0, 0x3000, 1},
        {APF_TRACE_GUEST_READY, 0, 0x4000, 0}, {APF_TRACE_GUEST_WAKE, 0, 0x4000, 1},
        {APF_TRACE_GUEST_ACK, 0, 0, 0},        {APF_TRACE_HOST_ACK, 0, 0, 2},
    };
    fresh();
    ck_assert_uint_eq(apf_trace_checker_window(chk, 0), 1);
    feed_all(ring_prefix, RING_PREFIX_N);
    ck_assert_uint_eq(apf_trace_checker_window(chk, 0), 4);
    ck_assert_uint_eq(apf_trace_checker_window(chk, 1), 1); /* per vCPU */
    feed_all(tail, (int)(sizeof(tail) / sizeof(tail[0])));
    ck_assert_int_eq(apf_trace_checker_finish(chk), 0);
    ck_assert_str_eq(apf_trace_checker_error(chk), "");
    ck_assert_uint_eq(apf_trace_checker_events(chk), 32);
}
END_TEST

/* Each breaks one window rule after ring_prefix: flagged exactly at its last event, with
 * exactly this text (the same as apf-trace-check prints for tests/proto/traces/bad_ring_*). */
struct ring_violation {
    const char *name;
    struct ev4 ev[12];
    int n;
    const char *error;
};

static const struct ring_violation ring_violations[] = {
    {"fifth page ready before an ack (bad_ring_fifth_before_ack.txt)",
     {{APF_TRACE_HOST_NOT_PRESENT, 0, 0x5000, 0},
      {APF_TRACE_HOST_READY, 0, 0x1000, 27},
      {APF_TRACE_HOST_READY, 0, 0x2000, 0},
      {APF_TRACE_HOST_READY, 0, 0x3000, 0},
      {APF_TRACE_HOST_READY, 0, 0x4000, 0},
      {APF_TRACE_GUEST_READY, 0, 0x1000, 0},
      {APF_TRACE_GUEST_READY, 0, 0x2000, 0},
      {APF_TRACE_GUEST_READY, 0, 0x3000, 0},
      {APF_TRACE_GUEST_READY, 0, 0x4000, 0},
      {APF_TRACE_GUEST_ACK, 0, 0, 0},
      {APF_TRACE_HOST_READY, 0, 0x5000, 27}},
     11,
     "event 27 (host.ready vcpu 0 token 0x5000): page ready beyond the window: 4 in flight "
     "(not released by host.ack), window 4"},
    {"ack releasing 3 with 2 in flight (bad_ring_ack_overrun.txt)",
     {{APF_TRACE_HOST_READY, 0, 0x1000, 27},
      {APF_TRACE_HOST_READY, 0, 0x2000, 0},
      {APF_TRACE_GUEST_READY, 0, 0x1000, 0},
      {APF_TRACE_GUEST_READY, 0, 0x2000, 0},
      {APF_TRACE_GUEST_ACK, 0, 0, 0},
      {APF_TRACE_HOST_ACK, 0, 0, 3}},
     6,
     "event 22 (host.ack vcpu 0 token 0x0): ACK released 3 page readies, only 2 in flight "
     "(consumer index overrun or rewound?)"},
    {"ready for an older token after a wake-all (bad_ring_ready_after_wake_all.txt)",
     {{APF_TRACE_HOST_READY, 0, APF_TOKEN_WAKE_ALL, 27},
      {APF_TRACE_GUEST_READY, 0, APF_TOKEN_WAKE_ALL, 0},
      {APF_TRACE_GUEST_WAKE, 0, APF_TOKEN_WAKE_ALL, 4},
      {APF_TRACE_GUEST_ACK, 0, 0, 0},
      {APF_TRACE_HOST_ACK, 0, 0, 1},
      {APF_TRACE_HOST_READY, 0, 0x1000, 27}},
     6,
     "event 22 (host.ready vcpu 0 token 0x1000): page ready for a token whose not present "
     "preceded a wake-all (answered by it already)"},
    {"guest tokens out of FIFO order (bad_ring_guest_fifo.txt)",
     {{APF_TRACE_HOST_READY, 0, 0x1000, 27},
      {APF_TRACE_HOST_READY, 0, 0x2000, 0},
      {APF_TRACE_GUEST_READY, 0, 0x2000, 0}},
     3,
     "event 19 (guest.ready vcpu 0 token 0x2000): guest consumed page readies out of FIFO "
     "order: 1 older unconsumed before this one"},
    {"guest reads a token never sent",
     {{APF_TRACE_HOST_READY, 0, 0x1000, 27}, {APF_TRACE_GUEST_READY, 0, 0x7000, 0}},
     2,
     "event 18 (guest.ready vcpu 0 token 0x7000): guest read another token than the host "
     "wrote"},
    {"guest consumes more than was sent",
     {{APF_TRACE_HOST_READY, 0, 0x1000, 27},
      {APF_TRACE_GUEST_READY, 0, 0x1000, 0},
      {APF_TRACE_GUEST_READY, 0, 0x1000, 0}},
     3,
     "event 19 (guest.ready vcpu 0 token 0x1000): guest consumed a page ready that was not "
     "sent"},
    {"host's consumer index ahead of the guest: overwrites an unconsumed entry",
     {{APF_TRACE_HOST_READY, 0, 0x1000, 27},
      {APF_TRACE_HOST_READY, 0, 0x2000, 0},
      {APF_TRACE_HOST_READY, 0, 0x3000, 0},
      {APF_TRACE_HOST_READY, 0, 0x4000, 0},
      {APF_TRACE_HOST_ACK, 0, 0, 4}, /* the guest consumed nothing */
      {APF_TRACE_HOST_NOT_PRESENT, 0, 0x5000, 0},
      {APF_TRACE_HOST_READY, 0, 0x5000, 27}},
     7,
     "event 23 (host.ready vcpu 0 token 0x5000): page ready written over an entry the guest "
     "has not consumed: 4 unconsumed, window 4"},
    {"ack with a negative count",
     {{APF_TRACE_HOST_READY, 0, 0x1000, 27}, {APF_TRACE_HOST_ACK, 0, 0, -1}},
     2,
     "event 18 (host.ack vcpu 0 token 0x0): ACK with a negative count of released page "
     "readies"},
    {"transport with a negative window",
     {{APF_TRACE_HOST_TRANSPORT, 0, APF_TRANSPORT_ID_TEST, -4}},
     1,
     "event 17 (host.transport vcpu 0 token 0xff): transport with a negative window"},
};

START_TEST(test_ring_flags_each_violation_at_its_event)
{
    const struct ring_violation *v = &ring_violations[_i];
    fresh();
    feed_all(ring_prefix, RING_PREFIX_N);
    for (int k = 0; k < v->n; k++) {
        const struct ev4 *e = &v->ev[k];
        int r = feed_arg(e->kind, e->vcpu, e->token, e->arg);
        if (k < v->n - 1)
            ck_assert_msg(r == 0, "%s: flagged early at event %d: %s", v->name,
                          RING_PREFIX_N + k + 1, apf_trace_checker_error(chk));
        else
            ck_assert_msg(r == APF_EPROTO, "%s: not flagged (%d)", v->name, r);
    }
    ck_assert_uint_eq(apf_trace_checker_events(chk), (uint64_t)(RING_PREFIX_N + v->n));
    ck_assert_str_eq(apf_trace_checker_error(chk), v->error);
    ck_assert_int_eq(apf_trace_checker_finish(chk), APF_EPROTO);
}
END_TEST

/* A restore that turns a ring on may continue the source's ring (apf-mmio, xen-hvm): the
 * entries the source sent are released by host.acks of a trace that never showed them.
 * Up to one window of them, only right after that restore's enable. */
START_TEST(test_ring_restore_may_release_up_to_a_window_of_the_sources_entries)
{
    static const struct ev4 restore_on[] = {
        {APF_TRACE_HOST_RESTORE, 0, 0, 1},
        {APF_TRACE_HOST_ENABLE, 0, 0, 1},
        {APF_TRACE_HOST_TRANSPORT, 0, APF_TRANSPORT_ID_MMIO, 4},
    };
    static const char overrun[] = "event 4 (host.ack vcpu 0 token 0x0): ACK released 5 page "
                                  "readies, only 0 in flight (consumer index overrun or "
                                  "rewound?)";
    fresh();
    feed_all(restore_on, 3);
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_ACK, 0, 0, 3), 0); /* three of the source's */
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_READY, 0, APF_TOKEN_WAKE_ALL, 27), 0);
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_ACK, 0, 0, 2), 0); /* the last one + wake-all */
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_ACK, 0, 0, 1), APF_EPROTO); /* none left */
    /* more than a window */
    fresh();
    feed_all(restore_on, 3);
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_ACK, 0, 0, 5), APF_EPROTO);
    ck_assert_str_eq(apf_trace_checker_error(chk), overrun);
    fresh(); /* an enable that is not a restore's */
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_RESTORE, 0, 0, 0), 0);
    feed_all(restore_on + 1, 2);
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_ACK, 0, 0, 1), APF_EPROTO);
    fresh(); /* a slot has nothing to continue */
    feed_all(restore_on, 2);
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_TRANSPORT, 0, APF_TRANSPORT_ID_KVM_X86, 1), 0);
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_ACK, 0, 0, 1), APF_EPROTO);
    fresh(); /* a disable ends the allowance */
    feed_all(restore_on, 3);
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_DISABLE, 0, 0, 0), 0);
    feed_all(restore_on + 1, 2);
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_ACK, 0, 0, 1), APF_EPROTO);
}
END_TEST

START_TEST(test_ring_partial_acks_and_token_reuse_after_wake_all)
{
    fresh();
    feed_all(ring_prefix, RING_PREFIX_N);
    /* 0x1000 answered; a wake-all covers 0x2000..0x4000; 0x2000 is then reissued and
     * answered by its own page ready: that is not a second answer. */
    static const struct ev4 tail[] = {
        {APF_TRACE_HOST_READY, 0, 0x1000, 27},
        {APF_TRACE_HOST_READY, 0, APF_TOKEN_WAKE_ALL, 0},
        {APF_TRACE_GUEST_READY, 0, 0x1000, 0},
        {APF_TRACE_GUEST_ACK, 0, 0, 0},
        {APF_TRACE_HOST_ACK, 0, 0, 1},
        {APF_TRACE_GUEST_READY, 0, APF_TOKEN_WAKE_ALL, 0},
        {APF_TRACE_GUEST_ACK, 0, 0, 0},
        {APF_TRACE_HOST_ACK, 0, 0, 1},
        {APF_TRACE_HOST_NOT_PRESENT, 0, 0x2000, 0},
        {APF_TRACE_GUEST_NOT_PRESENT, 0, 0x2000, 0},
        {APF_TRACE_HOST_READY, 0, 0x2000, 27},
        {APF_TRACE_GUEST_READY, 0, 0x2000, 0},
        {APF_TRACE_HOST_ACK, 0, 0, 1},
        {APF_TRACE_HOST_ACK, 0, 0, 0}, /* nothing released: harmless */
    };
    feed_all(tail, (int)(sizeof(tail) / sizeof(tail[0])));
    ck_assert_int_eq(apf_trace_checker_finish(chk), 0);
    /* but 0x3000 (covered, not reissued) may not be answered */
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_READY, 0, 0x3000, 0), APF_EPROTO);
    ck_assert_ptr_nonnull(strstr(apf_trace_checker_error(chk), "preceded a wake-all"));
}
END_TEST

START_TEST(test_unthrottled_window_0_hundred_in_flight)
{
    /* tests/proto/traces/good_unthrottled.txt: host events only, nothing ever released */
    chk = apf_trace_checker_init(mem, sizeof(mem), 1, 128);
    ck_assert_ptr_nonnull(chk);
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_ENABLE, 0, 0, 9), 0);
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_TRANSPORT, 0, APF_TRANSPORT_ID_TEST, 0), 0);
    ck_assert_uint_eq(apf_trace_checker_window(chk, 0), APF_TRACE_WINDOW_UNTHROTTLED);
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_READY, 0, APF_TOKEN_WAKE_ALL, 236), 0);
    for (uint32_t t = 1; t <= 100; t++)
        ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, t << 12), 0);
    for (uint32_t t = 1; t <= 100; t++)
        ck_assert_msg(feed_arg(APF_TRACE_HOST_READY, 0, t << 12, 236) == 0, "%u: %s", t,
                      apf_trace_checker_error(chk));
    ck_assert_int_eq(apf_trace_checker_finish(chk), 0);
    ck_assert_uint_eq(apf_trace_checker_events(chk), 203);
}
END_TEST

START_TEST(test_unthrottled_guest_fifo_is_bounded_by_the_queue)
{
    /* Window 0 with guest events: the guest-side FIFO holds max_window tokens; more
     * unconsumed is APF_ENOSPC (the checker is too small), said so, not a violation. */
    size_t need = apf_trace_checker_size_windowed(1, 64, 8);
    ck_assert_uint_gt(need, 0);
    ck_assert_uint_lt(need, apf_trace_checker_size_windowed(1, 64, 9));
    chk = apf_trace_checker_init_windowed(mem, need, 1, 64, 8);
    ck_assert_ptr_nonnull(chk);
    ck_assert_int_eq(feed(APF_TRACE_GUEST_ENABLE, 0, 0), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_ENABLE, 0, 0), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_TRANSPORT, 0, APF_TRANSPORT_ID_TEST), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, APF_TOKEN_WAKE_ALL), 0);
    ck_assert_int_eq(feed(APF_TRACE_GUEST_READY, 0, APF_TOKEN_WAKE_ALL), 0);
    for (uint32_t t = 1; t <= 9; t++)
        ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, t << 12), 0);
    for (uint32_t t = 1; t <= 8; t++)
        ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, t << 12), 0); /* 8 unconsumed: ok */
    ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, 9 << 12), APF_ENOSPC);
    ck_assert_str_eq(apf_trace_checker_error(chk),
                     "event 23 (host.ready vcpu 0 token 0x9000): more page readies unconsumed "
                     "by the guest than the checker was sized for (max_window 8 tokens per "
                     "vCPU)");
    ck_assert_int_eq(apf_trace_checker_finish(chk), APF_ENOSPC);
}
END_TEST

START_TEST(test_no_transport_event_is_window_1_and_slot_event_changes_nothing)
{
    /* The same session with and without host.transport (slot, window 1): same verdicts. */
    for (int with = 0; with < 2; with++) {
        fresh();
        ck_assert_int_eq(feed(APF_TRACE_HOST_ENABLE, 0, 0), 0);
        if (with)
            ck_assert_int_eq(feed_arg(APF_TRACE_HOST_TRANSPORT, 0, APF_TRANSPORT_ID_KVM_X86, 1),
                             0);
        ck_assert_uint_eq(apf_trace_checker_window(chk, 0), 1);
        ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, 0x1000), 0);
        ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, APF_TOKEN_WAKE_ALL), 0);
        ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, 0x2000), 0);
        ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, 0x2000), APF_EPROTO);
        ck_assert_str_eq(strchr(apf_trace_checker_error(chk), ':'),
                         ": second page ready before the guest ACKed the first");
        ck_assert_uint_eq(apf_trace_checker_events(chk), (uint64_t)(5 + with));
    }
    /* slot: an ACK frees the slot whatever its count (0 = the trace predates the count) */
    fresh();
    good_prefix(); /* its ACK has arg 0 */
    ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, 0x1000), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, 0x1000), 0);
    ck_assert_int_eq(feed(APF_TRACE_GUEST_READY, 0, 0x1000), 0);
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_ACK, 0, 0, 1), 0);
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_ACK, 0, 0, 0), 0); /* spurious */
    ck_assert_int_eq(apf_trace_checker_finish(chk), 0);
    /* but a count of 1 with nothing in flight is an overrun, whatever the window */
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_ACK, 0, 0, 1), APF_EPROTO);
    ck_assert_ptr_nonnull(strstr(apf_trace_checker_error(chk), "ACK released 1 page readies, "
                                                               "only 0 in flight"));
}
END_TEST

START_TEST(test_set_window_pins_and_overrides_the_trace)
{
    fresh();
    ck_assert_int_eq(apf_trace_checker_set_window(chk, 2, 4), APF_EINVAL);
    ck_assert_int_eq(apf_trace_checker_set_window(chk, APF_TRACE_ALL_VCPUS, 2), 0);
    ck_assert_uint_eq(apf_trace_checker_window(chk, 0), 2);
    ck_assert_uint_eq(apf_trace_checker_window(chk, 1), 2);
    ck_assert_int_eq(apf_trace_checker_set_window(chk, 1, 0), 0);
    ck_assert_uint_eq(apf_trace_checker_window(chk, 0), 2);
    ck_assert_uint_eq(apf_trace_checker_window(chk, 1), 0);
    ck_assert_uint_eq(apf_trace_checker_window(chk, 2), 0); /* out of range */
    /* vCPU 0: the trace claims a ring of 8; the pinned window 2 stays */
    ck_assert_int_eq(feed(APF_TRACE_HOST_ENABLE, 0, 0), 0);
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_TRANSPORT, 0, APF_TRANSPORT_ID_KVM_ARM64, 8), 0);
    ck_assert_uint_eq(apf_trace_checker_window(chk, 0), 2);
    ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, 0x1000), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, 0x2000), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, APF_TOKEN_WAKE_ALL), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, 0x3000), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, 0x3000), 0); /* 2 in flight: ok */
    ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, 0x4000), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, 0x4000), APF_EPROTO);
    ck_assert_str_eq(apf_trace_checker_error(chk),
                     "event 9 (host.ready vcpu 0 token 0x4000): page ready beyond the window: "
                     "2 in flight (not released by host.ack), window 2");
}
END_TEST

START_TEST(test_ring_transport_per_vcpu_and_reenable)
{
    fresh();
    /* vCPU 1 on a ring of 2, vCPU 0 on the default slot: independent */
    ck_assert_int_eq(feed(APF_TRACE_HOST_ENABLE, 1, 0), 0);
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_TRANSPORT, 1, APF_TRANSPORT_ID_KVM_ARM64, 2), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_ENABLE, 0, 0), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 1, APF_TOKEN_WAKE_ALL), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 1, 0x1001), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 1, 0x1001), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, APF_TOKEN_WAKE_ALL), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, 0x1000), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, 0x1000), APF_EPROTO); /* slot: ACK first */
    /* re-enable drops everything in flight; the window stays until the next transport */
    fresh();
    ck_assert_int_eq(feed(APF_TRACE_HOST_ENABLE, 0, 0), 0);
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_TRANSPORT, 0, APF_TRANSPORT_ID_KVM_ARM64, 2), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, APF_TOKEN_WAKE_ALL), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_ENABLE, 0, 0), 0);
    ck_assert_uint_eq(apf_trace_checker_window(chk, 0), 2);
    ck_assert_int_eq(feed_arg(APF_TRACE_HOST_TRANSPORT, 0, APF_TRANSPORT_ID_KVM_ARM64, 1), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, APF_TOKEN_WAKE_ALL), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, 0x1000), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, 0x1000), APF_EPROTO);
    ck_assert_ptr_nonnull(strstr(apf_trace_checker_error(chk), "second page ready before"));
}
END_TEST

START_TEST(test_covered_tokens_never_fill_the_map)
{
    /* 8 outstanding per vCPU -> 16 map entries; 1000 rounds of fault + wake-all leave
     * covered tokens behind, which must be purged, never refused. */
    fresh();
    ck_assert_int_eq(feed(APF_TRACE_HOST_ENABLE, 0, 0), 0);
    for (uint32_t r = 0; r < 1000; r++) {
        for (uint32_t k = 1; k <= 8; k++)
            ck_assert_msg(feed(APF_TRACE_HOST_NOT_PRESENT, 0, ((r * 8 + k) << 12) | 1) == 0,
                          "round %u: %s", r, apf_trace_checker_error(chk));
        ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, APF_TOKEN_WAKE_ALL), 0);
        ck_assert_int_eq(feed(APF_TRACE_HOST_ACK, 0, 0), 0);
    }
    /* a full map of live tokens plus covered ones: the covered go first */
    for (uint32_t k = 1; k <= 16; k++)
        ck_assert_msg(feed(APF_TRACE_HOST_NOT_PRESENT, 0, (k << 12) | 3) == 0, "%u: %s", k,
                      apf_trace_checker_error(chk));
    ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, (17 << 12) | 3), APF_ENOSPC);
}
END_TEST

/* Regression: the token map completely full (max_outstanding 1 -> 2 entries), then a page
 * ready: the map's remove used to loop for ever looking for an empty entry. */
START_TEST(test_full_token_map_does_not_hang)
{
    chk = apf_trace_checker_init(mem, sizeof(mem), 1, 1);
    ck_assert_ptr_nonnull(chk);
    good_prefix();
    ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, 0x1000), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, 0x2000), 0); /* map full */
    ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, 0x3000), APF_ENOSPC);
    chk = apf_trace_checker_init(mem, sizeof(mem), 1, 1);
    good_prefix();
    ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, 0x1000), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, 0x2000), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, 0x1000), 0); /* remove from a full map */
    ck_assert_int_eq(feed(APF_TRACE_GUEST_READY, 0, 0x1000), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_ACK, 0, 0), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_NOT_PRESENT, 0, 0x3000), 0); /* full again */
    ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, 0x3000), 0);
    ck_assert_int_eq(feed(APF_TRACE_GUEST_READY, 0, 0x3000), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_ACK, 0, 0), 0);
    ck_assert_int_eq(feed(APF_TRACE_HOST_READY, 0, 0x2000), 0);
    ck_assert_int_eq(feed(APF_TRACE_GUEST_READY, 0, 0x2000), 0);
    ck_assert_int_eq(apf_trace_checker_finish(chk), 0);
}
END_TEST

START_TEST(test_sizes_are_overflow_checked)
{
    ck_assert_uint_eq(apf_trace_checker_size_windowed(1, 64, 0), 0);
    ck_assert_uint_eq(apf_trace_checker_size_windowed(1, 64, 65537), 0);
    ck_assert_uint_eq(apf_trace_checker_size_windowed(0, 64, 4), 0);
    /* the old function = windowed with max(512, max_outstanding) */
    ck_assert_uint_eq(apf_trace_checker_size(3, 8), apf_trace_checker_size_windowed(3, 8, 512));
    ck_assert_uint_eq(apf_trace_checker_size(3, 4096),
                      apf_trace_checker_size_windowed(3, 4096, 4096));
    ck_assert_uint_gt(apf_trace_checker_size_windowed(3, 8, 4), 0);
    ck_assert_uint_eq(apf_trace_checker_size_windowed(3, 8, 4) % 8, 0);
    /* the largest checker: 65536 vCPUs x (2^17 map entries + 65536 queue entries) ~ 129 GiB:
     * 0 where size_t cannot hold it, exact where it can */
    size_t big = apf_trace_checker_size_windowed(65536, 65536, 65536);
    if (sizeof(size_t) < 8) {
        ck_assert_uint_eq(big, 0);
        ck_assert_uint_eq(apf_trace_checker_size(65536, 65536), 0);
    } else {
        ck_assert_uint_gt(big, (size_t)65536 * (131072 * 16 + 65536 * 4));
    }
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
    tcase_add_test(tc, test_parse_whitespace_is_one_rule);
    suite_add_tcase(s, tc);
    tc = tcase_create("checker");
    tcase_add_test(tc, test_checker_accepts_a_correct_session);
    tcase_add_loop_test(tc, test_checker_flags_each_violation_at_its_event, 0,
                        (int)(sizeof(violations) / sizeof(violations[0])));
    tcase_add_test(tc, test_finish_flags_unanswered_not_present);
    tcase_add_test(tc, test_wake_all_and_disable_cover_outstanding);
    tcase_add_test(tc, test_checker_sizing_and_bad_input);
    tcase_add_test(tc, test_full_token_map_does_not_hang);
    tcase_add_test(tc, test_sizes_are_overflow_checked);
    suite_add_tcase(s, tc);
    tc = tcase_create("window");
    tcase_add_test(tc, test_ring_four_in_flight_is_within_the_window);
    tcase_add_loop_test(tc, test_ring_flags_each_violation_at_its_event, 0,
                        (int)(sizeof(ring_violations) / sizeof(ring_violations[0])));
    tcase_add_test(tc, test_ring_partial_acks_and_token_reuse_after_wake_all);
    tcase_add_test(tc, test_ring_restore_may_release_up_to_a_window_of_the_sources_entries);
    tcase_add_test(tc, test_unthrottled_window_0_hundred_in_flight);
    tcase_add_test(tc, test_unthrottled_guest_fifo_is_bounded_by_the_queue);
    tcase_add_test(tc, test_no_transport_event_is_window_1_and_slot_event_changes_nothing);
    tcase_add_test(tc, test_set_window_pins_and_overrides_the_trace);
    tcase_add_test(tc, test_ring_transport_per_vcpu_and_reenable);
    tcase_add_test(tc, test_covered_tokens_never_fill_the_map);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(trace_suite)
