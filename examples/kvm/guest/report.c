/* SPDX-License-Identifier: MIT */
/* The report channel: one static buffer, filled and sent with interrupts off so a report from
 * an interrupt handler cannot tear one being written by a task. */
#include "report.h"

#include "cpu.h"

static struct gabi_report report_buf;

void report_send(uint32_t event, const uint64_t *args, uint32_t n, const char *text)
{
    uint64_t flags = irq_save();
    struct gabi_report *r = &report_buf;
    if (n > GABI_REPORT_ARGS)
        n = GABI_REPORT_ARGS;
    r->event = event;
    r->n_args = n;
    for (uint32_t i = 0; i < GABI_REPORT_ARGS; i++)
        r->arg[i] = i < n ? args[i] : 0;
    uint32_t len = 0;
    if (text != 0)
        for (; len + 1 < GABI_REPORT_TEXT && text[len] != '\0'; len++)
            r->text[len] = text[len];
    r->text[len] = '\0';
    /* Identity mapping: the buffer's address is its guest-physical address. */
    outl(GABI_PORT_REPORT, (uint32_t)(uintptr_t)r);
    irq_restore(flags);
}

_Noreturn void report_exit(uint32_t status)
{
    irq_disable();
    for (;;)
        outl(GABI_PORT_EXIT, status);
}
