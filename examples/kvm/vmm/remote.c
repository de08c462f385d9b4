/* SPDX-License-Identifier: MIT */
/* The userfaultfd-backed remote slot and its handler thread. */
#define _GNU_SOURCE
#include "remote.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "guest_abi.h"

uint64_t vmm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* userfaultfd(2), or /dev/userfaultfd where the syscall is restricted for this user. */
static int open_uffd(char *why, size_t why_len)
{
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0)
        return fd;
    int e = errno;
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev >= 0) {
        fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
        close(dev);
        if (fd >= 0)
            return fd;
    }
    snprintf(why, why_len, "userfaultfd: %s", strerror(e));
    return -1;
}

int vmm_remote_create(struct vmm_remote *r, uint64_t gpa, uint32_t pages, uint32_t delay_us,
                      char *why, size_t why_len)
{
    memset(r, 0, sizeof(*r));
    r->uffd = r->stop_fd = -1;
    r->gpa = gpa;
    r->delay_us = delay_us;
    r->size = (size_t)pages * GABI_PAGE_SIZE;
    pthread_mutex_init(&r->lock, NULL);

    r->uffd = open_uffd(why, why_len);
    if (r->uffd < 0)
        return 1;
    struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_THREAD_ID};
    if (ioctl(r->uffd, UFFDIO_API, &api) < 0) {
        /* Retry without the optional feature: the handshake is one-shot per fd. */
        close(r->uffd);
        r->uffd = open_uffd(why, why_len);
        if (r->uffd < 0)
            return 1;
        memset(&api, 0, sizeof(api));
        api.api = UFFD_API;
        if (ioctl(r->uffd, UFFDIO_API, &api) < 0) {
            snprintf(why, why_len, "UFFDIO_API: %s", strerror(errno));
            return 1;
        }
    }
    r->thread_ids = (api.features & UFFD_FEATURE_THREAD_ID) != 0;

    r->host = mmap(NULL, r->size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r->host == MAP_FAILED) {
        r->host = NULL;
        snprintf(why, why_len, "mmap remote: %s", strerror(errno));
        return -1;
    }
    struct uffdio_register reg = {
        .range = {.start = (uint64_t)(uintptr_t)r->host, .len = r->size},
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };
    if (ioctl(r->uffd, UFFDIO_REGISTER, &reg) < 0) {
        snprintf(why, why_len, "UFFDIO_REGISTER: %s", strerror(errno));
        return 1;
    }
    r->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (r->stop_fd < 0) {
        snprintf(why, why_len, "eventfd: %s", strerror(errno));
        return -1;
    }
    r->log_cap = pages * 2u + 16u;
    r->log = calloc(r->log_cap, sizeof(*r->log));
    r->present = calloc(pages, 1);
    if (r->log == NULL || r->present == NULL) {
        snprintf(why, why_len, "out of memory");
        return -1;
    }
    return 0;
}

static void fill_page(uint64_t *buf, uint64_t page_gpa)
{
    for (uint32_t i = 0; i < GABI_PAGE_SIZE / 8u; i++)
        buf[i] = gabi_pattern(page_gpa + 8u * i);
}

