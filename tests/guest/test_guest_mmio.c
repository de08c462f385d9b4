/* SPDX-License-Identifier: MIT */
/*
 * The apf-mmio guest backend: over a recording register window (exact register accesses,
 * every device value range-checked, the channel decoded), and over the real host frontend
 * (libapf-host's apf_host_mmio_access), byte for byte.
 */
#include <string.h>

#include "apf/guest_mmio.h"
#include "apf/host_mmio.h"
#include "apf_check.h"

static _Alignas(4096) unsigned char chanmem[2 * 4096];
#define CHAN ((void *)chanmem)
#define CHAN_AREA ((struct apf_shared_area *)(void *)chanmem)
#define CHAN_RING ((struct apf_ring *)(void *)(chanmem + 4096))

/* ---- a recording window ---------------------------------------------------------------- */

struct fwin {
    uint32_t reg[APF_MMIO_WINDOW_SIZE / 4]; /* what reads return */
    uint32_t status_after_commit;
    struct {
        uint32_t off, value, cpu;
    } w[16];
    int nw;
    int nr;
};

static uint32_t fw_read(void *ctx, uint32_t cpu, uint32_t off)
{
    struct fwin *f = ctx;
    (void)cpu;
    ck_assert_uint_eq(off & 3u, 0);
    ck_assert_uint_lt(off, APF_MMIO_WINDOW_SIZE);
    f->nr++;
    return f->reg[off / 4];
}

static void fw_write(void *ctx, uint32_t cpu, uint32_t off, uint32_t v)
{
    struct fwin *f = ctx;
    ck_assert_int_lt(f->nw, 16);
    f->w[f->nw].off = off;
    f->w[f->nw].value = v;
    f->w[f->nw].cpu = cpu;
    f->nw++;
    if (off == APF_MMIO_REG_CONTROL)
        f->reg[APF_MMIO_REG_STATUS / 4] = f->status_after_commit;
}

static const struct apf_mmio_io_ops fw_ops = {fw_read, fw_write};

static void fw_init(struct fwin *f)
{
    memset(f, 0, sizeof(*f));
    f->reg[APF_MMIO_REG_MAGIC / 4] = APF_MMIO_MAGIC;
    f->reg[APF_MMIO_REG_VERSION / 4] = APF_PROTO_VERSION;
    f->reg[APF_MMIO_REG_FEATURES / 4] = APF_FEATURE_RING;
    f->reg[APF_MMIO_REG_SLOTS / 4] = 64;
    f->reg[APF_MMIO_REG_IRQ / 4] = 27;
    f->reg[APF_MMIO_REG_NP_KIND / 4] = APF_MMIO_NP_ARM64_SEA;
}

START_TEST(test_mmio_probe_reads_and_checks_device_values)
{
    struct fwin f;
    fw_init(&f);
    struct apf_guest_mmio b;
    apf_guest_mmio_init(&b, &fw_ops, &f);
    ck_assert_uint_eq(b.ring_entries, APF_RING_DEFAULT_ENTRIES);
    struct apf_guest_backend_info info;
    memset(&info, 0xff, sizeof(info));
    ck_assert_int_eq(apf_guest_backend_mmio.probe(&b, &info), 0);
    ck_assert_uint_eq(info.version, APF_PROTO_VERSION);
    ck_assert_uint_eq(info.slots, 64);
    ck_assert_uint_eq(info.irq, 27);
    ck_assert_uint_eq(info.sdei_event, 0);
    ck_assert_uint_eq(info.features, APF_FEATURE_RING);
    ck_assert_uint_eq(b.np_kind, APF_MMIO_NP_ARM64_SEA);
    ck_assert_uint_eq(apf_guest_backend_mmio.capabilities(&b),
                      APF_BACKEND_CAP_HOST_VECTOR | APF_BACKEND_CAP_SEND_ALWAYS |
                          APF_BACKEND_CAP_TOKEN_IN_AREA);
    ck_assert_int_eq(f.nw, 0); /* probing writes nothing */
    size_t align = 0;
    ck_assert_uint_eq(apf_guest_backend_mmio.chan_size(&b, &align), 8192);
    ck_assert_uint_eq(align, 4096);
    ck_assert_int_eq(apf_guest_backend_mmio.vector_check(&b, 27), 0);
    ck_assert_int_eq(apf_guest_backend_mmio.vector_check(&b, 0), APF_EPROTO);
    ck_assert_int_eq(apf_guest_backend_mmio.vector_check(&b, 1024), APF_EPROTO);
}
END_TEST

