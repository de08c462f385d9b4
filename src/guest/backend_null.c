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

static size_t null_chan_size(void *ctx, size_t *align)
{
    (void)ctx;
    *align = 1;
    return 0; /* no channel */
}

static int null_vector_check(void *ctx, uint32_t vector)
{
    (void)ctx, (void)vector;
    return APF_EOPNOTSUPP;
}

static int null_enable(void *ctx, uint32_t cpu, void *chan, uint64_t chan_pa, uint32_t vector,
                       uint32_t flags)
{
    (void)ctx, (void)cpu, (void)chan, (void)chan_pa, (void)vector, (void)flags;
    return APF_EOPNOTSUPP;
}

static int null_disable(void *ctx, uint32_t cpu)
{
    (void)ctx, (void)cpu;
    return APF_EOPNOTSUPP;
}

static int null_take_not_present(void *ctx, uint32_t cpu, void *chan, uint32_t token_hint,
                                 struct apf_guest_chan_event *ev)
{
    (void)ctx, (void)cpu, (void)chan, (void)token_hint;
    ev->token = 0;
    ev->value = 0;
    return APF_GUEST_NP_NONE; /* every fault is genuine */
}

static int null_ready_peek(void *ctx, uint32_t cpu, void *chan, struct apf_guest_chan_event *ev)
{
    (void)ctx, (void)cpu, (void)chan;
    ev->token = 0;
    ev->value = 0;
    return APF_GUEST_READY_EMPTY;
}

static int null_ready_release(void *ctx, uint32_t cpu, void *chan)
{
    (void)ctx, (void)cpu, (void)chan;
    return 0;
}

static int null_ready_finish(void *ctx, uint32_t cpu, void *chan)
{
    (void)ctx, (void)cpu, (void)chan;
    return APF_EOPNOTSUPP;
}

const struct apf_guest_backend_ops apf_guest_backend_null = {
    .name = "null",
    .capabilities = null_caps,
    .probe = null_probe,
    .chan_size = null_chan_size,
    .vector_check = null_vector_check,
    .enable = null_enable,
    .disable = null_disable,
    .take_not_present = null_take_not_present,
    .ready_peek = null_ready_peek,
    .ready_release = null_ready_release,
    .ready_finish = null_ready_finish,
    .area = 0,
    .ring = 0,
};
