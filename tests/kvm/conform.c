/* SPDX-License-Identifier: MIT */
/*
 * apf-kvm-conform: Linux KVM's own host side of the x86 async page fault protocol and
 * libapf-host's kvm_x86 frontend, given the same guest inputs, must give the same
 * guest-visible outputs.
 *
 * One script of guest inputs (MSR writes, accesses to missing pages with interrupts on or
 * off, entries into the guest, the guest consuming the token and ACKing) is played twice:
 *  - against Linux KVM: a VM whose vCPU runs a few instructions at CPL 3 with no IDT, over a
 *    userfaultfd-backed slot. Code at CPL 3 runs natively even under the software (PVM) KVM
 *    of the project's machines, so KVM's in-kernel machinery really decides async vs sync,
 *    allocates the token, writes the reason and raises #PF; the vCPU cannot take the event
 *    without an IDT, so KVM_RUN returns (shutdown) and the VMM reads what KVM left: CR2, the
 *    exception, the shared area, the local APIC's IRR/ISR. The VMM plays the guest between
 *    two entries (it clears the area's token as the guest's handler would, ACKs with
 *    KVM_SET_MSRS and EOIs by clearing IRR/ISR), and resolves pages when the script says;
 *  - against libapf-host (one engine, the kvm_x86 frontend, embedder-completion mode) over a
 *    model of the same guest memory.
 * Each step's outcome is a short text; the two columns must be equal line for line.
 *
 *   apf-kvm-conform [-v] [--timeout S] [--trace FILE]
 *
 * --trace FILE writes libapf-host's side as a protocol trace (apf/trace.h) for
 * apf-trace-check; Linux KVM's side is in its tracepoints (tests/kvm/record-kvm-trace.sh).
 *
 * Exit status: 0 identical; 1 a difference or a failure; 77 KVM, its APF support or
 * userfaultfd is unusable here, or KVM never went async (a skip).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <unistd.h>

#include <linux/userfaultfd.h>

#include "apf/error.h"
#include "apf/host.h"
#include "apf/host_kvm_x86.h"
#include "apf/proto.h"
#include "apf/trace.h"
#include "guest_abi.h"
#include "remote.h"
#include "vm.h"

#define EXIT_SKIP 77

/* Guest-physical layout of the probe VM (inside the low slot of guest_abi.h). */
#define CONF_CODE 0x9000u             /* touch stubs: CONF_CODE + 16 * page */
#define CONF_IDLE (CONF_CODE + 0x100) /* jmp . */
#define CONF_AREA 0xa000u             /* the shared area (64-byte aligned) */
#define CONF_STACK 0x20000u
#define CONF_PAGES 8u
#define CONF_VECTOR 0xecu
#define TOUCH_LEN 10u /* movabs rax, [imm64] */

/* ---- the script ----------------------------------------------------------------------- */

enum op {
    OP_WRMSR,   /* a: MSR, b: value */
    OP_RDMSR,   /* a: MSR */
    OP_FAULT,   /* a: page; b: 1 interrupts on, 0 off */
    OP_RESOLVE, /* a: page: its contents arrive */
    OP_ENTRY,   /* enter the guest; b: 1 if a "page ready" may be due (wait longer) */
    OP_CONSUME, /* the guest reads the token and writes 0 to the slot */
    OP_ACK      /* the guest writes ASYNC_PF_ACK = 1 */
};

struct step {
    enum op op;
    uint32_t a;
    uint64_t b;
    const char *what;
};

#define EN_ON (CONF_AREA | APF_EN_ENABLED | APF_EN_DELIVERY_AS_INT)

