/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the s390 pfault frontend - DIAGNOSE X'258' with parameter blocks the guest
 * writes byte by byte (INIT, CANCEL, unknown subcodes, wrong code/length/version, reserved
 * words, masks, misaligned, unreadable or wrapping block and token addresses), faults with
 * input-chosen PSW/CR0/pending, entries and take_ready on any vCPU, the VMM's get_state /
 * set_state / reset, s390 prefixing (real_to_abs) - interleaved with the engine's entry
 * points (fz_host_engine_step) and guest writes to any byte of its RAM.
 * Invariants: every DIAGNOSE answer is the one apf/host_s390.h documents, in its order of
 * checks (a reference model over the same RAM); a refused request, an "already established"
 * INIT and a "not established" CANCEL change nothing (frontend state, engine state, floating
 * count); get_state agrees with the engine; an accepted set_state reads back exactly; a
 * "not present" passed the gate and carries the big-endian task token at the token address;
 * the floating FIFO is exactly the "page ready"s posted and not yet taken or dropped, taken
 * in order with the task token of their "not present"; the trace checker accepts every host
 * event; once everything completes and is taken, no delivered "not present" is unanswered;
 * no leak (the frontend destroyed before the engine, as the header requires).
 */
#include <stdbool.h>

#include "apf/host_s390.h"
#include "host_env.h"

#define PFX_SIZE 0x2000u                 /* s390 prefix area: 8 KiB */
#define BLOCK(v) (0x2000u + 0x40u * (v)) /* a parameter block per vCPU (real) */
#define TOKADDR(v) (0x3340u + 0x1000u * (v))
#define EXT APF_S390_PSW_MASK_EXT
#define PSTATE APF_S390_PSW_MASK_PSTATE
#define SS APF_S390_CR0_SERVICE_SIGNAL
#define MAP_MAX 64u
#define FL_MAX 64u
#define NO_PARAM 0x5eed5eed5eed5eedull

struct np_rec {
    uint32_t token;
    uint64_t param;
};

struct fl_rec {
    uint32_t vcpu;
    uint64_t param;
};

/* The harness's model of what the host owes the guest. */
struct s390_fz {
    struct fz_host e;
    struct apf_host_s390 *fe;
    int prefixing;
    uint64_t prefix[FZ_VCPUS];
    uint64_t tokaddr[FZ_VCPUS]; /* token address in force (refreshed after every step) */
    /* "not present"s delivered and not yet answered: engine token -> task token */
    struct np_rec np[FZ_VCPUS][MAP_MAX];
    uint32_t n_np[FZ_VCPUS];
    uint64_t last_np_param[FZ_VCPUS];
    /* the floating FIFO as it must be: "page ready"s posted, not yet taken or dropped */
    struct fl_rec fl[FL_MAX];
    uint32_t fl_head, fl_n;
};

/* Real -> absolute: the vCPU's prefix area and real 0..8 KiB swap places. */
static uint64_t abs_of(const struct s390_fz *z, uint32_t vcpu, uint64_t real)
{
    uint64_t p = z->prefix[vcpu];
    if (!z->prefixing)
        return real;
    if (real < PFX_SIZE)
        return p + real;
    if (real >= p && real - p < PFX_SIZE)
        return real - p;
    return real;
}

static uint64_t r2a(void *ctx, uint32_t vcpu, uint64_t real)
{
    FZ_ASSERT(vcpu < FZ_VCPUS);
    return abs_of(ctx, vcpu, real);
}

/* The embedder's bounds-checked read, as host_env's read_guest does it. */
static int ram_read(const struct s390_fz *z, uint64_t gpa, void *buf, uint32_t len)
{
    if (gpa > FZ_RAM || len > FZ_RAM - gpa)
        return -1;
    memcpy(buf, z->e.ram + gpa, len);
    return 0;
}

/* The parameter block is a real range: each doubleword through prefixing on its own (a
 * block across the prefix area's end is two absolute pieces). */
static int block_read(const struct s390_fz *z, uint32_t v, uint64_t real, uint8_t *buf)
{
    for (uint32_t off = 0; off < APF_S390_REFBK_SIZE; off += 8)
        if (ram_read(z, abs_of(z, v, real + off), buf + off, 8))
            return -1;
    return 0;
}

