/* SPDX-License-Identifier: MIT */
/*
 * Coroutine switch: hand-written for x86-64 and aarch64, ucontext elsewhere (see coro.h).
 *
 * The asm switch is an ordinary function call for the compiler, so only what the ABI makes
 * callee-saved has to survive it: the switch pushes those registers on the running stack,
 * stores the stack pointer in `from`, loads `to`'s and pops the same set. A new coroutine's
 * stack is prepared so that its first "pop and return" lands in a trampoline that calls
 * pc__coro_entry(c) with an ABI-aligned stack.
 */
#define _GNU_SOURCE
#include "coro.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sanitize.h"

#if PC_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if PC_TSAN
#include <sanitizer/tsan_interface.h>
#endif

static void pc__coro_entry(struct pc_coro *c);

#ifndef PC_CORO_UCONTEXT
/* save_sp: where to store the running stack pointer; load_sp: the stack to resume. */
void pc__coro_switch_asm(void **save_sp, void *load_sp);
/* First "return" of a new coroutine: calls entry(c) from callee-saved registers. */
void pc__coro_trampoline(void);
#endif

#if defined(__x86_64__) && !defined(PC_CORO_UCONTEXT)
/*
 * Frame on a suspended stack, from the saved rsp upwards:
 *   +0 MXCSR (4 bytes), +4 x87 control word (2 bytes, 2 of padding),
 *   +8 r15, +16 r14, +24 r13, +32 r12, +40 rbx, +48 rbp, +56 return address.
 * The two control words are callee-saved by the SysV ABI (rounding mode, exception masks).
 */
__asm__(".text\n"
        ".globl pc__coro_switch_asm\n"
        ".hidden pc__coro_switch_asm\n"
        ".type pc__coro_switch_asm, @function\n"
        ".p2align 4\n"
        "pc__coro_switch_asm:\n"
        "    .cfi_startproc\n"
        "    pushq %rbp\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    pushq %rbx\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    pushq %r12\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    pushq %r13\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    pushq %r14\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    pushq %r15\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    subq $8, %rsp\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    stmxcsr (%rsp)\n"
        "    fnstcw 4(%rsp)\n"
        "    movq %rsp, (%rdi)\n"
        /* From here on the stack is the other context's, with a frame of the same shape,
         * so the CFA rules above stay true for it. */
        "    movq %rsi, %rsp\n"
        "    ldmxcsr (%rsp)\n"
        "    fldcw 4(%rsp)\n"
        "    addq $8, %rsp\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    popq %r15\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    popq %r14\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    popq %r13\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    popq %r12\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    popq %rbx\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    popq %rbp\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    ret\n"
        "    .cfi_endproc\n"
        ".size pc__coro_switch_asm, .-pc__coro_switch_asm\n"
        "\n"
        /* r12 = the coroutine, r13 = pc__coro_entry; rsp is 16-byte aligned here, so the
         * call leaves it at 8 mod 16 on entry as the ABI wants. rip undefined: backtraces
         * end here. entry never returns. */
        ".globl pc__coro_trampoline\n"
        ".hidden pc__coro_trampoline\n"
        ".type pc__coro_trampoline, @function\n"
        ".p2align 4\n"
        "pc__coro_trampoline:\n"
        "    .cfi_startproc\n"
        "    .cfi_undefined rip\n"
        "    movq %r12, %rdi\n"
        "    callq *%r13\n"
        "    ud2\n"
        "    .cfi_endproc\n"
        ".size pc__coro_trampoline, .-pc__coro_trampoline\n");

#define PC__FRAME_BYTES 64u /* the frame above, return address included */

static void pc__coro_frame_init(struct pc_coro *c, uintptr_t top)
{
    /* 16 zero bytes above the frame so that rsp is 16-aligned after the first ret. */
    uintptr_t sp = top - 16u - PC__FRAME_BYTES;
    uint64_t *f = (uint64_t *)sp;
    memset(f, 0, PC__FRAME_BYTES + 16u);
    uint32_t mxcsr = 0x1f80u; /* all exceptions masked, round to nearest */
    uint16_t fcw = 0x037fu;   /* same for x87, 64-bit precision */
    memcpy((char *)sp, &mxcsr, sizeof(mxcsr));
    memcpy((char *)sp + 4, &fcw, sizeof(fcw));
    f[3] = (uint64_t)(uintptr_t)pc__coro_entry; /* r13 */
    f[4] = (uint64_t)(uintptr_t)c;              /* r12 */
    f[6] = 0;                                   /* rbp: end of the frame-pointer chain */
    f[7] = (uint64_t)(uintptr_t)pc__coro_trampoline;
    c->sp = (void *)sp;
}

