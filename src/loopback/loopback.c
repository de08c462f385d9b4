/* SPDX-License-Identifier: MIT */
/*
 * The loopback (apf/loopback.h): a vCPU model that runs the real transport code on both
 * sides in one process. Guest side: the shipped kvm_x86 / kvm_arm64 backend, whose arch
 * hooks land here and go straight to the host frontend. Host side: the engine, whose
 * injections are recorded per vCPU and delivered on that vCPU's thread at the right point.
 * Hosted (pthreads): not part of the freestanding apf_guest.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apf/host_kvm_arm64.h"
#include "apf/guest_s390.h"
#include "apf/host_kvm_x86.h"
#include "apf/host_mmio.h"
#include "apf/guest_mmio.h"
#include "apf/guest_xen.h"
#include "apf/host_xen.h"
#include "apf/host_s390.h"
#include "apf/host_transport.h"
#include "apf/loopback.h"

#define LB_MAX_RAM 16
#define LB_DEFAULT_PPI 20
/* s390: the real address of the task-token doubleword (in each vCPU's prefix area, which
 * the host maps to that vCPU's lb_vcpu::s390_token). */
#define LB_S390_TOKEN_REAL 0x340u

struct lb_vcpu {
    /* vCPU thread only: what the engine injected during the current call */
    uint32_t np_token;
    uint32_t np_pending;
    uint32_t irq_pending;
    /* xen-hvm: the VIRQ's event channel on this vCPU (0 = not bound: events are dropped) */
    uint32_t xen_port;
    uint32_t xen_upcall_vector;
    /* kicks: any thread. `pending` says a kick arrived; `idle` that the vCPU sleeps in
     * apf_loopback_idle() and must be woken. The pair is the store-buffer pattern: the vCPU
     * stores idle then loads pending, the kicker stores pending then loads idle, all seq_cst,
     * so at least one sees the other and no kick is lost; the mutex and condition variable
     * are used only when the vCPU really sleeps. */
    _Atomic int pending;
    _Atomic int idle;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    /* s390: this vCPU's token doubleword (big-endian), written by the vCPU thread before
     * each fault in place of the kernel's context switch */
    _Alignas(8) uint8_t s390_token[8];
};

struct lb_ram {
    uintptr_t base;
    size_t size;
};

struct apf_loopback {
    struct apf_loopback_config cfg;
    struct apf_host_ops hops;
    struct apf_host *host;
    struct apf_host_kvm_x86 *fe_x86;
    struct apf_host_kvm_arm64 *fe_arm64;
    struct apf_host_mmio *fe_mmio;
    struct apf_guest_mmio gm;
    struct apf_host_xen *fe_xen;
    struct apf_guest_xen gxen;
    struct apf_guest_kvm_x86 gx;
    struct apf_guest_kvm_arm64 ga;
    struct apf_host_s390 *fe_s390;
    struct apf_guest_s390 gs;
    _Atomic uint32_t s390_task_seq; /* s390: task ids handed out (never 0 or ~0) */
    struct apf_guest *guest;
    struct lb_ram ram[LB_MAX_RAM];
    uint32_t n_ram;
    uint32_t n_vcpus;
    struct lb_vcpu *vcpus;
};

/* ---- host side: the engine's callbacks ------------------------------------------------------- */

static bool lb_in(const void *base, size_t size, uint64_t gpa, uint32_t len)
{
    uintptr_t b = (uintptr_t)base;
    return gpa >= b && gpa - b <= size && len <= size - (gpa - b);
}

static void *lb_ram_ptr(struct apf_loopback *lb, uint64_t gpa, uint32_t len)
{
    for (uint32_t i = 0; i < lb->n_ram; i++) {
        const struct lb_ram *r = &lb->ram[i];
        if (gpa >= r->base && gpa - r->base <= r->size && len <= r->size - (gpa - r->base))
            return (void *)(uintptr_t)gpa;
    }
    /* s390: the vCPUs' token doublewords and the CANCEL block are guest memory too (and
     * nothing else of the loopback's own state) */
    if (lb->fe_s390) {
        if (lb_in(lb->gs.cancel, sizeof(lb->gs.cancel), gpa, len))
            return (void *)(uintptr_t)gpa;
        for (uint32_t i = 0; i < lb->n_vcpus; i++)
            if (lb_in(lb->vcpus[i].s390_token, sizeof(lb->vcpus[i].s390_token), gpa, len))
                return (void *)(uintptr_t)gpa;
    }
    return NULL;
}