START_TEST(test_mmio_probe_rejects_bad_device_answers)
{
    static const struct {
        uint32_t off, value;
        int err;
    } bad[] = {
        {APF_MMIO_REG_MAGIC, 0, APF_ENODEV},
        {APF_MMIO_REG_MAGIC, 0xffffffffu, APF_ENODEV}, /* nothing decodes the address */
        {APF_MMIO_REG_VERSION, APF_PROTO_VERSION_PACK(2, 0, 0), APF_EPROTO},
        {APF_MMIO_REG_VERSION, 0x01000000u, APF_EPROTO},
        {APF_MMIO_REG_FEATURES, 0, APF_EOPNOTSUPP},
        {APF_MMIO_REG_IRQ, 0, APF_EOPNOTSUPP},
        {APF_MMIO_REG_IRQ, APF_MMIO_IRQ_MAX + 1, APF_EPROTO},
        {APF_MMIO_REG_SLOTS, 0, APF_EPROTO},
        {APF_MMIO_REG_SLOTS, 4097, APF_EPROTO},
        {APF_MMIO_REG_NP_KIND, 0, APF_EPROTO},
        {APF_MMIO_REG_NP_KIND, 4, APF_EPROTO},
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        struct fwin f;
        fw_init(&f);
        f.reg[bad[k].off / 4] = bad[k].value;
        struct apf_guest_mmio b;
        apf_guest_mmio_init(&b, &fw_ops, &f);
        struct apf_guest_backend_info info;
        ck_assert_msg(apf_guest_backend_mmio.probe(&b, &info) == bad[k].err, "case %zu", k);
        ck_assert_uint_eq(b.np_kind, 0);
        ck_assert_int_eq(f.nw, 0);
    }
    struct fwin f;
    fw_init(&f);
    struct apf_guest_mmio b;
    apf_guest_mmio_init(&b, &fw_ops, &f);
    b.ring_entries = 3;
    struct apf_guest_backend_info info;
    ck_assert_int_eq(apf_guest_backend_mmio.probe(&b, &info), APF_EINVAL);
    ck_assert_int_eq(f.nr, 0); /* misconfigured: the device is not even read */
}
END_TEST

/* enable: stage area, stage ring (page | log2), commit, read STATUS; exact order. */
START_TEST(test_mmio_enable_stages_then_commits)
{
    struct fwin f;
    fw_init(&f);
    struct apf_guest_mmio b;
    apf_guest_mmio_init(&b, &fw_ops, &f);
    b.ring_entries = 64;
    struct apf_guest_backend_info info;
    ck_assert_int_eq(apf_guest_backend_mmio.probe(&b, &info), 0);
    memset(chanmem, 0, sizeof(chanmem));
    uint64_t pa = 0x123456789000ull;
    ck_assert_int_eq(apf_guest_backend_mmio.enable(&b, 3, CHAN, pa, 27, APF_EN_SEND_ALWAYS), 0);
    ck_assert_int_eq(f.nw, 5);
    static const uint32_t offs[5] = {APF_MMIO_REG_AREA_LO, APF_MMIO_REG_AREA_HI,
                                     APF_MMIO_REG_RING_LO, APF_MMIO_REG_RING_HI,
                                     APF_MMIO_REG_CONTROL};
    const uint32_t vals[5] = {0x56789000u, 0x1234u, 0x5678a000u | 6u, 0x1234u,
                              APF_EN_ENABLED | APF_EN_SEND_ALWAYS};
    for (int k = 0; k < 5; k++) {
        ck_assert_uint_eq(f.w[k].off, offs[k]);
        ck_assert_uint_eq(f.w[k].value, vals[k]);
        ck_assert_uint_eq(f.w[k].cpu, 3);
    }
    ck_assert_uint_eq(CHAN_RING->cons, 0);
    ck_assert_uint_eq(CHAN_RING->event, 1);
    /* the device's STATUS maps to errors */
    static const struct {
        uint32_t status;
        int err;
    } st[] = {{APF_MMIO_STATUS_INVALID, APF_EINVAL}, {APF_MMIO_STATUS_NOT_RAM, APF_EFAULT},
              {99, APF_EPROTO}};
    for (int k = 0; k < 3; k++) {
        f.status_after_commit = st[k].status;
        f.nw = 0;
        ck_assert_int_eq(apf_guest_backend_mmio.enable(&b, 0, CHAN, pa, 27, 0), st[k].err);
    }
    /* refused before any access: misaligned channel, unknown flags */
    f.nw = 0;
    ck_assert_int_eq(apf_guest_backend_mmio.enable(&b, 0, CHAN, pa + 64, 27, 0), APF_EINVAL);
    ck_assert_int_eq(apf_guest_backend_mmio.enable(&b, 0, CHAN, pa, 27, APF_EN_ENABLED | 4u),
                     APF_EINVAL);
    ck_assert_int_eq(f.nw, 0);
    f.status_after_commit = 0;
    ck_assert_int_eq(apf_guest_backend_mmio.disable(&b, 2), 0);
    ck_assert_int_eq(f.nw, 1);
    ck_assert_uint_eq(f.w[0].off, APF_MMIO_REG_CONTROL);
    ck_assert_uint_eq(f.w[0].value, 0);
    ck_assert_uint_eq(f.w[0].cpu, 2);
}
END_TEST

