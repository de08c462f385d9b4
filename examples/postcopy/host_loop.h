/* SPDX-License-Identifier: MIT */
/* The event-loop host (host_loop.c): one I/O thread, epoll + timerfd, requests ordered by
 * the time their reply is due. */
#ifndef APF_POSTCOPY_HOST_LOOP_H
#define APF_POSTCOPY_HOST_LOOP_H

#include <stdbool.h>
#include <stdint.h>

/* One request in flight: a page asked of the source, its reply due at `deadline`. */
struct pc_loop_job {
    uint64_t deadline; /* pc_now_ns() units */
    uint64_t page;
    uint32_t vcpu;
    uint32_t token;
    void *buf; /* the loop's: a buffer of buf_size bytes once prepared (NULL before) */
};

struct pc_loop_config {
    uint32_t capacity;   /* requests in flight at most */
    uint32_t buf_size;   /* bytes of a request's buffer (the reply) */
    bool spin;           /* wake early and spin to the deadline (the thread has a CPU) */
    uint64_t prepare_ns; /* `prepare` runs this long before the deadline */
    /* On the I/O thread, before the deadline: the reply's contents into j->buf (the
     * source's own work, inside its latency). May be NULL. */
    void (*prepare)(void *ctx, const struct pc_loop_job *j);
    /* On the I/O thread, at the deadline (as precisely as the loop can): the reply is in
     * hand; makes the page present and completes the request. */
    void (*fire)(void *ctx, const struct pc_loop_job *j);
    void (*thread_init)(void *ctx); /* once, on the I/O thread (pinning); may be NULL */
    void *ctx;
};

struct pc_loop;

/* Starts the I/O thread. Returns 0 or -errno. */
int pc_loop_create(const struct pc_loop_config *cfg, struct pc_loop **out);
/* Stops and joins the I/O thread; requests still in flight are dropped. */
void pc_loop_destroy(struct pc_loop *l);
/* Any thread: a request. Returns 0, or -ENOSPC when `capacity` are in flight. */
int pc_loop_submit(struct pc_loop *l, const struct pc_loop_job *j);
/* The current early-wake margin (ns): what the timers of the I/O thread are late by. */
uint64_t pc_loop_early_ns(const struct pc_loop *l);

#endif
