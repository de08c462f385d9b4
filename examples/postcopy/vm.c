/* SPDX-License-Identifier: MIT */
/*
 * The VMM of apf-postcopy: guest memory on userfaultfd, the migration source, libapf-host
 * (through the loopback, with the real kvm_x86 frontend), vCPU threads, and one run of one
 * mode from start to clean teardown.
 *
 * The page-fault exit: a guest task reads a missing page; the kernel raises SIGBUS on that
 * vCPU thread (UFFD_FEATURE_SIGBUS), on the task's own stack. pc_vcpu_sigbus() is the
 * "stage-2 exit": it asks libapf-host's fault() (apf_loopback_fault). ASYNC: libapf-guest
 * puts the task to sleep right there, inside the handler, and the scheduler runs other
 * tasks; libapf-host's workers fetch the page from the source and fill it with UFFDIO_COPY;
 * "page ready" wakes the task, the handler returns and the access is retried, now present.
 * SYNC: the vCPU fetches the page itself and stalls meanwhile, as a hypervisor without APF.
 * The handler runs at a plain memory access of the task (a synchronous fault, no lock held),
 * so calling into the engine from it is safe.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apf/host_mmio.h"
#include "apf/host_xen.h"
#include "sim.h"
#include "support/netio.h"
#include "support/page.h"
#include "support/sigbus.h"
#include "support/source_tcp.h"

atomic_int pc_interrupted;

const char *pc_mode_name(enum pc_mode m)
{
    static const char *const names[] = {"apf", "sync", "ideal"};
    return m < MODE_COUNT ? names[m] : "?";
}

void pc_sim_fail(struct pc_sim *s, const char *fmt, ...)
{
    pthread_mutex_lock(&s->fatal_lock);
    if (!atomic_load(&s->fatal)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->fatal_msg, sizeof(s->fatal_msg), fmt, ap);
        va_end(ap);
        atomic_store(&s->fatal, 1);
    }
    pthread_mutex_unlock(&s->fatal_lock);
    for (uint32_t i = 0; s->lb && i < s->o->vcpus; i++)
        apf_loopback_kick(s->lb, i); /* idle vCPUs notice at once */
}

/* ---- the pages: source -> UFFDIO_COPY -------------------------------------------------------- */

int pc_fetch_page(struct pc_sim *s, uint64_t page)
{
    static _Thread_local _Alignas(64) unsigned char buf[PC_PAGE_SIZE];
    if (pc_mem_is_present(&s->mem, page))
        return 0; /* another vCPU's fetch got there first */
    struct pc_page_times *pt = &s->pt[page];
    uint64_t t0 = pc_now_ns();
    atomic_store_explicit(&pt->start, t0, memory_order_relaxed);
    if (s->o->source == NULL) /* the in-process source's reply is due then */
        atomic_store_explicit(&pt->deadline, t0 + pc_latency_sample_ns(&s->o->latency, page),
                              memory_order_relaxed);
    int err = pc_source_fetch(s->src, page, buf);
    if (err) {
        char why[200];
        pc_source_last_error(s->src, why, sizeof(why));
        pc_sim_fail(s, "migration source failed on page %llu: %s", (unsigned long long)page,
                    why[0] ? why : strerror(-err));
        return err;
    }
    uint64_t t1 = pc_now_ns();
    atomic_store_explicit(&pt->fetched, t1, memory_order_relaxed);
    atomic_store_explicit(&s->fetch_ns[page], t1 - t0, memory_order_relaxed);
    err = pc_mem_resolve(&s->mem, page, buf);
    if (err) {
        pc_sim_fail(s, "cannot fill page %llu: %s", (unsigned long long)page, strerror(-err));
        return err;
    }
    uint64_t t2 = pc_now_ns();
    atomic_store_explicit(&pt->copied, t2, memory_order_relaxed);
    atomic_store_explicit(&pt->done, t2, memory_order_relaxed); /* the pool completes next */
    atomic_fetch_add_explicit(&s->pages_fetched, 1, memory_order_relaxed);
    return 0;
}

/* libapf-host's `resolve`, on its worker threads (the pool host).
 * Where the layout lets host threads spin (they have a CPU of their own), the wait for the
 * source ends precisely (a timer sleep, then a spin for the timer's usual lateness);
 * otherwise it only sleeps, as a wait on a remote machine, and the timer's lateness is
 * measured (fetched - deadline) and kept out of the figures. A vCPU fetching synchronously
 * (sync mode) always waits precisely: it is stalled anyway. */
