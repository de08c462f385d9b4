/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the apf-mmio frontend - loads and stores of every register of the window at
 * every offset and width (misaligned, past the window, unknown vCPUs, NULL data), with
 * input-chosen values (staged area and ring halves, CONTROL commits), the VMM's get_state /
 * set_state / reset and create with a bad configuration - interleaved with the engine's
 * entry points and with the guest consuming (or corrupting) its area and ready ring.
 * Invariants: an access the window does not decode, a store to a read-only or reserved
 * register, a load, and a refused commit change nothing (frontend, engine, the other vCPU;
 * a refused commit only sets STATUS); every load returns what the registers hold; a
 * commit that obeys the wire rules is applied, one that does not is refused; the
 * registers and get_state agree with the engine after every step; an accepted set_state
 * reads back; the trace checker accepts every host event; no leak in either destroy order.
 */
#include "apf/host_mmio.h"
#include "host_env.h"

static const uint64_t area_lo[] = {0x1000, 0x1040, 0x1080,  0x1001, 0x1020, 0x8000,
                                   0x8fc0, 0xffc0, 0x10000, 0,      0x7fc0};
static const uint64_t ring_lo[] = {0x8000 | 1,  0x8000 | 3,  0x9000 | 9,  0x8000 | 10,
                                   0x8000,      0x8800 | 2,  0x1000 | 2,  0xf000 | 5,
                                   0x10000 | 1, 0x9000 | 31, 0x9000 | 32, 0x9000 | 4};
static const uint64_t hi[] = {0, 0, 0, 1, 0xffffffffu};
static const uint64_t controls[] = {
    APF_EN_ENABLED, APF_EN_ENABLED | APF_EN_SEND_ALWAYS, 0, APF_EN_SEND_ALWAYS, APF_EN_ENABLED | 4,
    0x80000001u};
static const uint64_t offsets[] = {
    APF_MMIO_WINDOW_SIZE, 0x1000, ~0ull, 1ull << 32 | 0x28, 0x2a, 0x29, 0x3f, 0x3d};
static const uint64_t widths[] = {1, 2, 8, 0, 3, 0xffffffffu};

static struct apf_host_mmio_config cfg;

static struct apf_host_mmio_state get(struct apf_host_mmio *fe, uint32_t v)
{
    struct apf_host_mmio_state st;
    FZ_ASSERT(apf_host_mmio_get_state(fe, v, &st) == 0);
    return st;
}

static void same(const struct apf_host_mmio_state *a, const struct apf_host_mmio_state *b,
                 const char *what)
{
    FZ_ASSERT(a->control == b->control && a->area == b->area && a->ring == b->ring &&
                  a->staged_area == b->staged_area && a->staged_ring == b->staged_ring &&
                  a->prod == b->prod && a->cons == b->cons && a->seq == b->seq &&
                  a->status == b->status,
              "%s changed the frontend state", what);
}

struct snap {
    struct apf_host_mmio_state fe[FZ_VCPUS];
    struct apf_host_vcpu_state h[FZ_VCPUS];
};

static void take(struct snap *s, struct fz_host *e, struct apf_host_mmio *fe)
{
    for (uint32_t w = 0; w < FZ_VCPUS; w++) {
        s->fe[w] = get(fe, w);
        s->h[w] = fz_save(e, w);
    }
}

/* Nothing changed, on any vCPU; `except` (a vCPU or FZ_VCPUS) may have changed. */
static void unchanged(const struct snap *a, struct fz_host *e, struct apf_host_mmio *fe,
                      uint32_t except, const char *what)
{
    struct snap b;
    take(&b, e, fe);
    for (uint32_t w = 0; w < FZ_VCPUS; w++)
        if (w != except) {
            same(&a->fe[w], &b.fe[w], what);
            fz_assert_same_state(&a->h[w], &b.h[w], what);
        }
}

static int in_ram(uint64_t gpa, uint64_t len)
{
    return gpa <= FZ_RAM && len <= FZ_RAM - gpa;
}

/* The wire's rules for what a commit (or a restore) turns on (proto_mmio.h), written from
 * the documentation, not from the code: 1 if they hold (*size: the ring's entries). */
