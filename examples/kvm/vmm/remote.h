/* SPDX-License-Identifier: MIT */
/*
 * The "remote" memory slot: anonymous memory registered with userfaultfd (missing pages).
 * A handler thread resolves each fault after a configurable delay with UFFDIO_COPY of a page
 * whose words are gabi_pattern(gpa), as if it came over the network.
 */
#ifndef VMM_REMOTE_H
#define VMM_REMOTE_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

/* One resolved fault. */
struct vmm_remote_fault {
    uint64_t gpa;       /* page */
    uint64_t t_msg_ns;  /* when the handler read the fault (monotonic, from remote start) */
    uint64_t t_done_ns; /* when UFFDIO_COPY returned */
    int32_t tid;        /* faulting thread, 0 if the kernel did not say, -1 the VMM (libapf-host completion) */
    int32_t from_vcpu;  /* 1 if that thread is the vCPU thread (a synchronous fault) */
};

struct vmm_remote_stats {
    uint64_t faults;     /* fault messages read */
    uint64_t copies;     /* pages copied in */
    uint64_t raced;      /* copies that found the page already there (EEXIST) */
    uint64_t errors;     /* other failures */
    uint64_t from_vcpu;  /* faults raised by the vCPU thread */
    uint64_t from_other; /* faults raised by another thread (KVM's async worker) */
    uint64_t sim_copies; /* pages the VMM copied in without a fault (libapf-host completions) */
};

struct vmm_remote {
    int uffd;
    int stop_fd; /* eventfd that ends the handler thread */
    pthread_t thread;
    int started;
    uint8_t *host;
    size_t size;
    uint64_t gpa;
    uint32_t delay_us;
    int thread_ids; /* UFFD_FEATURE_THREAD_ID granted */
    pid_t vcpu_tid;
    uint64_t t0_ns;
    pthread_mutex_t lock; /* guards stats and log */
    struct vmm_remote_stats stats;
    struct vmm_remote_fault *log;
    uint32_t log_len, log_cap;
    uint8_t *present; /* per page: copied in */
};

/* Create the region (@p pages pages at @p gpa) and its userfaultfd. 0; 1 (userfaultfd
 * unavailable here: @p why says why); -1 on another error. */
int vmm_remote_create(struct vmm_remote *r, uint64_t gpa, uint32_t pages, uint32_t delay_us,
                      char *why, size_t why_len);
/* Start the handler thread; @p vcpu_tid is the thread that runs KVM_RUN. 0 or -errno. */
int vmm_remote_start(struct vmm_remote *r, pid_t vcpu_tid);
/* Stop the handler thread (the log is then stable). */
void vmm_remote_stop(struct vmm_remote *r);
/* Stop the thread and free everything. */
void vmm_remote_destroy(struct vmm_remote *r);
/* Whether the page at @p gpa has been copied in. Any thread. */
int vmm_remote_is_present(struct vmm_remote *r, uint64_t gpa);
/* Copy the page at @p gpa in now, without a fault (libapf-host's completion thread). 0 (also
 * when it was already there) or -errno. Any thread. */
int vmm_remote_copy_in(struct vmm_remote *r, uint64_t gpa);
/* A consistent copy of the counters. */
void vmm_remote_get_stats(struct vmm_remote *r, struct vmm_remote_stats *out);

uint64_t vmm_now_ns(void);
void vmm_sleep_us(uint32_t us);

#endif /* VMM_REMOTE_H */