static int task_token(const struct s390_fz *z, uint32_t v, uint64_t *out)
{
    uint8_t raw[8];
    if (ram_read(z, abs_of(z, v, z->tokaddr[v]), raw, 8))
        return -1;
    *out = apf_s390_be64(raw);
    return 0;
}

static void fl_drop_vcpu(struct s390_fz *z, uint32_t v)
{
    uint32_t kept = 0;
    for (uint32_t k = 0; k < z->fl_n; k++) {
        struct fl_rec r = z->fl[(z->fl_head + k) % FL_MAX];
        if (r.vcpu != v)
            z->fl[(z->fl_head + kept++) % FL_MAX] = r;
    }
    z->fl_n = kept;
}

static void on_event(void *ctx, const struct apf_trace_event *ev)
{
    struct s390_fz *z = ctx;
    uint32_t v = ev->vcpu;
    FZ_ASSERT(v < FZ_VCPUS);
    switch (ev->kind) {
    case APF_TRACE_HOST_NOT_PRESENT: {
        uint64_t param;
        FZ_ASSERT(task_token(z, v, &param) == 0, "not present with an unreadable token address");
        FZ_ASSERT(z->n_np[v] < MAP_MAX);
        z->np[v][z->n_np[v]++] = (struct np_rec){ev->token, param};
        z->last_np_param[v] = param;
        break;
    }
    case APF_TRACE_HOST_READY: {
        FZ_ASSERT(ev->token != APF_TOKEN_WAKE_ALL, "s390 has no wake-all");
        uint32_t i = 0;
        while (i < z->n_np[v] && z->np[v][i].token != ev->token)
            i++;
        FZ_ASSERT(i < z->n_np[v], "page ready %#x without its not present", ev->token);
        FZ_ASSERT(z->fl_n < FL_MAX);
        z->fl[(z->fl_head + z->fl_n++) % FL_MAX] = (struct fl_rec){v, z->np[v][i].param};
        z->np[v][i] = z->np[v][--z->n_np[v]];
        break;
    }
    case APF_TRACE_HOST_DISABLE:
    case APF_TRACE_HOST_RESET:
    case APF_TRACE_HOST_RESTORE:
        /* the token went invalid: nothing owed, this vCPU's floating completions dropped */
        z->n_np[v] = 0;
        fl_drop_vcpu(z, v);
        break;
    default:
        break;
    }
}

static struct apf_host_s390_state get(struct s390_fz *z, uint32_t v)
{
    struct apf_host_s390_state st;
    FZ_ASSERT(apf_host_s390_get_state(z->fe, v, &st) == 0);
    return st;
}

static void same(const struct apf_host_s390_state *a, const struct apf_host_s390_state *b,
                 const char *what)
{
    FZ_ASSERT(a->token_addr == b->token_addr && a->select == b->select && a->compare == b->compare,
              "%s changed the frontend state", what);
}

/* Everything a refused (or no-op) request must leave as it was. */
struct snap {
    struct apf_host_s390_state fe;
    struct apf_host_vcpu_state eng;
    uint32_t floating;
};

static struct snap snap(struct s390_fz *z, uint32_t v)
{
    return (struct snap){get(z, v), fz_save(&z->e, v), apf_host_s390_floating(z->fe)};
}

static void unchanged(struct s390_fz *z, uint32_t v, const struct snap *before, const char *what)
{
    struct snap after = snap(z, v);
    same(&before->fe, &after.fe, what);
    fz_assert_same_state(&before->eng, &after.eng, what);
    FZ_ASSERT(before->floating == after.floating, "%s changed the floating FIFO", what);
}

/* get_state, the engine and the model tell the same story; refreshes the model's token
 * address. */
