/* SPDX-License-Identifier: MIT */
/*
 * SIGBUS as a "page fault exit" for the vCPU thread that touched a missing page.
 *
 * With PC_MEM_UFFD_SIGBUS (uffd.h) the kernel does not block a thread that touches a missing
 * page: it raises SIGBUS (si_code BUS_ADRERR, si_addr = the address) on that thread. This
 * file installs one process-wide handler that hands such a signal to a callback registered
 * by the faulting thread (a thread-local pointer), so each vCPU thread handles its own
 * faults and threads without a callback crash as usual.
 *
 * What the callback may do, on the faulting thread, inside the signal handler:
 *  - return true: the access is retried when the handler returns. The page must be present
 *    by then (the callback resolved it itself, or waited: the "synchronous fault").
 *  - switch to another coroutine (coro.h) and come back later: the task is parked at the
 *    faulting instruction, other tasks run, and when the task is switched back into, the
 *    callback returns true and the access is retried. This is the asynchronous page fault,
 *    with instruction-exact restart and no sigsetjmp around guest accesses.
 *  - siglongjmp() to a sigsetjmp(env, 0) point taken before the access.
 *  - return false: not ours. The previously installed SIGBUS handler runs, or, if there was
 *    none, a message is written and the process dies of SIGBUS as it would have.
 *
 * Why the handler is installed the way it is:
 *  - SA_NODEFER: SIGBUS stays unblocked while a callback runs. A task parked inside the
 *    handler must not block SIGBUS for the tasks that run meanwhile: the kernel kills the
 *    process when a fault's SIGBUS is blocked. It also lets siglongjmp skip the mask restore.
 *  - no SA_ONSTACK: the handler runs on the faulting task's own stack, so parking a task
 *    there keeps its frame; a per-thread alternate stack would be reused by the next fault.
 * Rules for callbacks: async-signal-safe code only where the fault could have interrupted
 * something holding a lock (guest accesses are plain loads and stores, so they don't), and
 * no access to missing guest memory from inside the callback (it would fault again).
 */
#ifndef PC_SIGBUS_H
#define PC_SIGBUS_H

#include <stdbool.h>

/**
 * A thread's SIGBUS callback.
 * @param ctx   the pointer given to pc_sigbus_set_handler().
 * @param addr  the faulting address (si_addr).
 * @return true to retry the access, false to treat the signal as not ours.
 * Calling context: the faulting thread, in a signal handler (see the file comment).
 */
typedef bool (*pc_sigbus_fn)(void *ctx, void *addr);

/**
 * Installs the process-wide SIGBUS handler (once; later calls return the first result).
 * The handler found in place is kept and called for signals that are not ours.
 * @return 0, or -errno from sigaction.
 * Calling context: any thread. Process-wide by nature (signal dispositions are).
 */
int pc_sigbus_install(void);

/**
 * Registers (or, with fn NULL, removes) the calling thread's callback. Other threads are
 * unaffected. Call it before the thread touches guest memory.
 * @param fn   the callback, or NULL.
 * @param ctx  passed to fn.
 */
void pc_sigbus_set_handler(pc_sigbus_fn fn, void *ctx);

#endif
