/* SPDX-License-Identifier: MIT */
/*
 * The event-loop host of apf-postcopy: libapf-host in embedder-completion mode
 * (n_workers = 0) with one I/O thread, the shape a VMM that may not create threads per
 * request (Firecracker) has anyway.
 *
 * `submit` (on the vCPU thread, inside the stage-2 exit) starts the fetch: it is the request
 * sent to the migration source, so the source's latency runs from there. The reply is due
 * at `deadline`; the I/O thread sleeps in epoll_wait on a timerfd armed for the earliest
 * deadline of all requests in flight (a min-heap), takes the reply, fills the page
 * (UFFDIO_COPY) and calls apf_host_complete(), which kicks the vCPU. No thread is woken per
 * fault: submit only re-arms the timer when its deadline is the new earliest one.
 *
 * Per request: `prepare_ns` before the deadline the reply's contents are made (`prepare`,
 * the source's own work, inside its latency); at the deadline `fire` fills the page and
 * completes. Precise timers: with `spin` (the I/O thread has a CPU of its own) each timer
 * is armed `early` sooner, early being a moving average of this thread's timer lateness
 * (adaptive), and the rest is spun, re-reading the heap (a later request may be due first);
 * without it the timer is armed at the deadline, and its lateness is measured by the caller
 * (in hand - deadline) and kept out of the figures. Lock order: `lock` is a leaf; the
 * callbacks run with no lock held.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "host_loop.h"
#include "support/latency.h"

#define LOOP_EARLY_MAX_NS 100000u /* bound of the early wake (and so of the spin) */

struct pc_loop {
    struct pc_loop_config cfg;
    pthread_mutex_t lock;
    struct pc_loop_job *heap; /* min-heap by deadline; under lock */
    uint32_t n, cap;
    uint64_t armed; /* the timer's expiry (ns), UINT64_MAX if disarmed; under lock */
    uint64_t early; /* I/O thread only */
    void **free_bufs; /* a stack of capacity buffers; I/O thread only */
    uint32_t n_free;
    unsigned char *bufs;
    int ep, tfd, stopfd;
    pthread_t thread;
    bool started;
};

static void arm(struct pc_loop *l, uint64_t at)
{
    struct itimerspec its = {0};
    its.it_value.tv_sec = (time_t)(at / 1000000000ull);
    its.it_value.tv_nsec = (long)(at % 1000000000ull);
    if (at == 0)
        its.it_value.tv_nsec = 1; /* 0 would disarm */
    timerfd_settime(l->tfd, TFD_TIMER_ABSTIME, &its, NULL);
    l->armed = at;
}

/* When the I/O thread must be up for the top request: to prepare it, or (prepared) to take
 * the reply at its deadline; with spin, `early` sooner. */
static uint64_t wake_time(const struct pc_loop *l, const struct pc_loop_job *j)
{
    uint64_t margin = (j->buf ? 0 : l->cfg.prepare_ns) + (l->cfg.spin ? l->early : 0);
    return j->deadline > margin ? j->deadline - margin : 0;
}

static void heap_push(struct pc_loop *l, struct pc_loop_job j)
{
    uint32_t i = l->n++;
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (l->heap[p].deadline <= j.deadline)
            break;
        l->heap[i] = l->heap[p];
        i = p;
    }
    l->heap[i] = j;
}

static struct pc_loop_job heap_pop(struct pc_loop *l)
{
    struct pc_loop_job top = l->heap[0], last = l->heap[--l->n];
    uint32_t i = 0;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= l->n)
            break;
        if (c + 1 < l->n && l->heap[c + 1].deadline < l->heap[c].deadline)
            c++;
        if (last.deadline <= l->heap[c].deadline)
            break;
        l->heap[i] = l->heap[c];
        i = c;
    }
    if (l->n)
        l->heap[i] = last;
    return top;
}

int pc_loop_submit(struct pc_loop *l, const struct pc_loop_job *j)
{
    pthread_mutex_lock(&l->lock);
    if (l->n == l->cap) {
        pthread_mutex_unlock(&l->lock);
        return -ENOSPC;
    }
    struct pc_loop_job x = *j;
    x.buf = NULL;
    heap_push(l, x);
    uint64_t at = wake_time(l, &x);
    if (at < l->armed)
        arm(l, at); /* the new earliest: one syscall here, no thread woken */
    pthread_mutex_unlock(&l->lock);
    return 0;
}