static int commit_ok(uint64_t area, uint64_t ring, uint32_t *size)
{
    uint64_t log2 = ring & APF_RING_LOG2_MASK, page = ring & ~APF_RING_LOG2_MASK;
    if ((area & (APF_AREA_ALIGN - 1)) || page == 0 || log2 < 1 || log2 > 9)
        return 0;
    *size = 1u << log2;
    if (!in_ram(area, APF_AREA_SIZE) || !in_ram(page, APF_RING_PAGE_SIZE))
        return 0;
    return !(area + APF_AREA_SIZE > page && area < page + APF_RING_PAGE_SIZE);
}

/* The registers and get_state tell the engine's story. */
static void agrees(struct fz_host *e, struct apf_host_mmio *fe, uint32_t v)
{
    struct apf_host_mmio_state st = get(fe, v);
    struct apf_host_vcpu_state hs = fz_save(e, v);
    FZ_ASSERT(st.version == APF_PROTO_VERSION && st.seq == hs.seq &&
              st.status <= APF_MMIO_STATUS_NOT_RAM);
    FZ_ASSERT(st.control == (hs.enabled ? hs.flags : 0u), "control %#x, engine %s (%#x)",
              st.control, hs.enabled ? "on" : "off", hs.flags);
    uint32_t reg = 7;
    FZ_ASSERT(apf_host_mmio_access(fe, v, APF_MMIO_REG_CONTROL, 4, 0, &reg) == 0 &&
              reg == st.control);
    FZ_ASSERT(apf_host_mmio_access(fe, v, APF_MMIO_REG_IRQ, 4, 0, &reg) == 0 && reg == hs.vector);
    if (!hs.enabled) {
        FZ_ASSERT(st.area == 0 && st.ring == 0 && st.prod == 0 && st.cons == 0,
                  "off, but get_state has values");
        return;
    }
    uint32_t size = 0;
    FZ_ASSERT(st.area == hs.area_gpa, "area %#llx, engine %#llx", (unsigned long long)st.area,
              (unsigned long long)hs.area_gpa);
    FZ_ASSERT(commit_ok(st.area, st.ring, &size), "on with area %#llx ring %#llx",
              (unsigned long long)st.area, (unsigned long long)st.ring);
    /* A ring page the host cannot write (outside apf_host_ops' contract, ro_page) never
     * started: its indices are whatever the last ring left. */
    uint64_t page = st.ring & ~APF_RING_LOG2_MASK;
    FZ_ASSERT(st.prod - st.cons <= size || (e->ro_page && page >> 12 == e->ro_page),
              "prod %u cons %u of %u", st.prod, st.cons, size);
}

static void guest_consume(struct fz_host *e, struct apf_host_mmio *fe, uint32_t v, struct fz *f)
{
    struct apf_host_mmio_state st = get(fe, v);
    uint64_t page = st.ring & ~APF_RING_LOG2_MASK;
    uint8_t k = fz_u8(f);
    if (st.control && in_ram(page, APF_RING_PAGE_SIZE)) {
        uint8_t *ring = e->ram + page;
        uint32_t prod, cons;
        memcpy(&prod, ring + APF_RING_PROD_OFFSET, 4);
        memcpy(&cons, ring + APF_RING_CONS_OFFSET, 4);
        uint32_t avail = prod - cons, n = k % 8;
        cons += n < avail ? n : avail;
        memcpy(ring + APF_RING_CONS_OFFSET, &cons, 4);
        if (k & 8) {
            uint32_t event = cons + 1;
            memcpy(ring + APF_RING_EVENT_OFFSET, &event, 4);
        }
    }
    if ((k & 16) && st.control && in_ram(st.area, 8))
        memset(e->ram + st.area, 0, 8);
}

