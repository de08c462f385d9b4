/* SPDX-License-Identifier: MIT */
/*
 * apf-mmio backend (apf/proto_mmio.h) over the MMIO accessor hook. Every value the device
 * returns is range-checked before use.
 *
 * Channel (per CPU, from the runtime's memory, 4096-aligned):
 *   [0, 64)       the shared area: reason + token of "not present";
 *   [64, ...)     the guest's private ring state (the host never reads it);
 *   [4096, 8192)  the ready ring page.
 */
#include "apf/guest_mmio.h"
#include "guest/area.h"

#define MM_RING_OFFSET APF_RING_PAGE_SIZE
#define MM_CHAN_SIZE (2u * APF_RING_PAGE_SIZE)

struct mm_chan {
    struct apf__area area;
    struct apf_guest_ring_consumer consumer;
};
_Static_assert(sizeof(struct mm_chan) <= MM_RING_OFFSET, "ring state fits before the ring");

void apf_guest_mmio_init(struct apf_guest_mmio *b, const struct apf_mmio_io_ops *io,
                         void *io_ctx)
{
    b->io = io;
    b->io_ctx = io_ctx;
    b->ring_entries = APF_RING_DEFAULT_ENTRIES;
    b->np_kind = 0;
    b->irq = 0;
}

static uint32_t rd(struct apf_guest_mmio *b, uint32_t cpu, uint32_t off)
{
    return b->io->read32(b->io_ctx, cpu, off);
}

static void wr(struct apf_guest_mmio *b, uint32_t cpu, uint32_t off, uint32_t v)
{
    b->io->write32(b->io_ctx, cpu, off, v);
}

static uint32_t mm_caps(void *ctx)
{
    const struct apf_guest_mmio *b = ctx;
    uint32_t caps = APF_BACKEND_CAP_HOST_VECTOR | APF_BACKEND_CAP_SEND_ALWAYS;
    if (b->np_kind != 0 && b->np_kind != APF_MMIO_NP_X86_PF)
        caps |= APF_BACKEND_CAP_TOKEN_IN_AREA;
    return caps;
}

static int entries_valid(uint32_t n)
{
    return n >= APF_RING_MIN_ENTRIES && n <= APF_RING_MAX_ENTRIES && (n & (n - 1)) == 0;
}

static int mm_probe(void *ctx, struct apf_guest_backend_info *info)
{
    struct apf_guest_mmio *b = ctx;
    b->np_kind = 0;
    b->irq = 0;
    if (b->io == 0 || !entries_valid(b->ring_entries))
        return APF_EINVAL;
    if (rd(b, 0, APF_MMIO_REG_MAGIC) != APF_MMIO_MAGIC)
        return APF_ENODEV;
    uint32_t version = rd(b, 0, APF_MMIO_REG_VERSION);
    uint32_t features = rd(b, 0, APF_MMIO_REG_FEATURES);
    uint32_t slots = rd(b, 0, APF_MMIO_REG_SLOTS);
    uint32_t irq = rd(b, 0, APF_MMIO_REG_IRQ);
    uint32_t kind = rd(b, 0, APF_MMIO_REG_NP_KIND);
    if (version > 0xffffffu || (version >> 16) != APF_PROTO_VERSION_MAJOR)
        return APF_EPROTO;
    if (!(features & APF_FEATURE_RING))
        return APF_EOPNOTSUPP; /* apf-mmio has no ring-less mode */
    if (irq == 0)
        return APF_EOPNOTSUPP; /* the VMM did not wire the interrupt */
    if (slots == 0 || slots > 4096 || irq > APF_MMIO_IRQ_MAX)
        return APF_EPROTO;
    if (kind < APF_MMIO_NP_X86_PF || kind > APF_MMIO_NP_RISCV_ACCESS_FAULT)
        return APF_EPROTO;
    b->np_kind = kind;
    b->irq = irq;
    info->version = version;
    info->slots = slots;
    info->irq = irq;
    info->sdei_event = 0;
    info->features = APF_FEATURE_RING;
    return 0;
}

static size_t mm_chan_size(void *ctx, size_t *align)
{
    (void)ctx;
    *align = APF_RING_PAGE_SIZE;
    return MM_CHAN_SIZE;
}

static int mm_vector_check(void *ctx, uint32_t vector)
{
    (void)ctx;
    return vector >= 1 && vector <= APF_MMIO_IRQ_MAX ? 0 : APF_EPROTO;
}

static uint32_t log2_u32(uint32_t v)
{
    uint32_t l = 0;
    while ((1u << l) < v)
        l++;
    return l;
}

static int status_err(uint32_t s)
{
    switch (s) {
    case APF_MMIO_STATUS_OK:
        return 0;
    case APF_MMIO_STATUS_INVALID:
        return APF_EINVAL;
    case APF_MMIO_STATUS_NOT_RAM:
        return APF_EFAULT;
    default:
        return APF_EPROTO;
    }
}

