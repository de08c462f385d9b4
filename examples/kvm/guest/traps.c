/* SPDX-License-Identifier: MIT */
/*
 * Where every vector goes. #PF asks libapf-guest first (an async "page not present" carries
 * its token in CR2) and is otherwise fatal: this kernel has no demand paging. The "page ready"
 * vector goes to libapf-guest, then EOI. Any other exception is fatal.
 */
#include "apf_glue.h"
#include "apic.h"
#include "cpu.h"
#include "report.h"

#define VEC_PAGE_FAULT 14u

static _Noreturn void fatal(const struct trap_frame *f, uint64_t cr2)
{
    REPORT(GABI_EV_FATAL, f->vector, f->error, f->rip, cr2);
    report_exit(1);
}

void trap_dispatch(struct trap_frame *f)
{
    cpu_trap_depth++;
    if (f->vector == VEC_PAGE_FAULT) {
        /* CR2 first: nothing below may fault before it is read. */
        uint64_t cr2 = read_cr2();
        if (!apf_glue_page_fault(cr2, f->rip))
            fatal(f, cr2);
    } else if (f->vector == apf_glue_vector() && f->vector != 0) {
        apf_glue_interrupt((uint32_t)f->vector);
    } else if (f->vector == APIC_TIMER_VECTOR) {
        apic_timer_interrupt();
    } else if (f->vector == APIC_SPURIOUS_VECTOR) {
        /* Spurious: no EOI. */
    } else {
        fatal(f, read_cr2());
    }
    cpu_trap_depth--;
}