/* A load or store of the window by vCPU v (maybe unknown), checked against the wire. */
static void window_access(struct fz_host *e, struct apf_host_mmio *fe, uint32_t v, struct fz *f)
{
    uint8_t k = fz_u8(f);
    uint64_t off = k < 192 ? 4u * (k % 16u) : k < 224 ? fz_u8(f) : fz_val(f, offsets, 8);
    k = fz_u8(f);
    uint32_t len = k < 224 ? 4u : (uint32_t)widths[k % 6];
    int is_write = fz_u8(f) & 1;
    uint32_t val;
    switch (off) {
    case APF_MMIO_REG_AREA_LO:
        val = (uint32_t)fz_val(f, area_lo, 11);
        break;
    case APF_MMIO_REG_RING_LO:
        val = (uint32_t)fz_val(f, ring_lo, 12);
        break;
    case APF_MMIO_REG_AREA_HI:
    case APF_MMIO_REG_RING_HI:
        val = (uint32_t)fz_val(f, hi, 5);
        break;
    case APF_MMIO_REG_CONTROL:
        val = (uint32_t)fz_val(f, controls, 6);
        break;
    default:
        val = (uint32_t)fz_val(f, NULL, 0);
        break;
    }
    uint32_t data = val;
    int null_data = (fz_u8(f) & 63) == 0;
    if (v >= FZ_VCPUS) {
        FZ_ASSERT(apf_host_mmio_access(fe, v, off, len, is_write, &data) == APF_ENODEV &&
                  data == val);
        return;
    }
    struct snap before;
    take(&before, e, fe);
    const struct apf_host_mmio_state *b = &before.fe[v];
    int r = apf_host_mmio_access(fe, v, off, len, is_write, null_data ? NULL : &data);
    if (null_data || off >= APF_MMIO_WINDOW_SIZE || (off & 3) || len != 4) {
        FZ_ASSERT(r == APF_EINVAL, "undecoded access at %#llx len %u served: %d",
                  (unsigned long long)off, len, r);
        if (!null_data)
            FZ_ASSERT(is_write ? data == val : data == 0, "undecoded access returned %#x", data);
        unchanged(&before, e, fe, FZ_VCPUS, "an undecoded access");
        return;
    }
    FZ_ASSERT(r == 0, "access at %#llx: %d", (unsigned long long)off, r);
    if (!is_write) {
        uint32_t want = 0;
        switch (off) {
        case APF_MMIO_REG_MAGIC:
            want = APF_MMIO_MAGIC;
            break;
        case APF_MMIO_REG_VERSION:
            want = APF_PROTO_VERSION;
            break;
        case APF_MMIO_REG_FEATURES:
            want = APF_FEATURE_RING;
            break;
        case APF_MMIO_REG_SLOTS:
            want = apf_host_max_outstanding(e->h);
            break;
        case APF_MMIO_REG_IRQ:
            want = before.h[v].vector;
            break;
        case APF_MMIO_REG_NP_KIND:
            want = cfg.np_kind;
            break;
        case APF_MMIO_REG_AREA_LO:
            want = (uint32_t)b->staged_area;
            break;
        case APF_MMIO_REG_AREA_HI:
            want = (uint32_t)(b->staged_area >> 32);
            break;
        case APF_MMIO_REG_RING_LO:
            want = (uint32_t)b->staged_ring;
            break;
        case APF_MMIO_REG_RING_HI:
            want = (uint32_t)(b->staged_ring >> 32);
            break;
        case APF_MMIO_REG_CONTROL:
            want = b->control;
            break;
        case APF_MMIO_REG_STATUS:
            want = b->status;
            break;
        default:
            break; /* reserved: 0 */
        }
        FZ_ASSERT(data == want, "load of %#llx: %#x, want %#x", (unsigned long long)off, data,
                  want);
        unchanged(&before, e, fe, FZ_VCPUS, "a load");
        return;
    }
    struct apf_host_mmio_state after = get(fe, v), want = *b;
    switch (off) {
    case APF_MMIO_REG_AREA_LO:
        want.staged_area = (b->staged_area & ~0xffffffffull) | val;
        break;
    case APF_MMIO_REG_AREA_HI:
        want.staged_area = (b->staged_area & 0xffffffffu) | (uint64_t)val << 32;
        break;
    case APF_MMIO_REG_RING_LO:
        want.staged_ring = (b->staged_ring & ~0xffffffffull) | val;
        break;
    case APF_MMIO_REG_RING_HI:
        want.staged_ring = (b->staged_ring & 0xffffffffu) | (uint64_t)val << 32;
        break;
    case APF_MMIO_REG_CONTROL:
        break;
    default: /* read-only or reserved: ignored */
        unchanged(&before, e, fe, FZ_VCPUS, "a store to a read-only register");
        return;
    }
    unchanged(&before, e, fe, v, "a store to another vCPU's window");
    if (off != APF_MMIO_REG_CONTROL) { /* staging changes nothing by itself */
        same(&want, &after, "a staging store");
        struct apf_host_vcpu_state hs = fz_save(e, v);
        fz_assert_same_state(&before.h[v], &hs, "a staging store");
        return;
    }
    /* the commit */
    uint32_t size = 0;
    int rules = commit_ok(b->staged_area, b->staged_ring, &size);
    int vec_ok = before.h[v].vector >= 1 && before.h[v].vector <= APF_MMIO_IRQ_MAX;
    struct apf_host_vcpu_state hs = fz_save(e, v);
    FZ_ASSERT(after.status <= APF_MMIO_STATUS_NOT_RAM, "STATUS %u", after.status);
    if (after.status != APF_MMIO_STATUS_OK) {
        want.status = after.status;
        same(&want, &after, "a refused commit");
        fz_assert_same_state(&before.h[v], &hs, "a refused commit");
        FZ_ASSERT(val != 0, "CONTROL = 0 refused");
        FZ_ASSERT(!((val == APF_EN_ENABLED || val == (APF_EN_ENABLED | APF_EN_SEND_ALWAYS)) &&
                    rules && vec_ok),
                  "a valid commit refused (area %#llx ring %#llx control %#x, STATUS %u)",
                  (unsigned long long)b->staged_area, (unsigned long long)b->staged_ring, val,
                  after.status);
        return;
    }
    if (val == 0) {
        FZ_ASSERT(!hs.enabled && after.control == 0, "CONTROL = 0 left APF on");
    } else {
        FZ_ASSERT((val & ~APF_MMIO_CONTROL_VALID) == 0 && (val & APF_EN_ENABLED) && rules && vec_ok,
                  "accepted a commit that breaks the wire rules (area %#llx ring %#llx "
                  "control %#x)",
                  (unsigned long long)b->staged_area, (unsigned long long)b->staged_ring, val);
        FZ_ASSERT(hs.enabled && hs.area_gpa == b->staged_area && hs.flags == val &&
                      after.control == val && after.area == b->staged_area &&
                      after.ring == b->staged_ring,
                  "commit applied, but reads otherwise");
    }
    FZ_ASSERT(after.staged_area == b->staged_area && after.staged_ring == b->staged_ring,
              "a commit changed the staging registers");
}