static int lb_read(void *ctx, uint64_t gpa, void *buf, uint32_t len)
{
    void *p = lb_ram_ptr(ctx, gpa, len);
    if (p == NULL)
        return APF_EFAULT;
    memcpy(buf, p, len);
    return 0;
}

static int lb_write(void *ctx, uint64_t gpa, const void *buf, uint32_t len)
{
    void *p = lb_ram_ptr(ctx, gpa, len);
    if (p == NULL)
        return APF_EFAULT;
    memcpy(p, buf, len);
    return 0;
}

static void lb_inject_np(void *ctx, uint32_t vcpu, uint32_t token)
{
    struct apf_loopback *lb = ctx;
    lb->vcpus[vcpu].np_token = token;
    lb->vcpus[vcpu].np_pending = 1;
}

static void lb_inject_ready(void *ctx, uint32_t vcpu, uint32_t vector)
{
    struct apf_loopback *lb = ctx;
    (void)vector;
    /* Xen: a VIRQ without a bound port goes nowhere (the ring still holds the payload) */
    if (lb->fe_xen != NULL && lb->vcpus[vcpu].xen_port == 0)
        return;
    lb->vcpus[vcpu].irq_pending = 1;
    if (lb->fe_s390) {
        /* s390: a floating "page ready" is queued; any vCPU may take it, so wake them all
         * (the owner takes it at this very entry if it can). */
        for (uint32_t i = 0; i < lb->n_vcpus; i++)
            if (i != vcpu)
                apf_loopback_kick(lb, i);
    }
}

static void lb_kick(void *ctx, uint32_t vcpu)
{
    apf_loopback_kick(ctx, vcpu);
}

static int lb_resolve(void *ctx, uint32_t vcpu, uint64_t gpa)
{
    struct apf_loopback *lb = ctx;
    return lb->cfg.resolve(lb->cfg.ctx, vcpu, gpa);
}

static void lb_submit(void *ctx, uint32_t vcpu, uint32_t token, uint64_t gpa)
{
    struct apf_loopback *lb = ctx;
    lb->cfg.submit(lb->cfg.ctx, vcpu, token, gpa);
}

/* ---- guest side: the arch hooks, routed to the host frontend as a VMM would ------------------- */

static void lb_cpuid(void *ctx, uint32_t cpu, uint32_t leaf, uint32_t subleaf, uint32_t regs[4])
{
    struct apf_loopback *lb = ctx;
    (void)cpu, (void)subleaf;
    regs[0] = regs[1] = regs[2] = regs[3] = 0;
    apf_host_kvm_x86_cpuid(lb->fe_x86, leaf, regs);
}

static int lb_wrmsr(void *ctx, uint32_t cpu, uint32_t msr, uint64_t value)
{
    struct apf_loopback *lb = ctx;
    int r = apf_host_kvm_x86_wrmsr(lb->fe_x86, cpu, msr, value);
    return r == APF_HOST_KVM_X86_NOT_MINE ? APF_EINVAL : r; /* an MSR nobody handles: #GP */
}

static int lb_rdmsr(void *ctx, uint32_t cpu, uint32_t msr, uint64_t *value)
{
    struct apf_loopback *lb = ctx;
    int r = apf_host_kvm_x86_rdmsr(lb->fe_x86, cpu, msr, value);
    return r == APF_HOST_KVM_X86_NOT_MINE ? APF_EINVAL : r;
}

static const struct apf_x86_arch_ops lb_x86_arch = {lb_cpuid, lb_wrmsr, lb_rdmsr};

static void lb_smccc(void *ctx, uint32_t cpu, const uint64_t in[4], uint64_t out[4])
{
    struct apf_loopback *lb = ctx;
    out[1] = out[2] = out[3] = 0;
    if ((uint32_t)in[0] == APF_ARM64_FEATURES_FUNC_ID) {
        out[0] = apf_host_kvm_arm64_features(); /* the VMM answers the features query */
        return;
    }
    if (apf_host_kvm_arm64_hvc(lb->fe_arm64, cpu, in, out) != 0)
        out[0] = (uint64_t)(int64_t)APF_SMCCC_NOT_SUPPORTED;
}

