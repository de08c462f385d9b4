/* SPDX-License-Identifier: MIT */
/*
 * The contract between the example VMM (vmm/) and the example guest kernel (guest/):
 * guest-physical memory layout, boot parameters, and the report channel. Dual-use: both sides
 * include it; it needs only <stdint.h>. Guest addresses are plain integers here; the VMM
 * reaches guest memory only through its bounds-checked accessor.
 *
 * Report channel: the guest fills a struct gabi_report in its own memory and writes the
 * report's guest-physical address with `outl` to GABI_PORT_REPORT. With KVM's in-kernel
 * irqchip a HLT never reaches user space, so port I/O is the only way out of the guest.
 */
#ifndef GABI_GUEST_ABI_H
#define GABI_GUEST_ABI_H

#include <stdint.h>

/* ---- memory layout (guest-physical; the guest identity-maps the first 4 GiB) ---------- */
#define GABI_LOW_SIZE 0x800000u      /* the low slot: 8 MiB at 0, plain memory */
#define GABI_PT_PML4 0x1000u         /* page tables, written by the VMM */
#define GABI_PT_PDPT 0x2000u         /* one PDPT: 4 entries for 0-4 GiB */
#define GABI_PT_PD 0x3000u           /* four PDs (0x3000-0x6fff) of 2 MiB pages */
#define GABI_BOOT_INFO 0x7000u       /* struct gabi_boot_info, written by the VMM */
#define GABI_BOOT_GDT 0x7800u        /* the VMM's boot GDT (the kernel loads its own) */
#define GABI_KERNEL_BASE 0x100000u   /* the kernel's flat image is loaded (and linked) here */
#define GABI_REMOTE_BASE 0x40000000u /* the "remote" slot (userfaultfd-backed), at 1 GiB */
#define GABI_REMOTE_MAX_PAGES 4096u  /* its largest size: 16 MiB */
#define GABI_PAGE_SIZE 4096u

/* ---- ports ----------------------------------------------------------------------------- */
#define GABI_PORT_REPORT 0x0510u /* outl: guest-physical address of a struct gabi_report */
#define GABI_PORT_EXIT 0x0511u   /* outl: the guest's exit status (0 = all steps ran) */
/* outl, interrupts on: "I am about to read this remote page" (libapf-host phase only).
 * The VMM may answer with a "not present" #PF injected right after the instruction. */
#define GABI_PORT_ANNOUNCE 0x0512u

/* ---- boot parameters (VMM -> guest, at GABI_BOOT_INFO; the guest also gets it in RDI) --- */
#define GABI_BOOT_MAGIC 0x4b474142u  /* "BAGK" */
#define GABI_BOOT_NO_APF (1u << 0)   /* keep APF off (APF_GUEST_NO_APF) */
#define GABI_BOOT_SIM_HOST (1u << 1) /* run the libapf-host phase too (announces) */

struct gabi_boot_info {
    uint32_t magic;           /* GABI_BOOT_MAGIC */
    uint32_t flags;           /* GABI_BOOT_* */
    uint64_t remote_base;     /* guest-physical base of the remote slot */
    uint32_t remote_pages;    /* pages in the remote slot: pages_per_phase per phase */
    uint32_t pages_per_phase; /* remote pages read per phase */
    uint32_t calib_iters;     /* iterations of the timing loop (2 instructions each) */
    uint32_t compute_batch;   /* compute task: iterations between two yields */
    uint32_t vector;          /* "page ready" vector the guest should use */
    uint32_t pad;
};

/* ---- the page contents the VMM's userfaultfd handler copies in ------------------------- */
/* Every 8-byte word of the remote slot holds a value derived from its guest-physical
 * address, so the guest can check each word it reads came from the right place. */
static inline uint64_t gabi_pattern(uint64_t gpa)
{
    return (gpa * 0x9e3779b97f4a7c15ull) ^ 0x5a5a5a5a00000000ull;
}

