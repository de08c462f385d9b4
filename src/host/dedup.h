/* SPDX-License-Identifier: MIT */
/*
 * Dedup table of one vCPU: guest frame number -> slot of the work in flight for it.
 *
 * Rule (Linux kvm_find_async_pf_gfn; reference "A second fault on a guest frame that already
 * has async work in flight does not start new work"): apf_host_vcpu_fault() looks the frame
 * up first (fault.c apf__fault_dedup) and halts the vCPU on a hit instead of starting a
 * second fetch. The entry goes when the work's completion is taken (completion.c).
 *
 * The table is the shared map of proto/hashmap.h with capacity 2 * slots (a power of two),
 * so it is at most half full and lookups are O(1) expected; deletion shifts the probe chain
 * back instead of leaving tombstones.
 */
#ifndef APF_SRC_HOST_DEDUP_H
#define APF_SRC_HOST_DEDUP_H

#include "proto/hashmap.h"

#endif
