/* SPDX-License-Identifier: MIT */
/*
 * apf-bench transport: delivering "page ready", slot + ACK versus the ready ring.
 *
 * One vCPU on the arm64 transport (the one that offers both), driven through its SMCCC
 * frontend as a guest would. A burst of B completions (1, 8, 64) is delivered until the
 * guest has every token; per "page ready" it reports the notifications raised, the ACK
 * exits (IRQ_ACK calls: each one is a trip out of the guest and back), and the delivery
 * latency (mean time from the burst's completion to the guest holding a token) and cost
 * (ns of engine + guest work per token). No sleeping, no threads: the engine's own cost.
 * An ACK exit costs far more on a real hypervisor (a KVM_RUN round trip, a hypercall)
 * than the in-process call here: read the counts, not only the nanoseconds.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apf/host.h"
#include "apf/host_kvm_arm64.h"
#include "bench.h"

#define AREA 0x1000u
#define RING 0x2000u
#define RING_N 256u
#define MEM (RING + 0x1000u)

struct tenv {
    uint8_t mem[MEM];
    uint32_t tokens[64];
    uint32_t nsub, notifications;
};

static int t_read(void *ctx, uint64_t gpa, void *buf, uint32_t len)
{
    struct tenv *e = ctx;
    if (gpa >= MEM || len > MEM - gpa)
        return APF_EFAULT;
    memcpy(buf, e->mem + gpa, len);
    return 0;
}

static int t_write(void *ctx, uint64_t gpa, const void *buf, uint32_t len)
{
    struct tenv *e = ctx;
    if (gpa >= MEM || len > MEM - gpa)
        return APF_EFAULT;
    memcpy(e->mem + gpa, buf, len);
    return 0;
}

static void t_np(void *ctx, uint32_t vcpu, uint32_t token)
{
    (void)ctx, (void)vcpu, (void)token;
}

static void t_ready(void *ctx, uint32_t vcpu, uint32_t vector)
{
    struct tenv *e = ctx;
    (void)vcpu, (void)vector;
    e->notifications++;
}

static void t_kick(void *ctx, uint32_t vcpu)
{
    (void)ctx, (void)vcpu;
}

static void t_submit(void *ctx, uint32_t vcpu, uint32_t token, uint64_t gpa)
{
    struct tenv *e = ctx;
    (void)vcpu, (void)gpa;
    e->tokens[e->nsub++ % 64] = token;
}

static const uint32_t GS = APF_GS_USER | APF_GS_IRQ_ON | APF_GS_PAGING | APF_GS_IRQCHIP_ON;

static uint64_t call(struct apf_host_kvm_arm64 *fe, uint32_t sub, uint64_t v)
{
    uint64_t in[4] = {APF_ARM64_FUNC_ID, sub, v & 0xffffffffu, v >> 32}, out[4];
    apf_host_kvm_arm64_hvc(fe, 0, in, out);
    return out[0];
}

static uint32_t rd(struct tenv *e, uint32_t at)
{
    uint32_t v;
    memcpy(&v, e->mem + at, 4);
    return v;
}

static void wr(struct tenv *e, uint32_t at, uint32_t v)
{
    memcpy(e->mem + at, &v, 4);
}

struct result {
    double ns_per_ready, latency_ns, notif_per_ready, acks_per_ready;
};

/* The guest's handler: take what the channel holds; slot: clear + IRQ_ACK. */
static uint32_t guest_take(struct tenv *e, struct apf_host_kvm_arm64 *fe, int ring,
                           uint32_t *cons, uint64_t *acks)
{
    if (ring) {
        uint32_t prod = rd(e, RING + APF_RING_PROD_OFFSET), n = prod - *cons;
        if (n > RING_N)
            n = 0;
        *cons += n;
        wr(e, RING + APF_RING_CONS_OFFSET, *cons);
        wr(e, RING + APF_RING_EVENT_OFFSET, *cons + 1);
        return n;
    }
    if (rd(e, AREA + 4) == 0)
        return 0;
    wr(e, AREA, 0);
    wr(e, AREA + 4, 0);
    call(fe, APF_ARM64_FUNC_IRQ_ACK, 0);
    (*acks)++;
    return 1;
}

