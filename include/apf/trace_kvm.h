/* SPDX-License-Identifier: MIT */
/**
 * @file trace_kvm.h
 * @brief Linux KVM's own traces as protocol traces: a parser for the text of KVM's async
 * page fault tracepoints and a translator onto apf_trace_event, with KVM-level checks.
 *
 * Linux KVM (x86) is the deployed implementation of the host side of the protocol. Its
 * tracepoints, as printed by tracefs (`/sys/kernel/tracing/trace`) or `trace-cmd report`,
 * are read line by line with apf_trace_kvm_parse() and turned into libapf's protocol events
 * with an apf_trace_kvm translator; the events go to the ordinary checker (apf/trace.h).
 * The mapping, the checks that apply to a host-only view and the differences between KVM
 * and libapf that are known and deliberate are described in docs/kvm-traces.md.
 *
 * Tracepoints read (others are reported as #APF_TRACE_KVM_OTHER, for the caller to skip
 * and count): `kvm_try_async_get_page`, `kvm_async_pf_not_present`, `kvm_async_pf_ready`,
 * `kvm_async_pf_completed`, `kvm_async_pf_repeated_fault`, `kvm_inj_exception`,
 * `kvm_entry`, `kvm_userspace_exit`, and `kvm_msr` (the only place the guest's enable and
 * ACK are visible). Line shapes (the task name may contain spaces and dashes):
 * @code
 *  qemu-1234    [001] d..1.  1234.567890: kvm_async_pf_not_present: token 0x1000 gva 0x40000000
 *  qemu-1234 [001]  1234.567890: kvm_async_pf_ready:   token 0x1000 gva 0x40000000
 * @endcode
 * (tracefs: flags field; `trace-cmd report`: none, event name padded, `%#llx` of 0 as "0").
 *
 * Freestanding like the rest of apf_proto: no libc, no allocation.
 */
#ifndef APF_TRACE_KVM_H
#define APF_TRACE_KVM_H

#include <stddef.h>
#include <stdint.h>

#include "apf/export.h"
#include "apf/trace.h"

/** @brief Text formats of traces (apf_trace_detect_format()). */
enum apf_trace_format {
    APF_TRACE_FORMAT_UNKNOWN = 0,     /**< Cannot tell from this line. */
    APF_TRACE_FORMAT_APF = 1,         /**< libapf's own (apf/trace.h). */
    APF_TRACE_FORMAT_KVM_TRACEFS = 2, /**< tracefs `trace` file (flags column). */
    APF_TRACE_FORMAT_KVM_REPORT = 3   /**< `trace-cmd report` (no flags column). */
};

/** @brief The tracepoint of a parsed line (apf_trace_kvm_record::tp). */
enum apf_trace_kvm_tp {
    APF_TRACE_KVM_OTHER = 0,          /**< Another tracepoint (not returned with 0). */
    APF_TRACE_KVM_TRY_ASYNC = 1,      /**< kvm_try_async_get_page: gva, gfn. */
    APF_TRACE_KVM_NOT_PRESENT = 2,    /**< kvm_async_pf_not_present: token, gva. */
    APF_TRACE_KVM_READY = 3,          /**< kvm_async_pf_ready: token, gva. */
    APF_TRACE_KVM_COMPLETED = 4,      /**< kvm_async_pf_completed: gva, address. */
    APF_TRACE_KVM_REPEATED_FAULT = 5, /**< kvm_async_pf_repeated_fault: gva, gfn. */
    APF_TRACE_KVM_INJ_EXCEPTION = 6,  /**< kvm_inj_exception: vector, error code. */
    APF_TRACE_KVM_ENTRY = 7,          /**< kvm_entry: vcpu_id. */
    APF_TRACE_KVM_USERSPACE_EXIT = 8, /**< kvm_userspace_exit: reason. */
    APF_TRACE_KVM_MSR = 9             /**< kvm_msr: write, msr, data, exception. */
};

/** @brief apf_trace_kvm_parse() result for header, comment and empty lines. */
#define APF_TRACE_KVM_HEADER 1
/** @brief apf_trace_kvm_record::vector when the exception name is not known. */
#define APF_TRACE_KVM_VECTOR_UNKNOWN 0xffu