/* ---- reports (guest -> VMM) ------------------------------------------------------------ */
enum gabi_event {
    GABI_EV_BOOT = 1,    /* a0 lapic mode (GABI_LAPIC_*), a1 SVR, a2 APIC id, a3 vector */
    GABI_EV_CPUID = 2,   /* a0 leaf, a1..a4 eax..edx: a cpuid the backend executed */
    GABI_EV_WRMSR = 3,   /* a0 sequence number, a1 msr, a2 value: a wrmsr the backend executed */
    GABI_EV_PROBE = 4,   /* a0 apf_guest_available(), a1 runtime bytes, a2 vector */
    GABI_EV_ONLINE = 5,  /* a0 apf_guest_cpu_online() result, a1 area gpa, a2 EN value
                            written, a3 INT value written, a4 1 if INT was written first */
    GABI_EV_IRQ = 6,     /* a0 vector taken through the IDT, a1 token before, a2 token after
                            apf_guest_on_interrupt(), a3 its result, a4 ISR bit before EOI,
                            a5 ISR bit after EOI, a6 ACK wrmsrs during the handler */
    GABI_EV_STATS = 7,   /* a0 tag, a1.. struct apf_guest_stats in field order (GABI_ST_*) */
    GABI_EV_APF_PF = 8,  /* a0 CR2 (token), a1 RIP, a2 compute progress at sleep, a3 at
                            wake, a4 remote address being read */
    GABI_EV_FATAL = 9,   /* a0 vector, a1 error code, a2 RIP, a3 CR2 */
    GABI_EV_PHASE = 10,  /* a0 phase (GABI_PHASE_*), a1 0 begin / 1 end, a2 pages touched,
                            a3 words checked, a4 bad words, a5 compute progress,
                            a6 "not present" events so far */
    GABI_EV_CALIB = 11,  /* a0 0 begin / 1 end, a1 iterations */
    GABI_EV_LOG = 12,    /* a0 level; text */
    GABI_EV_OFFLINE = 13 /* a0 apf_guest_cpu_offline() result, a1 EN value written */
};

#define GABI_LAPIC_XAPIC 1u
#define GABI_LAPIC_X2APIC 2u

/* Phases, in the order the guest runs them, each on its own remote pages:
 *  APF_ON    APF on; KVM decides whether an access goes async;
 *  SIM_HOST  APF on; the guest announces each access and the VMM, not KVM, plays the host's
 *            part (injects "not present", resolves, raises "page ready"); optional;
 *  APF_OFF   after apf_guest_cpu_offline(). */
#define GABI_PHASE_APF_ON 1u
#define GABI_PHASE_APF_OFF 2u
#define GABI_PHASE_SIM_HOST 3u
#define GABI_PHASES 4u /* array size for phase-indexed tables */

/* GABI_EV_STATS a0 tags */
#define GABI_STATS_AFTER_WAKE_ALL 1u
#define GABI_STATS_FINAL 2u

/* GABI_EV_STATS: index in arg[] of each struct apf_guest_stats field. */
enum gabi_stats_index {
    GABI_ST_NOT_PRESENT = 1,
    GABI_ST_SLEPT,
    GABI_ST_HALTED,
    GABI_ST_PLACEHOLDER_HITS,
    GABI_ST_RETRIES,
    GABI_ST_READY,
    GABI_ST_WAKE_ALL,
    GABI_ST_WOKEN,
    GABI_ST_PLACEHOLDERS,
    GABI_ST_LOST_WAKEUPS,
    GABI_ST_SPURIOUS,
    GABI_ST_BAD_HOST_VALUES,
    GABI_ST_ACKS,
    GABI_ST_PLACEHOLDERS_IN_USE,
    GABI_ST_ENABLED,
    GABI_ST_COUNT
};

#define GABI_REPORT_ARGS 16u
#define GABI_REPORT_TEXT 96u

struct gabi_report {
    uint32_t event;  /* enum gabi_event */
    uint32_t n_args; /* arguments used */
    uint64_t arg[GABI_REPORT_ARGS];
    char text[GABI_REPORT_TEXT]; /* NUL-terminated (GABI_EV_LOG) */
};

_Static_assert(sizeof(struct gabi_boot_info) == 40, "boot info layout");
_Static_assert(sizeof(struct gabi_report) == 8 + 8 * GABI_REPORT_ARGS + GABI_REPORT_TEXT,
               "report layout");
_Static_assert(GABI_ST_COUNT <= GABI_REPORT_ARGS, "stats fit in a report");

#endif /* GABI_GUEST_ABI_H */
