/* SPDX-License-Identifier: MIT */
/*
 * Test doubles for libapf-guest unit tests (single-threaded, deterministic):
 *  - an environment whose `sleep` and `halt` run a scripted callback in place of "the rest
 *    of the system" (other tasks, interrupts) and fail loudly if the waiter is never woken;
 *  - a recording backend: probe, enable and disable scripted by the test; the channel (the
 *    area, the ring) decoded by the real kvm_x86 backend, or by the real kvm_arm64 backend
 *    when the test's caps say APF_BACKEND_CAP_TOKEN_IN_AREA (ring mode with ring_entries),
 *    over fake arch hooks that log each ACK (wrmsr ASYNC_PF_ACK / IRQ_ACK);
 *  - one ordered log of wakes, ACKs, enables, disables so tests can check orderings.
 * Test code only.
 */
#ifndef APF_TESTS_GUEST_ENV_H
#define APF_TESTS_GUEST_ENV_H

#include <stdint.h>

#include "apf/guest.h"

enum tev_kind { TEV_WAKE = 1, TEV_ACK, TEV_ENABLE, TEV_DISABLE, TEV_SLEEP, TEV_HALT, TEV_LOG };

struct tev {
    enum tev_kind kind;
    uint32_t cpu;
    uintptr_t task;     /* WAKE, SLEEP */
    uint32_t token;     /* SLEEP: waiter token; ACK, WAKE: area token at the time */
    uint32_t halted;    /* WAKE */
    uint64_t pa;        /* ENABLE */
    uint32_t vector;    /* ENABLE */
    uint32_t flags;     /* ENABLE */
};

#define TEV_MAX 1024

struct tenv {
    struct apf_guest *g;
    uintptr_t cur_task;
    uint32_t cur_cpu;
    int can_sleep;
    int locks_held;
    /* called while the current task "sleeps" / the CPU "halts": deliver what wakes it */
    void (*while_asleep)(struct tenv *e, struct apf_guest_waiter *w);
    /* called from can_sleep, i.e. after "not present" was read and before the waiter is in
     * the table: interrupts that arrive in that window (each hook runs once, then clears) */
    void (*in_window)(struct tenv *e);
    int sleeps, halts;
    struct tev log[TEV_MAX];
    int nlog;
    char last_log[160];
    /* recording backend */
    uint32_t caps; /* HOST_VECTOR: arm64 vector check; TOKEN_IN_AREA: arm64 channel */
    uint32_t ring_entries;  /* arm64 channel: ready ring wanted (0 = slot) */
    uint64_t host_features; /* arm64: the host's answer to FEATURES (default: the ring) */
    int probe_result;
    struct apf_guest_backend_info info;
    int enable_result, disable_result, ack_result;
    /* called by the backend's ready_finish before it runs (e.g. to publish an entry
     * between the drain and the re-check); runs once, then clears */
    void (*before_finish)(struct tenv *e, uint32_t cpu);
    /* the real backends behind the channel ops, and what their arch hooks saw */
    struct apf_guest_kvm_x86 kx;
    struct apf_guest_kvm_arm64 ka;
    int ring_calls;       /* arm64 RING sub-function calls */
    uint64_t last_ring;   /* its last value (x2 | x3 << 32) */
    uint64_t last_enable; /* last ENABLE control (arm64) or ASYNC_PF_EN (x86) */
};

extern const struct apf_guest_env_ops tenv_ops;
extern const struct apf_guest_backend_ops tbackend_ops;

void tenv_init(struct tenv *e);
/* A configuration over tenv: n_cpus, vector 0xec, given pool size. */
struct apf_guest_config tenv_config(struct tenv *e, uint32_t n_cpus, uint32_t n_placeholders);
/* Init the runtime in static memory (asserts success) and bring CPUs 0..n-1 online. */
struct apf_guest *tenv_start(struct tenv *e, const struct apf_guest_config *cfg);

/* The host's side of the area, for tests: write "not present" / "page ready". */
void tenv_host_np(struct tenv *e, uint32_t cpu);                /* flags = 1 */
/* "page ready": token (+ reason) in the area, or a ring entry in ring mode */
void tenv_host_ready(struct tenv *e, uint32_t cpu, uint32_t token);
uint32_t tenv_area_flags(struct tenv *e, uint32_t cpu);
uint32_t tenv_area_token(struct tenv *e, uint32_t cpu);
/* Ring mode: the host's side of the ring (publish one token: entry, then prod). */
struct apf_ring *tenv_ring(struct tenv *e, uint32_t cpu);
void tenv_ring_push(struct tenv *e, uint32_t cpu, uint32_t token);

int tenv_count(const struct tenv *e, enum tev_kind k);
int tenv_index(const struct tenv *e, enum tev_kind k, int nth); /* -1 if none */

#endif
