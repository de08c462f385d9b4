/* SPDX-License-Identifier: MIT */
/*
 * Linux KVM's async page fault tracepoints read as protocol traces (apf/trace_kvm.h).
 * The line shapes come from the tracepoints' print formats as tracefs publishes them
 * (events/kvm/<name>/format) and from the output of tracefs and `trace-cmd report`;
 * the mapping onto protocol events is described in docs/kvm-traces.md.
 * Freestanding: no libc, the translator lives in caller-provided memory.
 */
#include "apf/trace_kvm.h"

#include <stdbool.h>

#include "apf/error.h"
#include "apf/proto.h"
#include "proto/strbuf.h"

/* ---- parsing --------------------------------------------------------------------------------- */

struct cur {
    const char *p, *end;
};

static bool at_end(const struct cur *c)
{
    return c->p >= c->end;
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

static void skip_spaces(struct cur *c)
{
    while (!at_end(c) && is_space(*c->p))
        c->p++;
}

static bool eat(struct cur *c, const char *s)
{
    const char *p = c->p;
    while (*s) {
        if (p >= c->end || *p != *s)
            return false;
        p++;
        s++;
    }
    c->p = p;
    return true;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* "0x1f" or "1f" (trace-cmd prints %#llx of 0 as "0"); at most 16 digits. */
static bool read_hex(struct cur *c, uint64_t *out)
{
    (void)eat(c, "0x");
    uint64_t v = 0;
    int n = 0;
    while (!at_end(c) && hexval(*c->p) >= 0) {
        if (++n > 16)
            return false;
        v = v << 4 | (uint64_t)hexval(*c->p);
        c->p++;
    }
    *out = v;
    return n > 0;
}

static bool read_dec(struct cur *c, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    int n = 0;
    while (!at_end(c) && *c->p >= '0' && *c->p <= '9') {
        uint64_t d = (uint64_t)(*c->p - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
        n++;
        c->p++;
    }
    *out = v;
    return n > 0;
}

/* The rest of the line is blank. */
static bool rest_blank(struct cur *c)
{
    skip_spaces(c);
    return at_end(c);
}

static const struct {
    const char *name;
    uint32_t tp;
} tp_names[] = {
    {"kvm_try_async_get_page", APF_TRACE_KVM_TRY_ASYNC},
    {"kvm_async_pf_not_present", APF_TRACE_KVM_NOT_PRESENT},
    {"kvm_async_pf_ready", APF_TRACE_KVM_READY},
    {"kvm_async_pf_completed", APF_TRACE_KVM_COMPLETED},
    {"kvm_async_pf_repeated_fault", APF_TRACE_KVM_REPEATED_FAULT},
    {"kvm_inj_exception", APF_TRACE_KVM_INJ_EXCEPTION},
    {"kvm_entry", APF_TRACE_KVM_ENTRY},
    {"kvm_userspace_exit", APF_TRACE_KVM_USERSPACE_EXIT},
    {"kvm_msr", APF_TRACE_KVM_MSR},
};

static bool name_is(const char *a, size_t alen, const char *b)
{
    size_t i = 0;
    for (; i < alen; i++)
        if (b[i] != a[i] || b[i] == '\0')
            return false;
    return b[i] == '\0';
}

static const char *const exc_names[32] = {
    [0] = "DE",  [1] = "DB",  [3] = "BP",  [4] = "OF",  [5] = "BR",  [6] = "UD",
    [7] = "NM",  [8] = "DF",  [10] = "TS", [11] = "NP", [12] = "SS", [13] = "GP",
    [14] = "PF", [16] = "MF", [17] = "AC", [18] = "MC", [19] = "XM", [20] = "VE",
    [21] = "CP", [28] = "HV", [29] = "VC", [30] = "SX",
};

/* "#PF", "#PF (0x0)", "#PF (0x0) [reinjected]", or a number for an unnamed vector. */
static bool body_inj(struct cur *c, struct apf_trace_kvm_record *r)
{
    r->vector = APF_TRACE_KVM_VECTOR_UNKNOWN;
    if (eat(c, "#")) {
        const char *s = c->p;
        while (!at_end(c) && ((*c->p >= 'A' && *c->p <= 'Z')))
            c->p++;
        size_t n = (size_t)(c->p - s);
        if (n == 0)
            return false;
        for (uint32_t v = 0; v < 32; v++)
            if (exc_names[v] && name_is(s, n, exc_names[v]))
                r->vector = (uint8_t)v;
    } else {
        uint64_t v;
        if (!read_hex(c, &v))
            return false;
        r->vector = v < 256 ? (uint8_t)v : APF_TRACE_KVM_VECTOR_UNKNOWN;
    }
    if (eat(c, " (")) {
        uint64_t e;
        if (!read_hex(c, &e) || e > 0xffffffffu || !eat(c, ")"))
            return false;
        r->has_error = 1;
        r->error_code = (uint32_t)e;
    }
    if (eat(c, " [reinjected]"))
        r->reinjected = 1;
    return rest_blank(c);
}

/* "[FAILED TO PARSE] exception=14 has_error=1 error_code=0 reinjected=0": the raw fields
 * trace-cmd prints when libtraceevent cannot evaluate a print format. */
static bool body_raw(struct cur *c, struct apf_trace_kvm_record *r)
{
    bool any = false;
    /* A field is taken only from the tracepoint that carries it (trace_kvm.h: the others
     * stay 0), whatever the line names. */
    const uint32_t tp = r->tp;
    const bool inj = tp == APF_TRACE_KVM_INJ_EXCEPTION, msr = tp == APF_TRACE_KVM_MSR;
    const bool np_ready = tp == APF_TRACE_KVM_NOT_PRESENT || tp == APF_TRACE_KVM_READY;
    const bool try_rep = tp == APF_TRACE_KVM_TRY_ASYNC || tp == APF_TRACE_KVM_REPEATED_FAULT;
    const bool done = tp == APF_TRACE_KVM_COMPLETED;
    if (inj)
        r->vector = APF_TRACE_KVM_VECTOR_UNKNOWN;
    while (skip_spaces(c), !at_end(c)) {
        const char *k = c->p;
        while (!at_end(c) && *c->p != '=' && !is_space(*c->p))
            c->p++;
        size_t kn = (size_t)(c->p - k);
        uint64_t v;
        bool neg = false;
        if (kn == 0 || !eat(c, "="))
            return false;
        neg = eat(c, "-");
        if (c->end - c->p >= 2 && c->p[0] == '0' && c->p[1] == 'x') {
            if (!read_hex(c, &v))
                return false;
        } else if (!read_dec(c, UINT64_MAX, &v)) {
            return false;
        }
        if (!at_end(c) && !is_space(*c->p))
            return false;
        any = true;
        if (name_is(k, kn, "token") && np_ready)
            r->token = v;
        else if (name_is(k, kn, "gva") && (np_ready || try_rep || done))
            r->gva = v;
        else if (name_is(k, kn, "gfn") && try_rep)
            r->gfn = v;
        else if ((name_is(k, kn, "address") && done) || (name_is(k, kn, "data") && msr))
            r->address = v;
        else if (name_is(k, kn, "exception") && msr)
            r->gp = v != 0;
        else if (name_is(k, kn, "exception") && inj)
            r->vector = v < 256 ? (uint8_t)v : APF_TRACE_KVM_VECTOR_UNKNOWN;
        else if (name_is(k, kn, "has_error") && inj)
            r->has_error = v != 0;
        else if (name_is(k, kn, "error_code") && inj)
            r->error_code = (uint32_t)v;
        else if (name_is(k, kn, "reinjected") && inj)
            r->reinjected = v != 0;
        else if (name_is(k, kn, "vcpu_id") && tp == APF_TRACE_KVM_ENTRY)
            r->vcpu_id = (uint32_t)v;
        else if (name_is(k, kn, "reason") && tp == APF_TRACE_KVM_USERSPACE_EXIT && r->reason >= 0)
            r->reason = (int32_t)v;
        else if (name_is(k, kn, "errno") && tp == APF_TRACE_KVM_USERSPACE_EXIT && neg && v > 0 &&
                 v < 0x7fffffff)
            r->reason = -(int32_t)v;
        else if (name_is(k, kn, "write") && msr)
            r->write = v != 0;
        else if (name_is(k, kn, "ecx") && msr)
            r->msr = (uint32_t)v;
        /* other fields, or fields of another tracepoint: ignored */
    }
    if (!r->has_error)
        r->error_code = 0;
    return any;
}

static bool body(struct cur *c, struct apf_trace_kvm_record *r)
{
    uint64_t v;
    if (eat(c, "[FAILED TO PARSE]"))
        return body_raw(c, r);
    switch (r->tp) {
    case APF_TRACE_KVM_TRY_ASYNC:
    case APF_TRACE_KVM_REPEATED_FAULT:
        return eat(c, "gva = ") && read_hex(c, &r->gva) && eat(c, ", gfn = ") &&
               read_hex(c, &r->gfn) && rest_blank(c);
    case APF_TRACE_KVM_NOT_PRESENT:
    case APF_TRACE_KVM_READY:
        return eat(c, "token ") && read_hex(c, &r->token) && eat(c, " gva ") &&
               read_hex(c, &r->gva) && rest_blank(c);
    case APF_TRACE_KVM_COMPLETED:
        return eat(c, "gva ") && read_hex(c, &r->gva) && eat(c, " address ") &&
               read_hex(c, &r->address) && rest_blank(c);
    case APF_TRACE_KVM_INJ_EXCEPTION:
        return body_inj(c, r);
    case APF_TRACE_KVM_ENTRY:
        /* "vcpu 0, rip 0x..." (older kernels: "vcpu 0"): only the vCPU is used. */
        if (!eat(c, "vcpu ") || !read_dec(c, 0xffffffffu, &v))
            return false;
        r->vcpu_id = (uint32_t)v;
        return at_end(c) || *c->p == ',' || is_space(*c->p);
    case APF_TRACE_KVM_USERSPACE_EXIT: {
        /* "reason KVM_EXIT_IO (2)", "reason restart (4)" (-errno), "reason error (14)" */
        if (!eat(c, "reason "))
            return false;
        bool neg = eat(c, "restart (") || eat(c, "error (");
        if (!neg) {
            while (!at_end(c) && !is_space(*c->p))
                c->p++;
            if (!eat(c, " ("))
                return false;
        }
        if (!read_dec(c, 0x7fffffff, &v) || !eat(c, ")"))
            return false;
        r->reason = neg ? -(int32_t)v : (int32_t)v;
        return rest_blank(c);
    }
    case APF_TRACE_KVM_MSR:
        /* "msr_write 4b564d07 = 0x1", optionally " (#GP)" */
        if (eat(c, "msr_write "))
            r->write = 1;
        else if (!eat(c, "msr_read "))
            return false;
        if (!read_hex(c, &v) || v > 0xffffffffu || !eat(c, " = ") || !read_hex(c, &r->address))
            return false;
        r->msr = (uint32_t)v;
        if (eat(c, " (#GP)"))
            r->gp = 1;
        return rest_blank(c);
    default:
        return false;
    }
}

/* "<task>-<pid> [<cpu>] [<flags>] <sec>.<frac>: <event>: <body>" */
int apf_trace_kvm_parse(const char *line, size_t len, struct apf_trace_kvm_record *rec)
{
    struct apf_trace_kvm_record r = {0};
    struct cur c = {line, line + len};
    while (c.end > c.p && (c.end[-1] == '\n' || c.end[-1] == '\r'))
        c.end--;
    skip_spaces(&c);
    if (at_end(&c) || *c.p == '#' || eat(&c, "cpus=") || eat(&c, "version ="))
        return APF_TRACE_KVM_HEADER;
    /* trace-cmd: "CPU 1 is empty"; "CPU:1 [LOST 10 EVENTS]" is not a header: malformed */
    {
        struct cur t = c;
        uint64_t n;
        if (eat(&t, "CPU ") && read_dec(&t, 0xffffffffu, &n) && eat(&t, " is empty") &&
            rest_blank(&t))
            return APF_TRACE_KVM_HEADER;
    }
    /* The CPU column: the first "[digits]" preceded by a space, after "-pid". */
    const char *lb = NULL;
    for (const char *p = c.p; p < c.end; p++) {
        if (*p != '[' || p == c.p || !is_space(p[-1]))
            continue;
        const char *q = p + 1;
        while (q < c.end && *q >= '0' && *q <= '9')
            q++;
        if (q > p + 1 && q < c.end && *q == ']') {
            lb = p;
            break;
        }
    }
    if (!lb)
        return APF_EINVAL;
    const char *q = lb;
    while (q > c.p && is_space(q[-1]))
        q--;
    const char *pid_end = q;
    while (q > c.p && q[-1] >= '0' && q[-1] <= '9')
        q--;
    if (q == pid_end || q == c.p || q[-1] != '-')
        return APF_EINVAL;
    uint64_t v;
    struct cur pc = {q, pid_end};
    if (!read_dec(&pc, 0xffffffffu, &v))
        return APF_EINVAL;
    r.pid = (uint32_t)v;
    c.p = lb + 1;
    if (!read_dec(&c, 0xffffffffu, &v) || !eat(&c, "]"))
        return APF_EINVAL;
    r.cpu = (uint32_t)v;
    skip_spaces(&c);
    /* flags column (tracefs: "d..1." / "...."), absent in trace-cmd report */
    r.format = APF_TRACE_FORMAT_KVM_REPORT;
    if (!at_end(&c) && !(*c.p >= '0' && *c.p <= '9')) {
        while (!at_end(&c) && !is_space(*c.p))
            c.p++;
        skip_spaces(&c);
        r.format = APF_TRACE_FORMAT_KVM_TRACEFS;
    }
    uint64_t sec, frac = 0;
    if (!read_dec(&c, 18446744073ull, &sec) || !eat(&c, "."))
        return APF_EINVAL;
    int digits = 0;
    while (!at_end(&c) && *c.p >= '0' && *c.p <= '9') {
        if (digits < 9) {
            frac = frac * 10 + (uint64_t)(*c.p - '0');
            digits++;
        }
        c.p++;
    }
    if (digits == 0 || !eat(&c, ":"))
        return APF_EINVAL;
    for (; digits < 9; digits++)
        frac *= 10;
    /* sec <= 18446744073 keeps sec * 10^9 in range; the fraction may still not fit */
    if (frac > UINT64_MAX - sec * 1000000000ull)
        return APF_EINVAL;
    r.time_ns = sec * 1000000000ull + frac;
    skip_spaces(&c);
    const char *name = c.p;
    while (!at_end(&c) && *c.p != ':' && !is_space(*c.p))
        c.p++;
    size_t nlen = (size_t)(c.p - name);
    if (nlen == 0 || !eat(&c, ":"))
        return APF_EINVAL;
    skip_spaces(&c);
    r.tp = APF_TRACE_KVM_OTHER;
    for (uint32_t i = 0; i < sizeof(tp_names) / sizeof(tp_names[0]); i++)
        if (name_is(name, nlen, tp_names[i].name))
            r.tp = tp_names[i].tp;
    if (r.tp == APF_TRACE_KVM_OTHER) {
        *rec = r;
        return APF_ENOENT;
    }
    if (!body(&c, &r))
        return APF_EINVAL;
    *rec = r;
    return 0;
}

uint32_t apf_trace_detect_format(const char *line, size_t len)
{
    struct cur c = {line, line + len};
    while (c.end > c.p && (c.end[-1] == '\n' || c.end[-1] == '\r'))
        c.end--;
    skip_spaces(&c);
    if (eat(&c, "# tracer:"))
        return APF_TRACE_FORMAT_KVM_TRACEFS;
    if (eat(&c, "cpus="))
        return APF_TRACE_FORMAT_KVM_REPORT;
    if (at_end(&c) || *c.p == '#')
        return APF_TRACE_FORMAT_UNKNOWN;
    struct apf_trace_event ev;
    if (apf_trace_parse(c.p, (size_t)(c.end - c.p), &ev) == 0)
        return APF_TRACE_FORMAT_APF;
    struct apf_trace_kvm_record r;
    int rc = apf_trace_kvm_parse(c.p, (size_t)(c.end - c.p), &r);
    if (rc == 0 || rc == APF_ENOENT)
        return r.format;
    return APF_TRACE_FORMAT_UNKNOWN;
}

/* ---- translation ----------------------------------------------------------------------------- */

enum fstate { F_PENDING = 1, F_DELIVERED, F_HALTED, F_DROPPED };
enum apf_state { S_UNKNOWN = 0, S_ON, S_OFF };

struct fault {
    uint64_t gva, gfn, time_ns;
    uint32_t token, gen;
    uint8_t state, completed, gfn_known, pad;
};

struct vcpu {
    struct fault *f;    /* live faults, compact (swap-remove) */
    uint32_t n;
    uint32_t gen;       /* wake-alls (and enables) seen: older delivered faults are covered */
    uint32_t in_flight; /* "page ready"s sent, not ACKed */
    uint32_t vector;
    int32_t pending;    /* index of the not-yet-settled not_present, or -1 */
    uint8_t state;      /* enum apf_state */
    uint8_t try_pending, tok_lo_known, used;
    uint32_t tok_lo, vcpu_id_known, vcpu_id;
    uint32_t active_at; /* index in apf_trace_kvm::active while n > 0 */
    uint64_t try_gva, try_gfn, try_time;
};

struct thread {
    uint32_t pid, vcpu;
};

struct apf_trace_kvm {
    uint32_t max_vcpus, max_out, flags, n_threads, finish_at;
    int failed;
    struct vcpu *v;
    struct thread *t;
    uint32_t *active; /* the vCPUs with live faults (completions search only these) */
    uint32_t n_active;
    struct apf_trace_kvm_stats st;
    struct apf_trace_event *out;
    uint32_t n_out;
    char error[192];
};

#define KVM_LIMIT 65536u

static bool sizes(uint32_t max_vcpus, uint32_t max_out, size_t *vs, size_t *ts, size_t *fs,
                  size_t *total)
{
    if (max_vcpus == 0 || max_vcpus > KVM_LIMIT || max_out == 0 || max_out > KVM_LIMIT)
        return false;
    size_t head = (sizeof(struct apf_trace_kvm) + 7) & ~(size_t)7;
    *vs = (size_t)max_vcpus * sizeof(struct vcpu);
    *ts = (size_t)max_vcpus * (sizeof(struct thread) + sizeof(uint32_t));
    uint64_t f = (uint64_t)max_vcpus * max_out * sizeof(struct fault);
    if (f > (uint64_t)SIZE_MAX / 2)
        return false;
    *fs = (size_t)f;
    uint64_t t = (uint64_t)head + *vs + *ts + *fs + 32;
    if (t > (uint64_t)SIZE_MAX / 2)
        return false;
    *total = (size_t)t;
    return true;
}

size_t apf_trace_kvm_size(uint32_t max_vcpus, uint32_t max_outstanding)
{
    size_t vs, ts, fs, total;
    return sizes(max_vcpus, max_outstanding, &vs, &ts, &fs, &total) ? total : 0;
}

struct apf_trace_kvm *apf_trace_kvm_init(void *mem, size_t size, uint32_t max_vcpus,
                                         uint32_t max_outstanding, uint32_t flags)
{
    size_t vs, ts, fs, total;
    if (!sizes(max_vcpus, max_outstanding, &vs, &ts, &fs, &total) || mem == NULL ||
        size < total || ((uintptr_t)mem & 7))
        return NULL;
    unsigned char *p = mem;
    for (size_t i = 0; i < total; i++)
        p[i] = 0;
    struct apf_trace_kvm *k = mem;
    size_t head = (sizeof(struct apf_trace_kvm) + 7) & ~(size_t)7;
    k->max_vcpus = max_vcpus;
    k->max_out = max_outstanding;
    k->flags = flags;
    k->v = (struct vcpu *)(void *)(p + head);
    k->t = (struct thread *)(void *)(p + head + vs);
    k->active = (uint32_t *)(void *)(p + head + vs + (size_t)max_vcpus * sizeof(struct thread));
    struct fault *f = (struct fault *)(void *)(p + ((head + vs + ts + 7) & ~(size_t)7));
    for (uint32_t i = 0; i < max_vcpus; i++) {
        k->v[i].f = f + (size_t)i * max_outstanding;
        k->v[i].pending = -1;
    }
    return k;
}

static int fail(struct apf_trace_kvm *k, int code, const char *what, const char *what2,
                uint64_t n, const char *what3, uint64_t m)
{
    struct apf__sb b = apf__sb_make(k->error, sizeof(k->error));
    apf__sb_str(&b, "kvm: ");
    apf__sb_str(&b, what);
    if (what2) {
        apf__sb_str(&b, what2);
        apf__sb_hex(&b, n);
        if (what3) {
            apf__sb_str(&b, what3);
            apf__sb_hex(&b, m);
        }
    }
    k->failed = code;
    return code;
}

static void emit(struct apf_trace_kvm *k, uint32_t kind, uint32_t vcpu, uint64_t time,
                 uint32_t token, uint64_t gpa, int32_t arg)
{
    if (k->n_out >= APF_TRACE_KVM_MAX_OUT)
        return; /* cannot happen: at most 6 per call */
    struct apf_trace_event *e = &k->out[k->n_out++];
    e->time_ns = time;
    e->kind = kind;
    e->vcpu = vcpu;
    e->token = token;
    e->gpa = gpa;
    e->arg = arg;
    k->st.events++;
}

int apf_trace_kvm_bind(struct apf_trace_kvm *k, uint32_t pid, uint32_t vcpu)
{
    if (vcpu >= k->max_vcpus)
        return APF_EINVAL;
    for (uint32_t i = 0; i < k->n_threads; i++) {
        if (k->t[i].pid == pid) {
            k->t[i].vcpu = vcpu;
            k->v[vcpu].used = 1;
            return 0;
        }
    }
    if (k->n_threads >= k->max_vcpus)
        return APF_ENOSPC;
    k->t[k->n_threads].pid = pid;
    k->t[k->n_threads].vcpu = vcpu;
    k->n_threads++;
    k->v[vcpu].used = 1;
    return 0;
}

/* The vCPU of a vCPU thread: bound, or the lowest free index. -1: no room. */
static int64_t vcpu_of(struct apf_trace_kvm *k, uint32_t pid)
{
    for (uint32_t i = 0; i < k->n_threads; i++)
        if (k->t[i].pid == pid)
            return k->t[i].vcpu;
    for (uint32_t v = 0; v < k->max_vcpus; v++)
        if (!k->v[v].used)
            return apf_trace_kvm_bind(k, pid, v) == 0 ? (int64_t)v : -1;
    return -1;
}

static void remove_fault(struct apf_trace_kvm *k, struct vcpu *s, uint32_t i)
{
    s->f[i] = s->f[s->n - 1];
    if (s->pending == (int32_t)(s->n - 1))
        s->pending = (int32_t)i;
    else if (s->pending == (int32_t)i)
        s->pending = -1;
    s->n--;
    if (s->n == 0) { /* leaves the active list */
        uint32_t last = k->active[--k->n_active];
        k->active[s->active_at] = last;
        k->v[last].active_at = s->active_at;
    }
}

static void implied_enable(struct apf_trace_kvm *k, uint32_t v, uint64_t time, bool wake_all)
{
    struct vcpu *s = &k->v[v];
    s->state = S_ON;
    k->st.implied_enables++;
    emit(k, APF_TRACE_HOST_ENABLE, v, time, 0, 0, 0);
    emit(k, APF_TRACE_HOST_TRANSPORT, v, time, APF_TRANSPORT_ID_KVM_X86, 0,
         (k->flags & APF_TRACE_KVM_ACK_VISIBLE) ? 1 : 0);
    if (wake_all) {
        k->st.implied_wake_alls++;
        emit(k, APF_TRACE_HOST_READY, v, time, APF_TOKEN_WAKE_ALL, 0, (int32_t)s->vector);
        emit(k, APF_TRACE_HOST_ACK, v, time, 0, 0, 1);
    }
}

static void settle_try(struct apf_trace_kvm *k, uint32_t v)
{
    struct vcpu *s = &k->v[v];
    if (!s->try_pending)
        return;
    s->try_pending = 0;
    k->st.sync_fallbacks++;
    emit(k, APF_TRACE_HOST_SYNC, v, s->try_time, 0, s->try_gva, APF_WHY_LIMIT);
}

static void settle_np(struct apf_trace_kvm *k, uint32_t v)
{
    struct vcpu *s = &k->v[v];
    if (s->pending < 0)
        return;
    struct fault *f = &s->f[s->pending];
    s->pending = -1;
    f->state = F_HALTED;
    k->st.np_halted++;
    emit(k, APF_TRACE_HOST_HALT, v, f->time_ns, f->token, f->gva,
         s->state == S_OFF ? APF_WHY_DISABLED : APF_WHY_UNDELIVERABLE);
}

static bool same_frame(const struct fault *f, bool gfn_known, uint64_t gfn, uint64_t gva)
{
    if (f->gfn_known && gfn_known)
        return f->gfn == gfn;
    return (f->gva >> 12) == (gva >> 12);
}

static int on_not_present(struct apf_trace_kvm *k, uint32_t v,
                          const struct apf_trace_kvm_record *r)
{
    struct vcpu *s = &k->v[v];
    settle_np(k, v);
    bool gfn_known = s->try_pending && s->try_gva == r->gva;
    uint64_t gfn = gfn_known ? s->try_gfn : 0;
    s->try_pending = 0;
    if (r->token > 0xffffffffu)
        return fail(k, APF_EPROTO, "not present token wider than 32 bits", ": ", r->token,
                    NULL, 0);
    uint32_t lo = (uint32_t)r->token & 0xfffu;
    if (s->vcpu_id_known && lo != (s->vcpu_id & 0xfffu))
        return fail(k, APF_EPROTO, "token not in KVM's format (id << 12 | vcpu_id)",
                    ": token ", r->token, ", vcpu_id ", s->vcpu_id);
    if (s->tok_lo_known && lo != s->tok_lo)
        return fail(k, APF_EPROTO, "token not in KVM's format (id << 12 | vcpu_id): low 12 "
                    "bits differ from this vCPU's earlier tokens", ": token ", r->token,
                    ", earlier low bits ", s->tok_lo);
    s->tok_lo_known = 1;
    s->tok_lo = lo;
    for (uint32_t i = 0; i < s->n; i++) {
        const struct fault *f = &s->f[i];
        if (f->state == F_DROPPED)
            continue;
        if (f->token == (uint32_t)r->token)
            return fail(k, APF_EPROTO, "token already outstanding on this vCPU", ": token ",
                        r->token, NULL, 0);
        if (same_frame(f, gfn_known, gfn, r->gva))
            return fail(k, APF_EPROTO, "second not present for a frame with a fault "
                        "outstanding on this vCPU (KVM dedups it: repeated_fault)", ": gva ",
                        r->gva, ", outstanding token ", f->token);
    }
    if (s->n >= k->max_out)
        return fail(k, APF_ENOSPC, "more outstanding faults on a vCPU than sized for",
                    NULL, 0, NULL, 0);
    struct fault *f = &s->f[s->n];
    *f = (struct fault){.gva = r->gva, .gfn = gfn, .time_ns = r->time_ns,
                        .token = (uint32_t)r->token, .gen = s->gen, .state = F_PENDING,
                        .gfn_known = gfn_known};
    s->pending = (int32_t)s->n;
    if (s->n++ == 0) { /* joins the active list */
        s->active_at = k->n_active;
        k->active[k->n_active++] = v;
    }
    return 0;
}

static void on_inj(struct apf_trace_kvm *k, uint32_t v, const struct apf_trace_kvm_record *r)
{
    struct vcpu *s = &k->v[v];
    if (r->vector != 14)
        return;
    if (s->pending < 0) {
        k->st.pf_other++;
        return;
    }
    struct fault *f = &s->f[s->pending];
    s->pending = -1;
    if (s->state == S_UNKNOWN)
        implied_enable(k, v, f->time_ns, true);
    f->state = F_DELIVERED;
    k->st.np_delivered++;
    emit(k, APF_TRACE_HOST_NOT_PRESENT, v, f->time_ns, f->token, f->gva, 0);
}

static int on_ready(struct apf_trace_kvm *k, uint32_t v, const struct apf_trace_kvm_record *r)
{
    struct vcpu *s = &k->v[v];
    if (r->token == APF_TOKEN_WAKE_ALL) {
        settle_np(k, v);
        if (s->state == S_UNKNOWN)
            implied_enable(k, v, r->time_ns, false);
        s->gen++;
        s->in_flight++;
        emit(k, APF_TRACE_HOST_READY, v, r->time_ns, APF_TOKEN_WAKE_ALL, r->gva,
             (int32_t)s->vector);
        return 0;
    }
    uint32_t i = 0;
    while (i < s->n && !(s->f[i].token == r->token && s->f[i].state != F_DROPPED))
        i++;
    if (i == s->n) {
        for (i = 0; i < s->n && s->f[i].token != r->token; i++)
            ;
    }
    if (i == s->n || r->token > 0xffffffffu) {
        /* unknown token: the checker says so (with the enable it needs) */
        settle_np(k, v);
        if (s->state == S_UNKNOWN)
            implied_enable(k, v, r->time_ns, true);
        s->in_flight++;
        emit(k, APF_TRACE_HOST_READY, v, r->time_ns, (uint32_t)r->token, r->gva,
             (int32_t)s->vector);
        return 0;
    }
    settle_np(k, v); /* this fault's own not present, if pending: it was not delivered */
    struct fault *f = &s->f[i];
    if (!f->completed)
        return fail(k, APF_EPROTO, "page ready before its completion (no "
                    "kvm_async_pf_completed for its address yet)", ": token ", f->token,
                    ", gva ", f->gva);
    switch (f->state) {
    case F_HALTED:
        k->st.halt_wakes++;
        break;
    case F_DROPPED:
        k->st.readies_dropped++;
        break;
    default:
        if (f->gen != s->gen) {
            k->st.covered_readies++;
            break;
        }
        s->in_flight++;
        emit(k, APF_TRACE_HOST_READY, v, r->time_ns, f->token, f->gva, (int32_t)s->vector);
        break;
    }
    remove_fault(k, s, i);
    return 0;
}

static int on_completed(struct apf_trace_kvm *k, const struct apf_trace_kvm_record *r)
{
    struct fault *best = NULL;
    uint32_t bv = 0;
    for (uint32_t a = 0; a < k->n_active; a++) {
        uint32_t v = k->active[a];
        struct vcpu *s = &k->v[v];
        for (uint32_t i = 0; i < s->n; i++) {
            struct fault *f = &s->f[i];
            if (f->completed || f->gva != r->gva)
                continue;
            if (!best || f->time_ns < best->time_ns) {
                best = f;
                bv = v;
            }
        }
    }
    if (!best)
        return fail(k, APF_EPROTO, "completion for an address with no fault outstanding",
                    ": gva ", r->gva, NULL, 0);
    best->completed = 1;
    emit(k, best->state == F_DROPPED ? APF_TRACE_HOST_DROP : APF_TRACE_HOST_DONE, bv,
         r->time_ns, best->token, best->gva, 0);
    return 0;
}

static int on_repeated(struct apf_trace_kvm *k, uint32_t v, const struct apf_trace_kvm_record *r)
{
    struct vcpu *s = &k->v[v];
    settle_np(k, v);
    s->try_pending = 0;
    k->st.repeated++;
    for (uint32_t i = 0; i < s->n; i++) {
        const struct fault *f = &s->f[i];
        if (f->state != F_DROPPED && same_frame(f, true, r->gfn, r->gva)) {
            emit(k, APF_TRACE_HOST_HALT, v, r->time_ns, f->token, r->gva, APF_WHY_DEDUP);
            return 0;
        }
    }
    return fail(k, APF_EPROTO, "repeated fault for a frame with no fault outstanding on this "
                "vCPU", ": gva ", r->gva, ", gfn ", r->gfn);
}

static void on_msr(struct apf_trace_kvm *k, uint32_t v, const struct apf_trace_kvm_record *r)
{
    struct vcpu *s = &k->v[v];
    if (!r->write || r->gp)
        return;
    if (r->msr == APF_KVM_MSR_ASYNC_PF_INT) {
        s->vector = (uint32_t)(r->address & 0xff);
    } else if (r->msr == APF_KVM_MSR_ASYNC_PF_EN) {
        settle_np(k, v);
        /* On only with ENABLED and DELIVERY_AS_INT (KVM since 5.10): bit 0 alone is off. */
        if ((r->address & (APF_EN_ENABLED | APF_EN_DELIVERY_AS_INT)) ==
            (APF_EN_ENABLED | APF_EN_DELIVERY_AS_INT)) {
            /* (re-)enable: KVM queues a wake-all; faults delivered before are covered by it */
            s->state = S_ON;
            s->gen++;
            s->in_flight = 0;
            emit(k, APF_TRACE_HOST_ENABLE, v, r->time_ns, 0, r->address & ~(uint64_t)0x3f,
                 (int32_t)(r->address & 0x3f));
            emit(k, APF_TRACE_HOST_TRANSPORT, v, r->time_ns, APF_TRANSPORT_ID_KVM_X86, 0,
                 (k->flags & APF_TRACE_KVM_ACK_VISIBLE) ? 1 : 0);
        } else {
            int32_t dropped = 0;
            for (uint32_t i = 0; i < s->n; i++) {
                if (s->f[i].state == F_DELIVERED)
                    dropped++;
                s->f[i].state = F_DROPPED;
            }
            s->state = S_OFF;
            s->in_flight = 0;
            emit(k, APF_TRACE_HOST_DISABLE, v, r->time_ns, 0, 0, dropped);
        }
    } else if (r->msr == APF_KVM_MSR_ASYNC_PF_ACK) {
        if (s->in_flight == 0)
            k->st.acks_unmatched++;
        emit(k, APF_TRACE_HOST_ACK, v, r->time_ns, 0, 0, s->in_flight ? 1 : 0);
        s->in_flight = 0;
    }
}

int apf_trace_kvm_feed(struct apf_trace_kvm *k, const struct apf_trace_kvm_record *r,
                       struct apf_trace_event out[APF_TRACE_KVM_MAX_OUT], uint32_t *n_out)
{
    *n_out = 0;
    if (k->failed)
        return k->failed;
    k->out = out;
    k->n_out = 0;
    if (r->tp < sizeof(k->st.lines) / sizeof(k->st.lines[0]))
        k->st.lines[r->tp]++;
    int rc = 0;
    if (r->tp == APF_TRACE_KVM_COMPLETED) {
        rc = on_completed(k, r);
    } else if (r->tp == APF_TRACE_KVM_USERSPACE_EXIT || r->tp == APF_TRACE_KVM_OTHER) {
        /* no protocol meaning; an exit does not settle a not present (the #PF can be
         * injected at the next entry) */
    } else {
        if (r->tp == APF_TRACE_KVM_ENTRY && r->vcpu_id < k->max_vcpus) {
            /* kvm_entry names the vCPU: keep the thread's index if it is free */
            bool known = false;
            for (uint32_t i = 0; i < k->n_threads; i++)
                known |= k->t[i].pid == r->pid;
            if (!known && !k->v[r->vcpu_id].used)
                (void)apf_trace_kvm_bind(k, r->pid, r->vcpu_id);
        }
        int64_t v = vcpu_of(k, r->pid);
        if (v < 0) {
            rc = fail(k, APF_ENOSPC, "more vCPU threads than sized for", NULL, 0, NULL, 0);
        } else {
            struct vcpu *s = &k->v[v];
            if (r->tp != APF_TRACE_KVM_NOT_PRESENT && r->tp != APF_TRACE_KVM_REPEATED_FAULT)
                settle_try(k, (uint32_t)v);
            switch (r->tp) {
            case APF_TRACE_KVM_TRY_ASYNC:
                settle_np(k, (uint32_t)v);
                s->try_pending = 1;
                s->try_gva = r->gva;
                s->try_gfn = r->gfn;
                s->try_time = r->time_ns;
                break;
            case APF_TRACE_KVM_NOT_PRESENT:
                rc = on_not_present(k, (uint32_t)v, r);
                break;
            case APF_TRACE_KVM_READY:
                rc = on_ready(k, (uint32_t)v, r);
                break;
            case APF_TRACE_KVM_REPEATED_FAULT:
                rc = on_repeated(k, (uint32_t)v, r);
                break;
            case APF_TRACE_KVM_INJ_EXCEPTION:
                on_inj(k, (uint32_t)v, r);
                break;
            case APF_TRACE_KVM_ENTRY:
                settle_np(k, (uint32_t)v);
                s->vcpu_id_known = 1;
                s->vcpu_id = r->vcpu_id;
                break;
            case APF_TRACE_KVM_MSR:
                on_msr(k, (uint32_t)v, r);
                break;
            default:
                break;
            }
        }
    }
    *n_out = k->n_out;
    k->out = NULL;
    return rc;
}

int apf_trace_kvm_finish(struct apf_trace_kvm *k,
                         struct apf_trace_event out[APF_TRACE_KVM_MAX_OUT], uint32_t *n_out)
{
    *n_out = 0;
    if (k->failed)
        return k->failed;
    k->out = out;
    k->n_out = 0;
    /* at most 2 events per vCPU (a sync fallback and a halt): stop while there is room */
    for (; k->finish_at < k->max_vcpus; k->finish_at++) {
        if (k->n_out + 2 > APF_TRACE_KVM_MAX_OUT) {
            *n_out = k->n_out;
            k->out = NULL;
            return APF_EAGAIN;
        }
        settle_try(k, k->finish_at);
        settle_np(k, k->finish_at);
    }
    *n_out = k->n_out;
    k->out = NULL;
    for (uint32_t v = 0; v < k->max_vcpus; v++) {
        const struct vcpu *s = &k->v[v];
        for (uint32_t i = 0; i < s->n; i++)
            if (s->f[i].state == F_HALTED)
                return fail(k, APF_EPROTO, "end of trace: artificial halt never woken by a "
                            "page ready", ": token ", s->f[i].token, ", gva ", s->f[i].gva);
    }
    return 0;
}

const char *apf_trace_kvm_error(const struct apf_trace_kvm *k)
{
    return k->error;
}

void apf_trace_kvm_stats(const struct apf_trace_kvm *k, struct apf_trace_kvm_stats *st)
{
    *st = k->st;
}
