/* SPDX-License-Identifier: MIT */
/*
 * The floor of a fault's cost on this machine, probed in the same invocation on the same
 * CPUs as the runs: the simplest code doing the steps a fault cannot avoid.
 *  - exit: a read of a missing userfaultfd page on vCPU 0's CPU, the SIGBUS handler entered,
 *    and the return from it to the access done (the stage-2 exit and re-entry);
 *  - copy: one 4 KiB UFFDIO_COPY (inside that handler);
 *  - round trip: the hand-off the layout's host makes, with nothing of libapf in it: for the
 *    event loop, a request into the same I/O loop (host_loop.c) with the model's deadline,
 *    its reply flagged back to a thread polling as a busy vCPU does; for the pool, a mutex +
 *    condition variable hand-off to a worker that waits out the deadline the same way and
 *    flags back. Minus the model's latency.
 * apf-postcopy reports the per-fault overhead as a multiple of exit + copy + round trip.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "host_loop.h"
#include "postcopy.h"
#include "sim.h"
#include "support/page.h"
#include "support/sigbus.h"
#include "support/uffd.h"

#define FLOOR_PAGES 256
#define FLOOR_TRIPS 200

struct probe {
    const struct pc_opts *o;
    struct pc_mem mem;
    uint64_t t_handler, t_copied;
    double exit_us[FLOOR_PAGES], copy_us[FLOOR_PAGES], rt_us[FLOOR_TRIPS], late_us[FLOOR_TRIPS];
    int n_exit, n_rt;
    int err;
    /* round trip */
    _Atomic uint64_t flag; /* the reply's sequence number */
    struct pc_loop *loop;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    bool stop, queued, spinning;
    uint64_t job_deadline, job_seq;
    struct pc_floor *out;
    uint64_t t_fired, t_taken; /* the reply in hand; the worker took the job */
};

