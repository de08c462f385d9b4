/* SPDX-License-Identifier: MIT */
/*
 * Coroutines: the guest tasks of the simulated guest kernel.
 *
 * Each vCPU thread runs a cooperative scheduler; a guest task is a coroutine on its own
 * stack. A task that takes an asynchronous page fault is parked and another runs, so a switch
 * sits on the fault path and must be cheap: no system call, only the callee-saved registers.
 *
 * Backends, chosen at compile time:
 *  - x86-64: hand-written switch of rbx rbp r12-r15 rsp, the x87 control word and MXCSR;
 *  - aarch64: hand-written switch of x19-x30, sp and d8-d15;
 *  - anything else (or -DPC_CORO_FORCE_UCONTEXT): getcontext/makecontext/swapcontext, which
 *    is portable but makes a sigprocmask system call per switch.
 * Under ASan and TSan every switch is announced to the sanitizer (fiber API).
 *
 * Contexts. A `struct pc_coro` that is zero-filled (or passed to pc_coro_init_thread())
 * stands for the thread's own stack: switching away from it saves the thread, and switching
 * back resumes it. A coroutine made by pc_coro_init() starts in `fn(arg)` the first time it
 * is switched into.
 *
 * Return rule. When `fn` returns, the coroutine is marked finished and control switches to
 * its return target: the coroutine set with pc_coro_set_return(), or, if none was set, the
 * coroutine that last switched into it (its resumer; for a task, the scheduler). Switching
 * into a finished coroutine aborts. A finished coroutine may be initialised again.
 *
 * Threads. A coroutine runs on the thread that switches into it. Moving a suspended
 * coroutine to another thread is possible for the switch itself, but compiled code may cache
 * thread-local addresses across a call, so the simulator keeps each task on its vCPU thread.
 * All calls here are for the thread that owns the contexts involved; nothing is locked.
 */
#ifndef PC_CORO_H
#define PC_CORO_H

#include <stdbool.h>
#include <stddef.h>

#if !defined(PC_CORO_FORCE_UCONTEXT) && defined(__x86_64__)
#define PC_CORO_BACKEND "x86-64 assembly"
#elif !defined(PC_CORO_FORCE_UCONTEXT) && defined(__aarch64__)
#define PC_CORO_BACKEND "aarch64 assembly"
#else
#define PC_CORO_UCONTEXT 1
#define PC_CORO_BACKEND "ucontext"
#include <ucontext.h>
#endif

/** Default stack size for a guest task (usable bytes, above the guard page). */
#define PC_CORO_STACK_DEFAULT (64u * 1024u)

/** A coroutine or a thread's own context. Fields are private to coro.c. */
struct pc_coro {
    void *sp;                /* asm backends: stack pointer while suspended */
    struct pc_coro *resumer; /* the context that last switched into this one */
    struct pc_coro *ret;     /* explicit return target, or NULL: the resumer */
    void (*fn)(void *);
    void *arg;
    void *stack; /* NULL for a thread's own context */
    size_t stack_size;
    bool finished;
    /* Sanitizer bookkeeping; always present so that the layout does not depend on flags. */
    void *asan_fake_stack;
    const void *asan_bottom;
    size_t asan_size;
    void *tsan_fiber;
    bool tsan_owned;
#ifdef PC_CORO_UCONTEXT
    ucontext_t uc;
#endif
};

/** A stack from pc_coro_stack_alloc(): usable [base, base + size), one guard page below. */
struct pc_coro_stack {
    void *base;
    size_t size;
    size_t guard; /* bytes of PROT_NONE just below base */
};

/**
 * Makes `c` stand for the calling thread's own context (same as zero-filling it).
 * @param c  the context to initialise.
 * Calling context: any thread; `c` is then used only by that thread.
 */
void pc_coro_init_thread(struct pc_coro *c);

/**
 * Prepares a coroutine that will run `fn(arg)` on `stack` when first switched into.
 * @param c      the coroutine; not running.
 * @param stack  lowest address of the stack (stacks grow down on every supported target).
 * @param size   usable bytes of the stack; at least 4096.
 * @param fn     entry function; when it returns, the return rule in this file applies.
 * @param arg    passed to `fn`.
 * @return 0, or -EINVAL (NULL stack or fn, size too small).
 */
int pc_coro_init(struct pc_coro *c, void *stack, size_t size, void (*fn)(void *), void *arg);

/**
 * Sets where control goes when `c`'s function returns (NULL: back to its last resumer).
 * @param c    a coroutine, before or while it runs.
 * @param ret  the return target.
 */
void pc_coro_set_return(struct pc_coro *c, struct pc_coro *ret);

/**
 * Saves the running context into `from` and resumes `to`. Returns when something switches
 * back into `from`. `from` must be the context that is running now.
 * @param from  the running context (a coroutine or the thread's own context).
 * @param to    a suspended context; not finished.
 * Aborts if `to` is finished (a broken caller invariant). No system call on the asm
 * backends.
 */
void pc_coro_switch(struct pc_coro *from, struct pc_coro *to);

/** @return true once the coroutine's function has returned. */
bool pc_coro_finished(const struct pc_coro *c);

/**
 * Releases what pc_coro_init() took (a TSan fiber; nothing otherwise). The stack is the
 * caller's. Not for the running coroutine.
 */
void pc_coro_destroy(struct pc_coro *c);

/**
 * Maps a stack of at least `size` usable bytes (rounded up to whole pages) with a PROT_NONE
 * guard page below it, so that an overflow faults (SIGSEGV) instead of corrupting memory.
 * @param st    filled on success.
 * @param size  usable bytes wanted; not 0.
 * @return 0, -EINVAL (size 0 or overflowing), or -ENOMEM (mmap or mprotect failed).
 * Calling context: any thread.
 */
int pc_coro_stack_alloc(struct pc_coro_stack *st, size_t size);

/** Unmaps a stack from pc_coro_stack_alloc() (no-op for a zeroed one) and zeroes `st`. */
void pc_coro_stack_free(struct pc_coro_stack *st);

#endif
