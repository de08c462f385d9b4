/* SPDX-License-Identifier: MIT */
/* The local APIC, in x2APIC mode when the CPU offers it (MSR access), xAPIC (MMIO) otherwise. */
#ifndef KG_APIC_H
#define KG_APIC_H

#include <stdint.h>

#define APIC_SPURIOUS_VECTOR 0xffu
#define APIC_TIMER_VECTOR 0xf0u

/* Software-enable the local APIC (SVR bit 8), TPR 0. Returns GABI_LAPIC_X2APIC or _XAPIC. */
uint32_t apic_init(void);
/* The spurious-interrupt vector register as now programmed. */
uint32_t apic_svr(void);
uint32_t apic_id(void);
/* End of interrupt for the highest in-service vector. */
void apic_eoi(void);
/* Whether @p vector is in service (ISR) / requested (IRR). */
int apic_in_service(uint32_t vector);
int apic_requested(uint32_t vector);
/* Arm the one-shot timer: APIC_TIMER_VECTOR after @p count bus cycles (KVM: 1 ns each). */
void apic_timer_oneshot(uint32_t count);
void apic_timer_stop(void);
/* The timer interrupt: EOI and note it. Interrupt context. */
void apic_timer_interrupt(void);
/* Timer interrupts taken so far. */
extern volatile uint32_t apic_timer_fired;

#endif /* KG_APIC_H */
