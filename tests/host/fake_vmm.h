/* SPDX-License-Identifier: MIT */
/*
 * Test double of a hypervisor embedding libapf-host: guest RAM as a byte array with
 * bounds-checked access, an ordered log of every callback the engine makes, and an
 * allocator that can be told to fail. Test code only.
 */
#ifndef APF_TESTS_FAKE_VMM_H
#define APF_TESTS_FAKE_VMM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "apf/host.h"
#include "apf/host_transport.h"

enum fake_ev { FAKE_NP = 1, FAKE_READY, FAKE_SUBMIT, FAKE_KICK, FAKE_RESOLVE };

struct fake_log_entry {
    enum fake_ev ev;
    uint32_t vcpu;
    uint32_t value; /* token (NP, SUBMIT), vector (READY) */
    uint64_t gpa;
};

#define FAKE_LOG_MAX 8192
#define FAKE_MEM_SIZE (1u << 20) /* 1 MiB of guest RAM at gpa 0 */
#define FAKE_AREA(vcpu) (0x1000u + 64u * (vcpu)) /* a default area per vCPU */

struct fake_vmm {
    uint8_t *mem;
    uint64_t mem_size;
    pthread_mutex_t lock; /* protects log */
    struct fake_log_entry log[FAKE_LOG_MAX];
    size_t nlog;
    atomic_uint kicks;
    /* resolve: returns this status, after sleeping resolve_delay_us (pool mode) */
    atomic_int resolve_status;
    atomic_uint resolve_delay_us;
    atomic_uint resolves;         /* finished */
    atomic_uint resolves_started; /* entered (before the gate) */
    /* optional gate: resolve blocks while gate_closed != 0 */
    atomic_int gate_closed;
    struct apf_host_ops ops;
};

void fake_init(struct fake_vmm *f);
void fake_fini(struct fake_vmm *f);
/* A config over this fake (embedder completion if workers == 0). */
struct apf_host_config fake_config(struct fake_vmm *f, uint32_t n_vcpus, uint32_t workers,
                                   const struct apf_host_transport_ops *transport);
/* Create a host and, for each vCPU, set the vector (x86 0xec, arm64 PPI 20), enable APF at
 * FAKE_AREA(vcpu) with the given flags, and consume the initial wake-all (deliver + guest
 * clears + ACK), then clear the log. */
struct apf_host *fake_host_ready(struct fake_vmm *f, const struct apf_host_config *cfg,
                                 uint32_t en_flags);

uint32_t fake_area_flags(struct fake_vmm *f, uint32_t vcpu);
uint32_t fake_area_token(struct fake_vmm *f, uint32_t vcpu);
void fake_area_write(struct fake_vmm *f, uint32_t vcpu, uint32_t flags, uint32_t token);

size_t fake_count(struct fake_vmm *f, enum fake_ev ev, uint32_t vcpu);
/* The n-th (0-based) log entry of kind ev for vcpu, or NULL. */
const struct fake_log_entry *fake_nth(struct fake_vmm *f, enum fake_ev ev, uint32_t vcpu,
                                      size_t n);
/* Index of that entry in the log (for ordering checks), or -1. */
long fake_index(struct fake_vmm *f, enum fake_ev ev, uint32_t vcpu, size_t n);
void fake_log_clear(struct fake_vmm *f);

/* What the engine shows of a vCPU, for "a refused call changed nothing" checks. */
struct fake_engine_snap {
    int enabled;
    struct apf_host_vcpu_state st;
    size_t np, ready, submit;
    uint32_t area_flags, area_token;
};
void fake_engine_snap(struct fake_vmm *f, struct apf_host *h, uint32_t vcpu,
                      struct fake_engine_snap *s);
/* Check assertions naming the caller's `line` and the field that changed. */
void fake_engine_assert_same(int line, const struct fake_engine_snap *before,
                             const struct fake_engine_snap *after);
/* Nothing is queued for delivery: the next entry injects no "page ready". */
void fake_assert_nothing_queued(struct fake_vmm *f, struct apf_host *h, int line, uint32_t vcpu);

/* Guest state of an ordinary user task with interrupts and APIC on. */
#define GS_USER (APF_GS_USER | APF_GS_IRQ_ON | APF_GS_PAGING | APF_GS_IRQCHIP_ON)
#define GS_KERNEL (APF_GS_IRQ_ON | APF_GS_PAGING | APF_GS_IRQCHIP_ON)

/* Counting allocator that fails the n-th allocation (1-based; 0 = never). */
struct counting_alloc {
    struct apf_allocator a;
    atomic_long live_blocks;
    atomic_long live_bytes;
    atomic_long calls;
    long fail_at;
};
void counting_alloc_init(struct counting_alloc *c, long fail_at);

#endif
