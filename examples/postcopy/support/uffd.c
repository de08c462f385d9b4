/* SPDX-License-Identifier: MIT */
/*
 * Guest memory on userfaultfd, with a presence-map fallback (see uffd.h).
 *
 * The presence bitmap is kept in every mode: in the uffd modes the kernel's page tables are
 * the truth and the bit only records "UFFDIO_COPY returned", which lets pc_mem_resolve()
 * skip the ioctl for a page known to be there. In presence-map mode the bit is the truth and
 * a second bitmap (claimed) elects the one resolver that copies; the others wait for it, so
 * that "resolve returned 0" means "present" in every mode, as with UFFDIO_COPY.
 */
#define _GNU_SOURCE
#include "uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

__attribute__((format(printf, 3, 4))) static void pc__msg(char *msg, size_t len, const char *fmt,
                                                          ...)
{
    if (msg == NULL || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
}

/*
 * A new userfaultfd, by whichever route this process may use: the system call; the same with
 * UFFD_USER_MODE_ONLY (allowed to unprivileged users when vm.unprivileged_userfaultfd = 0,
 * enough here because guest memory is only touched from user mode); /dev/userfaultfd (Linux
 * 6.1+, governed by the device node's permissions). Returns the fd or -errno (the first
 * route's error, the most telling one).
 */
static int pc__uffd_create(const char **route)
{
    int flags = O_CLOEXEC | O_NONBLOCK;
#ifdef SYS_userfaultfd
    long fd = syscall(SYS_userfaultfd, flags);
    if (fd >= 0) {
        *route = "userfaultfd(2)";
        return (int)fd;
    }
    int first = -errno;
#ifdef UFFD_USER_MODE_ONLY
    fd = syscall(SYS_userfaultfd, flags | UFFD_USER_MODE_ONLY);
    if (fd >= 0) {
        *route = "userfaultfd(2) with UFFD_USER_MODE_ONLY";
        return (int)fd;
    }
#endif
#else
    int first = -ENOSYS;
#endif
#ifdef USERFAULTFD_IOC_NEW
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev >= 0) {
        int ufd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
        close(dev);
        if (ufd >= 0) {
            *route = "/dev/userfaultfd";
            return ufd;
        }
    }
#endif
    return first;
}

/* UFFDIO_API handshake asking for `features`; 0 with *granted set, or -errno. */
static int pc__uffd_api(int fd, uint64_t features, uint64_t *granted)
{
    struct uffdio_api api = {.api = UFFD_API, .features = features};
    if (ioctl(fd, UFFDIO_API, &api) != 0)
        return -errno;
    if ((api.features & features) != features)
        return -EOPNOTSUPP;
    *granted = api.features;
    return 0;
}

int pc_uffd_available(char *msg, size_t len)
{
    const char *route = NULL;
    int fd = pc__uffd_create(&route);
    if (fd < 0) {
        const char *hint;
        if (fd == -ENOSYS)
            hint = "this kernel has no userfaultfd (CONFIG_USERFAULTFD)";
        else if (fd == -EPERM || fd == -EACCES)
            hint = "not permitted: run as root or with CAP_SYS_PTRACE, set "
                   "vm.unprivileged_userfaultfd=1, or give access to /dev/userfaultfd";
        else
            hint = "unexpected error";
        pc__msg(msg, len, "userfaultfd unavailable: %s (%s)", strerror(-fd), hint);
        return fd;
    }
    uint64_t granted = 0;
    int err = pc__uffd_api(fd, UFFD_FEATURE_SIGBUS, &granted);
    close(fd);
    if (err != 0) {
        pc__msg(msg, len, "userfaultfd via %s lacks UFFD_FEATURE_SIGBUS (Linux 4.14+): %s", route,
                strerror(-err));
        return err;
    }
    pc__msg(msg, len, "userfaultfd available via %s, with UFFD_FEATURE_SIGBUS", route);
    return 0;
}

const char *pc_mem_mode_name(enum pc_mem_mode mode)
{
    switch (mode) {
    case PC_MEM_UFFD_SIGBUS:
        return "uffd-sigbus";
    case PC_MEM_UFFD_BLOCK:
        return "uffd-block";
    case PC_MEM_PRESENCE_MAP:
        return "presence-map";
    }
    return "?";
}

static inline _Atomic uint64_t *pc__word(_Atomic uint64_t *map, size_t page)
{
    return &map[page / 64u];
}

static inline uint64_t pc__bit(size_t page)
{
    return (uint64_t)1 << (page % 64u);
}

