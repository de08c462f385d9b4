/* SPDX-License-Identifier: MIT */
/*
 * The xen-hvm guest backend: over a recording hypercall hook (exact hypercalls and
 * arguments, every value Xen returns checked), over the real host frontend, and the native
 * x86-64 `call hypercall_page + nr * 32` hook against a hypercall page of recording stubs.
 */
#define _DEFAULT_SOURCE
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <sys/mman.h>
#endif

#include "apf/guest_xen.h"
#include "apf/host_xen.h"
#include "apf_check.h"

static _Alignas(4096) unsigned char chanmem[2 * 4096];
#define CHAN ((void *)chanmem)
#define CHAN_AREA ((struct apf_shared_area *)(void *)chanmem)
#define CHAN_RING ((struct apf_ring *)(void *)(chanmem + 4096))

/* ---- a recording Xen --------------------------------------------------------------------- */

struct fxen {
    uint32_t features;       /* XENVER_get_features submap 0 */
    int64_t version_ret;     /* xen_version's result */
    int64_t reg_ret;         /* vcpu_op REGISTER_APF's result */
    struct apf_xen_vcpu_apf out; /* OUT fields written on a 0 registration */
    int64_t bind_ret;
    int64_t upcall_ret;
    struct {
        uint32_t nr, cpu;
        uint64_t a0, a1;
        struct apf_xen_vcpu_apf reg; /* copy of the vcpu_op argument */
        struct apf_xen_evtchn_bind_virq bind;
        struct apf_xen_upcall_vector up;
    } c[16];
    int n;
};

static int64_t fxen_call(void *ctx, uint32_t cpu, uint32_t nr, const uint64_t a[5])
{
    struct fxen *f = ctx;
    ck_assert_int_lt(f->n, 16);
    ck_assert_uint_eq(a[3], 0);
    ck_assert_uint_eq(a[4], 0);
    int i = f->n++;
    f->c[i].nr = nr;
    f->c[i].cpu = cpu;
    f->c[i].a0 = a[0];
    f->c[i].a1 = a[1];
    switch (nr) {
    case APF_XEN_HC_XEN_VERSION: {
        struct apf_xen_feature_info *fi = (void *)(uintptr_t)a[1];
        ck_assert_uint_eq(a[0], APF_XEN_XENVER_GET_FEATURES);
        ck_assert_uint_eq(fi->submap_idx, 0);
        if (f->version_ret == 0)
            fi->submap = f->features;
        return f->version_ret;
    }
    case APF_XEN_HC_VCPU_OP: {
        struct apf_xen_vcpu_apf *r = (void *)(uintptr_t)a[2];
        f->c[i].reg = *r;
        if (r->area_gpa != APF_XEN_UNREGISTER && f->reg_ret == 0) {
            r->version = f->out.version;
            r->ring_entries = f->out.ring_entries ? f->out.ring_entries : r->ring_entries;
            r->slots = f->out.slots;
        }
        return r->area_gpa == APF_XEN_UNREGISTER ? 0 : f->reg_ret;
    }
    case APF_XEN_HC_EVENT_CHANNEL_OP: {
        struct apf_xen_evtchn_bind_virq *b = (void *)(uintptr_t)a[1];
        f->c[i].bind = *b;
        if (f->bind_ret == 0)
            b->port = 40 + cpu;
        return f->bind_ret;
    }
    case APF_XEN_HC_HVM_OP:
        f->c[i].up = *(struct apf_xen_upcall_vector *)(uintptr_t)a[1];
        return f->upcall_ret;
    default:
        return -(int64_t)APF_XEN_ENOSYS;
    }
}

static const struct apf_xen_arch_ops fxen_ops = {fxen_call};

static void fxen_init(struct fxen *f)
{
    memset(f, 0, sizeof(*f));
    f->features = (1u << APF_XEN_FEAT_APF) | 1u;
    f->out.version = APF_PROTO_VERSION;
    f->out.slots = 64;
}