static int mm_enable(void *ctx, uint32_t cpu, void *chan, uint64_t chan_pa, uint32_t vector,
                     uint32_t flags)
{
    struct apf_guest_mmio *b = ctx;
    (void)vector; /* the host chose it */
    if (chan == 0 || (chan_pa & (APF_RING_PAGE_SIZE - 1)) || (flags & ~APF_EN_SEND_ALWAYS))
        return APF_EINVAL;
    struct mm_chan *mc = chan;
    struct apf_ring *ring = (struct apf_ring *)((unsigned char *)chan + MM_RING_OFFSET);
    int err = apf_guest_ring_init(&mc->consumer, ring, b->ring_entries, 0);
    if (err)
        return err;
    uint64_t ring_reg = (chan_pa + MM_RING_OFFSET) | log2_u32(b->ring_entries);
    wr(b, cpu, APF_MMIO_REG_AREA_LO, (uint32_t)chan_pa);
    wr(b, cpu, APF_MMIO_REG_AREA_HI, (uint32_t)(chan_pa >> 32));
    wr(b, cpu, APF_MMIO_REG_RING_LO, (uint32_t)ring_reg);
    wr(b, cpu, APF_MMIO_REG_RING_HI, (uint32_t)(ring_reg >> 32));
    wr(b, cpu, APF_MMIO_REG_CONTROL, APF_EN_ENABLED | (flags & APF_EN_SEND_ALWAYS));
    return status_err(rd(b, cpu, APF_MMIO_REG_STATUS));
}

static int mm_disable(void *ctx, uint32_t cpu)
{
    struct apf_guest_mmio *b = ctx;
    wr(b, cpu, APF_MMIO_REG_CONTROL, 0);
    return status_err(rd(b, cpu, APF_MMIO_REG_STATUS));
}

/* "Not present": reason and token in the area, both reset (the host posts the next one only
 * once the reason reads 0). x86: the token is CR2, and the area must agree. */
static int mm_take_not_present(void *ctx, uint32_t cpu, void *chan, uint32_t token_hint,
                               struct apf_guest_chan_event *ev)
{
    const struct apf_guest_mmio *b = ctx;
    struct apf__area *a = apf__area_of(chan);
    (void)cpu;
    ev->token = 0;
    ev->value = 0;
    uint32_t reason = apf_load_relaxed(&a->flags);
    if (reason == APF_REASON_NONE)
        return APF_GUEST_NP_NONE;
    uint32_t token = apf_load_relaxed(&a->token);
    apf_store_relaxed(&a->token, 0);
    apf_store_relaxed(&a->flags, 0);
    if (reason != APF_REASON_NOT_PRESENT) {
        ev->value = reason;
        return APF_GUEST_NP_BAD;
    }
    if (b->np_kind == APF_MMIO_NP_X86_PF && token_hint != token) {
        ev->value = token;
        return APF_GUEST_NP_BAD;
    }
    ev->token = token;
    return APF_GUEST_NP_EVENT;
}

static int mm_ready_peek(void *ctx, uint32_t cpu, void *chan, struct apf_guest_chan_event *ev)
{
    (void)ctx, (void)cpu;
    return apf_guest_ring_peek(&((struct mm_chan *)chan)->consumer, ev);
}

static int mm_ready_release(void *ctx, uint32_t cpu, void *chan)
{
    (void)ctx, (void)cpu;
    return apf_guest_ring_release(&((struct mm_chan *)chan)->consumer);
}

static int mm_ready_finish(void *ctx, uint32_t cpu, void *chan)
{
    (void)ctx, (void)cpu;
    return apf_guest_ring_finish(&((struct mm_chan *)chan)->consumer);
}

static struct apf_shared_area *mm_area(void *ctx, void *chan)
{
    (void)ctx;
    return (struct apf_shared_area *)chan;
}

static struct apf_ring *mm_ring(void *ctx, void *chan)
{
    (void)ctx;
    return chan ? (struct apf_ring *)((unsigned char *)chan + MM_RING_OFFSET) : 0;
}

const struct apf_guest_backend_ops apf_guest_backend_mmio = {
    .name = "apf-mmio",
    .capabilities = mm_caps,
    .probe = mm_probe,
    .chan_size = mm_chan_size,
    .vector_check = mm_vector_check,
    .enable = mm_enable,
    .disable = mm_disable,
    .take_not_present = mm_take_not_present,
    .ready_peek = mm_ready_peek,
    .ready_release = mm_ready_release,
    .ready_finish = mm_ready_finish,
    .area = mm_area,
    .ring = mm_ring,
};

/* ---- the native accessor: volatile 32-bit loads and stores ------------------------------ */

static uint32_t native_read32(void *ctx, uint32_t cpu, uint32_t offset)
{
    (void)cpu;
    return *(volatile uint32_t *)((unsigned char *)ctx + offset);
}

static void native_write32(void *ctx, uint32_t cpu, uint32_t offset, uint32_t value)
{
    (void)cpu;
    *(volatile uint32_t *)((unsigned char *)ctx + offset) = value;
}

const struct apf_mmio_io_ops apf_mmio_io_native = {
    .read32 = native_read32,
    .write32 = native_write32,
};
