/* SPDX-License-Identifier: MIT */
/*
 * Protocol trace: kind names, the text format, and the conformance checker (apf/trace.h).
 * Freestanding: no libc; the checker lives in caller-provided memory.
 */
#include "apf/trace.h"

#include <stdbool.h>

#include "apf/error.h"
#include "apf/proto.h"
#include "proto/div64.h"
#include "proto/hashmap.h"
#include "proto/strbuf.h"

/* ---- names ---------------------------------------------------------------------------------- */

static const struct {
    uint32_t kind;
    const char *name;
} kind_names[] = {
    {APF_TRACE_HOST_NOT_PRESENT, "host.np"},   {APF_TRACE_HOST_SYNC, "host.sync"},
    {APF_TRACE_HOST_HALT, "host.halt"},        {APF_TRACE_HOST_DONE, "host.done"},
    {APF_TRACE_HOST_READY, "host.ready"},      {APF_TRACE_HOST_ACK, "host.ack"},
    {APF_TRACE_HOST_ENABLE, "host.enable"},    {APF_TRACE_HOST_DISABLE, "host.disable"},
    {APF_TRACE_HOST_DROP, "host.drop"},        {APF_TRACE_HOST_RESET, "host.reset"},
    {APF_TRACE_HOST_RESTORE, "host.restore"},  {APF_TRACE_HOST_TRANSPORT, "host.transport"},
    {APF_TRACE_GUEST_NOT_PRESENT, "guest.np"},
    {APF_TRACE_GUEST_READY, "guest.ready"},    {APF_TRACE_GUEST_WAKE, "guest.wake"},
    {APF_TRACE_GUEST_ACK, "guest.ack"},        {APF_TRACE_GUEST_SLEEP, "guest.sleep"},
    {APF_TRACE_GUEST_ENABLE, "guest.enable"},  {APF_TRACE_GUEST_DISABLE, "guest.disable"},
};
#define N_KINDS (sizeof(kind_names) / sizeof(kind_names[0]))

const char *apf_trace_kind_name(uint32_t kind)
{
    for (uint32_t i = 0; i < N_KINDS; i++)
        if (kind_names[i].kind == kind)
            return kind_names[i].name;
    return "unknown";
}

int apf_trace_format(const struct apf_trace_event *ev, char *buf, size_t len)
{
    struct apf__sb b = apf__sb_make(buf, len);
    apf__sb_u64(&b, ev->time_ns);
    apf__sb_char(&b, ' ');
    apf__sb_str(&b, apf_trace_kind_name(ev->kind));
    apf__sb_char(&b, ' ');
    apf__sb_u64(&b, ev->vcpu);
    apf__sb_char(&b, ' ');
    apf__sb_hex(&b, ev->token);
    apf__sb_char(&b, ' ');
    apf__sb_hex(&b, ev->gpa);
    apf__sb_char(&b, ' ');
    apf__sb_i64(&b, ev->arg);
    if (b.overflow || len == 0) {
        if (len)
            buf[0] = '\0';
        return APF_ENOSPC;
    }
    return (int)b.len;
}

/* ---- parsing ------------------------------------------------------------------------------------ */

/*
 * The text format's one whitespace rule (apf/trace.h "Whitespace"): fields are separated by
 * blanks (one or more spaces or tabs), blanks may precede the first field and follow the
 * last; the line may end with "\n" or "\r\n" and nothing else; any other character
 * (another '\r' or '\n' included) belongs to a field, which then does not parse.
 */
static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* The length of @p line without its line end ("\n", "\r\n", or none). */
static size_t strip_line_end(const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\n') {
        len--;
        if (len > 0 && line[len - 1] == '\r')
            len--;
    }
    return len;
}

struct cursor {
    const char *p, *end;
};

static bool next_field(struct cursor *c, const char **start, size_t *n)
{
    while (c->p < c->end && is_blank(*c->p))
        c->p++;
    *start = c->p;
    while (c->p < c->end && !is_blank(*c->p))
        c->p++;
    *n = (size_t)(c->p - *start);
    return *n > 0;
}