void vmm_sleep_us(uint32_t us)
{
    struct timespec ts = {.tv_sec = us / 1000000u, .tv_nsec = (long)(us % 1000000u) * 1000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* UFFDIO_COPY of the page at @p gpa (inside the region); marks it present. 0, or errno
 * (EEXIST: it was already there). */
static int copy_page(struct vmm_remote *r, uint64_t gpa, uint64_t *buf)
{
    fill_page(buf, gpa);
    struct uffdio_copy c = {.dst = (uint64_t)(uintptr_t)r->host + (gpa - r->gpa),
                            .src = (uint64_t)(uintptr_t)buf,
                            .len = GABI_PAGE_SIZE,
                            .mode = 0};
    int e = ioctl(r->uffd, UFFDIO_COPY, &c) == 0 ? 0 : errno;
    if (e == 0 || e == EEXIST)
        __atomic_store_n(&r->present[(gpa - r->gpa) / GABI_PAGE_SIZE], 1, __ATOMIC_RELEASE);
    return e;
}

static void account(struct vmm_remote *r, const struct vmm_remote_fault *f, int e, int sim)
{
    pthread_mutex_lock(&r->lock);
    if (sim) {
        if (e == 0)
            r->stats.sim_copies++;
    } else {
        r->stats.faults++;
        if (r->thread_ids)
            *(f->from_vcpu ? &r->stats.from_vcpu : &r->stats.from_other) += 1;
    }
    if (e == 0)
        r->stats.copies++;
    else if (e == EEXIST)
        r->stats.raced++; /* two threads faulted on the same page; one copy wins */
    else
        r->stats.errors++;
    if (r->log_len < r->log_cap && (e == 0 || !sim))
        r->log[r->log_len++] = *f;
    pthread_mutex_unlock(&r->lock);
}

static void resolve(struct vmm_remote *r, const struct uffd_msg *m, uint64_t *buf)
{
    uint64_t addr = m->arg.pagefault.address & ~(uint64_t)(GABI_PAGE_SIZE - 1);
    uint64_t base = (uint64_t)(uintptr_t)r->host;
    struct vmm_remote_fault f = {0};
    f.t_msg_ns = vmm_now_ns() - r->t0_ns;
    f.tid = r->thread_ids ? (int32_t)m->arg.pagefault.feat.ptid : 0;
    f.from_vcpu = r->thread_ids && f.tid == (int32_t)r->vcpu_tid;
    if (addr < base || addr - base >= r->size) {
        pthread_mutex_lock(&r->lock);
        r->stats.errors++;
        pthread_mutex_unlock(&r->lock);
        return;
    }
    f.gpa = r->gpa + (addr - base);
    /* The "network": the page arrives after the configured delay. */
    vmm_sleep_us(r->delay_us);
    int e = copy_page(r, f.gpa, buf);
    f.t_done_ns = vmm_now_ns() - r->t0_ns;
    account(r, &f, e, 0);
}

int vmm_remote_is_present(struct vmm_remote *r, uint64_t gpa)
{
    if (gpa < r->gpa || gpa - r->gpa >= r->size)
        return 0;
    return __atomic_load_n(&r->present[(gpa - r->gpa) / GABI_PAGE_SIZE], __ATOMIC_ACQUIRE);
}

int vmm_remote_copy_in(struct vmm_remote *r, uint64_t gpa)
{
    gpa &= ~(uint64_t)(GABI_PAGE_SIZE - 1);
    if (gpa < r->gpa || gpa - r->gpa >= r->size)
        return -EINVAL;
    uint64_t *buf = aligned_alloc(GABI_PAGE_SIZE, GABI_PAGE_SIZE);
    if (buf == NULL)
        return -ENOMEM;
    struct vmm_remote_fault f = {.gpa = gpa, .tid = -1};
    f.t_msg_ns = vmm_now_ns() - r->t0_ns;
    int e = copy_page(r, gpa, buf);
    f.t_done_ns = vmm_now_ns() - r->t0_ns;
    free(buf);
    account(r, &f, e, 1);
    return e == 0 || e == EEXIST ? 0 : -e;
}

static void *handler_main(void *arg)
{
    struct vmm_remote *r = arg;
    uint64_t *buf = aligned_alloc(GABI_PAGE_SIZE, GABI_PAGE_SIZE);
    if (buf == NULL)
        return NULL;
    for (;;) {
        struct pollfd p[2] = {{.fd = r->uffd, .events = POLLIN},
                              {.fd = r->stop_fd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        if (!(p[0].revents & POLLIN))
            continue;
        struct uffd_msg m;
        ssize_t n = read(r->uffd, &m, sizeof(m));
        if (n != (ssize_t)sizeof(m))
            continue; /* EAGAIN: another wake-up took it */
        if (m.event == UFFD_EVENT_PAGEFAULT)
            resolve(r, &m, buf);
    }
    free(buf);
    return NULL;
}

int vmm_remote_start(struct vmm_remote *r, pid_t vcpu_tid)
{
    r->vcpu_tid = vcpu_tid;
    r->t0_ns = vmm_now_ns();
    int rc = pthread_create(&r->thread, NULL, handler_main, r);
    if (rc != 0)
        return -rc;
    r->started = 1;
    return 0;
}

void vmm_remote_stop(struct vmm_remote *r)
{
    if (r->started) {
        uint64_t one = 1;
        if (write(r->stop_fd, &one, sizeof(one)) == (ssize_t)sizeof(one))
            pthread_join(r->thread, NULL);
        r->started = 0;
    }
}

void vmm_remote_destroy(struct vmm_remote *r)
{
    vmm_remote_stop(r);
    if (r->stop_fd >= 0)
        close(r->stop_fd);
    if (r->uffd >= 0)
        close(r->uffd);
    if (r->host != NULL)
        munmap(r->host, r->size);
    free(r->log);
    free(r->present);
    pthread_mutex_destroy(&r->lock);
    memset(r, 0, sizeof(*r));
    r->uffd = r->stop_fd = -1;
}

void vmm_remote_get_stats(struct vmm_remote *r, struct vmm_remote_stats *out)
{
    pthread_mutex_lock(&r->lock);
    *out = r->stats;
    pthread_mutex_unlock(&r->lock);
}
