/* SPDX-License-Identifier: MIT */
/*
 * apf-bench-wires: "page ready" bursts on every wire, each driven through its own frontend
 * as a guest would (issue 11). One vCPU; a burst of B completions (1, 8, 64) is delivered
 * until the guest holds every token. Per "page ready": notifications raised (interrupts /
 * VIRQ events), ACK exits (wrmsr ACK: each a trip out of the guest and back), their sum
 * (host-side events), and ns of engine + guest work (median of --repeats runs). The event
 * counts are exact and deterministic; the nanoseconds are in-process and exclude the exits.
 *   apf-bench-wires [--repeats N] [--json]
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apf/host.h"
#include "apf/host_kvm_x86.h"
#include "apf/host_mmio.h"
#include "apf/host_xen.h"

#define AREA 0x1000u
#define ARG 0x1800u
#define RING 0x2000u
#define RING_N 256u
#define MEM (RING + 0x1000u)

enum wire { W_KVM_X86, W_XEN, W_MMIO, W_COUNT };
static const char *const wire_name[W_COUNT] = {"kvm-x86", "xen-hvm", "apf-mmio"};

struct env {
    uint8_t mem[MEM];
    uint32_t tokens[64];
    uint32_t nsub, notifications;
};

static int m_read(void *ctx, uint64_t gpa, void *buf, uint32_t len)
{
    struct env *e = ctx;
    if (gpa >= MEM || len > MEM - gpa)
        return APF_EFAULT;
    memcpy(buf, e->mem + gpa, len);
    return 0;
}

static int m_write(void *ctx, uint64_t gpa, const void *buf, uint32_t len)
{
    struct env *e = ctx;
    if (gpa >= MEM || len > MEM - gpa)
        return APF_EFAULT;
    memcpy(e->mem + gpa, buf, len);
    return 0;
}

static void m_np(void *ctx, uint32_t vcpu, uint32_t token)
{
    (void)ctx, (void)vcpu, (void)token;
}

static void m_ready(void *ctx, uint32_t vcpu, uint32_t vector)
{
    (void)vcpu, (void)vector;
    ((struct env *)ctx)->notifications++;
}

static void m_kick(void *ctx, uint32_t vcpu)
{
    (void)ctx, (void)vcpu;
}

static void m_submit(void *ctx, uint32_t vcpu, uint32_t token, uint64_t gpa)
{
    struct env *e = ctx;
    (void)vcpu, (void)gpa;
    e->tokens[e->nsub++ % 64] = token;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint32_t rd(struct env *e, uint32_t at)
{
    uint32_t v;
    memcpy(&v, e->mem + at, 4);
    return v;
}

static void wr(struct env *e, uint32_t at, uint32_t v)
{
    memcpy(e->mem + at, &v, 4);
}

struct fe {
    enum wire w;
    struct apf_host_kvm_x86 *x86;
    struct apf_host_xen *xen;
    struct apf_host_mmio *mmio;
};

static void fail(const char *what)
{
    fprintf(stderr, "apf-bench-wires: %s failed\n", what);
    exit(1);
}

/* The guest turns APF on through the wire's control plane. */
static void guest_on(struct env *e, struct apf_host *h, struct fe *f)
{
    switch (f->w) {
    case W_KVM_X86:
        if (apf_host_kvm_x86_create(h, NULL, &f->x86) ||
            apf_host_kvm_x86_wrmsr(f->x86, 0, APF_KVM_MSR_ASYNC_PF_INT, 0xec) ||
            apf_host_kvm_x86_wrmsr(f->x86, 0, APF_KVM_MSR_ASYNC_PF_EN,
                                   AREA | APF_EN_ENABLED | APF_EN_DELIVERY_AS_INT))
            fail("kvm-x86 enable");
        break;
    case W_XEN: {
        struct apf_xen_vcpu_apf a = {.area_gpa = AREA, .ring_gpa = RING,
                                     .version = APF_PROTO_VERSION, .ring_entries = RING_N};
        memcpy(e->mem + ARG, &a, sizeof(a));
        uint64_t args[5] = {APF_XEN_VCPUOP_REGISTER_APF, 0, ARG, 0, 0};
        int64_t ret = -1;
        if (apf_host_xen_create(h, NULL, &f->xen) ||
            apf_host_xen_hypercall(f->xen, 0, APF_XEN_HC_VCPU_OP, args, &ret) || ret != 0)
            fail("xen-hvm register");
        break;
    }
    default: {
        struct apf_host_mmio_config mc = {.irq = 40, .np_kind = APF_MMIO_NP_X86_PF};
        uint32_t regs[][2] = {{APF_MMIO_REG_AREA_LO, AREA}, {APF_MMIO_REG_RING_LO, RING | 8u},
                              {APF_MMIO_REG_CONTROL, APF_EN_ENABLED}};
        if (apf_host_mmio_create(h, &mc, &f->mmio))
            fail("apf-mmio create");
        for (int i = 0; i < 3; i++)
            apf_host_mmio_access(f->mmio, 0, regs[i][0], 4, 1, &regs[i][1]);
        uint32_t st = 1;
        apf_host_mmio_access(f->mmio, 0, APF_MMIO_REG_STATUS, 4, 0, &st);
        if (st != APF_MMIO_STATUS_OK)
            fail("apf-mmio commit");
        break;
    }
    }
}