static void agrees(struct s390_fz *z, uint32_t v)
{
    struct apf_host_s390_state st = get(z, v);
    struct apf_host_vcpu_state hs = fz_save(&z->e, v);
    if (hs.enabled) {
        FZ_ASSERT(st.token_addr == hs.area_gpa, "frontend token address %#llx, engine area %#llx",
                  (unsigned long long)st.token_addr, (unsigned long long)hs.area_gpa);
        FZ_ASSERT(hs.vector == APF_S390_EXT_CODE && (hs.flags & APF_EN_ENABLED));
        FZ_ASSERT((st.compare & st.select) == st.compare && !(st.token_addr & 7),
                  "established with masks or a token address INIT refuses");
    } else {
        FZ_ASSERT(st.token_addr == APF_S390_TOKEN_INVALID && st.select == 0 && st.compare == 0,
                  "frontend established, engine off");
        FZ_ASSERT(z->n_np[v] == 0, "owed with APF off");
    }
    z->tokaddr[v] = hs.enabled ? st.token_addr : 0;
    FZ_ASSERT(apf_host_s390_floating(z->fe) == z->fl_n, "floating %u, expected %u",
              apf_host_s390_floating(z->fe), z->fl_n);
}

static struct apf_host_s390_cpu pick_cpu(struct fz *f)
{
    static const uint64_t psw[] = {
        EXT | PSTATE,         EXT, PSTATE, 0, EXT | PSTATE | 0x0400000000000000ull, ~0ull,
        0x0705000180000000ull};
    static const uint64_t cr0[] = {SS, 0, SS | 0x14000000ull, ~0ull};
    struct apf_host_s390_cpu c = {0};
    c.psw_mask = fz_val(f, psw, 7);
    c.cr0 = fz_val(f, cr0, 4);
    c.pending = (fz_u8(f) & 7) == 0;
    return c;
}

static bool can_take(const struct apf_host_s390_cpu *c)
{
    return (c->psw_mask & EXT) && (c->cr0 & SS);
}

static uint64_t pick_tokaddr(struct fz *f, uint32_t v)
{
    const uint64_t s[] = {
        TOKADDR(v), TOKADDR(v), TOKADDR(1 - v), TOKADDR(v) + 4,         FZ_RAM - 8,
        FZ_RAM,     0,          0x340,          APF_S390_TOKEN_INVALID, 1ull << 63,
        FZ_RAM - 4, 0x1000,     ~7ull};
    return fz_val(f, s, sizeof(s) / sizeof(s[0]));
}

static const uint64_t selects[] = {PSTATE, PSTATE, 0, EXT, ~0ull, PSTATE | EXT};
static const uint64_t compares[] = {PSTATE, PSTATE, 0, EXT, 1, ~0ull};

/* The guest writes a parameter block at a real address (mostly its own block). */
static void write_block(struct s390_fz *z, uint32_t v, struct fz *f)
{
    static const uint64_t codes[] = {APF_S390_DIAG_CODE, 0x0259, 0, 0x5802};
    static const uint64_t subs[] = {APF_S390_SUB_INIT, APF_S390_SUB_CANCEL, 2, 0xffff, 0x100};
    static const uint64_t lens[] = {5, 5, 4, 6, 0, 0xffff};
    static const uint64_t vers[] = {2, 2, 1, 3, 0, 0x200};
    static const uint64_t res[] = {APF_S390_REFBK_RESERVED, 0, 1, APF_S390_REFBK_RESERVED | 1};
    uint64_t real = (fz_u8(f) & 3) ? BLOCK(v) : BLOCK(1 - v);
    uint64_t at = abs_of(z, v, real);
    if (at > FZ_RAM || APF_S390_REFBK_SIZE > FZ_RAM - at)
        return;
    struct apf_s390_refbk b;
    b.code = (uint16_t)fz_val(f, codes, 4);
    b.subcode = (uint16_t)fz_val(f, subs, 5);
    b.dwords = (uint16_t)fz_val(f, lens, 6);
    b.version = (uint16_t)fz_val(f, vers, 6);
    if (b.subcode == APF_S390_SUB_CANCEL && (fz_u8(f) & 3)) { /* Linux's CANCEL: zeros */
        b.token_addr = b.select = b.compare = b.reserved = 0;
    } else {
        b.token_addr = pick_tokaddr(f, v);
        b.select = fz_val(f, selects, 6);
        b.compare = fz_val(f, compares, 6);
        b.reserved = fz_val(f, res, 4);
    }
    apf_s390_refbk_encode(&b, z->e.ram + at);
}