static const struct step script[] = {
    {OP_WRMSR, APF_KVM_MSR_ASYNC_PF_EN, CONF_AREA | APF_EN_ENABLED | 0x10u,
     "EN with reserved bit 4"},
    {OP_RDMSR, APF_KVM_MSR_ASYNC_PF_EN, 0, "read EN (unchanged)"},
    {OP_WRMSR, APF_KVM_MSR_ASYNC_PF_INT, 0x1ecu, "INT with bits above 7"},
    {OP_WRMSR, APF_KVM_MSR_ASYNC_PF_INT, CONF_VECTOR, "INT = vector"},
    {OP_WRMSR, APF_KVM_MSR_ASYNC_PF_EN, EN_ON, "EN = area|ENABLED|AS_INT"},
    {OP_RDMSR, APF_KVM_MSR_ASYNC_PF_EN, 0, "read EN"},
    {OP_RDMSR, APF_KVM_MSR_ASYNC_PF_INT, 0, "read INT"},
    {OP_ENTRY, 0, 1, "entry (wake-all due)"},
    {OP_ENTRY, 0, 0, "entry, token not consumed"},
    {OP_CONSUME, 0, 0, "guest consumes the token"},
    {OP_ENTRY, 0, 0, "entry, not ACKed"},
    {OP_ACK, 0, 0, "guest ACKs"},
    {OP_FAULT, 0, 1, "user touches page 0, IF=1"},
    {OP_FAULT, 1, 1, "user touches page 1, IF=1"},
    {OP_FAULT, 2, 1, "user touches page 2, IF=1"},
    {OP_FAULT, 3, 1, "user touches page 3, IF=1"},
    {OP_FAULT, 4, 0, "user touches page 4, IF=0"},
    {OP_RESOLVE, 3, 0, "page 3 arrives"},
    {OP_ENTRY, 0, 1, "entry"},
    {OP_RESOLVE, 1, 0, "page 1 arrives"},
    {OP_ENTRY, 0, 0, "entry, token not consumed"},
    {OP_CONSUME, 0, 0, "guest consumes the token"},
    {OP_ENTRY, 0, 0, "entry, not ACKed"},
    {OP_ACK, 0, 0, "guest ACKs"},
    {OP_ENTRY, 0, 1, "entry"},
    {OP_CONSUME, 0, 0, "guest consumes the token"},
    {OP_ACK, 0, 0, "guest ACKs"},
    {OP_RESOLVE, 0, 0, "page 0 arrives"},
    {OP_ENTRY, 0, 1, "entry"},
    {OP_CONSUME, 0, 0, "guest consumes the token"},
    {OP_ACK, 0, 0, "guest ACKs"},
    {OP_RESOLVE, 2, 0, "page 2 arrives"},
    {OP_ENTRY, 0, 1, "entry"},
    {OP_CONSUME, 0, 0, "guest consumes the token"},
    {OP_ACK, 0, 0, "guest ACKs"},
    {OP_ENTRY, 0, 0, "entry, nothing left"},
    {OP_WRMSR, APF_KVM_MSR_ASYNC_PF_EN, 0, "EN = 0 (APF off)"},
    {OP_RDMSR, APF_KVM_MSR_ASYNC_PF_EN, 0, "read EN"},
    {OP_FAULT, 5, 1, "user touches page 5, IF=1"},
    {OP_ENTRY, 0, 0, "entry, nothing owed"},
};
#define N_STEPS (sizeof(script) / sizeof(script[0]))

#define OUT_LEN 64

static uint64_t page_gpa(uint32_t page) { return GABI_REMOTE_BASE + (uint64_t)page * GABI_PAGE_SIZE; }

static void out(char *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(char *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o, OUT_LEN, fmt, ap);
    va_end(ap);
}

static void describe_wrmsr(char *o, int accepted) { out(o, "%s", accepted ? "accepted" : "refused (#GP)"); }
static void describe_ready(char *o, uint32_t token, uint32_t vector)
{
    out(o, "page ready: token %#" PRIx32 ", vector %#" PRIx32, token, vector);
}
static void describe_np(char *o, uint32_t token, uint32_t flags)
{
    out(o, "#PF: CR2 %#" PRIx32 ", flags %" PRIu32, token, flags);
}
/* Guest-visible outcome of an access that did not go async: nothing happens to the guest;
 * the instruction completes once the page is in. How the host waited is its own business
 * (see the "host side" lines). */
#define NO_EVENT "no event; access done once page in"

/* ---- libapf-host over a model of the guest's memory ------------------------------------ */

struct lib_side {
    struct apf_host *h;
    struct apf_host_kvm_x86 *fe;
    uint8_t *mem; /* guest-physical [0, GABI_LOW_SIZE) */
    uint32_t token_of_page[CONF_PAGES];
    int submitted;
    int np, ready;
    uint32_t np_token, ready_vector;
};

