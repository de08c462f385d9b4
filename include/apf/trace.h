/* SPDX-License-Identifier: MIT */
/**
 * @file trace.h
 * @brief Protocol trace: one event record both halves emit, a text format, and a checker.
 *
 * The host engine and the guest runtime call an optional hook with an apf_trace_event at
 * every protocol step. A trace (in memory, or as text, one event per line) can be replayed
 * through the checker, which reports the first violated protocol invariant. Any
 * implementation of the protocol can emit this format and use the checker
 * (`apf-trace-check FILE`). Freestanding: part of apf_proto, no libc, no allocation (the
 * checker works in memory supplied by the caller).
 *
 * Text format, one event per line, fields separated by blanks (the writer uses one space):
 * @code
 * <time_ns> <kind> <vcpu> <token:hex> <gpa:hex> <arg>
 * 1200 host.np 0 0x1000 0x7f000 0
 * @endcode
 * Whitespace, the one rule every reader applies (apf_trace_parse(),
 * apf_trace_line_ignored(), `apf-trace-check`): a blank is a space or a tab; fields are
 * separated by one or more blanks, and blanks may come before the first field and after
 * the last; a line ends with "\\n", "\\r\\n" or the end of the input, and any other '\\r' or
 * '\\n' is part of a field (so the line does not parse). A line whose first non-blank
 * character is '#', or that holds only blanks, is a comment: apf_trace_line_ignored()
 * says so, apf_trace_parse() refuses it, readers skip it.
 *
 * Transports and the "page ready" window (format addition with protocol 1.1): a trace
 * records which transport each vCPU uses with a `host.transport` event right after
 * `host.enable` (token = an `APF_TRANSPORT_ID_*` of apf/proto.h, arg = the window):
 * @code
 * 0 host.enable 0 0x0 0x1000 9
 * 0 host.transport 0 0x2 0x0 256
 * @endcode
 * The window is how many "page ready"s may be in flight (sent, not yet released by a
 * `host.ack`): 1 for a one-slot + ACK transport (KVM x86, arm64 slot mode), N for a ready
 * ring of N entries (the guest's consumer index is the ACK; `host.ack` arg = how many
 * entries it advanced by), 0 for a transport without throttle. A trace without
 * `host.transport` events (every trace written before it existed) is checked with window 1,
 * exactly as before. With a ring, `host.ready` comes once per entry (arg = the vector if
 * the entry ended a notified batch, else 0: notification hold-off) and `guest.ready` once
 * per entry consumed, in FIFO order; `guest.ack` once per drain.
 * A restore that turns APF on with a ring (`host.restore`, `host.enable`, `host.transport`)
 * may continue the source's ring (apf-mmio, xen-hvm): entries the source sent are still in
 * flight though this trace never showed them, and the checker accepts `host.ack`s that
 * release up to one window of them beyond the entries sent since.
 * Transport #APF_TRANSPORT_ID_S390 (s390 pfault, window 0) has no broadcast: after its
 * `host.transport` event no wake-all is owed; its guest events carry the kernel's task keys
 * and floating "page ready"s are taken on any vCPU, so they are not matched to the host's.
 */
#ifndef APF_TRACE_H
#define APF_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "apf/export.h"

/** @brief What happened. Host events are emitted by libapf-host, guest events by
 *  libapf-guest. Append-only. */