START_TEST(test_xen_probe_discovers_the_feature)
{
    struct fxen f;
    fxen_init(&f);
    struct apf_guest_xen b;
    apf_guest_xen_init(&b, &fxen_ops, &f);
    ck_assert_uint_eq(b.unreg.area_gpa, APF_XEN_UNREGISTER);
    struct apf_guest_backend_info info;
    ck_assert_int_eq(apf_guest_backend_xen.probe(&b, &info), 0);
    ck_assert_int_eq(f.n, 1);
    ck_assert_uint_eq(f.c[0].nr, APF_XEN_HC_XEN_VERSION);
    ck_assert_uint_eq(info.features, APF_FEATURE_RING);
    ck_assert_uint_eq(info.irq, 0);
    f.features = 1u << (APF_XEN_FEAT_APF + 1); /* a neighbour bit only */
    ck_assert_int_eq(apf_guest_backend_xen.probe(&b, &info), APF_EOPNOTSUPP);
    f.version_ret = -(int64_t)APF_XEN_ENOSYS; /* not Xen, or no such hypercall */
    ck_assert_int_eq(apf_guest_backend_xen.probe(&b, &info), APF_ENODEV);
    b.ring_entries = 6;
    f.n = 0;
    ck_assert_int_eq(apf_guest_backend_xen.probe(&b, &info), APF_EINVAL);
    ck_assert_int_eq(f.n, 0);
    ck_assert_int_eq(apf_guest_backend_xen.vector_check(&b, 0x10), 0);
    ck_assert_int_eq(apf_guest_backend_xen.vector_check(&b, 0x0f), APF_EINVAL);
    ck_assert_int_eq(apf_guest_backend_xen.vector_check(&b, 0x100), APF_EINVAL);
    size_t align;
    ck_assert_uint_eq(apf_guest_backend_xen.chan_size(&b, &align), 8192);
    ck_assert_uint_eq(align, 4096);
}
END_TEST

START_TEST(test_xen_enable_sequence_and_arguments)
{
    struct fxen f;
    fxen_init(&f);
    struct apf_guest_xen b;
    apf_guest_xen_init(&b, &fxen_ops, &f);
    b.ring_entries = 32;
    memset(chanmem, 0, sizeof(chanmem));
    uint64_t pa = 0xabc000ull;
    ck_assert_int_eq(apf_guest_backend_xen.enable(&b, 2, CHAN, pa, 0xf3, APF_EN_SEND_ALWAYS), 0);
    ck_assert_int_eq(f.n, 3);
    /* 1. upcall vector */
    ck_assert_uint_eq(f.c[0].nr, APF_XEN_HC_HVM_OP);
    ck_assert_uint_eq(f.c[0].a0, APF_XEN_HVMOP_SET_EVTCHN_UPCALL_VECTOR);
    ck_assert_uint_eq(f.c[0].up.vcpu, 2);
    ck_assert_uint_eq(f.c[0].up.vector, 0xf3);
    /* 2. vcpu_op(REGISTER_APF, 2, arg in the channel at 64) */
    ck_assert_uint_eq(f.c[1].nr, APF_XEN_HC_VCPU_OP);
    ck_assert_uint_eq(f.c[1].a0, APF_XEN_VCPUOP_REGISTER_APF);
    ck_assert_uint_eq(f.c[1].a1, 2);
    ck_assert_uint_eq(f.c[1].reg.area_gpa, pa);
    ck_assert_uint_eq(f.c[1].reg.ring_gpa, pa + 4096);
    ck_assert_uint_eq(f.c[1].reg.version, APF_PROTO_VERSION);
    ck_assert_uint_eq(f.c[1].reg.flags, APF_XEN_APF_SEND_ALWAYS);
    ck_assert_uint_eq(f.c[1].reg.ring_entries, 32);
    ck_assert_uint_eq(f.c[1].reg.slots, 0);
    /* 3. bind the VIRQ on this vCPU */
    ck_assert_uint_eq(f.c[2].nr, APF_XEN_HC_EVENT_CHANNEL_OP);
    ck_assert_uint_eq(f.c[2].a0, APF_XEN_EVTCHNOP_BIND_VIRQ);
    ck_assert_uint_eq(f.c[2].bind.virq, APF_XEN_VIRQ_APF);
    ck_assert_uint_eq(f.c[2].bind.vcpu, 2);
    ck_assert_uint_eq(b.slots, 64);
    ck_assert_uint_eq(CHAN_RING->event, 1);
    /* disable: vcpu_op with ~0 from the context's constant argument */
    f.n = 0;
    ck_assert_int_eq(apf_guest_backend_xen.disable(&b, 2), 0);
    ck_assert_int_eq(f.n, 1);
    ck_assert_uint_eq(f.c[0].a1, 2);
    ck_assert_uint_eq(f.c[0].reg.area_gpa, APF_XEN_UNREGISTER);
    /* enable again: the VIRQ is still bound (-EEXIST) - fine */
    f.n = 0;
    f.bind_ret = -17;
    ck_assert_int_eq(apf_guest_backend_xen.enable(&b, 2, CHAN, pa, 0xf3, 0), 0);
    ck_assert_int_eq(f.n, 3);
}
END_TEST