static int lib_read(void *c, uint64_t gpa, void *buf, uint32_t len)
{
    struct lib_side *l = c;
    if (gpa > GABI_LOW_SIZE || len > GABI_LOW_SIZE - gpa)
        return APF_EFAULT;
    memcpy(buf, l->mem + gpa, len);
    return 0;
}
static int lib_write(void *c, uint64_t gpa, const void *buf, uint32_t len)
{
    struct lib_side *l = c;
    if (gpa > GABI_LOW_SIZE || len > GABI_LOW_SIZE - gpa)
        return APF_EFAULT;
    memcpy(l->mem + gpa, buf, len);
    return 0;
}
static void lib_submit(void *c, uint32_t vcpu, uint32_t token, uint64_t gpa)
{
    struct lib_side *l = c;
    (void)vcpu;
    uint64_t page = (gpa - GABI_REMOTE_BASE) / GABI_PAGE_SIZE;
    if (gpa >= GABI_REMOTE_BASE && page < CONF_PAGES)
        l->token_of_page[page] = token;
    l->submitted = 1;
}
static void lib_np(void *c, uint32_t vcpu, uint32_t token)
{
    struct lib_side *l = c;
    (void)vcpu;
    l->np = 1;
    l->np_token = token;
}
static void lib_ready(void *c, uint32_t vcpu, uint32_t vector)
{
    struct lib_side *l = c;
    (void)vcpu;
    l->ready = 1;
    l->ready_vector = vector;
}
static void lib_kick(void *c, uint32_t vcpu) { (void)c, (void)vcpu; }

static FILE *g_trace; /* --trace: libapf-host's events in libapf's text format */

static void lib_trace(void *ctx, const struct apf_trace_event *ev)
{
    char line[96];
    (void)ctx;
    if (apf_trace_format(ev, line, sizeof(line)) >= 0)
        fprintf(g_trace, "%s\n", line);
}

static int lib_open(struct lib_side *l)
{
    static const struct apf_host_ops ops = {.submit = lib_submit,
                                            .inject_not_present = lib_np,
                                            .inject_ready = lib_ready,
                                            .kick = lib_kick,
                                            .read_guest = lib_read,
                                            .write_guest = lib_write};
    memset(l, 0, sizeof(*l));
    l->mem = calloc(1, GABI_LOW_SIZE);
    if (l->mem == NULL)
        return APF_ENOMEM;
    struct apf_host_config cfg = {.n_vcpus = 1, .transport = &apf_host_transport_kvm_x86, .ops = &ops, .ctx = l,
                                  .trace = g_trace ? lib_trace : NULL};
    int rc = apf_host_create(&cfg, &l->h);
    if (rc == 0)
        rc = apf_host_kvm_x86_create(l->h, NULL, &l->fe);
    return rc;
}

static void lib_close(struct lib_side *l)
{
    apf_host_kvm_x86_destroy(l->fe);
    apf_host_destroy(l->h);
    free(l->mem);
}

/* What the guest state bits are while the probe runs: CPL 3, paging, local APIC on. */
static uint32_t lib_gs(int irq_on)
{
    return APF_GS_USER | APF_GS_PAGING | APF_GS_IRQCHIP_ON | (irq_on ? APF_GS_IRQ_ON : 0u);
}

static void lib_step(struct lib_side *l, const struct step *s, char *o, char *how)
{
    uint32_t *area = (uint32_t *)(void *)(l->mem + CONF_AREA);
    switch (s->op) {
    case OP_WRMSR:
        describe_wrmsr(o, apf_host_kvm_x86_wrmsr(l->fe, 0, s->a, s->b) == 0);
        return;
    case OP_RDMSR: {
        uint64_t v = 0;
        int rc = apf_host_kvm_x86_rdmsr(l->fe, 0, s->a, &v);
        if (rc != 0)
            out(o, "error %s", apf_err_name(rc));
        else
            out(o, "%#" PRIx64, v);
        return;
    }
    case OP_FAULT: {
        l->np = l->submitted = 0;
        int rc = apf_host_vcpu_fault(l->h, 0, page_gpa(s->a), lib_gs((int)s->b));
        if (rc == APF_FAULT_ASYNC && l->np) {
            describe_np(o, l->np_token, area[0]);
            area[0] = 0; /* the guest's #PF handler reads and clears the reason */
            out(how, "ASYNC: work %s", l->submitted ? "submitted" : "NOT submitted");
        } else if (rc == APF_FAULT_SYNC) {
            out(o, NO_EVENT);
            out(how, "SYNC: the VMM fetches on the vCPU thread");
        } else if (rc == APF_FAULT_HALT) {
            out(o, "vCPU halted until the page is in");
        } else {
            out(o, "unexpected: fault() = %d", rc);
        }
        return;
    }
    case OP_RESOLVE: {
        int rc = apf_host_complete(l->h, 0, l->token_of_page[s->a], 0);
        out(o, "%s", rc == 0 ? "resolved" : apf_err_name(rc));
        return;
    }
    case OP_ENTRY: {
        l->ready = 0;
        int rc = apf_host_vcpu_before_entry(l->h, 0, lib_gs(1));
        if (rc == 1 && l->ready)
            describe_ready(o, area[1], l->ready_vector);
        else if (rc == 0)
            out(o, "nothing");
        else
            out(o, "unexpected: before_entry() = %d", rc);
        return;
    }
    case OP_CONSUME:
        area[1] = 0;
        out(o, "slot 0");
        return;
    case OP_ACK:
        describe_wrmsr(o, apf_host_kvm_x86_wrmsr(l->fe, 0, APF_KVM_MSR_ASYNC_PF_ACK, 1) == 0);
        return;
    }
}