int pc_mem_open(struct pc_mem *m, size_t size, enum pc_mem_mode mode)
{
    memset(m, 0, sizeof(*m));
    m->uffd = -1;
    if (mode != PC_MEM_UFFD_SIGBUS && mode != PC_MEM_UFFD_BLOCK && mode != PC_MEM_PRESENCE_MAP)
        return -EINVAL;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    if (size == 0 || size > SIZE_MAX / 2)
        return -EINVAL;
    size = (size + pg - 1) / pg * pg;
    m->page_size = pg;
    m->size = size;
    m->npages = size / pg;
    m->mode = mode;

    size_t words = (m->npages + 63u) / 64u;
    m->present = calloc(words, sizeof(*m->present));
    m->claimed = calloc(words, sizeof(*m->claimed));
    if (m->present == NULL || m->claimed == NULL) {
        pc_mem_close(m);
        return -ENOMEM;
    }
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        pc_mem_close(m);
        return -ENOMEM;
    }
    m->base = base;
    /* One fault per 4 KiB page, as the source serves them, instead of 2 MiB at once. */
    (void)madvise(base, size, MADV_NOHUGEPAGE);
    if (mode == PC_MEM_PRESENCE_MAP)
        return 0;

    const char *route = NULL;
    int fd = pc__uffd_create(&route);
    if (fd < 0) {
        pc_mem_close(m);
        return fd;
    }
    m->uffd = fd;
    uint64_t want = mode == PC_MEM_UFFD_SIGBUS ? UFFD_FEATURE_SIGBUS : 0;
    int err = pc__uffd_api(fd, want, &m->features);
    if (err != 0) {
        pc_mem_close(m);
        return err;
    }
    struct uffdio_register reg = {
        .range = {.start = (uint64_t)(uintptr_t)base, .len = size},
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };
    if (ioctl(fd, UFFDIO_REGISTER, &reg) != 0) {
        err = -errno;
        pc_mem_close(m);
        return err;
    }
    if ((reg.ioctls & ((uint64_t)1 << _UFFDIO_COPY)) == 0) {
        pc_mem_close(m);
        return -EOPNOTSUPP;
    }
    return 0;
}

void pc_mem_close(struct pc_mem *m)
{
    if (m->uffd >= 0) {
        if (m->base != NULL) {
            struct uffdio_range r = {.start = (uint64_t)(uintptr_t)m->base, .len = m->size};
            (void)ioctl(m->uffd, UFFDIO_UNREGISTER, &r); /* fails harmlessly if never done */
        }
        close(m->uffd);
        m->uffd = -1;
    }
    if (m->base != NULL)
        munmap(m->base, m->size);
    free(m->present);
    free(m->claimed);
    m->base = NULL;
    m->present = NULL;
    m->claimed = NULL;
    m->npages = 0;
    m->size = 0;
}

bool pc_mem_is_present(const struct pc_mem *m, size_t page)
{
    if (page >= m->npages)
        return false;
    return (atomic_load_explicit(pc__word(m->present, page), memory_order_acquire) &
            pc__bit(page)) != 0;
}

int pc_mem_page_index(const struct pc_mem *m, const void *addr, size_t *page)
{
    uintptr_t a = (uintptr_t)addr, b = (uintptr_t)m->base;
    if (m->base == NULL || a < b || a - b >= m->size)
        return -EFAULT;
    *page = (a - b) / m->page_size;
    return 0;
}

static void pc__mark_present(struct pc_mem *m, size_t page)
{
    /* Release: pairs with pc_mem_is_present()'s acquire, so the contents are visible first. */
    atomic_fetch_or_explicit(pc__word(m->present, page), pc__bit(page), memory_order_release);
}

static int pc__resolve_uffd(struct pc_mem *m, size_t page, const void *src)
{
    struct uffdio_copy cp = {
        .dst = (uint64_t)(uintptr_t)pc_mem_page_addr(m, page),
        .src = (uint64_t)(uintptr_t)src,
        .len = m->page_size,
        .mode = 0, /* wake threads sleeping on the page (BLOCK mode) */
    };
    for (unsigned tries = 0;; tries++) {
        if (ioctl(m->uffd, UFFDIO_COPY, &cp) == 0)
            return 0;
        if (errno == EEXIST)
            return 0; /* already present: someone else resolved it first */
        /* EAGAIN: the address space is changing (mremap, fork...) or a partial copy;
         * the kernel asks for a retry. Bounded so that a stuck kernel is an error. */
        if (errno != EAGAIN || tries >= 1000)
            return -errno;
        cp.copy = 0;
        sched_yield();
    }
}

static int pc__resolve_map(struct pc_mem *m, size_t page, const void *src)
{
    uint64_t prev =
        atomic_fetch_or_explicit(pc__word(m->claimed, page), pc__bit(page), memory_order_acq_rel);
    if ((prev & pc__bit(page)) == 0) {
        memcpy(pc_mem_page_addr(m, page), src, m->page_size);
        return 0; /* the caller marks it present */
    }
    /* Another resolver is copying: wait until it has published the page. */
    while (!pc_mem_is_present(m, page))
        sched_yield();
    return 0;
}

int pc_mem_resolve(struct pc_mem *m, size_t page, const void *src)
{
    if (page >= m->npages)
        return -ERANGE;
    if (pc_mem_is_present(m, page))
        return 0;
    int err = m->mode == PC_MEM_PRESENCE_MAP ? pc__resolve_map(m, page, src)
                                             : pc__resolve_uffd(m, page, src);
    if (err == 0)
        pc__mark_present(m, page);
    return err;
}

int pc_mem_wait_fault(struct pc_mem *m, int timeout_ms, size_t *page, uint64_t *addr)
{
    if (m->mode != PC_MEM_UFFD_BLOCK || m->uffd < 0)
        return -EOPNOTSUPP;
    for (;;) {
        struct pollfd p = {.fd = m->uffd, .events = POLLIN};
        int n = poll(&p, 1, timeout_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -ETIMEDOUT;
        struct uffd_msg msg;
        ssize_t r = read(m->uffd, &msg, sizeof(msg));
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue; /* woken for a fault that another reader took, or resolved */
            return -errno;
        }
        if (r != (ssize_t)sizeof(msg) || msg.event != UFFD_EVENT_PAGEFAULT)
            return -EPROTO;
        uint64_t a = msg.arg.pagefault.address;
        if (addr != NULL)
            *addr = a;
        return pc_mem_page_index(m, (const void *)(uintptr_t)a, page) == 0 ? 0 : -EPROTO;
    }
}
