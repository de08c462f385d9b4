/* SPDX-License-Identifier: MIT */
/*
 * s390 pfault: the DIAGNOSE X'258' frontend with the exact blocks Linux's s390 guest sends
 * and every malformed variant (exact result, nothing changed), the gate, guest-owned
 * 64-bit tokens read big-endian at fault time, floating completions taken by another vCPU,
 * no ACK and no window, dedup and the limit, CANCEL and migration dropping completions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apf/host_s390.h"
#include "apf_check.h"
#include "fake_vmm.h"

#define BLOCK(v) (0x2000u + 0x40u * (v)) /* a parameter block per vCPU */
/* Token address: a doubleword in the guest's prefix area (Linux uses a lowcore field). */
#define TOKADDR(v) (0x3000u + 0x340u + 0x1000u * (v))
#define PSTATE APF_S390_PSW_MASK_PSTATE
#define EXT APF_S390_PSW_MASK_EXT
#define CR0 APF_S390_CR0_SERVICE_SIGNAL

static const struct apf_host_s390_cpu USER_ON = {.psw_mask = EXT | PSTATE, .cr0 = CR0};
static const struct apf_host_s390_cpu KERNEL_ON = {.psw_mask = EXT, .cr0 = CR0};

struct fx {
    struct fake_vmm *f;
    struct apf_host *h;
    struct apf_host_s390 *fe;
};

static void mk(struct fx *x, uint32_t n_vcpus, uint32_t limit, uint32_t fallback)
{
    x->f = calloc(1, sizeof(*x->f));
    fake_init(x->f);
    struct apf_host_config c = fake_config(x->f, n_vcpus, 0, &apf_host_transport_s390);
    c.max_outstanding = limit;
    c.fallback = fallback;
    ck_assert_int_eq(apf_host_create(&c, &x->h), 0);
    ck_assert_int_eq(apf_host_s390_create(x->h, NULL, &x->fe), 0);
}

static void fini(struct fx *x)
{
    apf_host_s390_destroy(x->fe);
    apf_host_destroy(x->h);
    fake_fini(x->f);
    free(x->f);
}

/* Raw big-endian bytes, written exactly as an s390 guest's memory holds them. */
static void put_block(struct fx *x, uint64_t at, uint16_t code, uint16_t sub, uint16_t len,
                      uint16_t ver, uint64_t tok, uint64_t sel, uint64_t cmp, uint64_t res)
{
    uint8_t *p = x->f->mem + at;
    uint64_t w[4] = {tok, sel, cmp, res};
    p[0] = (uint8_t)(code >> 8), p[1] = (uint8_t)code;
    p[2] = (uint8_t)(sub >> 8), p[3] = (uint8_t)sub;
    p[4] = (uint8_t)(len >> 8), p[5] = (uint8_t)len;
    p[6] = (uint8_t)(ver >> 8), p[7] = (uint8_t)ver;
    for (int k = 0; k < 4; k++)
        for (int b = 0; b < 8; b++)
            p[8 + 8 * k + b] = (uint8_t)(w[k] >> (56 - 8 * b));
}

/* Linux's INIT: problem-state masks and the z/Architecture reserved word. */
static void linux_init_block(struct fx *x, uint32_t v)
{
    put_block(x, BLOCK(v), 0x0258, 0, 5, 2, TOKADDR(v), 1ull << 48, 1ull << 48,
              0x8000000000000000ull);
}

/* Linux's CANCEL: all fields zero but the header. */
static void linux_cancel_block(struct fx *x, uint32_t v)
{
    put_block(x, BLOCK(v), 0x0258, 1, 5, 2, 0, 0, 0, 0);
}

static void set_task_token(struct fx *x, uint32_t v, uint64_t token)
{
    for (int b = 0; b < 8; b++)
        x->f->mem[TOKADDR(v) + (uint64_t)b] = (uint8_t)(token >> (56 - 8 * b));
}

static uint64_t diag_ok(struct fx *x, uint32_t v)
{
    uint64_t ry = 0xdead;
    ck_assert_int_eq(apf_host_s390_diag258(x->fe, v, BLOCK(v), &ry), 0);
    return ry;
}

static void init_vcpu(struct fx *x, uint32_t v)
{
    linux_init_block(x, v);
    ck_assert_uint_eq(diag_ok(x, v), 0);
}

/* s390 prefixing with the prefix at PREFIX: real 0-8191 <-> absolute PREFIX..+8191. */
#define PREFIX 0x10000u
static uint64_t prefixing(void *ctx, uint32_t vcpu, uint64_t real)
{
    (void)ctx, (void)vcpu;
    if (real < 0x2000u)
        return real + PREFIX;
    if (real >= PREFIX && real < PREFIX + 0x2000u)
        return real - PREFIX;
    return real;
}

static struct apf_host_vcpu_stats st(struct fx *x, uint32_t v)
{
    struct apf_host_vcpu_stats s;
    ck_assert_int_eq(apf_host_vcpu_stats(x->h, v, &s), 0);
    return s;
}

/* Everything a rejected block could have changed. */
struct snap {
    int enabled;
    struct apf_host_s390_state s390;
    struct apf_host_vcpu_state eng;
    uint8_t mem[0x6000];
    size_t nlog;
};

static void snap(struct fx *x, uint32_t v, struct snap *s)
{
    memset(s, 0, sizeof(*s));
    s->enabled = apf_host_vcpu_enabled(x->h, v);
    ck_assert_int_eq(apf_host_s390_get_state(x->fe, v, &s->s390), 0);
    ck_assert_int_eq(apf_host_vcpu_save(x->h, v, &s->eng), 0);
    memcpy(s->mem, x->f->mem, sizeof(s->mem));
    s->nlog = x->f->nlog;
}

