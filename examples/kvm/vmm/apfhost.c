/* SPDX-License-Identifier: MIT */
/* libapf-host in the VMM (see apfhost.h): the engine's callbacks over KVM ioctls, and a
 * completion thread over the userfaultfd slot. */
#define _GNU_SOURCE
#include "apfhost.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "apf/error.h"
#include "apf/host.h"
#include "apf/host_kvm_x86.h"
#include "apf/trace.h"
#include "guest_abi.h"

#define QUEUE 64 /* outstanding faults: the engine's default per-vCPU limit */

struct work {
    uint64_t gpa;
    uint32_t token;
};

struct vmm_apfhost {
    struct vmm_vm *vm;
    struct vmm_remote *remote;
    uint32_t delay_us;
    struct apf_host *h;
    struct apf_host_kvm_x86 *fe;
    FILE *trace;
    pthread_t vcpu_thread;
    _Atomic int kicked;
    int64_t last_token; /* set by inject_not_present during apf_host_vcpu_fault() */
    /* completion thread */
    pthread_t thread;
    int started, stop;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_cond_t kick_cond; /* a halted vCPU waits here for a kick */
    int kick_seen;            /* under lock: a kick since the halted vCPU last looked */
    struct work q[QUEUE];
    uint32_t q_head, q_len;
    struct vmm_apfhost_stats st; /* announced..acks under lock where shared */
};

/* ---- the engine's callbacks ---- */

static int read_guest(void *c, uint64_t gpa, void *buf, uint32_t len)
{
    struct vmm_apfhost *s = c;
    const void *p = vmm_vm_low_ptr(s->vm, gpa, len);
    if (p == NULL)
        return APF_EFAULT;
    memcpy(buf, p, len);
    return 0;
}

static int write_guest(void *c, uint64_t gpa, const void *buf, uint32_t len)
{
    struct vmm_apfhost *s = c;
    void *p = vmm_vm_low_ptr(s->vm, gpa, len);
    if (p == NULL)
        return APF_EFAULT;
    memcpy(p, buf, len);
    return 0;
}