/* What apf/host_s390.h says DIAGNOSE X'258' answers, from the same RAM. */
static int diag_expected(struct s390_fz *z, uint32_t v, uint64_t block, uint64_t *ry)
{
    if (block & (APF_S390_REFBK_ALIGN - 1))
        return APF_HOST_S390_SPECIFICATION;
    uint8_t raw[APF_S390_REFBK_SIZE];
    if (block_read(z, v, block, raw))
        return APF_HOST_S390_ADDRESSING;
    struct apf_s390_refbk b;
    apf_s390_refbk_decode(raw, &b);
    if (b.code != APF_S390_DIAG_CODE || b.dwords < APF_S390_REFBK_DWORDS ||
        b.version != APF_S390_REFBK_VERSION)
        return APF_HOST_S390_SPECIFICATION;
    bool established = fz_save(&z->e, v).enabled == 1;
    uint8_t probe[8];
    switch (b.subcode) {
    case APF_S390_SUB_INIT:
        if (established) {
            *ry = APF_S390_RC_ALREADY;
            return 0;
        }
        if (b.reserved != APF_S390_REFBK_RESERVED || (b.compare & b.select) != b.compare ||
            (b.token_addr & 7))
            return APF_HOST_S390_SPECIFICATION;
        if (ram_read(z, abs_of(z, v, b.token_addr), probe, 8))
            return APF_HOST_S390_ADDRESSING;
        *ry = APF_S390_RC_OK;
        return 0;
    case APF_S390_SUB_CANCEL:
        if (b.token_addr || b.select || b.compare || b.reserved)
            return APF_HOST_S390_SPECIFICATION;
        *ry = established ? APF_S390_RC_OK : APF_S390_RC_NOT_ESTABLISHED;
        return 0;
    default:
        return APF_HOST_S390_SPECIFICATION;
    }
}

static void step_diag(struct s390_fz *z, uint32_t v, struct fz *f)
{
    uint8_t k = fz_u8(f);
    uint64_t block;
    if (k < 160)
        block = BLOCK(v);
    else if (k < 176)
        block = BLOCK(v) + 1 + k % 7; /* misaligned */
    else if (k < 192)
        block = BLOCK(1 - v);
    else if (k < 208)
        block = (uint64_t[]){FZ_RAM - 40, FZ_RAM - 32, FZ_RAM, ~7ull, 0, 0x1ff8}[k % 6];
    else
        block = fz_val(f, NULL, 0);
    uint64_t ry = NO_PARAM;
    if (v >= FZ_VCPUS) {
        FZ_ASSERT(apf_host_s390_diag258(z->fe, v, block, &ry) == APF_ENODEV && ry == NO_PARAM);
        return;
    }
    uint64_t want_ry = NO_PARAM;
    int want = diag_expected(z, v, block, &want_ry);
    struct snap before = snap(z, v);
    /* the block as read, for what INIT establishes */
    uint8_t raw[APF_S390_REFBK_SIZE];
    struct apf_s390_refbk b = {0};
    if (block_read(z, v, block, raw) == 0)
        apf_s390_refbk_decode(raw, &b);
    int r = apf_host_s390_diag258(z->fe, v, block, &ry);
    FZ_ASSERT(r == want && ry == want_ry, "diag258 %#llx -> %d ry %#llx, documented %d ry %#llx",
              (unsigned long long)block, r, (unsigned long long)ry, want,
              (unsigned long long)want_ry);
    if (r != 0 || ry != APF_S390_RC_OK) {
        unchanged(z, v, &before, r ? "a refused DIAGNOSE X'258'" : "a no-op DIAGNOSE X'258'");
    } else if (b.subcode == APF_S390_SUB_INIT) {
        struct apf_host_s390_state st = get(z, v);
        struct apf_host_vcpu_state hs = fz_save(&z->e, v);
        FZ_ASSERT(st.token_addr == b.token_addr && st.select == b.select && st.compare == b.compare,
                  "INIT established something else");
        FZ_ASSERT(hs.enabled && hs.area_gpa == b.token_addr &&
                  hs.flags == (APF_EN_ENABLED | APF_EN_SEND_ALWAYS) &&
                  hs.vector == APF_S390_EXT_CODE);
    } else {
        FZ_ASSERT(fz_save(&z->e, v).enabled == 0, "CANCEL left APF on");
    }
    agrees(z, v);
}