/** @brief One parsed tracepoint line. Fields not carried by the tracepoint are 0. */
struct apf_trace_kvm_record {
    uint64_t time_ns; /**< Timestamp (seconds.fraction) in nanoseconds. */
    uint64_t token;   /**< not_present, ready. */
    uint64_t gva;     /**< try, not_present, ready, completed, repeated: KVM's cr2_or_gpa. */
    uint64_t gfn;     /**< try, repeated. */
    uint64_t address; /**< completed: host virtual address; msr: the data. */
    uint32_t pid;     /**< Thread that emitted it. */
    uint32_t cpu;     /**< Host CPU. */
    uint32_t tp;      /**< An #apf_trace_kvm_tp. */
    uint32_t vcpu_id; /**< kvm_entry. */
    uint32_t msr;     /**< kvm_msr: MSR index. */
    uint32_t error_code; /**< inj_exception: error code (if has_error). */
    int32_t reason;   /**< userspace_exit: KVM_EXIT_* number, or -errno ("restart" -4). */
    uint8_t vector;   /**< inj_exception: vector, or #APF_TRACE_KVM_VECTOR_UNKNOWN. */
    uint8_t has_error;  /**< inj_exception: an error code was printed. */
    uint8_t reinjected; /**< inj_exception: "[reinjected]". */
    uint8_t write;      /**< kvm_msr: 1 write, 0 read. */
    uint8_t gp;         /**< kvm_msr: the access raised \#GP (refused). */
    uint8_t format;     /**< #APF_TRACE_FORMAT_KVM_TRACEFS or _REPORT (by the flags column). */
};

/** @brief Opaque translator state, in caller memory of apf_trace_kvm_size(). */
struct apf_trace_kvm;

/** @brief Most events one apf_trace_kvm_feed() or apf_trace_kvm_finish() call produces. */
#define APF_TRACE_KVM_MAX_OUT 8u

/** @brief Translator flag: the trace shows the guest's ACKs (`kvm_msr` writes of
 *  ASYNC_PF_ACK): check "one page ready in flight" (window 1). Without it the vCPUs are
 *  declared unthrottled (window 0) and that check is not made: KVM's throttle waits for an
 *  ACK the trace cannot show. */
#define APF_TRACE_KVM_ACK_VISIBLE 1u

/** @brief Counters of a translation (apf_trace_kvm_stats()). */
struct apf_trace_kvm_stats {
    uint64_t lines[10];        /**< Records fed, by #apf_trace_kvm_tp. */
    uint64_t events;           /**< Protocol events produced. */
    uint64_t np_delivered;     /**< not_present followed by its \#PF: host.np. */
    uint64_t np_halted;        /**< not_present not delivered: artificial halt (host.halt). */
    uint64_t halt_wakes;       /**< kvm_async_pf_ready ending an artificial halt (no event). */
    uint64_t sync_fallbacks;   /**< try_async without async work: host.sync. */
    uint64_t repeated;         /**< repeated_fault: host.halt (dedup). */
    uint64_t implied_enables;  /**< APF enable implied (no kvm_msr enable in the trace). */
    uint64_t implied_wake_alls;/**< The enable's wake-all implied as sent and ACKed before the
                                    trace (a delivered not-present with APF state unknown). */
    /** Known difference: a "page ready" KVM sends for a token whose "not present" preceded a
     *  wake-all (libapf-host drops it: the wake-all answered it). Not forwarded. */
    uint64_t covered_readies;
    /** ACKs with no KVM "page ready" in flight (another host's, e.g. a VMM's, or spurious). */
    uint64_t acks_unmatched;
    uint64_t pf_other;         /**< \#PF injections that are not a KVM "not present". */
    uint64_t readies_dropped;  /**< kvm_async_pf_ready for work dropped by a disable. */
};

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Tell the format of a trace from one of its lines.
 * @param line The line (a trailing newline is allowed).
 * @param len Its length.
 * @return An #apf_trace_format; #APF_TRACE_FORMAT_UNKNOWN for empty lines, libapf comments,
 *         and lines of no known format.
 */
APF_API uint32_t apf_trace_detect_format(const char *line, size_t len);

/**
 * @brief Parse one line of tracefs or `trace-cmd report` output.
 * Context: any; freestanding.
 * @param line The line (a trailing newline is allowed).
 * @param len Its length in bytes.
 * @param[out] rec The record (all fields set on 0; tp and format also on APF_ENOENT).
 * @return 0 for a line of a tracepoint this file reads; #APF_TRACE_KVM_HEADER for an empty,
 *         `#` comment or trace-cmd header line (`cpus=`, `version =`); APF_ENOENT for a
 *         well-formed line of another tracepoint; APF_EINVAL for a malformed line (or a known
 *         tracepoint whose fields do not read).
 */