static const struct apf_arm64_arch_ops lb_arm64_arch = {lb_smccc};

/* apf-mmio: the guest's loads and stores to the window, routed with the accessing vCPU. */
static uint32_t lb_mmio_read32(void *ctx, uint32_t cpu, uint32_t offset)
{
    struct apf_loopback *lb = ctx;
    uint32_t v = 0;
    if (apf_host_mmio_access(lb->fe_mmio, cpu, offset, 4, 0, &v) != 0)
        v = 0;
    return v;
}

static void lb_mmio_write32(void *ctx, uint32_t cpu, uint32_t offset, uint32_t value)
{
    struct apf_loopback *lb = ctx;
    apf_host_mmio_access(lb->fe_mmio, cpu, offset, 4, 1, &value);
}

static const struct apf_mmio_io_ops lb_mmio_io = {lb_mmio_read32, lb_mmio_write32};

/* xen-hvm: the loopback plays Xen. The APF sub-op goes to the frontend (its argument read
 * through the bounds-checked accessor); discovery, the upcall vector and the VIRQ binding
 * are Xen's own, modelled here (argument pointers are this process's addresses). */
static int64_t lb_xen_hypercall(void *ctx, uint32_t cpu, uint32_t nr, const uint64_t args[5])
{
    struct apf_loopback *lb = ctx;
    struct lb_vcpu *v = &lb->vcpus[cpu];
    switch (nr) {
    case APF_XEN_HC_XEN_VERSION:
        if (args[0] == APF_XEN_XENVER_GET_FEATURES) {
            struct apf_xen_feature_info *fi = (void *)(uintptr_t)args[1];
            fi->submap = apf_host_xen_features(fi->submap_idx);
            return 0;
        }
        return -(int64_t)APF_XEN_ENOSYS;
    case APF_XEN_HC_HVM_OP:
        if (args[0] == APF_XEN_HVMOP_SET_EVTCHN_UPCALL_VECTOR) {
            const struct apf_xen_upcall_vector *u = (const void *)(uintptr_t)args[1];
            if (u->vcpu >= lb->n_vcpus || u->vector < APF_XEN_UPCALL_VECTOR_MIN)
                return -(int64_t)APF_XEN_EINVAL;
            lb->vcpus[u->vcpu].xen_upcall_vector = u->vector;
            return 0;
        }
        return -(int64_t)APF_XEN_ENOSYS;
    case APF_XEN_HC_EVENT_CHANNEL_OP:
        if (args[0] == APF_XEN_EVTCHNOP_BIND_VIRQ) {
            struct apf_xen_evtchn_bind_virq *b = (void *)(uintptr_t)args[1];
            if (b->virq != APF_XEN_VIRQ_APF || b->vcpu != cpu)
                return -(int64_t)APF_XEN_EINVAL;
            if (v->xen_port != 0)
                return -17; /* -EEXIST: already bound on this vCPU */
            v->xen_port = cpu + 1;
            b->port = v->xen_port;
            return 0;
        }
        return -(int64_t)APF_XEN_ENOSYS;
    default: {
        int64_t ret;
        if (apf_host_xen_hypercall(lb->fe_xen, cpu, nr, args, &ret) != 0)
            return -(int64_t)APF_XEN_ENOSYS;
        return ret;
    }
    }
}

static const struct apf_xen_arch_ops lb_xen_arch = {lb_xen_hypercall};
/* s390: DIAGNOSE X'258' intercepted and handed to the frontend; a program exception comes
 * back as the frontend's negative code. */
static int lb_diag258(void *ctx, uint32_t cpu, uint64_t block)
{
    struct apf_loopback *lb = ctx;
    uint64_t ry = 0;
    int err = apf_host_s390_diag258(lb->fe_s390, cpu, block, &ry);
    return err ? err : (int)ry;
}

static const struct apf_s390_arch_ops lb_s390_arch = {lb_diag258};

