/* SPDX-License-Identifier: MIT */
/*
 * A tiny cooperative scheduler for one CPU: a few tasks with their own stacks, round robin at
 * sched_yield(), blocking with sched_wait() and waking (from interrupt context too) with
 * sched_wake(). The boot context becomes the idle task, which halts when nothing can run.
 */
#ifndef KG_SCHED_H
#define KG_SCHED_H

#include <stdint.h>

struct task;

/* Make the calling (boot) context the idle task. */
void sched_init(void);
/* Create a runnable task running fn(arg). NULL if the table is full. */
struct task *sched_spawn(const char *name, void (*fn)(void *), void *arg);
/* Let the next runnable task run. Task context. */
void sched_yield(void);
/* Block the current task until done(arg) is true; the interrupt flag is preserved.
 * Whoever makes done() true must then call sched_wake() on this task. Task context. */
void sched_wait(int (*done)(const void *arg), const void *arg);
/* Make @p t runnable. Any context, interrupts off. */
void sched_wake(struct task *t);
/* The running task. */
struct task *sched_current(void);
/* Whether the running task is the idle task. */
int sched_in_idle(void);
/* Run the idle loop (never returns). */
_Noreturn void sched_idle_loop(void);

#endif /* KG_SCHED_H */