/* "Not present": reason and token in the area; x86 kind: CR2 must agree with the area. */
START_TEST(test_mmio_not_present_decode)
{
    for (uint32_t kind = APF_MMIO_NP_X86_PF; kind <= APF_MMIO_NP_RISCV_ACCESS_FAULT; kind++) {
        struct fwin f;
        fw_init(&f);
        f.reg[APF_MMIO_REG_NP_KIND / 4] = kind;
        struct apf_guest_mmio b;
        apf_guest_mmio_init(&b, &fw_ops, &f);
        struct apf_guest_backend_info info;
        ck_assert_int_eq(apf_guest_backend_mmio.probe(&b, &info), 0);
        memset(chanmem, 0, sizeof(chanmem));
        uint32_t hint = kind == APF_MMIO_NP_X86_PF ? 0x5001u : 0;
        struct apf_guest_chan_event ev;
        ck_assert_int_eq(apf_guest_backend_mmio.take_not_present(&b, 0, CHAN, hint, &ev),
                         APF_GUEST_NP_NONE); /* a genuine fault */
        CHAN_AREA->flags = APF_REASON_NOT_PRESENT;
        CHAN_AREA->token = 0x5001u;
        ck_assert_int_eq(apf_guest_backend_mmio.take_not_present(&b, 0, CHAN, hint, &ev),
                         APF_GUEST_NP_EVENT);
        ck_assert_uint_eq(ev.token, 0x5001u);
        ck_assert_uint_eq(CHAN_AREA->flags, 0);
        ck_assert_uint_eq(CHAN_AREA->token, 0);
        CHAN_AREA->flags = 7; /* unknown reason: cleared, reported */
        CHAN_AREA->token = 0x6001u;
        ck_assert_int_eq(apf_guest_backend_mmio.take_not_present(&b, 0, CHAN, hint, &ev),
                         APF_GUEST_NP_BAD);
        ck_assert_uint_eq(ev.value, 7);
        ck_assert_uint_eq(CHAN_AREA->flags, 0);
        if (kind == APF_MMIO_NP_X86_PF) {
            CHAN_AREA->flags = APF_REASON_NOT_PRESENT;
            CHAN_AREA->token = 0x7001u; /* the host wrote one token, CR2 says another */
            ck_assert_int_eq(apf_guest_backend_mmio.take_not_present(&b, 0, CHAN, 0x8001u, &ev),
                             APF_GUEST_NP_BAD);
            ck_assert_uint_eq(ev.value, 0x7001u);
            ck_assert_uint_eq(ev.token, 0);
        }
    }
}
END_TEST

/* ---- the backend against the real frontend ----------------------------------------------- */

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

static uint32_t last_np, n_ready, last_irq;
static void h_np(void *ctx, uint32_t vcpu, uint32_t token)
{
    (void)ctx, (void)vcpu;
    last_np = token;
}
static void h_ready(void *ctx, uint32_t vcpu, uint32_t vector)
{
    (void)ctx, (void)vcpu;
    n_ready++;
    last_irq = vector;
}
static void h_kick(void *ctx, uint32_t vcpu)
{
    (void)ctx, (void)vcpu;
}
static uint32_t submitted;
static void h_submit(void *ctx, uint32_t vcpu, uint32_t token, uint64_t gpa)
{
    (void)ctx, (void)vcpu, (void)gpa;
    submitted = token;
}

static uint32_t rw_read(void *ctx, uint32_t cpu, uint32_t off)
{
    uint32_t v = 0;
    ck_assert_int_eq(apf_host_mmio_access(ctx, cpu, off, 4, 0, &v), 0);
    return v;
}
static void rw_write(void *ctx, uint32_t cpu, uint32_t off, uint32_t v)
{
    ck_assert_int_eq(apf_host_mmio_access(ctx, cpu, off, 4, 1, &v), 0);
}
static const struct apf_mmio_io_ops real_ops = {rw_read, rw_write};