/* What Xen answers is checked: errors pass through, bad OUT fields unregister. */
START_TEST(test_xen_enable_checks_xen_answers)
{
    static const struct {
        int64_t upcall, reg, bind;
        uint32_t out_version, out_entries, out_slots;
        int err, calls, unregisters;
    } cases[] = {
        {-22, 0, 0, APF_PROTO_VERSION, 0, 64, APF_EINVAL, 1, 0},   /* upcall vector refused */
        {0, -16, 0, APF_PROTO_VERSION, 0, 64, APF_EBUSY, 2, 0},    /* already registered */
        {0, -1, 0, APF_PROTO_VERSION, 0, 64, APF_EPERM, 2, 0},     /* not RAM */
        {0, -11, 0, APF_PROTO_VERSION, 0, 64, APF_EAGAIN, 2, 0},   /* paged out */
        {0, 5, 0, APF_PROTO_VERSION, 0, 64, APF_EPROTO, 2, 0},     /* a positive result */
        {0, 0, 0, APF_PROTO_VERSION_PACK(2, 0, 0), 0, 64, APF_EPROTO, 3, 1}, /* major 2 */
        {0, 0, 0, APF_PROTO_VERSION, 64, 64, APF_EPROTO, 3, 1},   /* other ring size */
        {0, 0, 0, APF_PROTO_VERSION, 0, 0, APF_EPROTO, 3, 1},      /* no slots */
        {0, 0, 0, APF_PROTO_VERSION, 0, 5000, APF_EPROTO, 3, 1},   /* too many */
        {0, 0, -28, APF_PROTO_VERSION, 0, 64, APF_ENOSPC, 4, 1},   /* no free port */
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct fxen f;
        fxen_init(&f);
        f.upcall_ret = cases[k].upcall;
        f.reg_ret = cases[k].reg;
        f.bind_ret = cases[k].bind;
        f.out.version = cases[k].out_version;
        f.out.ring_entries = cases[k].out_entries;
        f.out.slots = cases[k].out_slots;
        struct apf_guest_xen b;
        apf_guest_xen_init(&b, &fxen_ops, &f);
        b.ring_entries = 16;
        memset(chanmem, 0, sizeof(chanmem));
        ck_assert_msg(apf_guest_backend_xen.enable(&b, 0, CHAN, 0x10000, 0x40, 0) ==
                          cases[k].err,
                      "case %zu", k);
        ck_assert_msg(f.n == cases[k].calls, "case %zu: %d calls", k, f.n);
        int unreg = 0;
        for (int i = 0; i < f.n; i++)
            unreg += f.c[i].nr == APF_XEN_HC_VCPU_OP &&
                     f.c[i].reg.area_gpa == APF_XEN_UNREGISTER;
        ck_assert_msg(unreg == cases[k].unregisters, "case %zu: %d unregisters", k, unreg);
    }
}
END_TEST