static void step_fault(struct s390_fz *z, uint32_t v, struct fz *f)
{
    uint64_t gpa = 0x100000u + ((uint64_t)(fz_u8(f) % 16) << 12);
    struct apf_host_s390_cpu cpu = pick_cpu(f);
    uint64_t param = NO_PARAM;
    if (v >= FZ_VCPUS) {
        FZ_ASSERT(apf_host_s390_fault(z->fe, v, gpa, &cpu, &param) == APF_ENODEV);
        return;
    }
    struct apf_host_s390_state st = get(z, v);
    z->last_np_param[v] = NO_PARAM;
    int r = apf_host_s390_fault(z->fe, v, gpa, &cpu, &param);
    FZ_ASSERT(r == APF_FAULT_ASYNC || r == APF_FAULT_SYNC || r == APF_FAULT_HALT, "fault %d", r);
    if (r == APF_FAULT_ASYNC) {
        FZ_ASSERT(st.token_addr != APF_S390_TOKEN_INVALID, "not present while not established");
        FZ_ASSERT((cpu.psw_mask & st.select) == st.compare && (cpu.psw_mask & EXT) &&
                      !cpu.pending && (cpu.cr0 & SS),
                  "not present through a closed gate (psw %#llx cr0 %#llx pending %u)",
                  (unsigned long long)cpu.psw_mask, (unsigned long long)cpu.cr0, cpu.pending);
        uint64_t tt;
        FZ_ASSERT(task_token(z, v, &tt) == 0 && param == tt && param == z->last_np_param[v],
                  "interruption parameter %#llx is not the task token", (unsigned long long)param);
    } else {
        FZ_ASSERT(param == NO_PARAM, "parameter written without a not present");
    }
    agrees(z, v);
}

/* A vCPU takes a floating "page ready" (entry or the VMM's pick). */
static void step_take(struct s390_fz *z, uint32_t v, struct fz *f, bool entry)
{
    struct apf_host_s390_cpu cpu = pick_cpu(f);
    uint64_t param = NO_PARAM;
    if (v >= FZ_VCPUS) {
        FZ_ASSERT((entry ? apf_host_s390_before_entry(z->fe, v, &cpu, &param)
                         : apf_host_s390_take_ready(z->fe, v, &cpu, &param)) == APF_ENODEV);
        return;
    }
    int r = entry ? apf_host_s390_before_entry(z->fe, v, &cpu, &param)
                  : apf_host_s390_take_ready(z->fe, v, &cpu, &param);
    FZ_ASSERT(r == 0 || r == 1, "take %d", r);
    if (r == 1) {
        FZ_ASSERT(can_take(&cpu), "page ready taken by a vCPU that cannot take it");
        FZ_ASSERT(z->fl_n > 0, "page ready taken from an empty FIFO");
        uint64_t want = z->fl[z->fl_head].param;
        FZ_ASSERT(param == want, "page ready parameter %#llx, oldest owed %#llx",
                  (unsigned long long)param, (unsigned long long)want);
        z->fl_head = (z->fl_head + 1) % FL_MAX;
        z->fl_n--;
    } else {
        FZ_ASSERT(param == NO_PARAM);
        FZ_ASSERT(!can_take(&cpu) || z->fl_n == 0, "a vCPU that can take it left %u waiting",
                  z->fl_n);
    }
    agrees(z, v);
}