enum apf_trace_kind {
    /* host */
    APF_TRACE_HOST_NOT_PRESENT = 1, /**< "Not present" injected: token, gpa. */
    APF_TRACE_HOST_SYNC = 2,        /**< Fault handled synchronously: gpa, arg = why. */
    APF_TRACE_HOST_HALT = 3,        /**< vCPU halted: token awaited, gpa, arg = why. */
    APF_TRACE_HOST_DONE = 4,        /**< Work completed (any thread): token, arg = status. */
    /** "Page ready" written: token (or wake-all); once per token posted. arg = the vector
     *  if a notification was raised (for a ring: for the batch this entry ends), 0 if the
     *  entry was published without one (notification hold-off). */
    APF_TRACE_HOST_READY = 5,
    /** Guest ACK received: arg = the "page ready"s it released: slot transports 1 if one was
     *  pending (0: spurious ACK), ring transports how many entries the guest's consumer
     *  index advanced by (emitted when the host reads it, > 0 only). */
    APF_TRACE_HOST_ACK = 6,
    APF_TRACE_HOST_ENABLE = 7,      /**< APF turned on: gpa = area, arg = flags. */
    APF_TRACE_HOST_DISABLE = 8,     /**< APF turned off: arg = outstanding faults dropped. */
    APF_TRACE_HOST_DROP = 9,        /**< A completion discarded (work of a disabled vCPU). */
    APF_TRACE_HOST_RESET = 10,      /**< vCPU reset. */
    APF_TRACE_HOST_RESTORE = 11,    /**< vCPU state restored (migration): gpa = area, arg = 1 if
                                         APF is on. */
    /** The vCPU's transport, emitted when APF is enabled (right after #APF_TRACE_HOST_ENABLE):
     *  token = an `APF_TRANSPORT_ID_*` (apf/proto.h), arg = the "page ready" window
     *  (#APF_TRACE_WINDOW_UNTHROTTLED, #APF_TRACE_WINDOW_SLOT, or the ring's entries). */
    APF_TRACE_HOST_TRANSPORT = 12,
    /* guest */
    APF_TRACE_GUEST_NOT_PRESENT = 32, /**< Guest took "not present": token. */
    APF_TRACE_GUEST_READY = 33,       /**< Guest took a "page ready" (slot cleared, or one ring
                                           entry consumed): token. */
    APF_TRACE_GUEST_WAKE = 34,        /**< Guest woke a sleeper: token; arg = count. */
    APF_TRACE_GUEST_ACK = 35,         /**< Guest ACKed (slot) or finished a drain (ring):
                                           arg = error code, 0. */
    APF_TRACE_GUEST_SLEEP = 36,       /**< Guest task blocked on token (arg 1 = halted CPU). */
    APF_TRACE_GUEST_ENABLE = 37,      /**< Guest enabled APF on a CPU: gpa = area. */
    APF_TRACE_GUEST_DISABLE = 38      /**< Guest disabled APF on a CPU. */
};

/** @brief Reasons carried in apf_trace_event::arg of #APF_TRACE_HOST_SYNC and _HALT. */
enum apf_trace_why {
    APF_WHY_DISABLED = 1,     /**< APF is off for this vCPU. */
    APF_WHY_IRQS_OFF = 2,     /**< Guest interrupts disabled: not even a halt can be woken. */
    APF_WHY_EXC_PENDING = 3,  /**< An event is pending injection. */
    APF_WHY_LIMIT = 4,        /**< Per-vCPU outstanding limit reached. */
    APF_WHY_UNDELIVERABLE = 5,/**< "Not present" cannot be delivered now (CPL 0, paging...). */
    APF_WHY_DEDUP = 6,        /**< The frame already has work in flight. */
    APF_WHY_RETRY_FAILED = 7  /**< Retry of an access whose async resolve failed. */
};

/**
 * @brief One protocol event. Fixed-width fields only; 32 bytes.
 */
struct apf_trace_event {
    uint64_t time_ns; /**< Monotonic time, or 0 where the emitter has no clock. */
    uint64_t gpa;     /**< Guest-physical address, where meaningful. */
    uint32_t vcpu;    /**< vCPU (host) or CPU (guest) index. */
    uint32_t token;   /**< Token, where meaningful. */
    uint32_t kind;    /**< An #apf_trace_kind. */
    int32_t arg;      /**< Kind-specific argument (see #apf_trace_kind). */
};

/**
 * @brief Trace hook. Called synchronously at each event; must not call back into libapf.
 * Host hooks are called from vCPU threads and, for #APF_TRACE_HOST_DONE, from workers or
 * whichever thread completes work: a hook shared by several threads must be thread-safe.
 * @param ctx The context registered with the hook.
 * @param ev The event; valid only during the call.
 */
typedef void (*apf_trace_fn)(void *ctx, const struct apf_trace_event *ev);

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief The short name of a kind as used in the text format, e.g. "host.np".
 * @param kind An #apf_trace_kind.
 * @return A static string; "unknown" for an unknown kind.
 */
APF_API const char *apf_trace_kind_name(uint32_t kind);

/**
 * @brief Format an event as one line of text (without newline).
 * Context: any; freestanding (no snprintf).
 * @param ev The event.
 * @param buf Output buffer.
 * @param len Size of @p buf; 96 bytes always suffice.
 * @return The length written (excluding the NUL), or APF_ENOSPC if @p buf is too small
 *         (then @p buf holds an empty string if @p len > 0).
 */
APF_API int apf_trace_format(const struct apf_trace_event *ev, char *buf, size_t len);

/**
 * @brief Parse one line of the text format.
 * Context: any; freestanding.
 * @param line The line (a trailing "\\n" or "\\r\\n" is allowed; see "Whitespace" above).
 * @param len Its length in bytes.
 * @param[out] ev The event; unchanged on error.
 * @return 0 on success; APF_EINVAL on a malformed line (a comment line included), an
 *         unknown kind name, or a NULL argument.
 */