static int host_resolve(void *ctx, uint32_t vcpu, uint64_t gpa)
{
    static _Thread_local bool ready;
    struct pc_sim *s = ctx;
    if (!ready) {
        pc_sleep_set_spin(s->o->layout.spin_host);
        pc_pin_host_thread(s);
        pc_short_slice(); /* as the event loop's thread: the comparison is of hand-offs */
        ready = true;
    }
    (void)vcpu;
    if (atomic_load(&s->fatal))
        return -ECANCELED;
    return pc_fetch_page(s, (gpa - PC_GPA_BASE) / PC_PAGE_SIZE);
}

/* ---- the event-loop host (host_loop.c): submit on the vCPU, complete on the I/O thread ---- */

/* libapf-host's `submit`, inside the stage-2 exit on the vCPU thread: the request to the
 * source leaves now; its reply is due after the model's latency for this page. */
static void host_submit(void *ctx, uint32_t vcpu, uint32_t token, uint64_t gpa)
{
    struct pc_sim *s = ctx;
    uint64_t page = (gpa - PC_GPA_BASE) / PC_PAGE_SIZE;
    uint64_t t0 = pc_now_ns();
    struct pc_loop_job j = {.deadline = t0 + pc_latency_sample_ns(&s->o->latency, page),
                            .page = page, .vcpu = vcpu, .token = token};
    atomic_store_explicit(&s->pt[page].start, t0, memory_order_relaxed);
    atomic_store_explicit(&s->pt[page].deadline, j.deadline, memory_order_relaxed);
    if (pc_loop_submit(s->loop, &j) != 0) { /* cannot happen: capacity = every slot */
        pc_sim_fail(s, "event loop full");
        apf_host_complete(apf_loopback_host(s->lb), vcpu, token, APF_EIO);
    }
}

static void loop_thread_init(void *ctx)
{
    struct pc_sim *s = ctx;
    pc_sleep_set_spin(s->o->layout.spin_host);
    pc_pin_host_thread(s);
    pc_short_slice();
}

/* Before the reply is due: the page's contents (the source's own work, inside its
 * latency, as the in-process source generates the page inside its sleep). */
static void loop_prepare(void *ctx, const struct pc_loop_job *j)
{
    struct pc_sim *s = ctx;
    pc_page_fill(s->o->seed, j->page, j->buf);
}

/* The reply is due: the page filled (UFFDIO_COPY) and the fault completed (the engine
 * queues "page ready" and kicks the vCPU). */
static void loop_fire(void *ctx, const struct pc_loop_job *j)
{
    struct pc_sim *s = ctx;
    struct pc_page_times *pt = &s->pt[j->page];
    int status = 0;
    uint64_t t1 = pc_now_ns();
    atomic_store_explicit(&pt->fetched, t1, memory_order_relaxed);
    atomic_store_explicit(&s->fetch_ns[j->page],
                          t1 - atomic_load_explicit(&pt->start, memory_order_relaxed),
                          memory_order_relaxed);
    if (atomic_load(&s->fatal)) {
        status = APF_EIO;
    } else if (pc_mem_is_present(&s->mem, j->page)) {
        /* a second request for a page already filled: its fault was raised before the
         * copy and reached the engine after the first completion (the engine no longer had
         * it in flight). Nothing to fetch; complete it. */
    } else {
        int err = pc_mem_resolve(&s->mem, j->page, j->buf);
        if (err) {
            pc_sim_fail(s, "cannot fill page %llu: %s", (unsigned long long)j->page,
                        strerror(-err));
            status = APF_EIO;
        } else {
            atomic_store_explicit(&pt->copied, pc_now_ns(), memory_order_relaxed);
            atomic_fetch_add_explicit(&s->pages_fetched, 1, memory_order_relaxed);
        }
    }
    int err = apf_host_complete(apf_loopback_host(s->lb), j->vcpu, j->token, status);
    atomic_store_explicit(&pt->done, pc_now_ns(), memory_order_relaxed);
    if (err)
        pc_sim_fail(s, "apf_host_complete: %s", apf_strerror(err));
}

/* ---- the page-fault exit ----------------------------------------------------------------------- */

void pc_vcpu_missing(struct pc_vcpu *v, uint64_t page)
{
    struct pc_sim *s = v->sim;
    struct pc_task *t = v->cur;
    for (;;) {
        if (atomic_load(&s->fatal) || atomic_load(&pc_interrupted)) {
            /* The run is over: this task never gets its page. Abandon it (its coroutine
             * is never resumed; its stack is freed at teardown). */
            t->state = TASK_DEAD;
            pc_coro_switch(&t->co, &v->sched);
            abort(); /* unreachable: a dead task is never switched to */
        }
        uint64_t t0 = pc_now_ns();
        t->fault_t0 = t0;
        t->fault_page = page;
        int r = apf_loopback_fault(s->lb, v->id, PC_GPA(page), PC_GS);
        if (r == APF_FAULT_ASYNC) {
            v->faults_async++; /* the task slept in there; "page ready" woke it */
            t->faulted = true;
            t->t_run = pc_now_ns();
        } else {
            t->fault_t0 = 0;
            if (r == APF_FAULT_HALT) {
                v->faults_halt++;
            } else if (r == APF_FAULT_SYNC) {
                v->faults_sync++;
                pc_fetch_page(s, page); /* the vCPU stalls for the whole fetch */
            } else {
                pc_sim_fail(s, "libapf-host fault(): %s", apf_strerror(r));
            }
            v->stall_ns += pc_now_ns() - t0;
        }
        if (pc_mem_is_present(&s->mem, page))
            return; /* retry the access */
    }
}