int apf_trace_line_ignored(const char *line, size_t len)
{
    if (line == NULL)
        return 1;
    len = strip_line_end(line, len);
    size_t k = 0;
    while (k < len && is_blank(line[k]))
        k++;
    return k == len || line[k] == '#';
}

static bool parse_u64(const char *s, size_t n, int base, uint64_t max, uint64_t *out)
{
    if (base == 16 && n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        n -= 2;
    }
    if (n == 0)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        uint64_t d;
        if (ch >= '0' && ch <= '9')
            d = (uint64_t)(ch - '0');
        else if (base == 16 && ch >= 'a' && ch <= 'f')
            d = (uint64_t)(ch - 'a' + 10);
        else if (base == 16 && ch >= 'A' && ch <= 'F')
            d = (uint64_t)(ch - 'A' + 10);
        else
            return false;
        if (v > apf__udiv64(max - d, (uint64_t)base))
            return false;
        v = v * (uint64_t)base + d;
    }
    *out = v;
    return true;
}

int apf_trace_parse(const char *line, size_t len, struct apf_trace_event *ev)
{
    if (line == NULL || ev == NULL)
        return APF_EINVAL;
    struct cursor c = {line, line + strip_line_end(line, len)};
    const char *f;
    size_t n;
    struct apf_trace_event e;
    uint64_t v;

    if (!next_field(&c, &f, &n) || !parse_u64(f, n, 10, UINT64_MAX, &e.time_ns))
        return APF_EINVAL;
    if (!next_field(&c, &f, &n))
        return APF_EINVAL;
    e.kind = 0;
    for (uint32_t i = 0; i < N_KINDS; i++) {
        const char *name = kind_names[i].name;
        size_t k = 0;
        while (k < n && name[k] && name[k] == f[k])
            k++;
        if (k == n && name[k] == '\0') {
            e.kind = kind_names[i].kind;
            break;
        }
    }
    if (e.kind == 0)
        return APF_EINVAL;
    if (!next_field(&c, &f, &n) || !parse_u64(f, n, 10, UINT32_MAX, &v))
        return APF_EINVAL;
    e.vcpu = (uint32_t)v;
    if (!next_field(&c, &f, &n) || !parse_u64(f, n, 16, UINT32_MAX, &v))
        return APF_EINVAL;
    e.token = (uint32_t)v;
    if (!next_field(&c, &f, &n) || !parse_u64(f, n, 16, UINT64_MAX, &e.gpa))
        return APF_EINVAL;
    if (!next_field(&c, &f, &n))
        return APF_EINVAL;
    bool neg = f[0] == '-';
    if (!parse_u64(f + neg, n - neg, 10, neg ? 0x80000000ull : 0x7fffffffull, &v))
        return APF_EINVAL;
    e.arg = neg ? (int32_t)(0 - (int64_t)v) : (int32_t)v;
    const char *rest;
    if (next_field(&c, &rest, &n))
        return APF_EINVAL; /* trailing garbage */
    *ev = e;
    return 0;
}

/* ---- the checker --------------------------------------------------------------------------------- */

/*
 * Per vCPU:
 *  - `outstanding`: tokens whose "not present" was delivered, value = the wake-all
 *    generation at delivery. A wake-all does not erase them: it moves the generation on, so
 *    they become "covered" (a later "page ready" for one is a specific violation). Only the
 *    last wake-all's covered tokens are kept; older ones, and all of them when the map is
 *    full, are purged. `live` counts the uncovered ones.
 *  - the window: `sent - released` "page ready"s are in flight on the host side (released
 *    by host.ack), at most `window` of them (0 = unthrottled);
 *  - `inherited`: after a restore that re-enabled a ring (window > 1), the source's entries
 *    may still be in the guest's ring (apf-mmio and xen-hvm continue it at the saved
 *    indices) though this trace never sent them: host.ack may release up to one window of
 *    them beyond what is in flight; the allowance only shrinks, and any enable, disable,
 *    reset or restore ends it;
 *  - `q`: the tokens sent and not yet consumed by guest.ready, oldest first (a ring buffer
 *    of `qcap` entries in the checker's memory), for the FIFO check of the guest side.
 */