#elif defined(__aarch64__) && !defined(PC_CORO_UCONTEXT)
/*
 * Frame on a suspended stack (176 bytes, keeps sp 16-aligned), from the saved sp upwards:
 *   +0 x19 x20, +16 x21 x22, +32 x23 x24, +48 x25 x26, +64 x27 x28, +80 x29 x30 (fp, lr),
 *   +96 d8 d9, +112 d10 d11, +128 d12 d13, +144 d14 d15, +160 FPCR (8 bytes, 8 of padding).
 * AAPCS64 makes only the low 64 bits of v8-v15 callee-saved, hence d8-d15; FPCR (rounding
 * mode, trap enables) is each context's own, as MXCSR is on x86-64.
 */
__asm__(".text\n"
        ".globl pc__coro_switch_asm\n"
        ".hidden pc__coro_switch_asm\n"
        ".type pc__coro_switch_asm, %function\n"
        ".p2align 4\n"
        "pc__coro_switch_asm:\n"
        "    .cfi_startproc\n"
        "    sub sp, sp, #176\n"
        "    .cfi_adjust_cfa_offset 176\n"
        "    stp x19, x20, [sp, #0]\n"
        "    stp x21, x22, [sp, #16]\n"
        "    stp x23, x24, [sp, #32]\n"
        "    stp x25, x26, [sp, #48]\n"
        "    stp x27, x28, [sp, #64]\n"
        "    stp x29, x30, [sp, #80]\n"
        "    stp d8, d9, [sp, #96]\n"
        "    stp d10, d11, [sp, #112]\n"
        "    stp d12, d13, [sp, #128]\n"
        "    stp d14, d15, [sp, #144]\n"
        "    mrs x9, fpcr\n"
        "    str x9, [sp, #160]\n"
        "    mov x9, sp\n"
        "    str x9, [x0]\n"
        "    mov sp, x1\n" /* the other context's frame has the same shape */
        "    ldp x19, x20, [sp, #0]\n"
        "    ldp x21, x22, [sp, #16]\n"
        "    ldp x23, x24, [sp, #32]\n"
        "    ldp x25, x26, [sp, #48]\n"
        "    ldp x27, x28, [sp, #64]\n"
        "    ldp x29, x30, [sp, #80]\n"
        "    ldp d8, d9, [sp, #96]\n"
        "    ldp d10, d11, [sp, #112]\n"
        "    ldp d12, d13, [sp, #128]\n"
        "    ldp d14, d15, [sp, #144]\n"
        "    ldr x9, [sp, #160]\n"
        "    msr fpcr, x9\n"
        "    add sp, sp, #176\n"
        "    .cfi_adjust_cfa_offset -176\n"
        "    ret\n"
        "    .cfi_endproc\n"
        ".size pc__coro_switch_asm, .-pc__coro_switch_asm\n"
        "\n"
        /* x19 = the coroutine, x20 = pc__coro_entry, x29 = 0 ends the frame chain. */
        ".globl pc__coro_trampoline\n"
        ".hidden pc__coro_trampoline\n"
        ".type pc__coro_trampoline, %function\n"
        ".p2align 4\n"
        "pc__coro_trampoline:\n"
        "    .cfi_startproc\n"
        "    .cfi_undefined x30\n"
        "    mov x0, x19\n"
        "    blr x20\n"
        "    brk #0\n"
        "    .cfi_endproc\n"
        ".size pc__coro_trampoline, .-pc__coro_trampoline\n");

#define PC__FRAME_BYTES 176u

static void pc__coro_frame_init(struct pc_coro *c, uintptr_t top)
{
    uintptr_t sp = top - PC__FRAME_BYTES;
    uint64_t *f = (uint64_t *)sp;
    memset(f, 0, PC__FRAME_BYTES);
    f[0] = (uint64_t)(uintptr_t)c;                    /* x19 */
    f[1] = (uint64_t)(uintptr_t)pc__coro_entry;       /* x20 */
    f[10] = 0;                                        /* x29 */
    f[11] = (uint64_t)(uintptr_t)pc__coro_trampoline; /* x30 */
    c->sp = (void *)sp;
}

#else /* ucontext */

/* makecontext passes only int arguments: the pointer travels as two 32-bit halves. */
static void pc__coro_uc_entry(unsigned int hi, unsigned int lo)
{
    uintptr_t p = (uintptr_t)(((uint64_t)hi << 32) | (uint64_t)lo);
    pc__coro_entry((struct pc_coro *)p);
}

#endif

/* --- sanitizer announcements ------------------------------------------------------------ */

/* Before the switch: ASan learns the destination stack (and drops a finishing coroutine's
 * fake stack), TSan switches its shadow state. Must be the last thing before the switch. */
