/* SPDX-License-Identifier: MIT */
/*
 * Protocol trace: kind names, the text format, and the conformance checker (apf/trace.h).
 * Freestanding: no libc; the checker lives in caller-provided memory.
 */
#include "apf/trace.h"

#include <stdbool.h>

#include "apf/error.h"
#include "apf/proto.h"
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
    {APF_TRACE_HOST_RESTORE, "host.restore"},  {APF_TRACE_GUEST_NOT_PRESENT, "guest.np"},
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

struct cursor {
    const char *p, *end;
};

static bool next_field(struct cursor *c, const char **start, size_t *n)
{
    while (c->p < c->end && *c->p == ' ')
        c->p++;
    *start = c->p;
    while (c->p < c->end && *c->p != ' ' && *c->p != '\n' && *c->p != '\r')
        c->p++;
    *n = (size_t)(c->p - *start);
    return *n > 0;
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
        if (v > (max - d) / (uint64_t)base)
            return false;
        v = v * (uint64_t)base + d;
    }
    *out = v;
    return true;
}

int apf_trace_parse(const char *line, size_t len, struct apf_trace_event *ev)
{
    struct cursor c = {line, line + len};
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

struct vstate {
    struct apf__map outstanding; /* tokens whose "not present" was delivered, unanswered */
    uint32_t ready_token;        /* token of the "page ready" in the slot */
    uint8_t enabled;
    uint8_t wake_all_owed;  /* enabled, and no wake-all delivered since */
    uint8_t ready_inflight; /* a "page ready" was raised and not ACKed */
    uint8_t slot_busy;      /* ... and the guest has not consumed it (guest events only) */
};

struct apf_trace_checker {
    uint32_t n_vcpus;
    uint32_t map_cap;
    uint64_t events;
    int failed;
    bool saw_host, saw_guest;
    char error[192];
    struct vstate *v;
};

static uint32_t pow2_at_least(uint32_t n)
{
    uint32_t p = 2;
    while (p < n)
        p <<= 1;
    return p;
}

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

size_t apf_trace_checker_size(uint32_t n_vcpus, uint32_t max_outstanding)
{
    if (n_vcpus == 0 || n_vcpus > 65536 || max_outstanding == 0 || max_outstanding > 65536)
        return 0;
    size_t cap = pow2_at_least(2 * max_outstanding);
    return align8(sizeof(struct apf_trace_checker)) +
           (size_t)n_vcpus * (align8(sizeof(struct vstate)) + cap * sizeof(struct apf__map_entry));
}

struct apf_trace_checker *apf_trace_checker_init(void *mem, size_t size, uint32_t n_vcpus,
                                                 uint32_t max_outstanding)
{
    size_t need = apf_trace_checker_size(n_vcpus, max_outstanding);
    if (need == 0 || mem == NULL || size < need || ((uintptr_t)mem & 7))
        return NULL;
    unsigned char *p = mem;
    for (size_t i = 0; i < need; i++)
        p[i] = 0;
    struct apf_trace_checker *c = mem;
    c->n_vcpus = n_vcpus;
    c->map_cap = pow2_at_least(2 * max_outstanding);
    c->v = (struct vstate *)(void *)(p + align8(sizeof(*c)));
    struct apf__map_entry *entries =
        (struct apf__map_entry *)(void *)((unsigned char *)c->v + n_vcpus * align8(sizeof(struct vstate)));
    for (uint32_t i = 0; i < n_vcpus; i++)
        apf__map_init(&c->v[i].outstanding, entries + (size_t)i * c->map_cap, c->map_cap);
    return c;
}

static int fail(struct apf_trace_checker *c, const struct apf_trace_event *ev, const char *what)
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
    c->failed = APF_EPROTO;
    return APF_EPROTO;
}

static void forget_all(struct vstate *s)
{
    apf__map_clear(&s->outstanding);
    s->ready_inflight = 0;
    s->slot_busy = 0;
}

static int host_ready(struct apf_trace_checker *c, struct vstate *s,
                      const struct apf_trace_event *ev)
{
    if (!s->enabled)
        return fail(c, ev, "page ready sent while APF is off");
    if (s->ready_inflight)
        return fail(c, ev, "second page ready before the guest ACKed the first");
    if (c->saw_guest && s->slot_busy)
        return fail(c, ev, "page ready written before the guest consumed the previous one");
    if (ev->token == APF_TOKEN_WAKE_ALL) {
        s->wake_all_owed = 0;
        apf__map_clear(&s->outstanding); /* every sleeper retries: all covered */
    } else {
        if (s->wake_all_owed)
            return fail(c, ev, "page ready before the wake-all owed since APF was enabled");
        if (apf__map_remove(&s->outstanding, ev->token) != 0)
            return fail(c, ev, "page ready for a token not outstanding (never delivered, "
                               "dropped, or answered already)");
    }
    s->ready_inflight = 1;
    s->slot_busy = 1;
    s->ready_token = ev->token;
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

    switch (ev->kind) {
    case APF_TRACE_HOST_ENABLE:
        forget_all(s); /* re-enable drops what was outstanding */
        s->enabled = 1;
        s->wake_all_owed = 1;
        return 0;
    case APF_TRACE_HOST_DISABLE:
    case APF_TRACE_HOST_RESET:
    case APF_TRACE_HOST_RESTORE:
        forget_all(s);
        s->enabled = 0;
        s->wake_all_owed = 0;
        return 0;
    case APF_TRACE_HOST_NOT_PRESENT: {
        if (!s->enabled)
            return fail(c, ev, "not present delivered while APF is off");
        if (!apf_token_is_fault(ev->token))
            return fail(c, ev, "not present with token 0 or 0xffffffff");
        int err = apf__map_insert(&s->outstanding, ev->token, 0);
        if (err == APF_EEXIST)
            return fail(c, ev, "token already outstanding on this vCPU");
        if (err)
            return fail(c, ev, "more outstanding tokens than the checker was sized for");
        return 0;
    }
    case APF_TRACE_HOST_READY:
        return host_ready(c, s, ev);
    case APF_TRACE_HOST_ACK:
        s->ready_inflight = 0;
        return 0;
    case APF_TRACE_GUEST_NOT_PRESENT: {
        uint32_t unused;
        if (c->saw_host && !apf__map_find(&s->outstanding, ev->token, &unused))
            return fail(c, ev, "guest took a not present the host did not send");
        return 0;
    }
    case APF_TRACE_GUEST_READY:
        if (c->saw_host) {
            if (!s->slot_busy)
                return fail(c, ev, "guest consumed a page ready that was not sent");
            if (ev->token != s->ready_token)
                return fail(c, ev, "guest read another token than the host wrote");
        }
        s->slot_busy = 0;
        return 0;
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
        if (s->outstanding.count == 0)
            continue;
        for (uint32_t k = 0; k < c->map_cap; k++) {
            if (!s->outstanding.e[k].used)
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