static struct result run(int ring, uint32_t burst, uint32_t rounds)
{
    struct tenv *e = calloc(1, sizeof(*e));
    struct apf_host_ops ops = {.submit = t_submit, .inject_not_present = t_np,
                               .inject_ready = t_ready, .kick = t_kick,
                               .read_guest = t_read, .write_guest = t_write};
    struct apf_host_config c = {.n_vcpus = 1, .max_outstanding = 64,
                                .transport = &apf_host_transport_kvm_arm64, .ops = &ops,
                                .ctx = e};
    struct apf_host *h;
    struct apf_host_kvm_arm64 *fe;
    if (apf_host_create(&c, &h) || apf_host_kvm_arm64_create(h, NULL, &fe)) {
        fprintf(stderr, "apf-bench transport: create failed\n");
        exit(1);
    }
    apf_host_kvm_arm64_set_irq(fe, 0, 20);
    if (ring) {
        call(fe, APF_ARM64_FUNC_RING, RING | 8u /* 256 */);
        call(fe, APF_ARM64_FUNC_ENABLE, AREA | APF_EN_ENABLED | APF_ARM64_EN_RING);
    } else {
        call(fe, APF_ARM64_FUNC_ENABLE, AREA | APF_EN_ENABLED);
    }
    uint32_t cons = 0;
    uint64_t acks = 0;
    apf_host_vcpu_before_entry(h, 0, GS); /* the wake-all */
    guest_take(e, fe, ring, &cons, &acks);
    acks = 0;
    e->notifications = 0;
    double busy = 0, lat = 0;
    uint64_t page = 0, delivered = 0;
    for (uint32_t r = 0; r < rounds; r++) {
        e->nsub = 0;
        for (uint32_t k = 0; k < burst; k++) {
            apf_host_vcpu_fault(h, 0, 0x100000000ull + (page++ % 4096) * 4096, GS);
            wr(e, AREA, 0); /* the guest's SDEI handler consumes "not present" */
            wr(e, AREA + 4, 0);
        }
        for (uint32_t k = 0; k < burst; k++)
            apf_host_complete(h, 0, e->tokens[k], 0);
        double t0 = bench_now_ns();
        uint32_t got = 0;
        while (got < burst) {
            apf_host_vcpu_before_entry(h, 0, GS);
            uint32_t n = guest_take(e, fe, ring, &cons, &acks);
            double t = bench_now_ns() - t0;
            lat += t * n;
            got += n;
        }
        busy += bench_now_ns() - t0;
        delivered += got;
    }
    struct result res = {busy / (double)delivered, lat / (double)delivered,
                         (double)e->notifications / (double)delivered,
                         (double)acks / (double)delivered};
    apf_host_kvm_arm64_destroy(fe);
    apf_host_destroy(h);
    free(e);
    return res;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int bench_transport_main(int argc, char **argv)
{
    struct bench_opts o;
    if (bench_parse(argc, argv, &o) != 0)
        return 2;
    static const uint32_t bursts[] = {1, 8, 64};
    if (o.json)
        printf("{\"bench\": \"transport\", \"repeats\": %d, \"rows\": [", o.repeats);
    else
        printf("apf-bench transport (arm64 transport, 1 vCPU; median of %d interleaved runs)\n"
               "  %-6s %6s %14s %14s %12s %12s\n",
               o.repeats, "mode", "burst", "notif/ready", "ackexit/ready", "ns/ready",
               "latency ns");
    int rows = 0;
    for (size_t bi = 0; bi < sizeof(bursts) / sizeof(bursts[0]); bi++) {
        uint32_t b = bursts[bi], rounds = 20000 / b + 1;
        double ns[2][BENCH_MAX_REPEATS], lat[2][BENCH_MAX_REPEATS];
        struct result last[2];
        for (int i = 0; i < o.repeats; i++) /* slot and ring interleaved */
            for (int ring = 0; ring < 2; ring++) {
                last[ring] = run(ring, b, rounds);
                ns[ring][i] = last[ring].ns_per_ready;
                lat[ring][i] = last[ring].latency_ns;
            }
        for (int ring = 0; ring < 2; ring++) {
            qsort(ns[ring], (size_t)o.repeats, sizeof(double), cmp);
            qsort(lat[ring], (size_t)o.repeats, sizeof(double), cmp);
            double mns = ns[ring][o.repeats / 2], mlat = lat[ring][o.repeats / 2];
            const char *mode = ring ? "ring" : "slot";
            if (o.json)
                printf("%s{\"mode\": \"%s\", \"burst\": %u, \"notifications_per_ready\": %.4f, "
                       "\"ack_exits_per_ready\": %.4f, \"ns_per_ready\": %.1f, "
                       "\"latency_ns\": %.1f}",
                       rows++ ? ", " : "", mode, b, last[ring].notif_per_ready,
                       last[ring].acks_per_ready, mns, mlat);
            else
                printf("  %-6s %6u %14.3f %14.3f %12.1f %12.1f\n", mode, b,
                       last[ring].notif_per_ready, last[ring].acks_per_ready, mns, mlat);
        }
    }
    if (o.json)
        printf("]}\n");
    return 0;
}