/* Migration destination: set_state from get_state (of this or the other vCPU) or made by
 * the input. */
static void set_state(struct fz_host *e, struct apf_host_mmio *fe, uint32_t v, struct fz *f)
{
    struct apf_host_mmio_state st = get(fe, (v + fz_u8(f)) % FZ_VCPUS);
    uint8_t k = fz_u8(f);
    if (k & 1) {
        st.version = (k & 6) ? APF_PROTO_VERSION : fz_u32(f);
        st.control = (uint32_t)fz_val(f, controls, 6);
        st.area = fz_val(f, area_lo, 11);
        st.ring = fz_val(f, ring_lo, 12);
        st.staged_area = fz_val(f, area_lo, 11);
        st.staged_ring = fz_val(f, ring_lo, 12);
        st.cons = fz_u8(f) & 1 ? fz_u32(f) : fz_u8(f);
        st.prod = st.cons + fz_u8(f) % 20;
        st.seq = fz_u8(f) & 1 ? fz_u32(f) : fz_u8(f);
        st.status = fz_u8(f) % 4;
    } else if (k & 2) {
        st.prod += fz_u8(f) % 4;
        st.cons += fz_u8(f) % 4;
    }
    struct snap before;
    take(&before, e, fe);
    int r = apf_host_mmio_set_state(fe, v, &st);
    if (r != 0) {
        FZ_ASSERT(r == APF_EINVAL || r == APF_EFAULT, "set_state returned %d", r);
        unchanged(&before, e, fe, FZ_VCPUS, "a refused set_state");
        return;
    }
    struct apf_host_mmio_state after = get(fe, v);
    same(&st, &after, "set_state accepted but reads back differently:");
    uint32_t size = 0;
    if (st.control)
        FZ_ASSERT(commit_ok(st.area, st.ring, &size) && st.prod - st.cons <= size,
                  "set_state accepted a state that breaks the wire rules");
    unchanged(&before, e, fe, v, "another vCPU's set_state");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f = {data, size};
    static struct fz_host e;
    fz_host_init(&e, &apf_host_transport_mmio, &f);
    uint8_t c = fz_u8(&f);
    struct apf_host_mmio *fe = NULL;
    if ((c & 15) == 0) { /* a bad configuration: refused, nothing allocated */
        static const struct apf_host_mmio_config bad[] = {
            {0, APF_MMIO_NP_X86_PF}, {APF_MMIO_IRQ_MAX + 1, APF_MMIO_NP_X86_PF}, {32, 0}, {32, 4}};
        long blocks = e.live_blocks;
        FZ_ASSERT(apf_host_mmio_create(e.h, &bad[(c >> 4) & 3], &fe) == APF_EINVAL);
        FZ_ASSERT(apf_host_mmio_create(e.h, NULL, &fe) == APF_EINVAL);
        FZ_ASSERT(apf_host_mmio_create(NULL, &bad[0], &fe) == APF_EINVAL);
        apf_host_mmio_destroy(NULL);
        FZ_ASSERT(e.live_blocks == blocks && fe == NULL);
    }
    cfg.irq = (uint32_t)fz_val(&f, (const uint64_t[]){236, 32, 20, 1, APF_MMIO_IRQ_MAX}, 5);
    if (cfg.irq < 1 || cfg.irq > APF_MMIO_IRQ_MAX)
        cfg.irq = 1 + cfg.irq % APF_MMIO_IRQ_MAX;
    cfg.np_kind = APF_MMIO_NP_X86_PF + (c >> 6) % 3;
    if (c & 16) /* a page the host cannot write */
        e.ro_page = 1u + fz_u8(&f) % 15u;
    FZ_ASSERT(apf_host_mmio_create(e.h, &cfg, &fe) == 0);
    uint8_t boot = fz_u8(&f);
    for (uint32_t v = 0; v < FZ_VCPUS; v++) /* mostly: the guest turns APF on */
        if (boot & (1u << v)) {
            uint32_t w[5] = {0x1000u + 64u * v, 0,
                             (0x8000u + 0x1000u * v) | (1u + ((boot >> 4) & 3)), 0,
                             APF_EN_ENABLED | ((boot & 4) ? APF_EN_SEND_ALWAYS : 0)};
            for (uint32_t i = 0; i < 5; i++)
                apf_host_mmio_access(fe, v, APF_MMIO_REG_AREA_LO + 4 * i, 4, 1, &w[i]);
        }
    for (int steps = 0; f.n > 0 && steps < 4096; steps++) {
        uint32_t v = fz_u8(&f) % (FZ_VCPUS + 1); /* FZ_VCPUS: an unknown vCPU */
        switch (fz_u8(&f) % 9) {
        case 0:
        case 1:
        case 2:
        case 3:
            window_access(&e, fe, v, &f);
            break;
        case 4:
            if (v < FZ_VCPUS) {
                set_state(&e, fe, v, &f);
            } else {
                struct apf_host_mmio_state st = {.version = APF_PROTO_VERSION};
                FZ_ASSERT(apf_host_mmio_set_state(fe, v, &st) == APF_ENODEV);
                FZ_ASSERT(apf_host_mmio_get_state(fe, v, &st) == APF_ENODEV);
                FZ_ASSERT(apf_host_mmio_get_state(fe, 0, NULL) == APF_EINVAL);
                FZ_ASSERT(apf_host_mmio_set_state(fe, 0, NULL) == APF_EINVAL);
            }
            break;
        case 5:
            FZ_ASSERT(apf_host_mmio_vcpu_reset(fe, v) == (v < FZ_VCPUS ? 0 : APF_ENODEV));
            if (v < FZ_VCPUS) {
                struct apf_host_mmio_state st = get(fe, v);
                struct apf_host_vcpu_state hs = fz_save(&e, v);
                FZ_ASSERT(st.control == 0 && st.area == 0 && st.ring == 0 && st.staged_area == 0 &&
                              st.staged_ring == 0 && st.status == 0 && !hs.enabled &&
                              hs.vector == cfg.irq,
                          "reset left state");
            }
            break;
        case 6:
            if (v < FZ_VCPUS)
                guest_consume(&e, fe, v, &f);
            break;
        default:
            fz_host_engine_step(&e, &f);
            break;
        }
        for (uint32_t w = 0; w < FZ_VCPUS; w++)
            agrees(&e, fe, w);
    }
    if (fz_u8(&f) & 1) {
        apf_host_mmio_destroy(fe);
        fz_host_fini(&e, 0);
    } else { /* the engine first: the frontend frees itself without it */
        fz_host_fini(&e, 1);
        apf_host_mmio_destroy(fe);
    }
    FZ_ASSERT(e.live_blocks == 0, "%ld blocks leaked", e.live_blocks);
    return 0;
}
