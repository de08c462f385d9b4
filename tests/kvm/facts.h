/* SPDX-License-Identifier: MIT */
/* What the guest reported and what KVM showed at the same moments, gathered for the
 * summary and the checks. */
#ifndef VMM_FACTS_H
#define VMM_FACTS_H

#include <stdint.h>
#include <stdio.h>

#include "guest_abi.h"
#include "remote.h"
#include "vm.h"

/* Room for one event per remote page and then some: nothing is dropped at any --pages. */
#define FACTS_MAX_EVENTS (GABI_REMOTE_MAX_PAGES + 64)
#define FACTS_MAX_WRMSR FACTS_MAX_EVENTS
#define FACTS_MAX_IRQ FACTS_MAX_EVENTS
#define FACTS_MAX_PF FACTS_MAX_EVENTS

struct facts_wrmsr {
    uint32_t seq, msr;
    uint64_t value;
    int64_t rc;
    int kvm_ok;               /* KVM_GET_MSRS succeeded at this exit */
    uint64_t kvm_en, kvm_int; /* what KVM holds right after the write */
    int kvm_isr;              /* ACK: the vector's ISR bit in KVM's local APIC (-1 unknown) */
};

struct facts_irq {
    uint32_t phase; /* GABI_PHASE_* running when it arrived, 0 outside phases */
    uint32_t vector;
    uint32_t token_before, token_after;
    int64_t woken;
    uint32_t isr_before, isr_after;
    uint32_t acks;
    uint64_t t_ns;
};

struct facts_pf {
    uint32_t phase;
    uint64_t cr2, rip, progress_before, progress_after, addr;
    uint32_t slept;
    uint64_t t_ns;
};

struct facts_phase {
    int begun, ended;
    uint64_t t_begin_ns, t_end_ns;
    uint64_t pages, words, bad, progress, np_before, np_after;
};

struct vmm_facts {
    /* configuration */
    uint32_t vector;
    uint32_t pages_per_phase;
    uint32_t delay_us;
    uint32_t calib_iters;
    /* KVM, seen by the VMM */
    struct vmm_cpuid_info cpuid;
    int cap_async_pf;
    uint32_t kvm_svr; /* LAPIC SVR from KVM_GET_LAPIC after boot report */
    int kvm_svr_ok;
    uint64_t end_en, end_int; /* KVM_GET_MSRS after the guest exited */
    int end_msrs_ok;
    /* who holds the APF MSRs: "KVM" (KVM_GET_MSRS) or "libapf-host" (its frontend, behind
     * KVM's MSR filter); get_msrs reads them (NULL: KVM_GET_MSRS) */
    const char *host_name;
    int (*get_msrs)(void *ctx, const uint32_t *index, uint64_t *value, int n);
    void *get_msrs_ctx;
    /* guest reports */
    int boot;
    uint32_t lapic_mode, svr, apic_id;
    uint32_t cpuid_sig[4]; /* leaf, ebx ecx edx of the signature leaf the backend read */
    int cpuid_sig_seen;
    uint32_t cpuid_feat; /* eax of the features leaf the backend read */
    int cpuid_feat_seen;
    uint64_t t_calib_begin, t_calib_end;
    int calib_done;
    int probe_seen;
    int64_t available, probe_rc;
    uint64_t runtime_bytes;
    struct facts_wrmsr wrmsr[FACTS_MAX_WRMSR];
    uint32_t n_wrmsr;
    int online_seen;
    int64_t online_rc;
    uint64_t area, en_written, int_written;
    uint32_t int_first, irr_after_enable;
    struct facts_irq irq[FACTS_MAX_IRQ];
    uint32_t n_irq;
    uint64_t stats_wake[GABI_ST_COUNT];
    int stats_wake_seen;
    uint64_t stats_final[GABI_ST_COUNT];
    int stats_final_seen;
    struct facts_pf pf[FACTS_MAX_PF];
    uint32_t n_pf;
    struct facts_phase phase[GABI_PHASES]; /* indexed by GABI_PHASE_* */
    uint32_t cur_phase;
    /* libapf-host phase (--host libapf) */
    int sim_enabled;
    uint32_t sim_tokens[FACTS_MAX_PF]; /* tokens it injected, in order */
    uint32_t n_sim_tokens;
    uint32_t sim_announces;
    int offline_seen;
    int64_t offline_rc;
    uint64_t offline_en;
    int fatal;
    uint64_t fatal_args[4];
    uint32_t logs;
    int exited;
    uint32_t exit_status;
    uint64_t t0_ns;
};

/* Decode one report, update @p f, print one line to @p out. Runs at the report's I/O exit,
 * so KVM vCPU ioctls (KVM_GET_MSRS) are safe here. */
void facts_on_report(struct vmm_facts *f, struct vmm_vm *vm, const struct gabi_report *r,
                     FILE *out);
/* libapf-host answered an announce of @p gpa with @p token (0: no event). */
void facts_on_announce(struct vmm_facts *f, uint64_t gpa, int64_t token, FILE *out);
/* Print the summary. */
void facts_print_summary(const struct vmm_facts *f, const struct vmm_remote *remote,
                         const struct vmm_remote_stats *rs, FILE *out);
/* Whether KVM itself delivered any "not present" (the hardware KVM path): during the
 * APF-on phase, not counting libapf-host's. */
int facts_not_present_seen(const struct vmm_facts *f);
/* Check every fact the run must show; print one line per check. Returns failures. */
int facts_check(const struct vmm_facts *f, const struct vmm_remote_stats *rs, FILE *out);

#endif /* VMM_FACTS_H */