bool pc_vcpu_sigbus(void *ctx, void *addr)
{
    struct pc_vcpu *v = ctx;
    size_t page;
    uint64_t now = pc_now_ns();
    if (v->cur == NULL || pc_mem_page_index(&v->sim->mem, addr, &page) != 0)
        return false; /* not a guest task's access to guest memory: not ours */
    v->cur->t_exit = now;
    pc_vcpu_missing(v, page);
    return true;
}

/* ---- the protocol trace ------------------------------------------------------------------------- */

static void trace_hook(void *ctx, const struct apf_trace_event *ev)
{
    struct pc_sim *s = ctx;
    char line[128];
    pthread_mutex_lock(&s->trace_lock);
    if (apf_trace_format(ev, line, sizeof(line)) > 0)
        fprintf((FILE *)s->trace_file, "%s\n", line);
    if (!s->trace_err) {
        s->trace_err = apf_trace_checker_feed(s->chk, ev);
        if (s->trace_err)
            snprintf(s->trace_msg, sizeof(s->trace_msg), "%s", apf_trace_checker_error(s->chk));
    }
    pthread_mutex_unlock(&s->trace_lock);
}

/* ---- setup and teardown ------------------------------------------------------------------------- */

static int open_memory(const struct pc_opts *o, struct pc_sim *s, uint64_t npages,
                       struct pc_result *r)
{
    static atomic_int noted;
    enum pc_mem_mode mm = PC_MEM_UFFD_SIGBUS;
    char why[256] = "";
    if (o->memory == MEMORY_MAP) {
        mm = PC_MEM_PRESENCE_MAP;
    } else if (pc_uffd_available(why, sizeof(why)) != 0) {
        if (o->memory == MEMORY_UFFD) {
            snprintf(r->error, sizeof(r->error), "userfaultfd unavailable: %s", why);
            return -ENOSYS;
        }
        if (!atomic_exchange(&noted, 1))
            fprintf(stderr,
                    "apf-postcopy: userfaultfd unavailable (%s); using a software presence "
                    "map instead (same engine path; --memory uffd to insist)\n",
                    why);
        mm = PC_MEM_PRESENCE_MAP;
    }
    int err = pc_mem_open(&s->mem, npages * PC_PAGE_SIZE, mm);
    if (err) {
        snprintf(r->error, sizeof(r->error), "guest memory (%s): %s", pc_mem_mode_name(mm),
                 strerror(-err));
        return err;
    }
    if (mm != PC_MEM_PRESENCE_MAP && pc_sigbus_install() != 0) {
        snprintf(r->error, sizeof(r->error), "cannot install the SIGBUS handler");
        return -EINVAL;
    }
    r->memory = mm == PC_MEM_PRESENCE_MAP ? "presence map" : "userfaultfd";
    return 0;
}

static int open_source(const struct pc_opts *o, struct pc_sim *s, uint64_t npages,
                       uint32_t workers, struct pc_result *r)
{
    int err;
    if (o->source == NULL) {
        err = pc_source_local_create(&s->src, o->seed, npages, &o->latency);
        if (err)
            snprintf(r->error, sizeof(r->error), "in-process source: %s", strerror(-err));
        return err;
    }
    char host[256];
    uint16_t port;
    if (pc_net_parse_hostport(o->source, host, sizeof(host), &port) != 0) {
        snprintf(r->error, sizeof(r->error), "bad --source '%s' (want ADDR:PORT)", o->source);
        return -EINVAL;
    }
    struct pc_source_tcp_opts to = {
        .nconn = workers > 256 ? 256 : workers, .check_seed = true, .expect_seed = o->seed};
    char msg[256] = "";
    err = pc_source_tcp_create(&s->src, host, port, &to, msg, sizeof(msg));
    if (err) {
        snprintf(r->error, sizeof(r->error), "source %s: %s", o->source, msg);
        return err;
    }
    if (s->src->npages < npages) {
        snprintf(r->error, sizeof(r->error),
                 "source %s serves %llu pages; the guest has %llu (start it with the same "
                 "--memory-size)",
                 o->source, (unsigned long long)s->src->npages, (unsigned long long)npages);
        return -ERANGE;
    }
    return 0;
}