/* Prefixing: the token's real address is each vCPU's own doubleword. */
static uint64_t lb_real_to_abs(void *ctx, uint32_t vcpu, uint64_t real)
{
    struct apf_loopback *lb = ctx;
    return real == LB_S390_TOKEN_REAL ? (uint64_t)(uintptr_t)lb->vcpus[vcpu].s390_token : real;
}

static bool lb_is_s390(const struct apf_loopback *lb)
{
    return lb->cfg.host.transport == &apf_host_transport_s390;
}

/* The gate's inputs from the engine's guest-state bits: external interrupts = IRQ_ON,
 * problem state = USER, CR0 service-signal subclass = IRQCHIP_ON, pending = EXC_PENDING. */
static struct apf_host_s390_cpu lb_s390_cpu(uint32_t gs)
{
    struct apf_host_s390_cpu c = {0};
    if (gs & APF_GS_IRQ_ON)
        c.psw_mask |= APF_S390_PSW_MASK_EXT;
    if (gs & APF_GS_USER)
        c.psw_mask |= APF_S390_PSW_MASK_PSTATE;
    if (gs & APF_GS_IRQCHIP_ON)
        c.cr0 |= APF_S390_CR0_SERVICE_SIGNAL;
    c.pending = (gs & APF_GS_EXC_PENDING) != 0;
    return c;
}

/* ---- create / destroy ---------------------------------------------------------------------------- */

static bool lb_is_x86(const struct apf_loopback *lb)
{
    return lb->cfg.host.transport == &apf_host_transport_kvm_x86;
}

static bool lb_is_mmio(const struct apf_loopback *lb)
{
    return lb->cfg.host.transport == &apf_host_transport_mmio;
}

static bool lb_is_xen(const struct apf_loopback *lb)
{
    return lb->cfg.host.transport == &apf_host_transport_xen;
}

/* What the "not present" exception carries: CR2 = token on x86 (KVM, apf-mmio x86 kind);
 * nothing on the arm64 SDEI event and the arm64 / riscv64 synchronous aborts of apf-mmio
 * (the guest reads the token from its area). */
static uint32_t lb_np_hint(const struct apf_loopback *lb, uint32_t token)
{
    if (lb_is_x86(lb) || lb_is_xen(lb))
        return token;
    if (lb_is_mmio(lb))
        return lb->gm.np_kind == APF_MMIO_NP_X86_PF ? token : 0;
    return 0;
}