START_TEST(test_xen_not_present_is_cr2_and_area_must_agree)
{
    struct fxen f;
    fxen_init(&f);
    struct apf_guest_xen b;
    apf_guest_xen_init(&b, &fxen_ops, &f);
    memset(chanmem, 0, sizeof(chanmem));
    struct apf_guest_chan_event ev;
    ck_assert_int_eq(apf_guest_backend_xen.take_not_present(&b, 0, CHAN, 0x7000, &ev),
                     APF_GUEST_NP_NONE);
    CHAN_AREA->flags = APF_REASON_NOT_PRESENT;
    CHAN_AREA->token = 0x7000;
    ck_assert_int_eq(apf_guest_backend_xen.take_not_present(&b, 0, CHAN, 0x7000, &ev),
                     APF_GUEST_NP_EVENT);
    ck_assert_uint_eq(ev.token, 0x7000);
    ck_assert_uint_eq(CHAN_AREA->flags, 0);
    CHAN_AREA->flags = APF_REASON_NOT_PRESENT;
    CHAN_AREA->token = 0x8000;
    ck_assert_int_eq(apf_guest_backend_xen.take_not_present(&b, 0, CHAN, 0x7000, &ev),
                     APF_GUEST_NP_BAD);
    ck_assert_uint_eq(ev.value, 0x8000);
    CHAN_AREA->flags = APF_REASON_READY; /* no such thing on this wire */
    ck_assert_int_eq(apf_guest_backend_xen.take_not_present(&b, 0, CHAN, 0x7000, &ev),
                     APF_GUEST_NP_BAD);
    ck_assert_uint_eq(ev.value, APF_REASON_READY);
    ck_assert_uint_eq(CHAN_AREA->flags, 0);
}
END_TEST

/* ---- against the real frontend ----------------------------------------------------------- */

static int mem_read(void *ctx, uint64_t gpa, void *buf, uint32_t len)
{
    (void)ctx;
    if (gpa < (uintptr_t)chanmem || gpa + len > (uintptr_t)chanmem + sizeof(chanmem))
        return APF_EFAULT;
    memcpy(buf, (void *)(uintptr_t)gpa, len);
    return 0;
}

static int mem_write(void *ctx, uint64_t gpa, const void *buf, uint32_t len)
{
    (void)ctx;
    if (gpa < (uintptr_t)chanmem || gpa + len > (uintptr_t)chanmem + sizeof(chanmem))
        return APF_EFAULT;
    memcpy((void *)(uintptr_t)gpa, buf, len);
    return 0;
}

static uint32_t np_tok, virq, submitted;
static void h_np(void *ctx, uint32_t vcpu, uint32_t token)
{
    (void)ctx, (void)vcpu;
    np_tok = token;
}
static void h_ready(void *ctx, uint32_t vcpu, uint32_t vector)
{
    (void)ctx, (void)vcpu;
    virq = vector;
}
static void h_kick(void *ctx, uint32_t vcpu)
{
    (void)ctx, (void)vcpu;
}
static void h_submit(void *ctx, uint32_t vcpu, uint32_t token, uint64_t gpa)
{
    (void)ctx, (void)vcpu, (void)gpa;
    submitted = token;
}

/* A "Xen" whose APF sub-op is the real frontend and the rest trivially succeeds. */
static int64_t real_call(void *ctx, uint32_t cpu, uint32_t nr, const uint64_t a[5])
{
    int64_t ret;
    if (apf_host_xen_hypercall(ctx, cpu, nr, a, &ret) == 0)
        return ret;
    if (nr == APF_XEN_HC_XEN_VERSION) {
        struct apf_xen_feature_info *fi = (void *)(uintptr_t)a[1];
        fi->submap = apf_host_xen_features(fi->submap_idx);
    }
    return 0;
}
static const struct apf_xen_arch_ops real_ops = {real_call};