/* The guest's "page ready" handler: everything the channel holds now. */
static uint32_t guest_take(struct env *e, struct fe *f, uint32_t *cons, uint64_t *acks)
{
    if (f->w != W_KVM_X86) {
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
    wr(e, AREA + 4, 0);
    apf_host_kvm_x86_wrmsr(f->x86, 0, APF_KVM_MSR_ASYNC_PF_ACK, 1);
    (*acks)++;
    return 1;
}

struct result {
    double ns_per_ready, notif_per_ready, acks_per_ready;
};

static const uint32_t GS = APF_GS_USER | APF_GS_IRQ_ON | APF_GS_PAGING | APF_GS_IRQCHIP_ON;

static struct result run(enum wire w, uint32_t burst, uint32_t rounds)
{
    static const struct apf_host_transport_ops *const tp[W_COUNT] = {
        &apf_host_transport_kvm_x86, &apf_host_transport_xen, &apf_host_transport_mmio};
    struct env *e = calloc(1, sizeof(*e));
    if (e == NULL)
        fail("calloc");
    struct apf_host_ops ops = {.submit = m_submit, .inject_not_present = m_np,
                               .inject_ready = m_ready, .kick = m_kick,
                               .read_guest = m_read, .write_guest = m_write};
    struct apf_host_config c = {.n_vcpus = 1, .max_outstanding = 64, .transport = tp[w],
                                .ops = &ops, .ctx = e};
    struct apf_host *h;
    if (apf_host_create(&c, &h))
        fail("apf_host_create");
    struct fe f = {.w = w};
    guest_on(e, h, &f);
    uint32_t cons = 0;
    uint64_t acks = 0;
    apf_host_vcpu_before_entry(h, 0, GS); /* the wake-all */
    guest_take(e, &f, &cons, &acks);
    acks = 0;
    e->notifications = 0;
    double busy = 0;
    uint64_t page = 0, delivered = 0;
    for (uint32_t r = 0; r < rounds; r++) {
        e->nsub = 0;
        for (uint32_t k = 0; k < burst; k++) {
            if (apf_host_vcpu_fault(h, 0, 0x100000000ull + (page++ % 4096) * 4096, GS) !=
                APF_FAULT_ASYNC)
                fail("fault");
            wr(e, AREA, 0); /* the guest's #PF handler consumes "not present" */
        }
        for (uint32_t k = 0; k < burst; k++)
            apf_host_complete(h, 0, e->tokens[k], 0);
        double t0 = now_ns();
        uint32_t got = 0;
        while (got < burst) {
            apf_host_vcpu_before_entry(h, 0, GS);
            got += guest_take(e, &f, &cons, &acks);
        }
        busy += now_ns() - t0;
        delivered += got;
    }
    struct result res = {busy / (double)delivered,
                         (double)e->notifications / (double)delivered,
                         (double)acks / (double)delivered};
    apf_host_kvm_x86_destroy(f.x86);
    apf_host_xen_destroy(f.xen);
    apf_host_mmio_destroy(f.mmio);
    apf_host_destroy(h);
    free(e);
    return res;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int repeats = 11, json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc) {
            repeats = atoi(argv[++i]);
            if (repeats < 1 || repeats > 101) {
                fprintf(stderr, "apf-bench-wires: --repeats must be 1..101\n");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: apf-bench-wires [--repeats N] [--json]\n");
            return 2;
        }
    }
    static const uint32_t bursts[] = {1, 8, 64};
    if (json)
        printf("{\"bench\": \"wires\", \"repeats\": %d, \"rows\": [", repeats);
    else
        printf("apf-bench-wires (1 vCPU; ns: median of %d interleaved runs)\n"
               "  %-9s %5s %12s %14s %13s %10s\n",
               repeats, "wire", "burst", "notif/ready", "ackexit/ready", "events/ready",
               "ns/ready");
    int rows = 0;
    for (size_t bi = 0; bi < 3; bi++) {
        uint32_t b = bursts[bi], rounds = 20000 / b + 1;
        double ns[W_COUNT][101];
        struct result last[W_COUNT];
        for (int i = 0; i < repeats; i++)
            for (int w = 0; w < W_COUNT; w++) {
                last[w] = run((enum wire)w, b, rounds);
                ns[w][i] = last[w].ns_per_ready;
            }
        for (int w = 0; w < W_COUNT; w++) {
            qsort(ns[w], (size_t)repeats, sizeof(double), cmp);
            double ev = last[w].notif_per_ready + last[w].acks_per_ready;
            if (json)
                printf("%s{\"wire\": \"%s\", \"burst\": %u, \"notifications_per_ready\": %.4f, "
                       "\"ack_exits_per_ready\": %.4f, \"events_per_ready\": %.4f, "
                       "\"ns_per_ready\": %.1f}",
                       rows++ ? ", " : "", wire_name[w], b, last[w].notif_per_ready,
                       last[w].acks_per_ready, ev, ns[w][repeats / 2]);
            else
                printf("  %-9s %5u %12.4f %14.4f %13.4f %10.1f\n", wire_name[w], b,
                       last[w].notif_per_ready, last[w].acks_per_ready, ev, ns[w][repeats / 2]);
        }
    }
    if (json)
        printf("]}\n");
    return 0;
}