int apf_loopback_create(const struct apf_loopback_config *cfg, struct apf_loopback **out)
{
    if (cfg == NULL || out == NULL)
        return APF_EINVAL;
    const struct apf_host_config *hcfg = &cfg->host;
    bool mmio = hcfg->transport == &apf_host_transport_mmio;
    bool xen = hcfg->transport == &apf_host_transport_xen;
    if (hcfg->transport != &apf_host_transport_kvm_x86 &&
        hcfg->transport != &apf_host_transport_kvm_arm64 && !mmio && !xen &&
        hcfg->transport != &apf_host_transport_s390)
        return APF_EINVAL;
    if (cfg->mmio_np_kind > APF_MMIO_NP_RISCV_ACCESS_FAULT || (cfg->mmio_np_kind && !mmio))
        return APF_EINVAL;
    if (hcfg->ops != NULL || hcfg->ctx != NULL)
        return APF_EINVAL; /* the loopback's own */
    if (hcfg->n_workers ? cfg->resolve == NULL : cfg->submit == NULL)
        return APF_EINVAL;
    for (unsigned i = 0; i < sizeof(cfg->reserved) / sizeof(cfg->reserved[0]); i++)
        if (cfg->reserved[i])
            return APF_EINVAL;
    uint32_t ppi = cfg->ppi ? cfg->ppi : LB_DEFAULT_PPI;
    bool x86 = hcfg->transport == &apf_host_transport_kvm_x86;
    bool s390 = hcfg->transport == &apf_host_transport_s390;
    if (s390 && (cfg->ppi || cfg->ring_entries))
        return APF_EINVAL; /* neither exists on s390 */
    if (!x86 && !mmio && !xen && !s390 && (ppi < APF_ARM64_PPI_MIN || ppi > APF_ARM64_PPI_MAX))
        return APF_EINVAL;
    uint32_t ring = cfg->ring_entries;
    if (ring && (x86 || ring < APF_RING_MIN_ENTRIES || ring > APF_RING_MAX_ENTRIES ||
                 (ring & (ring - 1))))
        return APF_EINVAL;
    if (hcfg->n_vcpus == 0 || hcfg->n_vcpus > APF_HOST_MAX_VCPUS)
        return APF_EINVAL;

    struct apf_loopback *lb = calloc(1, sizeof(*lb));
    if (lb == NULL)
        return APF_ENOMEM;
    lb->cfg = *cfg;
    lb->n_vcpus = hcfg->n_vcpus;
    lb->vcpus = calloc(lb->n_vcpus, sizeof(*lb->vcpus));
    if (lb->vcpus == NULL) {
        free(lb);
        return APF_ENOMEM;
    }
    for (uint32_t i = 0; i < lb->n_vcpus; i++) {
        pthread_mutex_init(&lb->vcpus[i].lock, NULL);
        pthread_cond_init(&lb->vcpus[i].cv, NULL);
    }
    lb->hops = (struct apf_host_ops){
        .resolve = cfg->resolve ? lb_resolve : NULL,
        .submit = cfg->submit ? lb_submit : NULL,
        .inject_not_present = lb_inject_np,
        .inject_ready = lb_inject_ready,
        .kick = lb_kick,
        .read_guest = lb_read,
        .write_guest = lb_write,
    };
    struct apf_host_config hc = *hcfg;
    hc.ops = &lb->hops;
    hc.ctx = lb;
    int err = apf_host_create(&hc, &lb->host);
    if (err == 0) {
        if (s390) {
            struct apf_host_s390_config sc = {.real_to_abs = lb_real_to_abs, .ctx = lb};
            err = apf_host_s390_create(lb->host, &sc, &lb->fe_s390);
            apf_guest_s390_init(&lb->gs, &lb_s390_arch, lb, LB_S390_TOKEN_REAL);
            lb->gs.cancel_pa = (uint64_t)(uintptr_t)lb->gs.cancel;
        } else if (x86) {
            err = apf_host_kvm_x86_create(lb->host, NULL, &lb->fe_x86);
            apf_guest_kvm_x86_init(&lb->gx, &lb_x86_arch, lb);
        } else if (xen) {
            err = apf_host_xen_create(lb->host, NULL, &lb->fe_xen);
            apf_guest_xen_init(&lb->gxen, &lb_xen_arch, lb);
            if (ring)
                lb->gxen.ring_entries = ring;
            /* the backend context is kernel data Xen reads (the unregister argument) */
            if (err == 0)
                err = apf_loopback_add_ram(lb, &lb->gxen, sizeof(lb->gxen));
        } else if (mmio) {
            struct apf_host_mmio_config mc = {
                .irq = ppi,
                .np_kind = cfg->mmio_np_kind ? cfg->mmio_np_kind : APF_MMIO_NP_X86_PF};
            err = apf_host_mmio_create(lb->host, &mc, &lb->fe_mmio);
            apf_guest_mmio_init(&lb->gm, &lb_mmio_io, lb);
            if (ring)
                lb->gm.ring_entries = ring;
            lb->gm.np_kind = mc.np_kind; /* probe reads it again from the window */
        } else {
            err = apf_host_kvm_arm64_create(lb->host, NULL, &lb->fe_arm64);
            for (uint32_t i = 0; err == 0 && i < lb->n_vcpus; i++)
                err = apf_host_kvm_arm64_set_irq(lb->fe_arm64, i, ppi);
            apf_guest_kvm_arm64_init(&lb->ga, &lb_arm64_arch, lb);
            lb->ga.ring_entries = ring;
        }
    }
    if (err) {
        apf_loopback_destroy(lb);
        return err;
    }
    *out = lb;
    return 0;
}

void apf_loopback_destroy(struct apf_loopback *lb)
{
    if (lb == NULL)
        return;
    apf_host_kvm_x86_destroy(lb->fe_x86);
    apf_host_kvm_arm64_destroy(lb->fe_arm64);
    apf_host_mmio_destroy(lb->fe_mmio);
    apf_host_xen_destroy(lb->fe_xen);
    apf_host_s390_destroy(lb->fe_s390);
    apf_host_destroy(lb->host);
    for (uint32_t i = 0; i < lb->n_vcpus; i++) {
        pthread_mutex_destroy(&lb->vcpus[i].lock);
        pthread_cond_destroy(&lb->vcpus[i].cv);
    }
    free(lb->vcpus);
    free(lb);
}

