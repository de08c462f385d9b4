/* SPDX-License-Identifier: MIT */
/*
 * Test doubles for libapf-guest unit tests (single-threaded, deterministic):
 *  - an environment whose `sleep` and `halt` run a scripted callback in place of "the rest
 *    of the system" (other tasks, interrupts) and fail loudly if the waiter is never woken;
 *  - a recording backend (caps chosen by the test);
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
    uint32_t token;     /* SLEEP: waiter token; ACK: area token at the time of the ACK */
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
    uint32_t caps;
    int probe_result;
    struct apf_guest_backend_info info;
    int enable_result, disable_result, ack_result;
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
void tenv_host_ready(struct tenv *e, uint32_t cpu, uint32_t token); /* token (+ reason) */
uint32_t tenv_area_flags(struct tenv *e, uint32_t cpu);
uint32_t tenv_area_token(struct tenv *e, uint32_t cpu);

int tenv_count(const struct tenv *e, enum tev_kind k);
int tenv_index(const struct tenv *e, enum tev_kind k, int nth); /* -1 if none */

#endif