struct vstate {
    struct apf__map outstanding;
    uint32_t *q;       /* qcap entries */
    uint32_t q_head;   /* index of the oldest unconsumed token */
    uint32_t q_len;    /* tokens sent and not consumed by the guest */
    uint64_t in_flight; /* sent, not released by host.ack */
    uint32_t window;    /* 0 = unthrottled, 1 = slot + ACK, N = ring of N entries */
    uint32_t gen;       /* wake-all generation */
    uint32_t live;      /* outstanding entries of the current generation */
    uint8_t enabled;
    uint8_t wake_all_owed; /* enabled, and no wake-all delivered since */
    uint8_t window_pinned; /* set by apf_trace_checker_set_window(): host.transport ignored */
    /* s390: the guest's events carry the kernel's task keys (not the host's tokens), and a
     * floating "page ready" is taken on any vCPU: they are not matched to the host's. */
    uint8_t guest_keys;
    uint8_t restored;   /* the last event was a host.restore that turned APF on */
    uint8_t resumed;    /* the last event was the host.enable of a restore */
    uint32_t inherited; /* see above */
};

struct apf_trace_checker {
    uint32_t n_vcpus;
    uint32_t map_cap;
    uint32_t qcap;
    uint64_t events;
    int failed;
    bool saw_host, saw_guest;
    char error[192];
    struct vstate *v;
};

#define LIMIT_MAX 65536u

#ifdef APF_RING_MAX_ENTRIES
APF_STATIC_ASSERT(APF_TRACE_DEFAULT_MAX_WINDOW == APF_RING_MAX_ENTRIES,
                  "the default window queue holds any ready ring");
#endif

static uint32_t pow2_at_least(uint32_t n)
{
    uint32_t p = 2;
    while (p < n)
        p <<= 1;
    return p;
}

/* Overflow-checked size arithmetic (size_t is 32 bits on 32-bit targets). */
static bool mul_ok(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return false;
    *out = a * b;
    return true;
}

static bool add_ok(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a)
        return false;
    *out = a + b;
    return true;
}

static bool align8_ok(size_t n, size_t *out)
{
    if (!add_ok(n, 7, out))
        return false;
    *out &= ~(size_t)7;
    return true;
}

/* Byte offsets of the parts, or false if out of range / overflowing. */
struct layout {
    size_t vstates, maps, queues, total;
    uint32_t map_cap;
};

static bool layout_of(uint32_t n_vcpus, uint32_t max_outstanding, uint32_t max_window,
                      struct layout *l)
{
    if (n_vcpus == 0 || n_vcpus > LIMIT_MAX || max_outstanding == 0 ||
        max_outstanding > LIMIT_MAX || max_window == 0 || max_window > LIMIT_MAX)
        return false;
    size_t vs, maps_per, maps, queues, t;
    l->map_cap = pow2_at_least(2 * max_outstanding);
    if (!align8_ok(sizeof(struct apf_trace_checker), &l->vstates) ||
        !mul_ok(n_vcpus, (sizeof(struct vstate) + 7) & ~(size_t)7, &vs) ||
        !add_ok(l->vstates, vs, &l->maps) ||
        !mul_ok(l->map_cap, sizeof(struct apf__map_entry), &maps_per) ||
        !mul_ok(n_vcpus, maps_per, &maps) || !add_ok(l->maps, maps, &l->queues) ||
        !mul_ok(n_vcpus, max_window, &t) || !mul_ok(t, sizeof(uint32_t), &queues) ||
        !add_ok(l->queues, queues, &t) || !align8_ok(t, &l->total))
        return false;
    return true;
}

