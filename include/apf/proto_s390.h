/* SPDX-License-Identifier: MIT */
/**
 * @file proto_s390.h
 * @brief The s390 "pfault" wire (DIAGNOSE X'258' + external interrupt 0x2603), shared by
 * host and guest ("dual-use", freestanding: `<stdint.h>` only).
 *
 * Facts from the public descriptions of z/VM "Page-Reference Services" (SC24-6084) and of
 * Linux's s390 guest and KVM s390 (no code taken); see docs/transport-s390.md for the
 * sequences. Everything on this wire is **big-endian** (s390 is a big-endian machine): the
 * parameter block is encoded and decoded only with the byte-order helpers below, never by
 * overlaying a C struct, so the same code is right on a little-endian host (x86-64 VMM)
 * and on s390x itself.
 *
 * Parameter block (8-byte aligned, guest real memory, its real address in Rx; the return
 * code comes back in Ry):
 *
 * | offset | size | field | INIT | CANCEL |
 * |---|---|---|---|---|
 * | 0x00 | u16 | diag code | 0x0258 | 0x0258 |
 * | 0x02 | u16 | subcode | 0 | 1 |
 * | 0x04 | u16 | length in doublewords | >= 5 | >= 5 |
 * | 0x06 | u16 | version | 2 | 2 |
 * | 0x08 | u64 | token address | 8-aligned real address | 0 |
 * | 0x10 | u64 | select mask | e.g. PSW problem state | 0 |
 * | 0x18 | u64 | compare mask | within select | 0 |
 * | 0x20 | u64 | reserved | 0x8000000000000000 | 0 |
 */
#ifndef APF_PROTO_S390_H
#define APF_PROTO_S390_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @name DIAGNOSE X'258' parameter block
 *  @{ */
#define APF_S390_DIAG_CODE 0x0258u      /**< The diagnose code, also the block's first field. */
#define APF_S390_SUB_INIT 0u            /**< Subcode: establish the token (INIT). */
#define APF_S390_SUB_CANCEL 1u          /**< Subcode: cancel (CANCEL). */
#define APF_S390_REFBK_VERSION 2u       /**< The only version accepted. */
#define APF_S390_REFBK_DWORDS 5u        /**< Minimum length in doublewords. */
#define APF_S390_REFBK_SIZE 40u         /**< Bytes the host reads (5 doublewords). */
#define APF_S390_REFBK_ALIGN 8u         /**< Required alignment of the block (else spec.). */
#define APF_S390_TOKEN_ALIGN 8u         /**< Required alignment of the token address. */
/** The reserved word of INIT: exactly this value (z/Architecture mode). */
#define APF_S390_REFBK_RESERVED 0x8000000000000000ull
#define APF_S390_RC_OK 0u               /**< INIT established / CANCEL cancelled. */
#define APF_S390_RC_NOT_ESTABLISHED 4u  /**< CANCEL: nothing was established. */
#define APF_S390_RC_ALREADY 8u          /**< INIT: already established (nothing changed). */
/** "No token address" in saved state (KVM's invalid pfault token). */
#define APF_S390_TOKEN_INVALID 0xffffffffffffffffull
/** @} */

/** @name PSW and control-register bits the gate uses (64-bit PSW mask)
 *  @{ */
#define APF_S390_PSW_MASK_EXT 0x0100000000000000ull    /**< External interrupts enabled. */
#define APF_S390_PSW_MASK_PSTATE 0x0001000000000000ull /**< Problem state (user mode). */
/** CR0 service-signal subclass mask: without it no 0x2603 interrupt is taken. */
#define APF_S390_CR0_SERVICE_SIGNAL 0x200ull
/** @} */

/** @name External interrupt 0x2603
 *  @{ */
#define APF_S390_EXT_CODE 0x2603u       /**< External interrupt code (shared with others). */
#define APF_S390_EXT_SUB_INIT 0x0600u   /**< Subcode of "not present" (to the faulting vCPU). */
#define APF_S390_EXT_SUB_DONE 0x0680u   /**< Subcode of "page ready" (floating). */
#define APF_S390_EXT_SUB_MASK 0xff00u   /**< `(subcode & MASK) == INIT`: a pfault interrupt. */
#define APF_S390_EXT_SUB_DONE_BIT 0x0080u /**< Set in the subcode of a completion. */
/** @} */

/** @brief The parameter block, decoded into host byte order. */
struct apf_s390_refbk {
    uint16_t code;       /**< 0x0258. */
    uint16_t subcode;    /**< #APF_S390_SUB_INIT or #APF_S390_SUB_CANCEL. */
    uint16_t dwords;     /**< Length in doublewords (>= 5). */
    uint16_t version;    /**< 2. */
    uint64_t token_addr; /**< Real address of the 8-byte task token (INIT), else 0. */
    uint64_t select;     /**< PSW bits that matter (INIT), else 0. */
    uint64_t compare;    /**< Their required values (INIT), else 0. */
    uint64_t reserved;   /**< #APF_S390_REFBK_RESERVED (INIT), else 0. */
};

/**
 * @brief Read a big-endian 16-bit value.
 * @param p Two bytes.
 * @return The value.
 */
static inline uint16_t apf_s390_be16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

/**
 * @brief Read a big-endian 64-bit value.
 * @param p Eight bytes.
 * @return The value.
 */
static inline uint64_t apf_s390_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/**
 * @brief Write a big-endian 16-bit value.
 * @param p Two bytes.
 * @param v The value.
 */
static inline void apf_s390_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/**
 * @brief Write a big-endian 64-bit value.
 * @param p Eight bytes.
 * @param v The value.
 */
static inline void apf_s390_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/**
 * @brief Decode a parameter block (no checks: the host validates the result).
 * @param in #APF_S390_REFBK_SIZE bytes as in guest memory.
 * @param[out] out The fields.
 */
static inline void apf_s390_refbk_decode(const uint8_t *in, struct apf_s390_refbk *out)
{
    out->code = apf_s390_be16(in + 0x00);
    out->subcode = apf_s390_be16(in + 0x02);
    out->dwords = apf_s390_be16(in + 0x04);
    out->version = apf_s390_be16(in + 0x06);
    out->token_addr = apf_s390_be64(in + 0x08);
    out->select = apf_s390_be64(in + 0x10);
    out->compare = apf_s390_be64(in + 0x18);
    out->reserved = apf_s390_be64(in + 0x20);
}

/**
 * @brief Encode a parameter block.
 * @param b The fields.
 * @param[out] out #APF_S390_REFBK_SIZE bytes as the host reads them.
 */
static inline void apf_s390_refbk_encode(const struct apf_s390_refbk *b, uint8_t *out)
{
    apf_s390_put_be16(out + 0x00, b->code);
    apf_s390_put_be16(out + 0x02, b->subcode);
    apf_s390_put_be16(out + 0x04, b->dwords);
    apf_s390_put_be16(out + 0x06, b->version);
    apf_s390_put_be64(out + 0x08, b->token_addr);
    apf_s390_put_be64(out + 0x10, b->select);
    apf_s390_put_be64(out + 0x18, b->compare);
    apf_s390_put_be64(out + 0x20, b->reserved);
}

#ifdef __cplusplus
}
#endif

#endif /* APF_PROTO_S390_H */
