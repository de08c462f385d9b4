/* SPDX-License-Identifier: MIT */
/*
 * 64-bit unsigned division without the compiler's runtime helper: on 32-bit targets
 * (i686) `uint64_t / uint64_t` becomes a call to libgcc's __udivdi3, which a freestanding
 * kernel need not link. Only for cold paths (init, parsing). Internal; freestanding.
 */
#ifndef APF_SRC_PROTO_DIV64_H
#define APF_SRC_PROTO_DIV64_H

#include <stdint.h>

static inline uint64_t apf__udiv64(uint64_t n, uint64_t d)
{
#if UINTPTR_MAX > 0xffffffffu
    return n / d;
#else
    uint64_t q = 0, r = 0;
    for (int i = 63; i >= 0; i--) {
        r = (r << 1) | ((n >> i) & 1u);
        if (r >= d) {
            r -= d;
            q |= (uint64_t)1 << i;
        }
    }
    return q;
#endif
}

#endif
