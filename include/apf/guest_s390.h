/* SPDX-License-Identifier: MIT */
/**
 * @file guest_s390.h
 * @brief libapf-guest on s390 "pfault": the backend (#apf_guest_backend_s390), its arch
 * hook (DIAGNOSE X'258') and the external-interrupt entry point.
 *
 * Wire: apf/proto_s390.h (big-endian, encoded byte by byte: correct on any host). Sequences:
 * docs/transport-s390.md.
 *
 * **Tokens are the kernel's.** On s390 the guest owns the token: the kernel keeps, at one
 * doubleword it chooses (apf_guest_s390::token_addr, a real address; Linux uses a field of
 * each CPU's prefix area), the token of the task running on that CPU, and rewrites it at
 * every context switch. The host reads it when it sends "not present" and echoes it in the
 * "page ready". The runtime's sleep table is keyed by the token's low 32 bits
 * (apf_guest_s390_key()), so the kernel must make them unique among the tasks that can wait
 * at one time and never 0 or 0xffffffff (apf_guest_s390_task_token() builds such a value
 * from a task id, as Linux does with its pid). Interrupts whose key is 0 or 0xffffffff are
 * refused as bad host values.
 *
 * **The entry point.** The kernel's external-interrupt handler calls
 * apf_guest_s390_external() with the interruption code, subcode and 64-bit parameter. Code
 * 0x2603 is shared with other service signals: only `(subcode & 0xff00) == 0x0600` is
 * pfault; anything else returns 0 for the kernel to handle. Subcode bit 0x0080 clear:
 * "not present" for the current task (it waits for its token, see
 * apf_guest_on_exception()); set: "page ready" (floating: it may arrive on any CPU, before
 * or after the "not present" it answers; a completion that arrives first leaves a
 * placeholder, so the late waiter does not sleep - the per-task tri-state of Linux, kept by
 * the sleep table's wake-before-wait).
 *
 * **CPU offline.** apf_guest_cpu_offline() issues CANCEL (the host drops the CPU's pending
 * completions) and then wakes every task that waits on that CPU: they retry their access.
 * A completion that lands on a CPU whose pfault is not (or no longer) established is still
 * delivered to its waiter.
 */
#ifndef APF_GUEST_S390_H
#define APF_GUEST_S390_H

#include <stdint.h>

#include "apf/guest.h"
#include "apf/guest_backend.h"
#include "apf/proto_s390.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @brief s390 privileged instruction: DIAGNOSE X'258'. */
struct apf_s390_arch_ops {
    /** Execute DIAGNOSE X'258' on CPU @p cpu (the current one) with Rx = @p block (the real
     *  address of an 8-byte aligned parameter block). Returns Ry (0, 4 or 8), or a negative
     *  code if the host raised a program exception (the native hook cannot observe one: the
     *  kernel's exception table does; it returns Ry as the instruction left it). */
    int (*diag258)(void *ctx, uint32_t cpu, uint64_t block);
};

#if defined(__s390x__) || defined(DOXYGEN)
/** The real `diag` instruction (inline assembly), for a guest kernel on s390x. */
APF_API extern const struct apf_s390_arch_ops apf_s390_arch_native;
#endif

/** @cond INTERNAL */
#if defined(__GNUC__) || defined(__clang__)
#define APF__ALIGN8 __attribute__((aligned(8)))
#else
#define APF__ALIGN8
#endif
/** @endcond */

/** @brief Context of the s390 backend (initialise with apf_guest_s390_init()). */
struct apf_guest_s390 {
    const struct apf_s390_arch_ops *arch; /**< Arch hook. */
    void *arch_ctx;                       /**< Its context. */
    /** Real address of the doubleword holding the current task's token (8-byte aligned);
     *  the same for every CPU when it lies in the prefix area. */
    uint64_t token_addr;
    /** INIT's select and compare masks: PSW problem state by default (async only for user
     *  mode); with #APF_GUEST_SEND_ALWAYS both 0 (always). */
    uint64_t select;
    uint64_t compare; /**< See select. */
    /** The CANCEL parameter block's bytes (big-endian, built by apf_guest_s390_init(), read
     *  by the host; doublewords only for the alignment): disable has no channel to put it
     *  in, and it is the same for every CPU. */
    uint64_t cancel[APF_S390_REFBK_SIZE / 8] APF__ALIGN8; /* 8 even where u64 aligns to 4 (i686) */
    /** Real address of apf_guest_s390::cancel: set by the kernel after apf_guest_s390_init() (e.g.
     *  its virt_to_phys); probe refuses 0 or a misaligned one (APF_EINVAL). */
    uint64_t cancel_pa;
};

/**
 * @brief s390 pfault: probe = nothing to ask (the first INIT tells: a host without
 * DIAGNOSE X'258' makes apf_guest_cpu_online() fail on that CPU); vector = 0x2603 (the
 * host's); channel = 64 bytes per CPU: the parameter block (big-endian, its real address
 * passed to the diagnose) and the interrupt just taken; enable = INIT (Ry 0: on; 8:
 * APF_EBUSY, established already; exception: its code); disable = CANCEL with the
 * context's block (apf_guest_s390::cancel_pa; Ry 0 or 4: off).
 * No ACK and no ring.
 */
APF_API extern const struct apf_guest_backend_ops apf_guest_backend_s390;

/**
 * @brief Initialise an s390 backend context (problem-state masks).
 * @param b Context to fill.
 * @param arch Arch hook (apf_s390_arch_native on real hardware).
 * @param arch_ctx Its context.
 * @param token_addr Real address of the current task's token doubleword.
 */
APF_API void apf_guest_s390_init(struct apf_guest_s390 *b, const struct apf_s390_arch_ops *arch,
                                 void *arch_ctx, uint64_t token_addr);

/**
 * @brief The sleep-table key of a task token: its low 32 bits.
 * @param token The 64-bit task token.
 * @return The key (valid unless 0 or 0xffffffff).
 */
static inline uint32_t apf_guest_s390_key(uint64_t token)
{
    return (uint32_t)token;
}

/**
 * @brief A task token for task id @p id (what the kernel stores at the token address when
 * it switches to that task): bit 31 of the high word set, @p id in the low word, as Linux
 * builds it from the pid. @p id must not be 0 or 0xffffffff.
 * @param id Task id.
 * @return The token.
 */
static inline uint64_t apf_guest_s390_task_token(uint32_t id)
{
    return 0x8000000000000000ull | id;
}

/**
 * @brief The external-interrupt handler's entry point.
 * Context: the external-interrupt handler on @p cpu. For "not present" the current task
 * may be put to sleep (as by apf_guest_on_exception()): call it where the interrupted task
 * may block (Linux: on the way back to user mode), with interrupts as that function
 * requires.
 * @param g Runtime (configured with #apf_guest_backend_s390).
 * @param cpu This CPU.
 * @param code External interruption code.
 * @param subcode Its subcode (CPU address field).
 * @param param The 64-bit interruption parameter (the task token).
 * @return 1 if it was a pfault interrupt (handled); 0 if not (the kernel's other handlers
 *         take it); APF_EINVAL for a bad @p cpu or a runtime with another backend.
 */
APF_API int apf_guest_s390_external(struct apf_guest *g, uint32_t cpu, uint32_t code,
                                    uint32_t subcode, uint64_t param);

#ifdef __cplusplus
}
#endif

#endif /* APF_GUEST_S390_H */
