/* SPDX-License-Identifier: MIT */
/* The null backend: no hypervisor support, APF stays off. */
#include "apf/guest_backend.h"

static uint32_t null_caps(void *ctx)
{
    (void)ctx;
    return 0;
}

static int null_probe(void *ctx, struct apf_guest_backend_info *info)
{
    (void)ctx;
    (void)info;
    return APF_ENODEV;
}

static int null_enable(void *ctx, uint32_t cpu, uint64_t area_pa, uint32_t vector, uint32_t flags)
{
    (void)ctx, (void)cpu, (void)area_pa, (void)vector, (void)flags;
    return APF_EOPNOTSUPP;
}

static int null_cpu_op(void *ctx, uint32_t cpu)
{
    (void)ctx, (void)cpu;
    return APF_EOPNOTSUPP;
}

const struct apf_guest_backend_ops apf_guest_backend_null = {
    .name = "null",
    .capabilities = null_caps,
    .probe = null_probe,
    .enable = null_enable,
    .disable = null_cpu_op,
    .ack = null_cpu_op,
};