/* #PF with CR2 = token, error code 0, at the current instruction boundary. */
static void inject_not_present(void *c, uint32_t vcpu, uint32_t token)
{
    struct vmm_apfhost *s = c;
    struct kvm_sregs sr;
    struct kvm_vcpu_events ev;
    (void)vcpu;
    s->last_token = -EIO;
    if (ioctl(s->vm->vcpu_fd, KVM_GET_SREGS, &sr) < 0 ||
        ioctl(s->vm->vcpu_fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
        return;
    sr.cr2 = token;
    ev.exception.injected = 1;
    ev.exception.nr = 14;
    ev.exception.has_error_code = 1;
    ev.exception.error_code = 0;
    ev.flags = 0; /* leave NMI, SIPI, shadow and the rest as they are */
    if (ioctl(s->vm->vcpu_fd, KVM_SET_SREGS, &sr) < 0 ||
        ioctl(s->vm->vcpu_fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
        return;
    s->last_token = token;
}

/* The vector as an MSI: fixed delivery, edge, physical destination APIC 0. */
static void inject_ready(void *c, uint32_t vcpu, uint32_t vector)
{
    struct vmm_apfhost *s = c;
    struct kvm_msi msi = {.address_lo = 0xfee00000u, .address_hi = 0, .data = vector};
    (void)vcpu;
    if (ioctl(s->vm->vm_fd, KVM_SIGNAL_MSI, &msi) < 0)
        fprintf(stderr, "KVM_SIGNAL_MSI: %s\n", strerror(errno));
}

static void on_kick_signal(int sig)
{
    (void)sig;
}

/* Any thread: the next KVM_RUN returns at once, a running one returns with EINTR. */
static void kick(void *c, uint32_t vcpu)
{
    struct vmm_apfhost *s = c;
    (void)vcpu;
    atomic_store(&s->kicked, 1);
    __atomic_store_n(&s->vm->run->immediate_exit, 1, __ATOMIC_RELEASE);
    pthread_kill(s->vcpu_thread, SIGUSR1);
    pthread_mutex_lock(&s->lock); /* not an engine lock: no order against the engine's */
    s->kick_seen = 1;
    pthread_cond_signal(&s->kick_cond);
    pthread_mutex_unlock(&s->lock);
}

static void submit(void *c, uint32_t vcpu, uint32_t token, uint64_t gpa)
{
    struct vmm_apfhost *s = c;
    (void)vcpu;
    pthread_mutex_lock(&s->lock);
    if (s->q_len < QUEUE) { /* the engine's limit is QUEUE: always room */
        s->q[(s->q_head + s->q_len) % QUEUE] = (struct work){gpa, token};
        s->q_len++;
        pthread_cond_signal(&s->cond);
    }
    pthread_mutex_unlock(&s->lock);
}

static void trace_hook(void *c, const struct apf_trace_event *ev)
{
    struct vmm_apfhost *s = c;
    char line[96];
    if (apf_trace_format(ev, line, sizeof(line)) >= 0)
        fprintf(s->trace, "%s\n", line); /* stdio locks: the vCPU and completion threads */
}

/* ---- the completion thread: the page arrives (delay, UFFDIO_COPY), then complete ---- */

static void *completion_main(void *arg)
{
    struct vmm_apfhost *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->stop && s->q_len == 0)
            pthread_cond_wait(&s->cond, &s->lock);
        if (s->stop)
            break;
        struct work w = s->q[s->q_head];
        s->q_head = (s->q_head + 1) % QUEUE;
        s->q_len--;
        pthread_mutex_unlock(&s->lock);
        vmm_sleep_us(s->delay_us); /* the "network" */
        int rc = vmm_remote_copy_in(s->remote, w.gpa);
        (void)apf_host_complete(s->h, 0, w.token, rc == 0 ? 0 : APF_EIO);
        pthread_mutex_lock(&s->lock);
        s->st.resolved += rc == 0;
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int vmm_apfhost_create(struct vmm_apfhost **out, struct vmm_vm *vm, struct vmm_remote *remote,
                       uint32_t delay_us, FILE *trace)
{
    static const struct apf_host_ops ops = {.submit = submit,
                                            .inject_not_present = inject_not_present,
                                            .inject_ready = inject_ready,
                                            .kick = kick,
                                            .read_guest = read_guest,
                                            .write_guest = write_guest};
    struct vmm_apfhost *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->vm = vm;
    s->remote = remote;
    s->delay_us = delay_us;
    s->trace = trace;
    s->vcpu_thread = pthread_self();
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    pthread_cond_init(&s->kick_cond, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_kick_signal; /* no SA_RESTART: the signal ends KVM_RUN with EINTR */
    sigaction(SIGUSR1, &sa, NULL);
    struct apf_host_config cfg = {.n_vcpus = 1,
                                  .max_outstanding = QUEUE,
                                  .n_workers = 0, /* we complete (submit) */
                                  .transport = &apf_host_transport_kvm_x86,
                                  .ops = &ops,
                                  .ctx = s,
                                  .trace = trace ? trace_hook : NULL,
                                  .trace_ctx = s};
    int rc = apf_host_create(&cfg, &s->h);
    if (rc == 0)
        rc = apf_host_kvm_x86_create(s->h, NULL, &s->fe);
    if (rc == 0) {
        rc = -pthread_create(&s->thread, NULL, completion_main, s);
        s->started = rc == 0;
    }
    if (rc != 0) {
        vmm_apfhost_destroy(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* What the VMM knows of the guest: CPL 0, paging on, the local APIC software-enabled (the
 * guest does it before enabling APF), RFLAGS.IF from the registers. */
static uint32_t guest_state(struct vmm_apfhost *s)
{
    struct kvm_regs r;
    uint32_t gs = APF_GS_PAGING | APF_GS_IRQCHIP_ON;
    if (ioctl(s->vm->vcpu_fd, KVM_GET_REGS, &r) == 0 && (r.rflags & (1u << 9)))
        gs |= APF_GS_IRQ_ON;
    return gs;
}

void vmm_apfhost_before_entry(struct vmm_apfhost *s)
{
    if (atomic_exchange(&s->kicked, 0))
        __atomic_store_n(&s->vm->run->immediate_exit, 0, __ATOMIC_RELEASE);
    (void)apf_host_vcpu_before_entry(s->h, 0, guest_state(s));
}

int vmm_apfhost_kicked(struct vmm_apfhost *s)
{
    if (!atomic_load(&s->kicked))
        return 0;
    s->st.kicks++;
    return 1;
}

int vmm_apfhost_on_msr_exit(struct vmm_apfhost *s, struct kvm_run *run)
{
    s->st.msr_exits++;
    int rc;
    if (run->exit_reason == KVM_EXIT_X86_WRMSR) {
        rc = apf_host_kvm_x86_wrmsr(s->fe, 0, run->msr.index, run->msr.data);
    } else {
        uint64_t v = 0;
        rc = apf_host_kvm_x86_rdmsr(s->fe, 0, run->msr.index, &v);
        run->msr.data = v;
    }
    /* Not ours (cannot happen: the filter names only APF MSRs) or refused: #GP, as KVM. */
    run->msr.error = rc != 0;
    return 0;
}

int64_t vmm_apfhost_on_announce(struct vmm_apfhost *s, uint64_t gpa)
{
    gpa &= ~(uint64_t)(GABI_PAGE_SIZE - 1);
    s->st.announced++;
    if (vmm_remote_is_present(s->remote, gpa)) {
        s->st.sync++;
        return 0; /* not missing: no fault at all */
    }
    s->last_token = 0;
    int r = apf_host_vcpu_fault(s->h, 0, gpa, guest_state(s));
    switch (r) {
    case APF_FAULT_ASYNC:
        s->st.async++;
        return s->last_token;
    case APF_FAULT_HALT:
        s->st.halt++;
        /* Wait for the completion: each kick, ask the engine again (never under our lock:
         * the engine calls kick with its own locks held). */
        while (apf_host_vcpu_halted(s->h, 0) == 1) {
            pthread_mutex_lock(&s->lock);
            while (!s->kick_seen)
                pthread_cond_wait(&s->kick_cond, &s->lock);
            s->kick_seen = 0;
            pthread_mutex_unlock(&s->lock);
        }
        return 0;
    default:
        s->st.sync++;
        return r < 0 ? r : 0; /* SYNC: the touch faults on userfaultfd, resolved there */
    }
}

int vmm_apfhost_get_msrs(void *c, const uint32_t *index, uint64_t *value, int n)
{
    struct vmm_apfhost *s = c;
    for (int i = 0; i < n; i++)
        if (apf_host_kvm_x86_rdmsr(s->fe, 0, index[i], &value[i]) != 0)
            return i;
    return n;
}

void vmm_apfhost_get_stats(struct vmm_apfhost *s, struct vmm_apfhost_stats *out)
{
    struct apf_host_vcpu_stats hs;
    pthread_mutex_lock(&s->lock);
    *out = s->st;
    pthread_mutex_unlock(&s->lock);
    if (apf_host_vcpu_stats(s->h, 0, &hs) == 0) {
        out->ready = hs.ready_delivered;
        out->wake_all = hs.wake_all_delivered;
        out->acks = hs.acks;
    }
}

void vmm_apfhost_destroy(struct vmm_apfhost *s)
{
    if (s == NULL)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->lock);
        s->stop = 1;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->thread, NULL);
    }
    apf_host_kvm_x86_destroy(s->fe);
    apf_host_destroy(s->h);
    pthread_cond_destroy(&s->cond);
    pthread_cond_destroy(&s->kick_cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
