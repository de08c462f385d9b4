/* SPDX-License-Identifier: MIT */
#include "host_env.h"

#include <stdlib.h>

static void *a_alloc(void *ctx, size_t size, size_t align)
{
    struct fz_host *e = ctx;
    void *p = aligned_alloc(align < 64 ? 64 : align, (size + 63) & ~(size_t)63);
    if (p)
        e->live_blocks++;
    return p;
}

static void a_free(void *ctx, void *p, size_t size)
{
    struct fz_host *e = ctx;
    (void)size;
    free(p);
    e->live_blocks--;
}

static void o_submit(void *ctx, uint32_t vcpu, uint32_t token, uint64_t gpa)
{
    struct fz_host *e = ctx;
    (void)gpa;
    FZ_ASSERT(e->n_pend < FZ_PENDING, "more submitted work than the limits allow");
    for (uint32_t i = 0; i < e->n_pend; i++)
        FZ_ASSERT(e->pend_token[i] != token || e->pend_vcpu[i] != vcpu, "token %#x submitted twice",
                  token);
    e->pend_vcpu[e->n_pend] = vcpu;
    e->pend_token[e->n_pend] = token;
    e->n_pend++;
}

static void o_np(void *ctx, uint32_t vcpu, uint32_t token)
{
    struct fz_host *e = ctx;
    FZ_ASSERT(vcpu < FZ_VCPUS);
    FZ_ASSERT(apf_token_is_fault(token), "not present with token %#x", token);
    e->last_np[vcpu] = token;
    e->nps++;
}

static void o_ready(void *ctx, uint32_t vcpu, uint32_t vector)
{
    struct fz_host *e = ctx;
    FZ_ASSERT(vcpu < FZ_VCPUS);
    FZ_ASSERT(vector != 0, "page ready on vector 0");
    e->readies++;
}

static void o_kick(void *ctx, uint32_t vcpu)
{
    (void)ctx;
    FZ_ASSERT(vcpu < FZ_VCPUS);
}

static int o_read(void *ctx, uint64_t gpa, void *buf, uint32_t len)
{
    struct fz_host *e = ctx;
    if (gpa > FZ_RAM || len > FZ_RAM - gpa)
        return APF_EFAULT;
    memcpy(buf, e->ram + gpa, len);
    return 0;
}

static int o_write(void *ctx, uint64_t gpa, const void *buf, uint32_t len)
{
    struct fz_host *e = ctx;
    if (gpa > FZ_RAM || len > FZ_RAM - gpa)
        return APF_EFAULT;
    if (e->ro_page && len && gpa >> 12 <= e->ro_page && (gpa + len - 1) >> 12 >= e->ro_page)
        return APF_EFAULT;
    memcpy(e->ram + gpa, buf, len);
    return 0;
}

static void o_trace(void *ctx, const struct apf_trace_event *ev)
{
    struct fz_host *e = ctx;
    static int print = -1;
    if (print < 0)
        print = getenv("APF_FUZZ_TRACE") != NULL;
    if (print) { /* APF_FUZZ_TRACE=1: the events in apf-trace-check's format, to stderr */
        char line[128];
        if (apf_trace_format(ev, line, sizeof(line)) > 0)
            fprintf(stderr, "%s\n", line);
    }
    int r = apf_trace_checker_feed(e->chk, ev);
    FZ_ASSERT(r == 0, "trace checker: %s", apf_trace_checker_error(e->chk));
    if (e->on_event)
        e->on_event(e->on_event_ctx, ev);
}