START_TEST(test_xen_backend_against_real_frontend)
{
    static const struct apf_host_ops ops = {.submit = h_submit, .inject_not_present = h_np,
                                            .inject_ready = h_ready, .kick = h_kick,
                                            .read_guest = mem_read, .write_guest = mem_write};
    struct apf_host_config hc = {.n_vcpus = 1, .transport = &apf_host_transport_xen, .ops = &ops};
    struct apf_host *h;
    ck_assert_int_eq(apf_host_create(&hc, &h), 0);
    struct apf_host_xen *fe;
    ck_assert_int_eq(apf_host_xen_create(h, NULL, &fe), 0);
    struct apf_guest_xen b;
    apf_guest_xen_init(&b, &real_ops, fe);
    b.ring_entries = 4;
    struct apf_guest_backend_info info;
    ck_assert_int_eq(apf_guest_backend_xen.probe(&b, &info), 0);
    memset(chanmem, 0, sizeof(chanmem));
    ck_assert_int_eq(apf_guest_backend_xen.enable(&b, 0, CHAN, (uintptr_t)chanmem, 0xf3, 0), 0);
    ck_assert_uint_eq(b.slots, 64);
    ck_assert_int_eq(apf_host_vcpu_enabled(h, 0), 1);
    ck_assert_uint_eq(CHAN_RING->size, 4);
    ck_assert_int_eq(apf_host_vcpu_before_entry(h, 0, APF_GS_IRQCHIP_ON), 1);
    ck_assert_uint_eq(virq, APF_XEN_VIRQ_APF);
    struct apf_guest_chan_event ev;
    ck_assert_int_eq(apf_guest_backend_xen.ready_peek(&b, 0, CHAN, &ev), APF_GUEST_READY_TOKEN);
    ck_assert_uint_eq(ev.token, APF_TOKEN_WAKE_ALL);
    apf_guest_backend_xen.ready_release(&b, 0, CHAN);
    ck_assert_int_eq(apf_guest_backend_xen.ready_finish(&b, 0, CHAN), 0);
    ck_assert_int_eq(apf_host_vcpu_fault(h, 0, 0x9000, APF_GS_USER | APF_GS_IRQ_ON |
                                                          APF_GS_PAGING | APF_GS_IRQCHIP_ON),
                     APF_FAULT_ASYNC);
    ck_assert_int_eq(apf_guest_backend_xen.take_not_present(&b, 0, CHAN, np_tok, &ev),
                     APF_GUEST_NP_EVENT);
    ck_assert_uint_eq(ev.token, submitted);
    ck_assert_int_eq(apf_host_complete(h, 0, submitted, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(h, 0, APF_GS_IRQCHIP_ON), 1);
    ck_assert_int_eq(apf_guest_backend_xen.ready_peek(&b, 0, CHAN, &ev), APF_GUEST_READY_TOKEN);
    ck_assert_uint_eq(ev.token, submitted);
    apf_guest_backend_xen.ready_release(&b, 0, CHAN);
    ck_assert_int_eq(apf_guest_backend_xen.ready_finish(&b, 0, CHAN), 0);
    /* a second registration while registered: -EBUSY reaches the guest as APF_EBUSY */
    ck_assert_int_eq(apf_guest_backend_xen.enable(&b, 0, CHAN, (uintptr_t)chanmem, 0xf3, 0),
                     APF_EBUSY);
    /* disable: the context's argument must be readable by "Xen": here it is not guest RAM
     * of this test's accessor, so the frontend answers -EFAULT and nothing changes */
    ck_assert_int_eq(apf_guest_backend_xen.disable(&b, 0), APF_EFAULT);
    ck_assert_int_eq(apf_host_vcpu_enabled(h, 0), 1);
    apf_host_xen_destroy(fe);
    apf_host_destroy(h);
}
END_TEST

#if defined(__x86_64__)
/* The native hook against a hypercall page of recording stubs: each 32-byte stub stores
 * rdi, rsi, rdx, r10, r8 into a buffer at page + 0xf00 and returns its own number. */
START_TEST(test_xen_native_x86_64_hypercall_page_convention)
{
    unsigned char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return; /* W^X policy: nothing to run the stubs in */
    for (uint32_t nr = 0; nr < 64; nr++) {
        unsigned char *s = page + nr * APF_XEN_HYPERCALL_STUB_SIZE;
        int32_t rel = (int32_t)((page + 0xf00) - (s + 7));
        unsigned char code[32] = {0x4c, 0x8d, 0x1d, 0, 0, 0, 0, /* lea buf(%rip), %r11 */
                                  0x49, 0x89, 0x3b,             /* mov %rdi, (%r11) */
                                  0x49, 0x89, 0x73, 0x08,       /* mov %rsi, 8(%r11) */
                                  0x49, 0x89, 0x53, 0x10,       /* mov %rdx, 16(%r11) */
                                  0x4d, 0x89, 0x53, 0x18,       /* mov %r10, 24(%r11) */
                                  0x4d, 0x89, 0x43, 0x20,       /* mov %r8, 32(%r11) */
                                  0xb8, 0, 0, 0, 0,             /* mov $nr, %eax */
                                  0xc3};                        /* ret */
        memcpy(code + 3, &rel, 4);
        memcpy(code + 27, &nr, 4);
        memcpy(s, code, sizeof(code));
    }
    uint64_t args[5] = {0x1111111111111111ull, 0x2222, 0x3333, 0x4444444444ull, 0x55};
    int64_t r = apf_xen_arch_native.hypercall(page, 0, APF_XEN_HC_VCPU_OP, args);
    ck_assert_int_eq(r, APF_XEN_HC_VCPU_OP); /* the right stub */
    uint64_t got[5];
    memcpy(got, page + 0xf00, sizeof(got));
    for (int k = 0; k < 5; k++)
        ck_assert_uint_eq(got[k], args[k]);
    r = apf_xen_arch_native.hypercall(page, 0, APF_XEN_HC_EVENT_CHANNEL_OP, args);
    ck_assert_int_eq(r, APF_XEN_HC_EVENT_CHANNEL_OP);
    munmap(page, 4096);
}
END_TEST
#elif defined(__i386__)
/* i686: each stub stores ebx, ecx, edx, esi, edi at page + 0xf00 and returns its number. */
START_TEST(test_xen_native_i686_hypercall_page_convention)
{
    unsigned char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return;
    uint32_t buf = (uint32_t)(uintptr_t)(page + 0xf00);
    for (uint32_t nr = 0; nr < 64; nr++) {
        unsigned char code[25] = {0xb8, 0, 0, 0, 0,       /* mov $buf, %eax */
                                  0x89, 0x18,             /* mov %ebx, (%eax) */
                                  0x89, 0x48, 0x04,       /* mov %ecx, 4(%eax) */
                                  0x89, 0x50, 0x08,       /* mov %edx, 8(%eax) */
                                  0x89, 0x70, 0x0c,       /* mov %esi, 12(%eax) */
                                  0x89, 0x78, 0x10,       /* mov %edi, 16(%eax) */
                                  0xb8, 0, 0, 0, 0,       /* mov $nr, %eax */
                                  0xc3};                  /* ret */
        memcpy(code + 1, &buf, 4);
        memcpy(code + 20, &nr, 4);
        memcpy(page + nr * APF_XEN_HYPERCALL_STUB_SIZE, code, sizeof(code));
    }
    uint64_t args[5] = {0x11111111u, 0x2222, 0x3333, 0x44444444u, 0x55};
    int64_t r = apf_xen_arch_native.hypercall(page, 0, APF_XEN_HC_VCPU_OP, args);
    ck_assert_int_eq(r, APF_XEN_HC_VCPU_OP);
    uint32_t got[5];
    memcpy(got, page + 0xf00, sizeof(got));
    for (int k = 0; k < 5; k++)
        ck_assert_uint_eq(got[k], args[k]);
    munmap(page, 4096);
}
END_TEST
#endif

static Suite *xen_suite(void)
{
    Suite *s = suite_create("guest_xen");
    TCase *tc = tcase_create("xen");
    tcase_add_test(tc, test_xen_probe_discovers_the_feature);
    tcase_add_test(tc, test_xen_enable_sequence_and_arguments);
    tcase_add_test(tc, test_xen_enable_checks_xen_answers);
    tcase_add_test(tc, test_xen_not_present_is_cr2_and_area_must_agree);
    tcase_add_test(tc, test_xen_backend_against_real_frontend);
#if defined(__x86_64__)
    tcase_add_test(tc, test_xen_native_x86_64_hypercall_page_convention);
#elif defined(__i386__)
    tcase_add_test(tc, test_xen_native_i686_hypercall_page_convention);
#endif
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(xen_suite)