static inline void pc__san_before(struct pc_coro *from, struct pc_coro *to)
{
#if PC_ASAN
    __sanitizer_start_switch_fiber(from->finished ? NULL : &from->asan_fake_stack, to->asan_bottom,
                                   to->asan_size);
#endif
#if PC_TSAN
    if (from->tsan_fiber == NULL)
        from->tsan_fiber = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    (void)from;
    (void)to;
}

/* After arriving in `self`: ASan finishes the switch and tells us the stack we came from,
 * which is how a thread's own context (whose bounds we never knew) gets them. */
static inline void pc__san_after(struct pc_coro *self)
{
#if PC_ASAN
    struct pc_coro *prev = self->resumer;
    const void *bottom = NULL;
    size_t size = 0;
    __sanitizer_finish_switch_fiber(self->asan_fake_stack, &bottom, &size);
    if (prev != NULL) {
        prev->asan_bottom = bottom;
        prev->asan_size = size;
    }
#endif
    (void)self;
}

/* --- the API ----------------------------------------------------------------------------- */

void pc_coro_init_thread(struct pc_coro *c)
{
    memset(c, 0, sizeof(*c));
}

static void pc__coro_entry(struct pc_coro *c)
{
    pc__san_after(c);
    c->fn(c->arg);
    c->finished = true;
    struct pc_coro *next = c->ret != NULL ? c->ret : c->resumer;
    pc_coro_switch(c, next);
    /* Broken invariant: pc_coro_switch() refuses to enter a finished coroutine. */
    abort();
}

int pc_coro_init(struct pc_coro *c, void *stack, size_t size, void (*fn)(void *), void *arg)
{
    if (c == NULL || stack == NULL || fn == NULL || size < 4096u)
        return -EINVAL;
    memset(c, 0, sizeof(*c));
    c->fn = fn;
    c->arg = arg;
    c->stack = stack;
    c->stack_size = size;
    c->asan_bottom = stack;
    c->asan_size = size;
#if PC_TSAN
    c->tsan_fiber = __tsan_create_fiber(0);
    c->tsan_owned = true;
#endif
#ifdef PC_CORO_UCONTEXT
    if (getcontext(&c->uc) != 0)
        return -errno;
    c->uc.uc_stack.ss_sp = stack;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = NULL;
    uint64_t p = (uint64_t)(uintptr_t)c;
    makecontext(&c->uc, (void (*)(void))pc__coro_uc_entry, 2, (unsigned int)(p >> 32),
                (unsigned int)(p & 0xffffffffu));
#else
    uintptr_t top = ((uintptr_t)stack + size) & ~(uintptr_t)15u;
    pc__coro_frame_init(c, top);
#endif
    return 0;
}

void pc_coro_set_return(struct pc_coro *c, struct pc_coro *ret)
{
    c->ret = ret;
}

void pc_coro_switch(struct pc_coro *from, struct pc_coro *to)
{
    if (to->finished) {
        fprintf(stderr, "pc_coro_switch: switching into a finished coroutine\n");
        abort();
    }
    if (from == to)
        return;
    to->resumer = from;
    pc__san_before(from, to);
#ifdef PC_CORO_UCONTEXT
    if (swapcontext(&from->uc, &to->uc) != 0)
        abort(); /* only fails for invalid contexts: a broken invariant */
#else
    pc__coro_switch_asm(&from->sp, to->sp);
#endif
    pc__san_after(from);
}

bool pc_coro_finished(const struct pc_coro *c)
{
    return c->finished;
}

void pc_coro_destroy(struct pc_coro *c)
{
#if PC_TSAN
    if (c->tsan_owned && c->tsan_fiber != NULL)
        __tsan_destroy_fiber(c->tsan_fiber);
#endif
    c->tsan_fiber = NULL;
    c->tsan_owned = false;
}

int pc_coro_stack_alloc(struct pc_coro_stack *st, size_t size)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    if (size == 0 || size > SIZE_MAX / 2)
        return -EINVAL;
    size = (size + pg - 1) / pg * pg;
    size_t total = size + pg;
    void *m =
        mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (m == MAP_FAILED)
        return -ENOMEM;
    if (mprotect(m, pg, PROT_NONE) != 0) {
        munmap(m, total);
        return -ENOMEM;
    }
    st->base = (char *)m + pg;
    st->size = size;
    st->guard = pg;
    return 0;
}

void pc_coro_stack_free(struct pc_coro_stack *st)
{
    if (st->base != NULL) {
#if PC_ASAN
        /* A coroutine abandoned mid-run leaves poisoned redzones in the shadow of its
         * stack; a later mapping at the same address must not inherit them. */
        __asan_unpoison_memory_region(st->base, st->size);
#endif
        munmap((char *)st->base - st->guard, st->size + st->guard);
    }
    memset(st, 0, sizeof(*st));
}