void fz_host_init(struct fz_host *e, const struct apf_host_transport_ops *tp, struct fz *f)
{
    memset(e, 0, sizeof(*e));
    e->tp = tp;
    e->alloc = (struct apf_allocator){a_alloc, a_free, e};
    e->ops = (struct apf_host_ops){
        .submit = o_submit,
        .inject_not_present = o_np,
        .inject_ready = o_ready,
        .kick = o_kick,
        .read_guest = o_read,
        .write_guest = o_write,
    };
    uint32_t max_out = 1 + fz_u8(f) % 8;
    /* Checker: room for every outstanding token and any ring (512 entries). */
    size_t sz = apf_trace_checker_size_windowed(FZ_VCPUS, 64, APF_RING_MAX_ENTRIES);
    e->chk_mem = aligned_alloc(64, (sz + 63) & ~(size_t)63);
    FZ_ASSERT(e->chk_mem != NULL);
    e->chk = apf_trace_checker_init_windowed(e->chk_mem, sz, FZ_VCPUS, 64, APF_RING_MAX_ENTRIES);
    FZ_ASSERT(e->chk != NULL);
    struct apf_host_config c = {
        .n_vcpus = FZ_VCPUS,
        .max_outstanding = max_out,
        .fallback = fz_u8(f) & 1,
        .transport = tp,
        .ops = &e->ops,
        .ctx = e,
        .trace = o_trace,
        .trace_ctx = e,
        .alloc = &e->alloc,
    };
    FZ_ASSERT(apf_host_create(&c, &e->h) == 0);
}

static void complete_at(struct fz_host *e, uint32_t i, int status)
{
    uint32_t vcpu = e->pend_vcpu[i], token = e->pend_token[i];
    e->pend_vcpu[i] = e->pend_vcpu[e->n_pend - 1];
    e->pend_token[i] = e->pend_token[e->n_pend - 1];
    e->n_pend--;
    FZ_ASSERT(apf_host_complete(e->h, vcpu, token, status) == 0, "complete of a submitted token");
}

void fz_host_complete_all(struct fz_host *e)
{
    while (e->n_pend)
        complete_at(e, 0, 0);
}

void fz_host_fini(struct fz_host *e, long frontend_blocks)
{
    fz_host_complete_all(e);
    for (uint32_t v = 0; v < FZ_VCPUS; v++) {
        /* Take what the completions queued: nothing may stay outstanding. */
        for (int k = 0; k < 4 * 64 + 8; k++) {
            if (apf_host_vcpu_before_entry(
                    e->h, v, APF_GS_USER | APF_GS_IRQ_ON | APF_GS_PAGING | APF_GS_IRQCHIP_ON) != 1)
                break;
            apf_host_vcpu_ack(e->h, v);
        }
    }
    apf_host_destroy(e->h);
    FZ_ASSERT(e->live_blocks == frontend_blocks, "%ld blocks leaked",
              e->live_blocks - frontend_blocks);
    free(e->chk_mem);
}

uint64_t fz_gpa(struct fz *f)
{
    uint8_t k = fz_u8(f);
    if (k < 96)
        return 0x1000u + 64u * (k % 4); /* the usual areas */
    if (k < 160)
        return 0x8000u + ((uint64_t)fz_u8(f) << 4); /* near the rings */
    if (k < 224)
        return fz_u16(f);
    return fz_u64(f);
}

struct apf_host_vcpu_state fz_save(struct fz_host *e, uint32_t vcpu)
{
    struct apf_host_vcpu_state st;
    FZ_ASSERT(apf_host_vcpu_save(e->h, vcpu, &st) == 0);
    return st;
}

void fz_assert_same_state(const struct apf_host_vcpu_state *a, const struct apf_host_vcpu_state *b,
                          const char *what)
{
    FZ_ASSERT(a->enabled == b->enabled && a->area_gpa == b->area_gpa && a->flags == b->flags &&
                  a->vector == b->vector && a->seq == b->seq,
              "%s changed the vCPU's state", what);
}

static const uint64_t special_u32[] = {0, 1, 0xffffffffu, 0x80000000u, 0x1000, 0x2000};