static void assert_same(const struct snap *a, const struct snap *b)
{
    ck_assert_int_eq(a->enabled, b->enabled);
    ck_assert_mem_eq(&a->s390, &b->s390, sizeof(a->s390));
    ck_assert_mem_eq(&a->eng, &b->eng, sizeof(a->eng));
    ck_assert_mem_eq(a->mem, b->mem, sizeof(a->mem));
    ck_assert_uint_eq(a->nlog, b->nlog);
}

/* ---- DIAGNOSE X'258' ------------------------------------------------------------------------ */

START_TEST(test_linux_init_establishes_and_second_init_returns_8)
{
    struct fx x;
    mk(&x, 2, 0, APF_HOST_FALLBACK_HALT);
    linux_init_block(&x, 0);
    ck_assert_uint_eq(diag_ok(&x, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(x.h, 0), 1);
    ck_assert_int_eq(apf_host_vcpu_enabled(x.h, 1), 0);
    struct apf_host_s390_state s;
    ck_assert_int_eq(apf_host_s390_get_state(x.fe, 0, &s), 0);
    ck_assert_uint_eq(s.token_addr, TOKADDR(0));
    ck_assert_uint_eq(s.select, 1ull << 48);
    ck_assert_uint_eq(s.compare, 1ull << 48);
    struct apf_host_chan *c = apf_host_chan_get(x.h, 0);
    ck_assert_uint_eq(c->window, 0);    /* no throttle */
    ck_assert_uint_eq(c->needs_ack, 0); /* no ACK */
    ck_assert_uint_eq(c->vector, APF_S390_EXT_CODE);
    /* No broadcast on this wire: nothing is delivered after INIT. */
    uint64_t p;
    ck_assert_int_eq(apf_host_s390_before_entry(x.fe, 0, &USER_ON, &p), 0);
    ck_assert_uint_eq(fake_count(x.f, FAKE_READY, 0), 0);
    ck_assert_uint_eq(st(&x, 0).wake_all_delivered, 0);
    /* INIT again, even with other masks: 8, nothing changes */
    struct snap a, b;
    put_block(&x, BLOCK(0), 0x0258, 0, 5, 2, TOKADDR(1), 0, 0, 0x8000000000000000ull);
    snap(&x, 0, &a);
    ck_assert_uint_eq(diag_ok(&x, 0), 8);
    snap(&x, 0, &b);
    assert_same(&a, &b);
    fini(&x);
}
END_TEST

/* A block across the end of the prefix area: its first doubleword is in the prefix page
 * (absolute PREFIX + 0x1ff8), the rest in ordinary memory (absolute 0x2000); read as one
 * absolute range it would be garbage. */
START_TEST(test_block_across_a_prefix_boundary_is_read_piece_by_piece)
{
    struct fx x;
    mk(&x, 1, 8, APF_HOST_FALLBACK_HALT);
    apf_host_s390_destroy(x.fe);
    struct apf_host_s390_config cfg = {.real_to_abs = prefixing};
    ck_assert_int_eq(apf_host_s390_create(x.h, &cfg, &x.fe), 0);
    put_block(&x, 0x1ff8u, 0, 0, 0, 0, TOKADDR(0), 1ull << 48, 1ull << 48, 0x8000000000000000ull);
    memset(x.f->mem + 0x1ff8u, 0, 8); /* real 0x1ff8 is not where the header lives */
    uint8_t *hdr = x.f->mem + PREFIX + 0x1ff8u;
    const uint8_t h[8] = {0x02, 0x58, 0, 0, 0, 5, 0, 2}; /* code, INIT, length, version */
    memcpy(hdr, h, sizeof(h));
    uint64_t ry = 0xdead;
    ck_assert_int_eq(apf_host_s390_diag258(x.fe, 0, 0x1ff8u, &ry), 0);
    ck_assert_uint_eq(ry, 0);
    struct apf_host_s390_state s;
    ck_assert_int_eq(apf_host_s390_get_state(x.fe, 0, &s), 0);
    ck_assert_uint_eq(s.token_addr, TOKADDR(0));
    ck_assert_uint_eq(s.select, 1ull << 48);
    ck_assert_int_eq(apf_host_vcpu_enabled(x.h, 0), 1);
    fini(&x);
}
END_TEST

START_TEST(test_linux_cancel_returns_0_then_4)
{
    struct fx x;
    mk(&x, 1, 0, APF_HOST_FALLBACK_HALT);
    linux_cancel_block(&x, 0);
    ck_assert_uint_eq(diag_ok(&x, 0), 4); /* not established */
    init_vcpu(&x, 0);
    linux_cancel_block(&x, 0);
    ck_assert_uint_eq(diag_ok(&x, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(x.h, 0), 0);
    struct apf_host_s390_state s;
    ck_assert_int_eq(apf_host_s390_get_state(x.fe, 0, &s), 0);
    ck_assert_uint_eq(s.token_addr, APF_S390_TOKEN_INVALID);
    ck_assert_uint_eq(diag_ok(&x, 0), 4);
    /* and INIT works again afterwards */
    init_vcpu(&x, 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(x.h, 0), 1);
    fini(&x);
}
END_TEST

START_TEST(test_longer_block_is_accepted)
{
    struct fx x;
    mk(&x, 1, 0, APF_HOST_FALLBACK_HALT);
    put_block(&x, BLOCK(0), 0x0258, 0, 6, 2, TOKADDR(0), 0, 0, 0x8000000000000000ull);
    ck_assert_uint_eq(diag_ok(&x, 0), 0); /* length >= 5 */
    fini(&x);
}
END_TEST

struct bad_block {
    const char *what;
    int established; /* run against an established vCPU (CANCEL cases) */
    uint64_t at;     /* Rx; 0 = BLOCK(0) */
    uint16_t code, sub, len, ver;
    uint64_t tok, sel, cmp, res;
    int want;
};

#define INIT_OK 0x0258, 0, 5, 2
#define CANCEL_OK 0x0258, 1, 5, 2
#define RES 0x8000000000000000ull
#define SPEC APF_HOST_S390_SPECIFICATION
#define ADDR APF_HOST_S390_ADDRESSING

static const struct bad_block bad_blocks[] = {
    {"block misaligned", 0, BLOCK(0) + 4, INIT_OK, TOKADDR(0), 1ull << 48, 1ull << 48, RES, SPEC},
    {"block not in memory", 0, FAKE_MEM_SIZE - 8, INIT_OK, TOKADDR(0), 0, 0, RES, ADDR},
    {"block beyond memory", 0, (uint64_t)FAKE_MEM_SIZE << 4, INIT_OK, TOKADDR(0), 0, 0, RES, ADDR},
    {"wrong code", 0, 0, 0x0259, 0, 5, 2, TOKADDR(0), 1ull << 48, 1ull << 48, RES, SPEC},
    {"code byte-swapped", 0, 0, 0x5802, 0, 5, 2, TOKADDR(0), 1ull << 48, 1ull << 48, RES, SPEC},
    {"subcode 2", 0, 0, 0x0258, 2, 5, 2, TOKADDR(0), 1ull << 48, 1ull << 48, RES, SPEC},
    {"subcode 0x100", 0, 0, 0x0258, 0x100, 5, 2, TOKADDR(0), 0, 0, RES, SPEC},
    {"length 4", 0, 0, 0x0258, 0, 4, 2, TOKADDR(0), 1ull << 48, 1ull << 48, RES, SPEC},
    {"length 0", 0, 0, 0x0258, 0, 0, 2, TOKADDR(0), 1ull << 48, 1ull << 48, RES, SPEC},
    {"version 1", 0, 0, 0x0258, 0, 5, 1, TOKADDR(0), 1ull << 48, 1ull << 48, RES, SPEC},
    {"version 3", 0, 0, 0x0258, 0, 5, 3, TOKADDR(0), 1ull << 48, 1ull << 48, RES, SPEC},
    {"token misaligned", 0, 0, INIT_OK, TOKADDR(0) + 4, 1ull << 48, 1ull << 48, RES, SPEC},
    {"token not in memory", 0, 0, INIT_OK, FAKE_MEM_SIZE, 1ull << 48, 1ull << 48, RES, ADDR},
    {"token crosses the end", 0, 0, INIT_OK, FAKE_MEM_SIZE - 4 + 4, 0, 0, RES, ADDR},
    {"compare not within select", 0, 0, INIT_OK, TOKADDR(0), 1ull << 48, (1ull << 48) | 1, RES,
     SPEC},
    {"compare without select", 0, 0, INIT_OK, TOKADDR(0), 0, 1ull << 48, RES, SPEC},
    {"reserved word 0", 0, 0, INIT_OK, TOKADDR(0), 1ull << 48, 1ull << 48, 0, SPEC},
    {"reserved word other", 0, 0, INIT_OK, TOKADDR(0), 1ull << 48, 1ull << 48, RES | 1, SPEC},
    {"cancel with token", 1, 0, CANCEL_OK, TOKADDR(0), 0, 0, 0, SPEC},
    {"cancel with select", 1, 0, CANCEL_OK, 0, 1ull << 48, 0, 0, SPEC},
    {"cancel with compare", 1, 0, CANCEL_OK, 0, 0, 1, 0, SPEC},
    {"cancel with reserved", 1, 0, CANCEL_OK, 0, 0, 0, RES, SPEC},
    {"cancel version 1", 1, 0, 0x0258, 1, 5, 1, 0, 0, 0, 0, SPEC},
    {"cancel length 4", 1, 0, 0x0258, 1, 4, 2, 0, 0, 0, 0, SPEC},
};

START_TEST(test_malformed_block_exact_error_and_nothing_changes)
{
    const struct bad_block *t = &bad_blocks[_i];
    struct fx x;
    mk(&x, 1, 0, APF_HOST_FALLBACK_HALT);
    if (t->established) {
        init_vcpu(&x, 0);
        /* work in flight, to show CANCEL did not drop it */
        set_task_token(&x, 0, 0x8000000000000042ull);
        uint64_t p;
        ck_assert_int_eq(apf_host_s390_fault(x.fe, 0, 0x40000, &USER_ON, &p), APF_FAULT_ASYNC);
    }
    put_block(&x, BLOCK(0), t->code, t->sub, t->len, t->ver, t->tok, t->sel, t->cmp, t->res);
    struct snap a, b;
    snap(&x, 0, &a);
    uint32_t out0 = st(&x, 0).outstanding;
    uint64_t ry = 0x1234;
    int r = apf_host_s390_diag258(x.fe, 0, t->at ? t->at : BLOCK(0), &ry);
    ck_assert_msg(r == t->want, "%s: got %d, want %d", t->what, r, t->want);
    ck_assert_uint_eq(ry, 0x1234); /* Ry is not written on an exception */
    snap(&x, 0, &b);
    assert_same(&a, &b);
    ck_assert_uint_eq(st(&x, 0).outstanding, out0);
    fini(&x);
}
END_TEST

START_TEST(test_unknown_vcpu_and_null)
{
    struct fx x;
    mk(&x, 1, 0, APF_HOST_FALLBACK_HALT);
    uint64_t ry;
    ck_assert_int_eq(apf_host_s390_diag258(x.fe, 1, BLOCK(0), &ry), APF_ENODEV);
    ck_assert_int_eq(apf_host_s390_diag258(NULL, 0, BLOCK(0), &ry), APF_ENODEV);
    ck_assert_int_eq(apf_host_s390_diag258(x.fe, 0, BLOCK(0), NULL), APF_ENODEV);
    struct apf_host_s390 *again;
    ck_assert_int_eq(apf_host_s390_create(x.h, NULL, &again), APF_EINVAL); /* one per engine */
    fini(&x);
    /* a frontend needs the s390 engine */
    struct fake_vmm *f = calloc(1, sizeof(*f));
    fake_init(f);
    struct apf_host_config c = fake_config(f, 1, 0, &apf_host_transport_kvm_x86);
    struct apf_host *h;
    ck_assert_int_eq(apf_host_create(&c, &h), 0);
    ck_assert_int_eq(apf_host_s390_create(h, NULL, &again), APF_EINVAL);
    apf_host_destroy(h);
    fake_fini(f);
    free(f);
}
END_TEST

/* ---- the gate and the guest-owned token ------------------------------------------------------ */

START_TEST(test_fault_reads_task_token_big_endian_at_fault_time)
{
    struct fx x;
    mk(&x, 1, 0, APF_HOST_FALLBACK_HALT);
    init_vcpu(&x, 0);
    set_task_token(&x, 0, 0x8000000001020304ull);
    ck_assert_uint_eq(x.f->mem[TOKADDR(0)], 0x80); /* big-endian in guest memory */
    ck_assert_uint_eq(x.f->mem[TOKADDR(0) + 7], 0x04);
    uint64_t p = 0;
    ck_assert_int_eq(apf_host_s390_fault(x.fe, 0, 0x40000, &USER_ON, &p), APF_FAULT_ASYNC);
    ck_assert_uint_eq(p, 0x8000000001020304ull);
    uint32_t t = fake_nth(x.f, FAKE_NP, 0, 0)->value; /* the engine's token */
    set_task_token(&x, 0, 0x8000000000000999ull);     /* another task runs now */
    ck_assert_int_eq(apf_host_complete(x.h, 0, t, 0), 0);
    uint64_t r = 0;
    ck_assert_int_eq(apf_host_s390_before_entry(x.fe, 0, &USER_ON, &r), 1);
    ck_assert_uint_eq(r, 0x8000000001020304ull); /* the token of the fault, not the current */
    ck_assert_uint_eq(fake_nth(x.f, FAKE_READY, 0, 0)->value, APF_S390_EXT_CODE);
    ck_assert_int_eq(apf_host_s390_before_entry(x.fe, 0, &USER_ON, &r), 0);
    struct apf_host_vcpu_stats s = st(&x, 0);
    ck_assert_uint_eq(s.acks, 0);
    ck_assert_uint_eq(s.ready_delivered, 1);
    ck_assert_uint_eq(s.outstanding, 0);
    fini(&x);
}
END_TEST

struct gate_case {
    const char *what;
    uint64_t sel, cmp; /* masks of INIT */
    struct apf_host_s390_cpu cpu;
    int want_halt; /* fallback HALT */
    int want_sync; /* fallback SYNC */
};

static const struct gate_case gate_cases[] = {
    {"user, masks match", 1ull << 48, 1ull << 48, {EXT | PSTATE, CR0, 0, 0}, APF_FAULT_ASYNC,
     APF_FAULT_ASYNC},
    {"kernel, problem-state masks", 1ull << 48, 1ull << 48, {EXT, CR0, 0, 0}, APF_FAULT_HALT,
     APF_FAULT_SYNC},
    {"kernel, zero masks (always)", 0, 0, {EXT, CR0, 0, 0}, APF_FAULT_ASYNC, APF_FAULT_ASYNC},
    {"user, compare 0 (kernel only)", 1ull << 48, 0, {EXT | PSTATE, CR0, 0, 0}, APF_FAULT_HALT,
     APF_FAULT_SYNC},
    {"external interrupts off", 1ull << 48, 1ull << 48, {PSTATE, CR0, 0, 0}, APF_FAULT_SYNC,
     APF_FAULT_SYNC},
    {"interrupt pending", 1ull << 48, 1ull << 48, {EXT | PSTATE, CR0, 1, 0}, APF_FAULT_SYNC,
     APF_FAULT_SYNC},
    {"service-signal subclass off", 1ull << 48, 1ull << 48, {EXT | PSTATE, 0, 0, 0},
     APF_FAULT_HALT, APF_FAULT_SYNC},
    {"other CR0 bits only", 1ull << 48, 1ull << 48, {EXT | PSTATE, ~CR0, 0, 0}, APF_FAULT_HALT,
     APF_FAULT_SYNC},
};

START_TEST(test_gate_masks_ext_pending_subclass)
{
    const struct gate_case *g = &gate_cases[_i / 2];
    int sync = _i % 2;
    struct fx x;
    mk(&x, 1, 0, sync ? APF_HOST_FALLBACK_SYNC : APF_HOST_FALLBACK_HALT);
    put_block(&x, BLOCK(0), INIT_OK, TOKADDR(0), g->sel, g->cmp, RES);
    ck_assert_uint_eq(diag_ok(&x, 0), 0);
    uint64_t p = 0x77;
    int r = apf_host_s390_fault(x.fe, 0, 0x40000, &g->cpu, &p);
    ck_assert_msg(r == (sync ? g->want_sync : g->want_halt), "%s: %d", g->what, r);
    ck_assert_uint_eq(fake_count(x.f, FAKE_NP, 0), r == APF_FAULT_ASYNC);
    if (r != APF_FAULT_ASYNC)
        ck_assert_uint_eq(p, 0x77);
    fini(&x);
}
END_TEST

START_TEST(test_unreadable_token_falls_back)
{
    struct fx x;
    mk(&x, 1, 0, APF_HOST_FALLBACK_SYNC);
    init_vcpu(&x, 0);
    /* The VMM maps real to absolute addresses: pretend the token went away by shrinking
     * guest memory below it. */
    x.f->mem_size = TOKADDR(0);
    uint64_t p;
    ck_assert_int_eq(apf_host_s390_fault(x.fe, 0, 0x40000, &USER_ON, &p), APF_FAULT_SYNC);
    x.f->mem_size = FAKE_MEM_SIZE;
    fini(&x);
}
END_TEST

/* ---- floating completions ---------------------------------------------------------------------- */

START_TEST(test_completion_floats_to_whichever_vcpu_can_take_it)
{
    struct fx x;
    mk(&x, 3, 0, APF_HOST_FALLBACK_HALT);
    for (uint32_t v = 0; v < 3; v++)
        init_vcpu(&x, v);
    set_task_token(&x, 0, 0x8000000000000100ull);
    uint64_t p;
    ck_assert_int_eq(apf_host_s390_fault(x.fe, 0, 0x40000, &USER_ON, &p), APF_FAULT_ASYNC);
    ck_assert_int_eq(apf_host_complete(x.h, 0, fake_nth(x.f, FAKE_NP, 0, 0)->value, 0), 0);
    /* vCPU 0 enters with external interrupts off: the completion floats */
    struct apf_host_s390_cpu off = {.psw_mask = PSTATE, .cr0 = CR0};
    ck_assert_int_eq(apf_host_s390_before_entry(x.fe, 0, &off, &p), 0);
    ck_assert_uint_eq(apf_host_s390_floating(x.fe), 1);
    ck_assert_uint_eq(fake_count(x.f, FAKE_READY, 0), 1); /* "some vCPU should take it" */
    /* vCPU 1 without the subclass mask cannot take it; vCPU 2 can */
    struct apf_host_s390_cpu nosub = {.psw_mask = EXT, .cr0 = 0};
    ck_assert_int_eq(apf_host_s390_before_entry(x.fe, 1, &nosub, &p), 0);
    p = 0;
    ck_assert_int_eq(apf_host_s390_before_entry(x.fe, 2, &KERNEL_ON, &p), 1);
    ck_assert_uint_eq(p, 0x8000000000000100ull);
    ck_assert_uint_eq(apf_host_s390_floating(x.fe), 0);
    ck_assert_int_eq(apf_host_s390_before_entry(x.fe, 0, &USER_ON, &p), 0);
    fini(&x);
}
END_TEST

/* Bursts: every completion arrives exactly once, in completion order, one notification per
 * batch, no ACK, and dedup and the limit hold. */
START_TEST(test_burst_of_64_in_completion_order_no_ack)
{
    struct fx x;
    mk(&x, 2, 64, APF_HOST_FALLBACK_SYNC);
    init_vcpu(&x, 0);
    uint32_t tok[64];
    uint64_t p;
    for (uint32_t k = 0; k < 64; k++) {
        set_task_token(&x, 0, 0x8000000000010000ull + k);
        ck_assert_int_eq(apf_host_s390_fault(x.fe, 0, 0x40000 + 0x1000ull * k, &USER_ON, &p),
                         APF_FAULT_ASYNC);
        ck_assert_uint_eq(p, 0x8000000000010000ull + k);
        tok[k] = fake_nth(x.f, FAKE_NP, 0, k)->value;
    }
    /* the limit holds: the 65th is synchronous */
    ck_assert_int_eq(apf_host_s390_fault(x.fe, 0, 0x90000, &USER_ON, &p), APF_FAULT_SYNC);
    /* dedup holds: a second fault on a frame in flight halts */
    ck_assert_int_eq(apf_host_s390_fault(x.fe, 0, 0x40000, &USER_ON, &p), APF_FAULT_HALT);
    for (uint32_t k = 0; k < 64; k++)
        ck_assert_int_eq(apf_host_complete(x.h, 0, tok[63 - k], 0), 0);
    uint32_t got = 0;
    struct apf_host_s390_cpu take = USER_ON;
    while (apf_host_s390_before_entry(x.fe, 0, &take, &p) == 1) {
        ck_assert_uint_eq(p, 0x8000000000010000ull + (63 - got));
        got++;
    }
    ck_assert_uint_eq(got, 64);
    struct apf_host_vcpu_stats s = st(&x, 0);
    ck_assert_uint_eq(s.notifications, 1);
    ck_assert_uint_eq(s.ready_batches, 1);
    ck_assert_uint_eq(s.acks, 0);
    ck_assert_uint_eq(s.outstanding, 0);
    fini(&x);
}
END_TEST

/* CANCEL (the token becomes invalid) drops this vCPU's pending completions, also those
 * already floating, and only this vCPU's. */
START_TEST(test_cancel_drops_pending_completions_of_that_vcpu_only)
{
    struct fx x;
    mk(&x, 2, 0, APF_HOST_FALLBACK_HALT);
    init_vcpu(&x, 0);
    init_vcpu(&x, 1);
    uint64_t p;
    set_task_token(&x, 0, 0xa0);
    set_task_token(&x, 1, 0xb0);
    ck_assert_int_eq(apf_host_s390_fault(x.fe, 0, 0x40000, &USER_ON, &p), APF_FAULT_ASYNC);
    ck_assert_int_eq(apf_host_s390_fault(x.fe, 0, 0x41000, &USER_ON, &p), APF_FAULT_ASYNC);
    ck_assert_int_eq(apf_host_s390_fault(x.fe, 1, 0x42000, &USER_ON, &p), APF_FAULT_ASYNC);
    uint32_t a = fake_nth(x.f, FAKE_NP, 0, 0)->value, b = fake_nth(x.f, FAKE_NP, 0, 1)->value;
    uint32_t c = fake_nth(x.f, FAKE_NP, 1, 0)->value;
    ck_assert_int_eq(apf_host_complete(x.h, 0, a, 0), 0);
    ck_assert_int_eq(apf_host_complete(x.h, 1, c, 0), 0);
    struct apf_host_s390_cpu off = {.psw_mask = 0, .cr0 = CR0};
    apf_host_s390_before_entry(x.fe, 0, &off, &p);
    apf_host_s390_before_entry(x.fe, 1, &off, &p);
    ck_assert_uint_eq(apf_host_s390_floating(x.fe), 2);
    linux_cancel_block(&x, 0);
    ck_assert_uint_eq(diag_ok(&x, 0), 0);
    ck_assert_uint_eq(apf_host_s390_floating(x.fe), 1); /* vCPU 1's stays */
    ck_assert_int_eq(apf_host_complete(x.h, 0, b, 0), 0); /* completes after CANCEL */
    ck_assert_int_eq(apf_host_s390_before_entry(x.fe, 0, &USER_ON, &p), 1);
    ck_assert_uint_eq(p, 0xb0);
    ck_assert_int_eq(apf_host_s390_before_entry(x.fe, 0, &USER_ON, &p), 0);
    struct apf_host_vcpu_stats s = st(&x, 0);
    ck_assert_uint_eq(s.outstanding, 0);
    ck_assert_uint_eq(s.completions_dropped, 1); /* b; a was dropped from the floating FIFO */
    fini(&x);
}
END_TEST

/* ---- migration ------------------------------------------------------------------------------- */

START_TEST(test_migration_moves_token_address_and_masks)
{
    struct fx x, y;
    mk(&x, 1, 0, APF_HOST_FALLBACK_HALT);
    put_block(&x, BLOCK(0), INIT_OK, TOKADDR(0), 1ull << 48, 0, RES); /* kernel only */
    ck_assert_uint_eq(diag_ok(&x, 0), 0);
    struct apf_host_s390_state s;
    ck_assert_int_eq(apf_host_s390_get_state(x.fe, 0, &s), 0);
    mk(&y, 1, 0, APF_HOST_FALLBACK_HALT);
    memcpy(y.f->mem, x.f->mem, FAKE_MEM_SIZE);
    ck_assert_int_eq(apf_host_s390_set_state(y.fe, 0, &s), 0);
    struct apf_host_s390_state t;
    ck_assert_int_eq(apf_host_s390_get_state(y.fe, 0, &t), 0);
    ck_assert_mem_eq(&s, &t, sizeof(s));
    /* the masks moved: a kernel-mode fault goes async, a user-mode one does not */
    uint64_t p;
    set_task_token(&y, 0, 0x55);
    ck_assert_int_eq(apf_host_s390_fault(y.fe, 0, 0x40000, &KERNEL_ON, &p), APF_FAULT_ASYNC);
    ck_assert_uint_eq(p, 0x55);
    ck_assert_int_eq(apf_host_s390_fault(y.fe, 0, 0x41000, &USER_ON, &p), APF_FAULT_HALT);
    /* INIT on the destination: already established */
    ck_assert_uint_eq(diag_ok(&y, 0), 8);
    fini(&y);
    fini(&x);
}
END_TEST

START_TEST(test_restoring_invalid_token_drops_pending_completions)
{
    struct fx x;
    mk(&x, 1, 0, APF_HOST_FALLBACK_HALT);
    init_vcpu(&x, 0);
    uint64_t p;
    ck_assert_int_eq(apf_host_s390_fault(x.fe, 0, 0x40000, &USER_ON, &p), APF_FAULT_ASYNC);
    ck_assert_int_eq(apf_host_s390_fault(x.fe, 0, 0x41000, &USER_ON, &p), APF_FAULT_ASYNC);
    ck_assert_int_eq(apf_host_complete(x.h, 0, fake_nth(x.f, FAKE_NP, 0, 0)->value, 0), 0);
    struct apf_host_s390_cpu off = {.psw_mask = 0, .cr0 = CR0};
    apf_host_s390_before_entry(x.fe, 0, &off, &p);
    ck_assert_uint_eq(apf_host_s390_floating(x.fe), 1);
    struct apf_host_s390_state inv = {APF_S390_TOKEN_INVALID, 0, 0};
    ck_assert_int_eq(apf_host_s390_set_state(x.fe, 0, &inv), 0);
    ck_assert_uint_eq(apf_host_s390_floating(x.fe), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(x.h, 0), 0);
    ck_assert_int_eq(apf_host_complete(x.h, 0, fake_nth(x.f, FAKE_NP, 0, 1)->value, 0), 0);
    ck_assert_int_eq(apf_host_s390_before_entry(x.fe, 0, &USER_ON, &p), 0);
    ck_assert_uint_eq(st(&x, 0).outstanding, 0);
    fini(&x);
}
END_TEST

START_TEST(test_bad_restore_changes_nothing)
{
    static const struct apf_host_s390_state bad[] = {
        {TOKADDR(0) + 4, 0, 0},                      /* misaligned */
        {FAKE_MEM_SIZE, 0, 0},                       /* not guest memory */
        {TOKADDR(0), 1ull << 48, (1ull << 48) | 2},  /* compare outside select */
        {APF_S390_TOKEN_INVALID, 1ull << 48, 0},     /* masks without a token */
    };
    static const int want[] = {APF_EINVAL, APF_EFAULT, APF_EINVAL, APF_EINVAL};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        struct fx x;
        mk(&x, 1, 0, APF_HOST_FALLBACK_HALT);
        init_vcpu(&x, 0);
        struct snap a, b;
        snap(&x, 0, &a);
        ck_assert_int_eq(apf_host_s390_set_state(x.fe, 0, &bad[k]), want[k]);
        snap(&x, 0, &b);
        assert_same(&a, &b);
        fini(&x);
    }
}
END_TEST

/* The engine's own save/restore (and enable) cannot carry the masks: an established vCPU's
 * state restored through apf_host_vcpu_restore() used to leave pfault on in the engine with
 * the frontend's token address and masks gone (task token read at real 0, the gate open in
 * kernel mode). Refused now, changing nothing; a disabled state is still accepted. */
START_TEST(test_engine_restore_or_enable_cannot_establish_without_the_masks)
{
    struct fx x;
    mk(&x, 2, 0, APF_HOST_FALLBACK_HALT);
    init_vcpu(&x, 0); /* Linux's masks: problem state only */
    struct apf_host_vcpu_state hs;
    ck_assert_int_eq(apf_host_vcpu_save(x.h, 0, &hs), 0);
    ck_assert_uint_eq(hs.enabled, 1);
    struct snap a, b;
    snap(&x, 0, &a);
    ck_assert_int_eq(apf_host_vcpu_restore(x.h, 0, &hs), APF_EINVAL);
    snap(&x, 0, &b);
    assert_same(&a, &b);
    /* the gate of the INIT still holds: a kernel-mode fault is not delivered */
    uint64_t p = 0;
    set_task_token(&x, 0, 0x77);
    ck_assert_int_ne(apf_host_s390_fault(x.fe, 0, 0x40000, &KERNEL_ON, &p), APF_FAULT_ASYNC);
    ck_assert_int_eq(apf_host_s390_fault(x.fe, 0, 0x41000, &USER_ON, &p), APF_FAULT_ASYNC);
    ck_assert_uint_eq(p, 0x77);
    /* nor can an engine-level enable establish vCPU 1 */
    ck_assert_int_eq(apf_host_vcpu_set_vector(x.h, 1, APF_S390_EXT_CODE), 0);
    ck_assert_int_eq(apf_host_vcpu_enable(x.h, 1, TOKADDR(1), APF_EN_SEND_ALWAYS), APF_EINVAL);
    ck_assert_int_eq(apf_host_vcpu_enabled(x.h, 1), 0);
    /* a disabled state restores (pfault cancelled), and INIT establishes again */
    struct apf_host_vcpu_state off = {.version = APF_HOST_STATE_VERSION,
                                      .vector = APF_S390_EXT_CODE};
    ck_assert_int_eq(apf_host_vcpu_restore(x.h, 0, &off), 0);
    struct apf_host_s390_state s;
    ck_assert_int_eq(apf_host_s390_get_state(x.fe, 0, &s), 0);
    ck_assert_uint_eq(s.token_addr, APF_S390_TOKEN_INVALID);
    ck_assert_uint_eq(diag_ok(&x, 0), 0);
    ck_assert_int_eq(apf_host_s390_get_state(x.fe, 0, &s), 0);
    ck_assert_uint_eq(s.token_addr, TOKADDR(0));
    fini(&x);
}
END_TEST

/* ---- the trace checker ---------------------------------------------------------------------- */

struct tchk {
    struct apf_trace_checker *c;
    int bad;
    uint64_t transports, readies;
};

static void feed(void *ctx, const struct apf_trace_event *ev)
{
    struct tchk *t = ctx;
    if (ev->kind == APF_TRACE_HOST_TRANSPORT) {
        t->transports++;
        ck_assert_uint_eq(ev->token, APF_TRANSPORT_ID_S390);
        ck_assert_int_eq(ev->arg, 0); /* window 0: unthrottled */
    }
    if (ev->kind == APF_TRACE_HOST_READY)
        t->readies++;
    if (!t->bad && apf_trace_checker_feed(t->c, ev) != 0) {
        t->bad = 1;
        char line[160];
        apf_trace_format(ev, line, sizeof(line));
        fprintf(stderr, "checker: %s at [%s]\n", apf_trace_checker_error(t->c), line);
    }
}

/* A real run - INIT, faults on two vCPUs, completions floating to the other vCPU, a burst,
 * CANCEL with work in flight, INIT again - is consistent for the checker with window 0 (the
 * transport event says so: no ACK, no one-slot throttle, no wake-all after enable). */
START_TEST(test_trace_of_a_run_is_consistent_with_window_0)
{
    struct tchk t = {0};
    size_t size = apf_trace_checker_size_windowed(2, 64, 64);
    void *mem = calloc(1, size);
    t.c = apf_trace_checker_init_windowed(mem, size, 2, 64, 64);
    ck_assert_ptr_nonnull(t.c);
    struct fx x;
    x.f = calloc(1, sizeof(*x.f));
    fake_init(x.f);
    struct apf_host_config c = fake_config(x.f, 2, 0, &apf_host_transport_s390);
    c.trace = feed;
    c.trace_ctx = &t;
    ck_assert_int_eq(apf_host_create(&c, &x.h), 0);
    ck_assert_int_eq(apf_host_s390_create(x.h, NULL, &x.fe), 0);
    init_vcpu(&x, 0);
    init_vcpu(&x, 1);
    uint64_t p;
    for (uint32_t k = 0; k < 20; k++) {
        uint32_t v = k % 2;
        ck_assert_int_eq(apf_host_s390_fault(x.fe, v, 0x40000 + 0x1000ull * k, &USER_ON, &p),
                         APF_FAULT_ASYNC);
    }
    for (uint32_t k = 0; k < 16; k++) {
        uint32_t v = k % 2;
        ck_assert_int_eq(apf_host_complete(x.h, v, fake_nth(x.f, FAKE_NP, v, k / 2)->value, 0),
                         0);
    }
    struct apf_host_s390_cpu off = {.psw_mask = PSTATE, .cr0 = CR0};
    apf_host_s390_before_entry(x.fe, 0, &off, &p);
    uint32_t taken = 0;
    while (apf_host_s390_before_entry(x.fe, 1, &USER_ON, &p) == 1)
        taken++;
    ck_assert_uint_eq(taken, 16);
    linux_cancel_block(&x, 0);
    ck_assert_uint_eq(diag_ok(&x, 0), 0); /* vCPU 0's two in flight are dropped */
    ck_assert_int_eq(apf_host_complete(x.h, 0, fake_nth(x.f, FAKE_NP, 0, 8)->value, 0), 0);
    ck_assert_int_eq(apf_host_complete(x.h, 0, fake_nth(x.f, FAKE_NP, 0, 9)->value, 0), 0);
    ck_assert_int_eq(apf_host_complete(x.h, 1, fake_nth(x.f, FAKE_NP, 1, 8)->value, 0), 0);
    ck_assert_int_eq(apf_host_complete(x.h, 1, fake_nth(x.f, FAKE_NP, 1, 9)->value, 0), 0);
    apf_host_s390_before_entry(x.fe, 0, &USER_ON, &p);
    while (apf_host_s390_before_entry(x.fe, 1, &USER_ON, &p) == 1)
        taken++;
    ck_assert_uint_eq(taken, 18);
    init_vcpu(&x, 0);
    ck_assert_int_eq(t.bad, 0);
    ck_assert_msg(apf_trace_checker_finish(t.c) == 0, "%s", apf_trace_checker_error(t.c));
    ck_assert_uint_eq(t.transports, 3);
    ck_assert_uint_eq(apf_trace_checker_window(t.c, 0), 0);
    ck_assert_uint_gt(t.readies, 0);
    fini(&x);
    free(mem);
}
END_TEST

static Suite *s390_suite(void)
{
    Suite *s = suite_create("s390");
    TCase *d = tcase_create("diag258");
    tcase_add_test(d, test_linux_init_establishes_and_second_init_returns_8);
    tcase_add_test(d, test_linux_cancel_returns_0_then_4);
    tcase_add_test(d, test_block_across_a_prefix_boundary_is_read_piece_by_piece);
    tcase_add_test(d, test_longer_block_is_accepted);
    tcase_add_loop_test(d, test_malformed_block_exact_error_and_nothing_changes, 0,
                        (int)(sizeof(bad_blocks) / sizeof(bad_blocks[0])));
    tcase_add_test(d, test_unknown_vcpu_and_null);
    suite_add_tcase(s, d);
    TCase *g = tcase_create("gate");
    tcase_add_test(g, test_fault_reads_task_token_big_endian_at_fault_time);
    tcase_add_loop_test(g, test_gate_masks_ext_pending_subclass, 0,
                        (int)(2 * sizeof(gate_cases) / sizeof(gate_cases[0])));
    tcase_add_test(g, test_unreadable_token_falls_back);
    suite_add_tcase(s, g);
    TCase *f = tcase_create("floating");
    tcase_add_test(f, test_completion_floats_to_whichever_vcpu_can_take_it);
    tcase_add_test(f, test_burst_of_64_in_completion_order_no_ack);
    tcase_add_test(f, test_cancel_drops_pending_completions_of_that_vcpu_only);
    suite_add_tcase(s, f);
    TCase *m = tcase_create("migration");
    tcase_add_test(m, test_migration_moves_token_address_and_masks);
    tcase_add_test(m, test_restoring_invalid_token_drops_pending_completions);
    tcase_add_test(m, test_bad_restore_changes_nothing);
    tcase_add_test(m, test_engine_restore_or_enable_cannot_establish_without_the_masks);
    suite_add_tcase(s, m);
    TCase *t = tcase_create("trace");
    tcase_add_test(t, test_trace_of_a_run_is_consistent_with_window_0);
    suite_add_tcase(s, t);
    return s;
}

APF_CHECK_MAIN(s390_suite)
