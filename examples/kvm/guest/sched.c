/* SPDX-License-Identifier: MIT */
/*
 * The scheduler. One CPU and interrupts off inside every function that touches the task
 * table, so no lock is needed: an interrupt handler (sched_wake) runs either before or after
 * a whole scheduling decision, never inside one.
 */
#include "sched.h"

#include "cpu.h"

#define SCHED_MAX_TASKS 4
#define TASK_STACK_SIZE 16384

enum task_state { TASK_FREE = 0, TASK_RUNNABLE, TASK_BLOCKED, TASK_DEAD };

struct task {
    uint64_t rsp; /* saved by sched_switch */
    volatile uint32_t state;
    const char *name;
};

/* entry.S */
void sched_switch(uint64_t *save_rsp, uint64_t load_rsp);
void sched_task_start(void);
void sched_task_exit(void);

static struct task tasks[SCHED_MAX_TASKS]; /* [0] is the idle task */
static uint8_t stacks[SCHED_MAX_TASKS][TASK_STACK_SIZE] __attribute__((aligned(16)));
static struct task *current;

void sched_init(void)
{
    tasks[0].state = TASK_RUNNABLE;
    tasks[0].name = "idle";
    current = &tasks[0];
}

struct task *sched_spawn(const char *name, void (*fn)(void *), void *arg)
{
    for (int i = 1; i < SCHED_MAX_TASKS; i++) {
        struct task *t = &tasks[i];
        if (t->state != TASK_FREE)
            continue;
        /* The frame sched_switch pops: r15 r14 r13 r12 rbx rbp rflags, then its return
         * address. The return lands on a 16-byte boundary, as a call expects. */
        uint64_t *top = (uint64_t *)(void *)(stacks[i] + TASK_STACK_SIZE);
        top[-1] = (uint64_t)(uintptr_t)sched_task_start;
        top[-2] = 0x2; /* RFLAGS: interrupts off until sched_task_start's sti */
        top[-3] = 0;   /* rbp */
        top[-4] = 0;   /* rbx */
        top[-5] = (uint64_t)(uintptr_t)arg; /* r12 */
        top[-6] = (uint64_t)(uintptr_t)fn;  /* r13 */
        top[-7] = 0;                        /* r14 */
        top[-8] = 0;                        /* r15 */
        t->rsp = (uint64_t)(uintptr_t)&top[-8];
        t->name = name;
        t->state = TASK_RUNNABLE;
        return t;
    }
    return 0;
}

/* The next task to run after the current one: round robin over runnable tasks, idle only
 * when no other task can run. Interrupts off. */
static struct task *pick_next(void)
{
    int cur = (int)(current - tasks);
    for (int k = 1; k <= SCHED_MAX_TASKS; k++) {
        int i = (cur + k) % SCHED_MAX_TASKS;
        if (i != 0 && tasks[i].state == TASK_RUNNABLE)
            return &tasks[i];
    }
    return &tasks[0];
}

/* Interrupts off. Returns when the current task is chosen again. */
static void schedule(void)
{
    struct task *next = pick_next();
    if (next == current)
        return;
    struct task *prev = current;
    current = next;
    sched_switch(&prev->rsp, next->rsp);
}

void sched_yield(void)
{
    uint64_t f = irq_save();
    schedule();
    irq_restore(f);
}

void sched_wait(int (*done)(const void *arg), const void *arg)
{
    uint64_t f = irq_save();
    while (!done(arg)) {
        current->state = TASK_BLOCKED;
        schedule();
    }
    current->state = TASK_RUNNABLE;
    irq_restore(f);
}

void sched_wake(struct task *t)
{
    if (t != 0 && t->state == TASK_BLOCKED)
        t->state = TASK_RUNNABLE;
}

struct task *sched_current(void)
{
    return current;
}

int sched_in_idle(void)
{
    return current == &tasks[0];
}

void sched_task_exit(void)
{
    irq_disable();
    current->state = TASK_DEAD;
    schedule(); /* never comes back: a dead task is never picked */
    for (;;)
        ;
}

_Noreturn void sched_idle_loop(void)
{
    for (;;) {
        irq_disable();
        if (pick_next() != &tasks[0]) {
            schedule();
            irq_enable();
        } else {
            irq_enable_and_halt();
        }
    }
}
