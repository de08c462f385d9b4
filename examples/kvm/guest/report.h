/* SPDX-License-Identifier: MIT */
/* The report channel to the VMM (port I/O; see common/guest_abi.h). */
#ifndef KG_REPORT_H
#define KG_REPORT_H

#include <stdint.h>

#include "guest_abi.h"

/* Send one report: @p n arguments and an optional NUL-terminated text. Any context. */
void report_send(uint32_t event, const uint64_t *args, uint32_t n, const char *text);

/* REPORT(GABI_EV_x, a0, a1, ...): each argument is converted to uint64_t. */
#define REPORT(ev, ...)                                                                            \
    do {                                                                                           \
        const uint64_t report_args_[] = {__VA_ARGS__};                                             \
        report_send((ev), report_args_, (uint32_t)(sizeof(report_args_) / sizeof(uint64_t)),       \
                    (const char *)0);                                                              \
    } while (0)

/* Tell the VMM the guest is done; does not return. */
_Noreturn void report_exit(uint32_t status);

#endif /* KG_REPORT_H */