static void step_set_state(struct s390_fz *z, uint32_t v, struct fz *f)
{
    if (v >= FZ_VCPUS) {
        struct apf_host_s390_state st = {APF_S390_TOKEN_INVALID, 0, 0};
        FZ_ASSERT(apf_host_s390_set_state(z->fe, v, &st) == APF_ENODEV);
        FZ_ASSERT(apf_host_s390_get_state(z->fe, v, &st) == APF_ENODEV);
        return;
    }
    struct apf_host_s390_state st = get(z, (v + fz_u8(f)) % FZ_VCPUS);
    if (fz_u8(f) & 1) {
        st.token_addr = pick_tokaddr(f, v);
        st.select = fz_val(f, selects, 6);
        st.compare = fz_val(f, compares, 6);
    }
    int want = 0;
    uint8_t probe[8];
    if (st.token_addr == APF_S390_TOKEN_INVALID)
        want = (st.select || st.compare) ? APF_EINVAL : 0;
    else if ((st.compare & st.select) != st.compare || (st.token_addr & 7))
        want = APF_EINVAL;
    else if (ram_read(z, abs_of(z, v, st.token_addr), probe, 8))
        want = APF_EFAULT;
    struct snap before = snap(z, v);
    int r = apf_host_s390_set_state(z->fe, v, &st);
    FZ_ASSERT(r == want, "set_state %d, documented %d", r, want);
    if (r) {
        unchanged(z, v, &before, "a refused set_state");
    } else {
        struct apf_host_s390_state back = get(z, v);
        same(&st, &back, "set_state does not read back: it");
    }
    agrees(z, v);
}

/* The guest writes its memory: a parameter block, its task token, a byte of a block, any
 * byte. */
static void step_write(struct s390_fz *z, uint32_t v, struct fz *f)
{
    uint32_t w = v % FZ_VCPUS;
    switch (fz_u8(f) & 3) {
    case 0:
        write_block(z, w, f);
        break;
    case 1: { /* the current task's token */
        uint64_t at = abs_of(z, w, z->tokaddr[w]);
        uint64_t t = fz_val(f, (const uint64_t[]){0, 1, ~0ull, 0x8000000000000000ull}, 4);
        if (at <= FZ_RAM - 8)
            apf_s390_put_be64(z->e.ram + at, t);
        break;
    }
    case 2: { /* a byte of a block */
        uint64_t at = abs_of(z, w, BLOCK(w)) + fz_u8(f) % APF_S390_REFBK_SIZE;
        if (at < FZ_RAM)
            z->e.ram[at] = fz_u8(f);
        break;
    }
    default:
        z->e.ram[fz_u16(f) % FZ_RAM] = fz_u8(f);
        break;
    }
}