void fz_host_engine_step(struct fz_host *e, struct fz *f)
{
    uint32_t v = fz_u8(f) % FZ_VCPUS;
    uint32_t gs = fz_u8(f) & 0x7f;
    switch (fz_u8(f) % 12) {
    case 0:
    case 1: { /* the guest touches a missing page */
        uint64_t gpa = 0x100000u + ((uint64_t)(fz_u8(f) % 16) << 12);
        int r = apf_host_vcpu_fault(e->h, v, gpa, gs);
        FZ_ASSERT(r == APF_FAULT_ASYNC || r == APF_FAULT_SYNC || r == APF_FAULT_HALT,
                  "fault returned %d", r);
        break;
    }
    case 2:
    case 3: { /* a delivery point */
        int r = apf_host_vcpu_before_entry(e->h, v, gs);
        FZ_ASSERT(r >= 0 && r <= (int)APF_RING_MAX_ENTRIES, "before_entry returned %d", r);
        break;
    }
    case 4:
        FZ_ASSERT(apf_host_vcpu_ack(e->h, v) >= 0);
        break;
    case 5:
    case 6: /* the embedder completes submitted work (any order, success or failure) */
        if (e->n_pend) {
            uint32_t i = fz_u8(f) % e->n_pend;
            int status = (fz_u8(f) & 3) == 3 ? APF_EIO : 0;
            complete_at(e, i, status);
        }
        break;
    case 7: { /* a completion with a token the engine never gave (or gave to another vCPU) */
        uint32_t tok = (uint32_t)fz_val(f, special_u32, 6);
        for (uint32_t i = 0; i < e->n_pend; i++)
            if (e->pend_token[i] == tok && e->pend_vcpu[i] == v) {
                complete_at(e, i, 0); /* a real one after all: exactly once */
                return;
            }
        FZ_ASSERT(apf_host_complete(e->h, v, tok, 0) < 0, "bogus completion accepted");
        break;
    }
    case 8:
        FZ_ASSERT(apf_host_vcpu_disable(e->h, v) >= 0);
        break;
    case 9:
        FZ_ASSERT(apf_host_vcpu_reset(e->h, v) == 0);
        break;
    case 10: { /* the guest writes its RAM: mostly an area's reason or token, a ring's
                * indices, else anywhere */
        uint8_t k = fz_u8(f);
        uint32_t off;
        if (k < 128)
            off = 0x1000u + 64u * (k % 4) + 4u * ((k >> 2) & 1);
        else if (k < 192)
            off = 0x8000u + 0x1000u * ((k >> 3) & 1) +
                  (uint32_t[]){APF_RING_PROD_OFFSET, APF_RING_SIZE_OFFSET, APF_RING_CONS_OFFSET,
                               APF_RING_EVENT_OFFSET}[k & 3];
        else
            off = fz_u16(f) % FZ_RAM;
        uint32_t val = (uint32_t)fz_val(f, special_u32, 6);
        uint32_t len = off + 4 <= FZ_RAM ? 4 : FZ_RAM - off;
        memcpy(e->ram + off, &val, len);
        break;
    }
    default: { /* migration: save, then restore the same or an input-made state */
        struct apf_host_vcpu_state st = fz_save(e, v), before = st;
        if (fz_u8(f) & 1) {
            st.enabled = fz_u8(f) % 3;
            st.area_gpa = fz_gpa(f);
            st.flags = (uint32_t)fz_val(f, special_u32, 6);
            st.vector = fz_u8(f);
            st.seq = fz_u32(f);
        }
        int r = apf_host_vcpu_restore(e->h, v, &st);
        struct apf_host_vcpu_state after = fz_save(e, v);
        if (r != 0) {
            fz_assert_same_state(&before, &after, "a refused restore");
        } else {
            /* consistent: what was restored is what is in force */
            FZ_ASSERT(
                after.enabled == st.enabled && after.vector == st.vector && after.seq == st.seq &&
                    (!st.enabled || (after.area_gpa == st.area_gpa && after.flags == st.flags)),
                "restore accepted but the state differs");
        }
        break;
    }
    }
}
