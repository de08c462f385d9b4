/* SPDX-License-Identifier: MIT */
/*
 * Where apf-postcopy's threads run, and who may spin: decided once per invocation from the
 * CPU count and a short look (150 ms) at what else runs on the CPUs. And the machine's
 * noise: CPU time other processes and the hypervisor below took during a run.
 *
 * The rules (measured on the project's 2-CPU virtual machines, docs/postcopy.md):
 *  - The host side is the event loop: it needs no thread wake-up per fault (submit arms a
 *    timer; the reply's deadline wakes the I/O thread), where the pool wakes a worker per
 *    fault, 59-67 us across CPUs on these machines.
 *  - With a CPU no vCPU uses, vCPU i runs on CPU i and the host thread(s) on the rest, and
 *    spinning is allowed where it takes no CPU others need: the I/O thread ends each timer
 *    sleep by spinning to the deadline (the margin adapts to its measured timer lateness)
 *    and an idle vCPU polls for a kick before it sleeps (adaptive, like KVM's halt
 *    polling). A CPU already busy with another process gets no spinner.
 *  - Without a spare CPU nothing is pinned and nothing spins: a spinner would take the CPU
 *    a vCPU needs. Timer lateness is then measured and kept out of the figures.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "postcopy.h"
#include "sim.h"

const char *pc_host_name(enum pc_host h)
{
    return h == HOST_POOL ? "pool" : h == HOST_LOOP ? "loop" : "auto";
}

/* The CPUs this process may use (its affinity mask at the start, as taskset or a cpuset
 * set it), in order: "CPU k" in the layout is the k-th of them. Read once, before any
 * thread pins itself. */
static int cpu_ids[PC_MAX_CPUS];
static int n_cpu_ids;

int pc_ncpus(void)
{
    if (n_cpu_ids == 0) {
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof(set), &set) == 0)
            for (int c = 0; c < CPU_SETSIZE && n_cpu_ids < PC_MAX_CPUS; c++)
                if (CPU_ISSET(c, &set))
                    cpu_ids[n_cpu_ids++] = c;
        if (n_cpu_ids == 0)
            cpu_ids[n_cpu_ids++] = 0;
    }
    return n_cpu_ids;
}

int pc_cpu_id(int k)
{
    return cpu_ids[k % pc_ncpus()];
}

void pc_cpu_sample(struct pc_cpu_sample *c)
{
    memset(c, 0, sizeof(*c));
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    c->self_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    c->t_ns = pc_now_ns();
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "cpu", 3) != 0)
            break;
        unsigned long long v[8] = {0};
        int cpu = -1;
        int k;
        if (line[3] == ' ')
            k = sscanf(line + 3, " %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                       &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
        else
            k = sscanf(line + 3, "%d %llu %llu %llu %llu %llu %llu %llu %llu", &cpu, &v[0],
                       &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) - 1;
        if (k < 8)
            continue;
        /* user nice system idle iowait irq softirq steal */
        uint64_t busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
        uint64_t total = busy + v[3] + v[4];
        if (cpu < 0) {
            c->steal = v[7];
            c->all = total;
        } else if (cpu < PC_MAX_CPUS) {
            c->busy[cpu] = busy;
            c->total[cpu] = total;
            if (cpu + 1 > c->n)
                c->n = cpu + 1;
        }
    }
    fclose(f);
}

double pc_other_load(const struct pc_opts *o, const struct pc_cpu_sample *a,
                     const struct pc_cpu_sample *b)
{
    (void)o;
    if (a->n == 0 || b->n != a->n || b->t_ns <= a->t_ns)
        return -1;
    double tick_ns = 1e9 / (double)sysconf(_SC_CLK_TCK);
    double busy = 0;
    int n = pc_ncpus();
    for (int i = 0; i < n; i++) {
        int c = pc_cpu_id(i);
        busy += (double)(b->busy[c] - a->busy[c]) * tick_ns;
    }
    double self = (double)(b->self_ns - a->self_ns);
    double cap = (double)(b->t_ns - a->t_ns) * n;
    double other = (busy - self) / cap;
    return other < 0 ? 0 : other;
}

/* Share of each CPU other processes use right now (we are idle): 150 ms of /proc/stat. */
static void look_at_cpus(double *load, int n)
{
    struct pc_cpu_sample a, b;
    pc_cpu_sample(&a);
    struct timespec ts = {0, 150 * 1000 * 1000};
    nanosleep(&ts, NULL);
    pc_cpu_sample(&b);
    for (int i = 0; i < n; i++) {
        int c = pc_cpu_id(i);
        uint64_t t = b.total[c] - a.total[c];
        load[i] = t ? (double)(b.busy[c] - a.busy[c]) / (double)t : 0;
    }
}

static void *slice_probe(void *arg)
{
    *(bool *)arg = pc_short_slice();
    return NULL;
}

