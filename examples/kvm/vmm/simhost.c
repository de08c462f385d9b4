/* SPDX-License-Identifier: MIT */
/* The simulated host (see simhost.h). Lock order: s->lock, then remote->lock (inside
 * vmm_remote_copy_in, which is called without s->lock). */
#define _GNU_SOURCE
#include "simhost.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "apf/proto.h"
#include "guest_abi.h"

#define SIM_QUEUE 64           /* outstanding faults, as KVM's per-vCPU limit */
#define SIM_FIRST_SEQ 0x80000u /* token sequence numbers far from KVM's own */

struct sim_work {
    uint64_t gpa;
    uint32_t token;
};

struct vmm_simhost {
    struct vmm_vm *vm;
    struct vmm_remote *remote;
    uint32_t vector;
    uint32_t delay_us;
    pthread_t thread;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stop;
    uint32_t seq;
    uint64_t area_gpa;               /* set at the first injection */
    struct sim_work todo[SIM_QUEUE]; /* to resolve (FIFO) */
    uint32_t todo_head, todo_len;
    uint32_t done[SIM_QUEUE]; /* resolved, "page ready" not yet raised (FIFO) */
    uint32_t done_head, done_len;
    uint64_t in_flight_gpa[SIM_QUEUE]; /* pages with work outstanding (dedup) */
    uint32_t n_in_flight;
    int ready_unacked; /* a "page ready" was raised and not ACKed yet */
    struct vmm_simhost_stats stats;
};

static volatile uint32_t *area_word(struct vmm_simhost *s, uint32_t offset)
{
    return vmm_vm_low_ptr(s->vm, s->area_gpa + offset, 4);
}

/* "Page ready" for the oldest resolved token, if the protocol allows one now: no ready
 * unACKed and the slot free (Linux KVM: one in flight, throttled by the ACK). s->lock held. */
static void deliver_locked(struct vmm_simhost *s)
{
    while (s->done_len > 0 && !s->ready_unacked) {
        volatile uint32_t *token = area_word(s, APF_AREA_TOKEN_OFFSET);
        if (token == NULL || __atomic_load_n(token, __ATOMIC_ACQUIRE) != APF_TOKEN_INVALID) {
            s->stats.deferred++;
            return;
        }
        uint32_t t = s->done[s->done_head];
        __atomic_store_n(token, t, __ATOMIC_RELEASE);
        /* Fixed delivery, edge, physical destination APIC 0. */
        struct kvm_msi msi = {.address_lo = 0xfee00000u, .address_hi = 0, .data = s->vector};
        if (ioctl(s->vm->vm_fd, KVM_SIGNAL_MSI, &msi) < 0) {
            __atomic_store_n(token, APF_TOKEN_INVALID, __ATOMIC_RELEASE);
            return;
        }
        s->done_head = (s->done_head + 1) % SIM_QUEUE;
        s->done_len--;
        s->ready_unacked = 1;
        s->stats.delivered++;
    }
    if (s->done_len > 0)
        s->stats.deferred++;
}

static void forget_in_flight_locked(struct vmm_simhost *s, uint64_t gpa)
{
    for (uint32_t i = 0; i < s->n_in_flight; i++)
        if (s->in_flight_gpa[i] == gpa) {
            s->in_flight_gpa[i] = s->in_flight_gpa[--s->n_in_flight];
            return;
        }
}

static void *worker_main(void *arg)
{
    struct vmm_simhost *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->stop && s->todo_len == 0)
            pthread_cond_wait(&s->cond, &s->lock);
        if (s->stop)
            break;
        struct sim_work w = s->todo[s->todo_head];
        s->todo_head = (s->todo_head + 1) % SIM_QUEUE;
        s->todo_len--;
        pthread_mutex_unlock(&s->lock);

        vmm_sleep_us(s->delay_us); /* the "network" */
        int rc = vmm_remote_copy_in(s->remote, w.gpa);

        pthread_mutex_lock(&s->lock);
        if (rc == 0)
            s->stats.resolved++;
        forget_in_flight_locked(s, w.gpa);
        s->done[(s->done_head + s->done_len) % SIM_QUEUE] = w.token;
        s->done_len++;
        deliver_locked(s);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int vmm_simhost_create(struct vmm_simhost **out, struct vmm_vm *vm, struct vmm_remote *remote,
                       uint32_t vector, uint32_t delay_us)
{
    struct vmm_simhost *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->vm = vm;
    s->remote = remote;
    s->vector = vector;
    s->delay_us = delay_us;
    s->seq = SIM_FIRST_SEQ;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    int rc = pthread_create(&s->thread, NULL, worker_main, s);
    if (rc != 0) {
        free(s);
        return -rc;
    }
    s->started = 1;
    *out = s;
    return 0;
}