static void boot(struct s390_fz *z, struct fz *f)
{
    uint8_t b = fz_u8(f);
    for (uint32_t v = 0; v < FZ_VCPUS; v++) {
        if (!(b & (1u << v)))
            continue;
        /* Linux's INIT: problem-state masks, the z/Architecture reserved word */
        struct apf_s390_refbk blk = {
            APF_S390_DIAG_CODE,     APF_S390_SUB_INIT, 5, 2, TOKADDR(v), PSTATE, PSTATE,
            APF_S390_REFBK_RESERVED};
        uint64_t at = abs_of(z, v, BLOCK(v));
        if (at <= FZ_RAM - APF_S390_REFBK_SIZE)
            apf_s390_refbk_encode(&blk, z->e.ram + at);
        uint64_t ry;
        (void)apf_host_s390_diag258(z->fe, v, BLOCK(v), &ry);
        agrees(z, v);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = {data, size};
    static struct s390_fz z;
    /* fz_host_init clears e (it comes first), this the rest */
    memset(&z.fe, 0, sizeof(z) - offsetof(struct s390_fz, fe));
    fz_host_init(&z.e, &apf_host_transport_s390, &f);
    z.e.on_event = on_event;
    z.e.on_event_ctx = &z;
    struct apf_host_s390_config cfg = {0};
    uint8_t c = fz_u8(&f);
    if (c & 1) { /* prefixing: each vCPU's 8 KiB prefix area swapped with real 0 */
        static const uint64_t pfx[] = {0, 0x4000, 0xa000, FZ_RAM - 0x1000, 1ull << 40};
        z.prefixing = 1;
        for (uint32_t v = 0; v < FZ_VCPUS; v++)
            z.prefix[v] = pfx[(c >> (1 + 3 * v)) % 5];
        cfg.real_to_abs = r2a;
        cfg.ctx = &z;
    }
    if ((c & 0x80) && (fz_u8(&f) & 7) == 0) {
        cfg.reserved[fz_u8(&f) & 3] = 1;
        FZ_ASSERT(apf_host_s390_create(z.e.h, &cfg, &z.fe) == APF_EINVAL && z.fe == NULL);
        cfg.reserved[0] = cfg.reserved[1] = cfg.reserved[2] = cfg.reserved[3] = 0;
    }
    FZ_ASSERT(apf_host_s390_create(z.e.h, &cfg, &z.fe) == 0);
    struct apf_host_s390 *second = NULL;
    FZ_ASSERT(apf_host_s390_create(z.e.h, NULL, &second) == APF_EINVAL && second == NULL,
              "a second frontend on one engine");
    FZ_ASSERT(apf_host_s390_floating(NULL) == 0);
    for (uint32_t v = 0; v < FZ_VCPUS; v++)
        agrees(&z, v);
    boot(&z, &f);
    for (int steps = 0; f.n > 0 && steps < 4096; steps++) {
        uint32_t v = fz_u8(&f) % (FZ_VCPUS + 1); /* FZ_VCPUS: an unknown vCPU */
        switch (fz_u8(&f) % 12) {
        case 0:
        case 1:
            step_diag(&z, v, &f);
            break;
        case 2:
        case 3:
            step_fault(&z, v, &f);
            break;
        case 4:
            step_take(&z, v, &f, true);
            break;
        case 5:
            step_take(&z, v, &f, false);
            break;
        case 6:
            step_set_state(&z, v, &f);
            break;
        case 7:
            FZ_ASSERT(apf_host_s390_vcpu_reset(z.fe, v) == (v < FZ_VCPUS ? 0 : APF_ENODEV));
            if (v < FZ_VCPUS) {
                struct apf_host_s390_state st = get(&z, v);
                FZ_ASSERT(st.token_addr == APF_S390_TOKEN_INVALID && !fz_save(&z.e, v).enabled,
                          "reset left pfault established");
                agrees(&z, v);
            }
            break;
        case 8:
        case 9:
            step_write(&z, v, &f);
            break;
        default:
            fz_host_engine_step(&z.e, &f);
            for (uint32_t w = 0; w < FZ_VCPUS; w++)
                agrees(&z, w);
            break;
        }
    }
    if (fz_u8(&f) & 1) {
        /* Everything completes and every vCPU that can take a "page ready" enters: the
         * floating FIFO empties and no delivered "not present" stays unanswered. */
        fz_host_complete_all(&z.e);
        static const struct apf_host_s390_cpu open = {.psw_mask = EXT, .cr0 = SS};
        for (int progress = 1; progress;) {
            progress = 0;
            for (uint32_t v = 0; v < FZ_VCPUS; v++) {
                uint64_t param = NO_PARAM;
                int r = apf_host_s390_before_entry(z.fe, v, &open, &param);
                FZ_ASSERT(r == 0 || r == 1);
                if (r == 1) {
                    FZ_ASSERT(z.fl_n > 0 && param == z.fl[z.fl_head].param);
                    z.fl_head = (z.fl_head + 1) % FL_MAX;
                    z.fl_n--;
                    progress = 1;
                }
                agrees(&z, v);
            }
        }
        FZ_ASSERT(apf_host_s390_floating(z.fe) == 0 && z.fl_n == 0);
        for (uint32_t v = 0; v < FZ_VCPUS; v++)
            FZ_ASSERT(z.n_np[v] == 0, "vCPU %u: %u not presents never answered", v, z.n_np[v]);
        FZ_ASSERT(apf_trace_checker_finish(z.e.chk) == 0, "%s", apf_trace_checker_error(z.e.chk));
    }
    apf_host_s390_destroy(z.fe); /* before the engine (apf/host_s390.h) */
    fz_host_fini(&z.e, 0);
    FZ_ASSERT(z.e.live_blocks == 0, "%ld blocks leaked", z.e.live_blocks);
    return 0;
}
