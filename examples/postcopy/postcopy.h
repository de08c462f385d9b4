/* SPDX-License-Identifier: MIT */
/*
 * apf-postcopy: post-copy live migration with and without APF, measured.
 *
 * A user-space VMM (vm.c) whose vCPUs are threads. Each vCPU runs a small guest kernel
 * (guest.c): a scheduler of guest tasks (coroutines) that embeds libapf-guest, through the
 * loopback and the real kvm_x86 transport code. Guest memory is anonymous memory on
 * userfaultfd: a missing page is a real page fault on the vCPU thread (SIGBUS, the
 * "stage-2 exit"), handed to libapf-host's fault(). Pages come from a migration source
 * (in-process, or a source process over TCP) with a latency model. Modes, on the same
 * workload and seed: apf, sync (every missing page stalls its vCPU), ideal (all present).
 */
#ifndef APF_POSTCOPY_H
#define APF_POSTCOPY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "support/latency.h"

enum pc_mode { MODE_APF = 0, MODE_SYNC = 1, MODE_IDEAL = 2, MODE_COUNT };
enum pc_pattern { PATTERN_SEQUENTIAL, PATTERN_RANDOM, PATTERN_ZIPF };
enum pc_memory { MEMORY_AUTO, MEMORY_UFFD, MEMORY_MAP };
enum pc_sweep { SWEEP_NONE, SWEEP_LATENCY, SWEEP_TASKS };
/* --transport: the wire the loopback runs (issue 11) */
enum pc_transport {
    TRANSPORT_KVM_X86,
    TRANSPORT_KVM_ARM64,
    TRANSPORT_XEN,
    TRANSPORT_MMIO,
    TRANSPORT_S390
};
const char *pc_transport_name(enum pc_transport t);

struct pc_opts {
    uint32_t vcpus;
    uint32_t tasks;        /* per vCPU */
    uint64_t mem_bytes;    /* guest memory */
    enum pc_pattern pattern;
    double zipf_s;         /* zipf exponent */
    double compute_us;     /* work per access, on an idle core */
    uint64_t accesses;     /* in total, over all tasks */
    uint64_t seed;
    struct pc_latency latency;
    bool modes[MODE_COUNT];
    enum pc_memory memory;
    uint32_t workers;         /* host worker threads; 0 = one per task (max 256) */
    uint32_t max_outstanding; /* host per-vCPU limit; 0 = 64 */
    const char *source;       /* "ADDR:PORT" of a source process, or NULL: in-process */
    int source_listen;        /* >= 0: run as the source process on this port */
    bool json;
    int progress;             /* -1 auto (a TTY), 0 off, 1 on */
    int pin;                  /* -1 auto (when CPUs > vCPUs), 0 off, 1 on */
    enum pc_sweep sweep;
    const char *plot;         /* FILE.svg or FILE.png (gnuplot) */
    const char *trace;        /* write the protocol trace here and check it */
    enum pc_transport transport;
};

/* Per-mode results, all measured. */
struct pc_result {
    enum pc_mode mode;
    bool ok;
    char error[512];
    double wall_s;            /* first task start to last task end */
    uint64_t accesses;        /* accesses completed (and verified) */
    double throughput;        /* accesses per second */
    uint64_t faults_async, faults_sync, faults_halt; /* as the vCPUs saw them */
    uint64_t pages_fetched;
    double ready_p50_us, ready_p99_us; /* "not present" -> "page ready" wakes the task */
    double overhead_p50_us;   /* ready latency minus that page's fetch time (median) */
    double fetch_p50_us;      /* the source's own time per page (median) */
    uint64_t ready_samples;
    double idle_share;        /* vCPU time with no runnable task */
    double stall_share;       /* vCPU time stalled in a synchronous fault or halt */
    uint64_t trace_events;    /* with --trace: events checked */
    uint64_t ack_exits;       /* "page ready" ACKs the guest sent the host (exits) */
    double steal_share;       /* CPU time this machine's hypervisor took away during the run
                                 (/proc/stat "steal"; -1 if unknown) */
    const char *memory;       /* "userfaultfd" or "presence map" */
    /* apf mode: ACK exits (control-plane ACK calls: 0 on a ring) and "page ready"
     * notifications, per "page ready" delivered (tokens and wake-alls); -1 if none */
    double ack_exits_per_ready, notifications_per_ready;
};

/* vm.c: one run of one mode. Returns 0, or -errno (result->error says why). */
int pc_run(const struct pc_opts *o, enum pc_mode mode, struct pc_result *r);
const char *pc_mode_name(enum pc_mode m);
extern atomic_int pc_interrupted; /* set by SIGINT: runs stop early */

/* workload.c */
struct pc_workload;
struct pc_workload *pc_workload_create(const struct pc_opts *o, uint64_t npages);
void pc_workload_destroy(struct pc_workload *w);
/* Page of the next access of task `task` (0-based over all tasks); `state` is the task's
 * own cursor, initialised by pc_workload_task_init. */
struct pc_cursor {
    uint64_t rng;
    uint64_t next, lo, hi;
};
void pc_workload_task_init(const struct pc_workload *w, uint32_t task, uint32_t ntasks,
                           struct pc_cursor *c);
uint64_t pc_workload_next(const struct pc_workload *w, struct pc_cursor *c);

/* report.c */
void pc_report_table(const struct pc_opts *o, const struct pc_result *r, int n);
void pc_report_json(const struct pc_opts *o, const struct pc_result *r, int n);
double pc_hidden(const struct pc_result *r, int n); /* -1 if not computable */
struct pc_sweep_point {
    double x;
    struct pc_result r[MODE_COUNT];
};
void pc_sweep_report(const struct pc_opts *o, const struct pc_sweep_point *p, int n);
int pc_sweep_plot(const struct pc_opts *o, const struct pc_sweep_point *p, int n);

/* util */
double pc_quantile(double *v, size_t n, double q); /* sorts v */

#endif