void pc_layout_decide(struct pc_opts *o)
{
    struct pc_layout *l = &o->layout;
    int n = pc_ncpus();
    l->spare = (int)o->vcpus < n;
    l->pin = o->pin == 1 || (o->pin == -1 && l->spare);
    l->host = o->host == HOST_AUTO ? HOST_LOOP : o->host;
    char *w = l->why;
    size_t left = sizeof(l->why);
#define WHY(...)                                                                               \
    do {                                                                                       \
        int k_ = snprintf(w, left, __VA_ARGS__);                                               \
        if (k_ > 0 && (size_t)k_ < left)                                                       \
            w += k_, left -= (size_t)k_;                                                       \
    } while (0)
    WHY("%d CPU%s, %u vCPU%s: ", n, n == 1 ? "" : "s", o->vcpus, o->vcpus == 1 ? "" : "s");
    if (o->host == HOST_AUTO)
        WHY("event-loop host (no thread wake-up per fault); ");
    else
        WHY("%s host (--host); ", pc_host_name(l->host));
    if (l->pin && l->spare)
        WHY("vCPUs pinned, one CPU each, host on the rest; ");
    else if (l->pin)
        WHY("vCPUs pinned (--pin on), no CPU to spare; ");
    else
        WHY("not pinned (%s); ", o->pin == 0 ? "--pin off" : "no CPU to spare");
    double load[PC_MAX_CPUS] = {0};
    bool host_busy = false, vcpu_busy = false;
    l->vcpu_cpu0 = 0;
    l->host_with_vcpus = false;
    if (l->pin && l->spare) {
        look_at_cpus(load, n);
        /* the vCPUs on the least loaded run of CPUs; the host on the rest */
        double best = 1e9;
        for (int c0 = 0; c0 < n; c0++) {
            double sum = 0;
            for (uint32_t i = 0; i < o->vcpus; i++)
                sum += load[(c0 + (int)i) % n];
            if (sum < best - 0.05)
                best = sum, l->vcpu_cpu0 = c0;
        }
        bool any_free = false;
        for (int c = 0; c < n; c++) {
            bool is_vcpu = (c - l->vcpu_cpu0 + n) % n < (int)o->vcpus;
            if (load[c] > 0.25) {
                WHY("CPU %d already %.0f%% busy; ", pc_cpu_id(c), 100 * load[c]);
                if (is_vcpu)
                    vcpu_busy = true;
            } else if (!is_vcpu) {
                any_free = true;
            }
        }
        if (l->vcpu_cpu0 != 0)
            WHY("vCPU 0 moved to CPU %d (less busy); ", pc_cpu_id(l->vcpu_cpu0));
        if (!any_free)
            host_busy = true;
        if (o->host_cpu == 2 || (o->host_cpu == 0 && !any_free)) {
            /* a busy spare CPU would delay every wake-up of the host thread behind another
             * process: sharing the vCPUs' CPU, it preempts our own vCPU instead */
            l->host_with_vcpus = true;
            WHY("host thread shares the vCPUs' CPUs (%s); ",
                o->host_cpu == 2 ? "--host-cpu vcpu" : "the spare one is busy");
        } else if (o->host_cpu == 1 && !any_free) {
            WHY("host thread on the spare CPU although it is busy (--host-cpu own); ");
        }
    }
    if (o->spin == 0 || (o->spin == -1 && !(l->pin && l->spare))) {
        l->spin_host = l->spin_vcpu = false;
        WHY("no spinning (%s)", o->spin == 0 ? "--spin off" : "it would take a vCPU's CPU");
    } else if (o->spin == 1) {
        l->spin_host = l->spin_vcpu = true;
        WHY("spinning on (--spin on)");
    } else {
        l->spin_host = !host_busy;
        l->spin_vcpu = !vcpu_busy && !l->host_with_vcpus;
        WHY("host spins to deadlines: %s; idle vCPU polls: %s", l->spin_host ? "yes" : "no",
            l->spin_vcpu ? "yes (adaptive, max 200 us)" : "no");
    }
    bool sliced = false;
    pthread_t th;
    if (pthread_create(&th, NULL, slice_probe, &sliced) == 0)
        pthread_join(th, NULL);
    WHY("; I/O thread slice: %s", sliced ? "short (100 us, wakes preempt)" : "default (refused)");
#undef WHY
}

/* The I/O thread asks the scheduler for a short time slice (EEVDF, Linux 6.12+: a fair
 * task's sched_runtime): it runs a few microseconds per wake-up and, with a shorter slice,
 * an earlier deadline, so its timer wake-ups preempt a CPU-bound thread on its CPU instead
 * of waiting for that thread's slice to end. Unprivileged; older kernels ignore or refuse
 * it (then nothing changes). */
struct pc_sched_attr {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
};

bool pc_short_slice(void)
{
#ifdef SYS_sched_setattr
    struct pc_sched_attr a = {.size = sizeof(a), .policy = 0 /* SCHED_OTHER */,
                              .runtime = 100000 /* 100 us */};
    return syscall(SYS_sched_setattr, 0, &a, 0) == 0;
#else
    return false;
#endif
}

/* ---- CPU placement ---------------------------------------------------------------------------- */

void pc_pin_vcpu_thread(const struct pc_sim *s, uint32_t vcpu)
{
    if (!s->o->layout.pin)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(pc_cpu_id(s->o->layout.vcpu_cpu0 + (int)vcpu), &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

void pc_pin_host_thread_opts(const struct pc_opts *o)
{
    if (!o->layout.pin || !o->layout.spare)
        return; /* no CPU to spare: leave it to the scheduler */
    int n = pc_ncpus();
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c = 0; c < n; c++) {
        bool is_vcpu = (c - o->layout.vcpu_cpu0 + n) % n < (int)o->vcpus;
        if (is_vcpu == o->layout.host_with_vcpus)
            CPU_SET(pc_cpu_id(c), &set);
    }
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

void pc_pin_host_thread(const struct pc_sim *s)
{
    pc_pin_host_thread_opts(s->o);
}