/* The queue size of the two-size API: any ring (#APF_RING_MAX_ENTRIES), at least the
 * outstanding limit. */
static uint32_t default_max_window(uint32_t max_outstanding)
{
    return max_outstanding > APF_TRACE_DEFAULT_MAX_WINDOW ? max_outstanding
                                                          : APF_TRACE_DEFAULT_MAX_WINDOW;
}

size_t apf_trace_checker_size_windowed(uint32_t n_vcpus, uint32_t max_outstanding,
                                       uint32_t max_window)
{
    struct layout l;
    return layout_of(n_vcpus, max_outstanding, max_window, &l) ? l.total : 0;
}

size_t apf_trace_checker_size(uint32_t n_vcpus, uint32_t max_outstanding)
{
    return apf_trace_checker_size_windowed(n_vcpus, max_outstanding,
                                           default_max_window(max_outstanding));
}

struct apf_trace_checker *apf_trace_checker_init_windowed(void *mem, size_t size,
                                                          uint32_t n_vcpus,
                                                          uint32_t max_outstanding,
                                                          uint32_t max_window)
{
    struct layout l;
    if (!layout_of(n_vcpus, max_outstanding, max_window, &l) || mem == NULL ||
        size < l.total || ((uintptr_t)mem & 7))
        return NULL;
    /* Zero what is read before it is written (header, vCPU states, token maps), a word at
     * a time; the window queues are written before they are read. */
    unsigned char *p = mem;
    uint64_t *w = mem;
    for (size_t i = 0; i < l.queues / sizeof(uint64_t); i++)
        w[i] = 0;
    struct apf_trace_checker *c = mem;
    c->n_vcpus = n_vcpus;
    c->map_cap = l.map_cap;
    c->qcap = max_window;
    c->v = (struct vstate *)(void *)(p + l.vstates);
    struct apf__map_entry *entries = (struct apf__map_entry *)(void *)(p + l.maps);
    uint32_t *queues = (uint32_t *)(void *)(p + l.queues);
    for (uint32_t i = 0; i < n_vcpus; i++) {
        struct vstate *s = &c->v[i];
        apf__map_init(&s->outstanding, entries + (size_t)i * c->map_cap, c->map_cap);
        s->q = queues + (size_t)i * c->qcap;
        s->window = APF_TRACE_WINDOW_SLOT;
    }
    return c;
}

struct apf_trace_checker *apf_trace_checker_init(void *mem, size_t size, uint32_t n_vcpus,
                                                 uint32_t max_outstanding)
{
    return apf_trace_checker_init_windowed(mem, size, n_vcpus, max_outstanding,
                                           default_max_window(max_outstanding));
}

int apf_trace_checker_set_window(struct apf_trace_checker *c, uint32_t vcpu, uint32_t window)
{
    if (vcpu != APF_TRACE_ALL_VCPUS && vcpu >= c->n_vcpus)
        return APF_EINVAL;
    for (uint32_t i = 0; i < c->n_vcpus; i++) {
        if (vcpu != APF_TRACE_ALL_VCPUS && i != vcpu)
            continue;
        c->v[i].window = window;
        c->v[i].window_pinned = 1;
    }
    return 0;
}

uint32_t apf_trace_checker_window(const struct apf_trace_checker *c, uint32_t vcpu)
{
    return vcpu < c->n_vcpus ? c->v[vcpu].window : 0;
}

/* Records the first violation: "event N (kind vcpu V token T): what[n1 what2[n2 what3]]"
 * (a number is printed only when text follows it: pass "" to end with one). */
