/* SPDX-License-Identifier: MIT */
/*
 * The 64-byte shared area (apf/proto.h struct apf_shared_area) as the slot backends access
 * it. Internal; freestanding.
 */
#ifndef APF_SRC_GUEST_AREA_H
#define APF_SRC_GUEST_AREA_H

#include <stdatomic.h>
#include <stdint.h>

#include "apf/guest_backend.h"
#include "proto/atomic.h"

/* The host writes the area outside the guest's view, so every access is an atomic (never
 * cached by the compiler; relaxed is enough: the exception / interrupt is the
 * synchronisation point). Same layout as apf_shared_area. */
struct apf__area {
    _Atomic uint32_t flags;
    _Atomic uint32_t token;
    uint8_t pad[56];
};
_Static_assert(sizeof(struct apf__area) == APF_AREA_SIZE, "area layout");
_Static_assert(sizeof(_Atomic uint32_t) == 4, "atomic u32 is a plain u32 in memory");

/* Channels of the shipped backends start with the area (64-byte aligned). */
static inline struct apf__area *apf__area_of(void *chan)
{
    return (struct apf__area *)chan;
}

#endif