START_TEST(test_mmio_backend_against_real_frontend)
{
    static const struct apf_host_ops ops = {.submit = h_submit, .inject_not_present = h_np,
                                            .inject_ready = h_ready, .kick = h_kick,
                                            .read_guest = mem_read, .write_guest = mem_write};
    struct apf_host_config hc = {.n_vcpus = 1, .transport = &apf_host_transport_mmio,
                                 .ops = &ops};
    struct apf_host *h;
    ck_assert_int_eq(apf_host_create(&hc, &h), 0);
    struct apf_host_mmio *fe;
    struct apf_host_mmio_config mc = {.irq = 33, .np_kind = APF_MMIO_NP_RISCV_ACCESS_FAULT};
    ck_assert_int_eq(apf_host_mmio_create(h, &mc, &fe), 0);
    struct apf_guest_mmio b;
    apf_guest_mmio_init(&b, &real_ops, fe);
    b.ring_entries = 8;
    struct apf_guest_backend_info info;
    ck_assert_int_eq(apf_guest_backend_mmio.probe(&b, &info), 0);
    ck_assert_uint_eq(info.irq, 33);
    ck_assert_uint_eq(info.slots, 64);
    memset(chanmem, 0, sizeof(chanmem));
    uint64_t pa = (uintptr_t)chanmem;
    ck_assert_int_eq(apf_guest_backend_mmio.enable(&b, 0, CHAN, pa, 33, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(h, 0), 1);
    ck_assert_uint_eq(CHAN_RING->size, 8);
    /* the wake-all through the ring */
    ck_assert_int_eq(apf_host_vcpu_before_entry(h, 0, APF_GS_IRQCHIP_ON), 1);
    ck_assert_uint_eq(n_ready, 1);
    ck_assert_uint_eq(last_irq, 33);
    struct apf_guest_chan_event ev;
    ck_assert_int_eq(apf_guest_backend_mmio.ready_peek(&b, 0, CHAN, &ev), APF_GUEST_READY_TOKEN);
    ck_assert_uint_eq(ev.token, APF_TOKEN_WAKE_ALL);
    ck_assert_int_eq(apf_guest_backend_mmio.ready_release(&b, 0, CHAN), 1);
    ck_assert_int_eq(apf_guest_backend_mmio.ready_peek(&b, 0, CHAN, &ev), APF_GUEST_READY_EMPTY);
    ck_assert_int_eq(apf_guest_backend_mmio.ready_finish(&b, 0, CHAN), 0);
    /* a fault: the token reaches the guest through the area (riscv64 kind: no hint) */
    ck_assert_int_eq(apf_host_vcpu_fault(h, 0, 0x9000, APF_GS_USER | APF_GS_IRQ_ON |
                                                          APF_GS_IRQCHIP_ON),
                     APF_FAULT_ASYNC);
    ck_assert_int_eq(apf_guest_backend_mmio.take_not_present(&b, 0, CHAN, 0, &ev),
                     APF_GUEST_NP_EVENT);
    ck_assert_uint_eq(ev.token, last_np);
    ck_assert_uint_eq(ev.token, submitted);
    ck_assert_int_eq(apf_host_complete(h, 0, submitted, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_before_entry(h, 0, APF_GS_IRQCHIP_ON), 1);
    ck_assert_int_eq(apf_guest_backend_mmio.ready_peek(&b, 0, CHAN, &ev), APF_GUEST_READY_TOKEN);
    ck_assert_uint_eq(ev.token, submitted);
    ck_assert_int_eq(apf_guest_backend_mmio.ready_release(&b, 0, CHAN), 1);
    ck_assert_int_eq(apf_guest_backend_mmio.ready_finish(&b, 0, CHAN), 0);
    struct apf_host_vcpu_stats s;
    ck_assert_int_eq(apf_host_vcpu_stats(h, 0, &s), 0);
    ck_assert_uint_eq(s.acks, 1); /* the host reads the consumer index when it needs room */
    ck_assert_uint_eq(CHAN_RING->cons, 2); /* the ACK: the consumer index, no ACK call */
    ck_assert_uint_eq(CHAN_RING->event, 3);
    ck_assert_uint_eq(s.bad_guest_values, 0);
    ck_assert_int_eq(apf_guest_backend_mmio.disable(&b, 0), 0);
    ck_assert_int_eq(apf_host_vcpu_enabled(h, 0), 0);
    apf_host_mmio_destroy(fe);
    apf_host_destroy(h);
}
END_TEST

static Suite *mmio_suite(void)
{
    Suite *s = suite_create("guest_mmio");
    TCase *tc = tcase_create("mmio");
    tcase_add_test(tc, test_mmio_probe_reads_and_checks_device_values);
    tcase_add_test(tc, test_mmio_probe_rejects_bad_device_answers);
    tcase_add_test(tc, test_mmio_enable_stages_then_commits);
    tcase_add_test(tc, test_mmio_not_present_decode);
    tcase_add_test(tc, test_mmio_backend_against_real_frontend);
    suite_add_tcase(s, tc);
    return s;
}

APF_CHECK_MAIN(mmio_suite)
