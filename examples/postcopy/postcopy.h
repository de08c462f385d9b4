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
/* The host side: the event loop (embedder completion, one I/O thread: host_loop.c) or
 * libapf-host's worker pool. */
enum pc_host { HOST_AUTO = 0, HOST_LOOP, HOST_POOL };

/* Where the threads run and who may spin; decided once per invocation (layout.c). */
struct pc_layout {
    enum pc_host host;  /* the host of the "apf" runs */
    bool pin;           /* vCPU i on CPU i, host threads on the CPUs with no vCPU */
    bool spare;         /* there is such a CPU */
    bool spin_host;     /* host thread(s) finish a fetch by spinning to its deadline */
    bool spin_vcpu;     /* an idle vCPU polls before it sleeps (adaptive, like KVM's
                           halt polling) */
    bool host_with_vcpus; /* the spare CPU is busy with another process: the host thread
                             shares the vCPUs' CPUs instead */
    int vcpu_cpu0;      /* the CPU of vCPU 0 (the least loaded); vCPU i on vcpu_cpu0 + i */
    char why[320];      /* the reasons, printed */
};

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
    uint32_t rounds;          /* interleaved rounds of all modes; 0 = default */
    enum pc_host host;        /* --host: AUTO (the layout's), LOOP, POOL */
    bool both_hosts;          /* --host both: apf with the loop and with the pool */
    int spin;                 /* -1 auto, 0 off, 1 on */
    int host_cpu;             /* 0 auto, 1 own (the spare CPUs), 2 vcpu (share the vCPUs') */
    struct pc_layout layout;  /* resolved in main() */
    enum pc_host run_host;    /* the host of this run (set per run) */
};

/* The parts of one fault's cost, medians over a run's faults (microseconds), from the
 * stage-2 exit to the woken task running its access again. */
struct pc_parts {
    double exit;     /* the access -> the exit handler (SIGBUS delivery) */
    double handoff;  /* the exit handler -> the fetch under way (engine, submit or worker) */
    double fetch;    /* the source's model latency (not overhead) */
    double late;     /* timer lateness of the simulated fetch (kept out of the overhead) */
    double copy;     /* UFFDIO_COPY */
    double complete; /* copy done -> completion and kick done */
    double deliver;  /* -> "page ready" taken and the task woken (guest) */
    double deliver_busy, deliver_idle; /* the same, vCPU running a task / idle */
    double idle_share; /* share of faults whose "page ready" found the vCPU idle */
    double runq;     /* woken -> running again: other tasks' useful work (not overhead) */
    double touch;    /* running again -> its access done (return from the exit, retry) */
    double overhead; /* the sum of exit, handoff, copy, complete, deliver, touch: per fault */
    double e2e;      /* access -> access done, everything */
    uint64_t n;      /* faults measured */
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
    enum pc_host host;        /* apf: which host side */
    struct pc_parts parts;    /* apf: the per-fault cost, in parts */
    double late_p99_us;       /* apf: timer lateness of the simulated fetch, p99 */
    double other_load;        /* CPU time others used on the CPUs of this run, as a share
                                 of those CPUs (-1 unknown) */
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

/* A round: each run once, back to back (apf [loop] [pool], sync, ideal). */
#define PC_MAX_RUNS 4
struct pc_round {
    int n;
    struct pc_result r[PC_MAX_RUNS];
};

/* The floor: the same steps done by the simplest code on the same CPUs (floor.c). */
struct pc_floor {
    bool ok;
    double exit_us;   /* a userfaultfd SIGBUS exit and the return from it (median) */
    double copy_us;   /* one 4 KiB UFFDIO_COPY (median) */
    double rt_us;     /* a thread round trip as the layout does it, minus the fetch (median) */
    double total_us;  /* exit + copy + rt */
    double late_us;   /* the timer lateness of the probe's simulated fetches (median) */
    char rt_how[96];  /* how the round trip was made */
};
int pc_floor_probe(const struct pc_opts *o, struct pc_floor *f);

/* layout.c */
void pc_layout_decide(struct pc_opts *o);
int pc_ncpus(void); /* the CPUs this process may use */
int pc_cpu_id(int k); /* the k-th of them */
/* Per-CPU busy time (ns of /proc/stat, all CPUs), for "other load". */
#define PC_MAX_CPUS 256
struct pc_cpu_sample {
    uint64_t busy[PC_MAX_CPUS], total[PC_MAX_CPUS];
    uint64_t steal, all;
    uint64_t self_ns; /* this process's CPU time */
    uint64_t t_ns;
    int n;
};
void pc_cpu_sample(struct pc_cpu_sample *c);
/* Share of the CPUs this process runs on (all of them unless pinned) that other processes
 * used between a and b; -1 if unknown. */
double pc_other_load(const struct pc_opts *o, const struct pc_cpu_sample *a,
                     const struct pc_cpu_sample *b);
const char *pc_host_name(enum pc_host h);

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
void pc_report_table(const struct pc_opts *o, const struct pc_round *rd, int nrounds,
                     const struct pc_floor *f);
void pc_report_json(const struct pc_opts *o, const struct pc_round *rd, int nrounds,
                    const struct pc_floor *f);
/* Latency hidden by the apf run with host h in one round; NAN if not computable. */
double pc_hidden(const struct pc_round *rd, enum pc_host h);
/* Median, min and max of a figure over rounds. */
struct pc_stat {
    double med, min, max;
    int n;
};
struct pc_sweep_point {
    double x;
    struct pc_round *rounds;
    int nrounds;
};
void pc_sweep_report(const struct pc_opts *o, const struct pc_sweep_point *p, int n,
                     const struct pc_floor *f);
int pc_sweep_plot(const struct pc_opts *o, const struct pc_sweep_point *p, int n,
                  const struct pc_floor *fl);

/* util */
double pc_quantile(double *v, size_t n, double q); /* sorts v */

#endif
