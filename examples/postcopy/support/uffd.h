/* SPDX-License-Identifier: MIT */
/*
 * Guest memory for the post-copy simulator: anonymous memory whose missing pages are real
 * page faults (userfaultfd, MISSING mode), filled one page at a time with UFFDIO_COPY.
 *
 * Three modes:
 *  - PC_MEM_UFFD_SIGBUS: UFFD_FEATURE_SIGBUS. Touching a missing page raises SIGBUS on the
 *    touching thread at once (no blocking in the kernel): the vCPU thread sees the fault as
 *    an "exit" and can ask the APF engine what to do (see sigbus.h). Another thread fills
 *    the page later; the retried access then succeeds. No event reaches the uffd.
 *  - PC_MEM_UFFD_BLOCK: classic userfaultfd. The touching thread sleeps in the kernel until
 *    the page is filled; a handler thread learns of the fault with pc_mem_wait_fault().
 *  - PC_MEM_PRESENCE_MAP: the fallback where userfaultfd is unavailable. The memory is
 *    ordinary; the caller checks pc_mem_is_present() before each access and calls
 *    pc_mem_resolve() itself when it returns false.
 * In every mode pc_mem_resolve() is idempotent (a page filled twice keeps the first copy and
 * both calls return 0), safe from any number of threads, and once it returns 0 the page is
 * present; pc_mem_is_present() tracks it in every mode (acquire/release ordered).
 *
 * The kernel itself cannot read a missing page either: a system call given a pointer into a
 * missing page fails with EFAULT (SIGBUS mode) or blocks (BLOCK mode).
 */
#ifndef PC_UFFD_H
#define PC_UFFD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** How missing pages are detected; see the file comment. */
enum pc_mem_mode {
    PC_MEM_UFFD_SIGBUS = 0,
    PC_MEM_UFFD_BLOCK = 1,
    PC_MEM_PRESENCE_MAP = 2,
};

/** One guest memory region. Read-only for users after pc_mem_open(). */
struct pc_mem {
    unsigned char *base; /* page-aligned start of the region */
    size_t size;         /* bytes, a multiple of page_size */
    size_t page_size;    /* the system page size */
    size_t npages;
    enum pc_mem_mode mode;
    int uffd;                  /* -1 in PC_MEM_PRESENCE_MAP mode */
    uint64_t features;         /* UFFD_FEATURE_* the kernel granted (0 without userfaultfd) */
    _Atomic uint64_t *present; /* bit per page: filled */
    _Atomic uint64_t *claimed; /* bit per page: a resolver is filling it (presence map) */
};

/**
 * Tries what PC_MEM_UFFD_SIGBUS needs, for real: creates a userfaultfd (the system call, then
 * the user-mode-only flag, then /dev/userfaultfd), negotiates UFFD_API with
 * UFFD_FEATURE_SIGBUS, and closes it again.
 * @param msg  if not NULL, receives a one-line explanation (what worked, or what failed and
 *             what to change: privileges, vm.unprivileged_userfaultfd, /dev/userfaultfd).
 * @param len  size of `msg`.
 * @return 0 if available; -ENOSYS (no userfaultfd in this kernel), -EPERM or -EACCES (not
 *         allowed), -EINVAL or -EOPNOTSUPP (SIGBUS feature missing), other -errno.
 * Calling context: any thread.
 */
int pc_uffd_available(char *msg, size_t len);

/**
 * Maps `size` bytes (rounded up to whole pages) of anonymous memory with every page missing.
 * For the uffd modes the region is registered with a new userfaultfd (MISSING mode).
 * @param m     filled on success; on failure left with uffd = -1 and base = NULL.
 * @param size  bytes; not 0.
 * @param mode  see enum pc_mem_mode.
 * @return 0; -EINVAL (size 0 or too large, bad mode); -ENOMEM; or the userfaultfd error
 *         (as pc_uffd_available()).
 * Calling context: any thread.
 */
int pc_mem_open(struct pc_mem *m, size_t size, enum pc_mem_mode mode);

/**
 * Unregisters the range, closes the userfaultfd and unmaps the memory. No fault may be
 * outstanding (in BLOCK mode a sleeping thread would get SIGBUS). Safe on a zeroed or failed
 * `m`, and twice.
 */
void pc_mem_close(struct pc_mem *m);

/**
 * Makes page `page` present with the contents of `src` (page_size bytes), atomically: a
 * reader never sees a partly filled page. A page that is already present is left as it is
 * (UFFDIO_COPY's EEXIST is success): the call is idempotent.
 * @param m     an open region.
 * @param page  page index, < m->npages.
 * @param src   page_size bytes; not inside the region.
 * @return 0 (the page is present), -ERANGE (page out of range), or -errno from UFFDIO_COPY.
 * Calling context: any thread, concurrently with other resolves and with accesses.
 */
int pc_mem_resolve(struct pc_mem *m, size_t page, const void *src);

/**
 * @return whether page `page` has been filled (false when out of range). Acquire: when it
 *         returns true, the page's contents are visible to the caller.
 * Calling context: any thread.
 */
bool pc_mem_is_present(const struct pc_mem *m, size_t page);

/** @return the address of page `page` (no range check). */
static inline void *pc_mem_page_addr(const struct pc_mem *m, size_t page)
{
    return m->base + page * m->page_size;
}

/**
 * Finds the page that holds `addr`.
 * @return 0 with *page set, or -EFAULT if `addr` is outside the region.
 */
int pc_mem_page_index(const struct pc_mem *m, const void *addr, size_t *page);

/**
 * PC_MEM_UFFD_BLOCK: waits for the next page fault event on the region.
 * @param m           an open region in BLOCK mode.
 * @param timeout_ms  at most this long; -1 for no limit.
 * @param page        receives the faulting page's index.
 * @param addr        if not NULL, receives the faulting address (page-aligned by the kernel
 *                    unless UFFD_FEATURE_EXACT_ADDRESS is granted).
 * @return 0; -ETIMEDOUT; -EOPNOTSUPP (not BLOCK mode); -EPROTO (an unexpected event);
 *         other -errno from poll or read.
 * Calling context: the region's fault-handling thread (one reader at a time).
 */
int pc_mem_wait_fault(struct pc_mem *m, int timeout_ms, size_t *page, uint64_t *addr);

/** @return "uffd-sigbus", "uffd-block" or "presence-map" ("?" for other values). */
const char *pc_mem_mode_name(enum pc_mem_mode mode);

#endif