const char *pc_transport_name(enum pc_transport t)
{
    static const char *const names[] = {"kvm-x86", "kvm-arm64", "xen", "mmio", "s390"};
    return t <= TRANSPORT_S390 ? names[t] : "?";
}

static const struct apf_host_transport_ops *pc_transport_ops(enum pc_transport t)
{
    switch (t) {
    case TRANSPORT_KVM_ARM64:
        return &apf_host_transport_kvm_arm64; /* the one-slot area with IRQ_ACK */
    case TRANSPORT_XEN:
        return &apf_host_transport_xen;
    case TRANSPORT_MMIO:
        return &apf_host_transport_mmio; /* x86 kind: #PF with CR2 = token */
    case TRANSPORT_S390:
        return &apf_host_transport_s390; /* floating "page ready", no ACK */
    default:
        return &apf_host_transport_kvm_x86;
    }
}

static int setup_apf(const struct pc_opts *o, struct pc_sim *s, uint32_t workers,
                     struct pc_result *r)
{
    struct apf_loopback_config lc = {
        .host =
            {
                .n_vcpus = o->vcpus,
                .transport = pc_transport_ops(o->transport),
                .n_workers = s->loop ? 0 : workers,
                .max_outstanding = o->max_outstanding,
                /* pool workers with a CPU of their own may poll briefly for the next fault */
                .worker_spin_ns = o->layout.spin_host ? 50000 : 0,
                .trace = s->trace_file ? trace_hook : NULL,
                .trace_ctx = s,
            },
        .resolve = s->loop ? NULL : host_resolve,
        .submit = s->loop ? host_submit : NULL,
        .ctx = s,
    };
    int err = apf_loopback_create(&lc, &s->lb);
    if (err) {
        snprintf(r->error, sizeof(r->error), "libapf loopback: %s", apf_strerror(err));
        return err;
    }
    const struct apf_guest_backend_ops *bops;
    void *bctx;
    apf_loopback_guest_backend(s->lb, &bops, &bctx);
    struct apf_guest_config gc = {
        .n_cpus = o->vcpus,
        .vector = 0xf3,
        .flags = s->mode == MODE_APF ? 0 : APF_GUEST_NO_APF,
        .env = &pc_guest_env,
        .env_ctx = s,
        .backend = bops,
        .backend_ctx = bctx,
        .trace = s->trace_file ? trace_hook : NULL,
        .trace_ctx = s,
    };
    size_t gsz = apf_guest_mem_size(&gc);
    s->gmem = aligned_alloc(64, (gsz + 63) & ~(size_t)63);
    if (s->gmem == NULL)
        return -ENOMEM;
    apf_loopback_add_ram(s->lb, s->gmem, gsz);
    err = apf_guest_init(s->gmem, gsz, &gc, &s->g);
    if (err) {
        snprintf(r->error, sizeof(r->error), "libapf-guest init: %s", apf_strerror(err));
        return err;
    }
    if (s->mode == MODE_APF && apf_guest_available(s->g) != 1) {
        snprintf(r->error, sizeof(r->error), "the guest found no APF: %s",
                 apf_strerror(apf_guest_available(s->g)));
        return -ENODEV;
    }
    apf_loopback_attach(s->lb, s->g);
    return 0;
}

static int setup_vcpus(const struct pc_opts *o, struct pc_sim *s, struct pc_result *r)
{
    s->vcpus = calloc(o->vcpus, sizeof(*s->vcpus));
    if (s->vcpus == NULL)
        return -ENOMEM;
    uint32_t ntasks = o->vcpus * o->tasks;
    for (uint32_t c = 0; c < o->vcpus; c++) {
        struct pc_vcpu *v = &s->vcpus[c];
        v->sim = s;
        v->id = c;
        v->ntasks = o->tasks;
        v->tasks = calloc(o->tasks, sizeof(*v->tasks));
        v->rq = calloc(o->tasks, sizeof(*v->rq));
        if (!v->tasks || !v->rq)
            return -ENOMEM;
        for (uint32_t k = 0; k < o->tasks; k++) {
            struct pc_task *t = &v->tasks[k];
            uint32_t gid = c * o->tasks + k;
            t->v = v;
            t->id = gid;
            t->todo = o->accesses / ntasks + (gid < o->accesses % ntasks ? 1 : 0);
            pc_workload_task_init(s->wl, gid, ntasks, &t->cur);
            int err = pc_coro_stack_alloc(&t->stack, 64 * 1024);
            if (err == 0)
                err = pc_coro_init(&t->co, t->stack.base, t->stack.size, pc_task_main, t);
            if (err) {
                snprintf(r->error, sizeof(r->error), "task stacks: %s", strerror(-err));
                return err;
            }
        }
    }
    return 0;
}