static void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void pin_like_vcpu0(const struct pc_opts *o)
{
    if (!o->layout.pin)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(pc_cpu_id(o->layout.vcpu_cpu0), &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static bool probe_sigbus(void *ctx, void *addr)
{
    struct probe *p = ctx;
    p->t_handler = pc_now_ns();
    size_t page;
    static _Alignas(64) unsigned char buf[PC_PAGE_SIZE];
    if (pc_mem_page_index(&p->mem, addr, &page) != 0)
        return false;
    pc_page_fill(1, page, buf); /* the source's work: not part of the floor */
    uint64_t t = pc_now_ns();
    if (pc_mem_resolve(&p->mem, page, buf) != 0)
        p->err = -EIO;
    p->t_copied = pc_now_ns();
    p->copy_us[p->n_exit] = (double)(p->t_copied - t) / 1e3;
    return true;
}

static void probe_exit(struct probe *p)
{
    if (pc_mem_open(&p->mem, FLOOR_PAGES * PC_PAGE_SIZE, PC_MEM_UFFD_SIGBUS) != 0 ||
        pc_sigbus_install() != 0) {
        p->err = -ENOSYS;
        return;
    }
    pc_sigbus_set_handler(probe_sigbus, p);
    for (int i = 0; i < FLOOR_PAGES && !p->err; i++) {
        const volatile uint64_t *a = pc_mem_page_addr(&p->mem, (size_t)i);
        uint64_t t0 = pc_now_ns();
        (void)*a;
        uint64_t t3 = pc_now_ns();
        /* the way in (access -> handler) and the way out (handler -> access done) */
        p->exit_us[p->n_exit++] = (double)((p->t_handler - t0) + (t3 - p->t_copied)) / 1e3;
    }
    pc_sigbus_set_handler(NULL, NULL);
    pc_mem_close(&p->mem);
}

/* ---- round trip: the event loop ---- */

static void rt_loop_init(void *ctx)
{
    struct probe *p = ctx;
    pc_sleep_set_spin(p->o->layout.spin_host);
    pc_pin_host_thread_opts(p->o);
    pc_short_slice();
}

static void rt_loop_fire(void *ctx, const struct pc_loop_job *j)
{
    struct probe *p = ctx;
    p->t_fired = pc_now_ns();
    atomic_store_explicit(&p->flag, j->page, memory_order_release);
}

/* ---- round trip: a pool worker (mutex + condition variable, spin-then-park as libapf's) ---- */

static void *rt_worker(void *arg)
{
    struct probe *p = arg;
    pc_sleep_set_spin(p->o->layout.spin_host);
    pc_pin_host_thread_opts(p->o);
    pc_short_slice();
    pthread_mutex_lock(&p->lock);
    for (;;) {
        if (p->o->layout.spin_host && !p->queued && !p->stop) {
            pthread_mutex_unlock(&p->lock);
            p->spinning = true;
            uint64_t end = pc_now_ns() + 50000;
            while (!__atomic_load_n(&p->queued, __ATOMIC_ACQUIRE) && pc_now_ns() < end)
                relax();
            p->spinning = false;
            pthread_mutex_lock(&p->lock);
        }
        while (!p->queued && !p->stop)
            pthread_cond_wait(&p->cv, &p->lock);
        if (p->stop)
            break;
        p->queued = false;
        p->t_taken = pc_now_ns();
        uint64_t deadline = p->job_deadline, seq = p->job_seq;
        pthread_mutex_unlock(&p->lock);
        pc_sleep_until_ns(deadline);
        p->t_fired = pc_now_ns();
        atomic_store_explicit(&p->flag, seq, memory_order_release);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void probe_rt(struct probe *p, struct pc_floor *f)
{
    const struct pc_opts *o = p->o;
    bool loop = o->layout.host == HOST_LOOP;
    pthread_t worker;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (loop) {
        struct pc_loop_config lc = {.capacity = 4, .buf_size = 64, .spin = o->layout.spin_host,
                                    .prepare_ns = 10000, .fire = rt_loop_fire,
                                    .thread_init = rt_loop_init, .ctx = p};
        if (pc_loop_create(&lc, &p->loop) != 0)
            p->err = -EAGAIN;
        snprintf(f->rt_how, sizeof(f->rt_how), "timer on the I/O thread%s, flag polled",
                 o->layout.spin_host ? " (early + spin)" : "");
    } else {
        if (pthread_create(&worker, NULL, rt_worker, p) != 0)
            p->err = -EAGAIN;
        snprintf(f->rt_how, sizeof(f->rt_how), "mutex + condvar to a worker%s, flag polled",
                 o->layout.spin_host ? " (spin-then-park)" : "");
    }
    for (int i = 0; i < FLOOR_TRIPS && !p->err; i++) {
        uint64_t seq = (uint64_t)i + 1;
        uint64_t t0 = pc_now_ns(), t_sent;
        uint64_t deadline = t0 + pc_latency_sample_ns(&o->latency, seq * 7919);
        if (loop) {
            struct pc_loop_job j = {.deadline = deadline, .page = seq};
            pc_loop_submit(p->loop, &j);
            t_sent = pc_now_ns(); /* the request is out: the fetch runs from here */
        } else {
            pthread_mutex_lock(&p->lock);
            p->job_deadline = deadline;
            p->job_seq = seq;
            __atomic_store_n(&p->queued, true, __ATOMIC_RELEASE);
            if (!p->spinning)
                pthread_cond_signal(&p->cv);
            pthread_mutex_unlock(&p->lock);
            t_sent = 0; /* the fetch runs from when the worker took the job */
        }
        while (atomic_load_explicit(&p->flag, memory_order_acquire) != seq)
            relax();
        uint64_t t1 = pc_now_ns();
        /* there: submitting (loop) or the worker taking the job (pool); back: the reply in
         * hand -> the poller sees it. The fetch and its timer lateness are not in it. */
        uint64_t there = t_sent ? t_sent - t0 : p->t_taken - t0;
        p->rt_us[p->n_rt++] = (double)(there + (t1 - p->t_fired)) / 1e3;
        p->late_us[p->n_rt - 1] = (double)(p->t_fired - deadline) / 1e3;
        /* a pause between faults, as between a vCPU's faults (the worker parks or spins) */
        pc_sleep_ns(20000);
    }
    if (loop) {
        pc_loop_destroy(p->loop);
    } else {
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->lock);
        if (!p->err)
            pthread_join(worker, NULL);
    }
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cv);
}

static void *probe_main(void *arg)
{
    struct probe *p = arg;
    pin_like_vcpu0(p->o);
    probe_exit(p);
    if (!p->err)
        probe_rt(p, p->out);
    return NULL;
}

int pc_floor_probe(const struct pc_opts *o, struct pc_floor *f)
{
    memset(f, 0, sizeof(*f));
    struct probe *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->o = o;
    p->mem.uffd = -1;
    pthread_t th;
    p->out = f;
    /* on a thread of its own: pinned as vCPU 0, with its own SIGBUS handler */
    if (pthread_create(&th, NULL, probe_main, p) != 0) {
        free(p);
        return -EAGAIN;
    }
    pthread_join(th, NULL);
    int err = p->err;
    if (!err) {
        f->exit_us = pc_quantile(p->exit_us, (size_t)p->n_exit, 0.5);
        f->copy_us = pc_quantile(p->copy_us, (size_t)p->n_exit, 0.5);
        f->rt_us = pc_quantile(p->rt_us, (size_t)p->n_rt, 0.5);
        f->late_us = pc_quantile(p->late_us, (size_t)p->n_rt, 0.5);
        f->total_us = f->exit_us + f->copy_us + f->rt_us;
        f->ok = true;
    }
    free(p);
    return err;
}
