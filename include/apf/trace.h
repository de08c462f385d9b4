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
 * Text format, one event per line, fields separated by single spaces:
 * @code
 * <time_ns> <kind> <vcpu> <token:hex> <gpa:hex> <arg>
 * 1200 host.np 0 0x1000 0x7f000 0
 * @endcode
 * Lines starting with '#' and empty lines are ignored by the parser's users.
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
    APF_TRACE_HOST_READY = 5,       /**< "Page ready" written and raised: token (or wake-all). */
    APF_TRACE_HOST_ACK = 6,         /**< Guest ACK received: arg = 1 if a ready was pending. */
    APF_TRACE_HOST_ENABLE = 7,      /**< APF turned on: gpa = area, arg = flags. */
    APF_TRACE_HOST_DISABLE = 8,     /**< APF turned off: arg = outstanding faults dropped. */
    APF_TRACE_HOST_DROP = 9,        /**< A completion discarded (work of a disabled vCPU). */
    APF_TRACE_HOST_RESET = 10,      /**< vCPU reset. */
    APF_TRACE_HOST_RESTORE = 11,    /**< vCPU state restored (migration). */
    /* guest */
    APF_TRACE_GUEST_NOT_PRESENT = 32, /**< Guest took "not present": token. */
    APF_TRACE_GUEST_READY = 33,       /**< Guest took "page ready" and cleared the slot. */
    APF_TRACE_GUEST_WAKE = 34,        /**< Guest woke a sleeper: token; arg = count. */
    APF_TRACE_GUEST_ACK = 35,         /**< Guest ACKed a "page ready". */
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
 * @param line The line (a trailing newline is allowed).
 * @param len Its length in bytes.
 * @param[out] ev The event; unchanged on error.
 * @return 0 on success; APF_EINVAL on a malformed line or unknown kind name.
 */
APF_API int apf_trace_parse(const char *line, size_t len, struct apf_trace_event *ev);

/** @brief Opaque checker state, placed by the caller in memory of apf_trace_checker_size(). */
struct apf_trace_checker;

/**
 * @brief Bytes of memory a checker needs.
 * @param n_vcpus Number of vCPUs in the trace (1..65536).
 * @param max_outstanding Most faults a vCPU can have outstanding at once (1..65536).
 * @return The size in bytes, or 0 if an argument is out of range.
 */
APF_API size_t apf_trace_checker_size(uint32_t n_vcpus, uint32_t max_outstanding);

/**
 * @brief Initialise a checker in caller-provided memory.
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
 * @brief Feed the next event, in the order the events happened.
 *
 * Invariants checked (per vCPU), each reported with the offending event:
 *  - a "not present" token is neither 0 nor 0xffffffff and not already outstanding;
 *  - at most one "page ready" is in flight: the next is sent only after the guest ACKed
 *    (host.ack), and, when guest events are present, after the guest consumed the previous
 *    one (guest.ready);
 *  - a "page ready" names an outstanding token whose "not present" was delivered, or is a
 *    wake-all; no token is answered twice;
 *  - after APF is (re-)enabled, a wake-all is delivered before any other "page ready";
 *  - nothing is delivered to a vCPU with APF off;
 *  - guest side: a guest "page ready" token equals the one the host sent.
 * After the first violation the checker stays failed and ignores further events.
 * @param c The checker.
 * @param ev The event.
 * @return 0 if the trace is still consistent; APF_EPROTO at (and after) the first violation;
 *         APF_EINVAL if @p ev names a vCPU out of range; APF_ENOSPC if more tokens are
 *         outstanding than the checker was sized for.
 */
APF_API int apf_trace_checker_feed(struct apf_trace_checker *c, const struct apf_trace_event *ev);

/**
 * @brief End of trace: in addition, every delivered "not present" must have been answered
 * by exactly one "page ready" or covered by a wake-all or a disable.
 * @param c The checker.
 * @return 0 if the whole trace is consistent, APF_EPROTO otherwise.
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
