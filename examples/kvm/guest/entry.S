/* SPDX-License-Identifier: MIT */
/*
 * Entry, exception and interrupt stubs, and the cooperative context switch.
 * The VMM starts the CPU in 64-bit mode at _start with RDI = boot info, paging on.
 */
    .set BOOT_STACK_SIZE, 16384

    .section .text.entry, "ax"
    .globl _start
    .type _start, @function
_start:
    cld
    lea boot_stack_top(%rip), %rsp
    xor %ebp, %ebp
    call kmain
1:  cli
    hlt
    jmp 1b
    .size _start, . - _start

/*
 * One stub per vector. Vectors without a CPU error code push a 0 so every frame looks the
 * same: [vector][error][rip][cs][rflags][rsp][ss] above the saved registers.
 */
    .text
    .macro TRAP_STUB vec
    .p2align 4
trap_stub_\vec:
    .if (\vec == 8) || (\vec >= 10 && \vec <= 14) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30)
    .else
    pushq $0
    .endif
    pushq $\vec
    jmp trap_common
    .endm

    .altmacro
    .set vec, 0
    .rept 256
    TRAP_STUB %vec
    .set vec, vec + 1
    .endr

/* Table of the 256 stub addresses, read by idt_init(). */
    .macro STUB_ADDR vec
    .quad trap_stub_\vec
    .endm
    .section .rodata
    .globl trap_stubs
    .p2align 3
trap_stubs:
    .set vec, 0
    .rept 256
    STUB_ADDR %vec
    .set vec, vec + 1
    .endr
    .noaltmacro

    .text
/* Saves the general registers as struct trap_frame and calls trap_dispatch(frame). The frame
 * is 176 bytes above a 16-byte aligned RSP, so RSP is aligned again at the call. */
trap_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    cld
    mov %rsp, %rdi
    call trap_dispatch
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp
    iretq

/*
 * void sched_switch(uint64_t *save_rsp, uint64_t load_rsp)
 * Saves the callee-saved registers and RFLAGS (so the interrupt flag travels with the task)
 * on the current stack, stores RSP in *save_rsp, and resumes the task whose RSP is load_rsp.
 */
    .globl sched_switch
    .type sched_switch, @function
sched_switch:
    pushfq
    push %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, (%rdi)
    mov %rsi, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    popfq
    ret
    .size sched_switch, . - sched_switch

/* A new task starts here (from sched_switch's ret) with R12 = argument, R13 = function. */
    .globl sched_task_start
    .type sched_task_start, @function
sched_task_start:
    sti
    mov %r12, %rdi
    call *%r13
    call sched_task_exit
2:  jmp 2b
    .size sched_task_start, . - sched_task_start

    .bss
    .p2align 4
boot_stack:
    .skip BOOT_STACK_SIZE
boot_stack_top:

    .section .note.GNU-stack, "", @progbits