APF_API int apf_trace_parse(const char *line, size_t len, struct apf_trace_event *ev);

/**
 * @brief Whether a line of the text format is a comment or blank, to be skipped (the
 * "Whitespace" rule above: only blanks, or '#' as the first non-blank character).
 * Context: any; freestanding.
 * @param line The line (its "\\n" or "\\r\\n" line end allowed); NULL counts as blank.
 * @param len Its length in bytes.
 * @return 1 if readers skip the line, 0 if it must parse as an event.
 */
APF_API int apf_trace_line_ignored(const char *line, size_t len);

/** @brief Opaque checker state, placed by the caller in memory of apf_trace_checker_size(). */
struct apf_trace_checker;

/** @name "Page ready" windows (apf_trace_event::arg of #APF_TRACE_HOST_TRANSPORT)
 *  @{ */
#define APF_TRACE_WINDOW_UNTHROTTLED 0u /**< No throttle: any number in flight (s390-style). */
#define APF_TRACE_WINDOW_SLOT 1u        /**< One slot + ACK: the default of every vCPU. */
/** Queue size per vCPU of apf_trace_checker_size() / _init(): any ready ring
 *  (#APF_RING_MAX_ENTRIES), or the outstanding limit if larger. */
#define APF_TRACE_DEFAULT_MAX_WINDOW 512u
/** apf_trace_checker_set_window(): every vCPU. */
#define APF_TRACE_ALL_VCPUS 0xffffffffu
/** @} */

/**
 * @brief Bytes of memory a checker needs; the window queues hold
 * max(#APF_TRACE_DEFAULT_MAX_WINDOW, @p max_outstanding) tokens per vCPU (see
 * apf_trace_checker_size_windowed()). Since the window queues were added the size is larger
 * for the same arguments: always size the memory with this function.
 * @param n_vcpus Number of vCPUs in the trace (1..65536).
 * @param max_outstanding Most faults a vCPU can have outstanding at once (1..65536).
 * @return The size in bytes, or 0 if an argument is out of range or the size does not fit
 *         in a size_t.
 */
APF_API size_t apf_trace_checker_size(uint32_t n_vcpus, uint32_t max_outstanding);

/**
 * @brief Bytes of memory a checker with window queues of @p max_window tokens per vCPU needs.
 *
 * The queue holds, per vCPU, the "page ready" tokens the host sent and the guest has not
 * consumed yet (for the FIFO check of guest.ready). A window W > 0 needs W entries; an
 * unthrottled vCPU (window 0) has no bound of its own, so the queue is the bound: a trace
 * with guest events and more unconsumed "page ready"s than @p max_window is refused with
 * APF_ENOSPC (not a protocol violation: the checker is too small).
 * @param n_vcpus Number of vCPUs in the trace (1..65536).
 * @param max_outstanding Most faults a vCPU can have outstanding at once (1..65536).
 * @param max_window Queue entries per vCPU (1..65536): the largest window used, or the
 *        bound for unthrottled transports.
 * @return The size in bytes, or 0 if an argument is out of range or the size does not fit
 *         in a size_t (32-bit targets).
 */
APF_API size_t apf_trace_checker_size_windowed(uint32_t n_vcpus, uint32_t max_outstanding,
                                               uint32_t max_window);

/**
 * @brief Initialise a checker in caller-provided memory (window queues of
 * max(#APF_TRACE_DEFAULT_MAX_WINDOW, @p max_outstanding) tokens). Every vCPU starts with
 * window #APF_TRACE_WINDOW_SLOT.
 * @param mem At least apf_trace_checker_size() bytes, 8-byte aligned.
 * @param size Size of @p mem.
 * @param n_vcpus As given to apf_trace_checker_size().
 * @param max_outstanding As given to apf_trace_checker_size().
 * @return The checker (inside @p mem), or NULL if @p mem is too small or misaligned or an
 *         argument is out of range.
 */
APF_API struct apf_trace_checker *apf_trace_checker_init(void *mem, size_t size, uint32_t n_vcpus,
                                                         uint32_t max_outstanding);

/**
 * @brief Initialise a checker with window queues of @p max_window tokens per vCPU.
 * Every vCPU starts with window #APF_TRACE_WINDOW_SLOT.
 * @param mem At least apf_trace_checker_size_windowed() bytes, 8-byte aligned.
 * @param size Size of @p mem.
 * @param n_vcpus As given to apf_trace_checker_size_windowed().
 * @param max_outstanding As given to apf_trace_checker_size_windowed().
 * @param max_window As given to apf_trace_checker_size_windowed().
 * @return The checker (inside @p mem), or NULL if @p mem is too small or misaligned or an
 *         argument is out of range.
 */
