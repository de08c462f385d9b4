/* SPDX-License-Identifier: MIT */
/**
 * @file host_transport.h
 * @brief libapf-host implementer API: what a transport is, and what the engine gives it.
 *
 * A transport is the guest-visible wire of one hypervisor: how "not present" and "page
 * ready" travel (the notification plane) and how the guest discovers, enables and ACKs (the
 * control plane). The engine (apf/host.h) keeps the protocol rules - tokens, dedup, the
 * outstanding limit, "not present" before the work, "ready" only for a delivered "not
 * present", the kick rule, wake-all - and never branches on a transport. It calls the
 * transport's const ops table, modelled on Linux's `kvm_arch_async_page_not_present`,
 * `kvm_arch_can_dequeue_async_page_present`, `kvm_arch_async_page_present` and
 * `kvm_arch_async_page_present_queued` hooks:
 *
 * | step                         | op                               | slot + ACK (KVM x86)        | ready ring                         |
 * |------------------------------|----------------------------------|-----------------------------|------------------------------------|
 * | may "not present" go now     | apf_host_transport_ops::np_deliverable | x86: paging on        | as its control plane says          |
 * | post "not present"           | apf_host_transport_ops::np_post  | area.flags = 1 (CR2 = token) | as the slot                       |
 * | how many "ready" may go now  | apf_host_transport_ops::ready_room | 1 if ACKed and token == 0 | free entries (consumer index read) |
 * | post one "ready"             | apf_host_transport_ops::ready_post | area.token = T            | entries[prod++] = T                |
 * | after the batch              | apf_host_transport_ops::ready_notify | raise the vector        | publish prod; raise only if the guest's event index is in the window |
 * | ACK                          | apf_host_vcpu_ack()              | MSR / IRQ_ACK               | none: the consumer index           |
 *
 * A frontend (the control plane: MSRs, SMCCC calls, hypercalls, an MMIO window) decodes the
 * guest's requests into apf_host_vcpu_enable(), apf_host_vcpu_set_vector(),
 * apf_host_vcpu_ack() ... and is written against the public headers only (this one,
 * apf/host.h, apf/proto.h). Adding a transport is one file pair (header + source) plus
 * tests: see src/host/kvm_x86.c (slot + ACK) and src/host/kvm_arm64.c (slot, or the ring).
 *
 * Calling contexts: every op runs in the vCPU context of apf_host_chan::vcpu (apf/host.h),
 * except the ones marked "create" (none today). Ops must not call back into the engine's
 * vCPU entry points; they may call the functions of this header.
 */
#ifndef APF_HOST_TRANSPORT_H
#define APF_HOST_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "apf/error.h"
#include "apf/export.h"
#include "apf/proto.h"