/* KVM's conditions for sending "not present" (reference: kvm-x86-apf.md). 0 if they hold. */
static int can_go_async(struct vmm_simhost *s, uint64_t gpa, uint64_t *en)
{
    const uint32_t idx = APF_KVM_MSR_ASYNC_PF_EN;
    if (vmm_vm_get_msrs(s->vm, &idx, en, 1) != 1)
        return -EIO;
    if ((*en & (APF_EN_ENABLED | APF_EN_DELIVERY_AS_INT)) !=
        (APF_EN_ENABLED | APF_EN_DELIVERY_AS_INT))
        return -ENOENT; /* APF off */
    if (!(*en & APF_EN_SEND_ALWAYS))
        return -EPERM; /* CPL 0 without SEND_ALWAYS */
    struct kvm_regs r;
    if (ioctl(s->vm->vcpu_fd, KVM_GET_REGS, &r) < 0)
        return -EIO;
    if (!(r.rflags & (1u << 9)))
        return -EAGAIN; /* interrupts off: not even a halt could be woken */
    if (vmm_remote_is_present(s->remote, gpa))
        return -EEXIST;
    for (uint32_t i = 0; i < s->n_in_flight; i++)
        if (s->in_flight_gpa[i] == gpa)
            return -EBUSY; /* KVM would halt the vCPU on the frame in flight */
    if (s->n_in_flight == SIM_QUEUE)
        return -ENOSPC;
    return 0;
}

int64_t vmm_simhost_on_announce(struct vmm_simhost *s, uint64_t gpa)
{
    gpa &= ~(uint64_t)(GABI_PAGE_SIZE - 1);
    pthread_mutex_lock(&s->lock);
    s->stats.announced++;
    uint64_t en = 0;
    int rc = can_go_async(s, gpa, &en);
    if (rc == 0) {
        s->area_gpa = en & APF_EN_ADDR_MASK;
        volatile uint32_t *flags = area_word(s, APF_AREA_FLAGS_OFFSET);
        if (flags == NULL || __atomic_load_n(flags, __ATOMIC_ACQUIRE) != APF_REASON_NONE)
            rc = -EBUSY; /* the last reason was not consumed */
    }
    if (rc != 0) {
        s->stats.declined++;
        pthread_mutex_unlock(&s->lock);
        return rc == -EIO ? rc : 0;
    }
    uint32_t token = apf_token_kvm_make(s->seq++, 0);

    /* 1. reason; 2. CR2 = token; 3. #PF, error code 0, at the next instruction boundary. */
    __atomic_store_n(area_word(s, APF_AREA_FLAGS_OFFSET), APF_REASON_NOT_PRESENT, __ATOMIC_RELEASE);
    struct kvm_sregs sr;
    struct kvm_vcpu_events ev;
    if (ioctl(s->vm->vcpu_fd, KVM_GET_SREGS, &sr) < 0 ||
        ioctl(s->vm->vcpu_fd, KVM_GET_VCPU_EVENTS, &ev) < 0) {
        __atomic_store_n(area_word(s, APF_AREA_FLAGS_OFFSET), APF_REASON_NONE, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&s->lock);
        return -errno;
    }
    sr.cr2 = token;
    ev.exception.injected = 1;
    ev.exception.nr = 14;
    ev.exception.has_error_code = 1;
    ev.exception.error_code = 0;
    ev.flags = 0; /* leave NMI, SIPI, shadow and the rest as they are */
    if (ioctl(s->vm->vcpu_fd, KVM_SET_SREGS, &sr) < 0 ||
        ioctl(s->vm->vcpu_fd, KVM_SET_VCPU_EVENTS, &ev) < 0) {
        int e = errno;
        __atomic_store_n(area_word(s, APF_AREA_FLAGS_OFFSET), APF_REASON_NONE, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&s->lock);
        return -e;
    }
    s->stats.injected++;
    s->in_flight_gpa[s->n_in_flight++] = gpa;
    s->todo[(s->todo_head + s->todo_len) % SIM_QUEUE] = (struct sim_work){gpa, token};
    s->todo_len++;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return token;
}

void vmm_simhost_on_ack(struct vmm_simhost *s)
{
    pthread_mutex_lock(&s->lock);
    s->stats.acks++;
    s->ready_unacked = 0;
    deliver_locked(s);
    pthread_mutex_unlock(&s->lock);
}

void vmm_simhost_get_stats(struct vmm_simhost *s, struct vmm_simhost_stats *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->stats;
    pthread_mutex_unlock(&s->lock);
}

void vmm_simhost_destroy(struct vmm_simhost *s)
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
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
