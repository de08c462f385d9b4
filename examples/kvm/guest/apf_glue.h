/* SPDX-License-Identifier: MIT */
/*
 * The kernel's only contact with libapf-guest (apf_glue.c): the environment hooks, the
 * kvm_x86 backend, and the three places the kernel calls in (online/offline, #PF, vector).
 */
#ifndef KG_APF_GLUE_H
#define KG_APF_GLUE_H

#include <stdint.h>

#include "guest_abi.h"

/* Set up the runtime and bring APF up on CPU 0 (interrupts off), reporting each step.
 * Returns 1 if APF is on. */
int apf_glue_init(const struct gabi_boot_info *bi);
/* The "page ready" vector (0 when APF is unavailable). */
uint32_t apf_glue_vector(void);
/* #PF: 1 if it was an APF "not present" (handled: the task slept and retries), 0 if it
 * is a genuine page fault. Exception context, interrupts off on entry. */
int apf_glue_page_fault(uint64_t cr2, uint64_t rip);
/* The "page ready" interrupt: libapf-guest, then EOI. Interrupt context. */
void apf_glue_interrupt(uint32_t vector);
/* Take APF down on CPU 0; returns apf_guest_cpu_offline()'s result. */
int apf_glue_offline(void);
/* "Not present" events taken so far (the runtime's counter). */
uint64_t apf_glue_not_present(void);
/* Whether a wake-all "page ready" has been taken. */
int apf_glue_wake_all_seen(void);
/* Report the runtime's counters with @p tag (GABI_STATS_*). */
void apf_glue_report_stats(uint32_t tag);

/* Set by the workload: the compute task's progress counter and the remote address being read
 * (reported with every "not present"). */
extern volatile uint64_t kernel_progress;
extern volatile uint64_t kernel_touch_addr;

#endif /* KG_APF_GLUE_H */