struct apf_host *apf_loopback_host(const struct apf_loopback *lb)
{
    return lb->host;
}

int apf_loopback_add_ram(struct apf_loopback *lb, void *base, size_t size)
{
    if (size == 0 || (uintptr_t)base + size < (uintptr_t)base)
        return APF_EINVAL;
    if (lb->n_ram == LB_MAX_RAM)
        return APF_ENOSPC;
    lb->ram[lb->n_ram++] = (struct lb_ram){(uintptr_t)base, size};
    return 0;
}

void apf_loopback_guest_backend(struct apf_loopback *lb, const struct apf_guest_backend_ops **ops,
                                void **ctx)
{
    if (lb_is_s390(lb)) {
        *ops = &apf_guest_backend_s390;
        *ctx = &lb->gs;
    } else if (lb_is_x86(lb)) {
        *ops = &apf_guest_backend_kvm_x86;
        *ctx = &lb->gx;
    } else if (lb_is_mmio(lb)) {
        *ops = &apf_guest_backend_mmio;
        *ctx = &lb->gm;
    } else if (lb_is_xen(lb)) {
        *ops = &apf_guest_backend_xen;
        *ctx = &lb->gxen;
    } else {
        *ops = &apf_guest_backend_kvm_arm64;
        *ctx = &lb->ga;
    }
}

void apf_loopback_attach(struct apf_loopback *lb, struct apf_guest *g)
{
    lb->guest = g;
}

uint64_t apf_loopback_virt_to_phys(void *ctx, const void *va)
{
    (void)ctx;
    return (uint64_t)(uintptr_t)va;
}

/* ---- the vCPU model -------------------------------------------------------------------------------- */

/* One guest entry: the engine's before-entry step, then the interrupt it raised, if any.
 * The guest's ACK (a wrmsr / hvc inside its handler) is an exit of its own, after which
 * the next entry may carry the next "page ready": apf_loopback_deliver loops over entries. */
/* s390: the entry moves this vCPU's completions to the floating FIFO and, if this vCPU can
 * take a service-signal interrupt, takes the oldest floating one (any vCPU's). */
static int lb_entry_s390(struct apf_loopback *lb, uint32_t vcpu, uint32_t guest_state)
{
    struct apf_host_s390_cpu c = lb_s390_cpu(guest_state);
    uint64_t param;
    lb->vcpus[vcpu].irq_pending = 0;
    int r = apf_host_s390_before_entry(lb->fe_s390, vcpu, &c, &param);
    if (r <= 0)
        return r;
    if (lb->guest && apf_guest_s390_external(lb->guest, vcpu, APF_S390_EXT_CODE,
                                             APF_S390_EXT_SUB_DONE, param) != 1)
        return APF_EPROTO;
    return 1;
}

static int lb_entry(struct apf_loopback *lb, uint32_t vcpu, uint32_t guest_state)
{
    struct lb_vcpu *v = &lb->vcpus[vcpu];
    if (lb->fe_s390)
        return lb_entry_s390(lb, vcpu, guest_state);
    int r = apf_host_vcpu_before_entry(lb->host, vcpu, guest_state);
    if (r <= 0)
        return r;
    if (!v->irq_pending) {
        /* Posted without a notification: only a ring holds one off (the guest is still
         * draining and will find the entries); a slot always raises its vector. */
        return apf_host_chan_get(lb->host, vcpu)->needs_ack ? APF_EPROTO : 0;
    }
    v->irq_pending = 0;
    if (lb->guest)
        apf_guest_on_interrupt(lb->guest, vcpu);
    return 1;
}

int apf_loopback_deliver(struct apf_loopback *lb, uint32_t vcpu, uint32_t guest_state)
{
    if (vcpu >= lb->n_vcpus)
        return APF_EINVAL;
    int n = 0, r;
    while ((r = lb_entry(lb, vcpu, guest_state)) == 1)
        n++;
    return r < 0 ? r : n;
}