/* ---- Linux KVM -------------------------------------------------------------------------- */

struct kvm_side {
    struct vmm_vm vm;
    struct vmm_remote remote;
    struct kvm_sregs sregs; /* user mode, as set before every entry */
    pid_t vcpu_tid;
    pthread_t reader;
    int reader_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int fault_tid_class[CONF_PAGES]; /* 0 not seen, 1 vCPU thread, 2 another thread */
    int verbose;
};

/* Reads userfaultfd messages: a fault raised by the vCPU thread is synchronous (KVM_RUN is
 * stuck on it) and is resolved at once; one raised by another thread is KVM's async work
 * and waits for the script's "arrives" step. */
static void *reader_main(void *arg)
{
    struct kvm_side *k = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = k->remote.uffd, .events = POLLIN},
                              {.fd = k->remote.stop_fd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (p[1].revents)
            return NULL;
        struct uffd_msg m;
        ssize_t n = read(k->remote.uffd, &m, sizeof(m));
        if (n != (ssize_t)sizeof(m) || m.event != UFFD_EVENT_PAGEFAULT)
            continue;
        uint64_t off = (m.arg.pagefault.address - (uint64_t)(uintptr_t)k->remote.host) &
                       ~(uint64_t)(GABI_PAGE_SIZE - 1);
        uint64_t gpa = k->remote.gpa + off;
        uint32_t page = (uint32_t)(off / GABI_PAGE_SIZE);
        int from_vcpu = (pid_t)m.arg.pagefault.feat.ptid == k->vcpu_tid;
        if (k->verbose)
            fprintf(stderr, "  [uffd] page %u from thread %u (%s)\n", page,
                    m.arg.pagefault.feat.ptid, from_vcpu ? "the vCPU" : "a KVM worker");
        if (page < CONF_PAGES) {
            pthread_mutex_lock(&k->lock);
            if (k->fault_tid_class[page] == 0)
                k->fault_tid_class[page] = from_vcpu ? 1 : 2;
            pthread_cond_broadcast(&k->cond);
            pthread_mutex_unlock(&k->lock);
        }
        if (from_vcpu)
            (void)vmm_remote_copy_in(&k->remote, gpa);
    }
}

/* Waits up to @p ms for the first fault message of @p page; its class (0 if none came). */
static int kvm_fault_class(struct kvm_side *k, uint32_t page, int ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&k->lock);
    while (k->fault_tid_class[page] == 0)
        if (pthread_cond_timedwait(&k->cond, &k->lock, &dl) != 0)
            break;
    int c = k->fault_tid_class[page];
    pthread_mutex_unlock(&k->lock);
    return c;
}

static void on_alarm(int sig) { (void)sig; }

struct kvm_exit_info {
    int rc;      /* KVM_RUN: 0, or -errno (-EINTR: the budget ran out) */
    uint32_t reason;
    uint64_t rip, cr2;
    int exc_valid;
    uint32_t exc_nr;
};

/* Enters the vCPU at @p rip in user mode for at most @p budget_us (a timer signal ends a
 * natively running loop; a stuck userfaultfd wait is ended by the reader thread). */