#ifdef __cplusplus
extern "C" {
#endif

struct apf_host;
struct apf_allocator;

/**
 * @brief One vCPU's channel as the engine keeps it and a transport sees it.
 * The engine owns the fields above `priv`; a transport reads them and writes only `window`
 * and `needs_ack` (in apf_host_transport_ops::enabled) and its private block.
 */
struct apf_host_chan {
    struct apf_host *host; /**< The engine. */
    uint32_t vcpu;         /**< vCPU id. */
    uint32_t enabled;      /**< 1 while APF is on. */
    uint64_t area_gpa;     /**< Shared area (apf_host_vcpu_enable()), when enabled. */
    uint32_t flags;        /**< APF_EN_* bits in force (with #APF_EN_ENABLED), when enabled. */
    uint32_t vector;       /**< "Page ready" vector / PPI; 0 = not set. */
    /** "Page ready"s that may be in flight at once, as recorded in traces: 1 for a slot, the
     *  ring size for a ring, 0 for no throttle. Set by apf_host_transport_ops::enabled
     *  (default: apf_host_transport_ops::window). */
    uint32_t window;
    /** 1 if "page ready" waits for an explicit ACK (apf_host_vcpu_ack()) after each batch:
     *  after apf_host_transport_ops::ready_notify the engine asks for no more room until the
     *  ACK, and does not kick a vCPU whose ACK is outstanding (the ACK exit brings it back).
     *  0: the engine asks for room at every delivery point. Set by
     *  apf_host_transport_ops::enabled (default: #APF_HOST_TRANSPORT_NEEDS_ACK in caps). */
    uint32_t needs_ack;
    /** The embedder's bounds-checked guest-memory accessors (apf_host_ops::read_guest and
     *  apf_host_ops::write_guest) and their context: use apf_host_chan_read() and
     *  apf_host_chan_write(). */
    int (*read_guest)(void *ctx, uint64_t gpa, void *buf, uint32_t len);
    int (*write_guest)(void *ctx, uint64_t gpa, const void *buf, uint32_t len); /**< See above. */
    void *guest_ctx; /**< See above. */
    /** The transport's per-vCPU block: apf_host_transport_ops::priv_size bytes, 64-byte
     *  aligned, zeroed at create and before apf_host_transport_ops::enabled. */
    void *priv;
};

/** @name Transport capabilities (apf_host_transport_ops::caps)
 *  @{ */
/** "Page ready" is throttled by an explicit ACK (MSR write, IRQ_ACK) by default: the
 *  initial value of apf_host_chan::needs_ack. */
#define APF_HOST_TRANSPORT_NEEDS_ACK (1u << 0)
/** The area address (apf_host_chan::area_gpa) needs only 8-byte alignment, not
 *  #APF_AREA_ALIGN (s390: it is the guest's token address, a doubleword). */
#define APF_HOST_TRANSPORT_AREA_ALIGN_8 (1u << 1)
/** The wire has no broadcast "page ready" (s390): enabling or restoring queues no wake-all
 *  (the transport could not deliver it, and the engine would drop the completions it
 *  "covers"). The frontend then answers every delivered "not present" itself. */
#define APF_HOST_TRANSPORT_NO_WAKE_ALL (1u << 2)
/** @} */

/**
 * @brief A transport's notification plane (const table; `tctx` =
 * apf_host_config::transport_ctx first in every op). All ops are required unless marked
 * optional.
 */
struct apf_host_transport_ops {
    const char *name; /**< Short name, e.g. "kvm-x86". */
    uint32_t id;      /**< An APF_TRANSPORT_ID_* value (recorded in traces). */
    uint32_t caps;    /**< APF_HOST_TRANSPORT_* bits. */
    /** APF_EN_* bits apf_host_vcpu_enable() accepts (#APF_EN_ENABLED included). */
    uint32_t valid_flags;
    /** Default apf_host_chan::window. */
    uint32_t window;
    /** Bytes of per-vCPU private state (apf_host_chan::priv); 0 for none; at most 4096. */
    uint32_t priv_size;
    uint32_t reserved; /**< 0. */
    /** Is @p vector a valid "page ready" vector / notification? 0 or APF_EINVAL. */
    int (*vector_check)(void *tctx, uint32_t vector);
    /** Validate the area before APF goes on (no side effects): 0, APF_EINVAL, APF_EFAULT.
     *  Flags, alignment and the vector were checked by the engine already. */
    int (*enable_check)(void *tctx, const struct apf_host_chan *c, uint64_t area_gpa,
                        uint32_t flags);
    /** Optional: APF just went on (after any drop, before the wake-all is queued). */
    void (*enabled)(void *tctx, struct apf_host_chan *c);
    /** Can "not present" be delivered now, as far as the wire goes? (The engine has
     *  already checked the generic preconditions: masked, privilege, nesting.) 1 or 0. */
    int (*np_deliverable)(void *tctx, const struct apf_host_chan *c, uint32_t guest_state);
    /** Write "not present" for @p token where the guest will find it; the engine then
     *  calls apf_host_ops::inject_not_present. 0, or an error (cannot deliver now: nothing
     *  was written). */
    int (*np_post)(void *tctx, struct apf_host_chan *c, uint32_t token);
    /** How many "page ready" may be posted now (the throttle): 0..UINT32_MAX. Called only
     *  while no ACK is outstanding (#APF_HOST_TRANSPORT_NEEDS_ACK) and with
     *  #APF_GS_IRQCHIP_ON, APF on and the vector set. A ring reads the guest's consumer
     *  index here (untrusted: see apf_host_ring_room()). */
    uint32_t (*ready_room)(void *tctx, struct apf_host_chan *c, uint32_t guest_state);
    /** Post one "page ready" (a token or #APF_TOKEN_WAKE_ALL). 0, or an error (nothing
     *  posted: the engine keeps the completion queued and stops the batch). */
    int (*ready_post)(void *tctx, struct apf_host_chan *c, uint32_t token);
    /** The batch of @p posted (>= 1) entries is complete: publish it. Returns 1 if the
     *  guest must be notified (the engine then calls apf_host_ops::inject_ready with the
     *  vector), 0 if the notification is held off. */
    int (*ready_notify)(void *tctx, struct apf_host_chan *c, uint32_t posted);
    /** Optional: APF went off or the vCPU was reset: forget the channel's state. */
    void (*reset)(void *tctx, struct apf_host_chan *c);
};

/* ---- what the engine gives a transport or a frontend -------------------------------------- */

/**
 * @brief The channel of vCPU @p vcpu (for frontends: vector, flags, private block).
 * Context: vCPU context of @p vcpu.
 * @param h Engine.
 * @param vcpu vCPU id.
 * @return The channel, or NULL for NULL @p h or an unknown vCPU.
 */
APF_API struct apf_host_chan *apf_host_chan_get(struct apf_host *h, uint32_t vcpu);

/**
 * @brief The transport the engine was created with, and its context.
 * @param h Engine.
 * @param[out] tctx If not NULL: apf_host_config::transport_ctx.
 * @return The ops table, or NULL for NULL @p h.
 */
APF_API const struct apf_host_transport_ops *apf_host_transport(const struct apf_host *h,
                                                                void **tctx);

/**
 * @brief Read guest memory through the embedder's bounds-checked accessor.
 * @param c Channel.
 * @param gpa Guest-physical address.
 * @param[out] buf Destination.
 * @param len Bytes.
 * @return 0 or APF_EFAULT.
 */
static inline int apf_host_chan_read(const struct apf_host_chan *c, uint64_t gpa, void *buf,
                                     uint32_t len)
{
    return c->read_guest(c->guest_ctx, gpa, buf, len) == 0 ? 0 : APF_EFAULT;
}

/**
 * @brief Write guest memory through the embedder's bounds-checked accessor.
 * @param c Channel.
 * @param gpa Guest-physical address.
 * @param buf Source.
 * @param len Bytes.
 * @return 0 or APF_EFAULT.
 */
static inline int apf_host_chan_write(const struct apf_host_chan *c, uint64_t gpa,
                                      const void *buf, uint32_t len)
{
    return c->write_guest(c->guest_ctx, gpa, buf, len) == 0 ? 0 : APF_EFAULT;
}

/**
 * @brief Rule: "not present" through the area (reason and token, as arm64, xen-hvm and
 * apf-mmio carry it): written only when the guest has consumed the previous one (reason 0),
 * so an unread event is never overwritten. A transport whose area also carries "page
 * ready" (arm64 slot mode) checks more: see src/host/kvm_arm64.c.
 * @param c Channel (the area is apf_host_chan::area_gpa).
 * @param token The token.
 * @return 0; APF_EBUSY (previous event unconsumed: nothing written); APF_EFAULT.
 */
static inline int apf_host_area_post_np(const struct apf_host_chan *c, uint32_t token)
{
    uint32_t area[2];
    int err = apf_host_chan_read(c, c->area_gpa, area, sizeof(area));
    if (err)
        return err;
    if (area[0] != APF_REASON_NONE)
        return APF_EBUSY;
    area[0] = APF_REASON_NOT_PRESENT;
    area[1] = token;
    return apf_host_chan_write(c, c->area_gpa, area, sizeof(area));
}

/**
 * @brief The guest released @p n in-flight "page ready"s without an ACK call (a ring's
 * consumer index moved): counted in apf_host_vcpu_stats::acks and traced as host.ack with
 * arg = @p n. Context: vCPU context (from apf_host_transport_ops::ready_room).
 * @param c Channel.
 * @param n Entries released (> 0).
 */
APF_API void apf_host_chan_released(struct apf_host_chan *c, uint32_t n);

/**
 * @brief A guest-written value was refused (counted in apf_host_vcpu_stats::bad_guest_values).
 * @param c Channel.
 */
APF_API void apf_host_chan_bad_value(struct apf_host_chan *c);

/**
 * @brief Zeroed memory from the engine's allocator (apf_host_config::alloc), 64-byte
 * aligned, for a frontend's own state.
 * @param h Engine.
 * @param size Bytes.
 * @return The block, or NULL.
 */
APF_API void *apf_host_zalloc(struct apf_host *h, size_t size);

/**
 * @brief Free a block of apf_host_zalloc().
 * @param h Engine.
 * @param p Block, or NULL.
 * @param size Its size as allocated.
 */
APF_API void apf_host_free(struct apf_host *h, void *p, size_t size);

/**
 * @brief A copy of the engine's allocator (apf_host_config::alloc, or the hosted library's
 * default), so that a frontend can free what apf_host_zalloc() gave it without the engine:
 * `out->free(out->ctx, p, size)` (the engine may be destroyed first).
 * @param h Engine.
 * @param[out] out The allocator.
 * @return 0; APF_EINVAL for a NULL argument.
 */
APF_API int apf_host_allocator(const struct apf_host *h, struct apf_allocator *out);

/**
 * @brief Everything apf_host_vcpu_enable() would check, without changing anything (for a
 * frontend's all-or-nothing restore).
 * @param h Engine.
 * @param vcpu vCPU id.
 * @param area_gpa Area address.
 * @param flags APF_EN_* bits.
 * @param vector The vector that will be in force.
 * @return 0; APF_EINVAL; APF_EFAULT.
 */
APF_API int apf_host_vcpu_enable_check(struct apf_host *h, uint32_t vcpu, uint64_t area_gpa,
                                       uint32_t flags, uint32_t vector);

/* ---- the ready ring, producer side (protocol 1.1; wire: struct apf_ring in apf/proto.h) --- */

/**
 * @brief Producer state of one ring, kept in a transport's per-vCPU block. The host's own
 * copies of the indices are the truth; the guest's words are inputs.
 */
struct apf_host_ring {
    uint64_t gpa;        /**< The ring page; 0 = no ring. */
    uint32_t size;       /**< Entries (a power of two). */
    uint32_t prod;       /**< Next entry to write (free-running). */
    uint32_t published;  /**< `prod` as last published to the guest. */
    uint32_t cons;       /**< Consumer index as last accepted (free-running). */
    uint64_t bad_cons;   /**< Consumer-index values refused (rewind, past prod). */
};

/**
 * @brief Validate a ring registration without side effects: page-aligned guest memory,
 * @p size a power of two in [#APF_RING_MIN_ENTRIES, #APF_RING_MAX_ENTRIES].
 * @param c Channel.
 * @param gpa Ring page.
 * @param size Entries.
 * @return 0; APF_EINVAL (alignment, size); APF_EFAULT (not guest memory).
 */
APF_API int apf_host_ring_check(const struct apf_host_chan *c, uint64_t gpa, uint32_t size);

/**
 * @brief Start a ring (after apf_host_ring_check()), empty at the guest's own consumer
 * index: reads `cons` from the page, writes prod = cons, size and event = cons + 1 (notify on
 * the first entry), and resets @p r to that index. A fresh registration (a cleared page)
 * starts at 0; a restore after migration continues where the guest is.
 * @param r Producer state.
 * @param c Channel.
 * @param gpa Ring page.
 * @param size Entries.
 * @return 0 or APF_EFAULT.
 */
APF_API int apf_host_ring_start(struct apf_host_ring *r, const struct apf_host_chan *c,
                                uint64_t gpa, uint32_t size);

/**
 * @brief Free entries now. Reads the guest's consumer index and accepts it only if it
 * moved forward and not past what was published (anything else - a rewind, an overrun, a
 * huge jump - is ignored and counted: the entries stay unconsumed, nothing is lost or
 * overwritten). Reports what the guest consumed with apf_host_chan_released().
 * @param r Producer state.
 * @param c Channel.
 * @return Entries that may be posted (0 if the ring is full or unreadable).
 */
APF_API uint32_t apf_host_ring_room(struct apf_host_ring *r, struct apf_host_chan *c);

/**
 * @brief Write one entry (not yet visible: see apf_host_ring_publish()).
 * @param r Producer state.
 * @param c Channel.
 * @param token The token.
 * @return 0; APF_ENOSPC (ring full); APF_EFAULT.
 */
APF_API int apf_host_ring_post(struct apf_host_ring *r, const struct apf_host_chan *c,
                               uint32_t token);

/**
 * @brief Publish the entries posted since the last publish and decide the notification:
 * write barrier, store prod, full barrier, read the guest's event index.
 * @param r Producer state.
 * @param c Channel.
 * @return 1 if the guest must be notified, 0 if it is held off (or nothing was new).
 */
APF_API int apf_host_ring_publish(struct apf_host_ring *r, const struct apf_host_chan *c);

#ifdef __cplusplus
}
#endif

#endif /* APF_HOST_TRANSPORT_H */