static int fail_code(struct apf_trace_checker *c, const struct apf_trace_event *ev, int code,
                     const char *what, uint64_t n1, const char *what2, uint64_t n2,
                     const char *what3)
{
    struct apf__sb b = apf__sb_make(c->error, sizeof(c->error));
    apf__sb_str(&b, "event ");
    apf__sb_u64(&b, c->events);
    apf__sb_str(&b, " (");
    apf__sb_str(&b, apf_trace_kind_name(ev->kind));
    apf__sb_str(&b, " vcpu ");
    apf__sb_u64(&b, ev->vcpu);
    apf__sb_str(&b, " token ");
    apf__sb_hex(&b, ev->token);
    apf__sb_str(&b, "): ");
    apf__sb_str(&b, what);
    if (what2) {
        apf__sb_u64(&b, n1);
        apf__sb_str(&b, what2);
        if (what3) {
            apf__sb_u64(&b, n2);
            apf__sb_str(&b, what3);
        }
    }
    c->failed = code;
    return code;
}

static int fail(struct apf_trace_checker *c, const struct apf_trace_event *ev, const char *what)
{
    return fail_code(c, ev, APF_EPROTO, what, 0, NULL, 0, NULL);
}

static void forget_all(struct vstate *s)
{
    apf__map_clear(&s->outstanding);
    s->live = 0;
    s->in_flight = 0;
    s->inherited = 0;
    s->q_head = 0;
    s->q_len = 0;
}

/* Removes the covered (earlier-generation) tokens; bounded by the capacity plus removals. */
static void purge_covered(struct vstate *s)
{
    struct apf__map *m = &s->outstanding;
    for (uint32_t i = 0; i <= m->mask && m->count > s->live; i++)
        while (m->e[i].used && m->e[i].value != s->gen)
            (void)apf__map_remove(m, m->e[i].key);
}

/* Queue index k places after the oldest (k <= qcap; 32-bit arithmetic: qcap <= 65536). */
static uint32_t q_index(const struct apf_trace_checker *c, const struct vstate *s, uint32_t k)
{
    uint32_t i = s->q_head + k;
    return i >= c->qcap ? i - c->qcap : i;
}

static void q_drop_oldest(struct apf_trace_checker *c, struct vstate *s, uint32_t n)
{
    s->q_head = q_index(c, s, n);
    s->q_len -= n;
}

static uint32_t q_at(const struct apf_trace_checker *c, const struct vstate *s, uint32_t k)
{
    return s->q[q_index(c, s, k)];
}

static int host_ready(struct apf_trace_checker *c, struct vstate *s,
                      const struct apf_trace_event *ev)
{
    uint32_t w = s->window;
    if (!s->enabled)
        return fail(c, ev, "page ready sent while APF is off");
    if (w == 1 && s->in_flight >= 1)
        return fail(c, ev, "second page ready before the guest ACKed the first");
    if (w > 1 && s->in_flight >= w)
        return fail_code(c, ev, APF_EPROTO, "page ready beyond the window: ", s->in_flight,
                         " in flight (not released by host.ack), window ", w, "");
    if (c->saw_guest && w == 1 && s->q_len >= 1)
        return fail(c, ev, "page ready written before the guest consumed the previous one");
    if (c->saw_guest && w > 1 && s->q_len >= w)
        return fail_code(c, ev, APF_EPROTO, "page ready written over an entry the guest has "
                         "not consumed: ", s->q_len, " unconsumed, window ", w, "");
    if (ev->token == APF_TOKEN_WAKE_ALL) {
        s->wake_all_owed = 0;
        /* Every sleeper retries: all outstanding tokens are covered from now on. */
        purge_covered(s);
        s->gen++;
        s->live = 0;
    } else {
        if (s->wake_all_owed)
            return fail(c, ev, "page ready before the wake-all owed since APF was enabled");
        int64_t at = apf__map_slot(&s->outstanding, ev->token);
        if (at < 0)
            return fail(c, ev, "page ready for a token not outstanding (never delivered, "
                               "dropped, or answered already)");
        if (s->outstanding.e[at].value != s->gen)
            return fail(c, ev, "page ready for a token whose not present preceded a "
                               "wake-all (answered by it already)");
        (void)apf__map_remove(&s->outstanding, ev->token);
        s->live--;
    }
    /* The guest side's FIFO: at most the window (or the queue) of unconsumed tokens. In a
     * trace without guest events (so far) nobody consumes them: keep only the newest. */
    uint32_t keep = (w == 0 || w > c->qcap) ? c->qcap : w;
    if (s->q_len >= keep) {
        if (c->saw_guest && !s->guest_keys) /* s390: the guest's side is not matched */
            return fail_code(c, ev, APF_ENOSPC, "more page readies unconsumed by the guest "
                             "than the checker was sized for (max_window ", c->qcap,
                             " tokens per vCPU)", 0, NULL);
        q_drop_oldest(c, s, s->q_len - keep + 1);
    }
    s->q[q_index(c, s, s->q_len)] = ev->token;
    s->q_len++;
    s->in_flight++;
    return 0;
}

