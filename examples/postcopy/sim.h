/* SPDX-License-Identifier: MIT */
/* apf-postcopy internals shared by the VMM (vm.c) and the guest kernel (guest.c). */
#ifndef APF_POSTCOPY_SIM_H
#define APF_POSTCOPY_SIM_H

#include <pthread.h>

#include "apf/guest.h"
#include "apf/host_s390.h"
#include "apf/loopback.h"
#include "postcopy.h"
#include "support/coro.h"
#include "support/source.h"
#include "support/uffd.h"
#include "host_loop.h"

/* Guest-physical address of guest page i (what the host engine sees). */
#define PC_GPA_BASE 0x100000000ull
#define PC_GPA(page) (PC_GPA_BASE + (uint64_t)(page) * PC_PAGE_SIZE)
/* The state of a user task running with interrupts and APIC on. */
#define PC_GS (APF_GS_USER | APF_GS_IRQ_ON | APF_GS_PAGING | APF_GS_IRQCHIP_ON)

enum { TASK_RUNNABLE, TASK_RUNNING, TASK_BLOCKED, TASK_DONE, TASK_DEAD };

struct pc_vcpu;

struct pc_task {
    struct pc_coro co;
    struct pc_coro_stack stack;
    struct pc_vcpu *v;
    uint32_t id;
    int state;
    uint64_t todo;
    struct pc_cursor cur;
    uint64_t fault_t0;   /* when its current "not present" began (0: none) */
    uint64_t fault_page;
    /* the per-fault clock (pc_parts): this task's current access */
    uint64_t t_access, t_exit, t_wake, t_run;
    bool woke_idle;
    bool faulted; /* the current access went async */
};

/* What the host side did for one page (host threads write, the woken vCPU reads). */
struct pc_page_times {
    _Atomic uint64_t start;    /* the fetch began (submit, or a worker took it) */
    _Atomic uint64_t deadline; /* its reply was due (the model; 0: unknown, TCP source) */
    _Atomic uint64_t fetched;  /* the page was in hand */
    _Atomic uint64_t copied;   /* UFFDIO_COPY done */
    _Atomic uint64_t done;     /* completion (and kick) done */
};

/* One faulted access, in parts (ns). */
struct pc_fault_sample {
    uint32_t exit, handoff, fetch, late, copy, complete, deliver, runq, touch;
    uint32_t woke_idle; /* "page ready" found the vCPU idle (polling or asleep) */
};

struct pc_vcpu {
    struct pc_sim *sim;
    uint32_t id;
    pthread_t thread;
    struct pc_coro sched; /* the vCPU thread's own context: the scheduler */
    struct pc_task *tasks;
    uint32_t ntasks;
    struct pc_task **rq;
    uint32_t rq_head, rq_n;
    struct pc_task *cur;
    uint32_t done;
    /* counters (this vCPU's thread only) */
    uint64_t accesses, idle_ns, stall_ns, busy_ns;
    uint64_t faults_async, faults_sync, faults_halt;
    double *ready_us, *overhead_us; /* samples */
    size_t nsamples, cap;
    struct pc_fault_sample *fs; /* per-fault parts */
    size_t nfs, fscap;
    uint64_t poll_ns; /* adaptive idle poll (layout.spin_vcpu) */
    bool idling;      /* in pc_vcpu_idle(): a wake-up now comes from idle */
};

struct pc_sim {
    const struct pc_opts *o;
    enum pc_mode mode;
    struct pc_mem mem;
    struct pc_source *src;
    struct pc_workload *wl;
    struct apf_loopback *lb;
    struct apf_guest *g;
    void *gmem;
    struct pc_vcpu *vcpus;
    uint64_t iters_per_access; /* calibrated compute */
    uint64_t iters_per_us;     /* between two interrupt checks */
    _Atomic uint64_t *fetch_ns; /* per page: the source's time, for the overhead */
    struct pc_page_times *pt;   /* per page */
    struct pc_loop *loop;       /* the event-loop host, or NULL (pool) */
    _Atomic uint64_t accesses_done;
    _Atomic uint64_t pages_fetched;
    atomic_int fatal;
    pthread_mutex_t fatal_lock;
    char fatal_msg[256];
    pthread_barrier_t start;
    /* trace */
    pthread_mutex_t trace_lock;
    void *trace_file; /* FILE * */
    struct apf_trace_checker *chk;
    void *chk_mem;
    int trace_err;
    char trace_msg[256];
};

void pc_sim_fail(struct pc_sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t pc_calibrate(double compute_us);

/* guest.c: the guest kernel of one vCPU */
extern const struct apf_guest_env_ops pc_guest_env;
void *pc_vcpu_main(void *arg);
void pc_task_main(void *arg); /* a guest task's body (a coroutine) */
/* The vCPU's page-fault exit for a missing page (vm.c). */
void pc_vcpu_missing(struct pc_vcpu *v, uint64_t page);
/* SIGBUS callback of a vCPU thread (userfaultfd mode): the exit itself (vm.c). */
bool pc_vcpu_sigbus(void *ctx, void *addr);
/* CPU placement (vm.c) */
void pc_pin_vcpu_thread(const struct pc_sim *s, uint32_t vcpu);
void pc_pin_host_thread(const struct pc_sim *s);
void pc_pin_host_thread_opts(const struct pc_opts *o);
bool pc_short_slice(void); /* this thread: a short scheduler slice; false if refused */
/* An idle vCPU: polls for a kick first where the layout allows (adaptive), then sleeps. */
void pc_vcpu_idle(struct pc_vcpu *v);
/* Makes a page present from the source (worker or vCPU thread): 0 or -errno. */
int pc_fetch_page(struct pc_sim *s, uint64_t page);
/* The vCPU's access to guest memory was retried and done: record its parts. */
void pc_fault_record(struct pc_vcpu *v, struct pc_task *t, uint64_t t_done);

#endif
