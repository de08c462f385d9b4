/* SPDX-License-Identifier: MIT */
/* The failed-resolve ring (failed_ring.h). */
#include "host/failed_ring.h"

void apf__failed_add(struct apf__failed *f, uint64_t gfn)
{
    f->gfn[f->next] = gfn;
    f->next = (f->next + 1) % APF__FAILED_RING;
    if (f->n < APF__FAILED_RING)
        f->n++;
}

int apf__failed_take(struct apf__failed *f, uint64_t gfn)
{
    for (uint32_t i = 0; i < f->n; i++) {
        uint32_t at = (f->next + APF__FAILED_RING - 1 - i) % APF__FAILED_RING;
        if (f->gfn[at] == gfn) {
            /* Remove by moving the oldest entry into its place. */
            uint32_t oldest = (f->next + APF__FAILED_RING - f->n) % APF__FAILED_RING;
            f->gfn[at] = f->gfn[oldest];
            f->n--;
            return 1;
        }
    }
    return 0;
}