int apf_loopback_pending(struct apf_loopback *lb, uint32_t vcpu)
{
    if (vcpu >= lb->n_vcpus)
        return 0;
    _Atomic int *p = &lb->vcpus[vcpu].pending;
    /* a plain load first: the common answer is "no", and it costs no locked instruction */
    if (!atomic_load_explicit(p, memory_order_relaxed))
        return 0;
    return atomic_exchange_explicit(p, 0, memory_order_acquire);
}

int apf_loopback_fault(struct apf_loopback *lb, uint32_t vcpu, uint64_t gpa, uint32_t guest_state)
{
    if (vcpu >= lb->n_vcpus)
        return APF_EINVAL;
    struct lb_vcpu *v = &lb->vcpus[vcpu];
    v->np_pending = 0;
    int r;
    uint64_t param = 0;
    if (lb->fe_s390) {
        /* In place of the kernel's context switch: the running task's token, fresh per
         * fault (a task waits for one token at a time; ids are unique, never 0 or ~0). */
        uint32_t id;
        do
            id = atomic_fetch_add_explicit(&lb->s390_task_seq, 1, memory_order_relaxed) + 1;
        while (id == 0 || id == 0xffffffffu);
        uint64_t t = apf_guest_s390_task_token(id);
        for (int i = 0; i < 8; i++)
            v->s390_token[i] = (uint8_t)(t >> (56 - 8 * i));
        struct apf_host_s390_cpu c = lb_s390_cpu(guest_state);
        r = apf_host_s390_fault(lb->fe_s390, vcpu, gpa, &c, &param);
    } else {
        r = apf_host_vcpu_fault(lb->host, vcpu, gpa, guest_state);
    }
    if (r == APF_FAULT_ASYNC && lb->fe_s390) {
        v->np_pending = 0;
        /* external interrupt 0x2603/0x0600 at the faulting instruction */
        if (lb->guest && apf_guest_s390_external(lb->guest, vcpu, APF_S390_EXT_CODE,
                                                 APF_S390_EXT_SUB_INIT, param) != 1)
            return APF_EPROTO;
    } else if (r == APF_FAULT_ASYNC) {
        if (!v->np_pending)
            return APF_EPROTO;
        v->np_pending = 0;
        /* The injected exception, taken at the faulting instruction. */
        uint32_t hint = lb_np_hint(lb, v->np_token);
        if (lb->guest && apf_guest_on_exception(lb->guest, vcpu, hint) != 1)
            return APF_EPROTO; /* the guest did not recognise its "not present" */
    } else if (r == APF_FAULT_HALT) {
        /* Artificial halt: the vCPU does not run the task, but takes interrupts. */
        while (apf_host_vcpu_halted(lb->host, vcpu) == 1) {
            if (apf_loopback_deliver(lb, vcpu, guest_state) == 0)
                apf_loopback_idle(lb, vcpu, 10 * 1000 * 1000);
        }
    }
    return r;
}

int apf_loopback_idle(struct apf_loopback *lb, uint32_t vcpu, uint64_t timeout_ns)
{
    if (vcpu >= lb->n_vcpus)
        return 0;
    struct lb_vcpu *v = &lb->vcpus[vcpu];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + timeout_ns;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    pthread_mutex_lock(&v->lock);
    atomic_store_explicit(&v->idle, 1, memory_order_seq_cst);
    while (!atomic_load_explicit(&v->pending, memory_order_seq_cst)) {
        if (pthread_cond_timedwait(&v->cv, &v->lock, &ts) != 0)
            break;
    }
    atomic_store_explicit(&v->idle, 0, memory_order_relaxed);
    pthread_mutex_unlock(&v->lock);
    return atomic_exchange_explicit(&v->pending, 0, memory_order_acquire);
}

void apf_loopback_kick(struct apf_loopback *lb, uint32_t vcpu)
{
    if (vcpu >= lb->n_vcpus)
        return;
    struct lb_vcpu *v = &lb->vcpus[vcpu];
    atomic_store_explicit(&v->pending, 1, memory_order_seq_cst);
    if (!atomic_load_explicit(&v->idle, memory_order_seq_cst))
        return; /* running: it sees `pending` at its next delivery point */
    pthread_mutex_lock(&v->lock);
    pthread_cond_signal(&v->cv);
    pthread_mutex_unlock(&v->lock);
}