static int host_ack(struct apf_trace_checker *c, struct vstate *s,
                    const struct apf_trace_event *ev)
{
    if (ev->arg < 0)
        return fail(c, ev, "ACK with a negative count of released page readies");
    if ((uint64_t)ev->arg > s->in_flight) {
        /* After a restore: entries the source sent, released now (see `inherited`). */
        uint64_t beyond = (uint64_t)ev->arg - s->in_flight;
        if (s->window <= 1 || beyond > s->inherited)
            return fail_code(c, ev, APF_EPROTO, "ACK released ", (uint64_t)ev->arg,
                             " page readies, only ", s->in_flight,
                             " in flight (consumer index overrun or rewound?)");
        s->inherited -= (uint32_t)beyond;
        s->in_flight = 0;
        return 0;
    }
    /* Slot transports: an ACK frees the slot whatever its count (a spurious ACK has 0). */
    s->in_flight = s->window == 1 ? 0 : s->in_flight - (uint64_t)ev->arg;
    return 0;
}

static int guest_ready(struct apf_trace_checker *c, struct vstate *s,
                       const struct apf_trace_event *ev)
{
    if (c->saw_host) {
        if (s->q_len == 0)
            return fail(c, ev, "guest consumed a page ready that was not sent");
        if (ev->token != q_at(c, s, 0)) {
            for (uint32_t k = 1; k < s->q_len; k++)
                if (q_at(c, s, k) == ev->token)
                    return fail_code(c, ev, APF_EPROTO, "guest consumed page readies out of "
                                     "FIFO order: ", k, " older unconsumed before this one",
                                     0, NULL);
            return fail(c, ev, "guest read another token than the host wrote");
        }
    }
    if (s->q_len)
        q_drop_oldest(c, s, 1);
    return 0;
}

static int host_not_present(struct apf_trace_checker *c, struct vstate *s,
                            const struct apf_trace_event *ev)
{
    if (!s->enabled)
        return fail(c, ev, "not present delivered while APF is off");
    if (!apf_token_is_fault(ev->token))
        return fail(c, ev, "not present with token 0 or 0xffffffff");
    int64_t at = apf__map_slot(&s->outstanding, ev->token);
    if (at >= 0) {
        if (s->outstanding.e[at].value == s->gen)
            return fail(c, ev, "token already outstanding on this vCPU");
        s->outstanding.e[at].value = s->gen; /* reused after a wake-all covered it */
        s->live++;
        return 0;
    }
    int err = apf__map_insert(&s->outstanding, ev->token, s->gen);
    if (err == APF_ENOSPC && s->outstanding.count > s->live) {
        purge_covered(s);
        err = apf__map_insert(&s->outstanding, ev->token, s->gen);
    }
    if (err)
        return fail_code(c, ev, APF_ENOSPC,
                         "more outstanding tokens than the checker was sized for", 0, NULL, 0,
                         NULL);
    s->live++;
    return 0;
}

