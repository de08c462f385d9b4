/* SPDX-License-Identifier: MIT */
/*
 * The host side shared by the frontend and restore fuzz targets: an engine over a small
 * guest RAM whose every byte the input controls, the embedder's completion (n_workers = 0:
 * submitted tokens are completed when the input says, each exactly once), a counting
 * allocator (no leak at the end), and the trace checker fed online with every host event
 * (never two "page ready"s in flight on a slot, no ring overrun, no token 0/~0 in "not
 * present", "page ready" only for an outstanding token...).
 */
#ifndef APF_TESTS_FUZZ_HOST_ENV_H
#define APF_TESTS_FUZZ_HOST_ENV_H

#include "apf/host.h"
#include "apf/host_transport.h"
#include "apf/trace.h"
#include "fuzz.h"

#define FZ_RAM (64u * 1024u) /* guest RAM at gpa 0 */
#define FZ_VCPUS 2u
#define FZ_PENDING 256u

struct fz_host {
    uint8_t ram[FZ_RAM];
    struct apf_host *h;
    const struct apf_host_transport_ops *tp;
    struct apf_host_ops ops;
    struct apf_allocator alloc;
    long live_blocks;
    /* submitted and not yet completed (vcpu, token) */
    uint32_t pend_vcpu[FZ_PENDING], pend_token[FZ_PENDING];
    uint32_t n_pend;
    uint32_t last_np[FZ_VCPUS];
    uint64_t nps, readies;
    /* A guest page (index gpa >> 12) whose writes the accessor refuses though its reads
     * succeed: outside apf_host_ops' contract (both refuse exactly what is not RAM), to
     * drive the defensive paths (a frontend's write-back, a ring that cannot start); 0 =
     * none. Set by a harness after fz_host_init(). */
    uint32_t ro_page;
    struct apf_trace_checker *chk;
    void *chk_mem;
    /* Optional: every host event, after the checker took it (a harness's own model). Set
     * after fz_host_init(); must not call back into libapf. */
    void (*on_event)(void *ctx, const struct apf_trace_event *ev);
    void *on_event_ctx;
};

/* Creates the engine (transport, max_outstanding 1..8 and fallback from the input). */
void fz_host_init(struct fz_host *e, const struct apf_host_transport_ops *tp, struct fz *f);
/* Completes what is still pending, destroys the engine, checks that exactly
 * `frontend_blocks` blocks are still allocated (a frontend not destroyed yet: it may
 * outlive its engine), 0 after the frontend is gone. */
void fz_host_fini(struct fz_host *e, long frontend_blocks);
/* One step of the engine's own entry points, chosen by the input (fault, entry, ACK,
 * complete, disable, reset, save/restore, guest writes to its RAM). */
void fz_host_engine_step(struct fz_host *e, struct fz *f);
/* Completes everything submitted and not yet completed (success, any order). */
void fz_host_complete_all(struct fz_host *e);
/* A gpa the input chooses: mostly inside RAM, near an area or a ring, sometimes outside. */
uint64_t fz_gpa(struct fz *f);
/* Engine state of a vCPU (apf_host_vcpu_save) for "refused changes nothing" checks. */
struct apf_host_vcpu_state fz_save(struct fz_host *e, uint32_t vcpu);
void fz_assert_same_state(const struct apf_host_vcpu_state *a, const struct apf_host_vcpu_state *b,
                          const char *what);

#endif