APF_API struct apf_trace_checker *apf_trace_checker_init_windowed(void *mem, size_t size,
                                                                  uint32_t n_vcpus,
                                                                  uint32_t max_outstanding,
                                                                  uint32_t max_window);

/**
 * @brief Fix the "page ready" window of one vCPU or of all, overriding the default (1) and
 * any #APF_TRACE_HOST_TRANSPORT event fed later for that vCPU (such events are then
 * accepted but do not change the window). Use it for traces of emitters that do not record
 * their transport, or to check a trace against another window than the recorded one.
 * Call it before feeding the vCPU's events; called mid-trace it applies from the next event.
 * @param c The checker.
 * @param vcpu A vCPU index, or #APF_TRACE_ALL_VCPUS.
 * @param window #APF_TRACE_WINDOW_UNTHROTTLED, #APF_TRACE_WINDOW_SLOT, or N (a ring of N).
 * @return 0; APF_EINVAL if @p vcpu is out of range.
 */
APF_API int apf_trace_checker_set_window(struct apf_trace_checker *c, uint32_t vcpu,
                                         uint32_t window);

/**
 * @brief The window a vCPU is checked with now (the default, the last
 * #APF_TRACE_HOST_TRANSPORT fed for it, or the one set by apf_trace_checker_set_window()).
 * @param c The checker.
 * @param vcpu A vCPU index.
 * @return The window (0 = unthrottled); 0 also if @p vcpu is out of range.
 */
APF_API uint32_t apf_trace_checker_window(const struct apf_trace_checker *c, uint32_t vcpu);

/**
 * @brief Feed the next event, in the order the events happened.
 *
 * Invariants checked (per vCPU, with its window W: see #APF_TRACE_HOST_TRANSPORT and
 * apf_trace_checker_set_window()), each reported with the offending event:
 *  - a "not present" token is neither 0 nor 0xffffffff and not already outstanding;
 *  - W > 0: at most W "page ready"s are in flight (sent, not released by host.ack); W = 1:
 *    the next is sent only after the guest ACKed ("second page ready before the guest ACKed
 *    the first"); W = 0: no bound;
 *  - a host.ack releases no more "page ready"s than are in flight (its arg; a corrupt,
 *    overrun or rewound consumer index shows up here); with W = 1 an ACK frees the slot
 *    whatever its arg (0 or 1), as before arg counted;
 *  - when guest events are present, W > 0: at most W sent "page ready"s not yet consumed by
 *    the guest (guest.ready) when the next is written (W = 1: the slot);
 *  - a "page ready" names an outstanding token whose "not present" was delivered, or is a
 *    wake-all; no token is answered twice; no "page ready" for a token whose "not present"
 *    preceded a wake-all (the wake-all answered it);
 *  - after APF is (re-)enabled, a wake-all is delivered before any other "page ready";
 *  - nothing is delivered to a vCPU with APF off;
 *  - guest side: guest.ready tokens are the host's sent tokens, in the order sent (FIFO;
 *    W = 1: the one in the slot); a guest "not present" is one the host sent.
 * After the first violation the checker stays failed and ignores further events.
 * @param c The checker.
 * @param ev The event.
 * @return 0 if the trace is still consistent; APF_EPROTO at (and after) the first violation;
 *         APF_EINVAL if @p ev names a vCPU out of range (the event is not counted);
 *         APF_ENOSPC (at and after it, like a violation) if more tokens are outstanding, or
 *         more "page ready"s unconsumed by the guest, than the checker was sized for.
 */
APF_API int apf_trace_checker_feed(struct apf_trace_checker *c, const struct apf_trace_event *ev);

/**
 * @brief End of trace: in addition, every delivered "not present" must have been answered
 * by exactly one "page ready" or covered by a wake-all or a disable.
 * @param c The checker.
 * @return 0 if the whole trace is consistent, APF_EPROTO otherwise (or the APF_ENOSPC of
 *         an earlier apf_trace_checker_feed()).
 */
APF_API int apf_trace_checker_finish(struct apf_trace_checker *c);

/**
 * @brief A description of the first violation.
 * @param c The checker.
 * @return A string inside the checker's memory ("" while there is none).
 */
APF_API const char *apf_trace_checker_error(const struct apf_trace_checker *c);

/**
 * @brief Number of events fed so far (the index of the offending event, after a violation).
 * @param c The checker.
 * @return The count.
 */
APF_API uint64_t apf_trace_checker_events(const struct apf_trace_checker *c);

#ifdef __cplusplus
}
#endif

#endif /* APF_TRACE_H */