static void teardown(struct pc_sim *s)
{
    pc_loop_destroy(s->loop); /* first: it completes into the engine */
    s->loop = NULL;
    apf_loopback_destroy(s->lb); /* stops the workers (a fetch in progress is bounded) */
    s->lb = NULL;
    if (s->vcpus) {
        for (uint32_t c = 0; c < s->o->vcpus; c++) {
            struct pc_vcpu *v = &s->vcpus[c];
            for (uint32_t k = 0; v->tasks && k < v->ntasks; k++) {
                pc_coro_destroy(&v->tasks[k].co);
                pc_coro_stack_free(&v->tasks[k].stack);
            }
            free(v->tasks);
            free(v->rq);
            free(v->ready_us);
            free(v->overhead_us);
            free(v->fs);
        }
        free(s->vcpus);
    }
    free(s->gmem);
    pc_source_destroy(s->src);
    pc_workload_destroy(s->wl);
    pc_mem_close(&s->mem);
    free((void *)s->fetch_ns);
    free(s->pt);
    if (s->trace_file)
        fclose(s->trace_file);
    free(s->chk_mem);
    pthread_mutex_destroy(&s->fatal_lock);
    pthread_mutex_destroy(&s->trace_lock);
}

/* Open file descriptors and threads of this process: a run must give back all of its own
 * (userfaultfd, sockets, worker and vCPU threads). */
static void count_resources(int *fds, int *threads)
{
    *fds = -1;
    *threads = -1;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        int n = 0;
        for (struct dirent *e; (e = readdir(d));)
            if (e->d_name[0] != '.')
                n++;
        closedir(d);
        *fds = n - 1; /* the directory's own descriptor */
    }
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "Threads: %d", threads) == 1)
                break;
        fclose(f);
    }
}

/* ---- one run ------------------------------------------------------------------------------------ */

static void progress(const struct pc_sim *s, uint64_t total, double elapsed, bool final)
{
    uint64_t done = atomic_load(&s->accesses_done);
    fprintf(stderr, "\r  %-5s %5.1f%%  %llu/%llu accesses  %5.1f s%s", pc_mode_name(s->mode),
            total ? 100.0 * (double)done / (double)total : 100.0, (unsigned long long)done,
            (unsigned long long)total, elapsed, final ? "\n" : "");
}

/* ---- the per-fault clock ------------------------------------------------------------------------
 * Stamps along one fault's way: the task's access, the exit handler, the host's fetch
 * (start, reply due, reply in hand), the copy, the completion, "page ready" waking the task,
 * the task running again, its access done. Only faults whose own exit started the fetch
 * are measured (a second task faulting on a page already on its way is not a full fault). */
static uint32_t span(uint64_t from, uint64_t to)
{
    return to > from ? (uint32_t)(to - from < UINT32_MAX ? to - from : UINT32_MAX) : 0;
}

void pc_fault_record(struct pc_vcpu *v, struct pc_task *t, uint64_t t_done)
{
    struct pc_page_times *pt = &v->sim->pt[t->fault_page];
    uint64_t start = atomic_load_explicit(&pt->start, memory_order_relaxed);
    uint64_t deadline = atomic_load_explicit(&pt->deadline, memory_order_relaxed);
    uint64_t fetched = atomic_load_explicit(&pt->fetched, memory_order_relaxed);
    uint64_t copied = atomic_load_explicit(&pt->copied, memory_order_relaxed);
    uint64_t done = atomic_load_explicit(&pt->done, memory_order_relaxed);
    if (t->t_exit == 0 || start < t->t_exit || !fetched || !copied || !t->t_wake ||
        t->t_wake < copied || t->t_run < t->t_wake)
        return;
    if (done == 0 || done > t->t_wake)
        done = t->t_wake; /* the task was woken before the completer took its last stamp */
    if (v->nfs == v->fscap) {
        size_t cap = v->fscap ? v->fscap * 2 : 4096;
        struct pc_fault_sample *a = realloc(v->fs, cap * sizeof(*a));
        if (a == NULL)
            return;
        v->fs = a;
        v->fscap = cap;
    }
    struct pc_fault_sample *f = &v->fs[v->nfs++];
    uint64_t due = deadline ? deadline : fetched;
    f->exit = span(t->t_access, t->t_exit);
    f->handoff = span(t->t_exit, start);
    f->fetch = span(start, due);
    f->late = span(due, fetched);
    f->copy = span(fetched, copied);
    f->complete = span(copied, done);
    f->deliver = span(done, t->t_wake);
    f->runq = span(t->t_wake, t->t_run);
    f->touch = span(t->t_run, t_done);
    f->woke_idle = t->woke_idle;
}

