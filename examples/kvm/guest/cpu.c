/* SPDX-License-Identifier: MIT */
/* Descriptor tables: a flat 64-bit GDT with a TSS, and an IDT of interrupt gates (IF cleared
 * on entry) for all 256 vectors, each pointing at its stub in entry.S. */
#include "cpu.h"

#define SEL_CODE 0x08u
#define SEL_DATA 0x10u
#define SEL_TSS 0x18u

struct tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
} __attribute__((packed));

struct idt_gate {
    uint16_t off_lo;
    uint16_t sel;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t off_mid;
    uint32_t off_hi;
    uint32_t reserved;
};

struct table_ptr {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

_Static_assert(sizeof(struct tss64) == 104, "64-bit TSS");
_Static_assert(sizeof(struct idt_gate) == 16, "64-bit gate");

extern const uint64_t trap_stubs[256]; /* entry.S */

static struct tss64 tss;
static uint64_t gdt[5] __attribute__((aligned(16)));
static struct idt_gate idt[256] __attribute__((aligned(16)));

volatile uint32_t cpu_trap_depth;

static void gdt_init(void)
{
    uint64_t base = (uint64_t)(uintptr_t)&tss;
    uint64_t limit = sizeof(tss) - 1;
    gdt[0] = 0;
    gdt[1] = 0x00af9a000000ffffull; /* code: present, DPL 0, L = 1 */
    gdt[2] = 0x00cf92000000ffffull; /* data: present, DPL 0, writable */
    /* 64-bit available TSS (type 9), present; 16 bytes: low half then base 63:32. */
    gdt[3] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
             (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
    gdt[4] = base >> 32;
    tss.iomap_base = sizeof(tss); /* no I/O permission bitmap */

    struct table_ptr p = {.limit = sizeof(gdt) - 1, .base = (uint64_t)(uintptr_t)gdt};
    __asm__ volatile("lgdt %0" : : "m"(p) : "memory");
    /* Reload CS with a far return, then the data segments and the task register. */
    __asm__ volatile("pushq %[cs]\n\t"
                     "leaq 1f(%%rip), %%rax\n\t"
                     "pushq %%rax\n\t"
                     "lretq\n"
                     "1:\n\t"
                     "movw %[ds], %%ax\n\t"
                     "movw %%ax, %%ds\n\t"
                     "movw %%ax, %%es\n\t"
                     "movw %%ax, %%ss\n\t"
                     "movw %%ax, %%fs\n\t"
                     "movw %%ax, %%gs\n\t"
                     "movw %[tr], %%ax\n\t"
                     "ltr %%ax"
                     :
                     : [cs] "i"(SEL_CODE), [ds] "i"(SEL_DATA), [tr] "i"(SEL_TSS)
                     : "rax", "memory");
}

static void idt_init(void)
{
    for (int v = 0; v < 256; v++) {
        uint64_t off = trap_stubs[v];
        idt[v].off_lo = (uint16_t)off;
        idt[v].sel = SEL_CODE;
        idt[v].ist = 0;
        idt[v].type_attr = 0x8e; /* present, DPL 0, 64-bit interrupt gate */
        idt[v].off_mid = (uint16_t)(off >> 16);
        idt[v].off_hi = (uint32_t)(off >> 32);
        idt[v].reserved = 0;
    }
    struct table_ptr p = {.limit = sizeof(idt) - 1, .base = (uint64_t)(uintptr_t)idt};
    __asm__ volatile("lidt %0" : : "m"(p) : "memory");
}

void cpu_tables_init(void)
{
    gdt_init();
    idt_init();
}