int apf_trace_checker_feed(struct apf_trace_checker *c, const struct apf_trace_event *ev)
{
    if (c->failed)
        return c->failed;
    if (ev->vcpu >= c->n_vcpus)
        return APF_EINVAL;
    c->events++;
    struct vstate *s = &c->v[ev->vcpu];
    if (ev->kind < APF_TRACE_GUEST_NOT_PRESENT)
        c->saw_host = true;
    else
        c->saw_guest = true;
    /* A restore that turns APF on is host.restore, host.enable, host.transport in a row. */
    uint8_t restored = s->restored, resumed = s->resumed;
    s->restored = 0;
    s->resumed = 0;

    switch (ev->kind) {
    case APF_TRACE_HOST_ENABLE:
        forget_all(s); /* re-enable drops what was outstanding */
        s->enabled = 1;
        s->wake_all_owed = 1;
        s->resumed = restored;
        return 0;
    case APF_TRACE_HOST_TRANSPORT:
        if (ev->arg < 0)
            return fail(c, ev, "transport with a negative window");
        if (!s->window_pinned)
            s->window = (uint32_t)ev->arg;
        if (resumed && s->window > 1)
            s->inherited = s->window;
        /* s390 pfault has no broadcast "page ready": its enable owes no wake-all (the
         * host answers every delivered "not present" by itself). */
        if (ev->token == APF_TRANSPORT_ID_S390) {
            s->wake_all_owed = 0;
            s->guest_keys = 1;
        }
        return 0;
    case APF_TRACE_HOST_DISABLE:
    case APF_TRACE_HOST_RESET:
    case APF_TRACE_HOST_RESTORE:
        forget_all(s);
        s->enabled = 0;
        s->wake_all_owed = 0;
        s->restored = ev->kind == APF_TRACE_HOST_RESTORE && ev->arg == 1; /* APF on */
        return 0;
    case APF_TRACE_HOST_NOT_PRESENT:
        return host_not_present(c, s, ev);
    case APF_TRACE_HOST_READY:
        return host_ready(c, s, ev);
    case APF_TRACE_HOST_ACK:
        return host_ack(c, s, ev);
    case APF_TRACE_GUEST_NOT_PRESENT: {
        if (s->guest_keys)
            return 0;
        int64_t at = apf__map_slot(&s->outstanding, ev->token);
        if (c->saw_host && (at < 0 || s->outstanding.e[at].value != s->gen))
            return fail(c, ev, "guest took a not present the host did not send");
        return 0;
    }
    case APF_TRACE_GUEST_READY:
        if (s->guest_keys)
            return 0;
        return guest_ready(c, s, ev);
    case APF_TRACE_HOST_SYNC:
    case APF_TRACE_HOST_HALT:
    case APF_TRACE_HOST_DONE:
    case APF_TRACE_HOST_DROP:
    case APF_TRACE_GUEST_WAKE:
    case APF_TRACE_GUEST_ACK:
    case APF_TRACE_GUEST_SLEEP:
    case APF_TRACE_GUEST_ENABLE:
    case APF_TRACE_GUEST_DISABLE:
        return 0;
    default:
        return fail(c, ev, "unknown event kind");
    }
}

int apf_trace_checker_finish(struct apf_trace_checker *c)
{
    if (c->failed)
        return c->failed;
    for (uint32_t i = 0; i < c->n_vcpus; i++) {
        struct vstate *s = &c->v[i];
        if (s->live == 0)
            continue;
        for (uint32_t k = 0; k < c->map_cap; k++) {
            if (!s->outstanding.e[k].used || s->outstanding.e[k].value != s->gen)
                continue;
            struct apf_trace_event ev = {0};
            ev.kind = APF_TRACE_HOST_NOT_PRESENT;
            ev.vcpu = i;
            ev.token = (uint32_t)s->outstanding.e[k].key;
            return fail(c, &ev, "end of trace: not present never answered by a page ready");
        }
    }
    return 0;
}

const char *apf_trace_checker_error(const struct apf_trace_checker *c)
{
    return c->error;
}

uint64_t apf_trace_checker_events(const struct apf_trace_checker *c)
{
    return c->events;
}