static double part_median(const struct pc_fault_sample *fs, size_t n, size_t offset, double *tmp)
{
    for (size_t i = 0; i < n; i++)
        tmp[i] = *(const uint32_t *)((const char *)&fs[i] + offset) / 1e3;
    return pc_quantile(tmp, n, 0.5);
}

static void collect_parts(const struct pc_opts *o, struct pc_sim *s, struct pc_result *r)
{
    size_t n = 0;
    for (uint32_t c = 0; c < o->vcpus; c++)
        n += s->vcpus[c].nfs;
    struct pc_fault_sample *all = malloc((n + 1) * sizeof(*all));
    double *tmp = malloc((n + 1) * sizeof(double));
    struct pc_parts *p = &r->parts;
    p->n = n;
    if (all == NULL || tmp == NULL || n == 0) {
        free(all);
        free(tmp);
        p->exit = p->handoff = p->fetch = p->late = p->copy = p->complete = p->deliver =
            p->runq = p->touch = p->overhead = p->e2e = NAN;
        r->late_p99_us = NAN;
        return;
    }
    size_t k = 0;
    for (uint32_t c = 0; c < o->vcpus; c++) {
        if (s->vcpus[c].nfs == 0)
            continue;
        memcpy(all + k, s->vcpus[c].fs, s->vcpus[c].nfs * sizeof(*all));
        k += s->vcpus[c].nfs;
    }
#define PART(field) part_median(all, n, offsetof(struct pc_fault_sample, field), tmp)
    p->exit = PART(exit);
    p->handoff = PART(handoff);
    p->fetch = PART(fetch);
    p->copy = PART(copy);
    p->complete = PART(complete);
    p->deliver = PART(deliver);
    p->runq = PART(runq);
    p->touch = PART(touch);
    p->late = PART(late);
#undef PART
    for (size_t i = 0; i < n; i++)
        tmp[i] = (double)all[i].late / 1e3;
    r->late_p99_us = pc_quantile(tmp, n, 0.99);
    size_t ni = 0, nb = 0;
    for (size_t i = 0; i < n; i++)
        if (all[i].woke_idle)
            tmp[ni++] = (double)all[i].deliver / 1e3;
    p->deliver_idle = pc_quantile(tmp, ni, 0.5);
    for (size_t i = 0; i < n; i++)
        if (!all[i].woke_idle)
            tmp[nb++] = (double)all[i].deliver / 1e3;
    p->deliver_busy = pc_quantile(tmp, nb, 0.5);
    p->idle_share = (double)ni / (double)n;
    for (size_t i = 0; i < n; i++) {
        const struct pc_fault_sample *f = &all[i];
        tmp[i] = (double)((uint64_t)f->exit + f->handoff + f->copy + f->complete + f->deliver +
                          f->touch) / 1e3;
    }
    p->overhead = pc_quantile(tmp, n, 0.5);
    for (size_t i = 0; i < n; i++) {
        const struct pc_fault_sample *f = &all[i];
        tmp[i] = (double)((uint64_t)f->exit + f->handoff + f->fetch + f->late + f->copy +
                          f->complete + f->deliver + f->runq + f->touch) / 1e3;
    }
    p->e2e = pc_quantile(tmp, n, 0.5);
    free(all);
    free(tmp);
}

static void collect(const struct pc_opts *o, struct pc_sim *s, double wall_s, struct pc_result *r)
{
    collect_parts(o, s, r);
    size_t n = 0;
    uint64_t busy = 0, idle = 0, stall = 0;
    for (uint32_t c = 0; c < o->vcpus; c++) {
        struct pc_vcpu *v = &s->vcpus[c];
        r->accesses += v->accesses;
        r->faults_async += v->faults_async;
        r->faults_sync += v->faults_sync;
        r->faults_halt += v->faults_halt;
        n += v->nsamples;
        busy += v->busy_ns;
        idle += v->idle_ns;
        stall += v->stall_ns;
    }
    r->wall_s = wall_s;
    r->throughput = wall_s > 0 ? (double)r->accesses / wall_s : 0;
    r->idle_share = busy ? (double)idle / (double)busy : 0;
    r->stall_share = busy ? (double)stall / (double)busy : 0;
    r->pages_fetched = atomic_load(&s->pages_fetched);
    r->ready_samples = n;
    double *ready = malloc((n + 1) * sizeof(double));
    double *over = malloc((n + 1) * sizeof(double));
    double *fetch = malloc((s->mem.npages + 1) * sizeof(double));
    if (ready && over && fetch) {
        size_t k = 0;
        for (uint32_t c = 0; c < o->vcpus; c++) {
            struct pc_vcpu *v = &s->vcpus[c];
            if (v->nsamples == 0)
                continue; /* (no arrays yet) */
            memcpy(ready + k, v->ready_us, v->nsamples * sizeof(double));
            memcpy(over + k, v->overhead_us, v->nsamples * sizeof(double));
            k += v->nsamples;
        }
        r->ready_p50_us = pc_quantile(ready, n, 0.50);
        r->ready_p99_us = pc_quantile(ready, n, 0.99);
        r->overhead_p50_us = pc_quantile(over, n, 0.50);
        size_t nf = 0;
        for (size_t p = 0; p < s->mem.npages; p++) {
            uint64_t ns = atomic_load(&s->fetch_ns[p]);
            if (ns)
                fetch[nf++] = (double)ns / 1e3;
        }
        r->fetch_p50_us = pc_quantile(fetch, nf, 0.50);
    }
    free(ready);
    free(over);
    free(fetch);
}