static inline void loop_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static void *loop_main(void *arg)
{
    struct pc_loop *l = arg;
    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    if (l->cfg.thread_init)
        l->cfg.thread_init(l->cfg.ctx);
    for (;;) {
        struct epoll_event ev[2];
        int n = epoll_wait(l->ep, ev, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        bool stop = false;
        for (int i = 0; i < n; i++)
            stop |= ev[i].data.fd == l->stopfd;
        if (stop)
            break;
        uint64_t expirations;
        (void)!read(l->tfd, &expirations, sizeof(expirations));
        uint64_t woke = pc_now_ns();
        pthread_mutex_lock(&l->lock);
        if (l->armed != UINT64_MAX && woke >= l->armed) {
            /* adapt the early wake to this thread's timer lateness (1/8 per sample) */
            uint64_t late = woke - l->armed;
            if (late > LOOP_EARLY_MAX_NS)
                late = LOOP_EARLY_MAX_NS;
            l->early = l->early - l->early / 8 + late / 8;
        }
        l->armed = UINT64_MAX;
        while (l->n) {
            struct pc_loop_job *top = &l->heap[0];
            uint64_t now = pc_now_ns();
            if (top->buf == NULL && now + l->cfg.prepare_ns >= top->deadline) {
                top->buf = l->free_bufs[--l->n_free]; /* never empty: one per request */
                struct pc_loop_job j = *top;
                pthread_mutex_unlock(&l->lock);
                if (l->cfg.prepare)
                    l->cfg.prepare(l->cfg.ctx, &j);
                pthread_mutex_lock(&l->lock);
                continue;
            }
            if (top->buf && now >= top->deadline) {
                struct pc_loop_job j = heap_pop(l);
                pthread_mutex_unlock(&l->lock);
                l->cfg.fire(l->cfg.ctx, &j);
                pthread_mutex_lock(&l->lock);
                l->free_bufs[l->n_free++] = j.buf;
                continue;
            }
            uint64_t at = wake_time(l, top);
            if (now < at) {
                arm(l, at);
                break;
            }
            /* within the early margin (spin): spin, re-reading the heap */
            pthread_mutex_unlock(&l->lock);
            for (int i = 0; i < 32; i++)
                loop_relax();
            pthread_mutex_lock(&l->lock);
        }
        pthread_mutex_unlock(&l->lock);
    }
    return NULL;
}

uint64_t pc_loop_early_ns(const struct pc_loop *l)
{
    return l->early;
}

int pc_loop_create(const struct pc_loop_config *cfg, struct pc_loop **out)
{
    struct pc_loop *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return -ENOMEM;
    l->cfg = *cfg;
    l->cap = cfg->capacity;
    l->heap = calloc(l->cap ? l->cap : 1, sizeof(*l->heap));
    size_t bsz = ((size_t)cfg->buf_size + 63) & ~(size_t)63;
    l->bufs = aligned_alloc(64, bsz * (l->cap ? l->cap : 1));
    l->free_bufs = calloc(l->cap ? l->cap : 1, sizeof(void *));
    for (uint32_t i = 0; l->bufs && l->free_bufs && i < l->cap; i++)
        l->free_bufs[l->n_free++] = l->bufs + bsz * i;
    l->armed = UINT64_MAX;
    l->early = 20000; /* first guess; adapts */
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    l->stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&l->lock, NULL);
    int err = 0;
    if (!l->heap || !l->bufs || !l->free_bufs)
        err = -ENOMEM;
    else if (l->ep < 0 || l->tfd < 0 || l->stopfd < 0)
        err = -errno;
    struct epoll_event ev = {.events = EPOLLIN};
    if (!err) {
        ev.data.fd = l->tfd;
        if (epoll_ctl(l->ep, EPOLL_CTL_ADD, l->tfd, &ev) != 0)
            err = -errno;
    }
    if (!err) {
        ev.data.fd = l->stopfd;
        if (epoll_ctl(l->ep, EPOLL_CTL_ADD, l->stopfd, &ev) != 0)
            err = -errno;
    }
    if (!err) {
        err = -pthread_create(&l->thread, NULL, loop_main, l);
        l->started = err == 0;
    }
    if (err) {
        pc_loop_destroy(l);
        return err;
    }
    *out = l;
    return 0;
}

void pc_loop_destroy(struct pc_loop *l)
{
    if (l == NULL)
        return;
    if (l->started) {
        uint64_t one = 1;
        (void)!write(l->stopfd, &one, sizeof(one));
        pthread_join(l->thread, NULL);
    }
    if (l->ep >= 0)
        close(l->ep);
    if (l->tfd >= 0)
        close(l->tfd);
    if (l->stopfd >= 0)
        close(l->stopfd);
    pthread_mutex_destroy(&l->lock);
    free(l->heap);
    free(l->bufs);
    free(l->free_bufs);
    free(l);
}