static int kvm_enter(struct kvm_side *k, uint64_t rip, int irq_on, uint32_t budget_us,
                     struct kvm_exit_info *x)
{
    int fd = k->vm.vcpu_fd;
    if (ioctl(fd, KVM_SET_SREGS, &k->sregs) < 0)
        return -errno;
    struct kvm_vcpu_events ev;
    if (ioctl(fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
        return -errno;
    memset(&ev.exception, 0, sizeof(ev.exception));
    memset(&ev.interrupt, 0, sizeof(ev.interrupt));
    ev.flags = 0;
    if (ioctl(fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
        return -errno;
    struct kvm_regs r;
    memset(&r, 0, sizeof(r));
    r.rip = rip;
    r.rsp = CONF_STACK;
    r.rflags = 0x2u | (irq_on ? 0x200u : 0u);
    if (ioctl(fd, KVM_SET_REGS, &r) < 0)
        return -errno;

    struct itimerval it = {.it_value = {.tv_sec = budget_us / 1000000u,
                                        .tv_usec = (suseconds_t)(budget_us % 1000000u)}};
    setitimer(ITIMER_REAL, &it, NULL);
    int rc = ioctl(fd, KVM_RUN, 0);
    x->rc = rc < 0 ? -errno : 0;
    memset(&it, 0, sizeof(it));
    setitimer(ITIMER_REAL, &it, NULL);
    x->reason = rc < 0 ? 0 : k->vm.run->exit_reason;

    struct kvm_sregs sr;
    if (ioctl(fd, KVM_GET_REGS, &r) < 0 || ioctl(fd, KVM_GET_SREGS, &sr) < 0 ||
        ioctl(fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
        return -errno;
    x->rip = r.rip;
    x->cr2 = sr.cr2;
    x->exc_valid = ev.exception.injected || ev.exception.pending || ev.exception.nr != 0;
    x->exc_nr = ev.exception.nr;
    return 0;
}

/* The lowest vector set in the local APIC's IRR or ISR (0 if none); with @p eoi, clears it
 * in both, as the guest's EOI would. */
static int kvm_take_vector(struct kvm_side *k, uint32_t *vector, int eoi)
{
    struct kvm_lapic_state s;
    if (ioctl(k->vm.vcpu_fd, KVM_GET_LAPIC, &s) < 0)
        return -errno;
    *vector = 0;
    for (uint32_t v = 32; v < 256 && *vector == 0; v++) {
        uint32_t irr, isr;
        memcpy(&irr, &s.regs[0x200 + (v / 32) * 16], 4);
        memcpy(&isr, &s.regs[0x100 + (v / 32) * 16], 4);
        if (((irr | isr) >> (v % 32)) & 1u)
            *vector = v;
    }
    if (*vector != 0 && eoi) {
        uint32_t bit = 1u << (*vector % 32), w;
        for (uint32_t base = 0x100; base <= 0x200; base += 0x100) {
            memcpy(&w, &s.regs[base + (*vector / 32) * 16], 4);
            w &= ~bit;
            memcpy(&s.regs[base + (*vector / 32) * 16], &w, 4);
        }
        if (ioctl(k->vm.vcpu_fd, KVM_SET_LAPIC, &s) < 0)
            return -errno;
    }
    return 0;
}

static int kvm_apic_enable(struct kvm_side *k)
{
    struct kvm_lapic_state s;
    if (ioctl(k->vm.vcpu_fd, KVM_GET_LAPIC, &s) < 0)
        return -errno;
    uint32_t svr = 0x1ffu; /* software-enabled, spurious vector 0xff */
    memcpy(&s.regs[0xf0], &svr, 4);
    return ioctl(k->vm.vcpu_fd, KVM_SET_LAPIC, &s) < 0 ? -errno : 0;
}

/* Writes the user-mode stubs: for each page, `movabs rax, [page]; jmp .`; and `jmp .`. */
static void kvm_write_code(uint8_t *low)
{
    for (uint32_t p = 0; p < CONF_PAGES; p++) {
        uint8_t *c = low + CONF_CODE + 16u * p;
        uint64_t a = page_gpa(p);
        c[0] = 0x48;
        c[1] = 0xa1;
        memcpy(c + 2, &a, 8);
        c[10] = 0xeb;
        c[11] = 0xfe;
    }
    low[CONF_IDLE] = 0xeb;
    low[CONF_IDLE + 1] = 0xfe;
}

static uint32_t *kvm_area(struct kvm_side *k)
{
    return (uint32_t *)vmm_vm_low_ptr(&k->vm, CONF_AREA, APF_AREA_SIZE);
}

static void kvm_step(struct kvm_side *k, const struct step *s, char *o, char *how)
{
    volatile uint32_t *area = kvm_area(k);
    struct kvm_exit_info x;
    switch (s->op) {
    case OP_WRMSR: {
        int rc = vmm_vm_set_msr(&k->vm, s->a, s->b);
        if (rc < 0)
            out(o, "error: KVM_SET_MSRS: %s", strerror(-rc));
        else
            describe_wrmsr(o, rc == 1);
        return;
    }
    case OP_RDMSR: {
        uint64_t v = 0;
        int rc = vmm_vm_get_msrs(&k->vm, &s->a, &v, 1);
        if (rc != 1)
            out(o, "error: KVM_GET_MSRS = %d", rc);
        else
            out(o, "%#" PRIx64, v);
        return;
    }
    case OP_FAULT: {
        uint64_t rip = CONF_CODE + 16u * s->a;
        int rc = kvm_enter(k, rip, (int)s->b, 200000, &x);
        if (rc < 0) {
            out(o, "error: %s", strerror(-rc));
            return;
        }
        int cls = kvm_fault_class(k, s->a, 2000);
        static const char *const thread[] = {"no userfaultfd fault", "the vCPU thread",
                                             "a KVM worker"};
        if (x.reason == KVM_EXIT_SHUTDOWN && area[0] == APF_REASON_NOT_PRESENT &&
            x.exc_valid && x.exc_nr == 14) {
            describe_np(o, (uint32_t)x.cr2, area[0]);
            area[0] = 0;
            out(how, "fetched by %s", thread[cls]);
        } else if (x.rc == -EINTR && x.rip == rip + TOUCH_LEN && area[0] == 0) {
            out(o, NO_EVENT);
            out(how, "fetched by %s, KVM_RUN waited", thread[cls]);
        } else if (x.rc == -EINTR && x.rip == rip && area[0] == 0 && cls == 2) {
            /* KVM's own async page fault without the guest's help: its worker fetches the
             * page while the vCPU is halted in KVM. Let the page arrive, then the access
             * must complete. */
            rc = vmm_remote_copy_in(&k->remote, page_gpa(s->a));
            if (rc == 0)
                rc = kvm_enter(k, rip, (int)s->b, 200000, &x);
            /* KVM's worker may take longer than one budget on a loaded machine: while the
             * vCPU is still halted on the same access with nothing delivered, run again
             * (bounded: 5 s in all). The outcome compared is unchanged. */
            for (int tries = 0; rc == 0 && tries < 25 && x.rc == -EINTR && x.rip == rip &&
                                area[0] == 0;
                 tries++)
                rc = kvm_enter(k, rip, (int)s->b, 200000, &x);
            if (rc < 0) {
                out(o, "error: %s", strerror(-rc));
                return;
            }
            if (x.rc == -EINTR && x.rip == rip + TOUCH_LEN && area[0] == 0)
                out(o, NO_EVENT);
            else
                out(o, "other: halted, then rc %d rip %#" PRIx64, x.rc, x.rip);
            out(how, "fetched by a KVM worker, vCPU halted in KVM");
        } else {
            out(o, "other: exit %u rc %d rip %#" PRIx64 " flags %u", x.reason, x.rc, x.rip,
                area[0]);
        }
        return;
    }
    case OP_RESOLVE: {
        int rc = vmm_remote_copy_in(&k->remote, page_gpa(s->a));
        out(o, "%s", rc == 0 ? "resolved" : strerror(-rc));
        return;
    }
    case OP_ENTRY: {
        /* A "page ready" shows as the vector in IRR or ISR (the token alone may be the
         * unconsumed previous one). When one may be due, enter for up to 2 s: KVM's worker
         * queues the completion a little after the page arrives. */
        uint32_t rounds = s->b ? 100u : 5u;
        for (uint32_t i = 0; i < rounds; i++) {
            int rc = kvm_enter(k, CONF_IDLE, 1, 20000, &x);
            uint32_t vec = 0;
            if (rc == 0)
                rc = kvm_take_vector(k, &vec, 1);
            if (rc < 0) {
                out(o, "error: %s", strerror(-rc));
                return;
            }
            if (vec != 0) {
                describe_ready(o, area[1], vec);
                return;
            }
        }
        out(o, "nothing");
        return;
    }
    case OP_CONSUME:
        area[1] = 0;
        out(o, "slot 0");
        return;
    case OP_ACK: {
        int rc = vmm_vm_set_msr(&k->vm, APF_KVM_MSR_ASYNC_PF_ACK, 1);
        if (rc < 0)
            out(o, "error: KVM_SET_MSRS: %s", strerror(-rc));
        else
            describe_wrmsr(o, rc == 1);
        return;
    }
    }
}

/* 0; EXIT_SKIP with @p why when KVM or userfaultfd is unusable here; -1 on an error. */
static int kvm_open(struct kvm_side *k, char *why, size_t why_len)
{
    memset(k, 0, sizeof(*k));
    pthread_mutex_init(&k->lock, NULL);
    pthread_cond_init(&k->cond, NULL);
    k->remote.uffd = k->remote.stop_fd = -1;
    int rc = vmm_vm_create(&k->vm, GABI_LOW_SIZE, why, why_len);
    if (rc != 0)
        return rc == VMM_UNUSABLE ? EXIT_SKIP : -1;
    struct vmm_cpuid_info ci;
    rc = vmm_vm_setup_cpuid(&k->vm, 0, &ci);
    if (rc < 0) {
        snprintf(why, why_len, "KVM_SET_CPUID2: %s", strerror(-rc));
        return -1;
    }
    uint32_t need = (1u << APF_KVM_FEATURE_ASYNC_PF) | (1u << APF_KVM_FEATURE_ASYNC_PF_INT);
    if (ci.base == 0 || (ci.given & need) != need) {
        snprintf(why, why_len, "KVM does not offer ASYNC_PF + ASYNC_PF_INT (%#x)", ci.given);
        return EXIT_SKIP;
    }
    rc = vmm_remote_create(&k->remote, GABI_REMOTE_BASE, CONF_PAGES, 0, why, why_len);
    if (rc != 0)
        return rc == 1 ? EXIT_SKIP : -1;
    if (!k->remote.thread_ids) {
        snprintf(why, why_len, "userfaultfd without UFFD_FEATURE_THREAD_ID");
        return EXIT_SKIP;
    }
    rc = vmm_vm_add_slot(&k->vm, 1, GABI_REMOTE_BASE, k->remote.host, k->remote.size);
    if (rc < 0) {
        snprintf(why, why_len, "KVM_SET_USER_MEMORY_REGION (remote): %s", strerror(-rc));
        return -1;
    }
    kvm_write_code(k->vm.low);
    rc = vmm_vm_user_sregs(&k->vm, &k->sregs);
    if (rc == 0)
        rc = kvm_apic_enable(k);
    if (rc < 0) {
        snprintf(why, why_len, "vCPU setup: %s", strerror(-rc));
        return -1;
    }
    k->vcpu_tid = gettid();
    /* The timer signal must reach the vCPU thread: the reader thread starts with it
     * blocked. */
    sigset_t alrm, old;
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alrm, &old);
    rc = pthread_create(&k->reader, NULL, reader_main, k);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(why, why_len, "pthread_create: %s", strerror(rc));
        return -1;
    }
    k->reader_started = 1;
    return 0;
}

static void kvm_close(struct kvm_side *k)
{
    if (k->reader_started) {
        uint64_t one = 1;
        if (write(k->remote.stop_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
            perror("apf-kvm-conform: eventfd");
        pthread_join(k->reader, NULL);
    }
    vmm_remote_destroy(&k->remote);
    vmm_vm_destroy(&k->vm);
    pthread_cond_destroy(&k->cond);
    pthread_mutex_destroy(&k->lock);
}

/* ---- main ------------------------------------------------------------------------------ */

static uint32_t g_timeout_s = 60;

static void *watchdog_main(void *arg)
{
    (void)arg;
    sleep(g_timeout_s);
    fprintf(stderr, "apf-kvm-conform: no result after %u s; giving up\n", g_timeout_s);
    _exit(1);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: apf-kvm-conform [-v] [--timeout S] [--trace FILE]\n"
               "  Plays one script of guest inputs against Linux KVM (/dev/kvm) and against\n"
               "  libapf-host's kvm_x86 frontend and compares what the guest would see.\n"
               "  -v            also log each userfaultfd fault\n"
               "  --timeout S   watchdog (default 60)\n"
               "  --trace FILE  write libapf-host's side as a protocol trace\n"
               "exit: 0 identical, 1 different or failed, 77 not possible here (skip)\n");
}

int main(int argc, char **argv)
{
    int verbose = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0) {
            verbose = 1;
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            char *end;
            unsigned long t = strtoul(argv[++i], &end, 10);
            if (*end != '\0' || t == 0 || t > 3600) {
                fprintf(stderr, "apf-kvm-conform: --timeout: 1..3600 seconds\n");
                return 2;
            }
            g_timeout_s = (uint32_t)t;
        } else if (strcmp(argv[i], "--trace") == 0 && i + 1 < argc) {
            g_trace = fopen(argv[++i], "w");
            if (g_trace == NULL) {
                fprintf(stderr, "apf-kvm-conform: %s: %s\n", argv[i], strerror(errno));
                return 2;
            }
            fprintf(g_trace, "# apf-kvm-conform: libapf-host's side (kvm_x86 frontend, "
                             "embedder-completion mode)\n");
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm; /* no SA_RESTART: the signal ends KVM_RUN with EINTR */
    sigaction(SIGALRM, &sa, NULL);
    pthread_t wd;
    sigset_t alrm, old;
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &alrm, &old);
    int wrc = pthread_create(&wd, NULL, watchdog_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (wrc != 0) {
        fprintf(stderr, "apf-kvm-conform: pthread_create: %s\n", strerror(wrc));
        return 1;
    }
    pthread_detach(wd);

    static struct kvm_side k;
    char why[256] = "";
    int rc = kvm_open(&k, why, sizeof(why));
    if (rc != 0) {
        fprintf(stderr, "apf-kvm-conform: %s: %s\n", rc == EXIT_SKIP ? "skip" : "error", why);
        kvm_close(&k);
        return rc == EXIT_SKIP ? EXIT_SKIP : 1;
    }
    k.verbose = verbose;
    struct lib_side l;
    rc = lib_open(&l);
    if (rc != 0) {
        fprintf(stderr, "apf-kvm-conform: libapf-host: %s\n", apf_strerror(rc));
        kvm_close(&k);
        return 1;
    }

    printf("apf-kvm-conform: the same guest inputs to Linux KVM and to libapf-host (kvm_x86)\n"
           "  guest: CPL 3, no IDT, area at %#x, vector %#x; remote pages at %#x (userfaultfd)\n\n",
           CONF_AREA, CONF_VECTOR, GABI_REMOTE_BASE);
    printf("%3s  %-28s %-42s %s\n", "#", "guest input", "Linux KVM", "libapf-host");
    unsigned same = 0, np_kvm = 0;
    static char how_kvm[N_STEPS][OUT_LEN], how_lib[N_STEPS][OUT_LEN];
    for (size_t i = 0; i < N_STEPS; i++) {
        char ok[OUT_LEN], ol[OUT_LEN];
        kvm_step(&k, &script[i], ok, how_kvm[i]);
        lib_step(&l, &script[i], ol, how_lib[i]);
        int eq = strcmp(ok, ol) == 0;
        same += (unsigned)eq;
        if (script[i].op == OP_FAULT && strncmp(ok, "#PF", 3) == 0)
            np_kvm++;
        printf("%3zu  %-28s %-42s %s\n", i + 1, script[i].what, ok, eq ? "same" : ol);
    }
    printf("\nhost side of each access (not compared: how a host waits for a page is its own"
           " business)\n");
    for (size_t i = 0; i < N_STEPS; i++)
        if (script[i].op == OP_FAULT)
            printf("%3zu  page %" PRIu32 "  KVM: %-44s libapf-host: %s\n", i + 1, script[i].a,
                   how_kvm[i], how_lib[i]);
    struct vmm_remote_stats rs;
    vmm_remote_get_stats(&k.remote, &rs);
    int worker = 0, vcpu = 0;
    for (uint32_t p = 0; p < CONF_PAGES; p++) {
        worker += k.fault_tid_class[p] == 2;
        vcpu += k.fault_tid_class[p] == 1;
    }
    printf("\nKVM: %u \"not present\" sent; userfaultfd faults from a KVM worker %d, from the "
           "vCPU thread %d; pages copied in %" PRIu64 "\n",
           np_kvm, worker, vcpu, rs.copies);
    struct apf_host_vcpu_stats hs;
    apf_host_vcpu_stats(l.h, 0, &hs);
    printf("libapf-host: async %" PRIu64 ", sync %" PRIu64 ", ready %" PRIu64
           ", wake-all %" PRIu64 ", ACKs %" PRIu64 "\n",
           hs.faults_async, hs.faults_sync, hs.ready_delivered, hs.wake_all_delivered, hs.acks);
    lib_close(&l);
    kvm_close(&k);
    if (g_trace && fclose(g_trace) != 0) {
        perror("apf-kvm-conform: --trace");
        return 1;
    }

    if (np_kvm == 0) {
        printf("skip: KVM never sent \"not present\" here, nothing to compare it on\n");
        return EXIT_SKIP;
    }
    printf("result: %u of %zu steps identical\n", same, N_STEPS);
    return same == N_STEPS ? 0 : 1;
}