APF_API int apf_trace_kvm_parse(const char *line, size_t len, struct apf_trace_kvm_record *rec);

/**
 * @brief Bytes of memory a translator needs.
 * @param max_vcpus vCPUs (vCPU threads) the trace may have (1..65536).
 * @param max_outstanding Faults a vCPU may have outstanding at once (1..65536; KVM: 64).
 * @return The size, or 0 if an argument is out of range.
 */
APF_API size_t apf_trace_kvm_size(uint32_t max_vcpus, uint32_t max_outstanding);

/**
 * @brief Initialise a translator in caller memory.
 * @param mem At least apf_trace_kvm_size() bytes, 8-byte aligned.
 * @param size Size of @p mem.
 * @param max_vcpus As given to apf_trace_kvm_size().
 * @param max_outstanding As given to apf_trace_kvm_size().
 * @param flags 0 or #APF_TRACE_KVM_ACK_VISIBLE.
 * @return The translator, or NULL on bad arguments or too little memory.
 */
APF_API struct apf_trace_kvm *apf_trace_kvm_init(void *mem, size_t size, uint32_t max_vcpus,
                                                 uint32_t max_outstanding, uint32_t flags);

/**
 * @brief Bind a thread to a vCPU index (from `kvm_entry`'s vcpu_id, known before the
 * translation, e.g. by a first pass). Threads not bound take the lowest free index the
 * first time they emit a vCPU-side event (not_present, ready, try, repeated, \#PF, msr).
 * @param k The translator.
 * @param pid The thread.
 * @param vcpu The vCPU index (< max_vcpus).
 * @return 0; APF_EINVAL if @p vcpu is out of range; APF_ENOSPC if too many threads.
 */
APF_API int apf_trace_kvm_bind(struct apf_trace_kvm *k, uint32_t pid, uint32_t vcpu);

/**
 * @brief Feed the next parsed line (in trace order) and get the protocol events it settles.
 * A "not present" is settled by what follows it on its vCPU (its \#PF injection: host.np;
 * anything else: the artificial halt, host.halt), so events can come one line late.
 * @param k The translator.
 * @param rec A record apf_trace_kvm_parse() returned 0 for.
 * @param[out] out Up to #APF_TRACE_KVM_MAX_OUT events, in order.
 * @param[out] n_out How many.
 * @return 0; APF_EPROTO at (and after) the first KVM-level violation (apf_trace_kvm_error());
 *         APF_ENOSPC (likewise) if the trace needs more vCPUs or outstanding faults than
 *         sized. Events produced before the violation are still in @p out.
 */
APF_API int apf_trace_kvm_feed(struct apf_trace_kvm *k, const struct apf_trace_kvm_record *rec,
                               struct apf_trace_event out[APF_TRACE_KVM_MAX_OUT],
                               uint32_t *n_out);

/**
 * @brief End of trace: settle what is pending (an unsettled "not present" counts as not
 * delivered) and check that every artificial halt was woken. Call it until it returns
 * something else than APF_EAGAIN, passing each call's events on.
 * @param k The translator.
 * @param[out] out Up to #APF_TRACE_KVM_MAX_OUT events.
 * @param[out] n_out How many.
 * @return 0; APF_EAGAIN: events in @p out, call again; APF_EPROTO as apf_trace_kvm_feed().
 */
APF_API int apf_trace_kvm_finish(struct apf_trace_kvm *k,
                                 struct apf_trace_event out[APF_TRACE_KVM_MAX_OUT],
                                 uint32_t *n_out);

/**
 * @brief The first KVM-level violation, as text ("" if none).
 * @param k The translator.
 * @return A string inside @p k.
 */
APF_API const char *apf_trace_kvm_error(const struct apf_trace_kvm *k);

/**
 * @brief The translation's counters so far.
 * @param k The translator.
 * @param[out] st The counters.
 */
APF_API void apf_trace_kvm_stats(const struct apf_trace_kvm *k, struct apf_trace_kvm_stats *st);

#ifdef __cplusplus
}
#endif

#endif