int pc_run(const struct pc_opts *o, enum pc_mode mode, struct pc_result *r)
{
    static uint64_t iters, iters_us; /* calibrated once per process */
    memset(r, 0, sizeof(*r));
    r->mode = mode;
    struct pc_sim s;
    memset(&s, 0, sizeof(s));
    s.o = o;
    s.mode = mode;
    s.mem.uffd = -1;
    pthread_mutex_init(&s.fatal_lock, NULL);
    pthread_mutex_init(&s.trace_lock, NULL);
    int fds0, threads0;
    count_resources(&fds0, &threads0);
    uint64_t npages = o->mem_bytes / PC_PAGE_SIZE;
    uint32_t workers = o->workers ? o->workers : o->vcpus * o->tasks;
    if (workers > APF_HOST_MAX_WORKERS)
        workers = APF_HOST_MAX_WORKERS;
    if (iters_us == 0) {
        iters = pc_calibrate(o->compute_us);
        iters_us = pc_calibrate(1.0);
    }
    s.iters_per_access = iters;
    s.iters_per_us = iters_us;

    int err = open_memory(o, &s, npages, r);
    if (!err)
        err = open_source(o, &s, npages, workers, r);
    if (!err) {
        s.wl = pc_workload_create(o, npages);
        s.fetch_ns = calloc(npages, sizeof(*s.fetch_ns));
        s.pt = calloc(npages, sizeof(*s.pt));
        if (!s.wl || !s.fetch_ns || !s.pt)
            err = -ENOMEM;
    }
    r->host = mode == MODE_APF ? o->run_host : HOST_AUTO;
    if (!err && mode == MODE_APF && o->run_host == HOST_LOOP) {
        struct pc_loop_config lc = {
            .capacity = o->vcpus * (o->max_outstanding ? o->max_outstanding : 64),
            .buf_size = PC_PAGE_SIZE,
            .spin = o->layout.spin_host,
            .prepare_ns = 10000, /* generating the page takes about 3 us */
            .prepare = loop_prepare,
            .fire = loop_fire,
            .thread_init = loop_thread_init,
            .ctx = &s,
        };
        err = pc_loop_create(&lc, &s.loop);
        if (err)
            snprintf(r->error, sizeof(r->error), "event loop: %s", strerror(-err));
    }
    if (!err && o->trace && mode == MODE_APF) {
        s.trace_file = fopen(o->trace, "w");
        size_t sz = apf_trace_checker_size(o->vcpus, o->max_outstanding ? o->max_outstanding : 64);
        s.chk_mem = aligned_alloc(64, (sz + 63) & ~(size_t)63);
        s.chk = s.chk_mem ? apf_trace_checker_init(s.chk_mem, sz, o->vcpus,
                                                   o->max_outstanding ? o->max_outstanding : 64)
                          : NULL;
        if (!s.trace_file || !s.chk) {
            snprintf(r->error, sizeof(r->error), "--trace %s: %s", o->trace, strerror(errno));
            err = -EIO;
        } else {
            fprintf(s.trace_file, "# apf-postcopy protocol trace: <time_ns> <kind> <vcpu> "
                                  "<token> <gpa> <arg>\n");
        }
    }
    if (!err && mode == MODE_IDEAL) {
        /* All pages present before the start: the migration is already complete. */
        static _Alignas(64) unsigned char buf[PC_PAGE_SIZE];
        for (uint64_t p = 0; p < npages && !err; p++) {
            pc_page_fill(o->seed, p, buf);
            err = pc_mem_resolve(&s.mem, p, buf);
        }
        if (err)
            snprintf(r->error, sizeof(r->error), "prefill: %s", strerror(-err));
    }
    if (!err)
        err = setup_apf(o, &s, workers, r);
    if (!err)
        err = setup_vcpus(o, &s, r);
    if (err) {
        if (!r->error[0])
            snprintf(r->error, sizeof(r->error), "setup: %s", strerror(-err));
        teardown(&s);
        return err;
    }

    pthread_barrier_init(&s.start, NULL, o->vcpus + 1);
    uint32_t started = 0;
    for (uint32_t c = 0; c < o->vcpus; c++) {
        if (pthread_create(&s.vcpus[c].thread, NULL, pc_vcpu_main, &s.vcpus[c]) != 0)
            break;
        started++;
    }
    if (started < o->vcpus) {
        /* cannot happen in practice; fail without leaving threads behind at the barrier */
        snprintf(r->error, sizeof(r->error), "cannot create vCPU threads");
        abort();
    }
    struct pc_cpu_sample cs0, cs1;
    pc_cpu_sample(&cs0);
    pthread_barrier_wait(&s.start);
    uint64_t t0 = pc_now_ns();
    bool show = o->progress == 1 || (o->progress == -1 && isatty(STDERR_FILENO));
    bool shown = false;
    uint64_t total = 0;
    for (uint32_t c = 0; c < o->vcpus; c++)
        for (uint32_t k = 0; k < s.vcpus[c].ntasks; k++)
            total += s.vcpus[c].tasks[k].todo;
    /* Wait for the vCPUs, with a progress line once a run is longer than two seconds. */
    for (uint32_t c = 0; c < o->vcpus; c++) {
        for (;;) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 250 * 1000 * 1000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            if (pthread_timedjoin_np(s.vcpus[c].thread, NULL, &ts) == 0)
                break;
            double el = (double)(pc_now_ns() - t0) / 1e9;
            if (show && el > 2.0) {
                progress(&s, total, el, false);
                shown = true;
            }
        }
    }
    double wall = (double)(pc_now_ns() - t0) / 1e9;
    if (shown)
        progress(&s, total, wall, true);
    pthread_barrier_destroy(&s.start);

    collect(o, &s, wall, r);
    pc_cpu_sample(&cs1);
    r->steal_share = cs1.all > cs0.all
                         ? (double)(cs1.steal - cs0.steal) / (double)(cs1.all - cs0.all)
                         : -1;
    r->other_load = pc_other_load(o, &cs0, &cs1);
    /* The engine's view must agree with the vCPUs' (one counter, two sides). */
    uint64_t host_async = 0, ack_exits = 0, notifications = 0, readies = 0;
    for (uint32_t c = 0; c < o->vcpus; c++) {
        struct apf_host_vcpu_stats hs;
        apf_host_vcpu_stats(apf_loopback_host(s.lb), c, &hs);
        host_async += hs.faults_async;
        /* ACK exits: the ACK calls of a transport that waits for them (slot); a ring's
         * consumer index is read by the host, no exit (its acks count entries released) */
        if (apf_host_chan_get(apf_loopback_host(s.lb), c)->needs_ack)
            ack_exits += hs.acks;
        notifications += hs.notifications;
        readies += hs.ready_delivered + hs.wake_all_delivered;
    }
    r->ack_exits = ack_exits;
    r->ack_exits_per_ready = readies ? (double)ack_exits / (double)readies : -1;
    r->notifications_per_ready = readies ? (double)notifications / (double)readies : -1;
    if (!atomic_load(&s.fatal) && host_async != r->faults_async)
        pc_sim_fail(&s, "counters disagree: host injected %llu not-present, vCPUs saw %llu",
                    (unsigned long long)host_async, (unsigned long long)r->faults_async);
    if (s.chk) {
        pthread_mutex_lock(&s.trace_lock);
        if (!s.trace_err && apf_trace_checker_finish(s.chk) != 0)
            snprintf(s.trace_msg, sizeof(s.trace_msg), "%s", apf_trace_checker_error(s.chk));
        else if (!s.trace_err)
            r->trace_events = apf_trace_checker_events(s.chk);
        if (s.trace_msg[0])
            pc_sim_fail(&s, "protocol trace check failed: %s", s.trace_msg);
        pthread_mutex_unlock(&s.trace_lock);
    }
    if (atomic_load(&pc_interrupted) && !atomic_load(&s.fatal))
        pc_sim_fail(&s, "interrupted");
    r->ok = !atomic_load(&s.fatal);
    if (!r->ok)
        snprintf(r->error, sizeof(r->error), "%s", s.fatal_msg);
    teardown(&s);
    /* A joined thread can still be counted for a moment (pthread_join returns when the
     * kernel clears its TID, slightly before it is reaped): a leak is what stays. */
    int fds1, threads1;
    for (int tries = 0;; tries++) {
        count_resources(&fds1, &threads1);
        if ((fds1 == fds0 && threads1 == threads0) || tries == 200)
            break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    if (fds1 != fds0 || threads1 != threads0) {
        snprintf(r->error, sizeof(r->error),
                 "teardown leaked resources: %d -> %d file descriptors, %d -> %d threads", fds0,
                 fds1, threads0, threads1);
        r->ok = false;
    }
    return r->ok ? 0 : -EIO;
}
